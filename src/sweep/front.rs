//! The Pareto front of a sweep, gathered from the typed rows as they are costed (or verified
//! on resume) instead of parsing `results.csv` back: per row that passes the spec's `where`,
//! its point index and objective values. The outcome is the one `pareto::front_of_csv` gives
//! on the written file (the test of `merge` compares them), at a fraction of the cost.

use super::row::{Col, Row};
use super::SweepSpec;
use crate::pareto::Filter;
use anyhow::Result;

/// What the front needs from each row.
pub struct FrontSpec {
    objectives: Vec<(Col, String, bool)>,
    filter: Option<Filter>,
    kinds: Vec<Col>,
    columns: Vec<String>,
}

/// The rows gathered so far (one part per batch; parts are joined in point order).
#[derive(Default)]
pub struct FrontPart {
    pub points: Vec<u64>,
    /// `points.len() x objectives`, row-major, as written (maximised ones not negated).
    pub values: Vec<f64>,
}

impl FrontSpec {
    pub fn new(spec: &SweepSpec, columns: &[String], kinds: &[Col]) -> Result<FrontSpec> {
        let col = |name: &str| {
            columns
                .iter()
                .position(|c| c == name.trim())
                .map(|i| kinds[i])
        };
        let mut objectives = Vec::new();
        for (names, max) in [
            (&spec.pareto.minimize, false),
            (&spec.pareto.maximize, true),
        ] {
            for n in names {
                let c = col(n).ok_or_else(|| anyhow::anyhow!("objective `{n}` names no column"))?;
                objectives.push((c, n.trim().to_string(), max));
            }
        }
        let filter = match &spec.pareto.filter {
            Some(f) => Some(Filter::parse(f, columns)?),
            None => None,
        };
        Ok(FrontSpec {
            objectives,
            filter,
            kinds: kinds.to_vec(),
            columns: columns.to_vec(),
        })
    }

    /// Adds a row (rows must come in point order). An unusable cell is an error naming the
    /// point and column.
    pub fn add(&self, part: &mut FrontPart, row: &Row, scratch: &mut Vec<f64>) -> Result<()> {
        let bad = |c: usize, problem: String| {
            anyhow::anyhow!(
                "results.csv: point {}: column `{}`: {problem}",
                row.point,
                self.columns[c]
            )
        };
        if let Some(f) = &self.filter {
            scratch.resize(self.kinds.len(), f64::NAN);
            for &c in f.columns() {
                scratch[c] = row.number(self.kinds[c]).map_err(|e| bad(c, e))?;
            }
            if !f.eval(scratch) {
                return Ok(());
            }
        }
        part.points.push(row.point);
        for (col, name, _) in &self.objectives {
            let v = row.number(*col).map_err(|e| {
                anyhow::anyhow!("results.csv: point {}: column `{name}`: {e}", row.point)
            })?;
            if v.is_nan() {
                anyhow::bail!(
                    "results.csv: point {}: column `{name}`: NaN is not a usable objective value",
                    row.point
                );
            }
            part.values.push(v);
        }
        Ok(())
    }

    /// The kept points, which of them are on the front, and every kept value.
    pub fn finish(&self, all: &FrontPart) -> Vec<bool> {
        let d = self.objectives.len();
        let minimised: Vec<f64> = all
            .values
            .chunks_exact(d)
            .flat_map(|r| {
                r.iter()
                    .zip(&self.objectives)
                    .map(|(&v, (_, _, max))| if *max { -v } else { v })
            })
            .collect();
        let mut on = vec![false; all.points.len()];
        for i in crate::pareto::front(&minimised, d) {
            on[i] = true;
        }
        on
    }

    pub fn dims(&self) -> usize {
        self.objectives.len()
    }

    /// Objective `k`'s name and its value for every kept row.
    pub fn objective(&self, all: &FrontPart, k: usize) -> (String, Vec<f64>) {
        let d = self.objectives.len();
        (
            self.objectives[k].1.clone(),
            all.values.iter().skip(k).step_by(d).copied().collect(),
        )
    }
}
