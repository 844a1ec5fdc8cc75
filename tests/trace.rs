//! The trace stage: fp32 lanes reproduce the CPU evaluator exactly, fx16 beats fx8 at every
//! step, chunked GPU runs equal unchunked ones, output bytes are stable, and bad input is
//! refused with exit code 2; `bench engine` reports every lane kind.

mod common;

use common::data;
use lstm_dse::format::{parse_config_list, FloatFormat, Format, PrecisionConfig};
use lstm_dse::lstm::{self, eval, npy, LoadOptions, Model};
use lstm_dse::trace::{self, Engine};
use std::path::Path;
use std::process::Command;

fn fixture() -> (Model, npy::Sequences) {
    let m = lstm::load(&data("torch_lstm3.onnx"), &LoadOptions::default()).unwrap();
    let x = npy::read_sequences(Path::new(&data("torch_lstm3.x.npy"))).unwrap();
    (m, x)
}

fn engines() -> Vec<Engine> {
    let mut v = vec![Engine::Cpu];
    if let Some(ctx) = common::gpu_context() {
        v.push(Engine::Gpu(Box::new(ctx)));
    }
    v
}

#[test]
fn fp32_lanes_reproduce_the_cpu_evaluator_and_fx16_beats_fx8_everywhere() {
    let (m, x) = fixture();
    let reference = &eval::evaluate(&m, &x, "x", &[PrecisionConfig::FP32], true).unwrap()[0];
    let configs = parse_config_list("fp32,fx16,fx8").unwrap();
    for engine in engines() {
        let t = trace::run(&engine, &m, &x, "x", &configs, &mut |_, _| {}).unwrap();
        // The trace keeps only reduced errors: its fp32 rows must be those of the fp32
        // states (from `evaluate`) against the float64 reference, computed here directly.
        let exact = eval::reference::evaluate(&m, &x);
        let (rows, _, _) = trace::rows(&t, &m, 0.01);
        let fp32_rows: Vec<_> = rows.iter().filter(|r| r.precision == "fp32").collect();
        let states = reference.states.as_ref().unwrap();
        assert_eq!(fp32_rows.len(), x.count * x.steps * m.layers.len());
        for r in fp32_rows {
            let hsz = m.layers[r.layer].hidden_size;
            let at = (r.sequence * x.steps + r.step) * hsz;
            let (mut sq, mut max) = (0.0f64, 0.0f64);
            for j in at..at + hsz {
                let d = (states[r.layer].h[j] as f64 - exact.states[r.layer].h[j] as f64).abs();
                sq += d * d;
                max = max.max(d);
            }
            assert_eq!(r.hidden_max_abs, max, "{}", engine.name());
            assert!(((sq / hsz as f64).sqrt() - r.hidden_rmse).abs() <= 1e-15);
        }
        let (errors, _, _) = trace::rows(&t, &m, 0.01);
        let (fx16, fx8): (Vec<_>, Vec<_>) = errors
            .iter()
            .filter(|r| r.precision != "fp32")
            .partition(|r| r.precision == "fx16");
        assert_eq!(fx16.len(), fx8.len());
        assert_eq!(fx16.len(), x.count * x.steps * m.layers.len());
        for (a, b) in fx16.iter().zip(&fx8) {
            assert_eq!((a.sequence, a.layer, a.step), (b.sequence, b.layer, b.step));
            assert!(
                a.hidden_rmse < b.hidden_rmse,
                "sequence {} layer {} step {}: fx16 {} not below fx8 {}",
                a.sequence,
                a.layer,
                a.step,
                a.hidden_rmse,
                b.hidden_rmse
            );
        }
    }
}

#[test]
fn chunked_gpu_runs_equal_the_cpu_and_oversized_models_are_refused() {
    let Some(mut ctx) = common::gpu_context() else {
        return;
    };
    let (m, x) = fixture();
    let configs = parse_config_list("fx8;fx12;fp16;fp32;w=fx8,a=fx8,c=fx16").unwrap();
    let plans = eval::prepare(&m, &x, "x", &configs).unwrap();
    let cpu = eval::run_cpu(&m, &x, &plans, true);
    let same = |cpu: &[eval::Run], gpu: &[eval::Run]| {
        for (c, g) in cpu.iter().zip(gpu) {
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&c.hidden), bits(&g.hidden), "{}", c.config);
        }
    };
    // Room for one config's fp16 tables (786 KB) at a time: one chunk per config.
    ctx.limit_buffers(800_000);
    same(
        &cpu,
        &ctx.run(&m, &x, &plans, true, &mut |_, _| {}).unwrap(),
    );
    // Long sequences and a cap that holds one lane's states: one chunk per (config, sequence).
    let mut rng = lstm::builtin::SplitMix64::new(5);
    let long: Vec<f32> = (0..3 * 200 * 8).map(|_| rng.normal()).collect();
    let long = npy::Sequences::new("long", [3, 200, 8], long, true).unwrap();
    let plans = eval::prepare(&m, &long, "long", &parse_config_list("fx4;fx8").unwrap()).unwrap();
    ctx.limit_buffers(30_000);
    let mut calls = 0;
    let gpu = ctx
        .run(&m, &long, &plans, true, &mut |_, _| calls += 1)
        .unwrap();
    assert!(
        calls >= 6 * 3,
        "expected one submission per chunk and layer, saw {calls}"
    );
    same(&eval::run_cpu(&m, &long, &plans, true), &gpu);
    ctx.limit_buffers(1024);
    let err = ctx
        .run(&m, &x, &plans, true, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("too large for the adapter")
            && err.contains("per-buffer cap")
            && err.contains("1024"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

/// `e8m23` is IEEE binary32: the parser makes it `fp32` (one config, so `fp32;e8m23` is refused
/// as listed twice; `tests/bad_flags.rs`). That is sound only if §1.2's rounding with E = 8,
/// M = 23 gives fp32's bits wherever a lane runs it: here the format as §1.2 reads it (a
/// `Format::Float` built directly, as the parser no longer does) runs beside fp32, alone and as
/// one role of mixed configs, on peephole and stacked models, and every state, output and trace
/// row must be the same bits, on the CPU engine and on the GPU lanes (float kind 2 against
/// kind 0 there) where there is an adapter.
#[test]
fn e8m23_as_section_1_2_reads_it_gives_the_fp32_lanes_bits() {
    let binary32 = Format::Float(FloatFormat::ieee_like(8, 23).unwrap());
    assert_eq!("e8m23".parse::<Format>().unwrap(), Format::Fp32);
    let fp32 =
        parse_config_list("fp32;w=fx8,a=fp32;w=bf16,a=fp16,p=fp32,c=fp32;w=fp32,a=fx8,c=fx16")
            .unwrap();
    let spelled: Vec<PrecisionConfig> = fp32
        .iter()
        .map(|c| {
            let f = |r: Format| if r == Format::Fp32 { binary32 } else { r };
            PrecisionConfig {
                w: f(c.w),
                a: f(c.a),
                p: f(c.p),
                c: f(c.c),
                ..*c
            }
        })
        .collect();
    assert!(fp32.iter().zip(&spelled).all(|(a, b)| a != b));
    let all: Vec<PrecisionConfig> = fp32.iter().chain(&spelled).copied().collect();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let same_runs = |runs: &[eval::Run], what: &str| {
        let (a, b) = runs.split_at(fp32.len());
        for (a, b) in a.iter().zip(b) {
            for (sa, sb) in a
                .states
                .as_ref()
                .unwrap()
                .iter()
                .zip(b.states.as_ref().unwrap())
            {
                assert_eq!(bits(&sa.h), bits(&sb.h), "{what} {}: h", a.config);
                assert_eq!(bits(&sa.c), bits(&sb.c), "{what} {}: c", a.config);
            }
            assert_eq!(bits(&a.hidden), bits(&b.hidden), "{what} {}", a.config);
            let out = |r: &eval::Run| r.output.as_deref().map(bits);
            assert_eq!(out(a), out(b), "{what} {}: head", a.config);
        }
    };
    for (model, input) in [
        ("torch_lstm3.onnx", "torch_lstm3.x.npy"),
        ("peephole.onnx", "peephole.x.npy"),
    ] {
        let m = lstm::load(&data(model), &LoadOptions::default()).unwrap();
        let x = npy::read_sequences(Path::new(&data(input))).unwrap();
        let plans = eval::prepare(&m, &x, "x", &all).unwrap();
        same_runs(&eval::run_cpu(&m, &x, &plans, true), model);
        for engine in engines() {
            if let Engine::Gpu(ctx) = &engine {
                same_runs(
                    &ctx.run(&m, &x, &plans, true, &mut |_, _| {}).unwrap(),
                    model,
                );
            }
            let t = trace::run(&engine, &m, &x, "x", &all, &mut |_, _| {}).unwrap();
            let (errors, _, summary) = trace::rows(&t, &m, 0.01);
            let key = |r: &trace::ErrorRow| {
                let f = [r.hidden_rmse, r.hidden_max_abs, r.cell_rmse, r.cell_max_abs];
                (
                    r.sequence,
                    r.layer,
                    r.direction,
                    r.step,
                    f.map(f64::to_bits),
                )
            };
            let (a, b) = errors.split_at(errors.len() / 2);
            assert!(
                a.iter().map(key).eq(b.iter().map(key)),
                "{model} {}",
                engine.name()
            );
            let key = |r: &trace::SummaryRow| {
                let f = [r.hidden_rmse, r.hidden_max_abs, r.cell_rmse, r.cell_max_abs];
                (
                    r.total_bits,
                    f.map(f64::to_bits),
                    r.output_rmse.map(f64::to_bits),
                )
            };
            let (a, b) = summary.split_at(fp32.len());
            assert!(
                a.iter().map(key).eq(b.iter().map(key)),
                "{model} {}",
                engine.name()
            );
        }
    }
}

fn lstm_dse(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn trace_command_writes_identical_bytes_on_every_run_and_device() {
    let dir = tempfile::tempdir().unwrap();
    let (m, x) = (data("torch_lstm3.onnx"), data("torch_lstm3.x.npy"));
    let mut outs = Vec::new();
    // `auto` skips software adapters, so name the GPU explicitly: this compares the GPU
    // lanes with the CPU engine (or, without an adapter outside CI, the CPU with itself).
    let devices: &[&str] = if common::gpu_context().is_some() {
        &["cpu", "gpu", "cpu"]
    } else {
        &["cpu", "cpu"]
    };
    for (k, device) in devices.iter().enumerate() {
        let out = dir.path().join(format!("run{k}"));
        let o = lstm_dse(&[
            "trace",
            "--quiet",
            "--model",
            m.as_str(),
            "--input",
            x.as_str(),
            "--precisions",
            "fp32,fx16,fx8,fp16",
            "--device",
            device,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outs.push(out);
    }
    for f in ["errors.csv", "cell_delta.csv", "summary.csv"] {
        let first = std::fs::read(outs[0].join(f)).unwrap();
        for o in &outs[1..] {
            assert_eq!(first, std::fs::read(o.join(f)).unwrap(), "{f} differs");
        }
    }
    let summary = std::fs::read_to_string(outs[0].join("summary.csv")).unwrap();
    assert!(summary
        .starts_with("precision,total_bits,hidden_rmse,hidden_max_abs,cell_rmse,cell_max_abs,"));
    assert_eq!(summary.lines().count(), 5);
}

#[test]
fn trace_bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (m, x) = (data("torch_lstm3.onnx"), data("torch_lstm3.x.npy"));
    let out = dir.path().join("out");
    let base = |prec: &str, tol: &str, out: &Path, device: &str| {
        lstm_dse(&[
            "trace",
            "--model",
            m.as_str(),
            "--input",
            x.as_str(),
            "--precisions",
            prec,
            &format!("--tolerance={tol}"),
            "--out",
            out.to_str().unwrap(),
            "--device",
            device,
        ])
    };
    for (o, expect) in [
        (base("fp32,fx99", "0.01", &out, "cpu"), "'fx99'"),
        (base("fx8", "0", &out, "cpu"), "must be a positive number"),
        (
            base("fx8", "-1e-3", &out, "cpu"),
            "must be a positive number",
        ),
        (
            base("fx8", "0.01", &file, "cpu"),
            "exists and is not a directory",
        ),
    ] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err} should mention {expect}");
    }
    assert!(!out.exists());
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args([
            "trace",
            "--model",
            m.as_str(),
            "--input",
            x.as_str(),
            "--precisions",
            "fx8",
        ])
        .args(["--out", out.to_str().unwrap(), "--device", "gpu"])
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no GPU adapter found matching WGPU_ADAPTER_NAME"),
        "{err}"
    );
}

/// `bench engine --lanes LANES --reps 1 --csv` on a small ONNX model: its CSV rows.
fn bench_engine_rows(lanes: &str) -> Vec<csv::StringRecord> {
    let (m, x) = (data("torch_lstm3.onnx"), data("torch_lstm3.x.npy"));
    let o = lstm_dse(&[
        "bench",
        "engine",
        "--model",
        m.as_str(),
        "--input",
        x.as_str(),
        "--lanes",
        lanes,
        "--reps",
        "1",
        "--csv",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut rows = csv::Reader::from_reader(&o.stdout[..]);
    rows.records().map(|r| r.unwrap()).collect()
}

/// Lane kinds split as `trace --precisions` splits configs: a config with roles (commas
/// inside) is one lane, quoted in the CSV, and so is a calibrated one.
#[test]
fn bench_engine_lanes_with_roles_are_one_lane_each() {
    let rows = bench_engine_rows("w=bf16,a=fp8e4m3;fx8,cal=mse");
    let kinds: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(kinds, ["w=bf16,a=fp8e4m3", "fx8,cal=mse"]);
}

#[test]
fn bench_engine_reports_one_row_per_lane_kind() {
    // Every lane kind runs and reports a time, the baselines (`scalar:`) included. (A smoke
    // test: it cannot tell which evaluator a row ran; their bits are compared in engine.rs
    // and dynamic.rs.)
    let kinds = "fx8,policy,reference,scalar:fx8,scalar:policy";
    let rows = bench_engine_rows(kinds);
    let got: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(got, kinds.split(',').collect::<Vec<_>>());
    for r in &rows {
        let (s, gmac): (f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap());
        assert!(s > 0.0 && gmac > 0.0, "{r:?}");
    }
}

/// Ctrl-C or `kill` while `trace` writes its three files removes their temporary files before
/// the process ends by that signal. The run is caught at a known point: `cell_delta.csv` is a
/// FIFO, written in place, whose open waits for a reader after `errors.csv`'s temporary file
/// is written whole.
#[cfg(unix)]
#[test]
fn a_signal_while_writing_leaves_no_partial_file() {
    use std::os::unix::process::ExitStatusExt;
    let (model, input) = (data("torch_lstm3.onnx"), data("torch_lstm3.x.npy"));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let dir = tempfile::tempdir().unwrap();
        common::mkfifo(&dir.path().join("cell_delta.csv"));
        let partial = dir.path().join("errors.csv.partial");
        let args = [
            "trace",
            "--quiet",
            "--device",
            "cpu",
            "--precisions",
            "fx8",
            "--model",
            model.as_str(),
            "--input",
            input.as_str(),
            "--out",
            dir.path().to_str().unwrap(),
        ];
        let status = common::signal_while_writing(&args, &partial, sig);
        assert_eq!(status.signal(), Some(sig), "{status}");
        assert!(!partial.exists(), "signal {sig}: {partial:?} left behind");
        assert!(
            !dir.path().join("errors.csv").exists(),
            "signal {sig}: errors.csv written"
        );
    }
}
