//! The simulator's resources and their timing: each core's units (products cut into tiles
//! and dispatched as units free up), pipelined tail lanes, its DRAM share and its link, as
//! FIFO servers; and the per-layer times the dependencies of the graph refer to.

use super::SimResult;
use crate::accel::arch::Arch;
use crate::accel::spec::DispatchPolicy;
use crate::accel::timing::LaneRate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Input,
    Recurrent,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Core {
    pub(super) units_free: f64,
    pub(super) last_kind: Option<Kind>,
    pub(super) tail_free: f64,
    pub(super) dram_free: f64,
    pub(super) link_free: f64,
    pub(super) unit_free: Vec<f64>,
    /// When this core's previous run of co-resident layers finished (weights may be replaced).
    pub(super) run_done: f64,
}

pub(super) struct Sim<'a> {
    pub(super) arch: &'a Arch,
    pub(super) rates: Vec<LaneRate>,
    pub(super) widest: usize,
    pub(super) cores: Vec<Core>,
    pub(super) split: u64,
    pub(super) bpc: f64,
    pub(super) result: SimResult,
}

/// Per-layer times the dependencies refer to. A per-step time is unknown (NaN) until the walk
/// sets it, and is read through `known` (sim/mod.rs), which refuses an unknown one.
#[derive(Debug, Clone)]
pub(super) struct LayerTimes {
    /// End of Tail(s) (+ the h exchange in helper mode): h_s final on its core.
    pub(super) post: Vec<f64>,
    /// End of Tail(s) alone: the level of step s+1 is known.
    pub(super) decided: Vec<f64>,
    /// End of step s's last product (its stream buffer may be refilled).
    pub(super) products_done: Vec<f64>,
    /// End of the products of step s (input, for overlapped plans issued early).
    pub(super) input_done: Vec<f64>,
    pub(super) last_end: f64,
}

impl LayerTimes {
    /// The times of a layer of `steps` steps before any of them has run: all unknown.
    pub(super) fn new(steps: usize) -> Self {
        Self {
            post: vec![f64::NAN; steps],
            decided: vec![f64::NAN; steps],
            products_done: vec![f64::NAN; steps],
            input_done: vec![f64::NAN; steps],
            last_end: 0.0,
        }
    }
}

impl Sim<'_> {
    fn ceil(a: u64, b: u64) -> u64 {
        a.div_ceil(b)
    }

    /// Runs `blocks` matrices of `rows` x `cols` times `vectors` vectors: start once the units
    /// are free (plus a reconfiguration when the product kind changes) and `ready`, after a
    /// precision switch if one is due, then tile by tile on the first free unit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn product(
        &mut self,
        core: usize,
        ready: f64,
        kind: Kind,
        level: usize,
        blocks: u64,
        rows: u64,
        cols: u64,
        vectors: u64,
        switch_after: Option<f64>,
    ) -> f64 {
        let a = self.arch;
        let rate = self.rates[level];
        let c = &mut self.cores[core];
        let reconfig = match c.last_kind {
            Some(k) if k != kind => f64::from(a.schedule.reconfig_cycles),
            _ => 0.0,
        };
        let mut start = ready.max(c.units_free + reconfig);
        if let Some(decided) = switch_after {
            start = start.max(decided) + f64::from(a.schedule.precision_switch_cycles);
            self.result.switches += 1;
        }
        let units = a.compute.units as usize;
        c.unit_free.clear();
        c.unit_free.resize(units, start);
        let cols_per_pass = u64::from(a.compute.multipliers_per_unit) * rate.weight_par;
        let col_passes = Self::ceil(cols, cols_per_pass);
        let reuse = vectors.min(rate.activation_par);
        let vector_passes = Self::ceil(vectors, reuse);
        match a.dispatch.policy {
            DispatchPolicy::Tiled => {
                let tile_rows = u64::from(a.dispatch.tile_rows);
                let tiles = Self::ceil(blocks * rows, tile_rows) * col_passes;
                let d = (tile_rows * vector_passes) as f64 * rate.serial_cycles;
                for _ in 0..tiles {
                    let u = first_free(&c.unit_free);
                    c.unit_free[u] += d;
                }
                self.result.tiles += tiles;
            }
            DispatchPolicy::GatePerUnit => {
                let d = (rows * col_passes * vector_passes) as f64 * rate.serial_cycles;
                for g in 0..blocks as usize {
                    c.unit_free[g % units] += d;
                }
                self.result.tiles += blocks;
            }
        }
        let end = c.unit_free.iter().copied().fold(start, f64::max);
        c.units_free = end;
        c.last_kind = Some(kind);
        self.result.products += 1;
        end
    }

    /// Element-wise work of `elements` values on the pipelined tail lanes.
    pub(super) fn tail(&mut self, core: usize, ready: f64, elements: u64) -> f64 {
        let a = &self.arch.compute;
        let c = &mut self.cores[core];
        let start = ready.max(c.tail_free);
        let busy = Self::ceil(elements, u64::from(a.tail_lanes)) as f64;
        c.tail_free = start + busy;
        start + busy + f64::from(a.tail_latency_cycles)
    }

    /// A DRAM transfer on this core's share of the channel (a FIFO bandwidth server).
    pub(super) fn dram(&mut self, core: usize, ready: f64, bytes: f64) -> f64 {
        let c = &mut self.cores[core];
        let start = ready.max(c.dram_free);
        c.dram_free = start + bytes / self.bpc;
        self.result.dram_bytes += bytes;
        c.dram_free
    }

    /// `bytes` over this core's link: serialised at the link rate, then the hop latency.
    pub(super) fn link(&mut self, core: usize, ready: f64, bytes: f64) -> f64 {
        let m = &self.arch.multicore;
        let c = &mut self.cores[core];
        let start = ready.max(c.link_free);
        c.link_free = start + bytes / self.arch.link_bytes_per_cycle();
        c.link_free + f64::from(m.link_latency_cycles)
    }
}

fn first_free(free: &[f64]) -> usize {
    let mut best = 0;
    for (i, &f) in free.iter().enumerate() {
        if f < free[best] {
            best = i;
        }
    }
    best
}
