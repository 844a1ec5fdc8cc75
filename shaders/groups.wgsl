// DPRed per-group widths (docs/NUMERICS.md section 12): one thread per group of
// two's-complement codes; a code's width is the leading one of its magnitude (one's
// complement for negatives) plus a sign bit, a group's width its widest code's (at most the
// base width). Writes (width, nonzero count) per group. CPU twin: src/dynamic/groups.rs.

struct Params {
    groups: u32,
    base_bits: u32,
    // threads per row of a 2-D dispatch
    threads_x: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> codes: array<i32>;
// group g covers codes[starts[g] .. starts[g + 1]]
@group(0) @binding(2) var<storage, read> starts: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

fn width(c: i32) -> u32 {
    var m = bitcast<u32>(c);
    if (c < 0) {
        m = ~m;
    }
    if (m == 0u) {
        return 1u;
    }
    return firstLeadingBit(m) + 2u;
}

@compute @workgroup_size(64)
fn group_widths(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = gid.x + gid.y * params.threads_x;
    if (g >= params.groups) {
        return;
    }
    var w = 1u;
    var nonzero = 0u;
    for (var k = starts[g]; k < starts[g + 1u]; k++) {
        w = max(w, width(codes[k]));
        nonzero += select(0u, 1u, codes[k] != 0);
    }
    out[2u * g] = min(w, params.base_bits);
    out[2u * g + 1u] = nonzero;
}
