//! The precision stage over time, for one chosen sequence: the per-step hidden error of every
//! precision against the float64 reference, and for dynamic policies the cell-state change Δc
//! with the level each step ran at (a timeline). Read from the files `lstm-dse trace`
//! (errors.csv) and `lstm-dse dynamic --trace-policy` (policy_<K>_trace.csv) write
//! ([`from_csv_dir`], checked in `trace_dir`), or computed for a sweep directory from its
//! `spec.resolved.toml`: the sweep's cache keeps whole-run figures only, so the one sequence
//! shown is rerun here (on the device the spec names; CPU and GPU lanes give the same bits)
//! rather than storing every step of every sequence in the cache.
//!
//! Shown: the last layer's forward direction (the states the head reads).

pub use super::trace_dir::from_csv_dir;

use super::svg::{Chart, PALETTE};
use super::SweepDir;
use crate::dynamic::{self, Metric, PolicySpec, Timing};
use crate::format::parse_config_list;
use crate::lstm;
use crate::lstm::npy::Sequences;
use crate::trace::{self, DeviceChoice, Engine};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The per-step traces of one sequence of one model.
#[derive(Debug, Clone, Default)]
pub struct StageTraces {
    /// What is shown: model, sequence, layer.
    pub title: String,
    pub steps: usize,
    /// Per precision: the hidden error (max |h − h_ref| over the units against the float64
    /// reference, unitless) per step.
    pub errors: Vec<(String, Vec<f64>)>,
    pub policies: Vec<Timeline>,
}

/// One dynamic policy on the chosen sequence.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Levels and thresholds, e.g. `fx6|fx16 at 0.25`.
    pub label: String,
    /// One per level boundary (metric units); empty when unknown.
    pub thresholds: Vec<f64>,
    /// The Δc metric per step (unitless; a fraction for frac_above).
    pub metric: Vec<f64>,
    /// The level each step ran at (0 = lowest).
    pub level: Vec<usize>,
    /// The precision of each level, lowest first.
    pub level_names: Vec<String>,
    /// Hidden error of the policy against the float64 reference per step (unitless).
    pub hidden_max_abs: Vec<f64>,
}

/// For a relative path of a spec.resolved.toml that is not there: where it is looked for.
fn cwd_hint(path: &str) -> &'static str {
    let p = Path::new(path);
    if path.starts_with("builtin:") || p.is_absolute() || p.exists() {
        ""
    } else {
        " (paths in spec.resolved.toml are relative to the directory the sweep ran from: run this from there)"
    }
}

/// Runs the precision stage of every model of a sweep (at most `max_models`) on `sequence`
/// of its input. `progress(done, total)` counts models.
pub fn compute_for_sweep(
    sweep: &SweepDir,
    sequence: usize,
    max_models: usize,
    progress: &dyn Fn(u64, u64),
) -> Result<Vec<StageTraces>> {
    let file = sweep.dir.join("spec.resolved.toml").display().to_string();
    let (w, p) = (&sweep.spec.workload, &sweep.spec.precision);
    // As the sweep chose: a hardware GPU under "auto" when there is one (same bits as the CPU).
    let choice = match p.device.as_str() {
        "gpu" => DeviceChoice::Gpu,
        "cpu" => DeviceChoice::Cpu,
        _ => DeviceChoice::Auto,
    };
    let models: Vec<&String> = w.models.iter().take(max_models).collect();
    // Drawn from the files the sweep read, or not at all.
    crate::sweep::unchanged_inputs(&file, &sweep.resolved, &sweep.spec, &models)?;
    let (engine, _) = Engine::select(choice)?;
    let mut out = Vec::new();
    for (mi, name) in models.iter().enumerate() {
        progress(mi as u64, models.len() as u64);
        let opts = crate::sweep::load_options(&file, w, name)?;
        // The loader's and reader's errors name the model or input themselves.
        let model = lstm::load(name, &opts)
            .map_err(|e| anyhow::anyhow!("{file}: {e}{}", cwd_hint(name)))?;
        let (seqs, _) = crate::sweep::inputs(&file, w, &model).map_err(|e| {
            let hint = w.input.as_deref().map_or("", cwd_hint);
            anyhow::anyhow!("{e:#}{hint}")
        })?;
        if sequence >= seqs.count {
            bail!(
                "--sequence {sequence}: the input of {name} has {} sequences (0..{})",
                seqs.count,
                seqs.count - 1
            );
        }
        // One sequence of the input the sweep ran whole: a batch size the graph fixes holds
        // for that input, and each sequence's result does not depend on it.
        lstm::eval::check_input(&model, &seqs, &file)?;
        let mut model = model;
        model.fixed.batch = None;
        let one = Sequences::new(
            "sweep input",
            [1, seqs.steps, seqs.width],
            seqs.sequence(sequence).to_vec(),
            true,
        )?;
        let mut st = StageTraces {
            title: format!("{name}, sequence {sequence}"),
            steps: one.steps,
            ..StageTraces::default()
        };
        let last = model.layers.len().saturating_sub(1);
        let forward = |rows_layer: usize, dir: usize| rows_layer == last && dir == 0;
        // The trace's float64 reference, reused by the policies below (same sequence).
        let mut reference = None;
        if !p.fixed.is_empty() {
            let configs = parse_config_list(&p.fixed.join(";"))
                .with_context(|| format!("{file}: precision.fixed"))?;
            let t = trace::run(
                &engine,
                &model,
                &one,
                "sweep input",
                &configs,
                &mut |_, _| {},
            )?;
            let (errors, _, _) = trace::rows(&t, &model, p.tolerance as f32);
            for r in errors.iter().filter(|r| forward(r.layer, r.direction)) {
                match st.errors.iter_mut().find(|(n, _)| *n == r.precision) {
                    Some((_, v)) => v.push(r.hidden_max_abs),
                    None => st
                        .errors
                        .push((r.precision.clone(), vec![r.hidden_max_abs])),
                }
            }
            reference = Some(t.reference);
        }
        if !p.levels.is_empty() {
            let levels = parse_config_list(&p.levels.join(";"))
                .with_context(|| format!("{file}: precision.levels"))?;
            let metric: Metric = p.metric.parse()?;
            let timing = match p.timing.as_str() {
                "oracle" => Timing::Oracle,
                _ => Timing::Causal,
            };
            let spec = PolicySpec::new(levels, metric, timing)?.starting_at(&p.start)?;
            let policies = dynamic::parse_thresholds(&p.thresholds, spec.levels.len())?;
            let (sim, reference) = dynamic::run(
                &engine,
                &model,
                &one,
                "sweep input",
                &spec,
                &policies,
                reference.take(),
                &|_, _| {},
            )?;
            for (k, policy) in policies.iter().enumerate() {
                let rows = dynamic::trace_rows(&model, &spec, &sim, &reference, k);
                let mut tl = Timeline {
                    level_names: spec.levels.iter().map(|c| c.to_string()).collect(),
                    thresholds: policy.thresholds.clone(),
                    ..Timeline::default()
                };
                tl.label = format!(
                    "{} at {}",
                    dynamic::levels_text(&spec.levels),
                    dynamic::thresholds_text(&tl.thresholds)
                );
                for r in rows.iter().filter(|r| forward(r.layer, r.direction)) {
                    tl.metric.push(r.delta_c_metric);
                    tl.level.push(r.level);
                    tl.hidden_max_abs.push(r.hidden_max_abs);
                }
                st.policies.push(tl);
            }
        }
        out.push(st);
    }
    progress(models.len() as u64, models.len() as u64);
    Ok(out)
}

/// Per-step hidden error of every precision (solid) and every policy (dashed), log scale.
pub fn error_figure(st: &StageTraces, width: f64, height: f64) -> String {
    let steps: Vec<f64> = (0..st.steps).map(|t| t as f64).collect();
    let all: Vec<f64> = st
        .errors
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .chain(
            st.policies
                .iter()
                .flat_map(|p| p.hidden_max_abs.iter().copied()),
        )
        .collect();
    let mut c = Chart::with_legend_column(
        width,
        height,
        200.0,
        &format!("hidden error per step: {}", st.title),
        ("step", &steps, false),
        ("max |h - h_ref| (float64 reference, log)", &all, true),
    );
    let mut legend = Vec::new();
    for (i, (name, v)) in st.errors.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = v.iter().enumerate().map(|(t, &e)| (t as f64, e)).collect();
        c.line(&pts, colour, false);
        for &(t, e) in &pts {
            c.point(t, e, 2.2, colour, &format!("{name}, step {t}: {e:.3e}"));
        }
        legend.push((name.clone(), colour.to_string()));
    }
    for (j, p) in st.policies.iter().enumerate() {
        let colour = PALETTE[(st.errors.len() + j) % PALETTE.len()];
        let pts: Vec<(f64, f64)> = p
            .hidden_max_abs
            .iter()
            .enumerate()
            .map(|(t, &e)| (t as f64, e))
            .collect();
        c.line(&pts, colour, true);
        legend.push((format!("{} (dyn)", p.label), colour.to_string()));
    }
    legend.truncate(14);
    c.legend(&legend);
    c.finish()
}

/// A dynamic policy over the sequence: Δc per step (points coloured by the level chosen), the
/// thresholds dashed, and a strip of the level per step along the top.
pub fn timeline_figure(st: &StageTraces, tl: &Timeline, width: f64, height: f64) -> String {
    let end = tl.metric.len() as f64;
    // The x span covers whole step cells; the top 15% of the y span is left for the strip.
    let steps = [-0.5, end - 0.5];
    let mut ys: Vec<f64> = tl.metric.clone();
    ys.extend(tl.thresholds.iter().filter(|v| v.is_finite()));
    let (lo, hi) = ys
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if lo <= hi {
        ys.push(hi + (hi - lo).max(hi.abs() * 0.1).max(1e-9) * 0.18);
    }
    let mut c = Chart::with_legend_column(
        width,
        height,
        130.0,
        &format!("{}: {}", st.title, tl.label),
        ("step", &steps, false),
        ("cell-state change metric", &ys, false),
    );
    let level_colour = |l: usize| PALETTE[l % PALETTE.len()];
    for &th in tl.thresholds.iter().filter(|v| v.is_finite()) {
        c.line(&[(-0.5, th), (end - 0.5, th)], "#555", true);
    }
    for (t, &l) in tl.level.iter().enumerate() {
        let name = tl.level_names.get(l).cloned().unwrap_or_default();
        c.band(
            t as f64 - 0.5,
            t as f64 + 0.5,
            (29.0, 39.0),
            level_colour(l),
            &format!("step {t}: level {l} ({name})"),
        );
    }
    let pts: Vec<(f64, f64)> = tl
        .metric
        .iter()
        .enumerate()
        .map(|(t, &m)| (t as f64, m))
        .collect();
    c.line(&pts, "#999", false);
    for (t, &m) in tl.metric.iter().enumerate() {
        let l = tl.level.get(t).copied().unwrap_or(0);
        let name = tl.level_names.get(l).cloned().unwrap_or_default();
        c.point(
            t as f64,
            m,
            3.5,
            level_colour(l),
            &format!("step {t}: metric {m:.4}, level {l} ({name})"),
        );
    }
    let legend: Vec<(String, String)> = tl
        .level_names
        .iter()
        .enumerate()
        .map(|(l, n)| (format!("level {l}: {n}"), level_colour(l).to_string()))
        .collect();
    c.legend(&legend);
    c.finish()
}
