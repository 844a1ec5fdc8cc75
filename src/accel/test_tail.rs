//! A fast re-check of the multithreading classes' tails (ignored tests, run by hand): the
//! simulator's cycles of every multithreading point of `worst_case_per_class`'s draw (and for
//! the dynamic classes the mean over the sequences sharing the point's statistics), cached once
//! in a file (`POINTS=1000000 cargo test --release --lib tail_cache -- --ignored`, about 7
//! minutes), then the closed form re-checked against them in about 3 minutes
//! (`tail_recheck`; `CACHE` names the file, `OUT` writes each point's figures, `IDX` lists
//! points by index, `CLASS` and `TOP` the worst of a class). docs/MODEL.md section 4, "A
//! shared core's lead", was measured this way.

use super::test_sim::*;
use super::test_support::env_count;
use super::*;
use std::io::{BufRead, Write};

fn points() -> usize {
    env_count("POINTS", 1_000_000)
}

fn cache_path() -> String {
    std::env::var("CACHE").unwrap_or_else(|_| {
        let file = std::env::temp_dir().join("lstm-dse-tail-sims.txt");
        file.to_string_lossy().into_owned()
    })
}

/// Writes `index class sim mean` for every multithreading point (mean: over up to 16
/// sequences sharing the statistics, dynamic classes only; else the sim).
#[test]
#[ignore = "a cache for tail_recheck"]
fn tail_cache() {
    let n = points();
    let mut out = std::io::BufWriter::new(std::fs::File::create(cache_path()).unwrap());
    for (i, (a, w, levels)) in drawn_points(n).enumerate() {
        let c = class(&a, &w) as usize;
        if c < 3 {
            continue;
        }
        let sim = simulate(&a, &w, &levels).expect("point simulates").cycles;
        let mean = if matches!(c, 4 | 6) {
            super::test_measure::sequence_mean(&a, &w, &levels, 16, i as u64 + 1).0
        } else {
            sim
        };
        writeln!(out, "{i} {c} {sim} {mean}").unwrap();
    }
}

/// Re-checks the closed form on the cached points: worst per class against one sequence and
/// against the mean of its sequences, and the worst `TOP` points of class `CLASS` (default 6).
#[test]
#[ignore = "a measurement on tail_cache's file"]
fn tail_recheck() {
    let n = points();
    let (top, show) = (env_count("TOP", 8), env_count("CLASS", 6));
    let file = std::io::BufReader::new(std::fs::File::open(cache_path()).unwrap());
    let mut cached = std::collections::HashMap::new();
    for line in file.lines() {
        let line = line.unwrap();
        let f: Vec<&str> = line.split(' ').collect();
        let i: usize = f[0].parse().unwrap();
        cached.insert(
            i,
            (f[2].parse::<f64>().unwrap(), f[3].parse::<f64>().unwrap()),
        );
    }
    let (mut low, mut high, mut mlow, mut mhigh) =
        ([0.0f64; 7], [0.0f64; 7], [0.0f64; 7], [0.0f64; 7]);
    let mut count = [0usize; 7];
    let mut worst: Vec<(f64, f64, String)> = Vec::new();
    let mut over = [0usize; 7];
    let mut dump = std::env::var("OUT")
        .ok()
        .map(|p| std::io::BufWriter::new(std::fs::File::create(p).unwrap()));
    for (i, (a, w, levels)) in drawn_points(n).enumerate() {
        let Some(&(sim, mean)) = cached.get(&i) else {
            continue;
        };
        let c = class(&a, &w) as usize;
        let model = evaluate(&a, &w).expect("point evaluates").cycles;
        let e = model / sim - 1.0;
        let m = model / mean - 1.0;
        if let Some(d) = dump.as_mut() {
            writeln!(d, "{i} {c} {model} {sim} {mean}").unwrap();
        }
        count[c] += 1;
        low[c] = low[c].min(e);
        high[c] = high[c].max(e);
        mlow[c] = mlow[c].min(m);
        mhigh[c] = mhigh[c].max(m);
        if e.abs() > 0.04 {
            over[c] += 1;
        }
        let listed = std::env::var("IDX").is_ok_and(|v| v.split(',').any(|x| x == i.to_string()));
        if listed || (c == show && e.abs() > 0.03) {
            worst.push((
                e,
                m,
                format!(
                    "#{i} model {model} sim {sim} mean {mean}\n{a:?}\n{w:?}\n{:?}",
                    levels[0]
                ),
            ));
        }
    }
    for c in 3..7 {
        println!(
            "class {c}: {} points, {:+.2}% .. {:+.2}% (worst {:.2}%), against the mean {:+.2}% .. {:+.2}%, over 4%: {}",
            count[c],
            100.0 * low[c],
            100.0 * high[c],
            100.0 * low[c].abs().max(high[c]),
            100.0 * mlow[c],
            100.0 * mhigh[c],
            over[c]
        );
    }
    worst.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    for (e, m, s) in worst.iter().take(top) {
        println!("--- {:+.2}% (mean {:+.2}%) {s}", 100.0 * e, 100.0 * m);
    }
}
