//! Rounding whole tensors: a per-element function of this module's formats applied over a
//! slice, in parallel chunks, each chunk's loop compiled again for AVX-512 and for AVX2 (the
//! widest the CPU has runs) so that LLVM vectorizes it. The element function is the scalar one, inlined,
//! so every element gets the scalar function's bits whichever build runs; the tests compare
//! the two builds element by element.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// Which build of the element loop runs: compiled for AVX-512, for AVX2, or for the baseline
/// target. The element function is the same scalar code in each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Build {
    Avx512,
    Avx2,
    Baseline,
}

impl Build {
    /// Whether this machine runs the build.
    fn runs_here(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Build::Avx512 => {
                !crate::cpu::portable()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512bw")
            }
            Build::Avx2 => crate::cpu::avx2(),
            Build::Baseline => true,
            #[cfg(not(target_arch = "x86_64"))]
            Build::Avx512 => false,
        }
    }

    /// The widest build this machine runs.
    fn best() -> Build {
        [Build::Avx512, Build::Avx2]
            .into_iter()
            .find(|b| b.runs_here())
            .unwrap_or(Build::Baseline)
    }

    fn chunk<U, V, F: Fn(f32) -> (U, V)>(
        self,
        a: &mut [MaybeUninit<U>],
        b: &mut [MaybeUninit<V>],
        src: &[f32],
        f: &F,
    ) {
        match self {
            // SAFETY (both): `runs_here` checked the CPU before this build was chosen.
            #[cfg(target_arch = "x86_64")]
            Build::Avx512 => unsafe { chunk_avx512(a, b, src, f) },
            #[cfg(target_arch = "x86_64")]
            Build::Avx2 => unsafe { chunk_avx2(a, b, src, f) },
            _ => chunk(a, b, src, f),
        }
    }
}

/// `f` of every element of `src`, in order.
///
/// `f` is `'static`: it owns the format's parameters (a `move` closure) rather than borrowing
/// them. Parameters read through a borrowed reference are loaded again for every element, and
/// the loop stays scalar (fp16, bf16 and fp8 weights rounded that way were 8% of a trace of
/// eight precisions on an AVX2 machine).
pub fn map<U, F>(src: &[f32], f: F) -> Vec<U>
where
    U: Copy + Send,
    F: Fn(f32) -> U + Sync + 'static,
{
    // The second tensor is of `()`: no memory, nothing written.
    map2_on(Build::best(), src, move |x| (f(x), ())).0
}

/// `f` of every element of `src`, in order, as two tensors (one pass over `src` for two
/// results of one computation: a fixed-point code and its value). `f` is `'static` as in
/// [`map`].
pub fn map2<U, V, F>(src: &[f32], f: F) -> (Vec<U>, Vec<V>)
where
    U: Copy + Send,
    V: Copy + Send,
    F: Fn(f32) -> (U, V) + Sync + 'static,
{
    map2_on(Build::best(), src, f)
}

fn map2_on<U, V, F>(build: Build, src: &[f32], f: F) -> (Vec<U>, Vec<V>)
where
    U: Copy + Send,
    V: Copy + Send,
    F: Fn(f32) -> (U, V) + Sync,
{
    // Written once, element by element: no zeroing first (a big buffer's zeroing is a
    // `memset` or page faults).
    let n = src.len();
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    a.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .zip(b.spare_capacity_mut()[..n].par_chunks_mut(CHUNK))
        .zip(src.par_chunks(CHUNK))
        .for_each(|((a, b), s)| build.chunk(a, b, s, &f));
    // SAFETY: every one of the first `n` elements of both was written above.
    unsafe {
        a.set_len(n);
        b.set_len(n);
    }
    (a, b)
}

#[inline(always)]
fn chunk<U, V, F: Fn(f32) -> (U, V)>(
    a: &mut [MaybeUninit<U>],
    b: &mut [MaybeUninit<V>],
    src: &[f32],
    f: &F,
) {
    for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(src) {
        let (u, v) = f(x);
        a.write(u);
        b.write(v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
unsafe fn chunk_avx512<U, V, F: Fn(f32) -> (U, V)>(
    a: &mut [MaybeUninit<U>],
    b: &mut [MaybeUninit<V>],
    src: &[f32],
    f: &F,
) {
    chunk(a, b, src, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_avx2<U, V, F: Fn(f32) -> (U, V)>(
    a: &mut [MaybeUninit<U>],
    b: &mut [MaybeUninit<V>],
    src: &[f32],
    f: &F,
) {
    chunk(a, b, src, f)
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
    fn every_vector_build_gives_the_scalar_bits() {
        let builds = [Build::Avx512, Build::Avx2, Build::Baseline];
        for build in builds.into_iter().filter(|b| b.runs_here()) {
            build_gives_the_scalar_bits(build);
        }
    }

    fn build_gives_the_scalar_bits(build: Build) {
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
            let rounded = map2_on(build, &v, |x| (f.round(x), ())).0;
            for (&x, r) in v.iter().zip(&rounded) {
                let want = f.round(x);
                assert!(
                    r.to_bits() == want.to_bits() || (r.is_nan() && want.is_nan()),
                    "{build:?} {f} {x:e}: {r:e} vs {want:e}"
                );
            }
            if let Resolved::Fixed(q) = f {
                let codes = map2_on(build, &v, |x| (q.quantize(x), ())).0;
                for (&x, &c) in v.iter().zip(&codes) {
                    assert_eq!(c, q.quantize(x), "{build:?} {f} {x:e}");
                }
                let (code, value) = (q.quantizer(), q.dequantizer());
                let (codes2, values) = map2_on(build, &v, |x| {
                    let c = code(x);
                    (c, value(c))
                });
                assert_eq!(codes, codes2, "{build:?} {f}");
                for (r, w) in values.iter().zip(&rounded) {
                    assert_eq!(r.to_bits(), w.to_bits(), "{build:?} {f}");
                }
            }
        }
    }
}
