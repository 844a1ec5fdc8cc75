//! A core that holds two or more of a segment's layers (multithreading): what the jobs the
//! wavefront puts on its units really hold where the rounds are not steady ones. Job (l, s) is
//! layer l's step s: In(s), rho, Rec(s) in a sequential plan; In(0), rho, Rec(0), rho, In(1) at
//! step 0 of an overlapped one and Rec(s), rho, In(s+1) after it, the next step's input product
//! issued early, but Rec(T-1) alone at its last step, which has no In(T) to issue. The units
//! reconfigure (rho) only where the product kind changes. The steady rounds count every
//! layer's busy cycles b_l = in + rec + 2 rho, less the reconfigurations alternating plans
//! save, plus the wait for an h made in the round; here are those and the jobs ahead of a
//! layer's first job, and in [`rounds`] the rounds after the last layer's step 0: the saving of
//! the rounds that hold a layer's last job, and the last round's wait for the last h of the
//! layer before (docs/MODEL.md section 4, "A shared core's reconfigurations" and "A shared
//! core's last jobs").

mod rounds;

pub(crate) use rounds::{last_rounds, units_rounds, Rounds};

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

#[cfg(test)]
mod tests {
    use super::*;

    /// sharp.toml's 8-cell layers: in = rec = 16, rho = 4, a tail of 22.
    pub(super) fn eight_cells(overlapped: bool) -> CoreLayer {
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
}
