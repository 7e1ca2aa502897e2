/*
 * AVX2 + FMA versions of the search kernels (see kernels.h), compiled with per-function
 * target attributes so the library still runs on CPUs without AVX2.
 *
 * gemm: register-blocked 3 rows x 32 columns (12 ymm accumulators, four loads of Bt per k
 * shared by three broadcast FMAs).
 * decode: the nbits residual bytes of 8 dims are spread to one byte per lane, shifted and
 * masked to bucket indices and mapped to weights with in-register permutes.
 */
#include "codec.h"
#include "kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "cp_cpu.h"

#define CP_AVX2 __attribute__((target("avx2,fma,bmi2")))
#define CP_AVX2_INLINE static inline __attribute__((always_inline)) CP_AVX2

CP_AVX2_INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CP_AVX2_INLINE float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CP_AVX2_INLINE void gemm_block(const float *A, int nr, int d, const float *Bt, int nqp, int cb,
                               float *out)
{
    __m256 acc[3][4];
    for (int r = 0; r < 3; r++)
        for (int q = 0; q < 4; q++) acc[r][q] = _mm256_setzero_ps();
    for (int j = 0; j < d; j++) {
        const float *b = Bt + (int64_t)j * nqp + cb;
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 b2 = _mm256_loadu_ps(b + 16), b3 = _mm256_loadu_ps(b + 24);
        for (int r = 0; r < 3; r++) {
            if (r >= nr) break;
            __m256 a = _mm256_broadcast_ss(A + (int64_t)r * d + j);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(a, b2, acc[r][2]);
            acc[r][3] = _mm256_fmadd_ps(a, b3, acc[r][3]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int q = 0; q < 4; q++) _mm256_storeu_ps(out + (int64_t)r * nqp + cb + 8 * q, acc[r][q]);
}

CP_AVX2 static void gemm_rows3(const float *A, int d, const float *Bt, int nqp, int cb, float *o)
{
    gemm_block(A, 3, d, Bt, nqp, cb, o);
}

CP_AVX2 static void gemm_rows_tail(const float *A, int nr, int d, const float *Bt, int nqp,
                                   int cb, float *o)
{
    if (nr == 1)
        gemm_block(A, 1, d, Bt, nqp, cb, o);
    else
        gemm_block(A, 2, d, Bt, nqp, cb, o);
}

CP_AVX2 static void gemm_avx2(const float *A, int64_t rows, int d, const float *Bt, int nqp,
                              float *out)
{
    int64_t r = 0;
    for (; r + 3 <= rows; r += 3)
        for (int cb = 0; cb < nqp; cb += 32) gemm_rows3(A + r * d, d, Bt, nqp, cb, out + r * nqp);
    if (r < rows)
        for (int cb = 0; cb < nqp; cb += 32)
            gemm_rows_tail(A + r * d, (int)(rows - r), d, Bt, nqp, cb, out + r * nqp);
}

CP_AVX2 static void rowmax_avx2(const float *S, int64_t rows, int nqp, int nq, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *s = S + r * nqp;
        __m256 m = _mm256_set1_ps(-INFINITY);
        int i = 0;
        for (; i + 8 <= nq; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + i));
        float best = hmax8(m);
        for (; i < nq; i++) best = s[i] > best ? s[i] : best;
        out[r] = best;
    }
}

CP_AVX2 static void topn_cols_avx2(const float *S, int64_t rows, int nqp, int nq, int n,
                                   int32_t *idx, float *val)
{
    float bar[32];
    cp_topn_reset(nq, n, idx, val);
    for (int cb = 0; cb < nq; cb += 32) {
        int w = nq - cb < 32 ? nq - cb : 32;
        for (int i = 0; i < 32; i++) bar[i] = i < w ? -INFINITY : INFINITY;
        __m256 b[4];
        for (int q = 0; q < 4; q++) b[q] = _mm256_loadu_ps(bar + 8 * q);
        for (int64_t r = 0; r < rows; r++) {
            const float *s = S + r * nqp + cb;
            uint32_t hit = 0;
            for (int q = 0; q < 4; q++)
                hit |= (uint32_t)_mm256_movemask_ps(
                           _mm256_cmp_ps(_mm256_loadu_ps(s + 8 * q), b[q], _CMP_GT_OQ))
                       << (8 * q);
            if (!hit) continue;
            while (hit) {
                int i = __builtin_ctz(hit);
                hit &= hit - 1;
                int col = cb + i;
                cp_topn_insert(idx + col * n, val + col * n, n, (int32_t)r, s[i]);
                bar[i] = val[col * n + n - 1];
            }
            for (int q = 0; q < 4; q++) b[q] = _mm256_loadu_ps(bar + 8 * q);
        }
    }
}

CP_AVX2 static float interact_avx2(const float *S, int nqp, const int32_t *codes, int n_codes,
                                   const uint8_t *keep)
{
    __m256 total = _mm256_setzero_ps();
    for (int cb = 0; cb < nqp; cb += 32) {
        __m256 m[4];
        for (int q = 0; q < 4; q++) m[q] = _mm256_set1_ps(-INFINITY);
        int kept = 0;
        for (int t = 0; t < n_codes; t++) {
            int32_t c = codes[t];
            if (keep && !keep[c]) continue;
            kept = 1;
            const float *s = S + (int64_t)c * nqp + cb;
            for (int q = 0; q < 4; q++) m[q] = _mm256_max_ps(m[q], _mm256_loadu_ps(s + 8 * q));
        }
        if (!kept) return -INFINITY;
        total = _mm256_add_ps(total, _mm256_add_ps(_mm256_add_ps(m[0], m[1]),
                                                   _mm256_add_ps(m[2], m[3])));
    }
    return hsum8(total);
}

typedef struct decode_consts {
    __m128i spread;
    __m256i shift, mask;
    __m256 w_lo, w_hi;
    const float *w_all;
    int nbits;
} decode_consts;

CP_AVX2 static void decode_consts_init(decode_consts *k, const cp_decode_lut *lut)
{
    int nbits = lut->nbits, per_byte = 8 / nbits;
    uint8_t spread[16] = {0};
    if (nbits == 8) per_byte = 1;
    int32_t shift[8];
    for (int l = 0; l < 8; l++) {
        spread[l] = (uint8_t)(l / per_byte);
        shift[l] = 8 - nbits * (l % per_byte + 1);
    }
    k->spread = _mm_loadu_si128((const __m128i *)spread);
    k->shift = _mm256_loadu_si256((const __m256i *)shift);
    k->mask = _mm256_set1_epi32((1 << nbits) - 1);
    k->w_lo = _mm256_loadu_ps(lut->w);
    k->w_hi = _mm256_loadu_ps(lut->w + 8);
    k->nbits = nbits;
    k->w_all = lut->w;
}

/* Weights of 8 dims whose residual bits are the nbits bytes at bytes. */
CP_AVX2_INLINE __m256 decode_chunk(const decode_consts *k, const uint8_t *bytes)
{
    if (k->nbits == 8) /* one byte per dim, 256 weights: gather */
        return _mm256_i32gather_ps(k->w_all, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)bytes)), 4);
    uint32_t raw = 0;
    memcpy(&raw, bytes, (size_t)k->nbits);
    __m128i b = _mm_shuffle_epi8(_mm_cvtsi32_si128((int)raw), k->spread);
    __m256i v = _mm256_and_si256(_mm256_srlv_epi32(_mm256_cvtepu8_epi32(b), k->shift), k->mask);
    __m256 lo = _mm256_permutevar8x32_ps(k->w_lo, v);
    if (k->nbits < 4) return lo;
    __m256 hi = _mm256_permutevar8x32_ps(k->w_hi, v);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(v, 28)));
}

/* C + w (COLBERT) or C + scale * w (SCALED: fused, as the portable fmaf). */
CP_AVX2_INLINE __m256 combine(__m256 c, __m256 w, bool scaled, __m256 sc)
{
    return scaled ? _mm256_fmadd_ps(w, sc, c) : _mm256_add_ps(c, w);
}

CP_AVX2 static void decode_avx2(const cp_codec *codec, const cp_decode_lut *lut,
                                const int32_t *codes, const uint8_t *residuals, int n, float *out,
                                float *inv_norm)
{
    decode_consts k;
    decode_consts_init(&k, lut);
    int d = codec->dim, rb = cp_residual_bytes(d, codec->nbits),
        stride = cp_codec_token_bytes(codec);
    bool scaled = codec->variant == CP_CODEC_SCALED;
    for (int t = 0; t < n; t++) {
        const float *cent = codec->centroids + (int64_t)codes[t] * d;
        const uint8_t *res = residuals + (int64_t)t * stride;
        __m256 sc = _mm256_set1_ps(scaled ? codec->scales[res[rb]] : 1.0f);
        float *o = out + (int64_t)t * d;
        __m256 ss = _mm256_setzero_ps();
        for (int j = 0; j < d; j += 8) {
            __m256 v = combine(_mm256_loadu_ps(cent + j), decode_chunk(&k, res + j / 8 * k.nbits),
                               scaled, sc);
            _mm256_storeu_ps(o + j, v);
            ss = _mm256_fmadd_ps(v, v, ss);
        }
        float s = hsum8(ss);
        inv_norm[t] = s > 0.0f ? 1.0f / sqrtf(s) : 0.0f;
    }
}

CP_AVX2 static void table_scores_avx2(const cp_codec *codec, const cp_decode_lut *lut,
                                      const float *S, int nqp, const float *T,
                                      const int32_t *codes, const uint8_t *residuals, int n,
                                      float *out, float *inv_norm)
{
    decode_consts k;
    decode_consts_init(&k, lut);
    int d = codec->dim, rb = cp_residual_bytes(d, codec->nbits),
        stride = cp_codec_token_bytes(codec);
    bool scaled = codec->variant == CP_CODEC_SCALED;
    for (int r = 0; r < n; r++) {
        const uint8_t *res = residuals + (int64_t)r * stride;
        const float *cent = codec->centroids + (int64_t)codes[r] * d;
        __m256 sc = _mm256_set1_ps(scaled ? codec->scales[res[rb]] : 1.0f);
        __m256 ss = _mm256_setzero_ps();
        for (int j = 0; j < d; j += 8) {
            __m256 v = combine(_mm256_loadu_ps(cent + j), decode_chunk(&k, res + j / 8 * k.nbits),
                               scaled, sc);
            ss = _mm256_fmadd_ps(v, v, ss);
        }
        float s2 = hsum8(ss);
        inv_norm[r] = s2 > 0.0f ? 1.0f / sqrtf(s2) : 0.0f;
        for (int cb = 0; cb < nqp; cb += 32) {
            const float *s = S + (int64_t)codes[r] * nqp + cb;
            /* COLBERT: S + the table rows; SCALED: S + scale * (sum of the rows) */
            __m256 a[4];
            for (int q = 0; q < 4; q++)
                a[q] = scaled ? _mm256_setzero_ps() : _mm256_loadu_ps(s + 8 * q);
            for (int p = 0; p < rb; p++) {
                const float *t = T + ((int64_t)p * 256 + res[p]) * nqp + cb;
                for (int q = 0; q < 4; q++) a[q] = _mm256_add_ps(a[q], _mm256_loadu_ps(t + 8 * q));
            }
            if (scaled)
                for (int q = 0; q < 4; q++)
                    a[q] = _mm256_fmadd_ps(a[q], sc, _mm256_loadu_ps(s + 8 * q));
            for (int q = 0; q < 4; q++) _mm256_storeu_ps(out + (int64_t)r * nqp + cb + 8 * q, a[q]);
        }
    }
}

CP_AVX2 static void colmax_scaled_avx2(const float *S, int rows, int nqp, const float *scale,
                                       float *colmax)
{
    for (int cb = 0; cb < nqp; cb += 32) {
        __m256 m[4];
        for (int q = 0; q < 4; q++) m[q] = _mm256_loadu_ps(colmax + cb + 8 * q);
        for (int r = 0; r < rows; r++) {
            const float *s = S + (int64_t)r * nqp + cb;
            __m256 f = _mm256_set1_ps(scale[r]);
            for (int q = 0; q < 4; q++)
                m[q] = _mm256_max_ps(m[q], _mm256_mul_ps(_mm256_loadu_ps(s + 8 * q), f));
        }
        for (int q = 0; q < 4; q++) _mm256_storeu_ps(colmax + cb + 8 * q, m[q]);
    }
}

static const cp_kernels avx2 = {
    "avx2",        gemm_avx2,   rowmax_avx2,        topn_cols_avx2,
    interact_avx2, decode_avx2, table_scores_avx2, colmax_scaled_avx2,
};

const cp_kernels *cp_kernels_avx2(void)
{
    return (cp_cpu_features() & CP_CPU_AVX2) ? &avx2 : NULL;
}

#else

const cp_kernels *cp_kernels_avx2(void)
{
    return NULL;
}

#endif
