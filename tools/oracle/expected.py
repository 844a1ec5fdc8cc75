"""What the binary should write, from a simulated run: every policies.csv column this oracle
computes (level fractions, switches, errors against the float64 reference, the head's errors
and task accuracy) and the trace rows, with how closely each must agree."""
import math

import numpy as np
from numerics_oracle import f32

from .head import dense_f32, dense_f64, run_head


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
