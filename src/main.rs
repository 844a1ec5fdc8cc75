//! The `lstm-dse` binary: parse the command line, run it, turn the outcome into an exit code
//! (0 on success, 2 on bad input, with one line naming the file or token and the problem).

use clap::error::ErrorKind;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match lstm_dse::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            // clap's usage errors say what is wrong on their first line; the rest is hints,
            // except the missing arguments, listed on the lines after it.
            let text = e.render().to_string();
            let mut lines = text.lines();
            let mut line = lines
                .next()
                .unwrap_or("error: bad command line")
                .to_string();
            if e.kind() == ErrorKind::MissingRequiredArgument {
                for arg in lines.take_while(|l| !l.trim().is_empty()) {
                    line.push(' ');
                    line.push_str(arg.trim());
                }
            }
            lstm_dse::note!("{line}");
            return ExitCode::from(2);
        }
    };
    // Past a file-size limit (`ulimit -f`) a write fails (EFBIG) and is reported and cleaned
    // up as a full disk is, instead of SIGXFSZ killing the process over a `.partial` file.
    // SAFETY: setting a signal's disposition to SIG_IGN, before any other thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let _runtime_dir = RuntimeDir::ensure();
    match lstm_dse::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`lstm-dse models | head -1`): nothing to report.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<lstm_dse::console::StdoutError>()
                    .is_some_and(|s| s.reader_left())
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The context chain on one line, each cause once (an error that already shows
            // its source would otherwise print it twice), whatever line breaks a library's
            // message holds.
            let mut msg = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !msg.contains(&text) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&text);
                }
            }
            lstm_dse::note!(
                "error: {}",
                msg.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::from(2)
        }
    }
}

/// A private `XDG_RUNTIME_DIR` for this process when the environment has none (a batch job,
/// a container, ssh without a login session). The Vulkan loader probes the window systems
/// while wgpu lists adapters, and libwayland then prints "error: XDG_RUNTIME_DIR is invalid
/// or not set" on every run although nothing failed. Set before any thread starts; removed
/// when `main` returns, or by a later run when a signal ended this one.
struct RuntimeDir(Option<PathBuf>);

impl RuntimeDir {
    fn ensure() -> Self {
        let valid = std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|d| !d.is_empty() && PathBuf::from(d).is_dir());
        if valid {
            return RuntimeDir(None);
        }
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        // `TMPDIR` may name a missing or read-only folder: /tmp then.
        let mut parents = vec![std::env::temp_dir()];
        if parents[0] != std::path::Path::new("/tmp") {
            parents.push(PathBuf::from("/tmp"));
        }
        for parent in parents {
            remove_orphans(&parent);
            // Process ids are reused: a name taken already gets a new suffix (never someone
            // else's directory).
            for n in 0..64 {
                let dir = parent.join(format!("lstm-dse-runtime-{}-{n}", std::process::id()));
                match builder.create(&dir) {
                    Ok(()) => {
                        std::env::set_var("XDG_RUNTIME_DIR", &dir);
                        return RuntimeDir(Some(dir));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    // Not worth failing a run for: the message is cosmetic.
                    Err(_) => break,
                }
            }
        }
        RuntimeDir(None)
    }
}

/// Removes the empty runtime directories that processes killed before their `Drop` (by a
/// signal) left in `parent`, where no process of that id runs any more (Linux: `/proc`).
fn remove_orphans(parent: &std::path::Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("lstm-dse-runtime-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Only an empty directory goes: `remove_dir` refuses any other.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
