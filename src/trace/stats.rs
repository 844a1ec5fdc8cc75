//! Error statistics against a reference (root-mean-square and largest absolute difference,
//! accumulated in f64) and arg-max agreement: shared by the trace summaries and the policy
//! tables, so both report the same quantities the same way.

/// Running sums of |a − b| over any number of slices.
#[derive(Debug, Default, Clone, Copy)]
pub struct ErrorStats {
    sq: f64,
    max: f64,
    n: usize,
}

impl ErrorStats {
    /// The statistics of `n` differences whose squares sum to `sum_sq` and whose largest is
    /// `max_abs` (as the GPU reduction returns them).
    pub fn from_parts(sum_sq: f64, max_abs: f64, n: usize) -> Self {
        ErrorStats {
            sq: sum_sq,
            max: max_abs,
            n,
        }
    }

    /// Adds the differences of two equally long slices: in slice order, each |a − b| in f64,
    /// its square added to the running f64 sum (never fused), the maximum kept as
    /// `f64::max` does (a NaN difference leaves it). `shaders/reduce.wgsl` is the GPU twin.
    pub fn add(&mut self, a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            let d = (*x as f64 - *y as f64).abs();
            self.sq += d * d;
            self.max = self.max.max(d);
        }
        self.n += a.len().min(b.len());
    }

    /// [`ErrorStats::add`] on `N` accumulators at once, each with its own pair of slices: the
    /// same operations in the same order per accumulator (so the same bits), interleaved so
    /// that their dependency chains of f64 adds overlap.
    pub fn add_each<const N: usize>(stats: [&mut ErrorStats; N], pairs: [(&[f32], &[f32]); N]) {
        let len = pairs[0].0.len();
        if pairs.iter().any(|(a, b)| a.len() != len || b.len() != len) {
            for (s, (a, b)) in stats.into_iter().zip(pairs) {
                s.add(a, b);
            }
            return;
        }
        let (mut sq, mut max) = ([0.0f64; N], [0.0f64; N]);
        for i in 0..N {
            (sq[i], max[i]) = (stats[i].sq, stats[i].max);
        }
        for j in 0..len {
            for i in 0..N {
                let d = (pairs[i].0[j] as f64 - pairs[i].1[j] as f64).abs();
                sq[i] += d * d;
                max[i] = max[i].max(d);
            }
        }
        for (i, s) in stats.into_iter().enumerate() {
            (s.sq, s.max) = (sq[i], max[i]);
            s.n += len;
        }
    }

    /// Adds everything another accumulator saw.
    pub fn merge(&mut self, other: &ErrorStats) {
        self.sq += other.sq;
        self.max = self.max.max(other.max);
        self.n += other.n;
    }

    /// Whether anything was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Root-mean-square difference (0 when empty).
    pub fn rmse(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.sq / self.n as f64).sqrt()
        }
    }

    /// Sum of the squared differences.
    pub fn sum_sq(&self) -> f64 {
        self.sq
    }

    /// How many differences were added.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Largest absolute difference.
    pub fn max_abs(&self) -> f64 {
        self.max
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |m, (i, &x)| if x > m.1 { (i, x) } else { m },
        )
        .0
}

/// Fraction of rows of `classes` values whose arg-max equals the reference's.
pub fn top1_agreement(out: &[f32], reference: &[f32], classes: usize) -> f64 {
    let rows = out
        .chunks(classes.max(1))
        .zip(reference.chunks(classes.max(1)));
    let (agree, n) = rows.fold((0usize, 0usize), |(a, n), (x, y)| {
        (a + usize::from(argmax(x) == argmax(y)), n + 1)
    });
    agree as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_each_gives_the_bits_of_add_one_by_one() {
        let mut rng = crate::lstm::builtin::SplitMix64::new(11);
        let v: Vec<Vec<f32>> = (0..8).map(|_| rng.fill(1000, 8.0)).collect();
        let bits = |e: &ErrorStats| (e.sq.to_bits(), e.max.to_bits(), e.n);
        // Four equal lengths (interleaved), and unequal ones (one by one), on running sums.
        for len in [[1000, 1000, 1000, 1000], [1000, 999, 1000, 3]] {
            let mut one = [ErrorStats::from_parts(0.25, 0.5, 7); 4];
            let mut each = one;
            let pairs: [(&[f32], &[f32]); 4] =
                std::array::from_fn(|i| (&v[2 * i][..len[i]], &v[2 * i + 1][..len[i]]));
            for (e, (a, b)) in one.iter_mut().zip(pairs) {
                e.add(a, b);
            }
            let [a, b, c, d] = &mut each;
            ErrorStats::add_each([a, b, c, d], pairs);
            assert_eq!(one.map(|e| bits(&e)), each.map(|e| bits(&e)));
        }
    }
}
