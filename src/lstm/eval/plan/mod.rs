//! From (model, precision config, calibration) to everything a cell needs to run: the
//! resolved format of every tensor, the quantized weights, the activation lookup tables and,
//! on the integer datapath, the accumulator alignment shifts (checked to fit 64 bits).
//! This is the part a GPU kernel uploads once per configuration.
//!
//! The calibration it reads is in `ranges.rs`, the activation units in `act.rs` and the
//! integer datapath in `int.rs`; this file resolves the formats and rounds the weights.

mod act;
mod int;
mod ranges;

pub use act::{table_entry, Act};
pub use int::IntCell;
pub use ranges::{CalHist, Calibration, CellRange, DataTensor, LayerRange};

use super::gemm::Packed;
use super::packs::FloatPacks;
use super::pairs::PackedPairs;
use super::EvalError;
use crate::format::{detmath, tensor, Fixed, Format, PrecisionConfig, Resolved, WeightScale};
use crate::lstm::{Cell, Model};
use rayon::prelude::*;
/// The resolved format of every tensor of one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellFormats {
    /// Layer input (for layers after the first: the previous layer's h format).
    pub x: Resolved,
    /// Hidden state (shared by both directions of a layer).
    pub h: Resolved,
    /// Gate outputs and tanh(c): range [-1, 1].
    pub gate: Resolved,
    /// Gate pre-activations.
    pub pre: Resolved,
    /// Cell state.
    pub c: Resolved,
    /// Input weights W.
    pub w: Resolved,
    /// Recurrent weights R.
    pub r: Resolved,
    /// Combined bias b_ih + b_hh.
    pub b: Resolved,
    /// Peepholes.
    pub peep: Resolved,
}

/// Everything one direction of one layer needs at one precision config.
#[derive(Debug, Clone)]
pub struct CellPlan {
    pub formats: CellFormats,
    /// Weights rounded to their formats (f32 values), combined bias, peepholes.
    pub w: Vec<f32>,
    pub r: Vec<f32>,
    pub b: Vec<f32>,
    pub peep: Option<Vec<f32>>,
    pub h0: Vec<f32>,
    pub c0: Vec<f32>,
    pub sigmoid: Act,
    pub tanh_pre: Act,
    pub tanh_c: Act,
    /// Present when every format is fixed point.
    pub int: Option<IntCell>,
    /// `wscale=channel`: the format of every row of W and of R (NUMERICS.md §3.2); the
    /// tensor formats in `formats` are then those of their widest-range row.
    pub rows: Option<RowFormats>,
    /// W and R packed for the float kernels on first use.
    pub(crate) packs: FloatPacks,
}

/// Per-row (per output channel) formats of W and R.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFormats {
    pub w: Vec<Resolved>,
    pub r: Vec<Resolved>,
}

impl RowFormats {
    /// Each of the `rows` rows of `w` (`rows x k`) resolved from its own largest magnitude.
    fn resolve(f: Format, w: &[f32], r: &[f32], rows: usize) -> RowFormats {
        let each = |v: &[f32]| -> Vec<Resolved> {
            let k = v.len() / rows.max(1);
            (0..rows)
                .map(|i| f.resolve(max_abs(&v[i * k..(i + 1) * k])))
                .collect()
        };
        RowFormats {
            w: each(w),
            r: each(r),
        }
    }
}

fn round_rows(fmts: &[Resolved], v: &[f32]) -> Vec<f32> {
    let k = v.len() / fmts.len().max(1);
    v.par_chunks(k.max(1))
        .zip(fmts)
        .flat_map_iter(|(row, f)| row.iter().map(|&x| f.round(x)))
        .collect()
}

/// A whole model at one precision config: `layers[l][k]` is direction k of layer l.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config: PrecisionConfig,
    pub layers: Vec<Vec<CellPlan>>,
}

/// The largest |v| (NaN skipped), over chunks in parallel with eight running maxima each
/// (selects, which vectorize): the maximum does not depend on the order it is taken in.
fn max_abs(v: &[f32]) -> f32 {
    const L: usize = 8;
    let chunk_max = |c: &[f32]| {
        let mut m = [0.0f32; L];
        let mut lanes = c.chunks_exact(L);
        for x in &mut lanes {
            for i in 0..L {
                let a = x[i].abs();
                m[i] = if a > m[i] { a } else { m[i] };
            }
        }
        let tail = lanes.remainder().iter().fold(0.0f32, |m, x| m.max(x.abs()));
        m.iter().fold(tail, |a, &b| a.max(b))
    };
    v.par_chunks(1 << 16)
        .map(chunk_max)
        .reduce(|| 0.0, f32::max)
}

/// `v` rounded to `f` (the format chosen outside the loop, so the loop vectorizes).
pub(crate) fn round_all(f: Resolved, v: &[f32]) -> Vec<f32> {
    match f {
        Resolved::Fp32 => tensor::map(v, detmath::ftz),
        Resolved::Fixed(q) => {
            let (code, value) = (q.quantizer(), q.dequantizer());
            tensor::map(v, move |x| value(code(x)))
        }
        Resolved::Float(ff) => tensor::map(v, move |x| ff.round(x)),
    }
}

/// `v` rounded to the fixed-point format `q` and its codes, in one pass (both are kept: the
/// values for the float paths, the codes for the integer datapath). Only where every code's
/// value `code·2^-frac` is an exact f32 (at most 24 bits) in the normal range or zero: the
/// codes of the rounded values, which [`IntCell`] would otherwise compute from them, are
/// then these codes.
fn round_with_codes(q: Fixed, v: &[f32]) -> Option<(Vec<f32>, Vec<i32>)> {
    if q.bits > 24 || q.frac > 126 || q.frac < q.bits as i32 - 127 {
        return None;
    }
    let (code, value) = (q.quantizer(), q.dequantizer());
    let (codes, values) = tensor::map2(v, move |x| {
        let c = code(x);
        (c, value(c))
    });
    Some((values, codes))
}

fn fixed(f: Resolved) -> Option<Fixed> {
    match f {
        Resolved::Fixed(x) => Some(x),
        _ => None,
    }
}

/// The largest magnitudes of every cell's W and R (`[layer][direction]`): the same for every
/// config, so a caller that plans several configs measures them once
/// ([`Plan::with_ranges`]) instead of once a config (two passes over every weight).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightRanges(Vec<Vec<[f32; 2]>>);

impl WeightRanges {
    pub fn of(model: &Model) -> WeightRanges {
        WeightRanges(
            model
                .layers
                .iter()
                .map(|layer| {
                    layer
                        .cells
                        .iter()
                        .map(|cell| [max_abs(&cell.w), max_abs(&cell.r)])
                        .collect()
                })
                .collect(),
        )
    }
}

impl Plan {
    /// Resolves `config` for `model`; `cal` is needed only when some format has open fraction
    /// bits (it may be `None` otherwise).
    pub fn new(
        model: &Model,
        config: PrecisionConfig,
        cal: Option<&Calibration>,
    ) -> Result<Plan, EvalError> {
        Plan::with_ranges(model, config, cal, &WeightRanges::of(model))
    }

    /// [`Plan::new`] with the weights' ranges measured beforehand (`WeightRanges::of(model)`).
    pub fn with_ranges(
        model: &Model,
        config: PrecisionConfig,
        cal: Option<&Calibration>,
        weights: &WeightRanges,
    ) -> Result<Plan, EvalError> {
        let cal_for = |what: &str| {
            cal.ok_or_else(|| EvalError::Plan {
                config: config.to_string(),
                problem: format!("{what} needs calibration data"),
            })
        };
        let needs = |f: Format| matches!(f, Format::Fixed { frac: None, .. });
        let data = |t: DataTensor, f: Format| cal.map_or(0.0, |c| c.range(t, config.cal, f));
        let mut x_fmt = if needs(config.a) {
            cal_for("the input format")?;
            config.a.resolve(data(DataTensor::Input, config.a))
        } else {
            config.a.resolve(0.0)
        };
        let gate = config.a.resolve(1.0);
        let mut layers = Vec::with_capacity(model.layers.len());
        for (l, layer) in model.layers.iter().enumerate() {
            let h_fmt = config.a.resolve(data(DataTensor::H(l), config.a));
            let mut cells = Vec::with_capacity(layer.cells.len());
            for (k, cell) in layer.cells.iter().enumerate() {
                let bias: Vec<f32> = cell
                    .b_ih
                    .iter()
                    .zip(&cell.b_hh)
                    .map(|(a, b)| a + b)
                    .collect();
                let formats = CellFormats {
                    x: x_fmt,
                    h: h_fmt,
                    gate,
                    pre: config.p.resolve(data(DataTensor::Pre(l, k), config.p)),
                    c: config.c.resolve(data(DataTensor::C(l, k), config.c)),
                    w: config.w.resolve(weights.0[l][k][0]),
                    r: config.w.resolve(weights.0[l][k][1]),
                    b: config.w.resolve(max_abs(&bias)),
                    peep: config
                        .w
                        .resolve(cell.peephole.as_deref().map_or(0.0, max_abs)),
                };
                let rows = (config.wscale == WeightScale::Channel).then(|| {
                    RowFormats::resolve(config.w, &cell.w, &cell.r, 4 * layer.hidden_size)
                });
                cells.push(
                    CellPlan::new(cell, &bias, formats, layer.hidden_size, rows).map_err(
                        |problem| EvalError::Plan {
                            config: config.to_string(),
                            problem: format!("layer {l} direction {k}: {problem}"),
                        },
                    )?,
                );
            }
            layers.push(cells);
            x_fmt = h_fmt;
        }
        Ok(Plan { config, layers })
    }
}

impl CellPlan {
    /// A lower precision level of `high` (docs/NUMERICS.md section 11): `formats` keep each
    /// tensor's range with fewer fraction bits, and the weights and initial states are the
    /// high level's values rounded to them (dropping low bits, round half to even).
    pub fn derived(
        high: &CellPlan,
        formats: CellFormats,
        hidden: usize,
    ) -> Result<CellPlan, String> {
        let cell = Cell {
            w: high.w.clone(),
            r: high.r.clone(),
            b_ih: high.b.clone(),
            b_hh: vec![0.0; high.b.len()],
            peephole: high.peep.clone(),
            h0: Some(high.h0.clone()),
            c0: Some(high.c0.clone()),
        };
        CellPlan::new(&cell, &high.b, formats, hidden, None)
    }

    fn new(
        cell: &Cell,
        bias: &[f32],
        f: CellFormats,
        hidden: usize,
        rows: Option<RowFormats>,
    ) -> Result<CellPlan, String> {
        let zeros = vec![0.0; hidden];
        let h0 = round_all(f.h, cell.h0.as_deref().unwrap_or(&zeros));
        let c0 = round_all(f.c, cell.c0.as_deref().unwrap_or(&zeros));
        let sigmoid = Act::new(false, f.pre, f.gate);
        let tanh_pre = Act::new(true, f.pre, f.gate);
        let tanh_c = Act::new(true, f.c, f.gate);
        // On the integer datapath (every format fixed point, one format per tensor) the
        // weights' codes come out of the same pass as their values.
        let all_fixed = [f.x, f.h, f.gate, f.pre, f.c, f.w, f.r, f.b, f.peep]
            .iter()
            .all(|&t| fixed(t).is_some());
        let weights = |fmt: Resolved, v: &[f32], per_row: Option<&Vec<Resolved>>| match (
            per_row,
            fixed(fmt).filter(|_| all_fixed),
        ) {
            (Some(rf), _) => (round_rows(rf, v), None),
            (None, Some(q)) => match round_with_codes(q, v) {
                Some((values, codes)) => (values, Some(codes)),
                None => (round_all(fmt, v), None),
            },
            (None, None) => (round_all(fmt, v), None),
        };
        let (w, w_codes) = weights(f.w, &cell.w, rows.as_ref().map(|rf| &rf.w));
        let (r, r_codes) = weights(f.r, &cell.r, rows.as_ref().map(|rf| &rf.r));
        let mut plan = CellPlan {
            formats: f,
            w,
            r,
            b: round_all(f.b, bias),
            peep: cell.peephole.as_deref().map(|p| round_all(f.peep, p)),
            h0,
            c0,
            sigmoid,
            tanh_pre,
            tanh_c,
            int: None,
            rows,
            packs: FloatPacks::default(),
        };
        plan.int = IntCell::new(
            &plan,
            cell.w.len() / (4 * hidden),
            hidden,
            (w_codes, r_codes),
        )?;
        Ok(plan)
    }
}

impl CellPlan {
    /// W (`4H x input`) packed for the float kernels, on first use.
    pub(crate) fn w_packed(&self) -> &Packed<f32> {
        self.packs.w.packed(&self.w, self.b.len())
    }

    /// R (`4H x H`) packed for the float kernels, on first use.
    pub(crate) fn r_packed(&self) -> &Packed<f32> {
        self.packs.r.packed(&self.r, self.b.len())
    }

    /// W as bf16 pairs, on first use; `None` where the pair kernel cannot run it.
    pub(crate) fn w_pairs(&self) -> Option<&PackedPairs> {
        self.packs.w_pairs.packed(&self.w, self.b.len())
    }

    /// R as bf16 pairs, on first use; `None` where the pair kernel cannot run it.
    pub(crate) fn r_pairs(&self) -> Option<&PackedPairs> {
        self.packs.r_pairs.packed(&self.r, self.b.len())
    }
}
