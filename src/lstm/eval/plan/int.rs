//! The integer datapath of a cell: weights, states and activation tables as fixed-point
//! codes, and the accumulator alignment shifts, each checked to fit 64 bits.

use super::{fixed, CellPlan};
use crate::format::{fixed::rescale_bound_ok, tensor, Fixed, Resolved};
use crate::lstm::eval::exact::ExactProduct;
use crate::lstm::eval::packs::IntPacks;
use rayon::prelude::*;

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

    /// `None` unless every format is fixed point. `known`: the codes of W and R where the
    /// plan already has them (those of `p.w` and `p.r` in their formats).
    pub(super) fn new(
        p: &CellPlan,
        input: usize,
        hidden: usize,
        known: (Option<Vec<i32>>, Option<Vec<i32>>),
    ) -> Result<Option<IntCell>, String> {
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
            w: match (&row_fmts, known.0) {
                (Some((rw, _)), _) => row_codes(rw, &p.w),
                (None, Some(c)) => c,
                (None, None) => codes(w, &p.w),
            },
            r: match (&row_fmts, known.1) {
                (Some((_, rr)), _) => row_codes(rr, &p.r),
                (None, Some(c)) => c,
                (None, None) => codes(r, &p.r),
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
