//! The exact integer product of 8-bit codes on AVX-512 VNNI `vpdpbusd`: four byte products
//! per 32-bit lane in one instruction, twice the terms of `vpdpwssd` ([`super::intgemm`]).
//!
//! `vpdpbusd` multiplies unsigned bytes by signed bytes, so the B operand (activation codes in
//! -128..=127) is offset to `u = B + 128` (0..=255) and the offset is taken back once per
//! row: `Σ_k A[r][k]·B[k][c] = Σ_k A[r][k]·u[k][c] − 128·Σ_k A[r][k]`, all in integers.
//!
//! Exactness: a 32-bit lane gains at most `4·|A|max·255` per instruction; blocks of `q` k
//! quads are cut so that `q·4·|A|max·255` stays within `i32::MAX` ([`PackedI8::block_quads`])
//! and each block's 32-bit sums are widened into the 64-bit result (`vpdpbusd` wraps like
//! `vpaddd`, so below the bound nothing wraps). Integer sums do not depend on their order, so
//! the result equals the plain i64 loop bit for bit, whatever the blocking or thread count.
//!
//! A is packed once (panels of `MR` rows, k in quads: `[panel][k/4][MR][4]`, with its row
//! sums), B per product (`[strip of 16 columns][k/4][16][4]` offset bytes); k is padded with
//! zero terms of A.

use super::intgemm::{Layout, SendPtr};
use rayon::prelude::*;

/// Rows per panel (the microkernel takes `P` panels: P x 6 rows x 16 columns).
const MR: usize = 6;
/// Columns per strip (one zmm of 32-bit lanes).
const NR: usize = 16;
/// Quads of k per cache block (B strip block: 16 KiB).
const KCQ: usize = 256;
/// Rows per rayon task.
const ROWS_PER_TASK: usize = 16 * MR;
/// The offset that makes a signed byte unsigned.
const OFFSET: i64 = 128;

/// A `rows x k` matrix of codes in -128..=127 packed for the kernel.
#[derive(Debug, Clone)]
pub struct PackedI8 {
    pub rows: usize,
    pub k: usize,
    /// Quads of k (k rounded up to a multiple of four, quartered).
    kq: usize,
    data: Vec<i8>,
    /// `Σ_k A[r][k]` per row.
    row_sums: Vec<i64>,
    /// Largest |code|.
    pub max_abs: u64,
}

/// Whether the kernel can run here (AVX-512 with VNNI, and no `LSTM_DSE_PORTABLE_KERNELS`).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !crate::cpu::portable()
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl PackedI8 {
    /// Packs row-major `codes`; `None` when a code does not fit i8.
    pub fn new(codes: &[i32], rows: usize, k: usize) -> Option<Self> {
        Self::with_range(codes, rows, k, super::exact::range(codes))
    }

    /// [`PackedI8::new`] given `range`, the smallest and largest code
    /// ([`super::exact::range`]).
    pub(super) fn with_range(
        codes: &[i32],
        rows: usize,
        k: usize,
        range: (i64, i64),
    ) -> Option<Self> {
        debug_assert_eq!(codes.len(), rows * k);
        if range.0 < -128 || range.1 > 127 {
            return None;
        }
        let kq = k.div_ceil(4);
        let panels = rows.div_ceil(MR);
        let mut data = vec![0i8; panels * kq * MR * 4];
        let mut row_sums = vec![0i64; rows];
        // Each panel's rows packed and summed in one pass.
        data.par_chunks_mut((kq * MR * 4).max(1))
            .zip(row_sums.par_chunks_mut(MR))
            .enumerate()
            .for_each(|(p, (panel, sums))| {
                for (i, sum) in sums.iter_mut().enumerate() {
                    let row = &codes[(p * MR + i) * k..(p * MR + i + 1) * k];
                    for (kk, &v) in row.iter().enumerate() {
                        panel[(kk / 4) * MR * 4 + i * 4 + kk % 4] = v as i8;
                    }
                    *sum = row.iter().map(|&c| c as i64).sum();
                }
            });
        Some(PackedI8 {
            rows,
            k,
            kq,
            data,
            row_sums,
            max_abs: super::intgemm::max_abs(range),
        })
    }

    /// Quads of k per 32-bit block (at least one: four terms of at most 128 x 255 never
    /// overflow).
    pub fn block_quads(&self) -> usize {
        let quad = (4 * self.max_abs * 255).max(1);
        ((i32::MAX as u64 / quad) as usize).clamp(1, KCQ)
    }

    /// `A[r][kk]`, read back from the packing.
    pub(super) fn at(&self, r: usize, kk: usize) -> i64 {
        self.panel(r / MR)[(kk / 4) * MR * 4 + (r % MR) * 4 + kk % 4] as i64
    }

    fn panel(&self, p: usize) -> &[i8] {
        &self.data[p * self.kq * MR * 4..(p + 1) * self.kq * MR * 4]
    }
}

/// `out = A·B` exactly (`out`: `a.rows x ncols` in `layout`, overwritten). `b` is `a.k x
/// ncols` (stride ncols, ncols a multiple of 16) with every code in -128..=127. Needs
/// [`available`].
pub fn product(a: &PackedI8, b: &[i32], ncols: usize, out: &mut [i64], layout: Layout) {
    assert!(available() && ncols.is_multiple_of(NR));
    assert!(b.len() >= a.k * ncols && out.len() >= a.rows * ncols);
    debug_assert!(b[..a.k * ncols].iter().all(|&c| i8::try_from(c).is_ok()));
    // The offset taken back from every column of a row (also the whole result when k = 0).
    for (r, &sum) in a.row_sums.iter().enumerate() {
        let v = -OFFSET * sum;
        match layout {
            Layout::RowMajor => out[r * ncols..(r + 1) * ncols].fill(v),
            Layout::StripMajor => {
                for s in 0..ncols / NR {
                    out[s * a.rows * NR + r * NR..][..NR].fill(v);
                }
            }
        }
    }
    if a.rows == 0 || ncols == 0 || a.k == 0 {
        return;
    }
    // B in strips of 16 columns, k in quads, offset to unsigned: [strip][kq][16][4].
    let strip = a.kq * NR * 4;
    let mut bp = vec![OFFSET as u8; (ncols / NR) * strip];
    bp.par_chunks_mut(strip).enumerate().for_each(|(s, dst)| {
        for kk in 0..a.k {
            let row = &b[kk * ncols + s * NR..kk * ncols + (s + 1) * NR];
            for (j, &v) in row.iter().enumerate() {
                dst[(kk / 4) * NR * 4 + j * 4 + kk % 4] = (v as i64 + OFFSET) as u8;
            }
        }
    });
    let (c_strip, c_row) = match layout {
        Layout::RowMajor => (NR, ncols),
        Layout::StripMajor => (a.rows * NR, NR),
    };
    let base = SendPtr(out.as_mut_ptr());
    let tasks = a.rows.div_ceil(ROWS_PER_TASK);
    let block = a.block_quads();
    let body = |task: usize| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available()` checked the CPU. Task `task` writes only its own rows
        // `task*ROWS_PER_TASK ..+ rows` of `out` (of every strip), all inside `out`'s
        // `a.rows * ncols` elements; no two tasks share a row.
        unsafe {
            let first = task * ROWS_PER_TASK;
            avx512::task(&Task {
                a,
                first_panel: first / MR,
                rows: (a.rows - first).min(ROWS_PER_TASK),
                bp: &bp,
                strip,
                ncols,
                block,
                c: base.get().add(first * c_row),
                c_strip,
                c_row,
            });
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (task, &base, block, c_strip, c_row);
    };
    if a.rows * ncols * a.k < super::gemm::SERIAL_WORK as usize {
        (0..tasks).for_each(body);
    } else {
        (0..tasks).into_par_iter().for_each(body);
    }
}

/// One rayon task's share: rows `first_panel*MR ..+ rows` of A, written to `c` (the task's
/// first row; element (row r, column j) at `(j / 16) * c_strip + r * c_row + j % 16`).
#[cfg(target_arch = "x86_64")]
struct Task<'a> {
    a: &'a PackedI8,
    first_panel: usize,
    rows: usize,
    bp: &'a [u8],
    strip: usize,
    ncols: usize,
    block: usize,
    c: *mut i64,
    c_strip: usize,
    c_row: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Task, MR, NR};
    use std::arch::x86_64::*;

    /// Panels per tile: 2 x 6 rows, 12 accumulators (24 measured no faster here).
    const P: usize = 2;

    /// A task's rows on 12 x 16 tiles, k blocks in order, each block's B kept in L1 across
    /// the task's panels.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn task(t: &Task<'_>) {
        let panels = t.rows.div_ceil(MR);
        let mut kb = 0;
        while kb < t.a.kq {
            let ke = (kb + t.block).min(t.a.kq);
            for s in 0..t.ncols / NR {
                let b = &t.bp[s * t.strip + kb * NR * 4..s * t.strip + ke * NR * 4];
                for p in (0..panels).step_by(P) {
                    // Past the last panel: the last one again, its rows not stored.
                    let a: [&[i8]; P] = std::array::from_fn(|q| {
                        let panel = t.a.panel(t.first_panel + (p + q).min(panels - 1));
                        &panel[kb * MR * 4..ke * MR * 4]
                    });
                    let rows = (t.rows - p * MR).min(P * MR);
                    let c = t.c.add(s * t.c_strip + p * MR * t.c_row);
                    micro(a, b, c, t.c_row, rows);
                }
            }
            kb = ke;
        }
    }

    /// One block: a 12 x 16 tile of 32-bit sums from zero, then added to the 64-bit `c`
    /// (`rows` of them).
    #[inline(always)]
    unsafe fn micro(a: [&[i8]; P], b: &[u8], c: *mut i64, ldc: usize, rows: usize) {
        debug_assert_eq!(a[0].len() / (MR * 4), b.len() / (NR * 4));
        let mut acc = [[_mm512_setzero_si512(); MR]; P];
        let mut bq = b.as_ptr();
        for kq in 0..b.len() / (NR * 4) {
            let bv = _mm512_loadu_si512(bq.cast());
            for (panel, ap) in acc.iter_mut().zip(a) {
                let ap = ap.as_ptr().add(kq * MR * 4);
                for (i, acc) in panel.iter_mut().enumerate() {
                    let ai = _mm512_set1_epi32(ap.add(4 * i).cast::<i32>().read_unaligned());
                    *acc = _mm512_dpbusd_epi32(*acc, bv, ai);
                }
            }
            bq = bq.add(NR * 4);
        }
        super::super::intgemm::avx512::widen_add(&acc, c, ldc, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::super::exact::plain_product as plain;
    use super::*;
    use proptest::prelude::*;

    /// Codes in `lo..=hi` from `seed`; `extreme`: only the two ends.
    fn codes(n: usize, lo: i32, hi: i32, seed: u64, extreme: bool) -> Vec<i32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                if extreme {
                    if s >> 63 == 0 {
                        lo
                    } else {
                        hi
                    }
                } else {
                    lo + ((s >> 33) % (hi - lo + 1) as u64) as i32
                }
            })
            .collect()
    }

    fn check(rows: usize, k: usize, cols: usize, a: &[i32], b: &[i32]) {
        let packed = PackedI8::new(a, rows, k).expect("codes fit i8");
        let want = plain(a, rows, k, b, cols);
        let mut got = vec![0i64; rows * cols];
        let at = |r, kk| packed.at(r, kk);
        super::super::exact::plain_packed(packed.rows, packed.k, at, b, cols, &mut got);
        assert_eq!(got, want, "plain on the packing: rows {rows} k {k}");
        if !available() {
            return;
        }
        let mut got = vec![7i64; rows * cols];
        product(&packed, b, cols, &mut got, Layout::RowMajor);
        assert_eq!(got, want, "rows {rows} k {k} cols {cols}");
        product(&packed, b, cols, &mut got, Layout::StripMajor);
        let rows_of = super::super::exact::strip_major_rows(&got, rows, cols);
        assert_eq!(rows_of, want, "strip-major: rows {rows} k {k} cols {cols}");
    }

    #[test]
    fn awkward_shapes_and_the_extreme_codes() {
        for (rows, k, cols) in [
            (1, 1, 16),
            (4, 3, 16),
            (12, 5, 16),
            (13, 33, 32),
            (132, 1000, 16),
            (7, 4099, 16),
            (3, 0, 16),
        ] {
            // Every term at the largest magnitude, all of one sign: the 32-bit blocks' worst
            // case (-128 x -128 and -128 x 127 sums).
            for (a, b) in [(-128, -128), (-128, 127), (127, -128)] {
                check(rows, k, cols, &vec![a; rows * k], &vec![b; k * cols]);
            }
            let a = codes(rows * k, -128, 127, 3, false);
            let b = codes(k * cols, -128, 127, 5, true);
            check(rows, k, cols, &a, &b);
        }
    }

    #[test]
    fn codes_wider_than_a_byte_are_refused() {
        assert!(PackedI8::new(&[128], 1, 1).is_none());
        assert!(PackedI8::new(&[-129], 1, 1).is_none());
        assert!(PackedI8::new(&[-128, 127], 1, 2).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn equals_the_plain_loop(rows in 1usize..40, k in 0usize..600, strips in 1usize..3,
                                 a_bits in 1u32..=8, b_bits in 1u32..=8, seed in any::<u64>(),
                                 extreme in any::<bool>()) {
            let cols = strips * NR;
            let (am, bm) = (1i32 << (a_bits - 1), 1i32 << (b_bits - 1));
            let a = codes(rows * k, -am, am - 1, seed, extreme);
            let b = codes(k * cols, -bm, bm - 1, seed ^ 0xabc, extreme);
            check(rows, k, cols, &a, &b);
        }
    }
}
