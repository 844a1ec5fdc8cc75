//! One vector per sequence, the two ways a PyTorch classifier takes it: the last step of the
//! sequence (`fc(y[:, -1])`, a Gather along the steps) and the final states (`fc(h_n[-1])`,
//! `fc(cat(h_n[-2], h_n[-1]))`: each layer's `Y_h` concatenated into `h_n`, one
//! layer-direction gathered, directions concatenated on features). Other ops on last states
//! compute outputs the model does not give: their results stay states, refused wherever the
//! data path or the head uses them.

use super::*;
use crate::lstm::HeadInput;

/// What a head on a state may read, for messages.
const FINAL_FORMS: &str = "`fc(h_n[-1])` of a one-direction model or `fc(cat(h_n[-2], h_n[-1]))` of a bidirectional one (the last layer's final state of every direction, in order)";

impl Builder<'_> {
    /// Handles an op whose inputs are last states and constants (true), or leaves it (false).
    pub(super) fn state_op(&mut self, node: &NodeProto, any_seq: bool) -> Result<bool, String> {
        let is_state = |v: Option<&Val>| matches!(v, Some(Val::State | Val::Final { .. }));
        let any_state = (node.input.iter()).any(|n| is_state(self.val(n)));
        if !any_state || any_seq || node.op_type == "LSTM" {
            return Ok(false);
        }
        for name in node.input.iter().filter(|n| !n.is_empty()) {
            self.produced(name)?;
        }
        let out = match node.op_type.as_str() {
            "MatMul" | "Gemm" => {
                self.dense(node)?;
                return Ok(true);
            }
            "Add" | "Sigmoid" | "Softmax" => {
                return Err(format!("a head on an LSTM's last state is supported as {FINAL_FORMS}, with its bias and activation after the dense layer"));
            }
            "Identity" => node.input.first().and_then(|n| self.val(n)).cloned(),
            "Concat" => self.concat_finals(node),
            "Gather" => self.gather_final(node),
            "Squeeze" => self.squeeze_final(node),
            _ => None,
        };
        self.set(node, 0, out.unwrap_or(Val::State));
        for k in 1..node.output.len() {
            self.set(node, k, Val::State);
        }
        Ok(true)
    }

    /// Final states joined: stacked ones on axis 0 (`h_n` of every layer), single ones on
    /// features (`cat(h_n[-2], h_n[-1])`).
    fn concat_finals(&self, node: &NodeProto) -> Option<Val> {
        let mut parts = Vec::new();
        let mut kind = None;
        for name in &node.input {
            let Some(Val::Final { parts: p, stacked }) = self.val(name) else {
                return None;
            };
            if kind.is_some_and(|k| k != *stacked) {
                return None;
            }
            kind = Some(*stacked);
            parts.extend_from_slice(p);
        }
        let stacked = kind?;
        let axis = attr_i(node, "axis", 0);
        let fits = if stacked {
            axis == 0 || axis == -3
        } else {
            axis == 1 || axis == -1
        };
        fits.then_some(Val::Final { parts, stacked })
    }

    /// The (layer, direction) pairs of input 0 when it is stacked final states.
    fn stacked(&self, node: &NodeProto) -> Option<&[(usize, usize)]> {
        match self.val(node.input.first()?)? {
            Val::Final {
                parts,
                stacked: true,
            } => Some(parts),
            _ => None,
        }
    }

    /// One layer-direction of stacked final states, by a constant scalar index on axis 0.
    fn gather_final(&self, node: &NodeProto) -> Option<Val> {
        let parts = self.stacked(node)?;
        let Some(Val::Ints { vals, scalar: true }) = self.val(node.input.get(1)?) else {
            return None;
        };
        let n = parts.len() as i64;
        match vals[..] {
            // Axis 0 of `[pairs, batch, H]`, or -3 counted from the end.
            [Dim::Known(i)]
                if matches!(attr_i(node, "axis", 0), 0 | -3) && (-n..n).contains(&i) =>
            {
                Some(Val::Final {
                    parts: vec![parts[i.rem_euclid(n) as usize]],
                    stacked: false,
                })
            }
            _ => None,
        }
    }

    /// Stacked final states of one layer-direction with axis 0 squeezed (`h_n.squeeze(0)`).
    fn squeeze_final(&self, node: &NodeProto) -> Option<Val> {
        let parts = self.stacked(node)?;
        let axes = match node.input.get(1).filter(|n| !n.is_empty()) {
            Some(n) => match self.val(n)? {
                Val::Ints { vals, .. } => vals.clone(),
                _ => return None,
            },
            None => (attr(node, "axes")?.ints.iter())
                .map(|&a| Dim::Known(a))
                .collect(),
        };
        let zero = matches!(axes[..], [Dim::Known(0)] | [Dim::Known(-3)]);
        (parts.len() == 1 && zero).then(|| Val::Final {
            parts: parts.to_vec(),
            stacked: false,
        })
    }

    /// The head's input axes when the dense layer reads final states: the last layer's, every
    /// direction in order.
    pub(super) fn final_head(&mut self, node: &NodeProto) -> Result<Vec<Axis>, String> {
        let name = node.input.first().map_or("", String::as_str);
        let Some(Val::Final {
            parts,
            stacked: false,
        }) = self.val(name)
        else {
            return Err(format!(
                "a head on an LSTM's last state is supported as {FINAL_FORMS}; '{name}' is another part of the states, or made by an op the importer does not follow on states (only Concat, Gather of one index, Squeeze of axis 0 and Identity)"
            ));
        };
        let last = self.layers.len() - 1;
        let layer = &self.layers[last];
        let want: Vec<(usize, usize)> = (0..layer.direction.count()).map(|k| (last, k)).collect();
        if *parts != want {
            let got: Vec<String> = parts
                .iter()
                .map(|(l, k)| format!("layer {l} direction {k}"))
                .collect();
            return Err(format!(
                "the head reads the final states of {}; supported: {FINAL_FORMS}",
                got.join(", ")
            ));
        }
        if self.head.input != HeadInput::EveryStep {
            return Err(
                "the head reads one vector per sequence twice (the last step and the final states)"
                    .into(),
            );
        }
        self.head.input = HeadInput::FinalState;
        Ok(vec![Axis::Batch, Axis::Feat(Some(layer.output_size()))])
    }

    /// `y[:, -1]` (or `y[-1]` time-major): the last step of the sequence, by a Gather along its
    /// steps axis; the head after it runs once per sequence.
    pub(super) fn last_step(&mut self, node: &NodeProto) -> Result<(), String> {
        let axes = self.seq(node, 0)?;
        let index = match self.req(node, 1)? {
            Val::Ints { vals, scalar: true } => vals[0],
            _ => {
                return Err(
                    "takes steps by an index that is not a constant scalar; only the last step (index -1) is supported"
                        .into(),
                )
            }
        };
        let rank = axes.len() as i64;
        let axis = attr_i(node, "axis", 0);
        if !(-rank..rank).contains(&axis) {
            return Err(format!("axis {axis} is out of range for {}", show(&axes)));
        }
        let axis = axis.rem_euclid(rank) as usize;
        if axes[axis] != Axis::Steps {
            return Err(format!(
                "gathers along axis {axis} ({}) of {}; only the last step along the steps axis is supported",
                axes[axis],
                show(&axes)
            ));
        }
        let last = match (index, &self.fixed.steps) {
            (Dim::Known(-1), _) => true,
            (Dim::Known(i), Some((n, _))) => i == *n as i64 - 1,
            _ => false,
        };
        if !last {
            return Err(format!(
                "takes step {index}; only the last step (index -1) is supported"
            ));
        }
        let mut rest = axes;
        rest.remove(axis);
        if !matches!(rest[..], [Axis::Batch, Axis::Feat(Some(_))]) {
            return Err(format!(
                "the last step has axes {}; only [batch, features] (directions merged into features) is supported",
                show(&rest)
            ));
        }
        if self.head.input != HeadInput::EveryStep {
            return Err("takes one vector per sequence a second time".into());
        }
        self.head.input = HeadInput::LastStep;
        self.advance(node, rest);
        Ok(())
    }
}
