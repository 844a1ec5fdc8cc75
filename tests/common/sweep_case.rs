//! A small sweep for the fault-injection tests (`tests/sweep_faults.rs`,
//! `tests/sweep_resume.rs`; `tests/merge.rs` and `tests/resume.rs` give files of their own): its file (dynamic precision on architectures with and without a
//! tracking unit, so points are skipped), runs of it and merges of its shards through the
//! binary, and byte comparisons of two runs' outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lstm-dse"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

pub fn lstm_dse(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Half the architecture points have no tracking unit, so every dynamic option skips there.
pub fn spec_text(units: &str, arch: &str) -> String {
    format!(
        r#"
name = "faults"
[workload]
models = ["builtin:tiny"]
sequences = 2
steps = 4
seq_len = 20
[precision]
fixed = ["fx8"]
levels = ["fx6", "fx16"]
thresholds = "0,0.5,inf"
device = "cpu"
[arch]
base = "{arch}"
[arch.ranges]
"compute.multiplier_kind" = ["bit-parallel"]
"tracking.enabled" = [true, false]
"compute.units" = "{units}"
"compute.multipliers_per_unit" = "4:128:4"
[pareto]
minimize = ["latency_us", "energy_uj"]
"#
    )
}

pub struct Case {
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
}

impl Case {
    /// The sweep of [`spec_text`] with `units`.
    pub fn new(units: &str) -> Case {
        Case::with_spec(&spec_text(units, "ARCH"))
    }
    /// A sweep file from `template`, whose `ARCH` names a copy of `sweeps/arch/epur.toml`
    /// in the case's own folder.
    pub fn with_spec(template: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let arch = dir.path().join("arch.toml");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/arch/epur.toml"),
            &arch,
        )
        .unwrap();
        let spec = dir.path().join("spec.toml");
        std::fs::write(&spec, template.replace("ARCH", arch.to_str().unwrap())).unwrap();
        Case { dir, spec }
    }
    /// `merge DIRS... --out out`, each named inside the case's folder.
    pub fn merge(&self, dirs: &[&str], out: &str) -> Output {
        let mut args = vec!["merge".to_string()];
        args.extend(dirs.iter().map(|d| self.path(d).display().to_string()));
        args.extend(["--out".into(), self.path(out).display().to_string()]);
        lstm_dse(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
    /// A copy of directory `from` (its files) as `to`, then `edit` on it.
    pub fn copy(&self, from: &str, to: &str, edit: &dyn Fn(&Path)) {
        let (a, b) = (self.path(from), self.path(to));
        std::fs::create_dir_all(&b).unwrap();
        for e in std::fs::read_dir(&a).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), b.join(e.file_name())).unwrap();
            }
        }
        edit(&b);
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn args<'a>(&'a self, out: &'a str, cache: &'a str) -> Vec<&'a str> {
        vec![
            "sweep",
            self.spec.to_str().unwrap(),
            "--out",
            out,
            "--cache",
            cache,
            "--quiet",
        ]
    }
    /// Runs the sweep into `name` (extra flags appended).
    pub fn run(&self, name: &str, extra: &[&str]) -> Output {
        let out = self.path(name);
        let cache = self.path("cache");
        let mut a = self.args(out.to_str().unwrap(), cache.to_str().unwrap());
        a.extend(extra);
        lstm_dse(&a)
    }
    /// `lstm-dse merge shard0 shard1 --out merged`.
    pub fn merge_shards(&self) -> Output {
        let (s0, s1, m) = (
            self.path("shard0"),
            self.path("shard1"),
            self.path("merged"),
        );
        lstm_dse(&[
            "merge",
            s0.to_str().unwrap(),
            s1.to_str().unwrap(),
            "--out",
            m.to_str().unwrap(),
        ])
    }

    pub fn ok(&self, name: &str, extra: &[&str]) {
        let o = self.run(name, extra);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

pub const OUTPUTS: [&str; 4] = [
    "results.csv",
    "skipped.csv",
    "front.csv",
    "spec.resolved.toml",
];

pub fn same_outputs(a: &Path, b: &Path) {
    same_files(a, b);
    assert!(!b.join(".incomplete").exists(), "staging left behind");
}

pub fn same_files(a: &Path, b: &Path) {
    for f in OUTPUTS {
        let (x, y) = (std::fs::read(a.join(f)), std::fs::read(b.join(f)));
        assert!(
            x.as_ref().ok() == y.as_ref().ok(),
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

pub fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}
