//! Fast passes over a large `results.csv` (hundreds of MB for a million points): the raw
//! bytes of each record, found with `memchr` and a quote toggle, without splitting or
//! validating fields. The page needs only a count, a thinned sample and the rows where the
//! precision option changes, so the few records it reads are parsed with the csv crate and
//! the rest are only delimited.
//!
//! Records are delimited as the csv crate reads them: a `\n` outside a quoted field ends a
//! record (a field is quoted when it starts with `"`; inside, `""` is a quote and a lone `"`
//! closes it), a `\r` before it is dropped, and empty lines are skipped (`tests` compares
//! with the csv crate on random text). A bare `\r` as a line end, which the csv crate also
//! accepts, is not one here: sweeps write `\n`.

use std::io::Read;
use std::path::Path;

/// Calls `f` on every record of the file (header first), in order, with the line it starts
/// on (from 1; every `\n` ends a line, inside quotes too) and its raw bytes without the line
/// end. `f` returns `false` to stop early.
pub fn for_each_record(
    path: &Path,
    mut f: impl FnMut(u64, &[u8]) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    let mut file = crate::inputs::open_csv(path)?;
    let mut buf = vec![0u8; 1 << 20];
    // `buf[..filled]` holds unread bytes; `start` is where the current record begins,
    // `scan` how far it has been scanned and `quoted` the quote state at `scan`.
    let (mut filled, mut start, mut scan, mut quoted) = (0usize, 0usize, 0usize, false);
    // `\n`s before `scan`, and the line the current record starts on.
    let (mut newlines, mut line) = (0u64, 1u64);
    loop {
        if start > 0 {
            buf.copy_within(start..filled, 0);
            (filled, scan, start) = (filled - start, scan - start, 0);
        }
        if filled == buf.len() {
            // One record longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
        }
        let n = file.read(&mut buf[filled..])?;
        let eof = n == 0;
        filled += n;
        while let Some(k) = memchr::memchr2(b'\n', b'"', &buf[scan..filled]) {
            let at = scan + k;
            if buf[at] == b'"' {
                if quoted {
                    // `""` is a quote inside the field; one `"` closes it.
                    match buf.get(at + 1).filter(|_| at + 1 < filled) {
                        Some(b'"') => scan = at + 2,
                        Some(_) => (scan, quoted) = (at + 1, false),
                        None if eof => (scan, quoted) = (at + 1, false),
                        None => break,
                    }
                } else {
                    // A quote opens a field only at its start; elsewhere it is text.
                    quoted = at == start || buf[at - 1] == b',';
                    scan = at + 1;
                }
                continue;
            }
            scan = at + 1;
            newlines += 1;
            if !quoted {
                let mut rec = &buf[start..at];
                if let [head @ .., b'\r'] = rec {
                    rec = head;
                }
                start = scan;
                let at_line = std::mem::replace(&mut line, newlines + 1);
                if !rec.is_empty() && !f(at_line, rec)? {
                    return Ok(());
                }
            }
        }
        if memchr::memchr2(b'\n', b'"', &buf[scan..filled]).is_some() {
            // Stopped at a quote whose next byte is not read yet.
            continue;
        }
        scan = filled;
        if eof {
            let rec = &buf[start..filled];
            if !rec.is_empty() {
                f(line, rec)?;
            }
            return Ok(());
        }
    }
}

/// The number of records after the header.
pub fn count_rows(path: &Path) -> std::io::Result<usize> {
    let mut n = 0usize;
    for_each_record(path, |_, _| {
        n += 1;
        Ok(true)
    })?;
    Ok(n.saturating_sub(1))
}

/// The fields of one record, as the csv crate reads them (a field starting with `"` is
/// quoted: `""` inside is one quote, and text after its closing quote is kept); an error
/// when the record is not UTF-8. (Building a csv reader per record cost more than the whole
/// scan of a million-row file.)
pub fn fields(rec: &[u8]) -> Result<Vec<String>, std::str::Utf8Error> {
    let mut out = Vec::new();
    let mut field = Vec::new();
    let mut i = 0;
    loop {
        field.clear();
        if rec.get(i) == Some(&b'"') {
            i += 1;
            while i < rec.len() {
                match (rec[i], rec.get(i + 1)) {
                    (b'"', Some(b'"')) => {
                        field.push(b'"');
                        i += 2;
                    }
                    (b'"', _) => {
                        i += 1;
                        break;
                    }
                    (c, _) => {
                        field.push(c);
                        i += 1;
                    }
                }
            }
        }
        let end = memchr::memchr(b',', &rec[i.min(rec.len())..]).map_or(rec.len(), |k| i + k);
        field.extend_from_slice(&rec[i.min(end)..end]);
        out.push(std::str::from_utf8(&field)?.to_string());
        if end >= rec.len() {
            return Ok(out);
        }
        i = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Each record's line and fields.
    fn mine(text: &str) -> Vec<(u64, Vec<String>)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, text).unwrap();
        let mut out = Vec::new();
        for_each_record(&p, |line, r| {
            out.push((line, fields(r).unwrap()));
            Ok(true)
        })
        .unwrap();
        out
    }

    fn oracle(text: &str) -> Vec<Vec<String>> {
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        rd.records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect()
    }

    fn fields_only(records: Vec<(u64, Vec<String>)>) -> Vec<Vec<String>> {
        records.into_iter().map(|(_, f)| f).collect()
    }

    /// The line a record starts on, past blank lines, CRLF ends and line ends inside quotes.
    /// (The csv crate's own position of a record after a blank line is the blank line's.)
    #[test]
    fn records_start_on_their_lines() {
        let text = "h\n\na,\"x\ny\"\r\nb\n\n\nc";
        let lines: Vec<u64> = mine(text).iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 3, 5, 8]);
    }

    proptest! {
        /// Record boundaries and fields against the csv crate reading the whole text, on
        /// text with quotes, commas, blank lines and CRLF ends.
        #[test]
        fn records_like_the_csv_crate(text in "(([a-c,]{0,4}|\"[a-c,\n]{0,3}\"|\"|\"\"){0,3}(\n|\r\n|\n\n)){0,12}[a-c\"]{0,2}") {
            prop_assert_eq!(fields_only(mine(&text)), oracle(&text));
        }
    }

    #[test]
    fn long_records_grow_the_buffer() {
        let long = "a".repeat(3 << 20);
        let text = format!("h\n{long},\"x\ny\"\n1\n");
        assert_eq!(fields_only(mine(&text)), oracle(&text));
    }
}
