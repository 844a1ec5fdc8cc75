//! The per-step files of a `trace` directory (`errors.csv`) and of `dynamic --trace-policy`
//! (`policy_<K>_trace.csv`, with `policies.csv` for the level names and thresholds), read for
//! `plot trace` and checked as they are read: every column drawn must be there, every cell
//! read must hold what its writer puts there (an index, a number), and the shown rows of each
//! precision must be the steps 0, 1, ... once each; a policy's trace and its row of
//! `policies.csv` must agree on every level's precision (one threshold per level boundary, one
//! row per policy, a row for every traced policy). A file edited by hand or cut short is
//! refused naming the file, the line and the column, instead of drawn as a blank figure, a
//! single point or a line with a step left out.

use super::stage::{StageTraces, Timeline};
use super::{file_error, Table, ViewError};
use std::path::Path;

/// Levels a policy trace may name when `policies.csv` does not say how many its policy has
/// (levels widen strictly in every role's bits, so no policy has nearly as many).
const MAX_LEVELS: usize = 256;

/// The columns of `errors.csv` that the figure reads.
const ERROR_COLUMNS: [&str; 6] = [
    "precision",
    "sequence",
    "layer",
    "direction",
    "step",
    "hidden_max_abs",
];

/// The columns of `policy_<K>_trace.csv` that the timeline reads.
const POLICY_TRACE_COLUMNS: [&str; 8] = [
    "sequence",
    "layer",
    "direction",
    "step",
    "delta_c_metric",
    "level",
    "level_precision",
    "hidden_max_abs",
];

/// The columns of `policies.csv` that name a policy's levels and thresholds.
const POLICY_COLUMNS: [&str; 3] = ["policy", "levels", "thresholds"];

/// A CSV file with a header and at least one row, and the indices of `names` in it.
/// `writer` names the command that writes the file, `rows` what its rows are.
fn open(
    path: &Path,
    names: &[&str],
    writer: &str,
    rows: &str,
) -> Result<(Table, Vec<usize>), ViewError> {
    let t = Table::read(path)?;
    if t.header.is_empty() {
        return Err(file_error(
            path,
            format!("empty, not even a header (written by {writer})"),
        ));
    }
    let cols = names
        .iter()
        .map(|&n| {
            t.col(n).ok_or_else(|| {
                file_error(
                    path,
                    format!(
                        "no column `{n}` (the columns {writer} writes include {})",
                        names.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    if t.rows.is_empty() {
        return Err(file_error(
            path,
            format!("a header and no rows (written by {writer}, which writes {rows})"),
        ));
    }
    Ok((t, cols))
}

/// The line row `i` of `t` starts on.
fn line(t: &Table, i: usize) -> u64 {
    crate::inputs::csv_line(&t.path, t.positions.get(i).and_then(Option::as_ref))
}

/// A cell that does not hold what its column does: the file, line, column and cell.
fn bad_cell(t: &Table, i: usize, name: &str, cell: &str, want: &str) -> ViewError {
    let problem = if cell.is_empty() {
        format!("empty cell, expected {want}")
    } else {
        format!("`{cell}` is not {want}")
    };
    file_error(
        &t.path,
        format!("line {}: column `{name}`: {problem}", line(t, i)),
    )
}

fn text(t: &Table, i: usize, col: usize) -> &str {
    t.rows[i].get(col).map_or("", String::as_str)
}

/// Row `i`'s cell of column `col` (named `name`) as an index (0, 1, ...).
fn index(t: &Table, i: usize, col: usize, name: &str) -> Result<usize, ViewError> {
    let cell = text(t, i, col);
    let digits = !cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit());
    match cell.parse::<usize>() {
        Ok(v) if digits => Ok(v),
        _ => Err(bad_cell(t, i, name, cell, "an index (0, 1, ...)")),
    }
}

/// Row `i`'s cell of column `col` as a number (`NaN` and `inf` as the writers spell them).
fn number(t: &Table, i: usize, col: usize, name: &str) -> Result<f64, ViewError> {
    let cell = text(t, i, col);
    cell.parse::<f64>()
        .map_err(|_| bad_cell(t, i, name, cell, "a number"))
}

/// Row `i`'s cell of column `col` as a magnitude: a number at least 0 (`inf` and `NaN` as
/// the writers spell an error past every format's range), as errors and metrics are.
fn magnitude(t: &Table, i: usize, col: usize, name: &str) -> Result<f64, ViewError> {
    let v = number(t, i, col, name)?;
    match v < 0.0 {
        true => Err(bad_cell(
            t,
            i,
            name,
            text(t, i, col),
            "a magnitude (at least 0)",
        )),
        false => Ok(v),
    }
}

/// Where a row is: sequence, layer, direction, step.
#[derive(Clone, Copy)]
struct At {
    sequence: usize,
    layer: usize,
    direction: usize,
    step: usize,
}

/// Every row's position (the first four of `cols`: sequence, layer, direction, step), checked.
fn positions(t: &Table, cols: &[usize]) -> Result<Vec<At>, ViewError> {
    (0..t.rows.len())
        .map(|i| {
            Ok(At {
                sequence: index(t, i, cols[0], "sequence")?,
                layer: index(t, i, cols[1], "layer")?,
                direction: index(t, i, cols[2], "direction")?,
                step: index(t, i, cols[3], "step")?,
            })
        })
        .collect()
}

/// The rows shown for `sequence`: the last layer's forward direction. A sequence the file does
/// not hold is refused, saying how many it holds.
fn shown(t: &Table, at: &[At], sequence: usize) -> Result<Vec<usize>, ViewError> {
    let last = at.iter().map(|a| a.layer).max().unwrap_or(0);
    let count = at.iter().map(|a| a.sequence).max().map_or(0, |m| m + 1);
    if sequence >= count {
        let range = match count {
            1 => "sequence 0".to_string(),
            n => format!("{n} sequences (0..{})", n - 1),
        };
        return Err(file_error(
            &t.path,
            format!("--sequence {sequence}: the trace has {range}"),
        ));
    }
    let rows: Vec<usize> = (0..at.len())
        .filter(|&i| at[i].sequence == sequence && at[i].layer == last && at[i].direction == 0)
        .collect();
    if rows.is_empty() {
        return Err(file_error(
            &t.path,
            format!(
                "no rows of sequence {sequence} in the last layer's forward direction (layer {last}, direction 0)"
            ),
        ));
    }
    Ok(rows)
}

/// Sorts `rows` (of one precision or policy, `what`) by step and checks they are the steps
/// 0, 1, ... once each.
fn in_step_order(t: &Table, at: &[At], rows: &mut [usize], what: &str) -> Result<(), ViewError> {
    rows.sort_by_key(|&i| at[i].step);
    for (k, &i) in rows.iter().enumerate() {
        let step = at[i].step;
        if step == k {
            continue;
        }
        let problem = if k > 0 && step == at[rows[k - 1]].step {
            format!("step {step} of {what} appears twice")
        } else {
            format!("{what} has no step {k} (the next is step {step})")
        };
        return Err(file_error(
            &t.path,
            format!("line {}: column `step`: {problem}", line(t, i)),
        ));
    }
    Ok(())
}

/// The hidden error of every precision of `errors.csv` on `sequence`, in the order listed.
fn errors(path: &Path, sequence: usize) -> Result<Vec<(String, Vec<f64>)>, ViewError> {
    let (t, cols) = open(path, &ERROR_COLUMNS, "`lstm-dse trace`", "a row per step")?;
    let at = positions(&t, &cols[1..5])?;
    let mut values = Vec::with_capacity(t.rows.len());
    for i in 0..t.rows.len() {
        if text(&t, i, cols[0]).is_empty() {
            return Err(bad_cell(&t, i, "precision", "", "a precision config"));
        }
        values.push(magnitude(&t, i, cols[5], "hidden_max_abs")?);
    }
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for i in shown(&t, &at, sequence)? {
        let p = text(&t, i, cols[0]);
        match groups.iter_mut().find(|(name, _)| name == p) {
            Some((_, rows)) => rows.push(i),
            None => groups.push((p.to_string(), vec![i])),
        }
    }
    for (p, rows) in &mut groups {
        in_step_order(&t, &at, rows, &format!("{p}, sequence {sequence}"))?;
    }
    // Every precision runs every step: fewer for one is a file cut short or rows deleted.
    if let Some((p, rows)) = groups.iter().find(|(_, r)| r.len() != groups[0].1.len()) {
        return Err(file_error(
            path,
            format!(
                "precision {p} has {} steps of sequence {sequence}, {} has {} (cut short or rows deleted?)",
                rows.len(),
                groups[0].0,
                groups[0].1.len()
            ),
        ));
    }
    Ok(groups
        .into_iter()
        .map(|(p, rows)| (p, rows.iter().map(|&i| values[i]).collect()))
        .collect())
}

/// A policy's row of `policies.csv`: its levels (names) and thresholds.
struct Named {
    policy: usize,
    levels: Vec<String>,
    thresholds: Vec<f64>,
}

/// Level names and thresholds by policy, from `policies.csv`.
fn policy_table(path: &Path) -> Result<Vec<Named>, ViewError> {
    let (t, cols) = open(
        path,
        &POLICY_COLUMNS,
        "`lstm-dse dynamic`",
        "a row per policy",
    )?;
    let mut table: Vec<Named> = Vec::with_capacity(t.rows.len());
    let mut seen = std::collections::HashSet::with_capacity(t.rows.len());
    for i in 0..t.rows.len() {
        let policy = index(&t, i, cols[0], "policy")?;
        if !seen.insert(policy) {
            let want = "a policy not listed before (each has one row)";
            return Err(bad_cell(&t, i, "policy", text(&t, i, cols[0]), want));
        }
        let cell = text(&t, i, cols[1]);
        let levels: Vec<String> = cell.split('|').map(String::from).collect();
        if levels.iter().any(String::is_empty) {
            let want = "level configs separated by '|'";
            return Err(bad_cell(&t, i, "levels", cell, want));
        }
        let cell = text(&t, i, cols[2]);
        let thresholds = cell
                .split('|')
                .map(|v| v.parse::<f64>().ok().filter(|v| *v >= 0.0))
                .collect::<Option<Vec<f64>>>()
                .filter(|t| t.len() + 1 == levels.len())
                .ok_or_else(|| {
                    let want = format!(
                        "one threshold per boundary of the {} levels ({}), each at least 0 (inf allowed), separated by '|'",
                        levels.len(),
                        levels.len() - 1
                    );
                    bad_cell(&t, i, "thresholds", cell, &want)
                })?;
        table.push(Named {
            policy,
            levels,
            thresholds,
        });
    }
    Ok(table)
}

/// Policy `k`'s timeline on `sequence` from its trace file.
fn timeline(
    path: &Path,
    k: usize,
    sequence: usize,
    named: Option<&Named>,
) -> Result<Timeline, ViewError> {
    let (t, cols) = open(
        path,
        &POLICY_TRACE_COLUMNS,
        "`lstm-dse dynamic --trace-policy`",
        "a row per step",
    )?;
    let at = positions(&t, &cols[..4])?;
    let mut tl = Timeline::default();
    if let Some(n) = named {
        tl.level_names = n.levels.clone();
        tl.thresholds = n.thresholds.clone();
    }
    let levels = named.map_or(MAX_LEVELS, |n| n.levels.len());
    let mut cells = Vec::with_capacity(t.rows.len());
    for i in 0..t.rows.len() {
        let metric = magnitude(&t, i, cols[4], "delta_c_metric")?;
        let level = index(&t, i, cols[5], "level")?;
        if level >= levels {
            let want = match named {
                Some(_) => format!("a level of policy {k} (0..{}, policies.csv)", levels - 1),
                None => format!("a level (below {MAX_LEVELS})"),
            };
            return Err(bad_cell(&t, i, "level", text(&t, i, cols[5]), &want));
        }
        let hidden = magnitude(&t, i, cols[7], "hidden_max_abs")?;
        cells.push((metric, level, hidden));
        let name = text(&t, i, cols[6]);
        if !name.is_empty() {
            if tl.level_names.len() <= level {
                tl.level_names.resize(level + 1, String::new());
            }
            // A level has one precision: the one policies.csv lists, or the first row's.
            let known = &tl.level_names[level];
            if !known.is_empty() && known != name {
                let source = match named {
                    Some(_) => "policies.csv",
                    None => "an earlier row",
                };
                let want = format!("level {level}'s precision ({known}, {source})");
                return Err(bad_cell(&t, i, "level_precision", name, &want));
            }
            tl.level_names[level] = name.to_string();
        }
    }
    let mut rows = shown(&t, &at, sequence)?;
    in_step_order(&t, &at, &mut rows, &format!("sequence {sequence}"))?;
    for i in rows {
        let (metric, level, hidden) = cells[i];
        tl.metric.push(metric);
        tl.level.push(level);
        tl.hidden_max_abs.push(hidden);
    }
    tl.label = format!("policy {k}: {}", tl.level_names.join("|"));
    if !tl.thresholds.is_empty() {
        let shown = crate::dynamic::thresholds_text(&tl.thresholds);
        tl.label.push_str(&format!(" at {shown}"));
    }
    Ok(tl)
}

/// Reads the traces of `sequence` from a `trace` and/or `dynamic --trace-policy` directory.
pub fn from_csv_dir(dir: &Path, sequence: usize) -> Result<StageTraces, ViewError> {
    let mut st = StageTraces {
        title: format!("{}, sequence {sequence}", dir.display()),
        ..StageTraces::default()
    };
    let errors_csv = dir.join("errors.csv");
    if errors_csv.exists() {
        st.errors = errors(&errors_csv, sequence)?;
    }
    let traces = crate::dynamic::trace_files(dir).map_err(|e| file_error(dir, e))?;
    if !traces.is_empty() {
        let policies = dir.join("policies.csv");
        let named = if policies.exists() {
            policy_table(&policies)?
        } else {
            Vec::new()
        };
        let by_policy: std::collections::HashMap<usize, &Named> =
            named.iter().map(|n| (n.policy, n)).collect();
        for (k, path) in traces {
            let row = by_policy.get(&k).copied();
            if row.is_none() && !named.is_empty() {
                return Err(file_error(
                    &policies,
                    format!(
                        "no row for policy {k}, whose trace is {} (written together by `lstm-dse dynamic --trace-policy`: from different runs?)",
                        path.display()
                    ),
                ));
            }
            st.policies.push(timeline(&path, k, sequence, row)?);
        }
    }
    st.steps = st
        .errors
        .iter()
        .map(|(_, v)| v.len())
        .chain(st.policies.iter().map(|p| p.level.len()))
        .max()
        .unwrap_or(0);
    if st.steps == 0 {
        return Err(file_error(
            dir,
            format!(
                "no per-step traces of sequence {sequence} (expected errors.csv from `lstm-dse trace` or policy_<K>_trace.csv from `lstm-dse dynamic --trace-policy K`, or a sweep directory)"
            ),
        ));
    }
    Ok(st)
}
