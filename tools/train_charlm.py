#!/usr/bin/env python3
"""Train, export and evaluate a character-level LSTM language model on Debian's fortune cookies (see models/README.md).

Usage:  apt-get install fortunes fortunes-min
        pip install -r tools/requirements-train.txt && python3 tools/train_charlm.py [--out DIR] [--fortunes DIR]

Data: every cookie file of Debian's `fortunes` and `fortunes-min` packages (/usr/share/games/fortunes, the
non-offensive set; licence: see the package's copyright file, BSD) except `ascii-art` (pictures, not text).
A document is one cookie (the text between two `%` lines). Split BY DOCUMENT: all cookies, sorted by
(file, position), are permuted by numpy RandomState(0); 5% are held out, the rest are training text. A text
stream is the cookies joined by "\n%\n" (the files' own separator), each stream ending in "\n%\n".

Vocabulary: the characters that occur >= MIN_COUNT times in the training stream (sorted by code point), plus
one last symbol, OTHER, for every other character. Input: one-hot float32 [T, N, V]; target: the next character.

Model: nn.LSTM(V, 256, num_layers=2) -> nn.Linear(256, V) at every step -> softmax. Trained with cross-entropy
at every step on random windows of 128 + 1 characters of the training stream (zero initial state per window),
batch 16, Adam with lr 6e-3 annealed (cosine) to 0 over 6000 steps, gradient norm clipped to 1.

Writes into --out (default models/):
  charlm_lstm.onnx             opset 17, input x [T, N, V], output y [T, N, V] (T, N dynamic)
  charlm_test.x.npy            float32 [N_SLICE, T_SLICE, V]  one-hot held-out text, batch-first [N, T, V]
  charlm_test.labels.npy       float32 [N_SLICE, T_SLICE]     the next character's index at every step
  charlm_vocab.txt             the vocabulary, one symbol per line as a Python string literal, index = line
Prints bits per character (and next-char top-1 accuracy) on the whole held-out text and on the slice, by
onnxruntime and torch. Deterministic: fixed seeds, one CPU thread, deterministic torch algorithms.
"""
import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

SEED = 0
FORTUNES = Path("/usr/share/games/fortunes")
EXCLUDE = {"ascii-art"}
HELD_OUT = 0.05  # fraction of documents (cookies) held out
MIN_COUNT = 500  # rarer characters map to OTHER
SEP = "\n%\n"
H, L = 256, 2
STEPS, BATCH, WINDOW, LR, CLIP = 6000, 16, 128, 6e-3, 1.0
EVAL_LEN = 2000  # held-out text is evaluated as sequences of this many characters (zero initial state each)
N_SLICE, T_SLICE = 32, 100  # committed held-out slice
OPSET = 17


class CharLSTM(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.lstm = nn.LSTM(input_size=v, hidden_size=H, num_layers=L)
        self.fc = nn.Linear(H, v)

    def logits(self, x):  # x: [T, N, V] one-hot -> [T, N, V]
        y, _ = self.lstm(x)
        return self.fc(y)

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=-1)


def read_documents(root):
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and not p.is_symlink() and p.suffix == "" and p.name not in EXCLUDE)
    if not files:
        raise SystemExit(f"{root}: no fortune files (apt-get install fortunes fortunes-min)")
    docs = []
    for p in files:
        text = p.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
        docs += [d.strip("\n") for d in text.split("\n%\n") if d.strip("%\n \t")]
    return [f.name for f in files], docs


def split(docs):
    idx = np.random.RandomState(SEED).permutation(len(docs))
    n_test = int(round(HELD_OUT * len(docs)))
    test, train = idx[:n_test], idx[n_test:]
    stream = lambda ids: SEP.join(docs[i] for i in ids) + SEP
    return stream(train), stream(test), len(train), len(test)


def vocabulary(train_text):
    chars, counts = np.unique(np.frombuffer(train_text.encode("utf-32-le"), dtype=np.uint32), return_counts=True)
    return [chr(c) for c, n in zip(chars, counts) if n >= MIN_COUNT]  # OTHER is index len(vocab)


def encode(text, vocab):
    table = {c: i for i, c in enumerate(vocab)}
    other = len(vocab)
    return np.array([table.get(c, other) for c in text], dtype=np.int64)


def one_hot(ids, v):  # [..] int -> [.., V] float32
    out = np.zeros(ids.shape + (v,), dtype=np.float32)
    np.put_along_axis(out, ids[..., None], 1.0, axis=-1)
    return out


def train(ids, v):
    torch.manual_seed(SEED)
    model = CharLSTM(v)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
    lossf = nn.CrossEntropyLoss()
    data = torch.from_numpy(ids)
    eye = torch.eye(v)
    gen = torch.Generator().manual_seed(SEED)
    t0, run = time.perf_counter(), 0.0
    for step in range(STEPS):
        start = torch.randint(0, len(ids) - WINDOW - 1, (BATCH,), generator=gen)
        win = torch.stack([data[s:s + WINDOW + 1] for s in start.tolist()], dim=1)  # [W+1, B]
        out = model.logits(eye[win[:-1]])  # [W, B, V]
        loss = lossf(out.reshape(-1, v), win[1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        sched.step()
        run = 0.98 * run + 0.02 * loss.item() if step else loss.item()
        if step % 250 == 249 or step == STEPS - 1:
            print(f"step {step + 1:5d}  train loss {run / np.log(2):.3f} bits/char  "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return model.eval()


def export(model, v, path):
    dummy = torch.zeros(8, 2, v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=OPSET,
                          do_constant_folding=True, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "T", 1: "N"}, "y": {0: "T", 1: "N"}})


def score(probs, targets):
    """probs [T, N, V] softmax, targets [T, N] -> (bits per character, next-char top-1 accuracy)."""
    p = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0].astype(np.float64)
    return float(-np.log2(np.maximum(p, 1e-30)).mean()), float((probs.argmax(-1) == targets).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--fortunes", type=Path, default=FORTUNES, help="directory of the fortune cookie files")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    np.random.seed(SEED)

    files, docs = read_documents(args.fortunes)
    train_text, test_text, n_tr, n_te = split(docs)
    vocab = vocabulary(train_text)
    v = len(vocab) + 1
    tr_ids, te_ids = encode(train_text, vocab), encode(test_text, vocab)
    print(f"{len(files)} files, {len(docs)} cookies: {n_tr} train ({len(train_text)} chars), "
          f"{n_te} held out ({len(test_text)} chars); vocabulary {v} symbols "
          f"(OTHER: {(tr_ids == v - 1).mean():.2%} of train, {(te_ids == v - 1).mean():.2%} of held-out)")

    t0 = time.perf_counter()
    model = train(tr_ids, v)
    print(f"training time {time.perf_counter() - t0:.1f} s (1 thread), "
          f"{STEPS * BATCH * WINDOW / len(tr_ids):.2f} passes over the training text")

    onnx_path = args.out / "charlm_lstm.onnx"
    export(model, v, onnx_path)
    with open(args.out / "charlm_vocab.txt", "w", encoding="ascii") as f:
        f.writelines(ascii(c) + "\n" for c in vocab + ["OTHER"])

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

    def evaluate(ids_tn, label):  # ids_tn [T+1, N]
        x = one_hot(ids_tn[:-1], v)
        y_ort = sess.run(["y"], {"x": x})[0]
        with torch.no_grad():
            y_pt = model(torch.from_numpy(x)).numpy()
        (b_o, a_o), (b_p, a_p) = score(y_ort, ids_tn[1:]), score(y_pt, ids_tn[1:])
        print(f"{label}: bits/char onnxruntime {b_o:.4f} torch {b_p:.4f}; next-char top-1 "
              f"onnxruntime {a_o:.4f} torch {a_p:.4f}; max |torch - ort| {np.abs(y_ort - y_pt).max():.2e}")
        return x

    # The whole held-out text: N sequences of EVAL_LEN characters (the tail shorter than that is dropped).
    n = (len(te_ids) - 1) // EVAL_LEN
    full = np.stack([te_ids[i * EVAL_LEN:(i + 1) * EVAL_LEN + 1] for i in range(n)], axis=1)
    evaluate(full, f"held-out text, {n} x {EVAL_LEN} chars")
    # The committed slice: N_SLICE sequences of T_SLICE characters, evenly spaced through the held-out text.
    starts = np.linspace(0, len(te_ids) - T_SLICE - 2, N_SLICE).astype(np.int64)
    sl = np.stack([te_ids[s:s + T_SLICE + 1] for s in starts], axis=1)  # [T+1, N]
    x = evaluate(sl, f"committed slice, {N_SLICE} x {T_SLICE} chars")
    np.save(args.out / "charlm_test.x.npy", np.ascontiguousarray(x.transpose(1, 0, 2)))
    np.save(args.out / "charlm_test.labels.npy", np.ascontiguousarray(sl[1:].T.astype(np.float32)))
    for p in sorted(args.out.glob("charlm_*")):
        print(f"{p.stat().st_size:>9d}  {p}")


if __name__ == "__main__":
    main()
