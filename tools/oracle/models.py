"""Random LSTM models and inputs for `tools/numerics_fuzz.py`, and their files: PyTorch
state dicts (safetensors, forward or bidirectional layers, some with a dense head of one or two
layers) and ONNX graphs built node by node (`LSTM` nodes forward, reverse or bidirectional, some
with peepholes and initial states, layers joined by Transpose + Reshape).

A model is a dict: `kind` ("st" or "onnx"), `I`, `H`, `layers` (each a dict: `mode`, `peep`,
`init` and `dirs`, the directions in the form `tools/numerics_oracle.py` reads: W, R, bih, bhh
in PyTorch's gate order i, f, g, o, P (i, f, o) or None, h0, c0, rev) and `head` (None or
`layers` [(W, b, activation)], `names`, `input`)."""
import numpy as np
from groups_oracle import write_safetensors


def model(rng, g):
    """A random model: 1-3 layers, H in {1, 2, 3, 5, 8, 33}, weights of scale 0.1-6, a zero
    weight row now and then."""
    kind = "onnx" if rng.random() < 0.4 else "st"
    I, H = rng.choice([1, 2, 3, 5, 7, 16]), rng.choice([1, 1, 2, 3, 3, 5, 8, 33])
    scale = rng.choice([0.1, 0.5, 1.0, 2.0, 6.0])
    layers, width = [], I
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        modes = ["forward", "bidirectional"] + (["reverse"] if kind == "onnx" else [])
        mode = rng.choice(modes)
        peep = kind == "onnx" and rng.random() < 0.5
        init = kind == "onnx" and rng.random() < 0.5
        dirs = []
        for d in range(2 if mode == "bidirectional" else 1):
            L = {"W": (g.standard_normal((4 * H, width)) * scale).astype(np.float32),
                 "R": (g.standard_normal((4 * H, H)) * scale).astype(np.float32),
                 "bih": (g.standard_normal(4 * H) * 0.5).astype(np.float32),
                 "bhh": (g.standard_normal(4 * H) * 0.5).astype(np.float32),
                 "P": (g.standard_normal(3 * H) * 0.5).astype(np.float32) if peep else None,
                 "h0": g.uniform(-0.9, 0.9, H).astype(np.float32) if init else None,
                 "c0": (g.standard_normal(H) * 1.5).astype(np.float32) if init else None,
                 "rev": mode == "reverse" or d == 1}
            if rng.random() < 0.1:
                L["W"][rng.randrange(4 * H)] = 0
            dirs.append(L)
        layers.append({"mode": mode, "peep": peep, "init": init, "dirs": dirs})
        width = H * len(dirs)
    head = None
    if kind == "st" and rng.random() < 0.3:
        head = {"layers": [], "names": [], "input": rng.choice(["every-step", "last-step",
                                                                "final-state"])}
        n = rng.choice([1, 1, 2])
        for k in range(n):
            O = rng.choice([1, 2, 3, 6])
            last = k == n - 1
            acts = ["none", "sigmoid", "relu", "tanh"] + (["softmax"] if O > 1 and last else [])
            head["layers"].append(((g.standard_normal((O, width)) * 0.8).astype(np.float32),
                                   (g.standard_normal(O) * 0.2).astype(np.float32),
                                   rng.choice(acts)))
            head["names"].append(f"fc{k}")
            width = O
    return {"kind": kind, "I": I, "H": H, "layers": layers, "head": head}


def oracle_layers(m):
    """The layers as `numerics_oracle.reference` and `resolve` take them."""
    return [lay["dirs"] for lay in m["layers"]]


def describe(m):
    """One line: kind, sizes, per layer its direction mode (f, r, b), P for peepholes and 0
    for initial states, and the head."""
    s = f"{m['kind']} I={m['I']} H={m['H']} " + ",".join(
        lay["mode"][0] + "P" * lay["peep"] + "0" * lay["init"] for lay in m["layers"])
    if m["head"]:
        s += " head=" + "+".join(f"{W.shape[0]}{k}" for W, _, k in m["head"]["layers"])
        s += "/" + m["head"]["input"]
    return s


def head_args(m):
    """The `--head` flags of a safetensors model with a head."""
    hd = m["head"]
    if not hd:
        return []
    return ["--head", ",".join(hd["names"]), "--head-activation",
            ",".join(k for _, _, k in hd["layers"]), "--head-input", hd["input"]]


def write_model(m, path, N):
    """Write `m` as safetensors or ONNX; ONNX initial states are written for N sequences
    (a literal batch, NUMERICS.md §15)."""
    if m["kind"] == "st":
        t = {}
        for l, lay in enumerate(m["layers"]):
            for d, L in enumerate(lay["dirs"]):
                sfx = "_reverse" if d else ""
                for k, name in [("W", "weight_ih"), ("R", "weight_hh"), ("bih", "bias_ih"),
                                ("bhh", "bias_hh")]:
                    t[f"lstm.{name}_l{l}{sfx}"] = L[k]
        for name, (W, b, _) in zip(m["head"]["names"] if m["head"] else [],
                                   m["head"]["layers"] if m["head"] else []):
            t[f"{name}.weight"], t[f"{name}.bias"] = W, b
        write_safetensors(path, t)
    else:
        write_onnx(m, path, N)


def iofc(a, H):
    """PyTorch's gate order i, f, g, o to ONNX's i, o, f, c (rows of W, R, biases)."""
    return np.concatenate([a[:H], a[3 * H:], a[H:2 * H], a[2 * H:3 * H]])


def write_onnx(m, path, N):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H, nodes, inits, cur = m["H"], [], {}, "X"
    for l, lay in enumerate(m["layers"]):
        dirs = lay["dirs"]
        inits[f"W{l}"] = np.stack([iofc(L["W"], H) for L in dirs])
        inits[f"R{l}"] = np.stack([iofc(L["R"], H) for L in dirs])
        inits[f"B{l}"] = np.stack([np.concatenate([iofc(L["bih"], H), iofc(L["bhh"], H)])
                                   for L in dirs])
        ins = [cur, f"W{l}", f"R{l}", f"B{l}"]
        if lay["init"] or lay["peep"]:
            ins += ["", f"h0_{l}", f"c0_{l}"] if lay["init"] else ["", "", ""]
        if lay["init"]:
            for k in ("h0", "c0"):
                inits[f"{k}_{l}"] = np.repeat(np.stack([L[k] for L in dirs])[:, None], N, axis=1)
        if lay["peep"]:  # ONNX's P is i, o, f
            inits[f"P{l}"] = np.stack([np.concatenate([L["P"][:H], L["P"][2 * H:], L["P"][H:2 * H]])
                                       for L in dirs])
            ins.append(f"P{l}")
        last = l == len(m["layers"]) - 1
        y = "Y" if last else f"Y{l}"
        nodes.append(helper.make_node("LSTM", ins, [y], name=f"lstm{l}", hidden_size=H,
                                      direction=lay["mode"]))
        if not last:  # [T, D, N, H] -> [T, N, D*H]
            nodes.append(helper.make_node("Transpose", [y], [f"Y{l}t"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"Y{l}t", "shape"], [f"X{l + 1}"]))
            inits["shape"] = np.array([0, 0, -1], np.int64)
            cur = f"X{l + 1}"
    D = len(m["layers"][-1]["dirs"])
    graph = helper.make_graph(
        nodes, "fuzz", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", m["I"]])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", D, "N", H])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def inputs(rng, g, I, lanes=False):
    """A random input [N, T, I] across scales 1e-20 .. 300, some with zero steps or on a
    quarter grid; `lanes` draws more sequences (5-21), as GPU lane blocks see them."""
    N = rng.choice([5, 7, 16, 21]) if lanes else rng.choice([1, 1, 2, 3])
    T = rng.choice([1, 2, 3, 5, 8, 12])
    scale = rng.choice([1.0, 1.0, 0.3, 3.0, 1e-3, 1e-6, 1e-20, 40.0, 300.0])
    x = (g.standard_normal((N, T, I)) * scale).astype(np.float32)
    if rng.random() < 0.15:
        x[:, ::2] = 0
    if rng.random() < 0.15:
        x = (np.round(x * 4) / 4).astype(np.float32)
    return x, scale
