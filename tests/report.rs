//! What a person sees after a sweep, through the binary: the report page. It renders in a
//! headless browser without network, a static export gets its page on the sizes it fixes
//! (and `gen-input` writes those sizes), and `report` refuses what a whole run did not write.
//! The clean terminal and the SVG plots: `plots.rs`.

mod common;

use std::path::Path;
use std::process::Command;

use common::report_sweep::{lstm_dse, ok, sweep_into};

/// The headless browser: `$CHROMIUM`, else Debian's `chromium`. Outside CI a missing browser
/// skips the test with a message; in CI (`CI=true`, where .ci/run installs it) it fails.
fn chromium() -> Option<String> {
    let candidates = std::env::var("CHROMIUM")
        .ok()
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(String::from));
    for c in candidates {
        let found = Command::new(&c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(c);
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but no chromium: .ci/run installs Debian's chromium"
    );
    eprintln!("skipping: no chromium found (apt-get install chromium, or set CHROMIUM)");
    None
}

/// Loads `page` in headless chromium with every host name unresolvable (no network), takes a
/// full-page screenshot; returns the decoded RGB(A) pixels, width, height and the browser's
/// log.
fn screenshot(
    browser: &str,
    page: &Path,
    dir: &Path,
    size: (u32, u32),
) -> (Vec<u8>, u32, u32, usize, String) {
    let shot = dir.join("shot.png");
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("run chromium");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "chromium failed:\n{log}");
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("screenshot written"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    (buf, info.width, info.height, channels, log)
}

#[test]
fn the_report_renders_in_a_headless_browser_without_network() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _, _) = sweep_into(dir.path(), &["--quiet"]);
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).expect("report.html written by the sweep");

    // Self-contained: no script, nothing fetched; the only URL is the SVG namespace.
    for banned in [
        "<script", " src=", " href=", "url(", "@import", "<link", "<iframe",
    ] {
        assert!(!html.contains(banned), "report.html contains {banned}");
    }
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http:") && !without_ns.contains("https:"));
    // 4 objectives: 6 pairs in the scatter matrix, the colour/size front (a chart nested in
    // the figure that holds its colour and size keys: 2), the error plot, one timeline per
    // policy (3 thresholds).
    assert_eq!(
        html.matches("<svg").count(),
        6 + 2 + 1 + 3,
        "figures in the page"
    );
    let front_rows = std::fs::read_to_string(out.join("front.csv"))
        .expect("front")
        .lines()
        .count()
        - 1;
    // One table row per front design (plus the header row).
    let table = html
        .split("<h2>Designs on the front</h2>")
        .nth(1)
        .and_then(|s| s.split("</table>").next())
        .expect("front table");
    assert_eq!(table.matches("<tr>").count(), front_rows + 1);
    assert!(html.contains("spec.resolved.toml") && html.contains("[spec.pareto]"));

    let (px, w, h, ch, log) = screenshot(&browser, &page, dir.path(), (1400, 3200));
    for bad in ["Uncaught", "ERR_NAME_NOT_RESOLVED", "net::ERR", ":CONSOLE("] {
        assert!(!log.contains(bad), "browser log has {bad}:\n{log}");
    }
    let pixel = |x: u32, y: u32| {
        let i = ((y * w + x) as usize) * ch;
        (px[i] as i32, px[i + 1] as i32, px[i + 2] as i32)
    };
    // Non-blank: the page's figures put ink in every 200-pixel band down to the error plot.
    let ink = |y0: u32, y1: u32| {
        let mut n = 0usize;
        for y in y0..y1.min(h) {
            for x in 0..w {
                let (r, g, b) = pixel(x, y);
                if r < 235 || g < 235 || b < 235 {
                    n += 1;
                }
            }
        }
        n as f64 / ((y1.min(h) - y0) * w) as f64
    };
    let bands: Vec<f64> = (0..h / 200).map(|k| ink(k * 200, (k + 1) * 200)).collect();
    let inked = bands.iter().filter(|&&f| f > 0.005).count();
    assert!(
        inked * 10 >= bands.len() * 8,
        "blank regions in the screenshot: ink per band {bands:?}"
    );
    // The figures' own colours are on screen: red front points, viridis colour of the third
    // objective (its dark end), and the trace lines / level strips (first palette colour).
    let count = |pred: &dyn Fn(i32, i32, i32) -> bool| {
        let mut n = 0;
        for y in 0..h {
            for x in 0..w {
                let (r, g, b) = pixel(x, y);
                if pred(r, g, b) {
                    n += 1;
                }
            }
        }
        n
    };
    let red = count(&|r, g, b| r > 180 && g < 90 && b < 90);
    let purple = count(&|r, g, b| (50..130).contains(&r) && g < 70 && (80..150).contains(&b));
    let blue =
        count(&|r, g, b| (r - 0x4e).abs() < 12 && (g - 0x79).abs() < 12 && (b - 0xa7).abs() < 12);
    assert!(red > 200, "front points: {red} red pixels");
    assert!(purple > 20, "colour scale: {purple} purple pixels");
    assert!(
        blue > 200,
        "trace lines and level strips: {blue} blue pixels"
    );
}

#[test]
fn a_static_export_gets_its_page_on_the_sizes_it_fixes() {
    // The page re-runs one sequence of the input; a graph that fixes its batch at 3 refused
    // that one-sequence run, so the sweep had no report.html (a warning, exit 0).
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("static.toml");
    let body = r#"
name = "static"
[workload]
models = ["tests/data/static_shapes.onnx"]
sequences = SEQS
steps = 7
seq_len = 7
[precision]
fixed = ["fx8"]
levels = ["fx8", "fx16"]
thresholds = "0,inf"
[arch]
base = "sweeps/arch/epur.toml"
[pareto]
minimize = ["latency_us"]
"#;
    std::fs::write(&spec, body.replace("SEQS", "3")).unwrap();
    let out = dir.path().join("out");
    let (_, err) = ok(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!err.contains("warning"), "{err}");
    assert!(out.join("report.html").is_file(), "{err}");
    // Other sizes are refused up front, naming what fixes them (the declared graph input).
    std::fs::write(&spec, body.replace("SEQS", "4")).unwrap();
    let o = lstm_dse(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("fixes them to 3") && err.contains("graph input 'X'"),
        "{err}"
    );
    // `inspect` says the same.
    let (out, _) = ok(&["inspect", "--model", "tests/data/static_shapes.onnx"]);
    for want in [
        "inputs must have 7 steps (fixed by graph input 'X')",
        "inputs must have 3 sequences (fixed by graph input 'X')",
    ] {
        assert!(out.contains(want), "{out}");
    }
}

/// `report` draws only what a whole run wrote: a shard (a part of the points, no front) is
/// refused with advice, and so is a results.csv whose columns are not the ones its
/// spec.resolved.toml's sweep writes (once both were drawn with exit 0, an empty front and
/// axes of NaN). Nothing is written.
#[test]
fn report_refuses_a_shard_and_results_of_other_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (shard, _, _) = sweep_into(dir.path(), &["--quiet", "--shard", "0/2"]);
    let o = lstm_dse(&["report", shard.to_str().expect("utf-8")]);
    common::refused(
        &o,
        &[
            "shard.toml",
            "one shard of a sweep",
            "merge the shards first",
        ],
    );
    assert!(!shard.join("report.html").exists());

    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _, _) = sweep_into(dir.path(), &["--quiet"]);
    let page = std::fs::read(out.join("report.html")).expect("the sweep's page");
    let results = out.join("results.csv");
    let text = std::fs::read_to_string(&results).expect("results.csv");
    for (from, to, expect) in [
        (
            "latency_us,",
            "latency_s,",
            "is 'latency_s', expected 'latency_us'",
        ),
        (",tool_version", "", "column 'tool_version' is missing"),
        (
            ",tool_version",
            ",tool_version,extra",
            "an extra column 'extra'",
        ),
    ] {
        let (header, rest) = text.split_once('\n').expect("a header");
        std::fs::write(
            &results,
            format!("{}\n{rest}", header.replacen(from, to, 1)),
        )
        .expect("edit");
        let o = lstm_dse(&["report", out.to_str().expect("utf-8")]);
        common::refused(&o, &["results.csv", expect]);
        assert_eq!(std::fs::read(out.join("report.html")).expect("page"), page);
    }
}

/// A front.csv whose header names a column twice is refused by `report` and `plot front`,
/// naming the file and the column (both took the first of the two: point indices were drawn
/// as latency with exit 0); so is a results.csv header that repeats one. Nothing is written.
#[test]
fn report_and_plot_front_refuse_a_header_that_repeats_a_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _, _) = sweep_into(dir.path(), &["--quiet"]);
    let page = std::fs::read(out.join("report.html")).expect("the sweep's page");
    let dir_arg = out.to_str().expect("utf-8");
    let front = out.join("front.csv");
    let text = std::fs::read_to_string(&front).expect("front.csv");
    assert!(text.starts_with("point,"), "{text}");
    std::fs::write(&front, text.replacen("point,", "latency_us,", 1)).expect("edit");
    let expect = [
        "front.csv",
        "column `latency_us` appears more than once in the header",
    ];
    common::refused(&lstm_dse(&["report", dir_arg]), &expect);
    assert_eq!(std::fs::read(out.join("report.html")).expect("page"), page);
    let figure = out.join("front_objectives.svg");
    common::refused(&lstm_dse(&["plot", "front", dir_arg]), &expect);
    assert!(!figure.exists());
    std::fs::write(&front, &text).expect("restore");

    let results = out.join("results.csv");
    let rtext = std::fs::read_to_string(&results).expect("results.csv");
    std::fs::write(&results, rtext.replacen("point,", "latency_us,", 1)).expect("edit");
    for args in [vec!["report", dir_arg], vec!["plot", "front", dir_arg]] {
        common::refused(&lstm_dse(&args), &["results.csv", "'latency_us'"]);
    }
    assert_eq!(std::fs::read(out.join("report.html")).expect("page"), page);
    assert!(!figure.exists());
}

/// An empty front.csv (zero bytes: a sweep writes the header even for an empty front) is
/// refused by `report` as by `plot front`; it was drawn as an empty front with exit 0.
#[test]
fn report_refuses_an_empty_front_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _, _) = sweep_into(dir.path(), &["--quiet"]);
    let page = std::fs::read(out.join("report.html")).expect("the sweep's page");
    let dir_arg = out.to_str().expect("utf-8");
    std::fs::write(out.join("front.csv"), "").expect("empty front.csv");
    for args in [vec!["report", dir_arg], vec!["plot", "front", dir_arg]] {
        common::refused(&lstm_dse(&args), &["front.csv", "empty"]);
    }
    // A front.csv deleted: refused too (it was drawn as an empty front).
    std::fs::remove_file(out.join("front.csv")).expect("rm front.csv");
    for args in [vec!["report", dir_arg], vec!["plot", "front", dir_arg]] {
        common::refused(&lstm_dse(&args), &["front.csv", "missing", "--resume"]);
    }
    assert_eq!(std::fs::read(out.join("report.html")).expect("page"), page);
    assert!(!out.join("front_objectives.svg").exists());
}

/// A results.csv cut short (or with rows deleted or added) no longer covers, with
/// skipped.csv, the points spec.resolved.toml's plan records: `report` refuses it with
/// advice instead of drawing "all N design points" of a smaller sweep whose front names
/// points that are not there.
#[test]
fn report_refuses_results_that_do_not_cover_the_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _, _) = sweep_into(dir.path(), &["--quiet"]);
    let page = std::fs::read(out.join("report.html")).expect("the sweep's page");
    let dir_arg = out.to_str().expect("utf-8");
    let results = out.join("results.csv");
    let text = std::fs::read_to_string(&results).expect("results.csv");
    let lines: Vec<&str> = text.lines().collect();
    let total = lines.len() - 1;
    assert!(total > 4, "{total} rows");
    let cut = lines[..4].join("\n") + "\n";
    let added = format!("{text}{}\n", lines[1]);
    for (edited, rows) in [(cut, 3), (added, total + 1)] {
        std::fs::write(&results, edited).expect("edit");
        let o = lstm_dse(&["report", dir_arg]);
        common::refused(
            &o,
            &[
                "results.csv",
                &format!("{rows} rows and 0 in skipped.csv"),
                &format!("plan has {total} points"),
                "--resume",
            ],
        );
        assert_eq!(std::fs::read(out.join("report.html")).expect("page"), page);
    }
    std::fs::write(&results, &text).expect("restore");
    ok(&["report", dir_arg]);
}

/// Rewrites the CSV file `path` with `value` in data row `row` (from 0), column `column`.
fn edit_cell(path: &Path, row: usize, column: &str, value: &str) {
    let mut rd = csv::Reader::from_path(path).expect("read csv");
    let header = rd.headers().expect("header").clone();
    let c = header.iter().position(|h| h == column).expect("column");
    let mut rows: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.expect("record").iter().map(String::from).collect())
        .collect();
    rows[row][c] = value.to_string();
    let mut w = csv::Writer::from_path(path).expect("write csv");
    w.write_record(&header).expect("header");
    for r in &rows {
        w.write_record(r).expect("row");
    }
    w.flush().expect("flush");
}

/// An objective cell that is not a number (results.csv or front.csv edited by hand) is
/// refused naming the file, the line, the column and the text: its row was once left off the
/// page with exit 0. An empty cell in results.csv (a value the run did not have, which a
/// sweep writes in rows its filter leaves out) is drawn as nothing, and said.
#[test]
fn report_refuses_an_objective_that_is_not_a_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _, _) = sweep_into(dir.path(), &["--quiet"]);
    let page = std::fs::read(out.join("report.html")).expect("the sweep's page");
    let dir_arg = out.to_str().expect("utf-8");
    for (file, line) in [("results.csv", "line 2:"), ("front.csv", "line 3:")] {
        let path = out.join(file);
        let before = std::fs::read(&path).expect("read");
        edit_cell(
            &path,
            if file == "front.csv" { 1 } else { 0 },
            "energy_uj",
            "12.5uJ",
        );
        let o = lstm_dse(&["report", dir_arg]);
        common::refused(
            &o,
            &[file, line, "column `energy_uj`", "`12.5uJ` is not a number"],
        );
        assert_eq!(std::fs::read(out.join("report.html")).expect("page"), page);
        std::fs::write(&path, before).expect("restore");
    }
    edit_cell(&out.join("results.csv"), 0, "top1_agreement", "");
    let (_, err) = ok(&["report", dir_arg]);
    assert!(
        err.contains("results.csv: 1 of the rows sampled")
            && err.contains("empty or NaN objective cell"),
        "{err}"
    );
}

/// `gen-input` writes the sizes a static export fixes unless told otherwise, and refuses
/// others (it wrote them, and every command then refused the file).
#[test]
fn gen_input_takes_the_sizes_a_static_export_fixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let x = dir.path().join("x.npy");
    let model = ["--model", "tests/data/static_shapes.onnx"];
    let mut args = vec!["gen-input", "--output", x.to_str().unwrap()];
    args.extend(model);
    ok(&args);
    let (shape, _) = lstm_dse::lstm::npy::read_f32(&x).expect("x.npy");
    assert_eq!(shape, [3, 7, 4]);
    std::fs::remove_file(&x).unwrap();
    for (flag, n, want) in [("--steps", "6", "7"), ("--sequences", "1", "3")] {
        let mut bad = args.clone();
        bad.extend([flag, n]);
        let o = lstm_dse(&bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        let says = format!(
            "{flag} {n}: 'tests/data/static_shapes.onnx' fixes it to {want} (its graph input 'X'"
        );
        assert!(err.contains(&says), "{err}");
        assert!(!x.exists());
    }
    // The sizes it fixes may be given.
    args.extend(["--steps", "7", "--sequences", "3"]);
    ok(&args);
}

/// `report` reran the precision stage of its page from the model file as it is now: a model
/// replaced since the sweep (`[inputs]` of spec.resolved.toml records its content hash) drew
/// another model's per-step errors beside the sweep's results, exit 0. Refused as `--resume`
/// and `merge` refuse a changed input, naming the file and both hashes; the old page stays,
/// and `plot trace` on the directory is refused the same way. The file restored, it draws.
#[test]
fn report_refuses_a_model_changed_since_the_sweep() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let model = d.join("m.onnx");
    std::fs::copy("tests/data/gemm_rules.onnx", &model).expect("model");
    let spec = d.join("changed.toml");
    let text = common::report_sweep::SPEC.replace(
        r#"models = ["builtin:tiny"]"#,
        &format!("models = [{:?}]", model.display().to_string()),
    );
    assert!(text.contains("m.onnx"));
    std::fs::write(&spec, text).expect("spec");
    let out = d.join("out");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    ok(&[
        "sweep",
        &s(&spec),
        "--out",
        &s(&out),
        "--cache",
        &s(&d.join("cache")),
        "--quiet",
    ]);
    let page = std::fs::read(out.join("report.html")).expect("the sweep's page");
    // Another model of the same shape: it loads and runs, with other weights.
    std::fs::copy("tests/data/reshape_gemm.onnx", &model).expect("replace");
    let expect = [
        "spec.resolved.toml",
        "input",
        "m.onnx changed since the sweep",
        "content hash was fnv64:",
        ", now fnv64:",
    ];
    common::refused(&lstm_dse(&["report", &s(&out)]), &expect);
    assert_eq!(std::fs::read(out.join("report.html")).expect("page"), page);
    let figure = d.join("t.svg");
    common::refused(
        &lstm_dse(&["plot", "trace", &s(&out), "--out", &s(&figure)]),
        &expect,
    );
    assert!(!figure.exists());
    std::fs::copy("tests/data/gemm_rules.onnx", &model).expect("restore");
    ok(&["report", &s(&out), "--quiet"]);
    assert_eq!(std::fs::read(out.join("report.html")).expect("page"), page);
}
