//! Number formats and precision configurations.
//!
//! A [`Format`] is what one tensor is stored in: the fp32 reference, fixed point
//! (`fx<bits>.<frac>`, or `fx<bits>` with the fraction bits chosen per tensor from its largest
//! magnitude) or a narrow floating-point format (`fp16`, `bf16`, `fp8e4m3`, `fp8e5m2`,
//! `e<E>m<M>`). A [`PrecisionConfig`] gives a format to each role of an LSTM cell: weights,
//! activations, gate pre-activations and the cell state. The exact arithmetic is specified in
//! `docs/NUMERICS.md`; this module owns the rounding of single values, the evaluator owns the
//! rest.

pub mod detmath;
pub mod fixed;
pub mod float;
pub mod tensor;

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
                return FloatFormat::ieee_like(exp_bits, man_bits)
                    .map(Format::Float)
                    .map_err(|p| bad(token, p));
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

/// The formats of the four roles in an LSTM cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrecisionConfig {
    /// Weights: W, R, the combined bias and peepholes.
    pub w: Format,
    /// Activations: the layer input x, the hidden state h and the gate outputs.
    pub a: Format,
    /// Gate pre-activations (the accumulated sums fed to sigmoid / tanh).
    pub p: Format,
    /// The cell state c.
    pub c: Format,
    /// How `fx<b>` formats of data-derived tensors choose their range (NUMERICS.md §3.1).
    pub cal: CalRule,
    /// Weight ranges per tensor or per output row (NUMERICS.md §3.2).
    pub wscale: WeightScale,
}

/// A percentage in (0, 100], kept as its f64 bits so configs stay `Eq` and `Hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Percent(u64);

impl Percent {
    /// `None` unless 0 < q <= 100.
    pub fn new(q: f64) -> Option<Percent> {
        (q > 0.0 && q <= 100.0).then_some(Percent(q.to_bits()))
    }

    pub fn value(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// Calibration rule for `fx<b>` formats of x, h, pre-activations and c.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CalRule {
    /// The largest magnitude of the calibration run (§3).
    #[default]
    Max,
    /// A percentile of the magnitudes (outliers saturate).
    Percentile(Percent),
    /// The fraction bits with the least squared error over the calibration values.
    Mse,
}

impl fmt::Display for CalRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalRule::Max => write!(f, "max"),
            CalRule::Percentile(q) => write!(f, "p{}", q.value()),
            CalRule::Mse => write!(f, "mse"),
        }
    }
}

impl FromStr for CalRule {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, FormatError> {
        match s {
            "max" => Ok(CalRule::Max),
            "mse" => Ok(CalRule::Mse),
            _ => {
                let Some(q) = s.strip_prefix('p') else {
                    return Err(bad(
                        s,
                        "unknown calibration rule (expected max, mse or p<percent>, e.g. p99.99)",
                    ));
                };
                let v: f64 = q
                    .parse()
                    .map_err(|_| bad(s, "expected p<percent> with a number, e.g. p99.99"))?;
                Percent::new(v)
                    .map(CalRule::Percentile)
                    .ok_or_else(|| bad(s, "the percentile must be in (0, 100]"))
            }
        }
    }
}

/// Whether weight formats resolve per tensor or per output row ("per channel").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightScale {
    #[default]
    Tensor,
    Channel,
}

impl PrecisionConfig {
    /// The fp32 reference configuration.
    pub const FP32: PrecisionConfig = PrecisionConfig::uniform(Format::Fp32);

    /// Every role in one format.
    pub const fn uniform(f: Format) -> Self {
        PrecisionConfig {
            w: f,
            a: f,
            p: f,
            c: f,
            cal: CalRule::Max,
            wscale: WeightScale::Tensor,
        }
    }

    /// True when every role is fixed point: the cell then runs on the integer datapath.
    pub fn is_integer(&self) -> bool {
        [self.w, self.a, self.p, self.c]
            .iter()
            .all(|f| f.is_fixed())
    }

    /// True for the all-fp32 reference.
    pub fn is_fp32(&self) -> bool {
        *self == Self::FP32
    }

    /// w + a + p + c widths: the order "narrower" refers to.
    pub fn total_bits(&self) -> u32 {
        self.w.bits() + self.a.bits() + self.p.bits() + self.c.bits()
    }
}

impl fmt::Display for PrecisionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.w == self.a && self.a == self.p && self.p == self.c {
            write!(f, "{}", self.w)?;
        } else {
            write!(f, "w={},a={},p={},c={}", self.w, self.a, self.p, self.c)?;
        }
        if self.cal != CalRule::Max {
            write!(f, ",cal={}", self.cal)?;
        }
        if self.wscale == WeightScale::Channel {
            write!(f, ",wscale=channel")?;
        }
        Ok(())
    }
}

impl FromStr for PrecisionConfig {
    type Err = FormatError;

    /// `fx8` (all roles) or `w=fx8,a=fx8,p=fx16,c=fx16`. Roles left out take a neighbour's
    /// format: `w` and `a` each other's, `p` and `c` each other's, and failing that `a`'s.
    /// Options follow as `cal=max|mse|p<percent>` and `wscale=tensor|channel`; a bare format
    /// first (`fx8,cal=mse`) is the `a` role, so alone it gives every role.
    fn from_str(s: &str) -> Result<Self, FormatError> {
        let s = s.trim();
        if !s.contains('=') {
            return s.parse::<Format>().map(PrecisionConfig::uniform);
        }
        let (mut w, mut a, mut p, mut c) = (None, None, None, None);
        let (mut cal, mut wscale) = (None, None);
        for (n, part) in s.split(',').enumerate() {
            let part = part.trim();
            let Some((key, value)) = part.split_once('=') else {
                if n == 0 {
                    a = Some(part.parse::<Format>()?);
                    continue;
                }
                return Err(bad(part, "expected role=format (roles: w, a, p, c)"));
            };
            let value = value.trim();
            match key.trim() {
                "cal" if cal.is_none() => {
                    cal = Some(value.parse::<CalRule>()?);
                    continue;
                }
                "wscale" if wscale.is_none() => {
                    wscale = Some(match value {
                        "tensor" => WeightScale::Tensor,
                        "channel" => WeightScale::Channel,
                        _ => {
                            return Err(bad(
                                value,
                                "unknown weight scale (expected tensor or channel)",
                            ))
                        }
                    });
                    continue;
                }
                "cal" | "wscale" => return Err(bad(part, "option given twice")),
                _ => {}
            }
            let slot = match key.trim() {
                "w" => &mut w,
                "a" => &mut a,
                "p" => &mut p,
                "c" => &mut c,
                other => {
                    return Err(bad(
                        part,
                        format!("unknown role '{other}' (roles: w=weights, a=activations, p=pre-activations, c=cell state)"),
                    ))
                }
            };
            if slot.is_some() {
                return Err(bad(part, "role given twice"));
            }
            *slot = Some(value.parse::<Format>()?);
        }
        let a = a.or(w).or(p).or(c).ok_or_else(|| bad(s, "no role given"))?;
        let w = w.unwrap_or(a);
        let p2 = p.or(c).unwrap_or(a);
        let c = c.unwrap_or(p2);
        let wscale = wscale.unwrap_or_default();
        if wscale == WeightScale::Channel && !matches!(w, Format::Fixed { frac: None, .. }) {
            return Err(bad(
                "wscale=channel",
                format!("per-channel weight ranges need a fixed-point weight format without fraction bits (fx<b>), not '{w}'"),
            ));
        }
        Ok(PrecisionConfig {
            w,
            a,
            p: p2,
            c,
            cal: cal.unwrap_or_default(),
            wscale,
        })
    }
}

/// Parses a list of precision configs. Configs are separated by `;` or whitespace; when no
/// config names a role (`fp32,fx16,fx8`), commas separate configs too.
pub fn parse_config_list(s: &str) -> Result<Vec<PrecisionConfig>, FormatError> {
    let items: Vec<&str> = if s.contains('=') {
        s.split(|c: char| c == ';' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect()
    } else {
        s.split(|c: char| c == ';' || c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect()
    };
    if items.is_empty() {
        return Err(bad(s, "empty precision list"));
    }
    items.into_iter().map(str::parse).collect()
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
    fn rejects_bad_tokens_naming_them() {
        for s in [
            "fx0.0", "fx40", "e0m3", "fx", "fx8.", "fx8.31", "fx1", "e9m3", "e4m0", "int8", "fx-3",
        ] {
            let e = s.parse::<Format>().unwrap_err();
            assert!(e.to_string().contains(&format!("'{s}'")), "{e}");
        }
    }

    #[test]
    fn config_roles_and_defaults() {
        let c: PrecisionConfig = "w=fx8,a=fx8,c=fx16".parse().unwrap();
        assert_eq!(c.w.to_string(), "fx8");
        assert_eq!(c.p.to_string(), "fx16");
        assert_eq!(c.c.to_string(), "fx16");
        assert!(c.is_integer());
        let c: PrecisionConfig = "fx12".parse().unwrap();
        assert_eq!(
            c,
            PrecisionConfig::uniform(Format::Fixed {
                bits: 12,
                frac: None
            })
        );
        let c: PrecisionConfig = "w=fp16".parse().unwrap();
        assert_eq!(
            c,
            PrecisionConfig::uniform(Format::Float(FloatFormat::FP16))
        );
        assert!("w=fx8,q=fx8".parse::<PrecisionConfig>().is_err());
        assert!("w=fx8,w=fx8".parse::<PrecisionConfig>().is_err());
        assert!("w=fx8,a".parse::<PrecisionConfig>().is_err());
        let e = "w=fx8,a=fx99".parse::<PrecisionConfig>().unwrap_err();
        assert_eq!(e.token, "fx99");
    }

    #[test]
    fn calibration_and_weight_scale_options_round_trip_and_reject_bad_tokens() {
        for s in [
            "fx8,cal=mse",
            "fx8,cal=p99.99",
            "w=fx8,a=fx8,p=fx16,c=fx16,cal=p50,wscale=channel",
        ] {
            let c: PrecisionConfig = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
        }
        let c: PrecisionConfig = "fx8,cal=p100".parse().unwrap();
        assert_eq!(c.cal, CalRule::Percentile(Percent::new(100.0).unwrap()));
        for (s, token) in [
            ("fx8,cal=p0", "p0"),
            ("fx8,cal=p100.5", "p100.5"),
            ("fx8,cal=p-1", "p-1"),
            ("fx8,cal=pabc", "pabc"),
            ("fx8,cal=median", "median"),
            ("fx8,wscale=row", "row"),
            ("fx8,cal=mse,cal=max", "cal=max"),
        ] {
            let e = s.parse::<PrecisionConfig>().unwrap_err();
            assert_eq!(e.token, token, "{s}: {e}");
        }
        assert_eq!(parse_config_list("fx8,cal=mse;fx16").unwrap().len(), 2);
    }

    #[test]
    fn config_lists() {
        let l = parse_config_list("fp32,fx16,fx12,fx8").unwrap();
        assert_eq!(l.len(), 4);
        let l = parse_config_list("w=fx8,a=fx8;w=fx16,a=fx16 fp16").unwrap();
        assert_eq!(l.len(), 3);
        assert!(parse_config_list(" ").is_err());
    }
}
