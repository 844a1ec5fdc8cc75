//! Dynamic pipelines whose layers have their own precision mixes (per-layer fractions): the
//! closed form against the simulator on the level sequences `realise_levels` draws, and more
//! weight memory never slower (docs/MODEL.md section 4, "Per-layer fractions").

use super::test_sim::{cycles, with};
use super::test_support::*;
use super::*;

/// fx8/fx16 with per-layer fractions, the common mix their mean.
fn per_layer(
    layers: &[[f64; 2]],
    switch_rate: f64,
    first: [f64; 2],
    last: [f64; 2],
) -> PrecisionProfile {
    let n = layers.len() as f64;
    let low = layers.iter().map(|f| f[0]).sum::<f64>() / n;
    let mut p = two_level(8, 16, low)
        .with_switch_rate(switch_rate)
        .with_edge_steps(first.to_vec(), last.to_vec());
    p.layer_step_fraction = layers.iter().map(|f| f.to_vec()).collect();
    p
}

fn layers(shapes: &[(usize, usize)]) -> Vec<LayerShape> {
    (shapes.iter())
        .map(|&(input_size, hidden_size)| LayerShape {
            input_size,
            hidden_size,
            directions: 1,
        })
        .collect()
}

/// An outside tester's point (2 cores, 4 layers, streamed weights): the third layer, on core
/// 1 with the fourth, runs 1 of its 15 steps at fx16, the first two always fx16, the last
/// always fx8. Core 1's stream path took its slow rounds (`crossing::slow_rounds`) at the
/// common mix, about half the steps at fx16, and so the third layer's fx16 step on half its
/// rounds: +51.7% (+57.8% with the fourth layer's 1 of 15 too). Each layer's figures are now
/// put on the common levels by its own mix (`multithread/levels.rs`).
#[test]
fn a_layers_rare_slow_step_is_not_the_common_mixes() {
    let a = arch(
        "sharp",
        &[
            "compute.multipliers_per_unit=1",
            "memory.sram_weight_kib=0.25",
            "multicore.cores=2",
            "multicore.mode=multithreading",
            "schedule.reconfig_cycles=0",
            "dispatch.tile_rows=1",
            "compute.multiplier_kind=bit-parallel",
            "tracking.enabled=true",
            "schedule.precision_switch_cycles=0",
        ],
    );
    let rare = [14.0 / 15.0, 1.0 / 15.0];
    for fourth in [[1.0, 0.0], rare] {
        let mixes = [[0.0, 1.0], [0.0, 1.0], rare, fourth];
        let w = Workload {
            name: "per-layer".into(),
            layers: layers(&[(2, 33), (33, 17), (17, 65), (65, 3)]),
            head: HeadShape::default(),
            seq_len: 15,
            batch: 2,
            precision: per_layer(&mixes, 0.1, [0.0, 1.0], [0.5, 0.5]),
        };
        let (levels, realised) = realise_levels(&w).expect("levels realise");
        let w = Workload {
            precision: realised,
            ..w
        };
        let model = cycles(&a, &w);
        let sim = simulate(&a, &w, &levels).expect("point simulates").cycles;
        assert!(
            (model - sim).abs() <= 0.06 * sim,
            "model {model} sim {sim} ({:+.2}%)",
            100.0 * (model / sim - 1.0)
        );
    }
}

/// An outside tester's point (3 cores, one layer each, dynamic precision): the first two
/// layers always at fx16, the last at fx8 on 11 steps of 12. The path out of core 0 crossed
/// into the later cores at a slow step of the common mix, where the second layer's fx8
/// figures (0: it never runs fx8) made the fast steps free, and its stream floor, which more
/// weight memory removes, was all that priced them: 81,792 -> 82,305 cycles from 2 to 16 KiB
/// (the simulator flat at 81,528.9).
#[test]
fn more_sram_never_lengthens_a_pipeline_of_per_layer_mixes() {
    let a = arch(
        "sharp",
        &[
            "tracking.enabled=true",
            "memory.sram_weight_kib=2",
            "compute.tail_lanes=16",
            "schedule.input_product=per-step",
            "schedule.overlap_tail=true",
            "dispatch.tile_rows=3",
            "compute.multiplier_kind=bit-serial",
            "schedule.precision_switch_cycles=0",
            "multicore.mode=multithreading",
            "multicore.cores=3",
        ],
    );
    let mixes = [[0.0, 1.0], [0.0, 1.0], [11.0 / 12.0, 1.0 / 12.0]];
    let w = Workload {
        name: "per-layer".into(),
        layers: layers(&[(11, 37), (37, 13), (13, 2)]),
        head: HeadShape::default(),
        seq_len: 12,
        batch: 3,
        precision: per_layer(&mixes, 0.01, [0.0, 1.0], [1.0 / 3.0, 2.0 / 3.0]),
    };
    let mut last = cycles(&a, &w);
    for kib in [4.0, 8.0, 16.0] {
        let more = with(&a, |b| b.memory.sram_weight_kib = kib);
        let now = cycles(&more, &w);
        assert!(now <= last * (1.0 + 1e-12), "{kib} KiB: {now} > {last}");
        last = now;
    }
}
