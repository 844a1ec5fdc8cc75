//! The precision-trace stage: run the float64 reference and every candidate precision over the
//! same sequences (on the GPU or the CPU evaluator: the same bits either way) and reduce the
//! states to error traces — per step, per precision — and the cell-state change that dynamic
//! precision selection keys on. Writes `errors.csv`, `cell_delta.csv` and `summary.csv`
//! (columns documented in docs/OUTPUTS.md). On a GPU with f64 the states never leave the
//! device: a kernel reduces them to per-step statistics there (`gpu::GpuContext::run_reduced`).

pub mod bench;
mod report;
pub mod stats;
mod turns;

pub use report::{rows, write_csvs, CellDeltaRow, ErrorRow, SummaryRow};

use crate::format::PrecisionConfig;
use crate::gpu::{AdapterChoice, GpuContext, GpuError};
use crate::lstm::eval::{self, EvalError, PlanRefusal, Reference, Run};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use rayon::prelude::*;
use stats::ErrorStats;

/// Where lanes run.
pub enum Engine {
    Cpu,
    Gpu(Box<GpuContext>),
}

/// The `--device` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU when there is one, otherwise the CPU evaluator (with a notice).
    Auto,
    /// Any GPU adapter (lavapipe included); an error when there is none.
    Gpu,
    /// The CPU evaluator.
    Cpu,
}

impl Engine {
    /// Picks the engine; the string is a one-line notice for the user when `Auto` fell back.
    pub fn select(choice: DeviceChoice) -> Result<(Engine, Option<String>), GpuError> {
        match choice {
            DeviceChoice::Cpu => Ok((Engine::Cpu, None)),
            DeviceChoice::Gpu => Ok((Engine::Gpu(Box::new(GpuContext::new(AdapterChoice::Any)?)), None)),
            DeviceChoice::Auto => match GpuContext::new(AdapterChoice::HardwareOnly) {
                Ok(ctx) => Ok((Engine::Gpu(Box::new(ctx)), None)),
                Err(e) => Ok((
                    Engine::Cpu,
                    Some(format!("notice: {e}; using the CPU evaluator (same results, --device gpu forces a software adapter)")),
                )),
            },
        }
    }

    /// A name for logs and benchmark tables.
    pub fn name(&self) -> String {
        match self {
            Engine::Cpu => format!("CPU evaluator ({} threads)", rayon::current_num_threads()),
            Engine::Gpu(ctx) => ctx.adapter.to_string(),
        }
    }

    /// Runs prepared plans, keeping every layer's states. `progress(done, total)` counts
    /// lane-steps.
    pub fn run(
        &self,
        model: &Model,
        seqs: &Sequences,
        plans: &[eval::Plan],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<Run>, GpuError> {
        match self {
            Engine::Cpu => Ok(eval::run_cpu_with(model, seqs, plans, true, progress)),
            Engine::Gpu(ctx) => ctx.run(model, seqs, plans, true, progress),
        }
    }

    /// For a trace on a GPU without f64: a one-line notice that its states are read back and
    /// reduced on the CPU.
    pub fn reduction_notice(&self) -> Option<String> {
        match self {
            Engine::Gpu(ctx) if !ctx.reduces_on_device() => Some(format!(
                "notice: the adapter '{}' has no SHADER_F64/SHADER_INT64; trace errors are reduced on the CPU (states read back: same results, more host memory)",
                ctx.adapter.name
            )),
            _ => None,
        }
    }

    /// Whether runs reduced by [`Engine::run_reduced`] keep no states on the host.
    pub fn reduces_on_device(&self) -> bool {
        matches!(self, Engine::Gpu(ctx) if ctx.reduces_on_device())
    }

    /// Runs prepared plans and reduces each to its per-step errors against the reference
    /// (`reference()` waits for it): on the device where it can, else from the states.
    pub fn run_reduced<'r>(
        &self,
        model: &Model,
        seqs: &Sequences,
        plans: &[eval::Plan],
        reference: &dyn Fn() -> Option<&'r Reference>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<ConfigErrors>, GpuError> {
        if let Engine::Gpu(ctx) = self {
            if ctx.reduces_on_device() {
                return ctx.run_reduced(model, seqs, plans, reference, progress);
            }
        }
        let runs = self.run(model, seqs, plans, progress)?;
        let reference = reference()
            .ok_or_else(|| GpuError::Readback("the float64 reference was not computed".into()))?;
        Ok(reduce_all(runs, reference, model, seqs))
    }
}

/// Why a trace cannot run.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("--tolerance must be > 0, got {0}")]
    Tolerance(f32),
}

impl PlanRefusal for TraceError {
    fn is_plan_refusal(&self) -> bool {
        matches!(self, TraceError::Eval(e) if e.is_plan_refusal())
    }
}

/// One config's errors against the reference, reduced as soon as its run finished (so a
/// trace holds the states of only a few configs at a time).
pub struct ConfigErrors {
    pub config: PrecisionConfig,
    /// Head output `[N, T, O]` (`[N, O]` for a head on one vector per sequence), when the
    /// model has a head.
    pub output: Option<Vec<f32>>,
    /// Hidden and cell error over one direction's H units, per (sequence, layer, direction,
    /// step) in that order (the rows of `errors.csv`).
    pub steps: Vec<(stats::ErrorStats, stats::ErrorStats)>,
}

/// The float64 reference and the candidates' reduced errors (each distinct config once).
pub struct Trace {
    /// The accurate reference every error is measured against (docs/NUMERICS.md §14).
    pub reference: Reference,
    pub results: Vec<ConfigErrors>,
    /// Index in `results` of each candidate precision as listed by the user.
    pub listed: Vec<usize>,
    pub sequences: usize,
    pub steps: usize,
}

/// Reduces every run (in parallel, in order) to its per-step errors against `reference`.
fn reduce_all(
    runs: Vec<Run>,
    reference: &Reference,
    model: &Model,
    seqs: &Sequences,
) -> Vec<ConfigErrors> {
    runs.into_par_iter()
        .map(|r| reduce(r, reference, model, seqs))
        .collect()
}

/// Reduces one run to its per-step errors against `reference` (and drops its states).
fn reduce(run: Run, reference: &Reference, model: &Model, seqs: &Sequences) -> ConfigErrors {
    let states = run.states.unwrap_or_default();
    let ref_states = &reference.states;
    let mut steps = Vec::new();
    for n in 0..seqs.count {
        for (l, layer) in model.layers.iter().enumerate() {
            let (hsz, dirs) = (layer.hidden_size, layer.direction.count());
            for k in 0..dirs {
                // Two steps at a time: four accumulators whose f64 add chains overlap.
                let span = |t: usize| {
                    let at = (n * seqs.steps + t) * hsz * dirs + k * hsz;
                    at..at + hsz
                };
                let (h, c, rh, rc) = (
                    &states[l].h,
                    &states[l].c,
                    &ref_states[l].h,
                    &ref_states[l].c,
                );
                let mut t = 0;
                while t < seqs.steps {
                    let mut e = [ErrorStats::default(); 4];
                    let [h0, c0, h1, c1] = &mut e;
                    if t + 1 < seqs.steps {
                        ErrorStats::add_each(
                            [h0, c0, h1, c1],
                            [
                                (&h[span(t)], &rh[span(t)]),
                                (&c[span(t)], &rc[span(t)]),
                                (&h[span(t + 1)], &rh[span(t + 1)]),
                                (&c[span(t + 1)], &rc[span(t + 1)]),
                            ],
                        );
                        steps.extend([(e[0], e[1]), (e[2], e[3])]);
                    } else {
                        ErrorStats::add_each(
                            [h0, c0],
                            [(&h[span(t)], &rh[span(t)]), (&c[span(t)], &rc[span(t)])],
                        );
                        steps.push((e[0], e[1]));
                    }
                    t += 2;
                }
            }
        }
    }
    ConfigErrors {
        config: run.config,
        output: run.output,
        steps,
    }
}

/// Evaluates the float64 reference (CPU) and every config in `configs` (on `engine`), a
/// config listed twice once, and reduces each run to its errors: configs are planned and run
/// in turns that fit [`turns::TURN_BUDGET_BYTES`] (at least one config a turn).
pub fn run(
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    configs: &[PrecisionConfig],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Trace, TraceError> {
    turns::run_in_turns(
        engine,
        model,
        seqs,
        input_name,
        configs,
        progress,
        turns::TURN_BUDGET_BYTES,
    )
}
