// LSTM kernels, part 3 of 4 (after numerics.wgsl): one step of every lane — the gate sums
// (`gates`: one thread per (lane, row); `gates_lanes`: lane-blocked over k-major weights) and
// the cell update. CPU twin: src/lstm/eval/cell.rs (and the batched engine, batch.rs).

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
    // The LB = 4 lanes are the components of vec4s (dynamically indexed private arrays are
    // spilled to memory by CPU implementations); a short last block repeats its last lane.
    let lanes = vec4<u32>(cfg * dims.seqs + seq0) + min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n_here - 1u));
    let xv = (lanes * dims.steps + t) * dims.x_stride;
    let hv = (lanes * dims.dirs + dir) * 2u * hsz;
    if (cell.mode == 1u) {
        var s4 = vec4<f32>(0.0);
        for (var k = 0u; k < isz; k++) {
            let w = vec4<f32>(wf(cell.w_off + k * rows + row));
            let x = vec4<f32>(
                bitcast<f32>(xin[xv.x + k]),
                bitcast<f32>(xin[xv.y + k]),
                bitcast<f32>(xin[xv.z + k]),
                bitcast<f32>(xin[xv.w + k]),
            );
            s4 = fadd4(s4, fmul4(w, x));
        }
        for (var k = 0u; k < hsz; k++) {
            let w = vec4<f32>(wf(cell.r_off + k * rows + row));
            let h = vec4<f32>(
                bitcast<f32>(state[hv.x + k]),
                bitcast<f32>(state[hv.y + k]),
                bitcast<f32>(state[hv.z + k]),
                bitcast<f32>(state[hv.w + k]),
            );
            s4 = fadd4(s4, fmul4(w, h));
        }
        s4 = fadd4(s4, vec4<f32>(wf(cell.b_off + row)));
        for (var l = 0u; l < n_here; l++) {
            let ld = (cfg * dims.seqs + seq0 + l) * dims.dirs + dir;
            acc[(ld * rows + row) * 2u] = bitcast<u32>(s4[l]);
        }
        return;
    }
    // Integer lanes: four partial sums in a vec4<i32>, widened into four 64-bit totals kept
    // as (lo, hi) vec4<u32> pairs (the vector form of i64_from / i64_add).
    var part4 = vec4<i32>(0);
    var lo = vec4<u32>(0u);
    var hi = vec4<u32>(0u);
    var n = 0u;
    for (var k = 0u; k < isz; k++) {
        let w = vec4<i32>(wi(cell.w_off + k * rows + row));
        let x = vec4<i32>(
            bitcast<i32>(xin[xv.x + k]),
            bitcast<i32>(xin[xv.y + k]),
            bitcast<i32>(xin[xv.z + k]),
            bitcast<i32>(xin[xv.w + k]),
        );
        part4 += w * x;
        n += 1u;
        if (n == cell.chunk_wx) {
            widen4(&lo, &hi, part4);
            part4 = vec4<i32>(0);
            n = 0u;
        }
    }
    widen4(&lo, &hi, part4);
    let wx_lo = lo;
    let wx_hi = hi;
    part4 = vec4<i32>(0);
    lo = vec4<u32>(0u);
    hi = vec4<u32>(0u);
    n = 0u;
    for (var k = 0u; k < hsz; k++) {
        let w = vec4<i32>(wi(cell.r_off + k * rows + row));
        let h = vec4<i32>(
            bitcast<i32>(state[hv.x + k]),
            bitcast<i32>(state[hv.y + k]),
            bitcast<i32>(state[hv.z + k]),
            bitcast<i32>(state[hv.w + k]),
        );
        part4 += w * h;
        n += 1u;
        if (n == cell.chunk_rh) {
            widen4(&lo, &hi, part4);
            part4 = vec4<i32>(0);
            n = 0u;
        }
    }
    widen4(&lo, &hi, part4);
    for (var l = 0u; l < n_here; l++) {
        let wx = vec2<u32>(wx_lo[l], wx_hi[l]);
        let a = int_gate_sum(cell, row, wx, vec2<u32>(lo[l], hi[l]));
        let ld = (cfg * dims.seqs + seq0 + l) * dims.dirs + dir;
        acc[(ld * rows + row) * 2u] = a.x;
        acc[(ld * rows + row) * 2u + 1u] = a.y;
    }
}

// Adds four i32 partial sums to four 64-bit totals (lo, hi words), component-wise.
fn widen4(lo: ptr<function, vec4<u32>>, hi: ptr<function, vec4<u32>>, part: vec4<i32>) {
    let p = bitcast<vec4<u32>>(part);
    let sum = *lo + p;
    let carry = select(vec4<u32>(0u), vec4<u32>(1u), sum < *lo);
    *hi = *hi + select(vec4<u32>(0u), vec4<u32>(0xffffffffu), part < vec4<i32>(0)) + carry;
    *lo = sum;
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
