//! The scripts' quoting against sbatch's own reading of `#SBATCH` lines and bash's, and the
//! checks of the words they hold.

use super::*;

#[test]
fn slurm_time_limits() {
    for ok in [
        "30",
        "30:00",
        "1:00:00",
        "2-0",
        "2-12:00",
        "2-12:00:00",
        "UNLIMITED",
    ] {
        assert!(check_time(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "abc",
        "1h",
        "1:2:3:4",
        "-1",
        "0",
        "0:00",
        "1-",
        "2-1:2:3:4",
        "1.5",
    ] {
        assert!(check_time(bad).is_err(), "{bad}");
    }
    assert!(check_partition("gpu-a100").is_ok());
    for bad in ["", "a b", "x;rm", "p\n"] {
        assert!(check_partition(bad).is_err(), "{bad:?}");
    }
}

/// One argument of an `#SBATCH` line as sbatch reads it (`_get_argument` in SLURM's
/// src/sbatch/opt.c): the "packjob" blanking, backslash escapes, quotes, `#` comments, and a
/// white space outside quotes ending a word even after a backslash (the loop's condition
/// reads it before the escape is taken: SLURM 22.05 refused `--output=/a\ b/x`).
fn sbatch_reads(line: &str) -> Vec<String> {
    let line = line.replace("packjob", "       ");
    let (mut args, mut cur, mut has) = (Vec::new(), String::new(), false);
    let (mut esc, mut quote) = (false, None);
    for c in line.chars() {
        if quote.is_none() && c.is_whitespace() {
            if has {
                args.push(std::mem::take(&mut cur));
            }
            (has, esc) = (false, false);
            continue;
        }
        if esc {
            esc = false;
        } else if c == '\\' {
            (esc, has) = (true, true);
            continue;
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
                continue;
            }
        } else if c == '"' || c == '\'' {
            (quote, has) = (Some(c), true);
            continue;
        } else if c == '#' {
            break;
        }
        cur.push(c);
        has = true;
    }
    if has {
        args.push(cur);
    }
    args
}

fn plan(name: &str, out: &str) -> Plan {
    Plan {
        name: name.into(),
        spec: "/w/s.toml".into(),
        out: out.into(),
        workdir: "/w".into(),
        binary: "/w/lstm-dse".into(),
        cache: "/w/cache".into(),
        shards: 2,
        partition: Some("batch".into()),
        time: Some("1:00:00".into()),
        jobs: Some(2),
        smoke: false,
    }
}

#[test]
fn scripts_quote_hostile_names_and_paths_everywhere() {
    let name = "a b'c\"d#e$(touch x)`y`%j;packjob\\z";
    let out = "/r/o ut'#%a$(touch x);\"q\"";
    let mut p = plan(name, out);
    // A spec path with quotes, a backslash and the here-document's end word in it.
    p.spec = format!("{out}/s\"p\\ec' SPEC").into();
    p.check().expect("no control characters");
    for (file, text) in p.scripts() {
        for line in text.lines() {
            if let Some(args) = line.strip_prefix("#SBATCH ") {
                let read = sbatch_reads(args);
                assert_eq!(read.len(), 1, "{file}: {line} reads as {read:?}");
                if let Some(v) = read[0].strip_prefix("--job-name=") {
                    assert_eq!(v, format!("lstm-dse-{name}"), "{file}");
                }
                if let Some(v) = read[0].strip_prefix("--output=") {
                    let logs = format!("{out}/slurm/logs/").replace('%', "%%");
                    assert!(v.starts_with(&logs), "{file}: {v}");
                }
            }
        }
        // bash sees the hostile text only inside quotes: no command substitution runs
        // and every comment stays one line.
        let check = std::process::Command::new("bash")
            .args(["-n", "-c", &text])
            .output()
            .expect("bash");
        assert!(check.status.success(), "{file}: {text}");
        let starts = [
            "#",
            "set ",
            "cd ",
            "state=",
            "mkdir ",
            "echo ",
            "'/w/lstm-dse' ",
            "touch ",
            "i=",
            "p=",
            "s=",
            "m=",
            "printf ",
            "cat >> ",
            "spec = ",
            "SPEC",
            "mv ",
        ];
        for line in text.lines() {
            assert!(starts.iter().any(|s| line.starts_with(s)), "{file}: {line}");
        }
        // The job list's spec line (in a quoted here-document) reads back as the spec's path.
        if let Some(line) = text.lines().find(|l| l.starts_with("spec = ")) {
            let read: toml::Table = toml::from_str(line).expect("one TOML line");
            assert_eq!(read["spec"].as_str(), p.spec.to_str(), "{file}");
        }
    }
    let submit = &p.scripts()[3].1;
    assert!(submit.contains("cat >> jobs.toml.tmp <<'SPEC'\nspec = "));
    let header = &p.scripts()[0].1;
    assert!(header.contains(&format!("# lstm-dse sweep {} on SLURM", sh(name))));
}

#[test]
fn control_characters_in_script_words_are_refused_naming_them() {
    let bad = "s\ntouch /tmp/INJECTED #";
    type Set = fn(&mut Plan, &str);
    let cases: [(&str, Set); 5] = [
        ("the sweep's name", |p, v| p.name = v.into()),
        ("--out", |p, v| p.out = v.into()),
        ("--cache", |p, v| p.cache = v.into()),
        ("the sweep file", |p, v| p.spec = v.into()),
        ("the working directory", |p, v| p.workdir = v.into()),
    ];
    for (what, set) in cases {
        for v in [bad, "a\rb", "a\u{1b}[2J"] {
            let mut p = plan("s", "/r/o");
            set(&mut p, v);
            let e = p.check().expect_err(what).to_string();
            assert!(e.starts_with(what) && !e.contains('\n'), "{e}");
        }
    }
    // A path that is not UTF-8: the job list could not record it, after the jobs were
    // submitted (sweep --slurm), or recorded another (submit.sh).
    use std::os::unix::ffi::OsStrExt;
    let odd = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b"/w/bad\xffx/s.toml"));
    for set in [
        |p: &mut Plan, v: &std::path::Path| p.spec = v.into(),
        |p: &mut Plan, v: &std::path::Path| p.out = v.into(),
    ] {
        let mut p = plan("s", "/r/o");
        set(&mut p, &odd);
        let e = p.check().expect_err("not UTF-8").to_string();
        assert!(e.contains("not valid UTF-8") && !e.contains('\n'), "{e}");
    }
}

#[test]
fn quoting_survives_spaces_and_quotes() {
    assert_eq!(sh("a b"), "'a b'");
    assert_eq!(sh("it's"), r"'it'\''s'");
}

/// A merge's marker older than a shard redone since (or with its results gone) is not a
/// finished run: `status` said "finished" and `--resubmit` merged nothing.
#[test]
fn a_merge_marker_is_done_only_after_every_shard_with_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let state = out.join("slurm").join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Job ids no queue holds (above SLURM's default MaxJobId): not done means failed.
    let jobs = Jobs {
        shards: 2,
        precision: "90000001".into(),
        shard_arrays: vec!["90000002".into()],
        merge: "90000003".into(),
        spec: None,
    };
    jobs.save(out).unwrap();
    let mark = |name: &str| std::fs::write(state.join(format!("{name}.done")), "").unwrap();
    for name in ["precision", "shard-0", "shard-1", "merge"] {
        mark(name);
    }
    let results = out.join("results.csv");
    std::fs::write(&results, "a\n1\n").unwrap();
    let st = status::status(out).unwrap();
    assert_eq!(st.merge, status::State::Done);
    assert!(!st.needs_resubmit());
    assert!(st.describe(out).contains("finished"));
    // A shard redone by hand since the merge, its marker back: newer than the merge's.
    let merged = std::fs::metadata(state.join("merge.done"))
        .unwrap()
        .modified()
        .unwrap();
    let shard0 = std::fs::File::options()
        .write(true)
        .open(state.join("shard-0.done"))
        .unwrap();
    shard0
        .set_modified(merged + std::time::Duration::from_secs(10))
        .unwrap();
    let st = status::status(out).unwrap();
    assert_eq!(st.merge, status::State::Failed);
    assert!(
        st.describe(out).contains("the merge is to run"),
        "{}",
        st.describe(out)
    );
    shard0.set_modified(merged).unwrap();
    assert_eq!(status::status(out).unwrap().merge, status::State::Done);
    // An empty results.csv is no merged results.
    std::fs::write(&results, "").unwrap();
    assert_eq!(status::status(out).unwrap().merge, status::State::Failed);
    std::fs::write(&results, "a\n1\n").unwrap();
    // A shard being redone since the merge.
    std::fs::remove_file(state.join("shard-1.done")).unwrap();
    let st = status::status(out).unwrap();
    assert_eq!(st.merge, status::State::Failed);
    assert!(st.needs_resubmit());
    assert!(!st.describe(out).contains("finished"));
    // Every shard done, the merged results removed.
    mark("shard-1");
    std::fs::remove_file(&results).unwrap();
    let st = status::status(out).unwrap();
    assert_eq!(st.merge, status::State::Failed);
    assert!(!st.describe(out).contains("finished"));
}
