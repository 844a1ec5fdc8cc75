//! Host side of `shaders/reduce.wgsl`: the trace's per-step error statistics computed on the
//! device, so that a trace reads back four f64 per (lane, direction, step) — and the last
//! layer's h when the model has a head — instead of every layer's h and c. The kernel needs
//! the adapter's `SHADER_F64` and `SHADER_INT64`; without them [`GpuContext::reduces_on_device`]
//! is false and the trace reads the states back and reduces them on the CPU (same bits).
//! CPU twin: `trace::stats::ErrorStats::add`, one step's H units in unit order.

use super::backend::GpuConfigs;
use super::run::LaneSet;
use super::{GpuContext, GpuError};
use crate::lstm::driver;
use crate::lstm::eval::{apply_head, Plan, Reference};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use crate::trace::stats::ErrorStats;
use crate::trace::ConfigErrors;
use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

/// The device features the kernel needs.
pub const FEATURES: wgpu::Features = wgpu::Features::SHADER_F64.union(wgpu::Features::SHADER_INT64);

const WORKGROUP: u64 = 64;

/// Where a reduced run gets the float64 reference (waited for at the first reduction).
type ReferenceFn<'a, 'r> = &'a dyn Fn() -> Option<&'r Reference>;

/// One lane of a reduced run: the per-step errors of every layer `[layer][dir * T + t]` and,
/// when the model has a head, the last layer's h (c left empty).
#[derive(Default)]
pub(super) struct LaneOut {
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
    pub errors: Vec<Vec<[f64; 4]>>,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ReduceDims {
    /// Lanes of the chunk (group-major: lane = group * seqs + sequence).
    lanes: u32,
    /// Directions of the layer (1 or 2).
    dirs: u32,
    /// Units per direction (H).
    hidden: u32,
    /// Time steps per sequence.
    steps: u32,
    /// Sequences per group in the chunk.
    seqs: u32,
    /// Threads per row of the 2-D dispatch (workgroups in x times 64).
    threads_x: u32,
    /// Always 0 (see `keep64` in the shader).
    zero: u32,
    /// 1: also gather every lane's h words into `hidden`.
    keep_hidden: u32,
}

/// The layout of [`ReduceDims`] (checked against the shader by `tests/shaders.rs`).
pub fn host_layout() -> super::lstm::HostLayout {
    let f = |name, offset| (name, offset);
    super::lstm::HostLayout {
        wgsl_name: "ReduceDims",
        size: std::mem::size_of::<ReduceDims>(),
        fields: vec![
            f("lanes", std::mem::offset_of!(ReduceDims, lanes)),
            f("dirs", std::mem::offset_of!(ReduceDims, dirs)),
            f("hidden", std::mem::offset_of!(ReduceDims, hidden)),
            f("steps", std::mem::offset_of!(ReduceDims, steps)),
            f("seqs", std::mem::offset_of!(ReduceDims, seqs)),
            f("threads_x", std::mem::offset_of!(ReduceDims, threads_x)),
            f("zero", std::mem::offset_of!(ReduceDims, zero)),
            f("keep_hidden", std::mem::offset_of!(ReduceDims, keep_hidden)),
        ],
    }
}

/// The compiled kernel (only on devices with [`FEATURES`]).
pub(super) struct Pipeline {
    pipeline: wgpu::ComputePipeline,
}

impl Pipeline {
    pub(super) fn new(device: &wgpu::Device) -> Option<Self> {
        if !device.features().contains(FEATURES) {
            return None;
        }
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("reduce"),
            source: wgpu::ShaderSource::Wgsl(super::REDUCE_SHADER.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("step errors"),
            layout: None,
            module: &module,
            entry_point: Some("step_errors"),
            compilation_options: Default::default(),
            cache: None,
        });
        Some(Pipeline { pipeline })
    }
}

/// How the words of one (group, direction) decode to f32 values, for h and for c: the
/// fraction bits of a fixed-point format, or `None` for f32 bits (float lanes).
#[derive(Debug, Clone, Copy, Default)]
pub struct StateDecode {
    pub h_frac: Option<i32>,
    pub c_frac: Option<i32>,
}

impl StateDecode {
    fn words(self) -> [i32; 4] {
        let w = |f: Option<i32>| [i32::from(f.is_some()), f.unwrap_or(0)];
        let (h, c) = (w(self.h_frac), w(self.c_frac));
        [h[0], h[1], c[0], c[1]]
    }

    /// The decode of a plan's cells of layer `l` (one per direction).
    fn of_layer(plan: &Plan, l: usize) -> Vec<StateDecode> {
        plan.layers[l]
            .iter()
            .map(|c| StateDecode {
                h_frac: c.int.as_ref().map(|q| q.h.frac),
                c_frac: c.int.as_ref().map(|q| q.c.frac),
            })
            .collect()
    }
}

/// The shape of one reduction: `lanes` = groups x `seqs` lanes (group-major) of `steps`
/// steps, `dirs` directions of `hidden` units each.
#[derive(Debug, Clone, Copy)]
pub struct ReduceShape {
    pub lanes: usize,
    pub seqs: usize,
    pub steps: usize,
    pub dirs: usize,
    pub hidden: usize,
}

/// What one layer's reduction returns: `[lane][dir][step]` (h sum of squares, h max, c sum
/// of squares, c max), and the lanes' h words `[lane][step][dir * H]` when asked for.
pub(super) type LayerErrors = (Vec<[f64; 4]>, Option<Vec<u32>>);

impl GpuContext {
    /// Whether trace errors are reduced on this device (it has `SHADER_F64` and
    /// `SHADER_INT64`); otherwise the states are read back and reduced on the CPU.
    pub fn reduces_on_device(&self) -> bool {
        self.reduce.is_some()
    }

    /// Drops the reduction kernel, as if the adapter had no f64: traces then read the states
    /// back and reduce them on the CPU. For tests.
    pub fn reduce_on_host(&mut self) {
        self.reduce = None;
    }

    /// The per-step statistics of `states` (`[lane][step][{h, c}][dir * H]` words, decoded per
    /// (group, direction) by `decode`) against `reference` (`[sequence][step][{h, c}][dir *
    /// H]`): `[lane][dir][step]` (h sum of squares, h max, c sum of squares, c max). The
    /// kernel the trace runs after every layer, here on uploaded words (for tests).
    pub fn step_errors(
        &self,
        states: &[u32],
        reference: &[f32],
        decode: &[StateDecode],
        shape: ReduceShape,
    ) -> Result<Vec<[f64; 4]>, GpuError> {
        let buf = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("states"),
                contents: bytemuck::cast_slice(states),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let reference: Vec<u32> = reference.iter().map(|v| v.to_bits()).collect();
        Ok(self.reduce_layer(&buf, &reference, decode, shape, false)?.0)
    }

    /// Runs prepared plans like [`GpuContext::run`], but reduces every layer's states on the
    /// device against the float64 reference (`reference()` is called, and waited for, when
    /// the first layer has run): the trace's per-step errors of each plan, and its head
    /// output. Equal bit for bit to running on the CPU and `trace`'s reduction.
    pub fn run_reduced<'r>(
        &self,
        model: &Model,
        seqs: &Sequences,
        plans: &[Plan],
        reference: &dyn Fn() -> Option<&'r Reference>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<ConfigErrors>, GpuError> {
        let groups: Vec<&Plan> = plans.iter().collect();
        let backend = GpuConfigs {
            ctx: self,
            reduce: true,
        };
        let last = model.layers.len() - 1;
        let mut outs: Vec<LaneOut> = (0..plans.len() * seqs.count)
            .map(|_| LaneOut::default())
            .collect();
        // The lanes of the chunk being walked (the driver finishes a chunk before the next).
        let mut chunk_outs: Vec<LaneOut> = Vec::new();
        driver::walk(
            &backend,
            model,
            seqs,
            &groups,
            progress,
            &mut |chunk, l, out| {
                if l == 0 {
                    chunk_outs = (0..chunk.lanes()).map(|_| LaneOut::default()).collect();
                }
                let layer = &model.layers[l];
                let (span, set) = ((chunk.s0, chunk.nseq), LaneSet::Configs(chunk.groups));
                let shape = (seqs.steps, layer.direction.count(), layer.hidden_size);
                let (states, lanes) = (&out.outs, &mut chunk_outs);
                self.reduce_into(lanes, states, reference, &set, model, l, span, shape)?;
                if l == last {
                    for (lane, o) in chunk_outs.drain(..).enumerate() {
                        let (g, s) = (lane / chunk.nseq, lane % chunk.nseq);
                        outs[(chunk.g0 + g) * seqs.count + chunk.s0 + s] = o;
                    }
                }
                Ok(())
            },
        )?;
        Ok(assemble(model, seqs, plans, outs))
    }

    /// Reduces layer `l` of a chunk (its states in `states`, lanes of sequences
    /// `s0..s0 + nseq`, shape (steps, directions, H)) into `result`: every lane's step
    /// errors, and its h at the last layer of a model with a head.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reduce_into(
        &self,
        result: &mut [LaneOut],
        states: &wgpu::Buffer,
        reference: ReferenceFn,
        set: &LaneSet,
        model: &Model,
        l: usize,
        (s0, nseq): (usize, usize),
        (steps, dirs, hidden): (usize, usize, usize),
    ) -> Result<(), GpuError> {
        let LaneSet::Configs(plans) = set else {
            return Err(GpuError::Unsupported("reduced policy lanes".into()));
        };
        let reference = reference()
            .ok_or_else(|| GpuError::Readback("the float64 reference was not computed".into()))?;
        let words = reference_words(reference, l, (s0, nseq), steps, dirs * hidden);
        let shape = ReduceShape {
            lanes: result.len(),
            seqs: nseq,
            steps,
            dirs,
            hidden,
        };
        let keep = l + 1 == model.layers.len() && model.head.is_some();
        let decode = chunk_decode(set, l);
        let (errors, h) = self.reduce_layer(states, &words, &decode, shape, keep)?;
        let per_lane = dirs * steps;
        for (lane, res) in result.iter_mut().enumerate() {
            res.errors
                .push(errors[lane * per_lane..(lane + 1) * per_lane].to_vec());
            if let Some(h) = &h {
                let words = &h[lane * per_lane * hidden..(lane + 1) * per_lane * hidden];
                let plan = plans[lane / nseq.max(1)];
                res.layers
                    .push((lane_hidden(plan, l, words, hidden), Vec::new()));
            }
        }
        Ok(())
    }

    /// Runs the kernel over `states` (a layer's `outs` buffer) and reads back the statistics
    /// (and the h words when `keep_hidden`).
    pub(super) fn reduce_layer(
        &self,
        states: &wgpu::Buffer,
        reference: &[u32],
        decode: &[StateDecode],
        shape: ReduceShape,
        keep_hidden: bool,
    ) -> Result<LayerErrors, GpuError> {
        let Some(reduce) = &self.reduce else {
            return Err(GpuError::Unsupported(
                "error statistics on the device (the adapter lacks SHADER_F64 or SHADER_INT64)"
                    .into(),
            ));
        };
        let dev = &self.device;
        let threads = (shape.lanes * shape.dirs * shape.steps) as u64;
        let total = threads.div_ceil(WORKGROUP).max(1);
        let x = total.min(self.limits.max_compute_workgroups_per_dimension.max(1) as u64) as u32;
        let y = total.div_ceil(x as u64) as u32;
        let dims = ReduceDims {
            lanes: shape.lanes as u32,
            dirs: shape.dirs as u32,
            hidden: shape.hidden as u32,
            steps: shape.steps as u32,
            seqs: shape.seqs.max(1) as u32,
            threads_x: x * WORKGROUP as u32,
            zero: 0,
            keep_hidden: u32::from(keep_hidden),
        };
        let init = |label: &str, contents: &[u8], usage: wgpu::BufferUsages| {
            dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let storage = wgpu::BufferUsages::STORAGE;
        let dims_buf = init(
            "reduce dims",
            bytemuck::bytes_of(&dims),
            wgpu::BufferUsages::UNIFORM,
        );
        let reference = if reference.is_empty() {
            &[0][..]
        } else {
            reference
        };
        let ref_buf = init("reference", bytemuck::cast_slice(reference), storage);
        let decode: Vec<[i32; 4]> = decode.iter().map(|d| d.words()).collect();
        let decode = if decode.is_empty() {
            vec![[0; 4]]
        } else {
            decode
        };
        let decode_buf = init("decode", bytemuck::cast_slice(&decode), storage);
        let out = |label: &str, bytes: u64| {
            dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(8),
                usage: storage | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        };
        let stats_bytes = threads * 32;
        let hidden_bytes = match keep_hidden {
            true => (shape.lanes * shape.steps * shape.dirs * shape.hidden * 4) as u64,
            false => 0,
        };
        let (stats, hidden) = (out("step errors", stats_bytes), out("hidden", hidden_bytes));
        let entries: Vec<_> = [&dims_buf, states, &ref_buf, &decode_buf, &stats, &hidden]
            .into_iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("reduce"),
            layout: &reduce.pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("reduce"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("step errors"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&reduce.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        self.queue.submit([enc.finish()]);
        let words = self.read_back(&stats, stats_bytes.max(8))?;
        let values: Vec<f64> = words
            .chunks_exact(2)
            .map(|w| f64::from_bits(u64::from(w[0]) | u64::from(w[1]) << 32))
            .collect();
        let steps = values
            .chunks_exact(4)
            .take(threads as usize)
            .map(|s| [s[0], s[1], s[2], s[3]])
            .collect();
        let hidden = match keep_hidden {
            true => Some(self.read_back(&hidden, hidden_bytes.max(8))?),
            false => None,
        };
        Ok((steps, hidden))
    }
}

/// Reference states of sequences `s0..s0 + nseq` for layer `l` (whose steps hold `dh` = D x H
/// values) in the kernel's layout (`[sequence][step][{h, c}][dir * H]`, f32 bits).
pub(super) fn reference_words(
    reference: &Reference,
    l: usize,
    (s0, nseq): (usize, usize),
    steps: usize,
    dh: usize,
) -> Vec<u32> {
    let st = &reference.states[l];
    let mut words = Vec::with_capacity(nseq * steps * 2 * dh);
    for row in s0 * steps..(s0 + nseq) * steps {
        let span = row * dh..(row + 1) * dh;
        words.extend(st.h[span.clone()].iter().map(|v| v.to_bits()));
        words.extend(st.c[span].iter().map(|v| v.to_bits()));
    }
    words
}

/// The per-layer decode of a chunk's groups, `[group][dir]` flattened.
pub(super) fn chunk_decode(set: &LaneSet, l: usize) -> Vec<StateDecode> {
    match set {
        LaneSet::Configs(plans) => plans
            .iter()
            .flat_map(|p| StateDecode::of_layer(p, l))
            .collect(),
        LaneSet::Policies(_) => Vec::new(),
    }
}

/// Decodes gathered h words of one lane (`[step][dir * H]`) into f32 values, as
/// `lane_states` does.
pub(super) fn lane_hidden(plan: &Plan, l: usize, words: &[u32], hidden: usize) -> Vec<f32> {
    let cells = &plan.layers[l];
    words
        .iter()
        .enumerate()
        .map(|(i, &w)| match &cells[(i / hidden) % cells.len()].int {
            Some(q) => q.h.to_f32(w as i32),
            None => f32::from_bits(w),
        })
        .collect()
}

/// Turns per-lane results (group-major, `seqs.count` lanes per plan) into the trace's
/// [`ConfigErrors`]: steps in (sequence, layer, direction, step) order, and the head output
/// from the last layer's h.
pub(super) fn assemble(
    model: &Model,
    seqs: &Sequences,
    plans: &[Plan],
    outs: Vec<LaneOut>,
) -> Vec<ConfigErrors> {
    let mut outs = outs.into_iter();
    plans
        .iter()
        .map(|plan| {
            let mut steps = Vec::new();
            let mut output: Option<Vec<f32>> = model.head.as_ref().map(|_| Vec::new());
            for _ in 0..seqs.count {
                let lane = outs.next().expect("one result per lane");
                for (layer, errors) in model.layers.iter().zip(&lane.errors) {
                    let n = layer.hidden_size;
                    steps.extend(errors.iter().map(|s| {
                        (
                            ErrorStats::from_parts(s[0], s[1], n),
                            ErrorStats::from_parts(s[2], s[3], n),
                        )
                    }));
                }
                if let (Some(out), Some((h, _))) = (&mut output, lane.layers.last()) {
                    out.extend(apply_head(model, h, seqs.steps).unwrap_or_default());
                }
            }
            ConfigErrors {
                config: plan.config,
                output,
                steps,
            }
        })
        .collect()
}
