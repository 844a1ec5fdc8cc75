//! Writing to the terminal. Results go to stdout through [`out!`]: a failed write is an error
//! the command returns ([`StdoutError`]; `main` ends quietly when the reader went away, as
//! `lstm-dse models | head -1` does). Notices go to stderr through [`note!`], which never
//! fails: a notice that cannot be shown (stderr closed, on a full disk, a pipe whose reader
//! left) must not stop a computation. While the binary draws a progress bar
//! ([`notes_above`]), a notice clears the bar, takes a line of its own and has the bar drawn
//! again below it, instead of landing on the bar's line.

use std::io::Write;
use std::sync::Mutex;

/// The progress bar on screen, if any: weak, so a bar dropped stops taking notices.
static BAR: Mutex<Option<indicatif::WeakProgressBar>> = Mutex::new(None);

/// Notices go above `bar` from now on, while it lives and is not finished (the binary calls it
/// for every bar it draws; the last one given is the one on screen).
pub fn notes_above(bar: &indicatif::ProgressBar) {
    if let Ok(mut slot) = BAR.lock() {
        *slot = Some(bar.downgrade());
    }
}

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

/// Writes `args` and a newline to stderr, ignoring any failure; above the progress bar on
/// screen, if there is one.
pub fn write_note(args: std::fmt::Arguments<'_>) {
    let bar = BAR
        .lock()
        .ok()
        .and_then(|slot| slot.as_ref().and_then(|b| b.upgrade()));
    above(bar.as_ref(), || {
        let _ = writeln!(std::io::stderr().lock(), "{args}");
    });
}

/// Runs `write` (a notice written to the bar's stream) with `bar`, when it is drawn and not
/// finished, cleared from the screen and drawn again after it: the notice gets its own line.
fn above(bar: Option<&indicatif::ProgressBar>, write: impl FnOnce()) {
    match bar {
        Some(b) if !b.is_hidden() && !b.is_finished() => b.suspend(write),
        _ => write(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A terminal that records what is done to it, and the notices written beside it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        fn log(&self, what: String) {
            self.0.lock().unwrap().push(what);
        }
        fn events(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.log(format!("up {n}"));
            Ok(())
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.log(format!("down {n}"));
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.log(format!("line {s}"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.log(format!("str {s}"));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.log("clear".into());
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn drawn_bar(screen: &Screen) -> indicatif::ProgressBar {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(10),
            indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bar.set_style(indicatif::ProgressStyle::with_template("BAR {pos}/{len}").unwrap());
        bar.set_position(3);
        bar.tick();
        bar
    }

    /// A notice written while a bar is drawn: the bar's line is cleared first, the notice
    /// written on it, and the bar drawn again after (on the line below), never the notice
    /// appended to the bar's line.
    #[test]
    fn a_notice_clears_the_bar_and_the_bar_comes_back_below_it() {
        let screen = Screen::default();
        let bar = drawn_bar(&screen);
        let before = screen.events().len();
        assert!(
            screen.events().iter().any(|e| e.contains("BAR 3/10")),
            "{:?}",
            screen.events()
        );
        above(Some(&bar), || screen.log("NOTICE".into()));
        let after = &screen.events()[before..];
        let notice = after.iter().position(|e| e == "NOTICE").unwrap();
        assert!(
            after[..notice].iter().any(|e| e == "clear"),
            "the bar was not cleared before the notice: {after:?}"
        );
        assert!(
            after[notice + 1..].iter().any(|e| e.contains("BAR 3/10")),
            "the bar was not drawn again after the notice: {after:?}"
        );
    }

    /// Without a bar, or with a finished one, the notice is simply written (a finished bar's
    /// last frame stays above the notices after it).
    #[test]
    fn without_a_live_bar_a_notice_is_only_written() {
        let screen = Screen::default();
        let bar = drawn_bar(&screen);
        bar.finish();
        let before = screen.events().len();
        above(Some(&bar), || screen.log("NOTICE".into()));
        above(None, || screen.log("NOTICE".into()));
        assert_eq!(screen.events()[before..], ["NOTICE", "NOTICE"]);
    }

    /// The bar given to [`notes_above`] is the one notices go around, until it is dropped.
    #[test]
    fn notices_go_around_the_bar_given_while_it_lives() {
        let screen = Screen::default();
        let bar = drawn_bar(&screen);
        notes_above(&bar);
        let held = || BAR.lock().unwrap().as_ref().and_then(|b| b.upgrade());
        assert!(held().is_some());
        drop(bar);
        assert!(held().is_none(), "a dropped bar still takes notices");
    }
}
