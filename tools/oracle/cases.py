"""One case: draw a model, an input and a policy set, write them, run `lstm-dse dynamic` once
per policy (tracing that one), and compare policies.csv and the traces with the simulation.
`STATS` counts what the cases covered."""
import csv
import math
import subprocess

import numpy as np
from groups_oracle import write_safetensors  # the same file format
from numerics_oracle import (  # NUMERICS.md §1-8, §14
    is_nested, nested_levels, parse_config, reference, resolve, weights_own)

from .draw import LEVEL_SETS, METRICS, model
from .expected import EXACT, close, expected
from .metric import Metric
from .policy import simulate

# Policies, policies running more than one level, trace rows; reset by `cli.main`.
STATS = {}


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
