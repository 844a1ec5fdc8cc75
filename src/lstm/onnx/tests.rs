//! The importer on graphs built here, each a way an earlier importer read a model wrong or
//! accepted one onnxruntime refuses (docs/FUZZING.md, "ONNX graphs"): the numbers of the
//! graphs it accepts are checked against onnxruntime by `tests/reference.rs`.

use super::*;
use pb::{ATTR_FLOAT, ATTR_INT, ATTR_INTS, ATTR_STRING};

pub(super) const I: usize = 4;
pub(super) const H: usize = 5;

pub(super) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        r#type: ATTR_INT,
        ..Default::default()
    }
}

pub(super) fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: ATTR_INTS,
        ..Default::default()
    }
}

pub(super) fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: ATTR_STRING,
        ..Default::default()
    }
}

pub(super) fn floats(name: &str, dims: &[usize]) -> TensorProto {
    let n: usize = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::FLOAT,
        float_data: (0..n).map(|k| ((k * 7 % 11) as f32 - 5.0) / 20.0).collect(),
        ..Default::default()
    }
}

pub(super) fn int64s(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: pb::INT64,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

pub(super) fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: name.into(),
        op_type: op.into(),
        attribute: attrs,
        ..Default::default()
    }
}

/// An LSTM layer `X -> Y` (`dirs` directions) and its weights.
pub(super) fn lstm(dirs: usize, attrs: Vec<AttributeProto>) -> (NodeProto, Vec<TensorProto>) {
    let mut attrs = attrs;
    if !attrs.iter().any(|a| a.name == "hidden_size") {
        attrs.push(int("hidden_size", H as i64));
    }
    if dirs == 2 && !attrs.iter().any(|a| a.name == "direction") {
        attrs.push(string("direction", "bidirectional"));
    }
    let inits = vec![
        floats("W", &[dirs, 4 * H, I]),
        floats("R", &[dirs, 4 * H, H]),
        floats("B", &[dirs, 8 * H]),
    ];
    (
        node("LSTM", "lstm", &["X", "W", "R", "B"], "Y", attrs),
        inits,
    )
}

/// Parses a graph whose only input is `X` (declared `input_type` when given) and whose output
/// is `out`.
pub(super) fn parse_graph(
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input_type: Option<pb::TypeProto>,
    out: &str,
) -> Result<Model, String> {
    parse_outputs(opset, nodes, inits, input_type, &[out])
}

/// [`parse_graph`] with the graph outputs `outs`, in order.
pub(super) fn parse_outputs(
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input_type: Option<pb::TypeProto>,
    outs: &[&str],
) -> Result<Model, String> {
    let model = pb::ModelProto {
        ir_version: 8,
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![pb::ValueInfoProto {
                name: "X".into(),
                r#type: input_type,
            }],
            output: (outs.iter())
                .map(|&name| pb::ValueInfoProto {
                    name: name.into(),
                    r#type: None,
                })
                .collect(),
            ..Default::default()
        }),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        ..Default::default()
    };
    parse("m.onnx", &model.encode_to_vec()).map_err(|e| e.to_string())
}

/// LSTM -> Squeeze -> MatMul [H, 3] -> `tail` (ops after the dense layer), opset `opset`.
fn head_graph(opset: i64, tail: Vec<NodeProto>, extra: Vec<TensorProto>) -> Result<Model, String> {
    let (l, mut inits) = lstm(1, vec![]);
    let squeeze = if opset < 13 {
        node("Squeeze", "sq", &["Y"], "Ys", vec![ints("axes", &[1])])
    } else {
        inits.push(int64s("one", &[1]));
        node("Squeeze", "sq", &["Y", "one"], "Ys", vec![])
    };
    inits.push(floats("Wd", &[H, 3]));
    inits.extend(extra);
    let out = tail.last().map_or("Z".to_string(), |n| n.output[0].clone());
    let mut nodes = vec![
        l,
        squeeze,
        node("MatMul", "dense", &["Ys", "Wd"], "Z", vec![]),
    ];
    nodes.extend(tail);
    parse_graph(opset, nodes, inits, None, &out)
}

#[test]
fn softmax_takes_the_opsets_default_axis() {
    let softmax = || vec![node("Softmax", "sm", &["Z"], "P", vec![])];
    // Before opset 13 the default axis is 1, over batch and classes: not the per-class softmax.
    for opset in [7, 11, 12] {
        let err = head_graph(opset, softmax(), vec![]).unwrap_err();
        assert!(
            err.contains(&format!("(the default in opset {opset})")),
            "{err}"
        );
    }
    assert!(head_graph(13, softmax(), vec![]).is_ok());
    let last = vec![node("Softmax", "sm", &["Z"], "P", vec![int("axis", -1)])];
    assert!(head_graph(11, last, vec![]).is_ok());
    let two = vec![node("Softmax", "sm", &["Z"], "P", vec![int("axis", 2)])];
    assert!(head_graph(11, two, vec![]).is_ok());
}

#[test]
fn a_bias_must_have_one_value_per_output_feature() {
    for (dims, ok) in [
        (vec![3], true),
        (vec![1, 3], true),
        (vec![1, 1, 3], true),
        (vec![3, 1], false),
        (vec![1, 3, 1], false),
        (vec![2, 3], false),
    ] {
        let add = vec![node("Add", "add", &["Z", "bd"], "Zb", vec![])];
        let got = head_graph(17, add, vec![floats("bd", &dims)]);
        assert_eq!(got.is_ok(), ok, "bias {dims:?}: {got:?}");
    }
}

/// Dense layers chain: `fc2(relu(fc1 + b1) + b2)` is read as two layers with their biases and
/// activations; an activation before any dense layer, twice after one, or a bias after an
/// activation is refused, naming the node.
#[test]
fn a_head_may_have_several_dense_layers() {
    let two = |mid: &str, extra: Vec<NodeProto>| {
        let mut tail = vec![
            node("Add", "b1", &["Z", "bd"], "Zb", vec![]),
            node(mid, "act1", &["Zb"], "A", vec![]),
            node("MatMul", "fc2", &["A", "W2"], "Z2", vec![]),
        ];
        tail.extend(extra);
        let inits = vec![
            floats("bd", &[3]),
            floats("W2", &[3, 2]),
            floats("b2", &[2]),
        ];
        head_graph(17, tail, inits)
    };
    let bias2 = || vec![node("Add", "b2", &["Z2", "b2"], "O", vec![])];
    for (op, act) in [
        ("Relu", HeadActivation::Relu),
        ("Tanh", HeadActivation::Tanh),
    ] {
        let head = two(op, bias2()).unwrap().head.unwrap();
        let shapes: Vec<_> = (head.layers.iter())
            .map(|d| (d.input_size, d.output_size, d.activation, d.bias.len()))
            .collect();
        assert_eq!(
            shapes,
            [(H, 3, act, 3), (3, 2, HeadActivation::None, 2)],
            "{op}"
        );
        assert_eq!(head.layers[1].bias, floats("b2", &[2]).float_data);
    }
    let refused = |tail: Vec<NodeProto>, at: &str, why: &str| {
        let err = two("Relu", tail).unwrap_err();
        assert!(err.contains(at) && err.contains(why), "{err}");
    };
    refused(
        vec![
            node("Sigmoid", "s1", &["Z2"], "S", vec![]),
            node("Relu", "s2", &["S"], "O", vec![]),
        ],
        "node 's2' (Relu)",
        "a second activation after a dense layer",
    );
    refused(
        vec![
            node("Tanh", "t", &["Z2"], "T", vec![]),
            node("Add", "late", &["T", "b2"], "O", vec![]),
        ],
        "node 'late' (Add)",
        "one after its activation",
    );
    let (l, mut inits) = lstm(1, vec![]);
    inits.push(int64s("one", &[1]));
    let nodes = vec![
        l,
        node("Squeeze", "sq", &["Y", "one"], "Ys", vec![]),
        node("Relu", "early", &["Ys"], "R", vec![]),
    ];
    let err = parse_graph(17, nodes, inits, None, "R").unwrap_err();
    assert!(
        err.contains("node 'early' (Relu)") && err.contains("only after a dense layer"),
        "{err}"
    );
}

/// A bidirectional LSTM, its Y transposed by `perm` and reshaped to `shape`.
fn merged(perm: &[i64], shape: &[i64]) -> Result<Model, String> {
    merged_from(perm, shape, None)
}

/// [`merged`] with the graph input declared as `input_type`.
pub(super) fn merged_from(
    perm: &[i64],
    shape: &[i64],
    input_type: Option<pb::TypeProto>,
) -> Result<Model, String> {
    let (l, mut inits) = lstm(2, vec![]);
    inits.push(int64s("shape", shape));
    let nodes = vec![
        l,
        node("Transpose", "t", &["Y"], "Yt", vec![ints("perm", perm)]),
        node("Reshape", "merge", &["Yt", "shape"], "Ym", vec![]),
    ];
    parse_graph(17, nodes, inits, input_type, "Ym")
}

#[test]
fn directions_merge_only_before_features() {
    assert!(merged(&[0, 2, 1, 3], &[0, 0, -1]).is_ok());
    // [steps, batch, features, directions] would interleave the two directions' units.
    let err = merged(&[0, 2, 3, 1], &[0, 0, -1]).unwrap_err();
    assert!(err.contains("interleaves"), "{err}");
}

#[test]
fn literal_sizes_fix_the_inputs_steps_and_batch() {
    let m = merged(&[0, 2, 1, 3], &[6, 3, 2 * H as i64]).unwrap();
    assert_eq!(m.fixed.steps, Some((6, "node 'merge'".to_string())));
    assert_eq!(m.fixed.batch, Some((3, "node 'merge'".to_string())));
    let m = merged(&[0, 2, 1, 3], &[0, 0, -1]).unwrap();
    assert_eq!(m.fixed, FixedSizes::default());
    // Two literal sizes for one axis contradict each other.
    let (l, mut inits) = lstm(2, vec![]);
    inits.extend([int64s("a", &[6, 3, -1]), int64s("b", &[7, 3, -1])]);
    let nodes = vec![
        l,
        node(
            "Transpose",
            "t",
            &["Y"],
            "Yt",
            vec![ints("perm", &[0, 2, 1, 3])],
        ),
        node("Reshape", "first", &["Yt", "a"], "Y1", vec![]),
        node("Reshape", "second", &["Y1", "b"], "Y2", vec![]),
    ];
    let err = parse_graph(17, nodes, inits, None, "Y2").unwrap_err();
    assert!(
        err.contains("fixes the steps to 7, but node 'first' fixed them to 6"),
        "{err}"
    );
}

#[test]
fn malformed_or_unknown_attributes_are_refused() {
    let float_one = |name: &str| AttributeProto {
        name: name.into(),
        f: 1.0,
        r#type: ATTR_FLOAT,
        ..Default::default()
    };
    for (attrs, want) in [
        (vec![float_one("input_forget")], "'input_forget' is a FLOAT"),
        (vec![float_one("layout")], "'layout' is a FLOAT"),
        (
            vec![
                string("direction", "forward"),
                string("direction", "reverse"),
            ],
            "'direction' is given twice",
        ),
        (vec![int("foo", 3)], "'foo' is not an attribute of LSTM"),
    ] {
        let (l, inits) = lstm(1, attrs);
        let err = parse_graph(17, vec![l], inits, None, "Y").unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn activations_are_three_per_direction() {
    // onnxruntime refuses any other count ("activation_func_names.size() ==
    // num_directions*3"), defaults included; an empty list is the defaults there.
    let acts = |n: usize| AttributeProto {
        name: "activations".into(),
        strings: (0..n)
            .map(|k| ["Sigmoid", "Tanh", "Tanh"][k % 3].as_bytes().to_vec())
            .collect(),
        r#type: pb::ATTR_STRINGS,
        ..Default::default()
    };
    for (dirs, n, ok) in [
        (1, 3, true),
        (2, 6, true),
        (1, 0, true),
        (2, 0, true),
        (1, 6, false),
        (1, 9, false),
        (2, 3, false),
    ] {
        let (l, inits) = lstm(dirs, vec![acts(n)]);
        match parse_graph(17, vec![l], inits, None, "Y") {
            Ok(_) => assert!(ok, "{dirs} direction(s), {n} activations accepted"),
            Err(e) => {
                assert!(!ok, "{e}");
                let want = format!("{n} entries, expected 3 per direction ({})", 3 * dirs);
                assert!(e.contains(&want), "{e}");
            }
        }
    }
}

#[test]
fn an_initial_state_sized_by_the_steps_is_refused() {
    // ConstantOfShape([1, Shape(X)[axis], H]): the batch (axis 1) is what onnxruntime checks
    // the state against; the steps (axis 0) run only when T = N there.
    for (axis, ok) in [(1, true), (0, false)] {
        let (mut l, mut inits) = lstm(1, vec![]);
        l.input.extend(["".into(), "h0".into(), "h0".into()]);
        let index = TensorProto {
            name: "axis".into(),
            dims: vec![],
            data_type: pb::INT64,
            int64_data: vec![axis],
            ..Default::default()
        };
        inits.extend([
            index,
            int64s("ax0", &[0]),
            int64s("one", &[1]),
            int64s("h", &[H as i64]),
        ]);
        let nodes = vec![
            node("Shape", "shape", &["X"], "sx", vec![]),
            node("Gather", "size", &["sx", "axis"], "n", vec![int("axis", 0)]),
            node("Unsqueeze", "u", &["n", "ax0"], "n1", vec![]),
            node(
                "Concat",
                "dims",
                &["one", "n1", "h"],
                "shp",
                vec![int("axis", 0)],
            ),
            node("ConstantOfShape", "zeros", &["shp"], "h0", vec![]),
            l,
        ];
        match parse_graph(17, nodes, inits, None, "Y") {
            Ok(_) => assert!(ok, "a state sized by axis {axis} accepted"),
            Err(e) => {
                assert!(!ok, "{e}");
                assert!(e.contains("initial_h"), "{e}");
                assert!(e.contains("the input's steps, not its batch"), "{e}");
            }
        }
    }
}

#[test]
fn initial_states_from_strided_and_attribute_slices() {
    // initial_h [1, 3, H] from a [1, 3, 2H] tensor filled with 0.5: every other entry
    // (Slice-10's steps input), or the first H (Slice-1's attributes).
    for opset in [9, 17] {
        let mut inits = vec![int64s("full", &[1, 3, 2 * H as i64])];
        let slice = if opset < 10 {
            let attrs = vec![
                ints("starts", &[0]),
                ints("ends", &[H as i64]),
                ints("axes", &[2]),
            ];
            node("Slice", "s", &["F"], "h0", attrs)
        } else {
            inits.extend([
                int64s("st", &[0]),
                int64s("en", &[2 * H as i64]),
                int64s("ax", &[2]),
                int64s("sp", &[2]),
            ]);
            node("Slice", "s", &["F", "st", "en", "ax", "sp"], "h0", vec![])
        };
        let value = TensorProto {
            dims: vec![1],
            data_type: pb::FLOAT,
            float_data: vec![0.5],
            ..Default::default()
        };
        let fill = AttributeProto {
            name: "value".into(),
            t: Some(value),
            r#type: pb::ATTR_TENSOR,
            ..Default::default()
        };
        let (mut l, w) = lstm(1, vec![]);
        inits.extend(w);
        l.input.extend(["".into(), "h0".into()]);
        let nodes = vec![
            node("ConstantOfShape", "c", &["full"], "F", vec![fill]),
            slice,
            l,
        ];
        let m = parse_graph(opset, nodes, inits, None, "Y").unwrap();
        assert_eq!(m.layers[0].cells[0].h0, Some(vec![0.5; H]), "opset {opset}");
        assert_eq!(m.fixed.batch, Some((3, "node 'lstm'".to_string())));
    }
}

#[test]
fn slices_follow_onnx_clamping() {
    // n = 10: [0, 10) by 2 has 5; by 3 has 4; backwards from the end by -1 has 10; by -2 has 5.
    for (s, e, step, len) in [
        (0, 10, 2, 5),
        (0, 10, 3, 4),
        (-1, i64::MIN, -1, 10),
        (9, -11, -2, 5),
        (2, 1, 1, 0),
        (i64::MIN, i64::MAX, 1, 10),
    ] {
        assert_eq!(
            shapes::slice_len(10, s, e, step),
            Ok(len),
            "{s}..{e} by {step}"
        );
    }
    assert!(shapes::slice_len(10, 0, 5, 0).is_err());
    assert_eq!(shapes::slice_len(0, 0, -1, -1), Ok(0));
}

#[test]
fn the_declared_input_is_checked() {
    let typed = |elem: i32, dims: &[Option<i64>]| pb::TypeProto {
        tensor_type: Some(pb::TensorTypeProto {
            elem_type: elem,
            shape: Some(pb::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|d| pb::DimensionProto {
                        dim_value: *d,
                        dim_param: d.is_none().then(|| "T".to_string()),
                    })
                    .collect(),
            }),
        }),
    };
    for (t, want) in [
        (
            typed(pb::INT32, &[None, None, Some(4)]),
            Some("token ids (int32) of rank 3"),
        ),
        (
            typed(pb::INT32 - 1, &[None, None, Some(4)]),
            Some("element type 5 (int16)"),
        ),
        (typed(pb::FLOAT, &[None, Some(4)]), Some("has rank 2")),
        (
            typed(pb::FLOAT, &[None, None, Some(7)]),
            Some("features (7)"),
        ),
        (typed(pb::FLOAT, &[None, None, Some(4)]), None),
        (typed(0, &[None, None, None]), None),
    ] {
        let (l, inits) = lstm(1, vec![]);
        let got = parse_graph(17, vec![l], inits, Some(t), "Y");
        match want {
            Some(w) => assert!(got.as_ref().unwrap_err().contains(w), "{got:?}"),
            None => assert!(got.is_ok(), "{got:?}"),
        }
    }
}

#[test]
fn messages_show_shapes_not_rust_values() {
    let err = merged(&[0, 2, 1, 3], &[5, 0, 7]).unwrap_err();
    assert!(
        err.contains("[5, 0, 7]") && err.contains("10 features"),
        "{err}"
    );
    for leak in ["Known(", "Feat(", "Some(", "Dirs("] {
        assert!(!err.contains(leak), "{err}");
    }
}

/// float64 weights are rounded to float32; one beyond float32's range was reported as a
/// non-finite value of the model ("NaN or Inf"), though the file holds none.
#[test]
fn float64_weights_are_rounded_and_their_range_checked() {
    let (l, mut inits) = lstm(1, vec![]);
    let wide = |name: &str, v: Vec<f64>| TensorProto {
        name: name.into(),
        dims: vec![1, 4 * H as i64, I as i64],
        data_type: pb::DOUBLE,
        double_data: v,
        ..Default::default()
    };
    let third = vec![1.0 / 3.0; 4 * H * I];
    inits[0] = wide("W", third.clone());
    let m = parse_graph(7, vec![l.clone()], inits.clone(), None, "Y").unwrap();
    assert!(m.layers[0].cells[0]
        .w
        .iter()
        .all(|&w| w == (1.0f64 / 3.0) as f32));
    let mut far = third;
    far[2] = -1e39;
    inits[0] = wide("W", far);
    let e = parse_graph(7, vec![l], inits, None, "Y").unwrap_err();
    assert!(
        e.contains("initializer 'W'") && e.contains("-1e39 at index 2 is beyond float32's range"),
        "{e}"
    );
}
