//! Where a pipeline's longest path crosses between stages under dynamic precision: the
//! expected gain of crossing at a slow step rather than at the edge step, for the stage the
//! path walks (docs/MODEL.md section 4, "Dynamic precision").

use super::layer::LayerCost;
use super::precision::PrecisionProfile;
use super::timing::MAX_PRECISION_LEVELS;
use std::cmp::Ordering;

/// The expected extra length of a pipeline's longest path from choosing where it crosses a run
/// of stages (docs/MODEL.md section 4, "Dynamic precision"). `column[k]`: the crossed stages'
/// latencies at a step of level k (input to h; the cost of passing them there); `base[k]`:
/// the same at the edge step, which the path passes at baseline (step 0 into the walked stage,
/// step T-1 out of it), with the level mix `edge` (the profile's first or last step
/// fractions; the step fractions when unknown); `deficit[k]`: what a step at level k costs the
/// path when it walks the stage it leaves from instead of the walked stage. The path may
/// instead walk on until the first step at the largest column's level M: D steps later, D = 0
/// with probability edge_M, else geometric with the per-step odds q of entering level M (the
/// runs of level M over the other levels' steps), and it does so while the gain Delta =
/// column_M - the edge step's mean other base exceeds D times the mean other deficit.
/// `absorbed[k]`: what the walked stage absorbs of a late input at a step D >= 2 after a step of
/// level k (its stream slack there), `at_one`: what D = 1 adds (the column's first layer's
/// wait for its stream 1, less the walked stage's own). `lead[d][k]`: what the column's shared
/// cores add at a crossing step of level k through the layers that run d + 1 steps ahead of a
/// column layer on their core (their expected excess there over their mean busy cycles, at
/// least 0; docs/MODEL.md section 4, "A shared core's lead"), for D <= T-2-d. O(levels).
#[allow(clippy::too_many_arguments)]
pub(crate) fn crossing_gain(
    column: &[f64],
    base: &[f64],
    deficit: &[f64],
    (absorbed, at_one): (&[f64], f64),
    lead: &[[f64; MAX_PRECISION_LEVELS]],
    phi: &[f64],
    edge: &[f64],
    t: f64,
    switch_rate: f64,
) -> f64 {
    let Some(m) = (0..phi.len())
        .filter(|&k| phi[k] > 0.0)
        .max_by(|&a, &b| column[a].total_cmp(&column[b]))
    else {
        return 0.0;
    };
    let pm = phi[m];
    let at_edge: f64 = edge.iter().zip(base).map(|(f, c)| f * c).sum();
    let em = edge[m];
    if pm >= 1.0 - 1e-12 || em >= 1.0 - 1e-12 {
        return 0.0;
    }
    let others = 1.0 - pm;
    let eothers = 1.0 - em;
    let delta = column[m] - (at_edge - em * base[m]) / eothers;
    let ahead: f64 = lead.iter().map(|l| l[m]).sum();
    if delta + ahead <= 0.0 {
        return 0.0;
    }
    let cost = (0..phi.len())
        .filter(|&k| k != m)
        .map(|k| phi[k] * deficit[k])
        .sum::<f64>()
        / others;
    let sumsq: f64 = phi.iter().map(|f| f * f).sum();
    let switches = switch_rate * (t - 1.0);
    let runs = if 1.0 - sumsq > 1e-12 {
        (switches * pm * others / (1.0 - sumsq) + pm).clamp(0.0, t * pm)
    } else {
        pm
    };
    let q = (runs / (t * others)).clamp(0.0, 1.0);
    let mut n = t - 1.0;
    if cost > 0.0 {
        n = n.min(((delta + ahead) / cost).floor());
    }
    if q <= 0.0 || n < 1.0 {
        return 0.0;
    }
    // sum_{D=1}^{n} q (1-q)^(D-1) (Delta - D cost).
    let survive = (1.0 - q).powf(n);
    let expected = delta * (1.0 - survive) - cost.max(0.0) * (1.0 - survive * (1.0 + n * q)) / q;
    // The lead of the column's shared cores: at a crossing step D the layers ahead of a
    // column layer on its core run step D + delta (none when past T-1).
    let expected = expected
        + (lead.iter().enumerate())
            .map(|(d, l)| l[m] * (1.0 - (1.0 - q).powf(n.min(t - 2.0 - d as f64).max(0.0))))
            .sum::<f64>();
    let slack = (0..phi.len())
        .filter(|&k| k != m)
        .map(|k| phi[k] * absorbed[k])
        .sum::<f64>()
        / others;
    let later = (1.0 - q) * (1.0 - (1.0 - q).powf(n - 1.0));
    (eothers * (expected + q * at_one - later * slack)).max(0.0)
}

/// Per stage of a segment and per precision level: what [`stage_crossing`] needs of the
/// stages' layers (docs/MODEL.md section 4, "Dynamic precision: where the path crosses").
pub(crate) struct StageLevels<'a> {
    /// The slowest own step of the stage's layers (stream floor included).
    pub step: &'a [[f64; MAX_PRECISION_LEVELS]],
    /// The sum of their busy cycles.
    pub busy: &'a [[f64; MAX_PRECISION_LEVELS]],
    /// The sums of their layers' step-0 latencies (input to h, no stream wait), and of a later
    /// step's (its input product at the widest level when dynamic overlapped): what the path
    /// pays to pass the stage at step 0, and at any later step of the level.
    pub first: &'a [[f64; MAX_PRECISION_LEVELS]],
    pub last: &'a [[f64; MAX_PRECISION_LEVELS]],
    /// The slowest own step without the stream floor.
    pub compute: &'a [[f64; MAX_PRECISION_LEVELS]],
    /// The sum of their streams per step, and per level the least stream slack of their
    /// layers (`LayerCost::level_slack`).
    pub stream: &'a [f64],
    pub slack: &'a [[f64; MAX_PRECISION_LEVELS]],
    /// Per stage, its layers' busy cycles per level, in the segment's order.
    pub layers: &'a [Vec<[f64; MAX_PRECISION_LEVELS]>],
}

/// The expected gains of the path that walks stage `p` (period `period`) for all T steps and
/// passes the stages `first..p` once on the way in and `p+1..=last` on the way out, from
/// choosing the steps it crosses at (slow ones) over step 0 and step T-1: the best run of
/// stages on each side ([`crossing_gain`]), (into p, out of p). Into a stage whose streams
/// outlast its steps a late input is absorbed by the wait of its step for its stream (its
/// double buffer): at step D >= 2 the slack after a step of another level than M, at step 1
/// the wait for stream 1, which follows the load (`wait`: per stage on p's path, which also
/// delays the column's first layer at step 1). docs/MODEL.md section 4, "The crossing's
/// stream waits". On a column stage that holds several layers, the round that runs a layer's
/// crossing step also runs the layers before it on the core at the steps after it, which
/// follow the crossing's slow level more often than the mean (section 4, "A shared core's
/// lead").
pub(crate) fn stage_crossing(
    s: &StageLevels,
    wait: &[f64],
    p: usize,
    period: f64,
    (first, last): (usize, usize),
    precision: &PrecisionProfile,
    t: f64,
) -> (f64, f64) {
    let phi = &precision.step_fraction;
    let levels = phi.len().min(MAX_PRECISION_LEVELS);
    let level_period = |j: usize, k: usize| s.step[j][k].max(s.busy[j][k]).max(s.stream[j]);
    // The pacer's level periods as its pace sees them: a stream floor counts only as far as
    // the pace itself is stream-bound.
    let mut pacer = [0.0; MAX_PRECISION_LEVELS];
    let (mut floored, mut bare) = (0.0, 0.0);
    for k in 0..levels {
        pacer[k] = s.compute[p][k].max(s.busy[p][k]);
        floored += phi[k] * level_period(p, k);
        bare += phi[k] * pacer[k];
    }
    let lambda = if floored - bare > 1e-12 {
        ((period - bare) / (floored - bare)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    for (k, pace) in pacer.iter_mut().enumerate().take(levels) {
        *pace += lambda * (level_period(p, k) - *pace);
    }
    let none = [0.0; MAX_PRECISION_LEVELS];
    // The steps after a crossing step of level M: per delta = 1, 2, ..., the odds of each
    // level delta steps later (the chain of consecutive levels of "A shared core's slow
    // rounds", `level_pairs`).
    let deepest = s.layers.iter().map(Vec::len).max().unwrap_or(0);
    let mut later = Vec::new();
    if deepest >= 2 {
        if let Some((pair, out)) = level_pairs(precision, t) {
            let mut odds = [[0.0; MAX_PRECISION_LEVELS]; MAX_PRECISION_LEVELS];
            for (a, row) in odds.iter_mut().enumerate().take(levels) {
                row[a] = 1.0;
            }
            for _ in 1..deepest {
                let mut next = [[0.0; MAX_PRECISION_LEVELS]; MAX_PRECISION_LEVELS];
                for a in 0..levels {
                    for c in (0..levels).filter(|&c| out[c] > 0.0) {
                        for b in 0..levels {
                            next[a][b] += odds[a][c] * pair[c][b] / out[c];
                        }
                    }
                }
                odds = next;
                later.push(odds);
            }
        }
    }
    let best = |range: &mut dyn Iterator<Item = usize>,
                at: &[[f64; MAX_PRECISION_LEVELS]],
                absorbed: &[f64],
                into: bool,
                edge: &[f64]| {
        let (mut column, mut gain) = ([0.0; MAX_PRECISION_LEVELS], 0.0f64);
        let mut base = [0.0; MAX_PRECISION_LEVELS];
        // Per delta: the busy cycles per level of the column's layers that run delta steps
        // ahead of a later layer of the column on their core (in the wavefront the round that
        // runs a core's i-th layer's step s runs its k-th layer's step s + i - k), and per level M
        // of the crossing step their expected excess over the mean there. A crossing step
        // whose next steps run faster than the mean is not taken at a loss: the path may
        // cross at a later slow step instead, which the expectation over the first does not
        // count (docs/MODEL.md section 4, "A shared core's lead").
        let mut ahead = vec![[0.0; MAX_PRECISION_LEVELS]; later.len()];
        let mut lead = vec![[0.0; MAX_PRECISION_LEVELS]; later.len()];
        for m in range {
            if into {
                let busy = &s.layers[m];
                for (d, sum) in ahead
                    .iter_mut()
                    .enumerate()
                    .take(busy.len().saturating_sub(1))
                {
                    for layer in &busy[..busy.len() - 1 - d] {
                        for k in 0..levels {
                            sum[k] += layer[k];
                        }
                    }
                }
                for (d, l) in lead.iter_mut().enumerate() {
                    let mean: f64 = (0..levels).map(|a| phi[a] * ahead[d][a]).sum();
                    for (k, lk) in l.iter_mut().enumerate().take(levels) {
                        let row = &later[d][k];
                        *lk = if row.iter().sum::<f64>() > 1e-12 {
                            ((0..levels).map(|a| row[a] * ahead[d][a]).sum::<f64>() - mean).max(0.0)
                        } else {
                            0.0
                        };
                    }
                }
            }
            let mut deficit = [0.0; MAX_PRECISION_LEVELS];
            for k in 0..levels {
                column[k] += s.last[m][k];
                base[k] += at[m][k];
                deficit[k] = pacer[k] - level_period(m, k);
            }
            gain = gain.max(crossing_gain(
                &column[..levels],
                &base[..levels],
                &deficit[..levels],
                (
                    &absorbed[..levels],
                    if into { wait[m] - wait[p] } else { 0.0 },
                ),
                &lead,
                &phi[..levels],
                &edge[..levels],
                t,
                precision.switch_rate,
            ));
        }
        gain
    };
    (
        best(
            &mut (first..p).rev(),
            s.first,
            &s.slack[p],
            true,
            precision.first_fractions(),
        ),
        best(
            &mut (p + 1..=last),
            s.last,
            &none,
            false,
            precision.last_fractions(),
        ),
    )
}

/// Per stage p of a segment (dynamic precision), the chain of the path that walks p for all T
/// steps and passes every other stage once, those before p at step 0 and those after it at
/// step T-1, each layer at that step's levels (docs/MODEL.md section 4, "The stage the path
/// walks"): the chain of `multithread/fill.rs` with each layer's first or last step's latency
/// in place of its edge and mean step outside p.
pub(crate) struct Walks {
    chain: Vec<f64>,
    /// The first-stream credit p's (lone) layers took.
    credit: Vec<f64>,
    /// From p's first layer on, the same chain without the waits for loads: a later input
    /// into p moves the chain's end only as far as it moves this one past it (a layer still
    /// loading absorbs the rest).
    free: Vec<f64>,
    /// Per walked stage p and stage j: how long j's (lone) layer's step 1 waits for its
    /// stream 1, which follows its load, after its step 0 on p's path.
    wait: Vec<Vec<f64>>,
}

impl Walks {
    /// Every chain at `start` (the segment's begin).
    pub(crate) fn starting(stages: usize, start: f64) -> Self {
        Walks {
            chain: vec![start; stages],
            credit: vec![0.0; stages],
            free: vec![f64::NEG_INFINITY; stages],
            wait: vec![vec![0.0; stages]; stages],
        }
    }

    /// A layer on stage `j` (`first`: the stage's first in the segment) joins every chain:
    /// after the busy cycles `ahead` of it on its core, no earlier than its `load_end`, then
    /// `own` (its edge and mean step) on the walked stage, less the first-stream credit where
    /// it is `alone` on its core, or its first or last step's latency elsewhere, then the hop
    /// it `passes` to the next core.
    pub(crate) fn pass(
        &mut self,
        j: usize,
        first: bool,
        (ahead, load_end): (f64, f64),
        cost: &LayerCost,
        (own, alone): (f64, bool),
        passes: f64,
    ) {
        for (p, x) in self.chain.iter_mut().enumerate() {
            let free = &mut self.free[p];
            if p == j && first {
                *free = *x;
            }
            *x = (*x + ahead).max(load_end);
            *free += ahead;
            if alone {
                self.wait[p][j] = (cost.first_stream_cycles - (*x - load_end)).max(0.0);
            }
            let (own, credit) = match j.cmp(&p) {
                Ordering::Less => (cost.first_latency, 0.0),
                Ordering::Equal if alone => (own, cost.first_stream_cycles.min(*x - load_end)),
                Ordering::Equal => (own, 0.0),
                Ordering::Greater => (cost.last_latency, 0.0),
            };
            self.credit[p] += credit;
            *x += own - credit + passes;
            *free += own - credit + passes;
        }
    }

    /// On p's path, per stage: how long its (lone) layer's step 1 waits for its stream 1.
    pub(crate) fn waits(&self, p: usize) -> &[f64] {
        &self.wait[p]
    }

    /// The chain's end when the path walks p and enters it `up` later (the crossing gain),
    /// with p's first-stream credit given back where p does not pace the segment.
    pub(crate) fn path(&self, p: usize, up: f64, unpaced: bool) -> f64 {
        let end = self.chain[p].max(self.free[p] + up);
        if unpaced {
            end + self.credit[p]
        } else {
            end
        }
    }
}

/// The expected cycles by which a shared core's units outlast its streams, over the rounds
/// before its last (docs/MODEL.md section 4, "A shared core's slow rounds"). In a round of the
/// wavefront the core's layers (`busy[i]`: the i-th layer's busy cycles per level) work on
/// consecutive steps, its first layer on step s, the next on s-1, ..., so the round's units
/// run their busy cycles at the levels of a window of consecutive steps, and a round whose
/// units outlast the core's streams (`stream`) delays the stream path by the difference. The
/// windows' odds follow from the profile as a chain over consecutive steps: the pairs (a, b)
/// of consecutive levels from the fractions, the switch rate and the first and last steps
/// (with two levels the exact counts), the next level given the previous one. The last round
/// (the newest step at the last step's levels) is left out: the stream path ends with the
/// last steps. `carried`: the reconfigurations a round saves where the core's jobs alternate
/// plans (section 4, "A shared core's reconfigurations"), off every window. 0 when the
/// windows are too many to enumerate (levels^layers > 4096).
pub(crate) fn slow_rounds(
    busy: &[[f64; MAX_PRECISION_LEVELS]],
    carried: f64,
    stream: f64,
    precision: &PrecisionProfile,
    t: f64,
) -> f64 {
    let phi = &precision.step_fraction;
    let levels = phi.len().min(MAX_PRECISION_LEVELS);
    let present: Vec<usize> = (0..levels).filter(|&k| phi[k] > 0.0).collect();
    let n = busy.len();
    if n == 0 || t < 2.0 || present.is_empty() || (present.len() as f64).powi(n as i32) > 4096.0 {
        return 0.0;
    }
    let last = precision.last_fractions();
    let Some((pair, out)) = level_pairs(precision, t) else {
        return 0.0;
    };
    let total: f64 = present.iter().map(|&a| out[a]).sum();
    // Windows of n consecutive steps, oldest first (the core's last layer on the oldest):
    // the expected excess of a round, and per newest level its odds and excess.
    let (mut excess, mut newest, mut newest_excess) = (
        0.0,
        [0.0; MAX_PRECISION_LEVELS],
        [0.0; MAX_PRECISION_LEVELS],
    );
    let mut stack: Vec<(usize, usize, f64, f64)> = (present.iter())
        .map(|&a| (1, a, out[a] / total, busy[n - 1][a] - carried))
        .collect();
    while let Some((depth, a, odds, sum)) = stack.pop() {
        if odds <= 0.0 {
            continue;
        }
        if depth == n {
            let over = (sum - stream).max(0.0);
            excess += odds * over;
            newest[a] += odds;
            newest_excess[a] += odds * over;
            continue;
        }
        if out[a] <= 0.0 {
            continue;
        }
        for &b in &present {
            let next = odds * pair[a][b] / out[a];
            stack.push((depth + 1, b, next, sum + busy[n - 1 - depth][b]));
        }
    }
    let last_round: f64 = (present.iter())
        .filter(|&&a| newest[a] > 0.0)
        .map(|&a| last[a] * newest_excess[a] / newest[a])
        .sum();
    ((t - 1.0) * excess - last_round).max(0.0)
}

/// The expected counts of consecutive steps (s-1, s) at levels (a, b), s = 1..T-1, and per
/// level a their sum over b (docs/MODEL.md section 4, "A shared core's slow rounds"): the
/// switches out of and into each level (its share of the switches, less or plus half the
/// difference its being the first or the last step makes), spread over the other levels by
/// their entries; the rest of a level's steps but the last stay at it. With two levels and
/// the first and last levels known these are the sequence's exact counts. None when the
/// counts are all 0.
#[allow(clippy::type_complexity)]
pub(crate) fn level_pairs(
    precision: &PrecisionProfile,
    t: f64,
) -> Option<(
    [[f64; MAX_PRECISION_LEVELS]; MAX_PRECISION_LEVELS],
    [f64; MAX_PRECISION_LEVELS],
)> {
    let phi = &precision.step_fraction;
    let levels = phi.len().min(MAX_PRECISION_LEVELS);
    let present: Vec<usize> = (0..levels).filter(|&k| phi[k] > 0.0).collect();
    let (first, last) = (precision.first_fractions(), precision.last_fractions());
    let sumsq: f64 = phi.iter().map(|f| f * f).sum();
    let switches = precision.switch_rate * (t - 1.0);
    // Per level, the switches out of it and into it: its share of the switches (as for the
    // runs of section 3), less or plus half the difference its being the first or the last
    // step makes (a level that starts the sequence is left once more than it is entered).
    let (mut exits, mut entries) = ([0.0; MAX_PRECISION_LEVELS], [0.0; MAX_PRECISION_LEVELS]);
    for &a in &present {
        let share = if 1.0 - sumsq > 1e-12 {
            phi[a] * (1.0 - phi[a]) / (1.0 - sumsq)
        } else {
            0.0
        };
        exits[a] = (share * switches + (first[a] - last[a]) / 2.0).max(0.0);
        entries[a] = (share * switches + (last[a] - first[a]) / 2.0).max(0.0);
    }
    // pair[a][b]: the expected count of steps s-1 at level a, s at level b (s = 1..T-1).
    let mut pair = [[0.0; MAX_PRECISION_LEVELS]; MAX_PRECISION_LEVELS];
    let mut out = [0.0; MAX_PRECISION_LEVELS];
    for &a in &present {
        let others: f64 = (present.iter().filter(|&&c| c != a))
            .map(|&c| entries[c])
            .sum();
        for &b in present.iter().filter(|&&b| b != a) {
            if others > 1e-12 {
                pair[a][b] = exits[a] * entries[b] / others;
                out[a] += pair[a][b];
            }
        }
        pair[a][a] = (t * phi[a] - last[a] - out[a]).max(0.0);
        out[a] += pair[a][a];
    }
    let total: f64 = present.iter().map(|&a| out[a]).sum();
    (total > 0.0).then_some((pair, out))
}
