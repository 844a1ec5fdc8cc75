//! The precision stage of a sweep: for each model, every precision option (fixed configs,
//! dynamic policies, each with optional DPRed compression) with its accuracy against the
//! float64 reference and the precision profile the accelerator model costs. Computed once per
//! distinct (model, input, precision settings) and cached on disk under a content hash, so a
//! sweep over new architectures reuses it.

use super::cache::{self, Entry};
use super::spec::{PrecisionSpec, SpecError, WorkloadSpec};
use crate::accel::{PrecisionLevel, PrecisionProfile};
use crate::dynamic::{self, Metric, PolicySpec, Timing};
use crate::format::{parse_config_list, PrecisionConfig};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use crate::trace::{self, Engine};
use serde::{Deserialize, Serialize};

/// One precision option of one model, with its measured accuracy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrecisionOption {
    /// `fx8`, or the levels of a policy (`fx8|fx16`).
    pub precision: String,
    /// Policy thresholds (`|`-separated); empty for fixed options.
    pub thresholds: String,
    /// DPRed group size (0: none).
    pub dpred_group_size: usize,
    /// (weight bits, activation bits) per level, lowest first.
    pub levels: Vec<(u32, u32)>,
    /// Fraction of steps per level (overall).
    pub fractions: Vec<f64>,
    /// Per layer.
    pub layer_fractions: Vec<Vec<f64>>,
    /// Fraction of sequences whose first (last) step runs at each level, measured over every
    /// layer and direction (`frac_first_level_<k>`, `frac_last_level_<k>` of the policy row);
    /// empty for fixed options.
    pub first_step_fractions: Vec<f64>,
    pub last_step_fractions: Vec<f64>,
    pub dpred_weight_ratio: f64,
    pub dpred_activation_ratio: f64,
    /// Measured level switches per step of a dynamic policy (`switches_per_1000_steps / 1000`
    /// of its policy row); `None` for fixed options.
    pub switch_rate: Option<f64>,
    /// DPRed: fraction of activation groups at each width 1..=base bits, measured at the
    /// option's precision (`frac_groups_width_<w>`); empty without DPRed. (No serde default:
    /// a cache written before these fields existed fails to parse and is recomputed.)
    pub activation_group_widths: Vec<f64>,
    pub hidden_rmse: f64,
    pub output_rmse: Option<f64>,
    pub output_max_abs: Option<f64>,
    pub top1_agreement: Option<f64>,
    pub task_accuracy: Option<f64>,
}

impl PrecisionOption {
    /// The profile the accelerator model costs.
    pub fn profile(&self) -> PrecisionProfile {
        let levels = self
            .levels
            .iter()
            .map(|&(w, a)| PrecisionLevel {
                weight_bits: w,
                activation_bits: a,
            })
            .collect();
        let mut p = if self.levels.len() == 1 {
            let (w, a) = self.levels[0];
            PrecisionProfile::fixed(w, a)
        } else {
            let mut p = PrecisionProfile::dynamic(levels, self.fractions.clone()).with_edge_steps(
                self.first_step_fractions.clone(),
                self.last_step_fractions.clone(),
            );
            p.layer_step_fraction = self.layer_fractions.clone();
            p
        };
        if let (Some(rate), true) = (self.switch_rate, p.is_dynamic()) {
            p = p.with_switch_rate(rate);
        }
        if self.dpred_group_size > 0 {
            p = p.with_dpred(self.dpred_weight_ratio, self.dpred_activation_ratio);
            if !self.activation_group_widths.is_empty() {
                p = p
                    .with_group_widths(self.activation_group_widths.clone(), self.dpred_group_size);
            }
        }
        p
    }
}

/// FNV-1a, 64 bits: a stable content hash (the same on every platform and run). Each part is
/// followed by a 0xff byte, so `["ab", "c"]` and `["a", "bc"]` differ.
pub fn fnv64(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .fold(FNV_INIT, |h, p| fnv_add(fnv_add(h, p), &[0xff]))
}

/// The FNV-1a starting state.
pub const FNV_INIT: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues an FNV-1a hash `h` over `bytes`.
pub fn fnv_add(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// The version of the numerics behind cached precision results. Bump it with every change
/// to the number formats, the traced kernels or the dynamic-precision policies that changes
/// a result (the rule is stated in docs/NUMERICS.md, "Cached results"). The cache key also
/// hashes docs/NUMERICS.md itself, so any change to the document invalidates the cache too.
pub const NUMERICS_VERSION: u32 = 5;

/// What keys the precision cache besides the inputs and settings: tool and numerics version
/// and the numerics document.
fn numerics_identity() -> String {
    format!(
        "{} numerics {} doc {:016x} {}",
        env!("CARGO_PKG_VERSION"),
        NUMERICS_VERSION,
        fnv64(&[include_str!("../../docs/NUMERICS.md").as_bytes()]),
        super::cache::FORMAT
    )
}

fn bad(file: &str, key: &str, problem: impl Into<String>) -> SpecError {
    SpecError {
        file: file.to_string(),
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// Every precision option of `model` (cached under `cache_dir`).
#[allow(clippy::too_many_arguments)]
pub fn options(
    file: &str,
    engine: &Engine,
    model_name: &str,
    model: &Model,
    seqs: &Sequences,
    labels: Option<&[f32]>,
    identity: &[u8],
    w: &WorkloadSpec,
    p: &PrecisionSpec,
    cache_dir: &std::path::Path,
) -> anyhow::Result<Vec<PrecisionOption>> {
    #[derive(Serialize)]
    struct Key<'a> {
        workload: &'a WorkloadSpec,
        precision: &'a PrecisionSpec,
    }
    let settings = toml::to_string(&Key {
        workload: w,
        precision: p,
    })?;
    let key = fnv64(&[
        numerics_identity().as_bytes(),
        model_name.as_bytes(),
        identity,
        settings.as_bytes(),
    ]);
    let path = cache_dir.join(format!("{key:016x}.toml"));
    // The options are held to the end of the run, read from the cache or computed.
    let models = w.models.len();
    super::memory::check(file, p, model, models, 0)?;
    if let Entry::Hit(opts) = cache::read(&path)? {
        return Ok(opts);
    }
    // Another run computing this entry now is waited for, and its entry taken.
    let _computing = cache::lock(&path);
    match cache::read(&path)? {
        Entry::Hit(opts) => return Ok(opts),
        Entry::Damaged => crate::note!(
            "note: {}: damaged (its options do not match their checksum); recomputing it",
            path.display()
        ),
        Entry::Missing => {}
    }
    let policies = match p.levels.len() {
        0 => 0,
        n => dynamic::count_policies(&p.thresholds, n).unwrap_or(0),
    };
    // The simulation with its reference, as `dynamic::run` counts it.
    let lanes = match policies {
        0 => 0,
        n => dynamic::policy_run_bytes(model, seqs.count, seqs.steps, p.levels.len(), n, engine)
            .unwrap_or(u128::MAX),
    };
    super::memory::check(file, p, model, models, lanes)?;
    let opts = compute(file, engine, model, seqs, labels, p)?;
    cache::write(&path, &opts)?;
    Ok(opts)
}

fn compute(
    file: &str,
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    labels: Option<&[f32]>,
    p: &PrecisionSpec,
) -> anyhow::Result<Vec<PrecisionOption>> {
    let classes = model.head.as_ref().map_or(0, |h| h.output_size());
    let mut base: Vec<PrecisionOption> = Vec::new();
    let mut bases: Vec<PrecisionConfig> = Vec::new();
    // The float64 reference of the fixed options' trace, reused by the dynamic options.
    let mut reference = None;
    if !p.fixed.is_empty() {
        let configs = parse_config_list(&p.fixed.join(";"))
            .map_err(|e| bad(file, "precision.fixed", e.to_string()))?;
        let t = trace::run(engine, model, seqs, "sweep input", &configs, &mut |_, _| {})?;
        let (_, _, summary) = trace::rows(&t, model, p.tolerance as f32);
        for (k, (c, s)) in configs.iter().zip(summary).enumerate() {
            let run = &t.results[t.listed[k]];
            let task = labels
                .zip(run.output.as_ref())
                .map(|(l, o)| dynamic::task_accuracy(o, classes, model.head_rows(seqs.steps), l));
            base.push(PrecisionOption {
                precision: c.to_string(),
                thresholds: String::new(),
                dpred_group_size: 0,
                levels: vec![(c.w.bits(), c.a.bits())],
                fractions: vec![1.0],
                layer_fractions: Vec::new(),
                first_step_fractions: Vec::new(),
                last_step_fractions: Vec::new(),
                dpred_weight_ratio: 1.0,
                dpred_activation_ratio: 1.0,
                switch_rate: None,
                activation_group_widths: Vec::new(),
                hidden_rmse: s.hidden_rmse,
                output_rmse: s.output_rmse,
                output_max_abs: s.output_max_abs,
                top1_agreement: s.top1_agreement,
                task_accuracy: task,
            });
            bases.push(*c);
        }
        reference = Some(t.reference);
    }
    if !p.levels.is_empty() {
        let levels = parse_config_list(&p.levels.join(";"))
            .map_err(|e| bad(file, "precision.levels", e.to_string()))?;
        let metric: Metric = p
            .metric
            .parse()
            .map_err(|e: dynamic::PolicyError| bad(file, "precision.metric", e.to_string()))?;
        let timing = match p.timing.as_str() {
            "causal" => Timing::Causal,
            "oracle" => Timing::Oracle,
            t => {
                return Err(bad(
                    file,
                    "precision.timing",
                    format!("'{t}': expected causal or oracle"),
                )
                .into())
            }
        };
        let spec = PolicySpec::new(levels, metric, timing)
            .map_err(|e| {
                let e = e.to_string().replacen("--levels: ", "", 1);
                bad(file, "precision.levels", e)
            })?
            .starting_at(&p.start)
            .map_err(|e| bad(file, "precision.start", e.to_string()))?;
        let policies = dynamic::parse_thresholds(&p.thresholds, spec.levels.len())
            .map_err(|e| bad(file, "precision.thresholds", e.to_string()))?;
        let top = spec.levels[spec.levels.len() - 1];
        let (sim, reference) = dynamic::run(
            engine,
            model,
            seqs,
            "sweep input",
            &spec,
            &policies,
            reference.take(),
            &|_, _| {},
        )?;
        for w in &sim.warnings {
            crate::note!("{w}");
        }
        let (header, rows) =
            dynamic::policy_rows(model, &spec, &policies, &sim, &reference, labels);
        let col = |row: &[String], name: &str| -> Option<f64> {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| row[i].parse().ok())
        };
        let nl = spec.levels.len();
        for row in &rows {
            // The first and last steps' level fractions (empty if the row has none).
            let edge = |which: &str| -> Vec<f64> {
                (0..nl)
                    .map(|k| col(row, &format!("frac_{which}_level_{k}")))
                    .collect::<Option<Vec<f64>>>()
                    .unwrap_or_default()
            };
            base.push(PrecisionOption {
                precision: row[1].clone(),
                thresholds: row[4].clone(),
                dpred_group_size: 0,
                levels: spec
                    .levels
                    .iter()
                    .map(|c| (c.w.bits(), c.a.bits()))
                    .collect(),
                fractions: (0..nl)
                    .map(|k| col(row, &format!("frac_level_{k}")).unwrap_or(0.0))
                    .collect(),
                layer_fractions: (0..model.layers.len())
                    .map(|l| {
                        (0..nl)
                            .map(|k| col(row, &format!("frac_l{l}_level_{k}")).unwrap_or(0.0))
                            .collect()
                    })
                    .collect(),
                first_step_fractions: edge("first"),
                last_step_fractions: edge("last"),
                dpred_weight_ratio: 1.0,
                dpred_activation_ratio: 1.0,
                switch_rate: col(row, "switches_per_1000_steps").map(|s| (s / 1000.0).min(1.0)),
                activation_group_widths: Vec::new(),
                hidden_rmse: col(row, "hidden_rmse").unwrap_or(0.0),
                output_rmse: col(row, "output_rmse"),
                output_max_abs: col(row, "output_max_abs"),
                top1_agreement: col(row, "top1_agreement"),
                task_accuracy: col(row, "task_accuracy"),
            });
            bases.push(top);
        }
    }
    // DPRed variants: every option again per group size, with ratios measured at its (highest)
    // precision.
    let (plain, sizes) = p.dpred_sizes();
    let mut out = Vec::new();
    if plain {
        out.extend(base.iter().cloned());
    }
    if !sizes.is_empty() {
        let mut measured: Vec<(PrecisionConfig, Vec<dynamic::groups::GroupStats>)> = Vec::new();
        for (opt, cfg) in base.iter().zip(&bases) {
            if !cfg.is_integer() {
                continue;
            }
            if !measured.iter().any(|(c, _)| c == cfg) {
                measured.push((
                    *cfg,
                    dynamic::groups::measure(engine, model, seqs, "sweep input", *cfg, &sizes)?,
                ));
            }
            let stats = &measured
                .iter()
                .find(|(c, _)| c == cfg)
                .map(|(_, s)| s)
                .ok_or_else(|| anyhow::anyhow!("groups"))?;
            for &g in &sizes {
                let ratio = |kind: &str| {
                    stats
                        .iter()
                        .find(|s| s.group_size == g && s.kind == kind)
                        .map_or(1.0, |s| s.ratio(true).min(1.0))
                };
                let mut o = opt.clone();
                o.dpred_group_size = g;
                o.dpred_weight_ratio = ratio("weights");
                o.dpred_activation_ratio = ratio("activations");
                if let Some(a) = stats
                    .iter()
                    .find(|s| s.group_size == g && s.kind == "activations")
                {
                    let groups: u64 = a.hist.iter().sum();
                    if groups > 0 {
                        o.activation_group_widths =
                            a.hist.iter().map(|&n| n as f64 / groups as f64).collect();
                    }
                }
                out.push(o);
            }
        }
    }
    Ok(out)
}

/// How a sweep's `model` loads: `workload.head`, `workload.head_activation`,
/// `workload.head_input` and `workload.embedding` (an error names `file`, the key and the model).
pub fn load_options(
    file: &str,
    w: &WorkloadSpec,
    model: &str,
) -> anyhow::Result<crate::lstm::LoadOptions> {
    let opts = crate::lstm::LoadOptions::parse(
        w.head.as_deref(),
        w.head_activation.as_deref(),
        w.head_input.as_deref(),
        w.embedding.as_deref(),
    )
    .map_err(|(which, e)| anyhow::anyhow!("{file}: {}: {e}", which.key()))?;
    opts.check(model)
        .map_err(|(which, e)| anyhow::anyhow!("{file}: {}: {model}: {e}", which.key()))?;
    Ok(opts)
}

/// Inputs for a model: the spec's file, or seeded normal sequences of the model's width (for a
/// model with an embedding, seeded token ids, uniform over its vocabulary, looked up).
pub fn inputs(file: &str, w: &WorkloadSpec, model: &Model) -> anyhow::Result<(Sequences, Vec<u8>)> {
    match &w.input {
        Some(p) => {
            let path = super::spec::resolve_path(p);
            let bytes = std::fs::read(&path)
                .map_err(|e| bad(file, "workload.input", format!("{p}: {e}")))?;
            let name = path.display().to_string();
            let seqs = crate::lstm::npy::parse_inputs(&name, &bytes, model)
                .map_err(|e| bad(file, "workload.input", e.to_string()))?;
            Ok((seqs, bytes))
        }
        None => {
            for (key, n) in [
                ("workload.sequences", w.sequences),
                ("workload.steps", w.steps),
            ] {
                if n == 0 {
                    return Err(bad(file, key, "0: generated inputs need at least 1").into());
                }
            }
            let mut rng = crate::lstm::builtin::SplitMix64::new(w.seed);
            if let Some(e) = &model.embedding {
                let ids = crate::lstm::embedding::random_ids(&mut rng, e, w.sequences * w.steps);
                let seqs = e.lookup("generated input", [w.sequences, w.steps], &ids, true)?;
                let key = format!("generated ids {} {} {}", w.sequences, w.steps, w.seed);
                return Ok((seqs, key.into_bytes()));
            }
            let width = model.input_size();
            let data = (0..w.sequences * w.steps * width)
                .map(|_| rng.normal())
                .collect();
            let seqs =
                Sequences::new("generated input", [w.sequences, w.steps, width], data, true)?;
            Ok((
                seqs,
                format!("generated {} {} {}", w.sequences, w.steps, w.seed).into_bytes(),
            ))
        }
    }
}
