//! Sweep files refused before the run (exit 2, one line naming the file, the key and what is
//! wrong, no output directory) for what their keys and values mean rather than how they are
//! written: a range key that is a field's name only once trimmed, two spellings of one range
//! value, a sweep whose every point would be skipped, and the messages of the workload's
//! sizes. From the sweep-file hunt of 2026-12-06 (`/tmp/hunt/hs/`); each case ran before.

use std::process::Command;

mod common;

use common::{sweep_fails, sweep_file};

const UNITS: &str = r#""compute.units" = [2, 4]"#;

/// `" compute.units"` beside `"compute.units"` swept the field twice (the key was trimmed),
/// under a column named with the space; an objective was trimmed too.
#[test]
fn keys_that_are_field_names_only_once_trimmed_are_refused() {
    for (ranges, key) in [
        (
            "\"compute.units\" = [2, 4]\n\" compute.units\" = [8, 16]",
            "arch.ranges.\" compute.units\"",
        ),
        (
            "\"compute.units \" = [8, 16]",
            "arch.ranges.\"compute.units \"",
        ),
        ("\"\tdispatch.policy\" = [\"tiled\"]", "dispatch.policy"),
    ] {
        sweep_fails(
            &[(UNITS, ranges)],
            &["bad.toml", key, "leading or trailing whitespace"],
        );
    }
    sweep_fails(
        &[(
            r#"minimize = ["latency_us", "energy_uj"]"#,
            r#"minimize = [" latency_us", "energy_uj"]"#,
        )],
        &[
            "bad.toml",
            "pareto.minimize",
            "objective ' latency_us' names no column",
        ],
    );
}

/// Range values are read as `--set` reads them; two that the field reads as one value were
/// costed twice and written as spelled (`0x4`, `2e0`, `tiled `).
#[test]
fn two_spellings_of_one_range_value_are_one_value() {
    for (range, value) in [
        (
            r#""compute.units" = [4, "0x4"]"#,
            "the value 4 (as '4' and '0x4')",
        ),
        (
            r#""compute.units" = [4, "+4"]"#,
            "the value 4 (as '4' and '+4')",
        ),
        (
            r#""compute.units" = ["4", " 4"]"#,
            "the value 4 (as '4' and ' 4')",
        ),
        (
            r#""memory.dram_gb_per_s" = [1.5, "1.50"]"#,
            "the value 1.5 (as '1.5' and '1.50')",
        ),
        (
            r#""memory.dram_gb_per_s" = [2, "2e0"]"#,
            "the value 2 (as '2' and '2e0')",
        ),
        (
            r#""energy.static_mw_per_mm2" = [0.0, -0.0]"#,
            "the value 0 (as '0' and '-0')",
        ),
        (
            r#""dispatch.policy" = ["tiled", "tiled "]"#,
            "the value tiled (as 'tiled' and 'tiled ')",
        ),
    ] {
        sweep_fails(
            &[(UNITS, range)],
            &["bad.toml", "arch.ranges.\"", value, "is listed twice"],
        );
    }
    // Values of other spellings are written as the field reads them, so results.csv holds
    // numbers a `where` compares.
    let (dir, spec) = sweep_file(&[(
        UNITS,
        "\"compute.units\" = [\"0x4\", 8]\n\"dispatch.policy\" = [\"tiled \"]\n\
         \"memory.dram_gb_per_s\" = [\"2e0\"]",
    )]);
    let out = dir.path().join("out");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let o = run(&["sweep", &spec, "--out", out.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let header: Vec<&str> = results.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let cells = |name: &str| -> Vec<String> {
        let c = col(name);
        let mut v: Vec<String> = results
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(c).unwrap().to_string())
            .collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(cells("compute.units"), ["4", "8"], "{results}");
    assert_eq!(cells("dispatch.policy"), ["tiled"], "{results}");
    assert_eq!(cells("memory.dram_gb_per_s"), ["2"], "{results}");
    let front = dir.path().join("front");
    let o = run(&[
        "pareto",
        out.join("results.csv").to_str().unwrap(),
        "--minimize",
        "latency_us",
        "--where",
        "compute.units >= 1",
        "--out",
        front.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Dynamic policies only, on a base without a tracking unit: every point was skipped, exit 0.
#[test]
fn a_sweep_whose_every_point_would_be_skipped_is_refused() {
    let fixed = r#"fixed = ["fx8"]"#;
    sweep_fails(
        &[(fixed, "")],
        &[
            "bad.toml",
            "precision.levels",
            "the dynamic policies of fx8|fx16 need a precision-tracking unit",
            "sweeps/arch/epur.toml has tracking.enabled = false",
            "every point would be skipped",
        ],
    );
    sweep_fails(
        &[(fixed, ""), (UNITS, r#""tracking.enabled" = false"#)],
        &[
            "bad.toml",
            "precision.levels",
            "\"tracking.enabled\" is swept to false only",
        ],
    );
    // Options whose widths no multiplier takes, at every architecture point.
    sweep_fails(
        &[
            (fixed, r#"fixed = ["fx16"]"#),
            (UNITS, r#""compute.multiplier_bits" = 8"#),
        ],
        &[
            "bad.toml",
            "precision:",
            "every point would be skipped",
            "the config fx16: its widths are wider than compute.multiplier_bits (8 at the most)",
            "the dynamic policies of fx8|fx16 need a precision-tracking unit",
        ],
    );
    sweep_fails(
        &[
            (fixed, r#"fixed = ["fx6"]"#),
            (UNITS, r#""compute.min_precision_bits" = [8, 12]"#),
        ],
        &[
            "bad.toml",
            "the config fx6: weight precision 6 bits is narrower than \
             compute.min_precision_bits (8 at the least)",
        ],
    );
    // One architecture point with a tracking unit runs them.
    let (dir, spec) = sweep_file(&[
        (fixed, ""),
        (UNITS, r#""tracking.enabled" = [false, true]"#),
    ]);
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(["sweep", &spec, "--out", out.to_str().unwrap(), "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `steps = 0` named workload.sequences; the memory check before the models are loaded
/// claimed 1 feature.
#[test]
fn workload_sizes_name_their_key_and_no_width_they_do_not_know() {
    for (from, to, key) in [
        ("steps = 4", "steps = 0", "workload.steps: 0"),
        ("sequences = 2", "sequences = 0", "workload.sequences: 0"),
    ] {
        sweep_fails(&[(from, to)], &["bad.toml", key]);
    }
    let err = sweep_fails(
        &[("sequences = 2", "sequences = 1000000000")],
        &[
            "bad.toml",
            "workload.sequences",
            "1000000000 sequences x 4 steps x at least 1 feature (before the models are loaded)",
        ],
    );
    assert!(!err.contains("1 features"), "{err}");
}
