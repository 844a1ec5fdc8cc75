//! `--resume` reads its checkpoints as CSV records: a quoted field may hold a newline (a range
//! value or a model path with one), which once made every resume of such a run fail with
//! "does not start with a point index". And a finished run's published files: a deleted
//! skipped.csv is rebuilt (once it was "lines were removed" from a file under .incomplete/,
//! every time), lines removed from either file (its last lines too: a results.csv cut short
//! was once completed silently) or an edited results.csv are refused naming the published
//! file, and a refusal leaves no .incomplete/ behind.

use std::path::{Path, PathBuf};

mod common;

use common::refused;
use common::sweep_case::{same_outputs, Case, OUTPUTS};

/// 2 options (fx8, one policy) x 2 tracking x 2 names x 2 units = 16 points; the policy skips
/// the 4 without a tracking unit; half the rows have a name with a newline.
const SPEC: &str = r#"
name = "resume"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
seq_len = 20
[precision]
fixed = ["fx8"]
levels = ["fx6", "fx16"]
thresholds = "0"
device = "cpu"
[arch]
base = "ARCH"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"tracking.enabled" = [true, false]
"name" = ["a\nb", "c"]
"compute.units" = "1:2:1"
[pareto]
minimize = ["latency_us", "energy_uj"]
"#;

/// Writes `files` (name, bytes) into `dir` (created).
fn put(dir: &Path, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn rows_with_newlines_resume_to_the_same_bytes() {
    let c = Case::with_spec(SPEC);
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let read = |f: &str| std::fs::read(plain.join(f)).unwrap();
    let (rows, skips, resolved) = (
        read("results.csv"),
        read("skipped.csv"),
        read("spec.resolved.toml"),
    );
    let text = String::from_utf8_lossy(&rows);
    assert!(text.contains(",\"a\nb\","), "{text}");
    assert_eq!(csv::Reader::from_reader(&rows[..]).records().count(), 12);
    // Finished: verified, nothing rewritten.
    c.ok("plain", &["--resume"]);
    let again = c.path("plain");
    assert!(!again.join(".incomplete").exists());
    assert_eq!(std::fs::read(again.join("results.csv")).unwrap(), rows);
    // Interrupted after any newline, in a quoted field or not, or one byte before it (the
    // whole file's skipped points are written before its rows): in the staging folder of a
    // killed run, and as a finished run's files cut short.
    let mut cuts: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .flat_map(|(i, _)| [i, i + 1])
        .collect();
    cuts.push(0);
    for (k, &cut) in cuts.iter().enumerate() {
        let files: [(&str, &[u8]); 3] = [
            ("spec.resolved.toml", &resolved),
            ("skipped.csv", &skips),
            ("results.csv", &rows[..cut]),
        ];
        let killed = format!("killed{k}");
        put(&c.path(&killed).join(".incomplete"), &files);
        c.ok(&killed, &["--resume"]);
        same_outputs(&plain, &c.path(&killed));
        // A finished run's results.csv cut short is refused like its skipped.csv (lines
        // removed from a file that is there), and left as it was.
        let cut_short = format!("short{k}");
        put(&c.path(&cut_short), &files);
        let o = c.run(&cut_short, &["--resume"]);
        if cut == rows.len() {
            assert!(o.status.success(), "{o:?}");
            same_outputs(&plain, &c.path(&cut_short));
        } else {
            refused(&o, &["results.csv", "lines were removed"]);
            let now = std::fs::read(c.path(&cut_short).join("results.csv")).unwrap();
            assert_eq!(now, &rows[..cut], "{cut_short}");
            assert!(!c.path(&cut_short).join(".incomplete").exists());
        }
    }
}

#[test]
fn a_finished_run_is_rebuilt_or_refused_naming_its_published_files() {
    let c = Case::with_spec(SPEC);
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let copy = |name: &str, edit: &dyn Fn(&Path)| -> PathBuf {
        let d = c.path(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in OUTPUTS {
            std::fs::copy(plain.join(f), d.join(f)).unwrap();
        }
        edit(&d);
        d
    };
    // skipped.csv deleted: rebuilt, like a deleted results.csv.
    let d = copy("no-skipped", &|d| {
        std::fs::remove_file(d.join("skipped.csv")).unwrap()
    });
    c.ok("no-skipped", &["--resume"]);
    same_outputs(&plain, &d);
    let d = copy("no-results", &|d| {
        std::fs::remove_file(d.join("results.csv")).unwrap()
    });
    c.ok("no-results", &["--resume"]);
    same_outputs(&plain, &d);
    // Both deleted; results.csv cut short with skipped.csv deleted is refused (lines removed
    // from a finished run's file that is there).
    let d = copy("neither", &|d| {
        std::fs::remove_file(d.join("skipped.csv")).unwrap();
        std::fs::remove_file(d.join("results.csv")).unwrap();
    });
    c.ok("neither", &["--resume"]);
    same_outputs(&plain, &d);
    let d = copy("cut-no-skipped", &|d| {
        std::fs::remove_file(d.join("skipped.csv")).unwrap();
        let rows = std::fs::read(d.join("results.csv")).unwrap();
        std::fs::write(d.join("results.csv"), &rows[..rows.len() * 2 / 3]).unwrap();
    });
    let o = c.run("cut-no-skipped", &["--resume"]);
    let published = d.join("results.csv").display().to_string();
    refused(&o, &[published.as_str(), "lines were removed"]);
    assert!(!d.join(".incomplete").exists());

    // Refused, naming the published file (not .incomplete/), which is left as it was, and no
    // staging left behind.
    let refuses = |name: &str, file: &str, edit: &dyn Fn(&str) -> String, expect: &[&str]| {
        let d = copy(name, &|d| {
            let text = std::fs::read_to_string(d.join(file)).unwrap();
            std::fs::write(d.join(file), edit(&text)).unwrap();
        });
        let before = std::fs::read(d.join(file)).unwrap();
        let o = c.run(name, &["--resume"]);
        let published = d.join(file).display().to_string();
        let err = refused(&o, &[&[published.as_str()][..], expect].concat());
        assert!(!err.contains(".incomplete"), "{err}");
        assert!(
            !d.join(".incomplete").exists(),
            "{name}: staging left behind"
        );
        assert_eq!(std::fs::read(d.join(file)).unwrap(), before, "{name}");
    };
    let drop_record = |k: usize| {
        move |t: &str| {
            let mut l = records(t);
            l.remove(k);
            l.concat()
        }
    };
    refuses(
        "skip-removed",
        "skipped.csv",
        &drop_record(1),
        &["missing", "lines were removed"],
    );
    refuses(
        "row-edited",
        "results.csv",
        &|t: &str| t.replacen(",builtin:tiny,", ",builtin:other,", 1),
        &["line 2", "column `model`"],
    );
    refuses(
        "row-removed",
        "results.csv",
        &drop_record(3),
        &["point 2 is missing", "lines were removed"],
    );
}

/// The records of a CSV text, each with its newline (a quoted field may hold one).
fn records(t: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for ch in t.chars() {
        cur.push(ch);
        match ch {
            '"' => quoted = !quoted,
            '\n' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => {}
        }
    }
    out
}
