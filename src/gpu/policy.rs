//! Dynamic precision policies on the GPU: one lane per (policy, sequence), thousands of
//! threshold settings at once, closed-loop (the level of each step is chosen on the device
//! from the lane's own cell-state change). The twin of `dynamic::simulate`, bit for bit.

use super::run::PolicyLanes;
use super::{GpuContext, GpuError};
use crate::dynamic::{
    sim_support, LaneResult, LevelPlans, LevelState, Metric, Policy, PolicySpec, Simulation, Timing,
};
use crate::lstm::eval::apply_head;
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
        let outs = self.run_lanes(model, seqs, &[], Some(&lanes), progress)?;
        let results = outs
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                let policy = &policies[i / seqs.count];
                let metrics =
                    sim_support::lane_metrics(model, plans, spec, policy, &o.layers, seqs.steps);
                LaneResult {
                    output: apply_head(model, &o.layers[o.layers.len() - 1].0, seqs.steps),
                    layers: o.layers,
                    levels: o.levels,
                    metrics,
                }
            })
            .collect();
        Ok(Simulation {
            lanes: results,
            sequences: seqs.count,
            steps: seqs.steps,
        })
    }
}
