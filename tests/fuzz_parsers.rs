//! Fuzzing the parsers in-process: mutation tests (seeded from the repository's own files)
//! and property tests (proptest) for the `.npy`, ONNX, safetensors, TOML sweep and
//! architecture, CSV (results, policies, groups) and precision-string parsers.
//!
//! The law for every parser: on any input it returns — an error or a value — and never
//! panics or hangs; what it accepts satisfies its own invariants (an `.npy` array fills its
//! shape, a model validates, a parsed precision prints back to itself). Each call runs on a
//! worker thread with a deadline, so a hang is reported instead of stalling the suite.
//! Budget: a few seconds here; `LSTM_DSE_FUZZ_CASES=100000` for the long run (docs/FUZZING.md).

mod fuzz_support;

use fuzz_support::{cases, keep_failure, mutate, seed, seed_file, seed_files, Rng};
use lstm_dse::lstm::{npy, onnx, safetensors, LoadOptions};
use proptest::prelude::*;
use std::time::Duration;

/// Runs `f` on a worker thread; `Err` names a panic or a hang (over `deadline`).
fn guarded<F: FnOnce() + Send + 'static>(f: F, deadline: Duration) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(deadline) {
        Ok(true) => Ok(()),
        Ok(false) => Err("panicked".into()),
        Err(_) => Err(format!("did not return within {deadline:?}")),
    }
}

/// Mutates each seed `n` times and feeds the result to `parse`; collects every input that
/// panicked or hung (kept under target/fuzz-failures/) and fails with the list.
fn mutation_campaign(
    target: &str,
    seeds: &[(String, Vec<u8>)],
    dict: &[&str],
    n: usize,
    parse: fn(&[u8]),
) {
    let mut failures = Vec::new();
    let mut rng = Rng::new(seed() ^ fuzz_support::Rng::new(target.len() as u64).next());
    for case in 0..n {
        let (name, bytes) = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, bytes, dict);
        let owned = input.clone();
        if let Err(why) = guarded(move || parse(&owned), Duration::from_secs(20)) {
            let kept = keep_failure(&format!("{target}-{case}"), &input);
            failures.push(format!(
                "{target} case {case} (from {name}) {why}: {}",
                kept.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn seeds(files: &[String]) -> Vec<(String, Vec<u8>)> {
    files.iter().map(|f| (f.clone(), seed_file(f))).collect()
}

// ---------------------------------------------------------------------------------------- npy

fn npy_law(bytes: &[u8]) {
    if let Ok((shape, data)) = npy::parse_f32("fuzz.npy", bytes) {
        assert_eq!(shape.iter().product::<usize>(), data.len());
    }
    if let Ok((shape, ids)) = npy::parse_ids("fuzz.npy", bytes) {
        assert_eq!(shape.iter().product::<usize>(), ids.len());
    }
    // Token ids looked up by a model with an embedding: every accepted file gives finite
    // rows of its width.
    static EMBEDDED: std::sync::OnceLock<lstm_dse::lstm::Model> = std::sync::OnceLock::new();
    let m = EMBEDDED.get_or_init(|| {
        lstm_dse::lstm::load("tests/data/torch_embedding.onnx", &LoadOptions::default()).unwrap()
    });
    if let Ok(x) = npy::parse_inputs("fuzz.npy", bytes, m) {
        assert_eq!(x.data.len(), x.count * x.steps * 12);
        assert!(x.data.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn npy_mutations() {
    let mut files = seed_files("tests/data", "npy");
    files.retain(|f| !f.contains("hidden"));
    let dict = [
        "(288230376151711760, 8, 8)",
        "(4294967296, 4294967296, 8)",
        "'shape': (",
        "'descr': '<f8'",
        "'descr': '<i8'",
        "'descr': '>i4'",
        "True",
        "[",
        "{",
        "'",
    ];
    mutation_campaign("npy", &seeds(&files), &dict, cases(3000, 0.2), npy_law);
}

/// Headers numpy could write, with any shape (sizes that wrap around 2^64 included) and any
/// amount of data: accepted exactly when the data fills the shape.
fn header_bytes(shape: &[u64], data_bytes: usize) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}\n",
        dims.join(", ") + if shape.len() == 1 { "," } else { "" }
    );
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.resize(b.len() + data_bytes, 0);
    b
}

fn dim() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..6,
        Just(u64::MAX),
        Just(1 << 32),
        Just((1 << 58) + 16),
        Just((1 << 61) + 128),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512, 0.05) as u32))]

    #[test]
    fn npy_header_shapes_are_checked_against_the_data(
        shape in proptest::collection::vec(dim(), 0..4),
        data_bytes in prop_oneof![0usize..200, Just(1024usize), Just(4096usize)],
    ) {
        let bytes = header_bytes(&shape, data_bytes);
        let fills = shape
            .iter()
            .try_fold(4u128, |a, &d| a.checked_mul(d as u128))
            == Some(data_bytes as u128);
        match npy::parse_f32("x.npy", &bytes) {
            Ok((s, data)) => {
                prop_assert!(fills);
                prop_assert_eq!(s.iter().map(|&d| d as u64).collect::<Vec<_>>(), shape);
                prop_assert_eq!(data.len() * 4, data_bytes);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!fills, "{}", e);
                prop_assert!(e.starts_with("x.npy: ") && !e.contains('\n'), "{}", e);
            }
        }
    }
}

// ------------------------------------------------------------------------------ ONNX, safetensors

/// An imported model that validates (what `lstm::load` accepts) runs on the CPU evaluator:
/// two steps of one sequence of its width, at fp32 and fx8.
fn accepted_model_runs(m: &lstm_dse::lstm::Model) {
    if m.validate().is_err() {
        return;
    }
    let width = m.input_size();
    let data = (0..2 * width)
        .map(|k| (k % 7) as f32 * 0.25 - 0.5)
        .collect();
    let seqs = npy::Sequences::new("x", [1, 2, width], data, true).expect("input");
    let configs = [
        lstm_dse::format::PrecisionConfig::FP32,
        "fx8".parse().expect("fx8"),
    ];
    let _ = lstm_dse::lstm::eval::evaluate(m, &seqs, "x", &configs, false);
}

fn onnx_law(bytes: &[u8]) {
    if let Ok(m) = onnx::parse("fuzz.onnx", bytes) {
        accepted_model_runs(&m);
    }
}

#[test]
fn onnx_mutations() {
    let mut files = seed_files("tests/data", "onnx");
    files.push("models/digits_lstm.onnx".into());
    mutation_campaign("onnx", &seeds(&files), &[], cases(3000, 0.2), onnx_law);
}

fn safetensors_law(bytes: &[u8]) {
    for head in [vec![], vec!["fc".to_string()]] {
        let opts = LoadOptions {
            head,
            head_activation: Vec::new(),
            head_input: None,
            embedding: None,
        };
        if let Ok(m) = safetensors::parse("fuzz.safetensors", bytes, &opts) {
            accepted_model_runs(&m);
        }
    }
}

#[test]
fn safetensors_mutations() {
    let mut files = seed_files("tests/data", "safetensors");
    files.push("models/digits_lstm.safetensors".into());
    let dict = [
        "\"shape\":[4294967296,4294967296]",
        "\"shape\":[0,18446744073709551615]",
        "\"data_offsets\":[0,18446744073709551615]",
        "\"dtype\":\"F64\"",
        "\"dtype\":\"I8\"",
        "_reverse",
        "weight_ih_l1",
    ];
    mutation_campaign(
        "safetensors",
        &seeds(&files),
        &dict,
        cases(2000, 0.15),
        safetensors_law,
    );
}

// ----------------------------------------------------------------------------- TOML: sweep, arch

const TOML_DICT: &[&str] = &[
    "\"0:inf:1\"",
    "\"1:1e12:1\"",
    "\"log:1:10:1000000000000\"",
    "\"0:1:1000000000000\"",
    "\"0:1:0\"",
    "\"log:0:1:3\"",
    "\"nan:1:1\"",
    "[]",
    "\"\"",
    "1e300",
    "-1",
    "18446744073709551615",
    "\"fx0\"",
    "\"e99m99\"",
    "\"w=fx8,a=\"",
    "[0, 4294967296]",
    "true",
    "\"inf\"",
];

fn sweep_law(bytes: &[u8]) {
    use lstm_dse::sweep::spec;
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(s) = toml::from_str::<spec::SweepSpec>(text) else {
        return;
    };
    let mut values = Vec::new();
    for (k, r) in &s.arch.ranges {
        match spec::expand("fuzz.toml", k, r) {
            Ok(v) => values.push(v),
            Err(e) => {
                assert!(!e.to_string().contains('\n'));
                return;
            }
        }
    }
    let _ = spec::check_size("fuzz.toml", &s, &values);
    for c in s.precision.fixed.iter().chain(&s.precision.levels) {
        let _ = c.parse::<lstm_dse::format::PrecisionConfig>();
    }
    if s.precision.levels.len() >= 2
        && lstm_dse::dynamic::count_policies(&s.precision.thresholds, s.precision.levels.len())
            .is_ok()
    {
        let _ =
            lstm_dse::dynamic::parse_thresholds(&s.precision.thresholds, s.precision.levels.len());
    }
}

#[test]
fn sweep_file_mutations() {
    let files = seed_files("sweeps", "toml");
    mutation_campaign(
        "sweep",
        &seeds(&files),
        TOML_DICT,
        cases(3000, 0.15),
        sweep_law,
    );
}

fn arch_law(bytes: &[u8]) {
    use lstm_dse::accel;
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(spec) = accel::ArchSpec::from_toml_str(text, "fuzz.toml") else {
        return;
    };
    let Ok(arch) = accel::Arch::from_spec(&spec, "fuzz.toml") else {
        return;
    };
    // Cost it on two model shapes, fixed and dynamic precision: whatever validates must
    // evaluate without panicking.
    static MODELS: std::sync::OnceLock<Vec<lstm_dse::lstm::Model>> = std::sync::OnceLock::new();
    let models = MODELS.get_or_init(|| {
        ["builtin:tiny", "builtin:zaremba-medium"]
            .iter()
            .map(|name| lstm_dse::lstm::load(name, &LoadOptions::default()).expect("builtin"))
            .collect()
    });
    for model in models {
        for precision in [
            accel::PrecisionProfile::fixed(8, 8),
            accel::PrecisionProfile::dynamic(
                vec![
                    accel::PrecisionLevel {
                        weight_bits: 4,
                        activation_bits: 4,
                    },
                    accel::PrecisionLevel {
                        weight_bits: 16,
                        activation_bits: 16,
                    },
                ],
                vec![0.5, 0.5],
            ),
        ] {
            let w = accel::workload_of(model, 16, 2, precision);
            let _ = accel::evaluate(&arch, &w);
        }
    }
}

#[test]
fn architecture_file_mutations() {
    let files = seed_files("sweeps/arch", "toml");
    mutation_campaign(
        "arch",
        &seeds(&files),
        TOML_DICT,
        cases(3000, 0.15),
        arch_law,
    );
}

// ------------------------------------------------------------------------------------------ CSV

fn results_seed() -> Vec<u8> {
    let text = String::from_utf8(seed_file("results/quick/results.csv")).expect("utf-8");
    let head: Vec<&str> = text.lines().take(12).collect();
    (head.join("\n") + "\n").into_bytes()
}

const POLICIES: &str = "policy,levels,thresholds,frac_level_0,frac_level_1,frac_l0_level_0,frac_l0_level_1,frac_l1_level_0,frac_l1_level_1\n\
0,fx8|fx16,0.5,0.25,0.75,0.5,0.5,0,1\n1,fx8|fx16,inf,1,0,1,0,1,0\n2,fx4|fx8|fx16,0.1/0.2,0.2,0.3,,,,\n";

const GROUPS: &str = "tensor,group_size,footprint_ratio,footprint_ratio_zero_bitmap\n\
weights,16,0.69,0.7\nactivations,16,0.78,0.8\n";

fn results_law(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("results.csv");
    std::fs::write(&p, bytes).expect("write");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let _ = lstm_dse::pareto::front_of_csv(
        &p,
        &s(&["latency_us", "energy_uj"]),
        &s(&["task_accuracy"]),
        Some("task_accuracy >= 0.5 && area_mm2 < 10"),
    );
}

fn policies_law(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for id in 0..3 {
        let _ = lstm_dse::accel::parse_policy(&text, "fuzz.csv", id);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("groups.csv");
    std::fs::write(&p, bytes).expect("write");
    for g in [0, 16, 1 << 40] {
        let _ = lstm_dse::accel::read_group_ratios(&p, g, true);
    }
}

#[test]
fn csv_mutations() {
    let dict = ["\"", ",", "\r\n", "\0", "nan", "inf", "-1e308", "|"];
    let seeds = vec![("results.csv".to_string(), results_seed())];
    mutation_campaign("results-csv", &seeds, &dict, cases(300, 0.05), results_law);
    let seeds = vec![
        ("policies.csv".to_string(), POLICIES.as_bytes().to_vec()),
        ("groups.csv".to_string(), GROUPS.as_bytes().to_vec()),
    ];
    mutation_campaign(
        "policies-csv",
        &seeds,
        &dict,
        cases(2000, 0.1),
        policies_law,
    );
}

// ----------------------------------------------------------------------------- precision strings

fn precision_token() -> impl Strategy<Value = String> {
    prop_oneof![
        "(w=|a=|p=|c=)?(fx|fp|bf|e|fp8e)[0-9]{0,3}(m[0-9]{0,3})?(\\.[0-9]{0,3})?",
        Just("fp32".to_string()),
        Just("fp16".to_string()),
        Just("bf16".to_string()),
        Just("fp8e4m3".to_string()),
        "[ -~]{0,12}",
    ]
}

fn threshold_token() -> impl Strategy<Value = String> {
    prop_oneof![
        "(log:)?(-?[0-9]{1,3}(\\.[0-9])?|inf|-inf|nan):([0-9]{1,3}|inf|1e12):([0-9]{1,13}|0|-1)",
        "-?[0-9]{1,3}(\\.[0-9]{1,2})?|inf|-inf|nan",
        "[ -~]{0,10}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1024, 0.1) as u32))]

    /// A config that parses prints back to itself (and parses again to the same value).
    #[test]
    fn precision_configs_round_trip(parts in proptest::collection::vec(precision_token(), 1..4)) {
        use lstm_dse::format::PrecisionConfig;
        let text = parts.join(",");
        if let Ok(c) = text.parse::<PrecisionConfig>() {
            let again: PrecisionConfig = c.to_string().parse().expect("printed config parses");
            prop_assert_eq!(again, c);
        }
        let _ = lstm_dse::format::parse_config_list(&parts.join(";"));
        let _ = text.parse::<lstm_dse::dynamic::Metric>();
    }

    /// A threshold grid that parses has one fewer threshold than levels per policy, each
    /// non-decreasing, and no more policies than counted.
    #[test]
    fn threshold_grids_are_counted_before_expanding(
        items in proptest::collection::vec(proptest::collection::vec(threshold_token(), 1..3), 1..3),
        levels in 2usize..4,
    ) {
        let text = items.iter().map(|i| i.join("/")).collect::<Vec<_>>().join(",");
        let counted = lstm_dse::dynamic::count_policies(&text, levels);
        match lstm_dse::dynamic::parse_thresholds(&text, levels) {
            Ok(policies) => {
                let counted = counted.expect("a grid that expands was counted");
                prop_assert!(policies.len() as u128 <= counted);
                for p in &policies {
                    prop_assert_eq!(p.thresholds.len(), levels - 1);
                    prop_assert!(p.thresholds.windows(2).all(|w| w[0] <= w[1]));
                }
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    /// Sweep ranges either expand to at most the points limit, or fail in one line.
    #[test]
    fn sweep_ranges_expand_within_the_limit(t in threshold_token()) {
        use lstm_dse::sweep::spec::{expand, RangeSpec};
        match expand("f.toml", "k", &RangeSpec::Text(t)) {
            Ok(v) => prop_assert!(!v.is_empty() && v.len() as u64 <= lstm_dse::limits::DEFAULT_MAX_POINTS),
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    #[test]
    fn sizes_and_filters_never_panic(s in "[ -~]{0,24}") {
        let _ = lstm_dse::limits::parse_size(&s);
        let cols = vec!["a".to_string(), "b".to_string(), "c.d".to_string()];
        let _ = lstm_dse::pareto::Filter::parse(&s, &cols);
        let mut spec = lstm_dse::accel::load_arch(&fuzz_support::root().join("sweeps/arch/epur.toml"))
            .expect("epur.toml");
        let _ = lstm_dse::accel::apply_set(&mut spec, &s);
    }
}
