//! Checkpoints: `results.csv` and `skipped.csv` in the staging directory are the run's
//! progress, indexed by point. Rows are appended in index order in whole chunks, a chunk's
//! skipped points before its rows, so after a kill (at any byte) the files hold every point
//! up to some index, perhaps a cut last line, and perhaps the skipped points of one chunk
//! beyond it.
//!
//! [`verify`] reads them back before anything is appended: the header must be this plan's;
//! every record (a line, or more where a quoted field holds a newline) must be exactly the
//! row (or the skip reason) this plan gives for its point, in increasing point order, without
//! a gap, a duplicate, a point of another shard, a NUL byte or a CR line end. A cut last
//! record is removed; anything else is refused naming the file and line. A finished run's
//! missing skipped.csv is rebuilt from the plan. What it returns is the set of points done, so
//! the run goes on from there.

use super::plan::{Cursor, Outcome, Plan};
use super::row::Row;
use anyhow::{bail, Result};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

pub const SKIPPED_HEADER: &[u8] = b"point,reason\n";

/// The points of one run: `start, start + step, ...` below the plan's total.
#[derive(Debug, Clone, Copy)]
pub struct Points {
    pub start: usize,
    pub step: usize,
    pub total: usize,
}

impl Points {
    fn contains(&self, i: usize) -> bool {
        i < self.total && i >= self.start && (i - self.start).is_multiple_of(self.step)
    }
}

/// What is already done: every point of the run up to and including `through` (none when
/// `None`), and the points in `beyond`.
#[derive(Debug, Default)]
pub struct Done {
    pub through: Option<usize>,
    pub beyond: BTreeSet<usize>,
    pub rows: u64,
}

/// One record of a checkpoint file (a quoted field may hold newlines), with its point.
struct Line<'a> {
    /// The line the record starts on.
    number: usize,
    point: usize,
    text: &'a [u8],
}

/// The end of every record in `bytes` (the index just past its newline): newlines inside a
/// quoted field (`"a\nb"`, a model path or a range value with a newline) are part of it.
fn record_ends(bytes: &[u8]) -> Vec<usize> {
    let (mut quoted, mut ends) = (false, Vec::new());
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => ends.push(i + 1),
            _ => {}
        }
    }
    ends
}

/// Whether an unterminated tail (`bytes` past the last whole record) holds, after its first
/// line, a line that is a whole row by itself (a point index and `fields` fields): then the
/// tail is no record cut by a kill (whose later lines continue one quoted value) but rows
/// after a stray quote. Returns that line's offset from the tail's first line.
fn whole_row_inside(tail: &[u8], fields: usize) -> Option<usize> {
    tail.split(|&b| b == b'\n')
        .skip(1)
        .position(|line| {
            let mut rd = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(line);
            let mut rec = csv::ByteRecord::new();
            matches!(rd.read_byte_record(&mut rec), Ok(true))
                && rec.len() == fields
                && rec
                    .get(0)
                    .is_some_and(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
        })
        .map(|k| k + 1)
}

/// Reads a checkpoint file: checks the header, cuts a partial last record (rewriting the
/// file), and returns the records with their point index. `shown` names the file in messages
/// (the published file a finished run's checkpoint was copied from).
fn lines<'a>(
    path: &Path,
    shown: &Path,
    bytes: &'a mut Vec<u8>,
    header: &[u8],
) -> Result<Vec<Line<'a>>> {
    let name = shown.display();
    let ends = record_ends(bytes);
    let keep = ends.last().copied().unwrap_or(0);
    let fields = header.iter().filter(|&&b| b == b',').count() + 1;
    if let Some(k) = whole_row_inside(&bytes[keep..], fields) {
        // Not a record cut by a kill: a quote that never closes swallowed whole rows.
        let line = 1 + bytes[..keep].iter().filter(|&&b| b == b'\n').count();
        bail!(
            "{name}: line {line}: a quote opened on this line never closes, and line {} after \
             it is a whole row (the file was edited or damaged)",
            line + k
        );
    }
    if keep < bytes.len() {
        // A record cut by a kill while appending: drop it (it is recomputed).
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(keep as u64)?;
        bytes.truncate(keep);
    }
    let bytes: &'a [u8] = bytes;
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if !bytes.starts_with(header) || ends[0] != header.len() {
        bail!("{name}: line 1: the header is not this sweep's columns (a file from another spec or tool version, or edited)");
    }
    let mut out = Vec::new();
    let mut prev: Option<usize> = None;
    let mut number = 2;
    for w in ends.windows(2) {
        // Without its newline.
        let text = &bytes[w[0]..w[1] - 1];
        if text.is_empty() {
            bail!("{name}: line {number}: an empty line");
        }
        if text.contains(&0) {
            bail!("{name}: line {number}: NUL bytes (the file was damaged, e.g. by a crash of the machine)");
        }
        if text.ends_with(b"\r") {
            bail!("{name}: line {number}: a carriage return (CRLF line ends: the file was edited or converted)");
        }
        let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
        let point = std::str::from_utf8(&text[..digits])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|_| text.get(digits) == Some(&b','));
        let Some(point) = point else {
            bail!("{name}: line {number}: does not start with a point index");
        };
        if prev.is_some_and(|p| point <= p) {
            bail!("{name}: line {number}: point {point} comes after point {} (duplicated or reordered rows)", prev.unwrap_or(0));
        }
        prev = Some(point);
        out.push(Line {
            number,
            point,
            text,
        });
        number += 1 + text.iter().filter(|&&b| b == b'\n').count();
    }
    Ok(out)
}

/// The first column where two rows differ, for the message.
fn first_difference(columns: &[String], got: &[u8], want: &[u8]) -> String {
    let (g, w) = (String::from_utf8_lossy(got), String::from_utf8_lossy(want));
    for (k, (a, b)) in g.split(',').zip(w.split(',')).enumerate() {
        if a != b {
            let col = columns.get(k).map_or("?", String::as_str);
            return format!("column `{col}` is '{a}', this run gives '{b}'");
        }
    }
    "the number of columns differs".to_string()
}

/// Where [`verify`]'s files come from.
pub struct Source<'a> {
    /// The staging directory that holds them.
    pub dir: &'a Path,
    /// The directory messages name: `dir`, or the output directory whose published files a
    /// finished run's checkpoint was copied from.
    pub shown: &'a Path,
    /// A finished run's skipped.csv was not there (deleted, or no point was skipped): every
    /// skipped point up to the last row is written afresh rather than refused as missing.
    pub rebuild_skipped: bool,
    /// The files are a finished run's (published): every point of the run must be in them,
    /// so a point missing from either file, past its last line too, is refused.
    pub finished: bool,
}

/// Verifies the checkpoint files of `src` against `plan` (see the module doc) and returns what
/// is done. Every verified row is handed to `row` in order (the front is built from them).
pub fn verify(
    src: &Source,
    plan: &Plan,
    points: Points,
    columns: &[String],
    header: &[u8],
    row: &mut dyn FnMut(&Row) -> Result<()>,
) -> Result<Done> {
    let (dir, shown) = (src.dir, src.shown);
    let (spath_real, rpath_real) = (dir.join("skipped.csv"), dir.join("results.csv"));
    let (rpath, spath) = (shown.join("results.csv"), shown.join("skipped.csv"));
    let mut rbytes = std::fs::read(&rpath_real).unwrap_or_default();
    let mut sbytes = std::fs::read(&spath_real).unwrap_or_default();
    let rows = lines(&rpath_real, &rpath, &mut rbytes, header)?;
    let skips = lines(&spath_real, &spath, &mut sbytes, SKIPPED_HEADER)?;
    // The skip lines of a finished run whose skipped.csv is gone, written once all is verified.
    let mut rebuilt = Vec::new();
    for (file, ls) in [(&rpath, &rows), (&spath, &skips)] {
        if let Some(l) = ls.iter().find(|l| !points.contains(l.point)) {
            bail!(
                "{}: line {}: point {} is not a point of this run ({} points{})",
                file.display(),
                l.number,
                l.point,
                points.total,
                if points.step > 1 {
                    ", this shard's only"
                } else {
                    ""
                }
            );
        }
    }
    let last_row = rows.last().map(|l| l.point);
    let mut last = last_row.max(skips.last().map(|l| l.point));
    if src.finished && points.total > points.start {
        // A finished run's last point: lines cut off its end are missing too.
        last = Some(points.start + (points.total - 1 - points.start) / points.step * points.step);
    }
    let mut done = Done::default();
    let Some(last) = last else {
        return Ok(done);
    };
    let (mut r, mut s) = (rows.iter().peekable(), skips.iter().peekable());
    let mut buf = Vec::new();
    let mut cursor = Cursor::default();
    let mut i = points.start;
    let mut contiguous = true;
    while i <= last {
        let in_rows = r.peek().filter(|l| l.point == i).is_some();
        let in_skips = s.peek().filter(|l| l.point == i).is_some();
        let outcome = plan.outcome(i, &mut cursor);
        match (outcome, in_rows, in_skips) {
            (_, true, true) => {
                let (a, b) = (
                    r.peek().map_or(0, |l| l.number),
                    s.peek().map_or(0, |l| l.number),
                );
                bail!(
                    "{}: line {a}: point {i} is also in {} line {b}",
                    rpath.display(),
                    spath.display()
                );
            }
            (Outcome::Row(want), true, false) => {
                let line = r.next().map_or(&[][..], |l| l.text);
                buf.clear();
                want.write(&mut buf);
                if line != &buf[..buf.len() - 1] {
                    let number = rows.iter().find(|l| l.point == i).map_or(0, |l| l.number);
                    bail!(
                        "{}: line {number}: not the row of point {i}: {}",
                        rpath.display(),
                        first_difference(columns, line, &buf[..buf.len() - 1])
                    );
                }
                row(&want)?;
                done.rows += 1;
            }
            (Outcome::Skipped(why), false, true) => {
                let line = s.next().map_or(&[][..], |l| l.text);
                buf.clear();
                skipped_line(&mut buf, i, &why);
                if line != &buf[..buf.len() - 1] {
                    let number = skips.iter().find(|l| l.point == i).map_or(0, |l| l.number);
                    bail!(
                        "{}: line {number}: point {i}: not the reason this run gives ('{}')",
                        spath.display(),
                        why
                    );
                }
            }
            (Outcome::Row(_), false, true) => {
                let number = skips.iter().find(|l| l.point == i).map_or(0, |l| l.number);
                bail!(
                    "{}: line {number}: point {i} is listed as skipped, but this run costs it",
                    spath.display()
                );
            }
            (Outcome::Skipped(_), true, false) => {
                let number = rows.iter().find(|l| l.point == i).map_or(0, |l| l.number);
                bail!(
                    "{}: line {number}: point {i} has a row, but this run skips it",
                    rpath.display()
                );
            }
            (Outcome::Skipped(why), false, false) if src.rebuild_skipped => {
                skipped_line(&mut rebuilt, i, &why);
            }
            (outcome, false, false) => {
                // Not done: fine only past the last row, and only for a point with a row
                // (a chunk's skipped points are written before its rows).
                let missing = match (outcome, last_row) {
                    (Outcome::Skipped(_), _) => Some(&spath),
                    (_, Some(lr)) if i < lr => Some(&rpath),
                    _ if src.finished => Some(&rpath),
                    _ => None,
                };
                if let (Some(file), true) = (missing, src.finished) {
                    bail!(
                        "{}: point {i} is missing: lines were removed from a finished run's file (delete the file to have it rebuilt, or rerun without --resume)",
                        file.display()
                    );
                }
                if let Some(file) = missing {
                    bail!(
                        "{}: point {i} is missing (before point {last}): lines were removed",
                        file.display()
                    );
                }
                contiguous = false;
                i += points.step;
                continue;
            }
        }
        if contiguous {
            done.through = Some(i);
        } else {
            done.beyond.insert(i);
        }
        i += points.step;
    }
    if !rebuilt.is_empty() {
        append(&spath_real, SKIPPED_HEADER, &rebuilt)
            .map_err(|e| anyhow::anyhow!("{}: {e}", spath_real.display()))?;
    }
    Ok(done)
}

/// A line of `skipped.csv`.
pub fn skipped_line(out: &mut Vec<u8>, point: usize, why: &str) {
    super::row::push_u64(out, point as u64);
    out.push(b',');
    out.extend_from_slice(&super::row::csv_cell(why));
    out.push(b'\n');
}

/// Appends bytes to a checkpoint file (creating it with `header` when it is new or empty).
pub fn append(path: &Path, header: &[u8], bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if f.metadata()?.len() == 0 {
        f.write_all(header)?;
    }
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tail whose later lines continue one quoted value is a cut record; one whose later
    /// lines are rows of their own is damage.
    #[test]
    fn a_stray_quote_is_damage_and_a_cut_value_is_not() {
        // Header of three fields; a cut record whose value holds a newline.
        assert_eq!(whole_row_inside(b"7,\"a\nb", 3), None);
        assert_eq!(whole_row_inside(b"7,\"a\nb\",", 3), None);
        assert_eq!(whole_row_inside(b"7,x", 3), None);
        // A quote inserted into row 7: rows 8 and 9 follow whole.
        assert_eq!(whole_row_inside(b"\"7,x,1\n8,y,2\n9,z,3\n", 3), Some(1));
        assert_eq!(whole_row_inside(b"7,\"x,1\n\n8,y,2\n", 3), Some(2));
    }
}
