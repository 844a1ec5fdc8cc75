//! One LSTM layer on one core: the closed form of the causal schedule of docs/MODEL.md
//! section 3. Operations per step t are the input product In(t) = W x_t, the recurrent product
//! Rec(t) = U h_{t-1} and the element-wise tail Tail(t); Rec(t) needs Tail(t-1), Tail(t) needs
//! In(t) and Rec(t), products run one at a time on the core's unit array, and the precision
//! level of step t is known only when Tail(t-1) ends. Work that starts before the level is known
//! (batched input products, an input product overlapped with the previous tail) runs at the
//! widest level. The event-level simulator (`sim/`) runs the same graph operation by operation;
//! `test_sim.rs` checks this closed form against it.

use super::arch::Arch;
use super::spec::InputProduct;
use super::sums::{level_sums, LevelSums, Plan, Shape};
use super::timing::{ceil_div, LevelRates, GATES, MAX_PRECISION_LEVELS};
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
    /// Per level: the own step without the stream floor (`level_step` is max(this, stream)).
    pub level_compute: [f64; MAX_PRECISION_LEVELS],
    /// The mean time a step's weight stream outlasts the step, sum_k phi_k max(0, str - step_k)
    /// (0 when nothing streams): how late an input may come without delaying the stream-bound
    /// path, which the double buffer absorbs (docs/MODEL.md section 4).
    pub stream_slack: f64,
    /// Per level: max(0, str - step_k), bounded as `stream_slack`: the wait for its stream of
    /// the step after a late step of level k, which is what a late input at that step finds
    /// to absorb (docs/MODEL.md section 4, "The crossing's stream waits").
    pub level_slack: [f64; MAX_PRECISION_LEVELS],
    /// The last step's tail and h exchange: the cycles from the layer's last (recurrent)
    /// product to its end, which the reconfiguration into the next input product may overlap.
    pub post_cycles: f64,
    /// From its input to its h, step 0 at the first step's levels and step T-1 at the last
    /// step's (products, reconfigurations, tail; no stream wait, no switch): where a pipeline's
    /// longest path passes the layer once, before or after the stage it walks (docs/MODEL.md
    /// section 4, "Passing a stage at its edge step"); and the same per level.
    pub first_latency: f64,
    pub last_latency: f64,
    pub level_first: [f64; MAX_PRECISION_LEVELS],
    pub level_last: [f64; MAX_PRECISION_LEVELS],
    /// The plan issues step s+1's input product, and so its weight stream, during step s.
    pub overlapped: bool,
    /// One step's input product, as the plan issues it (part of `busy_cycles`).
    pub input_cycles: f64,
    /// One step's recurrent product with the precision switches at their mean rate (a switch
    /// runs on the units before the first product at the step's level; part of
    /// `busy_cycles`, which is in + this + 2 rho).
    pub recurrent_cycles: f64,
    /// The edge of the compute-bound path alone, pre + end fix (no stream): how far the h of
    /// a layer's step 0 is from its own step, whatever its weight streams
    /// (docs/MODEL.md section 4, "A shared core's negative edges").
    pub compute_edge_cycles: f64,
}

/// What makes two layers' per-step costs identical.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CacheKey {
    shape: LayerShape,
    split: u64,
    input_product: InputProduct,
    dram_bytes_per_cycle: f64,
}

/// Cycles of a layer from its sums, before the DRAM bound. Compute-bound (streams hide
/// behind the step before): load + pre + step 0 + (T-1) * steady compute step + end fix.
/// Stream-bound (step s >= 1 starts when its stream arrives, one stream time apart; stream 2
/// may start when step 0's products are done, the double buffer): load + max(first gate,
/// stream) + (T-2) * steady step + last. The larger of the two, plus the precision switches
/// (on the stream-bound path only those its steps cannot hide in their wait for a stream).
fn total(s: &LevelSums, load: f64, stream: f64, t: f64, switch_cycles: f64) -> f64 {
    load + paths(s, stream, t, switch_cycles).longest + switch_cycles
}

/// A layer's paths after its load ([`paths`]).
struct Paths {
    /// The longest path.
    longest: f64,
    /// How much of it is the wait for the first stream (it starts at the end of the load; in
    /// multithreading, other work may separate the load from the layer's first product, and
    /// the first stream arrives during it).
    first_stream: f64,
    /// How much longer the stream-bound path is than the compute-bound one (0 when it is not):
    /// a late input delays the compute-bound path, so a double buffer hides at most this.
    stream_margin: f64,
}

/// The paths of a layer after its load. `switch_cycles` (added by the caller) are all on the
/// compute-bound path; the stream-bound path is credited the share its steps hide.
fn paths(s: &LevelSums, stream: f64, t: f64, switch_cycles: f64) -> Paths {
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
        Paths {
            longest: with_first,
            first_stream: with_first - without,
            stream_margin: with_first - compute,
        }
    } else {
        Paths {
            longest: compute,
            first_stream: 0.0,
            stream_margin: 0.0,
        }
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
            let plan = |plan| level_sums(arch, workload, r, fractions, first, last, &sh, plan);
            let sums = match (per_step, arch.schedule.overlap_tail) {
                (false, _) => plan(Plan::Batched),
                (true, false) => plan(Plan::Sequential),
                (true, true) => {
                    let over = plan(Plan::Overlapped);
                    if p.is_dynamic() {
                        // An early input product must run at the widest level; the schedule
                        // keeps it only when that is faster than waiting for the level.
                        let wait = plan(Plan::Sequential);
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
    let path = paths(&sums, stream, t, switch_cycles);
    let compute_total = load + path.longest + switch_cycles;
    let first_stream_cycles = path.first_stream;
    let edge = compute_total - load - switch_cycles - t * sums.step_cycles;
    let dram_cycles = dram_bytes / bpc;
    // Activation traffic (inputs, outputs, spills) bounds the whole run, not each layer:
    // the caller takes max(sum of layers, all traffic / bandwidth).
    let layer_cycles = compute_total;
    let mut level_step = sums.level_step;
    let mut level_busy = sums.level_busy;
    let mut level_compute = sums.level_compute;
    let mut level_slack = [0.0; MAX_PRECISION_LEVELS];
    if stream > 0.0 {
        for (slack, step) in level_slack.iter_mut().zip(&sums.level_compute) {
            *slack = (stream - step).max(0.0).min(path.stream_margin);
        }
    }
    for (k, f) in p
        .fractions_for(index)
        .iter()
        .enumerate()
        .take(MAX_PRECISION_LEVELS)
    {
        if *f > 0.0 {
            level_step[k] += switch_cycles / t;
            level_busy[k] += switch_cycles / t;
            level_compute[k] += switch_cycles / t;
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
        level_compute,
        stream_slack: sums.stream_slack.min(path.stream_margin),
        level_slack,
        post_cycles: tail + exchange,
        first_latency: sums.first_gate + tail + exchange,
        last_latency: sums.last,
        level_first: sums.level_first,
        level_last: sums.level_last,
        overlapped: sums.overlapped,
        input_cycles: sums.input_cycles,
        recurrent_cycles: sums.rec_cycles + switch_cycles / t,
        compute_edge_cycles: sums.pre_cycles + sums.end_fix,
    }
}
