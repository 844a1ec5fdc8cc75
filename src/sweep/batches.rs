//! Costing and writing the points of a run. This thread costs batch k + 1 (on the rayon pool,
//! in pieces) while a writer thread appends batch k, in order (a batch's skipped points, then
//! its rows: see [`super::checkpoint`]'s module doc). An error on either side stops both;
//! what was appended stays. Each piece also gathers its part of the front (already thinned
//! to the piece's own front) and, for report.html, the few rows the page reads
//! ([`Keep`]), so nothing reads the written results.csv back.

use super::checkpoint;
use super::front::{FrontPart, FrontSpec};
use super::number::Recent;
use super::plan::{Cursor, Outcome, Plan};
use super::Progress;
use anyhow::Result;
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

/// Points per batch appended to the checkpoint files; rayon splits each batch in pieces.
const BATCH: usize = 1 << 16;
const PIECE: usize = 2048;

/// Rows kept for report.html beyond this many bytes are dropped (the page then reads
/// results.csv, as for a resumed run).
const KEEP_BYTES: usize = 64 << 20;

/// Which rows report.html reads ([`crate::view::page::Records`]), when this run writes every
/// row of results.csv and skips no point: row index = point index, so the page's sample (a
/// multiple of `stride`) and the first row of every precision option are known in advance.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub stride: usize,
    /// Points per precision option (a new option starts at each multiple).
    pub per_option: usize,
}

/// A piece's walk over [`Keep`]'s rows (indices must increase): the next multiple of each
/// period, advanced by additions instead of two divisions per point.
struct KeepWalk {
    period: [usize; 2],
    next: [usize; 2],
}

impl KeepWalk {
    fn new(k: Keep, from: usize) -> KeepWalk {
        let period = [k.stride.max(1), k.per_option.max(1)];
        KeepWalk {
            period,
            next: period.map(|p| from.div_ceil(p) * p),
        }
    }

    /// Whether point `i` is kept.
    fn keeps(&mut self, i: usize) -> bool {
        let mut hit = false;
        for (next, period) in self.next.iter_mut().zip(self.period) {
            if *next < i {
                *next = i.div_ceil(period) * period;
            }
            if *next == i {
                hit = true;
                *next += period;
            }
        }
        hit
    }
}

/// What the writer hands back: the front gathered, the points finished (skipped ones
/// included) and the rows kept for the page (`None` when they overflowed).
pub struct Written {
    pub front: FrontPart,
    pub finished: usize,
    pub kept: Option<Vec<(usize, Vec<u8>)>>,
}

/// Where and what the batches go to.
pub struct Sink<'a> {
    pub results: &'a Path,
    pub skipped: &'a Path,
    pub progress: &'a dyn Progress,
    /// Failure wording that says how many points are kept.
    pub kept_error: &'a (dyn Fn(std::io::Error, &Path, usize) -> anyhow::Error + Sync),
}

/// Costs the points of `todo` and appends them; `front` and `finished` are what verifying a
/// resumed run's files gave.
#[allow(clippy::too_many_arguments)]
pub fn cost_and_write(
    todo: impl Iterator<Item = usize>,
    plan: &Plan,
    fspec: &FrontSpec,
    with_front: bool,
    keep: Option<Keep>,
    front: FrontPart,
    finished: usize,
    sink: &Sink,
) -> Result<Written> {
    let pool = Pool::default();
    std::thread::scope(|s| -> Result<Written> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Piece>)>(1);
        let pool = &pool;
        let writer = s.spawn(move || -> Result<Written> {
            let mut w = Written {
                front,
                finished,
                kept: keep.map(|_| Vec::new()),
            };
            let kept_error = sink.kept_error;
            let mut kept_bytes = 0;
            // Both files exist with their headers (made before the first batch).
            let open = |path: &Path| {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| kept_error(e, path, w.finished))
            };
            let (mut f, mut skipped) = (open(sink.results)?, open(sink.skipped)?);
            for (n, pieces) in rx {
                // A failed write keeps the lines written whole before it (a resume verifies
                // them): the count the error gives includes them. A batch's skipped points
                // are written before its rows.
                let (mut skips, mut skip_ends) = (Vec::new(), Vec::new());
                for p in &pieces {
                    let at = skips.len();
                    skips.extend_from_slice(&p.skips);
                    skip_ends.extend(p.skip_ends.iter().map(|end| at + end));
                }
                let before = w.finished;
                write_rows(&mut skipped, &skips, &skip_ends)
                    .map_err(|(e, whole)| kept_error(e, sink.skipped, before + whole))?;
                w.finished += skip_ends.len();
                for p in pieces {
                    write_rows(&mut f, &p.rows, &p.row_ends)
                        .map_err(|(e, whole)| kept_error(e, sink.results, w.finished + whole))?;
                    w.finished += p.row_ends.len();
                    pool.give(p.rows);
                    w.front.join(p.front);
                    if let Some(all) = &mut w.kept {
                        kept_bytes += p.kept.iter().map(|k| k.1.len() + 16).sum::<usize>();
                        all.extend(p.kept);
                    }
                    if kept_bytes > KEEP_BYTES {
                        w.kept = None;
                    }
                }
                debug_assert_eq!(w.finished, before + n, "every point of the batch counted");
                sink.progress.advance(n as u64);
            }
            Ok(w)
        });
        let costed = cost_batches(todo, plan, fspec, with_front, keep, &tx, pool);
        drop(tx);
        let written = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the results writer panicked"))??;
        costed.map(|()| written)
    })
}

/// Row buffers the writer has emptied, for the next pieces (fresh megabyte buffers would be
/// page-faulted in anew for every batch).
#[derive(Default)]
struct Pool(std::sync::Mutex<Vec<Vec<u8>>>);

impl Pool {
    fn take(&self, capacity: usize) -> Vec<u8> {
        let mut v = self
            .0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        v.clear();
        v.reserve(capacity);
        v
    }

    fn give(&self, v: Vec<u8>) {
        if let Ok(mut p) = self.0.lock() {
            p.push(v);
        }
    }
}

/// Writes `rows` (whose lines end at `row_ends`) to `f`; on an error, the error and how many
/// lines were written whole before it.
fn write_rows(
    f: &mut std::fs::File,
    rows: &[u8],
    row_ends: &[usize],
) -> std::result::Result<(), (std::io::Error, usize)> {
    let mut written = 0;
    while written < rows.len() {
        match f.write(&rows[written..]) {
            Ok(0) => {
                let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                return Err((e, row_ends.partition_point(|&end| end <= written)));
            }
            Ok(k) => written += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, row_ends.partition_point(|&end| end <= written))),
        }
    }
    Ok(())
}

/// A piece of a batch: its rows and skipped-point lines (each one's end in `row_ends` and
/// `skip_ends`), its front and its kept rows.
struct Piece {
    rows: Vec<u8>,
    row_ends: Vec<usize>,
    skips: Vec<u8>,
    skip_ends: Vec<usize>,
    front: FrontPart,
    kept: Vec<(usize, Vec<u8>)>,
}

/// Costs the points of `todo` in batches (rayon splits each in pieces) and hands each batch,
/// in order, to the writer; stops at the first error or when the writer has stopped.
fn cost_batches(
    mut todo: impl Iterator<Item = usize>,
    plan: &Plan,
    fspec: &FrontSpec,
    with_front: bool,
    keep: Option<Keep>,
    tx: &std::sync::mpsc::SyncSender<(usize, Vec<Piece>)>,
    pool: &Pool,
) -> Result<()> {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        batch.extend(todo.by_ref().take(BATCH));
        if batch.is_empty() {
            return Ok(());
        }
        let pieces: Vec<Piece> = batch
            .par_chunks(PIECE)
            .map(|piece| {
                // Rows are about 420 bytes; room for more avoids copying as the buffer grows.
                let mut rows = pool.take(piece.len() * 640);
                let (mut skips, mut kept) = (Vec::new(), Vec::new());
                let (mut row_ends, mut skip_ends) = (Vec::with_capacity(piece.len()), Vec::new());
                let (mut part, mut scratch) = (FrontPart::default(), Vec::new());
                let (mut cursor, mut recent) = (Cursor::default(), Recent::default());
                let mut walk = keep.map(|k| KeepWalk::new(k, piece.first().copied().unwrap_or(0)));
                for &i in piece {
                    match plan.outcome(i, &mut cursor) {
                        Outcome::Row(r) => {
                            let start = rows.len();
                            r.write_with(&mut rows, &mut recent);
                            row_ends.push(rows.len());
                            if walk.as_mut().is_some_and(|w| w.keeps(i)) {
                                kept.push((i, rows[start..rows.len() - 1].to_vec()));
                            }
                            if with_front {
                                fspec.add(&mut part, &r, &mut scratch)?;
                            }
                        }
                        Outcome::Skipped(why) => {
                            checkpoint::skipped_line(&mut skips, i, &why);
                            skip_ends.push(skips.len());
                        }
                    }
                }
                fspec.thin(&mut part);
                Ok(Piece {
                    rows,
                    row_ends,
                    skips,
                    skip_ends,
                    front: part,
                    kept,
                })
            })
            .collect::<Result<_>>()?;
        if tx.send((batch.len(), pieces)).is_err() {
            // The writer stopped on an error, which it returns.
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The walk keeps exactly the multiples of either period (the oracle: `%`), from any
        /// start, over increasing indices with gaps.
        #[test]
        fn keep_walk_matches_remainders(
            stride in 1usize..50,
            per_option in 1usize..50,
            from in 0usize..500,
            steps in proptest::collection::vec(1usize..4, 0..300),
        ) {
            let k = Keep { stride, per_option };
            let mut walk = KeepWalk::new(k, from);
            let mut i = from;
            for s in steps {
                let want = i % stride == 0 || i % per_option == 0;
                prop_assert_eq!(walk.keeps(i), want, "point {}", i);
                i += s;
            }
        }
    }
}
