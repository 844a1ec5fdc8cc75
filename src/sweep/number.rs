//! Numbers as `{}` prints them, fast: the float and integer writer behind results.csv rows
//! (`super::row`), and [`Recent`], the per-thread cache of the numbers a row has just written.
//!
//! A sweep writes about fifteen numbers per point at millions of points per second, so each
//! is rendered straight into a fixed block and copied into the row without a call to
//! `memcpy`; the text is exactly `format!("{v}")`'s, which keeps committed results byte for
//! byte (checked against the standard formatter by the tests below).

/// The numbers a costing thread has written lately, with their text as [`push_f64`] writes
/// it: a direct-mapped table keyed by the number's bits. Many columns repeat from row to row
/// (energy and area do not depend on the fastest-varying keys) or within a row
/// (`energy_per_seq_uj` is `energy_uj` at one sequence), and one number's text never changes.
pub struct Recent {
    bits: [u64; WAYS],
    /// Length of the way's text; 0 when the way holds nothing.
    len: [u8; WAYS],
    text: [[u8; TEXT]; WAYS],
}

/// Ways of [`Recent`] (a row has fifteen numbers).
const WAYS: usize = 64;
/// Bytes of a number's block (the longest text the fast path writes is 24).
pub(super) const TEXT: usize = 32;
const _: () = assert!(WAYS.is_power_of_two());

impl Default for Recent {
    fn default() -> Recent {
        Recent {
            bits: [0; WAYS],
            len: [0; WAYS],
            text: [[0; TEXT]; WAYS],
        }
    }
}

impl Recent {
    /// Appends `v` as [`push_f64`] does: from the table when its way holds the same bits,
    /// else formatted and kept there (the common cases, see [`format_fast`]).
    #[inline]
    pub(super) fn push(&mut self, out: &mut Vec<u8>, v: f64) {
        let bits = v.to_bits();
        // Multiplicative hash: the product's top bits depend on all of `bits`.
        let way =
            (bits.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - WAYS.trailing_zeros())) as usize;
        if self.bits[way] == bits && self.len[way] != 0 {
            put(out, &self.text[way], usize::from(self.len[way]));
            return;
        }
        match format_fast(v, &mut self.text[way], out) {
            Some(n) => {
                self.len[way] = n as u8;
                self.bits[way] = bits;
            }
            None => {
                self.len[way] = 0;
                push_f64_slow(out, v);
            }
        }
    }
}

/// Appends `v` exactly as `format!("{v}")` prints it (the standard library's shortest
/// round-trip digits, plain decimal notation), fast.
///
/// Integers below 2^53 are written digit by digit. Other finite numbers take the shortest
/// digits of Żmij (numbers it writes without an exponent) or ryu (the rest, rewritten into
/// `{}`'s notation), except where they and `{}` can differ: all pick the shortest digits that
/// read back as `v` and, of those, the nearest to `v`, but on an exact tie (`v` exactly
/// halfway between two shortest candidates, e.g. -88594481949449.125) ryu rounds to even and
/// the standard library rounds up. A tie needs `v`'s exact decimal
/// expansion to be at most 18 significant digits long, so every such `v` (and zero,
/// infinities, NaN, and integers from 2^53 on) is printed by the standard formatter itself.
pub fn push_f64(out: &mut Vec<u8>, v: f64) {
    let mut text = [0u8; TEXT];
    match format_fast(v, &mut text, out) {
        Some(_) => {}
        None => push_f64_slow(out, v),
    }
}

/// The first `n` bytes of `text`, by a fixed-length copy (inlined; a call to `memcpy` per
/// number cost more than the copy itself).
#[inline]
pub(super) fn put(out: &mut Vec<u8>, text: &[u8; TEXT], n: usize) {
    let start = out.len();
    out.extend_from_slice(text);
    out.truncate(start + n);
}

/// [`push_f64`]'s common cases written into `text` and appended to `out`: integers below
/// 2^53, and numbers Żmij writes without an exponent that are not possible ties. Returns the
/// length, or `None` (nothing written to `out`) for the rest.
#[inline]
fn format_fast(v: f64, text: &mut [u8; TEXT], out: &mut Vec<u8>) -> Option<usize> {
    const TWO_53: f64 = 9_007_199_254_740_992.0;
    // An integer below 2^53 (NaN fails the first test); the round trip through i64 is one
    // conversion each way where `fract` is a library call on baseline x86-64.
    if v.abs() < TWO_53 && v != 0.0 && (v as i64) as f64 == v {
        let neg = usize::from(v < 0.0);
        text[0] = b'-';
        let mut x = v.abs() as u64;
        let n = neg + x.ilog10() as usize + 1;
        for i in (neg..n).rev() {
            text[i] = b'0' + (x % 10) as u8;
            x /= 10;
        }
        put(out, text, n);
        return Some(n);
    }
    if !v.is_finite() || v == 0.0 || short_exact_decimal(v) {
        return None;
    }
    // Żmij (Schubfach) gives the same shortest digits as ryu, about twice as fast, in the
    // same notation apart from exponents ("1e+16" where ryu writes "1e16"); at most 24 bytes.
    let mut buf = zmij::Buffer::new();
    let s = buf.format_finite(v).as_bytes();
    let n = s.len();
    // Without an exponent (within the last five bytes, "e-324"), both write a non-integer
    // as `{}` does ("12.34", "0.001234"). Five byte compares, no call to `memchr`.
    let at = |k: usize| n >= k && s[n - k] == b'e';
    if at(1) | at(2) | at(3) | at(4) | at(5) {
        return None;
    }
    copy_short(text, out, s);
    Some(n)
}

/// `text[..src.len()] = src` and `src` appended to `out`, for `src` of at most 32 bytes, each
/// by two overlapping fixed-size copies from the same two loads: inlined (a variable-length
/// copy is a call to `memcpy`), and `src`, just written by the formatter in narrower stores,
/// is read once (a wide load of fresh narrow stores stalls until they reach the cache).
#[inline]
fn copy_short(text: &mut [u8; TEXT], out: &mut Vec<u8>, src: &[u8]) {
    fn two<const W: usize>(text: &mut [u8; TEXT], out: &mut Vec<u8>, src: &[u8]) {
        let n = src.len();
        let mut head = [0u8; W];
        let mut tail = [0u8; W];
        head.copy_from_slice(&src[..W]);
        tail.copy_from_slice(&src[n - W..]);
        text[..W].copy_from_slice(&head);
        text[n - W..n].copy_from_slice(&tail);
        let start = out.len();
        out.extend_from_slice(&head);
        out.truncate(start + n - W);
        out.extend_from_slice(&tail);
    }
    match src.len() {
        16.. => two::<16>(text, out, src),
        8..=15 => two::<8>(text, out, src),
        4..=7 => two::<4>(text, out, src),
        _ => {
            for (t, &c) in text.iter_mut().zip(src) {
                *t = c;
            }
            out.extend_from_slice(src);
        }
    }
}

fn push_f64_slow(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if !v.is_finite() || v == 0.0 || short_exact_decimal(v) {
        let _ = write!(out, "{v}");
    } else {
        push_ryu_as_display(out, v);
    }
}

/// Whether the exact decimal expansion of finite, non-zero `v` has at most 18 significant
/// digits (then a tie between two shortest round-trip candidates is possible).
fn short_exact_decimal(v: f64) -> bool {
    let bits = v.to_bits();
    let (exp_bits, frac) = (((bits >> 52) & 0x7ff) as i32, bits & ((1u64 << 52) - 1));
    // v = m * 2^e exactly.
    let (mut m, mut e) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp_bits - 1075)
    };
    let tz = m.trailing_zeros();
    m >>= tz;
    e += tz as i32;
    if e >= 0 {
        // An integer (from 2^53 on here): let the standard formatter print it.
        return true;
    }
    // v = m * 5^s / 10^s with m odd: its significant digits are those of m * 5^s, fewer
    // than 19 when m * 5^s < 10^18, i.e. when m <= (10^18 - 1) / 5^s.
    let s = (-e) as usize;
    s < SHORT_LIMIT.len() && m <= SHORT_LIMIT[s]
}

/// `(10^18 - 1) / 5^s` for s = 0..=26 (5^26 > 10^18: no odd m qualifies beyond).
const SHORT_LIMIT: [u64; 27] = {
    let mut t = [0u64; 27];
    let mut five = 1u64;
    let mut s = 0;
    while s < 27 {
        t[s] = (1_000_000_000_000_000_000 - 1) / five;
        if s < 26 {
            five *= 5;
        }
        s += 1;
    }
    t
};

/// Ryu's shortest digits of finite, non-zero `v`, written as `{}` writes them: no exponent,
/// no trailing `.0`.
fn push_ryu_as_display(out: &mut Vec<u8>, v: f64) {
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v).as_bytes();
    // An exponent, if any, is among the last five bytes ("e-324").
    let tail = text.len().saturating_sub(5);
    let (mantissa, exp10) = match text[tail..].iter().position(|&c| c == b'e') {
        Some(i) => (&text[..tail + i], parse_exp(&text[tail + i + 1..])),
        // Without an exponent, ryu writes a non-integer as `{}` does ("12.34", "0.001234").
        None => return out.extend_from_slice(text),
    };
    let mut digits = [0u8; 24];
    let (mut n, mut point) = (0usize, None);
    for &c in mantissa {
        match c {
            b'.' => point = Some(n),
            b'0'..=b'9' => {
                digits[n] = c;
                n += 1;
            }
            _ => {}
        }
    }
    // Value = 0.d1 d2 ... dn * 10^dec.
    let mut dec = point.unwrap_or(n) as i32 + exp10;
    let lead = digits[..n].iter().take_while(|&&c| c == b'0').count();
    dec -= lead as i32;
    let digits = &digits[lead..n];
    let len = digits.len() - digits.iter().rev().take_while(|&&c| c == b'0').count();
    let digits = &digits[..len];
    if v < 0.0 {
        out.push(b'-');
    }
    if dec <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-dec) as usize));
        out.extend_from_slice(digits);
    } else if (dec as usize) < digits.len() {
        out.extend_from_slice(&digits[..dec as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[dec as usize..]);
    } else {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', dec as usize - digits.len()));
    }
}

fn parse_exp(t: &[u8]) -> i32 {
    let (neg, t) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    let x = t
        .iter()
        .fold(0i32, |a, &c| a * 10 + i32::from(c.wrapping_sub(b'0')));
    if neg {
        -x
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(v: f64) -> String {
        let mut b = Vec::new();
        push_f64(&mut b, v);
        String::from_utf8(b).expect("ascii")
    }

    #[test]
    fn awkward_numbers_print_like_display() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-7,
            1.5e-300,
            f64::MIN_POSITIVE,
            5e-324,
            1e21,
            1e22,
            123456789012345680.0,
            f64::MAX,
            f64::MIN,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            879.043600562588,
            0.00009095086612041402,
            -(88_594_481_949_449.0 + 0.125), // an exact tie between two shortest candidates
            0.5,
            2.5,
            0.125,
            1e16,
            1e15 + 0.5,
            9007199254740992.0,
            9007199254740993.0,
            -9007199254740991.0,
            123.456,
            1e-5,
            1.0000000000000002,
            0.30000000000000004,
        ] {
            assert_eq!(text(v), format!("{v}"), "{v:e}");
        }
    }

    proptest! {
        /// The fast writer against the standard library's `{}` (the oracle), on any bits.
        #[test]
        fn floats_print_like_display(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assert_eq!(text(v), format!("{v}"));
        }

        /// Numbers with few fraction bits (where exact ties between shortest candidates live)
        /// and integers around 2^53, which random bits almost never hit.
        #[test]
        fn short_fractions_print_like_display(m in any::<i64>(), shift in 0u32..80) {
            let v = m as f64 / 2f64.powi(shift as i32);
            prop_assert_eq!(text(v), format!("{v}"));
            let w = (m >> 8) as f64 + 0.5f64.powi((shift % 8) as i32 + 1);
            prop_assert_eq!(text(w), format!("{w}"));
        }

        /// The table of [`short_exact_decimal`] against the product it replaces (the oracle),
        /// for odd mantissas of any size, around each limit too.
        #[test]
        fn short_limits_match_the_product(m in any::<u64>(), s in 0usize..40, near in any::<bool>()) {
            let m = if near && s < SHORT_LIMIT.len() { SHORT_LIMIT[s].wrapping_add(m % 3) } else { m } | 1;
            let table = s < SHORT_LIMIT.len() && m <= SHORT_LIMIT[s];
            let product = s <= 26 && u128::from(m) * 5u128.pow(s as u32) < 1_000_000_000_000_000_000u128;
            prop_assert_eq!(table, product);
        }

        /// Numbers written through `Recent` (repeats within and across rows, and more
        /// distinct numbers than ways, so that ways are shared and overwritten) read as
        /// `push_f64` writes them one by one.
        #[test]
        fn recent_numbers_print_like_push_f64(
            pool in proptest::collection::vec(any::<u64>(), 1..200),
            picks in proptest::collection::vec(0usize..400, 1..400),
        ) {
            let mut recent = Recent::default();
            let (mut fast, mut plain) = (Vec::new(), Vec::new());
            for i in picks {
                let v = f64::from_bits(pool[i % pool.len()]);
                let v = if i % 2 == 0 { v } else { (v.to_bits() >> 12) as f64 / 8.0 };
                recent.push(&mut fast, v);
                push_f64(&mut plain, v);
                fast.push(b',');
                plain.push(b',');
            }
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&plain));
        }
    }
}
