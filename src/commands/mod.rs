//! Runs the parsed command line: each subcommand loads what it needs, calls the library and
//! reports. Errors carry the file or token they are about; `main` prints them on one line.
//! One file per family of commands; the helpers shared by them (model loading, device choice,
//! progress bars) live here.

mod cluster_cmds;
mod cost;
mod dynamic_cmds;
mod infer;
mod ranges;
mod sweep;
mod trace_cmds;
mod view_cmds;

use cluster_cmds::status_cmd;
use cost::{model_cost, simulate_cmd};
use dynamic_cmds::{dynamic_cmd, groups_cmd};
use infer::{gen_input, infer, models};
use ranges::ranges_cmd;
use sweep::sweep_cmd;
use trace_cmds::{bench_engine, bench_trace, trace_cmd};
use view_cmds::{plot_front, plot_trace, report_cmd};

use crate::accel;
use crate::cli::{
    BenchCommand, BenchEngineArgs, BenchTraceArgs, Cli, Command, Device, DynamicArgs, GenInputArgs,
    GroupsArgs, InferArgs, LoadArgs, ModelArgs, ModelCostArgs, RangesArgs, SweepArgs, TimingArg,
    TraceArgs, What,
};
use crate::dynamic::{self, Metric, PolicySpec, Timing};
use crate::format::parse_config_set;
use crate::format::PrecisionConfig;
use crate::lstm::eval::PlanRefusal;
use crate::lstm::{self, builtin, eval, npy, LoadOptions, Model};
use crate::report::{refuse_overwriting_inputs, Input, Output};
use crate::trace::{self, DeviceChoice, Engine};
use anyhow::{bail, Context, Result};

/// Runs one command.
pub fn run(cli: Cli) -> Result<()> {
    let max_memory_bytes = crate::limits::parse_size(&cli.limits.max_memory)
        .map_err(|e| anyhow::anyhow!("--max-memory: {e}"))?;
    if cli.limits.max_points == 0 {
        bail!("--max-points: must be at least 1");
    }
    crate::limits::set(crate::limits::Limits {
        max_points: cli.limits.max_points,
        max_memory_bytes,
    });
    // A signal that ends a command removes the temporary files it is writing; not in those
    // that start child processes (sbatch, squeue), which would inherit the blocked signals.
    // No thread has started yet.
    if !matches!(cli.command, Command::Sweep(_) | Command::Status(_)) {
        crate::report::remove_partials_on_signal();
    }
    match cli.command {
        Command::Infer(a) => infer(&a),
        Command::Models => models(),
        Command::Inspect(a) => {
            let m = load_model(&a)?;
            crate::out_part!("{}\n{}", m.name, m.describe())?;
            crate::out!("  {} multiply-accumulates per step", m.macs_per_step())?;
            let fixed = [("steps", &m.fixed.steps), ("sequences", &m.fixed.batch)];
            for (what, fixed) in fixed {
                if let Some((n, by)) = fixed {
                    crate::out!("  inputs must have {n} {what} (fixed by {by})")?;
                }
            }
            Ok(())
        }
        Command::GenInput(a) => gen_input(&a),
        Command::Ranges(a) => ranges_cmd(&a),
        Command::Model(a) => model_cost(&a),
        Command::Simulate(a) => simulate_cmd(&a),
        Command::Trace(a) => trace_cmd(&a),
        Command::Dynamic(a) => dynamic_cmd(&a),
        Command::Groups(a) => groups_cmd(&a),
        Command::Sweep(a) => sweep_cmd(&a),
        Command::Merge(a) => crate::sweep::merge(&a.dirs, &a.out),
        Command::Pareto(a) => crate::pareto::run(&a),
        Command::Bench(BenchCommand::Trace(a)) => bench_trace(&a),
        Command::Bench(BenchCommand::Engine(a)) => bench_engine(&a),
        Command::Report(a) => report_cmd(&a),
        Command::Status(a) => status_cmd(&a),
        Command::Plot(crate::cli::PlotCommand::Trace(a)) => plot_trace(&a),
        Command::Plot(crate::cli::PlotCommand::Front(a)) => plot_front(&a),
        Command::Devices => {
            let adapters = crate::gpu::list_adapters();
            if adapters.is_empty() {
                crate::out!(
                    "no GPU adapter found{} (install mesa-vulkan-drivers for lavapipe)",
                    crate::gpu::backend_filter()
                )?;
            }
            for a in adapters {
                crate::out!("{} ({}, {}) {}", a.name, a.backend, a.device_type, a.driver)?;
            }
            Ok(())
        }
    }
}

/// Loads and validates the model named on the command line.
pub fn load_model(a: &ModelArgs) -> Result<Model> {
    load_with(&a.model, &a.settings)
}

/// Loads and validates `model` with the settings given beside it.
pub fn load_with(model: &str, s: &LoadArgs) -> Result<Model> {
    let opts = load_options(s)?;
    opts.check(model)
        .map_err(|(which, e)| anyhow::anyhow!("{}: {e}", which.flag()))?;
    Ok(lstm::load(model, &opts)?)
}

/// The settings given beside a model, parsed (errors name the flag).
fn load_options(s: &LoadArgs) -> Result<LoadOptions> {
    LoadOptions::parse(
        s.head.as_deref(),
        s.head_activation.as_deref(),
        s.head_input.as_deref(),
        s.embedding.as_deref(),
    )
    .map_err(|(which, e)| anyhow::anyhow!("{}: {e}", which.flag()))
}

/// The files a command that loads `--model` and reads `--input` reads.
fn model_and_input(a: &ModelArgs, input: &std::path::Path) -> Vec<Input> {
    let mut files = Input::model("--model", &a.model);
    files.push(Input::new("the input (--input)", input));
    files
}

/// An error of a precision config refused when it is planned for the model (its sizes known,
/// e.g. a gate accumulator past 64 bits: [`PlanRefusal`]) names the flag that gave the config,
/// as a config refused when it is parsed does; other errors pass as they are.
fn naming_flag<E>(flag: &'static str) -> impl FnOnce(E) -> anyhow::Error
where
    E: PlanRefusal + Into<anyhow::Error>,
{
    move |e| match e.is_plan_refusal() {
        true => e.into().context(flag),
        false => e.into(),
    }
}

/// Chooses where lanes run, telling the user unless `quiet`.
fn engine_for(device: Device, quiet: bool) -> Result<Engine> {
    let choice = match device {
        Device::Auto => DeviceChoice::Auto,
        Device::Gpu => DeviceChoice::Gpu,
        Device::Cpu => DeviceChoice::Cpu,
    };
    let (engine, notice) = Engine::select(choice)?;
    if !quiet {
        if let Some(n) = notice {
            crate::note!("{n}");
        }
        crate::note!("device: {}", engine.name());
    }
    Ok(engine)
}

/// A bar of lane-steps.
fn progress_bar(quiet: bool, what: &str) -> indicatif::ProgressBar {
    progress_bar_with(
        quiet,
        what,
        0,
        "{msg} [{bar:40}] {pos}/{len} lane-steps ({eta})",
    )
}

/// A bar of `len` items (0: set later) drawn with `template` from its first frame (a style or
/// length set after the message showed a frame of the old ones first).
fn progress_bar_with(quiet: bool, what: &str, len: u64, template: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    // Draws only when stderr is a terminal.
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    // Notices printed while it is drawn (warnings of a stage, a wait for a lock) go above it.
    crate::console::notes_above(&bar);
    bar
}
