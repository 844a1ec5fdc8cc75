//! How N cores with a shared DRAM interface split a workload (Peng et al., MCSoC 2019):
//! multiprogramming (a copy per core), multithreading (consecutive layers on consecutive
//! cores, a wavefront over (layer, step) where the dependencies allow one), and helper (cores
//! split every layer's cells and exchange h over a link each step). One core is the degenerate
//! case of all three. The result is a `Timeline`: total cycles plus the traffic, busy counts
//! and event counts energy needs. Multiprogramming and helper run one core's schedule (here);
//! multithreading's pipeline over the cores is `multithread`.

use super::arch::Arch;
use super::head::head_cost;
use super::layer::{layer_cost, LayerContext};
use super::multithread;
use super::spec::MulticoreMode;
use super::timeline::Timeline;
use super::timing::LevelRates;
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
            if !workload.head.layers.is_empty() {
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
        MulticoreMode::Multithreading => multithread::run(arch, workload, rates, &mut tl),
    }
    tl
}

/// On one core's schedule, the part of the reconfiguration rho from a layer's last recurrent
/// product into the next input product (the next layer's first, or the head's) that neither
/// the layer's last tail and exchange (`post`) nor the next weight load hides:
/// max(0, rho - post - load). The first layer starts on an idle array (nothing to reconfigure).
/// docs/MODEL.md section 3, "Layer boundaries".
pub(crate) fn reconfig_exposed(rho: f64, post: Option<f64>, load: f64) -> f64 {
    post.map_or(0.0, |post| (rho - post - load).max(0.0))
}
