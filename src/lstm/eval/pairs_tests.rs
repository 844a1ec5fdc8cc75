//! Tests of [`super`]: the pair kernel against the scalar loop of NUMERICS.md §6 (a rounded
//! multiply and a rounded add a term, k in order), on bf16- and fp8-like operands, shapes that
//! do not divide the tiles and strided B and C; what may not be packed is refused; the engine
//! takes the kernel for bf16 and fp8 plans. They run wherever the instruction does ([`runs`]),
//! AMD or not.

use super::*;
use proptest::prelude::*;

/// The oracle: C + A·B, k in order, `s = s + a·b` in f32 (Rust never fuses it).
fn scalar(a: &[f32], rows: usize, k: usize, b: &[f32], cols: usize, c0: &[f32]) -> Vec<f32> {
    let mut c = c0.to_vec();
    for r in 0..rows {
        for j in 0..cols {
            let mut s = c[r * cols + j];
            for kk in 0..k {
                s += a[r * k + kk] * b[kk * cols + j];
            }
            c[r * cols + j] = s;
        }
    }
    c
}

/// A random value of at most `bits` significant bits, 2^-20..2^8 in magnitude, either sign,
/// or zero one time in eight.
fn narrow(s: &mut u64, bits: u32) -> f32 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    if (*s).is_multiple_of(8) {
        return 0.0;
    }
    let exp = (*s >> 8) % 29;
    let sig = (*s >> 20) as u32 & ((1 << (bits - 1)) - 1);
    let sign = if (*s >> 40) & 1 == 1 { -1.0 } else { 1.0 };
    sign * (1.0 + sig as f32 / (1 << (bits - 1)) as f32) * 2f32.powi(exp as i32 - 20)
}

/// One product of `rows x k` by `k x cols` on the pair kernel, B and C with row strides
/// `cols + pad` (the recurrent product's C is a column block of the input products).
fn check(rows: usize, k: usize, cols: usize, bits: (u32, u32), from_zero: bool, seed: u64) {
    let mut s = seed | 1;
    let pad = (seed % 3) as usize * COL_ALIGN;
    let ld = cols + pad;
    let a: Vec<f32> = (0..rows * k).map(|_| narrow(&mut s, bits.0)).collect();
    let b: Vec<f32> = (0..k * ld).map(|_| narrow(&mut s, bits.1)).collect();
    let c0: Vec<f32> = (0..rows * ld)
        .map(|_| if from_zero { 0.0 } else { narrow(&mut s, 24) })
        .collect();
    let (sa, sb) = (super::super::fused::span(&a), super::super::fused::span(&b));
    let Some(packed) = PackedPairs::new_here(&a, rows, k, &sa) else {
        assert!(!runs(), "{rows}x{k}: fits bf16 but was not packed");
        return;
    };
    assert!(fits(&sa, &sb), "{rows}x{k}x{cols} {bits:?}");
    // The scalar loop on the first `cols` columns of each row of B and C.
    let cut = |m: &[f32], n: usize| -> Vec<f32> {
        m.chunks(ld)
            .take(n)
            .flat_map(|row| row[..cols].to_vec())
            .collect()
    };
    let want = scalar(&a, rows, k, &cut(&b, k), cols, &cut(&c0, rows));
    let mut got: Vec<MaybeUninit<f32>> = c0
        .iter()
        .map(|&v| MaybeUninit::new(if from_zero { f32::NAN } else { v }))
        .collect();
    product(&packed, &b, ld, cols, &mut got, ld, from_zero);
    // SAFETY: initialised above, and the kernel writes only initialised values.
    let got: Vec<f32> = got.iter().map(|v| unsafe { v.assume_init() }).collect();
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let tag = format!("{rows}x{k}x{cols}+{pad} {bits:?} from_zero {from_zero}");
    assert_eq!(bits_of(&cut(&got, rows)), bits_of(&want), "{tag}");
    // Columns past `cols` are left as they were.
    let past =
        |m: &[f32]| -> Vec<u32> { m.chunks(ld).flat_map(|row| bits_of(&row[cols..])).collect() };
    let c_start: Vec<f32> = c0
        .iter()
        .map(|&v| if from_zero { f32::NAN } else { v })
        .collect();
    assert_eq!(past(&got), past(&c_start), "{tag}: past the columns");
    if from_zero {
        let new = product_new(&packed, &cut(&b, k), cols, cols);
        assert_eq!(bits_of(&new), bits_of(&want), "{tag}: product_new");
    }
}

/// Rows 1, 23, 25, 97 (around the tile and the task), k 2 and past a k block, one and three
/// column strips.
#[test]
fn awkward_shapes_equal_the_scalar_loop() {
    for rows in [1, 23, 25, 97] {
        for k in [2, 6, 258, 300] {
            for cols in [16, 48] {
                check(rows, k, cols, (8, 8), false, (rows * k * cols) as u64);
                check(rows, k, cols, (4, 4), true, (rows + k + cols) as u64);
            }
        }
    }
}

/// What the kernel cannot run: odd k, a value of 9 significant bits, a subnormal, a NaN;
/// operands B that do not fit bf16 are refused by [`fits`], and so are bf16 operands whose
/// products could be subnormal or overflow (not [`Mode::Fused`]).
#[test]
fn what_does_not_fit_is_refused() {
    let span = |v: &[f32]| super::super::fused::span(v);
    let ok = [1.0f32, 0.5, -3.0, 0.0];
    assert!(PackedPairs::new_here(&ok[..3], 1, 3, &span(&ok[..3])).is_none());
    for bad in [1.0 + 2f32.powi(-8), f32::MIN_POSITIVE / 2.0, f32::NAN] {
        let v = [1.0, bad];
        assert!(
            PackedPairs::new_here(&v, 1, 2, &span(&v)).is_none(),
            "{bad:e}"
        );
        assert!(!fits(&span(&ok), &span(&v)), "{bad:e}");
    }
    // bf16 values all, but 2^-60 x 2^-60 is below 2^-101, and 2^70 x 2^70 overflows.
    let (tiny, huge) = ([2f32.powi(-60), 1.0], [2f32.powi(70), 1.0]);
    assert!(!fits(&span(&tiny), &span(&tiny)));
    assert!(!fits(&span(&huge), &span(&huge)));
    assert!(fits(&span(&ok), &span(&ok)));
    if runs() {
        assert!(PackedPairs::new_here(&ok, 2, 2, &span(&ok)).is_some());
    }
}

/// The engine takes the pair kernel for bf16 and fp8 plans of even sizes where it is
/// [`available`] (the fallback gives the same bits, so only this shows the fast path is used):
/// both products of every cell of `builtin:tiny` (16 inputs, 2 x 32 units) ran on pairs.
#[test]
fn the_engine_runs_bf16_and_fp8_plans_on_pairs() {
    if !available() {
        return;
    }
    use std::sync::atomic::Ordering;
    let model = crate::lstm::builtin::build("tiny").unwrap();
    // Inputs of ordinary size: with values near 2^-20 the states reach 1e-38, products can
    // be subnormal and the engine rightly takes the flushing kernel.
    let data: Vec<f32> = (0..3 * 5 * 16).map(|i| (i as f32 * 0.37).sin()).collect();
    let seqs = crate::lstm::npy::Sequences::new("x", [3, 5, 16], data, true).unwrap();
    let configs = crate::format::parse_config_list("bf16;fp8e4m3").unwrap();
    let plans = super::super::prepare(&model, &seqs, "x", &configs).unwrap();
    super::super::run_cpu(&model, &seqs, &plans, false);
    for plan in &plans {
        for cell in plan.layers.iter().flatten() {
            let used = |p: Option<&PackedPairs>| p.map_or(0, |p| p.uses.load(Ordering::Relaxed));
            assert!(used(cell.w_pairs()) >= 1, "{:?}: W", plan.config);
            assert!(
                used(cell.r_pairs()) >= 5,
                "{:?}: R, every step",
                plan.config
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn equals_the_scalar_loop(rows in 1usize..120, pairs in 1usize..300, strips in 1usize..3,
                              a_bits in 1u32..=8, b_bits in 1u32..=8, from_zero in any::<bool>(),
                              seed in any::<u64>()) {
        check(rows, 2 * pairs, strips * COL_ALIGN, (a_bits, b_bits), from_zero, seed);
    }
}

/// A CPU with the instruction passes the probe: a failure here means its `vdpbf16ps` does
/// not round like the scalar loop (then those lanes run the f32 kernel; worth knowing).
#[cfg(target_arch = "x86_64")]
#[test]
fn the_probe_passes_where_the_instruction_exists() {
    if is_x86_feature_detected!("avx512bf16") && !crate::cpu::portable() {
        assert!(runs());
        assert_eq!(available(), amd());
    }
}
