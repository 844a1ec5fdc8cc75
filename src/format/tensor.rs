//! Rounding whole tensors: a per-element function of this module's formats applied over a
//! slice, in parallel chunks, each chunk's loop compiled a second time for AVX-512 (where the
//! CPU has it) so that LLVM vectorizes it. The element function is the scalar one, inlined,
//! so every element gets the scalar function's bits whichever build runs; the tests compare
//! the two builds element by element.

use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// `f` of every element of `src`, in order.
pub fn map<U, F>(src: &[f32], f: F) -> Vec<U>
where
    U: Copy + Default + Send,
    F: Fn(f32) -> U + Sync,
{
    let mut out = vec![U::default(); src.len()];
    let wide = avx512();
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| {
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: `avx512()` checked the CPU.
                return unsafe { chunk_avx512(o, s, &f) };
            }
            let _ = wide;
            chunk(o, s, &f)
        });
    out
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !crate::cpu::portable()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[inline(always)]
fn chunk<U, F: Fn(f32) -> U>(out: &mut [U], src: &[f32], f: &F) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = f(x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
unsafe fn chunk_avx512<U, F: Fn(f32) -> U>(out: &mut [U], src: &[f32], f: &F) {
    chunk(out, src, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Fixed, FloatFormat, Resolved};

    /// Random bit patterns and the neighbourhood of every power of two, both signs.
    fn values() -> Vec<f32> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut v: Vec<f32> = (0..200_000)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                f32::from_bits((s >> 32) as u32)
            })
            .collect();
        for e in 0..=255u32 {
            for d in 0..8u32 {
                for sign in [0, 1u32 << 31] {
                    v.push(f32::from_bits(sign | (e << 23) | d));
                    v.push(f32::from_bits(sign | (e << 23) | (0x40_0000 ^ d)));
                    v.push(f32::from_bits(sign | (e << 23) | (0x7f_ffff - d)));
                }
            }
        }
        v
    }

    #[test]
    fn the_vector_build_gives_the_scalar_bits() {
        let v = values();
        let mut formats = vec![
            Resolved::Fp32,
            Resolved::Float(FloatFormat::FP16),
            Resolved::Float(FloatFormat::BF16),
            Resolved::Float(FloatFormat::FP8_E4M3),
            Resolved::Float(FloatFormat::FP8_E5M2),
            Resolved::Float(FloatFormat::ieee_like(2, 23).unwrap()),
        ];
        for (bits, frac) in [(8, 7), (16, 12), (6, -3), (12, 20), (2, 0)] {
            formats.push(Resolved::Fixed(Fixed { bits, frac }));
        }
        for f in formats {
            let rounded = map(&v, |x| f.round(x));
            for (&x, r) in v.iter().zip(&rounded) {
                let want = f.round(x);
                assert!(
                    r.to_bits() == want.to_bits() || (r.is_nan() && want.is_nan()),
                    "{f} {x:e}: {r:e} vs {want:e}"
                );
            }
            if let Resolved::Fixed(q) = f {
                let codes = map(&v, |x| q.quantize(x));
                for (&x, &c) in v.iter().zip(&codes) {
                    assert_eq!(c, q.quantize(x), "{f} {x:e}");
                }
            }
        }
    }
}
