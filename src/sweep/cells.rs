//! What each cell of a run's `results.csv` may hold, from its resolved spec: `merge` checks
//! every cell of every row of the files it combines (a shard's `results.csv` may have been
//! edited by hand) before anything is written, and a refusal names the shard's own file,
//! line and column.
//!
//! The rules are those the sweep writes by: a model, precision, policy thresholds, group
//! size or swept value of the run (the same parsers: `format::parse_config_list`,
//! `dynamic::parse_thresholds`, each range expanded and read by its field as `prepare` reads
//! it); numbers where the accelerator model and the accuracy figures go (empty where a figure
//! may be missing); the config hash of the row's own text; a version. A run resumed is
//! checked more strictly (every row recomputed: `checkpoint`); merge has no models to
//! recompute rows with.

use super::plan::config_hash_of;
use super::row::{self, hex16, Col};
use super::SweepSpec;
use crate::accel::ArchSpec;
use std::collections::HashSet;

/// The values a text column may hold, and how they are listed in a refusal.
struct OneOf {
    values: HashSet<Vec<u8>>,
    /// The first few values, as a refusal lists them.
    shown: String,
}

impl OneOf {
    fn new<I: IntoIterator<Item = String>>(values: I) -> OneOf {
        let values: Vec<String> = values.into_iter().collect();
        const SHOWN: usize = 6;
        let mut shown = values
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if values.len() > SHOWN {
            shown.push_str(&format!(", ... {} in all", values.len()));
        }
        OneOf {
            values: values.into_iter().map(String::into_bytes).collect(),
            shown,
        }
    }

    fn check(&self, cell: &[u8], what: &str) -> Result<(), String> {
        if self.values.contains(cell) {
            return Ok(());
        }
        Err(format!(
            "`{}` is not {what} of this run ({})",
            String::from_utf8_lossy(cell),
            self.shown
        ))
    }
}

/// What every column of one run's `results.csv` may hold.
pub(super) struct CellCheck {
    columns: Vec<String>,
    kinds: Vec<Col>,
    models: OneOf,
    /// The policies' precision text (their levels) and their thresholds, when there are any.
    policies: Option<(Vec<u8>, OneOf)>,
    /// Every precision text: the fixed configs' and the policies' levels.
    precisions: OneOf,
    group_sizes: OneOf,
    /// The values of each swept key, as the rows write them.
    values: Vec<OneOf>,
}

impl CellCheck {
    /// The check of the rows of the run `spec` (recorded with its base architecture `base`);
    /// a spec that does not read back is refused naming `file` (its spec.resolved.toml).
    pub(super) fn new(file: &str, spec: &SweepSpec, base: &ArchSpec) -> anyhow::Result<CellCheck> {
        let p = &spec.precision;
        let bad = |key: &str, e: &dyn std::fmt::Display| anyhow::anyhow!("{file}: {key}: {e}");
        let configs = |list: &[String]| crate::format::parse_config_list(&list.join(";"));
        let fixed: Vec<String> = if p.fixed.is_empty() {
            Vec::new()
        } else {
            configs(&p.fixed)
                .map_err(|e| bad("precision.fixed", &e))?
                .iter()
                .map(|c| c.to_string())
                .collect()
        };
        let policies = if p.levels.is_empty() {
            None
        } else {
            let levels = configs(&p.levels).map_err(|e| bad("precision.levels", &e))?;
            let grid = crate::dynamic::parse_thresholds(&p.thresholds, levels.len())
                .map_err(|e| bad("precision.thresholds", &e))?;
            let thresholds = grid
                .iter()
                .map(|g| crate::dynamic::thresholds_text(&g.thresholds));
            Some((crate::dynamic::levels_text(&levels), OneOf::new(thresholds)))
        };
        let keys: Vec<String> = spec.arch.ranges.keys().cloned().collect();
        let mut values = Vec::with_capacity(keys.len());
        for k in &keys {
            let texts = super::ranges::expand(file, k, &spec.arch.ranges[k])?;
            let (v, _) = super::prepare::typed_values(file, &spec.arch.base, base, k, &texts)?;
            values.push(OneOf::new(v));
        }
        Ok(CellCheck {
            columns: row::columns(&keys),
            kinds: row::kinds(keys.len()),
            models: OneOf::new(spec.workload.models.iter().cloned()),
            precisions: OneOf::new(
                fixed
                    .into_iter()
                    .chain(policies.as_ref().map(|(l, _)| l.clone())),
            ),
            policies: policies.map(|(l, t)| (l.into_bytes(), t)),
            group_sizes: OneOf::new(p.dpred_group_sizes.iter().map(|g| g.to_string())),
            values,
        })
    }

    /// Refuses a header that is not this run's columns: the problem.
    pub(super) fn header(&self, header: &csv::ByteRecord) -> Result<(), String> {
        let got: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        if got == self.columns {
            return Ok(());
        }
        match got.iter().zip(&self.columns).position(|(a, b)| a != b) {
            Some(i) => Err(format!(
                "column {} is `{}`, but this run's column {} is `{}`",
                i + 1,
                got[i],
                i + 1,
                self.columns[i]
            )),
            None => Err(format!(
                "{} columns, but this run has {}",
                got.len(),
                self.columns.len()
            )),
        }
    }

    /// Checks every cell of a row (of a file whose header passed [`CellCheck::header`]): the
    /// first bad cell's column name and the problem. `prev`, a row that passed, spares the
    /// cells equal to its own (rows in point order share their option's cells and most swept
    /// values), except those checked with other cells (thresholds, config hash).
    pub(super) fn row(
        &self,
        rec: &csv::ByteRecord,
        prev: Option<&csv::ByteRecord>,
    ) -> Result<(), (&str, String)> {
        let cell = |i: usize| rec.get(i).unwrap_or(b"");
        let passed = |i: usize| prev.is_some_and(|p| p.get(i) == rec.get(i));
        let keys = self.values.len();
        for (i, kind) in self.kinds.iter().enumerate() {
            let c = cell(i);
            let spared = match *kind {
                // Checked with the precision before it.
                Col::Lead(2) => passed(i) && passed(i - 1),
                // Checked with every text cell before it.
                Col::ConfigHash => false,
                _ => passed(i),
            };
            if spared {
                continue;
            }
            let checked = match *kind {
                // `merge` reads the point index itself (and names a bad one).
                Col::Point => Ok(()),
                Col::Lead(0) => self.models.check(c, "a model"),
                Col::Lead(1) => self.precisions.check(c, "a precision"),
                Col::Lead(2) => self.thresholds(cell(i - 1), c),
                Col::Lead(_) => self.group_sizes.check(c, "a DPRed group size"),
                Col::Arch(k) => self.values[k].check(c, "a value"),
                Col::Metric(_) => number(c),
                // Figures a point or an option may lack (no baseline, no head, no labels).
                Col::Speedup | Col::EnergySaving | Col::Accuracy(_) if c.is_empty() => Ok(()),
                Col::Speedup | Col::EnergySaving | Col::Accuracy(_) => number(c),
                Col::ConfigHash => {
                    let lead = (1..=4).map(cell);
                    let want = config_hash_of(lead, (5..5 + keys).map(cell));
                    if hex16(want) == c {
                        Ok(())
                    } else {
                        Err(format!(
                            "`{}` is not the row's config hash (its model, precision, thresholds, group size and swept values give {want:016x})",
                            String::from_utf8_lossy(c)
                        ))
                    }
                }
                Col::ToolVersion => version(c),
            };
            checked.map_err(|problem| (self.columns[i].as_str(), problem))?;
        }
        Ok(())
    }

    /// A thresholds cell after (valid) precision `precision`: empty for a fixed config, one
    /// of the policies' threshold lists for their levels.
    fn thresholds(&self, precision: &[u8], c: &[u8]) -> Result<(), String> {
        match &self.policies {
            Some((levels, grid)) if levels == precision => grid.check(c, "a threshold list"),
            _ if c.is_empty() => Ok(()),
            _ => Err(format!(
                "`{}`, but the fixed precision {} has no thresholds",
                String::from_utf8_lossy(c),
                String::from_utf8_lossy(precision)
            )),
        }
    }
}

/// A number as the front reads one (`pareto::front_of_csv`: trimmed, Rust's f64 syntax).
fn number(c: &[u8]) -> Result<(), String> {
    let t = c.trim_ascii();
    if t.is_empty() {
        return Err("empty cell, expected a number".into());
    }
    match std::str::from_utf8(t).map(str::parse::<f64>) {
        Ok(Ok(_)) => Ok(()),
        _ => Err(format!("`{}` is not a number", String::from_utf8_lossy(t))),
    }
}

/// A tool version as `CARGO_PKG_VERSION` writes one: a digit first, then digits, letters,
/// `.`, `-` and `+`.
fn version(c: &[u8]) -> Result<(), String> {
    let ok = c.first().is_some_and(u8::is_ascii_digit)
        && c.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-.+".contains(b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a version of lstm-dse",
            String::from_utf8_lossy(c)
        ))
    }
}
