//! Concrete precision-level sequences for the simulator: `lstm-dse simulate` turns a
//! profile's measured fractions and switch rate into one level per step of every layer, and
//! the closed form is then given the profile those sequences realise exactly, so that both
//! see the same steps.

use super::error::AccelError;
use super::workload::Workload;

/// A level sequence of `steps` steps with `counts[k]` steps at level k and about `switches`
/// changes of level: runs cycle through the levels in order, each level's steps spread evenly
/// over its runs. Used by `lstm-dse simulate` to turn measured fractions into a sequence.
pub fn level_sequence(counts: &[usize], switches: usize) -> Vec<usize> {
    let present: Vec<usize> = (0..counts.len()).filter(|&k| counts[k] > 0).collect();
    if present.len() <= 1 {
        return vec![present.first().copied().unwrap_or(0); counts.iter().sum()];
    }
    // Runs per level: at least one each, at most the level's steps.
    let mut runs = vec![0usize; counts.len()];
    let wanted = (switches + 1).max(present.len());
    let mut assigned = 0;
    'fill: loop {
        let mut progressed = false;
        for &k in &present {
            if assigned == wanted {
                break 'fill;
            }
            if runs[k] < counts[k] {
                runs[k] += 1;
                assigned += 1;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    let mut out = Vec::with_capacity(counts.iter().sum());
    let mut done = vec![0usize; counts.len()];
    let mut left = runs.clone();
    while left.iter().any(|&r| r > 0) {
        for &k in &present {
            if left[k] == 0 {
                continue;
            }
            // This run's share of level k's remaining steps.
            let len = (counts[k] - done[k]).div_ceil(left[k]);
            out.extend(std::iter::repeat_n(k, len));
            done[k] += len;
            left[k] -= 1;
        }
    }
    out
}

/// Bytes per step of every layer that `lstm-dse simulate` holds at once: the level sequence
/// (8), the four step times of `sim::servers::LayerTimes` (32), the program order's
/// (wavefront, layer, step) entry (24) and the multithreading wavefront index (8).
pub const SIM_BYTES_PER_LAYER_STEP: u128 = 72;

/// The estimated peak memory of [`realise_levels`] and the simulator on `w` (checked against
/// `--max-memory` before either allocates); `None` when it overflows.
pub fn sim_bytes(w: &Workload) -> Option<u128> {
    crate::limits::product(&[
        w.layers.len() as u128,
        w.seq_len as u128,
        SIM_BYTES_PER_LAYER_STEP,
    ])
}

/// A concrete level sequence per layer for `w`'s precision profile (fractions rounded to whole
/// steps by largest remainder, switches at the profile's rate), and the profile those
/// sequences realise exactly (per-layer fractions, the mean switch rate, the first and last
/// steps' levels), so that the
/// closed form and the simulator see the same steps.
pub fn realise_levels(
    w: &Workload,
) -> Result<(Vec<Vec<usize>>, super::precision::PrecisionProfile), AccelError> {
    w.validate()?;
    let p = &w.precision;
    let t = w.seq_len;
    let mut levels = Vec::with_capacity(w.layers.len());
    let mut fractions = Vec::with_capacity(w.layers.len());
    let mut switches = 0usize;
    for l in 0..w.layers.len() {
        let f = p.fractions_for(l);
        let mut counts: Vec<usize> = f.iter().map(|x| (x * t as f64).floor() as usize).collect();
        let mut order: Vec<usize> = (0..f.len()).collect();
        order.sort_by(|&a, &b| {
            let ra = f[a] * t as f64 - counts[a] as f64;
            let rb = f[b] * t as f64 - counts[b] as f64;
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        let mut i = 0;
        while counts.iter().sum::<usize>() < t {
            counts[order[i % order.len()]] += 1;
            i += 1;
        }
        let want = (p.switch_rate * (t as f64 - 1.0)).round() as usize;
        let seq = level_sequence(&counts, want);
        switches += seq.windows(2).filter(|x| x[0] != x[1]).count();
        fractions.push(
            counts
                .iter()
                .map(|&c| c as f64 / t as f64)
                .collect::<Vec<f64>>(),
        );
        levels.push(seq);
    }
    let mut profile = p.clone();
    let k = p.levels.len();
    profile.step_fraction = (0..k)
        .map(|j| fractions.iter().map(|f| f[j]).sum::<f64>() / fractions.len() as f64)
        .collect();
    profile.layer_step_fraction = fractions;
    // The first and last steps' levels of these sequences (the mean over layers; one-hot when
    // the layers agree, as when every layer has the same levels present), not the measured
    // ones: `level_sequence` does not place its runs by them.
    let edge = |at: fn(&Vec<usize>) -> usize| -> Vec<f64> {
        let mut f = vec![0.0; k];
        for seq in &levels {
            f[at(seq)] += 1.0 / levels.len() as f64;
        }
        f
    };
    if p.is_dynamic() && t > 0 && !levels.is_empty() {
        profile.first_step_fraction = edge(|s| s[0]);
        profile.last_step_fraction = edge(|s| s[s.len() - 1]);
    }
    profile.switch_rate = if p.is_dynamic() && t > 1 {
        switches as f64 / (w.layers.len() * (t - 1)) as f64
    } else {
        0.0
    };
    Ok((levels, profile))
}
