//! Writing to the terminal. Results go to stdout through [`out!`]: a failed write is an error
//! the command returns ([`StdoutError`]; `main` ends quietly when the reader went away, as
//! `lstm-dse models | head -1` does). Notices go to stderr through [`note!`], which never
//! fails: a notice that cannot be shown (stderr closed, on a full disk, a pipe whose reader
//! left) must not stop a computation.

use std::io::Write;

/// A write to stdout failed.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout: {0}")]
pub struct StdoutError(#[from] pub std::io::Error);

impl StdoutError {
    /// Whether the reader went away (a closed pipe): not a failure of the command.
    pub fn reader_left(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes `args` (and a newline when `line`) to stdout.
pub fn write_out(args: std::fmt::Arguments<'_>, line: bool) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    if line {
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes `args` and a newline to stderr, ignoring any failure.
pub fn write_note(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `println!` to stdout that returns `Result<(), StdoutError>` instead of panicking.
#[macro_export]
macro_rules! out {
    () => {
        $crate::console::write_out(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::console::write_out(format_args!($($arg)*), true)
    };
}

/// `print!` to stdout that returns `Result<(), StdoutError>` instead of panicking.
#[macro_export]
macro_rules! out_part {
    ($($arg:tt)*) => {
        $crate::console::write_out(format_args!($($arg)*), false)
    };
}

/// `eprintln!` that never fails (a notice that cannot be shown is dropped).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::console::write_note(format_args!($($arg)*))
    };
}
