//! Which float lanes `step_lanes` runs with one fma per term (`CellGpu::fused`): those
//! whose formats make every product exact and keep every sum normal, and no others. (tests/gpu.rs
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
        .map(|p| [0, 1].map(|l| layer_upload(&[p], l, true, finite).cells[0].fused))
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
