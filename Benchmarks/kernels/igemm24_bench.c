// One core's rate of the 24-bit integer GEMM (`strata_igemm24`) and of its quantizer on a random
// matrix: G multiply-adds (m x n x k) per second, best of 50 passes, checked bit for bit against
// `strata_igemm24_ref`. Not part of any build; for trying changes to CSystem/CQuant/qdot24.c on
// one core (BENCHMARKS.md sitting 13):
//
//   Q=CSystem/CQuant; clang -O3 -march=native -ffp-contract=off -Wno-psabi -I$Q/include -I$Q \
//       Benchmarks/kernels/igemm24_bench.c $Q/quant.c $Q/qdot.c $Q/qdot24.c -lm -o /tmp/igemm24_bench
//   /tmp/igemm24_bench type n k m      (type: 2 Q4_0, 3 Q4_1, 8 Q8_0; e.g. 3 1536 576 16, 8 49152 576 16)
//
// Add -mno-avx512f for the AVX2 build's kernels.
#include "qdot.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: igemm24_bench type n k m\n"); return 2; }
    int t = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]), m = atoi(argv[4]);
    if ((t != 2 && t != 3 && t != 8) || n < 1 || k < 32 || k % 32 || m < 1 || (long)n * k > (1L << 28) || (long)m * k > (1L << 24)) { fprintf(stderr, "igemm24_bench: type 2, 3 or 8; k a multiple of 32\n"); return 2; }
    const int bb = t == 8 ? 34 : (t == 3 ? 20 : 18);
    const size_t rb = (size_t)k / 32 * bb;
    uint8_t *src = malloc((size_t)n * rb);
    srand(1);
    for (size_t i = 0; i < (size_t)n * rb; i++) src[i] = (uint8_t)rand();
    for (long r = 0; r < n; r++) for (long b = 0; b < k / 32; b++) { uint8_t *p = src + r * rb + b * bb; p[0] = 0; p[1] = 0x20; if (t == 3) { p[2] = 0; p[3] = 0xC0; } }
    const size_t pb = strata_ipanel_bytes(t, k);
    const int np = (n + 15) / 16;
    uint8_t *pan = aligned_alloc(64, pb * np);
    for (int p = 0; p < np; p++) strata_ipanel_pack(t, src + (size_t)p * 16 * rb, rb, n - 16 * p < 16 ? n - 16 * p : 16, k, pan + p * pb);
    float *a = malloc((size_t)m * k * 4), *c = malloc((size_t)m * n * 4), *c2 = malloc((size_t)m * n * 4);
    for (int i = 0; i < m * k; i++) a[i] = (float)(rand() % 2000 - 1000) / 1000.0f;
    strata_q24_block *q = malloc(sizeof(strata_q24_block) * (size_t)m * (k / 32));
    double bq = 1e9, best = 1e9;
    for (int it = 0; it < 50; it++) {
        double t0 = now();
        for (int r = 0; r < m; r++) strata_quantize_q24(a + (size_t)r * k, k, q + (size_t)r * (k / 32));
        double t1 = now();
        strata_igemm24(t, pan, k, n, 0, np, q, k / 32, m, c, n, 0);
        double t2 = now();
        if (t1 - t0 < bq) bq = t1 - t0;
        if (t2 - t1 < best) best = t2 - t1;
    }
    strata_igemm24_ref(t, pan, k, n, 0, np, q, k / 32, m, c2, n, 0);
    int bad = 0; for (int i = 0; i < m * n; i++) if (c[i] != c2[i]) bad++;
    double sum = 0; for (int i = 0; i < m * n; i++) sum += c[i];
    printf("type %d n %d k %d m %d: igemm24 %.1f G MAC/s (%.1f us), quantize %.1f us; mismatches vs ref %d (checksum %.9g)\n", t, n, k, m,
           (double)m * n * k / best / 1e9, best * 1e6, bq * 1e6, bad, sum);
    return 0;
}
