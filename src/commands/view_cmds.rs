//! `report` and `plot`: the report page and SVG figures of a sweep, trace or dynamic directory.

use super::*;
use crate::cli::{PlotFrontArgs, PlotTraceArgs, ReportArgs};
use crate::view::{self, stage, svg, SweepDir};
use std::path::Path;

/// A bar over the models whose precision stage is rerun for the plots.
pub(super) fn stage_bar(quiet: bool) -> indicatif::ProgressBar {
    let bar = progress_bar_with(
        quiet,
        "precision stage (plots)",
        0,
        "{spinner} {msg} [{bar:40}] {pos}/{len} models ({elapsed})",
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Writes report.html for a sweep directory (`rows`: results.csv's row count, when known);
/// returns its path.
pub(super) fn write_report(
    dir: &Path,
    sequence: usize,
    rows: Option<usize>,
    quiet: bool,
) -> Result<std::path::PathBuf> {
    let bar = stage_bar(quiet);
    let path = view::page::report_dir(dir, sequence, rows, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    path
}

pub(super) fn report_cmd(a: &ReportArgs) -> Result<()> {
    // report.html may be a link to a file the page is drawn from.
    let page = a.dir.join("report.html");
    refuse_overwriting_inputs(
        &crate::sweep::results_inputs(&a.dir),
        &[Output::inside("DIR", &a.dir, page)],
    )?;
    // Not while a sweep publishes into the directory: the page would be drawn from files
    // being replaced.
    let _lock = crate::sweep::OutDir::lock_results(&a.dir)?;
    let path = write_report(&a.dir, a.sequence, None, a.quiet)?;
    if !a.quiet {
        crate::note!("wrote {}", path.display());
    }
    Ok(())
}

/// The sweep directory's lock when the figure goes into it (by default, or `--out` there);
/// a figure written elsewhere only reads the directory.
fn lock_if_inside(dir: &Path, out: Option<&Path>) -> Result<Option<crate::sweep::OutDir>> {
    let inside = out.is_none_or(|o| {
        let parent = o.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = parent.unwrap_or(Path::new("."));
        parent.canonicalize().ok() == dir.canonicalize().ok()
    });
    if inside {
        crate::sweep::OutDir::lock_results(dir)
    } else {
        Ok(None)
    }
}

/// The files `plot trace` reads from `dir`: a sweep directory's, or a trace or dynamic
/// directory's CSV files.
fn plot_inputs(dir: &Path) -> Vec<Input> {
    if dir.join("spec.resolved.toml").exists() {
        return crate::sweep::results_inputs(dir);
    }
    let names = [
        "errors.csv",
        "cell_delta.csv",
        "summary.csv",
        "policies.csv",
    ];
    let traces = crate::dynamic::trace_files(dir).unwrap_or_default();
    (names.into_iter().map(|n| dir.join(n)))
        .chain(traces.into_iter().map(|(_, p)| p))
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            Input::new(format!("{name} of {}", dir.display()), &p)
        })
        .collect()
}

fn write_svg(path: &Path, svg: &str) -> Result<()> {
    crate::report::write_atomic(path, |w| w.write_all(svg.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

pub(super) fn plot_trace(a: &PlotTraceArgs) -> Result<()> {
    if !a.dir.is_dir() {
        bail!("{}: not a directory", a.dir.display());
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.dir.join(format!("trace_seq{}.svg", a.sequence)));
    refuse_overwriting_inputs(&plot_inputs(&a.dir), &[Output::file("--out", &out)])?;
    crate::report::refuse_non_svg("--out", &out)?;
    let _lock = lock_if_inside(&a.dir, a.out.as_deref())?;
    let traces = if a.dir.join("spec.resolved.toml").exists() {
        let sweep = SweepDir::open(&a.dir)?;
        let bar = stage_bar(a.quiet);
        let t = stage::compute_for_sweep(&sweep, a.sequence, usize::MAX, &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        });
        bar.finish_and_clear();
        t?
    } else {
        vec![stage::from_csv_dir(&a.dir, a.sequence)?]
    };
    const W: f64 = 900.0;
    let mut parts = Vec::new();
    for st in &traces {
        if !st.errors.is_empty() || st.policies.iter().any(|p| !p.hidden_max_abs.is_empty()) {
            parts.push((stage::error_figure(st, W, 360.0), 360.0));
        }
        for tl in &st.policies {
            parts.push((stage::timeline_figure(st, tl, W, 260.0), 260.0));
        }
    }
    write_svg(&out, &svg::stack(&parts, W))?;
    if !a.quiet {
        crate::note!("wrote {} ({} figures)", out.display(), parts.len());
    }
    Ok(())
}

pub(super) fn plot_front(a: &PlotFrontArgs) -> Result<()> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.dir.join("front_objectives.svg"));
    refuse_overwriting_inputs(
        &crate::sweep::results_inputs(&a.dir),
        &[Output::file("--out", &out)],
    )?;
    crate::report::refuse_non_svg("--out", &out)?;
    let _lock = lock_if_inside(&a.dir, a.out.as_deref())?;
    // A shard's results.csv holds a part of the plan's points: said as such, not as a
    // results.csv cut short.
    crate::view::refuse_shard(&a.dir, "plot")?;
    let sweep = SweepDir::open(&a.dir)?;
    if sweep.front.rows.is_empty() {
        bail!("{}", empty_front(&sweep));
    }
    let objectives: Vec<String> = sweep.objectives().into_iter().map(|o| o.column).collect();
    let pick =
        |given: &Option<String>, k: usize| given.clone().or_else(|| objectives.get(k).cloned());
    let (Some(x), Some(y)) = (pick(&a.x, 0), pick(&a.y, 1)) else {
        bail!("--x and --y: the sweep has fewer than two objectives; name the columns");
    };
    let (colour, size) = (pick(&a.colour, 2), pick(&a.size, 3));
    let mut named = vec![x.clone(), y.clone()];
    named.extend(colour.iter().cloned());
    named.extend(size.iter().cloned());
    for c in &named {
        if sweep.front.col(c).is_none() {
            bail!(
                "{}: no column '{c}' (columns: {})",
                a.dir.join("front.csv").display(),
                sweep.front.header.join(", ")
            );
        }
    }
    let values: Vec<Vec<f64>> = named.iter().map(|c| sweep.front.numbers(c)).collect();
    // Every axis needs a number in every row: a text column (precision, dispatch.policy) or an
    // empty one drew an empty chart with exit 0.
    let flags = ["--x", "--y"]
        .into_iter()
        .chain(colour.as_ref().map(|_| "--colour"))
        .chain(size.as_ref().map(|_| "--size"));
    for ((flag, c), v) in flags.zip(&named).zip(&values) {
        if let Some(row) = v.iter().position(|v| v.is_nan()) {
            let raw = sweep.front.rows[row]
                .get(sweep.front.col(c).unwrap_or(usize::MAX))
                .map_or("", String::as_str);
            bail!(
                "{flag} {c}: {}: row {} holds '{raw}', not a number: give a numeric column",
                a.dir.join("front.csv").display(),
                row + 1
            );
        }
    }
    let sample = view::page::sample_results(&sweep, &named[..2])?;
    let background: Vec<(f64, f64)> = sample[0]
        .iter()
        .zip(&sample[1])
        .map(|(x, y)| (*x, *y))
        .collect();
    let tips: Vec<String> = (0..sweep.front.rows.len())
        .map(|i| sweep.describe(i))
        .collect();
    let title = format!("{}: Pareto front", sweep.spec.name);
    let fig = crate::view::FrontFigure {
        title: &title,
        x: (&x, &values[0]),
        y: (&y, &values[1]),
        colour: colour.as_deref().map(|c| (c, values[2].as_slice())),
        size: size
            .as_deref()
            .map(|c| (c, values[if colour.is_some() { 3 } else { 2 }].as_slice())),
        tips: &tips,
        background: &background,
    };
    write_svg(&out, &fig.render(900.0, 560.0))?;
    if !a.quiet {
        crate::note!("wrote {}", out.display());
    }
    Ok(())
}

/// Why `sweep` (a whole run) has no front rows to plot, in one line: a run whose points were
/// all skipped has no rows; otherwise the `where` filter kept none (a run without one has a
/// front whenever it has rows).
fn empty_front(sweep: &SweepDir) -> String {
    let front = sweep.dir.join("front.csv");
    let front = front.display();
    if sweep.points == 0 {
        return format!(
            "{front}: the front is empty: results.csv has no rows (every point was skipped, see skipped.csv)"
        );
    }
    match &sweep.spec.pareto.filter {
        Some(f) => format!(
            "{front}: the front is empty: no row of results.csv ({} rows) passes the sweep's where = \"{f}\"",
            sweep.points
        ),
        None => format!(
            "{front}: no rows, though results.csv has {} and the sweep has no where filter (damaged? write it again with `lstm-dse sweep SWEEP.toml --resume --out DIR`)",
            sweep.points
        ),
    }
}
