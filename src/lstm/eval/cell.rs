//! One direction of one layer over a whole sequence: the step of docs/NUMERICS.md, in its two
//! forms. The float form keeps f32 values of each tensor's format (fp32 is the special case
//! where every rounding is the identity); the integer form keeps codes and sums them exactly in
//! 64 bits. Both evaluate in the same fixed order, which the GPU kernels repeat.

use super::plan::{CellPlan, CellRange, IntCell};
use crate::format::detmath::ftz;
use crate::format::fixed::rescale;

/// Where a cell reads its input and writes its states.
pub struct CellIo<'a> {
    /// The layer input, `[T, input]`.
    pub xs: &'a [f32],
    pub input: usize,
    pub hidden: usize,
    pub steps: usize,
    pub reversed: bool,
    /// This direction's column offset in the layer output rows of width `stride`.
    pub offset: usize,
    pub stride: usize,
}

/// Runs the cell over the sequence, writing h and c (as f32 values) into `h_out` / `c_out`
/// (`[T, stride]`), and returns the ranges seen (for calibration).
pub fn run(p: &CellPlan, io: &CellIo, h_out: &mut [f32], c_out: &mut [f32]) -> CellRange {
    match &p.int {
        Some(q) => run_int(q, io, h_out, c_out),
        None => run_float(p, io, h_out, c_out),
    }
}

fn run_float(p: &CellPlan, io: &CellIo, h_out: &mut [f32], c_out: &mut [f32]) -> CellRange {
    let (i, h) = (io.input, io.hidden);
    let f = &p.formats;
    // Subnormal results are flushed after every operation, so that devices that flush and
    // devices that do not agree bit for bit.
    let add = |a: f32, b: f32| ftz(a + b);
    let mul = |a: f32, b: f32| ftz(a * b);
    let mut hv = p.h0.clone();
    let mut cv = p.c0.clone();
    let mut xq = vec![0.0f32; i];
    let mut acc = vec![0.0f32; 4 * h];
    let mut range = CellRange::default();
    for s in 0..io.steps {
        let t = if io.reversed { io.steps - 1 - s } else { s };
        for (q, &x) in xq.iter_mut().zip(&io.xs[t * i..(t + 1) * i]) {
            *q = f.x.round(x);
        }
        for (j, a) in acc.iter_mut().enumerate() {
            let mut sum = 0.0f32;
            for (&w, &x) in p.w[j * i..(j + 1) * i].iter().zip(&xq) {
                sum = add(sum, mul(w, x));
            }
            for (&r, &hk) in p.r[j * h..(j + 1) * h].iter().zip(&hv) {
                sum = add(sum, mul(r, hk));
            }
            sum = add(sum, p.b[j]);
            *a = sum;
        }
        for jj in 0..h {
            let (mut ai, mut af) = (acc[jj], acc[h + jj]);
            if let Some(pp) = &p.peep {
                ai = add(ai, mul(pp[jj], cv[jj]));
                af = add(af, mul(pp[h + jj], cv[jj]));
            }
            let (pi, pf, pg) = (
                f.pre.round(ai),
                f.pre.round(af),
                f.pre.round(acc[2 * h + jj]),
            );
            let ig = p.sigmoid.apply(pi);
            let fg = p.sigmoid.apply(pf);
            let gg = p.tanh_pre.apply(pg);
            let c_new = f.c.round(add(mul(fg, cv[jj]), mul(ig, gg)));
            let mut ao = acc[3 * h + jj];
            if let Some(pp) = &p.peep {
                ao = add(ao, mul(pp[2 * h + jj], c_new));
            }
            let po = f.pre.round(ao);
            let og = p.sigmoid.apply(po);
            let h_new = f.h.round(mul(og, p.tanh_c.apply(c_new)));
            range.pre_max = range
                .pre_max
                .max(ai.abs())
                .max(af.abs())
                .max(acc[2 * h + jj].abs())
                .max(ao.abs());
            range.c_max = range.c_max.max(c_new.abs()).max(cv[jj].abs());
            cv[jj] = c_new;
            hv[jj] = h_new;
        }
        let row = t * io.stride + io.offset;
        h_out[row..row + h].copy_from_slice(&hv);
        c_out[row..row + h].copy_from_slice(&cv);
    }
    range
}

fn run_int(q: &IntCell, io: &CellIo, h_out: &mut [f32], c_out: &mut [f32]) -> CellRange {
    let (i, h) = (io.input, io.hidden);
    let mut hv = q.h0.clone();
    let mut cv = q.c0.clone();
    let mut xq = vec![0i32; i];
    let mut acc = vec![0i64; 4 * h];
    for s in 0..io.steps {
        let t = if io.reversed { io.steps - 1 - s } else { s };
        for (c, &x) in xq.iter_mut().zip(&io.xs[t * i..(t + 1) * i]) {
            *c = q.x.quantize(x);
        }
        int_step(q, &xq, &mut hv, &mut cv, &mut acc);
        let row = t * io.stride + io.offset;
        for jj in 0..h {
            h_out[row + jj] = q.h.to_f32(hv[jj]);
            c_out[row + jj] = q.c.to_f32(cv[jj]);
        }
    }
    CellRange::default()
}

/// One step of the integer datapath (NUMERICS.md section 7): input codes `xq`, state codes
/// `hv`, `cv` updated in place; `acc` is scratch of 4H.
pub fn int_step(q: &IntCell, xq: &[i32], hv: &mut [i32], cv: &mut [i32], acc: &mut [i64]) {
    let (i, h) = (xq.len(), hv.len());
    let sig = |code: i32| q.sigmoid[q.pre.table_index(code)] as i64;
    for (j, a) in acc.iter_mut().enumerate() {
        let wx: i64 = q.w[j * i..(j + 1) * i]
            .iter()
            .zip(xq)
            .map(|(&w, &x)| w as i64 * x as i64)
            .sum();
        let rh: i64 = q.r[j * h..(j + 1) * h]
            .iter()
            .zip(hv.iter())
            .map(|(&r, &x)| r as i64 * x as i64)
            .sum();
        *a = (wx << q.shift_wx) + (rh << q.shift_rh) + ((q.b[j] as i64) << q.shift_b);
    }
    for jj in 0..h {
        let (mut ai, mut af) = (acc[jj], acc[h + jj]);
        if let Some(pp) = &q.peep {
            ai += (pp[jj] as i64 * cv[jj] as i64) << q.shift_pc;
            af += (pp[h + jj] as i64 * cv[jj] as i64) << q.shift_pc;
        }
        let ig = sig(rescale(ai, q.pre_shift, q.pre));
        let fg = sig(rescale(af, q.pre_shift, q.pre));
        let pg = rescale(acc[2 * h + jj], q.pre_shift, q.pre);
        let gg = q.tanh_pre[q.pre.table_index(pg)] as i64;
        let upd = ((fg * cv[jj] as i64) << q.shift_fc) + ((ig * gg) << q.shift_ig);
        let c_new = rescale(upd, q.c_shift, q.c);
        let mut ao = acc[3 * h + jj];
        if let Some(pp) = &q.peep {
            ao += (pp[2 * h + jj] as i64 * c_new as i64) << q.shift_pc;
        }
        let og = sig(rescale(ao, q.pre_shift, q.pre));
        let tc = q.tanh_c[q.c.table_index(c_new)] as i64;
        hv[jj] = rescale(og * tc, q.h_shift, q.h);
        cv[jj] = c_new;
    }
}
