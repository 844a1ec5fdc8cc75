//! Golden design points: a few (arch, overrides, workload) cases whose key outputs are stored
//! in `tests/golden/accel_points.csv` and compared with a relative tolerance, so any change to
//! the model's numbers is noticed. The file's first line records the [`MODEL_VERSION`] it was
//! made with, which ties the version rule to this test: figures that change under the same
//! version fail it (bump the version), and so does a bumped version until the file is
//! regenerated with `cargo test --lib print_golden -- --ignored --nocapture` (give the reason
//! in the commit).

use super::test_support::*;
use super::*;

const GOLDEN: &str = "tests/golden/accel_points.csv";
const TOLERANCE: f64 = 1e-6;
/// The start of the golden file's first line, before the model version it was made with.
const VERSION_LINE: &str = "# model_version = ";
const REGENERATE: &str = "regenerate the golden points with `cargo test --lib print_golden -- --ignored --nocapture` (the output, without the test harness's lines, is tests/golden/accel_points.csv)";
const COLUMNS: [&str; 12] = [
    "cycles",
    "latency_us",
    "energy_uj",
    "compute_uj",
    "sram_uj",
    "dram_uj",
    "static_uj",
    "area_mm2",
    "utilization",
    "dram_bytes",
    "dram_bound_fraction",
    "gflops_per_w",
];

fn values(p: &DesignPoint) -> [f64; 12] {
    [
        p.cycles,
        p.latency_us,
        p.energy_uj,
        p.compute_uj,
        p.sram_uj,
        p.dram_uj,
        p.static_uj,
        p.area_mm2,
        p.utilization,
        p.dram_bytes,
        p.dram_bound_fraction,
        p.gflops_per_w,
    ]
}

fn cases() -> Vec<(&'static str, Arch, Workload)> {
    let mut dynamic = eesen_like();
    dynamic.precision = two_level(8, 16, 0.72);
    let mut serial = uniform("2x256-dpred", 2, 256, 256, 30);
    serial.precision = PrecisionProfile::fixed(8, 8).with_dpred(0.5, 0.5);
    let mut batched = uniform("2x512-batch4", 2, 512, 512, 25);
    batched.batch = 4;
    vec![
        ("epur/eesen", arch("epur", &[]), eesen_like()),
        ("sharp/eesen", arch("sharp", &[]), eesen_like()),
        (
            "sharp/uneven",
            arch("sharp", &[]),
            uniform("2x100", 2, 100, 100, 50),
        ),
        (
            "multiprogramming/eesen",
            arch("multicore", &[]),
            eesen_like(),
        ),
        (
            "multithreading/4x512",
            arch(
                "multicore",
                &["multicore.cores=4", "multicore.mode=multithreading"],
            ),
            uniform("4x512", 4, 512, 512, 20),
        ),
        (
            "helper/2x64",
            arch("multicore", &["multicore.mode=helper"]),
            uniform("2x64", 2, 64, 64, 50),
        ),
        (
            "dynamic/eesen",
            arch(
                "epur",
                &[
                    "compute.multiplier_kind=bit-parallel",
                    "compute.min_precision_bits=8",
                    "tracking.enabled=true",
                ],
            ),
            dynamic,
        ),
        (
            "bit-serial/dpred",
            arch(
                "epur",
                &[
                    "compute.multiplier_kind=bit-serial",
                    "compute.multipliers_per_unit=128",
                    "compute.min_precision_bits=1",
                ],
            ),
            serial,
        ),
        (
            "bit-parallel/batch4",
            arch(
                "sharp",
                &[
                    "compute.multiplier_kind=bit-parallel",
                    "compute.min_precision_bits=4",
                ],
            ),
            batched,
        ),
        ("epur/gnmt-streamed", arch("epur", &[]), gnmt_like()),
    ]
}

fn render() -> String {
    let mut out = format!(
        "{VERSION_LINE}{MODEL_VERSION}\ncase,{}\n",
        COLUMNS.join(",")
    );
    for (name, a, w) in cases() {
        let p = evaluate(&a, &w).expect("golden case evaluates");
        let cells: Vec<String> = values(&p).iter().map(|v| format!("{v:e}")).collect();
        out.push_str(&format!("{name},{}\n", cells.join(",")));
    }
    out
}

#[test]
#[ignore]
fn print_golden() {
    print!("{}", render());
}

#[test]
fn golden_points_do_not_drift() {
    let text = std::fs::read_to_string(repo_path(GOLDEN)).expect("golden file readable");
    let (first, table) = text.split_once('\n').expect("golden file has lines");
    let recorded = first
        .trim_end()
        .strip_prefix(VERSION_LINE)
        .unwrap_or_else(|| {
            panic!("{GOLDEN}: the first line should be '{VERSION_LINE}N'; {REGENERATE}")
        });
    assert_eq!(
        recorded,
        MODEL_VERSION.to_string(),
        "{GOLDEN} was made with accelerator model version {recorded}, MODEL_VERSION is {MODEL_VERSION}; {REGENERATE}"
    );
    let mut reader = csv::Reader::from_reader(table.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        header[1..],
        COLUMNS.map(String::from),
        "golden columns changed"
    );
    let expected: Vec<(String, Vec<f64>)> = reader
        .records()
        .map(|r| {
            let r = r.expect("golden row");
            let nums = r
                .iter()
                .skip(1)
                .map(|x| x.parse().expect("number"))
                .collect();
            (r[0].to_string(), nums)
        })
        .collect();
    let cases = cases();
    assert_eq!(
        expected.len(),
        cases.len(),
        "golden rows vs cases; regenerated:\n{}",
        render()
    );
    let mut drift = Vec::new();
    for ((name, a, w), (gname, gvals)) in cases.iter().zip(&expected) {
        assert_eq!(name, gname);
        let now = values(&evaluate(a, w).expect("evaluates"));
        for ((col, v), g) in COLUMNS.iter().zip(now).zip(gvals) {
            if !rel_close(v, *g, TOLERANCE) {
                drift.push(format!("{name}.{col}: golden {g} now {v}"));
            }
        }
    }
    assert!(
        drift.is_empty(),
        "the model's figures changed under MODEL_VERSION {MODEL_VERSION}:\n{}\nif deliberate, bump MODEL_VERSION in src/accel/mod.rs (sweeps made before the bump then cannot be resumed or merged with new ones) and {REGENERATE}; regenerated:\n{}",
        drift.join("\n"),
        render()
    );
}
