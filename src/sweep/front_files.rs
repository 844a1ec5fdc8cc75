//! The front's files: `front.csv` and `front.svg`, from the front a sweep gathered as it went
//! or read back from a results directory's `results.csv`.

use super::front::{FrontPart, FrontSpec};
use super::plan::{Cursor, Outcome, Plan};
use super::SweepSpec;
use anyhow::{Context, Result};
use std::path::Path;

/// front.csv and front.svg from the gathered rows, into `dir`.
pub(super) fn write_front_of(
    dir: &Path,
    spec: &SweepSpec,
    plan: &Plan,
    fspec: &FrontSpec,
    front: &FrontPart,
    header: &[u8],
) -> Result<()> {
    let on = fspec.finish(front);
    let path = dir.join("front.csv");
    crate::report::write_atomic(&path, |w| {
        w.write_all(header)?;
        let mut buf = Vec::new();
        let mut cursor = Cursor::default();
        for (&p, _) in front.points.iter().zip(&on).filter(|(_, &f)| f) {
            if let Outcome::Row(r) = plan.outcome(p as usize, &mut cursor) {
                buf.clear();
                r.write(&mut buf);
                w.write_all(&buf)?;
            }
        }
        Ok(())
    })
    .with_context(|| format!("{}: cannot write", path.display()))?;
    if fspec.dims() >= 2 {
        // The plot flags every kept row; `on` flags the candidates.
        let mut on_kept = vec![false; front.kept];
        for (&k, _) in front.kept_at.iter().zip(&on).filter(|(_, &f)| f) {
            on_kept[k] = true;
        }
        crate::pareto::plot_front_svg(
            &dir.join("front.svg"),
            &plot_title(spec, fspec.dims()),
            (fspec.name(0), &front.xs),
            (fspec.name(1), &front.ys),
            &on_kept,
        )?;
    }
    Ok(())
}

fn plot_title(spec: &SweepSpec, objectives: usize) -> String {
    if objectives > 2 {
        format!(
            "{}: front of {} objectives, shown on the first two",
            spec.name, objectives
        )
    } else {
        spec.name.clone()
    }
}

/// front.csv and front.svg of a results directory, for the spec's objectives (read back from
/// `results.csv`; a sweep itself gathers its front as it goes).
pub fn write_front(out: &Path, spec: &SweepSpec) -> Result<()> {
    let front = crate::pareto::front_of_csv_by(
        &out.join("results.csv"),
        ("pareto.minimize", &spec.pareto.minimize),
        ("pareto.maximize", &spec.pareto.maximize),
        spec.pareto.filter.as_deref(),
    )?;
    crate::pareto::write_front_csv(&out.join("front.csv"), &front)?;
    let objectives: Vec<&String> = spec
        .pareto
        .minimize
        .iter()
        .chain(&spec.pareto.maximize)
        .collect();
    if objectives.len() >= 2 {
        let (x, y) = (front.objective_values(0), front.objective_values(1));
        crate::pareto::plot_front_svg(
            &out.join("front.svg"),
            &plot_title(spec, objectives.len()),
            (objectives[0], &x),
            (objectives[1], &y),
            &front.on_front,
        )?;
    }
    Ok(())
}
