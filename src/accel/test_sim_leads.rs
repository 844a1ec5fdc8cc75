//! A shared core's lead at the crossing (docs/MODEL.md section 4, "A shared core's lead"): the
//! 1,000,000-point worst points of streamed multithreading with dynamic precision, against
//! the event-level simulator on their own level sequence and on the mean of every sequence
//! that shares its statistics (the closed form sees only those).

use super::test_sim::cycles;
use super::test_support::*;
use super::*;

/// 3 layers on 2 cores, the first two sharing core 0 (units-bound rounds) and streaming their
/// weights, the third the pacer. The path walks core 0 and crosses into the pacer at the
/// first slow step D; in the wavefront core 0's round that ends its second layer's step D
/// also runs its first layer's step D+1, which the closed form took at the mean level. After a
/// slow step D the next is slow more often than the mean (the chain of consecutive levels), so
/// the crossing gains the first layer's expected excess over its mean busy cycles there.
/// Before -> after (closed form), simulated on the point's sequence and the mean over every
/// sequence sharing its statistics:
/// 1. T = 11, levels 00011000000, bit-serial, 1 KiB: 45,310.4 -> 45,804.1 cycles against
///    47,807.9 (-5.22% -> -4.19%).
/// 2. T = 9, levels 001100001, bit-parallel, 8 KiB, a head: 8,368.8 -> 8,459.5 against 8,829.8
///    (-5.22% -> -4.19%).
#[test]
fn a_shared_cores_lead_enters_the_pacer_slower() {
    let shape = |input_size, hidden_size| LayerShape {
        input_size,
        hidden_size,
        directions: 1,
    };
    let points = [
        (
            [
                "compute.units=6",
                "compute.multipliers_per_unit=6",
                "compute.multiplier_kind=bit-serial",
                "compute.tail_lanes=5",
                "compute.tail_latency_cycles=21",
                "dispatch.tile_rows=5",
                "schedule.reconfig_cycles=5",
                "schedule.precision_switch_cycles=8",
                "memory.sram_weight_kib=1.0",
                "memory.dram_gb_per_s=12.989460762551998",
                "multicore.link_latency_cycles=17",
            ],
            vec![shape(8, 27), shape(27, 7), shape(7, 33)],
            None,
            &[0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0][..],
            45310.407912843264,
        ),
        (
            [
                "compute.units=5",
                "compute.multipliers_per_unit=2",
                "compute.multiplier_kind=bit-parallel",
                "compute.tail_lanes=3",
                "compute.tail_latency_cycles=14",
                "dispatch.tile_rows=5",
                "schedule.reconfig_cycles=5",
                "schedule.precision_switch_cycles=3",
                "memory.sram_weight_kib=8.0",
                "memory.dram_gb_per_s=24.116743128594045",
                "multicore.link_latency_cycles=22",
            ],
            vec![shape(29, 20), shape(20, 10), shape(10, 32)],
            Some(DenseShape {
                input_size: 32,
                output_size: 19,
                activation: false,
            }),
            &[0, 0, 1, 1, 0, 0, 0, 0, 1][..],
            8368.840863263158,
        ),
    ];
    for (i, (sets, layers, head, seq, before)) in points.into_iter().enumerate() {
        let mut all = sets.to_vec();
        all.extend([
            "dispatch.policy=tiled",
            "schedule.input_product=per-step",
            "schedule.overlap_tail=true",
            "multicore.cores=2",
            "multicore.mode=multithreading",
            "tracking.enabled=true",
        ]);
        let a = arch("epur", &all);
        let w = reduced(layers, head, 2, seq);
        let model = cycles(&a, &w);
        let own = simulated(&a, &w, seq);
        let all = every_sequence_like(seq);
        let mean = all.iter().map(|s| simulated(&a, &w, s)).sum::<f64>() / all.len() as f64;
        println!(
            "point {}: model {model:.1} (before {before:.1}) sim {own:.1} ({:+.2}%), mean over {} sequences {mean:.1} ({:+.2}%)",
            i + 1,
            100.0 * (model / own - 1.0),
            all.len(),
            100.0 * (model / mean - 1.0)
        );
        assert!(
            model > before + 1.0 && (model - own).abs() <= 0.045 * own,
            "point {}: model {model} sim {own} ({:+.2}%; before this rule {before})",
            i + 1,
            100.0 * (model / own - 1.0)
        );
        assert!(
            (model - mean).abs() <= 0.04 * mean,
            "point {}: model {model}, mean over its sequences {mean}",
            i + 1
        );
    }
}
