//! ONNX import: graphs whose recurrent layers are ONNX `LSTM` nodes (gate order i, o, f, c),
//! joined by the shape plumbing exporters emit, with an optional head of one or more dense
//! layers (MatMul/Gemm, Add, Relu/Tanh/Sigmoid/Softmax), and an optional embedding before them (a Gather of a table by integer token
//! ids, [`embedding`]).
//!
//! The importer walks the nodes in order and gives every value a meaning: a constant, a small
//! integer vector (shapes), a tensor filled with one value (the zero initial states that
//! `torch.onnx.export` builds from `Shape`/`ConstantOfShape`/`Expand`), or the sequence flowing
//! through the model, whose axes (steps, batch, directions, features) are tracked through
//! Transpose/Squeeze/Reshape. Any other op, or an op used in a way the model description cannot
//! express, is an error naming the node.

mod axes;
mod checks;
mod embedding;
mod float_consts;
mod layers;
mod shape_vectors;
mod shapes;
mod states;
mod tensor;
#[cfg(test)]
mod test_embedding;
#[cfg(test)]
mod test_outputs;
#[cfg(test)]
mod test_rules;
#[cfg(test)]
mod test_tensor;
#[cfg(test)]
mod tests;

use super::onnx_proto::{self as pb, AttributeProto, NodeProto, TensorProto};
use super::{
    Cell, Dense, Direction, Embedding, FixedSizes, Head, HeadActivation, HeadInput, Layer, Model,
    ModelError, Tensor,
};
use axes::{show, Axis, Dim};
use checks::{check_attributes, declared_input, live_nodes, Declared};
use prost::Message;
use std::collections::HashMap;
pub use tensor::external_files;
use tensor::{tensor_val, with_external};

#[derive(Debug, Clone)]
enum Val {
    Floats {
        dims: Vec<usize>,
        data: Vec<f32>,
    },
    Ints {
        vals: Vec<Dim>,
        scalar: bool,
    },
    Filled {
        value: f32,
        dims: Vec<Dim>,
    },
    /// The model's data path after `stage` pieces (layers and head parts).
    Seq {
        axes: Vec<Axis>,
        stage: usize,
    },
    /// Integer token ids (the graph input of a model with an embedding), with their axes
    /// (steps and batch in the graph's order).
    Ids {
        axes: Vec<Axis>,
    },
    /// An LSTM's Y_c, or an op on last states: not representable.
    State,
    /// Final hidden states (`Y_h`) of (layer, direction) pairs: `stacked` on axis 0
    /// (`[pairs, batch, H]`, an LSTM's Y_h, torch's `h_n`) or one after another on features
    /// (`[batch, pairs * H]`, `h_n[-1]`, `cat(h_n[-2], h_n[-1])`).
    Final {
        parts: Vec<(usize, usize)>,
        stacked: bool,
    },
}

#[derive(Default)]
struct HeadParts {
    /// The dense layers read so far, in order; bias and activation fill in as their nodes
    /// are read.
    layers: Vec<DenseParts>,
    input: HeadInput,
}

/// One dense layer of the head as read: `(in, out, weight [out, in])`, then its bias and
/// activation if nodes give them.
struct DenseParts {
    input_size: usize,
    output_size: usize,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    activation: Option<HeadActivation>,
}

/// Parses an ONNX model; `file` names it in errors.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Model, ModelError> {
    let proto = pb::ModelProto::decode(bytes).map_err(|e| {
        ModelError::invalid(
            file,
            format!("not an ONNX model (protobuf decode failed: {e})"),
        )
    })?;
    // The default domain's opset (some defaults depend on it); a model without one is
    // read by the oldest rules.
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version);
    let graph = proto
        .graph
        .ok_or_else(|| ModelError::invalid(file, "not an ONNX model (no graph)"))?;
    let mut inits: HashMap<String, Val> = HashMap::new();
    let mut read = 0u128;
    for t in &graph.initializer {
        inits.insert(
            t.name.clone(),
            with_external(file, t, &mut read)
                .and_then(|t| tensor_val(&t))
                .map_err(|p| ModelError::invalid(file, format!("initializer '{}': {p}", t.name)))?,
        );
    }
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|v| !inits.contains_key(&v.name))
        .collect();
    let [input] = inputs[..] else {
        let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
        return Err(ModelError::invalid(
            file,
            format!(
                "expected exactly one graph input (the sequence), found {}: {names:?}",
                inputs.len()
            ),
        ));
    };
    let declared = declared_input(input).map_err(|p| ModelError::invalid(file, p))?;
    let graph = Graph {
        file,
        proto: &graph,
        opset,
        inits: &inits,
        input: &input.name,
        declared,
        live: live_nodes(&graph),
    };
    // The graph input is the sequence: time-major as ONNX's LSTM reads it, or batch-major
    // with a Transpose before the first layer, as `torch.onnx.export` writes a
    // `batch_first = True` LSTM. The reading that gets further through the graph is taken
    // (the first LSTM accepts only one), time-major on a tie.
    match build(&graph, Layout::TimeMajor) {
        Ok(model) => Ok(model),
        Err(time) => match build(&graph, Layout::BatchMajor) {
            Ok(model) => Ok(model),
            Err(batch) if batch.reached > time.reached => Err(batch.error),
            Err(_) => Err(time.error),
        },
    }
}

/// The axis order of the graph input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[steps, batch, features]`.
    TimeMajor,
    /// `[batch, steps, features]`.
    BatchMajor,
}

/// Why one reading of a graph failed, and how far it got: the node it failed at (past every
/// node for a failure after the last), then how many LSTM nodes took its sequence's axes (so a
/// reading whose first LSTM accepts X and fails on a later input, B or an initial state, beats
/// one that fails on X at the same node).
struct Failed {
    reached: (usize, usize),
    error: ModelError,
}

/// What both readings of a graph share, read once: its initializers (decoded) and its input.
struct Graph<'a> {
    file: &'a str,
    proto: &'a pb::GraphProto,
    /// The default domain's opset.
    opset: i64,
    inits: &'a HashMap<String, Val>,
    /// The graph input's name and what it declares (token ids or a sequence, its width).
    input: &'a str,
    declared: Declared,
    /// Per node: whether it feeds a graph output (the others are not read).
    live: Vec<bool>,
}

/// Reads the graph with its input in `layout`.
fn build(g: &Graph, layout: Layout) -> Result<Model, Failed> {
    let (file, graph, opset) = (g.file, g.proto, g.opset);
    let at = |reached: (usize, usize)| move |error: ModelError| Failed { reached, error };
    let end = graph.node.len() + 1;
    let mut axes = match layout {
        Layout::TimeMajor => vec![Axis::Steps, Axis::Batch],
        Layout::BatchMajor => vec![Axis::Batch, Axis::Steps],
    };
    let mut vals = HashMap::new();
    let lead: Vec<(Axis, usize)> = (axes.iter().zip(g.declared.lead))
        .filter_map(|(&axis, size)| Some((axis, size?)))
        .collect();
    let input = if g.declared.ids {
        Val::Ids { axes }
    } else {
        axes.push(Axis::Feat(g.declared.width));
        Val::Seq { axes, stage: 0 }
    };
    vals.insert(g.input.to_string(), input);
    let mut b = Builder {
        vals,
        inits: g.inits,
        layers: Vec::new(),
        head: HeadParts::default(),
        stage: 0,
        opset,
        fixed: FixedSizes::default(),
        embedding: None,
        embedding_by: None,
        label: String::new(),
        x_accepted: 0,
    };
    for (axis, size) in lead {
        // Two literal sizes on one axis cannot disagree yet: the input is the first to fix.
        b.fix_by(axis, size, format!("graph input '{}'", g.input))
            .map_err(|p| at((0, 0))(ModelError::invalid(file, p)))?;
    }
    for (idx, node) in graph.node.iter().enumerate() {
        if !g.live[idx] {
            continue;
        }
        b.label = if node.name.is_empty() {
            format!("#{idx}")
        } else {
            node.name.clone()
        };
        let checked = check_attributes(node, opset).and_then(|()| b.node(node));
        checked.map_err(|p| {
            let e =
                ModelError::invalid(file, format!("node '{}' ({}): {p}", b.label, node.op_type));
            at((idx, b.x_accepted))(e)
        })?;
    }
    // The model's result is the graph output that carries the last layer's sequence (or its
    // head); others (an LSTM's Y_h and Y_c, as a bare `nn.LSTM` exports them, an earlier
    // layer's sequence) are not computed.
    let stage_of = |o: &pb::ValueInfoProto| match b.val(&o.name) {
        Some(Val::Seq { stage, .. }) => Some(*stage),
        _ => None,
    };
    // The result is written features last ([N, T, F], [N, F]): a graph whose result moves
    // them (a Transpose after the head) would give onnxruntime's values in another order.
    let result = (graph.output.iter()).find(|o| stage_of(o) == Some(b.stage));
    if let Some(Val::Seq { axes, .. }) = result.and_then(|o| b.val(&o.name)) {
        if !matches!(axes.last(), Some(Axis::Feat(_))) {
            let problem = format!(
                "graph output '{}' has axes {}; only a result with the features last is supported",
                result.map_or("", |o| o.name.as_str()),
                show(axes)
            );
            return Err(at((end, b.x_accepted))(ModelError::invalid(file, problem)));
        }
    }
    if result.is_none() {
        let problem = if let Some(o) = graph.output.iter().find(|o| stage_of(o).is_some()) {
            format!(
                "graph output '{}' is not the result of the last layer",
                o.name
            )
        } else if let Some(o) = (graph.output.iter())
            .find(|o| matches!(b.val(&o.name), Some(Val::State | Val::Final { .. })))
        {
            format!("graph output '{}' is an LSTM's last state (Y_h / Y_c), which is not supported: export the sequence Y", o.name)
        } else {
            "no graph output carries the LSTM sequence".into()
        };
        return Err(at((end, b.x_accepted))(ModelError::invalid(file, problem)));
    }
    let head = match b.head {
        HeadParts {
            layers,
            input: HeadInput::LastStep | HeadInput::FinalState,
        } if layers.is_empty() => {
            return Err(at((end, b.x_accepted))(ModelError::invalid(
                file,
                "the last step is taken without a dense head after it: lstm-dse runs the whole sequence (export `y`)",
            )))
        }
        HeadParts { layers, input } => (!layers.is_empty()).then(|| Head {
            layers: layers
                .into_iter()
                .map(|d| Dense {
                    input_size: d.input_size,
                    bias: d.bias.unwrap_or_else(|| vec![0.0; d.output_size]),
                    output_size: d.output_size,
                    weight: d.weight,
                    activation: d.activation.unwrap_or(HeadActivation::None),
                })
                .collect(),
            input,
        }),
    };
    Ok(Model {
        name: file.to_string(),
        embedding: b.embedding,
        layers: b.layers,
        head,
        fixed: b.fixed,
    })
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

struct Builder<'a> {
    /// The values the nodes read so far have made (and the graph input).
    vals: HashMap<String, Val>,
    /// The graph's initializers, shared by both readings.
    inits: &'a HashMap<String, Val>,
    layers: Vec<Layer>,
    head: HeadParts,
    stage: usize,
    /// The default domain's opset.
    opset: i64,
    fixed: FixedSizes,
    /// The token-embedding table the graph input indexes, once its Gather is read.
    embedding: Option<Embedding>,
    /// The embedding's table and Gather, as errors name them, once read.
    embedding_by: Option<String>,
    /// The node being read, as errors name it.
    label: String,
    /// LSTM nodes whose sequence input had its axes in the order they read (a reading's
    /// progress).
    x_accepted: usize,
}

impl Builder<'_> {
    /// Records that the current node fixes the input's steps (`axis` Steps) or batch size.
    fn fix(&mut self, axis: Axis, size: usize) -> Result<(), String> {
        let by = format!("node '{}'", self.label);
        self.fix_by(axis, size, by)
    }

    /// Records that `by` (a node or the graph input, as errors name it) fixes the input's steps
    /// or batch size.
    fn fix_by(&mut self, axis: Axis, size: usize, by: String) -> Result<(), String> {
        let (slot, what) = match axis {
            Axis::Steps => (&mut self.fixed.steps, "steps"),
            Axis::Batch => (&mut self.fixed.batch, "batch"),
            _ => return Ok(()),
        };
        match slot {
            Some((had, by)) if *had != size => Err(format!(
                "fixes the {what} to {size}, but {by} fixed them to {had}"
            )),
            Some(_) => Ok(()),
            None => {
                *slot = Some((size, by));
                Ok(())
            }
        }
    }

    /// The value named `name`: made by a node, the graph input, or an initializer.
    fn val(&self, name: &str) -> Option<&Val> {
        self.vals.get(name).or_else(|| self.inits.get(name))
    }

    /// The value named `name`, or the error for a name no earlier node makes.
    fn produced(&self, name: &str) -> Result<&Val, String> {
        self.val(name)
            .ok_or_else(|| format!("input '{name}' is not produced by any earlier node"))
    }

    fn input(&self, node: &NodeProto, k: usize) -> Result<Option<&Val>, String> {
        match node.input.get(k).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => match self.produced(name)? {
                Val::State | Val::Final { .. } => Err(format!("uses '{name}', an LSTM's last-state output (Y_h / Y_c), which is not supported here")),
                v => Ok(Some(v)),
            },
        }
    }

    fn req(&self, node: &NodeProto, k: usize) -> Result<&Val, String> {
        self.input(node, k)?
            .ok_or_else(|| format!("missing input {k}"))
    }

    /// An integer vector whose entries may be symbolic (the steps or batch of the sequence).
    fn dims(&self, node: &NodeProto, k: usize) -> Result<Vec<Dim>, String> {
        match self.req(node, k)? {
            Val::Ints { vals, .. } => Ok(vals.clone()),
            _ => Err(format!("input {k} must be an integer vector")),
        }
    }

    fn ints(&self, node: &NodeProto, k: usize) -> Result<Vec<i64>, String> {
        match self.req(node, k)? {
            Val::Ints { vals, .. } => vals
                .iter()
                .map(|d| match d {
                    Dim::Known(v) => Ok(*v),
                    _ => Err(format!("input {k} must be a constant")),
                })
                .collect(),
            _ => Err(format!("input {k} must be an integer constant")),
        }
    }

    fn floats(&self, node: &NodeProto, k: usize, what: &str) -> Result<Option<Tensor>, String> {
        match self.input(node, k)? {
            None => Ok(None),
            Some(Val::Floats { dims, data }) => Ok(Some((dims.clone(), data.clone()))),
            Some(_) => Err(format!("{what} must be a constant tensor (an initializer)")),
        }
    }

    fn set(&mut self, node: &NodeProto, k: usize, v: Val) {
        if let Some(name) = node.output.get(k) {
            if !name.is_empty() {
                self.vals.insert(name.clone(), v);
            }
        }
    }

    /// The sequence input `k`, which must be the latest stage of the data path.
    fn seq(&self, node: &NodeProto, k: usize) -> Result<Vec<Axis>, String> {
        match self.req(node, k)? {
            Val::Seq { axes, stage } if *stage == self.stage => Ok(axes.clone()),
            Val::Seq { .. } => Err(
                "consumes an earlier stage of the model (skip connections are not supported)"
                    .into(),
            ),
            _ => Err(format!("input {k} must be the LSTM sequence")),
        }
    }

    fn advance(&mut self, node: &NodeProto, axes: Vec<Axis>) {
        self.stage += 1;
        let stage = self.stage;
        self.set(node, 0, Val::Seq { axes, stage });
    }

    fn node(&mut self, node: &NodeProto) -> Result<(), String> {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(format!(
                "operator domain '{}' is not supported",
                node.domain
            ));
        }
        let any_seq =
            (0..node.input.len()).any(|k| matches!(self.input(node, k), Ok(Some(Val::Seq { .. }))));
        // Ops on an LSTM's last states and constants alone (docs/MODELS.md): `h_n` and a head
        // on the final states.
        if self.state_op(node, any_seq)? || self.ids_op(node)? {
            return Ok(());
        }
        if self.constant_op(node, any_seq)? || self.layout_op(node)? {
            return Ok(());
        }
        match node.op_type.as_str() {
            "LSTM" => self.lstm(node),
            "MatMul" | "Gemm" => self.dense(node),
            "Add" => self.bias(node),
            "Sigmoid" | "Softmax" | "Relu" | "Tanh" => self.activation(node),
            "Gather" if any_seq => self.last_step(node),
            "Slice" if any_seq => Err(
                "operator Slice takes part of the sequence, which is not supported: take the last step with `y[:, -1]` (a Gather) or export the head on every step, `fc(y)`".into(),
            ),
            op => {
                let how = if any_seq {
                    "on the LSTM data path"
                } else {
                    "here"
                };
                Err(format!("operator {op} is not supported {how} (see docs/MODELS.md for what the importer accepts)"))
            }
        }
    }
}
