//! `where` filters through the binary on swept architecture fields, whose columns are dotted
//! (`compute.units`): `lstm-dse pareto --where` and a sweep file's `where` (both refused them,
//! "`.units` is not a number"), and `plot front` of a sweep whose `where` kept no row (or of a
//! shard).

mod common;

use common::{fails, run, sweep_file};

/// The cells of `columns` in every row of the CSV file `path`, as numbers.
fn cells(path: &std::path::Path, columns: &[&str]) -> Vec<Vec<f64>> {
    let mut rd = csv::Reader::from_path(path).expect("a CSV file");
    let h = rd.headers().expect("a header").clone();
    let at: Vec<usize> = columns
        .iter()
        .map(|c| h.iter().position(|x| x == *c).expect(c))
        .collect();
    rd.records()
        .map(|r| {
            let r = r.expect("a record");
            at.iter()
                .map(|&i| r[i].parse().expect("a number"))
                .collect()
        })
        .collect()
}

#[test]
fn pareto_where_reads_dotted_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let front = dir.path().join("front.csv");
    let o = run(&[
        "pareto",
        "results/quick/results.csv",
        "--minimize",
        "latency_us,energy_uj",
        "--where",
        "compute.units>=8 and memory.sram_weight_kib < 100.5",
        "--out",
        front.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = cells(&front, &["compute.units", "memory.sram_weight_kib"]);
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(r[0] >= 8.0 && r[1] < 100.5, "filter not applied: {r:?}");
    }
    let with = |filter: &'static str| {
        [
            "pareto",
            "results/quick/results.csv",
            "--minimize",
            "latency_us",
            "--where",
            filter,
            "--out",
            front.to_str().expect("utf-8"),
        ]
    };
    // A near miss is an unknown column, listed among the columns; a dangling dot is said at
    // its place.
    fails(
        &with("compute.unit >= 8"),
        &["`compute.unit`", "compute.units"],
    );
    fails(
        &with("compute. units >= 8"),
        &["character 8", "`compute.` is not a column name"],
    );
}

/// Runs the sweep file `spec` into `dir`/out (its cache in `dir`/cache); returns out.
fn swept(dir: &std::path::Path, spec: &str) -> std::path::PathBuf {
    let (out, cache) = (dir.join("out"), dir.join("cache"));
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let o = run(&[
        "sweep",
        spec,
        "--out",
        &path(&out),
        "--cache",
        &path(&cache),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn a_sweep_where_reads_dotted_columns() {
    let (dir, spec) = sweep_file(&[
        (
            r#""compute.units" = [2, 4]"#,
            r#""compute.units" = [2, 4, 8]"#,
        ),
        (
            r#"minimize = ["latency_us", "energy_uj"]"#,
            "minimize = [\"latency_us\", \"energy_uj\"]\nwhere = \"compute.units >= 4\"",
        ),
    ]);
    let out = swept(dir.path(), &spec);
    let all = cells(&out.join("results.csv"), &["compute.units"]);
    assert!(all.iter().any(|r| r[0] == 2.0), "{all:?}");
    let front = cells(&out.join("front.csv"), &["compute.units"]);
    assert!(!front.is_empty());
    assert!(front.iter().all(|r| r[0] >= 4.0), "{front:?}");
}

/// A sweep whose `where` passes no row has an empty front: `plot front` says so, quoting the
/// filter (it said "a shard? merge the shards first"), and draws nothing; a shard is named as
/// one (it was refused as a results.csv cut short).
#[test]
fn plot_front_of_an_empty_front_names_the_filter() {
    let (dir, spec) = sweep_file(&[(
        r#"minimize = ["latency_us", "energy_uj"]"#,
        "minimize = [\"latency_us\", \"energy_uj\"]\nwhere = \"latency_us < 0\"",
    )]);
    let out = swept(dir.path(), &spec);
    let err = fails(
        &["plot", "front", out.to_str().expect("utf-8")],
        &[
            "front.csv",
            "the front is empty",
            "2 rows",
            r#"where = "latency_us < 0""#,
        ],
    );
    assert!(!err.contains("shard"), "{err}");
    assert!(!out.join("front_objectives.svg").exists());
    // A shard's folder (a part of the points, no front.csv) is said as such, not as a
    // results.csv cut short.
    let shard = dir.path().join("shard");
    let o = run(&[
        "sweep",
        &spec,
        "--out",
        shard.to_str().expect("utf-8"),
        "--cache",
        dir.path().join("cache").to_str().expect("utf-8"),
        "--quiet",
        "--shard",
        "0/2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = fails(
        &["plot", "front", shard.to_str().expect("utf-8")],
        &[
            "shard.toml",
            "one shard of a sweep",
            "merge the shards first",
        ],
    );
    assert!(!err.contains("cut short"), "{err}");
}
