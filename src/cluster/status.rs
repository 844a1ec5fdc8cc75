//! Where a submitted cluster sweep stands: the markers jobs leave in `OUT/slurm/state/`
//! combined with the queue (`squeue`) tell done, running, pending and failed shards apart
//! ([`status`]), and [`resubmit`] submits again what failed (the precision job, the failed
//! shards as a new array, the merge after them).

use super::{need, run_tool, sbatch, ClusterError, Jobs};
use std::path::Path;
use std::process::Command;

/// Where one job (or array task) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Done,
    Running,
    Pending,
    /// Started and neither finished nor in the queue any more (failed, cancelled, pre-empted
    /// without requeue), or never started and no longer queued (a dependency failed).
    Failed,
}

/// The run as the markers and the queue show it.
#[derive(Debug, Clone)]
pub struct Status {
    pub jobs: Jobs,
    pub precision: State,
    pub shards: Vec<State>,
    pub merge: State,
    /// False when `squeue` could not be asked (then not-done jobs count as failed).
    pub queue_known: bool,
}

/// Queue states of `ids`: for arrays, keyed by `(array job id, task id)`.
fn queue(ids: &[&str]) -> Option<Vec<(String, Option<usize>, String)>> {
    need("squeue").ok()?;
    let out =
        run_tool(Command::new("squeue").args(["-h", "-r", "-o", "%F %K %t", "-j", &ids.join(",")]));
    // squeue exits non-zero when none of the ids is known any more: nothing is queued.
    let out = out.unwrap_or_default();
    Some(
        out.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (job, task, st) = (f.next()?, f.next()?, f.next()?);
                Some((job.to_string(), task.parse().ok(), st.to_string()))
            })
            .collect(),
    )
}

fn queued_state(st: &str) -> State {
    match st {
        "R" | "CG" | "CF" | "S" | "ST" => State::Running,
        _ => State::Pending,
    }
}

/// Reads the state of a `sweep --slurm` output directory.
pub fn status(out: &Path) -> Result<Status, ClusterError> {
    let jobs = Jobs::load(out)?;
    let state = out.join("slurm").join("state");
    let done = |name: &str| state.join(format!("{name}.done")).exists();
    let mut ids: Vec<&str> = vec![&jobs.precision, &jobs.merge];
    ids.extend(jobs.shard_arrays.iter().map(String::as_str));
    let q = queue(&ids);
    let queue_known = q.is_some();
    let q = q.unwrap_or_default();
    let single = |id: &str, marker: &str| {
        if done(marker) {
            return State::Done;
        }
        q.iter()
            .find(|(j, _, _)| j == id)
            .map_or(State::Failed, |(_, _, st)| queued_state(st))
    };
    let precision = single(&jobs.precision, "precision");
    let shards: Vec<State> = (0..jobs.shards)
        .map(|i| {
            if done(&format!("shard-{i}")) {
                return State::Done;
            }
            q.iter()
                .find(|(j, t, _)| jobs.shard_arrays.contains(j) && *t == Some(i))
                .map_or(State::Failed, |(_, _, st)| queued_state(st))
        })
        .collect();
    // A merge is done when it ran after every shard and its results are there: its marker
    // alone may be older than a shard redone since (or the results removed), and then the
    // merge is the queued one, or failed.
    let results = out.join("results.csv");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let merged_at = modified(&state.join("merge.done"));
    let after_every_shard = (0..jobs.shards).all(|i| {
        let shard = modified(&state.join(format!("shard-{i}.done")));
        matches!((merged_at, shard), (Some(m), Some(s)) if m >= s)
    });
    let merged = shards.iter().all(|s| *s == State::Done)
        && after_every_shard
        && std::fs::metadata(&results).is_ok_and(|m| m.len() > 0);
    let merge = match single(&jobs.merge, "merge") {
        State::Done if !merged => q
            .iter()
            .find(|(j, _, _)| *j == jobs.merge)
            .map_or(State::Failed, |(_, _, st)| queued_state(st)),
        st => st,
    };
    Ok(Status {
        jobs,
        precision,
        shards,
        merge,
        queue_known,
    })
}

/// Resubmits what failed: the precision job if it did, the failed shards as a new array (they
/// continue with --resume), and a new merge job after them unless the merge is done (the old
/// one is cancelled: its dependency can no longer be met; a marker it left is removed).
pub fn resubmit(out: &Path, st: &Status) -> Result<Jobs, ClusterError> {
    need("sbatch")?;
    let dir = out.join("slurm");
    let mut jobs = st.jobs.clone();
    let mut after_precision = Vec::new();
    if st.precision == State::Failed {
        jobs.precision = sbatch(&dir, &[], "precision.sh")?;
        after_precision.push(format!("--dependency=afterok:{}", jobs.precision));
    }
    let failed: Vec<String> = st
        .shards
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == State::Failed)
        .map(|(i, _)| i.to_string())
        .collect();
    let mut merge_after: Vec<String> = st
        .shards
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, State::Running | State::Pending))
        .filter_map(|_| st.jobs.shard_arrays.last().cloned())
        .take(1)
        .collect();
    if !failed.is_empty() {
        let mut args = after_precision;
        args.push(format!("--array={}", failed.join(",")));
        let id = sbatch(&dir, &args, "shards.sh")?;
        jobs.shard_arrays.push(id.clone());
        merge_after.push(id);
    }
    if st.merge != State::Done {
        if matches!(st.merge, State::Pending | State::Running) {
            let _ = run_tool(Command::new("scancel").arg(&st.jobs.merge));
        }
        // A marker of a merge before the shards redone now is not this merge's.
        let stale = dir.join("state").join("merge.done");
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| super::file_error(&stale, e))?;
        }
        let dep: Vec<String> = merge_after
            .iter()
            .map(|id| format!("afterok:{id}"))
            .collect();
        let args = if dep.is_empty() {
            Vec::new()
        } else {
            vec![format!("--dependency={}", dep.join(","))]
        };
        jobs.merge = sbatch(&dir, &args, "merge.sh")?;
    }
    jobs.save(out)?;
    Ok(jobs)
}

impl Status {
    /// The failed shard indices.
    pub fn failed(&self) -> Vec<usize> {
        (0..self.shards.len())
            .filter(|&i| self.shards[i] == State::Failed)
            .collect()
    }

    /// Whether anything needs resubmitting.
    pub fn needs_resubmit(&self) -> bool {
        self.precision == State::Failed || !self.failed().is_empty() || self.merge == State::Failed
    }

    /// A few lines for people.
    pub fn describe(&self, out: &Path) -> String {
        let count = |s: State| self.shards.iter().filter(|&&x| x == s).count();
        let word = |s: State| match s {
            State::Done => "done",
            State::Running => "running",
            State::Pending => "pending",
            State::Failed => "failed",
        };
        let mut s = format!(
            "precision: {} (job {})\nshards: {} done, {} running, {} pending, {} failed (of {}; arrays {})\nmerge: {} (job {})\n",
            word(self.precision),
            self.jobs.precision,
            count(State::Done),
            count(State::Running),
            count(State::Pending),
            count(State::Failed),
            self.shards.len(),
            self.jobs.shard_arrays.join(", "),
            word(self.merge),
            self.jobs.merge
        );
        if !self.queue_known {
            s.push_str("note: squeue not found: jobs not marked done are shown as failed\n");
        }
        if self.needs_resubmit() {
            let failed: Vec<String> = self.failed().iter().map(|i| i.to_string()).collect();
            let what = match (failed.is_empty(), self.precision == State::Failed) {
                (false, _) => format!("failed or pre-empted shards: [{}]", failed.join(", ")),
                (true, true) => "the precision job failed".to_string(),
                (true, false) => {
                    "the merge is to run (again): it failed, or its results are older than a shard or gone"
                        .to_string()
                }
            };
            s.push_str(&format!(
                "{what}; resubmit with: lstm-dse status {} --resubmit\n",
                out.display()
            ));
        } else if self.merge == State::Done {
            s.push_str(&format!(
                "finished: results in {}, report {}\n",
                out.display(),
                out.join("report.html").display()
            ));
        }
        s
    }
}
