//! `evaluate`: one design point (arch x workload) to latency, throughput, energy with its
//! breakdown, area, utilization and traffic. It validates the workload against the arch, runs
//! the multicore timeline, then prices every counted event. Allocation-free apart from the
//! error path, so sweeps can call it millions of times per second.

use super::arch::Arch;
use super::energy::{area, sram_pj_per_bit};
use super::error::AccelError;
use super::multicore;
use super::timing::{LevelRates, GATES};
use super::workload::Workload;

/// Everything the model says about one configuration running one workload.
///
/// Energies cover the whole run: `sequences` sequences (batch x copies). Power is the average
/// over the run, so `energy_uj = power_mw * latency_us / 1000` holds by construction and
/// `static_uj = static_power_mw * latency_us / 1000` is checked by a test.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DesignPoint {
    pub cycles: f64,
    pub latency_us: f64,
    pub sequences: f64,
    pub throughput_seq_per_s: f64,
    pub energy_uj: f64,
    pub compute_uj: f64,
    pub sram_uj: f64,
    pub dram_uj: f64,
    pub link_uj: f64,
    pub tracking_uj: f64,
    pub static_uj: f64,
    pub energy_per_seq_uj: f64,
    pub power_mw: f64,
    pub static_power_mw: f64,
    pub area_mm2: f64,
    pub compute_area_mm2: f64,
    pub sram_area_mm2: f64,
    pub control_area_mm2: f64,
    pub tracking_area_mm2: f64,
    pub link_area_mm2: f64,
    /// Useful multiplier work / available multiplier slots over the run, all cores.
    pub utilization: f64,
    pub dram_bytes: f64,
    /// Share of the run's cycles in which DRAM bandwidth, not compute, sets the pace.
    pub dram_bound_fraction: f64,
    pub macs: f64,
    pub gflops_per_w: f64,
}

/// How many figures [`DesignPoint::sweep_columns`] gives.
pub const SWEEP_COLUMNS: usize = 13;

impl DesignPoint {
    /// The figures a sweep writes per point, with their column names (units in the names).
    pub fn sweep_columns(&self) -> [(&'static str, f64); SWEEP_COLUMNS] {
        [
            ("cycles", self.cycles),
            ("latency_us", self.latency_us),
            ("throughput_seq_per_s", self.throughput_seq_per_s),
            ("energy_uj", self.energy_uj),
            ("compute_uj", self.compute_uj),
            ("sram_uj", self.sram_uj),
            ("dram_uj", self.dram_uj),
            ("static_uj", self.static_uj),
            ("energy_per_seq_uj", self.energy_per_seq_uj),
            ("area_mm2", self.area_mm2),
            ("utilization", self.utilization),
            ("dram_bytes", self.dram_bytes),
            ("gflops_per_w", self.gflops_per_w),
        ]
    }
}

/// Evaluates one design point. With `overlap_tail` the schedule may also decline to
/// overlap: with dynamic precision each layer already picks the faster of overlapping at the
/// widest level and waiting for the step's level, but in a multithreading pipeline the
/// per-layer choice can lengthen the slowest stage, and at any precision an early input
/// product on a core that layers share can delay the pipeline; so there the point is the
/// faster of that and waiting everywhere (what the simulator runs; overlap is then never
/// slower than no overlap).
#[inline]
pub fn evaluate(arch: &Arch, workload: &Workload) -> Result<DesignPoint, AccelError> {
    let fitted = workload.with_edges_that_fit();
    let workload = fitted.as_ref().unwrap_or(workload);
    let point = evaluate_schedule(arch, workload)?;
    if !(arch.schedule.overlap_tail && (workload.precision.is_dynamic() || arch.multithreading())) {
        return Ok(point);
    }
    let mut wait = arch.clone();
    wait.schedule.overlap_tail = false;
    let waiting = evaluate_schedule(&wait, workload)?;
    Ok(if waiting.cycles < point.cycles {
        waiting
    } else {
        point
    })
}

// Inlined into `evaluate` (and, through it, into a sweep's loop), so the point is built where
// the caller keeps it: returned through two calls, its 200 bytes were copied by `memcpy` at
// each.
#[inline(always)]
fn evaluate_schedule(arch: &Arch, workload: &Workload) -> Result<DesignPoint, AccelError> {
    workload.validate()?;
    let p = &workload.precision;
    if p.is_dynamic() && !arch.tracking.enabled {
        return Err(AccelError::Workload {
            workload: workload.name.clone(),
            message: format!(
                "uses dynamic precision but arch '{}' has no precision-tracking unit (set tracking.enabled=true)",
                arch.name
            ),
        });
    }
    let rates = LevelRates::new(arch, workload)?;
    let tl = multicore::run(arch, workload, &rates);

    let t = workload.seq_len as f64;
    let batch = workload.batch as f64;
    let mut macs = 0.0;
    let mut cell_updates = 0.0;
    for l in &workload.layers {
        let dirs = l.directions as f64;
        let hidden = l.hidden_size as f64;
        macs += t * batch * GATES as f64 * dirs * hidden * (l.input_size as f64 + hidden);
        cell_updates += t * batch * hidden * dirs;
    }
    let vectors = workload.head.vectors(workload.batch, workload.seq_len) as f64;
    for h in &workload.head.layers {
        macs += vectors * h.input_size as f64 * h.output_size as f64;
    }
    let copies = tl.copies;
    let e = &arch.energy;
    let compute_pj = tl.mac_pj
        + copies * cell_updates * e.tail_pj_per_element
        + tl.head_elements * e.softmax_pj_per_element
        + tl.switches * e.precision_switch_pj;
    let tracking_pj = if p.is_dynamic() {
        copies * cell_updates * arch.tracking.pj_per_element
    } else {
        0.0
    };
    let weight_bank_kib = (arch.memory.sram_weight_kib / f64::from(arch.compute.units))
        .min(arch.memory.sram_bank_kib);
    let activation_bank_kib = arch
        .memory
        .sram_activation_kib
        .min(arch.memory.sram_bank_kib);
    let sram_pj = tl.weight_sram_bits * sram_pj_per_bit(arch, weight_bank_kib)
        + tl.activation_sram_bits * sram_pj_per_bit(arch, activation_bank_kib);
    let dram_pj = tl.dram_bytes * arch.energy.dram_pj_per_byte;
    let link_pj = tl.link_bytes * arch.multicore.link_pj_per_byte;

    let chip = area(arch);
    let static_power_mw = chip.total_mm2 * arch.energy.static_mw_per_mm2;
    let latency_us = tl.cycles / arch.compute.clock_mhz;
    // mW x us = nJ = 1e-3 uJ; pJ = 1e-6 uJ.
    let static_uj = static_power_mw * latency_us * 1e-3;
    let compute_uj = compute_pj * 1e-6;
    let sram_uj = sram_pj * 1e-6;
    let dram_uj = dram_pj * 1e-6;
    let link_uj = link_pj * 1e-6;
    let tracking_uj = tracking_pj * 1e-6;
    let energy_uj = compute_uj + sram_uj + dram_uj + link_uj + tracking_uj + static_uj;
    let sequences = copies * batch;
    let total_macs = copies * macs;
    let point = DesignPoint {
        cycles: tl.cycles,
        latency_us,
        sequences,
        throughput_seq_per_s: sequences / (latency_us * 1e-6),
        energy_uj,
        compute_uj,
        sram_uj,
        dram_uj,
        link_uj,
        tracking_uj,
        static_uj,
        energy_per_seq_uj: energy_uj / sequences,
        power_mw: energy_uj / latency_us * 1e3,
        static_power_mw,
        area_mm2: chip.total_mm2,
        compute_area_mm2: chip.compute_mm2,
        sram_area_mm2: chip.sram_mm2,
        control_area_mm2: chip.control_mm2,
        tracking_area_mm2: chip.tracking_mm2,
        link_area_mm2: chip.link_mm2,
        utilization: tl.ideal_core_cycles / (f64::from(arch.multicore.cores) * tl.cycles),
        dram_bytes: tl.dram_bytes,
        dram_bound_fraction: (tl.dram_bound_cycles / tl.cycles).min(1.0),
        macs: total_macs,
        // 2 flops per MAC; uJ x 1e3 = nJ, and flops / nJ = Gflop/J = Gflop/s per W.
        gflops_per_w: 2.0 * total_macs / (energy_uj * 1e3),
    };
    // Every value passed its own check, but together extreme ones (1e300 pJ, a 1e-300 MHz
    // clock) can leave f64: said, not written as inf or NaN. (gflops_per_w is left out: with
    // every energy at 0, a latency and area study, it is inf by definition.)
    let extra = [
        ("power_mw", point.power_mw),
        ("dram_bound_fraction", point.dram_bound_fraction),
    ];
    let mut outputs = (point.sweep_columns().into_iter())
        .filter(|(name, _)| *name != "gflops_per_w")
        .chain(extra);
    if let Some((name, v)) = outputs.find(|(_, v)| !v.is_finite()) {
        return Err(AccelError::Workload {
            workload: workload.name.clone(),
            message: format!(
                "on arch '{}' its {name} is {v}: some architecture value is too extreme for the model (values like 1e300 or 1e-300)",
                arch.name
            ),
        });
    }
    Ok(point)
}
