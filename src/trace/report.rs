//! Turns a [`Trace`] (per-step errors already reduced) into rows and writes the three CSV files. Rows come out in a fixed order
//! (precision as listed, then sequence, layer, direction, step), so the same input gives the
//! same bytes on every run and every device.

use super::stats::{top1_agreement, ErrorStats as Acc};
use super::Trace;
use crate::lstm::Model;
use crate::report::{Staged, WriteError};
use serde::Serialize;
use std::path::Path;

/// One row of `errors.csv`: a precision's error against the float64 reference at one step of one direction of
/// one layer of one sequence (over that direction's H units). Unitless, like the states.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRow {
    pub precision: String,
    pub sequence: usize,
    pub layer: usize,
    pub direction: usize,
    pub step: usize,
    pub hidden_rmse: f64,
    pub hidden_max_abs: f64,
    pub cell_rmse: f64,
    pub cell_max_abs: f64,
}

/// One row of `cell_delta.csv`: how much the reference cell state moved at this step, and the
/// narrowest listed precision whose hidden error stays within the tolerance here (`reference`
/// when none does).
#[derive(Debug, Clone, Serialize)]
pub struct CellDeltaRow {
    pub sequence: usize,
    pub layer: usize,
    pub direction: usize,
    pub step: usize,
    pub delta_c_max_abs: f64,
    pub delta_c_mean_abs: f64,
    pub required_precision: String,
}

/// One row of `summary.csv`: whole-run figures of one precision.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    pub precision: String,
    /// w + a + p + c widths, the order used for "narrowest".
    pub total_bits: u32,
    pub hidden_rmse: f64,
    pub hidden_max_abs: f64,
    pub cell_rmse: f64,
    pub cell_max_abs: f64,
    /// Fraction of (sequence, layer, direction, step) rows with hidden_max_abs <= tolerance.
    pub steps_within_tolerance: f64,
    pub output_rmse: Option<f64>,
    pub output_max_abs: Option<f64>,
    /// Fraction of (sequence, step) whose arg-max class equals the reference's (multi-class heads).
    pub top1_agreement: Option<f64>,
}

/// Builds the rows of the three files (all in memory: [`write_csvs`] streams them instead).
pub fn rows(
    trace: &Trace,
    model: &Model,
    tolerance: f32,
) -> (Vec<ErrorRow>, Vec<CellDeltaRow>, Vec<SummaryRow>) {
    let mut errors = Vec::new();
    for_each_error(trace, model, |r| {
        errors.push(r);
        Ok::<(), ()>(())
    })
    .expect("pushing never fails");
    let (summary, within) = summaries(trace, model, tolerance);
    let mut deltas = Vec::new();
    for_each_delta(trace, model, &within, |r| {
        deltas.push(r);
        Ok::<(), ()>(())
    })
    .expect("pushing never fails");
    (errors, deltas, summary)
}

/// Each distinct config once, in the order listed.
fn listed(trace: &Trace) -> Vec<usize> {
    let mut listed: Vec<usize> = Vec::new();
    for &i in &trace.listed {
        if !listed.contains(&i) {
            listed.push(i);
        }
    }
    listed
}

/// Calls `f` on the rows of `errors.csv` in order, one at a time (a trace of many precisions
/// over long inputs has more rows than fit in memory as rows; its reduced errors do).
fn for_each_error<E>(
    trace: &Trace,
    model: &Model,
    mut f: impl FnMut(ErrorRow) -> Result<(), E>,
) -> Result<(), E> {
    for p in listed(trace) {
        let run = &trace.results[p];
        let precision = run.config.to_string();
        let mut reduced = run.steps.iter();
        for n in 0..trace.sequences {
            for (l, layer) in model.layers.iter().enumerate() {
                for k in 0..layer.direction.count() {
                    for t in 0..trace.steps {
                        let Some((h, c)) = reduced.next() else {
                            continue;
                        };
                        f(ErrorRow {
                            precision: precision.clone(),
                            sequence: n,
                            layer: l,
                            direction: k,
                            step: t,
                            hidden_rmse: h.rmse(),
                            hidden_max_abs: h.max_abs(),
                            cell_rmse: c.rmse(),
                            cell_max_abs: c.max_abs(),
                        })?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The summary rows, and per listed config whether it meets `tolerance` at each row of
/// `errors.csv` (sequence, layer, direction, step).
fn summaries(trace: &Trace, model: &Model, tolerance: f32) -> (Vec<SummaryRow>, Vec<Vec<bool>>) {
    let reference = &trace.reference;
    let mut within: Vec<Vec<bool>> = Vec::new();
    let mut summary = Vec::new();
    for p in listed(trace) {
        let run = &trace.results[p];
        let (mut h_all, mut c_all) = (Acc::default(), Acc::default());
        let mut ok = Vec::with_capacity(run.steps.len());
        for (h, c) in &run.steps {
            h_all.merge(h);
            c_all.merge(c);
            ok.push(h.max_abs() <= tolerance as f64);
        }
        let (mut out_rmse, mut out_max, mut top1) = (None, None, None);
        if let (Some(head), Some(o), Some(r)) = (&model.head, &run.output, &reference.output) {
            let mut acc = Acc::default();
            acc.add(o, r);
            out_rmse = Some(acc.rmse());
            out_max = Some(acc.max_abs());
            if head.output_size() > 1 {
                top1 = Some(top1_agreement(o, r, head.output_size()));
            }
        }
        summary.push(SummaryRow {
            precision: run.config.to_string(),
            total_bits: run.config.total_bits(),
            hidden_rmse: h_all.rmse(),
            hidden_max_abs: h_all.max_abs(),
            cell_rmse: c_all.rmse(),
            cell_max_abs: c_all.max_abs(),
            steps_within_tolerance: ok.iter().filter(|&&b| b).count() as f64
                / ok.len().max(1) as f64,
            output_rmse: out_rmse,
            output_max_abs: out_max,
            top1_agreement: top1,
        });
        within.push(ok);
    }
    (summary, within)
}

/// Calls `f` on the rows of `cell_delta.csv` in order (`within` from [`summaries`]).
fn for_each_delta<E>(
    trace: &Trace,
    model: &Model,
    within: &[Vec<bool>],
    mut f: impl FnMut(CellDeltaRow) -> Result<(), E>,
) -> Result<(), E> {
    let (n_seq, steps) = (trace.sequences, trace.steps);
    let ref_states = &trace.reference.states;
    let listed = listed(trace);
    // Narrowest first; ties keep the listed order.
    let mut by_width: Vec<usize> = (0..listed.len()).collect();
    by_width.sort_by_key(|&i| trace.results[listed[i]].config.total_bits());
    let mut row = 0;
    for n in 0..n_seq {
        for (l, layer) in model.layers.iter().enumerate() {
            let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
            for k in 0..dirs {
                let zeros = vec![0.0f32; hsz];
                let c0 = layer.cells[k].c0.as_deref().unwrap_or(&zeros);
                let reversed = layer.direction.is_reversed(k);
                for t in 0..steps {
                    let at = |t: usize| (n * steps + t) * hsz * dirs + k * hsz;
                    let c = &ref_states[l].c[at(t)..at(t) + hsz];
                    let prev = match (reversed, t) {
                        (false, 0) => c0,
                        (false, _) => &ref_states[l].c[at(t - 1)..at(t - 1) + hsz],
                        (true, t) if t + 1 == steps => c0,
                        (true, _) => &ref_states[l].c[at(t + 1)..at(t + 1) + hsz],
                    };
                    let d: Vec<f64> = c
                        .iter()
                        .zip(prev)
                        .map(|(a, b)| (*a as f64 - *b as f64).abs())
                        .collect();
                    let required = by_width.iter().find(|&&i| within[i][row]).map_or_else(
                        || "reference".to_string(),
                        |&i| trace.results[listed[i]].config.to_string(),
                    );
                    f(CellDeltaRow {
                        sequence: n,
                        layer: l,
                        direction: k,
                        step: t,
                        delta_c_max_abs: d.iter().copied().fold(0.0, f64::max),
                        delta_c_mean_abs: d.iter().sum::<f64>() / hsz as f64,
                        required_precision: required,
                    })?;
                    row += 1;
                }
            }
        }
    }
    Ok(())
}

/// Writes `errors.csv`, `cell_delta.csv` and `summary.csv` into `dir` (created if needed):
/// the three replace a previous run's together or not at all (a [`Staged`] set). Returns the
/// summary rows.
pub fn write_csvs(
    trace: &Trace,
    model: &Model,
    tolerance: f32,
    dir: &Path,
) -> Result<Vec<SummaryRow>, WriteError> {
    let (summary, within) = summaries(trace, model, tolerance);
    let mut staged = Staged::new();
    staged.write_csv(&dir.join("errors.csv"), |w| {
        for_each_error(trace, model, |r| w.serialize(r))
    })?;
    staged.write_csv(&dir.join("cell_delta.csv"), |w| {
        for_each_delta(trace, model, &within, |r| w.serialize(r))
    })?;
    staged.write_csv(&dir.join("summary.csv"), |w| {
        summary.iter().try_for_each(|r| w.serialize(r))
    })?;
    staged.commit()?;
    Ok(summary)
}
