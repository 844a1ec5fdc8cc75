//! A temporary folder with copies of test files, for the tests of what a command may write
//! (`tests/output_paths.rs`, `tests/sweep_outputs.rs`): a refusal must leave every file in
//! it as it was.

use std::path::{Path, PathBuf};

use super::{data, fails};

/// A temporary folder with copies of test files.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `p(name)` as a string argument.
    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Copies `tests/data/<from>` (or any path) to `<to>` here.
    pub fn copy(&self, from: &str, to: &str) -> String {
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
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
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
    pub fn refused(&self, args: &[&str], expect: &[&str]) -> String {
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
