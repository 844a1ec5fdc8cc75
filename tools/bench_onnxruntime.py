#!/usr/bin/env python3
"""The engine benchmark, side by side with onnxruntime on the same ONNX files and inputs.

Usage (from the repo root, after `cargo build --release`):

    pip install onnx onnxruntime numpy
    python3 tools/bench_onnxruntime.py [--bin target/release/lstm-dse] [--reps 5] \
        [--work /tmp/lstm-dse-bench] [--out FILE] [--quick]

It writes three ONNX models with seeded random weights (PyTorch's init range) and their inputs
into --work: a single LSTM layer I = H = 1024 (16 sequences x 50 steps), a GNMT-like stack of
8 layers of 1024 (16 x 50), and a small model (40 features -> 64 -> 64, 64 x 100). For each it
times onnxruntime (CPUExecutionProvider, intra-op threads = the machine's cores, median of
--reps session.run calls after a warm-up), then runs `lstm-dse bench engine` on the same files
in the same session, and prints one markdown table with the GMAC/s of every lane kind and its
ratio to onnxruntime's fp32 (also written to --out FILE when given; a new file only: it never
overwrites one, so results/bench/engine.md, the hand-kept history of these tables, is safe).
"""
import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def lstm_stack(name, inputs, hidden, layers, seed):
    """An ONNX graph of `layers` stacked unidirectional LSTM nodes, X [T, N, I] -> Y [T, 1, N, H]."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden)
    u = lambda *s: rng.uniform(-bound, bound, s).astype(np.float32)
    nodes, inits, x = [], {"shape": np.array([0, 0, -1], np.int64)}, "X"
    width = inputs
    for l in range(layers):
        w, r, b = f"W{l}", f"R{l}", f"B{l}"
        inits[w], inits[r], inits[b] = u(1, 4 * hidden, width), u(1, 4 * hidden, hidden), u(1, 8 * hidden)
        y = "Y" if l == layers - 1 else f"Y{l}"
        nodes.append(helper.make_node("LSTM", [x, w, r, b], [y], name=f"lstm{l}", hidden_size=hidden))
        if l < layers - 1:
            nodes.append(helper.make_node("Transpose", [y], [f"{y}t"], name=f"t{l}", perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"{y}t", "shape"], [f"X{l + 1}"], name=f"r{l}"))
            x = f"X{l + 1}"
        width = hidden
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", inputs])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, "N", hidden])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="lstm-dse bench_onnxruntime.py")
    m.ir_version = 8
    return m


def macs_per_lane_step(inputs, hidden, layers):
    return sum(4 * hidden * ((inputs if l == 0 else hidden) + hidden) for l in range(layers))


def time_ort(path, x_ntc, reps, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {"X": np.ascontiguousarray(x_ntc.transpose(1, 0, 2))}
    sess.run(None, feed)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/lstm-dse")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work", default="/tmp/lstm-dse-bench")
    ap.add_argument("--out", help="also write the table here (a new file; never overwrites)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes: checks the script, not for quoting")
    ap.add_argument("--device", default="cpu", help="passed to `lstm-dse bench engine --device`")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    threads = os.cpu_count() or 1
    workloads = [
        # name, inputs, hidden, layers, sequences, steps, lanes
        ("layer-1024", 1024, 1024, 1, 16, 50,
         "fp32,fp16,bf16,fp8e4m3,fx16,fx12,fx10,fx8,fx6,reference,trace8,policy"),
        ("gnmt-8x1024", 1024, 1024, 8, 16, 50, "fp32,fx8"),
        ("small-64", 40, 64, 2, 64, 100, "fp32,fp16,bf16,fx16,fx8,trace8,policy"),
    ]
    if a.quick:
        workloads = [(n, min(i, 64), min(h, 32), l, 4, 5, lanes) for n, i, h, l, _, _, lanes in workloads]
    rows = []
    for name, inputs, hidden, layers, n, t, lanes in workloads:
        model = work / f"{name}.onnx"
        onnx.save(lstm_stack(name, inputs, hidden, layers, seed=len(name)), str(model))
        x = np.random.default_rng(1).standard_normal((n, t, inputs)).astype(np.float32)
        xpath = work / f"{name}.x.npy"
        np.save(xpath, x)
        ort_s = time_ort(model, x, a.reps, threads)
        gmac = n * t * macs_per_lane_step(inputs, hidden, layers) / 1e9
        rows.append((name, "onnxruntime fp32", "1", f"{ort_s:.4f}", f"{gmac / ort_s:.1f}", "1.00"))
        print("| " + " | ".join(rows[-1]) + " |", file=sys.stderr, flush=True)
        cmd = [a.bin, "bench", "engine", "--model", str(model), "--input", str(xpath),
               "--lanes", lanes, "--reps", str(a.reps), "--device", a.device, "--csv"]
        print("+", " ".join(cmd), file=sys.stderr)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        for engine, kind, configs, median_s, gmac_s in list(csv.reader(out.strip().splitlines()))[1:]:
            ratio = float(gmac_s) / (gmac / ort_s)
            rows.append((name, f"{engine} {kind}", configs, f"{float(median_s):.4f}", f"{float(gmac_s):.1f}", f"{ratio:.2f}"))
            print("| " + " | ".join(rows[-1]) + " |", file=sys.stderr, flush=True)
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = [
        "# Engine throughput against onnxruntime, same ONNX files and inputs, one session",
        "",
        "Command (repo root, release build):",
        "",
        "```",
        f"python3 tools/bench_onnxruntime.py --reps {a.reps}{' --quick' if a.quick else ''}",
        "```",
        "",
        f"Machine: {cpu}, {threads} cores ({platform.system()}); onnxruntime {ort.__version__} "
        f"with {threads} intra-op threads. Median of {a.reps} runs after a warm-up. GMAC/s counts "
        "the LSTM layers' multiply-accumulates of every lane (4H(I+H) per lane-step); a row with "
        "k configs counts k times the work of one. `ratio` is GMAC/s over onnxruntime's fp32 GMAC/s.",
        "`trace8` is `lstm-dse trace --precisions \"fx16;fx12;fx10;fx8;fx6;fp16;bf16;fp8e4m3\"` "
        "(plus the float64 reference it always runs, which is also its calibration run, timed "
        "alone as `reference`; `configs` counts the eight and the reference); "
        "`policy` is one closed-loop dynamic-precision policy (levels fx8,fx16, causal, max_abs) "
        "per sequence. `cpu-avx512+amx`: integer products on AMX tiles.",
        "",
        "| workload | engine / lanes | configs | median s | GMAC/s | ratio to onnxruntime |",
        "|---|---|---|---|---|---|",
    ]
    text += ["| " + " | ".join(r) + " |" for r in rows]
    print("\n".join(text))
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with out.open("x") as f:
                f.write("\n".join(text) + "\n")
        except FileExistsError:
            sys.exit(f"{out}: exists; the table is printed above, not written over it")


if __name__ == "__main__":
    main()
