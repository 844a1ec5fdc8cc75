//! Which float lanes `step_lanes` runs with one fma per term (`CellGpu::fused`): those
//! whose formats make every product exact and keep every sum normal, and no others; and the
//! exponent bound above which it runs them unflushed (`plain_exponent`). (tests/gpu.rs
//! checks that the lanes agree with the CPU bit for bit; lavapipe's `fma` is not fused, so
//! there the choice itself must be checked.)

use super::*;
use crate::format::parse_config_list;
use crate::lstm::builtin::{build, SplitMix64};
use crate::lstm::eval;
use crate::lstm::npy::Sequences;

/// `fused` of every layer's first cell for each config of `configs` on the tiny builtin model,
/// with its input finite or holding one NaN.
fn fused_of(configs: &str, nan: bool) -> Vec<[u32; 2]> {
    let m = build("tiny").unwrap();
    let mut rng = SplitMix64::new(7);
    let data: Vec<f32> = (0..2 * 3 * m.input_size()).map(|_| rng.normal()).collect();
    let mut x = Sequences::new("x", [2, 3, m.input_size()], data, true).unwrap();
    let configs = parse_config_list(configs).unwrap();
    let plans = eval::prepare(&m, &x, "x", &configs).unwrap();
    // `Sequences::new` refuses non-finite values, so the NaN is put in afterwards.
    if nan {
        x.data[5] = f32::NAN;
    }
    let finite = x.data.iter().all(|v| v.is_finite());
    plans
        .iter()
        .map(|p| [0, 1].map(|l| layer_upload(&[p], l, true, finite, true).cells[0].fused))
        .collect()
}

#[test]
fn narrow_float_lanes_fuse_and_others_do_not() {
    // fp16 x fp16: 11 + 11 bits, products >= 2^-48; fp8: 4 + 4 bits; fx8 weights x fp16: at
    // most 7 + 11. bf16 values reach 2^-126, so products may underflow; fp32's 24 + 24 bits
    // round; fixed point runs the integer datapath.
    let got = fused_of("fp16;fp8e4m3;fp8e5m2;w=fx8,a=fp16;bf16;fp32;fx8", false);
    assert_eq!(
        got,
        [[3, 3], [3, 3], [3, 3], [3, 3], [0, 0], [0, 0], [0, 0]]
    );
    // A NaN in the input may reach any state: nothing fuses. (Defensive: `Sequences::new`
    // refuses non-finite values, so today no run meets one.)
    assert!(fused_of("fp16;fp8e4m3", true).iter().all(|f| *f == [0, 0]));
}

#[test]
fn wide_codes_split_into_bytes_only_where_it_pays_and_never_overflow() {
    // fx16 x fx16: one whole product a chunk; split, 255 of each byte's products.
    assert_eq!(split_chunk(16, 16, chunk(30)), Some(255));
    // Chunks long enough already (fx12: 511), codes too narrow or too wide to split.
    assert_eq!(split_chunk(12, 12, chunk(22)), None);
    assert_eq!(split_chunk(16, 9, 1), None);
    assert_eq!(split_chunk(16, 17, 1), None);
    // A full chunk of the largest products of either byte stays inside an i32, for every
    // weight width: |w| <= 2^(w_bits - 1), |x >> 8| <= 128, x & 255 <= 255.
    for w_bits in 2..=16u32 {
        for x_bits in 10..=16u32 {
            let Some(n) = split_chunk(w_bits, x_bits, 1) else {
                panic!("w {w_bits} x {x_bits}: not split");
            };
            let w = 1i64 << (w_bits - 1);
            assert!(n as i64 * w * 255 <= i32::MAX as i64, "w {w_bits}: {n}");
            assert!(n as i64 * w * 128 <= i32::MAX as i64, "w {w_bits}: {n}");
        }
    }
}

#[test]
fn unflushed_sums_only_where_every_product_stays_above_the_bound() {
    // Against the definition: with the smallest non-zero |w| = m, a step runs unflushed when
    // every non-zero word's exponent field e is at least `plain_exponent`; the smallest such
    // word, 2^(e - 127), times m must then be at least 2^-101 (exact in f64), and one exponent
    // lower the bound from exponents alone (2^(e - 127) x 2^(ew - 127)) must fail: sound, and
    // conservative by less than one binade of the weight. Every weight exponent, several
    // significands, subnormal and zero weights.
    let bound = 2f64.powi(-101);
    for ew in 1..=254u32 {
        for mant in [0u32, 1, 0x40_0000, 0x7f_ffff] {
            let m = f32::from_bits(ew << 23 | mant);
            let w = [0.0, -m, 2.0 * m.min(f32::MAX / 2.0), 0.0];
            let need = plain_exponent(&w);
            assert!((1..=255).contains(&need), "m {m:e}: {need}");
            for e in need..=254 {
                let x = 2f64.powi(e as i32 - 127);
                assert!(
                    x * m as f64 >= bound,
                    "m {m:e}, e {e}: product below 2^-101"
                );
            }
            if need > 1 {
                let below = (need - 1) as i32 - 127 + ew as i32 - 127;
                assert!(below < -101, "m {m:e}: {need} is more than one binade late");
            }
        }
    }
    // A subnormal weight: never (no word bounds its products); no non-zero weight: any
    // normal word (every product is 0), never a subnormal one (exponent field 0).
    assert_eq!(plain_exponent(&[1.0, f32::from_bits(1)]), NEVER_PLAIN);
    const { assert!(NEVER_PLAIN > 255) };
    assert_eq!(plain_exponent(&[0.0, -0.0]), 1);
    assert_eq!(plain_exponent(&[]), 1);
}
