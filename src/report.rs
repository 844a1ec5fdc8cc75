//! Output files that appear whole or not at all: each is written to `<name>.partial`, synced
//! to disk and renamed over its final name, so an interrupted or failed run never leaves half
//! a file behind. Every writer of results (CSV, .npy, SVG) goes through here. A link is
//! written through; a pipe or a device (`--output /dev/null`) is written to in place.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `path` with `.partial` appended to its file name.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
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
    // A link is written through (the file it names is replaced, the link stays; a dangling
    // one makes its target); a pipe or a device (`/dev/stdout`, `/dev/null`) is written to in
    // place (renaming over it would replace the node itself, and whole-or-nothing means
    // nothing there); a directory is refused.
    writable(path)?;
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            let mut out =
                std::io::BufWriter::new(std::fs::OpenOptions::new().write(true).open(path)?);
            fill(&mut out)?;
            return out.flush();
        }
    }
    let target;
    let path = if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        target = match std::fs::canonicalize(path) {
            Ok(t) => t,
            // Dangling: the file the link names, relative to the link's folder.
            Err(_) => {
                let to = std::fs::read_link(path)?;
                path.parent().map_or(to.clone(), |d| d.join(&to))
            }
        };
        target.as_path()
    } else {
        path
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = partial_path(path);
    let written = (|| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // A full disk or a failing `fill` must not leave the temporary file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes a CSV file atomically: `fill` writes the records.
pub fn write_csv_atomic(
    path: &Path,
    fill: impl FnOnce(&mut csv::Writer<&mut dyn Write>) -> csv::Result<()>,
) -> std::io::Result<()> {
    write_atomic(path, |out| {
        let mut w = csv::Writer::from_writer(out);
        fill(&mut w).map_err(std::io::Error::other)?;
        w.flush()
    })
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
}
