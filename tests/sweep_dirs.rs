//! What `sweep` and `merge` say about the folders they are given, and what they leave there:
//! a bad cell named in the shard merged (and nothing left in `--out`), a shard's folder resumed
//! without its `--shard` or with another, a whole run's folder resumed as a shard, an
//! unfinished shard merged, lines cut off a finished run's files, and `--out` paths through
//! folders that do not exist.

mod common;

use common::sweep_case::{same_outputs, Case};
use std::path::Path;

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn refused(o: &std::process::Output, expect: &[&str]) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    for x in expect {
        assert!(e.contains(x), "{x:?} not in {e}");
    }
}

/// Replaces cell `col` of data line `line` (1 = the first row) of `dir/results.csv`.
fn set_cell(dir: &Path, line: usize, col: usize, to: &str) {
    let f = dir.join("results.csv");
    let text = std::fs::read_to_string(&f).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut cells: Vec<&str> = lines[line].split(',').collect();
    cells[col] = to;
    lines[line] = cells.join(",");
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
}

/// A cell the front reads that is no number is named in the shard's own file and line, and
/// the merge leaves nothing in a new `--out` (once: the merged copy was named, and
/// `.incomplete/` and `.lock` stayed).
#[test]
fn a_bad_cell_is_named_in_its_shard_and_nothing_is_left() {
    let c = Case::new("1:4:1");
    c.ok("s0", &["--shard", "0/2"]);
    c.ok("s1", &["--shard", "1/2"]);
    let header = std::fs::read_to_string(c.path("s1/results.csv")).unwrap();
    let col = header
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|h| h == "energy_uj")
        .unwrap();
    set_cell(&c.path("s1"), 3, col, "abc");
    let o = c.merge(&["s0", "s1"], "m");
    let shard = c.path("s1/results.csv");
    refused(
        &o,
        &[&format!("{}:4", shard.display()), "energy_uj", "`abc`"],
    );
    assert!(!c.path("m").exists(), "--out made");
    // Into an existing folder: its staging and the merge's work go.
    std::fs::create_dir(c.path("m")).unwrap();
    let o = c.merge(&["s0", "s1"], "m");
    refused(&o, &[&format!("{}:4", shard.display())]);
    assert!(!c.path("m/.incomplete").exists());
    assert!(!c.path("m/results.csv").exists());
}

/// Every cell of a shard's rows is checked against what its column may hold for the run, not
/// only the cells the front reads: a precision, model, group size, swept value or threshold
/// list the run does not have, text in a number's column, a config hash that is not the row's,
/// a header of other columns. The refusal names the shard's own file, line and column, and
/// nothing is left in `--out`.
#[test]
fn every_cell_of_a_shard_is_checked_and_named_in_its_file() {
    let c = Case::new("1:4:1");
    c.ok("s0", &["--shard", "0/2"]);
    c.ok("s1", &["--shard", "1/2"]);
    // Shard 0 holds the policies' rows (shard 1 only architectures without a tracking unit).
    let rows = common::sweep_case::lines(&c.path("s0/results.csv"));
    let header: Vec<&str> = rows[0].split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let first = |precision: &str| {
        (1..rows.len())
            .find(|&i| rows[i].split(',').nth(col("precision")) == Some(precision))
            .unwrap()
    };
    let (fixed, policy) = (first("fx8"), first("fx6|fx16"));
    for (column, line, to, expect) in [
        (
            "precision",
            fixed,
            "fx7",
            &["`fx7` is not a precision of this run (fx8, fx6|fx16)"][..],
        ),
        ("cycles", fixed, "abc", &["`abc` is not a number"]),
        ("area_mm2", policy, "", &["empty cell, expected a number"]),
        (
            "model",
            fixed,
            "builtin:small",
            &["`builtin:small` is not a model of this run (builtin:tiny)"],
        ),
        (
            "dpred_group_size",
            fixed,
            "16",
            &["`16` is not a DPRed group size of this run (0)"],
        ),
        (
            "compute.units",
            policy,
            "9",
            &["`9` is not a value of this run (1, 2, 3, 4)"],
        ),
        (
            "thresholds",
            policy,
            "0.7",
            &["`0.7` is not a threshold list of this run (0, 0.5, inf)"],
        ),
        (
            "thresholds",
            fixed,
            "0.5",
            &["the fixed precision fx8 has no thresholds"],
        ),
        (
            "config_hash",
            fixed,
            "0123456789abcdef",
            &["`0123456789abcdef` is not the row's config hash"],
        ),
        ("tool_version", policy, "v1", &["`v1` is not a version"]),
    ] {
        let dir = format!("e-{column}-{line}");
        c.copy("s0", &dir, &|d| set_cell(d, line, col(column), to));
        let o = c.merge(&[&dir, "s1"], "m");
        let file = c.path(&dir).join("results.csv");
        let at = format!("{}:{}: column `{column}`: ", file.display(), line + 1);
        refused(&o, &[&at]);
        refused(&o, expect);
        assert!(!c.path("m").exists(), "{column}: --out made");
    }
    // A header of other columns is named at its line.
    c.copy("s0", "renamed", &|d| {
        let f = d.join("results.csv");
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, text.replacen("cycles", "cycle_count", 1)).unwrap();
    });
    let o = c.merge(&["renamed", "s1"], "m");
    let file = c.path("renamed/results.csv");
    refused(
        &o,
        &[
            &format!("{}:1: ", file.display()),
            "`cycle_count`",
            "`cycles`",
        ],
    );
    // The shards as written merge.
    let o = c.merge(&["s0", "s1"], "m");
    assert!(o.status.success(), "{}", err(&o));
}

/// Cell `col` of data line `line` of `dir/results.csv`.
fn get_cell(dir: &Path, line: usize, col: usize) -> String {
    let text = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    text.lines()
        .nth(line)
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .to_string()
}

/// Every cell is a number as the sweep writes it (no other spelling of the same value), in
/// the range of its quantity; a figure the run cannot
/// have is empty and one every option has is there; every row has the run's tool version; a
/// point index is written as the sweep writes it.
#[test]
fn a_shards_numbers_are_the_sweeps_own_spelling_and_range() {
    let c = Case::new("1:4:1");
    c.ok("s0", &["--shard", "0/2"]);
    c.ok("s1", &["--shard", "1/2"]);
    let rows = common::sweep_case::lines(&c.path("s0/results.csv"));
    let header: Vec<&str> = rows[0].split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    // Line 3: point 4 (the row before it checked, so no cell is spared by it).
    let line = 3;
    let s0 = c.path("s0");
    let cycles = get_cell(&s0, line, col("cycles"));
    let cycles_e = format!("{:e}", cycles.parse::<f64>().unwrap());
    let point = get_cell(&s0, line, col("point"));
    let version = get_cell(&s0, line, col("tool_version"));
    for (column, to, expect) in [
        ("point", format!("0{point}"), "is not a point index"),
        ("point", format!("+{point}"), "is not a point index"),
        ("point", format!("{point}.0"), "is not a point index"),
        ("cycles", format!(" {cycles}"), "is not a number"),
        (
            "cycles",
            format!("{cycles}0"),
            "is not how the sweep writes this number",
        ),
        (
            "cycles",
            cycles_e,
            "is not how the sweep writes this number",
        ),
        ("latency_us", "-5".into(), "`-5` is negative"),
        ("latency_us", "inf".into(), "`inf` is not a finite number"),
        (
            "latency_us",
            "1e999".into(),
            "is not how the sweep writes this number",
        ),
        ("latency_us", "NaN".into(), "`NaN` is not a finite number"),
        (
            "energy_uj",
            "-1e-300".into(),
            "is not how the sweep writes this number",
        ),
        ("dram_bytes", "-3".into(), "`-3` is negative"),
        (
            "dram_bytes",
            "1e3".into(),
            "is not how the sweep writes this number",
        ),
        ("frac_low_precision", "2".into(), "`2` is more than 1"),
        (
            "frac_low_precision",
            "".into(),
            "empty cell, expected a number",
        ),
        ("hidden_rmse", "-0.5".into(), "`-0.5` is negative"),
        ("top1_agreement", "7".into(), "`7` is more than 1"),
        (
            "top1_agreement",
            "".into(),
            "the same model and precision option has `1`",
        ),
        (
            "task_accuracy",
            "0.5".into(),
            "this run gives no workload.labels",
        ),
        ("speedup", "-1".into(), "`-1` is negative"),
        ("energy_saving", "2".into(), "`2` is more than 1"),
        (
            "tool_version",
            format!("{version}.1"),
            "the run's other rows were made by lstm-dse",
        ),
    ] {
        let dir = format!("n-{column}-{}", to.len());
        let _ = std::fs::remove_dir_all(c.path(&dir));
        c.copy("s0", &dir, &|d| set_cell(d, line, col(column), &to));
        let o = c.merge(&[&dir, "s1"], "m");
        let file = c.path(&dir).join("results.csv");
        let at = format!("{}:{}: column `{column}`: ", file.display(), line + 1);
        refused(&o, &[&at, expect]);
        assert!(!c.path("m").exists(), "{column}: --out made");
    }
    let o = c.merge(&["s0", "s1"], "m");
    assert!(o.status.success(), "{}", err(&o));
}

/// A row's model, precision option and swept values are those of its point index (the
/// plan's order): two rows whose point numbers are swapped are refused, each row's config
/// hash its own text's notwithstanding.
#[test]
fn a_rows_configuration_is_its_points() {
    let c = Case::new("1:4:1");
    c.ok("s0", &["--shard", "0/2"]);
    c.ok("s1", &["--shard", "1/2"]);
    // Two rows of one option (other swept values), and rows of two options at one
    // architecture point (the fixed config's first row and a policy's).
    let rows = common::sweep_case::lines(&c.path("s0/results.csv"));
    let policy = (1..rows.len())
        .find(|&i| rows[i].contains(",fx6|fx16,"))
        .unwrap();
    let ai = |i: usize| rows[i].split_once(',').unwrap().0.parse::<u64>().unwrap() % 256;
    let same_ai = (1..rows.len())
        .find(|&i| ai(i) == ai(policy) && i != policy)
        .unwrap();
    for (a, b, column) in [(1, 2, "compute.units"), (same_ai, policy, "precision")] {
        let dir = format!("swap-{a}-{b}");
        c.copy("s0", &dir, &|d| {
            let f = d.join("results.csv");
            let mut lines = common::sweep_case::lines(&f);
            let (pa, ra) = lines[a]
                .split_once(',')
                .map(|(p, r)| (p.to_string(), r.to_string()))
                .unwrap();
            let (pb, rb) = lines[b]
                .split_once(',')
                .map(|(p, r)| (p.to_string(), r.to_string()))
                .unwrap();
            lines[a] = format!("{pa},{rb}");
            lines[b] = format!("{pb},{ra}");
            std::fs::write(&f, lines.join("\n") + "\n").unwrap();
        });
        let o = c.merge(&[&dir, "s1"], "m");
        let file = c.path(&dir).join("results.csv");
        refused(
            &o,
            &[
                &format!("{}:{}: column `{column}`: ", file.display(), a.min(b) + 1),
                "a row's configuration is its point's",
            ],
        );
        assert!(!c.path("m").exists());
    }
}

/// A run of two models and DPRed group sizes merges into the bytes of the whole run (the
/// point order the check follows is the sweep's).
#[test]
fn shards_of_several_models_and_group_sizes_merge_as_the_whole_run() {
    let spec = common::sweep_case::spec_text("1:2:1", "ARCH")
        .replace(
            r#"["builtin:tiny"]"#,
            r#"["builtin:tiny", "builtin:captioning"]"#,
        )
        .replace(
            r#"fixed = ["fx8"]"#,
            "fixed = [\"fx8\", \"fx16\"]\ndpred_group_sizes = [0, 4]",
        )
        .replace("4:128:4", "4:16:4");
    let c = Case::with_spec(&spec);
    c.ok("whole", &[]);
    c.ok("s0", &["--shard", "0/3"]);
    c.ok("s1", &["--shard", "1/3"]);
    c.ok("s2", &["--shard", "2/3"]);
    let o = c.merge(&["s2", "s0", "s1"], "m");
    assert!(o.status.success(), "{}", err(&o));
    same_outputs(&c.path("whole"), &c.path("m"));
    // The point order is checked in such a run too: the last two rows' point numbers swapped
    // (another model, option or architecture point).
    c.copy("s0", "swapped", &|d| {
        let f = d.join("results.csv");
        let mut lines = common::sweep_case::lines(&f);
        let n = lines.len();
        let point = |l: &str| l.split_once(',').unwrap().0.to_string();
        let (a, b) = (point(&lines[n - 2]), point(&lines[n - 1]));
        lines[n - 2] = lines[n - 2].replacen(&a, &b, 1);
        lines[n - 1] = lines[n - 1].replacen(&b, &a, 1);
        std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    });
    let o = c.merge(&["s2", "swapped", "s1"], "m2");
    refused(&o, &["a row's configuration is its point's"]);
}

/// `skipped.csv` is checked too: its header, each point index as the sweep writes it, a
/// reason on every line.
#[test]
fn skipped_lines_are_checked() {
    let c = Case::new("1:4:1");
    c.ok("s0", &["--shard", "0/2"]);
    c.ok("s1", &["--shard", "1/2"]);
    let file = |d: &str| c.path(d).join("skipped.csv");
    for (dir, edit, at, expect) in [
        (
            "header",
            ("point,reason", "pt,reason"),
            1,
            "the header is `pt,reason`",
        ),
        (
            "zero",
            ("\n257,", "\n0257,"),
            2,
            "column `point`: `0257` is not a point index",
        ),
        (
            "empty",
            ("\n257,workload", "\n257,\"\"\nx,workload"),
            2,
            "column `reason`: empty",
        ),
    ] {
        c.copy("s1", dir, &|d| {
            let f = d.join("skipped.csv");
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.contains(edit.0));
            std::fs::write(&f, text.replacen(edit.0, edit.1, 1)).unwrap();
        });
        let o = c.merge(&["s0", dir], "m");
        refused(&o, &[&format!("{}:{at}: ", file(dir).display()), expect]);
        assert!(!c.path("m").exists());
    }
}

/// Refusals of a row: a ragged row in the common format, a cell quoted at most 60
/// characters long and its control characters escaped.
#[test]
fn refusals_quote_cells_briefly_and_name_ragged_rows() {
    let c = Case::new("1:4:1");
    c.ok("s0", &["--shard", "0/2"]);
    c.ok("s1", &["--shard", "1/2"]);
    let rows = common::sweep_case::lines(&c.path("s1/results.csv"));
    let n = rows[0].split(',').count();
    c.copy("s1", "ragged", &|d| set_cell(d, 1, 3, "a,b"));
    let o = c.merge(&["s0", "ragged"], "m");
    let f = c.path("ragged/results.csv");
    refused(
        &o,
        &[&format!(
            "{}:2: {} fields, the header has {n}",
            f.display(),
            n + 1
        )],
    );
    let long = format!("\u{1b}[31m\0{}", "x".repeat(1 << 20));
    c.copy("s1", "long", &|d| set_cell(d, 1, 1, &long));
    let o = c.merge(&["s0", "long"], "m");
    let e = err(&o);
    refused(&o, &["column `model`: `\\u{1b}[31m\\u{0}xxx", "x…`"]);
    assert!(e.len() < 400, "{e}");
    assert!(!e.contains('\u{1b}') && !e.contains('\0'), "{e}");
}

/// `--resume --shard i/N` on a whole (unsharded) run's folder says that it holds one and what
/// to do (once it refused the whole run's first row as "not a point of this run"), and
/// leaves the run as it was, finished or interrupted.
#[test]
fn resuming_a_whole_run_as_a_shard_says_it_is_unsharded() {
    let c = Case::new("1:4:1");
    c.ok("whole", &[]);
    let results = std::fs::read(c.path("whole/results.csv")).unwrap();
    for shard in ["0/2", "1/2"] {
        let o = c.run("whole", &["--resume", "--shard", shard]);
        refused(
            &o,
            &[
                &format!("--shard {shard}"),
                "holds an unsharded (whole) run",
                "resume it without --shard, or give another --out",
            ],
        );
        assert_eq!(std::fs::read(c.path("whole/results.csv")).unwrap(), results);
        assert!(!c.path("whole/.incomplete").exists());
    }
    // Interrupted: its rows in staging.
    let (w, st) = (c.path("whole"), c.path("whole/.incomplete"));
    std::fs::create_dir(&st).unwrap();
    for f in ["results.csv", "skipped.csv", "spec.resolved.toml"] {
        std::fs::rename(w.join(f), st.join(f)).unwrap();
    }
    let o = c.run("whole", &["--resume", "--shard", "0/2"]);
    refused(
        &o,
        &["holds an unsharded (whole) run", &st.display().to_string()],
    );
    c.ok("whole", &["--resume"]);
    c.ok("again", &[]);
    same_outputs(&c.path("again"), &c.path("whole"));
}

/// A shard's folder resumed without `--shard`, or with another, names the shard it holds.
#[test]
fn resuming_a_shards_folder_names_its_shard() {
    let c = Case::new("1:4:1");
    c.ok("s1", &["--shard", "1/2"]);
    let o = c.run("s1", &["--resume"]);
    refused(&o, &["shard 1/2", "not a whole run", "add --shard 1/2"]);
    let o = c.run("s1", &["--resume", "--shard", "0/2"]);
    refused(&o, &["holds shard 1/2", "not 0/2", "--shard 1/2"]);
    c.ok("s1", &["--resume", "--shard", "1/2"]);
}

/// An interrupted shard (its work in `.incomplete/`) merged is named as unfinished, with the
/// command that finishes it; resumed without `--shard` it names its shard too.
#[test]
fn an_unfinished_shard_says_so() {
    let c = Case::new("1:4:1");
    c.ok("s0", &["--shard", "0/2"]);
    c.ok("s1", &["--shard", "1/2"]);
    // s1 as a run killed before it published: its files back in staging.
    let (s1, st) = (c.path("s1"), c.path("s1/.incomplete"));
    std::fs::create_dir(&st).unwrap();
    for f in [
        "results.csv",
        "skipped.csv",
        "shard.toml",
        "spec.resolved.toml",
    ] {
        if s1.join(f).exists() {
            std::fs::rename(s1.join(f), st.join(f)).unwrap();
        }
    }
    for f in ["front.csv", "front.svg", "report.html"] {
        let _ = std::fs::remove_file(s1.join(f));
    }
    let o = c.merge(&["s0", "s1"], "m");
    refused(&o, &["did not finish", "--resume --shard 1/2"]);
    let o = c.run("s1", &["--resume"]);
    refused(&o, &["add --shard 1/2"]);
    c.ok("s1", &["--resume", "--shard", "1/2"]);
    let o = c.merge(&["s0", "s1"], "m");
    assert!(o.status.success(), "{}", err(&o));
    c.ok("plain", &[]);
    same_outputs(&c.path("plain"), &c.path("m"));
}

/// `--resume` on a finished run refuses lines cut off the end of results.csv, as it refuses
/// them cut off skipped.csv (once the rows were recomputed and appended silently).
#[test]
fn lines_cut_off_a_finished_results_csv_are_refused() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    for f in ["results.csv", "skipped.csv"] {
        let path = c.path("plain").join(f);
        let text = std::fs::read_to_string(&path).unwrap();
        let before = text.clone();
        let keep: Vec<&str> = text.lines().take(4).collect();
        std::fs::write(&path, keep.join("\n") + "\n").unwrap();
        let cut = std::fs::read(&path).unwrap();
        let o = c.run("plain", &["--resume"]);
        refused(&o, &[&path.display().to_string(), "lines were removed"]);
        assert_eq!(std::fs::read(&path).unwrap(), cut, "{f} changed");
        assert!(!c.path("plain/.incomplete").exists());
        std::fs::write(&path, before).unwrap();
    }
    // Deleted, it is rebuilt.
    std::fs::remove_file(c.path("plain/skipped.csv")).unwrap();
    c.ok("plain", &["--resume"]);
    c.ok("again", &[]);
    same_outputs(&c.path("plain"), &c.path("again"));
}

/// `--out DIR/new/..` and `DIR/a/b/c/../../..` write to DIR and make no other folder, for
/// `sweep` and for `merge`.
#[test]
fn out_through_missing_folders_makes_none_of_them() {
    let c = Case::new("1:4:1");
    std::fs::create_dir(c.path("oo")).unwrap();
    for out in ["oo/new/..", "oo/a/b/c/../../.."] {
        c.ok(out, &[]);
        assert!(c.path("oo/results.csv").exists());
        let names: Vec<_> = std::fs::read_dir(c.path("oo"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            !names.iter().any(|n| n == "new" || n == "a"),
            "{out}: {names:?}"
        );
    }
    c.ok("s0", &["--shard", "0/2"]);
    c.ok("s1", &["--shard", "1/2"]);
    std::fs::create_dir(c.path("mm")).unwrap();
    let o = c.merge(&["s0", "s1"], "mm/x/..");
    assert!(o.status.success(), "{}", err(&o));
    assert!(c.path("mm/results.csv").exists());
    assert!(!c.path("mm/x").exists());
    same_outputs(&c.path("oo"), &c.path("mm"));
}
