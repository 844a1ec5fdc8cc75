//! The point plan: every design point of a sweep by its index, without materialising any of
//! them. Point `i` is (model, precision option, architecture point) in that order of
//! nesting, the architecture fastest and, within it, the last swept key fastest (a mixed-radix
//! number). An architecture point is built on demand from the base spec and the typed
//! overrides of its swept values; each point either gives a [`Row`] or is skipped with the
//! reason the model gives (an invalid combination of values, or an option the architecture
//! cannot run).

use super::options::{fnv_add, PrecisionOption, FNV_INIT};
use super::row::{Axes, OptionText, Row, TextCell, MAX_KEYS};
use crate::accel::{self, Arch, ArchSpec, DesignPoint, Workload};

/// One model's options, ready to cost.
pub struct ModelPlan {
    pub options: Vec<PlannedOption>,
    /// The baseline design point (speedup / energy_saving reference), if it can run.
    pub baseline: Option<DesignPoint>,
}

pub struct PlannedOption {
    pub workload: Workload,
    pub text: OptionText,
}

impl PlannedOption {
    pub fn new(model: &str, o: &PrecisionOption, workload: Workload) -> PlannedOption {
        let opt = super::row::opt_text;
        let lead = [
            TextCell::new(model),
            TextCell::new(o.precision.clone()),
            TextCell::new(o.thresholds.clone()),
            TextCell::new(o.dpred_group_size.to_string()),
        ];
        let hash_prefix = lead_hash(lead.iter().map(|c| c.raw.as_bytes()));
        PlannedOption {
            workload,
            text: OptionText::new(
                lead,
                [
                    TextCell::new(opt(Some(o.hidden_rmse))),
                    TextCell::new(opt(o.output_rmse)),
                    TextCell::new(opt(o.output_max_abs)),
                    TextCell::new(opt(o.top1_agreement)),
                    TextCell::new(opt(o.task_accuracy)),
                    TextCell::new(opt(Some(o.fractions.first().copied().unwrap_or(1.0)))),
                ],
                hash_prefix,
            ),
        }
    }
}

/// The FNV state after an option's lead cells, each followed by `|`:
/// `model|precision|thresholds|dpred_group_size|` (the config hash goes on with the swept
/// values).
fn lead_hash<'a>(lead: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    lead.into_iter()
        .fold(FNV_INIT, |h, c| fnv_add(fnv_add(h, c), b"|"))
}

/// A row's config hash from its text in one pass: FNV over
/// `model|precision|thresholds|dpred_group_size|v1|...|vn` and `0xff`, what
/// [`Plan::outcome`] computes incrementally (`merge` checks every row's with it).
pub(super) fn config_hash_of<'a>(
    lead: impl IntoIterator<Item = &'a [u8]>,
    values: impl IntoIterator<Item = &'a [u8]>,
) -> u64 {
    let mut h = lead_hash(lead);
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            h = fnv_add(h, b"|");
        }
        h = fnv_add(h, v);
    }
    fnv_add(h, &[0xff])
}

/// Every point of a sweep, by index.
pub struct Plan {
    pub axes: Axes,
    pub models: Vec<ModelPlan>,
    base: ArchSpec,
    base_origin: String,
    arch_points: usize,
    /// Points per model (options x architecture points).
    per_model: Vec<usize>,
    pub total: usize,
    /// All architecture points, when there are few enough to build once.
    archs: Option<Vec<Result<Arch, String>>>,
}

/// Architecture points built up front when there are at most this many; beyond, each point
/// builds its own (a few hundred nanoseconds) and memory stays flat.
const PREBUILT_ARCHS: usize = 1 << 16;

/// What a point gives. Rows are the common case and live on the stack (boxing them would
/// allocate once per point on the hot path), hence the large variant.
#[allow(clippy::large_enum_variant)]
pub enum Outcome<'a> {
    Row(Row<'a>),
    /// Why the point has no row (one line).
    Skipped(String),
}

impl Plan {
    /// Returns `None` when the number of points overflows.
    pub fn new(
        axes: Axes,
        models: Vec<ModelPlan>,
        base: ArchSpec,
        base_origin: &str,
    ) -> Option<Plan> {
        let arch_points = axes
            .values
            .iter()
            .try_fold(1usize, |a, v| a.checked_mul(v.len()))?;
        let per_model: Vec<usize> = models
            .iter()
            .map(|m| m.options.len().checked_mul(arch_points))
            .collect::<Option<_>>()?;
        let total = per_model
            .iter()
            .try_fold(0usize, |a, &n| a.checked_add(n))?;
        let mut plan = Plan {
            axes,
            models,
            base,
            base_origin: base_origin.to_string(),
            arch_points,
            per_model,
            total,
            archs: None,
        };
        if arch_points <= PREBUILT_ARCHS && arch_points < total {
            use rayon::prelude::*;
            let archs = (0..arch_points)
                .into_par_iter()
                .map(|ai| plan.build_arch(ai))
                .collect();
            plan.archs = Some(archs);
        }
        Some(plan)
    }

    fn build_arch(&self, ai: usize) -> Result<Arch, String> {
        let mut spec = self.base.clone();
        let digits = self.axes.digits(ai);
        for (k, overrides) in self.axes.overrides.iter().enumerate() {
            overrides[digits[k]]
                .apply(&mut spec)
                .map_err(|e| e.to_string())?;
        }
        Arch::from_spec(&spec, &self.base_origin).map_err(|e| e.to_string())
    }

    /// Points per (model, precision option): a new option starts at every multiple.
    pub fn per_option(&self) -> usize {
        self.arch_points
    }

    /// (model, option, architecture point) of point `idx < total`.
    fn locate(&self, idx: usize) -> (usize, usize, usize) {
        let (mut m, mut rest) = (0, idx);
        while rest >= self.per_model[m] {
            rest -= self.per_model[m];
            m += 1;
        }
        (m, rest / self.arch_points, rest % self.arch_points)
    }

    /// Moves `cursor` to architecture point `ai`: its value digits, and its architecture
    /// unless they were built up front. Neighbouring points differ in the last keys only, so
    /// the cursor's spec takes just the overrides whose value changed; the result is the
    /// architecture [`Plan::build_arch`] gives (each override sets its own key). The digits
    /// of a step to the next point change in place (copying all `MAX_KEYS` of them in and out
    /// was two `memcpy` calls per point).
    fn seek(&self, ai: usize, cursor: &mut Cursor) {
        if cursor.ai == Some(ai) {
            return;
        }
        let n = self.axes.keys.len();
        if cursor.ai.is_some_and(|prev| prev + 1 == ai) {
            // Mixed-radix increment, last key fastest: key `first` steps up, the keys after
            // it roll over to their first value (a change only when they have several).
            let mut first = n;
            while first > 0 {
                first -= 1;
                cursor.digits[first] += 1;
                if cursor.digits[first] < self.axes.values[first].len() {
                    break;
                }
                cursor.digits[first] = 0;
            }
            if self.archs.is_none() {
                let lens = |k: usize| self.axes.values[k].len();
                let changed = |k: usize| k == first || (k > first && lens(k) > 1);
                cursor.arch = self.incremental_arch(
                    ai,
                    &cursor.digits,
                    changed,
                    &mut cursor.spec,
                    &cursor.arch,
                );
            }
        } else {
            let digits = self.axes.digits(ai);
            if self.archs.is_none() {
                let old = &cursor.digits;
                let changed = |k: usize| digits[k] != old[k];
                cursor.arch =
                    self.incremental_arch(ai, &digits, changed, &mut cursor.spec, &cursor.arch);
            }
            cursor.digits = digits;
        }
        cursor.ai = Some(ai);
    }

    /// The architecture at `digits` (point `ai`): from the cursor's `spec` with the overrides
    /// of the `changed` keys applied, else from the base spec.
    fn incremental_arch(
        &self,
        ai: usize,
        digits: &[usize; MAX_KEYS],
        changed: impl Fn(usize) -> bool,
        spec: &mut Option<ArchSpec>,
        prev: &Result<Arch, String>,
    ) -> Result<Arch, String> {
        let Some(s) = spec.as_mut() else {
            let mut fresh = self.base.clone();
            for (k, overrides) in self.axes.overrides.iter().enumerate() {
                if let Err(e) = overrides[digits[k]].apply(&mut fresh) {
                    return Err(e.to_string());
                }
            }
            let arch = Arch::from_spec(&fresh, &self.base_origin).map_err(|e| e.to_string());
            *spec = Some(fresh);
            return arch;
        };
        for (k, overrides) in self.axes.overrides.iter().enumerate() {
            if changed(k) && overrides[digits[k]].apply(s).is_err() {
                // A spec an override failed on is not trusted further: start afresh.
                *spec = None;
                return self.build_arch(ai);
            }
        }
        match prev {
            Ok(like) => Arch::from_spec_like(s, &self.base_origin, like),
            Err(_) => Arch::from_spec(s, &self.base_origin),
        }
        .map_err(|e| e.to_string())
    }

    /// Costs point `idx` (< total); `cursor` carries what consecutive points share (one
    /// cursor per thread, any start).
    pub fn outcome<'a>(&'a self, idx: usize, cursor: &'a mut Cursor) -> Outcome<'a> {
        let (m, oi, ai) = self.locate(idx);
        let model = &self.models[m];
        let opt = &model.options[oi];
        self.seek(ai, cursor);
        let arch = match &self.archs {
            Some(all) => &all[ai],
            None => &cursor.arch,
        };
        let arch = match arch {
            Ok(a) => a,
            Err(e) => return Outcome::Skipped(e.clone()),
        };
        let design = match accel::evaluate(arch, &opt.workload) {
            Ok(d) => d,
            Err(e) => return Outcome::Skipped(e.to_string()),
        };
        let n = self.axes.keys.len();
        let hash = self.config_hash(opt.text.hash_prefix, (m, oi), cursor);
        let cursor = &*cursor;
        let digits = &cursor.digits[..n];
        let cmp = model.baseline.as_ref().map(|b| accel::compare(&design, b));
        Outcome::Row(Row {
            point: idx as u64,
            option: &opt.text,
            axes: &self.axes,
            digits,
            design,
            speedup: cmp.map(|c| c.speedup),
            energy_saving: cmp.map(|c| c.energy_saving),
            config_hash: hash,
        })
    }

    /// The config hash of an option (`prefix`: its FNV state, [`OptionText::hash_prefix`])
    /// and the cursor's swept values: FNV over
    /// `model|precision|thresholds|dpred_group_size|v1|...|vn` and `0xff`. The state before
    /// the last (fastest) value is kept in the cursor, as it changes once per row of values.
    fn config_hash(&self, prefix: u64, option: (usize, usize), cursor: &mut Cursor) -> u64 {
        let n = self.axes.keys.len();
        let Some(last) = n.checked_sub(1) else {
            return fnv_add(prefix, &[0xff]);
        };
        let digits = &cursor.digits;
        let fresh = cursor
            .hash
            .as_ref()
            .is_some_and(|(o, d, _)| *o == option && d[..last] == digits[..last]);
        if !fresh {
            let mut h = prefix;
            for c in self.axes.cells(&digits[..last]) {
                h = fnv_add(fnv_add(h, c.raw.as_bytes()), b"|");
            }
            cursor.hash = Some((option, *digits, h));
        }
        let h = cursor.hash.as_ref().map_or(0, |(_, _, h)| *h);
        let h = fnv_add(h, self.axes.values[last][digits[last]].raw.as_bytes());
        fnv_add(h, &[0xff])
    }
}

/// A costing thread's position in the plan: the architecture point it is at (value digits,
/// and the spec and architecture built for it when they are not built up front).
pub struct Cursor {
    ai: Option<usize>,
    digits: [usize; MAX_KEYS],
    spec: Option<ArchSpec>,
    arch: Result<Arch, String>,
    /// The config hash state before the last swept value: (model, option), the digits it
    /// was computed at (all but the last count) and the state.
    hash: Option<((usize, usize), [usize; MAX_KEYS], u64)>,
}

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor {
            ai: None,
            digits: [0; MAX_KEYS],
            spec: None,
            arch: Err(String::new()),
            hash: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(levels: Vec<(u32, u32)>, fractions: Vec<f64>) -> PrecisionOption {
        PrecisionOption {
            precision: "p".into(),
            thresholds: String::new(),
            dpred_group_size: 0,
            levels,
            fractions,
            layer_fractions: Vec::new(),
            first_step_fractions: Vec::new(),
            last_step_fractions: Vec::new(),
            dpred_weight_ratio: 1.0,
            dpred_activation_ratio: 1.0,
            switch_rate: None,
            activation_group_widths: Vec::new(),
            hidden_rmse: 0.0,
            output_rmse: None,
            output_max_abs: None,
            top1_agreement: None,
            task_accuracy: None,
        }
    }

    /// A plan over swept keys with invalid values among them (no options: only the
    /// architecture points matter here, and none are built up front).
    fn arch_plan() -> Plan {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let base = accel::load_arch(&root.join("sweeps/arch/epur.toml")).expect("epur.toml");
        let ranges: [(&str, &[&str]); 4] = [
            ("compute.clock_mhz", &["100", "-1", "500"]),
            ("compute.units", &["1", "0", "7"]),
            ("memory.dram_gb_per_s", &["2.5", "10"]),
            ("compute.multipliers_per_unit", &["3", "16", "-2"]),
        ];
        let mut axes = Axes {
            keys: Vec::new(),
            values: Vec::new(),
            overrides: Vec::new(),
        };
        for (k, vals) in ranges {
            axes.keys.push(k.to_string());
            axes.values
                .push(vals.iter().map(|v| TextCell::new(*v)).collect());
            axes.overrides.push(
                vals.iter()
                    .map(|v| accel::Override::parse(&base, k, v).expect("parses"))
                    .collect(),
            );
        }
        Plan::new(axes, Vec::new(), base, "epur.toml").expect("small plan")
    }

    proptest::proptest! {
        /// A cursor moved over architecture points in any order (neighbours, jumps, repeats)
        /// gives the architecture (or the error) that building the point from the base spec
        /// gives: the oracle.
        #[test]
        fn cursor_architectures_match_building_from_the_base(
            walk in proptest::collection::vec((0usize..54, proptest::bool::ANY), 1..80)
        ) {
            let plan = arch_plan();
            let mut cursor = Cursor::default();
            let mut prev = None;
            for (jump, step) in walk {
                let ai = match (prev, step) {
                    (Some(p), true) => (p + 1) % 54,
                    _ => jump,
                };
                plan.seek(ai, &mut cursor);
                proptest::prop_assert_eq!(&cursor.digits, &plan.axes.digits(ai));
                proptest::prop_assert_eq!(&cursor.arch, &plan.build_arch(ai), "point {}", ai);
                prev = Some(ai);
            }
        }
    }

    proptest::proptest! {
        /// The config hash with the cursor's cached state equals FNV over the whole text
        /// (the oracle), over random walks through options and architecture points.
        #[test]
        fn cached_config_hashes_match_hashing_the_whole_text(
            walk in proptest::collection::vec((0usize..54, 0usize..3), 1..80)
        ) {
            let plan = arch_plan();
            let mut cursor = Cursor::default();
            for (ai, option) in walk {
                plan.seek(ai, &mut cursor);
                // An option's prefix is the FNV state of its text.
                let precision = format!("fx{}", option + 4);
                let lead: [&[u8]; 4] = [b"builtin:tiny", precision.as_bytes(), b"", b"0"];
                let prefix = lead_hash(lead);
                let got = plan.config_hash(prefix, (0, option), &mut cursor);
                let n = plan.axes.keys.len();
                let text: Vec<&str> = plan
                    .axes
                    .cells(&cursor.digits[..n])
                    .map(|c| c.raw.as_str())
                    .collect();
                let want = fnv_add(fnv_add(prefix, text.join("|").as_bytes()), &[0xff]);
                proptest::prop_assert_eq!(got, want);
                // The one-pass hash `merge` checks rows with is the same.
                let once = config_hash_of(lead, text.iter().map(|t| t.as_bytes()));
                proptest::prop_assert_eq!(got, once);
            }
        }
    }

    #[test]
    fn measured_switch_rates_and_group_widths_reach_the_profile() {
        // A policy that switched on 30 of 1000 steps: the profile carries 0.03, not the
        // rate of independent draws from its 70/30 mix (0.42).
        let mut dynamic = option(vec![(8, 8), (16, 16)], vec![0.7, 0.3]);
        let estimated = dynamic.profile().switch_rate;
        assert!((estimated - 0.42).abs() < 1e-12, "{estimated}");
        dynamic.switch_rate = Some(0.03);
        assert_eq!(dynamic.profile().switch_rate, 0.03);
        // The measured first and last steps' levels reach the profile too.
        dynamic.first_step_fractions = vec![0.0, 1.0];
        dynamic.last_step_fractions = vec![0.25, 0.75];
        let p = dynamic.profile();
        assert_eq!(p.first_step_fraction, vec![0.0, 1.0]);
        assert_eq!(p.last_step_fraction, vec![0.25, 0.75]);
        // A fixed option has no switches whatever it carries.
        let mut fixed = option(vec![(16, 16)], vec![1.0]);
        fixed.switch_rate = Some(0.5);
        assert_eq!(fixed.profile().switch_rate, 0.0);
        // DPRed: the measured activation widths and the group size.
        fixed.dpred_group_size = 16;
        fixed.activation_group_widths = vec![0.0, 0.25, 0.75];
        let p = fixed.profile();
        assert_eq!(p.group_width_fractions, vec![0.0, 0.25, 0.75]);
        assert_eq!(p.group_size, 16);
    }
}
