//! The `dynamic` and `groups` commands: outputs on the trained model (labels read, stable
//! across runs), the low level's resolution warning, bits per character of the language model
//! against onnxruntime, and bad input (one line naming the flag or file, exit code 2, nothing
//! written).

mod common;

use common::run;

const BASE: [&str; 6] = [
    "dynamic",
    "--model",
    "models/digits_lstm.onnx",
    "--input",
    "models/digits_test.x.npy",
    "--quiet",
];

#[test]
fn dynamic_command_on_the_trained_model_reads_labels_and_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let mut outs = Vec::new();
    // The second run uses GPU lanes when there is any adapter: the same bytes.
    let gpu = common::gpu_context().is_some();
    for (k, device) in [(0, "cpu"), (1, if gpu { "gpu" } else { "cpu" })] {
        let out = dir.path().join(format!("run{k}"));
        let mut a = BASE.to_vec();
        a.extend(["--device", device]);
        a.extend([
            "--labels",
            "models/digits_test.labels.npy",
            "--levels",
            "fx8,fx16",
            "--thresholds",
            "0,log:0.1:2:4,inf",
        ]);
        a.extend([
            "--timing",
            "causal",
            "--trace-policy",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]);
        let o = run(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outs.push(std::fs::read(out.join("policies.csv")).unwrap());
        assert!(out.join("policy_2_trace.csv").exists());
    }
    assert_eq!(outs[0], outs[1]);
    let text = String::from_utf8(outs.remove(0)).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert!(header.contains(&"task_accuracy") && header.contains(&"reference_task_accuracy"));
    assert_eq!(text.lines().count(), 1 + 6);
    // The accelerator model reads this file.
    let p = dir.path().join("run1/policies.csv");
    let profile = lstm_dse::accel::read_policy(&p, 3).unwrap();
    assert_eq!(profile.levels.len(), 2);
    // Causal policies start every sequence at the highest level (the default `--start`): the
    // first step's fractions say so; the last step's are measured, one per level.
    assert_eq!(profile.first_step_fraction, vec![0.0, 1.0]);
    assert_eq!(profile.last_step_fraction.len(), 2);
}

#[test]
fn bad_policy_input() {
    let fails = |extra: &[&str], expect: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        let mut a = BASE.to_vec();
        a.extend_from_slice(extra);
        a.extend(["--out", out.to_str().unwrap()]);
        let o = run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err:?} should mention {expect:?}");
        assert!(!out.exists());
    };
    fails(
        &["--levels", "fx8,fx12,fx16", "--thresholds", "0.5/0.1"],
        "must be increasing",
    );
    fails(
        &["--levels", "fx8,fx12,fx16", "--thresholds", "0.5"],
        "3 levels need 2 per policy",
    );
    fails(
        &["--levels", "fx8,fx16", "--thresholds", "0.1/0.2"],
        "2 levels need 1 per policy",
    );
    fails(
        &["--levels", "fx16,fx8", "--thresholds", "0.1"],
        "cannot be ordered by width",
    );
    fails(
        &["--levels", "fx8", "--thresholds", "0.1"],
        "at least two levels",
    );
    // A level the config parser refuses named the token but not the flag.
    fails(&["--levels", "", "--thresholds", "0.1"], "--levels: ");
    fails(
        &["--levels", "fx8,fx0", "--thresholds", "0.1"],
        "--levels: ",
    );
    fails(
        &["--levels", "fp16,fx16", "--thresholds", "0.1"],
        "cannot be ordered",
    );
    fails(
        &[
            "--levels",
            "fx8,fx16",
            "--thresholds",
            "0.1",
            "--metric",
            "median",
        ],
        "--metric",
    );
    fails(
        &["--levels", "fx8,fx16", "--thresholds", "1:0:3"],
        "start <= stop",
    );
    fails(
        &[
            "--levels",
            "fx8,fx16",
            "--thresholds",
            "0.1",
            "--labels",
            "tests/data/peephole.x.npy",
        ],
        "do not match the input",
    );
    fails(
        &[
            "--levels",
            "fx8,fx16",
            "--thresholds",
            "0.1",
            "--trace-policy",
            "4",
        ],
        "--trace-policy 4",
    );
    // An empty model path said ": No such file or directory", naming neither flag nor file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let mut a = BASE.to_vec();
    a[2] = "";
    a.extend(["--levels", "fx8,fx16", "--thresholds", "0.1"]);
    a.extend(["--out", out.to_str().unwrap()]);
    common::fails(&a, &["--model"]);
    assert!(!out.exists());
}

#[test]
fn groups_command_and_its_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g");
    let base = [
        "groups",
        "--model",
        "models/digits_lstm.onnx",
        "--input",
        "models/digits_test.x.npy",
        "--quiet",
        "--device",
        "cpu",
    ];
    let mut a = base.to_vec();
    a.extend([
        "--base",
        "fx8",
        "--group-sizes",
        "16,256",
        "--out",
        out.to_str().unwrap(),
    ]);
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("groups.csv")).unwrap();
    assert_eq!(text.lines().count(), 1 + 4);
    assert!(text
        .starts_with("tensor,group_size,base_bits,groups,values,mean_width_bits,footprint_ratio,"));
    for (sizes, b, expect) in [
        ("16,0", "fx8", "'0' is not a group size"),
        ("x", "fx8", "'x'"),
        ("16", "fp16", "fixed-point base"),
        // Twice the same size gave two identical rows under one key.
        ("16,64,16", "fx8", "16 is listed twice"),
    ] {
        let mut a = base.to_vec();
        let o2 = dir.path().join("bad");
        a.extend([
            "--base",
            b,
            "--group-sizes",
            sizes,
            "--out",
            o2.to_str().unwrap(),
        ]);
        let o = run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err:?} should mention {expect:?}");
        assert!(!o2.exists());
    }
}

#[test]
fn thresholds_below_the_low_levels_resolution_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w");
    let mut a = BASE.to_vec();
    a.extend([
        "--device",
        "cpu",
        "--levels",
        "fx6,fx16",
        "--thresholds",
        "1e-6,0.5,inf",
    ]);
    a.extend(["--out", out.to_str().unwrap()]);
    let o = run(&a);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // fx6 keeps at most a few fraction bits of c: 1e-6 is far below its step, 0.5 is not.
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("1 of 3 policies") && warnings[0].contains("'fx6'"),
        "{err}"
    );
    // A relative metric with a bad eps is refused naming the token.
    let mut a = BASE.to_vec();
    a.extend([
        "--levels",
        "fx6,fx16",
        "--thresholds",
        "0.1",
        "--metric",
        "rel_max_abs:0",
    ]);
    a.extend(["--out", out.to_str().unwrap()]);
    let o = run(&a);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'rel_max_abs:0'"));
}

#[test]
fn bits_per_character_of_the_language_model_match_onnxruntime() {
    // models/README.md: onnxruntime gives 2.1704 bits per character on the committed slice
    // (tools/train_charlm.py). The float64 reference must agree; fx16 everywhere costs little.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lm");
    let o = run(&[
        "dynamic",
        "--model",
        "models/charlm_lstm.onnx",
        "--input",
        "models/charlm_test.x.npy",
        "--labels",
        "models/charlm_test.labels.npy",
        "--levels",
        "fx8,fx16",
        "--thresholds",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut rd = csv::Reader::from_path(out.join("policies.csv")).unwrap();
    let h = rd.headers().unwrap().clone();
    let row = rd.records().next().unwrap().unwrap();
    let get = |c: &str| -> f64 { row[h.iter().position(|x| x == c).unwrap()].parse().unwrap() };
    let reference = get("reference_task_bits");
    assert!(
        (reference - 2.1704).abs() < 5e-4,
        "reference {reference} bits per character"
    );
    let fx16 = get("task_bits");
    assert!(
        fx16 >= reference - 1e-3 && fx16 < reference + 0.01,
        "fx16 {fx16}"
    );
}

/// A classifier whose head reads the last step (`fc(y[:, -1])`, one output per sequence):
/// `[N]` labels score each sequence, against onnxruntime's classes (the fixture's output);
/// `[N, T]` labels are refused, nothing written.
#[test]
fn a_head_on_the_last_step_scores_one_label_per_sequence() {
    use lstm_dse::lstm::npy;
    let (shape, out) = npy::read_f32(std::path::Path::new(
        "tests/data/torch_last_step.output.npy",
    ))
    .unwrap();
    let (n, classes) = (shape[0], shape[1]);
    let argmax = |r: &[f32]| (0..r.len()).fold(0, |b, k| if r[k] > r[b] { k } else { b });
    // onnxruntime's class for every sequence but the last, which gets another one.
    let labels: Vec<f32> = (0..n)
        .map(|s| {
            let c = argmax(&out[s * classes..(s + 1) * classes]);
            (if s + 1 == n { (c + 1) % classes } else { c }) as f32
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("labels.npy");
    npy::write_f32(&lab, &[n], &labels).unwrap();
    let per_step = dir.path().join("per_step.npy");
    npy::write_f32(&per_step, &[n, 7], &vec![0.0; n * 7]).unwrap();
    let out_dir = dir.path().join("out");
    let args = |labels: &std::path::Path| {
        [
            "dynamic",
            "--model",
            "tests/data/torch_last_step.onnx",
            "--input",
            "tests/data/torch_last_step.x.npy",
            "--levels",
            "fx8,fx16",
            "--thresholds",
            "0",
            "--device",
            "cpu",
            "--quiet",
            "--labels",
            labels.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ]
        .map(String::from)
    };
    let a = args(&per_step);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    common::fails(
        &a,
        &[
            "per_step.npy",
            "one output per sequence (last-step)",
            "expected [3]",
        ],
    );
    assert!(!out_dir.exists());
    // Another shape is told the one that fits (it offered [N, T] as well).
    let wrong = dir.path().join("wrong.npy");
    npy::write_f32(&wrong, &[n, 5], &vec![0.0; n * 5]).unwrap();
    let a = args(&wrong);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let err = common::fails(
        &a,
        &[
            "wrong.npy",
            "expected [3] (the head gives one output per sequence, last-step)",
        ],
    );
    assert!(!err.contains("[3, 7]"), "{err}");
    let a = args(&lab);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    common::ok(&a);
    let mut rd = csv::Reader::from_path(out_dir.join("policies.csv")).unwrap();
    let h = rd.headers().unwrap().clone();
    let row = rd.records().next().unwrap().unwrap();
    let get = |c: &str| -> f64 { row[h.iter().position(|x| x == c).unwrap()].parse().unwrap() };
    let want = (n - 1) as f64 / n as f64;
    assert_eq!(get("reference_task_accuracy"), want);
    assert_eq!(get("top1_agreement"), 1.0);
}

#[test]
fn a_sweep_warns_of_a_threshold_below_resolution_once() {
    // The precision stage warns; the report's rerun of the policies on one sequence used to
    // warn again (and alone, on a cached precision stage).
    let (dir, spec) = common::sweep_file(&[
        (
            "levels = [\"fx8\", \"fx16\"]",
            "levels = [\"fx6\", \"fx16\"]",
        ),
        ("thresholds = \"0,inf\"", "thresholds = \"1e-6,0.5\""),
        (
            "\"compute.units\" = [2, 4]",
            "\"compute.units\" = [2, 4]\n\"tracking.enabled\" = [true]",
        ),
    ]);
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (cache, first, second) = (path("cache"), path("o1"), path("o2"));
    let warnings = |out: &str| {
        let o = run(&["sweep", &spec, "--out", out, "--cache", &cache, "--quiet"]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{err}");
        let lines: Vec<String> = err
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .map(str::to_string)
            .collect();
        (lines, err)
    };
    let (lines, err) = warnings(&first);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("1 of 2 policies") && lines[0].contains("'fx6'"),
        "{err}"
    );
    let (lines, err) = warnings(&second);
    assert!(lines.is_empty(), "a cached precision stage: {err}");
}
