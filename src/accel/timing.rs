//! Cycles of one LSTM layer on one core: multiplier throughput per precision level, the two
//! matrix-vector products (input W x_t, recurrent U h_{t-1}) under the dispatch policy
//! (E-PUR gate-per-unit or LSTM-Sharp tiles), the element-wise tail, the schedule that may hide
//! that tail behind the next step's input product, and the DRAM bound when weights do not fit
//! on chip. Everything here is closed form and allocation-free; equations are in docs/MODEL.md.

use super::arch::Arch;
use super::error::AccelError;
use super::spec::{DispatchPolicy, InputProduct, MultiplierKind};
use super::workload::{LayerShape, PrecisionLevel, Workload};

/// LSTM gates per direction (input, forget, cell, output).
pub(crate) const GATES: u64 = 4;

/// Most precision levels a workload may mix (kept small so rates live on the stack).
pub const MAX_PRECISION_LEVELS: usize = 8;

/// ceil(a / b) in floating point: exact while a + b < 2^52 (far above any layer size here),
/// and several times cheaper than 64-bit integer division on the hot path.
#[inline]
pub(crate) fn ceil_div(a: u64, b: u64) -> u64 {
    (a as f64 / b as f64).ceil() as u64
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
            // DPRed: each activation group runs at its own detected width, so the mean
            // serial time shrinks by the measured activation footprint ratio.
            serial_cycles: f64::from(level.activation_bits)
                * workload.precision.dpred_activation_ratio,
            weight_bits: level.weight_bits,
            activation_bits: level.activation_bits,
        },
    })
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

/// How a layer is run on a core, fixed by the multicore mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LayerContext {
    /// Cores that split this layer's cells (helper mode), else 1.
    pub split: u64,
    pub input_product: InputProduct,
    /// DRAM bytes per cycle this core can count on.
    pub dram_bytes_per_cycle: f64,
    /// Whether the layer's output sequence must be kept for a later layer on the same core.
    pub keeps_output: bool,
    pub first_layer: bool,
    pub last_layer: bool,
}

/// One layer on one core, level-weighted over the workload's precision mix.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LayerCost {
    /// Mean cycles of one step (including a DRAM bound), as the schedule exposes them.
    pub step_cycles: f64,
    /// Cycles paid once per layer (batched input pass, first input product, reconfiguration).
    pub once_cycles: f64,
    /// Total cycles for the layer on its own: max(T*step + once, DRAM time).
    pub layer_cycles: f64,
    /// Of `layer_cycles`, those in which DRAM bandwidth is the bound.
    pub dram_bound_cycles: f64,
    pub ideal_cycles: f64,
    pub dram_bytes: f64,
    /// h bytes this core sends to the other helpers per step.
    pub exchange_bytes_per_step: f64,
    pub weight_sram_bits: f64,
    pub activation_sram_bits: f64,
    /// Activation width of the widest level, for traffic between layers and cores.
    pub activation_bytes_per_value: f64,
}

/// What makes two layers' per-step costs identical.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CacheKey {
    shape: LayerShape,
    split: u64,
    input_product: InputProduct,
    dram_bytes_per_cycle: f64,
}

/// Level-weighted per-step sums of one layer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LevelSums {
    step_cycles: f64,
    once_cycles: f64,
    ideal_cycles: f64,
    weight_sram_bits: f64,
    activation_sram_bits: f64,
    bound_steps: f64,
}

/// Cycles and traffic of layer `index` for one core's share; `cache` carries the previous
/// layer's per-step costs between calls (start with `None`).
pub(crate) fn layer_cost(
    arch: &Arch,
    workload: &Workload,
    rates: &LevelRates,
    index: usize,
    shape: &LayerShape,
    ctx: &LayerContext,
    cache: &mut Option<(CacheKey, usize, LevelSums)>,
) -> LayerCost {
    let p = &workload.precision;
    let t = workload.seq_len as f64;
    let batch = workload.batch as u64;
    let dirs = shape.directions as u64;
    let blocks = GATES * dirs;
    let cells = ceil_div(shape.hidden_size as u64, ctx.split);
    let hidden = shape.hidden_size as u64;
    let input = shape.input_size as u64;
    let reconfig = 2.0 * f64::from(arch.schedule.reconfig_cycles);
    let tail = ceil_div(batch * dirs * cells, u64::from(arch.compute.tail_lanes)) as f64
        + f64::from(arch.compute.tail_latency_cycles);

    let widest = p.widest();
    let act_bytes = f64::from(widest.activation_bits) / 8.0 * p.dpred_activation_ratio;
    let exchange_bytes = if ctx.split > 1 {
        (batch * dirs * cells) as f64 * act_bytes
    } else {
        0.0
    };
    let exchange = if ctx.split > 1 {
        // Each core receives the other cores' slices of h_t before the next U h product.
        f64::from(arch.multicore.link_latency_cycles)
            + exchange_bytes * (ctx.split - 1) as f64 / arch.link_bytes_per_cycle()
    } else {
        0.0
    };

    // Weights are stored at the widest level, shrunk by DPRed; the recurrent matrix is kept
    // on chip first because it is read every step.
    let weight_bytes = f64::from(widest.weight_bits) / 8.0 * p.dpred_weight_ratio;
    let u_bytes = (blocks * cells * hidden) as f64 * weight_bytes;
    let w_bytes = (blocks * cells * input) as f64 * weight_bytes;
    let sram = arch.memory.sram_weight_kib * 1024.0;
    let u_resident = u_bytes.min(sram);
    let w_resident = w_bytes.min(sram - u_resident);
    let per_step = ctx.input_product == InputProduct::PerStep;
    let streamed_per_step =
        (u_bytes - u_resident) + if per_step { w_bytes - w_resident } else { 0.0 };
    let mut dram_bytes = u_resident + w_resident + t * streamed_per_step;
    if !per_step {
        dram_bytes += w_bytes - w_resident;
    }
    let seq_bytes = t * (batch * dirs * cells) as f64 * act_bytes;
    if ctx.first_layer {
        dram_bytes += t * (batch * input) as f64 * act_bytes / ctx.split as f64;
    }
    if ctx.last_layer {
        dram_bytes += seq_bytes;
    } else if ctx.keeps_output && seq_bytes > arch.memory.sram_activation_kib * 1024.0 {
        // The output sequence spills: written now, read back by the next layer.
        dram_bytes += 2.0 * seq_bytes;
    }
    let bpc = ctx.dram_bytes_per_cycle;
    let stream_cycles = streamed_per_step / bpc;

    // Consecutive identical layers (the common case: stacks of equal layers) share their
    // per-step costs; only the activation traffic of the first and last layer differs.
    let key = CacheKey {
        shape: *shape,
        split: ctx.split,
        input_product: ctx.input_product,
        dram_bytes_per_cycle: bpc,
    };
    let sums = match cache {
        Some((k, prev_index, sums))
            if *k == key && p.fractions_for(*prev_index) == p.fractions_for(index) =>
        {
            *sums
        }
        _ => {
            let mut sums = LevelSums::default();
            for (rate, &frac) in rates.as_slice().iter().zip(p.fractions_for(index)) {
                if frac == 0.0 {
                    continue;
                }
                let rate = *rate;
                let rec = matvec(arch, &rate, blocks, cells, hidden, batch);
                let (input_mv, once) = if per_step {
                    let mv = matvec(arch, &rate, blocks, cells, input, batch);
                    let once = if arch.schedule.overlap_tail {
                        mv.cycles
                    } else {
                        0.0
                    };
                    (mv, once)
                } else {
                    // Batched over all steps: the level's rate applies to its share of the steps.
                    let mv = matvec(
                        arch,
                        &rate,
                        blocks,
                        cells,
                        input,
                        batch * workload.seq_len as u64,
                    );
                    (mv, mv.cycles + reconfig)
                };
                let post = tail + exchange;
                let compute_step = if !per_step {
                    rec.cycles + post
                } else if arch.schedule.overlap_tail {
                    rec.cycles + post.max(input_mv.cycles + reconfig)
                } else {
                    rec.cycles + post + input_mv.cycles + reconfig
                };
                let step = compute_step.max(stream_cycles);
                if stream_cycles > compute_step {
                    sums.bound_steps += frac * t;
                }
                let steps = frac * t;
                sums.step_cycles += frac * step;
                sums.once_cycles += frac * once;
                let (in_ideal, in_w_bits, in_a_bits) = if per_step {
                    (
                        steps * input_mv.ideal_cycles,
                        steps * input_mv.weight_sram_bits,
                        steps * input_mv.activation_sram_bits,
                    )
                } else {
                    (
                        frac * input_mv.ideal_cycles,
                        frac * input_mv.weight_sram_bits,
                        frac * input_mv.activation_sram_bits,
                    )
                };
                sums.ideal_cycles += steps * rec.ideal_cycles + in_ideal;
                sums.weight_sram_bits += steps * rec.weight_sram_bits + in_w_bits;
                // Plus writing h_t back for the next step.
                sums.activation_sram_bits += steps
                    * (rec.activation_sram_bits
                        + (batch * dirs * cells) as f64 * f64::from(rate.activation_bits))
                    + in_a_bits;
            }
            *cache = Some((key, index, sums));
            sums
        }
    };
    let mut cost = LayerCost {
        dram_bytes,
        exchange_bytes_per_step: exchange_bytes,
        activation_bytes_per_value: act_bytes,
        step_cycles: sums.step_cycles,
        once_cycles: sums.once_cycles,
        ideal_cycles: sums.ideal_cycles,
        weight_sram_bits: sums.weight_sram_bits,
        activation_sram_bits: sums.activation_sram_bits,
        ..LayerCost::default()
    };
    let compute_total = t * cost.step_cycles + cost.once_cycles;
    let dram_cycles = dram_bytes / bpc;
    cost.layer_cycles = compute_total.max(dram_cycles);
    cost.dram_bound_cycles = if dram_cycles > compute_total {
        cost.layer_cycles
    } else {
        sums.bound_steps * stream_cycles
    };
    cost
}
