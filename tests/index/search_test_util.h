/*
 * Hand-built snapshots and naive reference scorers for the search tests.
 *
 * With quantised = true, centroids, bucket weights and queries are small multiples of 1/8,
 * so every centroid score and every centroid-interaction sum is exact in float: the stage
 * tests can then compare document sets exactly, ties included.
 */
#ifndef CP_SEARCH_TEST_UTIL_H
#define CP_SEARCH_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "snapshot.h"

static uint64_t tu_rng = 0x9E3779B97F4A7C15ull;

static inline uint64_t tu_next(void)
{
    tu_rng ^= tu_rng << 13;
    tu_rng ^= tu_rng >> 7;
    tu_rng ^= tu_rng << 17;
    return tu_rng;
}

static inline float tu_uniform(void) /* [-1, 1) */
{
    return (float)((double)(tu_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static inline int tu_int(int n)
{
    return (int)(tu_next() % (uint64_t)n);
}

/* Vector entries in {-2..2}/8 when quantised, else uniform. */
static inline void tu_fill(float *v, size_t n, int quantised)
{
    for (size_t i = 0; i < n; i++) v[i] = quantised ? (float)(tu_int(5) - 2) / 8.0f : tu_uniform();
}

static inline void tu_normalise(float *v, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++) s += (double)v[j] * v[j];
    if (s > 0)
        for (int j = 0; j < d; j++) v[j] = (float)(v[j] / sqrt(s));
}

/* A snapshot with n_docs documents of 0..max_len tokens (empty ones only when
 * allow_empty), random codes and residual bytes, every `deleted_every`-th doc deleted
 * (0: none). Codes are drawn from a few "hot" centroids per doc so docs share cells. */
/* The codec variant tu_snapshot gives its snapshots (CP_CODEC_COLBERT unless a test sets
 * it); SCALED snapshots get random scale bytes too (0 included: a zero scale). */
static int tu_codec_variant = CP_CODEC_COLBERT;

static inline cp_snapshot *tu_snapshot(int dim, int nbits, int64_t K, int64_t n_docs, int max_len,
                                       int deleted_every, int quantised, int allow_empty)
{
    cp_snapshot *s = calloc(1, sizeof *s);
    s->refcount = 1;
    s->codec.dim = dim;
    s->codec.nbits = nbits;
    s->codec.n_centroids = K;
    s->codec.centroids = malloc(sizeof(float) * (size_t)(K * dim));
    tu_fill(s->codec.centroids, (size_t)(K * dim), quantised);
    if (!quantised)
        for (int64_t c = 0; c < K; c++) tu_normalise(s->codec.centroids + c * dim, dim);
    int nb = 1 << nbits;
    for (int b = 0; b < nb; b++) s->codec.bucket_weights[b] = (float)(2 * b - nb + 1) / (16.0f * (float)nb);
    for (int b = 0; b + 1 < nb; b++) s->codec.bucket_cutoffs[b] = (float)(2 * b - nb + 2) / (16.0f * (float)nb);
    s->codec.variant = tu_codec_variant;
    s->codec.scale_log_min = -1.5f; /* scales 0.22 .. 2.7 */
    s->codec.scale_log_max = 1.0f;
    cp_codec_init_scales(&s->codec);
    s->n_slots = n_docs;
    s->doc_offsets = calloc((size_t)n_docs + 1, sizeof(int64_t));
    s->deleted = calloc((size_t)n_docs, 1);
    for (int64_t d = 0; d < n_docs; d++) {
        int len = allow_empty ? tu_int(max_len + 1) : 1 + tu_int(max_len);
        if (deleted_every && d % deleted_every == deleted_every - 1) {
            s->deleted[d] = 1;
            len = 0;
        } else {
            s->n_live++;
        }
        s->doc_offsets[d + 1] = s->doc_offsets[d] + len;
    }
    s->n_tokens = s->doc_offsets[n_docs];
    int rb = cp_codec_token_bytes(&s->codec);
    s->codes = malloc(sizeof(int32_t) * (size_t)(s->n_tokens + 1));
    s->residuals = malloc((size_t)(s->n_tokens * rb + 1));
    for (int64_t d = 0; d < n_docs; d++) {
        int32_t hot = (int32_t)tu_int((int)K);
        for (int64_t t = s->doc_offsets[d]; t < s->doc_offsets[d + 1]; t++)
            s->codes[t] = tu_int(3) == 0 ? hot : (int32_t)tu_int((int)K);
    }
    for (int64_t i = 0; i < s->n_tokens * rb; i++) s->residuals[i] = (uint8_t)tu_next();
    cp_snapshot_build_ivf(s, NULL);
    return s;
}

/* S[c][i] = <C_c, Q_i>, K x nq, in plain float. */
static inline float *tu_centroid_scores(const cp_snapshot *s, const float *q, int nq)
{
    int d = s->codec.dim;
    int64_t K = s->codec.n_centroids;
    float *S = malloc(sizeof(float) * (size_t)(K * nq));
    for (int64_t c = 0; c < K; c++)
        for (int i = 0; i < nq; i++) {
            float acc = 0;
            for (int j = 0; j < d; j++) acc += s->codec.centroids[c * d + j] * q[i * d + j];
            S[c * nq + i] = acc;
        }
    return S;
}

/* Exact MaxSim from cp_codec_decompress_one (the codec's reference decoder). */
static inline double tu_exact_score(const cp_snapshot *s, const float *q, int nq, int64_t doc)
{
    int d = s->codec.dim, rb = cp_codec_token_bytes(&s->codec);
    int64_t off = s->doc_offsets[doc], end = s->doc_offsets[doc + 1];
    if (end == off) return 0.0;
    float *v = malloc(sizeof(float) * (size_t)d);
    double *best = malloc(sizeof(double) * (size_t)nq);
    for (int i = 0; i < nq; i++) best[i] = -INFINITY;
    for (int64_t t = off; t < end; t++) {
        cp_codec_decompress_one(&s->codec, s->codes[t], s->residuals + t * rb, v);
        for (int i = 0; i < nq; i++) {
            double acc = 0;
            for (int j = 0; j < d; j++) acc += (double)v[j] * q[i * d + j];
            if (acc > best[i]) best[i] = acc;
        }
    }
    double total = 0;
    for (int i = 0; i < nq; i++) total += best[i];
    free(v);
    free(best);
    return total;
}

#endif
