//! Host side of `shaders/groups.wgsl`: the width and non-zero count of every DPRed group of a
//! set of code vectors, computed on the device (CPU twin: `dynamic::groups`).

use super::{GpuContext, GpuError};
use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    groups: u32,
    base_bits: u32,
    threads_x: u32,
    pad: u32,
}

/// The layout of [`Params`] (checked against the shader by `tests/shaders.rs`).
pub fn host_layout() -> super::lstm::HostLayout {
    super::lstm::HostLayout {
        wgsl_name: "Params",
        size: std::mem::size_of::<Params>(),
        fields: vec![
            ("groups", std::mem::offset_of!(Params, groups)),
            ("base_bits", std::mem::offset_of!(Params, base_bits)),
            ("threads_x", std::mem::offset_of!(Params, threads_x)),
        ],
    }
}

/// The compiled kernel.
pub(super) struct Pipeline {
    pipeline: wgpu::ComputePipeline,
}

impl Pipeline {
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("groups"),
            source: wgpu::ShaderSource::Wgsl(super::GROUPS_SHADER.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("group widths"),
            layout: None,
            module: &module,
            entry_point: Some("group_widths"),
            compilation_options: Default::default(),
            cache: None,
        });
        Pipeline { pipeline }
    }
}

impl GpuContext {
    /// For vectors `lens` of the concatenated `codes` (of `model`, which a refusal names),
    /// cut into groups of `group_size` (the last group of a vector may be shorter): (width,
    /// length, non-zero count) of every group, in order. Widths are at most `base_bits`.
    pub fn group_widths(
        &self,
        model: &str,
        codes: &[i32],
        lens: &[usize],
        group_size: usize,
        base_bits: u32,
    ) -> Result<Vec<(u32, usize, usize)>, GpuError> {
        let mut bounds = vec![0usize];
        let mut at = 0;
        for &n in lens {
            let end = at + n;
            while at < end {
                at = (at + group_size.max(1)).min(end);
                bounds.push(at);
            }
        }
        let (cap, _) = self.cap();
        let mut out = Vec::with_capacity(bounds.len() - 1);
        for (first, last) in batches(&bounds, (cap / 4) as usize) {
            let (lo, hi) = (bounds[first], bounds[last]);
            let starts: Vec<u32> = bounds[first..=last]
                .iter()
                .map(|&b| (b - lo) as u32)
                .collect();
            let widths = self.run_groups(model, &codes[lo..hi], &starts, base_bits)?;
            for g in 0..last - first {
                let len = (starts[g + 1] - starts[g]) as usize;
                out.push((widths[2 * g], len, widths[2 * g + 1] as usize));
            }
        }
        Ok(out)
    }

    fn run_groups(
        &self,
        model: &str,
        codes: &[i32],
        starts: &[u32],
        base_bits: u32,
    ) -> Result<Vec<u32>, GpuError> {
        let dev = &self.device;
        let groups = starts.len() - 1;
        // `batches` keeps every buffer within the cap unless one group alone is longer.
        let bytes = (words(codes.len(), groups) * 4) as u64;
        if bytes > self.cap().0 {
            let what = format!("{groups} DPRed groups of {} codes", codes.len());
            let hint = "one DPRed group is never split: give a smaller group size, or ";
            return Err(self.too_large(model, what, bytes, hint));
        }
        let total = (groups as u64).div_ceil(64);
        let x = total.min(self.limits.max_compute_workgroups_per_dimension.max(1) as u64) as u32;
        let y = total.div_ceil(x.max(1) as u64) as u32;
        let params = Params {
            groups: groups as u32,
            base_bits,
            threads_x: x * 64,
            pad: 0,
        };
        let init = |label: &str, contents: &[u8], usage: wgpu::BufferUsages| {
            dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let codes = if codes.is_empty() { &[0i32][..] } else { codes };
        let params_buf = init(
            "group params",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let codes_buf = init(
            "codes",
            bytemuck::cast_slice(codes),
            wgpu::BufferUsages::STORAGE,
        );
        let starts_buf = init(
            "starts",
            bytemuck::cast_slice(starts),
            wgpu::BufferUsages::STORAGE,
        );
        let out_size = (groups.max(1) * 2 * 4) as u64;
        let out = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("group widths"),
            size: out_size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let layout = self.groups.pipeline.get_bind_group_layout(0);
        let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("groups"),
            layout: &layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params_buf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: codes_buf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: starts_buf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: out.as_entire_binding(),
                },
            ],
        });
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("groups"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("group widths"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.groups.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(x.max(1), y.max(1), 1);
        }
        self.queue.submit([enc.finish()]);
        self.read_back(&out, out_size)
    }
}

/// The largest buffer of one dispatch, in 4-byte words: its codes, or its output (a width and
/// a count per group); the starts buffer (one word a group, and one more) is never larger.
fn words(codes: usize, groups: usize) -> usize {
    codes.max(2 * groups)
}

/// The dispatches of the groups whose bounds are `bounds` (group g covers codes
/// `bounds[g]..bounds[g + 1]`): ranges `(first, last)` of group bounds, each as many whole
/// groups as keep every buffer within `max_words` words ([`words`]), and at least one group (so
/// a group longer than that gets a buffer of its own). The bound was once the group size, not
/// the longest group: with a group size past the cap (`--group-sizes 1000000000`, groups as
/// long as their vectors), every group of the call went into one buffer, however large.
fn batches(bounds: &[usize], max_words: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut first = 0;
    while first + 1 < bounds.len() {
        let mut last = first + 1;
        while last + 1 < bounds.len()
            && words(bounds[last + 1] - bounds[first], last + 1 - first) <= max_words
        {
            last += 1;
        }
        out.push((first, last));
        first = last;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::batches;

    #[test]
    fn batches_hold_whole_groups_within_the_cap() {
        // Vectors of 10, 10 and 25 codes in groups of at most 1e9: one group each.
        let bounds = [0, 10, 20, 45];
        assert_eq!(batches(&bounds, 16), [(0, 1), (1, 2), (2, 3)]);
        assert_eq!(batches(&bounds, 20), [(0, 2), (2, 3)]);
        assert_eq!(batches(&bounds, 1 << 20), [(0, 3)]);
        assert!(batches(&[0], 16).is_empty());
        // Groups of one code: the output (two words a group) is the larger buffer.
        assert_eq!(batches(&[0, 1, 2, 3, 4, 5], 4), [(0, 2), (2, 4), (4, 5)]);
    }
}
