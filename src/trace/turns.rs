//! A trace in turns: the configs of a trace are planned and run in groups that fit a memory
//! budget; the first turn runs the float64 reference (also the calibration run) beside the
//! configs that need no calibration, the others wait for it. Results keep the order of the
//! configs whatever the grouping and the thread count.

use super::{reduce_all, ConfigErrors, Engine, Trace, TraceError};
use crate::format::PrecisionConfig;
use crate::lstm::eval::{self, reference, EvalError, Reference};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use rayon::prelude::*;
use std::sync::OnceLock;

/// The configs evaluated together (their plans and states) stay below this; more configs
/// run in turns.
pub(super) const TURN_BUDGET_BYTES: u64 = 1 << 30;

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

/// An estimate of a trace's largest memory: the run's own buffers ([`eval::run_bytes`]), the
/// configs of one turn while they run, and what every config keeps to the end (its errors per
/// sequence, layer, direction and step, and its head output), which grows with the number of
/// precisions however they are grouped in turns.
fn trace_bytes(
    model: &Model,
    seqs: &Sequences,
    configs: usize,
    reduced: bool,
    budget: u64,
) -> Option<u128> {
    let run = eval::run_bytes(model, seqs.count, seqs.steps)?;
    let one = config_bytes(model, seqs, reduced) as u128;
    let turn = one
        .checked_mul(configs as u128)?
        .min(one.max(budget as u128));
    let rows: u128 = (model.layers.iter())
        .map(|l| l.direction.count() as u128)
        .sum::<u128>()
        .checked_mul(seqs.count as u128)?
        .checked_mul(seqs.steps as u128)?;
    // Two error accumulators a row, and the report's one flag a row.
    let per_row = 2 * std::mem::size_of::<super::stats::ErrorStats>() as u128 + 1;
    let output = model.head.as_ref().map_or(Some(0), |h| {
        crate::limits::product(&[
            4,
            h.output_size() as u128,
            h.rows(seqs.steps) as u128,
            seqs.count as u128,
        ])
    })?;
    let kept = rows.checked_mul(per_row)?.checked_add(output)?;
    run.checked_add(turn)?
        .checked_add(kept.checked_mul(configs as u128)?)?
        .checked_add(eval::plan_bytes(model, configs)?)
}

pub(super) fn run_in_turns(
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
    let reduced = engine.reduces_on_device();
    crate::limits::check_memory(
        &format!(
            "{input_name}: {} sequence(s) x {} steps through '{}' at {} precision(s)",
            seqs.count,
            seqs.steps,
            model.name,
            all.len()
        ),
        trace_bytes(model, seqs, all.len(), reduced, budget),
    )
    .map_err(EvalError::from)?;
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
    use super::super::{report, run};
    use super::*;
    use crate::format::parse_config_list;
    use crate::gpu::{AdapterChoice, GpuContext};

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
        // Progress counts up to the same total, never back: at least once per turn, and once
        // per group in a first turn that mixes configs with and without calibration (fp16,
        // fp32 beside the reference; then fx8, fx16), and after each layer of the configs
        // that run on their own.
        assert!(calls[0].len() >= 4, "{:?}", calls[0]);
        assert!(calls[1].len() >= 2, "{:?}", calls[1]);
        for seen in &calls {
            assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
            let &(done, total) = seen.last().expect("progress");
            assert_eq!(done, total, "{seen:?}");
        }
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
