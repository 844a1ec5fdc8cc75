// LSTM layer kernels for the precision-trace engine, part 1 of 5: the data layout (uniforms,
// structs, bindings, constants). The module is this file followed by numerics.wgsl,
// lstm_step.wgsl, lstm_lanes.wgsl and lstm_policy.wgsl (concatenated in src/gpu/mod.rs,
// `LSTM_SHADER`).
//
// One lane = one (precision config, sequence) pair — or, in policy mode, one (precision
// policy, sequence) pair whose level is chosen step by step by `select_level`
// (docs/NUMERICS.md section 11; CPU twins src/dynamic/sim.rs and src/dynamic/values.rs).
// Every step advances all lanes and both directions of one layer: for policy lanes `gates`
// computes the four gate sums of every row and `cell_update` applies the activation tables,
// updates c and h and records them; for config lanes `step_lanes` does both in one dispatch. Semantics: docs/NUMERICS.md (section 6 for float
// lanes, section 7 for integer lanes). CPU twin: src/lstm/eval/cell.rs. Any change here must
// keep the two bit-identical (tests/gpu.rs, tests/engine.rs, tests/dynamic*.rs).

struct Dims {
    lanes: u32,
    dirs: u32,
    input: u32,
    hidden: u32,
    steps: u32,
    // sequences per config in this chunk: lane = config * seqs + sequence
    seqs: u32,
    // bit k set: direction k walks the sequence backwards
    rev_mask: u32,
    // threads per row of a 2-D dispatch (workgroups in x times 64)
    threads_x: u32,
    // distance between time steps in `xin`, in words
    x_stride: u32,
    // always 0; makes `keep` opaque so compilers cannot fuse a multiply into an add
    zero: u32,
    // 1: policy lanes (cells are [level, dir], the lane's level lives in `pol`)
    policy: u32,
    levels: u32,
    // policy mode, layer 0: `xin` holds f32 input values (quantized per level)
    x_f32: u32,
    // policy metric: 0 max_abs, 1 mean_abs, 2 frac_above, 3 rel_max_abs
    metric: u32,
    // frac_above: |dc| code steps to exceed, per direction; rel_max_abs: f32 bits of eps
    // in code steps
    above0: i32,
    above1: i32,
    // word offsets of the regions of `pol`
    off_bounds: u32,
    off_cprev: u32,
    off_x: u32,
    off_saved: u32,
    off_trace: u32,
    // causal policies: the level of the first step
    start: u32,
    // policy lanes: 1 = the state travels between levels as f32 values (any levels,
    // NUMERICS.md section 11.1), 0 = as codes of the highest level (nested fixed point)
    values: u32,
    pad2: u32,
}

struct Step {
    s: u32,
    // 0: the step; 1: oracle redo (only lanes whose level dropped); 2: oracle decision
    phase: u32,
    // Config lanes: the first slab (block of LB sequences of one config, one direction) of
    // this dispatch (a stage window, see `step_lanes_staged`); 0 otherwise.
    slab0: u32,
    // Staged: the vec4 of the whole stage at which `stage_u` starts (its binding's offset).
    stage_base: u32,
}

// A resolved number format: kind 0 = fp32, 1 = fixed point, 2 = narrow float.
struct Fmt {
    kind: u32,
    bits: u32,
    frac: i32,
    // exponent bits | mantissa bits << 8
    em: u32,
    maxf: f32,
}

// Everything one (config, direction) needs; offsets index `weights` and `tables`.
struct Cell {
    // 0 = integer datapath, 1 = float datapath
    mode: u32,
    w_off: u32,
    r_off: u32,
    b_off: u32,
    p_off: u32,
    has_peep: u32,
    sig_off: u32,
    tanhp_off: u32,
    tanhc_off: u32,
    // bit 0: pre-activation tables exist; bit 1: tanh(c) table exists
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
    // products summed in i32 before widening to 64 bits (exact by construction)
    chunk_wx: u32,
    chunk_rh: u32,
    // word offset of per-row extra shifts (W.x in the low 16 bits, R.h in the high), or
    // 0xffffffff when the weights have one format per tensor
    rs_off: u32,
    // 1: W and R hold four 8-bit codes per word along k (`[k / 4][H][gate]`, a unit's four
    // gate rows one vec4 for `weights4`, 4-word aligned; the code of k % 4 = m in bits
    // 8m .. 8m + 7, rows padded with 0 codes); 2: and the x and h codes fit a byte too
    // (`stage_lanes` packs them the same way)
    packed: u32,
    // float lanes, bit 0 (W.x) and bit 1 (R.h): every product is exact and no partial sum
    // can be subnormal, so `step_lanes` runs one fma per term (the bits of a multiply then
    // an add, each flushed; docs/NUMERICS.md section 13)
    fused: u32,
    // float lanes not fused (W.x, R.h): the smallest biased exponent every non-zero x (h)
    // word of a step's block of lanes must have for the sums to run unflushed, a multiply
    // and an add per term (no product or partial sum can then be subnormal: the flushing
    // loop's bits, docs/NUMERICS.md section 13); 256, above any exponent field: never
    plain_x: u32,
    plain_h: u32,
    // integer lanes (`step_lanes`, `gates`), bit 0 (W.x) and bit 1 (R.h): x (h) codes of 10 to 16
    // bits split into a signed high and an unsigned low byte, so `chunk_wx` (`chunk_rh`)
    // products of each fit an i32 (see `mac1s`)
    split: u32,
    pre: Fmt,
    c: Fmt,
    gate: Fmt,
    h: Fmt,
    x: Fmt,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> cells: array<Cell>;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read> tables: array<u32>;
// layer input [lane, T, x_stride]: codes (integer lanes) or f32 bits (float lanes)
@group(0) @binding(4) var<storage, read> xin: array<u32>;
// recurrent state [lane, dir, {h, c}, H]
@group(0) @binding(5) var<storage, read_write> state: array<u32>;
// gate sums [lane, dir, 4H, {lo, hi}]
@group(0) @binding(6) var<storage, read_write> acc: array<u32>;
// layer output [lane, T, {h, c}, dirs * H]
@group(0) @binding(7) var<storage, read_write> outs: array<u32>;
// policy lanes: per (lane, dir) control words {level, redo, saved level, -} first, then the regions
// named by dims.off_*: thresholds as integer bounds [policy, dir, level - 1], the previous
// cell state [lane, dir, H], the input at the lane's level [lane, dir, I], the state saved
// for an oracle redo [lane, dir, 2H], and the level of every step [lane, dir, T]
@group(0) @binding(8) var<storage, read_write> pol: array<u32>;
// `weights` again, as vec4s: W and R (k-major, `[k][H][gate]`) are read a unit's four gate
// rows at a time
@group(0) @binding(9) var<storage, read> weights4: array<vec4<u32>>;
// The same vec4s as a texture instead, of 2^WEIGHT_ROW_LOG2 texels a row (the last row
// padded with zeros), where `WEIGHTS_IN_TEXTURE` (src/gpu/lstm.rs: on CPU implementations,
// where a texel fetch is a gather but a storage read in a loop is a loop over the SIMD lanes,
// a branch and a stall each); then `weights` holds a placeholder and every weight read goes
// through the texture (`w4`, `w1`). A 1 x 1 texture otherwise. The same words, the same bits.
@group(0) @binding(10) var weights_t: texture_2d<u32>;
override WEIGHTS_IN_TEXTURE: bool = false;
const WEIGHT_ROW_LOG2: u32 = 11u;

fn w4(i: u32) -> vec4<u32> {
    if (WEIGHTS_IN_TEXTURE) {
        return textureLoad(weights_t, vec2<u32>(i & ((1u << WEIGHT_ROW_LOG2) - 1u), i >> WEIGHT_ROW_LOG2), 0);
    }
    return weights4[i];
}

// Weight word k (biases, peepholes, per-row shifts) from wherever `w4` reads: where the
// weights are in the texture, the storage buffers hold no copy of them.
fn w1(k: u32) -> u32 {
    if (WEIGHTS_IN_TEXTURE) {
        return w4(k >> 2u)[k & 3u];
    }
    return weights[k];
}
@group(1) @binding(0) var<uniform> step: Step;
// Config lanes, staged (`stage_lanes`, `step_lanes_staged`): one step's x and previous h of
// every lane `[block of LB sequences, dir, I + H, LB]`, the same buffer written as `stage_s` and then read as
// `stage_u`, a window of it at a time (from `step.stage_base`). src/gpu/lstm.rs sets
// STAGE_VEC4S to the adapter's uniform binding limit (at most 64 KiB) when it builds the
// module.
const STAGE_VEC4S: u32 = 4096u;
@group(2) @binding(0) var<uniform> stage_u: array<vec4<u32>, STAGE_VEC4S>;
@group(2) @binding(1) var<storage, read_write> stage_s: array<u32>;

const LOG2E: f32 = 0x1.715476p+0f;
const LN2_HI: f32 = 0x1.63p-1f;
const LN2_LO: f32 = -0x1.bd0106p-13f;
const C7: f32 = 0x1.a01a02p-13f;
const C6: f32 = 0x1.6c16c2p-10f;
const C5: f32 = 0x1.111112p-7f;
const C4: f32 = 0x1.555556p-5f;
const C3: f32 = 0x1.555556p-3f;
const T1: f32 = -0x1.555556p-2f;
const T2: f32 = 0x1.111112p-3f;
const T3: f32 = -0x1.ba1ba2p-5f;
const MIN_NORMAL: f32 = 0x1.0p-126f;
