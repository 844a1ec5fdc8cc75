//! The non-dominated rows of a row-major table of objectives, all minimised.
//!
//! Two objectives: sort by (x, y) and sweep, O(n log n). Three or more: a few "pivot" rows
//! (the best by normalised sum and by sums leaning towards each objective) first discard most of
//! the table in one parallel streaming pass; the survivors are sorted by a key that every
//! dominator precedes (normalised sum, then lexicographic). That sequence is halved
//! recursively (both halves in parallel); below a few hundred rows sort-filter-skyline (SFS)
//! finds the front, and each right half's front rows are checked against a k-d tree over the
//! left half's front ([`DomTree`]) instead of a linear scan, so fronts with most rows on them
//! stay far from quadratic.

use std::cmp::Ordering;

use rayon::prelude::*;

use super::tree::DomTree;

/// Below this many rows, divide and conquer hands over to a plain SFS scan.
const LEAF_ROWS: usize = 256;

/// `a` dominates `b`: no worse in every objective and strictly better in at least one
/// (all objectives minimised). Identical rows do not dominate each other.
#[inline]
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strict = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        strict |= x < y;
    }
    strict
}

/// Indices, ascending, of the rows of `points` (row-major, `dims` objectives per row, every
/// objective minimised: negate the maximised ones) that no other row dominates.
///
/// Rows that are equal in every objective do not dominate each other, so duplicates of a front
/// row are all on the front; the result depends only on the set of rows, not on their order.
/// `-0.0` and `0.0` are equal; infinities are ordinary values. NaN must be rejected by the
/// caller ([`front_of_csv`](super::front_of_csv) does): debug builds assert it, and release
/// builds return an unspecified (but in-bounds) result.
///
/// # Panics
/// If `dims` is 0 or `points.len()` is not a multiple of `dims`.
pub fn front(points: &[f64], dims: usize) -> Vec<usize> {
    assert!(dims > 0, "pareto::front: dims must be at least 1");
    assert!(
        points.len().is_multiple_of(dims),
        "pareto::front: {} values do not make rows of {dims}",
        points.len()
    );
    debug_assert!(
        !points.iter().any(|v| v.is_nan()),
        "pareto::front: NaN objective"
    );
    match dims {
        1 => front_1d(points),
        2 => front_2d(points),
        _ => front_nd(points, dims, LEAF_ROWS),
    }
}

/// Total order that agrees with `<` on non-NaN values (so `-0.0 == 0.0`).
#[inline]
fn cmp_f64(a: f64, b: f64) -> Ordering {
    // Adding 0.0 turns -0.0 into 0.0, which total_cmp would otherwise put first.
    (a + 0.0).total_cmp(&(b + 0.0))
}

fn front_1d(points: &[f64]) -> Vec<usize> {
    let Some(best) = points.iter().copied().min_by(|a, b| cmp_f64(*a, *b)) else {
        return Vec::new();
    };
    (0..points.len())
        .filter(|&i| cmp_f64(points[i], best) == Ordering::Equal)
        .collect()
}

fn front_2d(points: &[f64]) -> Vec<usize> {
    let mut rows: Vec<(f64, f64, usize)> = points
        .chunks_exact(2)
        .enumerate()
        .map(|(i, r)| (r[0], r[1], i))
        .collect();
    rows.par_sort_unstable_by(|a, b| {
        cmp_f64(a.0, b.0)
            .then(cmp_f64(a.1, b.1))
            .then(a.2.cmp(&b.2))
    });
    let mut out = Vec::new();
    // Smallest y among rows of strictly smaller x than the current group.
    let mut best_y: Option<f64> = None;
    let mut i = 0;
    while i < rows.len() {
        let (gx, gy, _) = rows[i];
        let mut end = i + 1;
        while end < rows.len() && cmp_f64(rows[end].0, gx) == Ordering::Equal {
            end += 1;
        }
        // The group's least y leads it; rows of the group with a larger y are dominated by it,
        // and the leaders are dominated iff an earlier group reached a y as small.
        if best_y.is_none_or(|b| cmp_f64(b, gy) == Ordering::Greater) {
            out.extend(
                rows[i..end]
                    .iter()
                    .take_while(|r| cmp_f64(r.1, gy) == Ordering::Equal)
                    .map(|r| r.2),
            );
            best_y = Some(gy);
        }
        i = end;
    }
    out.sort_unstable();
    out
}

/// Per-column affine map onto roughly [0, 1]: a non-decreasing function of each objective, so
/// sums of mapped values never put a dominated row before its dominator.
struct Normaliser {
    lo: Vec<f64>,
    scale: Vec<f64>,
}

impl Normaliser {
    fn new(points: &[f64], dims: usize) -> Self {
        let identity = || (vec![f64::INFINITY; dims], vec![f64::NEG_INFINITY; dims]);
        let (lo, hi) = points
            .par_chunks(dims * 1024)
            .fold(identity, |(mut lo, mut hi), block| {
                for row in block.chunks_exact(dims) {
                    for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                        let v = clamp(v);
                        *l = l.min(v);
                        *h = h.max(v);
                    }
                }
                (lo, hi)
            })
            .reduce(identity, |(mut lo, mut hi), (lo2, hi2)| {
                for (l, l2) in lo.iter_mut().zip(lo2) {
                    *l = l.min(l2);
                }
                for (h, h2) in hi.iter_mut().zip(hi2) {
                    *h = h.max(h2);
                }
                (lo, hi)
            });
        let scale = lo
            .iter()
            .zip(&hi)
            .map(|(l, h)| {
                let s = 1.0 / (h - l);
                if s.is_finite() && s > 0.0 {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        let lo = lo
            .into_iter()
            .map(|l| if l.is_finite() { l } else { 0.0 })
            .collect();
        Normaliser { lo, scale }
    }

    /// Mapped value of objective `j`: >= 0, possibly +inf, never NaN for non-NaN input.
    #[inline]
    fn map(&self, j: usize, v: f64) -> f64 {
        (clamp(v) - self.lo[j]).max(0.0) * self.scale[j]
    }

    #[inline]
    fn sum(&self, row: &[f64]) -> f64 {
        let mut s = 0.0;
        for (j, &v) in row.iter().enumerate() {
            s += self.map(j, v);
        }
        s
    }
}

/// Infinities become the largest finite values so that sums never meet `inf - inf`.
#[inline]
fn clamp(v: f64) -> f64 {
    v.clamp(f64::MIN, f64::MAX)
}

/// Rows that minimise the normalised sum and the sums leaning towards each single objective:
/// cheap to find in one pass, and between them they dominate most of a typical table.
fn pivots(points: &[f64], dims: usize, norm: &Normaliser) -> Vec<usize> {
    let k = dims + 1;
    let block_rows = 1024;
    let none = || vec![(f64::INFINITY, usize::MAX); k];
    let better = |a: (f64, usize), b: (f64, usize)| match cmp_f64(a.0, b.0).then(a.1.cmp(&b.1)) {
        Ordering::Greater => b,
        _ => a,
    };
    let best = points
        .par_chunks(dims * block_rows)
        .enumerate()
        .fold(none, |mut best, (b, block)| {
            for (r, row) in block.chunks_exact(dims).enumerate() {
                let i = b * block_rows + r;
                let mut sum = 0.0;
                for (j, &v) in row.iter().enumerate() {
                    sum += norm.map(j, v);
                }
                best[0] = better(best[0], (sum, i));
                for (j, &v) in row.iter().enumerate() {
                    best[j + 1] = better(best[j + 1], (sum + 3.0 * norm.map(j, v), i));
                }
            }
            best
        })
        .reduce(none, |a, b| {
            a.into_iter().zip(b).map(|(x, y)| better(x, y)).collect()
        });
    let mut out: Vec<usize> = best
        .into_iter()
        .map(|(_, i)| i)
        .filter(|&i| i != usize::MAX)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Positions in `rows` (contiguous, row-major, sorted so that dominators come first) of the
/// rows no earlier row dominates: sort-filter-skyline.
fn sfs(rows: &[f64], dims: usize) -> Vec<usize> {
    let mut window: Vec<f64> = Vec::new();
    let mut out = Vec::new();
    for (p, row) in rows.chunks_exact(dims).enumerate() {
        if !window.chunks_exact(dims).any(|w| dominates(w, row)) {
            window.extend_from_slice(row);
            out.push(p);
        }
    }
    out
}

fn front_nd(points: &[f64], dims: usize, leaf_rows: usize) -> Vec<usize> {
    let n = points.len() / dims;
    if n == 0 {
        return Vec::new();
    }
    let row = |i: usize| &points[i * dims..(i + 1) * dims];
    let norm = Normaliser::new(points, dims);
    let pivots = pivots(points, dims, &norm);
    let survivors: Vec<usize> = (0..n)
        .into_par_iter()
        .with_min_len(1024)
        .filter(|&i| !pivots.iter().any(|&p| dominates(row(p), row(i))))
        .collect();

    // A dominator has a sum no larger (every mapped coordinate no larger, and float addition is
    // monotone) and, on equal sums, comes first lexicographically: the order is a linear
    // extension of dominance, so no row is dominated by a row after it.
    let mut order: Vec<(f64, usize)> = survivors
        .into_par_iter()
        .map(|i| (norm.sum(row(i)), i))
        .collect();
    order.par_sort_unstable_by(|a, b| {
        cmp_f64(a.0, b.0)
            .then_with(|| {
                row(a.1)
                    .iter()
                    .zip(row(b.1))
                    .map(|(x, y)| cmp_f64(*x, *y))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then(a.1.cmp(&b.1))
    });
    let mut sorted = Vec::with_capacity(order.len() * dims);
    for &(_, i) in &order {
        sorted.extend_from_slice(row(i));
    }
    let mut out: Vec<usize> = split_front(&sorted, dims, leaf_rows.max(1))
        .into_iter()
        .map(|p| order[p].1)
        .collect();
    out.sort_unstable();
    out
}

/// Positions, ascending, of the front of `rows` (row-major, in an order that puts every
/// dominator first). Halve, solve both halves in parallel, then drop the right half's front
/// rows that a left-half front row dominates: nothing on the right can dominate a left row,
/// and any left dominator is itself dominated by (or is) a left front row.
fn split_front(rows: &[f64], dims: usize, leaf_rows: usize) -> Vec<usize> {
    let n = rows.len() / dims;
    if n <= leaf_rows {
        return sfs(rows, dims);
    }
    let mid = n / 2;
    let (a, b) = rows.split_at(mid * dims);
    let (mut left, right) = rayon::join(
        || split_front(a, dims, leaf_rows),
        || split_front(b, dims, leaf_rows),
    );
    let tree = DomTree::new(a, dims, &left);
    let survives = |&p: &usize| !tree.dominates_any(&b[p * dims..(p + 1) * dims]);
    let kept: Vec<usize> = if right.len() > 512 {
        right.into_par_iter().filter(survives).collect()
    } else {
        right.into_iter().filter(survives).collect()
    };
    left.extend(kept.into_iter().map(|p| p + mid));
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(points: &[f64], dims: usize) -> Vec<usize> {
        let rows: Vec<&[f64]> = points.chunks_exact(dims).collect();
        (0..rows.len())
            .filter(|&i| !rows.iter().any(|r| dominates(r, rows[i])))
            .collect()
    }

    /// Small integer coordinates force ties and duplicate rows.
    fn table() -> impl Strategy<Value = (usize, Vec<f64>)> {
        (1usize..=6, 0usize..60).prop_flat_map(|(dims, n)| {
            (
                Just(dims),
                proptest::collection::vec((0i32..5).prop_map(f64::from), n * dims),
            )
        })
    }

    /// Signed zeros and infinities mixed with small integers.
    fn special_table() -> impl Strategy<Value = (usize, Vec<f64>)> {
        let value = prop::sample::select(vec![
            f64::NEG_INFINITY,
            -1.0,
            -0.0,
            0.0,
            1.0,
            f64::MAX,
            f64::INFINITY,
        ]);
        (1usize..=6, 0usize..40).prop_flat_map(move |(dims, n)| {
            (
                Just(dims),
                proptest::collection::vec(value.clone(), n * dims),
            )
        })
    }

    fn rows_of(points: &[f64], dims: usize, idx: &[usize]) -> Vec<Vec<f64>> {
        let mut v: Vec<Vec<f64>> = idx
            .iter()
            .map(|&i| points[i * dims..(i + 1) * dims].to_vec())
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_brute_force((dims, points) in table()) {
            let expect = brute(&points, dims);
            prop_assert_eq!(front(&points, dims), expect.clone());
            // The general path, with tiny leaves so the recursion is exercised, for every dims.
            prop_assert_eq!(front_nd(&points, dims, 1), expect.clone());
            prop_assert_eq!(front_nd(&points, dims, 7), expect);
        }

        #[test]
        fn special_values_match_brute_force((dims, points) in special_table()) {
            let expect = brute(&points, dims);
            prop_assert_eq!(front(&points, dims), expect.clone());
            prop_assert_eq!(front_nd(&points, dims, 1), expect.clone());
            prop_assert_eq!(front_nd(&points, dims, 5), expect);
        }

        #[test]
        fn no_front_row_is_dominated((dims, points) in table()) {
            let f = front(&points, dims);
            for &i in &f {
                let a = &points[i * dims..(i + 1) * dims];
                prop_assert!(!points.chunks_exact(dims).any(|r| dominates(r, a)));
            }
            // Every row off the front is dominated by a row on it.
            for (i, r) in points.chunks_exact(dims).enumerate() {
                if f.binary_search(&i).is_err() {
                    prop_assert!(f.iter().any(|&j| dominates(&points[j * dims..(j + 1) * dims], r)));
                }
            }
        }

        #[test]
        fn independent_of_row_order((dims, points) in table(), seed in any::<u64>()) {
            let n = points.len() / dims;
            // Deterministic shuffle from the seed (Fisher-Yates on a splitmix stream).
            let mut perm: Vec<usize> = (0..n).collect();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                perm.swap(i, (z % (i as u64 + 1)) as usize);
            }
            let shuffled: Vec<f64> = perm
                .iter()
                .flat_map(|&i| points[i * dims..(i + 1) * dims].iter().copied())
                .collect();
            let a = front(&points, dims);
            let b = front(&shuffled, dims);
            prop_assert_eq!(rows_of(&points, dims, &a), rows_of(&shuffled, dims, &b));
            // And the same call twice gives the same answer.
            prop_assert_eq!(front(&points, dims), a);
        }
    }

    #[test]
    fn duplicates_and_signed_zero() {
        let pts = [1.0, 2.0, 1.0, 2.0, 2.0, 1.0, 2.0, 2.0, -0.0, 3.0, 0.0, 3.0];
        assert_eq!(front(&pts, 2), vec![0, 1, 2, 4, 5]);
        assert_eq!(front_nd(&pts, 2, 1), vec![0, 1, 2, 4, 5]);
        assert_eq!(front(&[3.0, 1.0, 1.0, 2.0], 1), vec![1, 2]);
        assert!(front(&[], 3).is_empty());
    }

    #[test]
    fn infinities_are_ordinary_values() {
        let inf = f64::INFINITY;
        let pts = [
            -inf, inf, 0.0, //
            0.0, inf, 0.0, //
            inf, -inf, inf, //
            1.0, 1.0, 1.0, //
            inf, inf, inf,
        ];
        assert_eq!(front(&pts, 3), brute(&pts, 3));
        assert_eq!(front_nd(&pts, 3, 1), brute(&pts, 3));
    }

    #[test]
    fn larger_random_tables_match_brute_force() {
        let mut s = 7u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for dims in 2..=5 {
            let pts: Vec<f64> = (0..3000 * dims).map(|_| next()).collect();
            assert_eq!(front(&pts, dims), brute(&pts, dims), "dims {dims}");
            assert_eq!(front_nd(&pts, dims, 50), brute(&pts, dims), "dims {dims}");
        }
    }
}
