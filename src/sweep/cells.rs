//! What each cell of a run's `results.csv` may hold, from its resolved spec: `merge` checks
//! every cell of every row of the files it combines (a shard's `results.csv` may have been
//! edited by hand) before anything is written, and a refusal names the shard's own file,
//! line and column.
//!
//! The rules are those the sweep writes by: a model, precision, policy thresholds, group
//! size or swept value of the run (the same parsers: `format::parse_config_list`,
//! `dynamic::parse_thresholds`, each range expanded and read by its field as `prepare` reads
//! it), and the model, option and swept values of the row's own point index (the plan's
//! order); numbers where the accelerator model and the accuracy figures go, spelt as the
//! sweep writes them (`number::push_f64`), finite and in their quantity's range (empty where
//! a figure may be missing, and where the run cannot have it); the config hash of the row's
//! own text; the version most rows have. A refusal quotes a cell briefly ([`shown`]). A run resumed is
//! checked more strictly (every row recomputed: `checkpoint`); merge has no models to
//! recompute rows with.

use super::number::push_f64;
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
        OneOf::ordered(values).0
    }

    /// The check, and the values in the order given.
    fn ordered<I: IntoIterator<Item = String>>(values: I) -> (OneOf, Vec<Vec<u8>>) {
        let values: Vec<String> = values.into_iter().collect();
        let list: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
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
        let one_of = OneOf {
            values: values.into_iter().map(String::into_bytes).collect(),
            shown,
        };
        (one_of, list)
    }

    fn check(&self, cell: &[u8], what: &str) -> Result<(), String> {
        if self.values.contains(cell) {
            return Ok(());
        }
        Err(format!(
            "`{}` is not {what} of this run ({})",
            shown(cell),
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
    /// The run's points in the plan's order ([`super::plan`]): models, then each model's
    /// precision options (precision, thresholds, group size cells), then architecture points
    /// (each key's values, the last key fastest).
    order: Order,
    /// Whether the run reads labels (without them `task_accuracy` is always empty).
    labels: bool,
    /// The version of lstm-dse that made most rows (set by [`CellCheck::versions`]).
    version: Option<Vec<u8>>,
}

/// What point `i` of a run is, in the order the sweep enumerates them.
struct Order {
    models: Vec<Vec<u8>>,
    options: Vec<[Vec<u8>; 3]>,
    values: Vec<Vec<Vec<u8>>>,
    arch_points: u64,
    /// Whether models x options x architecture points is the run's recorded count (set by
    /// [`CellCheck::points`]); if not, rows are checked without their point's configuration.
    known: bool,
}

impl Order {
    /// (model, option, architecture point) of point `idx`.
    /// `None` past the run's points (a row another check refuses, naming its point).
    fn locate(&self, idx: u64) -> Option<(usize, usize, u64)> {
        let per_model = (self.options.len() as u64).checked_mul(self.arch_points)?;
        let model = idx.checked_div(per_model)?;
        if model >= self.models.len() as u64 {
            return None;
        }
        let rest = idx % per_model;
        Some((
            model as usize,
            (rest / self.arch_points) as usize,
            rest % self.arch_points,
        ))
    }

    /// The value cell of key `k` at architecture point `ai` (last key fastest).
    fn value(&self, mut ai: u64, k: usize) -> &[u8] {
        for v in self.values[k + 1..].iter().rev() {
            ai /= v.len() as u64;
        }
        let v = &self.values[k];
        &v[(ai % v.len() as u64) as usize]
    }
}

impl CellCheck {
    /// The check of the rows of the run `spec` (recorded with its base architecture `base`);
    /// a spec that does not read back is refused naming `file` (its spec.resolved.toml).
    pub(super) fn new(file: &str, spec: &SweepSpec, base: &ArchSpec) -> anyhow::Result<CellCheck> {
        let p = &spec.precision;
        let bad = |key: &str, e: &dyn std::fmt::Display| anyhow::anyhow!("{file}: {key}: {e}");
        let configs = |list: &[String]| crate::format::parse_config_list(&list.join(";"));
        let fixed_configs = if p.fixed.is_empty() {
            Vec::new()
        } else {
            configs(&p.fixed).map_err(|e| bad("precision.fixed", &e))?
        };
        let fixed: Vec<String> = fixed_configs.iter().map(|c| c.to_string()).collect();
        // The options before DPRed variants, as `options::compute` lists them: (precision,
        // thresholds, integer).
        let mut base_options: Vec<(String, String, bool)> = fixed_configs
            .iter()
            .map(|c| (c.to_string(), String::new(), c.is_integer()))
            .collect();
        let policies = if p.levels.is_empty() {
            None
        } else {
            let levels = configs(&p.levels).map_err(|e| bad("precision.levels", &e))?;
            let grid = crate::dynamic::parse_thresholds(&p.thresholds, levels.len())
                .map_err(|e| bad("precision.thresholds", &e))?;
            let text = crate::dynamic::levels_text(&levels);
            let integer = levels.last().is_some_and(|c| c.is_integer());
            let thresholds: Vec<String> = grid
                .iter()
                .map(|g| crate::dynamic::thresholds_text(&g.thresholds))
                .collect();
            for t in &thresholds {
                base_options.push((text.clone(), t.clone(), integer));
            }
            Some((text, OneOf::new(thresholds)))
        };
        // DPRed variants after them, as `options::options` adds them.
        let (plain, sizes) = p.dpred_sizes();
        let mut options: Vec<[Vec<u8>; 3]> = Vec::new();
        let option = |(p, t, _): &(String, String, bool), g: usize| {
            [
                p.clone().into_bytes(),
                t.clone().into_bytes(),
                g.to_string().into_bytes(),
            ]
        };
        if plain {
            options.extend(base_options.iter().map(|o| option(o, 0)));
        }
        for o in base_options.iter().filter(|o| o.2) {
            options.extend(sizes.iter().map(|&g| option(o, g)));
        }
        let keys: Vec<String> = spec.arch.ranges.keys().cloned().collect();
        let mut values = Vec::with_capacity(keys.len());
        let mut ordered = Vec::with_capacity(keys.len());
        for k in &keys {
            let texts = super::ranges::expand(file, k, &spec.arch.ranges[k])?;
            let (v, _) = super::prepare::typed_values(file, &spec.arch.base, base, k, &texts)?;
            let (one_of, list) = OneOf::ordered(v);
            values.push(one_of);
            ordered.push(list);
        }
        let (models, model_list) = OneOf::ordered(spec.workload.models.iter().cloned());
        Ok(CellCheck {
            columns: row::columns(&keys),
            kinds: row::kinds(keys.len()),
            models,
            precisions: OneOf::new(
                fixed
                    .into_iter()
                    .chain(policies.as_ref().map(|(l, _)| l.clone())),
            ),
            policies: policies.map(|(l, t)| (l.into_bytes(), t)),
            group_sizes: OneOf::new(p.dpred_group_sizes.iter().map(|g| g.to_string())),
            values,
            order: Order {
                arch_points: ordered.iter().map(|v| v.len() as u64).product(),
                models: model_list,
                options,
                values: ordered,
                known: false,
            },
            labels: spec.workload.labels.is_some(),
            version: None,
        })
    }

    /// The run's number of points: the point order is checked when it accounts for them.
    pub(super) fn points(&mut self, total: u64) {
        let o = &mut self.order;
        o.known = (o.models.len() as u64)
            .checked_mul(o.options.len() as u64)
            .and_then(|n| n.checked_mul(o.arch_points))
            .is_some_and(|n| n == total && n > 0);
    }

    /// The rows' `tool_version` cells (in point order): the run's is the one most rows have
    /// (one binary makes a run's rows; spec.resolved.toml records the model's and the
    /// numerics' versions, not the crate's).
    pub(super) fn versions<'a>(&mut self, cells: impl Iterator<Item = &'a [u8]>) {
        let mut counts: std::collections::HashMap<&[u8], usize> = Default::default();
        for c in cells {
            *counts.entry(c).or_default() += 1;
        }
        self.version = (counts.into_iter())
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(v, _)| v.to_vec());
    }

    /// Refuses a header that is not this run's columns: the problem.
    pub(super) fn header(&self, header: &csv::ByteRecord) -> Result<(), String> {
        if header.iter().eq(self.columns.iter().map(String::as_bytes)) {
            return Ok(());
        }
        // (Escaped and cut for the message only: a long or odd name is compared whole.)
        let got: Vec<String> = header.iter().map(shown).collect();
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

    /// Checks every cell of the row of point `idx` (of a file whose header passed
    /// [`CellCheck::header`]): the first bad cell's column name and the problem. `prev`, the
    /// row before it in point order that passed, spares the cells equal to its own (rows in
    /// point order share their option's cells and most swept values), except those checked
    /// with other cells or against the point (thresholds, config hash, the point's
    /// configuration), and gives what rows of one run share: an option's accuracy figures and
    /// which of them a model has; every row has the run's tool version.
    pub(super) fn row<'a>(
        &'a self,
        idx: u64,
        rec: &csv::ByteRecord,
        prev: Option<(u64, &csv::ByteRecord)>,
    ) -> Result<(), (&'a str, String)> {
        let cell = |i: usize| rec.get(i).unwrap_or(b"");
        let passed = |i: usize| prev.is_some_and(|(_, p)| p.get(i) == rec.get(i));
        let keys = self.values.len();
        let o = &self.order;
        let at = o.known.then(|| o.locate(idx)).flatten();
        // The previous row's point: of the same model, of the same option.
        let (same_model, same_option) = match (at, prev) {
            (Some((m, opt, _)), Some((p, _))) => match o.locate(p) {
                Some((pm, popt, _)) => (pm == m, pm == m && popt == opt),
                None => (false, false),
            },
            _ => (false, false),
        };
        let prev_cell = |i: usize| prev.and_then(|(_, p)| p.get(i)).unwrap_or(b"");
        for (i, kind) in self.kinds.iter().enumerate() {
            let c = cell(i);
            let spared = match *kind {
                // Checked with the precision before it.
                Col::Lead(2) => passed(i) && passed(i - 1),
                // Checked with every text cell before it.
                Col::ConfigHash => false,
                _ => passed(i),
            };
            let checked = if spared {
                Ok(())
            } else {
                match *kind {
                    // `merge` reads the point index itself (and names a bad one).
                    Col::Point => Ok(()),
                    Col::Lead(0) => self.models.check(c, "a model"),
                    Col::Lead(1) => self.precisions.check(c, "a precision"),
                    Col::Lead(2) => self.thresholds(cell(i - 1), c),
                    Col::Lead(_) => self.group_sizes.check(c, "a DPRed group size"),
                    Col::Arch(k) => self.values[k].check(c, "a value"),
                    Col::Metric(_) => metric(c),
                    // A point without a baseline has neither.
                    Col::Speedup | Col::EnergySaving if c.is_empty() => Ok(()),
                    // A throughput ratio; `1 - energy / the baseline's` may be negative.
                    Col::Speedup => canonical(c, 0.0, f64::INFINITY),
                    Col::EnergySaving => canonical(c, f64::NEG_INFINITY, 1.0),
                    Col::Accuracy(a) => self.accuracy(a, c),
                    Col::ConfigHash => {
                        let lead = (1..=4).map(cell);
                        let want = config_hash_of(lead, (5..5 + keys).map(cell));
                        if hex16(want) == c {
                            Ok(())
                        } else {
                            Err(format!(
                                "`{}` is not the row's config hash (its model, precision, thresholds, group size and swept values give {want:016x})",
                                shown(c)
                            ))
                        }
                    }
                    Col::ToolVersion => version(c),
                }
            };
            // What the point itself fixes, and what the rows before it fix.
            let checked = checked.and_then(|()| {
                let want: Option<&[u8]> = match (*kind, at) {
                    (Col::Lead(0), Some((m, _, _))) => Some(&o.models[m]),
                    (Col::Lead(l @ 1..=3), Some((_, opt, _))) => Some(&o.options[opt][l - 1]),
                    (Col::Arch(k), Some((_, _, ai))) => Some(o.value(ai, k)),
                    _ => None,
                };
                if let Some(want) = want.filter(|w| *w != c) {
                    return Err(format!(
                        "`{}`, but point {idx} of this run has `{}` (a row's configuration is its point's)",
                        shown(c),
                        shown(want)
                    ));
                }
                let (p, pc) = (prev.map_or(0, |(p, _)| p), prev_cell(i));
                match *kind {
                    Col::Accuracy(_) if same_option && c != pc => Err(format!(
                        "`{}`, but point {p} of the same model and precision option has `{}` (an option's figures are the same at every architecture point)",
                        shown(c),
                        shown(pc)
                    )),
                    Col::Accuracy(_) if same_model && c.is_empty() != pc.is_empty() => {
                        Err(format!(
                            "`{}`, but point {p} of the same model has `{}` (a model has a figure at every option or at none)",
                            shown(c),
                            shown(pc)
                        ))
                    }
                    Col::ToolVersion => match &self.version {
                        Some(v) if v != c => Err(format!(
                            "`{}`, but the run's other rows were made by lstm-dse {} (one binary makes a run's rows)",
                            shown(c),
                            shown(v)
                        )),
                        _ => Ok(()),
                    },
                    _ => Ok(()),
                }
            });
            checked.map_err(|problem| (self.columns[i].as_str(), problem))?;
        }
        Ok(())
    }

    /// An accuracy cell (column `a` of [`row::ACCURACY`]).
    fn accuracy(&self, a: usize, c: &[u8]) -> Result<(), String> {
        let name = row::ACCURACY[a];
        match name {
            "task_accuracy" if !self.labels && !c.is_empty() => Err(format!(
                "`{}`, but this run gives no workload.labels (its task accuracy is always empty)",
                shown(c)
            )),
            // Every option has them.
            "hidden_rmse" | "frac_low_precision" if c.is_empty() => {
                Err("empty cell, expected a number".into())
            }
            // Figures a model may lack (no head, no labels).
            _ if c.is_empty() => Ok(()),
            "top1_agreement" | "task_accuracy" | "frac_low_precision" => canonical(c, 0.0, 1.0),
            // An error may be unbounded (a config whose outputs overflow).
            _ => any_number(c).and_then(|v| {
                if v < 0.0 {
                    Err(format!("`{}` is negative", shown(c)))
                } else {
                    Ok(())
                }
            }),
        }
    }

    /// A thresholds cell after (valid) precision `precision`: empty for a fixed config, one
    /// of the policies' threshold lists for their levels.
    fn thresholds(&self, precision: &[u8], c: &[u8]) -> Result<(), String> {
        match &self.policies {
            Some((levels, grid)) if levels == precision => grid.check(c, "a threshold list"),
            _ if c.is_empty() => Ok(()),
            _ => Err(format!(
                "`{}`, but the fixed precision {} has no thresholds",
                shown(c),
                shown(precision)
            )),
        }
    }
}

/// A cell as a refusal quotes it: control characters escaped, at most [`SHOWN_CHARS`]
/// characters (then `…`).
pub(super) fn shown(c: &[u8]) -> String {
    let text = String::from_utf8_lossy(c);
    let mut out = String::new();
    for (n, ch) in text.chars().enumerate() {
        if n == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The most characters of a cell a refusal quotes.
const SHOWN_CHARS: usize = 60;

/// A metric of the accelerator model (a column of `DesignPoint::sweep_columns`): finite and
/// not negative (cycles, times, energies, area, bytes, rates). None is a whole number
/// throughout: cycles are fractional, and DPRed's measured ratios scale `dram_bytes`.
fn metric(c: &[u8]) -> Result<(), String> {
    canonical(c, 0.0, f64::INFINITY)
}

/// A number as the sweep writes one (`row::Row::write`: Rust's `{}`, [`push_f64`]), finite,
/// in `[min, max]`.
fn canonical(c: &[u8], min: f64, max: f64) -> Result<(), String> {
    let v = any_number(c)?;
    if !v.is_finite() {
        return Err(format!("`{}` is not a finite number", shown(c)));
    }
    if v < min && min == 0.0 {
        return Err(format!("`{}` is negative", shown(c)));
    }
    if v < min {
        return Err(format!("`{}` is less than {min}", shown(c)));
    }
    if v > max {
        return Err(format!("`{}` is more than {max}", shown(c)));
    }
    Ok(())
}

/// A number written as the sweep writes it ([`push_f64`]: Rust's `{}`, no exponent, no
/// padding, no `+`, no extra zeros): its value.
fn any_number(c: &[u8]) -> Result<f64, String> {
    if c.is_empty() {
        return Err("empty cell, expected a number".into());
    }
    let v = match std::str::from_utf8(c).map(str::parse::<f64>) {
        Ok(Ok(v)) => v,
        _ => return Err(format!("`{}` is not a number", shown(c))),
    };
    let mut text = Vec::with_capacity(24);
    push_f64(&mut text, v);
    if text != c {
        return Err(format!(
            "`{}` is not how the sweep writes this number (`{}`)",
            shown(c),
            shown(&text)
        ));
    }
    Ok(v)
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
        Err(format!("`{}` is not a version of lstm-dse", shown(c)))
    }
}
