//! The analytical accelerator model: for an LSTM inference accelerator configuration (`Arch`,
//! from `sweeps/arch/*.toml`) and a workload (layer shapes, sequence length, batch, measured
//! precision mix), closed-form cycles, energy and area. It covers an E-PUR-style baseline,
//! precision-scaled multipliers (bit-parallel and bit-serial), LSTM-Sharp tiled dispatch and
//! scheduling, three multicore modes over a shared DRAM, weight residency and streaming with
//! DPRed compression, and dynamic precision with its tracking unit. Pure functions apart from
//! the small loaders (`load_arch`, `read_policy`); every equation is in docs/MODEL.md.
//!
//! Typical use:
//! ```no_run
//! use lstm_dse::accel::{apply_set, evaluate, load_arch, Arch, LayerShape, PrecisionProfile, Workload};
//! # fn main() -> Result<(), lstm_dse::accel::AccelError> {
//! let path = std::path::Path::new("sweeps/arch/epur.toml");
//! let mut spec = load_arch(path)?;
//! apply_set(&mut spec, "compute.units=8")?;
//! let arch = Arch::from_spec(&spec, "sweeps/arch/epur.toml")?;
//! let workload = Workload {
//!     name: "toy".into(),
//!     layers: vec![LayerShape { input_size: 256, hidden_size: 256, directions: 1 }],
//!     head: Default::default(),
//!     seq_len: 50,
//!     batch: 1,
//!     precision: PrecisionProfile::fixed(16, 16),
//! };
//! let point = evaluate(&arch, &workload)?;
//! println!("{:.1} us", point.latency_us);
//! # Ok(()) }
//! ```

mod arch;
mod crossing;
mod energy;
mod error;
mod evaluate;
mod head;
mod layer;
mod levels;
mod measured;
mod multicore;
mod multithread;
mod precision;
mod report;
mod set;
mod shared;
mod sim;
mod spec;
mod sums;
mod timeline;
mod timing;
mod workload;

#[cfg(test)]
mod test_golden;
#[cfg(test)]
mod test_inputs;
#[cfg(test)]
mod test_measure;
#[cfg(test)]
mod test_model;
#[cfg(test)]
mod test_sim;
#[cfg(test)]
mod test_sim_cores;
#[cfg(test)]
mod test_sim_leads;
#[cfg(test)]
mod test_sim_mix;
#[cfg(test)]
mod test_sim_pipeline;
#[cfg(test)]
mod test_sim_points;
#[cfg(test)]
mod test_sim_segments;
#[cfg(test)]
mod test_sim_streams;
#[cfg(test)]
mod test_sim_walks;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod test_tail;
#[cfg(test)]
mod test_validation;

pub use arch::{
    loosened_for, Arch, Area, Compute, Dispatch, Energy, Memory, Multicore, Schedule, Technology,
    Tracking, REFERENCE_NODE_NM,
};
pub use energy::{area, AreaBreakdown};
pub use error::AccelError;
pub use evaluate::{evaluate, DesignPoint, SWEEP_COLUMNS};
pub use levels::{level_sequence, realise_levels, sim_bytes, SIM_BYTES_PER_LAYER_STEP};
pub use measured::{format_bits, parse_policy, read_group_ratios, read_group_widths, read_policy};
pub use precision::{independent_switch_rate, PrecisionLevel, PrecisionProfile};
pub use report::{compare, format_summary, AccelCsvRow, Comparison};
pub use set::Override;
pub use sim::{simulate, simulate_plans, simulate_with, SimPlan, SimResult};
pub use spec::{
    apply_set, load_arch, ArchSpec, AreaSpec, ComputeSpec, DispatchPolicy, DispatchSpec,
    EnergySpec, InputProduct, MemorySpec, MulticoreMode, MulticoreSpec, MultiplierKind,
    ScheduleSpec, TechnologySpec, TrackingSpec,
};
pub use timing::MAX_PRECISION_LEVELS;
pub use workload::{workload_of, DenseShape, HeadShape, LayerShape, Workload};

/// The version of the accelerator model behind every figure it gives. Bump it with every
/// change to the model that changes any design point's figure (the rule is stated in
/// docs/MODEL.md); a sweep records it in `spec.resolved.toml`, and `--resume` and `merge`
/// refuse to combine rows of different versions. `tests/golden/accel_points.csv` records the
/// version it was made with, and its test fails when either that or a figure differs.
pub const MODEL_VERSION: u32 = 7;

/// Loads, applies `--set` overrides in order, and validates: the one call the CLI needs.
pub fn load_arch_with_overrides(
    path: &std::path::Path,
    overrides: &[String],
) -> Result<Arch, AccelError> {
    let mut spec = load_arch(path)?;
    for assignment in overrides {
        apply_set(&mut spec, assignment)?;
    }
    Arch::from_spec(&spec, &path.display().to_string()).map_err(|e| blame_set(e, overrides))
}

/// A field out of range that the last `--set` of its key gave is that override's error, not
/// the file's: `--set 'compute.units=-1': must be >= 1, got -1`.
fn blame_set(e: AccelError, overrides: &[String]) -> AccelError {
    let AccelError::Invalid { field, message, .. } = &e else {
        return e;
    };
    let set = overrides.iter().rev().find(|a| {
        a.split_once('=')
            .is_some_and(|(key, _)| key.trim() == field.as_str())
    });
    match set {
        Some(assignment) => AccelError::Set {
            assignment: assignment.clone(),
            message: message.clone(),
        },
        None => e,
    }
}
