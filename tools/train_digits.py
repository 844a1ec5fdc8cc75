#!/usr/bin/env python3
"""Train, export and evaluate a small real LSTM classifier on scikit-learn's digits (see models/README.md).

Usage:  pip install -r tools/requirements-train.txt && python3 tools/train_digits.py [--out DIR]

Data: sklearn.datasets.load_digits() (UCI "Optical Recognition of Handwritten Digits", CC BY 4.0; bundled
in the scikit-learn wheel, no download). Each 8x8 image is a sequence of T=8 rows of I=8 pixels scaled to
0..1. Split: indices shuffled by numpy RandomState(0); the first 1297 train, the last 500 are held out.

Model: nn.LSTM(8, 64, num_layers=2) -> nn.Linear(64, 10) at every step -> softmax. Trained with
cross-entropy on the last step's logits only; the class is argmax of the last step's output.

Writes into --out (default models/):
  digits_lstm.onnx               opset 17, input x [T, N, 8], output y [T, N, 10] (T, N dynamic)
  digits_lstm.safetensors        float32 state_dict (lstm.*, fc.*)
  digits_test.x.npy              float32 [500, 8, 8]  held-out inputs, batch-first [N, T, I]
  digits_test.labels.npy         float32 [500]        held-out labels 0.0..9.0
Deterministic: fixed seeds, one CPU thread, deterministic torch algorithms.
"""
import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from torch import nn

SEED = 0
N_TRAIN, N_TEST = 1297, 500
T, I, H, L, C = 8, 8, 64, 2, 10
EPOCHS, BATCH, LR = 60, 64, 1e-2
OPSET = 17


class DigitsLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(input_size=I, hidden_size=H, num_layers=L)
        self.fc = nn.Linear(H, C)

    def logits(self, x):  # x: [T, N, I] -> [T, N, C]
        y, _ = self.lstm(x)
        return self.fc(y)

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=-1)


def load_split():
    d = load_digits()
    x = (d.images.astype(np.float64) / 16.0).astype(np.float32)  # [1797, 8 rows (T), 8 cols (I)]
    y = d.target.astype(np.int64)
    assert x.shape == (N_TRAIN + N_TEST, T, I)
    idx = np.random.RandomState(SEED).permutation(len(x))
    tr, te = idx[:N_TRAIN], idx[N_TRAIN:]
    return x[tr], y[tr], x[te], y[te]


def train(xtr, ytr):
    torch.manual_seed(SEED)
    model = DigitsLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    lossf = nn.CrossEntropyLoss()
    xt = torch.from_numpy(xtr).transpose(0, 1).contiguous()  # [T, N, I]
    yt = torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(SEED)
    for ep in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        tot, correct = 0.0, 0
        for b in range(0, len(perm), BATCH):
            j = perm[b:b + BATCH]
            out = model.logits(xt[:, j])[-1]  # last step's logits [B, C]
            loss = lossf(out, yt[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(j)
            correct += (out.argmax(-1) == yt[j]).sum().item()
        sched.step()
        if ep % 10 == 9 or ep == EPOCHS - 1:
            print(f"epoch {ep + 1:3d}  loss {tot / len(ytr):.4f}  train acc {correct / len(ytr):.4f}")
    return model.eval()


def export(model, path):
    dummy = torch.zeros(T, 2, I)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=OPSET,
                          do_constant_folding=True, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "T", 1: "N"}, "y": {0: "T", 1: "N"}})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    np.random.seed(SEED)

    xtr, ytr, xte, yte = load_split()
    t0 = time.perf_counter()
    model = train(xtr, ytr)
    print(f"training time {time.perf_counter() - t0:.1f} s (1 thread)")

    onnx_path = args.out / "digits_lstm.onnx"
    export(model, onnx_path)
    state = {k: v.detach().contiguous().float() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / "digits_lstm.safetensors"))
    np.save(args.out / "digits_test.x.npy", np.ascontiguousarray(xte, dtype=np.float32))
    np.save(args.out / "digits_test.labels.npy", yte.astype(np.float32))

    # Evaluate on the held-out set: ORT on the exported graph, and torch, layout [T, N, I].
    x_tn = np.ascontiguousarray(xte.transpose(1, 0, 2))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    y_ort = sess.run(["y"], {"x": x_tn})[0]
    with torch.no_grad():
        y_pt = model(torch.from_numpy(x_tn)).numpy()
    assert y_ort.shape == (T, N_TEST, C), y_ort.shape
    acc_ort = float((y_ort[-1].argmax(-1) == yte).mean())
    acc_pt = float((y_pt[-1].argmax(-1) == yte).mean())
    print(f"test accuracy (onnxruntime, fp32): {acc_ort:.4f}  ({int(round(acc_ort * N_TEST))}/{N_TEST})")
    print(f"test accuracy (torch, fp32):       {acc_pt:.4f}")
    print(f"max |torch - ort| over y:          {np.abs(y_ort - y_pt).max():.3e}")
    for p in sorted(args.out.glob("digits_*")):
        print(f"{p.stat().st_size:>9d}  {p}")


if __name__ == "__main__":
    main()
