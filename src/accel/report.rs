//! Presenting a design point: comparison against a named baseline, a Timeloop-like readable
//! block for the terminal, and a flat serde row with unit-suffixed columns for `--csv`.

use std::fmt::Write as _;

use serde::Serialize;

use super::arch::Arch;
use super::evaluate::DesignPoint;
use super::workload::Workload;

/// A point relative to a baseline point. Speedup is in throughput (sequences per second), so
/// multiprogramming's extra sequences count; energy and area are per sequence and per chip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    pub speedup: f64,
    /// 1 - energy per sequence / baseline energy per sequence (0.23 = 23% saved).
    pub energy_saving: f64,
    /// area / baseline area - 1 (0.088 = 8.8% larger).
    pub area_overhead: f64,
}

/// Compares `point` with `baseline` (both from `evaluate`).
pub fn compare(point: &DesignPoint, baseline: &DesignPoint) -> Comparison {
    Comparison {
        speedup: point.throughput_seq_per_s / baseline.throughput_seq_per_s,
        energy_saving: 1.0 - point.energy_per_seq_uj / baseline.energy_per_seq_uj,
        area_overhead: point.area_mm2 / baseline.area_mm2 - 1.0,
    }
}

/// A readable block in the spirit of Timeloop's stats summary.
pub fn format_summary(
    point: &DesignPoint,
    arch: &Arch,
    workload: &Workload,
    baseline: Option<(&str, &Comparison)>,
) -> String {
    let p = point;
    let pct = |part: f64, whole: f64| {
        if whole > 0.0 {
            100.0 * part / whole
        } else {
            0.0
        }
    };
    let mut s = String::new();
    let c = &arch.compute;
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "=== accelerator model: {} x {} ===",
        arch.name, workload.name
    );
    let _ = writeln!(
        s,
        "arch     : {} core(s) {:?}, {} units x {} mult ({}-bit {:?}), {:?} dispatch, {} MHz",
        arch.multicore.cores,
        arch.multicore.mode,
        c.units,
        c.multipliers_per_unit,
        c.multiplier_bits,
        c.multiplier_kind,
        arch.dispatch.policy,
        c.clock_mhz
    );
    let _ = writeln!(
        s,
        "workload : {} layer(s), seq_len {}, batch {}, {} precision level(s)",
        workload.layers.len(),
        workload.seq_len,
        workload.batch,
        workload.precision.levels.len()
    );
    let _ = writeln!(s, "-- performance");
    let _ = writeln!(s, "cycles               : {:.0}", p.cycles);
    let _ = writeln!(s, "latency              : {:.3} us", p.latency_us);
    let _ = writeln!(
        s,
        "throughput           : {:.2} seq/s ({} seq)",
        p.throughput_seq_per_s, p.sequences
    );
    let _ = writeln!(s, "utilization          : {:.1} %", 100.0 * p.utilization);
    let _ = writeln!(
        s,
        "DRAM-bound cycles    : {:.1} %",
        100.0 * p.dram_bound_fraction
    );
    let _ = writeln!(s, "DRAM traffic         : {:.0} bytes", p.dram_bytes);
    let _ = writeln!(s, "-- energy");
    let _ = writeln!(
        s,
        "total                : {:.3} uJ ({:.3} uJ/seq)",
        p.energy_uj, p.energy_per_seq_uj
    );
    for (name, v) in [
        ("compute", p.compute_uj),
        ("sram", p.sram_uj),
        ("dram", p.dram_uj),
        ("link", p.link_uj),
        ("tracking", p.tracking_uj),
        ("static", p.static_uj),
    ] {
        let _ = writeln!(s, "  {name:<19}: {v:.3} uJ ({:.1} %)", pct(v, p.energy_uj));
    }
    let _ = writeln!(
        s,
        "average power        : {:.2} mW (static {:.2} mW)",
        p.power_mw, p.static_power_mw
    );
    let _ = writeln!(s, "efficiency           : {:.1} GFLOPs/W", p.gflops_per_w);
    let _ = writeln!(s, "-- area");
    let _ = writeln!(s, "total                : {:.3} mm2", p.area_mm2);
    for (name, v) in [
        ("compute", p.compute_area_mm2),
        ("sram", p.sram_area_mm2),
        ("control", p.control_area_mm2),
        ("tracking", p.tracking_area_mm2),
        ("link", p.link_area_mm2),
    ] {
        let _ = writeln!(s, "  {name:<19}: {v:.3} mm2 ({:.1} %)", pct(v, p.area_mm2));
    }
    if let Some((name, cmp)) = baseline {
        let _ = writeln!(s, "-- versus {name}");
        let _ = writeln!(s, "speedup              : {:.3}x", cmp.speedup);
        let _ = writeln!(
            s,
            "energy saving        : {:.1} %",
            100.0 * cmp.energy_saving
        );
        let _ = writeln!(
            s,
            "area overhead        : {:.1} %",
            100.0 * cmp.area_overhead
        );
    }
    s
}

/// One CSV row: configuration names, every `DesignPoint` field, and the optional comparison.
#[derive(Debug, Clone, Serialize)]
pub struct AccelCsvRow<'a> {
    pub arch: &'a str,
    pub workload: &'a str,
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
    pub utilization: f64,
    pub dram_bytes: f64,
    pub dram_bound_fraction: f64,
    pub macs: f64,
    pub gflops_per_w: f64,
    pub baseline: Option<&'a str>,
    pub speedup: Option<f64>,
    pub energy_saving: Option<f64>,
    pub area_overhead: Option<f64>,
}

impl DesignPoint {
    /// The row `--csv` writes with `csv::Writer::serialize`.
    pub fn csv_row<'a>(
        &self,
        arch: &'a str,
        workload: &'a str,
        baseline: Option<(&'a str, &Comparison)>,
    ) -> AccelCsvRow<'a> {
        let p = self;
        AccelCsvRow {
            arch,
            workload,
            cycles: p.cycles,
            latency_us: p.latency_us,
            sequences: p.sequences,
            throughput_seq_per_s: p.throughput_seq_per_s,
            energy_uj: p.energy_uj,
            compute_uj: p.compute_uj,
            sram_uj: p.sram_uj,
            dram_uj: p.dram_uj,
            link_uj: p.link_uj,
            tracking_uj: p.tracking_uj,
            static_uj: p.static_uj,
            energy_per_seq_uj: p.energy_per_seq_uj,
            power_mw: p.power_mw,
            static_power_mw: p.static_power_mw,
            area_mm2: p.area_mm2,
            compute_area_mm2: p.compute_area_mm2,
            sram_area_mm2: p.sram_area_mm2,
            control_area_mm2: p.control_area_mm2,
            tracking_area_mm2: p.tracking_area_mm2,
            link_area_mm2: p.link_area_mm2,
            utilization: p.utilization,
            dram_bytes: p.dram_bytes,
            dram_bound_fraction: p.dram_bound_fraction,
            macs: p.macs,
            gflops_per_w: p.gflops_per_w,
            baseline: baseline.map(|(n, _)| n),
            speedup: baseline.map(|(_, c)| c.speedup),
            energy_saving: baseline.map(|(_, c)| c.energy_saving),
            area_overhead: baseline.map(|(_, c)| c.area_overhead),
        }
    }
}
