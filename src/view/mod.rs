//! What a finished sweep shows a person: the closing summary printed by `sweep`, the
//! self-contained `report.html` ([`page`]), and the SVG figures ([`svg`]) of the front
//! ([`FrontFigure`]) and of the precision stage ([`stage`]). Everything here reads the files a
//! sweep writes (`results.csv`, `front.csv`, `spec.resolved.toml`), so it works the same on a
//! single run, a merged sharded run or a directory copied from a cluster.

mod digest;
mod front;
pub mod page;
mod scan;
pub mod stage;
pub mod svg;
mod trace_dir;

pub use front::FrontFigure;

use crate::sweep::SweepSpec;
use std::path::{Path, PathBuf};

/// Why a sweep directory cannot be shown; `Display` is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> ViewError {
    ViewError::File {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// A CSV file held as text cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Where in the file each row starts (its line: [`crate::inputs::csv_line`]).
    pub positions: Vec<Option<csv::Position>>,
    /// The file read.
    pub path: std::path::PathBuf,
}

impl Table {
    /// Reads a whole CSV file with a header. A header that names a column twice is refused:
    /// [`Table::col`] would take the first, which may not be the column meant.
    pub fn read(path: &Path) -> Result<Table, ViewError> {
        let file = crate::inputs::open_csv(path).map_err(|e| file_error(path, e))?;
        let mut rd = csv::Reader::from_reader(file);
        let header: Vec<String> = rd
            .headers()
            .map_err(|e| file_error(path, e))?
            .iter()
            .map(String::from)
            .collect();
        if let Some((first, second)) = repeated(&header) {
            return Err(file_error(
                path,
                format!(
                    "column `{}` appears more than once in the header (columns {} and {}; rename one)",
                    header[first],
                    first + 1,
                    second + 1
                ),
            ));
        }
        let (mut rows, mut positions) = (Vec::new(), Vec::new());
        for rec in rd.records() {
            let rec = rec.map_err(|e| file_error(path, e))?;
            positions.push(rec.position().cloned());
            rows.push(rec.iter().map(String::from).collect());
        }
        Ok(Table {
            header,
            rows,
            positions,
            path: path.to_path_buf(),
        })
    }

    /// The first row whose cell in column `name` is not a number (an empty cell and `NaN`
    /// included): its line and the cell. `None` when every row holds one, or there is no
    /// such column.
    pub fn first_non_number(&self, name: &str) -> Option<(u64, &str)> {
        let i = self.col(name)?;
        self.rows.iter().zip(&self.positions).find_map(|(r, pos)| {
            let cell = r.get(i).map_or("", String::as_str);
            let number = cell.trim().parse::<f64>().is_ok_and(|v| !v.is_nan());
            (!number).then(|| (crate::inputs::csv_line(&self.path, pos.as_ref()), cell))
        })
    }

    /// The index of a column.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// A column as numbers (NaN where a cell is empty or not a number).
    pub fn numbers(&self, name: &str) -> Vec<f64> {
        let Some(i) = self.col(name) else {
            return vec![f64::NAN; self.rows.len()];
        };
        self.rows
            .iter()
            .map(|r| r.get(i).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))
            .collect()
    }
}

/// A published run has every point of its plan in results.csv or skipped.csv (a run in
/// progress works in `.incomplete/`): a results.csv cut short or rows deleted by hand would be
/// drawn as a smaller sweep, and its front.csv would name points that are not there. Checked
/// by count where spec.resolved.toml records the plan's points (`[plan] points`, written since
/// merge needs it); `merge` checks point by point.
fn covers_the_plan(dir: &Path, resolved: &str, rows: usize) -> Result<(), ViewError> {
    let Some(total) = crate::sweep::recorded_points(resolved) else {
        return Ok(());
    };
    let skipped_path = dir.join("skipped.csv");
    let skipped = if skipped_path.exists() {
        scan::count_rows(&skipped_path).map_err(|e| file_error(&skipped_path, e))?
    } else {
        0
    };
    let covered = (rows + skipped) as u64;
    if covered == total {
        return Ok(());
    }
    let how = if covered < total {
        "cut short or rows deleted"
    } else {
        "rows added"
    };
    Err(file_error(
        &dir.join("results.csv"),
        format!(
            "{rows} rows and {skipped} in skipped.csv, but spec.resolved.toml's plan has {total} points ({how}?): `lstm-dse sweep SWEEP.toml --resume --out DIR` completes a results.csv cut short (and names any other damage)"
        ),
    ))
}

/// The first column name a header holds twice: the indices of its first two places.
fn repeated(header: &[String]) -> Option<(usize, usize)> {
    (1..header.len()).find_map(|j| {
        let first = header[..j].iter().position(|h| *h == header[j])?;
        Some((first, j))
    })
}

/// One objective of the sweep and its direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub column: String,
    pub maximize: bool,
}

/// The files of a sweep's output directory.
#[derive(Debug, Clone)]
pub struct SweepDir {
    pub dir: PathBuf,
    pub spec: SweepSpec,
    /// `spec.resolved.toml` as written (the provenance of every row).
    pub resolved: String,
    /// Rows of `results.csv` (header excluded).
    pub points: usize,
    /// `front.csv` (empty when the front was not written, e.g. a shard).
    pub front: Table,
    /// The header of `results.csv`.
    pub columns: Vec<String>,
}

impl SweepDir {
    /// Reads a sweep directory (results.csv is counted, not held).
    pub fn open(dir: &Path) -> Result<SweepDir, ViewError> {
        SweepDir::open_with_rows(dir, None)
    }

    /// [`SweepDir::open`], with results.csv's row count when the caller knows it (a sweep
    /// that has just written it), which saves reading the file once more.
    pub fn open_with_rows(dir: &Path, rows: Option<usize>) -> Result<SweepDir, ViewError> {
        let resolved_path = dir.join("spec.resolved.toml");
        let resolved = crate::inputs::read_text(&resolved_path).map_err(|e| {
            file_error(
                &resolved_path,
                format!("{e} (is this a sweep output directory?)"),
            )
        })?;
        let spec = crate::sweep::spec_of(&resolved)
            .map_err(|e| file_error(&resolved_path, e.message()))?;
        let results = dir.join("results.csv");
        let file = crate::inputs::open_csv(&results).map_err(|e| file_error(&results, e))?;
        let mut rd = csv::Reader::from_reader(file);
        let columns: Vec<String> = rd
            .headers()
            .map_err(|e| file_error(&results, e))?
            .iter()
            .map(String::from)
            .collect();
        // The columns this spec's run writes (a results.csv of another spec, another version or
        // edited by hand would be drawn with empty or wrong objectives).
        let keys: Vec<String> = spec.arch.ranges.keys().cloned().collect();
        let want = crate::sweep::columns(&keys);
        if columns != want {
            let at = (columns.iter().zip(&want)).position(|(a, b)| a != b);
            let at = at.unwrap_or(columns.len().min(want.len()));
            let problem = match (columns.get(at), want.get(at)) {
                (Some(have), Some(w)) => format!("column {} is '{have}', expected '{w}'", at + 1),
                (None, Some(w)) => format!("column '{w}' is missing"),
                (Some(have), None) => format!("an extra column '{have}'"),
                (None, None) => "the header differs".into(),
            };
            return Err(file_error(
                &results,
                format!("{problem}: not the columns spec.resolved.toml's sweep writes"),
            ));
        }
        let points = match rows {
            Some(n) => n,
            None => scan::count_rows(&results).map_err(|e| file_error(&results, e))?,
        };
        covers_the_plan(dir, &resolved, points)?;
        let front_path = dir.join("front.csv");
        // A whole run always writes front.csv; only a shard's folder (shard.toml) has none.
        if !front_path.exists() && !dir.join(crate::sweep::SHARD_FILE).exists() {
            return Err(file_error(
                &front_path,
                "missing (a sweep writes it, even for an empty front): write it again with `lstm-dse sweep SWEEP.toml --resume --out DIR`",
            ));
        }
        let front = if front_path.exists() {
            Table::read(&front_path)?
        } else {
            Table::default()
        };
        // A sweep writes the header even when no point is on the front: an empty file is
        // damage (a full disk, a copy cut short), not an empty front.
        if front_path.exists() && front.header.is_empty() {
            return Err(file_error(
                &front_path,
                "empty, not even a header (a sweep writes one even for an empty front): write it again with `lstm-dse sweep SWEEP.toml --resume --out DIR`",
            ));
        }
        Ok(SweepDir {
            dir: dir.to_path_buf(),
            spec,
            resolved,
            points,
            front,
            columns,
        })
    }

    /// The objectives, minimised first, as the spec lists them.
    pub fn objectives(&self) -> Vec<Objective> {
        let p = &self.spec.pareto;
        p.minimize
            .iter()
            .map(|c| Objective {
                column: c.clone(),
                maximize: false,
            })
            .chain(p.maximize.iter().map(|c| Objective {
                column: c.clone(),
                maximize: true,
            }))
            .collect()
    }

    /// The columns that say what a design is: model, precision option and swept parameters.
    pub fn config_columns(&self) -> Vec<String> {
        let mut c: Vec<String> = ["model", "precision", "thresholds", "dpred_group_size"]
            .map(String::from)
            .to_vec();
        c.extend(self.spec.arch.ranges.keys().cloned());
        c
    }

    /// For each objective, the front row that is best in it (ties: the first in file order,
    /// which is point order).
    pub fn best_per_objective(&self) -> Vec<(Objective, Option<usize>)> {
        self.objectives()
            .into_iter()
            .map(|o| {
                let values = self.front.numbers(&o.column);
                let mut best: Option<usize> = None;
                for (i, v) in values.iter().enumerate() {
                    if !v.is_finite() {
                        continue;
                    }
                    let better = match best {
                        None => true,
                        Some(b) if o.maximize => *v > values[b],
                        Some(b) => *v < values[b],
                    };
                    if better {
                        best = Some(i);
                    }
                }
                (o, best)
            })
            .collect()
    }

    /// The key parameters of front row `i`: `name=value` for every configuration column that
    /// is set (empty thresholds and a zero group size are left out).
    pub fn describe(&self, i: usize) -> String {
        let row = &self.front.rows[i];
        self.config_columns()
            .iter()
            .filter_map(|c| {
                let v = row.get(self.front.col(c)?)?;
                let unset = v.is_empty() || (c == "dpred_group_size" && v == "0");
                (!unset).then(|| format!("{c}={v}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The closing summary of a sweep: points, front size, the best design per objective with
    /// its key parameters, and where the files are.
    pub fn summary(&self) -> String {
        self.summary_listing(true)
    }

    /// [`SweepDir::summary`] as `report.html` shows it: without the page itself among the
    /// files, so that its bytes do not depend on whether an older page was there.
    pub fn page_summary(&self) -> String {
        self.summary_listing(false)
    }

    fn summary_listing(&self, with_page: bool) -> String {
        let mut s = format!(
            "{}: {} design points, {} on the Pareto front ({} objectives)\n",
            self.spec.name,
            self.points,
            self.front.rows.len(),
            self.objectives().len()
        );
        for (o, best) in self.best_per_objective() {
            let Some(i) = best else { continue };
            let value = &self.front.rows[i][self.front.col(&o.column).unwrap_or(0)];
            s.push_str(&format!(
                "  best {} ({}): {} = {}\n      {}\n",
                o.column,
                if o.maximize { "max" } else { "min" },
                o.column,
                short_number(value),
                self.describe(i)
            ));
        }
        let mut files: Vec<&str> = vec!["results.csv", "front.csv", "front.svg", "report.html"];
        files.retain(|f| (with_page || *f != "report.html") && self.dir.join(f).exists());
        s.push_str(&format!(
            "files: {} in {}\n",
            files.join(", "),
            self.dir.display()
        ));
        s
    }
}

/// Refuses a shard's folder (a part of a sweep's points, no front), naming its `shard.toml`
/// and what to do: merge, then `verb` (report, plot) the merged folder.
pub fn refuse_shard(dir: &Path, verb: &str) -> anyhow::Result<()> {
    let shard = dir.join(crate::sweep::SHARD_FILE);
    if shard.exists() {
        anyhow::bail!(
            "{}: this directory is one shard of a sweep (a part of its points, no front): merge the shards first (lstm-dse merge), then {verb} the merged directory",
            shard.display()
        );
    }
    Ok(())
}

/// A number cell shortened to 4 significant digits for people (files keep every digit).
pub fn short_number(cell: &str) -> String {
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => format_sig(v),
        _ => cell.to_string(),
    }
}

/// `v` with about 4 significant digits, without exponent for everyday magnitudes.
pub fn format_sig(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..6).contains(&mag) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(format_sig(0.0), "0");
        assert_eq!(format_sig(11.904), "11.9");
        assert_eq!(format_sig(5.1973088), "5.197");
        assert_eq!(format_sig(0.978), "0.978");
        assert_eq!(format_sig(84005.376), "84005");
        assert_eq!(format_sig(1.5e-5), "1.500e-5");
        assert_eq!(format_sig(-2.5), "-2.5");
        assert_eq!(short_number("abc"), "abc");
    }
}
