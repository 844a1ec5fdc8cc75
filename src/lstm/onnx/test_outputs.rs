//! The importer's reading of a whole graph: which graph output is the model's result, the
//! input's layout (time- or batch-major), and the ops on an LSTM's last states.

use super::tests::{floats, int, int64s, ints, lstm, node, parse_graph, parse_outputs, H, I};
use super::*;
use crate::lstm::HeadInput;

#[test]
fn nodes_that_feed_no_output_are_skipped() {
    let (l, inits) = lstm(1, vec![]);
    let dead = node("Relu", "unused", &["Y"], "R", vec![]);
    assert!(parse_graph(17, vec![l, dead], inits, None, "Y").is_ok());
}

#[test]
fn the_last_layers_sequence_is_the_result_among_the_graph_outputs() {
    // Two layers whose LSTM nodes also give Y_h and Y_c, as `torch.onnx.export` of a bare
    // `nn.LSTM` does: the result is the second layer's Y wherever it stands among the graph
    // outputs; the others are not computed. Only states, or only the first layer: refused.
    let (mut l1, mut inits) = lstm(1, vec![]);
    l1.output = vec!["Y".into(), "Yh".into(), "Yc".into()];
    inits.push(int64s("one", &[1]));
    let squeeze = node("Squeeze", "sq", &["Y", "one"], "S", vec![]);
    let (mut l2, _) = lstm(1, vec![]);
    l2.name = "lstm2".into();
    l2.input = vec!["S".into(), "W2".into(), "R2".into()];
    l2.output = vec!["Y2".into(), "Yh2".into(), "Yc2".into()];
    inits.push(floats("W2", &[1, 4 * H, H]));
    inits.push(floats("R2", &[1, 4 * H, H]));
    let nodes = vec![l1, squeeze, l2];
    let graph = |outs: &[&str]| parse_outputs(17, nodes.clone(), inits.clone(), None, outs);
    for outs in [
        &["Y2", "Yh2", "Yc2"][..],
        &["Yh2", "Yc2", "Y2"],
        &["Y", "Y2"],
        &["Yh", "Y2", "Y"],
    ] {
        let m = graph(outs).unwrap_or_else(|e| panic!("{outs:?}: {e}"));
        assert_eq!(m.layers.len(), 2, "{outs:?}");
    }
    let err = graph(&["Y", "Yh2"]).unwrap_err();
    assert!(
        err.contains("graph output 'Y' is not the result of the last layer"),
        "{err}"
    );
    let err = graph(&["Yh2", "Yc2"]).unwrap_err();
    assert!(
        err.contains("'Yh2' is an LSTM's last state (Y_h / Y_c)"),
        "{err}"
    );
}

#[test]
fn a_batch_major_input_is_read_through_its_transpose() {
    // torch's `batch_first = True` export: X [N, T, I] -> Transpose -> LSTM -> Squeeze ->
    // Transpose back. Read as batch-major; its failures further on are its own.
    let graph = |after: Vec<NodeProto>, out: &str| {
        let (mut l, mut inits) = lstm(1, vec![]);
        l.input[0] = "Xt".into();
        inits.push(int64s("one", &[1]));
        let mut nodes = vec![
            node(
                "Transpose",
                "to_tni",
                &["X"],
                "Xt",
                vec![ints("perm", &[1, 0, 2])],
            ),
            l,
            node("Squeeze", "sq", &["Y", "one"], "S", vec![]),
            node(
                "Transpose",
                "to_nti",
                &["S"],
                "Z",
                vec![ints("perm", &[1, 0, 2])],
            ),
        ];
        nodes.extend(after);
        parse_graph(17, nodes, inits, None, out)
    };
    let m = graph(vec![], "Z").unwrap();
    assert_eq!((m.layers.len(), m.layers[0].input_size), (1, I));
    let relu = node("Relu", "relu_after", &["Z"], "R", vec![]);
    let err = graph(vec![relu], "R").unwrap_err();
    assert!(err.contains("node 'relu_after' (Relu)"), "{err}");
    // A failure on an LSTM input checked after X (here B) is the reading's own, in either
    // layout: the reading whose LSTM took X got further.
    let bad_b = |batch_major: bool| {
        let (mut l, mut inits) = lstm(1, vec![]);
        inits[2] = floats("B", &[1, 8 * H + 1]);
        let mut nodes = vec![];
        if batch_major {
            l.input[0] = "Xt".into();
            let perm = vec![ints("perm", &[1, 0, 2])];
            nodes.push(node("Transpose", "to_tni", &["X"], "Xt", perm));
        }
        nodes.push(l);
        parse_graph(17, nodes, inits, None, "Y").unwrap_err()
    };
    for batch_major in [false, true] {
        let err = bad_b(batch_major);
        assert!(
            err.contains("node 'lstm'") && err.contains("B has shape"),
            "{err}"
        );
    }
    // Both readings fail at the same node with the same progress: the time-major one speaks.
    let squeeze = node("Squeeze", "sq", &["X", "two"], "S", vec![]);
    let err = parse_graph(17, vec![squeeze], vec![int64s("two", &[2])], None, "S").unwrap_err();
    assert!(err.contains("[steps, batch"), "{err}");
}

/// A rank-0 int64 initializer (a Gather index as torch writes `y[:, -1]`).
fn scalar(name: &str, v: i64) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![],
        data_type: pb::INT64,
        int64_data: vec![v],
        ..Default::default()
    }
}

#[test]
fn the_last_step_is_a_gather_along_the_steps() {
    // LSTM -> Squeeze -> [`before`] -> Gather(index `at`, axis `axis`) -> [`after`]; `fc` is a
    // MatMul [H, 3].
    let graph = |at: TensorProto, axis: i64, before: Vec<NodeProto>, after: Vec<NodeProto>| {
        let (l, mut inits) = lstm(1, vec![]);
        inits.extend([int64s("one", &[1]), at, floats("Wd", &[H, 3])]);
        let src = before
            .last()
            .map_or("S", |n| n.output[0].as_str())
            .to_string();
        let gather = node(
            "Gather",
            "last",
            &[&src, "at"],
            "L",
            vec![int("axis", axis)],
        );
        let out = after
            .last()
            .map_or("L", |n| n.output[0].as_str())
            .to_string();
        let nodes = [
            vec![l, node("Squeeze", "sq", &["Y", "one"], "S", vec![])],
            before,
            vec![gather],
            after,
        ]
        .concat();
        parse_graph(17, nodes, inits, None, &out)
    };
    let fc = |from: &str| node("MatMul", "fc", &[from, "Wd"], "Z", vec![]);
    let m = graph(scalar("at", -1), 0, vec![], vec![fc("L")]).unwrap();
    let head = m.head.expect("a head");
    assert_eq!((head.input, head.output_size()), (HeadInput::LastStep, 3));
    // After the dense layer (`fc(y)[-1]`, the same rows): the head's input is the last step.
    let before = vec![fc("S")];
    let m = graph(scalar("at", -1), 0, before, vec![]).unwrap();
    assert_eq!(m.head.map(|h| h.input), Some(HeadInput::LastStep));
    for (at, axis, after, want) in [
        (
            scalar("at", 0),
            0,
            vec![fc("L")],
            "takes step 0; only the last step (index -1)",
        ),
        (
            int64s("at", &[-1]),
            0,
            vec![fc("L")],
            "not a constant scalar",
        ),
        (
            scalar("at", -1),
            1,
            vec![fc("L")],
            "gathers along axis 1 (batch)",
        ),
        (scalar("at", -1), 3, vec![fc("L")], "axis 3 is out of range"),
        (scalar("at", -1), 0, vec![], "without a dense head after it"),
    ] {
        let err = graph(at, axis, vec![], after).unwrap_err();
        assert!(err.contains(want), "{want}: {err}");
    }
    // The directions not merged yet (Y is [steps, directions, batch, features]).
    let (l, mut inits) = lstm(2, vec![]);
    inits.push(scalar("at", -1));
    let gather = node("Gather", "last", &["Y", "at"], "L", vec![int("axis", 0)]);
    let err = parse_graph(17, vec![l, gather], inits, None, "L").unwrap_err();
    assert!(
        err.contains("node 'last' (Gather)") && err.contains("only [batch, features]"),
        "{err}"
    );
    // Part of the sequence by Slice: refused, pointing at the Gather that works.
    let (l, mut inits) = lstm(1, vec![]);
    inits.extend([int64s("s", &[-1]), int64s("e", &[i64::MAX])]);
    let slice = node("Slice", "tail", &["Y", "s", "e"], "L", vec![]);
    let err = parse_graph(17, vec![l, slice], inits, None, "L").unwrap_err();
    assert!(err.contains("`y[:, -1]` (a Gather)"), "{err}");
}

#[test]
fn a_head_on_the_final_states() {
    // Two layers of `dirs` directions, h_n = Concat(Y_h, Y_h2) -> `tail` -> the head's input
    // "F" -> MatMul [width, 3].
    let graph = |dirs: usize, width: usize, tail: Vec<NodeProto>| {
        let (mut l1, mut inits) = lstm(dirs, vec![]);
        l1.output = vec!["Y".into(), "Yh".into()];
        let merge = if dirs == 1 {
            inits.push(int64s("one", &[1]));
            vec![node("Squeeze", "sq", &["Y", "one"], "S", vec![])]
        } else {
            inits.push(int64s("shape", &[0, 0, -1]));
            vec![
                node(
                    "Transpose",
                    "tr",
                    &["Y"],
                    "Yt",
                    vec![ints("perm", &[0, 2, 1, 3])],
                ),
                node("Reshape", "rs", &["Yt", "shape"], "S", vec![]),
            ]
        };
        let (mut l2, _) = lstm(dirs, vec![]);
        l2.name = "lstm2".into();
        l2.input = vec!["S".into(), "W2".into(), "R2".into()];
        l2.output = vec!["Y2".into(), "Yh2".into()];
        inits.extend([
            floats("W2", &[dirs, 4 * H, dirs * H]),
            floats("R2", &[dirs, 4 * H, H]),
            floats("Wd", &[width, 3]),
            scalar("m1", -1),
            scalar("m2", -2),
            scalar("m3", -3),
            int64s("zero", &[0]),
        ]);
        let concat = node("Concat", "h_n", &["Yh", "Yh2"], "Hn", vec![int("axis", 0)]);
        let fc = node("MatMul", "fc", &["F", "Wd"], "Z", vec![]);
        let nodes = [vec![l1], merge, vec![l2, concat], tail, vec![fc]].concat();
        parse_outputs(17, nodes, inits, None, &["Z"])
    };
    let gather = |at: &str, out: &str| {
        let from = if at == "zero" { "Yh2" } else { "Hn" };
        node(
            "Gather",
            &format!("g{out}"),
            &[from, at],
            out,
            vec![int("axis", 0)],
        )
    };
    let cat =
        |a: &str, b: &str, axis: i64| node("Concat", "cat", &[a, b], "F", vec![int("axis", axis)]);
    let final_state = |m: Result<Model, String>| m.map(|m| m.head.map(|h| h.input));
    let want = Ok(Some(HeadInput::FinalState));
    // `fc(h_n[-1])` of one direction; a layer's Y_h squeezed (`h_n.squeeze(0)`).
    assert_eq!(final_state(graph(1, H, vec![gather("m1", "F")])), want);
    let squeeze = node("Squeeze", "sq0", &["Yh2", "zero"], "F", vec![]);
    assert_eq!(final_state(graph(1, H, vec![squeeze])), want);
    let same = node("Identity", "id", &["Hn"], "Hi", vec![]);
    let last = node("Gather", "g", &["Hi", "m1"], "F", vec![int("axis", 0)]);
    assert_eq!(final_state(graph(1, H, vec![same, last])), want);
    // `fc(cat(h_n[-2], h_n[-1]))` of two directions.
    let both = vec![gather("m2", "A"), gather("m1", "B"), cat("A", "B", 1)];
    assert_eq!(final_state(graph(2, 2 * H, both)), want);
    for (dirs, width, tail, what) in [
        (1, H, vec![gather("m2", "F")], "of layer 0 direction 0"),
        (2, H, vec![gather("m1", "F")], "of layer 1 direction 1"),
        (
            2,
            2 * H,
            vec![gather("m1", "A"), gather("m2", "B"), cat("A", "B", 1)],
            "of layer 1 direction 1, layer 1 direction 0",
        ),
        (
            2,
            2 * H,
            vec![gather("m2", "A"), gather("m1", "B"), cat("A", "B", 0)],
            "another part of the states",
        ),
        (
            1,
            H,
            vec![gather("zero", "F")],
            "another part of the states",
        ),
    ] {
        let err = graph(dirs, width, tail).unwrap_err();
        assert!(
            err.contains("node 'fc' (MatMul)") && err.contains(what) && err.contains("fc(h_n[-1])"),
            "{what}: {err}"
        );
    }
}

#[test]
fn ops_on_last_states_alone_are_not_computed_and_the_data_path_may_not_use_them() {
    // h_n = Concat(Y_h of both layers), as torch exports a module that returns it: skipped.
    // Y_h added to the sequence, or fed as the next layer's initial state: refused.
    let (mut l1, mut inits) = lstm(1, vec![]);
    l1.output = vec!["Y".into(), "Yh".into()];
    inits.push(int64s("one", &[1]));
    let (mut l2, _) = lstm(1, vec![]);
    l2.name = "lstm2".into();
    l2.input = vec!["S".into(), "W2".into(), "R2".into()];
    l2.output = vec!["Y2".into(), "Yh2".into()];
    inits.push(floats("W2", &[1, 4 * H, H]));
    inits.push(floats("R2", &[1, 4 * H, H]));
    let base = vec![l1, node("Squeeze", "sq", &["Y", "one"], "S", vec![]), l2];
    let with = |extra: Vec<NodeProto>, outs: &[&str]| {
        let nodes = [base.clone(), extra].concat();
        parse_outputs(17, nodes, inits.clone(), None, outs)
    };
    let concat = node("Concat", "h_n", &["Yh", "Yh2"], "Hn", vec![int("axis", 0)]);
    let relu = node("Relu", "relu_h", &["Hn"], "Hr", vec![]);
    let m = with(vec![concat.clone(), relu], &["Y2", "Hr"]).unwrap();
    assert_eq!(m.layers.len(), 2);
    let add = node("Add", "mix", &["Y2", "Hn"], "Z", vec![]);
    let err = with(vec![concat, add], &["Z"]).unwrap_err();
    assert!(
        err.contains("node 'mix' (Add)") && err.contains("'Hn'"),
        "{err}"
    );
    // A head on h_n, beside the sequence or alone: refused, naming its node.
    for outs in [&["Y2", "Z"][..], &["Z"]] {
        let gather = node("Gather", "last", &["Hn", "one"], "L", vec![int("axis", 0)]);
        let fc = node("MatMul", "fc", &["L", "W2"], "Z", vec![]);
        let concat = node("Concat", "h_n", &["Yh", "Yh2"], "Hn", vec![int("axis", 0)]);
        let err = with(vec![concat, gather, fc], outs).unwrap_err();
        assert!(
            err.contains("node 'fc' (MatMul)")
                && err.contains("a head on an LSTM's last state is supported as"),
            "{err}"
        );
    }
    let stray = node(
        "Concat",
        "h_n",
        &["Yh", "nowhere"],
        "Hn",
        vec![int("axis", 0)],
    );
    let err = with(vec![stray], &["Y2", "Hn"]).unwrap_err();
    assert!(
        err.contains("'nowhere' is not produced by any earlier node"),
        "{err}"
    );
    let mut carried = base.clone();
    carried[2].input.extend(["".into(), "".into(), "Yh".into()]);
    let err = parse_outputs(17, carried, inits.clone(), None, &["Y2"]).unwrap_err();
    assert!(
        err.contains("node 'lstm2'") && err.contains("Y_h / Y_c"),
        "{err}"
    );
}

#[test]
fn the_heads_ops_and_the_result_keep_the_features_last() {
    // LSTM -> Squeeze -> [Gather of the last step] -> MatMul -> Transpose (`perm`) -> `tail`:
    // a softmax or bias after the Transpose acts on another axis in onnxruntime (it was read as
    // the per-feature one, 0.12 and 2.0 off), and a result transposed last is written in
    // another order.
    let graph = |last: bool, perm: &[i64], tail: &str| {
        let (l, mut inits) = lstm(1, vec![]);
        inits.extend([
            int64s("one", &[1]),
            floats("Wd", &[H, 3]),
            floats("bd", &[3]),
        ]);
        inits.push(TensorProto {
            name: "at".into(),
            data_type: pb::INT64,
            int64_data: vec![-1],
            ..Default::default()
        });
        let mut nodes = vec![l, node("Squeeze", "sq", &["Y", "one"], "S", vec![])];
        let from = if last {
            let gather = node("Gather", "last", &["S", "at"], "L", vec![int("axis", 0)]);
            nodes.push(gather);
            "L"
        } else {
            "S"
        };
        nodes.push(node("MatMul", "fc", &[from, "Wd"], "Z", vec![]));
        nodes.push(node(
            "Transpose",
            "tr",
            &["Z"],
            "Zt",
            vec![ints("perm", perm)],
        ));
        let out = match tail {
            "Softmax" => node("Softmax", "tail", &["Zt"], "O", vec![]),
            "Add" => node("Add", "tail", &["Zt", "bd"], "O", vec![]),
            _ => return parse_graph(17, nodes, inits, None, "Zt"),
        };
        nodes.push(out);
        parse_graph(17, nodes, inits, None, "O")
    };
    for (last, perm) in [(true, &[1, 0][..]), (false, &[0, 2, 1])] {
        for tail in ["Softmax", "Add"] {
            let err = graph(last, perm, tail).unwrap_err();
            assert!(
                err.contains(&format!("node 'tail' ({tail})")) && err.contains("features last"),
                "{err}"
            );
        }
        let err = graph(last, perm, "").unwrap_err();
        assert!(
            err.contains("graph output 'Zt' has axes") && err.contains("features last"),
            "{err}"
        );
    }
    assert!(graph(true, &[0, 1], "Softmax").is_ok());
}
