//! `model`: one accelerator design point from the command line.

use super::*;

pub(super) fn model_cost(a: &ModelCostArgs) -> Result<()> {
    let config: PrecisionConfig = a.precision.parse()?;
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
        precision = precision.with_dpred(w, act);
    }
    let arch = accel::load_arch_with_overrides(&a.arch, &a.set)?;
    let workload = accel::workload_of(&model, a.seq_len, a.batch, precision);
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
        print!(
            "{}",
            accel::format_summary(&point, &arch, &workload, base_ref)
        );
    }
    Ok(())
}
