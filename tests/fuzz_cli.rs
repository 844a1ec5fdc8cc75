//! Fuzzing the whole command line: the release or debug binary run on mutated input files
//! (`.npy`, ONNX, safetensors, sweep and architecture TOML, policies and results CSV) and on
//! nasty flag values, each run under an address-space limit (`ulimit -v`, 3 GiB) and a
//! deadline. The law: exit 0, or exit 2 with stderr ending in exactly one `error:` line; never
//! a panic (101), an abort or a signal (an allocation the limit refuses aborts), never a hang.
//!
//! Budget: about 200 runs in `cargo test`; `LSTM_DSE_FUZZ_CASES=100000` scales it up for a
//! release (docs/FUZZING.md). Failing inputs are kept under `target/fuzz-failures/` with the
//! command that failed.

mod fuzz_support;

use fuzz_support::{cases, keep_failure, mutate, root, seed, seed_file, Rng, NASTY_NUMBERS};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address space the binary may map (a Vulkan-free CPU run needs well under 1 GiB).
const MEMORY_LIMIT_KIB: u64 = 3 << 20;
/// What the binary itself may plan to use (`--max-memory`), well inside the hard limit.
const MAX_MEMORY: &str = "512M";
const DEADLINE: Duration = Duration::from_secs(60);

/// How a run ended, if it broke the law.
/// Returns the exit code (0 or 2) of a lawful run.
fn run_checked(args: &[String]) -> Result<i32, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KIB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(args)
        .args(["--max-memory", MAX_MEMORY])
        .current_dir(root())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timeout after {DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut err);
    }
    match status.code() {
        Some(0) => Ok(0),
        Some(2) => {
            let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            let errors = lines.iter().filter(|l| l.starts_with("error")).count();
            if errors == 1 && lines.last().is_some_and(|l| l.starts_with("error")) {
                Ok(2)
            } else {
                Err(format!(
                    "exit 2 without exactly one final error line: {err:?}"
                ))
            }
        }
        Some(c) => Err(format!("exit code {c}: {err:?}")),
        None => Err(format!("killed by a signal ({status}): {err:?}")),
    }
}

/// A command run on one input file: `{}` in an argument is the file's path, `{out}` a fresh
/// output path.
struct Target {
    name: &'static str,
    ext: &'static str,
    seeds: Vec<Vec<u8>>,
    dict: &'static [&'static str],
    args: &'static [&'static str],
}

const TINY_SWEEP: &str = r#"name = "fuzz"

[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
seq_len = 4
batch = 1

[precision]
fixed = ["fx8", "fx16"]
levels = ["fx8", "fx16"]
metric = "max_abs"
timing = "causal"
thresholds = "0,0.5,inf"
dpred_group_sizes = [0, 16]
device = "cpu"

[arch]
base = "sweeps/arch/epur.toml"

[arch.ranges]
"tracking.enabled" = [true, false]
"compute.units" = "2:8:2"
"compute.multipliers_per_unit" = "log:8:64:4"
"dispatch.policy" = ["gate-per-unit", "tiled"]

[pareto]
minimize = ["latency_us", "energy_uj", "area_mm2"]
"#;

const POLICIES: &str =
    "policy,levels,thresholds,frac_level_0,frac_level_1,frac_l0_level_0,frac_l0_level_1,frac_l1_level_0,frac_l1_level_1\n\
0,fx8|fx16,0.5,0.25,0.75,0.5,0.5,0,1\n";

fn results_seed() -> Vec<u8> {
    let text = String::from_utf8(seed_file("results/quick/results.csv")).expect("utf-8");
    let head: Vec<&str> = text.lines().take(30).collect();
    (head.join("\n") + "\n").into_bytes()
}

fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "npy",
            ext: "npy",
            seeds: vec![seed_file("tests/data/peephole.x.npy")],
            dict: &[
                "(288230376151711760, 8, 5)",
                "(4294967296, 4294967296, 5)",
                "(",
                "'",
            ],
            args: &[
                "infer",
                "--model",
                "tests/data/peephole.onnx",
                "--input",
                "{}",
                "--precision",
                "fx8",
                "--output",
                "{out}.npy",
                "--quiet",
            ],
        },
        Target {
            name: "onnx",
            ext: "onnx",
            seeds: vec![
                seed_file("tests/data/peephole.onnx"),
                seed_file("tests/data/bidir.onnx"),
            ],
            dict: &[],
            args: &["inspect", "--model", "{}"],
        },
        Target {
            name: "onnx-infer",
            ext: "onnx",
            seeds: vec![seed_file("tests/data/peephole.onnx")],
            dict: &[],
            args: &[
                "infer",
                "--model",
                "{}",
                "--input",
                "tests/data/peephole.x.npy",
                "--precision",
                "fx8",
                "--output",
                "{out}.npy",
                "--quiet",
            ],
        },
        Target {
            name: "safetensors",
            ext: "safetensors",
            seeds: vec![seed_file("tests/data/torch_lstm3.safetensors")],
            dict: &[
                "\"shape\":[4294967296,4294967296]",
                "\"data_offsets\":[0,18446744073709551615]",
                "_reverse",
            ],
            args: &[
                "infer",
                "--model",
                "{}",
                "--input",
                "tests/data/torch_lstm3.x.npy",
                "--precision",
                "fx8",
                "--output",
                "{out}.npy",
                "--quiet",
            ],
        },
        Target {
            name: "sweep",
            ext: "toml",
            seeds: vec![TINY_SWEEP.as_bytes().to_vec()],
            dict: &[
                "\"0:inf:1\"",
                "\"1:1e12:1\"",
                "\"log:1:10:1000000000000\"",
                "\"0:1:1000000000000\"",
                "1000000000000",
                "\"models\"",
                "\"precision\"",
                "[]",
                "\"gpu\"",
            ],
            args: &[
                "sweep",
                "{}",
                "--out",
                "{out}",
                "--cache",
                "{out}-cache",
                "--quiet",
                "--jobs",
                "2",
            ],
        },
        Target {
            name: "arch",
            ext: "toml",
            seeds: vec![
                seed_file("sweeps/arch/epur.toml"),
                seed_file("sweeps/arch/multicore.toml"),
                seed_file("sweeps/arch/sharp.toml"),
            ],
            dict: &["0", "-1", "1e300", "\"tiled\"", "true", "[]"],
            args: &[
                "model",
                "--arch",
                "{}",
                "--model",
                "builtin:tiny",
                "--seq-len",
                "8",
            ],
        },
        Target {
            name: "policies",
            ext: "csv",
            seeds: vec![POLICIES.as_bytes().to_vec()],
            dict: &["\"", ",", "\r\n", "\0", "nan", "|fx4", "frac_l1_level_0"],
            args: &[
                "model",
                "--arch",
                "sweeps/arch/epur.toml",
                "--model",
                "builtin:tiny",
                "--policies",
                "{}",
                "--policy",
                "0",
                "--set",
                "tracking.enabled=true",
            ],
        },
        Target {
            name: "results",
            ext: "csv",
            seeds: vec![results_seed()],
            dict: &["\"", ",", "\r\n", "\0", "nan", "inf"],
            args: &[
                "pareto",
                "{}",
                "--minimize",
                "latency_us,energy_uj",
                "--maximize",
                "task_accuracy",
                "--out",
                "{out}.csv",
                "--plot",
                "{out}.svg",
            ],
        },
    ]
}

fn expand_args(args: &[&str], file: &Path, out: &Path) -> Vec<String> {
    args.iter()
        .map(|a| {
            a.replace("{}", &file.display().to_string())
                .replace("{out}", &out.display().to_string())
        })
        .collect()
}

/// One run: a label, the arguments, the input to keep if it fails, the directory it writes in.
type Job = (String, Vec<String>, Option<Vec<u8>>, tempfile::TempDir);

/// Runs `jobs` on a few threads; returns the failures. Prints how many runs of each target
/// (the label up to its last '-') succeeded, so that a mutator that only ever produces
/// rejected input shows.
fn run_all(jobs: Vec<Job>) -> Vec<String> {
    let tally = std::sync::Mutex::new(std::collections::BTreeMap::<String, (usize, usize)>::new());
    let jobs = std::sync::Mutex::new(jobs);
    let failures = std::sync::Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some((label, args, input, _dir)) =
                    jobs.lock().map(|mut j| j.pop()).ok().flatten()
                else {
                    break;
                };
                let target = label.rsplit_once('-').map_or(label.as_str(), |(t, _)| t);
                let result = run_checked(&args);
                if let Ok(mut t) = tally.lock() {
                    let e = t.entry(target.to_string()).or_default();
                    e.0 += 1;
                    e.1 += usize::from(result == Ok(0));
                }
                if let Err(why) = result {
                    let kept = input
                        .map(|b| keep_failure(&label, &b).display().to_string())
                        .unwrap_or_default();
                    if let Ok(mut f) = failures.lock() {
                        f.push(format!(
                            "{label}: lstm-dse {} -> {why} {kept}",
                            args.join(" ")
                        ));
                    }
                }
            });
        }
    });
    for (target, (runs, ok)) in tally.into_inner().unwrap_or_default() {
        eprintln!("{target}: {runs} runs, {ok} exit 0, the rest exit 2");
    }
    failures.into_inner().unwrap_or_default()
}

#[test]
fn unmutated_seeds_succeed() {
    // The harness is meaningful only if the seeds themselves run cleanly (exit 0).
    let mut jobs = Vec::new();
    for t in targets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(format!("seed.{}", t.ext));
        std::fs::write(&file, &t.seeds[0]).expect("write");
        let args = expand_args(t.args, &file, &dir.path().join("out"));
        jobs.push((format!("seed-{}", t.name), args, None::<Vec<u8>>, dir));
    }
    for (label, args, _, _dir) in &jobs {
        let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args(args)
            .current_dir(root())
            .output()
            .expect("run");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{label}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn mutated_files_exit_cleanly_under_a_memory_limit() {
    let targets = targets();
    let total = cases(160, 1.0);
    let mut rng = Rng::new(seed());
    let mut jobs = Vec::new();
    for case in 0..total {
        let t = &targets[case % targets.len()];
        let input = mutate(
            &mut rng,
            t.seeds[case / targets.len() % t.seeds.len()].as_slice(),
            t.dict,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(format!("in.{}", t.ext));
        std::fs::write(&file, &input).expect("write");
        let args = expand_args(t.args, &file, &dir.path().join("out"));
        jobs.push((
            format!("cli-{}-{case}.{}", t.name, t.ext),
            args,
            Some(input),
            dir,
        ));
    }
    let failures = run_all(jobs);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn nasty_flag_values_exit_cleanly_under_a_memory_limit() {
    let spec_dir = tempfile::tempdir().expect("tempdir");
    let spec = spec_dir.path().join("tiny.toml");
    std::fs::write(&spec, TINY_SWEEP).expect("write");
    let sweep = spec.display().to_string();
    let templates: Vec<Vec<&str>> = vec![
        vec![
            "gen-input",
            "--model",
            "builtin:tiny",
            "--sequences",
            "{N}",
            "--steps",
            "4",
            "--output",
            "{out}.npy",
        ],
        vec![
            "gen-input",
            "--model",
            "builtin:tiny",
            "--sequences",
            "2",
            "--steps",
            "{N}",
            "--output",
            "{out}.npy",
        ],
        vec![
            "dynamic",
            "--model",
            "tests/data/peephole.onnx",
            "--input",
            "tests/data/peephole.x.npy",
            "--levels",
            "fx8,fx16",
            "--thresholds",
            "0:1:{N}",
            "--device",
            "cpu",
            "--out",
            "{out}",
            "--quiet",
        ],
        vec![
            "sweep",
            sweep.as_str(),
            "--jobs",
            "{N}",
            "--out",
            "{out}",
            "--cache",
            "{out}-cache",
            "--quiet",
        ],
        vec![
            "infer",
            "--model",
            "builtin:tiny",
            "--input",
            "tests/data/peephole.x.npy",
            "--precision",
            "fx{N}",
            "--output",
            "{out}.npy",
        ],
        vec![
            "model",
            "--arch",
            "sweeps/arch/epur.toml",
            "--model",
            "builtin:tiny",
            "--seq-len",
            "{N}",
            "--batch",
            "{N}",
        ],
        vec![
            "model",
            "--arch",
            "sweeps/arch/epur.toml",
            "--model",
            "builtin:gnmt",
            "--set",
            "compute.units={N}",
        ],
        vec!["inspect", "--model", "builtin:tiny", "--max-points", "{N}"],
    ];
    let mut jobs = Vec::new();
    let mut rng = Rng::new(seed() ^ 0xf1a9);
    let n = cases(40, 0.1).max(templates.len());
    for case in 0..n {
        let t = &templates[case % templates.len()];
        let v = if case < templates.len() * 4 {
            NASTY_NUMBERS[(case / templates.len() * 7 + case) % NASTY_NUMBERS.len()]
        } else {
            rng.pick(NASTY_NUMBERS)
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let args: Vec<String> = t
            .iter()
            .map(|a| {
                a.replace("{out}", &out.display().to_string())
                    .replace("{N}", v)
            })
            .collect();
        jobs.push((format!("flags-{case}"), args, None, dir));
    }
    let failures = run_all(jobs);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
