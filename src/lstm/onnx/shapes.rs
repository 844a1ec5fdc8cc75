//! Constants, shape arithmetic and layout changes: the values torch.onnx.export computes to
//! build zero initial states (Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Slice,
//! Expand) and the Squeeze / Transpose / Reshape it puts between layers, tracked as axes of
//! the sequence.

use super::*;

impl Builder {
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
                let shape = self.dims(node, 1)?;
                let axes = reshape(&axes, &shape)?;
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

/// Whether a target dimension keeps the sequence axis `a` in place: 0 (copy), -1 (inferred),
/// or the axis' own symbolic size.
fn keeps(d: Dim, a: Axis) -> bool {
    matches!(
        (d, a),
        (Dim::Known(0 | -1), _) | (Dim::Steps, Axis::Steps) | (Dim::Batch, Axis::Batch)
    )
}

/// Reshapes the exporters emit: merging directions and hidden into features (rank 3, first two
/// axes kept), flattening steps and batch into rows (rank 2, before a Gemm), and restoring
/// them after it (rank 3 from rows). Target sizes may be symbolic (computed with Shape/Gather
/// from the sequence); a constant size for steps or batch is taken to be that axis (the model
/// description is shape-polymorphic, so it cannot be checked against one input).
fn reshape(axes: &[Axis], shape: &[Dim]) -> Result<Vec<Axis>, String> {
    let shown: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Known(v) => v.to_string(),
            Dim::Steps => "steps".into(),
            Dim::Batch => "batch".into(),
            Dim::Unknown => "?".into(),
        })
        .collect();
    let shape_str = format!("[{}]", shown.join(", "));
    if let [Axis::Rows { steps_first }, Axis::Feat(Some(w))] = axes {
        let (first, second) = if *steps_first {
            (Axis::Steps, Axis::Batch)
        } else {
            (Axis::Batch, Axis::Steps)
        };
        let lead = |d: Dim, a: Axis| match d {
            Dim::Known(0) => false,
            Dim::Known(v) if v > 0 => true,
            d => keeps(d, a),
        };
        let inferred = shape.iter().filter(|d| **d == Dim::Known(-1)).count();
        return match shape {
            [a, b, c]
                if lead(*a, first)
                    && lead(*b, second)
                    && inferred <= 1
                    && matches!(c, Dim::Known(v) if *v == -1 || *v == *w as i64) =>
            {
                Ok(vec![first, second, Axis::Feat(Some(*w))])
            }
            _ => Err(format!(
                "Reshape of {w} features per row to {shape_str} is not supported: expected [{}, {}, {w}] (or -1 for one of them)",
                if *steps_first { "steps" } else { "batch" },
                if *steps_first { "batch" } else { "steps" },
            )),
        };
    }
    let shape: Vec<i64> = shape
        .iter()
        .enumerate()
        .map(|(k, d)| match (d, axes.get(k)) {
            (Dim::Known(v), _) => Ok(*v),
            (d, Some(a)) if keeps(*d, *a) => Ok(0),
            _ => Err(format!(
                "Reshape to {shape_str}: a symbolic size that does not keep its axis"
            )),
        })
        .collect::<Result<_, _>>()?;
    let shape = &shape[..];
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
            Ok(vec![
                Axis::Rows {
                    steps_first: axes[0] == Axis::Steps,
                },
                Axis::Feat(Some(w)),
            ])
        }
        _ => Err(format!(
            "Reshape of axes {axes:?} to {shape:?} is not supported"
        )),
    }
}
