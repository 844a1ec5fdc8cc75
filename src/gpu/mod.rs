//! GPU access through wgpu: choosing an adapter (honouring `WGPU_BACKEND` and
//! `WGPU_ADAPTER_NAME`), and the one [`GpuContext`] — device, queue, pipelines — that is built
//! once and reused for every evaluation. Getting a device is kept apart from running kernels
//! ([`GpuContext::from_adapter`]) so tests and callers can bring their own.

mod backend;
mod groups;
mod lstm;

pub use lstm::HostLayout;

/// The LSTM kernels' WGSL module: layout, exact numerics, the step kernels of policy lanes and
/// of config lanes, and the policy lanes' level choice, one file per concept under `shaders/`,
/// concatenated in this order.
pub const LSTM_SHADER: &str = concat!(
    include_str!("../../shaders/lstm.wgsl"),
    include_str!("../../shaders/numerics.wgsl"),
    include_str!("../../shaders/lstm_step.wgsl"),
    include_str!("../../shaders/lstm_lanes.wgsl"),
    include_str!("../../shaders/lstm_policy.wgsl"),
);

/// The trace's error-statistics kernel's WGSL module (needs `SHADER_F64` and `SHADER_INT64`).
pub const REDUCE_SHADER: &str = include_str!("../../shaders/reduce.wgsl");

/// The DPRed group-width kernel's WGSL module.
pub const GROUPS_SHADER: &str = include_str!("../../shaders/groups.wgsl");

/// Every shader module: (name, the `shaders/` files it is made of, source).
pub fn shader_modules() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
    vec![
        (
            "lstm",
            vec![
                "lstm.wgsl",
                "numerics.wgsl",
                "lstm_step.wgsl",
                "lstm_lanes.wgsl",
                "lstm_policy.wgsl",
            ],
            LSTM_SHADER,
        ),
        ("groups", vec!["groups.wgsl"], GROUPS_SHADER),
        ("reduce", vec!["reduce.wgsl"], REDUCE_SHADER),
    ]
}

/// Every host struct mirrored by a WGSL struct, per shader module: the layouts that
/// `tests/shaders.rs` checks against naga's reflection of the shaders.
pub fn host_layouts() -> Vec<(&'static str, HostLayout)> {
    let mut v: Vec<_> = lstm::host_layouts()
        .into_iter()
        .map(|l| ("lstm", l))
        .collect();
    v.push(("groups", groups::host_layout()));
    v.push(("reduce", reduce::host_layout()));
    v
}
mod policy;
mod reduce;
mod run;
mod sizing;
mod stage;
mod upload;

pub use backend::{GpuConfigs, GpuLayer};
pub use reduce::{ReduceShape, StateDecode};
pub use sizing::policy_chunk_lanes;

use std::fmt;

/// Why the GPU stage cannot run; `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found{0} (install mesa-vulkan-drivers for a CPU Vulkan adapter, or use --device cpu)")]
    NoAdapter(String),
    #[error("GPU device request failed: {0}")]
    Device(String),
    /// Boxed: the refusal's fields would make every `Result` of the GPU stage large.
    #[error(transparent)]
    TooLarge(Box<TooLarge>),
    #[error("GPU readback failed: {0}")]
    Readback(String),
    #[error("not supported on the GPU: {0} (use --device cpu)")]
    Unsupported(String),
}

/// A buffer the adapter cannot hold, of one that chunks cannot split further (a layer's weights
/// at one config, one sequence's states, one DPRed group); `Display` is one line naming the
/// model, the buffer, its size, the limit and what to do instead.
#[derive(Debug, thiserror::Error)]
#[error("{model}: too large for the adapter '{adapter}': {what} needs a buffer of {need} bytes, but {limit} allows {have}; {hint}run it on the CPU (--device cpu, or device = \"cpu\" under a sweep's [precision])")]
pub struct TooLarge {
    /// The model's file or `builtin:NAME` ([`crate::lstm::Model::name`]).
    pub model: String,
    pub adapter: String,
    /// What the buffer would hold.
    pub what: String,
    pub need: u64,
    /// The adapter limit (or lstm-dse's own cap) that refuses it, and its value.
    pub limit: &'static str,
    pub have: u64,
    /// Why fewer lanes would not help, and what else would (before "run it on the CPU").
    pub hint: &'static str,
}

/// Which adapters a caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterChoice {
    /// Only real GPUs (discrete, integrated, virtual); software rasterisers are skipped.
    HardwareOnly,
    /// Any adapter, including CPU implementations such as lavapipe.
    Any,
}

/// One adapter wgpu can see.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}) {}",
            self.name, self.backend, self.device_type, self.driver
        )
    }
}

fn summary(info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

fn adapters() -> Vec<wgpu::Adapter> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// What `WGPU_BACKEND` narrows the search to, for messages when no adapter is found: empty
/// when it is unset.
pub fn backend_filter() -> String {
    match std::env::var("WGPU_BACKEND") {
        Err(_) => String::new(),
        Ok(v) if wgpu::Backends::from_env().is_none_or(|b| b.is_empty()) => format!(
            " (WGPU_BACKEND='{v}' names no backend: use vulkan, gl, metal or dx12, or unset it)"
        ),
        Ok(v) => format!(" with WGPU_BACKEND='{v}'"),
    }
}

/// Every adapter of the backends allowed by `WGPU_BACKEND` (all by default).
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().map(|a| summary(&a.get_info())).collect()
}

/// The best adapter: `WGPU_ADAPTER_NAME` (a case-insensitive substring) narrows the choice;
/// real GPUs beat software ones, and native compute backends beat OpenGL.
pub fn choose_adapter(choice: AdapterChoice) -> Result<wgpu::Adapter, GpuError> {
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .map(|s| s.to_lowercase());
    let rank = |info: &wgpu::AdapterInfo| {
        let device = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        (device, u8::from(info.backend == wgpu::Backend::Gl))
    };
    let mut found: Vec<wgpu::Adapter> = adapters()
        .into_iter()
        .filter(|a| {
            let info = a.get_info();
            let name_ok = wanted
                .as_ref()
                .is_none_or(|w| info.name.to_lowercase().contains(w));
            let kind_ok = choice == AdapterChoice::Any || info.device_type != wgpu::DeviceType::Cpu;
            name_ok && kind_ok && info.backend != wgpu::Backend::Noop
        })
        .collect();
    found.sort_by_key(|a| rank(&a.get_info()));
    found.into_iter().next().ok_or_else(|| {
        let mut why = backend_filter();
        if let Some(w) = &wanted {
            why += &format!(" matching WGPU_ADAPTER_NAME='{w}'");
        }
        if choice == AdapterChoice::HardwareOnly {
            why += " (hardware GPUs only)";
        }
        GpuError::NoAdapter(why)
    })
}

/// Device, queue and compiled pipelines: create once, reuse for every evaluation.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    /// Largest buffer this context creates (at most the adapter's limits); see
    /// [`GpuContext::limit_buffers`].
    buffer_cap: u64,
    /// Largest step (words of x and h of every lane) config lanes read from the uniform stage;
    /// see [`GpuContext::limit_stage`].
    stage_cap: usize,
    /// A CPU implementation (llvmpipe): it reads uniform buffers and textures with gathers but
    /// storage buffers, in a loop, a SIMD lane at a time. There a stage larger than one uniform
    /// binding is read in windows, a dispatch each (`stage.rs`; GPUs read such steps from
    /// storage in one dispatch), and the weights from a texture (GPUs: from storage).
    cpu_device: bool,
    /// Kernels read the weights from a texture (`shaders/lstm.wgsl` `w4`).
    texture_weights: bool,
    /// Float sums not fused run unflushed where a step's states allow (`upload::plain_exponent`;
    /// GPUs only: on CPU implementations the pass over the states that decides it costs more
    /// than the flushes it saves).
    unflushed_sums: bool,
    lstm: lstm::Pipelines,
    groups: groups::Pipeline,
    /// The error-statistics kernel, on devices with `SHADER_F64` and `SHADER_INT64`.
    reduce: Option<reduce::Pipeline>,
}

impl GpuContext {
    /// Chooses an adapter (see [`choose_adapter`]) and builds the context.
    pub fn new(choice: AdapterChoice) -> Result<Self, GpuError> {
        Self::from_adapter(&choose_adapter(choice)?)
    }

    /// Builds the context on a given adapter, asking for the adapter's own limits so that
    /// large problems need fewer chunks.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self, GpuError> {
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("lstm-dse"),
            // The trace's error statistics need f64 (and u64 bits); without them the states
            // are reduced on the CPU.
            required_features: adapter.features() & reduce::FEATURES,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::default(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let cpu_device = adapter.get_info().device_type == wgpu::DeviceType::Cpu;
        // Weights through a texture on CPU implementations, where its rows hold the largest
        // weight buffer a chunk may have (`plan_chunks`); `LSTM_DSE_GPU_WEIGHTS=texture` or
        // `=storage` chooses (an A/B for benchmarks: tools/gpu-bench.sh).
        let texture_bytes =
            (16u64 << lstm::WEIGHT_ROW_LOG2) * u64::from(limits.max_texture_dimension_2d);
        let fits = texture_bytes >= limits.max_storage_buffer_binding_size.min(lstm::BUFFER_CAP);
        let texture_weights = match std::env::var("LSTM_DSE_GPU_WEIGHTS").as_deref() {
            Err(_) => cpu_device && fits,
            Ok("storage") => false,
            Ok("texture") if fits => true,
            Ok(v) => {
                return Err(GpuError::Device(format!(
                    "LSTM_DSE_GPU_WEIGHTS={v}: expected `texture` (where the adapter's \
                     textures hold the weights) or `storage`"
                )))
            }
        };
        let lstm = lstm::Pipelines::new(&device, texture_weights);
        let groups = groups::Pipeline::new(&device);
        let reduce = reduce::Pipeline::new(&device);
        Ok(GpuContext {
            device,
            queue,
            adapter: summary(&adapter.get_info()),
            buffer_cap: lstm::BUFFER_CAP,
            stage_cap: usize::MAX,
            cpu_device,
            texture_weights,
            unflushed_sums: !cpu_device,
            limits,
            lstm,
            groups,
            reduce,
        })
    }

    /// Whether the adapter is a CPU implementation (llvmpipe), which takes its own paths
    /// (weights from a texture, stage windows, flushed sums) where a GPU takes others.
    pub fn is_cpu(&self) -> bool {
        self.cpu_device
    }

    /// Lowers the per-buffer cap, as if the adapter were smaller: large problems are then
    /// split into more chunks (or refused). For tests and for sharing a device.
    pub fn limit_buffers(&mut self, bytes: u64) {
        self.buffer_cap = bytes.min(lstm::BUFFER_CAP);
    }

    /// Lowers the largest step of config lanes read through the uniform stage (x and h of
    /// every lane, in words; it is at most one uniform binding): larger steps read them from
    /// storage buffers, as `limit_stage(0)` makes every step do. For tests.
    pub fn limit_stage(&mut self, words: usize) {
        self.stage_cap = words;
    }

    /// Makes the kernels take the paths they take on GPUs where this context, on a CPU
    /// implementation, takes others: the weights read from storage buffers instead of a
    /// texture, and float sums unflushed where a step's states allow. (Stage windows stay: a
    /// GPU reads such steps from storage, which `limit_stage` tests.) For tests.
    pub fn as_on_a_gpu(&mut self) {
        if self.texture_weights {
            self.lstm = lstm::Pipelines::new(&self.device, false);
            self.texture_weights = false;
        }
        self.unflushed_sums = true;
    }

    /// Copies the first `size` bytes of `buffer` to the host, as words.
    pub(super) fn read_back(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u32>, GpuError> {
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
