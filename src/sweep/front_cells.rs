//! The cells of merged rows that the front reads: `merge` writes the front of the merged
//! `results.csv` with `pareto::front_of_csv_by`, whose rules ([`FrontRules`]) refuse a filter
//! cell that is not a number, and a NaN (or not a number) objective in a row the spec's
//! `where` keeps. `merge` applies them to each shard's rows as it reads them, so that every
//! file is read once, and refuses as the front of the shard's own file would: the first bad
//! row in file order, of the first directory with one, named by its file and line, and only
//! once every other check of the merge passed ([`FrontCells::result`]).
//!
//! The header `merge` gives is the run's columns in every directory ([`super::cells`]), so
//! the rules are resolved once, against the first directory's file. A non-UTF-8 cell is read
//! as not a number here; [`super::cells`] refuses it first.

use super::SweepSpec;
use crate::pareto::{FrontRules, ParetoError};
use std::path::Path;

/// The rules, and the first refusal met.
pub(super) struct FrontCells<'s> {
    spec: &'s SweepSpec,
    /// `None` until the first header, or once a refusal is met.
    rules: Option<FrontRules>,
    problem: Option<ParetoError>,
    scratch: Vec<f64>,
    values: Vec<f64>,
}

impl<'s> FrontCells<'s> {
    /// The rules of `spec`'s `[pareto]`.
    pub(super) fn new(spec: &'s SweepSpec) -> FrontCells<'s> {
        FrontCells {
            spec,
            rules: None,
            problem: None,
            scratch: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The header of `path`, a results.csv with the run's columns: the first resolves the
    /// objectives and the filter.
    pub(super) fn header(&mut self, path: &Path, header: &csv::ByteRecord) {
        if self.rules.is_some() || self.problem.is_some() {
            return;
        }
        let p = &self.spec.pareto;
        let columns = header
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        match FrontRules::new(
            path,
            columns,
            ("pareto.minimize", &p.minimize),
            ("pareto.maximize", &p.maximize),
            p.filter.as_deref(),
        ) {
            Ok(r) => self.rules = Some(r),
            Err(e) => self.problem = Some(e),
        }
    }

    /// A row of `path`, read after its header: the first bad cell is kept for
    /// [`FrontCells::result`], and later rows go unread.
    pub(super) fn row(&mut self, path: &Path, rec: &csv::ByteRecord) {
        let Some(rules) = &self.rules else { return };
        let cell = |c: usize| std::str::from_utf8(rec.get(c).unwrap_or(b"")).unwrap_or("\u{fffd}");
        self.values.clear();
        if let Err((c, problem)) = rules.row(cell, &mut self.scratch, &mut self.values) {
            self.problem = Some(ParetoError::BadCell {
                path: path.to_path_buf(),
                line: crate::inputs::csv_line(path, rec.position()),
                column: rules.columns[c].clone(),
                problem,
            });
            self.rules = None;
        }
    }

    /// The first refusal met, if any.
    pub(super) fn result(self) -> Result<(), ParetoError> {
        self.problem.map_or(Ok(()), Err)
    }
}
