//! The rounds of a shared core after its last layer's step 0 (multithreading): steady ones at
//! its units' pace, and its last n rounds job by job, where its layers run their last jobs and
//! finish one after another: what the round of a layer's last job saves, the rounds after it
//! lack, and the waits for a last h (docs/MODEL.md section 4, "A shared core's last jobs").
//! They pace the core's end of the segment and the arrival of its h at the next core ("Two
//! shared cores in a row").

use super::{steady_wait, CoreLayer};

/// When the h of each step of a core's last layer comes, past that of its step 0: the
/// core's rounds, steady ones at `busy` (its units' pace) and its [`last_rounds`] job by job,
/// each no shorter than `pace` (what else paces it: its layers' own steps and streams, the
/// stages before it). The core after it receives its inputs at that pace (docs/MODEL.md
/// section 4, "Two shared cores in a row").
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rounds {
    pub busy: f64,
    pub pace: f64,
    /// How many steady rounds come before the last ones.
    pub steady: usize,
    /// What the first of them takes less than `busy` ([`first_round_saving`]).
    pub first_saving: f64,
    pub last: Vec<f64>,
}

impl Rounds {
    /// The rounds of a core of `layers` (in order) after its last layer's step 0, in a run of
    /// `steps`: at its units' pace `busy` and its own last round at least `floor` (the last
    /// layer's own step) where it holds two or more layers, each at least `pace`.
    pub(crate) fn of(
        layers: &[CoreLayer],
        busy: f64,
        floor: f64,
        pace: f64,
        rho: f64,
        steps: usize,
    ) -> Self {
        let last = if layers.len() >= 2 {
            last_rounds(layers, busy, floor, rho, steps)
        } else {
            Vec::new()
        };
        let steady = steps.saturating_sub(1) - last.len();
        let first_saving = if steady > 0 {
            first_round_saving(layers, busy, floor, rho)
        } else {
            0.0
        };
        Self {
            busy,
            pace,
            steady,
            first_saving,
            last,
        }
    }

    /// From the h of step `s` to that of the last step, at the units' pace alone.
    pub(crate) fn after(&self, s: usize) -> f64 {
        let saving = if s == 0 { self.first_saving } else { 0.0 };
        let steady = self.steady.saturating_sub(s) as f64 * self.busy - saving;
        let from = s.saturating_sub(self.steady).min(self.last.len());
        steady + self.last[from..].iter().sum::<f64>()
    }

    /// From the h of step 0 to that of step `s`.
    pub(crate) fn until(&self, s: usize) -> f64 {
        let saving = if s > 0 { self.first_saving } else { 0.0 };
        let steady = s.min(self.steady) as f64 * self.busy - saving;
        let last: f64 = self.last[..s.saturating_sub(self.steady).min(self.last.len())]
            .iter()
            .sum();
        (steady + last).max(s as f64 * self.pace)
    }
}

/// What the round that holds layer `i`'s last job (of a core's `layers` in order, `i` not the
/// last) saves on the units against a steady round: an overlapped layer's last job, Rec(T-1),
/// has no In(T) and no reconfiguration into it, and the next job (the next layer's, a step
/// behind) then starts with the kind the units have: a recurrent product (overlapped) needs no
/// reconfiguration, an input product (sequential) one where the kind carried over before. So
/// in + 2 rho or in; 0 for a sequential layer, whose last job is a steady one.
fn last_job_saving(layers: &[CoreLayer], i: usize, rho: f64) -> f64 {
    if !layers[i].overlapped {
        return 0.0;
    }
    let next = if layers[i + 1].overlapped {
        2.0 * rho
    } else {
        0.0
    };
    layers[i].input_cycles + next
}

/// How long the next layer's In(T-1) waits for the h of layer `i`'s last job: the units run
/// the next layer's Rec(T-2) right after that job's Rec(T-1) (no reconfiguration between
/// them, both overlapped), then a reconfiguration, and the h comes post cycles after Rec(T-1).
fn last_input_wait(layers: &[CoreLayer], i: usize, rho: f64) -> f64 {
    let (l, next) = (&layers[i], &layers[i + 1]);
    if !(l.overlapped && next.overlapped) {
        return 0.0;
    }
    (l.post_cycles - next.recurrent_cycles - rho).max(0.0)
}

/// The last round's wait for the last h of the layer before: when the core's last layer is
/// overlapped, its In(T-1), issued right after its Rec(T-2), waits for the h of the layer
/// before's last job, a recurrent product the units ran just before Rec(T-2): from the end of
/// Rec(T-2)'s h (the round's start) that is post of the layer before + in + rho (into the last
/// Rec), against the last layer's own step. 0 when it does not apply.
fn last_input_floor(layers: &[CoreLayer], rho: f64, steps: usize) -> f64 {
    match layers {
        [.., before, last] if last.overlapped && steps >= 3 => {
            before.post_cycles + last.input_cycles + rho
        }
        _ => 0.0,
    }
}

/// The T-1 rounds of a core's units after its last layer's step 0 (`layers` its n layers in
/// the segment in order, `busy` what a steady round takes: the sum of their busy cycles and
/// its [`steady_wait`], less what [`carried`](super::carried) saves), against T-1 steady
/// rounds: layer k_i's last job falls in round T-1-(n-i) (the earlier ones are in the fill,
/// [`ahead`](super::ahead)), which it shortens ([`last_job_saving`]), and the rounds after it
/// lack the layer: the last n-1 rounds hold fewer layers, the last one the last layer alone.
/// A round that lacks layers takes at least `floor` (the last layer's own step, the stages
/// after; the last round also its wait for the layer before's last h) or `busy`, whichever is
/// less: the drain of docs/MODEL.md section 4, which took off the last round alone. The
/// rounds from the first layer's last job on hold the last-job waits only, not the steady
/// wait: what the simulator shows for two layers on a core (three or more: docs/MODEL.md
/// section 4, item 5). [`Rounds::after`] step 0 of a core of two or more layers.
pub(crate) fn units_rounds(
    layers: &[CoreLayer],
    busy: f64,
    floor: f64,
    rho: f64,
    steps: usize,
) -> f64 {
    Rounds::of(layers, busy, floor, 0.0, rho, steps).after(0)
}

/// What the first round after the last layer's step 0 (a steady one) takes less than `busy`
/// on a core of two layers: its steady wait (the last layer's early In(1) waiting for the h of
/// the first layer's Rec(1)) fell in the fill, in the last layer's step-0 job, so the round
/// takes its units' work or its last layer's own step (`floor`), whichever is longer; the
/// round of the first layer's last job takes the wait instead (docs/MODEL.md section 4, "A
/// shared core's last jobs", item 7). 0 without a steady wait.
fn first_round_saving(layers: &[CoreLayer], busy: f64, floor: f64, rho: f64) -> f64 {
    if layers.len() != 2 {
        return 0.0;
    }
    busy - (busy - steady_wait(layers, rho)).max(floor.min(busy))
}

/// The rounds of [`units_rounds`] that are not steady ones, the last min(n, T-1), each as long
/// as it is, in time order (the last round last).
pub(crate) fn last_rounds(
    layers: &[CoreLayer],
    busy: f64,
    floor: f64,
    rho: f64,
    steps: usize,
) -> Vec<f64> {
    let n = layers.len();
    let rounds = steps.saturating_sub(1);
    let special = rounds.min(n);
    let mut out = Vec::with_capacity(special);
    // q rounds from the end, layers k_{n-q}.. (index n-1-q on) hold a job there, the first of
    // them its last (q = n-1: every layer, the first one's last job).
    for q in 0..special {
        let first = n - 1 - q;
        let present: f64 = layers[first..].iter().map(|l| l.busy_cycles).sum();
        let (saving, wait) = if first + 1 < n {
            (
                last_job_saving(layers, first, rho),
                last_input_wait(layers, first, rho),
            )
        } else {
            (0.0, 0.0)
        };
        // The next layer's wait for this last h delays the last layer's Rec of this round,
        // unless the next layer is the last one: then it is the last round's (`least`).
        let wait = if first + 2 < n { wait } else { 0.0 };
        let round = busy - (busy - present).max(0.0) - saving + wait;
        out.push(if first > 0 {
            let least = if q == 0 {
                floor.max(last_input_floor(layers, rho, steps))
            } else {
                floor
            };
            round.max(least.min(busy))
        } else if n == 2 && rounds > n {
            // After steady rounds, the round of the first layer's last job keeps the steady
            // wait: the last layer's In(T-1) waits for that job's h (docs/MODEL.md section 4,
            // "A shared core's last jobs", item 7).
            round + steady_wait(layers, rho)
        } else {
            round
        });
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::shared::tests::eight_cells;

    #[test]
    fn the_rounds_lose_a_last_jobs_input_product_and_the_finished_layers() {
        let (o, s) = (eight_cells(true), eight_cells(false));
        // Two overlapped layers (busy 80 a round), 10 steps: round 8 holds the first layer's
        // last job (-16 - 8), round 9 the second layer alone, at least its own step (40) and
        // the wait for the first layer's last h, 22 + 16 + 4.
        assert_eq!(
            units_rounds(&[o, o], 80.0, 40.0, 4.0, 10),
            8.0 * 80.0 - 24.0 + 42.0
        );
        // The next layer sequential: its first product, an input one, needs the reconfiguration
        // the steady round carried over; no wait for the last h (it waits for its own anyway).
        assert_eq!(
            units_rounds(&[o, s], 76.0, 40.0, 4.0, 10),
            8.0 * 76.0 - 16.0 + 40.0
        );
        // A sequential layer's last job is a steady one.
        assert_eq!(
            units_rounds(&[s, s], 80.0, 40.0, 4.0, 10),
            8.0 * 80.0 + 40.0
        );
        // Two steps: the last job is in the fill, the one round is the last layer's.
        assert_eq!(units_rounds(&[o, o], 80.0, 40.0, 4.0, 2), 40.0);
        // Three layers: the round before the last lacks the first layer and holds the second's
        // last job; the one before that the first's last job, and the second layer's In(9)
        // waits 2 cycles for its h (22 against the second's Rec(8) and rho, 20).
        assert_eq!(
            units_rounds(&[o, o, o], 120.0, 40.0, 4.0, 10),
            6.0 * 120.0 + (120.0 - 24.0 + 2.0) + (80.0 - 24.0) + 42.0
        );
        // Three steps: the first layer's last job is in the fill.
        assert_eq!(
            units_rounds(&[o, o, o], 120.0, 40.0, 4.0, 3),
            (80.0 - 24.0) + 42.0
        );
    }
}
