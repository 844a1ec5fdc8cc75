//! The CPU evaluator: runs a model on a batch of sequences at one or more precision configs.
//! fp32 is plain f32 math; other configs follow NUMERICS.md exactly: the integer datapath when
//! every format is fixed point, float emulation otherwise.
//!
//! Two implementations of the same arithmetic: the lane-batched engine ([`batch`], on the
//! register-blocked products of [`gemm`]; [`Cpu`] runs it under the [`driver`]) that every
//! command uses, and the per-sequence scalar loop ([`cell`], [`run_cpu_scalar`]) kept as the
//! plain reading of NUMERICS.md and as the baseline of `lstm-dse bench engine`. Both are
//! deterministic whatever the thread count.

pub mod amx;
mod backend;
pub(crate) mod batch;
mod bound;
pub mod calib;
pub mod cell;
mod exact;
mod fp32cell;
pub mod fused;
pub mod gemm;
mod gemm_kernel;
#[cfg(target_arch = "x86_64")]
mod gemm_simd;
#[cfg(target_arch = "x86_64")]
mod intcell;
#[cfg(target_arch = "x86_64")]
mod intcell_avx2;
pub mod intgemm;
pub mod intgemm8;
mod narrowcell;
#[cfg(target_arch = "x86_64")]
mod narrowcell_avx2;
#[cfg(target_arch = "x86_64")]
mod narrowcell_avx512;
mod packs;
mod pairs;
pub mod plan;
pub mod reference;

pub use backend::Cpu;
pub use batch::LayerOut;
pub use plan::{
    CalHist, Calibration, CellFormats, CellRange, DataTensor, LayerRange, Plan, WeightRanges,
};
pub use reference::Reference;

use crate::format::{Format, PrecisionConfig};
use crate::lstm::driver;
use crate::lstm::npy::Sequences;
use crate::lstm::{HeadActivation, HeadInput, Model};
use rayon::prelude::*;

/// Why an evaluation cannot run; `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Input(#[from] crate::lstm::ModelError),
    #[error("precision '{config}': {problem}")]
    Plan { config: String, problem: String },
    #[error("{input}: {got} features per step, but the model '{model}' expects {want}")]
    InputWidth {
        input: String,
        model: String,
        got: usize,
        want: usize,
    },
    #[error("{input}: {got} {what}, but '{model}' fixes them to {want} (its {by} has that size written in; export the model with dynamic axes to run other sizes)")]
    FixedSize {
        input: String,
        model: String,
        what: &'static str,
        got: usize,
        want: usize,
        by: String,
    },
    #[error(transparent)]
    Memory(#[from] crate::limits::LimitError),
    #[error("{input}: through '{model}', {problem}")]
    Overflow {
        input: String,
        model: String,
        problem: String,
    },
}

/// An error that may be a precision config refused when it was planned for the model
/// ([`EvalError::Plan`]: its sizes known, e.g. a gate accumulator past 64 bits), which the
/// commands name by the flag that gave the config; the errors of the stages that plan
/// configs (evaluation, trace, policies) say whether they are one.
pub trait PlanRefusal {
    fn is_plan_refusal(&self) -> bool;
}

impl PlanRefusal for EvalError {
    fn is_plan_refusal(&self) -> bool {
        matches!(self, EvalError::Plan { .. })
    }
}

/// The hidden and cell states of one layer for every sequence and step: `[N, T, D*H]` each,
/// forward direction first.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStates {
    pub h: Vec<f32>,
    pub c: Vec<f32>,
}

/// The result of one precision config over the batch.
#[derive(Debug, Clone)]
pub struct Run {
    pub config: PrecisionConfig,
    /// The last layer's hidden sequence, `[N, T, D*H]`.
    pub hidden: Vec<f32>,
    /// The head's output, `[N, T, O]` (`[N, O]` for a head on one vector per sequence), when
    /// the model has a head.
    pub output: Option<Vec<f32>>,
    /// Every layer's h and c, when asked for.
    pub states: Option<Vec<LayerStates>>,
    /// The resolved formats, `[layer][direction]`.
    pub formats: Vec<Vec<CellFormats>>,
}

/// One sequence's result: per layer (h, c) as `[T, D*H]`, and the head output `[T, O]` (or
/// `[O]`).
pub(crate) struct SeqOut {
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
    pub output: Option<Vec<f32>>,
}

/// Checks `seqs` against `model` before anything runs: the input width, the sizes a static
/// export fixes, the memory the run plans, and that no gate sum of the float lanes can
/// overflow ([`bound`]).
pub(crate) fn check_input(
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
) -> Result<(), EvalError> {
    if seqs.width != model.input_size() {
        return Err(EvalError::InputWidth {
            input: input_name.to_string(),
            model: model.name.clone(),
            got: seqs.width,
            want: model.input_size(),
        });
    }
    let fixed = [
        ("steps", seqs.steps, &model.fixed.steps),
        ("sequences", seqs.count, &model.fixed.batch),
    ];
    for (what, got, fixed) in fixed {
        if let Some((want, by)) = fixed {
            if got != *want {
                return Err(EvalError::FixedSize {
                    input: input_name.to_string(),
                    model: model.name.clone(),
                    what,
                    got,
                    want: *want,
                    by: by.clone(),
                });
            }
        }
    }
    crate::limits::check_memory(
        &format!(
            "{input_name}: {} sequence(s) x {} steps through '{}'",
            seqs.count, seqs.steps, model.name
        ),
        run_bytes(model, seqs.count, seqs.steps)
            .zip(plan_bytes(model, 1))
            .and_then(|(run, plan)| run.checked_add(plan)),
    )?;
    bound::check_gate_sums(model, seqs, input_name)
}

/// An estimate of the largest buffers of one run over `count` sequences of `steps` (checked
/// against `--max-memory` before anything runs, docs/FUZZING.md): per position, every layer
/// direction's input products of all steps, the float64 reference's and the lane's (4H
/// values of 8 bytes each), with their states, and the input with its quantized copy; and per
/// vector the head reads (every position, or one per sequence), each dense layer's outputs in
/// float64 and float32. A conservative figure: `lstm-dse infer` on `builtin:tiny` (two layers
/// of 32) with 1,000 x 400 steps peaks at 1.1 GB of resident memory, this says 1.7 GB; `None`
/// when it overflows.
pub fn run_bytes(model: &Model, count: usize, steps: usize) -> Option<u128> {
    let per_position = model
        .layers
        .iter()
        .try_fold(8 * model.input_size() as u128, |sum, l| {
            let units = (l.direction.count() as u128).checked_mul(l.hidden_size as u128)?;
            sum.checked_add(units.checked_mul(64)?)
        })?;
    let stack = crate::limits::product(&[per_position, count as u128, steps as u128])?;
    let Some(head) = &model.head else {
        return Some(stack);
    };
    let per_vector = (head.layers.iter())
        .try_fold(0u128, |sum, d| sum.checked_add(16 * d.output_size as u128))?;
    let vectors = crate::limits::product(&[count as u128, head.rows(steps) as u128])?;
    stack.checked_add(per_vector.checked_mul(vectors)?)
}

/// An upper bound of the bytes `configs` precision configs' plans of `model` hold
/// ([`Plan`]): per layer direction and config, the weights rounded (f32), as codes (i32) and
/// packed for the products (up to 8 bytes), and three activation tables of up to 2^16 entries
/// (f32 values and i32 codes: 1.5 MiB). A deep model's tables dominate (100 bidirectional
/// layers of 4 units: 300 MiB at one config; they were not counted, and a run peaked at 8
/// times its estimate).
pub fn plan_bytes(model: &Model, configs: usize) -> Option<u128> {
    const TABLES: u128 = 3 * (1 << 16) * 8;
    let cells: u128 = (model.layers.iter())
        .map(|l| l.direction.count() as u128)
        .sum();
    let per_config = (model.lstm_weights()?.checked_mul(16)?).checked_add(cells * TABLES)?;
    per_config.checked_mul(configs as u128)
}

/// Whether a config's formats depend on the calibration run (`fx<b>` without fraction bits).
pub fn needs_calibration(c: &PrecisionConfig) -> bool {
    [c.w, c.a, c.p, c.c]
        .iter()
        .any(|f| matches!(f, Format::Fixed { frac: None, .. }))
}

/// Measures the ranges of the float64 reference run over the batch (see [`Calibration`],
/// docs/NUMERICS.md §3); `hist` also records their distributions (for calibration rules other
/// than `max`). A caller that needs the reference too takes both from
/// [`reference::evaluate_with`].
pub fn calibrate(model: &Model, seqs: &Sequences, hist: bool) -> Calibration {
    reference::evaluate_with(model, seqs, hist).calibration
}

/// Whether any config's calibration rule needs the histograms (rules other than `max`).
pub fn needs_histograms(configs: &[PrecisionConfig]) -> bool {
    configs.iter().any(|c| c.cal != crate::format::CalRule::Max)
}

/// Checks the input against the model, calibrates when a config needs it, and resolves every
/// config into a [`Plan`]: the part shared by the CPU and GPU evaluators.
pub fn prepare(
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    configs: &[PrecisionConfig],
) -> Result<Vec<Plan>, EvalError> {
    let cal = prepare_calibration(model, seqs, input_name, configs)?;
    let weights = WeightRanges::of(model);
    configs
        .iter()
        .map(|&c| Plan::with_ranges(model, c, cal.as_ref(), &weights))
        .collect()
}

/// [`prepare`] without the plans: checks the input and calibrates when a config needs it, so
/// that a caller can build the plans a few at a time (`Plan::new`) and keep memory bounded.
pub fn prepare_calibration(
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    configs: &[PrecisionConfig],
) -> Result<Option<Calibration>, EvalError> {
    check_input(model, seqs, input_name)?;
    if !configs.iter().any(needs_calibration) {
        return Ok(None);
    }
    Ok(Some(calibrate(model, seqs, needs_histograms(configs))))
}

/// Evaluates `model` on `seqs` at every config in `configs` on the CPU (results in the same
/// order). `input_name` names the input in errors; `keep_states` keeps every layer's h and c.
pub fn evaluate(
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    configs: &[PrecisionConfig],
    keep_states: bool,
) -> Result<Vec<Run>, EvalError> {
    let plans = prepare(model, seqs, input_name, configs)?;
    Ok(run_cpu(model, seqs, &plans, keep_states))
}

/// The CPU kernels in use, for benchmark tables: the float products' instruction set, with
/// `+amx` when integer products run on AMX tiles.
pub fn kernels_name() -> String {
    let amx = if amx::available() { "+amx" } else { "" };
    format!("{}{amx}", gemm::isa_name())
}

/// Runs prepared plans on the CPU with the lane-batched engine through the [`driver`]
/// (rayon inside each product and across plans).
pub fn run_cpu(model: &Model, seqs: &Sequences, plans: &[Plan], keep_states: bool) -> Vec<Run> {
    run_cpu_with(model, seqs, plans, keep_states, &mut |_, _| {})
}

/// [`run_cpu`] telling `progress(done, total)` the lane-steps done after each layer of each
/// chunk of lanes.
pub fn run_cpu_with(
    model: &Model,
    seqs: &Sequences,
    plans: &[Plan],
    keep_states: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Vec<Run> {
    let Ok(runs) = driver::run_configs(&Cpu, model, seqs, plans, keep_states, progress);
    runs
}

/// The per-sequence scalar evaluator (the step of NUMERICS.md read literally, one sequence
/// and one row at a time), rayon-parallel over (plan, sequence): the same bits as
/// [`run_cpu`], far slower; kept as a baseline and a second implementation.
pub fn run_cpu_scalar(
    model: &Model,
    seqs: &Sequences,
    plans: &[Plan],
    keep_states: bool,
) -> Vec<Run> {
    let outs: Vec<SeqOut> = (0..plans.len() * seqs.count)
        .into_par_iter()
        .map(|task| {
            let (p, n) = (task / seqs.count, task % seqs.count);
            run_sequence(model, &plans[p], seqs.sequence(n), seqs.steps)
        })
        .collect();
    assemble(model, plans, outs, seqs.count, keep_states)
}

pub(crate) fn formats_of(plan: &Plan) -> Vec<Vec<CellFormats>> {
    plan.layers
        .iter()
        .map(|cells| cells.iter().map(|c| c.formats).collect())
        .collect()
}

/// Gathers per-(plan, sequence) results (plan-major order) into one [`Run`] per plan.
pub(crate) fn assemble(
    model: &Model,
    plans: &[Plan],
    outs: Vec<SeqOut>,
    count: usize,
    keep_states: bool,
) -> Vec<Run> {
    let mut runs = Vec::with_capacity(plans.len());
    for (p, chunk) in plans.iter().zip(outs.chunks(count.max(1))) {
        let last = model.layers.len() - 1;
        let hidden = chunk
            .iter()
            .flat_map(|o| o.layers[last].0.iter().copied())
            .collect();
        let output = model.head.as_ref().map(|_| {
            chunk
                .iter()
                .flat_map(|o| o.output.iter().flatten().copied())
                .collect()
        });
        let states = keep_states.then(|| {
            (0..=last)
                .map(|l| LayerStates {
                    h: chunk
                        .iter()
                        .flat_map(|o| o.layers[l].0.iter().copied())
                        .collect(),
                    c: chunk
                        .iter()
                        .flat_map(|o| o.layers[l].1.iter().copied())
                        .collect(),
                })
                .collect()
        });
        runs.push(Run {
            config: p.config,
            hidden,
            output,
            states,
            formats: formats_of(p),
        });
    }
    runs
}

/// Runs every layer (and the head) over one sequence `[T, I]` with the scalar cell.
fn run_sequence(model: &Model, plan: &Plan, seq: &[f32], steps: usize) -> SeqOut {
    let mut x = seq.to_vec();
    let mut width = model.input_size();
    let mut layers = Vec::with_capacity(model.layers.len());
    for (layer, cells) in model.layers.iter().zip(&plan.layers) {
        let hsz = layer.hidden_size;
        let stride = hsz * layer.direction.count();
        let mut h_out = vec![0.0f32; steps * stride];
        let mut c_out = vec![0.0f32; steps * stride];
        for (k, cp) in cells.iter().enumerate() {
            let io = cell::CellIo {
                xs: &x,
                input: width,
                hidden: hsz,
                steps,
                reversed: layer.direction.is_reversed(k),
                offset: k * hsz,
                stride,
            };
            cell::run(cp, &io, &mut h_out, &mut c_out);
        }
        x = h_out.clone();
        width = stride;
        layers.push((h_out, c_out));
    }
    let output = apply_head(model, &x, steps);
    SeqOut { layers, output }
}

/// The dense head over a `[T, W]` hidden sequence of the last layer: `[T, O]` for a head on
/// every step, `[1, O]` for one on the last step or the final states (plain f32, NUMERICS.md
/// section 8, layer after layer), or `None` without a head.
pub(crate) fn apply_head(model: &Model, x: &[f32], steps: usize) -> Option<Vec<f32>> {
    model.head.as_ref().map(|head| {
        let mut v = head_rows(model, head.input, x, steps).into_owned();
        for d in &head.layers {
            v = dense_f32(d, &v);
        }
        v
    })
}

/// One dense layer over rows of `d.input_size`: `activation(W x + bias)` per row, each sum in
/// k order, then the bias (NUMERICS.md section 8).
fn dense_f32(d: &crate::lstm::Dense, x: &[f32]) -> Vec<f32> {
    let width = d.input_size;
    let rows = x.len() / width.max(1);
    let mut y = vec![0.0f32; rows * d.output_size];
    for (h, row) in x.chunks(width).zip(y.chunks_mut(d.output_size)) {
        for (o, out) in row.iter_mut().enumerate() {
            let w = &d.weight[o * width..(o + 1) * width];
            *out = w.iter().zip(h).fold(0.0f32, |s, (a, b)| s + a * b) + d.bias[o];
        }
        match d.activation {
            HeadActivation::None => {}
            HeadActivation::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
            HeadActivation::Tanh => row
                .iter_mut()
                .for_each(|v| *v = crate::format::detmath::tanh(*v)),
            HeadActivation::Sigmoid => row
                .iter_mut()
                .for_each(|v| *v = crate::format::detmath::sigmoid(*v)),
            HeadActivation::Softmax => {
                let m = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                row.iter_mut().for_each(|v| *v = (*v - m).exp());
                let s: f32 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= s);
            }
        }
    }
    y
}

/// The hidden vectors a head reads from a `[T, W]` sequence, as rows of `W`: every step, the
/// last step, or each direction's final state (forward at step T-1, reverse at step 0).
pub(crate) fn head_rows<'a, T: Copy>(
    model: &Model,
    input: HeadInput,
    x: &'a [T],
    steps: usize,
) -> std::borrow::Cow<'a, [T]> {
    use std::borrow::Cow;
    let width = model.hidden_output_size();
    if steps == 0 || x.len() < steps * width {
        return Cow::Borrowed(&[]);
    }
    let row = |t: usize| &x[t * width..(t + 1) * width];
    match input {
        HeadInput::EveryStep => Cow::Borrowed(&x[..steps * width]),
        HeadInput::LastStep => Cow::Borrowed(row(steps - 1)),
        HeadInput::FinalState => {
            let Some(layer) = model.layers.last() else {
                return Cow::Borrowed(&[]);
            };
            let h = layer.hidden_size;
            let picked = (0..layer.direction.count())
                .flat_map(|k| {
                    let t = if layer.direction.is_reversed(k) {
                        0
                    } else {
                        steps - 1
                    };
                    row(t)[k * h..(k + 1) * h].iter().copied()
                })
                .collect();
            Cow::Owned(picked)
        }
    }
}
