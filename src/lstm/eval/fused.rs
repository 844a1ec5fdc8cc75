//! When a fused multiply-add gives the bits of a multiply then an add, and which kernel a
//! product may therefore run.
//!
//! NUMERICS.md §6 sums every product term as one rounded multiply and one rounded add, never
//! fused. But if the product `a·b` is **exactly** representable, the multiply does not round,
//! so `add(s, mul(a, b)) = round(s + a·b) = fma(a, b, s)`: the fused instruction, one operation
//! instead of two, gives the same bits (the sign of an exact zero sum follows the same rule
//! for both: IEEE 754 gives an FMA's exact zero the sign an addition of `a·b` and `s` would).
//!
//! `a·b` is exact when it is finite, not below the smallest normal (no underflow, and with the
//! bound of [`super::gemm::no_subnormals`] no partial sum is subnormal either, so the flushes
//! of §5 are identities), and the significands of `a` and `b` together hold at most the
//! type's precision (24 bits for f32, 53 for f64): a product of a p-bit and a q-bit integer has
//! at most p + q bits. The narrow formats make this common: fp16 x fp16 is 11 + 11 bits,
//! bf16 x bf16 8 + 8, fp8 x fp8 4 + 4, and the float64 reference's f32 inputs times f32
//! weights 24 + 24 ≤ 53.
//!
//! [`Span`] measures what the decision needs from the operands themselves (so it holds for any
//! format, whatever the config says): the smallest non-zero and the largest magnitude, the
//! widest significand, and whether every value is finite. [`Mode::choose`] picks the kernel.

use super::gemm::{no_subnormals, Elem};
use crate::format::Resolved;

/// What a product's decision needs to know about one operand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// The smallest non-zero |v| (f64::INFINITY when all are zero).
    pub min_nonzero: f64,
    /// The largest |v| (NaN skipped; see `finite`).
    pub max_abs: f64,
    /// The most significant bits any value's significand holds (from its highest to its lowest
    /// set bit; at most 24 for f32, 53 for f64).
    pub sig_bits: u32,
    /// Whether no value is infinite or NaN.
    pub finite: bool,
}

impl Span {
    /// The span of no values.
    pub const EMPTY: Span = Span {
        min_nonzero: f64::INFINITY,
        max_abs: 0.0,
        sig_bits: 0,
        finite: true,
    };

    /// Both spans together (every field an order-free fold: minimum, maximum, or).
    pub fn join(self, o: Span) -> Span {
        Span {
            min_nonzero: self.min_nonzero.min(o.min_nonzero),
            max_abs: self.max_abs.max(o.max_abs),
            sig_bits: self.sig_bits.max(o.sig_bits),
            finite: self.finite && o.finite,
        }
    }
}

/// The span of `v`: f32 or f64 ([`Elem`]).
pub fn span<T: Elem>(v: &[T]) -> Span {
    T::span(v)
}

/// A span that holds for every value rounding to `r` can give, NaN aside (`finite` says
/// whether the values are finite whenever what was rounded was): for kernels that cannot
/// measure their operands, such as the GPU's, which decides once per layer what every step's
/// states allow. Fixed point: codes of at most `bits - 1` magnitude bits, steps of `2^-frac`.
/// Floats: the smallest subnormal (no value below 2^-126 survives rounding, NUMERICS.md
/// §1.2), the largest finite value (rounding saturates) and `1 + man_bits` significand bits.
/// fp32 only flushes, so it bounds nothing: every f32 from the smallest normal up, and
/// infinity.
pub fn format_span(r: Resolved) -> Span {
    match r {
        Resolved::Fp32 => Span {
            min_nonzero: f32::MIN_POSITIVE as f64,
            max_abs: f64::INFINITY,
            sig_bits: f32::MANTISSA_DIGITS,
            finite: false,
        },
        Resolved::Fixed(f) => Span {
            min_nonzero: 2f64.powi(-f.frac),
            max_abs: 2f64.powi(f.bits as i32 - 1 - f.frac),
            sig_bits: f.bits - 1,
            finite: true,
        },
        Resolved::Float(f) => Span {
            min_nonzero: 2f64
                .powi(f.emin() - f.man_bits as i32)
                .max(f32::MIN_POSITIVE as f64),
            max_abs: f.max_finite(),
            sig_bits: f.man_bits + 1,
            finite: true,
        },
    }
}

/// [`span`] on the bit patterns (`$u` the unsigned type of `$f`'s width): folds of integer
/// operations, which vectorize. Every field is a minimum,
/// maximum or bitwise or, so the order does not matter. On magnitudes (the sign bit cleared)
/// the integer order is the float order, infinity above every finite value and NaN above
/// infinity; the maximum skips NaN like a float fold (`if a > m`) would.
///
/// Built three times: for the baseline target and, where the CPU has them, for AVX-512 (64-bit
/// minima and maxima need it to vectorize fully) and AVX2; the same integer operations in
/// every build.
macro_rules! span_bits {
    ($name:ident, $body:ident, $wide:ident, $avx2:ident, $f:ty, $u:ty) => {
        pub(super) fn $name(v: &[$f]) -> Span {
            #[cfg(target_arch = "x86_64")]
            if avx512() {
                // SAFETY: `avx512()` checked the CPU.
                return unsafe { $wide(v) };
            }
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::avx2() {
                // SAFETY: the CPU has AVX2.
                return unsafe { $avx2(v) };
            }
            $body(v)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn $wide(v: &[$f]) -> Span {
            $body(v)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2(v: &[$f]) -> Span {
            $body(v)
        }

        #[inline(always)]
        fn $body(v: &[$f]) -> Span {
            const MANT: $u = (1 << (<$f>::MANTISSA_DIGITS - 1)) - 1;
            const INF: $u = <$f>::INFINITY.to_bits();
            const ABS: $u = <$u>::MAX >> 1;
            // Integer minima, maxima and ors are associative: LLVM vectorizes this loop.
            let (mut lo, mut hi, mut or, mut bad) = (<$u>::MAX, 0 as $u, 0 as $u, 0 as $u);
            for &x in v {
                let a = x.to_bits() & ABS;
                lo = lo.min(if a == 0 { <$u>::MAX } else { a });
                hi = hi.max(if a <= INF { a } else { 0 });
                or |= a & MANT;
                bad |= <$u>::from(a >= INF);
            }
            let finite = bad == 0;
            let min_nonzero = if lo == <$u>::MAX || lo > INF {
                // No non-zero value (NaN aside).
                f64::INFINITY
            } else {
                <$f>::from_bits(lo) as f64
            };
            let precision = <$f>::MANTISSA_DIGITS;
            // A normal significand is 1.m (its top bit the implicit one): from that bit down
            // to the lowest set bit of any m. A subnormal's 0.m holds fewer bits than that.
            let sig_bits = if min_nonzero == f64::INFINITY {
                0
            } else {
                precision - (or | (1 << (precision - 1))).trailing_zeros()
            };
            Span {
                min_nonzero,
                max_abs: <$f>::from_bits(hi) as f64,
                sig_bits,
                finite,
            }
        }
    };
}

span_bits!(
    span_f32,
    span_f32_body,
    span_f32_avx512,
    span_f32_avx2,
    f32,
    u32
);
span_bits!(
    span_f64,
    span_f64_body,
    span_f64_avx512,
    span_f64_avx2,
    f64,
    u64
);

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    !crate::cpu::portable()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
}

/// Which kernel a product runs. Every mode gives the bits of the scalar loop of §6 when
/// [`Mode::choose`] picked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A multiply and an add per term, each result flushed (subnormals possible).
    Flush,
    /// A multiply and an add per term, no flush needed.
    Plain,
    /// One fused multiply-add per term (every product exact): the plain kernel's bits.
    Fused,
    /// One fused multiply-add per term whatever the products: each term's exact product
    /// rounded once, with its sum. Not the bits of §6's loop, so never chosen by
    /// [`Mode::choose`]: the float64 reference asks for it (docs/NUMERICS.md §14), and every
    /// instruction set gives the same bits (a correctly rounded `fma`).
    Fma,
}

impl Mode {
    /// The cheapest mode that gives the flushing scalar loop's bits for weights spanning `a`
    /// and operands spanning `b` (the initial sums must be 0 or normal, as they always are).
    /// For f64 (which never flushes) the choice is between the plain and the fused kernel.
    pub fn choose<T: Elem>(a: &Span, b: &Span) -> Mode {
        if T::FLUSHES && !no_subnormals(a.min_nonzero, b.min_nonzero) {
            return Mode::Flush;
        }
        if Mode::exact::<T>(a, b) {
            Mode::Fused
        } else {
            Mode::Plain
        }
    }

    /// Whether every product of a value of `a` and a value of `b` is exact in `T` and normal
    /// (or zero): finite operands (and, where lanes flush, normal ones), significands that fit `T`'s precision together, and
    /// magnitudes whose products stay inside `T`'s normal range.
    ///
    /// The bounds are products computed in f64: exact for f32 operands; for f64 ones rounded,
    /// so they are checked with room to spare (rounding is monotone: a rounded product below
    /// the largest finite value means the exact one is below it too, and one at least twice
    /// the smallest normal means the exact one is above the smallest normal).
    fn exact<T: Elem>(a: &Span, b: &Span) -> bool {
        let (lo, hi) = T::NORMAL_RANGE;
        // Where lanes flush, no operand may be subnormal either: a device that flushes an
        // fma's inputs (NVIDIA's `.ftz`) would drop it where the multiply kept it.
        let normal = |s: &Span| !T::FLUSHES || s.min_nonzero >= lo;
        a.finite
            && b.finite
            && normal(a)
            && normal(b)
            && a.sig_bits + b.sig_bits <= T::PRECISION
            && a.min_nonzero * b.min_nonzero >= 2.0 * lo
            && a.max_abs * b.max_abs < hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Span {
        fn with_sig(mut self, sig_bits: u32) -> Span {
            self.sig_bits = sig_bits;
            self
        }
    }

    fn plain_span(v: &[f32]) -> Span {
        let mut s = Span::EMPTY;
        for &x in v {
            let a = x.abs() as f64;
            if a > 0.0 {
                s.min_nonzero = s.min_nonzero.min(a);
            }
            s.max_abs = s.max_abs.max(a);
            s.finite &= x.is_finite();
            let bits = x.to_bits();
            let (e, m) = ((bits >> 23) & 0xff, bits & 0x7f_ffff);
            let sig = match (e, m) {
                (_, 0) if e != 0xff => u32::from(x != 0.0),
                (0, m) => 32 - m.leading_zeros() - m.trailing_zeros(),
                (0xff, _) => 0,
                (_, m) => 24 - m.trailing_zeros(),
            };
            s.sig_bits = s.sig_bits.max(sig);
        }
        s
    }

    #[test]
    fn span_bounds_the_plain_fold() {
        let cases: Vec<Vec<f32>> = vec![
            vec![],
            vec![0.0],
            vec![-0.0, 1.0],
            vec![1.5, -0.75, 3.0],
            vec![1.0 + f32::EPSILON],
            vec![1e-40, 2.5e-41],
            (0..37).map(|i| (i as f32 - 18.0) * 0.125).collect(),
            (0..37).map(|i| i as f32 / 3.0).collect(),
            vec![1.0, f32::INFINITY],
            vec![f32::NAN, 2.0, 0.5, 0.25, 1.0, 1.0, 1.0, 1.0, 1.0],
        ];
        for v in cases {
            let (got, want) = (span(&v), plain_span(&v));
            assert_eq!(got.min_nonzero, want.min_nonzero, "{v:?}");
            assert_eq!(got.max_abs, want.max_abs, "{v:?}");
            assert_eq!(got.finite, want.finite, "{v:?}");
            // The span's bound may exceed the exact count (a subnormal, all zeros) but
            // never falls short of it.
            assert!(got.sig_bits >= want.sig_bits, "{v:?}: {got:?} {want:?}");
        }
        // Every build this machine has (baseline; AVX-512, AVX2 where the CPU has them)
        // agrees with the baseline, every tail length.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let bits: Vec<u64> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect();
        for len in [0, 1, 7, 15, 16, 17, 33, 999] {
            let v: Vec<f32> = bits[..len]
                .iter()
                .map(|&b| f32::from_bits((b >> 32) as u32))
                .collect();
            assert_eq!(span(&v), span_f32_body(&v), "f32, len {len}");
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY (all four): each build runs only where the CPU has its features.
                let d: Vec<f64> = bits[..len].iter().map(|&b| f64::from_bits(b)).collect();
                if avx512() {
                    assert_eq!(unsafe { span_f32_avx512(&v) }, span_f32_body(&v), "{len}");
                    assert_eq!(unsafe { span_f64_avx512(&d) }, span_f64_body(&d), "{len}");
                }
                if crate::cpu::avx2() {
                    assert_eq!(unsafe { span_f32_avx2(&v) }, span_f32_body(&v), "{len}");
                    assert_eq!(unsafe { span_f64_avx2(&d) }, span_f64_body(&d), "{len}");
                }
            }
            let narrow: Vec<f32> = v
                .iter()
                .map(|&f| (f as f64).clamp(-1e30, 1e30) as f32)
                .collect();
            assert_eq!(
                span(&narrow),
                plain_span(&narrow).with_sig(span(&narrow).sig_bits)
            );
            let d: Vec<f64> = bits[..len].iter().map(|&b| f64::from_bits(b)).collect();
            assert_eq!(span(&d), span_f64_body(&d), "f64, len {len}");
        }
        assert_eq!(span(&[1.5f32, 1.25]).sig_bits, 3);
        assert_eq!(span(&[1.0f32 + f32::EPSILON]).sig_bits, 24);
        assert_eq!(span(&[3.0f64, 0.5]).sig_bits, 2);
    }

    #[test]
    fn fused_only_for_exact_products() {
        let s = |v: &[f32]| span(v);
        let fp16ish = s(&[1.0 + 2f32.powi(-10), -0.5, 3.0]);
        let full = s(&[1.0 + f32::EPSILON]);
        assert_eq!(Mode::choose::<f32>(&fp16ish, &fp16ish), Mode::Fused);
        assert_eq!(Mode::choose::<f32>(&fp16ish, &full), Mode::Plain);
        assert_eq!(Mode::choose::<f64>(&full, &full), Mode::Fused);
        assert_eq!(Mode::choose::<f32>(&s(&[1e-30]), &s(&[1e-30])), Mode::Flush);
        let huge = s(&[1e30]);
        assert_eq!(
            Mode::choose::<f32>(&huge, &huge),
            Mode::Plain,
            "overflows f32"
        );
        let inf = s(&[f32::INFINITY, 1.0]);
        assert_eq!(Mode::choose::<f32>(&inf, &fp16ish), Mode::Plain);
        let nan = s(&[f32::NAN, 1.0]);
        assert_eq!(Mode::choose::<f32>(&fp16ish, &nan), Mode::Plain);
        // f64 products near the bottom of the normal range: refused.
        let tiny = span(&[f64::MIN_POSITIVE.sqrt()]);
        assert_eq!(Mode::choose::<f64>(&tiny, &tiny), Mode::Plain);
        // A subnormal operand with an exact, normal product: not fused where lanes flush.
        let sub = s(&[1e-40]);
        assert_eq!(
            Mode::choose::<f32>(&sub, &s(&[2f32.powi(100)])),
            Mode::Plain
        );
        // All zeros: no product to round.
        assert_eq!(Mode::choose::<f32>(&s(&[0.0, 0.0]), &full), Mode::Fused);
    }

    /// [`format_span`] against brute force: every value rounding to the format gives, from
    /// inputs all over the f32 range (every exponent, subnormals, infinities and NaN among
    /// random bit patterns), lies inside the span, and its ends are values of the format.
    #[test]
    fn format_span_holds_every_rounded_value() {
        use crate::format::{Fixed, FloatFormat};
        let float = |e, m| Resolved::Float(FloatFormat::ieee_like(e, m).unwrap());
        let fixed = |bits, frac| Resolved::Fixed(Fixed { bits, frac });
        let formats = [
            Resolved::Float(FloatFormat::FP16),
            Resolved::Float(FloatFormat::BF16),
            Resolved::Float(FloatFormat::FP8_E4M3),
            Resolved::Float(FloatFormat::FP8_E5M2),
            float(3, 4),
            float(2, 1),
            float(8, 23),
            fixed(4, 3),
            fixed(8, 6),
            fixed(16, 10),
            fixed(12, 20),
            fixed(8, -2),
            Resolved::Fp32,
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let inputs: Vec<f32> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                f32::from_bits((x >> 32) as u32)
            })
            .chain([
                0.0,
                f32::MIN_POSITIVE,
                f32::MAX,
                f32::INFINITY,
                1e-45,
                448.0,
                65504.0,
            ])
            .collect();
        for r in formats {
            let s = format_span(r);
            for &v in &inputs {
                let y = r.round(v);
                if y.is_nan() {
                    continue;
                }
                let a = y.abs() as f64;
                assert!(a <= s.max_abs, "{r}: {v} rounds to {y}, above {s:?}");
                assert!(a == 0.0 || a >= s.min_nonzero, "{r}: {v} -> {y}, {s:?}");
                assert!(span(&[y]).sig_bits <= s.sig_bits, "{r}: {v} -> {y}, {s:?}");
                assert!(y.is_finite() || !s.finite, "{r}: {v} -> {y}, {s:?}");
            }
            if r != Resolved::Fp32 {
                // (The largest fixed-point magnitude is the most negative code's.)
                for end in [s.min_nonzero, s.max_abs] {
                    let got = r.round(-end as f32).abs() as f64;
                    assert_eq!(got, end, "{r}: {s:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// A looser span never fuses (or skips the flush) where a tighter one does not. The
        /// GPU decides once per layer on its formats' spans ([`format_span`]), which hold every
        /// span the CPU measures on the same operands: so wherever the GPU fuses, the CPU's
        /// per-step choice fuses too, with the same bits.
        #[test]
        fn a_looser_span_never_chooses_a_cheaper_kernel(
            tight in proptest::array::uniform2((-140i32..130, 0i32..40, 1u32..25, proptest::bool::ANY)),
            loosen in proptest::array::uniform2((0i32..20, 0i32..20, 0u32..4, proptest::bool::ANY)),
        ) {
            let spans = |i: usize| {
                let (lo, width, sig, finite) = tight[i];
                let (down, up, more, lose) = loosen[i];
                let a = Span {
                    min_nonzero: 2f64.powi(lo),
                    max_abs: 2f64.powi(lo + width),
                    sig_bits: sig,
                    finite,
                };
                let b = Span {
                    min_nonzero: 2f64.powi(lo - down),
                    max_abs: 2f64.powi(lo + width + up),
                    sig_bits: (sig + more).min(24),
                    finite: finite && !lose,
                };
                (a, b)
            };
            let ((wa, wb), (xa, xb)) = (spans(0), spans(1));
            let (tight, loose) = (Mode::choose::<f32>(&wa, &xa), Mode::choose::<f32>(&wb, &xb));
            if loose == Mode::Fused {
                proptest::prop_assert_eq!(tight, Mode::Fused);
            }
            if loose != Mode::Flush {
                proptest::prop_assert_ne!(tight, Mode::Flush);
            }
        }
    }
}
