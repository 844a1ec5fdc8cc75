//! No output replaces or deletes one of the command's own inputs: an output path naming an
//! input (directly, through `./` or `new/..`, or a symbolic link; a hard link is another name,
//! which the write replaces), or an input inside a folder the command empties, is refused with exit 2 and one line naming the flag, and every input
//! keeps its bytes; so are two outputs naming one file (`pareto --out f --plot f`). `sweep --out` into a folder of the user's own files is refused too.

use std::path::{Path, PathBuf};

mod common;

use common::{data, fails, run, sweep_file};

/// A temporary folder with copies of test files.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `p(name)` as a string argument.
    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Copies `tests/data/<from>` (or any path) to `<to>` here.
    fn copy(&self, from: &str, to: &str) -> String {
        let src = if Path::new(from).exists() {
            from.to_string()
        } else {
            data(from)
        };
        if let Some(parent) = self.path(to).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::copy(src, self.path(to)).unwrap();
        self.p(to)
    }

    /// Every file under the folder with its bytes, to compare before and after.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let mut entries: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                let t = std::fs::symlink_metadata(&p).unwrap().file_type();
                if t.is_dir() {
                    walk(&p, out);
                } else if t.is_symlink() {
                    out.push((
                        p.clone(),
                        std::fs::read_link(&p)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes(),
                    ));
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }

    /// Runs `args`, checks the refusal names `expect`, and that nothing here changed (no
    /// file replaced, added or removed).
    fn refused(&self, args: &[&str], expect: &[&str]) -> String {
        let before = self.snapshot();
        let err = fails(args, expect);
        let after = self.snapshot();
        let names = |s: &[(PathBuf, Vec<u8>)]| s.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&after),
            names(&before),
            "{args:?} added or removed files"
        );
        for ((p, a), (_, b)) in before.iter().zip(&after) {
            assert!(a == b, "{args:?} changed {}", p.display());
        }
        err
    }
}

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

/// The run's staging folder is deleted: a sweep file or a merged shard inside it is refused.
#[test]
fn sweep_and_merge_inputs_inside_the_staging_folder_are_refused() {
    let (tmp, spec) = sweep_file(&[]);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join(".incomplete")).unwrap();
    std::fs::copy(
        "results/quick/spec.resolved.toml",
        out.join("spec.resolved.toml"),
    )
    .unwrap();
    let inner = out.join(".incomplete/bad.toml");
    std::fs::copy(&spec, &inner).unwrap();
    let before = std::fs::read(&inner).unwrap();
    let cache = tmp.path().join("cache").display().to_string();
    let (o, inner_s) = (out.display().to_string(), inner.display().to_string());
    fails(
        &["sweep", &inner_s, "--out", &o, "--cache", &cache, "--quiet"],
        &["--out", "would delete", "the sweep file"],
    );
    assert_eq!(std::fs::read(&inner).unwrap(), before);
    // A shard kept in the merge's staging folder.
    let shard = out.join(".incomplete/shard");
    std::fs::create_dir(&shard).unwrap();
    for f in ["results.csv", "spec.resolved.toml"] {
        std::fs::copy(format!("results/quick/{f}"), shard.join(f)).unwrap();
    }
    let shard_s = shard.display().to_string();
    fails(
        &["merge", &shard_s, "--out", &o],
        &["--out", "would delete", "merged from"],
    );
    assert!(shard.join("results.csv").exists());
}

/// `sweep --out` into a folder that was never a sweep's output (the user's own results.csv,
/// report.html and an .incomplete/ folder) is refused whole; an empty folder, or one holding
/// only the sweep file, is used.
#[test]
fn sweep_into_a_folder_that_is_not_a_sweeps_output_is_refused() {
    let (tmp, spec) = sweep_file(&[]);
    let user = tmp.path().join("userdir");
    std::fs::create_dir_all(user.join(".incomplete")).unwrap();
    std::fs::write(user.join("results.csv"), "mine\n1\n").unwrap();
    std::fs::write(user.join("report.html"), "<p>mine</p>").unwrap();
    std::fs::write(user.join(".incomplete/draft.txt"), "draft").unwrap();
    let cache = tmp.path().join("cache").display().to_string();
    let u = user.display().to_string();
    let err = fails(
        &["sweep", &spec, "--out", &u, "--cache", &cache, "--quiet"],
        &["--out", "not a sweep's output", "empty or new folder"],
    );
    assert!(err.contains("results.csv"), "{err}");
    assert_eq!(
        std::fs::read(user.join("results.csv")).unwrap(),
        b"mine\n1\n"
    );
    assert_eq!(
        std::fs::read(user.join("report.html")).unwrap(),
        b"<p>mine</p>"
    );
    assert_eq!(
        std::fs::read(user.join(".incomplete/draft.txt")).unwrap(),
        b"draft"
    );
    let mut names: Vec<_> = std::fs::read_dir(&user)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".incomplete", "report.html", "results.csv"],
        "no lock left"
    );
    // --resume too, and the folder named through one that does not exist yet.
    fails(
        &[
            "sweep", &spec, "--out", &u, "--cache", &cache, "--quiet", "--resume",
        ],
        &["--out", "not a sweep's output"],
    );
    // A cluster run is refused when it is submitted, not at the merge after it ran.
    fails(
        &[
            "sweep",
            &spec,
            "--slurm",
            "--dry-run",
            "--shards",
            "2",
            "--out",
            &u,
            "--cache",
            &cache,
        ],
        &["--out", "not a sweep's output"],
    );
    assert!(!user.join("slurm").exists());
    let around = format!("{u}/new/..");
    fails(
        &[
            "sweep", &spec, "--out", &around, "--cache", &cache, "--quiet",
        ],
        &["--out", "not a sweep's output"],
    );
    assert!(!user.join("new").exists());
    // Files a run neither replaces nor deletes are no reason to refuse a folder: a log, a
    // cache kept inside it, the folder of another run named `<name>/...`.
    let logged = tmp.path().join("logged");
    std::fs::create_dir_all(logged.join("other-run")).unwrap();
    std::fs::write(logged.join("run.log"), "log").unwrap();
    let (l, lc) = (
        logged.display().to_string(),
        logged.join("cache").display().to_string(),
    );
    for _ in 0..2 {
        let o = run(&["sweep", &spec, "--out", &l, "--cache", &lc, "--quiet"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(logged.join("run.log")).unwrap(), b"log");
    // An empty existing folder, and then the sweep's own output again, are fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.display().to_string();
    for _ in 0..2 {
        let o = run(&["sweep", &spec, "--out", &e, "--cache", &cache, "--quiet"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // A folder holding only the sweep file.
    let own = tmp.path().join("own");
    std::fs::create_dir(&own).unwrap();
    std::fs::copy(&spec, own.join("bad.toml")).unwrap();
    let (own_spec, own_s) = (
        own.join("bad.toml").display().to_string(),
        own.display().to_string(),
    );
    let o = run(&[
        "sweep", &own_spec, "--out", &own_s, "--cache", &cache, "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(own.join("results.csv").exists());
}

/// `lstm-dse` with PATH emptied: no scheduler tool can be found, so nothing is submitted
/// whatever the checks say.
fn without_slurm(args: &[&str]) -> std::process::Output {
    let empty = tempfile::tempdir().unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", empty.path())
        .args(args)
        .output()
        .unwrap()
}

/// `sweep --slurm` writes OUT/slurm/jobs.toml once the jobs are submitted: a sweep file kept
/// there is refused before anything is submitted or written (it was replaced by the job
/// list after submission; on a machine without sbatch the refusal named sbatch). `--dry-run`
/// submits nothing and writes no job list: accepted.
#[test]
fn sweep_slurm_job_list_naming_the_sweep_file_is_refused() {
    let s = Scratch::new();
    let spec = s.copy("sweeps/quick.toml", "out/slurm/jobs.toml");
    let out = s.p("out");
    let o = without_slurm(&["sweep", &spec, "--slurm", "--shards", "2", "--out", &out]);
    common::refused(
        &o,
        &[
            &format!("--out {out}: would overwrite {spec}"),
            "which is the sweep file",
        ],
    );
    assert_eq!(
        std::fs::read(&spec).unwrap(),
        std::fs::read("sweeps/quick.toml").unwrap()
    );
    assert!(
        !s.path("out/slurm/precision.sh").exists(),
        "scripts written"
    );
    let o = without_slurm(&[
        "sweep",
        &spec,
        "--slurm",
        "--shards",
        "2",
        "--out",
        &out,
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(&spec).unwrap(),
        std::fs::read("sweeps/quick.toml").unwrap()
    );
}

/// `status --resubmit` rewrites DIR/slurm/jobs.toml: one that would replace an input of the
/// run it resubmits (the sweep file recorded in it, or a file that sweep file names) is
/// refused before anything is submitted (it was written with no check).
#[test]
fn status_resubmit_job_list_naming_a_run_input_is_refused() {
    let s = Scratch::new();
    let list = s.path("out/slurm/jobs.toml");
    std::fs::create_dir_all(list.parent().unwrap()).unwrap();
    // The sweep file recorded is the job list itself (moved there after submission).
    let jobs = |spec: &Path| {
        format!(
            "shards = 1\nprecision = \"1\"\nshard_arrays = [\"2\"]\nmerge = \"3\"\nspec = {:?}\n",
            spec.display().to_string()
        )
    };
    std::fs::write(&list, jobs(&list)).unwrap();
    let out = s.p("out");
    let listed = list.display().to_string();
    let o = without_slurm(&["status", &out, "--resubmit"]);
    common::refused(
        &o,
        &[&format!(
            "DIR {out}: would overwrite {listed}, which is the sweep file"
        )],
    );
    // A sweep file whose architecture is the job list.
    let spec = s.path("spec.toml");
    let text = std::fs::read_to_string("sweeps/quick.toml").unwrap();
    let base = text
        .lines()
        .find(|l| l.trim_start().starts_with("base ="))
        .expect("quick.toml names arch.base")
        .to_string();
    std::fs::write(&spec, text.replace(&base, &format!("base = {listed:?}"))).unwrap();
    std::fs::write(&list, jobs(&spec)).unwrap();
    let o = without_slurm(&["status", &out, "--resubmit"]);
    common::refused(&o, &["would overwrite", "the architecture (arch.base in"]);
    assert_eq!(std::fs::read_to_string(&list).unwrap(), jobs(&spec));
}
