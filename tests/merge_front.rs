//! `merge` and the cells the front reads: a NaN objective in a row the spec's `where` keeps
//! is refused in the shard's own file (its first such row, of the first directory given with
//! one) and only once every other check passed, and nothing is written; rows the `where`
//! drops (a NaN compares false) may hold NaN, and the merged front is the one `lstm-dse
//! pareto` gives on the whole run's file. Merge reads each shard once, checking these rules
//! as it checks every cell (`src/sweep/front_cells.rs`).

mod common;

use common::refused;
use common::sweep_case::{lines, Case};
use std::path::Path;

/// 2 options (fx8 and one policy) x 2 tracking x 3 units = 12 points; the policy skips the 3
/// points without a tracking unit.
const SPEC: &str = r#"
name = "merge-front"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
seq_len = 20
[precision]
fixed = ["fx8"]
levels = ["fx6", "fx16"]
thresholds = "0.5"
device = "cpu"
[arch]
base = "ARCH"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"tracking.enabled" = [true, false]
"compute.units" = "1:3:1"
[pareto]
minimize = ["latency_us", "output_rmse"]
where = "hidden_rmse < 1000"
"#;

/// Sets `column` to `to` in every row of `dir/results.csv` whose precision is fx8 (every
/// row of that option, so that its figures stay the same at each architecture point).
fn set_fx8(dir: &Path, column: &str, to: &str) {
    let p = dir.join("results.csv");
    let mut l = lines(&p);
    let header: Vec<&str> = l[0].split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (col, precision) = (at(column), at("precision"));
    for line in l.iter_mut().skip(1) {
        let mut cells: Vec<&str> = line.split(',').collect();
        if cells[precision] == "fx8" {
            cells[col] = to;
            *line = cells.join(",");
        }
    }
    std::fs::write(&p, l.join("\n") + "\n").unwrap();
}

/// The first data line (numbered from 1, the header being line 1) of an fx8 row.
fn first_fx8_line(dir: &Path) -> usize {
    let l = lines(&dir.join("results.csv"));
    1 + l
        .iter()
        .position(|r| r.split(',').nth(2) == Some("fx8"))
        .unwrap()
}

/// The `point` of every row of a CSV file, sorted.
fn front_points(path: &Path) -> Vec<u64> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let at = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "point")
        .unwrap();
    let mut points: Vec<u64> = r
        .records()
        .map(|row| row.unwrap()[at].parse().unwrap())
        .collect();
    points.sort_unstable();
    points
}

/// The points of SPEC's front by brute force: rows with `hidden_rmse < 1000` (a NaN fails
/// it) that no other such row dominates in (latency_us, output_rmse), both minimized.
fn brute_force_front(results: &Path) -> Vec<u64> {
    let mut r = csv::Reader::from_path(results).unwrap();
    let h = r.headers().unwrap().clone();
    let at = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (point, filter, lat, err) = (
        at("point"),
        at("hidden_rmse"),
        at("latency_us"),
        at("output_rmse"),
    );
    let kept: Vec<(u64, f64, f64)> = r
        .records()
        .map(Result::unwrap)
        .filter(|row| row[filter].parse::<f64>().unwrap() < 1000.0)
        .map(|row| {
            let v = |c: usize| row[c].parse::<f64>().unwrap();
            (row[point].parse().unwrap(), v(lat), v(err))
        })
        .collect();
    let dominated = |&(_, l, e): &(u64, f64, f64)| {
        kept.iter()
            .any(|&(_, l2, e2)| l2 <= l && e2 <= e && (l2 < l || e2 < e))
    };
    let mut front: Vec<u64> = kept.iter().filter(|r| !dominated(r)).map(|r| r.0).collect();
    front.sort_unstable();
    front
}

#[test]
fn nan_objectives_are_refused_where_kept_and_merged_where_dropped() {
    let c = Case::with_spec(SPEC);
    c.ok("plain", &[]);
    for i in 0..3 {
        c.ok(&format!("s{i}"), &["--shard", &format!("{i}/3")]);
    }
    let shards = ["s0", "s1", "s2"];

    // NaN in the filter's column: the `where` drops those rows, and merge takes them.
    for d in ["plain", "s0", "s1", "s2"] {
        c.copy(d, &format!("h-{d}"), &|d| set_fx8(d, "hidden_rmse", "NaN"));
    }
    let o = c.merge(&["h-s2", "h-s0", "h-s1"], "m");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: &str| std::fs::read(c.path(p)).unwrap();
    assert_eq!(read("m/results.csv"), read("h-plain/results.csv"));
    // The oracle: `pareto` on the whole run's edited file, with the spec's objectives.
    let oracle = c.path("oracle.csv");
    let o = common::sweep_case::lstm_dse(&[
        "pareto",
        c.path("h-plain/results.csv").to_str().unwrap(),
        "--minimize",
        "latency_us,output_rmse",
        "--where",
        "hidden_rmse < 1000",
        "--out",
        oracle.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read("m/front.csv"), read("oracle.csv"));
    // `pareto` and merge share the front's code: the points are also checked against a front
    // found by brute force from the whole run's file.
    assert_eq!(
        front_points(&c.path("m/front.csv")),
        brute_force_front(&c.path("h-plain/results.csv"))
    );
    let front = String::from_utf8(read("m/front.csv")).unwrap();
    assert!(front.lines().count() > 1, "{front}");
    assert!(
        !front.contains(",fx8,"),
        "a dropped row on the front: {front}"
    );

    // NaN in an objective of rows the `where` keeps: refused in the first directory given
    // that has one, at its first such row, and nothing written.
    for d in shards {
        c.copy(d, &format!("o-{d}"), &|d| set_fx8(d, "output_rmse", "NaN"));
    }
    for first in shards {
        let mut dirs = vec![format!("o-{first}")];
        dirs.extend(
            shards
                .iter()
                .filter(|s| **s != first)
                .map(|s| format!("o-{s}")),
        );
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let file = c.path(dirs[0]).join("results.csv");
        let line = first_fx8_line(&c.path(dirs[0]));
        refused(
            &c.merge(&dirs, "m2"),
            &[&format!(
                "merge: {}:{line}: column `output_rmse`: NaN is not a usable objective value",
                file.display()
            )],
        );
        assert!(!c.path("m2").exists(), "a refused merge wrote --out");
    }

    // Every other check comes first: a point missing from a shard, and a cell the run cannot
    // have (the NaN rows of one shard only: an option's figures differ between points).
    c.copy("o-s1", "o-short", &|d| {
        let p = d.join("results.csv");
        let mut l = lines(&p);
        l.pop();
        std::fs::write(&p, l.join("\n") + "\n").unwrap();
    });
    refused(
        &c.merge(&["o-s0", "o-short", "o-s2"], "m2"),
        &[
            "is in neither results.csv nor skipped.csv",
            "rerun that shard",
        ],
    );
    refused(
        &c.merge(&["s0", "o-s1", "s2"], "m2"),
        &["column `output_rmse`", "an option's figures are the same"],
    );
    assert!(!c.path("m2").exists(), "a refused merge wrote --out");
}
