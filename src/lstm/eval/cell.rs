//! One direction of one layer over a whole sequence: the step of docs/NUMERICS.md, in its two
//! forms. The float form keeps f32 values of each tensor's format (fp32 is the special case
//! where every rounding is the identity); the integer form keeps codes and sums them exactly in
//! 64 bits. Both evaluate in the same fixed order, which the GPU kernels repeat.

use super::plan::{CellPlan, IntCell};
use crate::format::detmath::ftz;
use crate::format::fixed::rescale;
use crate::format::Fixed;

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
/// (`[T, stride]`).
pub fn run(p: &CellPlan, io: &CellIo, h_out: &mut [f32], c_out: &mut [f32]) {
    match &p.int {
        Some(q) => run_int(q, io, h_out, c_out),
        None => run_float(p, io, h_out, c_out),
    }
}

/// One f32 operation of the float datapath: subnormal results are flushed after every
/// operation, so that devices that flush and devices that do not agree bit for bit.
#[inline(always)]
pub(crate) fn add(a: f32, b: f32) -> f32 {
    ftz(a + b)
}

#[inline(always)]
pub(crate) fn mul(a: f32, b: f32) -> f32 {
    ftz(a * b)
}

/// The element-wise part of a float step for unit j (NUMERICS.md §6): the four gate sums
/// (bias included), the previous cell value; returns (h, c, the four pre-activations with
/// their peephole terms).
#[inline]
pub(crate) fn float_unit(
    p: &CellPlan,
    j: usize,
    sums: [f32; 4],
    c_prev: f32,
) -> (f32, f32, [f32; 4]) {
    let f = &p.formats;
    let h = p.b.len() / 4;
    let [mut ai, mut af, ag, mut ao] = sums;
    if let Some(pp) = &p.peep {
        ai = add(ai, mul(pp[j], c_prev));
        af = add(af, mul(pp[h + j], c_prev));
    }
    let ig = p.sigmoid.apply(f.pre.round(ai));
    let fg = p.sigmoid.apply(f.pre.round(af));
    let gg = p.tanh_pre.apply(f.pre.round(ag));
    let c_new = f.c.round(add(mul(fg, c_prev), mul(ig, gg)));
    if let Some(pp) = &p.peep {
        ao = add(ao, mul(pp[2 * h + j], c_new));
    }
    let og = p.sigmoid.apply(f.pre.round(ao));
    let h_new = f.h.round(mul(og, p.tanh_c.apply(c_new)));
    (h_new, c_new, [ai, af, ag, ao])
}

fn run_float(p: &CellPlan, io: &CellIo, h_out: &mut [f32], c_out: &mut [f32]) {
    let (i, h) = (io.input, io.hidden);
    let f = &p.formats;
    let mut hv = p.h0.clone();
    let mut cv = p.c0.clone();
    let mut xq = vec![0.0f32; i];
    let mut acc = vec![0.0f32; 4 * h];
    for s in 0..io.steps {
        let t = if io.reversed { io.steps - 1 - s } else { s };
        for (q, &x) in xq.iter_mut().zip(&io.xs[t * i..(t + 1) * i]) {
            *q = f.x.round(x);
        }
        float_step(p, &xq, &mut hv, &mut cv, &mut acc);
        let row = t * io.stride + io.offset;
        h_out[row..row + h].copy_from_slice(&hv);
        c_out[row..row + h].copy_from_slice(&cv);
    }
}

/// One step of the float datapath (NUMERICS.md section 6): input values `xq` (already in the
/// x format), states `hv`, `cv` updated in place; `acc` is scratch of 4H.
pub fn float_step(p: &CellPlan, xq: &[f32], hv: &mut [f32], cv: &mut [f32], acc: &mut [f32]) {
    let (i, h) = (xq.len(), hv.len());
    for (j, a) in acc.iter_mut().enumerate() {
        let mut sum = 0.0f32;
        for (&w, &x) in p.w[j * i..(j + 1) * i].iter().zip(xq) {
            sum = add(sum, mul(w, x));
        }
        for (&r, &hk) in p.r[j * h..(j + 1) * h].iter().zip(hv.iter()) {
            sum = add(sum, mul(r, hk));
        }
        *a = add(sum, p.b[j]);
    }
    for jj in 0..h {
        let sums = [acc[jj], acc[h + jj], acc[2 * h + jj], acc[3 * h + jj]];
        let (h_new, c_new, _) = float_unit(p, jj, sums, cv[jj]);
        cv[jj] = c_new;
        hv[jj] = h_new;
    }
}

fn run_int(q: &IntCell, io: &CellIo, h_out: &mut [f32], c_out: &mut [f32]) {
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
}

/// One step of the integer datapath (NUMERICS.md section 7): input codes `xq`, state codes
/// `hv`, `cv` updated in place; `acc` is scratch of 4H.
pub fn int_step(q: &IntCell, xq: &[i32], hv: &mut [i32], cv: &mut [i32], acc: &mut [i64]) {
    let (i, h) = (xq.len(), hv.len());
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
        *a = int_gate_sum(q, j, wx, rh);
    }
    for jj in 0..h {
        let sums = [acc[jj], acc[h + jj], acc[2 * h + jj], acc[3 * h + jj]];
        let (h_new, c_new) = int_unit(q, jj, sums, cv[jj]);
        hv[jj] = h_new;
        cv[jj] = c_new;
    }
}

/// The accumulator of gate row `j` from the exact sums W·x and R·h (NUMERICS.md §7).
#[inline(always)]
pub(crate) fn int_gate_sum(q: &IntCell, j: usize, wx: i64, rh: i64) -> i64 {
    let (ew, er) = q.row_extra.as_ref().map_or((0, 0), |e| e[j]);
    (wx << (q.shift_wx + ew)) + (rh << (q.shift_rh + er)) + ((q.b[j] as i64) << q.shift_b)
}

/// [`rescale`] on 64-bit integers (the hot path of [`int_unit`]): the same result for every
/// input (a test compares them); negative shifts go to [`rescale`] itself.
#[inline(always)]
pub(crate) fn rescale64(acc: i64, shift: i32, to: Fixed) -> i32 {
    let v = if shift < 0 {
        return rescale(acc, shift, to);
    } else if shift == 0 {
        acc
    } else if shift >= 64 {
        // |acc / 2^shift| <= 1/2, and exactly 1/2 only for -2^63 / 2^64, which rounds to
        // the even 0.
        0
    } else {
        let s = shift as u32;
        let q = acc >> s;
        let r = acc & ((1u64 << s) - 1) as i64;
        let half = 1i64 << (s - 1);
        if r > half || (r == half && q & 1 == 1) {
            q + 1
        } else {
            q
        }
    };
    v.clamp(to.min_code() as i64, to.max_code() as i64) as i32
}

/// The element-wise part of an integer step for unit j: the four gate accumulators and the
/// previous cell code; returns the new (h, c) codes.
#[inline]
pub(crate) fn int_unit(q: &IntCell, j: usize, sums: [i64; 4], c_prev: i32) -> (i32, i32) {
    let h = q.h0.len();
    let sig = |code: i32| q.sigmoid[q.pre.table_index(code)] as i64;
    let [mut ai, mut af, ag, mut ao] = sums;
    if let Some(pp) = &q.peep {
        ai += (pp[j] as i64 * c_prev as i64) << q.shift_pc;
        af += (pp[h + j] as i64 * c_prev as i64) << q.shift_pc;
    }
    let ig = sig(rescale64(ai, q.pre_shift, q.pre));
    let fg = sig(rescale64(af, q.pre_shift, q.pre));
    let pg = rescale64(ag, q.pre_shift, q.pre);
    let gg = q.tanh_pre[q.pre.table_index(pg)] as i64;
    let upd = ((fg * c_prev as i64) << q.shift_fc) + ((ig * gg) << q.shift_ig);
    let c_new = rescale64(upd, q.c_shift, q.c);
    if let Some(pp) = &q.peep {
        ao += (pp[2 * h + j] as i64 * c_new as i64) << q.shift_pc;
    }
    let og = sig(rescale64(ao, q.pre_shift, q.pre));
    let tc = q.tanh_c[q.c.table_index(c_new)] as i64;
    (rescale64(og * tc, q.h_shift, q.h), c_new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn rescale64_equals_rescale(acc in any::<i64>(), small in -5000i64..5000, pick in 0u8..4,
                                    shift in -70i32..110, bits in 2u32..=24, frac in -8i32..30) {
            let acc = match pick {
                0 => acc,
                1 => small,
                2 => i64::MIN + small.abs(),
                _ => (small << (shift.clamp(0, 40) as u32)) + (1 << (shift.clamp(1, 40) - 1)),
            };
            let to = Fixed { bits, frac };
            prop_assert_eq!(rescale64(acc, shift, to), rescale(acc, shift, to));
        }
    }

    #[test]
    fn rescale64_edges() {
        let to = Fixed { bits: 24, frac: 0 };
        for acc in [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            i64::MAX,
            3 << 20,
            -(3 << 20),
            5 << 19,
        ] {
            for shift in [-3, 0, 1, 2, 20, 21, 62, 63, 64, 65, 99, 100, 101] {
                assert_eq!(
                    rescale64(acc, shift, to),
                    rescale(acc, shift, to),
                    "{acc} {shift}"
                );
            }
        }
    }
}
