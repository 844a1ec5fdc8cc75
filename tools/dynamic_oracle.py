#!/usr/bin/env python3
"""An outside check of `lstm-dse dynamic`, written from docs/NUMERICS.md §1-7, §11, §11.1, §14,
§15 and docs/OUTPUTS.md only (not from src/dynamic/).

Usage:  python3 tools/dynamic_oracle.py [--bin target/release/lstm-dse] [--cases 60] [--seed 0]
                                        [--device cpu|gpu] [--mutate NAME]

Each case writes a random safetensors LSTM (1-2 layers, some bidirectional, H and I small and
mostly not powers of two), a random input, and runs `dynamic` with a random level set (nested
fixed point: `fx8,fx16`, `fx4,fx8,fx12`, role configs; any other set: float formats, mixed
configs, fp32, explicit fraction bits at a lower level), metric, timing, starting level and a
threshold list with 0, +inf and ties (thresholds equal to a metric value the run reaches),
with `--trace-policy` for every policy. The oracle simulates every policy itself:

* formats resolved as §3 from a float64 reference (§14) computed here (max rule only);
* the integer step of §7 on codes (nested levels and integer levels of any set), the float step
  of §6 with every f32 operation flushed (§5), activation units of §4 (f64 libm `exp`/`tanh`
  for inputs of at most 16 bits, the reproducible f32 functions otherwise), rounding of §1;
* nested sets: lower formats `fx<b>.<F - (B - b)>`, weights the highest codes rounded down,
  state in the highest formats, metric compared on integers; other sets: every level its own
  config, state as f32 values, metric in f32 (§11.1);
* causal / oracle timing, the starting level, levels per layer and direction, closed loop.

Levels, level fractions, switches and the trace's levels and metrics are compared exactly;
the error columns (against a float64 reference whose summation order the docs leave open)
within 1e-6 relative. `--mutate` runs a deliberately wrong copy (`lt`: a threshold is reached
when the metric is > rather than >=; `prevstep`: the metric is taken from the step before) to
show that the check can fail. Needs numpy only. Exit status 1 if any case disagrees.

Assumptions where the docs are open (each stated in the report and, once settled, in
NUMERICS.md): layer 0's input at a lower nested level is the f32 input rounded directly to that
level's x format; for `oracle` timing the trace's `delta_c_metric` is the metric of the
highest-level run (the one that picks the level); `frac_last_level` is the last step in the
direction's own order; `switches_per_1000_steps` = level changes between consecutive steps of
one (sequence, layer, direction), over all steps, times 1000.
"""
import argparse
import csv
import math
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from groups_oracle import write_safetensors  # noqa: E402 (the same file format)
from ranges_oracle import percentile  # noqa: E402 (§3.1's histogram rule)

TINY = 2.0**-126
MUTATE = ""
STATS = {}


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
    """§2: one format for all roles or role=format pairs; w <- a, a <- w, p <- c else a,
    c <- p else a."""
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
            roles = {r: parse_format(k) for r in "wapc"}
    roles.setdefault("w", roles.get("a"))
    roles.setdefault("a", roles["w"])
    roles.setdefault("p", roles.get("c", roles["a"]))
    roles.setdefault("c", roles.get("p", roles["a"]))
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


def reference(layers, x):
    """float64 evaluation; per layer direction the f32 states [N, T, H] and the calibration
    maxima of §3 (x0, h per layer, pre and c per layer direction)."""
    sig = lambda v: 1.0 / (1.0 + np.exp(-np.clip(v, -700, 700)))
    inp = x.astype(np.float64)
    states, cal = [], {"x": float(f32(np.abs(x).max()))}
    vals = {"x": x.ravel()}
    N, T, _ = x.shape
    for l, dirs in enumerate(layers):
        outs, lay, hmax = [], [], 0.0
        for d, L in enumerate(dirs):
            W, R = L["W"].astype(np.float64), L["R"].astype(np.float64)
            b = L["bih"].astype(np.float64) + L["bhh"].astype(np.float64)
            H = R.shape[1]
            h, c = np.zeros((N, H)), np.zeros((N, H))
            hs, cs = np.zeros((N, T, H)), np.zeros((N, T, H))
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


# ---------------------------------------------------------------- metric (§11, §11.1)


def f32_up(v):
    """⌈v⌉₃₂: the smallest f32 >= v (0 for v <= 0, +inf above the largest f32)."""
    if v <= 0:
        return np.float32(0)
    r = np.float32(v)
    if float(r) < v:
        r = np.nextafter(r, np.float32(np.inf))
    return r


def f32_down(v):
    r = np.float32(v)
    if float(r) > v:
        r = np.nextafter(r, np.float32(-np.inf))
    return r


class Metric:
    def __init__(self, spec):
        self.spec = spec
        self.name, _, arg = spec.partition(":")
        self.arg = float(arg) if arg else None

    def code(self, cn, cp, fc, H):
        """Nested: on codes of the highest c format. Returns (value, reaches(theta))."""
        D = np.abs(to_code(cn, fc) - to_code(cp, fc))
        f = fc.f
        n = self.name
        if n == "max_abs":
            m = int(D.max())
            return m * 2.0**-f, lambda th: m >= math.ceil(th * 2.0**f)
        if n == "mean_abs":
            s = int(D.sum())
            return s / H * 2.0**-f, lambda th: s >= math.ceil(th * 2.0**f * H)
        if n == "frac_above":
            cnt = int((D > math.floor(self.arg * 2.0**f)).sum())
            return cnt / H, lambda th: cnt >= math.ceil(th * H)
        Dm, C = int(D.max()), int(np.abs(to_code(cp, fc)).max())
        E = np.float32(self.arg * 2.0**f)
        val = (Dm * 2.0**-f) / (C * 2.0**-f + float(np.float32(self.arg)))
        return val, lambda th: rel_reach(np.float32(Dm), np.float32(C), E, th)

    def value(self, cn, cp, H):
        """Any other set: on the f32 values."""
        d = np.abs(ftz(cn - cp))
        n = self.name
        if n == "max_abs":
            m = d.max()
            return float(m), lambda th: m >= f32_up(th)
        if n == "mean_abs":
            s = np.float32(0)
            for v in d:
                s = ftz(s + v)
            s = np.float32(s)
            return float(s) / H, lambda th: s >= f32_up(th * H)
        if n == "frac_above":
            cnt = int((d > f32_down(self.arg)).sum())
            return cnt / H, lambda th: cnt >= math.ceil(th * H)
        D, C, E = d.max(), np.abs(cp).max(), np.float32(self.arg)
        return float(D) / (float(C) + float(E)), lambda th: rel_reach(D, C, E, th)


def rel_reach(D, C, E, th):
    if th <= 0:
        return True
    if th == math.inf:
        return False
    tp = max(np.float32(th), np.float32(TINY))
    return bool(D > 0 and D >= ftz(tp * ftz(np.float32(C) + E)))


def reached(reaches, th):
    """A step reaches θ when its metric is >= θ; θ <= 0 always, +inf never. The `lt`
    mutation asks for > instead (reaching the next f64 above θ)."""
    if th <= 0:
        return True
    if th == math.inf:
        return False
    if MUTATE == "lt":
        return reaches(float(np.nextafter(th, math.inf)))
    return reaches(th)


# ---------------------------------------------------------------- a policy run


def simulate(levels, nested, metric, timing, start, thresholds, x, Ls):
    """Levels and states per (n, l, d, t), closed loop. Returns per layer direction the
    level [N, T], metric [N, T], h and c [N, T, H]."""
    N, T, _ = x.shape
    K = len(levels)
    inp = x.astype(np.float32)
    out = []
    for l in range(Ls):
        lay, outs = [], []
        D = len(levels[-1][l])
        for d in range(D):
            H = levels[-1][l][d]["w"]["R"].shape[1]
            fc_top = levels[-1][l][d]["fmt"]["c"]
            lv = np.zeros((N, T), int)
            mv = np.zeros((N, T))
            hs, cs = np.zeros((N, T, H), np.float32), np.zeros((N, T, H), np.float32)
            order = list(range(T)) if d == 0 else list(range(T - 1, -1, -1))
            for n in range(N):
                h, c = np.zeros(H, np.float32), np.zeros(H, np.float32)
                nxt = {"high": K - 1, "low": 0}.get(start, None)
                nxt = int(start) if nxt is None else nxt
                prev_metric = None
                for t in order:
                    def run(k):
                        hn, cn = step(levels[k][l][d], inp[n, t], h, c)
                        if nested:
                            val, r = metric.code(cn, c, fc_top, H)
                        else:
                            val, r = metric.value(cn, c, H)
                        return hn, cn, val, r
                    if timing == "causal":
                        k = nxt
                        hn, cn, val, r = run(k)
                    else:
                        hn, cn, val, r = run(K - 1)
                        k = sum(reached(r, th) for th in thresholds)
                        if k < K - 1:
                            hn, cn, val, _ = run(k)
                    if MUTATE == "prevstep" and prev_metric is not None:
                        val, r, prev_metric = prev_metric[0], prev_metric[1], (val, r)
                    else:
                        prev_metric = (val, r)
                    nxt = sum(reached(r, th) for th in thresholds)
                    lv[n, t], mv[n, t] = k, val
                    hs[n, t], cs[n, t] = hn, cn
                    h, c = hn, cn
            lay.append((lv, mv, hs, cs))
            outs.append(hs)
        out.append(lay)
        inp = np.concatenate(outs, axis=2)
    return out


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
        e = np.exp((y - y.max(axis=-1, keepdims=True)).astype(np.float32)).astype(np.float32)
        tot = np.zeros(y.shape[:2] + (1,), np.float32)
        for k in range(y.shape[-1]):
            tot = (tot + e[..., k:k + 1]).astype(np.float32)
        y = (e / tot).astype(np.float32)
    return y


def head_f64(head, h):
    Wh, bh, kind = head
    y = h @ Wh.astype(np.float64).T + bh.astype(np.float64)
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-y))
    if kind == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return y


def task(y, labels):
    """Accuracy (arg-max equals the label) and mean -log2 p(label), p floored at 2^-100, over
    the labelled steps: the last step for labels [N], every step for [N, T]."""
    if labels.ndim == 1:
        y = y[:, -1:]
        labels = labels[:, None]
    lab = labels.astype(np.int64)
    acc = float((y.argmax(axis=-1) == lab).mean())
    p = np.take_along_axis(y.astype(np.float64), lab[..., None], axis=-1)[..., 0]
    bits = float(np.mean(-np.log2(np.maximum(p, 2.0**-100))))
    return acc, bits


def errors(a, b):
    """OUTPUTS.md: per row the sum of d² and the max of d, d = |a - b| in f64."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return (d * d).sum(axis=-1), d.max(axis=-1)


def expected(sim, ref, K, head=None, ref_out=None, labels=None):
    """Every policies.csv column this oracle computes, and the trace rows."""
    rows, trace = {}, []
    levels_all, per_layer = [], {}
    first, last = [], []
    switches, steps = 0, 0
    hsum = hmax = csum = cmax = 0.0
    nvals = 0
    for l, lay in enumerate(sim):
        for d, (lv, mv, hs, cs) in enumerate(lay):
            N, T = lv.shape
            order = list(range(T)) if d == 0 else list(range(T - 1, -1, -1))
            hs2, hm = errors(hs, ref[l][d][0])
            cs2, cm = errors(cs, ref[l][d][1])
            hsum, csum = hsum + hs2.sum(), csum + cs2.sum()
            hmax, cmax = max(hmax, hm.max()), max(cmax, cm.max())
            nvals += hs.size
            for n in range(N):
                seq = [lv[n, t] for t in order]
                first.append(seq[0])
                last.append(seq[-1])
                switches += sum(a != b for a, b in zip(seq, seq[1:]))
                steps += T
                for t in range(T):
                    trace.append(((n, l, d, t), mv[n, t], lv[n, t], hm[n, t], cm[n, t]))
            levels_all.append(lv.ravel())
            per_layer.setdefault(l, []).append(lv.ravel())
    allv = np.concatenate(levels_all)
    for k in range(K):
        rows[f"frac_level_{k}"] = (allv == k).mean()
        for l, v in per_layer.items():
            rows[f"frac_l{l}_level_{k}"] = (np.concatenate(v) == k).mean()
        rows[f"frac_first_level_{k}"] = np.mean(np.array(first) == k)
        rows[f"frac_last_level_{k}"] = np.mean(np.array(last) == k)
    rows["switches_per_1000_steps"] = switches / steps * 1000
    rows["hidden_rmse"] = math.sqrt(hsum / nvals)
    rows["hidden_max_abs"] = hmax
    rows["cell_rmse"] = math.sqrt(csum / nvals)
    rows["cell_max_abs"] = cmax
    if head is not None:
        y = head_f32(head, np.concatenate([hs for (_, _, hs, _) in sim[-1]], axis=2))
        yr = head_f64(head, ref_out)
        # OUTPUTS.md: against the reference's output as f32, as the states are.
        d = np.abs(y.astype(np.float64) - f32(yr).astype(np.float64))
        rows["output_rmse"] = math.sqrt((d * d).sum() / d.size)
        rows["output_max_abs"] = d.max()
        # The reference's head sums in an order the docs leave open: a few f32 ulps of the
        # outputs' magnitude.
        rows["output_tolerance"] = 4e-7 * max(1.0, float(np.abs(yr).max()))
        if y.shape[-1] >= 2:
            rows["top1_agreement"] = float((y.argmax(-1) == yr.argmax(-1)).mean())
        if labels is not None:
            rows["reference_task_accuracy"], rows["reference_task_bits"] = task(yr, labels)
            rows["task_accuracy"], rows["task_bits"] = task(y, labels)
    return rows, sorted(trace)


EXACT = ("frac_", "switches")


def close(got, want, exact):
    if exact:
        return got == want or abs(got - want) <= 1e-12 * max(1.0, abs(want))
    return abs(got - want) <= 1e-6 * abs(want) + 1e-9


# ---------------------------------------------------------------- cases


LEVEL_SETS = [
    ("fx8,fx16", True), ("fx4,fx8,fx12", True), ("fx6,fx16", True), ("fx8,fx12.9", True),
    ("w=fx8,a=fx8,c=fx12;w=fx12,a=fx12,c=fx16", True), ("fx3,fx5,fx7,fx9", True),
    ("w=fx6,a=fx8;w=fx8,a=fx10,p=fx12,c=fx14", True),
    ("fp8e4m3,fp16", False), ("fx8;bf16;fp32", False), ("fx8.5;fx16", False),
    ("fp8e5m2;e5m6;fp32", False), ("fx8;w=fx8,a=fp16,c=fp32", False), ("bf16;fp32", False),
    ("fx6;fx12.8", True), ("e4m3;fp16", False), ("fx4,fx12.2", True), ("fx2,fx16.0", True),
    ("fx3,fx8.10", True), ("fx2,fx3", True), ("fx5.4;fx9", False), ("fp8e4m3;fx12", False),
    ("fx8,wscale=channel;fx16", False), ("fx6,wscale=channel;fx10,wscale=channel;fp32", False),
    ("fp8e4m3;fx12,wscale=channel", False), ("fx4;w=fx8,a=fx8,wscale=channel", False),
    ("fx8,cal=p99;fx16,cal=p99", True), ("fx6,cal=p90;fx8,cal=p90;fx12,cal=p90", True),
    ("fx8,cal=p99;fx16", False), ("fp16;fx12,cal=p95", False),
]
METRICS = ["max_abs", "mean_abs", "frac_above:0.01", "frac_above:0", "rel_max_abs:0.01",
           "rel_max_abs:1e-6", "mean_abs", "max_abs"]


def model(rng, g):
    I, H = rng.choice([1, 3, 5, 6, 7]), rng.choice([1, 3, 5, 6, 7])
    L, D = rng.choice([1, 1, 2]), 2 if rng.random() < 0.4 else 1
    wscale = rng.choice([0.3, 0.7, 1.5, 3.0])
    tensors, layers, width = {}, [], I
    for l in range(L):
        dirs = []
        for d in range(D):
            L_ = {"W": (g.standard_normal((4 * H, width)) * wscale).astype(np.float32),
                  "R": (g.standard_normal((4 * H, H)) * wscale).astype(np.float32),
                  "bih": (g.standard_normal(4 * H) * 0.3).astype(np.float32),
                  "bhh": (g.standard_normal(4 * H) * 0.3).astype(np.float32)}
            suffix = "_reverse" if d else ""
            for k, name in [("W", "weight_ih"), ("R", "weight_hh"), ("bih", "bias_ih"),
                            ("bhh", "bias_hh")]:
                tensors[f"lstm.{name}_l{l}{suffix}"] = L_[k]
            dirs.append(L_)
        layers.append(dirs)
        width = H * D
    head = None
    if rng.random() < 0.5:
        O = rng.choice([1, 2, 3, 4])
        kind = rng.choice(["none", "sigmoid", "softmax"] if O > 1 else ["none", "sigmoid"])
        head = ((g.standard_normal((O, width)) * 0.8).astype(np.float32),
                (g.standard_normal(O) * 0.2).astype(np.float32), kind)
        tensors["fc.weight"], tensors["fc.bias"] = head[0], head[1]
    return I, H, L, D, tensors, layers, head


def fmt_num(v):
    return "inf" if v == math.inf else repr(float(v))


def run_dynamic(binary, tmp, mp, xp, levels, metric, timing, start, ths, device, trace, extra):
    """One `dynamic` run over every policy, tracing policy `trace`."""
    out = tmp / "out"
    cmd = [binary, "dynamic", "--model", str(mp), "--input", str(xp), "--levels", levels,
           "--metric", metric, "--timing", timing, "--start", start,
           "--thresholds", ",".join("/".join(fmt_num(t) for t in th) for th in ths),
           "--out", str(out), "--quiet", "--device", device, "--trace-policy", str(trace)] + extra
    return subprocess.run(cmd, capture_output=True, text=True), out


def case(rng, tmp, binary, device):
    g = np.random.default_rng(rng.randrange(2**32))
    I, H, L, D, tensors, layers, head = model(rng, g)
    N, T = rng.choice([1, 2, 3]), rng.choice([1, 4, 7, 10])
    x = (g.standard_normal((N, T, I)) * rng.choice([0.5, 1.0, 3.0])).astype(np.float32)
    if rng.random() < 0.3:
        # Just off the midpoints of a coarse grid: rounding once and rounding through a finer
        # format first differ here.
        q = 2.0 ** rng.randrange(2, 8)
        off = g.choice([-1, 1], x.shape) * 2.0**-rng.randrange(9, 13)
        x = ((np.floor(x * q) + 0.5 + off) / q).astype(np.float32)
    spec, nested = rng.choice(LEVEL_SETS)
    metric = Metric(rng.choice(METRICS))
    timing = rng.choice(["causal", "oracle"])
    configs = [parse_config(s) for s in spec.replace(";", " ").split()] if ";" in spec else \
        [parse_config(s) for s in spec.split(",")]
    K = len(configs)
    start = rng.choice(["high", "low", str(rng.randrange(K))])
    what = f"I={I} H={H} L={L} D={D} N={N} T={T} {spec} {metric.spec} {timing} start={start}"
    if head is not None:
        what += f" head {head[0].shape[0]} {head[2]}"
    mp, xp = tmp / "m.safetensors", tmp / "x.npy"
    write_safetensors(mp, tensors)
    np.save(xp, x)
    ref, cal, ref_out = reference(layers, x)
    extra, labels = [], None
    if head is not None:
        extra = ["--head", "fc", "--head-activation", head[2]]
        if head[2] == "softmax":
            O = head[0].shape[0]
            shape = (N,) if rng.random() < 0.5 else (N, T)
            labels = g.integers(0, O, shape).astype(np.float32)
            np.save(tmp / "y.npy", labels)
            extra += ["--labels", str(tmp / "y.npy")]
    if nested != is_nested(configs):
        return what, [f"the oracle's table says nested={nested}"]
    if nested:
        levels = nested_levels(configs, layers, cal)
    else:
        levels = [resolve(r, layers, cal) for r in configs]
        for lv in levels:
            weights_own(lv)
    # Thresholds: 0, +inf, ties with metric values the all-high run reaches, random.
    probe = simulate(levels, nested, metric, "causal", "high", [0.0] * (K - 1), x, L)
    seen = sorted({float(v) for lay in probe for (_, mv, _, _) in lay for v in mv.ravel()})
    pool = [0.0, math.inf] + seen[:: max(1, len(seen) // 6)] + [rng.uniform(0, 0.2)]
    ths = [[0.0] * (K - 1), [math.inf] * (K - 1)]
    for _ in range(5):
        ths.append(sorted(rng.choice(pool) for _ in range(K - 1)))
    if K > 2 and seen:
        tie = rng.choice(seen)
        ths.append([tie] * (K - 1))
    got, traces = None, []
    for k in range(len(ths)):
        p, out = run_dynamic(binary, tmp, mp, xp, spec, metric.spec, timing, start, ths, device, k,
                             extra)
        if p.returncode:
            return what, [f"dynamic exit {p.returncode}: {p.stderr.strip()}"]
        text = (out / "policies.csv").read_text()
        if got is not None and text != got:
            return what, ["policies.csv changed between runs that differ only in --trace-policy"]
        got = text
        traces.append(list(csv.DictReader(open(out / f"policy_{k}_trace.csv"))))
    got = list(csv.DictReader(got.splitlines()))
    problems = []
    if len(got) != len(ths):
        return what, [f"{len(got)} policies, {len(ths)} threshold lists"]
    for k, th in enumerate(ths):
        sim = simulate(levels, nested, metric, timing, start, th, x, L)
        want, trace = expected(sim, ref, K, head, ref_out, labels)
        row = got[k]
        gth = [float(v) for v in row["thresholds"].split("|")]
        if gth != [float(v) for v in th]:
            problems.append(f"policy {k}: thresholds {row['thresholds']}, given {th}")
        tol = want.pop("output_tolerance", None)
        for col, v in want.items():
            if col.startswith("output_") and col in row and abs(float(row[col]) - v) <= tol:
                continue
            if col not in row:
                problems.append(f"policy {k}: no column {col}")
            elif not close(float(row[col]), v, col.startswith(EXACT)):
                problems.append(f"policy {k} {th}: {col} = {row[col]}, the oracle says {v}")
        rows = traces[k]
        STATS["policies"] += 1
        STATS["mixed"] += sum(0 < v < 1 for c, v in want.items() if c.startswith("frac_level"))> 0
        STATS["rows"] += len(rows)
        keyed = sorted((tuple(int(r[c]) for c in ["sequence", "layer", "direction", "step"]), r)
                       for r in rows)
        if len(keyed) != len(trace):
            problems.append(f"policy {k}: trace has {len(keyed)} rows, the oracle {len(trace)}")
            continue
        for (key, r), (wkey, mv, lv, hm, cm) in zip(keyed, trace):
            bad = []
            if key != wkey:
                bad.append(f"row {key} vs {wkey}")
            if int(r["level"]) != lv:
                bad.append(f"level {r['level']} vs {lv}")
            if not close(float(r["delta_c_metric"]), mv, True):
                bad.append(f"delta_c_metric {r['delta_c_metric']} vs {mv!r}")
            if not close(float(r["hidden_max_abs"]), hm, False):
                bad.append(f"hidden_max_abs {r['hidden_max_abs']} vs {hm!r}")
            if not close(float(r["cell_max_abs"]), cm, False):
                bad.append(f"cell_max_abs {r['cell_max_abs']} vs {cm!r}")
            if bad:
                problems.append(f"policy {k} {th} trace {key}: " + "; ".join(bad))
                break
    return what, problems


def main():
    global MUTATE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/lstm-dse")
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mutate", default="", choices=["", "lt", "prevstep"])
    ap.add_argument("--only", default="", help="level sets containing this text only")
    a = ap.parse_args()
    LEVEL_SETS[:] = [ls for ls in LEVEL_SETS if a.only in ls[0]]
    MUTATE = a.mutate
    rng, bad = random.Random(a.seed), 0
    STATS.update(policies=0, mixed=0, rows=0)
    with tempfile.TemporaryDirectory() as t:
        for k in range(a.cases):
            what, problems = case(rng, Path(t), a.bin, a.device)
            if problems:
                bad += 1
                print(f"case {k} ({what}):", *problems[:4], sep="\n  ")
    print(f"{a.cases - bad} of {a.cases} cases agree ({STATS['policies']} policies, "
          f"{STATS['mixed']} of them running more than one level; {STATS['rows']} trace rows)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
