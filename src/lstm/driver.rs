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
//! place) until the sink reads it back or reduces it (a GPU trace's sink reduces every layer
//! to per-step errors on the device: `GpuContext::run_reduced`). `tests/engine.rs` and
//! `tests/dynamic.rs` run the same conformance checks on every backend against the scalar
//! oracles.

use crate::dynamic::LaneResult;
use crate::lstm::eval::gemm::{self, COL_ALIGN};
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

/// Lanes per task for one layer of `hidden` units over `lanes` lanes, when `tasks` such tasks
/// (configs) already run side by side: all of them, unless a step's recurrent product
/// (`4H x H x lanes`) is too small to split by rows (below [`gemm::SERIAL_WORK`] it runs on
/// one thread) and the tasks leave threads idle; then blocks of whole [`COL_ALIGN`] columns
/// (so padding adds no work), enough to keep every thread busy. A CPU backend runs each block
/// through all its steps apart: lanes never interact, so the split changes no bit
/// (`tests/engine.rs` and `tests/dynamic.rs` run the same lanes on one thread and on several).
pub fn lane_block(hidden: usize, tasks: usize, lanes: usize) -> usize {
    let padded = lanes.div_ceil(COL_ALIGN) * COL_ALIGN;
    let step_work = 4 * (hidden as u64).pow(2) * padded as u64;
    let threads = rayon::current_num_threads();
    if step_work >= gemm::SERIAL_WORK || tasks >= threads || lanes <= COL_ALIGN {
        return lanes.max(1);
    }
    let blocks = threads.div_ceil(tasks.max(1)).min(padded / COL_ALIGN);
    (padded / COL_ALIGN).div_ceil(blocks) * COL_ALIGN
}

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
    // The chunks' buffers are not needed again: what follows keeps only the lanes.
    crate::bigalloc::trim();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamic::{self, CpuPolicies, LevelPlans, Metric, PolicySpec, Timing};
    use crate::format::parse_config_list;
    use crate::lstm::eval;

    /// A backend cut into chunks of at most (groups, sequences).
    struct Chunked<B>(B, (usize, usize));

    impl<G, B: Backend<G>> Backend<G> for Chunked<B> {
        type Error = B::Error;
        type Layer = B::Layer;

        fn chunk_shape(
            &self,
            _: &Model,
            _: &[G],
            _: &Sequences,
        ) -> Result<(usize, usize), B::Error> {
            Ok(self.1)
        }

        fn layer(
            &self,
            model: &Model,
            chunk: &Chunk<G>,
            l: usize,
            input: Option<&B::Layer>,
            progress: &mut dyn FnMut(u64),
        ) -> Result<B::Layer, B::Error> {
            self.0.layer(model, chunk, l, input, progress)
        }

        fn states(
            &self,
            model: &Model,
            chunk: &Chunk<G>,
            l: usize,
            out: B::Layer,
        ) -> Result<Vec<LayerStates>, B::Error> {
            self.0.states(model, chunk, l, out)
        }
    }

    impl<G, B: Levels<G>> Levels<G> for Chunked<B> {
        fn levels(
            &self,
            model: &Model,
            chunk: &Chunk<G>,
            l: usize,
            out: &mut B::Layer,
        ) -> Result<Vec<StepLevels>, B::Error> {
            self.0.levels(model, chunk, l, out)
        }
    }

    fn fixture() -> (Model, Sequences) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let model = crate::lstm::load(
            dir.join("torch_lstm3.onnx").to_str().unwrap(),
            &crate::lstm::LoadOptions::default(),
        )
        .unwrap();
        let seqs = crate::lstm::npy::read_sequences(&dir.join("torch_lstm3.x.npy")).unwrap();
        (model, seqs)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    #[test]
    fn chunks_of_any_shape_give_the_run_of_one_chunk() {
        let (model, seqs) = fixture();
        assert!(seqs.count >= 3 && model.head.is_some());
        let configs = parse_config_list("fx8;fp16;fx12;fp32").unwrap();
        let plans = eval::prepare(&model, &seqs, "x", &configs).unwrap();
        let whole = eval::run_cpu(&model, &seqs, &plans, true);
        for shape in [(1, 1), (3, 2), (2, 100)] {
            let mut last = (0, 0);
            let cpu = Chunked(eval::Cpu, shape);
            let Ok(runs) =
                run_configs(&cpu, &model, &seqs, &plans, true, &mut |d, t| last = (d, t));
            assert_eq!(last.0, last.1, "{shape:?}: progress ends at its total");
            for (a, b) in whole.iter().zip(&runs) {
                assert_eq!(bits(&a.hidden), bits(&b.hidden), "{shape:?} {}", a.config);
                let (oa, ob) = (a.output.as_deref(), b.output.as_deref());
                assert_eq!(oa.map(bits), ob.map(bits), "{shape:?} {}", a.config);
                let (sa, sb) = (a.states.as_ref().unwrap(), b.states.as_ref().unwrap());
                for (la, lb) in sa.iter().zip(sb) {
                    assert_eq!(bits(&la.h), bits(&lb.h), "{shape:?} {}", a.config);
                    assert_eq!(bits(&la.c), bits(&lb.c), "{shape:?} {}", a.config);
                }
            }
        }
    }

    #[test]
    fn chunked_policy_lanes_give_the_lanes_of_one_chunk() {
        let (model, seqs) = fixture();
        let spec = PolicySpec::new(
            parse_config_list("fx6,fx16").unwrap(),
            Metric::MaxAbs,
            Timing::Causal,
        )
        .unwrap();
        let plans = eval::prepare(&model, &seqs, "x", &[spec.levels[1]]).unwrap();
        let lp = LevelPlans::new(&model, plans[0].clone(), &spec).unwrap();
        let policies = dynamic::parse_thresholds("0,0.02,0.1,inf", 2).unwrap();
        let whole = dynamic::simulate_scalar(&model, &seqs, &spec, &lp, &policies, &|| {});
        for shape in [(1, 1), (3, 2)] {
            let cpu = Chunked(CpuPolicies::new(&spec, &lp), shape);
            let Ok(lanes) = run_policies(&cpu, &model, &seqs, &policies, &mut |_, _| {});
            assert_eq!(lanes.len(), whole.lanes.len());
            for (i, (a, b)) in whole.lanes.iter().zip(&lanes).enumerate() {
                assert_eq!(a.levels, b.levels, "{shape:?} lane {i}");
                assert_eq!(a.metrics, b.metrics, "{shape:?} lane {i}");
                for ((ah, ac), (bh, bc)) in a.layers.iter().zip(&b.layers) {
                    assert_eq!(
                        (bits(ah), bits(ac)),
                        (bits(bh), bits(bc)),
                        "{shape:?} lane {i}"
                    );
                }
                let (oa, ob) = (a.output.as_deref(), b.output.as_deref());
                assert_eq!(oa.map(bits), ob.map(bits), "{shape:?} lane {i}");
            }
        }
    }
}
