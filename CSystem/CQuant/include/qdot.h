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

#endif
