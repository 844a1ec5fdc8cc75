//! The float lanes never overflow: before anything runs, every gate sum of every layer is
//! bounded from the input's largest value and the model's weights and initial states, and an
//! input (or a model) for which a sum could leave float32's range is refused
//! (docs/NUMERICS.md §15). An overflow would make Inf, then NaN, in one lane's state; the GPU
//! does not define those (WGSL lets a compiler assume every value is finite: lavapipe gave a
//! finite state where the CPU had NaN), and the CPU's reproducible tanh turns a NaN cell into
//! a plausible hidden value. A bound keeps every device on finite, equal bits.
//!
//! Why the bound holds, per gate row r of a layer direction, with X the largest |input| (1 for
//! layers after the first: their inputs are hidden states, o·tanh(c) rounded, at most 1), Hm =
//! max(1, 2·max|h0|), C = 2·max|c0| + 2T:
//!
//! ```text
//! B_r = Σ_k |W[r,k]|·X + Σ_k |R[r,k]|·Hm + |b_ih[r]| + |b_hh[r]| + |P[r]|·C
//! ```
//!
//! Rounding to any format of NUMERICS.md §1 (to nearest, saturating) at most doubles a
//! magnitude, so every quantized weight and input is at most twice its value and each product
//! at most 4·|w|·|x| (times 1 + 2^-24); n rounded additions grow a sum of such terms by at most
//! (1 + 2^-24)^n ≤ 2 for n below ten million. A cell state grows by at most 2 a step: |f·c| ≤
//! |c| and |i·g| ≤ 1 (gates at most 1, rounding monotone), and c + 1 rounds up only where the
//! format's spacing is at most 2. So every partial sum is at most 8·B_r, and B_r ≤
//! [`GATE_SUM_LIMIT`] = f32::MAX / 16 keeps it finite with a factor 2 to spare. Real models sit
//! thirty orders of magnitude below the limit.

use super::EvalError;
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use rayon::prelude::*;

/// The largest bound on a gate sum accepted (float32's largest value / 16, see above).
pub(crate) const GATE_SUM_LIMIT: f64 = f32::MAX as f64 / 16.0;

/// Refuses `seqs` through `model` when a gate sum of some layer direction could exceed
/// [`GATE_SUM_LIMIT`]; the message names the layer, the bound and, for the first layer, where
/// the input's largest value is.
pub(crate) fn check_gate_sums(
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
) -> Result<(), EvalError> {
    let (at, x_max) = largest(&seqs.data);
    for (l, layer) in model.layers.iter().enumerate() {
        let x = if l == 0 { x_max } else { 1.0 };
        for (k, cell) in layer.cells.iter().enumerate() {
            let bound = row_bound(cell, layer.input_size, seqs.steps, x);
            if bound <= GATE_SUM_LIMIT {
                continue;
            }
            let (cause, advice) = match l == 0 && x > 1.0 {
                true => {
                    let per_seq = (seqs.steps * seqs.width).max(1);
                    let width = seqs.width.max(1);
                    let (n, t, i) = (at / per_seq, at % per_seq / width, at % width);
                    let cause = format!(
                        "inputs as large as {x:.3e}, at sequence {n}, step {t}, feature {i}"
                    );
                    (cause, "scale the input down")
                }
                false => (
                    "the model's weights and initial states alone".to_string(),
                    "the model is outside float32's working range",
                ),
            };
            return Err(EvalError::Overflow {
                input: input_name.to_string(),
                model: model.name.clone(),
                problem: format!(
                    "a gate sum of layer {l} direction {k} could reach {bound:.3e} (from \
                     {cause}), above {GATE_SUM_LIMIT:.3e} (float32's largest value / 16), where \
                     the float32 lanes could overflow to Inf and NaN, which devices do not \
                     compute alike; {advice}"
                ),
            });
        }
    }
    Ok(())
}

/// The index and magnitude of the largest |v| (the first of equals; 0, 0 for none).
fn largest(data: &[f32]) -> (usize, f64) {
    let mut best = (0, 0f32);
    for (i, v) in data.iter().enumerate() {
        if v.abs() > best.1 {
            best = (i, v.abs());
        }
    }
    (best.0, best.1 as f64)
}

/// Σ|v| in f64, in eight running sums (which vectorize; one sum's chain of dependent adds
/// would not, and a trace checks every weight).
fn abs_sum(row: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = row.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|&w| (w as f64).abs()).sum();
    for c in chunks {
        for (a, &w) in acc.iter_mut().zip(c) {
            *a += (w as f64).abs();
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// max over the cell's gate rows of B_r (module doc), for inputs at most `x` and `steps` steps.
fn row_bound(cell: &crate::lstm::Cell, input_size: usize, steps: usize, x: f64) -> f64 {
    let rows = cell.b_ih.len();
    let hidden = rows / 4;
    let abs_max =
        |v: &Option<Vec<f32>>| (v.iter().flatten()).fold(0f64, |m, &a| m.max((a as f64).abs()));
    let h = (2.0 * abs_max(&cell.h0)).max(1.0);
    let c = 2.0 * abs_max(&cell.c0) + 2.0 * steps as f64;
    (0..rows)
        .into_par_iter()
        .map(|r| {
            let w = abs_sum(&cell.w[r * input_size..(r + 1) * input_size]);
            let rr = abs_sum(&cell.r[r * hidden..(r + 1) * hidden]);
            let b = (cell.b_ih[r] as f64).abs() + (cell.b_hh[r] as f64).abs();
            // Peepholes P = [i, f, o] on gate rows i (0), f (1) and o (3).
            let p = match (&cell.peephole, r / hidden.max(1)) {
                (Some(p), g @ (0 | 1)) => p[g * hidden + r % hidden] as f64,
                (Some(p), 3) => p[2 * hidden + r % hidden] as f64,
                _ => 0.0,
            };
            w * x + rr * h + b + p.abs() * c
        })
        .reduce(|| 0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lstm::{Cell, Direction, Layer};

    fn model(w: f32, peephole: Option<f32>, c0: Option<f32>) -> Model {
        let hsz = 2;
        let cell = Cell {
            w: vec![w; 4 * hsz * 3],
            r: vec![0.5; 4 * hsz * hsz],
            b_ih: vec![1.0; 4 * hsz],
            b_hh: vec![-1.0; 4 * hsz],
            peephole: peephole.map(|p| vec![p; 3 * hsz]),
            h0: None,
            c0: c0.map(|c| vec![c; hsz]),
        };
        Model {
            name: "m".into(),
            embedding: None,
            layers: vec![Layer {
                input_size: 3,
                hidden_size: hsz,
                direction: Direction::Forward,
                cells: vec![cell],
            }],
            head: None,
            fixed: Default::default(),
        }
    }

    fn seqs(x: f32) -> Sequences {
        let mut data = vec![0.25f32; 2 * 4 * 3];
        data[4 * 3 + 2 * 3 + 1] = -x;
        Sequences::new("x", [2, 4, 3], data, true).unwrap()
    }

    #[test]
    fn the_bound_is_the_largest_row_sum_of_magnitudes() {
        // 3·|w|·X + 2·0.5·1 + 1 + 1, and with peepholes |p|·(2·|c0| + 2T) on rows i, f, o.
        let m = model(2.0, None, None);
        assert_eq!(row_bound(&m.layers[0].cells[0], 3, 4, 10.0), 63.0);
        let m = model(2.0, Some(-0.5), Some(3.0));
        assert_eq!(
            row_bound(&m.layers[0].cells[0], 3, 4, 10.0),
            63.0 + 0.5 * 14.0
        );
    }

    #[test]
    fn the_running_sums_add_every_magnitude() {
        for len in 0..40 {
            let row: Vec<f32> = (0..len).map(|k| (k as f32 - 17.5) * 0.25).collect();
            let plain: f64 = row.iter().map(|&v| (v as f64).abs()).sum();
            assert_eq!(abs_sum(&row), plain, "length {len}");
        }
    }

    #[test]
    fn inputs_that_could_overflow_a_gate_sum_are_refused_naming_where() {
        let m = model(2.0, None, None);
        assert!(check_gate_sums(&m, &seqs(1e30), "x.npy").is_ok());
        let e = check_gate_sums(&m, &seqs(3e37), "x.npy")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.npy: through 'm'"), "{e}");
        assert!(e.contains("layer 0 direction 0"), "{e}");
        assert!(e.contains("sequence 1, step 2, feature 1"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // Weights alone (the input small).
        let e = check_gate_sums(&model(1e38, None, None), &seqs(0.5), "x.npy").unwrap_err();
        assert!(
            e.to_string().contains("weights and initial states alone"),
            "{e}"
        );
    }
}
