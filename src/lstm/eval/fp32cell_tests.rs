//! [`super`]'s vector activations and unit, each width the machine runs, against the scalar
//! functions of `format::detmath` and the scalar unit written out.

use super::{Unit, Vector};
use crate::format::detmath;

/// Every activation, lane by lane, equals the scalar function on awkward values.
#[test]
fn vector_activations_equal_the_scalar_ones() {
    if !super::available() {
        return;
    }
    let mut vals: Vec<f32> = vec![
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        f32::MIN_POSITIVE,
        0.0625,
        -0.0625,
        0.062_499_996,
        86.9,
        87.0,
        87.5,
        88.0,
        100.0,
        -100.0,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let bits = (s >> 32) as u32;
        let v = f32::from_bits(bits);
        // Half of them from the whole f32 range, half from [-20, 20].
        vals.push(if s & 1 == 0 {
            v
        } else {
            (bits as f32 / u32::MAX as f32 - 0.5) * 40.0
        });
    }
    while !vals.len().is_multiple_of(16) {
        vals.push(1.0);
    }
    use std::arch::x86_64::{__m256, __m512};
    // SAFETY: AVX2 checked by `available`, AVX-512F by `avx512`.
    unsafe {
        each_lane::<__m256>(&vals);
        if super::avx512() {
            each_lane::<__m512>(&vals);
        }
    }
}

/// exp, sigmoid and tanh of `vals` in `V`'s lanes against the scalar functions.
unsafe fn each_lane<V: Vector>(vals: &[f32]) {
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    for chunk in vals.chunks_exact(V::LANES) {
        let x = V::load(chunk.as_ptr());
        let mut got = [[0f32; 16]; 3];
        super::exp(x).store(got[0].as_mut_ptr());
        super::sigmoid(x).store(got[1].as_mut_ptr());
        super::tanh(x).store(got[2].as_mut_ptr());
        for (k, &x) in chunk.iter().enumerate() {
            let w = V::LANES;
            assert!(same(got[0][k], detmath::exp(x)), "exp({x:e}) x{w}");
            assert!(same(got[1][k], detmath::sigmoid(x)), "sigmoid({x:e}) x{w}");
            assert!(same(got[2][k], detmath::tanh(x)), "tanh({x:e}) x{w}");
        }
    }
}

/// The unit in both widths against the scalar operations of `cell::float_unit` with every
/// format fp32, written out here: random sums, peepholes or not, and live-lane counts
/// that end inside a vector (padding lanes must come out +0).
#[test]
fn both_widths_of_the_unit_equal_the_scalar_unit() {
    if !super::available() {
        return;
    }
    use detmath::{ftz, sigmoid, tanh};
    let lanes = 48;
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 12.0
    };
    for case in 0..40 {
        let acc: Vec<Vec<f32>> = (0..4)
            .map(|_| (0..lanes).map(|_| next()).collect())
            .collect();
        let c_prev: Vec<f32> = (0..lanes).map(|_| next()).collect();
        let bias = [next(), next(), next(), next()];
        let peep = (case % 2 == 0).then(|| [next() / 8.0, next() / 8.0, next() / 8.0]);
        let n = [48, 47, 33, 17, 16, 9, 1][case % 7];
        let u = Unit {
            acc: [&acc[0][..], &acc[1][..], &acc[2][..], &acc[3][..]],
            bias,
            peep,
            c_prev: &c_prev,
        };
        let (add, mul) = (|a: f32, b: f32| ftz(a + b), |a: f32, b: f32| ftz(a * b));
        let mut want = (vec![0.0f32; lanes], vec![0.0f32; lanes]);
        for l in 0..n {
            let sum = |g: usize| add(acc[g][l], bias[g]);
            let (mut ai, mut af, ag, mut ao) = (sum(0), sum(1), sum(2), sum(3));
            let cp = c_prev[l];
            if let Some(p) = peep {
                (ai, af) = (add(ai, mul(p[0], cp)), add(af, mul(p[1], cp)));
            }
            let (ig, fg) = (ftz(sigmoid(ftz(ai))), ftz(sigmoid(ftz(af))));
            let cn = add(mul(fg, cp), mul(ig, ftz(tanh(ftz(ag)))));
            if let Some(p) = peep {
                ao = add(ao, mul(p[2], cn));
            }
            want.0[l] = mul(ftz(sigmoid(ftz(ao))), ftz(tanh(cn)));
            want.1[l] = cn;
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut got = (vec![f32::NAN; lanes], vec![f32::NAN; lanes]);
        // SAFETY: AVX2 checked; 48 lanes, a multiple of 16.
        unsafe { super::unit_avx2(&u, n, &mut got.0, &mut got.1) };
        assert_eq!(bits(&got.0), bits(&want.0), "h x8, case {case}");
        assert_eq!(bits(&got.1), bits(&want.1), "c x8, case {case}");
        if super::avx512() {
            let mut got = (vec![f32::NAN; lanes], vec![f32::NAN; lanes]);
            // SAFETY: AVX-512F checked.
            unsafe { super::unit_avx512(&u, n, &mut got.0, &mut got.1) };
            assert_eq!(bits(&got.0), bits(&want.0), "h x16, case {case}");
            assert_eq!(bits(&got.1), bits(&want.1), "c x16, case {case}");
        }
    }
}
