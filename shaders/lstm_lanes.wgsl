// LSTM kernels, part 4 of 5 (after lstm_step.wgsl): config lanes, a whole step per dispatch
// (`step_lanes`, `step_lanes_staged`, and `stage_lanes`, which fills the uniform stage). The
// cell update is lstm_step.wgsl's `cell_int` / `cell_float`. CPU twin: src/lstm/eval/cell.rs
// (and the batched engine, batch.rs).

// ---- one whole step of config lanes: lane-blocked gate products and the cell update ----
//
// One thread computes the four gate rows (i, f, g, o) of one unit j for LB lanes (sequences)
// of one config and direction, then updates the unit's c and h of those lanes from registers
// (one dispatch per step; no gate sums go through memory): each x or h word read serves four
// rows, each weight word LB lanes. The h of step t - 1 is read from `outs` (from `state` at
// the first step), and the new h goes only to `outs`, so no thread overwrites an h that
// another thread of the same dispatch still reads. Weights are stored k-major (for every
// lane kind) with a unit's four gate rows side by side (`weights4[w_off / 4 + k * H + j]` holds rows
// j, H + j, 2H + j, 3H + j at k; 8-bit codes four k a word, `Cell.packed`): one vec4 read a
// k, and the threads of a wave, which hold consecutive units, read consecutive vec4s
// (coalesced). Workgroup w holds units [64 * (w % tiles), +64)
// of one (config, direction, block of LB sequences): everything but the unit is the same
// across the workgroup. No workgroup memory and no barriers (barriers are costly on CPU
// Vulkan implementations). Every lane's sum still takes its terms one at a time in k order
// (W.x, then R.h, then b): the bits of `gates` and of the CPU (docs/NUMERICS.md sections 6,
// 7 and 10).

const LB: u32 = 4u;

// The x (or h) words at k of the four lanes whose first words are at `base` in `xin`
// (`state`, `outs`), or, staged, the vec4 at `sb + k` in `stage_u` (the stage holds a block's
// four lanes side by side). `staged` is a constant at every call (see `step_lanes`), so
// compilers drop the other branch.
fn x4(staged: bool, base: vec4<u32>, sb: u32, k: u32) -> vec4<u32> {
    if (staged) {
        return stage_u[sb + k];
    }
    return vec4<u32>(xin[base.x + k], xin[base.y + k], xin[base.z + k], xin[base.w + k]);
}

fn h4(staged: bool, base: vec4<u32>, sb: u32, k: u32) -> vec4<u32> {
    if (staged) {
        return stage_u[sb + k];
    }
    return vec4<u32>(state[base.x + k], state[base.y + k], state[base.z + k], state[base.w + k]);
}

fn o4(staged: bool, base: vec4<u32>, sb: u32, k: u32) -> vec4<u32> {
    if (staged) {
        return stage_u[sb + k];
    }
    return vec4<u32>(outs[base.x + k], outs[base.y + k], outs[base.z + k], outs[base.w + k]);
}

fn xi4(staged: bool, base: vec4<u32>, sb: u32, k: u32) -> vec4<i32> {
    return bitcast<vec4<i32>>(x4(staged, base, sb, k));
}

fn hi4(staged: bool, base: vec4<u32>, sb: u32, k: u32) -> vec4<i32> {
    return bitcast<vec4<i32>>(h4(staged, base, sb, k));
}

fn oi4(staged: bool, base: vec4<u32>, sb: u32, k: u32) -> vec4<i32> {
    return bitcast<vec4<i32>>(o4(staged, base, sb, k));
}

// Partial sums of the four gate rows (i, f, g, o) of one unit, four lanes each.
struct P4 {
    i: vec4<i32>,
    f: vec4<i32>,
    g: vec4<i32>,
    o: vec4<i32>,
}

// One k: the weights of the four gate rows (the vec4 `weights4[wq]`) times x.
fn mac1(p: P4, wq: u32, x: vec4<i32>) -> P4 {
    let w = bitcast<vec4<i32>>(w4(wq));
    var r = p;
    r.i += vec4<i32>(w.x) * x;
    r.f += vec4<i32>(w.y) * x;
    r.g += vec4<i32>(w.z) * x;
    r.o += vec4<i32>(w.w) * x;
    return r;
}

// The four products of one packed weight word (8-bit codes of k .. k + 3, k in the low byte)
// with the x of those k.
fn dot4(w: i32, x0: vec4<i32>, x1: vec4<i32>, x2: vec4<i32>, x3: vec4<i32>) -> vec4<i32> {
    let a = vec4<i32>(extractBits(w, 0u, 8u)) * x0 + vec4<i32>(extractBits(w, 8u, 8u)) * x1;
    return a + vec4<i32>(extractBits(w, 16u, 8u)) * x2 + vec4<i32>(extractBits(w, 24u, 8u)) * x3;
}

// Four k of packed weights (padding codes past the row are 0, so the clamped x they meet
// add nothing).
fn mac4(p: P4, wq: u32, x0: vec4<i32>, x1: vec4<i32>, x2: vec4<i32>, x3: vec4<i32>) -> P4 {
    let w = bitcast<vec4<i32>>(w4(wq));
    var r = p;
    r.i += dot4(w.x, x0, x1, x2, x3);
    r.f += dot4(w.y, x0, x1, x2, x3);
    r.g += dot4(w.z, x0, x1, x2, x3);
    r.o += dot4(w.w, x0, x1, x2, x3);
    return r;
}

// Partial sums of the four gate rows (i, f, g, o) of one unit, four lanes each: float lanes.
struct F4 {
    i: vec4<f32>,
    f: vec4<f32>,
    g: vec4<f32>,
    o: vec4<f32>,
}

// How a float lane's term joins its sum (a constant at every call, so compilers drop the
// other branches): FLUSHED, a multiply and an add, each flushed (NUMERICS.md sections 5 and
// 6); FUSED, one fma (`Cell.fused`: every product exact and no sum subnormal, so the fma
// rounds the value the add rounds and no flush changes one); PLAIN, a multiply and an add
// unflushed (`Cell.plain_x` / `plain_h`: no product or partial sum can be subnormal, so the
// flushes change nothing). The same bits all three; on a GPU one, three and about seven
// instructions a term.
const FLUSHED: u32 = 0u;
const FUSED: u32 = 1u;
const PLAIN: u32 = 2u;

// The product a * b, rounded, never contracted into an add (the XOR with `dims.zero`, which is
// 0, hides it from the compiler) and not flushed.
fn mul_kept(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(bitcast<vec4<u32>>(a * b) ^ vec4<u32>(dims.zero));
}

// One k of float lanes: the weights of the four gate rows (the vec4 `weights4[wq]`) times x,
// each term joining its sum as `how` says.
fn macf(p: F4, wq: u32, x: vec4<f32>, how: u32) -> F4 {
    let w = bitcast<vec4<f32>>(w4(wq));
    var r = p;
    if (how == FUSED) {
        r.i = fma(vec4<f32>(w.x), x, r.i);
        r.f = fma(vec4<f32>(w.y), x, r.f);
        r.g = fma(vec4<f32>(w.z), x, r.g);
        r.o = fma(vec4<f32>(w.w), x, r.o);
    } else if (how == PLAIN) {
        r.i = r.i + mul_kept(vec4<f32>(w.x), x);
        r.f = r.f + mul_kept(vec4<f32>(w.y), x);
        r.g = r.g + mul_kept(vec4<f32>(w.z), x);
        r.o = r.o + mul_kept(vec4<f32>(w.w), x);
    } else {
        r.i = fadd4(r.i, fmul4(vec4<f32>(w.x), x));
        r.f = fadd4(r.f, fmul4(vec4<f32>(w.y), x));
        r.g = fadd4(r.g, fmul4(vec4<f32>(w.z), x));
        r.o = fadd4(r.o, fmul4(vec4<f32>(w.w), x));
    }
    return r;
}

// Four words as keys that order like their magnitudes, with a zero of either sign above every
// other word (so it meets every bound): the bits shifted left once (the sign dropped, the
// exponent field now in bits 24 to 31), less one, wrapping. With the minimum, three
// instructions a k and lane: a quarter of the unflushed loop's twelve (four gates, three each).
fn key4(v: vec4<u32>) -> vec4<u32> {
    return (v << vec4<u32>(1u)) - vec4<u32>(1u);
}

// Whether the smallest key of a pass, `m`, meets the exponent bound `need`: the exponent field
// of the smallest non-zero word (a subnormal's is 0), or every word zero.
fn meets(m: vec4<u32>, need: u32) -> bool {
    let k = min(min(m.x, m.y), min(m.z, m.w));
    return k == 0xffffffffu || ((k + 1u) >> 24u) >= need;
}

// Whether every non-zero x of the four lanes at this step has an exponent field of at least
// `cell.plain_x` (W.x may then run PLAIN).
// (No pass over x where the cell never runs unflushed: `plain_x` 256, as on CPU
// implementations, where the pass costs more than it saves.)
fn x_plain(cell: Cell, staged: bool, xv: vec4<u32>, sx: u32) -> bool {
    if (cell.plain_x > 255u) {
        return false;
    }
    var m = vec4<u32>(0xffffffffu);
    for (var k = 0u; k < dims.input; k++) {
        m = min(m, key4(x4(staged, xv, sx, k)));
    }
    return meets(m, cell.plain_x);
}

// The same for the previous h (R.h), read as `rh_f` reads it.
fn h_plain(cell: Cell, staged: bool, first: bool, hv: vec4<u32>, ov: vec4<u32>, sh: u32) -> bool {
    if (cell.plain_h > 255u) {
        return false;
    }
    var m = vec4<u32>(0xffffffffu);
    for (var k = 0u; k < dims.hidden; k++) {
        if (first) {
            m = min(m, key4(h4(staged, hv, sh, k)));
        } else {
            m = min(m, key4(o4(staged, ov, sh, k)));
        }
    }
    return meets(m, cell.plain_h);
}

// The bias of unit j's four gate rows added to their sums, four lanes each (the last term,
// NUMERICS.md section 6).
fn add_bias(cell: Cell, j: u32, p: F4) -> F4 {
    let b = cell.b_off + j;
    let hsz = dims.hidden;
    return F4(fadd4(p.i, vec4<f32>(wf(b))), fadd4(p.f, vec4<f32>(wf(b + hsz))), fadd4(p.g, vec4<f32>(wf(b + 2u * hsz))), fadd4(p.o, vec4<f32>(wf(b + 3u * hsz))));
}

// W.x of float lanes for unit j, k in order (x of the lanes at `xv` in `xin`, or staged).
fn wx_f(p0: F4, cell: Cell, j: u32, staged: bool, xv: vec4<u32>, sx: u32, how: u32) -> F4 {
    var p = p0;
    for (var k = 0u; k < dims.input; k++) {
        let x = bitcast<vec4<f32>>(x4(staged, xv, sx, k));
        p = macf(p, cell.w_off / 4u + k * dims.hidden + j, x, how);
    }
    return p;
}

// R.h of float lanes for unit j, k in order: the previous h from `state` at the first step
// (at `hv`), else from `outs` (at `ov`), or staged.
fn rh_f(p0: F4, cell: Cell, j: u32, staged: bool, first: bool, hv: vec4<u32>, ov: vec4<u32>, sh: u32, how: u32) -> F4 {
    var p = p0;
    for (var k = 0u; k < dims.hidden; k++) {
        var h: vec4<f32>;
        if (first) {
            h = bitcast<vec4<f32>>(h4(staged, hv, sh, k));
        } else {
            h = bitcast<vec4<f32>>(o4(staged, ov, sh, k));
        }
        p = macf(p, cell.r_off / 4u + k * dims.hidden + j, h, how);
    }
    return p;
}

@compute @workgroup_size(64)
fn step_lanes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    step_body(wid, lid, false);
}

// The same, reading x and the previous h from `stage_u` (filled by `stage_lanes` just
// before): CPU implementations read uniform buffers with branch-free gathers, whereas a
// storage read in a loop costs llvmpipe (Mesa 22) a loop over its SIMD lanes with a branch
// each. A stage larger than one uniform binding is read in windows of whole slabs, one
// dispatch a window (`step.slab0`, `step.stage_base`).
@compute @workgroup_size(64)
fn step_lanes_staged(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    step_body(wid, lid, true);
}

// Copies what `step_lanes_staged` reads at this step into the stage, `[block, dir, I + H,
// LB]` (a block: LB consecutive sequences of one config, the last one padded): the x of the
// step, then the previous h (from `state` at the first step, else from `outs`), the block's
// lanes side by side.
// For cells with `packed` 2 (x and h codes fit a byte), word w of x (of h) holds the codes of
// k = 4w .. 4w + 3 as bytes, the first in the low byte, codes past the row 0.
@compute @workgroup_size(64)
fn stage_lanes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * dims.threads_x;
    let hsz = dims.hidden;
    let isz = dims.input;
    let width = isz + hsz;
    if (idx >= dims.lanes * dims.dirs * width) {
        return;
    }
    let w = idx % width;
    let ld = idx / width;
    let dir = ld % dims.dirs;
    let lane = ld / dims.dirs;
    let t = step_t(dir);
    var t_prev = t - 1u;
    if (((dims.rev_mask >> dir) & 1u) == 1u) {
        t_prev = t + 1u;
    }
    let seq = lane % dims.seqs;
    let block = (lane / dims.seqs) * ((dims.seqs + LB - 1u) / LB) + seq / LB;
    let bytes = cells[(lane / dims.seqs) * dims.dirs + dir].packed == 2u;
    // Words of x (of h) in this lane's stage, and the first k of word w.
    var k = w;
    var x = w < isz;
    var n = 1u;
    if (bytes) {
        n = 4u;
        k = 4u * w;
        if (!x) {
            k = 4u * (w - isz) + isz;
        }
        if ((x && k >= isz) || (!x && k >= width)) {
            return;
        }
    }
    var v = 0u;
    for (var m = 0u; m < n; m++) {
        var c = 0u;
        if (x && k + m < isz) {
            c = xin[(lane * dims.steps + t) * dims.x_stride + k + m];
        } else if (!x && k + m < width) {
            let jj = k + m - isz;
            if (step.s == 0u) {
                c = state[ld * 2u * hsz + jj];
            } else {
                c = outs[(lane * dims.steps + t_prev) * 2u * dims.dirs * hsz + dir * hsz + jj];
            }
        }
        if (bytes) {
            c = (c & 0xffu) << (8u * m);
        }
        v |= c;
    }
    stage_s[((block * dims.dirs + dir) * width + w) * LB + seq % LB] = v;
}

// `mac4` with the x of the four lanes packed too (one word of four 8-bit codes per lane).
fn mac4b(p: P4, wq: u32, xp: vec4<u32>) -> P4 {
    let x = bitcast<vec4<i32>>(xp);
    let x0 = extractBits(x, 0u, 8u);
    let x1 = extractBits(x, 8u, 8u);
    let x2 = extractBits(x, 16u, 8u);
    let x3 = extractBits(x, 24u, 8u);
    return mac4(p, wq, x0, x1, x2, x3);
}

// A thread of the lane-blocked kernels (`step_lanes*`, and `gates` for policy lanes): workgroup
// w holds units [64 * (w % tiles), +64) of one slab, slab `step.slab0 + w / tiles` (a block of
// LB consecutive sequences of one group, config or policy, in one direction; slabs in the
// order of the stage: group, block, direction), thread `lid` one unit j of them. `ok` is false past
// the last unit or block. The LB = 4 lanes are the components of vec4s (dynamically indexed
// private arrays are spilled to memory by CPU implementations); a short last block repeats
// its last lane where x and h are read from storage, and reads unwritten stage words where
// staged (`n_here` lanes are real; the rest are computed and dropped).
struct Block {
    ok: bool,
    j: u32,
    dir: u32,
    group: u32,
    // the block's index among its group's blocks
    index: u32,
    n_here: u32,
    lanes: vec4<u32>,
}

fn block_of(wid: vec3<u32>, lid: vec3<u32>) -> Block {
    let tiles = (dims.hidden + 63u) / 64u;
    let blocks = (dims.seqs + LB - 1u) / LB;
    let w = wid.x + wid.y * (dims.threads_x / 64u);
    let slab = step.slab0 + w / tiles;
    let j = (w % tiles) * 64u + lid.x;
    let ok = slab < blocks * dims.dirs * (dims.lanes / dims.seqs) && j < dims.hidden;
    let dir = slab % dims.dirs;
    let index = (slab / dims.dirs) % blocks;
    let group = slab / dims.dirs / blocks;
    let n_here = min(LB, dims.seqs - index * LB);
    let lanes = vec4<u32>(group * dims.seqs + index * LB) + min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n_here - 1u));
    return Block(ok, j, dir, group, index, n_here, lanes);
}

fn step_body(wid: vec3<u32>, lid: vec3<u32>, staged: bool) {
    let hsz = dims.hidden;
    let isz = dims.input;
    let blk = block_of(wid, lid);
    if (!blk.ok) {
        return;
    }
    let j = blk.j;
    let dir = blk.dir;
    let cfg = blk.group;
    let cell = cells[cfg * dims.dirs + dir];
    let t = step_t(dir);
    let n_here = blk.n_here;
    let lanes = blk.lanes;
    let xv = (lanes * dims.steps + t) * dims.x_stride;
    let hv = (lanes * dims.dirs + dir) * 2u * hsz;
    // The previous step's h in `outs` ([lane, T, {h, c}, dirs * H]); unused at the first step.
    let first = step.s == 0u;
    var t_prev = t - 1u;
    if (((dims.rev_mask >> dir) & 1u) == 1u) {
        t_prev = t + 1u;
    }
    let ov = (lanes * dims.steps + t_prev) * 2u * dims.dirs * hsz + dir * hsz;
    // Staged: the block's x and previous h in `stage_u`, one vec4 (four lanes) a k (the
    // binding starts at vec4 `step.stage_base` of the stage).
    let sx = ((cfg * ((dims.seqs + LB - 1u) / LB) + blk.index) * dims.dirs + dir) * (isz + hsz) - step.stage_base;
    let sh = sx + isz;
    if (cell.mode == 1u) {
        // Each call is specialised by its constant `staged`, `first` and `how` (compilers
        // drop the other branches), so no inner loop tests them.
        let fw = (cell.fused & 1u) != 0u;
        let fr = (cell.fused & 2u) != 0u;
        let z = vec4<f32>(0.0);
        var p = F4(z, z, z, z);
        if (fw) {
            p = wx_f(p, cell, j, staged, xv, sx, FUSED);
        } else if (x_plain(cell, staged, xv, sx)) {
            p = wx_f(p, cell, j, staged, xv, sx, PLAIN);
        } else {
            p = wx_f(p, cell, j, staged, xv, sx, FLUSHED);
        }
        // (Whichever way W.x ran, its sums are +0 or normal, never -0: R.h continues them.)
        let pr = !fr && h_plain(cell, staged, first, hv, ov, sh);
        if (first && fr) {
            p = rh_f(p, cell, j, staged, true, hv, ov, sh, FUSED);
        } else if (first && pr) {
            p = rh_f(p, cell, j, staged, true, hv, ov, sh, PLAIN);
        } else if (first) {
            p = rh_f(p, cell, j, staged, true, hv, ov, sh, FLUSHED);
        } else if (fr) {
            p = rh_f(p, cell, j, staged, false, hv, ov, sh, FUSED);
        } else if (pr) {
            p = rh_f(p, cell, j, staged, false, hv, ov, sh, PLAIN);
        } else {
            p = rh_f(p, cell, j, staged, false, hv, ov, sh, FLUSHED);
        }
        let g = add_bias(cell, j, p);
        for (var l = 0u; l < n_here; l++) {
            let lane = lanes[l];
            cell_float(cell, lane, lane * dims.dirs + dir, dir, j, g.i[l], g.f[l], g.g[l], g.o[l], false);
        }
        return;
    }
    // Integer lanes: per gate row, four partial sums in a vec4<i32>, summed over chunks of at
    // most `chunk_wx` (`chunk_rh`) products, which cannot overflow, each chunk widened into
    // four 64-bit totals kept as (lo, hi) vec4<u32> pairs (the vector form of i64_from /
    // i64_add). Integer sums are exact, so the grouping does not change the bits; the inner
    // loops have no branch (with 8-bit codes one chunk is longer than any row). Packed cells
    // hold four 8-bit weight codes per word (`mac4`): a quarter of the weight reads.
    let packed = cell.packed != 0u;
    // Staged with packed codes: the stage holds four 8-bit x (h) codes per word too.
    let bytes = staged && cell.packed == 2u;
    let per = select(1u, 4u, packed);
    var tot = t4_zero();
    // Weight words per row of W (R), and weight words per chunk.
    let nx = (isz + per - 1u) / per;
    // (At least 1: a zero chunk, which no valid cell has, would never end the loop.)
    let cx = max(cell.chunk_wx / per, 1u);
    // Codes split in two bytes (`Cell.split`): the high bytes' sums are folded in times 256.
    let split_x = (cell.split & 1u) != 0u;
    let split_h = (cell.split & 2u) != 0u;
    let z4 = P4(vec4<i32>(0), vec4<i32>(0), vec4<i32>(0), vec4<i32>(0));
    for (var q0 = 0u; q0 < nx; q0 += cx) {
        let q1 = min(nx, q0 + cx);
        var p = z4;
        var ph = z4;
        if (split_x) {
            var s = P4x2(z4, z4);
            for (var q = q0; q < q1; q++) {
                s = mac1s(s, cell.w_off / 4u + q * hsz + j, xi4(staged, xv, sx, q));
            }
            p = s.l;
            ph = s.h;
        } else if (bytes) {
            for (var q = q0; q < q1; q++) {
                p = mac4b(p, cell.w_off / 4u + q * hsz + j, stage_u[sx + q]);
            }
        } else if (packed) {
            for (var q = q0; q < q1; q++) {
                let k = 4u * q;
                let e = isz - 1u;
                p = mac4(p, cell.w_off / 4u + q * hsz + j, xi4(staged, xv, sx, k), xi4(staged, xv, sx, min(k + 1u, e)), xi4(staged, xv, sx, min(k + 2u, e)), xi4(staged, xv, sx, min(k + 3u, e)));
            }
        } else {
            for (var q = q0; q < q1; q++) {
                p = mac1(p, cell.w_off / 4u + q * hsz + j, xi4(staged, xv, sx, q));
            }
        }
        tot = widen_chunk(tot, p, ph, split_x);
    }
    // W.x is complete: fold it (shifted) and the bias into the accumulators, then add R.h.
    tot = fold_wx(cell, j, tot);
    let nh = (hsz + per - 1u) / per;
    let ch = max(cell.chunk_rh / per, 1u);
    for (var q0 = 0u; q0 < nh; q0 += ch) {
        let q1 = min(nh, q0 + ch);
        var p = z4;
        var ph = z4;
        let e = hsz - 1u;
        if (split_h && first) {
            var s = P4x2(z4, z4);
            for (var q = q0; q < q1; q++) {
                s = mac1s(s, cell.r_off / 4u + q * hsz + j, hi4(staged, hv, sh, q));
            }
            p = s.l;
            ph = s.h;
        } else if (split_h) {
            var s = P4x2(z4, z4);
            for (var q = q0; q < q1; q++) {
                s = mac1s(s, cell.r_off / 4u + q * hsz + j, oi4(staged, ov, sh, q));
            }
            p = s.l;
            ph = s.h;
        } else if (bytes) {
            for (var q = q0; q < q1; q++) {
                p = mac4b(p, cell.r_off / 4u + q * hsz + j, stage_u[sh + q]);
            }
        } else if (packed && first) {
            for (var q = q0; q < q1; q++) {
                let k = 4u * q;
                p = mac4(p, cell.r_off / 4u + q * hsz + j, hi4(staged, hv, sh, k), hi4(staged, hv, sh, min(k + 1u, e)), hi4(staged, hv, sh, min(k + 2u, e)), hi4(staged, hv, sh, min(k + 3u, e)));
            }
        } else if (packed) {
            for (var q = q0; q < q1; q++) {
                let k = 4u * q;
                p = mac4(p, cell.r_off / 4u + q * hsz + j, oi4(staged, ov, sh, k), oi4(staged, ov, sh, min(k + 1u, e)), oi4(staged, ov, sh, min(k + 2u, e)), oi4(staged, ov, sh, min(k + 3u, e)));
            }
        } else if (first) {
            for (var q = q0; q < q1; q++) {
                p = mac1(p, cell.r_off / 4u + q * hsz + j, hi4(staged, hv, sh, q));
            }
        } else {
            for (var q = q0; q < q1; q++) {
                p = mac1(p, cell.r_off / 4u + q * hsz + j, oi4(staged, ov, sh, q));
            }
        }
        tot = add_rh(cell, j, tot, p, ph, split_h);
    }
    for (var l = 0u; l < n_here; l++) {
        let lane = lanes[l];
        let ai = vec2<u32>(tot.i.lo[l], tot.i.hi[l]);
        let af = vec2<u32>(tot.f.lo[l], tot.f.hi[l]);
        let ag = vec2<u32>(tot.g.lo[l], tot.g.hi[l]);
        let ao = vec2<u32>(tot.o.lo[l], tot.o.hi[l]);
        cell_int(cell, lane, lane * dims.dirs + dir, dir, j, ai, af, ag, ao, false);
    }
}

// Four 64-bit totals (lo, hi words), component-wise: one gate row of four lanes.
struct W64 {
    lo: vec4<u32>,
    hi: vec4<u32>,
}

// The 64-bit totals of the four gate rows (i, f, g, o) of one unit, four lanes each.
struct T4 {
    i: W64,
    f: W64,
    g: W64,
    o: W64,
}

fn t4_zero() -> T4 {
    let z = W64(vec4<u32>(0u), vec4<u32>(0u));
    return T4(z, z, z, z);
}

// Adds one chunk's i32 partial sums of W.x to the totals: `p`, and with `split` (codes split
// into bytes) `ph`, the high bytes' sums, times 256.
fn widen_chunk(t: T4, p: P4, ph: P4, split: bool) -> T4 {
    let r = T4(widen(t.i, p.i), widen(t.f, p.f), widen(t.g, p.g), widen(t.o, p.o));
    if (split) {
        return T4(widen_shl8(r.i, ph.i), widen_shl8(r.f, ph.f), widen_shl8(r.g, ph.g), widen_shl8(r.o, ph.o));
    }
    return r;
}

// W.x of unit j is complete: its totals become the accumulators' first two terms
// (`gate_wx`), to which `add_rh` adds R.h. The 64-bit sums wrap like the CPU's i64 adds, so
// the order of the three terms of the CPU's `int_gate_sum` (src/lstm/eval/cell.rs) does not
// change the bits.
fn fold_wx(cell: Cell, j: u32, t: T4) -> T4 {
    let hsz = dims.hidden;
    return T4(gate_wx(cell, j, t.i), gate_wx(cell, j + hsz, t.f), gate_wx(cell, j + 2u * hsz, t.g), gate_wx(cell, j + 3u * hsz, t.o));
}

// Adds one chunk of R.h partial sums of unit j to its accumulators (`gate_rh`): `p`, and with
// `split` `ph`, the high bytes' sums, shifted 8 more.
fn add_rh(cell: Cell, j: u32, t: T4, p: P4, ph: P4, split: bool) -> T4 {
    let hsz = dims.hidden;
    let r = T4(gate_rh(cell, j, t.i, p.i, 0u), gate_rh(cell, j + hsz, t.f, p.f, 0u), gate_rh(cell, j + 2u * hsz, t.g, p.g, 0u), gate_rh(cell, j + 3u * hsz, t.o, p.o, 0u));
    if (split) {
        return T4(gate_rh(cell, j, r.i, ph.i, 8u), gate_rh(cell, j + hsz, r.f, ph.f, 8u), gate_rh(cell, j + 2u * hsz, r.g, ph.g, 8u), gate_rh(cell, j + 3u * hsz, r.o, ph.o, 8u));
    }
    return r;
}

// Four lanes' W.x totals `w` of gate row `row` become (W.x << (shift_wx + ew)) +
// (b << shift_b), the first two terms of the accumulator (NUMERICS.md section 7, per-row
// shifts of section 3.2; the CPU's `int_gate_sum` in src/lstm/eval/cell.rs).
fn gate_wx(cell: Cell, row: u32, w: W64) -> W64 {
    var ew = 0u;
    if (cell.rs_off != 0xffffffffu) {
        ew = w1(cell.rs_off + row) & 0xffffu;
    }
    let b = i64_shl(i64_from(wi(cell.b_off + row)), cell.shift_b);
    var r = w;
    for (var l = 0u; l < 4u; l++) {
        let a = i64_add(i64_shl(vec2<u32>(w.lo[l], w.hi[l]), cell.shift_wx + ew), b);
        r.lo[l] = a.x;
        r.hi[l] = a.y;
    }
    return r;
}

// Adds four lanes' chunk of R.h products of gate row `row`, shifted by shift_rh (plus the
// row's extra shift, plus `extra`: 8 for the high bytes of split codes), to their 64-bit
// accumulators `w`.
fn gate_rh(cell: Cell, row: u32, w: W64, part: vec4<i32>, extra: u32) -> W64 {
    var er = 0u;
    if (cell.rs_off != 0xffffffffu) {
        er = w1(cell.rs_off + row) >> 16u;
    }
    var r = w;
    for (var l = 0u; l < 4u; l++) {
        let a = i64_add(vec2<u32>(w.lo[l], w.hi[l]), i64_shl(i64_from(part[l]), cell.shift_rh + er + extra));
        r.lo[l] = a.x;
        r.hi[l] = a.y;
    }
    return r;
}

// Partial sums of the four gate rows of one unit, four lanes each, of codes split in two
// (`Cell.split`): `h` of the high bytes, `l` of the low bytes.
struct P4x2 {
    h: P4,
    l: P4,
}

// One k of split codes: x = 256 xh + xl with xh = x >> 8 (signed) and xl = x & 255, so
// w.x = 256 (w.xh) + w.xl, each product about 8 bits narrower than w.x: a chunk of thousands
// of them fits an i32 where one product of two 16-bit codes may not.
fn mac1s(p: P4x2, wq: u32, x: vec4<i32>) -> P4x2 {
    let w = bitcast<vec4<i32>>(w4(wq));
    let xh = x >> vec4<u32>(8u);
    let xl = x & vec4<i32>(255);
    var r = p;
    r.h.i += vec4<i32>(w.x) * xh;
    r.h.f += vec4<i32>(w.y) * xh;
    r.h.g += vec4<i32>(w.z) * xh;
    r.h.o += vec4<i32>(w.w) * xh;
    r.l.i += vec4<i32>(w.x) * xl;
    r.l.f += vec4<i32>(w.y) * xl;
    r.l.g += vec4<i32>(w.z) * xl;
    r.l.o += vec4<i32>(w.w) * xl;
    return r;
}

// Adds four i32 partial sums times 256 to four 64-bit totals, component-wise.
fn widen_shl8(w: W64, part: vec4<i32>) -> W64 {
    let p = bitcast<vec4<u32>>(part);
    let ext = select(vec4<u32>(0u), vec4<u32>(0xffffffffu), part < vec4<i32>(0));
    let sum = w.lo + (p << vec4<u32>(8u));
    let carry = select(vec4<u32>(0u), vec4<u32>(1u), sum < w.lo);
    return W64(sum, w.hi + ((ext << vec4<u32>(8u)) | (p >> vec4<u32>(24u))) + carry);
}

// Adds four i32 partial sums to four 64-bit totals, component-wise.
fn widen(w: W64, part: vec4<i32>) -> W64 {
    let sum = w.lo + bitcast<vec4<u32>>(part);
    let carry = select(vec4<u32>(0u), vec4<u32>(1u), sum < w.lo);
    return W64(sum, w.hi + select(vec4<u32>(0u), vec4<u32>(0xffffffffu), part < vec4<i32>(0)) + carry);
}
