//! Shared fixtures for the model's tests: the shipped architecture files (with overrides) and
//! a few workloads shaped like the papers' models.

use std::path::PathBuf;

use super::{
    apply_set, load_arch, Arch, DenseShape, HeadShape, LayerShape, PrecisionLevel,
    PrecisionProfile, Workload,
};

pub(crate) fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `sweeps/arch/<name>.toml` with `sets` applied, validated.
pub(crate) fn arch(name: &str, sets: &[&str]) -> Arch {
    let rel = format!("sweeps/arch/{name}.toml");
    let mut spec = load_arch(&repo_path(&rel)).expect("shipped arch file loads");
    for s in sets {
        apply_set(&mut spec, s).expect("override applies");
    }
    Arch::from_spec(&spec, &rel).expect("shipped arch file validates")
}

pub(crate) fn uniform(
    name: &str,
    layers: usize,
    input: usize,
    hidden: usize,
    seq_len: usize,
) -> Workload {
    let mut shapes = vec![LayerShape {
        input_size: input,
        hidden_size: hidden,
        directions: 1,
    }];
    shapes.extend((1..layers).map(|_| LayerShape {
        input_size: hidden,
        hidden_size: hidden,
        directions: 1,
    }));
    Workload {
        name: name.to_string(),
        layers: shapes,
        head: HeadShape::default(),
        seq_len,
        batch: 1,
        precision: PrecisionProfile::fixed(16, 16),
    }
}

/// GNMT-like encoder: 8 layers of 1024 cells, the first bidirectional.
pub(crate) fn gnmt_like() -> Workload {
    let mut layers = vec![
        LayerShape {
            input_size: 1024,
            hidden_size: 1024,
            directions: 2,
        },
        LayerShape {
            input_size: 2048,
            hidden_size: 1024,
            directions: 1,
        },
    ];
    layers.extend((2..8).map(|_| LayerShape {
        input_size: 1024,
        hidden_size: 1024,
        directions: 1,
    }));
    Workload {
        name: "gnmt-like".to_string(),
        layers,
        head: HeadShape::default(),
        seq_len: 50,
        batch: 1,
        precision: PrecisionProfile::fixed(16, 16),
    }
}

/// Two precision levels, `low_fraction` of the steps at the low one.
pub(crate) fn two_level(low_bits: u32, high_bits: u32, low_fraction: f64) -> PrecisionProfile {
    PrecisionProfile::dynamic(
        vec![
            PrecisionLevel {
                weight_bits: low_bits,
                activation_bits: low_bits,
            },
            PrecisionLevel {
                weight_bits: high_bits,
                activation_bits: high_bits,
            },
        ],
        vec![low_fraction, 1.0 - low_fraction],
    )
}

/// The fx8/fx16 profile the closed form sees of a level sequence (0 low, 1 high) that every
/// layer runs: its fractions and switch rate, first and last levels unknown (the fractions).
pub(crate) fn sequence_stats(seq: &[usize]) -> PrecisionProfile {
    let t = seq.len();
    let low = seq.iter().filter(|&&k| k == 0).count() as f64 / t as f64;
    let switches = seq.windows(2).filter(|w| w[0] != w[1]).count();
    two_level(8, 16, low).with_switch_rate(switches as f64 / (t - 1) as f64)
}

/// [`sequence_stats`] with the sequence's first and last levels known for sure (one-hot
/// fractions).
pub(crate) fn sequence_profile(seq: &[usize]) -> PrecisionProfile {
    let one_hot = |k: usize| (0..2).map(|j| f64::from(u8::from(j == k))).collect();
    sequence_stats(seq).with_edge_steps(one_hot(seq[0]), one_hot(seq[seq.len() - 1]))
}

/// The environment variable `name` as a count (`POINTS`, `TOP`, ... of the ignored
/// measurements), else `default`.
pub(crate) fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A reduced workload that runs the two-level sequence `seq` ([`sequence_profile`]): the
/// shape of a regression point, with at most one dense layer on every step.
pub(crate) fn reduced(
    layers: Vec<LayerShape>,
    head: Option<DenseShape>,
    batch: usize,
    seq: &[usize],
) -> Workload {
    Workload {
        name: "reduced".into(),
        layers,
        head: HeadShape {
            layers: head.into_iter().collect(),
            per_sequence: false,
        },
        seq_len: seq.len(),
        batch,
        precision: sequence_profile(seq),
    }
}

/// What the closed form sees of a two-level sequence besides its length: the steps at the low
/// level (0), the switches, the first and the last level.
pub(crate) fn level_statistics(s: &[usize]) -> (usize, usize, Option<usize>, Option<usize>) {
    (
        s.iter().filter(|&&k| k == 0).count(),
        s.windows(2).filter(|w| w[0] != w[1]).count(),
        s.first().copied(),
        s.last().copied(),
    )
}

/// Every two-level sequence of `seq`'s length with its [`level_statistics`], in binary order
/// (step i is bit i).
pub(crate) fn every_sequence_like(seq: &[usize]) -> Vec<Vec<usize>> {
    let want = level_statistics(seq);
    (0u32..1 << seq.len())
        .map(|bits| (0..seq.len()).map(|i| ((bits >> i) & 1) as usize).collect())
        .filter(|s: &Vec<usize>| level_statistics(s) == want)
        .collect()
}

/// The simulator's cycles with every layer running the level sequence `seq`.
pub(crate) fn simulated(a: &Arch, w: &Workload, seq: &[usize]) -> f64 {
    crate::accel::simulate(a, w, &vec![seq.to_vec(); w.layers.len()])
        .expect("point simulates")
        .cycles
}

pub(crate) fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300)
}

/// EESEN-like speech model (Miao et al. 2015): 5 bidirectional layers of 320 cells over 120
/// features. Every layer's weights fit epur.toml's weight memory at 16 bits.
pub(crate) fn eesen_like() -> Workload {
    let mut layers = vec![LayerShape {
        input_size: 120,
        hidden_size: 320,
        directions: 2,
    }];
    layers.extend((1..5).map(|_| LayerShape {
        input_size: 640,
        hidden_size: 320,
        directions: 2,
    }));
    Workload {
        name: "eesen-like".to_string(),
        layers,
        head: HeadShape::default(),
        seq_len: 100,
        batch: 1,
        precision: PrecisionProfile::fixed(16, 16),
    }
}

/// The text of the shipped E-PUR architecture file.
pub(crate) fn epur_text() -> String {
    std::fs::read_to_string(repo_path("sweeps/arch/epur.toml")).expect("epur.toml readable")
}
