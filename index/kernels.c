/*
 * Portable C versions of the search kernels (see kernels.h) and the runtime dispatch.
 *
 * These loops are written for clarity: they are the reference that tests compare the SIMD
 * tables against, and the path used on CPUs without AVX2 (or with CP_FORCE_PORTABLE=1).
 */
#include "codec.h"
#include "kernels.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "cp_cpu.h"

void cp_decode_lut_init(cp_decode_lut *lut, const cp_codec *codec)
{
    int nbits = codec->nbits, per_byte = 8 / nbits, mask = (1 << nbits) - 1;
    memset(lut, 0, sizeof *lut);
    lut->nbits = nbits;
    for (int b = 0; b < (1 << nbits); b++) lut->w[b] = codec->bucket_weights[b];
    for (int byte = 0; byte < 256; byte++)
        for (int g = 0; g < per_byte; g++) {
            int digit = (byte >> (8 - nbits * (g + 1))) & mask; /* first dim in the MSBs */
            lut->lut[byte * per_byte + g] = lut->w[digit];
        }
}

static void gemm_portable(const float *A, int64_t rows, int d, const float *Bt, int nqp,
                          float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        float *o = out + r * nqp;
        const float *a = A + r * d;
        for (int i = 0; i < nqp; i++) o[i] = 0.0f;
        for (int j = 0; j < d; j++) {
            const float *b = Bt + (int64_t)j * nqp;
            for (int i = 0; i < nqp; i++) o[i] += a[j] * b[i];
        }
    }
}

static void rowmax_portable(const float *S, int64_t rows, int nqp, int nq, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *s = S + r * nqp;
        float m = s[0];
        for (int i = 1; i < nq; i++) m = s[i] > m ? s[i] : m;
        out[r] = m;
    }
}

static void topn_cols_portable(const float *S, int64_t rows, int nqp, int nq, int n,
                               int32_t *idx, float *val)
{
    cp_topn_reset(nq, n, idx, val);
    for (int64_t r = 0; r < rows; r++) {
        const float *s = S + r * nqp;
        for (int i = 0; i < nq; i++)
            if (s[i] > val[i * n + n - 1]) cp_topn_insert(idx + i * n, val + i * n, n, (int32_t)r, s[i]);
    }
}

static float interact_portable(const float *S, int nqp, const int32_t *codes, int n_codes,
                               const uint8_t *keep)
{
    float total = 0.0f, m[32];
    int kept = 0;
    for (int cb = 0; cb < nqp; cb += 32) {
        for (int i = 0; i < 32; i++) m[i] = -INFINITY;
        for (int t = 0; t < n_codes; t++) {
            int32_t c = codes[t];
            if (keep && !keep[c]) continue;
            kept = 1;
            const float *s = S + (int64_t)c * nqp + cb;
            for (int i = 0; i < 32; i++) m[i] = s[i] > m[i] ? s[i] : m[i];
        }
        if (!kept) return -INFINITY;
        for (int i = 0; i < 32; i++) total += m[i];
    }
    return total;
}

static void decode_portable(const cp_codec *codec, const cp_decode_lut *lut,
                            const int32_t *codes, const uint8_t *residuals, int n, float *out,
                            float *inv_norm)
{
    int d = codec->dim, per_byte = 8 / codec->nbits, rb = cp_residual_bytes(d, codec->nbits);
    int stride = cp_codec_token_bytes(codec);
    bool scaled = codec->variant == CP_CODEC_SCALED;
    for (int t = 0; t < n; t++) {
        const float *cent = codec->centroids + (int64_t)codes[t] * d;
        const uint8_t *res = residuals + (int64_t)t * stride;
        float *o = out + (int64_t)t * d;
        float sc = scaled ? codec->scales[res[rb]] : 1.0f;
        for (int p = 0; p < rb; p++) {
            const float *w = lut->lut + res[p] * per_byte;
            for (int g = 0; g < per_byte; g++)
                o[p * per_byte + g] =
                    scaled ? fmaf(sc, w[g], cent[p * per_byte + g]) : cent[p * per_byte + g] + w[g];
        }
        float ss = 0.0f;
        for (int j = 0; j < d; j++) ss += o[j] * o[j];
        inv_norm[t] = ss > 0.0f ? 1.0f / sqrtf(ss) : 0.0f;
    }
}

static void table_scores_portable(const cp_codec *codec, const cp_decode_lut *lut,
                                  const float *S, int nqp, const float *T, const int32_t *codes,
                                  const uint8_t *residuals, int n, float *out, float *inv_norm)
{
    int d = codec->dim, per_byte = 8 / codec->nbits, rb = cp_residual_bytes(d, codec->nbits);
    int stride = cp_codec_token_bytes(codec);
    bool scaled = codec->variant == CP_CODEC_SCALED;
    for (int r = 0; r < n; r++) {
        float *o = out + (int64_t)r * nqp;
        const uint8_t *res = residuals + (int64_t)r * stride;
        const float *cent = codec->centroids + (int64_t)codes[r] * d;
        const float *srow = S + (int64_t)codes[r] * nqp;
        float sc = scaled ? codec->scales[res[rb]] : 1.0f;
        /* COLBERT: S + the table rows, summed into o; SCALED: S + sc * (sum of the rows). */
        if (scaled)
            memset(o, 0, sizeof(float) * (size_t)nqp);
        else
            memcpy(o, srow, sizeof(float) * (size_t)nqp);
        float ss = 0.0f;
        for (int p = 0; p < rb; p++) {
            const float *t = T + ((int64_t)p * 256 + res[p]) * nqp;
            for (int i = 0; i < nqp; i++) o[i] += t[i];
            const float *w = lut->lut + res[p] * per_byte;
            for (int g = 0; g < per_byte; g++) {
                float v =
                    scaled ? fmaf(sc, w[g], cent[p * per_byte + g]) : cent[p * per_byte + g] + w[g];
                ss += v * v;
            }
        }
        if (scaled)
            for (int i = 0; i < nqp; i++)
                o[i] = fmaf(sc, o[i], srow[i]);
        inv_norm[r] = ss > 0.0f ? 1.0f / sqrtf(ss) : 0.0f;
    }
}

static void colmax_scaled_portable(const float *S, int rows, int nqp, const float *scale,
                                   float *colmax)
{
    for (int r = 0; r < rows; r++) {
        const float *s = S + (int64_t)r * nqp;
        for (int i = 0; i < nqp; i++) {
            float v = s[i] * scale[r];
            colmax[i] = v > colmax[i] ? v : colmax[i];
        }
    }
}

static const cp_kernels portable = {
    "portable",     gemm_portable,   rowmax_portable,        topn_cols_portable,
    interact_portable, decode_portable, table_scores_portable, colmax_scaled_portable,
};

const cp_kernels *cp_kernels_portable(void)
{
    return &portable;
}

const cp_kernels *cp_kernels_get(void)
{
    /* Racing first calls compute the same pointer, so a plain static is enough. */
    static const cp_kernels *volatile chosen;
    if (!chosen) {
        const cp_kernels *k = cp_kernels_avx512();
        if (!k) k = cp_kernels_avx2();
        chosen = k ? k : &portable;
    }
    return chosen;
}
