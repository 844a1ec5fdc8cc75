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
    let baseline_arch = match &p.spec.arch.baseline {
        Some(b) => accel::Arch::from_spec(&accel::load_arch(Path::new(b))?, b)?,
        None => accel::Arch::from_spec(&p.base, &p.spec.arch.base)?,
    };
    progress.stage("precision", w.models.len() as u64);
    let mut models = Vec::new();
    for name in &w.models {
        let opts = crate::sweep::load_options(file, w)?;
        let model = lstm::load(name, &opts).map_err(|e| SpecError {
            file: file.clone(),
            key: "workload.models".into(),
            problem: e.to_string(),
        })?;
        spec::check_input_memory(file, w, model.input_size())?;
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
        let mut identity = input_id;
        if !name.starts_with("builtin:") {
            identity.extend(
                std::fs::read(name).with_context(|| format!("{file}: workload.models: {name}"))?,
            );
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
        // Baseline: the baseline (or base) architecture at the widest fixed option.
        let widest = opts
            .iter()
            .filter(|o| o.levels.len() == 1)
            .map(|o| o.levels[0])
            .max()
            .unwrap_or((16, 16));
        let mut wl = workload.clone();
        wl.precision = accel::PrecisionProfile::fixed(widest.0, widest.1);
        let baseline = accel::evaluate(&baseline_arch, &wl).ok();
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
