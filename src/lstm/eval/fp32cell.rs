//! The element-wise step of fp32 lanes, eight lanes at a time: the same operations as
//! [`super::cell::float_unit`] with every format fp32 (each rounding a flush of subnormals,
//! the activations computed by [`crate::format::detmath`]'s exp / recip), in the same order,
//! so the bits are the scalar code's (IEEE add, subtract, multiply and round-to-integer round
//! identically in a vector register; nothing is fused).
//!
//! Used by the batched engine for fp32 configs; other float formats go through the scalar unit. AVX2 at
//! run time where present; the scalar unit elsewhere.

/// Whether the AVX2 unit can run here.
pub fn available() -> bool {
    crate::cpu::avx2()
}

/// One unit's operands for `lanes` lanes (a multiple of 8): the four gate sums before the
/// bias (`acc[g]`, each `lanes` long), the bias and peepholes of the unit, the previous cell.
pub struct Unit<'a> {
    pub acc: [&'a [f32]; 4],
    pub bias: [f32; 4],
    /// Peepholes (input, forget, output gates), when the cell has them.
    pub peep: Option<[f32; 3]>,
    pub c_prev: &'a [f32],
}

/// The new h and c of lanes `0..n` of one unit (padding lanes up to `h.len()` set to 0).
///
/// # Safety
/// The CPU must have AVX2 ([`available`]); every slice must hold `h.len()` lanes, a multiple
/// of 8, and `n <= h.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn unit_avx2(u: &Unit, n: usize, h: &mut [f32], c: &mut [f32]) {
    use std::arch::x86_64::*;
    let lanes = h.len();
    debug_assert!(lanes.is_multiple_of(8) && n <= lanes && c.len() == lanes);
    debug_assert!(u.acc.iter().all(|a| a.len() >= lanes) && u.c_prev.len() >= lanes);
    let splat = |v: f32| _mm256_set1_ps(v);
    let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for l0 in (0..lanes).step_by(8) {
        if l0 >= n {
            _mm256_storeu_ps(h.as_mut_ptr().add(l0), _mm256_setzero_ps());
            _mm256_storeu_ps(c.as_mut_ptr().add(l0), _mm256_setzero_ps());
            continue;
        }
        let load = |s: &[f32]| _mm256_loadu_ps(s.as_ptr().add(l0));
        let sum = |g: usize| add(load(u.acc[g]), splat(u.bias[g]));
        let (mut ai, mut af, ag, mut ao) = (sum(0), sum(1), sum(2), sum(3));
        let cp = load(u.c_prev);
        if let Some(pp) = u.peep {
            ai = add(ai, mul(splat(pp[0]), cp));
            af = add(af, mul(splat(pp[1]), cp));
        }
        let ig = ftz(sigmoid(ftz(ai)));
        let fg = ftz(sigmoid(ftz(af)));
        let gg = ftz(tanh(ftz(ag)));
        let cn = ftz(add(mul(fg, cp), mul(ig, gg)));
        if let Some(pp) = u.peep {
            ao = add(ao, mul(splat(pp[2]), cn));
        }
        let og = ftz(sigmoid(ftz(ao)));
        let hn = ftz(mul(og, ftz(tanh(cn))));
        // Lanes at or past n: padding, kept at 0.
        let live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
            _mm256_set1_epi32((n - l0) as i32),
            lane_ids,
        ));
        let hn = _mm256_and_ps(hn, live);
        let cn = _mm256_and_ps(cn, live);
        _mm256_storeu_ps(h.as_mut_ptr().add(l0), hn);
        _mm256_storeu_ps(c.as_mut_ptr().add(l0), cn);
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::__m256;

/// NUMERICS.md §5: |v| below the smallest normal (subnormals, ±0) becomes +0; NaN stays.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn ftz(v: __m256) -> __m256 {
    use std::arch::x86_64::*;
    let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(abs, _mm256_set1_ps(f32::MIN_POSITIVE));
    _mm256_andnot_ps(tiny, v)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add(a: __m256, b: __m256) -> __m256 {
    ftz(std::arch::x86_64::_mm256_add_ps(a, b))
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn mul(a: __m256, b: __m256) -> __m256 {
    ftz(std::arch::x86_64::_mm256_mul_ps(a, b))
}

/// `x.clamp(lo, hi)` (NaN stays NaN): `max_ps(a, b)` returns b when either is NaN.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn clamp(x: __m256, lo: f32, hi: f32) -> __m256 {
    use std::arch::x86_64::*;
    _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), x))
}

/// [`crate::format::detmath::exp`], operation for operation.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp(x: __m256) -> __m256 {
    use std::arch::x86_64::*;
    let s = _mm256_set1_ps;
    let x = clamp(x, -87.0, 88.0);
    let k = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        s(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_sub_ps(
        _mm256_sub_ps(x, _mm256_mul_ps(k, s(0.693_359_4))),
        _mm256_mul_ps(k, s(-2.121_944_4e-4)),
    );
    let mut p = s(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = _mm256_add_ps(_mm256_mul_ps(p, r), s(c));
    }
    // `k as i32` saturates and maps NaN to 0; k is an integer in [-126, 127] or NaN here.
    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(k, k);
    let ki = _mm256_cvtps_epi32(_mm256_andnot_ps(nan, k));
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(ki, _mm256_set1_epi32(127)));
    _mm256_mul_ps(p, _mm256_castsi256_ps(scale))
}

/// [`crate::format::detmath::recip`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn recip(d: __m256) -> __m256 {
    use std::arch::x86_64::*;
    let mut y = _mm256_castsi256_ps(_mm256_sub_epi32(
        _mm256_set1_epi32(0x7ef3_11c3),
        _mm256_castps_si256(d),
    ));
    for _ in 0..4 {
        y = _mm256_mul_ps(y, _mm256_sub_ps(_mm256_set1_ps(2.0), _mm256_mul_ps(d, y)));
    }
    y
}

/// [`crate::format::detmath::sigmoid`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sigmoid(x: __m256) -> __m256 {
    use std::arch::x86_64::*;
    let neg = _mm256_xor_ps(clamp(x, -87.0, 87.0), _mm256_set1_ps(-0.0));
    recip(_mm256_add_ps(_mm256_set1_ps(1.0), exp(neg)))
}

/// [`crate::format::detmath::tanh`]: both branches, selected per lane.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tanh(x: __m256) -> __m256 {
    use std::arch::x86_64::*;
    let s = _mm256_set1_ps;
    let a = _mm256_andnot_ps(s(-0.0), x);
    let a2 = _mm256_mul_ps(a, a);
    let inner = _mm256_mul_ps(
        a2,
        _mm256_add_ps(
            s(-1.0 / 3.0),
            _mm256_mul_ps(
                a2,
                _mm256_add_ps(s(2.0 / 15.0), _mm256_mul_ps(a2, s(-17.0 / 315.0))),
            ),
        ),
    );
    let small = _mm256_add_ps(a, _mm256_mul_ps(a, inner));
    // f32::min returns the other operand for NaN: `min_ps(v, 87)` does too.
    let e = exp(_mm256_min_ps(_mm256_mul_ps(s(2.0), a), s(87.0)));
    let large = _mm256_sub_ps(
        s(1.0),
        _mm256_mul_ps(s(2.0), recip(_mm256_add_ps(s(1.0), e))),
    );
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, s(0.0625));
    let y = _mm256_blendv_ps(large, small, is_small);
    let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, s(0.0));
    _mm256_xor_ps(y, _mm256_and_ps(negative, s(-0.0)))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
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
        while !vals.len().is_multiple_of(8) {
            vals.push(1.0);
        }
        use std::arch::x86_64::*;
        for chunk in vals.chunks_exact(8) {
            let (mut e, mut sg, mut th) = ([0f32; 8], [0f32; 8], [0f32; 8]);
            // SAFETY: AVX2 checked by `available`.
            unsafe {
                let x = _mm256_loadu_ps(chunk.as_ptr());
                _mm256_storeu_ps(e.as_mut_ptr(), super::exp(x));
                _mm256_storeu_ps(sg.as_mut_ptr(), super::sigmoid(x));
                _mm256_storeu_ps(th.as_mut_ptr(), super::tanh(x));
            }
            for k in 0..8 {
                let x = chunk[k];
                let same =
                    |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                assert!(same(e[k], detmath::exp(x)), "exp({x:e})");
                assert!(same(sg[k], detmath::sigmoid(x)), "sigmoid({x:e})");
                assert!(same(th[k], detmath::tanh(x)), "tanh({x:e})");
            }
        }
    }
}
