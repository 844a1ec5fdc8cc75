//! Products whose operands all fit bf16 — the bf16 and fp8 lanes: at most 8 significant bits,
//! f32's exponent range — on AVX512-BF16's `vdpbf16ps`, which multiplies pairs of bf16 values
//! and adds them to f32 sums: 32 multiply-adds an instruction against the 16 of
//! `vfmadd231ps` (on a Zen 4, whose FMA runs 512 bits as two halves, the bf16 and fp8 lanes
//! of the 1024 layer took about a third less time, results/bench/engine.md).
//!
//! Why the bits are the scalar loop's (docs/NUMERICS.md §6: k in order, one rounded multiply and
//! one rounded add a term): per f32 lane the instruction computes
//! `s = fma(a_hi, b_hi, s); s = fma(a_lo, b_lo, s)` from the high then the low bf16 halves of a
//! pair, each rounded to nearest even once, inputs that are subnormal read as zero and
//! subnormal results flushed (Intel SDM, VDPBF16PS). With every operand normal and every
//! product exact and normal — [`Mode::Fused`]'s conditions ([`super::fused`]) — each fma is the
//! multiply (exact) then the add, and neither flush can happen, so packing terms k and k + 1 as
//! the high and low halves of a pair gives every sum its terms in k order: the scalar loop.
//! A probe ([`runs`]) checks once per process that this CPU's instruction does that (the
//! order and the ties of round-to-nearest-even); where it does not, or the CPU lacks the
//! instruction or is not an AMD one (where it is no faster, [`available`]), or k is odd, or an
//! operand does not fit, the lanes run [`super::gemm`] in the mode
//! [`Mode::choose`] picks.
//!
//! Layouts: A (weights, fixed for a run) is packed once per plan in panels of [`PR`] rows
//! (`[pair][row]` dwords); B is repacked per product into 16-column strips of pairs
//! (`[strip][pair][16]`); C is row-major f32, as in [`super::gemm`]. Rows are split over
//! rayon as there; the thread count never changes a bit.

use super::fused::{Mode, Span};
use super::gemm::{COL_ALIGN, SERIAL_WORK};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// Rows per packed panel and per register tile: 24 accumulators of 16 f32.
pub const PR: usize = 24;
/// Pairs per k block (an 8 KiB strip of B stays in L1 while a task's panels pass it).
const KB: usize = 128;
/// Rows per rayon task (a multiple of PR).
const ROWS_PER_TASK: usize = 4 * PR;

/// A `rows x k` matrix of bf16-representable f32 values (k even) packed as pairs: panel p
/// holds, for each pair q, `pair(A[p*PR + i][2q], A[p*PR + i][2q + 1])` for i in 0..PR (zero
/// rows pad the last panel).
#[derive(Debug)]
pub struct PackedPairs {
    pub rows: usize,
    pub k: usize,
    data: Vec<u32>,
    /// What [`fits`] needs to know of A.
    pub span: Span,
    /// Products run on this packing (tests check the engine takes the pair kernel: the
    /// fallback gives the same bits, so nothing else would show it did not).
    #[cfg(test)]
    pub uses: std::sync::atomic::AtomicUsize,
}

/// Two bf16-representable f32 values as one dword: `first` in the high half (the term the
/// instruction adds first), `second` in the low half.
#[inline(always)]
fn pair(first: f32, second: f32) -> u32 {
    (first.to_bits() & 0xffff_0000) | (second.to_bits() >> 16)
}

/// Whether every value of a span is a normal (or zero), finite f32 of at most 8 significant
/// bits: exactly a bf16 value.
fn fits_bf16(s: &Span) -> bool {
    s.finite && s.sig_bits <= 8 && s.min_nonzero >= f32::MIN_POSITIVE as f64
}

impl PackedPairs {
    /// Packs a row-major `rows x k` matrix whose values span `span`: `None` unless the pair
    /// kernel runs here, `k` is even and every value fits bf16.
    pub fn new(a: &[f32], rows: usize, k: usize, span: &Span) -> Option<Self> {
        if !available() {
            return None;
        }
        Self::new_here(a, rows, k, span)
    }

    /// [`PackedPairs::new`] where the instruction runs ([`runs`]), AMD or not (tests).
    fn new_here(a: &[f32], rows: usize, k: usize, span: &Span) -> Option<Self> {
        if !runs() || !k.is_multiple_of(2) || k == 0 || !fits_bf16(span) {
            return None;
        }
        Some(Self::pack(a, rows, k, span))
    }

    /// The packing itself, unchecked (the probe packs before [`runs`] is known).
    fn pack(a: &[f32], rows: usize, k: usize, span: &Span) -> Self {
        let pairs = k / 2;
        let panels = rows.div_ceil(PR);
        let mut data = vec![0u32; panels * PR * pairs];
        data.par_chunks_mut(PR * pairs)
            .enumerate()
            .for_each(|(p, panel)| {
                for i in 0..PR.min(rows - p * PR) {
                    let row = &a[(p * PR + i) * k..][..k];
                    for (q, two) in row.chunks_exact(2).enumerate() {
                        panel[q * PR + i] = pair(two[0], two[1]);
                    }
                }
            });
        PackedPairs {
            rows,
            k,
            data,
            span: *span,
            #[cfg(test)]
            uses: Default::default(),
        }
    }

    fn panel(&self, p: usize) -> &[u32] {
        let len = PR * self.k / 2;
        &self.data[p * len..(p + 1) * len]
    }
}

/// Whether the pair kernel gives the scalar loop's bits for weights spanning `a` (packed: they
/// fit bf16) and operands spanning `b`.
pub fn fits(a: &Span, b: &Span) -> bool {
    fits_bf16(a) && fits_bf16(b) && Mode::choose::<f32>(a, b) == Mode::Fused
}

/// `C = C + A·B` (`from_zero`: `C = +0 + A·B`, C's old contents never read) for A's rows and
/// `ncols` columns (a multiple of [`COL_ALIGN`]); B is `A.k x ncols` bf16-representable values
/// with row stride `ldb`, C has row stride `ldc` and holds +0 or normal values (the instruction
/// reads a subnormal sum as zero; the engine's sums are never subnormal, §5). The caller
/// checked [`fits`].
pub fn product(
    a: &PackedPairs,
    b: &[f32],
    ldb: usize,
    ncols: usize,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
    from_zero: bool,
) {
    assert!(ncols.is_multiple_of(COL_ALIGN) && ncols <= ldb && ncols <= ldc);
    assert!(b.len() >= (a.k - 1) * ldb + ncols);
    assert!(c.len() >= a.rows.saturating_sub(1) * ldc + ncols || a.rows == 0);
    if a.rows == 0 || ncols == 0 {
        return;
    }
    #[cfg(test)]
    a.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bp = strips(b, a.k / 2, ldb, ncols);
    let c = &mut c[..(a.rows - 1) * ldc + ncols];
    let body = |(task, rows_c): (usize, &mut [MaybeUninit<f32>])| {
        let first = task * ROWS_PER_TASK;
        let rows = (a.rows - first).min(ROWS_PER_TASK);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `runs()` (checked when A was packed) means AVX512-BF16 and AVX-512F.
        unsafe {
            task_avx512(a, first, rows, &bp, ncols, rows_c, ldc, from_zero)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!(
            "pairs are packed only where the instruction runs: {first} {rows} {} {from_zero}",
            rows_c.len()
        );
    };
    let work = a.rows as u64 * ncols as u64 * a.k as u64;
    if work < SERIAL_WORK {
        c.chunks_mut(ROWS_PER_TASK * ldc).enumerate().for_each(body);
    } else {
        c.par_chunks_mut(ROWS_PER_TASK * ldc)
            .enumerate()
            .for_each(body);
    }
}

/// `A·B` from +0 into a new `a.rows x ncols` buffer (stride `ncols`), written once.
pub fn product_new(a: &PackedPairs, b: &[f32], ldb: usize, ncols: usize) -> Vec<f32> {
    let len = a.rows * ncols;
    let mut c = Vec::with_capacity(len);
    product(
        a,
        b,
        ldb,
        ncols,
        &mut c.spare_capacity_mut()[..len],
        ncols,
        true,
    );
    // SAFETY: from zero, every tile of every row and column was stored by the kernel.
    unsafe { c.set_len(len) };
    c
}

/// B (`2·pairs x ncols`, row stride `ldb`) as `[strip][pair][16]` dwords.
fn strips(b: &[f32], pairs: usize, ldb: usize, ncols: usize) -> Vec<u32> {
    let mut out = vec![0u32; pairs * ncols];
    let fill = |(s, strip): (usize, &mut [u32])| {
        for (q, dst) in strip.chunks_exact_mut(COL_ALIGN).enumerate() {
            let hi = &b[2 * q * ldb + s * COL_ALIGN..][..COL_ALIGN];
            let lo = &b[(2 * q + 1) * ldb + s * COL_ALIGN..][..COL_ALIGN];
            for ((d, &x), &y) in dst.iter_mut().zip(hi).zip(lo) {
                *d = pair(x, y);
            }
        }
    };
    if pairs * ncols < 1 << 16 {
        out.chunks_mut(pairs * COL_ALIGN).enumerate().for_each(fill);
    } else {
        out.par_chunks_mut(pairs * COL_ALIGN)
            .enumerate()
            .for_each(fill);
    }
    out
}

/// Rows `first..first + rows` of C (`c` starts at row `first`): k blocks in order, then
/// strips, then panels, each a `PR x 16` register tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn task_avx512(
    a: &PackedPairs,
    first: usize,
    rows: usize,
    bp: &[u32],
    ncols: usize,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
    from_zero: bool,
) {
    let pairs = a.k / 2;
    let mut q0 = 0;
    while q0 < pairs {
        let q1 = (q0 + KB).min(pairs);
        for s in 0..ncols / COL_ALIGN {
            let b = &bp[(s * pairs + q0) * COL_ALIGN..(s * pairs + q1) * COL_ALIGN];
            for r0 in (0..rows).step_by(PR) {
                let panel = &a.panel((first + r0) / PR)[q0 * PR..q1 * PR];
                let live = PR.min(rows - r0);
                let tile = c[r0 * ldc + s * COL_ALIGN..].as_mut_ptr().cast::<f32>();
                tile_avx512(panel, b, tile, ldc, live, from_zero && q0 == 0);
            }
        }
        q0 = q1;
    }
}

/// One `PR x 16` tile: `live` rows of C at `c` (stride `ldc`), from +0 when `zero`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_avx512(panel: &[u32], b: &[u32], c: *mut f32, ldc: usize, live: usize, zero: bool) {
    use std::arch::x86_64::*;
    // Indexed by constants only (the loops unroll), so the accumulators stay in registers
    // (`take(live)` kept them in a stack array, cleared by `memset` per tile).
    let mut acc = [_mm512_setzero_ps(); PR];
    if !zero {
        for (r, v) in acc.iter_mut().enumerate() {
            if r < live {
                *v = _mm512_loadu_ps(c.add(r * ldc));
            }
        }
    }
    for (bq, aq) in b.chunks_exact(COL_ALIGN).zip(panel.chunks_exact(PR)) {
        let bv: __m512bh = std::mem::transmute(_mm512_loadu_si512(bq.as_ptr().cast()));
        for (v, &w) in acc.iter_mut().zip(aq) {
            let wv: __m512bh = std::mem::transmute(_mm512_set1_epi32(w as i32));
            *v = _mm512_dpbf16_ps(*v, wv, bv);
        }
    }
    for (r, v) in acc.iter().enumerate() {
        if r < live {
            _mm512_storeu_ps(c.add(r * ldc), *v);
        }
    }
}

/// Whether the pair kernel runs here: the CPU has AVX512-BF16 and is an AMD one, the portable
/// build is not forced, and a probe of the instruction gives the scalar loop's bits on sums
/// where the order of the two terms of a pair, and the ties of round-to-nearest-even, decide
/// the result.
///
/// Only AMD's: on Zen 4, whose 512-bit FMA runs as two 256-bit halves, the pairs double the
/// multiply-adds an instruction and the bf16 and fp8 lanes took a third less time; on an Intel
/// Sapphire Rapids with two full 512-bit FMA ports the same kernel made them slower (0.080 to
/// 0.100 s), as the instruction adds no throughput there and B is repacked for every product
/// (results/bench/engine.md). The bits are the same either way.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return amd() && runs();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the pair kernel can run here, AMD or not: AVX512-BF16, the portable build not
/// forced, and the probe passed.
pub fn runs() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            !crate::cpu::portable()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bf16")
                && probe()
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Whether the CPU's vendor string is `AuthenticAMD`.
#[cfg(target_arch = "x86_64")]
fn amd() -> bool {
    let id = std::arch::x86_64::__cpuid(0);
    let vendor: Vec<u8> = [id.ebx, id.edx, id.ecx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    vendor == b"AuthenticAMD"
}

/// Sums of 1 and two tiny terms (2^-24, half an ulp of 1, and 2^-23, one ulp), in both orders
/// and with signs: in k order the first add of 2^-24 to 1 ties and rounds to even, so the
/// sums differ by order; one rounding for the pair, or the wrong order, changes them.
#[cfg(target_arch = "x86_64")]
fn probe() -> bool {
    let (half, ulp) = (2f32.powi(-24), 2f32.powi(-23));
    let x = 2f32.powi(-12);
    // A: one row per case, k = 4; B: column j scales nothing but its sign.
    let cases: [[f32; 4]; 4] = [
        [x, 1.0, x, -1.0],
        [1.0, x, -1.0, x],
        [x, x, 1.0, 1.0],
        [-x, 1.0, x, 1.0],
    ];
    let b_rows: [[f32; 4]; 4] = [
        [x, ulp, x, ulp],
        [ulp, x, ulp, x],
        [x, x, half, -half],
        [x, ulp, x, half],
    ];
    let a: Vec<f32> = cases.iter().flatten().copied().collect();
    let b: Vec<f32> = (0..4)
        .flat_map(|kk| {
            (0..COL_ALIGN).map(move |j| b_rows[j % 4][kk] * if j < 8 { 1.0 } else { -1.0 })
        })
        .collect();
    let c0 = vec![1.0f32; 4 * COL_ALIGN];
    let mut want = c0.clone();
    for r in 0..4 {
        for j in 0..COL_ALIGN {
            for kk in 0..4 {
                want[r * COL_ALIGN + j] += a[r * 4 + kk] * b[kk * COL_ALIGN + j];
            }
        }
    }
    let span = super::fused::span(&a);
    debug_assert!(fits_bf16(&span));
    let packed = PackedPairs::pack(&a, 4, 4, &span);
    let mut got: Vec<MaybeUninit<f32>> = c0.iter().map(|&v| MaybeUninit::new(v)).collect();
    let bp = strips(&b, 2, COL_ALIGN, COL_ALIGN);
    // SAFETY: the caller checked AVX512-BF16 and AVX-512F.
    unsafe { task_avx512(&packed, 0, 4, &bp, COL_ALIGN, &mut got, COL_ALIGN, false) };
    // SAFETY: every element was initialised above.
    let got: Vec<f32> = got.iter().map(|v| unsafe { v.assume_init() }).collect();
    want.iter()
        .zip(&got)
        .all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
#[path = "pairs_tests.rs"]
mod tests;
