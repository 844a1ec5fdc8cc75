//! The accurate reference every error figure is measured against: the model evaluated in
//! float64 on the CPU (docs/NUMERICS.md §14). Weights, inputs and initial states are the
//! model's f32 values taken exactly; every sum, product, `exp` and `tanh` is f64 (the
//! recurrent products as fused multiply-adds: each term's exact product rounded once, with
//! its sum); nothing is rounded to f32 until the states are stored, once (a relative error
//! of at most 2^-24).
//!
//! It is also the calibration run (§3): the ranges of the data-derived tensors (h, c, the
//! pre-activations) are read from it as it runs, each value rounded once to f32, so a trace
//! needs no second float pass before its candidates.
//!
//! It is not a candidate precision and has no GPU twin: it is the yardstick, computed once per
//! trace or policy run. `fp32` stays an ordinary candidate, bit-exact as §6 specifies, and is compared with
//! this reference like any other precision. The products use the same blocked kernels as the
//! engine ([`gemm`] over f64), so the reference costs about one extra fp32 pass at half the
//! vector width; on AVX-512, R stays f32 in memory and is widened as it is read (exact: the
//! same bits as an f64 copy, half the bytes streamed per step).

use super::batch::Io;
use super::calib::Histogram;
use super::fused::{span, Mode};
use super::gemm::{self, Packed};
use super::plan::{CalHist, Calibration, CellRange, LayerRange};
use super::LayerStates;
use crate::lstm::npy::Sequences;
use crate::lstm::{Cell, HeadActivation, HeadInput, Model};
use rayon::prelude::*;

/// The reference evaluation of a batch: the same shapes as a [`super::Run`].
#[derive(Debug, Clone)]
pub struct Reference {
    /// The last layer's hidden sequence, `[N, T, D*H]`.
    pub hidden: Vec<f32>,
    /// The head's output, `[N, T, O]` (`[N, O]` for a head on one vector per sequence), when
    /// the model has a head.
    pub output: Option<Vec<f32>>,
    /// Every layer's h and c, `[N, T, D*H]` each.
    pub states: Vec<LayerStates>,
    /// The ranges (and, when asked for, the distributions) of every data-derived tensor:
    /// the calibration of docs/NUMERICS.md §3.
    pub calibration: Calibration,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// Evaluates `model` on `seqs` in float64 (the calibration without histograms).
pub fn evaluate(model: &Model, seqs: &Sequences) -> Reference {
    evaluate_with(model, seqs, false)
}

/// Evaluates `model` on `seqs` in float64; `hist` also records the distribution of every
/// data-derived tensor (for calibration rules other than `max`).
pub fn evaluate_with(model: &Model, seqs: &Sequences, hist: bool) -> Reference {
    let (n, steps) = (seqs.count, seqs.steps);
    let mut x: Vec<f64> = seqs.data.iter().map(|&v| v as f64).collect();
    let mut width = model.input_size();
    let mut states = Vec::with_capacity(model.layers.len());
    let mut ranges = Vec::with_capacity(model.layers.len());
    let mut hists = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let hsz = layer.hidden_size;
        let stride = hsz * layer.direction.count();
        let mut h = vec![0.0f64; n * steps * stride];
        let mut c = vec![0.0f64; n * steps * stride];
        // Blocks of sequences run apart when a step is too small to split by rows
        // (`driver::lane_block`), all in the pool; per direction, the blocks' ranges joined.
        let block = crate::lstm::driver::lane_block(hsz, 1, n);
        let (row, x_row) = (steps * stride, steps * width);
        let blocks: Vec<Vec<(f32, Option<Histogram>)>> = rayon::scope(|_| {
            h.par_chunks_mut((block * row).max(1))
                .zip(c.par_chunks_mut((block * row).max(1)))
                .enumerate()
                .map(|(b, (h, c))| {
                    let (first, count) = (b * block, h.len() / row.max(1));
                    let x = &x[first * x_row..(first + count) * x_row];
                    let dirs = layer.cells.iter().enumerate();
                    dirs.map(|(k, cell)| {
                        let io = Io {
                            x,
                            input: width,
                            n: count,
                            steps,
                            reversed: layer.direction.is_reversed(k),
                            offset: k * hsz,
                            stride,
                        };
                        direction(cell, hsz, &io, h, c, hist)
                    })
                    .collect()
                })
                .collect()
        });
        let cells = (0..layer.cells.len())
            .map(|k| {
                let mut joined = (0.0f32, hist.then(Histogram::default));
                for (pre_max, pre_hist) in blocks.iter().map(|b| &b[k]) {
                    joined.0 = joined.0.max(*pre_max);
                    if let (Some(all), Some(one)) = (joined.1.as_mut(), pre_hist) {
                        all.merge(one);
                    }
                }
                joined
            })
            .collect();
        let layer_states = LayerStates {
            h: h.iter().map(|&v| v as f32).collect(),
            c: c.iter().map(|&v| v as f32).collect(),
        };
        let (range, layer_hist) = layer_ranges(layer, &layer_states, cells, hist);
        ranges.push(range);
        hists.push(layer_hist);
        states.push(layer_states);
        x = h;
        width = stride;
    }
    let output = model.head.as_ref().map(|head| {
        // The rows the head reads: every step's, or one per sequence.
        let rows: std::borrow::Cow<[f64]> = match head.input {
            HeadInput::EveryStep => std::borrow::Cow::Borrowed(&x),
            _ => (0..n)
                .flat_map(|s| {
                    let seq = &x[s * steps * width..(s + 1) * steps * width];
                    super::head_rows(model, head.input, seq, steps).into_owned()
                })
                .collect(),
        };
        // Layer after layer in f64, rounded to f32 once at the end.
        let mut v = rows;
        for d in &head.layers {
            v = std::borrow::Cow::Owned(dense_f64(d, &v));
        }
        let y: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        y
    });
    let hidden = states.last().map(|s| s.h.clone()).unwrap_or_default();
    let calibration = Calibration {
        input_max: seqs.data.iter().fold(0.0f32, |m, v| m.max(v.abs())),
        layers: ranges,
        hist: hist.then(|| {
            let mut input = Histogram::default();
            input.extend(&seqs.data);
            CalHist {
                input,
                layers: hists.into_iter().flatten().collect(),
            }
        }),
    };
    Reference {
        hidden,
        output,
        states,
        calibration,
    }
}

/// One layer's ranges from its stored (f32) states and its directions' pre-activation ranges:
/// max |h| over every step, direction and h0, max |c| per direction over every step and c0;
/// with `hist`, their histograms too.
#[allow(clippy::type_complexity)]
fn layer_ranges(
    layer: &crate::lstm::Layer,
    states: &LayerStates,
    cells: Vec<(f32, Option<Histogram>)>,
    hist: bool,
) -> (LayerRange, Option<(Histogram, Vec<(Histogram, Histogram)>)>) {
    let hsz = layer.hidden_size;
    let stride = hsz * layer.direction.count();
    let absmax = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let h0s = layer
        .cells
        .iter()
        .map(|c| c.h0.as_deref().unwrap_or_default());
    let h_max = h0s
        .clone()
        .fold(absmax(&states.h), |m, h0| m.max(absmax(h0)));
    let c_of = |k: usize| {
        states
            .c
            .chunks(stride)
            .map(move |row| &row[k * hsz..(k + 1) * hsz])
    };
    let ranges = layer
        .cells
        .iter()
        .zip(&cells)
        .enumerate()
        .map(|(k, (cell, &(pre_max, _)))| CellRange {
            c_max: c_of(k).fold(absmax(cell.c0.as_deref().unwrap_or_default()), |m, c| {
                m.max(absmax(c))
            }),
            pre_max,
        })
        .collect();
    let hists = hist.then(|| {
        let mut h = Histogram::default();
        h.extend(&states.h);
        h0s.for_each(|h0| h.extend(h0));
        let per_cell = layer
            .cells
            .iter()
            .zip(cells)
            .enumerate()
            .map(|(k, (cell, (_, pre)))| {
                let mut c = Histogram::default();
                c_of(k).for_each(|row| c.extend(row));
                c.extend(cell.c0.as_deref().unwrap_or_default());
                (pre.unwrap_or_default(), c)
            })
            .collect();
        (h, per_cell)
    });
    (
        LayerRange {
            h_max,
            cells: ranges,
        },
        hists,
    )
}

/// One direction of one layer over the batch, laid out like the engine's ([`Io`]); returns the
/// largest |pre-activation| (every gate and step, peephole terms included, rounded to f32)
/// and, with `hist`, their histogram.
fn direction(
    cell: &Cell,
    hsz: usize,
    io: &Io<f64>,
    h_out: &mut [f64],
    c_out: &mut [f64],
    hist: bool,
) -> (f32, Option<Histogram>) {
    let (rows, lanes) = (4 * hsz, io.lanes());
    let cols = io.steps * lanes;
    let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    // Input products of every step, column t*lanes + n.
    let xt = io.transpose(io.x);
    let w = Packed::new_from(&cell.w, rows, io.input, f64::from);
    // f32 inputs times f32 weights are exact in f64: the fused kernel (same bits).
    let mode = Mode::choose::<f64>(&w.span, &span(&xt));
    let mut xw = gemm::gemm_new(&w, &xt, cols, cols, mode);
    drop(xt);
    let r = Recurrent::pack(&cell.r, rows, hsz);
    let bias: Vec<f64> = cell
        .b_ih
        .iter()
        .zip(&cell.b_hh)
        .map(|(&a, &b)| a as f64 + b as f64)
        .collect();
    let peep = cell.peephole.as_deref().map(wide);
    let zeros = vec![0.0f32; hsz];
    let mut h = io.initial(&wide(cell.h0.as_deref().unwrap_or(&zeros)));
    let mut c = io.initial(&wide(cell.c0.as_deref().unwrap_or(&zeros)));
    // Per unit: the largest |pre-activation| so far; with `hist`, one step's pre-activations
    // `[H][4 * N]` (rounded to f32), recorded after the step.
    let mut pre_max = vec![0.0f64; hsz];
    let mut pre = vec![0.0f32; if hist { hsz * 4 * io.n.max(1) } else { hsz }];
    let per_unit = pre.len() / hsz;
    let mut pre_hist = hist.then(Histogram::default);
    for s in 0..io.steps {
        let t = io.time(s);
        // Step t's sums continue in place in its columns of the input products. f32 weights
        // times f64 states are not exact in f64: each term is one fused multiply-add (the
        // exact product, rounded once with the sum), closer to the exact value than a rounded
        // product and a rounded sum, at half the instructions.
        let at = t * lanes;
        r.product(&h, lanes, &mut xw[at..], cols);
        let acc = &xw[at..];
        // Units are independent within a step: each updates its own lanes of h and c (the
        // same operations as a serial loop, so the same bits), in parallel.
        h.par_chunks_mut(lanes)
            .zip(c.par_chunks_mut(lanes))
            .zip(pre_max.par_iter_mut())
            .zip(pre.par_chunks_mut(per_unit))
            .enumerate()
            .with_min_len(16)
            .for_each(|(j, (((h, c), m), pre))| {
                for lane in 0..io.n {
                    let a = |g: usize| acc[(g * hsz + j) * cols + lane] + bias[g * hsz + j];
                    let c_prev = c[lane];
                    let p = |g: usize, cv: f64| peep.as_ref().map_or(0.0, |p| p[g * hsz + j] * cv);
                    let (zi, zf, zg) = (a(0) + p(0, c_prev), a(1) + p(1, c_prev), a(2));
                    let c_new = sigmoid(zf) * c_prev + sigmoid(zi) * zg.tanh();
                    let zo = a(3) + p(2, c_new);
                    h[lane] = sigmoid(zo) * c_new.tanh();
                    c[lane] = c_new;
                    *m = m.max(zi.abs()).max(zf.abs()).max(zg.abs()).max(zo.abs());
                    if hist {
                        let at = 4 * lane;
                        pre[at..at + 4].copy_from_slice(&[zi, zf, zg, zo].map(|v| v as f32));
                    }
                }
            });
        if let Some(hg) = pre_hist.as_mut() {
            hg.extend(&pre);
        }
        for j in 0..hsz {
            for lane in 0..io.n {
                let at = io.out_index(lane, t, j);
                h_out[at] = h[j * lanes + lane];
                c_out[at] = c[j * lanes + lane];
            }
        }
    }
    // max over f64 then rounded = max of the rounded values (rounding is monotonic).
    let pre_max = pre_max.iter().fold(0.0f64, |m, &v| m.max(v)) as f32;
    (pre_max, pre_hist)
}

/// R of one direction: f32 weights widened as the kernel reads them where it has a kernel
/// for that ([`gemm::widens_in_kernel`]: half the bytes streamed per step), else f64 panels.
/// The same values either way, so the same bits.
enum Recurrent {
    F32(Packed<f32>),
    F64(Packed<f64>),
}

impl Recurrent {
    fn pack(r: &[f32], rows: usize, hsz: usize) -> Self {
        if gemm::widens_in_kernel() {
            Recurrent::F32(Packed::new(r, rows, hsz))
        } else {
            Recurrent::F64(Packed::new_from(r, rows, hsz, f64::from))
        }
    }

    /// `acc = acc + R·h`, one fused multiply-add a term (`h`: `[H][lanes]`; `acc`: rows of
    /// `lanes` with stride `ldc`).
    fn product(&self, h: &[f64], lanes: usize, acc: &mut [f64], ldc: usize) {
        match self {
            Recurrent::F32(r) => gemm::gemm(r, 0, r.k, h, lanes, lanes, acc, ldc, Mode::Fma),
            Recurrent::F64(r) => gemm::gemm(r, 0, r.k, h, lanes, lanes, acc, ldc, Mode::Fma),
        }
    }
}

/// One dense layer of the head in f64 over rows of `d.input_size` (rows in parallel).
fn dense_f64(d: &crate::lstm::Dense, x: &[f64]) -> Vec<f64> {
    let width = d.input_size;
    let mut y = vec![0.0f64; x.len() / width.max(1) * d.output_size];
    y.par_chunks_mut(d.output_size)
        .zip(x.par_chunks(width))
        .for_each(|(row, h)| {
            for (o, out) in row.iter_mut().enumerate() {
                let w = &d.weight[o * width..(o + 1) * width];
                *out = w.iter().zip(h).map(|(&a, &b)| a as f64 * b).sum::<f64>() + d.bias[o] as f64;
            }
            match d.activation {
                HeadActivation::None => {}
                HeadActivation::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
                HeadActivation::Tanh => row.iter_mut().for_each(|v| *v = v.tanh()),
                HeadActivation::Sigmoid => row.iter_mut().for_each(|v| *v = sigmoid(*v)),
                HeadActivation::Softmax => {
                    let m = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
                    row.iter_mut().for_each(|v| *v = (*v - m).exp());
                    let s: f64 = row.iter().sum();
                    row.iter_mut().for_each(|v| *v /= s);
                }
            }
        });
    y
}
