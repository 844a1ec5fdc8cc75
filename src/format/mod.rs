//! Number formats and precision configurations.
//!
//! A [`Format`] is what one tensor is stored in: the fp32 reference, fixed point
//! (`fx<bits>.<frac>`, or `fx<bits>` with the fraction bits chosen per tensor from its largest
//! magnitude) or a narrow floating-point format (`fp16`, `bf16`, `fp8e4m3`, `fp8e5m2`,
//! `e<E>m<M>`). A [`PrecisionConfig`] gives a format to each role of an LSTM cell: weights,
//! activations, gate pre-activations and the cell state. The exact arithmetic is specified in
//! `docs/NUMERICS.md`; this module owns the rounding of single values, the evaluator owns the
//! rest.

mod config;
pub mod detmath;
pub mod fixed;
pub mod float;
pub mod tensor;

pub use config::{
    config_items, parse_config_list, parse_config_set, split_config_list, CalRule, Percent,
    PrecisionConfig, WeightScale,
};

pub use fixed::Fixed;
pub use float::FloatFormat;

use std::fmt;
use std::str::FromStr;

/// Widest fixed-point format: 16 bits keep every weight x activation product exact in 32 bits,
/// which is what lets the GPU kernels use plain `i32` multiplies (see docs/NUMERICS.md).
pub const MAX_FIXED_BITS: u32 = 16;
/// Largest explicit or derived number of fraction bits.
pub const MAX_FRAC_BITS: i32 = 30;

/// A malformed format or precision string; `Display` is one line naming the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("precision '{token}': {problem}")]
pub struct FormatError {
    /// The offending token, as the user wrote it.
    pub token: String,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(token: &str, problem: impl Into<String>) -> FormatError {
    FormatError {
        token: token.to_string(),
        problem: problem.into(),
    }
}

/// A number format as written by the user (fixed-point fraction bits may still be open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// IEEE binary32, the reference: plain f32 arithmetic.
    Fp32,
    /// Two's-complement fixed point with `bits` bits including the sign; `frac: None` means
    /// "choose per tensor from its largest magnitude" (see [`Fixed::for_max_abs`]).
    Fixed { bits: u32, frac: Option<i32> },
    /// A narrow binary floating-point format.
    Float(FloatFormat),
}

impl Format {
    /// Resolves open fraction bits for a tensor whose largest magnitude is `max_abs`.
    pub fn resolve(self, max_abs: f32) -> Resolved {
        match self {
            Format::Fp32 => Resolved::Fp32,
            Format::Fixed {
                bits,
                frac: Some(frac),
            } => Resolved::Fixed(Fixed { bits, frac }),
            Format::Fixed { bits, frac: None } => {
                Resolved::Fixed(Fixed::for_max_abs(bits, max_abs))
            }
            Format::Float(f) => Resolved::Float(f),
        }
    }

    /// Storage width in bits (32 for fp32).
    pub fn bits(self) -> u32 {
        match self {
            Format::Fp32 => 32,
            Format::Fixed { bits, .. } => bits,
            Format::Float(f) => f.bits(),
        }
    }

    /// The format `f`, where `e8m23` is [`Format::Fp32`]: one format, one value, however it is
    /// spelled (as `e5m10` is [`FloatFormat::FP16`]). NUMERICS.md §1 gives the argument: on
    /// every value a lane can hold, §1.2's rounding with E = 8, M = 23 is fp32's flush, and
    /// both compute their activations (§4); `tests/trace.rs` runs the format as §1.2 reads it
    /// beside fp32 and demands the same bits.
    pub fn float(f: FloatFormat) -> Format {
        if f == FloatFormat::BINARY32 {
            Format::Fp32
        } else {
            Format::Float(f)
        }
    }

    /// True for fixed-point formats.
    pub fn is_fixed(self) -> bool {
        matches!(self, Format::Fixed { .. })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Fp32 => write!(f, "fp32"),
            Format::Fixed { bits, frac: None } => write!(f, "fx{bits}"),
            Format::Fixed {
                bits,
                frac: Some(frac),
            } => write!(f, "fx{bits}.{frac}"),
            Format::Float(x) => write!(f, "{x}"),
        }
    }
}

fn parse_u32(token: &str, digits: &str, what: &str) -> Result<u32, FormatError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
        return Err(bad(token, format!("{what} must be a small decimal number")));
    }
    digits
        .parse()
        .map_err(|_| bad(token, format!("{what} is not a number")))
}

impl FromStr for Format {
    type Err = FormatError;

    fn from_str(token: &str) -> Result<Self, FormatError> {
        let s = token.trim().to_ascii_lowercase();
        match s.as_str() {
            "fp32" | "f32" => return Ok(Format::Fp32),
            "fp16" | "f16" => return Ok(Format::Float(FloatFormat::FP16)),
            "bf16" => return Ok(Format::Float(FloatFormat::BF16)),
            "fp8e4m3" => return Ok(Format::Float(FloatFormat::FP8_E4M3)),
            "fp8e5m2" => return Ok(Format::Float(FloatFormat::FP8_E5M2)),
            _ => {}
        }
        if let Some(rest) = s.strip_prefix("fx") {
            let (bits_s, frac_s) = match rest.split_once('.') {
                Some((b, f)) => (b, Some(f)),
                None => (rest, None),
            };
            let bits = parse_u32(token, bits_s, "the bit width")?;
            if !(2..=MAX_FIXED_BITS).contains(&bits) {
                return Err(bad(
                    token,
                    format!("fixed-point width must be 2..={MAX_FIXED_BITS} bits (sign included), got {bits}"),
                ));
            }
            let frac = match frac_s {
                None => None,
                Some(f) => {
                    let frac = parse_u32(token, f, "the fraction-bit count")? as i32;
                    if frac > MAX_FRAC_BITS {
                        return Err(bad(
                            token,
                            format!("fraction bits must be 0..={MAX_FRAC_BITS}, got {frac}"),
                        ));
                    }
                    Some(frac)
                }
            };
            return Ok(Format::Fixed { bits, frac });
        }
        if let Some(rest) = s.strip_prefix('e') {
            if let Some((e_s, m_s)) = rest.split_once('m') {
                let exp_bits = parse_u32(token, e_s, "the exponent width")?;
                let man_bits = parse_u32(token, m_s, "the mantissa width")?;
                let f = FloatFormat::ieee_like(exp_bits, man_bits).map_err(|p| bad(token, p))?;
                return Ok(Format::float(f));
            }
        }
        Err(bad(
            token,
            "unknown format (expected fp32, fx<bits>[.<frac>], fp16, bf16, fp8e4m3, fp8e5m2 or e<E>m<M>)",
        ))
    }
}

/// A format with every parameter fixed: what one concrete tensor is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolved {
    Fp32,
    Fixed(Fixed),
    Float(FloatFormat),
}

impl Resolved {
    /// Fraction bits of a fixed-point format.
    pub fn frac(self) -> Option<i32> {
        match self {
            Resolved::Fixed(f) => Some(f.frac),
            _ => None,
        }
    }

    /// Rounds an f32 value to this format (round half to even, saturating; fp32 only flushes
    /// subnormals; see NUMERICS.md).
    pub fn round(self, x: f32) -> f32 {
        match self {
            Resolved::Fp32 => detmath::ftz(x),
            Resolved::Fixed(f) => f.to_f32(f.quantize(x)),
            Resolved::Float(f) => f.round(x),
        }
    }

    /// Number of distinct codes when the format is at most 16 bits wide (the size of an
    /// activation lookup table indexed by it), otherwise `None`.
    pub fn table_len(self) -> Option<usize> {
        let bits = match self {
            Resolved::Fp32 => return None,
            Resolved::Fixed(f) => f.bits,
            Resolved::Float(f) => f.bits(),
        };
        (bits <= 16).then(|| 1usize << bits)
    }

    /// The table index of a value of this format (only for formats with a table).
    pub fn table_index(self, x: f32) -> usize {
        match self {
            Resolved::Fp32 => 0,
            Resolved::Fixed(f) => f.table_index(f.quantize(x)),
            Resolved::Float(f) => f.encode(x) as usize,
        }
    }

    /// The value of table entry `index` (inverse of [`Resolved::table_index`]).
    pub fn table_value(self, index: usize) -> f32 {
        match self {
            Resolved::Fp32 => 0.0,
            Resolved::Fixed(f) => f.to_f32(index as i32 - (1 << (f.bits - 1))),
            Resolved::Float(f) => f.decode(index as u32),
        }
    }

    /// True for fp32 (rounding is the identity).
    pub fn is_fp32(self) -> bool {
        matches!(self, Resolved::Fp32)
    }
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolved::Fp32 => write!(f, "fp32"),
            Resolved::Fixed(x) => write!(f, "fx{}.{}", x.bits, x.frac),
            Resolved::Float(x) => write!(f, "{x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_family() {
        for s in [
            "fp32", "fx8", "fx8.4", "fx16.12", "fp16", "bf16", "fp8e4m3", "fp8e5m2", "e3m2",
        ] {
            let f: Format = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
        assert_eq!("e5m10".parse::<Format>().unwrap().to_string(), "fp16");
    }

    #[test]
    fn spellings_of_one_format_parse_to_one_value_named_the_short_way() {
        for (alias, name) in [
            ("e8m23", "fp32"),
            ("f32", "fp32"),
            ("E8M23", "fp32"),
            ("e5m10", "fp16"),
            ("f16", "fp16"),
            ("e8m7", "bf16"),
            ("e5m2", "fp8e5m2"),
        ] {
            let (a, n) = (
                alias.parse::<Format>().unwrap(),
                name.parse::<Format>().unwrap(),
            );
            assert_eq!(a, n, "{alias}");
            assert_eq!(a.to_string(), name);
        }
        assert_eq!("e8m23".parse::<Format>().unwrap(), Format::Fp32);
        // e4m3 is the IEEE-like format (largest 240), not OCP's fp8e4m3 (largest 448).
        assert_ne!("e4m3".parse::<Format>(), "fp8e4m3".parse::<Format>());
        assert_eq!("e8m22".parse::<Format>().unwrap().to_string(), "e8m22");
    }

    #[test]
    fn rejects_bad_tokens_naming_them() {
        for s in [
            "fx0.0", "fx40", "e0m3", "fx", "fx8.", "fx8.31", "fx1", "e9m3", "e4m0", "int8", "fx-3",
        ] {
            let e = s.parse::<Format>().unwrap_err();
            assert!(e.to_string().contains(&format!("'{s}'")), "{e}");
        }
    }
}
