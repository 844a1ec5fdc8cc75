//! A shared core's slow rounds behind its double-buffered streams (docs/MODEL.md section 4,
//! "A shared core's slow runs"). On a core whose layers all stream their weights, the stream
//! of a layer's step s waits for that layer's products of step s-2 only, so the core's DRAM
//! share runs up to two steps of each layer ahead of its units. A run of rounds whose units
//! outlast the streams delays the stream path by the run's excess less that lead, not by the
//! excess of each slow round (`crossing::slow_rounds`, which this replaces where every layer
//! streams). The longest path through the core's FIFO and its units leaves the streams at a
//! round's first job (after its stream) and comes back at a later round's last job (to the
//! stream of that layer's step two steps later): against the streams back to back that path is
//!
//! ```text
//! delay(a..b) = sum_{r=a..b} (busy_r - str_j) + str_first - (2 str_j - str_last)
//! ```
//!
//! (str_j: the core's streams per round, str_first and str_last those of its first and last
//! layer). The stream path's delay is the best set of such runs, a max-plus recursion over the
//! rounds, whose expectation over the level chain of `crossing::level_pairs` is taken on a
//! grid of the lead (the path's units ahead of the streams, less what the last exit costs).

use super::crossing::level_pairs;
use super::precision::PrecisionProfile;
use super::timing::MAX_PRECISION_LEVELS;

/// Intervals of the grid the lead's distribution is kept on, per window of levels.
const LEAD_INTERVALS: usize = 64;

/// What a shared core's slow rounds delay its stream path by, in expectation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct SlowRuns {
    /// The delay of the streams back to back once the path has come back to them after its
    /// last run (the path to each layer's last stream), cycles.
    pub(crate) returned_cycles: f64,
    /// The delay of the path to the core's last layer's last step, which may instead stay on
    /// the units to the end, cycles.
    pub(crate) ending_cycles: f64,
}

/// The expected delay of a shared core's stream path by its slow rounds, every one of its
/// layers streaming: `busy[i]` the i-th layer's busy cycles per level, `carried` the
/// reconfigurations a round saves (off every round), `streams[i]` the i-th layer's weight
/// stream per step (cycles, all > 0). Rounds 1..T-2 run the recursion; the last round (the
/// newest step at the last step's levels) ends it: a path still on the units there runs that
/// round's jobs and the last layer's last step, where the streams run that round's and that
/// step's streams. 0 for a lone layer, and when the windows are too many to enumerate
/// (levels^layers > 4096).
pub(crate) fn buffered_slow_rounds(
    busy: &[[f64; MAX_PRECISION_LEVELS]],
    carried: f64,
    streams: &[f64],
    precision: &PrecisionProfile,
    t: f64,
) -> SlowRuns {
    let phi = &precision.step_fraction;
    let levels = phi.len().min(MAX_PRECISION_LEVELS);
    let present: Vec<usize> = (0..levels).filter(|&k| phi[k] > 0.0).collect();
    let (n, np) = (busy.len(), present.len());
    let none = SlowRuns::default();
    if n < 2 || n != streams.len() || t < 2.0 || np == 0 || (np as f64).powi(n as i32) > 4096.0 {
        return none;
    }
    let Some(chain) = level_chain(precision, &present, t) else {
        return none;
    };
    let stream: f64 = streams.iter().sum();
    // Leaving the streams at a round's first job gains that job's stream; coming back at a
    // round's last job costs the streams up to that layer's step two steps later.
    let (enter, leave) = (streams[0], 2.0 * stream - streams[n - 1]);
    let windows = np.pow(n as u32);
    // Window code: its levels (indices into `present`) oldest first, base np; the core's
    // last layer works on the oldest step, its first layer on the newest.
    let digit = |w: usize, i: usize| (w / np.pow((n - 1 - i) as u32)) % np;
    let newest = |w: usize| digit(w, n - 1);
    // Round r's excess over its streams per window: the core's i-th layer works on step
    // r - i, from its step 0 (on its load) on, and streams from its step 1 on; the first n - 1
    // rounds run fewer jobs and streams than the rest.
    let excess_at = |r: usize| -> Vec<f64> {
        let streamed: f64 = (0..n).filter(|&i| r > i).map(|i| streams[i]).sum();
        (0..windows)
            .map(|w| {
                let units: f64 = (0..n)
                    .filter(|&i| r >= n - 1 - i)
                    .map(|i| busy[n - 1 - i][present[digit(w, i)]])
                    .sum();
                units - carried - streamed
            })
            .collect()
    };
    let excess = excess_at(n);
    // After the last round the streams of the steps the core's later layers still run (the
    // i-th layer's last i steps) come before the last layer's last stream; the units run those
    // jobs (at their mean levels) but the last layer's last step, which ends either path.
    let mean = |i: usize| -> f64 { present.iter().map(|&a| phi[a] * busy[i][a]).sum() };
    let remainder: f64 = (1..n)
        .map(|i| i as f64 * (mean(i) - streams[i]))
        .sum::<f64>()
        - mean(n - 1);
    let shift = |w: usize, b: usize| (w % np.pow((n - 1) as u32)) * np + b;
    let step = |a: usize, b: usize| chain[a * np + b];
    // Round 1's windows: the oldest level at the first step's odds, each next one along the
    // chain.
    let (first, last) = (precision.first_fractions(), precision.last_fractions());
    let at_level = |f: &[f64], b: usize| f.get(present[b]).copied().unwrap_or(0.0);
    let rounds = (t as usize).saturating_sub(2);
    let mut odds: Vec<f64> = (0..np).map(|a| at_level(first, a)).collect();
    for i in 1..n {
        let mut next = vec![0.0; odds.len() * np];
        for (w, &p) in odds.iter().enumerate() {
            for b in 0..np {
                // With T = 2 round 1 is the last: its newest step is the last one.
                let to = if rounds == 0 && i == n - 1 {
                    at_level(last, b)
                } else {
                    step(w % np, b)
                };
                next[w * np + b] += p * to;
            }
        }
        odds = next;
    }
    // Per window of the round about to run and grid point of the lead: the odds, and the
    // expected delay so far on them (times the odds).
    let span = leave - enter;
    let points = LEAD_INTERVALS + 1;
    let at = |k: usize| enter + span * k as f64 / LEAD_INTERVALS as f64;
    let mut mass = vec![0.0; windows * points];
    let mut delay = vec![0.0; windows * points];
    for (w, &p) in odds.iter().enumerate() {
        mass[w * points] = p;
    }
    for r in 1..=rounds {
        let partial;
        let excess: &[f64] = if r < n {
            partial = excess_at(r);
            &partial
        } else {
            &excess
        };
        let mut next_mass = vec![0.0; windows * points];
        let mut next_delay = vec![0.0; windows * points];
        for w in 0..windows {
            for k in 0..points {
                let m = mass[w * points + k];
                if m <= 0.0 {
                    continue;
                }
                let y = at(k) + excess[w];
                let more = (y - leave).max(0.0);
                let d = delay[w * points + k] + m * more;
                // The lead after the round, on the grid (split between its two neighbours).
                let u = ((y.clamp(enter, leave) - enter) / span * LEAD_INTERVALS as f64)
                    .clamp(0.0, LEAD_INTERVALS as f64);
                let lo = (u.floor() as usize).min(LEAD_INTERVALS - 1);
                let hi_share = u - lo as f64;
                for b in 0..np {
                    // The last round's newest step is the last one, at its own levels.
                    let p = if r == rounds {
                        at_level(last, b)
                    } else {
                        step(newest(w), b)
                    };
                    if p <= 0.0 {
                        continue;
                    }
                    let v = shift(w, b) * points;
                    for (idx, share) in [(lo, 1.0 - hi_share), (lo + 1, hi_share)] {
                        next_mass[v + idx] += p * share * m;
                        next_delay[v + idx] += p * share * d;
                    }
                }
            }
        }
        mass = next_mass;
        delay = next_delay;
    }
    // The last round: a path still on the units runs its jobs and the steps after it.
    let last_excess = excess_at((t as usize - 1).max(1));
    let (mut returned, mut ending) = (0.0, 0.0);
    for w in 0..windows {
        for k in 0..points {
            let m = mass[w * points + k];
            let ends = (at(k) + last_excess[w] + remainder).max(0.0);
            returned += delay[w * points + k];
            ending += delay[w * points + k] + m * ends;
        }
    }
    SlowRuns {
        returned_cycles: returned.max(0.0),
        ending_cycles: ending.max(0.0),
    }
}

/// The odds of the next step's level given this step's, over the present levels (row-major,
/// `present.len()` squared): the counts of consecutive levels of `crossing::level_pairs` (with
/// two levels and the first and last levels known, the sequence's exact counts), each row
/// over its sum; a level no step follows (the last step's only) has no row: the rounds before
/// the last do not reach it. None when the counts are all 0.
fn level_chain(precision: &PrecisionProfile, present: &[usize], t: f64) -> Option<Vec<f64>> {
    let (pair, out) = level_pairs(precision, t)?;
    let np = present.len();
    let mut chain = vec![0.0; np * np];
    for (i, &a) in present.iter().enumerate() {
        // Below a millionth of a step the counts are rounding.
        if out[a] > 1e-6 {
            for (k, &b) in present.iter().enumerate() {
                chain[i * np + k] = pair[a][b] / out[a];
            }
        }
    }
    Some(chain)
}
