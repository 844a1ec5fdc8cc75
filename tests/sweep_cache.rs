//! Sweeps sharing one precision cache (`--cache`) at the same time: a run that finds the entry
//! it needs being written or computed by another run waits for it or keeps its own result,
//! and never fails (`src/sweep/cache.rs`).

mod common;

use common::sweep_case::{bin, same_outputs, Case};
use std::path::PathBuf;
use std::time::Duration;

/// The cache entries (`<hash>.toml`) of the case's cache, after a run filled it.
fn entries(c: &Case) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(c.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// Another run writing the entry at the moment this one writes it (its temporary file locked,
/// as `report::write_atomic` locks it) is no failure: this run keeps the options it computed.
#[test]
fn an_entry_being_written_by_another_run_is_not_a_failure() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    let entry = entries(&c).pop().expect("one entry");
    std::fs::remove_file(&entry).unwrap();
    let partial = entry.with_extension("toml.partial");
    let held = std::fs::File::create(&partial).unwrap();
    held.lock().unwrap();
    let o = c.run("again", &[]);
    assert!(o.status.success(), "{o:?}");
    same_outputs(&c.path("plain"), &c.path("again"));
    drop(held);
}

/// A run that needs an entry another run is computing (its `<hash>.lock` held) waits, says so,
/// and takes the entry the other run wrote.
#[test]
fn a_run_waits_for_another_computing_its_entry() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    let entry = entries(&c).pop().expect("one entry");
    let saved = std::fs::read(&entry).unwrap();
    std::fs::remove_file(&entry).unwrap();
    let lock = entry.with_extension("lock");
    let held = std::fs::File::create(&lock).unwrap();
    held.lock().unwrap();
    std::fs::write(&lock, "4242\n").unwrap();
    let mut child = bin()
        .args(c.args(
            c.path("again").to_str().unwrap(),
            c.path("cache").to_str().unwrap(),
        ))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "it did not wait");
    assert!(!c.path("again").join("results.csv").exists());
    // The other run writes its entry, removes its lock file and releases the lock.
    std::fs::write(&entry, &saved).unwrap();
    std::fs::remove_file(&lock).unwrap();
    drop(held);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("process 4242") && err.contains("waiting"),
        "{err}"
    );
    same_outputs(&c.path("plain"), &c.path("again"));
    assert!(!lock.exists());
    assert_eq!(std::fs::read(&entry).unwrap(), saved);
}

/// Three shards started at once on one empty cache all finish, and the cache ends with one
/// entry and no lock file.
#[test]
fn shards_started_at_once_share_the_cache() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    std::fs::remove_dir_all(c.path("cache")).unwrap();
    let children: Vec<_> = (0..3)
        .map(|i| {
            let out = c.path(&format!("s{i}"));
            let cache = c.path("cache");
            let mut a = c.args(out.to_str().unwrap(), cache.to_str().unwrap());
            let shard = format!("{i}/3");
            a.extend(["--shard", &shard]);
            bin()
                .args(&a)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for ch in children {
        let o = ch.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    let names: Vec<_> = std::fs::read_dir(c.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let o = c.merge(&["s0", "s1", "s2"], "m");
    assert!(o.status.success(), "{o:?}");
    same_outputs(&c.path("plain"), &c.path("m"));
}
