"""The dense head of §8 / §15 on the last layer's output: the rows it reads (every step, the
last step, the final states) and its layers in f32 (as the binary runs them) or f64 (the
reference)."""
import numpy as np
from numerics_oracle import head_f32, head_f64, tanh_det


def head_rows(h, mode, D):
    """§8: the rows a head reads from the last layer's [N, T, D*H] output, as [N, rows, D*H]:
    every step, the last step, or each direction's final state (forward at T-1, reverse at 0)."""
    if mode == "every-step":
        return h
    if mode == "last-step":
        return h[:, -1:]
    H = h.shape[-1] // D
    return np.concatenate([h[:, -1:, :H]] + ([h[:, :1, H:]] if D == 2 else []), axis=2)


def dense_f32(layer, h):
    """One dense layer of §8 in f32: relu is max(y, 0), tanh §4's reproducible f32 tanh."""
    Wh, bh, kind = layer
    if kind in ("relu", "tanh"):
        y = head_f32((Wh, bh, "none"), h)
        return np.maximum(y, np.float32(0)) if kind == "relu" else tanh_det(y).astype(np.float32)
    return head_f32(layer, h)


def dense_f64(layer, h):
    Wh, bh, kind = layer
    if kind in ("relu", "tanh"):
        y = head_f64((Wh, bh, "none"), h)
        return np.maximum(y, 0.0) if kind == "relu" else np.tanh(y)
    return head_f64(layer, h)


def run_head(dense, head, h):
    """The head's layers in turn over the rows it reads of `h` ([N, T, D*H])."""
    y = head_rows(h, head["input"], head["directions"])
    for layer in head["layers"]:
        y = dense(layer, y)
    return y
