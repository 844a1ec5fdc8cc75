//! The CPU backend of the [`driver`]: [`Cpu`] runs one layer of every config of a chunk on
//! the lane-batched engine ([`super::batch`]), each direction over all the chunk's sequences
//! at once.

use super::batch::{run_float, run_int, Io, LayerOut};
use super::plan::CellPlan;
use super::{LayerStates, Plan};
use crate::lstm::driver::{self, Backend, Chunk};
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
        let (nseq, steps) = (chunk.nseq, chunk.seqs.steps);
        let layer = &model.layers[l];
        let row = steps * layer.hidden_size * layer.direction.count();
        let block = driver::lane_block(layer.hidden_size, chunk.groups.len(), nseq);
        let mut outs: Vec<LayerOut> = chunk
            .groups
            .iter()
            .map(|_| LayerOut {
                h: vec![0.0; nseq * row],
                c: vec![0.0; nseq * row],
            })
            .collect();
        // In the pool from the start: a product or element-wise step that splits inside a
        // task then hands work to the other threads without waking the caller.
        rayon::scope(|_| {
            outs.par_iter_mut()
                .enumerate()
                .flat_map(|(g, o)| {
                    let blocks =
                        o.h.par_chunks_mut((block * row).max(1))
                            .zip(o.c.par_chunks_mut((block * row).max(1)));
                    blocks.enumerate().map(move |(b, hc)| (g, b, hc))
                })
                .for_each(|(g, b, (h, c))| {
                    let plan = chunk.groups[g];
                    let x = input.map_or(chunk.input(), |o| &o[g].h);
                    let width = x.len() / nseq.max(1);
                    let n = h.len() / row.max(1);
                    let x = &x[b * block * width..(b * block + n) * width];
                    run_layer(model, l, &plan.layers[l], x, n, steps, h, c);
                });
        });
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
/// (`x`: `[N, T, I]`), into `h`, `c` (`[N, T, D*H]`).
#[allow(clippy::too_many_arguments)]
fn run_layer(
    model: &Model,
    l: usize,
    cells: &[CellPlan],
    x: &[f32],
    n: usize,
    steps: usize,
    h: &mut [f32],
    c: &mut [f32],
) {
    let layer = &model.layers[l];
    let hsz = layer.hidden_size;
    let stride = hsz * layer.direction.count();
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
            Some(q) => run_int(q, &io, h, c),
            None => run_float(cp, &io, h, c),
        }
    }
}
