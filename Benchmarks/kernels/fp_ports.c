// Which vector instructions compete with fused multiply-adds on this x86-64 core: eight
// independent FMA chains per iteration (two FMA units × four cycles of latency keep them busy),
// alone and with four or eight other instructions beside them, in ns per iteration. An
// instruction that adds nothing runs on other pipes; one that adds about half a cycle shares the
// FMA pipes. Not part of any build (BENCHMARKS.md, "Where the exact decode path's time goes"):
//
//   clang -O2 -mavx2 -mfma Benchmarks/kernels/fp_ports.c -o /tmp/fp_ports && /tmp/fp_ports
#include <stdio.h>
#include <time.h>

#if !defined(__x86_64__)
int main(void) { fprintf(stderr, "fp_ports: x86-64 only\n"); return 2; }
#else
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define N 100000000L
#define FMA(r) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #r "\n"
#define FMAS FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7)
#define X4(op) op "8\n" op "9\n" op "10\n" op "11\n"
#define RUN(name, extra) do { \
        double t0 = now(); long n = N; \
        __asm__ volatile("vxorps %%ymm14, %%ymm14, %%ymm14\n vxorps %%ymm15, %%ymm15, %%ymm15\n" \
                         "1:\n" FMAS extra "dec %0\n jnz 1b\n" \
                         : "+r"(n) :: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
                           "xmm9", "xmm10", "xmm11", "xmm14", "xmm15", "cc"); \
        printf("%-22s %.3f ns/iteration\n", name, (now() - t0) / N * 1e9); \
    } while (0)

int main(void) {
    RUN("8 fma", "");
    RUN("+ 4 vcvtdq2ps", X4("vcvtdq2ps %%ymm15, %%ymm"));
    RUN("+ 8 vcvtdq2ps", X4("vcvtdq2ps %%ymm15, %%ymm") X4("vcvtdq2ps %%ymm15, %%ymm"));
    RUN("+ 8 vsubps", X4("vsubps %%ymm15, %%ymm14, %%ymm") X4("vsubps %%ymm15, %%ymm14, %%ymm"));
    RUN("+ 8 vpand", X4("vpand %%ymm15, %%ymm14, %%ymm") X4("vpand %%ymm15, %%ymm14, %%ymm"));
    RUN("+ 4 vpsrld", X4("vpsrld $4, %%ymm15, %%ymm"));
    RUN("+ 4 vpmovzxbd", X4("vpmovzxbd %%xmm15, %%ymm"));
    RUN("+ 4 vpmaddwd", X4("vpmaddwd %%ymm15, %%ymm14, %%ymm"));
    return 0;
}
#endif
