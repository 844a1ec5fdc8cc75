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
//! (1 + 2^-24)^n ≤ 2 for n below ten million (above, B_r is multiplied by (1 + 2^-24)^n / 2).
//! A cell state grows by at most 2 a step: |f·c| ≤ |c| and |i·g| ≤ 1 (gates at most 1,
//! rounding monotone), and c + 1 rounds up only where the format's spacing is at most 2. So
//! every partial sum is at most 8·B_r, and B_r ≤ [`GATE_SUM_LIMIT`] = f32::MAX / 16 keeps it
//! finite with a factor 2 to spare.
//!
//! The dense head (float32 on the CPU, weights not rounded, NUMERICS.md §8) is held to the
//! same limit: each layer's max over rows of Σ|w|·x + |b|, with x = 1 for the hidden states it
//! reads and, after a layer without a squashing activation (none, relu), that layer's bound.

use super::EvalError;
use crate::lstm::npy::Sequences;
use crate::lstm::{HeadActivation, Model};
use rayon::prelude::*;

/// The largest bound on a gate sum accepted (float32's largest value / 16, see above).
pub(crate) const GATE_SUM_LIMIT: f64 = f32::MAX as f64 / 16.0;

/// Refuses `seqs` through `model` when a gate sum of some layer direction, or a sum of the
/// dense head, could exceed [`GATE_SUM_LIMIT`]; the message names the layer, the bound and
/// what drives it: the input (where its largest value is), the sequence length (a cell state
/// growing into the peepholes) or the model itself.
pub(crate) fn check_gate_sums(
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
) -> Result<(), EvalError> {
    let refuse = |what: String, bound: f64, cause: String, advice: &str| EvalError::Overflow {
        input: input_name.to_string(),
        model: model.name.clone(),
        problem: format!(
            "{what} could reach {bound:.3e} (from {cause}), above {GATE_SUM_LIMIT:.3e} \
             (float32's largest value / 16), where float32 sums could overflow to Inf and NaN, \
             which devices do not compute alike; {advice}"
        ),
    };
    let (at, x_max) = largest(&seqs.data);
    for (l, layer) in model.layers.iter().enumerate() {
        let x = if l == 0 { x_max } else { 1.0 };
        for (k, cell) in layer.cells.iter().enumerate() {
            let bound = |x: f64, steps: usize| row_bound(cell, layer.input_size, steps, x);
            let b = bound(x, seqs.steps);
            if b <= GATE_SUM_LIMIT {
                continue;
            }
            // Blame what a smaller value would have let through.
            let (cause, advice) = if bound(x.min(1.0), seqs.steps) <= GATE_SUM_LIMIT {
                let per_seq = (seqs.steps * seqs.width).max(1);
                let width = seqs.width.max(1);
                let (n, t, i) = (at / per_seq, at % per_seq / width, at % width);
                let cause =
                    format!("inputs as large as {x:.3e}, at sequence {n}, step {t}, feature {i}");
                (cause, "scale the input down")
            } else if bound(x.min(1.0), 1) <= GATE_SUM_LIMIT {
                let cause = format!(
                    "{} steps: a cell state may grow by 2 a step, and the peepholes read it",
                    seqs.steps
                );
                (cause, "give shorter sequences")
            } else {
                let cause = "the model's weights and initial states".to_string();
                (cause, "the model is outside float32's working range")
            };
            let what = format!("a gate sum of layer {l} direction {k}");
            return Err(refuse(what, b, cause, advice));
        }
    }
    // The head reads hidden states (at most 1 in magnitude); its weights are not rounded.
    if let Some(head) = &model.head {
        let mut x = 1.0;
        for (d, dense) in head.layers.iter().enumerate() {
            let b = dense_bound(dense, x);
            if b > GATE_SUM_LIMIT {
                let what = format!("a sum of the head's dense layer {d}");
                let cause = "the head's weights".to_string();
                return Err(refuse(
                    what,
                    b,
                    cause,
                    "the model is outside float32's working range",
                ));
            }
            x = match dense.activation {
                HeadActivation::None | HeadActivation::Relu => b,
                HeadActivation::Tanh | HeadActivation::Sigmoid | HeadActivation::Softmax => 1.0,
            };
        }
    }
    Ok(())
}

/// How much n rounded float32 additions can grow a sum beyond the factor 2 the limit allows
/// for them: 1 below ten million terms, (1 + 2^-24)^n / 2 above.
fn growth(terms: usize) -> f64 {
    ((1.0 + f64::powi(2.0, -24)).powf(terms as f64) / 2.0).max(1.0)
}

/// A dense layer's largest |output| for inputs at most `x`: max over rows of Σ|w|·x + |b|,
/// grown as its sum of `In + 1` terms may be.
fn dense_bound(dense: &crate::lstm::Dense, x: f64) -> f64 {
    let n = dense.input_size;
    let rows = dense.weight.chunks(n.max(1)).zip(&dense.bias);
    let b = rows.fold(0f64, |m, (w, &b)| m.max(abs_sum(w) * x + (b as f64).abs()));
    b * growth(n + 1)
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
        * growth(input_size + hidden + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lstm::{Cell, Dense, Direction, Head, HeadInput, Layer};

    /// One layer of H = 2 on 3 inputs: W's rows of gate i, f, g, o hold `w` times 1, 2, 3, 4;
    /// R 0.5, b_ih + b_hh of magnitude 2; peepholes `[i, f, o]`.
    fn model(w: f32, peephole: Option<[f32; 3]>, c0: Option<f32>) -> Model {
        let hsz = 2;
        let cell = Cell {
            w: (0..4 * hsz * 3)
                .map(|k| w * (1 + k / (hsz * 3)) as f32)
                .collect(),
            r: vec![0.5; 4 * hsz * hsz],
            b_ih: vec![1.0; 4 * hsz],
            b_hh: vec![-1.0; 4 * hsz],
            peephole: peephole.map(|p| p.iter().flat_map(|&v| vec![v; hsz]).collect()),
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

    fn seqs(x: f32, steps: usize) -> Sequences {
        let mut data = vec![0.25f32; 2 * steps * 3];
        data[steps * 3 + 2 * 3 + 1] = -x;
        Sequences::new("x", [2, steps, 3], data, true).unwrap()
    }

    #[test]
    fn the_bound_is_the_largest_row_sum_of_magnitudes() {
        // Row sums 3·|w|·X·(1, 2, 3, 4) + 2·0.5·1 + 2: with w = 1, X = 10: 33, 63, 93, 123.
        let bound = |m: &Model| row_bound(&m.layers[0].cells[0], 3, 4, 10.0);
        assert_eq!(bound(&model(1.0, None, None)), 123.0);
        // A peephole adds |p|·(2·|c0| + 2T) = |p|·14 to its own gate's rows only: o's to the
        // o rows (123 + 140), i's to the i rows (33 + 140), f's to the f rows (63 + 140).
        assert_eq!(bound(&model(1.0, Some([0.0, 0.0, 10.0]), Some(3.0))), 263.0);
        assert_eq!(bound(&model(1.0, Some([10.0, 0.0, 0.0]), Some(3.0))), 173.0);
        assert_eq!(
            bound(&model(1.0, Some([0.0, 10.0, 0.0]), Some(-3.0))),
            203.0
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
    fn sums_of_more_than_ten_million_terms_count_their_rounding() {
        assert_eq!(growth(3), 1.0);
        assert_eq!(growth(10_000_000), 1.0);
        // e^(2e7 / 2^24) / 2 = 1.64.
        assert!(
            (growth(20_000_000) - 1.645).abs() < 0.01,
            "{}",
            growth(20_000_000)
        );
    }

    #[test]
    fn the_message_blames_what_a_smaller_value_would_let_through() {
        let check = |m: &Model, x: f32, steps: usize| {
            check_gate_sums(m, &seqs(x, steps), "x.npy").map_err(|e| e.to_string())
        };
        let m = model(1.0, None, None);
        assert!(check(&m, 1e30, 4).is_ok());
        // The input: its largest value, where.
        let e = check(&m, 3e37, 4).unwrap_err();
        assert!(
            e.starts_with("x.npy: through 'm', a gate sum of layer 0 direction 0"),
            "{e}"
        );
        assert!(e.contains("inputs as large as 3.000e37, at sequence 1, step 2, feature 1"));
        assert!(
            e.contains("scale the input down") && !e.contains('\n'),
            "{e}"
        );
        // The weights, even with an input above 1.
        let e = check(&model(1e37, None, None), 2.0, 4).unwrap_err();
        assert!(e.contains("the model's weights and initial states"), "{e}");
        // The sequence length, through a peephole on a cell that may grow by 2 a step.
        let m = model(1.0, Some([0.0, 0.0, 1e31]), None);
        assert!(check(&m, 0.5, 4).is_ok());
        let e = check(&m, 0.5, 2_000_000).unwrap_err();
        assert!(
            e.contains("2000000 steps") && e.contains("give shorter sequences"),
            "{e}"
        );
    }

    #[test]
    fn the_head_is_bounded_layer_by_layer() {
        let dense = |w: f32, b: f32, activation| Dense {
            input_size: 2,
            output_size: 1,
            weight: vec![w, -w],
            bias: vec![b],
            activation,
        };
        let with_head = |layers| Model {
            head: Some(Head {
                layers,
                input: HeadInput::EveryStep,
            }),
            ..model(1.0, None, None)
        };
        let ok = |m: &Model| check_gate_sums(m, &seqs(1.0, 4), "x.npy").is_ok();
        // 2·1e18·1 + 0, then 2·1e18·2e18 = 4e36 after a layer without a squashing activation:
        // above the limit; after a sigmoid its input is 1 again.
        let big = 1e18;
        assert!(ok(&with_head(vec![dense(big, 0.0, HeadActivation::None)])));
        let relu = vec![
            dense(big, 0.0, HeadActivation::Relu),
            dense(big, 0.0, HeadActivation::None),
        ];
        assert!(ok(&with_head(relu)), "4e36 is under 2.1e37");
        let relu = vec![
            dense(big, 0.0, HeadActivation::Relu),
            dense(10.0 * big, 0.0, HeadActivation::None),
        ];
        let e = check_gate_sums(&with_head(relu), &seqs(1.0, 4), "x.npy").unwrap_err();
        assert!(e.to_string().contains("head's dense layer 1"), "{e}");
        let squashed = vec![
            dense(big, 0.0, HeadActivation::Sigmoid),
            dense(10.0 * big, 0.0, HeadActivation::None),
        ];
        assert!(ok(&with_head(squashed)));
        let bias = vec![dense(1.0, 3e37, HeadActivation::Softmax)];
        assert!(!ok(&with_head(bias)));
    }
}
