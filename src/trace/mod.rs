//! The precision-trace stage: run the float64 reference and every candidate precision over the
//! same sequences (on the GPU or the CPU evaluator: the same bits either way) and reduce the
//! states to error traces — per step, per precision — and the cell-state change that dynamic
//! precision selection keys on. Writes `errors.csv`, `cell_delta.csv` and `summary.csv`
//! (columns documented in docs/OUTPUTS.md). On a GPU with f64 the states never leave the
//! device: a kernel reduces them to per-step statistics there (`gpu::GpuContext::run_reduced`).

pub mod bench;
mod report;
pub mod stats;

pub use report::{rows, write_csvs, CellDeltaRow, ErrorRow, SummaryRow};

use crate::format::PrecisionConfig;
use crate::gpu::{AdapterChoice, GpuContext, GpuError};
use crate::lstm::eval::{self, reference, EvalError, Reference, Run};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use rayon::prelude::*;
use stats::ErrorStats;
use std::sync::OnceLock;

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

/// The configs evaluated together (their plans and states) stay below this; more configs
/// run in turns.
const TURN_BUDGET_BYTES: u64 = 1 << 30;

/// Bytes one config holds on the host while it runs: every layer's h and c (f32) over `seqs`
/// unless `reduced` on the device (then its step errors, 64 bytes per layer-direction-step),
/// and its plan's weights (f32 values, i32 codes and a packed copy: 12 bytes per weight).
fn config_bytes(model: &Model, seqs: &Sequences, reduced: bool) -> u64 {
    let lane_steps = (seqs.count * seqs.steps) as u64;
    model
        .layers
        .iter()
        .map(|l| {
            let (d, h) = (l.direction.count() as u64, l.hidden_size as u64);
            let states = if reduced { 64 * d } else { 2 * 4 * d * h };
            states * lane_steps + 12 * d * 4 * h * (l.input_size as u64 + h)
        })
        .sum()
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
/// in turns that fit [`TURN_BUDGET_BYTES`] (at least one config a turn).
pub fn run(
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    configs: &[PrecisionConfig],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Trace, TraceError> {
    run_in_turns(
        engine,
        model,
        seqs,
        input_name,
        configs,
        progress,
        TURN_BUDGET_BYTES,
    )
}

fn run_in_turns(
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    configs: &[PrecisionConfig],
    progress: &mut dyn FnMut(u64, u64),
    budget: u64,
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
    // The input is checked before the reference starts on it.
    eval::check_input(model, seqs, input_name)?;
    let turn = (budget / config_bytes(model, seqs, engine.reduces_on_device()).max(1)).max(1);
    let turn = turn as usize;
    let per_config = (seqs.count * seqs.steps * model.layers.len()) as u64;
    let ctx = Turns {
        model,
        seqs,
        histograms: eval::needs_histograms(&all),
        weights: eval::WeightRanges::of(model),
        per_config,
        total: per_config * all.len() as u64,
    };
    let first = all.chunks(turn).next().unwrap_or_default();
    let (reference, mut results) = match engine {
        Engine::Cpu => ctx.first_on_cpu(first, progress)?,
        Engine::Gpu(_) => ctx.first_beside(engine, first, progress)?,
    };
    let calibration = all
        .iter()
        .any(eval::needs_calibration)
        .then_some(&reference.calibration);
    for (i, group) in all.chunks(turn).enumerate().skip(1) {
        let before = (i * turn) as u64 * per_config;
        results.extend(
            ctx.run(engine, group, calibration, &|| Some(&reference), &mut |d| {
                progress(before + d, ctx.total)
            })?,
        );
    }
    Ok(Trace {
        reference,
        results,
        listed,
        sequences: seqs.count,
        steps: seqs.steps,
    })
}

/// What every turn of a trace shares. The first turn runs the float64 reference, which is
/// also the calibration run (docs/NUMERICS.md §3), beside its configs without `fx<b>`
/// formats (`free`); the others wait for its calibration. Results keep the order of the
/// configs; a failing plan among the free ones is reported before any of the others.
struct Turns<'a> {
    model: &'a Model,
    seqs: &'a Sequences,
    /// Whether the reference records histograms (some config calibrates on them).
    histograms: bool,
    /// Measured once for every config's plan.
    weights: eval::WeightRanges,
    /// Lane-steps of one config, and of the whole trace (for `progress`).
    per_config: u64,
    total: u64,
}

impl Turns<'_> {
    /// Plans and runs `group` and reduces it against `reference()`; `progress` gets the
    /// lane-steps done in this group.
    fn run<'r>(
        &self,
        engine: &Engine,
        group: &[PrecisionConfig],
        cal: Option<&eval::Calibration>,
        reference: &dyn Fn() -> Option<&'r Reference>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<ConfigErrors>, TraceError> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        let plans = self.plan(group, cal)?;
        let (model, seqs) = (self.model, self.seqs);
        Ok(engine.run_reduced(model, seqs, &plans, reference, &mut |d, _| progress(d))?)
    }

    /// Plans `group` in parallel (each plan's own steps are partly serial); the first
    /// failing config in list order is the one reported, as when planned in turn.
    fn plan(
        &self,
        group: &[PrecisionConfig],
        cal: Option<&eval::Calibration>,
    ) -> Result<Vec<eval::Plan>, EvalError> {
        group
            .par_iter()
            .map(|&c| eval::Plan::with_ranges(self.model, c, cal, &self.weights))
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    }

    /// `configs` without `fx<b>` formats (free), and with (waiting for calibration).
    fn split(configs: &[PrecisionConfig]) -> (Vec<PrecisionConfig>, Vec<PrecisionConfig>) {
        configs.iter().partition(|c| !eval::needs_calibration(c))
    }

    /// Back into the order of `configs`.
    fn in_order<T>(configs: &[PrecisionConfig], free: Vec<T>, waiting: Vec<T>) -> Vec<T> {
        let (mut f, mut w) = (free.into_iter(), waiting.into_iter());
        configs
            .iter()
            .filter_map(|c| {
                if eval::needs_calibration(c) {
                    w.next()
                } else {
                    f.next()
                }
            })
            .collect()
    }

    /// On the CPU engine: the reference and the free configs share rayon's pool as the two
    /// halves of one `rayon::join` (each fills the other's serial stretches; neither waits
    /// for the other inside the pool, so one thread is enough; two threads that each handed
    /// work to the pool from outside would not share it: rayon's workers take their own and
    /// each other's tasks before any newly handed in, so the second waited for the first),
    /// the waiting configs are planned as soon as the reference is there, then run.
    fn first_on_cpu(
        &self,
        configs: &[PrecisionConfig],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(Reference, Vec<ConfigErrors>), TraceError> {
        let (free, waiting) = Self::split(configs);
        let (model, seqs) = (self.model, self.seqs);
        let ((reference, waiting_plans), free_runs) = rayon::join(
            || {
                let r = reference::evaluate_with(model, seqs, self.histograms);
                let plans = match waiting.is_empty() {
                    true => Ok(Vec::new()),
                    false => self.plan(&waiting, Some(&r.calibration)),
                };
                (r, plans)
            },
            || {
                self.plan(&free, None)
                    .map(|plans| eval::run_cpu(model, seqs, &plans, true))
            },
        );
        // Each group reduced as soon as it ran (a trace holds the states of one group).
        let free_errors = reduce_all(free_runs?, &reference, model, seqs);
        let free_steps = self.per_config * free.len() as u64;
        if !free.is_empty() {
            progress(free_steps, self.total);
        }
        let waiting_plans = waiting_plans?;
        let waiting_errors = match waiting.is_empty() {
            true => Vec::new(),
            false => Engine::Cpu.run_reduced(
                model,
                seqs,
                &waiting_plans,
                &|| Some(&reference),
                &mut |d, _| progress(free_steps + d, self.total),
            )?,
        };
        let errors = Self::in_order(configs, free_errors, waiting_errors);
        Ok((reference, errors))
    }

    /// On a GPU: the reference runs on its own thread (on the CPU, in rayon's pool) while
    /// the free configs run on the device, which reduces them as soon as the reference is
    /// there (`None` if it panicked: the panic is resumed after).
    fn first_beside(
        &self,
        engine: &Engine,
        configs: &[PrecisionConfig],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(Reference, Vec<ConfigErrors>), TraceError> {
        let (free, waiting) = Self::split(configs);
        let (model, seqs) = (self.model, self.seqs);
        let cell: OnceLock<Option<Reference>> = OnceLock::new();
        let reference = || cell.wait().as_ref();
        let errors = std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    reference::evaluate_with(model, seqs, self.histograms)
                }));
                let (value, panic) = match r {
                    Ok(r) => (Some(r), None),
                    Err(e) => (None, Some(e)),
                };
                let _ = cell.set(value);
                panic
            });
            let free_steps = self.per_config * free.len() as u64;
            let errors = (|| -> Result<_, TraceError> {
                let free_errors = self.run(engine, &free, None, &reference, &mut |d| {
                    progress(d, self.total)
                })?;
                let waiting_errors = match reference() {
                    Some(r) => self.run(
                        engine,
                        &waiting,
                        Some(&r.calibration),
                        &reference,
                        &mut |d| progress(free_steps + d, self.total),
                    )?,
                    None => Vec::new(),
                };
                Ok(Self::in_order(configs, free_errors, waiting_errors))
            })();
            if let Some(e) = handle.join().unwrap_or_else(Some) {
                std::panic::resume_unwind(e);
            }
            errors
        })?;
        let reference = cell
            .into_inner()
            .flatten()
            .expect("the reference was computed");
        Ok((reference, errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse_config_list;

    #[test]
    fn configs_run_one_per_turn_give_the_rows_of_one_turn() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let model = crate::lstm::load(
            dir.join("torch_bilstm.onnx").to_str().unwrap(),
            &crate::lstm::LoadOptions::default(),
        )
        .unwrap();
        let seqs = crate::lstm::npy::read_sequences(&dir.join("torch_bilstm.x.npy")).unwrap();
        let configs = parse_config_list("fx8,fp16,fx16,fx8,fp32").unwrap();
        let mut rows = Vec::new();
        let mut calls = Vec::new();
        for budget in [1, u64::MAX] {
            let mut seen = Vec::new();
            let t = run_in_turns(
                &Engine::Cpu,
                &model,
                &seqs,
                "x",
                &configs,
                &mut |d, n| seen.push((d, n)),
                budget,
            )
            .unwrap();
            assert_eq!(t.results.len(), 4, "fx8 listed twice runs once");
            let (e, d, s) = report::rows(&t, &model, 0.01);
            rows.push(format!("{e:?}{d:?}{s:?}"));
            calls.push(seen);
        }
        assert_eq!(rows[0], rows[1]);
        // Progress counts up to the same total, once per turn, and once per group in a first
        // turn that mixes configs with and without calibration (fp16, fp32 beside the
        // reference; then fx8, fx16).
        assert_eq!(calls[0].len(), 4);
        assert_eq!(calls[1].len(), 2);
        assert_eq!(calls[0].last(), calls[1].last());
    }

    #[test]
    fn a_trace_on_one_thread_gives_the_rows_of_many() {
        // On the CPU the reference and the configs without calibration share the pool
        // (`rayon::join`): with one thread nothing may wait inside the pool for the other
        // half (this would hang), and the rows do not depend on the thread count.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let path = dir.join("torch_lstm3.onnx");
        let model = crate::lstm::load(path.to_str().unwrap(), &Default::default()).unwrap();
        let seqs = crate::lstm::npy::read_sequences(&dir.join("torch_lstm3.x.npy")).unwrap();
        let configs = parse_config_list("fx8,fp16,fx16,bf16").unwrap();
        let rows = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let t =
                pool.install(|| run(&Engine::Cpu, &model, &seqs, "x", &configs, &mut |_, _| {}));
            format!("{:?}", report::rows(&t.unwrap(), &model, 0.01))
        };
        assert_eq!(rows(1), rows(3));
    }

    #[test]
    fn turns_reduced_on_the_device_give_the_rows_of_the_cpu() {
        // Every turn waits for the one reference the first turn's thread computes.
        let ctx = match GpuContext::new(AdapterChoice::Any) {
            Ok(ctx) => ctx,
            Err(e) if std::env::var_os("CI").is_some() => panic!("CI is set but {e}"),
            Err(e) => return crate::note!("skipping: {e}"),
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let path = dir.join("torch_lstm3.onnx");
        let model = crate::lstm::load(path.to_str().unwrap(), &Default::default()).unwrap();
        let seqs = crate::lstm::npy::read_sequences(&dir.join("torch_lstm3.x.npy")).unwrap();
        let configs = parse_config_list("fx8,fp16,fx16,fp32").unwrap();
        let gpu = Engine::Gpu(Box::new(ctx));
        let rows = |engine: &Engine, budget| {
            let t = run_in_turns(engine, &model, &seqs, "x", &configs, &mut |_, _| {}, budget);
            format!("{:?}", report::rows(&t.unwrap(), &model, 0.01))
        };
        assert_eq!(rows(&gpu, 1), rows(&Engine::Cpu, u64::MAX));
    }
}
