//! What the accelerator runs: layer shapes, sequence length, batch, and the precision
//! behaviour (fixed, or a measured mix of levels from the GPU stage's `policies.csv`, plus
//! optional DPRed footprint ratios). The main crate fills a `Workload` from a built-in or
//! imported model; `read_policy` turns one row of `policies.csv` into a `PrecisionProfile`.

use std::path::Path;

use super::error::{one_line, AccelError};

/// One LSTM layer. `input_size` is the width of x_t as this layer sees it (for a layer after
/// a bidirectional one, twice the previous hidden size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerShape {
    pub input_size: usize,
    pub hidden_size: usize,
    /// 1 (unidirectional) or 2 (bidirectional).
    pub directions: usize,
}

/// Operand widths of one precision level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrecisionLevel {
    pub weight_bits: u32,
    pub activation_bits: u32,
}

/// Precision behaviour of a workload.
///
/// One level = fixed precision. Several levels (lowest first) = dynamic precision: each step
/// runs at one level, `step_fraction[k]` of the steps at level k (measured by the GPU stage),
/// optionally per layer. DPRed ratios (0, 1] scale weight and activation footprint and
/// off-chip traffic; 1.0 means no group encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionProfile {
    pub levels: Vec<PrecisionLevel>,
    pub step_fraction: Vec<f64>,
    /// Empty, or one fraction vector per layer (each as long as `levels`).
    pub layer_step_fraction: Vec<Vec<f64>>,
    pub dpred_weight_ratio: f64,
    pub dpred_activation_ratio: f64,
    /// Probability that a step runs at a different level from the step before it (measured:
    /// `switches_per_1000_steps / 1000` of `policies.csv`; by default the value for steps
    /// drawn independently from the mix, 1 - sum phi_k^2). 0 for fixed precision.
    pub switch_rate: f64,
    /// DPRed activation group widths on bit-serial units: fraction of groups at each width
    /// 1..=len (from `groups.csv`'s `frac_groups_width_<w>`), measured against a base
    /// precision of `len` bits, and the group size. Empty: the mean footprint ratio is used.
    pub group_width_fractions: Vec<f64>,
    pub group_size: usize,
    /// Fraction of sequences (and layers) whose first step, step 0, runs at each level, as
    /// long as `levels`; empty: unknown, `step_fraction` is used. Step 0's input product
    /// runs at its level (known at the start), so the closed form's first products and first
    /// stream gate weigh the levels by this (docs/MODEL.md section 3, "First and last steps").
    /// Measured: policies.csv's `frac_first_level_<k>`.
    pub first_step_fraction: Vec<f64>,
    /// The same for the last step, T-1 (a stream-bound layer ends a step after its last
    /// stream, at that step's level); empty: `step_fraction`. Measured: `frac_last_level_<k>`.
    pub last_step_fraction: Vec<f64>,
}

impl PrecisionProfile {
    /// Every step at one precision.
    pub fn fixed(weight_bits: u32, activation_bits: u32) -> Self {
        PrecisionProfile {
            levels: vec![PrecisionLevel {
                weight_bits,
                activation_bits,
            }],
            step_fraction: vec![1.0],
            layer_step_fraction: Vec::new(),
            dpred_weight_ratio: 1.0,
            dpred_activation_ratio: 1.0,
            switch_rate: 0.0,
            group_width_fractions: Vec::new(),
            group_size: 0,
            first_step_fraction: Vec::new(),
            last_step_fraction: Vec::new(),
        }
    }

    /// Steps spread over `levels` (lowest first) by the measured `step_fraction`.
    pub fn dynamic(levels: Vec<PrecisionLevel>, step_fraction: Vec<f64>) -> Self {
        let switch_rate = independent_switch_rate(&step_fraction);
        PrecisionProfile {
            levels,
            step_fraction,
            layer_step_fraction: Vec::new(),
            dpred_weight_ratio: 1.0,
            dpred_activation_ratio: 1.0,
            switch_rate,
            group_width_fractions: Vec::new(),
            group_size: 0,
            first_step_fraction: Vec::new(),
            last_step_fraction: Vec::new(),
        }
    }

    /// Sets the measured probability of a level change between consecutive steps.
    pub fn with_switch_rate(mut self, rate: f64) -> Self {
        self.switch_rate = rate;
        self
    }

    /// Sets the measured level fractions of the first and of the last step (see
    /// `first_step_fraction`; empty vectors: unknown).
    pub fn with_edge_steps(mut self, first: Vec<f64>, last: Vec<f64>) -> Self {
        self.first_step_fraction = first;
        self.last_step_fraction = last;
        self
    }

    /// Sets the measured DPRed group-width histogram (see `group_width_fractions`).
    pub fn with_group_widths(mut self, fractions: Vec<f64>, group_size: usize) -> Self {
        self.group_width_fractions = fractions;
        self.group_size = group_size;
        self
    }

    /// Index of the widest level (weights are stored, and products whose level is not known
    /// yet run, at this level).
    pub fn widest_index(&self) -> usize {
        (0..self.levels.len())
            .max_by_key(|&k| (self.levels[k].weight_bits, self.levels[k].activation_bits))
            .unwrap_or(0)
    }

    /// Sets DPRed footprint ratios (compressed / uncompressed, in (0, 1]).
    pub fn with_dpred(mut self, weight_ratio: f64, activation_ratio: f64) -> Self {
        self.dpred_weight_ratio = weight_ratio;
        self.dpred_activation_ratio = activation_ratio;
        self
    }

    /// True when steps switch precision, which needs the precision-tracking unit.
    pub fn is_dynamic(&self) -> bool {
        self.levels.len() > 1
    }

    /// Step fractions for layer `layer` (per-layer when measured, else overall).
    pub fn fractions_for(&self, layer: usize) -> &[f64] {
        self.layer_step_fraction
            .get(layer)
            .map_or(&self.step_fraction[..], |f| &f[..])
    }

    /// Level fractions of the first step (measured, else `step_fraction`).
    pub fn first_fractions(&self) -> &[f64] {
        if self.first_step_fraction.is_empty() {
            &self.step_fraction
        } else {
            &self.first_step_fraction
        }
    }

    /// Level fractions of the last step (measured, else `step_fraction`).
    pub fn last_fractions(&self) -> &[f64] {
        if self.last_step_fraction.is_empty() {
            &self.step_fraction
        } else {
            &self.last_step_fraction
        }
    }

    /// The widest level; weights are stored at this width.
    pub fn widest(&self) -> PrecisionLevel {
        self.levels
            .iter()
            .copied()
            .max_by_key(|l| (l.weight_bits, l.activation_bits))
            .unwrap_or(PrecisionLevel {
                weight_bits: 0,
                activation_bits: 0,
            })
    }
}

/// Switch probability of steps drawn independently from the mix `f`: 1 - sum f_k^2.
pub fn independent_switch_rate(f: &[f64]) -> f64 {
    if f.len() < 2 {
        return 0.0;
    }
    (1.0 - f.iter().map(|x| x * x).sum::<f64>()).max(0.0)
}

/// The dense output layer applied to every step's last hidden output (a classifier or a
/// language model's vocabulary projection), with its activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadShape {
    pub input_size: usize,
    pub output_size: usize,
    /// Softmax (exponent, sum and divide per output) or sigmoid on every output.
    pub activation: bool,
}

/// A model's shapes plus how it is run.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub layers: Vec<LayerShape>,
    /// The output head, costed after the last layer (None: the LSTM stack only).
    pub head: Option<HeadShape>,
    pub seq_len: usize,
    pub batch: usize,
    pub precision: PrecisionProfile,
}

impl Workload {
    /// Checks shapes and precision; `evaluate` calls it on every point (it is cheap).
    pub fn validate(&self) -> Result<(), AccelError> {
        let fail = |message: String| AccelError::Workload {
            workload: self.name.clone(),
            message,
        };
        if self.layers.is_empty() {
            return Err(fail("has no layers".into()));
        }
        if self.seq_len == 0 || self.batch == 0 {
            return Err(fail(format!(
                "seq_len and batch must be >= 1, got seq_len {} batch {}",
                self.seq_len, self.batch
            )));
        }
        if let Some(h) = self.head {
            if h.input_size == 0 || h.output_size == 0 {
                return Err(fail(format!(
                    "head: input_size and output_size must be >= 1, got {} and {}",
                    h.input_size, h.output_size
                )));
            }
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.input_size == 0 || l.hidden_size == 0 {
                return Err(fail(format!(
                    "layer {i}: input_size and hidden_size must be >= 1, got {} and {}",
                    l.input_size, l.hidden_size
                )));
            }
            if !(l.directions == 1 || l.directions == 2) {
                return Err(fail(format!(
                    "layer {i}: directions must be 1 or 2, got {}",
                    l.directions
                )));
            }
            // The cost model counts in u64: a run's multiply-accumulates per layer must fit
            // with room to spare (every integer product in timing is a factor of it).
            let macs = [
                4 * l.directions as u128,
                l.hidden_size as u128,
                l.input_size as u128 + l.hidden_size as u128,
                self.batch as u128,
                self.seq_len as u128,
            ]
            .iter()
            .try_fold(1u128, |a, &b| a.checked_mul(b));
            if macs.is_none_or(|m| m > 1 << 60) {
                return Err(fail(format!(
                    "layer {i}: seq_len {} x batch {} is too large for the cost model (more than 2^60 multiply-accumulates)",
                    self.seq_len, self.batch
                )));
            }
        }
        let p = &self.precision;
        if p.levels.is_empty() {
            return Err(fail("precision has no levels".into()));
        }
        for (k, l) in p.levels.iter().enumerate() {
            if l.weight_bits == 0 || l.activation_bits == 0 {
                return Err(fail(format!("precision level {k}: bits must be >= 1")));
            }
        }
        check_fractions(&p.step_fraction, p.levels.len())
            .map_err(|m| fail(format!("step_fraction: {m}")))?;
        if !p.layer_step_fraction.is_empty() && p.layer_step_fraction.len() != self.layers.len() {
            return Err(fail(format!(
                "the policy has per-layer fractions (policies.csv columns frac_l<layer>_level_<k>) for {} layer(s), the model has {}; use the policies.csv measured on this model",
                p.layer_step_fraction.len(),
                self.layers.len()
            )));
        }
        for (i, f) in p.layer_step_fraction.iter().enumerate() {
            check_fractions(f, p.levels.len())
                .map_err(|m| fail(format!("layer_step_fraction[{i}]: {m}")))?;
        }
        for (name, f) in [
            ("first_step_fraction", &p.first_step_fraction),
            ("last_step_fraction", &p.last_step_fraction),
        ] {
            check_edge_fractions(f, p.levels.len()).map_err(|m| fail(format!("{name}: {m}")))?;
        }
        for (name, r) in [
            ("dpred_weight_ratio", p.dpred_weight_ratio),
            ("dpred_activation_ratio", p.dpred_activation_ratio),
        ] {
            if !(r > 0.0 && r <= 1.0) {
                return Err(fail(format!("{name} must be in (0, 1], got {r}")));
            }
        }
        if !(p.switch_rate.is_finite() && (0.0..=1.0).contains(&p.switch_rate)) {
            return Err(fail(format!(
                "switch_rate must be in [0, 1], got {}",
                p.switch_rate
            )));
        }
        if !p.group_width_fractions.is_empty() {
            if p.group_size == 0 || p.group_width_fractions.len() > 64 {
                return Err(fail(format!(
                    "group widths: group size {} and {} widths (need >= 1 and <= 64)",
                    p.group_size,
                    p.group_width_fractions.len()
                )));
            }
            check_fractions(&p.group_width_fractions, p.group_width_fractions.len())
                .map_err(|m| fail(format!("group width fractions: {m}")))?;
        }
        Ok(())
    }
}

fn check_fractions(f: &[f64], levels: usize) -> Result<(), String> {
    if f.len() != levels {
        return Err(format!("{} fractions for {levels} levels", f.len()));
    }
    if f.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
        return Err(format!("fractions must be >= 0, got {f:?}"));
    }
    let sum: f64 = f.iter().sum();
    if (sum - 1.0).abs() > 1e-3 {
        return Err(format!("fractions must sum to 1, got {sum}"));
    }
    Ok(())
}

/// The optional first- or last-step fractions: empty (unknown), or one per level, each
/// finite and >= 0, summing to 1 within 1e-9 (they are counts of sequences over a total).
fn check_edge_fractions(f: &[f64], levels: usize) -> Result<(), String> {
    if f.is_empty() {
        return Ok(());
    }
    if f.len() != levels {
        return Err(format!("{} fractions for {levels} levels", f.len()));
    }
    if f.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
        return Err(format!("fractions must be >= 0, got {f:?}"));
    }
    let sum: f64 = f.iter().sum();
    if (sum - 1.0).abs() > 1e-9 {
        return Err(format!("fractions must sum to 1 (within 1e-9), got {sum}"));
    }
    Ok(())
}

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
    let text = std::fs::read_to_string(path).map_err(|e| AccelError::Io {
        path: shown.clone(),
        message: one_line(&e.to_string()),
    })?;
    Ok((shown, text))
}

/// The header and the records of a CSV text, each record with its line number.
type Rows = (csv::StringRecord, Vec<(usize, csv::StringRecord)>);

fn csv_rows(text: &str, origin: &str) -> Result<Rows, AccelError> {
    let parse_err = |line: usize, message: String| AccelError::Parse {
        path: origin.to_string(),
        line,
        message,
    };
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
    let parse_err = |line: usize, message: String| AccelError::Parse {
        path: origin.to_string(),
        line,
        message,
    };
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
        for name in record.get(levels_col).unwrap_or("").split('|') {
            // A precision config (`fx8`, `w=fx8,a=fx8,c=fx16`): weights and activations
            // widths; anything else by its trailing digits (`int4`).
            let level = match name.trim().parse::<crate::format::PrecisionConfig>() {
                Ok(c) => PrecisionLevel {
                    weight_bits: c.w.bits(),
                    activation_bits: c.a.bits(),
                },
                Err(_) => {
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
                    format!("column 'switches_per_1000_steps': must be in [0, 1000], got {v}"),
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
    let parse_err = |line: usize, message: String| AccelError::Parse {
        path: shown.clone(),
        line,
        message,
    };
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
    let parse_err = |line: usize, message: String| AccelError::Parse {
        path: shown.clone(),
        line,
        message,
    };
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
                record
                    .get(c)
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| parse_err(line, format!("column {}: not a fraction", c + 1)))
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
        widths.iter_mut().for_each(|f| *f /= sum);
        return Ok(widths);
    }
    Err(AccelError::Invalid {
        origin: shown.clone(),
        field: "group_size".into(),
        message: format!("no activations row for group size {group_size}"),
    })
}

/// The accelerator model's view of a model: its layer shapes.
pub fn workload_of(
    model: &crate::lstm::Model,
    seq_len: usize,
    batch: usize,
    precision: PrecisionProfile,
) -> Workload {
    Workload {
        name: model.name.clone(),
        layers: model
            .layers
            .iter()
            .map(|l| LayerShape {
                input_size: l.input_size,
                hidden_size: l.hidden_size,
                directions: l.direction.count(),
            })
            .collect(),
        head: model.head.as_ref().map(|h| HeadShape {
            input_size: h.input_size,
            output_size: h.output_size,
            activation: h.activation != crate::lstm::HeadActivation::None,
        }),
        seq_len,
        batch,
        precision,
    }
}
