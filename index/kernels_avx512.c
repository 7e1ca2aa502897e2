/*
 * AVX-512 (F/BW/DQ/VL) versions of the search kernels (see kernels.h). Compiled with
 * per-function target attributes so the library still runs on CPUs without AVX-512; the
 * table is only handed out when cp_cpu_features() reports the instructions.
 *
 * gemm: register-blocked 6 rows x 32 columns (12 zmm accumulators, two loads of Bt per k
 * shared by six broadcast FMAs), which keeps both FMA ports busy; Bt (d x 32 floats =
 * 16 KiB for d = 128) stays in L1 while A streams.
 * decode: the 2*nbits residual bytes of 16 dims are spread to one byte per lane with a
 * byte shuffle, shifted per lane and masked to bucket indices, then mapped to weights with
 * one in-register permute (no memory LUT); nbits = 8 (256 weights) uses a gather.
 */
#include "codec.h"
#include "kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "cp_cpu.h"

#define CP_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")))
#define CP_AVX512_INLINE static inline __attribute__((always_inline)) CP_AVX512

enum { GEMM_ROWS = 12 }; /* rows per register block: 24 zmm accumulators */

CP_AVX512_INLINE void gemm_block(const float *A, int nr, int d, const float *Bt, int nqp,
                                 int cb, float *out)
{
    __m512 acc[12][2];
    for (int r = 0; r < 12; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int j = 0; j < d; j++) {
        __m512 b0 = _mm512_loadu_ps(Bt + (int64_t)j * nqp + cb);
        __m512 b1 = _mm512_loadu_ps(Bt + (int64_t)j * nqp + cb + 16);
        for (int r = 0; r < 12; r++) {
            if (r >= nr) break;
            __m512 a = _mm512_set1_ps(A[(int64_t)r * d + j]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < nr; r++) {
        _mm512_storeu_ps(out + (int64_t)r * nqp + cb, acc[r][0]);
        _mm512_storeu_ps(out + (int64_t)r * nqp + cb + 16, acc[r][1]);
    }
}

/* One entry point per row count so that the compiler sees nr as a constant and keeps every
 * accumulator in a register. */
CP_AVX512 static void gemm_rows_full(const float *A, int d, const float *Bt, int nqp, int cb, float *o)
{
    gemm_block(A, GEMM_ROWS, d, Bt, nqp, cb, o);
}

CP_AVX512 static void gemm_rows_tail(const float *A, int nr, int d, const float *Bt, int nqp,
                                     int cb, float *o)
{
    switch (nr) {
    case 1: gemm_block(A, 1, d, Bt, nqp, cb, o); break;
    case 2: gemm_block(A, 2, d, Bt, nqp, cb, o); break;
    case 3: gemm_block(A, 3, d, Bt, nqp, cb, o); break;
    case 4: gemm_block(A, 4, d, Bt, nqp, cb, o); break;
    case 5: gemm_block(A, 5, d, Bt, nqp, cb, o); break;
    case 6: gemm_block(A, 6, d, Bt, nqp, cb, o); break;
    case 7: gemm_block(A, 7, d, Bt, nqp, cb, o); break;
    case 8: gemm_block(A, 8, d, Bt, nqp, cb, o); break;
    case 9: gemm_block(A, 9, d, Bt, nqp, cb, o); break;
    case 10: gemm_block(A, 10, d, Bt, nqp, cb, o); break;
    default: gemm_block(A, 11, d, Bt, nqp, cb, o); break;
    }
}

CP_AVX512 static void gemm_avx512(const float *A, int64_t rows, int d, const float *Bt, int nqp,
                                  float *out)
{
    int64_t r = 0;
    for (; r + GEMM_ROWS <= rows; r += GEMM_ROWS)
        for (int cb = 0; cb < nqp; cb += 32)
            gemm_rows_full(A + r * d, d, Bt, nqp, cb, out + r * nqp);
    if (r < rows)
        for (int cb = 0; cb < nqp; cb += 32)
            gemm_rows_tail(A + r * d, (int)(rows - r), d, Bt, nqp, cb, out + r * nqp);
}

CP_AVX512 static void rowmax_avx512(const float *S, int64_t rows, int nqp, int nq, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *s = S + r * nqp;
        __m512 m = _mm512_set1_ps(-INFINITY);
        int i = 0;
        for (; i + 16 <= nq; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(s + i));
        if (i < nq) {
            __mmask16 k = (__mmask16)((1u << (nq - i)) - 1);
            m = _mm512_mask_max_ps(m, k, m, _mm512_loadu_ps(s + i));
        }
        out[r] = _mm512_reduce_max_ps(m);
    }
}

CP_AVX512 static void topn_cols_avx512(const float *S, int64_t rows, int nqp, int nq, int n,
                                       int32_t *idx, float *val)
{
    /* bar[i] = the value row r must beat in column i; padding columns can never win. */
    float bar[32];
    cp_topn_reset(nq, n, idx, val);
    for (int cb = 0; cb < nq; cb += 32) {
        int w = nq - cb < 32 ? nq - cb : 32;
        for (int i = 0; i < 32; i++) bar[i] = i < w ? -INFINITY : INFINITY;
        __m512 bar0 = _mm512_loadu_ps(bar), bar1 = _mm512_loadu_ps(bar + 16);
        for (int64_t r = 0; r < rows; r++) {
            const float *s = S + r * nqp + cb;
            uint32_t hit = (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(s), bar0, _CMP_GT_OQ) |
                           (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(s + 16), bar1, _CMP_GT_OQ) << 16;
            if (!hit) continue;
            while (hit) {
                int i = __builtin_ctz(hit);
                hit &= hit - 1;
                int col = cb + i;
                cp_topn_insert(idx + col * n, val + col * n, n, (int32_t)r, s[i]);
                bar[i] = val[col * n + n - 1];
            }
            bar0 = _mm512_loadu_ps(bar);
            bar1 = _mm512_loadu_ps(bar + 16);
        }
    }
}

CP_AVX512 static float interact_avx512(const float *S, int nqp, const int32_t *codes,
                                       int n_codes, const uint8_t *keep)
{
    __m512 total = _mm512_setzero_ps();
    for (int cb = 0; cb < nqp; cb += 32) {
        __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
        int kept = 0;
        for (int t = 0; t < n_codes; t++) {
            int32_t c = codes[t];
            if (keep && !keep[c]) continue;
            kept = 1;
            const float *s = S + (int64_t)c * nqp + cb;
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s));
            m1 = _mm512_max_ps(m1, _mm512_loadu_ps(s + 16));
        }
        if (!kept) return -INFINITY;
        total = _mm512_add_ps(total, _mm512_add_ps(m0, m1));
    }
    return _mm512_reduce_add_ps(total);
}

/* Lane l of a 16-dim chunk: byte l / per_byte of the chunk, shifted right by
 * 8 - nbits * (l % per_byte + 1). */
typedef struct decode_consts {
    __m128i spread;
    __m512i shift, mask;
    __m512 w;
    const float *w_all;
    int chunk_bytes, byte_per_dim;
} decode_consts;

CP_AVX512 static void decode_consts_init(decode_consts *k, const cp_decode_lut *lut)
{
    int nbits = lut->nbits, per_byte = 8 / nbits;
    uint8_t spread[16];
    int32_t shift[16];
    k->w_all = lut->w;
    k->byte_per_dim = nbits == 8;
    for (int l = 0; l < 16; l++) {
        spread[l] = (uint8_t)(l / per_byte);
        shift[l] = 8 - nbits * (l % per_byte + 1);
    }
    k->spread = _mm_loadu_si128((const __m128i *)spread);
    k->shift = _mm512_loadu_si512(shift);
    k->mask = _mm512_set1_epi32((1 << nbits) - 1);
    k->w = _mm512_loadu_ps(lut->w);
    k->chunk_bytes = 2 * nbits;
}

CP_AVX512_INLINE __m512 decode_chunk(const decode_consts *k, const uint8_t *bytes, int n_bytes)
{
    if (k->byte_per_dim) { /* nbits = 8: one byte per dim, 256 weights: gather */
        uint8_t raw16[16] = {0};
        memcpy(raw16, bytes, (size_t)n_bytes);
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)raw16));
        return _mm512_i32gather_ps(v, k->w_all, 4);
    }
    uint64_t raw = 0;
    memcpy(&raw, bytes, (size_t)n_bytes);
    __m128i b = _mm_shuffle_epi8(_mm_cvtsi64_si128((long long)raw), k->spread);
    __m512i v = _mm512_cvtepu8_epi32(b);
    v = _mm512_and_si512(_mm512_srlv_epi32(v, k->shift), k->mask);
    return _mm512_permutexvar_ps(v, k->w);
}

/* C + w (COLBERT) or C + scale * w (SCALED: fused, as the portable fmaf). */
CP_AVX512_INLINE __m512 combine(__m512 c, __m512 w, bool scaled, __m512 sc)
{
    return scaled ? _mm512_fmadd_ps(w, sc, c) : _mm512_add_ps(c, w);
}

CP_AVX512 static void decode_avx512(const cp_codec *codec, const cp_decode_lut *lut,
                                    const int32_t *codes, const uint8_t *residuals, int n,
                                    float *out, float *inv_norm)
{
    decode_consts k;
    decode_consts_init(&k, lut);
    int d = codec->dim, rb = cp_residual_bytes(d, codec->nbits),
        stride = cp_codec_token_bytes(codec);
    bool scaled = codec->variant == CP_CODEC_SCALED;
    int full = d / 16 * 16;
    __mmask16 tail = (__mmask16)((1u << (d - full)) - 1);
    for (int t = 0; t < n; t++) {
        const float *cent = codec->centroids + (int64_t)codes[t] * d;
        const uint8_t *res = residuals + (int64_t)t * stride;
        __m512 sc = _mm512_set1_ps(scaled ? codec->scales[res[rb]] : 1.0f);
        float *o = out + (int64_t)t * d;
        __m512 ss = _mm512_setzero_ps();
        int j = 0;
        for (; j < full; j += 16) {
            __m512 v =
                combine(_mm512_loadu_ps(cent + j),
                        decode_chunk(&k, res + j / 16 * k.chunk_bytes, k.chunk_bytes), scaled, sc);
            _mm512_storeu_ps(o + j, v);
            ss = _mm512_fmadd_ps(v, v, ss);
        }
        if (tail) {
            __m512 v = combine(_mm512_maskz_loadu_ps(tail, cent + j),
                               decode_chunk(&k, res + j / 16 * k.chunk_bytes, k.chunk_bytes / 2),
                               scaled, sc);
            v = _mm512_maskz_mov_ps(tail, v);
            _mm512_mask_storeu_ps(o + j, tail, v);
            ss = _mm512_fmadd_ps(v, v, ss);
        }
        float s = _mm512_reduce_add_ps(ss);
        inv_norm[t] = s > 0.0f ? 1.0f / sqrtf(s) : 0.0f;
    }
}

/* ||C[code] + w[buckets]|| (SCALED: ||C[code] + scale * w[buckets]||) of one token,
 * decoded in registers only. */
CP_AVX512_INLINE float token_norm2(const decode_consts *k, const float *cent, const uint8_t *res,
                                   int d, int full, __mmask16 tail, bool scaled, __m512 sc)
{
    __m512 ss = _mm512_setzero_ps();
    int j = 0;
    for (; j < full; j += 16) {
        __m512 v =
            combine(_mm512_loadu_ps(cent + j),
                    decode_chunk(k, res + j / 16 * k->chunk_bytes, k->chunk_bytes), scaled, sc);
        ss = _mm512_fmadd_ps(v, v, ss);
    }
    if (j < d) {
        __m512 v =
            combine(_mm512_maskz_loadu_ps(tail, cent + j),
                    decode_chunk(k, res + j / 16 * k->chunk_bytes, k->chunk_bytes / 2), scaled, sc);
        v = _mm512_maskz_mov_ps(tail, v);
        ss = _mm512_fmadd_ps(v, v, ss);
    }
    return _mm512_reduce_add_ps(ss);
}

CP_AVX512 static void table_scores_avx512(const cp_codec *codec, const cp_decode_lut *lut,
                                          const float *S, int nqp, const float *T,
                                          const int32_t *codes, const uint8_t *residuals, int n,
                                          float *out, float *inv_norm)
{
    decode_consts k;
    decode_consts_init(&k, lut);
    int d = codec->dim, rb = cp_residual_bytes(d, codec->nbits), full = d / 16 * 16;
    int stride = cp_codec_token_bytes(codec);
    bool scaled = codec->variant == CP_CODEC_SCALED;
    __mmask16 tail = (__mmask16)((1u << (d - full)) - 1);
    for (int r = 0; r < n; r++) {
        const uint8_t *res = residuals + (int64_t)r * stride;
        __m512 sc = _mm512_set1_ps(scaled ? codec->scales[res[rb]] : 1.0f);
        float s2 = token_norm2(&k, codec->centroids + (int64_t)codes[r] * d, res, d, full, tail,
                               scaled, sc);
        inv_norm[r] = s2 > 0.0f ? 1.0f / sqrtf(s2) : 0.0f;
        for (int cb = 0; cb < nqp; cb += 32) {
            const float *s = S + (int64_t)codes[r] * nqp + cb;
            /* COLBERT: S + the table rows; SCALED: S + scale * (sum of the rows), the sum
             * accumulated in the same order as the portable kernel's */
            __m512 a0 = scaled ? _mm512_setzero_ps() : _mm512_loadu_ps(s);
            __m512 a1 = scaled ? _mm512_setzero_ps() : _mm512_loadu_ps(s + 16);
            __m512 b0 = _mm512_setzero_ps(), b1 = b0; /* two chains hide the add latency */
            int p = 0;
            for (; p + 2 <= rb; p += 2) {
                const float *t0 = T + ((int64_t)p * 256 + res[p]) * nqp + cb;
                const float *t1 = T + ((int64_t)(p + 1) * 256 + res[p + 1]) * nqp + cb;
                a0 = _mm512_add_ps(a0, _mm512_loadu_ps(t0));
                a1 = _mm512_add_ps(a1, _mm512_loadu_ps(t0 + 16));
                b0 = _mm512_add_ps(b0, _mm512_loadu_ps(t1));
                b1 = _mm512_add_ps(b1, _mm512_loadu_ps(t1 + 16));
            }
            if (p < rb) {
                const float *t0 = T + ((int64_t)p * 256 + res[p]) * nqp + cb;
                a0 = _mm512_add_ps(a0, _mm512_loadu_ps(t0));
                a1 = _mm512_add_ps(a1, _mm512_loadu_ps(t0 + 16));
            }
            __m512 o0 = _mm512_add_ps(a0, b0), o1 = _mm512_add_ps(a1, b1);
            if (scaled) {
                o0 = _mm512_fmadd_ps(o0, sc, _mm512_loadu_ps(s));
                o1 = _mm512_fmadd_ps(o1, sc, _mm512_loadu_ps(s + 16));
            }
            _mm512_storeu_ps(out + (int64_t)r * nqp + cb, o0);
            _mm512_storeu_ps(out + (int64_t)r * nqp + cb + 16, o1);
        }
    }
}

CP_AVX512 static void colmax_scaled_avx512(const float *S, int rows, int nqp, const float *scale,
                                           float *colmax)
{
    for (int cb = 0; cb < nqp; cb += 32) {
        __m512 m0 = _mm512_loadu_ps(colmax + cb), m1 = _mm512_loadu_ps(colmax + cb + 16);
        for (int r = 0; r < rows; r++) {
            const float *s = S + (int64_t)r * nqp + cb;
            __m512 f = _mm512_set1_ps(scale[r]);
            m0 = _mm512_max_ps(m0, _mm512_mul_ps(_mm512_loadu_ps(s), f));
            m1 = _mm512_max_ps(m1, _mm512_mul_ps(_mm512_loadu_ps(s + 16), f));
        }
        _mm512_storeu_ps(colmax + cb, m0);
        _mm512_storeu_ps(colmax + cb + 16, m1);
    }
}

static const cp_kernels avx512 = {
    "avx512",        gemm_avx512,   rowmax_avx512,        topn_cols_avx512,
    interact_avx512, decode_avx512, table_scores_avx512, colmax_scaled_avx512,
};

const cp_kernels *cp_kernels_avx512(void)
{
    return (cp_cpu_features() & CP_CPU_AVX512) ? &avx512 : NULL;
}

#else

const cp_kernels *cp_kernels_avx512(void)
{
    return NULL;
}

#endif
