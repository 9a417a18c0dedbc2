// Strata's integer matrix multiply for 32-value block types (Q4_0, Q4_1, Q8_0): activations
// quantized per row into 8-bit blocks, weights repacked into panels of 16 outputs, and 8-bit
// multiply-adds summed exactly in 32-bit integers — AVX-512 VNNI (vpdpbusd), AVX2
// (vpmaddubsw + vpmaddwd), or portable C. Each block's integer sum is scaled in float; the float
// operations are the same, in the same order, in every implementation and for every row count,
// so a row's result is bit for bit the same alone, in any batch, on any of the three code paths.
#ifndef STRATA_QDOT_H
#define STRATA_QDOT_H

#include <stddef.h>
#include <stdint.h>

/// One quantized block of activations: 32 values q with scale d (max |x| / 127, rounded to half
/// precision as llama.cpp's Q8_0/Q8_1 do), s = d · Σq (half precision) and the exact Σq.
typedef struct { float d, s; int32_t sum, pad; int8_t q[32]; } strata_q8_block;

/// Outputs per integer panel.
enum { STRATA_IPANEL = 16 };

/// Whether `ggml_type` runs on the integer kernels (Q4_0, Q4_1, Q8_0).
int strata_ipanel_supported(int ggml_type);

/// Bytes of one integer panel of a `k`-input matrix (k a multiple of 32).
size_t strata_ipanel_bytes(int ggml_type, int k);

/// Repacks `rows` (1...16) rows of ggml blocks (`row_bytes` apart) into one integer panel.
void strata_ipanel_pack(int ggml_type, const void *src, size_t row_bytes, int rows, int k, void *dst);

/// Quantizes `k` floats (k a multiple of 32) into k / 32 blocks.
void strata_quantize_q8(const float *x, int k, strata_q8_block *out);

/// `c[r][j] (+)= Σ_blocks …` for `m` rows of quantized activations (`a`, k / 32 blocks a row,
/// `lda` blocks apart) against panels `p0 ..< p1` of a packed matrix with `n` outputs.
void strata_igemm(int ggml_type, const void *panels, int k, int n, int p0, int p1,
                  const strata_q8_block *a, int lda, int m, float *c, int ldc, int accumulate);

/// The same product in plain C, whatever the build (the reference the tests compare against).
void strata_igemm_ref(int ggml_type, const void *panels, int k, int n, int p0, int p1,
                      const strata_q8_block *a, int lda, int m, float *c, int ldc, int accumulate);

// MARK: - 24-bit activations (three 8-bit planes)
//
// The same integer panels and 8-bit multiply-adds, with each activation block held to 24 bits
// instead of 8: x ≈ d · (q1 + q2 / 254 + q3 / 254²), d = max |x| / 127 (float), each plane in
// −127…127. The three planes' integer sums combine exactly into S1 and S2 · 254 + S3, so a
// block's dot product is d_w · d · (S1 + (S2 · 254 + S3) / 254²) to float rounding: as accurate
// as float32 activations (each value within half a third-plane step, max |x| / 16.4 million, of
// x), on integer multiply-adds (three per weight instead of `q8`'s one).

/// One 24-bit activation block: scale d, s = d · Σ (q1 + q2 / 254 + q3 / 254²) (float), each
/// plane's exact sum and its 32 values.
typedef struct { float d, s; int32_t sum[3]; int32_t pad; int8_t q[3][32]; } strata_q24_block;

/// Quantizes `k` floats (k a multiple of 32) into k / 32 blocks of three planes.
void strata_quantize_q24(const float *x, int k, strata_q24_block *out);

/// 1 when this build's 24-bit kernels run on AVX-512 VNNI (vpdpbusd: a plane's 64 products in one
/// instruction), 0 when on AVX2 or portable C. Strata's default activation mode follows it.
int strata_igemm24_vnni(void);

/// As `strata_igemm`, with 24-bit activation blocks. Per block and output: S_i = Σ q_w · q_i
/// exactly (Q4_0: Σ (q_w − 8) · q_i), then acc = fma(fma(float(S2 · 254 + S3), 1 / 254², float(S1)),
/// d_w · d, acc), and for Q4_1 acc = fma(m_w, s, acc); the same float steps in every
/// implementation and for every row count.
void strata_igemm24(int ggml_type, const void *panels, int k, int n, int p0, int p1,
                    const strata_q24_block *a, int lda, int m, float *c, int ldc, int accumulate);

/// The same product in plain C, whatever the build.
void strata_igemm24_ref(int ggml_type, const void *panels, int k, int n, int p0, int p1,
                        const strata_q24_block *a, int lda, int m, float *c, int ldc, int accumulate);

#endif
