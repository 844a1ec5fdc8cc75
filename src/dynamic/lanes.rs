//! Policy lanes on the lane-batched engine: the closed-loop simulation of docs/NUMERICS.md
//! §11 with every (policy, sequence) lane of a chunk advancing together. Per layer and
//! direction the input products of every step are computed once per level; at each step the
//! lanes are grouped by the level they run at, and each group's recurrent product is one
//! matrix product on that level's weights ([`ExactProduct`]). Lanes never interact, so the
//! result is the per-lane scalar simulation's ([`super::sim`]) bit for bit, which
//! `tests/dynamic.rs` checks.

use super::sim::{Change, IntMetric, LaneResult};
use super::{LevelPlans, Policy, PolicySpec, Timing};
use crate::format::fixed::rescale;
use crate::lstm::eval::apply_head;
use crate::lstm::eval::batch::{ExactProduct, Io};
use crate::lstm::eval::cell::{int_gate_sum, int_unit};
use crate::lstm::eval::gemm::COL_ALIGN;
use crate::lstm::eval::plan::IntCell;
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use rayon::prelude::*;

/// Lanes per chunk: bounded so the per-level input products (`4H x T x lanes` i64) stay
/// near 256 MiB, at least one column tile.
fn chunk_lanes(model: &Model, steps: usize, levels: usize, total: usize) -> usize {
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

/// Simulates lanes `first..first + count` (lane = policy * sequences + sequence).
pub(super) fn simulate_chunk(
    model: &Model,
    seqs: &Sequences,
    spec: &PolicySpec,
    plans: &LevelPlans,
    policies: &[Policy],
    first: usize,
    count: usize,
) -> Vec<LaneResult> {
    let steps = seqs.steps;
    let lane_policy = |lane: usize| &policies[(first + lane) / seqs.count];
    // Layer input of every lane, [lanes, T, width].
    let mut x: Vec<f32> = (0..count)
        .flat_map(|lane| seqs.sequence((first + lane) % seqs.count).iter().copied())
        .collect();
    let mut results: Vec<LaneResult> = (0..count)
        .map(|_| LaneResult {
            layers: Vec::new(),
            output: None,
            levels: Vec::new(),
            metrics: Vec::new(),
        })
        .collect();
    for (l, layer) in model.layers.iter().enumerate() {
        let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
        let stride = hsz * dirs;
        let mut h_out = vec![0.0f32; count * steps * stride];
        let mut c_out = vec![0.0f32; count * steps * stride];
        for r in results.iter_mut() {
            r.levels.push(Vec::new());
            r.metrics.push(Vec::new());
        }
        for k in 0..dirs {
            let cells: Vec<&IntCell> = plans
                .levels
                .iter()
                .filter_map(|p| p.layers[l][k].int.as_ref())
                .collect();
            let io = Io {
                x: &x,
                input: layer.input_size,
                n: count,
                steps,
                reversed: layer.direction.is_reversed(k),
                offset: k * hsz,
                stride,
            };
            let metrics: Vec<IntMetric> = (0..count)
                .map(|lane| {
                    IntMetric::new(
                        spec.metric,
                        lane_policy(lane),
                        cells[cells.len() - 1].c.frac,
                        hsz,
                    )
                })
                .collect();
            let (levels, values) = direction(&cells, &io, spec, &metrics, &mut h_out, &mut c_out);
            for (lane, r) in results.iter_mut().enumerate() {
                r.levels[l].push(levels[lane].clone());
                r.metrics[l].push(values[lane].clone());
            }
        }
        for (lane, r) in results.iter_mut().enumerate() {
            let span = lane * steps * stride..(lane + 1) * steps * stride;
            r.layers
                .push((h_out[span.clone()].to_vec(), c_out[span].to_vec()));
        }
        x = h_out;
    }
    let width = model.hidden_output_size();
    for (lane, r) in results.iter_mut().enumerate() {
        r.output = apply_head(
            model,
            &x[lane * steps * width..(lane + 1) * steps * width],
            steps,
        );
    }
    results
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
            let xq = io.columns(|v| q.x.quantize(v));
            let w = q.w_product();
            let mut wx = vec![0i64; 4 * hsz * cols];
            w.product(&xq, cols, &mut wx);
            Level {
                q,
                wx,
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

/// Every lane of `policies` x sequences, in chunks (rayon inside the products); `lane_done`
/// is called once per finished lane.
pub(super) fn simulate_batched(
    model: &Model,
    seqs: &Sequences,
    spec: &PolicySpec,
    plans: &LevelPlans,
    policies: &[Policy],
    lane_done: &(dyn Fn() + Sync),
) -> Vec<LaneResult> {
    let total = policies.len() * seqs.count;
    let chunk = chunk_lanes(model, seqs.steps, plans.levels.len(), total);
    let mut out = Vec::with_capacity(total);
    let mut first = 0;
    while first < total {
        let count = chunk.min(total - first);
        out.extend(simulate_chunk(
            model, seqs, spec, plans, policies, first, count,
        ));
        (0..count).for_each(|_| lane_done());
        first += count;
    }
    out
}
