#!/usr/bin/env python3
"""Train, export and evaluate LSTM keyword spotters on words spoken by espeak-ng (see models/README.md).

Usage:  apt-get install espeak-ng
        pip install -r tools/requirements-train.txt && python3 tools/train_kws.py [--out DIR] [--cache FILE]

Data: the 10 keywords below, each synthesized by Debian's espeak-ng once per voice, a voice being an English
dialect (the 8 espeak-ng English voices) with a voice variant (espeak-ng's variants, `-v en-us+Andy`), at a
random speed (-s) and pitch (-p). Split BY VOICE VARIANT: every 5th variant in sorted order is held out
(all its dialects); nothing else of the audio differs between train and test. Each clean utterance is
trimmed, resampled to 16 kHz (FFT resampling, numpy), placed at a random offset in a 1.015 s window,
scaled by a random gain and mixed with white or pink noise at a random SNR; training utterances are
augmented this way AUG_TRAIN times, held-out ones once.

Features: 40 log-mel bands (25 ms Hann window, 10 ms hop, 512-point FFT, 20-8000 Hz, ln(mel + 1e-6)),
100 frames, then normalised per band with the TRAINING set's mean and standard deviation (written to
kws_norm.npy; the committed test inputs are already normalised, the models expect normalised input).

Models: nn.LSTM(40, 128, num_layers=2) (kws_lstm) and nn.LSTM(40, 64, num_layers=2, bidirectional=True)
(kws_bilstm), each -> nn.Linear(., 10) at every step -> softmax; forget-gate bias initialised to 1. Trained
with cross-entropy at every step weighted linearly from 0 (first frame) to 1 (last frame); the class is
argmax of the LAST step's output.

Writes into --out (default models/):
  kws_lstm.onnx, kws_bilstm.onnx  opset 17, input x [T, N, 40], output y [T, N, 10] (T, N dynamic)
  kws_test.x.npy                  float32 [N_SLICE, 100, 40]  normalised held-out features, batch-first
  kws_test.labels.npy             float32 [N_SLICE]           their keyword index (0..9, order of KEYWORDS)
  kws_norm.npy                    float32 [2, 40]             training mean (row 0) and std (row 1) per band
Prints held-out accuracy (all held-out utterances and the committed slice) by onnxruntime and torch.
Deterministic: fixed seeds (numpy per utterance, torch), one CPU thread, deterministic torch algorithms;
espeak-ng's output for given arguments is deterministic.
"""
import argparse
import io
import subprocess
import time
import warnings
import wave
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

SEED = 0
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
DIALECTS = ["en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
            "en-029", "en-us-nyc"]
VARIANT_DIR = "espeak-ng-data/voices/!v"
TEST_EVERY = 5  # every 5th variant (sorted) is held out
SPEED = (110, 230)  # words per minute, uniform
PITCH = (15, 85)  # espeak-ng pitch 0..99, uniform
SNR_DB = (0.0, 30.0)  # uniform
GAIN_DB = (-12.0, 0.0)  # uniform
AUG_TRAIN = 2
SR_IN, SR = 22050, 16000
WIN, HOP, NFFT, MELS, FRAMES = 400, 160, 512, 40, 100
SAMPLES = WIN + HOP * (FRAMES - 1)  # 16240 samples = 1.015 s -> exactly 100 frames
N_SLICE = 100  # committed held-out slice: 10 per keyword
EPOCHS = {"kws_lstm": 8, "kws_bilstm": 8}
BATCH, LR = 64, 1e-2
OPSET = 17


def variants():
    """espeak-ng's voice variants (file names under espeak-ng-data/voices/!v), sorted; names with spaces skipped."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()[1:]]
    # columns: Pty Language Age/Gender VoiceName File [Other Languages]; a File with a space is skipped
    return sorted({r[4].split("/", 1)[1] for r in rows if len(r) == 5 or (len(r) > 5 and r[5].startswith("("))})


def synthesize(voice, word, speed, pitch):
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                         capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as f:  # --stdout leaves the frame count unset: read to the end
        assert f.getframerate() == SR_IN and f.getsampwidth() == 2 and f.getnchannels() == 1
        x = np.frombuffer(f.readframes(1 << 30), dtype="<i2").astype(np.float64) / 32768.0
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    x = x[loud[0]:loud[-1] + 1]
    n = int(round(len(x) * SR / SR_IN))  # band-limited resampling: truncate the spectrum
    return np.fft.irfft(np.fft.rfft(x)[:n // 2 + 1], n) * (n / len(x))


def mel_filterbank():
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    edges = hz(np.linspace(mel(20.0), mel(SR / 2), MELS + 2))
    bins = np.fft.rfftfreq(NFFT, 1.0 / SR)
    fb = np.zeros((MELS, len(bins)))
    for m in range(MELS):
        lo, c, hi = edges[m:m + 3]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0.0, None)
    return fb


FB = mel_filterbank()
WINDOW = np.hanning(WIN + 2)[1:-1]


def augment(clean, rng):
    """Random shift, gain and noise; returns SAMPLES samples."""
    x = clean[:SAMPLES] * 10.0 ** (rng.uniform(*GAIN_DB) / 20.0)
    out = np.zeros(SAMPLES)
    at = rng.integers(0, SAMPLES - len(x) + 1)
    out[at:at + len(x)] = x
    noise = rng.standard_normal(SAMPLES)
    if rng.random() < 0.5:  # pink: 1/sqrt(f) amplitude
        spec = np.fft.rfft(noise)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        spec[0] = 0.0
        noise = np.fft.irfft(spec, SAMPLES)
    p_sig = np.mean(x ** 2)
    noise *= np.sqrt(p_sig / np.mean(noise ** 2) / 10.0 ** (rng.uniform(*SNR_DB) / 10.0))
    return out + noise


def log_mel(x):
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP] * WINDOW  # [100, 400]
    power = np.abs(np.fft.rfft(frames, NFFT)) ** 2
    return np.log(power @ FB.T + 1e-6)  # [100, 40]


def build(cache):
    if cache is not None and cache.exists():
        d = np.load(cache)
        print(f"features from {cache}")
        return d["xtr"], d["ytr"], d["xte"], d["yte"], d["vte"], [str(v) for v in d["test_variants"]]
    names = variants()
    test_variants = names[TEST_EVERY - 1::TEST_EVERY]
    feats = {"train": ([], []), "test": ([], [], [])}
    t0, k = time.perf_counter(), 0
    for vi, var in enumerate(names):
        part = "test" if var in test_variants else "train"
        for di, dialect in enumerate(DIALECTS):
            for wi, word in enumerate(KEYWORDS):
                rng = np.random.default_rng([SEED, vi, di, wi])
                clean = synthesize(f"{dialect}+{var}", word, rng.integers(SPEED[0], SPEED[1] + 1),
                                   rng.integers(PITCH[0], PITCH[1] + 1))
                for _ in range(AUG_TRAIN if part == "train" else 1):
                    feats[part][0].append(log_mel(augment(clean, rng)).astype(np.float32))
                    feats[part][1].append(wi)
                    if part == "test":
                        feats[part][2].append(vi * len(DIALECTS) + di)
                k += 1
        print(f"synthesized {k} utterances ({vi + 1}/{len(names)} variants), {time.perf_counter() - t0:.0f} s",
              flush=True)
    xtr, ytr = np.stack(feats["train"][0]), np.array(feats["train"][1])
    xte, yte, vte = np.stack(feats["test"][0]), np.array(feats["test"][1]), np.array(feats["test"][2])
    if cache is not None:
        np.savez(cache, xtr=xtr, ytr=ytr, xte=xte, yte=yte, vte=vte, test_variants=np.array(test_variants))
    return xtr, ytr, xte, yte, vte, test_variants


class KwsLSTM(nn.Module):
    def __init__(self, hidden, bidirectional):
        super().__init__()
        self.lstm = nn.LSTM(input_size=MELS, hidden_size=hidden, num_layers=2, bidirectional=bidirectional)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), len(KEYWORDS))
        with torch.no_grad():  # forget-gate input bias 1 (gate order i, f, g, o): remember by default
            for name, b in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    b[hidden:2 * hidden] = 1.0

    def logits(self, x):  # x: [T, N, 40] -> [T, N, 10]
        y, _ = self.lstm(x)
        return self.fc(y)

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=-1)


def train(model, xtr, ytr, epochs):
    torch.manual_seed(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    steps = epochs * ((len(ytr) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.1)
    # Cross-entropy at every step, weighted linearly from 0 (first frame) to 1 (last frame): the last step's
    # output is the one read, the earlier steps give the gradient shorter paths into the LSTM.
    weight = torch.linspace(0.0, 1.0, FRAMES)
    weight = (weight / weight.sum())[:, None]
    xt = torch.from_numpy(xtr).transpose(0, 1).contiguous()  # [T, N, 40]
    yt = torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(SEED)
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        tot, correct = 0.0, 0
        for b in range(0, len(perm), BATCH):
            j = perm[b:b + BATCH]
            logits = model.logits(xt[:, j])  # [T, B, C]
            ce = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yt[j].repeat(FRAMES),
                                             reduction="none").view(FRAMES, -1)
            loss = (ce * weight).sum(0).mean()
            out = logits[-1]  # last step's logits [B, C]
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += loss.item() * len(j)
            correct += (out.argmax(-1) == yt[j]).sum().item()
        print(f"epoch {ep + 1:3d}  loss {tot / len(ytr):.4f}  train acc {correct / len(ytr):.4f}  "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return model.eval()


def export(model, path):
    dummy = torch.zeros(FRAMES, 2, MELS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=OPSET,
                          do_constant_folding=True, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "T", 1: "N"}, "y": {0: "T", 1: "N"}})


def evaluate(model, onnx_path, x_ntf, y, label):
    """Accuracy of the last step's class by onnxruntime (and torch, unless model is None)."""
    x_tn = np.ascontiguousarray(x_ntf.transpose(1, 0, 2))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    y_ort = sess.run(["y"], {"x": x_tn})[0]
    acc_ort = float((y_ort[-1].argmax(-1) == y).mean())
    line = f"{onnx_path.stem} {label}: accuracy onnxruntime {acc_ort:.4f} ({int(round(acc_ort * len(y)))}/{len(y)})"
    if model is not None:
        with torch.no_grad():
            y_pt = model(torch.from_numpy(x_tn)).numpy()
        acc_pt = float((y_pt[-1].argmax(-1) == y).mean())
        line += f", torch {acc_pt:.4f}; max |torch - ort| {np.abs(y_ort - y_pt).max():.2e}"
    print(line)
    return y_ort


def test_slice(yte, vte, variant_ids):
    """N_SLICE held-out utterances balanced over keyword, voice variant and dialect: keyword k takes the
    held-out variants t (0..19 in sorted order) with t + k even, each in dialect (t + 3k) mod 8."""
    pick = [np.flatnonzero((yte == k) & (vte == v * len(DIALECTS) + (t + 3 * k) % len(DIALECTS)))[0]
            for k in range(len(KEYWORDS)) for t, v in enumerate(variant_ids) if (t + k) % 2 == 0]
    assert len(pick) == N_SLICE, len(pick)
    return np.array(pick)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--cache", type=Path, help="keep the synthesized features in this .npz and reuse them")
    ap.add_argument("--only", choices=sorted(EPOCHS), help="train just one of the two models")
    ap.add_argument("--eval-only", action="store_true",
                    help="train nothing: write the test slice and evaluate the .onnx files already in --out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    xtr, ytr, xte, yte, vte, test_variants = build(args.cache)
    mean, std = xtr.mean(axis=(0, 1)), xtr.std(axis=(0, 1))
    norm = lambda x: ((x - mean) / std).astype(np.float32)
    xtr, xte = norm(xtr), norm(xte)
    print(f"train {len(ytr)} utterances, held out {len(yte)} (variants {', '.join(test_variants)})")
    pick = test_slice(yte, vte, sorted(np.unique(vte // len(DIALECTS))))
    np.save(args.out / "kws_test.x.npy", np.ascontiguousarray(xte[pick]))
    np.save(args.out / "kws_test.labels.npy", yte[pick].astype(np.float32))
    np.save(args.out / "kws_norm.npy", np.stack([mean, std]).astype(np.float32))

    configs = {"kws_lstm": (128, False), "kws_bilstm": (64, True)}
    for name, (hidden, bi) in configs.items():
        if args.only and name != args.only:
            continue
        path = args.out / f"{name}.onnx"
        if args.eval_only:
            evaluate(None, path, xte, yte, f"all {len(yte)} held-out utterances")
            evaluate(None, path, xte[pick], yte[pick], f"committed slice of {len(pick)}")
            continue
        torch.manual_seed(SEED)
        t0 = time.perf_counter()
        model = train(KwsLSTM(hidden, bi), xtr, ytr.astype(np.int64), EPOCHS[name])
        print(f"{name}: training time {time.perf_counter() - t0:.1f} s (1 thread)")
        export(model, path)
        evaluate(model, path, xte, yte, f"all {len(yte)} held-out utterances")
        evaluate(model, path, xte[pick], yte[pick], f"committed slice of {len(pick)}")
    for p in sorted(args.out.glob("kws_*")):
        print(f"{p.stat().st_size:>9d}  {p}")


if __name__ == "__main__":
    main()
