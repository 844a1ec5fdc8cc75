//! `merge` checks that the union of the directories' results.csv and skipped.csv holds every
//! point of the run exactly once, whatever shard.toml files they have: the number of points
//! comes from spec.resolved.toml. Once a shard without its shard.toml, or a whole run with a
//! row deleted, merged with exit 0 into results with gaps; a point with a row and a skip line
//! was taken, and skip lines of one point were never compared across directories.

use std::path::Path;
use std::process::Output;

mod common;

use common::refused;
use common::sweep_case::Case;

/// 3 options (fx8 and two policies) x 2 tracking x 3 units = 18 points; the policies skip the
/// 6 points without a tracking unit.
const SPEC: &str = r#"
name = "merge"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
seq_len = 20
[precision]
fixed = ["fx8"]
levels = ["fx6", "fx16"]
thresholds = "0,inf"
device = "cpu"
[arch]
base = "ARCH"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"tracking.enabled" = [true, false]
"compute.units" = "1:3:1"
[pareto]
minimize = ["latency_us", "energy_uj"]
"#;

const POINTS: usize = 18;

/// Rewrites file `name` in `dir` line by line.
fn edit_lines(dir: &Path, name: &str, f: &dyn Fn(Vec<String>) -> Vec<String>) {
    let p = dir.join(name);
    let lines: Vec<String> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    std::fs::write(&p, f(lines).join("\n") + "\n").unwrap();
}

fn same_files(a: &Path, b: &Path) {
    for f in [
        "results.csv",
        "skipped.csv",
        "front.csv",
        "spec.resolved.toml",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).ok(),
            std::fs::read(b.join(f)).ok(),
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Refused, naming what is expected, and nothing written to `out`.
fn refused_nothing_written(c: &Case, o: &Output, out: &str, expect: &[&str]) {
    refused(o, expect);
    assert!(!c.path(out).exists(), "a refused merge wrote {out}");
}

#[test]
fn every_merge_covers_every_point_exactly_once() {
    let c = Case::with_spec(SPEC);
    c.ok("plain", &[]);
    for i in 0..3 {
        c.ok(&format!("s{i}"), &["--shard", &format!("{i}/3")]);
    }
    let skips = std::fs::read_to_string(c.path("plain/skipped.csv")).unwrap();
    let rows = std::fs::read_to_string(c.path("plain/results.csv")).unwrap();
    assert_eq!(skips.lines().count() - 1, 6);
    assert_eq!(rows.lines().count() - 1 + skips.lines().count() - 1, POINTS);
    let record = std::fs::read_to_string(c.path("plain/spec.resolved.toml")).unwrap();
    assert!(
        record.ends_with(&format!("\n[plan]\npoints = {POINTS}\n")),
        "{record}"
    );

    // A shard whose shard.toml is gone: a third of the points.
    c.copy("s0", "s0-bare", &|d| {
        std::fs::remove_file(d.join("shard.toml")).unwrap()
    });
    refused_nothing_written(
        &c,
        &c.merge(&["s0-bare"], "m"),
        "m",
        &["point 1 is in neither", "6 of 18 points"],
    );
    // Two shards, one without shard.toml: still a point short.
    refused_nothing_written(
        &c,
        &c.merge(&["s0-bare", "s1"], "m"),
        "m",
        &["point 2 is in neither", "12 of 18 points"],
    );
    // A whole run with a row deleted.
    c.copy("plain", "short", &|d| {
        edit_lines(d, "results.csv", &|mut l| {
            l.remove(2);
            l
        })
    });
    refused_nothing_written(
        &c,
        &c.merge(&["short"], "m"),
        "m",
        &["point 1 is in neither", "17 of 18 points"],
    );
    // A whole run with a skip line deleted.
    c.copy("plain", "short-skip", &|d| {
        edit_lines(d, "skipped.csv", &|mut l| {
            l.pop();
            l
        })
    });
    refused_nothing_written(
        &c,
        &c.merge(&["short-skip"], "m"),
        "m",
        &["in neither", "17 of 18 points"],
    );
    // A point with a row and a skip line.
    c.copy("plain", "both", &|d| {
        edit_lines(d, "skipped.csv", &|mut l| {
            l.insert(1, "0,a reason".into());
            l
        })
    });
    refused_nothing_written(
        &c,
        &c.merge(&["both"], "m"),
        "m",
        &[
            "both/skipped.csv",
            "point 0 is listed as skipped",
            "has a row",
        ],
    );
    // A skip line past the run.
    c.copy("plain", "past", &|d| {
        edit_lines(d, "skipped.csv", &|mut l| {
            l.push("999,a reason".into());
            l
        })
    });
    refused_nothing_written(
        &c,
        &c.merge(&["past"], "m"),
        "m",
        &[
            "past/skipped.csv",
            "point 999 is beyond the run's 18 points",
        ],
    );
    // Skip lines of one point that differ: refused in either order (once the merged file
    // took the reason of the last directory given).
    c.copy("plain", "reason", &|d| {
        edit_lines(d, "skipped.csv", &|mut l| {
            l[1] = format!("{},another reason", l[1].split_once(',').unwrap().0);
            l
        })
    });
    for dirs in [["plain", "reason"], ["reason", "plain"]] {
        refused_nothing_written(
            &c,
            &c.merge(&dirs, "m"),
            "m",
            &["skipped.csv", "line 2", "differs from its line in"],
        );
    }
}

#[test]
fn what_a_single_run_gives_still_merges() {
    let c = Case::with_spec(SPEC);
    c.ok("plain", &[]);
    for i in 0..3 {
        c.ok(&format!("s{i}"), &["--shard", &format!("{i}/3")]);
    }
    let ok = |dirs: &[&str], out: &str| {
        let o = c.merge(dirs, out);
        assert!(o.status.success(), "{dirs:?}: {o:?}");
        same_files(&c.path("plain"), &c.path(out));
    };
    ok(&["s1", "s2", "s0"], "m-shards");
    ok(&["plain"], "m-plain");
    ok(&["plain", "plain"], "m-twice");
    // A whole run beside its own shards, some of them (identical rows and skip lines).
    ok(&["s1", "plain", "s0"], "m-mixed");
    // The shards of a binary that recorded no count in spec.resolved.toml: shard.toml says it.
    let old = |d: &Path| {
        let p = d.join("spec.resolved.toml");
        let t = std::fs::read_to_string(&p).unwrap();
        let cut = t.rfind("\n[plan]\n").unwrap();
        std::fs::write(&p, &t[..cut]).unwrap();
    };
    for i in 0..3 {
        c.copy(&format!("s{i}"), &format!("old{i}"), &old);
    }
    ok(&["old0", "old1", "old2"], "m-old");
    refused_nothing_written(
        &c,
        &c.merge(&["old0", "old1"], "m"),
        "m",
        &["shard 2/3 is missing"],
    );
    // A whole run of such a binary: nothing gives the count, so nothing is vouched for.
    c.copy("plain", "old-plain", &old);
    refused_nothing_written(
        &c,
        &c.merge(&["old-plain"], "m"),
        "m",
        &[
            "old-plain/spec.resolved.toml",
            "records no number of points",
        ],
    );
    // With a shard of this binary beside it, the count is known.
    ok(&["old-plain", "s1"], "m-old-plain");
}
