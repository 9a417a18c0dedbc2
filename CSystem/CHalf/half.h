// Widening half-precision (IEEE binary16) values to float32 for the attention kernels that read a
// half-precision KV cache. Swift's SIMD16<Float>(SIMD16<Float16>) is a call per vector that
// returns the lanes in four pieces; these compile to one F16C `vcvtph2ps` inlined into the Swift
// caller. Header only. Without F16C, a portable bit-level conversion (exact for every half value:
// normals, subnormals, infinities, NaNs).
#ifndef STRATA_HALF_H
#define STRATA_HALF_H

#include <stdint.h>
#include <string.h>
#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef float strata_f32x8 __attribute__((ext_vector_type(8)));
typedef float strata_f32x16 __attribute__((ext_vector_type(16)));

/// One half-precision value as float32, by its bits.
static inline float strata_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);                // infinity, NaN
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);          // normal
    } else if (man == 0) {
        bits = sign;                                              // ±0
    } else {                                                      // subnormal: normalise
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// Eight consecutive half-precision values (any alignment) as float32.
static inline strata_f32x8 strata_load_half8(const uint16_t *p) {
#if defined(__F16C__)
    return (strata_f32x8)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
#else
    strata_f32x8 r;
    for (int i = 0; i < 8; i++) r[i] = strata_half_to_float(p[i]);
    return r;
#endif
}

/// Sixteen consecutive half-precision values (any alignment) as float32.
static inline strata_f32x16 strata_load_half16(const uint16_t *p) {
#if defined(__AVX512F__)
    return (strata_f32x16)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
#else
    strata_f32x8 lo = strata_load_half8(p), hi = strata_load_half8(p + 8);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#endif
}

#endif
