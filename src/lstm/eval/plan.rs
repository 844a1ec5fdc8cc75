//! From (model, precision config, calibration) to everything a cell needs to run: the
//! resolved format of every tensor, the quantized weights, the activation lookup tables and,
//! on the integer datapath, the accumulator alignment shifts (checked to fit 64 bits).
//! This is the part a GPU kernel uploads once per configuration.

use super::calib::Histogram;
use super::exact::ExactProduct;
use super::gemm::Packed;
use super::packs::{FloatPacks, IntPacks};
use super::EvalError;
use crate::format::{
    detmath, fixed::rescale_bound_ok, tensor, CalRule, Fixed, Format, PrecisionConfig, Resolved,
    WeightScale,
};
use crate::lstm::{Cell, Model};
use rayon::prelude::*;

/// Largest magnitudes seen in an fp32 run over the batch: they choose the fraction bits of
/// `fx<bits>` formats for tensors whose range is only known from data. With `hist`, the whole
/// distributions too, for the calibration rules other than `max` ([`super::calib`]).
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

/// An activation unit: a table over every code of its input format when that format has at
/// most 16 bits (entries already rounded to the output format), else computed in f32.
#[derive(Debug, Clone)]
pub enum Act {
    Table { input: Resolved, values: Vec<f32> },
    Direct { tanh: bool, out: Resolved },
}

impl Act {
    fn new(tanh: bool, input: Resolved, out: Resolved) -> Act {
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
    fn codes(&self, out: Fixed) -> Vec<i32> {
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

/// The integer datapath of one cell: codes, tables of codes and alignment shifts.
#[derive(Debug, Clone)]
pub struct IntCell {
    pub w_fmt: Fixed,
    pub r_fmt: Fixed,
    pub x: Fixed,
    pub h: Fixed,
    pub gate: Fixed,
    pub pre: Fixed,
    pub c: Fixed,
    pub w: Vec<i32>,
    pub r: Vec<i32>,
    pub b: Vec<i32>,
    pub peep: Option<Vec<i32>>,
    pub h0: Vec<i32>,
    pub c0: Vec<i32>,
    /// Left shifts that bring W.x, R.h, b and P.c to the accumulator's fraction bits.
    pub shift_wx: u32,
    pub shift_rh: u32,
    pub shift_b: u32,
    pub shift_pc: u32,
    /// Right shift from the accumulator to the pre-activation format (may be negative).
    pub pre_shift: i32,
    /// Cell update: left shifts of f*c and i*g to a common frac, right shift to c.
    pub shift_fc: u32,
    pub shift_ig: u32,
    pub c_shift: i32,
    /// Right shift from o*tanh(c) (2 * gate frac) to h.
    pub h_shift: i32,
    /// `wscale=channel`: per row, the extra left shifts of W·x and R·h (the row's fraction
    /// bits below the finest row's).
    pub row_extra: Option<Vec<(u32, u32)>>,
    pub sigmoid: Vec<i32>,
    pub tanh_pre: Vec<i32>,
    pub tanh_c: Vec<i32>,
    /// W and R codes packed for the exact products on first use.
    pub(crate) packs: IntPacks,
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
fn round_all(f: Resolved, v: &[f32]) -> Vec<f32> {
    match f {
        Resolved::Fp32 => tensor::map(v, detmath::ftz),
        Resolved::Fixed(q) => {
            let (code, value) = (q.quantizer(), q.dequantizer());
            tensor::map(v, |x| value(code(x)))
        }
        Resolved::Float(ff) => tensor::map(v, |x| ff.round(x)),
    }
}

fn fixed(f: Resolved) -> Option<Fixed> {
    match f {
        Resolved::Fixed(x) => Some(x),
        _ => None,
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
                    w: config.w.resolve(max_abs(&cell.w)),
                    r: config.w.resolve(max_abs(&cell.r)),
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
        let mut plan = CellPlan {
            formats: f,
            w: match &rows {
                Some(rf) => round_rows(&rf.w, &cell.w),
                None => round_all(f.w, &cell.w),
            },
            r: match &rows {
                Some(rf) => round_rows(&rf.r, &cell.r),
                None => round_all(f.r, &cell.r),
            },
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
        plan.int = IntCell::new(&plan, cell.w.len() / (4 * hidden), hidden)?;
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
}

impl IntCell {
    /// W codes packed for the exact product with x codes, on first use.
    pub(crate) fn w_product(&self) -> &ExactProduct {
        self.packs
            .w
            .packed(&self.w, self.b.len(), self.x.max_code_abs())
    }

    /// R codes packed for the exact product with h codes, on first use.
    pub(crate) fn r_product(&self) -> &ExactProduct {
        self.packs
            .r
            .packed(&self.r, self.b.len(), self.h.max_code_abs())
    }

    /// `None` unless every format is fixed point.
    fn new(p: &CellPlan, input: usize, hidden: usize) -> Result<Option<IntCell>, String> {
        let f = &p.formats;
        let all = [f.x, f.h, f.gate, f.pre, f.c, f.w, f.r, f.b, f.peep].map(fixed);
        let [Some(x), Some(h), Some(gate), Some(pre), Some(c), Some(w), Some(r), Some(b), Some(pf)] =
            all
        else {
            return Ok(None);
        };
        let codes = |fmt: Fixed, v: &[f32]| tensor::map(v, fmt.quantizer());
        // Per-row weight formats: the accumulator aligns to the finest row; each row's W·x and
        // R·h are shifted further left by its fraction bits below that (exact).
        let row_fixed =
            |v: &[Resolved]| v.iter().map(|&r| fixed(r)).collect::<Option<Vec<Fixed>>>();
        let row_fmts = match &p.rows {
            Some(rf) => match (row_fixed(&rf.w), row_fixed(&rf.r)) {
                (Some(rw), Some(rr)) => Some((rw, rr)),
                _ => return Ok(None),
            },
            None => None,
        };
        let finest = |v: &[Fixed], base: Fixed| {
            v.iter().map(|f| f.frac).max().map_or(base, |frac| Fixed {
                bits: base.bits,
                frac,
            })
        };
        let (w, r) = match &row_fmts {
            Some((rw, rr)) => (finest(rw, w), finest(rr, r)),
            None => (w, r),
        };
        let row_extra: Option<Vec<(u32, u32)>> = row_fmts.as_ref().map(|(rw, rr)| {
            rw.iter()
                .zip(rr)
                .map(|(a, b)| ((w.frac - a.frac) as u32, (r.frac - b.frac) as u32))
                .collect()
        });
        let max_extra = row_extra.as_ref().map_or((0, 0), |v| {
            v.iter()
                .fold((0, 0), |m, e| (m.0.max(e.0 as i32), m.1.max(e.1 as i32)))
        });
        let row_codes = |fmts: &[Fixed], v: &[f32]| -> Vec<i32> {
            let k = v.len() / fmts.len().max(1);
            v.par_chunks(k.max(1))
                .zip(fmts)
                .flat_map_iter(|(row, f)| row.iter().map(|&x| f.quantize(x)))
                .collect()
        };
        // Pre-activation accumulator: every term at the largest fraction-bit count among them.
        let has_peep = p.peep.is_some();
        let f_wx = w.frac + x.frac;
        let f_rh = r.frac + h.frac;
        let f_pc = pf.frac + c.frac;
        let acc = f_wx
            .max(f_rh)
            .max(b.frac)
            .max(if has_peep { f_pc } else { i32::MIN });
        let (shift_wx, shift_rh, shift_b, shift_pc) = (
            acc - f_wx,
            acc - f_rh,
            acc - b.frac,
            if has_peep { acc - f_pc } else { 0 },
        );
        // A pre-activation format finer than the accumulator widens the sum before rescaling.
        let widen = (pre.frac - acc).max(0);
        let terms = [
            (
                input as f64,
                w.bits + x.bits - 2,
                shift_wx + widen + max_extra.0,
            ),
            (
                hidden as f64,
                r.bits + h.bits - 2,
                shift_rh + widen + max_extra.1,
            ),
            (1.0, b.bits - 1, shift_b + widen),
            (
                if has_peep { 1.0 } else { 0.0 },
                pf.bits + c.bits - 2,
                shift_pc + widen,
            ),
        ];
        if !rescale_bound_ok(&terms) {
            return Err(format!(
                "the gate accumulator would exceed 64 bits (fraction bits W {} x {}, R {} h {}, b {}): give explicit fraction bits closer together",
                w.frac, x.frac, r.frac, h.frac, b.frac
            ));
        }
        // Cell update: f*c + i*g.
        let f_fc = gate.frac + c.frac;
        let f_ig = 2 * gate.frac;
        let upd = f_fc.max(f_ig);
        let (shift_fc, shift_ig) = ((upd - f_fc) as u32, (upd - f_ig) as u32);
        if !rescale_bound_ok(&[
            (1.0, gate.bits + c.bits - 2, shift_fc as i32),
            (1.0, 2 * gate.bits - 2, shift_ig as i32),
        ]) {
            return Err("the cell-update sum would exceed 64 bits".into());
        }
        Ok(Some(IntCell {
            w_fmt: w,
            r_fmt: r,
            x,
            h,
            gate,
            pre,
            c,
            w: match &row_fmts {
                Some((rw, _)) => row_codes(rw, &p.w),
                None => codes(w, &p.w),
            },
            r: match &row_fmts {
                Some((_, rr)) => row_codes(rr, &p.r),
                None => codes(r, &p.r),
            },
            b: codes(b, &p.b),
            peep: p.peep.as_deref().map(|v| codes(pf, v)),
            h0: codes(h, &p.h0),
            c0: codes(c, &p.c0),
            shift_wx: shift_wx as u32,
            shift_rh: shift_rh as u32,
            shift_b: shift_b as u32,
            shift_pc: shift_pc as u32,
            pre_shift: acc - pre.frac,
            shift_fc,
            shift_ig,
            c_shift: upd - c.frac,
            h_shift: f_ig - h.frac,
            row_extra,
            sigmoid: p.sigmoid.codes(gate),
            tanh_pre: p.tanh_pre.codes(gate),
            tanh_c: p.tanh_c.codes(gate),
            packs: IntPacks::default(),
        }))
    }
}
