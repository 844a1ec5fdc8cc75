//! Shared by the integration tests: random models and inputs, and the GPU adapter, or a visible skip — except under CI
//! (`CI` set), where a missing adapter is a failure, so GPU comparisons can never pass
//! silently by comparing the CPU with itself.

#![allow(dead_code)]

pub mod peak;
pub mod report_sweep;
pub mod scratch;
pub mod sweep_case;

use lstm_dse::gpu::{AdapterChoice, GpuContext};
use lstm_dse::lstm::builtin::SplitMix64;
use lstm_dse::lstm::npy::Sequences;
use lstm_dse::lstm::{Cell, Dense, Direction, Head, HeadActivation, Layer, Model};

/// Any adapter (lavapipe included), or `None` with a "skipping" line outside CI.
pub fn gpu_context() -> Option<GpuContext> {
    match GpuContext::new(AdapterChoice::Any) {
        Ok(ctx) => {
            eprintln!("adapter: {}", ctx.adapter);
            Some(ctx)
        }
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but there is no GPU adapter (install mesa-vulkan-drivers): {e}")
        }
        Err(e) => {
            eprintln!("skipping: no adapter ({e})");
            None
        }
    }
}

/// One adapter shared by a test binary's tests ([`gpu_context`], made once).
pub fn shared_gpu() -> Option<&'static GpuContext> {
    static CTX: std::sync::OnceLock<Option<GpuContext>> = std::sync::OnceLock::new();
    CTX.get_or_init(gpu_context).as_ref()
}

/// The contexts a conformance check runs the GPU lanes through, each made once: the adapter
/// as it runs, and, where it is a CPU implementation (lavapipe), two more whose kernels take
/// the paths they take on GPUs ([`GpuContext::as_on_a_gpu`]: weights from storage, unflushed
/// float sums), reading x and h from the uniform stage and from storage (as a GPU reads a
/// step too large for the stage). Named for failure messages.
pub fn shared_gpus() -> Vec<(&'static GpuContext, &'static str)> {
    type Slot = std::sync::OnceLock<Option<GpuContext>>;
    static STAGED: Slot = Slot::new();
    static STORAGE: Slot = Slot::new();
    let Some(ctx) = shared_gpu() else {
        return Vec::new();
    };
    if !ctx.is_cpu() {
        return vec![(ctx, "")];
    }
    let as_gpu = |slot: &'static Slot, stage: usize| {
        slot.get_or_init(|| {
            let mut ctx = gpu_context()?;
            ctx.as_on_a_gpu();
            ctx.limit_stage(stage);
            Some(ctx)
        })
        .as_ref()
    };
    let mut all = vec![(ctx, "")];
    all.extend(as_gpu(&STAGED, usize::MAX).map(|c| (c, " as on a GPU")));
    all.extend(as_gpu(&STORAGE, 0).map(|c| (c, " as on a GPU, x and h from storage")));
    all
}

/// A random stack (PyTorch's init range): `hidden[l]` units per direction of layer l with
/// direction `dirs[l]`; peepholes, initial states (h0, c0) and a 4-class softmax head when
/// asked. Every draw comes from one `SplitMix64::new(seed)` in a fixed order, so a seed always
/// gives the same model.
pub fn random_model(
    seed: u64,
    input: usize,
    hidden: &[usize],
    dirs: &[Direction],
    peep: bool,
    init: bool,
    head: bool,
) -> Model {
    let mut rng = SplitMix64::new(seed);
    let mut width = input;
    let layers = hidden
        .iter()
        .zip(dirs)
        .map(|(&h, &d)| {
            let bound = 1.0 / (h as f32).sqrt();
            let cells = (0..d.count())
                .map(|_| Cell {
                    w: rng.fill(4 * h * width, bound),
                    r: rng.fill(4 * h * h, bound),
                    b_ih: rng.fill(4 * h, bound),
                    b_hh: rng.fill(4 * h, bound),
                    peephole: peep.then(|| rng.fill(3 * h, 0.5)),
                    h0: init.then(|| rng.fill(h, 0.9)),
                    c0: init.then(|| rng.fill(h, 2.0)),
                })
                .collect();
            let layer = Layer {
                input_size: width,
                hidden_size: h,
                direction: d,
                cells,
            };
            width = h * d.count();
            layer
        })
        .collect();
    // Two dense layers, as `fc2(relu(fc1(y)))`.
    let head = head.then(|| Head {
        layers: vec![
            Dense {
                input_size: width,
                output_size: 5,
                weight: rng.fill(5 * width, 0.5),
                bias: rng.fill(5, 0.5),
                activation: HeadActivation::Relu,
            },
            Dense {
                input_size: 5,
                output_size: 4,
                weight: rng.fill(4 * 5, 0.5),
                bias: rng.fill(4, 0.5),
                activation: HeadActivation::Softmax,
            },
        ],
        input: Default::default(),
    });
    let m = Model {
        name: format!("random-{seed}"),
        layers,
        head,
        fixed: Default::default(),
        embedding: None,
    };
    m.validate().expect("a random model is valid");
    m
}

/// `n` sequences of `steps` steps of `width` seeded normal values times `scale`.
pub fn random_inputs(seed: u64, n: usize, steps: usize, width: usize, scale: f32) -> Sequences {
    let mut rng = SplitMix64::new(seed);
    let data = (0..n * steps * width)
        .map(|_| rng.normal() * scale)
        .collect();
    Sequences::new("x", [n, steps, width], data, true).unwrap()
}

/// A fixture under `tests/data`, as a path string for the command line.
pub fn data(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

/// Runs the `lstm-dse` binary in the repository root and returns what it printed.
pub fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run lstm-dse")
}

/// Writes `sequences` x `steps` seeded random inputs for `model` to `path` (`gen-input`).
pub fn gen_input(model: &str, sequences: usize, steps: usize, path: &std::path::Path) {
    let (n, t) = (sequences.to_string(), steps.to_string());
    let path = path.to_str().expect("utf-8 path");
    let o = run(&[
        "gen-input",
        "--model",
        model,
        "--sequences",
        &n,
        "--steps",
        &t,
        "--output",
        path,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Starts `lstm-dse args` in the repository root, waits until the temporary file `partial`
/// exists (catch the run while it writes: make one of its later outputs a FIFO, written in
/// place, whose open waits for a reader), sends it `sig` and returns how it ended (each wait
/// at most 60 s).
#[cfg(unix)]
pub fn signal_while_writing(
    args: &[&str],
    partial: &std::path::Path,
    sig: libc::c_int,
) -> std::process::ExitStatus {
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lstm-dse"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // The signal's default action in the child, however the tests were started: a shell
    // starts a background job (`cargo test &`) with SIGINT ignored, and the tool rightly keeps
    // a signal ignored at its start, so SIGINT would never end it.
    // SAFETY: `signal` is async-signal-safe, as `pre_exec` requires.
    unsafe {
        command.pre_exec(move || {
            libc::signal(sig, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    while !partial.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            panic!("ended before writing ({status}): {err}");
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("no {partial:?} after 60 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: a signal to the child this function started and has not waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("signal {sig}: still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes a FIFO at `path`.
#[cfg(unix)]
pub fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// The bit patterns of `v`.
pub fn f32_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Two runs' policy lanes (a backend's against the scalar simulation's, or the GPU's against
/// the CPU's): levels, states, metrics and head output, bit for bit.
pub fn same_lanes(
    what: &str,
    got: &[lstm_dse::dynamic::LaneResult],
    want: &[lstm_dse::dynamic::LaneResult],
) {
    assert_eq!(got.len(), want.len(), "{what}: lanes");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let what = format!("{what} lane {i}");
        assert_eq!(a.levels, b.levels, "{what}: levels");
        for (l, ((ah, ac), (bh, bc))) in a.layers.iter().zip(&b.layers).enumerate() {
            assert_eq!(f32_bits(ah), f32_bits(bh), "{what}: layer {l} h");
            assert_eq!(f32_bits(ac), f32_bits(bc), "{what}: layer {l} c");
        }
        assert_eq!(a.metrics, b.metrics, "{what}: metrics");
        assert_eq!(
            a.output.as_ref().map(|o| f32_bits(o)),
            b.output.as_ref().map(|o| f32_bits(o)),
            "{what}: output"
        );
    }
}

/// Checks a run failed with exit 2 and one line, no panic, mentioning every string of
/// `expect`; returns stderr.
pub fn refused(o: &std::process::Output, expect: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "expected a refusal: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for e in expect {
        assert!(err.contains(e), "{err:?} should mention {e:?}");
    }
    err
}

/// Runs the binary (from the repository root) and checks it is [`refused`].
pub fn fails(args: &[&str], expect: &[&str]) -> String {
    eprintln!("lstm-dse {args:?}");
    refused(&run(args), expect)
}

/// Runs the binary (from the repository root) and checks it succeeds.
pub fn ok(args: &[&str]) {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A small sweep file (builtin model, generated inputs, CPU lanes) with `edit` applied as
/// (original line, replacement) pairs; returns (its directory, its path).
pub fn sweep_file(edits: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let mut text = r#"name = "bad"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
[precision]
fixed = ["fx8"]
levels = ["fx8", "fx16"]
thresholds = "0,inf"
device = "cpu"
[arch]
base = "sweeps/arch/epur.toml"
[arch.ranges]
"compute.units" = [2, 4]
[pareto]
minimize = ["latency_us", "energy_uj"]
"#
    .to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, text).unwrap();
    let s = p.display().to_string();
    (dir, s)
}

pub fn sweep_fails(edits: &[(&str, &str)], expect: &[&str]) -> String {
    let (dir, spec) = sweep_file(edits);
    let out = dir.path().join("out").display().to_string();
    let cache = dir.path().join("cache").display().to_string();
    let err = fails(
        &["sweep", &spec, "--out", &out, "--cache", &cache, "--quiet"],
        expect,
    );
    assert!(
        !dir.path().join("out").exists(),
        "a sweep refused before its first point leaves no output directory"
    );
    err
}
