//! Bad input never panics: each case exits with code 2, prints exactly one line naming the
//! file or token and the problem, and writes no output file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

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
}

#[test]
fn malformed_precision_strings_name_the_token() {
    let (m, x) = (data("peephole.onnx"), data("peephole.x.npy"));
    infer_fails(&m, &x, "fx0.0", &["'fx0.0'", "2..=16 bits"]);
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
