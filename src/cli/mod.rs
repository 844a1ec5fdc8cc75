//! The command line: subcommands and their flags (clap derive). Parsing only; `commands` runs them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod model;
pub use model::{GenInputArgs, InferArgs, LoadArgs, ModelArgs, RangesArgs, What};

/// Design-space exploration for LSTM inference accelerators: which precision, how many tiles
/// and cores, and what it costs.
#[derive(Debug, Parser)]
#[command(name = "lstm-dse", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Size limits checked before large allocations (docs/FUZZING.md, README "Limits").
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Most design points per sweep (also values per range, policies per threshold grid).
    #[arg(long, global = true, value_name = "N", default_value_t = crate::limits::DEFAULT_MAX_POINTS)]
    pub max_points: u64,
    /// Most memory one run may plan to use (estimated before allocating): 8G, 512M, bytes.
    #[arg(long, global = true, value_name = "SIZE", default_value = "8G")]
    pub max_memory: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a model on input sequences at one precision and write the hidden states or outputs.
    Infer(InferArgs),
    /// List the built-in benchmark models.
    Models,
    /// Print a model's layers and sizes.
    Inspect(ModelArgs),
    /// Every tensor's range on an input batch (max and percentiles of |v|) and the fixed-point
    /// format (fraction bits) each precision config gives it under its calibration rule.
    Ranges(RangesArgs),
    /// Write seeded random input sequences (standard normal) that fit a model.
    GenInput(GenInputArgs),
    /// List the GPU adapters wgpu can use (honours WGPU_BACKEND and WGPU_ADAPTER_NAME).
    Devices,
    /// Evaluate many precisions at once (GPU lanes) and write error and precision traces.
    Trace(TraceArgs),
    /// Simulate dynamic precision policies (levels chosen per step from cell-state change),
    /// closed-loop, for a grid of thresholds; write policies.csv.
    Dynamic(DynamicArgs),
    /// DPRed per-group precision: group widths of weights (static) and activations (dynamic)
    /// and the off-chip footprint they allow; writes groups.csv.
    Groups(GroupsArgs),
    /// Run a sweep file: every (model, precision option, architecture point) costed, written to
    /// results.csv, reduced to a Pareto front (front.csv, front.svg).
    Sweep(SweepArgs),
    /// Combine the outputs of sharded sweep runs into the results of a single run.
    Merge(MergeArgs),
    /// The non-dominated rows of any results CSV for chosen objectives.
    Pareto(crate::pareto::ParetoArgs),
    /// Benchmarks (GPU lanes against the CPU evaluator).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Cost one accelerator design point: cycles, latency, energy, area (docs/MODEL.md).
    Model(ModelCostArgs),
    /// Progress of a `sweep --slurm` run: shards done, running, pending, failed.
    Status(StatusArgs),
    /// Write report.html for a sweep directory: the front in every pair of objectives, the
    /// front table, the precision stage over time, the spec and provenance (self-contained).
    Report(ReportArgs),
    /// SVG figures of a sweep or trace directory.
    #[command(subcommand)]
    Plot(PlotCommand),
    /// Run one accelerator design point through the event-level reference simulator (same
    /// inputs as `model`) and compare its cycles with the closed-form model.
    Simulate(ModelCostArgs),
}

#[derive(Debug, Args)]
pub struct ModelCostArgs {
    /// Architecture description (TOML), e.g. sweeps/arch/epur.toml.
    #[arg(long, value_name = "ARCH.toml")]
    pub arch: std::path::PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Override an architecture field, e.g. `--set compute.units=8` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Fixed precision of the workload when no policy is given (weights and activations).
    #[arg(long, default_value = "fx16", value_name = "CONFIG")]
    pub precision: String,
    /// Measured precision behaviour: a policies.csv written by `lstm-dse dynamic`.
    #[arg(long, value_name = "policies.csv", requires = "policy")]
    pub policies: Option<std::path::PathBuf>,
    /// Which policy of --policies to cost.
    #[arg(long, value_name = "K", requires = "policies")]
    pub policy: Option<u64>,
    /// Measured DPRed group widths: a groups.csv written by `lstm-dse groups`; off-chip traffic
    /// and footprint shrink by its ratios (zero-bitmap encoding).
    #[arg(long, value_name = "groups.csv", requires = "group_size")]
    pub groups: Option<std::path::PathBuf>,
    /// Which group size of --groups to use.
    #[arg(long, value_name = "G", requires = "groups")]
    pub group_size: Option<usize>,
    /// Steps per sequence.
    #[arg(long, default_value_t = 100)]
    pub seq_len: usize,
    /// Sequences in flight (batch).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Baseline architecture for speedup / energy saving, costed at fixed --precision.
    #[arg(long, value_name = "ARCH.toml")]
    pub baseline: Option<std::path::PathBuf>,
    /// Print one CSV row (with header) instead of the summary block.
    #[arg(long)]
    pub csv: bool,
}

/// Where lanes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// A hardware GPU if there is one, otherwise the CPU evaluator (with a notice).
    Auto,
    /// Any GPU adapter, including software ones (lavapipe); an error if there is none.
    Gpu,
    /// The CPU evaluator.
    Cpu,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input sequences: float32 .npy of shape [T, I] or [N, T, I]; for a model with an
    /// embedding, int64 or int32 token ids of shape [T] or [N, T].
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Candidate precision configs: "fp32,fx16,fx12,fx8" or, with roles, separated by ';'
    /// ("w=fx8,a=fx8;w=fx16,a=fx16"). Errors are measured against a float64 reference.
    #[arg(long, value_name = "LIST")]
    pub precisions: String,
    /// Output directory for errors.csv, cell_delta.csv and summary.csv.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Largest per-step hidden error (max abs, unitless) a precision may make and still count
    /// as sufficient for that step.
    // A negative value is read as a value, so that it is refused as one.
    #[arg(long, default_value_t = 0.01, value_parser = positive_f32, allow_negative_numbers = true)]
    pub tolerance: f32,
    /// No progress bar, no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// GPU trace lanes and the CPU evaluator side by side on stated workloads.
    Trace(BenchTraceArgs),
    /// GMAC/s of every lane kind on one model and input (tools/bench_onnxruntime.py puts
    /// onnxruntime beside it).
    Engine(BenchEngineArgs),
}

#[derive(Debug, Args)]
pub struct BenchEngineArgs {
    /// Model, with --input (give neither for the built-in workload: one seeded 1024 -> 1024
    /// LSTM layer on 16 seeded sequences x 50 steps).
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub model: Option<String>,
    #[command(flatten)]
    pub settings: LoadArgs,
    /// Input `.npy` for --model (the two go together; neither: the built-in workload).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Lane kinds, separated as `trace --precisions` separates configs (by `;` or spaces, or by
    /// commas when no kind names a role: `fp32,fx8,trace8`; `w=bf16,a=fp8e4m3;fx8`): precision
    /// configs (`fp32`, `fx8`, `fx8,cal=mse`, ...), `trace8`,
    /// `policy`, `reference` (the float64 reference alone, which is also the calibration run
    /// of every trace), `scalar:<config>` (the per-sequence scalar evaluator) or
    /// `scalar:policy` (`policy` on the per-lane scalar simulation).
    #[arg(long, default_value = "fp32,fp16,bf16,fx16,fx8,trace8,policy")]
    pub lanes: String,
    /// Timed repetitions (the median is reported), 1 to 1,000,000.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Engines to measure: cpu, gpu (any adapter, lavapipe included) or both.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CSV instead of a markdown table.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct BenchTraceArgs {
    /// Timed repetitions per workload and device (the median is reported), 1 to 1,000,000.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Smaller workloads (a smoke run, not for quoting).
    #[arg(long)]
    pub quick: bool,
}

/// When a measured cell-state change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimingArg {
    /// The change measured at step t picks the precision of step t+1 (realisable in hardware).
    Causal,
    /// Step t is redone at the precision its own change asks for (an upper bound).
    Oracle,
}

#[derive(Debug, Args)]
pub struct DynamicArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input sequences: float32 .npy of shape [T, I] or [N, T, I]; for a model with an
    /// embedding, int64 or int32 token ids of shape [T] or [N, T].
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Precision levels, lowest first, ordered by width: any configs, e.g. "fx8,fx16",
    /// "fp8e4m3,fp16", "fx8;bf16;fp32" (";" between configs that name roles or options).
    /// Nested fixed-point levels drop low bits of the highest level's formats; other sets run
    /// each level as its own config with the state carried as values (NUMERICS.md §11).
    #[arg(long, value_name = "LIST")]
    pub levels: String,
    /// The measure of the change Δc = c_t − c_{t−1} over a layer direction's units: max_abs,
    /// mean_abs, frac_above:<e> (fraction of units with |Δc| > e) or rel_max_abs:<eps>
    /// (max |Δc| / (max |c_{t−1}| + eps): relative to the state's magnitude).
    #[arg(long, default_value = "max_abs")]
    pub metric: String,
    /// Causal timing: the level of the first step, before any change is measured: high, low
    /// or a level index.
    #[arg(long, default_value = "high")]
    pub start: String,
    /// Policies, comma-separated; each has one threshold per level boundary, '/'-separated.
    /// A threshold may be a number >= 0 (inf allowed), start:stop:count or log:start:stop:count
    /// (ranges expand to a grid). A step runs at the level = number of thresholds its
    /// metric reaches.
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub thresholds: String,
    #[arg(long, value_enum, default_value_t = TimingArg::Causal)]
    pub timing: TimingArg,
    /// Output directory for policies.csv (and the trace of --trace-policy).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Class labels, float32 .npy [N] (class of the last step) or [N, T]: adds task accuracy.
    #[arg(long, value_name = "Y.npy")]
    pub labels: Option<PathBuf>,
    /// Also write policy_<K>_trace.csv: the per-step metric, level and errors of policy K.
    #[arg(long, value_name = "K")]
    pub trace_policy: Option<usize>,
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// No progress bar, no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input sequences: float32 .npy of shape [T, I] or [N, T, I]; for a model with an
    /// embedding, int64 or int32 token ids of shape [T] or [N, T].
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Group sizes (values per group), comma-separated.
    #[arg(long, default_value = "16,32,64,128,256", value_name = "LIST")]
    pub group_sizes: String,
    /// The base fixed-point precision the groups compress (e.g. fx16, fx8).
    #[arg(long, default_value = "fx16", value_name = "CONFIG")]
    pub base: String,
    /// Where the base-precision run that produces the activations executes.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Output directory for groups.csv.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The sweep file `lstm-dse sweep` runs when none is named, read relative to the current
/// directory (the repository root: it names files under models/ and sweeps/arch/).
pub const DEFAULT_SWEEP: &str = "sweeps/quick.toml";

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep file [default: sweeps/quick.toml, read relative to the current directory:
    /// run from the repository root].
    #[arg(value_name = "SWEEP.toml")]
    pub spec: Option<PathBuf>,
    /// Output directory (default: results/<name of the sweep>; results/<name>-smoke with
    /// --smoke, so a smoke run never replaces the real results).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Finish an interrupted run (refused when the spec changed).
    #[arg(long)]
    pub resume: bool,
    /// Run only the points with index = i mod N, e.g. --shard 0/4 (combine with `merge`).
    #[arg(long, value_name = "i/N")]
    pub shard: Option<String>,
    /// Threads for the architecture stage (the results do not depend on it).
    #[arg(long, value_name = "J")]
    pub jobs: Option<usize>,
    /// Cache of precision results, keyed by a content hash of model, input and settings.
    #[arg(long, default_value = ".lstm-dse-cache", value_name = "DIR")]
    pub cache: PathBuf,
    /// A reduced run (two values per range, generated inputs of few sequences, one policy): to
    /// check a sweep file (a workload.input file runs whole).
    #[arg(long)]
    pub smoke: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Run only the precision stage (filling --cache) and stop: phase 1 of a cluster run.
    #[arg(long, conflicts_with_all = ["shard", "slurm"])]
    pub precision_only: bool,
    /// Run on SLURM: write batch scripts under OUT/slurm/ for the precision stage (once), a job
    /// array of --shards shards (each with --resume) and a merge job, and submit them with
    /// sbatch (docs/CLUSTER.md).
    #[arg(long, requires = "shards", conflicts_with_all = ["shard", "resume"])]
    pub slurm: bool,
    /// With --slurm: the number of shards (array tasks).
    #[arg(long, value_name = "N", requires = "slurm")]
    pub shards: Option<usize>,
    /// With --slurm: the partition of every job.
    #[arg(long, value_name = "P", requires = "slurm")]
    pub partition: Option<String>,
    /// With --slurm: the time limit of each job (SLURM syntax: MM, HH:MM:SS, D-HH:MM, ...).
    #[arg(long, value_name = "T", requires = "slurm")]
    pub time: Option<String>,
    /// With --slurm: write and print the scripts, submit nothing.
    #[arg(long, requires = "slurm")]
    pub dry_run: bool,
}

impl SweepArgs {
    /// The sweep file named, or [`DEFAULT_SWEEP`].
    pub fn spec_file(&self) -> &std::path::Path {
        self.spec
            .as_deref()
            .unwrap_or(std::path::Path::new(DEFAULT_SWEEP))
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The output directory of a `sweep --slurm` run.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Resubmit the failed or pre-empted shards (they continue with --resume) and a new merge
    /// job after them.
    #[arg(long)]
    pub resubmit: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard output directories.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where the merged results go.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A sweep output directory (results.csv, front.csv, spec.resolved.toml).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Which input sequence the precision-stage plots show (0-based).
    #[arg(long, default_value_t = 0)]
    pub sequence: usize,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlotCommand {
    /// Per-step error of every precision over a sequence, and for dynamic policies the
    /// cell-state change with the level chosen per step (a timeline).
    Trace(PlotTraceArgs),
    /// The Pareto front over two objectives, with colour and size for a third and fourth.
    Front(PlotFrontArgs),
}

#[derive(Debug, Args)]
pub struct PlotTraceArgs {
    /// A sweep output directory, a `trace --out` directory (errors.csv) or a `dynamic --out`
    /// directory with policy_<K>_trace.csv files.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Which sequence (0-based).
    #[arg(long, default_value_t = 0)]
    pub sequence: usize,
    /// Output SVG (default: DIR/trace_seq<K>.svg).
    #[arg(long, value_name = "FILE.svg")]
    pub out: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PlotFrontArgs {
    /// A sweep output directory (its front.csv and objectives).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Column on the x axis (default: the first objective).
    #[arg(long)]
    pub x: Option<String>,
    /// Column on the y axis (default: the second objective).
    #[arg(long)]
    pub y: Option<String>,
    /// Column shown as colour (default: the third objective, if any).
    #[arg(long)]
    pub colour: Option<String>,
    /// Column shown as point size (default: the fourth objective, if any).
    #[arg(long)]
    pub size: Option<String>,
    /// Output SVG (default: DIR/front_objectives.svg).
    #[arg(long, value_name = "FILE.svg")]
    pub out: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A positive number that f32 holds as a normal value: `1e-50` would read as 0 and `1e40` as
/// infinity, so both are refused with the text given.
fn positive_f32(s: &str) -> Result<f32, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    let (lo, hi) = (f32::MIN_POSITIVE, f32::MAX);
    if !(lo as f64..=hi as f64).contains(&v) {
        return Err(format!(
            "must be a positive number from {lo:e} to {hi:e}, got {s}"
        ));
    }
    Ok(v as f32)
}
