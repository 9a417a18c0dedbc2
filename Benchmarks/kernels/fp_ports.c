// Which vector instructions compete with fused multiply-adds on this x86-64 core: eight
// independent FMA chains per iteration (two FMA units × four cycles of latency keep them busy),
// alone and with four or eight other instructions beside them. Prints each case's ns per
// iteration (best of 7 runs, after a warm-up) and what one added instruction costs over the
// FMAs alone: about 0 when it runs on other pipes, about half a cycle when it shares the FMA
// pipes. Not part of any build (BENCHMARKS.md, "Where the exact decode path's time goes"):
//
//   clang -O2 -mavx2 -mfma Benchmarks/kernels/fp_ports.c -o /tmp/fp_ports && /tmp/fp_ports
#include <stdio.h>
#include <time.h>

#if !defined(__x86_64__)
int main(void) { fprintf(stderr, "fp_ports: x86-64 only\n"); return 2; }
#else
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define N 20000000L
#define RUNS 7
#define FMA(r) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #r "\n"
#define FMAS FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7)
#define X4(op) op "8\n" op "9\n" op "10\n" op "11\n"
static unsigned char line[64] __attribute__((aligned(64)));
// Best ns per iteration of RUNS runs of the loop body `extra` beside the eight FMAs.
#define TIME(var, extra) do { \
        var = 1e9; \
        for (int run = 0; run < RUNS; run++) { \
            double t0 = now(); long n = N; \
            __asm__ volatile("vxorps %%ymm14, %%ymm14, %%ymm14\n vxorps %%ymm15, %%ymm15, %%ymm15\n" \
                             "1:\n" FMAS extra "dec %0\n jnz 1b\n vzeroupper\n" \
                             : "+r"(n) : "r"(line) : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", \
                               "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm14", "xmm15", "cc", "memory"); \
            double ns_ = (now() - t0) / N * 1e9; \
            if (ns_ < var) var = ns_; \
        } \
    } while (0)
#define CASE(name, count, extra) do { \
        double t; TIME(t, extra); \
        printf("%-26s %.3f ns/iteration, %+.3f ns per added instruction\n", name, t, (t - base) / count); \
    } while (0)

int main(void) {
    double base, warm;
    TIME(warm, "");   // warm-up: clocks and caches
    TIME(base, "");
    printf("%-26s %.3f ns/iteration (warm-up %.3f)\n", "8 fma", base, warm);
    CASE("+ 4 vcvtdq2ps", 4, X4("vcvtdq2ps %%ymm15, %%ymm"));
    CASE("+ 8 vcvtdq2ps", 8, X4("vcvtdq2ps %%ymm15, %%ymm") X4("vcvtdq2ps %%ymm15, %%ymm"));
    CASE("+ 4 vsubps", 4, X4("vsubps %%ymm15, %%ymm14, %%ymm"));
    CASE("+ 8 vsubps", 8, X4("vsubps %%ymm15, %%ymm14, %%ymm") X4("vsubps %%ymm15, %%ymm14, %%ymm"));
    CASE("+ 8 vpand", 8, X4("vpand %%ymm15, %%ymm14, %%ymm") X4("vpand %%ymm15, %%ymm14, %%ymm"));
    CASE("+ 4 vpsrld", 4, X4("vpsrld $4, %%ymm15, %%ymm"));
    CASE("+ 4 vpmovzxbd (register)", 4, X4("vpmovzxbd %%xmm15, %%ymm"));
    CASE("+ 4 vpmovzxbd (memory)", 4, X4("vpmovzxbd (%1), %%ymm"));
    CASE("+ 4 vpmaddwd", 4, X4("vpmaddwd %%ymm15, %%ymm14, %%ymm"));
    double again;
    TIME(again, "");
    printf("%-26s %.3f ns/iteration (the baseline again)\n", "8 fma", again);
    return 0;
}
#endif
