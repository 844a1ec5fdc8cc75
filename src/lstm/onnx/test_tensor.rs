//! Initializers in a file beside the model (ONNX external data, torch's default export) and
//! the shape-vector arithmetic its exports compute (Slice, Mul, Reshape of shape values); the
//! whole of such an export is checked against onnxruntime by `tests/reference.rs`.

use super::tests::{int, int64s, lstm, node, parse_outputs, H, I};
use super::*;
use pb::StringStringEntryProto;

/// An LSTM graph whose `W` lives in `data` (the file `w.bin` beside `m.onnx` in a temporary
/// directory), with the external-data entries `entries` (location, offset, length as given);
/// parsed from that directory.
fn external(data: &[u8], entries: &[(&str, &str)]) -> Result<Model, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), data).unwrap();
    external_in(dir.path(), entries)
}

/// The graph of [`external`], its model file in `dir`.
fn external_in(dir: &std::path::Path, entries: &[(&str, &str)]) -> Result<Model, String> {
    let (l, mut inits) = lstm(1, vec![]);
    inits[0] = TensorProto {
        float_data: Vec::new(),
        data_location: 1,
        external_data: (entries.iter())
            .map(|&(key, value)| StringStringEntryProto {
                key: key.into(),
                value: value.into(),
            })
            .collect(),
        ..inits[0].clone()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        graph: Some(pb::GraphProto {
            node: vec![l],
            initializer: inits,
            input: vec![pb::ValueInfoProto {
                name: "X".into(),
                r#type: None,
            }],
            output: vec![pb::ValueInfoProto {
                name: "Y".into(),
                r#type: None,
            }],
            ..Default::default()
        }),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        ..Default::default()
    };
    let file = dir.join("m.onnx");
    parse(file.to_str().unwrap(), &model.encode_to_vec()).map_err(|e| e.to_string())
}

#[test]
fn external_data_is_read_from_beside_the_model() {
    // The same W inline and at offset 8 of w.bin (after 8 other bytes): the same model.
    let (l, inits) = lstm(1, vec![]);
    let inline = parse_outputs(17, vec![l], inits.clone(), None, &["Y"]).unwrap();
    let mut data = vec![0xAB; 8];
    data.extend(inits[0].float_data.iter().flat_map(|v| v.to_le_bytes()));
    let bytes = (4 * H * I * 4).to_string();
    let at = |offset: &'static str, length: &str| {
        let entries = [
            ("location", "w.bin"),
            ("offset", offset),
            ("length", length),
        ];
        external(&data, &entries)
    };
    let m = at("8", &bytes).unwrap();
    assert_eq!(m.layers, inline.layers);
    // Without a length: the shape says how many bytes.
    let m = external(&data, &[("location", "./w.bin"), ("offset", "8")]).unwrap();
    assert_eq!(m.layers, inline.layers);
    let refused = |entries: &[(&str, &str)], want: &str| {
        let err = external(&data, entries).unwrap_err();
        assert!(
            err.contains("initializer 'W'") && err.contains(want),
            "{want}: {err}"
        );
    };
    let need = format!("which needs {bytes}");
    refused(&[("location", "w.bin"), ("length", "12")], &need);
    refused(
        &[("location", "../w.bin")],
        "must be a file in the model's directory",
    );
    refused(
        &[("location", "/data/w.bin")],
        "must be a file in the model's directory",
    );
    refused(
        &[("location", "")],
        "must be a file in the model's directory",
    );
    refused(&[("offset", "8")], "without a 'location'");
    refused(&[("location", "nope.bin")], "nope.bin");
    refused(
        &[("location", "w.bin"), ("offset", "-1")],
        "'-1' is not a byte count",
    );
    refused(
        &[("location", "w.bin"), ("offset", "9")],
        "the tensor needs",
    );
    refused(
        &[("location", "w.bin"), ("offset", "18446744073709551615")],
        "the tensor needs",
    );
}

#[test]
fn shape_vectors_slice_multiply_and_reshape_by_onnx_rules() {
    // LSTM -> Squeeze -> S [steps, batch, H]; Shape(S) sliced by (start, end, step), then
    // Mul by `times` (a one-value vector), Reshape to a one-value vector, Concat'ed after
    // `lead` (Shape(S) sliced to its first two), the target of Reshape(S).
    let graph = |start: i64, end: i64, step: i64, op: &str, times: i64, lead: bool| {
        let (l, mut inits) = lstm(1, vec![]);
        inits.extend([
            int64s("one", &[1]),
            int64s("s", &[start]),
            int64s("e", &[end]),
            int64s("ax", &[0]),
            int64s("st", &[step]),
            int64s("times", &[times]),
            int64s("minus1", &[-1]),
            int64s("zero", &[0]),
            int64s("two", &[2]),
        ]);
        let mut nodes = vec![
            l,
            node("Squeeze", "sq", &["Y", "one"], "S", vec![]),
            node("Shape", "shape", &["S"], "D", vec![]),
            node("Slice", "cut", &["D", "s", "e", "ax", "st"], "C", vec![]),
            node(op, "op", &["C", "times"], "P", vec![]),
        ];
        let target = if lead {
            nodes.push(node("Reshape", "flat", &["P", "minus1"], "F", vec![]));
            nodes.push(node("Slice", "lead", &["D", "zero", "two"], "L", vec![]));
            let cat = node("Concat", "cat", &["L", "F"], "T", vec![int("axis", 0)]);
            nodes.push(cat);
            "T"
        } else {
            "P"
        };
        nodes.push(node("Reshape", "to", &["S", target], "Z", vec![]));
        parse_outputs(17, nodes, inits, None, &["Z"])
    };
    // The last size (H) by a negative start, times 1: [steps, batch, H] again.
    assert!(graph(-1, i64::MAX, 1, "Mul", 1, true).is_ok());
    // Every other size from the first: [steps, H].
    let err = graph(0, i64::MAX, 2, "Mul", 1, false).unwrap_err();
    assert!(err.contains(&format!("to [steps, {H}]")), "{err}");
    // Backwards from the last: [H, batch, steps].
    let err = graph(-1, i64::MIN, -1, "Mul", 1, false).unwrap_err();
    assert!(err.contains(&format!("to [{H}, batch, steps]")), "{err}");
    // H times 3 is a known size; steps times 3 is not.
    let err = graph(2, 3, 1, "Mul", 3, true).unwrap_err();
    assert!(
        err.contains(&format!("to [steps, batch, {}]", 3 * H)),
        "{err}"
    );
    let err = graph(0, 1, 1, "Mul", 3, true).unwrap_err();
    assert!(err.contains("to [steps, batch, ?]"), "{err}");
    // H + 2 and H - 2 are known; steps - 0 and steps + 0 stay the steps, steps - 1 is unknown.
    let err = graph(2, 3, 1, "Add", 2, true).unwrap_err();
    assert!(
        err.contains(&format!("to [steps, batch, {}]", H + 2)),
        "{err}"
    );
    let err = graph(2, 3, 1, "Sub", 2, true).unwrap_err();
    assert!(
        err.contains(&format!("to [steps, batch, {}]", H - 2)),
        "{err}"
    );
    for op in ["Add", "Sub"] {
        let err = graph(0, 1, 1, op, 0, true).unwrap_err();
        assert!(err.contains("to [steps, batch, steps]"), "{op}: {err}");
    }
    let err = graph(0, 1, 1, "Sub", 1, true).unwrap_err();
    assert!(err.contains("to [steps, batch, ?]"), "{err}");
    let err = graph(0, i64::MAX, 0, "Mul", 1, false).unwrap_err();
    assert!(
        err.contains("node 'cut' (Slice): a slice step of 0"),
        "{err}"
    );
}

#[test]
fn an_empty_shape_vector_slices_to_an_empty_one() {
    // Shape(S) [steps, batch, H] ++ (its empty slice [0:0], sliced again backwards): the
    // target [steps, batch, H]. Slicing the empty vector with a negative step panicked.
    let (l, mut inits) = lstm(1, vec![]);
    inits.extend([
        int64s("one", &[1]),
        int64s("zero", &[0]),
        int64s("m1", &[-1]),
        int64s("m10", &[-10]),
    ]);
    let nodes = vec![
        l,
        node("Squeeze", "sq", &["Y", "one"], "S", vec![]),
        node("Shape", "shape", &["S"], "D", vec![]),
        node("Slice", "none", &["D", "zero", "zero"], "E", vec![]),
        node(
            "Slice",
            "back",
            &["E", "m1", "m10", "zero", "m1"],
            "F",
            vec![],
        ),
        node("Concat", "cat", &["D", "F"], "T", vec![int("axis", 0)]),
        node("Reshape", "to", &["S", "T"], "Z", vec![]),
    ];
    assert!(parse_outputs(17, nodes, inits, None, &["Z"]).is_ok());
}

#[test]
fn external_data_that_is_a_link_or_not_a_file_is_refused() {
    #[cfg(unix)]
    {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.bin");
        std::fs::write(&outside, vec![0u8; 4 * 4 * H * I]).unwrap();
        let model = dir.path().join("m");
        std::fs::create_dir(&model).unwrap();
        std::os::unix::fs::symlink(&outside, model.join("w.bin")).unwrap();
        std::fs::create_dir(model.join("d.bin")).unwrap();
        for (location, want) in [
            ("w.bin", "is a symbolic link"),
            ("d.bin", "is not a regular file"),
        ] {
            let err = external_in(&model, &[("location", location)]).unwrap_err();
            assert!(err.contains(want), "{location}: {err}");
        }
    }
}
