//! What a person sees after a sweep, through the binary: a clean terminal (no `error:` lines on
//! success, a closing summary that `--quiet` silences), and the report page and plots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lstm_dse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // As in a batch job or a container: the Vulkan loader then used to print
        // "error: XDG_RUNTIME_DIR is invalid or not set".
        .env_remove("XDG_RUNTIME_DIR")
        .args(args)
        .output()
        .expect("run lstm-dse")
}

fn ok(args: &[&str]) -> (String, String) {
    let o = lstm_dse(args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "{args:?}: {err}");
    (out, err)
}

/// A small sweep with fixed and dynamic precision and four objectives; runs in a second.
const SPEC: &str = r#"
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

fn sweep_into(dir: &Path, extra: &[&str]) -> (PathBuf, String, String) {
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
