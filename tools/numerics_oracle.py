#!/usr/bin/env python3
"""The arithmetic of docs/NUMERICS.md in NumPy, written from the text alone (not from src/): the
number formats and their roundings (§1, §2), fraction bits per tensor with the calibration
rules and per-channel weights (§3), activation units (§4), one step on the float and the
integer datapath (§5-7), the dense head (§8, §15) and a float64 reference (§14) that is also
the calibration run. `tools/dynamic_oracle.py` (the package `tools/oracle/`) builds on it; it
is no command itself.

Values are NumPy float32 arrays; fixed-point tensors are int64 codes with their `Fmt`. Every
f32 operation of the float datapath is one NumPy float32 operation followed by `ftz`.
"""
import ctypes
import ctypes.util
import math

import numpy as np

from ranges_oracle import percentile  # §3.1's histogram rule

TINY = 2.0**-126


# ---------------------------------------------------------------- formats (§1, §2)


class Fmt:
    """One number format: fixed point (b, f; f None until resolved), a float e<E>m<M>
    (`fn`: fp8e4m3, no infinities) or fp32."""

    def __init__(self, kind, b=0, f=None, E=0, M=0, fn=False):
        self.kind, self.b, self.f, self.E, self.M, self.fn = kind, b, f, E, M, fn

    def with_f(self, f):
        return Fmt("fx", self.b, f)

    @property
    def bits(self):
        return {"fx": self.b, "fp32": 32}.get(self.kind, 1 + self.E + self.M)

    def __repr__(self):
        if self.kind == "fx":
            return f"fx{self.b}" + ("" if self.f is None else f".{self.f}")
        return "fp32" if self.kind == "fp32" else f"e{self.E}m{self.M}" + ("fn" if self.fn else "")


def parse_format(s):
    s = s.strip().lower()
    named = {"fp16": (5, 10), "bf16": (8, 7), "fp8e5m2": (5, 2)}
    if s == "fp32":
        return Fmt("fp32")
    if s == "fp8e4m3":
        return Fmt("float", E=4, M=3, fn=True)
    if s in named:
        return Fmt("float", E=named[s][0], M=named[s][1])
    if s.startswith("fx"):
        b, _, f = s[2:].partition(".")
        return Fmt("fx", int(b), int(f) if f else None)
    if s.startswith("e"):
        e, m = s[1:].split("m")
        return Fmt("float", E=int(e), M=int(m))
    raise ValueError(s)


def parse_config(s):
    """§2: one format for all roles or role=format pairs (a bare format first is the a
    role); a <- w else p else c, w <- a, p <- c else a, c <- p else a."""
    roles, wscale, rule = {}, "tensor", "max"
    for part in s.split(","):
        k, eq, v = part.partition("=")
        if k.strip() == "wscale":
            wscale = v.strip()
        elif k.strip() == "cal":
            rule = v.strip()
        elif eq:
            roles[k.strip()] = parse_format(v)
        else:
            roles["a"] = parse_format(k)
    roles.setdefault("a", roles.get("w", roles.get("p", roles.get("c"))))
    roles.setdefault("w", roles["a"])
    roles.setdefault("p", roles.get("c", roles["a"]))
    roles.setdefault("c", roles["p"])
    roles["wscale"], roles["cal"] = wscale, rule
    return roles


def f32(v):
    return np.asarray(v, dtype=np.float64).astype(np.float32)


def ftz(v):
    """§5: a subnormal result (and -0) becomes +0."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(np.abs(v) < np.float32(TINY), np.float32(0), v).astype(np.float32)


def float_max(fmt):
    if fmt.fn:
        return 448.0
    emax = 2 ** (fmt.E - 1) - 1
    return float((2 ** (fmt.M + 1) - 1) * 2.0 ** (emax - fmt.M))


def round_float(x, fmt):
    """§1.2 on integers."""
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.int64)
    sign = np.where(bits >> 31, -1.0, 1.0)
    biased = (bits >> 23) & 0xFF
    m = (bits & 0x7FFFFF) | (1 << 23)
    e = biased - 127
    emin = 2 - 2 ** (fmt.E - 1)
    q = np.maximum(e, emin) - fmt.M
    d = np.minimum(23 - fmt.M + np.maximum(0, emin - e), 40)
    fl = m >> d
    rem = m - (fl << d)
    half = np.where(d > 0, np.left_shift(1, np.maximum(d - 1, 0)), 0)
    up = (d > 0) & ((rem > half) | ((rem == half) & (fl & 1 == 1)))
    r = fl + up
    v = r.astype(np.float64) * np.exp2(q.astype(np.float64))
    big = float_max(fmt)
    v = np.minimum(v, big)
    v = np.where(np.isinf(x), big, v)
    v = np.where(v < TINY, 0.0, v)
    v = np.where(biased == 0, 0.0, v)
    out = np.where(v == 0, 0.0, sign * v).astype(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), out)


def sat(n, b):
    return np.clip(n, -(2 ** (b - 1)), 2 ** (b - 1) - 1)


def to_code(x, fmt):
    """§1.1: code = sat_b(RNE(x · 2^f))."""
    return sat(np.rint(np.asarray(x, np.float64) * 2.0**fmt.f), fmt.b).astype(np.int64)


def code_value(c, fmt):
    return (np.asarray(c, np.float64) * 2.0**-fmt.f).astype(np.float32)


def round_to(x, fmt):
    """Round f32 values onto a format, as values (§1, fp32: FTZ only)."""
    if fmt.kind == "fx":
        return code_value(to_code(x, fmt), fmt)
    if fmt.kind == "fp32":
        return ftz(x)
    return round_float(x, fmt)


def rescale(A, s, b):
    """§7: sat_b(RNE(A / 2^s)); s < 0 multiplies exactly."""
    A = np.asarray(A, dtype=np.int64)
    if s <= 0:
        return sat(A << -s, b)
    q = A >> s
    r = A - (q << s)
    half = 1 << (s - 1)
    return sat(q + ((r > half) | ((r == half) & (q & 1 == 1))), b)


def frac_bits(m, b):
    """§3: e = the smallest integer with 2^e >= m (0 for m = 0); f = clamp(b - 1 - e, 0, 30)."""
    e = 0
    if m > 0:
        mant, ex = math.frexp(float(np.float32(m)))
        e = ex - 1 if mant == 0.5 else ex
    return min(max(b - 1 - e, 0), 30)


# ---------------------------------------------------------------- activation units (§4)


def sig64(v):
    return 0.0 if v < -700 else 1.0 / (1.0 + math.exp(-v))


def exp_det(x):
    x = np.clip(x.astype(np.float32), np.float32(-87), np.float32(88))
    k = np.rint(x * np.float32(float.fromhex("0x1.715476p+0")))
    hi, lo = np.float32(float.fromhex("0x1.63p-1")), np.float32(-float.fromhex("0x1.bd0106p-13"))
    r = (x - k * hi) - k * lo
    p = np.float32(1 / 5040) * np.ones_like(r)
    for c in [1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0, 1.0]:
        p = p * r + np.float32(c)
    two_k = ((k.astype(np.int64) + 127) << 23).astype(np.uint32).view(np.float32)
    return (p * two_k).astype(np.float32)


def recip_det(d):
    y = (np.uint32(0x7EF311C3) - d.astype(np.float32).view(np.uint32)).view(np.float32)
    for _ in range(4):
        y = y * (np.float32(2) - d * y)
    return y


def sigmoid_det(x):
    return recip_det(np.float32(1) + exp_det(-np.clip(x, np.float32(-87), np.float32(87))))


def tanh_det(x):
    a = np.abs(x).astype(np.float32)
    a2 = a * a
    t1, t2, t3 = np.float32(-1 / 3), np.float32(2 / 15), np.float32(-17 / 315)
    small = a + a * (a2 * (t1 + a2 * (t2 + a2 * t3)))
    big = np.float32(1) - np.float32(2) * recip_det(
        np.float32(1) + exp_det(np.minimum(np.float32(2) * a, np.float32(87))))
    y = np.where(a < np.float32(0.0625), small, big).astype(np.float32)
    return np.where(x < 0, -y, y).astype(np.float32)


def act(kind, v, fin, fout):
    """Activation unit over input values `v` (already on format fin) into fout, as values."""
    v = np.asarray(v, dtype=np.float32)
    if fin.bits <= 16:
        fn = sig64 if kind == "sig" else math.tanh
        y = np.array([fn(float(t)) for t in v.ravel()], np.float64).reshape(v.shape)
        y = f32(y)
    else:
        y = sigmoid_det(v) if kind == "sig" else tanh_det(v)
    return round_to(y, fout)


# ---------------------------------------------------------------- reference (§14)


def reference(layers, x, dt=np.float64):
    """float64 evaluation; per layer direction the f32 states [N, T, H] and the calibration
    maxima of §3 (x0, h per layer, pre and c per layer direction). `dt=np.longdouble` runs it
    wider, to measure how far the summation order (which §14 leaves open) can move it."""
    sig = lambda v: 1.0 / (1.0 + np.exp(-np.clip(v, -700, 700)))
    inp = x.astype(dt)
    states, cal = [], {"x": float(f32(np.abs(x).max()))}
    vals = {"x": x.ravel()}
    N, T, _ = x.shape
    for l, dirs in enumerate(layers):
        outs, lay, hmax = [], [], 0.0
        for d, L in enumerate(dirs):
            W, R = L["W"].astype(dt), L["R"].astype(dt)
            b = L["bih"].astype(dt) + L["bhh"].astype(dt)
            H = R.shape[1]
            h, c = np.zeros((N, H), dt), np.zeros((N, H), dt)
            hs, cs = np.zeros((N, T, H), dt), np.zeros((N, T, H), dt)
            pmax, cmax, pv, cv = 0.0, 0.0, [], []
            for t in range(T) if d == 0 else range(T - 1, -1, -1):
                a = inp[:, t] @ W.T + h @ R.T + b
                pmax = max(pmax, np.abs(a).max())
                pv.append(f32(a).ravel())
                i, f, g, o = np.split(a, 4, axis=1)
                c = sig(f) * c + sig(i) * np.tanh(g)
                h = sig(o) * np.tanh(c)
                hs[:, t], cs[:, t] = h, c
                cv.append(f32(c).ravel())
                cmax, hmax = max(cmax, np.abs(c).max()), max(hmax, np.abs(h).max())
            cal[("p", l, d)], cal[("c", l, d)] = float(f32(pmax)), float(f32(cmax))
            vals[("p", l, d)], vals[("c", l, d)] = np.concatenate(pv), np.concatenate(cv)
            outs.append(hs)
            lay.append((f32(hs), f32(cs)))
        cal[("h", l)] = float(f32(hmax))
        vals[("h", l)] = np.concatenate([f32(o).ravel() for o in outs])
        states.append(lay)
        inp = np.concatenate(outs, axis=2)
    cal["values"] = vals
    return states, cal, inp


# ---------------------------------------------------------------- levels


def resolve(roles, layers, cal):
    """§3 for one config: per layer direction the formats of every tensor and the weights
    rounded to them (codes for fixed point, else f32 values)."""
    out = []
    for l, dirs in enumerate(layers):
        lay = []
        for d, L in enumerate(dirs):
            b32 = f32(L["bih"]) + f32(L["bhh"])
            T = {"W": L["W"], "R": L["R"], "b": b32}
            fm = {}
            for name, arr in T.items():
                fm[name] = res(roles["w"], float(np.abs(arr).max()))
                if roles["wscale"] == "channel" and name != "b":
                    # §3.2: every row of W and R its own format from its own largest magnitude.
                    rows = [frac_bits(float(np.abs(r).max()), roles["w"].b) for r in arr]
                    fm[name] = roles["w"].with_f(np.array(rows)[:, None])
            m = lambda key: data_range(cal, key, roles["cal"])
            fm["x"] = res(roles["a"], m("x")) if l == 0 else res(roles["a"], m(("h", l - 1)))
            fm["h"] = res(roles["a"], m(("h", l)))
            fm["g"] = res(roles["a"], 1.0)
            fm["p"] = res(roles["p"], m(("p", l, d)))
            fm["c"] = res(roles["c"], m(("c", l, d)))
            lay.append({"fmt": fm, "src": T})
        out.append(lay)
    return out


def data_range(cal, key, rule):
    """§3.1: m of a data-derived tensor under the calibration rule (max or p<q>)."""
    if rule == "max":
        return cal[key]
    return percentile(cal["values"][key], float(rule[1:]))


def res(fmt, m):
    if fmt.kind == "fx" and fmt.f is None:
        return fmt.with_f(frac_bits(m, fmt.b))
    return fmt


def weights_own(level):
    """Weights of a config rounded from the model's f32 values."""
    for lay in level:
        for ld in lay:
            ld["w"] = {k: quant(v, ld["fmt"][k]) for k, v in ld["src"].items()}


def quant(x, fmt):
    return to_code(x, fmt) if fmt.kind == "fx" else round_to(f32(x), fmt)


def nested_levels(configs, layers, cal):
    """§11 nested: the highest level as §3, lower levels fx<b>.<F - (B - b)>, weights the
    highest codes rescaled (RNE, saturating)."""
    top = resolve(configs[-1], layers, cal)
    weights_own(top)
    levels = []
    for roles in configs[:-1]:
        lv = []
        for l, lay in enumerate(top):
            ll = []
            for d, ld in enumerate(lay):
                role = {"W": "w", "R": "w", "b": "w", "x": "a", "h": "a", "g": "a", "p": "p",
                        "c": "c"}
                fm = {}
                for k, F in ld["fmt"].items():
                    b = roles[role[k]].b
                    fm[k] = Fmt("fx", b, F.f - (F.b - b))
                w = {k: rescale(v, ld["fmt"][k].b - fm[k].b, fm[k].b) for k, v in ld["w"].items()}
                ll.append({"fmt": fm, "w": w})
            lv.append(ll)
        levels.append(lv)
    return levels + [top]


def is_nested(configs):
    """§11: every level fixed point, only the highest may give fraction bits."""
    for k, roles in enumerate(configs):
        if roles["wscale"] != "tensor" or roles["cal"] != configs[-1]["cal"]:
            return False
        for f in (roles[r] for r in "wapc"):
            if f.kind != "fx" or (f.f is not None and k < len(configs) - 1):
                return False
    return True


# ---------------------------------------------------------------- one step (§6, §7)


def step(ld, x, h, c):
    """One step of one level for one sequence: x, h, c f32 values (any grid); returns the new
    h and c as f32 values."""
    fm, w = ld["fmt"], ld["w"]
    if all(f.kind == "fx" for f in fm.values()):
        return step_int(fm, w, x, h, c)
    return step_float(fm, w, x, h, c)


def step_int(fm, w, x, h, c):
    xc, hc, cc = to_code(x, fm["x"]), to_code(h, fm["h"]), to_code(c, fm["c"])
    fW, fR, fb, fx, fh = fm["W"].f, fm["R"].f, fm["b"].f, fm["x"].f, fm["h"].f
    # §3.2: per-channel rows shift to the finest row; per tensor these are scalars.
    fW, fR = np.ravel(fW), np.ravel(fR)
    F = int(max(fW.max() + fx, fR.max() + fh, fb))
    A = ((w["W"] @ xc) << (F - fW - fx)) + ((w["R"] @ hc) << (F - fR - fh)) + (w["b"] << (F - fb))
    fp, fg, fc = fm["p"], fm["g"], fm["c"]
    p = rescale(A, F - fp.f, fp.b)
    pv = code_value(p, fp)
    H = len(hc)
    i = to_code(act("sig", pv[:H], fp, fg), fg)
    f = to_code(act("sig", pv[H:2 * H], fp, fg), fg)
    g = to_code(act("tanh", pv[2 * H:3 * H], fp, fg), fg)
    o = to_code(act("sig", pv[3 * H:], fp, fg), fg)
    Fu = max(fg.f + fc.f, 2 * fg.f)
    U = ((f * cc) << (Fu - fg.f - fc.f)) + ((i * g) << (Fu - 2 * fg.f))
    cn = rescale(U, Fu - fc.f, fc.b)
    tc = to_code(act("tanh", code_value(cn, fc), fc, fg), fg)
    hn = rescale(o * tc, 2 * fg.f - fh, fm["h"].b)
    return code_value(hn, fm["h"]), code_value(cn, fc)


def wval(v, fmt):
    return code_value(v, fmt) if fmt.kind == "fx" else v


def step_float(fm, w, x, h, c):
    xq, hq, cq = round_to(x, fm["x"]), round_to(h, fm["h"]), round_to(c, fm["c"])
    W, R, b = wval(w["W"], fm["W"]), wval(w["R"], fm["R"]), wval(w["b"], fm["b"])
    s = np.zeros(W.shape[0], np.float32)
    for k in range(W.shape[1]):
        s = ftz(s + ftz(W[:, k] * xq[k]))
    for k in range(R.shape[1]):
        s = ftz(s + ftz(R[:, k] * hq[k]))
    s = ftz(s + b)
    H = len(hq)
    fp, fg, fc = fm["p"], fm["g"], fm["c"]
    pv = round_to(s, fp)
    i = act("sig", pv[:H], fp, fg)
    f = act("sig", pv[H:2 * H], fp, fg)
    g = act("tanh", pv[2 * H:3 * H], fp, fg)
    o = act("sig", pv[3 * H:], fp, fg)
    cn = round_to(ftz(ftz(f * cq) + ftz(i * g)), fc)
    hn = round_to(ftz(o * act("tanh", cn, fc, fg)), fm["h"])
    return hn, cn


def head_f32(head, h):
    """§8 and §15: y[o] = (Σ_k W[o,k]·h[k]) + bias[o] in plain f32, k order, no flush, then
    §4's f32 sigmoid or a softmax with the row maximum subtracted."""
    Wh, bh, kind = head
    y = np.zeros(h.shape[:2] + (Wh.shape[0],), np.float32)
    for k in range(Wh.shape[1]):
        y = (y + (Wh[:, k] * h[..., k:k + 1]).astype(np.float32)).astype(np.float32)
    y = (y + bh).astype(np.float32)
    if kind == "sigmoid":
        y = sigmoid_det(y)
    elif kind == "softmax":
        e = expf((y - y.max(axis=-1, keepdims=True)).astype(np.float32))
        tot = np.zeros(y.shape[:2] + (1,), np.float32)
        for k in range(y.shape[-1]):
            tot = (tot + e[..., k:k + 1]).astype(np.float32)
        y = (e / tot).astype(np.float32)
    return y


def expf(v):
    """§15: the platform's f32 `exp` (libm's `expf`, as Rust's `f32::exp`), not NumPy's own."""
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        fn = libm.expf
        fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    except (OSError, AttributeError):
        return np.exp(v).astype(np.float32)
    return np.array([fn(float(t)) for t in v.ravel()], np.float32).reshape(v.shape)


def head_f64(head, h):
    Wh, bh, kind = head
    y = h @ Wh.astype(np.float64).T + bh.astype(np.float64)
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-y))
    if kind == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return y
