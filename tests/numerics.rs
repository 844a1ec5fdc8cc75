//! The quantized arithmetic of docs/NUMERICS.md: the worked example of one fixed-point step,
//! error ordering across widths, and bit-identical results whatever the thread count.

use lstm_dse::format::{parse_config_list, PrecisionConfig};
use lstm_dse::lstm::{self, eval, npy, Cell, Direction, Layer, LoadOptions, Model};
use std::path::Path;

/// The model of the worked example in docs/NUMERICS.md ("A step worked by hand").
fn worked_example() -> (Model, npy::Sequences) {
    let cell = Cell {
        // Gate rows i, f, g, o; I = 2.
        w: vec![0.5, -0.25, 0.75, 0.3, -1.0, 0.6, 0.2, 0.9],
        r: vec![0.4, -0.3, 0.8, 0.1],
        b_ih: vec![0.05, 1.0, 0.0, -0.5],
        b_hh: vec![0.0; 4],
        peephole: None,
        h0: Some(vec![0.25]),
        c0: Some(vec![0.5]),
    };
    let model = Model {
        name: "worked-example".into(),
        layers: vec![Layer {
            input_size: 2,
            hidden_size: 1,
            direction: Direction::Forward,
            cells: vec![cell],
        }],
        head: None,
        fixed: Default::default(),
        embedding: None,
    };
    let x = npy::Sequences::new("x", [1, 1, 2], vec![0.3, -0.6], false).unwrap();
    (model, x)
}

#[test]
fn worked_example_of_one_fixed_point_step() {
    let (model, x) = worked_example();
    model.validate().unwrap();
    let config: PrecisionConfig = "w=fx8.6,a=fx8.7,p=fx8.5,c=fx8.5".parse().unwrap();
    let run = &eval::evaluate(&model, &x, "x", &[config], true).unwrap()[0];
    let states = &run.states.as_ref().unwrap()[0];
    // c = 3 * 2^-5 and h = 3 * 2^-7, as derived step by step in NUMERICS.md.
    assert_eq!(states.c, vec![3.0 / 32.0]);
    assert_eq!(states.h, vec![3.0 / 128.0]);
}

fn fixture() -> (Model, npy::Sequences) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let m = lstm::load(
        dir.join("torch_lstm3.onnx").to_str().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let x = npy::read_sequences(&dir.join("torch_lstm3.x.npy")).unwrap();
    (m, x)
}

fn rmse(a: &[f32], b: &[f32]) -> f64 {
    (a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64)
        .sqrt()
}

#[test]
fn error_shrinks_as_fixed_point_widens() {
    let (m, x) = fixture();
    let configs = parse_config_list("fp32,fx6,fx8,fx12,fx16").unwrap();
    let runs = eval::evaluate(&m, &x, "x", &configs, false).unwrap();
    let errs: Vec<f64> = runs[1..]
        .iter()
        .map(|r| rmse(&r.hidden, &runs[0].hidden))
        .collect();
    assert!(
        errs.windows(2).all(|w| w[0] > w[1]),
        "rmse by width fx6..fx16: {errs:?}"
    );
    assert!(errs[3] < 1e-3, "fx16 rmse {}", errs[3]);
    assert!(errs[0] > 1e-3, "fx6 should visibly differ: {}", errs[0]);
}

#[test]
fn float_formats_rank_by_mantissa() {
    let (m, x) = fixture();
    let configs = parse_config_list("fp32,fp16,bf16,fp8e4m3,fp8e5m2").unwrap();
    let runs = eval::evaluate(&m, &x, "x", &configs, false).unwrap();
    let e: Vec<f64> = runs[1..]
        .iter()
        .map(|r| rmse(&r.hidden, &runs[0].hidden))
        .collect();
    assert!(
        e[0] < e[1] && e[1] < e[2] && e[2] < e[3],
        "fp16, bf16, e4m3, e5m2: {e:?}"
    );
    assert!(e[0] < 1e-3);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (m, x) = fixture();
    let configs = parse_config_list("fp32;fx8;w=fx8,a=fx8,c=fx16;fp16;fp8e4m3").unwrap();
    let run_with = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| eval::evaluate(&m, &x, "x", &configs, true).unwrap())
    };
    let (one, four) = (run_with(1), run_with(4));
    for (a, b) in one.iter().zip(&four) {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.hidden), bits(&b.hidden), "{}", a.config);
        assert_eq!(
            bits(a.output.as_ref().unwrap()),
            bits(b.output.as_ref().unwrap())
        );
        for (la, lb) in a
            .states
            .as_ref()
            .unwrap()
            .iter()
            .zip(b.states.as_ref().unwrap())
        {
            assert_eq!(bits(&la.c), bits(&lb.c));
        }
    }
}

#[test]
fn integer_values_stay_on_their_grids() {
    let (m, x) = fixture();
    let c: PrecisionConfig = "w=fx8,a=fx8,c=fx12".parse().unwrap();
    let run = &eval::evaluate(&m, &x, "x", &[c], true).unwrap()[0];
    for (l, (states, fmts)) in run
        .states
        .as_ref()
        .unwrap()
        .iter()
        .zip(&run.formats)
        .enumerate()
    {
        let (h, cf) = (fmts[0].h, fmts[0].c);
        assert!(
            states.h.iter().all(|&v| h.round(v) == v),
            "layer {l} h off the {h} grid"
        );
        assert!(
            states.c.iter().all(|&v| cf.round(v) == v),
            "layer {l} c off the {cf} grid"
        );
    }
}
