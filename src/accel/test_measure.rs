//! The measurements behind the figures of docs/MODEL.md (ignored tests, run by hand): the worst
//! closed-form error per class against the event-level simulator, and how often one more
//! resource makes the closed form slower, over many random points of `test_sim.rs`.

use super::spec::{InputProduct, MulticoreMode};
use super::test_sim::*;
use super::test_support::{env_count, every_sequence_like, level_statistics, simulated};
use super::*;

/// The worst closed-form error per class over many random points, printed for docs/MODEL.md:
/// `cargo test --release --lib worst_case_per_class -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement (about a minute in release), quoted in docs/MODEL.md"]
fn worst_case_per_class() {
    let n = env_count("POINTS", 100_000);
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
    // Dynamic multithreading: the closed form against the simulator's mean over sequences
    // sharing the statistics it sees (`same_statistics`), and the widest spread among them.
    let (mut mean_worst, mut spread_worst) = ([0.0f64; 7], [0.0f64; 7]);
    let mut mean_examples: [Option<String>; 7] = Default::default();
    for (i, (a, w, levels)) in drawn_points(n).enumerate() {
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
        if matches!(c, 4 | 6) {
            let (mean, lo, hi) = sequence_mean(&a, &w, &levels, 16, i as u64 + 1);
            let rel_mean = ((point.cycles - mean) / mean).abs();
            spread_worst[c] = spread_worst[c].max(hi / lo - 1.0);
            if rel_mean > mean_worst[c] {
                mean_worst[c] = rel_mean;
                mean_examples[c] = Some(format!(
                    "model {} sim mean {mean} ({lo} .. {hi}) over its sequences\n{a:?}\n{w:?}\n{levels:?}",
                    point.cycles
                ));
            }
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
    for c in [4, 6] {
        println!(
            "class {c} against the simulator's mean over up to 16 sequences sharing the point's statistics: worst {:.2}% (widest spread among those sequences {:.2}%)",
            100.0 * mean_worst[c],
            100.0 * spread_worst[c]
        );
    }
    println!("claimed exact: worst {exact_worst:e}");
    if std::env::var("SHOW").is_ok() {
        for e in examples
            .iter()
            .chain(&unknown_examples)
            .chain(&mean_examples)
            .flatten()
        {
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
    let n = env_count("POINTS", 100_000);
    let (mut count, mut worst) = ([0usize; 6], [0.0f64; 6]);
    let mut examples: [Option<String>; 6] = Default::default();
    // The other invariants on the same points: overlap against no overlap, 8-bit against
    // 16-bit (cycles and energy), multithreading on 2-5 cores against the stage count and,
    // where above it, against the simulated speedup.
    let (mut other, mut other_worst) = ([0usize; 6], [0.0f64; 6]);
    let mut other_examples: [Option<String>; 6] = Default::default();
    for (p, (a, w, levels)) in drawn_points(n).enumerate() {
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
        let mut note = |k: usize, excess: f64| {
            if excess > 1e-9 {
                other[k] += 1;
                if excess > other_worst[k] {
                    other_worst[k] = excess;
                    other_examples[k] = Some(format!("{a:?}\n{w:?}\n{levels:?}"));
                }
            }
        };
        let per_step = with(&a, |b| b.schedule.input_product = InputProduct::PerStep);
        let overlap = with(&per_step, |b| b.schedule.overlap_tail = true);
        let wait = with(&per_step, |b| b.schedule.overlap_tail = false);
        let (on, off) = (cycles(&overlap, &w), cycles(&wait, &w));
        if on > off * (1.0 + 1e-9) && std::env::var("SHOW").is_ok() {
            let sim = |x: &Arch| simulate(x, &w, &levels).expect("point simulates").cycles;
            println!(
                "overlap slower ({} cores, {:?}): model {on} against {off}, simulated {} against {}",
                a.multicore.cores,
                a.multicore.mode,
                sim(&overlap),
                sim(&wait)
            );
        }
        note(0, on / off - 1.0);
        let mut fixed = w.clone();
        fixed.precision = PrecisionProfile::fixed(16, 16);
        let wide = evaluate(&a, &fixed).expect("16-bit evaluates");
        fixed.precision = PrecisionProfile::fixed(8, 8);
        let narrow = evaluate(&a, &fixed).expect("8-bit evaluates");
        note(1, narrow.cycles / wide.cycles - 1.0);
        note(2, narrow.energy_uj / wide.energy_uj - 1.0);
        let one = with(&per_step, |b| {
            b.memory.dram_gb_per_s = 1e9;
            b.schedule.reconfig_cycles = 0;
            b.multicore.cores = 1;
        });
        let cores = 2 + (p % 4) as u32;
        let mt = with(&one, |b| {
            b.multicore.cores = cores;
            b.multicore.mode = MulticoreMode::Multithreading;
        });
        let stages = (cores as usize).min(w.layers.len()) as f64;
        let speedup = cycles(&one, &w) / cycles(&mt, &w);
        note(3, speedup / stages - 1.0);
        if speedup > stages * (1.0 + 1e-9) {
            let sim = |x: &Arch| simulate(x, &w, &levels).expect("point simulates").cycles;
            note(4, speedup / (sim(&one) / sim(&mt)) - 1.0);
        }
        let mut bidir = w.clone();
        let mut width = bidir.layers[0].input_size;
        for l in &mut bidir.layers {
            l.directions = 2;
            l.input_size = width;
            width = 2 * l.hidden_size;
        }
        if let Some(h) = bidir.head.layers.first_mut() {
            h.input_size = width;
        }
        note(5, cycles(&one, &bidir) / cycles(&mt, &bidir) - 1.0);
    }
    for (k, what) in [
        "overlap slower than no overlap",
        "8-bit slower than 16-bit",
        "8-bit costlier than 16-bit",
        "multithreading above the stage count",
        "of those, above the simulated speedup",
        "bidirectional stack sped up by multithreading",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "{what}: {} of {n} points, worst {:.3}%",
            other[k],
            100.0 * other_worst[k]
        );
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
        for e in examples.iter().chain(&other_examples).flatten() {
            println!("---\n{e}");
        }
    }
}

/// Every level sequence of the 200,000-point worst streamed multithreading point with its
/// statistics (14 steps, 5 at the low level, 6 switches, first and last high), simulated: the
/// spread docs/MODEL.md section 3 quotes ("The sequence's part of the error"):
/// `cargo test --release --lib sequence_spread_of_the_worst_streamed_point -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, quoted in docs/MODEL.md"]
fn sequence_spread_of_the_worst_streamed_point() {
    let a = super::test_support::arch(
        "epur",
        &[
            "compute.units=6",
            "compute.multipliers_per_unit=2",
            "compute.multiplier_kind=bit-parallel",
            "compute.tail_lanes=3",
            "compute.tail_latency_cycles=0",
            "dispatch.policy=gate-per-unit",
            "dispatch.tile_rows=6",
            "schedule.input_product=per-step",
            "schedule.overlap_tail=false",
            "schedule.reconfig_cycles=0",
            "schedule.precision_switch_cycles=3",
            "memory.sram_weight_kib=1.0",
            "memory.dram_gb_per_s=16.648958293850708",
            "multicore.cores=2",
            "multicore.mode=multithreading",
            "multicore.link_latency_cycles=17",
            "tracking.enabled=true",
        ],
    );
    let shape = |input_size, hidden_size| LayerShape {
        input_size,
        hidden_size,
        directions: 1,
    };
    let w = Workload {
        name: "worst streamed".into(),
        layers: vec![shape(28, 19), shape(19, 24), shape(24, 12)],
        head: HeadShape::default(),
        seq_len: 14,
        batch: 1,
        precision: super::test_support::two_level(8, 16, 5.0 / 14.0)
            .with_switch_rate(6.0 / 13.0)
            .with_edge_steps(vec![0.0, 1.0], vec![0.0, 1.0]),
    };
    let model = evaluate(&a, &w).expect("point evaluates").cycles;
    let mut sims = Vec::new();
    // The point's own sequence: 5 low steps, 6 switches, first and last high.
    for s in every_sequence_like(&[1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1]) {
        sims.push(simulated(&a, &w, &s));
    }
    let mean = sims.iter().sum::<f64>() / sims.len() as f64;
    let (lo, hi) = (
        sims.iter().copied().fold(f64::INFINITY, f64::min),
        sims.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "{} sequences: simulated {lo:.1} .. {hi:.1} cycles, mean {mean:.1}; closed form {model:.1} ({:+.2}% against the mean)",
        sims.len(),
        100.0 * (model / mean - 1.0)
    );
}

/// Up to `count` level sequences sharing every statistic the closed form sees of `seq` (two
/// levels: the number of steps at each level, the number of switches, the first and the last
/// level), `seq` first, the others drawn at random (rejection sampling from `seed`, so the
/// same on every run). The closed form cannot tell them apart: it estimates their mean, and
/// the simulator's spread over them is the sequence's part of its error against one of them.
fn same_statistics(seq: &[usize], count: usize, seed: u64) -> Vec<Vec<usize>> {
    let want = level_statistics(seq);
    let mut out = vec![seq.to_vec()];
    let mut x = seed | 1;
    for _ in 0..200_000 {
        if out.len() >= count {
            break;
        }
        // xorshift64: one random bit per step.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let s: Vec<usize> = (0..seq.len()).map(|i| ((x >> i) & 1) as usize).collect();
        if level_statistics(&s) == want && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The simulator's mean cycles over [`same_statistics`] sequences of the point's sequence
/// (every layer runs the same one, as in [`small_workload`]), and their min and max.
pub(super) fn sequence_mean(
    a: &Arch,
    w: &Workload,
    levels: &[Vec<usize>],
    count: usize,
    seed: u64,
) -> (f64, f64, f64) {
    let seqs = same_statistics(&levels[0], count, seed);
    let sims: Vec<f64> = seqs.iter().map(|s| simulated(a, w, s)).collect();
    let mean = sims.iter().sum::<f64>() / sims.len() as f64;
    let lo = sims.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = sims.iter().copied().fold(0.0, f64::max);
    (mean, lo, hi)
}
