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
