//! The sweep file (`sweeps/*.toml`): serde structs that reject unknown keys, parsed once and
//! validated into a [`Plan`] of concrete values — ranges expanded, defaults filled — which is
//! also written back as `spec.resolved.toml` so that a run can be reproduced exactly.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use super::ranges::expand;

/// A bad sweep file or flag; `Display` is one line naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {problem}")]
pub struct SpecError {
    pub file: String,
    pub key: String,
    pub problem: String,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    pub workload: WorkloadSpec,
    pub precision: PrecisionSpec,
    pub arch: ArchRanges,
    pub pareto: ParetoSpec,
}

/// Models and the sequences they are evaluated on.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// `builtin:NAME`, `.onnx` or `.safetensors` paths (relative to the sweep file's directory's
    /// parent, i.e. the repository root, or absolute).
    pub models: Vec<String>,
    /// safetensors: dense head name (or names in order, `"fc1,fc2"` or `["fc1", "fc2"]`),
    /// activation (or one per layer, `"relu,softmax"` or a list) and input (`every-step`,
    /// `last-step`, `final-state`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "head"
    )]
    pub head: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "head_activation"
    )]
    pub head_activation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_input: Option<String>,
    /// safetensors: the name of an `nn.Embedding` before the LSTM (`emb.weight`); the
    /// inputs are then token ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<String>,
    /// Input sequences (.npy); when absent, seeded standard-normal inputs of the model's width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Class labels (.npy) for task accuracy (needs `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Generated inputs: how many sequences and steps, and the seed.
    #[serde(default = "default_sequences")]
    pub sequences: usize,
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Steps per sequence costed by the accelerator model (default: the input's).
    #[serde(default)]
    pub seq_len: usize,
    /// Sequences in flight on the accelerator.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_sequences() -> usize {
    8
}
fn default_steps() -> usize {
    16
}
fn default_seed() -> u64 {
    1
}
fn default_batch() -> usize {
    1
}

/// The precision options every architecture point is costed with.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrecisionSpec {
    /// Fixed precision configs (each traced against the float64 reference).
    #[serde(default)]
    pub fixed: Vec<String>,
    /// Dynamic policies: levels (lowest first), metric, timing and a threshold grid (the
    /// `lstm-dse dynamic --thresholds` syntax). Empty `levels`: no dynamic options.
    #[serde(default)]
    pub levels: Vec<String>,
    #[serde(default = "default_metric")]
    pub metric: String,
    #[serde(default = "default_timing")]
    pub timing: String,
    /// The level of a causal policy's first step: high (default), low or a level index.
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default)]
    pub thresholds: String,
    /// DPRed group sizes; each adds a variant of every option whose off-chip traffic shrinks
    /// by the measured group widths (0 = no compression).
    #[serde(default = "default_dpred")]
    pub dpred_group_sizes: Vec<usize>,
    /// Per-step tolerance (hidden max abs) used by trace summaries.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Where lanes run: auto, gpu or cpu.
    #[serde(default = "default_device")]
    pub device: String,
}

impl PrecisionSpec {
    /// The DPRed variants every option gets: whether it runs ungrouped (0 listed, or no size
    /// at all), and the group sizes above 0 in the listed order (docs/SWEEPS.md).
    pub fn dpred_sizes(&self) -> (bool, Vec<usize>) {
        let sizes: Vec<usize> = (self.dpred_group_sizes.iter().copied())
            .filter(|&g| g > 0)
            .collect();
        (
            self.dpred_group_sizes.contains(&0) || sizes.is_empty(),
            sizes,
        )
    }
}

fn default_metric() -> String {
    "max_abs".into()
}
fn default_timing() -> String {
    "causal".into()
}
fn default_start() -> String {
    "high".into()
}
fn default_dpred() -> Vec<usize> {
    vec![0]
}
fn default_tolerance() -> f64 {
    0.01
}
fn default_device() -> String {
    "auto".into()
}

/// A value in a range list: a number or a word (e.g. a dispatch policy).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The value a range's text stands for (the inverse of how [`super::ranges::expand`] shows
    /// values).
    pub fn from_text(t: &str) -> Value {
        if let Ok(i) = t.parse::<i64>() {
            Value::Int(i)
        } else if let Ok(f) = t.parse::<f64>() {
            Value::Float(f)
        } else if let Ok(b) = t.parse::<bool>() {
            Value::Bool(b)
        } else {
            Value::Text(t.to_string())
        }
    }
}

/// A range: a list of values, or a string `start:stop:step` / `log:start:stop:count`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
#[serde(
    expecting = "a list of values, a string start:stop:step or log:start:stop:count, or one value"
)]
pub enum RangeSpec {
    List(Vec<Value>),
    Text(String),
    One(Value),
}

/// The base architecture and the parameters swept over it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchRanges {
    /// An architecture file (`sweeps/arch/*.toml`).
    pub base: String,
    /// Dotted architecture fields (`compute.units`) and their ranges.
    #[serde(default)]
    pub ranges: BTreeMap<String, RangeSpec>,
    /// Architecture against which `speedup` and `energy_saving` are reported (default: the
    /// base, at the widest fixed option).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// Objectives and constraints of the front.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParetoSpec {
    #[serde(default)]
    pub minimize: Vec<String>,
    #[serde(default)]
    pub maximize: Vec<String>,
    /// A `--where` expression over result columns, e.g. `top1_agreement >= 0.99`.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Parses a sweep file; unknown keys are errors naming the key.
pub fn load(path: &Path) -> Result<SweepSpec, SpecError> {
    let file = path.display().to_string();
    let text = crate::inputs::read_text(path).map_err(|e| SpecError {
        file: file.clone(),
        key: "file".into(),
        problem: e.to_string(),
    })?;
    let spec: SweepSpec = toml::from_str(&text).map_err(|e| {
        let msg = e.message().replace('\n', " ");
        let key = crate::inputs::toml_line(&text, &e)
            .map_or_else(|| "toml".to_string(), |n| format!("line {n}"));
        SpecError {
            file: file.clone(),
            key,
            problem: msg,
        }
    })?;
    super::outdir::refuse_control_characters(&file, &spec)?;
    Ok(spec)
}

fn head<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    names(d, "workload.head")
}

fn head_activation<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    names(d, "workload.head_activation")
}

/// A list of names written as one comma-separated string or as a TOML array of strings (kept
/// as the string, the form the command line takes); errors name `key`.
fn names<'de, D: serde::Deserializer<'de>>(d: D, key: &str) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        One(String),
        List(Vec<String>),
    }
    match Names::deserialize(d) {
        Ok(Names::One(s)) => Ok(Some(s)),
        Ok(Names::List(l)) if l.is_empty() => Err(serde::de::Error::custom(format!(
            "{key}: an empty list; give at least one name"
        ))),
        Ok(Names::List(l)) => Ok(Some(l.join(","))),
        Err(_) => Err(serde::de::Error::custom(format!(
            "{key}: expected a name, comma-separated names or a list of names (strings)"
        ))),
    }
}

/// Checks the memory generated inputs need (`sequences x steps x width` float32 values)
/// against `--max-memory`; `width` is the model's input width, `None` before a model is loaded
/// (1 feature is then a lower bound, and the message says so rather than naming a width).
pub fn check_input_memory(
    file: &str,
    w: &WorkloadSpec,
    width: Option<usize>,
) -> Result<(), SpecError> {
    if w.input.is_some() {
        return Ok(());
    }
    let features = match width {
        Some(n) => format!("{n} features"),
        None => "at least 1 feature (before the models are loaded)".to_string(),
    };
    let need = crate::limits::product(&[
        4,
        w.sequences as u128,
        w.steps as u128,
        width.unwrap_or(1) as u128,
    ]);
    crate::limits::check_memory(
        &format!("{} sequences x {} steps x {features}", w.sequences, w.steps),
        need,
    )
    .map_err(|e| SpecError {
        file: file.to_string(),
        key: "workload.sequences".into(),
        problem: format!("generated inputs: {e}"),
    })
}

/// Checks, before anything is computed, that the sweep stays within `--max-points`: models x
/// precision options (fixed configs and threshold policies, times DPRed variants) x
/// architecture points (the product of the ranges' lengths), counted with checked
/// arithmetic; and that generated inputs fit `--max-memory`.
pub fn check_size(file: &str, spec: &SweepSpec, values: &[Vec<String>]) -> Result<(), SpecError> {
    let bad = |key: &str, problem: String| SpecError {
        file: file.to_string(),
        key: key.to_string(),
        problem,
    };
    check_input_memory(file, &spec.workload, None)?;
    let p = &spec.precision;
    let policies = if p.levels.is_empty() {
        0
    } else {
        crate::dynamic::count_policies(&p.thresholds, p.levels.len())
            .map_err(|e| bad("precision.thresholds", e.to_string()))?
    };
    let (plain, sizes) = p.dpred_sizes();
    let variants = sizes.len() as u128 + u128::from(plain);
    let options = (p.fixed.len() as u128 + policies).checked_mul(variants);
    let lens: Vec<u128> = values.iter().map(|v| v.len() as u128).collect();
    let arch_points = crate::limits::product(&lens);
    let points = options
        .zip(arch_points)
        .and_then(|(o, a)| o.checked_mul(a))
        .and_then(|n| n.checked_mul(spec.workload.models.len() as u128));
    let what = format!(
        "{} model(s) x {} precision option(s) x {} architecture point(s)",
        spec.workload.models.len(),
        crate::limits::Count(options),
        crate::limits::Count(arch_points),
    );
    let key = match arch_points {
        Some(a) if a <= crate::limits::current().max_points as u128 => "precision",
        _ => "arch.ranges",
    };
    crate::limits::check_points(&what, points, "design points").map_err(|e| bad(key, e.to_string()))
}

/// Resolves a path in the spec: relative paths are relative to the current directory.
pub fn resolve_path(p: &str) -> PathBuf {
    PathBuf::from(p)
}
