//! Bad input files and values never panic: each case exits with code 2, prints exactly one
//! line naming the file or token and the problem, and writes no output file. Here: missing,
//! damaged or mismatched models and inputs (`.npy` shapes, non-finite values, unsupported ONNX
//! ops), precision strings and calibration options. Flags, limits and outputs: `bad_flags.rs`;
//! sweep files: `sweep_spec.rs`.

use std::path::PathBuf;
use std::process::Command;

mod common;

use common::{data, fails};

/// Runs `infer` and checks the failure; returns stderr.
fn infer_fails(model: &str, input: &str, precision: &str, expect: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("y.npy");
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args([
            "infer",
            "--model",
            model,
            "--input",
            input,
            "--precision",
            precision,
            "--output",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line, got: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for e in expect {
        assert!(err.contains(e), "stderr {err:?} should mention {e:?}");
    }
    assert!(!out.exists(), "no output may be written on error");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial files"
    );
    err
}

#[test]
fn missing_files() {
    infer_fails(
        "nope.onnx",
        &data("peephole.x.npy"),
        "fp32",
        &["nope.onnx", "No such file"],
    );
    infer_fails(
        &data("peephole.onnx"),
        "missing.npy",
        "fp32",
        &["missing.npy", "No such file"],
    );
}

#[test]
fn files_of_the_wrong_kind() {
    infer_fails(
        &data("not_a_model.onnx"),
        &data("peephole.x.npy"),
        "fp32",
        &["not_a_model.onnx", "not an ONNX model"],
    );
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.safetensors");
    std::fs::write(&fake, b"hello").unwrap();
    infer_fails(
        fake.to_str().unwrap(),
        &data("peephole.x.npy"),
        "fp32",
        &["fake.safetensors", "not a safetensors file"],
    );
    infer_fails(
        &data("peephole.onnx"),
        &data("peephole.onnx"),
        "fp32",
        &["peephole.onnx", "not a .npy file"],
    );
    infer_fails(
        &data("peephole.x.npy"),
        &data("peephole.x.npy"),
        "fp32",
        &["unknown model kind"],
    );
    infer_fails(
        &data("peephole.onnx"),
        &data("float64.x.npy"),
        "fp32",
        &["float64.x.npy", "float32"],
    );
}

#[test]
fn input_width_that_does_not_match_the_model() {
    infer_fails(
        &data("torch_lstm3.onnx"),
        &data("peephole.x.npy"),
        "fp32",
        &["peephole.x.npy", "5 features", "expects 8"],
    );
}

#[test]
fn non_finite_weights_or_inputs() {
    infer_fails(
        &data("nan_weights.safetensors"),
        &data("peephole.x.npy"),
        "fp32",
        &["nan_weights.safetensors", "NaN"],
    );
    infer_fails(
        &data("peephole.onnx"),
        &data("nan.x.npy"),
        "fp32",
        &["nan.x.npy", "NaN", "sequence 1, step 2"],
    );
}

#[test]
fn inputs_that_could_overflow_a_float32_gate_sum() {
    // Finite, but a gate sum could leave float32's range (docs/NUMERICS.md §15): refused for
    // every precision, naming where the input's largest value is; 1e30 stays well inside.
    let (shape, mut x) = lstm_dse::lstm::npy::read_f32(data("peephole.x.npy").as_ref()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let at = shape[shape.len() - 1] + 2; // step 1, feature 2 of the first sequence
    for (value, refused) in [(1e30f32, false), (-3e37, true)] {
        x[at] = value;
        let big = dir.path().join("big.x.npy");
        lstm_dse::lstm::npy::write_f32(&big, &shape, &x).unwrap();
        let big = big.display().to_string();
        for precision in ["fp32", "fx8"] {
            if refused {
                let want = [
                    "big.x.npy",
                    "could reach",
                    "step 1, feature 2",
                    "scale the input",
                ];
                infer_fails(&data("peephole.onnx"), &big, precision, &want);
            } else {
                let out = dir.path().join("y.npy").display().to_string();
                let model = data("peephole.onnx");
                let args = [
                    "infer", "--model", &model, "--input", &big, "--output", &out,
                ];
                common::ok(&[&args[..], &["--precision", precision]].concat());
            }
        }
    }
}

#[test]
fn unsupported_onnx_op_names_op_and_node() {
    infer_fails(
        &data("unsupported_op.onnx"),
        &data("peephole.x.npy"),
        "fp32",
        &["unsupported_op.onnx", "Relu", "relu_after_lstm"],
    );
}

#[test]
fn shapes_that_disagree_inside_the_model() {
    infer_fails(
        &data("bad_shapes.onnx"),
        &data("peephole.x.npy"),
        "fp32",
        &["bad_shapes.onnx", "R has shape [1, 16, 5]"],
    );
    // Negative ONNX integers are shown as they are, not wrapped to 2^64 - 3 or cut to 0.
    infer_fails(
        &data("negative_hidden_size.onnx"),
        &data("peephole.x.npy"),
        "fx8",
        &["negative_hidden_size.onnx", "hidden_size is -3"],
    );
    infer_fails(
        &data("negative_dim.onnx"),
        &data("peephole.x.npy"),
        "fx8",
        &["negative_dim.onnx", "negative dimension (-12)"],
    );
}

#[test]
fn malformed_precision_strings_name_the_token() {
    let (m, x) = (data("peephole.onnx"), data("peephole.x.npy"));
    infer_fails(
        &m,
        &x,
        "fx0.0",
        &["--precision: ", "'fx0.0'", "2..=16 bits"],
    );
    infer_fails(&m, &x, "fx40", &["'fx40'", "2..=16 bits"]);
    infer_fails(&m, &x, "e0m3", &["'e0m3'", "exponent width"]);
    infer_fails(&m, &x, "w=fx8,a=", &["''", "unknown format"]);
    infer_fails(&m, &x, "w=fx8,z=fx8", &["'z=fx8'", "unknown role"]);
    infer_fails(&m, &x, "int8", &["'int8'"]);
}

#[test]
fn builtin_that_does_not_exist_and_misplaced_head_flags() {
    infer_fails(
        "builtin:nope",
        &data("peephole.x.npy"),
        "fp32",
        &["builtin:nope", "no such built-in"],
    );
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args([
            "inspect",
            "--model",
            &data("torch_lstm3.safetensors"),
            "--head",
            "missing",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no tensor 'missing.weight'"));
}

#[test]
fn damaged_model_files_give_errors_not_panics() {
    use lstm_dse::lstm::{onnx, safetensors, LoadOptions};
    for (name, is_onnx) in [
        ("torch_lstm3.onnx", true),
        ("bidir.onnx", true),
        ("torch_lstm3.safetensors", false),
    ] {
        let bytes = std::fs::read(data(name)).unwrap();
        let parse = |b: &[u8]| {
            let r = std::panic::catch_unwind(|| {
                if is_onnx {
                    onnx::parse(name, b).map(|_| ())
                } else {
                    safetensors::parse(name, b, &LoadOptions::default()).map(|_| ())
                }
            });
            assert!(r.is_ok(), "{name}: parser panicked on damaged input");
        };
        // Truncations and single-byte corruptions at many positions.
        for cut in (0..bytes.len()).step_by(97) {
            parse(&bytes[..cut]);
            let mut b = bytes.clone();
            b[cut] ^= 0x5a;
            parse(&b);
        }
    }
}

#[test]
fn npy_shapes_that_wrap_around_or_exceed_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (k, shape) in [
        "(288230376151711760, 8, 8)",
        "(2305843009213694080, 8)",
        "(16, 288230376151711752, 8)",
        "(4294967296, 4294967296, 8)",
    ]
    .iter()
    .enumerate()
    {
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.resize(b.len() + 4096, 0);
        let p = dir.path().join(format!("x{k}.npy"));
        std::fs::write(&p, b).unwrap();
        let x = p.display().to_string();
        fails(
            &[
                "infer",
                "--model",
                "models/digits_lstm.onnx",
                "--input",
                &x,
                "--precision",
                "fx8",
                "--output",
                "/dev/null",
            ],
            &[&x, "shape"],
        );
    }
    // A header that is not a dict is one line, too (npyz printed six).
    let p = dir.path().join("art.npy");
    let mut b = b"\x93NUMPY\x01\x00\x20\x00".to_vec();
    b.extend_from_slice(b"{'descr': '<f4', 'shape': (((( \n");
    std::fs::write(&p, b).unwrap();
    let x = p.display().to_string();
    fails(
        &[
            "infer",
            "--model",
            "builtin:tiny",
            "--input",
            &x,
            "--precision",
            "fx8",
            "--output",
            "/dev/null",
        ],
        &[&x, "not a .npy file"],
    );
}

#[test]
fn calibration_options_name_the_bad_token() {
    let (m, x) = (data("peephole.onnx"), data("peephole.x.npy"));
    infer_fails(&m, &x, "fx8,cal=p0", &["'p0'", "(0, 100]"]);
    infer_fails(&m, &x, "fx8,cal=p101", &["'p101'", "(0, 100]"]);
    infer_fails(&m, &x, "fx8,cal=median", &["'median'", "calibration rule"]);
    infer_fails(&m, &x, "fx8,wscale=rows", &["'rows'", "weight scale"]);
}

/// Runs the binary with `args` in `dir`, killing it after 60 s (a FIFO read would block
/// forever, a device never end): exit 2, one line naming `name` and what it is.
fn refused_in_time(dir: &std::path::Path, args: &[&str], name: &str, what: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{args:?}: still running after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(name) && err.contains(what), "{args:?}: {err}");
}

/// Inputs read whole that are not regular files are refused before they are opened (a FIFO
/// blocked the run before its first byte; `/dev/zero` as a model, input or architecture was
/// read until memory ran out), and a CSV line longer than 16 MiB is refused where the parser
/// grew one record until the allocator aborted; a CSV may come through a pipe.
#[cfg(unix)]
#[test]
fn pipes_devices_and_endless_lines_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(Command::new("mkfifo")
        .arg(d.join("fifo"))
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.onnx")).unwrap();
    // 20 MiB of one line, sparse: cheap to make.
    let long = std::fs::File::create(d.join("long.csv")).unwrap();
    long.set_len(20 << 20).unwrap();
    let not_regular = "not a regular file";
    let arch = common::data("sweeps/arch/epur.toml");
    let spec = |from: &str, to: &str| {
        let (_kept, path) = common::sweep_file(&[(from, to)]);
        let text = std::fs::read_to_string(path).unwrap();
        let text = text.replace("sweeps/arch/epur.toml", &arch);
        std::fs::write(d.join("s.toml"), text).unwrap();
    };
    for (from, to, name) in [
        (
            "base = \"sweeps/arch/epur.toml\"",
            "base = \"fifo\"",
            "arch.base: fifo",
        ),
        (
            "models = [\"builtin:tiny\"]",
            "models = [\"/dev/zero\"]",
            "workload.models: /dev/zero",
        ),
        (
            "models = [\"builtin:tiny\"]",
            "models = [\"zero.onnx\"]",
            "workload.models: zero.onnx",
        ),
        (
            "steps = 4",
            "steps = 4\ninput = \"fifo\"",
            "workload.input: fifo",
        ),
    ] {
        spec(from, to);
        refused_in_time(
            d,
            &["sweep", "s.toml", "--out", "o", "--quiet"],
            name,
            not_regular,
        );
        assert!(!d.join("o").exists());
    }
    let args = ["pareto", "/dev/zero", "--minimize", "a", "--out", "f.csv"];
    refused_in_time(d, &args, "/dev/zero", not_regular);
    // A CSV is a stream: a pipe is read (a named FIFO nobody writes reads as empty, not
    // blocking), a CR ends a line for the bound as for the parser.
    let args = ["pareto", "fifo", "--minimize", "a", "--out", "f.csv"];
    refused_in_time(d, &args, "fifo", "not a column");
    let rows = "a,b\r".to_string() + &"1,2\r".repeat(5 << 20);
    std::fs::write(d.join("cr.csv"), &rows).unwrap();
    let mut piped = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(["pareto", "/dev/stdin", "--minimize", "a", "--out", "p.csv"])
        .current_dir(d)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut piped.stdin.take().unwrap(), rows.as_bytes()).unwrap();
    let o = piped.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(d.join("p.csv")).unwrap();
    let args = ["pareto", "long.csv", "--minimize", "a", "--out", "f.csv"];
    refused_in_time(d, &args, "long.csv", "a line longer than 16 MiB");
    let args = ["model", "--arch", "fifo", "--model", "builtin:tiny"];
    refused_in_time(d, &args, "fifo", not_regular);
    let args = [
        "infer",
        "--model",
        "zero.onnx",
        "--input",
        "fifo",
        "--output",
        "y.npy",
    ];
    refused_in_time(d, &args, "zero.onnx", not_regular);
    assert!(!d.join("f.csv").exists() && !d.join("y.npy").exists());
}
