/*
 * Sharding and shared codecs (index/shard.c, docs/index-format.md "Shards and shared
 * codecs"): the codec's fingerprint and exact comparison, the drift reference a codec
 * carries to the indexes built with it, and the document source that keeps one shard.
 */
#ifndef CP_SHARD_H
#define CP_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"

/* The name of the shard hash, recorded in meta "shard" ({"index", "count", "hash"}). */
#define CP_SHARD_HASH_NAME "fnv1a64-fmix64"

/* The codec's fingerprint (docs/index-format.md defines it): what decodes a token, hashed;
 * avg_residual (diagnostics only) is not part of it. */
uint64_t cp_codec_fingerprint(const cp_codec *c);

/* Whether a and b decode every token alike: same variant, dim, nbits, scale range, and
 * bit-identical centroids, cutoffs and weights. */
bool cp_codec_same(const cp_codec *a, const cp_codec *b);

/* A stored meta "drift" (NULL: none) with its running counts reset: the reference a new
 * index built or created with that codec starts from; NULL when there is no usable one. */
char *cp_drift_reference_reset(const char *stored_json);

/* Wrap source so that it yields only the documents of shard `index` of `count`
 * (cp_shard_of); count() becomes unknown (-1). *out owns nothing: close the inner source yourself
 * after out->close(out->ctx). */
cp_status cp_shard_source_open(cp_doc_source *inner, uint32_t index, uint32_t count,
                               cp_doc_source *out, cp_error *err);

#endif
