//! `lstm-dse bench trace`: the GPU lanes and the CPU evaluator, side by side in one run, on
//! stated workloads. Plans (quantized weights, tables) are built once outside the timing; each
//! timed run covers uploading, all steps of all layers and reading the states back.

use super::Engine;
use crate::format::parse_config_list;
use crate::lstm::builtin::{self, SplitMix64};
use crate::lstm::eval;
use crate::lstm::npy::Sequences;
use crate::lstm::{Cell, Direction, Layer, Model};
use std::time::Instant;

/// One benchmark workload.
pub struct Workload {
    pub name: String,
    pub model: Model,
    pub configs: String,
    pub sequences: usize,
    pub steps: usize,
}

impl Workload {
    pub fn lanes(&self) -> usize {
        self.sequences * parse_config_list(&self.configs).map_or(0, |c| c.len())
    }
}

/// One measured (workload, engine) pair.
pub struct Measurement {
    pub workload: String,
    pub engine: String,
    pub lanes: usize,
    pub steps: usize,
    pub median_s: f64,
    pub lane_steps_per_s: f64,
    pub gmac_per_s: f64,
}

/// A GNMT-sized layer: 1024 inputs, 1024 hidden, seeded PyTorch-style weights.
fn gnmt_layer() -> Model {
    let (i, h) = (1024, 1024);
    let mut rng = SplitMix64::new(1024);
    let bound = 1.0 / (h as f32).sqrt();
    let cell = Cell {
        w: rng.fill(4 * h * i, bound),
        r: rng.fill(4 * h * h, bound),
        b_ih: rng.fill(4 * h, bound),
        b_hh: rng.fill(4 * h, bound),
        peephole: None,
        h0: None,
        c0: None,
    };
    Model {
        name: "gnmt-layer (1024 -> 1024)".into(),
        layers: vec![Layer {
            input_size: i,
            hidden_size: h,
            direction: Direction::Forward,
            cells: vec![cell],
        }],
        head: None,
        fixed: Default::default(),
        embedding: None,
    }
}

/// The stated workloads: a small 2-layer model with 64 lanes, and a GNMT-sized layer with 64
/// lanes (`quick` shrinks both).
pub fn workloads(quick: bool) -> Vec<Workload> {
    let tiny = builtin::build("tiny").expect("built-in tiny exists");
    vec![
        Workload {
            name: "tiny (16 -> 32 -> 32)".into(),
            model: tiny,
            configs: "fp32;fx8;fx12;fx16;fp16;bf16;fp8e4m3;w=fx8,a=fx8,c=fx16".into(),
            sequences: 8,
            steps: if quick { 8 } else { 64 },
        },
        Workload {
            name: "gnmt-layer (1024 -> 1024)".into(),
            model: gnmt_layer(),
            configs: if quick {
                "fx8;fp16".into()
            } else {
                "fp32;fx8;fx16;fp16".into()
            },
            sequences: if quick { 2 } else { 16 },
            steps: if quick { 2 } else { 8 },
        },
    ]
}

/// Times `reps` runs of `w` on `engine` (after one untimed warm-up run).
pub fn measure(
    engine: &Engine,
    w: &Workload,
    reps: usize,
) -> Result<Measurement, super::TraceError> {
    let configs = parse_config_list(&w.configs).map_err(|e| {
        super::TraceError::Eval(eval::EvalError::Plan {
            config: w.configs.clone(),
            problem: e.to_string(),
        })
    })?;
    let mut rng = SplitMix64::new(7);
    let width = w.model.input_size();
    let data = (0..w.sequences * w.steps * width)
        .map(|_| rng.normal())
        .collect();
    let seqs = Sequences::new(&w.name, [w.sequences, w.steps, width], data, true)
        .map_err(eval::EvalError::from)?;
    let plans = eval::prepare(&w.model, &seqs, &w.name, &configs)?;
    let median = median_time(reps, || {
        engine
            .run(&w.model, &seqs, &plans, &mut |_, _| {})
            .map(drop)
    })?;
    let lanes = plans.len() * w.sequences;
    let lane_steps = (lanes * w.steps) as f64;
    Ok(Measurement {
        workload: w.name.clone(),
        engine: engine.name(),
        lanes,
        steps: w.steps,
        median_s: median,
        lane_steps_per_s: lane_steps / median,
        gmac_per_s: lane_steps * w.model.macs_per_step() as f64 / median / 1e9,
    })
}

/// One row of `lstm-dse bench engine`: a lane kind on one engine.
pub struct EngineRow {
    pub engine: String,
    pub kind: String,
    /// Precision configs (or policies) run at once; GMAC/s counts all of them.
    pub configs: usize,
    pub median_s: f64,
    pub gmac_per_s: f64,
}

/// The precisions of the 8-precision trace of the engine benchmark.
pub const TRACE8: &str = "fx16;fx12;fx10;fx8;fx6;fp16;bf16;fp8e4m3";

/// Most timed repetitions `bench` takes (`--reps`): a median of a million runs is as good as
/// any more, and each run keeps one time.
pub const MAX_REPS: usize = 1_000_000;

/// Checks `--reps` before anything is printed or allocated: 1 to [`MAX_REPS`].
pub fn check_reps(reps: usize) -> Result<(), String> {
    if (1..=MAX_REPS).contains(&reps) {
        Ok(())
    } else {
        Err(format!(
            "--reps {reps}: give 1 to {MAX_REPS} timed repetitions"
        ))
    }
}

/// The median of `reps` timed calls of `run`, after one untimed warm-up call.
fn median_time<E>(reps: usize, mut run: impl FnMut() -> Result<(), E>) -> Result<f64, E> {
    let reps = reps.max(1);
    run()?;
    // Grown as runs finish: `reps` is checked by the command, not trusted here.
    let mut times = Vec::with_capacity(reps.min(1024));
    for _ in 0..reps {
        let start = Instant::now();
        run()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Checks a lane kind of [`engine_row`] without running it (so a bad one is refused before
/// any row is printed).
pub fn check_lane(kind: &str) -> Result<(), String> {
    match kind {
        "trace8" | "reference" | "policy" | "scalar:policy" => Ok(()),
        k => parse_config_list(k.strip_prefix("scalar:").unwrap_or(k))
            .map(drop)
            .map_err(|e| e.to_string()),
    }
}

/// Times `reps` runs (after one warm-up) of one lane kind: a precision config string (plans
/// built outside the timing), `trace8` (the whole `trace` stage: the float64 reference, which
/// is also the calibration run, and the eight precisions of [`TRACE8`]), `reference` (the
/// float64 reference alone), `policy` (one closed-loop fx8/fx16 causal policy
/// per sequence, reference included), `scalar:<config>` (the per-sequence scalar evaluator,
/// for comparison; CPU only) or `scalar:policy` (`policy` on the per-lane scalar simulation,
/// reference included; CPU only).
pub fn engine_row(
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    kind: &str,
    reps: usize,
) -> Result<EngineRow, String> {
    let macs = (seqs.count * seqs.steps) as f64 * model.macs_per_step() as f64;
    let configs;
    let median_s;
    if kind == "trace8" {
        let list = parse_config_list(TRACE8).map_err(|e| e.to_string())?;
        configs = list.len() + 1;
        median_s = median_time(reps, || {
            super::run(engine, model, seqs, "input", &list, &mut |_, _| {})
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
    } else if kind == "reference" {
        // The pass a trace runs before its candidates: the float64 reference, which is also
        // the calibration run (max ranges).
        configs = 1;
        median_s = median_time(reps, || {
            drop(eval::reference::evaluate(model, seqs));
            Ok::<(), String>(())
        })?;
    } else if kind == "policy" || kind == "scalar:policy" {
        let levels = parse_config_list("fx8,fx16").map_err(|e| e.to_string())?;
        let spec = crate::dynamic::PolicySpec::new(
            levels,
            crate::dynamic::Metric::MaxAbs,
            crate::dynamic::Timing::Causal,
        )
        .map_err(|e| e.to_string())?;
        let policies = [crate::dynamic::Policy {
            thresholds: vec![0.05],
        }];
        // The policy lanes and the fp32 reference they are judged against.
        configs = 2;
        median_s = median_time(reps, || {
            if kind == "scalar:policy" {
                let (levels, _) = crate::dynamic::prepare_levels(model, seqs, "input", &spec, None)
                    .map_err(|e| e.to_string())?;
                let sim =
                    crate::dynamic::simulate_scalar(model, seqs, &spec, &levels, &policies, &|| {});
                drop(sim);
                return Ok(());
            }
            crate::dynamic::run(
                engine,
                model,
                seqs,
                "input",
                &spec,
                &policies,
                None,
                &|_, _| {},
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        })?;
    } else {
        let (scalar, config) = match kind.strip_prefix("scalar:") {
            Some(c) => (true, c),
            None => (false, kind),
        };
        let list = parse_config_list(config).map_err(|e| e.to_string())?;
        let plans = eval::prepare(model, seqs, "input", &list).map_err(|e| e.to_string())?;
        configs = plans.len();
        median_s = median_time(reps, || {
            match (scalar, engine) {
                (true, _) => drop(eval::run_cpu_scalar(model, seqs, &plans, false)),
                (false, Engine::Cpu) => drop(eval::run_cpu(model, seqs, &plans, false)),
                (false, _) => drop(
                    engine
                        .run(model, seqs, &plans, &mut |_, _| {})
                        .map_err(|e| e.to_string())?,
                ),
            }
            Ok::<(), String>(())
        })?;
    }
    let name = match engine {
        Engine::Cpu => format!("cpu-{}", eval::kernels_name()),
        Engine::Gpu(ctx) => ctx.adapter.name.replace(',', " "),
    };
    Ok(EngineRow {
        engine: name,
        kind: kind.to_string(),
        configs,
        median_s,
        gmac_per_s: macs * configs as f64 / median_s / 1e9,
    })
}

/// The engine benchmark's built-in workload: one seeded 1024 -> 1024 layer, 16 sequences x 50
/// steps of seeded normal inputs.
pub fn default_engine_workload() -> (Model, Sequences) {
    let model = gnmt_layer();
    let (n, t, i) = (16, 50, model.input_size());
    let mut rng = SplitMix64::new(7);
    let data = (0..n * t * i).map(|_| rng.normal()).collect();
    let seqs = Sequences::new("input", [n, t, i], data, true).expect("finite seeded input");
    (model, seqs)
}
