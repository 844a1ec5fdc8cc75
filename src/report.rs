//! Output files that appear whole or not at all: each is written to a temporary file in its
//! folder (`<name>.partial`, or a short hidden `.<hash>.partial` when that name would pass the
//! file-name limit), synced to disk and renamed over its final name, so an interrupted or
//! failed run never leaves half a file behind. Every writer of results (CSV, .npy, SVG) goes
//! through here. A link is written through; a pipe or a device (`--output /dev/null`) is
//! written to in place.
//!
//! A run holds a lock on each temporary file (`flock`, released when the run ends, however it
//! ends) from before it empties it until it has renamed or removed it: a second run writing
//! the same output meanwhile is refused ("another run is writing it") instead of writing into
//! the same temporary file, which could have renamed a mix of both into place. A file left by
//! a killed run holds no lock and is simply written over.
//!
//! A command that writes several files (`trace`, `dynamic`, `pareto --plot`, the slurm
//! scripts) stages them as one [`Staged`] set: every file is written to its temporary name
//! first, and only when all are written are they renamed into place, so a failure (a full
//! disk) leaves the previous run's set as it was instead of one new file beside old ones.
//!
//! Before any of that, a command checks what it writes against what it reads (`paths`:
//! [`refuse_overwriting_inputs`]). A command that turns on [`remove_partials_on_signal`]
//! (`interrupt`) also removes its temporary files when a signal (Ctrl-C, `kill`) ends it.

use std::io::Write;
use std::path::{Path, PathBuf};

mod interrupt;
mod paths;

pub use interrupt::remove_partials_on_signal;
pub use paths::{
    place, refuse_non_svg, refuse_overwriting_inputs, refuse_shared_outputs, same_file, Input,
    Output, Target,
};

/// Longest file name most file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// The temporary file [`write_atomic`] writes before renaming it to `path`: `path` with
/// `.partial` appended to its file name, or, when that name would be longer than a file name
/// may be, a short hidden name derived from the file name (the same each time, so the next
/// run overwrites one a killed run left).
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    if name.len() <= NAME_MAX {
        return path.with_file_name(name);
    }
    let hash = crate::sweep::fnv64(&[name.as_encoded_bytes()]);
    path.with_file_name(format!(".{hash:016x}.partial"))
}

/// A write that failed, naming the file it was for.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn named(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether [`write_atomic`] can write `path`, without writing: not a directory, and no file
/// where its folder would be (a missing folder is made). For commands that check every output
/// before writing any.
pub fn writable(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    let file_above = path
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
        .find(|d| d.exists());
    match file_above {
        Some(d) if !d.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is a file, not a directory", d.display()),
        )),
        _ => Ok(()),
    }
}

/// Writes a file atomically (creating its directory): `fill` writes the contents.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    // A set of one (the caller names the file in its errors).
    let mut set = Staged::new();
    set.write(path, fill).map_err(|e| e.source)?;
    set.commit().map_err(|e| e.source)
}

/// A temporary file, the file it is to replace, and the file open on it, which holds the
/// lock until it is renamed or removed (dropping the file releases it).
struct Partial {
    tmp: PathBuf,
    to: PathBuf,
    file: std::fs::File,
}

impl Partial {
    /// Removes the temporary file (its lock released after) and takes it off the list.
    fn discard(self) {
        let mut partials = interrupt::partials();
        let _ = std::fs::remove_file(&self.tmp);
        interrupt::forget(&mut partials, &self.tmp);
    }
}

/// Opens `tmp` (made if missing) locked for this run and emptied; refused while another run
/// holds it. Where the file system cannot lock (`flock` unsupported, or no lock manager:
/// ENOLCK on some NFS mounts), unlocked, as before locks. An error leaves no file of this run
/// and never touches another run's.
fn open_locked(tmp: &Path) -> std::io::Result<std::fs::File> {
    loop {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(tmp)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ResourceBusy,
                    format!(
                        "another run is writing it now (its temporary file {} is locked); run again when that one has finished",
                        tmp.display()
                    ),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) if cannot_lock(&e) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // The file locked must still be the one under that name: the run that held it may
        // have renamed it into place or removed it between our open and our lock (then it is
        // not ours to empty); then open again.
        match std::fs::metadata(tmp) {
            Ok(now) if same_inode(&file.metadata()?, &now) => {}
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        if let Err(e) = file.set_len(0) {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        return Ok(file);
    }
}

/// Whether a lock error means this file system cannot lock at all (rather than a failure).
fn cannot_lock(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ENOLCK) {
        return true;
    }
    e.kind() == std::io::ErrorKind::Unsupported
}

/// Writes `path`'s contents to its temporary file (locked: [`open_locked`]), synced, and
/// returns it; `None` when `path` was written in place (a pipe or a device). A failure leaves
/// no temporary file of this run (another run's, which refused it, stays that run's).
fn stage(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<Option<Partial>> {
    // A link is written through (the file it names is replaced, the link stays; a dangling
    // one makes its target); a pipe or a device (`/dev/stdout`, `/dev/null`) is written to in
    // place (renaming over it would replace the node itself, and whole-or-nothing means
    // nothing there); a directory is refused.
    writable(path)?;
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            let mut out =
                std::io::BufWriter::new(std::fs::OpenOptions::new().write(true).open(path)?);
            let written = fill(&mut out).and_then(|()| out.flush());
            return match written {
                // The reader of a pipe went away (`--out /dev/stdout | head -2`): as for
                // stdout (`console`), not a failure of the command.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
                r => r.map(|()| None),
            };
        }
    }
    let path = if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        match std::fs::canonicalize(path) {
            Ok(t) => t,
            // Dangling: the file the link names, relative to the link's folder.
            Err(_) => {
                let to = std::fs::read_link(path)?;
                path.parent().map_or(to.clone(), |d| d.join(&to))
            }
        }
    } else {
        path.to_path_buf()
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = partial_path(&path);
    // Made, locked and listed under the list's lock, which a signal's clean-up takes too:
    // it finds the file listed (and removes it) or not made yet, never made but unlisted, and
    // never lists another run's file (refused here).
    let partial = {
        let mut partials = interrupt::partials();
        let file = open_locked(&tmp)?;
        partials.push(tmp.clone());
        Partial {
            tmp,
            to: path,
            file,
        }
    };
    let written = (|| {
        let mut out = std::io::BufWriter::new(&partial.file);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?;
        partial.file.sync_all()
    })();
    match written {
        Ok(()) => Ok(Some(partial)),
        // A full disk or a failing `fill` must not leave the temporary file behind.
        Err(e) => {
            partial.discard();
            Err(e)
        }
    }
}

/// Whether two metadata name the same file (device and inode). Off Unix (not a target of
/// this tool) always true: there the lock is all there is, and a run that loses the race
/// above could empty another's finished output.
fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// A set of output files that replace the previous ones together or not at all: each
/// [`write`](Staged::write) leaves its file under its temporary name, [`commit`](Staged::commit)
/// renames them all into place. Dropped uncommitted (an error on the way), it removes the
/// temporary files and the previous files stay as they were. Errors name the file.
///
/// The renames themselves are not one step: a crash between two of them (not a full disk: a
/// rename within a folder needs no space) can still leave a mixed set.
#[derive(Default)]
pub struct Staged {
    /// The temporary files with the files they replace, in the order written.
    files: Vec<Partial>,
    /// Files of an earlier set that this one does not replace, removed at commit.
    stale: Vec<PathBuf>,
}

impl Staged {
    pub fn new() -> Staged {
        Staged::default()
    }

    /// Stages `path` (creating its folder): `fill` writes the contents.
    pub fn write(
        &mut self,
        path: &Path,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), WriteError> {
        if let Some(f) = stage(path, fill).map_err(named(path))? {
            self.files.push(f);
        }
        Ok(())
    }

    /// Stages a CSV file: `fill` writes the records.
    pub fn write_csv(
        &mut self,
        path: &Path,
        fill: impl FnOnce(&mut csv::Writer<&mut dyn Write>) -> csv::Result<()>,
    ) -> Result<(), WriteError> {
        self.write(path, csv_fill(fill))
    }

    /// Removes `path` at commit, after the renames: a file of an earlier set that this set
    /// does not replace and must not be read beside it.
    pub fn remove(&mut self, path: &Path) {
        self.stale.push(path.to_path_buf());
    }

    /// Renames every staged file over its final name, in the order written, then removes the
    /// files marked [`remove`](Staged::remove).
    pub fn commit(mut self) -> Result<(), WriteError> {
        let files = std::mem::take(&mut self.files);
        // One lock over all the renames: an interruption finds the set renamed or not.
        let mut partials = interrupt::partials();
        for p in &files {
            interrupt::forget(&mut partials, &p.tmp);
        }
        let mut left = files.iter();
        for p in left.by_ref() {
            if let Err(e) = std::fs::rename(&p.tmp, &p.to) {
                let _ = std::fs::remove_file(&p.tmp);
                left.for_each(|q| {
                    let _ = std::fs::remove_file(&q.tmp);
                });
                return Err(named(&p.to)(e));
            }
        }
        drop(partials);
        for path in std::mem::take(&mut self.stale) {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(named(&path)(e)),
                _ => {}
            }
        }
        // Makes the renames durable (best effort: not every platform opens a folder).
        let mut dirs: Vec<&Path> = files.iter().filter_map(|p| p.to.parent()).collect();
        dirs.dedup();
        for d in dirs {
            let d = if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            };
            if let Ok(f) = std::fs::File::open(d) {
                let _ = f.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.files.drain(..).for_each(Partial::discard);
    }
}

fn csv_fill(
    fill: impl FnOnce(&mut csv::Writer<&mut dyn Write>) -> csv::Result<()>,
) -> impl FnOnce(&mut dyn Write) -> std::io::Result<()> {
    |out| {
        let mut w = csv::Writer::from_writer(out);
        fill(&mut w).map_err(std::io::Error::other)?;
        w.flush()
    }
}

/// Writes a CSV file atomically: `fill` writes the records.
pub fn write_csv_atomic(
    path: &Path,
    fill: impl FnOnce(&mut csv::Writer<&mut dyn Write>) -> csv::Result<()>,
) -> std::io::Result<()> {
    write_atomic(path, csv_fill(fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_left_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.csv");
        write_csv_atomic(&p, |w| w.write_record(["a", "b"])).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b\n");
        let err = write_atomic(&p, |_| Err(std::io::Error::other("boom")));
        assert!(err.is_err());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "a,b\n",
            "a failed write keeps the old file"
        );
        assert!(!partial_path(&p).exists(), "the temporary file is removed");
    }

    #[test]
    fn a_second_run_writing_the_same_file_is_refused_and_a_killed_runs_file_is_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let (p, q) = (dir.path().join("x.csv"), dir.path().join("y.csv"));
        write_atomic(&p, |w| w.write_all(b"old")).unwrap();
        // Another run is writing x.csv: its temporary file is open and locked.
        let other = std::fs::File::create(partial_path(&p)).unwrap();
        other.lock().unwrap();
        std::fs::write(partial_path(&p), b"the other run's half").unwrap();
        let err = write_atomic(&p, |w| w.write_all(b"new")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
        assert!(
            err.to_string().contains("another run is writing it"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(
            std::fs::read_to_string(partial_path(&p)).unwrap(),
            "the other run's half",
            "the other run's file is left to it"
        );
        // A set whose second file is being written by another run is not put in place.
        let mut s = Staged::new();
        s.write(&q, |w| w.write_all(b"new y")).unwrap();
        let err = s.write(&p, |w| w.write_all(b"new")).unwrap_err();
        assert!(
            err.to_string().contains("another run is writing it"),
            "{err}"
        );
        drop(s);
        assert!(!q.exists() && !partial_path(&q).exists());
        // That run was killed: its file holds no lock and is written over.
        drop(other);
        write_atomic(&p, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert!(!partial_path(&p).exists());
    }

    #[test]
    fn two_runs_racing_on_one_file_never_mix_and_only_refuse_as_busy() {
        // Two writers (two open file descriptions, as two processes have) write the same
        // file over and over: each write succeeds or is refused as busy, and the file is
        // always one writer's whole contents (without the lock both wrote into one temporary
        // file). In one process the list's lock orders the opens, so the window between
        // another run's open and lock (a rename meanwhile: open again) is not reached here.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        let contents = |w: u8| vec![b'a' + w; 1 << 16];
        std::thread::scope(|s| {
            for w in 0..2u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..300 {
                        match write_atomic(p, |out| out.write_all(&contents(w))) {
                            Ok(()) => {}
                            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ResourceBusy, "{e}"),
                        }
                        if let Ok(now) = std::fs::read(p) {
                            assert!(now == contents(0) || now == contents(1), "a mixed file");
                        }
                    }
                });
            }
        });
        assert!(!partial_path(&p).exists());
    }

    /// The files of `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_staged_set_is_replaced_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        let mut s = Staged::new();
        s.write(&a, |w| w.write_all(b"old a")).unwrap();
        s.write(&b, |w| w.write_all(b"old b")).unwrap();
        assert!(!a.exists(), "nothing is in place before the commit");
        s.commit().unwrap();
        // The second file fails: the first, already written, does not replace the old one.
        let mut s = Staged::new();
        s.write(&a, |w| w.write_all(b"new a")).unwrap();
        let err = s
            .write(&b, |_| Err(std::io::Error::other("disk full")))
            .unwrap_err();
        assert_eq!(err.to_string(), format!("{}: disk full", b.display()));
        drop(s);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "old b");
        assert_eq!(names(dir.path()), ["a.csv", "b.csv"], "no temporary file");
    }

    #[test]
    fn a_name_near_the_limit_gets_a_short_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(format!("{}.npy", "m".repeat(250)));
        assert!(partial_path(&p).file_name().unwrap().len() <= NAME_MAX);
        write_atomic(&p, |w| w.write_all(b"x")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x");
        assert!(write_atomic(&p, |_| Err(std::io::Error::other("boom"))).is_err());
        assert_eq!(names(dir.path()).len(), 1, "no temporary file");
    }
}
