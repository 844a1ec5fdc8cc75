//! One LSTM layer on one core: the closed form of the causal schedule of docs/MODEL.md
//! section 3. Operations per step t are the input product In(t) = W x_t, the recurrent product
//! Rec(t) = U h_{t-1} and the element-wise tail Tail(t); Rec(t) needs Tail(t-1), Tail(t) needs
//! In(t) and Rec(t), products run one at a time on the core's unit array, and the precision
//! level of step t is known only when Tail(t-1) ends. Work that starts before the level is known
//! (batched input products, an input product overlapped with the previous tail) runs at the
//! widest level. The event-level simulator (`sim.rs`) runs the same graph operation by operation;
//! `test_sim.rs` checks this closed form against it.

use super::arch::Arch;
use super::energy::mac_pj;
use super::spec::InputProduct;
use super::timing::{ceil_div, matvec, LaneRate, LevelRates, MatVec, GATES, MAX_PRECISION_LEVELS};
use super::workload::{LayerShape, Workload};

/// How a layer is run on a core, fixed by the multicore mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LayerContext {
    /// Cores that split this layer's cells (helper mode), else 1.
    pub split: u64,
    pub input_product: InputProduct,
    /// DRAM bytes per cycle this core can count on.
    pub dram_bytes_per_cycle: f64,
    /// Whether the layer's output sequence must be kept for a later layer on the same core.
    pub keeps_output: bool,
    pub first_layer: bool,
    pub last_layer: bool,
}

/// One layer on one core, level-weighted over the workload's precision mix.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LayerCost {
    /// Loading the layer's weights before its first product (exposed: the weight memory holds
    /// one layer, so the next layer's weights cannot be prefetched into it).
    pub load_cycles: f64,
    /// Mean cycles of one steady-state step, DRAM streaming and precision switches included.
    pub step_cycles: f64,
    /// Of a steady step, the cycles the unit array is busy (products, reconfigurations and
    /// precision switches; per-step input products): what other layers on the core cannot use.
    pub busy_cycles: f64,
    /// DRAM cycles of one step's weight stream (0 when the weights stay on chip).
    pub stream_cycles: f64,
    /// Cycles outside the T steady steps: the products before the first recurrent product,
    /// the last step's tail in place of a steady step's, step 0 not waiting for a stream.
    pub edge_cycles: f64,
    /// Of `edge_cycles`, the wait for the first weight stream after the load (a stream-bound
    /// layer): it shrinks, cycle for cycle, by the time between the end of the load and the
    /// layer's first product when other work separates them (multithreading).
    pub first_stream_cycles: f64,
    /// Total for the layer on its own: load + edge + T * step + switches.
    pub layer_cycles: f64,
    /// Of `layer_cycles`, those in which DRAM bandwidth is the bound.
    pub dram_bound_cycles: f64,
    pub ideal_cycles: f64,
    pub dram_bytes: f64,
    /// h bytes this core sends to the other helpers per step.
    pub exchange_bytes_per_step: f64,
    pub weight_sram_bits: f64,
    pub activation_sram_bits: f64,
    /// Energy of the layer's multiply-accumulates on this core, in pJ.
    pub mac_pj: f64,
    /// Precision switches of the layer (expected).
    pub switches: f64,
    /// Activation width of the widest level, for traffic between layers and cores.
    pub activation_bytes_per_value: f64,
    /// Per precision level (indexed as the workload's levels; 0 where a level is absent): the
    /// layer's own step at that level (its stream included, switches at their mean rate), and
    /// the units' busy cycles of such a step. Multithreading's pipeline crosses from layer to
    /// layer at the steps that suit its longest path (docs/MODEL.md section 4).
    pub level_step: [f64; MAX_PRECISION_LEVELS],
    pub level_busy: [f64; MAX_PRECISION_LEVELS],
    /// The mean time a step's weight stream outlasts the step, sum_k phi_k max(0, str - step_k)
    /// (0 when nothing streams): how late an input may come without delaying the stream-bound
    /// path, which the double buffer absorbs (docs/MODEL.md section 4).
    pub stream_slack: f64,
    /// The last step's tail and h exchange: the cycles from the layer's last (recurrent)
    /// product to its end, which the reconfiguration into the next input product may overlap.
    pub post_cycles: f64,
}

/// What makes two layers' per-step costs identical.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CacheKey {
    shape: LayerShape,
    split: u64,
    input_product: InputProduct,
    dram_bytes_per_cycle: f64,
}

/// Level-weighted sums of one layer under one schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LevelSums {
    /// sum_k phi_k max(step_k, stream) (with dynamic precision and a stream, the
    /// double-buffered pace of `stream_bound_pace`).
    step_cycles: f64,
    /// The same pace over steps 1..T-2 only, between the first gate and `last` on the
    /// stream-bound path: `step_cycles` unless the first or last step's level is measured.
    mid_step_cycles: f64,
    /// sum_k phi_k step_k (compute only).
    compute_step_cycles: f64,
    /// Products before the first recurrent product (cycles).
    pre_cycles: f64,
    /// Last step's tail minus a steady step's overlap term.
    end_fix: f64,
    /// With dynamic precision and a stream, the share of the precision switches that the
    /// stream-bound path hides: a switch into step s (issued when Tail(s-1) ends) delays step
    /// s, which matters there only if the step then takes longer than a stream
    /// (docs/MODEL.md section 3, "Switches behind streams"). 0 otherwise.
    switches_hidden: f64,
    /// Stream-bound layers: cycles from the end of the load until step 1's first
    /// stream-dependent product could start, and from the arrival of the last stream to the
    /// end of the layer.
    first_gate: f64,
    /// With dynamic precision, the expected wait after the load before stream 2 may start:
    /// sum_k phi0_k max(first gate at level k, stream) (step 0's level is k with probability
    /// phi0_k, the first step's fractions, else phi_k; the mean first gate under the max would
    /// understate it).
    first_wait: f64,
    last: f64,
    /// sum_k phi_k rec_k.
    rec_cycles: f64,
    /// sum_k phi_k (in_k + rec_k + 2 rho): the units' busy cycles per step (the input and
    /// recurrent products and the reconfigurations into and out of them).
    busy_cycles: f64,
    ideal_cycles: f64,
    weight_sram_bits: f64,
    activation_sram_bits: f64,
    mac_pj: f64,
    bound_steps: f64,
    input_at_widest: bool,
    /// Levels present (with a non-zero fraction).
    levels: usize,
    /// sum_k phi_k max(0, stream - step_k) (0 when nothing streams).
    stream_slack: f64,
    /// Per level index: max(step_k, stream) and in_k + rec_k + 2 rho (0 where absent).
    level_step: [f64; MAX_PRECISION_LEVELS],
    level_busy: [f64; MAX_PRECISION_LEVELS],
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
struct Shape {
    blocks: u64,
    cells: u64,
    hidden: u64,
    input: u64,
    batch: u64,
    steps: u64,
    post: f64,
    reconfig: f64,
    stream: f64,
    /// Expected level changes per step (dynamic precision).
    switch_rate: f64,
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
fn level_sums(
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

/// Cycles of a layer from its sums, before the DRAM bound. Compute-bound (streams hide
/// behind the step before): load + pre + step 0 + (T-1) * steady compute step + end fix.
/// Stream-bound (step s >= 1 starts when its stream arrives, one stream time apart; stream 2
/// may start when step 0's products are done, the double buffer): load + max(first gate,
/// stream) + (T-2) * steady step + last. The larger of the two, plus the precision switches
/// (on the stream-bound path only those its steps cannot hide in their wait for a stream).
fn total(s: &LevelSums, load: f64, stream: f64, t: f64, switch_cycles: f64) -> f64 {
    load + paths(s, stream, t, switch_cycles).0 + switch_cycles
}

/// The longest path of a layer after its load, and how much of it is the wait for the first
/// stream (it starts at the end of the load; in multithreading, other work may separate the
/// load from the layer's first product, and the first stream arrives during it).
/// `switch_cycles` (added by the caller) are all on the compute-bound path; the stream-bound
/// path is credited the share its steps hide.
fn paths(s: &LevelSums, stream: f64, t: f64, switch_cycles: f64) -> (f64, f64) {
    let compute =
        s.pre_cycles + s.compute_step_cycles + (t - 1.0) * s.compute_step_cycles + s.end_fix;
    if t >= 2.0 && stream > 0.0 {
        let hidden = switch_cycles * s.switches_hidden;
        let rest = if hidden > 0.0 {
            (t - 2.0) * s.mid_step_cycles + s.last - hidden
        } else {
            (t - 2.0) * s.mid_step_cycles + s.last
        };
        let first = if s.levels >= 2 {
            s.first_wait
        } else {
            s.first_gate.max(stream)
        };
        let with_first = compute.max(first + rest);
        let without = compute.max(s.first_gate + rest);
        (with_first, with_first - without)
    } else {
        (compute, 0.0)
    }
}

/// Cycles and traffic of layer `index` for one core's share; `cache` carries the previous
/// layer's sums between calls (start with `None`).
pub(crate) fn layer_cost(
    arch: &Arch,
    workload: &Workload,
    rates: &LevelRates,
    index: usize,
    shape: &LayerShape,
    ctx: &LayerContext,
    cache: &mut Option<(CacheKey, usize, LevelSums)>,
) -> LayerCost {
    let p = &workload.precision;
    let t = workload.seq_len as f64;
    let batch = workload.batch as u64;
    let dirs = shape.directions as u64;
    let blocks = GATES * dirs;
    let cells = ceil_div(shape.hidden_size as u64, ctx.split);
    let hidden = shape.hidden_size as u64;
    let input = shape.input_size as u64;
    let tail = ceil_div(batch * dirs * cells, u64::from(arch.compute.tail_lanes)) as f64
        + f64::from(arch.compute.tail_latency_cycles);

    let widest = p.widest();
    let act_bytes = f64::from(widest.activation_bits) / 8.0 * p.dpred_activation_ratio;
    let exchange_bytes = if ctx.split > 1 {
        (batch * dirs * cells) as f64 * act_bytes
    } else {
        0.0
    };
    let exchange = if ctx.split > 1 {
        // Each core receives the other cores' slices of h_t before the next U h product.
        f64::from(arch.multicore.link_latency_cycles)
            + exchange_bytes * (ctx.split - 1) as f64 / arch.link_bytes_per_cycle()
    } else {
        0.0
    };

    // Weights are stored at the widest level, shrunk by DPRed; the recurrent matrix is kept
    // on chip first because it is read every step.
    let weight_bytes = f64::from(widest.weight_bits) / 8.0 * p.dpred_weight_ratio;
    let u_bytes = (blocks * cells * hidden) as f64 * weight_bytes;
    let w_bytes = (blocks * cells * input) as f64 * weight_bytes;
    let sram = arch.memory.sram_weight_kib * 1024.0;
    let u_resident = u_bytes.min(sram);
    let w_resident = w_bytes.min(sram - u_resident);
    let per_step = ctx.input_product == InputProduct::PerStep;
    let streamed_per_step =
        (u_bytes - u_resident) + if per_step { w_bytes - w_resident } else { 0.0 };
    // Step 0 (or the batched input product) needs every weight of the layer, whatever fits:
    // they are fetched before it, the resident part kept; steps 1.. stream the rest again,
    // double-buffered behind the step before.
    let load_bytes = u_bytes + w_bytes;
    let mut dram_bytes = load_bytes + (t - 1.0) * streamed_per_step;
    let seq_bytes = t * (batch * dirs * cells) as f64 * act_bytes;
    if ctx.first_layer {
        dram_bytes += t * (batch * input) as f64 * act_bytes / ctx.split as f64;
    }
    if ctx.last_layer {
        dram_bytes += seq_bytes;
    } else if ctx.keeps_output && seq_bytes > arch.memory.sram_activation_kib * 1024.0 {
        // The output sequence spills: written now, read back by the next layer.
        dram_bytes += 2.0 * seq_bytes;
    }
    let bpc = ctx.dram_bytes_per_cycle;
    let stream = streamed_per_step / bpc;
    let load = load_bytes / bpc;
    let switches = if p.is_dynamic() {
        p.switch_rate * (t - 1.0)
    } else {
        0.0
    };
    let switch_cycles = switches * f64::from(arch.schedule.precision_switch_cycles);

    // Consecutive identical layers (stacks of equal layers) share their sums.
    let key = CacheKey {
        shape: *shape,
        split: ctx.split,
        input_product: ctx.input_product,
        dram_bytes_per_cycle: bpc,
    };
    let sums = match cache {
        Some((k, prev_index, sums))
            if *k == key && p.fractions_for(*prev_index) == p.fractions_for(index) =>
        {
            *sums
        }
        _ => {
            let sh = Shape {
                blocks,
                cells,
                hidden,
                input,
                batch,
                steps: workload.seq_len as u64,
                post: tail + exchange,
                reconfig: f64::from(arch.schedule.reconfig_cycles),
                stream,
                switch_rate: if p.is_dynamic() { p.switch_rate } else { 0.0 },
            };
            let fractions = p.fractions_for(index);
            // The first and last steps' level odds, when measured (else the step fractions).
            let first: &[f64] = if p.is_dynamic() && !p.first_step_fraction.is_empty() {
                &p.first_step_fraction
            } else {
                fractions
            };
            let last: &[f64] = if p.is_dynamic() && !p.last_step_fraction.is_empty() {
                &p.last_step_fraction
            } else {
                fractions
            };
            let r = rates.as_slice();
            let sums = match (per_step, arch.schedule.overlap_tail) {
                (false, _) => level_sums(
                    arch,
                    workload,
                    r,
                    fractions,
                    first,
                    last,
                    &sh,
                    Plan::Batched,
                ),
                (true, false) => level_sums(
                    arch,
                    workload,
                    r,
                    fractions,
                    first,
                    last,
                    &sh,
                    Plan::Sequential,
                ),
                (true, true) => {
                    let over = level_sums(
                        arch,
                        workload,
                        r,
                        fractions,
                        first,
                        last,
                        &sh,
                        Plan::Overlapped,
                    );
                    if p.is_dynamic() {
                        // An early input product must run at the widest level; the schedule
                        // keeps it only when that is faster than waiting for the level.
                        let wait = level_sums(
                            arch,
                            workload,
                            r,
                            fractions,
                            first,
                            last,
                            &sh,
                            Plan::Sequential,
                        );
                        if total(&wait, 0.0, stream, t, 0.0) < total(&over, 0.0, stream, t, 0.0) {
                            wait
                        } else {
                            over
                        }
                    } else {
                        over
                    }
                }
            };
            *cache = Some((key, index, sums));
            sums
        }
    };
    let compute_total = total(&sums, load, stream, t, switch_cycles);
    let first_stream_cycles = paths(&sums, stream, t, switch_cycles).1;
    let edge = compute_total - load - switch_cycles - t * sums.step_cycles;
    let dram_cycles = dram_bytes / bpc;
    // Activation traffic (inputs, outputs, spills) bounds the whole run, not each layer:
    // the caller takes max(sum of layers, all traffic / bandwidth).
    let layer_cycles = compute_total;
    let mut level_step = sums.level_step;
    let mut level_busy = sums.level_busy;
    for (k, f) in p
        .fractions_for(index)
        .iter()
        .enumerate()
        .take(MAX_PRECISION_LEVELS)
    {
        if *f > 0.0 {
            level_step[k] += switch_cycles / t;
            level_busy[k] += switch_cycles / t;
        }
    }
    LayerCost {
        load_cycles: load,
        step_cycles: sums.step_cycles + switch_cycles / t,
        busy_cycles: sums.busy_cycles + switch_cycles / t,
        stream_cycles: stream,
        edge_cycles: edge,
        first_stream_cycles,
        layer_cycles,
        dram_bound_cycles: (load + sums.bound_steps * stream).min(dram_cycles.max(load)),
        ideal_cycles: sums.ideal_cycles,
        dram_bytes,
        exchange_bytes_per_step: exchange_bytes,
        weight_sram_bits: sums.weight_sram_bits,
        activation_sram_bits: sums.activation_sram_bits,
        mac_pj: sums.mac_pj,
        switches,
        activation_bytes_per_value: act_bytes,
        level_step,
        level_busy,
        stream_slack: sums.stream_slack,
        post_cycles: tail + exchange,
    }
}

/// The output head after the last layer, on one core's share (`split` cores divide its
/// outputs): its weights are loaded once (exposed), the dense product is batched over all
/// B*T vectors at the widest level, then softmax/sigmoid runs on the tail lanes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct HeadCost {
    pub cycles: f64,
    /// Loading the head's weights (of `cycles`), after the last layer ends.
    pub load_cycles: f64,
    pub ideal_cycles: f64,
    pub dram_bytes: f64,
    pub weight_sram_bits: f64,
    pub activation_sram_bits: f64,
    pub mac_pj: f64,
    pub activation_elements: f64,
}

pub(crate) fn head_cost(
    arch: &Arch,
    workload: &Workload,
    rates: &LevelRates,
    split: u64,
    bpc: f64,
) -> HeadCost {
    let Some(head) = workload.head else {
        return HeadCost::default();
    };
    let p = &workload.precision;
    let widest = p.widest();
    let rate = &rates.as_slice()[p.widest_index()];
    let outputs = ceil_div(head.output_size as u64, split);
    let vectors = (workload.batch * workload.seq_len) as u64;
    let mv = matvec(arch, rate, 1, outputs, head.input_size as u64, vectors);
    let weight_bytes = (outputs * head.input_size as u64) as f64 * f64::from(widest.weight_bits)
        / 8.0
        * p.dpred_weight_ratio;
    let act_bytes = f64::from(widest.activation_bits) / 8.0 * p.dpred_activation_ratio;
    let elements = (outputs * vectors) as f64;
    let activation = if head.activation {
        ceil_div(outputs * vectors, u64::from(arch.compute.tail_lanes)) as f64
            + f64::from(arch.compute.tail_latency_cycles)
    } else {
        0.0
    };
    HeadCost {
        // The reconfiguration from the last recurrent product overlaps the last tail and the
        // weight load; the caller adds what they leave exposed (`reconfig_exposed`).
        cycles: weight_bytes / bpc + mv.cycles + activation,
        load_cycles: weight_bytes / bpc,
        ideal_cycles: mv.ideal_cycles,
        dram_bytes: weight_bytes + elements * act_bytes,
        weight_sram_bits: mv.weight_sram_bits,
        activation_sram_bits: mv.activation_sram_bits,
        mac_pj: (outputs * head.input_size as u64 * vectors) as f64 * mac_pj(arch, rate),
        activation_elements: if head.activation { elements } else { 0.0 },
    }
}
