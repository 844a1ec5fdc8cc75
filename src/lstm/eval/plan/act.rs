//! Activation units: a sigmoid or tanh as a table over every code of its input format, or
//! computed directly when the input is too wide for a table.

use crate::format::{detmath, Fixed, Resolved};

/// An activation unit: a table over every code of its input format when that format has at
/// most 16 bits (entries already rounded to the output format), else computed in f32.
#[derive(Debug, Clone)]
pub enum Act {
    Table { input: Resolved, values: Vec<f32> },
    Direct { tanh: bool, out: Resolved },
}

impl Act {
    pub(super) fn new(tanh: bool, input: Resolved, out: Resolved) -> Act {
        match input.table_len() {
            Some(n) => Act::Table {
                input,
                values: (0..n)
                    .map(|k| out.round(table_entry(tanh, input.table_value(k))))
                    .collect(),
            },
            None => Act::Direct { tanh, out },
        }
    }

    /// Applies the unit to a value of its input format.
    #[inline]
    pub fn apply(&self, v: f32) -> f32 {
        match self {
            Act::Table { input, values } => values[input.table_index(v)],
            Act::Direct { tanh, out } => out.round(if *tanh {
                detmath::tanh(v)
            } else {
                detmath::sigmoid(v)
            }),
        }
    }

    /// The table as codes of a fixed-point output format (integer datapath).
    pub(super) fn codes(&self, out: Fixed) -> Vec<i32> {
        match self {
            Act::Table { values, .. } => values.iter().map(|&v| out.quantize(v)).collect(),
            Act::Direct { .. } => Vec::new(),
        }
    }
}

/// A table entry before output rounding: the function in f64, rounded once to f32.
pub fn table_entry(tanh: bool, v: f32) -> f32 {
    let v = v as f64;
    (if tanh {
        v.tanh()
    } else {
        1.0 / (1.0 + (-v).exp())
    }) as f32
}
