//! Quantizer options (docs/NUMERICS.md §3.1): calibration rules change which fraction bits an
//! `fx<b>` tensor gets, as the sorted calibration values say they should (the MSE rule against
//! a brute-force search: `calib::tests::mse_matches_a_brute_force_search_on_the_values`), and
//! `lstm-dse ranges` reports them.

use lstm_dse::format::{parse_config_list, Format};
use lstm_dse::lstm::{self, eval, npy, LoadOptions};
use std::path::Path;
use std::process::Command;

fn root(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

/// The exact q-th percentile of the non-zero |v| by sorting (the oracle for the histogram's).
fn percentile(v: &[f32], q: f64) -> f32 {
    let mut a: Vec<f32> = v.iter().map(|x| x.abs()).filter(|&x| x > 0.0).collect();
    a.sort_by(f32::total_cmp);
    let k = ((q / 100.0) * a.len() as f64).ceil().max(1.0) as usize;
    a[k - 1]
}

#[test]
fn percentile_calibration_resolves_like_the_sorted_values_say() {
    let m = lstm::load(&root("models/digits_lstm.onnx"), &LoadOptions::default()).unwrap();
    let x = npy::read_sequences(Path::new(&root("models/digits_test.x.npy"))).unwrap();
    let configs = parse_config_list("fx8,cal=p99;fx12,cal=p99.9;fx8").unwrap();
    let plans = eval::prepare(&m, &x, "x", &configs).unwrap();
    let fp32 = &eval::evaluate(
        &m,
        &x,
        "x",
        &[lstm_dse::format::PrecisionConfig::FP32],
        true,
    )
    .unwrap()[0];
    for (config, plan) in configs.iter().zip(&plans) {
        let Format::Fixed { bits, .. } = config.a else {
            unreachable!()
        };
        let q = match config.cal {
            lstm_dse::format::CalRule::Percentile(q) => q.value(),
            _ => 100.0,
        };
        for (l, states) in fp32.states.as_ref().unwrap().iter().enumerate() {
            let mut h = states.h.clone();
            h.extend(m.layers[l].cells[0].h0.as_deref().unwrap_or_default());
            // The histogram rounds the percentile up to its bin edge (at most 2^-8 relative),
            // so the resolved fraction bits are those of the exact percentile, or one fewer
            // when that edge crosses a power of two.
            let exact = Format::Fixed { bits, frac: None }
                .resolve(percentile(&h, q))
                .frac()
                .unwrap();
            let got = plan.layers[l][0].formats.h.frac().unwrap();
            assert!(
                got == exact || got == exact - 1,
                "{config} layer {l}: h frac {got}, exact {exact}"
            );
        }
    }
    // p100 is max, bit for bit.
    let same = eval::prepare(&m, &x, "x", &parse_config_list("fx8;fx8,cal=p100").unwrap()).unwrap();
    assert_eq!(same[0].layers[1][0].formats, same[1].layers[1][0].formats);
}

/// `lstm-dse ranges` on the digits model and its test input, `--precisions` and the rest from
/// `args`; checks it succeeds and returns its stdout.
fn ranges_of_digits(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args([
            "ranges",
            "--model",
            &root("models/digits_lstm.onnx"),
            "--input",
        ])
        .arg(root("models/digits_test.x.npy"))
        .arg("--precisions")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ranges_command_reports_every_tensor_and_writes_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ranges.csv");
    ranges_of_digits(&["fx8;fx16,cal=mse", "--csv", csv.to_str().unwrap()]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "layer,direction,tensor,max_abs,p99_9_abs,p99_99_abs,fx8,\"fx16,cal=mse\""
    );
    // 2 layers x (x, W, R, b, pre, c, h).
    assert_eq!(lines.len(), 1 + 2 * 7);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("0,0,c,") && l.contains(",fx8.")));
}

#[test]
fn ranges_shows_the_span_of_per_channel_weight_formats() {
    // With wscale=channel every row of W and R has its own format: the column spans them,
    // from the coarsest row to the finest; the widest-range row's (the per-tensor format,
    // the fx8 column) lies between.
    let text = ranges_of_digits(&["fx8;fx8,wscale=channel"]);
    let frac = |f: &str| f.strip_prefix("fx8.").unwrap().parse::<i32>().unwrap();
    let mut spans = 0;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 8 || !["W", "R"].contains(&cols[2]) {
            continue;
        }
        let (tensor, span) = (cols[6], cols[7]);
        match span.split_once("..") {
            Some((lo, hi)) => {
                assert!(
                    frac(lo) <= frac(tensor) && frac(tensor) <= frac(hi),
                    "{line}"
                );
                assert!(frac(hi) > frac(lo), "{line}");
                spans += 1;
            }
            None => assert_eq!(span, tensor, "{line}"),
        }
    }
    assert!(
        spans > 0,
        "no weight tensor with rows of different formats:\n{text}"
    );
}
