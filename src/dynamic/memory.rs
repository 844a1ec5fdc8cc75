//! What a policy simulation holds in memory, estimated before it runs (checked against
//! `--max-memory`): every lane's result to the end, and one chunk of lanes' working buffers
//! while a layer runs. Once only the results were counted, and a run peaked at twice its
//! estimate (`tests/dynamic_memory.rs` holds the estimate above a measured peak).

use super::lanes::chunk_lanes;
use crate::lstm::eval;
use crate::lstm::eval::gemm::COL_ALIGN;
use crate::lstm::Model;
use crate::trace::Engine;

/// What the allocator adds to each allocation of a lane's result, in bytes: its header and
/// its rounding to 16 bytes (an assumption, glibc's malloc on 64-bit Linux: 8 bytes of header,
/// rounding up to 16).
const PER_ALLOCATION: u128 = 32;

/// Bytes one simulated lane (a policy on a sequence of `steps` steps) keeps: per layer and
/// direction the hidden and cell values (f32), the level (u8) and the metric (f64) of every
/// step, and the head output; with the vectors that hold them ([`super::LaneResult`]) and
/// what the allocator adds to each.
fn lane_bytes(model: &Model, steps: usize) -> u128 {
    // h and c of a layer are one vector each: one of a megabyte or more is a mapping of its
    // own, whole megabytes (`bigalloc`).
    let states: u128 = (model.layers.iter())
        .map(|l| {
            let bytes = 4 * (steps * l.direction.count() * l.hidden_size) as u128;
            2 * crate::bigalloc::footprint(bytes)
        })
        .sum();
    let head = (model.head.as_ref()).map_or(0, |h| 4 * (h.output_size() * h.rows(steps)) as u128);
    // The lane's vectors: of layers (h, c), of levels and of metrics, each grown by pushes
    // (capacity at most twice the layers); per layer h, c and a vector of directions for the
    // levels and one for the metrics (grown by pushes: capacity 4); per layer direction the
    // levels and the metrics.
    let layers = model.layers.len() as u128;
    let dirs: u128 = model
        .layers
        .iter()
        .map(|l| l.direction.count() as u128)
        .sum();
    let vec = std::mem::size_of::<Vec<u8>>() as u128;
    let headers = std::mem::size_of::<super::LaneResult>() as u128
        + 2 * layers.max(2) * (2 * vec + 2 * vec)
        + 2 * layers * 4 * vec;
    let allocations = 4 + 4 * layers + 2 * dirs;
    // Per layer direction and step: the level (1 byte) and the metric (8).
    states + 9 * dirs * steps as u128 + head + headers + allocations * PER_ALLOCATION
}

/// Bytes one lane takes in a chunk's working buffers while a layer runs on the CPU
/// ([`super::CpuPolicies`]), the largest layer's: per level the input products of every step
/// (4H i64, `lanes.rs`; one level more: the second product of codes wider than 16 bits,
/// `exact.rs`), the input quantized (i32, and its transposed copy, or a float copy), the h and c
/// outputs (f32) of the layer running and of the one it reads, the first layer's input
/// repeated per policy, and (a state kept as values) each lane's h and c before they are
/// gathered.
fn cpu_workspace_per_lane(model: &Model, steps: usize, levels: usize) -> u128 {
    let mut input = model.input_size() as u128;
    let mut widest = 0u128;
    for l in &model.layers {
        let units = l.direction.count() as u128 * l.hidden_size as u128;
        let products = (levels as u128 + 1) * 4 * l.hidden_size as u128 * 8;
        widest = widest.max(products + 8 * input + 3 * 8 * units);
        input = l.output_size() as u128;
    }
    steps as u128 * (widest + 4 * model.input_size() as u128)
}

/// Bytes the host holds for one lane of a chunk on the GPU: a layer's h and c words read back
/// (through a host-visible staging copy), each lane's copy of them, the values they decode to
/// and those gathered per group: four times a layer's output.
fn gpu_workspace_per_lane(model: &Model, steps: usize) -> u128 {
    let widest = (model.layers.iter())
        .map(|l| l.direction.count() as u128 * l.hidden_size as u128)
        .max()
        .unwrap_or(0);
    steps as u128 * 32 * widest
}

/// Bytes one lane takes in a GPU chunk's device buffers: its input, and the h and c of every
/// layer's steps (a layer's output stays on the device for the next one), twice: the staging
/// copies they are read back through.
fn gpu_device_per_lane(model: &Model, steps: usize) -> u128 {
    let states: u128 = (model.layers.iter())
        .map(|l| 2 * l.direction.count() as u128 * l.hidden_size as u128)
        .sum();
    8 * steps as u128 * (model.input_size() as u128 + states)
}

/// What a CPU implementation of the GPU (llvmpipe) holds beside the program: its compiler and
/// its pipelines (a one-policy run of `builtin:tiny` over 256 x 10 peaks at 166 MB on
/// lavapipe, 22 MB on the CPU backend).
const CPU_ADAPTER: u128 = 192 << 20;

/// The program's own resident memory before it allocates anything of a run: code, libraries,
/// the allocator's arenas (a one-policy run of `builtin:tiny` over 256 x 10 peaks at 22 MB).
const PROGRAM: u128 = 32 << 20;

/// Bytes of the model's weights as floats ([`Model::lstm_weights`]) and its plans at every
/// level ([`eval::plan_bytes`]: codes, packs and activation tables); `None` past u128.
fn weights_bytes(model: &Model, levels: usize) -> Option<u128> {
    let floats = model.lstm_weights()?.checked_mul(4)?;
    floats.checked_add(eval::plan_bytes(model, levels)?)
}

/// The memory a simulation of `lanes` lanes (policies x sequences) of `steps` steps at
/// `levels` levels takes at its peak on `engine`: every lane's result ([`lane_bytes`]) and one
/// chunk of lanes' working buffers, with the program and the model's weights at every level;
/// on a CPU adapter (lavapipe) the device's buffers too, which are the host's memory there.
/// `None` when it overflows.
fn sim_bytes(
    model: &Model,
    steps: usize,
    levels: usize,
    lanes: u128,
    engine: &Engine,
) -> Option<u128> {
    let kept = lanes.checked_mul(lane_bytes(model, steps))?;
    let workspace = match engine {
        Engine::Gpu(ctx) => {
            // A chunk's lanes: as many as its largest buffer per lane allows under the cap.
            let chunk = lanes.min(crate::gpu::policy_chunk_lanes(model, steps) as u128);
            let host = chunk.saturating_mul(gpu_workspace_per_lane(model, steps));
            let device = match ctx.is_cpu() {
                true => (chunk.saturating_mul(gpu_device_per_lane(model, steps)))
                    .saturating_add(CPU_ADAPTER),
                false => 0,
            };
            host.saturating_add(device)
        }
        Engine::Cpu => {
            let total = usize::try_from(lanes).unwrap_or(usize::MAX);
            // Lanes run in columns of 16 (`COL_ALIGN`): a chunk's buffers are padded to them.
            let chunk = chunk_lanes(model, steps, levels, total).div_ceil(COL_ALIGN) * COL_ALIGN;
            (chunk as u128).checked_mul(cpu_workspace_per_lane(model, steps, levels))?
        }
    };
    kept.checked_add(workspace)?
        .checked_add(PROGRAM)?
        .checked_add(weights_bytes(model, levels)?)
}

/// What `dynamic::run` holds at its peak: the simulation ([`sim_bytes`]) of `policies` x
/// `sequences` lanes and the float64 reference they are judged against
/// ([`eval::run_bytes`]). The sweep's check of a policy option counts it the same way, so
/// that the run's own check never refuses what the sweep let pass. `None` when it overflows.
pub fn policy_run_bytes(
    model: &Model,
    sequences: usize,
    steps: usize,
    levels: usize,
    policies: u128,
    engine: &Engine,
) -> Option<u128> {
    let lanes = policies.saturating_mul(sequences as u128);
    let sim = sim_bytes(model, steps, levels, lanes, engine)?;
    sim.checked_add(eval::run_bytes(model, sequences, steps)?)
}
