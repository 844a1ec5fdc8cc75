//! `lstm-dse model`: one design point from the command line, and its bad input (exit 2, one
//! line naming the file or field).

mod common;

use std::path::Path;

use common::{fails, run};

const BASE: [&str; 5] = [
    "model",
    "--arch",
    "sweeps/arch/epur.toml",
    "--model",
    "builtin:tiny",
];

#[test]
fn prints_a_design_point_and_a_csv_row() {
    let o = run(&BASE);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for field in ["cycles", "latency", "energy", "area", "utilization"] {
        assert!(text.contains(field), "summary lacks {field}: {text}");
    }
    let mut args = vec![
        "model",
        "--arch",
        "sweeps/arch/epur.toml",
        "--model",
        "builtin:eesen",
    ];
    args.extend([
        "--csv",
        "--baseline",
        "sweeps/arch/epur.toml",
        "--set",
        "compute.multipliers_per_unit=64",
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), row.len());
    let speedup: f64 = row[header.iter().position(|h| *h == "speedup").unwrap()]
        .parse()
        .unwrap();
    assert!(
        speedup > 1.5,
        "4x the multipliers should pay off on EESEN: {speedup}"
    );
}

#[test]
fn bad_architecture_and_policy_input() {
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = BASE.to_vec();
        a.extend_from_slice(extra);
        a
    }
    fails(
        &with(&["--set", "compute.unitz=3"]),
        &["unknown field 'unitz'"],
    );
    fails(
        &with(&["--set", "compute.units=0"]),
        &["compute.units", "0"],
    );
    fails(&with(&["--set", "compute.units=-4"]), &["compute.units"]);
    fails(&with(&["--set", "multicore.cores=0"]), &["multicore.cores"]);
    fails(&with(&["--precision", "fx2"]), &["2"]);
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.csv");
    std::fs::write(
        &policies,
        "policy,levels,frac_level_0,frac_level_1\n0,fx8|fx16,0.7,0.3\n",
    )
    .unwrap();
    let p = policies.to_str().unwrap();
    fails(
        &with(&[
            "--policies",
            p,
            "--policy",
            "3",
            "--set",
            "tracking.enabled=true",
        ]),
        &["policies.csv", "3"],
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[compute]\nunits = 4\nbogus = 1\n").unwrap();
    let mut a = vec![
        "model",
        "--arch",
        bad.to_str().unwrap(),
        "--model",
        "builtin:tiny",
    ];
    a.truncate(5);
    fails(&a, &["bad.toml"]);
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sweeps/arch/sharp.toml")
        .exists());
}

#[test]
fn measured_group_widths_shrink_dram_traffic() {
    let dram = |extra: &[&str]| -> f64 {
        let mut a = vec![
            "model",
            "--arch",
            "sweeps/arch/epur.toml",
            "--model",
            "builtin:zaremba-large",
            "--csv",
        ];
        a.extend_from_slice(extra);
        let o = run(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        row[header.iter().position(|h| *h == "dram_bytes").unwrap()]
            .parse()
            .unwrap()
    };
    let plain = dram(&[]);
    let grouped = dram(&[
        "--groups",
        "results/groups/digits_fx16.8/groups.csv",
        "--group-size",
        "16",
    ]);
    assert!(
        grouped < 0.6 * plain,
        "DPRed ratios ~0.53 should cut streamed weights: {grouped} vs {plain}"
    );
    fails(
        &[
            "model",
            "--arch",
            "sweeps/arch/epur.toml",
            "--model",
            "builtin:tiny",
            "--groups",
            "results/groups/digits_fx16/groups.csv",
            "--group-size",
            "7",
        ],
        &["groups.csv", "group size 7"],
    );
}

/// `simulate` keeps a few numbers per step of every layer: a huge `--seq-len` is refused
/// against `--max-memory` before they are allocated (it aborted allocating 8 TB), and zero
/// steps or sequences name their flag.
#[test]
fn simulate_counts_its_step_buffers_and_names_its_flags() {
    let sim = [
        "simulate",
        "--arch",
        "sweeps/arch/epur.toml",
        "--model",
        "builtin:tiny",
    ];
    let with = |extra: &[&'static str]| [&sim[..], extra].concat();
    fails(
        &with(&["--seq-len", "1000000000000"]),
        &["--seq-len 1000000000000", "simulator", "--max-memory"],
    );
    fails(
        &[&["--max-memory", "1M"][..], &with(&["--seq-len", "100000"])].concat(),
        &["--seq-len 100000", "--max-memory"],
    );
    fails(&with(&["--seq-len", "0"]), &["--seq-len 0"]);
    fails(&with(&["--batch", "0"]), &["--batch 0"]);
    let mut model = BASE.to_vec();
    model.extend(["--seq-len", "0"]);
    fails(&model, &["--seq-len 0"]);
    let o = run(&with(&["--seq-len", "1000"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `simulate` keeps no time per compute unit: the units of a core are interchangeable, so
/// the busiest one's time is computed from a count (it allocated 8 bytes per unit and
/// aborted with "memory allocation of 32000000000 bytes failed" for 4e9 units, and took 7 s
/// for 1e7). Billions of units now simulate at once, in a small address space, with the
/// cycles of a handful of units that already hold one tile each.
#[cfg(unix)]
#[test]
fn simulate_keeps_no_time_per_unit() {
    let simulate = |units: &str| {
        let start = std::time::Instant::now();
        let o = std::process::Command::new("sh")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["-c", r#"ulimit -v 2000000 && exec "$0" "$@""#])
            .arg(env!("CARGO_BIN_EXE_lstm-dse"))
            .args(["simulate", "--arch", "sweeps/arch/sharp.toml"])
            .args(["--model", "builtin:tiny", "--seq-len", "3", "--csv"])
            .args(["--set", &format!("compute.units={units}")])
            .output()
            .expect("run lstm-dse");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{units} units: {err}");
        assert!(start.elapsed().as_secs() < 20, "{units} units: slow");
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let row = out.lines().nth(1).expect("a CSV row").to_string();
        // arch,workload,sim_cycles,...: the cycles and what follows them.
        row.splitn(3, ',').nth(2).expect("sim_cycles").to_string()
    };
    let huge = simulate("4000000000");
    assert_eq!(huge, simulate("100000000"));
    assert_eq!(huge, simulate("4096"));
}

/// A `--set` value out of range is that override's error, not the file's (it said
/// `sweeps/arch/epur.toml: field 'compute.units'`), and a float given for an integer field is
/// quoted compactly (`1e300` was printed with all its 301 digits).
#[test]
fn set_errors_name_the_override_and_print_numbers_compactly() {
    let with = |set: &'static str| {
        let mut a = BASE.to_vec();
        a.extend_from_slice(&["--set", set]);
        a
    };
    let err = fails(
        &with("compute.units=-1"),
        &["--set 'compute.units=-1'", "must be >= 1, got -1"],
    );
    assert!(!err.contains("epur.toml"), "{err}");
    // The last override of a key is the one at fault; another key's value stays the file's.
    fails(
        &[
            BASE.as_slice(),
            &["--set", "compute.units=-2", "--set", "compute.units=0"],
        ]
        .concat(),
        &["--set 'compute.units=0'", "got 0"],
    );
    let err = fails(&with("compute.units=1e300"), &["compute.units", "1e300"]);
    assert!(!err.contains("0000000000"), "{err}");
    assert!(err.len() < 200, "{err}");
}

/// A number past TOML's 64-bit integers (or a float past f64) read as a bare word, and the
/// refusal said `invalid type: string "18446744073709551615", expected i64`: it says the
/// number is out of range for the field. A bad width fraction of `--groups` named the column
/// by its position (`column 9`): it names it by its header.
#[test]
fn out_of_range_numbers_and_bad_group_fractions_name_the_field() {
    for (set, expect) in [
        (
            "compute.units=18446744073709551615",
            "18446744073709551615 is out of range for compute.units: too large",
        ),
        (
            "compute.units=-9223372036854775809",
            "out of range for compute.units: too small",
        ),
        (
            "memory.dram_gb_per_s=1e999",
            "1e999 is out of range for memory.dram_gb_per_s",
        ),
    ] {
        let mut a = BASE.to_vec();
        a.extend(["--set", set]);
        let err = fails(&a, &[&format!("--set '{set}'"), expect]);
        assert!(!err.contains("invalid type"), "{err}");
    }
    // What is not a number is not out of range: the field's type is named instead.
    for set in [
        "compute.units=1-4",
        "compute.units=1.2.3",
        "compute.units=1__0",
    ] {
        let mut a = BASE.to_vec();
        a.extend(["--set", set]);
        let err = fails(&a, &[&format!("--set '{set}'"), "expected i64"]);
        assert!(!err.contains("out of range"), "{err}");
    }
    // An integer for a float field is fine, however large.
    let mut a = BASE.to_vec();
    a.extend(["--set", "memory.dram_gb_per_s=18446744073709551615"]);
    assert!(run(&a).status.success());

    let dir = tempfile::tempdir().unwrap();
    let groups = dir.path().join("gz.csv");
    let text = std::fs::read_to_string("results/groups/digits_fx16/groups.csv").unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let row = lines
        .iter()
        .position(|l| l.starts_with("activations,16,"))
        .expect("an activations row of group size 16");
    let mut cells: Vec<String> = lines[row].split(',').map(String::from).collect();
    cells[8] = "abc".into();
    lines[row] = cells.join(",");
    std::fs::write(&groups, lines.join("\n") + "\n").unwrap();
    let g = groups.display().to_string();
    let mut a = BASE.to_vec();
    a.extend(["--groups", &g, "--group-size", "16"]);
    let err = fails(
        &a,
        &[
            &format!("{g}:{}", row + 1),
            "column 'frac_groups_width_1'",
            "'abc' is not a fraction",
        ],
    );
    assert!(!err.contains("column 9"), "{err}");
}
