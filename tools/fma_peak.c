/* The machine's FMA peak, for the engine benchmark's "percent of peak" figures
 * (results/bench/engine.md): ten independent chains of ymm fused multiply-adds, timed.
 *
 *   gcc -O2 -mavx2 -mfma -o /tmp/fma_peak tools/fma_peak.c
 *   /tmp/fma_peak                          # one core
 *   (/tmp/fma_peak & /tmp/fma_peak; wait)  # both cores of a 2-core machine at once
 *
 * Each line: vfmadd231ps instructions a second on that core, and f32 FMAs a second (8 a
 * ymm; f64: half). Ten chains hide the FMA latency (4 cycles, 2 a cycle on Zen 3 and Intel
 * cores since Skylake). */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define STEP(i) a##i = _mm256_fmadd_ps(a##i, b, c);

int main(void) {
    __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2),
           a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5),
           a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8),
           a9 = _mm256_set1_ps(9);
    long n = 200000000L;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; k++) {
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7) STEP(8) STEP(9)
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    /* The chains' sum is printed so the compiler must compute them. */
    __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5),
                                           _mm256_add_ps(_mm256_add_ps(a6, a7),
                                                         _mm256_add_ps(a8, a9))));
    printf("%.2f G ymm FMA/s = %.1f G f32 FMA/s (checksum %g)\n", n * 10 / s / 1e9,
           n * 80 / s / 1e9, t[0]);
    return 0;
}
