//! `sweep --slurm` and `status`: a sweep as SLURM jobs, and where they stand.

use super::*;
use crate::cli::StatusArgs;
use crate::cluster::{self, Plan};

fn absolute(p: &std::path::Path) -> Result<std::path::PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// Writes the batch scripts of a cluster run and submits them (or prints them with --dry-run).
pub(super) fn slurm_sweep(a: &SweepArgs) -> Result<()> {
    let spec = crate::sweep::spec::load(a.spec_file())?;
    let out = match &a.out {
        Some(out) => out.clone(),
        None => {
            crate::sweep::default_out(&a.spec_file().display().to_string(), &spec.name, a.smoke)?
        }
    };
    let plan = Plan {
        name: spec.name.clone(),
        spec: absolute(a.spec_file())?,
        out: absolute(&out)?,
        workdir: std::env::current_dir()?,
        binary: std::env::current_exe()?,
        cache: absolute(&a.cache)?,
        shards: a.shards.unwrap_or(0),
        partition: a.partition.clone(),
        time: a.time.clone(),
        jobs: a.jobs,
        smoke: a.smoke,
    };
    plan.check()?;
    let mut scripts: Vec<Output> = (plan.scripts().into_iter())
        .map(|(name, _)| Output::inside("--out", &out, plan.slurm_dir().join(name)))
        .collect();
    if !a.dry_run {
        // Written after the jobs are submitted: checked now, when a refusal submits nothing.
        scripts.push(Output::inside(
            "--out",
            &out,
            cluster::Jobs::path(&plan.out),
        ));
    }
    let inputs = crate::sweep::spec_inputs(a.spec_file(), &spec);
    // The merge at the end would refuse a folder of other results: refused now, before the
    // cluster runs anything.
    crate::sweep::refuse_foreign("--out", &out, &inputs)?;
    refuse_overwriting_inputs(&inputs, &scripts)?;
    if !a.dry_run {
        // Before anything is written: a run that cannot be submitted leaves nothing behind.
        cluster::preflight(&plan)?;
    }
    plan.write()?;
    let dir = plan.slurm_dir();
    if a.dry_run {
        for (name, text) in plan.scripts() {
            crate::out!("# ---- {} ----\n{text}", dir.join(name).display())?;
        }
        crate::note!(
            "wrote the scripts to {}; submit them with {}",
            dir.display(),
            dir.join("submit.sh").display()
        );
        return Ok(());
    }
    let jobs = cluster::submit(&plan)?;
    if !a.quiet {
        crate::out!(
            "submitted {}: precision job {}, shards array {} ({} tasks), merge job {}\nprogress: lstm-dse status {}",
            plan.name,
            jobs.precision,
            jobs.shard_arrays.join(","),
            jobs.shards,
            jobs.merge,
            plan.out.display()
        )?;
    }
    Ok(())
}

pub(super) fn status_cmd(a: &StatusArgs) -> Result<()> {
    let st = cluster::status(&a.dir)?;
    crate::out_part!("{}", st.describe(&a.dir))?;
    if a.resubmit {
        if !st.needs_resubmit() {
            crate::out!("nothing to resubmit")?;
            return Ok(());
        }
        refuse_overwriting_inputs(&run_inputs(&st.jobs), &[job_list(&a.dir)])?;
        let jobs = cluster::resubmit(&a.dir, &st)?;
        crate::out!(
            "resubmitted: shards array {}, merge job {}",
            jobs.shard_arrays.last().map_or("-", String::as_str),
            jobs.merge
        )?;
    }
    Ok(())
}

/// The job list `status --resubmit` rewrites, as an output of `DIR`.
fn job_list(dir: &std::path::Path) -> Output {
    Output::inside("DIR", dir, cluster::Jobs::path(dir))
}

/// What the resubmitted jobs read: the sweep file recorded at submission, with the models,
/// input and architecture files it names (only the file itself when it no longer reads as a
/// sweep file); nothing for a job list written before the sweep file was recorded.
fn run_inputs(jobs: &cluster::Jobs) -> Vec<Input> {
    let Some(spec) = &jobs.spec else {
        return Vec::new();
    };
    match crate::sweep::spec::load(spec) {
        Ok(s) => crate::sweep::spec_inputs(spec, &s),
        Err(_) => vec![Input::new(
            format!("the sweep file ({})", spec.display()),
            spec,
        )],
    }
}
