//! `--max-memory` on a policy grid: the simulation keeps every lane's result to the end and,
//! while a layer runs, a chunk of lanes' input products at every level (up to 256 MiB). Once
//! only the results were counted and a grid ran at twice its estimate (a 2 x 65 model with a
//! head, 256 x 10, 200 policies: estimate 536 MiB, peak 1.08 GB), and on lavapipe the
//! device's buffers are host memory as well. The estimate a refusal
//! prints must be above the peak the run then takes (the peak resident memory of children,
//! `getrusage`: one test in this binary, so the children are its own).

mod common;

use common::peak::{children_peak, needs};

#[test]
fn a_policy_grid_is_held_to_max_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let input = path("x.npy");
    common::gen_input("builtin:tiny", 256, 10, std::path::Path::new(&input));
    let dynamic = |device: &str, policies: usize, limit: &str, out: &str| {
        // Thread counts pinned: the fixed parts of the estimate (the program, lavapipe's own)
        // were measured with two threads.
        std::process::Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
            .args([
                "--max-memory",
                limit,
                "dynamic",
                "--quiet",
                "--model",
                "builtin:tiny",
                "--input",
                &input,
                "--levels",
                "fx8,fx16",
                "--thresholds",
                &format!("log:0.001:1:{policies}"),
                "--out",
                out,
                "--device",
                device,
            ])
            .env("RAYON_NUM_THREADS", "2")
            .env("LP_NUM_THREADS", "2")
            .output()
            .expect("run lstm-dse")
    };
    // The grid's own estimate: raise the limit past the checks before it (the input, the
    // reference run) until the refusal names the policies.
    let estimate = |device: &str, policies: usize| {
        let mut limit = 1u64 << 20;
        for _ in 0..5 {
            let o = dynamic(device, policies, &format!("{limit}"), &path("refused"));
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            assert_eq!(o.status.code(), Some(2), "{err}");
            if err.contains("policies x 256 sequences") {
                assert_eq!(err.lines().count(), 1, "{err}");
                assert!(err.starts_with("error: --thresholds: "), "{err}");
                assert!(!dir.path().join("refused").exists(), "{err}");
                return needs(&err);
            }
            limit = needs(&err) + (1 << 20);
        }
        panic!("no estimate names the policies");
    };
    let (few, many) = (estimate("cpu", 2), estimate("cpu", 10));
    assert!(many > few, "10 policies: {many} bytes, 2: {few}");
    // What two policies may use refuses ten.
    let o = dynamic("cpu", 10, &format!("{few}"), &path("o"));
    assert_eq!(o.status.code(), Some(2));
    // Under its own estimate the grid runs, and its peak stays below it.
    let o = dynamic("cpu", 10, &format!("{many}"), &path("o"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.path().join("o/policies.csv").exists());
    let peak = children_peak();
    assert!(peak < many, "peak {peak} bytes above the estimate {many}");
    // On a CPU implementation of the GPU (lavapipe) the device's buffers are the host's
    // memory: counted too (they were not, and such a run peaked at 2.4 times its estimate).
    if common::gpu_context().is_some_and(|ctx| ctx.is_cpu()) {
        let gpu = estimate("gpu", 10);
        let o = dynamic("gpu", 10, &format!("{gpu}"), &path("g"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let peak = children_peak();
        assert!(
            peak < gpu,
            "lavapipe: peak {peak} bytes above the estimate {gpu}"
        );
    }
}
