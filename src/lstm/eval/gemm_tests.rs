//! Tests of [`super`]: every instruction set the machine has against the scalar loop (f32
//! flushing, f32 fused on narrow operands, f64 plain and fused, f32 weights in f64),
//! [`Mode::Fma`] against a loop of `mul_add`, and the zero-start entry.

use super::*;
use proptest::prelude::*;

/// The oracle: C + A·B in k order, one rounded multiply and one rounded add per term, never
/// fused, each flushed as NUMERICS.md §5 says (f32; `ftz` is the identity for f64).
fn scalar<T: Elem>(a: &[T], rows: usize, k: usize, b: &[T], cols: usize, c0: &[T]) -> Vec<T> {
    let mut c = c0.to_vec();
    for r in 0..rows {
        for j in 0..cols {
            let mut s = c[r * cols + j];
            for kk in 0..k {
                s = (s + (a[r * k + kk] * b[kk * cols + j]).ftz()).ftz();
            }
            c[r * cols + j] = s;
        }
    }
    c
}

/// The [`Mode::Fma`] oracle: C + A·B in k order, one correctly rounded `mul_add` a term.
fn fma_loop<T: Elem>(a: &[T], rows: usize, k: usize, b: &[T], cols: usize, c0: &[T]) -> Vec<T> {
    let mut c = c0.to_vec();
    for r in 0..rows {
        for j in 0..cols {
            for kk in 0..k {
                c[r * cols + j] = a[r * k + kk].mul_add(b[kk * cols + j], c[r * cols + j]);
            }
        }
    }
    c
}

/// Starting from +0 (`from_zero`) ignores what C held (NaN here): the scalar loop's bits from
/// +0, every ISA, shapes that do not divide the tiles, and an empty k range; `gemm_new` too.
#[test]
fn from_zero_equals_gemm_on_zeros() {
    for (rows, k, cols) in [
        (1, 3, 16),
        (3, 0, 16),
        (33, 300, 32),
        (7, 257, 48),
        (25, 1, 16),
    ] {
        let a: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * cols).map(|i| (i as f32 * 0.11).cos()).collect();
        let packed = Packed::new(&a, rows, k);
        let mode = Mode::choose::<f32>(&packed.span, &fused::span(&b));
        let want = scalar(&a, rows, k, &b, cols, &vec![0.0; rows * cols]);
        for isa in Isa::all_here() {
            let mut got = vec![f32::NAN; rows * cols];
            gemm_in(
                isa,
                &packed,
                0,
                k,
                &b,
                cols,
                cols,
                as_uninit(&mut got),
                cols,
                mode,
                true,
            );
            let same = want
                .iter()
                .zip(&got)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{isa:?} {rows}x{k}x{cols}");
        }
        // Into a new buffer that is never cleared first.
        let got = gemm_new(&packed, &b, cols, cols, mode);
        assert_eq!(got.len(), rows * cols);
        let same = want
            .iter()
            .zip(&got)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "gemm_new {rows}x{k}x{cols}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn equals_the_scalar_loop(rows in 1usize..200, k in 0usize..600, colblocks in 1usize..3,
                              seed in any::<u64>(), tiny in any::<bool>()) {
        let cols = colblocks * COL_ALIGN;
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5 };
        // Tiny operands make subnormal products and partial sums (the flushing kernel).
        let scale = if tiny { 1e-19 } else { 1.0 };
        let a: Vec<f32> = (0..rows * k).map(|_| next() * scale).collect();
        let b: Vec<f32> = (0..k * cols).map(|_| next() * scale).collect();
        let c0: Vec<f32> = (0..rows * cols).map(|_| if tiny { 0.0 } else { next() }).collect();
        let want = scalar(&a, rows, k, &b, cols, &c0);
        let packed = Packed::new(&a, rows, k);
        let mode = Mode::choose::<f32>(&packed.span, &fused::span(&b));
        for isa in Isa::all_here() {
            let mut got = c0.clone();
            gemm_on(isa, &packed, 0, k, &b, cols, cols, &mut got, cols, mode);
            let same = want.iter().zip(&got).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "{:?}", isa);
        }
    }

    #[test]
    fn f64_equals_the_scalar_loop(rows in 1usize..200, k in 0usize..600, colblocks in 1usize..3,
                                  seed in any::<u64>()) {
        let cols = colblocks * COL_ALIGN;
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5 };
        let a: Vec<f64> = (0..rows * k).map(|_| next()).collect();
        let b: Vec<f64> = (0..k * cols).map(|_| next()).collect();
        let c0: Vec<f64> = (0..rows * cols).map(|_| next()).collect();
        let want = scalar(&a, rows, k, &b, cols, &c0);
        let packed = Packed::new(&a, rows, k);
        for isa in Isa::all_here() {
            let mut got = c0.clone();
            gemm_on(isa, &packed, 0, k, &b, cols, cols, &mut got, cols, Mode::Plain);
            let same = want.iter().zip(&got).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "{:?}", isa);
        }
    }

    /// `Mode::Fma` on full-precision operands (products not exact): every instruction set
    /// gives the bits of a scalar loop of correctly rounded `mul_add`, f64 and f32.
    #[test]
    fn fma_equals_the_scalar_mul_add_loop(rows in 1usize..100, k in 0usize..400,
                                          colblocks in 1usize..3, seed in any::<u64>()) {
        let cols = colblocks * COL_ALIGN;
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5 };
        let a: Vec<f64> = (0..rows * k).map(|_| next()).collect();
        let b: Vec<f64> = (0..k * cols).map(|_| next()).collect();
        let c0: Vec<f64> = (0..rows * cols).map(|_| next()).collect();
        let want = fma_loop(&a, rows, k, &b, cols, &c0);
        let plain = scalar(&a, rows, k, &b, cols, &c0);
        // Full-precision products round: the fused loop is another result (so the check
        // below could not pass on the plain kernel).
        prop_assume!(k < 8 || want.iter().zip(&plain).any(|(x, y)| x != y));
        let packed = Packed::new(&a, rows, k);
        let (a32, b32, c32): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            a.iter().map(|&v| v as f32).collect(),
            b.iter().map(|&v| v as f32).collect(),
            c0.iter().map(|&v| v as f32).collect(),
        );
        let want32 = fma_loop(&a32, rows, k, &b32, cols, &c32);
        let packed32 = Packed::new(&a32, rows, k);
        for isa in Isa::all_here() {
            let mut got = c0.clone();
            gemm_on(isa, &packed, 0, k, &b, cols, cols, &mut got, cols, Mode::Fma);
            let same = want.iter().zip(&got).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "f64 {:?}", isa);
            let mut got = c32.clone();
            gemm_on(isa, &packed32, 0, k, &b32, cols, cols, &mut got, cols, Mode::Fma);
            let same = want32.iter().zip(&got).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "f32 {:?}", isa);
        }
    }

    /// f32 weights in an f64 product (the reference's recurrent product), widened exactly as
    /// they are read: every instruction set gives the bits of the scalar loops on the widened
    /// weights, plain (a multiply, then an add) and [`Mode::Fma`] (one `mul_add` a term).
    #[test]
    fn f32_weights_in_f64_equal_the_scalar_loops(rows in 1usize..100, k in 0usize..400,
                                                 colblocks in 1usize..3, seed in any::<u64>()) {
        let cols = colblocks * COL_ALIGN;
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5 };
        let a32: Vec<f32> = (0..rows * k).map(|_| next() as f32).collect();
        let a: Vec<f64> = a32.iter().map(|&v| v as f64).collect();
        let b: Vec<f64> = (0..k * cols).map(|_| next()).collect();
        let c0: Vec<f64> = (0..rows * cols).map(|_| next()).collect();
        let plain = scalar(&a, rows, k, &b, cols, &c0);
        let fma = fma_loop(&a, rows, k, &b, cols, &c0);
        let packed = Packed::new(&a32, rows, k);
        for isa in Isa::all_here() {
            for (mode, want) in [(Mode::Plain, &plain), (Mode::Fma, &fma)] {
                let mut got = c0.clone();
                gemm_on(isa, &packed, 0, k, &b, cols, cols, &mut got, cols, mode);
                let same = want.iter().zip(&got).all(|(x, y)| x.to_bits() == y.to_bits());
                prop_assert!(same, "{:?} {:?}", isa, mode);
            }
        }
    }

    /// Operands of few significant bits (fp16-, bf16-, fp8-like): the fused kernel is
    /// chosen and gives the scalar loop's bits; so does the plain one.
    #[test]
    fn fused_equals_the_scalar_loop(rows in 1usize..100, k in 0usize..600,
                                    colblocks in 1usize..3, seed in any::<u64>(),
                                    a_bits in 1u32..=12, b_bits in 1u32..=12) {
        let cols = colblocks * COL_ALIGN;
        let mut s = seed | 1;
        let mut next = |bits: u32| {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            let v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0;
            f32::from_bits(v.to_bits() & !((1u32 << (24 - bits)) - 1))
        };
        let a: Vec<f32> = (0..rows * k).map(|_| next(a_bits)).collect();
        let b: Vec<f32> = (0..k * cols).map(|_| next(b_bits)).collect();
        let c0: Vec<f32> = (0..rows * cols).map(|_| next(24)).collect();
        let want = scalar(&a, rows, k, &b, cols, &c0);
        let packed = Packed::new(&a, rows, k);
        let (sa, sb) = (packed.span, fused::span(&b));
        let mode = Mode::choose::<f32>(&sa, &sb);
        // Tiny products (below 2^-101) cannot occur at these magnitudes... unless a value
        // is very small; then the flushing kernel is the right choice.
        if no_subnormals(sa.min_nonzero, sb.min_nonzero) {
            prop_assert_eq!(mode, Mode::Fused);
        }
        for isa in Isa::all_here() {
            for m in [mode, Mode::Flush] {
                let mut got = c0.clone();
                gemm_on(isa, &packed, 0, k, &b, cols, cols, &mut got, cols, m);
                let same = want.iter().zip(&got).all(|(x, y)| x.to_bits() == y.to_bits());
                prop_assert!(same, "{:?} {:?}", isa, m);
            }
        }
    }

    /// f32 values times f32 values in f64 (the reference's input products): fused.
    #[test]
    fn f64_fused_equals_the_scalar_loop(rows in 1usize..60, k in 0usize..300,
                                        colblocks in 1usize..3, seed in any::<u64>()) {
        let cols = colblocks * COL_ALIGN;
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32 as f64 };
        let a: Vec<f64> = (0..rows * k).map(|_| next()).collect();
        let b: Vec<f64> = (0..k * cols).map(|_| next()).collect();
        let c0: Vec<f64> = (0..rows * cols).map(|_| next() / 3.0).collect();
        let want = scalar(&a, rows, k, &b, cols, &c0);
        let packed = Packed::new(&a, rows, k);
        let mode = Mode::choose::<f64>(&packed.span, &fused::span(&b));
        prop_assert_eq!(mode, Mode::Fused);
        for isa in Isa::all_here() {
            let mut got = c0.clone();
            gemm_on(isa, &packed, 0, k, &b, cols, cols, &mut got, cols, mode);
            let same = want.iter().zip(&got).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "{:?}", isa);
        }
    }
}

/// The fused kernels on the engine's awkward shapes: rows (4H) 1, 3, 33; k 1, 3, 33, 257;
/// lanes 1, 7, 65 padded with zero lanes to whole strips, as the engine lays them out. f32
/// operands of 11 significant bits (fp16-like) and f64 operands holding f32 values.
#[test]
fn fused_on_awkward_shapes() {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
    };
    let narrow = |v: f32| f32::from_bits(v.to_bits() & !((1u32 << 13) - 1));
    for rows in [1, 3, 33] {
        for k in [1, 3, 33, 257] {
            for lanes in [1usize, 7, 65] {
                let cols = lanes.div_ceil(COL_ALIGN) * COL_ALIGN;
                let a: Vec<f32> = (0..rows * k).map(|_| narrow(next())).collect();
                let b: Vec<f32> = (0..k * cols)
                    .map(|i| {
                        if i % cols < lanes {
                            narrow(next())
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let c0: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
                let want = scalar(&a, rows, k, &b, cols, &c0);
                let packed = Packed::new(&a, rows, k);
                let mode = Mode::choose::<f32>(&packed.span, &fused::span(&b));
                assert_eq!(mode, Mode::Fused, "{rows}x{k}x{lanes}");
                // The same operands in f64: products of f32 values, exact there too.
                let (a64, b64): (Vec<f64>, Vec<f64>) = (
                    a.iter().map(|&v| v as f64 * 1.25).collect(),
                    b.iter().map(|&v| v as f64).collect(),
                );
                let c64: Vec<f64> = c0.iter().map(|&v| v as f64).collect();
                let want64 = scalar(&a64, rows, k, &b64, cols, &c64);
                let packed64 = Packed::new(&a64, rows, k);
                let mode64 = Mode::choose::<f64>(&packed64.span, &fused::span(&b64));
                assert_eq!(mode64, Mode::Fused);
                for isa in Isa::all_here() {
                    let mut got = c0.clone();
                    gemm_on(isa, &packed, 0, k, &b, cols, cols, &mut got, cols, mode);
                    let same = want
                        .iter()
                        .zip(&got)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "f32 {isa:?} {rows}x{k}x{lanes}");
                    let mut got = c64.clone();
                    gemm_on(
                        isa, &packed64, 0, k, &b64, cols, cols, &mut got, cols, mode64,
                    );
                    let same = want64
                        .iter()
                        .zip(&got)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "f64 {isa:?} {rows}x{k}x{lanes}");
                }
            }
        }
    }
}
