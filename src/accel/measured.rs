//! The loaders of the GPU stage's measurements: `read_policy` turns one row of `policies.csv`
//! into a [`PrecisionProfile`]; `read_group_ratios` and `read_group_widths` read DPRed
//! footprint ratios and group-width histograms from `groups.csv`.

use std::path::Path;

use super::error::{compact, one_line, AccelError};
use super::precision::{
    check_edge_fractions, check_fractions, independent_switch_rate, PrecisionLevel,
    PrecisionProfile,
};

/// Bits of a format name as the GPU stage writes it (`fx8`, `fx16`, `fp16`, `int4`): the
/// trailing decimal digits. The main crate owns the formats; here only the width matters.
pub fn format_bits(name: &str) -> Option<u32> {
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|b| *b > 0)
}

/// A measurement file (policies.csv, groups.csv) read whole: (name for errors, text).
fn read_text(path: &Path) -> Result<(String, String), AccelError> {
    let shown = path.display().to_string();
    let text = crate::inputs::read_text(path).map_err(|e| AccelError::Io {
        path: shown.clone(),
        message: one_line(&e.to_string()),
    })?;
    Ok((shown, text))
}

/// A parse error at `line` of the file `origin` names.
fn parse_error(origin: &str, line: usize, message: String) -> AccelError {
    AccelError::Parse {
        path: origin.to_string(),
        line,
        message,
    }
}

/// The header and the records of a CSV text, each record with its line number.
type Rows = (csv::StringRecord, Vec<(usize, csv::StringRecord)>);

fn csv_rows(text: &str, origin: &str) -> Result<Rows, AccelError> {
    let parse_err = |line: usize, message: String| parse_error(origin, line, message);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| parse_err(1, one_line(&e.to_string())))?
        .clone();
    let rows = reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            r.map(|r| (i + 2, r))
                .map_err(|e| parse_err(i + 2, one_line(&e.to_string())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((headers, rows))
}

/// Reads policy `id` from a `policies.csv` (columns `policy`, `levels` such as `fx8|fx16`
/// lowest first, `frac_level_<k>`, optionally `frac_l<layer>_level_<k>`, `switches_per_1000_steps`
/// and the first and last steps' `frac_first_level_<k>`, `frac_last_level_<k>`; other columns
/// are ignored). Each level applies to weights and activations alike.
pub fn read_policy(path: &Path, id: u64) -> Result<PrecisionProfile, AccelError> {
    let (shown, text) = read_text(path)?;
    parse_policy(&text, &shown, id)
}

/// [`read_policy`] on text already in memory; `origin` names it in errors.
pub fn parse_policy(text: &str, origin: &str, id: u64) -> Result<PrecisionProfile, AccelError> {
    let parse_err = |line: usize, message: String| parse_error(origin, line, message);
    let (headers, records) = csv_rows(text, origin)?;
    let col = |name: &str| headers.iter().position(|h| h == name);
    let policy_col = col("policy").ok_or_else(|| parse_err(1, "no 'policy' column".into()))?;
    let levels_col = col("levels").ok_or_else(|| parse_err(1, "no 'levels' column".into()))?;

    for (line, record) in records {
        let this_id: u64 = record
            .get(policy_col)
            .unwrap_or("")
            .parse()
            .map_err(|_| parse_err(line, "column 'policy': not an integer id".into()))?;
        if this_id != id {
            continue;
        }
        let mut levels = Vec::new();
        // The configs each level names (None for a name read by its digits, `int4`).
        let mut configs = Vec::new();
        for name in record.get(levels_col).unwrap_or("").split('|') {
            // A precision config (`fx8`, `w=fx8,a=fx8,c=fx16`): weights and activations
            // widths; anything else by its trailing digits (`int4`).
            let config = name.trim().parse::<crate::format::PrecisionConfig>().ok();
            let level = match &config {
                Some(c) => PrecisionLevel {
                    weight_bits: c.w.bits(),
                    activation_bits: c.a.bits(),
                },
                None => {
                    let bits = format_bits(name.trim()).ok_or_else(|| {
                        parse_err(
                            line,
                            format!("column 'levels': cannot read bits from '{name}'"),
                        )
                    })?;
                    PrecisionLevel {
                        weight_bits: bits,
                        activation_bits: bits,
                    }
                }
            };
            levels.push(level);
            configs.push(config);
        }
        // Lowest first, each a step up from the one before (`dynamic`'s order): a level out
        // of order or repeated would cost steps at the wrong width. Names that are no config
        // by their bits alone.
        let names: Vec<&str> = record.get(levels_col).unwrap_or("").split('|').collect();
        let step_up = |k: usize| match (&configs[k - 1], &configs[k]) {
            (Some(a), Some(b)) => crate::dynamic::step_up(a, b),
            _ => {
                let (a, b) = (&levels[k - 1], &levels[k]);
                b.weight_bits >= a.weight_bits
                    && b.activation_bits >= a.activation_bits
                    && b.weight_bits + b.activation_bits > a.weight_bits + a.activation_bits
            }
        };
        if let Some(k) = (1..levels.len()).find(|&k| !step_up(k)) {
            return Err(parse_err(
                line,
                format!(
                    "column 'levels': '{}' cannot come before '{}': give the levels lowest \
                     first, each role at least as wide as before and the total wider",
                    names[k - 1].trim(),
                    names[k].trim()
                ),
            ));
        }
        let value = |name: &str| -> Result<Option<f64>, AccelError> {
            match col(name)
                .and_then(|c| record.get(c))
                .filter(|s| !s.is_empty())
            {
                None => Ok(None),
                Some(s) => s
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| parse_err(line, format!("column '{name}': not a number: '{s}'"))),
            }
        };
        let levels_len = levels.len();
        let mut step_fraction = Vec::with_capacity(levels.len());
        for k in 0..levels.len() {
            let name = format!("frac_level_{k}");
            step_fraction.push(
                value(&name)?.ok_or_else(|| parse_err(line, format!("missing column '{name}'")))?,
            );
        }
        // Per-layer columns may exist in the file yet be empty for this row (e.g. a fixed
        // policy): then the overall fractions apply to every layer.
        let mut layer_step_fraction = Vec::new();
        for layer in 0.. {
            if col(&format!("frac_l{layer}_level_0")).is_none() {
                break;
            }
            let mut f = Vec::with_capacity(levels.len());
            for k in 0..levels.len() {
                f.push(value(&format!("frac_l{layer}_level_{k}"))?);
            }
            if f.iter().all(Option::is_none) {
                break;
            }
            let f: Option<Vec<f64>> = f.into_iter().collect();
            let f = f.ok_or_else(|| {
                parse_err(
                    line,
                    format!("layer {layer}: some 'frac_l{layer}_level_<k>' values missing"),
                )
            })?;
            if let Err(m) = check_fractions(&f, levels.len()) {
                return Err(parse_err(line, format!("policy {id} layer {layer}: {m}")));
            }
            layer_step_fraction.push(f);
        }
        // Optional (files written before these columns existed have none): the level fractions
        // of the first and of the last step over the measured sequences.
        let mut edges = [Vec::new(), Vec::new()];
        for (edge, which) in edges.iter_mut().zip(["first", "last"]) {
            let mut f = Vec::with_capacity(levels_len);
            for k in 0..levels_len {
                f.push(value(&format!("frac_{which}_level_{k}"))?);
            }
            if f.iter().all(Option::is_none) {
                continue;
            }
            let f: Option<Vec<f64>> = f.into_iter().collect();
            *edge = f.ok_or_else(|| {
                parse_err(
                    line,
                    format!("policy {id}: some 'frac_{which}_level_<k>' values missing"),
                )
            })?;
            if let Err(m) = check_edge_fractions(edge, levels_len) {
                return Err(parse_err(
                    line,
                    format!("policy {id}: columns 'frac_{which}_level_<k>': {m}"),
                ));
            }
        }
        let [first_step_fraction, last_step_fraction] = edges;
        let switch_rate = match value("switches_per_1000_steps")? {
            Some(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => v / 1000.0,
            Some(v) => {
                return Err(parse_err(
                    line,
                    format!(
                        "column 'switches_per_1000_steps': must be in [0, 1000], got {}",
                        compact(v)
                    ),
                ))
            }
            None => independent_switch_rate(&step_fraction),
        };
        let profile = PrecisionProfile {
            levels,
            step_fraction,
            layer_step_fraction,
            dpred_weight_ratio: 1.0,
            dpred_activation_ratio: 1.0,
            switch_rate: if levels_len > 1 { switch_rate } else { 0.0 },
            group_width_fractions: Vec::new(),
            group_size: 0,
            first_step_fraction,
            last_step_fraction,
        };
        if let Err(m) = check_fractions(&profile.step_fraction, profile.levels.len()) {
            return Err(parse_err(line, format!("policy {id}: {m}")));
        }
        return Ok(profile);
    }
    Err(AccelError::PolicyNotFound {
        path: origin.to_string(),
        id,
    })
}

/// Reads the DPRed footprint ratios (weights, activations) for `group_size` from a
/// `groups.csv` written by `lstm-dse groups` (column `footprint_ratio_zero_bitmap`, or
/// `footprint_ratio` when `zero_bitmap` is false).
pub fn read_group_ratios(
    path: &Path,
    group_size: usize,
    zero_bitmap: bool,
) -> Result<(f64, f64), AccelError> {
    let (shown, text) = read_text(path)?;
    let parse_err = |line: usize, message: String| parse_error(&shown, line, message);
    let (headers, records) = csv_rows(&text, &shown)?;
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| parse_err(1, format!("no '{name}' column")))
    };
    let ratio_name = if zero_bitmap {
        "footprint_ratio_zero_bitmap"
    } else {
        "footprint_ratio"
    };
    let (tensor, size, ratio) = (col("tensor")?, col("group_size")?, col(ratio_name)?);
    let (mut weights, mut activations) = (None, None);
    for (line, record) in records {
        if record.get(size).and_then(|s| s.parse::<usize>().ok()) != Some(group_size) {
            continue;
        }
        let value: f64 = record
            .get(ratio)
            .and_then(|s| s.parse().ok())
            .filter(|v: &f64| *v > 0.0 && *v <= 1.5)
            .ok_or_else(|| parse_err(line, format!("column '{ratio_name}': not a ratio")))?;
        match record.get(tensor) {
            Some("weights") => weights = Some(value.min(1.0)),
            Some("activations") => activations = Some(value.min(1.0)),
            _ => {}
        }
    }
    match (weights, activations) {
        (Some(w), Some(a)) => Ok((w, a)),
        _ => Err(AccelError::Invalid {
            origin: shown.clone(),
            field: "group_size".into(),
            message: format!("no weights and activations rows for group size {group_size}"),
        }),
    }
}

/// Reads the activation group-width histogram for `group_size` from a `groups.csv`
/// (`frac_groups_width_<w>` for w = 1, 2, ... up to the base precision), for DPRed on
/// bit-serial units (`PrecisionProfile::group_width_fractions`).
pub fn read_group_widths(path: &Path, group_size: usize) -> Result<Vec<f64>, AccelError> {
    let (shown, text) = read_text(path)?;
    let parse_err = |line: usize, message: String| parse_error(&shown, line, message);
    let (headers, records) = csv_rows(&text, &shown)?;
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (tensor, size) = match (col("tensor"), col("group_size")) {
        (Some(t), Some(s)) => (t, s),
        _ => return Err(parse_err(1, "no 'tensor' and 'group_size' columns".into())),
    };
    let width_cols: Vec<usize> = (1..)
        .map_while(|w| col(&format!("frac_groups_width_{w}")))
        .collect();
    if width_cols.is_empty() {
        return Err(parse_err(1, "no 'frac_groups_width_1' column".into()));
    }
    for (line, record) in records {
        if record.get(size).and_then(|s| s.parse::<usize>().ok()) != Some(group_size)
            || record.get(tensor) != Some("activations")
        {
            continue;
        }
        let widths = width_cols
            .iter()
            .map(|&c| {
                let cell = record.get(c).unwrap_or("");
                cell.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        parse_err(
                            line,
                            format!("column '{}': '{cell}' is not a fraction", &headers[c]),
                        )
                    })
            })
            .collect::<Result<Vec<f64>, _>>()?;
        // The histogram's widths run up to the base precision; drop the unused top.
        let used = widths.iter().rposition(|&f| f > 0.0).map_or(0, |i| i + 1);
        let base = record
            .get(col("base_bits").unwrap_or(usize::MAX))
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(used)
            .clamp(used.max(1), widths.len());
        let mut widths = widths[..base].to_vec();
        let sum: f64 = widths.iter().sum();
        if sum <= 0.0 {
            return Err(parse_err(line, "group widths sum to 0".into()));
        }
        // Fractions of the groups (`groups` writes them from counts): they sum to 1 but for
        // the rounding of their digits; anything else is not a histogram of widths.
        if (sum - 1.0).abs() > 1e-6 {
            return Err(parse_err(
                line,
                format!(
                    "columns 'frac_groups_width_<w>': the fractions sum to {}, not 1 (each \
                     is the share of groups of that width)",
                    compact(sum)
                ),
            ));
        }
        widths.iter_mut().for_each(|f| *f /= sum);
        return Ok(widths);
    }
    Err(AccelError::Invalid {
        origin: shown.clone(),
        field: "group_size".into(),
        message: format!("no activations row for group size {group_size}"),
    })
}
