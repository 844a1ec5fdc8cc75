//! `report.html`: one self-contained page per sweep — the summary, the front in every pair of
//! objectives (a scatter matrix) and in the first four at once (colour and size), the front
//! table with each design's configuration, the precision options, the precision stage over
//! time, and the spec with its provenance. Inline SVG and CSS only: no script, no fonts, no
//! link to anything, so it opens from disk with no network.

use super::digest::digest;
pub use super::digest::{background_stride, sample_results, Records};
use super::stage::{error_figure, timeline_figure, StageTraces};
use super::svg::{esc, Chart, FAINT, STRONG};
use super::FrontFigure;
use super::{format_sig, SweepDir, ViewError};
use std::fmt::Write;
use std::path::Path;

/// At most this many front points per scatter-matrix panel (a fixed stride beyond).
const FRONT_POINTS: usize = 3000;
/// Front rows listed in the table (all are in front.csv).
const TABLE_ROWS: usize = 500;
/// Policy timelines shown per model.
const TIMELINES: usize = 6;

/// Writes `report.html` into the sweep directory (atomically); `stage` are the precision-stage
/// traces to show (may be empty). Returns the path.
pub fn write_report(
    sweep: &SweepDir,
    stage: &[StageTraces],
) -> Result<std::path::PathBuf, ViewError> {
    write_report_with(sweep, stage, None)
}

fn write_report_with(
    sweep: &SweepDir,
    stage: &[StageTraces],
    kept: Option<&Records>,
) -> Result<std::path::PathBuf, ViewError> {
    let html = render_with(sweep, stage, kept)?;
    let path = sweep.dir.join("report.html");
    crate::report::write_atomic(&path, |w| w.write_all(html.as_bytes()))
        .map_err(|e| super::file_error(&path, e))?;
    Ok(path)
}

/// Tooltip text of front row `i`: its configuration and objective values.
fn tip(sweep: &SweepDir, i: usize) -> String {
    let mut s = sweep.describe(i);
    for o in sweep.objectives() {
        if let Some(v) = sweep
            .front
            .col(&o.column)
            .and_then(|c| sweep.front.rows[i].get(c))
        {
            let _ = write!(s, "\n{} = {}", o.column, super::short_number(v));
        }
    }
    s
}

/// The page as a string.
pub fn render(sweep: &SweepDir, stage: &[StageTraces]) -> Result<String, ViewError> {
    render_with(sweep, stage, None)
}

/// [`render`], from the rows of results.csv a sweep `kept` when given (the same page).
pub fn render_with(
    sweep: &SweepDir,
    stage: &[StageTraces],
    kept: Option<&Records>,
) -> Result<String, ViewError> {
    let objectives = sweep.objectives();
    // Every front row is drawn: the sweep writes a number in each of its objective cells, so
    // anything else is an edit by hand, refused rather than left off the page unsaid.
    for o in &objectives {
        if let Some((line, cell)) = sweep.front.first_non_number(&o.column) {
            let problem = if cell.trim().is_empty() {
                "empty cell, expected a number".to_string()
            } else {
                format!("`{cell}` is not a number")
            };
            return Err(super::file_error(
                &sweep.dir.join("front.csv"),
                format!("line {line}: column `{}`: {problem}", o.column),
            ));
        }
    }
    let names: Vec<String> = objectives.iter().map(|o| o.column.clone()).collect();
    let d = digest(sweep, &names, kept)?;
    let front: Vec<Vec<f64>> = objectives
        .iter()
        .map(|o| sweep.front.numbers(&o.column))
        .collect();
    let tips: Vec<String> = (0..sweep.front.rows.len()).map(|i| tip(sweep, i)).collect();
    let name = esc(&sweep.spec.name);
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lstm-dse report: {name}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1400px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }}
.fig {{ display: inline-block; margin: 4px; vertical-align: top; }}
.grid {{ display: grid; gap: 4px; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
th {{ background: #f4f4f4; position: sticky; top: 0; }}
td.t {{ text-align: left; }}
.scroll {{ max-height: 520px; overflow: auto; display: inline-block; }}
pre {{ background: #f7f7f7; padding: 8px; font-size: 12px; overflow: auto; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>Sweep report: {name}</h1>
<pre>{}</pre>
"#,
        esc(&sweep.page_summary())
    );

    // The front in every pair of objectives: a lower-triangular scatter matrix.
    let k = objectives.len();
    let front_stride = sweep.front.rows.len().div_ceil(FRONT_POINTS).max(1);
    let _ = write!(
        h,
        r#"<h2>Pareto front in every pair of objectives</h2>
<p class="note">Red: the {} designs on the front; grey: a sample of all {} design points. Hover a point for its configuration.</p>
<div class="grid" style="grid-template-columns: repeat({}, 320px)">"#,
        sweep.front.rows.len(),
        sweep.points,
        k.saturating_sub(1).max(1)
    );
    for row in 1..k {
        for col in 0..k - 1 {
            if col >= row {
                h.push_str("<div></div>");
                continue;
            }
            let (ox, oy) = (&objectives[col], &objectives[row]);
            let background: Vec<f64> = d.background[col].clone();
            let mut xs = front[col].clone();
            xs.extend(&background);
            let mut ys = front[row].clone();
            ys.extend(&d.background[row]);
            let mut c = Chart::new(
                320.0,
                260.0,
                "",
                (&ox.column, &xs, false),
                (&oy.column, &ys, false),
            );
            for (x, y) in background.iter().zip(&d.background[row]) {
                c.point(*x, *y, 1.6, FAINT, "design point");
            }
            for i in (0..front[col].len()).step_by(front_stride) {
                c.point(front[col][i], front[row][i], 3.2, STRONG, &tips[i]);
            }
            let _ = write!(h, r#"<div class="fig">{}</div>"#, c.finish());
        }
    }
    h.push_str("</div>\n");

    if k >= 2 {
        let background: Vec<(f64, f64)> = d.background[0]
            .iter()
            .zip(&d.background[1])
            .map(|(x, y)| (*x, *y))
            .collect();
        let fig = FrontFigure {
            title: "front: first two objectives, colour and size the third and fourth",
            x: (&objectives[0].column, &front[0]),
            y: (&objectives[1].column, &front[1]),
            colour: (k > 2).then(|| (objectives[2].column.as_str(), front[2].as_slice())),
            size: (k > 3).then(|| (objectives[3].column.as_str(), front[3].as_slice())),
            tips: &tips,
            background: &background,
        };
        let _ = write!(h, r#"<div class="fig">{}</div>"#, fig.render(900.0, 520.0));
    }

    // The front table.
    let cols: Vec<String> = sweep
        .config_columns()
        .into_iter()
        .chain(objectives.iter().map(|o| o.column.clone()))
        .filter(|c| sweep.front.col(c).is_some())
        .collect();
    let _ = write!(
        h,
        r#"<h2>Designs on the front</h2><p class="note">{} designs{}; every column is in front.csv.</p><div class="scroll"><table><tr><th>point</th>"#,
        sweep.front.rows.len(),
        if sweep.front.rows.len() > TABLE_ROWS {
            format!(", the first {TABLE_ROWS} shown")
        } else {
            String::new()
        }
    );
    for c in &cols {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>\n");
    let point_col = sweep.front.col("point");
    for row in sweep.front.rows.iter().take(TABLE_ROWS) {
        let _ = write!(
            h,
            "<tr><td>{}</td>",
            esc(point_col
                .and_then(|i| row.get(i))
                .map_or("", String::as_str))
        );
        for c in &cols {
            let v = sweep
                .front
                .col(c)
                .and_then(|i| row.get(i))
                .map_or("", String::as_str);
            let numeric = v.parse::<f64>().is_ok();
            let _ = write!(
                h,
                "<td{}>{}</td>",
                if numeric { "" } else { r#" class="t""# },
                esc(&if numeric {
                    super::short_number(v)
                } else {
                    v.to_string()
                })
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table></div>\n");

    // The precision stage.
    let _ = write!(
        h,
        r#"<h2>Precision stage</h2><p class="note">Every precision option of the sweep with its accuracy against the float64 reference over the whole input (frac_low_precision: share of steps at the lowest level).</p><div class="scroll"><table><tr>"#
    );
    for c in &d.options_header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>\n");
    for row in &d.options {
        h.push_str("<tr>");
        for v in row {
            let shown = match v.parse::<f64>() {
                Ok(x) => format_sig(x),
                Err(_) => v.clone(),
            };
            let _ = write!(h, r#"<td class="t">{}</td>"#, esc(&shown));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table></div>\n");
    for st in stage {
        let _ = write!(
            h,
            r#"<p class="note">Per step, {}: the last layer's forward direction. Solid: fixed precisions; dashed: dynamic policies.</p><div class="fig">{}</div>"#,
            esc(&st.title),
            error_figure(st, 900.0, 360.0)
        );
        if !st.policies.is_empty() {
            h.push_str(r#"<p class="note">Dynamic policies: the cell-state change metric per step, coloured by the level the step ran at (strip along the top); dashed lines are the thresholds.</p>"#);
        }
        for tl in st.policies.iter().take(TIMELINES) {
            let _ = write!(
                h,
                r#"<div class="fig">{}</div>"#,
                timeline_figure(st, tl, 620.0, 260.0)
            );
        }
    }

    // Spec and provenance.
    let version = sweep
        .columns
        .iter()
        .position(|c| c == "tool_version")
        .and_then(|i| sweep.front.rows.first().and_then(|r| r.get(i)).cloned())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    let _ = write!(
        h,
        r#"<h2>Spec and provenance</h2><p class="note">Results written by lstm-dse {}; this page by lstm-dse {}. Every row of results.csv carries its config_hash. The resolved spec (every default filled, the base architecture's values) is spec.resolved.toml in {}:</p><pre>{}</pre>
</body></html>
"#,
        esc(&version),
        env!("CARGO_PKG_VERSION"),
        esc(&sweep.dir.display().to_string()),
        esc(&sweep.resolved)
    );
    Ok(h)
}

/// `report.html` of the sweep directory `dir`, with the precision stage of `sequence`.
/// `rows`: results.csv's row count, when known (see [`SweepDir::open_with_rows`]).
pub fn report_dir(
    dir: &Path,
    sequence: usize,
    rows: Option<usize>,
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<std::path::PathBuf> {
    report_dir_with(dir, sequence, rows, None, progress)
}

/// [`report_dir`], from the rows of results.csv that the sweep which has just written it
/// `kept` (their row count is then `kept.rows`).
pub fn report_dir_with(
    dir: &Path,
    sequence: usize,
    rows: Option<usize>,
    kept: Option<&Records>,
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<std::path::PathBuf> {
    let rows = kept.map(|k| k.rows).or(rows);
    super::refuse_shard(dir, "report")?;
    let sweep = SweepDir::open_with_rows(dir, rows)?;
    let stage = super::stage::compute_for_sweep(&sweep, sequence, 3, progress)?;
    Ok(write_report_with(&sweep, &stage, kept)?)
}
