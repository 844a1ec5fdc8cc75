//! The engine's matrix product: `C = C + A·B` where every output element sums its k terms
//! **strictly in k order, one multiply and one add per term, never fused** — the summation order
//! of docs/NUMERICS.md §6 — at GEMM speed.
//!
//! This is the classic register-blocked shape (BLIS, `matrixmultiply`): A (the weights, fixed
//! for a whole run) is packed once into panels of [`MR`] rows; a microkernel keeps an
//! `MR x NR` tile of C in registers and walks k, each step broadcasting MR weights against NR
//! consecutive columns of B (lanes, or (step, lane) pairs). Because every accumulator sees its
//! terms in k order and the loop over k is split only into consecutive blocks (the partial sum
//! goes to memory and comes back unchanged), the bits equal the scalar loop's. Rust never
//! contracts `a * b + c` into an FMA, so the vector code rounds exactly like the scalar code.
//!
//! Float lanes flush subnormal results after every operation (NUMERICS.md §5). The fast kernel
//! skips the flush when it provably cannot matter: if every non-zero |a| times every non-zero
//! |b| is at least 2^-101, no product is subnormal and (by the argument in
//! [`no_subnormals`]) no partial sum is either; otherwise the flushing kernel runs.
//!
//! The integer datapath uses the same kernel on small integers held exactly in f32 (products
//! and block sums below 2^24) or f64 (below 2^53); the caller picks the type and block length.
//!
//! Run-time dispatch: products without flushing (every fp32, float-emulation and float64
//! reference product in practice) run hand-written microkernels ([`super::gemm_simd`]: AVX2
//! f32, AVX-512 f32 and f64; each a multiply then an add per term, never fused); A may be f32
//! weights of an f64 product ([`Weight`]: the reference's R, widened exactly as read, half the
//! bytes streamed per step); the flushing
//! kernel, f64 on AVX2 and the portable path are builds of the same generic kernel. A B of
//! several column strips is first copied strip-major, so a microkernel walks consecutive
//! memory. Rows are split over rayon (small products stay on the calling thread); the thread
//! count never changes a bit (each element is computed by one thread, in one order). The
//! dispatch and the generic kernel live in [`super::gemm_kernel`].

pub use super::fused::Mode;
use super::fused::{self, Span};
pub use super::gemm_kernel::isa_name;
use super::gemm_kernel::{Isa, Job};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::{Add, Mul};

/// Rows per packed panel (and per microkernel tile): 6 rows x 16 columns is 12 accumulator
/// registers of 8 f32 in the AVX2 kernel, the most the 16 ymm registers leave room for.
pub const MR: usize = 6;
/// Columns of B and C are padded to a multiple of this (the widest microkernel tile).
pub const COL_ALIGN: usize = 16;
/// Depth of one k block (keeps a `KC x NR` strip of B in L1).
pub(super) const KC: usize = 256;
/// Products of fewer multiply-adds than this run on the calling thread: about 0.1 ms of work,
/// more than rayon's hand-off costs on a busy machine (small models run their configs in
/// parallel instead).
pub const SERIAL_WORK: u64 = 1 << 22;
/// Rows per rayon task (a multiple of MR).
const ROWS_PER_TASK: usize = 16 * MR;

/// An element type of the product: f32 (float lanes, small-integer lanes) or f64 (wider
/// integer lanes, exact below 2^53).
pub trait Elem:
    Copy + Default + PartialEq + Send + Sync + Add<Output = Self> + Mul<Output = Self> + 'static
{
    /// Significand bits, the implicit one included (24, 53).
    const PRECISION: u32;
    /// (smallest normal, bound every finite value stays below), as f64.
    const NORMAL_RANGE: (f64, f64);
    /// Whether float lanes of this type flush subnormals (f32; f64 never needs to).
    const FLUSHES: bool;
    /// NUMERICS.md §5: a subnormal (or -0) result becomes +0. Never needed for f64.
    fn ftz(self) -> Self;
    /// `self·b + c` rounded once ([`Mode::Fma`]).
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn abs_f64(self) -> f64;
    /// What [`Mode::choose`] needs to know of `v` ([`fused::span`]).
    fn span(v: &[Self]) -> Span;
}

impl Elem for f32 {
    const PRECISION: u32 = 24;
    const NORMAL_RANGE: (f64, f64) = (
        f32::MIN_POSITIVE as f64,
        340282366920938463463374607431768211456.0,
    );
    const FLUSHES: bool = true;
    fn span(v: &[Self]) -> Span {
        fused::span_f32(v)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f32::mul_add(self, b, c)
    }
    #[inline(always)]
    fn ftz(self) -> Self {
        if self.abs() < f32::MIN_POSITIVE {
            0.0
        } else {
            self
        }
    }
    #[inline(always)]
    fn abs_f64(self) -> f64 {
        self.abs() as f64
    }
}

impl Elem for f64 {
    const PRECISION: u32 = 53;
    const NORMAL_RANGE: (f64, f64) = (f64::MIN_POSITIVE, f64::MAX);
    const FLUSHES: bool = false;
    fn span(v: &[Self]) -> Span {
        fused::span_f64(v)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f64::mul_add(self, b, c)
    }
    #[inline(always)]
    fn ftz(self) -> Self {
        self
    }
    #[inline(always)]
    fn abs_f64(self) -> f64 {
        self.abs()
    }
}

/// The element type of A in a product over `T`: `T` itself, or f32 weights read by an f64
/// product (the float64 reference's recurrent product: the weights are f32 values, widened
/// exactly as they are read, so the bits are those of the same weights packed as f64, at half
/// the bytes streamed per step).
pub trait Weight<T>: Elem {
    /// The value as a `T`, exactly.
    fn widen(self) -> T;
}

impl<T: Elem> Weight<T> for T {
    #[inline(always)]
    fn widen(self) -> T {
        self
    }
}

impl Weight<f64> for f32 {
    #[inline(always)]
    fn widen(self) -> f64 {
        self as f64
    }
}

/// Whether f32 weights in an f64 product ([`Weight`]) run a hand-written kernel here
/// (AVX-512). Elsewhere the generic kernel widens each weight on its own, slower than reading
/// f64 panels (an AVX2 Zen 3, under load: 0.94-1.10 s against 0.77-0.80 s for the reference of the 1024
/// layer, results/bench/engine.md), so the float64 reference packs R as f64 there.
pub fn widens_in_kernel() -> bool {
    Isa::detect() == Isa::Avx512
}

/// A `rows x k` matrix packed in panels of [`MR`] rows (zero rows pad the last panel): panel
/// p holds, for each kk, `A[p*MR + i][kk]` for i in 0..MR.
#[derive(Debug, Clone)]
pub struct Packed<T> {
    pub rows: usize,
    pub k: usize,
    data: Vec<T>,
    /// The smallest non-zero |a| (f64::INFINITY when all are zero).
    pub min_nonzero: f64,
    /// The largest |a|.
    pub max_abs: f64,
    /// What [`Mode::choose`] needs to know of A.
    pub span: Span,
}

impl<T: Elem> Packed<T> {
    /// Packs a row-major `rows x k` matrix.
    pub fn new(a: &[T], rows: usize, k: usize) -> Self {
        Packed::new_from(a, rows, k, |v| v)
    }

    /// Packs `f` of every element of a row-major `rows x k` matrix of `S` (the float64
    /// reference packs its f32 weights as f64 without a widened copy).
    pub fn new_from<S: Copy + Sync>(
        a: &[S],
        rows: usize,
        k: usize,
        f: impl Fn(S) -> T + Sync,
    ) -> Self {
        debug_assert_eq!(a.len(), rows * k);
        let panels = rows.div_ceil(MR);
        let len = panels * MR * k;
        // Every element written once (no zeroing first), and each panel's span taken while it
        // is still in cache. The packed values are A's and zeros (which change no field of a
        // span); minima, maxima and ors do not depend on the order they are taken in.
        let mut data = Vec::with_capacity(len);
        let span = data.spare_capacity_mut()[..len]
            .par_chunks_mut((MR * k).max(1))
            .enumerate()
            .map(|(p, panel)| {
                let live = MR.min(rows - p * MR);
                if live < MR {
                    panel.fill(MaybeUninit::new(T::default()));
                    for i in 0..live {
                        let row = &a[(p * MR + i) * k..(p * MR + i + 1) * k];
                        for (kk, &v) in row.iter().enumerate() {
                            panel[kk * MR + i].write(f(v));
                        }
                    }
                } else {
                    // A whole panel: written in order, MR rows read side by side.
                    let src: [&[S]; MR] = std::array::from_fn(|i| &a[(p * MR + i) * k..][..k]);
                    for (kk, out) in panel.chunks_exact_mut(MR).enumerate() {
                        for (o, row) in out.iter_mut().zip(&src) {
                            o.write(f(row[kk]));
                        }
                    }
                }
                // SAFETY: every element of the panel was written above.
                let panel = unsafe { &*(panel as *const [MaybeUninit<T>] as *const [T]) };
                fused::span(panel)
            })
            .reduce(|| Span::EMPTY, Span::join);
        // SAFETY: every one of the first `len` elements was written above.
        unsafe { data.set_len(len) };
        Packed {
            rows,
            k,
            data,
            min_nonzero: span.min_nonzero,
            max_abs: span.max_abs,
            span,
        }
    }

    pub(super) fn panel(&self, p: usize) -> &[T] {
        &self.data[p * MR * self.k..(p + 1) * MR * self.k]
    }
}

/// (smallest non-zero |v|, largest |v|).
///
/// Eight running minima and maxima (comparisons and selects, which vectorize) folded at the
/// end: minimum and maximum do not depend on the order they are taken in, and NaN is skipped
/// either way, so this is the plain fold's result.
#[inline(always)]
pub fn abs_range<T: Elem>(v: &[T]) -> (f64, f64) {
    const L: usize = 8;
    let (mut lo, mut hi) = ([f64::INFINITY; L], [0.0f64; L]);
    let mut chunks = v.chunks_exact(L);
    for chunk in &mut chunks {
        for i in 0..L {
            let a = chunk[i].abs_f64();
            lo[i] = if a > 0.0 && a < lo[i] { a } else { lo[i] };
            hi[i] = if a > hi[i] { a } else { hi[i] };
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
            let a = x.abs_f64();
            (if a > 0.0 { lo.min(a) } else { lo }, hi.max(a))
        });
    lo.iter()
        .zip(&hi)
        .fold(tail, |(l, h), (&a, &b)| (l.min(a), h.max(b)))
}

/// Whether the unflushed kernel gives the flushed kernel's bits: true when every non-zero
/// product |a·b| is at least 2^-101 (so, rounded, at least 2^-102).
///
/// Why that suffices: partial sums start at +0 and, by induction, are 0 or normal. Adding a
/// product p (0 or |p| >= 2^-102) to a normal s: if |s| >= 2^-103 both operands are
/// multiples of 2^-126 (their ulps), so the exact sum is 0 or at least 2^-126 — normal; if
/// |s| < 2^-103 then |s + p| > 2^-102 - 2^-103 — normal. No product or sum is ever subnormal,
/// and a sum started at +0 is never -0 (round to nearest gives -0 only for -0 + -0), so the
/// flushes are identities. The initial value of C must be 0 or normal (it always is: it is
/// itself such a sum).
pub fn no_subnormals(min_a: f64, min_b: f64) -> bool {
    min_a * min_b >= 2f64.powi(-101)
}

/// `C[r][c] = C[r][c] + Σ_{kk in k0..k1} A[r][kk]·B[kk][c]`, for rows `0..a.rows` and
/// columns `0..ncols` (ncols a multiple of [`COL_ALIGN`]); B is `k x ncols` with row stride
/// `ldb` (row kk of B pairs with column kk of A), C is `a.rows x ncols` with stride `ldc`.
/// `mode` selects the kernel ([`Mode::choose`]: the flushing one for float lanes whose
/// operands may underflow, the fused one when every product is exact).
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Elem, W: Weight<T>>(
    a: &Packed<W>,
    k0: usize,
    k1: usize,
    b: &[T],
    ldb: usize,
    ncols: usize,
    c: &mut [T],
    ldc: usize,
    mode: Mode,
) {
    gemm_on(Isa::detect(), a, k0, k1, b, ldb, ncols, c, ldc, mode)
}

/// An initialised C seen as the memory the kernels write: sound because they only ever
/// write initialised values into it, so it stays initialised.
pub(super) fn as_uninit<T>(c: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: same layout; the kernels write only initialised values, so `c` stays
    // initialised.
    unsafe { &mut *(c as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// `C = +0 + A·B` over all of A's `k`, into a new `a.rows x ncols` C (stride `ncols`),
/// written once: each tile's rows are set to +0 in the kernel's own pass just before its
/// first k block, with no clearing of the whole buffer first (no `memset`, and a fresh
/// mapping is faulted in by that write instead of by a read of the shared zero page).
pub fn gemm_new<T: Elem, W: Weight<T>>(
    a: &Packed<W>,
    b: &[T],
    ldb: usize,
    ncols: usize,
    mode: Mode,
) -> Vec<T> {
    let len = a.rows * ncols;
    let mut c = Vec::with_capacity(len);
    let out = &mut c.spare_capacity_mut()[..len];
    gemm_in(
        Isa::detect(),
        a,
        0,
        a.k,
        b,
        ldb,
        ncols,
        out,
        ncols,
        mode,
        true,
    );
    // SAFETY: from +0, every element of every row (`a.rows`) and column (`ncols`) is
    // written: each tile's rows are set to +0 before its first k block (or, with k = 0,
    // every row is), then the kernels store whole tiles.
    unsafe { c.set_len(len) };
    c
}

/// [`gemm`] on a chosen instruction set (tests run every one the machine has).
#[allow(clippy::too_many_arguments)]
fn gemm_on<T: Elem, W: Weight<T>>(
    isa: Isa,
    a: &Packed<W>,
    k0: usize,
    k1: usize,
    b: &[T],
    ldb: usize,
    ncols: usize,
    c: &mut [T],
    ldc: usize,
    mode: Mode,
) {
    gemm_in(
        isa,
        a,
        k0,
        k1,
        b,
        ldb,
        ncols,
        as_uninit(c),
        ldc,
        mode,
        false,
    )
}

/// [`gemm`] (`from_zero` false) or [`gemm_new`] (true: each tile starts as +0).
#[allow(clippy::too_many_arguments)]
fn gemm_in<T: Elem, W: Weight<T>>(
    isa: Isa,
    a: &Packed<W>,
    k0: usize,
    k1: usize,
    b: &[T],
    ldb: usize,
    ncols: usize,
    c: &mut [MaybeUninit<T>],
    ldc: usize,
    mode: Mode,
    from_zero: bool,
) {
    assert!(
        ncols.is_multiple_of(COL_ALIGN) && ncols <= ldb && ncols <= ldc && k1 <= a.k && k0 <= k1
    );
    assert!(b.len() >= (k1 - k0).saturating_sub(1) * ldb + ncols || k1 == k0);
    assert!(c.len() >= a.rows.saturating_sub(1) * ldc + ncols || a.rows == 0);
    if a.rows == 0 || ncols == 0 {
        return;
    }
    if k0 == k1 {
        if from_zero {
            for row in c.chunks_mut(ldc).take(a.rows) {
                row[..ncols].fill(MaybeUninit::new(T::default()));
            }
        }
        return;
    }
    // Several column strips: B is copied once into strip-major order (`[strip][kk][16]`), so
    // that a microkernel walks consecutive memory instead of one cache line (and page) per k.
    let packed_b;
    let (b, ldb, b_strip) = if ncols > COL_ALIGN && ldb > COL_ALIGN {
        let depth = k1 - k0;
        // Written once, every element (no zeroing first).
        let mut v = Vec::with_capacity(depth * ncols);
        v.spare_capacity_mut()[..depth * ncols]
            .par_chunks_mut(depth * COL_ALIGN)
            .enumerate()
            .for_each(|(strip, dst)| {
                for (kk, row) in dst.chunks_exact_mut(COL_ALIGN).enumerate() {
                    let at = kk * ldb + strip * COL_ALIGN;
                    for (d, &x) in row.iter_mut().zip(&b[at..at + COL_ALIGN]) {
                        d.write(x);
                    }
                }
            });
        // SAFETY: the strips cover all `depth * ncols` elements, each written above.
        unsafe { v.set_len(depth * ncols) };
        packed_b = v;
        (&packed_b[..], COL_ALIGN, depth * COL_ALIGN)
    } else {
        (b, ldb, COL_ALIGN)
    };
    let task_rows = ROWS_PER_TASK;
    let body = |(task, c_rows): (usize, &mut [MaybeUninit<T>])| {
        let first_panel = task * task_rows / MR;
        let rows_here = (a.rows - task * task_rows).min(task_rows);
        let job = Job {
            a,
            first_panel,
            rows: rows_here,
            k0,
            k1,
            b,
            ldb,
            b_strip,
            ncols,
            c: c_rows,
            ldc,
            from_zero,
        };
        isa.run(job, mode);
    };
    let c = &mut c[..(a.rows - 1) * ldc + ncols];
    let work = a.rows as u64 * ncols as u64 * (k1 - k0) as u64;
    if work < SERIAL_WORK {
        c.chunks_mut(task_rows * ldc).enumerate().for_each(body);
    } else {
        c.par_chunks_mut(task_rows * ldc).enumerate().for_each(body);
    }
}

#[cfg(test)]
#[path = "gemm_tests.rs"]
mod tests;
