//! How N cores with a shared DRAM interface split a workload (Peng et al., MCSoC 2019):
//! multiprogramming (a copy per core), multithreading (consecutive layers on consecutive
//! cores, a wavefront over (layer, step)), and helper (cores split every layer's cells and
//! exchange h over a link each step). One core is the degenerate case of all three. The
//! result is a `Timeline`: total cycles plus the traffic and busy counts energy needs.

use super::arch::Arch;
use super::spec::{InputProduct, MulticoreMode};
use super::timing::{layer_cost, LayerContext, LayerCost, LevelRates};
use super::workload::Workload;

/// Whole-run totals for all cores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Timeline {
    pub cycles: f64,
    pub dram_bound_cycles: f64,
    /// Sum over cores of the cycles their multipliers would need at full use.
    pub ideal_core_cycles: f64,
    pub dram_bytes: f64,
    pub link_bytes: f64,
    pub weight_sram_bits: f64,
    pub activation_sram_bits: f64,
    /// Copies of the workload run (N in multiprogramming, else 1).
    pub copies: f64,
    /// Cores that do work; the rest idle (multithreading with fewer layers than cores).
    pub active_cores: f64,
}

impl Timeline {
    fn add_layer(&mut self, cost: &LayerCost, times: f64) {
        self.ideal_core_cycles += times * cost.ideal_cycles;
        self.dram_bytes += times * cost.dram_bytes;
        self.weight_sram_bits += times * cost.weight_sram_bits;
        self.activation_sram_bits += times * cost.activation_sram_bits;
    }
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
            for (i, shape) in workload.layers.iter().enumerate() {
                let ctx = LayerContext {
                    split: if helper { cores } else { 1 },
                    input_product: arch.schedule.input_product,
                    dram_bytes_per_cycle: chip_bpc / cores as f64,
                    keeps_output: true,
                    first_layer: i == 0,
                    last_layer: i == last,
                };
                let cost = layer_cost(arch, workload, rates, i, shape, &ctx, &mut cache);
                tl.cycles += cost.layer_cycles;
                tl.dram_bound_cycles += cost.dram_bound_cycles;
                tl.add_layer(&cost, cores as f64);
                if helper {
                    // Every core receives every other core's slice of h each step.
                    tl.link_bytes +=
                        t * cost.exchange_bytes_per_step * (cores * (cores - 1)) as f64;
                }
            }
            tl.copies = copies;
            tl.active_cores = cores as f64;
        }
        MulticoreMode::Multithreading => {
            // Layer l+1's input at step t is h^l_t, produced on another core one wavefront
            // slot earlier: input products cannot be batched over steps in this mode.
            let stages = cores.min(layers as u64);
            let link_bpc = arch.link_bytes_per_cycle();
            let link_latency = f64::from(arch.multicore.link_latency_cycles);
            let mut stage = 0u64;
            let mut stage_step = 0.0f64;
            let mut max_stage_step = 0.0f64;
            let mut fill = 0.0f64;
            let mut max_hop = 0.0f64;
            let mut chip_dram_bytes = 0.0;
            for (i, shape) in workload.layers.iter().enumerate() {
                let this_stage = i as u64 * stages / layers as u64;
                if this_stage != stage {
                    max_stage_step = max_stage_step.max(stage_step);
                    stage_step = 0.0;
                    stage = this_stage;
                }
                let ctx = LayerContext {
                    split: 1,
                    input_product: InputProduct::PerStep,
                    dram_bytes_per_cycle: chip_bpc / stages as f64,
                    keeps_output: false,
                    first_layer: i == 0,
                    last_layer: i == last,
                };
                let cost = layer_cost(arch, workload, rates, i, shape, &ctx, &mut cache);
                stage_step += cost.step_cycles;
                fill += cost.step_cycles + cost.once_cycles;
                tl.dram_bound_cycles += cost.dram_bound_cycles;
                chip_dram_bytes += cost.dram_bytes;
                tl.add_layer(&cost, 1.0);
                let next_stage = (i as u64 + 1) * stages / layers as u64;
                if i != last && next_stage != this_stage {
                    let bytes = (workload.batch * shape.hidden_size * shape.directions) as f64
                        * cost.activation_bytes_per_value;
                    let hop = bytes / link_bpc;
                    max_hop = max_hop.max(hop);
                    fill += link_latency + hop;
                    tl.link_bytes += t * bytes;
                }
            }
            max_stage_step = max_stage_step.max(stage_step);
            let wavefront = fill + (t - 1.0) * max_stage_step.max(max_hop);
            tl.cycles = wavefront.max(chip_dram_bytes / chip_bpc);
            tl.dram_bound_cycles = tl.dram_bound_cycles.min(tl.cycles);
            tl.copies = 1.0;
            tl.active_cores = stages as f64;
        }
    }
    tl
}
