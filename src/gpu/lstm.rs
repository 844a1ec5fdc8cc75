//! Host-side mirror of the LSTM kernels (`shaders/lstm*.wgsl`, `numerics.wgsl`): the uniform
//! and cell structs and the pipelines. Packing a layer for them is `upload.rs`; running chunks
//! is `run.rs`.

use bytemuck::{Pod, Zeroable};

pub(super) const WORKGROUP: u32 = 64;
/// Lanes (sequences) one `step_lanes` thread computes (LB in shaders/lstm_lanes.wgsl).
pub(super) const LANE_BLOCK: usize = 4;
/// Steps encoded per submission (progress is reported between submissions).
pub(super) const STEPS_PER_SUBMIT: usize = 128;
/// Upper bound on one buffer, whatever the adapter allows (keeps host memory sane).
pub(super) const BUFFER_CAP: u64 = 1 << 30;
/// Texels (vec4s of weight words) a row of the weight texture (`WEIGHT_ROW_LOG2` in
/// shaders/lstm.wgsl).
pub(super) const WEIGHT_ROW_LOG2: u32 = 11;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(super) struct Dims {
    pub lanes: u32,
    pub dirs: u32,
    pub input: u32,
    pub hidden: u32,
    pub steps: u32,
    pub seqs: u32,
    pub rev_mask: u32,
    pub threads_x: u32,
    pub x_stride: u32,
    pub zero: u32,
    pub policy: u32,
    pub levels: u32,
    pub x_f32: u32,
    pub metric: u32,
    pub above: [i32; 2],
    pub off_bounds: u32,
    pub off_cprev: u32,
    pub off_x: u32,
    pub off_saved: u32,
    pub off_trace: u32,
    pub start: u32,
    /// Policy lanes keep their state as f32 values (any levels), not codes (nested levels).
    pub values: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(super) struct FmtGpu {
    pub(super) kind: u32,
    pub(super) bits: u32,
    pub(super) frac: i32,
    pub(super) em: u32,
    pub(super) maxf: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(super) struct CellGpu {
    pub(super) mode: u32,
    pub(super) w_off: u32,
    pub(super) r_off: u32,
    pub(super) b_off: u32,
    pub(super) p_off: u32,
    pub(super) has_peep: u32,
    pub(super) sig_off: u32,
    pub(super) tanhp_off: u32,
    pub(super) tanhc_off: u32,
    pub(super) table_mask: u32,
    pub(super) shift_wx: u32,
    pub(super) shift_rh: u32,
    pub(super) shift_b: u32,
    pub(super) shift_pc: u32,
    pub(super) pre_shift: i32,
    pub(super) shift_fc: u32,
    pub(super) shift_ig: u32,
    pub(super) c_shift: i32,
    pub(super) h_shift: i32,
    pub(super) chunk_wx: u32,
    pub(super) chunk_rh: u32,
    /// Word offset of the per-row extra shifts (W·x | R·h << 16), or u32::MAX for none.
    pub(super) rs_off: u32,
    /// 1: W and R hold four 8-bit codes per word along k (see `upload::pack_k_major`); 2: and the
    /// x and h codes fit a byte too (a staged step packs them, shaders/lstm_lanes.wgsl).
    pub(super) packed: u32,
    /// Bit 0 (W·x) and bit 1 (R·h): every product of those weights with the values a step can
    /// meet is exact and no partial sum can be subnormal (`upload::fused_bits`), so float lanes may
    /// run one fused multiply-add per term (shaders/lstm_lanes.wgsl). Read by `step_lanes` only.
    pub(super) fused: u32,
    /// Float lanes not fused: the smallest biased exponent (the f32 bits' 8-bit field) that
    /// every non-zero x (h) word of a step's block of lanes must have for W·x (R·h) to run
    /// unflushed, one multiply and one add per term (the flushing loop's bits,
    /// `upload::plain_exponent`, decided on the device each step); 256, above any exponent
    /// field: never. Read by `step_lanes` only.
    pub(super) plain_x: u32,
    pub(super) plain_h: u32,
    /// Integer lanes (`step_lanes`, `gates`), bit 0 (W·x) and bit 1 (R·h): x (h) codes split into a
    /// signed high and an unsigned low byte (`upload::split_chunk`); `chunk_wx` (`chunk_rh`)
    /// then counts products of a byte.
    pub(super) split: u32,
    pub(super) pre: FmtGpu,
    pub(super) c: FmtGpu,
    pub(super) gate: FmtGpu,
    pub(super) h: FmtGpu,
    pub(super) x: FmtGpu,
}

/// The host side of a struct the shaders declare: its WGSL name, size and field offsets in
/// bytes (`tests/shaders.rs` checks them against naga's layout of the shader).
pub struct HostLayout {
    pub wgsl_name: &'static str,
    pub size: usize,
    pub fields: Vec<(&'static str, usize)>,
}

macro_rules! layout {
    ($wgsl:literal, $ty:ty, [$($field:ident),*]) => {
        HostLayout {
            wgsl_name: $wgsl,
            size: std::mem::size_of::<$ty>(),
            fields: vec![$((stringify!($field), std::mem::offset_of!($ty, $field))),*],
        }
    };
}

/// The layouts of the LSTM kernels' host structs.
pub fn host_layouts() -> Vec<HostLayout> {
    vec![
        layout!(
            "Dims",
            Dims,
            [
                lanes, dirs, input, hidden, steps, seqs, rev_mask, threads_x, x_stride, zero,
                policy, levels, x_f32, metric, off_bounds, off_cprev, off_x, off_saved, off_trace,
                start, values
            ]
        ),
        layout!("Fmt", FmtGpu, [kind, bits, frac, em, maxf]),
        layout!(
            "Cell",
            CellGpu,
            [
                mode, w_off, r_off, b_off, p_off, has_peep, sig_off, tanhp_off, tanhc_off,
                table_mask, shift_wx, shift_rh, shift_b, shift_pc, pre_shift, shift_fc, shift_ig,
                c_shift, h_shift, chunk_wx, chunk_rh, rs_off, packed, fused, plain_x, plain_h,
                split, pre, c, gate, h, x
            ]
        ),
    ]
}

/// The compiled kernels and their bind-group layouts.
pub(super) struct Pipelines {
    /// The gate sums of policy lanes: one thread per (unit, block of lanes of one policy), one
    /// pass per level present in the block (lanes of a block may differ in level).
    pub gates: wgpu::ComputePipeline,
    /// A whole step of config lanes (`step_lanes`): lane-blocked products over k-major weights
    /// and the cell update, one thread per (unit, block of lanes).
    pub step_lanes: wgpu::ComputePipeline,
    /// `step_lanes` reading x and h from the uniform stage, which `stage` fills each step.
    pub step_staged: wgpu::ComputePipeline,
    pub stage: wgpu::ComputePipeline,
    pub cell: wgpu::ComputePipeline,
    pub select: wgpu::ComputePipeline,
    pub layout0: wgpu::BindGroupLayout,
    pub layout1: wgpu::BindGroupLayout,
    /// Group 2: the stage as a uniform (`step_lanes*`) and as storage (`stage_lanes`).
    pub layout2u: wgpu::BindGroupLayout,
    pub layout2s: wgpu::BindGroupLayout,
    /// Words of the stage (`STAGE_VEC4S` in shaders/lstm.wgsl, as built for this device).
    pub stage_words: usize,
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
    /// The pipelines, reading weights from the texture where `texture_weights`.
    pub(super) fn new(device: &wgpu::Device, texture_weights: bool) -> Self {
        // The stage is as large as one uniform binding may be, up to the 64 KiB of the source.
        const STAGE: &str = "const STAGE_VEC4S: u32 = 4096u;";
        assert!(super::LSTM_SHADER.contains(STAGE));
        assert!(super::LSTM_SHADER
            .contains(&format!("const WEIGHT_ROW_LOG2: u32 = {WEIGHT_ROW_LOG2}u;")));
        let vec4s = (device.limits().max_uniform_buffer_binding_size / 16).clamp(1, 4096);
        let source =
            super::LSTM_SHADER.replace(STAGE, &format!("const STAGE_VEC4S: u32 = {vec4s}u;"));
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("lstm"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
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
                storage(8, false),
                storage(9, true),
                wgpu::BindGroupLayoutEntry {
                    binding: 10,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Uint,
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
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
        let group2 = |label: &str, entry: wgpu::BindGroupLayoutEntry| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &[entry],
            })
        };
        // The uniform stage at a dynamic offset: one window of it (`stage.rs`).
        let layout2u = group2("stage (uniform)", uniform(0, true));
        let layout2s = group2("stage (storage)", storage(1, false));
        let with_stage = |stage: &wgpu::BindGroupLayout| {
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("lstm staged"),
                bind_group_layouts: &[Some(&layout0), Some(&layout1), Some(stage)],
                immediate_size: 0,
            })
        };
        let (layout_u, layout_s) = (with_stage(&layout2u), with_stage(&layout2s));
        let pipeline = |entry: &str, layout: &wgpu::PipelineLayout| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[("WEIGHTS_IN_TEXTURE", f64::from(u8::from(texture_weights)))],
                    ..Default::default()
                },
                cache: None,
            })
        };
        Pipelines {
            gates: pipeline("gates", &layout),
            step_lanes: pipeline("step_lanes", &layout_u),
            step_staged: pipeline("step_lanes_staged", &layout_u),
            stage: pipeline("stage_lanes", &layout_s),
            cell: pipeline("cell_update", &layout),
            select: pipeline("select_level", &layout),
            layout0,
            layout1,
            layout2u,
            layout2s,
            stage_words: 4 * vec4s as usize,
        }
    }
}
