//! The element-wise step of fp32 lanes, eight (AVX2) or sixteen (AVX-512) lanes at a time: the
//! same operations as [`super::cell::float_unit`] with every format fp32 (each rounding a
//! flush of subnormals, the activations computed by [`crate::format::detmath`]'s exp / recip),
//! in the same order, so the bits are the scalar code's (IEEE add, subtract, multiply and
//! round-to-integer round identically in a vector register; nothing is fused).
//!
//! The activations and the unit are written once over [`Vector`], which each register width
//! implements with its own instructions (AVX2 compares give vector masks, AVX-512 ones mask
//! registers). The wider build does not make a lane cheaper where a core splits 512-bit
//! operations in two (Zen 4), but its 32 registers and twice-as-long chains let the core overlap
//! the activations' serial polynomials instead of waiting on them.
//!
//! Used by the batched engine for fp32 configs; other float formats go through
//! [`super::narrowcell`] or the scalar unit. Chosen at run time; the scalar unit elsewhere.

/// Whether a vector unit can run here (AVX2, and AVX-512 where present).
pub fn available() -> bool {
    crate::cpu::avx2()
}

/// Whether the AVX-512 build runs here.
fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        available() && is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
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

/// The new h and c of lanes `0..n` of one unit (padding lanes up to `h.len()` set to 0), in
/// the widest build the CPU runs.
///
/// # Safety
/// [`available`] must hold; every slice must hold `h.len()` lanes, a multiple of 8, and
/// `n <= h.len()`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn unit(u: &Unit, n: usize, h: &mut [f32], c: &mut [f32]) {
    if h.len().is_multiple_of(16) && avx512() {
        unit_avx512(u, n, h, c)
    } else {
        unit_avx2(u, n, h, c)
    }
}

/// [`unit`] eight lanes at a time.
///
/// # Safety
/// As [`unit`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn unit_avx2(u: &Unit, n: usize, h: &mut [f32], c: &mut [f32]) {
    unit_in::<std::arch::x86_64::__m256>(u, n, h, c)
}

/// [`unit`] sixteen lanes at a time.
///
/// # Safety
/// As [`unit`], with AVX-512F and `h.len()` a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn unit_avx512(u: &Unit, n: usize, h: &mut [f32], c: &mut [f32]) {
    unit_in::<std::arch::x86_64::__m512>(u, n, h, c)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn unit_in<V: Vector>(u: &Unit, n: usize, h: &mut [f32], c: &mut [f32]) {
    let lanes = h.len();
    debug_assert!(lanes.is_multiple_of(V::LANES) && n <= lanes && c.len() == lanes);
    debug_assert!(u.acc.iter().all(|a| a.len() >= lanes) && u.c_prev.len() >= lanes);
    for l0 in (0..lanes).step_by(V::LANES) {
        if l0 >= n {
            V::splat(0.0).store(h.as_mut_ptr().add(l0));
            V::splat(0.0).store(c.as_mut_ptr().add(l0));
            continue;
        }
        let load = |s: &[f32]| V::load(s.as_ptr().add(l0));
        let sum = |g: usize| add(load(u.acc[g]), V::splat(u.bias[g]));
        let (mut ai, mut af, ag, mut ao) = (sum(0), sum(1), sum(2), sum(3));
        let cp = load(u.c_prev);
        if let Some(pp) = u.peep {
            ai = add(ai, mul(V::splat(pp[0]), cp));
            af = add(af, mul(V::splat(pp[1]), cp));
        }
        let ig = sigmoid(ai.ftz()).ftz();
        let fg = sigmoid(af.ftz()).ftz();
        let gg = tanh(ag.ftz()).ftz();
        let cn = add(mul(fg, cp), mul(ig, gg)).ftz();
        if let Some(pp) = u.peep {
            ao = add(ao, mul(V::splat(pp[2]), cn));
        }
        let og = sigmoid(ao.ftz()).ftz();
        let hn = mul(og, tanh(cn).ftz()).ftz();
        // Lanes at or past n: padding, kept at 0.
        let live = n - l0;
        hn.first(live).store(h.as_mut_ptr().add(l0));
        cn.first(live).store(c.as_mut_ptr().add(l0));
    }
}

/// What the activations need of a vector register of f32 lanes: IEEE arithmetic, and the
/// few comparisons and bit moves of [`crate::format::detmath`], each with its scalar meaning.
#[cfg(target_arch = "x86_64")]
trait Vector: Copy {
    const LANES: usize;
    unsafe fn splat(v: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    /// `minps`: `o` where either is NaN (so `x.min_ps(87)` keeps a NaN x, as `f32::min`).
    unsafe fn min_ps(self, o: Self) -> Self;
    unsafe fn max_ps(self, o: Self) -> Self;
    /// |v| (the sign bit cleared).
    unsafe fn abs(self) -> Self;
    /// -v (the sign bit flipped).
    unsafe fn neg(self) -> Self;
    /// NUMERICS.md §5: |v| below the smallest normal (subnormals, ±0) becomes +0; NaN stays.
    unsafe fn ftz(self) -> Self;
    /// Rounded to the nearest integer, ties to even.
    unsafe fn round(self) -> Self;
    /// 2^k for integral k in [-126, 127] (NaN read as 0, as `k as i32`).
    unsafe fn pow2(self) -> Self;
    /// detmath::recip's first guess: the bits of `0x7ef311c3 - bits(self)`.
    unsafe fn recip_seed(self) -> Self;
    /// `if self < bound { small } else { large }`, per lane.
    unsafe fn below(self, bound: f32, small: Self, large: Self) -> Self;
    /// `-self` where `x < 0`, else `self`.
    unsafe fn sign_of(self, x: Self) -> Self;
    /// The first `n` lanes kept, the rest +0.
    unsafe fn first(self, n: usize) -> Self;
}

#[cfg(target_arch = "x86_64")]
mod vectors {
    use super::Vector;
    use std::arch::x86_64::*;

    impl Vector for __m256 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            _mm256_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            _mm256_add_ps(self, o)
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            _mm256_sub_ps(self, o)
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            _mm256_mul_ps(self, o)
        }
        #[inline(always)]
        unsafe fn min_ps(self, o: Self) -> Self {
            _mm256_min_ps(self, o)
        }
        #[inline(always)]
        unsafe fn max_ps(self, o: Self) -> Self {
            _mm256_max_ps(self, o)
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            _mm256_andnot_ps(_mm256_set1_ps(-0.0), self)
        }
        #[inline(always)]
        unsafe fn neg(self) -> Self {
            _mm256_xor_ps(self, _mm256_set1_ps(-0.0))
        }
        #[inline(always)]
        unsafe fn ftz(self) -> Self {
            let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(self.abs(), _mm256_set1_ps(f32::MIN_POSITIVE));
            _mm256_andnot_ps(tiny, self)
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self)
        }
        #[inline(always)]
        unsafe fn pow2(self) -> Self {
            let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(self, self);
            let k = _mm256_cvtps_epi32(_mm256_andnot_ps(nan, self));
            let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(k, _mm256_set1_epi32(127)));
            _mm256_castsi256_ps(bits)
        }
        #[inline(always)]
        unsafe fn recip_seed(self) -> Self {
            let seed = _mm256_set1_epi32(0x7ef3_11c3);
            _mm256_castsi256_ps(_mm256_sub_epi32(seed, _mm256_castps_si256(self)))
        }
        #[inline(always)]
        unsafe fn below(self, bound: f32, small: Self, large: Self) -> Self {
            let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(self, _mm256_set1_ps(bound));
            _mm256_blendv_ps(large, small, is_small)
        }
        #[inline(always)]
        unsafe fn sign_of(self, x: Self) -> Self {
            let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
            _mm256_xor_ps(self, _mm256_and_ps(negative, _mm256_set1_ps(-0.0)))
        }
        #[inline(always)]
        unsafe fn first(self, n: usize) -> Self {
            let ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let n = _mm256_set1_epi32(n.min(8) as i32);
            _mm256_and_ps(self, _mm256_castsi256_ps(_mm256_cmpgt_epi32(n, ids)))
        }
    }

    impl Vector for __m512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            _mm512_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            _mm512_add_ps(self, o)
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            _mm512_sub_ps(self, o)
        }
        #[inline(always)]
        unsafe fn mul(self, o: Self) -> Self {
            _mm512_mul_ps(self, o)
        }
        #[inline(always)]
        unsafe fn min_ps(self, o: Self) -> Self {
            _mm512_min_ps(self, o)
        }
        #[inline(always)]
        unsafe fn max_ps(self, o: Self) -> Self {
            _mm512_max_ps(self, o)
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            let bits = _mm512_and_si512(_mm512_castps_si512(self), _mm512_set1_epi32(i32::MAX));
            _mm512_castsi512_ps(bits)
        }
        #[inline(always)]
        unsafe fn neg(self) -> Self {
            let bits = _mm512_xor_si512(_mm512_castps_si512(self), _mm512_set1_epi32(i32::MIN));
            _mm512_castsi512_ps(bits)
        }
        #[inline(always)]
        unsafe fn ftz(self) -> Self {
            let tiny =
                _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.abs(), _mm512_set1_ps(f32::MIN_POSITIVE));
            _mm512_maskz_mov_ps(!tiny, self)
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self)
        }
        #[inline(always)]
        unsafe fn pow2(self) -> Self {
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self, self);
            let k = _mm512_cvtps_epi32(_mm512_maskz_mov_ps(!nan, self));
            let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(k, _mm512_set1_epi32(127)));
            _mm512_castsi512_ps(bits)
        }
        #[inline(always)]
        unsafe fn recip_seed(self) -> Self {
            let seed = _mm512_set1_epi32(0x7ef3_11c3);
            _mm512_castsi512_ps(_mm512_sub_epi32(seed, _mm512_castps_si512(self)))
        }
        #[inline(always)]
        unsafe fn below(self, bound: f32, small: Self, large: Self) -> Self {
            let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self, _mm512_set1_ps(bound));
            _mm512_mask_blend_ps(is_small, large, small)
        }
        #[inline(always)]
        unsafe fn sign_of(self, x: Self) -> Self {
            let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
            _mm512_mask_blend_ps(negative, self, self.neg())
        }
        #[inline(always)]
        unsafe fn first(self, n: usize) -> Self {
            let keep = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
            _mm512_maskz_mov_ps(keep, self)
        }
    }
}

/// `a + b`, flushed.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add<V: Vector>(a: V, b: V) -> V {
    a.add(b).ftz()
}

/// `a * b`, flushed.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn mul<V: Vector>(a: V, b: V) -> V {
    a.mul(b).ftz()
}

/// `x.clamp(lo, hi)` (NaN stays NaN: `max_ps(lo, x)` returns x when either is NaN).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn clamp<V: Vector>(x: V, lo: f32, hi: f32) -> V {
    V::splat(hi).min_ps(V::splat(lo).max_ps(x))
}

/// [`crate::format::detmath::exp`], operation for operation.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp<V: Vector>(x: V) -> V {
    let s = |v: f32| V::splat(v);
    let x = clamp(x, -87.0, 88.0);
    let k = x.mul(s(std::f32::consts::LOG2_E)).round();
    let r = x.sub(k.mul(s(0.693_359_4))).sub(k.mul(s(-2.121_944_4e-4)));
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
        p = p.mul(r).add(s(c));
    }
    p.mul(k.pow2())
}

/// [`crate::format::detmath::recip`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn recip<V: Vector>(d: V) -> V {
    let mut y = d.recip_seed();
    for _ in 0..4 {
        y = y.mul(V::splat(2.0).sub(d.mul(y)));
    }
    y
}

/// [`crate::format::detmath::sigmoid`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sigmoid<V: Vector>(x: V) -> V {
    recip(V::splat(1.0).add(exp(clamp(x, -87.0, 87.0).neg())))
}

/// [`crate::format::detmath::tanh`]: both branches, selected per lane.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tanh<V: Vector>(x: V) -> V {
    let s = |v: f32| V::splat(v);
    let a = x.abs();
    let a2 = a.mul(a);
    let inner = a2.mul(s(-1.0 / 3.0).add(a2.mul(s(2.0 / 15.0).add(a2.mul(s(-17.0 / 315.0))))));
    let small = a.add(a.mul(inner));
    // f32::min returns the other operand for NaN: `min_ps(v, 87)` does too.
    let e = exp(s(2.0).mul(a).min_ps(s(87.0)));
    let large = s(1.0).sub(s(2.0).mul(recip(s(1.0).add(e))));
    a.below(0.0625, small, large).sign_of(x)
}

#[cfg(all(test, target_arch = "x86_64"))]
#[path = "fp32cell_tests.rs"]
mod tests;
