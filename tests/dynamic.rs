//! Dynamic precision policies: every backend's policy lanes against the scalar simulation
//! (one conformance check run on the CPU and GPU backends of `lstm::driver`), the fixed-level
//! limits (all +inf = lowest level, all 0 = highest level, bit for bit, causal and oracle),
//! threshold monotonicity and the GPU's group widths (the commands and their bad input are in
//! `dynamic_cli.rs`).

mod common;

use lstm_dse::dynamic::{self, LevelPlans, Metric, PolicySpec, Timing};
use lstm_dse::format::{parse_config_list, PrecisionConfig};
use lstm_dse::lstm::{self, driver, eval, npy, LoadOptions, Model};
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn fixture() -> (Model, npy::Sequences) {
    let m = lstm::load(
        data("tests/data/torch_lstm3.onnx").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let x = npy::read_sequences(&data("tests/data/torch_lstm3.x.npy")).unwrap();
    (m, x)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn infinite_thresholds_give_the_lowest_level_and_zero_the_highest() {
    let (m, x) = fixture();
    for levels in [
        "fx8,fx16",
        "fx6,fx10,fx16",
        "w=fx8,a=fx8,c=fx12;w=fx12,a=fx12,c=fx16",
    ] {
        for timing in [Timing::Causal, Timing::Oracle] {
            for metric in [Metric::MaxAbs, Metric::MeanAbs, Metric::FracAbove(0.01)] {
                let spec =
                    PolicySpec::new(parse_config_list(levels).unwrap(), metric, timing).unwrap();
                let n = spec.levels.len();
                let top = spec.levels[n - 1];
                let plans = eval::prepare(&m, &x, "x", &[top]).unwrap();
                let lp = LevelPlans::new(&m, plans[0].clone(), &spec).unwrap();
                let inf = vec!["inf"; n - 1].join("/");
                let zero = vec!["0"; n - 1].join("/");
                // Causal lanes start where the thresholds keep them, so every step is at one
                // level: +inf from the lowest, 0 from the highest.
                for (p, level, start) in [(0, 0, "low"), (1, n - 1, "high")] {
                    let spec = spec.clone().starting_at(start).unwrap();
                    let policies = dynamic::parse_thresholds(&format!("{inf},{zero}"), n).unwrap();
                    let sim = dynamic::simulate(&m, &x, &spec, &lp, &policies, &|| {});
                    let fixed = eval::run_cpu(&m, &x, &lp.levels[level..=level], true).remove(0);
                    let states = fixed.states.unwrap();
                    for s in 0..x.count {
                        let lane = &sim.lanes[p * x.count + s];
                        for (l, (h, c)) in lane.layers.iter().enumerate() {
                            let span = s * h.len()..(s + 1) * h.len();
                            assert_eq!(
                                bits(h),
                                bits(&states[l].h[span.clone()]),
                                "{levels} {timing:?} {metric} policy {p} layer {l} h"
                            );
                            assert_eq!(
                                bits(c),
                                bits(&states[l].c[span]),
                                "{levels} {timing:?} {metric} policy {p} layer {l} c"
                            );
                            assert!(lane.levels[l]
                                .iter()
                                .flatten()
                                .all(|&k| k as usize == level));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_threshold_grid_spans_all_high_to_all_low() {
    // Closed loop: states differ between policies, so the fraction at the lowest level need
    // not be monotonic in the threshold; the end points are fixed and the middle is mixed.
    let (m, x) = fixture();
    let spec = PolicySpec::new(
        parse_config_list("fx8,fx16").unwrap(),
        Metric::MaxAbs,
        Timing::Oracle,
    )
    .unwrap();
    let plans = eval::prepare(&m, &x, "x", &[spec.levels[1]]).unwrap();
    let lp = LevelPlans::new(&m, plans[0].clone(), &spec).unwrap();
    let policies = dynamic::parse_thresholds("0,0.05:2:8,inf", 2).unwrap();
    assert_eq!(policies.len(), 10);
    let sim = dynamic::simulate(&m, &x, &spec, &lp, &policies, &|| {});
    let reference = eval::reference::evaluate(&m, &x);
    let (header, rows) = dynamic::policy_rows(&m, &spec, &policies, &sim, &reference, None);
    let f0 = header.iter().position(|h| h == "frac_level_0").unwrap();
    let fracs: Vec<f64> = rows.iter().map(|r| r[f0].parse().unwrap()).collect();
    assert_eq!(fracs[0], 0.0);
    assert_eq!(fracs[9], 1.0);
    assert!(fracs.iter().any(|&f| f > 0.0 && f < 1.0), "{fracs:?}");
}

/// docs/NUMERICS.md §12: a bidirectional layer's h_t is one vector of both directions' states
/// (forward first, 2H values: the next layer's input), cut into groups as a whole; weights
/// are cut along each row of W and R of each direction. (The doc said "each h_t", which an
/// outside oracle read as one vector per direction.)
#[test]
fn group_vectors_of_a_bidirectional_layer_hold_both_directions() {
    use lstm_dse::dynamic::groups;
    use lstm_dse::trace::Engine;
    let m = lstm::load(
        data("tests/data/bidir.onnx").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let x = npy::read_sequences(&data("tests/data/bidir.x.npy")).unwrap();
    let base: PrecisionConfig = "fx8".parse().unwrap();
    let (w, a) = groups::collect(&Engine::Cpu, &m, &x, "x", base).unwrap();
    // Layers 4 -> 6 and 12 -> 6, both bidirectional: per direction 24 rows of W, 24 of R.
    let mut rows = Vec::new();
    for input in [4, 12] {
        for _ in 0..2 {
            rows.extend([input; 24]);
            rows.extend([6; 24]);
        }
    }
    assert_eq!(w.lens, rows);
    // Per sequence and step: x_t (4) with layer 0's h_t (12), then layer 1's h_t (12).
    let (n, t) = (x.count, x.steps);
    let mut vectors = Vec::new();
    for _ in 0..n * t {
        vectors.extend([4, 12]);
    }
    vectors.extend(std::iter::repeat_n(12, n * t));
    assert_eq!(a.lens, vectors);
    let s = a.stats("activations", 5, 8);
    assert_eq!(s.hist.iter().sum::<u64>() as usize, n * t * (1 + 3 + 3));
}

#[test]
fn gpu_group_widths_equal_the_cpu_twin() {
    use lstm_dse::dynamic::groups;
    use lstm_dse::trace::Engine;
    let Some(mut ctx) = common::gpu_context() else {
        return;
    };
    let m = lstm::load(
        data("models/digits_lstm.onnx").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let x = npy::read_sequences(&data("models/digits_test.x.npy")).unwrap();
    for base in ["fx16", "fx8.4"] {
        let base: PrecisionConfig = base.parse().unwrap();
        let (w, a) = groups::collect(&Engine::Cpu, &m, &x, "x", base).unwrap();
        for (v, bits) in [(&w, base.w.bits()), (&a, base.a.bits())] {
            for g in [1, 7, 16, 256] {
                let cpu = v.stats("t", g, bits);
                let mut gpu = groups::GroupStats {
                    hist: vec![0; bits as usize],
                    values: 0,
                    bits_plain: 0,
                    bits_best: 0,
                    ..cpu.clone()
                };
                for (width, len, nonzero) in ctx
                    .group_widths(&m.name, &v.codes, &v.lens, g, bits)
                    .unwrap()
                {
                    gpu.add_group(width, len, nonzero);
                }
                assert_eq!(cpu, gpu, "{base} group size {g}");
            }
        }
        // Small buffers: the groups are split over several dispatches, with the same result,
        // and no buffer past the cap (one is refused): groups of one code (their output is the
        // larger buffer) and a group size past the cap (each vector one group).
        ctx.limit_buffers(4096);
        for g in [1, 16, 1_000_000_000] {
            let cpu = a.stats("t", g, base.a.bits());
            let mut gpu = groups::GroupStats {
                hist: vec![0; base.a.bits() as usize],
                values: 0,
                bits_plain: 0,
                bits_best: 0,
                ..cpu.clone()
            };
            let widths = ctx.group_widths(&m.name, &a.codes, &a.lens, g, base.a.bits());
            for (width, len, nonzero) in widths.unwrap() {
                gpu.add_group(width, len, nonzero);
            }
            assert_eq!(cpu, gpu, "{base} group size {g} in buffers of 4096 bytes");
        }
        ctx.limit_buffers(u64::MAX);
    }
}

#[test]
fn policy_lanes_of_every_backend_equal_the_scalar_simulation_bit_for_bit() {
    // Every backend of the driver (the lane-batched CPU simulation: lanes grouped by level,
    // one product per level per step; the GPU lanes, levels chosen on the device) against
    // the per-lane scalar one, on a stacked and a bidirectional model, with policies whose
    // lanes switch levels at different steps.
    let gpus = common::shared_gpus();
    for (model, input) in [
        (
            "tests/data/torch_lstm3.onnx",
            "tests/data/torch_lstm3.x.npy",
        ),
        (
            "tests/data/torch_bilstm.onnx",
            "tests/data/torch_bilstm.x.npy",
        ),
    ] {
        let m = lstm::load(data(model).to_str().unwrap(), &LoadOptions::default()).unwrap();
        let x = npy::read_sequences(&data(input)).unwrap();
        for (levels, thresholds) in [
            ("fx6,fx16", "0,0.01,0.02,0.05,0.1,0.3,inf"),
            ("fx4,fx8,fx12", "0/0,0.02/0.1,0.05/0.5,inf/inf"),
        ] {
            for (timing, start) in [
                (Timing::Causal, "high"),
                (Timing::Causal, "low"),
                (Timing::Oracle, "high"),
            ] {
                for metric in [
                    Metric::MaxAbs,
                    Metric::MeanAbs,
                    Metric::FracAbove(0.02),
                    Metric::RelMaxAbs(0.05),
                ] {
                    let spec = PolicySpec::new(parse_config_list(levels).unwrap(), metric, timing)
                        .unwrap()
                        .starting_at(start)
                        .unwrap();
                    let n = spec.levels.len();
                    let plans = eval::prepare(&m, &x, "x", &[spec.levels[n - 1]]).unwrap();
                    let lp = LevelPlans::new(&m, plans[0].clone(), &spec).unwrap();
                    let policies = dynamic::parse_thresholds(thresholds, n).unwrap();
                    let slow = dynamic::simulate_scalar(&m, &x, &spec, &lp, &policies, &|| {});
                    let what = format!("{model} {levels} {timing:?} {start} {metric}");
                    let cpu = dynamic::CpuPolicies::new(&spec, &lp);
                    let Ok(fast) = driver::run_policies(&cpu, &m, &x, &policies, &mut |_, _| {});
                    common::same_lanes(&format!("cpu {what}"), &fast, &slow.lanes);
                    for (ctx, how) in &gpus {
                        let on_gpu = ctx
                            .simulate_policies(&m, &x, &spec, &lp, &policies, &mut |_, _| {})
                            .unwrap();
                        common::same_lanes(
                            &format!("{}{how} {what}", ctx.adapter.name),
                            &on_gpu.lanes,
                            &slow.lanes,
                        );
                    }
                    let mut switched = false;
                    for (i, a) in slow.lanes.iter().enumerate() {
                        if timing == Timing::Causal {
                            let what = format!("{what} lane {i}");
                            causal_levels_follow_the_real_metric(
                                &m,
                                &policies[i / x.count],
                                a,
                                &what,
                            );
                        }
                        switched |= a
                            .levels
                            .iter()
                            .flatten()
                            .any(|d| d.windows(2).any(|w| w[0] != w[1]));
                    }
                    assert!(
                        switched || timing == Timing::Oracle,
                        "{levels} {metric}: no lane ever switched level"
                    );
                }
            }
        }
    }
}

/// The batched policy lanes run apart in blocks (`driver::lane_block`: 21 lanes on three
/// threads in blocks of 16 + 5) equal the per-lane scalar simulation, causal and oracle.
#[test]
fn policy_lanes_in_blocks_equal_the_scalar_simulation() {
    let (m, x) = fixture();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let thresholds = "0,0.02,0.05,0.1,0.3,1,inf";
    for timing in [Timing::Causal, Timing::Oracle] {
        let spec = PolicySpec::new(
            parse_config_list("fx6,fx16").unwrap(),
            Metric::MaxAbs,
            timing,
        )
        .unwrap();
        let plans = eval::prepare(&m, &x, "x", &[spec.levels[1]]).unwrap();
        let lp = LevelPlans::new(&m, plans[0].clone(), &spec).unwrap();
        let policies = dynamic::parse_thresholds(thresholds, 2).unwrap();
        let slow = dynamic::simulate_scalar(&m, &x, &spec, &lp, &policies, &|| {});
        let lanes = policies.len() * x.count;
        pool.install(|| {
            let hidden = m.layers[0].hidden_size;
            assert_eq!(driver::lane_block(hidden, 1, lanes), 16, "not split");
            let cpu = dynamic::CpuPolicies::new(&spec, &lp);
            let Ok(fast) = driver::run_policies(&cpu, &m, &x, &policies, &mut |_, _| {});
            common::same_lanes(&format!("cpu in blocks {timing:?}"), &fast, &slow.lanes);
        });
    }
}

/// Causal decisions against the metric's real value computed in f64: in every direction the
/// level of step s + 1 is the number of thresholds the real metric of step s reaches, except
/// within 1e-5 (relative) of a threshold, where the integer or f32 comparison may round.
fn causal_levels_follow_the_real_metric(
    model: &Model,
    policy: &dynamic::Policy,
    lane: &dynamic::LaneResult,
    what: &str,
) {
    for (l, dirs) in lane.levels.iter().enumerate() {
        for (k, levels) in dirs.iter().enumerate() {
            let steps = levels.len();
            let order: Vec<usize> = if !model.layers[l].direction.is_reversed(k) {
                (0..steps).collect()
            } else {
                (0..steps).rev().collect()
            };
            for w in order.windows(2) {
                let real = lane.metrics[l][k][w[0]];
                let near = policy
                    .thresholds
                    .iter()
                    .any(|&t| t.is_finite() && (real - t).abs() <= 1e-5 * t.abs().max(1e-9));
                if near {
                    continue;
                }
                let want = policy.thresholds.iter().filter(|&&t| real >= t).count();
                assert_eq!(
                    levels[w[1]] as usize, want,
                    "{what}: layer {l} direction {k} step {}: metric {real}",
                    w[1]
                );
            }
        }
    }
}

#[test]
fn causal_lanes_start_at_the_chosen_level() {
    // All-+inf thresholds: after the first step every lane is at the lowest level; the first
    // step runs at the starting level (the highest by default).
    let (m, x) = fixture();
    for (start, first) in [("high", 1u8), ("low", 0), ("1", 1)] {
        let spec = PolicySpec::new(
            parse_config_list("fx8,fx16").unwrap(),
            Metric::MaxAbs,
            Timing::Causal,
        )
        .unwrap()
        .starting_at(start)
        .unwrap();
        let plans = eval::prepare(&m, &x, "x", &[spec.levels[1]]).unwrap();
        let lp = LevelPlans::new(&m, plans[0].clone(), &spec).unwrap();
        let policies = dynamic::parse_thresholds("inf", 2).unwrap();
        for sim in [
            dynamic::simulate(&m, &x, &spec, &lp, &policies, &|| {}),
            dynamic::simulate_scalar(&m, &x, &spec, &lp, &policies, &|| {}),
        ] {
            for lane in &sim.lanes {
                for dirs in &lane.levels {
                    let v = &dirs[0];
                    assert_eq!(v[0], first, "start {start}");
                    assert!(v[1..].iter().all(|&k| k == 0), "start {start}: {v:?}");
                }
            }
        }
    }
    let spec = PolicySpec::new(
        parse_config_list("fx8,fx16").unwrap(),
        Metric::MaxAbs,
        Timing::Causal,
    )
    .unwrap();
    for bad in ["2", "mid", "-1"] {
        let e = spec.clone().starting_at(bad).unwrap_err().to_string();
        assert!(e.contains("--start") && e.contains(bad), "{e}");
    }
}
