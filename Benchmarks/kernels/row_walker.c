// One core's rate of the exact one-row walker (`strata_qpanel_row_pair`) on a random quantized
// matrix: G weights per second, best of 200 passes over all its panels. Not part of any build; for
// trying changes to CSystem/CQuant on one core without the rest of Strata (BENCHMARKS.md,
// "Where the exact decode path's time goes"):
//
//   Q=CSystem/CQuant; clang -O3 -march=native -mno-avx512f -ffp-contract=off -Wno-psabi \
//       -I$Q/include -I$Q Benchmarks/kernels/row_walker.c $Q/quant.c -o /tmp/row_walker
//   /tmp/row_walker [type: 2 Q4_0, 3 Q4_1, 8 Q8_0] [rows] [k]
//
// -mno-avx512f gives the AVX2 build's kernels (panels of 16 outputs); without it, on an AVX-512
// machine, the AVX-512 build's (panels of 32), as Package.swift chooses.
#include "quant.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef __AVX512F__
enum { W = 32 };
#else
enum { W = 16 };
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

/// argv[i] as a whole number in 1 ... 1 << 20, `fallback` when absent, -1 when not one.
static long arg(int argc, char **argv, int i, long fallback) {
    if (argc <= i) return fallback;
    char *end;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    return errno || end == argv[i] || *end || v < 1 || v > (1 << 20) ? -1 : v;
}

int main(int argc, char **argv) {
    const long t = arg(argc, argv, 1, 3), rows = arg(argc, argv, 2, 1536), k = arg(argc, argv, 3, 576);
    if (argc > 4 || (t != 2 && t != 3 && t != 8) || rows < 2 * W || rows % (2 * W) || k < 32 || k % 32 || rows * k > (1L << 28)) {
        fprintf(stderr, "usage: row_walker [type: 2 Q4_0, 3 Q4_1, 8 Q8_0] [rows: a multiple of %d] [k: a multiple of 32]"
                        " (rows x k at most 2^28)\n", 2 * W);
        return 2;
    }
    const int bb = t == 8 ? 34 : (t == 3 ? 20 : 18);
    const size_t rb = (size_t)k / 32 * bb;
    uint8_t *src = malloc((size_t)rows * rb);
    if (!src) { fprintf(stderr, "row_walker: out of memory\n"); return 1; }
    srand(1);
    for (size_t i = 0; i < (size_t)rows * rb; i++) src[i] = (uint8_t)rand();
    // Finite scales: d = 2^-7 (half 0x2000), m = -2 (half 0xC000) for Q4_1.
    for (long r = 0; r < rows; r++)
        for (long b = 0; b < k / 32; b++) {
            uint8_t *p = src + r * rb + b * bb;
            p[0] = 0x00; p[1] = 0x20;
            if (t == 3) { p[2] = 0x00; p[3] = 0xC0; }
        }
    const size_t pb = strata_qpanel_block_bytes((int)t, W) * (size_t)(k / 32);
    const int np = (int)(rows / W);
    uint8_t *pan = aligned_alloc(64, pb * np);
    float *a = malloc((size_t)k * 4), *c = malloc((size_t)rows * 4);
    if (!pan || !a || !c) { fprintf(stderr, "row_walker: out of memory\n"); return 1; }
    for (int p = 0; p < np; p++) strata_qpanel_pack((int)t, src + (size_t)p * W * rb, rb, W, (int)k, W, pan + p * pb);
    for (int i = 0; i < k; i++) a[i] = (float)(rand() % 2000 - 1000) / 1000.0f;
    double best = 1e9;
    for (int it = 0; it < 200; it++) {
        const double t0 = now();
        for (int p = 0; p < np; p += 2) strata_qpanel_row_pair((int)t, pan + p * pb, pb, (int)k, W, a, c + p * W, W, 0);
        const double dt = now() - t0;
        if (dt < best) best = dt;
    }
    double sum = 0;
    for (int i = 0; i < rows; i++) sum += c[i];
    printf("type %ld, %ld x %ld: %.2f G weights/s (checksum %.6g)\n", t, rows, k, (double)rows * k / best / 1e9, sum);
    return 0;
}
