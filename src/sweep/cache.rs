//! The precision cache's entries (`--cache`, default `.lstm-dse-cache/`): one file per
//! content hash of a model's precision stage, a checksum line and then one TOML table per
//! option, written and read one option at a time; an entry is taken whole (its options
//! matching the checksum) or not at all.
//!
//! Sweeps started at once on one cache (shards, two sweeps in one directory) compute the same
//! entry only once: a run that misses an entry takes an advisory lock (`flock`) on
//! `<hash>.lock` beside it before computing, and a run that finds it held waits (saying which
//! process holds it) and then takes the entry the other run wrote. The kernel releases the
//! lock of a killed run, so a lock file left behind is simply taken over and the entry
//! computed again. The holder removes the lock file once the entry is in place. Where the file
//! system cannot lock, each run computes its own entry; a run whose write finds another run
//! writing the same entry keeps the options it computed (the same bits) and leaves the write
//! to the other.

use super::options::{fnv_add, PrecisionOption, FNV_INIT};
use serde::{Deserialize, Serialize};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// One option as its own TOML table (`[[option]]` and its keys): an entry is its checksum
/// line, then one such table per option, each written and read on its own, so neither
/// holds more than one option's TOML at a time (a whole entry's document of 50,000 policies
/// took some 20 KB of memory per option to write or read).
#[derive(Serialize)]
struct One<'a> {
    option: [&'a PrecisionOption; 1],
}

#[derive(Deserialize)]
struct OneOwned {
    option: [PrecisionOption; 1],
}

/// Tells the cache key that entries are written as [`One`] tables (older entries, one TOML
/// document, are other keys: misses, not damaged entries).
pub const FORMAT: &str = "cache entries: checksum line, one table per option";

const OPTION_LINE: &str = "[[option]]";

/// [`fnv64`]-style checksum over the options' tables in order (FNV-1a over their text).
fn checksum_of(opts: &[PrecisionOption]) -> anyhow::Result<u64> {
    let mut h = FNV_INIT;
    for o in opts {
        h = fnv_add(h, toml::to_string(&One { option: [o] })?.as_bytes());
    }
    Ok(h)
}

/// What the cache holds under one key.
pub enum Entry {
    Hit(Vec<PrecisionOption>),
    /// Present but not whole (its options do not match their checksum).
    Damaged,
    Missing,
}

/// Reads the entry at `path`, one option's table at a time.
pub fn read(path: &Path) -> anyhow::Result<Entry> {
    use std::io::BufRead;
    let Ok(file) = File::open(path) else {
        return Ok(Entry::Missing);
    };
    let mut lines = std::io::BufReader::new(file).lines();
    let want = match lines.next() {
        Some(Ok(l)) => l
            .strip_prefix("checksum = \"")
            .and_then(|v| v.strip_suffix('"'))
            .and_then(|v| u64::from_str_radix(v, 16).ok()),
        _ => None,
    };
    let Some(want) = want else {
        return Ok(Entry::Missing);
    };
    let (mut opts, mut h, mut table) = (Vec::new(), FNV_INIT, String::new());
    let mut take = |table: &mut String, opts: &mut Vec<PrecisionOption>| -> bool {
        if table.is_empty() {
            return true;
        }
        h = fnv_add(h, table.as_bytes());
        let parsed = toml::from_str::<OneOwned>(table);
        table.clear();
        match parsed {
            Ok(OneOwned { option: [o] }) => {
                opts.push(o);
                true
            }
            Err(_) => false,
        }
    };
    for line in lines {
        let Ok(line) = line else {
            return Ok(Entry::Damaged);
        };
        if line == OPTION_LINE && !take(&mut table, &mut opts) {
            return Ok(Entry::Damaged);
        }
        table.push_str(&line);
        table.push('\n');
    }
    if !take(&mut table, &mut opts) {
        return Ok(Entry::Damaged);
    }
    Ok(if h == want {
        Entry::Hit(opts)
    } else {
        Entry::Damaged
    })
}

/// Writes `opts` as the entry at `path`. Another run writing the same entry at this moment
/// (its temporary file locked) is no failure: it writes the same options.
pub fn write(path: &Path, opts: &[PrecisionOption]) -> anyhow::Result<()> {
    let sum = checksum_of(opts)?;
    let written = crate::report::write_atomic(path, |w| {
        writeln!(w, "checksum = \"{sum:016x}\"")?;
        for o in opts {
            let t = toml::to_string(&One { option: [o] }).map_err(std::io::Error::other)?;
            w.write_all(t.as_bytes())?;
        }
        Ok(())
    });
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => Ok(()),
        // The other run renamed its entry into place first: the same result.
        Err(_) if matches!(read(path)?, Entry::Hit(_)) => Ok(()),
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    }
}

/// The lock on one entry while this run computes it; dropping it removes the lock file and
/// releases the lock.
pub struct Computing {
    path: PathBuf,
    _file: File,
}

impl Drop for Computing {
    fn drop(&mut self) {
        // Removed before the lock is released: a run waiting on it then finds the file gone
        // and opens a new one ([`lock`]).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lock file of the entry at `entry`: `<hash>.lock`.
pub fn lock_path(entry: &Path) -> PathBuf {
    entry.with_extension("lock")
}

/// Takes the lock on the entry at `entry`, waiting while another run holds it (a note says
/// which process, once). `None` where the lock cannot be taken at all (a read-only cache, a
/// file system without locks): the run computes without it.
pub fn lock(entry: &Path) -> Option<Computing> {
    let path = lock_path(entry);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).ok()?;
    }
    let mut said = false;
    loop {
        let mut file = super::outdir::open_lock_file(&path).ok()?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                if !said {
                    let holder = match super::outdir::holder_pid(&mut file) {
                        None => "another run".to_string(),
                        Some(pid) => format!("another run (process {pid})"),
                    };
                    crate::note!(
                        "note: {}: {holder} is computing this precision stage; waiting for it to take its result (it holds {})",
                        entry.display(),
                        path.display()
                    );
                    said = true;
                }
                // Blocks until the holder ends (the kernel releases a killed one's lock).
                if file.lock().is_err() {
                    return None;
                }
            }
            Err(TryLockError::Error(_)) => return None,
        }
        // The holder removes the file before it releases the lock: the one locked must still
        // be the one under that name, else open the new one.
        match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) if same_inode(&a, &b) => {}
            (_, Err(e)) if e.kind() != std::io::ErrorKind::NotFound => return None,
            _ => continue,
        }
        // The pid is for the note above only.
        let _ = super::outdir::write_holder_pid(&mut file);
        return Some(Computing { path, _file: file });
    }
}

#[cfg(unix)]
fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_inode(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}
