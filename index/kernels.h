/*
 * The hot loops of search (index/kernels*.c), behind a table of function pointers that
 * is chosen once at run time from the CPU's features (cp_cpu_features(); the environment
 * variable CP_FORCE_PORTABLE=1 forces the portable table). The portable C versions are the
 * reference every SIMD version is tested against.
 *
 * Shared layout conventions
 * - A query Q (nq x d) is passed transposed and zero-padded: Qt[j * nqp + i] = Q[i][j] for
 *   i < nq, 0 for nq <= i < nqp, with nqp = cp_kernels_nqp(nq) (a multiple of 32). Padding
 *   columns therefore score 0 and are excluded from maxima and sums by the callers/kernels.
 * - A score matrix S (rows x nqp) is row-major: S[r * nqp + i] = <A_r, Q_i>.
 * - Residual bytes are in natural bit order (see codec.h).
 *
 * All functions are pure (no global state) and thread-safe.
 */
#ifndef CP_KERNELS_H
#define CP_KERNELS_H

#include <math.h>
#include <stdint.h>

#include "codec.h"

/* Column padding: the SIMD kernels process query tokens in blocks of 32. */
static inline int cp_kernels_nqp(int nq)
{
    return (nq + 31) / 32 * 32;
}

/* Byte -> weights lookup table for residual decoding: lut[byte * (8/nbits) + g] is the
 * bucket weight of the g-th dim stored in that byte. 256 * 8 floats covers every nbits. */
typedef struct cp_decode_lut {
    int nbits;
    float w[(1 << CP_MAX_NBITS) < 16 ? 16 : (1 << CP_MAX_NBITS)]; /* bucket weights, zero-padded */
    float lut[256 * 8];
} cp_decode_lut;

void cp_decode_lut_init(cp_decode_lut *lut, const cp_codec *codec);

/* Helpers for topn_cols shared by every table: per column a list of n (value, row) pairs
 * kept in descending order; val[n-1] is the bar a new row must beat (strictly, so that the
 * lower row wins ties because rows arrive in ascending order). */
static inline void cp_topn_reset(int nq, int n, int32_t *idx, float *val)
{
    for (int t = 0; t < nq * n; t++) {
        idx[t] = -1;
        val[t] = -INFINITY;
    }
}

static inline void cp_topn_insert(int32_t *idx, float *val, int n, int32_t row, float v)
{
    int t = n - 1;
    while (t > 0 && v > val[t - 1]) {
        val[t] = val[t - 1];
        idx[t] = idx[t - 1];
        t--;
    }
    val[t] = v;
    idx[t] = row;
}

typedef struct cp_kernels {
    const char *name; /* "portable", "avx2", "avx512" */

    /* out[r * nqp + i] = sum_j A[r * d + j] * Bt[j * nqp + i] for r < rows, i < nqp. */
    void (*gemm)(const float *A, int64_t rows, int d, const float *Bt, int nqp, float *out);

    /* out[r] = max over i < nq of S[r * nqp + i]. */
    void (*rowmax)(const float *S, int64_t rows, int nqp, int nq, float *out);

    /* For each column i < nq, the n best rows by S[r][i] (descending; among equal scores
     * the lower row wins): idx[i * n + t], t = 0 .. n-1. Requires 1 <= n <= rows.
     * val is scratch of nq * n floats. */
    void (*topn_cols)(const float *S, int64_t rows, int nqp, int nq, int n, int32_t *idx,
                      float *val);

    /* Centroid interaction of one document: sum over i < nqp of max over its codes c (with
     * keep == NULL or keep[c] != 0) of S[c * nqp + i]. Padding columns of S are zero, so
     * they add nothing. Returns -INFINITY if no code is kept. */
    float (*interact)(const float *S, int nqp, const int32_t *codes, int n_codes,
                      const uint8_t *keep);

    /* Reconstruct n tokens unnormalised: out[t * d + j] = C[codes[t]][j] + w[b_tj], and
     * inv_norm[t] = 1 / ||out_t|| (0 for a zero vector). */
    void (*decode)(const cp_codec *codec, const cp_decode_lut *lut, const int32_t *codes,
                   const uint8_t *residuals, int n, float *out, float *inv_norm);

    /* WARP-style implicit scores of n tokens (unnormalised): out[r * nqp + i] =
     * S[codes[r] * nqp + i] + sum over p < rb of T[(p * 256 + res[r * rb + p]) * nqp + i],
     * where T[p][byte] holds sum over the dims packed in byte p of Q_i[dim] * w[bucket]
     * (rb = residual bytes per token); inv_norm[r] = 1 / ||C[code] + w[buckets]|| (0 for a
     * zero vector), computed without materialising the token. */
    void (*table_scores)(const cp_codec *codec, const cp_decode_lut *lut, const float *S, int nqp,
                         const float *T, const int32_t *codes, const uint8_t *residuals, int n,
                         float *out, float *inv_norm);

    /* colmax[i] = max(colmax[i], S[r * nqp + i] * scale[r]) over r < rows, i < nqp. */
    void (*colmax_scaled)(const float *S, int rows, int nqp, const float *scale,
                          float *colmax);
} cp_kernels;

/* The table for this CPU (computed once). */
const cp_kernels *cp_kernels_get(void);
const cp_kernels *cp_kernels_portable(void);
/* NULL when the CPU (or the compiler) lacks the instructions. */
const cp_kernels *cp_kernels_avx2(void);
const cp_kernels *cp_kernels_avx512(void);

#endif
