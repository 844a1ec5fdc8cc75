//! Interrupted sweeps and their resumption, through the binary: kills (SIGKILL and SIGINT) at
//! random moments, a failing rerun, a full disk (a file-size limit, and a real full tmpfs
//! where mounting is allowed), a publication cut short. Every case ends in the bytes of an
//! uninterrupted run or in a clean refusal that `--resume` completes.
//!
//! The sweeps skip points (dynamic precision on architectures with and without a tracking
//! unit), which is what a resume by row count got wrong. Damaged or foreign state:
//! `sweep_faults.rs`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::refused;
use common::sweep_case::{bin, lines, lstm_dse, same_files, same_outputs, Case, OUTPUTS};

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
    // Every point exactly once, over the two files (the duplicate bug).
    let mut all: Vec<u64> = rows[1..]
        .iter()
        .chain(&skips[1..])
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>());

    // Truncated checkpoints (any byte, either file) in a killed run's staging folder:
    // identical bytes or a clean refusal. (A finished run's published files cut short are
    // refused: tests/resume.rs, tests/sweep_dirs.rs.)
    let (rbytes, sbytes) = (
        std::fs::read(plain.join("results.csv")).unwrap(),
        std::fs::read(plain.join("skipped.csv")).unwrap(),
    );
    let mut rng = Rng(7);
    let mut resumed = 0;
    for k in 0..8 {
        let name = format!("cut{k}");
        let d = c.path(&name);
        let st = d.join(".incomplete");
        std::fs::create_dir_all(&st).unwrap();
        std::fs::copy(
            plain.join("spec.resolved.toml"),
            st.join("spec.resolved.toml"),
        )
        .unwrap();
        let rc = rng.below(rbytes.len() as u64) as usize;
        // Consistent with the append order (a batch's skips first), or not at all.
        let sc = if k % 2 == 0 {
            sbytes.len()
        } else {
            rng.below(sbytes.len() as u64) as usize
        };
        std::fs::write(st.join("results.csv"), &rbytes[..rc]).unwrap();
        std::fs::write(st.join("skipped.csv"), &sbytes[..sc]).unwrap();
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
    let err = refused(&o, &["results.csv", "--resume"]);
    no_partial_files(&c.path("fresh"));
    // The count it names is the rows written whole and the points skipped (it said 0 for a
    // first batch cut short).
    let whole = ["results.csv", "skipped.csv"]
        .map(|f| {
            let path = c.path("fresh").join(".incomplete").join(f);
            let bytes = std::fs::read(path).unwrap_or_default();
            bytes
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                .saturating_sub(1)
        })
        .iter()
        .sum::<usize>();
    assert!(whole > 0, "half the rows fit");
    assert!(
        err.contains(&format!("the {whole} points finished so far are kept")),
        "{whole} rows written whole: {err}"
    );
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

/// A publication that stops after its first moves (here a move fails: `front.csv` in OUT is a
/// folder) leaves no page: the older run's `report.html` goes before the first file moves. It
/// went after the last, so a kill in between left the old page beside the new results.
#[test]
fn a_publication_cut_short_leaves_no_older_page() {
    let c = Case::new("1:8:1");
    c.ok("out", &[]);
    let out = c.path("out");
    std::fs::remove_file(out.join("front.csv")).unwrap();
    std::fs::create_dir_all(out.join("front.csv").join("blocker")).unwrap();
    std::fs::write(out.join("report.html"), "an older run's page").unwrap();
    let spec = std::fs::read_to_string(&c.spec).unwrap();
    std::fs::write(&c.spec, spec.replace("1:8:1", "1:9:1")).unwrap();
    let o = c.run("out", &[]);
    refused(&o, &["front.csv", "cannot move into place"]);
    assert!(
        out.join(".incomplete").join("PUBLISH").is_file(),
        "the move stopped part way"
    );
    assert!(!out.join("report.html").exists(), "the older page stayed");
}
