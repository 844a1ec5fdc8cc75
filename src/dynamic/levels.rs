//! The precision levels of a policy as runnable plans, and how a lane's state travels between
//! them (docs/NUMERICS.md §11):
//! - **nested fixed point** (every level fixed point, one range per tensor, lower levels
//!   without explicit fraction bits, one calibration rule): the lower levels are derived from
//!   the highest by dropping low bits, and the state is kept as codes of the highest level's
//!   formats ([`LevelState::Codes`]);
//! - **any other set of levels** (float formats, mixed configs, explicit fraction bits,
//!   per-channel weights, per-level calibration): every level is prepared as an ordinary config
//!   and the state is kept as f32 values, rounded into the formats of the level a step runs at
//!   ([`LevelState::Values`]).

use super::{bad, Metric, Policy, PolicyError, PolicySpec};
use crate::format::{Fixed, Format, PrecisionConfig, Resolved, WeightScale};
use crate::lstm::eval::{self, Calibration, CellFormats, Plan};
use crate::lstm::Model;

/// How a policy lane keeps its recurrent state between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelState {
    /// Integer codes of the highest level's formats; a lower level drops low bits (nested
    /// fixed point only).
    Codes,
    /// f32 values; a step at level q first rounds h, c and x into q's formats.
    Values,
}

/// True when `levels` (ordered, lowest first) can share one integer state: all fixed point,
/// one range per tensor, only the highest with explicit fraction bits, one calibration rule.
pub(super) fn nested(levels: &[PrecisionConfig]) -> bool {
    let top = levels[levels.len() - 1];
    levels.iter().enumerate().all(|(k, l)| {
        let open = [l.w, l.a, l.p, l.c]
            .iter()
            .all(|f| !matches!(f, Format::Fixed { frac: Some(_), .. }));
        l.is_integer()
            && l.wscale == WeightScale::Tensor
            && l.cal == top.cal
            && (open || k + 1 == levels.len())
    })
}

/// Checks that `levels` are ordered by width: every role no narrower than in the level
/// before, the total strictly wider (so each level is a distinct step up in cost).
pub(super) fn check_order(levels: &[PrecisionConfig]) -> Result<(), PolicyError> {
    for pair in levels.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if !step_up(a, b) {
            return Err(bad(
                "--levels",
                format!("levels cannot be ordered by width: '{a}' comes before '{b}' (every role must be at least as wide as in the level before, and the total wider)"),
            ));
        }
    }
    Ok(())
}

/// Whether level `b` may follow level `a`: every role at least as wide, the total wider (the
/// order `dynamic` checks, and `model --policies` reads back).
pub fn step_up(a: &PrecisionConfig, b: &PrecisionConfig) -> bool {
    let roles = [(a.w, b.w), (a.a, b.a), (a.p, b.p), (a.c, b.c)];
    roles.iter().all(|(x, y)| x.bits() <= y.bits()) && a.total_bits() < b.total_bits()
}

fn drop_to(f: Resolved, bits: u32) -> Resolved {
    match f {
        Resolved::Fixed(x) => Resolved::Fixed(Fixed {
            bits,
            frac: x.frac - (x.bits as i32 - bits as i32),
        }),
        other => other,
    }
}

/// Every level of every cell: `levels[level]` is a full [`Plan`].
pub struct LevelPlans {
    pub levels: Vec<Plan>,
    pub state: LevelState,
}

impl LevelPlans {
    /// Prepares the levels of `spec` with the calibration `trace` would do (`cal`, from the
    /// float64 reference on the same sequences): nested levels derived from the highest, any
    /// others each resolved as its own config.
    pub fn prepare(
        model: &Model,
        spec: &PolicySpec,
        cal: &Calibration,
    ) -> Result<Self, PolicyError> {
        let weights = eval::WeightRanges::of(model);
        let plan = |c: PrecisionConfig| eval::Plan::with_ranges(model, c, Some(cal), &weights);
        match spec.state {
            LevelState::Codes => Self::new(model, plan(spec.levels[spec.levels.len() - 1])?, spec),
            LevelState::Values => Ok(LevelPlans {
                levels: spec
                    .levels
                    .iter()
                    .map(|&c| plan(c))
                    .collect::<Result<_, _>>()?,
                state: LevelState::Values,
            }),
        }
    }

    /// Derives the lower levels of a nested `spec` from the highest level's plan by dropping
    /// low bits (the state kind is `spec`'s: [`PolicySpec::value_state`] keeps these plans but
    /// carries the state as values).
    pub fn new(model: &Model, highest: Plan, spec: &PolicySpec) -> Result<Self, PolicyError> {
        if !nested(&spec.levels) {
            return Err(bad(
                "--levels",
                "only nested fixed-point levels derive from the highest (use LevelPlans::prepare)",
            ));
        }
        let mut levels = Vec::with_capacity(spec.levels.len());
        for cfg in &spec.levels[..spec.levels.len() - 1] {
            let mut layers = Vec::with_capacity(highest.layers.len());
            for (l, cells) in highest.layers.iter().enumerate() {
                let mut derived = Vec::with_capacity(cells.len());
                for (k, hi) in cells.iter().enumerate() {
                    let f = hi.formats;
                    let formats = CellFormats {
                        x: drop_to(f.x, cfg.a.bits()),
                        h: drop_to(f.h, cfg.a.bits()),
                        gate: drop_to(f.gate, cfg.a.bits()),
                        pre: drop_to(f.pre, cfg.p.bits()),
                        c: drop_to(f.c, cfg.c.bits()),
                        w: drop_to(f.w, cfg.w.bits()),
                        r: drop_to(f.r, cfg.w.bits()),
                        b: drop_to(f.b, cfg.w.bits()),
                        peep: drop_to(f.peep, cfg.w.bits()),
                    };
                    let cell = crate::lstm::eval::plan::CellPlan::derived(
                        hi,
                        formats,
                        model.layers[l].hidden_size,
                    )
                    .map_err(|p| {
                        bad("--levels", format!("'{cfg}': layer {l} direction {k}: {p}"))
                    })?;
                    derived.push(cell);
                }
                layers.push(derived);
            }
            levels.push(Plan {
                config: *cfg,
                layers,
            });
        }
        levels.push(highest);
        Ok(LevelPlans {
            levels,
            state: spec.state,
        })
    }
}

/// One line per level boundary whose threshold lies below the lower level's resolution of
/// the metric in some layer direction (0 < θ < 2^-f of that level's fixed-point cell format
/// for `max_abs`, 2^-f / H for `mean_abs`): every change such a level can make reaches it, so
/// the threshold cannot tell small changes from large ones there. Empty for other metrics
/// and for float cell formats (whose resolution is relative).
pub fn resolution_warnings(
    model: &Model,
    plans: &LevelPlans,
    spec: &PolicySpec,
    policies: &[Policy],
) -> Vec<String> {
    let mut out = Vec::new();
    for b in 0..spec.levels.len() - 1 {
        let mut worst: Option<(f64, usize, usize)> = None;
        for (l, layer) in model.layers.iter().enumerate() {
            for k in 0..layer.direction.count() {
                let Resolved::Fixed(c) = plans.levels[b].layers[l][k].formats.c else {
                    continue;
                };
                let res = match spec.metric {
                    Metric::MaxAbs => crate::format::fixed::pow2(-c.frac),
                    Metric::MeanAbs => {
                        crate::format::fixed::pow2(-c.frac) / layer.hidden_size as f64
                    }
                    _ => continue,
                };
                if worst.is_none_or(|(r, _, _)| res > r) {
                    worst = Some((res, l, k));
                }
            }
        }
        let Some((res, l, k)) = worst else { continue };
        let below = policies
            .iter()
            .filter(|p| p.thresholds[b] > 0.0 && p.thresholds[b] < res)
            .count();
        if below > 0 {
            out.push(format!(
                "warning: {below} of {} policies have a threshold between levels '{}' and '{}' below the {} resolution of '{}' ({res:e} in layer {l} direction {k}): any change at that level reaches it",
                policies.len(),
                spec.levels[b],
                spec.levels[b + 1],
                spec.metric,
                spec.levels[b],
            ));
        }
    }
    out
}
