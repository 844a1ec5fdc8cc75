//! The level-weighted sums of one layer under one of the three schedules of docs/MODEL.md
//! section 3 (sequential, overlapped, batched input products): per precision level the input
//! and recurrent products, the step, the first gate and last step of a stream-bound layer, the
//! stream-bound pace over the levels (double buffer) and the precision switches its stream
//! waits hide. `layer.rs` turns them into the layer's cycles and traffic.

use super::arch::Arch;
use super::energy::mac_pj;
use super::timing::{matvec, LaneRate, MatVec, GATES, MAX_PRECISION_LEVELS};
use super::workload::Workload;

/// Level-weighted sums of one layer under one schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LevelSums {
    /// sum_k phi_k max(step_k, stream) (with dynamic precision and a stream, the
    /// double-buffered pace of `stream_bound_pace`).
    pub(crate) step_cycles: f64,
    /// The same pace over steps 1..T-2 only, between the first gate and `last` on the
    /// stream-bound path: `step_cycles` unless the first or last step's level is measured.
    pub(crate) mid_step_cycles: f64,
    /// sum_k phi_k step_k (compute only).
    pub(crate) compute_step_cycles: f64,
    /// Products before the first recurrent product (cycles).
    pub(crate) pre_cycles: f64,
    /// Last step's tail minus a steady step's overlap term.
    pub(crate) end_fix: f64,
    /// With dynamic precision and a stream, the share of the precision switches that the
    /// stream-bound path hides: a switch into step s (issued when Tail(s-1) ends) delays step
    /// s, which matters there only if the step then takes longer than a stream
    /// (docs/MODEL.md section 3, "Switches behind streams"). 0 otherwise.
    pub(crate) switches_hidden: f64,
    /// Stream-bound layers: cycles from the end of the load until step 1's first
    /// stream-dependent product could start, and from the arrival of the last stream to the
    /// end of the layer.
    pub(crate) first_gate: f64,
    /// With dynamic precision, the expected wait after the load before stream 2 may start:
    /// sum_k phi0_k max(first gate at level k, stream) (step 0's level is k with probability
    /// phi0_k, the first step's fractions, else phi_k; the mean first gate under the max would
    /// understate it).
    pub(crate) first_wait: f64,
    pub(crate) last: f64,
    /// sum_k phi_k rec_k.
    pub(crate) rec_cycles: f64,
    /// sum_k phi_k in_k: a step's input product as the plan issues it (at the widest level when
    /// issued early; 0 when batched).
    pub(crate) input_cycles: f64,
    /// sum_k phi_k (in_k + rec_k + 2 rho): the units' busy cycles per step (the input and
    /// recurrent products and the reconfigurations into and out of them).
    pub(crate) busy_cycles: f64,
    pub(crate) ideal_cycles: f64,
    pub(crate) weight_sram_bits: f64,
    pub(crate) activation_sram_bits: f64,
    pub(crate) mac_pj: f64,
    pub(crate) bound_steps: f64,
    pub(crate) input_at_widest: bool,
    /// The plan issues step s+1's input product (and its weight stream) during step s.
    pub(crate) overlapped: bool,
    /// Levels present (with a non-zero fraction).
    pub(crate) levels: usize,
    /// sum_k phi_k max(0, stream - step_k) (0 when nothing streams).
    pub(crate) stream_slack: f64,
    /// Per level index: max(step_k, stream) and in_k + rec_k + 2 rho (0 where absent).
    pub(crate) level_step: [f64; MAX_PRECISION_LEVELS],
    pub(crate) level_busy: [f64; MAX_PRECISION_LEVELS],
    /// Per level index: step_k without the stream (0 where absent).
    pub(crate) level_compute: [f64; MAX_PRECISION_LEVELS],
    /// Per level index: from the step's input to its h, for step 0 and for step T-1 (the
    /// latter's input product at the widest level when dynamic overlapped); no stream wait.
    pub(crate) level_first: [f64; MAX_PRECISION_LEVELS],
    pub(crate) level_last: [f64; MAX_PRECISION_LEVELS],
}

/// The three schedules of one layer (docs/MODEL.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// In(t) after Tail(t-1), at step t's level.
    Sequential,
    /// In(t+1) right after Rec(t), overlapping Tail(t), at the widest level when dynamic.
    Overlapped,
    /// All In(t) before the recurrence, at the widest level when dynamic.
    Batched,
}

/// Per-step constants of a layer shared by every level.
pub(crate) struct Shape {
    pub(crate) blocks: u64,
    pub(crate) cells: u64,
    pub(crate) hidden: u64,
    pub(crate) input: u64,
    pub(crate) batch: u64,
    pub(crate) steps: u64,
    pub(crate) post: f64,
    pub(crate) reconfig: f64,
    pub(crate) stream: f64,
    /// Expected level changes per step (dynamic precision).
    pub(crate) switch_rate: f64,
}

/// Mean cycles per step of a stream-bound layer whose steps take different times (dynamic
/// precision), from `(fraction, step, gap, first)` per level ([`Level`]): `gap` is the part of a step between its
/// products' end and the next step's first product (the tail, reconfigurations). The stream
/// buffer is double: stream s may start once step s-2's products are done, so the longest
/// path runs along the streams (one stream time per step) and leaves them only for a run of
/// steps slower than a stream, which gains its excess over the streams minus one gap (the run
/// re-enters the streams from its products' end, not its tail), or minus the deficit of the
/// fast run between it and the next slow run when that is smaller (two slow runs then merge
/// into one path). Runs per level from the switch rate (switches * phi_k (1 - phi_k) /
/// (1 - sum phi^2), plus phi0_k, the odds that the first step is at level k: the first step's
/// fractions when measured, else phi_k); a fast run's deficit is the mean one, the
/// fast deficit over the fast runs. Never above
/// sum_k phi_k max(step_k, stream), the pace with a single buffer.
fn stream_bound_pace(levels: &[Level], stream: f64, t: f64, switch_rate: f64) -> f64 {
    let mixed: f64 = levels.iter().map(|&(f, st, _, _)| f * st.max(stream)).sum();
    let sumsq: f64 = levels.iter().map(|&(f, _, _, _)| f * f).sum();
    if 1.0 - sumsq <= 1e-12 || t < 2.0 {
        return mixed;
    }
    let switches = switch_rate * (t - 1.0);
    let runs =
        |f: f64, first: f64| (switches * f * (1.0 - f) / (1.0 - sumsq) + first).clamp(0.0, t * f);
    let slow_runs: f64 = levels
        .iter()
        .filter(|&&(_, st, _, _)| st > stream)
        .map(|&(f, _, _, f0)| runs(f, f0))
        .sum();
    if slow_runs <= 0.0 {
        return mixed;
    }
    let fast_deficit: f64 = levels
        .iter()
        .filter(|&&(_, st, _, _)| st < stream)
        .map(|&(f, st, _, _)| t * f * (stream - st))
        .sum();
    let fast_runs: f64 = levels
        .iter()
        .filter(|&&(_, st, _, _)| st < stream)
        .map(|&(f, _, _, f0)| runs(f, f0))
        .sum();
    let per_gap = if fast_runs > 0.0 {
        fast_deficit / fast_runs
    } else {
        0.0
    };
    let gain: f64 = levels
        .iter()
        .filter(|&&(_, st, _, _)| st > stream)
        .map(|&(f, st, gap, f0)| (t * f * (st - stream) - runs(f, f0) * gap.min(per_gap)).max(0.0))
        .sum();
    (stream + gain / t).min(mixed)
}

/// One level present, for [`stream_bound_pace`]: (fraction of the steps, step, gap, odds that
/// the first step is at this level).
type Level = (f64, f64, f64, f64);

/// Per level index, the odds that the first (or last) step of the layer runs at that level:
/// `edge` (a profile's `first_step_fraction` or `last_step_fraction`) over the levels present
/// in the layer (`fractions` non-zero), renormalised if it puts weight elsewhere (the edge
/// fractions are the profile's, the step fractions may be the layer's); `fractions` itself
/// when `edge` is `fractions` (unknown edge: exactly the arithmetic without edge terms) or
/// gives no weight to a level present.
fn edge_weights(edge: &[f64], fractions: &[f64]) -> [f64; MAX_PRECISION_LEVELS] {
    let mut w = [0.0; MAX_PRECISION_LEVELS];
    let n = fractions.len().min(MAX_PRECISION_LEVELS);
    if edge != fractions {
        let mut sum = 0.0;
        for k in 0..n {
            if fractions[k] != 0.0 {
                w[k] = edge.get(k).copied().unwrap_or(0.0);
                sum += w[k];
            }
        }
        if sum > 0.0 {
            if sum != 1.0 {
                w.iter_mut().for_each(|x| *x /= sum);
            }
            return w;
        }
    }
    w[..n].copy_from_slice(&fractions[..n]);
    w
}

/// The level-weighted sums of a layer: `fractions` of the steps per level, `first` and
/// `last` the odds of the first and last step's level (`fractions` when unknown).
#[allow(clippy::too_many_arguments)]
pub(crate) fn level_sums(
    arch: &Arch,
    workload: &Workload,
    rates: &[LaneRate],
    fractions: &[f64],
    first: &[f64],
    last: &[f64],
    sh: &Shape,
    plan: Plan,
) -> LevelSums {
    let t = sh.steps as f64;
    let dynamic = rates.len() > 1;
    let widest = &rates[workload.precision.widest_index()];
    let rho = sh.reconfig;
    let early = dynamic && plan != Plan::Sequential;
    // Only a dynamic overlapped plan runs its input products at the widest level.
    let in_wide = if early && plan == Plan::Overlapped {
        matvec(arch, widest, sh.blocks, sh.cells, sh.input, sh.batch)
    } else {
        MatVec::default()
    };
    let batched = if plan == Plan::Batched {
        let r = if dynamic { widest } else { &rates[0] };
        Some((
            matvec(arch, r, sh.blocks, sh.cells, sh.input, sh.batch * sh.steps),
            mac_pj(arch, r),
        ))
    } else {
        None
    };
    let mut s = LevelSums {
        input_at_widest: early,
        overlapped: plan == Plan::Overlapped,
        ..LevelSums::default()
    };
    // Products before step 0's recurrent one when they do not depend on the level.
    let batched_pre = batched.map_or(0.0, |(mv, _)| mv.cycles + rho);
    let in_macs = (sh.blocks * sh.cells * sh.input * sh.batch) as f64;
    let rec_macs = (sh.blocks * sh.cells * sh.hidden * sh.batch) as f64;
    let h_bits = (sh.batch * sh.blocks / GATES * sh.cells) as f64;
    // (fraction, step, gap, first) of each level present, for the stream-bound pace.
    let mut steps_of: [Level; MAX_PRECISION_LEVELS] = [(0.0, 0.0, 0.0, 0.0); MAX_PRECISION_LEVELS];
    let mut edge_of = [(0.0f64, 0.0f64); MAX_PRECISION_LEVELS];
    let mut levels = 0;
    // Odds of step 0's and step T-1's level: the step fractions unless measured.
    let first_w = edge_weights(first, fractions);
    let last_w = edge_weights(last, fractions);
    // Step 0's recurrent product and whole step, step T-1's (weighted by first_w, last_w).
    let (mut first_rec, mut first_step) = (0.0, 0.0);
    let (mut last_rec, mut last_step) = (0.0, 0.0);
    for (index, (rate, &frac)) in rates.iter().zip(fractions).enumerate() {
        if frac == 0.0 {
            continue;
        }
        let (f0, f1) = if index < MAX_PRECISION_LEVELS {
            (first_w[index], last_w[index])
        } else {
            (frac, frac)
        };
        let rec = matvec(arch, rate, sh.blocks, sh.cells, sh.hidden, sh.batch);
        let input = if early {
            in_wide
        } else {
            matvec(arch, rate, sh.blocks, sh.cells, sh.input, sh.batch)
        };
        let step = match plan {
            Plan::Sequential => input.cycles + rho + rec.cycles + sh.post.max(rho),
            Plan::Overlapped => rec.cycles + sh.post.max(input.cycles + 2.0 * rho),
            Plan::Batched => rec.cycles + sh.post,
        };
        if plan == Plan::Overlapped && !early {
            // Fixed precision: the first input product runs at the step's (only) level.
            s.pre_cycles += frac * (input.cycles + rho);
        } else if plan == Plan::Overlapped {
            // Step 0's level is known at the start: its input product runs at that level.
            let first = matvec(arch, rate, sh.blocks, sh.cells, sh.input, sh.batch);
            s.pre_cycles += f0 * (first.cycles + rho);
        }
        s.rec_cycles += frac * rec.cycles;
        if plan != Plan::Batched {
            s.input_cycles += frac * input.cycles;
        }
        first_rec += f0 * rec.cycles;
        last_rec += f1 * rec.cycles;
        let first_gate = rec.cycles
            + match plan {
                Plan::Sequential => input.cycles + rho,
                Plan::Overlapped if early => {
                    matvec(arch, rate, sh.blocks, sh.cells, sh.input, sh.batch).cycles + rho
                }
                Plan::Overlapped => input.cycles + rho,
                Plan::Batched => batched_pre,
            };
        s.first_wait += f0 * first_gate.max(sh.stream);
        s.busy_cycles += frac * (input.cycles + rec.cycles + 2.0 * rho);
        s.step_cycles += frac * step.max(sh.stream);
        if sh.stream > 0.0 {
            s.stream_slack += frac * (sh.stream - step).max(0.0);
        }
        if index < MAX_PRECISION_LEVELS {
            s.level_step[index] = step.max(sh.stream);
            s.level_busy[index] = input.cycles + rec.cycles + 2.0 * rho;
            s.level_compute[index] = step;
            s.level_first[index] = first_gate + sh.post;
            s.level_last[index] = match plan {
                Plan::Batched => rec.cycles + sh.post,
                _ => input.cycles + rho + rec.cycles + sh.post,
            };
        }
        // Cycles of a step not spent from its stream's arrival to its products' end.
        let gap = match plan {
            Plan::Sequential => sh.post.max(rho),
            Plan::Overlapped => step - (input.cycles + rho + rec.cycles),
            Plan::Batched => sh.post,
        };
        if levels < steps_of.len() {
            steps_of[levels] = (frac, step, gap, f0);
            edge_of[levels] = (f0, f1);
            levels += 1;
        }
        s.compute_step_cycles += frac * step;
        first_step += f0 * step;
        last_step += f1 * step;
        if sh.stream > step {
            s.bound_steps += frac * (t - 1.0);
        }
        let steps = frac * t;
        let rec_pj = mac_pj(arch, rate);
        s.mac_pj += steps * rec_macs * rec_pj;
        s.ideal_cycles += steps * rec.ideal_cycles;
        s.weight_sram_bits += steps * rec.weight_sram_bits;
        // The recurrent product's activations plus writing h_t back for the next step.
        s.activation_sram_bits +=
            steps * (rec.activation_sram_bits + h_bits * f64::from(rate.activation_bits));
        if batched.is_none() {
            let in_pj = if early { mac_pj(arch, widest) } else { rec_pj };
            s.mac_pj += steps * in_macs * in_pj;
            s.ideal_cycles += steps * input.ideal_cycles;
            s.weight_sram_bits += steps * input.weight_sram_bits;
            s.activation_sram_bits += steps * input.activation_sram_bits;
        }
    }
    s.levels = levels;
    if levels >= 2 && sh.stream > 0.0 {
        // Never below the recurrence's own mean step: each step's products and tail follow
        // the step before, whatever the streams (the gaps the pace takes off slow runs end
        // on that floor).
        s.step_cycles = stream_bound_pace(&steps_of[..levels], sh.stream, t, sh.switch_rate)
            .max(s.compute_step_cycles);
    }
    // Switches on the stream-bound path: into step T-1 (after the last stream) always paid;
    // into a middle step at level k, paid as far as it makes that step longer than a stream
    // (a slow level: all of it; a fast one: step_k + switch - str, at most the switch; not
    // less the step's gap as in the pace, since the next step waits for the tail: the same
    // worst figures over 200,000 points, and the safer side), the switches spread over the
    // levels as the pace's runs are.
    let switch = f64::from(arch.schedule.precision_switch_cycles);
    if levels >= 2 && sh.stream > 0.0 && switch > 0.0 && t > 2.0 {
        let sumsq: f64 = steps_of[..levels].iter().map(|l| l.0 * l.0).sum();
        if 1.0 - sumsq > 1e-12 {
            let paid: f64 = steps_of[..levels]
                .iter()
                .map(|&(f, st, _, _)| {
                    let share = f * (1.0 - f) / (1.0 - sumsq);
                    let part = if st > sh.stream {
                        1.0
                    } else {
                        ((st + switch - sh.stream).max(0.0) / switch).min(1.0)
                    };
                    share * part
                })
                .sum();
            s.switches_hidden = ((t - 2.0) * (1.0 - paid) / (t - 1.0)).clamp(0.0, 1.0);
        }
    }
    // The stream-bound path runs step 0 (first gate), T-2 paced streams and step T-1 (last):
    // with the first and last steps' levels known, the T-2 in between hold the rest of the
    // steps, T phi_k - phi0_k - phi1_k at level k (else the mean pace, as before).
    s.mid_step_cycles = s.step_cycles;
    if (first != fractions || last != fractions) && levels >= 2 && sh.stream > 0.0 && t > 2.0 {
        let mut mid = steps_of;
        let mut sum = 0.0;
        for (l, &(f0, f1)) in mid[..levels].iter_mut().zip(&edge_of) {
            l.0 = (t * l.0 - f0 - f1).max(0.0);
            sum += l.0;
        }
        if sum > 0.0 {
            for l in &mut mid[..levels] {
                l.0 /= sum;
                // Step 1's level: no better guess than the middle steps' mix.
                l.3 = l.0;
            }
            s.mid_step_cycles =
                stream_bound_pace(&mid[..levels], sh.stream, t - 2.0, sh.switch_rate);
        }
    }
    let in_wide_overlap = sh.post.max(in_wide.cycles + 2.0 * rho);
    match plan {
        Plan::Sequential => {
            // Step 0's products (In, rho, Rec) end; the tail does not hold the stream buffer.
            // The last stream feeds step T-1, at its level.
            s.first_gate = first_step - sh.post.max(rho);
            s.last = last_step + sh.post - sh.post.max(rho);
        }
        Plan::Overlapped => {
            // In(s) waits for its stream; In(s), rho, Rec(s), Tail(s) follow it.
            let lead = if early {
                in_wide.cycles + rho
            } else {
                s.pre_cycles
            };
            s.first_gate = s.pre_cycles + first_rec;
            s.last = lead + last_rec + sh.post;
        }
        Plan::Batched => {}
    }
    match plan {
        Plan::Sequential => s.end_fix = sh.post - sh.post.max(rho),
        Plan::Overlapped => {
            // A fixed-precision overlap term is the same at every level (one level).
            let overlap = if early {
                in_wide_overlap
            } else {
                let only = matvec(arch, &rates[0], sh.blocks, sh.cells, sh.input, sh.batch);
                sh.post.max(only.cycles + 2.0 * rho)
            };
            s.end_fix = sh.post - overlap;
        }
        Plan::Batched => {
            let (mv, pj): (MatVec, f64) = batched.unwrap_or_default();
            s.pre_cycles = mv.cycles + rho;
            s.first_gate = s.pre_cycles + first_rec;
            s.last = last_step;
            s.mac_pj += t * in_macs * pj;
            s.ideal_cycles += mv.ideal_cycles;
            s.weight_sram_bits += mv.weight_sram_bits;
            s.activation_sram_bits += mv.activation_sram_bits;
        }
    }
    s
}
