//! Calibration rules (docs/NUMERICS.md §3.1): how an `fx<b>` format without explicit fraction
//! bits picks the range `m` of a tensor known only from data (the layer-0 input x, each
//! layer's h, each direction's pre-activations and c).
//!
//! The calibration run (the float64 reference, each value rounded to f32) records every such
//! value in a [`Histogram`] of |v| keyed by the top 16 bits of its f32 pattern (sign dropped:
//! 8 exponent and 8 mantissa bits, so each bin
//! spans a relative width of at most 2^-8). Counts are integers added in a fixed order, so a
//! rule gives the same format whatever the thread count. Rules:
//!
//! * `max` (default): the largest |v| (exact, kept beside the histogram).
//! * `p<q>` with 0 < q ≤ 100: the smallest bin upper edge below which at least q % of the
//!   non-zero values lie, never above the exact maximum (so `p100` = `max`). Bin 0 (zero and
//!   the smallest f32 subnormals) is left out: those values are 0 in every format, and a tensor
//!   that is mostly zeros (one-hot inputs, padding) must keep the range of its non-zero values.
//! * `mse`: the fraction bits that minimise the squared rounding-and-clipping error over the
//!   histogram (each bin represented by its midpoint, bin 0 left out), searched from the `max`
//!   choice up to 8 more fraction bits; ties keep fewer fraction bits.

use crate::format::{CalRule, Format};

/// Bins of |v| by `bits(|v|) >> 15`.
const BINS: usize = 1 << 16;
const SHIFT: u32 = 15;

/// Counts of |v| per bin, and the exact largest |v|.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    pub max: f32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BINS],
            max: 0.0,
        }
    }
}

impl Histogram {
    /// Records one value (NaN is ignored).
    #[inline]
    pub fn add(&mut self, v: f32) {
        let a = v.abs();
        if a.is_nan() {
            return;
        }
        self.counts[(a.to_bits() >> SHIFT) as usize] += 1;
        self.max = self.max.max(a);
    }

    /// Records every value of `v`.
    pub fn extend(&mut self, v: &[f32]) {
        v.iter().for_each(|&x| self.add(x));
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn upper_edge(bin: usize) -> f32 {
        f32::from_bits((((bin as u32) + 1) << SHIFT) - 1)
    }

    fn midpoint(bin: usize) -> f64 {
        f32::from_bits(((bin as u32) << SHIFT) | (1 << (SHIFT - 1))) as f64
    }

    /// The smallest bin upper edge with at least `q` % of the non-zero values (bins 1..) at or
    /// below it, capped at the exact maximum; 0 when every value is zero.
    pub fn percentile(&self, q: f64) -> f32 {
        let total: u64 = self.counts[1..].iter().sum();
        if total == 0 {
            return 0.0;
        }
        let need = ((q / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (bin, &n) in self.counts.iter().enumerate().skip(1) {
            seen += n;
            if seen >= need {
                return Self::upper_edge(bin).min(self.max);
            }
        }
        self.max
    }

    /// Squared error of `bits`-bit fixed point with `frac` fraction bits over the histogram.
    fn squared_error(&self, bits: u32, frac: i32) -> f64 {
        let scale = 2f64.powi(frac);
        let top = ((1u64 << (bits - 1)) - 1) as f64;
        self.counts
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, &n)| n > 0)
            .map(|(bin, &n)| {
                let v = Self::midpoint(bin).min(self.max as f64);
                let q = (v * scale).round_ties_even().min(top) / scale;
                (q - v) * (q - v) * n as f64
            })
            .sum()
    }

    /// The range `m` that `rule` gives this tensor in `format` (only `fx<b>` formats without
    /// fraction bits depend on it; others get the maximum).
    pub fn range(&self, rule: CalRule, format: Format) -> f32 {
        let Format::Fixed { bits, frac: None } = format else {
            return self.max;
        };
        match rule {
            CalRule::Max => self.max,
            CalRule::Percentile(q) => self.percentile(q.value()),
            CalRule::Mse => {
                let base = format.resolve(self.max).frac().unwrap_or(0);
                let best = (base..=(base + 8).min(30))
                    .map(|f| (f, self.squared_error(bits, f)))
                    .fold(
                        (base, f64::INFINITY),
                        |b, (f, e)| if e < b.1 { (f, e) } else { b },
                    );
                // The m whose §3 resolution is exactly `best.0` fraction bits.
                2f32.powi(bits as i32 - 1 - best.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Percent;

    fn fx(bits: u32) -> Format {
        Format::Fixed { bits, frac: None }
    }

    #[test]
    fn percentile_100_is_the_maximum_and_lower_ones_clip_outliers() {
        let mut h = Histogram::default();
        for k in 0..999 {
            h.add(k as f32 / 1000.0);
        }
        h.add(-900.0);
        assert_eq!(h.range(CalRule::Max, fx(8)), 900.0);
        assert_eq!(
            h.range(CalRule::Percentile(Percent::new(100.0).unwrap()), fx(8)),
            900.0
        );
        let p = h.range(CalRule::Percentile(Percent::new(99.0).unwrap()), fx(8));
        assert!((0.98..1.0).contains(&p), "{p}");
    }

    #[test]
    fn mostly_zero_tensors_keep_the_range_of_their_non_zero_values() {
        // A one-hot input over 256 symbols: 99.6 % exact zeros.
        let mut h = Histogram::default();
        for k in 0..256 * 100 {
            h.add(if k % 256 == 0 { 1.0 } else { 0.0 });
        }
        let p = Percent::new(99.0).unwrap();
        assert_eq!(h.range(CalRule::Percentile(p), fx(8)), 1.0);
        let f = fx(8).resolve(h.range(CalRule::Mse, fx(8))).frac().unwrap();
        // m = 1 (e = 0) gives fx8.7; the zeros cost nothing at any scale.
        assert_eq!(f, 7);
    }

    /// The MSE rule against a brute-force search over the raw values (not the histogram).
    #[test]
    fn mse_matches_a_brute_force_search_on_the_values() {
        let mut rng = crate::lstm::builtin::SplitMix64::new(3);
        for round in 0..20 {
            let scale = [0.01f32, 0.3, 5.0, 120.0][round % 4];
            let v: Vec<f32> = (0..5000)
                .map(|k| rng.normal() * scale * if k % 97 == 0 { 20.0 } else { 1.0 })
                .collect();
            let mut h = Histogram::default();
            h.extend(&v);
            let base = fx(8).resolve(h.max).frac().unwrap();
            let err = |f: i32| -> f64 {
                let top = 127.0f64;
                v.iter()
                    .map(|&x| {
                        let x = (x as f64).abs();
                        let q = (x * 2f64.powi(f)).round_ties_even().min(top) / 2f64.powi(f);
                        (q - x) * (q - x)
                    })
                    .sum()
            };
            let errs: Vec<(i32, f64)> = (base..=base + 8).map(|f| (f, err(f))).collect();
            let best =
                errs.iter()
                    .cloned()
                    .fold((base, f64::INFINITY), |b, e| if e.1 < b.1 { e } else { b });
            let got = fx(8).resolve(h.range(CalRule::Mse, fx(8))).frac().unwrap();
            // The histogram represents each bin by its midpoint (relative width 2^-8): its
            // choice must be the brute-force optimum or within 2 % of its error.
            let got_err = errs.iter().find(|e| e.0 == got).unwrap().1;
            assert!(
                got_err <= best.1 * 1.02,
                "scale {scale}: got f={got} ({got_err}), best f={} ({})",
                best.0,
                best.1
            );
        }
    }

    #[test]
    fn mse_gives_more_fraction_bits_than_max_for_a_heavy_tail() {
        let mut h = Histogram::default();
        // A million values in [-0.25, 0.25) and one outlier at 100: resolving the bulk is worth
        // clipping the outlier.
        for k in 0..1_000_000 {
            h.add(((k % 200) as f32 - 100.0) / 400.0);
        }
        h.add(100.0);
        let m = h.range(CalRule::Mse, fx(8));
        let f_mse = fx(8).resolve(m).frac().unwrap();
        let f_max = fx(8).resolve(h.max).frac().unwrap();
        assert!(f_mse > f_max, "mse {f_mse} max {f_max}");
        // Floats and explicit fraction bits ignore the rule.
        assert_eq!(h.range(CalRule::Mse, Format::Fp32), 100.0);
    }
}
