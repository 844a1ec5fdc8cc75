//! Batch sweeps: a `sweeps/*.toml` file describes models, precision options and ranges of
//! architecture parameters; every (model, precision option, architecture point) is costed by
//! the analytical model and written to `results.csv`, then reduced to a Pareto front.
//!
//! The stages, each in its module: [`spec`] reads the file; [`prepare`](mod@prepare)
//! validates it and records what it read ([`resolved`]: `spec.resolved.toml`, with a content
//! hash of every input file); [`models`] loads each model and, through [`options`], computes
//! its precision options (cached); [`plan`] numbers every point and costs any of them on
//! demand into a typed [`row::Row`]; [`checkpoint`] verifies an interrupted run's files before
//! `--resume` appends to them; [`front`] gathers the Pareto front from the rows and
//! [`front_files`] writes it; [`outdir`] locks the output directory and publishes a run only
//! once it has finished; [`merge`](mod@merge) combines shards. This file drives one run
//! through the stages. Points are indexed, so the bytes do not depend on threads,
//! interruptions and resumes, or on `--shard i/N` + `merge`.

mod batches;
mod cache;
mod cells;
mod checkpoint;
mod front;
mod front_cells;
mod front_files;
mod memory;
mod merge;
mod models;
mod number;
mod options;
mod outdir;
mod plan;
mod prepare;
mod ranges;
mod resolved;
mod row;
mod skips;
pub mod spec;

pub use front_files::write_front;
pub use merge::merge;
pub use options::{fnv64, inputs, load_options, PrecisionOption, NUMERICS_VERSION};
pub use outdir::{refuse_foreign, results_inputs, spec_inputs};
pub use outdir::{OutDir, SHARD_FILE};
pub use resolved::{recorded_points, spec_of, unchanged_inputs};
pub use row::{columns, ACCURACY};
pub use spec::{SpecError, SweepSpec};

use anyhow::{Context, Result};
use checkpoint::{Done, Points};
use front::{FrontPart, FrontSpec};
use front_files::write_front_of;
use models::model_plans;
use plan::Plan;
use prepare::prepare;
use resolved::{same_run, Check};
use std::path::{Path, PathBuf};

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output directory (default: `results/<name of the sweep>`, `results/<name>-smoke` for a
    /// smoke run).
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

/// The staging directory a run works in, and where its checkpoint files came from.
struct Staging {
    dir: PathBuf,
    /// A finished run's files were copied there to be verified (`--resume` on a finished
    /// directory): messages name the published files, and a refusal leaves no staging behind.
    from_published: bool,
    /// That finished run had no skipped.csv: its skipped points are written afresh.
    no_skipped: bool,
}

/// Picks the staging directory of this run: fresh, or (with `--resume`) the interrupted run's,
/// or a finished run's files copied there to be verified and completed. `resolved` is this
/// run's `spec.resolved.toml`.
fn staging(out: &OutDir, resolved_text: &str, resume: bool) -> Result<Staging> {
    let s = out.staging();
    let resolved = s.join("spec.resolved.toml");
    let what = format!("--resume {}", out.dir.display());
    let advice = "rerun without --resume to start afresh";
    let check = Check {
        what: &what,
        sides: ["that run", "this binary"],
        advice,
        binary_advice: "or use the binary that made it",
    };
    if resume && resolved.exists() {
        let old = crate::inputs::read_text(&resolved)
            .with_context(|| format!("{}: cannot read", resolved.display()))?;
        same_run(&old, resolved_text, &check)?;
        if old != resolved_text {
            // Made by a binary that did not record the number of points: recorded now.
            crate::report::write_atomic(&resolved, |w| w.write_all(resolved_text.as_bytes()))
                .with_context(|| format!("{}: cannot write", resolved.display()))?;
        }
        return Ok(Staging {
            dir: s,
            from_published: false,
            no_skipped: false,
        });
    }
    let from_published = resume && out.dir.join("results.csv").exists();
    if from_published {
        let old = crate::inputs::read_text(&out.dir.join("spec.resolved.toml")).map_err(|_| {
            anyhow::anyhow!("{what}: results.csv has no spec.resolved.toml beside it, so what produced it cannot be checked; {advice}")
        })?;
        same_run(&old, resolved_text, &check)?;
    }
    let s = out.fresh_staging()?;
    let mut no_skipped = false;
    if from_published {
        for f in ["results.csv", "skipped.csv"] {
            if out.dir.join(f).exists() {
                std::fs::copy(out.dir.join(f), s.join(f))
                    .with_context(|| format!("{}: cannot copy", s.join(f).display()))?;
            } else if f == "skipped.csv" {
                no_skipped = true;
            }
        }
    }
    crate::report::write_atomic(&resolved, |w| w.write_all(resolved_text.as_bytes()))
        .with_context(|| format!("{}: cannot write", resolved.display()))?;
    Ok(Staging {
        dir: s,
        from_published,
        no_skipped,
    })
}

/// Runs a sweep file; returns the output directory.
pub fn run(path: &Path, o: &RunOptions, progress: &dyn Progress) -> Result<PathBuf> {
    run_counted(path, o, progress).map(|f| f.out)
}

/// What a run tells the binary beside its output directory.
pub struct Finished {
    pub out: PathBuf,
    /// The output directory's lock, held until the binary has drawn the page.
    pub lock: OutDir,
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
    let out_path = match &o.out {
        Some(out) => out.clone(),
        None => default_out(&p.file, &p.spec.name, o.smoke)?,
    };
    // Where the writes go: no folder is made for a `..` to cancel.
    let out_path = outdir::where_written(&out_path);
    // Nothing is written before these checks: no user file a run would replace or delete in
    // a folder that is no sweep's output, and no input of the run.
    let inputs = outdir::spec_inputs(path, &p.spec);
    outdir::refuse_foreign("--out", &out_path, &inputs)?;
    crate::report::refuse_overwriting_inputs(&inputs, &outdir::outputs("--out", &out_path))?;
    let out = OutDir::lock(&out_path)?;
    let models = model_plans(&p, &o.cache_dir, progress)?;
    if o.precision_only {
        return Ok(Finished {
            out: out_path,
            lock: out,
            rows: None,
            records: None,
        });
    }
    let plan = Plan::new(p.axes, models, p.base, &p.spec.arch.base)
        .ok_or_else(|| anyhow::anyhow!("{}: the number of points overflows", p.file))?;
    if o.resume {
        same_shard(&out, o.shard)?;
    }
    let staged = staging(
        &out,
        &resolved::with_points(&p.resolved, plan.total),
        o.resume,
    )?;
    let dir = staged.dir.clone();
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
    let source = checkpoint::Source {
        dir: &dir,
        shown: if staged.from_published {
            &out.dir
        } else {
            &dir
        },
        rebuild_skipped: staged.no_skipped,
        finished: staged.from_published,
    };
    if let Some((i, n)) = o.shard {
        // Recorded from the start, so that an interrupted shard says which it is.
        merge::write_shard_file(&dir, i, n, plan.total)?;
    }
    let verified = checkpoint::verify(&source, &plan, points, &p.columns, &header, &mut |r| {
        if with_front {
            fspec.add(&mut front, r, &mut scratch)?;
        }
        Ok(())
    });
    let done = match verified {
        Ok(done) => done,
        // Only a copy of the published files: the refusal leaves the directory as it was.
        Err(e) if staged.from_published => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
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
    let (mut skipped_points, mut first_reason) = (0, String::new());
    if std::fs::metadata(&skipped).map(|m| m.len()).unwrap_or(0)
        == checkpoint::SKIPPED_HEADER.len() as u64
    {
        std::fs::remove_file(&skipped).map_err(|e| kept(e, &skipped, finished))?;
    } else {
        let bytes = std::fs::read(&skipped).unwrap_or_default();
        // Records, not lines: a reason may quote a value that holds a newline.
        skipped_points = csv::Reader::from_reader(&bytes[..]).byte_records().count();
        first_reason = csv::Reader::from_reader(&bytes[..])
            .records()
            .next()
            .and_then(|r| r.ok())
            .and_then(|r| r.get(1).map(str::to_string))
            .unwrap_or_default();
    }
    if with_front {
        write_front_of(&dir, &p.spec, &plan, &fspec, &front, &header)?;
    }
    if let Some((i, n)) = o.shard {
        merge::write_shard_file(&dir, i, n, plan.total)?;
    }
    out.publish()?;
    // Said only once the results are in place, so a failing run prints one line.
    if skipped_points > 0 {
        crate::note!("note: {skipped_points} point(s) skipped, listed with the reason in skipped.csv (the first: {first_reason})");
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
        lock: out,
        rows,
        records,
    })
}

/// `--resume` continues the shard the folder holds (its `shard.toml`, written from a shard's
/// start), or a whole run where it holds none: another `--shard` (or none) is refused, naming
/// the shard to give, and so is a `--shard` on a whole run's rows (a run with rows and no
/// `shard.toml`: a shard records it before its first row).
fn same_shard(out: &OutDir, shard: Option<(usize, usize)>) -> Result<()> {
    let staging = out.staging();
    let at = if staging.join("spec.resolved.toml").exists() {
        staging
    } else {
        out.dir.clone()
    };
    let held = merge::shard_of(&at);
    let dir = out.dir.display();
    match (held, shard) {
        (Some(h), Some(s)) if h == s => Ok(()),
        (Some((i, n)), Some((si, sn))) => anyhow::bail!(
            "--resume {dir}: the folder holds shard {i}/{n} ({}/{SHARD_FILE}), not {si}/{sn}: resume it with --shard {i}/{n}",
            at.display()
        ),
        (Some((i, n)), None) => anyhow::bail!(
            "--resume {dir}: the folder holds shard {i}/{n} of a sharded run ({}/{SHARD_FILE}), not a whole run: add --shard {i}/{n} to resume that shard, or give another --out for a whole run",
            at.display()
        ),
        (None, Some((si, sn))) if at.join("results.csv").exists() => anyhow::bail!(
            "--resume {dir} --shard {si}/{sn}: the folder holds an unsharded (whole) run (rows in {}, no {SHARD_FILE}), not a shard: resume it without --shard, or give another --out for shard {si}/{sn}",
            at.join("results.csv").display()
        ),
        _ => Ok(()),
    }
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

/// The output of a run without `--out`: `results/<name>`, or `results/<name>-smoke` for a
/// smoke run (which never replaces the real results); the cluster's runs use it too.
pub fn default_out(file: &str, name: &str, smoke: bool) -> Result<PathBuf> {
    if smoke {
        results_dir(file, &format!("{name}-smoke"))
    } else {
        results_dir(file, name)
    }
}

/// `results/<name>` for a run without `--out`: the name must stay inside `results/` (not
/// empty, not absolute, no `..`; a name with `/` makes a folder of runs).
fn results_dir(file: &str, name: &str) -> Result<PathBuf> {
    use std::path::Component;
    let inside = !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !inside {
        return Err(SpecError {
            file: file.to_string(),
            key: "name".into(),
            problem: format!(
                "'{name}' is not a folder inside results/ (the output without --out): give a name that is not empty, not absolute and without '..', or give --out"
            ),
        }
        .into());
    }
    Ok(Path::new("results").join(name))
}
