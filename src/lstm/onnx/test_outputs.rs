//! The importer's reading of a whole graph: which graph output is the model's result, the
//! input's layout (time- or batch-major), and the ops on an LSTM's last states.

use super::tests::{floats, int, int64s, ints, lstm, node, parse_graph, parse_outputs, H, I};
use super::*;

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

#[test]
fn a_head_on_one_step_is_refused_with_the_export_that_works() {
    // `fc(y[-1])`: a Gather of the last step before the head.
    let (l, mut inits) = lstm(1, vec![]);
    inits.push(int64s("last", &[-1]));
    let gather = node(
        "Gather",
        "last_step",
        &["Y", "last"],
        "L",
        vec![int("axis", 0)],
    );
    let err = parse_graph(17, vec![l, gather], inits, None, "L").unwrap_err();
    assert!(
        err.contains("node 'last_step' (Gather): operator Gather takes part of the sequence"),
        "{err}"
    );
    assert!(err.contains("export it on every step, `fc(y)`"), "{err}");
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
            err.contains("node 'fc' (MatMul)") && err.contains("export the head on every step"),
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
