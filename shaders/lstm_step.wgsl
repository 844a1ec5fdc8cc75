// LSTM kernels, part 3 of 5 (after numerics.wgsl): one step of policy lanes — the gate sums
// (`gates`: one thread per (lane, unit), its four gate rows) and the cell update (`cell_update`, whose `cell_int` /
// `cell_float` the config lanes of lstm_lanes.wgsl share). CPU twin: src/lstm/eval/cell.rs
// (and the batched engine, batch.rs).

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

// One thread per (lane, direction, unit j): the four gate rows of the unit (i, f, g, o: rows
// j, H + j, 2H + j, 3H + j), whose weights at one k are one vec4 (k-major, `Cell.w_off`:
// `weights4[w_off / 4 + k * H + j]`, the threads of a wave reading consecutive vec4s), each
// x and h word read once for the four. Lanes of one tile may differ in level, so each thread
// reads its own cell. Every row's sum still takes its terms one at a time in k order (W.x,
// then R.h, then b): the bits of the CPU (docs/NUMERICS.md sections 6, 7 and 10).
@compute @workgroup_size(64)
fn gates(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * dims.threads_x;
    let hsz = dims.hidden;
    let isz = dims.input;
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
    var xb = (lane * dims.steps + step_t(dir)) * dims.x_stride;
    var xsrc = 0u;
    if (dims.policy == 1u) {
        xb = dims.off_x + ld * isz;
        xsrc = 1u;
    }
    let hb = ld * 2u * hsz;
    let wq = cell.w_off / 4u + j;
    let rq = cell.r_off / 4u + j;
    // Gate row g of this unit is row g * H + j of the lane's accumulators.
    let ab = ld * 4u * hsz + j;
    if (cell.mode == 0u) {
        // Each call is specialised by its constant `split` (compilers drop the other branch).
        var wx: Sum4;
        if ((cell.split & 1u) != 0u) {
            wx = int_rows(wq, xsrc, xb, isz, cell.chunk_wx, true);
        } else {
            wx = int_rows(wq, xsrc, xb, isz, cell.chunk_wx, false);
        }
        var rh: Sum4;
        if ((cell.split & 2u) != 0u) {
            rh = int_rows(rq, 2u, hb, hsz, cell.chunk_rh, true);
        } else {
            rh = int_rows(rq, 2u, hb, hsz, cell.chunk_rh, false);
        }
        for (var g = 0u; g < 4u; g++) {
            let a = int_gate_sum(cell, g * hsz + j, vec2<u32>(wx.lo[g], wx.hi[g]), vec2<u32>(rh.lo[g], rh.hi[g]));
            acc[(ab + g * hsz) * 2u] = a.x;
            acc[(ab + g * hsz) * 2u + 1u] = a.y;
        }
    } else {
        var s = vec4<f32>(0.0);
        for (var k = 0u; k < isz; k++) {
            let x = bitcast<f32>(xcode(xsrc, xb + k));
            s = fadd4(s, fmul4(bitcast<vec4<f32>>(weights4[wq + k * hsz]), vec4<f32>(x)));
        }
        for (var k = 0u; k < hsz; k++) {
            let h = bitcast<f32>(state[hb + k]);
            s = fadd4(s, fmul4(bitcast<vec4<f32>>(weights4[rq + k * hsz]), vec4<f32>(h)));
        }
        for (var g = 0u; g < 4u; g++) {
            acc[(ab + g * hsz) * 2u] = bitcast<u32>(fadd(s[g], wf(cell.b_off + g * hsz + j)));
        }
    }
}

// Four 64-bit sums (lo, hi words), component-wise.
struct Sum4 {
    lo: vec4<u32>,
    hi: vec4<u32>,
}

// Code k of an integer lane at `base`: of x (`src` 0: in `xin`, 1: in `pol`) or of h (2: in
// `state`).
fn code_at(src: u32, base: u32, k: u32) -> i32 {
    if (src == 2u) {
        return bitcast<i32>(state[base + k]);
    }
    return xcode(src, base + k);
}

// The exact sums over k < n of the four gate rows' weights (`weights4[q + k * H]`) times the
// codes at `base`: per row an i32 partial sum of at most `chunk` products, which cannot
// overflow, widened into a 64-bit total after each chunk (integer sums are exact, so the
// grouping does not change the bits). `split` (`Cell.split`): codes split into a signed high
// and an unsigned low byte, as `mac1s` does, so a chunk holds many products where one product
// of two 16-bit codes may need all 31 bits.
fn int_rows(q: u32, src: u32, base: u32, n: u32, chunk: u32, split: bool) -> Sum4 {
    var lo = vec4<u32>(0u);
    var hi = vec4<u32>(0u);
    var pl = vec4<i32>(0);
    var ph = vec4<i32>(0);
    var m = 0u;
    for (var k = 0u; k < n; k++) {
        let w = bitcast<vec4<i32>>(weights4[q + k * dims.hidden]);
        let x = code_at(src, base, k);
        if (split) {
            ph += w * (x >> 8u);
            pl += w * (x & 255);
        } else {
            pl += w * x;
        }
        m += 1u;
        if (m == chunk) {
            widen4(&lo, &hi, pl);
            widen4_shl8(&lo, &hi, ph);
            pl = vec4<i32>(0);
            ph = vec4<i32>(0);
            m = 0u;
        }
    }
    widen4(&lo, &hi, pl);
    widen4_shl8(&lo, &hi, ph);
    return Sum4(lo, hi);
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
    if (cell.mode == 0u) {
        cell_int(cell, lane, ld, dir, j, acc64(ab + j), acc64(ab + hsz + j), acc64(ab + 2u * hsz + j), acc64(ab + 3u * hsz + j), true);
    } else {
        cell_float(cell, lane, ld, dir, j, accf(ab + j), accf(ab + hsz + j), accf(ab + 2u * hsz + j), accf(ab + 3u * hsz + j), true);
    }
}

// The integer cell update of unit j of lane `lane`, direction `dir` (ld = lane * dirs + dir)
// from its four gate accumulators: c and h go to `state` (h only with `h_state`) and to `outs`.
fn cell_int(cell: Cell, lane: u32, ld: u32, dir: u32, j: u32, ai0: vec2<u32>, af0: vec2<u32>, ag: vec2<u32>, ao0: vec2<u32>, h_state: bool) {
    let hsz = dims.hidden;
    let sb = ld * 2u * hsz;
    let dh = dims.dirs * hsz;
    let ob = (lane * dims.steps + step_t(dir)) * 2u * dh + dir * hsz + j;
    let peep = cell.has_peep == 1u;
    let cp = bitcast<i32>(state[sb + hsz + j]);
    var ai = ai0;
    var af = af0;
    var ao = ao0;
    if (peep) {
        ai = i64_add(ai, i64_shl(i64_from(wi(cell.p_off + j) * cp), cell.shift_pc));
        af = i64_add(af, i64_shl(i64_from(wi(cell.p_off + hsz + j) * cp), cell.shift_pc));
    }
    let ig = tab(cell.sig_off, cell.pre, rescale(ai, cell.pre_shift, cell.pre.bits));
    let fg = tab(cell.sig_off, cell.pre, rescale(af, cell.pre_shift, cell.pre.bits));
    let gg = tab(cell.tanhp_off, cell.pre, rescale(ag, cell.pre_shift, cell.pre.bits));
    let upd = i64_add(i64_shl(i64_from(fg * cp), cell.shift_fc), i64_shl(i64_from(ig * gg), cell.shift_ig));
    let cn = rescale(upd, cell.c_shift, cell.c.bits);
    if (peep) {
        ao = i64_add(ao, i64_shl(i64_from(wi(cell.p_off + 2u * hsz + j) * cn), cell.shift_pc));
    }
    let og = tab(cell.sig_off, cell.pre, rescale(ao, cell.pre_shift, cell.pre.bits));
    let tc = tab(cell.tanhc_off, cell.c, cn);
    let hn = rescale(i64_from(og * tc), cell.h_shift, cell.h.bits);
    if (h_state) {
        state[sb + j] = bitcast<u32>(hn);
    }
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
}

// The float twin of `cell_int`.
fn cell_float(cell: Cell, lane: u32, ld: u32, dir: u32, j: u32, ai0: f32, af0: f32, ag: f32, ao0: f32, h_state: bool) {
    let hsz = dims.hidden;
    let sb = ld * 2u * hsz;
    let dh = dims.dirs * hsz;
    let ob = (lane * dims.steps + step_t(dir)) * 2u * dh + dir * hsz + j;
    let peep = cell.has_peep == 1u;
    let cp = bitcast<f32>(state[sb + hsz + j]);
    var ai = ai0;
    var af = af0;
    var ao = ao0;
    if (peep) {
        ai = fadd(ai, fmul(wf(cell.p_off + j), cp));
        af = fadd(af, fmul(wf(cell.p_off + hsz + j), cp));
    }
    let ig = act(cell, 0u, fmt_round(cell.pre, ai));
    let fg = act(cell, 0u, fmt_round(cell.pre, af));
    let gg = act(cell, 1u, fmt_round(cell.pre, ag));
    let cn = fmt_round(cell.c, fadd(fmul(fg, cp), fmul(ig, gg)));
    if (peep) {
        ao = fadd(ao, fmul(wf(cell.p_off + 2u * hsz + j), cn));
    }
    let og = act(cell, 0u, fmt_round(cell.pre, ao));
    let hn = fmt_round(cell.h, fmul(og, act(cell, 2u, cn)));
    if (h_state) {
        state[sb + j] = bitcast<u32>(hn);
    }
    state[sb + hsz + j] = bitcast<u32>(cn);
    outs[ob] = bitcast<u32>(hn);
    outs[ob + dh] = bitcast<u32>(cn);
}
