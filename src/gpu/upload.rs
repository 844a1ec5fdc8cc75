//! Packing one layer of a chunk of precision configs for the LSTM kernels: the cell structs
//! (formats, shifts, table offsets, which products may fuse), the weights in the layout the
//! kernels read (gate-interleaved k-major, 8-bit codes packed four a word for `step_lanes`),
//! the activation tables and the initial states; each lane's input and states in the
//! kernels' words; and the weights as a texture where the kernels read them from one.

use super::lstm::{CellGpu, FmtGpu, WEIGHT_ROW_LOG2};
use crate::format::Resolved;
use crate::lstm::eval::fused::{format_span, span, Mode, Span};
use crate::lstm::eval::plan::{Act, CellPlan};
use crate::lstm::eval::Plan;
use std::sync::OnceLock;

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

/// The chunk of split products (`mac1s` in shaders/lstm_lanes.wgsl) for weight codes of
/// `w_bits` and activation codes of `x_bits`, where splitting pays: codes of 10 to 16 bits
/// (the high byte `x >> 8` then fits 8 signed bits, the low byte is 0..255, so each product is
/// below 2^(w_bits + 7)) whose whole products allow chunks of fewer than 64 (fx16 x fx16: 1).
fn split_chunk(w_bits: u32, x_bits: u32, whole: u32) -> Option<u32> {
    ((10..=16).contains(&x_bits) && whole < 64).then(|| chunk(w_bits + 7))
}

/// How many products of magnitude up to 2^bits can be summed in an i32 without overflow.
fn chunk(bits: u32) -> u32 {
    ((i32::MAX as u32) >> bits).max(1)
}

/// One layer's parameters for a chunk of configs: cell structs, weights, tables, initial states.
pub(super) struct LayerUpload {
    pub cells: Vec<CellGpu>,
    pub weights: Vec<u32>,
    pub tables: Vec<u32>,
    /// `[dir, {h, c}, H]` per config.
    pub init: Vec<Vec<u32>>,
}

fn bits_i(v: &[i32]) -> impl Iterator<Item = u32> + '_ {
    v.iter().map(|&x| x as u32)
}

fn bits_f(v: &[f32]) -> impl Iterator<Item = u32> + '_ {
    v.iter().map(|x| x.to_bits())
}

/// `m` (`rows x k` = `4H x k`, row-major) as `[k][H][gate]`: row `gate * H + j` at
/// `(k * H + j) * 4 + gate`, so a unit's four gate rows at one k are one vec4, and the units of
/// a wave read consecutive vec4s.
fn gates_k_major<T: Copy>(m: &[T], rows: usize) -> Vec<T> {
    let k = m.len() / rows.max(1);
    let units = rows / 4;
    (0..k)
        .flat_map(|kk| (0..rows).map(move |i| m[((i % 4) * units + i / 4) * k + kk]))
        .collect()
}

/// `m` (`rows x k` = `4H x k`, row-major codes that fit in 8 bits) as `[k / 4][H][gate]` words
/// holding the codes of four consecutive k, the first in the low byte (row `gate * H + j` is
/// `[..][j][gate]`: one vec4 per unit); a row's last word is padded with 0 codes.
fn pack_k_major(m: &[i32], rows: usize) -> Vec<i32> {
    let k = m.len() / rows.max(1);
    let units = rows / 4;
    (0..k.div_ceil(4))
        .flat_map(|q| {
            // Word (q, j, g) holds row g * H + j: a unit's four gate rows are one vec4.
            (0..rows).map(move |i| {
                let r = (i % 4) * units + i / 4;
                (0..4).filter(|&b| 4 * q + b < k).fold(0u32, |w, b| {
                    w | (m[r * k + 4 * q + b] as u8 as u32) << (8 * b)
                }) as i32
            })
        })
        .collect()
}

/// Packs one cell; `blocked`: for `step_lanes` (config lanes), which also reads 8-bit codes
/// packed four a word (`gates`, for policy lanes, reads one code a word).
fn upload_cell(
    p: &CellPlan,
    blocked: bool,
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
        x: fmt_gpu(f.x),
        plain_x: NEVER_PLAIN,
        plain_h: NEVER_PLAIN,
        ..Default::default()
    };
    let put = |buf: &mut Vec<u32>, it: &mut dyn Iterator<Item = u32>| {
        let off = buf.len() as u32;
        buf.extend(it);
        off
    };
    // W and R are read as vec4s: 4-word aligned (each is 4H words per k or q).
    weights.resize(weights.len().next_multiple_of(4), 0);
    match &p.int {
        Some(q) => {
            c.mode = 0;
            let rows = q.b.len();
            c.chunk_wx = chunk(q.w_fmt.bits + q.x.bits - 2);
            c.chunk_rh = chunk(q.r_fmt.bits + q.h.bits - 2);
            let byte = |v: &[i32]| v.iter().all(|&x| i8::try_from(x).is_ok());
            // Packing needs chunks of whole words (any grouping of an exact sum is exact).
            let pack = blocked && byte(&q.w) && byte(&q.r) && c.chunk_wx >= 4 && c.chunk_rh >= 4;
            let (w, r) = match pack {
                true => (pack_k_major(&q.w, rows), pack_k_major(&q.r, rows)),
                false => (gates_k_major(&q.w, rows), gates_k_major(&q.r, rows)),
            };
            c.packed = u32::from(pack);
            if !pack {
                // Wide activation codes: split into bytes (`split_chunk`).
                if let Some(n) = split_chunk(q.w_fmt.bits, q.x.bits, c.chunk_wx) {
                    (c.split, c.chunk_wx) = (c.split | 1, n);
                }
                if let Some(n) = split_chunk(q.r_fmt.bits, q.h.bits, c.chunk_rh) {
                    (c.split, c.chunk_rh) = (c.split | 2, n);
                }
            }
            c.w_off = put(weights, &mut bits_i(&w));
            c.r_off = put(weights, &mut bits_i(&r));
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
            c.rs_off = match &q.row_extra {
                Some(e) => put(weights, &mut e.iter().map(|&(w, r)| w | (r << 16))),
                None => u32::MAX,
            };
            init.extend(bits_i(&q.h0));
            init.extend(bits_i(&q.c0));
        }
        None => {
            c.mode = 1;
            let rows = p.b.len();
            let (w, r) = (gates_k_major(&p.w, rows), gates_k_major(&p.r, rows));
            c.w_off = put(weights, &mut bits_f(&w));
            c.r_off = put(weights, &mut bits_f(&r));
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
/// Words of weights and of tables `layer_upload` would pack for `plans` (without packing, with
/// the most alignment padding: 3 words before a cell's W, 3 at the end).
pub(super) fn upload_words(plans: &[&Plan], layer: usize) -> (usize, usize) {
    let table = |a: &Act| match a {
        Act::Table { values, .. } => values.len(),
        Act::Direct { .. } => 0,
    };
    plans
        .iter()
        .flat_map(|p| &p.layers[layer])
        .fold((3, 0), |(w, t), c| {
            let rows = c
                .int
                .as_ref()
                .and_then(|q| q.row_extra.as_ref())
                .map_or(0, Vec::len);
            let weights =
                c.w.len() + c.r.len() + c.b.len() + c.peep.as_ref().map_or(0, Vec::len) + rows;
            let tables = table(&c.sigmoid) + table(&c.tanh_pre) + table(&c.tanh_c);
            (w + 3 + weights, t + tables)
        })
}

/// Builds one layer's upload for a chunk of plans.
/// Packs `plans`' cells of `layer`, W and R transposed with a unit's four gate rows side by
/// side (`[k][H][gate]`, [`gates_k_major`]: the kernels read them one vec4 at a time,
/// coalesced), wide codes split into bytes; `blocked` (config lanes, `step_lanes`): 8-bit codes
/// four a word ([`pack_k_major`]) and float products fused where that keeps the bits.
/// `finite_input`: every value of the sequences is finite (see [`fused_bits`]); `unflushed`:
/// float sums not fused may run unflushed where a step's states allow ([`plain_exponent`];
/// GPUs, see `GpuContext::unflushed_sums`).
pub(super) fn layer_upload(
    plans: &[&Plan],
    layer: usize,
    blocked: bool,
    finite_input: bool,
    unflushed: bool,
) -> LayerUpload {
    let mut up = LayerUpload {
        cells: Vec::new(),
        weights: Vec::new(),
        tables: Vec::new(),
        init: Vec::new(),
    };
    for plan in plans {
        let mut init = Vec::new();
        // The layer's x are codes of at most 8 bits: the inputs, or the previous layer's h.
        let byte_h = |c: &CellPlan| c.int.as_ref().is_some_and(|q| q.h.bits <= 8);
        let x_byte = layer == 0 || plan.layers[layer - 1].iter().all(byte_h);
        for cell in &plan.layers[layer] {
            let mut gpu = upload_cell(cell, blocked, &mut up.weights, &mut up.tables, &mut init);
            // Config lanes only (`gates` runs every term unfused).
            if blocked {
                let x = match layer {
                    0 => format_span(cell.formats.x),
                    _ => plan.layers[layer - 1]
                        .iter()
                        .fold(format_span(cell.formats.x), |s, c| {
                            s.join(format_span(c.formats.h))
                        }),
                };
                gpu.fused = fused_bits(cell, &x, finite_input);
                if unflushed && cell.int.is_none() && !no_fma() {
                    (gpu.plain_x, gpu.plain_h) = (plain_exponent(&cell.w), plain_exponent(&cell.r));
                }
            }
            // Packed weights whose x and h codes fit a byte too: the stage packs them.
            if gpu.packed == 1 && x_byte && byte_h(cell) && cell.int.as_ref().unwrap().x.bits <= 8 {
                gpu.packed = 2;
            }
            up.cells.push(gpu);
        }
        up.init.push(init);
    }
    // Bindings may not be empty, and `weights` is also read as vec4s.
    for v in [&mut up.weights, &mut up.tables] {
        if v.is_empty() {
            v.push(0);
        }
    }
    up.weights.resize(up.weights.len().next_multiple_of(4), 0);
    up
}

/// [`CellGpu::fused`] of a cell whose layer input spans `x` (the layer's x format, and the
/// previous layer's h formats, whose values the step reads as they are): [`Mode::choose`] on
/// the weights as uploaded and on what the states can hold, so one choice holds for every
/// step (the CPU measures each step's states instead; both give the bits of the flushing
/// loop, docs/NUMERICS.md §13). The states' formats bound them only when the sequences are
/// finite (a NaN stays NaN through rounding). Off under [`no_fma`].
fn fused_bits(cell: &CellPlan, x: &Span, finite_input: bool) -> u32 {
    if cell.int.is_some() || !finite_input || no_fma() {
        return 0;
    }
    let h = format_span(cell.formats.h).join(span(&cell.h0));
    let fused = |w: &[f32], v: &Span| Mode::choose::<f32>(&span(w), v) == Mode::Fused;
    u32::from(fused(&cell.w, x)) | u32::from(fused(&cell.r, &h)) << 1
}

/// `LSTM_DSE_GPU_NO_FMA=1` (read once a process): float lanes run the flushing loop for every
/// term, neither fused ([`fused_bits`]) nor unflushed ([`plain_exponent`]), for comparing
/// (`tools/gpu-bench.sh`).
fn no_fma() -> bool {
    static NO_FMA: OnceLock<bool> = OnceLock::new();
    *NO_FMA.get_or_init(|| std::env::var_os("LSTM_DSE_GPU_NO_FMA").is_some())
}

/// [`CellGpu::plain_x`] / [`CellGpu::plain_h`] when a step may never run unflushed: above any
/// exponent field (255 is infinity and NaN).
const NEVER_PLAIN: u32 = 256;

/// [`CellGpu::plain_x`] (`plain_h`) of float weights `w`: the smallest biased exponent that
/// every non-zero x (h) word of a step must have for the unflushed sum (a multiply and an add
/// per term) to give the flushing loop's bits. Each product with a weight is then 0 or at
/// least 2^-101 in magnitude, and by the argument of [`gemm::no_subnormals`] no partial sum is
/// subnormal, so the flushes of docs/NUMERICS.md §5 are identities (§13). A normal f32 of
/// biased exponent e is at least 2^(e - 127), so with the smallest non-zero |w| at least
/// 2^(ew - 127), e >= 153 - ew suffices. At least 1: a subnormal word (exponent field 0) never
/// qualifies. A subnormal weight: never. No non-zero weight: every product is 0.
///
/// [`gemm::no_subnormals`]: crate::lstm::eval::gemm::no_subnormals
pub(super) fn plain_exponent(w: &[f32]) -> u32 {
    let m = span(w).min_nonzero;
    if m == f64::INFINITY {
        return 1;
    }
    if m < f32::MIN_POSITIVE as f64 {
        return NEVER_PLAIN;
    }
    let ew = ((m as f32).to_bits() >> 23) as i32;
    (153 - ew).clamp(1, 255) as u32
}

/// The layer-0 input of one lane, rounded to the lane's input format (codes or f32 bits).
pub(super) fn lane_input<'a>(plan: &'a Plan, seq: &'a [f32]) -> impl Iterator<Item = u32> + 'a {
    let cell = &plan.layers[0][0];
    seq.iter().map(move |&x| match &cell.int {
        Some(q) => q.x.quantize(x) as u32,
        None => cell.formats.x.round(x).to_bits(),
    })
}

/// Converts read-back words of one lane and layer (`[T, {h, c}, D*H]`) into f32 values.
pub(super) fn lane_states(
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

/// The layer's weight words as the kernels' texture (`weights_t` in shaders/lstm.wgsl): vec4s
/// in rows of 2^[`WEIGHT_ROW_LOG2`] texels, the last row padded with zeros; without
/// `texture`, a 1 x 1 texture that no kernel reads.
pub(super) fn weight_texture(
    dev: &wgpu::Device,
    queue: &wgpu::Queue,
    words: &[u32],
    texture: bool,
) -> wgpu::TextureView {
    let row_words = 4usize << WEIGHT_ROW_LOG2;
    let (width, rows) = if texture {
        (
            1usize << WEIGHT_ROW_LOG2,
            words.len().div_ceil(row_words).max(1),
        )
    } else {
        (1, 1)
    };
    let size = wgpu::Extent3d {
        width: width as u32,
        height: rows as u32,
        depth_or_array_layers: 1,
    };
    let tex = dev.create_texture(&wgpu::TextureDescriptor {
        label: Some("weights"),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Uint,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    if texture {
        // Whole rows straight from the words, then the last row padded.
        let full = words.len() / row_words;
        let at = |row: usize| wgpu::TexelCopyTextureInfo {
            texture: &tex,
            mip_level: 0,
            origin: wgpu::Origin3d {
                x: 0,
                y: row as u32,
                z: 0,
            },
            aspect: wgpu::TextureAspect::All,
        };
        let layout = |rows: usize| wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some((row_words * 4) as u32),
            rows_per_image: Some(rows as u32),
        };
        let extent = |rows: usize| wgpu::Extent3d {
            height: rows as u32,
            ..size
        };
        if full > 0 {
            let data = bytemuck::cast_slice(&words[..full * row_words]);
            queue.write_texture(at(0), data, layout(full), extent(full));
        }
        if full < rows {
            let mut last = words[full * row_words..].to_vec();
            last.resize(row_words, 0);
            queue.write_texture(at(full), bytemuck::cast_slice(&last), layout(1), extent(1));
        }
    }
    tex.create_view(&wgpu::TextureViewDescriptor::default())
}

#[cfg(test)]
#[path = "test_upload.rs"]
mod tests;
