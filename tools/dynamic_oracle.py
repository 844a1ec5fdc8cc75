#!/usr/bin/env python3
"""An outside check of `lstm-dse dynamic`, written from docs/NUMERICS.md §1-7, §11, §11.1, §14,
§15 and docs/OUTPUTS.md only (not from src/dynamic/).

Usage:  python3 tools/dynamic_oracle.py [--bin target/release/lstm-dse] [--cases 60] [--seed 0]
                                        [--device cpu|gpu] [--mutate NAME]

Each case writes a random safetensors LSTM (1-2 layers, some bidirectional, H from 1 to 33 and
I from 1 to 19, mostly not powers of two, half with a dense head: none, sigmoid or softmax with
labels, some of two dense layers with relu, tanh, none or sigmoid between, on every step, the
last step or the final states; a quarter with an nn.Embedding, the input then int64 or int32
token ids), a random input (some just off a coarse grid's midpoints), and runs `dynamic` once per
policy (each run traces one, `--trace-policy K`) with a random level set (nested fixed point:
`fx8,fx16`, `fx4,fx8,fx12`, role configs, `fx2,fx16.0`, a shared `cal=p99`; any other set:
float formats, mixed configs, fp32, explicit fraction bits at a lower level, per-channel
weights, per-level calibration rules), metric, timing, starting level and thresholds with 0,
+inf and ties (thresholds equal to metric values the run reaches). The oracle simulates every
policy itself:

* formats resolved as §3 and §3.1-3.2 from a float64 reference (§14) computed here;
* the integer step of §7 on codes (nested levels and integer levels of any set), the float step
  of §6 with every f32 operation flushed (§5), activation units of §4 (f64 libm `exp`/`tanh`
  for inputs of at most 16 bits, the reproducible f32 functions otherwise), rounding of §1;
* nested sets: lower formats `fx<b>.<F - (B - b)>`, weights the highest codes rounded down,
  state in the highest formats, metric compared on integers; other sets: every level its own
  config, state as f32 values, metric in f32 (§11.1);
* causal / oracle timing, the starting level, levels per layer and direction, closed loop;
* the head of §8 / §15 in f32 on the last layer's h (every step, the last step or the final
  states; one or two dense layers), task accuracy and bits from the labels.

Levels, level fractions, switches and the trace's levels and metrics are compared exactly;
the error columns (against a float64 reference whose summation order the docs leave open)
within 1e-6 relative, the head's within 4e-7 of its outputs' magnitude. `--mutate` runs a
deliberately wrong copy (`lt`: a threshold is reached when the metric is > rather than >=;
`prevstep`: the metric is taken from the step before) to show that the check can fail;
`--only TEXT` keeps the level sets whose spelling contains TEXT. Needs numpy only. Exit status
1 if any case disagrees.

Where the docs were open, the binary's choice (now written in NUMERICS.md §11 and OUTPUTS.md):
layer 0's input at a lower nested level is the f32 input rounded once, directly to that level's
x format; under `oracle` timing the trace's `delta_c_metric` is the metric of the run that
produced the state (the redo at the lower level); `frac_last_level` is the last step in the
direction's own order; `switches_per_1000_steps` = level changes between consecutive steps of
one (sequence, layer, direction), over all steps, times 1000; θ·2^f·H is taken in f64.
"""
import argparse
import csv
import math
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from groups_oracle import write_safetensors  # noqa: E402 (the same file format)
from numerics_oracle import (  # noqa: E402 (NUMERICS.md §1-8, §14)
    TINY, f32, ftz, head_f32, head_f64, is_nested, nested_levels, parse_config, reference,
    resolve, step, tanh_det, to_code, weights_own)

MUTATE = ""
STATS = {}


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
    """⌊v⌋₃₂: the largest f32 <= v."""
    r = np.float32(v)
    if float(r) > v:
        r = np.nextafter(r, np.float32(-np.inf))
    return r


class Metric:
    """One `--metric` (max_abs, mean_abs, frac_above:e, rel_max_abs:eps) on one step's change:
    its reported value and whether it reaches a threshold."""

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


def expected(sim, ref, K, slack, head=None, ref_out=None, labels=None):
    """Every policies.csv column this oracle computes, and the trace rows. `slack`: per layer
    direction how far the reference's h and c may move with its summation order ([N, T])."""
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
                    trace.append(((n, l, d, t), mv[n, t], lv[n, t], hm[n, t], cm[n, t],
                                  slack[l][d][0][n, t], slack[l][d][1][n, t]))
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
    rows["slack_hidden"] = max(float(sl[0].max()) for lay in slack for sl in lay)
    rows["slack_cell"] = max(float(sl[1].max()) for lay in slack for sl in lay)
    if head is not None:
        y = run_head(dense_f32, head, np.concatenate([hs for (_, _, hs, _) in sim[-1]], axis=2))
        yr = run_head(dense_f64, head, ref_out)
        # OUTPUTS.md: against the reference's output as f32, as the states are.
        d = np.abs(y.astype(np.float64) - f32(yr).astype(np.float64))
        rows["output_rmse"] = math.sqrt((d * d).sum() / d.size)
        rows["output_max_abs"] = d.max()
        # The reference's head sums in an order the docs leave open: a few f32 ulps of the
        # outputs' magnitude.
        rows["output_tolerance"] = 4e-7 * max(1.0, float(np.abs(yr).max())) + slack_out(
            head, ref_out, slack)
        if y.shape[-1] >= 2:
            rows["top1_agreement"] = float((y.argmax(-1) == yr.argmax(-1)).mean())
        if labels is not None:
            rows["reference_task_accuracy"], rows["reference_task_bits"] = task(yr, labels)
            rows["task_accuracy"], rows["task_bits"] = task(y, labels)
    return rows, sorted(trace)


def slack_out(head, ref_out, slack):
    """How far the head's reference output moves with the reference's last h."""
    if not slack or "out" not in slack[-1][0][2]:
        return 0.0
    other = slack[-1][0][2]["out"]
    return float(np.abs(run_head(dense_f64, head, ref_out) - run_head(dense_f64, head, other)).max())


EXACT = ("frac_", "switches")


def close(got, want, exact, slack=0.0):
    """Exact columns to 1e-12; errors to 1e-6 relative plus what the reference's summation
    order can move (`slack`: a float64 against a long double reference, §14 leaves it open)."""
    if exact:
        return got == want or abs(got - want) <= 1e-12 * max(1.0, abs(want))
    return abs(got - want) <= 1e-6 * abs(want) + 1e-9 + 2 * slack


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
    ("fx8,cal=p99;fx16", False), ("fp8e4m3;fx12,cal=p95", False),
]
METRICS = ["max_abs", "mean_abs", "frac_above:0.01", "frac_above:0", "rel_max_abs:0.01",
           "rel_max_abs:1e-6", "mean_abs", "max_abs"]


def model(rng, g):
    I, H = rng.choice([1, 3, 5, 6, 7, 7, 19]), rng.choice([1, 3, 5, 6, 7, 7, 33])
    L, D = rng.choice([1, 1, 2]), 2 if rng.random() < 0.4 else 1
    wscale = rng.choice([0.3, 0.7, 1.5, 3.0, 12.0])
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
        # Sometimes two dense layers, `fc2(act(fc1(..)))`.
        sizes = [width] + ([rng.choice([1, 2, 5, 9])] if rng.random() < 0.4 else []) + [O]
        kinds = [rng.choice(["relu", "tanh", "none", "sigmoid"]) for _ in sizes[2:]] + [kind]
        head = {"layers": [], "names": [],
                "input": rng.choice(["every-step", "every-step", "last-step", "final-state"]),
                "directions": D}
        for i, (fin, fout, k) in enumerate(zip(sizes, sizes[1:], kinds)):
            name = "fc" if len(kinds) == 1 else f"fc{i + 1}"
            Wh = (g.standard_normal((fout, fin)) * 0.8).astype(np.float32)
            bh = (g.standard_normal(fout) * 0.2).astype(np.float32)
            tensors[f"{name}.weight"], tensors[f"{name}.bias"] = Wh, bh
            head["layers"].append((Wh, bh, k))
            head["names"].append(name)
    return I, H, L, D, tensors, layers, head


def head_rows(h, mode, D):
    """§8: the rows a head reads from the last layer's [N, T, D*H] output, as [N, rows, D*H]:
    every step, the last step, or each direction's final state (forward at T-1, reverse at 0)."""
    if mode == "every-step":
        return h
    if mode == "last-step":
        return h[:, -1:]
    H = h.shape[-1] // D
    return np.concatenate([h[:, -1:, :H]] + ([h[:, :1, H:]] if D == 2 else []), axis=2)


def dense_f32(layer, h):
    """One dense layer of §8 in f32: relu is max(y, 0), tanh §4's reproducible f32 tanh."""
    Wh, bh, kind = layer
    if kind in ("relu", "tanh"):
        y = head_f32((Wh, bh, "none"), h)
        return np.maximum(y, np.float32(0)) if kind == "relu" else tanh_det(y).astype(np.float32)
    return head_f32(layer, h)


def dense_f64(layer, h):
    Wh, bh, kind = layer
    if kind in ("relu", "tanh"):
        y = head_f64((Wh, bh, "none"), h)
        return np.maximum(y, 0.0) if kind == "relu" else np.tanh(y)
    return head_f64(layer, h)


def run_head(dense, head, h):
    """The head's layers in turn over the rows it reads of `h` ([N, T, D*H])."""
    y = head_rows(h, head["input"], head["directions"])
    for layer in head["layers"]:
        y = dense(layer, y)
    return y


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
    N, T = rng.choice([1, 2, 3]), rng.choice([1, 4, 7, 10, 10, 25])
    # Sometimes an nn.Embedding before the LSTM: the input is token ids, the rows below its
    # table (`--embedding emb`, MODELS.md).
    vocab = rng.choice([2, 5, 17, 40]) if rng.random() < 0.25 else None
    rows = (vocab, I) if vocab else (N, T, I)
    x = (g.standard_normal(rows) * rng.choice([1e-3, 0.5, 1.0, 3.0, 60.0])).astype(np.float32)
    if rng.random() < 0.3:
        # Just off the midpoints of a coarse grid: rounding once and rounding through a finer
        # format first differ here.
        q = 2.0 ** rng.randrange(2, 8)
        off = g.choice([-1, 1], x.shape) * 2.0**-rng.randrange(9, 13)
        x = ((np.floor(x * q) + 0.5 + off) / q).astype(np.float32)
    ids = None
    if vocab:
        tensors["emb.weight"] = x
        ids = g.integers(0, vocab, (N, T)).astype(rng.choice([np.int64, np.int32]))
        x = x[ids]
    spec, nested = rng.choice(LEVEL_SETS)
    metric = Metric(rng.choice(METRICS))
    timing = rng.choice(["causal", "oracle"])
    configs = [parse_config(s) for s in spec.replace(";", " ").split()] if ";" in spec else \
        [parse_config(s) for s in spec.split(",")]
    K = len(configs)
    start = rng.choice(["high", "low", str(rng.randrange(K))])
    what = f"I={I} H={H} L={L} D={D} N={N} T={T} {spec} {metric.spec} {timing} start={start}"
    if vocab:
        what += f" ids {ids.dtype} of {vocab}"
    if head is not None:
        dims = [Wh.shape[0] for (Wh, _, _) in head["layers"]]
        kinds = [k for (_, _, k) in head["layers"]]
        what += f" head {dims} {kinds} {head['input']}"
    mp, xp = tmp / "m.safetensors", tmp / "x.npy"
    write_safetensors(mp, tensors)
    np.save(xp, x if ids is None else ids)
    ref, cal, ref_out = reference(layers, x)
    wide, _, wide_out = reference(layers, x, np.longdouble)
    slack = [[(np.abs(r[0].astype(np.float64) - w[0]).max(axis=-1),
               np.abs(r[1].astype(np.float64) - w[1]).max(axis=-1), {})
              for r, w in zip(rl, wl)] for rl, wl in zip(ref, wide)]
    slack[-1][0][2]["out"] = wide_out.astype(np.float64)
    extra, labels = [], None
    if head is not None:
        kinds = [k for (_, _, k) in head["layers"]]
        extra = ["--head", ",".join(head["names"]), "--head-activation", ",".join(kinds),
                 "--head-input", head["input"]]
        if kinds[-1] == "softmax":
            O = head["layers"][-1][0].shape[0]
            # A head on one vector per sequence takes one label per sequence only.
            per_step = head["input"] == "every-step" and rng.random() >= 0.5
            shape = (N, T) if per_step else (N,)
            labels = g.integers(0, O, shape).astype(np.float32)
            np.save(tmp / "y.npy", labels)
            extra += ["--labels", str(tmp / "y.npy")]
    if vocab:
        extra += ["--embedding", "emb"]
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
        want, trace = expected(sim, ref, K, slack, head, ref_out, labels)
        sl_h, sl_c = want.pop("slack_hidden"), want.pop("slack_cell")
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
            elif not close(float(row[col]), v, col.startswith(EXACT),
                           sl_c if col.startswith("cell") else sl_h):
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
        for (key, r), (wkey, mv, lv, hm, cm, sh, sc) in zip(keyed, trace):
            bad = []
            if key != wkey:
                bad.append(f"row {key} vs {wkey}")
            if int(r["level"]) != lv:
                bad.append(f"level {r['level']} vs {lv}")
            if not close(float(r["delta_c_metric"]), mv, True):
                bad.append(f"delta_c_metric {r['delta_c_metric']} vs {mv!r}")
            if not close(float(r["hidden_max_abs"]), hm, False, sh):
                bad.append(f"hidden_max_abs {r['hidden_max_abs']} vs {hm!r}")
            if not close(float(r["cell_max_abs"]), cm, False, sc):
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
    ap.add_argument("--keep", default="", help="copy a disagreeing case's model and input here")
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
                if a.keep:
                    keep = Path(a.keep) / f"case_{k}"
                    keep.mkdir(parents=True, exist_ok=True)
                    for f in Path(t).iterdir():
                        if f.is_file():
                            shutil.copy(f, keep / f.name)
    print(f"{a.cases - bad} of {a.cases} cases agree ({STATS['policies']} policies, "
          f"{STATS['mixed']} of them running more than one level; {STATS['rows']} trace rows)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
