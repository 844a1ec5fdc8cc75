//! Sweeps on a SLURM cluster, in three phases: the precision stage once per model and input
//! into the content-addressed cache (phase 1), a job array of architecture shards that read it
//! and run with `--resume` (phase 2), and a merge job that runs after every shard succeeded
//! (phase 3, `afterok`), followed by the report page. The batch scripts are plain bash with
//! `#SBATCH` lines, written under `OUT/slurm/`, so they can be read and submitted by hand
//! (`submit.sh`). Jobs leave markers in `OUT/slurm/state/`; [`status`] combines them with the
//! queue (`squeue`) to tell done, running, pending and failed shards apart.

mod status;

pub use status::{resubmit, status, State, Status};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a cluster run cannot be set up or queried; `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "--time '{0}': not a SLURM time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"
    )]
    Time(String),
    #[error("--partition '{0}': not a partition name (letters, digits, '_', '-', '.')")]
    PartitionName(String),
    #[error("--partition '{name}': no such partition (sinfo lists: {known})")]
    NoPartition { name: String, known: String },
    #[error("--shards {0}: give 1 to {MAX_SHARDS}")]
    Shards(usize),
    #[error("--slurm: `{0}` not found on PATH (install the SLURM client tools, or use --dry-run to write the scripts only)")]
    Missing(&'static str),
    #[error("{command} failed: {message}")]
    Scheduler { command: String, message: String },
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    /// A name or path the scripts would hold with a control character (a newline would end
    /// a comment or an `#SBATCH` line and start a command), or that is not UTF-8 (the job
    /// list, `jobs.toml`, records the sweep file's path as text).
    #[error("{what}: {problem}")]
    Control { what: &'static str, problem: String },
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::File {
        path: path.to_path_buf(),
        problem: e.to_string(),
    }
}

/// Checks a SLURM time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, or
/// `UNLIMITED`/`infinite`.
pub fn check_time(t: &str) -> Result<(), ClusterError> {
    let bad = || ClusterError::Time(t.to_string());
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("infinite") {
        return Ok(());
    }
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    if days.is_some_and(|d| !digits(d)) {
        return Err(bad());
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let ok = parts.iter().all(|p| digits(p))
        && match days {
            Some(_) => (1..=3).contains(&parts.len()),
            None => (1..=3).contains(&parts.len()),
        };
    let nonzero = t.bytes().any(|b| (b'1'..=b'9').contains(&b));
    if ok && nonzero {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks the spelling of a partition name (its existence is asked of `sinfo` at submission).
pub fn check_partition(p: &str) -> Result<(), ClusterError> {
    let ok = !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ClusterError::PartitionName(p.to_string()))
    }
}

/// Quotes a word for an `#SBATCH` line, which sbatch splits itself (`_get_argument` in
/// SLURM's src/sbatch/opt.c): as it is when it holds only letters, digits and `/._-:,+@=%`,
/// else in double quotes, since a space ends a word even after a
/// backslash (the loop tests for white space before it reads the escaped character), with a
/// backslash before `\`, `"` and `#` (a comment even inside quotes in older versions).
/// Control characters never get here ([`Plan::check`]).
fn sbatch_word(s: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "/._-:,+@=%".contains(c);
    let mut out = String::with_capacity(s.len() + 2);
    let quoted = !s.chars().all(bare);
    if quoted {
        out.push('"');
    }
    for c in s.chars() {
        if matches!(c, '\\' | '"' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
    // sbatch blanks every "packjob" of a line before it splits it (an old option's name):
    // one written "pack\job" is not matched and reads back the same.
    while let Some(at) = out.to_ascii_lowercase().find("packjob") {
        out.insert(at + 4, '\\');
    }
    out
}

/// Quotes a word for bash.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn shp(p: &Path) -> String {
    sh(&p.display().to_string())
}

/// Most shards a cluster run may have. SLURM's own default caps a job array at 1001 tasks
/// (`MaxArraySize`), and the merge job names every shard's folder on one command line, which
/// the kernel limits to a few MiB; a run of 10,000 shards of a 10-million-point sweep still
/// gives each 1,000 points.
pub const MAX_SHARDS: usize = 10_000;

/// Most shard arrays a job list may record: the first submission and each resubmission.
const MAX_SHARD_ARRAYS: usize = 1_000;

/// Everything the batch scripts need; every path absolute.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The sweep's name (job names).
    pub name: String,
    pub spec: PathBuf,
    /// Output directory: shards in `shards/<i>/`, scripts in `slurm/`, merged results here.
    pub out: PathBuf,
    /// Where jobs run (the checkout: relative paths in the spec resolve from here).
    pub workdir: PathBuf,
    pub binary: PathBuf,
    /// The content-addressed precision cache, on a filesystem every node sees.
    pub cache: PathBuf,
    pub shards: usize,
    pub partition: Option<String>,
    pub time: Option<String>,
    /// Threads per shard (`--cpus-per-task` and `--jobs`).
    pub jobs: Option<usize>,
    pub smoke: bool,
}

impl Plan {
    /// Checks the flags.
    pub fn check(&self) -> Result<(), ClusterError> {
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(ClusterError::Shards(self.shards));
        }
        if let Some(t) = &self.time {
            check_time(t)?;
        }
        if let Some(p) = &self.partition {
            check_partition(p)?;
        }
        let words = [
            ("the sweep's name", self.name.as_ref()),
            ("the sweep file", self.spec.as_os_str()),
            ("--out", self.out.as_os_str()),
            ("--cache", self.cache.as_os_str()),
            ("the working directory", self.workdir.as_os_str()),
            ("the lstm-dse binary's path", self.binary.as_os_str()),
        ];
        for (what, value) in words {
            if let Some(problem) = crate::limits::control_character(value) {
                return Err(ClusterError::Control { what, problem });
            }
            if value.to_str().is_none() {
                let problem = format!(
                    "{} is not valid UTF-8 (the scripts and the job list hold it as text)",
                    value.to_string_lossy()
                );
                return Err(ClusterError::Control { what, problem });
            }
        }
        Ok(())
    }

    pub fn slurm_dir(&self) -> PathBuf {
        self.out.join("slurm")
    }

    fn header(&self, phase: &str, log: &str, extra: &[String]) -> String {
        // The log path is a SLURM file pattern: a '%' of the folder is written '%%'.
        let logs = self.slurm_dir().join("logs").display().to_string();
        let mut s = format!(
            "#!/usr/bin/env bash\n# lstm-dse sweep {} on SLURM, {phase}.\n# Written by `lstm-dse sweep --slurm`; submit all phases with submit.sh.\n#SBATCH --job-name={}\n#SBATCH --output={}\n",
            sh(&self.name),
            sbatch_word(&format!("lstm-dse-{}", self.name)),
            sbatch_word(&format!("{}/{log}", logs.replace('%', "%%")))
        );
        for e in extra {
            s.push_str(&format!("#SBATCH {e}\n"));
        }
        if let Some(p) = &self.partition {
            s.push_str(&format!("#SBATCH --partition={}\n", sbatch_word(p)));
        }
        if let Some(t) = &self.time {
            s.push_str(&format!("#SBATCH --time={}\n", sbatch_word(t)));
        }
        if let Some(j) = self.jobs {
            s.push_str(&format!("#SBATCH --cpus-per-task={j}\n"));
        }
        s.push_str(&format!(
            "set -euo pipefail\ncd {}\nstate={}\nmkdir -p \"$state\"\n",
            shp(&self.workdir),
            shp(&self.slurm_dir().join("state"))
        ));
        s
    }

    fn sweep_flags(&self) -> String {
        let mut f = format!("--cache {} --quiet", shp(&self.cache));
        if let Some(j) = self.jobs {
            f.push_str(&format!(" --jobs {j}"));
        }
        if self.smoke {
            f.push_str(" --smoke");
        }
        f
    }

    /// The scripts by file name: precision.sh, shards.sh, merge.sh, submit.sh.
    pub fn scripts(&self) -> Vec<(&'static str, String)> {
        let bin = shp(&self.binary);
        let spec = shp(&self.spec);
        let mut precision = self.header(
            "phase 1: the precision stage once, into the cache",
            "precision.out",
            &[],
        );
        precision.push_str(&format!(
            "echo \"${{SLURM_JOB_ID:-}}\" > \"$state/precision.started\"\n{bin} sweep {spec} --precision-only --out {} {}\ntouch \"$state/precision.done\"\n",
            shp(&self.slurm_dir().join("precision")),
            self.sweep_flags()
        ));
        let mut shards = self.header(
            &format!(
                "phase 2: shard i of {} (array task i), resumable (a requeued or resubmitted task continues where it stopped)",
                self.shards
            ),
            "shard-%a.out",
            &[
                format!("--array=0-{}", self.shards - 1),
                "--requeue".to_string(),
            ],
        );
        shards.push_str(&format!(
            "i=${{SLURM_ARRAY_TASK_ID:?run as an array task, or set SLURM_ARRAY_TASK_ID}}\necho \"${{SLURM_JOB_ID:-}}\" > \"$state/shard-$i.started\"\n{bin} sweep {spec} --shard \"$i/{}\" --out {}\"/$i\" --resume {}\ntouch \"$state/shard-$i.done\"\n",
            self.shards,
            shp(&self.out.join("shards")),
            self.sweep_flags()
        ));
        let mut merge = self.header(
            "phase 3: merge the shards, write the front and report.html",
            "merge.out",
            &[],
        );
        let dirs: Vec<String> = (0..self.shards)
            .map(|i| shp(&self.out.join("shards").join(i.to_string())))
            .collect();
        merge.push_str(&format!(
            "echo \"${{SLURM_JOB_ID:-}}\" > \"$state/merge.started\"\n{bin} merge {} --out {}\n{bin} report {} --quiet\ntouch \"$state/merge.done\"\n",
            dirs.join(" "),
            shp(&self.out),
            shp(&self.out)
        ));
        // The job list `status` reads, as `sweep --slurm` records it (the spec's path as a
        // TOML string, in a quoted here-document: nothing in it is expanded).
        let spec_line = toml::Value::String(self.spec.to_string_lossy().into_owned());
        let submit = format!(
            "#!/usr/bin/env bash\n# Submits the three phases of sweep {} in order, each after the previous one\n# succeeded, and records their job ids in jobs.toml (what `lstm-dse sweep --slurm` does).\n# Progress: lstm-dse status {}\nset -euo pipefail\ncd {}\np=$(sbatch --parsable precision.sh | cut -d';' -f1)\ns=$(sbatch --parsable --dependency=afterok:$p shards.sh | cut -d';' -f1)\nm=$(sbatch --parsable --dependency=afterok:$s merge.sh | cut -d';' -f1)\nprintf 'shards = {}\\nprecision = \"%s\"\\nshard_arrays = [\"%s\"]\\nmerge = \"%s\"\\n' \"$p\" \"$s\" \"$m\" > jobs.toml.tmp\ncat >> jobs.toml.tmp <<'SPEC'\nspec = {spec_line}\nSPEC\nmv jobs.toml.tmp jobs.toml\necho \"submitted: precision $p, shards $s (array of {}), merge $m\"\n",
            sh(&self.name),
            shp(&self.out),
            shp(&self.slurm_dir()),
            self.shards,
            self.shards
        );
        vec![
            ("precision.sh", precision),
            ("shards.sh", shards),
            ("merge.sh", merge),
            ("submit.sh", submit),
        ]
    }

    /// Writes the scripts (executable) and the log and state folders.
    pub fn write(&self) -> Result<(), ClusterError> {
        let dir = self.slurm_dir();
        for sub in ["logs", "state"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| file_error(&dir.join(sub), e))?;
        }
        // The scripts call each other: a previous run's set is replaced whole or kept.
        let scripts = self.scripts();
        let mut set = crate::report::Staged::new();
        for (name, text) in &scripts {
            set.write(&dir.join(name), |w| w.write_all(text.as_bytes()))
                .map_err(|e| file_error(&e.path, e.source))?;
        }
        set.commit().map_err(|e| file_error(&e.path, e.source))?;
        #[cfg(unix)]
        for (name, _) in &scripts {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(name);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| file_error(&path, e))?;
        }
        Ok(())
    }
}

/// The jobs of a submitted run (`OUT/slurm/jobs.toml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Jobs {
    pub shards: usize,
    pub precision: String,
    /// Job ids of the shard arrays: the first submission, then each resubmission.
    pub shard_arrays: Vec<String>,
    pub merge: String,
    /// The sweep file the scripts run (absolute), so that a resubmission can check its write
    /// of this file against the run's inputs; a list written before it was recorded has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PathBuf>,
}

impl Jobs {
    /// Where a run's job list is (written at submission and by every resubmission).
    pub fn path(out: &Path) -> PathBuf {
        out.join("slurm").join("jobs.toml")
    }

    pub fn load(out: &Path) -> Result<Jobs, ClusterError> {
        let path = Jobs::path(out);
        let text = crate::inputs::read_text(&path).map_err(|e| {
            file_error(
                &path,
                format!("{e} (was this directory run with sweep --slurm?)"),
            )
        })?;
        let jobs: Jobs = toml::from_str(&text).map_err(|e| {
            let message = crate::inputs::one_line(e.message());
            match crate::inputs::toml_line(&text, &e) {
                None => file_error(&path, message),
                Some(n) => file_error(&path, format!("line {n}: {message}")),
            }
        })?;
        jobs.check().map_err(|problem| file_error(&path, problem))?;
        Ok(jobs)
    }

    /// What `sweep --slurm` records, and nothing `status` cannot hold or hand to `squeue` and
    /// `sbatch`: 1 to [`MAX_SHARDS`] shards, job ids of digits, at least one shard array.
    fn check(&self) -> Result<(), String> {
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(format!(
                "shards = {}: a run has 1 to {MAX_SHARDS} shards (sweep --slurm --shards N)",
                self.shards
            ));
        }
        if self.shard_arrays.is_empty() {
            return Err(
                "shard_arrays = []: no job array recorded (sweep --slurm records the first)".into(),
            );
        }
        if self.shard_arrays.len() > MAX_SHARD_ARRAYS {
            return Err(format!(
                "shard_arrays: {} job ids, more than the {MAX_SHARD_ARRAYS} a run records (one per submission)",
                self.shard_arrays.len()
            ));
        }
        let ids = [("precision", &self.precision), ("merge", &self.merge)]
            .into_iter()
            .chain(self.shard_arrays.iter().map(|id| ("shard_arrays", id)));
        for (key, id) in ids {
            if !is_job_id(id) {
                return Err(format!(
                    "{key}: {id:?} is not a SLURM job id (digits, as sbatch --parsable prints)"
                ));
            }
        }
        Ok(())
    }

    fn save(&self, out: &Path) -> Result<(), ClusterError> {
        let path = Jobs::path(out);
        let text = toml::to_string(self).map_err(|e| file_error(&path, e))?;
        crate::report::write_atomic(&path, |w| w.write_all(text.as_bytes()))
            .map_err(|e| file_error(&path, e))
    }
}

/// A SLURM job id as `sbatch --parsable` prints it and `jobs.toml` records it: 1 to 20
/// digits (a u64).
fn is_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

fn need(tool: &'static str) -> Result<(), ClusterError> {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()));
    if found {
        Ok(())
    } else {
        Err(ClusterError::Missing(tool))
    }
}

fn run_tool(cmd: &mut Command) -> Result<String, ClusterError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let o = cmd.output().map_err(|e| ClusterError::Scheduler {
        command: shown.clone(),
        message: e.to_string(),
    })?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(ClusterError::Scheduler {
            command: shown,
            message: err
                .lines()
                .next()
                .unwrap_or("no message")
                .trim()
                .to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `sbatch --parsable [args] script` in the script's folder; returns the job id.
fn sbatch(dir: &Path, args: &[String], script: &str) -> Result<String, ClusterError> {
    let out = run_tool(
        Command::new("sbatch")
            .current_dir(dir)
            .arg("--parsable")
            .args(args)
            .arg(script),
    )?;
    // `--parsable` prints `id` or `id;cluster`: anything else is not an id to depend on or
    // to record in jobs.toml.
    let id = out.split(';').next().unwrap_or("").trim().to_string();
    if !is_job_id(&id) {
        return Err(ClusterError::Scheduler {
            command: format!("sbatch {script}"),
            message: format!(
                "printed {:?}, not a job id (sbatch --parsable prints the id)",
                out.trim()
            ),
        });
    }
    Ok(id)
}

/// Checks that the scheduler can take the jobs: sbatch on PATH, the partition known.
pub fn preflight(plan: &Plan) -> Result<(), ClusterError> {
    need("sbatch")?;
    if let Some(p) = &plan.partition {
        need("sinfo")?;
        let known = run_tool(Command::new("sinfo").args(["-h", "-o", "%R"]))?;
        let known: Vec<&str> = known.lines().map(str::trim).collect();
        if !known.contains(&p.as_str()) {
            return Err(ClusterError::NoPartition {
                name: p.clone(),
                known: known.join(", "),
            });
        }
    }
    Ok(())
}

/// Submits the three phases with afterok dependencies; records the job ids.
pub fn submit(plan: &Plan) -> Result<Jobs, ClusterError> {
    preflight(plan)?;
    let dir = plan.slurm_dir();
    let p = sbatch(&dir, &[], "precision.sh")?;
    let s = sbatch(&dir, &[format!("--dependency=afterok:{p}")], "shards.sh")?;
    let m = sbatch(&dir, &[format!("--dependency=afterok:{s}")], "merge.sh")?;
    let jobs = Jobs {
        shards: plan.shards,
        precision: p,
        shard_arrays: vec![s],
        merge: m,
        spec: Some(plan.spec.clone()),
    };
    jobs.save(&plan.out)?;
    Ok(jobs)
}

#[cfg(test)]
mod tests;
