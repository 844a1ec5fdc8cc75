//! The one driver of the engine: it walks the layers of a model for every lane, whatever runs
//! them. A lane is a (group, sequence) pair, where a group is a precision config (one
//! [`Plan`]) or a precision policy; the lanes are cut into chunks that fit the backend
//! (group-major, sequences inside), and for each chunk the driver runs layer after layer,
//! passing each layer's output on as the next layer's input, and hands every finished layer
//! to a sink. [`run_configs`] is the sink of a plain run (states gathered per config, the
//! dense head applied, one [`Run`] per plan), [`run_policies`] that of a policy simulation
//! (one [`LaneResult`] per lane, with the level of every step).
//!
//! A [`Backend`] does one thing: one layer (all its directions and steps) for one chunk of
//! lanes. The CPU engine (`eval::Cpu`, `dynamic::CpuPolicies`) and the wgpu
//! runner (`gpu::GpuConfigs`, `gpu::GpuPolicies`) implement it; a layer's output stays where
//! the backend computed it (host vectors, or a device buffer that the next layer reads in
//! place) until the sink reads it back or reduces it.

use crate::dynamic::LaneResult;
use crate::lstm::eval::{apply_head, formats_of, LayerStates, Plan, Run};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;

/// The lanes of one chunk: groups `g0..g0 + groups.len()` times sequences `s0..s0 + nseq`,
/// group-major (lane `g * nseq + s`).
pub struct Chunk<'a, G> {
    pub groups: &'a [G],
    pub g0: usize,
    pub seqs: &'a Sequences,
    pub s0: usize,
    pub nseq: usize,
}

impl<G> Chunk<'_, G> {
    /// The lanes of the chunk.
    pub fn lanes(&self) -> usize {
        self.groups.len() * self.nseq
    }

    /// The chunk's sequences, `[nseq, T, I]`: the input of the first layer.
    pub fn input(&self) -> &[f32] {
        let len = self.seqs.steps * self.seqs.width;
        &self.seqs.data[self.s0 * len..(self.s0 + self.nseq) * len]
    }
}

/// Runs one layer for one chunk of lanes whose groups are `G`s.
pub trait Backend<G> {
    type Error;
    /// One layer's output for a chunk, kept where the backend computed it.
    type Layer;

    /// The largest chunk, as (groups, sequences), that the backend can run at once.
    fn chunk_shape(
        &self,
        model: &Model,
        groups: &[G],
        seqs: &Sequences,
    ) -> Result<(usize, usize), Self::Error>;

    /// Runs layer `l` (every direction and step) for every lane of `chunk`, on the output of
    /// layer `l - 1` (`None` for the first layer: the chunk's sequences). `progress(n)` is
    /// told of every `n` lane-steps done.
    fn layer(
        &self,
        model: &Model,
        chunk: &Chunk<G>,
        l: usize,
        input: Option<&Self::Layer>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Self::Layer, Self::Error>;

    /// A layer's states as values, per group of the chunk: `[nseq, T, D*H]` each.
    fn states(
        &self,
        model: &Model,
        chunk: &Chunk<G>,
        l: usize,
        out: Self::Layer,
    ) -> Result<Vec<LayerStates>, Self::Error>;
}

/// What the driver does with each finished layer: `sink(chunk, l, output)`.
pub type Sink<'s, G, L, E> = &'s mut dyn FnMut(&Chunk<G>, usize, L) -> Result<(), E>;

/// Walks every layer of `model` for every (group, sequence) lane, chunk by chunk, and gives
/// each layer's output to `sink` once the next layer has read it. `progress(done, total)`
/// counts lane-steps.
pub fn walk<G, B: Backend<G>>(
    backend: &B,
    model: &Model,
    seqs: &Sequences,
    groups: &[G],
    progress: &mut dyn FnMut(u64, u64),
    sink: Sink<G, B::Layer, B::Error>,
) -> Result<(), B::Error> {
    let (group_chunk, seq_chunk) = backend.chunk_shape(model, groups, seqs)?;
    let (group_chunk, seq_chunk) = (group_chunk.max(1), seq_chunk.max(1));
    let total = (groups.len() * seqs.count * seqs.steps * model.layers.len()) as u64;
    let mut done = 0u64;
    for g0 in (0..groups.len()).step_by(group_chunk) {
        let g1 = (g0 + group_chunk).min(groups.len());
        for s0 in (0..seqs.count).step_by(seq_chunk) {
            let chunk = Chunk {
                groups: &groups[g0..g1],
                g0,
                seqs,
                s0,
                nseq: seq_chunk.min(seqs.count - s0),
            };
            let mut previous: Option<B::Layer> = None;
            for l in 0..model.layers.len() {
                let out = backend.layer(model, &chunk, l, previous.as_ref(), &mut |n| {
                    done += n;
                    progress(done, total);
                })?;
                if let Some(before) = previous.replace(out) {
                    sink(&chunk, l - 1, before)?;
                }
            }
            if let Some(last) = previous {
                sink(&chunk, model.layers.len() - 1, last)?;
            }
        }
    }
    Ok(())
}

/// Runs prepared plans (one group per plan) on `backend`: one [`Run`] per plan, in order,
/// with every layer's states when `keep_states`.
pub fn run_configs<'p, B: Backend<&'p Plan>>(
    backend: &B,
    model: &Model,
    seqs: &Sequences,
    plans: &'p [Plan],
    keep_states: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Run>, B::Error> {
    let groups: Vec<&Plan> = plans.iter().collect();
    let last = model.layers.len().saturating_sub(1);
    let empty = || LayerStates {
        h: Vec::new(),
        c: Vec::new(),
    };
    // [plan][layer], sequences appended chunk by chunk.
    let mut states: Vec<Vec<LayerStates>> = plans
        .iter()
        .map(|_| model.layers.iter().map(|_| empty()).collect())
        .collect();
    walk(
        backend,
        model,
        seqs,
        &groups,
        progress,
        &mut |chunk, l, out| {
            if !keep_states && l != last {
                return Ok(());
            }
            let got = backend.states(model, chunk, l, out)?;
            for (g, st) in got.into_iter().enumerate() {
                let into = &mut states[chunk.g0 + g][l];
                if into.h.is_empty() {
                    *into = st;
                } else {
                    into.h.extend(st.h);
                    into.c.extend(st.c);
                }
            }
            Ok(())
        },
    )?;
    let width = model.hidden_output_size();
    let seq_len = seqs.steps * width;
    Ok(plans
        .iter()
        .zip(states)
        .map(|(plan, mut layers)| {
            let hidden = match layers.get_mut(last) {
                Some(top) if keep_states => top.h.clone(),
                Some(top) => std::mem::take(&mut top.h),
                None => Vec::new(),
            };
            let output = model.head.as_ref().map(|_| {
                (0..seqs.count)
                    .flat_map(|n| {
                        let seq = &hidden[n * seq_len..(n + 1) * seq_len];
                        apply_head(model, seq, seqs.steps).unwrap_or_default()
                    })
                    .collect()
            });
            Run {
                config: plan.config,
                hidden,
                output,
                states: keep_states.then_some(layers),
                formats: formats_of(plan),
            }
        })
        .collect())
}

/// One policy lane's steps of one layer: the level every step ran at, `[dir][t]`, and the Δc
/// metric of every step `[dir][t]` where the backend computes it (else empty).
#[derive(Debug, Clone, Default)]
pub struct StepLevels {
    pub levels: Vec<Vec<u8>>,
    pub metrics: Vec<Vec<f64>>,
}

/// Policy lanes: a backend whose lanes choose their level step by step also says which.
pub trait Levels<G>: Backend<G> {
    /// Per lane of the chunk, layer `l`'s steps, taken out of `out` before its states are
    /// read.
    fn levels(
        &self,
        model: &Model,
        chunk: &Chunk<G>,
        l: usize,
        out: &mut Self::Layer,
    ) -> Result<Vec<StepLevels>, Self::Error>;
}

/// Runs every (policy, sequence) lane on `backend`: one [`LaneResult`] per lane, policy-major,
/// with its head output; `metrics` stay empty where the backend does not compute them.
pub fn run_policies<G, B: Levels<G>>(
    backend: &B,
    model: &Model,
    seqs: &Sequences,
    policies: &[G],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<LaneResult>, B::Error> {
    let mut lanes: Vec<LaneResult> = (0..policies.len() * seqs.count)
        .map(|_| LaneResult {
            layers: Vec::new(),
            output: None,
            levels: Vec::new(),
            metrics: Vec::new(),
        })
        .collect();
    walk(
        backend,
        model,
        seqs,
        policies,
        progress,
        &mut |chunk, l, mut out| {
            let width = seqs.steps * model.layers[l].output_size();
            let mut steps = backend.levels(model, chunk, l, &mut out)?.into_iter();
            for (g, st) in backend
                .states(model, chunk, l, out)?
                .into_iter()
                .enumerate()
            {
                let (mut h, mut c) = (st.h.chunks(width.max(1)), st.c.chunks(width.max(1)));
                for s in 0..chunk.nseq {
                    let lane = &mut lanes[(chunk.g0 + g) * seqs.count + chunk.s0 + s];
                    let StepLevels { levels, metrics } = steps.next().unwrap_or_default();
                    let (h, c) = (h.next().unwrap_or_default(), c.next().unwrap_or_default());
                    lane.layers.push((h.to_vec(), c.to_vec()));
                    lane.levels.push(levels);
                    if !metrics.is_empty() {
                        lane.metrics.push(metrics);
                    }
                }
            }
            Ok(())
        },
    )?;
    for lane in &mut lanes {
        let last = lane
            .layers
            .last()
            .map(|(h, _)| h.as_slice())
            .unwrap_or_default();
        lane.output = apply_head(model, last, seqs.steps);
    }
    Ok(lanes)
}
