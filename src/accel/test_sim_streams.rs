//! Multithreading with dynamic precision and streamed weights: the worst point of the
//! 200,000-point measurement of 2026-12-06 (docs/MODEL.md section 3, "Measured again").

use super::test_sim::cycles;
use super::test_support::*;
use super::*;

/// The point's architecture: 2 cores, 1 KiB of weight memory, 9.88 GB/s of DRAM.
fn two_cores() -> Arch {
    arch(
        "epur",
        &[
            "compute.units=2",
            "compute.multipliers_per_unit=2",
            "compute.multiplier_kind=bit-parallel",
            "dispatch.tile_rows=6",
            "dispatch.policy=gate-per-unit",
            "schedule.input_product=batched",
            "schedule.overlap_tail=true",
            "schedule.reconfig_cycles=6",
            "schedule.precision_switch_cycles=3",
            "compute.tail_lanes=1",
            "compute.tail_latency_cycles=5",
            "memory.sram_weight_kib=1.0",
            "memory.dram_gb_per_s=9.879928529887946",
            "multicore.cores=2",
            "multicore.mode=multithreading",
            "multicore.link_latency_cycles=7",
            "tracking.enabled=true",
        ],
    )
}

const SEQ: [usize; 15] = [0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];

fn shapes() -> Vec<LayerShape> {
    let l = |input_size, hidden_size, directions| LayerShape {
        input_size,
        hidden_size,
        directions,
    };
    vec![l(3, 38, 1), l(38, 36, 1), l(36, 4, 2)]
}

fn head() -> DenseShape {
    DenseShape {
        input_size: 8,
        output_size: 5,
        activation: true,
    }
}

/// The worst point of multithreading with dynamic precision and streamed weights over the
/// 200,000 points of 2026-12-06: layers 0 and 1 share core 0 and stream from 1 KiB, the
/// bidirectional layer 2 runs alone on core 1 after them (a segment of its own), levels
/// 001110000100000. Core 0's stream path charged every slow round (a 16-bit step on either
/// layer) its units' whole excess over the core's streams, 18,778 cycles in expectation. In the
/// simulator each layer's stream of step s waits only for that layer's step s-2, so the DRAM
/// share keeps its lead through a run of slow rounds: the run delays the streams by its excess
/// less one round of streams (13,439 cycles over the two runs here). The stream path now takes
/// the runs (`buffered_rounds.rs`, docs/MODEL.md section 4, "A shared core's slow runs"):
/// 74,444.0 -> 69,865.4 cycles against 68,779.8 simulated (+8.24% -> +1.58%).
#[test]
fn a_shared_cores_slow_runs_keep_its_streams_lead() {
    let (a, w) = (two_cores(), reduced(shapes(), Some(head()), 2, &SEQ));
    let (model, sim) = (cycles(&a, &w), simulated(&a, &w, &SEQ));
    assert!(
        (model - sim).abs() <= 0.02 * sim,
        "model {model} sim {sim} ({:+.2}%, 74,444.03 before the slow runs)",
        100.0 * (model - sim) / sim
    );
    // Core 0's segment alone (no head, layer 2 kept: it sets the DRAM share of each core).
    let w = reduced(shapes(), None, 2, &SEQ);
    let (model, sim) = (cycles(&a, &w), simulated(&a, &w, &SEQ));
    assert!(
        (model - sim).abs() <= 0.02 * sim,
        "no head: model {model} sim {sim} ({:+.2}%)",
        100.0 * (model - sim) / sim
    );
}
