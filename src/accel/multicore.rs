//! How N cores with a shared DRAM interface split a workload (Peng et al., MCSoC 2019):
//! multiprogramming (a copy per core), multithreading (consecutive layers on consecutive
//! cores, a wavefront over (layer, step) where the dependencies allow one), and helper (cores
//! split every layer's cells and exchange h over a link each step). One core is the degenerate
//! case of all three. The result is a `Timeline`: total cycles plus the traffic, busy counts
//! and event counts energy needs.

use super::arch::Arch;
use super::crossing::{slow_rounds, stage_crossing, StageLevels, Walks};
use super::head::head_cost;
use super::layer::{layer_cost, LayerContext};
use super::shared::{self, CoreLayer};
use super::spec::{InputProduct, MulticoreMode};
use super::timeline::Timeline;
use super::timing::{LevelRates, MAX_PRECISION_LEVELS};
use super::workload::{LayerShape, Workload};

/// Whether layer `next` can start before layer `prev` has finished: only between two
/// unidirectional layers (h_t of the layer below is final after its step t). A bidirectional
/// layer's step 0 needs the backward state of the layer below at step 0, which it produces
/// last, and its own backward half starts at step T-1: both wait for the whole layer below.
pub(crate) fn pipelines(prev: &LayerShape, next: &LayerShape) -> bool {
    prev.directions == 1 && next.directions == 1
}

/// Runs the workload on all cores under the arch's multicore mode.
pub(crate) fn run(arch: &Arch, workload: &Workload, rates: &LevelRates) -> Timeline {
    let cores = u64::from(arch.multicore.cores);
    let layers = workload.layers.len();
    let last = layers - 1;
    let chip_bpc = arch.dram_bytes_per_cycle();
    let t = workload.seq_len as f64;
    let mode = if cores == 1 {
        MulticoreMode::Multiprogramming
    } else {
        arch.multicore.mode
    };
    let mut tl = Timeline::default();
    let mut cache = None;

    match mode {
        MulticoreMode::Multiprogramming | MulticoreMode::Helper => {
            let helper = mode == MulticoreMode::Helper;
            let copies = if helper { 1.0 } else { cores as f64 };
            let bpc = chip_bpc / cores as f64;
            let rho = f64::from(arch.schedule.reconfig_cycles);
            // The previous layer's last tail and exchange: what the reconfiguration from its
            // last recurrent product into the next input product overlaps, with the next load.
            let mut prev_post: Option<f64> = None;
            for (i, shape) in workload.layers.iter().enumerate() {
                let ctx = LayerContext {
                    split: if helper { cores } else { 1 },
                    input_product: arch.schedule.input_product,
                    dram_bytes_per_cycle: bpc,
                    keeps_output: true,
                    first_layer: i == 0,
                    last_layer: i == last,
                };
                let cost = layer_cost(arch, workload, rates, i, shape, &ctx, &mut cache);
                tl.cycles += cost.layer_cycles + reconfig_exposed(rho, prev_post, cost.load_cycles);
                prev_post = Some(cost.post_cycles);
                tl.dram_bound_cycles += cost.dram_bound_cycles;
                tl.add_layer(&cost, cores as f64);
                if helper {
                    // Every core receives every other core's slice of h each step.
                    tl.link_bytes +=
                        t * cost.exchange_bytes_per_step * (cores * (cores - 1)) as f64;
                }
            }
            let head = head_cost(arch, workload, rates, if helper { cores } else { 1 }, bpc);
            if workload.head.is_some() {
                tl.cycles += head.cycles + reconfig_exposed(rho, prev_post, head.load_cycles);
            }
            tl.add_head(&head, cores as f64);
            // All of a core's traffic (the head's outputs included) within the run.
            let traffic = tl.dram_bytes / cores as f64 / bpc;
            if traffic > tl.cycles {
                tl.cycles = traffic;
                tl.dram_bound_cycles = traffic;
            }
            tl.copies = copies;
            tl.active_cores = cores as f64;
        }
        MulticoreMode::Multithreading => multithreading(arch, workload, rates, &mut tl),
    }
    tl
}

/// On one core's schedule, the part of the reconfiguration rho from a layer's last recurrent
/// product into the next input product (the next layer's first, or the head's) that neither
/// the layer's last tail and exchange (`post`) nor the next weight load hides:
/// max(0, rho - post - load). The first layer starts on an idle array (nothing to reconfigure).
/// docs/MODEL.md section 3, "Layer boundaries".
fn reconfig_exposed(rho: f64, post: Option<f64>, load: f64) -> f64 {
    post.map_or(0.0, |post| (rho - post - load).max(0.0))
}

/// Multithreading: S = min(N, L) stages of consecutive layers (layer l on stage l*S/L), input
/// products per step. Layers form segments separated by the boundaries that cannot pipeline
/// (`pipelines`); within a segment the stages run a wavefront over steps, segments run one
/// after another. Per segment (docs/MODEL.md section 4):
/// start (each stage's weight load, begun when its core finished the previous segment, less
/// the fill ahead of it) + sum of the layers' first steps and edges + hops
/// + (T-1) * max(slowest stage step, slowest hop).
fn multithreading(arch: &Arch, workload: &Workload, rates: &LevelRates, tl: &mut Timeline) {
    let layers = workload.layers.len();
    let last = layers - 1;
    let stages = u64::from(arch.multicore.cores).min(layers as u64) as usize;
    let stage_of = |l: usize| l * stages / layers;
    let chip_bpc = arch.dram_bytes_per_cycle();
    let bpc = chip_bpc / stages as f64;
    let link_bpc = arch.link_bytes_per_cycle();
    let link_latency = f64::from(arch.multicore.link_latency_cycles);
    let t = workload.seq_len as f64;
    let mut cache = None;
    let mut chip_dram_bytes = 0.0;
    let mut seg_start = 0;
    // Per stage in the current segment: the slowest of its layers' own steps, and what its
    // layers share per round of the wavefront (each layer one step): the unit array and the
    // core's DRAM share.
    let mut stage_step = vec![0.0f64; stages];
    let mut stage_busy = vec![0.0f64; stages];
    let mut stage_stream = vec![0.0f64; stages];
    // The own step of the stage's last layer so far, and how many layers it holds.
    let mut stage_last_step = vec![0.0f64; stages];
    let mut stage_last_busy = vec![0.0f64; stages];
    let mut stage_layers = vec![0usize; stages];
    let mut stage_load = vec![0.0f64; stages];
    let mut stage_offset = vec![f64::INFINITY; stages];
    // DRAM-bound cycles of each stage's layers in the current segment: the stages run at
    // the same time, so a segment is DRAM-bound for as long as its most DRAM-bound stage
    // (adding them up would count concurrent cycles several times over).
    let mut stage_bound = vec![0.0f64; stages];
    // The first-stream credit taken by each stage's (lone) layer in the current segment: it
    // holds only if that layer's own stream chain paces the segment (see below).
    let mut stage_credit = vec![0.0f64; stages];
    // The negative edges of the layers of a core that shares its units (taken at the end).
    let mut stage_edge_credit = vec![0.0f64; stages];
    // Per stage and precision level (dynamic precision): the slowest own step of its layers,
    // the sum of their busy cycles and the sum of their own steps (a column of the pipeline).
    const NO_LEVELS: [f64; MAX_PRECISION_LEVELS] = [0.0; MAX_PRECISION_LEVELS];
    let mut stage_level_step = vec![NO_LEVELS; stages];
    let mut stage_level_busy = vec![NO_LEVELS; stages];
    let mut stage_level_compute = vec![NO_LEVELS; stages];
    let mut stage_level_first = vec![NO_LEVELS; stages];
    let mut stage_level_last = vec![NO_LEVELS; stages];
    let mut stage_slack = vec![[f64::INFINITY; MAX_PRECISION_LEVELS]; stages];
    // Per stage, its layers' busy cycles per level, in the segment's order.
    let mut stage_layer_busy: Vec<Vec<[f64; MAX_PRECISION_LEVELS]>> = vec![Vec::new(); stages];
    // Per stage, the reconfigurations its jobs' alternating plans save per round.
    let mut stage_carried = vec![0.0f64; stages];
    let rho = f64::from(arch.schedule.reconfig_cycles);
    let dynamic = workload.precision.is_dynamic();
    let level_count = workload
        .precision
        .step_fraction
        .len()
        .min(MAX_PRECISION_LEVELS);
    let (mut fill, mut max_hop) = (0.0f64, 0.0f64);
    // When each core finished its previous segment's work: it may load its next layers'
    // weights from then on, while other cores still compute.
    let mut core_free = vec![0.0f64; stages];
    // The end of the current segment's fill so far (absolute cycles): the previous segment's
    // end (plus the hop of its last h), each layer's first product no earlier than its own
    // weights (a core loads its layers one after another, its DRAM share is one server, from
    // when it finished the previous segment; the layers loaded before it already compute).
    let mut chain = 0.0f64;
    // The same chain with each layer's load queued behind the streams its core issued before
    // it (FIFO in wavefront order), and the slowest compute-bound own step per stage.
    let mut chain_q = 0.0f64;
    // Per stage p, the chain of the path that walks p's rounds: the jobs ahead of a layer's
    // first on a core up to p wait for their inputs from the core before (which it reaches
    // at that core's pace); after p the path passes the cores at their own pace (`chain`).
    let mut chain_at = vec![0.0f64; stages];
    let mut queued = false;
    let mut stage_compute_step = vec![0.0f64; stages];
    let mut now = 0.0f64;
    // The last layer's last tail: the head's product follows it on the last core, whose units
    // reconfigure from the last recurrent product meanwhile (as on one core).
    let mut last_post = 0.0f64;
    // The current segment's layers: (stage, the own cycles of its last step, the hop after it,
    // its stream per step, 0 when nothing streams).
    let mut seg_layers: Vec<(usize, f64, f64, f64)> = Vec::with_capacity(layers);
    // Per stage, its first layer in the segment: when its input can first start a product,
    // its step 0's products (the busy cycles of a step), its load and one stream.
    let mut stage_first = vec![(0.0f64, 0.0f64, 0.0f64, 0.0f64); stages];
    // Per stage, its layers in the segment so far: (index, stream per step, overlapped plan).
    let mut stage_streamers: Vec<Vec<(usize, f64, bool)>> = vec![Vec::new(); stages];
    // Per stage, what its units run of each of its layers in the segment so far (the jobs
    // that are not steady ones: ahead of a layer's first job, a layer's last).
    let mut stage_core_layers: Vec<Vec<CoreLayer>> = vec![Vec::new(); stages];
    // Per stage whose first layer's input comes from another core in the segment: each
    // walked stage's chain at that input's step 0 and the rounds of the core before it.
    let mut stage_arrival: Vec<Option<(Vec<f64>, shared::Rounds)>> = vec![None; stages];
    // Per such stage, the chains of the paths that cross into it r steps later: its first
    // layer's step r starts at its input's arrival, and the core's wavefront from there.
    let mut stage_cross: Vec<Vec<(usize, f64)>> = vec![Vec::new(); stages];
    // Dynamic precision: per stage, the chain of the path that walks it for all T steps.
    let mut walks = Walks::new(stages);
    for (i, shape) in workload.layers.iter().enumerate() {
        let ctx = LayerContext {
            split: 1,
            input_product: InputProduct::PerStep,
            dram_bytes_per_cycle: bpc,
            keeps_output: false,
            first_layer: i == 0,
            last_layer: i == last,
        };
        let cost = layer_cost(arch, workload, rates, i, shape, &ctx, &mut cache);
        last_post = cost.post_cycles;
        let j = stage_of(i);
        // The first layer of a core after another in the segment: its inputs come at the
        // pace of the core before (the h of that core's last layer, step by step, past the
        // chain's point here, which is its step 0's h and the hop). The jobs ahead of the
        // core's later layers wait for them (docs/MODEL.md section 4, "Two shared cores in a
        // row").
        if stage_layers[j] == 0 && i > seg_start {
            let p = stage_of(i - 1);
            let core = &stage_core_layers[p];
            let busy = stage_busy[p] + shared::steady_wait(core, rho) - shared::carried(core, rho);
            let pace = max_hop.max(stage_step[p]).max(stage_stream[p]);
            let rounds =
                shared::Rounds::of(core, busy, stage_last_step[p], pace, rho, workload.seq_len);
            // The crossings that may be the longest: near the end, where the rounds of either
            // core change (its last rounds, and the steps the jobs ahead wait for). Resident
            // weights only: a core's streams have their own path (its DRAM share's FIFO).
            let width = stage_layers[p] + 2 * stages + 2;
            let last = workload.seq_len - 1;
            if stage_stream[p] <= 0.0 {
                stage_cross[j] = (last.saturating_sub(width).max(1)..=last)
                    .map(|r| (r, chain_at[j] + rounds.until(r)))
                    .collect();
            }
            stage_arrival[j] = Some((chain_at.clone(), rounds));
        }
        stage_offset[j] = stage_offset[j].min(fill);
        stage_step[j] = stage_step[j].max(cost.step_cycles);
        stage_last_step[j] = cost.step_cycles;
        stage_layers[j] += 1;
        // Only a layer alone on its core in the segment: the loads and streams of co-resident
        // layers are interleaved on the core's DRAM share in wavefront order.
        let shares_core = stage_layers[j] > 1
            || (i != last && stage_of(i + 1) == j && pipelines(shape, &workload.layers[i + 1]));
        stage_stream[j] += cost.stream_cycles;
        stage_load[j] += cost.load_cycles;
        // The layer's first product waits for its own weights only: a core loads its layers
        // one after another (its DRAM share is one server), each as soon as the core finished
        // the previous segment, while the layers loaded before compute.
        // The core's DRAM share is a FIFO in program order (wavefront order): the streams its
        // earlier layers issued before this layer's first job (layer k's steps 1..=i-k, and
        // step i-k+1 when its plan issues the next step's input product early) come before
        // this layer's load. That queue is a second path (`chain_q`, compute-paced rounds
        // after it; docs/MODEL.md section 4, "A later layer's load behind its core's
        // streams"): the streams it holds are on the core's stream path already.
        let issued: f64 = stage_streamers[j]
            .iter()
            .map(|&(k, str_k, overlapped)| {
                let n = ((i - k) + usize::from(overlapped)).min(workload.seq_len - 1);
                n as f64 * str_k
            })
            .sum();
        stage_streamers[j].push((i, cost.stream_cycles, cost.overlapped));
        let load_end = core_free[j] + stage_load[j];
        queued |= issued > 0.0;
        let compute_step: f64 = (workload.precision.fractions_for(i).iter())
            .zip(&cost.level_compute)
            .map(|(f, c)| f * c)
            .sum();
        stage_compute_step[j] = stage_compute_step[j].max(compute_step);
        // A core issues its products in wavefront order: this layer's first step comes after
        // one step of each layer before it on the core (the round it joins, where the layer
        // has that step), not right after the step it waits for. Those steps are ready once
        // the step it waits for is done, and run while its weights still load: they delay it
        // only past the end of its load. Each as it is: a layer's last step has no next input
        // product, and this layer's step 0 starts with its input product whatever its plan
        // (docs/MODEL.md section 4, "A shared core's last jobs").
        let none = |_: usize| f64::NEG_INFINITY;
        let ahead = shared::ahead(&stage_core_layers[j], rho, workload.seq_len, &none);
        if t >= 2.0 {
            fill += ahead;
            chain += ahead;
            chain_q += ahead;
            for (p, at) in chain_at.iter_mut().enumerate() {
                *at += match &stage_arrival[j] {
                    Some((bases, rounds)) if p >= j => {
                        let arrival = |s: usize| bases[p] + rounds.until(s) - *at;
                        shared::ahead(&stage_core_layers[j], rho, workload.seq_len, &arrival)
                    }
                    _ => ahead,
                };
            }
            // On the crossed core, a later layer's job at step r >= 1 starts with its recurrent
            // product when overlapped (its input product ran in its job before).
            let later = cost.overlapped && stage_layers[j] >= 2;
            for k in 0..stages {
                for (r, x) in &mut stage_cross[k] {
                    *x += match &stage_arrival[j] {
                        Some((bases, rounds)) if k == j => {
                            let arrival = |s: usize| bases[k] + rounds.until(s + *r) - *x;
                            let steps = workload.seq_len - *r;
                            let core = &stage_core_layers[j];
                            shared::ahead_later(core, rho, steps, &arrival, later)
                                - if later { cost.input_cycles + rho } else { 0.0 }
                        }
                        _ => ahead,
                    };
                }
            }
        }
        if stage_layers[j] == 1 {
            stage_first[j] = (
                chain,
                cost.busy_cycles,
                cost.load_cycles,
                cost.stream_cycles,
            );
        }
        chain = chain.max(load_end);
        chain_at.iter_mut().for_each(|at| *at = at.max(load_end));
        (stage_cross.iter_mut().flatten()).for_each(|(_, x)| *x = x.max(load_end));
        chain_q = chain_q.max(load_end + issued);
        stage_busy[j] += cost.busy_cycles;
        stage_last_busy[j] = cost.busy_cycles;
        for (slack, level) in stage_slack[j].iter_mut().zip(&cost.level_slack) {
            *slack = slack.min(*level);
        }
        if dynamic {
            stage_layer_busy[j].push(cost.level_busy);
            for k in 0..level_count {
                stage_level_step[j][k] = stage_level_step[j][k].max(cost.level_step[k]);
                stage_level_busy[j][k] += cost.level_busy[k];
                stage_level_compute[j][k] = stage_level_compute[j][k].max(cost.level_compute[k]);
                stage_level_first[j][k] += cost.level_first[k];
                stage_level_last[j][k] += cost.level_last[k];
            }
        }
        // The edge is the layer's total less T own steps: negative where its own steps, paced
        // by its stream, overstate a compute-bound total. A core that shares its units between
        // layers runs its rounds at the sum of their busy cycles or streams, not at that pace:
        // the credit is taken at the segment's end, as far as the core's streams set its
        // rounds (else a shorter stream, shortening the own step more than the total, would
        // lengthen the fill: docs/MODEL.md section 4).
        // With one step there are no rounds: the layer takes its total.
        // The compute-bound path's own negative edge (a tail shorter than a reconfiguration)
        // is no stream's: the h of step 0 does come that early, and is kept.
        let edge = if shares_core && t >= 2.0 {
            let kept = cost.edge_cycles.max(cost.compute_edge_cycles.min(0.0));
            stage_edge_credit[j] += cost.edge_cycles - kept;
            kept
        } else {
            cost.edge_cycles
        };
        fill += edge + cost.step_cycles;
        stage_core_layers[j].push(CoreLayer {
            input_cycles: cost.input_cycles,
            recurrent_cycles: cost.recurrent_cycles,
            busy_cycles: cost.busy_cycles,
            post_cycles: cost.post_cycles,
            clamp_cycles: edge - cost.edge_cycles,
            overlapped: cost.overlapped,
        });
        // The first weight stream follows the load on the DRAM server: the time between the
        // end of the load and the layer's first product hides it.
        let prefetched = if shares_core {
            0.0
        } else {
            cost.first_stream_cycles.min(chain - load_end)
        };
        stage_credit[j] += prefetched;
        chain += edge - prefetched + cost.step_cycles;
        chain_at
            .iter_mut()
            .chain(stage_cross.iter_mut().flatten().map(|(_, x)| x))
            .for_each(|at| *at += edge - prefetched + cost.step_cycles);
        let prefetched_q = if shares_core {
            0.0
        } else {
            cost.first_stream_cycles.min(chain_q - load_end)
        };
        chain_q += edge - prefetched_q + cost.step_cycles;
        stage_bound[j] += cost.dram_bound_cycles;
        chip_dram_bytes += cost.dram_bytes;
        tl.add_layer(&cost, 1.0);
        let hop_bytes = (workload.batch * shape.hidden_size * shape.directions) as f64
            * cost.activation_bytes_per_value;
        let hop = hop_bytes / link_bpc;
        let crosses = i != last && stage_of(i + 1) != j;
        if crosses {
            tl.link_bytes += t * hop_bytes;
        }
        let ends_segment = i == last || !pipelines(shape, &workload.layers[i + 1]);
        // The layer's last step, at the last step's levels when they are known.
        let own_last = if dynamic && !workload.precision.last_step_fraction.is_empty() {
            (workload.precision.last_step_fraction.iter())
                .zip(cost.level_step.iter().zip(&cost.level_busy))
                .map(|(f, (step, busy))| f * step.min(busy + cost.post_cycles))
                .sum()
        } else {
            cost.step_cycles.min(cost.busy_cycles + cost.post_cycles)
        };
        let passes = if crosses && !ends_segment {
            link_latency + hop
        } else {
            0.0
        };
        if dynamic {
            let own = (edge + cost.step_cycles, !shares_core);
            let ahead = if t >= 2.0 { ahead } else { 0.0 };
            walks.pass(
                j,
                stage_layers[j] == 1,
                (ahead, load_end),
                &cost,
                own,
                passes,
            );
        }
        if crosses && !ends_segment {
            max_hop = max_hop.max(hop);
            fill += link_latency + hop;
            chain += link_latency + hop;
            chain_q += link_latency + hop;
            chain_at
                .iter_mut()
                .chain(stage_cross.iter_mut().flatten().map(|(_, x)| x))
                .for_each(|at| *at += link_latency + hop);
            seg_layers.push((j, own_last, link_latency + hop, cost.stream_cycles));
        } else {
            seg_layers.push((j, own_last, 0.0, cost.stream_cycles));
        }
        if ends_segment {
            // A shared core's round, job by job: the reconfigurations its alternating plans
            // save, and its wait for an h made in it (docs/MODEL.md section 4, "A shared
            // core's reconfigurations" and "A shared core's last jobs").
            for j in (0..stages).filter(|&j| stage_layers[j] >= 2) {
                let core = &stage_core_layers[j];
                let (carried, wait) = (shared::carried(core, rho), shared::steady_wait(core, rho));
                stage_busy[j] += wait - carried;
                stage_carried[j] = carried;
                for busy in &mut stage_level_busy[j][..level_count] {
                    *busy += wait - carried;
                }
            }
            let period = |j: usize| stage_step[j].max(stage_busy[j]).max(stage_stream[j]);
            let slowest = (0..stages).map(period).fold(max_hop, f64::max);
            // The steady rounds less the drain: in the last round of a core that shares its
            // units between layers, its last layer runs alone (the layers before it have
            // finished), at its own step, and the pipeline then runs at the pace of the stages
            // after it. That holds for the rounds set by the units or by a layer's own step; the
            // core's streams run ahead of its steps (double buffer), so rounds set by them end
            // with the last stream and have no drain. The longest of these paths over every
            // stage and resource: each is monotone in the resources, so their maximum is.
            // The least the last round of stage j takes: its last layer's own step, the
            // stages after it.
            // A later core that shares its units: its last round (its last layer alone, job
            // by job) rather than its full period (docs/MODEL.md section 4, "Two shared cores
            // in a row").
            let mut floors = vec![0.0f64; stages];
            let mut after = max_hop;
            for k in (0..stages).rev() {
                floors[k] = stage_last_step[k].max(after);
                let own = if stage_layers[k] >= 2 && t >= 2.0 {
                    let core = &stage_core_layers[k];
                    let last =
                        shared::last_rounds(core, stage_busy[k], floors[k], rho, workload.seq_len);
                    last.last().copied().unwrap_or(0.0).max(stage_stream[k])
                } else {
                    period(k)
                };
                after = after.max(own);
            }
            let floor = |j: usize| floors[j];
            // T-1 rounds of stage j at `pace`, less its drain.
            let steady = |j: usize, pace: f64| {
                let mut drain = 0.0;
                if t >= 2.0 && stage_layers[j] >= 2 {
                    drain = (pace - floor(j))
                        .max(0.0)
                        .min(stage_busy[j] - stage_last_busy[j]);
                }
                (t - 1.0) * pace - drain
            };
            // The rounds at the units' pace, job by job where they are not steady: a layer's
            // last job and the rounds after it (docs/MODEL.md section 4, "A shared core's last
            // jobs").
            let steady_units = |j: usize| {
                if t >= 2.0 && stage_layers[j] >= 2 {
                    let core = &stage_core_layers[j];
                    shared::units_rounds(core, stage_busy[j], floor(j), rho, workload.seq_len)
                } else {
                    steady(j, stage_busy[j])
                }
            };
            let stage_rounds = |j: usize| {
                let stream = (t - 1.0) * stage_stream[j];
                let stream = if stage_layers[j] >= 2 { 0.0 } else { stream };
                stream.max(steady(j, stage_step[j])).max(steady_units(j))
            };
            // The credit is the layer's first stream, fetched while it waited: its stream chain
            // then runs from its first product, fg + (T-2) str + last instead of e + (T-1)
            // str. When a slower stage paces the segment, the layer's streams are fetched
            // ahead anyway and the path through it is its first step + (T-1) P, which the
            // credit would shorten by a stream it never waited for.
            let unpaced: f64 = (0..stages)
                .filter(|&j| period(j) < slowest)
                .map(|j| stage_credit[j])
                .sum();
            // Dynamic precision: the longest path walks one stage for all T steps and passes
            // the others once, those before it at step 0 and those after it at step T-1, each
            // at that step's levels, and it crosses into and out of the walked stage at the
            // steps that suit it (slow ones). Every stage may be the one walked: the longest
            // of these paths (at fixed precision, the rounds of the slowest stage).
            let levels = StageLevels {
                step: &stage_level_step,
                busy: &stage_level_busy,
                first: &stage_level_first,
                last: &stage_level_last,
                compute: &stage_level_compute,
                stream: &stage_stream,
                slack: &stage_slack,
                layers: &stage_layer_busy,
            };
            let span = (stage_of(seg_start), j);
            // Each stage's rounds after the chain of the path that walks it.
            let mut walked = (0..stages)
                .map(|j| chain_at[j] + stage_rounds(j))
                .fold(chain + (t - 1.0) * max_hop, f64::max);
            // The paths that walk the core before a shared one for r more steps and cross
            // into it there: the core's rounds after its step r, at its units' pace.
            for k in (0..stages).filter(|&k| stage_layers[k] >= 2 && stage_stream[k] <= 0.0) {
                let core = &stage_core_layers[k];
                let rounds =
                    shared::Rounds::of(core, stage_busy[k], floors[k], 0.0, rho, workload.seq_len);
                for &(r, x) in &stage_cross[k] {
                    walked = walked.max(x + rounds.after(r));
                }
            }
            // A shared core's negative edges, on a pacing core and as far as its streams or
            // its layers' own (stream-paced) steps, not its units, set its rounds; with dynamic
            // precision, on the stage the path walks.
            let edge_credit = |j: usize| {
                let over = stage_stream[j].max(stage_step[j]) - stage_busy[j];
                stage_edge_credit[j].max(-(t - 1.0) * over.max(0.0))
            };
            let edges = (0..stages)
                .filter(|&j| period(j) >= slowest)
                .map(edge_credit)
                .fold(0.0f64, f64::min);
            let mut end = walked + unpaced + edges;

            // The path through a load queued behind its core's earlier streams: from there the
            // rounds at the units' or the layers' compute-bound pace (the streams' own path,
            // loads and streams back to back, is the shared core's stream path below).
            let compute_rounds = |j: usize| steady(j, stage_compute_step[j]).max(steady_units(j));
            let queued_end = if queued {
                chain_q
                    + unpaced
                    + (0..stages)
                        .map(compute_rounds)
                        .fold((t - 1.0) * max_hop, f64::max)
            } else {
                0.0
            };
            if dynamic && t >= 2.0 {
                end = chain + unpaced + (t - 1.0) * max_hop + edges;
                for p in (0..stages).filter(|&p| stage_layers[p] > 0) {
                    let (mut up, mut down) = (0.0, 0.0);
                    if period(p) > max_hop {
                        (up, down) = stage_crossing(
                            &levels,
                            walks.waits(p),
                            p,
                            period(p),
                            span,
                            &workload.precision,
                            t,
                        );
                    }
                    let path = walks.path(p, up, period(p) < slowest) + down + stage_rounds(p);
                    end = end.max(path + edge_credit(p));
                }
            }
            end = end.max(queued_end);
            // A core whose layers share its DRAM share: its loads and then the streams of all
            // its layers' steps 1.. run back to back on it (each stream double-buffered ahead
            // of its step), then the last step of a layer that streams (after its own last
            // stream), the last steps of the layers after it and the hops between them.
            // (With one step nothing streams: step 0 runs on the loads, which the chain has.)
            let streamed = |j: &usize| stage_layers[*j] >= 2 && stage_stream[*j] > 0.0;
            for j in (0..stages).filter(streamed).filter(|_| t >= 2.0) {
                // Stream 2 of the core's first layer waits for its step 0's products,
                // which wait for its input: the rest of the DRAM work follows them.
                let (input, gate, load, stream) = stage_first[j];
                let rest = stage_load[j] - load + (t - 1.0) * stage_stream[j] - stream;
                let mut streams = (core_free[j] + stage_load[j] + (t - 1.0) * stage_stream[j])
                    .max(input.max(core_free[j] + load) + gate + rest);
                // With dynamic precision, the rounds whose units (at the levels of the steps
                // the core's layers work on) outlast its streams delay them by the difference.
                if dynamic {
                    streams += slow_rounds(
                        &stage_layer_busy[j],
                        stage_carried[j],
                        stage_stream[j],
                        &workload.precision,
                        t,
                    );
                }
                // The last round's streams come in wavefront order: each streaming layer's
                // last step follows its own last stream, the last steps after it follow.
                let mut later = 0.0;
                for m in (0..seg_layers.len()).rev() {
                    let (core, _, _, str_m) = seg_layers[m];
                    if core != j || str_m <= 0.0 {
                        continue;
                    }
                    let after: f64 = seg_layers[m..].iter().map(|l| l.1 + l.2).sum();
                    end = end.max(streams - later + after);
                    later += str_m;
                }
            }
            let bound = stage_bound.iter().copied().fold(0.0f64, f64::max);
            tl.dram_bound_cycles += bound.min(end - now);
            now = end;
            for j in (0..stages).filter(|&j| stage_offset[j].is_finite()) {
                core_free[j] = now;
            }
            // The next segment starts when the last h of this one has crossed over.
            let barrier = if crosses { link_latency + hop } else { 0.0 };
            chain = now + barrier;
            chain_q = chain;
            chain_at.iter_mut().for_each(|at| *at = chain);
            queued = false;
            stage_compute_step.iter_mut().for_each(|s| *s = 0.0);
            walks = Walks::starting(stages, chain);
            seg_start = i + 1;
            stage_step.iter_mut().for_each(|s| *s = 0.0);
            stage_busy.iter_mut().for_each(|s| *s = 0.0);
            stage_last_step.iter_mut().for_each(|s| *s = 0.0);
            stage_layers.iter_mut().for_each(|s| *s = 0);
            stage_stream.iter_mut().for_each(|s| *s = 0.0);
            stage_load.iter_mut().for_each(|s| *s = 0.0);
            stage_bound.iter_mut().for_each(|s| *s = 0.0);
            stage_credit.iter_mut().for_each(|s| *s = 0.0);
            stage_edge_credit.iter_mut().for_each(|s| *s = 0.0);
            stage_level_step.iter_mut().for_each(|s| *s = NO_LEVELS);
            stage_level_busy.iter_mut().for_each(|s| *s = NO_LEVELS);
            stage_level_compute.iter_mut().for_each(|s| *s = NO_LEVELS);
            stage_level_first.iter_mut().for_each(|s| *s = NO_LEVELS);
            stage_level_last.iter_mut().for_each(|s| *s = NO_LEVELS);
            stage_slack
                .iter_mut()
                .for_each(|s| *s = [f64::INFINITY; MAX_PRECISION_LEVELS]);
            stage_layer_busy.iter_mut().for_each(Vec::clear);
            stage_carried.iter_mut().for_each(|s| *s = 0.0);
            stage_streamers.iter_mut().for_each(Vec::clear);
            stage_core_layers.iter_mut().for_each(Vec::clear);
            stage_arrival.iter_mut().for_each(|a| *a = None);
            stage_cross.iter_mut().for_each(Vec::clear);
            stage_offset.iter_mut().for_each(|s| *s = f64::INFINITY);
            fill = 0.0;
            // Every step's h crosses to the next segment's first layer over one link, a FIFO:
            // when the hop outlasts a step, the link paces that segment like one inside it.
            max_hop = if crosses { hop } else { 0.0 };
            seg_layers.clear();
        }
    }
    debug_assert_eq!(seg_start, layers);
    tl.cycles = now;
    let head = head_cost(arch, workload, rates, 1, bpc);
    if workload.head.is_some() {
        let rho = f64::from(arch.schedule.reconfig_cycles);
        tl.cycles += head.cycles + reconfig_exposed(rho, Some(last_post), head.load_cycles);
    }
    tl.add_head(&head, 1.0);
    chip_dram_bytes += head.dram_bytes;
    let traffic = chip_dram_bytes / chip_bpc;
    if traffic > tl.cycles {
        tl.cycles = traffic;
        tl.dram_bound_cycles = traffic;
    }
    tl.copies = 1.0;
    tl.active_cores = stages as f64;
}
