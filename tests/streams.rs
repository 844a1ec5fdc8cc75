//! The terminal streams under hostile conditions (docs/FUZZING.md): a reader of stdout that
//! leaves early ends a command quietly; stdout on a full disk is an error (exit 2); a notice
//! that cannot be shown on stderr never stops a computation, and errors keep exit code 2.

use std::fs::File;
use std::process::{Command, Output, Stdio};

fn lstm_dse(args: &[&str], stdout: Stdio, stderr: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .expect("run lstm-dse")
}

/// A pipe whose reader has already gone: every write to it fails with a broken pipe.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer.into()
}

fn full() -> Stdio {
    File::options()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
        .into()
}

#[test]
fn a_reader_that_leaves_ends_the_command_quietly() {
    for args in [
        &["models"][..],
        &["inspect", "--model", "builtin:gnmt"],
        &[
            "model",
            "--arch",
            "sweeps/arch/epur.toml",
            "--model",
            "builtin:tiny",
        ],
    ] {
        let out = lstm_dse(args, closed_pipe(), Stdio::piped());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn stdout_on_a_full_disk_is_an_error() {
    let out = lstm_dse(&["models"], full(), Stdio::piped());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("writing to stdout") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn notices_that_cannot_be_shown_do_not_stop_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.npy");
    let gen = [
        "gen-input",
        "--model",
        "builtin:tiny",
        "--sequences",
        "2",
        "--steps",
        "5",
        "--output",
        input.to_str().unwrap(),
    ];
    assert!(lstm_dse(&gen, Stdio::null(), Stdio::null())
        .status
        .success());
    for (k, stderr) in [full(), closed_pipe()].into_iter().enumerate() {
        let out_dir = dir.path().join(format!("t{k}"));
        let args = [
            "trace",
            "--model",
            "builtin:tiny",
            "--input",
            input.to_str().unwrap(),
            "--precisions",
            "fx8",
            "--device",
            "cpu",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        let out = lstm_dse(&args, Stdio::null(), stderr);
        assert_eq!(out.status.code(), Some(0), "stderr {k}");
        assert!(out_dir.join("summary.csv").is_file(), "stderr {k}");
    }
    // An error still exits 2 when its line cannot be shown.
    let out = lstm_dse(&["inspect", "--model", "nope.onnx"], Stdio::null(), full());
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `lstm-dse devices` without `XDG_RUNTIME_DIR` and with `TMPDIR` as given.
fn devices_with_tmpdir(tmpdir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lstm-dse"))
        .arg("devices")
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmpdir)
        .output()
        .expect("run lstm-dse")
}

#[test]
fn a_missing_tmpdir_leaves_stderr_clean() {
    // The private runtime directory falls back to /tmp; before, libwayland printed
    // "error: XDG_RUNTIME_DIR is invalid" lines on a run that succeeded.
    let out = devices_with_tmpdir(std::path::Path::new("/nonexistent/tmp"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
}

#[test]
fn runtime_directories_of_ended_processes_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    // No process has an id above Linux's limit (2^22); this test's own process is alive.
    let orphan = tmp.path().join("lstm-dse-runtime-4194305-0");
    let alive = tmp
        .path()
        .join(format!("lstm-dse-runtime-{}-0", std::process::id()));
    for d in [&orphan, &alive] {
        std::fs::create_dir(d).unwrap();
    }
    assert!(devices_with_tmpdir(tmp.path()).status.success());
    if cfg!(target_os = "linux") {
        assert!(!orphan.exists());
    }
    assert!(alive.exists());
}

/// A file-size limit (`ulimit -f`): the write past it fails with one line naming the file, exit
/// 2, and leaves nothing behind (SIGXFSZ killed the process and left `x.npy.partial`).
#[test]
fn a_file_size_limit_is_an_error_that_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    // 100 x 100 steps of builtin:tiny's inputs: far past 64 KiB.
    let script = format!(
        "ulimit -f 64; exec \"$0\" gen-input --model builtin:tiny --sequences 100 --steps 100 --output '{}'",
        x.display()
    );
    let o = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_lstm-dse")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("x.npy"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
