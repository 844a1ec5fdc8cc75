// LSTM layer kernels for the precision-trace engine. One lane = one (precision config,
// sequence) pair — or, in policy mode, one (precision policy, sequence) pair whose level is
// chosen step by step by `select` (docs/NUMERICS.md section 11; CPU twin src/dynamic/sim.rs).
// Every dispatch advances all lanes and both directions of one layer by one step. `gates` computes the four gate sums of every row; `cell_update` applies the activation
// tables, updates c and h and records them. Semantics: docs/NUMERICS.md (section 6 for float
// lanes, section 7 for integer lanes). CPU twin: src/lstm/eval/cell.rs. Any change here must
// keep the two bit-identical (tests/gpu.rs).

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
    pad1: u32,
    pad2: u32,
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
// policy lanes: per (lane, dir) control words {level, redo, -, -} first, then the regions
// named by dims.off_*: thresholds as integer bounds [policy, dir, level - 1], the previous
// cell state [lane, dir, H], the input at the lane's level [lane, dir, I], the state saved
// for an oracle redo [lane, dir, 2H], and the level of every step [lane, dir, T]
@group(0) @binding(8) var<storage, read_write> pol: array<u32>;
@group(1) @binding(0) var<uniform> step: Step;

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

// ---- 64-bit two's-complement integers as vec2<u32>(lo, hi) ----

fn i64_from(v: i32) -> vec2<u32> {
    return vec2<u32>(bitcast<u32>(v), select(0u, 0xffffffffu, v < 0));
}

fn i64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn i64_shl(a: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return a;
    }
    if (s >= 32u) {
        return vec2<u32>(0u, a.x << (s - 32u));
    }
    return vec2<u32>(a.x << s, (a.y << s) | (a.x >> (32u - s)));
}

// Arithmetic shift right by s in 1..63 (floor division by 2^s).
fn i64_sar(a: vec2<u32>, s: u32) -> vec2<u32> {
    let hi = bitcast<i32>(a.y);
    if (s >= 32u) {
        return vec2<u32>(bitcast<u32>(hi >> (s - 32u)), bitcast<u32>(hi >> 31u));
    }
    return vec2<u32>((a.x >> s) | (a.y << (32u - s)), bitcast<u32>(hi >> s));
}

// a / 2^s rounded half to even.
fn rne_shift(a: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return a;
    }
    var q = i64_sar(a, s);
    var r: vec2<u32>;
    var half: vec2<u32>;
    if (s < 32u) {
        r = vec2<u32>(a.x & ((1u << s) - 1u), 0u);
        half = vec2<u32>(1u << (s - 1u), 0u);
    } else if (s == 32u) {
        r = vec2<u32>(a.x, 0u);
        half = vec2<u32>(0x80000000u, 0u);
    } else {
        r = vec2<u32>(a.x, a.y & ((1u << (s - 32u)) - 1u));
        half = vec2<u32>(0u, 1u << (s - 33u));
    }
    let gt = r.y > half.y || (r.y == half.y && r.x > half.x);
    let eq = r.y == half.y && r.x == half.x;
    if (gt || (eq && (q.x & 1u) == 1u)) {
        q = i64_add(q, vec2<u32>(1u, 0u));
    }
    return q;
}

fn saturate(v: vec2<u32>, bits: u32) -> i32 {
    let maxv = (1 << (bits - 1u)) - 1;
    let minv = -maxv - 1;
    let hi = bitcast<i32>(v.y);
    if (hi > 0 || (hi == 0 && v.x > u32(maxv))) {
        return maxv;
    }
    if (hi < -1 || (hi == -1 && v.x < bitcast<u32>(minv))) {
        return minv;
    }
    return bitcast<i32>(v.x);
}

// NUMERICS.md section 7: sat(RNE(a / 2^s)); a negative s multiplies.
fn rescale(a: vec2<u32>, s: i32, bits: u32) -> i32 {
    if (s >= 0) {
        return saturate(rne_shift(a, u32(s)), bits);
    }
    return saturate(i64_shl(a, u32(-s)), bits);
}

// ---- f32 helpers: no fused multiply-add, subnormals flushed ----

fn keep(v: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(v) ^ dims.zero);
}

fn ftz(v: f32) -> f32 {
    return select(v, 0.0, abs(v) < MIN_NORMAL);
}

fn fadd(a: f32, b: f32) -> f32 {
    return ftz(a + b);
}

fn fmul(a: f32, b: f32) -> f32 {
    return ftz(keep(a * b));
}

// 2^e for e in -126..127, exactly.
fn pow2(e: i32) -> f32 {
    return bitcast<f32>(u32(e + 127) << 23u);
}

// ---- number formats (NUMERICS.md section 1) ----

fn round_fixed(f: Fmt, x: f32) -> f32 {
    let maxc = f32((1 << (f.bits - 1u)) - 1);
    let code = clamp(round(x * pow2(f.frac)), -maxc - 1.0, maxc);
    return select(code * pow2(-f.frac), 0.0, code == 0.0);
}

fn round_float(f: Fmt, x: f32) -> f32 {
    let b = bitcast<u32>(x);
    let be = (b >> 23u) & 0xffu;
    if (be == 0u) {
        return 0.0;
    }
    var v = f.maxf;
    if (be != 255u) {
        let ebits = f.em & 0xffu;
        let m = (f.em >> 8u) & 0xffu;
        let e = i32(be) - 127;
        let mant = (b & 0x7fffffu) | 0x800000u;
        let emin = 2 - (1 << (ebits - 1u));
        let d = u32(23 - i32(m) + max(0, emin - e));
        var r = 0u;
        if (d == 0u) {
            r = mant;
        } else if (d < 25u) {
            let q = mant >> d;
            let rem = mant & ((1u << d) - 1u);
            let half = 1u << (d - 1u);
            r = q + select(0u, 1u, rem > half || (rem == half && (q & 1u) == 1u));
        }
        if (r == 0u) {
            return 0.0;
        }
        let q = max(e, emin) - i32(m);
        if (q + i32(firstLeadingBit(r)) < -126) {
            return 0.0;
        }
        let q1 = q / 2;
        v = min(f32(r) * pow2(q1) * pow2(q - q1), f.maxf);
    }
    return select(v, -v, (b >> 31u) == 1u);
}

fn fmt_round(f: Fmt, x: f32) -> f32 {
    if (f.kind == 1u) {
        return round_fixed(f, x);
    }
    if (f.kind == 2u) {
        return round_float(f, x);
    }
    return ftz(x);
}

// Table index of a value of format f (NUMERICS.md section 1.3).
fn fmt_index(f: Fmt, x: f32) -> u32 {
    if (f.kind == 1u) {
        return u32(i32(round(x * pow2(f.frac))) + (1 << (f.bits - 1u)));
    }
    let ebits = f.em & 0xffu;
    let m = (f.em >> 8u) & 0xffu;
    let a = abs(x);
    if (a == 0.0) {
        return 0u;
    }
    let sign = select(0u, 1u << (ebits + m), x < 0.0);
    let b = bitcast<u32>(a);
    let e = i32(b >> 23u) - 127;
    let bias = (1 << (ebits - 1u)) - 1;
    if (e >= 1 - bias) {
        return sign | (u32(e + bias) << m) | ((b & 0x7fffffu) >> (23u - m));
    }
    return sign | u32(a * pow2(i32(m) - 1 + bias));
}

// ---- reproducible exp / sigmoid / tanh (CPU twin: src/format/detmath.rs) ----

fn det_exp(x0: f32) -> f32 {
    let x = clamp(x0, -87.0, 88.0);
    let k = round(x * LOG2E);
    let r = (x - keep(k * LN2_HI)) - keep(k * LN2_LO);
    var p = C7;
    p = keep(p * r) + C6;
    p = keep(p * r) + C5;
    p = keep(p * r) + C4;
    p = keep(p * r) + C3;
    p = keep(p * r) + 0.5;
    p = keep(p * r) + 1.0;
    p = keep(p * r) + 1.0;
    return p * pow2(i32(k));
}

fn det_recip(d: f32) -> f32 {
    var y = bitcast<f32>(0x7ef311c3u - bitcast<u32>(d));
    for (var i = 0; i < 4; i++) {
        y = keep(y * (2.0 - keep(d * y)));
    }
    return y;
}

fn det_sigmoid(x: f32) -> f32 {
    return det_recip(1.0 + det_exp(-clamp(x, -87.0, 87.0)));
}

fn det_tanh(x: f32) -> f32 {
    let a = abs(x);
    var y: f32;
    if (a < 0.0625) {
        let a2 = keep(a * a);
        y = a + keep(a * keep(a2 * (T1 + keep(a2 * (T2 + keep(a2 * T3))))));
    } else {
        y = 1.0 - keep(2.0 * det_recip(1.0 + det_exp(min(keep(2.0 * a), 87.0))));
    }
    return select(y, -y, x < 0.0);
}

// Activation units of a float lane: which = 0 sigmoid(pre), 1 tanh(pre), 2 tanh(c).
fn act(cell: Cell, which: u32, v: f32) -> f32 {
    if (which == 2u) {
        if ((cell.table_mask & 2u) != 0u) {
            return bitcast<f32>(tables[cell.tanhc_off + fmt_index(cell.c, v)]);
        }
        return fmt_round(cell.gate, det_tanh(v));
    }
    if ((cell.table_mask & 1u) != 0u) {
        let off = select(cell.sig_off, cell.tanhp_off, which == 1u);
        return bitcast<f32>(tables[off + fmt_index(cell.pre, v)]);
    }
    if (which == 1u) {
        return fmt_round(cell.gate, det_tanh(v));
    }
    return fmt_round(cell.gate, det_sigmoid(v));
}

// Integer table lookup by code.
fn tab(off: u32, f: Fmt, code: i32) -> i32 {
    return bitcast<i32>(tables[off + u32(code + (1 << (f.bits - 1u)))]);
}

fn step_t(dir: u32) -> u32 {
    if (((dims.rev_mask >> dir) & 1u) == 1u) {
        return dims.steps - 1u - step.s;
    }
    return step.s;
}

fn wi(k: u32) -> i32 {
    return bitcast<i32>(weights[k]);
}

fn wf(k: u32) -> f32 {
    return bitcast<f32>(weights[k]);
}

// The accumulator of gate row `row` from the exact sums W.x and R.h (NUMERICS.md section 7,
// per-row shifts of section 3.2). CPU twin: `int_gate_sum` in src/lstm/eval/cell.rs.
fn int_gate_sum(cell: Cell, row: u32, wx: vec2<u32>, rh: vec2<u32>) -> vec2<u32> {
    var ew = 0u;
    var er = 0u;
    if (cell.rs_off != 0xffffffffu) {
        let e = weights[cell.rs_off + row];
        ew = e & 0xffffu;
        er = e >> 16u;
    }
    let a = i64_add(i64_shl(wx, cell.shift_wx + ew), i64_shl(rh, cell.shift_rh + er));
    return i64_add(a, i64_shl(i64_from(wi(cell.b_off + row)), cell.shift_b));
}

@compute @workgroup_size(64)
fn gates(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * dims.threads_x;
    let hsz = dims.hidden;
    let rows = 4u * hsz;
    let isz = dims.input;
    if (idx >= dims.lanes * dims.dirs * rows) {
        return;
    }
    let row = idx % rows;
    let ld = idx / rows;
    let dir = ld % dims.dirs;
    let lane = ld / dims.dirs;
    if (skip(ld)) {
        return;
    }
    let cell = cell_of(lane, ld, dir);
    var xb = (lane * dims.steps + step_t(dir)) * dims.x_stride;
    var xsrc = 0u;
    if (dims.policy == 1u) {
        xb = dims.off_x + ld * isz;
        xsrc = 1u;
    }
    let hb = ld * 2u * hsz;
    let wb = cell.w_off + row * isz;
    let rb = cell.r_off + row * hsz;
    if (cell.mode == 0u) {
        var total = vec2<u32>(0u, 0u);
        var part = 0;
        var n = 0u;
        for (var k = 0u; k < isz; k++) {
            part += wi(wb + k) * xcode(xsrc, xb + k);
            n += 1u;
            if (n == cell.chunk_wx) {
                total = i64_add(total, i64_from(part));
                part = 0;
                n = 0u;
            }
        }
        let wx = i64_add(total, i64_from(part));
        total = vec2<u32>(0u, 0u);
        part = 0;
        n = 0u;
        for (var k = 0u; k < hsz; k++) {
            part += wi(rb + k) * bitcast<i32>(state[hb + k]);
            n += 1u;
            if (n == cell.chunk_rh) {
                total = i64_add(total, i64_from(part));
                part = 0;
                n = 0u;
            }
        }
        let rh = i64_add(total, i64_from(part));
        let a = int_gate_sum(cell, row, wx, rh);
        acc[idx * 2u] = a.x;
        acc[idx * 2u + 1u] = a.y;
    } else {
        var s = 0.0;
        for (var k = 0u; k < isz; k++) {
            s = fadd(s, fmul(wf(wb + k), bitcast<f32>(xcode(xsrc, xb + k))));
        }
        for (var k = 0u; k < hsz; k++) {
            s = fadd(s, fmul(wf(rb + k), bitcast<f32>(state[hb + k])));
        }
        s = fadd(s, wf(cell.b_off + row));
        acc[idx * 2u] = bitcast<u32>(s);
    }
}

// ---- the lane-blocked gate product (config lanes) ----
//
// One thread computes one gate row for LB lanes (sequences) of one config and direction.
// Weights are stored k-major for these lanes (`weights[w_off + k * rows + row]`), so the
// threads of a wave, which hold consecutive rows, read consecutive words (coalesced), and
// each weight word read serves LB lanes from registers. No workgroup memory and no barriers
// (barriers are costly on CPU Vulkan implementations). Every lane's sum still takes its terms
// one at a time in k order (W.x, then R.h, then b): the bits of `gates` and of the CPU
// (docs/NUMERICS.md sections 6, 7 and 10).

const LB: u32 = 4u;

@compute @workgroup_size(64)
fn gates_lanes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * dims.threads_x;
    let hsz = dims.hidden;
    let rows = 4u * hsz;
    let isz = dims.input;
    let blocks = (dims.seqs + LB - 1u) / LB;
    let configs = dims.lanes / dims.seqs;
    if (idx >= rows * blocks * dims.dirs * configs) {
        return;
    }
    let row = idx % rows;
    let rest = idx / rows;
    let seq0 = (rest % blocks) * LB;
    let cd = rest / blocks;
    let dir = cd % dims.dirs;
    let cfg = cd / dims.dirs;
    let cell = cells[cfg * dims.dirs + dir];
    let t = step_t(dir);
    let n_here = min(LB, dims.seqs - seq0);
    var xb: array<u32, 4>;
    var hb: array<u32, 4>;
    for (var l = 0u; l < LB; l++) {
        let lane = cfg * dims.seqs + seq0 + min(l, n_here - 1u);
        xb[l] = (lane * dims.steps + t) * dims.x_stride;
        hb[l] = (lane * dims.dirs + dir) * 2u * hsz;
    }
    var fs: array<f32, 4>;
    var part: array<i32, 4>;
    var total: array<vec2<u32>, 4>;
    var wx: array<vec2<u32>, 4>;
    if (cell.mode == 1u) {
        for (var k = 0u; k < isz; k++) {
            let w = wf(cell.w_off + k * rows + row);
            for (var l = 0u; l < LB; l++) {
                fs[l] = fadd(fs[l], fmul(w, bitcast<f32>(xin[xb[l] + k])));
            }
        }
        for (var k = 0u; k < hsz; k++) {
            let w = wf(cell.r_off + k * rows + row);
            for (var l = 0u; l < LB; l++) {
                fs[l] = fadd(fs[l], fmul(w, bitcast<f32>(state[hb[l] + k])));
            }
        }
        let b = wf(cell.b_off + row);
        for (var l = 0u; l < n_here; l++) {
            let ld = (cfg * dims.seqs + seq0 + l) * dims.dirs + dir;
            acc[(ld * rows + row) * 2u] = bitcast<u32>(fadd(fs[l], b));
        }
        return;
    }
    var n = 0u;
    for (var k = 0u; k < isz; k++) {
        let w = wi(cell.w_off + k * rows + row);
        for (var l = 0u; l < LB; l++) {
            part[l] += w * bitcast<i32>(xin[xb[l] + k]);
        }
        n += 1u;
        if (n == cell.chunk_wx) {
            for (var l = 0u; l < LB; l++) {
                total[l] = i64_add(total[l], i64_from(part[l]));
                part[l] = 0;
            }
            n = 0u;
        }
    }
    for (var l = 0u; l < LB; l++) {
        wx[l] = i64_add(total[l], i64_from(part[l]));
        total[l] = vec2<u32>(0u, 0u);
        part[l] = 0;
    }
    n = 0u;
    for (var k = 0u; k < hsz; k++) {
        let w = wi(cell.r_off + k * rows + row);
        for (var l = 0u; l < LB; l++) {
            part[l] += w * bitcast<i32>(state[hb[l] + k]);
        }
        n += 1u;
        if (n == cell.chunk_rh) {
            for (var l = 0u; l < LB; l++) {
                total[l] = i64_add(total[l], i64_from(part[l]));
                part[l] = 0;
            }
            n = 0u;
        }
    }
    for (var l = 0u; l < n_here; l++) {
        let a = int_gate_sum(cell, row, wx[l], i64_add(total[l], i64_from(part[l])));
        let ld = (cfg * dims.seqs + seq0 + l) * dims.dirs + dir;
        acc[(ld * rows + row) * 2u] = a.x;
        acc[(ld * rows + row) * 2u + 1u] = a.y;
    }
}

fn acc64(row: u32) -> vec2<u32> {
    return vec2<u32>(acc[row * 2u], acc[row * 2u + 1u]);
}

fn accf(row: u32) -> f32 {
    return bitcast<f32>(acc[row * 2u]);
}

@compute @workgroup_size(64)
fn cell_update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * dims.threads_x;
    let hsz = dims.hidden;
    if (idx >= dims.lanes * dims.dirs * hsz) {
        return;
    }
    let j = idx % hsz;
    let ld = idx / hsz;
    let dir = ld % dims.dirs;
    let lane = ld / dims.dirs;
    if (skip(ld)) {
        return;
    }
    let cell = cell_of(lane, ld, dir);
    let ab = ld * 4u * hsz;
    let sb = ld * 2u * hsz;
    let dh = dims.dirs * hsz;
    let ob = (lane * dims.steps + step_t(dir)) * 2u * dh + dir * hsz + j;
    let peep = cell.has_peep == 1u;
    if (cell.mode == 0u) {
        let cp = bitcast<i32>(state[sb + hsz + j]);
        var ai = acc64(ab + j);
        var af = acc64(ab + hsz + j);
        var ao = acc64(ab + 3u * hsz + j);
        if (peep) {
            ai = i64_add(ai, i64_shl(i64_from(wi(cell.p_off + j) * cp), cell.shift_pc));
            af = i64_add(af, i64_shl(i64_from(wi(cell.p_off + hsz + j) * cp), cell.shift_pc));
        }
        let ig = tab(cell.sig_off, cell.pre, rescale(ai, cell.pre_shift, cell.pre.bits));
        let fg = tab(cell.sig_off, cell.pre, rescale(af, cell.pre_shift, cell.pre.bits));
        let gg = tab(cell.tanhp_off, cell.pre, rescale(acc64(ab + 2u * hsz + j), cell.pre_shift, cell.pre.bits));
        let upd = i64_add(i64_shl(i64_from(fg * cp), cell.shift_fc), i64_shl(i64_from(ig * gg), cell.shift_ig));
        let cn = rescale(upd, cell.c_shift, cell.c.bits);
        if (peep) {
            ao = i64_add(ao, i64_shl(i64_from(wi(cell.p_off + 2u * hsz + j) * cn), cell.shift_pc));
        }
        let og = tab(cell.sig_off, cell.pre, rescale(ao, cell.pre_shift, cell.pre.bits));
        let tc = tab(cell.tanhc_off, cell.c, cn);
        let hn = rescale(i64_from(og * tc), cell.h_shift, cell.h.bits);
        state[sb + j] = bitcast<u32>(hn);
        state[sb + hsz + j] = bitcast<u32>(cn);
        if (dims.values == 1u) {
            // Outputs as f32 values (exact: codes have at most 16 bits).
            outs[ob] = bitcast<u32>(f32(hn) * pow2(-cell.h.frac));
            outs[ob + dh] = bitcast<u32>(f32(cn) * pow2(-cell.c.frac));
        } else if (dims.policy == 1u) {
            // Outputs in the highest level's formats: exact left shifts.
            let hi = cells[(dims.levels - 1u) * dims.dirs + dir];
            outs[ob] = bitcast<u32>(hn << u32(hi.h.frac - cell.h.frac));
            outs[ob + dh] = bitcast<u32>(cn << u32(hi.c.frac - cell.c.frac));
        } else {
            outs[ob] = bitcast<u32>(hn);
            outs[ob + dh] = bitcast<u32>(cn);
        }
    } else {
        let cp = bitcast<f32>(state[sb + hsz + j]);
        var ai = accf(ab + j);
        var af = accf(ab + hsz + j);
        var ao = accf(ab + 3u * hsz + j);
        if (peep) {
            ai = fadd(ai, fmul(wf(cell.p_off + j), cp));
            af = fadd(af, fmul(wf(cell.p_off + hsz + j), cp));
        }
        let ig = act(cell, 0u, fmt_round(cell.pre, ai));
        let fg = act(cell, 0u, fmt_round(cell.pre, af));
        let gg = act(cell, 1u, fmt_round(cell.pre, accf(ab + 2u * hsz + j)));
        let cn = fmt_round(cell.c, fadd(fmul(fg, cp), fmul(ig, gg)));
        if (peep) {
            ao = fadd(ao, fmul(wf(cell.p_off + 2u * hsz + j), cn));
        }
        let og = act(cell, 0u, fmt_round(cell.pre, ao));
        let hn = fmt_round(cell.h, fmul(og, act(cell, 2u, cn)));
        state[sb + j] = bitcast<u32>(hn);
        state[sb + hsz + j] = bitcast<u32>(cn);
        outs[ob] = bitcast<u32>(hn);
        outs[ob + dh] = bitcast<u32>(cn);
    }
}

// ---- policy lanes (docs/NUMERICS.md section 11) ----

fn ctrl(ld: u32) -> u32 {
    return ld * 4u;
}

fn cell_of(lane: u32, ld: u32, dir: u32) -> Cell {
    if (dims.policy == 1u) {
        return cells[pol[ctrl(ld)] * dims.dirs + dir];
    }
    return cells[(lane / dims.seqs) * dims.dirs + dir];
}

// In an oracle redo pass only lanes whose level dropped run.
fn skip(ld: u32) -> bool {
    return dims.policy == 1u && step.phase == 1u && pol[ctrl(ld) + 1u] == 0u;
}

fn xcode(src: u32, k: u32) -> i32 {
    if (src == 1u) {
        return bitcast<i32>(pol[k]);
    }
    return bitcast<i32>(xin[k]);
}

// sat(RNE(code / 2^s)) on 32-bit codes (s >= 0), or an exact left shift for s < 0.
fn rescale32(code: i32, s: i32, bits: u32) -> i32 {
    if (s <= 0) {
        return code << u32(-s);
    }
    return rescale(i64_from(code), s, bits);
}

fn quantize(f: Fmt, x: f32) -> i32 {
    let maxc = f32((1 << (f.bits - 1u)) - 1);
    return i32(clamp(round(x * pow2(f.frac)), -maxc - 1.0, maxc));
}

// A state word of cell `c` (a code of format f, or f32 bits) as an f32 value.
fn word_value(c: Cell, f: Fmt, w: u32) -> f32 {
    if (c.mode == 0u) {
        return f32(bitcast<i32>(w)) * pow2(-f.frac);
    }
    return bitcast<f32>(w);
}

// An f32 value as a word of cell `c` in format f: its code, or its rounding as f32 bits.
fn value_word(c: Cell, f: Fmt, v: f32) -> u32 {
    if (c.mode == 0u) {
        return bitcast<u32>(quantize(f, v));
    }
    return bitcast<u32>(fmt_round(f, v));
}

// Moves the lane's state from `src_level` to `dst_level` and writes its input for step `t`
// at `dst_level` into the scratch region.
fn enter_level(lane: u32, ld: u32, dir: u32, src_level: u32, dst_level: u32, t: u32) {
    let hsz = dims.hidden;
    let a = cells[src_level * dims.dirs + dir];
    let b = cells[dst_level * dims.dirs + dir];
    let sb = ld * 2u * hsz;
    if (src_level != dst_level && dims.values == 1u) {
        for (var j = 0u; j < hsz; j++) {
            let h = word_value(a, a.h, state[sb + j]);
            let c = word_value(a, a.c, state[sb + hsz + j]);
            state[sb + j] = value_word(b, b.h, h);
            state[sb + hsz + j] = value_word(b, b.c, c);
        }
    } else if (src_level != dst_level) {
        for (var j = 0u; j < hsz; j++) {
            let h = bitcast<i32>(state[sb + j]);
            let c = bitcast<i32>(state[sb + hsz + j]);
            state[sb + j] = bitcast<u32>(rescale32(h, a.h.frac - b.h.frac, b.h.bits));
            state[sb + hsz + j] = bitcast<u32>(rescale32(c, a.c.frac - b.c.frac, b.c.bits));
        }
    }
    let hi = cells[(dims.levels - 1u) * dims.dirs + dir];
    let xb = (lane * dims.steps + t) * dims.x_stride;
    for (var k = 0u; k < dims.input; k++) {
        var code: i32;
        if (dims.x_f32 == 1u) {
            code = bitcast<i32>(value_word(b, b.x, bitcast<f32>(xin[xb + k])));
        } else {
            code = rescale32(bitcast<i32>(xin[xb + k]), hi.x.frac - b.x.frac, b.x.bits);
        }
        pol[dims.off_x + ld * dims.input + k] = bitcast<u32>(code);
    }
    pol[ctrl(ld)] = dst_level;
}

fn above_of(dir: u32) -> i32 {
    if (dir == 1u) {
        return dims.above1;
    }
    return dims.above0;
}

// The metric of c_t (in `outs`, highest formats) against the previous cell state, as an
// integer (NUMERICS.md section 11): (value, max |c_prev| for rel_max_abs).
fn metric_of(lane: u32, ld: u32, dir: u32, t: u32) -> vec2<i32> {
    let hsz = dims.hidden;
    let dh = dims.dirs * hsz;
    let cb = (lane * dims.steps + t) * 2u * dh + dh + dir * hsz;
    let above = above_of(dir);
    var v = 0;
    var base = 0;
    if (dims.values == 1u) {
        // f32 values (NUMERICS.md section 11.1): d = |ftz(c - c_prev)|; max, an in-order sum
        // or a count of d > e; returned as f32 bits (non-negative: they order like integers).
        var vf = 0.0;
        var bf = 0.0;
        let e = bitcast<f32>(above);
        for (var j = 0u; j < hsz; j++) {
            let old = bitcast<f32>(pol[dims.off_cprev + ld * hsz + j]);
            let d = abs(fadd(bitcast<f32>(outs[cb + j]), -old));
            if (dims.metric == 0u || dims.metric == 3u) {
                vf = max(vf, d);
            } else if (dims.metric == 1u) {
                vf = fadd(vf, d);
            } else if (d > e) {
                v += 1;
            }
            bf = max(bf, abs(old));
        }
        if (dims.metric != 2u) {
            v = bitcast<i32>(vf);
        }
        return vec2<i32>(v, bitcast<i32>(bf));
    }
    for (var j = 0u; j < hsz; j++) {
        let old = bitcast<i32>(pol[dims.off_cprev + ld * hsz + j]);
        let d = abs(bitcast<i32>(outs[cb + j]) - old);
        if (dims.metric == 0u || dims.metric == 3u) {
            v = max(v, d);
            base = max(base, abs(old));
        } else if (dims.metric == 1u) {
            v += d;
        } else if (d > above) {
            v += 1;
        }
    }
    return vec2<i32>(v, base);
}

fn level_for(lane: u32, dir: u32, m: vec2<i32>) -> u32 {
    let nb = dims.levels - 1u;
    let base = dims.off_bounds + ((lane / dims.seqs) * dims.dirs + dir) * nb;
    var level = 0u;
    // rel_max_abs: theta = 0 always, +inf never, otherwise a non-zero change with
    // f32(value) >= ftz(theta * ftz(f32(base) + eps)).
    // (With a state kept as values, value and base are f32 bits.)
    var v = f32(m.x);
    var b = f32(m.y);
    if (dims.values == 1u) {
        v = bitcast<f32>(m.x);
        b = bitcast<f32>(m.y);
    }
    let denom = ftz(b + bitcast<f32>(above_of(dir)));
    for (var k = 0u; k < nb; k++) {
        if (dims.metric == 3u) {
            let th = pol[base + k];
            let hit = th == 0u
                || (th != 0x7f800000u && v > 0.0 && v >= fmul(bitcast<f32>(th), denom));
            if (hit) {
                level += 1u;
            }
        } else if (m.x >= bitcast<i32>(pol[base + k])) {
            level += 1u;
        }
    }
    return level;
}

// Remembers c_t (highest formats) as the previous cell state.
fn keep_c(lane: u32, ld: u32, dir: u32, t: u32) {
    let hsz = dims.hidden;
    let dh = dims.dirs * hsz;
    let cb = (lane * dims.steps + t) * 2u * dh + dh + dir * hsz;
    for (var j = 0u; j < hsz; j++) {
        pol[dims.off_cprev + ld * hsz + j] = outs[cb + j];
    }
}

fn prev_t(dir: u32) -> u32 {
    if (((dims.rev_mask >> dir) & 1u) == 1u) {
        return dims.steps - step.s;
    }
    return step.s - 1u;
}

// One thread per (lane, dir). Phase 0, before step s: causal lanes pick the level of step s
// from the change of step s - 1 (`dims.start` at the first step); oracle lanes go to the highest
// level and save their state. Phase 2, after step s (oracle): pick the level from step s's
// own change and, if lower, restore the saved state at that level for the redo pass.
@compute @workgroup_size(64)
fn select_level(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ld = gid.x + gid.y * dims.threads_x;
    if (ld >= dims.lanes * dims.dirs) {
        return;
    }
    let dir = ld % dims.dirs;
    let lane = ld / dims.dirs;
    let t = step_t(dir);
    let top = dims.levels - 1u;
    let hsz = dims.hidden;
    let sb = ld * 2u * hsz;
    let trace = dims.off_trace + ld * dims.steps + t;
    let oracle = dims.off_saved != 0u;
    if (step.phase == 0u) {
        var metric = vec2<i32>(0, 0);
        if (step.s > 0u) {
            metric = metric_of(lane, ld, dir, prev_t(dir));
            keep_c(lane, ld, dir, prev_t(dir));
        }
        if (oracle) {
            enter_level(lane, ld, dir, pol[ctrl(ld)], top, t);
            for (var j = 0u; j < 2u * hsz; j++) {
                pol[dims.off_saved + ld * 2u * hsz + j] = state[sb + j];
            }
            pol[trace] = top;
        } else {
            var level = dims.start;
            if (step.s > 0u) {
                level = level_for(lane, dir, metric);
            }
            enter_level(lane, ld, dir, pol[ctrl(ld)], level, t);
            pol[trace] = level;
        }
        pol[ctrl(ld) + 1u] = 0u;
        return;
    }
    let level = level_for(lane, dir, metric_of(lane, ld, dir, t));
    if (level < top) {
        for (var j = 0u; j < 2u * hsz; j++) {
            state[sb + j] = pol[dims.off_saved + ld * 2u * hsz + j];
        }
        enter_level(lane, ld, dir, top, level, t);
        pol[ctrl(ld) + 1u] = 1u;
        pol[trace] = level;
    }
}
