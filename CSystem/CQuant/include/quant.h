// Strata's quantized weight panels: ggml's block types repacked once at load into panels of W output
// rows interleaved block by block, and unpacked one panel at a time into the float layout of the
// `simd` backend's micro-kernel (`panel[k][W]`). Plain C that the compiler vectorises for the build
// CPU (AVX-512, AVX2 or NEON) and that runs anywhere as written: the portable fallback is the same
// code. See quant.c for the layout of each type.
#ifndef STRATA_QUANT_H
#define STRATA_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "qdot.h"

/// Values per block of a ggml type in a panel (32 or 256; 1 for the float types), or 0 if the
/// type has no panel layout.
int strata_qpanel_block_values(int ggml_type);

/// Bytes one block record takes in a panel of `width` outputs (width 16 or 32).
size_t strata_qpanel_block_bytes(int ggml_type, int width);

/// Repacks `rows` (1...width) consecutive rows of a ggml matrix with `k` inputs per row, the first at
/// `src`, rows `row_bytes` apart, into one panel at `dst`
/// (`k / block_values * block_bytes` bytes). Rows past `rows` are padded with zeros.
void strata_qpanel_pack(int ggml_type, const void *src, size_t row_bytes, int rows, int k, int width, void *dst);

/// Unpacks one panel into `out[k][width]` floats: every value exactly as ggml's dequantization
/// (and Strata's `Dequantize`) computes it.
void strata_qpanel_unpack(int ggml_type, const void *panel, int k, int width, float *out);

/// `c[r][0..<valid] = Σ_p a[r][p] · panel[p][·]` (plus `c` with `accumulate`) for `m` rows, the panel
/// unpacked in registers: per output one chain of fused multiply-adds over p in order from zero,
/// so every output is bit for bit what the `simd` micro-kernel computes from the unpacked panel.
void strata_qpanel_rows(int ggml_type, const void *panel, int k, int width, const float *a, int lda, int m,
                        float *c, int ldc, int valid, int accumulate);

/// One row against two consecutive panels (`panel`, `panel + panel_bytes`; `c` for the first
/// panel's outputs, all `width` of them written, so the first panel must be full; `c + width`
/// for the second's, of which `validb` are written), with results
/// bit for bit those of `strata_qpanel_rows` on each panel: Q4_0, Q4_1 and Q8_0 only. Returns 0,
/// computing nothing, for any other type.
int strata_qpanel_row_pair(int ggml_type, const void *panel, size_t panel_bytes, int k, int width, const float *a,
                           float *c, int validb, int accumulate);

#endif
