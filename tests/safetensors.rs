//! safetensors import (PyTorch `nn.LSTM` state dicts): every float dtype PyTorch saves reads
//! the same model, and a tensor the model would drop or misread is refused with one line
//! naming it, exit code 2.
//!
//! The files are written here byte by byte (an 8-byte header length, the JSON header, the
//! data), and the float16 codes by a formula of their own, not by the importer's decoder.

use std::process::Command;

mod common;

/// One tensor of a file: name, safetensors dtype, shape, little-endian bytes.
type Entry = (String, &'static str, Vec<usize>, Vec<u8>);

fn file(entries: &[Entry]) -> Vec<u8> {
    let (mut header, mut data): (Vec<String>, Vec<u8>) = (Vec::new(), Vec::new());
    for (name, dtype, shape, bytes) in entries {
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{},{}]}}",
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend(bytes);
    }
    let header = format!("{{{}}}", header.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// IEEE binary16 code of `v`, which must be exact in it (normal or subnormal).
fn f16_code(v: f32) -> u16 {
    let sign = if v.is_sign_negative() { 0x8000 } else { 0 };
    let a = v.abs() as f64;
    if a == 0.0 {
        return sign;
    }
    let e = a.log2().floor() as i32;
    let code = if e < -14 {
        // Subnormal: a multiple of 2^-24.
        a / 2f64.powi(-24)
    } else {
        ((e + 15) as f64) * 1024.0 + (a / 2f64.powi(e) - 1.0) * 1024.0
    };
    assert_eq!(code.fract(), 0.0, "{v} is not exact in float16");
    sign | code as u16
}

/// A one-layer `nn.LSTM` (I = 3, H = 2, biases) in `dtype`, every value exact in float16
/// and bfloat16 (a few significant bits; two of them float16 subnormals).
fn lstm(dtype: &'static str) -> Vec<Entry> {
    let values = |n: usize, salt: usize| -> Vec<f32> {
        (0..n)
            .map(|j| match (j + salt) % 11 {
                3 => 2f32.powi(-20),
                7 => -(2f32.powi(-24)),
                _ => (((j * 37 + salt) % 61) as f32 - 30.0) / 64.0,
            })
            .collect()
    };
    let encode = |v: &[f32]| -> Vec<u8> {
        match dtype {
            "F32" => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            "F64" => v.iter().flat_map(|&x| (x as f64).to_le_bytes()).collect(),
            "F16" => v.iter().flat_map(|&x| f16_code(x).to_le_bytes()).collect(),
            "BF16" => v
                .iter()
                .flat_map(|x| {
                    let bits = x.to_bits();
                    assert_eq!(bits & 0xffff, 0, "{x} is not exact in bfloat16");
                    ((bits >> 16) as u16).to_le_bytes()
                })
                .collect(),
            _ => unreachable!(),
        }
    };
    [
        ("weight_ih_l0", vec![8, 3], 1),
        ("weight_hh_l0", vec![8, 2], 2),
        ("bias_ih_l0", vec![8], 3),
        ("bias_hh_l0", vec![8], 4),
    ]
    .into_iter()
    .map(|(name, shape, salt)| {
        let v = values(shape.iter().product(), salt);
        (format!("lstm.{name}"), dtype, shape, encode(&v))
    })
    .collect()
}

fn parse(bytes: &[u8]) -> Result<lstm_dse::lstm::Model, String> {
    let opts = lstm_dse::lstm::LoadOptions::default();
    lstm_dse::lstm::safetensors::parse("m.safetensors", bytes, &opts)
        .and_then(|m| {
            m.validate()?;
            Ok(m)
        })
        .map_err(|e| e.to_string())
}

/// The bits of every parameter of a one-layer model.
fn bits(m: &lstm_dse::lstm::Model) -> Vec<u32> {
    let c = &m.layers[0].cells[0];
    [&c.w, &c.r, &c.b_ih, &c.b_hh]
        .into_iter()
        .flatten()
        .map(|v| v.to_bits())
        .collect()
}

/// float16 and bfloat16 state dicts (PyTorch's `.half()` and `.bfloat16()` models) hold the
/// same values as the float32 one and read as the same model, bit for bit; so does float64.
/// They were refused ("dtype F16 is not supported").
#[test]
fn every_float_dtype_reads_the_same_model() {
    let want = bits(&parse(&file(&lstm("F32"))).unwrap());
    assert!(
        want.contains(&2f32.powi(-20).to_bits()) && want.contains(&(-2f32.powi(-24)).to_bits())
    );
    for dtype in ["F16", "BF16", "F64"] {
        let got = bits(&parse(&file(&lstm(dtype))).unwrap_or_else(|e| panic!("{dtype}: {e}")));
        assert_eq!(got, want, "{dtype}");
    }
}

/// Writes the file and runs `inspect` on it: exit 2, one line naming `expect`.
fn refused(entries: &[Entry], expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, file(entries)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .arg("inspect")
        .arg("--model")
        .arg(&path)
        .output()
        .unwrap();
    let err = common::refused(&o, expect);
    assert!(err.contains("m.safetensors"), "{err}");
}

/// Tensors the model would have dropped without a word (a layer after a gap, a reverse tensor
/// beside a one-way layer, a misspelt or zero-padded name, one bias of two, biases in one
/// direction only) or misread (a
/// head bias of another shape, read as its values; a reverse direction with another input
/// width, blamed on the forward one; a float64 beyond float32's range, reported as NaN/Inf).
#[test]
fn tensors_the_model_would_drop_or_misread_are_refused() {
    let with = |extra: Vec<Entry>, drop: &[&str]| -> Vec<Entry> {
        let mut e: Vec<Entry> = lstm("F32")
            .into_iter()
            .filter(|(n, ..)| !drop.contains(&n.as_str()))
            .collect();
        e.extend(extra);
        e
    };
    let f32s = |n: usize| -> Vec<u8> { vec![0u8; 4 * n] };
    let t = |name: &str, shape: Vec<usize>| -> Entry {
        let n = shape.iter().product();
        (name.to_string(), "F32", shape, f32s(n))
    };
    refused(
        &with(
            vec![
                t("lstm.weight_ih_l2", vec![8, 2]),
                t("lstm.weight_hh_l2", vec![8, 2]),
            ],
            &[],
        ),
        &[
            "'lstm.weight_hh_l2' is of layer 2",
            "no 'lstm.weight_ih_l1'",
        ],
    );
    refused(
        &with(vec![t("lstm.bias_ih_l0_reverse", vec![8])], &[]),
        &[
            "'lstm.bias_ih_l0_reverse'",
            "no 'lstm.weight_ih_l0_reverse'",
        ],
    );
    // No hidden units: 0 rows is a multiple of four, which the message said it was not.
    refused(
        &[
            t("lstm.weight_ih_l0", vec![0, 3]),
            t("lstm.weight_hh_l0", vec![0, 0]),
        ],
        &["'lstm.weight_ih_l0' has 0 rows", "a hidden size of 0"],
    );
    refused(
        &with(vec![t("lstm.weight_ih_l0x", vec![8, 3])], &[]),
        &["'lstm.weight_ih_l0x' is not an nn.LSTM parameter"],
    );
    refused(
        &with(vec![t("lstm.bias_ih_l01", vec![8])], &[]),
        &["'lstm.bias_ih_l01' is not an nn.LSTM parameter"],
    );
    refused(
        &with(vec![], &["lstm.bias_hh_l0"]),
        &["'lstm.bias_ih_l0' and 'lstm.bias_hh_l0'", "one is missing"],
    );
    let bidir = |input_reverse: usize, biases: bool| -> Vec<Entry> {
        let mut extra = vec![
            t("lstm.weight_ih_l0_reverse", vec![8, input_reverse]),
            t("lstm.weight_hh_l0_reverse", vec![8, 2]),
        ];
        if biases {
            extra.push(t("lstm.bias_ih_l0_reverse", vec![8]));
            extra.push(t("lstm.bias_hh_l0_reverse", vec![8]));
        }
        with(extra, &[])
    };
    assert!(parse(&file(&bidir(3, true))).is_ok());
    refused(
        &bidir(5, true),
        &[
            "'lstm.weight_ih_l0_reverse' has 5 inputs",
            "'lstm.weight_ih_l0' has 3",
        ],
    );
    // The reverse direction without the biases the forward one has ran with zeros.
    refused(
        &bidir(3, false),
        &["'lstm.bias_ih_l0' is there but 'lstm.bias_ih_l0_reverse' is not"],
    );
    let head = |bias: Vec<usize>| -> Vec<Entry> {
        with(vec![t("fc.weight", vec![4, 2]), t("fc.bias", bias)], &[])
    };
    let opts = lstm_dse::lstm::LoadOptions {
        head: vec!["fc".into()],
        head_activation: Vec::new(),
        head_input: None,
        embedding: None,
    };
    let parse_head = |e: &[Entry]| {
        lstm_dse::lstm::safetensors::parse("m.safetensors", &file(e), &opts)
            .map_err(|e| e.to_string())
    };
    assert!(parse_head(&head(vec![4])).is_ok());
    for shape in [vec![4, 1], vec![1], vec![5]] {
        let e = parse_head(&head(shape.clone())).unwrap_err();
        assert!(
            e.contains(&format!("'fc.bias' has shape {shape:?}, expected [4]")),
            "{e}"
        );
    }
    let mut far = lstm("F64");
    far[0].3[..8].copy_from_slice(&1e300f64.to_le_bytes());
    refused(
        &far,
        &[
            "'lstm.weight_ih_l0'",
            "1e300 at index 0",
            "beyond float32's range",
        ],
    );
}

/// A wide head's outputs count against `--max-memory` (they did not: a 20,000-way head on
/// 40 x 50 steps was estimated at 0.3 MB, though its outputs alone are 2,000 vectors x 20,000
/// x 12 bytes, float64 and float32). Every step's vectors go through it, or one per sequence
/// with `--head-input last-step`.
#[test]
fn a_wide_heads_outputs_count_against_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (m, x, y) = (path("m.safetensors"), path("x.npy"), path("y.npy"));
    let mut entries = lstm("F32");
    let classes = 20_000;
    entries.push((
        "fc.weight".into(),
        "F32",
        vec![classes, 2],
        vec![0; classes * 8],
    ));
    entries.push(("fc.bias".into(), "F32", vec![classes], vec![0; classes * 4]));
    std::fs::write(&m, file(&entries)).unwrap();
    let model = ["--model", m.as_str(), "--head", "fc"];
    let mut gen = vec![
        "gen-input",
        "--sequences",
        "40",
        "--steps",
        "50",
        "--output",
        &x,
    ];
    gen.extend(model);
    common::ok(&gen);
    let infer = |input: &str| {
        let mut args = vec!["--max-memory", "40M", "infer", "--precision", "fx8"];
        args.extend(model);
        args.extend(["--head-input", input, "--input", &x, "--output", &y]);
        common::run(&args)
    };
    // 2,000 vectors x 20,000 outputs, in float64 and float32: about 610 MiB.
    common::refused(
        &infer("every-step"),
        &["40 sequence(s) x 50 steps", "--max-memory"],
    );
    assert!(!std::path::Path::new(&y).exists());
    // 40 vectors: about 12 MiB.
    let o = infer("last-step");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Labels index a head's outputs as classes: a head of one output (a binary score) has none to
/// index, and says so (it said "label 1 is not a class index 0..0").
#[test]
fn labels_on_a_one_output_head_are_refused_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (m, x, labels) = (path("m.safetensors"), path("x.npy"), path("labels.npy"));
    let mut entries = lstm("F32");
    let half = 0.5f32.to_le_bytes().to_vec();
    entries.push(("fc.weight".into(), "F32", vec![1, 2], half.repeat(2)));
    std::fs::write(&m, file(&entries)).unwrap();
    let model = [
        "--model",
        m.as_str(),
        "--head",
        "fc",
        "--head-activation",
        "sigmoid",
    ];
    let mut gen = vec![
        "gen-input",
        "--sequences",
        "2",
        "--steps",
        "3",
        "--output",
        &x,
    ];
    gen.extend(model);
    common::ok(&gen);
    lstm_dse::lstm::npy::write_f32(std::path::Path::new(&labels), &[2], &[0.0, 1.0]).unwrap();
    let out = path("out");
    let mut args = vec!["dynamic", "--input", &x, "--levels", "fx8,fx16"];
    args.extend(["--thresholds", "0", "--device", "cpu", "--labels", &labels]);
    args.extend(["--out", &out]);
    args.extend(model);
    common::refused(
        &common::run(&args),
        &["labels.npy: labels need a head of 2 or more outputs to index"],
    );
    assert!(!std::path::Path::new(&out).exists());
}

/// A header that names a tensor twice (same offsets, so the file is otherwise valid) is
/// refused: the safetensors crate kept the last entry without a word.
#[test]
fn a_tensor_named_twice_in_the_header_is_refused() {
    let bytes = file(&lstm("F32"));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    // The first entry, `"lstm.weight_ih_l0":{...}`, given again second (not last: a reader
    // that stopped at the repeat missed it).
    let first = &header[1..=header.find('}').unwrap()];
    let twice = format!("{{{first},{}", &header[1..]);
    let mut out = (twice.len() as u64).to_le_bytes().to_vec();
    out.extend(twice.as_bytes());
    out.extend(&bytes[8 + n..]);
    assert!(parse(&bytes).is_ok());
    let err = parse(&out).unwrap_err();
    assert!(
        err.contains("the header lists 'lstm.weight_ih_l0' twice"),
        "{err}"
    );
}
