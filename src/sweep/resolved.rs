//! `spec.resolved.toml`, the record of what a run read: the spec with every default filled,
//! a content hash of every input file and the base architecture's values; and the check that
//! refuses to resume or merge runs whose records differ.

use super::{fnv64, SpecError, SweepSpec};
use crate::accel::ArchSpec;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// What `spec.resolved.toml` holds: the spec with every default filled, a content hash of
/// every file it reads, and the base architecture file's values.
#[derive(serde::Serialize)]
pub(super) struct Resolved<'a> {
    pub(super) spec: &'a SweepSpec,
    pub(super) inputs: &'a BTreeMap<String, String>,
    pub(super) arch_base: &'a ArchSpec,
}

/// Content hash of a file for `spec.resolved.toml`: `fnv64:<hex>:<bytes>`.
pub(super) fn content_hash(file: &str, key: &str, path: &str) -> Result<String> {
    let bad = |problem: String| SpecError {
        file: file.to_string(),
        key: key.to_string(),
        problem,
    };
    if Path::new(path).is_dir() {
        return Err(bad(format!("{path}: is a directory, expected a file")).into());
    }
    let bytes = std::fs::read(path).map_err(|e| bad(format!("{path}: {e}")))?;
    Ok(format!("fnv64:{:016x}:{}", fnv64(&[&bytes]), bytes.len()))
}

/// Refuses to continue or combine runs whose resolved specs differ, naming a changed input
/// file first, otherwise the first differing setting.
pub(super) fn same_run(old: &str, new: &str, what: &str, advice: &str) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let inputs = |text: &str| -> BTreeMap<String, String> {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.get("inputs").and_then(|v| v.as_table()).cloned())
            .map(|t| {
                t.into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (a, b) = (inputs(old), inputs(new));
    for (file, hash) in &b {
        match a.get(file) {
            Some(h) if h != hash => bail!(
                "{what}: input {file} changed since then (content hash was {h}, now {hash}); {advice}"
            ),
            None if !a.is_empty() => {
                bail!("{what}: input {file} was not read by that run; {advice}")
            }
            _ => {}
        }
    }
    if a.is_empty() && !b.is_empty() {
        bail!("{what}: that run recorded no content hashes of its inputs, so they cannot be checked; {advice}");
    }
    bail!(
        "{what}: the spec changed since then ({}); {advice}",
        first_difference(old, new)
    )
}

/// The first setting (line) where two resolved specs differ.
fn first_difference(a: &str, b: &str) -> String {
    let (mut section, mut n) = (String::new(), 0);
    for (x, y) in a.lines().zip(b.lines()) {
        n += 1;
        if x.starts_with('[') {
            section = x.to_string();
        }
        if x != y {
            return format!("{section} line {n}: was '{x}', now '{y}'");
        }
    }
    format!("the number of settings (after line {n})")
}
