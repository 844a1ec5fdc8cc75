//! Two's-complement fixed point: quantization of single values, the per-tensor choice of
//! fraction bits, and the saturating, round-half-to-even rescale of wide accumulators that
//! the integer datapath (CPU evaluator and GPU kernels alike) is built from.

use super::{MAX_FIXED_BITS, MAX_FRAC_BITS};

/// A resolved fixed-point format: `bits` including the sign, value = code * 2^-frac.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fixed {
    pub bits: u32,
    pub frac: i32,
}

/// The smallest integer `e` with `2^e >= m`, computed exactly from the bits of `m` (> 0).
pub fn ceil_log2(m: f32) -> i32 {
    let b = m.to_bits() & 0x7fff_ffff;
    let (mant, exp) = if b >> 23 == 0 {
        // Subnormal: m = mant * 2^-149.
        (b, -149)
    } else {
        ((b & 0x7f_ffff) | 0x80_0000, (b >> 23) as i32 - 127 - 23)
    };
    // m = mant * 2^exp with mant > 0.
    let lead = 31 - mant.leading_zeros() as i32;
    let pow2 = mant & (mant - 1) == 0;
    exp + lead + if pow2 { 0 } else { 1 }
}

impl Fixed {
    /// Smallest code, -2^(bits-1).
    pub fn min_code(self) -> i32 {
        -(1 << (self.bits - 1))
    }

    /// Largest code, 2^(bits-1) - 1.
    /// The largest code magnitude, 2^(bits-1).
    pub fn max_code_abs(self) -> f64 {
        -(self.min_code() as f64)
    }

    pub fn max_code(self) -> i32 {
        (1 << (self.bits - 1)) - 1
    }

    /// Fraction bits for a tensor whose largest magnitude is `max_abs`: the most that still
    /// leave room for `2^ceil(log2 max_abs)` (which itself saturates by one step), clamped to
    /// `0..=30`. A tensor of zeros gets `bits - 1`.
    pub fn for_max_abs(bits: u32, max_abs: f32) -> Fixed {
        debug_assert!((2..=MAX_FIXED_BITS).contains(&bits));
        let e = if max_abs > 0.0 && max_abs.is_finite() {
            ceil_log2(max_abs)
        } else {
            0
        };
        Fixed {
            bits,
            frac: (bits as i32 - 1 - e).clamp(0, MAX_FRAC_BITS),
        }
    }

    /// The code of `x`: round half to even of `x * 2^frac`, saturated to the code range.
    /// Exact: the scaling is done in f64, where it cannot round.
    pub fn quantize(self, x: f32) -> i32 {
        round_clamp(
            x as f64 * pow2(self.frac),
            self.min_code() as f64,
            self.max_code() as f64,
        )
    }

    /// [`Fixed::quantize`] with the power of two computed once (the same operations, so the
    /// same codes), for loops over tensors.
    pub fn quantizer(self) -> impl Fn(f32) -> i32 + Copy + Sync {
        let scale = pow2(self.frac);
        let (lo, hi) = (self.min_code() as f64, self.max_code() as f64);
        move |x| round_clamp(x as f64 * scale, lo, hi)
    }

    /// [`Fixed::to_f32`] with the power of two computed once.
    pub fn dequantizer(self) -> impl Fn(i32) -> f32 + Copy + Sync {
        let scale = pow2(-self.frac);
        move |code| (code as f64 * scale) as f32
    }

    /// The value of a code (exact in f32: at most 16 significant bits).
    pub fn to_f32(self, code: i32) -> f32 {
        (code as f64 * pow2(-self.frac)) as f32
    }

    /// Position of a code in a lookup table over all codes (offset binary).
    pub fn table_index(self, code: i32) -> usize {
        (code - self.min_code()) as usize
    }

    /// Saturates a wide integer to the code range.
    pub fn saturate(self, v: i128) -> i32 {
        v.clamp(self.min_code() as i128, self.max_code() as i128) as i32
    }
}

/// 2^e as f64, exactly (built from its exponent bits where 2^e is normal).
#[inline]
pub fn pow2(e: i32) -> f64 {
    if (-1022..=1023).contains(&e) {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        pow2_outside(e)
    }
}

/// `2f64.powi(e)` out of line: LLVM treats `powi` as free of side effects and would compute it
/// before the range test of [`pow2`] on every call.
#[cold]
#[inline(never)]
fn pow2_outside(e: i32) -> f64 {
    2f64.powi(e)
}

/// `y.round_ties_even().clamp(lo, hi) as i32` for integer bounds of magnitude below 2^51,
/// without a libm call: clamping first gives the same result (rounding is monotone and keeps
/// integers), and below 2^51 adding then subtracting 1.5·2^52 rounds to an integer by the
/// hardware's round-half-to-even. NaN gives 0, as before.
///
/// The integer is read from the bits of the sum (`1.5·2^52 + r` has the significand
/// `2^51 + r`), then saturated to i32 and NaN selected to 0: the same value as
/// `((y' + M) - M) as i32`, but in operations that vectorize (an `f64 as i32` cast, which
/// saturates and maps NaN to 0, compiles to scalar code in loops).
#[inline]
pub fn round_clamp(y: f64, lo: f64, hi: f64) -> i32 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    debug_assert!(lo <= hi && lo.abs() < MAGIC / 3.0 && hi.abs() < MAGIC / 3.0);
    let r = (y.clamp(lo, hi) + MAGIC).to_bits() as i64 - MAGIC.to_bits() as i64;
    let v = r.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    if y.is_nan() {
        0
    } else {
        v
    }
}

/// Round half to even of `x / 2^s` for `s >= 1`, on integers.
pub fn shift_round_half_even(x: i128, s: u32) -> i128 {
    if s == 0 {
        return x;
    }
    if s >= 100 {
        // |x| < 2^99 here, so |x / 2^s| < 1/2.
        return 0;
    }
    let q = x >> s;
    let r = x - (q << s);
    let half = 1i128 << (s - 1);
    if r > half || (r == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// `acc * 2^-shift` rounded half to even and saturated to `to`: how every wide sum of the
/// integer datapath becomes a narrow code. A negative shift multiplies (exactly).
pub fn rescale(acc: i64, shift: i32, to: Fixed) -> i32 {
    let v = if shift >= 0 {
        shift_round_half_even(acc as i128, shift as u32)
    } else {
        (acc as i128) << (-shift).min(64)
    };
    to.saturate(v)
}

/// Whether a sum fits a signed 64-bit accumulator (with one bit of margin). Each term is
/// (how many, log2 of its largest magnitude, left shift applied to it).
pub fn rescale_bound_ok(terms: &[(f64, u32, i32)]) -> bool {
    let total: f64 = terms
        .iter()
        .map(|&(n, bits, shift)| n * pow2(bits as i32 + shift))
        .sum();
    total < pow2(62)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_clamp_equals_the_cast_it_replaced() {
        const MAGIC: f64 = 6_755_399_441_055_744.0;
        let old = |y: f64, lo: f64, hi: f64| ((y.clamp(lo, hi) + MAGIC) - MAGIC) as i32;
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut ys: Vec<f64> = vec![
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            0.0,
            -0.0,
        ];
        for k in -40..=40 {
            let h = k as f64 * 0.5;
            ys.extend([h, h.next_up(), h.next_down()]);
        }
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ys.push(f64::from_bits(s));
            ys.push((s >> 11) as f64 / (1u64 << 20) as f64 - 4e6);
        }
        let bounds = [
            (-128.0, 127.0),
            (-32768.0, 32767.0),
            (-2147483648.0, 2147483647.0),
            (-4e12, 4e12),
            (-1e15, 1e15),
        ];
        for &(lo, hi) in &bounds {
            for &y in &ys {
                assert_eq!(
                    round_clamp(y, lo, hi),
                    old(y, lo, hi),
                    "{y:e} in [{lo}, {hi}]"
                );
            }
        }
    }

    #[test]
    fn the_hoisted_quantizer_equals_fixed_quantize() {
        let mut s = 0x1234_5678_9abc_def1u64;
        for bits in 2..=16 {
            for frac in -4..20 {
                let f = Fixed { bits, frac };
                let (q, back) = (f.quantizer(), f.dequantizer());
                for _ in 0..300 {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let x = f32::from_bits((s >> 32) as u32);
                    let x = if x.is_finite() { x } else { (s as f32) * 1e-12 };
                    // The literal definition (NUMERICS.md §3), written out here.
                    let want = (x as f64 * 2f64.powi(f.frac))
                        .round_ties_even()
                        .clamp(f.min_code() as f64, f.max_code() as f64)
                        as i32;
                    assert_eq!(q(x), want, "{x:e} {f:?}");
                    assert_eq!(f.quantize(x), want, "{x:e} {f:?}");
                    let code = q(x);
                    assert_eq!(back(code).to_bits(), f.to_f32(code).to_bits());
                }
            }
        }
    }
    use proptest::prelude::*;

    #[test]
    fn ceil_log2_is_exact() {
        assert_eq!(ceil_log2(1.0), 0);
        assert_eq!(ceil_log2(1.0000001), 1);
        assert_eq!(ceil_log2(0.5), -1);
        assert_eq!(ceil_log2(0.75), 0);
        assert_eq!(ceil_log2(3.0), 2);
        assert_eq!(ceil_log2(4.0), 2);
        assert_eq!(ceil_log2(f32::from_bits(1)), -149);
        assert_eq!(ceil_log2(f32::from_bits(3)), -147);
    }

    #[test]
    fn auto_fraction_bits() {
        assert_eq!(Fixed::for_max_abs(8, 1.0).frac, 7);
        assert_eq!(Fixed::for_max_abs(8, 0.3).frac, 8);
        assert_eq!(Fixed::for_max_abs(8, 5.0).frac, 4);
        assert_eq!(Fixed::for_max_abs(8, 1e6).frac, 0);
        assert_eq!(Fixed::for_max_abs(16, 1e-12).frac, 30);
        assert_eq!(Fixed::for_max_abs(8, 0.0).frac, 7);
    }

    #[test]
    fn round_half_even_ties() {
        let f = Fixed { bits: 8, frac: 1 };
        assert_eq!(f.quantize(0.25), 0); // 0.5 -> 0
        assert_eq!(f.quantize(0.75), 2); // 1.5 -> 2
        assert_eq!(f.quantize(1.25), 2); // 2.5 -> 2
        assert_eq!(f.quantize(-0.75), -2);
        assert_eq!(f.quantize(-1.25), -2);
        assert_eq!(shift_round_half_even(5, 1), 2);
        assert_eq!(shift_round_half_even(7, 1), 4);
        assert_eq!(shift_round_half_even(-5, 1), -2);
        assert_eq!(shift_round_half_even(-7, 1), -4);
        assert_eq!(shift_round_half_even(6, 2), 2); // 1.5 -> 2
        assert_eq!(shift_round_half_even(10, 2), 2); // 2.5 -> 2
        assert_eq!(shift_round_half_even(-6, 2), -2);
    }

    #[test]
    fn saturates_at_limits() {
        let f = Fixed { bits: 8, frac: 4 };
        assert_eq!(f.quantize(100.0), 127);
        assert_eq!(f.quantize(-100.0), -128);
        assert_eq!(f.quantize(f32::MAX), 127);
        assert_eq!(rescale(i64::MAX, 0, f), 127);
        assert_eq!(rescale(-5, -70, f), -128);
        assert_eq!(rescale(3, -2, f), 12);
    }

    #[test]
    fn round_clamp_and_pow2_equal_their_literal_definitions() {
        for e in -1100..1100 {
            assert_eq!(pow2(e).to_bits(), 2f64.powi(e).to_bits(), "2^{e}");
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let check = |y: f64, lo: f64, hi: f64| {
            let want = y.round_ties_even().clamp(lo, hi) as i32;
            assert_eq!(round_clamp(y, lo, hi), want, "{y:e} in [{lo}, {hi}]");
        };
        for (lo, hi) in [
            (-128.0, 127.0),
            (-32768.0, 32767.0),
            (-2147483648.0, 2147483647.0),
        ] {
            // Every half-way point near zero and the bounds, and their neighbours.
            for k in -70_000i64..70_000 {
                let y = k as f64 / 2.0;
                for v in [y, y.next_up(), y.next_down()] {
                    check(v, lo, hi);
                }
            }
            for v in [
                hi + 0.5,
                lo - 0.5,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                1e300,
                -0.0,
            ] {
                check(v, lo, hi);
            }
            for _ in 0..100_000 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                check(f64::from_bits(s), lo, hi);
                check((s as i64 >> 20) as f64 / 1024.0, lo, hi);
            }
        }
    }

    proptest! {
        #[test]
        fn quantize_is_idempotent(bits in 2u32..=16, frac in 0i32..=20, x in -1e4f32..1e4f32) {
            let f = Fixed { bits, frac };
            let once = f.to_f32(f.quantize(x));
            prop_assert_eq!(f.quantize(once), f.quantize(x));
            prop_assert_eq!(f.to_f32(f.quantize(once)).to_bits(), once.to_bits());
        }

        #[test]
        fn error_never_grows_with_bits_at_fixed_range(bits in 2u32..16, x in -0.999f32..0.999f32) {
            // Same range [-1, 1): each extra bit is an extra fraction bit.
            let narrow = Fixed { bits, frac: bits as i32 - 1 };
            let wide = Fixed { bits: bits + 1, frac: bits as i32 };
            let en = (narrow.to_f32(narrow.quantize(x)) - x).abs();
            let ew = (wide.to_f32(wide.quantize(x)) - x).abs();
            prop_assert!(ew <= en, "x={} narrow {} wide {}", x, en, ew);
        }

        #[test]
        fn rescale_matches_real_rounding(acc in -1i64<<40..1i64<<40, shift in 0i32..20) {
            let f = Fixed { bits: 16, frac: 0 };
            let exact = acc as f64 / pow2(shift);
            let want = exact.round_ties_even().clamp(-32768.0, 32767.0) as i32;
            prop_assert_eq!(rescale(acc, shift, f), want);
        }
    }
}
