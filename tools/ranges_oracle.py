#!/usr/bin/env python3
"""An outside check of `lstm-dse ranges`, written from docs/NUMERICS.md §3 and §3.1 only (not
from the Rust code).

Usage:  python3 tools/ranges_oracle.py [--bin target/release/lstm-dse] [--cases 12] [--seed 0]

Each case writes a random safetensors LSTM (1-3 layers, some bidirectional, H from 1 to 17,
weight scales 0.3 to 4) and a random input, runs `ranges --csv`, and compares every row's
max_abs, p99_9_abs and p99_99_abs with a float64 evaluation of PyTorch's LSTM equations done
here: x of layer 0, W, R, b (b_ih + b_hh), the pre-activations (all four gates, all steps), c
(all steps and c0) and h (both directions, all steps, h0), each data value rounded to f32;
percentiles by §3.1's histogram rule (bins keyed by the top 16 bits of the f32 pattern, bin 0
left out, the upper edge of the first bin reaching ceil(q/100 n), capped at the maximum).
Needs numpy only. Exit status 1 if any value disagrees.
"""
import argparse
import csv
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from groups_oracle import write_safetensors  # noqa: E402 (the same file format)


def sig(v):
    return 1 / (1 + np.exp(-v))


def f32(v):
    return float(np.float32(v))


def percentile(values, q):
    """§3.1: histogram of |v| (f32) keyed by the top 16 bits, bin 0 left out."""
    a = np.abs(np.asarray(values, np.float64)).astype(np.float32)
    keys = (a.view(np.uint32) >> 15).astype(np.int64) & 0xFFFF
    keys = keys[keys > 0]
    if len(keys) == 0:
        return 0.0
    need = max(1, math.ceil(q / 100 * len(keys)))
    cum = np.cumsum(np.bincount(keys, minlength=65536))
    k = int(np.argmax(cum >= need))
    edge = np.array([((k + 1) << 15) - 1], np.uint32).view(np.float32)[0]
    return min(float(edge), float(a.max()))


def stats(values):
    return [f32(np.abs(values).max()), percentile(values, 99.9), percentile(values, 99.99)]


def case(binary, tmp, rng, layers_n, bidir, hidden, inputs, n, steps, scale):
    tensors, layers, width = {}, [], inputs
    for k in range(layers_n):
        dirs = []
        for suffix in [""] + (["_reverse"] if bidir else []):
            shapes = [(4 * hidden, width), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)]
            d = [(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]
            for name, a in zip(["weight_ih", "weight_hh", "bias_ih", "bias_hh"], d):
                tensors[f"lstm.{name}_l{k}{suffix}"] = a
            dirs.append(d)
        layers.append(dirs)
        width = hidden * len(dirs)
    x = (rng.standard_normal((n, steps, inputs)) * 2).astype(np.float32)
    model, xs, out = tmp / "m.safetensors", tmp / "x.npy", tmp / "r.csv"
    write_safetensors(model, tensors)
    np.save(xs, x)
    run = [binary, "ranges", "--model", model, "--input", xs, "--precisions", "fx8", "--csv", out]
    p = subprocess.run([str(a) for a in run], capture_output=True, text=True)
    if p.returncode != 0:
        return [f"ranges failed: {p.stderr.strip()}"]
    want, cur = {}, x.astype(np.float64)
    for l, dirs in enumerate(layers):
        outs, hs = [], []
        for k, (wih, whh, bih, bhh) in enumerate(dirs):
            w, r = wih.astype(np.float64), whh.astype(np.float64)
            b = bih.astype(np.float64) + bhh.astype(np.float64)
            pre, cs, y = [], [], np.zeros((n, steps, hidden))
            for s in range(n):
                h, c = np.zeros(hidden), np.zeros(hidden)
                for t in (range(steps - 1, -1, -1) if k == 1 else range(steps)):
                    g = w @ cur[s, t] + r @ h + b
                    pre.extend(g)
                    i, f, gg, o = np.split(g, 4)
                    c = sig(f) * c + sig(i) * np.tanh(gg)
                    h = sig(o) * np.tanh(c)
                    cs.extend(c)
                    hs.extend(h)
                    y[s, t] = h
            outs.append(y)
            want[(l, k, "W")] = stats(wih.reshape(-1))
            want[(l, k, "R")] = stats(whh.reshape(-1))
            want[(l, k, "b")] = stats(b)
            want[(l, k, "pre")] = stats(pre)
            want[(l, k, "c")] = stats(cs + [0.0] * hidden)
        for k in range(len(dirs)):
            want[(l, k, "h")] = stats(hs + [0.0] * hidden * len(dirs))
            if l == 0:
                want[(0, k, "x")] = stats(x.reshape(-1))
        cur = np.concatenate(outs, axis=2)
    problems = []
    for row in csv.DictReader(open(out)):
        key = (int(row["layer"]), int(row["direction"]), row["tensor"])
        if key not in want:
            continue
        got = [float(row[c]) for c in ["max_abs", "p99_9_abs", "p99_99_abs"]]
        for g, w, name in zip(got, want[key], ["max", "p99.9", "p99.99"]):
            # §3: values are rounded to f32 once; the b sum is taken in f64, then rounded.
            if np.float32(g) != np.float32(w) and abs(g - w) > 1e-6 * abs(w):
                problems.append(f"{key} {name}: got {g!r}, want {w!r}")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/lstm-dse")
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.cases):
            rng = np.random.default_rng(a.seed + i)
            shape = dict(layers_n=1 + i % 3, bidir=i % 2 == 1, hidden=[1, 3, 8, 17][i % 4],
                         inputs=[1, 4, 6][i % 3], n=[1, 3, 40][i % 3],
                         steps=[1, 5, 30][(i // 3) % 3], scale=[0.3, 1.5, 4.0][i % 3])
            problems = case(a.bin, Path(d), rng, **shape)
            bad += bool(problems)
            for p in problems[:5]:
                print(f"case {i} {shape}: {p}")
    print(f"{a.cases - bad} of {a.cases} cases agree")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
