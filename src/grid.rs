//! Points of `start:stop:count` and `log:start:stop:count` ranges, shared by sweep ranges
//! (`sweep::ranges`) and policy threshold grids (`dynamic`): one formula, so both agree value
//! for value and both survive ratios that overflow; and the rounding they share.

/// `v` rounded to 12 significant digits: 0.45, not 0.44999999999999996, in a CSV.
pub fn round12(v: f64) -> f64 {
    format!("{v:.11e}").parse().unwrap_or(v)
}

/// The fraction of the way point `k` of `count` stands (0 for a single point).
fn fraction(k: usize, count: usize) -> f64 {
    match count {
        1 => 0.0,
        n => k as f64 / (n - 1) as f64,
    }
}

/// `count` points from `start` to `stop` evenly spaced, each rounded ([`round12`]).
pub fn linear_points(start: f64, stop: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|k| round12(start + (stop - start) * fraction(k, count)))
        .collect()
}

/// `count` points from `start` to `stop` (both > 0) evenly spaced in their logarithms, each
/// rounded ([`round12`]). The ratio of
/// two finite numbers can overflow (1e200 / 1e-200 is inf, and every point past the first
/// would be inf) or underflow to 0: such ranges are stepped through the logarithms instead.
pub fn log_points(start: f64, stop: f64, count: usize) -> Vec<f64> {
    let ratio = stop / start;
    let (ln_a, ln_b) = (start.ln(), stop.ln());
    let at = |f: f64| {
        if ratio.is_normal() {
            start * ratio.powf(f)
        } else {
            (ln_a + (ln_b - ln_a) * f).exp()
        }
    };
    (0..count)
        .map(|k| round12(at(fraction(k, count))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::log_points;

    #[test]
    fn points_are_even_in_logarithms_and_rounded() {
        assert_eq!(log_points(1.0, 100.0, 3), [1.0, 10.0, 100.0]);
        assert_eq!(log_points(4.0, 4.0, 3), [4.0, 4.0, 4.0]);
        assert_eq!(log_points(2.0, 8.0, 1), [2.0]);
        assert_eq!(log_points(100.0, 1.0, 3), [100.0, 10.0, 1.0]);
        assert_eq!(log_points(0.001, 1.0, 4), [0.001, 0.01, 0.1, 1.0]);
    }

    #[test]
    fn ratios_that_overflow_or_underflow_step_through_logarithms() {
        assert_eq!(
            log_points(1e-200, 1e200, 5),
            [1e-200, 1e-100, 1.0, 1e100, 1e200]
        );
        assert_eq!(log_points(1e200, 1e-200, 3), [1e200, 1.0, 1e-200]);
        let tiny = log_points(f64::MIN_POSITIVE, f64::MAX, 7);
        assert!(tiny.iter().all(|v| v.is_finite() && *v > 0.0), "{tiny:?}");
        assert!(tiny.windows(2).all(|w| w[0] < w[1]), "{tiny:?}");
    }
}
