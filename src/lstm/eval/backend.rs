//! The CPU backend of the [`driver`]: [`Cpu`] runs one layer of every config of a chunk on
//! the lane-batched engine ([`super::batch`]), each direction over all the chunk's sequences
//! at once.

use super::batch::{run_float, run_int, Io, LayerOut};
use super::plan::CellPlan;
use super::{LayerStates, Plan};
use crate::lstm::driver::{Backend, Chunk};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use rayon::prelude::*;

/// The CPU backend of the driver: each config of a chunk runs its layer over all the
/// chunk's sequences at once (configs in parallel, rayon inside each product).
pub struct Cpu;

impl<'p> Backend<&'p Plan> for Cpu {
    type Error = std::convert::Infallible;
    /// Per config of the chunk.
    type Layer = Vec<LayerOut>;

    fn chunk_shape(
        &self,
        _: &Model,
        plans: &[&'p Plan],
        seqs: &Sequences,
    ) -> Result<(usize, usize), Self::Error> {
        Ok((plans.len(), seqs.count))
    }

    fn layer(
        &self,
        model: &Model,
        chunk: &Chunk<&'p Plan>,
        l: usize,
        input: Option<&Self::Layer>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Self::Layer, Self::Error> {
        let outs = chunk
            .groups
            .par_iter()
            .enumerate()
            .map(|(g, plan)| {
                let x = input.map_or(chunk.input(), |o| &o[g].h);
                run_layer(model, l, &plan.layers[l], x, chunk.nseq, chunk.seqs.steps)
            })
            .collect();
        progress((chunk.lanes() * chunk.seqs.steps) as u64);
        Ok(outs)
    }

    fn states(
        &self,
        _: &Model,
        _: &Chunk<&'p Plan>,
        _: usize,
        out: Self::Layer,
    ) -> Result<Vec<LayerStates>, Self::Error> {
        Ok(out
            .into_iter()
            .map(|o| LayerStates { h: o.h, c: o.c })
            .collect())
    }
}

/// Layer `l` of `model` (cells `cells`, one per direction) for a batch of `n` sequences
/// (`x`: `[N, T, I]`).
fn run_layer(
    model: &Model,
    l: usize,
    cells: &[CellPlan],
    x: &[f32],
    n: usize,
    steps: usize,
) -> LayerOut {
    let layer = &model.layers[l];
    let hsz = layer.hidden_size;
    let stride = hsz * layer.direction.count();
    let mut h = vec![0.0f32; n * steps * stride];
    let mut c = vec![0.0f32; n * steps * stride];
    for (k, cp) in cells.iter().enumerate() {
        let io = Io {
            x,
            input: layer.input_size,
            n,
            steps,
            reversed: layer.direction.is_reversed(k),
            offset: k * hsz,
            stride,
        };
        match &cp.int {
            Some(q) => run_int(q, &io, &mut h, &mut c),
            None => run_float(cp, &io, &mut h, &mut c),
        }
    }
    LayerOut { h, c }
}
