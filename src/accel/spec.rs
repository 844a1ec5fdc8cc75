//! The architecture description as written in `sweeps/arch/*.toml`: plain serde structs that
//! mirror the file one to one (`deny_unknown_fields`, so a misspelt field is an error naming
//! it), the loader, and `apply_set`, which overrides any field by its dotted key
//! (`compute.units=8`) for `--set` and sweep files. Range checks live in `arch.rs`, which turns
//! an `ArchSpec` into the validated `Arch` the model evaluates.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{one_line, AccelError};

/// How a multiplier trades precision for throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MultiplierKind {
    /// A plain `multiplier_bits`-wide multiplier: one product per cycle at any precision.
    Fixed,
    /// Bit Fusion-style composable multiplier: narrower operands give more products per cycle.
    BitParallel,
    /// Stripes/DPRed-style serial lane: activation bits are processed one per cycle.
    BitSerial,
}

/// How the gate matrix rows are handed to the computation units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DispatchPolicy {
    /// E-PUR: each unit statically owns whole gate matrices (one gate per unit).
    GatePerUnit,
    /// LSTM-Sharp: the matrix is cut into tiles that any free unit takes.
    Tiled,
}

/// When the input product W x_t is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputProduct {
    /// For every step, just before that step's recurrent product.
    PerStep,
    /// For all steps of a layer at once, before its recurrence (E-PUR's weight locality).
    Batched,
}

/// How several cores share one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MulticoreMode {
    /// Each core runs its own copy of the workload (independent sequences or models).
    Multiprogramming,
    /// Consecutive layers on consecutive cores: a wavefront over (layer, step).
    Multithreading,
    /// All cores split every layer's rows and exchange h after every step.
    Helper,
}

/// A whole `sweeps/arch/*.toml` file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    pub name: String,
    pub compute: ComputeSpec,
    pub dispatch: DispatchSpec,
    pub schedule: ScheduleSpec,
    pub memory: MemorySpec,
    pub energy: EnergySpec,
    pub area: AreaSpec,
    pub tracking: TrackingSpec,
    pub multicore: MulticoreSpec,
    /// Optional in files written before it existed: defaults to the 45 nm reference node.
    #[serde(default)]
    pub technology: TechnologySpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeSpec {
    pub units: i64,
    pub multipliers_per_unit: i64,
    pub multiplier_bits: i64,
    pub multiplier_kind: MultiplierKind,
    pub min_precision_bits: i64,
    pub clock_mhz: f64,
    pub tail_lanes: i64,
    pub tail_latency_cycles: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSpec {
    pub policy: DispatchPolicy,
    pub tile_rows: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub input_product: InputProduct,
    pub overlap_tail: bool,
    pub reconfig_cycles: i64,
    /// Cycles the units stall when the tracking unit changes the precision level between
    /// two steps (mode change of the multipliers and pipeline drain).
    #[serde(default = "default_precision_switch_cycles")]
    pub precision_switch_cycles: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySpec {
    pub sram_weight_kib: f64,
    pub sram_activation_kib: f64,
    pub dram_gb_per_s: f64,
    /// Capacity of one SRAM bank (the buffers are built from banks of this size).
    #[serde(default = "default_sram_bank_kib")]
    pub sram_bank_kib: f64,
    /// Bits delivered by one row read of a bank.
    #[serde(default = "default_sram_row_bits")]
    pub sram_row_bits: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnergySpec {
    pub mult_pj_8bit: f64,
    pub add_pj_32bit: f64,
    pub bit_parallel_overhead: f64,
    pub sram_pj_per_bit_8kib: f64,
    pub sram_size_exponent: f64,
    pub dram_pj_per_byte: f64,
    pub tail_pj_per_element: f64,
    pub static_mw_per_mm2: f64,
    /// Share of an SRAM access's energy that is paid per access (decoder, word line, H-tree)
    /// rather than per bit read (bit lines, sense amplifiers), at the 8 KiB 64-bit reference.
    #[serde(default = "default_sram_access_share")]
    pub sram_access_share: f64,
    /// Energy of one precision switch (multiplier mode change, pipeline drain).
    #[serde(default = "default_precision_switch_pj")]
    pub precision_switch_pj: f64,
    /// Energy of one softmax element of the output head (exponent LUT, sum, divide).
    #[serde(default = "default_softmax_pj_per_element")]
    pub softmax_pj_per_element: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AreaSpec {
    pub mult_um2_8bit: f64,
    pub add_um2_32bit: f64,
    pub bit_parallel_overhead: f64,
    pub serial_lane_um2_per_bit: f64,
    pub sram_mm2_per_kib: f64,
    pub tail_um2_per_lane: f64,
    pub control_mm2_per_unit: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingSpec {
    pub enabled: bool,
    pub pj_per_element: f64,
    pub area_mm2: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MulticoreSpec {
    pub cores: i64,
    pub mode: MulticoreMode,
    pub link_latency_cycles: i64,
    pub link_gb_per_s: f64,
    pub link_pj_per_byte: f64,
    pub link_area_mm2_per_core: f64,
}

/// Process node: the energy and area figures of the file are given at 45 nm (Horowitz, ISSCC
/// 2014) and scaled to `node_nm` by (node_nm / 45)^exponent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TechnologySpec {
    pub node_nm: f64,
    pub energy_exponent: f64,
    pub area_exponent: f64,
}

impl Default for TechnologySpec {
    fn default() -> Self {
        TechnologySpec {
            // The node of the reference figures: no scaling.
            node_nm: 45.0,
            // ASSUMPTION: switched capacitance scales with feature size at a supply voltage
            // that no longer scales (E = C V^2), so energy per operation ~ node^1.
            energy_exponent: 1.0,
            // ASSUMPTION: ideal area scaling, ~ node^2.
            area_exponent: 2.0,
        }
    }
}

// Defaults of the fields added after the first architecture files (docs/MODEL.md section 8).
fn default_precision_switch_cycles() -> i64 {
    // ASSUMPTION: same as one input/recurrent reconfiguration of LSTM-Sharp's units.
    4
}
fn default_sram_bank_kib() -> f64 {
    // ASSUMPTION: 64 KiB banks, a common CACTI-optimal sub-array organisation at 45 nm.
    64.0
}
fn default_sram_row_bits() -> i64 {
    // ASSUMPTION: 256-bit rows (16 weights of 16 bits per row read).
    256
}
fn default_sram_access_share() -> f64 {
    // ASSUMPTION: half of Horowitz's 10 pJ 64-bit 8 KB read is per access.
    0.5
}
fn default_precision_switch_pj() -> f64 {
    // ASSUMPTION: rewriting the mode registers of 64 multipliers and draining a 4-stage
    // pipeline, ~ 64 x 16-bit register writes at ~0.05 pJ/bit.
    50.0
}
fn default_softmax_pj_per_element() -> f64 {
    // ASSUMPTION: one exponent LUT read, one 32-bit add, one 16-bit multiply (~2 pJ at 45 nm).
    2.0
}

/// Reads and parses one architecture file. Range checks happen in [`super::Arch::from_spec`].
pub fn load_arch(path: &Path) -> Result<ArchSpec, AccelError> {
    let shown = path.display().to_string();
    let text = crate::inputs::read_text(path).map_err(|e| AccelError::Io {
        path: shown.clone(),
        message: one_line(&e.to_string()),
    })?;
    ArchSpec::from_toml_str(&text, &shown)
}

impl ArchSpec {
    /// Parses TOML text; `origin` names the source in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, AccelError> {
        toml::from_str(text).map_err(|e| AccelError::Parse {
            path: origin.to_string(),
            line: crate::inputs::toml_line(text, &e).unwrap_or(0),
            message: one_line(e.message()),
        })
    }
}

/// Overrides one field by its dotted key: `apply_set(&mut spec, "compute.units=8")`.
///
/// The value is read as a TOML value (`8`, `2.5`, `true`, `"tiled"`); a bare word that is not
/// valid TOML is taken as a string, so `dispatch.policy=tiled` works without quotes. The key
/// must name an existing field, and the value must have that field's type.
pub fn apply_set(spec: &mut ArchSpec, assignment: &str) -> Result<(), AccelError> {
    let fail = |message: String| AccelError::Set {
        assignment: assignment.to_string(),
        message,
    };
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| fail("expected key=value".to_string()))?;
    let (key, raw) = (key.trim(), raw.trim());
    let mut value = parse_value(raw);

    let mut root = toml::Value::try_from(&*spec).map_err(|e| fail(one_line(&e.to_string())))?;
    let mut slot = &mut root;
    for part in key.split('.') {
        let table = slot
            .as_table_mut()
            .ok_or_else(|| fail(format!("'{key}' goes below a value")))?;
        slot = table
            .get_mut(part)
            .ok_or_else(|| fail(format!("unknown field '{part}' in key '{key}'")))?;
    }
    if slot.is_table() {
        return Err(fail(format!("'{key}' is a section, not a field")));
    }
    // A number beyond TOML's (a 64-bit integer, a finite float) reads as a bare word: said as
    // a number out of range for the field, not as a string of the wrong type.
    if value.is_str() && (slot.is_integer() || slot.is_float()) {
        let side = if raw.starts_with('-') {
            "small"
        } else {
            "large"
        };
        let range = |kind: &str| {
            fail(format!(
                "{raw} is out of range for {key}: too {side} for {kind} field"
            ))
        };
        match decimal(raw) {
            Some((v, _)) if slot.is_float() && v.is_finite() => value = toml::Value::Float(v),
            Some(_) if slot.is_float() => return Err(range("a float")),
            Some((_, true)) if raw.replace('_', "").parse::<i64>().is_err() => {
                return Err(range("an integer"))
            }
            // Not a number (`1-4`, `1.2.3`, `1__0`), or one TOML spells otherwise (`08`):
            // the type error below says what the field takes.
            _ => {}
        }
    }
    // An integer given for a float field is fine (`clock_mhz=1000`).
    let float = value.as_float();
    *slot = match (&*slot, value) {
        (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
        (_, v) => v,
    };
    *spec = root.try_into().map_err(|e: toml::de::Error| {
        let mut message = one_line(e.message());
        // A float where an integer is expected: the message would quote it with every
        // digit (`1e300` as 301 of them).
        if let Some(v) = float {
            let short = super::error::compact(v);
            if short != format!("{v}") {
                for long in [format!("{v}.0"), format!("{v}")] {
                    message = message.replace(&long, &short);
                }
            }
        }
        fail(message)
    })?;
    Ok(())
}

/// `raw` as a decimal number (`-12`, `1_000`, `2.5e3`, digits between single underscores)
/// whatever its size, with whether it is written as an integer; `None` when it is not one.
fn decimal(raw: &str) -> Option<(f64, bool)> {
    let t = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    let digits_between = |part: &str| {
        !part.is_empty()
            && part
                .split('_')
                .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    let (mantissa, exponent) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (t, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let ok = digits_between(whole)
        && fraction.is_none_or(digits_between)
        && exponent.is_none_or(digits_between);
    let integer = fraction.is_none() && exponent.is_none();
    ok.then(|| {
        raw.replace('_', "")
            .parse::<f64>()
            .ok()
            .map(|v| (v, integer))
    })
    .flatten()
}

fn parse_value(raw: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    match toml::from_str::<Wrapper>(&format!("v = {raw}")) {
        Ok(w) => w.v,
        Err(_) => toml::Value::String(raw.to_string()),
    }
}
