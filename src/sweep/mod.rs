//! Batch sweeps: a `sweeps/*.toml` file describes models, precision options and ranges of
//! architecture parameters; every (model, precision option, architecture point) is costed by
//! the analytical model and written to `results.csv`, then reduced to a Pareto front.
//!
//! Runs are durable and reproducible: points have a fixed order and index; rows are appended
//! in whole, flushed chunks, so `--resume` after an interruption finishes the file with the
//! same bytes an uninterrupted run gives; `--shard i/N` takes the points whose index is i mod
//! N and `merge` puts shards back together; the thread count never changes a byte.

mod options;
pub mod spec;

pub use options::{fnv64, inputs, PrecisionOption};
pub use spec::{SpecError, SweepSpec};

use crate::accel::{self, ArchSpec};
use crate::lstm::{self, LoadOptions};
use crate::trace::{DeviceChoice, Engine};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output directory (default: `results/<name of the sweep>`).
    pub out: Option<PathBuf>,
    pub resume: bool,
    /// `(i, n)`: this run takes points with index % n == i.
    pub shard: Option<(usize, usize)>,
    /// Cache of precision results (content-hashed).
    pub cache_dir: PathBuf,
    /// Small smoke run: at most two values per range, three policies, four sequences.
    pub smoke: bool,
    /// Stop after the precision stage (it fills the cache): phase 1 of a cluster run.
    pub precision_only: bool,
}

/// Progress reports from the runner (the binary draws bars).
pub trait Progress: Sync {
    fn stage(&self, name: &str, total: u64);
    fn advance(&self, n: u64);
}

const ACCURACY: [&str; 6] = [
    "hidden_rmse",
    "output_rmse",
    "output_max_abs",
    "top1_agreement",
    "task_accuracy",
    "frac_low_precision",
];

/// Every column of results.csv for a spec whose ranges have these keys.
pub fn columns(range_keys: &[String]) -> Vec<String> {
    let mut c: Vec<String> = [
        "point",
        "model",
        "precision",
        "thresholds",
        "dpred_group_size",
    ]
    .map(String::from)
    .to_vec();
    c.extend(range_keys.iter().cloned());
    c.extend(
        accel::DesignPoint::default()
            .sweep_columns()
            .map(|(name, _)| name.to_string()),
    );
    c.extend(["speedup", "energy_saving"].map(String::from));
    c.extend(ACCURACY.iter().map(|s| s.to_string()));
    c.extend(["config_hash", "tool_version"].map(String::from));
    c
}

/// What `spec.resolved.toml` holds: the spec with every default filled, and the base
/// architecture file's values.
#[derive(serde::Serialize)]
struct Resolved<'a> {
    spec: &'a SweepSpec,
    arch_base: &'a ArchSpec,
}

/// Everything decided before the first point: expanded ranges, arch base, columns.
struct Prepared {
    spec: SweepSpec,
    keys: Vec<String>,
    values: Vec<Vec<String>>,
    base: ArchSpec,
    resolved: String,
    columns: Vec<String>,
}

fn prepare(path: &Path, smoke: bool) -> Result<Prepared> {
    let file = path.display().to_string();
    let mut spec = spec::load(path)?;
    let bad = |key: &str, problem: String| SpecError {
        file: file.clone(),
        key: key.into(),
        problem,
    };
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
    if smoke {
        spec.workload.sequences = spec.workload.sequences.min(4);
        spec.workload.steps = spec.workload.steps.min(6);
        if !spec.precision.thresholds.is_empty() {
            let first: Vec<&str> = spec.precision.thresholds.split(',').take(1).collect();
            spec.precision.thresholds = first.join(",");
        }
    }
    let keys: Vec<String> = spec.arch.ranges.keys().cloned().collect();
    let mut values = Vec::new();
    for k in &keys {
        let mut v = spec::expand(&file, k, &spec.arch.ranges[k])?;
        if smoke {
            v.truncate(2);
        }
        values.push(v);
    }
    spec::check_size(&file, &spec, &values)?;
    spec::check_objectives(&file, &spec, &keys, &values)?;
    let base = accel::load_arch(Path::new(&spec.arch.base))
        .map_err(|e| bad("arch.base", e.to_string()))?;
    // Every key must be a real field: try the first value of each.
    let mut probe = base.clone();
    for (k, v) in keys.iter().zip(&values) {
        accel::apply_set(&mut probe, &format!("{k}={}", v[0]))
            .map_err(|e| bad(&format!("arch.ranges.\"{k}\""), e.to_string()))?;
    }
    let columns = columns(&keys);
    for c in spec.pareto.minimize.iter().chain(&spec.pareto.maximize) {
        if !columns.contains(c) {
            return Err(bad(
                "pareto",
                format!(
                    "objective '{c}' names no column (columns: {})",
                    columns.join(", ")
                ),
            )
            .into());
        }
    }
    if let Some(f) = &spec.pareto.filter {
        crate::pareto::Filter::parse(f, &columns)
            .map_err(|e| bad("pareto.where", e.to_string()))?;
    }
    let resolved = toml::to_string(&Resolved {
        spec: &spec,
        arch_base: &base,
    })?;
    Ok(Prepared {
        spec,
        keys,
        values,
        base,
        resolved,
        columns,
    })
}

/// The first setting (line) where two resolved specs differ.
fn first_difference(a: &str, b: &str) -> String {
    let (mut section, mut n) = (String::new(), 0);
    for (x, y) in a.lines().zip(b.lines()) {
        n += 1;
        if x.starts_with('[') {
            section = x.to_string();
        }
        if x != y {
            return format!("{section} line {n}: was '{x}', now '{y}'");
        }
    }
    format!("the number of settings (after line {n})")
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v}"))
}

/// Runs a sweep file; returns the output directory.
pub fn run(path: &Path, o: &RunOptions, progress: &dyn Progress) -> Result<PathBuf> {
    let p = prepare(path, o.smoke)?;
    let file = path.display().to_string();
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results").join(&p.spec.name));
    if out.exists() && !out.is_dir() {
        bail!("--out {}: exists and is not a directory", out.display());
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let resolved_path = out.join("spec.resolved.toml");
    let results = out.join("results.csv");
    if o.resume {
        if let Ok(old) = std::fs::read_to_string(&resolved_path) {
            if old != p.resolved {
                bail!(
                    "--resume {}: the spec changed since the interrupted run ({}); rerun without --resume",
                    out.display(),
                    first_difference(&old, &p.resolved)
                );
            }
        }
    } else {
        let _ = std::fs::remove_file(&results);
        for f in ["front.csv", "front.svg"] {
            let _ = std::fs::remove_file(out.join(f));
        }
    }
    std::fs::write(&resolved_path, &p.resolved)
        .with_context(|| format!("writing {}", resolved_path.display()))?;

    let choice = match p.spec.precision.device.as_str() {
        "auto" => DeviceChoice::Auto,
        "gpu" => DeviceChoice::Gpu,
        "cpu" => DeviceChoice::Cpu,
        d => bail!("{file}: precision.device: '{d}' is not auto, gpu or cpu"),
    };
    let (engine, _) = Engine::select(choice)?;

    // Stage 1: precision options of every model (cached).
    let bad_key = |key: &str, e: lstm::ModelError| SpecError {
        file: file.clone(),
        key: key.into(),
        problem: e.to_string(),
    };
    let w = &p.spec.workload;
    progress.stage("precision", w.models.len() as u64);
    let mut models = Vec::new();
    for name in &w.models {
        let head_activation =
            match &w.head_activation {
                Some(s) => Some(s.parse().map_err(|e: String| {
                    anyhow::anyhow!("{file}: workload.head_activation: {e}")
                })?),
                None => None,
            };
        let opts = LoadOptions {
            head: w.head.clone(),
            head_activation,
        };
        let model = lstm::load(name, &opts).map_err(|e| bad_key("workload.models", e))?;
        spec::check_input_memory(&file, w, model.input_size())?;
        let (seqs, input_id) = options::inputs(&file, w, &model)?;
        let labels = match &w.labels {
            None => None,
            Some(l) => Some(crate::lstm::npy::read_f32(Path::new(l))?.1),
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
            &file,
            &engine,
            name,
            &model,
            &seqs,
            labels.as_deref(),
            &identity,
            w,
            &p.spec.precision,
            &o.cache_dir,
        )?;
        let seq_len = if w.seq_len > 0 { w.seq_len } else { seqs.steps };
        let workload = accel::workload_of(
            &model,
            seq_len,
            w.batch.max(1),
            accel::PrecisionProfile::fixed(16, 16),
        );
        models.push((name.clone(), workload, opts));
        progress.advance(1);
    }
    if o.precision_only {
        return Ok(out);
    }

    // Baseline per model: the baseline (or base) architecture at the widest fixed option.
    let baseline_arch = match &p.spec.arch.baseline {
        Some(b) => accel::Arch::from_spec(&accel::load_arch(Path::new(b))?, b)?,
        None => accel::Arch::from_spec(&p.base, &p.spec.arch.base)?,
    };
    let mut baselines = Vec::new();
    for (_, workload, opts) in &models {
        let widest = opts
            .iter()
            .filter(|o| o.levels.len() == 1)
            .map(|o| o.levels[0])
            .max()
            .unwrap_or((16, 16));
        let mut wl = workload.clone();
        wl.precision = accel::PrecisionProfile::fixed(widest.0, widest.1);
        baselines.push(accel::evaluate(&baseline_arch, &wl).ok());
    }

    // Stage 2: every point.
    let arch_points: usize = p.values.iter().map(Vec::len).product();
    let per_model: Vec<usize> = models
        .iter()
        .map(|(_, _, o)| o.len() * arch_points)
        .collect();
    let total: usize = per_model.iter().sum();
    let (shard_i, shard_n) = o.shard.unwrap_or((0, 1));
    let mine: Vec<usize> = (shard_i..total).step_by(shard_n).collect();
    let done = if o.resume {
        complete_rows(&results)?
    } else {
        0
    };
    if done == 0 {
        let mut f = std::fs::File::create(&results)
            .with_context(|| format!("writing {}", results.display()))?;
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&p.columns)?;
        f.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        f.sync_all()?;
    }
    progress.stage("design points", mine.len() as u64);
    progress.advance(done as u64);
    // Built once: every architecture point (its swept values and the validated arch; None
    // when the values do not make a valid design) and every (model, option) workload.
    let archs: Vec<Option<(Vec<String>, accel::Arch)>> = (0..arch_points)
        .into_par_iter()
        .map(|mut ai| {
            let mut chosen = vec![String::new(); p.keys.len()];
            for k in (0..p.keys.len()).rev() {
                let n = p.values[k].len();
                chosen[k] = p.values[k][ai % n].clone();
                ai /= n;
            }
            let mut spec = p.base.clone();
            for (k, v) in p.keys.iter().zip(&chosen) {
                accel::apply_set(&mut spec, &format!("{k}={v}")).ok()?;
            }
            let arch = accel::Arch::from_spec(&spec, &p.spec.arch.base).ok()?;
            Some((chosen, arch))
        })
        .collect();
    let workloads: Vec<Vec<accel::Workload>> = models
        .iter()
        .map(|(_, workload, opts)| {
            opts.iter()
                .map(|o| {
                    let mut wl = workload.clone();
                    wl.precision = o.profile();
                    wl
                })
                .collect()
        })
        .collect();
    let point_row = |idx: usize| -> Option<Vec<String>> {
        let (mut m, mut rest) = (0, idx);
        while rest >= per_model[m] {
            rest -= per_model[m];
            m += 1;
        }
        let (name, _, opts) = &models[m];
        let (oi, ai) = (rest / arch_points, rest % arch_points);
        let opt = &opts[oi];
        let (chosen, arch) = archs[ai].as_ref()?;
        let wl = &workloads[m][oi];
        let d = accel::evaluate(arch, wl).ok()?;
        let cmp = baselines[m].as_ref().map(|b| accel::compare(&d, b));
        let mut row = vec![
            idx.to_string(),
            name.clone(),
            opt.precision.clone(),
            opt.thresholds.clone(),
            opt.dpred_group_size.to_string(),
        ];
        row.extend(chosen.iter().cloned());
        row.extend(d.sweep_columns().map(|(_, v)| format!("{v}")));
        row.push(fmt_opt(cmp.map(|c| c.speedup)));
        row.push(fmt_opt(cmp.map(|c| c.energy_saving)));
        row.extend([
            format!("{}", opt.hidden_rmse),
            fmt_opt(opt.output_rmse),
            fmt_opt(opt.output_max_abs),
            fmt_opt(opt.top1_agreement),
            fmt_opt(opt.task_accuracy),
            format!("{}", opt.fractions.first().copied().unwrap_or(1.0)),
        ]);
        let config = format!(
            "{name}|{}|{}|{}|{}",
            opt.precision,
            opt.thresholds,
            opt.dpred_group_size,
            chosen.join("|")
        );
        row.push(format!("{:016x}", fnv64(&[config.as_bytes()])));
        row.push(env!("CARGO_PKG_VERSION").to_string());
        Some(row)
    };
    const CHUNK: usize = 4096;
    let mut skipped = 0usize;
    for chunk in mine[done.min(mine.len())..].chunks(CHUNK) {
        let rows: Vec<Option<Vec<String>>> = chunk.par_iter().map(|&i| point_row(i)).collect();
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in rows.iter().flatten() {
            w.write_record(r)?;
        }
        skipped += rows.iter().filter(|r| r.is_none()).count();
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&results)
            .with_context(|| format!("writing {}", results.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("writing {}", results.display()))?;
        f.sync_data()?;
        progress.advance(chunk.len() as u64);
    }
    if skipped > 0 {
        eprintln!("note: {skipped} point(s) skipped: the architecture cannot run that precision option (e.g. dynamic precision without tracking.enabled)");
    }
    if o.shard.is_none() {
        write_front(&out, &p.spec)?;
    }
    Ok(out)
}

/// Rows already complete in a results file (a partial last line is cut off).
fn complete_rows(path: &Path) -> Result<usize> {
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return Ok(0);
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        f.set_len(keep as u64)?;
        f.seek(std::io::SeekFrom::End(0))?;
    }
    let lines = bytes[..keep].iter().filter(|&&b| b == b'\n').count();
    Ok(lines.saturating_sub(1))
}

/// front.csv and front.svg of a results directory, for the spec's objectives.
pub fn write_front(out: &Path, spec: &SweepSpec) -> Result<()> {
    let front = crate::pareto::front_of_csv(
        &out.join("results.csv"),
        &spec.pareto.minimize,
        &spec.pareto.maximize,
        spec.pareto.filter.as_deref(),
    )?;
    crate::pareto::write_front_csv(&out.join("front.csv"), &front)?;
    let objectives: Vec<&String> = spec
        .pareto
        .minimize
        .iter()
        .chain(&spec.pareto.maximize)
        .collect();
    if objectives.len() >= 2 {
        let col = |name: &str| -> Vec<f64> {
            let i = front.header.iter().position(|h| h == name).unwrap_or(0);
            front
                .rows
                .iter()
                .map(|r| r.get(i).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))
                .collect()
        };
        let (x, y) = (col(objectives[0]), col(objectives[1]));
        let title = if objectives.len() > 2 {
            format!(
                "{}: front of {} objectives, shown on the first two",
                spec.name,
                objectives.len()
            )
        } else {
            spec.name.clone()
        };
        crate::pareto::plot_front_svg(
            &out.join("front.svg"),
            &title,
            (objectives[0], &x),
            (objectives[1], &y),
            &front.on_front,
        )?;
    }
    Ok(())
}

/// Combines shard outputs into the results a single run gives.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let Some(first) = dirs.first() else {
        bail!("merge: give at least one directory")
    };
    let resolved = std::fs::read_to_string(first.join("spec.resolved.toml"))
        .with_context(|| format!("{}: no spec.resolved.toml", first.display()))?;
    let mut header: Option<csv::StringRecord> = None;
    let mut rows: Vec<(u64, csv::StringRecord)> = Vec::new();
    for d in dirs {
        let r = std::fs::read_to_string(d.join("spec.resolved.toml"))
            .with_context(|| format!("{}: no spec.resolved.toml", d.display()))?;
        if r != resolved {
            bail!(
                "merge: {} was run from a different spec than {} ({})",
                d.display(),
                first.display(),
                first_difference(&resolved, &r)
            );
        }
        let mut rd = csv::Reader::from_path(d.join("results.csv"))
            .with_context(|| format!("{}: no results.csv", d.display()))?;
        let h = rd.headers()?.clone();
        if header.as_ref().is_some_and(|x| *x != h) {
            bail!("merge: {} has different columns", d.display());
        }
        header = Some(h);
        for rec in rd.records() {
            let rec = rec?;
            let idx: u64 = rec
                .get(0)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("{}: a row without a point index", d.display()))?;
            rows.push((idx, rec));
        }
    }
    rows.sort_by_key(|(i, _)| *i);
    rows.dedup_by_key(|(i, _)| *i);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let resolved_path = out.join("spec.resolved.toml");
    std::fs::write(&resolved_path, &resolved)
        .with_context(|| format!("writing {}", resolved_path.display()))?;
    let results = out.join("results.csv");
    let mut w = csv::Writer::from_path(&results)
        .with_context(|| format!("writing {}", results.display()))?;
    if let Some(h) = &header {
        w.write_record(h)?;
    }
    for (_, r) in &rows {
        w.write_record(r)?;
    }
    w.flush()?;
    #[derive(serde::Deserialize)]
    struct Back {
        spec: SweepSpec,
    }
    let back: Back = toml::from_str(&resolved)?;
    write_front(out, &back.spec)
}
