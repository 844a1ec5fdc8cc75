//! Dynamic precision policies on the GPU: one lane per (policy, sequence), thousands of
//! threshold settings at once, closed-loop (the level of each step is chosen on the device
//! from the lane's own cell-state change). The twin of `dynamic::simulate`, bit for bit.

use super::backend::GpuPolicies;
use super::lstm::Dims;
use super::run::PolicyLanes;
use super::{GpuContext, GpuError};
use crate::dynamic::{
    sim_support, LevelPlans, LevelState, Metric, Policy, PolicySpec, Simulation, Timing,
};
use crate::lstm::driver;
use crate::lstm::npy::Sequences;
use crate::lstm::Model;

impl GpuContext {
    /// Simulates every policy on every sequence. `progress(done, total)` counts lane-steps.
    pub fn simulate_policies(
        &self,
        model: &Model,
        seqs: &Sequences,
        spec: &PolicySpec,
        plans: &LevelPlans,
        policies: &[Policy],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Simulation, GpuError> {
        let top = plans.levels.len() - 1;
        let values = plans.state == LevelState::Values;
        // With a state kept as codes the device sums |Δc| codes (each < 2^16) in an i32.
        if spec.metric == Metric::MeanAbs && !values {
            if let Some(l) = model.layers.iter().find(|l| l.hidden_size >= 1 << 15) {
                return Err(GpuError::Unsupported(format!(
                    "the mean_abs metric over a layer of {} units (the device sums in 32 bits: at most 32767)",
                    l.hidden_size
                )));
            }
        }
        // Integer bounds (counts, and f32 bits of non-negative values, which order like
        // integers) saturate at i32::MAX; rel_max_abs words of a state kept as codes are f32
        // bits, kept as they are.
        let rel = matches!(spec.metric, Metric::RelMaxAbs(_)) && !values;
        let words = |p: &Policy, l: usize, k: usize, hidden: usize| {
            if values {
                return sim_support::value_metric(spec.metric, p, hidden);
            }
            let frac = plans.levels[top].layers[l][k]
                .int
                .as_ref()
                .map_or(0, |q| q.c.frac);
            sim_support::int_metric(spec.metric, p, frac, hidden)
        };
        let clamp = |v: i64| {
            if rel {
                v as i32
            } else {
                v.clamp(0, i32::MAX as i64) as i32
            }
        };
        let mut above = Vec::new();
        for (l, layer) in model.layers.iter().enumerate() {
            let mut a = [0i32; 2];
            for (k, slot) in a.iter_mut().enumerate().take(layer.direction.count()) {
                *slot = clamp(words(&policies[0], l, k, layer.hidden_size).above);
            }
            above.push(a);
        }
        let bounds = policies
            .iter()
            .map(|p| {
                model
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(l, layer)| {
                        (0..layer.direction.count())
                            .flat_map(|k| {
                                words(p, l, k, layer.hidden_size)
                                    .bounds
                                    .into_iter()
                                    .map(clamp)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let lanes = PolicyLanes {
            levels: plans.levels.iter().collect(),
            bounds,
            metric: match spec.metric {
                Metric::MaxAbs => 0,
                Metric::MeanAbs => 1,
                Metric::FracAbove(_) => 2,
                Metric::RelMaxAbs(_) => 3,
            },
            start: spec.start as u32,
            values,
            above,
            oracle: spec.timing == Timing::Oracle,
        };
        let backend = GpuPolicies {
            ctx: self,
            lanes: &lanes,
        };
        let mut results = driver::run_policies(&backend, model, seqs, &lanes.bounds, progress)?;
        for (i, lane) in results.iter_mut().enumerate() {
            let policy = &policies[i / seqs.count];
            let steps = seqs.steps;
            lane.metrics =
                sim_support::lane_metrics(model, plans, spec, policy, &lane.layers, steps);
        }
        Ok(Simulation {
            lanes: results,
            sequences: seqs.count,
            steps: seqs.steps,
            warnings: Vec::new(),
        })
    }
}

/// Read-back words of one policy lane and layer kept as values (`[T, {h, c}, width]` f32
/// bits) as (h, c) values `[T, width]`.
pub(super) fn lane_values(words: &[u32], steps: usize, width: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut h, mut c) = (
        Vec::with_capacity(steps * width),
        Vec::with_capacity(steps * width),
    );
    for row in words.chunks(2 * width).take(steps) {
        h.extend(row[..width].iter().map(|&w| f32::from_bits(w)));
        c.extend(row[width..].iter().map(|&w| f32::from_bits(w)));
    }
    (h, c)
}

/// Lays out the `pol` buffer of one layer (see shaders/lstm.wgsl) and fills `dims`' offsets.
#[allow(clippy::too_many_arguments)]
pub(super) fn policy_region(
    dims: &mut Dims,
    p: &PolicyLanes,
    layer: usize,
    init: &[u32],
    lanes: usize,
    dirs: usize,
    hidden: usize,
    input: usize,
    steps: usize,
) -> Vec<u32> {
    let top = p.levels.len() - 1;
    dims.policy = 1;
    dims.levels = p.levels.len() as u32;
    dims.values = u32::from(p.values);
    // Layer 0 reads f32 inputs; with a state kept as values so do the later layers.
    dims.x_f32 = u32::from(layer == 0 || p.values);
    dims.metric = p.metric;
    dims.start = p.start;
    dims.above = p.above[layer];
    let ld = lanes * dirs;
    let mut data = Vec::new();
    for _ in 0..ld {
        data.extend([top as u32, 0, 0, 0]);
    }
    dims.off_bounds = data.len() as u32;
    for g in &p.bounds {
        data.extend(g[layer].iter().map(|&b| b as u32));
    }
    dims.off_cprev = data.len() as u32;
    // The initial c of every lane and direction (state is [lane, dir, {h, c}, H]), as f32
    // values for a state kept as values.
    for k in 0..ld {
        let c0 = &init[k * 2 * hidden + hidden..(k + 1) * 2 * hidden];
        match (p.values, &p.levels[top].layers[layer][k % dirs].int) {
            (true, Some(q)) => data.extend(c0.iter().map(|&w| q.c.to_f32(w as i32).to_bits())),
            _ => data.extend_from_slice(c0),
        }
    }
    dims.off_x = data.len() as u32;
    data.extend(std::iter::repeat_n(0, ld * input));
    if p.oracle {
        dims.off_saved = data.len() as u32;
        data.extend(std::iter::repeat_n(0, ld * 2 * hidden));
    }
    dims.off_trace = data.len() as u32;
    data.extend(std::iter::repeat_n(0, ld * steps));
    data
}
