//! Sweeps whose every point would be skipped, refused before any point is costed. The cost
//! model skips a precision option on an architecture point without a precision-tracking unit
//! (a dynamic policy), or whose multipliers cannot take the option's widths (narrower than
//! `compute.min_precision_bits`, wider than `compute.multiplier_bits` but for a bit-serial
//! multiplier's activations). Each field is taken alone, over the values it takes across the
//! ranges (or the base's value): an option refused here is skipped at every point, while a
//! combination of values that is refused is still found point by point, into `skipped.csv`.

use super::row::Axes;
use super::SweepSpec;
use crate::accel::{ArchSpec, MultiplierKind, Override};
use crate::format::parse_config_list;

/// A precision option (a fixed config, or the policies of the levels): its name, its levels'
/// (weight, activation) widths and whether it is dynamic.
type PrecisionChoice = (String, Vec<(i64, i64)>, bool);

/// The values `key` takes over the architecture points: its range's, or the base's.
fn values<T>(axes: &Axes, key: &str, base: T, get: impl Fn(&Override) -> Option<T>) -> Vec<T> {
    match axes.keys.iter().position(|k| k == key) {
        Some(i) => axes.overrides[i].iter().filter_map(get).collect(),
        None => vec![base],
    }
}

/// Why every point of the sweep would be skipped (the key to name and the problem), or
/// `None` when some option may run on some architecture point.
pub(super) fn every_point_skipped(
    spec: &SweepSpec,
    base: &ArchSpec,
    axes: &Axes,
) -> Option<(&'static str, String)> {
    let p = &spec.precision;
    // (An empty list is no config; a list that does not parse was refused before.)
    let parse = |l: &[String]| match l.is_empty() {
        true => Some(Vec::new()),
        false => parse_config_list(&l.join(";")).ok(),
    };
    let (fixed, levels) = (parse(&p.fixed)?, parse(&p.levels)?);
    let bits = |c: &crate::format::PrecisionConfig| (i64::from(c.w.bits()), i64::from(c.a.bits()));
    let mut options: Vec<PrecisionChoice> = fixed
        .iter()
        .map(|c| (format!("the config {c}"), vec![bits(c)], false))
        .collect();
    if !levels.is_empty() {
        let names: Vec<String> = levels.iter().map(|c| c.to_string()).collect();
        let name = format!("the dynamic policies of {}", names.join("|"));
        options.push((name, levels.iter().map(bits).collect(), true));
    }
    let tracking = values(
        axes,
        "tracking.enabled",
        base.tracking.enabled,
        |o| match o {
            Override::Bool(_, v) => Some(*v),
            _ => None,
        },
    );
    let min_bits = values(
        axes,
        "compute.min_precision_bits",
        base.compute.min_precision_bits,
        |o| match o {
            Override::Int(_, v) => Some(*v),
            _ => None,
        },
    );
    let mult_bits = values(
        axes,
        "compute.multiplier_bits",
        base.compute.multiplier_bits,
        |o| match o {
            Override::Int(_, v) => Some(*v),
            _ => None,
        },
    );
    let kinds = values(
        axes,
        "compute.multiplier_kind",
        base.compute.multiplier_kind,
        |o| match o {
            Override::Multiplier(_, v) => Some(*v),
            _ => None,
        },
    );
    let (Some(&lowest), Some(&widest)) = (min_bits.iter().min(), mult_bits.iter().max()) else {
        return None;
    };
    let untracked = match axes.keys.iter().any(|k| k == "tracking.enabled") {
        true => "\"tracking.enabled\" is swept to false only".to_string(),
        false => format!(
            "arch.base {} has tracking.enabled = false and it is not swept",
            spec.arch.base
        ),
    };
    let why = |(name, widths, dynamic): &PrecisionChoice| -> Option<String> {
        if *dynamic && !tracking.contains(&true) {
            return Some(format!(
                "{name} need a precision-tracking unit, and {untracked} (set \
                 tracking.enabled = true in the base or sweep it)"
            ));
        }
        if let Some(&(w, a)) = widths.iter().find(|&&(w, a)| w.min(a) < lowest) {
            let narrow = if w < lowest {
                ("weight", w)
            } else {
                ("activation", a)
            };
            return Some(format!(
                "{name}: {} precision {} bits is narrower than compute.min_precision_bits \
                 ({lowest} at the least)",
                narrow.0, narrow.1
            ));
        }
        let fits = mult_bits.iter().any(|&m| {
            kinds.iter().any(|&k| {
                widths
                    .iter()
                    .all(|&(w, a)| w <= m && (a <= m || k == MultiplierKind::BitSerial))
            })
        });
        (!fits).then(|| {
            format!(
                "{name}: its widths are wider than compute.multiplier_bits ({widest} at the \
                 most)"
            )
        })
    };
    let mut reasons = Vec::new();
    for o in &options {
        reasons.push(why(o)?);
    }
    let key = if fixed.is_empty() {
        "precision.levels"
    } else {
        "precision"
    };
    Some((
        key,
        format!(
            "every point would be skipped, every option at every architecture point: {}",
            reasons.join("; ")
        ),
    ))
}
