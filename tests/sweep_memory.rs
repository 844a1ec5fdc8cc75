//! `--max-memory` on a sweep's precision options (`src/sweep/memory.rs`): a grid of thousands
//! of policies is refused under a small limit, with a cold cache and with a filled one (once a
//! filled cache was never checked, and the grid ran at several times the limit), and the
//! estimate in the refusal is above the peak memory a run of it takes beyond a one-policy run
//! (the peak resident memory of children, `getrusage`: one test in this binary, so the
//! children are its own).

mod common;

use common::peak::{children_peak, needs};

use common::sweep_case::{bin, Case};

const SPEC: &str = r#"
name = "memory"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
[precision]
levels = ["fx8", "fx16"]
thresholds = "GRID"
device = "cpu"
[arch]
base = "ARCH"
[arch.ranges]
"tracking.enabled" = [true]
"compute.units" = [2, 4]
[pareto]
minimize = ["latency_us", "energy_uj"]
"#;

#[test]
fn policy_grids_are_held_to_max_memory_on_a_hit_too() {
    let small = Case::with_spec(&SPEC.replace("GRID", "0"));
    let c = Case::with_spec(&SPEC.replace("GRID", "0:1:8000"));
    let run = |case: &Case, out: &str, limit: Option<&str>| {
        let (o, cache) = (case.path(out), case.path("cache"));
        let mut a = case.args(o.to_str().unwrap(), cache.to_str().unwrap());
        if let Some(l) = limit {
            a.extend(["--max-memory", l]);
        }
        bin().args(&a).output().unwrap()
    };
    let refused = |o: &std::process::Output| {
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(
            e.contains("precision.thresholds") && e.contains("--max-memory"),
            "{e}"
        );
        e
    };
    // Cold cache.
    let cold = refused(&run(&c, "a", Some("64M")));
    assert!(!c.path("a").exists());
    // The baseline, then the grid itself (the largest child so far).
    let o = run(&small, "a", None);
    assert!(o.status.success(), "{o:?}");
    let base = children_peak();
    let o = run(&c, "a", None);
    assert!(o.status.success(), "{o:?}");
    let peak = children_peak();
    let estimate = needs(&cold);
    assert!(
        peak - base <= estimate,
        "measured {} MiB beyond a one-policy run, estimated {} MiB",
        (peak - base) >> 20,
        estimate >> 20
    );
    // Filled cache: refused the same way.
    let hit = refused(&run(&c, "b", Some("64M")));
    assert!(hit.contains("8000 precision option(s)"), "{hit}");
    assert!(!c.path("b").exists());
    // Within the estimate, it runs.
    let limit = format!("{}", needs(&hit) + (1 << 20));
    let o = run(&c, "b", Some(&limit));
    assert!(o.status.success(), "{o:?}");
}
