//! The lane-batched CPU engine: all sequences of one precision config advance together, so
//! each weight is read once per step for the whole batch instead of once per sequence;
//! [`super::backend`] runs it under the [`driver`](crate::lstm::driver).
//!
//! Per layer and direction: the input products W·x of **every step** are one matrix product
//! (4H x I weights times I x (T·N) inputs) before the recurrence; each step then continues
//! those sums with R·h (4H x H times H x N states) and applies the element-wise cell update
//! ([`cell::float_unit`] / [`cell::int_unit`], the same code the scalar path runs). Every sum
//! keeps the k order of docs/NUMERICS.md (W·x first, then R·h, then b), so the bits equal the
//! scalar evaluator's; `tests/engine.rs` checks that against a scalar oracle kept in the tests.
//!
//! Integer lanes multiply codes exactly ([`ExactProduct`]): codes of at most 16 bits on AMX
//! tiles where the CPU has them ([`super::amx`]), else on the
//! `vpmaddwd` kernel of [`super::intgemm`] (16-bit x 16-bit codes as two halves of the weights), else
//! codes held exactly in f32 (block sums below 2^24) or f64 (below 2^53); blocks are widened to
//! i64. Integer sums are exact, so any block split or kernel gives the same integers.
//!
//! Float lanes whose weights and operands all fit bf16 (bf16, fp8) run their products on
//! `vdpbf16ps` pairs where the CPU has them ([`super::pairs`]), with the same bits.
//!
//! The element-wise step runs rayon-parallel over blocks of units; fp32 lanes use the
//! vectorized unit of [`fp32cell`], narrow-float lanes that of [`narrowcell`]. Each step's
//! states are kept (`[step][H][lanes]`) and scattered into the `[N, T, D*H]` outputs once at
//! the end. W and R are packed once per plan ([`super::packs`]).
//!
//! States are kept lane-minor (`[H][lanes]`, lanes padded to [`gemm::COL_ALIGN`]): the layout
//! the product reads them in.

use super::cell::{self, float_unit, int_gate_sum, int_unit};
pub(crate) use super::exact::ExactProduct;
use super::fp32cell;
use super::fused::{self, Mode};
use super::gemm::{self, COL_ALIGN};
use super::intgemm::Layout;
use super::narrowcell;
use super::pairs;
use super::plan::{self, Act, CellPlan, IntCell};
use crate::format::tensor;
use rayon::prelude::*;

/// One layer's states for every sequence: `[N, T, D*H]` each.
pub struct LayerOut {
    pub h: Vec<f32>,
    pub c: Vec<f32>,
}

/// Where one direction of a layer reads and writes, for `n` sequences of `steps` steps. The
/// layer input is f32 for the engine, f64 for the float64 reference.
pub(crate) struct Io<'a, X = f32> {
    /// Layer input `[N, T, input]`.
    pub x: &'a [X],
    pub input: usize,
    pub n: usize,
    pub steps: usize,
    pub reversed: bool,
    /// Column offset of this direction in the `[N, T, stride]` outputs.
    pub offset: usize,
    pub stride: usize,
}

impl<X: Copy + Sync> Io<'_, X> {
    pub fn lanes(&self) -> usize {
        self.n.div_ceil(COL_ALIGN) * COL_ALIGN
    }

    pub fn time(&self, s: usize) -> usize {
        if self.reversed {
            self.steps - 1 - s
        } else {
            s
        }
    }

    /// `m` (`[N, T, input]`: the layer input, or a map of it element by element) transposed
    /// to `[input][T * lanes]` (column t*lanes + n); padding columns are zero. Tiles of 16
    /// inputs x 16 lanes: each read and each write a run of 16 consecutive elements; every
    /// element written once (no zeroing first).
    pub fn transpose<T: Copy + Default + Send + Sync>(&self, m: &[T]) -> Vec<T> {
        const KB: usize = 16;
        let (lanes, cols) = (self.lanes(), self.steps * self.lanes());
        debug_assert_eq!(m.len(), self.n * self.steps * self.input);
        let len = self.input * cols;
        let mut out = Vec::with_capacity(len);
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(KB * cols.max(1))
            .enumerate()
            .for_each(|(blk, rows)| {
                let k0 = blk * KB;
                let kb = rows.len() / cols.max(1);
                for t in 0..self.steps {
                    for n0 in (0..lanes).step_by(COL_ALIGN) {
                        // tile[lane][k]: the 16 lanes' runs of kb inputs (zero past n).
                        let mut tile = [[T::default(); KB]; COL_ALIGN];
                        let live = COL_ALIGN.min(self.n.saturating_sub(n0));
                        for (dn, lane) in tile.iter_mut().enumerate().take(live) {
                            let at = ((n0 + dn) * self.steps + t) * self.input + k0;
                            lane[..kb].copy_from_slice(&m[at..at + kb]);
                        }
                        for j in 0..kb {
                            let at = j * cols + t * lanes + n0;
                            for (o, lane) in rows[at..at + COL_ALIGN].iter_mut().zip(&tile) {
                                o.write(lane[j]);
                            }
                        }
                    }
                }
            });
        // SAFETY: each chunk holds `kb` whole rows of `cols`, and every (row, step, strip of
        // 16 lanes) of it was written above.
        unsafe { out.set_len(len) };
        out
    }

    /// An initial state `[H]` repeated for every lane as `[H][lanes]` (padding lanes zero).
    pub fn initial<T: Copy + Default>(&self, v: &[T]) -> Vec<T> {
        let lanes = self.lanes();
        let mut out = vec![T::default(); v.len() * lanes];
        for (row, &x) in out.chunks_exact_mut(lanes).zip(v) {
            row[..self.n].fill(x);
        }
        out
    }

    pub fn out_index(&self, n: usize, t: usize, j: usize) -> usize {
        (n * self.steps + t) * self.stride + self.offset + j
    }
}

impl Io<'_, f32> {
    /// The layer input mapped by `f` (in one vectorized pass, [`tensor::map`]) and
    /// [transposed](Io::transpose).
    pub fn columns<T: Copy + Default + Send + Sync>(
        &self,
        f: impl Fn(f32) -> T + Sync + 'static,
    ) -> Vec<T> {
        self.transpose(&tensor::map(self.x, f))
    }
}

pub(super) fn run_float(p: &CellPlan, io: &Io, h_out: &mut [f32], c_out: &mut [f32]) {
    let (hsz, lanes) = (p.h0.len(), io.lanes());
    let fx = p.formats.x;
    // Input products of every step: XW[r][t*lanes + n], summed from +0 over k in order.
    let xq = io.transpose(&plan::round_all(fx, io.x));
    let cols = io.steps * lanes;
    // bf16 and fp8 operands on the pair kernel where it runs ([`pairs`]), else the f32
    // kernels; the same bits either way. Weights are packed as pairs only where the
    // operands' format can fit bf16 too (else they would be packed twice).
    let may_pair = |f| fused::format_span(f).sig_bits <= 8;
    let x_span = fused::span(&xq);
    let mut xw = match may_pair(fx).then(|| p.w_pairs()).flatten() {
        Some(w) if pairs::fits(&w.span, &x_span) => pairs::product_new(w, &xq, cols, cols),
        _ => {
            let w = p.w_packed();
            let mode = Mode::choose::<f32>(&w.span, &x_span);
            gemm::gemm_new(w, &xq, cols, cols, mode)
        }
    };
    drop(xq);
    let r_pairs = may_pair(p.formats.h).then(|| p.r_pairs()).flatten();
    let mut states = States::new(io, &p.h0, &p.c0);
    // fp32 lanes: the vectorized unit (the same bits as `float_unit`).
    let fast = fp32cell::available() && plain_fp32(p);
    // Narrow-float lanes: the vectorized loop of `narrowcell` (the same bits as `float_unit`).
    let narrow = narrowcell::Narrow::of(p);
    for s in 0..io.steps {
        // Step t's sums continue in place in its columns of the input products.
        let at = io.time(s) * lanes;
        let (h_prev, c_prev, h_next, c_next) = states.step(s);
        let h_span = fused::span(h_prev);
        match r_pairs {
            Some(r) if pairs::fits(&r.span, &h_span) => {
                let c = gemm::as_uninit(&mut xw[at..]);
                pairs::product(r, h_prev, lanes, lanes, c, cols, false);
            }
            _ => {
                let r = p.r_packed();
                let mode = Mode::choose::<f32>(&r.span, &h_span);
                gemm::gemm(r, 0, hsz, h_prev, lanes, lanes, &mut xw[at..], cols, mode);
            }
        }
        let xw = &xw;
        units((hsz, lanes), h_next, c_next, |j, h, c| {
            let acc = [0, 1, 2, 3].map(|g| &xw[(g * hsz + j) * cols + at..][..lanes]);
            let c_prev = &c_prev[j * lanes..(j + 1) * lanes];
            if fast {
                let unit = fp32cell::Unit {
                    acc,
                    bias: [0, 1, 2, 3].map(|g| p.b[g * hsz + j]),
                    peep: p
                        .peep
                        .as_ref()
                        .map(|pp| [pp[j], pp[hsz + j], pp[2 * hsz + j]]),
                    c_prev,
                };
                #[cfg(target_arch = "x86_64")]
                {
                    // SAFETY: `fast` implies `available`; every slice is `lanes` long, a
                    // multiple of 16.
                    return unsafe { fp32cell::unit(&unit, io.n, h, c) };
                }
            }
            if let Some(nw) = &narrow {
                let u = narrowcell::Unit {
                    acc,
                    bias: [0, 1, 2, 3].map(|g| p.b[g * hsz + j]),
                    c_prev,
                };
                return narrowcell::unit(nw, &u, &mut h[..io.n], &mut c[..io.n]);
            }
            for n in 0..io.n {
                let sum = |g: usize| cell::add(acc[g][n], p.b[g * hsz + j]);
                (h[n], c[n], _) = float_unit(p, j, [sum(0), sum(1), sum(2), sum(3)], c_prev[n]);
            }
        });
    }
    states.write_out(io, h_out, c_out, |v| v, |v| v);
}

/// Whether every rounding of the element-wise step is fp32's (a flush) and every activation
/// is computed: the case [`fp32cell`] vectorizes.
fn plain_fp32(p: &CellPlan) -> bool {
    let f = &p.formats;
    let direct = |a: &Act| matches!(a, Act::Direct { out, .. } if out.is_fp32());
    [f.pre, f.c, f.h, f.gate].iter().all(|r| r.is_fp32())
        && direct(&p.sigmoid)
        && direct(&p.tanh_pre)
        && direct(&p.tanh_c)
}

/// The states of every step of one direction, `[step][H][lanes]` in step order (the states
/// after step s are the product input of step s + 1), and the initial states.
struct States<T> {
    hn: usize,
    h0: Vec<T>,
    c0: Vec<T>,
    h: Vec<T>,
    c: Vec<T>,
}

impl<T: Copy + Default + Send + Sync> States<T> {
    fn new(io: &Io, h0: &[T], c0: &[T]) -> Self {
        let hn = h0.len() * io.lanes();
        States {
            hn,
            h0: io.initial(h0),
            c0: io.initial(c0),
            h: vec![T::default(); io.steps * hn],
            c: vec![T::default(); io.steps * hn],
        }
    }

    /// (h before step s, c before step s, h after it, c after it).
    fn step(&mut self, s: usize) -> (&[T], &[T], &mut [T], &mut [T]) {
        let hn = self.hn;
        let (h_done, h_rest) = self.h.split_at_mut(s * hn);
        let (c_done, c_rest) = self.c.split_at_mut(s * hn);
        let (h_prev, c_prev) = if s == 0 {
            (&self.h0[..], &self.c0[..])
        } else {
            (&h_done[(s - 1) * hn..], &c_done[(s - 1) * hn..])
        };
        (h_prev, c_prev, &mut h_rest[..hn], &mut c_rest[..hn])
    }

    /// Scatters the states into the `[N, T, stride]` outputs, as f32 values by `hf`, `cf`.
    fn write_out(
        &self,
        io: &Io,
        h_out: &mut [f32],
        c_out: &mut [f32],
        hf: impl Fn(T) -> f32 + Sync,
        cf: impl Fn(T) -> f32 + Sync,
    ) {
        let lanes = io.lanes();
        let hsz = self.hn / lanes;
        // The output rows `[N][T]` grouped by time, so that one task reads each step's states
        // `[H][lanes]` in order and writes its H values into every sequence's row.
        let mut by_time: Vec<Vec<(&mut [f32], &mut [f32])>> =
            (0..io.steps).map(|_| Vec::with_capacity(io.n)).collect();
        let rows = h_out
            .chunks_exact_mut(io.stride)
            .zip(c_out.chunks_exact_mut(io.stride));
        for (i, (ho, co)) in rows.enumerate() {
            let span = io.offset..io.offset + hsz;
            by_time[i % io.steps.max(1)].push((&mut ho[span.clone()], &mut co[span]));
        }
        // Blocks of 16 units: their states (16 x lanes, a few cache lines) stay in L1 while
        // each sequence's row takes its run of 16 values.
        const JB: usize = 16;
        by_time.par_iter_mut().enumerate().for_each(|(t, rows)| {
            let s = io.time(t);
            let hs = &self.h[s * self.hn..(s + 1) * self.hn];
            let cs = &self.c[s * self.hn..(s + 1) * self.hn];
            for j0 in (0..hsz).step_by(JB) {
                let jb = JB.min(hsz - j0);
                for (n, (ho, co)) in rows.iter_mut().enumerate() {
                    let (ho, co) = (&mut ho[j0..j0 + jb], &mut co[j0..j0 + jb]);
                    for (j, (ho, co)) in ho.iter_mut().zip(co.iter_mut()).enumerate() {
                        let at = (j0 + j) * lanes + n;
                        *ho = hf(hs[at]);
                        *co = cf(cs[at]);
                    }
                }
            }
        });
    }
}

/// The element-wise part of one step, rayon-parallel over blocks of units. `unit(j, h, c)`
/// writes the new states of unit j for every lane (`h`, `c`: `lanes` long); `dims` is (H,
/// lanes), the states `[H][lanes]`. Every value is computed by one call, so the thread count
/// changes no bit.
fn units<T, U>((hsz, lanes): (usize, usize), h_next: &mut [T], c_next: &mut [T], unit: U)
where
    T: Copy + Send + Sync,
    U: Fn(usize, &mut [T], &mut [T]) + Sync,
{
    // Blocks of at least 8192 lane-units, at most 4 per thread; a small step stays here.
    let blocks = (hsz * lanes / 8192).clamp(1, 4 * rayon::current_num_threads());
    let jc = hsz.div_ceil(blocks).max(1);
    h_next
        .par_chunks_mut(jc * lanes)
        .zip(c_next.par_chunks_mut(jc * lanes))
        .enumerate()
        .for_each(|(ci, (hc, cc))| {
            for (jj, (h, c)) in hc
                .chunks_exact_mut(lanes)
                .zip(cc.chunks_exact_mut(lanes))
                .enumerate()
            {
                unit(ci * jc + jj, h, c);
            }
        });
}

pub(super) fn run_int(q: &IntCell, io: &Io, h_out: &mut [f32], c_out: &mut [f32]) {
    let (hsz, lanes) = (q.h0.len(), io.lanes());
    let rows = 4 * hsz;
    let cols = io.steps * lanes;
    let xq = io.columns(q.x.quantizer());
    let w = q.w_product();
    // Strip-major: the sums of step t, lane n, row r at [(t*lanes + n) / 16][r][n % 16].
    let strip_at = |row: usize, col: usize| {
        (col / COL_ALIGN) * rows * COL_ALIGN + row * COL_ALIGN + col % COL_ALIGN
    };
    let wx = w.product_new(&xq, cols, Layout::StripMajor);
    drop(xq);
    let r = q.r_product();
    let mut states = States::new(io, &q.h0, &q.c0);
    let mut rh = vec![0i64; rows * lanes];
    #[cfg(target_arch = "x86_64")]
    let fast = super::intcell::kernel(q);
    for s in 0..io.steps {
        let t = io.time(s);
        let (h_prev, c_prev, h_next, c_next) = states.step(s);
        r.product(h_prev, lanes, &mut rh);
        let (wx, rh) = (&wx, &rh);
        units((hsz, lanes), h_next, c_next, |j, h, c| {
            #[cfg(target_arch = "x86_64")]
            if let Some(unit8) = fast {
                for n0 in (0..io.n).step_by(8) {
                    let x = super::intcell::Lanes {
                        wx: [0, 1, 2, 3].map(|g| &wx[strip_at(g * hsz + j, t * lanes + n0)..][..8]),
                        rh: [0, 1, 2, 3].map(|g| &rh[(g * hsz + j) * lanes + n0..][..8]),
                        c_prev: &c_prev[j * lanes + n0..][..8],
                    };
                    let live = (io.n - n0).min(8);
                    // SAFETY: `kernel` checked the CPU and the cell; lanes are padded to a
                    // multiple of 16, so each slice holds 8 elements and h, c hold `live`.
                    unsafe {
                        unit8(q, j, &x, live, &mut h[n0..], &mut c[n0..]);
                    }
                }
                return;
            }
            for n in 0..io.n {
                let sum = |g: usize| {
                    let row = g * hsz + j;
                    int_gate_sum(
                        q,
                        row,
                        wx[strip_at(row, t * lanes + n)],
                        rh[row * lanes + n],
                    )
                };
                (h[n], c[n]) = int_unit(
                    q,
                    j,
                    [sum(0), sum(1), sum(2), sum(3)],
                    c_prev[j * lanes + n],
                );
            }
        });
    }
    states.write_out(io, h_out, c_out, q.h.dequantizer(), q.c.dequantizer());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transposition against its index formula, on shapes that do not divide the 16 x 16
    /// tiles (and padding lanes zero).
    #[test]
    fn transpose_puts_every_input_in_its_column() {
        for (n, steps, input) in [
            (1, 1, 1),
            (7, 3, 15),
            (16, 2, 16),
            (17, 5, 33),
            (33, 1, 40),
            (0, 3, 5),
            (4, 0, 5),
            (4, 3, 0),
        ] {
            let x: Vec<f32> = (0..n * steps * input).map(|i| i as f32 + 0.5).collect();
            let io = Io {
                x: &x,
                input,
                n,
                steps,
                reversed: false,
                offset: 0,
                stride: input,
            };
            let (lanes, cols) = (io.lanes(), steps * io.lanes());
            let got = io.transpose(&x);
            assert_eq!(got.len(), input * cols);
            for k in 0..input {
                for t in 0..steps {
                    for lane in 0..lanes {
                        let want = if lane < n {
                            x[(lane * steps + t) * input + k]
                        } else {
                            0.0
                        };
                        assert_eq!(
                            got[k * cols + t * lanes + lane],
                            want,
                            "{n} {steps} {input}"
                        );
                    }
                }
            }
        }
    }
}
