//! [`super::intcell`]'s eight-lane integer step on AVX2 (machines without AVX-512, such as AMD
//! Zen 3): the same integer operations in the same order as [`super::cell::int_unit`], four
//! lanes of 64 bits per ymm, so the same codes. What AVX2 lacks is written out from what it
//! has, each exact:
//!
//! - the 64-bit products (`vpmullq`): every factor is an i32 code (gate and table codes,
//!   `c_prev`), so `vpmuldq` (signed 32 x 32 -> 64 bits of each lane's low half) is the exact
//!   product;
//! - the arithmetic right shift (`vpsraq`): `((x >>> s) ^ m) - m` with `m = 2^(63-s)`, the
//!   logical shift with its sign bit extended back;
//! - the 64-bit minimum and maximum of the saturation: a compare and a blend.
//!
//! Tested with the AVX-512 unit against [`super::cell::int_unit`] (`intcell::tests`).

use super::intcell::Lanes;
use super::plan::IntCell;
use crate::format::Fixed;
use std::arch::x86_64::*;

/// [`super::intcell::unit8`] on AVX2.
///
/// # Safety
/// The CPU must have AVX2; `q` must satisfy [`super::intcell::supports`]; every slice of `x`
/// has at least 8 elements, `h` and `c` at least `live`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn unit8(
    q: &IntCell,
    j: usize,
    x: &Lanes<'_>,
    live: usize,
    h: &mut [i32],
    c: &mut [i32],
) {
    debug_assert!((1..=8).contains(&live) && h.len() >= live && c.len() >= live);
    let (mut hs, mut cs) = ([0i32; 8], [0i32; 8]);
    for half in [0, 4] {
        let (hv, cv) = unit4(q, j, x, half);
        _mm_storeu_si128(hs.as_mut_ptr().add(half).cast(), hv);
        _mm_storeu_si128(cs.as_mut_ptr().add(half).cast(), cv);
    }
    h[..live].copy_from_slice(&hs[..live]);
    c[..live].copy_from_slice(&cs[..live]);
}

/// Lanes `at..at + 4`: their new h and c codes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn unit4(q: &IntCell, j: usize, x: &Lanes<'_>, at: usize) -> (__m128i, __m128i) {
    let hsz = q.h0.len();
    let load = |v: &[i64]| _mm256_loadu_si256(v.as_ptr().add(at).cast());
    let sum = |g: usize| {
        let row = g * hsz + j;
        let wx = shl(load(x.wx[g]), q.shift_wx);
        let rh = shl(load(x.rh[g]), q.shift_rh);
        let b = _mm256_set1_epi64x((q.b[row] as i64) << q.shift_b);
        _mm256_add_epi64(_mm256_add_epi64(wx, rh), b)
    };
    let c_prev = _mm256_cvtepi32_epi64(_mm_loadu_si128(x.c_prev.as_ptr().add(at).cast()));
    let sig = |code: __m256i| lookup(&q.sigmoid, q.pre, code);
    let ig = sig(rescale4(sum(0), q.pre_shift, q.pre));
    let fg = sig(rescale4(sum(1), q.pre_shift, q.pre));
    let gg = lookup(&q.tanh_pre, q.pre, rescale4(sum(2), q.pre_shift, q.pre));
    let upd = _mm256_add_epi64(
        shl(_mm256_mul_epi32(fg, c_prev), q.shift_fc),
        shl(_mm256_mul_epi32(ig, gg), q.shift_ig),
    );
    let c_new = rescale4(upd, q.c_shift, q.c);
    let og = sig(rescale4(sum(3), q.pre_shift, q.pre));
    let tc = lookup(&q.tanh_c, q.c, c_new);
    let h_new = rescale4(_mm256_mul_epi32(og, tc), q.h_shift, q.h);
    (narrow(h_new), narrow(c_new))
}

/// `acc << s` on every lane (a run-time count below 64).
#[inline]
#[target_feature(enable = "avx2")]
fn shl(acc: __m256i, s: u32) -> __m256i {
    _mm256_sll_epi64(acc, _mm_cvtsi64_si128(s as i64))
}

/// [`super::cell::rescale64`] on four lanes, for shifts 0..=63: round half to even of
/// `acc / 2^shift`, saturated to `to`'s codes.
#[inline]
#[target_feature(enable = "avx2")]
fn rescale4(acc: __m256i, shift: i32, to: Fixed) -> __m256i {
    let v = if shift == 0 {
        acc
    } else {
        let s = shift as u32;
        let count = _mm_cvtsi64_si128(s as i64);
        // The arithmetic shift: the logical one, its sign bit (now at 63 - s) extended.
        let m = _mm256_set1_epi64x(1i64 << (63 - s));
        let q = _mm256_sub_epi64(_mm256_xor_si256(_mm256_srl_epi64(acc, count), m), m);
        let r = _mm256_and_si256(acc, _mm256_set1_epi64x(((1u64 << s) - 1) as i64));
        let half = _mm256_set1_epi64x(1i64 << (s - 1));
        let one = _mm256_set1_epi64x(1);
        let odd = _mm256_cmpeq_epi64(_mm256_and_si256(q, one), one);
        // r and half are non-negative, so the signed compare orders them.
        let up = _mm256_or_si256(
            _mm256_cmpgt_epi64(r, half),
            _mm256_and_si256(_mm256_cmpeq_epi64(r, half), odd),
        );
        // `up` is -1 where the quotient rounds up.
        _mm256_sub_epi64(q, up)
    };
    let lo = _mm256_set1_epi64x(to.min_code() as i64);
    let hi = _mm256_set1_epi64x(to.max_code() as i64);
    let v = _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
    _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi))
}

/// `table[fmt.table_index(code)]` on four lanes (codes within `fmt`'s range).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lookup(table: &[i32], fmt: Fixed, code: __m256i) -> __m256i {
    let idx = _mm256_sub_epi64(code, _mm256_set1_epi64x(fmt.min_code() as i64));
    debug_assert!(table.len() >= 1usize << fmt.bits);
    _mm256_cvtepi32_epi64(_mm256_i64gather_epi32::<4>(table.as_ptr(), idx))
}

/// Four i64 lanes holding i32 values (saturated codes), as four i32.
#[inline]
#[target_feature(enable = "avx2")]
fn narrow(v: __m256i) -> __m128i {
    let low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, low_halves))
}
