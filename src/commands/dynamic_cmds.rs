//! `dynamic` and `groups`: precision policies and DPRed per-group precision.

use super::*;

pub(super) fn dynamic_cmd(a: &DynamicArgs) -> Result<()> {
    let levels = parse_config_set(&a.levels).context("--levels")?;
    let metric: Metric = a.metric.parse()?;
    let timing = match a.timing {
        TimingArg::Causal => Timing::Causal,
        TimingArg::Oracle => Timing::Oracle,
    };
    let spec = PolicySpec::new(levels, metric, timing)?.starting_at(&a.start)?;
    let policies = dynamic::parse_thresholds(&a.thresholds, spec.levels.len())?;
    if let Some(k) = a.trace_policy {
        if k >= policies.len() {
            match policies.len() {
                1 => bail!("--trace-policy {k}: there is one policy (0)"),
                n => bail!("--trace-policy {k}: there are {n} policies (0..{})", n - 1),
            }
        }
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!("--out {}: exists and is not a directory", a.out.display());
    }
    let model = load_model(&a.model)?;
    let mut inputs = model_and_input(&a.model, &a.input);
    inputs.extend(
        a.labels
            .iter()
            .map(|p| Input::new("the labels (--labels)", p)),
    );
    // policies.csv and the trace are written; a previous run's other policy traces are
    // removed (its trace of the same policy is the one written, listed once).
    let old = dynamic::trace_files(&a.out).unwrap_or_default();
    let traced = a.trace_policy.map(|k| a.out.join(dynamic::trace_file(k)));
    let outputs: Vec<Output> = (std::iter::once(a.out.join("policies.csv")))
        .chain(traced.clone())
        .chain(
            old.into_iter()
                .map(|(_, p)| p)
                .filter(|p| Some(p) != traced.as_ref()),
        )
        .map(|p| Output::inside("--out", &a.out, p))
        .collect();
    refuse_overwriting_inputs(&inputs, &outputs)?;
    let seqs = npy::read_inputs(&a.input, &model)?;
    let labels = a
        .labels
        .as_ref()
        .map(|p| dynamic::read_labels(p, &model, &seqs))
        .transpose()?;
    let input_name = a.input.display().to_string();
    // The input's width and memory before the device is chosen (which may print notices).
    lstm::eval::check_input(&model, &seqs, &input_name)?;
    let engine = engine_for(a.device, a.quiet)?;
    let bar = progress_bar(a.quiet, "policies");
    let (sim, reference) = dynamic::run(
        &engine,
        &model,
        &seqs,
        &input_name,
        &spec,
        &policies,
        None,
        &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .map_err(naming_flag("--levels"))?;
    bar.finish_and_clear();
    for w in &sim.warnings {
        crate::note!("{w}");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let (header, rows) = dynamic::policy_rows(
        &model,
        &spec,
        &policies,
        &sim,
        &reference,
        labels.as_deref(),
    );
    // policies.csv and the policy's trace replace a previous run's together or not at all;
    // the errors name the file.
    let mut staged = crate::report::Staged::new();
    let path = a.out.join("policies.csv");
    dynamic::write_policies(&mut staged, &path, &header, &rows)?;
    if let Some(k) = a.trace_policy {
        let trace = dynamic::trace_rows(&model, &spec, &sim, &reference, k);
        staged.write_csv(&a.out.join(dynamic::trace_file(k)), |w| {
            trace.iter().try_for_each(|r| w.serialize(r))
        })?;
    }
    // A previous run's policy traces belong to its policies.csv (other thresholds): they go.
    for (_, path) in dynamic::trace_files(&a.out).unwrap_or_default() {
        if Some(&path) != traced.as_ref() {
            staged.remove(&path);
        }
    }
    staged.commit()?;
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
        crate::out!(
            "{}",
            idx.iter()
                .map(|&i| header[i].as_str())
                .collect::<Vec<_>>()
                .join("  ")
        )?;
        for r in &rows {
            crate::out!(
                "{}",
                idx.iter()
                    .map(|&i| r[i].as_str())
                    .collect::<Vec<_>>()
                    .join("  ")
            )?;
        }
        crate::note!("wrote {} policies to {}", rows.len(), path.display());
    }
    Ok(())
}

pub(super) fn groups_cmd(a: &GroupsArgs) -> Result<()> {
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
    // A size given twice would give two identical rows under one key.
    for (k, g) in sizes.iter().enumerate() {
        if sizes[..k].contains(g) {
            bail!("--group-sizes: {g} is listed twice");
        }
    }
    let base: PrecisionConfig = a.base.parse().context("--base")?;
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
    refuse_overwriting_inputs(
        &model_and_input(&a.model, &a.input),
        &[Output::inside("--out", &a.out, a.out.join("groups.csv"))],
    )?;
    let seqs = npy::read_inputs(&a.input, &model)?;
    let input_name = a.input.display().to_string();
    lstm::eval::check_input(&model, &seqs, &input_name)?;
    let engine = engine_for(a.device, a.quiet)?;
    let stats = dynamic::groups::measure(&engine, &model, &seqs, &input_name, base, &sizes)?;
    let (header, rows) = dynamic::groups::rows(&stats);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let path = a.out.join("groups.csv");
    let mut staged = crate::report::Staged::new();
    dynamic::write_policies(&mut staged, &path, &header, &rows)?;
    staged.commit()?;
    if !a.quiet {
        crate::out!("tensor       group  mean_width  footprint  with_zero_bitmap")?;
        for s in &stats {
            crate::out!(
                "{:<12} {:>5} {:>11.3} {:>10.3} {:>17.3}",
                s.kind,
                s.group_size,
                s.mean_width(),
                s.ratio(false),
                s.ratio(true)
            )?;
        }
        crate::note!("wrote {}", path.display());
    }
    Ok(())
}
