//! Tests of [`super`]: the AMX tile products against the plain loop in i64.

use super::super::exact::{plain_product as plain, range, strip_major_rows};
use super::*;
use proptest::prelude::*;

fn check(rows: usize, k: usize, cols: usize, a: &[i32], b: &[i32]) {
    let p = PackedAmx::new(a, rows, k).expect("codes fit i16");
    let want = plain(a, rows, k, b, cols);
    for r in 0..rows {
        for kk in 0..k {
            assert_eq!(p.at(r, kk), a[r * k + kk] as i64);
        }
    }
    if !available() {
        return;
    }
    let mut got = vec![7i64; rows * cols];
    product(&p, b, cols, range(b), &mut got, Layout::RowMajor).expect("codes fit i16");
    assert_eq!(got, want, "rows {rows} k {k} cols {cols}");
    product(&p, b, cols, range(b), &mut got, Layout::StripMajor).expect("codes fit i16");
    let rows_of = strip_major_rows(&got, rows, cols);
    assert_eq!(rows_of, want, "strip-major: rows {rows} k {k} cols {cols}");
}

/// Every sign combination at the largest magnitudes of each width, on shapes that do not
/// divide the tiles, and one k past a 32-bit block.
#[test]
fn extreme_codes_and_awkward_shapes() {
    let ends = [(-128, 127), (-32768, 32767), (-129, 128)];
    for (rows, k, cols) in [
        (1, 1, 16),
        (17, 65, 32),
        (16, 64, 16),
        (3, 0, 16),
        (5, 16_500, 16),
    ] {
        for &(al, ah) in &ends {
            for &(bl, bh) in &ends {
                for (x, y) in [(al, bl), (al, bh), (ah, bl), (ah, bh)] {
                    check(rows, k, cols, &vec![x; rows * k], &vec![y; k * cols]);
                }
            }
        }
    }
}

#[test]
fn codes_wider_than_i16_are_refused() {
    assert!(PackedAmx::new(&[32768], 1, 1).is_none());
    assert!(PackedAmx::new(&[-32769], 1, 1).is_none());
    let p = PackedAmx::new(&[1], 1, 1).unwrap();
    if available() {
        let mut out = vec![5i64; 16];
        let mut b = vec![0; 16];
        b[3] = 40_000;
        assert!(product(&p, &b, 16, range(&b), &mut out, Layout::RowMajor).is_none());
        assert_eq!(out, vec![5; 16], "untouched");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn equals_the_plain_loop(rows in 1usize..40, k in 0usize..300, strips in 1usize..4,
                             a_bits in 1u32..=16, b_bits in 1u32..=16, seed in any::<u64>()) {
        let cols = strips * NR;
        let mut s = seed | 1;
        let mut next = |bits: u32| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let m = 1i64 << (bits - 1);
            ((s >> 20) % (2 * m as u64)) as i64 as i32 - m as i32
        };
        let a: Vec<i32> = (0..rows * k).map(|_| next(a_bits)).collect();
        let b: Vec<i32> = (0..k * cols).map(|_| next(b_bits)).collect();
        check(rows, k, cols, &a, &b);
    }
}
