//! Constants, shape arithmetic and layout changes: the values torch.onnx.export computes to
//! build zero initial states (Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Slice,
//! Expand) and the Squeeze / Transpose / Reshape it puts between layers, tracked as axes of
//! the sequence.

use super::*;

impl Builder<'_> {
    /// Handles a constant or shape op; false when `node` is not one.
    pub(super) fn constant_op(&mut self, node: &NodeProto, any_seq: bool) -> Result<bool, String> {
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
                    Val::Seq { axes, .. } | Val::Ids { axes } => {
                        axes.iter().map(axis_dim).collect()
                    }
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
                // A shape vector has one axis: 0, or -1 counted from the end.
                let axis = attr_i(node, "axis", 0);
                if axis != 0 && axis != -1 {
                    return Err(format!(
                        "gathers a shape vector along axis {axis}; it has one axis (0 or -1)"
                    ));
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
            // Initializers reshaped at import (torch's dynamo export of the gate order).
            "Slice" if !any_seq && matches!(self.req(node, 0)?, Val::Floats { .. }) => {
                self.slice_floats(node)?
            }
            "Concat" if !any_seq && matches!(self.req(node, 0)?, Val::Floats { .. }) => {
                self.concat_floats(node)?
            }
            "Unsqueeze" if !any_seq && matches!(self.req(node, 0)?, Val::Floats { .. }) => {
                self.unsqueeze_floats(node)?
            }
            "Unsqueeze" if !any_seq => self.unsqueeze_scalar(node)?,
            "Concat" if !any_seq => self.concat_ints(node)?,
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
            "Slice" if !any_seq && matches!(self.req(node, 0)?, Val::Ints { .. }) => {
                self.slice_ints(node)?
            }
            "Mul" | "Add" | "Sub" if !any_seq && self.all_ints(node) => self.arithmetic(node)?,
            "Reshape" if !any_seq && matches!(self.req(node, 0)?, Val::Ints { .. }) => {
                let Val::Ints { vals, .. } = self.req(node, 0)?.clone() else {
                    unreachable!("matched above")
                };
                let shape = self.dims(node, 1)?;
                let scalar = match shape[..] {
                    [] if vals.len() == 1 => true,
                    [Dim::Known(n)] if n == -1 || n == vals.len() as i64 => false,
                    _ => {
                        return Err(format!(
                            "Reshape of a shape vector of {} values to {} is not supported",
                            vals.len(),
                            show(&shape)
                        ))
                    }
                };
                self.set(node, 0, Val::Ints { vals, scalar });
            }
            "Slice" if !any_seq => {
                let Val::Filled { value, dims } = self.req(node, 0)?.clone() else {
                    return Err(
                        "only slicing of initializers, constant-filled tensors (initial states) and shape vectors is supported"
                            .into(),
                    );
                };
                let mut dims = dims;
                for (a, s, e, step) in self.slice_args(node, dims.len())? {
                    dims[a] = match dims[a] {
                        Dim::Known(n) => Dim::Known(slice_len(n, s, e, step)?),
                        _ => Dim::Unknown,
                    };
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
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Handles a layout change of the sequence; false when `node` is not one.
    pub(super) fn layout_op(&mut self, node: &NodeProto) -> Result<bool, String> {
        match node.op_type.as_str() {
            "Squeeze" => {
                let mut axes = self.seq(node, 0)?;
                let which = if self.input(node, 1)?.is_some() {
                    self.ints(node, 1)?
                } else if let Some(a) = attr(node, "axes") {
                    a.ints.clone()
                } else {
                    // onnxruntime then removes every axis of size 1: the direction axis, and
                    // the steps or the batch of an input where either is 1.
                    return Err(format!(
                        "squeezes every axis of size 1 of {} (no axes given), the steps or the batch too where the input has one: give the axes",
                        show(&axes)
                    ));
                };
                let rank = axes.len() as i64;
                if let Some(a) = which.iter().find(|a| !(-rank..rank).contains(*a)) {
                    return Err(format!("axis {a} is out of range for {}", show(&axes)));
                }
                let mut which: Vec<usize> =
                    which.iter().map(|a| a.rem_euclid(rank) as usize).collect();
                which.sort_unstable();
                if which.windows(2).any(|w| w[0] == w[1]) {
                    return Err("squeezes an axis twice".into());
                }
                for &a in which.iter().rev() {
                    if axes[a] != Axis::Dirs(1) {
                        return Err(format!(
                            "squeezes axis {a} ({}) of {}; only the size-1 direction axis can be squeezed",
                            axes[a],
                            show(&axes)
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
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                if sorted != (0..axes.len()).collect::<Vec<_>>() {
                    return Err(format!(
                        "perm {perm:?} is not a permutation of the {} axes {}",
                        axes.len(),
                        show(&axes)
                    ));
                }
                let axes = perm.iter().map(|&p| axes[p]).collect();
                let stage = self.stage;
                self.set(node, 0, Val::Seq { axes, stage });
            }
            "Reshape" => {
                let axes = self.seq(node, 0)?;
                let shape = self.dims(node, 1)?;
                // onnxruntime reads allowzero as `== 1`: any other value copies the input's
                // size for a 0, as allowzero=0 does.
                if attr_i(node, "allowzero", 0) == 1 && shape.contains(&Dim::Known(0)) {
                    return Err(format!(
                        "allowzero=1 with a 0 in the target shape {} (an empty axis) is not supported",
                        show(&shape)
                    ));
                }
                let (axes, fixes) = reshape(&axes, &shape)?;
                for (axis, size) in fixes {
                    self.fix(axis, size)?;
                }
                let stage = self.stage;
                self.set(node, 0, Val::Seq { axes, stage });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn axis_dim(a: &Axis) -> Dim {
    match a {
        Axis::Steps => Dim::Steps,
        Axis::Batch => Dim::Batch,
        Axis::Rows { .. } => Dim::Unknown,
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

/// The length of `start..end` by `step` on an axis of `n` (ONNX Slice: negative positions
/// count from the end, then clamp).
pub(super) fn slice_len(n: i64, start: i64, end: i64, step: i64) -> Result<i64, String> {
    slice_span(n, start, end, step).map(|(_, count)| count)
}

/// The first position and the length of `start..end` by `step` on an axis of `n` (ONNX
/// Slice: negative positions count from the end, then clamp); the first is 0 when the slice
/// is empty.
pub(super) fn slice_span(n: i64, start: i64, end: i64, step: i64) -> Result<(i64, i64), String> {
    let at = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (s, e) = (at(start), at(end));
    Ok(match step {
        0 => return Err("a slice step of 0".into()),
        _ if n <= 0 => (0, 0),
        st if st > 0 => {
            let (s, e) = (s.clamp(0, n), e.clamp(0, n));
            (
                s,
                ((e - s).max(0) as u64).div_ceil(st.unsigned_abs()) as i64,
            )
        }
        st => {
            let (s, e) = (s.clamp(0, n - 1), e.clamp(-1, n - 1));
            (
                s,
                ((s - e).max(0) as u64).div_ceil(st.unsigned_abs()) as i64,
            )
        }
    })
}

impl Builder<'_> {
    /// A `Slice`'s (axis, start, end, step) per sliced axis of a rank-`rank` input: its
    /// attributes before opset 10, else its constant inputs (axes default to 0.., steps to
    /// 1); axes counted from the end resolved, each at most once.
    pub(super) fn slice_args(
        &self,
        node: &NodeProto,
        rank: usize,
    ) -> Result<Vec<(usize, i64, i64, i64)>, String> {
        let (starts, ends, axes, steps) = if self.opset < 10 {
            // Slice-1: starts, ends and axes are attributes.
            let list = |name: &str| attr(node, name).map(|a| a.ints.clone());
            let starts = list("starts").ok_or("attribute 'starts' is missing")?;
            let ends = list("ends").ok_or("attribute 'ends' is missing")?;
            (starts, ends, list("axes"), None)
        } else {
            let optional = |k: usize| -> Result<Option<Vec<i64>>, String> {
                match self.input(node, k)? {
                    Some(_) => self.ints(node, k).map(Some),
                    None => Ok(None),
                }
            };
            let (starts, ends) = (self.ints(node, 1)?, self.ints(node, 2)?);
            (starts, ends, optional(3)?, optional(4)?)
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err("starts, ends, axes and steps differ in length".into());
        }
        let rank = rank as i64;
        let mut seen = vec![false; rank as usize];
        let mut args = Vec::with_capacity(starts.len());
        for (((&s, &e), &a), &step) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
            if !(-rank..rank).contains(&a) {
                return Err(format!("axis {a} is out of range for rank {rank}"));
            }
            let a = a.rem_euclid(rank) as usize;
            if std::mem::replace(&mut seen[a], true) {
                return Err(format!("axis {a} is sliced twice"));
            }
            args.push((a, s, e, step));
        }
        Ok(args)
    }
}

/// Literal sizes a Reshape gives the steps or batch axis.
type Fixes = Vec<(Axis, usize)>;

/// How a target size keeps a sequence axis: copied (0 or its own symbolic size), inferred
/// (-1), or given as a literal size (which fixes that axis' size for every input).
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    Copy,
    Infer,
    Literal(usize),
}

fn keep(d: Dim, a: Axis, zero_copies: bool) -> Option<Keep> {
    match d {
        Dim::Known(0) if zero_copies => Some(Keep::Copy),
        Dim::Known(-1) => Some(Keep::Infer),
        Dim::Known(v) if v > 0 => usize::try_from(v).ok().map(Keep::Literal),
        Dim::Steps if a == Axis::Steps => Some(Keep::Copy),
        Dim::Batch if a == Axis::Batch => Some(Keep::Copy),
        _ => None,
    }
}

/// The width of `rest` (directions and features) merged into features. The layer's output
/// concatenates its directions (forward units, then reverse), so directions must come before
/// features; the other order would interleave them.
fn merged_width(rest: &[Axis]) -> Result<usize, String> {
    let mut width = 1usize;
    let mut features = false;
    for a in rest {
        match a {
            Axis::Dirs(d) if features && *d > 1 => {
                return Err(format!(
                    "merging {} puts the directions after the features, which interleaves the two directions' units; only [directions, features] can be merged (Transpose perm [0, 2, 1, 3])",
                    show(rest)
                ))
            }
            Axis::Dirs(d) => width *= d,
            Axis::Feat(Some(w)) => {
                features = true;
                width *= w
            }
            _ => return Err(format!("{} cannot be merged into features", show(rest))),
        }
    }
    Ok(width)
}

/// Reshapes the exporters emit: merging directions and hidden into features (rank 3, first two
/// axes kept), flattening steps and batch into rows (rank 2, before a Gemm), and restoring
/// them after it (rank 3 from rows). Target sizes may be symbolic (computed with Shape/Gather
/// from the sequence) or literal: a literal size for steps or batch is returned with its axis,
/// since it fixes that size for every input ([`FixedSizes`]).
fn reshape(axes: &[Axis], shape: &[Dim]) -> Result<(Vec<Axis>, Fixes), String> {
    let target = show(shape);
    let fixes = |kept: &[(Keep, Axis)]| -> Fixes {
        kept.iter()
            .filter_map(|&(k, a)| match k {
                Keep::Literal(v) => Some((a, v)),
                _ => None,
            })
            .collect()
    };
    if let [Axis::Rows { steps_first }, Axis::Feat(Some(w))] = axes {
        let (first, second) = if *steps_first {
            (Axis::Steps, Axis::Batch)
        } else {
            (Axis::Batch, Axis::Steps)
        };
        let order = if *steps_first {
            "steps, batch"
        } else {
            "batch, steps"
        };
        let refuse = || {
            format!(
                "Reshape of {w} features per row to {target} is not supported: expected [{order}, {w}] (or -1 for one of them)"
            )
        };
        let [a, b, c] = shape else {
            return Err(refuse());
        };
        let (Some(ka), Some(kb)) = (keep(*a, first, false), keep(*b, second, false)) else {
            return Err(refuse());
        };
        let inferred = shape.iter().filter(|d| **d == Dim::Known(-1)).count();
        if inferred > 1 || !matches!(c, Dim::Known(v) if *v == -1 || *v == *w as i64) {
            return Err(refuse());
        }
        let kept = fixes(&[(ka, first), (kb, second)]);
        return Ok((vec![first, second, Axis::Feat(Some(*w))], kept));
    }
    let lead_ok = |i: usize| matches!(axes.get(i), Some(Axis::Steps | Axis::Batch));
    let refuse = || {
        format!(
            "Reshape of {} to {target} is not supported (see docs/MODELS.md)",
            show(axes)
        )
    };
    match shape {
        [a, b, c] if lead_ok(0) && lead_ok(1) => {
            let (Some(ka), Some(kb)) = (keep(*a, axes[0], true), keep(*b, axes[1], true)) else {
                return Err(refuse());
            };
            let w = merged_width(&axes[2..])?;
            let infers = [ka, kb].iter().filter(|k| **k == Keep::Infer).count();
            let c_ok = match c {
                Dim::Known(-1) => infers == 0,
                Dim::Known(v) => *v == w as i64 && infers <= 1,
                _ => false,
            };
            if !c_ok {
                return Err(format!(
                    "Reshape of {} to {target} does not keep {w} features per step",
                    show(axes)
                ));
            }
            let kept = fixes(&[(ka, axes[0]), (kb, axes[1])]);
            Ok((vec![axes[0], axes[1], Axis::Feat(Some(w))], kept))
        }
        [Dim::Known(-1), c] if lead_ok(0) && lead_ok(1) => {
            let w = merged_width(&axes[2..])?;
            if *c != Dim::Known(w as i64) {
                return Err(format!(
                    "Reshape of {} to {target} does not keep {w} features per row",
                    show(axes)
                ));
            }
            let rows = Axis::Rows {
                steps_first: axes[0] == Axis::Steps,
            };
            Ok((vec![rows, Axis::Feat(Some(w))], Vec::new()))
        }
        _ => Err(refuse()),
    }
}
