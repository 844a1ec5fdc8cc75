//! A layer's per-level figures on the segment's common level sequence (dynamic precision with
//! per-layer fractions). The paths of [`super::drain`] and `crossing.rs` take every layer of a
//! segment at the level of one common step sequence, the profile's `step_fraction`
//! (docs/MODEL.md section 4, "Dynamic precision: where the path crosses"); a layer whose own
//! fractions differ from those runs other levels at those steps, and at a level it never runs
//! its per-level figures are 0. Taken as they are, a layer that runs the slow level on one
//! step in fifteen counted it on half the rounds (+52% on a streamed 2-core point), and a
//! layer that never runs the fast level passed the fast steps for free. Here each of its
//! per-level figures is put on the common levels by the comonotone coupling of the two mixes:
//! the common level k's share of the steps, ordered from the lowest level up, is matched with
//! the layer's own levels in the same order, so a common step of level k runs the layer at
//! level a with the odds of their overlap. The layer's own mix is kept (the common mix over
//! the coupled figures is its own mean), and a layer whose fractions are the common ones is
//! left as it is (docs/MODEL.md section 4, "Per-layer fractions").

use crate::accel::layer::LayerCost;
use crate::accel::timing::MAX_PRECISION_LEVELS;

/// Per common level k, the odds of each of the layer's own levels a at its steps.
type Coupling = [[f64; MAX_PRECISION_LEVELS]; MAX_PRECISION_LEVELS];

/// The comonotone coupling of the common mix `common` and the layer's own mix `own` (both
/// lowest level first); `None` when they are the same (the identity).
fn coupling(common: &[f64], own: &[f64]) -> Option<Coupling> {
    let levels = common.len().min(own.len()).min(MAX_PRECISION_LEVELS);
    if common[..levels] == own[..levels] {
        return None;
    }
    let mut odds = [[0.0; MAX_PRECISION_LEVELS]; MAX_PRECISION_LEVELS];
    let (mut g0, mut row) = (0.0f64, 0);
    for (k, &share) in common.iter().enumerate().take(levels) {
        let g1 = g0 + share;
        let mut f0 = 0.0f64;
        for (a, &f) in own.iter().enumerate().take(levels) {
            let f1 = f0 + f;
            if share > 0.0 {
                odds[k][a] = (g1.min(f1) - g0.max(f0)).max(0.0) / share;
            } else if f > 0.0 && f1 > g0 && odds[k].iter().all(|&p| p == 0.0) {
                // A level of no common step: the layer's level at that quantile.
                odds[k][a] = 1.0;
            }
            f0 = f1;
        }
        // Rounding at the top of the mixes: the row still sums to 1.
        let sum: f64 = odds[k].iter().sum();
        if sum > 0.0 {
            odds[k].iter_mut().for_each(|p| *p /= sum);
            row = k;
        } else {
            odds[k] = odds[row];
        }
        g0 = g1;
    }
    Some(odds)
}

/// `cost`, with its per-level figures at the levels of the common sequence: each the mean of
/// its own figures over the levels it runs at such a step. `own`: the layer's fractions,
/// `common`: the profile's `step_fraction`.
pub(super) fn on_common_levels(cost: &LayerCost, common: &[f64], own: &[f64]) -> LayerCost {
    let Some(odds) = coupling(common, own) else {
        return *cost;
    };
    let couple = |x: &[f64; MAX_PRECISION_LEVELS]| {
        let mut out = [0.0; MAX_PRECISION_LEVELS];
        for (o, row) in out.iter_mut().zip(&odds) {
            *o = row.iter().zip(x).map(|(p, v)| p * v).sum();
        }
        out
    };
    LayerCost {
        level_step: couple(&cost.level_step),
        level_busy: couple(&cost.level_busy),
        level_compute: couple(&cost.level_compute),
        level_slack: couple(&cost.level_slack),
        level_first: couple(&cost.level_first),
        level_last: couple(&cost.level_last),
        ..*cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_of_the_common_mix_is_left_as_it_is() {
        assert!(coupling(&[0.5, 0.5], &[0.5, 0.5]).is_none());
    }

    #[test]
    fn the_coupling_matches_the_mixes_from_the_lowest_level_up() {
        // Common 30% / 70%; the layer 80% / 20%: a common low step is a low one, a common
        // high step is low with odds 50/70 and high with 20/70.
        let odds = coupling(&[0.3, 0.7], &[0.8, 0.2]).expect("mixes differ");
        assert!((odds[0][0] - 1.0).abs() < 1e-12 && odds[0][1].abs() < 1e-12);
        assert!((odds[1][0] - 5.0 / 7.0).abs() < 1e-12);
        assert!((odds[1][1] - 2.0 / 7.0).abs() < 1e-12);
        // A layer that runs one level only runs it at every common step.
        let one = coupling(&[0.5, 0.5], &[0.0, 1.0]).expect("mixes differ");
        assert_eq!((one[0][1], one[1][1]), (1.0, 1.0));
    }

    #[test]
    fn the_coupled_figures_keep_the_layers_mean() {
        let mut cost = LayerCost::default();
        cost.level_busy[..2].copy_from_slice(&[1366.0, 5332.0]);
        let (common, own) = ([0.4833, 0.5167], [14.0 / 15.0, 1.0 / 15.0]);
        let coupled = on_common_levels(&cost, &common, &own);
        let mean = |f: &[f64], x: &[f64]| f.iter().zip(x).map(|(f, x)| f * x).sum::<f64>();
        let want = mean(&own, &cost.level_busy);
        assert!((mean(&common, &coupled.level_busy) - want).abs() < 1e-9);
        // Its slow level no longer counts on half the common steps.
        assert!(coupled.level_busy[1] < 2000.0);
    }
}
