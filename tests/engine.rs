//! Engine conformance: every backend of the driver (`lstm::driver`) — the lane-batched CPU
//! engine and the GPU lanes (any adapter, lavapipe included; a failure under CI without one) —
//! and the per-sequence scalar evaluator, run by the same checks against a plain scalar
//! implementation of docs/NUMERICS.md §6/§7 kept here as the oracle. Every format kind, peepholes, initial
//! states, forward / reverse / bidirectional layers, stacked layers, and shapes that do not
//! divide the kernels' tiles (H = 1, 3, 33, 1000; lanes = 1, 7, 65).

// The oracle indexes like the document's formulas on purpose.
#![allow(clippy::needless_range_loop)]

mod common;

use lstm_dse::format::detmath::ftz;
use lstm_dse::format::fixed::rescale;
use lstm_dse::format::parse_config_list;
use lstm_dse::gpu::GpuConfigs;
use lstm_dse::lstm::builtin::SplitMix64;
use lstm_dse::lstm::driver::{self, Backend};
use lstm_dse::lstm::eval::{self, plan::CellPlan, Plan};
use lstm_dse::lstm::npy::Sequences;
use lstm_dse::lstm::{Direction, Model};

/// One direction of one layer, literally as NUMERICS.md §6 (float) or §7 (integer) reads.
fn oracle_cell(
    p: &CellPlan,
    x: &[f32],
    input: usize,
    steps: usize,
    rev: bool,
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let hsz = p.h0.len();
    let mut out = vec![(vec![], vec![]); steps];
    if let Some(q) = &p.int {
        let (mut h, mut c) = (q.h0.clone(), q.c0.clone());
        for s in 0..steps {
            let t = if rev { steps - 1 - s } else { s };
            let xq: Vec<i64> = x[t * input..(t + 1) * input]
                .iter()
                .map(|&v| q.x.quantize(v) as i64)
                .collect();
            // §7: every term shifted to the accumulator's fraction bits F (the largest of
            // the terms'); with wscale=channel (§3.2) each row of W and R has its own format.
            // Codes are read back from the rounded weight values, not from the plan's codes.
            let big_f = q.pre_shift + q.pre.frac;
            let frac = |r: lstm_dse::format::Resolved| r.frac().unwrap();
            let row_frac = |which: usize, r: usize| match (&p.rows, which) {
                (Some(rows), 0) => frac(rows.w[r]),
                (Some(rows), _) => frac(rows.r[r]),
                (None, 0) => frac(p.formats.w),
                (None, _) => frac(p.formats.r),
            };
            let code = |v: f32, f: i32| {
                let c = v as f64 * 2f64.powi(f);
                assert_eq!(c, c.round(), "weight {v} is not on its grid 2^-{f}");
                c as i64
            };
            let mut acc = vec![0i64; 4 * hsz];
            for (r, a) in acc.iter_mut().enumerate() {
                let (fw, fr) = (row_frac(0, r), row_frac(1, r));
                let mut wx = 0i64;
                for k in 0..input {
                    wx += code(p.w[r * input + k], fw) * xq[k];
                }
                let mut rh = 0i64;
                for k in 0..hsz {
                    rh += code(p.r[r * hsz + k], fr) * h[k] as i64;
                }
                let fb = frac(p.formats.b);
                *a = (wx << (big_f - fw - q.x.frac))
                    + (rh << (big_f - fr - q.h.frac))
                    + (code(p.b[r], fb) << (big_f - fb));
            }
            let (mut hn, mut cn) = (h.clone(), c.clone());
            for j in 0..hsz {
                let (mut ai, mut af, ag, mut ao) =
                    (acc[j], acc[hsz + j], acc[2 * hsz + j], acc[3 * hsz + j]);
                if let Some(pp) = &q.peep {
                    ai += (pp[j] as i64 * c[j] as i64) << q.shift_pc;
                    af += (pp[hsz + j] as i64 * c[j] as i64) << q.shift_pc;
                }
                let sig =
                    |a: i64| q.sigmoid[q.pre.table_index(rescale(a, q.pre_shift, q.pre))] as i64;
                let (i, f) = (sig(ai), sig(af));
                let g = q.tanh_pre[q.pre.table_index(rescale(ag, q.pre_shift, q.pre))] as i64;
                let u = ((f * c[j] as i64) << q.shift_fc) + ((i * g) << q.shift_ig);
                cn[j] = rescale(u, q.c_shift, q.c);
                if let Some(pp) = &q.peep {
                    ao += (pp[2 * hsz + j] as i64 * cn[j] as i64) << q.shift_pc;
                }
                let o = sig(ao);
                hn[j] = rescale(o * q.tanh_c[q.c.table_index(cn[j])] as i64, q.h_shift, q.h);
            }
            (h, c) = (hn, cn);
            out[t] = (
                h.iter().map(|&v| q.h.to_f32(v)).collect(),
                c.iter().map(|&v| q.c.to_f32(v)).collect(),
            );
        }
        return out;
    }
    let f = &p.formats;
    let add = |a: f32, b: f32| ftz(a + b);
    let mul = |a: f32, b: f32| ftz(a * b);
    let (mut h, mut c) = (p.h0.clone(), p.c0.clone());
    for s in 0..steps {
        let t = if rev { steps - 1 - s } else { s };
        let xq: Vec<f32> = x[t * input..(t + 1) * input]
            .iter()
            .map(|&v| f.x.round(v))
            .collect();
        let mut acc = vec![0.0f32; 4 * hsz];
        for (r, a) in acc.iter_mut().enumerate() {
            let mut s = 0.0f32;
            for k in 0..input {
                s = add(s, mul(p.w[r * input + k], xq[k]));
            }
            for k in 0..hsz {
                s = add(s, mul(p.r[r * hsz + k], h[k]));
            }
            *a = add(s, p.b[r]);
        }
        let (mut hn, mut cn) = (h.clone(), c.clone());
        for j in 0..hsz {
            let (mut ai, mut af) = (acc[j], acc[hsz + j]);
            if let Some(pp) = &p.peep {
                ai = add(ai, mul(pp[j], c[j]));
                af = add(af, mul(pp[hsz + j], c[j]));
            }
            let i = p.sigmoid.apply(f.pre.round(ai));
            let fg = p.sigmoid.apply(f.pre.round(af));
            let g = p.tanh_pre.apply(f.pre.round(acc[2 * hsz + j]));
            cn[j] = f.c.round(add(mul(fg, c[j]), mul(i, g)));
            let mut ao = acc[3 * hsz + j];
            if let Some(pp) = &p.peep {
                ao = add(ao, mul(pp[2 * hsz + j], cn[j]));
            }
            let o = p.sigmoid.apply(f.pre.round(ao));
            hn[j] = f.h.round(mul(o, p.tanh_c.apply(cn[j])));
        }
        (h, c) = (hn, cn);
        out[t] = (h.clone(), c.clone());
    }
    out
}

/// Every layer's (h, c) as `[N, T, D*H]`, by the oracle.
fn oracle(model: &Model, plan: &Plan, seqs: &Sequences) -> Vec<(Vec<f32>, Vec<f32>)> {
    let (n, steps) = (seqs.count, seqs.steps);
    let mut x = seqs.data.clone();
    let mut result = Vec::new();
    for (layer, cells) in model.layers.iter().zip(&plan.layers) {
        let stride = layer.hidden_size * layer.direction.count();
        let (mut h, mut c) = (vec![0.0; n * steps * stride], vec![0.0; n * steps * stride]);
        for seq in 0..n {
            let xs = &x[seq * steps * layer.input_size..(seq + 1) * steps * layer.input_size];
            for (k, cp) in cells.iter().enumerate() {
                let states = oracle_cell(
                    cp,
                    xs,
                    layer.input_size,
                    steps,
                    layer.direction.is_reversed(k),
                );
                for (t, (hv, cv)) in states.iter().enumerate() {
                    let at = (seq * steps + t) * stride + k * layer.hidden_size;
                    h[at..at + layer.hidden_size].copy_from_slice(hv);
                    c[at..at + layer.hidden_size].copy_from_slice(cv);
                }
            }
        }
        x = h.clone();
        result.push((h, c));
    }
    result
}

fn model(
    seed: u64,
    input: usize,
    hidden: &[usize],
    dirs: &[Direction],
    peep: bool,
    init: bool,
) -> Model {
    common::random_model(seed, input, hidden, dirs, peep, init, false)
}

const CONFIGS: &str =
    "fp32;fx8;fx16;fx12.9;w=fx6,a=fx8,c=fx16;fx4;fp16;bf16;fp8e4m3;fp8e5m2;e8m10;w=fx8,a=fp16;fx8,cal=p99.5;w=fx8,a=fx8,c=fx16,cal=mse;fp16,cal=mse;w=fx8,a=fx8,c=fx16,wscale=channel;fx6,wscale=channel;w=fx8,a=fp16,wscale=channel";

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Runs every config on every backend (and the scalar evaluator) and compares every layer's
/// states with the oracle, bit for bit.
fn check(model: &Model, seqs: &Sequences, configs: &str) {
    let configs = parse_config_list(configs).unwrap();
    let plans = eval::prepare(model, seqs, "x", &configs).unwrap();
    let want: Vec<_> = plans.iter().map(|p| oracle(model, p, seqs)).collect();
    conform("cpu", &eval::Cpu, model, seqs, &plans, &want);
    // The GPU lanes as this adapter runs them, and on lavapipe as a GPU would.
    for (ctx, how) in common::shared_gpus() {
        let gpu = GpuConfigs { ctx, reduce: false };
        conform(
            &format!("{}{how}", ctx.adapter.name),
            &gpu,
            model,
            seqs,
            &plans,
            &want,
        );
    }
    let scalar = eval::run_cpu_scalar(model, seqs, &plans, true);
    for ((plan, run), want) in plans.iter().zip(&scalar).zip(&want) {
        for (l, ((h, c), got)) in want.iter().zip(run.states.as_ref().unwrap()).enumerate() {
            let what = format!("{} layer {l}", plan.config);
            assert_eq!(bits(h), bits(&got.h), "scalar h: {what}");
            assert_eq!(bits(c), bits(&got.c), "scalar c: {what}");
        }
    }
}

/// One backend through the driver against the oracle's states `want[plan][layer]`.
fn conform<'p, B: Backend<&'p Plan>>(
    name: &str,
    backend: &B,
    model: &Model,
    seqs: &Sequences,
    plans: &'p [Plan],
    want: &[Vec<(Vec<f32>, Vec<f32>)>],
) where
    B::Error: std::fmt::Debug,
{
    let runs = driver::run_configs(backend, model, seqs, plans, true, &mut |_, _| {}).unwrap();
    for ((plan, run), want) in plans.iter().zip(&runs).zip(want) {
        for (l, ((h, c), got)) in want.iter().zip(run.states.as_ref().unwrap()).enumerate() {
            let what = format!(
                "{name}: {} layer {l} (H {:?}, lanes {})",
                plan.config, model.layers[l].hidden_size, seqs.count
            );
            assert_eq!(bits(h), bits(&got.h), "h: {what}");
            assert_eq!(bits(c), bits(&got.c), "c: {what}");
        }
        let last = want.last().unwrap();
        assert_eq!(
            bits(&last.0),
            bits(&run.hidden),
            "{name}: {} hidden",
            plan.config
        );
    }
}

#[test]
fn batched_engine_equals_the_oracle_on_every_format_and_direction() {
    let m = model(
        1,
        5,
        &[3, 33],
        &[Direction::Bidirectional, Direction::Reverse],
        true,
        true,
    );
    for lanes in [1, 7, 65] {
        check(
            &m,
            &common::random_inputs(lanes as u64, lanes, 6, 5, 1.5),
            CONFIGS,
        );
    }
}

/// One config at a time (so the configs leave threads idle) on a small layer with 65 lanes, in
/// a pool of four threads: the CPU engine runs the lanes in blocks through all their steps
/// apart (`driver::lane_block`: 32 + 32 + 1 lanes here), and every block still equals the
/// oracle bit for bit.
#[test]
fn lanes_run_apart_in_blocks_equal_the_oracle() {
    let m = model(
        6,
        5,
        &[3, 33],
        &[Direction::Bidirectional, Direction::Forward],
        true,
        true,
    );
    let seqs = common::random_inputs(11, 65, 6, 5, 1.5);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    pool.install(|| {
        assert_eq!(driver::lane_block(33, 1, 65), 32, "the lanes are not split");
        for config in CONFIGS.split(';') {
            let configs = parse_config_list(config).unwrap();
            let plans = eval::prepare(&m, &seqs, "x", &configs).unwrap();
            let want: Vec<_> = plans.iter().map(|p| oracle(&m, p, &seqs)).collect();
            conform("cpu in blocks", &eval::Cpu, &m, &seqs, &plans, &want);
        }
    });
}

#[test]
fn one_unit_and_a_wide_layer() {
    let m = model(2, 3, &[1], &[Direction::Forward], false, false);
    check(&m, &common::random_inputs(3, 7, 9, 3, 1.0), CONFIGS);
    let wide = model(4, 17, &[1000], &[Direction::Forward], false, true);
    check(
        &wide,
        &common::random_inputs(5, 2, 3, 17, 1.0),
        "fp32;fx8;fx16;bf16",
    );
}

/// Even input and hidden sizes, so on an AMD CPU with AVX512-BF16 the bf16 and fp8 lanes run
/// both products on `vdpbf16ps` pairs (`eval::pairs`); the oracle's bits all the same.
#[test]
fn bf16_pairs_equal_the_oracle() {
    let m = model(
        12,
        16,
        &[32, 8],
        &[Direction::Bidirectional, Direction::Forward],
        true,
        true,
    );
    for lanes in [1, 7, 65] {
        check(
            &m,
            &common::random_inputs(lanes as u64 + 40, lanes, 6, 16, 1.5),
            "bf16;fp8e4m3;fp8e5m2;w=bf16,a=fp8e4m3,c=fp16",
        );
    }
}

#[test]
fn integer_sums_too_long_for_one_i32_chunk_agree() {
    // Codes near full scale in sums of one sign that still land in the activations' sensitive
    // range: every input and W weight 0.0624 (just below 2^-4, so fx16 codes are 32715 and
    // fx12 codes 2044), every R weight 0.0066, 600 inputs and 1000 units. W.x and R.h then
    // overflow an i32 unless the kernels cut them into chunks (fx16 codes split into bytes:
    // 255 products a chunk; fx12 and fx16 x fx8: 511), and wrong chunking shows in the bits.
    let mut m = model(8, 600, &[1000], &[Direction::Forward], false, false);
    let cell = &mut m.layers[0].cells[0];
    cell.w.iter_mut().for_each(|v| *v = 0.0624);
    cell.r.iter_mut().for_each(|v| *v = 0.0066);
    let x = Sequences::new("x", [3, 3, 600], vec![0.0624; 3 * 3 * 600], true).unwrap();
    check(&m, &x, "fx16;fx12;w=fx16,a=fx8");
}

#[test]
fn tiny_values_take_the_flushing_kernel_and_still_agree() {
    // Inputs near 1e-20 make products below the smallest normal f32: the engine must fall
    // back to the kernel that flushes every subnormal result.
    let m = model(6, 8, &[9], &[Direction::Forward], true, false);
    check(
        &m,
        &common::random_inputs(7, 7, 5, 8, 1e-20),
        "fp32;e8m10;bf16",
    );
}

#[test]
fn a_subnormal_product_in_a_tiny_sum_is_flushed_on_every_backend() {
    // One term of a gate sum is 1e-15 x 1e-25 = 1e-40, subnormal, and the other 2^-115, so the
    // sum is small enough (its ulp 2^-138) to keep the 1e-40 unless it is flushed (§5): a
    // kernel that skipped the flush here, such as the GPU's unflushed sums run where their
    // bound does not hold, gives other bits. The cell keeps such tiny values: with gate sums
    // s that small, i = f = o = 1/2, g = tanh(s) = s, c = s/2, h = s/4, all normal.
    // Case "x": the term in W.x (x = [1e-25, 2^-115] every step, R = 0). Case "h0": in R.h at
    // the first step (h0 = [1e-25, 2^-115], x = 0). Case "h": in R.h at a later step: the g
    // rows of W are 4x the unit's own input, so the first step of each direction (x = [1e-25,
    // 2^-115] at t = 0 and at the last t) leaves h = [1e-25, 2^-115], which the next step
    // (x = 0) meets through R; forward, reverse and both directions. Case "edge": close to
    // the GPU's bound, W = [2^-30, 2^-10] and x = [2^-99, 2^-99] (exponent field 28, the bound
    // 153 - 97 = 56): the terms 2^-129 (subnormal) and 2^-109, so a bound off by a factor of
    // two (the exponent read one bit low) would run this sum unflushed.
    let tiny = 2f32.powi(-115);
    let pair = [1e-25, tiny];
    let rows = || (0..8).flat_map(|_| [1e-15f32, 1.0]).collect::<Vec<f32>>();
    let edge = [2f32.powi(-99); 2];
    let cases = [
        ("edge", Direction::Forward),
        ("x", Direction::Forward),
        ("h0", Direction::Forward),
        ("h", Direction::Forward),
        ("h", Direction::Reverse),
        ("h", Direction::Bidirectional),
    ];
    for (case, dir) in cases {
        let mut m = model(31, 2, &[2], &[dir], false, true);
        for cell in &mut m.layers[0].cells {
            (cell.w, cell.r) = match case {
                "x" => (rows(), vec![0.0; 16]),
                "edge" => ([2f32.powi(-30), 2f32.powi(-10)].repeat(8), vec![0.0; 16]),
                "h0" => (vec![0.0; 16], rows()),
                // W's g rows (4 and 5): 4 times input j for unit j.
                _ => {
                    let mut w = vec![0.0; 16];
                    (w[4 * 2], w[5 * 2 + 1]) = (4.0, 4.0);
                    (w, rows())
                }
            };
            cell.b_ih.fill(0.0);
            cell.b_hh.fill(0.0);
            cell.c0 = Some(vec![0.0; 2]);
            cell.h0 = Some(if case == "h0" {
                pair.to_vec()
            } else {
                vec![0.0; 2]
            });
        }
        let steps = 3;
        let x: Vec<f32> = (0..2 * steps)
            .flat_map(|i| match (case, i % steps) {
                ("edge", _) => edge,
                ("x", _) | ("h", 0) => pair,
                ("h", t) if t == steps - 1 => pair,
                _ => [0.0; 2],
            })
            .collect();
        let seqs = Sequences::new("x", [2, steps, 2], x, true).unwrap();
        check(&m, &seqs, "fp32");
    }
}

#[test]
fn per_channel_weights_differ_by_row_agree_everywhere_and_cut_the_error() {
    // Rows of W and R scaled by 2^-(r mod 6): per-row formats really differ, so the per-row
    // shifts of §7 are exercised on the CPU engine, the scalar evaluator, the oracle and the
    // GPU lanes. And per-channel ranges keep more fraction bits for the small rows, so the
    // error against the float64 reference must drop.
    let mut m = model(21, 12, &[10], &[Direction::Bidirectional], true, true);
    for cell in &mut m.layers[0].cells {
        for (r, row) in cell.w.chunks_mut(12).enumerate() {
            row.iter_mut()
                .for_each(|v| *v *= 0.5f32.powi((r % 6) as i32));
        }
        for (r, row) in cell.r.chunks_mut(10).enumerate() {
            row.iter_mut()
                .for_each(|v| *v *= 0.5f32.powi((r % 6) as i32));
        }
    }
    let seqs = common::random_inputs(22, 9, 12, 12, 1.0);
    let both = "w=fx6,a=fx12,c=fx16;w=fx6,a=fx12,c=fx16,wscale=channel";
    check(&m, &seqs, both);
    let configs = parse_config_list(both).unwrap();
    let plans = eval::prepare(&m, &seqs, "x", &configs).unwrap();
    let rows = plans[1].layers[0][0].rows.as_ref().unwrap();
    let mut fracs: Vec<i32> = rows.w.iter().map(|f| f.frac().unwrap()).collect();
    fracs.dedup();
    assert!(fracs.len() > 3, "row formats should differ: {fracs:?}");
    let runs = eval::run_cpu(&m, &seqs, &plans, true);
    let reference = eval::reference::evaluate(&m, &seqs);
    let err = |h: &[f32]| {
        h.iter()
            .zip(&reference.hidden)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
    };
    let (tensor, channel) = (err(&runs[0].hidden), err(&runs[1].hidden));
    assert!(
        channel < 0.8 * tensor,
        "per-channel {channel} vs per-tensor {tensor}"
    );
    if let Some(ctx) = common::shared_gpu() {
        let gpu = ctx.run(&m, &seqs, &plans, true, &mut |_, _| {}).unwrap();
        for (a, b) in runs.iter().zip(&gpu) {
            assert_eq!(
                bits(&a.hidden),
                bits(&b.hidden),
                "{} on {}",
                a.config,
                ctx.adapter
            );
        }
    }
}

/// The lane-wise `abs_range` (weight packing, flush decisions) gives the plain fold's
/// (smallest non-zero |v|, largest |v|) on every length, with zeros, -0, subnormals and NaN.
#[test]
fn abs_range_equals_the_plain_fold() {
    let plain = |v: &[f32]| {
        v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
            let a = x.abs() as f64;
            (if a > 0.0 { lo.min(a) } else { lo }, hi.max(a))
        })
    };
    let mut rng = SplitMix64::new(3);
    for len in 0..80 {
        let v: Vec<f32> = (0..len)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => -0.0,
                2 => f32::from_bits(1 + i as u32),
                3 if len % 5 == 0 => f32::NAN,
                _ => rng.normal() * 4.0,
            })
            .collect();
        let got = eval::gemm::abs_range(&v);
        let want = plain(&v);
        assert_eq!(
            (got.0.to_bits(), got.1.to_bits()),
            (want.0.to_bits(), want.1.to_bits()),
            "len {len}"
        );
        let w: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        assert_eq!(eval::gemm::abs_range(&w), want, "f64, len {len}");
    }
}
