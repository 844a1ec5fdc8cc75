//! Closed-loop simulation of precision policies on the CPU: every (policy, sequence) lane
//! walks its layers step by step; the recurrent state is kept in the highest level's formats,
//! a step at a lower level reads it rounded down (RNE) and writes its result back exactly, and
//! the level of each step follows from the integer Δc metric (docs/NUMERICS.md section 11).
//! rayon-parallel over lanes, deterministic.

use super::{LevelPlans, LevelState, Metric, Policy, PolicySpec, Timing};
use crate::format::detmath::ftz;
use crate::format::fixed::{pow2, rescale};
use crate::lstm::eval::apply_head;
use crate::lstm::eval::cell::int_step;
use crate::lstm::eval::plan::IntCell;
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use rayon::prelude::*;

/// One lane's result.
#[derive(Debug, Clone)]
pub struct LaneResult {
    /// Per layer: (h, c) values as `[T, D*H]` (exact values of the highest level's formats).
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
    /// Head output `[T, O]` (`[O]` for a head on one vector per sequence).
    pub output: Option<Vec<f32>>,
    /// `levels[layer][direction][t]`: the level step t ran at.
    pub levels: Vec<Vec<Vec<u8>>>,
    /// `metrics[layer][direction][t]`: the Δc metric of step t (real units; a fraction for
    /// `frac_above`).
    pub metrics: Vec<Vec<Vec<f64>>>,
}

/// All lanes, policy-major: lane `p * sequences + n`.
pub struct Simulation {
    pub lanes: Vec<LaneResult>,
    pub sequences: usize,
    pub steps: usize,
    /// Thresholds below a level's resolution ([`super::resolution_warnings`]), for the caller
    /// to show: [`super::run`] fills them; a rerun for a report need not repeat them.
    pub warnings: Vec<String>,
}

/// A metric as integer comparisons on codes of the highest cell format (frac `f`).
pub struct IntMetric {
    metric: Metric,
    /// Only for `frac_above`: |Δ| must exceed this many code steps.
    pub above: i64,
    /// Per boundary: the metric reaches threshold k when its integer value >= bounds[k].
    pub bounds: Vec<i64>,
    /// Only for `rel_max_abs`: per boundary max(θ, 0) as f32, and eps in code steps
    /// (f32(eps · 2^f)).
    pub rel: Option<(Vec<f32>, f32)>,
    scale: f64,
}

/// `rel_max_abs` thresholds as the f32 words both metrics and the GPU compare with: θ ≤ 0 is
/// 0 (always reached), a positive θ stays positive (at least the smallest normal).
pub(crate) fn rel_thresholds(policy: &Policy) -> Vec<f32> {
    policy
        .thresholds
        .iter()
        .map(|&t| {
            if t > 0.0 {
                (t as f32).max(f32::MIN_POSITIVE)
            } else {
                0.0
            }
        })
        .collect()
}

/// The `rel_max_abs` decision (NUMERICS.md §11), in f32 with every operation rounded and
/// flushed as in the float datapath so the GPU decides alike: the number of thresholds θ
/// reached by a change `v` over a state of magnitude `base` — θ = 0 always, θ = +inf never,
/// otherwise `v > 0` and `v >= ftz(θ · ftz(base + eps))`. Codes or values, in one unit.
pub(crate) fn rel_level(thetas: &[f32], v: f32, base: f32, eps: f32) -> usize {
    let denom = ftz(base + eps);
    thetas
        .iter()
        .filter(|&&t| t == 0.0 || (t != f32::INFINITY && v > 0.0 && v >= ftz(t * denom)))
        .count()
}

/// One step's change: the metric's integer value and, for `rel_max_abs`, max |c_prev| in codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    pub value: i64,
    pub base: i64,
}

impl IntMetric {
    pub fn new(metric: Metric, policy: &Policy, frac: i32, hidden: usize) -> Self {
        let unit = pow2(frac);
        let scale = match metric {
            Metric::MaxAbs | Metric::RelMaxAbs(_) => unit,
            Metric::MeanAbs => unit * hidden as f64,
            Metric::FracAbove(_) => hidden as f64,
        };
        let rel = match metric {
            Metric::RelMaxAbs(eps) => Some((rel_thresholds(policy), (eps * unit) as f32)),
            _ => None,
        };
        let bounds = policy
            .thresholds
            .iter()
            .map(|&t| {
                let v = (t * scale).ceil();
                if v <= 0.0 {
                    0
                } else if v >= 1e18 {
                    i64::MAX
                } else {
                    v as i64
                }
            })
            .collect();
        let above = match metric {
            Metric::FracAbove(e) => (e * unit).floor().min(1e18) as i64,
            _ => 0,
        };
        IntMetric {
            metric,
            above,
            bounds,
            rel,
            scale,
        }
    }

    /// The change from `old` to `new` and its real value (unitless; a fraction for
    /// `frac_above`, relative for `rel_max_abs`).
    pub fn eval(&self, new: &[i32], old: &[i32]) -> (Change, f64) {
        let d = new
            .iter()
            .zip(old)
            .map(|(a, b)| (*a as i64 - *b as i64).abs());
        let v = match self.metric {
            Metric::MaxAbs | Metric::RelMaxAbs(_) => d.max().unwrap_or(0),
            Metric::MeanAbs => d.sum(),
            Metric::FracAbove(_) => d.filter(|&x| x > self.above).count() as i64,
        };
        let base = match self.rel {
            Some(_) => old.iter().map(|c| (*c as i64).abs()).max().unwrap_or(0),
            None => 0,
        };
        let real = match &self.rel {
            Some((_, e)) => v as f64 / (base as f64 + *e as f64),
            None => v as f64 / self.scale,
        };
        (Change { value: v, base }, real)
    }

    /// The number of thresholds the change reaches. `rel_max_abs` compares in f32, each
    /// operation rounded and flushed as in the float datapath, so the GPU decides alike:
    /// θ = 0 always, θ = +inf never, otherwise a non-zero change with
    /// `f32(value) >= ftz(θ · ftz(f32(base) + e))`.
    pub(crate) fn level(&self, ch: Change) -> usize {
        match &self.rel {
            Some((thetas, e)) => rel_level(thetas, ch.value as f32, ch.base as f32, *e),
            None => self.bounds.iter().filter(|&&b| ch.value >= b).count(),
        }
    }
}

/// Runs one step at level `q` on input values `x`, from state codes kept in `hi`'s formats:
/// the state is rounded down to `q`'s formats (RNE, i.e. dropping low bits), the step runs,
/// and the result goes back up exactly (same range, more fraction bits).
fn step_at(q: &IntCell, hi: &IntCell, x: &[f32], h: &mut [i32], c: &mut [i32], acc: &mut [i64]) {
    let xq: Vec<i32> = x.iter().map(|&v| q.x.quantize(v)).collect();
    if std::ptr::eq(q, hi) {
        int_step(q, &xq, h, c, acc);
        return;
    }
    let down = |v: &mut [i32], from: i32, to: crate::format::Fixed| {
        for e in v.iter_mut() {
            *e = rescale(*e as i64, from - to.frac, to);
        }
    };
    down(h, hi.h.frac, q.h);
    down(c, hi.c.frac, q.c);
    int_step(q, &xq, h, c, acc);
    let (dh, dc) = (hi.h.frac - q.h.frac, hi.c.frac - q.c.frac);
    h.iter_mut().for_each(|e| *e <<= dh);
    c.iter_mut().for_each(|e| *e <<= dc);
}

fn lane(
    model: &Model,
    plans: &LevelPlans,
    spec: &PolicySpec,
    policy: &Policy,
    seq: &[f32],
    steps: usize,
) -> LaneResult {
    let top = plans.levels.len() - 1;
    let mut x_vals = seq.to_vec();
    let mut width = model.input_size();
    let mut result = LaneResult {
        layers: Vec::new(),
        output: None,
        levels: Vec::new(),
        metrics: Vec::new(),
    };
    for (l, layer) in model.layers.iter().enumerate() {
        let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
        let stride = hsz * dirs;
        let (mut h_out, mut c_out) = (vec![0.0f32; steps * stride], vec![0.0f32; steps * stride]);
        let (mut lv, mut mv) = (Vec::new(), Vec::new());
        for k in 0..dirs {
            let cells: Vec<&IntCell> = plans
                .levels
                .iter()
                .filter_map(|p| p.layers[l][k].int.as_ref())
                .collect();
            let hi = cells[top];
            let metric = IntMetric::new(spec.metric, policy, hi.c.frac, hsz);
            let (mut h, mut c) = (hi.h0.clone(), hi.c0.clone());
            let mut acc = vec![0i64; 4 * hsz];
            let (mut levels, mut metrics) = (vec![0u8; steps], vec![0.0f64; steps]);
            let mut previous = Change::default();
            for s in 0..steps {
                let t = layer.direction.time(k, s, steps);
                let x = &x_vals[t * width..(t + 1) * width];
                let (mut hn, mut cn) = (h.clone(), c.clone());
                let level = match spec.timing {
                    Timing::Causal => {
                        let level = if s == 0 {
                            spec.start
                        } else {
                            metric.level(previous)
                        };
                        step_at(cells[level], hi, x, &mut hn, &mut cn, &mut acc);
                        level
                    }
                    Timing::Oracle => {
                        step_at(hi, hi, x, &mut hn, &mut cn, &mut acc);
                        let level = metric.level(metric.eval(&cn, &c).0);
                        if level < top {
                            (hn, cn) = (h.clone(), c.clone());
                            step_at(cells[level], hi, x, &mut hn, &mut cn, &mut acc);
                        }
                        level
                    }
                };
                let (value, real) = metric.eval(&cn, &c);
                previous = value;
                (h, c) = (hn, cn);
                levels[t] = level as u8;
                metrics[t] = real;
                let row = t * stride + k * hsz;
                for j in 0..hsz {
                    h_out[row + j] = hi.h.to_f32(h[j]);
                    c_out[row + j] = hi.c.to_f32(c[j]);
                }
            }
            lv.push(levels);
            mv.push(metrics);
        }
        result.levels.push(lv);
        result.metrics.push(mv);
        x_vals = h_out.clone();
        width = stride;
        result.layers.push((h_out, c_out));
    }
    result.output = apply_head(model, &x_vals, steps);
    result
}

/// Simulates every policy on every sequence through the driver with the CPU backend
/// ([`super::CpuPolicies`]: the lane-batched engine for a state kept as codes, one lane at a
/// time for a state kept as values); `lane_done` is called once per finished lane.
pub fn simulate(
    model: &Model,
    seqs: &Sequences,
    spec: &PolicySpec,
    plans: &LevelPlans,
    policies: &[Policy],
    lane_done: &(dyn Fn() + Sync),
) -> Simulation {
    let lanes = super::lanes::simulate_lanes(model, seqs, spec, plans, policies, lane_done);
    Simulation {
        lanes,
        sequences: seqs.count,
        steps: seqs.steps,
        warnings: Vec::new(),
    }
}

/// The same simulation one lane at a time with the scalar step (rayon over lanes): the
/// literal reading of NUMERICS.md §11, kept as the second implementation the batched one is
/// tested against (a state kept as values has only this form).
pub fn simulate_scalar(
    model: &Model,
    seqs: &Sequences,
    spec: &PolicySpec,
    plans: &LevelPlans,
    policies: &[Policy],
    lane_done: &(dyn Fn() + Sync),
) -> Simulation {
    if plans.state == LevelState::Values {
        return simulate(model, seqs, spec, plans, policies, lane_done);
    }
    let lanes = (0..policies.len() * seqs.count)
        .into_par_iter()
        .map(|i| {
            let (p, n) = (i / seqs.count, i % seqs.count);
            let r = lane(
                model,
                plans,
                spec,
                &policies[p],
                seqs.sequence(n),
                seqs.steps,
            );
            lane_done();
            r
        })
        .collect();
    Simulation {
        lanes,
        sequences: seqs.count,
        steps: seqs.steps,
        warnings: Vec::new(),
    }
}

/// The Δc metric of every step of a lane, recomputed from its cell states (values of the
/// highest level's formats, or any level's for a state kept as values; `[T, D*H]` per
/// layer): what the GPU path reports.
pub fn lane_metrics(
    model: &Model,
    plans: &LevelPlans,
    spec: &PolicySpec,
    policy: &Policy,
    layers: &[(Vec<f32>, Vec<f32>)],
    steps: usize,
) -> Vec<Vec<Vec<f64>>> {
    if plans.state == LevelState::Values {
        return super::values::lane_metrics(model, plans, spec, policy, layers, steps);
    }
    let top = plans.levels.len() - 1;
    model
        .layers
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
            (0..dirs)
                .map(|k| {
                    let Some(hi) = plans.levels[top].layers[l][k].int.as_ref() else {
                        return vec![0.0; steps];
                    };
                    let metric = IntMetric::new(spec.metric, policy, hi.c.frac, hsz);
                    let codes = |t: usize| -> Vec<i32> {
                        let at = t * hsz * dirs + k * hsz;
                        layers[l].1[at..at + hsz]
                            .iter()
                            .map(|&v| hi.c.quantize(v))
                            .collect()
                    };
                    let mut prev = hi.c0.clone();
                    let mut out = vec![0.0; steps];
                    for s in 0..steps {
                        let t = layer.direction.time(k, s, steps);
                        let c = codes(t);
                        out[t] = metric.eval(&c, &prev).1;
                        prev = c;
                    }
                    out
                })
                .collect()
        })
        .collect()
}
