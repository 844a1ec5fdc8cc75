//! Dynamic precision with levels that are any configs (float formats, mixed configs,
//! explicit fraction bits, per-channel weights, per-level calibration): the state travels
//! between levels as f32 values (NUMERICS.md §11.1). Checked against independent
//! implementations: a lane held at one level equals that config's ordinary run on the batched
//! engine; on nested fixed-point levels the value state equals the code state (the batched
//! integer simulation) bit for bit, metrics included; GPU lanes equal the CPU; causal levels
//! follow the reported metric; GPU policy lanes on shapes that do not divide the kernels' tiles.

mod common;

use lstm_dse::dynamic::{self, LevelPlans, LevelState, Metric, PolicySpec, Timing};
use lstm_dse::format::parse_config_list;
use lstm_dse::lstm::{self, eval, npy, LoadOptions, Model};
use std::path::{Path, PathBuf};

/// The level plans a policy run builds: calibrated on the float64 reference of `x`.
fn prepare(m: &Model, x: &npy::Sequences, s: &PolicySpec) -> LevelPlans {
    let cal = eval::calibrate(m, x, eval::needs_histograms(&s.levels));
    LevelPlans::prepare(m, s, &cal).unwrap()
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn load(model: &str, input: &str) -> (Model, npy::Sequences) {
    let m = lstm::load(data(model).to_str().unwrap(), &LoadOptions::default()).unwrap();
    (m, npy::read_sequences(&data(input)).unwrap())
}

fn fixtures() -> Vec<(Model, npy::Sequences)> {
    vec![
        load(
            "tests/data/torch_lstm3.onnx",
            "tests/data/torch_lstm3.x.npy",
        ),
        load(
            "tests/data/torch_bilstm.onnx",
            "tests/data/torch_bilstm.x.npy",
        ),
    ]
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

const METRICS: [Metric; 4] = [
    Metric::MaxAbs,
    Metric::MeanAbs,
    Metric::FracAbove(0.02),
    Metric::RelMaxAbs(0.05),
];

/// Level sets that are not nested fixed point (`;` separates configs).
const GENERAL: [&str; 7] = [
    "fp8e4m3;fp16",
    "bf16;fp32",
    "fx8;fp16",
    "fx8.5;fx16",
    "w=fx8,a=fx8,p=fx16,c=fx16;fp16",
    "fx8,wscale=channel;fx16",
    "fx6,cal=p99.9;fx10;fp32",
];

fn spec(levels: &str, metric: Metric, timing: Timing, start: &str) -> PolicySpec {
    PolicySpec::new(parse_config_list(levels).unwrap(), metric, timing)
        .unwrap()
        .starting_at(start)
        .unwrap()
}

#[test]
fn general_levels_keep_the_state_as_values_and_nested_ones_as_codes() {
    for levels in GENERAL {
        let s = spec(levels, Metric::MaxAbs, Timing::Causal, "high");
        assert_eq!(s.state, LevelState::Values, "{levels}");
    }
    for levels in ["fx8;fx16", "fx4;fx8;fx12", "fx8;fx16.10"] {
        let s = spec(levels, Metric::MaxAbs, Timing::Causal, "high");
        assert_eq!(s.state, LevelState::Codes, "{levels}");
    }
}

#[test]
fn a_lane_held_at_one_level_equals_that_configs_own_run() {
    // +inf thresholds from the lowest level (causal, start low; or oracle: every step redone
    // at the lowest level) and 0 from the highest give every step at one level: the states
    // must be that config's ordinary evaluation on the batched engine, bit for bit.
    for (m, x) in fixtures() {
        for levels in GENERAL {
            for metric in [Metric::MaxAbs, Metric::RelMaxAbs(0.05)] {
                for (timing, start) in [(Timing::Causal, "low"), (Timing::Oracle, "high")] {
                    let s = spec(levels, metric, timing, start);
                    let n = s.levels.len();
                    let lp = prepare(&m, &x, &s);
                    let inf = vec!["inf"; n - 1].join("/");
                    let policies = dynamic::parse_thresholds(&inf, n).unwrap();
                    let mut cases = vec![(s.clone(), policies, 0)];
                    let high = s.clone().starting_at("high").unwrap();
                    let zero = vec!["0"; n - 1].join("/");
                    cases.push((high, dynamic::parse_thresholds(&zero, n).unwrap(), n - 1));
                    for (s, policies, level) in cases {
                        let sim = dynamic::simulate(&m, &x, &s, &lp, &policies, &|| {});
                        let own = eval::run_cpu(&m, &x, &lp.levels[level..=level], true).remove(0);
                        let states = own.states.unwrap();
                        for (n_seq, lane) in sim.lanes.iter().enumerate() {
                            let what =
                                format!("{levels} {metric} {timing:?} level {level} seq {n_seq}");
                            for (l, (h, c)) in lane.layers.iter().enumerate() {
                                let span = n_seq * h.len()..(n_seq + 1) * h.len();
                                assert_eq!(
                                    bits(h),
                                    bits(&states[l].h[span.clone()]),
                                    "{what} h{l}"
                                );
                                assert_eq!(bits(c), bits(&states[l].c[span]), "{what} c{l}");
                                assert!(lane.levels[l]
                                    .iter()
                                    .flatten()
                                    .all(|&k| k as usize == level));
                            }
                            if let (Some(a), Some(b)) = (&lane.output, &own.output) {
                                let span = n_seq * a.len()..(n_seq + 1) * a.len();
                                assert_eq!(bits(a), bits(&b[span]), "{what} output");
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn value_state_equals_code_state_on_nested_levels() {
    // Two implementations of the closed loop: integer codes of the highest level on the
    // batched engine, and f32 values one lane at a time. On nested levels every value is a
    // code times a power of two, so every rounding, every metric and every decision agrees.
    for (m, x) in fixtures() {
        for (levels, thresholds) in [
            ("fx6;fx16", "0,0.01,0.03,0.1,0.3,inf"),
            ("fx4;fx8;fx12", "0/0,0.02/0.1,0.05/0.5,0.2/0.2,inf/inf"),
        ] {
            for (timing, start) in [
                (Timing::Causal, "high"),
                (Timing::Causal, "low"),
                (Timing::Oracle, "high"),
            ] {
                for metric in METRICS {
                    let codes = spec(levels, metric, timing, start);
                    let values = codes.clone().value_state();
                    let n = codes.levels.len();
                    let top = eval::prepare(&m, &x, "x", &[codes.levels[n - 1]]).unwrap();
                    let lc = LevelPlans::new(&m, top[0].clone(), &codes).unwrap();
                    let lv = LevelPlans::new(&m, top[0].clone(), &values).unwrap();
                    assert_eq!(lv.state, LevelState::Values);
                    let policies = dynamic::parse_thresholds(thresholds, n).unwrap();
                    let a = dynamic::simulate(&m, &x, &codes, &lc, &policies, &|| {});
                    let b = dynamic::simulate(&m, &x, &values, &lv, &policies, &|| {});
                    let mixed = a
                        .lanes
                        .iter()
                        .flat_map(|l| l.levels.iter().flatten().flatten());
                    let distinct: std::collections::BTreeSet<u8> = mixed.copied().collect();
                    assert!(distinct.len() > 1, "{levels} {metric}: one level only");
                    for (i, (p, q)) in a.lanes.iter().zip(&b.lanes).enumerate() {
                        let what = format!("{levels} {timing:?} {start} {metric} lane {i}");
                        assert_eq!(p.levels, q.levels, "{what}: levels");
                        assert_eq!(p.metrics, q.metrics, "{what}: metrics");
                        for (l, ((ph, pc), (qh, qc))) in p.layers.iter().zip(&q.layers).enumerate()
                        {
                            assert_eq!(bits(ph), bits(qh), "{what}: h{l}");
                            assert_eq!(bits(pc), bits(qc), "{what}: c{l}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn causal_value_lanes_follow_their_metric_and_mix_levels() {
    for (m, x) in fixtures() {
        for levels in ["fp8e4m3;fp16", "fx8;fp16", "fx6,cal=p99.9;fx10;fp32"] {
            let n = parse_config_list(levels).unwrap().len();
            let thresholds = match n {
                2 => "0.001,0.01,0.05,0.2",
                _ => "0.001/0.01,0.01/0.1,0.05/0.3",
            };
            let mut seen = std::collections::BTreeSet::new();
            for metric in METRICS {
                let s = spec(levels, metric, Timing::Causal, "high");
                let lp = prepare(&m, &x, &s);
                let policies = dynamic::parse_thresholds(thresholds, n).unwrap();
                let sim = dynamic::simulate(&m, &x, &s, &lp, &policies, &|| {});
                let all = sim
                    .lanes
                    .iter()
                    .flat_map(|l| l.levels.iter().flatten().flatten());
                seen.extend(all.copied());
                for (i, lane) in sim.lanes.iter().enumerate() {
                    let policy = &policies[i / x.count];
                    for (l, dirs) in lane.levels.iter().enumerate() {
                        for (k, chosen) in dirs.iter().enumerate() {
                            let order: Vec<usize> = match m.layers[l].direction.is_reversed(k) {
                                false => (0..chosen.len()).collect(),
                                true => (0..chosen.len()).rev().collect(),
                            };
                            for w in order.windows(2) {
                                let real = lane.metrics[l][k][w[0]];
                                // The decision is made in f32: skip values within rounding of θ.
                                let near = policy.thresholds.iter().any(|&t| {
                                    t.is_finite() && (real - t).abs() <= 1e-5 * t.abs().max(1e-9)
                                });
                                let want = policy.thresholds.iter().filter(|&&t| real >= t).count();
                                assert!(
                                    near || chosen[w[1]] as usize == want,
                                    "{levels} {metric} lane {i} layer {l} dir {k} step {}: metric {real}",
                                    w[1]
                                );
                            }
                        }
                    }
                }
            }
            // The thresholds reach every level somewhere (the loop really switches).
            assert_eq!(seen.len(), n, "{levels}: levels used {seen:?}");
        }
    }
}

#[test]
fn gpu_value_lanes_equal_the_cpu_bit_for_bit() {
    let gpus = common::shared_gpus();
    if gpus.is_empty() {
        return;
    }
    for (m, x) in fixtures() {
        for (levels, thresholds) in [
            ("fp8e4m3;fp16", "0,0.005,0.02,0.1,inf"),
            ("fx8;bf16;fp32", "0/0,0.01/0.05,0.05/0.3,inf/inf"),
            ("fx8,wscale=channel;fx16", "0,0.01,0.05,inf"),
            // The top level cannot hold every fx12 value (bf16 keeps 8 significant bits): an
            // oracle redo must start from the state as it was, not as rounded to the top.
            ("fx12;bf16", "0,0.002,0.01,0.05,inf"),
        ] {
            for (timing, start) in [
                (Timing::Causal, "high"),
                (Timing::Causal, "low"),
                (Timing::Oracle, "high"),
            ] {
                for metric in METRICS {
                    let s = spec(levels, metric, timing, start);
                    let lp = prepare(&m, &x, &s);
                    let policies = dynamic::parse_thresholds(thresholds, s.levels.len()).unwrap();
                    let cpu = dynamic::simulate(&m, &x, &s, &lp, &policies, &|| {});
                    for (ctx, how) in &gpus {
                        let gpu = ctx
                            .simulate_policies(&m, &x, &s, &lp, &policies, &mut |_, _| {})
                            .unwrap();
                        let what = format!("{levels} {timing:?} {start} {metric}{how}");
                        common::same_lanes(&what, &gpu.lanes, &cpu.lanes);
                    }
                }
            }
        }
    }
    // Nested levels forced to a value state run the same value kernels.
    let (m, x) = load(
        "tests/data/torch_bilstm.onnx",
        "tests/data/torch_bilstm.x.npy",
    );
    let s = spec("fx4;fx8;fx12", Metric::MeanAbs, Timing::Oracle, "high").value_state();
    let top = eval::prepare(&m, &x, "x", &[s.levels[2]]).unwrap();
    let lp = LevelPlans::new(&m, top[0].clone(), &s).unwrap();
    let policies = dynamic::parse_thresholds("0.001/0.01,0.01/0.1", 3).unwrap();
    let cpu = dynamic::simulate(&m, &x, &s, &lp, &policies, &|| {});
    for (ctx, how) in &gpus {
        let gpu = ctx
            .simulate_policies(&m, &x, &s, &lp, &policies, &mut |_, _| {})
            .unwrap();
        for (c, g) in cpu.lanes.iter().zip(&gpu.lanes) {
            assert_eq!(c.levels, g.levels, "{how}");
            for ((ch, cc), (gh, gc)) in c.layers.iter().zip(&g.layers) {
                assert_eq!((bits(ch), bits(cc)), (bits(gh), bits(gc)), "{how}");
            }
        }
    }
}

#[test]
fn levels_that_cannot_be_ordered_are_refused_naming_them() {
    for (levels, names) in [
        ("fp16;fx16", ["fp16", "fx16"]),
        ("bf16;fp16", ["bf16", "fp16"]),
        ("fp16;fx8", ["fp16", "fx8"]),
        ("w=fx8,a=fx16;w=fx16,a=fx8", ["w=fx8", "w=fx16"]),
    ] {
        let e = PolicySpec::new(
            parse_config_list(levels).unwrap(),
            Metric::MaxAbs,
            Timing::Causal,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot be ordered"), "{levels}: {e}");
        for n in names {
            assert!(e.contains(n), "{levels}: {e} should name {n}");
        }
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

#[test]
fn gpu_policy_lanes_on_shapes_that_do_not_divide_the_tiles() {
    // The GPU's policy gate sums run one thread per (unit, block of four sequences of one
    // policy), one pass per level present in the block. Hidden sizes across the 64-unit tile
    // (70: a second, short tile; 33), 9 sequences (a short last block), peepholes, initial
    // states, a bidirectional layer and several policies; and a wide layer (I = 260, H = 600)
    // whose fx16 sums of split codes take several chunks of 255 products. Against the scalar
    // simulation (which runs value-state levels on the batched CPU simulation), with lanes of
    // one block at different levels.
    let gpus = common::shared_gpus();
    if gpus.is_empty() {
        return;
    }
    let dirs = [lstm::Direction::Forward, lstm::Direction::Bidirectional];
    let small = common::random_model(11, 5, &[70, 33], &dirs, true, true, false);
    let mut wide = common::random_model(13, 260, &[600], &dirs[..1], false, false, false);
    // Every weight the same positive value, so the units of a step are all alike and an R.h
    // sum has 600 products of one sign: more than an i32 holds unless it is chunked.
    let cell = &mut wide.layers[0].cells[0];
    cell.w.iter_mut().for_each(|v| *v = 0.01);
    cell.r.iter_mut().for_each(|v| *v = 0.05);
    let mut mixed = 0;
    for (m, levels, thresholds) in [
        (&small, "fx6;fx16", "0,0.02,0.1,inf"),
        (&small, "fp8e4m3;fp16", "0,0.005,0.02,inf"),
        (&small, "fx8;bf16;fp32", "0/0,0.01/0.05,0.05/0.3,inf/inf"),
        (&wide, "fx8;fx16", "0,0.005,0.02,inf"),
    ] {
        let x = common::random_inputs(12, 9, 6, m.input_size(), 1.5);
        for (timing, start) in [(Timing::Causal, "low"), (Timing::Oracle, "high")] {
            let s = spec(levels, Metric::MaxAbs, timing, start);
            let lp = prepare(m, &x, &s);
            let policies = dynamic::parse_thresholds(thresholds, s.levels.len()).unwrap();
            let want = dynamic::simulate_scalar(m, &x, &s, &lp, &policies, &|| {});
            for (ctx, how) in &gpus {
                let got = ctx
                    .simulate_policies(m, &x, &s, &lp, &policies, &mut |_, _| {})
                    .unwrap();
                let what = format!("{levels} {timing:?}{how}");
                common::same_lanes(&what, &got.lanes, &want.lanes);
            }
            // Blocks (four consecutive sequences of one policy) whose lanes differ in level
            // at some step of some layer and direction.
            for block in want.lanes.chunks(x.count).flat_map(|p| p.chunks(4)) {
                let first = &block[0].levels;
                mixed += usize::from(block.iter().any(|lane| lane.levels != *first));
            }
        }
    }
    assert!(mixed > 0, "no block ever held lanes at different levels");
}
