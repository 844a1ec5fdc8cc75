//! Batch sweeps: a `sweeps/*.toml` file describes models, precision options and ranges of
//! architecture parameters; every (model, precision option, architecture point) is costed by
//! the analytical model and written to `results.csv`, then reduced to a Pareto front.
//!
//! The stages, each in its module: [`spec`] reads the file; [`prepare`] validates it and
//! records what it read (`spec.resolved.toml`, with a content hash of every input file);
//! [`options`] computes the precision options of each model (cached); [`plan`] numbers every
//! point and costs any of them on demand into a typed [`row::Row`]; [`checkpoint`] verifies
//! an interrupted run's files before `--resume` appends to them; [`front`] gathers the Pareto
//! front from the rows; [`outdir`] locks the output directory and publishes a run only once
//! it has finished. Points are indexed, so the bytes do not depend on threads, interruptions
//! and resumes, or on `--shard i/N` + `merge`.

mod batches;
mod checkpoint;
mod front;
mod number;
mod options;
mod outdir;
mod plan;
mod row;
pub mod spec;

pub use options::{fnv64, inputs, PrecisionOption, NUMERICS_VERSION};
pub use row::{columns, ACCURACY};
pub use spec::{SpecError, SweepSpec};

use crate::accel::{self, ArchSpec, Override};
use crate::lstm::{self, LoadOptions};
use crate::trace::{DeviceChoice, Engine};
use anyhow::{bail, Context, Result};
use checkpoint::{Done, Points};
use front::{FrontPart, FrontSpec};
use outdir::OutDir;
use plan::{Cursor, ModelPlan, Outcome, Plan, PlannedOption};
use row::{Axes, Col, TextCell};
use std::collections::BTreeMap;
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
    /// Stop after the precision stage (fills the cache; phase 1 of a SLURM run).
    pub precision_only: bool,
}

/// Progress reports from the runner (the binary draws bars).
pub trait Progress: Sync {
    fn stage(&self, name: &str, total: u64);
    fn advance(&self, n: u64);
}

/// What `spec.resolved.toml` holds: the spec with every default filled, a content hash of
/// every file it reads, and the base architecture file's values.
#[derive(serde::Serialize)]
struct Resolved<'a> {
    spec: &'a SweepSpec,
    inputs: &'a BTreeMap<String, String>,
    arch_base: &'a ArchSpec,
}

/// Everything decided before the first point.
struct Prepared {
    spec: SweepSpec,
    file: String,
    axes: Axes,
    base: ArchSpec,
    resolved: String,
    columns: Vec<String>,
    kinds: Vec<Col>,
}

/// Content hash of a file for `spec.resolved.toml`: `fnv64:<hex>:<bytes>`.
fn content_hash(file: &str, key: &str, path: &str) -> Result<String> {
    let bad = |problem: String| SpecError {
        file: file.to_string(),
        key: key.to_string(),
        problem,
    };
    if Path::new(path).is_dir() {
        return Err(bad(format!("{path}: is a directory, expected a file")).into());
    }
    let bytes = std::fs::read(path).map_err(|e| bad(format!("{path}: {e}")))?;
    Ok(format!("fnv64:{:016x}:{}", fnv64(&[&bytes]), bytes.len()))
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

/// Refuses to continue or combine runs whose resolved specs differ, naming a changed input
/// file first, otherwise the first differing setting.
fn same_run(old: &str, new: &str, what: &str, advice: &str) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let inputs = |text: &str| -> BTreeMap<String, String> {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.get("inputs").and_then(|v| v.as_table()).cloned())
            .map(|t| {
                t.into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (a, b) = (inputs(old), inputs(new));
    for (file, hash) in &b {
        match a.get(file) {
            Some(h) if h != hash => bail!(
                "{what}: input {file} changed since then (content hash was {h}, now {hash}); {advice}"
            ),
            None if !a.is_empty() => {
                bail!("{what}: input {file} was not read by that run; {advice}")
            }
            _ => {}
        }
    }
    if a.is_empty() && !b.is_empty() {
        bail!("{what}: that run recorded no content hashes of its inputs, so they cannot be checked; {advice}");
    }
    bail!(
        "{what}: the spec changed since then ({}); {advice}",
        first_difference(old, new)
    )
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

/// The precision stage: every model's options (cached) and baseline.
fn model_plans(p: &Prepared, cache_dir: &Path, progress: &dyn Progress) -> Result<Vec<ModelPlan>> {
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
        let model = lstm::load(name, &opts).map_err(|e| SpecError {
            file: file.clone(),
            key: "workload.models".into(),
            problem: e.to_string(),
        })?;
        spec::check_input_memory(file, w, model.input_size())?;
        let (seqs, input_id) = options::inputs(file, w, &model)?;
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

/// Picks the staging directory of this run: fresh, or (with `--resume`) the interrupted run's,
/// or a finished run's files copied there to be verified and completed.
fn staging(out: &OutDir, p: &Prepared, resume: bool) -> Result<PathBuf> {
    let s = out.staging();
    let resolved = s.join("spec.resolved.toml");
    let what = format!("--resume {}", out.dir.display());
    let advice = "rerun without --resume to start afresh";
    if resume && resolved.exists() {
        let old = std::fs::read_to_string(&resolved)
            .with_context(|| format!("{}: cannot read", resolved.display()))?;
        same_run(&old, &p.resolved, &what, advice)?;
        return Ok(s);
    }
    let from_published = resume && out.dir.join("results.csv").exists();
    if from_published {
        let old = std::fs::read_to_string(out.dir.join("spec.resolved.toml")).map_err(|_| {
            anyhow::anyhow!("{what}: results.csv has no spec.resolved.toml beside it, so what produced it cannot be checked; {advice}")
        })?;
        same_run(&old, &p.resolved, &what, advice)?;
    }
    let s = out.fresh_staging()?;
    if from_published {
        for f in ["results.csv", "skipped.csv"] {
            if out.dir.join(f).exists() {
                std::fs::copy(out.dir.join(f), s.join(f))
                    .with_context(|| format!("{}: cannot copy", s.join(f).display()))?;
            }
        }
    }
    crate::report::write_atomic(&resolved, |w| w.write_all(p.resolved.as_bytes()))
        .with_context(|| format!("{}: cannot write", resolved.display()))?;
    Ok(s)
}

/// Runs a sweep file; returns the output directory.
pub fn run(path: &Path, o: &RunOptions, progress: &dyn Progress) -> Result<PathBuf> {
    run_counted(path, o, progress).map(|f| f.out)
}

/// What a run tells the binary beside its output directory.
pub struct Finished {
    pub out: PathBuf,
    /// The number of rows in results.csv when this run wrote all of them (`None` for
    /// `--resume` and `--precision-only`).
    pub rows: Option<usize>,
    /// The rows of results.csv that report.html reads, when this run wrote every row and
    /// skipped no point (so the page need not read the file back).
    pub records: Option<crate::view::page::Records>,
}

/// [`run`], also returning what the run knows of results.csv.
pub fn run_counted(path: &Path, o: &RunOptions, progress: &dyn Progress) -> Result<Finished> {
    let p = prepare(path, o.smoke)?;
    let out_path = o
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results").join(&p.spec.name));
    let out = OutDir::lock(&out_path)?;
    let models = model_plans(&p, &o.cache_dir, progress)?;
    if o.precision_only {
        return Ok(Finished {
            out: out_path,
            rows: None,
            records: None,
        });
    }
    let dir = staging(&out, &p, o.resume)?;
    let plan = Plan::new(p.axes, models, p.base, &p.spec.arch.base)
        .ok_or_else(|| anyhow::anyhow!("{}: the number of points overflows", p.file))?;
    let header = {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&p.columns)?;
        w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let (shard_i, shard_n) = o.shard.unwrap_or((0, 1));
    let points = Points {
        start: shard_i,
        step: shard_n,
        total: plan.total,
    };
    let with_front = o.shard.is_none();
    let fspec = FrontSpec::new(&p.spec, &p.columns, &p.kinds)
        .map_err(|e| anyhow::anyhow!("{}: pareto: {e}", p.file))?;
    let mut front = FrontPart::default();
    let mut scratch = Vec::new();
    let done = checkpoint::verify(&dir, &plan, points, &p.columns, &header, &mut |r| {
        if with_front {
            fspec.add(&mut front, r, &mut scratch)?;
        }
        Ok(())
    })?;
    let mine = plan.total.saturating_sub(shard_i).div_ceil(shard_n);
    progress.stage("design points", mine as u64);
    let (results, skipped) = (dir.join("results.csv"), dir.join("skipped.csv"));
    let kept = |e: std::io::Error, file: &Path, done: usize| {
        anyhow::anyhow!(
            "{}: {e}; the {done} points finished so far are kept: rerun with --resume to continue",
            file.display()
        )
    };
    // Create both files with their headers, so that they exist even with nothing to append.
    for (f, h) in [
        (&results, &header[..]),
        (&skipped, checkpoint::SKIPPED_HEADER),
    ] {
        checkpoint::append(f, h, b"").map_err(|e| kept(e, f, 0))?;
    }
    let todo = pending(&done, points);
    let finished = count_done(&done, points);
    progress.advance(finished as u64);
    // A fresh run of every point writes row i for point i unless it skips points; the rows
    // report.html reads are then known in advance (checked below: any skip drops them).
    // They are a few thousand plus one per precision option: with very many options the
    // page reads the file instead.
    let options = plan.total / plan.per_option().max(1);
    let keep = (with_front && !o.resume && options <= 100_000).then(|| batches::Keep {
        stride: crate::view::page::background_stride(plan.total),
        per_option: plan.per_option(),
    });
    let sink = batches::Sink {
        results: &results,
        skipped: &skipped,
        progress,
        kept_error: &kept,
    };
    let batches::Written {
        front,
        finished,
        kept: kept_rows,
    } = batches::cost_and_write(
        todo, &plan, &fspec, with_front, keep, front, finished, &sink,
    )?;
    let mut skipped_points = 0;
    if std::fs::metadata(&skipped).map(|m| m.len()).unwrap_or(0)
        == checkpoint::SKIPPED_HEADER.len() as u64
    {
        std::fs::remove_file(&skipped).map_err(|e| kept(e, &skipped, finished))?;
    } else {
        skipped_points = std::fs::read(&skipped)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count().saturating_sub(1))
            .unwrap_or(0);
    }
    if with_front {
        write_front_of(&dir, &p.spec, &plan, &fspec, &front, &header)?;
    }
    out.publish()?;
    // Said only once the results are in place, so a failing run prints one line.
    if skipped_points > 0 {
        eprintln!("note: {skipped_points} point(s) skipped, listed with the reason in skipped.csv (e.g. dynamic precision without tracking.enabled)");
    }
    // A fresh run appended every point to results.csv or skipped.csv (a resumed one is
    // left to be counted from the files).
    let rows = (!o.resume).then(|| finished - skipped_points);
    let records = kept_rows
        .filter(|_| skipped_points == 0 && rows == Some(plan.total))
        .map(|lines| crate::view::page::Records {
            rows: plan.total,
            header: header.strip_suffix(b"\n").unwrap_or(&header).to_vec(),
            lines,
        });
    Ok(Finished {
        out: out_path,
        rows,
        records,
    })
}

/// The points of `points` not in `done`, in order.
fn pending(done: &Done, points: Points) -> impl Iterator<Item = usize> + '_ {
    let from = done.through.map_or(points.start, |t| t + points.step);
    (from..points.total)
        .step_by(points.step)
        .filter(move |i| !done.beyond.contains(i))
}

fn count_done(done: &Done, points: Points) -> usize {
    done.through
        .map_or(0, |t| (t - points.start) / points.step + 1)
        + done.beyond.len()
}

/// front.csv and front.svg from the gathered rows, into `dir`.
fn write_front_of(
    dir: &Path,
    spec: &SweepSpec,
    plan: &Plan,
    fspec: &FrontSpec,
    front: &FrontPart,
    header: &[u8],
) -> Result<()> {
    let on = fspec.finish(front);
    let path = dir.join("front.csv");
    crate::report::write_atomic(&path, |w| {
        w.write_all(header)?;
        let mut buf = Vec::new();
        let mut cursor = Cursor::default();
        for (&p, _) in front.points.iter().zip(&on).filter(|(_, &f)| f) {
            if let Outcome::Row(r) = plan.outcome(p as usize, &mut cursor) {
                buf.clear();
                r.write(&mut buf);
                w.write_all(&buf)?;
            }
        }
        Ok(())
    })
    .with_context(|| format!("{}: cannot write", path.display()))?;
    if fspec.dims() >= 2 {
        // The plot flags every kept row; `on` flags the candidates.
        let mut on_kept = vec![false; front.kept];
        for (&k, _) in front.kept_at.iter().zip(&on).filter(|(_, &f)| f) {
            on_kept[k] = true;
        }
        crate::pareto::plot_front_svg(
            &dir.join("front.svg"),
            &plot_title(spec, fspec.dims()),
            (fspec.name(0), &front.xs),
            (fspec.name(1), &front.ys),
            &on_kept,
        )?;
    }
    Ok(())
}

fn plot_title(spec: &SweepSpec, objectives: usize) -> String {
    if objectives > 2 {
        format!(
            "{}: front of {} objectives, shown on the first two",
            spec.name, objectives
        )
    } else {
        spec.name.clone()
    }
}

/// front.csv and front.svg of a results directory, for the spec's objectives (read back from
/// `results.csv`; a sweep itself gathers its front as it goes).
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
        let (x, y) = (front.objective_values(0), front.objective_values(1));
        crate::pareto::plot_front_svg(
            &out.join("front.svg"),
            &plot_title(spec, objectives.len()),
            (objectives[0], &x),
            (objectives[1], &y),
            &front.on_front,
        )?;
    }
    Ok(())
}

/// Combines shard outputs into the results a single run gives. Every shard must come from the
/// same resolved spec (inputs included); a point in two shards must have the same row.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let Some(first) = dirs.first() else {
        bail!("merge: give at least one directory")
    };
    let read_resolved = |d: &Path| {
        std::fs::read_to_string(d.join("spec.resolved.toml"))
            .with_context(|| format!("merge: {}: no spec.resolved.toml", d.display()))
    };
    let resolved = read_resolved(first)?;
    let mut header: Option<csv::ByteRecord> = None;
    let mut rows: BTreeMap<u64, (csv::ByteRecord, PathBuf)> = BTreeMap::new();
    let mut skipped: BTreeMap<u64, csv::ByteRecord> = BTreeMap::new();
    for d in dirs {
        same_run(
            &read_resolved(d)?,
            &resolved,
            &format!("merge: {} and {}", d.display(), first.display()),
            "merge only shards of one run",
        )?;
        let results = d.join("results.csv");
        let mut rd = csv::Reader::from_path(&results)
            .with_context(|| format!("merge: {}: cannot read", results.display()))?;
        let h = rd.byte_headers()?.clone();
        if header.as_ref().is_some_and(|x| *x != h) {
            bail!("merge: {} has different columns", results.display());
        }
        header = Some(h);
        for rec in rd.byte_records() {
            let rec = rec.with_context(|| format!("merge: {}", results.display()))?;
            let line = rec.position().map_or(0, |p| p.line());
            let idx: u64 = std::str::from_utf8(rec.get(0).unwrap_or(b""))
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("merge: {}: line {line}: no point index", results.display())
                })?;
            if let Some((other, from)) = rows.get(&idx) {
                if *other != rec {
                    bail!(
                        "merge: {}: line {line}: point {idx} differs from its row in {}",
                        results.display(),
                        from.display()
                    );
                }
            }
            rows.insert(idx, (rec, results.clone()));
        }
        let sk = d.join("skipped.csv");
        if sk.exists() {
            let mut rd = csv::Reader::from_path(&sk)
                .with_context(|| format!("merge: {}: cannot read", sk.display()))?;
            for rec in rd.byte_records() {
                let rec = rec.with_context(|| format!("merge: {}", sk.display()))?;
                let idx: u64 = std::str::from_utf8(rec.get(0).unwrap_or(b""))
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        anyhow::anyhow!("merge: {}: a line without a point index", sk.display())
                    })?;
                skipped.insert(idx, rec);
            }
        }
    }
    let out = OutDir::lock(out)?;
    let s = out.fresh_staging()?;
    crate::report::write_atomic(&s.join("spec.resolved.toml"), |w| {
        w.write_all(resolved.as_bytes())
    })?;
    crate::report::write_csv_atomic(&s.join("results.csv"), |w| {
        if let Some(h) = &header {
            w.write_byte_record(h)?;
        }
        rows.values().try_for_each(|(r, _)| w.write_byte_record(r))
    })?;
    if !skipped.is_empty() {
        crate::report::write_csv_atomic(&s.join("skipped.csv"), |w| {
            w.write_record(["point", "reason"])?;
            skipped.values().try_for_each(|r| w.write_byte_record(r))
        })?;
    }
    #[derive(serde::Deserialize)]
    struct Back {
        spec: SweepSpec,
    }
    let back: Back = toml::from_str(&resolved)?;
    write_front(&s, &back.spec)?;
    out.publish()
}
