// Panel kernels for one panel width, included by quant.c once per width with QW defined (16 or
// 32). Values are built in vectors of H = W / 2 lanes (clang vector extensions: AVX-512, AVX2,
// SSE or NEON code, whatever the target): `lo` for outputs 0..<H, `hi` for H..<W. Each type's
// walker produces the two vectors for every input p and hands them to a consumer: either a store
// into the float panel (`R == 0`), or R rows' fused multiply-adds, accumulated in registers.
#define W QW
#define H (QW / 2)
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, CAT(_, QW))
#define VF FN(vf)
#define VI FN(vi)
#define VU FN(vu)
#define VB FN(vb)
#define VS FN(vs)
#define VHF FN(vhf)

typedef float VF __attribute__((ext_vector_type(H)));
typedef int32_t VI __attribute__((ext_vector_type(H)));
typedef uint32_t VU __attribute__((ext_vector_type(H)));
typedef uint8_t VB __attribute__((ext_vector_type(H)));
typedef int8_t VS __attribute__((ext_vector_type(H)));
typedef _Float16 VHF __attribute__((ext_vector_type(H)));

#if QW == 32
static const VU FN(lane) = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
#else
static const VU FN(lane) = {0, 1, 2, 3, 4, 5, 6, 7};
#endif

#define AI static inline __attribute__((always_inline))

AI VF FN(halves)(const uint8_t *p) { VHF h; memcpy(&h, p, sizeof h); return __builtin_convertvector(h, VF); }
AI VB FN(bytes)(const uint8_t *p) { VB b; memcpy(&b, p, sizeof b); return b; }
AI VI FN(u8)(VB b) { return __builtin_convertvector(b, VI); }
AI uint32_t FN(word)(const uint8_t *p, int n) { uint32_t v = 0; memcpy(&v, p, (size_t)n); return v; }
/// Bit i (n = 1) or bits 2i, 2i+1 (n = 2) of a word, for lane i.
AI VI FN(bits)(uint32_t w, int n) { VU v = (VU)w; return (VI)((v >> (FN(lane) * (uint32_t)n)) & ((1u << n) - 1)); }

/// The consumer: stores the values of input p, or adds them times each row's input p.
typedef struct { VF acc[4][2]; const float *a; int lda; float *out; } FN(sink);

AI void FN(take)(FN(sink) *s, const int R, int p, VF lo, VF hi) {
    if (R == 0) {
        memcpy(s->out + (size_t)p * W, &lo, sizeof lo);
        memcpy(s->out + (size_t)p * W + H, &hi, sizeof hi);
        return;
    }
    for (int r = 0; r < R; r++) {
        VF x = s->a[(size_t)r * s->lda + p];
        s->acc[r][0] = __builtin_elementwise_fma(x, lo, s->acc[r][0]);
        s->acc[r][1] = __builtin_elementwise_fma(x, hi, s->acc[r][1]);
    }
}

/// The values d · q of input p (Q3_K, Q6_K: the products are exact or rounded once, as ggml's).
AI void FN(take_scaled)(FN(sink) *s, const int R, int p, VI q0, VI q1, VF d0, VF d1) {
    FN(take)(s, R, p, d0 * __builtin_convertvector(q0, VF), d1 * __builtin_convertvector(q1, VF));
}

/// The values d · q − m of input p (Q2_K, Q4_K, Q5_K). d · q is exact in float (at most 4 + 11 + 5
/// significant bits), so one fused multiply-add rounds exactly as ggml's d · q − m does.
AI void FN(take_fma)(FN(sink) *s, const int R, int p, VI q0, VI q1, VF d0, VF d1, VF m0, VF m1) {
    FN(take)(s, R, p, __builtin_elementwise_fma(d0, __builtin_convertvector(q0, VF), -m0),
             __builtin_elementwise_fma(d1, __builtin_convertvector(q1, VF), -m1));
}

AI void FN(walk_q4q5)(const uint8_t *src, int k, FN(sink) *s, const int R, const int hasMin, const int five) {
    const size_t rec = (size_t)((hasMin ? 4 : 2) * W + (five ? 4 * W : 0) + 16 * W);
    for (int b = 0; b < k / 32; b++) {
        const uint8_t *r = src + (size_t)b * rec;
        strata_prefetch_ahead(r, rec);
        VF d0 = FN(halves)(r), d1 = FN(halves)(r + 2 * H), m0 = 0, m1 = 0;
        if (hasMin) { m0 = FN(halves)(r + 2 * W); m1 = FN(halves)(r + 2 * W + 2 * H); }
        const uint8_t *bits = r + (hasMin ? 4 : 2) * W, *nib = bits + (five ? 4 * W : 0);
        for (int p = 0; p < 32; p++) {
            VI q = FN(u8)(FN(bytes)(nib + p * H)), q0 = q & 15, q1 = q >> 4;   // widened once, then split
            if (five) {
                q0 |= FN(bits)(FN(word)(bits + p * (W / 8), H / 8), 1) << 4;
                q1 |= FN(bits)(FN(word)(bits + p * (W / 8) + H / 8, H / 8), 1) << 4;
            }
            VF lo, hi;
            if (hasMin) {
                // q · d is exact in float (≤ 5 + 11 significant bits), so one fused multiply-add
                // rounds exactly as ggml's q · d + m does.
                lo = __builtin_elementwise_fma(__builtin_convertvector(q0, VF), d0, m0);
                hi = __builtin_elementwise_fma(__builtin_convertvector(q1, VF), d1, m1);
            } else {
                const int off = five ? 16 : 8;
                lo = __builtin_convertvector(q0 - off, VF) * d0;
                hi = __builtin_convertvector(q1 - off, VF) * d1;
            }
            FN(take)(s, R, b * 32 + p, lo, hi);
        }
    }
}

AI void FN(walk_q8_0)(const uint8_t *src, int k, FN(sink) *s, const int R) {
    for (int b = 0; b < k / 32; b++) {
        const uint8_t *r = src + (size_t)b * 34 * W;
        strata_prefetch_ahead(r, 34 * W);
        VF d0 = FN(halves)(r), d1 = FN(halves)(r + 2 * H);
        const uint8_t *q = r + 2 * W;
        for (int p = 0; p < 32; p++) {
            VS q0, q1;
            memcpy(&q0, q + p * W, sizeof q0);
            memcpy(&q1, q + p * W + H, sizeof q1);
            FN(take)(s, R, b * 32 + p, __builtin_convertvector(q0, VF) * d0, __builtin_convertvector(q1, VF) * d1);
        }
    }
}

AI void FN(walk_q2_K)(const uint8_t *src, int k, FN(sink) *s, const int R) {
    for (int b = 0; b < k / 256; b++) {
        const uint8_t *r = src + (size_t)b * 84 * W, *sc = r + 4 * W, *two = r + 20 * W;
        strata_prefetch_ahead(r, 84 * W);
        VF d0 = FN(halves)(r), d1 = FN(halves)(r + 2 * H), n0 = FN(halves)(r + 2 * W), n1 = FN(halves)(r + 2 * W + 2 * H);
        for (int j = 0; j < 16; j++) {
            VB s0 = FN(bytes)(sc + j * W), s1 = FN(bytes)(sc + j * W + H);
            VF dl0 = d0 * __builtin_convertvector(FN(u8)(s0 & 15), VF), dl1 = d1 * __builtin_convertvector(FN(u8)(s1 & 15), VF);
            VF ml0 = n0 * __builtin_convertvector(FN(u8)(s0 >> 4), VF), ml1 = n1 * __builtin_convertvector(FN(u8)(s1 >> 4), VF);
            for (int p = j * 16; p < j * 16 + 16; p++) {
                VI q0 = FN(bits)(FN(word)(two + p * (W / 4), H / 4), 2), q1 = FN(bits)(FN(word)(two + p * (W / 4) + H / 4, H / 4), 2);
                FN(take_fma)(s, R, b * 256 + p, q0, q1, dl0, dl1, ml0, ml1);
            }
        }
    }
}

AI void FN(walk_q3_K)(const uint8_t *src, int k, FN(sink) *s, const int R) {
    for (int b = 0; b < k / 256; b++) {
        const uint8_t *r = src + (size_t)b * 114 * W, *sc = r + 2 * W, *bit = r + 18 * W, *two = bit + 32 * W;
        strata_prefetch_ahead(r, 114 * W);
        VF d0 = FN(halves)(r), d1 = FN(halves)(r + 2 * H);
        for (int j = 0; j < 16; j++) {
            VS s0, s1;
            memcpy(&s0, sc + j * W, sizeof s0); memcpy(&s1, sc + j * W + H, sizeof s1);
            VF dl0 = d0 * __builtin_convertvector(s0, VF), dl1 = d1 * __builtin_convertvector(s1, VF);
            for (int p = j * 16; p < j * 16 + 16; p++) {
                VI q0 = FN(bits)(FN(word)(two + p * (W / 4), H / 4), 2), q1 = FN(bits)(FN(word)(two + p * (W / 4) + H / 4, H / 4), 2);
                VI h0 = FN(bits)(FN(word)(bit + p * (W / 8), H / 8), 1), h1 = FN(bits)(FN(word)(bit + p * (W / 8) + H / 8, H / 8), 1);
                q0 -= (1 - h0) * 4; q1 -= (1 - h1) * 4;
                FN(take_scaled)(s, R, b * 256 + p, q0, q1, dl0, dl1);
            }
        }
    }
}

AI void FN(walk_q45_K)(const uint8_t *src, int k, FN(sink) *s, const int R, const int five) {
    const size_t rec = five ? 180 * W : 148 * W;
    for (int b = 0; b < k / 256; b++) {
        const uint8_t *r = src + (size_t)b * rec, *sc = r + 4 * W, *mn = r + 12 * W;
        strata_prefetch_ahead(r, rec);
        const uint8_t *bit = r + 20 * W, *nib = bit + (five ? 32 * W : 0);
        VF d0 = FN(halves)(r), d1 = FN(halves)(r + 2 * H), n0 = FN(halves)(r + 2 * W), n1 = FN(halves)(r + 2 * W + 2 * H);
        for (int j = 0; j < 8; j++) {
            VF dl0 = d0 * __builtin_convertvector(FN(u8)(FN(bytes)(sc + j * W)), VF);
            VF dl1 = d1 * __builtin_convertvector(FN(u8)(FN(bytes)(sc + j * W + H)), VF);
            VF ml0 = n0 * __builtin_convertvector(FN(u8)(FN(bytes)(mn + j * W)), VF);
            VF ml1 = n1 * __builtin_convertvector(FN(u8)(FN(bytes)(mn + j * W + H)), VF);
            for (int p = j * 32; p < j * 32 + 32; p++) {
                VI q = FN(u8)(FN(bytes)(nib + p * H)), q0 = q & 15, q1 = q >> 4;   // widened once, then split
                if (five) {
                    q0 |= FN(bits)(FN(word)(bit + p * (W / 8), H / 8), 1) << 4;
                    q1 |= FN(bits)(FN(word)(bit + p * (W / 8) + H / 8, H / 8), 1) << 4;
                }
                FN(take_fma)(s, R, b * 256 + p, q0, q1, dl0, dl1, ml0, ml1);
            }
        }
    }
}

AI void FN(walk_q6_K)(const uint8_t *src, int k, FN(sink) *s, const int R) {
    for (int b = 0; b < k / 256; b++) {
        const uint8_t *r = src + (size_t)b * 210 * W, *sc = r + 2 * W, *two = r + 18 * W, *nib = two + 64 * W;
        strata_prefetch_ahead(r, 210 * W);
        VF d0 = FN(halves)(r), d1 = FN(halves)(r + 2 * H);
        for (int j = 0; j < 16; j++) {
            VS s0, s1;
            memcpy(&s0, sc + j * W, sizeof s0); memcpy(&s1, sc + j * W + H, sizeof s1);
            VF dl0 = d0 * __builtin_convertvector(s0, VF), dl1 = d1 * __builtin_convertvector(s1, VF);
            for (int p = j * 16; p < j * 16 + 16; p++) {
                VI q = FN(u8)(FN(bytes)(nib + p * H));   // widened once, then split
                VI q0 = ((q & 15) | FN(bits)(FN(word)(two + p * (W / 4), H / 4), 2) << 4) - 32;
                VI q1 = ((q >> 4) | FN(bits)(FN(word)(two + p * (W / 4) + H / 4, H / 4), 2) << 4) - 32;
                FN(take_scaled)(s, R, b * 256 + p, q0, q1, dl0, dl1);
            }
        }
    }
}

AI void FN(walk_float)(const uint8_t *src, int k, FN(sink) *s, const int R, const int type) {
    const size_t step = (size_t)W * (type == T_F32 ? 4 : 2);
    for (int p = 0; p < k; p++) {
        if ((p & 15) == 0) strata_prefetch_ahead(src + (size_t)p * step, 16 * step);
        VF lo, hi;
        if (type == T_F32) { memcpy(&lo, src + (size_t)p * W * 4, sizeof lo); memcpy(&hi, src + (size_t)p * W * 4 + H * 4, sizeof hi); }
        else if (type == T_F16) { lo = FN(halves)(src + (size_t)p * W * 2); hi = FN(halves)(src + (size_t)p * W * 2 + 2 * H); }
        else {
            VHF a, c;   // bf16: the upper half of a float's bits
            memcpy(&a, src + (size_t)p * W * 2, sizeof a); memcpy(&c, src + (size_t)p * W * 2 + 2 * H, sizeof c);
            typedef uint16_t V16 __attribute__((ext_vector_type(H)));
            VU ua = __builtin_convertvector((V16)a, VU) << 16, uc = __builtin_convertvector((V16)c, VU) << 16;
            lo = (VF)ua; hi = (VF)uc;
        }
        FN(take)(s, R, p, lo, hi);
    }
}

AI void FN(walk)(int t, const uint8_t *src, int k, FN(sink) *s, const int R) {
    switch (t) {
    case T_F32: case T_F16: case T_BF16: FN(walk_float)(src, k, s, R, t); break;
    case T_Q4_0: FN(walk_q4q5)(src, k, s, R, 0, 0); break;
    case T_Q4_1: FN(walk_q4q5)(src, k, s, R, 1, 0); break;
    case T_Q5_0: FN(walk_q4q5)(src, k, s, R, 0, 1); break;
    case T_Q5_1: FN(walk_q4q5)(src, k, s, R, 1, 1); break;
    case T_Q8_0: FN(walk_q8_0)(src, k, s, R); break;
    case T_Q2_K: FN(walk_q2_K)(src, k, s, R); break;
    case T_Q3_K: FN(walk_q3_K)(src, k, s, R); break;
    case T_Q4_K: FN(walk_q45_K)(src, k, s, R, 0); break;
    case T_Q5_K: FN(walk_q45_K)(src, k, s, R, 1); break;
    case T_Q6_K: FN(walk_q6_K)(src, k, s, R); break;
    }
}

static void FN(unpack)(int t, const void *panel, int k, float *out) {
    FN(sink) s;
    s.out = out; s.a = 0; s.lda = 0;
    FN(walk)(t, panel, k, &s, 0);
}

AI void FN(rows_r)(int t, const uint8_t *panel, int k, const float *a, int lda, const int R, float *c, int ldc, int valid, int accumulate) {
    FN(sink) s;
    for (int r = 0; r < 4; r++) { s.acc[r][0] = 0; s.acc[r][1] = 0; }
    s.a = a; s.lda = lda; s.out = 0;
    FN(walk)(t, panel, k, &s, R);
    for (int r = 0; r < R; r++) {
        float v[W];
        memcpy(v, &s.acc[r][0], sizeof(VF));
        memcpy(v + H, &s.acc[r][1], sizeof(VF));
        float *cr = c + (size_t)r * ldc;
        for (int j = 0; j < valid; j++) cr[j] = accumulate ? v[j] + cr[j] : v[j];
    }
}

static void FN(rows)(int t, const void *panel, int k, const float *a, int lda, int m, float *c, int ldc, int valid, int accumulate) {
    switch (m) {
    case 1: FN(rows_r)(t, panel, k, a, lda, 1, c, ldc, valid, accumulate); break;
    case 2: FN(rows_r)(t, panel, k, a, lda, 2, c, ldc, valid, accumulate); break;
    case 3: FN(rows_r)(t, panel, k, a, lda, 3, c, ldc, valid, accumulate); break;
    default: FN(rows_r)(t, panel, k, a, lda, 4, c, ldc, valid, accumulate); break;
    }
}

/// One row against two panels at once (Q4_0, Q4_1, Q8_0): four multiply-add chains side by side
/// instead of two, so that a single row is not held to the latency of one chain (on a Zen 3 core,
/// Q4_1, one row: 12.4 G weights/s walking one panel, 13.7–14.9 walking two). Each output's values and
/// chain are exactly the walker's, so results are bit for bit those of `rows` and of the unpacked
/// panel. Returns 0, doing nothing, for other types.
static int FN(row_pair)(int t, const uint8_t *pa, const uint8_t *pb, int k, const float *x, float *ca, float *cb,
                        int validb, int accumulate) {
    if (t != T_Q4_0 && t != T_Q4_1 && t != T_Q8_0) return 0;
    VF acc[2][2] = {{0, 0}, {0, 0}};
    const int hasMin = t == T_Q4_1;
    const size_t rec = t == T_Q8_0 ? (size_t)34 * W : (size_t)((hasMin ? 4 : 2) * W + 16 * W);
    for (int b = 0; b < k / 32; b++) {
        const uint8_t *r[2] = {pa + (size_t)b * rec, pb + (size_t)b * rec};
        VF d[2][2], m[2][2];
        for (int i = 0; i < 2; i++) {
            strata_prefetch_ahead(r[i], rec);
            d[i][0] = FN(halves)(r[i]); d[i][1] = FN(halves)(r[i] + 2 * H);
            m[i][0] = 0; m[i][1] = 0;
            if (hasMin) { m[i][0] = FN(halves)(r[i] + 2 * W); m[i][1] = FN(halves)(r[i] + 2 * W + 2 * H); }
        }
        const float *xb = x + (size_t)b * 32;
        if (t == T_Q8_0) {
            for (int p = 0; p < 32; p++) {
                VF xv = xb[p];
                for (int i = 0; i < 2; i++) {
                    VS q0, q1;
                    memcpy(&q0, r[i] + 2 * W + p * W, sizeof q0);
                    memcpy(&q1, r[i] + 2 * W + p * W + H, sizeof q1);
                    acc[i][0] = __builtin_elementwise_fma(xv, __builtin_convertvector(q0, VF) * d[i][0], acc[i][0]);
                    acc[i][1] = __builtin_elementwise_fma(xv, __builtin_convertvector(q1, VF) * d[i][1], acc[i][1]);
                }
            }
        } else {
            const size_t nib = (size_t)(hasMin ? 4 : 2) * W;
            for (int p = 0; p < 32; p++) {
                VF xv = xb[p];
                for (int i = 0; i < 2; i++) {
                    // Widened first, then split: one load-and-widen, a mask and a shift per
                    // vector (splitting the bytes first costs a second widening).
                    VI q = FN(u8)(FN(bytes)(r[i] + nib + p * H)), q0 = q & 15, q1 = q >> 4;
                    VF lo, hi;
                    if (hasMin) {
                        lo = __builtin_elementwise_fma(__builtin_convertvector(q0, VF), d[i][0], m[i][0]);
                        hi = __builtin_elementwise_fma(__builtin_convertvector(q1, VF), d[i][1], m[i][1]);
                    } else {
                        lo = __builtin_convertvector(q0 - 8, VF) * d[i][0];
                        hi = __builtin_convertvector(q1 - 8, VF) * d[i][1];
                    }
                    acc[i][0] = __builtin_elementwise_fma(xv, lo, acc[i][0]);
                    acc[i][1] = __builtin_elementwise_fma(xv, hi, acc[i][1]);
                }
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        float v[W];
        memcpy(v, &acc[i][0], sizeof(VF));
        memcpy(v + H, &acc[i][1], sizeof(VF));
        float *c = i == 0 ? ca : cb;
        const int n = i == 0 ? W : validb;
        for (int j = 0; j < n; j++) c[j] = accumulate ? v[j] + c[j] : v[j];
    }
    return 1;
}

#undef W
#undef H
#undef FN
#undef VF
#undef VI
#undef VU
#undef VB
#undef VS
#undef VHF
#undef AI
