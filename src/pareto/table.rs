//! Fronts of CSV files: read any table with a header, filter its rows, find the front of the
//! named columns, and write the front rows back out unchanged.

use std::path::Path;

use super::{front, FrontRules, ParetoError};

/// Whether an objective is to be made small or large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sense {
    Minimize,
    Maximize,
}

/// One objective column of a CSV header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objective {
    pub name: String,
    /// Index in the header.
    pub column: usize,
    pub sense: Sense,
}

/// The outcome of [`front_of_csv`].
#[derive(Debug, Clone)]
pub struct FrontResult {
    pub header: csv::StringRecord,
    /// The minimised objectives in the order given, then the maximised ones.
    pub objectives: Vec<Objective>,
    /// Data rows in the file (the header not counted).
    pub total_rows: usize,
    /// The rows that pass the filter, unchanged and in input order.
    pub rows: Vec<csv::StringRecord>,
    /// `rows.len() x objectives.len()`, row-major: the objective cells as in the file
    /// (maximised ones not negated).
    pub values: Vec<f64>,
    /// Per kept row: whether it is on the front.
    pub on_front: Vec<bool>,
}

impl FrontResult {
    /// How many kept rows are on the front.
    pub fn front_len(&self) -> usize {
        self.on_front.iter().filter(|&&f| f).count()
    }

    /// The front rows, in input order.
    pub fn front_rows(&self) -> impl Iterator<Item = &csv::StringRecord> {
        self.rows
            .iter()
            .zip(&self.on_front)
            .filter_map(|(r, &f)| f.then_some(r))
    }

    /// Objective `k`'s value for every kept row.
    ///
    /// # Panics
    /// If `k >= objectives.len()`.
    pub fn objective_values(&self, k: usize) -> Vec<f64> {
        let d = self.objectives.len();
        assert!(k < d, "objective {k} of {d}");
        self.values.iter().skip(k).step_by(d).copied().collect()
    }
}

/// Reads the CSV `input` (with a header), keeps the rows that pass `filter`, and finds which of
/// them are non-dominated for the objectives `minimize` then `maximize` (column names), as
/// `lstm-dse pareto` gives them: errors about an objective name its flag (`--minimize`,
/// `--maximize`). [`front_of_csv_by`] names other sources.
///
/// Filter columns must hold a number (NaN and `inf` allowed) in every row; objective columns
/// must hold a number other than NaN in every row that passes the filter. Anything else is an
/// error naming the file, line and column, as is an objective or filter column missing from
/// the header or named twice.
pub fn front_of_csv(
    input: &Path,
    minimize: &[String],
    maximize: &[String],
    filter: Option<&str>,
) -> Result<FrontResult, ParetoError> {
    front_of_csv_by(
        input,
        ("--minimize", minimize),
        ("--maximize", maximize),
        filter,
    )
}

/// [`front_of_csv`], each list of objectives with the name of what gave it (a flag, a spec
/// key such as `pareto.minimize`), which the errors about one of its objectives name.
pub fn front_of_csv_by(
    input: &Path,
    (min_by, minimize): (&str, &[String]),
    (max_by, maximize): (&str, &[String]),
    filter: Option<&str>,
) -> Result<FrontResult, ParetoError> {
    // Before the file is opened ([`FrontRules::new`] refuses it too, for tables read elsewhere).
    if minimize.is_empty() && maximize.is_empty() {
        return Err(ParetoError::NoObjectives);
    }
    let csv_err = |source| ParetoError::Csv {
        path: input.to_path_buf(),
        source,
    };
    let file = crate::inputs::open_csv(input).map_err(|e| csv_err(e.into()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let header = reader.headers().map_err(csv_err)?.clone();
    let rules = FrontRules::new(
        input,
        header.iter().map(str::to_string).collect(),
        (min_by, minimize),
        (max_by, maximize),
        filter,
    )?;
    let mut total_rows = 0;
    let mut rows = Vec::new();
    let mut values = Vec::new();
    let mut scratch = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        total_rows += 1;
        let cell = |c: usize| record.get(c).unwrap_or("");
        match rules.row(cell, &mut scratch, &mut values) {
            Ok(true) => rows.push(record),
            Ok(false) => {}
            Err((c, problem)) => {
                return Err(ParetoError::BadCell {
                    path: input.to_path_buf(),
                    line: crate::inputs::csv_line(input, record.position()),
                    column: rules.columns[c].clone(),
                    problem,
                })
            }
        }
    }
    let objectives = rules.objectives;

    let minimised: Vec<f64> = values
        .chunks_exact(objectives.len())
        .flat_map(|r| {
            r.iter().zip(&objectives).map(|(&v, o)| match o.sense {
                Sense::Minimize => v,
                Sense::Maximize => -v,
            })
        })
        .collect();
    let mut on_front = vec![false; rows.len()];
    for i in front(&minimised, objectives.len()) {
        on_front[i] = true;
    }
    Ok(FrontResult {
        header,
        objectives,
        total_rows,
        rows,
        values,
        on_front,
    })
}

/// Writes the header and the front rows (input order) of `result` to `path` as CSV, creating
/// the parent directory if needed. The file appears whole or not at all.
pub fn write_front_csv(path: &Path, result: &FrontResult) -> Result<(), ParetoError> {
    let mut set = crate::report::Staged::new();
    stage_front_csv(&mut set, path, result)
        .and_then(|()| set.commit())
        .map_err(|e| ParetoError::Io {
            path: e.path,
            source: e.source,
        })
}

/// [`write_front_csv`] as one file of a set that is replaced together.
pub fn stage_front_csv(
    set: &mut crate::report::Staged,
    path: &Path,
    result: &FrontResult,
) -> Result<(), crate::report::WriteError> {
    set.write_csv(path, |w| {
        w.write_record(&result.header)?;
        result.front_rows().try_for_each(|r| w.write_record(r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let p = dir.join("results.csv");
        std::fs::write(&p, text).expect("write fixture");
        p
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const TABLE: &str = "\
design,latency_us,energy_uj,top1_agreement
a,10,5,0.999
b,20,2,0.995
c,20,6,0.999
d,5,9,0.98
e,10,5,0.999
f,30,1,0.999
";

    #[test]
    fn front_filter_and_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(dir.path(), TABLE);
        let r = front_of_csv(
            &input,
            &names(&["latency_us", "energy_uj"]),
            &[],
            Some("top1_agreement >= 0.99"),
        )
        .expect("front");
        assert_eq!(r.total_rows, 6);
        assert_eq!(r.rows.len(), 5);
        let front: Vec<&str> = r.front_rows().map(|r| &r[0]).collect();
        // a and e are identical: both stay.
        assert_eq!(front, ["a", "b", "e", "f"]);
        assert_eq!(r.objective_values(0), [10.0, 20.0, 20.0, 10.0, 30.0]);

        let out = dir.path().join("sub/front.csv");
        write_front_csv(&out, &r).expect("write");
        let text = std::fs::read_to_string(&out).expect("read back");
        assert_eq!(
            text,
            "design,latency_us,energy_uj,top1_agreement\n\
             a,10,5,0.999\nb,20,2,0.995\ne,10,5,0.999\nf,30,1,0.999\n"
        );
        assert!(!crate::report::partial_path(&out).exists());
    }

    #[test]
    fn maximised_objectives_are_negated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(dir.path(), TABLE);
        let r = front_of_csv(
            &input,
            &names(&["latency_us"]),
            &names(&["top1_agreement"]),
            None,
        )
        .expect("front");
        let front: Vec<&str> = r.front_rows().map(|r| &r[0]).collect();
        assert_eq!(front, ["a", "d", "e"]);
        assert_eq!(r.objectives[1].sense, Sense::Maximize);
        assert_eq!(r.objective_values(1)[3], 0.98);
    }

    #[test]
    fn bad_cells_name_file_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(dir.path(), "x,y,ok\n1,2,1\n3,,1\n");
        let e = front_of_csv(&input, &names(&["x", "y"]), &[], None)
            .expect_err("empty cell")
            .to_string();
        assert!(
            e.ends_with("results.csv:3: column `y`: empty cell, expected a number"),
            "{e}"
        );
        // A row the filter drops need not have numeric objectives.
        let r = front_of_csv(&input, &names(&["x", "y"]), &[], Some("x < 2")).expect("filtered");
        assert_eq!(r.rows.len(), 1);

        let input = write(dir.path(), "x,y\n1,abc\n");
        let e = front_of_csv(&input, &names(&["y"]), &[], None)
            .expect_err("text")
            .to_string();
        assert!(e.contains(":2: column `y`: `abc` is not a number"), "{e}");
        let input = write(dir.path(), "x,y\n1,NaN\n");
        let e = front_of_csv(&input, &names(&["y"]), &[], None)
            .expect_err("nan")
            .to_string();
        assert!(e.contains("NaN"), "{e}");
        let e = front_of_csv(&input, &names(&["x"]), &[], Some("y > 2 or x > 0"))
            .expect("NaN in a filter column compares false");
        assert_eq!(e.rows.len(), 1);
        let input = write(dir.path(), "x,y\n1,2\n3\n");
        let e = front_of_csv(&input, &names(&["y"]), &[], None).expect_err("short row");
        assert!(matches!(e, ParetoError::Csv { .. }), "{e}");
    }

    /// A column name the header holds twice was read from the first column of that name.
    #[test]
    fn a_name_the_header_holds_twice_is_refused_where_it_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(dir.path(), "id,a,b,a\nx,1,2,3\ny,2,1,0\n");
        let e = front_of_csv(&input, &names(&["a"]), &[], None).expect_err("ambiguous");
        assert!(
            e.to_string().starts_with("--minimize a: ")
                && e.to_string()
                    .contains("the header has this column more than once"),
            "{e}"
        );
        let e = front_of_csv(&input, &names(&["b"]), &[], Some("a > 1")).expect_err("ambiguous");
        assert!(
            e.to_string().contains("column `a` appears more than once"),
            "{e}"
        );
        let front = front_of_csv(&input, &names(&["b"]), &[], Some("b > 0")).expect("unused twice");
        assert_eq!((front.rows.len(), front.front_len()), (2, 1));
    }

    #[test]
    fn objective_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(dir.path(), TABLE);
        let e = front_of_csv(&input, &[], &[], None).expect_err("none");
        assert!(matches!(e, ParetoError::NoObjectives));
        let e = front_of_csv(&input, &names(&["latency"]), &[], None)
            .expect_err("unknown")
            .to_string();
        assert!(
            e.starts_with("--minimize latency: not a column of ") && e.contains("latency_us"),
            "{e}"
        );
        let e = front_of_csv(
            &input,
            &names(&["latency_us"]),
            &names(&["latency_us"]),
            None,
        )
        .expect_err("twice")
        .to_string();
        assert_eq!(e, "--maximize latency_us: also named by --minimize");
        let e = front_of_csv(&input, &names(&["latency_us", "latency_us"]), &[], None)
            .expect_err("twice")
            .to_string();
        assert_eq!(e, "--minimize latency_us: named twice");
        let e = front_of_csv_by(
            &input,
            ("pareto.minimize", &[]),
            ("pareto.maximize", &names(&["latency"])),
            None,
        )
        .expect_err("unknown")
        .to_string();
        assert!(
            e.starts_with("pareto.maximize latency: not a column of "),
            "{e}"
        );
        let e = front_of_csv(&input, &names(&["latency_us"]), &[], Some("area_mm2 < 3"))
            .expect_err("filter column")
            .to_string();
        assert!(e.contains("`area_mm2`"), "{e}");
    }

    #[test]
    fn empty_table_has_empty_front() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = write(dir.path(), "x,y\n");
        let r = front_of_csv(&input, &names(&["x", "y"]), &[], None).expect("front");
        assert_eq!((r.total_rows, r.rows.len(), r.front_len()), (0, 0, 0));
    }
}
