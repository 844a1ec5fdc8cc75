//! ONNX import: graphs whose recurrent layers are ONNX `LSTM` nodes (gate order i, o, f, c),
//! joined by the shape plumbing exporters emit, with an optional head of MatMul/Gemm, Add and
//! Sigmoid/Softmax.
//!
//! The importer walks the nodes in order and gives every value a meaning: a constant, a small
//! integer vector (shapes), a tensor filled with one value (the zero initial states that
//! `torch.onnx.export` builds from `Shape`/`ConstantOfShape`/`Expand`), or the sequence flowing
//! through the model, whose axes (steps, batch, directions, features) are tracked through
//! Transpose/Squeeze/Reshape. Any other op, or an op used in a way the model description cannot
//! express, is an error naming the node.

use super::onnx_proto::{self as pb, AttributeProto, NodeProto, TensorProto};
use super::{Cell, Direction, Head, HeadActivation, Layer, Model, ModelError, Tensor};
use prost::Message;
use std::collections::HashMap;

/// One dimension of a shape value: known, or the symbolic sequence length / batch size.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dim {
    Known(i64),
    Steps,
    Batch,
    Unknown,
}

/// An axis of the sequence value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Axis {
    Steps,
    Batch,
    /// Steps and batch flattened into rows (before a Gemm head).
    Rows,
    Dirs(usize),
    /// Features; `None` for the graph input before the first LSTM fixes its width.
    Feat(Option<usize>),
}

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
    /// An LSTM's Y_h / Y_c: not representable.
    State,
}

#[derive(Default)]
struct HeadParts {
    linear: Option<(usize, usize, Vec<f32>)>, // (in, out, weight [out, in])
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
    let graph = proto
        .graph
        .ok_or_else(|| ModelError::invalid(file, "not an ONNX model (no graph)"))?;
    let mut vals: HashMap<String, Val> = HashMap::new();
    for t in &graph.initializer {
        vals.insert(
            t.name.clone(),
            tensor_val(t)
                .map_err(|p| ModelError::invalid(file, format!("initializer '{}': {p}", t.name)))?,
        );
    }
    let inputs: Vec<&str> = graph
        .input
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| !vals.contains_key(*n))
        .collect();
    let [input] = inputs[..] else {
        return Err(ModelError::invalid(
            file,
            format!(
                "expected exactly one graph input (the sequence), found {}: {inputs:?}",
                inputs.len()
            ),
        ));
    };
    vals.insert(
        input.to_string(),
        Val::Seq {
            axes: vec![Axis::Steps, Axis::Batch, Axis::Feat(None)],
            stage: 0,
        },
    );
    let mut b = Builder {
        vals,
        layers: Vec::new(),
        head: HeadParts::default(),
        stage: 0,
    };
    for (idx, node) in graph.node.iter().enumerate() {
        let label = if node.name.is_empty() {
            format!("#{idx}")
        } else {
            node.name.clone()
        };
        b.node(node).map_err(|p| {
            ModelError::invalid(file, format!("node '{label}' ({}): {p}", node.op_type))
        })?;
    }
    let out = graph
        .output
        .iter()
        .find(|o| matches!(b.vals.get(&o.name), Some(Val::Seq { .. })))
        .ok_or_else(|| ModelError::invalid(file, "no graph output carries the LSTM sequence"))?;
    if let Some(Val::Seq { stage, .. }) = b.vals.get(&out.name) {
        if *stage != b.stage {
            return Err(ModelError::invalid(
                file,
                format!(
                    "graph output '{}' is not the result of the last layer",
                    out.name
                ),
            ));
        }
    }
    let head = match b.head {
        HeadParts {
            linear: None,
            activation: None,
            ..
        } => None,
        HeadParts {
            linear: Some((i, o, weight)),
            bias,
            activation,
        } => Some(Head {
            input_size: i,
            output_size: o,
            weight,
            bias: bias.unwrap_or_else(|| vec![0.0; o]),
            activation: activation.unwrap_or(HeadActivation::None),
        }),
        HeadParts { linear: None, .. } => {
            return Err(ModelError::invalid(
                file,
                "an output activation without a dense layer before it",
            ))
        }
    };
    Ok(Model {
        name: file.to_string(),
        layers: b.layers,
        head,
    })
}

fn tensor_val(t: &TensorProto) -> Result<Val, String> {
    if t.data_location == 1 {
        return Err("external data is not supported; save the model with weights inside".into());
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("has an impossibly large shape")?;
    let raw = &t.raw_data;
    match t.data_type {
        pb::FLOAT | pb::DOUBLE => {
            let data: Vec<f32> = if t.data_type == pb::FLOAT && !raw.is_empty() {
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else if t.data_type == pb::DOUBLE && !raw.is_empty() {
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                    .collect()
            } else if t.data_type == pb::FLOAT {
                t.float_data.clone()
            } else {
                t.double_data.iter().map(|&d| d as f32).collect()
            };
            if data.len() != n {
                return Err(format!("has {} values for shape {dims:?}", data.len()));
            }
            Ok(Val::Floats { dims, data })
        }
        pb::INT64 | pb::INT32 => {
            let vals: Vec<i64> = match (t.data_type, raw.is_empty()) {
                (pb::INT64, false) => raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
                (pb::INT64, true) => t.int64_data.clone(),
                (_, false) => raw
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
                (_, true) => t.int32_data.iter().map(|&v| v as i64).collect(),
            };
            if vals.len() != n {
                return Err(format!("has {} values for shape {dims:?}", vals.len()));
            }
            Ok(Val::Ints {
                vals: vals.into_iter().map(Dim::Known).collect(),
                scalar: dims.is_empty(),
            })
        }
        other => Err(format!(
            "tensor element type {other} is not supported (float32, float64, int32, int64)"
        )),
    }
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

struct Builder {
    vals: HashMap<String, Val>,
    layers: Vec<Layer>,
    head: HeadParts,
    stage: usize,
}

impl Builder {
    fn input(&self, node: &NodeProto, k: usize) -> Result<Option<&Val>, String> {
        match node.input.get(k).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => match self.vals.get(name) {
                Some(Val::State) => Err(format!("uses '{name}', an LSTM's last-state output (Y_h / Y_c), which is not supported")),
                Some(v) => Ok(Some(v)),
                None => Err(format!("input '{name}' is not produced by any earlier node")),
            },
        }
    }

    fn req(&self, node: &NodeProto, k: usize) -> Result<&Val, String> {
        self.input(node, k)?
            .ok_or_else(|| format!("missing input {k}"))
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
        match node.op_type.as_str() {
            "Constant" => {
                let v = if let Some(t) = attr(node, "value").and_then(|a| a.t.as_ref()) {
                    tensor_val(t)?
                } else if let Some(a) = attr(node, "value_ints") {
                    Val::Ints {
                        vals: a.ints.iter().map(|&v| Dim::Known(v)).collect(),
                        scalar: false,
                    }
                } else if let Some(a) = attr(node, "value_int") {
                    Val::Ints {
                        vals: vec![Dim::Known(a.i)],
                        scalar: true,
                    }
                } else if let Some(a) = attr(node, "value_float") {
                    Val::Floats {
                        dims: vec![],
                        data: vec![a.f],
                    }
                } else {
                    return Err(
                        "only value / value_int(s) / value_float constants are supported".into(),
                    );
                };
                self.set(node, 0, v);
            }
            "Identity" => {
                let v = self.req(node, 0)?.clone();
                self.set(node, 0, v);
            }
            "Shape" => {
                let vals = match self.req(node, 0)? {
                    Val::Seq { axes, .. } => axes.iter().map(axis_dim).collect(),
                    Val::Floats { dims, .. } => {
                        dims.iter().map(|&d| Dim::Known(d as i64)).collect()
                    }
                    Val::Filled { dims, .. } => dims.clone(),
                    _ => return Err("shape of an integer value is not supported".into()),
                };
                let vals = slice_dims(
                    vals,
                    attr_i(node, "start", 0),
                    attr(node, "end").map(|a| a.i),
                );
                self.set(
                    node,
                    0,
                    Val::Ints {
                        vals,
                        scalar: false,
                    },
                );
            }
            "Gather" if !any_seq => {
                let Val::Ints { vals, .. } = self.req(node, 0)? else {
                    return Err("only gathering from shape vectors is supported".into());
                };
                let Val::Ints { vals: idx, scalar } = self.req(node, 1)? else {
                    return Err("indices must be integers".into());
                };
                if attr_i(node, "axis", 0) != 0 {
                    return Err("only axis 0 is supported".into());
                }
                let n = vals.len() as i64;
                let out = idx
                    .iter()
                    .map(|d| match d {
                        Dim::Known(i) if (-n..n).contains(i) => Ok(vals[i.rem_euclid(n) as usize]),
                        _ => Err("index out of range".to_string()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let scalar = *scalar;
                self.set(node, 0, Val::Ints { vals: out, scalar });
            }
            "Unsqueeze" if !any_seq => match self.req(node, 0)?.clone() {
                Val::Ints { vals, scalar: true } => self.set(
                    node,
                    0,
                    Val::Ints {
                        vals,
                        scalar: false,
                    },
                ),
                _ => return Err("only scalar shape values can be unsqueezed".into()),
            },
            "Concat" if !any_seq => {
                let mut out = Vec::new();
                for k in 0..node.input.len() {
                    match self.req(node, k)? {
                        Val::Ints { vals, .. } => out.extend_from_slice(vals),
                        _ => return Err("only shape vectors can be concatenated".into()),
                    }
                }
                self.set(
                    node,
                    0,
                    Val::Ints {
                        vals: out,
                        scalar: false,
                    },
                );
            }
            "ConstantOfShape" => {
                let Val::Ints { vals, .. } = self.req(node, 0)?.clone() else {
                    return Err("shape must be an integer vector".into());
                };
                let value = match attr(node, "value")
                    .and_then(|a| a.t.as_ref())
                    .map(tensor_val)
                {
                    None => 0.0,
                    Some(Ok(Val::Floats { data, .. })) if data.len() == 1 => data[0],
                    Some(Ok(Val::Ints { vals, .. })) if vals.len() == 1 => match vals[0] {
                        Dim::Known(v) => v as f32,
                        _ => 0.0,
                    },
                    _ => return Err("value must be a one-element tensor".into()),
                };
                self.set(node, 0, Val::Filled { value, dims: vals });
            }
            "Slice" if !any_seq => {
                let Val::Filled { value, dims } = self.req(node, 0)?.clone() else {
                    return Err(
                        "only slicing of constant-filled tensors (initial states) is supported"
                            .into(),
                    );
                };
                let (starts, ends) = (self.ints(node, 1)?, self.ints(node, 2)?);
                let axes = if self.input(node, 3)?.is_some() {
                    self.ints(node, 3)?
                } else {
                    (0..starts.len() as i64).collect()
                };
                let mut dims = dims;
                for ((&s, &e), &a) in starts.iter().zip(&ends).zip(&axes) {
                    let a = a.rem_euclid(dims.len().max(1) as i64) as usize;
                    if let Some(Dim::Known(n)) = dims.get(a).copied() {
                        let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
                        dims[a] = Dim::Known((clamp(e) - clamp(s)).max(0));
                    } else if a < dims.len() {
                        dims[a] = Dim::Unknown;
                    }
                }
                self.set(node, 0, Val::Filled { value, dims });
            }
            "Expand" if !any_seq => {
                let value = match self.req(node, 0)? {
                    Val::Filled { value, .. } => *value,
                    Val::Floats { data, .. }
                        if !data.is_empty()
                            && data.iter().all(|v| v.to_bits() == data[0].to_bits()) =>
                    {
                        data[0]
                    }
                    _ => {
                        return Err(
                            "only expanding a tensor of one repeated value is supported".into()
                        )
                    }
                };
                let Val::Ints { vals, .. } = self.req(node, 1)?.clone() else {
                    return Err("shape must be an integer vector".into());
                };
                self.set(node, 0, Val::Filled { value, dims: vals });
            }
            "LSTM" => self.lstm(node)?,
            "Squeeze" => {
                let mut axes = self.seq(node, 0)?;
                let which = if self.input(node, 1)?.is_some() {
                    self.ints(node, 1)?
                } else {
                    attr(node, "axes")
                        .map(|a| a.ints.clone())
                        .unwrap_or_default()
                };
                let rank = axes.len() as i64;
                let mut which: Vec<usize> =
                    which.iter().map(|a| a.rem_euclid(rank) as usize).collect();
                which.sort_unstable();
                for &a in which.iter().rev() {
                    if axes[a] != Axis::Dirs(1) {
                        return Err(format!(
                            "squeezes axis {a}, which is not the size-1 direction axis"
                        ));
                    }
                    axes.remove(a);
                }
                let stage = self.stage;
                self.set(node, 0, Val::Seq { axes, stage });
            }
            "Transpose" => {
                let axes = self.seq(node, 0)?;
                let perm: Vec<usize> = match attr(node, "perm") {
                    Some(a) => a.ints.iter().map(|&p| p as usize).collect(),
                    None => (0..axes.len()).rev().collect(),
                };
                if perm.len() != axes.len() || perm.iter().any(|&p| p >= axes.len()) {
                    return Err(format!(
                        "perm {perm:?} does not fit a rank-{} value",
                        axes.len()
                    ));
                }
                let axes = perm.iter().map(|&p| axes[p]).collect();
                let stage = self.stage;
                self.set(node, 0, Val::Seq { axes, stage });
            }
            "Reshape" => {
                let axes = self.seq(node, 0)?;
                let shape = self.ints(node, 1)?;
                let axes = reshape(&axes, &shape)?;
                let stage = self.stage;
                self.set(node, 0, Val::Seq { axes, stage });
            }
            "MatMul" | "Gemm" => self.dense(node)?,
            "Add" => self.bias(node)?,
            "Sigmoid" | "Softmax" => {
                let axes = self.seq(node, 0)?;
                if self.head.linear.is_none() || self.head.activation.is_some() {
                    return Err("an activation is supported only once, after the dense head".into());
                }
                if node.op_type == "Softmax" {
                    let axis = attr_i(node, "axis", -1);
                    if axis != -1 && axis != axes.len() as i64 - 1 {
                        return Err(format!(
                            "softmax over axis {axis}; only the feature (last) axis is supported"
                        ));
                    }
                    self.head.activation = Some(HeadActivation::Softmax);
                } else {
                    self.head.activation = Some(HeadActivation::Sigmoid);
                }
                self.advance(node, axes);
            }
            op => {
                let how = if any_seq {
                    "on the LSTM data path"
                } else {
                    "here"
                };
                return Err(format!("operator {op} is not supported {how} (see docs/MODELS.md for what the importer accepts)"));
            }
        }
        Ok(())
    }

    fn lstm(&mut self, node: &NodeProto) -> Result<(), String> {
        let axes = self.seq(node, 0)?;
        if self.head.linear.is_some() {
            return Err("an LSTM after the dense head is not supported".into());
        }
        for unsupported in ["clip", "activation_alpha", "activation_beta"] {
            if attr(node, unsupported).is_some() {
                return Err(format!("attribute '{unsupported}' is not supported"));
            }
        }
        if attr_i(node, "input_forget", 0) != 0 {
            return Err("input_forget=1 (coupled gates) is not supported".into());
        }
        if attr_i(node, "layout", 0) != 0 {
            return Err("layout=1 (batch-first LSTM) is not supported".into());
        }
        if let Some(a) = attr(node, "activations") {
            let names: Vec<String> = a
                .strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                .collect();
            if names.chunks(3).any(|c| c != ["sigmoid", "tanh", "tanh"]) {
                return Err(format!(
                    "activations {names:?}: only the default Sigmoid, Tanh, Tanh are supported"
                ));
            }
        }
        let direction = match attr(node, "direction")
            .map(|a| String::from_utf8_lossy(&a.s).to_string())
            .as_deref()
        {
            None | Some("forward") => Direction::Forward,
            Some("reverse") => Direction::Reverse,
            Some("bidirectional") => Direction::Bidirectional,
            Some(d) => {
                return Err(format!(
                    "direction '{d}' is not one of forward, reverse, bidirectional"
                ))
            }
        };
        let d = direction.count();
        let (wd, w) = self.floats(node, 1, "W")?.ok_or("W is missing")?;
        let (rd, r) = self.floats(node, 2, "R")?.ok_or("R is missing")?;
        let hidden = attr(node, "hidden_size")
            .map(|a| a.i as usize)
            .unwrap_or(rd.get(2).copied().unwrap_or(0));
        let input_size = wd.get(2).copied().unwrap_or(0);
        if wd != [d, 4 * hidden, input_size] || hidden == 0 || input_size == 0 {
            return Err(format!(
                "W has shape {wd:?}, expected [{d}, {}, input_size] for hidden_size {hidden}",
                4 * hidden
            ));
        }
        if rd != [d, 4 * hidden, hidden] {
            return Err(format!(
                "R has shape {rd:?}, expected [{d}, {}, {hidden}] for hidden_size {hidden}",
                4 * hidden
            ));
        }
        match axes[..] {
            [Axis::Steps, Axis::Batch, Axis::Feat(w)] if w.is_none() || w == Some(input_size) => {}
            _ => {
                return Err(format!(
                    "X has axes {axes:?}; expected [steps, batch, {input_size} features]"
                ))
            }
        }
        if self.input(node, 4)?.is_some() {
            return Err(
                "sequence_lens is not supported: every sequence runs for all its steps".into(),
            );
        }
        let b = self.floats(node, 3, "B")?;
        let p = self.floats(node, 7, "P")?;
        let check = |what: &str, got: &[usize], want: &[usize]| {
            if got == want {
                Ok(())
            } else {
                Err(format!("{what} has shape {got:?}, expected {want:?}"))
            }
        };
        if let Some((bd, _)) = &b {
            check("B", bd, &[d, 8 * hidden])?;
        }
        if let Some((pd, _)) = &p {
            check("P", pd, &[d, 3 * hidden])?;
        }
        let h0 = self.initial_state(node, 5, "initial_h", d, hidden)?;
        let c0 = self.initial_state(node, 6, "initial_c", d, hidden)?;
        let h = hidden;
        let mut cells = Vec::with_capacity(d);
        for k in 0..d {
            // ONNX gate blocks i, o, f, c -> internal i, f, g, o.
            let gates = |data: &[f32], per_gate: usize, base: usize| -> Vec<f32> {
                [0, 2, 3, 1]
                    .iter()
                    .flat_map(|&g| {
                        data[base + g * per_gate..base + (g + 1) * per_gate]
                            .iter()
                            .copied()
                    })
                    .collect()
            };
            let (bi, bh) = match &b {
                Some((_, bv)) => (gates(bv, h, k * 8 * h), gates(bv, h, k * 8 * h + 4 * h)),
                None => (vec![0.0; 4 * h], vec![0.0; 4 * h]),
            };
            let peephole = p.as_ref().map(|(_, pv)| {
                let s = &pv[k * 3 * h..(k + 1) * 3 * h];
                [0, 2, 1]
                    .iter()
                    .flat_map(|&g| s[g * h..(g + 1) * h].iter().copied())
                    .collect()
            });
            cells.push(Cell {
                w: gates(&w, h * input_size, k * 4 * h * input_size),
                r: gates(&r, h * h, k * 4 * h * h),
                b_ih: bi,
                b_hh: bh,
                peephole,
                h0: h0.as_ref().map(|s| s[k].clone()),
                c0: c0.as_ref().map(|s| s[k].clone()),
            });
        }
        self.layers.push(Layer {
            input_size,
            hidden_size: hidden,
            direction,
            cells,
        });
        self.advance(
            node,
            vec![
                Axis::Steps,
                Axis::Dirs(d),
                Axis::Batch,
                Axis::Feat(Some(hidden)),
            ],
        );
        self.set(node, 1, Val::State);
        self.set(node, 2, Val::State);
        Ok(())
    }

    /// An initial state `[D, batch, H]`: one vector per direction, the same for every sequence.
    fn initial_state(
        &self,
        node: &NodeProto,
        k: usize,
        what: &str,
        d: usize,
        h: usize,
    ) -> Result<Option<Vec<Vec<f32>>>, String> {
        match self.input(node, k)? {
            None => Ok(None),
            Some(Val::Filled { value, dims }) => {
                if dims.len() != 3
                    || dims[0] != Dim::Known(d as i64)
                    || !matches!(dims[2], Dim::Known(x) if x == h as i64)
                {
                    return Err(format!(
                        "{what} has shape {dims:?}, expected [{d}, batch, {h}]"
                    ));
                }
                Ok(Some(vec![vec![*value; h]; d]))
            }
            Some(Val::Floats { dims, data }) => {
                if dims.len() != 3 || dims[0] != d || dims[2] != h || dims[1] == 0 {
                    return Err(format!(
                        "{what} has shape {dims:?}, expected [{d}, batch, {h}]"
                    ));
                }
                let n = dims[1];
                let rows: Vec<Vec<f32>> = (0..d)
                    .map(|k| data[k * n * h..k * n * h + h].to_vec())
                    .collect();
                for k in 0..d {
                    for j in 1..n {
                        if data[(k * n + j) * h..(k * n + j + 1) * h] != rows[k][..] {
                            return Err(format!("{what} differs between batch entries; per-sequence initial states are not supported"));
                        }
                    }
                }
                Ok(Some(rows))
            }
            Some(_) => Err(format!("{what} must be a constant or a filled tensor")),
        }
    }

    /// Features of a sequence value: the last axis, with steps and batch (or rows) before it.
    fn features(axes: &[Axis]) -> Result<usize, String> {
        match axes {
            [Axis::Steps, Axis::Batch, Axis::Feat(Some(w))]
            | [Axis::Batch, Axis::Steps, Axis::Feat(Some(w))]
            | [Axis::Rows, Axis::Feat(Some(w))] => Ok(*w),
            _ => Err(format!(
                "the dense head needs [steps, batch, features]; the value has axes {axes:?}"
            )),
        }
    }

    fn dense(&mut self, node: &NodeProto) -> Result<(), String> {
        let axes = self.seq(node, 0)?;
        if self.head.linear.is_some() {
            return Err("only one dense layer is supported in the head".into());
        }
        let fin = Self::features(&axes)?;
        let (wd, w) = self
            .floats(node, 1, "the weight")?
            .ok_or("weight is missing")?;
        let trans_b = node.op_type == "Gemm" && attr_i(node, "transB", 0) == 1;
        if node.op_type == "Gemm" {
            if attr_i(node, "transA", 0) != 0 {
                return Err("transA=1 is not supported".into());
            }
            for a in ["alpha", "beta"] {
                if attr(node, a).is_some_and(|x| x.f != 1.0) {
                    return Err(format!("{a} other than 1 is not supported"));
                }
            }
        }
        let (rows, cols) = match wd[..] {
            [r, c] => (r, c),
            _ => return Err(format!("weight has shape {wd:?}, expected a matrix")),
        };
        let (kin, out) = if trans_b { (cols, rows) } else { (rows, cols) };
        if kin != fin {
            return Err(format!(
                "weight has shape {wd:?} but the sequence has {fin} features"
            ));
        }
        // Store as [out, in].
        let weight = if trans_b {
            w
        } else {
            (0..out)
                .flat_map(|o| (0..kin).map(move |i| (o, i)))
                .map(|(o, i)| w[i * out + o])
                .collect()
        };
        self.head.linear = Some((fin, out, weight));
        if node.op_type == "Gemm" {
            if let Some((cd, c)) = self.floats(node, 2, "the bias")? {
                if c.len() != out {
                    return Err(format!("bias has shape {cd:?}, expected [{out}]"));
                }
                self.head.bias = Some(c);
            }
        }
        let mut axes = axes;
        let last = axes.len() - 1;
        axes[last] = Axis::Feat(Some(out));
        self.advance(node, axes);
        Ok(())
    }

    fn bias(&mut self, node: &NodeProto) -> Result<(), String> {
        let (seq_at, const_at) = match (self.input(node, 0)?, self.input(node, 1)?) {
            (Some(Val::Seq { .. }), _) => (0, 1),
            (_, Some(Val::Seq { .. })) => (1, 0),
            _ => return Err("only adding a bias to the dense head's output is supported".into()),
        };
        let axes = self.seq(node, seq_at)?;
        let Some((_, out, _)) = self.head.linear else {
            return Err(
                "adding to the LSTM output is not supported (only a bias after the dense layer)"
                    .into(),
            );
        };
        if self.head.bias.is_some() || self.head.activation.is_some() {
            return Err("a second bias in the head is not supported".into());
        }
        let (bd, bv) = self
            .floats(node, const_at, "the bias")?
            .ok_or("bias is missing")?;
        if bv.len() != out {
            return Err(format!("bias has shape {bd:?}, expected [{out}]"));
        }
        self.head.bias = Some(bv);
        self.advance(node, axes);
        Ok(())
    }
}

fn axis_dim(a: &Axis) -> Dim {
    match a {
        Axis::Steps => Dim::Steps,
        Axis::Batch => Dim::Batch,
        Axis::Rows => Dim::Unknown,
        Axis::Dirs(d) => Dim::Known(*d as i64),
        Axis::Feat(Some(w)) => Dim::Known(*w as i64),
        Axis::Feat(None) => Dim::Unknown,
    }
}

fn slice_dims(vals: Vec<Dim>, start: i64, end: Option<i64>) -> Vec<Dim> {
    let n = vals.len() as i64;
    let clamp = |v: i64| if v < 0 { (v + n).clamp(0, n) } else { v.min(n) } as usize;
    let (s, e) = (clamp(start), clamp(end.unwrap_or(n)));
    vals.get(s..e.max(s))
        .map(<[Dim]>::to_vec)
        .unwrap_or_default()
}

/// Reshapes the exporters emit: merging directions and hidden into features (rank 3, first two
/// axes kept), or flattening steps and batch into rows (rank 2, before a Gemm).
fn reshape(axes: &[Axis], shape: &[i64]) -> Result<Vec<Axis>, String> {
    let width = |rest: &[Axis]| -> Option<usize> {
        rest.iter().try_fold(1usize, |acc, a| match a {
            Axis::Dirs(d) => Some(acc * d),
            Axis::Feat(Some(w)) => Some(acc * w),
            _ => None,
        })
    };
    let lead_ok = |i: usize| matches!(axes.get(i), Some(Axis::Steps | Axis::Batch));
    match shape {
        [a, b, c]
            if lead_ok(0)
                && lead_ok(1)
                && matches!(*a, 0 | -1)
                && matches!(*b, 0 | -1)
                && !(*a == -1 && *b == -1) =>
        {
            let w = width(&axes[2..]).ok_or_else(|| format!("cannot reshape axes {axes:?}"))?;
            if *c != -1 && *c != w as i64 || (*c == -1 && (*a == -1 || *b == -1)) {
                return Err(format!(
                    "Reshape to {shape:?} does not keep {w} features per step"
                ));
            }
            Ok(vec![axes[0], axes[1], Axis::Feat(Some(w))])
        }
        [-1, c] if lead_ok(0) && lead_ok(1) => {
            let w = width(&axes[2..]).ok_or_else(|| format!("cannot reshape axes {axes:?}"))?;
            if *c != w as i64 {
                return Err(format!(
                    "Reshape to {shape:?} does not keep {w} features per row"
                ));
            }
            Ok(vec![Axis::Rows, Axis::Feat(Some(w))])
        }
        _ => Err(format!(
            "Reshape of axes {axes:?} to {shape:?} is not supported"
        )),
    }
}
