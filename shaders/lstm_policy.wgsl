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

// Threads of the level choice's workgroup (one workgroup a lane and direction).
const SEL: u32 = 32u;

// Moves the lane's state from `src_level` to `dst_level` and writes its input for step `t`
// at `dst_level` into the scratch region: thread `tid` of the lane's workgroup takes units
// j = tid, tid + SEL, ... (both h and c of a unit) and inputs k = tid, tid + SEL, ...
fn enter_level(lane: u32, ld: u32, dir: u32, src_level: u32, dst_level: u32, t: u32, tid: u32) {
    let hsz = dims.hidden;
    let a = cells[src_level * dims.dirs + dir];
    let b = cells[dst_level * dims.dirs + dir];
    let sb = ld * 2u * hsz;
    if (src_level != dst_level && dims.values == 1u) {
        for (var j = tid; j < hsz; j += SEL) {
            let h = word_value(a, a.h, state[sb + j]);
            let c = word_value(a, a.c, state[sb + hsz + j]);
            state[sb + j] = value_word(b, b.h, h);
            state[sb + hsz + j] = value_word(b, b.c, c);
        }
    } else if (src_level != dst_level) {
        for (var j = tid; j < hsz; j += SEL) {
            let h = bitcast<i32>(state[sb + j]);
            let c = bitcast<i32>(state[sb + hsz + j]);
            state[sb + j] = bitcast<u32>(rescale32(h, a.h.frac - b.h.frac, b.h.bits));
            state[sb + hsz + j] = bitcast<u32>(rescale32(c, a.c.frac - b.c.frac, b.c.bits));
        }
    }
    let hi = cells[(dims.levels - 1u) * dims.dirs + dir];
    let xb = (lane * dims.steps + t) * dims.x_stride;
    for (var k = tid; k < dims.input; k += SEL) {
        var code: i32;
        if (dims.x_f32 == 1u) {
            code = bitcast<i32>(value_word(b, b.x, bitcast<f32>(xin[xb + k])));
        } else {
            code = rescale32(bitcast<i32>(xin[xb + k]), hi.x.frac - b.x.frac, b.x.bits);
        }
        pol[dims.off_x + ld * dims.input + k] = bitcast<u32>(code);
    }
}

fn above_of(dir: u32) -> i32 {
    if (dir == 1u) {
        return dims.above1;
    }
    return dims.above0;
}

// Partial metrics of the lane's workgroup (`metric_of`): value and base of each thread.
var<workgroup> part_v: array<i32, SEL>;
var<workgroup> part_b: array<i32, SEL>;

// The metric of c_t (in `outs`, highest formats) against the previous cell state, as an
// integer (NUMERICS.md section 11): (value, max |c_prev| for rel_max_abs). Thread `tid` of the
// lane's workgroup folds units j = tid, tid + SEL, ..., and every thread then folds the SEL
// partials: maxima, counts and integer sums do not depend on the order. An f32 mean (state
// kept as values) is an in-order sum, so there every thread sums all H in order itself. Must
// be called in uniform control flow (it has barriers); every thread gets the result.
fn metric_of(lane: u32, ld: u32, dir: u32, t: u32, tid: u32) -> vec2<i32> {
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
        var j0 = tid;
        var stride = SEL;
        if (dims.metric == 1u) {
            j0 = 0u;
            stride = 1u;
        }
        for (var j = j0; j < hsz; j += stride) {
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
        base = bitcast<i32>(bf);
    } else {
        for (var j = tid; j < hsz; j += SEL) {
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
    }
    part_v[tid] = v;
    part_b[tid] = base;
    workgroupBarrier();
    // Non-negative values (f32 bits of non-negative floats order like integers): the fold is
    // a max, or for counts and integer sums a sum. (An f32 mean's partials are all the whole
    // in-order sum, so their max is that sum.)
    let sum = dims.metric == 2u || (dims.metric == 1u && dims.values == 0u);
    var rv = 0;
    var rb = 0;
    for (var i = 0u; i < SEL; i++) {
        if (sum) {
            rv += part_v[i];
        } else {
            rv = max(rv, part_v[i]);
        }
        rb = max(rb, part_b[i]);
    }
    // The partials are read before any thread writes them again.
    workgroupBarrier();
    return vec2<i32>(rv, rb);
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

// Remembers c_t (highest formats) as the previous cell state (thread `tid`: units tid,
// tid + SEL, ...).
fn keep_c(lane: u32, ld: u32, dir: u32, t: u32, tid: u32) {
    let hsz = dims.hidden;
    let dh = dims.dirs * hsz;
    let cb = (lane * dims.steps + t) * 2u * dh + dh + dir * hsz;
    for (var j = tid; j < hsz; j += SEL) {
        pol[dims.off_cprev + ld * hsz + j] = outs[cb + j];
    }
}

fn prev_t(dir: u32) -> u32 {
    if (((dims.rev_mask >> dir) & 1u) == 1u) {
        return dims.steps - step.s;
    }
    return step.s - 1u;
}

// One workgroup per (lane, dir), its SEL threads sharing the lane's units and inputs. Phase 0,
// before step s: causal lanes pick the level of step s from the change of step s - 1
// (`dims.start` at the first step); oracle lanes go to the highest level, saving their state
// and its level first. Phase 2, after step s (oracle): pick the level from step s's own change
// and, if lower, move the saved state to that level for the redo. Thread 0 writes the lane's
// control words once every thread has read them.
@compute @workgroup_size(SEL)
fn select_level(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ld = wid.x + wid.y * (dims.threads_x / 64u);
    if (ld >= dims.lanes * dims.dirs) {
        return;
    }
    let tid = lid.x;
    let dir = ld % dims.dirs;
    let lane = ld / dims.dirs;
    let t = step_t(dir);
    let top = dims.levels - 1u;
    let hsz = dims.hidden;
    let sb = ld * 2u * hsz;
    let trace = dims.off_trace + ld * dims.steps + t;
    let oracle = dims.off_saved != 0u;
    let current = pol[ctrl(ld)];
    if (step.phase == 0u) {
        var metric = vec2<i32>(0, 0);
        if (step.s > 0u) {
            metric = metric_of(lane, ld, dir, prev_t(dir), tid);
            // Every thread's reads of the previous cell state (all of it, for an f32 mean)
            // come before any thread overwrites it.
            storageBarrier();
            keep_c(lane, ld, dir, prev_t(dir), tid);
        }
        var level = top;
        if (oracle) {
            // Save the state as it is (in its level's words): a redo starts from it, not from
            // its rounding to the top level (which may not hold it exactly).
            for (var j = tid; j < hsz; j += SEL) {
                pol[dims.off_saved + ld * 2u * hsz + j] = state[sb + j];
                pol[dims.off_saved + ld * 2u * hsz + hsz + j] = state[sb + hsz + j];
            }
        } else if (step.s > 0u) {
            level = level_for(lane, dir, metric);
        } else {
            level = dims.start;
        }
        enter_level(lane, ld, dir, current, level, t, tid);
        // Every thread has read the control words (`current`) before thread 0 writes them.
        storageBarrier();
        if (tid == 0u) {
            if (oracle) {
                pol[ctrl(ld) + 2u] = current;
            }
            pol[ctrl(ld)] = level;
            pol[trace] = level;
            pol[ctrl(ld) + 1u] = 0u;
        }
        return;
    }
    let level = level_for(lane, dir, metric_of(lane, ld, dir, t, tid));
    let saved = pol[ctrl(ld) + 2u];
    if (level < top) {
        for (var j = tid; j < hsz; j += SEL) {
            state[sb + j] = pol[dims.off_saved + ld * 2u * hsz + j];
            state[sb + hsz + j] = pol[dims.off_saved + ld * 2u * hsz + hsz + j];
        }
        enter_level(lane, ld, dir, saved, level, t, tid);
    }
    storageBarrier();
    if (tid == 0u && level < top) {
        pol[ctrl(ld)] = level;
        pol[ctrl(ld) + 1u] = 1u;
        pol[trace] = level;
    }
}
