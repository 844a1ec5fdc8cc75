//! Fault injection on sweeps, through the binary: kills (SIGKILL and SIGINT) at random moments,
//! damaged and truncated checkpoint files, changed inputs, runs made by another version of the
//! accelerator model, concurrent runs on one `--out`, a failing rerun and a full disk. Every case ends in the bytes of an uninterrupted run or in a
//! clean refusal: exit 2, one line naming the file (and line), nothing appended.
//!
//! The sweeps skip points (dynamic precision on architectures with and without a tracking
//! unit), which is what a resume by row count got wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

use common::refused;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lstm-dse"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn lstm_dse(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Half the architecture points have no tracking unit, so every dynamic option skips there.
fn spec_text(units: &str, arch: &str) -> String {
    format!(
        r#"
name = "faults"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
seq_len = 20
[precision]
fixed = ["fx8"]
levels = ["fx6", "fx16"]
thresholds = "0,0.5,inf"
device = "cpu"
[arch]
base = "{arch}"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"tracking.enabled" = [true, false]
"compute.units" = "{units}"
"compute.multipliers_per_unit" = "4:128:4"
[pareto]
minimize = ["latency_us", "energy_uj"]
"#
    )
}

struct Case {
    dir: tempfile::TempDir,
    spec: PathBuf,
}

impl Case {
    fn new(units: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let arch = dir.path().join("arch.toml");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/arch/epur.toml"),
            &arch,
        )
        .unwrap();
        let spec = dir.path().join("spec.toml");
        std::fs::write(&spec, spec_text(units, arch.to_str().unwrap())).unwrap();
        Case { dir, spec }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn args<'a>(&'a self, out: &'a str, cache: &'a str) -> Vec<&'a str> {
        vec![
            "sweep",
            self.spec.to_str().unwrap(),
            "--out",
            out,
            "--cache",
            cache,
            "--quiet",
        ]
    }
    /// Runs the sweep into `name` (extra flags appended).
    fn run(&self, name: &str, extra: &[&str]) -> Output {
        let out = self.path(name);
        let cache = self.path("cache");
        let mut a = self.args(out.to_str().unwrap(), cache.to_str().unwrap());
        a.extend(extra);
        lstm_dse(&a)
    }
    /// `lstm-dse merge shard0 shard1 --out merged`.
    fn merge_shards(&self) -> Output {
        let (s0, s1, m) = (
            self.path("shard0"),
            self.path("shard1"),
            self.path("merged"),
        );
        lstm_dse(&[
            "merge",
            s0.to_str().unwrap(),
            s1.to_str().unwrap(),
            "--out",
            m.to_str().unwrap(),
        ])
    }

    fn ok(&self, name: &str, extra: &[&str]) {
        let o = self.run(name, extra);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

const OUTPUTS: [&str; 4] = [
    "results.csv",
    "skipped.csv",
    "front.csv",
    "spec.resolved.toml",
];

fn same_outputs(a: &Path, b: &Path) {
    same_files(a, b);
    assert!(!b.join(".incomplete").exists(), "staging left behind");
}

fn same_files(a: &Path, b: &Path) {
    for f in OUTPUTS {
        let (x, y) = (std::fs::read(a.join(f)), std::fs::read(b.join(f)));
        assert!(
            x.as_ref().ok() == y.as_ref().ok(),
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// A tiny deterministic generator (the tests must not depend on a seed from outside).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

#[test]
fn skipped_points_are_recorded_and_resume_by_point() {
    let c = Case::new("1:16:1");
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let rows = lines(&plain.join("results.csv"));
    let skips = lines(&plain.join("skipped.csv"));
    assert_eq!(skips[0], "point,reason");
    // 4 options x 2 tracking x 16 units x 32 multiplier counts; the 3 policies skip on the
    // half without tracking.
    assert_eq!(rows.len() - 1 + skips.len() - 1, 4 * 2 * 16 * 32);
    assert_eq!(skips.len() - 1, 3 * 16 * 32);
    assert!(skips[1].contains("tracking"), "{}", skips[1]);
    // Every point exactly once, over the two files (the issue's duplicate bug).
    let mut all: Vec<u64> = rows[1..]
        .iter()
        .chain(&skips[1..])
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>());

    // Truncated checkpoints (any byte, either file): identical bytes or a clean refusal.
    let (rbytes, sbytes) = (
        std::fs::read(plain.join("results.csv")).unwrap(),
        std::fs::read(plain.join("skipped.csv")).unwrap(),
    );
    let mut rng = Rng(7);
    let mut resumed = 0;
    for k in 0..8 {
        let name = format!("cut{k}");
        let d = c.path(&name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            plain.join("spec.resolved.toml"),
            d.join("spec.resolved.toml"),
        )
        .unwrap();
        let rc = rng.below(rbytes.len() as u64) as usize;
        // Consistent with the append order (a batch's skips first), or not at all.
        let sc = if k % 2 == 0 {
            sbytes.len()
        } else {
            rng.below(sbytes.len() as u64) as usize
        };
        std::fs::write(d.join("results.csv"), &rbytes[..rc]).unwrap();
        std::fs::write(d.join("skipped.csv"), &sbytes[..sc]).unwrap();
        let o = c.run(&name, &["--resume"]);
        if o.status.success() {
            same_outputs(&plain, &d);
            resumed += 1;
        } else {
            refused(&o, &["skipped.csv", "missing"]);
        }
    }
    assert!(resumed >= 4, "the consistent cuts all resume");
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_line() {
    let c = Case::new("1:4:1");
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let text = std::fs::read_to_string(plain.join("results.csv")).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    let join = |v: &[String]| v.join("\n") + "\n";
    let owned: Vec<String> = rows.iter().map(|s| s.to_string()).collect();
    let mut cases: Vec<(&str, String, Vec<&str>)> = Vec::new();
    let mut v = owned.clone();
    let h = v[5].rfind(",0.1.0").unwrap();
    v[5].replace_range(h - 4..h, "ffff");
    cases.push(("config hash", join(&v), vec!["line 6", "config_hash"]));
    let mut v = owned.clone();
    v.swap(3, 4);
    cases.push(("swapped", join(&v), vec!["line 5", "reordered"]));
    let mut v = owned.clone();
    v.insert(8, v[7].clone());
    cases.push(("duplicate", join(&v), vec!["line 9"]));
    let mut v = owned.clone();
    v[10].insert(3, '\0');
    cases.push(("NUL", join(&v), vec!["line 11", "NUL"]));
    cases.push(("CRLF", owned.join("\r\n") + "\r\n", vec!["line 1"]));
    let mut v = owned.clone();
    v[0] = v[0].replace("energy_uj", "energy");
    cases.push(("header", join(&v), vec!["line 1", "header"]));
    let mut v = owned.clone();
    v[12] = v[12].replace(",builtin:tiny,", ",builtin:other,");
    cases.push(("edited cell", join(&v), vec!["line 13", "model"]));
    let mut v = owned.clone();
    v.remove(20);
    cases.push(("removed line", join(&v), vec!["point", "missing"]));
    for (what, body, expect) in cases {
        let d = c.path(what);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            plain.join("spec.resolved.toml"),
            d.join("spec.resolved.toml"),
        )
        .unwrap();
        std::fs::copy(plain.join("skipped.csv"), d.join("skipped.csv")).unwrap();
        std::fs::write(d.join("results.csv"), &body).unwrap();
        let o = c.run(what, &["--resume"]);
        let mut e = expect.clone();
        e.push("results.csv");
        refused(&o, &e);
        assert_eq!(
            std::fs::read_to_string(d.join("results.csv")).unwrap(),
            body,
            "{what}: the file was changed by a refused resume"
        );
    }
}

#[test]
fn changed_inputs_are_refused_by_resume_and_merge() {
    let c = Case::new("1:4:1");
    c.ok("plain", &[]);
    c.ok("shard0", &["--shard", "0/2"]);
    // The base architecture changes under the same path (one parameter).
    let arch = c.path("arch.toml");
    let text = std::fs::read_to_string(&arch).unwrap();
    std::fs::write(
        &arch,
        text.replacen("clock_mhz = 500.0", "clock_mhz = 600.0", 1),
    )
    .unwrap();
    let o = c.run("plain", &["--resume"]);
    refused(&o, &["arch.toml", "changed", "content hash"]);
    c.ok("shard1", &["--shard", "1/2"]);
    let o = c.merge_shards();
    refused(&o, &["arch.toml", "changed"]);
    // Results without the resolved spec cannot be checked: refused, not mixed.
    std::fs::remove_file(c.path("plain").join("spec.resolved.toml")).unwrap();
    let o = c.run("plain", &["--resume"]);
    refused(&o, &["spec.resolved.toml"]);
}

/// Every file under `dir` with its bytes, but `.lock` (which holds the pid of the last run
/// to take it).
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else if !p.ends_with(".lock") {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Refuses `o` as [`refused`] does and checks that it left `dir` as it was.
fn refused_untouched(o: &Output, expect: &[&str], dir: &Path, before: &[(PathBuf, Vec<u8>)]) {
    refused(o, expect);
    let after = tree(dir);
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f))
        .chain(before.iter().filter(|f| !after.contains(f)))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(changed.is_empty(), "a refused run changed {changed:?}");
}

#[test]
fn runs_of_another_model_version_are_refused_by_resume_and_merge() {
    let c = Case::new("1:4:1");
    c.ok("plain", &[]);
    c.ok("shard0", &["--shard", "0/2"]);
    c.ok("shard1", &["--shard", "1/2"]);
    let resolved = |d: &str| c.path(d).join("spec.resolved.toml");
    let text = std::fs::read_to_string(resolved("plain")).unwrap();
    // This binary's version as it records it, so that the test outlives a bump.
    let key = "accel_model = ";
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .expect("spec.resolved.toml records accel_model");
    let version: u32 = line[key.len()..].parse().unwrap();
    let other = text.replacen(line, &format!("{key}{}", version + 1), 1);
    for d in ["plain", "shard1"] {
        std::fs::write(resolved(d), &other).unwrap();
    }
    let (plain, before) = (c.path("plain"), tree(&c.path("plain")));
    let o = c.run("plain", &["--resume"]);
    refused_untouched(
        &o,
        &[
            &format!(
                "that run was made by accelerator model version {}, this binary has version {version};",
                version + 1
            ),
            "rerun without --resume",
            "(or use the binary that made it)",
        ],
        &plain,
        &before,
    );
    let o = c.merge_shards();
    refused(
        &o,
        &[
            "shard1 was made by accelerator model version",
            "merge only shards of one run",
        ],
    );
    assert!(!c.path("merged").exists(), "a refused merge wrote");
    // A run made before versions were recorded: which model made its rows is unknown.
    let start = text.find("[versions]").expect("a [versions] section");
    let end = start + text[start..].find("\n\n").expect("a blank line after it") + 2;
    std::fs::write(
        resolved("plain"),
        format!("{}{}", &text[..start], &text[end..]),
    )
    .unwrap();
    let before = tree(&c.path("plain"));
    let o = c.run("plain", &["--resume"]);
    refused(
        &o,
        &[
            "that run was made before versions were recorded",
            "rerun without --resume",
        ],
    );
    assert_eq!(before, tree(&c.path("plain")), "a refused resume wrote");
}

#[test]
fn a_second_run_on_the_same_out_is_refused_naming_the_holder() {
    let c = Case::new("1:256:1");
    let out = c.path("busy");
    let cache = c.path("cache");
    c.ok("warm", &[]); // fills the cache, so the long run below starts at once
    let mut first = bin()
        .args(c.args(out.to_str().unwrap(), cache.to_str().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".lock");
    let pid = first.id().to_string();
    for _ in 0..500 {
        if std::fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let second = c.run("busy", &[]);
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    if still_running {
        refused(&second, &["another sweep", &pid]);
    } else {
        eprintln!("note: the first run finished before the second started; lock not exercised");
    }
    // The lock of the killed run is stale: the next run takes it over and completes.
    assert!(lock.exists());
    c.ok("busy", &["--resume"]);
    same_outputs(&c.path("warm"), &out);
}

#[test]
fn a_failing_rerun_keeps_the_finished_results() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let before: Vec<Vec<u8>> = OUTPUTS
        .iter()
        .map(|f| std::fs::read(plain.join(f)).unwrap())
        .collect();
    let typo = std::fs::read_to_string(&c.spec)
        .unwrap()
        .replace("builtin:tiny", "models/no-such-model.onnx");
    std::fs::write(&c.spec, typo).unwrap();
    refused(&c.run("plain", &[]), &["no-such-model.onnx"]);
    for (f, b) in OUTPUTS.iter().zip(&before) {
        assert_eq!(&std::fs::read(plain.join(f)).unwrap(), b, "{f} was touched");
    }
}

/// Runs the sweep under a file-size limit (`ulimit -f`, SIGXFSZ ignored): writes past it fail
/// as on a full disk.
fn run_limited(c: &Case, name: &str, kib: u64) -> Output {
    let out = c.path(name);
    let cache = c.path("cache");
    let mut cmd = Command::new("bash");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(c.args(out.to_str().unwrap(), cache.to_str().unwrap()));
    cmd.output().unwrap()
}

fn no_partial_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        assert!(
            !p.to_string_lossy().ends_with(".partial"),
            "{} left behind",
            p.display()
        );
        if p.is_dir() {
            no_partial_files(&p);
        }
    }
}

#[test]
fn a_full_disk_leaves_no_temporary_files_and_resumes() {
    let c = Case::new("1:32:1");
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let size = std::fs::metadata(plain.join("results.csv")).unwrap().len();
    // A previous run's results in the same --out survive the failing run.
    c.ok("full", &[]);
    let o = run_limited(&c, "full", size / 1024 / 2);
    refused(&o, &["--resume"]);
    no_partial_files(&c.path("full"));
    same_files(&plain, &c.path("full"));
    // A run stopped by the full disk resumes to the same bytes once there is room.
    let o = run_limited(&c, "fresh", size / 1024 / 2);
    refused(&o, &["results.csv", "--resume"]);
    no_partial_files(&c.path("fresh"));
    c.ok("fresh", &["--resume"]);
    same_outputs(&plain, &c.path("fresh"));
    full_tmpfs(&c, &plain, size);
}

/// The same on a real full file system (a small tmpfs), where mounting is allowed.
fn full_tmpfs(c: &Case, plain: &Path, size: u64) {
    let mnt = c.path("tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={}k", size / 1024 / 2)])
        .arg("tmpfs")
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping the tmpfs part of the full-disk test: mount is not permitted here (the ulimit -f part ran)");
        return;
    }
    let out = mnt.join("out");
    let cache = c.path("cache");
    let o = lstm_dse(&c.args(out.to_str().unwrap(), cache.to_str().unwrap()));
    let err = refused(&o, &["--resume"]);
    assert!(err.contains("No space left"), "{err}");
    no_partial_files(&out);
    let moved = c.path("from-tmpfs");
    let _ = Command::new("cp").arg("-a").arg(&out).arg(&moved).status();
    let _ = Command::new("umount").arg(&mnt).status();
    c.ok("from-tmpfs", &["--resume"]);
    same_outputs(plain, &moved);
}

#[test]
fn kills_at_random_moments_end_in_the_plain_bytes() {
    let c = Case::new("1:128:1");
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let started = std::time::Instant::now();
    c.ok("timing", &[]);
    let full_ms = started.elapsed().as_millis() as u64;
    let mut rng = Rng(42);
    for k in 0..6 {
        let name = format!("killed{k}");
        let out = c.path(&name);
        // Several kills per run, each at a random moment (the later ones while resuming).
        for round in 0..3 {
            let cache = c.path("cache");
            let mut a = c.args(out.to_str().unwrap(), cache.to_str().unwrap());
            if round > 0 {
                a.push("--resume");
            }
            let mut child = bin().args(&a).stderr(Stdio::null()).spawn().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(rng.below(full_ms + 1)));
            let signal = if (k + round) % 2 == 0 { "KILL" } else { "INT" };
            let _ = Command::new("kill")
                .args(["-s", signal, &child.id().to_string()])
                .status();
            child.wait().unwrap();
        }
        c.ok(&name, &["--resume"]);
        same_outputs(&plain, &out);
    }
}

/// A run killed in the middle of moving its files into place: the next run completes the move
/// and keeps the files already moved (it once took them for an older run's and deleted them,
/// then started from point 0), and the page of an older run never stays beside new results.
#[test]
fn an_interrupted_publication_is_completed_without_losing_moved_files() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let published: Vec<&str> = ["results.csv", "skipped.csv", "front.csv", "front.svg"]
        .into_iter()
        .chain(["spec.resolved.toml"])
        .filter(|f| plain.join(f).exists())
        .collect();
    // Killed after its first `moved` renames: those files are in place, the rest still in
    // staging with the mark listing every file the run publishes; an older page beside them.
    for moved in 1..published.len() {
        let out = c.path(&format!("crashed{moved}"));
        let staging = out.join(".incomplete");
        std::fs::create_dir_all(&staging).unwrap();
        for (i, f) in published.iter().enumerate() {
            let to = if i < moved { &out } else { &staging };
            std::fs::copy(plain.join(f), to.join(f)).unwrap();
        }
        let listed: String = published.iter().map(|f| format!("{f}\n")).collect();
        std::fs::write(staging.join("PUBLISH"), listed).unwrap();
        std::fs::write(out.join("report.html"), "an older run's page").unwrap();
        // The next run on the directory completes the move, then is refused (its spec
        // changed): the finished run is whole in place, and the older page gone.
        let spec = std::fs::read_to_string(&c.spec).unwrap();
        std::fs::write(&c.spec, spec.replace("1:8:1", "1:9:1")).unwrap();
        let o = c.run(&format!("crashed{moved}"), &["--resume"]);
        std::fs::write(&c.spec, &spec).unwrap();
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        same_outputs(&plain, &out);
        for f in &published {
            assert!(out.join(f).exists(), "moved {moved}: {f} lost");
        }
        assert!(!out.join("report.html").exists(), "moved {moved}");
        let report = c.run(&format!("crashed{moved}"), &["--resume"]);
        assert!(report.status.success(), "{report:?}");
        same_outputs(&plain, &out);
        let page = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(!page.contains("an older run's page"), "moved {moved}");
    }
    // A rerun over a finished directory draws the page it drew the first time (its list of
    // files once gained `report.html` itself).
    let first = std::fs::read(plain.join("report.html")).unwrap();
    c.ok("plain", &[]);
    assert_eq!(std::fs::read(plain.join("report.html")).unwrap(), first);
}

/// `merge` refuses a set of shards that does not cover every point of the run: a shard
/// missing, shards of different counts, a shard emptied or cut short, a row of a point past
/// the run. Once all of these were merged with exit 0 into results with gaps.
#[test]
fn merge_refuses_shards_that_miss_points() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    for i in 0..3 {
        c.ok(&format!("s{i}"), &["--shard", &format!("{i}/3")]);
    }
    c.ok("h0", &["--shard", "0/2"]);
    let merge = |dirs: &[&str]| {
        let mut args = vec!["merge".to_string()];
        args.extend(dirs.iter().map(|d| c.path(d).display().to_string()));
        args.extend(["--out".into(), c.path("m").display().to_string()]);
        lstm_dse(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    refused(
        &merge(&["s0", "s2"]),
        &["shard 1/3 is missing", "given: 0/3, 2/3"],
    );
    refused(&merge(&["s0", "s1", "s1"]), &["shard 2/3 is missing"]);
    refused(&merge(&["h0", "s1", "s2"]), &["shard.toml", "1/3", "0/2"]);
    assert!(!c.path("m").exists(), "a refused merge wrote its output");
    // A shard emptied to its header, or cut short.
    let copy = |from: &str, to: &str, edit: &dyn Fn(&str) -> String| {
        let (a, b) = (c.path(from), c.path(to));
        std::fs::create_dir_all(&b).unwrap();
        for e in std::fs::read_dir(&a).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), b.join(e.file_name())).unwrap();
            }
        }
        let text = std::fs::read_to_string(a.join("results.csv")).unwrap();
        std::fs::write(b.join("results.csv"), edit(&text)).unwrap();
    };
    let header = |t: &str| t.lines().next().unwrap().to_string() + "\n";
    copy("s1", "s1-empty", &header);
    refused(
        &merge(&["s0", "s1-empty", "s2"]),
        &["s1-empty", "shard 1/3", "rerun that shard"],
    );
    let short = |t: &str| {
        let lines: Vec<&str> = t.lines().collect();
        lines[..lines.len() - 1].join("\n") + "\n"
    };
    copy("s1", "s1-short", &short);
    refused(
        &merge(&["s0", "s1-short", "s2"]),
        &["s1-short", "rerun that shard"],
    );
    // A row of a point past the run.
    let past = |t: &str| {
        let last = t.lines().last().unwrap();
        let rest = last.split_once(',').unwrap().1;
        format!("{t}999999,{rest}\n")
    };
    copy("s2", "s2-past", &past);
    refused(
        &merge(&["s0", "s1", "s2-past"]),
        &["s2-past", "point 999999", "beyond"],
    );
    // Into one of the shards (spelt otherwise): refused, the shard left as it was (once it
    // was replaced by the merge, its shard.toml gone).
    let before = tree(&c.path("s0"));
    let (s0, s1, s2) = (c.path("s0"), c.path("s1"), c.path("s2"));
    let into = format!("{}/.", s0.display());
    let args = ["merge", s0.to_str().unwrap(), s1.to_str().unwrap()];
    let o = lstm_dse(&[&args[..], &[s2.to_str().unwrap(), "--out", &into]].concat());
    refused_untouched(
        &o,
        &["--out", "is one of the directories merged"],
        &s0,
        &before,
    );
    // Every shard: the single run's bytes; the merged directory is a whole run.
    let o = merge(&["s2", "s0", "s1"]);
    assert!(o.status.success(), "{o:?}");
    same_outputs(&c.path("plain"), &c.path("m"));
    assert!(!c.path("m").join("shard.toml").exists());
    // A whole run over a shard's directory leaves no shard.toml behind.
    c.ok("s1", &[]);
    assert!(!c.path("s1").join("shard.toml").exists());
}

/// A precision-cache entry cut short at an option (disk damage, an edit) is recomputed, not
/// taken: once the sweep costed only the options left, with exit 0.
#[test]
fn a_damaged_cache_entry_is_recomputed() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    let entries: Vec<PathBuf> = std::fs::read_dir(c.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(!entries.is_empty());
    for e in &entries {
        let text = std::fs::read_to_string(e).unwrap();
        let cut = text.match_indices("[[option]]").nth(1).map(|(i, _)| i);
        std::fs::write(e, &text[..cut.expect("two options at least")]).unwrap();
    }
    let o = c.run("again", &[]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("damaged"),
        "{o:?}"
    );
    same_outputs(&c.path("plain"), &c.path("again"));
}
