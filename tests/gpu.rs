//! GPU kernels against their CPU twin: identical bits for every lane, fixed point (4 to 16
//! bits, several fraction splits) and float formats alike, on shapes smaller than a workgroup,
//! not divisible by it, bidirectional and peephole layers, batches of sequences. Runs on any
//! adapter, lavapipe included (CI installs it), through each context of `common::shared_gpus`;
//! without one it says so and passes, except under CI, where that is a failure.

mod common;

use lstm_dse::format::parse_config_list;
use lstm_dse::gpu::GpuContext;
use lstm_dse::lstm::eval::{self, Run};
use lstm_dse::lstm::{self, builtin::SplitMix64, npy::Sequences, LoadOptions, Model};
use std::path::Path;

fn fixture(name: &str) -> Model {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    lstm::load(p.to_str().unwrap(), &LoadOptions::default()).unwrap()
}

fn inputs(model: &Model, n: usize, t: usize, seed: u64) -> Sequences {
    let mut rng = SplitMix64::new(seed);
    let data = (0..n * t * model.input_size())
        .map(|_| rng.normal())
        .collect();
    Sequences::new("x", [n, t, model.input_size()], data, true).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// Runs `configs` on both devices and demands equal bits everywhere, naming the first
/// difference.
fn same_bits(ctx: &GpuContext, model: &Model, x: &Sequences, configs: &str) {
    let configs = parse_config_list(configs).unwrap();
    let plans = eval::prepare(model, x, "x", &configs).unwrap();
    let cpu: Vec<Run> = eval::run_cpu(model, x, &plans, true);
    let gpu = ctx.run(model, x, &plans, true, &mut |_, _| {}).unwrap();
    for (c, g) in cpu.iter().zip(&gpu) {
        for (l, (sc, sg)) in c
            .states
            .as_ref()
            .unwrap()
            .iter()
            .zip(g.states.as_ref().unwrap())
            .enumerate()
        {
            for (what, a, b) in [("h", &sc.h, &sg.h), ("c", &sc.c, &sg.c)] {
                if let Some(i) = bits(a).iter().zip(bits(b)).position(|(p, q)| *p != q) {
                    panic!(
                        "{} {}: layer {l} {what}[{i}]: cpu {} gpu {}",
                        model.name, c.config, a[i], b[i]
                    );
                }
            }
        }
        assert_eq!(bits(&c.hidden), bits(&g.hidden));
        if let (Some(a), Some(b)) = (&c.output, &g.output) {
            assert_eq!(bits(a), bits(b), "{}: head output", c.config);
        }
    }
}

const FIXED: &str = "fx4;fx6;fx8;fx12;fx16;fx8.6;fx16.10;w=fx8,a=fx8,c=fx16;w=fx6.5,a=fx8.7,p=fx10.6,c=fx12.9;w=fx16,a=fx8";
const FLOAT: &str = "fp32;fp16;bf16;fp8e4m3;fp8e5m2;e3m4;w=fp16,a=fp16,p=fp32,c=fp32;w=fx8,a=fp16";

// Each check below runs through every context of `common::shared_gpus`: the adapter's own
// paths and, on lavapipe, those of a GPU (weights from storage, unflushed float sums, x and h
// from the stage and from storage).

#[test]
fn three_layer_fixture_fixed_and_float() {
    for (ctx, _) in common::shared_gpus() {
        let m = fixture("torch_lstm3.onnx");
        let x = inputs(&m, 3, 9, 1);
        same_bits(ctx, &m, &x, FIXED);
        same_bits(ctx, &m, &x, FLOAT);
    }
}

#[test]
fn lanes_that_read_storage_instead_of_the_stage_agree_too() {
    // Steps too large for the uniform stage read x and h from storage buffers.
    let Some(mut ctx) = common::gpu_context() else {
        return;
    };
    ctx.limit_stage(0);
    let m = fixture("torch_lstm3.onnx");
    let x = inputs(&m, 5, 7, 4);
    same_bits(&ctx, &m, &x, FIXED);
    same_bits(&ctx, &m, &x, FLOAT);
    let m = fixture("torch_bilstm.onnx");
    let x = inputs(&m, 3, 6, 5);
    same_bits(&ctx, &m, &x, FIXED);
}

#[test]
fn lanes_that_read_the_stage_in_windows_agree_too() {
    // A stage larger than one uniform binding is read a window of slabs at a time: bindings
    // of 32 vec4s hold one slab (24 or 32 vec4s: I + H of the layers below), of 100 vec4s up
    // to four; slabs of both directions; the last window short.
    for words in [4 * 32, 4 * 100] {
        let Some(mut ctx) = common::gpu_context() else {
            return;
        };
        ctx.limit_stage(words);
        let m = fixture("torch_lstm3.onnx");
        let x = inputs(&m, 5, 7, 4);
        same_bits(&ctx, &m, &x, FIXED);
        same_bits(&ctx, &m, &x, FLOAT);
        let m = fixture("torch_bilstm.onnx");
        let x = inputs(&m, 7, 6, 5);
        same_bits(&ctx, &m, &x, FIXED);
        same_bits(&ctx, &m, &x, FLOAT);
    }
}

#[test]
fn bidirectional_and_peephole_layers() {
    for (ctx, _) in common::shared_gpus() {
        for name in ["bidir.onnx", "peephole.onnx", "torch_bilstm.onnx"] {
            let m = fixture(name);
            let x = inputs(&m, 3, 6, 2);
            same_bits(ctx, &m, &x, FIXED);
            same_bits(ctx, &m, &x, FLOAT);
        }
    }
}

#[test]
fn shapes_around_the_workgroup_size() {
    let gpus = common::shared_gpus();
    // Hidden sizes below, at and not dividing the 64-thread workgroup; one sequence and many;
    // initial h and c.
    for (hidden, n) in [(1, 1), (3, 5), (16, 2), (17, 3), (65, 2)] {
        let mut m = lstm_dse::lstm::builtin::build("tiny").unwrap();
        let mut rng = SplitMix64::new(hidden as u64);
        let input = 5;
        let cell = lstm_dse::lstm::Cell {
            w: rng.fill(4 * hidden * input, 0.5),
            r: rng.fill(4 * hidden * hidden, 0.5),
            b_ih: rng.fill(4 * hidden, 0.5),
            b_hh: rng.fill(4 * hidden, 0.5),
            peephole: Some(rng.fill(3 * hidden, 0.5)),
            h0: Some(rng.fill(hidden, 1.0)),
            c0: Some(rng.fill(hidden, 1.0)),
        };
        m.layers = vec![lstm_dse::lstm::Layer {
            input_size: input,
            hidden_size: hidden,
            direction: lstm_dse::lstm::Direction::Reverse,
            cells: vec![cell],
        }];
        m.head = None;
        m.validate().unwrap();
        let x = inputs(&m, n, 4, 3);
        for &(ctx, _) in &gpus {
            same_bits(ctx, &m, &x, "fx8;fx16;w=fx4,a=fx6,c=fx10;fp16;fp32");
        }
    }
}

#[test]
fn inputs_just_under_the_overflow_bound_stay_finite_and_equal() {
    // The largest input scale the overflow check lets through (found by bisection on the
    // refusal, docs/NUMERICS.md §15): every float lane's states stay finite there, peepholes
    // and coarse formats included, and the GPU computes the CPU's bits.
    let m = fixture("peephole.onnx");
    let unit = inputs(&m, 3, 9, 5);
    let scaled = |s: f64| {
        let data = unit.data.iter().map(|&v| (v as f64 * s) as f32).collect();
        Sequences::new("x", [3, 9, m.input_size()], data, true).unwrap()
    };
    let configs = parse_config_list(FLOAT).unwrap();
    let accepted = |s: f64| eval::prepare(&m, &scaled(s), "x", &configs[..1]).is_ok();
    let (mut lo, mut hi) = (1.0f64, 1e38f64);
    assert!(accepted(lo) && !accepted(hi));
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if accepted(mid) {
            lo = mid
        } else {
            hi = mid
        }
    }
    assert!(lo > 1e30, "the bound refuses inputs of {hi:e}");
    let x = scaled(lo);
    let plans = eval::prepare(&m, &x, "x", &configs).unwrap();
    for run in eval::run_cpu(&m, &x, &plans, true) {
        for (l, s) in run.states.as_ref().unwrap().iter().enumerate() {
            let finite = s.h.iter().chain(&s.c).all(|v| v.is_finite());
            assert!(finite, "{}: layer {l} has a non-finite state", run.config);
        }
    }
    for (ctx, _) in common::shared_gpus() {
        same_bits(ctx, &m, &x, FLOAT);
    }
}

/// A buffer the adapter cannot hold is refused in one line naming the model's file, what
/// needs the buffer, its size and the limit, and what to do instead (chunks already split the
/// lanes down to one, so fewer lanes would not help).
#[test]
fn a_buffer_too_large_names_the_model_the_size_and_the_limit() {
    let Some(mut ctx) = common::gpu_context() else {
        return;
    };
    let m = fixture("torch_lstm3.onnx");
    assert!(
        m.name.ends_with("tests/data/torch_lstm3.onnx"),
        "{}",
        m.name
    );
    let configs = parse_config_list("fx8").unwrap();
    let refusal = |ctx: &GpuContext, x: &Sequences| {
        let plans = eval::prepare(&m, x, "x", &configs).unwrap();
        let e = ctx
            .run(&m, x, &plans, false, &mut |_, _| {})
            .unwrap_err()
            .to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    };
    let model = format!("{}: too large for the adapter", m.name);
    ctx.limit_buffers(1024);
    let e = refusal(&ctx, &inputs(&m, 2, 5, 1));
    for want in [
        &model,
        "layer 0's weights at fx8 needs a buffer of",
        "lstm-dse's per-buffer cap allows 1024",
        "never split",
        "--device cpu",
    ] {
        assert!(e.contains(want), "{want:?} not in {e}");
    }
    // Room for the weights (16 units), not for one sequence's 8000 steps of states.
    ctx.limit_buffers(800_000);
    let e = refusal(&ctx, &inputs(&m, 1, 8000, 2));
    for want in [
        &model,
        "one sequence of 8000 steps needs a buffer of",
        "allows 800000",
        "fewer steps",
        "--device cpu",
    ] {
        assert!(e.contains(want), "{want:?} not in {e}");
    }
}
