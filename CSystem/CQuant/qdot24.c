// Integer kernels on 24-bit activation blocks (three 8-bit planes; see include/qdot.h), on the
// integer panels of qdot.c (same layout, same packing).
//
// Per block and output the three planes' sums S1, S2, S3 are exact integers, and so is
// S2 · 254 + S3 (at most 128 · 127 · 32 · 255 < 2^31), so the float steps are
//   blk = fma(float(S2 · 254 + S3), 1 / 254², float(S1)),  acc = fma(blk, d_w · d, acc)
// and for Q4_1 acc = fma(m_w, s, acc): the same in the reference, in the AVX2 kernel and in the
// AVX-512 VNNI kernel, for any row count.
//
// AVX2 has no 8-bit dot product into 32 bits: vpmaddubsw multiplies 8-bit pairs into 16 bits and
// vpmaddwd widens. With 4-bit weights (≤ 15) a pair is at most 2 · 15 · 127 = 3,810, so the eight
// products of a block (4 groups × low and high nibbles) add up in 16 bits (≤ 30,480) and are
// widened once per block rather than once per product. Q8_0 weights (pairs up to 32,512) widen
// every time.
#include "qdot.h"
#include "prefetch_ahead.h"
#include "ggml_types.h"
#include <math.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#pragma clang fp contract(off)

static const float INV_254_SQ = 1.0f / 64516.0f;

static inline float h2f(const uint8_t *p) { _Float16 f; memcpy(&f, p, 2); return (float)f; }
static inline size_t rec_bytes(int t) { return strata_ipanel_bytes(t, 32); }

// The quantizer works 8 values at a time (one AVX-512 register of doubles; two with AVX2).
typedef double q24_v8d __attribute__((ext_vector_type(8)));
typedef float q24_v8f __attribute__((ext_vector_type(8)));
typedef int32_t q24_v8i __attribute__((ext_vector_type(8)));
typedef int8_t q24_v8c __attribute__((ext_vector_type(8)));
typedef int64_t q24_v8l __attribute__((ext_vector_type(8)));

/// One plane: v rounded to the nearest integer (ties to even) and clamped to −127…127.
static inline q24_v8d plane(q24_v8d v) {
    return __builtin_elementwise_min(__builtin_elementwise_max(__builtin_elementwise_roundeven(v), (q24_v8d)-127.0), (q24_v8d)127.0);
}

void strata_quantize_q24(const float *x, int k, strata_q24_block *out) {
    for (int b = 0; b < k / 32; b++) {
        const float *v = x + 32 * b;
        strata_q24_block *o = out + b;
        // max |x| as fmaxf over the 32 values would give it (a NaN is passed over), 8 lanes at a time.
        q24_v8f m8 = 0;
        for (int i = 0; i < 32; i += 8) {
            q24_v8f x8;
            memcpy(&x8, v + i, sizeof x8);
            m8 = __builtin_elementwise_max(m8, __builtin_elementwise_abs(x8));
        }
        const float amax = __builtin_reduce_max(m8);
        const float d = amax / 127.0f;
        // In double, x / d and the two remainders are exact to far below the last plane's step.
        const double id = d > 0 ? 1.0 / (double)d : 0.0;
        q24_v8i sum[3] = {0, 0, 0};
        for (int i = 0; i < 32; i += 8) {
            q24_v8f xf;
            memcpy(&xf, v + i, sizeof xf);
            q24_v8d t = __builtin_convertvector(xf, q24_v8d) * id;
            // A NaN input counts as 0, as with 8-bit blocks: a wrong number, never undefined
            // behaviour (an infinite one makes d infinite and the products NaN).
            q24_v8l keep = t == t, bits;
            memcpy(&bits, &t, sizeof t);
            bits &= keep;
            memcpy(&t, &bits, sizeof t);
            q24_v8d q1 = plane(t), r = (t - q1) * 254.0;
            q24_v8d q2 = plane(r);
            r = (r - q2) * 254.0;
            q24_v8d q3 = plane(r);
            q24_v8i i1 = __builtin_convertvector(q1, q24_v8i), i2 = __builtin_convertvector(q2, q24_v8i), i3 = __builtin_convertvector(q3, q24_v8i);
            q24_v8c c1 = __builtin_convertvector(i1, q24_v8c), c2 = __builtin_convertvector(i2, q24_v8c), c3 = __builtin_convertvector(i3, q24_v8c);
            memcpy(o->q[0] + i, &c1, 8); memcpy(o->q[1] + i, &c2, 8); memcpy(o->q[2] + i, &c3, 8);
            sum[0] += i1; sum[1] += i2; sum[2] += i3;
        }
        int32_t s[3];
        for (int p = 0; p < 3; p++) s[p] = __builtin_reduce_add(sum[p]);
        o->d = d;
        o->s = (float)((double)d * ((double)s[0] + ((double)s[1] * 254.0 + (double)s[2]) / 64516.0));
        for (int p = 0; p < 3; p++) o->sum[p] = s[p];
        o->pad = 0;
    }
}

// MARK: - Reference

/// The integer sum of output j of one record with one plane `q` (Q4_0: of q_w − 8).
static int32_t plane_sum_ref(int t, const uint8_t *r, int j, const int8_t *q, int32_t qsum) {
    int32_t s = 0;
    if (t == T_Q8_0) {
        for (int i = 0; i < 32; i++) s += (int8_t)r[64 + (i / 4) * 64 + 4 * j + i % 4] * q[i];
        return s;
    }
    const uint8_t *g = r + (t == T_Q4_1 ? 64 : 32);
    for (int i = 0; i < 32; i++) {
        int grp = i / 8, t4 = i % 4, high = (i % 8) >= 4;
        s += ((g[grp * 64 + 4 * j + t4] >> (high ? 4 : 0)) & 15) * q[i];
    }
    return t == T_Q4_0 ? s - 8 * qsum : s;
}

void strata_igemm24_ref(int t, const void *panels, int k, int n, int p0, int p1,
                        const strata_q24_block *a, int lda, int m, float *c, int ldc, int accumulate) {
    const size_t rec = rec_bytes(t), pb = rec * (size_t)(k / 32);
    for (int pn = p0; pn < p1; pn++) {
        const uint8_t *panel = (const uint8_t *)panels + (size_t)pn * pb;
        int valid = n - pn * 16 < 16 ? n - pn * 16 : 16;
        for (int r = 0; r < m; r++) {
            for (int j = 0; j < valid; j++) {
                float acc = 0;
                for (int b = 0; b < k / 32; b++) {
                    const uint8_t *rb = panel + (size_t)b * rec;
                    const strata_q24_block *ab = a + (size_t)r * lda + b;
                    int32_t s[3];
                    for (int p = 0; p < 3; p++) s[p] = plane_sum_ref(t, rb, j, ab->q[p], ab->sum[p]);
                    float blk = fmaf((float)(s[1] * 254 + s[2]), INV_254_SQ, (float)s[0]);
                    acc = fmaf(blk, h2f(rb + 2 * j) * ab->d, acc);
                    if (t == T_Q4_1) acc = fmaf(h2f(rb + 32 + 2 * j), ab->s, acc);
                }
                float *o = c + (size_t)r * ldc + pn * 16 + j;
                *o = accumulate ? acc + *o : acc;
            }
        }
    }
}

// MARK: - SIMD

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define Q24_SIMD 1
// One vector holds a panel's 16 outputs (four bytes each).
typedef __m512i iv;
typedef __m512 fv;
enum { PARTS = 1, LANES = 16 };
static inline iv iv_load(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }
static inline iv iv_lo(iv w) { return _mm512_and_si512(w, _mm512_set1_epi8(15)); }
static inline iv iv_hi(iv w) { return _mm512_and_si512(_mm512_srli_epi16(w, 4), _mm512_set1_epi8(15)); }
static inline iv iv_zero(void) { return _mm512_setzero_si512(); }
static inline iv iv_sub(iv a, iv b) { return _mm512_sub_epi32(a, b); }
static inline iv iv_set1(int32_t x) { return _mm512_set1_epi32(x); }
static inline iv times254_plus(iv s2, iv s3) { return _mm512_add_epi32(_mm512_sub_epi32(_mm512_slli_epi32(s2, 8), _mm512_slli_epi32(s2, 1)), s3); }
/// acc + Σ4 u8(w) · s8(a), in 32 bits.
static inline iv dot4(iv acc, iv w, int32_t a4) { return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(a4)); }
static inline iv widen4(iv s) { return s; }
/// Signed weights: w + 128 as unsigned (one xor per weight vector, shared by every row and plane),
/// so that the activations stay the broadcast operand; fix8 subtracts 128 · Σa afterwards.
static inline iv unsigned8(iv w) { return _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80)); }
static inline iv dot8(iv acc, iv w, iv wu, int32_t a4) { (void)w; return _mm512_dpbusd_epi32(acc, wu, _mm512_set1_epi32(a4)); }
static inline iv fix8(iv s, int32_t asum) { return _mm512_sub_epi32(s, _mm512_set1_epi32(asum * 128)); }
static inline fv fv_zero(void) { return _mm512_setzero_ps(); }
static inline fv fv_half(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline fv fv_cvt(iv x) { return _mm512_cvtepi32_ps(x); }
static inline fv fv_mul1(fv a, float b) { return _mm512_mul_ps(a, _mm512_set1_ps(b)); }
static inline fv fv_fma(fv a, fv b, fv c) { return _mm512_fmadd_ps(a, b, c); }
static inline fv fv_set1(float x) { return _mm512_set1_ps(x); }
static inline void fv_store(float *p, fv x) { _mm512_storeu_ps(p, x); }
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define Q24_SIMD 1
// One vector holds 8 of a panel's 16 outputs: the panel goes in two parts.
typedef __m256i iv;
typedef __m256 fv;
enum { PARTS = 2, LANES = 8 };
static inline iv iv_load(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline iv iv_lo(iv w) { return _mm256_and_si256(w, _mm256_set1_epi8(15)); }
static inline iv iv_hi(iv w) { return _mm256_and_si256(_mm256_srli_epi16(w, 4), _mm256_set1_epi8(15)); }
static inline iv iv_zero(void) { return _mm256_setzero_si256(); }
static inline iv iv_sub(iv a, iv b) { return _mm256_sub_epi32(a, b); }
static inline iv iv_set1(int32_t x) { return _mm256_set1_epi32(x); }
static inline iv times254_plus(iv s2, iv s3) { return _mm256_add_epi32(_mm256_sub_epi32(_mm256_slli_epi32(s2, 8), _mm256_slli_epi32(s2, 1)), s3); }
/// acc + pairs of u8(w) · s8(a), in 16 bits (see the note at the top).
static inline iv dot4(iv acc, iv w, int32_t a4) { return _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, _mm256_set1_epi32(a4))); }
static inline iv widen4(iv s) { return _mm256_madd_epi16(s, _mm256_set1_epi16(1)); }
/// Signed weights: |w| as the unsigned operand, the sign moved onto the activations in dot8.
static inline iv unsigned8(iv w) { return _mm256_sign_epi8(w, w); }
/// Signed weights: |w| times a with w's sign, widened to 32 bits at once.
static inline iv dot8(iv acc, iv w, iv wu, int32_t a4) {
    __m256i p = _mm256_maddubs_epi16(wu, _mm256_sign_epi8(_mm256_set1_epi32(a4), w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
static inline iv fix8(iv s, int32_t asum) { (void)asum; return s; }
static inline fv fv_zero(void) { return _mm256_setzero_ps(); }
static inline fv fv_half(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline fv fv_cvt(iv x) { return _mm256_cvtepi32_ps(x); }
static inline fv fv_mul1(fv a, float b) { return _mm256_mul_ps(a, _mm256_set1_ps(b)); }
static inline fv fv_fma(fv a, fv b, fv c) { return _mm256_fmadd_ps(a, b, c); }
static inline fv fv_set1(float x) { return _mm256_set1_ps(x); }
static inline void fv_store(float *p, fv x) { _mm256_storeu_ps(p, x); }
#endif

#ifdef Q24_SIMD
#define AI static inline __attribute__((always_inline))

AI int32_t quad(const int8_t *q, int i) { int32_t v; memcpy(&v, q + 4 * i, 4); return v; }

/// R rows (1..4) against outputs part0 · LANES ..< (part0 + NP) · LANES of one panel (NP parts at
/// once, R · NP ≤ 4; acc[q · R + r] for part part0 + q). With `fetch` (the first walk through the
/// panel) each block also prefetches ahead (prefetch_ahead.h).
AI void rows24(int t, const uint8_t *panel, int k, const strata_q24_block *a, int lda, const int R,
               const int NP, int part0, fv acc[4], int fetch) {
    const size_t rec = rec_bytes(t);
    for (int r = 0; r < R * NP; r++) acc[r] = fv_zero();
    for (int b = 0; b < k / 32; b++) {
        const uint8_t *rb = panel + (size_t)b * rec;
        if (fetch) strata_prefetch_ahead(rb, rec);
        iv s[4][3];
        for (int r = 0; r < R * NP; r++) for (int p = 0; p < 3; p++) s[r][p] = iv_zero();
        if (t == T_Q8_0) {
            for (int g = 0; g < 8; g++) {
                for (int q = 0; q < NP; q++) {
                    iv w = iv_load(rb + 64 + 64 * g + 32 * (part0 + q)), wu = unsigned8(w);
                    for (int r = 0; r < R; r++) {
                        const strata_q24_block *ab = a + (size_t)r * lda + b;
                        for (int p = 0; p < 3; p++) s[q * R + r][p] = dot8(s[q * R + r][p], w, wu, quad(ab->q[p], g));
                    }
                }
            }
            for (int q = 0; q < NP; q++)
                for (int r = 0; r < R; r++)
                    for (int p = 0; p < 3; p++) s[q * R + r][p] = fix8(s[q * R + r][p], a[(size_t)r * lda + b].sum[p]);
        } else {
            const uint8_t *g0 = rb + (t == T_Q4_1 ? 64 : 32) + 32 * part0;
            for (int g = 0; g < 4; g++) {
                for (int q = 0; q < NP; q++) {
                    iv w = iv_load(g0 + 64 * g + 32 * q), lo = iv_lo(w), hi = iv_hi(w);
                    for (int r = 0; r < R; r++) {
                        const strata_q24_block *ab = a + (size_t)r * lda + b;
                        for (int p = 0; p < 3; p++) {
                            s[q * R + r][p] = dot4(s[q * R + r][p], lo, quad(ab->q[p], 2 * g));
                            s[q * R + r][p] = dot4(s[q * R + r][p], hi, quad(ab->q[p], 2 * g + 1));
                        }
                    }
                }
            }
            for (int q = 0; q < NP; q++) {
                for (int r = 0; r < R; r++) {
                    const strata_q24_block *ab = a + (size_t)r * lda + b;
                    for (int p = 0; p < 3; p++) {
                        s[q * R + r][p] = widen4(s[q * R + r][p]);
                        if (t == T_Q4_0) s[q * R + r][p] = iv_sub(s[q * R + r][p], iv_set1(8 * ab->sum[p]));
                    }
                }
            }
        }
        for (int q = 0; q < NP; q++) {
            fv dw = fv_half(rb + 2 * LANES * (part0 + q));
            fv mw = t == T_Q4_1 ? fv_half(rb + 32 + 2 * LANES * (part0 + q)) : fv_zero();
            for (int r = 0; r < R; r++) {
                const strata_q24_block *ab = a + (size_t)r * lda + b;
                iv *sr = s[q * R + r];
                fv blk = fv_fma(fv_cvt(times254_plus(sr[1], sr[2])), fv_set1(INV_254_SQ), fv_cvt(sr[0]));
                acc[q * R + r] = fv_fma(blk, fv_mul1(dw, ab->d), acc[q * R + r]);
                if (t == T_Q4_1) acc[q * R + r] = fv_fma(mw, fv_set1(ab->s), acc[q * R + r]);
            }
        }
    }
}

AI void store24(fv acc[4], int R, float *c, int ldc, int n, int accumulate) {
    for (int r = 0; r < R; r++) {
        float v[LANES];
        fv_store(v, acc[r]);
        float *o = c + (size_t)r * ldc;
        for (int j = 0; j < n; j++) o[j] = accumulate ? v[j] + o[j] : v[j];
    }
}

/// One panel for m rows: with one row and two parts (AVX2) both parts in one walk, which shares
/// the activations' broadcasts; otherwise part by part, four rows at a time.
AI void panel24(int T, const uint8_t *panel, int k, const strata_q24_block *a, int lda, int m,
                float *c, int ldc, int valid, int accumulate) {
    fv acc[4];
    if (m == 1 && PARTS == 2 && valid > LANES) {
        rows24(T, panel, k, a, lda, 1, 2, 0, acc, 1);
        store24(acc, 1, c, ldc, LANES, accumulate);
        store24(acc + 1, 1, c + LANES, ldc, valid - LANES, accumulate);
        return;
    }
    for (int part = 0; part < PARTS && part * LANES < valid; part++) {
        const int cols = valid - part * LANES < LANES ? valid - part * LANES : LANES;
        float *cp = c + part * LANES;
        int r = 0;
        for (; r + 4 <= m; r += 4) { rows24(T, panel, k, a + (size_t)r * lda, lda, 4, 1, part, acc, r == 0 && part == 0); store24(acc, 4, cp + (size_t)r * ldc, ldc, cols, accumulate); }
        switch (m - r) {
        case 3: rows24(T, panel, k, a + (size_t)r * lda, lda, 3, 1, part, acc, r == 0 && part == 0); store24(acc, 3, cp + (size_t)r * ldc, ldc, cols, accumulate); break;
        case 2: rows24(T, panel, k, a + (size_t)r * lda, lda, 2, 1, part, acc, r == 0 && part == 0); store24(acc, 2, cp + (size_t)r * ldc, ldc, cols, accumulate); break;
        case 1: rows24(T, panel, k, a + (size_t)r * lda, lda, 1, 1, part, acc, r == 0 && part == 0); store24(acc, 1, cp + (size_t)r * ldc, ldc, cols, accumulate); break;
        }
    }
}

/// Rows go in chunks whose activation blocks (120 bytes each) stay within about 96 KiB, so that
/// they are read from the near caches for every panel rather than streamed again from far ones.
static inline int row_chunk(int k) {
    const size_t row = (size_t)(k / 32) * sizeof(strata_q24_block);
    if (row == 0) return 1 << 30;   // no blocks: nothing to chunk
    const size_t rows = 96 * 1024 / row / 4 * 4;
    return rows < 4 ? 4 : rows > (1 << 30) ? 1 << 30 : (int)rows;
}

#define IGEMM24_TYPE(T, NAME) \
static void NAME(const void *panels, int k, int n, int p0, int p1, const strata_q24_block *a, int lda, int m, \
                 float *c, int ldc, int accumulate) { \
    const size_t pb = rec_bytes(T) * (size_t)(k / 32); \
    const int chunk = row_chunk(k); \
    for (int r0 = 0; r0 < m; r0 += chunk) { \
        const int rows = m - r0 < chunk ? m - r0 : chunk; \
        for (int pn = p0; pn < p1; pn++) { \
            const int valid = n - pn * 16 < 16 ? n - pn * 16 : 16; \
            panel24(T, (const uint8_t *)panels + (size_t)pn * pb, k, a + (size_t)r0 * lda, lda, rows, \
                    c + (size_t)r0 * ldc + pn * 16, ldc, valid, accumulate); \
        } \
    } \
}
IGEMM24_TYPE(T_Q4_0, igemm24_q4_0)
IGEMM24_TYPE(T_Q4_1, igemm24_q4_1)
IGEMM24_TYPE(T_Q8_0, igemm24_q8_0)
#endif

int strata_igemm24_vnni(void) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
    return 1;
#else
    return 0;
#endif
}

void strata_igemm24(int t, const void *panels, int k, int n, int p0, int p1,
                    const strata_q24_block *a, int lda, int m, float *c, int ldc, int accumulate) {
#ifdef Q24_SIMD
    switch (t) {
    case T_Q4_0: igemm24_q4_0(panels, k, n, p0, p1, a, lda, m, c, ldc, accumulate); return;
    case T_Q4_1: igemm24_q4_1(panels, k, n, p0, p1, a, lda, m, c, ldc, accumulate); return;
    case T_Q8_0: igemm24_q8_0(panels, k, n, p0, p1, a, lda, m, c, ldc, accumulate); return;
    }
#endif
    strata_igemm24_ref(t, panels, k, n, p0, p1, a, lda, m, c, ldc, accumulate);
}
