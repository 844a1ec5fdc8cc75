//! Policy lanes on the lane-batched engine: the closed-loop simulation of docs/NUMERICS.md
//! §11 with every (policy, sequence) lane of a chunk advancing together. Per layer and
//! direction the input products of every step are computed once per level; at each step the
//! lanes are grouped by the level they run at, and each group's recurrent product is one
//! matrix product on that level's weights ([`ExactProduct`]). Lanes never interact, so the
//! result is the per-lane scalar simulation's ([`super::sim`]) bit for bit, which
//! `tests/dynamic.rs` checks. [`CpuPolicies`] is this engine's face to the
//! [`driver`](crate::lstm::driver): one layer of a chunk of lanes.

use super::sim::{Change, IntMetric, LaneResult};
use super::values::{self, LevelColumns};
use super::{LevelPlans, LevelState, Policy, PolicySpec, Timing};
use crate::format::fixed::rescale;
use crate::lstm::driver::{self, Backend, Chunk, Levels, StepLevels};
use crate::lstm::eval::batch::{ExactProduct, Io};
use crate::lstm::eval::cell::{int_gate_sum, int_unit};
use crate::lstm::eval::gemm::COL_ALIGN;
use crate::lstm::eval::intgemm::Layout;
use crate::lstm::eval::plan::IntCell;
use crate::lstm::eval::LayerStates;
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use rayon::prelude::*;
use std::convert::Infallible;

/// Lanes per chunk: bounded so the per-level input products (`4H x T x lanes` i64) stay
/// near 256 MiB, at least one column tile.
pub(super) fn chunk_lanes(model: &Model, steps: usize, levels: usize, total: usize) -> usize {
    let widest = model
        .layers
        .iter()
        .map(|l| 4 * l.hidden_size)
        .max()
        .unwrap_or(4);
    let per_lane = (widest * steps.max(1) * levels * 8).max(1);
    let lanes = ((256usize << 20) / per_lane).max(COL_ALIGN);
    lanes.min(total.max(1))
}

/// The CPU backend of the [`driver`] for policy lanes: with a state kept as codes every lane
/// of a chunk advances together, each step's lanes grouped by level; with a state kept as
/// values (`values.rs`) lane by lane, rayon over the chunk's lanes.
pub struct CpuPolicies<'a> {
    spec: &'a PolicySpec,
    plans: &'a LevelPlans,
    /// Each level's columns, for a state kept as values.
    columns: Option<LevelColumns>,
}

impl<'a> CpuPolicies<'a> {
    pub fn new(spec: &'a PolicySpec, plans: &'a LevelPlans) -> Self {
        let columns = (plans.state == LevelState::Values).then(|| values::level_columns(plans));
        CpuPolicies {
            spec,
            plans,
            columns,
        }
    }

    /// Layer `l` of a chunk of lanes whose state is kept as values, lane by lane.
    #[allow(clippy::too_many_arguments)]
    fn value_layer(
        &self,
        columns: &LevelColumns,
        model: &Model,
        chunk: &Chunk<Policy>,
        l: usize,
        x: &[f32],
    ) -> PolicyLayer {
        let steps = chunk.seqs.steps;
        let per_lane = steps * model.layers[l].input_size;
        let lanes: Vec<_> = (0..chunk.lanes())
            .into_par_iter()
            .map(|lane| {
                let policy = &chunk.groups[lane / chunk.nseq];
                let x = &x[lane * per_lane..(lane + 1) * per_lane];
                values::lane_layer(model, self.plans, columns, self.spec, policy, l, x, steps)
            })
            .collect();
        let values = lanes.iter().map(|(h, _, _)| h.len()).sum();
        let mut out = PolicyLayer {
            h: Vec::with_capacity(values),
            c: Vec::with_capacity(values),
            steps: Vec::with_capacity(lanes.len()),
        };
        for (h, c, st) in lanes {
            out.h.extend(h);
            out.c.extend(c);
            out.steps.push(st);
        }
        out
    }
}

/// One layer of a chunk of policy lanes: h and c `[lanes, T, D*H]` (values of the highest
/// level's formats), and per lane the level and Δc metric of every step, `[dir][t]`.
pub struct PolicyLayer {
    h: Vec<f32>,
    c: Vec<f32>,
    steps: Vec<StepLevels>,
}

impl Backend<Policy> for CpuPolicies<'_> {
    type Error = Infallible;
    type Layer = PolicyLayer;

    fn chunk_shape(
        &self,
        model: &Model,
        policies: &[Policy],
        seqs: &Sequences,
    ) -> Result<(usize, usize), Infallible> {
        let levels = self.plans.levels.len();
        let lanes = chunk_lanes(model, seqs.steps, levels, policies.len() * seqs.count);
        let seq_chunk = seqs.count.min(lanes).max(1);
        Ok(((lanes / seq_chunk).max(1), seq_chunk))
    }

    fn layer(
        &self,
        model: &Model,
        chunk: &Chunk<Policy>,
        l: usize,
        input: Option<&PolicyLayer>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<PolicyLayer, Infallible> {
        let (steps, count) = (chunk.seqs.steps, chunk.lanes());
        let first;
        let x = match input {
            Some(previous) => &previous.h,
            None => {
                first = chunk.input().repeat(chunk.groups.len());
                &first
            }
        };
        if let Some(columns) = &self.columns {
            let out = self.value_layer(columns, model, chunk, l, x);
            progress((count * steps) as u64);
            return Ok(out);
        }
        let layer = &model.layers[l];
        let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
        let stride = hsz * dirs;
        let (row, x_row) = (steps * stride, steps * layer.input_size);
        let mut out = PolicyLayer {
            h: vec![0.0f32; count * row],
            c: vec![0.0f32; count * row],
            steps: vec![StepLevels::default(); count],
        };
        // Blocks of lanes run apart when a step is too small to split (`lane_block`), all
        // in the pool (a product that splits inside a block does not wake the caller).
        let block = driver::lane_block(hsz, 1, count);
        let blocks = out.h.par_chunks_mut((block * row).max(1));
        let blocks = blocks.zip(out.c.par_chunks_mut((block * row).max(1)));
        let blocks = blocks.zip(out.steps.par_chunks_mut(block)).enumerate();
        rayon::scope(|_| {
            blocks.for_each(|(b, ((h, c), lane_steps))| {
                let (first, n) = (b * block, lane_steps.len());
                for k in 0..dirs {
                    let cells: Vec<&IntCell> = self
                        .plans
                        .levels
                        .iter()
                        .filter_map(|p| p.layers[l][k].int.as_ref())
                        .collect();
                    let io = Io {
                        x: &x[first * x_row..(first + n) * x_row],
                        input: layer.input_size,
                        n,
                        steps,
                        reversed: layer.direction.is_reversed(k),
                        offset: k * hsz,
                        stride,
                    };
                    let frac = cells[cells.len() - 1].c.frac;
                    let metrics: Vec<IntMetric> = (first..first + n)
                        .map(|lane| {
                            let policy = &chunk.groups[lane / chunk.nseq];
                            IntMetric::new(self.spec.metric, policy, frac, hsz)
                        })
                        .collect();
                    let (levels, values) = direction(&cells, &io, self.spec, &metrics, h, c);
                    for ((lane, lv), v) in lane_steps.iter_mut().zip(levels).zip(values) {
                        lane.levels.push(lv);
                        lane.metrics.push(v);
                    }
                }
            })
        });
        progress((count * steps) as u64);
        Ok(out)
    }

    fn states(
        &self,
        _: &Model,
        chunk: &Chunk<Policy>,
        _: usize,
        out: PolicyLayer,
    ) -> Result<Vec<LayerStates>, Infallible> {
        let per_group = (out.h.len() / chunk.groups.len().max(1)).max(1);
        Ok(out
            .h
            .chunks(per_group)
            .zip(out.c.chunks(per_group))
            .map(|(h, c)| LayerStates {
                h: h.to_vec(),
                c: c.to_vec(),
            })
            .collect())
    }
}

impl Levels<Policy> for CpuPolicies<'_> {
    fn levels(
        &self,
        _: &Model,
        _: &Chunk<Policy>,
        _: usize,
        out: &mut PolicyLayer,
    ) -> Result<Vec<StepLevels>, Infallible> {
        Ok(std::mem::take(&mut out.steps))
    }
}

/// One level's precomputed products for one direction.
struct Level<'a> {
    q: &'a IntCell,
    /// W·x of every step and lane: `[4H][T * lanes]`.
    wx: Vec<i64>,
    r: &'a ExactProduct,
}

/// Per-lane levels and metric values `[lane][t]` of one direction; writes h and c (values of
/// the highest level's formats) into the `[lanes, T, stride]` outputs.
fn direction(
    cells: &[&IntCell],
    io: &Io,
    spec: &PolicySpec,
    metrics: &[IntMetric],
    h_out: &mut [f32],
    c_out: &mut [f32],
) -> (Vec<Vec<u8>>, Vec<Vec<f64>>) {
    let (top, start) = (cells.len() - 1, spec.start);
    let hi = cells[top];
    let hsz = hi.h0.len();
    let (lanes, cols) = (io.lanes(), io.steps * io.lanes());
    let levels: Vec<Level> = cells
        .iter()
        .map(|q| {
            let xq = io.columns(q.x.quantizer());
            let w = q.w_product();
            Level {
                q,
                wx: w.product_new(&xq, cols, Layout::RowMajor),
                r: q.r_product(),
            }
        })
        .collect();
    // State of every lane in the highest level's formats, [H][lanes].
    let mut h = io.initial(&hi.h0);
    let mut c = io.initial(&hi.c0);
    let mut chosen = vec![vec![0u8; io.steps]; io.n];
    let mut values = vec![vec![0.0f64; io.steps]; io.n];
    let mut previous = vec![Change::default(); io.n];
    for s in 0..io.steps {
        let t = io.time(s);
        let (mut hn, mut cn) = (h.clone(), c.clone());
        let level_of: Vec<usize> = match spec.timing {
            Timing::Causal => {
                let lv: Vec<usize> = (0..io.n)
                    .map(|n| match s {
                        0 => start,
                        _ => metrics[n].level(previous[n]),
                    })
                    .collect();
                for (k, level) in levels.iter().enumerate() {
                    let group: Vec<usize> = (0..io.n).filter(|&n| lv[n] == k).collect();
                    step(level, hi, &group, t, lanes, &h, &c, &mut hn, &mut cn);
                }
                lv
            }
            Timing::Oracle => {
                let all: Vec<usize> = (0..io.n).collect();
                step(&levels[top], hi, &all, t, lanes, &h, &c, &mut hn, &mut cn);
                let lv: Vec<usize> = (0..io.n)
                    .map(|n| metrics[n].level(delta(&metrics[n], &cn, &c, n, lanes, hsz).0))
                    .collect();
                for (k, level) in levels.iter().enumerate().take(top) {
                    let group: Vec<usize> = (0..io.n).filter(|&n| lv[n] == k).collect();
                    step(level, hi, &group, t, lanes, &h, &c, &mut hn, &mut cn);
                }
                lv
            }
        };
        for n in 0..io.n {
            let (value, real) = delta(&metrics[n], &cn, &c, n, lanes, hsz);
            previous[n] = value;
            chosen[n][t] = level_of[n] as u8;
            values[n][t] = real;
            for j in 0..hsz {
                let at = io.out_index(n, t, j);
                h_out[at] = hi.h.to_f32(hn[j * lanes + n]);
                c_out[at] = hi.c.to_f32(cn[j * lanes + n]);
            }
        }
        (h, c) = (hn, cn);
    }
    (chosen, values)
}

/// The metric of lane n's change from `old` to `new` (both `[H][lanes]`).
fn delta(
    m: &IntMetric,
    new: &[i32],
    old: &[i32],
    n: usize,
    lanes: usize,
    hsz: usize,
) -> (Change, f64) {
    let a: Vec<i32> = (0..hsz).map(|j| new[j * lanes + n]).collect();
    let b: Vec<i32> = (0..hsz).map(|j| old[j * lanes + n]).collect();
    m.eval(&a, &b)
}

/// Runs step t at `level` for the lanes in `group`: their state (highest-level codes in `h`,
/// `c`) rounded down to the level's formats, one batched recurrent product, the cell update,
/// and the result shifted back up into `hn`, `cn`.
#[allow(clippy::too_many_arguments)]
fn step(
    level: &Level,
    hi: &IntCell,
    group: &[usize],
    t: usize,
    lanes: usize,
    h: &[i32],
    c: &[i32],
    hn: &mut [i32],
    cn: &mut [i32],
) {
    if group.is_empty() {
        return;
    }
    let q = level.q;
    let hsz = q.h0.len();
    let (dh, dc) = (hi.h.frac - q.h.frac, hi.c.frac - q.c.frac);
    let width = group.len().div_ceil(COL_ALIGN) * COL_ALIGN;
    let mut b = vec![0i32; hsz * width];
    b.par_chunks_mut(width).enumerate().for_each(|(j, row)| {
        for (g, &n) in group.iter().enumerate() {
            row[g] = rescale(h[j * lanes + n] as i64, dh, q.h);
        }
    });
    let mut rh = vec![0i64; 4 * hsz * width];
    level.r.product(&b, width, &mut rh);
    let cols = level.wx.len() / (4 * hsz);
    // Units in parallel: each (unit, lane) is computed by one call, in one order.
    let rh = &rh;
    let units = hn.par_chunks_mut(lanes).zip(cn.par_chunks_mut(lanes));
    units.enumerate().for_each(|(j, (hn, cn))| {
        for (g, &n) in group.iter().enumerate() {
            let sum = |gate: usize| {
                let row = gate * hsz + j;
                int_gate_sum(
                    q,
                    row,
                    level.wx[row * cols + t * lanes + n],
                    rh[row * width + g],
                )
            };
            let c_prev = rescale(c[j * lanes + n] as i64, dc, q.c);
            let (h_new, c_new) = int_unit(q, j, [sum(0), sum(1), sum(2), sum(3)], c_prev);
            hn[n] = h_new << dh;
            cn[n] = c_new << dc;
        }
    });
}

/// Every lane of `policies` x sequences through the [`driver`] (rayon inside the products, or
/// over lanes); `lane_done` is called once per finished lane.
pub(super) fn simulate_lanes(
    model: &Model,
    seqs: &Sequences,
    spec: &PolicySpec,
    plans: &LevelPlans,
    policies: &[Policy],
    lane_done: &(dyn Fn() + Sync),
) -> Vec<LaneResult> {
    let lane_steps = (seqs.steps * model.layers.len()).max(1) as u64;
    let mut reported = 0u64;
    let backend = CpuPolicies::new(spec, plans);
    let Ok(lanes) = driver::run_policies(&backend, model, seqs, policies, &mut |done, _| {
        while reported < done / lane_steps {
            lane_done();
            reported += 1;
        }
    });
    lanes
}
