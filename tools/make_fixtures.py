#!/usr/bin/env python3
"""Generate the small LSTM test fixtures in tests/data/ (see tests/data/README.md).

Usage:  pip install -r tools/requirements-fixtures.txt && python3 tools/make_fixtures.py [--out DIR]

Deterministic: every random value comes from a fixed seed. Conventions:
  <name>.x.npy       float32 [N, T, I]     batch-first model input
  <name>.hidden.npy  float32 [N, T, D*H]   last LSTM layer's full hidden sequence (forward half first)
  <name>.output.npy  float32 [N, T, O]     head output at every step ([N, O] for a head on
                                           the last step or the final states)
All references come from onnxruntime (CPUExecutionProvider) run on the written .onnx file; to read
the last LSTM layer's Y, an in-memory copy of the graph gets that value as an extra output.
Hand-built graphs are cross-checked against a small numpy LSTM, torch graphs against torch itself.
"""
import argparse
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import safetensors
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file
from torch import nn

N, T = 3, 7
OPSET = 17
OUT = Path("tests/data")


# ---------------------------------------------------------------- helpers
def save_npy(name, arr, dtype=np.float32):
    arr = np.ascontiguousarray(arr)
    assert arr.dtype == dtype, (name, arr.dtype)
    np.save(OUT / name, arr)


def save_onnx(name, model, check=True):
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, str(OUT / name))


def make_x(seed, i, n=N, t=T):
    return np.random.default_rng(seed).standard_normal((n, t, i)).astype(np.float32)


def ort_run(path, x_ours, extra):
    """Run ORT on an in-memory copy of `path` with value `extra` added as a graph output."""
    m = onnx.load(str(path))
    if extra not in [o.name for o in m.graph.output]:
        m.graph.output.append(helper.make_tensor_value_info(extra, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x_ours.transpose(1, 0, 2))}
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


def last_lstm_y(path):
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == "LSTM"][-1].output[0]


def y_to_ours(y):
    """ONNX LSTM Y [T, D, N, H] -> [N, T, D*H] (forward half first)."""
    t, d, n, h = y.shape
    return np.ascontiguousarray(y.transpose(2, 0, 1, 3).reshape(n, t, d * h))


def tnc_to_ours(a):
    """[T, N, C] -> [N, T, C]."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))


def maxdiff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def np_lstm(x, W, R, B, h0=None, c0=None, P=None):
    """ONNX-semantics LSTM (gates i,o,f,c; peepholes i,o,f). x [T,N,I]; W [D,4H,I] ... -> Y [T,D,N,H]."""
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    D, H = W.shape[0], R.shape[2]
    ys = np.zeros((x.shape[0], D, x.shape[1], H))
    for d in range(D):
        b = B[d, :4 * H] + B[d, 4 * H:]
        p = np.zeros(3 * H) if P is None else P[d]
        h = np.zeros((x.shape[1], H)) if h0 is None else h0[d].astype(np.float64)
        c = np.zeros((x.shape[1], H)) if c0 is None else c0[d].astype(np.float64)
        for t in (range(x.shape[0]) if d == 0 else reversed(range(x.shape[0]))):
            g = x[t] @ W[d].T + h @ R[d].T + b
            i = sig(g[:, :H] + p[:H] * c)
            f = sig(g[:, 2 * H:3 * H] + p[2 * H:] * c)
            c = f * c + i * np.tanh(g[:, 3 * H:])
            h = sig(g[:, H:2 * H] + p[H:2 * H] * c) * np.tanh(c)
            ys[t, d] = h
    return ys


def tensor_vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def make_model(nodes, name, inputs, outputs, inits):
    g = helper.make_graph(nodes, name, inputs, outputs,
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="lstm-dse make_fixtures.py")
    m.ir_version = 8  # opset 17 needs IR >= 8; keep it low for old readers
    return m


def lstm_weights(rng, d, i, h, lo=-0.4, hi=0.4):
    u = lambda *s: rng.uniform(lo, hi, s).astype(np.float32)
    return u(d, 4 * h, i), u(d, 4 * h, h), u(d, 8 * h)


def describe(path):
    """Compact node-by-node listing of an ONNX graph (printed; copied into the README)."""
    g = onnx.load(str(path)).graph
    inits = {i.name: list(i.dims) for i in g.initializer}
    lines = [f"  inputs: {[(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in g.input]}",
             f"  initializers: {inits}"]
    for k, n in enumerate(g.node):
        attrs = {}
        for a in n.attribute:
            v = helper.get_attribute_value(a)
            if isinstance(v, onnx.TensorProto):
                v = numpy_helper.to_array(v)
                v = v.tolist() if v.size <= 4 else f"{v.dtype}{list(v.shape)}"
            attrs[a.name] = v.decode() if isinstance(v, bytes) else v
        lines.append(f"  {k:2d} {n.op_type} {list(n.input)} -> {list(n.output)} {attrs or ''}")
    return "\n".join(lines)


# ---------------------------------------------------------------- hand-built fixtures
def fixture_peephole():
    I, H = 5, 7
    rng = np.random.default_rng(1)
    W, R, B = lstm_weights(rng, 1, I, H)
    P = rng.uniform(-0.4, 0.4, (1, 3 * H)).astype(np.float32)
    # batch dim of initial states must equal N for ORT: repeat one vector N times (identical rows)
    h0 = np.repeat(rng.uniform(-0.4, 0.4, (1, 1, H)).astype(np.float32), N, axis=1)
    c0 = np.repeat(rng.uniform(-0.4, 0.4, (1, 1, H)).astype(np.float32), N, axis=1)
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "initial_h", "initial_c", "P"], ["Y"],
                            name="lstm", hidden_size=H, direction="forward")
    m = make_model([node], "peephole", [tensor_vi("X", ["T", "N", I])], [tensor_vi("Y", ["T", 1, "N", H])],
                   dict(W=W, R=R, B=B, initial_h=h0, initial_c=c0, P=P))
    save_onnx("peephole.onnx", m)
    x = make_x(11, I)
    y = ort_run(OUT / "peephole.onnx", x, "Y")["Y"]
    save_npy("peephole.x.npy", x)
    save_npy("peephole.hidden.npy", y_to_ours(y))
    ref = np_lstm(x.transpose(1, 0, 2).astype(np.float64), W, R, B, h0, c0, P)
    print(f"peephole: max|numpy - ORT| = {maxdiff(ref, y):.3g}")


def fixture_bidir():
    I, H = 4, 6
    rng = np.random.default_rng(2)
    W1, R1, B1 = lstm_weights(rng, 2, I, H)
    W2, R2, B2 = lstm_weights(rng, 2, 2 * H, H)
    nodes = [
        helper.make_node("LSTM", ["X", "W1", "R1", "B1"], ["Y1"], name="lstm1", hidden_size=H,
                         direction="bidirectional"),
        helper.make_node("Transpose", ["Y1"], ["Y1t"], name="transpose1", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Y1t", "shape"], ["X2"], name="reshape1"),
        helper.make_node("LSTM", ["X2", "W2", "R2", "B2"], ["Y"], name="lstm2", hidden_size=H,
                         direction="bidirectional"),
    ]
    inits = dict(W1=W1, R1=R1, B1=B1, shape=np.array([0, 0, -1], np.int64), W2=W2, R2=R2, B2=B2)
    m = make_model(nodes, "bidir", [tensor_vi("X", ["T", "N", I])], [tensor_vi("Y", ["T", 2, "N", H])], inits)
    save_onnx("bidir.onnx", m)
    x = make_x(12, I)
    y = ort_run(OUT / "bidir.onnx", x, "Y")["Y"]
    save_npy("bidir.x.npy", x)
    save_npy("bidir.hidden.npy", y_to_ours(y))
    y1 = np_lstm(x.transpose(1, 0, 2).astype(np.float64), W1, R1, B1)
    ref = np_lstm(y1.transpose(0, 2, 1, 3).reshape(T, N, 2 * H), W2, R2, B2)
    print(f"bidir: max|numpy - ORT| = {maxdiff(ref, y):.3g}")


def fixture_reshape_gemm():
    """LSTM -> Squeeze -> Reshape [-1, H] -> Gemm (transB) -> Reshape [T, N, -1] -> Softmax: the 2-D
    dense pattern exporters write; the target shape is computed from Shape/Gather of the LSTM output."""
    I, H, O = 4, 6, 5
    rng = np.random.default_rng(6)
    W, R, B = lstm_weights(rng, 1, I, H)
    Wd = rng.uniform(-0.8, 0.8, (O, H)).astype(np.float32)
    bd = rng.uniform(-0.3, 0.3, (O,)).astype(np.float32)
    nodes = [
        helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="lstm", hidden_size=H),
        helper.make_node("Squeeze", ["Y", "axis1"], ["Ys"], name="squeeze"),
        helper.make_node("Shape", ["Ys"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "i0"], ["t"], name="gather_t", axis=0),
        helper.make_node("Gather", ["shp", "i1"], ["n"], name="gather_n", axis=0),
        helper.make_node("Reshape", ["Ys", "rows_shape"], ["rows"], name="flatten"),
        helper.make_node("Gemm", ["rows", "Wd", "bd"], ["logits2d"], name="dense", transB=1),
        helper.make_node("Concat", ["t", "n", "minus1"], ["out_shape"], name="concat", axis=0),
        helper.make_node("Reshape", ["logits2d", "out_shape"], ["logits"], name="unflatten"),
        helper.make_node("Softmax", ["logits"], ["Z"], name="softmax", axis=-1),
    ]
    inits = dict(W=W, R=R, B=B, Wd=Wd, bd=bd, axis1=np.array([1], np.int64),
                 i0=np.array([0], np.int64), i1=np.array([1], np.int64),
                 rows_shape=np.array([-1, H], np.int64), minus1=np.array([-1], np.int64))
    m = make_model(nodes, "reshape_gemm", [tensor_vi("X", ["T", "N", I])], [tensor_vi("Z", ["T", "N", O])],
                   inits)
    save_onnx("reshape_gemm.onnx", m)
    x = make_x(15, I)
    res = ort_run(OUT / "reshape_gemm.onnx", x, "Ys")
    save_npy("reshape_gemm.x.npy", x)
    save_npy("reshape_gemm.hidden.npy", tnc_to_ours(res["Ys"]))
    save_npy("reshape_gemm.output.npy", tnc_to_ours(res["Z"]))
    ref = np_lstm(x.transpose(1, 0, 2).astype(np.float64), W, R, B)[:, 0]
    logits = ref @ Wd.T.astype(np.float64) + bd
    e = np.exp(logits - logits.max(-1, keepdims=True))
    print(f"reshape_gemm: max|numpy - ORT| = {maxdiff(e / e.sum(-1, keepdims=True), res['Z']):.3g}")
    print(describe(OUT / "reshape_gemm.onnx"))


def fixture_static_shapes():
    """A bidirectional LSTM exported with literal sizes (T = 7, N = 3 written in): initial_h a
    strided Slice of a ConstantOfShape, initial_c an initializer [2, N, H], the directions
    merged by Transpose [0, 2, 1, 3] and a Reshape to the literal [T, N, 2H], rows flattened,
    Gemm with C of shape [1, O], a Reshape back to the literal [T, N, -1] and Softmax with the
    opset's default axis. The literal sizes fix the input's steps and batch."""
    I, H, O = 4, 5, 3
    rng = np.random.default_rng(21)
    W, R, B = lstm_weights(rng, 2, I, H)
    c0 = np.repeat(rng.uniform(-0.5, 0.5, (2, 1, H)).astype(np.float32), N, axis=1)
    Wd = rng.uniform(-0.8, 0.8, (O, 2 * H)).astype(np.float32)
    bd = rng.uniform(-0.3, 0.3, (1, O)).astype(np.float32)
    fill = numpy_helper.from_array(np.array([0.25], np.float32), "fill")
    nodes = [
        helper.make_node("ConstantOfShape", ["h0_full_shape"], ["h0_full"], name="h0_full", value=fill),
        helper.make_node("Slice", ["h0_full", "s_start", "s_end", "s_axis", "s_step"], ["h0"], name="h0_every_other"),
        helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y"], name="lstm",
                         hidden_size=H, direction="bidirectional"),
        helper.make_node("Transpose", ["Y"], ["Yt"], name="dirs_inner", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Yt", "merged_shape"], ["Ym"], name="merge_dirs"),
        helper.make_node("Reshape", ["Ym", "rows_shape"], ["rows"], name="flatten"),
        helper.make_node("Gemm", ["rows", "Wd", "bd"], ["logits2d"], name="dense", transB=1),
        helper.make_node("Reshape", ["logits2d", "out_shape"], ["logits"], name="unflatten"),
        helper.make_node("Softmax", ["logits"], ["Z"], name="softmax"),
    ]
    inits = dict(W=W, R=R, B=B, c0=c0, Wd=Wd, bd=bd,
                 h0_full_shape=np.array([2, N, 2 * H], np.int64),
                 s_start=np.array([0], np.int64), s_end=np.array([2 * H], np.int64),
                 s_axis=np.array([2], np.int64), s_step=np.array([2], np.int64),
                 merged_shape=np.array([T, N, 2 * H], np.int64),
                 rows_shape=np.array([-1, 2 * H], np.int64),
                 out_shape=np.array([T, N, -1], np.int64))
    m = make_model(nodes, "static_shapes", [tensor_vi("X", [T, N, I])], [tensor_vi("Z", [T, N, O])], inits)
    save_onnx("static_shapes.onnx", m)
    x = make_x(22, I)
    res = ort_run(OUT / "static_shapes.onnx", x, "Y")
    save_npy("static_shapes.x.npy", x)
    save_npy("static_shapes.hidden.npy", y_to_ours(res["Y"]))
    save_npy("static_shapes.output.npy", tnc_to_ours(res["Z"]))
    h0 = np.full((2, N, H), 0.25)
    ref = np_lstm(x.transpose(1, 0, 2).astype(np.float64), W, R, B, h0, c0)
    print(f"static_shapes: max|numpy - ORT| Y = {maxdiff(ref, res['Y']):.3g}")
    print(describe(OUT / "static_shapes.onnx"))


# ---------------------------------------------------------------- torch fixtures
class LSTMHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(input_size=8, hidden_size=16, num_layers=3)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return torch.softmax(self.fc(self.lstm(x)[0]), dim=-1)


class BiLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(input_size=6, hidden_size=10, num_layers=2, bidirectional=True)

    def forward(self, x):
        return self.rnn(x)[0]


def export(module, x_tni, name, dynamic):
    kw = dict(dynamic_axes={"x": {0: "T", 1: "N"}, "y": {0: "T", 1: "N"}}) if dynamic else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x_tni,), str(OUT / name), dynamo=False, opset_version=OPSET,
                          input_names=["x"], output_names=["y"], do_constant_folding=True, **kw)
    onnx.checker.check_model(onnx.load(str(OUT / name)))


def torch_fixture(name, module, i, seed_x, has_head, static_variant=False):
    x = make_x(seed_x, i)
    xt = torch.from_numpy(x.transpose(1, 0, 2).copy())
    with torch.no_grad():
        hid_t = tnc_to_ours(getattr(module, "lstm" if has_head else "rnn")(xt)[0].numpy())
        out_t = tnc_to_ours(module(xt).numpy())
    variants = [(f"{name}.onnx", True)] + ([(f"{name}_static.onnx", False)] if static_variant else [])
    for fname, dyn in variants:
        export(module, xt, fname, dyn)
        yname = last_lstm_y(OUT / fname)
        res = ort_run(OUT / fname, x, yname)
        hid, out = y_to_ours(res[yname]), tnc_to_ours(res["y"])
        print(f"{fname}: max|torch - ORT| hidden = {maxdiff(hid_t, hid):.3g}"
              + (f", output = {maxdiff(out_t, out):.3g}" if has_head else ""))
        if fname == f"{name}.onnx":
            save_npy(f"{name}.x.npy", x)
            save_npy(f"{name}.hidden.npy", hid)
            if has_head:
                save_npy(f"{name}.output.npy", out)
        else:
            print(f"  {fname} vs {name}.onnx (ORT): hidden {maxdiff(hid, np.load(OUT / f'{name}.hidden.npy')):.3g}")
        print(describe(OUT / fname))
    sd = {k: v.detach().to(torch.float32).contiguous() for k, v in module.state_dict().items()}
    save_file(sd, str(OUT / f"{name}.safetensors"), metadata={"format": "pt"})


def save_batch_major(name, x, hid_t, out_t, output, x_dtype=np.float32):
    """Checks `<name>.onnx` (a batch-major graph input `x`) with onnxruntime against torch's
    hidden and `output` values and saves the fixture's x, hidden (the last LSTM's Y, added as an
    extra output of an in-memory copy) and output from onnxruntime."""
    path = OUT / f"{name}.onnx"
    onnx.checker.check_model(str(path))
    yname = last_lstm_y(path)
    m = onnx.load(str(path))
    m.graph.output.append(helper.make_tensor_value_info(yname, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    res = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))
    hid, out = y_to_ours(res[yname]), res[output]
    print(f"{name}: max|torch - ORT| hidden = {maxdiff(hid_t, hid):.3g}, output = {maxdiff(out_t, out):.3g}")
    save_npy(f"{name}.x.npy", x, dtype=x_dtype)
    save_npy(f"{name}.hidden.npy", hid)
    save_npy(f"{name}.output.npy", out)
    print(describe(path))


class BatchFirst(nn.Module):
    """`batch_first = True`, as most PyTorch code writes it: the export puts a Transpose before the
    first layer and after the last, so the graph input is [N, T, I]. It also returns the last
    hidden state h_n, an extra graph output."""
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(input_size=6, hidden_size=9, num_layers=2, bidirectional=True,
                            batch_first=True)
        self.fc = nn.Linear(18, 4)

    def forward(self, x):
        y, (h_n, _) = self.lstm(x)
        return torch.sigmoid(self.fc(y)), h_n


def fixture_torch_batch_first():
    torch.manual_seed(0)
    module = BatchFirst().eval()
    name = "torch_batch_first"
    x = make_x(16, 6)  # [N, T, I]: the graph's own layout
    xt = torch.from_numpy(x)
    with torch.no_grad():
        hid_t = module.lstm(xt)[0].numpy()
        out_t = module(xt)[0].numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (xt,), str(OUT / f"{name}.onnx"), dynamo=False, opset_version=OPSET,
                          input_names=["x"], output_names=["y", "h_n"], do_constant_folding=True,
                          dynamic_axes={"x": {0: "N", 1: "T"}, "y": {0: "N", 1: "T"}, "h_n": {1: "N"}})
    save_batch_major(name, x, hid_t, out_t, "y")


class LastStep(BatchFirst):
    """The usual PyTorch sequence classifier: the head on the last step, `fc(y[:, -1])` (a Gather
    along the steps in the export), bidirectional so that the last step's reverse half is that
    direction's first step (`BatchFirst`'s layers)."""
    def forward(self, x):
        y, _ = self.lstm(x)
        return torch.softmax(self.fc(y[:, -1]), dim=-1)


class FinalState(LastStep):
    """The head on each direction's final state, `fc(cat(h_n[-2], h_n[-1]))`: the reverse half is
    that direction's state after its last step (time 0), not y[:, -1]'s."""
    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return torch.sigmoid(self.fc(torch.cat([h_n[-2], h_n[-1]], dim=1)))


def fixture_torch_heads():
    """Heads that give one output per sequence: `.output.npy` is [N, O]."""
    for name, cls, seed in [("torch_last_step", LastStep, 17), ("torch_final_state", FinalState, 18)]:
        torch.manual_seed(0)
        module = cls().eval()
        x = make_x(seed, 6)
        xt = torch.from_numpy(x)
        with torch.no_grad():
            hid_t = module.lstm(xt)[0].numpy()
            out_t = module(xt).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (xt,), str(OUT / f"{name}.onnx"), dynamo=False, opset_version=OPSET,
                              input_names=["x"], output_names=["out"], do_constant_folding=True,
                              dynamic_axes={"x": {0: "N", 1: "T"}, "out": {0: "N"}})
        save_batch_major(name, x, hid_t, out_t, "out")


class MlpHead(nn.Module):
    """A classifier whose head is more than one dense layer: `fc2(act(fc1(..)))`, with dropout
    (dropped in eval mode). `on` picks the vector it reads: the last step (ReLU between the
    layers, a softmax after) or the final states (tanh between, no activation after)."""
    def __init__(self, on):
        super().__init__()
        self.on = on
        self.lstm = nn.LSTM(input_size=6, hidden_size=9, num_layers=2, bidirectional=True,
                            batch_first=True)
        self.fc1 = nn.Linear(18, 11)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(11, 4)

    def forward(self, x):
        y, (h_n, _) = self.lstm(x)
        if self.on == "last_step":
            return torch.softmax(self.fc2(self.drop(torch.relu(self.fc1(y[:, -1])))), dim=-1)
        return self.fc2(self.drop(torch.tanh(self.fc1(torch.cat([h_n[-2], h_n[-1]], dim=1)))))


def fixture_torch_mlp_head():
    """Two-layer heads, one from each torch exporter: `torch_mlp_head` (the TorchScript
    exporter, last step, ReLU and softmax) and `torch_mlp_head_dynamo` (the default dynamo
    exporter, final states, tanh; its weights in `torch_mlp_head_dynamo.onnx.data`), and the
    first as a safetensors state dict."""
    for name, on, seed, dynamo in [("torch_mlp_head", "last_step", 23, False),
                                   ("torch_mlp_head_dynamo", "final_state", 24, True)]:
        torch.manual_seed(0)
        module = MlpHead(on).eval()
        x = make_x(seed, 6)
        xt = torch.from_numpy(x)
        with torch.no_grad():
            hid_t = module.lstm(xt)[0].numpy()
            out_t = module(xt).numpy()
        if dynamo:
            export_dynamo(module, xt, name)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (xt,), str(OUT / f"{name}.onnx"), dynamo=False,
                                  opset_version=OPSET, input_names=["x"], output_names=["out"],
                                  do_constant_folding=True,
                                  dynamic_axes={"x": {0: "N", 1: "T"}, "out": {0: "N"}})
        save_batch_major(name, x, hid_t, out_t, "out")
        if not dynamo:
            # The same module as a state dict: `--head fc1,fc2 --head-activation relu,softmax
            # --head-input last-step` must give onnxruntime's output.
            sd = {k: v.detach().to(torch.float32).contiguous() for k, v in module.state_dict().items()}
            save_file(sd, str(OUT / f"{name}.safetensors"), metadata={"format": "pt"})


def export_dynamo(module, xt, name, input_key="x"):
    """`module` exported by torch's default exporter (`dynamo=True`, onnxscript) to
    `<name>.onnx` with its weights in `<name>.onnx.data`, batch and steps dynamic. The exporter
    records each node's Python stack (machine paths, this script's line numbers) as metadata:
    dropped, so the file depends on the module alone."""
    import contextlib
    import io
    import logging
    for old in OUT.glob(f"{name}.onnx*"):
        old.unlink()
    logging.disable(logging.WARNING)
    dims = {0: torch.export.Dim("N"), 1: torch.export.Dim("T")}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (xt,), str(OUT / f"{name}.onnx"), dynamo=True, input_names=["x"],
                          output_names=["out"], dynamic_shapes={input_key: dims}, external_data=True)
    logging.disable(logging.NOTSET)
    m = onnx.load(str(OUT / f"{name}.onnx"), load_external_data=False)
    for n in m.graph.node:
        del n.metadata_props[:]
    del m.metadata_props[:]
    onnx.save(m, str(OUT / f"{name}.onnx"))


def fixture_torch_dynamo():
    """`LastStep` exported by torch's default exporter since 2.9 (`dynamo=True`, onnxscript):
    opset 18+, the large weights in `torch_dynamo.onnx.data` beside the model (external data),
    initial states from `Expand`, and the merge of directions computed by Slice/Mul/Reshape of
    shape vectors."""
    name = "torch_dynamo"
    torch.manual_seed(0)
    module = LastStep().eval()
    x = make_x(21, 6)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        hid_t = module.lstm(xt)[0].numpy()
        out_t = module(xt).numpy()
    export_dynamo(module, xt, name)
    save_batch_major(name, x, hid_t, out_t, "out")


class Embedded(nn.Module):
    """The usual PyTorch text classifier: `nn.Embedding` (vocabulary 50, 12 wide, padding id 0,
    whose row is zeros) -> a 2-layer batch-first LSTM of 16 -> a dense head on the last layer's
    final state, `fc(h_n[-1])`, or on the last step, `fc(y[:, -1])`. Its graph input is the
    int64 token ids [N, T]."""
    def __init__(self, last_step=False):
        super().__init__()
        self.last_step = last_step
        self.emb = nn.Embedding(50, 12, padding_idx=0)
        self.lstm = nn.LSTM(12, 16, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 5)

    def forward(self, ids):
        y, (h_n, _) = self.lstm(self.emb(ids))
        return self.fc(y[:, -1] if self.last_step else h_n[-1])


def embedding_ids(seed):
    """int64 token ids [3, 6]: the whole vocabulary's range, with padding (id 0) at the start
    of the first sequence (left-padded) and inside the third."""
    ids = np.random.default_rng(seed).integers(1, 50, (3, 6)).astype(np.int64)
    ids[0, :2] = 0
    ids[2, 3] = 0
    ids[1, 5] = 49
    return ids


def fixture_torch_embedding():
    """`Embedded` (head on `h_n[-1]`) by the TorchScript exporter: Gather(emb.weight, x) on the
    int64 graph input, then the Transpose of a batch-first LSTM."""
    name = "torch_embedding"
    torch.manual_seed(0)
    module = Embedded().eval()
    x = embedding_ids(22)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        hid_t = module.lstm(module.emb(xt))[0].numpy()
        out_t = module(xt).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (xt,), str(OUT / f"{name}.onnx"), dynamo=False, opset_version=OPSET,
                          input_names=["x"], output_names=["out"], do_constant_folding=True,
                          dynamic_axes={"x": {0: "N", 1: "T"}, "out": {0: "N"}})
    save_batch_major(name, x, hid_t, out_t, "out", x_dtype=np.int64)
    # The same weights as a state dict: `--embedding emb --head fc --head-input final-state`.
    sd = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    save_file(sd, str(OUT / f"{name}.safetensors"), metadata={"format": "pt"})


def fixture_torch_embedding_dynamo():
    """`Embedded` (head on `y[:, -1]`) by the default (dynamo) exporter: the same Gather, and a
    Shape of the token ids sizing the initial states; weights in external data. Node metadata
    is dropped as in `fixture_torch_dynamo`."""
    name = "torch_embedding_dynamo"
    torch.manual_seed(1)
    module = Embedded(last_step=True).eval()
    x = embedding_ids(23)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        hid_t = module.lstm(module.emb(xt))[0].numpy()
        out_t = module(xt).numpy()
    export_dynamo(module, xt, name, input_key="ids")
    save_batch_major(name, x, hid_t, out_t, "out", x_dtype=np.int64)


def fixture_reverse_final_state():
    """Built by hand: a reverse LSTM whose Y_h (its state at time 0), squeezed, feeds the head."""
    I, H, O = 4, 5, 3
    rng = np.random.default_rng(19)
    W, R, B = lstm_weights(rng, 1, I, H)
    Wd = rng.uniform(-0.5, 0.5, (H, O)).astype(np.float32)
    bd = rng.uniform(-0.5, 0.5, (O,)).astype(np.float32)
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h"], name="lstm", hidden_size=H,
                              direction="reverse"),
             helper.make_node("Squeeze", ["Y_h", "zero"], ["h"], name="h_n_squeeze"),
             helper.make_node("MatMul", ["h", "Wd"], ["z"], name="fc"),
             helper.make_node("Add", ["z", "bd"], ["out"], name="fc_bias")]
    m = make_model(nodes, "reverse_final_state", [tensor_vi("X", ["T", "N", I])],
                   [tensor_vi("out", ["N", O])],
                   dict(W=W, R=R, B=B, Wd=Wd, bd=bd, zero=np.array([0], dtype=np.int64)))
    save_onnx("reverse_final_state.onnx", m)
    x = make_x(20, I)
    res = ort_run(OUT / "reverse_final_state.onnx", x, "Y")
    xs = x.transpose(1, 0, 2).astype(np.float64)[::-1]  # [T, N, I], last step first
    y = np_lstm(xs, W, R, B)[::-1]  # a reverse LSTM: the forward one on the reversed steps
    ref = y[0, 0] @ Wd + bd  # the reverse direction's state after its last step, time 0
    print(f"reverse_final_state: max|numpy - ORT| Y = {maxdiff(y, res['Y']):.3g}, out = {maxdiff(ref, res['out']):.3g}")
    save_npy("reverse_final_state.x.npy", x)
    save_npy("reverse_final_state.hidden.npy", y_to_ours(res["Y"]))
    save_npy("reverse_final_state.output.npy", res["out"])


# ---------------------------------------------------------------- bad inputs
def fixture_bad_inputs():
    I, H = 3, 4
    rng = np.random.default_rng(3)
    W, R, B = lstm_weights(rng, 1, I, H)
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="lstm", hidden_size=H),
             helper.make_node("Relu", ["Y"], ["Z"], name="relu_after_lstm")]
    m = make_model(nodes, "unsupported_op", [tensor_vi("X", ["T", "N", I])], [tensor_vi("Z", ["T", 1, "N", H])],
                   dict(W=W, R=R, B=B))
    save_onnx("unsupported_op.onnx", m)

    R_bad = rng.uniform(-0.4, 0.4, (1, 4 * H, H + 1)).astype(np.float32)
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="lstm", hidden_size=H)
    m = make_model([node], "bad_shapes", [tensor_vi("X", ["T", "N", I])], [tensor_vi("Y", ["T", 1, "N", H])],
                   dict(W=W, R=R_bad, B=B))
    save_onnx("bad_shapes.onnx", m, check=False)

    torch.manual_seed(4)
    lstm = nn.LSTM(input_size=5, hidden_size=4)
    sd = {f"lstm.{k}": v.detach().clone().contiguous() for k, v in lstm.state_dict().items()}
    sd["lstm.weight_hh_l0"][1, 2] = float("nan")
    save_file(sd, str(OUT / "nan_weights.safetensors"), metadata={"format": "pt"})

    x = np.random.default_rng(5).standard_normal((2, 4, 5))
    save_npy("float64.x.npy", x, dtype=np.float64)
    x = x.astype(np.float32)
    x[1, 2, 3] = np.nan
    save_npy("nan.x.npy", x)
    (OUT / "not_a_model.onnx").write_text("hello\n")


def fixture_negative_ints():
    """ONNX integers that must not wrap: hidden_size -3, and W with a dimension of -12."""
    I, H = 4, 3
    rng = np.random.default_rng(6)
    W, R, B = lstm_weights(rng, 1, I, H)
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="lstm", hidden_size=-3)
    m = make_model([node], "negative_hidden_size", [tensor_vi("X", ["T", "N", I])],
                   [tensor_vi("Y", ["T", 1, "N", H])], dict(W=W, R=R, B=B))
    save_onnx("negative_hidden_size.onnx", m, check=False)
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="lstm", hidden_size=H)
    m = make_model([node], "negative_dim", [tensor_vi("X", ["T", "N", I])],
                   [tensor_vi("Y", ["T", 1, "N", H])], dict(W=W, R=R, B=B))
    w = next(t for t in m.graph.initializer if t.name == "W")
    w.dims[1] = -12
    save_onnx("negative_dim.onnx", m, check=False)


def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/data", help="output directory (default: tests/data)")
    ap.add_argument("--only", help="write only this fixture (e.g. reshape_gemm)")
    args = ap.parse_args()
    OUT = Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    print(f"numpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
          f"safetensors {safetensors.__version__}, torch {torch.__version__}")

    if args.only:
        globals()[f"fixture_{args.only}"]()
        return
    fixture_peephole()
    fixture_bidir()
    fixture_reshape_gemm()
    torch.manual_seed(0)
    torch_fixture("torch_lstm3", LSTMHead().eval(), 8, 13, has_head=True, static_variant=True)
    torch.manual_seed(0)
    torch_fixture("torch_bilstm", BiLSTM().eval(), 6, 14, has_head=False)
    fixture_bad_inputs()
    fixture_negative_ints()
    fixture_static_shapes()
    fixture_torch_batch_first()
    fixture_torch_heads()
    fixture_reverse_final_state()
    fixture_torch_dynamo()
    fixture_torch_mlp_head()
    fixture_torch_embedding()
    fixture_torch_embedding_dynamo()

    print("\nfiles:")
    for f in sorted(p for p in OUT.iterdir() if p.suffix != ".md"):
        assert f.stat().st_size < 1_000_000, f
        a = np.load(f) if f.suffix == ".npy" else None
        print(f"  {f.name:32s} {f.stat().st_size:8d} B  " + (f"{a.dtype} {list(a.shape)}" if a is not None else ""))


if __name__ == "__main__":
    main()
