//! Dynamic precision selection from cell-state change (Silfa et al., arXiv 1911.04244) as
//! explorable design parameters: a [`PolicySpec`] (precision levels, a metric over
//! Δc = c_t − c_{t−1}, causal or oracle timing) and a grid of thresholds, each threshold tuple
//! one policy. Simulation is closed-loop: the level chosen at a step changes every state that
//! follows. Semantics: docs/NUMERICS.md section 11; simulation in `sim`, CSV in `report`.

pub mod groups;
pub(crate) mod lanes;
mod levels;
mod memory;
mod report;
mod sim;
mod values;

pub use lanes::{CpuPolicies, PolicyLayer};
pub use levels::{resolution_warnings, step_up, LevelPlans, LevelState};
pub use memory::policy_run_bytes;

pub use report::{
    levels_text, policy_rows, read_labels, task_accuracy, task_bits, thresholds_text, trace_file,
    trace_files, trace_rows, write_policies, PolicyTraceRow,
};
pub use sim::{simulate, simulate_scalar, LaneResult, Simulation};

/// What the GPU twin of the simulation shares with it.
pub(crate) mod sim_support {
    pub use super::sim::lane_metrics;
    use super::{sim::IntMetric, Metric, Policy};

    /// A policy's integer thresholds (and frac_above's code threshold) for a cell whose
    /// highest cell format has `frac` fraction bits and `hidden` units.
    /// For `rel_max_abs` the words carry f32 bits instead: `bounds` max(θ, 0) per boundary,
    /// `above` eps in code steps.
    pub struct Bounds {
        pub bounds: Vec<i64>,
        pub above: i64,
    }

    /// The same words for a state kept as values (`super::values::ValueMetric`): bounds as
    /// f32 bits (`max_abs`, `mean_abs`) or counts (`frac_above`), `above` the f32 bits of
    /// e or eps; `rel_max_abs` bounds as in [`int_metric`].
    pub fn value_metric(metric: Metric, policy: &Policy, hidden: usize) -> Bounds {
        let m = super::values::ValueMetric::new(metric, policy, hidden);
        let bounds = match metric {
            Metric::RelMaxAbs(_) => super::sim::rel_thresholds(policy)
                .iter()
                .map(|t| t.to_bits() as i32 as i64)
                .collect(),
            _ => m.bounds,
        };
        Bounds {
            bounds,
            above: m.above.to_bits() as i32 as i64,
        }
    }

    pub fn int_metric(metric: Metric, policy: &Policy, frac: i32, hidden: usize) -> Bounds {
        let m = IntMetric::new(metric, policy, frac, hidden);
        match m.rel {
            Some((thetas, e)) => Bounds {
                bounds: thetas.iter().map(|t| t.to_bits() as i32 as i64).collect(),
                above: e.to_bits() as i32 as i64,
            },
            None => Bounds {
                bounds: m.bounds,
                above: m.above,
            },
        }
    }
}

use crate::format::PrecisionConfig;
use crate::lstm::eval::{self, EvalError, PlanRefusal, Reference};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use crate::trace::Engine;

/// A bad policy description; `Display` is one line naming the flag or token.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{flag}: {problem}")]
    Bad { flag: &'static str, problem: String },
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

impl PlanRefusal for PolicyError {
    fn is_plan_refusal(&self) -> bool {
        matches!(self, PolicyError::Eval(e) if e.is_plan_refusal())
    }
}

fn bad(flag: &'static str, problem: impl Into<String>) -> PolicyError {
    PolicyError::Bad {
        flag,
        problem: problem.into(),
    }
}

/// What summarises Δc over the H units of one layer direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    MaxAbs,
    MeanAbs,
    /// Fraction of units with |Δc| > e.
    FracAbove(f64),
    /// max |Δc| relative to the state's magnitude: max|Δc| / (max|c_prev| + eps)
    /// (NUMERICS.md §11), eps in [1e-12, 1e6].
    RelMaxAbs(f64),
}

impl std::str::FromStr for Metric {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        match s {
            "max_abs" => Ok(Metric::MaxAbs),
            "mean_abs" => Ok(Metric::MeanAbs),
            _ if s.starts_with("rel_max_abs") => {
                match s.strip_prefix("rel_max_abs:").map(str::parse::<f64>) {
                    Some(Ok(e)) if (1e-12..=1e6).contains(&e) => Ok(Metric::RelMaxAbs(e)),
                    _ => Err(bad(
                        "--metric",
                        format!("'{s}': expected rel_max_abs:<eps> with 1e-12 <= eps <= 1e6"),
                    )),
                }
            }
            _ => match s.strip_prefix("frac_above:").map(str::parse::<f64>) {
                Some(Ok(e)) if e >= 0.0 && e.is_finite() => Ok(Metric::FracAbove(e)),
                _ => Err(bad(
                    "--metric",
                    format!("'{s}': expected max_abs, mean_abs, frac_above:<e> with e >= 0 or rel_max_abs:<eps>"),
                )),
            },
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Metric::MaxAbs => write!(f, "max_abs"),
            Metric::MeanAbs => write!(f, "mean_abs"),
            Metric::FracAbove(e) => write!(f, "frac_above:{e}"),
            Metric::RelMaxAbs(e) => write!(f, "rel_max_abs:{e}"),
        }
    }
}

/// When the measured change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// The change measured at step t picks the level of step t+1 (what hardware can do).
    Causal,
    /// Step t is first run at the highest level, then redone at the level its own change asks
    /// for (an upper bound on what the metric can achieve).
    Oracle,
}

/// Levels, metric and timing shared by a grid of policies.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    /// Precision configs, lowest (narrowest) first.
    pub levels: Vec<PrecisionConfig>,
    pub metric: Metric,
    pub timing: Timing,
    /// The level of the first step under causal timing (no change has been measured yet);
    /// the highest by default ([`PolicySpec::starting_at`]).
    pub start: usize,
    /// How a lane's state travels between levels.
    pub state: LevelState,
}

impl PolicySpec {
    /// Checks the levels: at least two, ordered by width (every role no narrower than the
    /// level before, the total strictly wider). Nested fixed-point levels keep the state as
    /// codes of the highest level; any other set (float formats, mixed configs, explicit
    /// fraction bits, per-channel weights, per-level calibration) keeps it as values
    /// ([`LevelState`]).
    pub fn new(
        levels: Vec<PrecisionConfig>,
        metric: Metric,
        timing: Timing,
    ) -> Result<Self, PolicyError> {
        if levels.len() < 2 {
            return Err(bad(
                "--levels",
                "give at least two levels, lowest first (e.g. fx8,fx16)",
            ));
        }
        levels::check_order(&levels)?;
        let state = if levels::nested(&levels) {
            LevelState::Codes
        } else {
            LevelState::Values
        };
        let start = levels.len() - 1;
        Ok(PolicySpec {
            levels,
            metric,
            timing,
            start,
            state,
        })
    }

    /// Keeps the state as f32 values even for nested fixed-point levels (the general rule of
    /// NUMERICS.md §11, which gives the same bits as codes there: `tests/dynamic.rs`).
    pub fn value_state(mut self) -> Self {
        self.state = LevelState::Values;
        self
    }

    /// Sets the causal starting level: `high` (the default), `low` or a level index.
    pub fn starting_at(mut self, start: &str) -> Result<Self, PolicyError> {
        let top = self.levels.len() - 1;
        self.start = match start {
            "high" => top,
            "low" => 0,
            k => k
                .parse::<usize>()
                .ok()
                .filter(|&k| k <= top)
                .ok_or_else(|| {
                    bad(
                        "--start",
                        format!("'{k}': expected high, low or a level index 0..={top}"),
                    )
                })?,
        };
        Ok(self)
    }
}

/// One policy: thresholds, one fewer than the levels, non-decreasing. A step's level is the number
/// of thresholds its metric reaches (metric >= threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub thresholds: Vec<f64>,
}

/// A threshold token: a number, `start:stop:count` or `log:start:stop:count`, checked.
struct Range {
    log: bool,
    start: f64,
    stop: f64,
    count: u64,
}

impl Range {
    fn parse(tok: &str) -> Result<Range, PolicyError> {
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| !v.is_nan())
                .ok_or_else(|| bad("--thresholds", format!("'{s}' is not a number")))
        };
        let parts: Vec<&str> = tok.split(':').collect();
        let (log, parts) = match parts.first() {
            Some(&"log") => (true, &parts[1..]),
            _ => (false, &parts[..]),
        };
        match parts {
            [v] if !log => {
                let v = num(v)?;
                Ok(Range {
                    log,
                    start: v,
                    stop: v,
                    count: 1,
                })
            }
            [a, b, n] => {
                let (a, b) = (num(a)?, num(b)?);
                // A whole number in any notation ("1e3" too).
                let count = (n.trim().parse::<f64>().ok())
                    .filter(|c| c.fract() == 0.0 && *c >= 1.0 && *c < 1.8e19)
                    .map(|c| c as u64);
                let count: u64 = count.ok_or_else(|| {
                    bad(
                        "--thresholds",
                        format!("'{tok}': the count must be a whole number >= 1"),
                    )
                })?;
                if !(a.is_finite() && b.is_finite()) || b < a || (log && a <= 0.0) {
                    return Err(bad(
                        "--thresholds",
                        format!("'{tok}': need finite start <= stop (and start > 0 for log)"),
                    ));
                }
                crate::limits::check_points(&format!("'{tok}'"), Some(count as u128), "thresholds")
                    .map_err(|e| bad("--thresholds", e.to_string()))?;
                Ok(Range {
                    log,
                    start: a,
                    stop: b,
                    count,
                })
            }
            _ => Err(bad(
                "--thresholds",
                format!("'{tok}': expected a number, start:stop:count or log:start:stop:count"),
            )),
        }
    }

    fn values(&self) -> Vec<f64> {
        let (a, b, n) = (self.start, self.stop, self.count as usize);
        if n == 1 && a == b {
            return vec![a];
        }
        if self.log {
            return crate::grid::log_points(a, b, n);
        }
        crate::grid::linear_points(a, b, n)
    }
}

/// The policies of one comma-separated item of `--thresholds`, as ranges, checked.
fn parse_item(item: &str, levels: usize) -> Result<Vec<Range>, PolicyError> {
    let parts: Vec<&str> = item.split('/').collect();
    if parts.len() + 1 != levels {
        return Err(bad(
            "--thresholds",
            format!("'{item}' has {} threshold(s); {levels} levels need {} per policy (separate them with '/')", parts.len(), levels.saturating_sub(1)),
        ));
    }
    parts.iter().map(|p| Range::parse(p)).collect()
}

/// How many policies `--thresholds` describes at most (tuples that decrease are skipped
/// later), without expanding it; over the points limit (`--max-points`) is an error.
pub fn count_policies(s: &str, levels: usize) -> Result<u128, PolicyError> {
    let mut total = Some(0u128);
    for item in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let counts: Vec<u128> = parse_item(item, levels)?
            .iter()
            .map(|r| r.count as u128)
            .collect();
        total = total
            .zip(crate::limits::product(&counts))
            .and_then(|(t, n)| t.checked_add(n));
        crate::limits::check_points("--thresholds", total, "policies").map_err(|e| {
            PolicyError::Bad {
                flag: "--thresholds",
                problem: e.to_string().replacen("--thresholds: ", "", 1),
            }
        })?;
    }
    total.ok_or_else(|| bad("--thresholds", "too many policies"))
}

/// Parses `--thresholds` for `levels` levels: policies separated by commas; within a policy
/// the thresholds of successive level boundaries are separated by `/`; each may be a number
/// (`inf`, `-inf` allowed), `start:stop:count` or `log:start:stop:count`, and ranges expand to
/// their cartesian product (tuples that decrease are skipped). The grid is counted before it
/// is expanded ([`count_policies`]).
pub fn parse_thresholds(s: &str, levels: usize) -> Result<Vec<Policy>, PolicyError> {
    count_policies(s, levels)?;
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let lists: Vec<Vec<f64>> = parse_item(item, levels)?
            .iter()
            .map(Range::values)
            .collect();
        // The metrics are magnitudes of change (at least 0): a negative threshold would act
        // as 0 under another name.
        if let Some(v) = lists.iter().flatten().find(|v| **v < 0.0) {
            return Err(bad(
                "--thresholds",
                format!("'{item}': {v} is negative (a threshold is a change of the cell state, at least 0)"),
            ));
        }
        let single = lists.iter().all(|l| l.len() == 1);
        let mut tuples: Vec<Vec<f64>> = vec![Vec::new()];
        for list in &lists {
            tuples = tuples
                .iter()
                .flat_map(|t| list.iter().map(move |v| [t.clone(), vec![*v]].concat()))
                .collect();
        }
        for t in tuples {
            if t.windows(2).all(|w| w[0] <= w[1]) {
                out.push(Policy { thresholds: t });
            } else if single {
                return Err(bad(
                    "--thresholds",
                    format!(
                        "'{item}': thresholds must be increasing (each at least the one before)"
                    ),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(bad("--thresholds", "no policy given"));
    }
    Ok(out)
}

/// The level plans of a policy run and the float64 reference they are calibrated on (the
/// reference is also the calibration of the levels' `fx<b>` formats, NUMERICS.md §3); a
/// caller's reference serves unless the levels need histograms it did not record.
pub fn prepare_levels(
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    spec: &PolicySpec,
    reference: Option<Reference>,
) -> Result<(LevelPlans, Reference), PolicyError> {
    eval::check_input(model, seqs, input_name)?;
    let hist = eval::needs_histograms(&spec.levels);
    let reference = match reference {
        Some(r) if !hist || r.calibration.hist.is_some() => r,
        _ => eval::reference::evaluate_with(model, seqs, hist),
    };
    let levels = LevelPlans::prepare(model, spec, &reference.calibration)?;
    Ok((levels, reference))
}

/// Simulates `policies` on `engine` (GPU policy lanes or the CPU simulation: the same bits),
/// and returns them with the float64 reference they are judged against: `reference` when the
/// caller already evaluated it on the same `seqs` (a sweep's trace did), else computed here.
/// `progress(done, total)` counts lanes on the CPU, lane-steps on the GPU. The simulation's
/// `warnings` are for the caller to show.
#[allow(clippy::too_many_arguments)]
pub fn run(
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    spec: &PolicySpec,
    policies: &[Policy],
    reference: Option<Reference>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(Simulation, Reference), PolicyError> {
    // The float64 reference the lanes are judged against lives beside them.
    let need = policy_run_bytes(
        model,
        seqs.count,
        seqs.steps,
        spec.levels.len(),
        policies.len() as u128,
        engine,
    );
    crate::limits::check_memory(
        &format!(
            "--thresholds: {} policies x {} sequences",
            policies.len(),
            seqs.count
        ),
        need,
    )
    .map_err(|e| {
        bad(
            "--thresholds",
            e.to_string().replacen("--thresholds: ", "", 1),
        )
    })?;
    let (levels, reference) = prepare_levels(model, seqs, input_name, spec, reference)?;
    let warnings = resolution_warnings(model, &levels, spec, policies);
    let mut sim = match engine {
        Engine::Gpu(ctx) => {
            ctx.simulate_policies(model, seqs, spec, &levels, policies, &mut |d, t| {
                progress(d, t)
            })?
        }
        Engine::Cpu => {
            let total = (policies.len() * seqs.count) as u64;
            let done = std::sync::atomic::AtomicU64::new(0);
            simulate(model, seqs, spec, &levels, policies, &|| {
                progress(
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    total,
                )
            })
        }
    };
    sim.warnings = warnings;
    Ok((sim, reference))
}
