//! One row of `results.csv`, typed, and the fast text writer behind it.
//!
//! A sweep writes hundreds of bytes per point at millions of points per second, so rows are
//! rendered straight into a byte buffer: numbers exactly as Rust's `{}` prints them (which
//! keeps committed results byte for byte), integers through `itoa`; text cells are CSV-quoted
//! once per distinct value, not once per row.

use crate::accel::{DesignPoint, SWEEP_COLUMNS};

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
        self.write_with(out, &mut Recent::default());
    }

    /// [`Row::write`], reusing the text of numbers `recent` has seen (in this row or the rows
    /// before it on this thread): many columns repeat from row to row (energy and area do not
    /// depend on the fastest-varying keys), and one number's text never changes.
    pub fn write_with(&self, out: &mut Vec<u8>, recent: &mut Recent) {
        push_u64(out, self.point);
        out.extend_from_slice(&self.option.lead_csv);
        for v in self.axes.cells(self.digits) {
            v.push_after_comma(out);
        }
        for (slot, (_, v)) in self.design.sweep_columns().into_iter().enumerate() {
            out.push(b',');
            recent.push(out, v, slot);
        }
        for (slot, v) in [
            (SWEEP_COLUMNS, self.speedup),
            (SWEEP_COLUMNS + 1, self.energy_saving),
        ] {
            out.push(b',');
            if let Some(v) = v {
                recent.push(out, v, slot);
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

/// Numbers of a row (one slot per numeric column) with their text as [`push_f64`] writes it.
pub struct Recent {
    bits: [u64; SLOTS],
    len: [u8; SLOTS],
    text: [[u8; TEXT]; SLOTS],
}

/// One slot per numeric column: the model's figures, then speedup and energy saving.
const SLOTS: usize = SWEEP_COLUMNS + 2;
const TEXT: usize = 32;

impl Default for Recent {
    fn default() -> Recent {
        Recent {
            bits: [0; SLOTS],
            len: [0; SLOTS], // 0: the slot holds nothing
            text: [[0; TEXT]; SLOTS],
        }
    }
}

impl Recent {
    /// Appends `v` as [`push_f64`] does, from any slot that holds the same bits, else
    /// formatted and kept in `slot` (the common cases, see [`format_fast`]).
    #[inline]
    fn push(&mut self, out: &mut Vec<u8>, v: f64, slot: usize) {
        let bits = v.to_bits();
        // The column's own number in the row before, else any slot (branch-free scan).
        let mut hit = slot;
        if self.bits[slot] != bits || self.len[slot] == 0 {
            hit = SLOTS;
            for s in 0..SLOTS {
                if (self.bits[s] == bits) & (self.len[s] != 0) {
                    hit = s;
                }
            }
        }
        if hit < SLOTS {
            put(out, &self.text[hit], usize::from(self.len[hit]));
            return;
        }
        match format_fast(v, &mut self.text[slot]) {
            Some(n) => {
                self.len[slot] = n as u8;
                self.bits[slot] = bits;
                put(out, &self.text[slot], n);
            }
            None => {
                self.len[slot] = 0;
                push_f64_slow(out, v);
            }
        }
    }
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

/// Appends `v` exactly as `format!("{v}")` prints it (the standard library's shortest
/// round-trip digits, plain decimal notation), fast.
///
/// Integers below 2^53 are written digit by digit. Other finite numbers take ryu's shortest
/// digits, rewritten into `{}`'s notation, except where the two can differ: both pick the
/// shortest digits that read back as `v` and, of those, the nearest to `v`, but on an exact
/// tie (`v` exactly halfway between two shortest candidates, e.g. -88594481949449.125) ryu
/// rounds to even and the standard library rounds up. A tie needs `v`'s exact decimal
/// expansion to be at most 18 significant digits long, so every such `v` (and zero,
/// infinities, NaN, and integers from 2^53 on) is printed by the standard formatter itself.
pub fn push_f64(out: &mut Vec<u8>, v: f64) {
    let mut text = [0u8; TEXT];
    match format_fast(v, &mut text) {
        Some(n) => put(out, &text, n),
        None => push_f64_slow(out, v),
    }
}

/// The first `n` bytes of `text`, by a fixed-length copy (inlined; a call to `memcpy` per
/// number cost more than the copy itself).
#[inline]
fn put(out: &mut Vec<u8>, text: &[u8; TEXT], n: usize) {
    let start = out.len();
    out.extend_from_slice(text);
    out.truncate(start + n);
}

/// [`push_f64`]'s common cases written into `text`: integers below 2^53, and numbers ryu
/// writes without an exponent that are not possible ties. Returns the length, or `None`
/// for the rest.
#[inline]
fn format_fast(v: f64, text: &mut [u8; TEXT]) -> Option<usize> {
    const TWO_53: f64 = 9_007_199_254_740_992.0;
    if v.is_finite() && v != 0.0 && v.fract() == 0.0 && v.abs() < TWO_53 {
        let neg = usize::from(v < 0.0);
        text[0] = b'-';
        let mut x = v.abs() as u64;
        let n = neg + x.ilog10() as usize + 1;
        for i in (neg..n).rev() {
            text[i] = b'0' + (x % 10) as u8;
            x /= 10;
        }
        return Some(n);
    }
    if !v.is_finite() || v == 0.0 || short_exact_decimal(v) {
        return None;
    }
    // SAFETY: ryu writes at most 24 bytes for a finite number; `text` holds 32.
    let n = unsafe { ryu::raw::format64(v, text.as_mut_ptr()) };
    // Without an exponent (within the last five bytes, "e-324"), ryu writes a non-integer
    // as `{}` does ("12.34", "0.001234").
    let tail = n.saturating_sub(5);
    (!text[tail..n].contains(&b'e')).then_some(n)
}

fn push_f64_slow(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if !v.is_finite() || v == 0.0 || short_exact_decimal(v) {
        let _ = write!(out, "{v}");
    } else {
        push_ryu_as_display(out, v);
    }
}

/// Whether the exact decimal expansion of finite, non-zero `v` has at most 18 significant
/// digits (then a tie between two shortest round-trip candidates is possible).
fn short_exact_decimal(v: f64) -> bool {
    let bits = v.to_bits();
    let (exp_bits, frac) = (((bits >> 52) & 0x7ff) as i32, bits & ((1u64 << 52) - 1));
    // v = m * 2^e exactly.
    let (mut m, mut e) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp_bits - 1075)
    };
    let tz = m.trailing_zeros();
    m >>= tz;
    e += tz as i32;
    if e >= 0 {
        // An integer (from 2^53 on here): let the standard formatter print it.
        return true;
    }
    // v = m * 5^s / 10^s with m odd: its significant digits are those of m * 5^s.
    let s = (-e) as u32;
    if s > 26 {
        return false; // 5^26 > 10^18
    }
    (m as u128) * 5u128.pow(s) < 1_000_000_000_000_000_000u128
}

/// Ryu's shortest digits of finite, non-zero `v`, written as `{}` writes them: no exponent,
/// no trailing `.0`.
fn push_ryu_as_display(out: &mut Vec<u8>, v: f64) {
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v).as_bytes();
    // An exponent, if any, is among the last five bytes ("e-324").
    let tail = text.len().saturating_sub(5);
    let (mantissa, exp10) = match text[tail..].iter().position(|&c| c == b'e') {
        Some(i) => (&text[..tail + i], parse_exp(&text[tail + i + 1..])),
        // Without an exponent, ryu writes a non-integer as `{}` does ("12.34", "0.001234").
        None => return out.extend_from_slice(text),
    };
    let mut digits = [0u8; 24];
    let (mut n, mut point) = (0usize, None);
    for &c in mantissa {
        match c {
            b'.' => point = Some(n),
            b'0'..=b'9' => {
                digits[n] = c;
                n += 1;
            }
            _ => {}
        }
    }
    // Value = 0.d1 d2 ... dn * 10^dec.
    let mut dec = point.unwrap_or(n) as i32 + exp10;
    let lead = digits[..n].iter().take_while(|&&c| c == b'0').count();
    dec -= lead as i32;
    let digits = &digits[lead..n];
    let len = digits.len() - digits.iter().rev().take_while(|&&c| c == b'0').count();
    let digits = &digits[..len];
    if v < 0.0 {
        out.push(b'-');
    }
    if dec <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-dec) as usize));
        out.extend_from_slice(digits);
    } else if (dec as usize) < digits.len() {
        out.extend_from_slice(&digits[..dec as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[dec as usize..]);
    } else {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', dec as usize - digits.len()));
    }
}

fn parse_exp(t: &[u8]) -> i32 {
    let (neg, t) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    let x = t
        .iter()
        .fold(0i32, |a, &c| a * 10 + i32::from(c.wrapping_sub(b'0')));
    if neg {
        -x
    } else {
        x
    }
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
            -(88_594_481_949_449.0 + 0.125), // an exact tie between two shortest candidates
            0.5,
            2.5,
            0.125,
            1e16,
            1e15 + 0.5,
            9007199254740992.0,
            9007199254740993.0,
            -9007199254740991.0,
            123.456,
            1e-5,
            1.0000000000000002,
            0.30000000000000004,
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

        /// Numbers with few fraction bits (where exact ties between shortest candidates live)
        /// and integers around 2^53, which random bits almost never hit.
        #[test]
        fn short_fractions_print_like_display(m in any::<i64>(), shift in 0u32..80) {
            let v = m as f64 / 2f64.powi(shift as i32);
            prop_assert_eq!(text(v), format!("{v}"));
            let w = (m >> 8) as f64 + 0.5f64.powi((shift % 8) as i32 + 1);
            prop_assert_eq!(text(w), format!("{w}"));
        }

        /// Numbers written through `Recent` (repeats within and across rows, from any slot)
        /// read as `push_f64` writes them one by one.
        #[test]
        fn recent_numbers_print_like_push_f64(
            pool in proptest::collection::vec(any::<u64>(), 1..6),
            picks in proptest::collection::vec((0usize..6, 0usize..SLOTS), 1..60),
        ) {
            let mut recent = Recent::default();
            let (mut fast, mut plain) = (Vec::new(), Vec::new());
            for (i, slot) in picks {
                let v = f64::from_bits(pool[i % pool.len()]);
                let v = if i % 2 == 0 { v } else { (v.to_bits() >> 12) as f64 / 8.0 };
                recent.push(&mut fast, v, slot);
                push_f64(&mut plain, v);
                fast.push(b',');
                plain.push(b',');
            }
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&plain));
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
