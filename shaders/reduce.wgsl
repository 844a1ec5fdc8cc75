// Per-step error statistics of config lanes against the float64 reference, on the device
// (the trace stage, docs/OUTPUTS.md `errors.csv`): after a layer has run, one thread per
// (lane, direction, step) walks that direction's H units in unit order and accumulates, in
// f64, the sum of squared |a - b| and the largest |a - b| of h and of c, where a is the lane's
// state as the f32 value the host would decode it to and b the reference's f32 state. Only
// these four numbers per (lane, direction, step) go back to the host (and, when the model
// has a head, the last layer's h words, gathered into `hidden`). CPU twin:
// src/trace/stats.rs `ErrorStats::add` over one step's H units (src/trace/mod.rs `reduce`),
// fed with the states as src/gpu/lstm.rs `lane_states` decodes them; the definition is in
// docs/OUTPUTS.md (errors.csv). Needs SHADER_F64 and SHADER_INT64 (the sum of squares is an
// f64 sum; its products pass through u64 bits so no compiler fuses them into the adds). The
// guards for NaN, f32 subnormals and fusion change nothing on lavapipe (tests/reduce.rs passes
// without them there); they keep other compilers from changing a bit.
//
// Why one thread walks all H units of a step in order, not a tree across threads: that is the
// order the CPU has always used, so no figure of any committed errors.csv or summary.csv
// moves. A workgroup tree would read the states coalesced on a real GPU, but would change
// the last digits of the sums (and the CPU twin with them).

struct ReduceDims {
    lanes: u32,
    dirs: u32,
    hidden: u32,
    steps: u32,
    // sequences per group in this chunk: lane = group * seqs + sequence
    seqs: u32,
    // threads per row of a 2-D dispatch (workgroups in x times 64)
    threads_x: u32,
    // always 0; makes `keep64` opaque so compilers cannot fuse a multiply into an add
    zero: u32,
    // 1: copy the h words of every (lane, step) into `hidden`
    keep_hidden: u32,
}

@group(0) @binding(0) var<uniform> rd: ReduceDims;
// The layer's states as the step kernels wrote them: [lane][step][{h, c}][dir * H + unit],
// codes (integer lanes) or f32 bits (float lanes).
@group(0) @binding(1) var<storage, read> states: array<u32>;
// The reference's states (f32 bits) of the chunk's sequences, in the same layout with a
// sequence in place of a lane.
@group(0) @binding(2) var<storage, read> reference: array<u32>;
// Per (group, dir): h is fixed point (1) or f32 bits (0), h's fraction bits, then c's two.
@group(0) @binding(3) var<storage, read> decode: array<vec4<i32>>;
// [lane][dir][step][h sum of squares, h max, c sum of squares, c max]
@group(0) @binding(4) var<storage, read_write> stats: array<f64>;
// [lane][step][dir * H + unit], when `keep_hidden`
@group(0) @binding(5) var<storage, read_write> hidden: array<u32>;

const F64_EXP_INF: u64 = 0x7ff0000000000000lu;

// 2^e as an f64, exactly, for e in -1022..1023.
fn pow2_64(e: i32) -> f64 {
    return bitcast<f64>(u64(u32(e + 1023)) << 52u);
}

fn keep64(v: f64) -> f64 {
    return bitcast<f64>(bitcast<u64>(v) ^ u64(rd.zero));
}

fn is_nan64(v: f64) -> bool {
    return (bitcast<u64>(v) & 0x7ffffffffffffffflu) > F64_EXP_INF;
}

// The f64 value of f32 bits, exactly: zeros and subnormals are built from their bits, so a
// device that flushes f32 subnormals still gets them right.
fn f32_value(b: u32) -> f64 {
    if (((b >> 23u) & 0xffu) == 0u) {
        let m = f64(b & 0x7fffffu) * pow2_64(-149);
        return select(m, -m, (b >> 31u) == 1u);
    }
    return f64(bitcast<f32>(b));
}

// The value of a fixed-point code with `frac` fraction bits, rounded to f32 as the host's
// `FixedFormat::to_f32` does ((code * 2^-frac) rounded to nearest even f32): magnitudes of
// more than 24 bits are rounded here in integers, so every step below is exact.
fn fixed_value(code: i32, frac: i32) -> f64 {
    let a = bitcast<u32>(abs(code));
    let n = 32u - countLeadingZeros(a);
    var m = a;
    var e = -frac;
    if (n > 24u) {
        let s = n - 24u;
        let rest = a & ((1u << s) - 1u);
        let half = 1u << (s - 1u);
        m = a >> s;
        if (rest > half || (rest == half && (m & 1u) == 1u)) {
            m += 1u;
        }
        e += i32(s);
    }
    let v = f64(m) * pow2_64(e);
    return select(v, -v, code < 0);
}

fn state_value(word: u32, fixed: i32, frac: i32) -> f64 {
    if (fixed == 1) {
        return fixed_value(bitcast<i32>(word), frac);
    }
    return f32_value(word);
}

@compute @workgroup_size(64)
fn step_errors(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * rd.threads_x + gid.x;
    if (i >= rd.lanes * rd.dirs * rd.steps) {
        return;
    }
    let t = i % rd.steps;
    let k = (i / rd.steps) % rd.dirs;
    let lane = i / (rd.steps * rd.dirs);
    let dh = rd.dirs * rd.hidden;
    let fmt = decode[(lane / rd.seqs) * rd.dirs + k];
    let at = (lane * rd.steps + t) * 2u * dh + k * rd.hidden;
    let ref_at = ((lane % rd.seqs) * rd.steps + t) * 2u * dh + k * rd.hidden;
    let out_at = (lane * rd.steps + t) * dh + k * rd.hidden;
    var h_sq = f64(0.0);
    var h_max = f64(0.0);
    var c_sq = f64(0.0);
    var c_max = f64(0.0);
    for (var j = 0u; j < rd.hidden; j++) {
        let hw = states[at + j];
        let dh_j = abs(state_value(hw, fmt.x, fmt.y) - f32_value(reference[ref_at + j]));
        let dc_j = abs(state_value(states[at + dh + j], fmt.z, fmt.w) - f32_value(reference[ref_at + dh + j]));
        h_sq = h_sq + keep64(dh_j * dh_j);
        c_sq = c_sq + keep64(dc_j * dc_j);
        // f64::max: a NaN difference leaves the maximum as it was.
        if (!is_nan64(dh_j) && dh_j > h_max) {
            h_max = dh_j;
        }
        if (!is_nan64(dc_j) && dc_j > c_max) {
            c_max = dc_j;
        }
        if (rd.keep_hidden == 1u) {
            hidden[out_at + j] = hw;
        }
    }
    let s = 4u * i;
    stats[s] = h_sq;
    stats[s + 1u] = h_max;
    stats[s + 2u] = c_sq;
    stats[s + 3u] = c_max;
}
