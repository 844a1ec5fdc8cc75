//! One row of `results.csv`, typed, and the fast text writer behind it.
//!
//! A sweep writes hundreds of bytes per point at millions of points per second, so rows are
//! rendered straight into a byte buffer: numbers exactly as Rust's `{}` prints them (which
//! keeps committed results byte for byte), integers through `itoa`; text cells are CSV-quoted
//! once per distinct value, not once per row.

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
        TextCell {
            csv: csv_cell(&raw),
            raw,
            number,
        }
    }
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

    /// The swept value cells of architecture point `ai`.
    pub fn cells(&self, ai: usize) -> impl Iterator<Item = &TextCell> {
        let d = self.digits(ai);
        (0..self.keys.len()).map(move |k| &self.values[k][d[k]])
    }
}

/// One costed point: numbers, and borrowed text cells of its option and swept values.
pub struct Row<'a> {
    pub point: u64,
    pub option: &'a OptionText,
    pub axes: &'a Axes,
    /// The architecture point (index into the cross product of `axes`).
    pub arch_point: usize,
    pub design: DesignPoint,
    pub speedup: Option<f64>,
    pub energy_saving: Option<f64>,
    pub config_hash: u64,
}

impl Row<'_> {
    /// Appends the row and its line end to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        push_u64(out, self.point);
        for c in &self.option.lead {
            out.push(b',');
            out.extend_from_slice(&c.csv);
        }
        for v in self.axes.cells(self.arch_point) {
            out.push(b',');
            out.extend_from_slice(&v.csv);
        }
        for (_, v) in self.design.sweep_columns() {
            out.push(b',');
            push_f64(out, v);
        }
        for v in [self.speedup, self.energy_saving] {
            out.push(b',');
            if let Some(v) = v {
                push_f64(out, v);
            }
        }
        for c in &self.option.accuracy {
            out.push(b',');
            out.extend_from_slice(&c.csv);
        }
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
            Col::Arch(k) => {
                let d = self.axes.digits(self.arch_point);
                self.axes.values[k][d[k]].number.clone()
            }
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for k in (0..16).rev() {
        out.push(HEX[((v >> (4 * k)) & 0xf) as usize]);
    }
}

/// Appends `v` exactly as `format!("{v}")` prints it. (ryu's shortest digits differ from
/// the standard library's on exact ties, e.g. -88594481949449.125, which the property test
/// below found; the standard formatter is kept so committed results keep their bytes.)
pub fn push_f64(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(v: f64) -> String {
        let mut b = Vec::new();
        push_f64(&mut b, v);
        String::from_utf8(b).expect("ascii")
    }

    #[test]
    fn awkward_numbers_print_like_display() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-7,
            1.5e-300,
            f64::MIN_POSITIVE,
            5e-324,
            1e21,
            1e22,
            123456789012345680.0,
            f64::MAX,
            f64::MIN,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            879.043600562588,
            0.00009095086612041402,
        ] {
            assert_eq!(text(v), format!("{v}"), "{v:e}");
        }
    }

    proptest! {
        /// The fast writer against the standard library's `{}` (the oracle), on any bits.
        #[test]
        fn floats_print_like_display(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assert_eq!(text(v), format!("{v}"));
        }

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
