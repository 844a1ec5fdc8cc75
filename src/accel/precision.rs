//! The precision behaviour of a workload: its levels (operand widths), the measured mix of
//! steps over them (overall, per layer, at the first and last step), the switch rate, and
//! DPRed footprint ratios and group widths; with the checks of those fractions.

use super::error::compact;

/// Operand widths of one precision level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrecisionLevel {
    pub weight_bits: u32,
    pub activation_bits: u32,
}

/// Precision behaviour of a workload.
///
/// One level = fixed precision. Several levels (lowest first) = dynamic precision: each step
/// runs at one level, `step_fraction[k]` of the steps at level k (measured by the GPU stage),
/// optionally per layer. DPRed ratios (0, 1] scale weight and activation footprint and
/// off-chip traffic; 1.0 means no group encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionProfile {
    pub levels: Vec<PrecisionLevel>,
    pub step_fraction: Vec<f64>,
    /// Empty, or one fraction vector per layer (each as long as `levels`).
    pub layer_step_fraction: Vec<Vec<f64>>,
    pub dpred_weight_ratio: f64,
    pub dpred_activation_ratio: f64,
    /// Probability that a step runs at a different level from the step before it (measured:
    /// `switches_per_1000_steps / 1000` of `policies.csv`; by default the value for steps
    /// drawn independently from the mix, 1 - sum phi_k^2). 0 for fixed precision.
    pub switch_rate: f64,
    /// DPRed activation group widths on bit-serial units: fraction of groups at each width
    /// 1..=len (from `groups.csv`'s `frac_groups_width_<w>`), measured against a base
    /// precision of `len` bits, and the group size. Empty: the mean footprint ratio is used.
    pub group_width_fractions: Vec<f64>,
    pub group_size: usize,
    /// Fraction of sequences (and layers) whose first step, step 0, runs at each level, as
    /// long as `levels`; empty: unknown, `step_fraction` is used. Step 0's input product
    /// runs at its level (known at the start), so the closed form's first products and first
    /// stream gate weigh the levels by this (docs/MODEL.md section 3, "First and last steps").
    /// Measured: policies.csv's `frac_first_level_<k>`.
    pub first_step_fraction: Vec<f64>,
    /// The same for the last step, T-1 (a stream-bound layer ends a step after its last
    /// stream, at that step's level); empty: `step_fraction`. Measured: `frac_last_level_<k>`.
    pub last_step_fraction: Vec<f64>,
}

impl PrecisionProfile {
    /// Every step at one precision.
    pub fn fixed(weight_bits: u32, activation_bits: u32) -> Self {
        PrecisionProfile {
            levels: vec![PrecisionLevel {
                weight_bits,
                activation_bits,
            }],
            step_fraction: vec![1.0],
            layer_step_fraction: Vec::new(),
            dpred_weight_ratio: 1.0,
            dpred_activation_ratio: 1.0,
            switch_rate: 0.0,
            group_width_fractions: Vec::new(),
            group_size: 0,
            first_step_fraction: Vec::new(),
            last_step_fraction: Vec::new(),
        }
    }

    /// Steps spread over `levels` (lowest first) by the measured `step_fraction`.
    pub fn dynamic(levels: Vec<PrecisionLevel>, step_fraction: Vec<f64>) -> Self {
        let switch_rate = independent_switch_rate(&step_fraction);
        PrecisionProfile {
            levels,
            step_fraction,
            layer_step_fraction: Vec::new(),
            dpred_weight_ratio: 1.0,
            dpred_activation_ratio: 1.0,
            switch_rate,
            group_width_fractions: Vec::new(),
            group_size: 0,
            first_step_fraction: Vec::new(),
            last_step_fraction: Vec::new(),
        }
    }

    /// Sets the measured probability of a level change between consecutive steps.
    pub fn with_switch_rate(mut self, rate: f64) -> Self {
        self.switch_rate = rate;
        self
    }

    /// Sets the measured level fractions of the first and of the last step (see
    /// `first_step_fraction`; empty vectors: unknown).
    pub fn with_edge_steps(mut self, first: Vec<f64>, last: Vec<f64>) -> Self {
        self.first_step_fraction = first;
        self.last_step_fraction = last;
        self
    }

    /// Sets the measured DPRed group-width histogram (see `group_width_fractions`).
    pub fn with_group_widths(mut self, fractions: Vec<f64>, group_size: usize) -> Self {
        self.group_width_fractions = fractions;
        self.group_size = group_size;
        self
    }

    /// Index of the widest level (weights are stored, and products whose level is not known
    /// yet run, at this level).
    pub fn widest_index(&self) -> usize {
        (0..self.levels.len())
            .max_by_key(|&k| (self.levels[k].weight_bits, self.levels[k].activation_bits))
            .unwrap_or(0)
    }

    /// Sets DPRed footprint ratios (compressed / uncompressed, in (0, 1]).
    pub fn with_dpred(mut self, weight_ratio: f64, activation_ratio: f64) -> Self {
        self.dpred_weight_ratio = weight_ratio;
        self.dpred_activation_ratio = activation_ratio;
        self
    }

    /// True when steps switch precision, which needs the precision-tracking unit.
    pub fn is_dynamic(&self) -> bool {
        self.levels.len() > 1
    }

    /// Step fractions for layer `layer` (per-layer when measured, else overall).
    pub fn fractions_for(&self, layer: usize) -> &[f64] {
        self.layer_step_fraction
            .get(layer)
            .map_or(&self.step_fraction[..], |f| &f[..])
    }

    /// Level fractions of the first step (measured, else `step_fraction`).
    pub fn first_fractions(&self) -> &[f64] {
        if self.first_step_fraction.is_empty() {
            &self.step_fraction
        } else {
            &self.first_step_fraction
        }
    }

    /// Level fractions of the last step (measured, else `step_fraction`).
    pub fn last_fractions(&self) -> &[f64] {
        if self.last_step_fraction.is_empty() {
            &self.step_fraction
        } else {
            &self.last_step_fraction
        }
    }

    /// The widest level; weights are stored at this width.
    pub fn widest(&self) -> PrecisionLevel {
        self.levels
            .iter()
            .copied()
            .max_by_key(|l| (l.weight_bits, l.activation_bits))
            .unwrap_or(PrecisionLevel {
                weight_bits: 0,
                activation_bits: 0,
            })
    }
}

/// Switch probability of steps drawn independently from the mix `f`: 1 - sum f_k^2.
pub fn independent_switch_rate(f: &[f64]) -> f64 {
    if f.len() < 2 {
        return 0.0;
    }
    (1.0 - f.iter().map(|x| x * x).sum::<f64>()).max(0.0)
}

/// `[a, b, ...]` with each number [`compact`].
fn compact_list(f: &[f64]) -> String {
    let items: Vec<String> = f.iter().map(|&x| compact(x)).collect();
    format!("[{}]", items.join(", "))
}

pub(super) fn check_fractions(f: &[f64], levels: usize) -> Result<(), String> {
    if f.len() != levels {
        return Err(format!("{} fractions for {levels} levels", f.len()));
    }
    if f.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
        return Err(format!("fractions must be >= 0, got {}", compact_list(f)));
    }
    let sum: f64 = f.iter().sum();
    if (sum - 1.0).abs() > 1e-3 {
        return Err(format!("fractions must sum to 1, got {}", compact(sum)));
    }
    Ok(())
}

/// The optional first- or last-step fractions: empty (unknown), or one per level, each
/// finite and >= 0, summing to 1 within 1e-9 (they are counts of sequences over a total).
pub(super) fn check_edge_fractions(f: &[f64], levels: usize) -> Result<(), String> {
    if f.is_empty() {
        return Ok(());
    }
    if f.len() != levels {
        return Err(format!("{} fractions for {levels} levels", f.len()));
    }
    if f.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
        return Err(format!("fractions must be >= 0, got {}", compact_list(f)));
    }
    let sum: f64 = f.iter().sum();
    if (sum - 1.0).abs() > 1e-9 {
        return Err(format!(
            "fractions must sum to 1 (within 1e-9), got {}",
            compact(sum)
        ));
    }
    Ok(())
}
