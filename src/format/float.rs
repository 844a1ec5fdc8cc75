//! Narrow binary floating point (`fp16`, `bf16`, `fp8e4m3`, `fp8e5m2`, `e<E>m<M>`), emulated
//! on f32 values: rounding to the format, and the bit codes that index activation tables.
//!
//! Rounding is defined on integers (the f32 significand), so any device reproduces it bit for
//! bit: f32 subnormal inputs flush to zero, the significand is rounded half to even at the
//! format's quantum (subnormals of the format included), results beyond the largest finite
//! value saturate to it, and zero is always +0.

use std::fmt;

/// A binary floating-point format with `exp_bits` exponent and `man_bits` stored mantissa
/// bits. `finite_only` is the OCP FP8 E4M3 convention: no infinities, the all-ones exponent
/// holds normal numbers and only `S.1111.111` is NaN (largest value 448).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FloatFormat {
    pub exp_bits: u32,
    pub man_bits: u32,
    pub finite_only: bool,
}

impl FloatFormat {
    pub const FP16: FloatFormat = FloatFormat::new(5, 10, false);
    pub const BF16: FloatFormat = FloatFormat::new(8, 7, false);
    pub const FP8_E4M3: FloatFormat = FloatFormat::new(4, 3, true);
    pub const FP8_E5M2: FloatFormat = FloatFormat::new(5, 2, false);
    /// `e8m23`, IEEE binary32: never a [`Format::Float`](super::Format::Float), the parser
    /// makes it [`Format::Fp32`](super::Format::Fp32) ([`Format::float`](super::Format::float)).
    pub const BINARY32: FloatFormat = FloatFormat::new(8, 23, false);

    const fn new(exp_bits: u32, man_bits: u32, finite_only: bool) -> Self {
        FloatFormat {
            exp_bits,
            man_bits,
            finite_only,
        }
    }

    /// The general IEEE-754-like `e<E>m<M>` (with infinities reserved): E in 2..=8, M in 1..=23.
    pub fn ieee_like(exp_bits: u32, man_bits: u32) -> Result<Self, String> {
        if !(2..=8).contains(&exp_bits) {
            return Err(format!("exponent width must be 2..=8 bits, got {exp_bits}"));
        }
        if !(1..=23).contains(&man_bits) {
            return Err(format!(
                "mantissa width must be 1..=23 bits, got {man_bits}"
            ));
        }
        Ok(FloatFormat::new(exp_bits, man_bits, false))
    }

    /// Total width: sign + exponent + mantissa.
    pub fn bits(self) -> u32 {
        1 + self.exp_bits + self.man_bits
    }

    pub(crate) fn bias(self) -> i32 {
        (1 << (self.exp_bits - 1)) - 1
    }

    /// Exponent of the smallest normal number.
    pub fn emin(self) -> i32 {
        1 - self.bias()
    }

    /// Exponent of the largest finite number.
    pub fn emax(self) -> i32 {
        let top = (1 << self.exp_bits) - if self.finite_only { 1 } else { 2 };
        top - self.bias()
    }

    /// The largest finite value.
    pub fn max_finite(self) -> f64 {
        let m = self.man_bits as i32;
        let sig = (1u64 << (m + 1)) - if self.finite_only { 2 } else { 1 };
        sig as f64 * 2f64.powi(self.emax() - m)
    }

    /// The largest finite value as an f32 (exact: at most 24 significant bits, and the
    /// exponent of every format here is an f32 normal exponent).
    pub(crate) fn max_f32(self) -> f32 {
        let m = self.man_bits as i32;
        let sig = (1u32 << (m + 1)) - if self.finite_only { 2 } else { 1 };
        sig as f32 * pow2f(self.emax() - m)
    }

    /// Rounds an f32 to this format (see the module doc); NaN stays NaN. Without branches
    /// on the value (so loops over tensors vectorize): an integer round half to even on the
    /// bits of |x|, or below the format's smallest normal an exact add and subtract of a power
    /// of two; `tests::round_equals_the_reference_definition` checks it bit for bit against the
    /// definition read literally, in integers (what the GPU's `round_float` does).
    #[inline]
    pub fn round(self, x: f32) -> f32 {
        let m = self.man_bits;
        let drop = 23 - m; // significand bits dropped at or above the format's emin
        let bits = x.to_bits();
        let a = bits & 0x7fff_ffff; // |x|
                                    // At or above 2^emin: round half to even on the bits of |x| (a carry out of the
                                    // significand steps the exponent, as it should).
        let (half, lsb) = if drop == 0 {
            (0, 0)
        } else {
            ((1u32 << (drop - 1)) - 1, (a >> drop) & 1)
        };
        let normal = f32::from_bits((a + half + lsb) & !((1u32 << drop) - 1));
        // Below 2^emin (formats with fewer than 8 exponent bits): the format's quantum there
        // is 2^(emin - m); adding then subtracting 2^(emin - m + 23), whose f32 ulp is that
        // quantum, rounds half to even exactly (its significand count 2^23 is even).
        let emin = self.emin();
        let quantum_shift = pow2f((emin - m as i32 + 23).clamp(-126, 127));
        let abs = f32::from_bits(a);
        let below = (abs + quantum_shift) - quantum_shift;
        let min_normal = ((emin.max(-126) + 127) as u32) << 23;
        let mut v = if a < min_normal { below } else { normal };
        v = v.min(self.max_f32());
        if a >= 0x7f80_0000 {
            v = self.max_f32(); // infinities saturate (NaN is returned below)
        }
        if a < 0x0080_0000 || v == 0.0 {
            v = 0.0; // f32 subnormal inputs flush; zero is +0
        } else {
            v = f32::from_bits(v.to_bits() | (bits & 0x8000_0000));
        }
        if x.is_nan() {
            x
        } else {
            v
        }
    }

    /// The bit code of a value of this format (`x` must be a result of [`FloatFormat::round`]).
    /// Without branches on the value, like `round`: both the normal and the subnormal code
    /// are computed and one is chosen.
    #[inline]
    pub fn encode(self, x: f32) -> u32 {
        let m = self.man_bits;
        let bits = x.to_bits();
        let a = bits & 0x7fff_ffff;
        let sign = if a != 0 {
            (bits >> 31) << (self.exp_bits + m)
        } else {
            0
        };
        let e = (a >> 23) as i32 - 127;
        let normal = ((e + self.bias()) as u32) << m | (a & 0x7f_ffff) >> (23 - m);
        // Below 2^emin, |x| is a multiple of 2^(emin - m): scaling by 2^(m - emin) is exact.
        // (Only formats with fewer than 8 exponent bits get here, so the scale is in range.)
        let scale = pow2f((m as i32 - self.emin()).min(127));
        let subnormal = (f32::from_bits(a) * scale) as u32;
        sign | if e >= self.emin() { normal } else { subnormal }
    }

    /// The value of a bit code (infinities and NaN decode as such).
    pub fn decode(self, code: u32) -> f32 {
        let m = self.man_bits;
        let negative = code >> (self.exp_bits + m) & 1 == 1;
        let biased = (code >> m) & ((1 << self.exp_bits) - 1);
        let frac = code & ((1 << m) - 1);
        let all_ones = biased == (1 << self.exp_bits) - 1;
        let v = if !self.finite_only && all_ones {
            if frac == 0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        } else if self.finite_only && all_ones && frac == (1 << m) - 1 {
            f64::NAN
        } else if biased == 0 {
            frac as f64 * 2f64.powi(self.emin() - m as i32)
        } else {
            ((1u64 << m) | frac as u64) as f64 * 2f64.powi(biased as i32 - self.bias() - m as i32)
        };
        let v = v as f32;
        if negative {
            -v
        } else {
            v
        }
    }
}

impl fmt::Display for FloatFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FloatFormat::FP16 => write!(f, "fp16"),
            FloatFormat::BF16 => write!(f, "bf16"),
            FloatFormat::FP8_E4M3 => write!(f, "fp8e4m3"),
            FloatFormat::FP8_E5M2 => write!(f, "fp8e5m2"),
            FloatFormat {
                exp_bits, man_bits, ..
            } => write!(f, "e{exp_bits}m{man_bits}"),
        }
    }
}

/// 2^e for e in -126..=127, exactly.
pub(crate) fn pow2f(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// f32 bit patterns to round: every `step`-th, and at every exponent of either sign the
    /// 64 smallest and largest significands and those around the middle (rounding ties).
    fn patterns(step: usize) -> impl Iterator<Item = u32> {
        let edges = (0..=255u32).flat_map(|e| {
            (0..64u32).flat_map(move |d| {
                [0, 1u32 << 31].into_iter().flat_map(move |sign| {
                    let at = sign | (e << 23);
                    [at | d, at | (0x7f_ffff - d), at | (0x40_0000 ^ d)]
                })
            })
        });
        (0..=u32::MAX).step_by(step).chain(edges)
    }

    /// The rounding read literally (the previous implementation, in i128 and f64): the oracle
    /// of the fast `round`.
    fn round_reference(f: FloatFormat, x: f32) -> f32 {
        if x.is_nan() {
            return x;
        }
        let bits = x.to_bits();
        let negative = bits >> 31 == 1;
        let biased = ((bits >> 23) & 0xff) as i32;
        if biased == 0 {
            return 0.0;
        }
        let max = f.max_finite();
        if biased == 0xff {
            let m = max as f32;
            return if negative { -m } else { m };
        }
        let e = biased - 127;
        let mant = (bits & 0x7f_ffff) | 0x80_0000;
        let m = f.man_bits as i32;
        let drop = 23 - m + (f.emin() - e).max(0);
        let r: u64 = if drop >= 25 {
            0
        } else {
            crate::format::fixed::shift_round_half_even(mant as i128, drop as u32) as u64
        };
        if r == 0 {
            return 0.0;
        }
        let q = e.max(f.emin()) - m;
        let mut v = r as f64 * 2f64.powi(q);
        if v > max {
            v = max;
        }
        if v < f32::MIN_POSITIVE as f64 {
            return 0.0;
        }
        let v = v as f32;
        if negative {
            -v
        } else {
            v
        }
    }

    fn formats() -> Vec<FloatFormat> {
        let mut v = vec![
            FloatFormat::FP16,
            FloatFormat::BF16,
            FloatFormat::FP8_E4M3,
            FloatFormat::FP8_E5M2,
        ];
        for (e, m) in [(2, 1), (3, 2), (8, 1), (8, 23), (6, 9), (2, 23), (5, 22)] {
            v.push(FloatFormat::ieee_like(e, m).unwrap());
        }
        v
    }

    #[test]
    fn round_equals_the_reference_definition() {
        // Every 251st f32 bit pattern (all exponents, signs and mantissa patterns) plus the
        // neighbourhood of every power of two, for every format kind.
        for f in formats() {
            assert_eq!(f.max_f32() as f64, f.max_finite(), "{f}");
            let check = |b: u32| {
                let x = f32::from_bits(b);
                let (a, r) = (f.round(x), round_reference(f, x));
                assert!(
                    a.to_bits() == r.to_bits() || (a.is_nan() && r.is_nan()),
                    "{f} {x:e} ({b:#x}): {a:e} vs {r:e}"
                );
            };
            patterns(251).for_each(check);
        }
    }

    /// `e8m23` rounds as fp32 flushes (`detmath::ftz`) on every finite f32: nothing dropped,
    /// zeros and subnormals to +0, no finite value above the largest. The rules part only on
    /// ±inf (saturated here, kept by the flush), which no lane ever holds (NUMERICS.md §1, §15):
    /// why the parser may make `e8m23` `fp32`.
    #[test]
    fn binary32_rounds_as_the_fp32_flush_on_every_finite_value() {
        let f = FloatFormat::BINARY32;
        assert_eq!(f.max_f32(), f32::MAX);
        let check = |b: u32| {
            let x = f32::from_bits(b);
            let (a, z) = (f.round(x), crate::format::detmath::ftz(x));
            if x.is_finite() {
                assert_eq!(a.to_bits(), z.to_bits(), "{x:e} ({b:#x})");
            }
        };
        patterns(97).for_each(check);
        for x in [f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(
                (f.round(x), crate::format::detmath::ftz(x)),
                (x.signum() * f32::MAX, x)
            );
        }
        assert!(f.round(f32::NAN).is_nan());
    }

    /// Every f32 bit pattern, for the named formats: `cargo test --release --lib
    /// every_f32_rounds_as_the_reference -- --ignored` (a few minutes on two cores).
    #[test]
    #[ignore = "exhaustive: 2^32 values per format"]
    fn every_f32_rounds_as_the_reference() {
        use rayon::prelude::*;
        for f in formats().into_iter().take(4) {
            (0..=u32::MAX).into_par_iter().for_each(|b| {
                let x = f32::from_bits(b);
                let (a, r) = (f.round(x), round_reference(f, x));
                assert!(
                    a.to_bits() == r.to_bits() || (a.is_nan() && r.is_nan()),
                    "{f} {x:e} ({b:#x}): {a:e} vs {r:e}"
                );
            });
        }
    }

    #[test]
    fn known_limits() {
        assert_eq!(FloatFormat::FP16.max_finite(), 65504.0);
        assert_eq!(FloatFormat::BF16.max_finite(), 3.3895313892515355e38);
        assert_eq!(FloatFormat::FP8_E4M3.max_finite(), 448.0);
        assert_eq!(FloatFormat::FP8_E5M2.max_finite(), 57344.0);
        assert_eq!(FloatFormat::FP16.round(1e9), 65504.0);
        assert_eq!(FloatFormat::FP8_E4M3.round(-1000.0), -448.0);
        assert_eq!(FloatFormat::FP16.round(f32::INFINITY), 65504.0);
    }

    #[test]
    fn matches_ieee_half_conversion() {
        // Rust's f32 -> f16 cast is not stable; compare against hand-checked values instead.
        let f = FloatFormat::FP16;
        assert_eq!(f.round(1.0 + 1.0 / 4096.0), 1.0); // below half an ulp
        assert_eq!(f.round(1.0 + 1.0 / 2048.0), 1.0); // tie, even
        assert_eq!(f.round(1.0 + 3.0 / 2048.0), 1.0 + 2.0 / 1024.0); // tie, to even
        assert_eq!(f.round(6.0e-8), 5.9604645e-8); // smallest subnormal 2^-24
        assert_eq!(f.round(2.0e-8), 0.0);
        assert_eq!(f.round(3.0e-8), 5.9604645e-8); // above half of 2^-24
        assert_eq!(f.round(-0.0).to_bits(), 0);
    }

    #[test]
    fn codes_round_trip_every_value() {
        for f in [
            FloatFormat::FP16,
            FloatFormat::BF16,
            FloatFormat::FP8_E4M3,
            FloatFormat::FP8_E5M2,
        ] {
            for code in 0..(1u32 << f.bits()) {
                let v = f.decode(code);
                if !v.is_finite() || (v != 0.0 && v.abs() < f32::MIN_POSITIVE) {
                    continue;
                }
                if v == 0.0 {
                    continue; // -0 is not produced by round
                }
                assert_eq!(f.round(v), v, "{f} code {code:#x}");
                assert_eq!(f.encode(v), code, "{f} value {v}");
            }
        }
    }

    proptest! {
        #[test]
        fn round_is_idempotent_and_monotone(x in -1e6f32..1e6f32, y in -1e6f32..1e6f32, e in 2u32..=8, m in 1u32..=12) {
            let f = FloatFormat::ieee_like(e, m).unwrap();
            let rx = f.round(x);
            prop_assert_eq!(f.round(rx).to_bits(), rx.to_bits());
            if x <= y {
                prop_assert!(rx <= f.round(y));
            }
        }

        #[test]
        fn more_mantissa_never_worse(x in -100f32..100f32, m in 1u32..=22) {
            let narrow = FloatFormat::ieee_like(8, m).unwrap();
            let wide = FloatFormat::ieee_like(8, m + 1).unwrap();
            prop_assert!((wide.round(x) - x).abs() <= (narrow.round(x) - x).abs());
        }
    }
}
