//! The wgpu side of the [`driver`]'s backends (`backend.rs`): running one layer of a chunk of lanes on the device: uploading the layer, encoding every step (for
//! config lanes one dispatch, after one that fills the uniform stage when the step fits it; two
//! or more for policy lanes), many steps per submission. A layer's states stay in a device
//! buffer that the next layer reads as its input; they are read back (or, for a trace, reduced
//! on the device to per-step errors: `reduce.rs`) when the driver hands the layer to its sink.
//! Lanes are (precision config, sequence) pairs, or (policy, sequence) pairs whose level is
//! chosen per step on the device (see [`LaneSet`]).

use super::backend::{GpuConfigs, GpuLayer};
use super::lstm::{Dims, LANE_BLOCK, STEPS_PER_SUBMIT, WORKGROUP};
use super::policy::policy_region;
use super::stage::{step_words, Windows};
use super::upload::{lane_input, layer_upload, weight_texture};
use super::{GpuContext, GpuError};
use crate::lstm::driver;
use crate::lstm::eval::{Plan, Run};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use wgpu::util::DeviceExt;

/// The largest step-uniform buffer (an entry a stage window and step) for which a stage is
/// read in windows; past it the step reads x and h from storage.
const STEP_BUFFER_CAP: usize = 16 << 20;

/// A bind-group entry of the whole of `buffer`.
fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// A bind-group entry of the first `bytes` of `buffer` (a uniform binding whose offset each
/// dispatch gives).
fn entry_sized(binding: u32, buffer: &wgpu::Buffer, bytes: usize) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset: 0,
            size: wgpu::BufferSize::new(bytes as u64),
        }),
    }
}

/// What the lanes of a chunk are.
pub(super) enum LaneSet<'a> {
    /// One lane per (config, sequence); cells `[config][dir]`.
    Configs(&'a [&'a Plan]),
    /// One lane per (policy, sequence); cells `[level][dir]`.
    Policies(&'a PolicyLanes<'a>),
}

/// Policy lanes of one chunk.
pub(super) struct PolicyLanes<'a> {
    /// Every level's plan, lowest first.
    pub levels: Vec<&'a Plan>,
    /// `bounds[policy][layer]`: the integer thresholds, `[dir][boundary]` flattened.
    pub bounds: Vec<Vec<Vec<i32>>>,
    /// 0 max_abs, 1 mean_abs, 2 frac_above, 3 rel_max_abs.
    pub metric: u32,
    /// The causal level of the first step.
    pub start: u32,
    /// The state travels between levels as f32 values (any levels), not as codes.
    pub values: bool,
    /// `above[layer][dir]` for frac_above.
    pub above: Vec<[i32; 2]>,
    pub oracle: bool,
}

impl LaneSet<'_> {
    fn groups(&self) -> usize {
        match self {
            LaneSet::Configs(p) => p.len(),
            LaneSet::Policies(p) => p.bounds.len(),
        }
    }
}

impl GpuContext {
    /// Runs prepared plans (from `eval::prepare`) on the GPU through the [`driver`]: the twin
    /// of `eval::run_cpu`, equal to it bit for bit. `progress(done, total)` counts lane-steps.
    pub fn run(
        &self,
        model: &Model,
        seqs: &Sequences,
        plans: &[Plan],
        keep_states: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<Run>, GpuError> {
        let backend = GpuConfigs {
            ctx: self,
            reduce: false,
        };
        driver::run_configs(&backend, model, seqs, plans, keep_states, progress)
    }

    /// Layer `l` of one chunk: the groups of `set` x sequences `s0..s0+nseq`, on the
    /// previous layer's states (`None`: the sequences).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_layer(
        &self,
        model: &Model,
        seqs: &Sequences,
        set: &LaneSet,
        (s0, nseq): (usize, usize),
        l: usize,
        input: Option<&GpuLayer>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<GpuLayer, GpuError> {
        let dev = &self.device;
        let steps = seqs.steps;
        let lanes = set.groups() * nseq;
        let storage = wgpu::BufferUsages::STORAGE;
        let words = |label: &str, data: &[u32], extra: wgpu::BufferUsages| {
            dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: storage | extra,
            })
        };
        let first_input;
        let (xin, x_stride, finite) = match input {
            Some(previous) => (&previous.outs, previous.x_stride, previous.finite_input),
            None => {
                first_input = self.first_input(model, seqs, set, (s0, nseq));
                let finite =
                    (s0..s0 + nseq).all(|s| seqs.sequence(s).iter().all(|v| v.is_finite()));
                (&first_input, model.input_size(), finite)
            }
        };
        let layer = &model.layers[l];
        let (d, h) = (layer.direction.count(), layer.hidden_size);
        let (unit, top) = match set {
            LaneSet::Configs(plans) => (plans.to_vec(), 0),
            LaneSet::Policies(p) => (p.levels.clone(), p.levels.len() - 1),
        };
        let up = layer_upload(
            &unit,
            l,
            matches!(set, LaneSet::Configs(_)),
            finite,
            self.unflushed_sums,
        );
        let mut init = Vec::with_capacity(lanes * d * 2 * h);
        for g in 0..set.groups() {
            let cfg_init = match set {
                LaneSet::Configs(_) => &up.init[g],
                LaneSet::Policies(_) => &up.init[top],
            };
            for _ in 0..nseq {
                init.extend_from_slice(cfg_init);
            }
        }
        let mut dims = Dims {
            lanes: lanes as u32,
            dirs: d as u32,
            input: layer.input_size as u32,
            hidden: h as u32,
            steps: steps as u32,
            seqs: nseq as u32,
            rev_mask: (0..d)
                .filter(|&k| layer.direction.is_reversed(k))
                .fold(0u32, |m, k| m | 1 << k),
            x_stride: x_stride as u32,
            ..Default::default()
        };
        // Config lanes whose slabs (LANE_BLOCK sequences of a config, one direction) fit the
        // uniform stage read x and h from it, a window of slabs a dispatch (`stage.rs`).
        let align = self.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let slabs = set.groups() * nseq.div_ceil(LANE_BLOCK) * d;
        let binding_words = self.lstm.stage_words.min(self.stage_cap);
        let windows = match set {
            LaneSet::Configs(_) => Windows::new(
                slabs,
                layer.input_size + h,
                binding_words / LANE_BLOCK,
                align,
            ),
            LaneSet::Policies(_) => None,
        }
        .filter(|w| {
            // Windows only where they pay (`GpuContext::cpu_device`), and a step buffer
            // (an entry a window and step) of bounded size.
            w.count() == 1 || (self.cpu_device && w.count() * steps * align <= STEP_BUFFER_CAP)
        });
        let (entries, step_words) = step_words(steps, align, windows);
        let step_buf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("steps"),
            contents: bytemuck::cast_slice(&step_words),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let step_group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("step"),
            layout: &self.lstm.layout1,
            entries: &[entry_sized(0, &step_buf, 16)],
        });
        let pol_data = match set {
            LaneSet::Configs(_) => vec![0u32; 4],
            LaneSet::Policies(p) => {
                policy_region(&mut dims, p, l, &init, lanes, d, h, layer.input_size, steps)
            }
        };
        let cells = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("cells"),
            contents: bytemuck::cast_slice(&up.cells),
            usage: storage,
        });
        // The weights go once to where the kernels read them (`w4`, `w1`): the texture, or
        // storage; the other gets a placeholder.
        let in_storage: &[u32] = match self.texture_weights {
            true => &[0; 4],
            false => &up.weights,
        };
        let weights = words("weights", in_storage, wgpu::BufferUsages::empty());
        let tables = words("tables", &up.tables, wgpu::BufferUsages::empty());
        let state = words("state", &init, wgpu::BufferUsages::empty());
        let pol = words("policy", &pol_data, wgpu::BufferUsages::COPY_SRC);
        // Gate sums between `gates` and `cell_update`; config lanes keep theirs in registers.
        let acc_words = match set {
            LaneSet::Policies(_) => lanes * d * 4 * h * 2,
            LaneSet::Configs(_) => 4,
        };
        let acc = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("acc"),
            size: (acc_words * 4) as u64,
            usage: storage,
            mapped_at_creation: false,
        });
        let out_size = (lanes * steps * 2 * d * h * 4) as u64;
        let outs = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("outs"),
            size: out_size,
            usage: storage | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let max_dim = self.limits.max_compute_workgroups_per_dimension.max(1) as u64;
        let groups_of = |threads: usize| (threads as u64).div_ceil(WORKGROUP as u64);
        // Workgroups of each kernel: the stage (a thread a word of x and h), the cell update
        // (a thread a unit), and the lane-blocked kernels (config
        // lanes' `step_lanes`, policy lanes' `gates`: a workgroup per tile of WORKGROUP units
        // and block of LANE_BLOCK sequences, a thread per unit, its four gate rows).
        let stage_groups = groups_of(lanes * d * (layer.input_size + h));
        let cell_groups = groups_of(lanes * d * h);
        // The level choice: a workgroup per (lane, direction).
        let select_groups = (lanes * d) as u64;
        let row_tiles = h.div_ceil(WORKGROUP as usize);
        let lane_groups = (row_tiles * d * set.groups() * nseq.div_ceil(LANE_BLOCK)) as u64;
        // Rows of a 2-D dispatch: as wide as the largest one, so no dispatch needs more rows
        // than the device allows.
        let x_groups = stage_groups
            .max(lane_groups)
            .max(select_groups)
            .min(max_dim) as u32;
        dims.threads_x = x_groups * WORKGROUP;
        let dims_buf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dims"),
            contents: bytemuck::bytes_of(&dims),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let weights_t = weight_texture(dev, &self.queue, &up.weights, self.texture_weights);
        let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("lstm data"),
            layout: &self.lstm.layout0,
            entries: &[
                entry(0, &dims_buf),
                entry(1, &cells),
                entry(2, &weights),
                entry(3, &tables),
                entry(4, xin),
                entry(5, &state),
                entry(6, &acc),
                entry(7, &outs),
                entry(8, &pol),
                entry(9, &weights),
                wgpu::BindGroupEntry {
                    binding: 10,
                    resource: wgpu::BindingResource::TextureView(&weights_t),
                },
            ],
        });
        let binding_bytes = self.lstm.stage_words * 4;
        let stage_buf = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stage"),
            size: windows.map_or(binding_bytes, |w| w.buffer_bytes(binding_bytes)) as u64,
            usage: wgpu::BufferUsages::UNIFORM | storage,
            mapped_at_creation: false,
        });
        // The stage as storage (all of it) and as a uniform window of `binding_bytes` (its
        // offset given at each dispatch).
        let stage_s = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("stage (storage)"),
            layout: &self.lstm.layout2s,
            entries: &[entry(1, &stage_buf)],
        });
        let stage_u = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("stage (uniform)"),
            layout: &self.lstm.layout2u,
            entries: &[entry_sized(0, &stage_buf, binding_bytes)],
        });
        let dispatch = |pass: &mut wgpu::ComputePass, n: u64| {
            let y = n.div_ceil(x_groups as u64) as u32;
            let x = if y == 1 { n as u32 } else { x_groups };
            pass.dispatch_workgroups(x, y, 1);
        };
        let policy = match set {
            LaneSet::Policies(p) => Some(p.oracle),
            LaneSet::Configs(_) => None,
        };
        for first in (0..steps).step_by(STEPS_PER_SUBMIT) {
            let last = (first + STEPS_PER_SUBMIT).min(steps);
            let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("steps"),
            });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("lstm steps"),
                    timestamp_writes: None,
                });
                pass.set_bind_group(0, &group, &[]);
                let stage = |pass: &mut wgpu::ComputePass,
                             s: usize,
                             phase: usize,
                             pipeline: &wgpu::ComputePipeline,
                             n: u64| {
                    pass.set_bind_group(1, &step_group, &[((entries * s + phase) * align) as u32]);
                    pass.set_pipeline(pipeline);
                    dispatch(pass, n);
                };
                for s in first..last {
                    if policy.is_some() {
                        stage(&mut pass, s, 0, &self.lstm.select, select_groups);
                    }
                    match policy {
                        // Config lanes: the whole step in one dispatch (after the
                        // one that fills the stage).
                        None => match windows {
                            Some(w) => {
                                pass.set_bind_group(2, &stage_s, &[]);
                                stage(&mut pass, s, 0, &self.lstm.stage, stage_groups);
                                for e in 0..w.count() {
                                    let offset = (w.base(e) * 16) as u32;
                                    pass.set_bind_group(2, &stage_u, &[offset]);
                                    let groups = (row_tiles * w.len(e)) as u64;
                                    stage(&mut pass, s, e, &self.lstm.step_staged, groups);
                                }
                            }
                            None => {
                                pass.set_bind_group(2, &stage_u, &[0]);
                                stage(&mut pass, s, 0, &self.lstm.step_lanes, lane_groups);
                            }
                        },
                        Some(_) => {
                            stage(&mut pass, s, 0, &self.lstm.gates, lane_groups);
                            stage(&mut pass, s, 0, &self.lstm.cell, cell_groups);
                        }
                    }
                    if policy == Some(true) {
                        stage(&mut pass, s, 2, &self.lstm.select, select_groups);
                        stage(&mut pass, s, 1, &self.lstm.gates, lane_groups);
                        stage(&mut pass, s, 1, &self.lstm.cell, cell_groups);
                    }
                }
            }
            self.queue.submit([enc.finish()]);
            self.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            progress(((last - first) * lanes) as u64);
        }
        let levels = match set {
            LaneSet::Policies(_) => {
                let start = dims.off_trace as usize;
                let all = self.read_back(&pol, (pol_data.len() * 4) as u64)?;
                Some(all[start..start + lanes * d * steps].to_vec())
            }
            LaneSet::Configs(_) => None,
        };
        Ok(GpuLayer {
            outs,
            out_size,
            x_stride: 2 * d * h,
            levels,
            finite_input: finite,
        })
    }

    /// The first layer's input of a chunk: every lane's sequence, as codes of its config's
    /// input format (config lanes) or f32 words (policy lanes).
    fn first_input(
        &self,
        model: &Model,
        seqs: &Sequences,
        set: &LaneSet,
        (s0, nseq): (usize, usize),
    ) -> wgpu::Buffer {
        let mut data = Vec::with_capacity(set.groups() * nseq * seqs.steps * model.input_size());
        for g in 0..set.groups() {
            for s in s0..s0 + nseq {
                match set {
                    LaneSet::Configs(plans) => data.extend(lane_input(plans[g], seqs.sequence(s))),
                    LaneSet::Policies(_) => {
                        data.extend(seqs.sequence(s).iter().map(|v| v.to_bits()))
                    }
                }
            }
        }
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("xin"),
                contents: bytemuck::cast_slice(&data),
                usage: wgpu::BufferUsages::STORAGE,
            })
    }

    /// A layer's states read back, per lane: the raw words `[T, {h, c}, D*H]`.
    pub(super) fn lane_words(
        &self,
        out: &GpuLayer,
        lanes: usize,
    ) -> Result<Vec<Vec<u32>>, GpuError> {
        let words = self.read_back(&out.outs, out.out_size)?;
        let per_lane = words.len() / lanes.max(1);
        Ok(words
            .chunks(per_lane.max(1))
            .take(lanes)
            .map(<[u32]>::to_vec)
            .collect())
    }
}
