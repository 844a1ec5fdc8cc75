"""What a case draws from: the level sets (each marked nested or not), the metrics, and
`model`, a random LSTM of 1-2 layers with an optional one- or two-layer dense head, as
safetensors tensors."""
import numpy as np

LEVEL_SETS = [
    ("fx8,fx16", True), ("fx4,fx8,fx12", True), ("fx6,fx16", True), ("fx8,fx12.9", True),
    ("w=fx8,a=fx8,c=fx12;w=fx12,a=fx12,c=fx16", True), ("fx3,fx5,fx7,fx9", True),
    ("w=fx6,a=fx8;w=fx8,a=fx10,p=fx12,c=fx14", True),
    ("fp8e4m3,fp16", False), ("fx8;bf16;fp32", False), ("fx8.5;fx16", False),
    ("fp8e5m2;e5m6;fp32", False), ("fx8;w=fx8,a=fp16,c=fp32", False), ("bf16;fp32", False),
    ("fx6;fx12.8", True), ("e4m3;fp16", False), ("fx4,fx12.2", True), ("fx2,fx16.0", True),
    ("fx3,fx8.10", True), ("fx2,fx3", True), ("fx5.4;fx9", False), ("fp8e4m3;fx12", False),
    ("fx8,wscale=channel;fx16", False), ("fx6,wscale=channel;fx10,wscale=channel;fp32", False),
    ("fp8e4m3;fx12,wscale=channel", False), ("fx4;w=fx8,a=fx8,wscale=channel", False),
    ("fx8,cal=p99;fx16,cal=p99", True), ("fx6,cal=p90;fx8,cal=p90;fx12,cal=p90", True),
    ("fx8,cal=p99;fx16", False), ("fp8e4m3;fx12,cal=p95", False),
]
METRICS = ["max_abs", "mean_abs", "frac_above:0.01", "frac_above:0", "rel_max_abs:0.01",
           "rel_max_abs:1e-6", "mean_abs", "max_abs"]


def model(rng, g):
    I, H = rng.choice([1, 3, 5, 6, 7, 7, 19]), rng.choice([1, 3, 5, 6, 7, 7, 33])
    L, D = rng.choice([1, 1, 2]), 2 if rng.random() < 0.4 else 1
    wscale = rng.choice([0.3, 0.7, 1.5, 3.0, 12.0])
    tensors, layers, width = {}, [], I
    for l in range(L):
        dirs = []
        for d in range(D):
            L_ = {"W": (g.standard_normal((4 * H, width)) * wscale).astype(np.float32),
                  "R": (g.standard_normal((4 * H, H)) * wscale).astype(np.float32),
                  "bih": (g.standard_normal(4 * H) * 0.3).astype(np.float32),
                  "bhh": (g.standard_normal(4 * H) * 0.3).astype(np.float32)}
            suffix = "_reverse" if d else ""
            for k, name in [("W", "weight_ih"), ("R", "weight_hh"), ("bih", "bias_ih"),
                            ("bhh", "bias_hh")]:
                tensors[f"lstm.{name}_l{l}{suffix}"] = L_[k]
            dirs.append(L_)
        layers.append(dirs)
        width = H * D
    head = None
    if rng.random() < 0.5:
        O = rng.choice([1, 2, 3, 4])
        kind = rng.choice(["none", "sigmoid", "softmax"] if O > 1 else ["none", "sigmoid"])
        # Sometimes two dense layers, `fc2(act(fc1(..)))`.
        sizes = [width] + ([rng.choice([1, 2, 5, 9])] if rng.random() < 0.4 else []) + [O]
        kinds = [rng.choice(["relu", "tanh", "none", "sigmoid"]) for _ in sizes[2:]] + [kind]
        head = {"layers": [], "names": [],
                "input": rng.choice(["every-step", "every-step", "last-step", "final-state"]),
                "directions": D}
        for i, (fin, fout, k) in enumerate(zip(sizes, sizes[1:], kinds)):
            name = "fc" if len(kinds) == 1 else f"fc{i + 1}"
            Wh = (g.standard_normal((fout, fin)) * 0.8).astype(np.float32)
            bh = (g.standard_normal(fout) * 0.2).astype(np.float32)
            tensors[f"{name}.weight"], tensors[f"{name}.bias"] = Wh, bh
            head["layers"].append((Wh, bh, k))
            head["names"].append(name)
    return I, H, L, D, tensors, layers, head
