//! The precision-trace stage: run the float64 reference and every candidate precision over the
//! same sequences (on the GPU or the CPU evaluator: the same bits either way) and reduce the
//! states to error traces — per step, per precision — and the cell-state change that dynamic
//! precision selection keys on. Writes `errors.csv`, `cell_delta.csv` and `summary.csv`
//! (columns documented in docs/OUTPUTS.md).

pub mod bench;
mod report;
pub mod stats;

pub use report::{rows, write_csvs, CellDeltaRow, ErrorRow, SummaryRow};

use crate::format::PrecisionConfig;
use crate::gpu::{AdapterChoice, GpuContext, GpuError};
use crate::lstm::eval::{self, reference, EvalError, Reference, Run};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;

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
            Engine::Cpu => {
                let total = (plans.len() * seqs.count * seqs.steps * model.layers.len()) as u64;
                let runs = eval::run_cpu(model, seqs, plans, true);
                progress(total, total);
                Ok(runs)
            }
            Engine::Gpu(ctx) => ctx.run(model, seqs, plans, true, progress),
        }
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

/// The runs of a trace: the float64 reference and the candidates (each distinct config once).
pub struct Trace {
    /// The accurate reference every error is measured against (docs/NUMERICS.md §14).
    pub reference: Reference,
    pub runs: Vec<Run>,
    /// Index in `runs` of each candidate precision as listed by the user.
    pub listed: Vec<usize>,
    pub sequences: usize,
    pub steps: usize,
}

/// Evaluates the float64 reference (CPU) and every config in `configs` (on `engine`); a config
/// listed twice runs once.
pub fn run(
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    configs: &[PrecisionConfig],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Trace, TraceError> {
    let mut all: Vec<PrecisionConfig> = Vec::new();
    let mut listed = Vec::with_capacity(configs.len());
    for c in configs {
        match all.iter().position(|x| x == c) {
            Some(i) => listed.push(i),
            None => {
                listed.push(all.len());
                all.push(*c);
            }
        }
    }
    let plans = eval::prepare(model, seqs, input_name, &all)?;
    let runs = engine.run(model, seqs, &plans, progress)?;
    Ok(Trace {
        reference: reference::evaluate(model, seqs),
        runs,
        listed,
        sequences: seqs.count,
        steps: seqs.steps,
    })
}
