//! The embedding front end: `Gather(table, ids)` along axis 0 of a constant float table
//! `[vocab, dim]`, indexed by the integer graph input, as `torch.onnx.export` writes
//! `nn.Embedding` (both exporters). The token ids may also pass through `Identity` and give
//! their `Shape` (the dynamo exporter sizes initial states from it); any other use of them is
//! refused, naming the node.

use super::*;
use crate::lstm::NegativeIds;

/// What the importer accepts around token ids, for messages.
const ACCEPTED: &str = "token ids may only index an embedding table: a Gather along axis 0 of a constant float tensor [vocab, dim] by the graph input";

impl Builder<'_> {
    /// Handles an op that reads the token ids (true), or leaves it (false): `Shape` and
    /// `Identity` are read as on any value.
    pub(super) fn ids_op(&mut self, node: &NodeProto) -> Result<bool, String> {
        let is_ids = |n: &String| matches!(self.val(n), Some(Val::Ids { .. }));
        let Some(k) = node.input.iter().position(is_ids) else {
            return self.table_without_ids(node).map(|()| false);
        };
        match node.op_type.as_str() {
            "Shape" | "Identity" => Ok(false),
            "Gather" if k == 1 => self.embedding(node).map(|()| true),
            // torch's dynamo exporter writes `nn.Embedding(max_norm=...)` as Unique of the ids,
            // then the renormalisation of the rows they pick (ReduceL2, ..., ScatterND).
            "Unique" => Err(format!(
                "uses the token ids '{}' as input {k} of Unique, as torch's dynamo exporter writes nn.Embedding(max_norm=...): renormalising the looked-up rows is not supported",
                node.input[k]
            )),
            op => Err(format!(
                "uses the token ids '{}' as input {k} of {op}; {ACCEPTED}",
                node.input[k]
            )),
        }
    }

    /// Refuses a Gather of a float table `[vocab, dim]` by anything but the token ids (an
    /// embedding inside the model, or indexed by float values); leaves every other node.
    fn table_without_ids(&self, node: &NodeProto) -> Result<(), String> {
        if node.op_type != "Gather" {
            return Ok(());
        }
        let first = node.input.first().and_then(|n| self.val(n));
        let table = matches!(first, Some(Val::Floats { dims, .. }) if dims.len() == 2);
        let by = match node.input.get(1).and_then(|n| self.val(n)) {
            _ if !table => return Ok(()),
            Some(Val::Seq { .. }) => "float values (the sequence)",
            Some(Val::Ints { .. }) => "constant indices",
            _ => "a computed value",
        };
        Err(format!(
            "indexes a constant table by {by}; an embedding must be indexed by the graph input, int64 or int32 token ids (nothing before it)"
        ))
    }

    /// `Gather(table, ids)`: the sequence of looked-up rows, `[ids axes..., dim]`.
    fn embedding(&mut self, node: &NodeProto) -> Result<(), String> {
        let Some(Val::Ids { axes }) = self.input(node, 1)? else {
            return Err(format!("input 1 must be the token ids; {ACCEPTED}"));
        };
        let mut axes = axes.clone();
        let (vocab, dim, table) = match self.input(node, 0)? {
            Some(Val::Floats { dims, data }) => match dims[..] {
                [vocab, dim] => (vocab, dim, data.clone()),
                _ => {
                    return Err(format!(
                        "the embedding table has shape {}; it must be [vocab, dim] (rank 2)",
                        show(dims)
                    ))
                }
            },
            Some(Val::Ints { .. }) => {
                return Err(
                    "the embedding table is an integer tensor; it must be float [vocab, dim]"
                        .into(),
                )
            }
            _ => return Err(
                "the embedding table must be a float initializer [vocab, dim] (a constant tensor)"
                    .into(),
            ),
        };
        // A negative axis counts from the end, as in ONNX: -2 is axis 0 of the [vocab, dim]
        // table.
        let axis = attr_i(node, "axis", 0);
        if axis != 0 && axis != -2 {
            return Err(format!(
                "gathers the table along axis {axis}; an embedding looks up rows, a Gather along axis 0 (or -2)"
            ));
        }
        if self.embedding.is_some() {
            return Err("looks up the token ids a second time; one embedding is supported".into());
        }
        self.embedding = Some(Embedding {
            vocab,
            dim,
            table,
            negative: NegativeIds::FromEnd,
        });
        self.embedding_by = Some(format!(
            "table '{}' looked up by Gather '{}'",
            node.input[0], self.label
        ));
        axes.push(Axis::Feat(Some(dim)));
        let stage = self.stage;
        self.set(node, 0, Val::Seq { axes, stage });
        Ok(())
    }
}
