//! The Pareto front of a sweep, gathered from the typed rows as they are costed (or verified
//! on resume) instead of parsing `results.csv` back: per row that passes the spec's `where`,
//! its point index and objective values. The outcome is the one `pareto::front_of_csv` gives
//! on the written file (the test of `merge` compares them), at a fraction of the cost.
//!
//! Each costing piece keeps only its own front ([`FrontSpec::thin`]): a row dominated within
//! its piece is dominated in the whole sweep, and every row off the front is dominated by a
//! row on it (dominance is transitive), so the front of the pieces' fronts is the front of
//! all rows. The serial step at the end then sorts a few candidates, not a million rows.

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

/// The rows gathered so far (one part per piece; parts are joined in point order).
#[derive(Default)]
pub struct FrontPart {
    /// Candidates for the front (every kept row, or after [`FrontSpec::thin`] the front of
    /// the part's rows): point index and position among the kept rows.
    pub points: Vec<u64>,
    pub kept_at: Vec<usize>,
    /// `points.len() x objectives`, row-major, as written (maximised ones not negated).
    pub values: Vec<f64>,
    /// Rows that passed the `where` filter.
    pub kept: usize,
    /// The first two objectives of every kept row, for front.svg (empty with fewer than two
    /// objectives).
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
}

impl FrontPart {
    /// Appends `other`, whose rows come after this part's.
    pub fn join(&mut self, other: FrontPart) {
        self.points.extend(other.points);
        self.kept_at
            .extend(other.kept_at.into_iter().map(|k| k + self.kept));
        self.values.extend(other.values);
        self.kept += other.kept;
        self.xs.extend(other.xs);
        self.ys.extend(other.ys);
    }
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
        part.kept_at.push(part.kept);
        part.kept += 1;
        let first = part.values.len();
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
        if self.objectives.len() >= 2 {
            part.xs.push(part.values[first]);
            part.ys.push(part.values[first + 1]);
        }
        Ok(())
    }

    /// Which candidates of `all` are on the front of its rows.
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

    /// Keeps only the candidates of `part` on the front of its rows (see the module doc).
    pub fn thin(&self, part: &mut FrontPart) {
        let d = self.objectives.len();
        if part.points.len() < 2 {
            return;
        }
        let on = self.finish(part);
        let mut k = 0;
        for (i, &f) in on.iter().enumerate() {
            if f {
                part.points[k] = part.points[i];
                part.kept_at[k] = part.kept_at[i];
                part.values.copy_within(i * d..(i + 1) * d, k * d);
                k += 1;
            }
        }
        part.points.truncate(k);
        part.kept_at.truncate(k);
        part.values.truncate(k * d);
    }

    pub fn dims(&self) -> usize {
        self.objectives.len()
    }

    /// Objective `k`'s name.
    pub fn name(&self, k: usize) -> &str {
        &self.objectives[k].1
    }
}

#[cfg(test)]
mod tests {
    use super::super::row::{Axes, OptionText, TextCell};
    use super::*;
    use crate::accel::DesignPoint;
    use proptest::prelude::*;

    proptest! {
        /// Rows added in pieces, each thinned to its own front and joined, give the front
        /// that `pareto::front` gives on all rows at once (the oracle), on random values with
        /// many ties and duplicates, one to three objectives, some maximised.
        #[test]
        fn thinned_pieces_give_the_front_of_all_rows(
            values in proptest::collection::vec((0u8..5, 0u8..5, 0u8..5), 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..8),
            dims in 1usize..4,
            max in proptest::collection::vec(proptest::bool::ANY, 3),
        ) {
            let cell = || TextCell::new("x");
            let option = OptionText::new(
                [cell(), cell(), cell(), cell()],
                [cell(), cell(), cell(), cell(), cell(), cell()],
                0,
            );
            let axes = Axes { keys: Vec::new(), values: Vec::new(), overrides: Vec::new() };
            // cycles, latency_us, energy_uj.
            let cols = [(0, "cycles"), (1, "latency_us"), (3, "energy_uj")];
            let fspec = FrontSpec {
                objectives: (0..dims)
                    .map(|k| (Col::Metric(cols[k].0), cols[k].1.to_string(), max[k]))
                    .collect(),
                filter: None,
                kinds: Vec::new(),
                columns: Vec::new(),
            };
            let row = |i: usize| {
                let (a, b, c) = values[i];
                let design = DesignPoint {
                    cycles: f64::from(a),
                    latency_us: f64::from(b) - 2.0,
                    energy_uj: f64::from(c) * 0.5,
                    ..DesignPoint::default()
                };
                Row {
                    point: i as u64 * 3,
                    option: &option,
                    axes: &axes,
                    digits: &[],
                    design,
                    speedup: None,
                    energy_saving: None,
                    config_hash: 0,
                }
            };
            let mut scratch = Vec::new();
            let mut whole = FrontPart::default();
            let mut joined = FrontPart::default();
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (values.len() + 1)).collect();
            bounds.extend([0, values.len()]);
            bounds.sort_unstable();
            for w in bounds.windows(2) {
                let mut part = FrontPart::default();
                for i in w[0]..w[1] {
                    fspec.add(&mut whole, &row(i), &mut scratch).unwrap();
                    fspec.add(&mut part, &row(i), &mut scratch).unwrap();
                }
                fspec.thin(&mut part);
                joined.join(part);
            }
            let on_whole = fspec.finish(&whole);
            let on_joined = fspec.finish(&joined);
            let front = |p: &FrontPart, on: &[bool]| -> Vec<(u64, usize)> {
                p.points
                    .iter()
                    .zip(&p.kept_at)
                    .zip(on)
                    .filter(|(_, &f)| f)
                    .map(|((&pt, &k), _)| (pt, k))
                    .collect()
            };
            prop_assert_eq!(front(&joined, &on_joined), front(&whole, &on_whole));
            prop_assert_eq!(joined.kept, values.len());
            prop_assert_eq!(&joined.xs, &whole.xs);
            prop_assert_eq!(&joined.ys, &whole.ys);
        }
    }
}
