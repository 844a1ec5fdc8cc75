//! A model with an embedding front end (`tests/data/torch_embedding.onnx`: `nn.Embedding` ->
//! LSTM -> `fc(h_n[-1])`) through the binary: token-id inputs of either integer width and
//! rank, negative ids read as onnxruntime reads them, `gen-input`, `trace` and `sweep`; and
//! every wrong input refused with exit 2, one line naming the file, and nothing written.

use lstm_dse::lstm::npy;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{data, fails, ok};

const MODEL: &str = "torch_embedding.onnx";

/// The fixture's token ids `[3, 6]`.
fn fixture_ids() -> Vec<i64> {
    let bytes = std::fs::read(data("torch_embedding.x.npy")).unwrap();
    npy::parse_ids("x", &bytes).unwrap().1
}

/// A `.npy` in `dir` of `descr` values (raw little- or big-endian bytes) and `shape`.
fn npy_file(dir: &Path, name: &str, descr: &str, shape: &str, data: &[u8]) -> String {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.extend_from_slice(data);
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p.display().to_string()
}

/// Runs `infer --what output` at fp32 and returns (shape, values).
fn infer(model: &str, input: &str, out: &Path) -> (Vec<usize>, Vec<f32>) {
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(["infer", "--quiet", "--model", model, "--input", input])
        .args(["--precision", "fp32", "--what", "output", "--output"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    npy::read_f32(out).unwrap()
}

/// int32 ids give int64's result; one sequence `[T]` gives `[O]`, the batch's row; -1 is the
/// last row (id 49), as onnxruntime's Gather reads it.
#[test]
fn ids_of_either_width_and_rank_and_negative_ids_as_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let model = data(MODEL);
    let out = dir.path().join("y.npy");
    let (shape, want) = infer(&model, &data("torch_embedding.x.npy"), &out);
    assert_eq!(shape, [3, 5]);
    let (_, reference) = npy::read_f32(Path::new(&data("torch_embedding.output.npy"))).unwrap();
    let worst = (want.iter().zip(&reference)).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst <= 1e-5, "{worst}");
    let ids = fixture_ids();
    let i32s: Vec<u8> = ids.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
    let x32 = npy_file(dir.path(), "x32.npy", "<i4", "(3, 6)", &i32s);
    assert_eq!(infer(&model, &x32, &out), (vec![3, 5], want.clone()));
    let one: Vec<u8> = ids[6..12].iter().flat_map(|v| v.to_le_bytes()).collect();
    let x1 = npy_file(dir.path(), "x1.npy", "<i8", "(6,)", &one);
    assert_eq!(infer(&model, &x1, &out), (vec![5], want[5..10].to_vec()));
    // Sequence 1 ends with id 49, the table's last row: -1 is the same row.
    assert_eq!(ids[11], 49);
    let neg: Vec<u8> = (ids[6..11].iter().chain(&[-1]))
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let xn = npy_file(dir.path(), "xn.npy", "<i8", "(1, 6)", &neg);
    assert_eq!(infer(&model, &xn, &out), (vec![1, 5], want[5..10].to_vec()));
}

/// Each wrong input: exit 2, one line naming the file and the problem, no output file.
#[test]
fn wrong_inputs_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = data(MODEL);
    let ids: Vec<u8> = fixture_ids().iter().flat_map(|v| v.to_le_bytes()).collect();
    let with = |at: usize, id: i64| {
        let mut b = ids.clone();
        b[8 * at..8 * at + 8].copy_from_slice(&id.to_le_bytes());
        b
    };
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            model.clone(),
            npy_file(d, "big.npy", "<i8", "(3, 6)", &with(8, 50)),
            vec![
                "big.npy: sequence 1, step 2: token id 50",
                "vocabulary of 50",
            ],
        ),
        (
            model.clone(),
            npy_file(d, "neg.npy", "<i8", "(3, 6)", &with(17, -51)),
            vec!["neg.npy: sequence 2, step 5: token id -51", "ids -50..49"],
        ),
        (
            model.clone(),
            data("torch_lstm3.x.npy"),
            vec![
                "torch_lstm3.x.npy",
                "embedding of 50 tokens",
                "int64 or int32",
            ],
        ),
        (
            data("torch_lstm3.onnx"),
            data("torch_embedding.x.npy"),
            vec!["torch_embedding.x.npy", "has no embedding"],
        ),
        (
            model.clone(),
            npy_file(d, "rank3.npy", "<i8", "(3, 6, 1)", &ids),
            vec!["rank3.npy", "token ids must be [T] or [N, T]"],
        ),
        (
            model.clone(),
            npy_file(d, "i16.npy", "<i2", "(3, 6)", &ids[..36]),
            vec!["i16.npy", "'<i2'", "int64 or int32"],
        ),
        (
            model.clone(),
            npy_file(d, "short.npy", "<i8", "(3, 6)", &ids[..100]),
            vec!["short.npy", "needs 144 bytes of int64 data", "truncated"],
        ),
        (
            model.clone(),
            npy_file(d, "huge.npy", "<i8", "(4611686018427387904, 4)", &ids),
            vec!["huge.npy", "needs"],
        ),
    ];
    for (model, input, expect) in cases {
        let out = d.join("y.npy").display().to_string();
        fails(
            &[
                "infer",
                "--model",
                &model,
                "--input",
                &input,
                "--precision",
                "fx8",
                "--output",
                &out,
            ],
            &expect,
        );
        assert!(!Path::new(&out).exists(), "{input}: nothing written");
    }
}

/// A small file of ids can ask for a large batch of floats (8 bytes an id, 48 a looked-up row
/// here): the lookup's size is checked against `--max-memory` before it is allocated.
#[test]
fn the_lookup_is_checked_against_max_memory() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u8> = (0..600 * 6)
        .flat_map(|k| (k % 50i64).to_le_bytes())
        .collect();
    let x = npy_file(dir.path(), "ids.npy", "<i8", "(600, 6)", &ids);
    let out = dir.path().join("y.npy").display().to_string();
    let model = data(MODEL);
    let args = |limit: &'static str| {
        let mut a = vec![
            "--max-memory",
            limit,
            "infer",
            "--model",
            &model,
            "--input",
            &x,
        ];
        a.extend(["--precision", "fp32", "--output", &out]);
        a
    };
    let err = fails(
        &args("40K"),
        &[
            "ids.npy: 600 x 6 token ids looked up into 12 features each",
            "--max-memory",
        ],
    );
    assert_eq!(err.matches("ids.npy").count(), 1, "{err}");
    assert!(!Path::new(&out).exists());
    ok(&args("16M"));
}

/// The safetensors twin with `--embedding emb`: onnxruntime's output for the fixture's ids;
/// a negative id refused as torch refuses it; the flag on an ONNX model refused.
#[test]
fn safetensors_with_the_embedding_flag() {
    let dir = tempfile::tempdir().unwrap();
    let st = data("torch_embedding.safetensors");
    let flags = [
        "--embedding",
        "emb",
        "--head",
        "fc",
        "--head-input",
        "final-state",
    ];
    let out = dir.path().join("y.npy");
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(["infer", "--quiet", "--model", &st])
        .args(flags)
        .args(["--input", &data("torch_embedding.x.npy")])
        .args(["--precision", "fp32", "--what", "output", "--output"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, got) = npy::read_f32(&out).unwrap();
    let (_, want) = npy::read_f32(Path::new(&data("torch_embedding.output.npy"))).unwrap();
    assert_eq!(shape, [3, 5]);
    let worst = (got.iter().zip(&want)).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst <= 1e-5, "{worst}");
    let neg: Vec<u8> = [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    let xn = npy_file(dir.path(), "neg.npy", "<i8", "(2,)", &neg);
    let out = dir.path().join("z.npy").display().to_string();
    let mut args = vec!["infer", "--model", &st];
    args.extend(flags);
    args.extend(["--input", &xn, "--precision", "fp32", "--output", &out]);
    fails(
        &args,
        &["neg.npy: sequence 0, step 1: token id -1", "ids 0..49"],
    );
    let onnx = data(MODEL);
    fails(
        &[
            "infer",
            "--model",
            &onnx,
            "--embedding",
            "emb",
            "--input",
            &xn,
            "--precision",
            "fp32",
            "--output",
            &out,
        ],
        &["--embedding: applies to safetensors models only"],
    );
    assert!(!Path::new(&out).exists());
}

/// `gen-input` writes token ids for an embedding model, which `trace` then runs.
#[test]
fn gen_input_and_trace_on_token_ids() {
    let dir = tempfile::tempdir().unwrap();
    let x: PathBuf = dir.path().join("ids.npy");
    let xs = x.display().to_string();
    let model = data(MODEL);
    ok(&[
        "gen-input",
        "--model",
        &model,
        "--sequences",
        "2",
        "--steps",
        "5",
        "--output",
        &xs,
    ]);
    let (shape, ids) = npy::parse_ids("ids", &std::fs::read(&x).unwrap()).unwrap();
    assert_eq!(shape, [2, 5]);
    assert!(ids.iter().all(|id| (0..50).contains(id)), "{ids:?}");
    let out = dir.path().join("trace").display().to_string();
    ok(&[
        "trace",
        "--quiet",
        "--model",
        &model,
        "--input",
        &xs,
        "--precisions",
        "fp32,fx8",
        "--device",
        "cpu",
        "--out",
        &out,
    ]);
    assert!(Path::new(&out).join("summary.csv").exists());
}

/// A sweep on the embedding model, with the fixture's ids as input and with generated ids,
/// and on its safetensors twin (`workload.embedding`): the workload's input width is the
/// embedding's (12), and the run completes.
#[test]
fn sweep_runs_an_embedding_model_on_ids() {
    let ids = format!("input = \"{}\"", data("torch_embedding.x.npy"));
    let onnx = format!("models = [\"{}\"]", data(MODEL));
    let st = format!(
        "models = [\"{}\"]\nembedding = \"emb\"\nhead = \"fc\"\nhead_input = \"final-state\"",
        data("torch_embedding.safetensors")
    );
    let tiny = "models = [\"builtin:tiny\"]";
    let sizes = "sequences = 2\nsteps = 4";
    for edits in [
        vec![(tiny, onnx.clone()), (sizes, ids.clone())],
        vec![(tiny, onnx)],
        vec![(tiny, st), (sizes, ids)],
    ] {
        let edits: Vec<(&str, &str)> = edits.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let (dir, spec) = common::sweep_file(&edits);
        let out = dir.path().join("out").display().to_string();
        let cache = dir.path().join("cache").display().to_string();
        ok(&[
            "sweep", &spec, "--out", &out, "--cache", &cache, "--quiet", "--smoke",
        ]);
        let rows = std::fs::read_to_string(Path::new(&out).join("results.csv")).unwrap();
        assert!(rows.lines().count() > 1, "{rows}");
    }
}

/// The GPU lanes equal the CPU evaluator on looked-up inputs as on any input: `trace` on
/// the fixture's ids writes the same bytes on either device (every precision's per-step
/// errors and cell-state changes).
#[test]
fn trace_on_ids_is_the_same_on_gpu_and_cpu() {
    if common::shared_gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = data(MODEL);
    let x = data("torch_embedding.x.npy");
    let mut files = Vec::new();
    for device in ["cpu", "gpu"] {
        let out = dir.path().join(device).display().to_string();
        ok(&[
            "trace",
            "--quiet",
            "--model",
            &model,
            "--input",
            &x,
            "--precisions",
            "fp32;fx8;fx12;fp16;w=fx6,a=fx8,c=fx16",
            "--device",
            device,
            "--out",
            &out,
        ]);
        let read = |f: &str| std::fs::read(Path::new(&out).join(f)).unwrap();
        files.push((read("errors.csv"), read("cell_delta.csv")));
    }
    assert!(files[0] == files[1], "GPU trace differs from the CPU's");
}

/// `gen-input` counts what it writes for an embedding model, token ids (8 bytes each, and the
/// file's), not looked-up rows of 12 features: 600 x 6 ids fit 60 KiB; 40 KiB is refused.
#[test]
fn gen_input_counts_token_ids_against_max_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ids.npy").display().to_string();
    let model = data(MODEL);
    let args = |limit: &'static str| {
        let mut a = vec!["--max-memory", limit, "gen-input", "--model", &model];
        a.extend(["--sequences", "600", "--steps", "6", "--output", &out]);
        a
    };
    fails(
        &args("40K"),
        &["--sequences 600 --steps 6: token ids", "--max-memory"],
    );
    assert!(!Path::new(&out).exists());
    ok(&args("60K"));
    let (shape, _) = npy::parse_ids("ids", &std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(shape, [600, 6]);
}
