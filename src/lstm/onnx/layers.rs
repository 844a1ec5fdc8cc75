//! The model-bearing nodes: ONNX `LSTM` layers (gate order i, o, f, c, reordered to the
//! internal i, f, g, o) and the dense head: one or more layers of MatMul / Gemm, Add, and
//! Relu / Tanh / Sigmoid / Softmax.

use super::*;

impl Builder<'_> {
    pub(super) fn lstm(&mut self, node: &NodeProto) -> Result<(), String> {
        let axes = self.seq(node, 0)?;
        if !self.head.layers.is_empty() {
            return Err("an LSTM after the dense head is not supported".into());
        }
        if self.head.input != crate::lstm::HeadInput::EveryStep {
            return Err("an LSTM after the last step was taken is not supported".into());
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
        if let Some(a) = attr(node, "activations") {
            let names: Vec<String> = a
                .strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                .collect();
            // Three per direction, as onnxruntime checks (a bidirectional node lists six);
            // an empty list is the defaults there.
            if !names.is_empty() && names.len() != 3 * d {
                return Err(format!(
                    "activations {names:?}: {} entries, expected 3 per direction ({}) for a \
                     {} LSTM",
                    names.len(),
                    3 * d,
                    direction.name()
                ));
            }
            if names.chunks(3).any(|c| c != ["sigmoid", "tanh", "tanh"]) {
                return Err(format!(
                    "activations {names:?}: only the default Sigmoid, Tanh, Tanh are supported"
                ));
            }
        }
        let (wd, w) = self.floats(node, 1, "W")?.ok_or("W is missing")?;
        let (rd, r) = self.floats(node, 2, "R")?.ok_or("R is missing")?;
        let hidden = match attr(node, "hidden_size") {
            Some(a) if a.i < 1 => return Err(format!("hidden_size is {}, must be >= 1", a.i)),
            Some(a) => {
                usize::try_from(a.i).map_err(|_| format!("hidden_size {} is too large", a.i))?
            }
            None => rd.get(2).copied().unwrap_or(0),
        };
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
        let [Axis::Steps, Axis::Batch, Axis::Feat(width)] = axes[..] else {
            return Err(format!(
                "X has axes {}; expected [steps, batch, features ({input_size})]",
                show(&axes)
            ));
        };
        // The axes are in order: a reading that gets here beats one that fails on them, so a
        // width that does not match is blamed on the width, not on the axes.
        self.x_accepted += 1;
        if let Some(w) = width.filter(|&w| w != input_size) {
            return Err(match &self.embedding_by {
                Some(by) if self.layers.is_empty() => format!(
                    "the embedding ({by}) gives rows of {w} features, but the LSTM's input size (the last axis of W) is {input_size}"
                ),
                _ => format!(
                    "X has axes {}; expected [steps, batch, features ({input_size})]",
                    show(&axes)
                ),
            });
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
        let layer = self.layers.len() - 1;
        let parts = (0..d).map(|k| (layer, k)).collect();
        self.set(
            node,
            1,
            Val::Final {
                parts,
                stacked: true,
            },
        );
        self.set(node, 2, Val::State);
        Ok(())
    }

    /// An initial state `[D, batch, H]`: one vector per direction, the same for every sequence.
    /// A literal batch size fixes the input's ([`FixedSizes`]): onnxruntime refuses other
    /// batch sizes.
    fn initial_state(
        &mut self,
        node: &NodeProto,
        k: usize,
        what: &str,
        d: usize,
        h: usize,
    ) -> Result<Option<Vec<Vec<f32>>>, String> {
        let expected = format!("expected [{d}, batch, {h}]");
        let state = match self.input(node, k)? {
            None => return Ok(None),
            Some(Val::Filled { value, dims }) => {
                if dims.len() != 3
                    || dims[0] != Dim::Known(d as i64)
                    || !matches!(dims[2], Dim::Known(x) if x == h as i64)
                {
                    return Err(format!("{what} has shape {}, {expected}", show(dims)));
                }
                let batch = match dims[1] {
                    Dim::Known(n) if n < 1 => {
                        return Err(format!("{what} has shape {}, {expected}", show(dims)))
                    }
                    // onnxruntime checks it against the batch: it runs only when T = N.
                    Dim::Steps => {
                        return Err(format!(
                            "{what} has shape {}, {expected}: its second size is the input's \
                             steps, not its batch",
                            show(dims)
                        ))
                    }
                    Dim::Known(n) => Some(n as usize),
                    _ => None,
                };
                (vec![vec![*value; h]; d], batch)
            }
            Some(Val::Floats { dims, data }) => {
                if dims.len() != 3 || dims[0] != d || dims[2] != h || dims[1] == 0 {
                    return Err(format!("{what} has shape {}, {expected}", show(dims)));
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
                (rows, Some(n))
            }
            Some(_) => return Err(format!("{what} must be a constant or a filled tensor")),
        };
        if let Some(n) = state.1 {
            self.fix(Axis::Batch, n)?;
        }
        Ok(Some(state.0))
    }

    /// Features of a sequence value: the last axis, with steps and batch (or rows) before it.
    fn features(axes: &[Axis]) -> Result<usize, String> {
        match axes {
            [Axis::Steps, Axis::Batch, Axis::Feat(Some(w))]
            | [Axis::Batch, Axis::Steps, Axis::Feat(Some(w))]
            | [Axis::Rows { .. }, Axis::Feat(Some(w))]
            | [Axis::Batch, Axis::Feat(Some(w))] => Ok(*w),
            _ => Err(format!(
                "the dense head needs [steps, batch, features]; the value has axes {}",
                show(axes)
            )),
        }
    }

    /// The head's bias and activation act on the features, which must be the last axis.
    fn features_last(axes: &[Axis]) -> Result<(), String> {
        match axes.last() {
            Some(Axis::Feat(Some(_))) => Ok(()),
            _ => Err(format!(
                "the value has axes {}; the head's ops need the features last",
                show(axes)
            )),
        }
    }

    pub(super) fn dense(&mut self, node: &NodeProto) -> Result<(), String> {
        // ONNX's transA / transB are booleans: onnxruntime transposes for any nonzero value.
        let trans_a = (node.op_type == "Gemm")
            .then(|| attr_i(node, "transA", 0))
            .filter(|&t| t != 0);
        let axes = match node.input.first().and_then(|n| self.val(n)) {
            Some(Val::State | Val::Final { .. }) => {
                if let (Some(t), Some(Val::Final { .. })) =
                    (trans_a, node.input.first().and_then(|n| self.val(n)))
                {
                    // A is [batch, features]: read transposed, its batch would be summed as
                    // features. A final state reaches a Gemm only as [batch, features] (the
                    // importer follows no Transpose of states: that is refused as the
                    // untracked state it makes), so transA never fits here.
                    return Err(format!(
                        "transA={t} reads the LSTM's last state, [batch, features], transposed, as [features, batch] (each output would mix sequences); a dense head needs [batch, features]: drop transA"
                    ));
                }
                self.final_head(node)?
            }
            _ => self.seq(node, 0)?,
        };
        // transA reads A = [features, rows] (a Transpose of the head's input, perm [1, 0])
        // as [rows, features]: the same product as on the untransposed value.
        let axes = match (trans_a, &axes[..]) {
            (None, _) => axes,
            (Some(_), [a, b]) => vec![*b, *a],
            (Some(t), _) => {
                return Err(format!(
                    "Gemm takes a matrix; the value has axes {} (transA={t})",
                    show(&axes)
                ))
            }
        };
        let fin = match (trans_a, Self::features(&axes)) {
            (Some(t), Err(_)) => {
                return Err(format!(
                    "transA={t} reads the value transposed, as {}; the dense head needs [rows or batch, features] after it: give A as [features, rows] (a Transpose perm [1, 0] of the head's input) or drop transA",
                    show(&axes)
                ))
            }
            (_, fin) => fin?,
        };
        if node.op_type == "Gemm" && axes.len() != 2 {
            return Err(format!(
                "Gemm takes a matrix (rows x features); the value has axes {} (flatten it with a Reshape to [-1, {fin}], or use MatMul)",
                show(&axes)
            ));
        }
        let (wd, w) = self
            .floats(node, 1, "the weight")?
            .ok_or("weight is missing")?;
        let trans_b = node.op_type == "Gemm" && attr_i(node, "transB", 0) != 0;
        if node.op_type == "Gemm" {
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
        let mut bias = None;
        if node.op_type == "Gemm" {
            if let Some((cd, c)) = self.floats(node, 2, "the bias")? {
                bias = Some(bias_values(&cd, &c, out, 2)?);
            }
        }
        self.head.layers.push(DenseParts {
            input_size: fin,
            output_size: out,
            weight,
            bias,
            activation: None,
        });
        let mut axes = axes;
        let last = axes.len() - 1;
        axes[last] = Axis::Feat(Some(out));
        self.advance(node, axes);
        Ok(())
    }

    pub(super) fn bias(&mut self, node: &NodeProto) -> Result<(), String> {
        let (seq_at, const_at) = match (self.input(node, 0)?, self.input(node, 1)?) {
            (Some(Val::Seq { .. }), _) => (0, 1),
            (_, Some(Val::Seq { .. })) => (1, 0),
            _ => return Err("only adding a bias to the dense head's output is supported".into()),
        };
        let axes = self.seq(node, seq_at)?;
        let Some(dense) = self.head.layers.last() else {
            return Err(
                "adding to the LSTM output is not supported (only a bias after the dense layer)"
                    .into(),
            );
        };
        if dense.bias.is_some() || dense.activation.is_some() {
            return Err(
                "a second bias on a dense layer, or one after its activation, is not supported"
                    .into(),
            );
        }
        let out = dense.output_size;
        let (bd, bv) = self
            .floats(node, const_at, "the bias")?
            .ok_or("bias is missing")?;
        Self::features_last(&axes)?;
        let bv = bias_values(&bd, &bv, out, axes.len())?;
        if let Some(dense) = self.head.layers.last_mut() {
            dense.bias = Some(bv);
        }
        self.advance(node, axes);
        Ok(())
    }

    /// Relu, Tanh, Sigmoid or Softmax after a dense layer of the head (and its bias).
    pub(super) fn activation(&mut self, node: &NodeProto) -> Result<(), String> {
        let axes = self.seq(node, 0)?;
        match self.head.layers.last() {
            None => {
                return Err(
                    "an activation on the LSTM output is not supported (only after a dense layer of the head)"
                        .into(),
                )
            }
            Some(d) if d.activation.is_some() => {
                return Err(
                    "a second activation after a dense layer of the head is not supported".into(),
                )
            }
            Some(_) => {}
        }
        Self::features_last(&axes)?;
        if node.op_type == "Softmax" {
            // Opsets before 13 default to axis 1 and normalize over every axis from `axis`
            // on (the value flattened to 2-D); from 13 over `axis` alone, default -1. Both
            // are the per-feature softmax only when `axis` is the last axis.
            let rank = axes.len() as i64;
            let default = if self.opset < 13 { 1 } else { -1 };
            let axis = attr_i(node, "axis", default);
            if axis.rem_euclid(rank.max(1)) != rank - 1 || !(-rank..rank).contains(&axis) {
                let given = if attr(node, "axis").is_some() {
                    ""
                } else {
                    " (the default in opset"
                };
                let tail = if given.is_empty() {
                    String::new()
                } else {
                    format!("{given} {})", self.opset)
                };
                return Err(format!(
                    "softmax over axis {axis}{tail} of {}; only the feature (last) axis is supported",
                    show(&axes)
                ));
            }
        }
        let activation = match node.op_type.as_str() {
            "Softmax" => HeadActivation::Softmax,
            "Relu" => HeadActivation::Relu,
            "Tanh" => HeadActivation::Tanh,
            _ => HeadActivation::Sigmoid,
        };
        if let Some(dense) = self.head.layers.last_mut() {
            dense.activation = Some(activation);
        }
        self.advance(node, axes);
        Ok(())
    }
}

/// The `out` bias values of a constant added to a value of `rank` axes with the features
/// last, as ONNX broadcasts it: `[out]`, or one value for every feature (`[1]`, a 0-d
/// scalar), either with leading axes of size 1 (`[1, out]`, `[1, 1, 1]`). Any other shape
/// broadcasts over steps or batch, or adds axes.
fn bias_values(dims: &[usize], data: &[f32], out: usize, rank: usize) -> Result<Vec<f32>, String> {
    let last = dims.last().copied().unwrap_or(1);
    let fits = dims.len() <= rank.max(1)
        && (last == out || last == 1)
        && dims.iter().rev().skip(1).all(|&d| d == 1);
    match data {
        _ if !fits => Err(format!(
            "bias has shape {}, expected [{out}] (or [1, {out}], or one value for all, [1] or a scalar): one value per output feature",
            show(dims)
        )),
        [one] => Ok(vec![*one; out]),
        _ => Ok(data.to_vec()),
    }
}
