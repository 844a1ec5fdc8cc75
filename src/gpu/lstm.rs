//! Host side of `shaders/lstm.wgsl`: lays out the lanes (one per (precision config,
//! sequence)), uploads each layer's quantized weights and activation tables once per chunk,
//! encodes every step of a layer as two dispatches, and reads the states back. Problems larger
//! than the adapter's buffer limits are split into chunks of configs and sequences; a problem
//! whose single smallest chunk does not fit is refused with the limit named.

use super::{GpuContext, GpuError};
use crate::format::Resolved;
use crate::lstm::eval::plan::{Act, CellPlan};
use crate::lstm::eval::{apply_head, assemble, Plan, Run, SeqOut};
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

const WORKGROUP: u32 = 64;
/// Steps encoded per submission (progress is reported between submissions).
const STEPS_PER_SUBMIT: usize = 128;
/// Upper bound on one buffer, whatever the adapter allows (keeps host memory sane).
pub(super) const BUFFER_CAP: u64 = 1 << 30;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Dims {
    lanes: u32,
    dirs: u32,
    input: u32,
    hidden: u32,
    steps: u32,
    seqs: u32,
    rev_mask: u32,
    threads_x: u32,
    x_stride: u32,
    zero: u32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct FmtGpu {
    kind: u32,
    bits: u32,
    frac: i32,
    em: u32,
    maxf: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct CellGpu {
    mode: u32,
    w_off: u32,
    r_off: u32,
    b_off: u32,
    p_off: u32,
    has_peep: u32,
    sig_off: u32,
    tanhp_off: u32,
    tanhc_off: u32,
    table_mask: u32,
    shift_wx: u32,
    shift_rh: u32,
    shift_b: u32,
    shift_pc: u32,
    pre_shift: i32,
    shift_fc: u32,
    shift_ig: u32,
    c_shift: i32,
    h_shift: i32,
    chunk_wx: u32,
    chunk_rh: u32,
    pad0: u32,
    pre: FmtGpu,
    c: FmtGpu,
    gate: FmtGpu,
    h: FmtGpu,
}

fn fmt_gpu(r: Resolved) -> FmtGpu {
    match r {
        Resolved::Fp32 => FmtGpu::default(),
        Resolved::Fixed(f) => FmtGpu {
            kind: 1,
            bits: f.bits,
            frac: f.frac,
            ..Default::default()
        },
        Resolved::Float(f) => FmtGpu {
            kind: 2,
            bits: f.bits(),
            frac: 0,
            em: f.exp_bits | f.man_bits << 8,
            maxf: f.max_finite() as f32,
        },
    }
}

/// How many products of magnitude up to 2^bits can be summed in an i32 without overflow.
fn chunk(bits: u32) -> u32 {
    ((i32::MAX as u32) >> bits).max(1)
}

/// The compiled kernels and their bind-group layouts.
pub(super) struct Pipelines {
    gates: wgpu::ComputePipeline,
    cell: wgpu::ComputePipeline,
    layout0: wgpu::BindGroupLayout,
    layout1: wgpu::BindGroupLayout,
}

fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn uniform(binding: u32, dynamic: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: dynamic,
            min_binding_size: None,
        },
        count: None,
    }
}

impl Pipelines {
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let module = device.create_shader_module(wgpu::include_wgsl!("../../shaders/lstm.wgsl"));
        let layout0 = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("lstm data"),
            entries: &[
                uniform(0, false),
                storage(1, true),
                storage(2, true),
                storage(3, true),
                storage(4, true),
                storage(5, false),
                storage(6, false),
                storage(7, false),
            ],
        });
        let layout1 = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("lstm step"),
            entries: &[uniform(0, true)],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("lstm"),
            bind_group_layouts: &[Some(&layout0), Some(&layout1)],
            immediate_size: 0,
        });
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Pipelines {
            gates: pipeline("gates"),
            cell: pipeline("cell_update"),
            layout0,
            layout1,
        }
    }
}

/// One layer's parameters for a chunk of configs: cell structs, weights, tables, initial states.
struct LayerUpload {
    cells: Vec<CellGpu>,
    weights: Vec<u32>,
    tables: Vec<u32>,
    /// `[dir, {h, c}, H]` per config.
    init: Vec<Vec<u32>>,
}

fn bits_i(v: &[i32]) -> impl Iterator<Item = u32> + '_ {
    v.iter().map(|&x| x as u32)
}

fn bits_f(v: &[f32]) -> impl Iterator<Item = u32> + '_ {
    v.iter().map(|x| x.to_bits())
}

fn upload_cell(
    p: &CellPlan,
    weights: &mut Vec<u32>,
    tables: &mut Vec<u32>,
    init: &mut Vec<u32>,
) -> CellGpu {
    let f = &p.formats;
    let mut c = CellGpu {
        pre: fmt_gpu(f.pre),
        c: fmt_gpu(f.c),
        gate: fmt_gpu(f.gate),
        h: fmt_gpu(f.h),
        ..Default::default()
    };
    let put = |buf: &mut Vec<u32>, it: &mut dyn Iterator<Item = u32>| {
        let off = buf.len() as u32;
        buf.extend(it);
        off
    };
    match &p.int {
        Some(q) => {
            c.mode = 0;
            c.w_off = put(weights, &mut bits_i(&q.w));
            c.r_off = put(weights, &mut bits_i(&q.r));
            c.b_off = put(weights, &mut bits_i(&q.b));
            if let Some(pp) = &q.peep {
                c.p_off = put(weights, &mut bits_i(pp));
                c.has_peep = 1;
            }
            c.sig_off = put(tables, &mut bits_i(&q.sigmoid));
            c.tanhp_off = put(tables, &mut bits_i(&q.tanh_pre));
            c.tanhc_off = put(tables, &mut bits_i(&q.tanh_c));
            c.table_mask = 3;
            (c.shift_wx, c.shift_rh, c.shift_b, c.shift_pc) =
                (q.shift_wx, q.shift_rh, q.shift_b, q.shift_pc);
            (c.pre_shift, c.shift_fc, c.shift_ig) = (q.pre_shift, q.shift_fc, q.shift_ig);
            (c.c_shift, c.h_shift) = (q.c_shift, q.h_shift);
            c.chunk_wx = chunk(q.w_fmt.bits + q.x.bits - 2);
            c.chunk_rh = chunk(q.r_fmt.bits + q.h.bits - 2);
            init.extend(bits_i(&q.h0));
            init.extend(bits_i(&q.c0));
        }
        None => {
            c.mode = 1;
            c.w_off = put(weights, &mut bits_f(&p.w));
            c.r_off = put(weights, &mut bits_f(&p.r));
            c.b_off = put(weights, &mut bits_f(&p.b));
            if let Some(pp) = &p.peep {
                c.p_off = put(weights, &mut bits_f(pp));
                c.has_peep = 1;
            }
            if let (Act::Table { values: s, .. }, Act::Table { values: t, .. }) =
                (&p.sigmoid, &p.tanh_pre)
            {
                c.sig_off = put(tables, &mut bits_f(s.as_slice()));
                c.tanhp_off = put(tables, &mut bits_f(t.as_slice()));
                c.table_mask |= 1;
            }
            if let Act::Table { values, .. } = &p.tanh_c {
                c.tanhc_off = put(tables, &mut bits_f(values.as_slice()));
                c.table_mask |= 2;
            }
            init.extend(bits_f(&p.h0));
            init.extend(bits_f(&p.c0));
        }
    }
    c
}
/// Builds one layer's upload for a chunk of plans.
fn layer_upload(plans: &[&Plan], layer: usize) -> LayerUpload {
    let mut up = LayerUpload {
        cells: Vec::new(),
        weights: Vec::new(),
        tables: Vec::new(),
        init: Vec::new(),
    };
    for plan in plans {
        let mut init = Vec::new();
        for cell in &plan.layers[layer] {
            up.cells.push(upload_cell(
                cell,
                &mut up.weights,
                &mut up.tables,
                &mut init,
            ));
        }
        up.init.push(init);
    }
    // Bindings may not be empty.
    for v in [&mut up.weights, &mut up.tables] {
        if v.is_empty() {
            v.push(0);
        }
    }
    up
}

/// The layer-0 input of one lane, rounded to the lane's input format (codes or f32 bits).
fn lane_input<'a>(plan: &'a Plan, seq: &'a [f32]) -> impl Iterator<Item = u32> + 'a {
    let cell = &plan.layers[0][0];
    seq.iter().map(move |&x| match &cell.int {
        Some(q) => q.x.quantize(x) as u32,
        None => cell.formats.x.round(x).to_bits(),
    })
}

/// Converts read-back words of one lane and layer (`[T, {h, c}, D*H]`) into f32 values.
fn lane_states(
    cells: &[CellPlan],
    words: &[u32],
    steps: usize,
    hidden: usize,
) -> (Vec<f32>, Vec<f32>) {
    let dh = hidden * cells.len();
    let mut h = Vec::with_capacity(steps * dh);
    let mut c = Vec::with_capacity(steps * dh);
    for t in 0..steps {
        let row = &words[t * 2 * dh..(t + 1) * 2 * dh];
        for (k, cell) in cells.iter().enumerate() {
            for j in 0..hidden {
                let (hw, cw) = (row[k * hidden + j], row[dh + k * hidden + j]);
                match &cell.int {
                    Some(q) => {
                        h.push(q.h.to_f32(hw as i32));
                        c.push(q.c.to_f32(cw as i32));
                    }
                    None => {
                        h.push(f32::from_bits(hw));
                        c.push(f32::from_bits(cw));
                    }
                }
            }
        }
    }
    (h, c)
}

impl GpuContext {
    /// Runs prepared plans (from `eval::prepare`) on the GPU: the twin of `eval::run_cpu`,
    /// equal to it bit for bit. `progress(done, total)` counts lane-steps.
    pub fn run(
        &self,
        model: &Model,
        seqs: &Sequences,
        plans: &[Plan],
        keep_states: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<Run>, GpuError> {
        let outs = self.run_plans(model, seqs, plans, progress)?;
        Ok(assemble(model, plans, outs, seqs.count, keep_states))
    }

    fn cap(&self) -> (u64, &'static str) {
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

    fn too_large(&self, what: String, need: u64) -> GpuError {
        let (have, limit) = self.cap();
        GpuError::TooLarge {
            adapter: self.adapter.name.clone(),
            what,
            need,
            limit,
            have,
        }
    }

    /// Runs prepared plans on the GPU: per (plan, sequence), every layer's h and c as `[T, D*H]`
    /// and the head output, in plan-major order (the layout `eval::assemble` takes).
    /// `progress(done, total)` counts lane-steps.
    fn run_plans(
        &self,
        model: &Model,
        seqs: &Sequences,
        plans: &[Plan],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<SeqOut>, GpuError> {
        let (cap, _) = self.cap();
        let steps = seqs.steps;
        // Bytes per lane and per config of the largest layer, to size the chunks.
        let mut lane_bytes = 0u64;
        let mut cfg_bytes = 0u64;
        let mut input = model.input_size();
        for (l, layer) in model.layers.iter().enumerate() {
            let (d, h) = (layer.direction.count() as u64, layer.hidden_size as u64);
            let per_lane = [
                steps as u64 * input.max(2 * layer.output_size()) as u64,
                steps as u64 * 2 * d * h,
                d * 8 * h,
            ];
            lane_bytes = lane_bytes.max(4 * per_lane.iter().max().copied().unwrap_or(0));
            for plan in plans {
                let up = layer_upload(&[plan], l);
                let need = 4 * up.weights.len().max(up.tables.len()) as u64;
                if need > cap {
                    return Err(
                        self.too_large(format!("layer {l}'s weights at {}", plan.config), need)
                    );
                }
                cfg_bytes = cfg_bytes.max(need);
            }
            input = layer.output_size();
        }
        if lane_bytes > cap {
            return Err(self.too_large(format!("one sequence of {steps} steps"), lane_bytes));
        }
        let max_lanes = (cap / lane_bytes.max(1)) as usize;
        let max_cfgs = (cap / cfg_bytes.max(1)).max(1) as usize;
        let seq_chunk = seqs.count.min(max_lanes).max(1);
        let cfg_chunk = plans
            .len()
            .min(max_cfgs)
            .min((max_lanes / seq_chunk).max(1))
            .max(1);

        let total = (plans.len() * seqs.count * steps * model.layers.len()) as u64;
        let mut done = 0u64;
        let mut outs: Vec<Option<SeqOut>> = (0..plans.len() * seqs.count).map(|_| None).collect();
        for c0 in (0..plans.len()).step_by(cfg_chunk) {
            let chunk_plans: Vec<&Plan> = plans[c0..(c0 + cfg_chunk).min(plans.len())]
                .iter()
                .collect();
            for s0 in (0..seqs.count).step_by(seq_chunk) {
                let nseq = seq_chunk.min(seqs.count - s0);
                let layers = self.run_chunk(model, seqs, &chunk_plans, s0, nseq, &mut |n| {
                    done += n;
                    progress(done, total);
                })?;
                for (lane, lane_layers) in layers.into_iter().enumerate() {
                    let (p, s) = (c0 + lane / nseq, s0 + lane % nseq);
                    let last = &lane_layers[lane_layers.len() - 1].0;
                    let output = apply_head(model, last, steps);
                    outs[p * seqs.count + s] = Some(SeqOut {
                        layers: lane_layers,
                        output,
                        ranges: Vec::new(),
                    });
                }
            }
        }
        outs.into_iter()
            .map(|o| o.ok_or_else(|| GpuError::Readback("a lane produced no result".into())))
            .collect()
    }

    /// One chunk: `plans` x sequences `s0..s0+nseq`, every layer. Returns per lane the layers'
    /// (h, c).
    #[allow(clippy::type_complexity)]
    fn run_chunk(
        &self,
        model: &Model,
        seqs: &Sequences,
        plans: &[&Plan],
        s0: usize,
        nseq: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<Vec<(Vec<f32>, Vec<f32>)>>, GpuError> {
        let dev = &self.device;
        let steps = seqs.steps;
        let lanes = plans.len() * nseq;
        let storage = wgpu::BufferUsages::STORAGE;
        let words = |label: &str, data: &[u32], extra: wgpu::BufferUsages| {
            dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: storage | extra,
            })
        };
        let mut xin_data = Vec::with_capacity(lanes * steps * model.input_size());
        for plan in plans {
            for s in s0..s0 + nseq {
                xin_data.extend(lane_input(plan, seqs.sequence(s)));
            }
        }
        let mut xin = words("xin", &xin_data, wgpu::BufferUsages::empty());
        let mut x_stride = model.input_size();
        let align = self.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let mut step_words = vec![0u32; steps * align / 4];
        for s in 0..steps {
            step_words[s * align / 4] = s as u32;
        }
        let step_buf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("steps"),
            contents: bytemuck::cast_slice(&step_words),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let step_group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("step"),
            layout: &self.lstm.layout1,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &step_buf,
                    offset: 0,
                    size: wgpu::BufferSize::new(16),
                }),
            }],
        });
        let mut result: Vec<Vec<(Vec<f32>, Vec<f32>)>> = (0..lanes).map(|_| Vec::new()).collect();
        for (l, layer) in model.layers.iter().enumerate() {
            let (d, h) = (layer.direction.count(), layer.hidden_size);
            let up = layer_upload(plans, l);
            let mut init = Vec::with_capacity(lanes * d * 2 * h);
            for cfg_init in &up.init {
                for _ in 0..nseq {
                    init.extend_from_slice(cfg_init);
                }
            }
            let cells = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("cells"),
                contents: bytemuck::cast_slice(&up.cells),
                usage: storage,
            });
            let weights = words("weights", &up.weights, wgpu::BufferUsages::empty());
            let tables = words("tables", &up.tables, wgpu::BufferUsages::empty());
            let state = words("state", &init, wgpu::BufferUsages::empty());
            let acc_size = (lanes * d * 4 * h * 2 * 4) as u64;
            let acc = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("acc"),
                size: acc_size,
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
            let max_dim = self.limits.max_compute_workgroups_per_dimension.max(1);
            let groups = |threads: usize| (threads as u64).div_ceil(WORKGROUP as u64);
            let gate_groups = groups(lanes * d * 4 * h);
            let x_groups = gate_groups.min(max_dim as u64) as u32;
            let rev_mask = (0..d)
                .filter(|&k| layer.direction.is_reversed(k))
                .fold(0u32, |m, k| m | 1 << k);
            let dims = Dims {
                lanes: lanes as u32,
                dirs: d as u32,
                input: layer.input_size as u32,
                hidden: h as u32,
                steps: steps as u32,
                seqs: nseq as u32,
                rev_mask,
                threads_x: x_groups * WORKGROUP,
                x_stride: x_stride as u32,
                zero: 0,
                pad: [0; 2],
            };
            let dims_buf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dims"),
                contents: bytemuck::bytes_of(&dims),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
                wgpu::BindGroupEntry {
                    binding,
                    resource: buffer.as_entire_binding(),
                }
            }
            let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("lstm data"),
                layout: &self.lstm.layout0,
                entries: &[
                    entry(0, &dims_buf),
                    entry(1, &cells),
                    entry(2, &weights),
                    entry(3, &tables),
                    entry(4, &xin),
                    entry(5, &state),
                    entry(6, &acc),
                    entry(7, &outs),
                ],
            });
            let dispatch = |pass: &mut wgpu::ComputePass, n: u64| {
                let y = n.div_ceil(x_groups as u64) as u32;
                let x = if y == 1 { n as u32 } else { x_groups };
                pass.dispatch_workgroups(x, y, 1);
            };
            let cell_groups = groups(lanes * d * h);
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
                    for s in first..last {
                        pass.set_bind_group(1, &step_group, &[(s * align) as u32]);
                        pass.set_pipeline(&self.lstm.gates);
                        dispatch(&mut pass, gate_groups);
                        pass.set_pipeline(&self.lstm.cell);
                        dispatch(&mut pass, cell_groups);
                    }
                }
                self.queue.submit([enc.finish()]);
                self.device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                progress(((last - first) * lanes) as u64);
            }
            let words = self.read_back(&outs, out_size)?;
            let lane_words = steps * 2 * d * h;
            for (lane, res) in result.iter_mut().enumerate() {
                let plan = plans[lane / nseq];
                res.push(lane_states(
                    &plan.layers[l],
                    &words[lane * lane_words..(lane + 1) * lane_words],
                    steps,
                    h,
                ));
            }
            xin = outs;
            x_stride = 2 * d * h;
        }
        Ok(result)
    }

    fn read_back(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u32>, GpuError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let words = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::cast_slice::<u8, u32>(&view).to_vec()
        };
        staging.unmap();
        Ok(words)
    }
}
