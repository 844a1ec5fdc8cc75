#!/usr/bin/env python3
"""An outside check of `lstm-dse groups`, written from docs/NUMERICS.md §3 and §12 and
docs/OUTPUTS.md only (not from src/dynamic/groups.rs).

Usage:  python3 tools/groups_oracle.py [--bin target/release/lstm-dse] [--cases 200] [--seed 0]
                                       [--device cpu|gpu]

Each case writes a random safetensors LSTM (1-3 layers, some bidirectional, widths 1..16, weight
scales from 0 to 1e30, rows of zeros), a random input (scales from 0 to 1e30, zero steps, values
of exactly +-2^e that saturate by one step), and runs `groups` at a random base width (2..16
bits) and three group sizes (1 to 10^6, most not dividing the rows). The oracle quantizes W, R
and x itself (§3: e = ceil(log2 m), f = clamp(b - 1 - e, 0, 30), round half to even,
saturate) and takes each layer's h from `lstm-dse infer` at the base precision on the model cut
after that layer (the "run at that config"; its format's m is the largest |h| of a float64
reference the oracle computes), then computes every column of groups.csv and compares them
exactly (1e-12 relative). Needs numpy only. Exit status 1 if any case disagrees.
"""
import argparse
import csv
import json
import math
import random
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def write_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype=np.float32).tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def frac_bits(m, b):
    """§3: e = the smallest integer with 2^e >= m (0 for m = 0); f = clamp(b - 1 - e, 0, 30)."""
    e = 0
    if m > 0:
        mant, ex = math.frexp(m)
        e = ex - 1 if mant == 0.5 else ex
    return min(max(b - 1 - e, 0), 30)


def quantize(x, b, f):
    c = np.rint(np.asarray(x, dtype=np.float64) * 2.0**f)
    return np.clip(c, -(2 ** (b - 1)), 2 ** (b - 1) - 1).astype(np.int64)


def widths(codes):
    """§12: bitlen(m) + 1, m = code (code >= 0) or -code - 1."""
    m = np.where(codes >= 0, codes, -codes - 1)
    bl = np.zeros_like(m)
    while (m > 0).any():
        bl += m > 0
        m = m >> 1
    return bl + 1


def stats(vectors, G, bits):
    """vectors: 2-D code arrays, one vector per row. Every column of one groups.csv row."""
    lens, ws, nzs = [], [], []
    for rows in vectors:
        w, nz = widths(rows), rows != 0
        for s in range(0, rows.shape[1], G):
            e = min(s + G, rows.shape[1])
            lens.append(np.full(rows.shape[0], e - s))
            ws.append(w[:, s:e].max(axis=1))
            nzs.append(nz[:, s:e].sum(axis=1))
    n, w, nz = np.concatenate(lens), np.concatenate(ws), np.concatenate(nzs)
    header = math.ceil(math.log2(bits))
    plain, bitmap = header + n * w, header + n + nz * w
    values = int(n.sum())
    out = {
        "base_bits": bits,
        "groups": len(n),
        "values": values,
        "mean_width_bits": w.mean(),
        "footprint_ratio": plain.sum() / (values * bits),
        "footprint_ratio_zero_bitmap": np.minimum(plain, bitmap).sum() / (values * bits),
    }
    for k in range(1, bits + 1):
        out[f"frac_groups_width_{k}"] = (w == k).mean()
    return out


def reference_h_max(layers, x):
    """Per layer, the largest |h| (rounded to f32) of a float64 evaluation (§3, §14)."""
    sig = lambda v: 1.0 / (1.0 + np.exp(-np.clip(v, -700, 700)))
    inp, maxes = x.astype(np.float64), []
    for dirs in layers:
        n, t, _ = inp.shape
        outs = []
        for d, (W, R, b) in enumerate(dirs):
            h = np.zeros((n, R.shape[1]))
            c = np.zeros_like(h)
            ys = np.zeros((n, t, R.shape[1]))
            for s in range(t) if d == 0 else range(t - 1, -1, -1):
                a = inp[:, s] @ W.astype(np.float64).T + h @ R.astype(np.float64).T + b
                i, f, g, o = np.split(a, 4, axis=1)
                c = sig(f) * c + sig(i) * np.tanh(g)
                h = sig(o) * np.tanh(c)
                ys[:, s] = h
            outs.append(ys.astype(np.float32).astype(np.float64))
        inp = np.concatenate(outs, axis=2)
        maxes.append(float(np.abs(inp).max()))
    return maxes


def overflow_refused(layers, x):
    """§15 ("No lane overflows"): refused when some gate row's bound
    B_r = sum|W_r|*X + sum|R_r|*Hm + |b_ih[r]| + |b_hh[r]| reaches float32's largest value / 16
    (X = max|input| in layer 0, 1 after; Hm = 1 with zero initial states; no peepholes here).
    The combined bias stands for |b_ih| + |b_hh|: the two are drawn at 0.1, far below the limit."""
    limit = float(np.finfo(np.float32).max) / 16
    for l, dirs in enumerate(layers):
        X = float(np.abs(x).max()) if l == 0 else 1.0
        for W, R, b in dirs:
            B = np.abs(W.astype(np.float64)).sum(1) * X + np.abs(R.astype(np.float64)).sum(1)
            if (B + np.abs(b)).max() >= limit:
                return True
    return False


def case(rng, tmp, binary, device):
    I, H = rng.choice([1, 2, 3, 5, 8, 13]), rng.choice([1, 2, 3, 7, 16])
    L, D = rng.choice([1, 1, 2, 3]), 2 if rng.random() < 0.4 else 1
    N, T, bits = rng.choice([1, 2, 3]), rng.choice([1, 2, 5]), rng.choice([2, 3, 4, 8, 12, 16])
    sizes = sorted(rng.sample([1, 2, 3, 4, 5, 7, 8, 16, 33, 1000, 1000000], 3))
    wscale = rng.choice([0.0, 1e-30, 1e-3, 0.3, 1.0, 5.0, 1e4, 1e30])
    xscale = rng.choice([0.0, 1e-30, 1e-6, 1.0, 100.0, 1e30])
    mode = rng.choice(["normal", "zero steps", "powers of two", "zero rows"])
    what = f"I={I} H={H} L={L} D={D} N={N} T={T} fx{bits} G={sizes} w*{wscale} x*{xscale} {mode}"
    g = np.random.default_rng(rng.randrange(2**32))
    tensors, layers, width = {}, [], I
    for l in range(L):
        dirs = []
        for d in range(D):
            W = (g.standard_normal((4 * H, width)) * wscale).astype(np.float32)
            R = (g.standard_normal((4 * H, H)) * wscale).astype(np.float32)
            if mode == "zero rows":
                W[::3] = 0
                R[1::2, : max(1, H // 2)] = 0
            b = [(g.standard_normal(4 * H) * 0.1).astype(np.float32) for _ in range(2)]
            suffix = "_reverse" if d else ""
            for name, v in zip(["weight_ih", "weight_hh", "bias_ih", "bias_hh"], [W, R, *b]):
                tensors[f"{name}_l{l}{suffix}"] = v
            dirs.append((W, R, (b[0] + b[1]).astype(np.float32).astype(np.float64)))
        layers.append(dirs)
        width = H * D
    x = (g.standard_normal((N, T, I)) * xscale).astype(np.float32)
    if mode == "zero steps":
        x[:, ::2, :] = 0
    if mode == "powers of two":
        x = np.round(x * 4) / 4
        x[0, 0, 0], x[0, 0, -1] = 2.0, -2.0
    xp = tmp / "x.npy"
    np.save(xp, x)

    def model_upto(l):
        p = tmp / f"m{l}.safetensors"
        write_safetensors(p, {k: v for k, v in tensors.items() if int(k.split("_l")[1][0]) <= l})
        return str(p)

    out = tmp / "g"
    run = [binary, "groups", "--model", model_upto(L - 1), "--input", str(xp), "--quiet",
           "--group-sizes", ",".join(map(str, sizes)), "--base", f"fx{bits}", "--out", str(out),
           "--device", device]
    p = subprocess.run(run, capture_output=True, text=True)
    if overflow_refused(layers, x):
        # §15: refused before anything runs, exit 2, one line saying why.
        ok = p.returncode == 2 and "could overflow" in p.stderr and len(p.stderr.splitlines()) == 1
        return what, [] if ok else [f"§15 refusal expected, got exit {p.returncode}: {p.stderr.strip()}"]
    if p.returncode:
        return what, [f"groups exit {p.returncode}: {p.stderr.strip()}"]
    got = list(csv.DictReader(open(out / "groups.csv")))
    weights = [quantize(M, bits, frac_bits(float(np.abs(M).max()), bits))
               for dirs in layers for W, R, _ in dirs for M in (W, R)]
    acts = [quantize(x.reshape(-1, I), bits, frac_bits(float(np.abs(x).max()), bits))]
    for l, m in enumerate(reference_h_max(layers, x)):
        hp = tmp / "h.npy"
        p = subprocess.run([binary, "infer", "--model", model_upto(l), "--input", str(xp),
                            "--precision", f"fx{bits}", "--output", str(hp), "--quiet"],
                           capture_output=True, text=True)
        if p.returncode:
            return what, [f"infer exit {p.returncode}: {p.stderr.strip()}"]
        codes = np.load(hp).astype(np.float64) * 2.0 ** frac_bits(m, bits)
        if not np.array_equal(codes, np.rint(codes)):
            return what, [f"layer {l}'s h is not on the fx{bits} grid the oracle expects"]
        # A bidirectional layer's h_t: both directions side by side, one vector (§12).
        acts.append(codes.astype(np.int64).reshape(-1, H * D))
    problems = []
    for G in sizes:
        for kind, vectors in [("weights", weights), ("activations", acts)]:
            rows = [r for r in got if r["tensor"] == kind and int(r["group_size"]) == G]
            if len(rows) != 1:
                problems.append(f"{kind} G={G}: {len(rows)} rows")
                continue
            for k, v in stats(vectors, G, bits).items():
                g_ = float(rows[0].get(k, 0))
                if abs(g_ - v) > 1e-12 * max(1.0, abs(v)):
                    problems.append(f"{kind} G={G}: {k} = {g_}, the oracle says {v}")
    return what, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/lstm-dse")
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    rng, bad = random.Random(a.seed), 0
    with tempfile.TemporaryDirectory() as t:
        for k in range(a.cases):
            what, problems = case(rng, Path(t), a.bin, a.device)
            if problems:
                bad += 1
                print(f"case {k} ({what}):", *problems[:4], sep="\n  ")
    print(f"{a.cases - bad} of {a.cases} cases agree")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
