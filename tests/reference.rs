//! fp32 evaluation against onnxruntime: every fixture in tests/data (made by
//! tools/make_fixtures.py) must agree within 1e-5 max abs, through the library and through the
//! `infer` command.

use lstm_dse::format::PrecisionConfig;
use lstm_dse::lstm::{self, eval, npy, HeadActivation, LoadOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const TOL: f32 = 1e-5;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold((0.0, 0), |m, d| if d.0 > m.0 { d } else { m })
}

/// Loads `model`, runs `fixture.x.npy` (float sequences, or token ids for a model with an
/// embedding) at fp32 and checks hidden (and output) references.
fn check(model: &str, fixture: &str, opts: LoadOptions) {
    let m = lstm::load(data(model).to_str().unwrap(), &opts).unwrap();
    let x = npy::read_inputs(&data(&format!("{fixture}.x.npy")), &m).unwrap();
    let run = &eval::evaluate(&m, &x, fixture, &[PrecisionConfig::FP32], false).unwrap()[0];
    let (shape, want) = npy::read_f32(&data(&format!("{fixture}.hidden.npy"))).unwrap();
    assert_eq!(shape, vec![x.count, x.steps, m.hidden_output_size()]);
    let (d, at) = max_abs_diff(&run.hidden, &want);
    assert!(
        d <= TOL,
        "{model}: hidden differs from onnxruntime by {d} at index {at}"
    );
    let out_file = data(&format!("{fixture}.output.npy"));
    if out_file.exists() {
        let (_, want) = npy::read_f32(&out_file).unwrap();
        let (d, at) = max_abs_diff(run.output.as_ref().expect("model has a head"), &want);
        assert!(
            d <= TOL,
            "{model}: output differs from onnxruntime by {d} at index {at}"
        );
    }
}

#[test]
fn onnx_lstm_with_peepholes_and_initial_state() {
    check("peephole.onnx", "peephole", LoadOptions::default());
}

#[test]
fn onnx_two_layer_bidirectional() {
    check("bidir.onnx", "bidir", LoadOptions::default());
}

#[test]
fn torch_exported_three_layer_lstm_with_softmax_head() {
    check("torch_lstm3.onnx", "torch_lstm3", LoadOptions::default());
    check(
        "torch_lstm3_static.onnx",
        "torch_lstm3",
        LoadOptions::default(),
    );
}

#[test]
fn torch_exported_bidirectional() {
    check("torch_bilstm.onnx", "torch_bilstm", LoadOptions::default());
}

/// `nn.LSTM(batch_first = True)` as torch exports it (a batch-major graph input, Transposes
/// before the first layer and after the last), returning `h_n` too (a Concat of the layers'
/// last states, not computed): once refused twice over.
#[test]
fn torch_exported_batch_first_returning_its_last_state() {
    check(
        "torch_batch_first.onnx",
        "torch_batch_first",
        LoadOptions::default(),
    );
}

/// The usual PyTorch classifiers, one output per sequence: `softmax(fc(y[:, -1]))` and
/// `sigmoid(fc(cat(h_n[-2], h_n[-1])))` of a bidirectional stack (their reverse halves differ:
/// the last step's is that direction's first), and a reverse LSTM's `Y_h` squeezed into a
/// MatMul head (its state at time 0). Refused before, with the advice to export `fc(y)`.
#[test]
fn heads_on_the_last_step_or_the_final_states() {
    for name in [
        "torch_last_step",
        "torch_final_state",
        "reverse_final_state",
    ] {
        check(&format!("{name}.onnx"), name, LoadOptions::default());
    }
}

/// Heads of two dense layers, `fc2(relu(fc1(y[:, -1])))` with a softmax (the TorchScript
/// exporter) and `fc2(tanh(fc1(cat(h_n[-2], h_n[-1]))))` (the dynamo exporter, external data),
/// dropout dropped in eval mode; refused before ("only one dense layer"). The same weights
/// as a safetensors state dict, with the layers and activations named on the command line.
#[test]
fn heads_of_more_than_one_dense_layer() {
    for name in ["torch_mlp_head", "torch_mlp_head_dynamo"] {
        check(&format!("{name}.onnx"), name, LoadOptions::default());
        // The float64 reference every error is measured against runs the same layers.
        let m = lstm::load(
            data(&format!("{name}.onnx")).to_str().unwrap(),
            &LoadOptions::default(),
        )
        .unwrap();
        let x = npy::read_sequences(&data(&format!("{name}.x.npy"))).unwrap();
        let (_, want) = npy::read_f32(&data(&format!("{name}.output.npy"))).unwrap();
        let got = eval::reference::evaluate(&m, &x).output.expect("a head");
        let (d, at) = max_abs_diff(&got, &want);
        assert!(
            d <= TOL,
            "{name}: the float64 reference's output is {d} off at {at}"
        );
    }
    let opts = |activation| {
        LoadOptions::parse(Some("fc1, fc2"), Some(activation), Some("last-step"), None).unwrap()
    };
    check(
        "torch_mlp_head.safetensors",
        "torch_mlp_head",
        opts("relu,softmax"),
    );
    // One activation for two layers is ambiguous: refused, not applied to one of them, where
    // the flags are read and by the loader.
    let file = data("torch_mlp_head.safetensors");
    let (which, err) = LoadOptions::parse(Some("fc1,fc2"), Some("softmax"), None, None)
        .and_then(|o| o.check("m.safetensors"))
        .unwrap_err();
    assert_eq!(which.flag(), "--head-activation");
    assert!(err.contains("1 activations for 2 head layers"), "{err}");
    let one = LoadOptions {
        head_activation: vec![HeadActivation::Softmax],
        ..opts("relu,softmax")
    };
    let err = lstm::load(file.to_str().unwrap(), &one).unwrap_err();
    assert!(
        err.to_string().contains(
            "--head-activation: 1 activations for 2 head layers (give one per layer, in order)"
        ),
        "{err}"
    );
    // The layers in the wrong order do not chain.
    let swapped = LoadOptions::parse(Some("fc2,fc1"), None, Some("last-step"), None).unwrap();
    let err = lstm::load(file.to_str().unwrap(), &swapped).unwrap_err();
    assert!(
        err.to_string()
            .contains("head layer 0: input size 11 does not match the last layer's output 18"),
        "{err}"
    );
}

/// torch's default exporter since 2.9 (`dynamo=True`): weights in `torch_dynamo.onnx.data`
/// beside the model (external data; refused before), initial states from `Expand`, the
/// directions merged by a shape computed with Slice / Mul / Reshape of shape vectors.
#[test]
fn torch_dynamo_export_with_external_data() {
    check("torch_dynamo.onnx", "torch_dynamo", LoadOptions::default());
}

/// The dynamo exporter from `nn.LSTM(8, 48)` on leaves the gate reorder of the weights (torch's
/// i, f, g, o to ONNX's i, o, f, c) in the graph: Slice / Concat / Unsqueeze of initializers,
/// both directions, then Concat of the directions (refused before: torch 2.15's default export
/// of any realistic model).
#[test]
fn torch_dynamo_export_with_the_gate_reorder_in_the_graph() {
    check(
        "torch_dynamo_unfolded.onnx",
        "torch_dynamo_unfolded",
        LoadOptions::default(),
    );
}

/// `nn.Embedding -> nn.LSTM(batch_first) -> fc(h_n[-1])` / `fc(y[:, -1])`, int64 token ids
/// with padding (id 0, a row of zeros) as the graph input: a Gather of the table by the ids,
/// from either exporter (the dynamo one also takes the ids' Shape for the initial states).
/// Refused before (an int64 graph input).
#[test]
fn torch_embedding_front_end_from_either_exporter() {
    for name in ["torch_embedding", "torch_embedding_dynamo"] {
        check(&format!("{name}.onnx"), name, LoadOptions::default());
        let m = lstm::load(
            data(&format!("{name}.onnx")).to_str().unwrap(),
            &LoadOptions::default(),
        )
        .unwrap();
        let e = m.embedding.as_ref().expect("an embedding");
        assert_eq!((e.vocab, e.dim, m.input_size()), (50, 12, 12), "{name}");
        assert!(e.table[..12].iter().all(|&v| v == 0.0), "padding row");
    }
}

/// The same weights as a state dict, named on the command line (`--embedding emb --head fc
/// --head-input final-state`): onnxruntime's output, and the ONNX model's table; negative ids
/// are torch's error there, not ONNX Gather's count from the end.
#[test]
fn safetensors_embedding_named_by_flag() {
    let opts = LoadOptions {
        head: vec!["fc".into()],
        head_activation: Vec::new(),
        head_input: Some(lstm::HeadInput::FinalState),
        embedding: Some("emb".into()),
    };
    check(
        "torch_embedding.safetensors",
        "torch_embedding",
        opts.clone(),
    );
    let st = lstm::load(data("torch_embedding.safetensors").to_str().unwrap(), &opts).unwrap();
    let onnx = lstm::load(
        data("torch_embedding.onnx").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let (a, b) = (st.embedding.unwrap(), onnx.embedding.unwrap());
    assert_eq!((a.vocab, a.dim, &a.table), (b.vocab, b.dim, &b.table));
    assert_eq!(a.negative, lstm::NegativeIds::Refused);
    assert_eq!(b.negative, lstm::NegativeIds::FromEnd);
    let missing = LoadOptions {
        embedding: Some("embed".into()),
        ..opts
    };
    let e = lstm::load(
        data("torch_embedding.safetensors").to_str().unwrap(),
        &missing,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("embedding 'embed': no tensor 'embed.weight'"),
        "{e}"
    );
}

#[test]
fn static_export_runs_on_its_sizes_and_refuses_others() {
    // Literal sizes in Reshapes and initial states, a strided Slice, a Gemm bias of [1, O].
    check(
        "static_shapes.onnx",
        "static_shapes",
        LoadOptions::default(),
    );
    let m = lstm::load(
        data("static_shapes.onnx").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(m.fixed.steps, Some((7, "graph input 'X'".to_string())));
    assert_eq!(m.fixed.batch.as_ref().map(|b| b.0), Some(3));
    let x = npy::read_sequences(&data("static_shapes.x.npy")).unwrap();
    // Fewer steps, or fewer sequences: onnxruntime refuses both; so does the evaluation.
    let mut short = x.clone();
    short.steps = 6;
    short.data = (0..x.count)
        .flat_map(|n| x.sequence(n)[..6 * x.width].to_vec())
        .collect();
    let mut fewer = x.clone();
    fewer.count = 2;
    fewer.data.truncate(2 * x.steps * x.width);
    for (seqs, what) in [(short, "6 steps"), (fewer, "2 sequences")] {
        let err = eval::evaluate(&m, &seqs, "in.npy", &[PrecisionConfig::FP32], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(what) && err.contains("fixes them to"), "{err}");
    }
}

#[test]
fn same_weights_as_safetensors() {
    let opts = LoadOptions {
        head: vec!["fc".into()],
        head_activation: vec![HeadActivation::Softmax],
        head_input: None,
        embedding: None,
    };
    check("torch_lstm3.safetensors", "torch_lstm3", opts);
    check(
        "torch_bilstm.safetensors",
        "torch_bilstm",
        LoadOptions::default(),
    );
    // The two files describe the same model.
    let a = lstm::load(
        data("torch_lstm3.onnx").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let b = lstm::load(
        data("torch_lstm3.safetensors").to_str().unwrap(),
        &LoadOptions {
            head: vec!["fc".into()],
            head_activation: vec![HeadActivation::Softmax],
            head_input: None,
            embedding: None,
        },
    )
    .unwrap();
    assert_eq!(a.layers.len(), b.layers.len());
    for (la, lb) in a.layers.iter().zip(&b.layers) {
        let (ca, cb) = (&la.cells[0], &lb.cells[0]);
        assert_eq!(
            (&ca.w, &ca.r, &ca.b_ih, &ca.b_hh),
            (&cb.w, &cb.r, &cb.b_ih, &cb.b_hh)
        );
    }
}

#[test]
fn infer_command_writes_what_onnxruntime_computes() {
    let dir = tempfile::tempdir().unwrap();
    // A head on the last step writes `[N, O]`, as onnxruntime does.
    for (fixture, what) in [
        ("torch_lstm3", "hidden"),
        ("torch_lstm3", "output"),
        ("torch_last_step", "output"),
        ("torch_mlp_head", "output"),
        ("torch_embedding", "output"),
        ("torch_embedding", "hidden"),
    ] {
        let reference = format!("{fixture}.{what}.npy");
        let out = dir.path().join(format!("{fixture}.{what}.npy"));
        let status = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args(["infer", "--quiet", "--model"])
            .arg(data(&format!("{fixture}.onnx")))
            .arg("--input")
            .arg(data(&format!("{fixture}.x.npy")))
            .args(["--precision", "fp32", "--what", what, "--output"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let (shape, got) = npy::read_f32(&out).unwrap();
        let (want_shape, want) = npy::read_f32(&data(&reference)).unwrap();
        assert_eq!(shape, want_shape);
        let (d, at) = max_abs_diff(&got, &want);
        assert!(d <= TOL, "infer --what {what}: {d} at {at}");
    }
}

#[test]
fn onnx_reshape_gemm_reshape_head() {
    // LSTM -> Squeeze -> Reshape [-1, H] -> Gemm -> Reshape [T, N, -1] (T, N from Shape/Gather)
    // -> Softmax: the 2-D dense pattern exporters write around a head.
    check("reshape_gemm.onnx", "reshape_gemm", LoadOptions::default());
}

/// The same head as ONNX also allows it: `transB = 2` (any nonzero value transposes) and a
/// 0-d bias added to every output. It was read untransposed (wrong numbers) and refused.
#[test]
fn onnx_gemm_rules_as_onnxruntime_reads_them() {
    check("gemm_rules.onnx", "gemm_rules", LoadOptions::default());
}

/// The head's rows transposed before the Gemm (`Transpose` perm [1, 0]) and read back by
/// `transA = 1`: onnxruntime's product of the untransposed rows. transA was refused.
#[test]
fn onnx_gemm_trans_a_reads_transposed_rows() {
    check("gemm_trans_a.onnx", "gemm_trans_a", LoadOptions::default());
}

/// A safetensors model says where its head reads with `--head-input`: on the last step, the
/// output is onnxruntime's every-step output at the last step, `[N, O]`; without `--head`, or
/// on an ONNX file (whose graph says it), the flag is refused.
#[test]
fn safetensors_head_on_the_last_step() {
    let opts = |head: Option<&str>| LoadOptions {
        head: head.map(String::from).into_iter().collect(),
        head_activation: head.map(|_| HeadActivation::Softmax).into_iter().collect(),
        head_input: Some(lstm::HeadInput::LastStep),
        embedding: None,
    };
    let file = data("torch_lstm3.safetensors");
    let m = lstm::load(file.to_str().unwrap(), &opts(Some("fc"))).unwrap();
    let x = npy::read_sequences(&data("torch_lstm3.x.npy")).unwrap();
    let run = &eval::evaluate(&m, &x, "x", &[PrecisionConfig::FP32], false).unwrap()[0];
    let (shape, every) = npy::read_f32(&data("torch_lstm3.output.npy")).unwrap();
    let (n, t, o) = (shape[0], shape[1], shape[2]);
    let want: Vec<f32> = (0..n)
        .flat_map(|s| every[(s * t + t - 1) * o..(s * t + t) * o].to_vec())
        .collect();
    let (d, at) = max_abs_diff(run.output.as_ref().expect("a head"), &want);
    assert!(d <= TOL, "last-step head: {d} at {at}");
    let err = lstm::load(file.to_str().unwrap(), &opts(None)).unwrap_err();
    assert!(
        err.to_string().contains("--head-input: needs a head"),
        "{err}"
    );
    let onnx = data("torch_lstm3.onnx");
    let err = lstm::load(onnx.to_str().unwrap(), &opts(Some("fc"))).unwrap_err();
    assert!(err.to_string().contains("safetensors models only"), "{err}");
}
