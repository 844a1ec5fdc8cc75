//! Constant float tensors computed at import: `Slice`, `Concat` and `Unsqueeze` of
//! initializers. torch.onnx.export's dynamo exporter reorders an `nn.LSTM`'s gates (torch's
//! i, f, g, o to ONNX's i, o, f, c) with exactly these ops on the weights, and folds them into
//! new initializers only for small tensors: from `nn.LSTM(40, 64)` on, the graph keeps them.
//! Each op here follows the ONNX operator's definition on the whole tensor, so the LSTM node
//! reads the weights onnxruntime would compute.

use super::shapes::slice_span;
use super::*;

impl Builder<'_> {
    /// The float tensor input `k`, or an error naming it.
    fn float_input(&self, node: &NodeProto, k: usize) -> Result<(Vec<usize>, &[f32]), String> {
        match self.req(node, k)? {
            Val::Floats { dims, data } => Ok((dims.clone(), data)),
            _ => Err(format!("input {k} must be a constant float tensor")),
        }
    }

    /// `Slice` of a constant float tensor by constant starts, ends, axes and steps (ONNX's
    /// rules: negative positions count from the end, positions are clamped, any step but 0).
    pub(super) fn slice_floats(&mut self, node: &NodeProto) -> Result<(), String> {
        let (dims, data) = self.float_input(node, 0)?;
        // The positions read along each axis: all of them unless sliced.
        let mut picks: Vec<Vec<usize>> = dims.iter().map(|&n| (0..n).collect()).collect();
        for (a, s, e, step) in self.slice_args(node, dims.len())? {
            let (first, count) = slice_span(dims[a] as i64, s, e, step)?;
            picks[a] = (0..count).map(|i| (first + i * step) as usize).collect();
        }
        let out_dims: Vec<usize> = picks.iter().map(Vec::len).collect();
        let data = gather(&dims, data, &picks);
        self.set(
            node,
            0,
            Val::Floats {
                dims: out_dims,
                data,
            },
        );
        Ok(())
    }

    /// `Concat` of constant float tensors along `axis` (negative counts from the end): equal
    /// ranks, equal sizes on every other axis.
    pub(super) fn concat_floats(&mut self, node: &NodeProto) -> Result<(), String> {
        let inputs = (0..node.input.len())
            .map(|k| self.float_input(node, k))
            .collect::<Result<Vec<_>, _>>()?;
        let (first, _) = &inputs[0];
        let rank = first.len() as i64;
        let axis = attr_i(node, "axis", 0);
        if !(-rank..rank).contains(&axis) {
            return Err(format!("axis {axis} is out of range for rank {rank}"));
        }
        let axis = axis.rem_euclid(rank) as usize;
        let mut dims = first.clone();
        dims[axis] = 0;
        for (k, (d, _)) in inputs.iter().enumerate() {
            let other_axes_agree =
                d.len() == first.len() && (0..d.len()).all(|a| a == axis || d[a] == first[a]);
            if !other_axes_agree {
                return Err(format!(
                    "input {k} has shape {}, which does not concatenate with {} along axis {axis}",
                    show(d),
                    show(first)
                ));
            }
            dims[axis] += d[axis];
        }
        let outer: usize = first[..axis].iter().product();
        let mut data = Vec::with_capacity(dims.iter().product());
        for o in 0..outer {
            for (d, v) in &inputs {
                let chunk: usize = d[axis..].iter().product();
                data.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
            }
        }
        self.set(node, 0, Val::Floats { dims, data });
        Ok(())
    }

    /// `Unsqueeze` of a constant float tensor: size-1 axes inserted at `axes` (positions in
    /// the result, negative counting from its end; an attribute before opset 13).
    pub(super) fn unsqueeze_floats(&mut self, node: &NodeProto) -> Result<(), String> {
        let (dims, data) = self.float_input(node, 0)?;
        let axes = if self.opset < 13 {
            attr(node, "axes").map_or_else(Vec::new, |a| a.ints.clone())
        } else {
            self.ints(node, 1)?
        };
        let rank = (dims.len() + axes.len()) as i64;
        let mut at = axes
            .iter()
            .map(|&a| {
                if (-rank..rank).contains(&a) {
                    Ok(a.rem_euclid(rank) as usize)
                } else {
                    Err(format!("axis {a} is out of range for rank {rank}"))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        at.sort_unstable();
        if at.is_empty() || at.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("axes {axes:?}: expected distinct axes"));
        }
        let mut out = dims;
        for a in at {
            out.insert(a, 1);
        }
        let data = data.to_vec();
        self.set(node, 0, Val::Floats { dims: out, data });
        Ok(())
    }
}

/// The elements of a row-major `dims` tensor at every combination of `picks` (one list of
/// positions per axis), in row-major order of the result.
fn gather(dims: &[usize], data: &[f32], picks: &[Vec<usize>]) -> Vec<f32> {
    let total: usize = picks.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let mut strides = vec![1usize; dims.len()];
    for a in (0..dims.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * dims[a + 1];
    }
    // An odometer over the result's positions.
    let mut at = vec![0usize; dims.len()];
    loop {
        let offset: usize = (0..dims.len()).map(|a| picks[a][at[a]] * strides[a]).sum();
        out.push(data[offset]);
        let mut a = dims.len();
        loop {
            if a == 0 {
                return out;
            }
            a -= 1;
            at[a] += 1;
            if at[a] < picks[a].len() {
                break;
            }
            at[a] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{floats, int, int64s, ints, lstm, node, parse_graph, H, I};
    use super::super::*;
    use super::gather;

    /// `floats(name, dims)`'s values, as the test's own oracle reads them.
    fn values(dims: &[usize]) -> Vec<f32> {
        let t = floats("v", dims);
        t.float_data
    }

    /// W from a reversed row order (step -1), R from its two halves swapped (Concat) and a
    /// column window (a negative axis), each unsqueezed to `[1, 4H, ...]`: the weights the
    /// importer reads must be those computed here by plain loops.
    #[test]
    fn weights_computed_from_initializers() {
        let h = H as i64;
        let wt = values(&[4 * H, I]);
        let rt = values(&[4 * H, H + 2]);
        let mut want_w = Vec::new();
        for row in (0..4 * H).rev() {
            want_w.extend_from_slice(&wt[row * I..(row + 1) * I]);
        }
        let mut want_r = Vec::new();
        for row in (2 * H..4 * H).chain(0..2 * H) {
            want_r.extend_from_slice(&rt[row * (H + 2) + 1..row * (H + 2) + 1 + H]);
        }
        for opset in [11, 17] {
            let (l, mut inits) = lstm(1, vec![]);
            inits.retain(|t| t.name == "B");
            inits.extend([floats("Wt", &[4 * H, I]), floats("Rt", &[4 * H, H + 2])]);
            let unsqueeze = |x: &str, out: &str| {
                if opset < 13 {
                    node("Unsqueeze", out, &[x], out, vec![ints("axes", &[0])])
                } else {
                    node("Unsqueeze", out, &[x, "zero"], out, vec![])
                }
            };
            let slice = |x: &str, args: [&str; 4], out: &str| {
                let mut inputs = vec![x];
                inputs.extend(args);
                node("Slice", out, &inputs, out, vec![])
            };
            inits.extend([
                int64s("zero", &[0]),
                int64s("minus1", &[-1]),
                int64s("lowest", &[i64::MIN]),
                int64s("s0", &[0, 1]),
                int64s("e0", &[2 * h, h + 1]),
                int64s("s1", &[2 * h, 1]),
                int64s("e1", &[4 * h, h + 1]),
                int64s("rows_cols", &[0, -1]),
                int64s("ones", &[1, 1]),
            ]);
            let nodes = vec![
                slice("Wt", ["minus1", "lowest", "zero", "minus1"], "Wr"),
                unsqueeze("Wr", "W"),
                slice("Rt", ["s1", "e1", "rows_cols", "ones"], "Rhi"),
                slice("Rt", ["s0", "e0", "rows_cols", "ones"], "Rlo"),
                node("Concat", "cat", &["Rhi", "Rlo"], "Rc", vec![int("axis", 0)]),
                unsqueeze("Rc", "R"),
                l,
            ];
            let m = parse_graph(opset, nodes, inits, None, "Y").unwrap();
            let cell = &m.layers[0].cells[0];
            // The oracle: the same layer with W and R given as tensors of the expected values.
            let (l, mut direct) = lstm(1, vec![]);
            for t in direct.iter_mut() {
                match t.name.as_str() {
                    "W" => t.float_data = want_w.clone(),
                    "R" => t.float_data = want_r.clone(),
                    _ => {}
                }
            }
            let want = parse_graph(opset, vec![l], direct, None, "Y").unwrap();
            assert_eq!(cell, &want.layers[0].cells[0], "opset {opset}");
        }
    }

    #[test]
    fn malformed_float_ops_are_refused() {
        let run = |nodes: Vec<NodeProto>, extra: Vec<TensorProto>| {
            let (l, mut inits) = lstm(1, vec![]);
            inits.retain(|t| t.name != "W");
            inits.extend(extra);
            let mut nodes = nodes;
            nodes.push(l);
            parse_graph(17, nodes, inits, None, "Y").unwrap_err()
        };
        let a = || floats("A", &[4 * H, I]);
        let b = || floats("Bt", &[4 * H, I + 1]);
        let e = run(
            vec![node("Concat", "c", &["A", "Bt"], "W", vec![int("axis", 0)])],
            vec![a(), b()],
        );
        assert!(e.contains("does not concatenate"), "{e}");
        let e = run(
            vec![node("Unsqueeze", "u", &["A", "ax"], "W", vec![])],
            vec![a(), int64s("ax", &[0, -4])],
        );
        assert!(e.contains("distinct axes"), "{e}");
        let e = run(
            vec![node("Slice", "s", &["A", "st", "en", "ax"], "W", vec![])],
            vec![
                a(),
                int64s("st", &[0, 0]),
                int64s("en", &[1, 1]),
                int64s("ax", &[1, -1]),
            ],
        );
        assert!(e.contains("sliced twice"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn gather_picks_row_major() {
        // A 2 x 3 tensor 0..6: rows reversed, columns 2 and 0.
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let got = gather(&[2, 3], &data, &[vec![1, 0], vec![2, 0]]);
        assert_eq!(got, [5.0, 3.0, 2.0, 0.0]);
        assert!(gather(&[2, 3], &data, &[vec![], vec![0]]).is_empty());
        // A scalar (rank 0) is its one value.
        assert_eq!(gather(&[], &[7.0], &[]), [7.0]);
    }
}
