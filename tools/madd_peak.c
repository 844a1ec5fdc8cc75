/* The machine's `vpmaddwd` rate, for the integer lanes' "near this core's rate" figure
 * (results/bench/engine.md): four independent chains of ymm `vpmaddwd` each followed by the
 * `vpaddd` that accumulates it, as the integer kernel's inner loop does, and (`alone`) eight
 * `vpmaddwd` with no add, timed.
 *
 *   gcc -O2 -o /tmp/madd_peak tools/madd_peak.c && /tmp/madd_peak     # one core
 *
 * Each line: vpmaddwd instructions a second on that core (16 multiply-adds of 16-bit codes
 * each). */
#include <stdio.h>
#include <time.h>

static double seconds(struct timespec a, struct timespec b) {
    return (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
}

int main(void) {
    const long n = 200000000L;
    struct timespec t0, t1;
    __asm__ volatile("vpcmpeqd %%ymm15,%%ymm15,%%ymm15\n vpxor %%ymm14,%%ymm14,%%ymm14\n" ::
                         : "xmm14", "xmm15");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; k++) {
        __asm__ volatile("vpmaddwd %%ymm15, %%ymm14, %%ymm0\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm1\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm2\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm3\n"
                         "vpaddd %%ymm0, %%ymm8, %%ymm8\n"
                         "vpaddd %%ymm1, %%ymm9, %%ymm9\n"
                         "vpaddd %%ymm2, %%ymm10, %%ymm10\n"
                         "vpaddd %%ymm3, %%ymm11, %%ymm11\n" ::
                             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm8", "xmm9", "xmm10", "xmm11");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("vpmaddwd + vpaddd: %.2f G vpmaddwd/s\n", n * 4 / seconds(t0, t1) / 1e9);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; k++) {
        __asm__ volatile("vpmaddwd %%ymm15, %%ymm14, %%ymm0\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm1\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm2\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm3\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm4\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm5\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm6\n"
                         "vpmaddwd %%ymm15, %%ymm14, %%ymm7\n" ::
                             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("vpmaddwd alone:    %.2f G vpmaddwd/s\n", n * 8 / seconds(t0, t1) / 1e9);
    return 0;
}
