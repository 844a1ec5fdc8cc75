//! `trace` and `bench trace`: many precisions at once on GPU lanes or the CPU evaluator.

use super::*;

pub(super) fn trace_cmd(a: &TraceArgs) -> Result<()> {
    let configs = parse_config_set(&a.precisions).context("--precisions")?;
    if a.tolerance.is_nan() || a.tolerance <= 0.0 {
        return Err(trace::TraceError::Tolerance(a.tolerance).into());
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!("--out {}: exists and is not a directory", a.out.display());
    }
    let model = load_model(&a.model)?;
    let outputs: Vec<Output> = ["errors.csv", "cell_delta.csv", "summary.csv"]
        .into_iter()
        .map(|name| Output::inside("--out", &a.out, a.out.join(name)))
        .collect();
    refuse_overwriting_inputs(&model_and_input(&a.model, &a.input), &outputs)?;
    let seqs = npy::read_inputs(&a.input, &model)?;
    // The input's width and memory before the device is chosen (which may print notices).
    lstm::eval::check_input(&model, &seqs, &a.input.display().to_string())?;
    let engine = engine_for(a.device, a.quiet)?;
    if let Some(n) = engine.reduction_notice().filter(|_| !a.quiet) {
        crate::note!("{n}");
    }
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
    )
    .map_err(naming_flag("--precisions"))?;
    bar.finish_and_clear();
    // The error names the file.
    let summary = trace::write_csvs(&t, &model, a.tolerance, &a.out)?;
    if !a.quiet {
        crate::out!(
            "{:<28} {:>12} {:>14} {:>10} {:>8}",
            "precision",
            "hidden_rmse",
            "hidden_max_abs",
            "within_tol",
            "top1"
        )?;
        for r in summary {
            let top1 = r
                .top1_agreement
                .map_or("-".to_string(), |v| format!("{v:.4}"));
            crate::out!(
                "{:<28} {:>12.3e} {:>14.3e} {:>10.4} {:>8}",
                r.precision,
                r.hidden_rmse,
                r.hidden_max_abs,
                r.steps_within_tolerance,
                top1
            )?;
        }
        crate::note!(
            "wrote errors.csv, cell_delta.csv, summary.csv to {}",
            a.out.display()
        );
    }
    Ok(())
}

pub(super) fn bench_trace(a: &BenchTraceArgs) -> Result<()> {
    trace::bench::check_reps(a.reps).map_err(anyhow::Error::msg)?;
    let gpu = match Engine::select(DeviceChoice::Gpu) {
        Ok((e, _)) => Some(e),
        Err(e) => {
            crate::out!("no GPU adapter ({e}): measuring the CPU evaluator only")?;
            None
        }
    };
    let cpu = Engine::Cpu;
    crate::out!("| workload | engine | lanes | steps | median s | lane-steps/s | GMAC/s |")?;
    crate::out!("|---|---|---|---|---|---|---|")?;
    for w in trace::bench::workloads(a.quick) {
        let mut medians = Vec::new();
        for engine in gpu.iter().chain([&cpu]) {
            let m = trace::bench::measure(engine, &w, a.reps)?;
            crate::out!(
                "| {} | {} | {} | {} | {:.4} | {:.0} | {:.2} |",
                m.workload,
                m.engine,
                m.lanes,
                m.steps,
                m.median_s,
                m.lane_steps_per_s,
                m.gmac_per_s
            )?;
            medians.push(m.median_s);
        }
        if let [g, c] = medians[..] {
            crate::out!(
                "| {} | GPU/CPU speed ratio | | | | {:.2}x | |",
                w.name,
                c / g
            )?;
        }
    }
    Ok(())
}

pub(super) fn bench_engine(a: &BenchEngineArgs) -> Result<()> {
    trace::bench::check_reps(a.reps).map_err(anyhow::Error::msg)?;
    let (model, seqs) = match (&a.model, &a.input) {
        (Some(m), Some(x)) => {
            let model = super::load_with(m, &a.settings)?;
            let seqs = lstm::npy::read_inputs(x, &model)?;
            // The width, fixed sizes and memory before the table's header is printed (each
            // lane's run refused them after it).
            lstm::eval::check_input(&model, &seqs, &x.display().to_string())?;
            (model, seqs)
        }
        (None, None) => {
            if let Some(which) = super::load_options(&a.settings)?.given().first() {
                bail!(
                    "{}: applies to a --model (the built-in workload has no head or embedding)",
                    which.flag()
                );
            }
            trace::bench::default_engine_workload()
        }
        _ => bail!("--model and --input go together (or give neither for the built-in workload)"),
    };
    let mut engines = Vec::new();
    match a.device.as_str() {
        "cpu" => engines.push(Engine::Cpu),
        "gpu" | "both" => {
            engines.push(Engine::select(DeviceChoice::Gpu)?.0);
            if a.device == "both" {
                engines.push(Engine::Cpu);
            }
        }
        other => bail!("--device: '{other}' is not one of cpu, gpu, both"),
    }
    // Split as `trace --precisions` splits its configs, so a config with roles is one lane.
    let kinds = crate::format::split_config_list(&a.lanes);
    if kinds.is_empty() {
        bail!("--lanes: empty (give lane kinds such as fp32,fx8,trace8)");
    }
    crate::format::config_items(&a.lanes).context("--lanes")?;
    for kind in &kinds {
        trace::bench::check_lane(kind).map_err(|e| anyhow::anyhow!("--lanes '{kind}': {e}"))?;
    }
    if a.csv {
        crate::out!("engine,lanes,configs,median_s,gmac_per_s")?;
    } else {
        crate::out!("| engine | lanes | configs | median s | GMAC/s |")?;
        crate::out!("|---|---|---|---|---|")?;
    }
    for engine in &engines {
        for &kind in &kinds {
            if kind.starts_with("scalar:") && !matches!(engine, Engine::Cpu) {
                continue;
            }
            let r = trace::bench::engine_row(engine, &model, &seqs, kind, a.reps)
                .map_err(|e| anyhow::anyhow!("--lanes '{kind}': {e}"))?;
            if a.csv {
                // A config with roles holds commas: the csv crate quotes the row's fields.
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(Vec::new());
                let (s, g) = (format!("{:.6}", r.median_s), format!("{:.3}", r.gmac_per_s));
                let configs = r.configs.to_string();
                w.write_record([r.engine.as_str(), &r.kind, &configs, &s, &g])?;
                let row = String::from_utf8(w.into_inner()?)?;
                crate::out!("{}", row.trim_end())?;
            } else {
                crate::out!(
                    "| {} | {} | {} | {:.4} | {:.2} |",
                    r.engine,
                    r.kind,
                    r.configs,
                    r.median_s,
                    r.gmac_per_s
                )?;
            }
        }
    }
    Ok(())
}
