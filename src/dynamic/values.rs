//! Policy lanes whose state is kept as f32 values ([`LevelState::Values`], docs/NUMERICS.md
//! §11.1): levels may be any precision configs (float formats, mixed configs, per-channel
//! weights, per-level calibration). A step at level q rounds the incoming h, c and x values
//! into q's formats, runs q's own step (integer or float datapath), and hands h and c on as
//! values; the Δc metric is computed from those values in f32. One lane at a time (a layer per
//! call from [`super::CpuPolicies`]), rayon over lanes: the CPU twin of the GPU's value-state
//! policy lanes, bit for bit.
//!
//! [`LevelState::Values`]: super::LevelState::Values

use super::sim::{rel_level, rel_thresholds, Change};
use super::{LevelPlans, Metric, Policy, PolicySpec, Timing};
use crate::format::detmath::ftz;
use crate::lstm::driver::StepLevels;
use crate::lstm::eval::cell::{add, float_unit, int_step, mul};
use crate::lstm::eval::plan::CellPlan;
use crate::lstm::Model;

/// The smallest f32 at or above `x` (0 for x <= 0, +inf above the largest f32).
fn ceil_f32(x: f64) -> f32 {
    if x <= 0.0 {
        return 0.0;
    }
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

/// The largest f32 at or below `x` (x >= 0).
fn floor_f32(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) > x {
        f.next_down()
    } else {
        f
    }
}

/// A metric over f32 cell values (NUMERICS.md §11.1). Every per-unit change is
/// d_j = |ftz(c_j − p_j)| in f32; `max_abs` and `rel_max_abs` take max d_j, `mean_abs` sums d_j
/// in unit order in f32 (each sum flushed), `frac_above` counts d_j > e.
pub struct ValueMetric {
    metric: Metric,
    /// Per boundary: the metric reaches threshold k when its value (f32 bits for `max_abs`
    /// and `mean_abs`, a count for `frac_above`) is >= bounds[k].
    pub bounds: Vec<i64>,
    /// `frac_above`: the largest f32 <= e; `rel_max_abs`: f32(eps).
    pub above: f32,
    /// `rel_max_abs`: per boundary max(θ, 0) as f32 (positive θ at least the smallest normal).
    rel: Option<Vec<f32>>,
    hidden: usize,
}

impl ValueMetric {
    pub fn new(metric: Metric, policy: &Policy, hidden: usize) -> Self {
        let h = hidden as f64;
        let bounds = policy
            .thresholds
            .iter()
            .map(|&t| match metric {
                // Non-negative f32 values order like their bit patterns.
                Metric::MaxAbs | Metric::RelMaxAbs(_) => ceil_f32(t).to_bits() as i64,
                Metric::MeanAbs => ceil_f32(t * h).to_bits() as i64,
                Metric::FracAbove(_) => {
                    let v = (t * h).ceil();
                    if v <= 0.0 {
                        0
                    } else if v >= 1e18 {
                        i64::MAX
                    } else {
                        v as i64
                    }
                }
            })
            .collect();
        let above = match metric {
            Metric::FracAbove(e) => floor_f32(e),
            Metric::RelMaxAbs(eps) => eps as f32,
            _ => 0.0,
        };
        let rel = matches!(metric, Metric::RelMaxAbs(_)).then(|| rel_thresholds(policy));
        ValueMetric {
            metric,
            bounds,
            above,
            rel,
            hidden,
        }
    }

    /// The change from `old` to `new` and its real value (a fraction for `frac_above`,
    /// relative for `rel_max_abs`). `value` holds f32 bits, or a count for `frac_above`;
    /// `base` the f32 bits of max |old|.
    pub fn eval(&self, new: &[f32], old: &[f32]) -> (Change, f64) {
        let (mut v, mut count, mut base) = (0.0f32, 0i64, 0.0f32);
        for (&a, &b) in new.iter().zip(old) {
            let d = ftz(a - b).abs();
            match self.metric {
                Metric::MaxAbs | Metric::RelMaxAbs(_) => v = v.max(d),
                Metric::MeanAbs => v = ftz(v + d),
                Metric::FracAbove(_) => count += i64::from(d > self.above),
            }
            base = base.max(b.abs());
        }
        let h = self.hidden.max(1) as f64;
        let (value, real) = match self.metric {
            Metric::MaxAbs => (v.to_bits() as i64, v as f64),
            Metric::MeanAbs => (v.to_bits() as i64, v as f64 / h),
            Metric::FracAbove(_) => (count, count as f64 / h),
            Metric::RelMaxAbs(_) => (
                v.to_bits() as i64,
                v as f64 / (base as f64 + self.above as f64),
            ),
        };
        let base = base.to_bits() as i64;
        (Change { value, base }, real)
    }

    /// The number of thresholds the change reaches; `rel_max_abs` decides in f32 as the
    /// integer metric does: θ = 0 always, +inf never, otherwise a non-zero change with
    /// `v >= ftz(θ · ftz(max|c_prev| + eps))`.
    pub fn level(&self, ch: Change) -> usize {
        match &self.rel {
            Some(thetas) => rel_level(
                thetas,
                f32::from_bits(ch.value as u32),
                f32::from_bits(ch.base as u32),
                self.above,
            ),
            None => self.bounds.iter().filter(|&&b| ch.value >= b).count(),
        }
    }
}

/// A float level's W and R stored k-major (`[k][4H]`): a step then walks k outside and the
/// rows inside, which vectorizes, while every row still takes its terms one at a time in k
/// order (W·x, R·h, then b), one multiply and one add each, flushed — the bits of
/// [`float_step`](crate::lstm::eval::cell::float_step)'s row loops (NUMERICS.md §6).
pub(super) struct Columns {
    w: Vec<f32>,
    r: Vec<f32>,
}

impl Columns {
    /// Empty for an integer cell.
    fn new(p: &CellPlan) -> Columns {
        let rows = p.b.len();
        let t = |m: &[f32]| -> Vec<f32> {
            let k = m.len() / rows.max(1);
            (0..k)
                .flat_map(|kk| (0..rows).map(move |r| m[r * k + kk]))
                .collect()
        };
        match p.int {
            Some(_) => Columns {
                w: Vec::new(),
                r: Vec::new(),
            },
            None => Columns {
                w: t(&p.w),
                r: t(&p.r),
            },
        }
    }
}

/// `Columns` of every level, layer and direction: `[level][layer][dir]`.
pub(super) type LevelColumns = Vec<Vec<Vec<Columns>>>;

pub(super) fn level_columns(plans: &LevelPlans) -> LevelColumns {
    plans
        .levels
        .iter()
        .map(|p| {
            p.layers
                .iter()
                .map(|cells| cells.iter().map(Columns::new).collect())
                .collect()
        })
        .collect()
}

/// Runs one step of cell `p` on input values `x`: h and c (values of any level's formats)
/// are rounded into `p`'s formats, the step runs on `p`'s datapath, and the new h and c
/// values replace them. `cols` is `p`'s k-major weights (used by a float cell).
fn step_values(p: &CellPlan, cols: &Columns, x: &[f32], h: &mut [f32], c: &mut [f32]) {
    let hsz = h.len();
    match &p.int {
        Some(q) => {
            let xq: Vec<i32> = x.iter().map(|&v| q.x.quantize(v)).collect();
            let mut hc: Vec<i32> = h.iter().map(|&v| q.h.quantize(v)).collect();
            let mut cc: Vec<i32> = c.iter().map(|&v| q.c.quantize(v)).collect();
            int_step(q, &xq, &mut hc, &mut cc, &mut vec![0i64; 4 * hsz]);
            for j in 0..hsz {
                h[j] = q.h.to_f32(hc[j]);
                c[j] = q.c.to_f32(cc[j]);
            }
        }
        None => {
            let f = &p.formats;
            h.iter_mut().for_each(|v| *v = f.h.round(*v));
            c.iter_mut().for_each(|v| *v = f.c.round(*v));
            let rows = p.b.len();
            let mut acc = vec![0.0f32; rows];
            for (k, &v) in x.iter().enumerate() {
                let xk = f.x.round(v);
                for (a, &w) in acc.iter_mut().zip(&cols.w[k * rows..(k + 1) * rows]) {
                    *a = add(*a, mul(w, xk));
                }
            }
            for (k, &hk) in h.iter().enumerate() {
                for (a, &r) in acc.iter_mut().zip(&cols.r[k * rows..(k + 1) * rows]) {
                    *a = add(*a, mul(r, hk));
                }
            }
            for (a, &b) in acc.iter_mut().zip(&p.b) {
                *a = add(*a, b);
            }
            for j in 0..hsz {
                let sums = [acc[j], acc[hsz + j], acc[2 * hsz + j], acc[3 * hsz + j]];
                let (h_new, c_new, _) = float_unit(p, j, sums, c[j]);
                h[j] = h_new;
                c[j] = c_new;
            }
        }
    }
}

/// Layer `l` of one lane at `policy`, on the lane's layer input `x` (`[T, I]`): h and c
/// values `[T, D*H]` and the level and metric of every step. Run lane by lane, rayon over the
/// lanes of a chunk, by [`super::CpuPolicies`].
#[allow(clippy::too_many_arguments)]
pub(super) fn lane_layer(
    model: &Model,
    plans: &LevelPlans,
    columns: &LevelColumns,
    spec: &PolicySpec,
    policy: &Policy,
    l: usize,
    x_vals: &[f32],
    steps: usize,
) -> (Vec<f32>, Vec<f32>, StepLevels) {
    let top = plans.levels.len() - 1;
    let layer = &model.layers[l];
    let width = layer.input_size;
    let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
    let stride = hsz * dirs;
    let (mut h_out, mut c_out) = (vec![0.0f32; steps * stride], vec![0.0f32; steps * stride]);
    let mut out = StepLevels::default();
    for k in 0..dirs {
        let cells: Vec<&CellPlan> = plans.levels.iter().map(|p| &p.layers[l][k]).collect();
        let cols: Vec<&Columns> = columns.iter().map(|c| &c[l][k]).collect();
        let metric = ValueMetric::new(spec.metric, policy, hsz);
        let (mut h, mut c) = (cells[top].h0.clone(), cells[top].c0.clone());
        let (mut levels, mut metrics) = (vec![0u8; steps], vec![0.0f64; steps]);
        let mut previous = Change::default();
        for s in 0..steps {
            let t = layer.direction.time(k, s, steps);
            let x = &x_vals[t * width..(t + 1) * width];
            let (mut hn, mut cn) = (h.clone(), c.clone());
            let level = match spec.timing {
                Timing::Causal => {
                    let level = match s {
                        0 => spec.start,
                        _ => metric.level(previous),
                    };
                    step_values(cells[level], cols[level], x, &mut hn, &mut cn);
                    level
                }
                Timing::Oracle => {
                    step_values(cells[top], cols[top], x, &mut hn, &mut cn);
                    let level = metric.level(metric.eval(&cn, &c).0);
                    if level < top {
                        (hn, cn) = (h.clone(), c.clone());
                        step_values(cells[level], cols[level], x, &mut hn, &mut cn);
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
            h_out[row..row + hsz].copy_from_slice(&h);
            c_out[row..row + hsz].copy_from_slice(&c);
        }
        out.levels.push(levels);
        out.metrics.push(metrics);
    }
    (h_out, c_out, out)
}

/// The metric of every step of a lane, recomputed from its cell values (`[T, D*H]` per
/// layer): what the GPU path reports.
pub(super) fn lane_metrics(
    model: &Model,
    plans: &LevelPlans,
    spec: &PolicySpec,
    policy: &Policy,
    layers: &[(Vec<f32>, Vec<f32>)],
    steps: usize,
) -> Vec<Vec<Vec<f64>>> {
    let top = plans.levels.len() - 1;
    model
        .layers
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
            (0..dirs)
                .map(|k| {
                    let metric = ValueMetric::new(spec.metric, policy, hsz);
                    let mut prev = plans.levels[top].layers[l][k].c0.clone();
                    let mut out = vec![0.0; steps];
                    for s in 0..steps {
                        let t = layer.direction.time(k, s, steps);
                        let at = t * hsz * dirs + k * hsz;
                        let c = &layers[l].1[at..at + hsz];
                        out[t] = metric.eval(c, &prev).1;
                        prev = c.to_vec();
                    }
                    out
                })
                .collect()
        })
        .collect()
}
