//! Scales: round ticks inside the span, and finite ends, pixels and few ticks for any finite
//! data; the palette.

use super::*;

#[test]
fn scales_map_ends_and_ticks_are_round_and_inside() {
    let s = Scale::fit(&[0.0, 10.0], 0.0, 100.0, false);
    let (a, b) = (s.px(0.0).expect("in"), s.px(10.0).expect("in"));
    assert!(a > 0.0 && b < 100.0 && a < b);
    let t = s.ticks(5);
    assert_eq!(t, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    let l = Scale::fit(&[1e-5, 0.0, 1e-1], 100.0, 0.0, true);
    assert!(l.px(0.0).is_none());
    assert_eq!(l.ticks(10), vec![1e-5, 1e-4, 1e-3, 1e-2, 1e-1]);
    assert_eq!(l.ticks(2), vec![1e-5, 1e-3, 1e-1]);
    // Inside one decade: 1-2-5 ticks, or the two ends.
    let d = Scale::fit(&[1.1e-6, 6e-6], 100.0, 0.0, true);
    let t = d.ticks(5);
    assert_eq!(t.len(), 2);
    assert!((t[0] / 2e-6 - 1.0).abs() < 1e-12 && (t[1] / 5e-6 - 1.0).abs() < 1e-12);
    let e = Scale::fit(&[1.1e-6, 1.3e-6], 100.0, 0.0, true);
    let t = e.ticks(5);
    assert_eq!(t.len(), 2);
    assert!(t[0] >= 1.09e-6 && t[1] <= 1.31e-6 && t[0] < t[1], "{t:?}");
    let one = Scale::fit(&[3.0], 0.0, 10.0, false);
    assert!(one.px(3.0).is_some_and(|p| (p - 5.0).abs() < 1e-9));
}

/// Values at the ends of f64: the largest, the smallest normal and subnormal, zero,
/// neighbours one ulp apart.
fn extremes() -> Vec<f64> {
    let big = [
        f64::MAX,
        f64::MAX / 2.0,
        1.79e308,
        1e308,
        9e307,
        1e300,
        1.5,
        1.0,
    ];
    let small = [f64::MIN_POSITIVE, 5e-324, 1e-323, 1e-310, 1e-300];
    let mut v: Vec<f64> = big.iter().chain(&small).flat_map(|&x| [x, -x]).collect();
    v.extend([0.0, -0.0, 1.0 + f64::EPSILON, 1e300 * (1.0 + f64::EPSILON)]);
    v
}

/// What every scale must give for finite data: finite ends with a finite, positive span
/// holding the data (unless the data itself spans more than f64::MAX), a bounded number of
/// finite ticks, and a finite pixel for every value.
fn check_scale(values: &[f64], log: bool) {
    let s = Scale::fit(values, 0.0, 500.0, log);
    assert!(s.lo.is_finite() && s.hi.is_finite(), "{values:?}: {s:?}");
    assert!(
        s.hi - s.lo > 0.0 && (s.hi - s.lo).is_finite(),
        "{values:?}: {s:?}"
    );
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, -f64::MAX), |(a, b), &v| (a.min(v), b.max(v)));
    if !log && (hi - lo).is_finite() {
        // Up to rounding: -1.5 beside f64::MAX is lost in the middle's last bit.
        let ulps = (s.hi - s.lo) * 1e-15;
        assert!(s.lo - ulps <= lo && hi <= s.hi + ulps, "{values:?}: {s:?}");
    }
    for n in [1, 5, 10] {
        let t = s.ticks(n);
        assert!(t.len() <= 4 * n + 4, "{values:?}: {} ticks", t.len());
        assert!(t.iter().all(|v| v.is_finite()), "{values:?}: {t:?}");
    }
    for &v in values {
        if let Some(p) = s.px(v) {
            assert!(p.is_finite(), "{values:?}: px({v}) = {p}");
        }
    }
}

#[test]
fn scales_stay_finite_and_ticks_bounded_for_extreme_values() {
    let e = extremes();
    for log in [false, true] {
        for &a in &e {
            check_scale(&[a], log);
            for &b in &e {
                check_scale(&[a, b], log);
            }
        }
    }
    // The reported case: 0 and 1.79e308 on one axis.
    let s = Scale::fit(&[1.79e308, 0.0], 0.0, 100.0, false);
    let (a, b) = (s.px(0.0).expect("in"), s.px(1.79e308).expect("in"));
    assert!((0.0..=100.0).contains(&a) && (0.0..=100.0).contains(&b) && a < b);
}

proptest::proptest! {
    #[test]
    fn scales_stay_finite_for_any_finite_values(
        v in proptest::collection::vec(
            proptest::num::f64::NORMAL
                | proptest::num::f64::SUBNORMAL
                | proptest::num::f64::ZERO
                | proptest::num::f64::POSITIVE
                | proptest::num::f64::NEGATIVE,
            1..4,
        ),
        log in proptest::bool::ANY,
    ) {
        let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
        if !v.is_empty() {
            check_scale(&v, log);
        }
    }
}

#[test]
fn colours_run_from_dark_to_light() {
    assert_eq!(sequential(0.0), "#440154");
    assert_eq!(sequential(1.0), "#fde725");
    assert_eq!(sequential(f64::NAN), "#440154");
}
