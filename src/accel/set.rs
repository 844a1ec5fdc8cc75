//! Overrides parsed once and applied many times: a sweep sets the same few fields to a few
//! values on millions of architecture points, so each `key=value` is checked once with
//! [`apply_set`] (the one definition of what a `--set` means) and turned into an [`Override`]
//! that writes the typed value straight into the field, with no TOML round trip per point.
//!
//! [`FIELDS`] maps every dotted key to an accessor of its field. A key missing from it (a field
//! added to [`ArchSpec`] without a line here) still works through the slow, generic path, and
//! the test `every_field_has_a_typed_setter` names it.

use super::error::AccelError;
use super::spec::{
    apply_set, ArchSpec, DispatchPolicy, InputProduct, MulticoreMode, MultiplierKind,
};

/// A mutable view of one field of an [`ArchSpec`], by type.
#[derive(Clone, Copy)]
enum Field {
    Int(fn(&mut ArchSpec) -> &mut i64),
    Float(fn(&mut ArchSpec) -> &mut f64),
    Bool(fn(&mut ArchSpec) -> &mut bool),
    Text(fn(&mut ArchSpec) -> &mut String),
    Multiplier(fn(&mut ArchSpec) -> &mut MultiplierKind),
    Dispatch(fn(&mut ArchSpec) -> &mut DispatchPolicy),
    Input(fn(&mut ArchSpec) -> &mut InputProduct),
    Mode(fn(&mut ArchSpec) -> &mut MulticoreMode),
}

macro_rules! fields {
    ($( $kind:ident $key:literal => $($path:ident).+ ;)*) => {
        /// Every dotted key of an [`ArchSpec`] with its typed accessor.
        const FIELDS: &[(&str, Field)] = &[
            $( ($key, Field::$kind(|s| &mut s.$($path).+)), )*
        ];
    };
}

fields! {
    Text "name" => name;
    Int "compute.units" => compute.units;
    Int "compute.multipliers_per_unit" => compute.multipliers_per_unit;
    Int "compute.multiplier_bits" => compute.multiplier_bits;
    Multiplier "compute.multiplier_kind" => compute.multiplier_kind;
    Int "compute.min_precision_bits" => compute.min_precision_bits;
    Float "compute.clock_mhz" => compute.clock_mhz;
    Int "compute.tail_lanes" => compute.tail_lanes;
    Int "compute.tail_latency_cycles" => compute.tail_latency_cycles;
    Dispatch "dispatch.policy" => dispatch.policy;
    Int "dispatch.tile_rows" => dispatch.tile_rows;
    Input "schedule.input_product" => schedule.input_product;
    Bool "schedule.overlap_tail" => schedule.overlap_tail;
    Int "schedule.reconfig_cycles" => schedule.reconfig_cycles;
    Int "schedule.precision_switch_cycles" => schedule.precision_switch_cycles;
    Float "memory.sram_weight_kib" => memory.sram_weight_kib;
    Float "memory.sram_activation_kib" => memory.sram_activation_kib;
    Float "memory.dram_gb_per_s" => memory.dram_gb_per_s;
    Float "memory.sram_bank_kib" => memory.sram_bank_kib;
    Int "memory.sram_row_bits" => memory.sram_row_bits;
    Float "energy.mult_pj_8bit" => energy.mult_pj_8bit;
    Float "energy.add_pj_32bit" => energy.add_pj_32bit;
    Float "energy.bit_parallel_overhead" => energy.bit_parallel_overhead;
    Float "energy.sram_pj_per_bit_8kib" => energy.sram_pj_per_bit_8kib;
    Float "energy.sram_size_exponent" => energy.sram_size_exponent;
    Float "energy.dram_pj_per_byte" => energy.dram_pj_per_byte;
    Float "energy.tail_pj_per_element" => energy.tail_pj_per_element;
    Float "energy.static_mw_per_mm2" => energy.static_mw_per_mm2;
    Float "energy.sram_access_share" => energy.sram_access_share;
    Float "energy.precision_switch_pj" => energy.precision_switch_pj;
    Float "energy.softmax_pj_per_element" => energy.softmax_pj_per_element;
    Float "technology.node_nm" => technology.node_nm;
    Float "technology.energy_exponent" => technology.energy_exponent;
    Float "technology.area_exponent" => technology.area_exponent;
    Float "area.mult_um2_8bit" => area.mult_um2_8bit;
    Float "area.add_um2_32bit" => area.add_um2_32bit;
    Float "area.bit_parallel_overhead" => area.bit_parallel_overhead;
    Float "area.serial_lane_um2_per_bit" => area.serial_lane_um2_per_bit;
    Float "area.sram_mm2_per_kib" => area.sram_mm2_per_kib;
    Float "area.tail_um2_per_lane" => area.tail_um2_per_lane;
    Float "area.control_mm2_per_unit" => area.control_mm2_per_unit;
    Bool "tracking.enabled" => tracking.enabled;
    Float "tracking.pj_per_element" => tracking.pj_per_element;
    Float "tracking.area_mm2" => tracking.area_mm2;
    Int "multicore.cores" => multicore.cores;
    Mode "multicore.mode" => multicore.mode;
    Int "multicore.link_latency_cycles" => multicore.link_latency_cycles;
    Float "multicore.link_gb_per_s" => multicore.link_gb_per_s;
    Float "multicore.link_pj_per_byte" => multicore.link_pj_per_byte;
    Float "multicore.link_area_mm2_per_core" => multicore.link_area_mm2_per_core;
}

/// One `key=value` override, checked once, applied to any number of specs.
#[derive(Clone)]
pub enum Override {
    Int(fn(&mut ArchSpec) -> &mut i64, i64),
    Float(fn(&mut ArchSpec) -> &mut f64, f64),
    Bool(fn(&mut ArchSpec) -> &mut bool, bool),
    Text(fn(&mut ArchSpec) -> &mut String, String),
    Multiplier(fn(&mut ArchSpec) -> &mut MultiplierKind, MultiplierKind),
    Dispatch(fn(&mut ArchSpec) -> &mut DispatchPolicy, DispatchPolicy),
    Input(fn(&mut ArchSpec) -> &mut InputProduct, InputProduct),
    Mode(fn(&mut ArchSpec) -> &mut MulticoreMode, MulticoreMode),
    /// A key without a typed accessor: applied through [`apply_set`] every time.
    Generic(String),
}

impl std::fmt::Debug for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Override::Int(_, v) => write!(f, "Int({v})"),
            Override::Float(_, v) => write!(f, "Float({v})"),
            Override::Bool(_, v) => write!(f, "Bool({v})"),
            Override::Text(_, v) => write!(f, "Text({v:?})"),
            Override::Multiplier(_, v) => write!(f, "{v:?}"),
            Override::Dispatch(_, v) => write!(f, "{v:?}"),
            Override::Input(_, v) => write!(f, "{v:?}"),
            Override::Mode(_, v) => write!(f, "{v:?}"),
            Override::Generic(a) => write!(f, "Generic({a:?})"),
        }
    }
}

impl Override {
    /// Checks `key=value` as [`apply_set`] does (same errors, same meaning of the value) and
    /// returns the typed override. `base` is any valid spec (the value is tried on a copy).
    pub fn parse(base: &ArchSpec, key: &str, value: &str) -> Result<Override, AccelError> {
        let assignment = format!("{}={}", key.trim(), value.trim());
        let mut probe = base.clone();
        apply_set(&mut probe, &assignment)?;
        let Some(&(_, field)) = FIELDS.iter().find(|(k, _)| *k == key.trim()) else {
            return Ok(Override::Generic(assignment));
        };
        let p = &mut probe;
        Ok(match field {
            Field::Int(f) => Override::Int(f, *f(p)),
            Field::Float(f) => Override::Float(f, *f(p)),
            Field::Bool(f) => Override::Bool(f, *f(p)),
            Field::Text(f) => Override::Text(f, f(p).clone()),
            Field::Multiplier(f) => Override::Multiplier(f, *f(p)),
            Field::Dispatch(f) => Override::Dispatch(f, *f(p)),
            Field::Input(f) => Override::Input(f, *f(p)),
            Field::Mode(f) => Override::Mode(f, *f(p)),
        })
    }

    /// Writes the value into `spec`. Only the generic path can fail, and only where
    /// [`Override::parse`] would have failed on this spec.
    pub fn apply(&self, spec: &mut ArchSpec) -> Result<(), AccelError> {
        match self {
            Override::Int(f, v) => *f(spec) = *v,
            Override::Float(f, v) => *f(spec) = *v,
            Override::Bool(f, v) => *f(spec) = *v,
            Override::Text(f, v) => v.clone_into(f(spec)),
            Override::Multiplier(f, v) => *f(spec) = *v,
            Override::Dispatch(f, v) => *f(spec) = *v,
            Override::Input(f, v) => *f(spec) = *v,
            Override::Mode(f, v) => *f(spec) = *v,
            Override::Generic(a) => apply_set(spec, a)?,
        }
        Ok(())
    }

    /// Whether this override avoids the TOML round trip.
    pub fn is_typed(&self) -> bool {
        !matches!(self, Override::Generic(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::load_arch;
    use proptest::prelude::*;
    use std::path::Path;

    fn base() -> ArchSpec {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        load_arch(&root.join("sweeps/arch/epur.toml")).expect("epur.toml")
    }

    /// Every leaf key of a spec, from its TOML form (independent of the table above).
    fn leaf_keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_keys(v, &key, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    #[test]
    fn every_field_has_a_typed_setter() {
        let mut keys = Vec::new();
        leaf_keys(
            &toml::Value::try_from(base()).expect("serialises"),
            "",
            &mut keys,
        );
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !FIELDS.iter().any(|(f, _)| f == k))
            .collect();
        assert!(
            missing.is_empty(),
            "add these ArchSpec fields to FIELDS in src/accel/set.rs: {missing:?}"
        );
        assert_eq!(keys.len(), FIELDS.len(), "FIELDS names a key twice");
    }

    #[test]
    fn bad_overrides_fail_like_apply_set() {
        let b = base();
        for (k, v) in [
            ("compute.unitz", "4"),
            ("compute.units", "fast"),
            ("dispatch.policy", "diagonal"),
            ("compute", "4"),
        ] {
            let want = apply_set(&mut b.clone(), &format!("{k}={v}"))
                .unwrap_err()
                .to_string();
            assert_eq!(Override::parse(&b, k, v).unwrap_err().to_string(), want);
        }
    }

    fn value_for(kind: Field, pick: u32) -> String {
        let words = |w: &[&str]| w[pick as usize % w.len()].to_string();
        match kind {
            Field::Int(_) => (pick % 300).to_string(),
            Field::Float(_) => match pick % 3 {
                0 => (pick % 50).to_string(),
                1 => format!("{}", f64::from(pick) / 7.0),
                _ => format!("{:e}", f64::from(pick) * 1e-3),
            },
            Field::Bool(_) => words(&["true", "false"]),
            Field::Text(_) => words(&["a", "\"b c\"", "x-y"]),
            Field::Multiplier(_) => words(&["fixed", "bit-parallel", "bit-serial"]),
            Field::Dispatch(_) => words(&["gate-per-unit", "tiled"]),
            Field::Input(_) => words(&["batched", "per-step"]),
            Field::Mode(_) => words(&["multiprogramming", "multithreading", "helper"]),
        }
    }

    proptest! {
        /// Typed overrides give the spec that the TOML round trip (`apply_set`) gives.
        #[test]
        fn typed_overrides_equal_apply_set(picks in proptest::collection::vec((0usize..64, 0u32..10_000), 1..6)) {
            let b = base();
            let (mut typed, mut generic) = (b.clone(), b.clone());
            for (f, pick) in picks {
                let (key, field) = FIELDS[f % FIELDS.len()];
                let value = value_for(field, pick);
                let o = Override::parse(&b, key, &value).expect("valid override");
                prop_assert!(o.is_typed());
                o.apply(&mut typed).expect("typed apply");
                apply_set(&mut generic, &format!("{key}={value}")).expect("apply_set");
            }
            prop_assert_eq!(typed, generic);
        }
    }
}
