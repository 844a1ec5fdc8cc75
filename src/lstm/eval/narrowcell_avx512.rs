//! [`super::narrowcell`]'s loop sixteen lanes at a time in AVX-512: `FloatFormat::round` and
//! `encode` (both branch-free on the value) as the same integer and float operations on
//! vectors, the activation tables read by `vgatherdps`, subnormal flushes as masked moves.
//! Every lane computes exactly what the scalar functions compute, so the bits are theirs
//! (`narrowcell::tests` checks it).

use super::narrowcell::{Narrow, Unit};
use crate::format::float::pow2f;
use crate::format::FloatFormat;
use std::arch::x86_64::*;

/// `FloatFormat::round`'s constants, splatted.
#[derive(Clone, Copy)]
struct Round {
    drop: __m512i,
    half: __m512i,
    lsb_on: __m512i,
    keep: __m512i,
    quantum_shift: __m512,
    min_normal: __m512i,
    max: __m512,
}

/// `FloatFormat::encode`'s constants, splatted.
#[derive(Clone, Copy)]
struct Encode {
    sign_shift: __m128i,
    m: __m128i,
    frac_shift: __m128i,
    bias: __m512i,
    emin: __m512i,
    scale: __m512,
}

#[target_feature(enable = "avx512f")]
fn round_consts(f: FloatFormat) -> Round {
    let drop = 23 - f.man_bits;
    let (half, lsb_on) = if drop == 0 {
        (0, 0)
    } else {
        ((1u32 << (drop - 1)) - 1, 1)
    };
    let emin = f.emin();
    Round {
        drop: _mm512_set1_epi32(drop as i32),
        half: _mm512_set1_epi32(half as i32),
        lsb_on: _mm512_set1_epi32(lsb_on),
        keep: _mm512_set1_epi32(!((1u32 << drop) - 1) as i32),
        quantum_shift: _mm512_set1_ps(pow2f((emin - f.man_bits as i32 + 23).clamp(-126, 127))),
        min_normal: _mm512_set1_epi32((((emin.max(-126) + 127) as u32) << 23) as i32),
        max: _mm512_set1_ps(f.max_f32()),
    }
}

#[target_feature(enable = "avx512f")]
fn encode_consts(f: FloatFormat) -> Encode {
    let m = f.man_bits;
    Encode {
        sign_shift: _mm_cvtsi32_si128((f.exp_bits + m) as i32),
        m: _mm_cvtsi32_si128(m as i32),
        frac_shift: _mm_cvtsi32_si128((23 - m) as i32),
        bias: _mm512_set1_epi32(f.bias()),
        emin: _mm512_set1_epi32(f.emin()),
        scale: _mm512_set1_ps(pow2f((m as i32 - f.emin()).min(127))),
    }
}

/// `FloatFormat::round` of 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn round(k: &Round, x: __m512) -> __m512 {
    let bits = _mm512_castps_si512(x);
    let a = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fff_ffff));
    let lsb = _mm512_and_si512(_mm512_srlv_epi32(a, k.drop), k.lsb_on);
    let sum = _mm512_add_epi32(_mm512_add_epi32(a, k.half), lsb);
    let normal = _mm512_castsi512_ps(_mm512_and_si512(sum, k.keep));
    let abs = _mm512_castsi512_ps(a);
    let below = _mm512_sub_ps(_mm512_add_ps(abs, k.quantum_shift), k.quantum_shift);
    let is_below = _mm512_cmplt_epi32_mask(a, k.min_normal);
    let v = _mm512_mask_blend_ps(is_below, normal, below);
    // `f32::min(v, max)`: max when v is NaN, as `vminps` gives its second operand.
    let v = _mm512_min_ps(v, k.max);
    let inf_or_nan = _mm512_cmpge_epi32_mask(a, _mm512_set1_epi32(0x7f80_0000));
    let v = _mm512_mask_blend_ps(inf_or_nan, v, k.max);
    let zero = _mm512_cmplt_epi32_mask(a, _mm512_set1_epi32(0x0080_0000))
        | _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, _mm512_setzero_ps());
    let sign = _mm512_and_si512(bits, _mm512_set1_epi32(i32::MIN));
    let signed = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), sign));
    let v = _mm512_maskz_mov_ps(!zero, signed);
    let nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7f80_0000));
    _mm512_mask_blend_ps(nan, v, x)
}

/// `FloatFormat::encode` of 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn encode(k: &Encode, x: __m512) -> __m512i {
    let bits = _mm512_castps_si512(x);
    let a = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fff_ffff));
    let nonzero = _mm512_test_epi32_mask(a, a);
    let sign = _mm512_maskz_mov_epi32(
        nonzero,
        _mm512_sll_epi32(_mm512_srli_epi32::<31>(bits), k.sign_shift),
    );
    let e = _mm512_sub_epi32(_mm512_srli_epi32::<23>(a), _mm512_set1_epi32(127));
    let normal = _mm512_or_si512(
        _mm512_sll_epi32(_mm512_add_epi32(e, k.bias), k.m),
        _mm512_srl_epi32(
            _mm512_and_si512(a, _mm512_set1_epi32(0x7f_ffff)),
            k.frac_shift,
        ),
    );
    let subnormal = _mm512_cvttps_epu32(_mm512_mul_ps(_mm512_castsi512_ps(a), k.scale));
    let is_normal = _mm512_cmpge_epi32_mask(e, k.emin);
    _mm512_or_si512(sign, _mm512_mask_blend_epi32(is_normal, subnormal, normal))
}

/// `cell::add` / `cell::mul`'s flush of subnormal results.
#[inline]
#[target_feature(enable = "avx512f")]
fn ftz(v: __m512) -> __m512 {
    let abs = _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(v),
        _mm512_set1_epi32(0x7fff_ffff),
    ));
    let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(abs, _mm512_set1_ps(f32::MIN_POSITIVE));
    _mm512_maskz_mov_ps(!tiny, v)
}

/// A table's entries at the codes of `v` (masked to the table, a power of two long).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn lookup(k: &Encode, values: &[f32], v: __m512) -> __m512 {
    let i = _mm512_and_si512(encode(k, v), _mm512_set1_epi32(values.len() as i32 - 1));
    // SAFETY: every index is below `values.len()`.
    unsafe { _mm512_i32gather_ps::<4>(i, values.as_ptr().cast()) }
}

/// `narrowcell::lanes` sixteen lanes at a time; the last group masked.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn unit_avx512(nw: &Narrow, u: &Unit, h: &mut [f32], c: &mut [f32]) {
    let n = h.len().min(c.len());
    assert!(u.acc.iter().all(|a| a.len() >= n) && u.c_prev.len() >= n);
    let (pre, cf, hf) = (round_consts(nw.pre), round_consts(nw.c), round_consts(nw.h));
    let (sig_in, tpre_in, tc_in) = (
        encode_consts(nw.sigmoid.input),
        encode_consts(nw.tanh_pre.input),
        encode_consts(nw.tanh_c.input),
    );
    let bias = u.bias.map(|b| _mm512_set1_ps(b));
    for i in (0..n).step_by(16) {
        let live: __mmask16 = if n - i >= 16 {
            0xffff
        } else {
            (1 << (n - i)) - 1
        };
        // SAFETY (loads and stores): lanes i..i + 16 masked to those below n, inside every
        // slice (checked above).
        let load = |s: &[f32]| unsafe { _mm512_maskz_loadu_ps(live, s.as_ptr().add(i)) };
        let [ai, af, ag, ao] = [0, 1, 2, 3].map(|g| ftz(_mm512_add_ps(load(u.acc[g]), bias[g])));
        let ig = lookup(&sig_in, nw.sigmoid.values, round(&pre, ai));
        let fg = lookup(&sig_in, nw.sigmoid.values, round(&pre, af));
        let gg = lookup(&tpre_in, nw.tanh_pre.values, round(&pre, ag));
        let fc = ftz(_mm512_mul_ps(fg, load(u.c_prev)));
        let c_new = round(&cf, ftz(_mm512_add_ps(fc, ftz(_mm512_mul_ps(ig, gg)))));
        let og = lookup(&sig_in, nw.sigmoid.values, round(&pre, ao));
        let tc = lookup(&tc_in, nw.tanh_c.values, c_new);
        let h_new = round(&hf, ftz(_mm512_mul_ps(og, tc)));
        unsafe {
            _mm512_mask_storeu_ps(h.as_mut_ptr().add(i), live, h_new);
            _mm512_mask_storeu_ps(c.as_mut_ptr().add(i), live, c_new);
        }
    }
}
