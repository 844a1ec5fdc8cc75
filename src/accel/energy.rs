//! Energy per operation and chip area. Per-op energies scale from the reference figures in the
//! architecture file (Horowitz, ISSCC 2014, 45 nm, scaled to `technology.node_nm` when the
//! `Arch` is built): multipliers quadratically with operand width, adders linearly, SRAM by row
//! read with bank capacity to a CACTI-like power law. Area sums multipliers, adders, SRAM,
//! control, the precision-tracking unit and inter-core links.

use super::arch::Arch;
use super::spec::MultiplierKind;
use super::timing::LaneRate;

/// Chip area by component, all cores included.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AreaBreakdown {
    pub compute_mm2: f64,
    pub sram_mm2: f64,
    pub control_mm2: f64,
    pub tracking_mm2: f64,
    pub link_mm2: f64,
    pub total_mm2: f64,
}

const UM2_PER_MM2: f64 = 1e6;

/// Area of one multiplier (or one bit-serial lane) in um^2.
pub(crate) fn multiplier_um2(arch: &Arch) -> f64 {
    let a = &arch.area;
    let w = f64::from(arch.compute.multiplier_bits);
    match arch.compute.multiplier_kind {
        MultiplierKind::Fixed => a.mult_um2_8bit * (w / 8.0).powi(2),
        MultiplierKind::BitParallel => {
            a.bit_parallel_overhead * a.mult_um2_8bit * (w / 8.0).powi(2)
        }
        MultiplierKind::BitSerial => a.serial_lane_um2_per_bit * w,
    }
}

/// Area of the whole chip.
pub fn area(arch: &Arch) -> AreaBreakdown {
    let a = &arch.area;
    let c = &arch.compute;
    let cores = f64::from(arch.multicore.cores);
    let mults = f64::from(c.units) * f64::from(c.multipliers_per_unit);
    // Each multiplier feeds an adder-tree node of 2w bits.
    let adder_um2 = a.add_um2_32bit * 2.0 * f64::from(c.multiplier_bits) / 32.0;
    let compute_mm2 = cores
        * (mults * (multiplier_um2(arch) + adder_um2)
            + f64::from(c.tail_lanes) * a.tail_um2_per_lane)
        / UM2_PER_MM2;
    let sram_mm2 = cores
        * (arch.memory.sram_weight_kib + arch.memory.sram_activation_kib)
        * a.sram_mm2_per_kib;
    let control_mm2 = cores * f64::from(c.units) * a.control_mm2_per_unit;
    let tracking_mm2 = if arch.tracking.enabled {
        cores * arch.tracking.area_mm2
    } else {
        0.0
    };
    let link_mm2 = if arch.multicore.cores > 1 {
        cores * arch.multicore.link_area_mm2_per_core
    } else {
        0.0
    };
    AreaBreakdown {
        compute_mm2,
        sram_mm2,
        control_mm2,
        tracking_mm2,
        link_mm2,
        total_mm2: compute_mm2 + sram_mm2 + control_mm2 + tracking_mm2 + link_mm2,
    }
}

/// Energy of one multiply-accumulate at the rate's operand widths, in pJ.
pub(crate) fn mac_pj(arch: &Arch, rate: &LaneRate) -> f64 {
    let e = &arch.energy;
    let add_pj_per_bit = e.add_pj_32bit / 32.0;
    let w = f64::from(arch.compute.multiplier_bits);
    let (pw, pa) = (f64::from(rate.weight_bits), f64::from(rate.activation_bits));
    match arch.compute.multiplier_kind {
        // Narrow operands are sign-extended: the full-width array still switches.
        MultiplierKind::Fixed => e.mult_pj_8bit * (w / 8.0).powi(2) + add_pj_per_bit * 2.0 * w,
        MultiplierKind::BitParallel => {
            e.bit_parallel_overhead * e.mult_pj_8bit * (pw * pa) / 64.0 + add_pj_per_bit * (pw + pa)
        }
        // One (w + p_a)-bit shift-add per activation bit.
        MultiplierKind::BitSerial => rate.serial_cycles * add_pj_per_bit * (w + pa),
    }
}

/// Energy per useful bit read from an SRAM bank of `kib` KiB with rows of
/// `memory.sram_row_bits`, in pJ. A row read costs
/// E_row = e8 * 64 * (kib / 8)^x * (a + (1 - a) * R / 64): the 8 KiB 64-bit reference read
/// (Horowitz: 10 pJ, e8 = 0.156 pJ/bit) split into a per-access share a (decoder, word line,
/// H-tree) and a per-bit share (bit lines, sense amplifiers), both growing with the bank as a
/// CACTI-like power law (x = 0.5). Reads are sequential through a row buffer, so a bit costs
/// E_row / R. Banks below 1 KiB are costed as 1 KiB.
pub(crate) fn sram_pj_per_bit(arch: &Arch, kib: f64) -> f64 {
    let e = &arch.energy;
    let ratio = kib.max(1.0) / 8.0;
    // sqrt is the default law and much cheaper than powf on the hot path.
    let scale = if e.sram_size_exponent == 0.5 {
        ratio.sqrt()
    } else {
        ratio.powf(e.sram_size_exponent)
    };
    let row = f64::from(arch.memory.sram_row_bits);
    let a = e.sram_access_share;
    e.sram_pj_per_bit_8kib * scale * (a * 64.0 / row + (1.0 - a))
}
