/*
 * Sharding and shared codecs (issue 15 §1; docs/index-format.md "Shards and shared codecs").
 *
 * - The shard of a document is a function of its external id alone, so a build
 *   (`index build --shard I/N`), a later upsert router and a client in any language agree:
 *   FNV-1a 64 over the id's UTF-8 bytes, then MurmurHash3's 64-bit finaliser (fmix64),
 *   modulo N. FNV-1a alone is not enough: its low k bits depend only on the low k bits of
 *   every byte (the multiplier is odd), so "mod 4" of ids that differ only in higher bits
 *   would all land together; fmix64 spreads every input bit over the low bits.
 * - A codec's fingerprint: cp_checksum64 (the segment checksum of docs/index-format.md)
 *   chained over a fixed header and the codec's arrays.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colplaid/index.h"
#include "shard.h"
#include "storage.h"

uint64_t cp_shard_hash(const char *id, size_t len)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a 64 offset basis */
    const unsigned char *p = (const unsigned char *)id;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3); /* FNV 64 prime */
    }
    /* fmix64 (MurmurHash3) */
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

uint32_t cp_shard_of(const char *id, uint32_t n_shards)
{
    if (!id || n_shards <= 1) return 0;
    return (uint32_t)(cp_shard_hash(id, strlen(id)) % n_shards);
}

/* ---------------------------------------------------------------------------------------
 * Codec identity.
 * ------------------------------------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The header: int32 variant, dim, nbits; int64 n_centroids; float32 scale_log_min,
 * scale_log_max (0 for the colbert variant); 28 bytes, little-endian. */
static void fingerprint_header(const cp_codec *c, uint8_t out[28])
{
    bool scaled = c->variant == CP_CODEC_SCALED;
    put_le(out, (uint32_t)c->variant, 4);
    put_le(out + 4, (uint32_t)c->dim, 4);
    put_le(out + 8, (uint32_t)c->nbits, 4);
    put_le(out + 12, (uint64_t)c->n_centroids, 8);
    put_le(out + 20, scaled ? float_bits(c->scale_log_min) : 0, 4);
    put_le(out + 24, scaled ? float_bits(c->scale_log_max) : 0, 4);
}

uint64_t cp_codec_fingerprint(const cp_codec *c)
{
    uint8_t header[28];
    fingerprint_header(c, header);
    size_t nb = (size_t)1 << c->nbits;
    uint64_t h = cp_checksum64(CP_CHECKSUM_SEED, header, sizeof header);
    h = cp_checksum64(h, c->centroids, (size_t)c->n_centroids * (size_t)c->dim * sizeof(float));
    h = cp_checksum64(h, c->bucket_cutoffs, (nb - 1) * sizeof(float));
    return cp_checksum64(h, c->bucket_weights, nb * sizeof(float));
}

bool cp_codec_same(const cp_codec *a, const cp_codec *b)
{
    uint8_t ha[28], hb[28];
    fingerprint_header(a, ha);
    fingerprint_header(b, hb);
    if (memcmp(ha, hb, sizeof ha)) return false;
    size_t nb = (size_t)1 << a->nbits;
    return !memcmp(a->centroids, b->centroids,
                   (size_t)a->n_centroids * (size_t)a->dim * sizeof(float)) &&
           !memcmp(a->bucket_cutoffs, b->bucket_cutoffs, (nb - 1) * sizeof(float)) &&
           !memcmp(a->bucket_weights, b->bucket_weights, nb * sizeof(float));
}

char *cp_drift_reference_reset(const char *stored)
{
    cJSON *o = stored ? cJSON_Parse(stored) : NULL;
    cJSON *p75 = cJSON_GetObjectItemCaseSensitive(o, "p75_distance");
    cJSON *p99 = cJSON_GetObjectItemCaseSensitive(o, "p99_distance");
    cJSON *ref = cJSON_GetObjectItemCaseSensitive(o, "ref_tokens");
    char *out = NULL;
    if (cJSON_IsNumber(p75) && cJSON_IsNumber(p99) && cJSON_IsNumber(ref)) {
        char buf[320];
        snprintf(buf, sizeof buf,
                 "{\"p75_distance\": %.6g, \"p99_distance\": %.6g, \"ref_tokens\": %lld, "
                 "\"added_tokens\": 0, \"outlier_tokens\": 0, \"outlier_fraction\": 0, "
                 "\"rebuild_advised\": false}",
                 p75->valuedouble, p99->valuedouble, (long long)ref->valuedouble);
        out = strdup(buf);
    }
    cJSON_Delete(o);
    return out;
}

/* ---------------------------------------------------------------------------------------
 * The shard source.
 * ------------------------------------------------------------------------------------ */

typedef struct shard_source {
    cp_doc_source *inner;
    uint32_t index, count;
} shard_source;

static bool in_shard(void *ctx, const char *id)
{
    const shard_source *s = ctx;
    return cp_shard_of(id, s->count) == s->index;
}

static int64_t ss_count(void *ctx)
{
    (void)ctx;
    return -1;
}

static int ss_dim(void *ctx)
{
    shard_source *s = ctx;
    return s->inner->dim(s->inner->ctx);
}

static cp_status ss_rewind(void *ctx, cp_error *err)
{
    shard_source *s = ctx;
    return s->inner->rewind(s->inner->ctx, err);
}

/* The inner source may have skipped the other shards already; every id is checked here. */
static cp_status ss_next(void *ctx, bool need_embeddings, cp_document *doc, bool *has,
                         cp_error *err)
{
    shard_source *s = ctx;
    for (;;) {
        cp_status st = s->inner->next(s->inner->ctx, need_embeddings, doc, has, err);
        if (st != CP_OK || !*has) return st;
        /* An empty id is the builder's to reject, with its message. */
        if (!doc->id || !doc->id[0] || in_shard(s, doc->id)) return CP_OK;
    }
}

static const char *ss_name(void *ctx)
{
    shard_source *s = ctx;
    return s->inner->name ? s->inner->name(s->inner->ctx) : "input";
}

static void ss_close(void *ctx)
{
    free(ctx);
}

cp_status cp_shard_source_open(cp_doc_source *inner, uint32_t index, uint32_t count,
                               cp_doc_source *out, cp_error *err)
{
    if (count < 1 || index >= count)
        return cp_error_set(err, CP_EINVAL, "shard %u of %u does not exist (0 <= I < N)", index,
                            count);
    shard_source *s = calloc(1, sizeof *s);
    if (!s) return cp_error_set(err, CP_ENOMEM, "out of memory");
    *s = (shard_source){.inner = inner, .index = index, .count = count};
    *out = (cp_doc_source){.ctx = s,
                           .count = ss_count,
                           .dim = ss_dim,
                           .rewind = ss_rewind,
                           .next = ss_next,
                           .name = ss_name,
                           .close = ss_close};
    return CP_OK;
}
