//! The wgpu backends of the [`driver`]: [`GpuConfigs`] (a group per precision config) and
//! [`GpuPolicies`] (a group per policy, the level of each step chosen on the device). Both run
//! a layer with `GpuContext::run_layer` (`run.rs`); its states stay on the device as
//! [`GpuLayer`] until the driver's sink reads them back (or reduces them: `reduce.rs`).

use super::policy::lane_values;
use super::run::{LaneSet, PolicyLanes};
use super::upload::lane_states;
use super::{GpuContext, GpuError};
use crate::lstm::driver::{Backend, Chunk, Levels, StepLevels};
use crate::lstm::eval::{LayerStates, Plan};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;

/// One layer's states of a chunk, on the device: `[lane][T][{h, c}][D*H]` words, which the
/// next layer reads in place; for policy lanes also the level of every step, read back
/// (`[lane][dir][T]`).
pub struct GpuLayer {
    pub(super) outs: wgpu::Buffer,
    pub(super) out_size: u64,
    /// Words per step of a lane in `outs`: the next layer's input stride.
    pub(super) x_stride: usize,
    pub(super) levels: Option<Vec<u32>>,
    /// Every value of the chunk's sequences is finite (checked once, at its first layer), so
    /// the formats bound every state (`upload::fused_bits`).
    pub(super) finite_input: bool,
}

/// Per-lane (h, c) values `[T, D*H]` gathered into per-group states `[nseq, T, D*H]`.
fn by_group(lanes: Vec<(Vec<f32>, Vec<f32>)>, nseq: usize) -> Vec<LayerStates> {
    let mut groups = Vec::with_capacity(lanes.len() / nseq.max(1));
    let mut lanes = lanes.into_iter();
    while lanes.len() > 0 {
        let group: Vec<(Vec<f32>, Vec<f32>)> = lanes.by_ref().take(nseq.max(1)).collect();
        let (h, c) = (group.iter()).fold((0, 0), |(h, c), l| (h + l.0.len(), c + l.1.len()));
        // Sized once: grown by doubling, each smaller buffer would stay in the allocator's
        // pool beside it (`bigalloc`).
        let mut st = LayerStates {
            h: Vec::with_capacity(h),
            c: Vec::with_capacity(c),
        };
        for (h, c) in group {
            st.h.extend(h);
            st.c.extend(c);
        }
        groups.push(st);
    }
    groups
}

/// Config lanes on the GPU: a group per plan. `reduce` sizes chunks for a run whose states
/// are reduced on the device (`GpuContext::run_reduced`).
pub struct GpuConfigs<'a> {
    pub ctx: &'a GpuContext,
    pub reduce: bool,
}

impl<'p> Backend<&'p Plan> for GpuConfigs<'_> {
    type Error = GpuError;
    type Layer = GpuLayer;

    fn chunk_shape(
        &self,
        model: &Model,
        plans: &[&'p Plan],
        seqs: &Sequences,
    ) -> Result<(usize, usize), GpuError> {
        let units: Vec<Vec<&Plan>> = plans.iter().map(|p| vec![*p]).collect();
        self.ctx
            .chunk_shape(model, seqs, plans.len(), &units, false, self.reduce)
    }

    fn layer(
        &self,
        model: &Model,
        chunk: &Chunk<&'p Plan>,
        l: usize,
        input: Option<&GpuLayer>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<GpuLayer, GpuError> {
        let set = LaneSet::Configs(chunk.groups);
        let span = (chunk.s0, chunk.nseq);
        self.ctx
            .run_layer(model, chunk.seqs, &set, span, l, input, progress)
    }

    fn states(
        &self,
        model: &Model,
        chunk: &Chunk<&'p Plan>,
        l: usize,
        out: GpuLayer,
    ) -> Result<Vec<LayerStates>, GpuError> {
        let (steps, h) = (chunk.seqs.steps, model.layers[l].hidden_size);
        let lanes = self.ctx.lane_words(&out, chunk.lanes())?;
        let values = lanes
            .iter()
            .enumerate()
            .map(|(lane, words)| {
                lane_states(&chunk.groups[lane / chunk.nseq].layers[l], words, steps, h)
            })
            .collect();
        Ok(by_group(values, chunk.nseq))
    }
}

/// Policy lanes on the GPU: a group per policy, its integer thresholds
/// (`[layer][dir * boundary]`); `lanes` holds the levels and the rest (its `bounds` unused).
pub(crate) struct GpuPolicies<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) lanes: &'a PolicyLanes<'a>,
}

impl GpuPolicies<'_> {
    fn set<'c>(&'c self, chunk: &Chunk<Vec<Vec<i32>>>) -> PolicyLanes<'c> {
        let p = self.lanes;
        PolicyLanes {
            levels: p.levels.clone(),
            bounds: chunk.groups.to_vec(),
            metric: p.metric,
            start: p.start,
            values: p.values,
            above: p.above.clone(),
            oracle: p.oracle,
        }
    }
}

impl Levels<Vec<Vec<i32>>> for GpuPolicies<'_> {
    fn levels(
        &self,
        model: &Model,
        chunk: &Chunk<Vec<Vec<i32>>>,
        l: usize,
        out: &mut GpuLayer,
    ) -> Result<Vec<StepLevels>, GpuError> {
        let (d, steps) = (model.layers[l].direction.count(), chunk.seqs.steps);
        let trace = out.levels.take().unwrap_or_default();
        Ok((0..chunk.lanes())
            .map(|lane| {
                let dir = |k: usize| {
                    let words = &trace[(lane * d + k) * steps..(lane * d + k + 1) * steps];
                    words.iter().map(|&v| v as u8).collect()
                };
                StepLevels {
                    levels: (0..d).map(dir).collect(),
                    metrics: Vec::new(),
                }
            })
            .collect())
    }
}

impl Backend<Vec<Vec<i32>>> for GpuPolicies<'_> {
    type Error = GpuError;
    type Layer = GpuLayer;

    fn chunk_shape(
        &self,
        model: &Model,
        bounds: &[Vec<Vec<i32>>],
        seqs: &Sequences,
    ) -> Result<(usize, usize), GpuError> {
        let units = [self.lanes.levels.clone()];
        self.ctx
            .chunk_shape(model, seqs, bounds.len(), &units, true, false)
    }

    fn layer(
        &self,
        model: &Model,
        chunk: &Chunk<Vec<Vec<i32>>>,
        l: usize,
        input: Option<&GpuLayer>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<GpuLayer, GpuError> {
        let lanes = self.set(chunk);
        let set = LaneSet::Policies(&lanes);
        let span = (chunk.s0, chunk.nseq);
        self.ctx
            .run_layer(model, chunk.seqs, &set, span, l, input, progress)
    }

    fn states(
        &self,
        model: &Model,
        chunk: &Chunk<Vec<Vec<i32>>>,
        l: usize,
        out: GpuLayer,
    ) -> Result<Vec<LayerStates>, GpuError> {
        let layer = &model.layers[l];
        let (steps, h, d) = (chunk.seqs.steps, layer.hidden_size, layer.direction.count());
        let top = &self.lanes.levels[self.lanes.levels.len() - 1];
        let lanes = self.ctx.lane_words(&out, chunk.lanes())?;
        // Each lane's words go once decoded.
        let values = lanes
            .into_iter()
            .map(|words| match self.lanes.values {
                true => lane_values(&words, steps, d * h),
                false => lane_states(&top.layers[l], &words, steps, h),
            })
            .collect();
        Ok(by_group(values, chunk.nseq))
    }
}
