//! Arithmetic on shape vectors (the integer values `Shape` gives, with symbolic steps and
//! batch): Mul / Add / Sub element by element and Slice, as torch's dynamo exporter computes
//! the target of a Reshape, and the Unsqueeze and Concat that build them.

use super::shapes::slice_span;
use super::*;

impl Builder<'_> {
    /// Whether every input of `node` is an integer (shape) value.
    pub(super) fn all_ints(&self, node: &NodeProto) -> bool {
        (node.input.iter()).all(|n| matches!(self.val(n), Some(Val::Ints { .. })))
    }

    /// Mul / Add / Sub of shape values, element by element (a one-value operand broadcast):
    /// known sizes give known sizes, anything symbolic an unknown one (1 * x and 0 + x keep x).
    pub(super) fn arithmetic(&mut self, node: &NodeProto) -> Result<(), String> {
        let get = |k: usize| match self.req(node, k) {
            Ok(Val::Ints { vals, scalar }) => Ok((vals.clone(), *scalar)),
            Ok(_) => Err(format!("input {k} must be an integer vector")),
            Err(e) => Err(e),
        };
        let ((a, sa), (b, sb)) = (get(0)?, get(1)?);
        let n = a.len().max(b.len());
        if (a.len() != n && a.len() != 1) || (b.len() != n && b.len() != 1) {
            return Err(format!(
                "operands of {} and {} values do not broadcast",
                a.len(),
                b.len()
            ));
        }
        let op = node.op_type.as_str();
        let vals = (0..n)
            .map(|i| {
                let (x, y) = (a[i.min(a.len() - 1)], b[i.min(b.len() - 1)]);
                match (op, x, y) {
                    ("Mul", Dim::Known(p), Dim::Known(q)) => {
                        p.checked_mul(q).map_or(Dim::Unknown, Dim::Known)
                    }
                    ("Add", Dim::Known(p), Dim::Known(q)) => {
                        p.checked_add(q).map_or(Dim::Unknown, Dim::Known)
                    }
                    ("Sub", Dim::Known(p), Dim::Known(q)) => {
                        p.checked_sub(q).map_or(Dim::Unknown, Dim::Known)
                    }
                    ("Mul", Dim::Known(1), d) | ("Mul", d, Dim::Known(1)) => d,
                    ("Add", Dim::Known(0), d) | ("Add" | "Sub", d, Dim::Known(0)) => d,
                    _ => Dim::Unknown,
                }
            })
            .collect();
        self.set(
            node,
            0,
            Val::Ints {
                vals,
                scalar: sa && sb,
            },
        );
        Ok(())
    }

    /// Slice of a shape vector (axis 0), by ONNX's rules (negative positions from the end,
    /// clamped; any step but 0).
    pub(super) fn slice_ints(&mut self, node: &NodeProto) -> Result<(), String> {
        let Val::Ints { vals, .. } = self.req(node, 0)?.clone() else {
            return Err("input 0 must be an integer vector".into());
        };
        let one = |k: usize, default: i64| -> Result<i64, String> {
            match self.input(node, k)? {
                None => Ok(default),
                Some(_) => match self.ints(node, k)?[..] {
                    [v] => Ok(v),
                    _ => Err(format!(
                        "input {k} of a shape-vector slice must have one value"
                    )),
                },
            }
        };
        if self.opset < 10 {
            return Err("slicing a shape vector needs opset 10 or later".into());
        }
        let (start, end, axis, step) = (one(1, 0)?, one(2, i64::MAX)?, one(3, 0)?, one(4, 1)?);
        if axis != 0 && axis != -1 {
            return Err(format!("axis {axis} of a shape vector (one axis)"));
        }
        let (first, count) = slice_span(vals.len() as i64, start, end, step)?;
        let vals = (0..count)
            .map(|i| vals[(first + i * step) as usize])
            .collect();
        self.set(
            node,
            0,
            Val::Ints {
                vals,
                scalar: false,
            },
        );
        Ok(())
    }

    /// Unsqueeze of a scalar shape value (`Gather` of one size) into a one-value vector: its
    /// one new axis is 0 (or -1), given as the opset defines (an attribute before 13).
    pub(super) fn unsqueeze_scalar(&mut self, node: &NodeProto) -> Result<(), String> {
        let Val::Ints { vals, scalar: true } = self.req(node, 0)?.clone() else {
            return Err("only scalar shape values can be unsqueezed".into());
        };
        let axes = if self.opset < 13 {
            attr(node, "axes").map_or_else(Vec::new, |a| a.ints.clone())
        } else {
            self.ints(node, 1)?
        };
        if axes != [0] && axes != [-1] {
            return Err(format!(
                "unsqueezes a scalar at axes {axes:?}; its result has one axis (0 or -1)"
            ));
        }
        let scalar = false;
        self.set(node, 0, Val::Ints { vals, scalar });
        Ok(())
    }

    /// Concat of shape vectors, along their one axis (0 or -1).
    pub(super) fn concat_ints(&mut self, node: &NodeProto) -> Result<(), String> {
        let axis = attr_i(node, "axis", 0);
        if axis != 0 && axis != -1 {
            return Err(format!(
                "concatenates shape vectors along axis {axis}; they have one axis (0 or -1)"
            ));
        }
        let mut vals = Vec::new();
        for k in 0..node.input.len() {
            match self.req(node, k)? {
                Val::Ints { vals: v, .. } => vals.extend_from_slice(v),
                _ => return Err("only shape vectors can be concatenated".into()),
            }
        }
        let scalar = false;
        self.set(node, 0, Val::Ints { vals, scalar });
        Ok(())
    }
}
