//! Built-in benchmark models: the LSTM networks of the accelerator papers' evaluations, by
//! shape, with deterministic seeded weights drawn like PyTorch's default initialisation
//! (uniform in ±1/sqrt(H) for LSTM tensors, ±1/sqrt(in) for the dense head). The weights are
//! NOT trained: use these models for shape-driven cost studies, not for accuracy claims.
//! Shapes and sources are documented in docs/MODELS.md.

use super::{Cell, Dense, Direction, Head, HeadActivation, Layer, Model, ModelError};

/// One built-in model's shape.
pub struct Builtin {
    pub name: &'static str,
    pub summary: &'static str,
    /// Input width.
    pub input: usize,
    /// (hidden size, direction) per layer.
    pub layers: &'static [(usize, Direction)],
    /// Dense head (outputs, activation), if any.
    pub head: Option<(usize, HeadActivation)>,
    /// Where the shape comes from.
    pub source: &'static str,
}

use Direction::{Bidirectional as Bi, Forward as Fw};

/// Every built-in model.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "eesen",
        summary: "EESEN-like speech recogniser: 5 bidirectional layers of 320, CTC softmax",
        input: 120,
        layers: &[(320, Bi), (320, Bi), (320, Bi), (320, Bi), (320, Bi)],
        head: Some((72, HeadActivation::Softmax)),
        source: "Miao et al., EESEN, ASRU 2015 (arXiv 1507.08240): 4-5 BLSTM layers of 320 cells on 120 filterbank features",
    },
    Builtin {
        name: "gnmt",
        summary: "GNMT-like translation encoder: 1 bidirectional + 7 forward layers of 1024",
        input: 1024,
        layers: &[(1024, Bi), (1024, Fw), (1024, Fw), (1024, Fw), (1024, Fw), (1024, Fw), (1024, Fw), (1024, Fw)],
        head: None,
        source: "Wu et al., Google's NMT system, 2016 (arXiv 1609.08144): 8 encoder layers of 1024, the first bidirectional",
    },
    Builtin {
        name: "zaremba-medium",
        summary: "Zaremba-style word language model, medium: 2 layers of 650, 10k-word softmax",
        input: 650,
        layers: &[(650, Fw), (650, Fw)],
        head: Some((10000, HeadActivation::Softmax)),
        source: "Zaremba, Sutskever, Vinyals, Recurrent Neural Network Regularization, 2014 (arXiv 1409.2329), PTB medium",
    },
    Builtin {
        name: "zaremba-large",
        summary: "Zaremba-style word language model, large: 2 layers of 1500, 10k-word softmax",
        input: 1500,
        layers: &[(1500, Fw), (1500, Fw)],
        head: Some((10000, HeadActivation::Softmax)),
        source: "Zaremba, Sutskever, Vinyals, 2014 (arXiv 1409.2329), PTB large",
    },
    Builtin {
        name: "captioning",
        summary: "Show-and-Tell-like image captioning decoder: 1 layer of 512, 10k-word softmax",
        input: 512,
        layers: &[(512, Fw)],
        head: Some((10000, HeadActivation::Softmax)),
        source: "Vinyals et al., Show and Tell, CVPR 2015 (arXiv 1411.4555): LSTM of 512 on 512-wide image/word embeddings",
    },
    Builtin {
        name: "tiny",
        summary: "A tiny 2-layer model for quick runs and tests: 16 -> 32 -> 32, 10-way softmax",
        input: 16,
        layers: &[(32, Fw), (32, Fw)],
        head: Some((10, HeadActivation::Softmax)),
        source: "none: a small shape of our own for smoke tests",
    },
];

/// SplitMix64: a tiny, fully specified generator, so weights are identical on every platform.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-bound, bound), 24 random bits.
    pub fn uniform(&mut self, bound: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * u - 1.0) * bound
    }

    /// Standard normal (Box-Muller), for generated input sequences.
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    pub fn fill(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(bound)).collect()
    }
}

/// The seed of a built-in model: a hash of its name, so each model has its own weights.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Builds `builtin:NAME`.
pub fn build(name: &str) -> Result<Model, ModelError> {
    let spec = BUILTINS.iter().find(|b| b.name == name).ok_or_else(|| {
        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        ModelError::invalid(
            format!("builtin:{name}"),
            format!("no such built-in model (have: {})", names.join(", ")),
        )
    })?;
    let mut rng = SplitMix64::new(seed_of(name));
    let mut input = spec.input;
    let mut layers = Vec::new();
    for &(h, direction) in spec.layers {
        let bound = 1.0 / (h as f32).sqrt();
        let cells = (0..direction.count())
            .map(|_| Cell {
                w: rng.fill(4 * h * input, bound),
                r: rng.fill(4 * h * h, bound),
                b_ih: rng.fill(4 * h, bound),
                b_hh: rng.fill(4 * h, bound),
                peephole: None,
                h0: None,
                c0: None,
            })
            .collect();
        layers.push(Layer {
            input_size: input,
            hidden_size: h,
            direction,
            cells,
        });
        input = h * direction.count();
    }
    let head = spec.head.map(|(out, activation)| {
        let bound = 1.0 / (input as f32).sqrt();
        Head {
            layers: vec![Dense {
                input_size: input,
                output_size: out,
                weight: rng.fill(out * input, bound),
                bias: rng.fill(out, bound),
                activation,
            }],
            input: Default::default(),
        }
    });
    Ok(Model {
        name: format!("builtin:{name}"),
        layers,
        head,
        fixed: Default::default(),
        embedding: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_builds_and_validates_deterministically() {
        for b in BUILTINS {
            if b.name == "gnmt" {
                continue; // large; its shape is checked below without building twice
            }
            let m = build(b.name).unwrap();
            m.validate().unwrap();
            assert_eq!(m, build(b.name).unwrap());
        }
        let g = build("gnmt").unwrap();
        assert_eq!(g.layers.len(), 8);
        assert_eq!(g.layers[1].input_size, 2048);
        assert!(build("nope")
            .unwrap_err()
            .to_string()
            .contains("no such built-in"));
    }

    #[test]
    fn weight_counts_and_plan_bytes_of_tiny() {
        let m = build("tiny").unwrap();
        // W and R: 4·32·(16 + 32) + 4·32·(32 + 32), one multiply-accumulate each a step.
        assert_eq!(m.lstm_weights(), Some(14336));
        assert_eq!(m.lstm_weights(), Some(m.macs_per_step() as u128));
        // Per config: 16 bytes a weight, and per layer direction three tables of 2^16 x 8 bytes.
        let per_config = 16 * 14336 + 2 * 3 * 65536 * 8;
        assert_eq!(crate::lstm::eval::plan_bytes(&m, 3), Some(3 * per_config));
    }

    #[test]
    fn weights_follow_pytorch_bounds() {
        let m = build("tiny").unwrap();
        let bound = 1.0 / 32f32.sqrt();
        let w = &m.layers[0].cells[0].w;
        assert!(w.iter().all(|v| v.abs() <= bound));
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!(w.iter().any(|v| v.abs() > 0.9 * bound));
    }
}
