//! The closed form against the event-level simulator on thousands of random small design
//! points (within 5% in cycles, exactly where docs/MODEL.md says the closed form is exact), and
//! the invariants of the causal schedule: overlap never slower, multithreading never above the
//! dependency bound, more resources never worse, lower precision never slower or costlier.

use proptest::prelude::*;

use super::spec::{InputProduct, MulticoreMode};
use super::test_support::*;
use super::*;

fn small_arch() -> impl Strategy<Value = Arch> {
    (
        (1i64..7, 1i64..9, 0usize..3, 1i64..9, any::<bool>()),
        (
            0usize..3,
            any::<bool>(),
            0i64..7,
            0i64..9,
            1i64..9,
            0i64..25,
        ),
        (0usize..4, 1.0f64..60.0, 1i64..5, 0usize..3, 0i64..40),
    )
        .prop_map(
            |(
                (units, mults, kind, tile_rows, tiled),
                (schedule, overlap, reconfig, switch, lanes, latency),
                (sram, dram, cores, mode, link_latency),
            )| {
                let kinds = ["fixed", "bit-parallel", "bit-serial"];
                let schedules = ["per-step", "per-step", "batched"];
                let srams = ["1.0", "8.0", "64.0", "8192.0"];
                let modes = ["multiprogramming", "multithreading", "helper"];
                let sets = [
                    format!("compute.units={units}"),
                    format!("compute.multipliers_per_unit={mults}"),
                    format!("compute.multiplier_kind={}", kinds[kind]),
                    format!("dispatch.tile_rows={tile_rows}"),
                    format!(
                        "dispatch.policy={}",
                        if tiled { "tiled" } else { "gate-per-unit" }
                    ),
                    format!("schedule.input_product={}", schedules[schedule]),
                    format!("schedule.overlap_tail={overlap}"),
                    format!("schedule.reconfig_cycles={reconfig}"),
                    format!("schedule.precision_switch_cycles={switch}"),
                    format!("compute.tail_lanes={lanes}"),
                    format!("compute.tail_latency_cycles={latency}"),
                    format!("memory.sram_weight_kib={}", srams[sram]),
                    format!("memory.dram_gb_per_s={dram}"),
                    format!("multicore.cores={cores}"),
                    format!("multicore.mode={}", modes[mode]),
                    format!("multicore.link_latency_cycles={link_latency}"),
                    "tracking.enabled=true".to_string(),
                ];
                let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
                arch("epur", &refs)
            },
        )
}

/// A small workload and one level sequence used by every layer (dynamic: levels 8 and 16; the
/// profile is the sequence's: its fractions, switch rate and first and last levels).
fn small_workload() -> impl Strategy<Value = (Workload, Vec<Vec<usize>>)> {
    (
        prop::collection::vec((1usize..3, 1usize..40), 1..4),
        1usize..40,
        8usize..17,
        1usize..3,
        prop::option::of((1usize..40, any::<bool>())),
        prop::option::of(prop::collection::vec(0usize..2, 16)),
    )
        .prop_map(|(shapes, input, t, batch, head, seq)| {
            let mut layers = Vec::new();
            let mut width = input;
            for (dirs, hidden) in shapes {
                layers.push(LayerShape {
                    input_size: width,
                    hidden_size: hidden,
                    directions: dirs,
                });
                width = hidden * dirs;
            }
            let (precision, seq) = match seq {
                None => (PrecisionProfile::fixed(16, 16), vec![0; t]),
                Some(s) => {
                    let s = s[..t].to_vec();
                    let low = s.iter().filter(|&&k| k == 0).count() as f64 / t as f64;
                    let switches = s.windows(2).filter(|w| w[0] != w[1]).count();
                    // Every layer runs this sequence: its first and last steps' levels are
                    // known for sure (one-hot fractions).
                    let one_hot = |k: usize| (0..2).map(|j| f64::from(u8::from(j == k))).collect();
                    let p = two_level(8, 16, low)
                        .with_switch_rate(switches as f64 / (t - 1) as f64)
                        .with_edge_steps(one_hot(s[0]), one_hot(s[t - 1]));
                    (p, s)
                }
            };
            let n = layers.len();
            let w = Workload {
                name: "random".into(),
                layers,
                head: head.map(|(outputs, activation)| HeadShape {
                    input_size: width,
                    output_size: outputs,
                    activation,
                }),
                seq_len: t,
                batch,
                precision,
            };
            (w, vec![seq; n])
        })
}

/// Where docs/MODEL.md says the closed form is exact: one core's schedule (any multicore
/// mode but multithreading), nothing streamed after step 0, not bound by activation
/// traffic, and no choice between overlapping and waiting (fixed precision or no overlap).
/// The reconfiguration into a layer's (or the head's) first input product is exact too: the
/// closed form charges what the previous layer's last tail and the weight load leave of it
/// (docs/MODEL.md section 3, "Layer boundaries"). Before, this claim required each load to
/// cover rho instead, and sized the loads as whole layers, not a helper's slice: a helper
/// point whose head slice loaded in under rho was claimed exact and missed by 1.5e-3
/// (`exposed_reconfiguration_before_the_head_is_exact`).
fn claims_exact(a: &Arch, w: &Workload, point: &DesignPoint) -> bool {
    let mt = a.multicore.cores > 1 && a.multicore.mode == MulticoreMode::Multithreading;
    let overlapped_dynamic = w.precision.is_dynamic()
        && a.schedule.overlap_tail
        && a.schedule.input_product == InputProduct::PerStep;
    !mt && fits(a, w)
        && !w.precision.is_dynamic()
        && !overlapped_dynamic
        && point.dram_bytes / a.dram_bytes_per_cycle() < 0.5 * point.cycles
}

/// Whether every layer's weights (of one core's share) fit the weight memory: nothing streams.
fn fits(a: &Arch, w: &Workload) -> bool {
    let split = if a.multicore.cores > 1 && a.multicore.mode == MulticoreMode::Helper {
        a.multicore.cores as usize
    } else {
        1
    };
    w.layers.iter().all(|l| {
        let cells = l.hidden_size.div_ceil(split);
        (8 * l.directions * cells * (l.hidden_size + l.input_size)) as f64
            <= a.memory.sram_weight_kib * 1024.0
    })
}

/// Which tolerance of [`TOLERANCE`] a point gets (docs/MODEL.md section 3, "Exact or bound").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// One core's schedule, weights resident, no overlap-or-wait choice: 5%.
    Resident = 0,
    /// Dynamic precision choosing between overlapping and waiting (expected step times in the
    /// closed form, the actual level sequence in the simulator).
    OverlappedDynamic = 1,
    /// Weights streamed after step 0 (the first and last streams of a layer approximated).
    Streamed = 2,
    /// Multithreading at fixed precision, weights resident (the pipeline's fill, steady
    /// rounds, drain and segment barriers, docs/MODEL.md section 4).
    Multithreading = 3,
    /// Multithreading with dynamic precision: the pipeline's longest path runs over the actual
    /// step times of the level sequence (it crosses from layer to layer at slow steps), the
    /// closed form sees the fractions and the switch rate (the expected crossing gain);
    /// with `overlap_tail`, also the overlap-or-wait choice.
    MultithreadingDynamic = 4,
    /// Multithreading at fixed precision with weights streamed after step 0.
    MultithreadingStreamed = 5,
    /// Multithreading with dynamic precision and weights streamed after step 0 (the crossing
    /// gain of a stage paced by its streams, docs/MODEL.md section 4).
    MultithreadingStreamedDynamic = 6,
}

/// The tolerance of each [`Class`], at or above the worst case measured over 200,000 random
/// points by `worst_case_per_class` (2026-12-02, the random profiles carrying their sequence's
/// first and last levels: resident and overlapped dynamic exact to rounding, streamed 2.32%,
/// multithreading 3.09%, multithreading with dynamic precision 4.94%, multithreading with
/// streamed weights 7.02%; the previous round, without the first and last steps and the
/// switches behind streams: 4.27%, 4.80%, 3.09%, 4.94%, 7.32%: docs/MODEL.md section 3).
/// Streamed multithreading gets 10%: a fresh random run found a point at -9.38% (kept in
/// proptest-regressions). Over 1,000,000 points the one-core classes hold (streamed 3.07%)
/// and multithreading goes further: 6.19% with dynamic precision, 10.30% with streamed
/// weights (docs/MODEL.md section 3, "Beyond 200,000 points").
const TOLERANCE: [f64; 7] = [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.10];

fn class(a: &Arch, w: &Workload) -> Class {
    let mt = a.multicore.cores > 1 && a.multicore.mode == MulticoreMode::Multithreading;
    // Multithreading computes input products per step whatever the arch file says.
    let overlapped_dynamic = w.precision.is_dynamic()
        && a.schedule.overlap_tail
        && (a.schedule.input_product == InputProduct::PerStep || mt);
    if mt && !fits(a, w) && w.precision.is_dynamic() {
        Class::MultithreadingStreamedDynamic
    } else if mt && !fits(a, w) {
        Class::MultithreadingStreamed
    } else if mt && w.precision.is_dynamic() {
        Class::MultithreadingDynamic
    } else if mt {
        Class::Multithreading
    } else if !fits(a, w) {
        Class::Streamed
    } else if overlapped_dynamic {
        Class::OverlappedDynamic
    } else {
        Class::Resident
    }
}

/// The worst closed-form error per class over many random points, printed for docs/MODEL.md:
/// `cargo test --release --lib worst_case_per_class -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement (about a minute in release), quoted in docs/MODEL.md"]
fn worst_case_per_class() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let n: usize = std::env::var("POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut runner = TestRunner::deterministic();
    let strategy = (small_arch(), small_workload());
    let (mut worst, mut count) = ([0.0f64; 7], [0usize; 7]);
    // Signed extremes: the closed form below (low) and above (high) the simulator.
    let (mut low, mut high) = ([0.0f64; 7], [0.0f64; 7]);
    let mut errors: [Vec<f64>; 7] = Default::default();
    let mut exact_worst = 0.0f64;
    let mut examples: [Option<String>; 8] = Default::default();
    // The same points with the first and last steps' fractions left unknown (the closed form
    // before they were used): the worst per class, and the worst point with `SHOW`.
    let mut unknown_worst = [0.0f64; 7];
    let mut unknown_examples: [Option<String>; 7] = Default::default();
    for _ in 0..n {
        let (a, (w, levels)) = strategy.new_tree(&mut runner).expect("a point").current();
        let point = evaluate(&a, &w).expect("point evaluates");
        let sim = simulate(&a, &w, &levels).expect("point simulates");
        let signed = (point.cycles - sim.cycles) / sim.cycles;
        let rel = signed.abs();
        let c = class(&a, &w) as usize;
        let mut unknown = w.clone();
        unknown.precision = unknown.precision.with_edge_steps(Vec::new(), Vec::new());
        let before = evaluate(&a, &unknown).expect("point evaluates").cycles;
        let rel_before = ((before - sim.cycles) / sim.cycles).abs();
        if rel_before > unknown_worst[c] {
            unknown_worst[c] = rel_before;
            unknown_examples[c] = Some(format!(
                "model {before} sim {} (first/last steps unknown)\n{a:?}\n{w:?}\n{levels:?}",
                sim.cycles
            ));
        }
        low[c] = low[c].min(signed);
        high[c] = high[c].max(signed);
        let show = || {
            format!(
                "model {} sim {}\n{a:?}\n{w:?}\n{levels:?}",
                point.cycles, sim.cycles
            )
        };
        if rel > worst[c] {
            examples[c] = Some(show());
        }
        worst[c] = worst[c].max(rel);
        count[c] += 1;
        errors[c].push(rel);
        if claims_exact(&a, &w, &point) && rel > exact_worst {
            exact_worst = rel;
            examples[7] = Some(show());
        }
    }
    for (c, name) in [
        "resident",
        "overlapped dynamic",
        "streamed",
        "multithreading",
        "multithreading, dynamic precision",
        "multithreading, weights streamed",
        "multithreading, weights streamed, dynamic precision",
    ]
    .iter()
    .enumerate()
    {
        let e = &mut errors[c];
        e.sort_by(f64::total_cmp);
        let at = |q: f64| {
            100.0
                * e.get(((e.len() as f64 * q) as usize).min(e.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(0.0)
        };
        println!(
            "{name}: {} points, median {:.2}%, 99th percentile {:.2}%, worst {:.2}% ({:+.2}% .. {:+.2}%, tolerance {:.0}%; first/last steps unknown: worst {:.2}%)",
            count[c],
            at(0.5),
            at(0.99),
            100.0 * worst[c],
            100.0 * low[c],
            100.0 * high[c],
            100.0 * TOLERANCE[c],
            100.0 * unknown_worst[c]
        );
    }
    println!("claimed exact: worst {exact_worst:e}");
    if std::env::var("SHOW").is_ok() {
        for e in examples.iter().chain(&unknown_examples).flatten() {
            println!("---\n{e}");
        }
    }
}

/// How often one more resource makes the closed form slower, over many random points:
/// `POINTS=100000 cargo test --release --lib monotonicity_violations -- --ignored --nocapture`
/// (quoted in docs/MODEL.md section 9; `SHOW=1` prints the largest of each kind).
#[test]
#[ignore = "a measurement, quoted in docs/MODEL.md"]
fn monotonicity_violations() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let n: usize = std::env::var("POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (mut count, mut worst) = ([0usize; 6], [0.0f64; 6]);
    let mut examples: [Option<String>; 6] = Default::default();
    let mut runner = TestRunner::deterministic();
    let strategy = (small_arch(), small_workload());
    for _ in 0..n {
        let (a, (w, _)) = strategy.new_tree(&mut runner).expect("a point").current();
        let latency = |x: &Arch| evaluate(x, &w).expect("point evaluates").latency_us;
        let base = latency(&a);
        let more = more_resources(&a);
        for (i, m) in more.iter().enumerate() {
            let worse = latency(m) / base - 1.0;
            if worse > 1e-9 {
                count[i] += 1;
                if worse > worst[i] {
                    worst[i] = worse;
                    examples[i] = Some(format!("{a:?}\n{w:?}"));
                }
            }
        }
    }
    for i in 0..6 {
        println!(
            "{}: {} of {n} points slower, worst {:.3}%",
            MORE_RESOURCES[i],
            count[i],
            100.0 * worst[i]
        );
    }
    if std::env::var("SHOW").is_ok() {
        for e in examples.iter().flatten() {
            println!("---\n{e}");
        }
    }
}

proptest! {
    // A fixed seed: the same 3,000 random points on every run. The tolerances are measured
    // bounds over 200,000 points, not proven ones (over 1,000,000 points the tails go further:
    // docs/MODEL.md section 3), so a fresh draw could fail CI on a rare tail point; such points
    // belong in `worst_case_per_class` and the regressions file (run first), not in luck.
    #![proptest_config(ProptestConfig {
        cases: 3000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0010),
        ..ProptestConfig::default()
    })]

    #[test]
    fn closed_form_within_tolerance_of_simulator(a in small_arch(), (w, levels) in small_workload()) {
        let point = evaluate(&a, &w).expect("point evaluates");
        let sim = simulate(&a, &w, &levels).expect("point simulates");
        let rel = (point.cycles - sim.cycles) / sim.cycles;
        if claims_exact(&a, &w, &point) {
            prop_assert!(rel.abs() < 1e-9, "claimed exact: model {} sim {}", point.cycles, sim.cycles);
        }
        let tolerance = TOLERANCE[class(&a, &w) as usize];
        prop_assert!(rel.abs() <= tolerance, "model {} sim {} ({:+.2}%)", point.cycles, sim.cycles, 100.0 * rel);
        prop_assert!((point.dram_bytes - sim.dram_bytes).abs() <= 1e-6 * sim.dram_bytes.max(1.0));
    }
}

/// The exact-claim miss of the 1,000,000-point measurement, reduced: 3 helpers, one
/// layer of 4 cells, a head of 26 outputs. Each helper loads its head slice (9 x 4 weights,
/// 72 bytes) in 1.92 cycles, and the last step's tail and exchange take 1.25, so 0.83 of
/// the 4-cycle reconfiguration into the head's product is exposed. The closed form assumed
/// the load hid it (0.83 cycles low, -1.5e-3); it now charges max(0, rho - post - load).
#[test]
fn exposed_reconfiguration_before_the_head_is_exact() {
    let a = arch(
        "epur",
        &[
            "compute.units=5",
            "compute.multipliers_per_unit=2",
            "compute.multiplier_kind=fixed",
            "compute.tail_lanes=5",
            "compute.tail_latency_cycles=0",
            "dispatch.policy=gate-per-unit",
            "dispatch.tile_rows=1",
            "schedule.input_product=per-step",
            "schedule.overlap_tail=true",
            "schedule.reconfig_cycles=4",
            "schedule.precision_switch_cycles=4",
            "memory.sram_weight_kib=8192.0",
            "memory.dram_gb_per_s=56.341583384327926",
            "multicore.cores=3",
            "multicore.mode=helper",
            "multicore.link_latency_cycles=0",
            "tracking.enabled=true",
        ],
    );
    let w = Workload {
        name: "reduced".into(),
        layers: vec![LayerShape {
            input_size: 3,
            hidden_size: 4,
            directions: 1,
        }],
        head: Some(HeadShape {
            input_size: 4,
            output_size: 26,
            activation: true,
        }),
        seq_len: 15,
        batch: 1,
        precision: PrecisionProfile::fixed(16, 16),
    };
    let levels = vec![vec![0; 15]];
    let point = evaluate(&a, &w).expect("point evaluates");
    let sim = simulate(&a, &w, &levels).expect("point simulates");
    assert!(claims_exact(&a, &w, &point));
    assert!(
        (point.cycles - sim.cycles).abs() < 1e-9 * sim.cycles,
        "model {} sim {}",
        point.cycles,
        sim.cycles
    );
    // The same boundary between two layers: 1 core, a second layer whose load
    // (20 weights, 0.31 cycles) and the first layer's last tail (1 cycle) leave 22.7 of rho = 24.
    let a = with(&a, |b| {
        b.multicore.cores = 1;
        b.schedule.reconfig_cycles = 24;
        b.memory.dram_gb_per_s = 64.0;
    });
    let mut w = w;
    w.head = None;
    w.layers.push(LayerShape {
        input_size: 4,
        hidden_size: 1,
        directions: 1,
    });
    let levels = vec![vec![0; 15]; 2];
    let point = evaluate(&a, &w).expect("point evaluates");
    let sim = simulate(&a, &w, &levels).expect("point simulates");
    assert!(claims_exact(&a, &w, &point));
    assert!(
        (point.cycles - sim.cycles).abs() < 1e-9 * sim.cycles,
        "model {} sim {}",
        point.cycles,
        sim.cycles
    );
}

/// Multithreading points whose weights stream while layers share a core, from the
/// monotonicity measurement of docs/MODEL.md section 9 (2 cores, 3 layers: the first two on
/// core 0; `memory` is (DRAM GB/s, weight KiB)). Before this round one more multiplier made
/// the first 0.05% slower (-0.21% against the simulator): its drain took the busy cycles of the layer before the last off rounds set
/// by the core's streams, which have no drain. Dropping that drain alone put the second at
/// +7.4% and the third at +5.5%: the core's stream path is its own (loads, then every
/// stream, then the last step), not the fill plus the rounds (docs/MODEL.md section 4).
#[test]
fn streamed_layers_sharing_a_core_follow_the_simulator() {
    #[allow(clippy::too_many_arguments)]
    fn mt(
        units: u32,
        mults: u32,
        kind: &str,
        policy: &str,
        rows: u32,
        overlap: bool,
        rho: u32,
        tail: (u32, u32),
        memory: (f64, f64),
        link: u32,
    ) -> Arch {
        let sets = [
            format!("compute.units={units}"),
            format!("compute.multipliers_per_unit={mults}"),
            format!("compute.multiplier_kind={kind}"),
            format!("dispatch.policy={policy}"),
            format!("dispatch.tile_rows={rows}"),
            "schedule.input_product=per-step".to_string(),
            format!("schedule.overlap_tail={overlap}"),
            format!("schedule.reconfig_cycles={rho}"),
            format!("compute.tail_lanes={}", tail.0),
            format!("compute.tail_latency_cycles={}", tail.1),
            format!("memory.sram_weight_kib={}", memory.1),
            format!("memory.dram_gb_per_s={}", memory.0),
            "multicore.cores=2".to_string(),
            "multicore.mode=multithreading".to_string(),
            format!("multicore.link_latency_cycles={link}"),
        ];
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        arch("epur", &refs)
    }
    let stack = |shapes: &[(usize, usize)], seq_len: usize, batch: usize| Workload {
        name: "shared-core".into(),
        layers: shapes
            .iter()
            .map(|&(input_size, hidden_size)| LayerShape {
                input_size,
                hidden_size,
                directions: 1,
            })
            .collect(),
        head: None,
        seq_len,
        batch,
        precision: PrecisionProfile::fixed(16, 16),
    };
    let cases = [
        // Core 0 paced by its streams (layer 1's stream is 4,046 cycles a step).
        (
            mt(
                5,
                8,
                "fixed",
                "gate-per-unit",
                7,
                true,
                2,
                (7, 6),
                (1.8508647724877418, 1.0),
                25,
            ),
            stack(&[(9, 10), (10, 28), (28, 13)], 9, 2),
        ),
        // Core 0 paced by its units, its streams just below them.
        (
            mt(
                6,
                7,
                "fixed",
                "gate-per-unit",
                3,
                true,
                1,
                (6, 16),
                (40.32937134407455, 1.0),
                31,
            ),
            stack(&[(2, 37), (37, 4), (4, 7)], 10, 1),
        ),
        // Core 0's first layer stream-bound, the second resident.
        (
            mt(
                5,
                7,
                "bit-parallel",
                "tiled",
                4,
                false,
                5,
                (1, 17),
                (41.16861306374897, 1.0),
                31,
            ),
            stack(&[(6, 36), (36, 1), (1, 6)], 12, 1),
        ),
    ];
    // The 1,000,000-point tail of the class (-6.80%): after core 0's last stream (its first
    // layer's), that layer's last step and the second layer's come before the hop (now -2.3%).
    let tail = (
        mt(
            5,
            7,
            "bit-parallel",
            "tiled",
            4,
            true,
            2,
            (1, 18),
            (6.920467959676362, 8.0),
            16,
        ),
        stack(&[(3, 34), (34, 11), (11, 11)], 10, 1),
    );
    let within = |i: usize| if i < cases.len() { 0.01 } else { 0.05 };
    for (i, (a, w)) in cases.iter().chain(std::iter::once(&tail)).enumerate() {
        let levels = vec![vec![0; w.seq_len]; w.layers.len()];
        let model = cycles(a, w);
        let sim = simulate(a, w, &levels).expect("point simulates").cycles;
        assert!(
            (model - sim).abs() <= within(i) * sim,
            "model {model} sim {sim} ({:+.2}%)",
            100.0 * (model / sim - 1.0)
        );
        let latency = |x: &Arch| evaluate(x, w).expect("point evaluates").latency_us;
        for (more, what) in more_resources(a).iter().zip(MORE_RESOURCES) {
            assert!(
                latency(more) <= latency(a) * (1.0 + 1e-12),
                "{what} made it slower"
            );
        }
    }
}

/// The two one-core tails of the 1,000,000-point measurement before the first and last
/// steps' levels were used (docs/MODEL.md section 3, "Beyond 200,000 points"), reduced to
/// their `SHOW=1` points. Overlap-or-wait: step 0's input product runs at step 0's level (low
/// here); the closed form took the fractions' mean, +6.13%. Streamed: a stream-bound layer
/// ends a step after its last stream, at the last step's level (low here); the mean, +5.86%.
/// With the sequence's first and last levels (one-hot fractions) both are within 5%; without
/// them both are still above 5% (overlap-or-wait still at +6.13%; streamed +5.42% since
/// switches behind stream waits are hidden, +5.86% before).
#[test]
fn first_and_last_steps_levels_close_the_one_core_tails() {
    let one_hot = |k: usize| {
        (0..2)
            .map(|j| f64::from(u8::from(j == k)))
            .collect::<Vec<f64>>()
    };
    let check = |a: &Arch, layer: LayerShape, batch: usize, seq: Vec<usize>, was: f64| {
        let t = seq.len();
        let low = seq.iter().filter(|&&k| k == 0).count() as f64 / t as f64;
        let switches = seq.windows(2).filter(|w| w[0] != w[1]).count();
        let unknown = two_level(8, 16, low).with_switch_rate(switches as f64 / (t - 1) as f64);
        let mut w = Workload {
            name: "tail".into(),
            layers: vec![layer],
            head: None,
            seq_len: t,
            batch,
            precision: unknown.clone(),
        };
        let sim = simulate(a, &w, std::slice::from_ref(&seq)).expect("point simulates");
        let before = evaluate(a, &w).expect("point evaluates").cycles;
        let before_rel = (before - sim.cycles) / sim.cycles;
        assert!(
            (before_rel - was).abs() < 5e-5 && before_rel > 0.05,
            "unknown first/last steps: model {before} sim {} ({:+.2}%)",
            sim.cycles,
            100.0 * before_rel
        );
        w.precision = unknown.with_edge_steps(one_hot(seq[0]), one_hot(seq[t - 1]));
        let after = evaluate(a, &w).expect("point evaluates").cycles;
        let rel = (after - sim.cycles) / sim.cycles;
        assert!(
            rel.abs() <= 0.05,
            "model {after} sim {} ({:+.2}%)",
            sim.cycles,
            100.0 * rel
        );
        rel
    };
    // Overlap-or-wait: one bidirectional layer (32 inputs, 2 cells) on 3 helpers, T = 8,
    // B = 2, levels 01111011, overlapped.
    let a = arch(
        "epur",
        &[
            "compute.units=3",
            "compute.multipliers_per_unit=3",
            "compute.multiplier_kind=bit-parallel",
            "compute.tail_lanes=1",
            "compute.tail_latency_cycles=0",
            "dispatch.policy=gate-per-unit",
            "dispatch.tile_rows=7",
            "schedule.input_product=per-step",
            "schedule.overlap_tail=true",
            "schedule.reconfig_cycles=0",
            "schedule.precision_switch_cycles=4",
            "memory.sram_weight_kib=8.0",
            "memory.dram_gb_per_s=36.55756909809498",
            "multicore.cores=3",
            "multicore.mode=helper",
            "multicore.link_latency_cycles=26",
            "tracking.enabled=true",
        ],
    );
    let layer = LayerShape {
        input_size: 32,
        hidden_size: 2,
        directions: 2,
    };
    let w = Workload {
        name: "tail".into(),
        layers: vec![layer],
        head: None,
        seq_len: 8,
        batch: 2,
        precision: two_level(8, 16, 0.25),
    };
    assert_eq!(class(&a, &w), Class::OverlappedDynamic);
    let rel = check(&a, layer, 2, vec![0, 1, 1, 1, 1, 0, 1, 1], 0.0613);
    assert!(rel.abs() < 1e-9, "{rel}");
    // Streamed: one layer of 25 inputs and 31 cells on one core, 1 KiB of weight memory,
    // T = 8, levels 11011110.
    let a = arch(
        "epur",
        &[
            "compute.units=5",
            "compute.multipliers_per_unit=8",
            "compute.multiplier_kind=bit-parallel",
            "compute.tail_lanes=3",
            "compute.tail_latency_cycles=14",
            "dispatch.policy=tiled",
            "dispatch.tile_rows=1",
            "schedule.input_product=per-step",
            "schedule.overlap_tail=true",
            "schedule.reconfig_cycles=6",
            "schedule.precision_switch_cycles=7",
            "memory.sram_weight_kib=1.0",
            "memory.dram_gb_per_s=13.231761549616488",
            "multicore.cores=1",
            "multicore.mode=multithreading",
            "multicore.link_latency_cycles=33",
            "tracking.enabled=true",
        ],
    );
    let layer = LayerShape {
        input_size: 25,
        hidden_size: 31,
        directions: 1,
    };
    let w = Workload {
        layers: vec![layer],
        ..w
    };
    assert_eq!(class(&a, &w), Class::Streamed);
    check(&a, layer, 2, vec![1, 1, 0, 1, 1, 1, 1, 0], 0.0542);
}

/// The streamed class's worst over 1,000,000 points once the first and last steps were known
/// (+5.67%, docs/MODEL.md section 3, "Switches behind streams"): every step is faster than its
/// stream at both levels, so the simulator's units wait for each stream and a precision
/// switch (9 of 6 cycles here) only delays products that end before the next stream anyway.
/// The closed form charged switch_rate (T-1) precision_switch_cycles whatever bounded the
/// layer (54 cycles over); it now charges the stream-bound path only the switch into the last
/// step (expected switch_rate x 6 = 4.5 cycles; this sequence has none there) and those that
/// push a step past its stream. With free switches the two agree exactly.
#[test]
fn switches_behind_stream_waits_are_hidden() {
    let a = arch(
        "epur",
        &[
            "compute.units=4",
            "compute.multipliers_per_unit=8",
            "compute.multiplier_kind=bit-parallel",
            "compute.tail_lanes=2",
            "compute.tail_latency_cycles=4",
            "dispatch.policy=gate-per-unit",
            "dispatch.tile_rows=3",
            "schedule.input_product=per-step",
            "schedule.overlap_tail=true",
            "schedule.reconfig_cycles=4",
            "schedule.precision_switch_cycles=6",
            "memory.sram_weight_kib=1.0",
            "memory.dram_gb_per_s=17.313349938993763",
            "multicore.cores=2",
            "multicore.mode=helper",
            "multicore.link_latency_cycles=7",
            "tracking.enabled=true",
        ],
    );
    let seq = vec![0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1];
    let t = seq.len();
    let switches = seq.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(switches, 9);
    let w = Workload {
        name: "switches".into(),
        layers: vec![LayerShape {
            input_size: 5,
            hidden_size: 14,
            directions: 2,
        }],
        head: None,
        seq_len: t,
        batch: 1,
        precision: two_level(8, 16, 6.0 / 13.0)
            .with_switch_rate(switches as f64 / (t - 1) as f64)
            .with_edge_steps(vec![1.0, 0.0], vec![0.0, 1.0]),
    };
    assert_eq!(class(&a, &w), Class::Streamed);
    let levels = std::slice::from_ref(&seq);
    let model = evaluate(&a, &w).expect("point evaluates").cycles;
    let sim = simulate(&a, &w, levels).expect("point simulates").cycles;
    assert!((model - sim - 4.5).abs() < 1e-9, "model {model} sim {sim}");
    let free = with(&a, |b| b.schedule.precision_switch_cycles = 0);
    let model = evaluate(&free, &w).expect("point evaluates").cycles;
    let sim = simulate(&free, &w, levels).expect("point simulates").cycles;
    assert!((model - sim).abs() < 1e-9 * sim, "model {model} sim {sim}");
}

/// What `more_resources` adds, in its order.
const MORE_RESOURCES: [&str; 6] = [
    "units + 1",
    "multipliers + 1",
    "SRAM x 2",
    "DRAM x 2",
    "clock x 2",
    "tail lanes + 1",
];

/// `a` with one more of each resource in turn ([`MORE_RESOURCES`]).
fn more_resources(a: &Arch) -> [Arch; 6] {
    [
        with(a, |b| b.compute.units += 1),
        with(a, |b| b.compute.multipliers_per_unit += 1),
        with(a, |b| b.memory.sram_weight_kib *= 2.0),
        with(a, |b| b.memory.dram_gb_per_s *= 2.0),
        with(a, |b| b.compute.clock_mhz *= 2.0),
        with(a, |b| b.compute.tail_lanes += 1),
    ]
}

fn with(a: &Arch, f: impl FnOnce(&mut Arch)) -> Arch {
    let mut b = a.clone();
    f(&mut b);
    b
}

fn cycles(a: &Arch, w: &Workload) -> f64 {
    evaluate(a, w).expect("point evaluates").cycles
}

proptest! {
    // A fixed seed, as for the tolerance test above: the monotonicity of the closed form is
    // not proven, and fresh draws find rare multithreading points where one more unit or
    // multiplier, twice the SRAM or twice the clock is up to 0.6% slower (regime changes of
    // the closed form, docs/MODEL.md section 9); `monotonicity_violations` measures how often.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0010),
        ..ProptestConfig::default()
    })]

    #[test]
    fn overlap_is_never_slower(a in small_arch(), (w, _) in small_workload()) {
        let base = with(&a, |b| b.schedule.input_product = InputProduct::PerStep);
        let on = cycles(&with(&base, |b| b.schedule.overlap_tail = true), &w);
        let off = cycles(&with(&base, |b| b.schedule.overlap_tail = false), &w);
        prop_assert!(on <= off * (1.0 + 1e-12), "overlap {on} > no overlap {off}");
    }

    #[test]
    fn multithreading_respects_the_dependency_bound(a in small_arch(), (mut w, _) in small_workload(), cores in 2u32..6) {
        // Loads and reconfigurations made negligible: what is left is the dependency
        // structure. (On one core a layer's first input product waits for the units to
        // reconfigure from the layer before's last recurrent product, docs/MODEL.md section
        // 3, "Layer boundaries"; a layer on a core of its own starts on an idle array, so with
        // reconfigurations the speedup may exceed the stage count by what they cost.)
        let one = with(&a, |b| {
            b.schedule.input_product = InputProduct::PerStep;
            b.memory.dram_gb_per_s = 1e9;
            b.schedule.reconfig_cycles = 0;
            b.multicore.cores = 1;
        });
        let mt = with(&one, |b| {
            b.multicore.cores = cores;
            b.multicore.mode = MulticoreMode::Multithreading;
        });
        let stages = (cores as usize).min(w.layers.len()) as f64;
        let speedup = cycles(&one, &w) / cycles(&mt, &w);
        prop_assert!(speedup <= stages * (1.0 + 1e-9), "speedup {speedup} on {stages} stages");
        // All layers bidirectional: no two layers can overlap, so no speedup at all.
        let mut width = w.layers[0].input_size;
        for l in &mut w.layers {
            l.directions = 2;
            l.input_size = width;
            width = 2 * l.hidden_size;
        }
        if let Some(h) = &mut w.head {
            h.input_size = width;
        }
        let speedup = cycles(&one, &w) / cycles(&mt, &w);
        prop_assert!(speedup <= 1.0 + 1e-9, "bidirectional stack sped up {speedup}x");
    }

    #[test]
    fn more_resources_are_never_worse(a in small_arch(), (w, _) in small_workload()) {
        let latency = |x: &Arch| evaluate(x, &w).expect("point evaluates").latency_us;
        let base = latency(&a);
        let more = more_resources(&a);
        for (i, m) in more.iter().enumerate() {
            let l = latency(m);
            prop_assert!(l <= base * (1.0 + 1e-9), "resource {i}: {l} > {base}");
        }
    }

    #[test]
    fn lower_precision_is_never_slower_or_costlier(a in small_arch(), (mut w, _) in small_workload(), serial in any::<bool>()) {
        let kind = if serial { MultiplierKind::BitSerial } else { MultiplierKind::BitParallel };
        let a = with(&a, |b| b.compute.multiplier_kind = kind);
        w.precision = PrecisionProfile::fixed(16, 16);
        let wide = evaluate(&a, &w).expect("16-bit evaluates");
        w.precision = PrecisionProfile::fixed(8, 8);
        let narrow = evaluate(&a, &w).expect("8-bit evaluates");
        prop_assert!(narrow.cycles <= wide.cycles * (1.0 + 1e-12));
        prop_assert!(narrow.energy_uj <= wide.energy_uj * (1.0 + 1e-12));
    }
}

#[test]
fn dpred_bit_serial_time_follows_the_widest_group_of_a_pass() {
    // 8 multipliers per unit, groups of 4: each column pass covers 2 groups. Widths 4 or 16
    // bits with equal odds (base 16): by enumeration of the 4 width pairs, the pass takes
    // E[max] = (4 + 16 + 16 + 16) / 4 = 13 of 16 cycles per product; the mean width (10) would
    // say 10/16.
    let a = arch(
        "epur",
        &[
            "compute.multiplier_kind=bit-serial",
            "compute.multipliers_per_unit=8",
            "compute.tail_latency_cycles=0",
            "memory.dram_gb_per_s=1e9",
            "schedule.input_product=per-step",
        ],
    );
    let mut w = uniform("u", 1, 256, 256, 10);
    let plain = evaluate(&a, &w).expect("evaluates").cycles;
    let mut hist = vec![0.0; 16];
    hist[3] = 0.5;
    hist[15] = 0.5;
    let pairs = [(4.0f64, 4.0f64), (4.0, 16.0), (16.0, 4.0), (16.0, 16.0)];
    let expected = pairs.iter().map(|(x, y)| x.max(*y)).sum::<f64>() / 4.0 / 16.0;
    w.precision = PrecisionProfile::fixed(16, 16).with_group_widths(hist, 4);
    let dpred = evaluate(&a, &w).expect("evaluates").cycles;
    // Tail and loads are negligible next to the 16-cycle products.
    assert!(
        rel_close(dpred / plain, expected, 0.01),
        "{} vs {expected}",
        dpred / plain
    );
}

#[test]
fn technology_node_scales_on_chip_energy_and_area_only() {
    let w = eesen_like();
    let base = evaluate(&arch("sharp", &[]), &w).expect("45 nm");
    let half = evaluate(&arch("sharp", &["technology.node_nm=22.5"]), &w).expect("22.5 nm");
    // (22.5 / 45)^1 for energy, ^2 for area; DRAM energy and cycles unchanged.
    assert!(rel_close(half.compute_uj, base.compute_uj / 2.0, 1e-12));
    assert!(rel_close(half.sram_uj, base.sram_uj / 2.0, 1e-12));
    assert!(rel_close(half.area_mm2, base.area_mm2 / 4.0, 1e-12));
    assert_eq!(half.dram_uj, base.dram_uj);
    assert_eq!(half.cycles, base.cycles);
}
