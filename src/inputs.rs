//! Reading the files a command is given: regular files only, and no more than the limits allow.
//!
//! A FIFO would block the run before its first byte (opening one waits for a writer) and a
//! device such as `/dev/zero` never ends, so every input read whole is checked to be a
//! regular file (after following links) before it is opened; a CSV read as a stream may also
//! be a pipe ([`open_csv`]). A file read whole is counted against
//! `--max-memory` by its size first ([`crate::limits::check_memory`]). A CSV file is read as a
//! stream, so its size is no bound: [`open_csv`] refuses a line longer than [`MAX_LINE`]
//! instead (a results row is a few hundred bytes), where the parser would otherwise grow one
//! record until memory runs out.
//!
//! Errors are `std::io::Error`s of kind `InvalidInput` with a one-line reason, so each caller
//! names the file as it names any read error.

use std::io::{self, BufRead, Read};
use std::path::Path;

/// The longest line a CSV input may hold: 16 MiB.
pub const MAX_LINE: usize = 16 << 20;

fn refuse(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, reason)
}

/// Checks that `path` names a regular file (links followed); returns its size.
pub fn regular(path: &Path) -> io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(refuse("is a folder, not a file".into()));
    }
    if !meta.is_file() {
        return Err(refuse(
            "is not a regular file (a pipe or a device could block or never end): give a file"
                .into(),
        ));
    }
    Ok(meta.len())
}

/// A regular file's bytes, after counting its size against `--max-memory`.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let len = regular(path)?;
    crate::limits::check_memory(&path.display().to_string(), Some(len as u128))
        .map_err(|e| refuse(e.to_string()))?;
    let mut bytes = Vec::with_capacity(len as usize);
    std::fs::File::open(path)?
        .take(len.saturating_add(1 << 20))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|_| refuse("is not UTF-8 text".into()))
}

/// A file opened for a CSV reader, every line at most [`MAX_LINE`] bytes: a regular file, or
/// a pipe (`pareto /dev/stdin`, `<(...)`: a stream, bounded by its lines). A pipe is opened
/// without waiting for a writer, so a named FIFO that nobody writes reads as empty instead of
/// blocking; devices are refused (they may never end).
pub fn open_csv(path: &Path) -> io::Result<LineBound<std::fs::File>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        if std::fs::metadata(path)?.file_type().is_fifo() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)?;
            // Reads wait for data again once open.
            use std::os::fd::AsRawFd;
            let fd = file.as_raw_fd();
            // SAFETY: fcntl on a descriptor this function owns.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0
            {
                return Err(io::Error::last_os_error());
            }
            return Ok(LineBound::new(file, MAX_LINE));
        }
    }
    regular(path)?;
    Ok(LineBound::new(std::fs::File::open(path)?, MAX_LINE))
}

/// Collapses multi-line library messages (toml, csv) so every error stays one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The line (from 1) a TOML parse error of `text` points at, if it points anywhere.
pub fn toml_line(text: &str, e: &toml::de::Error) -> Option<usize> {
    e.span()
        .map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count())
}

/// The line (from 1) a CSV record of the file at `path` starts on, from its position. The csv
/// crate's own position of a record after blank lines is that of the first blank line (the
/// reader skips them as part of the record), so its line is too small. Counts the line ends
/// (LF, CRLF or a CR alone, as the CSV reader takes them) before the record's first byte:
/// those before its position and the blank lines after it, reading the file again (for an
/// error message only); a file that cannot be read again (a pipe) gets the csv crate's line.
/// 0 without a position.
pub fn csv_line(path: &Path, pos: Option<&csv::Position>) -> u64 {
    let Some(pos) = pos else { return 0 };
    let count = || -> io::Result<u64> {
        regular(path)?;
        let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
        let (mut at, mut ends, mut after_cr) = (0u64, 0u64, false);
        loop {
            let buf = file.fill_buf()?;
            if buf.is_empty() {
                return Ok(ends + 1);
            }
            for (i, &b) in buf.iter().enumerate() {
                let end = b == b'\r' || b == b'\n';
                if at + i as u64 >= pos.byte() && !end {
                    return Ok(ends + 1);
                }
                ends += u64::from(b == b'\r' || (b == b'\n' && !after_cr));
                after_cr = b == b'\r';
            }
            let n = buf.len();
            at += n as u64;
            file.consume(n);
        }
    };
    count().unwrap_or(pos.line())
}

/// A reader that fails once a line (bytes between newlines) grows past `max` bytes.
pub struct LineBound<R> {
    inner: R,
    max: usize,
    /// Bytes since the last newline.
    run: usize,
}

impl<R> LineBound<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineBound { inner, max, run: 0 }
    }
}

impl<R: Read> Read for LineBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            // A CR alone ends a record too (the CSV reader takes CR, LF and CRLF).
            self.run = if b == b'\n' || b == b'\r' {
                0
            } else {
                self.run + 1
            };
            if self.run > self.max {
                return Err(refuse(format!(
                    "holds a line longer than {} MiB: not a CSV table",
                    self.max >> 20
                )));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of a TOML error at the start of a line is that line (counting the lines
    /// before the error's position said the one before).
    #[test]
    fn toml_errors_name_their_line() {
        for (text, line) in [("a = 1\nb = \n", 2), ("x = [\n1,\n2,\n=]", 4), ("= 1", 1)] {
            let e = toml::from_str::<toml::Table>(text).unwrap_err();
            assert_eq!(super::toml_line(text, &e), Some(line), "{text:?}: {e}");
        }
        assert_eq!(super::one_line("a\n  b\tc"), "a b c");
    }

    #[test]
    fn csv_lines_count_blank_lines_and_every_line_end() {
        // The record `3,x` starts on line 4 (after a blank line), 5 after two, and CR or CRLF
        // ends count as LF ends do.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        for (text, want) in [
            ("a,b\n1,2\n\n3,x\n", 4),
            ("a,b\n1,2\n\n\n3,x\n", 5),
            ("a,b\r\n1,2\r\n\r\n3,x\r\n", 4),
            ("a,b\r1,2\r\r3,x\r", 4),
        ] {
            std::fs::write(&path, text).unwrap();
            let mut rd = csv::Reader::from_reader(open_csv(&path).unwrap());
            let rec = rd.records().map(Result::unwrap).last().unwrap();
            assert_eq!(&rec[1], "x");
            assert_eq!(csv_line(&path, rec.position()), want, "{text:?}");
        }
    }

    #[test]
    fn a_line_past_the_bound_fails_and_shorter_ones_pass() {
        let text = b"a,b\n1,2\n".repeat(3);
        let mut ok = String::new();
        LineBound::new(&text[..], 4)
            .read_to_string(&mut ok)
            .unwrap();
        assert_eq!(ok.as_bytes(), &text[..]);
        let long = [b"a,b\n".as_slice(), &[b'x'; 100]].concat();
        assert!(LineBound::new(&long[..], 100)
            .read_to_end(&mut Vec::new())
            .is_ok());
        let e = LineBound::new(&long[..], 99)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn folders_and_devices_are_not_inputs() {
        let e = read(Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        #[cfg(unix)]
        {
            let e = read(Path::new("/dev/zero")).unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{e}");
            assert!(open_csv(Path::new("/dev/zero")).is_err());
        }
    }
}
