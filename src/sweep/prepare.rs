//! The validation stage: reads a sweep file, checks it once (models, objectives, every range
//! value turned into a typed override) and renders what it resolved to, before any point.

use super::resolved::{content_hash, Resolved, VERSIONS};
use super::row::{self, columns, Axes, Col, TextCell};
use super::{spec, SpecError, SweepSpec};
use crate::accel::{self, ArchSpec, Override};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// Everything decided before the first point.
pub(super) struct Prepared {
    pub(super) spec: SweepSpec,
    pub(super) file: String,
    pub(super) axes: Axes,
    pub(super) base: ArchSpec,
    pub(super) resolved: String,
    pub(super) columns: Vec<String>,
    pub(super) kinds: Vec<Col>,
}

pub(super) fn prepare(path: &Path, smoke: bool) -> Result<Prepared> {
    let file = path.display().to_string();
    let mut spec = spec::load(path)?;
    let bad = |key: &str, problem: String| SpecError {
        file: file.clone(),
        key: key.into(),
        problem,
    };
    if spec.workload.batch == 0 {
        return Err(bad(
            "workload.batch",
            "0: give at least 1 sequence in flight".into(),
        )
        .into());
    }
    let tolerance = spec.precision.tolerance;
    if tolerance.is_nan() || tolerance <= 0.0 {
        return Err(bad(
            "precision.tolerance",
            format!("{tolerance}: give a number > 0"),
        )
        .into());
    }
    if spec.workload.models.is_empty() {
        return Err(bad("workload.models", "no model given".into()).into());
    }
    if spec.precision.fixed.is_empty() && spec.precision.levels.is_empty() {
        return Err(bad(
            "precision",
            "give fixed configs and/or dynamic levels".into(),
        )
        .into());
    }
    if spec.pareto.minimize.is_empty() && spec.pareto.maximize.is_empty() {
        return Err(bad(
            "pareto",
            "give at least one objective (minimize or maximize)".into(),
        )
        .into());
    }
    if spec.arch.ranges.len() > row::MAX_KEYS {
        return Err(bad("arch.ranges", format!("more than {} keys", row::MAX_KEYS)).into());
    }
    if smoke {
        spec.workload.sequences = spec.workload.sequences.min(4);
        spec.workload.steps = spec.workload.steps.min(6);
        if !spec.precision.thresholds.is_empty() {
            let first: Vec<&str> = spec.precision.thresholds.split(',').take(1).collect();
            spec.precision.thresholds = first.join(",");
        }
    }
    // Every file the run reads, with its content hash (provenance, checked by resume/merge).
    let mut inputs = BTreeMap::new();
    let w = &spec.workload;
    for m in w.models.iter().filter(|m| !m.starts_with("builtin:")) {
        inputs.insert(m.clone(), content_hash(&file, "workload.models", m)?);
    }
    for (key, p) in [
        ("workload.input", &w.input),
        ("workload.labels", &w.labels),
        ("arch.baseline", &spec.arch.baseline),
    ] {
        if let Some(p) = p {
            inputs.insert(p.clone(), content_hash(&file, key, p)?);
        }
    }
    inputs.insert(
        spec.arch.base.clone(),
        content_hash(&file, "arch.base", &spec.arch.base)?,
    );
    let base = accel::load_arch(Path::new(&spec.arch.base))
        .map_err(|e| bad("arch.base", e.to_string()))?;
    // Every value of every range, checked once and turned into a typed override.
    let keys: Vec<String> = spec.arch.ranges.keys().cloned().collect();
    let mut raw = Vec::with_capacity(keys.len());
    for k in &keys {
        let mut v = spec::expand(&file, k, &spec.arch.ranges[k])?;
        if smoke {
            v.truncate(2);
        }
        raw.push(v);
    }
    spec::check_size(&file, &spec, &raw)?;
    let (mut values, mut overrides) = (Vec::new(), Vec::new());
    for (k, v) in keys.iter().zip(raw) {
        let o = v
            .iter()
            .map(|v| Override::parse(&base, k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&format!("arch.ranges.\"{k}\""), e.to_string()))?;
        values.push(v.into_iter().map(TextCell::new).collect::<Vec<_>>());
        overrides.push(o);
    }
    let axes = Axes {
        keys,
        values,
        overrides,
    };
    let columns = columns(&axes.keys);
    let kinds = row::kinds(axes.keys.len());
    // Objectives and constraints must name numeric columns: said now, not after the run.
    let text_column = |c: usize| -> Option<String> {
        match kinds[c] {
            Col::Lead(i) if i < 3 => Some("holds text, not numbers".into()),
            Col::ConfigHash | Col::ToolVersion => Some("holds text, not numbers".into()),
            Col::Arch(k) => axes.values[k]
                .iter()
                .find(|v| v.number.is_err())
                .map(|v| format!("has the value '{}', not a number", v.raw)),
            _ => None,
        }
    };
    for (key, names) in [
        ("pareto.minimize", &spec.pareto.minimize),
        ("pareto.maximize", &spec.pareto.maximize),
    ] {
        for c in names {
            let Some(i) = columns.iter().position(|x| x == c.trim()) else {
                return Err(bad(
                    key,
                    format!(
                        "objective '{c}' names no column (columns: {})",
                        columns.join(", ")
                    ),
                )
                .into());
            };
            if let Some(problem) = text_column(i) {
                return Err(bad(key, format!("column '{c}' {problem}")).into());
            }
        }
    }
    if let Some(f) = &spec.pareto.filter {
        let filter = crate::pareto::Filter::parse(f, &columns)
            .map_err(|e| bad("pareto.where", e.to_string()))?;
        for &i in filter.columns() {
            if let Some(problem) = text_column(i) {
                return Err(
                    bad("pareto.where", format!("column '{}' {problem}", columns[i])).into(),
                );
            }
        }
    }
    let resolved = toml::to_string(&Resolved {
        versions: VERSIONS,
        spec: &spec,
        inputs: &inputs,
        arch_base: &base,
    })?;
    Ok(Prepared {
        spec,
        file,
        axes,
        base,
        resolved,
        columns,
        kinds,
    })
}
