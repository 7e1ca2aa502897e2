/*
 * The SQLite index file (index/storage.c). The schema and its invariants are described in
 * docs/index-format.md; this header is the only way the rest of index/ touches the file.
 *
 * A cp_store is one SQLite connection: use it from one thread at a time.
 */
#ifndef CP_STORAGE_H
#define CP_STORAGE_H

#include "index_internal.h"

typedef struct cp_store cp_store;

/* Create a new index file at path (which must not exist) with the schema, meta
 * (format_version, dim, nbits, n_centroids) and the codec, in one transaction. */
cp_status cp_store_create(const char *path, const cp_codec *codec, cp_store **out, cp_error *err);

/* Open an existing index file. A file that is not a colplaid index, is truncated, or has a
 * format version this build does not know fails with CP_EFORMAT / CP_ECORRUPT and a message
 * naming the file. flags: CP_OPEN_READONLY or CP_OPEN_WRITE. */
cp_status cp_store_open(const char *path, int flags, cp_store **out, cp_error *err);
void cp_store_close(cp_store *store);
const char *cp_store_path(const cp_store *store);

cp_status cp_store_set_meta(cp_store *store, const char *key, const char *value, cp_error *err);
/* malloc'd value or NULL when absent. */
char *cp_store_get_meta(cp_store *store, const char *key);

cp_status cp_store_begin(cp_store *store, cp_error *err);
cp_status cp_store_commit(cp_store *store, cp_error *err);
void cp_store_rollback(cp_store *store);

/* One segment of documents to append: docs[i].id/text/metadata_json are stored (embeddings
 * ignored), doclens[i] tokens each; codes/residuals cover the sum of doclens in order. */
typedef struct cp_segment_input {
    size_t n_docs;
    const cp_document *docs;
    const int32_t *doclens;
    int64_t n_tokens;
    const int32_t *codes;
    const uint8_t *residuals;
} cp_segment_input;

/* Append a segment; its documents get consecutive new internal ids starting at
 * *first_doc_id. Fails with CP_EEXISTS naming the id if an external id is already live.
 * Call inside cp_store_begin/commit. */
cp_status cp_store_append_segment(cp_store *store, const cp_segment_input *seg,
                                  int64_t *first_doc_id, cp_error *err);

cp_status cp_store_load_codec(cp_store *store, cp_codec *out, cp_error *err);

/* Read every segment into a new snapshot (refcount 1), with the IVF built. */
cp_status cp_store_load_snapshot(cp_store *store, cp_snapshot **out, cp_error *err);

#endif
