//! Bad command lines never panic: each case exits with code 2, prints exactly one line naming
//! the flag or argument and the problem, and writes no output file. Here: flags that ask for
//! too much (threshold grids, `--jobs`, runs over `--max-memory`), missing arguments, unknown
//! bench lanes and wgpu backends, and outputs that cannot be written as asked (under a file,
//! through links and devices). Bad files and values: `bad_input.rs`.

use std::path::Path;
use std::process::Command;

mod common;

use common::{data, fails, sweep_file};

#[test]
fn unknown_bench_lanes_are_refused_before_any_row() {
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args([
            "bench",
            "engine",
            "--lanes",
            "fp32,calibration",
            "--reps",
            "1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--lanes 'calibration'"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "printed before the error: {:?}",
        o.stdout
    );
}

#[test]
fn flags_that_ask_for_too_much_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy").display().to_string();
    fails(
        &[
            "gen-input",
            "--model",
            "builtin:tiny",
            "--sequences",
            "1000000000000",
            "--output",
            &out,
        ],
        &["--sequences 1000000000000", "--max-memory"],
    );
    fails(
        &[
            "gen-input",
            "--model",
            "builtin:tiny",
            "--steps",
            "1000000000000",
            "--output",
            &out,
        ],
        &["--max-memory"],
    );
    fails(
        &[
            "dynamic",
            "--model",
            "builtin:tiny",
            "--input",
            "tests/data/peephole.x.npy",
            "--levels",
            "fx8,fx16",
            "--thresholds",
            "0:1:1000000000000",
            "--out",
            &out,
        ],
        &["--thresholds", "1000000000000", "--max-points"],
    );
    let (d, spec) = sweep_file(&[]);
    let o = d.path().join("o").display().to_string();
    fails(
        &["sweep", &spec, "--jobs", "5000", "--out", &o],
        &["--jobs 5000", "1 to 256"],
    );
    fails(
        &["sweep", &spec, "--jobs", "1000000", "--out", &o],
        &["--jobs 1000000"],
    );
    fails(
        &["sweep", &spec, "--max-memory", "lots", "--out", &o],
        &["--max-memory", "'lots'"],
    );
    fails(
        &["sweep", &spec, "--max-points", "0", "--out", &o],
        &["--max-points"],
    );
    // The limits are flags: a small one refuses what the default allows.
    fails(
        &["sweep", &spec, "--max-points", "3", "--out", &o],
        &["bad.toml", "design points", "more than the limit of 3"],
    );
    // clap's own usage errors are one line too.
    fails(&["gen-input", "--sequences", "-1"], &["error:"]);
}

/// A run of the engine over an input too large for `--max-memory` is refused before it
/// starts, naming the input, for every command that runs it; nothing is written.
#[test]
fn engine_runs_over_the_memory_limit_are_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let x = x.to_str().unwrap();
    // 40 x 50 positions of builtin:tiny (two layers of 32): about 8 MiB by the estimate,
    // a 128 KiB file.
    let gen = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(["gen-input", "--model", "builtin:tiny", "--sequences", "40"])
        .args(["--steps", "50", "--output", x])
        .output()
        .unwrap();
    assert!(gen.status.success(), "{gen:?}");
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let y = dir.path().join("y.npy");
    let y = y.to_str().unwrap();
    let model = ["--model", "builtin:tiny", "--input", x];
    let commands: [&[&str]; 4] = [
        &["infer", "--precision", "fx8", "--output", y],
        &["ranges"],
        &[
            "groups",
            "--group-sizes",
            "16",
            "--base",
            "fx16",
            "--out",
            out,
        ],
        &[
            "trace",
            "--precisions",
            "fx8;fp16",
            "--device",
            "cpu",
            "--out",
            out,
        ],
    ];
    for args in commands {
        let mut all = vec!["--max-memory", "2M", args[0]];
        all.extend(model);
        all.extend(&args[1..]);
        fails(&all, &[x, "40 sequence(s) x 50 steps", "--max-memory"]);
        assert!(
            !Path::new(y).exists() && !Path::new(out).exists(),
            "{all:?}"
        );
        // The same run within the limit goes through.
        all[1] = "64M";
        let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args(&all)
            .output()
            .unwrap();
        assert!(o.status.success(), "{all:?}: {o:?}");
        let _ = (std::fs::remove_dir_all(out), std::fs::remove_file(y));
    }
}

/// A command line without a required argument names the argument on its one line.
#[test]
fn missing_arguments_are_named() {
    fails(&["trace"], &["--model", "--input", "--precisions", "--out"]);
    fails(&["merge", "--out", "m"], &["<DIR>"]);
}

/// A threshold grid's count in any notation of a whole number; an output under a file names
/// the file (the message was "File exists").
#[test]
fn grid_counts_and_outputs_under_a_file() {
    let grid = |t: &str| lstm_dse::dynamic::parse_thresholds(t, 2);
    assert_eq!(grid("0:1:1e1").unwrap().len(), 10);
    assert_eq!(grid("0:1:10").unwrap().len(), 10);
    for bad in ["0:1:1.5", "0:1:0", "0:1:-2", "0:1:1e30"] {
        let e = grid(bad).unwrap_err().to_string();
        assert!(e.contains("whole number"), "{bad}: {e}");
    }
    // A negative threshold acted as 0 (the metrics are magnitudes of change).
    for bad in ["-1", "0,-0.5", "-1:1:5", "0.1/-0.2"] {
        let e = lstm_dse::dynamic::parse_thresholds(bad, if bad.contains('/') { 3 } else { 2 })
            .unwrap_err()
            .to_string();
        assert!(e.contains("is negative"), "{bad}: {e}");
    }
    assert!(grid("0,0:1:3,inf").is_ok());
    // A log grid whose stop/start ratio overflows: every threshold past the first was inf.
    let wide: Vec<f64> = grid("log:1e-200:1e200:5")
        .unwrap()
        .iter()
        .map(|p| p.thresholds[0])
        .collect();
    assert_eq!(wide, [1e-200, 1e-100, 1.0, 1e100, 1e200]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("y.npy");
    infer_to_fails(out.to_str().unwrap(), &["afile is a file, not a directory"]);
}

/// Outputs that are not plain files: a link is written through (the link stays), a device is
/// written to in place (renaming over it replaced /dev/null itself when run as root), a
/// directory is refused.
#[cfg(unix)]
#[test]
fn outputs_through_links_and_devices() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let (m, x) = (data("peephole.onnx"), data("peephole.x.npy"));
    let target = dir.path().join("target.npy");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.path().join("link.npy");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let infer = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args(["infer", "--model", &m, "--input", &x, "--precision", "fx8"])
            .args(["--output", out])
            .output()
            .unwrap()
    };
    assert!(infer(link.to_str().unwrap()).status.success());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read(&target).unwrap().starts_with(b"\x93NUMPY"));
    assert!(infer("/dev/null").status.success());
    let null = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(null.file_type().is_char_device(), "/dev/null was replaced");
    infer_to_fails(&dir.path().display().to_string(), &["is a directory"]);
}

/// `infer` of the peephole fixture into `out` fails with one line mentioning `expect`.
fn infer_to_fails(out: &str, expect: &[&str]) {
    let (m, x) = (data("peephole.onnx"), data("peephole.x.npy"));
    let args = [
        "infer",
        "--model",
        &m,
        "--input",
        &x,
        "--precision",
        "fx8",
        "--output",
        out,
    ];
    fails(&args, expect);
}

#[test]
fn a_wgpu_backend_that_names_nothing_is_named() {
    // `WGPU_BACKEND=bogus` leaves no backend to search; the message said to install drivers.
    let out = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(["trace", "--model", &data("peephole.onnx")])
        .args(["--input", &data("peephole.x.npy"), "--precisions", "fx8"])
        .args(["--device", "gpu", "--out", "unused"])
        .env("WGPU_BACKEND", "bogus")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("WGPU_BACKEND='bogus' names no backend"),
        "{err}"
    );
}

/// Values that would be read as something else are refused as given: a tolerance that f32
/// reads as 0, a list where `infer` takes one config, an empty lane list.
#[test]
fn values_read_as_something_else_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t").display().to_string();
    let x = data("peephole.x.npy");
    let m = data("peephole.onnx");
    // A negative tolerance is refused as a value (clap read `-1` as an unknown flag).
    for (tolerance, expect) in [
        ("1e-50", &["--tolerance", "got 1e-50"][..]),
        (
            "-1",
            &["--tolerance", "must be a positive number", "got -1"][..],
        ),
    ] {
        let args = [
            "--model",
            &m,
            "--input",
            &x,
            "--precisions",
            "fx8",
            "--out",
            &out,
        ];
        let args: Vec<&str> = std::iter::once("trace")
            .chain(args)
            .chain(["--tolerance", tolerance])
            .collect();
        fails(&args, expect);
    }
    let y = dir.path().join("y.npy").display().to_string();
    fails(
        &[
            "infer",
            "--model",
            &m,
            "--input",
            &x,
            "--output",
            &y,
            "--precision",
            "fx8,bf16",
        ],
        &["--precision", "one precision config expected"],
    );
    fails(
        &["bench", "engine", "--lanes", " ; ", "--reps", "1"],
        &["--lanes: empty"],
    );
    assert!(!Path::new(&out).exists() && !Path::new(&y).exists());
}

/// `--reps` asked for a slot per timed repetition up front: 2^64 - 1 panicked (capacity
/// overflow, exit 101) and 2^32 aborted (exit 134), both after the table's header. Refused
/// before anything is printed, in `bench engine` and `bench trace`; so is an input of the
/// wrong width, which each lane refused after the header.
#[test]
fn bench_reps_and_inputs_are_checked_before_the_table() {
    let (m, x) = (data("peephole.onnx"), data("peephole.x.npy"));
    for reps in ["18446744073709551615", "4294967296", "1000001", "0"] {
        let args = [
            "bench", "engine", "--model", &m, "--input", &x, "--lanes", "fp32", "--reps", reps,
        ];
        let o = common::run(&args);
        common::refused(&o, &[&format!("--reps {reps}"), "1 to 1000000"]);
        assert!(o.stdout.is_empty(), "{reps}: printed {:?}", o.stdout);
    }
    let o = common::run(&["bench", "trace", "--quick", "--reps", "4294967296"]);
    common::refused(&o, &["--reps 4294967296", "1 to 1000000"]);
    assert!(o.stdout.is_empty(), "printed {:?}", o.stdout);
    let wide = data("torch_lstm3.x.npy");
    let args = [
        "bench", "engine", "--model", &m, "--input", &wide, "--lanes", "fp32", "--reps", "1",
    ];
    let o = common::run(&args);
    common::refused(&o, &["torch_lstm3.x.npy", "features per step"]);
    assert!(o.stdout.is_empty(), "printed {:?}", o.stdout);
}

/// Lists of precision configs: an empty entry between separators (`fx8;;fx16`) was dropped,
/// and a config listed under two spellings (`fx8;w=fx8`) gave `ranges` two columns `fx8` and
/// `trace` one silently. Both are refused (two spellings of one format too: `fp32;e8m23`),
/// naming the flag, by every command that takes such a list, as a sweep's `precision.fixed`
/// refuses a repeated config; nothing is written.
#[test]
fn precision_lists_refuse_empty_entries_and_repeated_configs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let o = out.display().to_string();
    let (m, x) = (data("peephole.onnx"), data("peephole.x.npy"));
    let cases: [(&str, &str, &[&str]); 11] = [
        ("fx8;;fx16", "--precisions", &["empty entry", "entry 2"]),
        ("fx8,,fx16", "--precisions", &["empty entry", "entry 2"]),
        ("fx8;", "--precisions", &["empty entry after the last"]),
        (";fx8", "--precisions", &["empty entry before the first"]),
        ("fx8; ;fx16", "--precisions", &["empty entry"]),
        (
            "fx8;w=fx8",
            "--precisions",
            &["fx8 is listed twice", "'fx8' and 'w=fx8'"],
        ),
        ("fx8,fx16,fx8", "--precisions", &["fx8 is listed twice"]),
        (
            "fp32;e8m23",
            "--precisions",
            &["fp32 is listed twice", "'fp32' and 'e8m23'"],
        ),
        ("fx8;;fx16", "--levels", &["empty entry"]),
        ("fx8;w=fx8;fx16", "--levels", &["'fx8' and 'w=fx8'"]),
        ("fx8 fx8", "--levels", &["fx8 is listed twice"]),
    ];
    for (list, flag, expect) in cases {
        let commands: Vec<Vec<&str>> = if flag == "--levels" {
            vec![vec![
                "dynamic",
                "--thresholds",
                "0.1",
                "--device",
                "cpu",
                "--out",
                &o,
            ]]
        } else {
            vec![
                vec!["ranges", "--csv", &o],
                vec!["trace", "--device", "cpu", "--out", &o],
            ]
        };
        for mut args in commands {
            args.extend(["--model", &m, "--input", &x, flag, list]);
            let mut want = vec![flag];
            want.extend(expect);
            fails(&args, &want);
            assert!(!out.exists(), "{args:?} wrote {o}");
        }
    }
    // Spaces beside a separator are not an entry.
    common::ok(&[
        "ranges",
        "--model",
        &m,
        "--input",
        &x,
        "--precisions",
        "fx8, fx16 ; fx12",
    ]);
}

/// A config refused once it is planned for the model (its gate accumulator would pass 64
/// bits) names the flag that gave it, as a config refused when parsed does.
#[test]
fn a_config_refused_for_the_model_names_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    common::gen_input("builtin:tiny", 2, 3, &x);
    let (x, out) = (x.to_str().unwrap(), dir.path().join("o"));
    let out = out.to_str().unwrap();
    let wide = "w=fx16.0,a=fx16.0,p=fx16.30,c=fx16.0";
    let levels = format!("fx8;{wide}");
    let model = ["--model", "builtin:tiny", "--input", x];
    let cases: [(&str, Vec<&str>); 3] = [
        (
            "--precision",
            vec!["infer", "--precision", wide, "--output", out],
        ),
        (
            "--precisions",
            vec![
                "trace",
                "--quiet",
                "--precisions",
                &levels,
                "--out",
                out,
                "--device",
                "cpu",
            ],
        ),
        (
            "--levels",
            vec![
                "dynamic",
                "--quiet",
                "--levels",
                &levels,
                "--thresholds",
                "0",
                "--out",
                out,
                "--device",
                "cpu",
            ],
        ),
    ];
    for (flag, args) in cases {
        let args: Vec<&str> = args[..1]
            .iter()
            .chain(&model)
            .chain(&args[1..])
            .copied()
            .collect();
        let err = fails(&args, &["would exceed 64 bits"]);
        assert!(
            err.starts_with(&format!("error: {flag}: precision '")),
            "{err}"
        );
    }
}
