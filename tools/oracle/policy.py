"""One policy run, closed loop: per (sequence, layer, direction) the level of each step from
the metric of the step before (causal) or of the step itself (oracle), starting level and
thresholds; and `MUTATE`, the deliberately wrong copy `--mutate` asks for."""
import math

import numpy as np
from numerics_oracle import round_to, step

# `--mutate`: "" (the oracle as written), "lt" or "prevstep"; set by `cli.main`.
MUTATE = ""


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
            top = levels[-1][l][d]
            H = top["w"]["R"].shape[1]
            fc_top = top["fmt"]["c"]
            lv = np.zeros((N, T), int)
            mv = np.zeros((N, T))
            hs, cs = np.zeros((N, T, H), np.float32), np.zeros((N, T, H), np.float32)
            order = list(range(T - 1, -1, -1)) if top["rev"] else list(range(T))
            for n in range(N):
                # §11, §11.1: every lane starts from the highest level's initial state.
                h, c = round_to(top["h0"], top["fmt"]["h"]), round_to(top["c0"], fc_top)
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
