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
    ok(&[
        "gen-input",
        "--model",
        "builtin:tiny",
        "--sequences",
        "2",
        "--steps",
        "6",
        "--output",
        &s(&input),
    ]);
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
