//! Shared by the fuzz suites: the case budget (`LSTM_DSE_FUZZ_CASES`, `LSTM_DSE_FUZZ_SEED`),
//! a seeded generator, and mutators for binary and text inputs that aim at the places parsers
//! break: sizes and counts (huge, zero, negative, wrapping), truncation, duplication, and
//! tokens from a per-format dictionary. Everything is deterministic for a given seed, so a
//! failure names the seed and case that reproduce it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Cases for one target: `default` in `cargo test`, or `LSTM_DSE_FUZZ_CASES` (the long mode
/// of docs/FUZZING.md) scaled by `weight` (a share of the budget, 1.0 = all of it).
pub fn cases(default: usize, weight: f64) -> usize {
    match std::env::var("LSTM_DSE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        Some(n) => ((n * weight).ceil() as usize).max(1),
        None => default,
    }
}

/// The base seed (`LSTM_DSE_FUZZ_SEED`, default 1).
pub fn seed() -> u64 {
    std::env::var("LSTM_DSE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// SplitMix64: small, seedable, the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Numbers that break size arithmetic: zero, one, powers of two at type edges, values whose
/// products wrap around 2^64, negatives, non-finite and very long ones.
pub const NASTY_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "255",
    "65536",
    "2147483647",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "288230376151711760",
    "2305843009213694080",
    "1000000000000",
    "1e12",
    "1e300",
    "-1e300",
    "1e-300",
    "inf",
    "-inf",
    "nan",
    "0.5",
    "-0",
    "99999999999999999999999999999",
];

/// One random mutation of `bytes`; `dict` holds tokens worth splicing in (format keywords,
/// range syntax...). Numbers in text are often replaced by [`NASTY_NUMBERS`].
pub fn mutate(rng: &mut Rng, bytes: &[u8], dict: &[&str]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    // Mostly one mutation, so that much of what is produced still parses and reaches the
    // code behind the parser; sometimes several.
    let rounds = if rng.below(4) == 0 {
        2 + rng.below(3)
    } else {
        1
    };
    for _ in 0..rounds {
        let len = b.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'\n', b'"', b'9', b':']);
            }
            2 => b.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let (i, n) = (rng.below(len), 1 + rng.below(64));
                let end = (i + n).min(len);
                b.drain(i..end);
            }
            4 if len > 0 => {
                let (i, n) = (rng.below(len), 1 + rng.below(256));
                let end = (i + n).min(len);
                let chunk = b[i..end].to_vec();
                let at = rng.below(len + 1);
                b.splice(at..at, chunk);
            }
            5 | 6 => replace_number(rng, &mut b),
            7 if !dict.is_empty() => {
                let at = rng.below(len + 1);
                let tok = rng.pick(dict).as_bytes().to_vec();
                b.splice(at..at, tok);
            }
            8 if !dict.is_empty() => replace_token(rng, &mut b, dict),
            _ => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
        }
    }
    b
}

/// Replaces one run of ASCII digits (with sign, dot, exponent) by a nasty number.
fn replace_number(rng: &mut Rng, b: &mut Vec<u8>) {
    let starts: Vec<usize> = (0..b.len())
        .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let s = *rng.pick(&starts);
    let e = s + b[s..]
        .iter()
        .take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
        .count();
    let tok = rng.pick(NASTY_NUMBERS).as_bytes().to_vec();
    b.splice(s..e, tok);
}

/// Replaces a quoted string or a value after `=` by a dictionary token.
fn replace_token(rng: &mut Rng, b: &mut Vec<u8>, dict: &[&str]) {
    let quotes: Vec<usize> = (0..b.len()).filter(|&i| b[i] == b'"').collect();
    if quotes.len() < 2 {
        return;
    }
    let k = rng.below(quotes.len() - 1);
    let (s, e) = (quotes[k], quotes[k + 1] + 1);
    let tok = rng.pick(dict).as_bytes().to_vec();
    b.splice(s..e, tok);
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Keeps a failing input for reproduction under `target/fuzz-failures/` and returns its path.
pub fn keep_failure(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = root().join("target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(name);
    let _ = std::fs::write(&p, bytes);
    p
}

/// Reads a repository file (a seed input).
pub fn seed_file(rel: &str) -> Vec<u8> {
    std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file under `dir` (relative to the root) ending in `ext`.
pub fn seed_files(dir: &str, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join(dir))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
                .map(|p| format!("{dir}/{}", file_name(&p)))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
