//! `lstm-dse pareto` through the binary, on a results file a sweep wrote.

mod common;

use common::run;

#[test]
fn front_of_a_results_file_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (front, plot) = (dir.path().join("front.csv"), dir.path().join("front.svg"));
    let o = run(&[
        "pareto",
        "results/quick/results.csv",
        "--minimize",
        "latency_us,energy_uj",
        "--maximize",
        "task_accuracy",
        "--where",
        "task_accuracy >= 0.9 and area_mm2 < 50",
        "--out",
        front.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Quoted fields (precision configs contain commas) need a real CSV reader.
    let mut rd = csv::Reader::from_path(&front).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = |c: &str| h.iter().position(|x| x == c).unwrap();
    let cols = ["latency_us", "energy_uj", "task_accuracy", "area_mm2"].map(col);
    let rows: Vec<Vec<f64>> = rd
        .records()
        .map(|r| {
            let r = r.unwrap();
            cols.iter().map(|&i| r[i].parse().unwrap()).collect()
        })
        .collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(r[2] >= 0.9 && r[3] < 50.0, "filter not applied: {r:?}");
    }
    // No front row dominates another.
    for a in &rows {
        for b in &rows {
            let dominates = a[0] <= b[0]
                && a[1] <= b[1]
                && a[2] >= b[2]
                && (a[0] < b[0] || a[1] < b[1] || a[2] > b[2]);
            assert!(!dominates, "{a:?} dominates {b:?}");
        }
    }
    assert!(std::fs::read_to_string(&plot)
        .unwrap()
        .contains("latency_us"));
    for (args, expect) in [
        (vec!["--minimize", "nope"], "nope"),
        (
            vec!["--minimize", "latency_us", "--where", "latency_us <"],
            "expression `latency_us <`",
        ),
    ] {
        let mut a = vec![
            "pareto",
            "results/quick/results.csv",
            "--out",
            front.to_str().unwrap(),
        ];
        a.extend(args);
        let o = run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err}");
    }
}

/// An objective that is no column, or named twice, is refused naming the flag that named it
/// and the value (the errors once said only "objective `x` is named twice").
#[test]
fn objective_errors_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let front = dir.path().join("front.csv").display().to_string();
    for (args, expect) in [
        (
            ["--minimize", "latency_us", "--maximize", "latency_us"],
            "--maximize latency_us: also named by --minimize",
        ),
        (
            [
                "--minimize",
                "latency_us,energy_uj",
                "--minimize",
                "energy_uj",
            ],
            "--minimize energy_uj: named twice",
        ),
        (
            ["--minimize", "latnecy", "--maximize", "task_accuracy"],
            "--minimize latnecy: not a column of results/quick/results.csv (columns: point,",
        ),
        (
            ["--minimize", "latency_us", "--maximize", "accuracy"],
            "--maximize accuracy: not a column of",
        ),
    ] {
        let mut a = vec!["pareto", "results/quick/results.csv", "--out", &front];
        a.extend(args);
        common::fails(&a, &[expect]);
        assert!(!dir.path().join("front.csv").exists());
    }
}

/// Outputs that cannot both be written are refused before either is: the figure over the
/// front (it once replaced the CSV with exit 0), a directory, the input itself.
#[test]
fn outputs_that_clash_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let input = p("results.csv");
    std::fs::copy("results/quick/results.csv", &input).unwrap();
    for (out, plot, expect) in [
        (p("f.csv"), Some(p("f.csv")), "name the same file"),
        (p("f.csv"), Some(p("./f.csv")), "name the same file"),
        (p("f.csv"), Some(p("adir")), "--plot"),
        (p("adir"), None, "--out"),
        (input.clone(), None, "is the input"),
        (
            p("f.csv"),
            Some(format!("{input}/f.svg")),
            "is a file, not a directory",
        ),
    ] {
        let mut a = vec!["pareto", &input, "--minimize", "latency_us", "--out", &out];
        if let Some(plot) = &plot {
            a.extend(["--plot", plot]);
        }
        let o = run(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{a:?}: {err}");
        assert!(!dir.path().join("f.csv").exists(), "{a:?} wrote the front");
    }
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read("results/quick/results.csv").unwrap()
    );
}

/// Objective values across the whole f64 range (0 and 1.79e308 on one axis; f64::MAX twice):
/// the plot's 5% margins made an infinite axis and plotters' tick loop never ended, leaving
/// `--out`'s `.partial` behind. Each run is killed after 60 s so a regression fails here.
#[test]
fn plots_of_values_at_the_ends_of_f64_finish() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "a,b\n1.79e308,1\n0,2\n",
        "a,b\n1.7976931348623157e308,1\n1.7976931348623157e308,2\n",
        "a,b\n-1.7e308,1\n1.7e308,2\n",
        "a,b\n5e-324,1\n0,2\n",
    ];
    for (k, csv) in cases.iter().enumerate() {
        let input = dir.path().join(format!("in{k}.csv"));
        std::fs::write(&input, csv).unwrap();
        let (front, plot) = (dir.path().join("f.csv"), dir.path().join("f.svg"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args([
                "pareto",
                input.to_str().unwrap(),
                "--minimize",
                "a,b",
                "--out",
            ])
            .args([front.to_str().unwrap(), "--plot", plot.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > std::time::Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{csv:?}: pareto --plot still running after 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(status.success(), "{csv:?}: {status}");
        let svg = std::fs::read_to_string(&plot).unwrap();
        assert!(svg.contains("<circle") && !svg.contains("NaN"), "{csv:?}");
        let partial = dir.path().join("f.csv.partial");
        assert!(!partial.exists(), "{csv:?}: {} left", partial.display());
    }
}

/// A signal (Ctrl-C, `kill`) while `pareto` writes removes its temporary files before the
/// process ends by that signal: a killed run once left `front.csv.partial` behind. The run is
/// caught at a known point: `--plot` is a FIFO, written in place, whose open waits for a
/// reader, after front.csv's temporary file is written whole.
#[cfg(unix)]
#[test]
fn a_signal_while_writing_leaves_no_partial_file() {
    use std::os::unix::process::ExitStatusExt;
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("front.svg");
        common::mkfifo(&fifo);
        let (out, partial) = (
            dir.path().join("front.csv"),
            dir.path().join("front.csv.partial"),
        );
        let args = [
            "pareto",
            "results/quick/results.csv",
            "--minimize",
            "latency_us,energy_uj",
            "--out",
            out.to_str().unwrap(),
            "--plot",
            fifo.to_str().unwrap(),
        ];
        let status = common::signal_while_writing(&args, &partial, sig);
        assert_eq!(status.signal(), Some(sig), "{status}");
        assert!(!partial.exists(), "signal {sig}: {partial:?} left behind");
        assert!(!out.exists(), "signal {sig}: front.csv written");
    }
}

/// `--out /dev/stdout` whose reader went away (`| head -2`) ends as stdout's does elsewhere:
/// exit 0, no "Broken pipe" (it was exit 2), and the figure is still written.
#[test]
fn a_reader_of_out_that_left_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("front.svg");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "pareto",
            "results/quick/results.csv",
            "--minimize",
            "latency_us,energy_uj",
            "--out",
            "/dev/stdout",
            "--plot",
            plot.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader leaves before anything is written.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        !err.contains("Broken pipe") && !err.contains("error"),
        "{err}"
    );
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
}

/// The figure is SVG only: `--plot front.png` (SVG under a PNG name, exit 0) is refused
/// naming --plot, and nothing is written.
#[test]
fn a_plot_name_that_is_not_svg_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let front = dir.path().join("front.csv");
    let with_plot = |plot: &std::path::Path| {
        run(&[
            "pareto",
            "results/quick/results.csv",
            "--minimize",
            "latency_us,energy_uj",
            "--out",
            front.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ])
    };
    let plot = dir.path().join("p4.png");
    common::refused(&with_plot(&plot), &["--plot", "p4.png", "SVG", ".svg"]);
    assert!(!front.exists() && !plot.exists());
    // Any case of .svg is an SVG name.
    let upper = dir.path().join("P4.SVG");
    let o = with_plot(&upper);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(upper.exists());
}
