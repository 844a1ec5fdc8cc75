//! The trace's error statistics reduced on the device (`shaders/reduce.wgsl`) against their
//! CPU twin (`ErrorStats::add` over one step's H units, fed with the states decoded as the
//! host decodes read-back words), bit for bit: on raw words with awkward values (NaN, ±inf,
//! subnormals, −0, fixed-point codes wider than an f32 significand, every fraction split)
//! and through whole traces (H = 1, 3, 33; several sequences and layers; bidirectional;
//! with and without a head; runs split into chunks) whose rows must equal the CPU engine's.
//! Runs on any adapter, lavapipe included; in CI a missing adapter is a failure.

mod common;

use lstm_dse::format::{parse_config_list, Fixed};
use lstm_dse::gpu::{GpuContext, ReduceShape, StateDecode};
use lstm_dse::lstm::builtin::SplitMix64;
use lstm_dse::lstm::npy::Sequences;
use lstm_dse::lstm::{Direction, Model};
use lstm_dse::trace::stats::ErrorStats;
use lstm_dse::trace::{self, Engine};

/// Equal bits, or both NaN (a NaN's payload is not part of any output).
fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The adapter, which must reduce on the device to be tested here (lavapipe does).
fn device() -> Option<GpuContext> {
    let ctx = common::gpu_context()?;
    if !ctx.reduces_on_device() {
        assert!(
            std::env::var_os("CI").is_none() || !ctx.adapter.name.contains("llvmpipe"),
            "lavapipe offers SHADER_F64 and SHADER_INT64: the reduction must run on it"
        );
        eprintln!("skipping: {} has no SHADER_F64/SHADER_INT64", ctx.adapter);
        return None;
    }
    Some(ctx)
}

/// A random f32 bit pattern weighted towards the awkward ones.
fn awkward_f32(rng: &mut SplitMix64) -> u32 {
    match rng.next_u64() % 16 {
        0 => 0x8000_0000,                                     // -0
        1 => (rng.next_u64() as u32) & 0x807f_ffff,           // ±subnormal
        2 => 0x7f80_0000 | (rng.next_u64() as u32 & 1 << 31), // ±inf
        3 => 0x7fc0_0000 | (rng.next_u64() as u32 & 0xffff),  // NaN
        4 => (rng.next_u64() as u32) & 0x7f7f_ffff,           // any finite magnitude
        5 => 0,
        _ => rng.normal().to_bits(),
    }
}

/// A fixed-point code: small, or up to 32 bits wide (rounded to f32 on decode), or exactly
/// halfway between two f32 values (odd and even significands: round half to even).
fn awkward_code(rng: &mut SplitMix64) -> u32 {
    let v = rng.next_u64();
    match v % 8 {
        6 | 7 => {
            let s = 1 + (v >> 8) as u32 % 7;
            let m = (1u32 << 23) | (v >> 40) as u32 & 0x7f_ffff;
            let tie = (m << s | 1 << (s - 1)) as i32;
            (if v & 1 << 20 != 0 { -tie } else { tie }) as u32
        }
        0 => i32::MIN as u32,
        1 => i32::MAX as u32,
        2 => (v >> 32) as u32,                      // up to 32 bits
        3 => ((v >> 40) as i32 - (1 << 23)) as u32, // around ±2^23
        _ => ((v >> 48) as i32 % 300) as u32,
    }
}

#[test]
fn kernel_equals_the_cpu_twin_on_awkward_words() {
    let Some(ctx) = device() else { return };
    for (case, (hidden, dirs, groups, seqs, steps)) in [
        (1, 1, 1, 1, 1),
        (1, 2, 3, 2, 5),
        (3, 2, 2, 3, 4),
        (33, 1, 2, 2, 3),
        (33, 2, 3, 3, 7),
        (70, 2, 1, 2, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = SplitMix64::new(case as u64 + 11);
        let lanes = groups * seqs;
        let dh = dirs * hidden;
        // Per (group, dir): float lanes, or fixed point with fraction bits from -3 to 40.
        let decode: Vec<StateDecode> = (0..groups * dirs)
            .map(|i| {
                let frac = |r: u64| (r % 44) as i32 - 3;
                match i % 3 {
                    0 => StateDecode::default(),
                    _ => StateDecode {
                        h_frac: Some(frac(rng.next_u64())),
                        c_frac: Some(frac(rng.next_u64())),
                    },
                }
            })
            .collect();
        let mut states = Vec::with_capacity(lanes * steps * 2 * dh);
        for lane in 0..lanes {
            for _ in 0..steps {
                for which in 0..2 {
                    for u in 0..dh {
                        let d = decode[(lane / seqs) * dirs + u / hidden];
                        let fixed = [d.h_frac, d.c_frac][which].is_some();
                        states.push(if fixed {
                            awkward_code(&mut rng)
                        } else {
                            awkward_f32(&mut rng)
                        });
                    }
                }
            }
        }
        let reference: Vec<f32> = (0..seqs * steps * 2 * dh)
            .map(|_| f32::from_bits(awkward_f32(&mut rng)))
            .collect();
        let shape = ReduceShape {
            lanes,
            seqs,
            steps,
            dirs,
            hidden,
        };
        let gpu = ctx
            .step_errors(&states, &reference, &decode, shape)
            .unwrap();
        assert_eq!(gpu.len(), lanes * dirs * steps);
        // The CPU twin: decode as `lane_states` does, reduce as `trace::reduce` does.
        let value = |w: u32, frac: Option<i32>| match frac {
            Some(frac) => Fixed { bits: 32, frac }.to_f32(w as i32),
            None => f32::from_bits(w),
        };
        for lane in 0..lanes {
            for k in 0..dirs {
                let d = decode[(lane / seqs) * dirs + k];
                for t in 0..steps {
                    let at = (lane * steps + t) * 2 * dh + k * hidden;
                    let ref_at = ((lane % seqs) * steps + t) * 2 * dh + k * hidden;
                    let mut want = [0.0; 4];
                    for (which, frac) in [(0, d.h_frac), (1, d.c_frac)] {
                        let a: Vec<f32> = (0..hidden)
                            .map(|j| value(states[at + which * dh + j], frac))
                            .collect();
                        let b = &reference[ref_at + which * dh..][..hidden];
                        let mut s = ErrorStats::default();
                        s.add(&a, b);
                        want[2 * which] = s.sum_sq();
                        want[2 * which + 1] = s.max_abs();
                    }
                    let got = gpu[(lane * dirs + k) * steps + t];
                    for q in 0..4 {
                        assert!(
                            same(got[q], want[q]),
                            "H={hidden} lane {lane} dir {k} step {t} [{q}]: gpu {} cpu {}",
                            got[q],
                            want[q]
                        );
                    }
                }
            }
        }
    }
}

/// A random stack with peepholes and initial states, and a head when asked.
fn model(seed: u64, input: usize, hidden: &[usize], dirs: &[Direction], head: bool) -> Model {
    common::random_model(seed, input, hidden, dirs, true, true, head)
}

fn inputs(seed: u64, n: usize, steps: usize, width: usize) -> Sequences {
    common::random_inputs(seed, n, steps, width, 1.0)
}

const CONFIGS: &str =
    "fp32;fx8;fx16;w=fx6,a=fx8,c=fx16;fx4;fp16;bf16;fp8e4m3;w=fx8,a=fp16;fx8,cal=p99.5";

/// Traces on the CPU engine and on the device (reducing there), demanding the same bits in
/// every step's statistics and head output, and the same CSV rows.
/// Returns how many times the device run reported progress.
fn same_trace(gpu: &Engine, m: &Model, x: &Sequences, configs: &str) -> usize {
    let configs = parse_config_list(configs).unwrap();
    let cpu = trace::run(&Engine::Cpu, m, x, "x", &configs, &mut |_, _| {}).unwrap();
    let mut calls = 0;
    let dev = trace::run(gpu, m, x, "x", &configs, &mut |_, _| calls += 1).unwrap();
    for (c, g) in cpu.results.iter().zip(&dev.results) {
        assert_eq!(c.config, g.config);
        assert_eq!(c.steps.len(), g.steps.len(), "{}", c.config);
        for (i, ((ch, cc), (gh, gc))) in c.steps.iter().zip(&g.steps).enumerate() {
            for (what, a, b) in [("h", ch, gh), ("c", cc, gc)] {
                assert!(
                    same(a.sum_sq(), b.sum_sq())
                        && same(a.max_abs(), b.max_abs())
                        && a.count() == b.count(),
                    "{} {}: row {i} {what}: cpu {a:?} gpu {b:?}",
                    m.name,
                    c.config
                );
            }
        }
        let bits = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
        };
        assert_eq!(
            bits(&c.output),
            bits(&g.output),
            "{}: head output",
            c.config
        );
        assert_eq!(c.output.is_some(), m.head.is_some());
    }
    let rows = |t: &trace::Trace| format!("{:?}", trace::rows(t, m, 0.01));
    assert_eq!(rows(&cpu), rows(&dev));
    calls
}

#[test]
fn traces_reduced_on_the_device_equal_the_cpu_engine() {
    let Some(ctx) = device() else { return };
    let gpu = Engine::Gpu(Box::new(ctx));
    assert!(gpu.reduces_on_device() && gpu.reduction_notice().is_none());
    use Direction::{Bidirectional as Bi, Forward as Fw, Reverse as Rv};
    for (seed, hidden, dirs, head, n, t) in [
        (1, &[1][..], &[Fw][..], false, 1, 3),
        (2, &[3, 1], &[Bi, Fw], true, 3, 5),
        (3, &[33, 3, 33], &[Fw, Bi, Rv], true, 4, 6),
        (4, &[33], &[Bi], false, 2, 9),
    ] {
        let m = model(seed, 5, hidden, dirs, head);
        same_trace(&gpu, &m, &inputs(seed, n, t, 5), CONFIGS);
    }
}

#[test]
fn chunked_reduced_traces_equal_the_cpu_engine() {
    let Some(mut ctx) = device() else { return };
    use Direction::{Bidirectional as Bi, Forward as Fw};
    let m = model(7, 3, &[3, 9], &[Bi, Fw], true);
    let x = inputs(7, 5, 40, 3);
    // A cap that holds two lanes (a lane's layer-1 states are 2880 bytes): one chunk per
    // config and pair of sequences, so chunks of sequences 2.. and 4.. are reduced against
    // their own part of the reference.
    ctx.limit_buffers(8_000);
    let calls = same_trace(&Engine::Gpu(Box::new(ctx)), &m, &x, "fx8;fx4;fx6;fp32");
    assert!(
        calls >= 4 * 3 * 2,
        "expected 24 chunk-layers, saw {calls} submissions"
    );
}

#[test]
fn adapters_without_f64_reduce_read_back_states_on_the_host() {
    let Some(mut ctx) = device() else { return };
    ctx.reduce_on_host();
    let gpu = Engine::Gpu(Box::new(ctx));
    assert!(!gpu.reduces_on_device());
    let notice = gpu.reduction_notice().unwrap();
    assert!(
        notice.contains("SHADER_F64") && notice.lines().count() == 1,
        "{notice}"
    );
    let m = model(
        8,
        4,
        &[3, 33],
        &[Direction::Bidirectional, Direction::Forward],
        true,
    );
    same_trace(&gpu, &m, &inputs(8, 3, 6, 4), CONFIGS);
}
