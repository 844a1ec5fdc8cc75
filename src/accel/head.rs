//! The output head after the last layer: each of its dense layers in turn (weights loaded,
//! a product over all B*T vectors, or B for a head on one vector per sequence, then its
//! activation on the tail lanes), on one core's share: docs/MODEL.md section 3, "Head".

use super::arch::Arch;
use super::energy::mac_pj;
use super::timing::{ceil_div, matvec, LevelRates};
use super::workload::{DenseShape, Workload};

/// The output head after the last layer, on one core's share (`split` cores divide each dense
/// layer's outputs): per layer, its weights are loaded once (exposed), the dense product is
/// batched over all its vectors (B*T, or B) at the widest level, then its activation runs on
/// the tail lanes. Layer after layer, with no overlap between them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct HeadCost {
    pub cycles: f64,
    /// Loading the first dense layer's weights (of `cycles`), after the last layer ends.
    pub load_cycles: f64,
    pub ideal_cycles: f64,
    pub dram_bytes: f64,
    pub weight_sram_bits: f64,
    pub activation_sram_bits: f64,
    pub mac_pj: f64,
    pub activation_elements: f64,
}

/// All of the head's dense layers, one after another (zero without a head).
pub(crate) fn head_cost(
    arch: &Arch,
    workload: &Workload,
    rates: &LevelRates,
    split: u64,
    bpc: f64,
) -> HeadCost {
    let mut total = HeadCost::default();
    let layers = workload.head.layers.len();
    for (i, dense) in workload.head.layers.iter().enumerate() {
        let one = dense_cost(arch, workload, rates, dense, split, bpc, i + 1 == layers);
        total.cycles += one.cycles;
        if i == 0 {
            // What the reconfiguration out of the last recurrent product may overlap.
            total.load_cycles = one.load_cycles;
        }
        total.ideal_cycles += one.ideal_cycles;
        total.dram_bytes += one.dram_bytes;
        total.weight_sram_bits += one.weight_sram_bits;
        total.activation_sram_bits += one.activation_sram_bits;
        total.mac_pj += one.mac_pj;
        total.activation_elements += one.activation_elements;
    }
    total
}

/// One dense layer of the head, after the previous one (or the last layer) ends: its weights
/// loaded, its product, its activation. Only the `last` layer's outputs go to DRAM; the
/// others stay on chip for the next layer (an assumption, docs/MODEL.md section 3, "Head").
fn dense_cost(
    arch: &Arch,
    workload: &Workload,
    rates: &LevelRates,
    dense: &DenseShape,
    split: u64,
    bpc: f64,
    last: bool,
) -> HeadCost {
    let p = &workload.precision;
    let widest = p.widest();
    let rate = &rates.as_slice()[p.widest_index()];
    let outputs = ceil_div(dense.output_size as u64, split);
    let vectors = workload.head.vectors(workload.batch, workload.seq_len);
    let mv = matvec(arch, rate, 1, outputs, dense.input_size as u64, vectors);
    let weight_bytes = (outputs * dense.input_size as u64) as f64 * f64::from(widest.weight_bits)
        / 8.0
        * p.dpred_weight_ratio;
    let act_bytes = f64::from(widest.activation_bits) / 8.0 * p.dpred_activation_ratio;
    let elements = (outputs * vectors) as f64;
    let activation = if dense.activation {
        ceil_div(outputs * vectors, u64::from(arch.compute.tail_lanes)) as f64
            + f64::from(arch.compute.tail_latency_cycles)
    } else {
        0.0
    };
    HeadCost {
        // The reconfiguration from the last recurrent product overlaps the last tail and the
        // weight load; the caller adds what they leave exposed (`reconfig_exposed`).
        cycles: weight_bytes / bpc + mv.cycles + activation,
        load_cycles: weight_bytes / bpc,
        ideal_cycles: mv.ideal_cycles,
        dram_bytes: weight_bytes + if last { elements * act_bytes } else { 0.0 },
        weight_sram_bits: mv.weight_sram_bits,
        activation_sram_bits: mv.activation_sram_bits,
        mac_pj: (outputs * dense.input_size as u64 * vectors) as f64 * mac_pj(arch, rate),
        activation_elements: if dense.activation { elements } else { 0.0 },
    }
}
