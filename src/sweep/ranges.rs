//! Range values: a range of the sweep file (`[arch.ranges]`) expanded into the texts of its
//! values, and each value's canonical text once its field has parsed it (what duplicates are
//! compared by and what `results.csv` holds).

use super::spec::{RangeSpec, SpecError, Value};
use crate::accel::Override;

/// Whole numbers below this are written as integers (exact in f64 up to 2^53).
const WHOLE: f64 = 9e15;

/// How a range shows a value (the text `--set` reads).
fn show(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        // Whole floats past 2^53 as exponents ("1e19"): written out, they would read as an
        // integer, too large for the field beyond i64 (the same bound as linear ranges).
        Value::Float(f) if f.fract() == 0.0 && f.abs() >= WHOLE => format!("{f:e}"),
        Value::Float(f) => format!("{f}"),
        Value::Text(s) => s.clone(),
    }
}

/// Expands one range into its values (as strings for `--set`).
pub fn expand(file: &str, key: &str, r: &RangeSpec) -> Result<Vec<String>, SpecError> {
    let bad = |problem: String| SpecError {
        file: file.to_string(),
        key: format!("arch.ranges.\"{key}\""),
        problem,
    };
    let values = match r {
        RangeSpec::List(v) => v.iter().map(show).collect::<Vec<_>>(),
        RangeSpec::One(v) => vec![show(v)],
        RangeSpec::Text(t) => {
            let parts: Vec<&str> = t.split(':').collect();
            let num = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| !v.is_nan())
                    .ok_or_else(|| bad(format!("'{s}' in '{t}' is not a number")))
            };
            let unbounded = |a: f64, b: f64| {
                (!a.is_finite() || !b.is_finite()).then(|| {
                    bad(format!(
                        "'{t}': unbounded range (start and stop must be finite numbers)"
                    ))
                })
            };
            let within_limit = |count: f64| {
                let n = (count.is_finite() && count < 1e38).then_some(count as u128);
                crate::limits::check_points(&format!("'{t}'"), n, "values")
                    .map_err(|e| bad(e.to_string()))
            };
            match parts[..] {
                ["log", a, b, n] => {
                    let (a, b) = (num(a)?, num(b)?);
                    if let Some(e) = unbounded(a, b) {
                        return Err(e);
                    }
                    let n: u64 = n
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("'{n}' in '{t}' is not a count")))?;
                    if n == 0 || a <= 0.0 || b <= 0.0 {
                        return Err(bad(format!(
                            "'{t}': log ranges need start, stop > 0 and a count >= 1"
                        )));
                    }
                    within_limit(n as f64)?;
                    crate::grid::log_points(a, b, n as usize)
                        .into_iter()
                        .map(|v| show(&Value::Float(v)))
                        .collect()
                }
                [a, b, step] => {
                    let (a, b, step) = (num(a)?, num(b)?, num(step)?);
                    if let Some(e) = unbounded(a, b) {
                        return Err(e);
                    }
                    if step == 0.0 || !step.is_finite() || (b - a) * step < 0.0 {
                        return Err(bad(format!(
                            "'{t}': the step {step} goes the wrong way (or is 0) from {a} to {b}"
                        )));
                    }
                    let count = ((b - a) / step + 1e-9).floor() + 1.0;
                    within_limit(count)?;
                    let n = count as usize;
                    // Whole numbers as integers while they are exact (beyond 2^53, `as i64`
                    // would saturate: 1e19 became 9223372036854775807).
                    let int = [a, b, step, a + step * (n as f64 - 1.0)]
                        .iter()
                        .all(|v| v.fract() == 0.0 && v.abs() < WHOLE);
                    (0..n)
                        .map(|k| {
                            let v = a + step * k as f64;
                            if int {
                                format!("{}", v as i64)
                            } else {
                                show(&Value::Float(crate::grid::round12(v)))
                            }
                        })
                        .collect()
                }
                _ => {
                    return Err(bad(format!(
                        "'{t}': expected a list, start:stop:step or log:start:stop:count"
                    )))
                }
            }
        }
    };
    if values.is_empty() {
        return Err(bad("empty range".into()));
    }
    Ok(values)
}

/// The canonical text of a range value once its field has parsed it (`text`, read as `--set`
/// reads it): what the field holds, shown as a range shows it. `"0x4"`, `"+4"` and `" 4"` are
/// 4, `"1.50"` is 1.5, `2e0` is 2 for a float field, `-0.0` is 0 and `"tiled "` is tiled:
/// duplicates are compared by it, and `results.csv` holds it.
pub fn canonical(o: &Override, text: &str) -> String {
    fn word<T: serde::Serialize>(v: &T) -> Option<String> {
        match toml::Value::try_from(v) {
            Ok(toml::Value::String(s)) => Some(s),
            _ => None,
        }
    }
    let known = match o {
        Override::Int(_, i) => Some(show(&Value::Int(*i))),
        // -0.0 + 0.0 is 0.0: the two zeros are one value.
        Override::Float(_, f) => Some(show(&Value::Float(f + 0.0))),
        Override::Bool(_, b) => Some(show(&Value::Bool(*b))),
        Override::Text(_, s) => Some(s.clone()),
        Override::Multiplier(_, v) => word(v),
        Override::Dispatch(_, v) => word(v),
        Override::Input(_, v) => word(v),
        Override::Mode(_, v) => word(v),
        Override::Generic(_) => None,
    };
    known.unwrap_or_else(|| text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand() {
        let t = |s: &str| RangeSpec::Text(s.into());
        assert_eq!(
            expand("f", "k", &t("4:16:4")).unwrap(),
            ["4", "8", "12", "16"]
        );
        assert_eq!(
            expand("f", "k", &t("0.5:1.5:0.5")).unwrap(),
            ["0.5", "1", "1.5"]
        );
        assert_eq!(
            expand("f", "k", &t("log:1:100:3")).unwrap(),
            ["1", "10", "100"]
        );
        assert_eq!(
            expand("f", "k", &t("16:4:-4")).unwrap(),
            ["16", "12", "8", "4"]
        );
        let e = expand("f", "k", &t("4:16:-4")).unwrap_err().to_string();
        assert!(e.contains("wrong way"), "{e}");
        assert!(expand("f", "k", &RangeSpec::List(vec![]))
            .unwrap_err()
            .to_string()
            .contains("empty range"));
        let l = RangeSpec::List(vec![Value::Int(2), Value::Text("tiled".into())]);
        assert_eq!(expand("f", "k", &l).unwrap(), ["2", "tiled"]);
        // Whole floats beyond i64 stay floats (they were an integer too large for the field,
        // or saturated to 9223372036854775807).
        let l = RangeSpec::List(vec![Value::Float(1e19), Value::Float(1.0)]);
        assert_eq!(expand("f", "k", &l).unwrap(), ["1e19", "1"]);
        assert_eq!(
            expand("f", "k", &t("1e19:2e19:1e19")).unwrap(),
            ["1e19", "2e19"]
        );
        assert_eq!(
            expand("f", "k", &t("log:1e18:1e20:3")).unwrap(),
            ["1e18", "1e19", "1e20"]
        );
    }

    #[test]
    fn huge_and_unbounded_ranges_are_refused_before_expanding() {
        let t = |s: &str| {
            expand("f", "k", &RangeSpec::Text(s.into()))
                .unwrap_err()
                .to_string()
        };
        for (range, want) in [
            ("0:inf:1", "unbounded range"),
            ("-inf:0:1", "unbounded range"),
            ("log:1:inf:3", "unbounded range"),
            (
                "1:1e12:1",
                "1000000000000 values, more than the limit of 10000000",
            ),
            ("log:1:10:1000000000000", "1000000000000 values"),
            ("0:1e300:1e-300", "more than 2^128 values"),
            ("0:1:nan", "is not a number"),
            ("log:1:10:99999999999999999999999", "is not a count"),
        ] {
            let e = t(range);
            assert!(e.contains(want) && !e.contains('\n'), "{range}: {e}");
            assert!(e.starts_with("f: arch.ranges.\"k\": "), "{e}");
        }
    }

    #[test]
    fn log_ranges_whose_ratio_overflows_are_stepped_through_logarithms() {
        // b / a was inf (or 0): every value past the first was inf, "listed twice".
        let t = |s: &str| -> Vec<f64> {
            let v = expand("f", "k", &RangeSpec::Text(s.into())).unwrap();
            v.iter().map(|v| v.parse().unwrap()).collect()
        };
        assert_eq!(t("log:1e-200:1e200:5"), [1e-200, 1e-100, 1.0, 1e100, 1e200]);
        assert_eq!(t("log:1e200:1e-200:3"), [1e200, 1.0, 1e-200]);
    }
}
