//! Outputs under a hostile environment, through the binary: a command that writes several
//! files replaces the previous run's set whole or not at all when a write fails mid-way (a
//! full disk, simulated with `ulimit -f`, or a folder where a temporary file goes); every
//! failed write names its file; a legal file name near the limit is written; `report` and
//! `plot` refuse a directory whose lock a sweep holds; and a model path missing from another
//! working directory is named once, with where it is looked for.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{ok, refused};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lstm-dse"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn lstm_dse(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// The binary with files limited to `kib` KiB (`ulimit -f`, SIGXFSZ ignored): a write past
/// it fails as on a full disk.
fn limited(kib: u64, args: &[&str]) -> Output {
    Command::new("bash")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(args)
        .output()
        .unwrap()
}

/// Every file under `dir` with a hash of its bytes, sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    use std::hash::{Hash, Hasher};
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(tree(&p));
        } else {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(&p).unwrap().hash(&mut h);
            v.push((p, h.finish()));
        }
    }
    v.sort();
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `sequences` x `steps` seeded inputs for `builtin:tiny` to `path`.
fn gen_input(path: &Path, sequences: usize, steps: usize) {
    let (n, t) = (sequences.to_string(), steps.to_string());
    ok(&[
        "gen-input",
        "--model",
        "builtin:tiny",
        "--sequences",
        &n,
        "--steps",
        &t,
        "--output",
        s(path),
    ]);
}

#[test]
fn dynamic_on_a_full_disk_keeps_the_previous_policies_and_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (x, out) = (dir.path().join("x.npy"), dir.path().join("dyn"));
    gen_input(&x, 4, 64);
    let run = |thresholds: &str| {
        [
            "dynamic",
            "--model",
            "builtin:tiny",
            "--input",
            s(&x),
            "--levels",
            "fx8,fx16",
            "--thresholds",
            thresholds,
            "--out",
            s(&out),
            "--device",
            "cpu",
            "-q",
            "--trace-policy",
            "1",
        ]
        .map(str::to_string)
    };
    let first = run("0:1:2");
    ok(&first.iter().map(String::as_str).collect::<Vec<_>>());
    let before = tree(&out);
    let size = |name: &str| std::fs::metadata(out.join(name)).unwrap().len();
    let (policies, trace) = (size("policies.csv"), size("policy_1_trace.csv"));
    // policies.csv fits under the limit, the trace does not.
    let kib = trace / 1024 - 1;
    assert!(policies + 64 < kib * 1024, "{policies} vs {trace}");
    let second = run("0:0.5:2");
    let o = limited(kib, &second.iter().map(String::as_str).collect::<Vec<_>>());
    refused(&o, &["policy_1_trace.csv"]);
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(!text.contains("name the same file"), "{text}");
    assert_eq!(
        tree(&out),
        before,
        "the previous pair stays, nothing else is left"
    );
}

#[test]
fn a_rerun_of_dynamic_removes_the_previous_runs_policy_traces() {
    // A policy trace belongs to the policies.csv of its run: left beside a new one (other
    // thresholds), `plot trace` drew the old timeline under the new policies.
    let dir = tempfile::tempdir().unwrap();
    let (x, out) = (dir.path().join("x.npy"), dir.path().join("dyn"));
    gen_input(&x, 2, 8);
    let run = |extra: &[&str]| {
        let mut args = vec!["dynamic", "--model", "builtin:tiny", "--input", s(&x)];
        args.extend(["--levels", "fx8,fx16", "--thresholds", "0:1:2"]);
        args.extend(["--out", s(&out), "--device", "cpu", "-q"]);
        args.extend(extra);
        ok(&args);
    };
    run(&["--trace-policy", "1"]);
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    run(&["--trace-policy", "0"]);
    assert!(out.join("policy_0_trace.csv").is_file());
    assert!(!out.join("policy_1_trace.csv").exists());
    // The same command again replaces its trace (it was refused as two outputs naming the
    // trace: the new one and the previous run's, to be removed).
    let first = std::fs::read(out.join("policy_0_trace.csv")).unwrap();
    // A file whose name reads as policy 0 too is no trace this tool writes: left alone.
    std::fs::write(out.join("policy_00_trace.csv"), "mine").unwrap();
    run(&["--trace-policy", "0"]);
    assert_eq!(
        std::fs::read(out.join("policy_0_trace.csv")).unwrap(),
        first
    );
    assert_eq!(
        std::fs::read(out.join("policy_00_trace.csv")).unwrap(),
        b"mine"
    );
    run(&[]);
    assert!(!out.join("policy_0_trace.csv").exists());
    assert!(out.join("policies.csv").is_file() && out.join("notes.txt").is_file());
}

#[test]
fn trace_failing_mid_set_keeps_the_previous_files_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tr");
    let run = |precisions: &str| {
        lstm_dse(&[
            "trace",
            "--model",
            "tests/data/torch_lstm3.onnx",
            "--input",
            "tests/data/torch_lstm3.x.npy",
            "--precisions",
            precisions,
            "--out",
            s(&out),
            "--device",
            "cpu",
            "-q",
        ])
    };
    assert!(run("fx8").status.success());
    // The second file cannot be written (a folder holds its temporary name).
    std::fs::create_dir(out.join("cell_delta.csv.partial")).unwrap();
    let before = tree(&out);
    refused(&run("fp32,fx8,fx16"), &["cell_delta.csv"]);
    assert_eq!(tree(&out), before, "errors.csv is not replaced alone");
}

#[test]
fn pareto_on_a_full_disk_keeps_the_previous_front_and_figure() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("r.csv");
    std::fs::write(&input, "a,b\n1,5\n2,4\n3,3\n4,2\n5,1\n").unwrap();
    let (csv, svg) = (dir.path().join("f.csv"), dir.path().join("f.svg"));
    let args = |minimize: &'static str| {
        vec![
            "pareto".to_string(),
            s(&input).to_string(),
            "--minimize".to_string(),
            minimize.to_string(),
            "--out".to_string(),
            s(&csv).to_string(),
            "--plot".to_string(),
            s(&svg).to_string(),
        ]
    };
    let first = args("a");
    ok(&first.iter().map(String::as_str).collect::<Vec<_>>());
    let before = tree(dir.path());
    // The front (a few rows) fits in 1 KiB, its figure does not.
    let second = args("a,b");
    let o = limited(1, &second.iter().map(String::as_str).collect::<Vec<_>>());
    refused(&o, &["f.svg"]);
    assert_eq!(tree(dir.path()), before, "both files or neither");
}

/// A small sweep of the built-in model, from `cwd`.
const SPEC: &str = r#"
name = "sets"
[workload]
models = ["MODEL"]
sequences = 2
steps = 6
seq_len = 20
[precision]
fixed = ["fx8", "fx16"]
device = "cpu"
[arch]
base = "ARCH"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"compute.units" = "4:12:4"
"compute.multipliers_per_unit" = [8, 16, 32]
[pareto]
minimize = ["latency_us", "energy_uj"]
"#;

fn sweep(cwd: &Path, model: &str) -> PathBuf {
    let arch = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/arch/epur.toml");
    let spec = cwd.join("sets.toml");
    let text = SPEC.replace("MODEL", model).replace("ARCH", s(&arch));
    std::fs::write(&spec, text).unwrap();
    let out = cwd.join("out");
    let o = bin()
        .current_dir(cwd)
        .args(["sweep", s(&spec), "--out", s(&out), "-q"])
        .args(["--cache", s(&cwd.join("cache"))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn merge_on_a_full_disk_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep(dir.path(), "builtin:tiny");
    let merged = dir.path().join("merged");
    let o = limited(1, &["merge", s(&out), "--out", s(&merged)]);
    let staging = merged.join(".incomplete");
    refused(&o, &[s(&staging), "File too large"]);
}

#[test]
fn a_legal_name_near_the_limit_is_written_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    // 254 bytes: a legal name, whose "<name>.partial" would not be.
    let long = dir.path().join(format!("{}.npy", "m".repeat(250)));
    ok(&["gen-input", "--model", "builtin:tiny", "--output", s(&long)]);
    assert!(long.is_file());
    assert_eq!(tree(dir.path()).len(), 1, "no temporary file is left");
}

#[test]
fn report_and_plot_refuse_a_directory_a_sweep_holds() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep(dir.path(), "builtin:tiny");
    // This test holds the lock as a running sweep does (and writes its pid there).
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(out.join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(out.join(".lock"), format!("{}\n", std::process::id())).unwrap();
    let page = out.join("report.html");
    let before = std::fs::read(&page).unwrap();
    let pid = std::process::id().to_string();
    refused(&lstm_dse(&["report", s(&out), "-q"]), &[s(&out), &pid]);
    refused(
        &lstm_dse(&["plot", "front", s(&out), "-q"]),
        &[s(&out), &pid],
    );
    assert_eq!(std::fs::read(&page).unwrap(), before);
    // A figure written elsewhere only reads the directory.
    let elsewhere = dir.path().join("front.svg");
    ok(&["plot", "front", s(&out), "--out", s(&elsewhere), "-q"]);
    drop(lock);
    ok(&["report", s(&out), "-q"]);
}

#[test]
fn a_model_missing_from_another_directory_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torch_lstm3.onnx");
    std::fs::copy(&model, dir.path().join("kws_model.onnx")).unwrap();
    let out = sweep(dir.path(), "kws_model.onnx");
    // From the repository root, where kws_model.onnx is not.
    let err = refused(&lstm_dse(&["report", s(&out), "-q"]), &["kws_model.onnx"]);
    assert_eq!(err.matches("kws_model.onnx").count(), 1, "{err}");
    assert!(
        err.contains("relative to the directory the sweep ran from"),
        "{err}"
    );
}
