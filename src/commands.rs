//! Runs the parsed command line: each subcommand loads what it needs, calls the library and
//! reports. Errors carry the file or token they are about; `main` prints them on one line.

use crate::accel;
use crate::cli::{
    BenchCommand, BenchTraceArgs, Cli, Command, Device, DynamicArgs, GenInputArgs, GroupsArgs,
    InferArgs, ModelArgs, ModelCostArgs, SweepArgs, TimingArg, TraceArgs, What,
};
use crate::dynamic::{self, Metric, PolicySpec, Timing};
use crate::format::parse_config_list;
use crate::format::PrecisionConfig;
use crate::lstm::{self, builtin, eval, npy, LoadOptions, Model};
use crate::trace::{self, DeviceChoice, Engine};
use anyhow::{bail, Context, Result};

/// Runs one command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Infer(a) => infer(&a),
        Command::Models => {
            models();
            Ok(())
        }
        Command::Inspect(a) => {
            let m = load_model(&a)?;
            print!("{}\n{}", m.name, m.describe());
            println!("  {} multiply-accumulates per step", m.macs_per_step());
            Ok(())
        }
        Command::GenInput(a) => gen_input(&a),
        Command::Model(a) => model_cost(&a),
        Command::Trace(a) => trace_cmd(&a),
        Command::Dynamic(a) => dynamic_cmd(&a),
        Command::Groups(a) => groups_cmd(&a),
        Command::Sweep(a) => sweep_cmd(&a),
        Command::Merge(a) => crate::sweep::merge(&a.dirs, &a.out),
        Command::Pareto(a) => crate::pareto::run(&a),
        Command::Bench(BenchCommand::Trace(a)) => bench_trace(&a),
        Command::Devices => {
            let adapters = crate::gpu::list_adapters();
            if adapters.is_empty() {
                println!("no GPU adapter found (install mesa-vulkan-drivers for lavapipe)");
            }
            for a in adapters {
                println!("{} ({}, {}) {}", a.name, a.backend, a.device_type, a.driver);
            }
            Ok(())
        }
    }
}

/// Loads and validates the model named on the command line.
pub fn load_model(a: &ModelArgs) -> Result<Model> {
    let head_activation = match &a.head_activation {
        None => None,
        Some(s) => Some(
            s.parse()
                .map_err(|e: String| anyhow::anyhow!("--head-activation: {e}"))?,
        ),
    };
    let opts = LoadOptions {
        head: a.head.clone(),
        head_activation,
    };
    Ok(lstm::load(&a.model, &opts)?)
}

fn infer(a: &InferArgs) -> Result<()> {
    let config: PrecisionConfig = a.precision.parse()?;
    let model = load_model(&a.model)?;
    let seqs = npy::read_sequences(&a.input)?;
    if a.what == What::Output && model.head.is_none() {
        bail!(
            "{}: --what output needs a model with a dense head",
            model.name
        );
    }
    let input_name = a.input.display().to_string();
    let runs = eval::evaluate(&model, &seqs, &input_name, &[config], false)?;
    let run = &runs[0];
    let (data, width) = match a.what {
        What::Hidden => (&run.hidden, model.hidden_output_size()),
        What::Output => match (&run.output, &model.head) {
            (Some(o), Some(h)) => (o, h.output_size),
            _ => bail!("{}: the model has no head", model.name),
        },
    };
    let shape: Vec<usize> = if seqs.batched {
        vec![seqs.count, seqs.steps, width]
    } else {
        vec![seqs.steps, width]
    };
    npy::write_f32(&a.output, &shape, data)
        .with_context(|| format!("writing {}", a.output.display()))?;
    if !a.quiet {
        eprintln!(
            "{}: {} sequence(s) x {} steps at {} -> {} {:?}",
            model.name,
            seqs.count,
            seqs.steps,
            config,
            a.output.display(),
            shape
        );
    }
    Ok(())
}

fn models() {
    println!(
        "{:<16} {:>7} {:>12} {:>14}  description",
        "name", "layers", "parameters", "MACs/step"
    );
    for b in builtin::BUILTINS {
        let mut input = b.input;
        let (mut params, mut macs) = (0u64, 0u64);
        for &(h, dir) in b.layers {
            let per = (4 * h * (input + h) + 8 * h) as u64 * dir.count() as u64;
            params += per;
            macs += (4 * h * (input + h)) as u64 * dir.count() as u64;
            input = h * dir.count();
        }
        if let Some((o, _)) = b.head {
            params += (o * (input + 1)) as u64;
        }
        println!(
            "{:<16} {:>7} {:>12} {:>14}  {}",
            format!("builtin:{}", b.name),
            b.layers.len(),
            params,
            macs,
            b.summary
        );
    }
    println!("\nShapes follow the papers named in docs/MODELS.md; weights are seeded random, NOT trained.");
}

fn gen_input(a: &GenInputArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    if a.sequences == 0 || a.steps == 0 {
        bail!("--sequences and --steps must be at least 1");
    }
    let mut rng = builtin::SplitMix64::new(a.seed);
    let n = a.sequences * a.steps * model.input_size();
    let data: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    npy::write_f32(
        &a.output,
        &[a.sequences, a.steps, model.input_size()],
        &data,
    )?;
    eprintln!(
        "{}: wrote {} sequence(s) x {} steps x {} features to {}",
        model.name,
        a.sequences,
        a.steps,
        model.input_size(),
        a.output.display()
    );
    Ok(())
}

/// The accelerator model's view of a model: its layer shapes.
pub fn workload_of(
    model: &Model,
    seq_len: usize,
    batch: usize,
    precision: accel::PrecisionProfile,
) -> accel::Workload {
    accel::Workload {
        name: model.name.clone(),
        layers: model
            .layers
            .iter()
            .map(|l| accel::LayerShape {
                input_size: l.input_size,
                hidden_size: l.hidden_size,
                directions: l.direction.count(),
            })
            .collect(),
        seq_len,
        batch,
        precision,
    }
}

fn model_cost(a: &ModelCostArgs) -> Result<()> {
    let config: PrecisionConfig = a.precision.parse()?;
    let fixed = accel::PrecisionProfile::fixed(config.w.bits(), config.a.bits());
    let model = load_model(&a.model)?;
    let mut precision = match (&a.policies, a.policy) {
        (Some(path), Some(k)) => accel::read_policy(path, k)?,
        _ => fixed.clone(),
    };
    if let (Some(path), Some(g)) = (&a.groups, a.group_size) {
        let (w, act) = accel::read_group_ratios(path, g, true)?;
        precision = precision.with_dpred(w, act);
    }
    let arch = accel::load_arch_with_overrides(&a.arch, &a.set)?;
    let workload = workload_of(&model, a.seq_len, a.batch, precision);
    let point = accel::evaluate(&arch, &workload)?;
    let base = match &a.baseline {
        None => None,
        Some(path) => {
            let barch = accel::load_arch_with_overrides(path, &[])?;
            let bw = workload_of(&model, a.seq_len, a.batch, fixed);
            let bp = accel::evaluate(&barch, &bw)?;
            Some((path.display().to_string(), accel::compare(&point, &bp)))
        }
    };
    let base_ref = base.as_ref().map(|(n, c)| (n.as_str(), c));
    if a.csv {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        let arch_name = a.arch.display().to_string();
        w.serialize(point.csv_row(&arch_name, &workload.name, base_ref))?;
        w.flush()?;
    } else {
        print!(
            "{}",
            accel::format_summary(&point, &arch, &workload, base_ref)
        );
    }
    Ok(())
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
            eprintln!("{n}");
        }
        eprintln!("device: {}", engine.name());
    }
    Ok(engine)
}

fn progress_bar(quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    // Draws only when stderr is a terminal.
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} lane-steps ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

fn trace_cmd(a: &TraceArgs) -> Result<()> {
    let configs = parse_config_list(&a.precisions)?;
    if a.tolerance.is_nan() || a.tolerance <= 0.0 {
        return Err(trace::TraceError::Tolerance(a.tolerance).into());
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!("--out {}: exists and is not a directory", a.out.display());
    }
    let model = load_model(&a.model)?;
    let seqs = npy::read_sequences(&a.input)?;
    let engine = engine_for(a.device, a.quiet)?;
    let bar = progress_bar(a.quiet, "trace");
    let input_name = a.input.display().to_string();
    let t = trace::run(
        &engine,
        &model,
        &seqs,
        &input_name,
        &configs,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    trace::write_csvs(&t, &model, a.tolerance, &a.out)
        .with_context(|| format!("writing into {}", a.out.display()))?;
    if !a.quiet {
        let (_, _, summary) = trace::rows(&t, &model, a.tolerance);
        println!(
            "{:<28} {:>12} {:>14} {:>10} {:>8}",
            "precision", "hidden_rmse", "hidden_max_abs", "within_tol", "top1"
        );
        for r in summary {
            let top1 = r
                .top1_agreement
                .map_or("-".to_string(), |v| format!("{v:.4}"));
            println!(
                "{:<28} {:>12.3e} {:>14.3e} {:>10.4} {:>8}",
                r.precision, r.hidden_rmse, r.hidden_max_abs, r.steps_within_tolerance, top1
            );
        }
        eprintln!(
            "wrote errors.csv, cell_delta.csv, summary.csv to {}",
            a.out.display()
        );
    }
    Ok(())
}

fn bench_trace(a: &BenchTraceArgs) -> Result<()> {
    if a.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let gpu = match Engine::select(DeviceChoice::Gpu) {
        Ok((e, _)) => Some(e),
        Err(e) => {
            println!("no GPU adapter ({e}): measuring the CPU evaluator only");
            None
        }
    };
    let cpu = Engine::Cpu;
    println!("| workload | engine | lanes | steps | median s | lane-steps/s | GMAC/s |");
    println!("|---|---|---|---|---|---|---|");
    for w in trace::bench::workloads(a.quick) {
        let mut medians = Vec::new();
        for engine in gpu.iter().chain([&cpu]) {
            let m = trace::bench::measure(engine, &w, a.reps)?;
            println!(
                "| {} | {} | {} | {} | {:.4} | {:.0} | {:.2} |",
                m.workload,
                m.engine,
                m.lanes,
                m.steps,
                m.median_s,
                m.lane_steps_per_s,
                m.gmac_per_s
            );
            medians.push(m.median_s);
        }
        if let [g, c] = medians[..] {
            println!(
                "| {} | GPU/CPU speed ratio | | | | {:.2}x | |",
                w.name,
                c / g
            );
        }
    }
    Ok(())
}

/// Reads class labels for `seqs` and checks them against the model's head.
fn read_labels(path: &std::path::Path, model: &Model, seqs: &npy::Sequences) -> Result<Vec<f32>> {
    let name = path.display();
    let (shape, labels) = npy::read_f32(path)?;
    let want_n = [seqs.count];
    let want_nt = [seqs.count, seqs.steps];
    if shape[..] != want_n[..] && shape[..] != want_nt[..] {
        bail!(
            "{name}: labels of shape {shape:?} do not match the input: expected [{}] or [{}, {}]",
            seqs.count,
            seqs.count,
            seqs.steps
        );
    }
    let Some(head) = &model.head else {
        bail!("{name}: labels need a model with a classification head");
    };
    if let Some(bad) = labels
        .iter()
        .find(|&&v| v.fract() != 0.0 || v < 0.0 || v >= head.output_size as f32)
    {
        bail!(
            "{name}: label {bad} is not a class index 0..{}",
            head.output_size - 1
        );
    }
    Ok(labels)
}

fn dynamic_cmd(a: &DynamicArgs) -> Result<()> {
    let levels = parse_config_list(&a.levels)?;
    let metric: Metric = a.metric.parse()?;
    let timing = match a.timing {
        TimingArg::Causal => Timing::Causal,
        TimingArg::Oracle => Timing::Oracle,
    };
    let spec = PolicySpec::new(levels, metric, timing)?;
    let policies = dynamic::parse_thresholds(&a.thresholds, spec.levels.len())?;
    if let Some(k) = a.trace_policy {
        if k >= policies.len() {
            bail!(
                "--trace-policy {k}: there are {} policies (0..{})",
                policies.len(),
                policies.len() - 1
            );
        }
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!("--out {}: exists and is not a directory", a.out.display());
    }
    let model = load_model(&a.model)?;
    let seqs = npy::read_sequences(&a.input)?;
    let labels = a
        .labels
        .as_ref()
        .map(|p| read_labels(p, &model, &seqs))
        .transpose()?;
    let input_name = a.input.display().to_string();
    let highest = spec.levels[spec.levels.len() - 1];
    let mut plans = eval::prepare(
        &model,
        &seqs,
        &input_name,
        &[PrecisionConfig::FP32, highest],
    )?;
    let reference = eval::run_cpu(&model, &seqs, &plans[..1], true).remove(0);
    let level_plans = dynamic::LevelPlans::new(&model, plans.remove(1), &spec)?;
    let bar = progress_bar(a.quiet, "policies");
    bar.set_length((policies.len() * seqs.count) as u64);
    let sim = dynamic::simulate(&model, &seqs, &spec, &level_plans, &policies, &|| {
        bar.inc(1)
    });
    bar.finish_and_clear();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let (header, rows) = dynamic::policy_rows(
        &model,
        &spec,
        &policies,
        &sim,
        &reference,
        labels.as_deref(),
    );
    let path = a.out.join("policies.csv");
    dynamic::write_policies(&path, &header, &rows)
        .with_context(|| format!("writing {}", path.display()))?;
    if let Some(k) = a.trace_policy {
        let path = a.out.join(format!("policy_{k}_trace.csv"));
        let trace = dynamic::trace_rows(&model, &spec, &sim, &reference, k);
        let mut w =
            csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
        for r in trace {
            w.serialize(r)?;
        }
        w.flush()?;
    }
    if !a.quiet {
        let col = |name: &str| header.iter().position(|h| h == name);
        let pick = [
            "policy",
            "thresholds",
            "frac_level_0",
            "switches_per_1000_steps",
            "output_max_abs",
            "top1_agreement",
            "task_accuracy",
        ];
        let idx: Vec<usize> = pick.iter().filter_map(|n| col(n)).collect();
        println!(
            "{}",
            idx.iter()
                .map(|&i| header[i].as_str())
                .collect::<Vec<_>>()
                .join("  ")
        );
        for r in &rows {
            println!(
                "{}",
                idx.iter()
                    .map(|&i| r[i].as_str())
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
        eprintln!("wrote {} policies to {}", rows.len(), path.display());
    }
    Ok(())
}

fn groups_cmd(a: &GroupsArgs) -> Result<()> {
    let sizes = a
        .group_sizes
        .split(',')
        .map(|t| match t.trim().parse::<usize>() {
            Ok(g) if g > 0 => Ok(g),
            _ => Err(anyhow::anyhow!(
                "--group-sizes: '{}' is not a group size >= 1",
                t.trim()
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    let base: PrecisionConfig = a.base.parse()?;
    if !base.is_integer() {
        bail!(
            "--base '{}': DPRed groups compress a fixed-point base format (e.g. fx16, fx8)",
            a.base
        );
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!("--out {}: exists and is not a directory", a.out.display());
    }
    let model = load_model(&a.model)?;
    let seqs = npy::read_sequences(&a.input)?;
    let engine = engine_for(a.device, a.quiet)?;
    let input_name = a.input.display().to_string();
    let stats = dynamic::groups::measure(&engine, &model, &seqs, &input_name, base, &sizes)?;
    let (header, rows) = dynamic::groups::rows(&stats);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let path = a.out.join("groups.csv");
    dynamic::write_policies(&path, &header, &rows)
        .with_context(|| format!("writing {}", path.display()))?;
    if !a.quiet {
        println!("tensor       group  mean_width  footprint  with_zero_bitmap");
        for s in &stats {
            println!(
                "{:<12} {:>5} {:>11.3} {:>10.3} {:>17.3}",
                s.kind,
                s.group_size,
                s.mean_width(),
                s.ratio(false),
                s.ratio(true)
            );
        }
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// indicatif bars for the sweep's stages.
struct Bars {
    quiet: bool,
    bar: std::sync::Mutex<indicatif::ProgressBar>,
}

impl crate::sweep::Progress for Bars {
    fn stage(&self, name: &str, total: u64) {
        let bar = progress_bar(self.quiet, name);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_length(total);
        if let Ok(mut slot) = self.bar.lock() {
            std::mem::replace(&mut *slot, bar).finish_and_clear();
        }
    }
    fn advance(&self, n: u64) {
        if let Ok(bar) = self.bar.lock() {
            bar.inc(n);
        }
    }
}

fn sweep_cmd(a: &SweepArgs) -> Result<()> {
    let shard = match &a.shard {
        None => None,
        Some(s) => {
            let parsed = s.split_once('/').and_then(|(i, n)| {
                Some((
                    i.trim().parse::<usize>().ok()?,
                    n.trim().parse::<usize>().ok()?,
                ))
            });
            match parsed {
                Some((i, n)) if n >= 1 && i < n => Some((i, n)),
                _ => bail!("--shard '{s}': expected i/N with 0 <= i < N, e.g. 0/4"),
            }
        }
    };
    let name = crate::sweep::spec::load(&a.spec)?.name;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| std::path::Path::new("results").join(&name));
    let opts = crate::sweep::RunOptions {
        out: out.clone(),
        resume: a.resume,
        shard,
        cache_dir: a.cache.clone(),
        smoke: a.smoke,
    };
    let bars = Bars {
        quiet: a.quiet,
        bar: std::sync::Mutex::new(indicatif::ProgressBar::hidden()),
    };
    let go = || crate::sweep::run(&a.spec, &opts, &bars);
    match a.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(j) => rayon::ThreadPoolBuilder::new()
            .num_threads(j)
            .build()?
            .install(go)?,
        None => go()?,
    }
    if let Ok(bar) = bars.bar.lock() {
        bar.finish_and_clear();
    }
    if !a.quiet {
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
