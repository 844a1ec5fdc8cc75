//! The validated architecture: `Arch` is what `evaluate` reads. It is built once from an
//! `ArchSpec` by `Arch::from_spec`, which checks every range (sizes >= 1, energies >= 0,
//! precisions the multiplier can run) and converts to domain types with units in their names,
//! so the hot path never re-checks a field.

use super::error::{compact, invalid, AccelError};
use super::spec::{ArchSpec, DispatchPolicy, InputProduct, MulticoreMode, MultiplierKind};

/// Compute resources of one core.
#[derive(Debug, Clone, PartialEq)]
pub struct Compute {
    pub units: u32,
    pub multipliers_per_unit: u32,
    pub multiplier_bits: u32,
    pub multiplier_kind: MultiplierKind,
    pub min_precision_bits: u32,
    pub clock_mhz: f64,
    pub tail_lanes: u32,
    pub tail_latency_cycles: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub policy: DispatchPolicy,
    pub tile_rows: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub input_product: InputProduct,
    pub overlap_tail: bool,
    pub reconfig_cycles: u32,
    pub precision_switch_cycles: u32,
}

/// On-chip memories are per core; DRAM bandwidth is shared by all cores.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub sram_weight_kib: f64,
    pub sram_activation_kib: f64,
    pub dram_gb_per_s: f64,
    pub sram_bank_kib: f64,
    pub sram_row_bits: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Energy {
    pub mult_pj_8bit: f64,
    pub add_pj_32bit: f64,
    pub bit_parallel_overhead: f64,
    pub sram_pj_per_bit_8kib: f64,
    pub sram_size_exponent: f64,
    pub dram_pj_per_byte: f64,
    pub tail_pj_per_element: f64,
    pub static_mw_per_mm2: f64,
    pub sram_access_share: f64,
    pub precision_switch_pj: f64,
    pub softmax_pj_per_element: f64,
}

/// The process node and the factors applied to the 45 nm reference figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Technology {
    pub node_nm: f64,
    /// (node / 45)^energy_exponent: applied to every on-chip pJ figure (not DRAM).
    pub energy_scale: f64,
    /// (node / 45)^area_exponent: applied to every area figure.
    pub area_scale: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    pub mult_um2_8bit: f64,
    pub add_um2_32bit: f64,
    pub bit_parallel_overhead: f64,
    pub serial_lane_um2_per_bit: f64,
    pub sram_mm2_per_kib: f64,
    pub tail_um2_per_lane: f64,
    pub control_mm2_per_unit: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tracking {
    pub enabled: bool,
    pub pj_per_element: f64,
    pub area_mm2: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Multicore {
    pub cores: u32,
    pub mode: MulticoreMode,
    pub link_latency_cycles: u32,
    pub link_gb_per_s: f64,
    pub link_pj_per_byte: f64,
    pub link_area_mm2_per_core: f64,
}

/// A validated accelerator configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Arch {
    /// Shared, so that cloning an architecture (once per sweep point) does not allocate.
    pub name: std::sync::Arc<str>,
    pub compute: Compute,
    pub dispatch: Dispatch,
    pub schedule: Schedule,
    pub memory: Memory,
    pub energy: Energy,
    pub area: Area,
    pub tracking: Tracking,
    pub multicore: Multicore,
    pub technology: Technology,
}

/// The node of the reference energy and area figures (Horowitz, ISSCC 2014).
pub const REFERENCE_NODE_NM: f64 = 45.0;

struct Checker<'a> {
    origin: &'a str,
}

// Inlined, with the error paths out of line: a sweep validates every field of a fresh
// architecture point, millions of times.
impl Checker<'_> {
    #[inline]
    fn count(&self, field: &str, v: i64, min: i64) -> Result<u32, AccelError> {
        match u32::try_from(v) {
            Ok(x) if v >= min => Ok(x),
            _ => Err(self.bad_count(field, v, min)),
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_count(&self, field: &str, v: i64, min: i64) -> AccelError {
        if v < min {
            invalid(self.origin, field, format!("must be >= {min}, got {v}"))
        } else {
            invalid(self.origin, field, format!("too large: {v}"))
        }
    }

    #[inline]
    fn positive(&self, field: &str, v: f64) -> Result<f64, AccelError> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(self.bad(field, "> 0", v))
        }
    }

    #[inline]
    fn non_negative(&self, field: &str, v: f64) -> Result<f64, AccelError> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(self.bad(field, ">= 0", v))
        }
    }

    #[inline]
    fn factor(&self, field: &str, v: f64) -> Result<f64, AccelError> {
        if v.is_finite() && v >= 1.0 {
            Ok(v)
        } else {
            Err(self.bad(field, ">= 1", v))
        }
    }

    #[cold]
    #[inline(never)]
    fn bad(&self, field: &str, bound: &str, v: f64) -> AccelError {
        let problem = match v.is_finite() {
            true => format!("must be {bound}, got {}", compact(v)),
            false => format!("must be a finite number {bound}, got {}", compact(v)),
        };
        invalid(self.origin, field, problem)
    }
}

/// `ratio^exponent`; exactly 1 at the reference node without calling `powf` (as `powf` gives).
#[inline]
fn scale(ratio: f64, exponent: f64) -> f64 {
    if ratio == 1.0 {
        1.0
    } else {
        ratio.powf(exponent)
    }
}

/// `spec` with the fields that `key`'s checks compare it with (the checks of
/// [`Arch::from_spec`] between fields) set to values that pass every such comparison, so that
/// a value of `key` applied to the result is refused only by its own bounds: a sweep refuses
/// such a value once instead of skipping every point that has it.
pub fn loosened_for(spec: &ArchSpec, key: &str) -> ArchSpec {
    let mut s = spec.clone();
    match key {
        "compute.multiplier_bits" => {
            s.compute.min_precision_bits = 1;
            s.compute.multiplier_kind = MultiplierKind::Fixed;
        }
        "compute.min_precision_bits" => {
            s.compute.multiplier_bits = u32::MAX as i64;
            s.compute.multiplier_kind = MultiplierKind::Fixed;
        }
        _ => {}
    }
    s
}

impl Arch {
    /// Checks every field of `spec`; `origin` (usually the file path) names it in errors.
    pub fn from_spec(spec: &ArchSpec, origin: &str) -> Result<Arch, AccelError> {
        Arch::checked(spec, origin, spec.name.as_str().into())
    }

    /// [`Arch::from_spec`] for a sweep's next point: `like`'s name is shared when `spec`
    /// has the same one (no allocation per point).
    pub fn from_spec_like(spec: &ArchSpec, origin: &str, like: &Arch) -> Result<Arch, AccelError> {
        let name = if *like.name == *spec.name {
            like.name.clone()
        } else {
            spec.name.as_str().into()
        };
        Arch::checked(spec, origin, name)
    }

    fn checked(
        spec: &ArchSpec,
        origin: &str,
        name: std::sync::Arc<str>,
    ) -> Result<Arch, AccelError> {
        let c = Checker { origin };
        let s = &spec.compute;
        let multiplier_bits = c.count("compute.multiplier_bits", s.multiplier_bits, 1)?;
        let min_precision_bits = c.count("compute.min_precision_bits", s.min_precision_bits, 1)?;
        if min_precision_bits > multiplier_bits {
            return Err(invalid(
                origin,
                "compute.min_precision_bits",
                format!("must be <= compute.multiplier_bits ({multiplier_bits}), got {min_precision_bits}"),
            ));
        }
        if s.multiplier_kind == MultiplierKind::BitParallel
            && !(multiplier_bits.is_power_of_two() && min_precision_bits.is_power_of_two())
        {
            return Err(invalid(
                origin,
                "compute.multiplier_bits",
                format!(
                    "a bit-parallel multiplier splits in halves: multiplier_bits and min_precision_bits must be powers of two, got {multiplier_bits} and {min_precision_bits}"
                ),
            ));
        }
        let compute = Compute {
            units: c.count("compute.units", s.units, 1)?,
            multipliers_per_unit: c.count(
                "compute.multipliers_per_unit",
                s.multipliers_per_unit,
                1,
            )?,
            multiplier_bits,
            multiplier_kind: s.multiplier_kind,
            min_precision_bits,
            clock_mhz: c.positive("compute.clock_mhz", s.clock_mhz)?,
            tail_lanes: c.count("compute.tail_lanes", s.tail_lanes, 1)?,
            tail_latency_cycles: c.count(
                "compute.tail_latency_cycles",
                s.tail_latency_cycles,
                0,
            )?,
        };
        let dispatch = Dispatch {
            policy: spec.dispatch.policy,
            tile_rows: c.count("dispatch.tile_rows", spec.dispatch.tile_rows, 1)?,
        };
        let schedule = Schedule {
            input_product: spec.schedule.input_product,
            overlap_tail: spec.schedule.overlap_tail,
            reconfig_cycles: c.count(
                "schedule.reconfig_cycles",
                spec.schedule.reconfig_cycles,
                0,
            )?,
            precision_switch_cycles: c.count(
                "schedule.precision_switch_cycles",
                spec.schedule.precision_switch_cycles,
                0,
            )?,
        };
        let tech = &spec.technology;
        let node_nm = c.positive("technology.node_nm", tech.node_nm)?;
        let ratio = node_nm / REFERENCE_NODE_NM;
        let technology = Technology {
            node_nm,
            energy_scale: scale(
                ratio,
                c.non_negative("technology.energy_exponent", tech.energy_exponent)?,
            ),
            area_scale: scale(
                ratio,
                c.non_negative("technology.area_exponent", tech.area_exponent)?,
            ),
        };
        let (es, ar) = (technology.energy_scale, technology.area_scale);
        let m = &spec.memory;
        let memory = Memory {
            sram_weight_kib: c.non_negative("memory.sram_weight_kib", m.sram_weight_kib)?,
            sram_activation_kib: c
                .non_negative("memory.sram_activation_kib", m.sram_activation_kib)?,
            dram_gb_per_s: c.positive("memory.dram_gb_per_s", m.dram_gb_per_s)?,
            sram_bank_kib: c.positive("memory.sram_bank_kib", m.sram_bank_kib)?,
            sram_row_bits: c.count("memory.sram_row_bits", m.sram_row_bits, 1)?,
        };
        let e = &spec.energy;
        let energy = Energy {
            mult_pj_8bit: es * c.non_negative("energy.mult_pj_8bit", e.mult_pj_8bit)?,
            add_pj_32bit: es * c.non_negative("energy.add_pj_32bit", e.add_pj_32bit)?,
            bit_parallel_overhead: c
                .factor("energy.bit_parallel_overhead", e.bit_parallel_overhead)?,
            sram_pj_per_bit_8kib: es
                * c.non_negative("energy.sram_pj_per_bit_8kib", e.sram_pj_per_bit_8kib)?,
            sram_size_exponent: c
                .non_negative("energy.sram_size_exponent", e.sram_size_exponent)?,
            dram_pj_per_byte: c.non_negative("energy.dram_pj_per_byte", e.dram_pj_per_byte)?,
            tail_pj_per_element: es
                * c.non_negative("energy.tail_pj_per_element", e.tail_pj_per_element)?,
            static_mw_per_mm2: c.non_negative("energy.static_mw_per_mm2", e.static_mw_per_mm2)?,
            sram_access_share: c.non_negative("energy.sram_access_share", e.sram_access_share)?,
            precision_switch_pj: es
                * c.non_negative("energy.precision_switch_pj", e.precision_switch_pj)?,
            softmax_pj_per_element: es
                * c.non_negative("energy.softmax_pj_per_element", e.softmax_pj_per_element)?,
        };
        if energy.sram_access_share > 1.0 {
            return Err(invalid(
                origin,
                "energy.sram_access_share",
                format!("must be <= 1, got {}", compact(energy.sram_access_share)),
            ));
        }
        let a = &spec.area;
        let area = Area {
            mult_um2_8bit: ar * c.non_negative("area.mult_um2_8bit", a.mult_um2_8bit)?,
            add_um2_32bit: ar * c.non_negative("area.add_um2_32bit", a.add_um2_32bit)?,
            bit_parallel_overhead: c
                .factor("area.bit_parallel_overhead", a.bit_parallel_overhead)?,
            serial_lane_um2_per_bit: ar
                * c.non_negative("area.serial_lane_um2_per_bit", a.serial_lane_um2_per_bit)?,
            sram_mm2_per_kib: ar * c.non_negative("area.sram_mm2_per_kib", a.sram_mm2_per_kib)?,
            tail_um2_per_lane: ar
                * c.non_negative("area.tail_um2_per_lane", a.tail_um2_per_lane)?,
            control_mm2_per_unit: ar
                * c.non_negative("area.control_mm2_per_unit", a.control_mm2_per_unit)?,
        };
        let t = &spec.tracking;
        let tracking = Tracking {
            enabled: t.enabled,
            pj_per_element: es * c.non_negative("tracking.pj_per_element", t.pj_per_element)?,
            area_mm2: ar * c.non_negative("tracking.area_mm2", t.area_mm2)?,
        };
        let mc = &spec.multicore;
        let multicore = Multicore {
            cores: c.count("multicore.cores", mc.cores, 1)?,
            mode: mc.mode,
            link_latency_cycles: c.count(
                "multicore.link_latency_cycles",
                mc.link_latency_cycles,
                0,
            )?,
            link_gb_per_s: c.positive("multicore.link_gb_per_s", mc.link_gb_per_s)?,
            link_pj_per_byte: es
                * c.non_negative("multicore.link_pj_per_byte", mc.link_pj_per_byte)?,
            link_area_mm2_per_core: ar
                * c.non_negative(
                    "multicore.link_area_mm2_per_core",
                    mc.link_area_mm2_per_core,
                )?,
        };
        Ok(Arch {
            name,
            compute,
            dispatch,
            schedule,
            memory,
            energy,
            area,
            tracking,
            multicore,
            technology,
        })
    }

    /// DRAM bytes per clock cycle for the whole chip (shared by all cores).
    pub fn dram_bytes_per_cycle(&self) -> f64 {
        self.memory.dram_gb_per_s * 1e3 / self.compute.clock_mhz
    }

    /// Whether the layers run as a pipeline over several cores (multithreading): input
    /// products per step, and layers that may share a core.
    pub fn multithreading(&self) -> bool {
        self.multicore.cores > 1 && self.multicore.mode == MulticoreMode::Multithreading
    }

    /// Bytes per clock cycle of one core's inter-core link.
    pub fn link_bytes_per_cycle(&self) -> f64 {
        self.multicore.link_gb_per_s * 1e3 / self.compute.clock_mhz
    }
}
