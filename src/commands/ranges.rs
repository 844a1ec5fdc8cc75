//! `ranges`: every tensor's range on a calibration batch and the format each precision config
//! resolves it to (docs/NUMERICS.md §3), so an architect sees where fraction bits go before
//! running a study: a cell state reaching |c| ~ 900 leaves `fx16` six fraction bits.

use super::*;
use crate::format::Resolved;
use crate::lstm::eval::calib::Histogram;
use crate::lstm::eval::plan::CellPlan;

/// A tensor's name, its values' histogram and how to print its format from a cell's plan.
type Tensor = (&'static str, Histogram, fn(&CellPlan) -> String);

/// A weight tensor's format: its own, or with `wscale=channel` the span of its rows' formats
/// (`fx8.6..fx8.9`: the coarsest row's to the finest row's; an all-zero row counts, with the
/// format NUMERICS.md §3 gives it).
fn weight_format(tensor: Resolved, rows: Option<&Vec<Resolved>>) -> String {
    let by_frac = |r: &&Resolved| r.frac();
    match rows.map(|r| (r.iter().min_by_key(by_frac), r.iter().max_by_key(by_frac))) {
        Some((Some(lo), Some(hi))) if lo.frac() != hi.frac() => format!("{lo}..{hi}"),
        Some((Some(one), _)) => one.to_string(),
        _ => tensor.to_string(),
    }
}

/// One row: a tensor of one layer direction, its magnitudes and the formats it gets.
struct Row {
    layer: usize,
    direction: usize,
    tensor: &'static str,
    max: f32,
    p99_9: f32,
    p99_99: f32,
    formats: Vec<String>,
}

pub(super) fn ranges_cmd(a: &RangesArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let csv: Vec<Output> = a.csv.iter().map(|p| Output::file("--csv", p)).collect();
    refuse_overwriting_inputs(&model_and_input(&a.model, &a.input), &csv)?;
    let seqs = npy::read_inputs(&a.input, &model)?;
    let configs = parse_config_set(&a.precisions).context("--precisions")?;
    let input_name = a.input.display().to_string();
    // One calibration run (with histograms) resolves every config's plan.
    eval::check_input(&model, &seqs, &input_name)?;
    let cal = eval::calibrate(&model, &seqs, true);
    let weights = eval::WeightRanges::of(&model);
    let plans = configs
        .iter()
        .map(|&c| eval::Plan::with_ranges(&model, c, Some(&cal), &weights))
        .collect::<Result<Vec<_>, _>>()?;
    let hist = cal.hist.as_ref().context("calibration histograms")?;
    let weight_hist = |v: &[f32]| {
        let mut h = Histogram::default();
        h.extend(v);
        h
    };
    let mut rows = Vec::new();
    for (l, layer) in model.layers.iter().enumerate() {
        for (k, cell) in layer.cells.iter().enumerate() {
            let bias: Vec<f32> = cell
                .b_ih
                .iter()
                .zip(&cell.b_hh)
                .map(|(x, y)| x + y)
                .collect();
            let mut tensors: Vec<Tensor> = vec![
                (
                    "x",
                    if l == 0 {
                        hist.input.clone()
                    } else {
                        hist.layers[l - 1].0.clone()
                    },
                    |p| p.formats.x.to_string(),
                ),
                ("W", weight_hist(&cell.w), |p| {
                    weight_format(p.formats.w, p.rows.as_ref().map(|r| &r.w))
                }),
                ("R", weight_hist(&cell.r), |p| {
                    weight_format(p.formats.r, p.rows.as_ref().map(|r| &r.r))
                }),
                ("b", weight_hist(&bias), |p| p.formats.b.to_string()),
            ];
            if let Some(p) = &cell.peephole {
                tensors.push(("P", weight_hist(p), |p| p.formats.peep.to_string()));
            }
            tensors.push(("pre", hist.layers[l].1[k].0.clone(), |p| {
                p.formats.pre.to_string()
            }));
            tensors.push(("c", hist.layers[l].1[k].1.clone(), |p| {
                p.formats.c.to_string()
            }));
            tensors.push(("h", hist.layers[l].0.clone(), |p| p.formats.h.to_string()));
            for (name, h, fmt) in tensors {
                rows.push(Row {
                    layer: l,
                    direction: k,
                    tensor: name,
                    max: h.max,
                    p99_9: h.percentile(99.9),
                    p99_99: h.percentile(99.99),
                    formats: plans.iter().map(|p| fmt(&p.layers[l][k])).collect(),
                });
            }
        }
    }
    let names: Vec<String> = configs.iter().map(|c| c.to_string()).collect();
    // The file first: a reader of stdout that leaves early does not cost it.
    if let Some(path) = &a.csv {
        crate::report::write_csv_atomic(path, |w| {
            let mut header = vec![
                "layer",
                "direction",
                "tensor",
                "max_abs",
                "p99_9_abs",
                "p99_99_abs",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
            header.extend(names.iter().cloned());
            w.write_record(&header)?;
            for r in &rows {
                let mut rec = vec![
                    r.layer.to_string(),
                    r.direction.to_string(),
                    r.tensor.to_string(),
                    r.max.to_string(),
                    r.p99_9.to_string(),
                    r.p99_99.to_string(),
                ];
                rec.extend(r.formats.iter().cloned());
                w.write_record(&rec)?;
            }
            Ok(())
        })
        .with_context(|| path.display().to_string())?;
    }
    crate::out_part!(
        "{:>5} {:>3} {:<6} {:>12} {:>12} {:>12}",
        "layer",
        "dir",
        "tensor",
        "max|v|",
        "p99.9",
        "p99.99"
    )?;
    for n in &names {
        crate::out_part!("  {n:>14}")?;
    }
    crate::out!()?;
    for r in &rows {
        crate::out_part!(
            "{:>5} {:>3} {:<6} {:>12.6e} {:>12.6e} {:>12.6e}",
            r.layer,
            r.direction,
            r.tensor,
            r.max,
            r.p99_9,
            r.p99_99
        )?;
        for f in &r.formats {
            crate::out_part!("  {f:>14}")?;
        }
        crate::out!()?;
    }
    crate::out!("(formats: fx<bits>.<fraction bits> as each config resolves the tensor; floats and explicit fraction bits do not depend on the data; with wscale=channel, W and R show their rows' span: the coarsest row's format..the finest row's)")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Fixed;

    #[test]
    fn a_weight_span_runs_from_the_coarsest_row_to_the_finest() {
        let fx8 = |frac| Resolved::Fixed(Fixed { bits: 8, frac });
        // The tensor's format is its widest-range row's (fx8.8); an all-zero row has fx8.7.
        let rows = vec![fx8(8), fx8(7), fx8(9), fx8(8)];
        assert_eq!(weight_format(fx8(8), Some(&rows)), "fx8.7..fx8.9");
        assert_eq!(weight_format(fx8(8), Some(&vec![fx8(8); 3])), "fx8.8");
        assert_eq!(weight_format(fx8(8), None), "fx8.8");
    }
}
