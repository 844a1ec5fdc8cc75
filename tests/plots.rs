//! What a person sees after a sweep besides the page, through the binary: a clean terminal
//! (no `error:` lines on success, a closing summary that `--quiet` silences) and the SVG
//! plots of trace, dynamic and sweep directories. The report page: `report.rs`.

mod common;

use std::path::Path;

use common::report_sweep::{lstm_dse, ok, sweep_into};

#[test]
fn a_sweep_ends_clean_with_a_summary_and_quiet_silences_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, stdout, stderr) = sweep_into(dir.path(), &[]);
    assert!(
        !stderr.to_lowercase().contains("error"),
        "a successful sweep printed an error line:\n{stderr}"
    );
    // The summary: points, front size, the best design of each objective, the files.
    let points = std::fs::read_to_string(out.join("results.csv"))
        .expect("results")
        .lines()
        .count()
        - 1;
    let front = std::fs::read_to_string(out.join("front.csv"))
        .expect("front")
        .lines()
        .count()
        - 1;
    assert!(
        stdout.contains(&format!(
            "{points} design points, {front} on the Pareto front"
        )),
        "{stdout}"
    );
    for objective in ["latency_us (min)", "energy_uj (min)", "area_mm2 (min)"] {
        assert!(stdout.contains(&format!("best {objective}")), "{stdout}");
    }
    assert!(stdout.contains("best top1_agreement (max)"), "{stdout}");
    assert!(stdout.contains("compute.units="), "{stdout}");
    assert!(stdout.contains(&out.display().to_string()), "{stdout}");

    // The best latency in the summary is the smallest latency of results.csv (an independent
    // reading of the file, not the code that wrote the summary).
    let mut rd = csv::Reader::from_path(out.join("results.csv")).expect("csv");
    let col = rd
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "latency_us")
        .expect("latency column");
    let min = rd
        .records()
        .map(|r| r.expect("row")[col].parse::<f64>().expect("number"))
        .fold(f64::INFINITY, f64::min);
    let line = stdout
        .lines()
        .find(|l| l.contains("best latency_us"))
        .expect("latency line");
    let shown: f64 = line
        .rsplit("= ")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .expect("a number");
    assert!(
        (shown - min).abs() <= min * 1e-3,
        "summary says {shown}, results say {min}"
    );

    let (stdout, stderr) = {
        let (_, o, e) = sweep_into(dir.path(), &["--quiet"]);
        (o, e)
    };
    assert_eq!(stdout, "", "--quiet printed to stdout");
    assert_eq!(stderr, "", "--quiet printed to stderr");
}

#[test]
fn plots_of_trace_dynamic_and_sweep_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (out, _, _) = sweep_into(d, &["--quiet"]);
    let input = d.join("x.npy");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    common::gen_input("builtin:tiny", 2, 6, &input);
    let tr = d.join("tr");
    ok(&[
        "trace",
        "--model",
        "builtin:tiny",
        "--input",
        &s(&input),
        "--precisions",
        "fx6,fx16",
        "--out",
        &s(&tr),
        "--device",
        "cpu",
        "-q",
    ]);
    ok(&[
        "dynamic",
        "--model",
        "builtin:tiny",
        "--input",
        &s(&input),
        "--levels",
        "fx6,fx16",
        "--thresholds",
        "0.05",
        "--trace-policy",
        "0",
        "--out",
        &s(&tr),
        "--device",
        "cpu",
        "-q",
    ]);
    ok(&["plot", "trace", &s(&tr), "--sequence", "1", "-q"]);
    // The figures are SVG: another extension is refused before anything is written.
    for (kind, dir) in [("trace", &tr), ("front", &out)] {
        let png = d.join(format!("{kind}.png"));
        common::fails(
            &["plot", kind, &s(dir), "--out", &s(&png)],
            &["--out", "the figure is SVG, not .png"],
        );
        assert!(!png.exists());
    }
    let svg = std::fs::read_to_string(tr.join("trace_seq1.svg")).expect("trace plot");
    // The error plot and one timeline; one line per precision and policy.
    assert!(svg.contains("fx6") && svg.contains("fx16") && svg.contains("policy 0"));
    assert_eq!(svg.matches("<polyline").count(), 2 + 1 + 1 + 1, "{svg}");

    // The timeline's levels are those of policy_0_trace.csv for sequence 1, last layer,
    // forward: each step's band tooltip names its level.
    let mut rd = csv::Reader::from_path(tr.join("policy_0_trace.csv")).expect("trace csv");
    let hdr = rd.headers().expect("hdr").clone();
    let c = |n: &str| hdr.iter().position(|h| h == n).expect(n);
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("row")).collect();
    let last = rows
        .iter()
        .map(|r| r[c("layer")].parse::<usize>().expect("layer"))
        .max()
        .expect("rows");
    for r in rows.iter().filter(|r| {
        &r[c("sequence")] == "1"
            && r[c("layer")].parse::<usize>().ok() == Some(last)
            && &r[c("direction")] == "0"
    }) {
        let want = format!(
            "step {}: level {} ({})",
            &r[c("step")],
            &r[c("level")],
            &r[c("level_precision")]
        );
        assert!(svg.contains(&want), "missing {want}");
    }

    ok(&["plot", "trace", &s(&out), "-q"]);
    assert!(out.join("trace_seq0.svg").exists());
    ok(&["plot", "front", &s(&out), "-q"]);
    let front = std::fs::read_to_string(out.join("front_objectives.svg")).expect("front plot");
    assert!(front.contains("colour: area_mm2") && front.contains("size: top1_agreement"));
    let on_front = std::fs::read_to_string(out.join("front.csv"))
        .expect("front")
        .lines()
        .count()
        - 1;
    // One tooltip per front point that names its configuration.
    assert_eq!(front.matches("<title>model=").count(), on_front);

    // Bad input: one line, exit 2.
    for args in [
        vec!["plot", "front", &s(&out), "--x", "nope"],
        vec!["plot", "trace", &s(d), "-q"],
        vec!["report", &s(&tr)],
        vec!["plot", "trace", &s(&out), "--sequence", "99"],
    ] {
        let o = lstm_dse(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // A text column on an axis drew an empty chart with exit 0: refused, naming the flag.
    for (flag, column) in [
        ("--x", "precision"),
        ("--colour", "compute.multiplier_kind"),
    ] {
        let args = [
            "plot",
            "front",
            &s(&out),
            flag,
            column,
            "--out",
            "/dev/null",
        ];
        let o = lstm_dse(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("{flag} {column}")) && err.contains("not a number"),
            "{err}"
        );
    }
}

/// Rewrites a CSV file that holds no quoted fields, row by row (header included).
fn edit_csv(path: &Path, edit: impl Fn(&mut Vec<Vec<String>>)) {
    let text = std::fs::read_to_string(path).expect("csv");
    let mut rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    edit(&mut rows);
    let lines: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write csv");
}

/// The index of column `name` in a header row.
fn col(rows: &[Vec<String>], name: &str) -> usize {
    rows[0].iter().position(|h| h == name).expect(name)
}

/// The row of `precision` at `step` of sequence 0 in the last layer's forward direction.
fn shown(rows: &[Vec<String>], precision: &str, step: &str) -> usize {
    let layer = col(rows, "layer");
    let last = rows[1..].iter().map(|r| r[layer].clone()).max();
    (1..rows.len())
        .find(|&i| {
            let r = &rows[i];
            r[0] == precision
                && r[col(rows, "sequence")] == "0"
                && Some(&r[layer]) == last.as_ref()
                && r[col(rows, "direction")] == "0"
                && r[col(rows, "step")] == step
        })
        .expect("a shown row")
}

/// `plot trace` on a `trace` directory read errors.csv loosely: a renamed value column drew a
/// blank figure and a renamed `step` a single point (exit 0), a cell that is not a number was
/// dropped, a renamed `sequence` or `layer` and an empty file were reported as no traces at
/// all, and `--sequence` past the trace's sequences did not say how many there are. Each is
/// refused naming the file, the column (and the line of a bad cell), exit 2, no figure. The
/// error figure's axis says what it plots: the error against the float64 reference.
#[test]
fn plot_trace_refuses_trace_files_it_cannot_draw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let (input, tr, dy) = (d.join("x.npy"), d.join("tr"), d.join("dy"));
    common::gen_input("builtin:tiny", 2, 6, &input);
    let run = |command: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            command,
            "--model",
            "builtin:tiny",
            "--input",
            input.to_str().expect("utf-8"),
            "--device",
            "cpu",
            "-q",
            "--out",
            out.to_str().expect("utf-8"),
        ];
        args.extend(extra);
        ok(&args);
    };
    run("trace", &tr, &["--precisions", "fp32,fx8,fx16"]);
    run(
        "dynamic",
        &dy,
        &[
            "--levels",
            "fx6,fx16",
            "--thresholds",
            "0.05",
            "--trace-policy",
            "0",
        ],
    );
    ok(&["plot", "trace", &s(&tr), "-q"]);
    let svg = std::fs::read_to_string(tr.join("trace_seq0.svg")).expect("figure");
    assert!(
        svg.contains("max |h - h_ref| (float64 reference, log)") && !svg.contains("h_fp32"),
        "the y axis names the reference"
    );

    let figure = d.join("figure.svg");
    let plot = |dir: &Path, extra: &[&str], expect: &[&str]| {
        let mut args = vec!["plot", "trace", dir.to_str().expect("utf-8")];
        args.extend(["--out", figure.to_str().expect("utf-8")]);
        args.extend(extra);
        common::refused(&lstm_dse(&args), expect);
        assert!(!figure.exists(), "{args:?} wrote the figure");
    };
    plot(
        &tr,
        &["--sequence", "5"],
        &["errors.csv", "--sequence 5", "2 sequences (0..1)"],
    );

    let errors = tr.join("errors.csv");
    let original = std::fs::read(&errors).expect("errors.csv");
    type Edit = Box<dyn Fn(&mut Vec<Vec<String>>)>;
    let rename = |from: &'static str| -> Edit {
        Box::new(move |rows: &mut Vec<Vec<String>>| {
            let c = col(rows, from);
            rows[0][c] = "renamed".into();
        })
    };
    let cases: Vec<(Edit, Vec<&str>)> = vec![
        (rename("hidden_max_abs"), vec!["no column `hidden_max_abs`"]),
        (rename("step"), vec!["no column `step`"]),
        (rename("sequence"), vec!["no column `sequence`"]),
        (rename("layer"), vec!["no column `layer`"]),
        (
            Box::new(|rows| {
                let c = col(rows, "hidden_max_abs");
                rows[4][c] = "abc".into();
            }),
            vec!["line 5", "column `hidden_max_abs`", "`abc` is not a number"],
        ),
        (
            Box::new(|rows| {
                let c = col(rows, "hidden_max_abs");
                rows[4][c] = "-1".into();
            }),
            vec![
                "line 5",
                "column `hidden_max_abs`",
                "`-1` is not a magnitude",
            ],
        ),
        (
            Box::new(|rows| {
                let c = col(rows, "step");
                rows[2][c] = "x".into();
            }),
            vec!["line 3", "column `step`", "`x` is not an index"],
        ),
        (Box::new(|rows| rows.truncate(1)), vec!["no rows"]),
        (
            Box::new(|rows| {
                let i = shown(rows, "fx8", "2");
                let row = rows[i].clone();
                rows.insert(i, row);
            }),
            vec!["column `step`", "step 2 of fx8, sequence 0 appears twice"],
        ),
        (
            Box::new(|rows| {
                rows.remove(shown(rows, "fp32", "1"));
            }),
            vec!["column `step`", "fp32, sequence 0 has no step 1"],
        ),
        (
            Box::new(|rows| {
                rows.remove(shown(rows, "fx16", "5"));
            }),
            vec!["precision fx16 has 5 steps of sequence 0, fp32 has 6"],
        ),
    ];
    for (edit, expect) in cases {
        std::fs::write(&errors, &original).expect("restore");
        edit_csv(&errors, edit);
        let mut want = vec!["errors.csv"];
        want.extend(expect);
        plot(&tr, &[], &want);
    }
    std::fs::write(&errors, "").expect("empty");
    plot(&tr, &[], &["errors.csv", "empty, not even a header"]);

    // A policy trace's level past the policy's levels (policies.csv: two).
    let trace = dy.join("policy_0_trace.csv");
    let policies = dy.join("policies.csv");
    let (trace_bytes, policies_bytes) = (
        std::fs::read(&trace).expect("trace"),
        std::fs::read(&policies).expect("policies"),
    );
    let restore = || {
        std::fs::write(&trace, &trace_bytes).expect("restore trace");
        std::fs::write(&policies, &policies_bytes).expect("restore policies");
    };
    // A level whose precision is not the one policies.csv lists for it, or (without
    // policies.csv) not the one an earlier row gave it: the timeline named the level by the
    // last row read.
    let rename_level = |row: usize| {
        move |rows: &mut Vec<Vec<String>>| {
            let c = col(rows, "level_precision");
            rows[row][c] = "fx12".into();
        }
    };
    edit_csv(&trace, rename_level(1));
    plot(
        &dy,
        &[],
        &[
            "policy_0_trace.csv",
            "line 2",
            "column `level_precision`",
            "`fx12`",
            "policies.csv",
        ],
    );
    restore();
    std::fs::remove_file(&policies).expect("remove policies.csv");
    edit_csv(&trace, rename_level(3));
    plot(
        &dy,
        &[],
        &["policy_0_trace.csv", "line 4", "`fx12`", "an earlier row"],
    );
    // policies.csv: thresholds that are not one per level boundary, a policy listed twice, an
    // empty level, and no row for the traced policy (a trace of another run).
    type PolicyEdit = Box<dyn Fn(&mut Vec<Vec<String>>)>;
    let set = |name: &'static str, value: &'static str| -> PolicyEdit {
        Box::new(move |rows: &mut Vec<Vec<String>>| {
            let c = col(rows, name);
            rows[1][c] = value.into();
        })
    };
    let policy_cases: Vec<(PolicyEdit, Vec<&str>)> = vec![
        (
            set("thresholds", "0.05|0.1"),
            vec![
                "line 2",
                "column `thresholds`",
                "one threshold per boundary of the 2 levels",
            ],
        ),
        (
            set("levels", "fx6|"),
            vec!["line 2", "column `levels`", "`fx6|`"],
        ),
        (
            Box::new(|rows| {
                let row = rows[1].clone();
                rows.push(row);
            }),
            vec!["line 3", "column `policy`", "not listed before"],
        ),
        (
            set("policy", "7"),
            vec!["no row for policy 0", "policy_0_trace.csv"],
        ),
    ];
    for (edit, expect) in policy_cases {
        restore();
        edit_csv(&policies, edit);
        let mut want = vec!["policies.csv"];
        want.extend(expect);
        plot(&dy, &[], &want);
    }
    restore();
    // A file whose name reads as policy 0 but is no name `dynamic` writes is not read: it
    // was drawn as a second timeline of policy 0.
    let drawn = |name: &str| {
        let svg = d.join(name);
        let to = svg.to_str().expect("utf-8");
        ok(&[
            "plot",
            "trace",
            dy.to_str().expect("utf-8"),
            "--out",
            to,
            "-q",
        ]);
        std::fs::read_to_string(&svg).expect("figure")
    };
    let alone = drawn("alone.svg");
    std::fs::copy(&trace, dy.join("policy_00_trace.csv")).expect("copy");
    assert_eq!(drawn("beside.svg"), alone, "policy_00_trace.csv was drawn");
    std::fs::remove_file(dy.join("policy_00_trace.csv")).expect("remove");
    edit_csv(&trace, |rows| {
        let c = col(rows, "level");
        for r in &mut rows[1..] {
            r[c] = "300".into();
        }
    });
    plot(
        &dy,
        &[],
        &["policy_0_trace.csv", "line 2", "column `level`", "`300`"],
    );
    // A threshold that is no threshold (NaN was drawn as "at NaN"), and a policies.csv of
    // no policies (it said "a row per step").
    edit_csv(&policies, |rows| {
        let c = col(rows, "thresholds");
        rows[1][c] = "NaN".into();
    });
    plot(
        &dy,
        &[],
        &["policies.csv", "line 2", "column `thresholds`", "`NaN`"],
    );
    edit_csv(&policies, |rows| rows.truncate(1));
    plot(&dy, &[], &["policies.csv", "no rows", "a row per policy"]);
}
