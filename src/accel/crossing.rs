//! Where a pipeline's longest path crosses between stages under dynamic precision: the
//! expected gain of crossing at a slow step rather than at the edge step (docs/MODEL.md
//! section 4, "Dynamic precision").

/// The expected extra length of a pipeline's longest path from choosing where it crosses a run
/// of stages (docs/MODEL.md section 4, "Dynamic precision"). `column[k]`: the crossed stages'
/// own steps at level k (the cost of passing them at one step of level k); `deficit[k]`: what a
/// step at level k costs the path when it walks the stage it leaves from instead of the pacing
/// stage. The closed form crosses at step 0 (into the pacing stage; out of it at step T-1), at
/// the mean column. The step it crosses at (step 0 into the pacing stage, T-1 out of it) has
/// the level mix `edge` (the profile's first or last step fractions; the step fractions when
/// unknown): that shifts the column by sum_k (edge_k - phi_k) column_k. The path may instead
/// walk on until the first step at the slowest column level M: D steps later, D = 0 with
/// probability edge_M, else geometric with the per-step odds q of entering level M (the runs
/// of level M over the other levels' steps), and it does so while the gain Delta = column_M -
/// the edge step's mean other column exceeds D times the mean other deficit. O(levels).
pub(crate) fn crossing_gain(
    column: &[f64],
    deficit: &[f64],
    phi: &[f64],
    edge: &[f64],
    t: f64,
    switch_rate: f64,
) -> f64 {
    let Some(m) = (0..phi.len())
        .filter(|&k| phi[k] > 0.0)
        .max_by(|&a, &b| column[a].total_cmp(&column[b]))
    else {
        return 0.0;
    };
    let pm = phi[m];
    // The chain passes the run at the mean column; the edge step's level has its own mix.
    let mean: f64 = phi.iter().zip(column).map(|(f, c)| f * c).sum();
    let at_edge: f64 = edge.iter().zip(column).map(|(f, c)| f * c).sum();
    let shift = at_edge - mean;
    let em = edge[m];
    if pm >= 1.0 - 1e-12 || em >= 1.0 - 1e-12 {
        return shift;
    }
    let others = 1.0 - pm;
    let eothers = 1.0 - em;
    let delta = column[m] - (at_edge - em * column[m]) / eothers;
    if delta <= 0.0 {
        return shift;
    }
    let cost = (0..phi.len())
        .filter(|&k| k != m)
        .map(|k| phi[k] * deficit[k])
        .sum::<f64>()
        / others;
    let sumsq: f64 = phi.iter().map(|f| f * f).sum();
    let switches = switch_rate * (t - 1.0);
    let runs = if 1.0 - sumsq > 1e-12 {
        (switches * pm * others / (1.0 - sumsq) + pm).clamp(0.0, t * pm)
    } else {
        pm
    };
    let q = (runs / (t * others)).clamp(0.0, 1.0);
    let mut n = t - 1.0;
    if cost > 0.0 {
        n = n.min((delta / cost).floor());
    }
    if q <= 0.0 || n < 1.0 {
        return shift;
    }
    // sum_{D=1}^{n} q (1-q)^(D-1) (Delta - D cost).
    let survive = (1.0 - q).powf(n);
    let expected = delta * (1.0 - survive) - cost.max(0.0) * (1.0 - survive * (1.0 + n * q)) / q;
    shift + eothers * expected.max(0.0)
}
