//! The integer element-wise step ([`super::cell::int_unit`]) for eight lanes at once on
//! AVX-512 (here) or AVX2 ([`super::intcell_avx2`]): the same integer operations in the same
//! order (64-bit gate sums, round-half-to-even rescales, saturation, table look-ups by
//! gather), so the same codes. Lanes are independent, and every shift, bias and table of a
//! unit is the same for all its lanes, so the scalar code maps one-to-one onto vectors of i64.
//!
//! Covered: cells without peepholes or per-row weight scales, and rescales by right shifts of
//! 0..63 (the fx8 cells of the engine benchmark qualify); [`kernel`] says whether a cell
//! qualifies on this machine, and the caller runs the scalar unit otherwise. Tested against
//! [`super::cell::int_unit`] on random cells and sums (this module's tests, every kernel the
//! machine has), and end to end by `tests/engine.rs` against the scalar oracle of
//! NUMERICS.md.

use super::plan::IntCell;
use crate::format::Fixed;
use std::arch::x86_64::*;

/// An eight-lane step: `(q, j, x, live, h, c)` writes the new h and c codes of the first
/// `live` (1..=8) of eight lanes of unit `j` into `h[..live]`, `c[..live]`.
///
/// # Safety
/// Only as returned by [`kernel`] (which checked the CPU and `q`); every slice of `x` has at
/// least 8 elements, `h` and `c` at least `live`.
pub type Unit8 = unsafe fn(&IntCell, usize, &Lanes<'_>, usize, &mut [i32], &mut [i32]);

/// The vector step for `q` on this machine: AVX-512 (F, BW, DQ), else AVX2; `None` where
/// neither runs (or `LSTM_DSE_PORTABLE_KERNELS` is set), or `q` is not covered.
pub fn kernel(q: &IntCell) -> Option<Unit8> {
    let all = kernels_here();
    all.first().filter(|_| supports(q)).map(|&(_, k)| k)
}

/// Every vector step this machine can run, widest first, with its name.
fn kernels_here() -> Vec<(&'static str, Unit8)> {
    let mut all: Vec<(&'static str, Unit8)> = Vec::new();
    if crate::cpu::portable() {
        return all;
    }
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
    {
        all.push(("avx512", unit8));
    }
    if crate::cpu::avx2() {
        all.push(("avx2", super::intcell_avx2::unit8));
    }
    all
}

/// Whether the vector unit computes `q`'s step (else the scalar [`super::cell::int_unit`]
/// must).
pub fn supports(q: &IntCell) -> bool {
    let right = |s: i32| (0..64).contains(&s);
    q.peep.is_none()
        && q.row_extra.is_none()
        && right(q.pre_shift)
        && right(q.c_shift)
        && right(q.h_shift)
        && [q.shift_wx, q.shift_rh, q.shift_b, q.shift_fc, q.shift_ig]
            .iter()
            .all(|&s| s < 64)
}

/// Where eight lanes of one unit read their inputs: the four gates' W·x sums and R·h sums
/// (eight consecutive lanes each) and the previous cell codes.
pub struct Lanes<'a> {
    pub wx: [&'a [i64]; 4],
    pub rh: [&'a [i64]; 4],
    pub c_prev: &'a [i32],
}

/// [`Unit8`] on AVX-512.
///
/// # Safety
/// As [`Unit8`]; the CPU must have AVX-512F, BW and DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512dq")]
unsafe fn unit8(q: &IntCell, j: usize, x: &Lanes<'_>, live: usize, h: &mut [i32], c: &mut [i32]) {
    debug_assert!((1..=8).contains(&live) && h.len() >= live && c.len() >= live);
    let hsz = q.h0.len();
    let load = |v: &[i64]| _mm512_loadu_si512(v.as_ptr().cast());
    let sum = |g: usize| {
        let row = g * hsz + j;
        let wx = _mm512_slli_epi64_var(load(x.wx[g]), q.shift_wx);
        let rh = _mm512_slli_epi64_var(load(x.rh[g]), q.shift_rh);
        let b = _mm512_set1_epi64((q.b[row] as i64) << q.shift_b);
        _mm512_add_epi64(_mm512_add_epi64(wx, rh), b)
    };
    let c_prev = _mm512_cvtepi32_epi64(_mm256_loadu_si256(x.c_prev.as_ptr().cast()));
    let sig = |code: __m512i| lookup(&q.sigmoid, q.pre, code);
    let ig = sig(rescale8(sum(0), q.pre_shift, q.pre));
    let fg = sig(rescale8(sum(1), q.pre_shift, q.pre));
    let gg = lookup(&q.tanh_pre, q.pre, rescale8(sum(2), q.pre_shift, q.pre));
    let upd = _mm512_add_epi64(
        _mm512_slli_epi64_var(_mm512_mullo_epi64(fg, c_prev), q.shift_fc),
        _mm512_slli_epi64_var(_mm512_mullo_epi64(ig, gg), q.shift_ig),
    );
    let c_new = rescale8(upd, q.c_shift, q.c);
    let og = sig(rescale8(sum(3), q.pre_shift, q.pre));
    let tc = lookup(&q.tanh_c, q.c, c_new);
    let h_new = rescale8(_mm512_mullo_epi64(og, tc), q.h_shift, q.h);
    let keep: __mmask8 = if live >= 8 { 0xff } else { (1u8 << live) - 1 };
    _mm512_mask_cvtepi64_storeu_epi32(h.as_mut_ptr().cast(), keep, h_new);
    _mm512_mask_cvtepi64_storeu_epi32(c.as_mut_ptr().cast(), keep, c_new);
}

/// `acc << s` on every lane (a left shift by a run-time count below 64).
#[inline(always)]
unsafe fn _mm512_slli_epi64_var(acc: __m512i, s: u32) -> __m512i {
    _mm512_sll_epi64(acc, _mm_cvtsi64_si128(s as i64))
}

/// [`super::cell::rescale64`] on eight lanes, for shifts 0..=63: round half to even of
/// `acc / 2^shift`, saturated to `to`'s codes.
#[inline(always)]
unsafe fn rescale8(acc: __m512i, shift: i32, to: Fixed) -> __m512i {
    let v = if shift == 0 {
        acc
    } else {
        let s = shift as u32;
        let q = _mm512_sra_epi64(acc, _mm_cvtsi64_si128(s as i64));
        let r = _mm512_and_si512(acc, _mm512_set1_epi64(((1u64 << s) - 1) as i64));
        let half = _mm512_set1_epi64(1i64 << (s - 1));
        let odd = _mm512_test_epi64_mask(q, _mm512_set1_epi64(1));
        let up = _mm512_cmpgt_epi64_mask(r, half) | (_mm512_cmpeq_epi64_mask(r, half) & odd);
        _mm512_mask_add_epi64(q, up, q, _mm512_set1_epi64(1))
    };
    let lo = _mm512_set1_epi64(to.min_code() as i64);
    let hi = _mm512_set1_epi64(to.max_code() as i64);
    _mm512_min_epi64(_mm512_max_epi64(v, lo), hi)
}

/// `table[fmt.table_index(code)]` on eight lanes (codes within `fmt`'s range).
#[inline(always)]
unsafe fn lookup(table: &[i32], fmt: Fixed, code: __m512i) -> __m512i {
    let idx = _mm512_sub_epi64(code, _mm512_set1_epi64(fmt.min_code() as i64));
    debug_assert!(table.len() >= 1usize << fmt.bits);
    _mm512_cvtepi32_epi64(_mm512_i64gather_epi32::<4>(idx, table.as_ptr().cast()))
}

#[cfg(test)]
mod tests {
    use super::super::cell;
    use super::*;

    fn cell(s: &mut u64, bits: u32) -> IntCell {
        let mut next = || {
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            *s
        };
        let f = |b: u32, frac: i32| Fixed { bits: b, frac };
        let pre = f(bits, (next() % 12) as i32);
        let c = f(bits.max(8), (next() % 12) as i32);
        let gate = f(bits, bits as i32 - 1);
        let table = |n: usize, fmt: Fixed, next: &mut dyn FnMut() -> u64| -> Vec<i32> {
            (0..n)
                .map(|_| (next() % (1 << fmt.bits)) as i32 + fmt.min_code())
                .collect()
        };
        let hsz = 5;
        IntCell {
            w_fmt: f(bits, 6),
            r_fmt: f(bits, 6),
            x: f(bits, 4),
            h: f(bits, bits as i32 - 1),
            gate,
            pre,
            c,
            w: vec![],
            r: vec![],
            b: (0..4 * hsz).map(|_| (next() % 256) as i32 - 128).collect(),
            peep: None,
            h0: vec![0; hsz],
            c0: vec![0; hsz],
            shift_wx: (next() % 4) as u32,
            shift_rh: (next() % 4) as u32,
            shift_b: (next() % 8) as u32,
            shift_pc: 0,
            pre_shift: (next() % 20) as i32,
            shift_fc: (next() % 6) as u32,
            shift_ig: (next() % 6) as u32,
            c_shift: (next() % 20) as i32,
            h_shift: (next() % 20) as i32,
            row_extra: None,
            sigmoid: table(1 << pre.bits, gate, &mut next),
            tanh_pre: table(1 << pre.bits, gate, &mut next),
            tanh_c: table(1 << c.bits, gate, &mut next),
            packs: Default::default(),
        }
    }

    #[test]
    fn eight_lanes_equal_the_scalar_unit() {
        for (name, unit8) in kernels_here() {
            eight_lanes_of(name, unit8);
        }
    }

    fn eight_lanes_of(name: &str, unit8: Unit8) {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for round in 0..400 {
            let bits = [4, 6, 8, 10, 12, 16][round % 6];
            let q = cell(&mut s, bits);
            assert!(supports(&q));
            let mut next = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            // Sums from small to large (saturating), half-way cases included.
            let scale = 1i64 << (next() % 40);
            let sums = |n: &mut dyn FnMut() -> u64| -> Vec<i64> {
                (0..8)
                    .map(|_| match n() % 4 {
                        0 => (n() as i64 % scale) | 1 << (q.pre_shift.max(1) - 1),
                        _ => n() as i64 % scale,
                    })
                    .collect()
            };
            let wx: Vec<Vec<i64>> = (0..4).map(|_| sums(&mut next)).collect();
            let rh: Vec<Vec<i64>> = (0..4).map(|_| sums(&mut next)).collect();
            let c_prev: Vec<i32> = (0..8)
                .map(|_| (next() % (1 << q.c.bits)) as i32 + q.c.min_code())
                .collect();
            for j in 0..q.h0.len() {
                let live = 1 + (next() % 8) as usize;
                let (mut h, mut c) = (vec![-7i32; 8], vec![-7i32; 8]);
                let lanes = Lanes {
                    wx: [0, 1, 2, 3].map(|g| &wx[g][..]),
                    rh: [0, 1, 2, 3].map(|g| &rh[g][..]),
                    c_prev: &c_prev,
                };
                // SAFETY: kernels_here() checked the CPU; supports(q) asserted; 8-long slices.
                unsafe { unit8(&q, j, &lanes, live, &mut h, &mut c) };
                for n in 0..8 {
                    if n >= live {
                        assert_eq!(
                            (h[n], c[n]),
                            (-7, -7),
                            "{name}: lane {n} past the live ones"
                        );
                        continue;
                    }
                    let sum =
                        |g: usize| cell::int_gate_sum(&q, g * q.h0.len() + j, wx[g][n], rh[g][n]);
                    let want = cell::int_unit(&q, j, [sum(0), sum(1), sum(2), sum(3)], c_prev[n]);
                    assert_eq!(
                        (h[n], c[n]),
                        want,
                        "{name}: round {round} unit {j} lane {n}"
                    );
                }
            }
        }
    }
}
