//! What a sweep's precision options cost in memory, checked against `--max-memory` before a
//! model's precision stage is computed or read from the cache.
//!
//! Every option is held from the precision stage to the end of the run: its
//! [`PrecisionOption`](super::PrecisionOption), while computed its policy row (text cells) and
//! cache table, then the sweep's text of its row cells, its kept row for report.html and its
//! share of the front. Measured peak resident memory over a one-option run of the same sweep
//! (`builtin:tiny`, two levels, `tracking.enabled = [true]`, two architecture points): a
//! cold cache 33 KiB per option at 2,000 policies, 36 at 10,000, 29 at 20,000, 22 at 40,000;
//! a filled cache 19, 20 and 16. [`OPTION_BYTES`] is above all of them, and each level and
//! layer of a policy (its level fractions, per layer too) adds [`LEVEL_BYTES`].
//! `tests/sweep_memory.rs` checks the estimate against the peak of a child run.

use crate::lstm::Model;

/// Bytes one precision option holds over a sweep (see the module doc).
pub const OPTION_BYTES: u128 = 48 << 10;
/// Bytes per level and per (layer, level) of a policy's fractions, in each form they take.
pub const LEVEL_BYTES: u128 = 512;

/// The precision options of one model: fixed configs and threshold policies, each with its
/// DPRed variants (`None` when the count overflows).
pub fn option_count(p: &super::spec::PrecisionSpec) -> Option<u128> {
    let policies = if p.levels.is_empty() {
        0
    } else {
        crate::dynamic::count_policies(&p.thresholds, p.levels.len()).ok()?
    };
    let (plain, sizes) = p.dpred_sizes();
    let variants = sizes.len() as u128 + u128::from(plain);
    (p.fixed.len() as u128 + policies).checked_mul(variants)
}

/// The estimate of what the options of `models` models like `model` hold (the whole run's,
/// on a cache hit as on a miss).
pub fn options_bytes(p: &super::spec::PrecisionSpec, model: &Model, models: usize) -> Option<u128> {
    let levels = p.levels.len().max(1) as u128;
    let per = OPTION_BYTES + LEVEL_BYTES * levels * (1 + model.layers.len() as u128);
    option_count(p)?
        .checked_mul(per)?
        .checked_mul(models as u128)
}

/// Refuses a sweep whose options (and, when the stage is computed, its policy lanes: `lanes`
/// bytes) would pass `--max-memory`, naming `file` and `precision.thresholds`.
pub fn check(
    file: &str,
    p: &super::spec::PrecisionSpec,
    model: &Model,
    models: usize,
    lanes: u128,
) -> anyhow::Result<()> {
    let options = option_count(p);
    let need = options_bytes(p, model, models).and_then(|b| b.checked_add(lanes));
    let what = format!(
        "{} precision option(s) x {models} model(s){}",
        crate::limits::Count(options),
        if lanes > 0 {
            " and the policies' simulation"
        } else {
            ""
        }
    );
    crate::limits::check_memory(&what, need).map_err(|e| {
        super::spec::SpecError {
            file: file.to_string(),
            key: "precision.thresholds".into(),
            problem: e.to_string(),
        }
        .into()
    })
}
