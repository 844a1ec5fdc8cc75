//! lstm-dse: design-space exploration for LSTM inference accelerators.
//!
//! The pipeline: a model and input sequences ([`lstm`]) are evaluated at many numeric
//! precisions ([`format`]) to obtain error and precision traces; those traces and ranges of
//! accelerator parameters feed an analytical cost model; the results are swept, written as CSV
//! and reduced to Pareto fronts. [`cli`] holds the command-line surface and [`commands`] runs it.

pub mod accel;
pub mod bigalloc;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod console;
pub mod cpu;
pub mod dynamic;
pub mod format;
pub mod gpu;
pub mod grid;
pub mod inputs;
pub mod limits;
pub mod lstm;
pub mod pareto;
pub mod report;
pub mod sweep;
pub mod trace;
pub mod view;

/// Big buffers in mappings of their own, kept for reuse (see [`bigalloc`]).
#[global_allocator]
static ALLOC: bigalloc::BigAlloc = bigalloc::BigAlloc;
