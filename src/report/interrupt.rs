//! Interruption of a command that writes outputs: after [`remove_partials_on_signal`], a
//! SIGINT, SIGTERM or SIGHUP removes the temporary (`.partial`) files being written and then
//! ends the process by that signal, as it would have ended without this. A killed run then
//! leaves no half-written file beside its outputs (the next run would overwrite one, but a
//! person or a script looking at the folder meanwhile would see it).
//!
//! Every temporary file [`super::write_atomic`] and [`super::Staged`] write is listed here
//! from its creation (made, locked as this run's and listed while holding the list's lock)
//! until it is renamed or removed. The signals are blocked in
//! every thread and taken by one thread with `sigwait`, which may then take the list's lock
//! and remove files (neither is allowed in a signal handler). It ends the process holding
//! that lock, and renames are done under it, so a temporary file is either renamed into
//! place before the signal is handled or removed and never renamed.
//!
//! A blocked signal mask is inherited by threads started afterwards (wanted: rayon's
//! workers block them too) and by child processes (not wanted), so only commands that start
//! no child process turn this on; a signal ignored when the command starts (`nohup`, a
//! background job's SIGINT) stays ignored.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The temporary files being written now.
static PARTIALS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The list of temporary files, locked: a rename of one of them is done holding it.
pub(super) fn partials() -> MutexGuard<'static, Vec<PathBuf>> {
    // A thread that panicked while holding the lock left the list as it was: still usable.
    PARTIALS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes a temporary file (renamed or removed) off the `list` held.
pub(super) fn forget(list: &mut Vec<PathBuf>, path: &Path) {
    if let Some(i) = list.iter().rposition(|p| p == path) {
        list.swap_remove(i);
    }
}

/// Signals that end a run and remove its temporary files first.
#[cfg(unix)]
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// From now on, an interrupting signal removes the temporary files being written before it
/// ends the process. Call before any other thread starts (the threads running then would
/// still take the signal the default way) and only in a command that starts no child
/// process. Once per process; a no-op where there are no such signals.
pub fn remove_partials_on_signal() {
    #[cfg(unix)]
    {
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(start);
    }
}

#[cfg(unix)]
fn start() {
    // SAFETY: sigemptyset, sigaddset, sigaction (to read only) and pthread_sigmask on a
    // signal set and a sigaction struct owned here, zero-initialised (valid for both).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in SIGNALS {
            let mut now: libc::sigaction = std::mem::zeroed();
            let ignored = libc::sigaction(sig, std::ptr::null(), &mut now) == 0
                && now.sa_sigaction == libc::SIG_IGN;
            // Linux queues a blocked signal even when it is ignored: sigwait would take it.
            if !ignored {
                libc::sigaddset(&mut set, sig);
            }
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let waiter = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || wait_and_clean_up(set));
        if waiter.is_err() {
            // Nobody would take them: the default way again.
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

/// Waits for one of `set`, removes the temporary files and ends the process by the signal.
#[cfg(unix)]
fn wait_and_clean_up(set: libc::sigset_t) {
    let mut sig: libc::c_int = 0;
    // SAFETY: sigwait on a set the caller filled, writing to a local.
    while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
    let list = partials();
    for path in list.iter() {
        let _ = std::fs::remove_file(path);
    }
    // SAFETY: restores the default action of `sig` and unblocks it in this thread, then
    // raises it there: the process ends as the signal ends it by default (the lock above
    // is still held, so no rename follows).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut one: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut one);
        libc::sigaddset(&mut one, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
        libc::raise(sig);
    }
    // Not reached: the default action of these signals ends the process.
    std::process::exit(128 + sig);
}
