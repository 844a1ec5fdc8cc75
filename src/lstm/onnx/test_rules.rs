//! ONNX's rules for the attributes and constants of the ops the importer reads, on graphs
//! built here: boolean ints (any nonzero value is true), broadcasting of a head's bias, negative
//! axes, the opset that moved Squeeze's and Unsqueeze's axes from an attribute to an input, and
//! literal sizes a graph input declares. Each was read otherwise than onnxruntime does
//! (docs/FUZZING.md, "ONNX graphs").

use super::tests::{floats, int, int64s, ints, lstm, merged_from, node, parse_graph, H, I};
use super::*;

/// LSTM -> its Y_h squeezed on axis 0 (`h_n[0]`, "F" [batch, H]) -> `head` (giving "Z").
fn on_final(head: Vec<NodeProto>, extra: Vec<TensorProto>) -> Result<Model, String> {
    let (mut l, mut inits) = lstm(1, vec![]);
    l.output = vec!["Y".into(), "Yh".into()];
    inits.push(int64s("zero", &[0]));
    inits.extend(extra);
    let mut nodes = vec![l, node("Squeeze", "sq", &["Yh", "zero"], "F", vec![])];
    nodes.extend(head);
    parse_graph(17, nodes, inits, None, "Z")
}

fn float_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::FLOAT,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

/// The head's first dense layer.
fn dense(m: Model) -> Dense {
    m.head.expect("a head").layers.remove(0)
}

#[test]
fn gemm_transposes_b_for_any_nonzero_trans_b() {
    // B is [3, H]: transposed it maps H features to 3. transB=2 was read as not transposed
    // (a refusal here; with a square B, the wrong numbers).
    let b = floats("B3", &[3, H]);
    for trans_b in [1, 2, -1] {
        let gemm = node(
            "Gemm",
            "fc",
            &["F", "B3"],
            "Z",
            vec![int("transB", trans_b)],
        );
        let d = dense(on_final(vec![gemm], vec![b.clone()]).unwrap());
        assert_eq!((d.input_size, d.output_size), (H, 3), "transB={trans_b}");
        // Stored [out, in]: B itself.
        assert_eq!(d.weight, b.float_data, "transB={trans_b}");
    }
    let gemm = node("Gemm", "fc", &["F", "B3"], "Z", vec![int("transB", 0)]);
    let err = on_final(vec![gemm], vec![b]).unwrap_err();
    assert!(err.contains("weight has shape [3, 5]"), "{err}");
}

/// transA reads A transposed: a [features, batch] value (a Transpose of the last step) is
/// read as [batch, features], the same product (onnxruntime's numbers on rows:
/// tests/reference.rs, gemm_trans_a). It was refused for every A. On [batch, features]
/// itself, the last step or the final state, it would sum sequences as features: refused,
/// saying so; a Transpose of a final state is not followed (refused as any other op on it).
#[test]
fn gemm_reads_a_transposed_input_for_any_nonzero_trans_a() {
    let b = floats("B3", &[H, 3]);
    // LSTM -> Squeeze -> the last step L [batch, H] -> `head`.
    let on_last = |head: Vec<NodeProto>| {
        let (l, mut inits) = lstm(1, vec![]);
        let mut last = int64s("last", &[-1]);
        last.dims.clear();
        inits.extend([int64s("axis1", &[1]), last, b.clone()]);
        let mut nodes = vec![
            l,
            node("Squeeze", "sq", &["Y", "axis1"], "S", vec![]),
            node("Gather", "g", &["S", "last"], "L", vec![int("axis", 0)]),
        ];
        nodes.extend(head);
        parse_graph(17, nodes, inits, None, "Z")
    };
    let transpose = |from: &str| node("Transpose", "t", &[from], "T", vec![ints("perm", &[1, 0])]);
    for trans_a in [1, 2, -1] {
        let gemm = node(
            "Gemm",
            "fc",
            &["T", "B3"],
            "Z",
            vec![int("transA", trans_a)],
        );
        let d = dense(on_last(vec![transpose("L"), gemm]).unwrap());
        assert_eq!((d.input_size, d.output_size), (H, 3), "transA={trans_a}");
    }
    let gemm = node("Gemm", "fc", &["L", "B3"], "Z", vec![int("transA", 1)]);
    let err = on_last(vec![gemm]).unwrap_err();
    assert!(
        err.contains("transA=1 reads the value transposed, as [features (5), batch]"),
        "{err}"
    );
    let gemm = node("Gemm", "fc", &["F", "B3"], "Z", vec![int("transA", 2)]);
    let err = on_final(vec![gemm], vec![b.clone()]).unwrap_err();
    assert!(
        err.contains("transA=2 reads the LSTM's last state, [batch, features], transposed"),
        "{err}"
    );
    let gemm = node("Gemm", "fc", &["T", "B3"], "Z", vec![int("transA", 1)]);
    let err = on_final(vec![transpose("F"), gemm], vec![b]).unwrap_err();
    assert!(
        err.contains("an op the importer does not follow on states"),
        "{err}"
    );
}

#[test]
fn a_one_value_bias_is_added_to_every_output() {
    // A 0-d scalar, [1] and [1, 1] broadcast to every output feature, after a MatMul (Add)
    // and as Gemm's C; they were refused.
    for dims in [&[][..], &[1], &[1, 1]] {
        let b = float_tensor("b", dims, &[0.7]);
        let head = vec![
            node("MatMul", "fc", &["F", "Wd"], "Zm", vec![]),
            node("Add", "add", &["Zm", "b"], "Z", vec![]),
        ];
        let m = on_final(head, vec![floats("Wd", &[H, 3]), b.clone()]);
        assert_eq!(dense(m.unwrap()).bias, vec![0.7; 3], "Add {dims:?}");
        let gemm = node("Gemm", "fc", &["F", "Wd", "b"], "Z", vec![]);
        let m = on_final(vec![gemm], vec![floats("Wd", &[H, 3]), b]);
        assert_eq!(dense(m.unwrap()).bias, vec![0.7; 3], "Gemm C {dims:?}");
    }
    // One value per feature is kept; a column [3, 1] (per row) or an added axis is refused.
    let per_feature = float_tensor("b", &[3], &[1.0, 2.0, 3.0]);
    let gemm = node("Gemm", "fc", &["F", "Wd", "b"], "Z", vec![]);
    let m = on_final(vec![gemm.clone()], vec![floats("Wd", &[H, 3]), per_feature]);
    assert_eq!(dense(m.unwrap()).bias, [1.0, 2.0, 3.0]);
    for dims in [&[3, 1][..], &[1, 1, 1]] {
        let b = floats("b", &dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
        let err = on_final(vec![gemm.clone()], vec![floats("Wd", &[H, 3]), b]).unwrap_err();
        assert!(err.contains("bias has shape"), "{dims:?}: {err}");
    }
}

#[test]
fn a_negative_axis_counts_from_the_end() {
    // h_n [1, batch, H] gathered at index 0 on axis -3 (axis 0): the final state.
    let at0 = TensorProto {
        name: "i0".into(),
        dims: vec![],
        data_type: pb::INT64,
        int64_data: vec![0],
        ..Default::default()
    };
    let (mut l, mut inits) = lstm(1, vec![]);
    l.output = vec!["Y".into(), "Yh".into()];
    inits.extend([at0, floats("Wd", &[H, 3])]);
    for (axis, ok) in [(0, true), (-3, true), (1, false), (-2, false)] {
        let nodes = vec![
            l.clone(),
            node("Gather", "g", &["Yh", "i0"], "F", vec![int("axis", axis)]),
            node("MatMul", "fc", &["F", "Wd"], "Z", vec![]),
        ];
        let got = parse_graph(17, nodes, inits.clone(), None, "Z");
        assert_eq!(got.is_ok(), ok, "axis {axis}: {got:?}");
    }
}

/// LSTM -> Squeeze -> S [steps, batch, H] -> Reshape(S, Concat(Shape(S)[0:2],
/// Unsqueeze(Shape(S)[2]))) -> "Z", the Squeeze and Unsqueeze given their axes by `axes_as`
/// ("input" or "attr") at `opset`, the Unsqueeze's axes `unsqueeze`.
fn squeezes(opset: i64, axes_as: &str, unsqueeze: i64) -> Result<Model, String> {
    let (l, mut inits) = lstm(1, vec![]);
    let two = TensorProto {
        name: "two".into(),
        dims: vec![],
        data_type: pb::INT64,
        int64_data: vec![2],
        ..Default::default()
    };
    inits.extend([
        two,
        int64s("one", &[1]),
        int64s("zero", &[0]),
        int64s("two1", &[2]),
        int64s("ax", &[unsqueeze]),
    ]);
    let (sq, unsq) = if axes_as == "input" {
        (
            node("Squeeze", "sq", &["Y", "one"], "S", vec![]),
            node("Unsqueeze", "unsq", &["h", "ax"], "hv", vec![]),
        )
    } else {
        (
            node("Squeeze", "sq", &["Y"], "S", vec![ints("axes", &[1])]),
            node(
                "Unsqueeze",
                "unsq",
                &["h"],
                "hv",
                vec![ints("axes", &[unsqueeze])],
            ),
        )
    };
    let nodes = vec![
        l,
        sq,
        node("Shape", "shape", &["S"], "D", vec![]),
        node("Gather", "last", &["D", "two"], "h", vec![int("axis", 0)]),
        unsq,
        node("Slice", "lead", &["D", "zero", "two1"], "L", vec![]),
        node("Concat", "cat", &["L", "hv"], "T", vec![int("axis", 0)]),
        node("Reshape", "to", &["S", "T"], "Z", vec![]),
    ];
    parse_graph(opset, nodes, inits, None, "Z")
}

#[test]
fn squeeze_and_unsqueeze_take_their_axes_as_the_opset_defines() {
    // An attribute before opset 13, input 1 from 13; the other way onnxruntime refuses.
    assert!(squeezes(11, "attr", 0).is_ok());
    assert!(squeezes(13, "input", 0).is_ok());
    assert!(squeezes(17, "input", -1).is_ok());
    let err = squeezes(11, "input", 0).unwrap_err();
    assert!(
        err.contains("node 'sq' (Squeeze): takes its axes as input 1 ('one'), but before opset 13"),
        "{err}"
    );
    let err = squeezes(17, "attr", 0).unwrap_err();
    assert!(
        err.contains("node 'sq' (Squeeze): attribute 'axes' is not an attribute of Squeeze (opset 17); from opset 13 the axes are input 1"),
        "{err}"
    );
    // The Unsqueeze alone the other way (the Squeeze as its opset defines).
    let unsq = node("Unsqueeze", "unsq", &["h", "ax"], "hv", vec![]);
    let err = checks::check_attributes(&unsq, 12).unwrap_err();
    assert!(err.contains("takes its axes as input 1 ('ax')"), "{err}");
    let unsq = node("Unsqueeze", "unsq", &["h"], "hv", vec![ints("axes", &[0])]);
    let err = checks::check_attributes(&unsq, 13).unwrap_err();
    assert!(
        err.contains("attribute 'axes' is not an attribute"),
        "{err}"
    );
    // Unsqueeze requires its axes; a scalar's are [0] or [-1].
    let bare = node("Unsqueeze", "unsq", &["h"], "hv", vec![]);
    for opset in [11, 13] {
        let err = checks::check_attributes(&bare, opset).unwrap_err();
        assert!(err.contains("Unsqueeze requires"), "{err}");
    }
    let err = squeezes(17, "input", 1).unwrap_err();
    assert!(
        err.contains("node 'unsq' (Unsqueeze): unsqueezes a scalar at axes [1]"),
        "{err}"
    );
    // Concat requires its axis; a shape vector's is 0 or -1.
    let cat = node("Concat", "cat", &["L", "hv"], "T", vec![]);
    let err = checks::check_attributes(&cat, 17).unwrap_err();
    assert!(err.contains("has no attribute 'axis'"), "{err}");
    // A Squeeze without axes removes every axis of size 1 (onnxruntime), steps or batch too
    // where the input has one: refused, naming why (it squeezed nothing, and a later node
    // failed on the direction axis left in).
    for opset in [11, 17] {
        let (l, inits) = lstm(1, vec![]);
        let nodes = vec![l, node("Squeeze", "sq", &["Y"], "S", vec![])];
        let err = parse_graph(opset, nodes, inits, None, "S").unwrap_err();
        assert!(
            err.contains("node 'sq' (Squeeze): squeezes every axis of size 1 of [steps, directions (1), batch, features (5)] (no axes given)"),
            "{err}"
        );
    }
}

#[test]
fn attributes_are_checked_against_the_opset_that_defines_them() {
    for (op, attr, before) in [
        ("LSTM", int("layout", 0), 14),
        ("Reshape", int("allowzero", 0), 14),
        ("Shape", int("start", 0), 15),
    ] {
        let n = node(op, "n", &["X"], "Y", vec![attr.clone()]);
        let err = checks::check_attributes(&n, before - 1).unwrap_err();
        assert!(err.contains("it is defined from opset"), "{op}: {err}");
        assert!(checks::check_attributes(&n, before).is_ok(), "{op}");
    }
}

#[test]
fn reshape_allows_zero_only_for_allowzero_one() {
    // onnxruntime reads allowzero as `== 1`: allowzero=2 copies the input's size for a 0, as 0
    // does (it was refused as allowzero=1).
    for (allowzero, ok) in [(0, true), (2, true), (-1, true), (1, false)] {
        let (l, mut inits) = lstm(1, vec![]);
        inits.extend([int64s("one", &[1]), int64s("shape", &[0, 0, -1])]);
        let nodes = vec![
            l,
            node("Squeeze", "sq", &["Y", "one"], "S", vec![]),
            node(
                "Reshape",
                "rs",
                &["S", "shape"],
                "Z",
                vec![int("allowzero", allowzero)],
            ),
        ];
        let got = parse_graph(17, nodes, inits, None, "Z");
        assert_eq!(got.is_ok(), ok, "allowzero={allowzero}: {got:?}");
    }
}

/// A float32 graph input declared with `dims` (`None`: a symbolic size).
fn declared_float(dims: &[Option<i64>]) -> pb::TypeProto {
    pb::TypeProto {
        tensor_type: Some(pb::TensorTypeProto {
            elem_type: pb::FLOAT,
            shape: Some(pb::TensorShapeProto {
                dim: (dims.iter())
                    .map(|d| pb::DimensionProto {
                        dim_value: *d,
                        dim_param: d.is_none().then(|| "N".to_string()),
                    })
                    .collect(),
            }),
        }),
    }
}

#[test]
fn a_graph_input_declared_with_literal_sizes_fixes_them() {
    // onnxruntime refuses an input of other sizes than a graph input declares
    // ("Got invalid dimensions for input"), with no node fixing them.
    let parse = |dims: &[Option<i64>], nodes: Vec<NodeProto>, inits, out: &str| {
        parse_graph(17, nodes, inits, Some(declared_float(dims)), out)
    };
    let (l, w) = lstm(1, vec![]);
    let m = parse(&[Some(5), Some(2), Some(I as i64)], vec![l], w, "Y").unwrap();
    let by = "graph input 'X'".to_string();
    assert_eq!(m.fixed.steps, Some((5, by.clone())));
    assert_eq!(m.fixed.batch, Some((2, by.clone())));
    // One axis literal, the other symbolic.
    let (l, w) = lstm(1, vec![]);
    let m = parse(&[None, Some(2), Some(I as i64)], vec![l], w, "Y").unwrap();
    assert_eq!((m.fixed.steps, m.fixed.batch), (None, Some((2, by))));
    // A node that fixes another size contradicts the declaration.
    let declared = declared_float(&[Some(5), None, Some(I as i64)]);
    let err = merged_from(&[0, 2, 1, 3], &[6, 2, -1], Some(declared)).unwrap_err();
    assert!(
        err.contains(
            "node 'merge' (Reshape): fixes the steps to 6, but graph input 'X' fixed them to 5"
        ),
        "{err}"
    );
}
