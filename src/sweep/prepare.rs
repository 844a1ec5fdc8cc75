//! The validation stage: reads a sweep file, checks it once (models, objectives, every range
//! value turned into a typed override) and renders what it resolved to, before any point.

use super::resolved::{content_hash, Resolved, VERSIONS};
use super::row::{self, columns, Axes, Col, TextCell};
use super::{ranges, spec, SpecError, SweepSpec};
use crate::accel::{self, ArchSpec, Override};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything decided before the first point.
pub(super) struct Prepared {
    pub(super) spec: SweepSpec,
    pub(super) file: String,
    pub(super) axes: Axes,
    pub(super) base: ArchSpec,
    /// The architecture `speedup` and `energy_saving` compare with (`arch.baseline`, or the
    /// base).
    pub(super) baseline: accel::Arch,
    pub(super) resolved: String,
    pub(super) columns: Vec<String>,
    pub(super) kinds: Vec<Col>,
    /// Every column the front reads, with the key naming it (`pareto.minimize`, ...).
    pub(super) uses: Vec<(&'static str, String)>,
}

pub(super) fn prepare(path: &Path, smoke: bool) -> Result<Prepared> {
    let file = path.display().to_string();
    let mut spec = spec::load(path)?;
    let bad = |key: &str, problem: String| SpecError {
        file: file.clone(),
        key: key.into(),
        problem,
    };
    if spec.workload.batch == 0 {
        return Err(bad(
            "workload.batch",
            "0: give at least 1 sequence in flight".into(),
        )
        .into());
    }
    // Generated inputs need a sequence and a step (an input file brings its own).
    if spec.workload.input.is_none() {
        for (key, n) in [
            ("workload.sequences", spec.workload.sequences),
            ("workload.steps", spec.workload.steps),
        ] {
            if n == 0 {
                let problem = "0: generated inputs need at least 1 (or give workload.input)";
                return Err(bad(key, problem.into()).into());
            }
        }
    }
    let tolerance = spec.precision.tolerance;
    if !tolerance.is_finite() || tolerance <= 0.0 {
        return Err(bad(
            "precision.tolerance",
            format!("{tolerance}: give a finite number > 0"),
        )
        .into());
    }
    if spec.workload.models.is_empty() {
        return Err(bad("workload.models", "no model given".into()).into());
    }
    if spec.precision.fixed.is_empty() && spec.precision.levels.is_empty() {
        return Err(bad(
            "precision",
            "give fixed configs and/or dynamic levels".into(),
        )
        .into());
    }
    if spec.pareto.minimize.is_empty() && spec.pareto.maximize.is_empty() {
        return Err(bad(
            "pareto",
            "give at least one objective (minimize or maximize)".into(),
        )
        .into());
    }
    check_lists(&spec).map_err(|(key, problem)| bad(key, problem))?;
    if spec.arch.ranges.len() > row::MAX_KEYS {
        return Err(bad("arch.ranges", format!("more than {} keys", row::MAX_KEYS)).into());
    }
    if smoke {
        spec.workload.sequences = spec.workload.sequences.min(4);
        spec.workload.steps = spec.workload.steps.min(6);
        if !spec.precision.thresholds.is_empty() {
            let first: Vec<&str> = spec.precision.thresholds.split(',').take(1).collect();
            spec.precision.thresholds = first.join(",");
        }
    }
    // Every file the run reads, with its content hash (provenance, checked by resume/merge).
    let mut inputs = BTreeMap::new();
    let w = &spec.workload;
    let mut files: BTreeMap<PathBuf, &String> = BTreeMap::new();
    for m in w.models.iter().filter(|m| !m.starts_with("builtin:")) {
        inputs.insert(m.clone(), content_hash(&file, "workload.models", m)?);
        for data in super::models::model_data_files(m) {
            let data = data.display().to_string();
            let hash = content_hash(&file, "workload.models", &data)?;
            inputs.insert(data, hash);
        }
        // One file under two spellings (`m.onnx`, `./m.onnx`, a link) is listed twice too.
        if let Ok(real) = std::fs::canonicalize(spec::resolve_path(m)) {
            if let Some(first) = files.insert(real, m) {
                let problem = format!("'{first}' and '{m}' are the same file, listed twice");
                return Err(bad("workload.models", problem).into());
            }
        }
    }
    for (key, p) in [
        ("workload.input", &w.input),
        ("workload.labels", &w.labels),
        ("arch.baseline", &spec.arch.baseline),
    ] {
        if let Some(p) = p {
            inputs.insert(p.clone(), content_hash(&file, key, p)?);
        }
    }
    inputs.insert(
        spec.arch.base.clone(),
        content_hash(&file, "arch.base", &spec.arch.base)?,
    );
    let base = accel::load_arch(Path::new(&spec.arch.base))
        .map_err(|e| bad("arch.base", e.to_string()))?;
    let baseline = match &spec.arch.baseline {
        Some(b) => accel::load_arch(Path::new(b))
            .and_then(|a| accel::Arch::from_spec(&a, b))
            .map_err(|e| bad("arch.baseline", e.to_string()))?,
        None => accel::Arch::from_spec(&base, &spec.arch.base)
            .map_err(|e| bad("arch.base", e.to_string()))?,
    };
    // Every value of every range, checked once and turned into a typed override.
    let keys: Vec<String> = spec.arch.ranges.keys().cloned().collect();
    let mut raw = Vec::with_capacity(keys.len());
    for k in &keys {
        // A key is a field's name exactly: `" compute.units"` beside `"compute.units"` swept
        // the field twice, under a column named with the space.
        if k.trim() != k {
            return Err(bad(
                &format!("arch.ranges.\"{k}\""),
                format!(
                    "'{k}' is not a field name: it has leading or trailing whitespace (write '{}')",
                    k.trim()
                ),
            )
            .into());
        }
        let v = super::ranges::expand(&file, k, &spec.arch.ranges[k])?;
        if let Some(d) = first_repeat(v.iter()) {
            return Err(bad(
                &format!("arch.ranges.\"{k}\""),
                format!("the value {d} is listed twice (every point would be costed twice)"),
            )
            .into());
        }
        raw.push(v);
    }
    // A smoke run checks every value but runs the first two of each range.
    let smoke_size: Vec<Vec<String>>;
    spec::check_size(
        &file,
        &spec,
        if smoke {
            smoke_size = raw.iter().map(|v| v[..v.len().min(2)].to_vec()).collect();
            &smoke_size
        } else {
            &raw
        },
    )?;
    let (mut values, mut overrides) = (Vec::new(), Vec::new());
    for (k, texts) in keys.iter().zip(raw) {
        let (mut v, mut o) = typed_values(&file, &spec.arch.base, &base, k, &texts)?;
        if smoke {
            v.truncate(2);
            o.truncate(2);
            // The resolved spec records what a smoke run runs: each range's first two values
            // (it recorded the whole ranges, so it did not reproduce the run).
            let first = v.iter().map(|t| spec::Value::from_text(t)).collect();
            spec.arch
                .ranges
                .insert(k.clone(), spec::RangeSpec::List(first));
        }
        values.push(v.into_iter().map(TextCell::new).collect::<Vec<_>>());
        overrides.push(o);
    }
    let axes = Axes {
        keys,
        values,
        overrides,
    };
    if let Some((key, problem)) = super::skips::every_point_skipped(&spec, &base, &axes) {
        return Err(bad(key, problem).into());
    }
    let columns = columns(&axes.keys);
    let kinds = row::kinds(axes.keys.len());
    // Objectives and constraints must name numeric columns: said now, not after the run.
    let text_column = |c: usize| -> Option<String> {
        match kinds[c] {
            Col::Lead(i) if i < 3 => Some("holds text, not numbers".into()),
            Col::ConfigHash | Col::ToolVersion => Some("holds text, not numbers".into()),
            Col::Arch(k) => axes.values[k]
                .iter()
                .find(|v| v.number.is_err())
                .map(|v| format!("has the value '{}', not a number", v.raw)),
            _ => None,
        }
    };
    let mut uses: Vec<(&'static str, String)> = Vec::new();
    for (key, names) in [
        ("pareto.minimize", &spec.pareto.minimize),
        ("pareto.maximize", &spec.pareto.maximize),
    ] {
        for c in names {
            if let Some((other, _)) = uses.iter().find(|(_, u)| u == c) {
                return Err(bad(
                    key,
                    format!("objective '{c}' is already an objective in {other}"),
                )
                .into());
            }
            let Some(i) = columns.iter().position(|x| x == c) else {
                return Err(bad(
                    key,
                    format!(
                        "objective '{c}' names no column (columns: {})",
                        columns.join(", ")
                    ),
                )
                .into());
            };
            if let Some(problem) = text_column(i) {
                return Err(bad(key, format!("column '{c}' {problem}")).into());
            }
            if kinds[i] == Col::Point {
                let problem = "numbers the rows, it is not a result to optimize";
                return Err(bad(key, format!("column '{c}' {problem}")).into());
            }
            uses.push((key, columns[i].clone()));
        }
    }
    if let Some(f) = &spec.pareto.filter {
        let filter = crate::pareto::Filter::parse(f, &columns)
            .map_err(|e| bad("pareto.where", e.to_string()))?;
        for &i in filter.columns() {
            if let Some(problem) = text_column(i) {
                return Err(
                    bad("pareto.where", format!("column '{}' {problem}", columns[i])).into(),
                );
            }
            uses.push(("pareto.where", columns[i].clone()));
        }
    }
    let resolved = toml::to_string(&Resolved {
        versions: VERSIONS,
        spec: &spec,
        inputs: &inputs,
        arch_base: &base,
    })?;
    Ok(Prepared {
        spec,
        file,
        axes,
        base,
        baseline,
        resolved,
        columns,
        kinds,
        uses,
    })
}

/// The values of range `k` (its expanded `texts`) read by the field: each value's canonical
/// text (what `results.csv` holds) and its typed override. A value the field refuses, by its
/// own bounds too, or two spellings of one value are refused, naming `file` and the key.
pub(super) fn typed_values(
    file: &str,
    base_origin: &str,
    base: &ArchSpec,
    k: &str,
    texts: &[String],
) -> Result<(Vec<String>, Vec<Override>), SpecError> {
    let bad = |key: &str, problem: String| SpecError {
        file: file.to_string(),
        key: key.into(),
        problem,
    };
    // A range value's error names the spec's key and the value (not `--set`, the flag that
    // shares the parser); a TOML nan reaches here as the text NaN.
    let value_error = |text: &str, e: accel::AccelError| {
        let problem = match e {
            _ if text == "NaN" => "not a number".to_string(),
            accel::AccelError::Set { message, .. } => message,
            e => e.to_string(),
        };
        bad(
            &format!("arch.ranges.\"{k}\""),
            format!("the value {text}: {problem}"),
        )
    };
    let o = texts
        .iter()
        .map(|v| Override::parse(base, k, v).map_err(|e| value_error(v, e)))
        .collect::<Result<Vec<_>, _>>()?;
    // A value its field refuses by itself would only skip every point that has it (the
    // fields it is compared with are set to values that pass, so only its own bounds
    // speak).
    let loose = accel::loosened_for(base, k);
    for (o, text) in o.iter().zip(texts) {
        let mut probe = loose.clone();
        o.apply(&mut probe).map_err(|e| value_error(text, e))?;
        if let Err(accel::AccelError::Invalid { field, message, .. }) =
            accel::Arch::from_spec(&probe, base_origin)
        {
            if field == *k {
                return Err(bad(
                    &format!("arch.ranges.\"{k}\""),
                    format!("{message} (the value {text})"),
                ));
            }
        }
    }
    // Values are compared, written and recorded as the field reads them (`"0x4"` is 4,
    // `"tiled "` is tiled): two spellings of one value would cost its points twice.
    let v: Vec<String> = o
        .iter()
        .zip(texts)
        .map(|(o, t)| ranges::canonical(o, t))
        .collect();
    let mut seen = BTreeMap::new();
    for (text, c) in texts.iter().zip(&v) {
        if let Some(first) = seen.insert(c, text) {
            let spelled = if first == text {
                c.to_string()
            } else {
                format!("{c} (as '{first}' and '{text}')")
            };
            return Err(bad(
                &format!("arch.ranges.\"{k}\""),
                format!("the value {spelled} is listed twice (every point would be costed twice)"),
            ));
        }
    }
    Ok((v, o))
}

/// The first value of `values` that an earlier one equals.
fn first_repeat<T: Ord + std::fmt::Display>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut seen = std::collections::BTreeSet::new();
    for v in values {
        if seen.contains(&v) {
            return Some(v);
        }
        seen.insert(v);
    }
    None
}

/// The lists of the spec that make points: each entry once (a repeated model, precision
/// config, group size or policy would cost the same points twice, under equal
/// `config_hash`es), and no empty `dpred_group_sizes`. Returns the key and the problem.
fn check_lists(spec: &SweepSpec) -> Result<(), (&'static str, String)> {
    let w = &spec.workload;
    if let Some(m) = first_repeat(w.models.iter()) {
        return Err(("workload.models", format!("'{m}' is listed twice")));
    }
    let p = &spec.precision;
    if !p.fixed.is_empty() {
        // A config listed twice is named with both spellings (`fx8` and `w=fx8`).
        crate::format::parse_config_set(&p.fixed.join(";"))
            .map_err(|e| ("precision.fixed", e.to_string()))?;
    }
    if !p.levels.is_empty() {
        let configs = crate::format::parse_config_set(&p.levels.join(";"))
            .map_err(|e| ("precision.levels", e.to_string()))?;
        // One level an entry: the thresholds are counted by entries.
        if let Some(entry) = p
            .levels
            .iter()
            .find(|l| crate::format::parse_config_list(l).is_ok_and(|c| c.len() > 1))
        {
            return Err((
                "precision.levels",
                format!("'{entry}' holds several configs: give one level an entry"),
            ));
        }
        if configs.len() < 2 {
            return Err((
                "precision.levels",
                "give at least two levels, lowest first (e.g. [\"fx8\", \"fx16\"]), or none".into(),
            ));
        }
        // The problem without the command-line flag it would name in `dynamic`.
        let policies = crate::dynamic::parse_thresholds(&p.thresholds, p.levels.len()).map_err(
            |e| match e {
                crate::dynamic::PolicyError::Bad { problem, .. } => {
                    ("precision.thresholds", problem)
                }
                e => ("precision.thresholds", e.to_string()),
            },
        )?;
        // Sorted indices (a grid may hold millions of policies), -0 as 0: equal policies end
        // up side by side.
        let key = |k: usize| policies[k].thresholds.iter().map(|t| t + 0.0);
        let mut order: Vec<usize> = (0..policies.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            key(a)
                .zip(key(b))
                .map(|(x, y)| x.total_cmp(&y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        if let Some(w) = order.windows(2).find(|w| key(w[0]).eq(key(w[1]))) {
            let t: Vec<String> = key(w[0]).map(|v| v.to_string()).collect();
            return Err((
                "precision.thresholds",
                format!("the policy {} is listed twice", t.join("/")),
            ));
        }
    }
    if p.dpred_group_sizes.is_empty() {
        return Err((
            "precision.dpred_group_sizes",
            "empty list: give [0] for no compression, or group sizes".into(),
        ));
    }
    if let Some(g) = first_repeat(p.dpred_group_sizes.iter()) {
        return Err((
            "precision.dpred_group_sizes",
            format!("the group size {g} is listed twice"),
        ));
    }
    // DPRed reduces fixed-point codes per group: an option whose config (a fixed config, or a
    // policy's widest level) is not fixed point has no DPRed variant. With 0 among the sizes it
    // keeps its uncompressed rows; without, it would make no point at all.
    if !p.dpred_group_sizes.contains(&0) {
        let g = p.dpred_group_sizes[0];
        let fixed = crate::format::parse_config_list(&p.fixed.join(";")).unwrap_or_default();
        let top = crate::format::parse_config_list(&p.levels.join(";")).unwrap_or_default();
        let options = (fixed.iter().map(|c| ("precision.fixed", c)))
            .chain(top.last().map(|c| ("precision.levels", c)));
        for (key, c) in options {
            if !c.is_integer() {
                return Err((
                    "precision.dpred_group_sizes",
                    format!(
                        "group size {g} needs fixed-point configs, and {key} holds {c}, which \
                         would make no point (DPRed reduces fixed-point codes per group): add 0 \
                         to the sizes to keep its uncompressed points"
                    ),
                ));
            }
        }
    }
    Ok(())
}
