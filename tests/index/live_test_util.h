/*
 * Helpers for the live-index tests: a fresh index file with a random codec, and documents
 * whose vectors are a deterministic function of (id number, version), so a test can
 * rebuild the exact content any acknowledged write must have left behind.
 */
#ifndef CP_LIVE_TEST_UTIL_H
#define CP_LIVE_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"
#include "codec.h"
#include "drift.h"
#include "storage.h"
#include "search.h"
#include "storage_test_util.h"

enum { LT_DIM = 32, LT_NBITS = 2, LT_K = 64 };

/* An empty index at path with a random codec (seeded); the codec is returned in *c (free
 * c->centroids). */
static inline void lt_doc_vectors(const cp_codec *c, int64_t num, int64_t version, int n_tokens,
                                  int outlier, float *out);

/* The buckets are trained as a build does (cp_codec_train on held-out vectors of the
 * document distribution), so residuals and drift behave as on a real index. */
static inline cp_status lt_create(const char *path, cp_codec *c, uint64_t seed, cp_error *err)
{
    st_make_codec(c, LT_DIM, LT_NBITS, LT_K, seed);
    enum { HELD = 4000 };
    float *held = malloc((size_t)HELD * LT_DIM * sizeof(float));
    lt_doc_vectors(c, -1 - (int64_t)seed, 0, HELD, 0, held);
    char *drift = NULL;
    cp_status st = cp_codec_train(c, held, HELD, 1, err);
    if (st == CP_OK) st = cp_drift_reference_json(c, held, HELD, 1, &drift, err);
    free(held);
    if (st != CP_OK) return st;
    cp_store *s = NULL;
    st = cp_store_create(path, c, &s, err);
    if (st == CP_OK) st = cp_store_set_meta(s, "drift", drift, err); /* as a build does */
    free(drift);
    cp_store_close(s);
    return st;
}

/* n_tokens vectors for document `num` at `version`: each is a centroid plus noise (in the
 * codec's distribution), or a uniformly random direction when outlier is set. */
static inline void lt_doc_vectors(const cp_codec *c, int64_t num, int64_t version, int n_tokens,
                                  int outlier, float *out)
{
    uint64_t s = (uint64_t)num * 0x9E3779B97F4A7C15ull + (uint64_t)version * 0xBF58476D1CE4E5B9ull + 1;
    for (int t = 0; t < n_tokens; t++) {
        float *v = out + (size_t)t * (size_t)c->dim;
        const float *cen = c->centroids + (st_rand(&s) % (uint64_t)c->n_centroids) * (uint64_t)c->dim;
        double n = 0;
        for (int j = 0; j < c->dim; j++) {
            float noise = st_randf(&s);
            v[j] = outlier ? noise : cen[j] + 0.15f * noise;
            n += (double)v[j] * v[j];
        }
        for (int j = 0; j < c->dim; j++) v[j] = (float)(v[j] / sqrt(n));
    }
}

/* Token count of document num at version (1..24). */
static inline int lt_doc_len(int64_t num, int64_t version)
{
    return 1 + (int)(((uint64_t)num * 31u + (uint64_t)version * 17u) % 24u);
}

/* A batch of documents "prefix<num>" for nums[0..n) at version: ids, vectors, no text. */
typedef struct lt_batch {
    cp_document *docs;
    char **ids;
    float **vecs;
    size_t n;
} lt_batch;

static inline void lt_batch_make(lt_batch *b, const cp_codec *c, const char *prefix,
                                 const int64_t *nums, size_t n, int64_t version, int outlier)
{
    b->n = n;
    b->docs = calloc(n ? n : 1, sizeof *b->docs);
    b->ids = calloc(n ? n : 1, sizeof *b->ids);
    b->vecs = calloc(n ? n : 1, sizeof *b->vecs);
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s%lld", prefix, (long long)nums[i]);
        b->ids[i] = strdup(buf);
        int len = lt_doc_len(nums[i], version);
        b->vecs[i] = malloc((size_t)len * (size_t)c->dim * sizeof(float));
        lt_doc_vectors(c, nums[i], version, len, outlier, b->vecs[i]);
        b->docs[i].id = b->ids[i];
        b->docs[i].embeddings = b->vecs[i];
        b->docs[i].n_tokens = len;
    }
}

static inline void lt_batch_free(lt_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->ids[i]);
        free(b->vecs[i]);
    }
    free(b->docs);
    free(b->ids);
    free(b->vecs);
    memset(b, 0, sizeof *b);
}

/* Whether the stored embeddings of doc_id are exactly those of document num at version
 * after compression with codec c (the same normalise + compress + decompress path). */
static inline int lt_content_matches(cp_index *ix, const cp_codec *c, int64_t doc_id,
                                     int64_t num, int64_t version)
{
    float *got = NULL;
    int32_t n = 0;
    if (cp_index_document_embeddings(ix, doc_id, &got, &n, NULL) != CP_OK) return 0;
    int len = lt_doc_len(num, version), ok = n == len;
    float *v = malloc((size_t)len * (size_t)c->dim * sizeof(float));
    float *dec = malloc((size_t)c->dim * sizeof(float));
    int32_t *codes = malloc((size_t)len * sizeof *codes);
    uint8_t *res = malloc((size_t)len * (size_t)cp_residual_bytes(c->dim, c->nbits));
    float *raw = malloc((size_t)len * (size_t)c->dim * sizeof(float));
    lt_doc_vectors(c, num, version, len, 0, raw);
    cp_document d = {.id = "x", .embeddings = raw, .n_tokens = len};
    ok = ok && cp_doc_normalise(&d, c->dim, "test", 0, v, NULL) == CP_OK; /* as upsert does */
    free(raw);
    if (ok && cp_codec_compress(c, v, len, codes, res, 1, NULL) == CP_OK) {
        for (int t = 0; t < len && ok; t++) {
            cp_codec_decompress_one(c, codes[t], res + (size_t)t * (size_t)cp_residual_bytes(c->dim, c->nbits), dec);
            ok = memcmp(dec, got + (size_t)t * (size_t)c->dim, (size_t)c->dim * sizeof(float)) == 0;
        }
    } else {
        ok = 0;
    }
    free(v);
    free(dec);
    free(codes);
    free(res);
    free(got);
    return ok;
}

#endif
