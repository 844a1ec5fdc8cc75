//! Throughput of the engine's product kernels on the 1024 layer's shapes (4H x H = 4096 x
//! 1024 weights): the float64 reference's products (`Mode::Fma`) and the narrow floats' fused
//! f32 products, against 16 columns (one step's recurrent product for 16 sequences) and 800
//! (the input products of 50 steps); and the packing of a 4096 x 1024 matrix: AMX codes, f32
//! panels, f32 weights into the reference's f64 panels, 12-bit codes for `vpdpwssd` and 8-bit
//! codes for `vpdpbusd`; and, to read those against, the
//! machine's peak: a loop of independent AVX-512 f32 FMAs on registers only (`peak`, one
//! thread; run it with `RAYON_NUM_THREADS=1 taskset -c 1` beside the same for the products).
//! Criterion reports elements/s = multiply-adds per second (bytes/s of weights for packing).
//!
//! cargo bench --bench kernels

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lstm_dse::lstm::eval::amx::PackedAmx;
use lstm_dse::lstm::eval::gemm::{self, Mode, Packed};
use lstm_dse::lstm::eval::intgemm::PackedI16;
use lstm_dse::lstm::eval::intgemm8::PackedI8;

const ROWS: usize = 4096;
const K: usize = 1024;

fn bench(c: &mut Criterion) {
    let a: Vec<f32> = (0..ROWS * K)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 1024.0)
        .collect();
    let (p64, p32) = (
        Packed::new_from(&a, ROWS, K, f64::from),
        Packed::new(&a, ROWS, K),
    );
    let mut group = c.benchmark_group("gemm");
    group.sample_size(10);
    for cols in [16usize, 800] {
        group.throughput(Throughput::Elements((ROWS * K * cols) as u64));
        let b64: Vec<f64> = (0..K * cols)
            .map(|i| ((i * 31 % 100) as f64 - 50.0) / 64.0)
            .collect();
        let b32: Vec<f32> = b64.iter().map(|&v| v as f32).collect();
        let mut c64 = vec![0.0f64; ROWS * cols];
        let mut c32 = vec![0.0f32; ROWS * cols];
        group.bench_function(format!("f64_fma_{cols}_cols"), |b| {
            b.iter(|| {
                gemm::gemm(
                    &p64,
                    0,
                    K,
                    black_box(&b64),
                    cols,
                    cols,
                    &mut c64,
                    cols,
                    Mode::Fma,
                )
            })
        });
        group.bench_function(format!("f32_fused_{cols}_cols"), |b| {
            b.iter(|| {
                gemm::gemm(
                    &p32,
                    0,
                    K,
                    black_box(&b32),
                    cols,
                    cols,
                    &mut c32,
                    cols,
                    Mode::Fused,
                )
            })
        });
    }
    group.finish();
    let codes: Vec<i32> = (0..ROWS * K)
        .map(|i| (i * 7919 % 4095) as i32 - 2047)
        .collect();
    let mut group = c.benchmark_group("pack");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((ROWS * K * 4) as u64));
    group.bench_function("amx_4096x1024_12bit", |b| {
        b.iter(|| PackedAmx::new(black_box(&codes), ROWS, K))
    });
    group.bench_function("f32_4096x1024", |b| {
        b.iter(|| Packed::new(black_box(&a), ROWS, K))
    });
    group.bench_function("f64_from_f32_4096x1024", |b| {
        b.iter(|| Packed::new_from(black_box(&a), ROWS, K, f64::from))
    });
    // The integer lanes' packings (each measures the codes' range first).
    group.bench_function("i16_4096x1024_12bit", |b| {
        b.iter(|| PackedI16::new(black_box(&codes), ROWS, K))
    });
    let bytes: Vec<i32> = codes.iter().map(|&c| c >> 4).collect();
    group.bench_function("i8_4096x1024_8bit", |b| {
        b.iter(|| PackedI8::new(black_box(&bytes), ROWS, K))
    });
    group.finish();
}

/// `iters` rounds of 12 independent 16-lane f32 FMA chains on registers (12 chains hide the
/// FMA latency on two ports; no loads or stores in the loop).
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(1.000_000_1), _mm512_set1_ps(0.999_999_9));
    let mut c = [a, b, a, b, a, b, a, b, a, b, a, b];
    for _ in 0..iters {
        for x in &mut c {
            *x = _mm512_fmadd_ps(a, *x, b);
        }
    }
    c.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

/// The machine's f32 FMA peak on one thread (elements/s = multiply-adds per second).
fn peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        const ITERS: u64 = 10_000_000;
        let mut group = c.benchmark_group("peak");
        group.sample_size(10);
        group.throughput(Throughput::Elements(ITERS * 12 * 16));
        // SAFETY: the CPU has AVX-512F.
        group.bench_function("f32_fma_avx512_one_thread", |b| {
            b.iter(|| unsafe { fma_chains(black_box(ITERS)) })
        });
        group.finish();
    }
    let _ = c;
}

criterion_group!(benches, bench, peak);
criterion_main!(benches);
