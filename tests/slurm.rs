//! Sweeps on a real SLURM scheduler: `sweep --slurm --shards 3` submitted through sbatch to a
//! one-node cluster on localhost (tools/slurm-local.sh, started by .ci/run) gives the bytes of
//! a single-process run; a pre-empted shard is found by `status` and finished by
//! `status --resubmit`. Outside CI, a machine where the scheduler cannot start skips with a
//! message; with CI=true the test fails instead. `--dry-run` and bad flags need no scheduler.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn lstm_dse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run lstm-dse")
}

fn ok(args: &[&str]) -> String {
    let o = lstm_dse(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

const SPEC: &str = r#"
name = "onslurm"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 5
seq_len = 20
[precision]
fixed = ["fx6", "fx8", "fx16"]
levels = ["fx6", "fx16"]
thresholds = "0,0.05,inf"
device = "cpu"
[arch]
base = "sweeps/arch/epur.toml"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"tracking.enabled" = [true]
"compute.units" = "4:16:4"
"compute.multipliers_per_unit" = [8, 16, 32]
"dispatch.policy" = ["gate-per-unit", "tiled"]
[pareto]
minimize = ["latency_us", "energy_uj", "area_mm2"]
maximize = ["top1_agreement"]
"#;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn node_up() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            let t = String::from_utf8_lossy(&o.stdout);
            o.status.success() && (t.contains("idle") || t.contains("mix") || t.contains("alloc"))
        })
}

/// A working scheduler: one already up, or the one tools/slurm-local.sh starts.
fn scheduler() -> bool {
    if node_up() {
        return true;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/slurm-local.sh");
    let started = Command::new("bash").arg(&script).output();
    if node_up() {
        return true;
    }
    let why = match started {
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        !in_ci(),
        "CI=true but the SLURM scheduler could not start: {why}"
    );
    eprintln!("skipping: no SLURM scheduler could be started here ({why})");
    false
}

/// Waits until `marker` exists, failing with the logs if `status` reports a failure.
fn wait_for(out: &Path, marker: &str, limit: Duration) {
    let start = Instant::now();
    let path = out.join("slurm/state").join(marker);
    while !path.exists() {
        let status = ok(&["status", s(out)]);
        if status.contains("failed or pre-empted") || start.elapsed() > limit {
            let logs: String = std::fs::read_dir(out.join("slurm/logs"))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| {
                            format!(
                                "--- {}\n{}",
                                e.path().display(),
                                std::fs::read_to_string(e.path()).unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            panic!("waiting for {marker}:\n{status}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_three_shard_slurm_run_gives_the_bytes_of_one_process_and_resumes_a_lost_shard() {
    if !scheduler() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let spec = d.join("spec.toml");
    std::fs::write(&spec, SPEC).expect("spec");
    // A space, quotes and `#` in --out reach sbatch's own reading of the `#SBATCH` lines
    // (`--output=` names the log folder): a backslash before a space ended the word there.
    let (single, cluster) = (d.join("single"), d.join("clu'ster #1 \"x\""));
    ok(&[
        "sweep",
        s(&spec),
        "--out",
        s(&single),
        "--cache",
        s(&d.join("cache-single")),
        "--quiet",
    ]);

    let cache = d.join("cache-cluster");
    let said = ok(&[
        "sweep",
        s(&spec),
        "--slurm",
        "--shards",
        "3",
        "--time",
        "10:00",
        "--out",
        s(&cluster),
        "--cache",
        s(&cache),
    ]);
    assert!(said.contains("submitted onslurm"), "{said}");
    wait_for(&cluster, "merge.done", Duration::from_secs(300));
    let status = ok(&["status", s(&cluster)]);
    assert!(
        status.contains("shards: 3 done, 0 running, 0 pending, 0 failed"),
        "{status}"
    );
    for f in ["results.csv", "front.csv"] {
        assert!(
            read(single.join(f)) == read(cluster.join(f)),
            "{f} differs between one process and 3 SLURM shards"
        );
    }
    assert!(cluster.join("report.html").exists());
    // The precision stage ran once, in phase 1: its cache entry was not rewritten by a shard
    // (written before phase 1 marked itself done).
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache)
        .expect("cache")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mtime = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    assert!(mtime(&entries[0]) <= mtime(&cluster.join("slurm/state/precision.done")));

    // A pre-empted shard: its marker gone, its work still in its staging folder (it never
    // published) with its results cut mid-row, the merge not run. (A finished shard's
    // published results.csv cut short is refused by --resume, as lines removed.)
    let shard1 = cluster.join("shards/1");
    let staging = shard1.join(".incomplete");
    std::fs::create_dir_all(&staging).expect("staging");
    for f in [
        "results.csv",
        "skipped.csv",
        "shard.toml",
        "spec.resolved.toml",
    ] {
        if shard1.join(f).exists() {
            std::fs::rename(shard1.join(f), staging.join(f)).expect("move");
        }
    }
    let text = std::fs::read_to_string(staging.join("results.csv")).expect("shard 1");
    let cut = text.len() / 2;
    std::fs::write(staging.join("results.csv"), &text.as_bytes()[..cut]).expect("cut");
    for f in [
        "slurm/state/shard-1.done",
        "slurm/state/merge.done",
        "results.csv",
        "front.csv",
    ] {
        std::fs::remove_file(cluster.join(f)).expect("remove");
    }
    let status = ok(&["status", s(&cluster)]);
    assert!(
        status.contains("2 done, 0 running, 0 pending, 1 failed"),
        "{status}"
    );
    assert!(
        status.contains("failed or pre-empted shards: [1]"),
        "{status}"
    );
    let said = ok(&["status", s(&cluster), "--resubmit"]);
    assert!(said.contains("resubmitted"), "{said}");
    wait_for(&cluster, "merge.done", Duration::from_secs(300));
    for f in ["results.csv", "front.csv"] {
        assert!(
            read(single.join(f)) == read(cluster.join(f)),
            "{f} differs after the resubmitted shard"
        );
    }
}

#[test]
fn dry_run_writes_readable_scripts_and_bad_flags_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let spec = d.join("spec.toml");
    std::fs::write(&spec, SPEC).expect("spec");
    let out = d.join("out");
    let printed = ok(&[
        "sweep",
        s(&spec),
        "--slurm",
        "--shards",
        "4",
        "--partition",
        "batch",
        "--time",
        "1-00:00",
        "--dry-run",
        "--out",
        s(&out),
    ]);
    let slurm = out.join("slurm");
    for name in ["precision.sh", "shards.sh", "merge.sh", "submit.sh"] {
        let path = slurm.join(name);
        let text = std::fs::read_to_string(&path).expect("script written");
        assert!(printed.contains(&text), "{name} not printed");
        let check = Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("bash");
        assert!(
            check.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        if name != "submit.sh" {
            assert!(text.contains("#SBATCH --partition=batch"), "{name}");
            assert!(text.contains("#SBATCH --time=1-00:00"), "{name}");
        }
    }
    let shards = std::fs::read_to_string(slurm.join("shards.sh")).expect("shards");
    assert!(shards.contains("#SBATCH --array=0-3"));
    assert!(shards.contains("--shard \"$i/4\"") && shards.contains("--resume"));
    let submit = std::fs::read_to_string(slurm.join("submit.sh")).expect("submit");
    assert!(submit.contains("--dependency=afterok:$p shards.sh"));
    assert!(submit.contains("--dependency=afterok:$s merge.sh"));
    assert!(
        !slurm.join("jobs.toml").exists(),
        "--dry-run submitted something"
    );
    // submit.sh run by hand records the job ids as `sweep --slurm` does, so `status` follows
    // the run (it found no jobs.toml). A stand-in sbatch numbers its jobs 7001, 7002, 7003.
    {
        use std::os::unix::fs::PermissionsExt;
        let bin = d.join("fake-sbatch");
        std::fs::create_dir(&bin).expect("dir");
        let counter = d.join("jobs-submitted");
        let sbatch = format!(
            "#!/bin/sh\nn=$(cat '{0}' 2>/dev/null || echo 7000)\nn=$((n + 1))\necho $n > '{0}'\necho \"$n;cluster\"\n",
            counter.display()
        );
        for (tool, body) in [("sbatch", sbatch.as_str()), ("squeue", "#!/bin/sh\ntrue\n")] {
            let path = bin.join(tool);
            std::fs::write(&path, body).expect("tool");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let run = Command::new("bash")
            .arg(slurm.join("submit.sh"))
            .env("PATH", &path)
            .output()
            .expect("submit.sh");
        assert!(run.status.success(), "{run:?}");
        let jobs = std::fs::read_to_string(slurm.join("jobs.toml")).expect("jobs.toml");
        for want in [
            "shards = 4",
            "precision = \"7001\"",
            "shard_arrays = [\"7002\"]",
            "merge = \"7003\"",
        ] {
            assert!(jobs.contains(want), "{want}: {jobs}");
        }
        let status = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args(["status", s(&out)])
            .env("PATH", &path)
            .output()
            .expect("status");
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(
            !String::from_utf8_lossy(&status.stderr).contains("jobs.toml"),
            "{status:?}"
        );
        assert!(
            text.contains("7002"),
            "status names the shard array: {text}"
        );
        std::fs::remove_file(slurm.join("jobs.toml")).expect("back to the dry run");
    }

    // Bad flags, and a machine without sbatch: exit 2, one line, nothing written.
    let empty = d.join("empty-path");
    std::fs::create_dir(&empty).expect("dir");
    let cases: Vec<(Vec<&str>, Option<&Path>, &str)> = vec![
        (vec!["--time", "1h"], None, "--time '1h'"),
        (vec!["--time", "0"], None, "--time '0'"),
        (vec!["--partition", "a b"], None, "--partition 'a b'"),
        (vec!["--shards", "0"], None, "--shards 0"),
        (vec![], Some(&empty), "sbatch"),
    ];
    for (extra, path, want) in cases {
        let fresh = d.join("fresh");
        let mut args = vec!["sweep", s(&spec), "--slurm", "--out", s(&fresh)];
        if !extra.contains(&"--shards") {
            args.extend(["--shards", "3"]);
        }
        args.extend(extra.iter().copied());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lstm-dse"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args(&args);
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        let o = cmd.output().expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!fresh.exists(), "{args:?} wrote {}", fresh.display());
    }
    // status of a directory that never ran on SLURM.
    let o = lstm_dse(&["status", s(d)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("jobs.toml"));
}

/// A newline in the sweep's name, `--out`, `--cache` or the sweep file's path put a command
/// of its own into the scripts (`touch /tmp/INJECTED #` as a line of shards.sh, run by
/// merge.sh): refused, exit 2, one line naming the key or flag, nothing written. Other
/// characters (quotes, `$( )`, `#`, `%`, spaces) are quoted: running the generated merge.sh
/// runs no command of theirs.
#[test]
fn control_characters_are_refused_and_other_characters_quoted_in_slurm_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let spec = d.join("spec.toml");
    std::fs::write(&spec, SPEC).expect("spec");
    let injected = SPEC.replace("name = \"onslurm\"", "name = \"s\\ntouch /tmp/INJECTED #\"");
    let bad_spec = d.join("bad.toml");
    std::fs::write(&bad_spec, injected).expect("spec");
    let odd_spec = d.join("odd\nname.toml");
    std::fs::write(&odd_spec, SPEC).expect("spec");
    let fresh = d.join("fresh");
    let evil = "x\ntouch /tmp/INJECTED; #";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![s(&bad_spec), "--out", s(&fresh)], "name: "),
        (vec![s(&spec), "--out", evil], "--out: "),
        (
            vec![s(&spec), "--out", s(&fresh), "--cache", evil],
            "--cache: ",
        ),
        (vec![s(&odd_spec), "--out", s(&fresh)], "the sweep file: "),
        (vec![s(&spec), "--out", "a\rb"], "carriage return"),
    ];
    for (args, want) in cases {
        let mut all = vec!["sweep"];
        all.extend(args);
        all.extend(["--slurm", "--shards", "2", "--dry-run"]);
        let o = lstm_dse(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{all:?}: {err}");
        assert!(
            err.contains(want) && err.contains("control"),
            "{all:?}: {err}"
        );
        assert!(!fresh.exists(), "{all:?} wrote {}", fresh.display());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(!root.join("x\ntouch /tmp/INJECTED; #").exists(), "{all:?}");
        assert!(!root.join("a\rb").exists(), "{all:?}");
    }
    // Legal but hostile: the generated merge.sh, run by hand, fails at the merge of shards
    // that never ran, and never runs the `touch` in the folder's name.
    let marker = "lstm-dse-slurm-injected";
    let out = d.join(format!("o ut'$(touch {marker})#%a;\"q\"`touch {marker}`"));
    ok(&[
        "sweep",
        s(&spec),
        "--slurm",
        "--shards",
        "2",
        "--dry-run",
        "--out",
        s(&out),
    ]);
    let merge = out.join("slurm").join("merge.sh");
    let text = std::fs::read_to_string(&merge).expect("merge.sh");
    assert!(
        text.lines()
            .any(|l| l.starts_with("#SBATCH --output=\"") && l.contains("o ut'$(touch")),
        "the log path in double quotes for sbatch: {text}"
    );
    let o = Command::new("bash")
        .arg(&merge)
        .env_remove("SLURM_JOB_ID")
        .output()
        .expect("bash");
    assert!(!o.status.success(), "the merge of missing shards succeeded");
    assert!(
        out.join("slurm/state/merge.started").exists(),
        "merge.sh did not start"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        !root.join(marker).exists(),
        "merge.sh ran a command from --out"
    );
    assert!(
        !d.join(marker).exists(),
        "merge.sh ran a command from --out"
    );
}

/// `status` read `jobs.toml` as written: `shards = 100000000000` aborted allocating a state per
/// shard (exit 134), and `shards = 0` printed "failed or pre-empted shards: []" with advice to
/// resubmit. The job list is checked as `sweep --slurm` writes it (1 to 10,000 shards, job ids
/// of digits, at least one shard array): anything else exits 2 naming the file and the key,
/// before anything is printed. `sweep --slurm --shards` past 10,000 is refused likewise.
#[test]
fn status_refuses_a_job_list_it_cannot_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("slurm/state")).expect("state");
    let list = d.join("slurm/jobs.toml");
    let good = "shards = 2\nprecision = \"1\"\nshard_arrays = [\"2\"]\nmerge = \"3\"\n";
    let no_queue = d.join("empty-path");
    std::fs::create_dir(&no_queue).expect("dir");
    let status = || {
        Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args(["status", s(d)])
            .env("PATH", &no_queue)
            .output()
            .expect("run")
    };
    for (from, to, want) in [
        (
            "shards = 2",
            "shards = 100000000000",
            "shards = 100000000000",
        ),
        ("shards = 2", "shards = 0", "shards = 0"),
        ("shards = 2", "shards = 10001", "1 to 10000 shards"),
        ("shards = 2", "shards = -1", "line 1"),
        ("[\"2\"]", "[]", "shard_arrays = []"),
        ("[\"2\"]", "[\"2\", \"x; rm\"]", "shard_arrays: \"x; rm\""),
        (
            "precision = \"1\"",
            "precision = \"1,2\"",
            "precision: \"1,2\"",
        ),
        ("merge = \"3\"", "merge = \"\"", "merge: \"\""),
    ] {
        std::fs::write(&list, good.replace(from, to)).expect("jobs.toml");
        let o = status();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{to}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{to}: {err}");
        assert!(
            err.contains("jobs.toml") && err.contains(want),
            "{to}: {err}"
        );
        assert!(o.stdout.is_empty(), "{to}: printed {:?}", o.stdout);
    }
    std::fs::write(&list, good).expect("jobs.toml");
    let o = status();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && shown.contains("(of 2; arrays 2)"),
        "{shown}"
    );

    let spec = d.join("spec.toml");
    std::fs::write(&spec, SPEC).expect("spec");
    let fresh = d.join("fresh");
    let o = lstm_dse(&[
        "sweep",
        s(&spec),
        "--slurm",
        "--shards",
        "10001",
        "--dry-run",
        "--out",
        s(&fresh),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--shards 10001: give 1 to 10000"), "{err}");
    assert!(!fresh.exists());
}

/// `status --resubmit` recorded whatever sbatch printed as a job id (`Submitted batch job
/// 4242` went into jobs.toml and into the merge's `--dependency`, and the next `status` refused
/// the file): anything but an id is an error, and jobs.toml stays as it was.
#[test]
fn resubmit_refuses_what_is_not_a_job_id() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("slurm/state")).expect("state");
    let list = d.join("slurm/jobs.toml");
    let jobs = "shards = 2\nprecision = \"90000001\"\nshard_arrays = [\"90000002\"]\nmerge = \"90000003\"\n";
    std::fs::write(&list, jobs).expect("jobs.toml");
    std::fs::write(d.join("slurm/state/precision.done"), "").expect("marker");
    std::fs::write(d.join("slurm/state/shard-0.done"), "").expect("marker");
    // A scheduler whose sbatch prints a sentence, and whose queue is empty.
    let bin = d.join("fake-bin");
    std::fs::create_dir(&bin).expect("dir");
    for (tool, body) in [
        ("sbatch", "echo 'Submitted batch job 4242'"),
        ("squeue", "true"),
    ] {
        let path = bin.join(tool);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("tool");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(["status", s(d), "--resubmit"])
        .env("PATH", path)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not a job id"), "{err}");
    assert_eq!(std::fs::read_to_string(&list).expect("jobs.toml"), jobs);
}
