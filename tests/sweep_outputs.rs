//! What a sweep writes never replaces what it reads: inputs inside the staging folder a sweep
//! or merge empties, a `--out` folder of the user's own files, and the job list a cluster
//! run writes (`sweep --slurm`) and rewrites (`status --resubmit`) are refused with exit 2
//! and one line, before anything is written or submitted. Other commands: `output_paths.rs`.

use std::path::Path;

mod common;

use common::scratch::Scratch;
use common::{fails, run, sweep_file};

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
