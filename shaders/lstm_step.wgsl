// LSTM kernels, part 3 of 5 (after numerics.wgsl): one step of policy lanes — the gate sums
// (`gates`: one thread per (lane, row)) and the cell update (`cell_update`, whose `cell_int` /
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
