//! The calibration a plan reads: the largest magnitudes (and, for rules other than `max`, the
//! histograms) of every data-derived tensor, measured in the float64 reference run (each value
//! rounded to f32), and the range each calibration rule takes from them.

use crate::format::{CalRule, Format};
use crate::lstm::eval::calib::Histogram;

/// Largest magnitudes seen in the float64 reference run over the batch (docs/NUMERICS.md §3):
/// they choose the fraction bits of `fx<bits>` formats for tensors whose range is only known
/// from data. With `hist`, the whole
/// distributions too, for the calibration rules other than `max`
/// ([`calib`](crate::lstm::eval::calib)).
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// max |x| of the model input.
    pub input_max: f32,
    pub layers: Vec<LayerRange>,
    pub hist: Option<CalHist>,
}

/// Histograms of every data-derived tensor of the calibration run.
#[derive(Debug, Clone, PartialEq)]
pub struct CalHist {
    pub input: Histogram,
    /// Per layer: h (both directions, every step, h0), then per direction (pre, c).
    pub layers: Vec<(Histogram, Vec<(Histogram, Histogram)>)>,
}

/// Which data-derived tensor a range is asked for.
#[derive(Debug, Clone, Copy)]
pub enum DataTensor {
    Input,
    H(usize),
    Pre(usize, usize),
    C(usize, usize),
}

impl Calibration {
    /// The range `m` of §3 for `tensor` in `format` under `rule`.
    pub fn range(&self, tensor: DataTensor, rule: CalRule, format: Format) -> f32 {
        let max = match tensor {
            DataTensor::Input => self.input_max,
            DataTensor::H(l) => self.layers[l].h_max,
            DataTensor::Pre(l, k) => self.layers[l].cells[k].pre_max,
            DataTensor::C(l, k) => self.layers[l].cells[k].c_max,
        };
        debug_assert!(
            rule == CalRule::Max || self.hist.is_some(),
            "calibration rule {rule} needs the histograms (calibrate(.., true))"
        );
        match (&self.hist, rule) {
            (_, CalRule::Max) | (None, _) => max,
            (Some(h), rule) => {
                let hist = match tensor {
                    DataTensor::Input => &h.input,
                    DataTensor::H(l) => &h.layers[l].0,
                    DataTensor::Pre(l, k) => &h.layers[l].1[k].0,
                    DataTensor::C(l, k) => &h.layers[l].1[k].1,
                };
                hist.range(rule, format)
            }
        }
    }
}

/// Ranges of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRange {
    /// max |h| over every step and direction (and the initial state).
    pub h_max: f32,
    /// Per direction.
    pub cells: Vec<CellRange>,
}

/// Ranges of one direction of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CellRange {
    /// max |c| over every step (and the initial state).
    pub c_max: f32,
    /// max |pre-activation| over every gate and step.
    pub pre_max: f32,
}
