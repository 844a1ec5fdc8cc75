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
        let units = a.compute.units as u64;
        let cols_per_pass = u64::from(a.compute.multipliers_per_unit) * rate.weight_par;
        let col_passes = Self::ceil(cols, cols_per_pass);
        let reuse = vectors.min(rate.activation_par);
        let vector_passes = Self::ceil(vectors, reuse);
        let end = match a.dispatch.policy {
            DispatchPolicy::Tiled => {
                let tile_rows = u64::from(a.dispatch.tile_rows);
                let tiles = Self::ceil(blocks * rows, tile_rows) * col_passes;
                let d = (tile_rows * vector_passes) as f64 * rate.serial_cycles;
                self.result.tiles += tiles;
                busiest_end(start, d, tiles, units)
            }
            DispatchPolicy::GatePerUnit => {
                let d = (rows * col_passes * vector_passes) as f64 * rate.serial_cycles;
                self.result.tiles += blocks;
                busiest_end(start, d, blocks, units)
            }
        };
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

/// Below this every whole number is an f64.
const EXACT_INTEGERS: f64 = (1u64 << 53) as f64;

/// When the last of `units` identical units, all free at `start`, is done with `jobs` jobs of
/// `d` cycles each, handed out one by one to the first free unit (the lowest index among the
/// earliest free), or job g to unit g mod `units`: both give the busiest unit
/// ceil(jobs / units) jobs, and every unit's time is `start` plus `d` added once per job, in
/// that order. So the busiest unit's time is that sum for ceil(jobs / units) jobs, without a
/// time per unit (`compute.units` may be in the billions) or a search for the first free.
/// When an addition no longer changes the sum it never will, and the first-free dispatch then
/// piles the rest onto one unit at that same time. The result is the simulated time to the
/// bit: `first_free_end` in the tests is the dispatch unit by unit.
fn busiest_end(start: f64, d: f64, jobs: u64, units: u64) -> f64 {
    let jobs = jobs.div_ceil(units);
    // Whole numbers add exactly while the sum stays below 2^53 (a rounded product or sum
    // below it means the exact one is too): then the additions are one multiplication.
    if start >= 0.0 && d >= 0.0 && start.fract() == 0.0 && d.fract() == 0.0 {
        let end = start + jobs as f64 * d;
        if end < EXACT_INTEGERS {
            return end;
        }
    }
    let mut end = start;
    for _ in 0..jobs {
        let next = end + d;
        if next == end {
            break;
        }
        end = next;
    }
    start.max(end)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::busiest_end;

    /// The dispatch as the simulator did it until 2026-12-06 (it aborted allocating a time per
    /// unit for `compute.units = 4e9`): a free time per unit, each job on the first free.
    fn first_free_end(start: f64, d: f64, jobs: u64, units: usize) -> f64 {
        let mut free = vec![start; units];
        for _ in 0..jobs {
            let mut best = 0;
            for (i, &f) in free.iter().enumerate() {
                if f < free[best] {
                    best = i;
                }
            }
            free[best] += d;
        }
        free.iter().copied().fold(start, f64::max)
    }

    /// ... and job g on unit g mod units (gate per unit).
    fn modulo_end(start: f64, d: f64, jobs: u64, units: usize) -> f64 {
        let mut free = vec![start; units];
        for g in 0..jobs as usize {
            free[g % units] += d;
        }
        free.iter().copied().fold(start, f64::max)
    }

    fn start_time() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            0.0..1e6,
            // Large enough that adding a short job is lost to rounding (the sum stops moving).
            1e15..1e17,
            (0u64..1 << 40).prop_map(|n| n as f64),
            // Whole numbers about 2^53, where whole-number sums stop being exact.
            ((1u64 << 53) - 4096..(1u64 << 53) + 4096).prop_map(|n| n as f64),
        ]
    }

    fn job_cycles() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            (1u64..64).prop_map(|n| n as f64),
            (1u64..64, 1u64..7).prop_map(|(n, k)| n as f64 / k as f64),
            0.0..10.0,
            Just(f64::INFINITY),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 4000,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0011),
            ..ProptestConfig::default()
        })]

        /// The busiest unit's time is that of either dispatch, to the bit.
        #[test]
        fn busiest_end_is_the_dispatch_unit_by_unit(
            start in start_time(), d in job_cycles(), jobs in 0u64..300, units in 1usize..40
        ) {
            let end = busiest_end(start, d, jobs, units as u64);
            prop_assert_eq!(end.to_bits(), first_free_end(start, d, jobs, units).to_bits());
            prop_assert_eq!(end.to_bits(), modulo_end(start, d, jobs, units).to_bits());
        }
    }

    /// Billions of units cost nothing: one job each at most.
    #[test]
    fn billions_of_units_are_a_count() {
        assert_eq!(busiest_end(10.0, 2.5, 3, 4_000_000_000), 12.5);
        assert_eq!(busiest_end(10.0, 2.5, 0, 4_000_000_000), 10.0);
        assert_eq!(busiest_end(10.0, 2.5, 9, 4), 17.5);
        assert_eq!(
            busiest_end(10.0, 3.0, 1 << 40, 1),
            10.0 + 3.0 * (1u64 << 40) as f64
        );
    }
}
