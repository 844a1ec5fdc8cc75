//! Hand-written x86 microkernels of [`super::gemm`]: the same product, the same cache
//! blocking ([`Job::walk`]: k in blocks, in order; then 16-column strips of B; then row
//! panels), and the same arithmetic per output element — k in order, one multiply then one
//! add per term (`vmulps` / `vaddps`, never `vfmadd`) — so every kernel gives the scalar
//! loop's bits. They differ only in how many accumulators they keep in registers:
//!
//! | kernel | tile (rows x columns) | accumulators |
//! | --- | --- | --- |
//! | [`avx2_f32`] | 6 x 16 (one panel) | 12 ymm of 8 f32 |
//! | [`avx512_f32`] | 24 x 16 (four panels) | 24 zmm of 16 f32 |
//! | [`avx512_f64`] | 12 x 16 (two panels) | 24 zmm of 8 f64 |
//! | [`avx512_f64_wide`] | 12 x 16, f32 weights widened as read | 24 zmm of 8 f64 |
//!
//! Each has a fused twin (`*_fused`: one `vfmadd` per term) that [`super::gemm`] runs only
//! when every product is exact ([`super::fused`]): then the fused and the unfused operation
//! round the same exact value once, so the twins give the same bits.
//!
//! Twelve or more independent accumulators hide the add latency (4 cycles, two ports) while
//! leaving registers for B and the broadcast weights; the AVX-512 kernels keep 24 (one load
//! of B per 24 rows of f32, 12 of f64: the measurement is in results/bench/engine.md). None of them flushes subnormals: the caller
//! runs the generic flushing kernel when [`super::gemm::no_subnormals`] cannot prove the
//! flush an identity. `gemm::tests` runs every instruction set the machine has (AVX-512, AVX2,
//! portable) against a scalar loop, f32 and f64.

use super::gemm::MR;
use super::gemm_kernel::Job;
use std::arch::x86_64::*;

/// Columns per strip of B (the packing of [`super::gemm::gemm`]).
const NR: usize = 16;

/// The AVX2 f32 kernel: a 6 x 16 tile per panel.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avx2_f32(mut job: Job<'_, f32>) {
    let (ldb, ldc) = (job.ldb, job.ldc);
    job.walk::<1, NR>(|[a], b, c, rows| {
        avx2_f32_tile::<false>(a, b.as_ptr(), ldb, c.as_mut_ptr().cast(), ldc, rows)
    });
}

/// [`avx2_f32`] with one `vfmadd` per term: only for products that are all exact
/// ([`super::fused`]), where it gives the same bits.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn avx2_f32_fused(mut job: Job<'_, f32>) {
    let (ldb, ldc) = (job.ldb, job.ldc);
    job.walk::<1, NR>(|[a], b, c, rows| {
        avx2_f32_tile::<true>(a, b.as_ptr(), ldb, c.as_mut_ptr().cast(), ldc, rows)
    });
}

/// `a`: MR weights per k; `b`: a strip of 16 columns with row stride `ldb`, at least
/// `a.len() / MR` rows; `c`: `rows` rows of 16 with stride `ldc`. `FUSED` only where the
/// caller enabled FMA (always inlined into it).
#[inline(always)]
unsafe fn avx2_f32_tile<const FUSED: bool>(
    a: &[f32],
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
) {
    let zero = _mm256_setzero_ps();
    let mut acc = [[zero; 2]; MR];
    for (i, row) in acc.iter_mut().enumerate().take(rows) {
        row[0] = _mm256_loadu_ps(c.add(i * ldc));
        row[1] = _mm256_loadu_ps(c.add(i * ldc + 8));
    }
    let mut bp = b;
    for av in a.chunks_exact(MR) {
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        for i in 0..MR {
            let ai = _mm256_broadcast_ss(&av[i]);
            if FUSED {
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            } else {
                acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_mul_ps(ai, b0));
                acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_mul_ps(ai, b1));
            }
        }
        bp = bp.add(ldb);
    }
    for (i, row) in acc.iter().enumerate().take(rows) {
        _mm256_storeu_ps(c.add(i * ldc), row[0]);
        _mm256_storeu_ps(c.add(i * ldc + 8), row[1]);
    }
}

/// The AVX-512 f32 kernel: 24 x 16 tiles (four panels against one zmm of B per k).
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f32(mut job: Job<'_, f32>) {
    let (ldb, ldc) = (job.ldb, job.ldc);
    job.walk::<4, NR>(|a, b, c, rows| {
        avx512_f32_tile::<4, false>(a, b.as_ptr(), ldb, c.as_mut_ptr().cast(), ldc, rows)
    });
}

/// [`avx512_f32`] with one `vfmadd` per term: only for products that are all exact
/// ([`super::fused`]), where it gives the same bits.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f32_fused(mut job: Job<'_, f32>) {
    let (ldb, ldc) = (job.ldb, job.ldc);
    job.walk::<4, NR>(|a, b, c, rows| {
        avx512_f32_tile::<4, true>(a, b.as_ptr(), ldb, c.as_mut_ptr().cast(), ldc, rows)
    });
}

/// `P` panels (`a[q]`: MR weights per k each) against a strip of 16 columns of B; `c`: `rows`
/// (at most P x MR) rows of 16 with stride `ldc`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_f32_tile<const P: usize, const FUSED: bool>(
    a: [&[f32]; P],
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
) {
    // Indexed by constants only (the loops unroll), so the accumulators live in registers:
    // an index computed from `rows` kept them in a stack array, cleared by `memset` per tile.
    let mut acc = [[_mm512_setzero_ps(); MR]; P];
    for (q, panel) in acc.iter_mut().enumerate() {
        for (i, v) in panel.iter_mut().enumerate() {
            if q * MR + i < rows {
                *v = _mm512_loadu_ps(c.add((q * MR + i) * ldc));
            }
        }
    }
    let depth = a[0].len() / MR;
    let mut bp = b;
    for kk in 0..depth {
        let bv = _mm512_loadu_ps(bp);
        for (panel, aq) in acc.iter_mut().zip(a) {
            let av = aq.as_ptr().add(kk * MR);
            for (i, acc) in panel.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*av.add(i));
                *acc = if FUSED {
                    _mm512_fmadd_ps(ai, bv, *acc)
                } else {
                    _mm512_add_ps(*acc, _mm512_mul_ps(ai, bv))
                };
            }
        }
        bp = bp.add(ldb);
    }
    for (q, panel) in acc.iter().enumerate() {
        for (i, v) in panel.iter().enumerate() {
            if q * MR + i < rows {
                _mm512_storeu_ps(c.add((q * MR + i) * ldc), *v);
            }
        }
    }
}

/// The AVX-512 f64 kernel (the float64 reference, wide integer codes): 12 x 16 tiles (two
/// panels against two zmm of B per k).
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f64(mut job: Job<'_, f64>) {
    let (ldb, ldc) = (job.ldb, job.ldc);
    job.walk::<2, NR>(|a, b, c, rows| {
        avx512_f64_tile::<f64, 2, false>(a, b.as_ptr(), ldb, c.as_mut_ptr().cast(), ldc, rows)
    });
}

/// [`avx512_f64`] with one `vfmadd` per term: only for products that are all exact
/// ([`super::fused`]: f32 weights times f32 inputs, 24 + 24 bits), or [`super::fused::Mode::Fma`]
/// (one rounding a term, asked for), where it gives the bits asked for.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f64_fused(mut job: Job<'_, f64>) {
    let (ldb, ldc) = (job.ldb, job.ldc);
    job.walk::<2, NR>(|a, b, c, rows| {
        avx512_f64_tile::<f64, 2, true>(a, b.as_ptr(), ldb, c.as_mut_ptr().cast(), ldc, rows)
    });
}

/// [`avx512_f64`] on f32 weights, each widened exactly as it is broadcast: the bits of the
/// same weights packed as f64, with half the bytes of A streamed.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f64_wide(mut job: Job<'_, f64, f32>) {
    let (ldb, ldc) = (job.ldb, job.ldc);
    job.walk::<2, NR>(|a, b, c, rows| {
        avx512_f64_tile::<f32, 2, false>(a, b.as_ptr(), ldb, c.as_mut_ptr().cast(), ldc, rows)
    });
}

/// [`avx512_f64_fused`] on f32 weights ([`avx512_f64_wide`]): the float64 reference's
/// recurrent product ([`super::fused::Mode::Fma`]).
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_f64_wide_fused(mut job: Job<'_, f64, f32>) {
    let (ldb, ldc) = (job.ldb, job.ldc);
    job.walk::<2, NR>(|a, b, c, rows| {
        avx512_f64_tile::<f32, 2, true>(a, b.as_ptr(), ldb, c.as_mut_ptr().cast(), ldc, rows)
    });
}

/// A weight of an f64 tile: broadcast to eight f64 lanes (f32 widened exactly on the way).
trait SplatF64: Copy {
    /// # Safety
    /// The CPU must have AVX-512F.
    unsafe fn splat(self) -> __m512d;
}

impl SplatF64 for f64 {
    #[inline(always)]
    unsafe fn splat(self) -> __m512d {
        _mm512_set1_pd(self)
    }
}

impl SplatF64 for f32 {
    #[inline(always)]
    unsafe fn splat(self) -> __m512d {
        _mm512_cvtps_pd(_mm256_set1_ps(self))
    }
}

/// `P` panels (`a[q]`: MR weights per k each) against a strip of 16 columns of B (row
/// stride `ldb`); `c`: `rows` (at most P x MR) rows of 16 with stride `ldc`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_f64_tile<W: SplatF64, const P: usize, const FUSED: bool>(
    a: [&[W]; P],
    b: *const f64,
    ldb: usize,
    c: *mut f64,
    ldc: usize,
    rows: usize,
) {
    // Indexed by constants only, as in [`avx512_f32_tile`].
    let mut acc = [[[_mm512_setzero_pd(); 2]; MR]; P];
    for (q, panel) in acc.iter_mut().enumerate() {
        for (i, row) in panel.iter_mut().enumerate() {
            if q * MR + i < rows {
                let r = q * MR + i;
                row[0] = _mm512_loadu_pd(c.add(r * ldc));
                row[1] = _mm512_loadu_pd(c.add(r * ldc + 8));
            }
        }
    }
    let depth = a[0].len() / MR;
    let mut bp = b;
    for kk in 0..depth {
        let b0 = _mm512_loadu_pd(bp);
        let b1 = _mm512_loadu_pd(bp.add(8));
        for (panel, aq) in acc.iter_mut().zip(a) {
            let av = aq.as_ptr().add(kk * MR);
            for (i, row) in panel.iter_mut().enumerate() {
                let ai = (*av.add(i)).splat();
                if FUSED {
                    row[0] = _mm512_fmadd_pd(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_pd(ai, b1, row[1]);
                } else {
                    row[0] = _mm512_add_pd(row[0], _mm512_mul_pd(ai, b0));
                    row[1] = _mm512_add_pd(row[1], _mm512_mul_pd(ai, b1));
                }
            }
        }
        bp = bp.add(ldb);
    }
    for (q, panel) in acc.iter().enumerate() {
        for (i, row) in panel.iter().enumerate() {
            if q * MR + i < rows {
                let r = q * MR + i;
                _mm512_storeu_pd(c.add(r * ldc), row[0]);
                _mm512_storeu_pd(c.add(r * ldc + 8), row[1]);
            }
        }
    }
}
