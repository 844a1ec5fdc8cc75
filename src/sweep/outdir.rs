//! The output directory of a sweep, kept whole:
//!
//! - **one run at a time**: `OUT/.lock` is held with an advisory lock (`flock`) for the whole
//!   run and holds the holder's process id; a second run on the same directory stops with
//!   exit 2 naming that pid. The kernel drops the lock when its holder dies, so a lock left by
//!   a killed run is simply taken over. `report` and `plot` into the directory take the same
//!   lock ([`OutDir::lock_results`]), and a sweep holds it until its page is drawn, so a page
//!   is never drawn from files another run is replacing.
//! - **finished results are never destroyed by a run that fails**: a run works in
//!   `OUT/.incomplete/` and only a finished run replaces the published files in `OUT/`. Files
//!   are moved one by one; `.incomplete/PUBLISH` marks a finished run whose move was
//!   interrupted and lists the files that run publishes, and the next run on the directory
//!   completes the move before anything else (a listed file no longer in staging was moved
//!   already and stays; an unlisted one is an older run's and goes). An older run's
//!   `report.html` goes at every publication: the page is drawn from the published files
//!   after the move, so a directory never shows one run's page beside another's results.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The files a finished sweep publishes, in the order they are moved (results first, the
/// resolved spec that vouches for them last).
pub const PUBLISHED: [&str; 6] = [
    "results.csv",
    "skipped.csv",
    "front.csv",
    "front.svg",
    SHARD_FILE,
    "spec.resolved.toml",
];

/// Written by a shard (`--shard i/N`): which one, of how many, over how many points; `merge`
/// checks with it that its shards cover every point.
pub const SHARD_FILE: &str = "shard.toml";

const STAGING: &str = ".incomplete";
const PUBLISH_MARK: &str = "PUBLISH";
/// Drawn after publication from the published files (`lstm-dse report` redraws it).
const PAGE: &str = "report.html";

/// A locked output directory.
pub struct OutDir {
    pub dir: PathBuf,
    /// Held open for the lock's lifetime.
    _lock: File,
    /// This run made the directory: if it ends with nothing there but the lock and an empty
    /// staging folder (a run that failed before it wrote anything), the directory goes again.
    created: bool,
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        let staging = self.staging();
        let empty_staging = std::fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_none());
        let only_lock = names
            .iter()
            .all(|n| n == ".lock" || (n == STAGING && empty_staging));
        if only_lock {
            let _ = std::fs::remove_dir(&staging);
            let _ = std::fs::remove_file(self.dir.join(".lock"));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

impl OutDir {
    /// Creates (if needed) and locks `dir`; completes an interrupted publication.
    pub fn lock(dir: &Path) -> Result<OutDir> {
        let dir = &where_written(dir);
        if dir.exists() && !dir.is_dir() {
            bail!("--out {}: exists and is not a directory", dir.display());
        }
        let created = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--out {}: cannot create the directory", dir.display()))?;
        let lock = take_lock(dir, |holder, path| {
            anyhow::anyhow!(
                "--out {}: another sweep is writing there ({holder} holds {}); wait for it or choose another --out",
                dir.display(),
                path.display()
            )
        })?;
        OutDir::locked(dir, lock, created)
    }

    /// Locks the results directory `dir` of an earlier run for `report` or `plot`, which
    /// draw from its files and write beside them: `None` when `dir` is no sweep's directory
    /// (no `.lock`, no `spec.resolved.toml`), refused while a run holds it.
    pub fn lock_results(dir: &Path) -> Result<Option<OutDir>> {
        if !dir.join(".lock").is_file() && !dir.join("spec.resolved.toml").is_file() {
            return Ok(None);
        }
        let lock = take_lock(dir, |holder, path| {
            anyhow::anyhow!(
                "{}: another run (a sweep, merge or report) is using it ({holder} holds {}); wait for it to finish",
                dir.display(),
                path.display()
            )
        })?;
        OutDir::locked(dir, lock, false).map(Some)
    }

    fn locked(dir: &Path, lock: File, created: bool) -> Result<OutDir> {
        let out = OutDir {
            dir: dir.to_path_buf(),
            _lock: lock,
            created,
        };
        if out.staging().join(PUBLISH_MARK).exists() {
            out.move_published()?;
        }
        Ok(out)
    }

    /// Where the running (or interrupted) run writes.
    pub fn staging(&self) -> PathBuf {
        self.dir.join(STAGING)
    }

    /// A fresh, empty staging directory (an earlier unfinished run's work is dropped).
    pub fn fresh_staging(&self) -> Result<PathBuf> {
        let s = self.staging();
        if s.exists() {
            std::fs::remove_dir_all(&s)
                .with_context(|| format!("{}: cannot remove", s.display()))?;
        }
        std::fs::create_dir_all(&s).with_context(|| format!("{}: cannot create", s.display()))?;
        Ok(s)
    }

    /// Publishes the finished staging directory: its files replace those in `OUT/`; published
    /// files it does not have are removed from `OUT/`.
    pub fn publish(&self) -> Result<()> {
        let s = self.staging();
        for name in PUBLISHED {
            if s.join(name).exists() {
                sync(&s.join(name))?;
            }
        }
        // The files this run publishes, listed before any moves: a recovery must tell a file
        // already moved from an older run's.
        let listed: String = (PUBLISHED.iter())
            .filter(|name| s.join(name).exists())
            .map(|name| format!("{name}\n"))
            .collect();
        let mark = s.join(PUBLISH_MARK);
        File::create(&mark)
            .and_then(|mut f| {
                f.write_all(listed.as_bytes())?;
                f.sync_all()
            })
            .with_context(|| format!("{}: cannot write", mark.display()))?;
        sync_dir(&s);
        self.move_published()
    }

    fn move_published(&self) -> Result<()> {
        let s = self.staging();
        let mark = s.join(PUBLISH_MARK);
        let listed = std::fs::read_to_string(&mark)
            .with_context(|| format!("{}: cannot read", mark.display()))?;
        // A mark without a list (written by a version before the list): which files were
        // moved already is unknown, so none is removed.
        let known = !listed.is_empty();
        // The older run's page goes before the first file moves: a kill during the moves
        // leaves no page rather than the old one beside the new results.
        let page = self.dir.join(PAGE);
        if !s.join(PAGE).exists() && page.exists() {
            std::fs::remove_file(&page)
                .with_context(|| format!("{}: cannot remove the old page", page.display()))?;
            sync_dir(&self.dir);
        }
        for name in PUBLISHED.into_iter().chain([PAGE]) {
            let (from, to) = (s.join(name), self.dir.join(name));
            if from.exists() {
                std::fs::rename(&from, &to)
                    .with_context(|| format!("{}: cannot move into place", to.display()))?;
            } else if known && !listed.lines().any(|l| l == name) && to.exists() {
                std::fs::remove_file(&to)
                    .with_context(|| format!("{}: cannot remove the old file", to.display()))?;
            }
        }
        sync_dir(&self.dir);
        std::fs::remove_dir_all(&s).with_context(|| format!("{}: cannot remove", s.display()))
    }
}

/// Whether `dir` holds a sweep's output (published or staged): its `spec.resolved.toml`, or
/// an interrupted run's staging (with its spec or its publication mark, or beside the lock
/// file that run took before it made its staging: a run killed while it emptied the staging
/// folder leaves neither).
fn is_sweep_output(dir: &Path) -> bool {
    let staging = dir.join(STAGING);
    dir.join("spec.resolved.toml").is_file()
        || staging.join("spec.resolved.toml").is_file()
        || staging.join(PUBLISH_MARK).is_file()
        || (staging.is_dir() && dir.join(".lock").is_file())
}

/// Refuses `dir` as the output of a sweep or a merge when it is no sweep's output and holds
/// files a run there would replace (results.csv, report.html and the like) or delete (a
/// non-empty `.incomplete/`) without asking. Other files (a log, a cache folder, a cluster
/// run's scripts and shards, the folders of runs named `dir/...`) are left alone, and so
/// are the run's own `inputs` (a sweep file kept in its output folder). Checked before the
/// directory is locked, so a refusal leaves it untouched; `dir` is taken where a write goes
/// (`new/..` is the folder above `new`).
pub fn refuse_foreign(flag: &str, dir: &Path, inputs: &[crate::report::Input]) -> Result<()> {
    let Some(at) = crate::report::place(dir) else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(&at) else {
        return Ok(());
    };
    let (given, dir) = (dir, at.as_path());
    if is_sweep_output(dir) {
        return Ok(());
    }
    let empty_staging = std::fs::read_dir(dir.join(STAGING)).is_ok_and(|mut d| d.next().is_none());
    let replaced = |n: &std::ffi::OsStr| {
        (PUBLISHED.into_iter().chain([PAGE])).any(|p| n == p) || (n == STAGING && !empty_staging)
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| replaced(n))
        .filter(|n| {
            let p = dir.join(n);
            !inputs.iter().any(|i| crate::report::same_file(&p, &i.path))
        })
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    let more = if names.len() > 3 { ", ..." } else { "" };
    bail!(
        "{flag} {}: holds {shown}{more} but is not a sweep's output (no spec.resolved.toml); a run there would replace or delete them: give an empty or new folder",
        given.display()
    )
}

/// What a sweep or merge into `dir` writes: the published files, the page, the lock, and the
/// staging folder it deletes.
pub fn outputs(flag: &str, dir: &Path) -> Vec<crate::report::Output> {
    use crate::report::Output;
    let files = PUBLISHED.into_iter().chain([PAGE, ".lock"]);
    let mut out: Vec<Output> = files
        .map(|name| Output::inside(flag, dir, dir.join(name)))
        .collect();
    out.push(Output::tree(flag, dir, dir.join(STAGING)));
    out
}

/// The files a sweep file's run reads: the models (with their external data), the input,
/// the labels and the architecture files, each named by its key in `file`.
pub fn spec_inputs(file: &Path, spec: &super::SweepSpec) -> Vec<crate::report::Input> {
    use super::spec::resolve_path;
    use crate::report::Input;
    let name = file.display();
    let key = |k: &str| format!("{k} in {name}");
    let mut inputs = vec![Input::new(format!("the sweep file ({name})"), file)];
    let w = &spec.workload;
    for m in &w.models {
        inputs.extend(Input::model(&key("workload.models"), m));
    }
    let files = [
        ("the input", "workload.input", w.input.as_ref()),
        ("the labels", "workload.labels", w.labels.as_ref()),
        ("the architecture", "arch.base", Some(&spec.arch.base)),
        ("the baseline", "arch.baseline", spec.arch.baseline.as_ref()),
    ];
    for (what, k, p) in files {
        if let Some(p) = p {
            inputs.push(Input::new(format!("{what} ({})", key(k)), resolve_path(p)));
        }
    }
    inputs
}

/// Refuses a control character (a newline above all) in the sweep's name, which becomes
/// folder, file and job names, and in the paths it reads, which `--slurm` writes into batch
/// scripts: there a newline would end a comment or an `#SBATCH` line and start a command.
pub fn refuse_control_characters(
    file: &str,
    spec: &super::SweepSpec,
) -> std::result::Result<(), super::spec::SpecError> {
    let w = &spec.workload;
    let a = &spec.arch;
    let models = w.models.iter().map(|m| ("workload.models", m));
    let single = [
        ("name", Some(&spec.name)),
        ("workload.input", w.input.as_ref()),
        ("workload.labels", w.labels.as_ref()),
        ("arch.base", Some(&a.base)),
        ("arch.baseline", a.baseline.as_ref()),
    ];
    let all = single
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .chain(models);
    for (key, value) in all {
        if let Some(problem) = crate::limits::control_character(value.as_str().as_ref()) {
            return Err(super::spec::SpecError {
                file: file.to_string(),
                key: key.to_string(),
                problem,
            });
        }
    }
    Ok(())
}

/// The files `report` and `plot` read from the sweep directory `dir` (and, when its
/// spec.resolved.toml reads, the models and inputs its precision stage is rerun on).
pub fn results_inputs(dir: &Path) -> Vec<crate::report::Input> {
    use crate::report::Input;
    let resolved = dir.join("spec.resolved.toml");
    let names = ["results.csv", "skipped.csv", "front.csv", SHARD_FILE];
    let mut inputs: Vec<Input> = names
        .into_iter()
        .chain(["spec.resolved.toml"])
        .map(|n| Input::new(format!("{n} of {}", dir.display()), dir.join(n)))
        .collect();
    let small = std::fs::metadata(&resolved).is_ok_and(|m| m.is_file() && m.len() <= 1 << 24);
    let text = small
        .then(|| std::fs::read_to_string(&resolved).ok())
        .flatten();
    if let Some(spec) = text.and_then(|t| super::resolved::spec_of(&t).ok()) {
        inputs.extend(spec_inputs(&resolved, &spec));
    }
    inputs
}

fn sync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("{}: cannot sync to disk", path.display()))
}

/// Makes renames in `dir` durable (best effort: not every platform can open a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `dir` as the folder it names once made: a `..` after a folder that does not exist yet
/// cancels it (`OUT/new/..` is `OUT`, and `OUT/new` is never made); a `..` after one that
/// exists is left to the file system (it may be a link), and `.` goes.
pub fn where_written(dir: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in dir.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_)))
                    && !out.exists() =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Opens and locks `dir/.lock` and writes this process's id into it; `busy` makes the error
/// when another process holds it (given that process, as far as the file says, and the path).
fn take_lock(dir: &Path, busy: impl Fn(&str, &Path) -> anyhow::Error) -> Result<File> {
    let path = dir.join(".lock");
    let mut file = open_lock_file(&path)
        .with_context(|| format!("{}: cannot open the lock file", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = match holder_pid(&mut file) {
                None => "another process".to_string(),
                Some(pid) => format!("process {pid}"),
            };
            return Err(busy(&holder, &path));
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("{}: cannot lock", path.display()))
        }
    }
    // The pid is for the message above only; the lock itself is the kernel's.
    write_holder_pid(&mut file).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(file)
}

/// A lock file opened to be locked (created if missing, its contents kept: a holder's pid).
pub(super) fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Writes this process's id into a lock file it holds, for [`holder_pid`] of a waiting run.
pub(super) fn write_holder_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())
}

/// The process id a lock file's holder wrote into it, if any.
pub(super) fn holder_pid(file: &mut std::fs::File) -> Option<String> {
    let mut pid = String::new();
    let _ = file.read_to_string(&mut pid);
    let pid = pid.trim();
    (!pid.is_empty()).then(|| pid.to_string())
}
