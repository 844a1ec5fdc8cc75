//! No output replaces or deletes one of the command's own inputs: an output path naming an
//! input (directly, through `./` or `new/..`, or a symbolic link; a hard link is another name,
//! which the write replaces), or an input inside a folder the command empties, is refused
//! with exit 2 and one line naming the flag, and every input keeps its bytes; so are two
//! outputs naming one file (`pareto --out f --plot f`). A sweep's folders and job lists:
//! `sweep_outputs.rs`.

mod common;

use common::run;
use common::scratch::Scratch;

#[test]
fn infer_output_naming_the_model_or_the_input_is_refused() {
    let s = Scratch::new();
    let m = s.copy("peephole.onnx", "m.onnx");
    let x = s.copy("peephole.x.npy", "x.npy");
    let infer = |out: &str, expect: &[&str]| {
        s.refused(
            &["infer", "--model", &m, "--input", &x, "--output", out],
            expect,
        )
    };
    let err = infer(&m, &["--output", "is the model (--model)"]);
    assert!(err.contains("m.onnx"), "{err}");
    infer(&x, &["--output", "is the input (--input)"]);
    // The same file by another spelling.
    let dotted = format!("{}/./x.npy", s.dir.path().display());
    infer(&dotted, &["--output", "is the input (--input)"]);
    // Through a folder that does not exist yet (the write would make it, then land on x.npy).
    infer(
        &s.p("new/../x.npy"),
        &["--output", "is the input (--input)"],
    );
    // A symbolic link to the input is written through: the same file.
    std::os::unix::fs::symlink(s.path("x.npy"), s.path("soft.npy")).unwrap();
    infer(&s.p("soft.npy"), &["--output", "the input (--input)"]);
    // An output elsewhere is written; so is a hard link to the model, another name of it that
    // the write replaces (the model keeps its bytes).
    let model = std::fs::read(&m).unwrap();
    std::fs::hard_link(s.path("m.onnx"), s.path("hard.npy")).unwrap();
    for y in [s.p("y.npy"), s.p("hard.npy")] {
        let o = run(&["infer", "--model", &m, "--input", &x, "--output", &y]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(&m).unwrap(), model);
}

#[test]
fn infer_output_naming_the_external_data_is_refused() {
    let s = Scratch::new();
    let m = s.copy("torch_dynamo.onnx", "torch_dynamo.onnx");
    s.copy("torch_dynamo.onnx.data", "torch_dynamo.onnx.data");
    let x = s.copy("torch_dynamo.x.npy", "x.npy");
    let data = s.p("torch_dynamo.onnx.data");
    s.refused(
        &["infer", "--model", &m, "--input", &x, "--output", &data],
        &["--output", "the model's external data (--model)"],
    );
}

#[test]
fn gen_input_output_naming_the_model_is_refused() {
    let s = Scratch::new();
    let m = s.copy("peephole.onnx", "m.onnx");
    s.refused(
        &["gen-input", "--model", &m, "--output", &m],
        &["--output", "is the model (--model)"],
    );
}

#[test]
fn ranges_csv_naming_the_model_or_input_is_refused() {
    let s = Scratch::new();
    let m = s.copy("peephole.onnx", "m.onnx");
    let x = s.copy("peephole.x.npy", "x.npy");
    let ranges = |csv: &str, expect: &[&str]| {
        s.refused(
            &["ranges", "--model", &m, "--input", &x, "--csv", csv],
            expect,
        )
    };
    ranges(&m, &["--csv", "is the model (--model)"]);
    std::os::unix::fs::symlink(s.path("x.npy"), s.path("t.csv")).unwrap();
    ranges(&s.p("t.csv"), &["--csv", "the input (--input)"]);
}

#[test]
fn pareto_plot_naming_the_input_is_refused() {
    let s = Scratch::new();
    let r = s.copy("results/quick/results.csv", "r.csv");
    let f = s.p("f.csv");
    let pareto = |plot: &str| {
        vec![
            "pareto",
            &r,
            "--minimize",
            "latency_us,energy_uj",
            "--out",
            &f,
            "--plot",
            plot,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let a = pareto(&r);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    s.refused(&a, &["--plot", "is the input"]);
    let a = pareto(&s.p("new/../r.csv"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    s.refused(&a, &["--plot", "is the input"]);
}

/// Two outputs naming one file are refused before either is written (they were written one
/// after the other into it, CSV and SVG interleaved, exit 0): the same path, another spelling
/// of it, a link to it, and one pipe under two names (`/dev/stdout`, `/dev/fd/1`); the one
/// line names both flags. `/dev/null` takes both.
#[test]
fn pareto_out_and_plot_naming_one_file_are_refused() {
    let s = Scratch::new();
    let r = s.copy("results/quick/results.csv", "r.csv");
    std::os::unix::fs::symlink(s.path("f.csv"), s.path("link.svg")).unwrap();
    let pareto = |out: &str, plot: &str| -> Vec<String> {
        ["pareto", &r, "--minimize", "latency_us,energy_uj"]
            .into_iter()
            .chain(["--out", out, "--plot", plot])
            .map(String::from)
            .collect()
    };
    let f = s.p("f.csv");
    for plot in [
        f.clone(),
        s.p("./f.csv"),
        s.p("new/../f.csv"),
        s.p("link.svg"),
    ] {
        let a = pareto(&f, &plot);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        s.refused(&a, &["--out", "--plot", "name the same file"]);
    }
    // A link to a front written before.
    let g = s.copy("results/quick/front.csv", "g.csv");
    std::os::unix::fs::symlink(s.path("g.csv"), s.path("glink.svg")).unwrap();
    let a = pareto(&g, &s.p("glink.svg"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    s.refused(&a, &["--out", "--plot", "name the same file"]);
    for (out, plot) in [("/dev/stdout", "/dev/stdout"), ("/dev/stdout", "/dev/fd/1")] {
        let a = pareto(out, plot);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = run(&a);
        common::refused(
            &o,
            &[&format!(
                "--out {out} and --plot {plot}: name the same file"
            )],
        );
        assert!(o.stdout.is_empty(), "{a:?} wrote to stdout");
    }
    let a = pareto("/dev/null", "/dev/null");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn trace_groups_dynamic_out_files_linked_to_inputs_are_refused() {
    let s = Scratch::new();
    let m = s.copy("peephole.onnx", "m.onnx");
    let x = s.copy("peephole.x.npy", "x.npy");
    let out = s.p("out");
    std::fs::create_dir(s.path("out")).unwrap();
    // trace writes errors.csv through the link: the model would be replaced.
    std::os::unix::fs::symlink(s.path("m.onnx"), s.path("out/errors.csv")).unwrap();
    s.refused(
        &[
            "trace",
            "--model",
            &m,
            "--input",
            &x,
            "--precisions",
            "fx8",
            "--device",
            "cpu",
            "--out",
            &out,
        ],
        &["--out", "errors.csv", "the model (--model)"],
    );
    std::fs::remove_file(s.path("out/errors.csv")).unwrap();
    std::os::unix::fs::symlink(s.path("x.npy"), s.path("out/groups.csv")).unwrap();
    s.refused(
        &[
            "groups", "--model", &m, "--input", &x, "--device", "cpu", "--out", &out,
        ],
        &["--out", "groups.csv", "the input (--input)"],
    );
    std::fs::remove_file(s.path("out/groups.csv")).unwrap();
    std::os::unix::fs::symlink(s.path("x.npy"), s.path("out/policies.csv")).unwrap();
    let dynamic = |extra: &[&str]| {
        let mut a = vec![
            "dynamic",
            "--model",
            &m,
            "--input",
            &x,
            "--levels",
            "fx8,fx16",
            "--thresholds",
            "0.1",
            "--device",
            "cpu",
            "--out",
            &out,
        ];
        a.extend(extra);
        s.refused(&a, &["--out", "the input (--input)"]);
    };
    dynamic(&[]);
    // A previous run's policy trace is removed: not when it is the input itself.
    std::fs::remove_file(s.path("out/policies.csv")).unwrap();
    let x2 = s.copy("peephole.x.npy", "out/policy_3_trace.csv");
    let a = [
        "dynamic",
        "--model",
        &m,
        "--input",
        &x2,
        "--levels",
        "fx8,fx16",
        "--thresholds",
        "0.1",
        "--device",
        "cpu",
        "--out",
        &out,
    ];
    s.refused(&a, &["--out", "policy_3_trace.csv", "the input (--input)"]);
}

#[test]
fn report_and_plot_outputs_naming_their_inputs_are_refused() {
    let s = Scratch::new();
    for f in ["results.csv", "front.csv", "spec.resolved.toml"] {
        s.copy(&format!("results/quick/{f}"), &format!("sw/{f}"));
    }
    let sw = s.p("sw");
    s.refused(
        &["plot", "front", &sw, "--out", &s.p("sw/front.csv")],
        &["--out", "front.csv of"],
    );
    std::os::unix::fs::symlink(s.path("sw/results.csv"), s.path("sw/report.html")).unwrap();
    s.refused(
        &["report", &sw, "--quiet"],
        &["report.html", "results.csv of"],
    );
    // A trace directory's CSV files are what `plot trace` reads.
    std::fs::create_dir(s.path("tr")).unwrap();
    std::fs::write(
        s.path("tr/errors.csv"),
        "precision,sequence,step,hidden_max_abs\n",
    )
    .unwrap();
    s.refused(
        &["plot", "trace", &s.p("tr"), "--out", &s.p("tr/errors.csv")],
        &["--out", "errors.csv of"],
    );
}
