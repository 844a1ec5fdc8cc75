//! Fault injection on sweeps, through the binary: damaged and truncated checkpoint files,
//! changed inputs, runs made by another version of the accelerator model, concurrent runs on
//! one `--out`, shards that miss points and a damaged cache entry. Every case ends in a clean
//! refusal (exit 2, one line naming the file and line, nothing appended) or in the bytes of
//! an uninterrupted run. Interrupted runs and their resumption: `sweep_resume.rs`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

mod common;

use common::refused;
use common::sweep_case::{bin, lstm_dse, same_outputs, Case};

/// Every file under `dir` with its bytes, but `.lock` (which holds the pid of the last run
/// to take it).
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else if !p.ends_with(".lock") {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Refuses `o` as [`refused`] does and checks that it left `dir` as it was.
fn refused_untouched(o: &Output, expect: &[&str], dir: &Path, before: &[(PathBuf, Vec<u8>)]) {
    refused(o, expect);
    let after = tree(dir);
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f))
        .chain(before.iter().filter(|f| !after.contains(f)))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(changed.is_empty(), "a refused run changed {changed:?}");
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_line() {
    let c = Case::new("1:4:1");
    c.ok("plain", &[]);
    let plain = c.path("plain");
    let text = std::fs::read_to_string(plain.join("results.csv")).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    let join = |v: &[String]| v.join("\n") + "\n";
    let owned: Vec<String> = rows.iter().map(|s| s.to_string()).collect();
    let mut cases: Vec<(&str, String, Vec<&str>)> = Vec::new();
    let mut v = owned.clone();
    let h = v[5].rfind(",0.1.0").unwrap();
    v[5].replace_range(h - 4..h, "ffff");
    cases.push(("config hash", join(&v), vec!["line 6", "config_hash"]));
    let mut v = owned.clone();
    v.swap(3, 4);
    cases.push(("swapped", join(&v), vec!["line 5", "reordered"]));
    let mut v = owned.clone();
    v.insert(8, v[7].clone());
    cases.push(("duplicate", join(&v), vec!["line 9"]));
    let mut v = owned.clone();
    v[10].insert(3, '\0');
    cases.push(("NUL", join(&v), vec!["line 11", "NUL"]));
    cases.push(("CRLF", owned.join("\r\n") + "\r\n", vec!["line 1"]));
    let mut v = owned.clone();
    v[0] = v[0].replace("energy_uj", "energy");
    cases.push(("header", join(&v), vec!["line 1", "header"]));
    let mut v = owned.clone();
    v[12] = v[12].replace(",builtin:tiny,", ",builtin:other,");
    cases.push(("edited cell", join(&v), vec!["line 13", "model"]));
    let mut v = owned.clone();
    v.remove(20);
    cases.push(("removed line", join(&v), vec!["point", "missing"]));
    for (what, body, expect) in cases {
        let d = c.path(what);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            plain.join("spec.resolved.toml"),
            d.join("spec.resolved.toml"),
        )
        .unwrap();
        std::fs::copy(plain.join("skipped.csv"), d.join("skipped.csv")).unwrap();
        std::fs::write(d.join("results.csv"), &body).unwrap();
        let o = c.run(what, &["--resume"]);
        let mut e = expect.clone();
        e.push("results.csv");
        refused(&o, &e);
        assert_eq!(
            std::fs::read_to_string(d.join("results.csv")).unwrap(),
            body,
            "{what}: the file was changed by a refused resume"
        );
    }
}

#[test]
fn changed_inputs_are_refused_by_resume_and_merge() {
    let c = Case::new("1:4:1");
    c.ok("plain", &[]);
    c.ok("shard0", &["--shard", "0/2"]);
    // The base architecture changes under the same path (one parameter).
    let arch = c.path("arch.toml");
    let text = std::fs::read_to_string(&arch).unwrap();
    std::fs::write(
        &arch,
        text.replacen("clock_mhz = 500.0", "clock_mhz = 600.0", 1),
    )
    .unwrap();
    let o = c.run("plain", &["--resume"]);
    refused(&o, &["arch.toml", "changed", "content hash"]);
    c.ok("shard1", &["--shard", "1/2"]);
    let o = c.merge_shards();
    refused(&o, &["arch.toml", "changed"]);
    // Results without the resolved spec cannot be checked: refused, not mixed.
    std::fs::remove_file(c.path("plain").join("spec.resolved.toml")).unwrap();
    let o = c.run("plain", &["--resume"]);
    refused(&o, &["spec.resolved.toml"]);
}

#[test]
fn runs_of_another_model_version_are_refused_by_resume_and_merge() {
    let c = Case::new("1:4:1");
    c.ok("plain", &[]);
    c.ok("shard0", &["--shard", "0/2"]);
    c.ok("shard1", &["--shard", "1/2"]);
    let resolved = |d: &str| c.path(d).join("spec.resolved.toml");
    let text = std::fs::read_to_string(resolved("plain")).unwrap();
    // This binary's version as it records it, so that the test outlives a bump.
    let key = "accel_model = ";
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .expect("spec.resolved.toml records accel_model");
    let version: u32 = line[key.len()..].parse().unwrap();
    let other = text.replacen(line, &format!("{key}{}", version + 1), 1);
    for d in ["plain", "shard1"] {
        std::fs::write(resolved(d), &other).unwrap();
    }
    let (plain, before) = (c.path("plain"), tree(&c.path("plain")));
    let o = c.run("plain", &["--resume"]);
    refused_untouched(
        &o,
        &[
            &format!(
                "that run was made by accelerator model version {}, this binary has version {version};",
                version + 1
            ),
            "rerun without --resume",
            "(or use the binary that made it)",
        ],
        &plain,
        &before,
    );
    let o = c.merge_shards();
    refused(
        &o,
        &[
            "shard1 was made by accelerator model version",
            "merge only shards of one run",
        ],
    );
    assert!(!c.path("merged").exists(), "a refused merge wrote");
    // A run made before versions were recorded: which model made its rows is unknown.
    let start = text.find("[versions]").expect("a [versions] section");
    let end = start + text[start..].find("\n\n").expect("a blank line after it") + 2;
    std::fs::write(
        resolved("plain"),
        format!("{}{}", &text[..start], &text[end..]),
    )
    .unwrap();
    let before = tree(&c.path("plain"));
    let o = c.run("plain", &["--resume"]);
    refused(
        &o,
        &[
            "that run was made before versions were recorded",
            "rerun without --resume",
        ],
    );
    assert_eq!(before, tree(&c.path("plain")), "a refused resume wrote");
}

#[test]
fn a_second_run_on_the_same_out_is_refused_naming_the_holder() {
    let c = Case::new("1:256:1");
    let out = c.path("busy");
    let cache = c.path("cache");
    c.ok("warm", &[]); // fills the cache, so the long run below starts at once
    let mut first = bin()
        .args(c.args(out.to_str().unwrap(), cache.to_str().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".lock");
    let pid = first.id().to_string();
    for _ in 0..500 {
        if std::fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let second = c.run("busy", &[]);
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    if still_running {
        refused(&second, &["another sweep", &pid]);
    } else {
        eprintln!("note: the first run finished before the second started; lock not exercised");
    }
    // The lock of the killed run is stale: the next run takes it over and completes.
    assert!(lock.exists());
    c.ok("busy", &["--resume"]);
    same_outputs(&c.path("warm"), &out);
}

/// `merge` refuses a set of shards that does not cover every point of the run: a shard
/// missing, shards of different counts, a shard emptied or cut short, a row of a point past
/// the run. Once all of these were merged with exit 0 into results with gaps.
#[test]
fn merge_refuses_shards_that_miss_points() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    for i in 0..3 {
        c.ok(&format!("s{i}"), &["--shard", &format!("{i}/3")]);
    }
    c.ok("h0", &["--shard", "0/2"]);
    let merge = |dirs: &[&str]| {
        let mut args = vec!["merge".to_string()];
        args.extend(dirs.iter().map(|d| c.path(d).display().to_string()));
        args.extend(["--out".into(), c.path("m").display().to_string()]);
        lstm_dse(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    refused(
        &merge(&["s0", "s2"]),
        &["shard 1/3 is missing", "given: 0/3, 2/3"],
    );
    refused(&merge(&["s0", "s1", "s1"]), &["shard 2/3 is missing"]);
    refused(&merge(&["h0", "s1", "s2"]), &["shard.toml", "1/3", "0/2"]);
    assert!(!c.path("m").exists(), "a refused merge wrote its output");
    // A shard emptied to its header, or cut short.
    let copy = |from: &str, to: &str, edit: &dyn Fn(&str) -> String| {
        let (a, b) = (c.path(from), c.path(to));
        std::fs::create_dir_all(&b).unwrap();
        for e in std::fs::read_dir(&a).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), b.join(e.file_name())).unwrap();
            }
        }
        let text = std::fs::read_to_string(a.join("results.csv")).unwrap();
        std::fs::write(b.join("results.csv"), edit(&text)).unwrap();
    };
    let header = |t: &str| t.lines().next().unwrap().to_string() + "\n";
    copy("s1", "s1-empty", &header);
    refused(
        &merge(&["s0", "s1-empty", "s2"]),
        &["s1-empty", "shard 1/3", "rerun that shard"],
    );
    let short = |t: &str| {
        let lines: Vec<&str> = t.lines().collect();
        lines[..lines.len() - 1].join("\n") + "\n"
    };
    copy("s1", "s1-short", &short);
    refused(
        &merge(&["s0", "s1-short", "s2"]),
        &["s1-short", "rerun that shard"],
    );
    // A row of a point past the run.
    let past = |t: &str| {
        let last = t.lines().last().unwrap();
        let rest = last.split_once(',').unwrap().1;
        format!("{t}999999,{rest}\n")
    };
    copy("s2", "s2-past", &past);
    refused(
        &merge(&["s0", "s1", "s2-past"]),
        &["s2-past", "point 999999", "beyond"],
    );
    // Into one of the shards (spelt otherwise): refused, the shard left as it was (once it
    // was replaced by the merge, its shard.toml gone).
    let before = tree(&c.path("s0"));
    let (s0, s1, s2) = (c.path("s0"), c.path("s1"), c.path("s2"));
    let into = format!("{}/.", s0.display());
    let args = ["merge", s0.to_str().unwrap(), s1.to_str().unwrap()];
    let o = lstm_dse(&[&args[..], &[s2.to_str().unwrap(), "--out", &into]].concat());
    refused_untouched(
        &o,
        &["--out", "is one of the directories merged"],
        &s0,
        &before,
    );
    // Every shard: the single run's bytes; the merged directory is a whole run.
    let o = merge(&["s2", "s0", "s1"]);
    assert!(o.status.success(), "{o:?}");
    same_outputs(&c.path("plain"), &c.path("m"));
    assert!(!c.path("m").join("shard.toml").exists());
    // A whole run over a shard's directory leaves no shard.toml behind.
    c.ok("s1", &[]);
    assert!(!c.path("s1").join("shard.toml").exists());
}

/// A precision-cache entry cut short at an option (disk damage, an edit) is recomputed, not
/// taken: once the sweep costed only the options left, with exit 0.
#[test]
fn a_damaged_cache_entry_is_recomputed() {
    let c = Case::new("1:8:1");
    c.ok("plain", &[]);
    let entries: Vec<PathBuf> = std::fs::read_dir(c.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(!entries.is_empty());
    for e in &entries {
        let text = std::fs::read_to_string(e).unwrap();
        let cut = text.match_indices("[[option]]").nth(1).map(|(i, _)| i);
        std::fs::write(e, &text[..cut.expect("two options at least")]).unwrap();
    }
    let o = c.run("again", &[]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("damaged"),
        "{o:?}"
    );
    same_outputs(&c.path("plain"), &c.path("again"));
}
