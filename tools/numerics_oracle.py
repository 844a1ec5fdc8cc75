#!/usr/bin/env python3
"""The arithmetic of docs/NUMERICS.md in NumPy, written from the text alone (not from src/): the
number formats and their roundings (§1, §2), fraction bits per tensor with the calibration
rules (max, p<q>, mse) and per-channel weights (§3), activation units (§4), one step on the
float and the integer datapath (§5-7) with ONNX peepholes, whole layers with initial states and
either direction, the 64-bit accumulator bound (§15), the dense head (§8, §15) and a float64
reference (§14) that is also the calibration run. `tools/dynamic_oracle.py` (the package
`tools/oracle/`) and `tools/numerics_fuzz.py` build on it; it is no command itself.

A model is a list of layers, each a list of directions; a direction is a dict of f32 arrays in
PyTorch's gate order i, f, g, o: `W` [4H, I], `R` [4H, H], `bih`, `bhh` [4H], and optionally
`P` [3H] (peepholes P_i, P_f, P_o: ONNX's i, o, f reordered), `h0`, `c0` [H] (one initial
state for every sequence; zeros if absent) and `rev` (the direction runs t = T-1 .. 0; if
absent, direction 1 of a layer is the reverse one, so a reverse-only layer is one direction
with `rev` True).

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


def initial(L, key):
    """A direction's initial state h0 or c0 as [H] f32 (zeros if the model has none)."""
    v = L.get(key)
    return np.zeros(L["R"].shape[1], np.float32) if v is None else f32(v)


def reverse(L, d):
    return L.get("rev", d == 1)


def reference(layers, x, dt=np.float64):
    """float64 evaluation; per layer direction the f32 states [N, T, H] and the calibration
    maxima of §3 (x0, h per layer with h0, pre-activations with their peephole terms and c with
    c0 per layer direction) and, under `values`, every value §3.1's histograms count (the
    initial state once per direction). `dt=np.longdouble` runs it wider, to measure how far the
    summation order (which §14 leaves open) can move it."""
    sig = lambda v: 1.0 / (1.0 + np.exp(-np.clip(v, -700, 700)))
    inp = x.astype(dt)
    states, cal = [], {"x": float(f32(np.abs(x).max()))}
    vals = {"x": x.ravel()}
    N, T, _ = x.shape
    for l, dirs in enumerate(layers):
        outs, lay, hv = [], [], []
        for d, L in enumerate(dirs):
            W, R = L["W"].astype(dt), L["R"].astype(dt)
            b = L["bih"].astype(dt) + L["bhh"].astype(dt)
            H = R.shape[1]
            P = np.zeros(3 * H, dt) if L.get("P") is None else L["P"].astype(dt)
            h0, c0 = initial(L, "h0"), initial(L, "c0")
            h, c = np.tile(h0.astype(dt), (N, 1)), np.tile(c0.astype(dt), (N, 1))
            hs, cs = np.zeros((N, T, H), dt), np.zeros((N, T, H), dt)
            pv, cv = [], [c0]
            for t in range(T - 1, -1, -1) if reverse(L, d) else range(T):
                a = inp[:, t] @ W.T + h @ R.T + b
                # §6: i and f see c_{t-1} through their peepholes, o sees c_t.
                a[:, :2 * H] += P[:2 * H] * np.tile(c, 2)
                c = sig(a[:, H:2 * H]) * c + sig(a[:, :H]) * np.tanh(a[:, 2 * H:3 * H])
                a[:, 3 * H:] += P[2 * H:] * c
                h = sig(a[:, 3 * H:]) * np.tanh(c)
                hs[:, t], cs[:, t] = h, c
                pv.append(f32(a).ravel())
                cv.append(f32(c).ravel())
            vals[("p", l, d)], vals[("c", l, d)] = np.concatenate(pv), np.concatenate(cv)
            for k in "pc":
                cal[(k, l, d)] = float(np.abs(vals[(k, l, d)]).max())
            outs.append(hs)
            hv += [h0, f32(hs).ravel()]
            lay.append((f32(hs), f32(cs)))
        vals[("h", l)] = np.concatenate(hv)
        cal[("h", l)] = float(np.abs(vals[("h", l)]).max())
        states.append(lay)
        inp = np.concatenate(outs, axis=2)
    cal["values"] = vals
    return states, cal, inp


# ---------------------------------------------------------------- levels


def resolve(roles, layers, cal):
    """§3 for one config: per layer direction the formats of every tensor (`fmt`), the model's
    tensors (`src`), its initial state and direction; `weights_own` rounds the weights."""
    out = []
    for l, dirs in enumerate(layers):
        lay = []
        for d, L in enumerate(dirs):
            b32 = f32(L["bih"]) + f32(L["bhh"])
            T = {"W": L["W"], "R": L["R"], "b": b32}
            if L.get("P") is not None:
                T["P"] = L["P"]  # §2: peepholes are weights, resolved per tensor (§3, §3.2)
            fm = {}
            for name, arr in T.items():
                fm[name] = res(roles["w"], float(np.abs(arr).max()))
                if roles["wscale"] == "channel" and name in ("W", "R"):
                    # §3.2: every row of W and R its own format from its own largest magnitude;
                    # b and P stay per tensor.
                    rows = [frac_bits(float(np.abs(r).max()), roles["w"].b) for r in arr]
                    fm[name] = roles["w"].with_f(np.array(rows)[:, None])
            m = lambda fmt, key: data_fmt(fmt, cal, key, roles["cal"])
            fm["x"] = m(roles["a"], "x" if l == 0 else ("h", l - 1))
            fm["h"] = m(roles["a"], ("h", l))
            fm["g"] = res(roles["a"], 1.0)
            fm["p"] = m(roles["p"], ("p", l, d))
            fm["c"] = m(roles["c"], ("c", l, d))
            lay.append({"fmt": fm, "src": T, "h0": initial(L, "h0"), "c0": initial(L, "c0"),
                        "rev": reverse(L, d)})
        out.append(lay)
    return out


def data_range(cal, key, rule):
    """§3.1: m of a data-derived tensor under the calibration rule max or p<q>."""
    if rule == "max":
        return cal[key]
    return percentile(cal["values"][key], float(rule[1:]))


def data_fmt(fmt, cal, key, rule):
    """§3, §3.1: the format of a data-derived tensor; `mse` picks the fraction bits itself."""
    if fmt.kind == "fx" and fmt.f is None and rule == "mse":
        return fmt.with_f(mse_frac(cal["values"][key], fmt.b, cal[key]))
    return res(fmt, data_range(cal, key, "max" if rule == "mse" else rule))


def mse_frac(values, b, mx):
    """§3.1 `cal=mse`: over the histogram of |v| (bin 0 left out), each bin at its midpoint
    capped at the maximum, the f in f_max ..= min(f_max + 8, 30) with the least Σ count ·
    (q_f(v) - v)^2, summed in bin order in f64; ties keep the smaller f."""
    a = np.abs(np.asarray(values, np.float64)).astype(np.float32)
    keys = (a.view(np.uint32) >> 15).astype(np.int64) & 0xFFFF
    counts = np.bincount(keys[keys > 0], minlength=65536)
    fmax = frac_bits(mx, b)
    bins = np.nonzero(counts)[0]
    mids = ((bins << 15) | (1 << 14)).astype(np.uint32).view(np.float32).astype(np.float64)
    mids = np.minimum(mids, float(np.float32(mx)))
    best, best_f = None, fmax
    for f in range(fmax, min(fmax + 8, 30) + 1):
        q = np.minimum(np.rint(mids * 2.0**f), 2 ** (b - 1) - 1) * 2.0**-f
        err = 0.0
        for n, e in zip(counts[bins], (q - mids) ** 2):
            err += float(n) * float(e)
        if best is None or err < best:
            best, best_f = err, f
    return best_f


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
                role = {"W": "w", "R": "w", "b": "w", "P": "w", "x": "a", "h": "a", "g": "a",
                        "p": "p", "c": "c"}
                fm = {}
                for k, F in ld["fmt"].items():
                    b = roles[role[k]].b
                    fm[k] = Fmt("fx", b, F.f - (F.b - b))
                w = {k: rescale(v, ld["fmt"][k].b - fm[k].b, fm[k].b) for k, v in ld["w"].items()}
                ll.append({"fmt": fm, "w": w, "rev": ld["rev"]})
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
    fp, fg, fc = fm["p"], fm["g"], fm["c"]
    peep = "P" in w
    F = int(max([fW.max() + fx, fR.max() + fh, fb] + ([fm["P"].f + fc.f] if peep else [])))
    A = ((w["W"] @ xc) << (F - fW - fx)) + ((w["R"] @ hc) << (F - fR - fh)) + (w["b"] << (F - fb))
    H = len(hc)
    if peep:  # §7: A_i, A_f += P·c_{t-1} · 2^(F - f_P - f_c); A_o below with c_t
        sP = F - fm["P"].f - fc.f
        A[:2 * H] += (w["P"][:2 * H] * np.tile(cc, 2)) << sP
    pv = code_value(rescale(A[:3 * H], F - fp.f, fp.b), fp)
    i = to_code(act("sig", pv[:H], fp, fg), fg)
    f = to_code(act("sig", pv[H:2 * H], fp, fg), fg)
    g = to_code(act("tanh", pv[2 * H:3 * H], fp, fg), fg)
    Fu = max(fg.f + fc.f, 2 * fg.f)
    U = ((f * cc) << (Fu - fg.f - fc.f)) + ((i * g) << (Fu - 2 * fg.f))
    cn = rescale(U, Fu - fc.f, fc.b)
    Ao = A[3 * H:] + (((w["P"][2 * H:] * cn) << sP) if peep else 0)
    o = to_code(act("sig", code_value(rescale(Ao, F - fp.f, fp.b), fp), fp, fg), fg)
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
    P = wval(w["P"], fm["P"]) if "P" in w else None
    if P is not None:  # §6: a_i, a_f += P·c_{t-1} (one f32 product, one sum, each flushed)
        s[:2 * H] = ftz(s[:2 * H] + ftz(P[:2 * H] * np.tile(cq, 2)))
    pv = round_to(s[:3 * H], fp)
    i = act("sig", pv[:H], fp, fg)
    f = act("sig", pv[H:2 * H], fp, fg)
    g = act("tanh", pv[2 * H:3 * H], fp, fg)
    cn = round_to(ftz(ftz(f * cq) + ftz(i * g)), fc)
    ao = s[3 * H:] if P is None else ftz(s[3 * H:] + ftz(P[2 * H:] * cn))  # o sees c_t
    o = act("sig", round_to(ao, fp), fp, fg)
    hn = round_to(ftz(o * act("tanh", cn, fc, fg)), fm["h"])
    return hn, cn


def evaluate(level, x):
    """A whole model at one resolved level (`resolve` + `weights_own`) over x [N, T, I]: each
    direction from its initial state rounded to the h and c formats (§3), t backwards for a
    reverse direction (§6), layer l + 1 reading layer l's directions side by side. Returns per
    layer direction (hs, cs) [N, T, H] and the last layer's output [N, T, D·H]."""
    N, T, _ = x.shape
    inp = x.astype(np.float32)
    states = []
    for lay in level:
        st = []
        for ld in lay:
            H = len(ld["h0"])
            hs, cs = np.zeros((N, T, H), np.float32), np.zeros((N, T, H), np.float32)
            for n in range(N):
                h, c = round_to(ld["h0"], ld["fmt"]["h"]), round_to(ld["c0"], ld["fmt"]["c"])
                for t in range(T - 1, -1, -1) if ld["rev"] else range(T):
                    h, c = step(ld, inp[n, t], h, c)
                    hs[n, t], cs[n, t] = h, c
            st.append((hs, cs))
        states.append(st)
        inp = np.concatenate([hs for hs, _ in st], axis=2)
    return states, inp


def accumulator_refused(level):
    """§15: whether the 64-bit bound of §7 refuses this level (integer layer directions only):
    the gate sums' worst case with the largest per-row extra of §3.2, or the cell update's,
    not below 2^62 (in f64)."""
    for lay in level:
        for ld in lay:
            fm, w = ld["fmt"], ld["w"]
            if not all(f.kind == "fx" for f in fm.values()):
                continue
            I, H = w["W"].shape[1], w["R"].shape[1]
            fW, fR = np.ravel(fm["W"].f), np.ravel(fm["R"].f)
            fx, fh, fb, fc, fp, fg = (fm[k].f for k in "xhbcpg")
            peep = "P" in w
            F = int(max([fW.max() + fx, fR.max() + fh, fb] + ([fm["P"].f + fc] if peep else [])))
            wd = max(fp - F, 0)
            tot = (I * 2.0 ** (fm["W"].b + fm["x"].b - 2 + F - int(fW.min()) - fx + wd)
                   + H * 2.0 ** (fm["R"].b + fm["h"].b - 2 + F - int(fR.min()) - fh + wd)
                   + 2.0 ** (fm["b"].b - 1 + F - fb + wd))
            if peep:
                tot += 2.0 ** (fm["P"].b + fm["c"].b - 2 + F - fm["P"].f - fc + wd)
            Fu = max(fg + fc, 2 * fg)
            cell = (2.0 ** (fm["g"].b + fm["c"].b - 2 + Fu - fg - fc)
                    + 2.0 ** (2 * fm["g"].b - 2 + Fu - 2 * fg))
            if not (tot < 2.0**62 and cell < 2.0**62):
                return True
    return False


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
