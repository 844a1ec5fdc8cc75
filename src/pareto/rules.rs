//! What a front reads of each row of a table, and what it refuses there: the objective
//! columns and the `where` filter resolved against the table's header, then per row the filter
//! columns, which must hold a number (NaN and `inf` allowed), and for a row the filter keeps
//! the objective columns, which must hold a number other than NaN. [`super::front_of_csv_by`]
//! applies the rules to any CSV; `merge` applies them to each shard's rows as it reads them
//! (`sweep::front_cells`), so that it reads every shard once.

use std::path::Path;

use super::{Filter, Objective, ParetoError, Sense};

/// The objectives and the filter of a front, resolved against one header.
#[derive(Debug, Clone)]
pub struct FrontRules {
    /// The minimised objectives in the order given, then the maximised ones.
    pub objectives: Vec<Objective>,
    filter: Option<Filter>,
    /// The header's column names.
    pub columns: Vec<String>,
}

impl FrontRules {
    /// The objectives `minimize` then `maximize` (each list with the name of what gave it: a
    /// flag, a spec key) and `filter`, on the table `input` whose header names `columns`.
    /// An objective or filter column missing from the header or named twice is refused, as
    /// is a front without objectives.
    pub fn new(
        input: &Path,
        columns: Vec<String>,
        (min_by, minimize): (&str, &[String]),
        (max_by, maximize): (&str, &[String]),
        filter: Option<&str>,
    ) -> Result<FrontRules, ParetoError> {
        if minimize.is_empty() && maximize.is_empty() {
            return Err(ParetoError::NoObjectives);
        }
        // A name the header holds twice cannot say which column it means.
        let twice = |name: &str| columns.iter().filter(|c| *c == name).count() > 1;
        let mut objectives: Vec<Objective> = Vec::new();
        let by = |sense| match sense {
            Sense::Minimize => min_by.to_string(),
            Sense::Maximize => max_by.to_string(),
        };
        let named = minimize
            .iter()
            .map(|n| (n, Sense::Minimize))
            .chain(maximize.iter().map(|n| (n, Sense::Maximize)));
        for (name, sense) in named {
            let name = name.trim();
            if let Some(first) = objectives.iter().find(|o| o.name == name) {
                return Err(ParetoError::DuplicateObjective {
                    by: by(sense),
                    first: by(first.sense),
                    column: name.to_string(),
                });
            }
            if twice(name) {
                return Err(ParetoError::AmbiguousObjective {
                    by: by(sense),
                    path: input.to_path_buf(),
                    column: name.to_string(),
                });
            }
            let column = columns.iter().position(|c| c == name).ok_or_else(|| {
                ParetoError::ObjectiveColumn {
                    by: by(sense),
                    path: input.to_path_buf(),
                    column: name.to_string(),
                    available: columns.join(", "),
                }
            })?;
            objectives.push(Objective {
                name: name.to_string(),
                column,
                sense,
            });
        }
        // The filter sees a name the header holds twice as no column, then reported as such.
        let unique: Vec<String> = columns
            .iter()
            .map(|c| if twice(c) { String::new() } else { c.clone() })
            .collect();
        let filter = match filter.map(|f| Filter::parse(f, &unique)).transpose() {
            Err(ParetoError::FilterColumn { column, .. }) if twice(&column) => {
                return Err(ParetoError::AmbiguousColumn {
                    path: input.to_path_buf(),
                    column,
                })
            }
            // The list of columns as the file has them, not with the blanks put in above.
            Err(ParetoError::FilterColumn { column, text, .. }) => {
                return Err(ParetoError::FilterColumn {
                    column,
                    text,
                    available: columns.join(", "),
                })
            }
            f => f?,
        };
        Ok(FrontRules {
            objectives,
            filter,
            columns,
        })
    }

    /// Whether the filter keeps the row whose cell `c` is `cell(c)`; if so, its objective
    /// values (maximised ones not negated) are pushed onto `values`. A cell the front cannot
    /// read: its column and the problem (the filter's columns are read first, then the
    /// objectives'). `scratch` is any buffer, reused from row to row.
    pub fn row<'a>(
        &self,
        cell: impl Fn(usize) -> &'a str,
        scratch: &mut Vec<f64>,
        values: &mut Vec<f64>,
    ) -> Result<bool, (usize, String)> {
        let number = |c: usize, nan_ok: bool| {
            let text = cell(c).trim();
            let problem = if text.is_empty() {
                "empty cell, expected a number".to_string()
            } else {
                match text.parse::<f64>() {
                    Ok(v) if nan_ok || !v.is_nan() => return Ok(v),
                    Ok(_) => "NaN is not a usable objective value".to_string(),
                    Err(_) => format!("`{text}` is not a number"),
                }
            };
            Err((c, problem))
        };
        if let Some(f) = &self.filter {
            scratch.resize(self.columns.len(), f64::NAN);
            for &c in f.columns() {
                scratch[c] = number(c, true)?;
            }
            if !f.eval(scratch) {
                return Ok(false);
            }
        }
        for o in &self.objectives {
            values.push(number(o.column, false)?);
        }
        Ok(true)
    }
}
