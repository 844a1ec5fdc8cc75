//! Which files a command reads and which it writes, checked before it writes anything: no
//! output may replace or delete one of the command's inputs ([`refuse_overwriting_inputs`]),
//! and no two outputs may name one file ([`refuse_shared_outputs`]). Paths are compared by
//! where they lead ([`place`]: `..`, `.` and symbolic links resolved), as a write follows them.

use std::path::{Path, PathBuf};

/// A file (or folder) a command reads, for [`refuse_overwriting_inputs`]: what it is, with the
/// flag or key that names it (`the model (--model)`), and its path.
pub struct Input {
    pub what: String,
    pub path: PathBuf,
}

impl Input {
    pub fn new(what: impl Into<String>, path: impl Into<PathBuf>) -> Input {
        Input {
            what: what.into(),
            path: path.into(),
        }
    }

    /// A model named as on the command line or in a sweep file (`builtin:NAME` reads no
    /// file: none), with the external data files an ONNX model names (looked for only in a
    /// file within `--max-memory`: a larger one is refused when it loads).
    pub fn model(flag: &str, spec: &str) -> Vec<Input> {
        if spec.starts_with("builtin:") {
            return Vec::new();
        }
        let mut files = vec![Input::new(format!("the model ({flag})"), spec)];
        let within = std::fs::metadata(spec)
            .is_ok_and(|m| m.is_file() && m.len() <= crate::limits::current().max_memory_bytes);
        if within && spec.to_ascii_lowercase().ends_with(".onnx") {
            let data = crate::lstm::onnx::external_files(spec).unwrap_or_default();
            files.extend(
                data.into_iter()
                    .map(|p| Input::new(format!("the model's external data ({flag})"), p)),
            );
        }
        files
    }
}

/// What a command writes, for [`refuse_overwriting_inputs`]: `flag` and the path given with
/// it (`--out results/x`), and the file it writes there, or a folder it deletes or empties.
pub struct Output {
    pub flag: String,
    pub given: PathBuf,
    pub target: Target,
}

pub enum Target {
    /// A file written (replaced, or written through a link).
    File(PathBuf),
    /// A folder deleted or emptied with everything in it.
    Tree(PathBuf),
}

impl Output {
    /// The file the flag names.
    pub fn file(flag: &str, path: &Path) -> Output {
        Output::inside(flag, path, path.to_path_buf())
    }

    /// A file the command writes under the folder `dir` the flag names.
    pub fn inside(flag: &str, dir: &Path, file: PathBuf) -> Output {
        Output {
            flag: flag.to_string(),
            given: dir.to_path_buf(),
            target: Target::File(file),
        }
    }

    /// A folder under the folder `dir` the flag names that the command deletes.
    pub fn tree(flag: &str, dir: &Path, tree: PathBuf) -> Output {
        Output {
            flag: flag.to_string(),
            given: dir.to_path_buf(),
            target: Target::Tree(tree),
        }
    }
}

/// Where `p` is, as an absolute path with links resolved as far as it exists; past the first
/// component that does not exist yet, `..` and `.` are taken as written (a folder made there
/// can be no link: `new/../x.npy` is `x.npy`, which a write creating `new/` replaces).
pub fn place(p: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(p)
    };
    let (mut at, mut exists) = (PathBuf::new(), true);
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop();
            }
            c => {
                at.push(c);
                if exists {
                    match at.canonicalize() {
                        Ok(real) => at = real,
                        Err(_) => exists = false,
                    }
                }
            }
        }
    }
    Some(at)
}

/// Whether writing `out` would replace the file `input`: the same path, or the same place
/// ([`place`]: through `..`, `.` and symbolic links, which a write follows). A hard link is
/// another name (the write replaces that name only), and a pipe or a device is written in
/// place, never replaced: neither is the input's file.
pub fn same_file(out: &Path, input: &Path) -> bool {
    if std::fs::metadata(out).is_ok_and(|m| !m.is_file()) {
        return false;
    }
    out == input || place(out).is_some_and(|o| Some(o) == place(input))
}

/// Where a write to `p` lands ([`place`]), a dangling link followed to the file it makes.
fn written_at(p: &Path) -> Option<PathBuf> {
    let mut p = p.to_path_buf();
    // A bound, as the system's: a loop of links is no file at all.
    for _ in 0..40 {
        let dangling = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink())
            && std::fs::metadata(&p).is_err();
        if !dangling {
            break;
        }
        let to = std::fs::read_link(&p).ok()?;
        p = p.parent().map_or(to.clone(), |d| d.join(&to));
    }
    place(&p)
}

/// Whether two outputs are one file, so that writing both would leave one or mix them: the
/// same path or place ([`written_at`]), or one open file (a pipe, a device or a terminal)
/// under two names (`/dev/stdout` and `/dev/fd/1`). `/dev/null` takes any number of outputs,
/// and two hard links are two names (each write replaces its own).
fn same_output(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let null = |p: &Path| place(p).is_some_and(|p| p == Path::new("/dev/null"));
    if null(a) || null(b) {
        return false;
    }
    if a == b || written_at(a).is_some_and(|pa| Some(pa) == written_at(b)) {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => {
            !ma.is_file() && !ma.is_dir() && (ma.dev(), ma.ino()) == (mb.dev(), mb.ino())
        }
        _ => false,
    }
}

/// Refuses, before a command writes anything, two of its outputs naming the same file
/// (`pareto --out f --plot f`, both `/dev/stdout`), which would write one over the other or
/// interleave them: one line naming both flags.
pub fn refuse_shared_outputs(outputs: &[Output]) -> anyhow::Result<()> {
    let file = |o: &Output| match &o.target {
        Target::File(f) => Some(f.clone()),
        Target::Tree(_) => None,
    };
    for (k, a) in outputs.iter().enumerate() {
        for b in &outputs[k + 1..] {
            let (Some(fa), Some(fb)) = (file(a), file(b)) else {
                continue;
            };
            if same_output(&fa, &fb) {
                anyhow::bail!(
                    "{} {} and {} {}: name the same file; give each output its own",
                    a.flag,
                    fa.display(),
                    b.flag,
                    fb.display()
                );
            }
        }
    }
    Ok(())
}

/// Refuses, before a command writes anything, an output that would replace or delete one of
/// its inputs (`--output m.onnx` naming the model, `--plot` naming the CSV read, a link to an
/// input, an input inside a folder the command empties), as one line naming the output's
/// flag and the input, and two outputs naming one file ([`refuse_shared_outputs`]). Every
/// command that writes files calls it with what it reads and what it writes.
pub fn refuse_overwriting_inputs(inputs: &[Input], outputs: &[Output]) -> anyhow::Result<()> {
    refuse_shared_outputs(outputs)?;
    for o in outputs {
        let given = format!("{} {}", o.flag, o.given.display());
        for i in inputs {
            match &o.target {
                Target::File(f) if same_file(f, &i.path) => {
                    if *f == o.given {
                        anyhow::bail!("{given}: is {}; write elsewhere", i.what);
                    }
                    anyhow::bail!(
                        "{given}: would overwrite {}, which is {}; write elsewhere",
                        f.display(),
                        i.what
                    );
                }
                Target::Tree(t) => {
                    let (Some(tc), Some(p)) = (place(t), place(&i.path)) else {
                        continue;
                    };
                    if p.starts_with(&tc) {
                        anyhow::bail!(
                            "{given}: would delete {} with {}, and it is {}; move it or write elsewhere",
                            i.path.display(),
                            t.display(),
                            i.what
                        );
                    }
                }
                Target::File(_) => {}
            }
        }
    }
    Ok(())
}

/// Figures are SVG only: a `flag` path with another extension (`front.png`) would be SVG
/// under another format's name, so it is refused; a name without an extension
/// (`/dev/stdout`) is taken.
pub fn refuse_non_svg(flag: &str, path: &Path) -> anyhow::Result<()> {
    if let Some(ext) = path.extension().filter(|e| !e.eq_ignore_ascii_case("svg")) {
        anyhow::bail!(
            "{flag} {}: the figure is SVG, not .{}: give a name ending in .svg",
            path.display(),
            ext.to_string_lossy()
        );
    }
    Ok(())
}
