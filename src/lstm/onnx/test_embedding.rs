//! The embedding front end on graphs built here: `Gather(table, ids)` of an integer graph
//! input read into [`crate::lstm::Embedding`], and every other use of ids or a table refused,
//! naming the node (the numbers of torch's exports are checked against onnxruntime by
//! `tests/reference.rs`).

use super::tests::{floats, int, int64s, ints, lstm, node, parse_graph, I};
use super::*;

/// A declared graph input of element type `elem` and `rank` symbolic dims.
fn declared(elem: i32, rank: usize) -> Option<pb::TypeProto> {
    Some(pb::TypeProto {
        tensor_type: Some(pb::TensorTypeProto {
            elem_type: elem,
            shape: Some(pb::TensorShapeProto {
                dim: (0..rank)
                    .map(|k| pb::DimensionProto {
                        dim_value: None,
                        dim_param: Some(format!("d{k}")),
                    })
                    .collect(),
            }),
        }),
    })
}

/// `X` (time-major ids) -> Gather(`table`, X) -> `E` -> LSTM -> `Y`, with `gather` as the
/// embedding node and `table_dims` as the table's shape.
fn embedded(
    gather: NodeProto,
    table_dims: &[usize],
    input: Option<pb::TypeProto>,
) -> Result<Model, String> {
    let (mut l, mut inits) = lstm(1, vec![]);
    l.input[0] = "E".into();
    inits.push(floats("table", table_dims));
    parse_graph(17, vec![gather, l], inits, input, "Y")
}

fn gather(inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    node("Gather", "embed", inputs, "E", attrs)
}

#[test]
fn a_gather_of_the_table_by_the_ids_is_the_embedding() {
    for input in [
        declared(pb::INT64, 2),
        declared(pb::INT32, 2),
        declared(0, 2),
    ] {
        let m = embedded(gather(&["table", "X"], vec![]), &[9, I], input).unwrap();
        let e = m.embedding.as_ref().unwrap();
        assert_eq!((e.vocab, e.dim, e.table.len()), (9, I, 9 * I));
        assert_eq!(e.negative, crate::lstm::NegativeIds::FromEnd);
        assert_eq!(m.input_size(), I);
    }
    // A float graph input keeps the float path: no embedding.
    let (l, inits) = lstm(1, vec![]);
    let m = parse_graph(17, vec![l], inits, declared(pb::FLOAT, 3), "Y").unwrap();
    assert!(m.embedding.is_none());
}

#[test]
fn other_embeddings_are_refused_naming_the_node() {
    let ids = || declared(pb::INT64, 2);
    let cases: Vec<(Result<Model, String>, &str)> = vec![
        (
            embedded(gather(&["table", "X"], vec![int("axis", 1)]), &[9, I], ids()),
            "node 'embed' (Gather): gathers the table along axis 1",
        ),
        (
            embedded(gather(&["table", "X"], vec![]), &[9, I, 1], ids()),
            "node 'embed' (Gather): the embedding table has shape [9, 4, 1]; it must be [vocab, dim]",
        ),
        (
            embedded(gather(&["X", "table"], vec![]), &[9, I], ids()),
            "uses the token ids 'X' as input 0 of Gather",
        ),
        (
            embedded(gather(&["table", "X"], vec![]), &[9, I + 1], ids()),
            "features",
        ),
        (
            // Float values as ids: the sequence indexes the table.
            embedded(gather(&["table", "X"], vec![]), &[9, I], declared(pb::FLOAT, 3)),
            "indexes a constant table by float values",
        ),
        (
            embedded(gather(&["table", "X"], vec![]), &[9, I], declared(pb::INT64, 3)),
            "holds token ids (int64) of rank 3",
        ),
    ];
    for (got, want) in cases {
        let e = got.unwrap_err();
        assert!(e.contains(want) && !e.contains('\n'), "want '{want}': {e}");
    }
}

#[test]
fn the_tables_axis_may_count_from_the_end() {
    // Axis -2 of the [vocab, dim] table is axis 0: the embedding (it was refused).
    for axis in [0, -2] {
        let g = gather(&["table", "X"], vec![int("axis", axis)]);
        let m = embedded(g, &[9, I], declared(pb::INT64, 2)).unwrap();
        assert_eq!(
            m.embedding.map(|e| (e.vocab, e.dim)),
            Some((9, I)),
            "{axis}"
        );
    }
    for axis in [1, -1, 2, -3] {
        let g = gather(&["table", "X"], vec![int("axis", axis)]);
        let err = embedded(g, &[9, I], declared(pb::INT64, 2)).unwrap_err();
        assert!(err.contains(&format!("along axis {axis};")), "{err}");
    }
}

#[test]
fn a_table_of_another_width_than_the_lstms_input_is_named() {
    // Time-major ids, and batch-major ones transposed before the LSTM (torch's batch_first
    // export): the table's width was blamed on the axes of one reading or the other.
    let want = format!(
        "node 'lstm' (LSTM): the embedding (table 'table' looked up by Gather 'embed') gives rows of {} features, but the LSTM's input size (the last axis of W) is {I}",
        I + 2
    );
    let err = embedded(
        gather(&["table", "X"], vec![]),
        &[9, I + 2],
        declared(pb::INT64, 2),
    );
    let err = err.unwrap_err();
    assert!(err.contains(&want), "{err}");
    let (mut l, mut inits) = lstm(1, vec![]);
    l.input[0] = "Et".into();
    inits.push(floats("table", &[9, I + 2]));
    let nodes = vec![
        gather(&["table", "X"], vec![]),
        node(
            "Transpose",
            "tr",
            &["E"],
            "Et",
            vec![ints("perm", &[1, 0, 2])],
        ),
        l,
    ];
    let err = parse_graph(17, nodes, inits, declared(pb::INT64, 2), "Y").unwrap_err();
    assert!(err.contains(&want), "{err}");
}

#[test]
fn a_table_that_is_not_an_initializer_or_not_at_the_input_is_refused() {
    let ids = || declared(pb::INT64, 2);
    // A table built by ConstantOfShape (a computed tensor, not an initializer).
    let (mut l, mut inits) = lstm(1, vec![]);
    l.input[0] = "E".into();
    inits.push(int64s("shape", &[9, I as i64]));
    let nodes = vec![
        node("ConstantOfShape", "fill", &["shape"], "table", vec![]),
        gather(&["table", "X"], vec![]),
        l,
    ];
    let e = parse_graph(17, nodes, inits, ids(), "Y").unwrap_err();
    assert!(
        e.contains("must be a float initializer [vocab, dim]"),
        "{e}"
    );
    // The ids read by the LSTM directly, and through a Cast.
    let (l, inits) = lstm(1, vec![]);
    let e = parse_graph(17, vec![l], inits, ids(), "Y").unwrap_err();
    assert!(
        e.contains("uses the token ids 'X' as input 0 of LSTM"),
        "{e}"
    );
    let (mut l, mut inits) = lstm(1, vec![]);
    l.input[0] = "E".into();
    inits.push(floats("table", &[9, I]));
    let nodes = vec![
        node("Cast", "cast", &["X"], "X2", vec![int("to", 7)]),
        gather(&["table", "X2"], vec![]),
        l,
    ];
    let e = parse_graph(17, nodes, inits, ids(), "Y").unwrap_err();
    assert!(e.contains("node 'cast' (Cast): uses the token ids"), "{e}");
    // nn.Embedding(max_norm=...) by the dynamo exporter: Unique of the ids first.
    let (mut l, mut inits) = lstm(1, vec![]);
    l.input[0] = "E".into();
    inits.push(floats("table", &[9, I]));
    let nodes = vec![
        node("Unique", "unique", &["X"], "U", vec![]),
        gather(&["table", "U"], vec![]),
        l,
    ];
    let e = parse_graph(17, nodes, inits, ids(), "Y").unwrap_err();
    assert!(
        e.contains("node 'unique' (Unique)") && e.contains("max_norm"),
        "{e}"
    );
    // A table indexed by constant indices (an embedding inside the graph).
    let (mut l, mut inits) = lstm(1, vec![]);
    l.input[0] = "E".into();
    inits.push(floats("table", &[9, I]));
    inits.push(int64s("some", &[1, 2]));
    let nodes = vec![gather(&["table", "some"], vec![]), l];
    let e = parse_graph(17, nodes, inits, ids(), "Y").unwrap_err();
    assert!(
        e.contains("indexes a constant table by constant indices"),
        "{e}"
    );
    // The ids looked up twice.
    let (mut l, mut inits) = lstm(1, vec![]);
    l.input[0] = "E3".into();
    inits.push(floats("table", &[9, I]));
    let nodes = vec![
        gather(&["table", "X"], vec![]),
        node("Gather", "again", &["table", "X"], "E2", vec![]),
        node("Add", "sum", &["E", "E2"], "E3", vec![]),
        l,
    ];
    let e = parse_graph(17, nodes, inits, ids(), "Y").unwrap_err();
    assert!(
        e.contains("node 'again' (Gather): looks up the token ids a second time"),
        "{e}"
    );
}

/// A Gather without inputs (a hostile file) is an error naming it, not an index panic.
#[test]
fn a_gather_without_inputs_is_an_error() {
    let (mut l, inits) = lstm(1, vec![]);
    l.input[0] = "E".into();
    let e = parse_graph(
        17,
        vec![gather(&[], vec![]), l],
        inits,
        declared(pb::INT64, 2),
        "Y",
    )
    .unwrap_err();
    assert!(e.contains("node 'embed' (Gather)"), "{e}");
}
