//! Sweep files that are refused before the run (exit 2, one line naming the file, the key and
//! what is wrong, no output directory), and the checks of their values, levels, sizes, names
//! and columns. The command-line and file-format cases are in `bad_flags.rs` and `bad_input.rs`.

use std::path::Path;
use std::process::Command;

mod common;

use common::{fails, sweep_fails, sweep_file};

#[test]
fn sweep_levels_that_cannot_be_ordered_name_the_field_and_both_levels() {
    for (levels, names) in [
        (r#"levels = ["fp16", "fx16"]"#, ["'fp16'", "'fx16'"]),
        (r#"levels = ["bf16", "fp16"]"#, ["'bf16'", "'fp16'"]),
        (r#"levels = ["fx16", "fx8"]"#, ["'fx16'", "'fx8'"]),
    ] {
        let err = sweep_fails(
            &[(r#"levels = ["fx8", "fx16"]"#, levels)],
            &[
                "bad.toml",
                "precision.levels",
                "cannot be ordered",
                names[0],
                names[1],
            ],
        );
        assert!(!err.contains("--levels"), "{err}");
    }
}

/// The sweep-file hunt of 2026-12-05 (docs/FUZZING.md): each of these ran. Lists that repeat
/// an entry costed the same points twice (under equal config hashes); a value its field
/// refuses, or a workload the cost model refuses, skipped every point and exited 0; an
/// objective on a column the models leave empty failed after the whole run, naming neither
/// the file nor the key; a baseline file's error did not name the spec.
#[test]
fn sweep_values_that_would_repeat_or_skip_every_point_are_refused_first() {
    let units = r#""compute.units" = [2, 4]"#;
    let device = r#"device = "cpu""#;
    let minimize = r#"minimize = ["latency_us", "energy_uj"]"#;
    let models = r#"models = ["builtin:tiny"]"#;
    // A model without a dense head (generated inputs of its width).
    let headless = r#"models = ["tests/data/torch_lstm3.safetensors"]"#;
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 39] = [
        (
            &[(models, r#"models = ["builtin:tiny", "builtin:tiny"]"#)],
            &["workload.models", "'builtin:tiny' is listed twice"],
        ),
        (
            &[(models, "models = [\"tests/data/torch_lstm3.safetensors\"]\nhead = \"fc\"\nhead_input = \"last\"")],
            &["workload.head_input", "unknown head input 'last'"],
        ),
        (
            &[(models, "models = [\"tests/data/torch_mlp_head.safetensors\"]\nhead = \"fc1,,fc2\"")],
            &["workload.head", "'fc1,,fc2' has an empty name in its list"],
        ),
        (
            &[(models, "models = [\"tests/data/torch_mlp_head.safetensors\"]\nhead = \"fc1,fc2\"\nhead_activation = \"relu\"")],
            &["workload.head_activation", "1 activations for 2 head layers"],
        ),
        (
            &[(models, "models = [\"tests/data/torch_mlp_head.safetensors\"]\nhead_activation = \"relu\"")],
            &["workload.head_activation: tests/data/torch_mlp_head.safetensors: needs a head: name its dense layers too"],
        ),
        (
            &[(models, "models = [\"tests/data/torch_embedding.safetensors\"]\nembedding = \"\"")],
            &["workload.embedding: the name is empty"],
        ),
        (
            &[(models, "models = [\"builtin:tiny\"]\nhead_input = \"last-step\"")],
            &["workload.head_input: builtin:tiny: applies to safetensors models only"],
        ),
        (
            // The input's own errors name the spec and the key too (they named the input only).
            &[(models, "models = [\"builtin:tiny\"]\ninput = \"tests/data/torch_embedding.x.npy\"")],
            &["bad.toml: workload.input: tests/data/torch_embedding.x.npy: holds integers"],
        ),
        (
            &[(r#"fixed = ["fx8"]"#, r#"fixed = ["fx8", "w=fx8"]"#)],
            &["precision.fixed", "fx8 is listed twice", "'fx8' and 'w=fx8'"],
        ),
        (
            &[(r#"fixed = ["fx8"]"#, r#"fixed = ["fx8", ""]"#)],
            &["precision.fixed", "an empty entry"],
        ),
        (
            &[(
                r#"levels = ["fx8", "fx16"]"#,
                r#"levels = ["fx8", "w=fx8", "fx16"]"#,
            )],
            &["precision.levels", "fx8 is listed twice", "'fx8' and 'w=fx8'"],
        ),
        // One level named `thresholds` (it was "'0' has 1 threshold(s); 1 levels need 0"),
        // and an entry of two configs counted as one level.
        (
            &[(r#"levels = ["fx8", "fx16"]"#, r#"levels = ["fx8"]"#)],
            &["precision.levels", "at least two levels"],
        ),
        (
            &[(r#"levels = ["fx8", "fx16"]"#, r#"levels = ["fx8;fx16"]"#)],
            &["precision.levels", "'fx8;fx16' holds several configs"],
        ),
        (
            &[(r#"thresholds = "0,inf""#, r#"thresholds = "0:1:3,0.5""#)],
            &["precision.thresholds", "0.5 is listed twice"],
        ),
        (
            &[(device, "device = \"cpu\"\ndpred_group_sizes = [0, 16, 16]")],
            &["precision.dpred_group_sizes", "16 is listed twice"],
        ),
        (
            // A float config has no DPRed variant: without 0 among the sizes it would make no
            // point (a float-only spec made none, exit 0); refused.
            &[
                (r#"fixed = ["fx8"]"#, r#"fixed = ["fx8", "bf16"]"#),
                (device, "device = \"cpu\"\ndpred_group_sizes = [16]"),
            ],
            &[
                "precision.dpred_group_sizes",
                "group size 16",
                "precision.fixed holds bf16",
            ],
        ),
        (
            &[
                (r#"levels = ["fx8", "fx16"]"#, r#"levels = ["fp8e4m3", "fp16"]"#),
                (device, "device = \"cpu\"\ndpred_group_sizes = [16]"),
            ],
            &["precision.dpred_group_sizes", "precision.levels holds fp16"],
        ),
        (
            &[(device, "device = \"cpu\"\ndpred_group_sizes = []")],
            &["precision.dpred_group_sizes", "empty list"],
        ),
        (
            &[(device, "device = \"cpu\"\ntolerance = inf")],
            &["precision.tolerance", "finite"],
        ),
        (
            &[(units, r#""compute.units" = [2, 2.0]"#)],
            &["arch.ranges.\"compute.units\"", "2 is listed twice"],
        ),
        (
            &[(units, r#""compute.units" = "log:4:4:3""#)],
            &["arch.ranges.\"compute.units\"", "4 is listed twice"],
        ),
        (
            &[(units, r#""compute.units" = [0, 4]"#)],
            &[
                "arch.ranges.\"compute.units\"",
                "must be >= 1",
                "the value 0",
            ],
        ),
        (
            &[(units, r#""memory.dram_gb_per_s" = [1, -1]"#)],
            &[
                "arch.ranges.\"memory.dram_gb_per_s\"",
                "must be > 0",
                "the value -1",
            ],
        ),
        (
            &[(
                minimize,
                "minimize = [\"latency_us\", \"energy_uj\"]\nmaximize = [\"latency_us\"]",
            )],
            &[
                "pareto.maximize",
                "'latency_us' is already an objective in pareto.minimize",
            ],
        ),
        (
            &[(
                models,
                r#"models = ["tests/data/torch_lstm3.safetensors", "./tests/data/torch_lstm3.safetensors"]"#,
            )],
            &["workload.models", "are the same file, listed twice"],
        ),
        (
            &[(minimize, r#"minimize = ["latency_us", "point"]"#)],
            &["pareto.minimize", "column 'point' numbers the rows"],
        ),
        (
            &[("steps = 4", "steps = 4\nseq_len = 1000000000000000")],
            &["workload.seq_len", "too large for the cost model"],
        ),
        (
            &[("steps = 4", "steps = 4\nbatch = 1000000000000000")],
            &["workload.seq_len x batch", "too large for the cost model"],
        ),
        (
            &[(
                minimize,
                "minimize = [\"latency_us\"]\nwhere = \"task_accuracy >= 0.5\"",
            )],
            &[
                "pareto.where",
                "'task_accuracy' would be empty",
                "no workload.labels",
            ],
        ),
        (
            &[(
                minimize,
                "minimize = [\"latency_us\"]\nmaximize = [\"task_accuracy\"]",
            )],
            &["pareto.maximize", "'task_accuracy' would be empty"],
        ),
        (
            &[
                (models, headless),
                (minimize, r#"minimize = ["output_rmse"]"#),
            ],
            &[
                "pareto.minimize",
                "'output_rmse' would be empty",
                "no dense head",
            ],
        ),
        (
            &[
                (models, headless),
                (minimize, r#"maximize = ["top1_agreement"]"#),
            ],
            &["pareto.maximize", "'top1_agreement' would be empty"],
        ),
        (
            &[("[arch]", "[arch]\nbaseline = \"sweeps/quick.toml\"")],
            &["arch.baseline", "sweeps/quick.toml", "unknown field"],
        ),
        // Fields compared with others still have bounds of their own.
        // Values the field cannot hold name the key and the value, not `--set` (which shares
        // the parser); a TOML nan is not a number.
        (
            &[(units, r#""memory.dram_gb_per_s" = [6.4, nan]"#)],
            &[
                "arch.ranges.\"memory.dram_gb_per_s\"",
                "the value NaN: not a number",
            ],
        ),
        (
            &[(units, r#""compute.units" = [2, "x"]"#)],
            &["arch.ranges.\"compute.units\"", "the value x:"],
        ),
        (
            &[(units, r#""compute.no_such_field" = [1]"#)],
            &["arch.ranges.\"compute.no_such_field\"", "unknown field"],
        ),
        (
            &[(units, r#""compute.multiplier_bits" = [0, 16]"#)],
            &[
                "arch.ranges.\"compute.multiplier_bits\"",
                "must be >= 1",
                "the value 0",
            ],
        ),
        (
            &[(units, r#""compute.min_precision_bits" = [4, 0]"#)],
            &[
                "arch.ranges.\"compute.min_precision_bits\"",
                "must be >= 1",
                "the value 0",
            ],
        ),
        (
            &[(r#"thresholds = "0,inf""#, r#"thresholds = "0,-0.5""#)],
            &["precision.thresholds: '-0.5': -0.5 is negative"],
        ),
    ];
    for (edits, expect) in cases {
        let mut e = vec!["bad.toml"];
        e.extend(expect);
        let err = sweep_fails(edits, &e);
        assert!(
            !err.contains("--thresholds") && !err.contains("--set"),
            "a sweep file has no flags: {err}"
        );
    }
    // A smoke run (the first two values of each range) checks every value: it passed a file
    // whose third value the real run refuses.
    let (dir, spec) = sweep_file(&[(units, r#""compute.units" = [2, 4, 0]"#)]);
    let out = dir.path().join("out").display().to_string();
    fails(
        &["sweep", &spec, "--smoke", "--out", &out, "--quiet"],
        &["bad.toml", "compute.units", "the value 0"],
    );
    // A value refused only beside another field's (min_precision_bits above the multiplier
    // width) is a combination: its points are skipped and listed, the run goes on, and the
    // note quotes the first reason.
    let (dir, spec) = sweep_file(&[(units, r#""compute.min_precision_bits" = [4, 32]"#)]);
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(["sweep", &spec, "--out", out.to_str().unwrap(), "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("(the first: ") && err.contains("compute.min_precision_bits"),
        "{err}"
    );
    let skipped = std::fs::read_to_string(out.join("skipped.csv")).unwrap();
    assert!(skipped.lines().count() > 1, "{skipped}");
}

#[test]
fn sweeps_too_large_are_refused_before_allocating() {
    sweep_fails(
        &[(
            r#""compute.units" = [2, 4]"#,
            r#""compute.units" = "1:1e12:1""#,
        )],
        &[
            "bad.toml",
            "arch.ranges.\"compute.units\"",
            "1000000000000 values",
            "--max-points",
        ],
    );
    sweep_fails(
        &[(
            r#""compute.units" = [2, 4]"#,
            r#""compute.units" = "log:1:10:1000000000000""#,
        )],
        &["arch.ranges.\"compute.units\"", "--max-points"],
    );
    sweep_fails(
        &[(
            r#""compute.units" = [2, 4]"#,
            r#""compute.units" = "0:inf:1""#,
        )],
        &["arch.ranges.\"compute.units\"", "unbounded range"],
    );
    // A cross product of 1e21 points: each range alone is within the limit.
    let ranges = (0..7)
        .map(|k| format!("\"compute.units{k}\" = \"1:1000:1\""))
        .collect::<Vec<_>>()
        .join("\n");
    sweep_fails(
        &[(r#""compute.units" = [2, 4]"#, &ranges)],
        &["arch.ranges", "design points", "--max-points"],
    );
    sweep_fails(
        &[(
            r#"thresholds = "0,inf""#,
            r#"thresholds = "0:1:1000000000000""#,
        )],
        &["precision.thresholds", "1000000000000", "--max-points"],
    );
    sweep_fails(
        &[("sequences = 2", "sequences = 1000000000000")],
        &["workload.sequences", "generated inputs", "--max-memory"],
    );
    sweep_fails(
        &[("steps = 4", "steps = 1000000000000")],
        &["workload.sequences", "--max-memory"],
    );
}

#[test]
fn messages_name_the_spec_file_key_and_column() {
    // A directory where a model file is expected: the spec, the key and the path.
    sweep_fails(
        &[(r#"models = ["builtin:tiny"]"#, r#"models = ["models"]"#)],
        &["bad.toml", "workload.models", "models", "is a directory"],
    );
    // Objectives that are words are refused before the sweep runs, naming the key.
    sweep_fails(
        &[(
            r#"minimize = ["latency_us", "energy_uj"]"#,
            r#"minimize = ["latency_us", "precision"]"#,
        )],
        &["bad.toml", "pareto.minimize", "'precision'", "not numbers"],
    );
    sweep_fails(
        &[
            (
                r#""compute.units" = [2, 4]"#,
                r#""dispatch.policy" = ["tiled", "gate-per-unit"]"#,
            ),
            (
                r#"minimize = ["latency_us", "energy_uj"]"#,
                r#"maximize = ["dispatch.policy"]"#,
            ),
        ],
        &["pareto.maximize", "'tiled'"],
    );
    // policies.csv measured on another model: the columns, not an internal field name.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policies.csv");
    std::fs::write(
        &p,
        "policy,levels,frac_level_0,frac_level_1,frac_l0_level_0,frac_l0_level_1,frac_l1_level_0,frac_l1_level_1\n\
         0,fx8|fx16,0.5,0.5,0.5,0.5,0.5,0.5\n",
    )
    .unwrap();
    let pol = p.display().to_string();
    let err = fails(
        &[
            "model",
            "--arch",
            "sweeps/arch/epur.toml",
            "--model",
            "builtin:gnmt",
            "--policies",
            &pol,
            "--policy",
            "0",
            "--set",
            "tracking.enabled=true",
        ],
        &[&pol, "frac_l0_level_<k> .. frac_l1_level_<k>", "2 layer(s)"],
    );
    assert!(!err.contains("layer_step_fraction"), "{err}");
    // A write that fails names the file (here spec.resolved.toml is a directory).
    let (d, spec) = sweep_file(&[]);
    let out = d.path().join("o");
    std::fs::create_dir_all(out.join("spec.resolved.toml")).unwrap();
    let o = out.display().to_string();
    fails(
        &["sweep", &spec, "--out", &o, "--quiet"],
        &["spec.resolved.toml"],
    );
}

/// A sweep's name (a directory under results/), its batch, its tolerance and its labels are
/// checked before it runs, as the commands that take them check them.
#[test]
fn sweep_names_batches_tolerances_and_labels_are_checked() {
    // Without --out the name is a folder under results/ (run from the repository root, as the
    // README's commands are): it must stay there. With --out it is a title only.
    for name in ["../../escaped", "", "/tmp/abs"] {
        let (_dir, spec) = sweep_file(&[(r#"name = "bad""#, &format!("name = {name:?}"))]);
        fails(
            &["sweep", &spec, "--quiet"],
            &[
                "bad.toml",
                "name",
                &format!("'{name}'"),
                "not a folder inside results/",
            ],
        );
    }
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../escaped")
        .exists());
    sweep_fails(
        &[("steps = 4", "steps = 4\nbatch = 0")],
        &["workload.batch", "at least 1"],
    );
    for t in ["nan", "-1.0", "0.0"] {
        sweep_fails(
            &[(
                r#"device = "cpu""#,
                &format!("device = \"cpu\"\ntolerance = {t}"),
            )],
            &["precision.tolerance", "> 0"],
        );
    }
    // The digits test set with the keyword spotter's labels (100 of them, for 500 sequences).
    sweep_fails(
        &[(
            r#"models = ["builtin:tiny"]"#,
            "models = [\"models/digits_lstm.onnx\"]\ninput = \"models/digits_test.x.npy\"\n\
             labels = \"models/kws_test.labels.npy\"",
        )],
        &[
            "workload.labels",
            "kws_test.labels.npy",
            "do not match the input",
        ],
    );
}

/// A head's layers and activations may be a TOML list, as well as the command line's
/// comma-separated string: the same points, the same bytes; anything else names the key.
#[test]
fn head_names_may_be_a_list() {
    let models = r#"models = ["builtin:tiny"]"#;
    let mlp = r#"models = ["tests/data/torch_mlp_head.safetensors"]"#;
    let run = |head: &str, activation: &str| {
        let (dir, spec) = sweep_file(&[(
            models,
            &format!(
                "{mlp}\nhead = {head}\nhead_activation = {activation}\nhead_input = \"last-step\""
            ),
        )]);
        let (out, cache) = (dir.path().join("out"), dir.path().join("cache"));
        let (o, c) = (out.to_str().unwrap(), cache.to_str().unwrap());
        common::ok(&["sweep", &spec, "--out", o, "--cache", c, "--quiet"]);
        std::fs::read(out.join("results.csv")).unwrap()
    };
    let string = run(r#""fc1,fc2""#, r#""relu,softmax""#);
    assert_eq!(run(r#"["fc1", "fc2"]"#, r#"["relu", "softmax"]"#), string);
    for (head, want) in [
        ("[]", "workload.head: an empty list; give at least one name"),
        (
            "3",
            "workload.head: expected a name, comma-separated names or a list of names",
        ),
    ] {
        sweep_fails(&[(models, &format!("{mlp}\nhead = {head}"))], &[want]);
    }
}

/// `lstm-dse sweep` with no sweep file runs sweeps/quick.toml from the current directory;
/// outside the repository root it said "sweeps/quick.toml: file: No such file or directory".
/// It says that no sweep file was given and the default is not in the current directory.
#[test]
fn sweep_without_a_file_outside_the_repository_says_where_the_default_is() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(dir.path())
        .arg("sweep")
        .output()
        .unwrap();
    common::refused(
        &o,
        &[
            "no sweep file given",
            "the default sweeps/quick.toml is not in the current directory",
            "run from the repository root, or name a sweep file",
        ],
    );
    assert!(!dir.path().join("results").exists());
}
