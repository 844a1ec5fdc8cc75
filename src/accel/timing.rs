//! Multiplier throughput per precision level and the cost of one matrix-vector product (input
//! W x_t or recurrent U h_{t-1}) under the dispatch policy (E-PUR gate-per-unit or LSTM-Sharp
//! tiles). The schedule of a whole layer is in `layer.rs`. Everything here is closed form and
//! allocation-free; equations are in docs/MODEL.md sections 1 and 2.

use super::arch::Arch;
use super::error::AccelError;
use super::precision::PrecisionLevel;
use super::spec::{DispatchPolicy, MultiplierKind};
use super::workload::Workload;

/// LSTM gates per direction (input, forget, cell, output).
pub(crate) const GATES: u64 = 4;

/// Most precision levels a workload may mix (kept small so rates live on the stack).
pub const MAX_PRECISION_LEVELS: usize = 8;

/// ceil(a / b) in floating point: exact while a + b < 2^52 (far above any layer size here),
/// and several times cheaper than 64-bit integer division on the hot path. The ceiling is
/// taken by truncation and a compare (`f64::ceil` is a library call on baseline x86-64).
#[inline]
pub(crate) fn ceil_div(a: u64, b: u64) -> u64 {
    let q = a as f64 / b as f64;
    let t = q as u64;
    t + u64::from((t as f64) < q)
}

/// What one multiplier delivers at one precision level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LaneRate {
    /// Weight columns one multiplier consumes per cycle (w / p_w for bit-parallel, else 1).
    pub weight_par: u64,
    /// Most activation vectors one weight read can serve per cycle (w / p_a for bit-parallel).
    pub activation_par: u64,
    /// Cycles one product occupies the multiplier (p_a for bit-serial, else 1).
    pub serial_cycles: f64,
    /// Operand widths the hardware actually runs at (after rounding up to a supported width).
    pub weight_bits: u32,
    pub activation_bits: u32,
}

fn round_up_supported(bits: u32, min_bits: u32, max_bits: u32) -> u32 {
    // Supported widths of a bit-parallel multiplier: max, max/2, max/4, ... down to min.
    let mut width = max_bits;
    while width / 2 >= bits.max(min_bits) {
        width /= 2;
    }
    width
}

/// Throughput of one multiplier at `level`, or an error if the hardware cannot run it.
pub(crate) fn lane_rate(
    arch: &Arch,
    workload: &Workload,
    level: PrecisionLevel,
) -> Result<LaneRate, AccelError> {
    let c = &arch.compute;
    let fail = |message: String| AccelError::Workload {
        workload: workload.name.clone(),
        message,
    };
    for (operand, bits) in [
        ("weight", level.weight_bits),
        ("activation", level.activation_bits),
    ] {
        if bits < c.min_precision_bits {
            return Err(fail(format!(
                "{operand} precision {bits} bits is narrower than the multiplier supports (compute.min_precision_bits = {})",
                c.min_precision_bits
            )));
        }
        let serial_operand =
            c.multiplier_kind == MultiplierKind::BitSerial && operand == "activation";
        if bits > c.multiplier_bits && !serial_operand {
            return Err(fail(format!(
                "{operand} precision {bits} bits is wider than the multiplier (compute.multiplier_bits = {})",
                c.multiplier_bits
            )));
        }
    }
    let w = c.multiplier_bits;
    Ok(match c.multiplier_kind {
        MultiplierKind::Fixed => LaneRate {
            weight_par: 1,
            activation_par: 1,
            serial_cycles: 1.0,
            weight_bits: w,
            activation_bits: w,
        },
        MultiplierKind::BitParallel => {
            let pw = round_up_supported(level.weight_bits, c.min_precision_bits, w);
            let pa = round_up_supported(level.activation_bits, c.min_precision_bits, w);
            LaneRate {
                weight_par: u64::from(w / pw),
                activation_par: u64::from(w / pa),
                serial_cycles: 1.0,
                weight_bits: pw,
                activation_bits: pa,
            }
        }
        MultiplierKind::BitSerial => LaneRate {
            weight_par: 1,
            activation_par: 1,
            serial_cycles: serial_cycles(arch, workload, level.activation_bits),
            weight_bits: level.weight_bits,
            activation_bits: level.activation_bits,
        },
    })
}

/// Cycles one bit-serial product takes at `bits` activation bits. With DPRed, each activation
/// group is streamed at its own detected width, and the lanes of a unit advance in lockstep,
/// so a column pass takes as long as the widest of the n = max(1, M / G) groups it covers:
/// E[max of n widths] from the measured width histogram (widths scaled from the histogram's
/// base precision to `bits`). Without a histogram, the mean footprint ratio r_a (optimistic).
fn serial_cycles(arch: &Arch, workload: &Workload, bits: u32) -> f64 {
    let p = &workload.precision;
    let hist = &p.group_width_fractions;
    if hist.is_empty() {
        return f64::from(bits) * p.dpred_activation_ratio;
    }
    let groups = (f64::from(arch.compute.multipliers_per_unit) / p.group_size as f64)
        .ceil()
        .max(1.0);
    let base = hist.len() as f64;
    let (mut below, mut expected) = (0.0f64, 0.0f64);
    for (i, &f) in hist.iter().enumerate() {
        let upto = (below + f).min(1.0);
        // P(max of n widths = w) = F(w)^n - F(w-1)^n.
        let p_max = upto.powf(groups) - below.powf(groups);
        expected += p_max * (i + 1) as f64;
        below = upto;
    }
    (expected / base * f64::from(bits)).max(1.0)
}

/// Lane rates of every level of the workload, computed once per evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LevelRates {
    rates: [LaneRate; MAX_PRECISION_LEVELS],
    len: usize,
}

impl LevelRates {
    pub(crate) fn new(arch: &Arch, workload: &Workload) -> Result<Self, AccelError> {
        let levels = &workload.precision.levels;
        if levels.len() > MAX_PRECISION_LEVELS {
            return Err(AccelError::Workload {
                workload: workload.name.clone(),
                message: format!(
                    "{} precision levels; at most {MAX_PRECISION_LEVELS} are supported",
                    levels.len()
                ),
            });
        }
        let unit = LaneRate {
            weight_par: 1,
            activation_par: 1,
            serial_cycles: 1.0,
            weight_bits: 1,
            activation_bits: 1,
        };
        let mut rates = [unit; MAX_PRECISION_LEVELS];
        for (slot, level) in rates.iter_mut().zip(levels) {
            *slot = lane_rate(arch, workload, *level)?;
        }
        Ok(LevelRates {
            rates,
            len: levels.len(),
        })
    }

    pub(crate) fn as_slice(&self) -> &[LaneRate] {
        &self.rates[..self.len]
    }
}

/// Cost of one matrix-vector product (all gates of all directions) on one core.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct MatVec {
    pub cycles: f64,
    /// Cycles the same products would take with every multiplier busy.
    pub ideal_cycles: f64,
    pub weight_sram_bits: f64,
    pub activation_sram_bits: f64,
}

/// `gate_blocks` matrices of `cells` rows by `cols` columns, times `vectors` vectors.
pub(crate) fn matvec(
    arch: &Arch,
    rate: &LaneRate,
    gate_blocks: u64,
    cells: u64,
    cols: u64,
    vectors: u64,
) -> MatVec {
    let units = u64::from(arch.compute.units);
    let mults = u64::from(arch.compute.multipliers_per_unit);
    let cols_per_cycle = mults * rate.weight_par;
    let col_passes = ceil_div(cols, cols_per_cycle);
    let reuse = vectors.min(rate.activation_par);
    let vector_passes = ceil_div(vectors, reuse);
    let rows = gate_blocks * cells;
    let (cycles, units_used) = match arch.dispatch.policy {
        DispatchPolicy::GatePerUnit => {
            let blocks_per_unit = ceil_div(gate_blocks, units);
            let row_cycles = (col_passes * vector_passes) as f64 * rate.serial_cycles;
            (
                (blocks_per_unit * cells) as f64 * row_cycles,
                units.min(gate_blocks),
            )
        }
        DispatchPolicy::Tiled => {
            let tile_rows = u64::from(arch.dispatch.tile_rows);
            let tiles = ceil_div(rows, tile_rows) * col_passes;
            let tile_cycles = (tile_rows * vector_passes) as f64 * rate.serial_cycles;
            (
                ceil_div(tiles, units) as f64 * tile_cycles,
                units.min(tiles),
            )
        }
    };
    let products = (rows * cols * vectors) as f64;
    let peak_per_cycle = (units * cols_per_cycle * reuse) as f64 / rate.serial_cycles;
    MatVec {
        cycles,
        ideal_cycles: products / peak_per_cycle,
        weight_sram_bits: (rows * cols * vector_passes) as f64 * f64::from(rate.weight_bits),
        activation_sram_bits: (units_used * cols * vectors) as f64
            * f64::from(rate.activation_bits),
    }
}
