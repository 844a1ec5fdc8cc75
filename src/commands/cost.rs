//! `model`: one accelerator design point from the command line; `simulate`: the same point
//! through the event-level reference simulator, compared with the closed form.

use super::*;

/// What a `model`/`simulate` line names, read.
struct PointArgs {
    arch: accel::Arch,
    workload: accel::Workload,
    model: Model,
    /// The workload at `--precision` throughout (what a `--baseline` runs).
    fixed: accel::PrecisionProfile,
}

/// The arch, the workload (with its policy or DPRed groups) and the fixed-precision profile a
/// `model`/`simulate` line names.
fn design_point(a: &ModelCostArgs) -> Result<PointArgs> {
    if a.seq_len == 0 {
        bail!("--seq-len 0: give at least 1 step per sequence");
    }
    if a.batch == 0 {
        bail!("--batch 0: give at least 1 sequence");
    }
    let config: PrecisionConfig = a.precision.parse().context("--precision")?;
    let fixed = accel::PrecisionProfile::fixed(config.w.bits(), config.a.bits());
    let model = load_model(&a.model)?;
    let mut precision = match (&a.policies, a.policy) {
        (Some(path), Some(k)) => {
            let p = accel::read_policy(path, k)?;
            let n = p.layer_step_fraction.len();
            if n > 0 && n != model.layers.len() {
                bail!(
                    "{}: policy {k}: columns frac_l0_level_<k> .. frac_l{}_level_<k> give fractions for {n} layer(s), but {} has {} layer(s); use the policies.csv measured on this model",
                    path.display(),
                    n - 1,
                    model.name,
                    model.layers.len()
                );
            }
            p
        }
        _ => fixed.clone(),
    };
    if let (Some(path), Some(g)) = (&a.groups, a.group_size) {
        let (w, act) = accel::read_group_ratios(path, g, true)?;
        let widths = accel::read_group_widths(path, g)?;
        precision = precision.with_dpred(w, act).with_group_widths(widths, g);
    }
    let arch = accel::load_arch_with_overrides(&a.arch, &a.set)?;
    let workload = accel::workload_of(&model, a.seq_len, a.batch, precision);
    Ok(PointArgs {
        arch,
        workload,
        model,
        fixed,
    })
}

pub(super) fn model_cost(a: &ModelCostArgs) -> Result<()> {
    let PointArgs {
        arch,
        workload,
        model,
        fixed,
    } = design_point(a)?;
    let point = accel::evaluate(&arch, &workload)?;
    let base = match &a.baseline {
        None => None,
        Some(path) => {
            let barch = accel::load_arch_with_overrides(path, &[])?;
            let bw = accel::workload_of(&model, a.seq_len, a.batch, fixed);
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
        crate::out_part!(
            "{}",
            accel::format_summary(&point, &arch, &workload, base_ref)
        )?;
    }
    Ok(())
}

pub(super) fn simulate_cmd(a: &ModelCostArgs) -> Result<()> {
    if a.baseline.is_some() {
        bail!("--baseline: not used by simulate (use `lstm-dse model`)");
    }
    let PointArgs {
        arch, mut workload, ..
    } = design_point(a)?;
    // The simulator keeps a few numbers per step of every layer: counted before they are
    // allocated (a typo of --seq-len 1e12 is an error, not an out-of-memory abort).
    crate::limits::check_memory(
        &format!(
            "--seq-len {}: the simulator's per-step buffers ({} layer(s) x {} steps x {} bytes)",
            workload.seq_len,
            workload.layers.len(),
            workload.seq_len,
            accel::SIM_BYTES_PER_LAYER_STEP
        ),
        accel::sim_bytes(&workload),
    )?;
    // The simulator runs a concrete level sequence: the measured fractions rounded to whole
    // steps, with the measured switch rate; the closed form is evaluated on that same sequence.
    let (levels, realised) = accel::realise_levels(&workload)?;
    workload.precision = realised;
    let sim = accel::simulate(&arch, &workload, &levels)?;
    let point = accel::evaluate(&arch, &workload)?;
    let diff = (point.cycles - sim.cycles) / sim.cycles;
    if a.csv {
        crate::out!("arch,workload,sim_cycles,model_cycles,model_minus_sim_rel,tiles,products,switches,sim_dram_bytes,model_dram_bytes")?;
        crate::out!(
            "{},{},{},{},{:.6},{},{},{},{},{}",
            a.arch.display(),
            workload.name,
            sim.cycles,
            point.cycles,
            diff,
            sim.tiles,
            sim.products,
            sim.switches,
            sim.dram_bytes,
            point.dram_bytes
        )?;
    } else {
        crate::out!(
            "{} on {} (T = {}, batch {})",
            workload.name,
            arch.name,
            workload.seq_len,
            workload.batch
        )?;
        crate::out!("  simulated cycles    {:.0}", sim.cycles)?;
        crate::out!(
            "  closed-form cycles  {:.0} ({:+.3}%)",
            point.cycles,
            100.0 * diff
        )?;
        crate::out!(
            "  events              {} products, {} tiles, {} precision switches",
            sim.products,
            sim.tiles,
            sim.switches
        )?;
        crate::out!(
            "  DRAM bytes          {:.0} simulated, {:.0} closed form",
            sim.dram_bytes,
            point.dram_bytes
        )?;
    }
    Ok(())
}
