//! DPRed / ShapeShifter per-group precision (Delmas Lascorz et al., arXiv 1804.06732), as the
//! public DNNsim simulator measures it: values are split into groups of G consecutive values;
//! a value's width is the position of the leading one of its magnitude (one's complement for
//! negatives) plus a sign bit; a group is stored at its widest value's width with a header of
//! ceil(log2 B) bits (B = base width); optionally a zero bitmap (one bit per value, zeros not
//! stored), the smaller of the two encodings kept per group. Weights are measured statically
//! (W and R of every layer, group by group along each row), activations dynamically (the
//! layer input x_t and the output h_t of every step of every sequence, at the base precision).
//! The widths are found by `shaders/groups.wgsl` on a GPU engine; this file is its CPU twin.

use crate::format::PrecisionConfig;
use crate::lstm::eval;
use crate::lstm::npy::Sequences;
use crate::lstm::Model;
use crate::trace::{Engine, TraceError};

/// Width in bits of a two's-complement code: leading one of the magnitude + sign.
pub fn value_width(code: i32) -> u32 {
    let m = if code < 0 { !code } else { code } as u32;
    33 - m.leading_zeros()
}

/// Accumulated group statistics of one tensor kind at one group size.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    pub kind: &'static str,
    pub group_size: usize,
    pub base_bits: u32,
    /// `hist[w - 1]`: groups of width w.
    pub hist: Vec<u64>,
    pub values: u64,
    /// Bits of the plain encoding: header + G x width per group.
    pub bits_plain: u64,
    /// Bits when each group keeps the smaller of plain and zero-bitmap encodings.
    pub bits_best: u64,
}

impl GroupStats {
    fn new(kind: &'static str, group_size: usize, base_bits: u32) -> Self {
        GroupStats {
            kind,
            group_size,
            base_bits,
            hist: vec![0; base_bits as usize],
            values: 0,
            bits_plain: 0,
            bits_best: 0,
        }
    }

    fn header_bits(&self) -> u64 {
        (32 - (self.base_bits - 1).leading_zeros()) as u64
    }

    /// Adds one vector of codes, split into groups (the last may be shorter).
    pub fn add(&mut self, codes: &[i32]) {
        for g in codes.chunks(self.group_size) {
            let w = g
                .iter()
                .map(|&c| value_width(c))
                .max()
                .unwrap_or(1)
                .min(self.base_bits);
            self.add_group(w, g.len(), g.iter().filter(|&&c| c != 0).count());
        }
    }

    /// Adds one group of `len` values, `nonzero` of them non-zero, stored at `width` bits.
    pub fn add_group(&mut self, width: u32, len: usize, nonzero: usize) {
        let (n, w) = (len as u64, width.clamp(1, self.base_bits) as u64);
        self.hist[w as usize - 1] += 1;
        let plain = self.header_bits() + n * w;
        let bitmap = self.header_bits() + n + nonzero as u64 * w;
        self.values += n;
        self.bits_plain += plain;
        self.bits_best += plain.min(bitmap);
    }

    /// Mean group width in bits (weighted by group).
    pub fn mean_width(&self) -> f64 {
        let groups: u64 = self.hist.iter().sum();
        let sum: u64 = self
            .hist
            .iter()
            .enumerate()
            .map(|(i, &c)| (i as u64 + 1) * c)
            .sum();
        sum as f64 / groups.max(1) as f64
    }

    /// Off-chip footprint relative to storing every value at the base width.
    pub fn ratio(&self, best: bool) -> f64 {
        let bits = if best {
            self.bits_best
        } else {
            self.bits_plain
        };
        bits as f64 / (self.values.max(1) * self.base_bits as u64) as f64
    }
}

/// Codes cut into vectors (rows of W and R, or activation vectors): concatenated codes and
/// the length of each vector. Groups never span two vectors.
#[derive(Debug, Default, Clone)]
pub struct Vectors {
    pub codes: Vec<i32>,
    pub lens: Vec<usize>,
}

impl Vectors {
    fn push(&mut self, v: impl IntoIterator<Item = i32>) {
        let before = self.codes.len();
        self.codes.extend(v);
        self.lens.push(self.codes.len() - before);
    }

    /// Group statistics at group size `g` and base width `bits`, on the CPU.
    pub fn stats(&self, kind: &'static str, g: usize, bits: u32) -> GroupStats {
        let mut s = GroupStats::new(kind, g, bits);
        let mut at = 0;
        for &n in &self.lens {
            s.add(&self.codes[at..at + n]);
            at += n;
        }
        s
    }
}

/// The weights (static) and activations (x_t of layer 0 and h_t of every layer, every step
/// and sequence) of `model` on `seqs` at the fixed-point `base` config, as codes; the
/// base-precision run executes on `engine` (GPU lanes or the CPU evaluator: the same bits).
pub fn collect(
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    base: PrecisionConfig,
) -> Result<(Vectors, Vectors), TraceError> {
    let plans = eval::prepare(model, seqs, input_name, &[base])?;
    let plan = &plans[0];
    let run = engine.run(model, seqs, &plans, &mut |_, _| {})?.remove(0);
    let states = run.states.as_deref().unwrap_or_default();
    let (mut weights, mut acts) = (Vectors::default(), Vectors::default());
    for (l, (layer, cells)) in model.layers.iter().zip(&plan.layers).enumerate() {
        for cell in cells {
            let Some(q) = &cell.int else { continue };
            for row in
                q.w.chunks(layer.input_size)
                    .chain(q.r.chunks(layer.hidden_size))
            {
                weights.push(row.iter().copied());
            }
        }
        let Some(q) = &cells[0].int else { continue };
        let width = layer.output_size();
        for n in 0..seqs.count {
            for t in 0..seqs.steps {
                if l == 0 {
                    let x = &seqs.sequence(n)[t * layer.input_size..(t + 1) * layer.input_size];
                    acts.push(x.iter().map(|&v| q.x.quantize(v)));
                }
                let at = (n * seqs.steps + t) * width;
                acts.push(states[l].h[at..at + width].iter().map(|&v| q.h.quantize(v)));
            }
        }
    }
    Ok((weights, acts))
}

/// Measures weights and activations for each group size: the widths are found on the GPU
/// (`shaders/groups.wgsl`) when `engine` is one, else on the CPU; the same numbers either way.
/// Results: for each size, weights then activations.
pub fn measure(
    engine: &Engine,
    model: &Model,
    seqs: &Sequences,
    input_name: &str,
    base: PrecisionConfig,
    sizes: &[usize],
) -> Result<Vec<GroupStats>, TraceError> {
    let (weights, acts) = collect(engine, model, seqs, input_name, base)?;
    let mut out = Vec::new();
    for &g in sizes {
        for (kind, v, bits) in [
            ("weights", &weights, base.w.bits()),
            ("activations", &acts, base.a.bits()),
        ] {
            out.push(match engine {
                Engine::Gpu(ctx) => {
                    let mut s = GroupStats::new(kind, g, bits);
                    for (width, len, nonzero) in
                        ctx.group_widths(&model.name, &v.codes, &v.lens, g, bits)?
                    {
                        s.add_group(width, len, nonzero);
                    }
                    s
                }
                Engine::Cpu => v.stats(kind, g, bits),
            });
        }
    }
    Ok(out)
}

/// Header and rows of groups.csv.
pub fn rows(stats: &[GroupStats]) -> (Vec<String>, Vec<Vec<String>>) {
    let max_bits = stats.iter().map(|s| s.base_bits).max().unwrap_or(0);
    let mut header: Vec<String> = [
        "tensor",
        "group_size",
        "base_bits",
        "groups",
        "values",
        "mean_width_bits",
        "footprint_ratio",
        "footprint_ratio_zero_bitmap",
    ]
    .map(String::from)
    .to_vec();
    header.extend((1..=max_bits).map(|w| format!("frac_groups_width_{w}")));
    let rows = stats
        .iter()
        .map(|s| {
            let groups: u64 = s.hist.iter().sum();
            let mut r = vec![
                s.kind.to_string(),
                s.group_size.to_string(),
                s.base_bits.to_string(),
                groups.to_string(),
                s.values.to_string(),
                format!("{}", s.mean_width()),
                format!("{}", s.ratio(false)),
                format!("{}", s.ratio(true)),
            ];
            r.extend((0..max_bits as usize).map(|i| {
                format!(
                    "{}",
                    s.hist.get(i).copied().unwrap_or(0) as f64 / groups.max(1) as f64
                )
            }));
            r
        })
        .collect();
    (header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_leading_one_plus_sign() {
        assert_eq!(value_width(0), 1);
        assert_eq!(value_width(-1), 1);
        assert_eq!(value_width(1), 2);
        assert_eq!(value_width(-2), 2);
        assert_eq!(value_width(3), 3);
        assert_eq!(value_width(-4), 3);
        assert_eq!(value_width(127), 8);
        assert_eq!(value_width(-128), 8);
        assert_eq!(value_width(i16::MAX as i32), 16);
    }

    #[test]
    fn footprint_of_a_hand_made_tensor() {
        let mut s = GroupStats::new("t", 4, 16);
        // Group 1: widths 2,1,3,1 -> 3 bits; group 2: all zero -> 1 bit.
        s.add(&[1, 0, 3, -1, 0, 0, 0, 0]);
        assert_eq!(s.hist[2], 1);
        assert_eq!(s.hist[0], 1);
        // Plain: (4 + 4*3) + (4 + 4*1) = 24 bits; bitmap: 4+4+3*3 = 17 and 4+4+0 = 8, so the
        // best per group is 16 + 8.
        assert_eq!(s.bits_plain, 24);
        assert_eq!(s.bits_best, 16 + 8);
        assert_eq!(s.ratio(false), 24.0 / 128.0);
        assert_eq!(s.mean_width(), 2.0);
    }
}
