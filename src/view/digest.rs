//! What `report.html` reads from `results.csv`: a thinned background sample of the objectives
//! and the distinct precision options. Read from the file ([`super::scan`] delimits records
//! at memory speed and only the few rows needed are parsed), or from the [`Records`] that the
//! sweep which has just written the file kept, which gives the same digest without reading
//! hundreds of MB back.

use super::{SweepDir, ViewError};
use std::path::Path;

/// At most this many results rows are drawn faint behind the front (thinned by a fixed stride).
const BACKGROUND_POINTS: usize = 3000;
/// The background sample and the distinct precision options of `results.csv`.
#[derive(Debug)]
pub(super) struct ResultsDigest {
    /// Per objective, the values of the sampled rows.
    pub background: Vec<Vec<f64>>,
    /// Header and rows of the distinct precision options (first occurrence, point order).
    pub options_header: Vec<String>,
    pub options: Vec<Vec<String>>,
    /// Sampled rows with an empty or NaN objective cell (drawn as NaN, that is not at all).
    pub empty_cells: usize,
}

/// The columns that name a precision option; its accuracy columns
/// ([`crate::sweep::ACCURACY`]) follow them in the page's option table.
const OPTION_KEYS: [&str; 4] = ["model", "precision", "thresholds", "dpred_group_size"];

/// The rows of `results.csv` the page reads, as the sweep that has just written the file
/// kept them, so that the page does not read hundreds of MB back: the header line and, in
/// row order, every row whose index is a multiple of [`background_stride`] and every row
/// whose precision option differs from the row before (more rows may be given; lines
/// without their line end).
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// Rows of results.csv (header excluded).
    pub rows: usize,
    pub header: Vec<u8>,
    /// (row index from 0, line).
    pub lines: Vec<(usize, Vec<u8>)>,
}

/// The background sample takes rows whose index is a multiple of this.
pub fn background_stride(rows: usize) -> usize {
    rows.div_ceil(BACKGROUND_POINTS).max(1)
}

/// The digest of `results.csv`, read in full or from the [`Records`] a sweep kept.
pub(super) fn digest(
    sweep: &SweepDir,
    columns: &[String],
    kept: Option<&Records>,
) -> Result<ResultsDigest, ViewError> {
    let path = sweep.dir.join("results.csv");
    let digest = digest_of(&path, sweep.points, columns, kept)?;
    if digest.empty_cells > 0 {
        crate::note!(
            "{}: {} of the rows sampled for the figures have an empty or NaN objective cell (a value the run did not have or could not compute, in a row the pareto filter left out): not drawn",
            path.display(),
            digest.empty_cells
        );
    }
    Ok(digest)
}

/// [`digest`] of the file `path` of `rows` rows.
fn digest_of(
    path: &Path,
    rows: usize,
    columns: &[String],
    kept: Option<&Records>,
) -> Result<ResultsDigest, ViewError> {
    let bad = |e: &dyn std::fmt::Display| super::file_error(path, e);
    let mut d = Digester::new(columns, background_stride(rows));
    match kept {
        Some(r) => {
            d.header(&r.header).map_err(|e| bad(&e))?;
            // The sweep wrote one line per row after the header.
            for (n, line) in &r.lines {
                if !d.record(*n, *n as u64 + 2, line) {
                    break;
                }
            }
        }
        None => {
            let mut n = 0usize;
            super::scan::for_each_record(path, |line, raw| {
                if d.header.is_none() {
                    d.header(raw)?;
                    return Ok(true);
                }
                n += 1;
                Ok(d.record(n - 1, line, raw))
            })
            .map_err(|e| bad(&e))?;
        }
    }
    d.finish().map_err(|e| bad(&e))
}

/// The digest's state, record by record.
struct Digester<'a> {
    columns: &'a [String],
    stride: usize,
    header: Option<Vec<String>>,
    objectives: Vec<Option<usize>>,
    opt_cols: Vec<(usize, &'static str)>,
    key_fields: (usize, usize),
    background: Vec<Vec<f64>>,
    seen: std::collections::HashSet<String>,
    options: Vec<Vec<String>>,
    last_key: Vec<u8>,
    empty_cells: usize,
    failed: Option<String>,
}

impl<'a> Digester<'a> {
    fn new(columns: &'a [String], stride: usize) -> Digester<'a> {
        Digester {
            columns,
            stride,
            header: None,
            objectives: Vec::new(),
            opt_cols: Vec::new(),
            key_fields: (0, 0),
            background: Vec::new(),
            seen: std::collections::HashSet::new(),
            options: Vec::new(),
            last_key: Vec::new(),
            empty_cells: 0,
            failed: None,
        }
    }

    fn header(&mut self, raw: &[u8]) -> std::io::Result<()> {
        let h = super::scan::fields(raw).map_err(std::io::Error::other)?;
        let idx = |n: &str| h.iter().position(|x| x.as_str() == n);
        self.objectives = self.columns.iter().map(|c| idx(c)).collect();
        self.opt_cols = OPTION_KEYS
            .iter()
            .chain(&crate::sweep::ACCURACY)
            .filter_map(|n| Some((idx(n)?, *n)))
            .collect();
        let keys = &self.opt_cols[..self.opt_cols.len().min(4)];
        self.key_fields = (
            keys.iter().map(|k| k.0).min().unwrap_or(0),
            keys.iter().map(|k| k.0).max().unwrap_or(0),
        );
        self.background = vec![Vec::new(); self.objectives.len()];
        self.header = Some(h);
        Ok(())
    }

    /// Row `n` (from 0), which starts on line `line` of the file; `false` stops the digest
    /// on a bad record.
    ///
    /// Rows come grouped by option, so a row whose option cells are byte for byte those of
    /// the row before is neither parsed nor looked up (a million-point file is read at
    /// memory speed); the rest are parsed by the csv crate.
    fn record(&mut self, n: usize, line: u64, raw: &[u8]) -> bool {
        let Some(h) = &self.header else {
            return false;
        };
        let sampled = n.is_multiple_of(self.stride);
        let span = field_span(raw, self.key_fields.0, self.key_fields.1);
        let same_option = !self.last_key.is_empty() && span == Some(&self.last_key[..]);
        if !sampled && same_option {
            return true;
        }
        let rec = match super::scan::fields(raw) {
            Ok(r) if r.len() == h.len() => r,
            Ok(r) => {
                self.failed = Some(format!(
                    "record {}: {} fields, the header has {}",
                    n + 1,
                    r.len(),
                    h.len()
                ));
                return false;
            }
            Err(e) => {
                self.failed = Some(format!("record {}: {e}", n + 1));
                return false;
            }
        };
        if sampled {
            // An empty cell is a value the run did not have (no baseline, no task labels),
            // which a sweep writes in rows its filter leaves out; text that is not a number
            // is not something a sweep writes (an edit by hand) and is refused rather than
            // left off the page unsaid.
            let mut row = Vec::with_capacity(self.objectives.len());
            let mut empty = false;
            for (o, name) in self.objectives.iter().zip(self.columns) {
                let text = o.and_then(|i| rec.get(i)).map_or("", |t| t.trim());
                if text.is_empty() {
                    empty = true;
                    row.push(f64::NAN);
                    continue;
                }
                match text.parse::<f64>() {
                    // A value the run could not compute (an overflowed narrow format's
                    // error), which a sweep can write in rows its filter leaves out (its
                    // front refuses NaN only in the rows it keeps): counted with the empty.
                    Ok(v) if v.is_nan() => {
                        empty = true;
                        row.push(f64::NAN);
                    }
                    Ok(v) => row.push(v),
                    Err(_) => {
                        self.failed = Some(format!(
                            "line {line}: column `{name}`: `{text}` is not a number"
                        ));
                        return false;
                    }
                }
            }
            self.empty_cells += usize::from(empty);
            for (k, v) in row.into_iter().enumerate() {
                self.background[k].push(v);
            }
        }
        if !same_option {
            self.last_key = span.map(<[u8]>::to_vec).unwrap_or_default();
            let key: Vec<&str> = self.opt_cols[..self.opt_cols.len().min(4)]
                .iter()
                .map(|(i, _)| rec.get(*i).map_or("", String::as_str))
                .collect();
            if self.seen.insert(key.join("\u{1}")) {
                self.options.push(
                    self.opt_cols
                        .iter()
                        .map(|(i, _)| rec.get(*i).cloned().unwrap_or_default())
                        .collect(),
                );
            }
        }
        true
    }

    fn finish(self) -> Result<ResultsDigest, String> {
        if let Some(problem) = self.failed {
            return Err(problem);
        }
        if self.header.is_none() {
            return Err("empty file, expected a header".into());
        }
        Ok(ResultsDigest {
            background: self.background,
            options_header: self.opt_cols.iter().map(|(_, n)| n.to_string()).collect(),
            options: self.options,
            empty_cells: self.empty_cells,
        })
    }
}

/// The raw bytes of fields `lo..=hi` of a record (commas inside quoted fields skipped), or
/// `None` when it has fewer fields.
fn field_span(rec: &[u8], lo: usize, hi: usize) -> Option<&[u8]> {
    let (mut field, mut from, mut quoted) = (0usize, 0usize, false);
    for (i, &c) in rec.iter().enumerate() {
        match c {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                if field == hi {
                    return Some(&rec[from..i]);
                }
                field += 1;
                if field == lo {
                    from = i + 1;
                }
            }
            _ => {}
        }
    }
    (field == hi).then_some(&rec[from..])
}

/// A sample of at most a few thousand rows of `results.csv` (a fixed stride): per column, the
/// values (NaN where empty).
pub fn sample_results(sweep: &SweepDir, columns: &[String]) -> Result<Vec<Vec<f64>>, ViewError> {
    Ok(digest(sweep, columns, None)?.background)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A cell as the csv crate writes it.
    fn quote(s: &str) -> String {
        if s.is_empty() {
            return String::new();
        }
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.write_field(s).unwrap();
        w.write_record(None::<&[u8]>).unwrap();
        let mut t = String::from_utf8(w.into_inner().unwrap()).unwrap();
        t.pop();
        t
    }

    /// The digest as a comparable string (NaN compared by bits).
    fn shown(d: &ResultsDigest) -> String {
        let bits: Vec<Vec<u64>> = d
            .background
            .iter()
            .map(|c| c.iter().map(|v| v.to_bits()).collect())
            .collect();
        format!("{bits:?} {:?} {:?}", d.options_header, d.options)
    }

    /// A sampled row's objective cell that is text (an edit by hand) is an error naming the
    /// line and the column; an empty or NaN one (a value the run did not have or could not
    /// compute) is counted.
    #[test]
    fn text_in_an_objective_is_refused_and_empty_cells_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        let columns = vec!["latency_us".to_string(), "energy_uj".to_string()];
        let head = "point,model,precision,latency_us,energy_uj\n";
        std::fs::write(&path, format!("{head}0,m,\"a\nb\",1,2\n1,m,fx8,,3\n")).unwrap();
        let d = digest_of(&path, 2, &columns, None).unwrap();
        assert_eq!(d.empty_cells, 1);
        assert!(d.background[0][1].is_nan() && d.background[1][1] == 3.0);
        std::fs::write(&path, format!("{head}0,m,\"a\nb\",1,2\n1,m,fx8,4,abc\n")).unwrap();
        let e = digest_of(&path, 2, &columns, None).unwrap_err().to_string();
        assert!(
            e.ends_with("results.csv: line 4: column `energy_uj`: `abc` is not a number"),
            "{e}"
        );
        std::fs::write(&path, format!("{head}0,m,fx8,NaN,2\n1,m,fx8,4,\n")).unwrap();
        let d = digest_of(&path, 2, &columns, None).unwrap();
        assert_eq!(d.empty_cells, 2, "a NaN is counted as an empty cell is");
    }

    proptest! {
        /// The digest of the rows a sweep keeps (every sampled row, every row whose option
        /// differs from the row before, and any others) is the digest of the whole file:
        /// the oracle is reading the file.
        #[test]
        fn kept_records_digest_like_the_file(
            groups in proptest::collection::vec((0usize..4, 1usize..9000), 1..5),
            cells in proptest::collection::vec(0usize..7, 1..64),
            extra in proptest::collection::vec(0usize..40000, 0..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("results.csv");
            let names = ["fx8", "a,b", "q\"x", "fx8", " 5", ""];
            let values = ["1.5", "", "-0", "2e3", "NaN", "-inf", "7"];
            let mut text = String::from("point,model,precision,thresholds,dpred_group_size,latency_us,energy_uj,hidden_rmse,task_accuracy\n");
            let header = text.trim_end().as_bytes().to_vec();
            let mut lines = Vec::new();
            let mut row = 0usize;
            let mut prev_option = None;
            for (option, n) in groups {
                for _ in 0..n {
                    let c = |k: usize| values[cells[(row + k) % cells.len()] % values.len()];
                    let line = format!(
                        "{row},m,{},,{},{},{},{},{}",
                        quote(names[option]),
                        option % 2,
                        c(0),
                        c(1),
                        quote(c(2)),
                        row % 3
                    );
                    text.push_str(&line);
                    text.push('\n');
                    lines.push((line, prev_option != Some(option)));
                    prev_option = Some(option);
                    row += 1;
                }
            }
            std::fs::write(&path, &text).unwrap();
            let rows = lines.len();
            let stride = background_stride(rows);
            let kept = Records {
                rows,
                header,
                lines: lines
                    .iter()
                    .enumerate()
                    .filter(|(n, (_, starts))| {
                        n % stride == 0 || *starts || extra.iter().any(|e| e % rows == *n)
                    })
                    .map(|(n, (l, _))| (n, l.as_bytes().to_vec()))
                    .collect(),
            };
            let columns = vec!["latency_us".to_string(), "energy_uj".to_string(), "nope".to_string()];
            let from_file = digest_of(&path, rows, &columns, None).unwrap();
            let from_kept = digest_of(&path, rows, &columns, Some(&kept)).unwrap();
            prop_assert_eq!(shown(&from_kept), shown(&from_file));
        }
    }
}
