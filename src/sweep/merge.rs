//! `merge`: shard outputs combined into the results directory a single run gives, after
//! checking that every shard comes from the same resolved spec, made by the same versions of the
//! accelerator model and the numerics, and that together they hold each of the run's points
//! (the count spec.resolved.toml records) exactly once, as a row or a skip line, and that
//! every cell of every row is what its column may hold for that run ([`super::cells`]) and
//! what the front can read ([`super::front_cells`]), reading each file once.

use super::cells::{shown, CellCheck};
use super::front_cells::FrontCells;
use super::outdir::{OutDir, SHARD_FILE};
use super::resolved::{same_run, Check};
use super::write_front;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Combines shard outputs into the results a single run gives. Every shard must come from the
/// same resolved spec (inputs included); a point in two shards must have the same row.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let Some(first) = dirs.first() else {
        bail!("merge: give at least one directory")
    };
    let out = &super::outdir::where_written(out);
    // Publishing into a shard would replace the shard (its shard.toml gone) with the merge.
    if let Ok(o) = std::fs::canonicalize(out) {
        if let Some(d) = dirs
            .iter()
            .find(|d| std::fs::canonicalize(d).is_ok_and(|d| d == o))
        {
            bail!(
                "merge: --out {} is one of the directories merged ({}); give a new directory",
                out.display(),
                d.display()
            );
        }
    }
    // Nothing written may replace a merged file, and nothing deleted may hold a shard.
    let mut inputs = Vec::new();
    for d in dirs {
        let what = format!("a file merged from {}", d.display());
        inputs.push(crate::report::Input::new(
            format!("a directory merged from {}", d.display()),
            d,
        ));
        for name in [
            "results.csv",
            "skipped.csv",
            "spec.resolved.toml",
            SHARD_FILE,
        ] {
            inputs.push(crate::report::Input::new(what.clone(), d.join(name)));
        }
    }
    super::outdir::refuse_foreign("merge: --out", out, &[])?;
    crate::report::refuse_overwriting_inputs(
        &inputs,
        &super::outdir::outputs("merge: --out", out),
    )?;
    let read_resolved = |d: &Path| {
        crate::inputs::read_text(&d.join("spec.resolved.toml")).map_err(|_| unfinished(d))
    };
    let resolved = read_resolved(first)?;
    // What every cell may hold, from the first directory's record (`same_run` below makes it
    // every directory's): headers are checked as each file is read, rows once all are in.
    let recorded = first.join("spec.resolved.toml");
    let shown = recorded.display().to_string();
    let spec = super::resolved::spec_of(&resolved)
        .map_err(|e| anyhow::anyhow!("merge: {shown}: {}", e.message()))?;
    let base = super::resolved::arch_base_of(&resolved)
        .map_err(|e| anyhow::anyhow!("merge: {shown}: arch_base: {}", e.message()))?;
    let mut cells =
        CellCheck::new(&shown, &spec, &base).map_err(|e| anyhow::anyhow!("merge: {e}"))?;
    // The cells the front reads (NaN objectives, the `where` filter), checked in each
    // directory's own rows as they are read (an error names the file merged and its line, not
    // the merged copy) and refused after every other check, before --out is touched.
    let mut front = FrontCells::new(&spec);
    // Each directory's shard.toml (`None`: a whole run, which covers every point itself).
    let mut shard_files = Vec::with_capacity(dirs.len());
    let mut header: Option<csv::ByteRecord> = None;
    let mut rows: BTreeMap<u64, (csv::ByteRecord, PathBuf)> = BTreeMap::new();
    let mut skipped: BTreeMap<u64, (csv::ByteRecord, PathBuf)> = BTreeMap::new();
    // The run's number of points, from the first spec.resolved.toml that records it.
    let mut total: Option<(u64, PathBuf)> = None;
    for d in dirs {
        let (this, other) = (d.display().to_string(), first.display().to_string());
        let text = read_resolved(d)?;
        same_run(
            &text,
            &resolved,
            &Check {
                what: &format!("merge: {this} and {other}"),
                sides: [&this, &other],
                advice: "merge only shards of one run",
                binary_advice: "made by one binary",
            },
        )?;
        if let (None, Some(n)) = (&total, super::resolved::recorded_points(&text)) {
            total = Some((n, d.join("spec.resolved.toml")));
        }
        shard_files.push(read_shard_file(d)?.map(|f| (f, d.as_path())));
        let results = d.join("results.csv");
        let h = gather(&results, &mut rows, "row", Some((&cells, &mut front)))?;
        if header.as_ref().is_some_and(|x| *x != h) {
            bail!("merge: {} has different columns", results.display());
        }
        header = Some(h);
        let sk = d.join("skipped.csv");
        if sk.exists() {
            gather(&sk, &mut skipped, "line", None)?;
        }
    }
    // Every merge, whole runs and shards alike: the count comes from spec.resolved.toml (or,
    // for runs of a binary that did not record it there, from a shard.toml).
    let given: Vec<(ShardFile, &Path)> = shard_files.iter().flatten().copied().collect();
    let total = match (total, given.first()) {
        (Some((n, from)), _) => {
            if let Some((g, d)) = given.iter().find(|(g, _)| g.points != n) {
                bail!(
                    "merge: {}/{SHARD_FILE}: a run of {} points, but {} records {n}",
                    d.display(),
                    g.points,
                    from.display()
                );
            }
            n
        }
        (None, Some((g, _))) => g.points,
        (None, None) => bail!(
            "merge: {}/spec.resolved.toml records no number of points (made by an older lstm-dse) and no shard.toml gives it, so whether every point is there cannot be checked; `lstm-dse sweep SWEEP.toml --resume --out DIR` on it records the count (and recomputes nothing)",
            first.display()
        ),
    };
    if given.len() == dirs.len() {
        every_shard(&given)?;
    }
    cells.points(total);
    cells.versions(
        rows.values()
            .map(|(r, _)| r.get(r.len().saturating_sub(1)).unwrap_or(b"")),
    );
    check_cells(&cells, &rows)?;
    covers_every_point(total, &given, dirs.len(), &rows, &skipped)?;
    let resolved = match super::resolved::recorded_points(&resolved) {
        Some(_) => resolved,
        None => super::resolved::with_points(&resolved, total as usize),
    };
    front.result().map_err(|e| anyhow::anyhow!("merge: {e}"))?;
    let out = OutDir::lock(out)?;
    let written = publish(&out, &resolved, &spec, header.as_ref(), &rows, &skipped);
    if written.is_err() {
        // Nothing half-written is left: the staging folder goes (and the lock with the
        // folder, when this merge made it).
        let _ = std::fs::remove_dir_all(out.staging());
    }
    written
}

type Records = BTreeMap<u64, (csv::ByteRecord, PathBuf)>;

/// Writes the merged files into `out`'s staging folder and publishes them.
fn publish(
    out: &OutDir,
    resolved: &str,
    spec: &super::SweepSpec,
    header: Option<&csv::ByteRecord>,
    rows: &Records,
    skipped: &Records,
) -> Result<()> {
    let s = out.fresh_staging()?;
    // Published whole by `out.publish`; the set names the file a write fails on.
    let mut set = crate::report::Staged::new();
    set.write(&s.join("spec.resolved.toml"), |w| {
        w.write_all(resolved.as_bytes())
    })?;
    set.write_csv(&s.join("results.csv"), |w| {
        if let Some(h) = header {
            w.write_byte_record(h)?;
        }
        rows.values().try_for_each(|(r, _)| w.write_byte_record(r))
    })?;
    if !skipped.is_empty() {
        set.write_csv(&s.join("skipped.csv"), |w| {
            w.write_record(["point", "reason"])?;
            skipped
                .values()
                .try_for_each(|(r, _)| w.write_byte_record(r))
        })?;
    }
    set.commit()?;
    write_front(&s, spec)?;
    out.publish()
}

/// The refusal of a directory without `spec.resolved.toml`: a run that did not finish (its
/// work in `.incomplete/`, with the shard it runs where it recorded it) or no sweep's output.
fn unfinished(d: &Path) -> anyhow::Error {
    let staging = d.join(".incomplete");
    if !staging.join("spec.resolved.toml").is_file() {
        return anyhow::anyhow!("merge: {}: no spec.resolved.toml", d.display());
    }
    let shard = read_shard_file(&staging)
        .ok()
        .flatten()
        .map_or(" --shard i/N".to_string(), |f| {
            format!(" --shard {}/{}", f.shard, f.shards)
        });
    anyhow::anyhow!(
        "merge: {}: its run did not finish (no spec.resolved.toml; its work is in {}): finish it with `lstm-dse sweep SWEEP.toml --resume{shard} --out {}`, then merge",
        d.display(),
        staging.display(),
        d.display()
    )
}

/// The shard `dir` (a results or staging folder) holds, as its `shard.toml` says: `(i, N)`;
/// `None` for a whole run (no `shard.toml`), or one that cannot be read.
pub(super) fn shard_of(dir: &Path) -> Option<(usize, usize)> {
    read_shard_file(dir)
        .ok()
        .flatten()
        .map(|f| (f.shard as usize, f.shards as usize))
}

/// What a shard's `shard.toml` says.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardFile {
    /// Which shard (from 0).
    shard: u64,
    /// Of how many.
    shards: u64,
    /// The run's design points, every shard's together.
    points: u64,
}

/// Writes `shard.toml` into a shard's staging directory `dir`.
pub(super) fn write_shard_file(
    dir: &Path,
    shard: usize,
    shards: usize,
    points: usize,
) -> Result<()> {
    let f = ShardFile {
        shard: shard as u64,
        shards: shards as u64,
        points: points as u64,
    };
    let text = format!(
        "# One shard of a sweep: `lstm-dse merge` checks that the shards it is given cover every point.\n{}",
        toml::to_string(&f)?
    );
    let path = dir.join(SHARD_FILE);
    crate::report::write_atomic(&path, |w| w.write_all(text.as_bytes()))
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// The records of `path` (results.csv or skipped.csv) into `into` by point index: a point
/// already there from another directory must have the same record (`kind`, "row" or "line",
/// names it in the error), and with `cells` (results.csv) the header must be the run's
/// columns ([`check_cells`] checks the rows' cells) and each row goes to the front's check.
/// Returns the file's header.
fn gather(
    path: &Path,
    into: &mut BTreeMap<u64, (csv::ByteRecord, PathBuf)>,
    kind: &str,
    mut cells: Option<(&CellCheck, &mut FrontCells)>,
) -> Result<csv::ByteRecord> {
    let mut rd = crate::inputs::open_csv(path)
        .map(|f| csv::ReaderBuilder::new().flexible(true).from_reader(f))
        .with_context(|| format!("merge: {}: cannot read", path.display()))?;
    let header = rd
        .byte_headers()
        .with_context(|| format!("merge: {}", path.display()))?
        .clone();
    match &mut cells {
        Some((c, front)) => {
            if let Err(problem) = c.header(&header) {
                bail!("merge: {}:1: {problem}", path.display());
            }
            front.header(path, &header);
        }
        None if !header.iter().eq([&b"point"[..], b"reason"]) => bail!(
            "merge: {}:1: the header is `{}`, but skipped.csv's is `point,reason`",
            path.display(),
            header.iter().map(shown).collect::<Vec<_>>().join(",")
        ),
        None => {}
    }
    for rec in rd.byte_records() {
        let rec = rec.with_context(|| format!("merge: {}", path.display()))?;
        // Counted only for a message (it reads the file again).
        let line = || crate::inputs::csv_line(path, rec.position());
        if rec.len() != header.len() {
            bail!(
                "merge: {}:{}: {} fields, the header has {}",
                path.display(),
                line(),
                rec.len(),
                header.len()
            );
        }
        let idx = point_index(rec.get(0).unwrap_or(b"")).map_err(|problem| {
            anyhow::anyhow!(
                "merge: {}:{}: column `point`: {problem}",
                path.display(),
                line()
            )
        })?;
        if cells.is_none() && rec.get(1).is_none_or(|r| r.trim_ascii().is_empty()) {
            bail!(
                "merge: {}:{}: column `reason`: empty, but a skipped point says why",
                path.display(),
                line()
            );
        }
        if let Some((_, front)) = &mut cells {
            front.row(path, &rec);
        }
        if let Some((other, from)) = into.get(&idx) {
            if *other != rec {
                bail!(
                    "merge: {}: line {}: point {idx} differs from its {kind} in {}",
                    path.display(),
                    line(),
                    from.display()
                );
            }
        }
        into.insert(idx, (rec, path.to_path_buf()));
    }
    Ok(header)
}

/// A point index as the sweep writes one (digits, no sign, no leading zero).
fn point_index(c: &[u8]) -> std::result::Result<u64, String> {
    let canonical =
        !c.is_empty() && c.iter().all(u8::is_ascii_digit) && (c[0] != b'0' || c.len() == 1);
    match std::str::from_utf8(c).ok().and_then(|v| v.parse().ok()) {
        Some(i) if canonical => Ok(i),
        _ => Err(format!(
            "`{}` is not a point index (a whole number as the sweep writes it)",
            shown(c)
        )),
    }
}

/// Every cell of every row gathered is what its column may hold: refused naming the file the
/// row came from, its line and the column (the lowest point's first bad cell). A point in
/// several directories has one record, as they are equal. One pass in point order, so that a
/// row is spared the cells it shares with the row before it.
fn check_cells(cells: &CellCheck, rows: &Records) -> Result<()> {
    let mut prev = None;
    let bad = rows
        .iter()
        .find_map(|(&idx, (rec, from))| match cells.row(idx, rec, prev) {
            Ok(()) => {
                prev = Some((idx, rec));
                None
            }
            Err(e) => Some((rec, from, e)),
        });
    if let Some((rec, from, (column, problem))) = bad {
        bail!(
            "merge: {}:{}: column `{column}`: {problem}",
            from.display(),
            crate::inputs::csv_line(from, rec.position())
        );
    }
    Ok(())
}

/// A directory's `shard.toml`, `None` for a whole run.
fn read_shard_file(d: &Path) -> Result<Option<ShardFile>> {
    let path = d.join(SHARD_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = crate::inputs::read_text(&path)
        .with_context(|| format!("merge: {}: cannot read", path.display()))?;
    let f: ShardFile = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("merge: {}: {}", path.display(), e.message()))?;
    if f.shards == 0 || f.shard >= f.shards {
        bail!(
            "merge: {}: shard {} of {} is not a shard",
            path.display(),
            f.shard,
            f.shards
        );
    }
    Ok(Some(f))
}

/// The shards given are of one run (one N, one count of points) and every one of its shards is
/// among them.
fn every_shard(shards: &[(ShardFile, &Path)]) -> Result<()> {
    let (f, first) = shards[0];
    if let Some((g, d)) = shards
        .iter()
        .find(|(g, _)| (g.shards, g.points) != (f.shards, f.points))
    {
        bail!(
            "merge: {}/{SHARD_FILE}: shard {}/{} of {} points, but {}/{SHARD_FILE} is shard {}/{} of {} points; merge the shards of one run",
            d.display(), g.shard, g.shards, g.points, first.display(), f.shard, f.shards, f.points
        );
    }
    let seen: BTreeMap<u64, &Path> = shards.iter().map(|(g, d)| (g.shard, *d)).collect();
    if let Some(i) = (0..f.shards).find(|i| !seen.contains_key(i)) {
        bail!(
            "merge: shard {i}/{} is missing (given: {}); merge every shard of the run",
            f.shards,
            seen.keys()
                .map(|k| format!("{k}/{}", f.shards))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Every point below `total` is in exactly one of the merged results.csv and skipped.csv (a
/// run or shard cut short or emptied by hand, a row of another run, a point listed both with
/// a row and as skipped, are refused), whatever shard.toml the directories have. `shards` are
/// the shard.toml files given, `dirs` the number of directories: when every directory is a
/// shard, a missing point names its shard.
fn covers_every_point(
    total: u64,
    shards: &[(ShardFile, &Path)],
    dirs: usize,
    rows: &BTreeMap<u64, (csv::ByteRecord, PathBuf)>,
    skipped: &BTreeMap<u64, (csv::ByteRecord, PathBuf)>,
) -> Result<()> {
    if let Some((idx, (_, from))) = rows.range(total..).next() {
        bail!(
            "merge: {}: point {idx} is beyond the run's {total} points",
            from.display()
        );
    }
    if let Some((idx, (_, from))) = skipped.range(total..).next() {
        bail!(
            "merge: {}: point {idx} is beyond the run's {total} points",
            from.display()
        );
    }
    if let Some((idx, (_, from))) = skipped.iter().find(|(i, _)| rows.contains_key(i)) {
        bail!(
            "merge: {}: point {idx} is listed as skipped, but has a row in {}; a point is in one of the two",
            from.display(),
            rows[idx].1.display()
        );
    }
    let covered = (rows.len() + skipped.len()) as u64;
    if covered == total {
        return Ok(());
    }
    let missing = (0..total)
        .find(|i| !rows.contains_key(i) && !skipped.contains_key(i))
        .unwrap_or(0);
    match shards.first() {
        Some((f, _)) if shards.len() == dirs => {
            let shard = missing % f.shards;
            let dir = shards
                .iter()
                .find(|(g, _)| g.shard == shard)
                .map_or(String::new(), |(_, d)| format!(" of {}", d.display()));
            bail!(
                "merge: point {missing} is in neither results.csv nor skipped.csv{dir} (shard {shard}/{}): {covered} of {total} points; rerun that shard",
                f.shards
            )
        }
        _ => bail!(
            "merge: point {missing} is in neither results.csv nor skipped.csv of the directories merged: {covered} of {total} points; rerun the sweep or merge every shard"
        ),
    }
}
