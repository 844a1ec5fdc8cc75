//! `--max-memory` on a trace of many precisions: every precision keeps its reduced errors
//! (and head output) to the end, so the estimate grows with their number; once it did not (40
//! precisions passed a limit that one needed, and ran at six times it), and `errors.csv` was
//! built in memory as rows before it was written. The estimate in the refusal must be above
//! the peak memory the run then takes (the peak resident memory of children, `getrusage`: one
//! test in this binary, so the children are its own).

mod common;

use common::peak::{children_peak, needs};

use common::run;

#[test]
fn a_trace_of_many_precisions_is_held_to_max_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let input = path("x.npy");
    common::gen_input("builtin:tiny", 300, 60, std::path::Path::new(&input));
    let many: Vec<String> = (4..=16)
        .flat_map(|b| [format!("fx{b}"), format!("fx{b},cal=mse")])
        .chain(["fp16", "bf16", "fp8e4m3", "e5m2"].map(String::from))
        .collect();
    let many = many.join(";");
    let trace = |precisions: &str, limit: &str, out: &str| {
        run(&[
            "--max-memory",
            limit,
            "trace",
            "--quiet",
            "--model",
            "builtin:tiny",
            "--input",
            &input,
            "--precisions",
            precisions,
            "--out",
            out,
            "--device",
            "cpu",
        ])
    };
    // The trace's own estimate: raise the limit past the checks before it (the file, the
    // run's buffers) until the refusal names the precisions.
    let estimate = |precisions: &str| {
        let mut limit = 1u64 << 20;
        for _ in 0..5 {
            let o = trace(precisions, &format!("{limit}"), &path("refused"));
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            assert_eq!(o.status.code(), Some(2), "{err}");
            if err.contains("precision(s)") {
                assert_eq!(err.lines().count(), 1, "{err}");
                assert!(!dir.path().join("refused").exists(), "{err}");
                return needs(&err);
            }
            limit = needs(&err) + (1 << 20);
        }
        panic!("no estimate names the precisions");
    };
    let (one, all) = (estimate("fx8"), estimate(&many));
    assert!(all > 3 * one, "30 precisions: {all} bytes, one: {one}");
    // What one precision may use refuses thirty.
    let o = trace(&many, &format!("{one}"), &path("o"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at 30 precision(s)"));
    // Under its own estimate the run goes, and its peak stays below it.
    let o = trace(&many, &format!("{all}"), &path("o"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let peak = children_peak();
    assert!(peak < all, "peak {peak} bytes above the estimate {all}");
}
