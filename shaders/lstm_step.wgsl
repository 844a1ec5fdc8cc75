// LSTM kernels, part 3 of 5 (after numerics.wgsl): one step of policy lanes — the gate sums
// (`gates`: one thread per (unit, block of lanes), one pass per level in the block) and the
// cell update (`cell_update`, whose `cell_int` / `cell_float` the config lanes of
// lstm_lanes.wgsl share). CPU twin: src/lstm/eval/cell.rs
// (and the batched engine, batch.rs).

fn step_t(dir: u32) -> u32 {
    if (((dims.rev_mask >> dir) & 1u) == 1u) {
        return dims.steps - 1u - step.s;
    }
    return step.s;
}

fn wi(k: u32) -> i32 {
    return bitcast<i32>(w1(k));
}

fn wf(k: u32) -> f32 {
    return bitcast<f32>(w1(k));
}

// ---- the gate sums of policy lanes: lane-blocked, one pass per level in a block ----
//
// One thread per (unit j, block of LB consecutive sequences of one policy, direction): the
// four gate rows of unit j for the block's lanes (the products of `step_lanes`, over the same
// k-major weights: one vec4 a k holds the unit's four rows, and each weight word serves the
// block's four lanes), into `acc` for `cell_update`. The lanes of a block may be at different
// levels, so the thread makes one pass per level present (usually one), over that level's
// weights, and keeps the sums of the lanes at it. x is the lane's input at its level (in
// `pol`, written by `select_level`), h the lane's state (in `state`), read four lanes a k.
// Every lane's sum still takes its terms one at a time in k order (W.x, then R.h, then b):
// the bits of the CPU (docs/NUMERICS.md sections 6, 7 and 10).
@compute @workgroup_size(64)
fn gates(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let hsz = dims.hidden;
    let blk = block_of(wid, lid);
    if (!blk.ok) {
        return;
    }
    let j = blk.j;
    let dir = blk.dir;
    let n_here = blk.n_here;
    let lds = blk.lanes * dims.dirs + dir;
    // The lanes whose sums are still to be made (not padding, not skipped by an oracle redo)
    // and their levels.
    var todo = vec4<bool>(false);
    var level = vec4<u32>(0u);
    for (var l = 0u; l < n_here; l++) {
        level[l] = pol[ctrl(lds[l])];
        todo[l] = !skip(lds[l]);
    }
    let xv = dims.off_x + lds * dims.input;
    let hv = lds * 2u * hsz;
    while (any(todo)) {
        // The level of the first lane still to do, and every lane at it.
        var at_level = level.w;
        if (todo.z) {
            at_level = level.z;
        }
        if (todo.y) {
            at_level = level.y;
        }
        if (todo.x) {
            at_level = level.x;
        }
        let at = todo & (level == vec4<u32>(at_level));
        let cell = cells[at_level * dims.dirs + dir];
        if (cell.mode == 0u) {
            block_int(cell, j, lds, xv, hv, at);
        } else {
            block_float(cell, j, lds, xv, hv, at);
        }
        todo = todo & !at;
    }
}

// Words k of four lanes in `pol` (x at the lane's level) and in `state` (h).
fn pol4(base: vec4<u32>, k: u32) -> vec4<u32> {
    return vec4<u32>(pol[base.x + k], pol[base.y + k], pol[base.z + k], pol[base.w + k]);
}

fn state4(base: vec4<u32>, k: u32) -> vec4<u32> {
    return vec4<u32>(state[base.x + k], state[base.y + k], state[base.z + k], state[base.w + k]);
}

// Gate row `row` of the lanes `lds` marked in `at`: its 64-bit accumulators, into `acc`.
fn keep_int(lds: vec4<u32>, at: vec4<bool>, row: u32, w: W64) {
    for (var l = 0u; l < 4u; l++) {
        if (at[l]) {
            let a = (lds[l] * 4u * dims.hidden + row) * 2u;
            acc[a] = w.lo[l];
            acc[a + 1u] = w.hi[l];
        }
    }
}

// The integer gate sums of one level's lanes: as `step_lanes`, per gate row four i32 partial
// sums of at most `chunk_wx` (`chunk_rh`) products (of a byte, with `Cell.split`), which
// cannot overflow, widened after each chunk into four 64-bit totals (`widen_chunk`); W.x
// folded in shifted with the bias (`fold_wx`), then R.h (`add_rh`): the bits of the CPU's
// `int_gate_sum`.
fn block_int(cell: Cell, j: u32, lds: vec4<u32>, xv: vec4<u32>, hv: vec4<u32>, at: vec4<bool>) {
    let hsz = dims.hidden;
    let isz = dims.input;
    var tot = t4_zero();
    // Each call of `block_chunk` is specialised by its constants (compilers drop the other
    // branches), so no inner loop tests them. Chunks are at least 1: a zero chunk, which no
    // valid cell has, would never end the loop.
    let split_x = (cell.split & 1u) != 0u;
    let wq = cell.w_off / 4u + j;
    let cx = max(cell.chunk_wx, 1u);
    for (var q0 = 0u; q0 < isz; q0 += cx) {
        let q1 = min(isz, q0 + cx);
        var s: P4x2;
        if (split_x) {
            s = block_chunk(wq, false, xv, q0, q1, true);
        } else {
            s = block_chunk(wq, false, xv, q0, q1, false);
        }
        tot = widen_chunk(tot, s.l, s.h, split_x);
    }
    tot = fold_wx(cell, j, tot);
    let split_h = (cell.split & 2u) != 0u;
    let rq = cell.r_off / 4u + j;
    let ch = max(cell.chunk_rh, 1u);
    for (var q0 = 0u; q0 < hsz; q0 += ch) {
        let q1 = min(hsz, q0 + ch);
        var s: P4x2;
        if (split_h) {
            s = block_chunk(rq, true, hv, q0, q1, true);
        } else {
            s = block_chunk(rq, true, hv, q0, q1, false);
        }
        tot = add_rh(cell, j, tot, s.l, s.h, split_h);
    }
    keep_int(lds, at, j, tot.i);
    keep_int(lds, at, j + hsz, tot.f);
    keep_int(lds, at, j + 2u * hsz, tot.g);
    keep_int(lds, at, j + 3u * hsz, tot.o);
}

// One chunk, k in [q0, q1), of a unit's products, four lanes each: weights
// `weights4[wq + k * H]`, codes at `base` in `pol` (x at the lanes' level) or, `from_state`,
// in `state` (h). Whole codes' sums in `l`; with `split`, the low bytes' in `l` and the high
// bytes' in `h` (`mac1s`).
fn block_chunk(wq: u32, from_state: bool, base: vec4<u32>, q0: u32, q1: u32, split: bool) -> P4x2 {
    let z4 = P4(vec4<i32>(0), vec4<i32>(0), vec4<i32>(0), vec4<i32>(0));
    var s = P4x2(z4, z4);
    for (var q = q0; q < q1; q++) {
        var x: vec4<i32>;
        if (from_state) {
            x = bitcast<vec4<i32>>(state4(base, q));
        } else {
            x = bitcast<vec4<i32>>(pol4(base, q));
        }
        if (split) {
            s = mac1s(s, wq + q * dims.hidden, x);
        } else {
            s.l = mac1(s.l, wq + q * dims.hidden, x);
        }
    }
    return s;
}

// The float gate sums of one level's lanes: each term a multiply and an add, each flushed
// (`macf` unfused), then the bias; the sums go to `acc` as f32 bits.
fn block_float(cell: Cell, j: u32, lds: vec4<u32>, xv: vec4<u32>, hv: vec4<u32>, at: vec4<bool>) {
    let hsz = dims.hidden;
    let z = vec4<f32>(0.0);
    var p = F4(z, z, z, z);
    for (var k = 0u; k < dims.input; k++) {
        p = macf(p, cell.w_off / 4u + k * hsz + j, bitcast<vec4<f32>>(pol4(xv, k)), FLUSHED);
    }
    for (var k = 0u; k < hsz; k++) {
        p = macf(p, cell.r_off / 4u + k * hsz + j, bitcast<vec4<f32>>(state4(hv, k)), FLUSHED);
    }
    let g = add_bias(cell, j, p);
    for (var l = 0u; l < 4u; l++) {
        if (at[l]) {
            let a = (lds[l] * 4u * hsz + j) * 2u;
            acc[a] = bitcast<u32>(g.i[l]);
            acc[a + 2u * hsz] = bitcast<u32>(g.f[l]);
            acc[a + 4u * hsz] = bitcast<u32>(g.g[l]);
            acc[a + 6u * hsz] = bitcast<u32>(g.o[l]);
        }
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
