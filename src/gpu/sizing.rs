//! Sizing chunks of lanes to the adapter's limits: each buffer a chunk uses holds at most
//! the per-buffer cap (the adapter's binding and buffer limits, and lstm-dse's own 1 GiB), so
//! a chunk has as many lanes as the largest per-lane buffer allows; what cannot be split (one
//! layer's weights at one config, one sequence's states) is refused, naming the model.

use super::lstm::BUFFER_CAP;
use super::upload::upload_words;
use super::{GpuContext, GpuError};
use crate::lstm::eval::Plan;
use crate::lstm::npy::Sequences;
use crate::lstm::Model;

/// The hint of a refusal of one layer's weights at one config (all the levels of a policy):
/// chunks already hold one config each.
const TOO_LARGE_WEIGHTS: &str =
    "one layer's weights at one config (every level of a policy) are never split, so ";

/// The hint of a refusal of one sequence's states: chunks already hold one lane each.
const TOO_LARGE_SEQUENCE: &str =
    "one sequence's states are never split (chunks already run one lane at a time): give fewer steps, or ";

/// Bytes of the largest buffer one lane of `steps` steps needs in any layer: its input or
/// states over every step, its recurrent state, its stage entries, and (`reduce`) its step
/// errors (four f64 per direction and step).
fn lane_buffer_bytes(model: &Model, steps: usize, reduce: bool) -> u64 {
    let steps = steps as u64;
    let mut input = model.input_size() as u64;
    let mut most = 0u64;
    for layer in &model.layers {
        let (d, h) = (layer.direction.count() as u64, layer.hidden_size as u64);
        let per_lane = [
            steps * input.max(2 * d * h),
            steps * 2 * d * h,
            d * 8 * h,
            d * (4 + 4 * h + input + steps),
            u64::from(reduce) * steps * 8 * d,
        ];
        most = most.max(4 * per_lane.iter().max().copied().unwrap_or(0));
        input = layer.output_size() as u64;
    }
    most
}

/// The most lanes of `steps` steps a chunk of policy lanes holds on any adapter (the per-buffer
/// cap is at most 1 GiB): what a host may hold of one chunk at a time.
pub fn policy_chunk_lanes(model: &Model, steps: usize) -> u64 {
    (BUFFER_CAP / lane_buffer_bytes(model, steps, false).max(1)).max(1)
}

impl GpuContext {
    pub(super) fn cap(&self) -> (u64, &'static str) {
        let binding = self.limits.max_storage_buffer_binding_size;
        let buffer = self.limits.max_buffer_size;
        let have = binding.min(buffer).min(self.buffer_cap);
        let name = if have == self.buffer_cap && self.buffer_cap < binding.min(buffer) {
            "lstm-dse's per-buffer cap"
        } else if binding <= buffer {
            "max_storage_buffer_binding_size"
        } else {
            "max_buffer_size"
        };
        (have, name)
    }

    /// The refusal of a buffer of `need` bytes holding `what` of `model` (its file or
    /// `builtin:NAME`), which cannot be split further, with what to do (`hint`).
    pub(super) fn too_large(
        &self,
        model: &str,
        what: String,
        need: u64,
        hint: &'static str,
    ) -> GpuError {
        let (have, limit) = self.cap();
        GpuError::TooLarge(Box::new(super::TooLarge {
            model: model.to_string(),
            adapter: self.adapter.name.clone(),
            what,
            need,
            limit,
            have,
            hint,
        }))
    }

    /// The largest chunk (groups, sequences) within the limits: `groups` configs (each plan
    /// of `units` alone), or policies (`units`: all the levels, uploaded together); `reduce`
    /// for a run reduced on the device.
    pub(super) fn chunk_shape(
        &self,
        model: &Model,
        seqs: &Sequences,
        groups: usize,
        units: &[Vec<&Plan>],
        policy: bool,
        reduce: bool,
    ) -> Result<(usize, usize), GpuError> {
        let (cap, _) = self.cap();
        let steps = seqs.steps as u64;
        let lane_bytes = lane_buffer_bytes(model, seqs.steps, reduce);
        // Bytes per group (config, or all levels) of the largest layer.
        let mut group_bytes = 0u64;
        for l in 0..model.layers.len() {
            for unit in units {
                let (weights, tables) = upload_words(unit, l);
                let need = 4 * weights.max(tables).max(1) as u64;
                if need > cap {
                    return Err(self.too_large(
                        &model.name,
                        format!("layer {l}'s weights at {}", unit[unit.len() - 1].config),
                        need,
                        TOO_LARGE_WEIGHTS,
                    ));
                }
                group_bytes = group_bytes.max(need);
            }
        }
        if lane_bytes > cap {
            return Err(self.too_large(
                &model.name,
                format!("one sequence of {steps} steps"),
                lane_bytes,
                TOO_LARGE_SEQUENCE,
            ));
        }
        let max_lanes = (cap / lane_bytes.max(1)) as usize;
        let max_groups = if policy {
            usize::MAX
        } else {
            (cap / group_bytes.max(1)).max(1) as usize
        };
        let seq_chunk = seqs.count.min(max_lanes).max(1);
        let group_chunk = groups
            .min(max_groups)
            .min((max_lanes / seq_chunk).max(1))
            .max(1);
        Ok((group_chunk, seq_chunk))
    }
}
