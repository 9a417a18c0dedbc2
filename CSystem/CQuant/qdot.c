// Integer kernels for 32-value block types (see include/qdot.h).
//
// Integer panel of 16 outputs, one record per 32-input block:
//   Q4_0  d[16] (half)                  qs[4][64]   288 bytes (= 16 file blocks)
//   Q4_1  d[16] m[16] (half)            qs[4][64]   320 bytes (= 16 file blocks)
//   Q8_0  d[16] (half) wsum[16] (int16) q8[8][64]  576 bytes (16 file blocks: 544)
// Q4: group g covers inputs 8g..8g+7; byte 4j + t holds output j's input 8g + t in its low nibble
// and input 8g + 4 + t in its high nibble, so one 64-byte vector masked (or shifted) gives, per
// 32-bit lane j, four consecutive inputs of output j: what vpdpbusd multiplies with four
// broadcast activation bytes. Q8: quad g, byte 4j + t = output j's input 4g + t; wsum = Σ of
// output j's 32 values (VNNI multiplies unsigned by signed: activations + 128 as unsigned, then
// 128 · wsum subtracted).
//
// Per block and output: isum = Σ q_w · q_a exactly (Q4_0: Σ (q_w − 8) · q_a), then
//   acc = fma(float(isum), d_w · d_a, acc)        and for Q4_1: acc = fma(m_w, s_a, acc).
#include "qdot.h"
#include "prefetch_ahead.h"
#include "ggml_types.h"
#include <math.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#pragma clang fp contract(off)


static inline float h2f(uint16_t h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }
static inline float round_half(float x) { return (float)(_Float16)x; }

int strata_ipanel_supported(int t) { return t == T_Q4_0 || t == T_Q4_1 || t == T_Q8_0; }

static size_t record_bytes(int t) { return t == T_Q4_0 ? 288 : t == T_Q4_1 ? 320 : t == T_Q8_0 ? 576 : 0; }

size_t strata_ipanel_bytes(int t, int k) { return (size_t)(k / 32) * record_bytes(t); }

void strata_ipanel_pack(int t, const void *srcv, size_t row_bytes, int rows, int k, void *dstv) {
    const uint8_t *src = srcv;
    uint8_t *dst = dstv;
    const size_t rec = record_bytes(t);
    memset(dst, 0, rec * (size_t)(k / 32));
    const size_t fb = t == T_Q4_0 ? 18 : t == T_Q4_1 ? 20 : 34;
    for (int b = 0; b < k / 32; b++) {
        uint8_t *r = dst + (size_t)b * rec;
        for (int j = 0; j < rows; j++) {
            const uint8_t *blk = src + (size_t)j * row_bytes + (size_t)b * fb;
            memcpy(r + 2 * j, blk, 2);                     // d
            if (t == T_Q8_0) {
                const int8_t *q = (const int8_t *)(blk + 2);
                int16_t sum = 0;
                for (int i = 0; i < 32; i++) { sum = (int16_t)(sum + q[i]); r[64 + (i / 4) * 64 + 4 * j + i % 4] = (uint8_t)q[i]; }
                memcpy(r + 32 + 2 * j, &sum, 2);
            } else {
                const uint8_t *qs = blk + (t == T_Q4_1 ? 4 : 2);
                if (t == T_Q4_1) memcpy(r + 32 + 2 * j, blk + 2, 2);   // m
                uint8_t *g = r + (t == T_Q4_1 ? 64 : 32);
                uint8_t v[32];
                for (int i = 0; i < 16; i++) { v[i] = qs[i] & 15; v[i + 16] = qs[i] >> 4; }
                for (int i = 0; i < 32; i++) {
                    int grp = i / 8, t4 = i % 4, high = (i % 8) >= 4;
                    g[grp * 64 + 4 * j + t4] |= (uint8_t)(v[i] << (high ? 4 : 0));
                }
            }
        }
    }
}

void strata_quantize_q8(const float *x, int k, strata_q8_block *out) {
    for (int b = 0; b < k / 32; b++) {
        const float *v = x + 32 * b;
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(v[i]));
        const float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        int sum = 0;
        strata_q8_block *o = out + b;
        for (int i = 0; i < 32; i++) {
            // NaN (from a non-finite input) becomes 0 and anything else is clamped, so a corrupt
            // value gives a wrong number, never undefined behaviour.
            float r = nearbyintf(v[i] * id);
            int q = r == r ? (int)fminf(fmaxf(r, -127.0f), 127.0f) : 0;
            o->q[i] = (int8_t)q; sum += q;
        }
        o->d = round_half(d);
        o->s = round_half((float)sum * d);
        o->sum = sum;
        o->pad = 0;
    }
}

// MARK: - Reference

/// The integer sum of output j of one record with one activation block.
static int32_t isum_ref(int t, const uint8_t *r, int j, const strata_q8_block *a) {
    int32_t s = 0;
    if (t == T_Q8_0) {
        for (int i = 0; i < 32; i++) s += (int8_t)r[64 + (i / 4) * 64 + 4 * j + i % 4] * a->q[i];
    } else {
        const uint8_t *g = r + (t == T_Q4_1 ? 64 : 32);
        for (int i = 0; i < 32; i++) {
            int grp = i / 8, t4 = i % 4, high = (i % 8) >= 4;
            int q = (g[grp * 64 + 4 * j + t4] >> (high ? 4 : 0)) & 15;
            s += q * a->q[i];
        }
        if (t == T_Q4_0) s -= 8 * a->sum;
    }
    return s;
}

void strata_igemm_ref(int t, const void *panels, int k, int n, int p0, int p1,
                      const strata_q8_block *a, int lda, int m, float *c, int ldc, int accumulate) {
    const size_t rec = record_bytes(t), pb = rec * (size_t)(k / 32);
    for (int pn = p0; pn < p1; pn++) {
        const uint8_t *panel = (const uint8_t *)panels + (size_t)pn * pb;
        int valid = n - pn * 16 < 16 ? n - pn * 16 : 16;
        for (int r = 0; r < m; r++) {
            for (int j = 0; j < valid; j++) {
                float acc = 0;
                for (int b = 0; b < k / 32; b++) {
                    const uint8_t *rb = panel + (size_t)b * rec;
                    const strata_q8_block *ab = a + (size_t)r * lda + b;
                    float dw = h2f((uint16_t)(rb[2 * j] | rb[2 * j + 1] << 8));
                    acc = fmaf((float)isum_ref(t, rb, j, ab), dw * ab->d, acc);
                    if (t == T_Q4_1) acc = fmaf(h2f((uint16_t)(rb[32 + 2 * j] | rb[33 + 2 * j] << 8)), ab->s, acc);
                }
                float *o = c + (size_t)r * ldc + pn * 16 + j;
                *o = accumulate ? acc + *o : acc;
            }
        }
    }
}

// MARK: - SIMD

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define STRATA_IGEMM_SIMD 1
typedef __m512i vi;
typedef __m512 vf;
static inline vi vi_load(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }
static inline vi vi_lo(vi x) { return _mm512_and_si512(x, _mm512_set1_epi8(15)); }
static inline vi vi_hi(vi x) { return _mm512_and_si512(_mm512_srli_epi16(x, 4), _mm512_set1_epi8(15)); }
static inline vi vi_zero(void) { return _mm512_setzero_si512(); }
static inline vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
static inline vi vi_sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
static inline vi vi_set1(int32_t x) { return _mm512_set1_epi32(x); }
/// acc + Σ4 u8(w) · s8(a): weights unsigned.
static inline vi dot_u(vi acc, vi w, int32_t a4) { return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(a4)); }
/// acc + Σ4 s8(w) · s8(a): activations + 128 as unsigned; the caller subtracts 128 · Σw.
static inline vi dot_s(vi acc, vi w, int32_t a4) { return _mm512_dpbusd_epi32(acc, _mm512_set1_epi32(a4 ^ (int32_t)0x80808080), w); }
enum { DOT_S_OFFSET = 1 };
static inline vi vi_wsum128(const uint8_t *p) { return _mm512_slli_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)p)), 7); }
static inline vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline vf vf_half(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline vf vf_cvt(vi x) { return _mm512_cvtepi32_ps(x); }
static inline vf vf_mul(vf a, float b) { return _mm512_mul_ps(a, _mm512_set1_ps(b)); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline void vf_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define STRATA_IGEMM_SIMD 1
typedef struct { __m256i a, b; } vi;
typedef struct { __m256 a, b; } vf;
static inline vi vi_load(const uint8_t *p) { vi r = { _mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + 32)) }; return r; }
static inline vi vi_lo(vi x) { __m256i m = _mm256_set1_epi8(15); vi r = { _mm256_and_si256(x.a, m), _mm256_and_si256(x.b, m) }; return r; }
static inline vi vi_hi(vi x) { __m256i m = _mm256_set1_epi8(15); vi r = { _mm256_and_si256(_mm256_srli_epi16(x.a, 4), m), _mm256_and_si256(_mm256_srli_epi16(x.b, 4), m) }; return r; }
static inline vi vi_zero(void) { vi r = { _mm256_setzero_si256(), _mm256_setzero_si256() }; return r; }
static inline vi vi_add(vi x, vi y) { vi r = { _mm256_add_epi32(x.a, y.a), _mm256_add_epi32(x.b, y.b) }; return r; }
static inline vi vi_sub(vi x, vi y) { vi r = { _mm256_sub_epi32(x.a, y.a), _mm256_sub_epi32(x.b, y.b) }; return r; }
static inline vi vi_set1(int32_t x) { vi r = { _mm256_set1_epi32(x), _mm256_set1_epi32(x) }; return r; }
static inline __m256i dp(__m256i u, __m256i s) { return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)); }
/// Q4 weights (0..15) times activations: pairs of products fit int16 (≤ 2 · 15 · 127).
static inline vi dot_u(vi acc, vi w, int32_t a4) {
    __m256i a = _mm256_set1_epi32(a4);
    vi r = { _mm256_add_epi32(acc.a, dp(w.a, a)), _mm256_add_epi32(acc.b, dp(w.b, a)) }; return r;
}
/// Signed weights: |w| times a with w's sign (pairs ≤ 2 · 127 · 127, no saturation).
static inline vi dot_s(vi acc, vi w, int32_t a4) {
    __m256i a = _mm256_set1_epi32(a4);
    vi r = { _mm256_add_epi32(acc.a, dp(_mm256_sign_epi8(w.a, w.a), _mm256_sign_epi8(a, w.a))),
             _mm256_add_epi32(acc.b, dp(_mm256_sign_epi8(w.b, w.b), _mm256_sign_epi8(a, w.b))) };
    return r;
}
enum { DOT_S_OFFSET = 0 };
static inline vi vi_wsum128(const uint8_t *p) { (void)p; return vi_zero(); }
static inline vf vf_zero(void) { vf r = { _mm256_setzero_ps(), _mm256_setzero_ps() }; return r; }
static inline vf vf_half(const uint8_t *p) { vf r = { _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16))) }; return r; }
static inline vf vf_cvt(vi x) { vf r = { _mm256_cvtepi32_ps(x.a), _mm256_cvtepi32_ps(x.b) }; return r; }
static inline vf vf_mul(vf x, float b) { __m256 s = _mm256_set1_ps(b); vf r = { _mm256_mul_ps(x.a, s), _mm256_mul_ps(x.b, s) }; return r; }
static inline vf vf_fma(vf x, vf y, vf z) { vf r = { _mm256_fmadd_ps(x.a, y.a, z.a), _mm256_fmadd_ps(x.b, y.b, z.b) }; return r; }
static inline vf vf_set1(float x) { vf r = { _mm256_set1_ps(x), _mm256_set1_ps(x) }; return r; }
static inline void vf_store(float *p, vf x) { _mm256_storeu_ps(p, x.a); _mm256_storeu_ps(p + 8, x.b); }
#endif

#ifdef STRATA_IGEMM_SIMD
static inline int32_t quad(const strata_q8_block *a, int i) { int32_t v; memcpy(&v, a->q + 4 * i, 4); return v; }

/// R rows (1..4) against one panel: per block, the integer sums of all rows, then the float steps.
/// With `fetch` (the first rows through a panel: the walk that reads it from memory), each block
/// also prefetches ahead (prefetch_ahead.h).
static inline __attribute__((always_inline)) void panel_rows(int t, const uint8_t *panel, int k, const strata_q8_block *a, int lda,
                                                             const int R, vf acc[4], int fetch) {
    const size_t rec = record_bytes(t);
    for (int r = 0; r < R; r++) acc[r] = vf_zero();
    for (int b = 0; b < k / 32; b++) {
        const uint8_t *rb = panel + (size_t)b * rec;
        if (fetch) strata_prefetch_ahead(rb, rec);
        vi s[4];
        for (int r = 0; r < R; r++) s[r] = vi_zero();
        if (t == T_Q8_0) {
            for (int g = 0; g < 8; g++) {
                vi w = vi_load(rb + 64 + 64 * g);
                for (int r = 0; r < R; r++) s[r] = dot_s(s[r], w, quad(a + (size_t)r * lda + b, g));
            }
            if (DOT_S_OFFSET) { vi off = vi_wsum128(rb + 32); for (int r = 0; r < R; r++) s[r] = vi_sub(s[r], off); }
        } else {
            const uint8_t *g0 = rb + (t == T_Q4_1 ? 64 : 32);
            vi s2[4];
            for (int r = 0; r < R; r++) s2[r] = vi_zero();
            for (int g = 0; g < 4; g++) {
                vi w = vi_load(g0 + 64 * g), lo = vi_lo(w), hi = vi_hi(w);
                for (int r = 0; r < R; r++) {
                    const strata_q8_block *ab = a + (size_t)r * lda + b;
                    s[r] = dot_u(s[r], lo, quad(ab, 2 * g));
                    s2[r] = dot_u(s2[r], hi, quad(ab, 2 * g + 1));
                }
            }
            for (int r = 0; r < R; r++) {
                s[r] = vi_add(s[r], s2[r]);
                if (t == T_Q4_0) s[r] = vi_sub(s[r], vi_set1(8 * a[(size_t)r * lda + b].sum));
            }
        }
        vf dw = vf_half(rb);
        vf mw = t == T_Q4_1 ? vf_half(rb + 32) : vf_zero();
        for (int r = 0; r < R; r++) {
            const strata_q8_block *ab = a + (size_t)r * lda + b;
            acc[r] = vf_fma(vf_cvt(s[r]), vf_mul(dw, ab->d), acc[r]);
            if (t == T_Q4_1) acc[r] = vf_fma(mw, vf_set1(ab->s), acc[r]);
        }
    }
}

static inline __attribute__((always_inline)) void store_rows(vf acc[4], int R, float *c, int ldc, int valid, int accumulate) {
    for (int r = 0; r < R; r++) {
        float v[16];
        vf_store(v, acc[r]);
        float *o = c + (size_t)r * ldc;
        for (int j = 0; j < valid; j++) o[j] = accumulate ? v[j] + o[j] : v[j];
    }
}

#define IGEMM_TYPE(T, NAME) \
static void NAME(const void *panels, int k, int n, int p0, int p1, const strata_q8_block *a, int lda, int m, \
                 float *c, int ldc, int accumulate) { \
    const size_t pb = record_bytes(T) * (size_t)(k / 32); \
    for (int pn = p0; pn < p1; pn++) { \
        const uint8_t *panel = (const uint8_t *)panels + (size_t)pn * pb; \
        int valid = n - pn * 16 < 16 ? n - pn * 16 : 16; \
        int r = 0; \
        vf acc[4]; \
        for (; r + 4 <= m; r += 4) { panel_rows(T, panel, k, a + (size_t)r * lda, lda, 4, acc, r == 0); store_rows(acc, 4, c + (size_t)r * ldc + pn * 16, ldc, valid, accumulate); } \
        switch (m - r) { \
        case 3: panel_rows(T, panel, k, a + (size_t)r * lda, lda, 3, acc, r == 0); store_rows(acc, 3, c + (size_t)r * ldc + pn * 16, ldc, valid, accumulate); break; \
        case 2: panel_rows(T, panel, k, a + (size_t)r * lda, lda, 2, acc, r == 0); store_rows(acc, 2, c + (size_t)r * ldc + pn * 16, ldc, valid, accumulate); break; \
        case 1: panel_rows(T, panel, k, a + (size_t)r * lda, lda, 1, acc, r == 0); store_rows(acc, 1, c + (size_t)r * ldc + pn * 16, ldc, valid, accumulate); break; \
        } \
    } \
}
IGEMM_TYPE(T_Q4_0, igemm_q4_0)
IGEMM_TYPE(T_Q4_1, igemm_q4_1)
IGEMM_TYPE(T_Q8_0, igemm_q8_0)
#endif

void strata_igemm(int t, const void *panels, int k, int n, int p0, int p1,
                  const strata_q8_block *a, int lda, int m, float *c, int ldc, int accumulate) {
#ifdef STRATA_IGEMM_SIMD
    switch (t) {
    case T_Q4_0: igemm_q4_0(panels, k, n, p0, p1, a, lda, m, c, ldc, accumulate); return;
    case T_Q4_1: igemm_q4_1(panels, k, n, p0, p1, a, lda, m, c, ldc, accumulate); return;
    case T_Q8_0: igemm_q8_0(panels, k, n, p0, p1, a, lda, m, c, ldc, accumulate); return;
    }
#endif
    strata_igemm_ref(t, panels, k, n, p0, p1, a, lda, m, c, ldc, accumulate);
}
