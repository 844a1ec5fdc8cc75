//! What the accelerator runs: layer shapes, the output head, sequence length, batch, and the
//! precision behaviour ([`PrecisionProfile`], in `precision.rs`; read from the GPU stage's
//! measurements by `measured.rs`). The main crate fills a `Workload` from a built-in or
//! imported model (`workload_of`); `Workload::validate` checks it before every evaluation.

use super::error::{compact, AccelError};
use super::precision::{check_edge_fractions, check_fractions, PrecisionProfile};

/// One LSTM layer. `input_size` is the width of x_t as this layer sees it (for a layer after
/// a bidirectional one, twice the previous hidden size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerShape {
    pub input_size: usize,
    pub hidden_size: usize,
    /// 1 (unidirectional) or 2 (bidirectional).
    pub directions: usize,
}

/// The output head after the last layer (a classifier or a language model's vocabulary
/// projection): dense layers in order, all on the same vectors (`fc2(relu(fc1(..)))` has
/// two). No layers: the LSTM stack only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadShape {
    pub layers: Vec<DenseShape>,
    /// One vector per sequence (a head on the last step or the final states, as a sequence
    /// classifier has), not one per step.
    pub per_sequence: bool,
}

impl HeadShape {
    /// The vectors the head multiplies in a run of `batch` sequences of `seq_len` steps.
    pub fn vectors(&self, batch: usize, seq_len: usize) -> u64 {
        let per = if self.per_sequence { 1 } else { seq_len };
        (batch * per) as u64
    }
}

/// One dense layer of the head, with its activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseShape {
    pub input_size: usize,
    pub output_size: usize,
    /// An activation on every output (softmax, sigmoid, tanh or relu, each costed as a
    /// softmax element: docs/MODEL.md section 3, "Head").
    pub activation: bool,
}

/// A model's shapes plus how it is run.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub layers: Vec<LayerShape>,
    /// The output head, costed after the last layer.
    pub head: HeadShape,
    pub seq_len: usize,
    pub batch: usize,
    pub precision: PrecisionProfile,
}

impl Workload {
    /// The profile's first and last steps are steps of the run: at level k they cannot
    /// outnumber the T phi_k steps the level holds. They do when a policy measured on longer
    /// sequences is costed at a shorter `seq_len` (the model then reported more than 100%
    /// utilization); such a workload is costed with its first and last steps unknown
    /// (phi0 = phi1 = phi, docs/MODEL.md "Inputs"). `None` when the profile fits as it is.
    pub fn with_edges_that_fit(&self) -> Option<Workload> {
        let p = &self.precision;
        let t = self.seq_len as f64;
        let fits = |k: usize, phi: f64| {
            let first = p.first_step_fraction.get(k).copied().unwrap_or(0.0);
            let last = p.last_step_fraction.get(k).copied().unwrap_or(0.0);
            let edges = if self.seq_len == 1 {
                first.max(last)
            } else {
                first + last
            };
            t * phi >= edges - 1e-9
        };
        if p.step_fraction
            .iter()
            .enumerate()
            .all(|(k, &phi)| fits(k, phi))
        {
            return None;
        }
        let mut w = self.clone();
        w.precision.first_step_fraction.clear();
        w.precision.last_step_fraction.clear();
        Some(w)
    }

    /// Checks shapes and precision; `evaluate` calls it on every point (it is cheap).
    pub fn validate(&self) -> Result<(), AccelError> {
        let fail = |message: String| AccelError::Workload {
            workload: self.name.clone(),
            message,
        };
        if self.layers.is_empty() {
            return Err(fail("has no layers".into()));
        }
        if self.seq_len == 0 || self.batch == 0 {
            return Err(fail(format!(
                "seq_len and batch must be >= 1, got seq_len {} batch {}",
                self.seq_len, self.batch
            )));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.input_size == 0 || l.hidden_size == 0 {
                return Err(fail(format!(
                    "layer {i}: input_size and hidden_size must be >= 1, got {} and {}",
                    l.input_size, l.hidden_size
                )));
            }
            if !(l.directions == 1 || l.directions == 2) {
                return Err(fail(format!(
                    "layer {i}: directions must be 1 or 2, got {}",
                    l.directions
                )));
            }
            // The cost model counts in u64: a run's multiply-accumulates per layer must fit
            // with room to spare (every integer product in timing is a factor of it).
            let macs = crate::limits::product(&[
                4 * l.directions as u128,
                l.hidden_size as u128,
                l.input_size as u128 + l.hidden_size as u128,
                self.batch as u128,
                self.seq_len as u128,
            ]);
            if macs.is_none_or(|m| m > 1 << 60) {
                return Err(fail(format!(
                    "layer {i}: seq_len {} x batch {} is too large for the cost model (more than 2^60 multiply-accumulates)",
                    self.seq_len, self.batch
                )));
            }
        }
        // The head's layers chain from the last layer's output, all on the same vectors.
        let last = self
            .layers
            .last()
            .map_or(0, |l| l.hidden_size * l.directions);
        let vectors = self.head.vectors(self.batch, self.seq_len);
        for (i, h) in self.head.layers.iter().enumerate() {
            if h.input_size == 0 || h.output_size == 0 {
                return Err(fail(format!(
                    "head layer {i}: input_size and output_size must be >= 1, got {} and {}",
                    h.input_size, h.output_size
                )));
            }
            let (from, width) = match i {
                0 => ("the last layer's output".to_string(), last),
                _ => (
                    format!("head layer {}'s output_size", i - 1),
                    self.head.layers[i - 1].output_size,
                ),
            };
            if h.input_size != width {
                return Err(fail(format!(
                    "head layer {i}: input_size {} is not {from} {width}",
                    h.input_size
                )));
            }
            let macs = crate::limits::product(&[
                h.input_size as u128,
                h.output_size as u128,
                vectors as u128,
            ]);
            if macs.is_none_or(|m| m > 1 << 60) {
                return Err(fail(format!(
                    "head layer {i}: {} x {} over {vectors} vectors is too large for the cost model (more than 2^60 multiply-accumulates)",
                    h.output_size, h.input_size
                )));
            }
        }
        let p = &self.precision;
        if p.levels.is_empty() {
            return Err(fail("precision has no levels".into()));
        }
        for (k, l) in p.levels.iter().enumerate() {
            if l.weight_bits == 0 || l.activation_bits == 0 {
                return Err(fail(format!("precision level {k}: bits must be >= 1")));
            }
        }
        check_fractions(&p.step_fraction, p.levels.len())
            .map_err(|m| fail(format!("step_fraction: {m}")))?;
        if !p.layer_step_fraction.is_empty() && p.layer_step_fraction.len() != self.layers.len() {
            return Err(fail(format!(
                "the policy has per-layer fractions (policies.csv columns frac_l<layer>_level_<k>) for {} layer(s), the model has {}; use the policies.csv measured on this model",
                p.layer_step_fraction.len(),
                self.layers.len()
            )));
        }
        for (i, f) in p.layer_step_fraction.iter().enumerate() {
            check_fractions(f, p.levels.len())
                .map_err(|m| fail(format!("layer_step_fraction[{i}]: {m}")))?;
        }
        for (name, f) in [
            ("first_step_fraction", &p.first_step_fraction),
            ("last_step_fraction", &p.last_step_fraction),
        ] {
            check_edge_fractions(f, p.levels.len()).map_err(|m| fail(format!("{name}: {m}")))?;
        }
        for (name, r) in [
            ("dpred_weight_ratio", p.dpred_weight_ratio),
            ("dpred_activation_ratio", p.dpred_activation_ratio),
        ] {
            if !(r > 0.0 && r <= 1.0) {
                return Err(fail(format!(
                    "{name} must be in (0, 1], got {}",
                    compact(r)
                )));
            }
        }
        if !(p.switch_rate.is_finite() && (0.0..=1.0).contains(&p.switch_rate)) {
            return Err(fail(format!(
                "switch_rate must be in [0, 1], got {}",
                compact(p.switch_rate)
            )));
        }
        if !p.group_width_fractions.is_empty() {
            if p.group_size == 0 || p.group_width_fractions.len() > 64 {
                return Err(fail(format!(
                    "group widths: group size {} and {} widths (need >= 1 and <= 64)",
                    p.group_size,
                    p.group_width_fractions.len()
                )));
            }
            check_fractions(&p.group_width_fractions, p.group_width_fractions.len())
                .map_err(|m| fail(format!("group width fractions: {m}")))?;
        }
        Ok(())
    }
}

/// The accelerator model's view of a model: its layer shapes.
pub fn workload_of(
    model: &crate::lstm::Model,
    seq_len: usize,
    batch: usize,
    precision: PrecisionProfile,
) -> Workload {
    let w = Workload {
        name: model.name.clone(),
        layers: model
            .layers
            .iter()
            .map(|l| LayerShape {
                input_size: l.input_size,
                hidden_size: l.hidden_size,
                directions: l.direction.count(),
            })
            .collect(),
        head: model
            .head
            .as_ref()
            .map_or_else(HeadShape::default, |h| HeadShape {
                layers: (h.layers.iter())
                    .map(|d| DenseShape {
                        input_size: d.input_size,
                        output_size: d.output_size,
                        activation: d.activation != crate::lstm::HeadActivation::None,
                    })
                    .collect(),
                per_sequence: h.input != crate::lstm::HeadInput::EveryStep,
            }),
        seq_len,
        batch,
        precision,
    };
    // Fitted once here, so that `evaluate` (which fits any workload) does not copy it per point.
    w.with_edges_that_fit().unwrap_or(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An embedding front end is not costed (docs/MODEL.md section 9): the workload of a model
    /// with one is that of its LSTM and head alone, the first layer's input being the
    /// embedding's width E.
    #[test]
    fn an_embedding_is_not_costed() {
        let mut m = crate::lstm::builtin::build("tiny").unwrap();
        let plain = workload_of(&m, 10, 2, PrecisionProfile::fixed(8, 8));
        m.embedding = Some(crate::lstm::Embedding {
            vocab: 1000,
            dim: m.input_size(),
            table: vec![0.0; 1000 * m.input_size()],
            negative: crate::lstm::NegativeIds::FromEnd,
        });
        let embedded = workload_of(&m, 10, 2, PrecisionProfile::fixed(8, 8));
        assert_eq!(embedded.layers[0].input_size, 16);
        assert_eq!(format!("{embedded:?}"), format!("{plain:?}"));
    }
}
