//! Exact integer products of codes (the integer datapath's W·x and R·h): AMX-INT8 tiles
//! ([`amx`]) where the CPU has them and the codes fit 16 bits, else the `vpdpbusd`
//! kernel of [`intgemm8`] where both operands are 8-bit codes, the `vpmaddwd` kernel of
//! [`intgemm`] where the codes fit 16 bits, else codes held exactly in f32
//! or f64 on [`gemm`], summed in blocks short enough to stay exact and widened to i64. Integer
//! sums do not depend on their order, so every variant gives the same integers.

use super::amx::{self, PackedAmx};
use super::gemm::{self, Elem, Packed, COL_ALIGN};
use super::intgemm::{self, Layout, PackedI16};
use super::intgemm8::{self, PackedI8};
use rayon::prelude::*;

/// An exact integer product on codes: f32 when block sums stay below 2^24, else f64 (below
/// 2^53); blocks are summed in i64.
pub(crate) enum ExactProduct {
    /// Codes of at most 16 bits on AMX-INT8 tiles ([`amx`]).
    Amx(PackedAmx),
    /// 8-bit codes times 8-bit codes on `vpdpbusd` ([`intgemm8`]).
    I8(PackedI8),
    /// Codes of at most 16 bits on `vpmaddwd` ([`intgemm`]).
    I16(PackedI16),
    /// 16-bit codes whose pair products could overflow i32 (fx16 x fx16): A = 256·hi + lo
    /// with hi = A >> 8 and lo = A & 255, two exact narrow products combined in i64.
    Split {
        hi: PackedI16,
        lo: PackedI16,
    },
    F32(Packed<f32>),
    F64(Packed<f64>),
}

impl ExactProduct {
    /// Packs `codes` (`rows x k`) for products with operands of at most `b_max` in magnitude.
    pub fn new(codes: &[i32], rows: usize, k: usize, b_max: f64) -> Self {
        Self::new_on(codes, rows, k, b_max, amx::available())
    }

    /// [`ExactProduct::new`], with the AMX tiles allowed or not (tests run both).
    pub fn new_on(codes: &[i32], rows: usize, k: usize, b_max: f64, tiles: bool) -> Self {
        if tiles && b_max <= i16::MAX as f64 + 1.0 {
            if let Some(p) = PackedAmx::new(codes, rows, k) {
                return ExactProduct::Amx(p);
            }
        }
        // One pass for the smallest and largest code, which every choice below reads.
        let range = range(codes);
        let a_max = intgemm::max_abs(range);
        if intgemm8::available() && b_max <= 128.0 {
            if let Some(p) = PackedI8::with_range(codes, rows, k, range) {
                return ExactProduct::I8(p);
            }
        }
        if intgemm::available() && b_max <= i16::MAX as f64 + 1.0 {
            // One product's pairs fit i32 exactly when 2·max|A|·b_max <= i32::MAX (then
            // `block_pairs` is `Some`); else the split, whose halves fit when both halves'
            // pairs do.
            if 2 * a_max * (b_max as u64) <= i32::MAX as u64 {
                if let Some(p) = PackedI16::with_range(codes, rows, k, range) {
                    debug_assert!(p.block_pairs(b_max as u64).is_some());
                    return ExactProduct::I16(p);
                }
            }
            if let Some((hi, lo)) = PackedI16::split(codes, rows, k, range) {
                if hi.block_pairs(b_max as u64).is_some() && lo.block_pairs(b_max as u64).is_some()
                {
                    return ExactProduct::Split { hi, lo };
                }
            }
        }
        // Worth f32 when a block of at least 16 terms cannot leave f32's exact integers.
        if a_max as f64 * b_max * 16.0 <= f32_exact() {
            let v: Vec<f32> = codes.iter().map(|&c| c as f32).collect();
            ExactProduct::F32(Packed::new(&v, rows, k))
        } else {
            let v: Vec<f64> = codes.iter().map(|&c| c as f64).collect();
            ExactProduct::F64(Packed::new(&v, rows, k))
        }
    }

    /// `out[r][col] = Σ_k A[r][k]·B[k][col]` exactly, B given as codes (`k x ncols`, stride
    /// ncols, padding zero).
    pub fn product(&self, b: &[i32], ncols: usize, out: &mut [i64]) {
        self.product_in(b, ncols, out, Layout::RowMajor)
    }

    /// `A·B` exactly in `layout`, in a new buffer of `self.rows() * ncols` elements: on the
    /// AMX tiles written once, without clearing it first; else [`ExactProduct::product_in`]
    /// on zeros.
    pub fn product_new(&self, b: &[i32], ncols: usize, layout: Layout) -> Vec<i64> {
        let len = self.rows() * ncols;
        if let ExactProduct::Amx(a) = self {
            let mut out = Vec::with_capacity(len);
            let done = amx::product_uninit(a, b, ncols, range(b), out.spare_capacity_mut(), layout);
            if done.is_some() {
                // SAFETY: `product_uninit` wrote every one of the `a.rows * ncols` elements.
                unsafe { out.set_len(len) };
                return out;
            }
        }
        // Zeroed by the allocator: the 16-bit kernels add to it instead of clearing it again.
        let mut out = vec![0i64; len];
        self.product_into(b, ncols, &mut out, layout, true);
        out
    }

    /// Rows of A.
    pub fn rows(&self) -> usize {
        match self {
            ExactProduct::Amx(a) => a.rows,
            ExactProduct::I8(a) => a.rows,
            ExactProduct::I16(a) => a.rows,
            ExactProduct::Split { hi, .. } => hi.rows,
            ExactProduct::F32(a) => a.rows,
            ExactProduct::F64(a) => a.rows,
        }
    }

    /// [`ExactProduct::product`] with the result in `layout`.
    pub fn product_in(&self, b: &[i32], ncols: usize, out: &mut [i64], layout: Layout) {
        self.product_into(b, ncols, out, layout, false)
    }

    /// [`ExactProduct::product_in`], told whether `out` holds zeros already (`zeroed`).
    fn product_into(&self, b: &[i32], ncols: usize, out: &mut [i64], layout: Layout, zeroed: bool) {
        // The 16-bit kernels overwrite `out`, or add to zeros without clearing them first.
        let product16 = match zeroed {
            true => intgemm::product_add,
            false => intgemm::product,
        };
        // One vectorized pass over B decides every variant's fit (and the tiles' planes).
        let b_range = range(b);
        let (min, max) = b_range;
        let b_max = intgemm::max_abs(b_range) as f64;
        let fits = min >= i16::MIN as i64 && max <= i16::MAX as i64;
        match self {
            ExactProduct::Amx(a) => {
                if amx::product(a, b, ncols, b_range, out, layout).is_some() {
                    return;
                }
            }
            ExactProduct::I8(a) => {
                if min >= -128 && max <= 127 {
                    return intgemm8::product(a, b, ncols, out, layout);
                }
            }
            ExactProduct::I16(a) => {
                if let (Some(block), true) = (a.block_pairs(b_max as u64), fits) {
                    return product16(a, b, ncols, block, out, layout);
                }
            }
            ExactProduct::Split { hi, lo } => {
                let blocks = (hi.block_pairs(b_max as u64), lo.block_pairs(b_max as u64));
                if let ((Some(bh), Some(bl)), true) = (blocks, fits) {
                    // 256·(hi·B) + lo·B, the low half added in place (exact integers).
                    product16(hi, b, ncols, bh, out, layout);
                    out.par_iter_mut().for_each(|h| *h *= 256);
                    intgemm::product_add(lo, b, ncols, bl, out, layout);
                    return;
                }
            }
            ExactProduct::F32(_) | ExactProduct::F64(_) => {}
        }
        if layout == Layout::StripMajor {
            let mut rm = vec![0i64; out.len()];
            self.product_in(b, ncols, &mut rm, Layout::RowMajor);
            return relayout(rm, ncols, out, layout);
        }
        match self {
            ExactProduct::Amx(a) => plain_packed(a.rows, a.k, |r, kk| a.at(r, kk), b, ncols, out),
            ExactProduct::I8(a) => plain_packed(a.rows, a.k, |r, kk| a.at(r, kk), b, ncols, out),
            ExactProduct::I16(a) => plain_packed(a.rows, a.k, |r, kk| a.at(r, kk), b, ncols, out),
            ExactProduct::Split { hi, lo } => {
                let mut low = vec![0i64; out.len()];
                plain_packed(hi.rows, hi.k, |r, kk| hi.at(r, kk), b, ncols, out);
                plain_packed(lo.rows, lo.k, |r, kk| lo.at(r, kk), b, ncols, &mut low);
                out.iter_mut()
                    .zip(&low)
                    .for_each(|(h, &l)| *h = *h * 256 + l);
            }
            ExactProduct::F32(a) => {
                let bf: Vec<f32> = b.iter().map(|&c| c as f32).collect();
                blocks(a, &bf, b_max, f32_exact(), ncols, out);
            }
            ExactProduct::F64(a) => {
                let bf: Vec<f64> = b.iter().map(|&c| c as f64).collect();
                blocks(a, &bf, b_max, 2f64.powi(53), ncols, out);
            }
        }
    }
}

/// The smallest and largest code (0, 0 for none), over chunks in parallel (any order gives
/// the same extremes), each chunk's loop compiled for AVX-512 or AVX2 where the CPU has it
/// (plain x86-64 has no 32-bit integer minimum, so that build's loop stays scalar).
pub(crate) fn range(codes: &[i32]) -> (i64, i64) {
    codes
        .par_chunks(1 << 16)
        .map(|c| {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { range_avx512(c) };
            }
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::avx2() {
                // SAFETY: the CPU has AVX2.
                return unsafe { range_avx2(c) };
            }
            range_chunk(c)
        })
        .reduce(|| (0, 0), |a, b| (a.0.min(b.0), a.1.max(b.1)))
}

/// The smallest and largest of `c` and 0: two plain reductions, which the compiler
/// vectorizes (an array of sixteen running extremes, tried before, was kept in 32 scalar
/// registers and stack slots instead: 4x slower than one plain maximum).
#[inline(always)]
fn range_chunk(c: &[i32]) -> (i64, i64) {
    let (mut lo, mut hi) = (0i32, 0i32);
    for &v in c {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo as i64, hi as i64)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn range_avx512(c: &[i32]) -> (i64, i64) {
    range_chunk(c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn range_avx2(c: &[i32]) -> (i64, i64) {
    range_chunk(c)
}

/// Copies a row-major `rows x ncols` result into `out` in `layout`.
fn relayout(rm: Vec<i64>, ncols: usize, out: &mut [i64], layout: Layout) {
    match layout {
        Layout::RowMajor => out.copy_from_slice(&rm),
        Layout::StripMajor => {
            let rows = out.len() / ncols.max(1);
            out.par_chunks_mut((rows * COL_ALIGN).max(1))
                .enumerate()
                .for_each(|(s, dst)| {
                    for (r, d) in dst.chunks_exact_mut(COL_ALIGN).enumerate() {
                        let at = r * ncols + s * COL_ALIGN;
                        d.copy_from_slice(&rm[at..at + COL_ALIGN]);
                    }
                });
        }
    }
}

/// `out = A·B` exactly by the plain loop in i64, row-major, A read back from its packing by
/// `at(r, kk)` (the fallback of every packed kernel, whatever the operands).
pub(super) fn plain_packed(
    rows: usize,
    k: usize,
    at: impl Fn(usize, usize) -> i64 + Sync,
    b: &[i32],
    ncols: usize,
    out: &mut [i64],
) {
    out[..rows * ncols]
        .par_chunks_mut(ncols.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            for (j, o) in row.iter_mut().enumerate() {
                *o = (0..k).map(|kk| at(r, kk) * b[kk * ncols + j] as i64).sum();
            }
        });
}

/// A product in [`Layout::StripMajor`] (`[col / 16][row][col % 16]`) read back row-major, to
/// compare with [`plain_product`].
#[cfg(test)]
pub(super) fn strip_major_rows(got: &[i64], rows: usize, cols: usize) -> Vec<i64> {
    (0..rows * cols)
        .map(|i| {
            let (r, j) = (i / cols, i % cols);
            got[(j / 16) * rows * 16 + r * 16 + j % 16]
        })
        .collect()
}

/// The oracle of every exact-product test: the plain loop over unpacked row-major codes,
/// `out[r][j] = Σ_k a[r][k]·b[k][j]` in i64.
#[cfg(test)]
pub(super) fn plain_product(a: &[i32], rows: usize, k: usize, b: &[i32], cols: usize) -> Vec<i64> {
    let mut out = vec![0i64; rows * cols];
    for r in 0..rows {
        for j in 0..cols {
            out[r * cols + j] = (0..k)
                .map(|kk| a[r * k + kk] as i64 * b[kk * cols + j] as i64)
                .sum();
        }
    }
    out
}

fn f32_exact() -> f64 {
    2f64.powi(24)
}

/// Sums the product in k blocks short enough to stay exact in `T`, adding each block to `out`
/// in i64.
fn blocks<T: Elem + Into<f64>>(
    a: &Packed<T>,
    b: &[T],
    b_max: f64,
    exact: f64,
    ncols: usize,
    out: &mut [i64],
) {
    out.fill(0);
    let per_term = (a.max_abs * b_max).max(1.0);
    let block = ((exact / per_term).floor() as usize).clamp(1, a.k.max(1));
    let mut tmp = vec![T::default(); a.rows * ncols];
    let mut k0 = 0;
    while k0 < a.k {
        let k1 = (k0 + block).min(a.k);
        tmp.fill(T::default());
        gemm::gemm(
            a,
            k0,
            k1,
            &b[k0 * ncols..],
            ncols,
            ncols,
            &mut tmp,
            ncols,
            gemm::Mode::Plain,
        );
        out.par_iter_mut()
            .zip(&tmp)
            .for_each(|(o, &v)| *o += Into::<f64>::into(v) as i64);
        k0 = k1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        /// Every variant (AMX tiles where the CPU has them, i16, split 16-bit, f32, f64
        /// blocks), both layouts, into a buffer or a new one, equal the plain i64 loop,
        /// including the extreme codes of each width.
        #[test]
        fn exact_product_equals_the_plain_loop(rows in 1usize..30, k in 0usize..200,
                                               strips in 1usize..3, a_bits in 2u32..=24,
                                               b_bits in 2u32..=24, seed in any::<u64>(),
                                               extreme in any::<bool>()) {
            let cols = strips * COL_ALIGN;
            let (a_max, b_max) = (1i64 << (a_bits - 1), 1i64 << (b_bits - 1));
            let mut s = seed | 1;
            let mut next = |m: i64| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                if extreme { if s & 1 == 0 { -m } else { m - 1 } }
                else { ((s >> 20) % (2 * m as u64)) as i64 - m }
            };
            let a: Vec<i32> = (0..rows * k).map(|_| next(a_max) as i32).collect();
            let b: Vec<i32> = (0..k * cols).map(|_| next(b_max) as i32).collect();
            let want = plain_product(&a, rows, k, &b, cols);
            for tiles in [false, true] {
                let p = ExactProduct::new_on(&a, rows, k, b_max as f64, tiles && amx::available());
                let mut got = vec![3i64; rows * cols];
                p.product(&b, cols, &mut got);
                prop_assert_eq!(&got, &want);
                p.product_in(&b, cols, &mut got, Layout::StripMajor);
                prop_assert_eq!(strip_major_rows(&got, rows, cols), want.clone());
                // In a new buffer (zeroed by the allocator, or written once on the tiles).
                prop_assert_eq!(&p.product_new(&b, cols, Layout::RowMajor), &want);
                let new = p.product_new(&b, cols, Layout::StripMajor);
                prop_assert_eq!(strip_major_rows(&new, rows, cols), want.clone());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60))]
        /// The parallel, vectorized range equals a plain fold (with 0) over every code, on
        /// lengths around the chunk size and both signs only.
        #[test]
        fn range_is_the_smallest_and_largest_code(len in prop_oneof![0usize..100,
                                                      (1usize << 16) - 3..(1 << 16) + 40,
                                                      150_000usize..200_000],
                                                  seed in any::<u64>(), sign in -1i64..=1) {
            let mut s = seed | 1;
            let codes: Vec<i32> = (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let v = s as i32;
                    match sign { -1 => -(v & i32::MAX), 1 => v & i32::MAX, _ => v }
                })
                .collect();
            let want = codes.iter().fold((0i64, 0i64), |(lo, hi), &c| {
                (lo.min(c as i64), hi.max(c as i64))
            });
            prop_assert_eq!(range(&codes), want);
        }
    }

    #[test]
    fn sixteen_bit_codes_take_the_split_product() {
        if !intgemm::available() {
            return;
        }
        let a = vec![-32768, 32767, -1, 255, 256, -257];
        let p = ExactProduct::new_on(&a, 6, 1, 32768.0, false);
        assert!(matches!(p, ExactProduct::Split { .. }));
        let b: Vec<i32> = (0..16)
            .map(|j| if j % 2 == 0 { -32768 } else { 32767 })
            .collect();
        let mut got = vec![0i64; 6 * 16];
        p.product(&b, 16, &mut got);
        for r in 0..6 {
            for j in 0..16 {
                assert_eq!(got[r * 16 + j], a[r] as i64 * b[j] as i64);
            }
        }
    }
}
