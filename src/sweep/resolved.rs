//! `spec.resolved.toml`, the record of what a run read and what made its rows: the versions
//! of the accelerator model and of the numerics, the spec with every default filled, a
//! content hash of every input file and the base architecture's values; and the check that
//! refuses to resume or merge runs whose records differ.

use super::{fnv64, SpecError, SweepSpec, NUMERICS_VERSION};
use crate::accel::{ArchSpec, MODEL_VERSION};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The spec a `spec.resolved.toml` (its `text`) records.
pub fn spec_of(text: &str) -> Result<SweepSpec, toml::de::Error> {
    #[derive(serde::Deserialize)]
    struct Back {
        spec: SweepSpec,
    }
    toml::from_str::<Back>(text).map(|b| b.spec)
}

/// The base architecture's values a `spec.resolved.toml` (its `text`) records.
pub(super) fn arch_base_of(text: &str) -> Result<ArchSpec, toml::de::Error> {
    #[derive(serde::Deserialize)]
    struct Back {
        arch_base: ArchSpec,
    }
    toml::from_str::<Back>(text).map(|b| b.arch_base)
}

/// What `spec.resolved.toml` holds: the versions that made the rows, the spec with every
/// default filled, a content hash of every file it reads, and the base architecture file's
/// values.
#[derive(serde::Serialize)]
pub(super) struct Resolved<'a> {
    pub(super) versions: Versions,
    pub(super) spec: &'a SweepSpec,
    pub(super) inputs: &'a BTreeMap<String, String>,
    pub(super) arch_base: &'a ArchSpec,
}

/// The versions of the code that make a run's rows (`[versions]`): a change to either changes
/// figures under the same spec and inputs. Not the crate version, which changes for reasons
/// unrelated to the rows.
#[derive(serde::Serialize)]
pub(super) struct Versions {
    /// [`MODEL_VERSION`]: the accelerator model that costs every point.
    pub(super) accel_model: u32,
    /// [`NUMERICS_VERSION`]: the numerics behind the precision options' figures.
    pub(super) numerics: u32,
}

/// This binary's versions.
pub(super) const VERSIONS: Versions = Versions {
    accel_model: MODEL_VERSION,
    numerics: NUMERICS_VERSION,
};

/// The keys of `[versions]` as [`same_run`] names them.
const VERSION_NAMES: [(&str, &str); 2] = [
    ("accel_model", "accelerator model"),
    ("numerics", "numerics"),
];

/// How [`same_run`] names the two records it compares and what to do about a difference.
pub(super) struct Check<'a> {
    /// The start of every message: the command and its directories.
    pub(super) what: &'a str,
    /// The older record and the one it is checked against, as the version messages name them.
    pub(super) sides: [&'a str; 2],
    /// What to do about any difference.
    pub(super) advice: &'a str,
    /// What else to do when different binaries made the two.
    pub(super) binary_advice: &'a str,
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
    let bytes = crate::inputs::read(Path::new(path)).map_err(|e| bad(format!("{path}: {e}")))?;
    Ok(format!("fnv64:{:016x}:{}", fnv64(&[&bytes]), bytes.len()))
}

/// Refuses to continue or combine runs whose resolved specs differ, naming a different
/// version of the model or numerics first (the binaries differ, whatever else does), then a
/// changed input file, otherwise the first differing setting.
pub(super) fn same_run(old: &str, new: &str, c: &Check) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let (what, advice) = (c.what, c.advice);
    match (recorded_points(old), recorded_points(new)) {
        // A record made before the count was kept is the same run when all else is.
        (Some(_), None) | (None, Some(_)) if without_points(old) == without_points(new) => {
            return Ok(())
        }
        (Some(x), Some(y)) if x != y && without_points(old) == without_points(new) => bail!(
            "{what}: {} has {x} points, {} has {y} (a --smoke run beside a full one?); {advice}",
            c.sides[0],
            c.sides[1]
        ),
        _ => {}
    }
    let table = |text: &str, side: &str| -> Result<toml::Table> {
        if text.trim().is_empty() {
            bail!("{what}: {side}'s spec.resolved.toml is empty; {advice}");
        }
        toml::from_str(text).map_err(|e| {
            let e = e.message().replace('\n', " ");
            anyhow::anyhow!("{what}: {side}'s spec.resolved.toml is not valid TOML ({e}); {advice}")
        })
    };
    let (a, b) = (table(old, c.sides[0])?, table(new, c.sides[1])?);
    same_versions(&a, &b, c)?;
    let (a, b) = (recorded_inputs(&a), recorded_inputs(&b));
    for (file, hash) in &b {
        match a.get(file) {
            Some(h) if h != hash => bail!("{}", changed_input(what, file, h, hash, "then", advice)),
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

/// The content hashes under `[inputs]` of a resolved spec, by path.
fn recorded_inputs(t: &toml::Table) -> BTreeMap<String, String> {
    t.get("inputs")
        .and_then(|v| v.as_table())
        .map(|t| {
            t.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The refusal of an input whose content hash changed `since` a run.
fn changed_input(
    what: &str,
    file: &str,
    was: &str,
    now: &str,
    since: &str,
    advice: &str,
) -> String {
    format!(
        "{what}: input {file} changed since {since} (content hash was {was}, now {now}); {advice}"
    )
}

/// Refuses to rerun a finished sweep's precision stage (`report` and `plot trace` do, for
/// the one sequence they show) on inputs that changed since the sweep: every file it reads for
/// `models` (each model and its external data, the input and the labels) that `[inputs]` of
/// the run's `spec.resolved.toml` (`resolved`, read from `file`) records is hashed again and
/// compared, as `--resume` and `merge` compare them ([`same_run`]). A file that is not there
/// is left to its reader, which names it.
pub fn unchanged_inputs(
    file: &str,
    resolved: &str,
    spec: &SweepSpec,
    models: &[&String],
) -> Result<()> {
    let table: toml::Table = toml::from_str(resolved)
        .map_err(|e| anyhow::anyhow!("{file}: {}", e.message().replace('\n', " ")))?;
    let recorded = recorded_inputs(&table);
    if recorded.is_empty() {
        return Ok(());
    }
    let w = &spec.workload;
    let mut paths: Vec<String> = Vec::new();
    for m in models.iter().filter(|m| !m.starts_with("builtin:")) {
        paths.push(m.to_string());
        paths.extend(
            super::models::model_data_files(m)
                .iter()
                .map(|d| d.display().to_string()),
        );
    }
    paths.extend(w.input.iter().chain(&w.labels).cloned());
    for path in paths {
        let Some(was) = recorded.get(&path) else {
            continue;
        };
        if !Path::new(&path).exists() {
            continue;
        }
        let now = content_hash(file, "inputs", &path)?;
        if now != *was {
            bail!(
                "{}",
                changed_input(
                    file,
                    &path,
                    was,
                    &now,
                    "the sweep",
                    "its precision stage would be drawn from other contents than the run's results: restore the file, or run the sweep again"
                )
            );
        }
    }
    Ok(())
}

/// How [`with_points`] records the number of points: the last table of the file.
const POINTS_TABLE: &str = "\n[plan]\npoints = ";

/// `spec.resolved.toml`'s text with the run's number of points (every shard's together)
/// appended, so that `merge` can tell whether the directories it is given cover every point.
pub(super) fn with_points(text: &str, points: usize) -> String {
    format!("{text}{POINTS_TABLE}{points}\n")
}

/// The number of points a `spec.resolved.toml` records (`None` before it was recorded).
pub fn recorded_points(text: &str) -> Option<u64> {
    let i = text.rfind(POINTS_TABLE)?;
    text[i + POINTS_TABLE.len()..].trim_end().parse().ok()
}

/// The text without the record of [`with_points`].
fn without_points(text: &str) -> &str {
    text.rfind(POINTS_TABLE).map_or(text, |i| &text[..i])
}

/// Refuses records made by different versions of the accelerator model or the numerics, or
/// one made before versions were recorded.
fn same_versions(a: &toml::Table, b: &toml::Table, c: &Check) -> Result<()> {
    let (what, advice, binary_advice) = (c.what, c.advice, c.binary_advice);
    let mut recorded = Vec::new();
    for (t, side) in [(a, c.sides[0]), (b, c.sides[1])] {
        match t.get("versions").and_then(|v| v.as_table()) {
            Some(v) => recorded.push(v),
            None => bail!(
                "{what}: {side} was made before versions were recorded (no [versions] in its spec.resolved.toml), so which accelerator model made its rows cannot be checked; {advice} ({binary_advice})"
            ),
        }
    }
    let [old_side, new_side] = c.sides;
    for (key, name) in VERSION_NAMES {
        let version = |v: &toml::Table| v.get(key).map_or("none".to_string(), |x| x.to_string());
        let (x, y) = (version(recorded[0]), version(recorded[1]));
        if x != y {
            bail!(
                "{what}: {old_side} was made by {name} version {x}, {new_side} has version {y}; {advice} ({binary_advice})"
            );
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const MERGE: Check = Check {
        what: "merge: a and b",
        sides: ["a", "b"],
        advice: "merge only shards of one run",
        binary_advice: "made by one binary",
    };

    fn record(versions: Option<(u32, u32)>, seq_len: u32) -> String {
        let head = versions.map_or(String::new(), |(m, n)| {
            format!("[versions]\naccel_model = {m}\nnumerics = {n}\n\n")
        });
        format!("{head}[spec]\nname = \"x\"\nseq_len = {seq_len}\n")
    }

    fn refusal(old: &str, new: &str) -> String {
        same_run(old, new, &MERGE).unwrap_err().to_string()
    }

    #[test]
    fn versions_are_named_before_the_settings() {
        let err = refusal(&record(Some((1, 5)), 20), &record(Some((1, 6)), 30));
        assert!(
            err.contains("a was made by numerics version 5, b has version 6;")
                && err.ends_with("(made by one binary)"),
            "{err}"
        );
        let err = refusal(&record(Some((2, 5)), 20), &record(Some((1, 5)), 20));
        assert!(
            err.contains("a was made by accelerator model version 2, b has version 1;"),
            "{err}"
        );
        for (old, new, side) in [(None, Some((1, 5)), "a"), (Some((1, 5)), None, "b")] {
            let err = refusal(&record(old, 20), &record(new, 20));
            assert!(
                err.contains(&format!("{side} was made before versions were recorded")),
                "{err}"
            );
        }
        let err = refusal(&record(Some((1, 5)), 20), &record(Some((1, 5)), 30));
        assert!(
            err.contains("the spec changed") && err.contains("seq_len"),
            "{err}"
        );
        assert!(same_run(&record(None, 20), &record(None, 20), &MERGE).is_ok());
    }

    #[test]
    fn the_point_count_is_recorded_and_compared() {
        let plain = record(Some((1, 5)), 20);
        let (a, b) = (with_points(&plain, 12), with_points(&plain, 4));
        assert_eq!(recorded_points(&a), Some(12));
        assert_eq!(recorded_points(&plain), None);
        assert!(toml::from_str::<toml::Table>(&a).is_ok(), "{a}");
        // A record of an older binary, without the count, is the same run.
        assert!(same_run(&plain, &a, &MERGE).is_ok());
        assert!(same_run(&a, &plain, &MERGE).is_ok());
        let err = refusal(&a, &b);
        assert!(err.contains("a has 12 points, b has 4"), "{err}");
        let err = refusal(&a, &with_points(&record(Some((1, 5)), 30), 12));
        assert!(err.contains("seq_len"), "{err}");
    }
}
