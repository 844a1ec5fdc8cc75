//! `merge`: shard outputs combined into the results directory a single run gives, after
//! checking that every shard comes from the same resolved spec, made by the same versions of the
//! accelerator model and the numerics.

use super::outdir::OutDir;
use super::resolved::{same_run, Check};
use super::{write_front, SweepSpec};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Combines shard outputs into the results a single run gives. Every shard must come from the
/// same resolved spec (inputs included); a point in two shards must have the same row.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let Some(first) = dirs.first() else {
        bail!("merge: give at least one directory")
    };
    let read_resolved = |d: &Path| {
        std::fs::read_to_string(d.join("spec.resolved.toml"))
            .with_context(|| format!("merge: {}: no spec.resolved.toml", d.display()))
    };
    let resolved = read_resolved(first)?;
    let mut header: Option<csv::ByteRecord> = None;
    let mut rows: BTreeMap<u64, (csv::ByteRecord, PathBuf)> = BTreeMap::new();
    let mut skipped: BTreeMap<u64, csv::ByteRecord> = BTreeMap::new();
    for d in dirs {
        let (this, other) = (d.display().to_string(), first.display().to_string());
        same_run(
            &read_resolved(d)?,
            &resolved,
            &Check {
                what: &format!("merge: {this} and {other}"),
                sides: [&this, &other],
                advice: "merge only shards of one run",
                binary_advice: "made by one binary",
            },
        )?;
        let results = d.join("results.csv");
        let mut rd = csv::Reader::from_path(&results)
            .with_context(|| format!("merge: {}: cannot read", results.display()))?;
        let h = rd.byte_headers()?.clone();
        if header.as_ref().is_some_and(|x| *x != h) {
            bail!("merge: {} has different columns", results.display());
        }
        header = Some(h);
        for rec in rd.byte_records() {
            let rec = rec.with_context(|| format!("merge: {}", results.display()))?;
            let line = rec.position().map_or(0, |p| p.line());
            let idx: u64 = std::str::from_utf8(rec.get(0).unwrap_or(b""))
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("merge: {}: line {line}: no point index", results.display())
                })?;
            if let Some((other, from)) = rows.get(&idx) {
                if *other != rec {
                    bail!(
                        "merge: {}: line {line}: point {idx} differs from its row in {}",
                        results.display(),
                        from.display()
                    );
                }
            }
            rows.insert(idx, (rec, results.clone()));
        }
        let sk = d.join("skipped.csv");
        if sk.exists() {
            let mut rd = csv::Reader::from_path(&sk)
                .with_context(|| format!("merge: {}: cannot read", sk.display()))?;
            for rec in rd.byte_records() {
                let rec = rec.with_context(|| format!("merge: {}", sk.display()))?;
                let idx: u64 = std::str::from_utf8(rec.get(0).unwrap_or(b""))
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        anyhow::anyhow!("merge: {}: a line without a point index", sk.display())
                    })?;
                skipped.insert(idx, rec);
            }
        }
    }
    let out = OutDir::lock(out)?;
    let s = out.fresh_staging()?;
    crate::report::write_atomic(&s.join("spec.resolved.toml"), |w| {
        w.write_all(resolved.as_bytes())
    })?;
    crate::report::write_csv_atomic(&s.join("results.csv"), |w| {
        if let Some(h) = &header {
            w.write_byte_record(h)?;
        }
        rows.values().try_for_each(|(r, _)| w.write_byte_record(r))
    })?;
    if !skipped.is_empty() {
        crate::report::write_csv_atomic(&s.join("skipped.csv"), |w| {
            w.write_record(["point", "reason"])?;
            skipped.values().try_for_each(|r| w.write_byte_record(r))
        })?;
    }
    #[derive(serde::Deserialize)]
    struct Back {
        spec: SweepSpec,
    }
    let back: Back = toml::from_str(&resolved)?;
    write_front(&s, &back.spec)?;
    out.publish()
}
