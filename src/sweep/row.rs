//! One row of `results.csv`, typed, and the fast text writer behind it.
//!
//! A sweep writes hundreds of bytes per point at millions of points per second, so rows are
//! rendered straight into a byte buffer: numbers exactly as Rust's `{}` prints them ([`super::number`], which
//! keeps committed results byte for byte), integers through `itoa`; text cells are CSV-quoted
//! once per distinct value, not once per row.

use super::number::{push_f64, put, Recent, TEXT};
use crate::accel::DesignPoint;

/// Accuracy columns of a precision option (documented in docs/OUTPUTS.md).
pub const ACCURACY: [&str; 6] = [
    "hidden_rmse",
    "output_rmse",
    "output_max_abs",
    "top1_agreement",
    "task_accuracy",
    "frac_low_precision",
];

/// Every column of results.csv for a spec whose ranges have these keys.
pub fn columns(range_keys: &[String]) -> Vec<String> {
    let mut c: Vec<String> = [
        "point",
        "model",
        "precision",
        "thresholds",
        "dpred_group_size",
    ]
    .map(String::from)
    .to_vec();
    c.extend(range_keys.iter().cloned());
    c.extend(
        DesignPoint::default()
            .sweep_columns()
            .map(|(name, _)| name.to_string()),
    );
    c.extend(["speedup", "energy_saving"].map(String::from));
    c.extend(ACCURACY.iter().map(|s| s.to_string()));
    c.extend(["config_hash", "tool_version"].map(String::from));
    c
}

/// A text cell: its raw text, its CSV form and its value as a number, as the front and
/// `where` filters read it (`Err` holds the problem, in the words of `pareto::front_of_csv`).
#[derive(Debug, Clone)]
pub struct TextCell {
    pub raw: String,
    pub csv: Vec<u8>,
    pub number: Result<f64, String>,
    /// `,` and the CSV form in a fixed-size block (copied without a call to `memcpy`), when
    /// it fits (length 0 otherwise).
    comma_csv: ([u8; TEXT], usize),
}

impl TextCell {
    pub fn new(raw: impl Into<String>) -> TextCell {
        let raw = raw.into();
        let t = raw.trim();
        let number = if t.is_empty() {
            Err("empty cell, expected a number".to_string())
        } else {
            t.parse::<f64>()
                .map_err(|_| format!("`{t}` is not a number"))
        };
        let csv = csv_cell(&raw);
        let mut comma_csv = ([0; TEXT], 0);
        if csv.len() < TEXT {
            comma_csv.0[0] = b',';
            comma_csv.0[1..=csv.len()].copy_from_slice(&csv);
            comma_csv.1 = csv.len() + 1;
        }
        TextCell {
            csv,
            raw,
            number,
            comma_csv,
        }
    }

    /// Appends `,` and the cell.
    #[inline]
    fn push_after_comma(&self, out: &mut Vec<u8>) {
        if self.comma_csv.1 > 0 {
            put(out, &self.comma_csv.0, self.comma_csv.1);
        } else {
            out.push(b',');
            out.extend_from_slice(&self.csv);
        }
    }
}

/// Several cells as they follow each other in a row: `,a,b,c`.
fn joined(cells: &[TextCell]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cells {
        c.push_after_comma(&mut out);
    }
    out
}

/// The text cells of one (model, precision option): `model`, `precision`, `thresholds`,
/// `dpred_group_size`, then the six accuracy cells.
#[derive(Debug, Clone)]
pub struct OptionText {
    pub lead: [TextCell; 4],
    pub accuracy: [TextCell; 6],
    /// FNV state after `model|precision|thresholds|dpred_group_size|` (the config hash
    /// continues with the swept values).
    pub hash_prefix: u64,
    /// `,` + the lead cells and `,` + the accuracy cells, as they appear in every row.
    lead_csv: Vec<u8>,
    accuracy_csv: Vec<u8>,
}

impl OptionText {
    pub fn new(lead: [TextCell; 4], accuracy: [TextCell; 6], hash_prefix: u64) -> OptionText {
        OptionText {
            lead_csv: joined(&lead),
            accuracy_csv: joined(&accuracy),
            lead,
            accuracy,
            hash_prefix,
        }
    }
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Point,
    Lead(usize),
    Arch(usize),
    Metric(usize),
    Speedup,
    EnergySaving,
    Accuracy(usize),
    ConfigHash,
    ToolVersion,
}

/// The kind of every column of [`columns`] for `n_keys` swept keys, in order.
pub fn kinds(n_keys: usize) -> Vec<Col> {
    let mut c = vec![Col::Point];
    c.extend((0..4).map(Col::Lead));
    c.extend((0..n_keys).map(Col::Arch));
    c.extend((0..DesignPoint::default().sweep_columns().len()).map(Col::Metric));
    c.extend([Col::Speedup, Col::EnergySaving]);
    c.extend((0..ACCURACY.len()).map(Col::Accuracy));
    c.extend([Col::ConfigHash, Col::ToolVersion]);
    c
}

/// At most this many swept keys (an architecture has fewer fields).
pub const MAX_KEYS: usize = 64;

/// The swept keys, their values (as cells) and their overrides.
pub struct Axes {
    pub keys: Vec<String>,
    pub values: Vec<Vec<TextCell>>,
    pub overrides: Vec<Vec<crate::accel::Override>>,
}

impl Axes {
    /// The value index of every key at architecture point `ai` (last key fastest); only the
    /// first `keys.len()` entries are meaningful.
    pub fn digits(&self, mut ai: usize) -> [usize; MAX_KEYS] {
        let mut out = [0; MAX_KEYS];
        for k in (0..self.keys.len()).rev() {
            let n = self.values[k].len();
            out[k] = ai % n;
            ai /= n;
        }
        out
    }

    /// The swept value cells at value `digits` (one per key, as [`Axes::digits`] gives).
    pub fn cells<'a>(&'a self, digits: &'a [usize]) -> impl Iterator<Item = &'a TextCell> + 'a {
        digits.iter().enumerate().map(|(k, &d)| &self.values[k][d])
    }
}

/// One costed point: numbers, and borrowed text cells of its option and swept values.
pub struct Row<'a> {
    pub point: u64,
    pub option: &'a OptionText,
    pub axes: &'a Axes,
    /// The value index of every swept key (the architecture point's digits).
    pub digits: &'a [usize],
    pub design: DesignPoint,
    pub speedup: Option<f64>,
    pub energy_saving: Option<f64>,
    pub config_hash: u64,
}

impl Row<'_> {
    /// Appends the row and its line end to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        self.write_by(out, push_f64);
    }

    /// [`Row::write`], reusing the text of numbers `recent` has seen (in this row or the rows
    /// before it on this thread).
    pub fn write_with(&self, out: &mut Vec<u8>, recent: &mut Recent) {
        self.write_by(out, |out, v| recent.push(out, v));
    }

    /// The row, its numbers written by `number`.
    #[inline]
    fn write_by(&self, out: &mut Vec<u8>, mut number: impl FnMut(&mut Vec<u8>, f64)) {
        push_u64(out, self.point);
        out.extend_from_slice(&self.option.lead_csv);
        for v in self.axes.cells(self.digits) {
            v.push_after_comma(out);
        }
        for (_, v) in self.design.sweep_columns() {
            out.push(b',');
            number(out, v);
        }
        for v in [self.speedup, self.energy_saving] {
            out.push(b',');
            if let Some(v) = v {
                number(out, v);
            }
        }
        out.extend_from_slice(&self.option.accuracy_csv);
        out.push(b',');
        push_hex16(out, self.config_hash);
        out.push(b',');
        out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        out.push(b'\n');
    }

    /// A cell as a number, as `pareto::front_of_csv` reads it from the written text.
    pub fn number(&self, col: Col) -> Result<f64, String> {
        let missing = || Err("empty cell, expected a number".to_string());
        match col {
            Col::Point => Ok(self.point as f64),
            Col::Lead(i) => self.option.lead[i].number.clone(),
            Col::Arch(k) => self.axes.values[k][self.digits[k]].number.clone(),
            Col::Metric(i) => Ok(self.design.sweep_columns()[i].1),
            Col::Speedup => self.speedup.map_or_else(missing, Ok),
            Col::EnergySaving => self.energy_saving.map_or_else(missing, Ok),
            Col::Accuracy(i) => self.option.accuracy[i].number.clone(),
            Col::ConfigHash => TextCell::new(format!("{:016x}", self.config_hash)).number,
            Col::ToolVersion => TextCell::new(env!("CARGO_PKG_VERSION")).number,
        }
    }
}

/// A text cell as the csv crate writes it (quoted only when it must be).
pub fn csv_cell(text: &str) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; an empty record would be written as `""`, so the empty
    // string is handled here.
    if text.is_empty() {
        return Vec::new();
    }
    let _ = w.write_record([text]);
    let mut v = w.into_inner().unwrap_or_default();
    v.pop();
    v
}

/// `format!("{v}")` for an optional number: empty when absent.
pub fn opt_text(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| {
        let mut b = Vec::new();
        push_f64(&mut b, v);
        String::from_utf8_lossy(&b).into_owned()
    })
}

pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_hex16(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&hex16(v));
}

/// `v` as 16 lowercase hex digits (how rows write the config hash).
pub(super) fn hex16(v: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn integers_and_hex(v in any::<u64>()) {
            let mut b = Vec::new();
            push_u64(&mut b, v);
            b.push(b' ');
            push_hex16(&mut b, v);
            prop_assert_eq!(String::from_utf8(b).unwrap(), format!("{v} {v:016x}"));
        }

        #[test]
        fn text_cells_quote_like_csv(s in "[a-z,\" |\n]{0,8}") {
            let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
            w.write_record([s.as_str(), "x"]).unwrap();
            let whole = String::from_utf8(w.into_inner().unwrap()).unwrap();
            let mine = format!("{},x\n", String::from_utf8(csv_cell(&s)).unwrap());
            prop_assert_eq!(mine, whole);
        }
    }
}
