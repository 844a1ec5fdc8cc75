//! Tests of [`super`]: the pair kernel against the scalar loop of NUMERICS.md §6 (a rounded
//! multiply and a rounded add a term, k in order), on bf16- and fp8-like operands and shapes
//! that do not divide the tiles; what may not be packed is refused.

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

fn check(rows: usize, k: usize, cols: usize, bits: (u32, u32), from_zero: bool, seed: u64) {
    let mut s = seed | 1;
    let a: Vec<f32> = (0..rows * k).map(|_| narrow(&mut s, bits.0)).collect();
    let b: Vec<f32> = (0..k * cols).map(|_| narrow(&mut s, bits.1)).collect();
    let c0: Vec<f32> = (0..rows * cols)
        .map(|_| if from_zero { 0.0 } else { narrow(&mut s, 24) })
        .collect();
    let (sa, sb) = (super::super::fused::span(&a), super::super::fused::span(&b));
    let Some(packed) = PackedPairs::new(&a, rows, k, &sa) else {
        assert!(!available(), "{rows}x{k}: fits bf16 but was not packed");
        return;
    };
    assert!(fits(&sa, &sb), "{rows}x{k}x{cols} {bits:?}");
    let want = scalar(&a, rows, k, &b, cols, &c0);
    let mut got: Vec<MaybeUninit<f32>> = c0
        .iter()
        .map(|&v| MaybeUninit::new(if from_zero { f32::NAN } else { v }))
        .collect();
    product(&packed, &b, cols, cols, &mut got, cols, from_zero);
    // SAFETY: initialised above, and the kernel writes only initialised values.
    let got: Vec<f32> = got.iter().map(|v| unsafe { v.assume_init() }).collect();
    let same = want
        .iter()
        .zip(&got)
        .all(|(x, y)| x.to_bits() == y.to_bits());
    assert!(same, "{rows}x{k}x{cols} {bits:?} from_zero {from_zero}");
    if from_zero {
        assert_eq!(product_new(&packed, &b, cols, cols).len(), rows * cols);
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
/// operands B that do not fit bf16 are refused by [`fits`].
#[test]
fn what_does_not_fit_is_refused() {
    let span = |v: &[f32]| super::super::fused::span(v);
    let ok = [1.0f32, 0.5, -3.0, 0.0];
    assert!(PackedPairs::new(&ok[..3], 1, 3, &span(&ok[..3])).is_none());
    for bad in [1.0 + 2f32.powi(-8), f32::MIN_POSITIVE / 2.0, f32::NAN] {
        let v = [1.0, bad];
        assert!(PackedPairs::new(&v, 1, 2, &span(&v)).is_none(), "{bad:e}");
        assert!(!fits(&span(&ok), &span(&v)), "{bad:e}");
    }
    if available() {
        assert!(PackedPairs::new(&ok, 2, 2, &span(&ok)).is_some());
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

/// An AMD CPU with the instruction passes the probe: a failure here means its `vdpbf16ps`
/// does not round like the scalar loop (then those lanes run the f32 kernel; worth knowing).
#[cfg(target_arch = "x86_64")]
#[test]
fn the_probe_passes_where_the_instruction_exists() {
    if is_x86_feature_detected!("avx512bf16") && amd() && !crate::cpu::portable() {
        assert!(available());
    }
}
