// LSTM kernels, part 5 of 5 (after lstm_lanes.wgsl): policy lanes — choosing each lane's
// level per step from its cell-state change and moving its state between levels (codes of
// nested fixed point, or values: docs/NUMERICS.md section 11 and 11.1). CPU twins:
// src/dynamic/sim.rs, src/dynamic/lanes.rs, src/dynamic/values.rs.

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
// level, saving their state and its level first. Phase 2, after step s (oracle): pick the level
// from step s's own change and, if lower, move the saved state to that level for the redo.
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
            // Save the state as it is (in its level's words) and that level: a redo starts
            // from it, not from its rounding to the top level (which may not hold it exactly).
            for (var j = 0u; j < 2u * hsz; j++) {
                pol[dims.off_saved + ld * 2u * hsz + j] = state[sb + j];
            }
            pol[ctrl(ld) + 2u] = pol[ctrl(ld)];
            enter_level(lane, ld, dir, pol[ctrl(ld)], top, t);
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
        enter_level(lane, ld, dir, pol[ctrl(ld) + 2u], level, t);
        pol[ctrl(ld) + 1u] = 1u;
        pol[trace] = level;
    }
}
