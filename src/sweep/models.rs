//! The precision stage: each model of the spec loaded with its inputs, its precision options
//! computed (or read from the cache) and its baseline costed, into a [`ModelPlan`].

use super::plan::{ModelPlan, PlannedOption};
use super::prepare::Prepared;
use super::{options, spec, Progress, SpecError};
use crate::accel;
use crate::lstm;
use crate::trace::{DeviceChoice, Engine};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The precision stage: every model's options (cached) and baseline.
pub(super) fn model_plans(
    p: &Prepared,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<ModelPlan>> {
    let file = &p.file;
    let choice = match p.spec.precision.device.as_str() {
        "auto" => DeviceChoice::Auto,
        "gpu" => DeviceChoice::Gpu,
        "cpu" => DeviceChoice::Cpu,
        d => bail!("{file}: precision.device: '{d}' is not auto, gpu or cpu"),
    };
    let (engine, _) = Engine::select(choice)?;
    let w = &p.spec.workload;
    let baseline_arch = &p.baseline;
    progress.stage("precision", w.models.len() as u64);
    let mut models = Vec::new();
    for name in &w.models {
        let opts = crate::sweep::load_options(file, w, name)?;
        let model = lstm::load(name, &opts).map_err(|e| SpecError {
            file: file.clone(),
            key: "workload.models".into(),
            problem: e.to_string(),
        })?;
        spec::check_input_memory(file, w, Some(model.input_size()))?;
        let (seqs, input_id) = options::inputs(file, w, &model)?;
        // The input's width and the engine's memory, naming the spec and the input.
        let input_name = match &w.input {
            Some(x) => format!("{file}: workload.input {x}"),
            None => format!("{file}: generated inputs"),
        };
        crate::lstm::eval::check_input(&model, &seqs, &input_name)?;
        // A model without a classification head has no task accuracy: its labels go unused.
        let labels = match &w.labels {
            Some(_) if model.head.is_none() => None,
            None => None,
            Some(l) => Some(
                crate::dynamic::read_labels(Path::new(l), &model, &seqs).map_err(|e| {
                    SpecError {
                        file: file.clone(),
                        key: "workload.labels".into(),
                        problem: format!("{e:#}"),
                    }
                })?,
            ),
        };
        always_empty(p, name, &model, labels.is_some())?;
        let mut identity = input_id;
        if !name.starts_with("builtin:") {
            identity.extend(
                crate::inputs::read(Path::new(name))
                    .with_context(|| format!("{file}: workload.models: {name}"))?,
            );
            // An ONNX model's weights may live in files beside it (external data).
            for data in model_data_files(name) {
                let what = format!("{file}: workload.models: {name}: {}", data.display());
                identity.extend(crate::inputs::read(&data).with_context(|| what)?);
            }
        }
        if let Some(l) = &labels {
            identity.extend(l.iter().flat_map(|v| v.to_le_bytes()));
        }
        let opts = options::options(
            file,
            &engine,
            name,
            &model,
            &seqs,
            labels.as_deref(),
            &identity,
            w,
            &p.spec.precision,
            cache_dir,
        )?;
        let seq_len = if w.seq_len > 0 { w.seq_len } else { seqs.steps };
        let workload = accel::workload_of(
            &model,
            seq_len,
            w.batch.max(1),
            accel::PrecisionProfile::fixed(16, 16),
        );
        // A workload the cost model refuses would skip every point: said now, once.
        workload.validate().map_err(|e| SpecError {
            file: file.clone(),
            key: "workload.seq_len x batch".into(),
            problem: e.to_string(),
        })?;
        // Baseline: the baseline (or base) architecture at the widest fixed option.
        let widest = opts
            .iter()
            .filter(|o| o.levels.len() == 1)
            .map(|o| o.levels[0])
            .max()
            .unwrap_or((16, 16));
        let mut wl = workload.clone();
        wl.precision = accel::PrecisionProfile::fixed(widest.0, widest.1);
        let baseline = match accel::evaluate(baseline_arch, &wl) {
            Ok(b) => Some(b),
            Err(e) => {
                if let Some((key, c)) =
                    (p.uses.iter()).find(|(_, c)| c == "speedup" || c == "energy_saving")
                {
                    return Err(SpecError {
                        file: file.clone(),
                        key: (*key).into(),
                        problem: format!(
                            "column '{c}' would be empty for {name}: the baseline cannot run it ({e})"
                        ),
                    }
                    .into());
                }
                None
            }
        };
        let options = opts
            .iter()
            .map(|o| {
                let mut wl = workload.clone();
                wl.precision = o.profile();
                PlannedOption::new(name, o, wl)
            })
            .collect();
        models.push(ModelPlan { options, baseline });
        progress.advance(1);
    }
    Ok(models)
}

/// The files besides `model` itself that hold its weights (an ONNX model's external data).
pub(super) fn model_data_files(model: &str) -> Vec<std::path::PathBuf> {
    if model.to_ascii_lowercase().ends_with(".onnx") {
        crate::lstm::onnx::external_files(model).unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// Refuses, before the model's precision stage, an objective or `where` column this model
/// leaves empty in every row (the front could only fail on it after the whole run).
fn always_empty(p: &Prepared, name: &str, model: &lstm::Model, labels: bool) -> Result<()> {
    let head = model.head.as_ref().map(|h| h.output_size());
    for (key, c) in &p.uses {
        let why = match c.as_str() {
            "output_rmse" | "output_max_abs" if head.is_none() => "the model has no dense head",
            "top1_agreement" if head.is_none_or(|o| o < 2) => {
                "the model has no dense head with 2 or more outputs"
            }
            "task_accuracy" if !labels && head.is_none() => "the model has no dense head",
            "task_accuracy" if !labels => "the spec gives no workload.labels",
            _ => continue,
        };
        return Err(SpecError {
            file: p.file.clone(),
            key: (*key).into(),
            problem: format!("column '{c}' would be empty for {name}: {why}"),
        }
        .into());
    }
    Ok(())
}
