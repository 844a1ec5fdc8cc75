#!/usr/bin/env python3
"""Same-minute A/B of lstm-dse binaries on a shared machine, with onnxruntime beside them.

    python3 tools/quiet_ab.py ROUNDS OLD_BIN NEW_BIN [--lanes trace8] [--work /tmp/lstm-dse-bench]

Each round runs `lstm-dse bench engine --lanes L --reps 5 --device cpu` on the layer-1024
workload that `tools/bench_onnxruntime.py` writes into --work (run that script once first),
once per binary in turn, then times onnxruntime on the same file (`time_ort`, 9 runs, 2
threads). A round counts only when the machine was idle (under 8% busy over 0.4 s) before it
and after it, so other people's builds do not pollute it; busy moments are waited out. Prints
every kept round and the medians (results/bench/engine.md quotes them).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_onnxruntime import time_ort  # noqa: E402

import numpy as np  # noqa: E402


def busy(dt=0.4):
    """Fraction of the machine's CPU time not idle over `dt` seconds (/proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = list(map(int, f.readline().split()[1:]))
        return sum(v), v[3] + v[4]

    t0, i0 = snap()
    time.sleep(dt)
    t1, i1 = snap()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rounds", type=int)
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--lanes", default="trace8")
    ap.add_argument("--work", default="/tmp/lstm-dse-bench")
    a = ap.parse_args()
    model = Path(a.work) / "layer-1024.onnx"
    inp = Path(a.work) / "layer-1024.x.npy"
    x = np.load(inp)

    def run(b):
        out = subprocess.run(
            [b, "bench", "engine", "--model", str(model), "--input", str(inp),
             "--lanes", a.lanes, "--reps", "5", "--device", "cpu"],
            capture_output=True, text=True, check=True).stdout
        return float(next(l for l in out.splitlines() if l.startswith("| cpu-")).split("|")[4])

    names = [os.path.basename(b) for b in a.bins] + ["onnxruntime"]
    kept = {n: [] for n in names}
    tries = 0
    while len(kept["onnxruntime"]) < a.rounds and tries < 200 * a.rounds:
        tries += 1
        if busy() > 0.08:
            time.sleep(2)
            continue
        got = [run(b) for b in a.bins] + [time_ort(model, x, 9, os.cpu_count())]
        if busy(0.2) > 0.08:
            continue
        for n, v in zip(names, got):
            kept[n].append(v)
        print(time.strftime("%H:%M:%S"), " ".join(f"{n}={v:.4f}" for n, v in zip(names, got)),
              flush=True)
    for n in names:
        if kept[n]:
            print(f"{n} median {statistics.median(kept[n]):.4f} s over {len(kept[n])} rounds")


if __name__ == "__main__":
    main()
