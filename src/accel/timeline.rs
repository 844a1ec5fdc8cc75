//! A run's totals over all cores (`multicore::run`'s result): its cycles plus the traffic,
//! busy counts and event counts energy needs, summed layer by layer.

use super::head::HeadCost;
use super::layer::LayerCost;

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
    /// Multiply-accumulate energy of all cores, in pJ.
    pub mac_pj: f64,
    /// Precision switches, all cores.
    pub switches: f64,
    /// Softmax/sigmoid elements of the head, all cores.
    pub head_elements: f64,
}

impl Timeline {
    pub(crate) fn add_layer(&mut self, cost: &LayerCost, times: f64) {
        self.ideal_core_cycles += times * cost.ideal_cycles;
        self.dram_bytes += times * cost.dram_bytes;
        self.weight_sram_bits += times * cost.weight_sram_bits;
        self.activation_sram_bits += times * cost.activation_sram_bits;
        self.mac_pj += times * cost.mac_pj;
        self.switches += times * cost.switches;
    }

    pub(crate) fn add_head(&mut self, cost: &HeadCost, times: f64) {
        self.ideal_core_cycles += times * cost.ideal_cycles;
        self.dram_bytes += times * cost.dram_bytes;
        self.weight_sram_bits += times * cost.weight_sram_bits;
        self.activation_sram_bits += times * cost.activation_sram_bits;
        self.mac_pj += times * cost.mac_pj;
        self.head_elements += times * cost.activation_elements;
    }
}
