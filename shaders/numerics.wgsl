// LSTM kernels, part 2 of 5 (after lstm.wgsl): exact arithmetic shared by every kernel —
// 64-bit integers as u32 pairs, f32 operations without fusion and with flush-to-zero, the
// number formats of docs/NUMERICS.md section 1, the reproducible exp / sigmoid / tanh of
// section 4 and the activation tables. CPU twins: src/format/, src/lstm/eval/plan.rs.

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

// The same, component-wise on four lanes.
fn ftz4(v: vec4<f32>) -> vec4<f32> {
    return select(v, vec4<f32>(0.0), abs(v) < vec4<f32>(MIN_NORMAL));
}

fn fadd4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return ftz4(a + b);
}

fn fmul4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return ftz4(bitcast<vec4<f32>>(bitcast<vec4<u32>>(a * b) ^ vec4<u32>(dims.zero)));
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
