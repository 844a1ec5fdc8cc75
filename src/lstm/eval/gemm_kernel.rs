//! The kernels behind [`super::gemm`]: one thread's share of a product ([`Job`]: rows of C,
//! a k block, column strips of B), the run-time choice of instruction set ([`Isa`]: the
//! hand-written microkernels of [`super::gemm_simd`] where there is one, else a build of the
//! generic register-blocked kernel for AVX-512, AVX2 or portable code), and that generic
//! kernel: cache blocking over k, strips and panels, and the `MR x NR` register tile that
//! keeps each element's terms in k order, one multiply and one add per term.

use super::fused::Mode;
use super::gemm::{Elem, Packed, Weight, COL_ALIGN, KC, MR};
#[cfg(target_arch = "x86_64")]
use super::gemm_simd;
use std::mem::MaybeUninit;

/// One thread's share: rows `first_panel*MR ..+ rows` of C; A's elements are `W` (`T`, or
/// f32 weights of an f64 product, [`Weight`]).
pub(super) struct Job<'a, T, W = T> {
    pub a: &'a Packed<W>,
    pub first_panel: usize,
    pub rows: usize,
    pub k0: usize,
    pub k1: usize,
    pub b: &'a [T],
    pub ldb: usize,
    /// Offset from one strip of [`COL_ALIGN`] columns of B to the next: [`COL_ALIGN`] in a
    /// row-major B, the strip's size in a strip-major one.
    pub b_strip: usize,
    pub ncols: usize,
    /// C, initialised unless `from_zero` (then each tile is initialised by [`Job::walk`]
    /// before its kernel reads it).
    pub c: &'a mut [MaybeUninit<T>],
    pub ldc: usize,
    /// C is to start from +0: [`Job::walk`] writes each tile's rows as +0 before its first k
    /// block.
    pub from_zero: bool,
}

impl<'a, T: 'static, W: 'static> Job<'a, T, W> {
    /// Where row kk (absolute) of column `col` of B starts.
    pub fn b_at(&self, kk: usize, col: usize) -> usize {
        (col / COL_ALIGN) * self.b_strip + (kk - self.k0) * self.ldb + col % COL_ALIGN
    }

    /// Calls `tile(weights of P panels for the k block, B strip at the block, C tile, rows)`
    /// for every k block of [`KC`] (in order), strip of `NR` columns of B and group of `P` row
    /// panels; a last group short of panels repeats the last one, whose rows past `rows` the
    /// tile must neither load nor store (C may be uninitialised there). Every microkernel
    /// walks the job this way.
    #[inline(always)]
    pub fn walk<const P: usize, const NR: usize>(
        &mut self,
        mut tile: impl FnMut([&[W]; P], &[T], &mut [MaybeUninit<T>], usize),
    ) where
        T: Elem,
        W: Elem,
    {
        let panels = self.rows.div_ceil(MR);
        let mut kb = self.k0;
        while kb < self.k1 {
            let ke = (kb + KC).min(self.k1);
            for col in (0..self.ncols).step_by(NR) {
                let b = &self.b[self.b_at(kb, col)..];
                // The last k of the strip must lie inside b.
                debug_assert!(b.len() >= (ke - kb - 1) * self.ldb + NR);
                for p in (0..panels).step_by(P) {
                    let rows = (self.rows - p * MR).min(P * MR);
                    let a: [&[W]; P] = std::array::from_fn(|q| {
                        let panel = self.a.panel(self.first_panel + (p + q).min(panels - 1));
                        &panel[kb * MR..ke * MR]
                    });
                    let c = &mut self.c[p * MR * self.ldc + col..];
                    debug_assert!(c.len() >= (rows - 1) * self.ldc + NR);
                    if self.from_zero && kb == self.k0 {
                        for r in 0..rows {
                            c[r * self.ldc..r * self.ldc + NR].fill(MaybeUninit::new(T::default()));
                        }
                    }
                    tile(a, b, c, rows);
                }
            }
            kb = ke;
        }
    }

    /// The same job typed as `Job<U, V>`, when `U` is `T` and `V` is `W`.
    fn cast<U: 'static, V: 'static>(self) -> Result<Job<'a, U, V>, Self> {
        use std::any::TypeId;
        if TypeId::of::<T>() != TypeId::of::<U>() || TypeId::of::<W>() != TypeId::of::<V>() {
            return Err(self);
        }
        let job = std::mem::ManuallyDrop::new(self);
        // SAFETY: U is T and V is W (same TypeIds), so this reads the value as its own type;
        // Job has no drop glue and the original is not used again.
        Ok(unsafe { std::ptr::read((&*job as *const Job<'a, T, W>).cast::<Job<'a, U, V>>()) })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// Every instruction set this machine can run, widest first.
    #[cfg(test)]
    pub(super) fn all_here() -> Vec<Isa> {
        let best = Isa::detect();
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .skip_while(|&i| i != best)
            .collect()
    }

    pub(super) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::portable() {
                return Isa::Portable;
            }
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Runs `job` on a hand-written microkernel where there is one (f32, and f64 on AVX-512
    /// with f64 or f32 weights, without flushing: every fp32, float-emulation and float64
    /// reference product in practice); hands it back otherwise.
    #[cfg(target_arch = "x86_64")]
    fn simd<'a, T: Elem, W: Weight<T>>(
        self,
        job: Job<'a, T, W>,
        mode: Mode,
    ) -> Option<Job<'a, T, W>> {
        if mode == Mode::Flush || self == Isa::Portable {
            return Some(job);
        }
        let fused = matches!(mode, Mode::Fused | Mode::Fma);
        let avx512 = self == Isa::Avx512;
        // SAFETY (every kernel): the ISA was detected at run time; the AVX2 fused kernel also
        // needs FMA, checked here.
        let job = match job.cast::<f32, f32>() {
            Ok(job) => {
                if avx512 && fused {
                    unsafe { gemm_simd::avx512_f32_fused(job) }
                } else if avx512 {
                    unsafe { gemm_simd::avx512_f32(job) }
                } else if fused && is_x86_feature_detected!("fma") {
                    unsafe { gemm_simd::avx2_f32_fused(job) }
                } else {
                    unsafe { gemm_simd::avx2_f32(job) }
                }
                return None;
            }
            Err(job) if avx512 => job,
            Err(job) => return Some(job),
        };
        match job.cast::<f64, f64>() {
            Ok(job) if fused => unsafe { gemm_simd::avx512_f64_fused(job) },
            Ok(job) => unsafe { gemm_simd::avx512_f64(job) },
            Err(job) => match job.cast::<f64, f32>() {
                Ok(job) if fused => unsafe { gemm_simd::avx512_f64_wide_fused(job) },
                Ok(job) => unsafe { gemm_simd::avx512_f64_wide(job) },
                Err(job) => return Some(job),
            },
        }
        None
    }

    /// The fused mode runs a fused kernel where there is one (hand-written, or the generic
    /// kernel's FMA build on AVX2), else the plain kernels: with every product exact, they
    /// give the same bits. [`Mode::Fma`] does not: without a hand-written
    /// fused kernel it runs the generic kernel built with `mul_add` (vectorized FMA on AVX2
    /// with FMA and on AVX-512, a correctly rounded `fma` call on the portable path).
    pub(super) fn run<T: Elem, W: Weight<T>>(self, job: Job<'_, T, W>, mode: Mode) {
        let wide = std::mem::size_of::<T>() == 4;
        // An AVX2 machine without FMA instructions runs `Mode::Fma` on the portable build.
        #[cfg(target_arch = "x86_64")]
        let isa = if mode == Mode::Fma && self == Isa::Avx2 && !is_x86_feature_detected!("fma") {
            Isa::Portable
        } else {
            self
        };
        #[cfg(not(target_arch = "x86_64"))]
        let isa = self;
        #[cfg(target_arch = "x86_64")]
        let Some(job) = isa.simd(job, mode) else {
            return;
        };
        match (isa, mode) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, Mode::Flush) => unsafe { avx512::<T, W, true, false>(job) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, Mode::Fma) => unsafe { avx512::<T, W, false, true>(job) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _) => unsafe { avx512::<T, W, false, false>(job) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, Mode::Flush) => unsafe { avx2::<T, W, true>(job, wide) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, Mode::Fma) => unsafe { avx2_fma::<T, W>(job, wide) },
            // With every product exact (`Mode::Fused`), one FMA a term gives the plain
            // kernel's bits (f64 on AVX2 has no hand-written fused kernel: the reference's
            // W.x products).
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, Mode::Fused) if is_x86_feature_detected!("fma") => unsafe {
                avx2_fma::<T, W>(job, wide)
            },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, _) => unsafe { avx2::<T, W, false>(job, wide) },
            (_, Mode::Flush) => portable::<T, W, true, false>(job),
            (_, Mode::Fma) => portable::<T, W, false, true>(job),
            (_, _) => portable::<T, W, false, false>(job),
        }
    }
}

/// The ISA in use, for benchmark tables.
pub fn isa_name() -> &'static str {
    match Isa::detect() {
        Isa::Avx512 => "avx512",
        Isa::Avx2 => "avx2",
        Isa::Portable => "portable",
    }
}

/// The generic kernel's walk, written out where it is used: the closure must be defined
/// inside the `#[target_feature]` function to be compiled with its features (a closure
/// defined in an always-inlined helper is not, and its `mul_add` becomes a call to libm's
/// `fma`).
macro_rules! blocked {
    ($job:ident, $t:ty, $nr:literal, $ftz:expr, $fma:expr) => {{
        let (ldb, ldc) = ($job.ldb, $job.ldc);
        $job.walk::<1, $nr>(|[a], b, c, rows| {
            micro::<$t, _, $nr, $ftz, $fma>(a, b, ldb, c, ldc, rows)
        })
    }};
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512<T: Elem, W: Weight<T>, const FTZ: bool, const FMA: bool>(mut job: Job<'_, T, W>) {
    // 16 columns: one zmm of f32 or two of f64 a row, 6 or 12 accumulators.
    blocked!(job, T, 16, FTZ, FMA)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<T: Elem, W: Weight<T>, const FTZ: bool>(mut job: Job<'_, T, W>, f32_sized: bool) {
    // Two ymm a row (16 f32 or 8 f64): 12 accumulators. FMA: `avx2_fma`.
    if f32_sized {
        blocked!(job, T, 16, FTZ, false)
    } else {
        blocked!(job, T, 8, FTZ, false)
    }
}

/// [`avx2`] for [`Mode::Fma`], with the FMA instructions enabled (the caller checked them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_fma<T: Elem, W: Weight<T>>(mut job: Job<'_, T, W>, f32_sized: bool) {
    if f32_sized {
        blocked!(job, T, 16, false, true)
    } else {
        blocked!(job, T, 8, false, true)
    }
}

/// The portable build of the generic kernel.
fn portable<T: Elem, W: Weight<T>, const FTZ: bool, const FMA: bool>(mut job: Job<'_, T, W>) {
    blocked!(job, T, 4, FTZ, FMA)
}

/// The register tile: `MR x NR` accumulators, k in order, one multiply and one add per term
/// (`FMA`: one fused multiply-add). `c`: `rows` initialised rows of `NR` with stride `ldc`.
#[inline(always)]
fn micro<T: Elem, W: Weight<T>, const NR: usize, const FTZ: bool, const FMA: bool>(
    a: &[W],
    b: &[T],
    ldb: usize,
    c: &mut [MaybeUninit<T>],
    ldc: usize,
    rows: usize,
) {
    let mut acc = [[T::default(); NR]; MR];
    for (i, row) in acc.iter_mut().enumerate().take(rows) {
        for (v, x) in row.iter_mut().zip(&c[i * ldc..i * ldc + NR]) {
            // SAFETY: the tile's rows are initialised ([`Job::walk`]).
            *v = unsafe { x.assume_init() };
        }
    }
    for (kk, av) in a.chunks_exact(MR).enumerate() {
        let bv: &[T; NR] = b[kk * ldb..kk * ldb + NR]
            .try_into()
            .expect("strip of NR columns");
        for i in 0..MR {
            let ai = av[i].widen();
            for j in 0..NR {
                if FMA {
                    acc[i][j] = ai.mul_add(bv[j], acc[i][j]);
                } else if FTZ {
                    acc[i][j] = (acc[i][j] + (ai * bv[j]).ftz()).ftz();
                } else {
                    acc[i][j] = acc[i][j] + ai * bv[j];
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(rows) {
        for (x, &v) in c[i * ldc..i * ldc + NR].iter_mut().zip(row) {
            x.write(v);
        }
    }
}
