"""The metric of one step's change of the cell state (§11, §11.1): `Metric` (max_abs,
mean_abs, frac_above:e, rel_max_abs:eps) on integer codes for nested level sets or on f32
values for any other set, with the f32 roundings of θ it is compared against."""
import math

import numpy as np
from numerics_oracle import TINY, ftz, to_code


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
