//! A core that holds two or more of a segment's layers (multithreading): what the jobs the
//! wavefront puts on its units really hold where the rounds are not steady ones. Job (l, s) is
//! layer l's step s: In(s), rho, Rec(s) in a sequential plan; In(0), rho, Rec(0), rho, In(1) at
//! step 0 of an overlapped one and Rec(s), rho, In(s+1) after it, the next step's input product
//! issued early, but Rec(T-1) alone at its last step, which has no In(T) to issue. The units
//! reconfigure (rho) only where the product kind changes. The steady rounds count every
//! layer's busy cycles b_l = in + rec + 2 rho, less the reconfigurations alternating plans
//! save, plus the wait for an h made in the round; here are those, the jobs ahead of a layer's
//! first job, the saving of the rounds that hold a layer's last job, and the last round's wait
//! for the last h of the layer before (docs/MODEL.md section 4, "A shared core's
//! reconfigurations" and "A shared core's last jobs").

/// What the units of a shared core need of one of its layers (mean cycles, as `LayerCost`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CoreLayer {
    /// One input product, as the plan issues it (at the widest level when a dynamic overlapped
    /// plan issues it early).
    pub input_cycles: f64,
    /// One recurrent product, with the precision switches at their mean rate (a switch runs
    /// on the units right before the step's first product at its level: Rec(s) in an
    /// overlapped plan, In(s) in a sequential one, in the same job either way).
    pub recurrent_cycles: f64,
    /// The units' busy cycles of a steady step, b_l = in + rec + 2 rho (+ switches).
    pub busy_cycles: f64,
    /// From the end of the recurrent product to h: the tail (and exchange).
    pub post_cycles: f64,
    /// How far past its h the chain puts the end of the layer's step 0: the negative edge the
    /// fill of a shared core takes as 0 (docs/MODEL.md section 4, item 6).
    pub clamp_cycles: f64,
    pub overlapped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Input,
    Recurrent,
}

/// The reconfiguration from a product of kind `from` into one of kind `to`.
fn reconfig(from: Kind, to: Kind, rho: f64) -> f64 {
    if from == to {
        0.0
    } else {
        rho
    }
}

/// The reconfigurations a steady round of the core's jobs (`layers` in order) saves against
/// their busy cycles, which count 2 rho each: the units reconfigure only where the product
/// kind changes, and a sequential job starts with its input product and ends with its
/// recurrent one, an overlapped job (after step 0) the other way round (Rec(s), then In(s+1)
/// issued early). Where consecutive jobs alternate plans the kind carries over, one rho each;
/// the round is a cycle (the last layer's job is followed by the first's next one).
/// docs/MODEL.md section 4, "A shared core's reconfigurations".
pub(crate) fn carried(layers: &[CoreLayer], rho: f64) -> f64 {
    let n = layers.len();
    if n < 2 {
        return 0.0;
    }
    let changes = (0..n)
        .filter(|&i| layers[i].overlapped != layers[(i + 1) % n].overlapped)
        .count();
    changes as f64 * rho
}

/// The cycles from the chain's end of the layer below's step 0 (the core's previous layer,
/// `before` its layers so far in order) until the units can start this layer's first
/// product, In(0), in a run of `steps` >= 2. In wavefront order the core runs, after the
/// layer below's step 0 job, one job of each layer before (layer k_i's step h - i, for the
/// h-th layer, where that step exists), the layer below's step 1 last, which waits for the h
/// of its step 0 (the chain's point); the others are ready, but for an overlapped job's
/// In(T-1), which waits for the h of the layer below's last job when that ran just before.
/// The units finish the layer below's step 0 job past the chain's point by its overlapped
/// In(1) less its tail (a sequential one's tail runs past its products), and each job is as
/// it is: Rec(T-1) alone at a layer's last step, a reconfiguration only where the product
/// kind changes, In(0) last.
///
/// `arrival(s)` is when the input of step s reaches the core's first layer (`before[0]`) from
/// the core before it, past the chain's point (`NEG_INFINITY` where nothing arrives: a core
/// that starts its segment): that layer's input products wait for it. The chain reaches its
/// layers through their step 0, but their jobs ahead of a later layer's first need the later
/// steps' inputs, which come at the previous core's pace.
pub(crate) fn ahead(
    before: &[CoreLayer],
    rho: f64,
    steps: usize,
    arrival: &dyn Fn(usize) -> f64,
) -> f64 {
    ahead_of(before, rho, steps, arrival, Kind::Input)
}

/// As [`ahead`], until the units can start the layer's job at a later step (for a path that
/// crosses into the core then): a recurrent product when the layer is `overlapped` (its input
/// product was issued in its job before), else its input product.
pub(crate) fn ahead_later(
    before: &[CoreLayer],
    rho: f64,
    steps: usize,
    arrival: &dyn Fn(usize) -> f64,
    overlapped: bool,
) -> f64 {
    let first = if overlapped {
        Kind::Recurrent
    } else {
        Kind::Input
    };
    ahead_of(before, rho, steps, arrival, first)
}

fn ahead_of(
    before: &[CoreLayer],
    rho: f64,
    steps: usize,
    arrival: &dyn Fn(usize) -> f64,
    next: Kind,
) -> f64 {
    let Some((below, others)) = before.split_last() else {
        return 0.0;
    };
    let (mut kind, free) = if below.overlapped {
        (Kind::Input, rho + below.input_cycles - below.post_cycles)
    } else {
        (Kind::Recurrent, -below.post_cycles)
    };
    let mut now = free - below.clamp_cycles;
    // The layer below is the core's first: its In(1), issued early, waits for its input.
    if below.overlapped && others.is_empty() && steps >= 2 {
        now = now.max(arrival(1) + below.input_cycles);
    }
    // The h of the job just run when it was a layer's last (an overlapped Rec(T-1)).
    let mut last_h = f64::NEG_INFINITY;
    let jobs = (others.iter().enumerate())
        .map(|(i, l)| (l, before.len() - i))
        .chain(std::iter::once((below, 1)));
    for (l, step) in jobs.filter(|&(_, step)| step < steps) {
        let ready = if step == 1 { 0.0 } else { f64::NEG_INFINITY };
        // The core's first layer waits for its inputs from the core before.
        let first_layer = std::ptr::eq(l, &before[0]);
        let arrives = |s: usize| {
            if first_layer {
                arrival(s)
            } else {
                f64::NEG_INFINITY
            }
        };
        let rec = l.recurrent_cycles;
        // A sequential job starts with its input product, an overlapped one with Rec(s).
        let first = if l.overlapped {
            Kind::Recurrent
        } else {
            Kind::Input
        };
        let mut start = (now + reconfig(kind, first, rho)).max(ready);
        if !l.overlapped {
            start = start.max(arrives(step));
        } else if step + 1 == steps && step >= 2 {
            // Rec(T-1) alone follows its In(T-1), issued early in an earlier job, which
            // waited for its input.
            start = start.max(arrives(step) + l.input_cycles + rho);
        }
        if !l.overlapped {
            (now, kind, last_h) = (
                start + l.input_cycles + rho + rec,
                Kind::Recurrent,
                f64::NEG_INFINITY,
            );
        } else if step + 1 < steps {
            // Rec(s), then In(s+1), which needs the h of the layer below's step s+1: at
            // s+1 = T-1 the job just run, that layer's last.
            let wait = if step + 2 == steps {
                last_h
            } else {
                f64::NEG_INFINITY
            };
            let input = (start + rec + rho).max(wait).max(arrives(step + 1));
            (now, kind, last_h) = (input + l.input_cycles, Kind::Input, f64::NEG_INFINITY);
        } else {
            (now, kind, last_h) = (start + rec, Kind::Recurrent, start + rec + l.post_cycles);
        }
    }
    (now + reconfig(kind, next, rho)).max(0.0)
}

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

/// What a steady round waits on the units for an h produced in it: in wavefront order the
/// core runs layer k's job for step s (Rec(s), then In(s+1) when overlapped) and then the next
/// layer's job for step s-1, whose early input product In(s) (overlapped) needs the h of that
/// Rec(s). Between the end of Rec(s) and In(s) the units run k's In(s+1) and the next layer's
/// Rec(s-1) with the reconfigurations (3 rho + in_k + rec_next when k is overlapped, rho +
/// rec_next when sequential): when k's tail is longer, In(s) waits for the rest, every round,
/// and the round is that much longer than the units' busy cycles (the longest such wait over
/// the core's consecutive layers; 0 for a sequential next layer, whose In(s-1) needs the h of
/// the round before). docs/MODEL.md section 4, "A shared core's last jobs", item 5.
pub(crate) fn steady_wait(layers: &[CoreLayer], rho: f64) -> f64 {
    (layers.windows(2))
        .map(|pair| {
            let (l, next) = (&pair[0], &pair[1]);
            if !next.overlapped {
                return 0.0;
            }
            let between = if l.overlapped {
                3.0 * rho + l.input_cycles
            } else {
                rho
            };
            (l.post_cycles - between - next.recurrent_cycles).max(0.0)
        })
        .fold(0.0, f64::max)
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
/// its [`steady_wait`], less what [`carried`] saves), against
/// T-1 steady rounds: layer k_i's last job falls in round T-1-(n-i) (the earlier ones are in
/// the fill, [`ahead`]), which it shortens ([`last_job_saving`]), and the rounds after it lack
/// the layer: the last n-1 rounds hold fewer layers, the last one the last layer alone. A round
/// that lacks layers takes at least `floor` (the last layer's own step, the stages after; the
/// last round also its wait for the layer before's last h) or `busy`, whichever is less: the
/// drain of docs/MODEL.md section 4, which took off the last round alone. The rounds from the
/// first layer's last job on hold the last-job waits only, not the steady wait: what the
/// simulator shows for two layers on a core (three or more: docs/MODEL.md section 4, item 5).
pub(crate) fn units_rounds(
    layers: &[CoreLayer],
    busy: f64,
    floor: f64,
    rho: f64,
    steps: usize,
) -> f64 {
    let rounds = steps.saturating_sub(1);
    let last = last_rounds(layers, busy, floor, rho, steps);
    let steady = rounds - last.len();
    let saving = if steady > 0 {
        first_round_saving(layers, busy, floor, rho)
    } else {
        0.0
    };
    steady as f64 * busy - saving + last.iter().sum::<f64>()
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

    /// sharp.toml's 8-cell layers: in = rec = 16, rho = 4, a tail of 22.
    fn eight_cells(overlapped: bool) -> CoreLayer {
        CoreLayer {
            input_cycles: 16.0,
            recurrent_cycles: 16.0,
            busy_cycles: 40.0,
            post_cycles: 22.0,
            clamp_cycles: 0.0,
            overlapped,
        }
    }

    #[test]
    fn the_jobs_ahead_are_the_ones_that_exist() {
        let (o, s) = (eight_cells(true), eight_cells(false));
        let none = |_: usize| f64::NEG_INFINITY;
        // Overlapped layer below: its In(1) ends 2 cycles before its h, the reconfiguration
        // into Rec(1) 2 after it; then Rec(1), rho, In(2), and In(0) follows In(2) with no
        // reconfiguration.
        assert_eq!(ahead(&[o], 4.0, 3, &none), 2.0 + 16.0 + 4.0 + 16.0);
        // Two steps: its step 1 is its last job, Rec(1) alone, then rho into In(0).
        assert_eq!(ahead(&[o], 4.0, 2, &none), 2.0 + 16.0 + 4.0);
        // Sequential below: In(1) waits for h, then rho, Rec(1), rho into In(0): b.
        assert_eq!(ahead(&[s], 4.0, 2, &none), 40.0);
        // Three layers, two steps: the first layer has no step 2 to run ahead of the third.
        assert_eq!(ahead(&[o, o], 4.0, 2, &none), 2.0 + 16.0 + 4.0);
        // Three steps: the first's step 2 is its last job, Rec(2) alone, during the second's
        // tail: the second's In(1) ends 2 before its h, then rho and Rec(2) end at 18, its h
        // at 40; the second's Rec(1) follows (no reconfiguration) and ends at 34, and its
        // In(2) waits for that h.
        assert_eq!(ahead(&[o, o], 4.0, 3, &none), 40.0 + 16.0);
    }

    #[test]
    fn alternating_plans_carry_the_product_kind_over() {
        let (o, s) = (eight_cells(true), eight_cells(false));
        assert_eq!(carried(&[o], 4.0), 0.0);
        assert_eq!(carried(&[o, o, o], 4.0), 0.0);
        // Sequential then overlapped: Rec then Rec, and (the next round) In then In.
        assert_eq!(carried(&[s, o], 4.0), 8.0);
        assert_eq!(carried(&[o, o, s], 4.0), 8.0);
    }

    #[test]
    fn a_tail_longer_than_the_work_between_waits_every_round() {
        let (o, s) = (eight_cells(true), eight_cells(false));
        // With rho = 4 the units run In(s+1), Rec(s-1) and three reconfigurations (44) between
        // a layer's Rec(s) and the next layer's In(s): a tail of 22 is hidden.
        assert_eq!(steady_wait(&[o, o], 4.0), 0.0);
        let long = CoreLayer {
            post_cycles: 42.0,
            ..o
        };
        // A tail of 42 without reconfigurations: 42 - 16 - 16.
        assert_eq!(steady_wait(&[long, o], 0.0), 10.0);
        // A sequential layer first: only the next layer's Rec(s-1) and rho, 42 - 16 - 4.
        let long_s = CoreLayer {
            post_cycles: 42.0,
            ..s
        };
        assert_eq!(steady_wait(&[long_s, o], 4.0), 22.0);
        // A sequential next layer issues In(s-1), whose h came the round before.
        assert_eq!(steady_wait(&[long, s], 0.0), 0.0);
    }

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
