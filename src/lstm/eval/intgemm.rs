//! The exact integer product of narrow codes: `out[r][c] = Σ_k A[r][k]·B[k][c]` in i64, with
//! A and B codes that fit 16 bits, on `vpmaddwd` (16-bit products summed in pairs into 32-bit
//! lanes: eight per instruction on AVX2, sixteen on AVX-512BW) or, where the CPU has
//! AVX-512 VNNI, `vpdpwssd` (the same pair sums added to the 32-bit accumulator in one
//! instruction, wrapping like `vpaddd`: exact under the same block bound).
//!
//! Exactness: a pair sum is at most `2·|A|max·|B|max` in magnitude and a block of `m` pairs at
//! most `m` times that; blocks are cut so that this bound stays within `i32::MAX` (checked
//! when the weights are packed, [`PackedI16::new`]), and each block's 32-bit sums are widened
//! into the 64-bit result. Integer sums do not depend on their order, so the result equals the
//! plain loop over k in i64 bit for bit, whatever the blocking or the thread count.
//!
//! A is packed once (panels of `MR` = 6 rows, k in pairs: `[panel][k/2][MR][2]`), B per product
//! (`[strip of 16 columns][k/2][16][2]`); odd k is padded with a zero term.
//! The x86 microkernels are in `intgemm_simd.rs`.

use rayon::prelude::*;

/// Rows per panel and microkernel tile (12 accumulator registers of 8 x i32).
const MR: usize = 6;
/// Columns per strip (two registers of 8).
const NR: usize = 16;
/// Pairs of k per cache block (B strip: 16 KiB).
const KCP: usize = 256;
/// Rows per rayon task.
const ROWS_PER_TASK: usize = 16 * MR;

/// A `rows x k` matrix of codes packed for the kernel, with the largest pair-sum block it
/// allows for a given bound on B.
#[derive(Debug, Clone)]
pub struct PackedI16 {
    pub rows: usize,
    pub k: usize,
    /// Pairs of k (k rounded up to even, halved).
    kp: usize,
    data: Vec<i16>,
    /// Largest |code| (255 for the low half of a split: a bound, not looked for).
    pub max_abs: u64,
}

impl PackedI16 {
    /// Packs row-major `codes`; `None` when a code does not fit i16.
    pub fn new(codes: &[i32], rows: usize, k: usize) -> Option<Self> {
        Self::with_range(codes, rows, k, super::exact::range(codes))
    }

    /// [`PackedI16::new`] given `range`, the smallest and largest code
    /// ([`super::exact::range`]).
    pub(super) fn with_range(
        codes: &[i32],
        rows: usize,
        k: usize,
        range: (i64, i64),
    ) -> Option<Self> {
        fits_i16(range).then(|| Self::pack(codes, rows, k, |c| c as i16, max_abs(range)))
    }

    /// The halves `hi = A >> 8` and `lo = A & 255` of codes that fit i16 (`range` as in
    /// [`PackedI16::with_range`]): `A = 256·hi + lo`, each half a narrow product's operand.
    /// `None` when a code does not fit i16.
    pub(super) fn split(
        codes: &[i32],
        rows: usize,
        k: usize,
        range: (i64, i64),
    ) -> Option<(Self, Self)> {
        let hi_range = (range.0 >> 8, range.1 >> 8);
        fits_i16(range).then(|| {
            (
                Self::pack(codes, rows, k, |c| (c >> 8) as i16, max_abs(hi_range)),
                // 255 bounds every low half (the largest one is not looked for).
                Self::pack(codes, rows, k, |c| (c & 255) as i16, 255),
            )
        })
    }

    /// Packs `f` of every code (each in i16), `max_abs` bounding every |f(code)|.
    fn pack(
        codes: &[i32],
        rows: usize,
        k: usize,
        f: impl Fn(i32) -> i16 + Sync,
        max_abs: u64,
    ) -> Self {
        debug_assert_eq!(codes.len(), rows * k);
        let kp = k.div_ceil(2);
        let panels = rows.div_ceil(MR);
        let mut data = vec![0i16; panels * kp * MR * 2];
        data.par_chunks_mut((kp * MR * 2).max(1))
            .enumerate()
            .for_each(|(p, panel)| {
                for i in 0..MR.min(rows - p * MR) {
                    let row = &codes[(p * MR + i) * k..(p * MR + i + 1) * k];
                    for (kk, &v) in row.iter().enumerate() {
                        panel[(kk / 2) * MR * 2 + i * 2 + kk % 2] = f(v);
                    }
                }
            });
        PackedI16 {
            rows,
            k,
            kp,
            data,
            max_abs,
        }
    }

    /// Pairs per 32-bit block for operands B of at most `b_max` in magnitude: `None` when
    /// even one pair could overflow i32.
    pub fn block_pairs(&self, b_max: u64) -> Option<usize> {
        let pair = 2 * self.max_abs * b_max;
        if pair > i32::MAX as u64 {
            return None;
        }
        Some((i32::MAX as u64 / pair.max(1)).min(KCP as u64) as usize)
    }

    /// `A[r][kk]`, read back from the packing.
    pub(super) fn at(&self, r: usize, kk: usize) -> i64 {
        self.panel(r / MR)[(kk / 2) * MR * 2 + (r % MR) * 2 + kk % 2] as i64
    }

    fn panel(&self, p: usize) -> &[i16] {
        &self.data[p * self.kp * MR * 2..(p + 1) * self.kp * MR * 2]
    }
}

/// Whether codes in `range` (smallest, largest) fit i16.
fn fits_i16(range: (i64, i64)) -> bool {
    range.0 >= i16::MIN as i64 && range.1 <= i16::MAX as i64
}

/// The largest magnitude of codes in `range` (smallest, largest).
pub(super) fn max_abs(range: (i64, i64)) -> u64 {
    range.0.unsigned_abs().max(range.1.unsigned_abs())
}

/// The instruction sets the kernel is built for, widest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// AVX-512BW with VNNI: `vpdpwssd`, 12 rows x 16 columns.
    Avx512Vnni,
    /// AVX-512BW: `vpmaddwd` + `vpaddd` on zmm, 12 rows x 16 columns.
    Avx512,
    /// AVX2: `vpmaddwd` + `vpaddd` on ymm, 6 rows x 16 columns.
    Avx2,
}

impl Kernel {
    /// The widest kernel this machine runs (`None`: none, or `LSTM_DSE_PORTABLE_KERNELS` set).
    fn detect() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::portable() {
                return None;
            }
            if is_x86_feature_detected!("avx512bw") {
                if is_x86_feature_detected!("avx512vnni") {
                    return Some(Kernel::Avx512Vnni);
                }
                return Some(Kernel::Avx512);
            }
            if is_x86_feature_detected!("avx2") {
                return Some(Kernel::Avx2);
            }
        }
        None
    }

    /// Every kernel this machine runs (tests compare each with the plain loop).
    #[cfg(test)]
    fn all_here() -> Vec<Kernel> {
        let order = [Kernel::Avx512Vnni, Kernel::Avx512, Kernel::Avx2];
        match Kernel::detect() {
            Some(best) => order.into_iter().skip_while(|&k| k != best).collect(),
            None => Vec::new(),
        }
    }
}

/// Whether the kernel can run here (AVX2 or wider).
pub fn available() -> bool {
    Kernel::detect().is_some()
}

/// How the result is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[row][col]` (stride ncols).
    RowMajor,
    /// `[col / 16][row][col % 16]`: with 16 lanes per step, each step's sums are one
    /// contiguous block (what the recurrent loop reads).
    StripMajor,
}

/// `out = A·B` exactly (`out`: `a.rows x ncols` in `layout`, overwritten). `b` is `a.k x
/// ncols` (stride ncols, ncols a multiple of 16) with every |code| at most `b_max` and
/// fitting i16; `block` comes from [`PackedI16::block_pairs`]. Needs [`available`].
pub fn product(
    a: &PackedI16,
    b: &[i32],
    ncols: usize,
    block: usize,
    out: &mut [i64],
    layout: Layout,
) {
    let kernel = Kernel::detect().expect("intgemm::available()");
    product_on(kernel, a, b, ncols, block, out, layout)
}

/// [`product`] added to `out` instead of overwriting it: `out += A·B` (the low half of a split
/// product, without a buffer of its own).
pub fn product_add(
    a: &PackedI16,
    b: &[i32],
    ncols: usize,
    block: usize,
    out: &mut [i64],
    layout: Layout,
) {
    let kernel = Kernel::detect().expect("intgemm::available()");
    product_in(kernel, a, b, ncols, block, out, layout, true)
}

fn product_on(
    kernel: Kernel,
    a: &PackedI16,
    b: &[i32],
    ncols: usize,
    block: usize,
    out: &mut [i64],
    layout: Layout,
) {
    product_in(kernel, a, b, ncols, block, out, layout, false)
}

/// The kernel adds its blocks' sums to `out`: from zero, or (`add`) to what `out` holds.
#[allow(clippy::too_many_arguments)]
fn product_in(
    kernel: Kernel,
    a: &PackedI16,
    b: &[i32],
    ncols: usize,
    block: usize,
    out: &mut [i64],
    layout: Layout,
    add: bool,
) {
    assert!(ncols.is_multiple_of(NR) && block >= 1);
    assert!(b.len() >= a.k * ncols && out.len() >= a.rows * ncols);
    if !add {
        out[..a.rows * ncols].fill(0);
    }
    if a.rows == 0 || ncols == 0 || a.k == 0 {
        return;
    }
    // B in strips of 16 columns, k in pairs: [strip][kp][16][2].
    let strip = a.kp * NR * 2;
    let mut bp = vec![0i16; (ncols / NR) * strip];
    bp.par_chunks_mut(strip).enumerate().for_each(|(s, dst)| {
        for kk in 0..a.k {
            let row = &b[kk * ncols + s * NR..kk * ncols + (s + 1) * NR];
            for (j, &v) in row.iter().enumerate() {
                dst[(kk / 2) * NR * 2 + j * 2 + kk % 2] = v as i16;
            }
        }
    });
    // (offset between strips, offset between rows) of the output.
    let (c_strip, c_row) = match layout {
        Layout::RowMajor => (NR, ncols),
        Layout::StripMajor => (a.rows * NR, NR),
    };
    let base = SendPtr(out.as_mut_ptr());
    let tasks = a.rows.div_ceil(ROWS_PER_TASK);
    let body = |task: usize| {
        let first = task * ROWS_PER_TASK / MR;
        let rows = (a.rows - task * ROWS_PER_TASK).min(ROWS_PER_TASK);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the kernel's instruction set was detected at run time. Task `task` writes
        // only its own rows `task*ROWS_PER_TASK ..+ rows` of `out` (of every strip), all inside
        // `out`'s `a.rows * ncols` elements; no two tasks share a row.
        unsafe {
            let t = Task {
                a,
                first,
                rows,
                bp: &bp,
                strip,
                ncols,
                block,
                c: base.get().add(task * ROWS_PER_TASK * c_row),
                c_strip,
                c_row,
            };
            match kernel {
                Kernel::Avx512Vnni => avx512::blocked_vnni(&t),
                Kernel::Avx512 => avx512::blocked(&t),
                Kernel::Avx2 => avx2::blocked(&t),
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (kernel, first, rows, &base, c_strip, c_row);
    };
    if a.rows * ncols * a.k < super::gemm::SERIAL_WORK as usize {
        (0..tasks).for_each(body);
    } else {
        (0..tasks).into_par_iter().for_each(body);
    }
}

/// One rayon task's share of a product: rows `first*MR ..+ rows` of A (panel `first` on), B
/// packed in strips of `strip` pairs-of-columns (`[strip][kp][16][2]`), 32-bit blocks of
/// `block` pairs, written to `c` (the task's first row; element (row r, column j) at
/// `(j / 16) * c_strip + r * c_row + j % 16`).
#[cfg(target_arch = "x86_64")]
pub(super) struct Task<'a> {
    a: &'a PackedI16,
    first: usize,
    rows: usize,
    bp: &'a [i16],
    strip: usize,
    ncols: usize,
    block: usize,
    c: *mut i64,
    c_strip: usize,
    c_row: usize,
}

#[cfg(target_arch = "x86_64")]
impl Task<'_> {
    /// Calls `tile(a panels' k-pair block, B block, C of the tile, rows in the tile)` for every
    /// (k block, strip, group of `P` panels), k blocks in order (integer sums are exact in any
    /// order; this order keeps a B block in L1 across the panels).
    #[inline(always)]
    unsafe fn walk<const P: usize>(
        &self,
        mut tile: impl FnMut([&[i16]; P], &[i16], *mut i64, usize),
    ) {
        let panels = self.rows.div_ceil(MR);
        let step = self.block.min(KCP);
        let mut kb = 0;
        while kb < self.a.kp {
            let ke = (kb + step).min(self.a.kp);
            for s in 0..self.ncols / NR {
                let b = &self.bp[s * self.strip + kb * NR * 2..s * self.strip + ke * NR * 2];
                for p in (0..panels).step_by(P) {
                    let av: [&[i16]; P] = std::array::from_fn(|q| {
                        // Past the last panel: the last one again, its rows not stored.
                        let panel = self.a.panel(self.first + (p + q).min(panels - 1));
                        &panel[kb * MR * 2..ke * MR * 2]
                    });
                    let r = (self.rows - p * MR).min(P * MR);
                    tile(av, b, self.c.add(s * self.c_strip + p * MR * self.c_row), r);
                }
            }
            kb = ke;
        }
    }
}

/// A raw pointer the row tasks share; each writes a disjoint set of elements (also the
/// tasks of [`super::intgemm8`]).
#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut i64);
// SAFETY: used only to hand disjoint parts of one buffer to rayon tasks (see `product`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub(super) fn get(self) -> *mut i64 {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
#[path = "intgemm_simd.rs"]
mod simd;
#[cfg(target_arch = "x86_64")]
use simd::avx2;
#[cfg(target_arch = "x86_64")]
pub(super) use simd::avx512;

#[cfg(test)]
mod tests {
    use super::super::exact::plain_product as plain;
    use super::*;
    use proptest::prelude::*;

    fn check(rows: usize, k: usize, cols: usize, a_max: i32, b_max: i32, seed: u64, extreme: bool) {
        let mut s = seed | 1;
        let mut next = |m: i32| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if extreme {
                // The worst case for the 32-bit blocks: every term at the largest magnitude,
                // all of one sign.
                -m
            } else {
                ((s >> 33) % (2 * m as u64 + 1)) as i32 - m
            }
        };
        let a: Vec<i32> = (0..rows * k).map(|_| next(a_max)).collect();
        let b: Vec<i32> = (0..k * cols).map(|_| next(b_max)).collect();
        let packed = PackedI16::new(&a, rows, k).expect("codes fit i16");
        let Some(block) = packed.block_pairs(b_max as u64) else {
            return;
        };
        let want = plain(&a, rows, k, &b, cols);
        for kernel in Kernel::all_here() {
            let mut got = vec![7i64; rows * cols];
            product_on(kernel, &packed, &b, cols, block, &mut got, Layout::RowMajor);
            assert_eq!(
                got, want,
                "{kernel:?} rows {rows} k {k} cols {cols} a {a_max} b {b_max}"
            );
            product_on(
                kernel,
                &packed,
                &b,
                cols,
                block,
                &mut got,
                Layout::StripMajor,
            );
            let rows_of = super::super::exact::strip_major_rows(&got, rows, cols);
            assert_eq!(rows_of, want, "{kernel:?}");
        }
    }

    #[test]
    fn awkward_shapes_and_overflow_boundaries() {
        if !available() {
            return;
        }
        for (rows, k, cols) in [
            (4, 1, 16),
            (12, 3, 16),
            (132, 33, 16),
            (7, 1000, 32),
            (4000, 9, 16),
        ] {
            for (a_max, b_max) in [(1, 1), (127, 128), (128, 128), (2047, 2048), (32767, 32767)] {
                check(rows, k, cols, a_max, b_max, 3, false);
                check(rows, k, cols, a_max, b_max, 5, true);
            }
        }
        // Blocks cut by the i32 bound rather than the cache block: 15, 2 and 1 pairs, each
        // filled to within one pair of i32::MAX by same-sign extreme terms.
        for m in [8191, 23170, 32767] {
            check(6, 3001, 16, m, m, 9, true);
            check(13, 301, 32, m, m, 11, false);
        }
    }

    #[test]
    fn codes_too_wide_or_pairs_that_could_overflow_are_refused() {
        assert!(PackedI16::new(&[40000], 1, 1).is_none());
        let p = PackedI16::new(&[-32768], 1, 1).expect("fits i16");
        assert_eq!(p.block_pairs(32768), None);
        assert_eq!(p.block_pairs(32767), Some(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn equals_the_plain_loop(rows in 1usize..40, k in 0usize..300, strips in 1usize..3,
                                 a_bits in 1u32..16, b_bits in 1u32..16, seed in any::<u64>(),
                                 extreme in any::<bool>()) {
            if available() {
                check(rows, k, strips * 16, (1 << a_bits) - 1, (1 << b_bits) - 1, seed, extreme);
            }
        }
    }
}
