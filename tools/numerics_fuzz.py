#!/usr/bin/env python3
"""A differential fuzz of `lstm-dse infer` and `trace` against tools/numerics_oracle.py, the
NumPy reading of docs/NUMERICS.md §1-8, §14 and §15.

Usage:  python3 tools/numerics_fuzz.py [--bin target/release/lstm-dse] [--cases 100] [--seed 0]
                                       [--gpu] [--keep DIR]

Each case draws a random model (tools/oracle/models.py: safetensors or node-built ONNX, 1-3
layers, forward, reverse or bidirectional, H from 1 to 33, ONNX peepholes and initial states,
zero weight rows, safetensors heads of one or two dense layers on every step, the last step or
the final states), a random input (scales 1e-20 to 300, zero steps, quarter grids; a sixth of
the cases 5-21 sequences and 4-7 configs, as GPU lane blocks see them) and 1-3 configs from
§1-§3's grammar (fixed point with and without fraction bits, named and `e<E>m<M>` floats, roles,
formats in mixed case, `cal=max|mse|p<q>`, `wscale=channel|tensor`; a quarter of the configs
from extreme formats only: e2m1, e8m23, the 16/17-bit boundary of §4's tables, fx2, fx16.30 ...).
Then:

* `infer --precision C` for every config: the last layer's hidden states bit for bit against
  the oracle's `evaluate`, and with a head `--what output` bit for bit against §8 in f32; a
  config the oracle says is refused (`wscale=channel` without a plain `fx<b>` weight format,
  §3.2; §15's 64-bit accumulator bound) must exit 2, every other must run;
* `trace --precisions` of the accepted configs: every row of errors.csv (the largest |h| and |c|
  error of a sequence, layer, direction and step against the float64 reference of §14) within
  the reference's summation slack (which §14 leaves open: twice the distance to a long double
  reference plus 4 f32 ulps of the state);
* `--gpu`: the same trace with `--device gpu`, errors.csv, summary.csv and cell_delta.csv byte
  for byte equal to the CPU's.

Prints each disagreement and a one-line summary; exit status 1 if any case disagrees. A copy of
the oracle with a wrong peephole term (o reading c_{t-1}) disagrees on most peephole models."""
import argparse
import csv
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numerics_oracle import (accumulator_refused, evaluate, parse_config,  # noqa: E402
                             reference, resolve, weights_own)
from oracle import models  # noqa: E402
from oracle.cli import keep_case  # noqa: E402
from oracle.head import dense_f32, run_head  # noqa: E402

EXTREME = ["e2m1", "e8m23", "e2m23", "e8m1", "e3m12", "e4m11", "e5m10", "e4m12", "e5m11",
           "e8m7", "e8m8", "e2m13", "e2m14", "fx2", "fx2.0", "fx2.30", "fx16.30", "fx16.0",
           "fx16", "fx3", "fp8e4m3", "fp8e5m2", "e7m8", "e6m9", "e6m10", "e5m2", "e4m3", "fp32",
           "bf16", "e3m1", "e2m2"]
TRACE_FILES = ["errors.csv", "summary.csv", "cell_delta.csv"]
STATS = dict(infer=0, refused=0, heads=0, traces=0, rows=0, gpu=0)


def fmt(rng):
    """One format of §1: fixed point (some with fraction bits 0-30), named or e<E>m<M> floats,
    letters in mixed case (§1: format names are case-insensitive)."""
    r = rng.random()
    if r < 0.5:
        b = rng.choice([2, 3, 4, 5, 6, 7, 8, 8, 9, 11, 12, 13, 15, 16, 16])
        s = f"fx{b}"
        if rng.random() < 0.4:
            s += f".{max(0, min(30, rng.choice([0, 1, b - 1, b - 2, b, b + 3, 20, 30, rng.randrange(31)])))}"
    elif r < 0.6:
        s = rng.choice(["fp32", "fp16", "bf16", "fp8e5m2", "fp8e4m3"])
    else:
        s = f"e{rng.choice([2, 2, 3, 4, 5, 5, 8, 8, rng.randrange(2, 9)])}" \
            f"m{rng.choice([1, 1, 2, 3, 7, 10, 23, rng.randrange(1, 24)])}"
    return "".join(ch.upper() if rng.random() < 0.3 else ch for ch in s)


def config(rng):
    """One config of §2: a format for every role, or role=format pairs (a bare format first is
    the a role), then options; role keys and options lowercase (§1)."""
    draw = (lambda: rng.choice(EXTREME)) if rng.random() < 0.25 else (lambda: fmt(rng))
    parts = [draw()] if rng.random() < 0.4 else []
    roles = [r for r in "wapc" if rng.random() < 0.6] or [rng.choice("wapc")]
    rng.shuffle(roles)
    if parts and "a" in roles:
        roles.remove("a")
    parts += [f"{r}={draw()}" for r in roles if not parts or rng.random() < 0.4]
    if rng.random() < 0.35:
        parts.append("cal=" + rng.choice(["max", "mse", "mse", "p99.9", "p99", "p50", "p100",
                                          "p0.5", f"p{rng.uniform(1, 100):.3f}"]))
    if rng.random() < 0.2:
        parts.append("wscale=" + rng.choice(["channel", "channel", "tensor"]))
    return ",".join(parts)


def refused(roles, level):
    """Whether the binary must refuse this config: §3.2 or §15's 64-bit bound."""
    w = roles["w"]
    if roles["wscale"] == "channel" and not (w.kind == "fx" and w.f is None):
        return True
    return accumulator_refused(level)


def run(cmd):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300)


def first_diff(got, want):
    """Where two f32 arrays differ bit for bit, as text (None if they agree)."""
    if got.shape != want.shape:
        return f"shape {got.shape}, oracle {want.shape}"
    bad = np.argwhere(got.view(np.uint32) != want.view(np.uint32))
    if not len(bad):
        return None
    k = tuple(bad[0])
    return f"{len(bad)} values differ, first at {k}: {got[k]!r}, oracle {want[k]!r}"


def check_infer(binary, tmp, m, mp, xp, cfg, out, problems):
    """`infer` of one config: hidden states, then the head's output, bit for bit."""
    yp = tmp / "y.npy"
    p = run([binary, "infer", "--model", mp, "--input", xp, "--precision", cfg, "--output", yp,
             "--quiet"] + models.head_args(m))
    if p.returncode:
        return problems.append(f"{cfg}: infer exit {p.returncode}: {p.stderr.strip()[-300:]}")
    diff = first_diff(np.load(yp), out)
    if diff:
        return problems.append(f"{cfg}: hidden states: {diff}")
    STATS["infer"] += 1
    if m["head"]:
        p = run([binary, "infer", "--model", mp, "--input", xp, "--precision", cfg, "--output",
                 yp, "--quiet", "--what", "output"] + models.head_args(m))
        if p.returncode:
            return problems.append(f"{cfg}: infer --what output exit {p.returncode}: "
                                   f"{p.stderr.strip()[-300:]}")
        head = dict(m["head"], directions=len(m["layers"][-1]["dirs"]))
        got = np.load(yp)
        want = run_head(dense_f32, head, out).astype(np.float32)
        diff = first_diff(got, want.reshape(got.shape) if want.size == got.size else want)
        if diff:
            return problems.append(f"{cfg}: head output: {diff}")
        STATS["heads"] += 1


def check_trace(rows, cfgs, sims, ref, slack, problems):
    """errors.csv against the oracle: per row the largest |h| and |c| error of the config's
    states against the reference, within the reference's slack."""
    order = list(dict.fromkeys(r["precision"] for r in rows))
    if len(order) != len(cfgs):
        return problems.append(f"trace lists {order} for {cfgs}")
    for r in rows:
        n, l, d, t = (int(r[k]) for k in ("sequence", "layer", "direction", "step"))
        sim = sims[order.index(r["precision"])]
        for k, col in enumerate(["hidden_max_abs", "cell_max_abs"]):
            want = np.abs(sim[l][d][k][n, t].astype(np.float64) - ref[l][d][k][n, t]).max()
            got = float(r[col])
            if abs(got - want) > slack[l][d][k][n, t]:
                return problems.append(f"trace {r['precision']} {col} n{n} l{l} d{d} t{t}: "
                                       f"{got!r}, oracle {want!r}")
    STATS["rows"] += len(rows)


def trace(binary, tmp, m, mp, xp, cfgs, device):
    """One `trace` run; the bytes of its files, or the error."""
    out = tmp / f"trace_{device}"
    shutil.rmtree(out, ignore_errors=True)
    p = run([binary, "trace", "--model", mp, "--input", xp, "--precisions", ";".join(cfgs),
             "--out", out, "--device", device, "--quiet"] + models.head_args(m))
    if p.returncode:
        return f"trace --device {device} exit {p.returncode}: {p.stderr.strip()[-300:]}"
    return {f: (out / f).read_bytes() for f in TRACE_FILES}


def case(seed, tmp, binary, gpu):
    """One case; returns its description and the disagreements."""
    rng, g = random.Random(seed), np.random.default_rng(seed)
    m = models.model(rng, g)
    lanes = rng.random() < 1 / 6
    x, scale = models.inputs(rng, g, m["I"], lanes)
    cfgs = list(dict.fromkeys(config(rng) for _ in range(rng.choice([4, 5, 6, 7] if lanes
                                                                     else [1, 2, 3]))))
    what = f"{models.describe(m)} N={x.shape[0]} T={x.shape[1]} x~{scale:g} {';'.join(cfgs)}"
    mp, xp = tmp / ("m.onnx" if m["kind"] == "onnx" else "m.safetensors"), tmp / "x.npy"
    models.write_model(m, mp, x.shape[0])
    np.save(xp, x)
    layers = models.oracle_layers(m)
    ref, cal, _ = reference(layers, x)
    wide, _, _ = reference(layers, x, np.longdouble)
    problems, accepted, sims = [], [], []
    for cfg in cfgs:
        roles = parse_config(cfg)
        level = resolve(roles, layers, cal)
        weights_own(level)
        if refused(roles, level):
            p = run([binary, "infer", "--model", mp, "--input", xp, "--precision", cfg,
                     "--output", tmp / "y.npy", "--quiet"] + models.head_args(m))
            if p.returncode != 2 or p.stderr.count("error:") != 1:
                problems.append(f"{cfg}: the oracle refuses it, infer exit {p.returncode}")
            STATS["refused"] += 1
            continue
        sim, out = evaluate(level, x)
        check_infer(binary, tmp, m, mp, xp, cfg, out, problems)
        accepted.append(cfg)
        sims.append(sim)
    # A config written twice (`fx8;FX8`, `fp32;e8m23`) is refused by `trace` (§2): keep one.
    canon = {}
    for cfg, sim in zip(accepted, sims):
        r = parse_config(cfg.lower())
        key = (tuple(repr(r[k]).replace("e8m23", "fp32") for k in "wapc"), r["wscale"], r["cal"])
        canon.setdefault(key, (cfg, sim))
    if problems or not canon:
        return what, problems
    cfgs, sims = zip(*canon.values())
    slack = [[tuple(2 * np.abs(r.astype(np.float64) - w).max(axis=-1)
                    + 4 * np.spacing(np.abs(r).max(axis=-1)).astype(np.float64) for r, w in
                    zip(rd, wd)) for rd, wd in zip(rl, wl)] for rl, wl in zip(ref, wide)]
    cpu = trace(binary, tmp, m, mp, xp, cfgs, "cpu")
    if isinstance(cpu, str):
        return what, [cpu]
    rows = list(csv.DictReader(cpu["errors.csv"].decode().splitlines()))
    check_trace(rows, cfgs, sims, ref, slack, problems)
    STATS["traces"] += 1
    if gpu:
        dev = trace(binary, tmp, m, mp, xp, cfgs, "gpu")
        if isinstance(dev, str):
            problems.append(dev)
        else:
            problems += [f"trace {f}: GPU bytes differ from CPU" for f in TRACE_FILES
                         if dev[f] != cpu[f]]
            STATS["gpu"] += 1
    return what, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/lstm-dse")
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gpu", action="store_true", help="also trace on the GPU; bytes must match")
    ap.add_argument("--keep", default="", help="copy a disagreeing case's model and input here")
    a = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as t:
        for k in range(a.cases):
            seed = a.seed * 1_000_003 + k
            what, problems = case(seed, Path(t), a.bin, a.gpu)
            if problems:
                bad += 1
                print(f"case {k} (seed {seed}: {what}):", *problems[:4], sep="\n  ")
                keep_case(a.keep, k, t)
    print(f"{a.cases - bad} of {a.cases} cases agree ({STATS['infer']} infer runs bit for bit, "
          f"{STATS['heads']} head outputs, {STATS['refused']} refusals as predicted; "
          f"{STATS['traces']} traces, {STATS['rows']} errors.csv rows"
          + (f"; {STATS['gpu']} GPU traces byte-identical" if a.gpu else "") + ")")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
