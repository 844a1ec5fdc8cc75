//! Precision configurations: the [`PrecisionConfig`] that gives a [`Format`] to each role of an
//! LSTM cell (weights, activations, gate pre-activations, cell state), how `fx<b>` formats of
//! data-derived tensors calibrate their range ([`CalRule`]) and weights their scale
//! ([`WeightScale`]), and the `;`-separated config lists of the command line.

use super::{bad, Format, FormatError};
use std::fmt;
use std::str::FromStr;

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
    /// format (NUMERICS.md §2): `a` takes `w`'s, else `p`'s, else `c`'s; `w` takes `a`'s; `p`
    /// and `c` each other's, and failing that `a`'s.
    /// Options follow as `cal=max|mse|p<percent>` and `wscale=tensor|channel`; a bare format
    /// first (`fx8,cal=mse`) is the `a` role, so alone it gives every role.
    fn from_str(s: &str) -> Result<Self, FormatError> {
        let s = s.trim();
        let list = || {
            bad(
                s,
                "one precision config expected, not a list (roles are written w=fx8,a=fx8; several configs go to `trace --precisions`)",
            )
        };
        if !s.contains('=') {
            if s.contains([',', ';']) || s.split_whitespace().nth(1).is_some() {
                return Err(list());
            }
            return s.parse::<Format>().map(PrecisionConfig::uniform);
        }
        // `w=fx8;a=fx8` and `w=fx8 a=fx8` are two configs: said so, not blamed on the format
        // `fx8;a=fx8` or `fx8 a`. (A typo with a space, `w=fx 8`, is left to the format's
        // own message.)
        let two_roles =
            |part: &str| part.split_whitespace().filter(|t| t.contains('=')).count() > 1;
        if s.contains(';') || s.split(',').any(two_roles) {
            return Err(list());
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
/// config names a role (`fp32,fx16,fx8`), commas separate configs too. An empty entry
/// (`fx8;;fx16`, `fx8,`) is refused, as an empty list is.
pub fn parse_config_list(s: &str) -> Result<Vec<PrecisionConfig>, FormatError> {
    if split_config_list(s).is_empty() {
        return Err(bad(s, "empty precision list"));
    }
    config_items(s)?.into_iter().map(str::parse).collect()
}

/// [`parse_config_list`] for a set of configs that each run once (`trace --precisions`,
/// `ranges --precisions`, `dynamic --levels`, a sweep's `precision.fixed`): a config listed
/// twice, under one spelling or two (`fx8` and `w=fx8`), is refused naming both.
///
/// Configs are compared as parsed values, so spellings of one format are one config: `e5m10`
/// is `fp16`, `e8m7` `bf16`, `e5m2` `fp8e5m2`, and `e8m23` and `f32` are `fp32` (the parser
/// makes binary32 [`Format::Fp32`](super::Format::Fp32): on every value a lane can hold,
/// NUMERICS.md §1.2's rounding with E = 8, M = 23 is fp32's flush, and both compute their
/// activations; they would part only on ±inf, which no lane holds, §15). `e4m3` and `fp8e4m3`
/// are two formats (IEEE-like, largest 240; OCP, largest 448), so both may be listed.
pub fn parse_config_set(s: &str) -> Result<Vec<PrecisionConfig>, FormatError> {
    let configs = parse_config_list(s)?;
    let items = config_items(s)?;
    for (j, c) in configs.iter().enumerate() {
        if let Some(i) = configs[..j].iter().position(|d| d == c) {
            let spellings = if items[i] == items[j] {
                String::new()
            } else {
                format!(
                    " ('{}' and '{}': spellings of one config count as one)",
                    items[i], items[j]
                )
            };
            return Err(bad(s, format!("the config {c} is listed twice{spellings}")));
        }
    }
    Ok(configs)
}

/// The items of a list of configs: separated by `;` or whitespace, and also by commas when no
/// item names a role (`fp32,fx16,fx8`; `w=fx8,a=fx8;fx16`). Runs of whitespace, and whitespace
/// beside a `;` or `,`, separate once; empty and blank lists have no items.
pub fn split_config_list(s: &str) -> Vec<&str> {
    let roles = s.contains('=');
    s.split(|c: char| c == ';' || c.is_whitespace() || (c == ',' && !roles))
        .filter(|t| !t.is_empty())
        .collect()
}

/// [`split_config_list`], refusing an empty entry: nothing (or only whitespace) between two
/// `;` or `,` separators, or before the first or after the last.
pub fn config_items(s: &str) -> Result<Vec<&str>, FormatError> {
    let roles = s.contains('=');
    let pieces: Vec<&str> = s
        .split(|c: char| c == ';' || (c == ',' && !roles))
        .collect();
    if pieces.len() > 1 {
        if let Some(k) = pieces.iter().position(|p| p.trim().is_empty()) {
            let at = match k {
                0 => "before the first separator".to_string(),
                k if k == pieces.len() - 1 => "after the last separator".to_string(),
                k => format!("between separators (entry {})", k + 1),
            };
            return Err(bad(
                s,
                format!("an empty entry {at}: give each config once, separated by ';' (or ',' when none names a role)"),
            ));
        }
    }
    Ok(split_config_list(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FloatFormat;

    #[test]
    fn a_list_where_one_config_belongs_is_named_as_such() {
        for list in [
            "fx8,bf16",
            "fx8;fx16",
            "fx8 fx16",
            "w=fx8;a=fx8",
            "w=fx8 a=fx8",
            "w=fx8, a=fx8 c=fx16",
        ] {
            let e = list.parse::<PrecisionConfig>().unwrap_err().to_string();
            assert!(e.contains("one precision config expected"), "{list}: {e}");
        }
        // Spaces around a role's parts are no list, and a typo with a space in it is named
        // as what it is.
        let spaced: PrecisionConfig = " w = fx4 , a=fx8 ".parse().unwrap();
        assert_eq!(spaced, "w=fx4,a=fx8".parse().unwrap());
        for typo in ["w=fx 8", "fx8,cal=p 99.9", "w x=fx8"] {
            let e = typo.parse::<PrecisionConfig>().unwrap_err().to_string();
            assert!(!e.contains("not a list"), "{typo}: {e}");
        }
        assert_eq!(
            split_config_list("w=bf16,a=fp8e4m3;fx8"),
            ["w=bf16,a=fp8e4m3", "fx8"]
        );
        assert_eq!(
            split_config_list("fp32, fx8 trace8"),
            ["fp32", "fx8", "trace8"]
        );
        assert_eq!(split_config_list("fx8,cal=mse"), ["fx8,cal=mse"]);
        assert!(split_config_list(" ; ,").is_empty());
    }

    #[test]
    fn lists_refuse_empty_entries_and_sets_refuse_repeats() {
        for (list, at) in [
            ("fx8;;fx16", "entry 2"),
            ("fx8,,fx16", "entry 2"),
            ("fx8; ;fx16", "entry 2"),
            ("fx8;", "after the last"),
            (",fx8", "before the first"),
            ("w=fx8,a=fx8;;fx16", "entry 2"),
        ] {
            let e = parse_config_list(list).unwrap_err().to_string();
            assert!(
                e.contains("an empty entry") && e.contains(at),
                "{list}: {e}"
            );
        }
        for list in ["", " ", " ; ,"] {
            let e = parse_config_list(list).unwrap_err().to_string();
            assert!(e.contains("empty precision list"), "{list:?}: {e}");
        }
        assert_eq!(parse_config_list("fx8, fx16 ;fx12").unwrap().len(), 3);
        assert_eq!(parse_config_list("fx8,fx8").unwrap().len(), 2);
        let e = parse_config_set("fx8;fx16;w=fx8").unwrap_err().to_string();
        assert!(
            e.contains("the config fx8 is listed twice ('fx8' and 'w=fx8': spellings"),
            "{e}"
        );
        let e = parse_config_set("fx8 fx8").unwrap_err().to_string();
        assert!(e.ends_with("the config fx8 is listed twice"), "{e}");
        assert_eq!(parse_config_set("fx8;fx8,cal=mse").unwrap().len(), 2);
        for (list, named) in [
            (
                "fp32;e8m23",
                "the config fp32 is listed twice ('fp32' and 'e8m23'",
            ),
            (
                "f32,fp32",
                "the config fp32 is listed twice ('f32' and 'fp32'",
            ),
            ("fp16;e5m10", "the config fp16 is listed twice"),
            ("bf16;e8m7", "the config bf16 is listed twice"),
            ("e5m2;fp8e5m2", "the config fp8e5m2 is listed twice"),
            ("w=fx8,a=fp32;w=fx8,a=e8m23", "is listed twice"),
        ] {
            let e = parse_config_set(list).unwrap_err().to_string();
            assert!(e.contains(named), "{list}: {e}");
        }
        assert_eq!(parse_config_set("e4m3;fp8e4m3").unwrap().len(), 2);
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
