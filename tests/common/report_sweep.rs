//! The sweep whose outputs the tests of what a person sees look at (`tests/report.rs`,
//! `tests/plots.rs`): a small sweep file, runs of the binary as a batch job has them (no
//! `XDG_RUNTIME_DIR`), and a sweep into a folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn lstm_dse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // As in a batch job or a container: the Vulkan loader then used to print
        // "error: XDG_RUNTIME_DIR is invalid or not set".
        .env_remove("XDG_RUNTIME_DIR")
        .args(args)
        .output()
        .expect("run lstm-dse")
}

pub fn ok(args: &[&str]) -> (String, String) {
    let o = lstm_dse(args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "{args:?}: {err}");
    (out, err)
}

/// A small sweep with fixed and dynamic precision and four objectives; runs in a second.
pub const SPEC: &str = r#"
name = "look"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 6
seq_len = 20
[precision]
fixed = ["fx6", "fx8", "fx16"]
levels = ["fx6", "fx16"]
thresholds = "0,0.05,inf"
device = "auto"
[arch]
base = "sweeps/arch/epur.toml"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"tracking.enabled" = [true]
"compute.units" = "4:12:4"
"compute.multipliers_per_unit" = [8, 16, 32]
[pareto]
minimize = ["latency_us", "energy_uj", "area_mm2"]
maximize = ["top1_agreement"]
"#;

pub fn sweep_into(dir: &Path, extra: &[&str]) -> (PathBuf, String, String) {
    let spec = dir.join("look.toml");
    std::fs::write(&spec, SPEC).expect("write spec");
    let out = dir.join("out");
    let cache = dir.join("cache");
    let mut args = vec![
        "sweep",
        spec.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--cache",
        cache.to_str().expect("utf-8"),
    ];
    args.extend(extra);
    let (stdout, stderr) = ok(&args);
    (out, stdout, stderr)
}
