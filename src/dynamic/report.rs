//! `policies.csv` (one row per policy: time at each level, switches, accuracy against the
//! float64 reference and, with labels, task accuracy and, for softmax heads, bits per label) and the per-step trace of one policy. The column layout of
//! policies.csv is what `accel::read_policy` reads (`policy`, `levels`, `frac_level_<k>`,
//! `frac_l<layer>_level_<k>`, `frac_first_level_<k>`, `frac_last_level_<k>`).

use super::{Policy, PolicySpec, Simulation};
use crate::lstm::eval::Reference;
use crate::lstm::Model;
use crate::trace::stats::{argmax, top1_agreement, ErrorStats};
use serde::Serialize;
use std::path::Path;

/// The (output row, label) pairs labels are scored on, for an output of `per_seq` rows per
/// sequence (the steps, or 1 for a head on the last step: [`Model::head_rows`]): `[N]` labels
/// pair with the last row of each sequence, `[N, T]` labels with every row.
fn labelled<'a>(
    output: &'a [f32],
    classes: usize,
    per_seq: usize,
    labels: &'a [f32],
) -> Vec<(&'a [f32], f32)> {
    let rows: Vec<&[f32]> = output.chunks(classes.max(1)).collect();
    let per_seq = per_seq.max(1);
    let n = rows.len() / per_seq;
    // `read_labels` checked the labels' shape against the input; an output of another shape
    // scores nothing rather than pairing rows and labels by position.
    if !rows.len().is_multiple_of(per_seq) {
        Vec::new()
    } else if labels.len() == n {
        (0..n)
            .map(|s| (rows[s * per_seq + per_seq - 1], labels[s]))
            .collect()
    } else if labels.len() == rows.len() {
        rows.into_iter().zip(labels.iter().copied()).collect()
    } else {
        Vec::new()
    }
}

/// Task accuracy of `output` (`[N, per_seq, O]`) against labels: `[N]` (class of the last
/// row) or `[N, T]` (a class per step).
pub fn task_accuracy(output: &[f32], classes: usize, per_seq: usize, labels: &[f32]) -> f64 {
    let picks = labelled(output, classes, per_seq, labels);
    picks.iter().filter(|(r, l)| argmax(r) as f32 == *l).count() as f64 / picks.len().max(1) as f64
}

/// Cross-entropy of softmax `output` (`[N, per_seq, O]`) against the same labels, in bits per label:
/// the mean of −log2 p(label), p floored at 2^-100 (a label outside the classes counts as that
/// floor). For a character model: bits per character.
pub fn task_bits(output: &[f32], classes: usize, per_seq: usize, labels: &[f32]) -> f64 {
    let picks = labelled(output, classes, per_seq, labels);
    let bits = |r: &[f32], l: f32| {
        let p = if l >= 0.0 && l.fract() == 0.0 && (l as usize) < r.len() {
            r[l as usize] as f64
        } else {
            0.0
        };
        -p.max(2f64.powi(-100)).log2()
    };
    picks.iter().map(|&(r, l)| bits(r, l)).sum::<f64>() / picks.len().max(1) as f64
}

/// A policy's levels as policies.csv and a sweep's `precision` column write them: `fx8|fx16`.
pub fn levels_text(levels: &[crate::format::PrecisionConfig]) -> String {
    let texts: Vec<String> = levels.iter().map(|c| c.to_string()).collect();
    texts.join("|")
}

/// A policy's thresholds as policies.csv and a sweep's `thresholds` column write them:
/// `0.5|inf`.
pub fn thresholds_text(thresholds: &[f64]) -> String {
    let texts: Vec<String> = thresholds.iter().map(|t| t.to_string()).collect();
    texts.join("|")
}

fn fmt(v: f64) -> String {
    format!("{v}")
}

/// Header and rows of policies.csv.
pub fn policy_rows(
    model: &Model,
    spec: &PolicySpec,
    policies: &[Policy],
    sim: &Simulation,
    reference: &Reference,
    labels: Option<&[f32]>,
) -> (Vec<String>, Vec<Vec<String>>) {
    let nl = spec.levels.len();
    let mut header: Vec<String> = ["policy", "levels", "metric", "timing", "thresholds"]
        .map(String::from)
        .to_vec();
    header.extend((0..nl).map(|k| format!("frac_level_{k}")));
    for l in 0..model.layers.len() {
        header.extend((0..nl).map(|k| format!("frac_l{l}_level_{k}")));
    }
    // The level of each sequence's first and last step (in each layer's and direction's own
    // order): the accelerator model's step 0 and step T-1.
    for which in ["first", "last"] {
        header.extend((0..nl).map(|k| format!("frac_{which}_level_{k}")));
    }
    header.extend(
        [
            "switches_per_1000_steps",
            "hidden_rmse",
            "hidden_max_abs",
            "cell_rmse",
            "cell_max_abs",
            "output_rmse",
            "output_max_abs",
            "top1_agreement",
        ]
        .map(String::from),
    );
    let softmax = matches!(
        model.head.as_ref().map(|h| h.output_activation()),
        Some(crate::lstm::HeadActivation::Softmax)
    );
    if labels.is_some() {
        header.extend(["reference_task_accuracy", "task_accuracy"].map(String::from));
        if softmax {
            header.extend(["reference_task_bits", "task_bits"].map(String::from));
        }
    }
    let levels = levels_text(&spec.levels);
    let ref_states = &reference.states;
    let n_seq = sim.sequences;
    let per_seq = model.head_rows(sim.steps);
    let classes = model.head.as_ref().map_or(0, |h| h.output_size());
    let ref_task = labels.and_then(|lab| {
        reference
            .output
            .as_ref()
            .map(|o| task_accuracy(o, classes, per_seq, lab))
    });
    let ref_bits = labels.filter(|_| softmax).and_then(|lab| {
        reference
            .output
            .as_ref()
            .map(|o| task_bits(o, classes, per_seq, lab))
    });
    let mut rows = Vec::with_capacity(policies.len());
    for (p, policy) in policies.iter().enumerate() {
        let lanes = &sim.lanes[p * n_seq..(p + 1) * n_seq];
        let mut count = vec![vec![0u64; nl]; model.layers.len()];
        let (mut firsts, mut lasts) = (vec![0u64; nl], vec![0u64; nl]);
        let (mut switches, mut transitions) = (0u64, 0u64);
        for lane in lanes {
            for (l, dirs) in lane.levels.iter().enumerate() {
                for (d, seq_levels) in dirs.iter().enumerate() {
                    for &k in seq_levels {
                        count[l][k as usize] += 1;
                    }
                    // Levels are stored by time position; a reversed direction starts at T-1.
                    let (first, last) = (seq_levels.first(), seq_levels.last());
                    let (first, last) = if model.layers[l].direction.is_reversed(d) {
                        (last, first)
                    } else {
                        (first, last)
                    };
                    if let (Some(&f), Some(&e)) = (first, last) {
                        firsts[f as usize] += 1;
                        lasts[e as usize] += 1;
                    }
                    switches += seq_levels.windows(2).filter(|w| w[0] != w[1]).count() as u64;
                    transitions += seq_levels.len() as u64;
                }
            }
        }
        let total: u64 = count.iter().flatten().sum();
        let mut row = vec![
            p.to_string(),
            levels.clone(),
            spec.metric.to_string(),
            format!("{:?}", spec.timing).to_lowercase(),
            thresholds_text(&policy.thresholds),
        ];
        for k in 0..nl {
            row.push(fmt(
                count.iter().map(|c| c[k]).sum::<u64>() as f64 / total.max(1) as f64
            ));
        }
        for c in &count {
            let lt: u64 = c.iter().sum();
            row.extend(c.iter().map(|&v| fmt(v as f64 / lt.max(1) as f64)));
        }
        for edge in [&firsts, &lasts] {
            let n: u64 = edge.iter().sum();
            row.extend(edge.iter().map(|&v| fmt(v as f64 / n.max(1) as f64)));
        }
        row.push(fmt(1000.0 * switches as f64 / transitions.max(1) as f64));
        // Errors against the float64 reference over every layer's states, and the head output (lanes are in
        // sequence order, so their concatenated outputs line up with the reference's).
        let (mut h_err, mut c_err) = (ErrorStats::default(), ErrorStats::default());
        for (s, lane) in lanes.iter().enumerate() {
            for (l, (h, c)) in lane.layers.iter().enumerate() {
                let span = s * h.len()..(s + 1) * h.len();
                h_err.add(h, &ref_states[l].h[span.clone()]);
                c_err.add(c, &ref_states[l].c[span]);
            }
        }
        row.extend([h_err.rmse(), h_err.max_abs(), c_err.rmse(), c_err.max_abs()].map(fmt));
        let out: Vec<f32> = lanes
            .iter()
            .flat_map(|l| l.output.iter().flatten().copied())
            .collect();
        match &reference.output {
            Some(r) if !out.is_empty() => {
                let mut o_err = ErrorStats::default();
                o_err.add(&out, r);
                row.extend([fmt(o_err.rmse()), fmt(o_err.max_abs())]);
                row.push(if classes > 1 {
                    fmt(top1_agreement(&out, r, classes))
                } else {
                    String::new()
                });
            }
            _ => row.extend([String::new(), String::new(), String::new()]),
        }
        if let Some(lab) = labels {
            row.push(ref_task.map_or(String::new(), fmt));
            row.push(if classes > 0 {
                fmt(task_accuracy(&out, classes, per_seq, lab))
            } else {
                String::new()
            });
            if softmax {
                row.push(ref_bits.map_or(String::new(), fmt));
                row.push(fmt(task_bits(&out, classes, per_seq, lab)));
            }
        }
        rows.push(row);
    }
    (header, rows)
}

/// One row of the per-step trace of one policy.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyTraceRow {
    pub sequence: usize,
    pub layer: usize,
    pub direction: usize,
    pub step: usize,
    /// The Δc metric of this step (unitless; a fraction for frac_above).
    pub delta_c_metric: f64,
    pub level: usize,
    pub level_precision: String,
    pub hidden_max_abs: f64,
    pub cell_max_abs: f64,
}

/// The file name of policy `k`'s per-step trace (`dynamic --trace-policy K`).
pub fn trace_file(k: usize) -> String {
    format!("policy_{k}_trace.csv")
}

/// The policy traces in `dir` ([`trace_file`] names), with their policy, in policy order.
/// Only the names [`trace_file`] writes count: `policy_01_trace.csv` or `policy_+1_trace.csv`
/// is some other file (it was read as policy 1's trace, drawn twice beside the real one).
pub fn trace_files(dir: &std::path::Path) -> std::io::Result<Vec<(usize, std::path::PathBuf)>> {
    let mut traces: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let k = name.strip_prefix("policy_")?.strip_suffix("_trace.csv")?;
            let k: usize = k.parse().ok()?;
            (trace_file(k) == name).then(|| (k, dir.join(&name)))
        })
        .collect();
    traces.sort();
    Ok(traces)
}

/// The per-step trace of policy `p`.
pub fn trace_rows(
    model: &Model,
    spec: &PolicySpec,
    sim: &Simulation,
    reference: &Reference,
    p: usize,
) -> Vec<PolicyTraceRow> {
    let ref_states = &reference.states;
    let steps = sim.steps;
    let mut rows = Vec::new();
    for s in 0..sim.sequences {
        let lane = &sim.lanes[p * sim.sequences + s];
        for (l, layer) in model.layers.iter().enumerate() {
            let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
            for k in 0..dirs {
                for t in 0..steps {
                    let at = t * hsz * dirs + k * hsz;
                    let rat = (s * steps + t) * hsz * dirs + k * hsz;
                    let max = |a: &[f32], b: &[f32]| {
                        a.iter()
                            .zip(b)
                            .map(|(x, y)| (*x as f64 - *y as f64).abs())
                            .fold(0.0, f64::max)
                    };
                    let level = lane.levels[l][k][t] as usize;
                    rows.push(PolicyTraceRow {
                        sequence: s,
                        layer: l,
                        direction: k,
                        step: t,
                        delta_c_metric: lane.metrics[l][k][t],
                        level,
                        level_precision: spec.levels[level].to_string(),
                        hidden_max_abs: max(
                            &lane.layers[l].0[at..at + hsz],
                            &ref_states[l].h[rat..rat + hsz],
                        ),
                        cell_max_abs: max(
                            &lane.layers[l].1[at..at + hsz],
                            &ref_states[l].c[rat..rat + hsz],
                        ),
                    });
                }
            }
        }
    }
    rows
}

/// Stages a header and rows as `path` in `set` (in place when the set is committed).
pub fn write_policies(
    set: &mut crate::report::Staged,
    path: &Path,
    header: &[String],
    rows: &[Vec<String>],
) -> Result<(), crate::report::WriteError> {
    set.write_csv(path, |w| {
        w.write_record(header)?;
        rows.iter().try_for_each(|r| w.write_record(r))
    })
}

/// Reads class labels for `seqs` and checks them against the model's head.
pub fn read_labels(
    path: &std::path::Path,
    model: &Model,
    seqs: &crate::lstm::npy::Sequences,
) -> anyhow::Result<Vec<f32>> {
    let name = path.display();
    let (shape, labels) = crate::lstm::npy::read_f32(path)?;
    let Some(head) = &model.head else {
        anyhow::bail!("{name}: labels need a model with a classification head");
    };
    if head.output_size() < 2 {
        anyhow::bail!(
            "{name}: labels need a head of 2 or more outputs to index (this head gives one score; export a 2-way softmax for a binary task)"
        );
    }
    let (n, t) = (seqs.count, seqs.steps);
    let per_step = [n, t];
    if shape[..] != [n] && shape[..] != per_step[..] {
        let expected = match head.rows(t) {
            1 => format!(
                "[{n}] (the head gives one output per sequence, {})",
                head.input.name()
            ),
            _ => format!("[{n}] or [{n}, {t}]"),
        };
        anyhow::bail!(
            "{name}: labels of shape {shape:?} do not match the input: expected {expected}"
        );
    }
    if shape[..] == per_step[..] && t > 1 && head.rows(t) == 1 {
        anyhow::bail!(
            "{name}: labels of shape {shape:?} give a class per step, but the model's head gives one output per sequence ({}): expected [{n}]",
            head.input.name(),
        );
    }
    if let Some(bad) = labels
        .iter()
        .find(|&&v| v.fract() != 0.0 || v < 0.0 || v >= head.output_size() as f32)
    {
        anyhow::bail!(
            "{name}: label {bad} is not a class index 0..{}",
            head.output_size() - 1
        );
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::task_bits;

    #[test]
    fn bits_per_label_by_hand() {
        // One sequence, two steps, two classes.
        let out = [0.5, 0.5, 0.25, 0.75];
        let per_step = task_bits(&out, 2, 2, &[0.0, 1.0]);
        assert!((per_step - (1.0 + (4.0f64 / 3.0).log2()) / 2.0).abs() < 1e-12);
        let last = task_bits(&out, 2, 2, &[1.0]);
        assert!((last - -(0.75f64).log2()).abs() < 1e-12);
        // A label the head cannot give costs the floor, 100 bits.
        assert_eq!(task_bits(&out, 2, 2, &[7.0]), 100.0);
    }
}
