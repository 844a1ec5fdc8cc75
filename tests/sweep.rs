//! Sweeps end to end through the binary: outputs, byte-identical results across --jobs, after
//! an interruption and --resume, and after --shard + merge; every shipped sweep file runs in
//! smoke mode; bad sweep files and flags exit 2 with one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::ok;

fn lstm_dse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

const SPEC: &str = r#"
name = "test"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
seq_len = 20
[precision]
fixed = ["fx6", "fx8", "fx16"]
levels = ["fx6", "fx16"]
thresholds = "0,0.5,inf"
device = "cpu"
[arch]
base = "sweeps/arch/epur.toml"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"tracking.enabled" = [true]
"compute.units" = "4:12:4"
"compute.multipliers_per_unit" = [8, 16, 32]
"dispatch.policy" = ["gate-per-unit", "tiled"]
[pareto]
minimize = ["latency_us", "energy_uj"]
maximize = ["top1_agreement"]
where = "top1_agreement >= 0.5"
"#;

fn spec_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("spec.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn results_are_identical_across_jobs_resume_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_file(dir.path(), SPEC);
    let s = spec.to_str().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let out = |name: &str| dir.path().join(name);
    let o = |name: &str| out(name).to_str().unwrap().to_string();
    ok(&[
        "sweep",
        s,
        "--out",
        &o("plain"),
        "--cache",
        c,
        "--quiet",
        "--jobs",
        "1",
    ]);
    for f in [
        "results.csv",
        "front.csv",
        "front.svg",
        "spec.resolved.toml",
    ] {
        assert!(out("plain").join(f).exists(), "{f} missing");
    }
    let plain = read(out("plain").join("results.csv"));
    let rows = String::from_utf8_lossy(&plain).lines().count() - 1;
    assert_eq!(
        rows,
        6 * 3 * 3 * 2,
        "3 fixed options + 3 policies, x 18 architecture points"
    );
    // Any thread count.
    ok(&[
        "sweep",
        s,
        "--out",
        &o("jobs2"),
        "--cache",
        c,
        "--quiet",
        "--jobs",
        "2",
    ]);
    assert_eq!(plain, read(out("jobs2").join("results.csv")));
    // Interrupted mid-row (as after kill -9: the work in the staging folder), then resumed.
    let staging = out("resumed").join(".incomplete");
    std::fs::create_dir_all(&staging).unwrap();
    let cut = plain.len() * 2 / 3 + 7;
    std::fs::write(staging.join("results.csv"), &plain[..cut]).unwrap();
    std::fs::copy(
        out("plain").join("spec.resolved.toml"),
        staging.join("spec.resolved.toml"),
    )
    .unwrap();
    ok(&[
        "sweep",
        s,
        "--out",
        &o("resumed"),
        "--cache",
        c,
        "--quiet",
        "--resume",
    ]);
    assert_eq!(plain, read(out("resumed").join("results.csv")));
    assert_eq!(
        read(out("plain").join("front.csv")),
        read(out("resumed").join("front.csv"))
    );
    // Sharded, then merged.
    for i in 0..3 {
        ok(&[
            "sweep",
            s,
            "--out",
            &o(&format!("shard{i}")),
            "--cache",
            c,
            "--quiet",
            "--shard",
            &format!("{i}/3"),
        ]);
    }
    ok(&[
        "merge",
        &o("shard0"),
        &o("shard1"),
        &o("shard2"),
        "--out",
        &o("merged"),
    ]);
    for f in ["results.csv", "front.csv", "front.svg"] {
        assert_eq!(
            read(out("plain").join(f)),
            read(out("merged").join(f)),
            "{f} differs after merge"
        );
    }
    // The runs above reused one cached precision result; other precision settings get their own.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let other = spec_file(
        dir.path(),
        &SPEC.replace("fixed = [\"fx6\", \"fx8\", \"fx16\"]", "fixed = [\"fx12\"]"),
    );
    ok(&[
        "sweep",
        other.to_str().unwrap(),
        "--out",
        &o("other"),
        "--cache",
        c,
        "--quiet",
    ]);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    let text = String::from_utf8(read(out("other").join("results.csv"))).unwrap();
    assert!(
        text.contains(",fx12,") && !text.contains(",fx8,"),
        "stale cache used"
    );
}

#[test]
fn every_shipped_sweep_runs_in_smoke_mode() {
    let dir = tempfile::tempdir().unwrap();
    let sweeps = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps");
    let mut n = 0;
    for e in std::fs::read_dir(&sweeps).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        let out = dir.path().join(&name);
        let cache = dir.path().join("cache");
        ok(&[
            "sweep",
            p.to_str().unwrap(),
            "--smoke",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
        ]);
        let rows = std::fs::read_to_string(out.join("results.csv"))
            .unwrap()
            .lines()
            .count();
        assert!(rows > 1, "{name}: no rows");
        assert!(out.join("front.csv").exists(), "{name}: no front");
        n += 1;
    }
    assert!(n >= 5, "expected quick + four paper sweeps, found {n}");
}

/// A smoke run without `--out` writes `results/<name>-smoke`, never the real results, and its
/// `spec.resolved.toml` lists the range values it ran (it recorded the whole ranges).
#[test]
fn a_smoke_run_records_what_it_ran_and_leaves_the_real_results() {
    let dir = tempfile::tempdir().unwrap();
    let arch = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/arch/epur.toml");
    let spec = SPEC.replace("sweeps/arch/epur.toml", arch.to_str().unwrap());
    std::fs::write(dir.path().join("s.toml"), spec).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(dir.path())
        .args(["sweep", "s.toml", "--smoke", "--quiet", "--cache", "c"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("results/test-smoke");
    // The cluster's smoke run takes the same default (it wrote its scripts, and would have
    // merged, into results/test).
    let slurm = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(dir.path())
        .args([
            "sweep",
            "s.toml",
            "--smoke",
            "--slurm",
            "--dry-run",
            "--shards",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        slurm.status.success(),
        "{}",
        String::from_utf8_lossy(&slurm.stderr)
    );
    assert!(
        out.join("slurm").is_dir(),
        "no scripts in results/test-smoke/slurm"
    );
    assert!(
        !dir.path().join("results/test").exists(),
        "the real results"
    );
    let resolved = std::fs::read_to_string(out.join("spec.resolved.toml")).unwrap();
    assert!(
        resolved.contains(r#""compute.units" = [4, 8]"#)
            && resolved.contains(r#""compute.multipliers_per_unit" = [8, 16]"#)
            && resolved.contains(r#""dispatch.policy" = ["gate-per-unit", "tiled"]"#),
        "{resolved}"
    );
}

#[test]
fn bad_sweeps_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            SPEC.replace("[pareto]", "[pareto]\nbogus = 1"),
            vec![],
            "bogus",
        ),
        (SPEC.replace("\"4:12:4\"", "[]"), vec![], "empty range"),
        (
            SPEC.replace("\"4:12:4\"", "\"4:12:-4\""),
            vec![],
            "wrong way",
        ),
        (
            SPEC.replace(
                "maximize = [\"top1_agreement\"]",
                "maximize = [\"accuracy\"]",
            ),
            vec![],
            "'accuracy' names no column",
        ),
        (
            SPEC.replace("top1_agreement >= 0.5", "top1_agreement >>= 0.5"),
            vec![],
            "pareto.where",
        ),
        (SPEC.to_string(), vec!["--shard", "3/2"], "--shard '3/2'"),
        (
            SPEC.replace("\"compute.units\"", "\"compute.unitz\""),
            vec![],
            "unitz",
        ),
    ];
    for (text, extra, expect) in cases {
        let spec = spec_file(dir.path(), &text);
        let mut args = vec!["sweep", spec.to_str().unwrap(), "--out", o, "--quiet"];
        args.extend(extra);
        let r = lstm_dse(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{expect}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err:?} should mention {expect:?}");
    }
    // Resuming against a changed spec is refused, naming the setting.
    let spec = spec_file(dir.path(), SPEC);
    let c = dir.path().join("cache");
    ok(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        o,
        "--quiet",
        "--cache",
        c.to_str().unwrap(),
    ]);
    let spec = spec_file(dir.path(), &SPEC.replace("seq_len = 20", "seq_len = 30"));
    let r = lstm_dse(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        o,
        "--quiet",
        "--resume",
        "--cache",
        c.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("spec changed") && err.contains("seq_len"),
        "{err}"
    );
}

#[test]
fn killed_with_sigkill_then_resumed_equals_the_plain_run() {
    let dir = tempfile::tempdir().unwrap();
    // A larger grid, so that the kill lands while rows are being written.
    let big = SPEC
        .replace("\"4:12:4\"", "\"1:32:1\"")
        .replace("[8, 16, 32]", "\"4:128:4\"")
        .replace("fixed = [\"fx6\", \"fx8\", \"fx16\"]", "fixed = [\"fx8\"]");
    let spec = spec_file(dir.path(), &big);
    let s = spec.to_str().unwrap();
    let c = dir.path().join("cache");
    let (plain, killed) = (dir.path().join("plain"), dir.path().join("killed"));
    ok(&[
        "sweep",
        s,
        "--out",
        plain.to_str().unwrap(),
        "--cache",
        c.to_str().unwrap(),
        "--quiet",
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "sweep",
            s,
            "--out",
            killed.to_str().unwrap(),
            "--cache",
            c.to_str().unwrap(),
            "--quiet",
        ])
        .spawn()
        .unwrap();
    // Wait until some rows exist, then kill -9 (wherever it is: the outcome must not depend on it).
    let results = killed.join("results.csv");
    for _ in 0..400 {
        if std::fs::metadata(&results)
            .map(|m| m.len() > 4096)
            .unwrap_or(false)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    ok(&[
        "sweep",
        s,
        "--out",
        killed.to_str().unwrap(),
        "--cache",
        c.to_str().unwrap(),
        "--quiet",
        "--resume",
    ]);
    assert_eq!(read(plain.join("results.csv")), read(results));
    assert_eq!(
        read(plain.join("front.csv")),
        read(killed.join("front.csv"))
    );
}

/// A model whose weights are ONNX external data (torch's default export): the data file is an
/// input of the run like the model file. Changed weights were served from the precision cache
/// (keyed by the `.onnx` bytes alone) and `spec.resolved.toml` did not list the data file.
#[test]
fn external_weights_are_inputs_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    for f in ["torch_dynamo.onnx", "torch_dynamo.onnx.data"] {
        std::fs::copy(Path::new("tests/data").join(f), m.join(f)).unwrap();
    }
    let model = m.join("torch_dynamo.onnx").display().to_string();
    let (_spec_dir, spec) = common::sweep_file(&[(
        r#"models = ["builtin:tiny"]"#,
        &format!("models = [{model:?}]"),
    )]);
    let cache = dir.path().join("cache");
    let run = |out: &str| {
        let out = dir.path().join(out);
        ok(&[
            "sweep",
            &spec,
            "--out",
            out.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--quiet",
        ]);
        let resolved = std::fs::read_to_string(out.join("spec.resolved.toml")).unwrap();
        let results = std::fs::read_to_string(out.join("results.csv")).unwrap();
        (resolved, results)
    };
    let (resolved, before) = run("a");
    assert!(resolved.contains("torch_dynamo.onnx.data"), "{resolved}");
    // Other weights in the data file: a second cache entry, other accuracy figures.
    let data = m.join("torch_dynamo.onnx.data");
    let mut bytes = std::fs::read(&data).unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| 1.5 * f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    bytes = floats.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&data, bytes).unwrap();
    let (_, after) = run("b");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    assert_ne!(before, after);
}
