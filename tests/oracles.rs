//! The binary against the outside oracles in `tools/`, each written from docs/NUMERICS.md in
//! NumPy and sharing no code with the crate: `numerics_fuzz.py` (random safetensors and ONNX
//! models, peepholes, initial states, reverse layers, heads, configs from the whole §1-§2
//! grammar; `infer` bit for bit, `trace` against the float64 reference, a CPU-GPU byte
//! comparison of traces), `dynamic_oracle.py` (every policy of §11, closed loop) and
//! `groups_oracle.py` (§12's group widths). Seeded, so each run draws the same cases; the
//! scripts draw far more with other seeds (docs/FUZZING.md).
//!
//! They need Python 3 with NumPy and onnx (Debian's `python3-numpy` and `python3-onnx`, which
//! `.ci/run` installs). Without them the test says so and passes, except with `CI` set (as
//! the GPU tests), where it fails: an oracle that did not run proves nothing.

use std::path::Path;
use std::process::Command;

mod common;

/// A Python 3 that imports NumPy and onnx: Debian's (the packages `.ci/run` installs), else
/// the first `python3` on the path; `None` with a "skipping" line, or a failure with `CI` set.
fn python() -> Option<String> {
    let found = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import numpy, onnx"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set: no Python 3 with NumPy and onnx (apt-get install python3-numpy python3-onnx)"
        );
        eprintln!("skipping the oracle test: no Python 3 with NumPy and onnx here");
    }
    found.map(str::to_string)
}

/// Runs `tools/<script>` with `args` against this build's binary; its last line on success.
fn oracle(python: &str, script: &str, args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(python)
        .arg(root.join("tools").join(script))
        .args(["--bin", env!("CARGO_BIN_EXE_lstm-dse")])
        .args(args)
        .current_dir(root)
        .output()
        .expect("run python");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{script} {args:?}: the binary and the oracle disagree (exit {:?}):\n{out}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    out.trim_end().lines().last().unwrap_or("").to_string()
}

#[test]
fn the_binary_agrees_with_the_numpy_oracles_on_random_models() {
    let Some(py) = python() else {
        return;
    };
    let cases = [
        ("numerics_fuzz.py", vec!["--cases", "16", "--seed", "1"]),
        ("dynamic_oracle.py", vec!["--cases", "8", "--seed", "3"]),
        ("groups_oracle.py", vec!["--cases", "8", "--seed", "1"]),
    ];
    for (script, args) in cases {
        let last = oracle(&py, script, &args);
        // Every case agreed, and there were cases: "16 of 16 cases agree (...)".
        let want = format!("{0} of {0} cases agree", args[1]);
        assert!(last.starts_with(&want), "{script}: {last}");
    }
}

/// The GPU lanes against the same oracle, and their traces byte for byte against the CPU's
/// (lavapipe in CI; as every GPU test, it fails under CI=true without an adapter).
#[test]
fn gpu_lanes_agree_with_the_numpy_oracle() {
    let Some(py) = python() else {
        return;
    };
    if common::gpu_context().is_none() {
        return;
    }
    let last = oracle(
        &py,
        "numerics_fuzz.py",
        &["--cases", "6", "--seed", "2", "--gpu"],
    );
    assert!(last.starts_with("6 of 6 cases agree"), "{last}");
}
