//! Multithreading (Peng et al., MCSoC 2019): S = min(N, L) cores, consecutive layers on
//! consecutive cores (layer l on core l*S/L), input products per step, each core's DRAM share
//! 1/S of the chip's. A layer's step t needs only h_t of the layer below, so the cores run a
//! wavefront over (layer, step): in a round every layer does one step, the lower layers ahead.
//! Layers form segments separated by the boundaries that cannot pipeline
//! (`multicore::pipelines`, a bidirectional layer waits for the whole layer below); the
//! segments run one after another. Per segment (docs/MODEL.md section 4):
//!
//! - the fill ([`fill`]): from the segment's begin to the h of the last layer's step 0, one
//!   chain over its layers: the jobs ahead of each on its core, its weights (a core loads its
//!   layers one after another on its DRAM share, from when it finished the previous segment),
//!   its first step and edge, and the hop to the next core;
//! - the steady rounds and the drain ([`drain`]): T-1 more rounds at the pace of the slowest
//!   stage or hop, less what a shared core's last round saves when its last layer runs alone;
//!   the segment ends at the longest of the paths through it (each stage may set it, with
//!   dynamic precision at the steps that suit it, and a core's weight streams have a path of
//!   their own).
//!
//! The head follows the last layer on the last core; a run is at least as long as its chip-wide
//! DRAM traffic takes.

mod drain;
mod fill;
mod levels;

use super::arch::Arch;
use super::crossing::Walks;
use super::head::head_cost;
use super::layer::{layer_cost, LayerContext};
use super::multicore::{pipelines, reconfig_exposed};
use super::shared::{self, CoreLayer};
use super::spec::InputProduct;
use super::timeline::Timeline;
use super::timing::{LevelRates, MAX_PRECISION_LEVELS};
use super::workload::Workload;

/// Per precision level, one figure of a stage (the levels past the workload's stay 0).
type PerLevel = [f64; MAX_PRECISION_LEVELS];
const NO_LEVELS: PerLevel = [0.0; MAX_PRECISION_LEVELS];

/// What every phase of the pipeline reads and none changes.
struct Pipeline<'a> {
    workload: &'a Workload,
    /// S: the cores that hold layers.
    stages: usize,
    /// The units' reconfiguration between product kinds, cycles.
    rho: f64,
    /// T, steps per sequence.
    t: f64,
    dynamic: bool,
    /// The precision levels the workload uses (at most `MAX_PRECISION_LEVELS`).
    level_count: usize,
    /// The latency of an h crossing the link to the next core, cycles.
    link_latency_cycles: f64,
}

impl Pipeline<'_> {
    /// The core (stage) that runs layer `l`.
    fn stage_of(&self, l: usize) -> usize {
        l * self.stages / self.workload.layers.len()
    }

    fn seq_len(&self) -> usize {
        self.workload.seq_len
    }
}

/// One core's part of the current segment: what its layers share per round of the wavefront
/// (the unit array and the core's DRAM share) and what the paths through it need.
#[derive(Debug, Clone)]
struct Stage {
    /// Its layers in the segment so far.
    layers: usize,
    /// The slowest own step of its layers (stream floor included), cycles.
    step_cycles: f64,
    /// The slowest compute-bound own step of its layers (level-weighted, no stream floor).
    compute_step_cycles: f64,
    /// Per round: the sum of its layers' busy cycles on the units (after `settle`, with the
    /// reconfigurations alternating plans save and the wait for an h made in the round).
    busy_cycles: f64,
    /// Per round: the sum of its layers' weight streams on the core's DRAM share.
    stream_cycles: f64,
    /// The own step and busy cycles of its last layer so far.
    last_step_cycles: f64,
    last_busy_cycles: f64,
    /// The sum of its layers' weight loads.
    load_cycles: f64,
    /// The fill of the segment ahead of its first layer (infinite: no layer yet).
    fill_ahead_cycles: f64,
    /// Its layers' DRAM-bound cycles: the stages run at the same time, so a segment is
    /// DRAM-bound for as long as its most DRAM-bound stage.
    dram_bound_cycles: f64,
    /// The first-stream credit its (lone) layer took: it holds only if that layer's own stream
    /// chain paces the segment.
    stream_credit_cycles: f64,
    /// The negative edges of the layers of a core that shares its units (taken at the end).
    edge_credit_cycles: f64,
    /// The reconfigurations its jobs' alternating plans save per round.
    carried_cycles: f64,
    /// Dynamic precision, per level: the slowest own step of its layers, the sum of their busy
    /// cycles, the slowest compute-bound own step, the sums of their step-0 and later-step
    /// latencies (a column of the pipeline), and the least stream slack of its layers.
    level_step: PerLevel,
    level_busy: PerLevel,
    level_compute: PerLevel,
    level_first: PerLevel,
    level_last: PerLevel,
    level_slack: PerLevel,
    /// Dynamic precision: its layers' busy cycles per level, in the segment's order.
    layer_level_busy: Vec<PerLevel>,
    /// Its first layer in the segment.
    first: FirstLayer,
    /// Its layers so far, as its DRAM share's queue sees them.
    streamers: Vec<Streamer>,
    /// What its units run of each of its layers (the jobs that are not steady ones: ahead of
    /// a layer's first job, a layer's last).
    jobs: Vec<CoreLayer>,
    /// When its first layer's input comes from another core in the segment.
    arrival: Option<Arrival>,
    /// The paths that cross into it some steps after its first layer's step 0.
    crossings: Vec<Crossing>,
}

impl Stage {
    fn empty() -> Self {
        Stage {
            layers: 0,
            step_cycles: 0.0,
            compute_step_cycles: 0.0,
            busy_cycles: 0.0,
            stream_cycles: 0.0,
            last_step_cycles: 0.0,
            last_busy_cycles: 0.0,
            load_cycles: 0.0,
            fill_ahead_cycles: f64::INFINITY,
            dram_bound_cycles: 0.0,
            stream_credit_cycles: 0.0,
            edge_credit_cycles: 0.0,
            carried_cycles: 0.0,
            level_step: NO_LEVELS,
            level_busy: NO_LEVELS,
            level_compute: NO_LEVELS,
            level_first: NO_LEVELS,
            level_last: NO_LEVELS,
            level_slack: [f64::INFINITY; MAX_PRECISION_LEVELS],
            layer_level_busy: Vec::new(),
            first: FirstLayer::default(),
            streamers: Vec::new(),
            jobs: Vec::new(),
            arrival: None,
            crossings: Vec::new(),
        }
    }

    /// The stage's period P_j: a round takes its slowest layer's own step, its units' busy
    /// cycles or its DRAM share's streams, whichever is longest.
    fn period(&self) -> f64 {
        self.step_cycles
            .max(self.busy_cycles)
            .max(self.stream_cycles)
    }
}

/// A stage's first layer in the segment.
#[derive(Debug, Clone, Copy, Default)]
struct FirstLayer {
    /// When its input can first start a product (absolute cycles, the chain there).
    input_at: f64,
    /// Its step 0's products: the busy cycles of a step.
    busy_cycles: f64,
    load_cycles: f64,
    /// One weight stream.
    stream_cycles: f64,
}

/// A layer on a core's DRAM share, a FIFO in wavefront order.
#[derive(Debug, Clone, Copy)]
struct Streamer {
    layer: usize,
    stream_cycles: f64,
    /// Its plan issues the next step's input product early (overlapped).
    overlapped: bool,
}

/// The input of a stage's first layer coming from the core before it in the segment: the
/// chain of each walked stage at that input's step 0, and the rounds of the core before.
#[derive(Debug, Clone)]
struct Arrival {
    chains: Vec<f64>,
    rounds: shared::Rounds,
}

/// A path that walks the core before a shared one for `step` more steps and crosses into it
/// there: the stage's first layer's step `step` starts at its input's arrival, and the core's
/// wavefront from there.
#[derive(Debug, Clone, Copy)]
struct Crossing {
    step: usize,
    /// The path's chain, absolute cycles.
    chain_cycles: f64,
}

/// A layer of the current segment, as the stream paths of its core see it.
#[derive(Debug, Clone, Copy)]
struct SegmentLayer {
    stage: usize,
    /// Its last step's own cycles (at the last step's levels when known).
    last_step_cycles: f64,
    /// The hop after it to the next core (latency included), 0 when it stays.
    hop_cycles: f64,
    /// Its weight stream per step, 0 when nothing streams.
    stream_cycles: f64,
}

/// The segment being built: its stages and the chains of the paths through it so far.
struct Segment {
    /// Its first layer.
    start: usize,
    stages: Vec<Stage>,
    /// The fill so far, relative to the segment's begin.
    fill_cycles: f64,
    /// The slowest hop between two of its cores (or into it: every step's h crosses to the
    /// next segment's first layer over one link, a FIFO that paces that segment like a hop
    /// inside it when it outlasts a step).
    max_hop_cycles: f64,
    /// The end of the fill so far (absolute cycles): the previous segment's end (plus the hop
    /// of its last h), each layer's first product no earlier than its own weights (a core
    /// loads its layers one after another, its DRAM share is one server, from when it
    /// finished the previous segment; the layers loaded before it already compute).
    chain: f64,
    /// The same chain with each layer's load queued behind the streams its core issued
    /// before it (FIFO in wavefront order), and whether any load waited so.
    queued_chain: f64,
    queued: bool,
    /// Per stage p, the chain of the path that walks p's rounds: the jobs ahead of a layer's
    /// first on a core up to p wait for their inputs from the core before (which it reaches
    /// at that core's pace); after p the path passes the cores at their own pace (`chain`).
    chain_at: Vec<f64>,
    /// Dynamic precision: per stage, the chain of the path that walks it for all T steps.
    walks: Walks,
    layers: Vec<SegmentLayer>,
}

impl Segment {
    /// A segment from layer `start` on, begun at `begin` (absolute cycles), its input
    /// crossing over a link with `max_hop_cycles` per h (0 when it does not cross).
    fn starting(stages: usize, start: usize, begin: f64, max_hop_cycles: f64) -> Self {
        Segment {
            start,
            stages: vec![Stage::empty(); stages],
            fill_cycles: 0.0,
            max_hop_cycles,
            chain: begin,
            queued_chain: begin,
            queued: false,
            chain_at: vec![begin; stages],
            walks: Walks::starting(stages, begin),
            layers: Vec::new(),
        }
    }

    /// Every chain of a path whose stage is still to come: `chain_at` and the crossings'.
    fn paths_mut(&mut self) -> impl Iterator<Item = &mut f64> {
        self.paths_from_mut(0)
    }

    /// The chains of the paths that walk stage `j` or a later one (`chain_at[j..]` and the
    /// crossings into those stages): they pass a layer of stage j at its step 0. A path that
    /// walks an earlier stage passes it at its last step.
    fn paths_from_mut(&mut self, j: usize) -> impl Iterator<Item = &mut f64> {
        let crossings = self.stages[j..]
            .iter_mut()
            .flat_map(|s| s.crossings.iter_mut());
        (self.chain_at[j..].iter_mut()).chain(crossings.map(|c| &mut c.chain_cycles))
    }
}

/// What the driver knows of a layer beyond its cost when it joins its segment.
struct Joining {
    /// The layer's index in the workload, and its stage.
    layer: usize,
    stage: usize,
    /// When its core finished the previous segment: it may load from then on.
    core_free: f64,
    /// The next layer runs on the same core in the same segment.
    next_shares_core: bool,
    /// Where its h passes to the next core within the segment: the hop, its bytes over the
    /// link's rate (the link's latency comes on top).
    passes_hop_cycles: Option<f64>,
}

/// Runs the workload's layers as a pipeline over the cores, then the head on the last core.
pub(crate) fn run(arch: &Arch, workload: &Workload, rates: &LevelRates, tl: &mut Timeline) {
    let layers = workload.layers.len();
    let last = layers - 1;
    let stages = u64::from(arch.multicore.cores).min(layers as u64) as usize;
    let chip_bpc = arch.dram_bytes_per_cycle();
    let bpc = chip_bpc / stages as f64;
    let link_bpc = arch.link_bytes_per_cycle();
    let pipe = Pipeline {
        workload,
        stages,
        rho: f64::from(arch.schedule.reconfig_cycles),
        t: workload.seq_len as f64,
        dynamic: workload.precision.is_dynamic(),
        level_count: (workload.precision.step_fraction.len()).min(MAX_PRECISION_LEVELS),
        link_latency_cycles: f64::from(arch.multicore.link_latency_cycles),
    };
    let mut cache = None;
    let mut chip_dram_bytes = 0.0;
    // When each core finished its previous segment's work: it may load its next layers'
    // weights from then on, while other cores still compute.
    let mut core_free = vec![0.0f64; stages];
    let mut now = 0.0f64;
    // The last layer's last tail: the head's product follows it on the last core, whose units
    // reconfigure from the last recurrent product meanwhile (as on one core).
    let mut last_post = 0.0f64;
    let mut segment = Segment::starting(stages, 0, 0.0, 0.0);
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
        let j = pipe.stage_of(i);
        let hop_bytes = (workload.batch * shape.hidden_size * shape.directions) as f64
            * cost.activation_bytes_per_value;
        let hop = hop_bytes / link_bpc;
        let crosses = i != last && pipe.stage_of(i + 1) != j;
        let ends_segment = i == last || !pipelines(shape, &workload.layers[i + 1]);
        let joining = Joining {
            layer: i,
            stage: j,
            core_free: core_free[j],
            next_shares_core: i != last
                && pipe.stage_of(i + 1) == j
                && pipelines(shape, &workload.layers[i + 1]),
            passes_hop_cycles: (crosses && !ends_segment).then_some(hop),
        };
        let on_steps = if pipe.dynamic {
            let precision = &workload.precision;
            levels::on_common_levels(&cost, &precision.step_fraction, precision.fractions_for(i))
        } else {
            cost
        };
        segment.add(&pipe, &joining, &on_steps);
        chip_dram_bytes += cost.dram_bytes;
        tl.add_layer(&cost, 1.0);
        if crosses {
            tl.link_bytes += pipe.t * hop_bytes;
        }
        if ends_segment {
            segment.settle(&pipe);
            let end = segment.end(&pipe, j, &core_free);
            let bound = (segment.stages.iter())
                .map(|s| s.dram_bound_cycles)
                .fold(0.0f64, f64::max);
            tl.dram_bound_cycles += bound.min(end - now);
            now = end;
            for (free, stage) in core_free.iter_mut().zip(&segment.stages) {
                if stage.fill_ahead_cycles.is_finite() {
                    *free = now;
                }
            }
            // The next segment starts when the last h of this one has crossed over, and that
            // link paces it from then on.
            let (barrier, max_hop) = if crosses {
                (pipe.link_latency_cycles + hop, hop)
            } else {
                (0.0, 0.0)
            };
            segment = Segment::starting(stages, i + 1, now + barrier, max_hop);
        }
    }
    debug_assert_eq!(segment.start, layers);
    tl.cycles = now;
    let head = head_cost(arch, workload, rates, 1, bpc);
    if !workload.head.layers.is_empty() {
        tl.cycles += head.cycles + reconfig_exposed(pipe.rho, Some(last_post), head.load_cycles);
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
