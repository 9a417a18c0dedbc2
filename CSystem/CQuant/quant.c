// Quantized weight panels (see include/quant.h).
//
// A panel holds W output rows (W = 16 or 32, the micro-kernel's panel width; H = W / 2). Each ggml
// block of the W rows becomes one record, the rows' fields interleaved so that a vector of
// consecutive bytes holds the same field of consecutive outputs:
//
//   Q4_0  d[W]                 nib[32][H]                 18 W bytes (the blocks' own size)
//   Q4_1  d[W] m[W]            nib[32][H]                 20 W
//   Q5_0  d[W]                 bit[32][2][H/8] nib[32][H] 22 W
//   Q5_1  d[W] m[W]            bit[32][2][H/8] nib[32][H] 24 W
//   Q8_0  d[W]                 q8[32][W]                  34 W
//   Q2_K  d[W] dmin[W] sc[16][W]                two[256][2][H/4]             84 W
//   Q3_K  d[W] sc8[16][W]      bit[256][2][H/8] two[256][2][H/4]             114 W (110 W in the file)
//   Q4_K  d[W] dmin[W] sc[8][W] mn[8][W]                 nib[256][H]         148 W (144 W)
//   Q5_K  d[W] dmin[W] sc[8][W] mn[8][W] bit[256][2][H/8] nib[256][H]        180 W (176 W)
//   Q6_K  d[W] sc8[16][W]      two[256][2][H/4] nib[256][H]                  210 W
//   F16, BF16: [W] halves per input; F32: [W] floats per input.
//
// d, m, dmin are the file's half-precision numbers; sc/mn the 6-bit (Q4_K, Q5_K) or 4-bit (Q2_K)
// sub-block scales unpacked to bytes; sc8 the signed sub-block scales (Q3_K: already minus 32).
// nib: value j of input p is the low nibble of byte j for outputs j < H and the high nibble of
// byte j - H for the others. bit/two: one or two more bits of each value, as two little-endian
// words per input, the first for outputs 0..<H (bits i or 2i, 2i+1 for output i), the second for
// H..<W. Every value is rebuilt with the same float operations, in the same order, as ggml's
// dequantize_row_* (and Strata's Dequantize), so a panel unpacks to the exact floats.
#include "quant.h"
#include "prefetch_ahead.h"
#include "ggml_types.h"
#include <string.h>

#pragma clang fp contract(off)


static inline float h2f(uint16_t h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }
static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

int strata_qpanel_block_values(int t) {
    switch (t) {
    case T_F32: case T_F16: case T_BF16: return 1;
    case T_Q4_0: case T_Q4_1: case T_Q5_0: case T_Q5_1: case T_Q8_0: return 32;
    case T_Q2_K: case T_Q3_K: case T_Q4_K: case T_Q5_K: case T_Q6_K: return 256;
    default: return 0;
    }
}

/// Bytes of one block in the file.
static size_t file_block_bytes(int t) {
    switch (t) {
    case T_F32: return 4; case T_F16: case T_BF16: return 2;
    case T_Q4_0: return 18; case T_Q4_1: return 20; case T_Q5_0: return 22; case T_Q5_1: return 24; case T_Q8_0: return 34;
    case T_Q2_K: return 84; case T_Q3_K: return 110; case T_Q4_K: return 144; case T_Q5_K: return 176; case T_Q6_K: return 210;
    default: return 0;
    }
}

size_t strata_qpanel_block_bytes(int t, int W) {
    size_t w = (size_t)W;
    switch (t) {
    case T_F32: return 4 * w; case T_F16: case T_BF16: return 2 * w;
    case T_Q4_0: return 18 * w; case T_Q4_1: return 20 * w; case T_Q5_0: return 22 * w; case T_Q5_1: return 24 * w;
    case T_Q8_0: return 34 * w;
    case T_Q2_K: return 84 * w; case T_Q3_K: return 114 * w; case T_Q4_K: return 148 * w; case T_Q5_K: return 180 * w;
    case T_Q6_K: return 210 * w;
    default: return 0;
    }
}

// MARK: - Packing (once per matrix at load; scalar)

/// One file block decoded into the fields a panel record stores. `q` holds each value's integer
/// before offsets: Q4 0..15, Q5 0..31, Q8_0 the signed byte, Q2_K 0..3, Q3_K low two bits | high
/// bit << 2, Q6_K 0..63.
typedef struct {
    uint16_t d, m;         // d and m (or dmin) as half bits
    uint8_t sc[16], mn[16];
    int8_t sc8[16];
    uint8_t q[256];
} decoded_t;

static void k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
    else { *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)); *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4)); }
}

static void decode(int t, const uint8_t *b, decoded_t *o) {
    memset(o, 0, sizeof *o);
    switch (t) {
    case T_Q4_0: case T_Q4_1: {
        o->d = rd16(b); const uint8_t *qs = b + 2;
        if (t == T_Q4_1) { o->m = rd16(b + 2); qs = b + 4; }
        for (int j = 0; j < 16; j++) { o->q[j] = qs[j] & 15; o->q[j + 16] = qs[j] >> 4; }
        break;
    }
    case T_Q5_0: case T_Q5_1: {
        o->d = rd16(b); const uint8_t *p = b + 2;
        if (t == T_Q5_1) { o->m = rd16(b + 2); p = b + 4; }
        uint32_t qh; memcpy(&qh, p, 4); const uint8_t *qs = p + 4;
        for (int j = 0; j < 16; j++) {
            o->q[j] = (uint8_t)((qs[j] & 15) | (((qh >> j) & 1) << 4));
            o->q[j + 16] = (uint8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
        }
        break;
    }
    case T_Q8_0:
        o->d = rd16(b);
        memcpy(o->q, b + 2, 32);
        break;
    case T_Q2_K: {
        const uint8_t *scales = b, *qs = b + 16;
        o->d = rd16(b + 80); o->m = rd16(b + 82);
        memcpy(o->sc, scales, 16);
        for (int v = 0; v < 256; v++) {
            int n = v / 128, j = (v % 128) / 32, h = (v % 32) / 16, l = v % 16;
            o->q[v] = (qs[32 * n + 16 * h + l] >> (2 * j)) & 3;
        }
        break;
    }
    case T_Q3_K: {
        const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
        o->d = rd16(b + 108);
        // The sixteen 6-bit scales: low four bits in bytes 0..7, high two bits in bytes 8..11.
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? sc[j] & 15 : sc[j - 8] >> 4;
            int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
            o->sc8[j] = (int8_t)((lo | (hi << 4)) - 32);
        }
        for (int v = 0; v < 256; v++) {
            int n = v / 128, j = (v % 128) / 32, h = (v % 32) / 16, l = v % 16;
            int low = (qs[32 * n + 16 * h + l] >> (2 * j)) & 3;
            int high = (hm[16 * h + l] >> (4 * n + j)) & 1;
            o->q[v] = (uint8_t)(low | (high << 2));
        }
        break;
    }
    case T_Q4_K: case T_Q5_K: {
        o->d = rd16(b); o->m = rd16(b + 2);
        const uint8_t *scales = b + 4;
        for (int j = 0; j < 8; j++) k4_scale_min(j, scales, &o->sc[j], &o->mn[j]);
        const uint8_t *qh = b + 16, *qs = t == T_Q5_K ? b + 48 : b + 16;
        for (int v = 0; v < 256; v++) {
            int tt = v / 64, h = (v % 64) / 32, l = v % 32;
            uint8_t byte = qs[32 * tt + l];
            int q = h ? byte >> 4 : byte & 15;
            if (t == T_Q5_K) q |= ((qh[l] >> (2 * tt + h)) & 1) << 4;
            o->q[v] = (uint8_t)q;
        }
        break;
    }
    case T_Q6_K: {
        const uint8_t *ql = b, *qh = b + 128; const int8_t *sc = (const int8_t *)(b + 192);
        o->d = rd16(b + 208);
        memcpy(o->sc8, sc, 16);
        for (int v = 0; v < 256; v++) {
            int n = v / 128, r = v % 128, quarter = r / 32, l = r % 32;
            uint8_t lowByte = ql[64 * n + l + (quarter & 1) * 32];
            int low = quarter < 2 ? lowByte & 15 : lowByte >> 4;
            int high = (qh[32 * n + l] >> (2 * quarter)) & 3;
            o->q[v] = (uint8_t)(low | (high << 4));
        }
        break;
    }
    }
}

static inline void put_nib(uint8_t *row, int i, int H, int v) {
    if (i < H) row[i] = (uint8_t)((row[i] & 0xF0) | (v & 15));
    else row[i - H] = (uint8_t)((row[i - H] & 0x0F) | ((v & 15) << 4));
}
static inline void put_bit(uint8_t *row, int i, int H, int v) {   // row: 2 words of H bits
    int word = i < H ? 0 : 1, bit = i < H ? i : i - H;
    if (v & 1) row[word * (H / 8) + bit / 8] |= (uint8_t)(1u << (bit % 8));
}
static inline void put_two(uint8_t *row, int i, int H, int v) {   // row: 2 words of 2H bits
    int word = i < H ? 0 : 1, bit = 2 * (i < H ? i : i - H);
    row[word * (H / 4) + bit / 8] |= (uint8_t)((v & 3) << (bit % 8));
}
static inline void put16(uint8_t *p, int i, uint16_t v) { memcpy(p + 2 * i, &v, 2); }

void strata_qpanel_pack(int t, const void *srcv, size_t row_bytes, int rows, int k, int W, void *dstv) {
    const uint8_t *src = srcv;
    uint8_t *dst = dstv;
    const int H = W / 2, bv = strata_qpanel_block_values(t);
    const size_t rec = strata_qpanel_block_bytes(t, W), fb = file_block_bytes(t);
    const int blocks = k / bv;
    memset(dst, 0, rec * (size_t)blocks);
    if (bv == 1) {   // float types: [k][W]
        size_t e = fb;
        for (int p = 0; p < k; p++)
            for (int i = 0; i < rows; i++) memcpy(dst + (size_t)p * rec + (size_t)i * e, src + (size_t)i * row_bytes + (size_t)p * e, e);
        return;
    }
    decoded_t o;
    for (int b = 0; b < blocks; b++) {
        uint8_t *r = dst + (size_t)b * rec;
        for (int i = 0; i < rows; i++) {
            decode(t, src + (size_t)i * row_bytes + (size_t)b * fb, &o);
            switch (t) {
            case T_Q4_0: case T_Q4_1: case T_Q5_0: case T_Q5_1: {
                int hasMin = t == T_Q4_1 || t == T_Q5_1, five = t == T_Q5_0 || t == T_Q5_1;
                put16(r, i, o.d);
                if (hasMin) put16(r + 2 * W, i, o.m);
                uint8_t *bits = r + (hasMin ? 4 : 2) * W;
                uint8_t *nib = bits + (five ? 32 * W / 8 : 0);
                for (int p = 0; p < 32; p++) {
                    put_nib(nib + p * H, i, H, o.q[p]);
                    if (five) put_bit(bits + p * (W / 8), i, H, o.q[p] >> 4);
                }
                break;
            }
            case T_Q8_0:
                put16(r, i, o.d);
                for (int p = 0; p < 32; p++) r[2 * W + p * W + i] = o.q[p];
                break;
            case T_Q2_K: {
                put16(r, i, o.d); put16(r + 2 * W, i, o.m);
                for (int j = 0; j < 16; j++) r[4 * W + j * W + i] = o.sc[j];
                uint8_t *two = r + 20 * W;
                for (int p = 0; p < 256; p++) put_two(two + p * (W / 4), i, H, o.q[p]);
                break;
            }
            case T_Q3_K: {
                put16(r, i, o.d);
                for (int j = 0; j < 16; j++) r[2 * W + j * W + i] = (uint8_t)o.sc8[j];
                uint8_t *bit = r + 18 * W, *two = bit + 32 * W;
                for (int p = 0; p < 256; p++) { put_bit(bit + p * (W / 8), i, H, o.q[p] >> 2); put_two(two + p * (W / 4), i, H, o.q[p]); }
                break;
            }
            case T_Q4_K: case T_Q5_K: {
                put16(r, i, o.d); put16(r + 2 * W, i, o.m);
                for (int j = 0; j < 8; j++) { r[4 * W + j * W + i] = o.sc[j]; r[12 * W + j * W + i] = o.mn[j]; }
                uint8_t *bit = r + 20 * W, *nib = bit + (t == T_Q5_K ? 32 * W : 0);
                for (int p = 0; p < 256; p++) {
                    put_nib(nib + p * H, i, H, o.q[p]);
                    if (t == T_Q5_K) put_bit(bit + p * (W / 8), i, H, o.q[p] >> 4);
                }
                break;
            }
            case T_Q6_K: {
                put16(r, i, o.d);
                for (int j = 0; j < 16; j++) r[2 * W + j * W + i] = (uint8_t)o.sc8[j];
                uint8_t *two = r + 18 * W, *nib = two + 64 * W;
                for (int p = 0; p < 256; p++) { put_two(two + p * (W / 4), i, H, o.q[p] >> 4); put_nib(nib + p * H, i, H, o.q[p]); }
                break;
            }
            }
        }
    }
}

// MARK: - Unpacking (once per panel per matrix multiply; vectorised)

#define QW 16
#include "unpack_impl.h"
#undef QW
#define QW 32
#include "unpack_impl.h"
#undef QW

void strata_qpanel_unpack(int t, const void *panel, int k, int W, float *out) {
    if (W == 32) unpack_32(t, panel, k, out);
    else unpack_16(t, panel, k, out);
}

int strata_qpanel_row_pair(int t, const void *panel, size_t panel_bytes, int k, int W, const float *a,
                           float *c, int validb, int accumulate) {
    const uint8_t *pa = panel, *pb = pa + panel_bytes;
    if (W == 32) return row_pair_32(t, pa, pb, k, a, c, c + 32, validb, accumulate);
    return row_pair_16(t, pa, pb, k, a, c, c + 16, validb, accumulate);
}

void strata_qpanel_rows(int t, const void *panel, int k, int W, const float *a, int lda, int m,
                        float *c, int ldc, int valid, int accumulate) {
    for (int r = 0; r < m; r += 4) {
        int n = m - r < 4 ? m - r : 4;
        if (W == 32) rows_32(t, panel, k, a + (size_t)r * lda, lda, n, c + (size_t)r * ldc, ldc, valid, accumulate);
        else rows_16(t, panel, k, a + (size_t)r * lda, lda, n, c + (size_t)r * ldc, ldc, valid, accumulate);
    }
}
