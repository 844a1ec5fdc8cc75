//! [`super::narrowcell`]'s loop eight lanes at a time in AVX2, for machines without AVX-512:
//! [`super::narrowcell_avx512`] translated line for line. `FloatFormat::round` and `encode`
//! (both branch-free on the value) as the same integer and float operations on vectors, the
//! activation tables read by `vgatherdps`; the AVX-512 masks become compare results, masked
//! moves `and`/`andnot`, masked blends `blendv`. Full groups of eight lanes run here, the last
//! `n % 8` lanes in the scalar loop: every lane computes exactly what the scalar functions
//! compute, so the bits are theirs either way (`narrowcell::tests` checks it). No FMA: every
//! multiply and add is rounded on its own, as in the scalar code.

use super::narrowcell::{lanes, Narrow, Unit};
use crate::format::float::pow2f;
use crate::format::FloatFormat;
use std::arch::x86_64::*;

/// `FloatFormat::round`'s constants, splatted.
#[derive(Clone, Copy)]
struct Round {
    drop: __m256i,
    half: __m256i,
    lsb_on: __m256i,
    keep: __m256i,
    quantum_shift: __m256,
    min_normal: __m256i,
    max: __m256,
}

/// `FloatFormat::encode`'s constants, splatted.
#[derive(Clone, Copy)]
struct Encode {
    sign_shift: __m128i,
    m: __m128i,
    frac_shift: __m128i,
    bias: __m256i,
    emin: __m256i,
    scale: __m256,
}

#[target_feature(enable = "avx2")]
fn round_consts(f: FloatFormat) -> Round {
    let drop = 23 - f.man_bits;
    let (half, lsb_on) = if drop == 0 {
        (0, 0)
    } else {
        ((1u32 << (drop - 1)) - 1, 1)
    };
    let emin = f.emin();
    Round {
        drop: _mm256_set1_epi32(drop as i32),
        half: _mm256_set1_epi32(half as i32),
        lsb_on: _mm256_set1_epi32(lsb_on),
        keep: _mm256_set1_epi32(!((1u32 << drop) - 1) as i32),
        quantum_shift: _mm256_set1_ps(pow2f((emin - f.man_bits as i32 + 23).clamp(-126, 127))),
        min_normal: _mm256_set1_epi32((((emin.max(-126) + 127) as u32) << 23) as i32),
        max: _mm256_set1_ps(f.max_f32()),
    }
}

#[target_feature(enable = "avx2")]
fn encode_consts(f: FloatFormat) -> Encode {
    let m = f.man_bits;
    Encode {
        sign_shift: _mm_cvtsi32_si128((f.exp_bits + m) as i32),
        m: _mm_cvtsi32_si128(m as i32),
        frac_shift: _mm_cvtsi32_si128((23 - m) as i32),
        bias: _mm256_set1_epi32(f.bias()),
        emin: _mm256_set1_epi32(f.emin()),
        scale: _mm256_set1_ps(pow2f((m as i32 - f.emin()).min(127))),
    }
}

/// `FloatFormat::round` of 8 lanes. The integer compares are signed, which is right: `a`
/// (|x|'s bits) and every constant it meets are below 2^31.
#[inline]
#[target_feature(enable = "avx2")]
fn round(k: &Round, x: __m256) -> __m256 {
    let bits = _mm256_castps_si256(x);
    let a = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fff_ffff));
    let lsb = _mm256_and_si256(_mm256_srlv_epi32(a, k.drop), k.lsb_on);
    let sum = _mm256_add_epi32(_mm256_add_epi32(a, k.half), lsb);
    let normal = _mm256_castsi256_ps(_mm256_and_si256(sum, k.keep));
    let abs = _mm256_castsi256_ps(a);
    let below = _mm256_sub_ps(_mm256_add_ps(abs, k.quantum_shift), k.quantum_shift);
    let is_below = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k.min_normal, a));
    let v = _mm256_blendv_ps(normal, below, is_below);
    // `f32::min(v, max)`: max when v is NaN, as `vminps` gives its second operand (v is NaN
    // only where x is, and the last blend gives those lanes x back).
    let v = _mm256_min_ps(v, k.max);
    // a >= 0x7f80_0000: infinities (and NaN) saturate.
    let inf_or_nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f7f_ffff));
    let v = _mm256_blendv_ps(v, k.max, _mm256_castsi256_ps(inf_or_nan));
    let zero = _mm256_or_ps(
        _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(0x0080_0000), a)),
        _mm256_cmp_ps::<_CMP_EQ_OQ>(v, _mm256_setzero_ps()),
    );
    let sign = _mm256_and_si256(bits, _mm256_set1_epi32(i32::MIN));
    let signed = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(v), sign));
    let v = _mm256_andnot_ps(zero, signed);
    let nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f80_0000));
    _mm256_blendv_ps(v, x, _mm256_castsi256_ps(nan))
}

/// `FloatFormat::encode` of 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn encode(k: &Encode, x: __m256) -> __m256i {
    let bits = _mm256_castps_si256(x);
    let a = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fff_ffff));
    let is_zero = _mm256_cmpeq_epi32(a, _mm256_setzero_si256());
    let sign = _mm256_andnot_si256(
        is_zero,
        _mm256_sll_epi32(_mm256_srli_epi32::<31>(bits), k.sign_shift),
    );
    let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(a), _mm256_set1_epi32(127));
    let normal = _mm256_or_si256(
        _mm256_sll_epi32(_mm256_add_epi32(e, k.bias), k.m),
        _mm256_srl_epi32(
            _mm256_and_si256(a, _mm256_set1_epi32(0x7f_ffff)),
            k.frac_shift,
        ),
    );
    // The scalar `as u32` (AVX-512's `vcvttps2udq`) through the signed `vcvttps2dq`: the same
    // wherever the result is kept. There e < emin, so |x| < 2^emin and the product is below
    // 2^(m - emin) * 2^emin = 2^m <= 2^23: non-negative and far inside i32, where both truncate
    // alike. Elsewhere (normal codes, infinities, NaN) the lane is dropped by the blend below.
    let subnormal = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(a), k.scale));
    let is_subnormal = _mm256_cmpgt_epi32(k.emin, e);
    _mm256_or_si256(sign, _mm256_blendv_epi8(normal, subnormal, is_subnormal))
}

/// `cell::add` / `cell::mul`'s flush of subnormal results (NaN is kept: the ordered compare
/// is false for it, as `abs() < MIN_POSITIVE` is).
#[inline]
#[target_feature(enable = "avx2")]
fn ftz(v: __m256) -> __m256 {
    let abs = _mm256_castsi256_ps(_mm256_and_si256(
        _mm256_castps_si256(v),
        _mm256_set1_epi32(0x7fff_ffff),
    ));
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(abs, _mm256_set1_ps(f32::MIN_POSITIVE));
    _mm256_andnot_ps(tiny, v)
}

/// A table's entries at the codes of `v` (masked to the table, a power of two long).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lookup(k: &Encode, values: &[f32], v: __m256) -> __m256 {
    let i = _mm256_and_si256(encode(k, v), _mm256_set1_epi32(values.len() as i32 - 1));
    // SAFETY: every index is below `values.len()`.
    unsafe { _mm256_i32gather_ps::<4>(values.as_ptr(), i) }
}

/// `narrowcell::lanes` eight lanes at a time; the last `n % 8` lanes by `lanes` itself.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn unit_avx2(nw: &Narrow, u: &Unit, h: &mut [f32], c: &mut [f32]) {
    let n = h.len().min(c.len());
    assert!(u.acc.iter().all(|a| a.len() >= n) && u.c_prev.len() >= n);
    let (pre, cf, hf) = (round_consts(nw.pre), round_consts(nw.c), round_consts(nw.h));
    let (sig_in, tpre_in, tc_in) = (
        encode_consts(nw.sigmoid.input),
        encode_consts(nw.tanh_pre.input),
        encode_consts(nw.tanh_c.input),
    );
    let bias = u.bias.map(|b| _mm256_set1_ps(b));
    let full = n - n % 8;
    for i in (0..full).step_by(8) {
        // SAFETY (loads and stores): lanes i..i + 8 are below `full` <= n, inside every
        // slice (checked above).
        let load = |s: &[f32]| unsafe { _mm256_loadu_ps(s.as_ptr().add(i)) };
        let [ai, af, ag, ao] = [0, 1, 2, 3].map(|g| ftz(_mm256_add_ps(load(u.acc[g]), bias[g])));
        let ig = lookup(&sig_in, nw.sigmoid.values, round(&pre, ai));
        let fg = lookup(&sig_in, nw.sigmoid.values, round(&pre, af));
        let gg = lookup(&tpre_in, nw.tanh_pre.values, round(&pre, ag));
        let fc = ftz(_mm256_mul_ps(fg, load(u.c_prev)));
        let c_new = round(&cf, ftz(_mm256_add_ps(fc, ftz(_mm256_mul_ps(ig, gg)))));
        let og = lookup(&sig_in, nw.sigmoid.values, round(&pre, ao));
        let tc = lookup(&tc_in, nw.tanh_c.values, c_new);
        let h_new = round(&hf, ftz(_mm256_mul_ps(og, tc)));
        // SAFETY: as for the loads; `h` and `c` hold at least n lanes.
        unsafe {
            _mm256_storeu_ps(h.as_mut_ptr().add(i), h_new);
            _mm256_storeu_ps(c.as_mut_ptr().add(i), c_new);
        }
    }
    if full < n {
        let tail = Unit {
            acc: u.acc.map(|a| &a[full..]),
            bias: u.bias,
            c_prev: &u.c_prev[full..],
        };
        lanes(nw, &tail, &mut h[full..n], &mut c[full..n]);
    }
}
