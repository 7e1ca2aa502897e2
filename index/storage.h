/*
 * The SQLite index file (index/storage.c). The schema and its invariants are described in
 * docs/index-format.md; this header is the only way the rest of index/ touches the file.
 *
 * A cp_store is one SQLite connection: use it from one thread at a time.
 */
#ifndef CP_STORAGE_H
#define CP_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

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
/* Copy everything committed from the WAL into the database file and empty the WAL. A file
 * written under a temporary name and renamed into place needs this before the rename: its
 * WAL keeps the temporary name, so whatever was left in it would be lost. Fails (e.g. with
 * CP_ENOSPC, "the disk is full") when the database file cannot grow. */
cp_status cp_store_checkpoint(cp_store *store, cp_error *err);

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

/* ---------------------------------------------------------------------------------------
 * Additions used by the loader, index.c and the checker (storage.c).
 * ------------------------------------------------------------------------------------ */

struct sqlite3;

/* The store's connection, for read-only queries by index.c / the checker. */
struct sqlite3 *cp_store_sqlite(cp_store *store);

/* Turn an SQLite result code into a cp_status with a message naming the file and what was
 * being done: SQLITE_FULL -> CP_ENOSPC, SQLITE_READONLY -> CP_EREADONLY, SQLITE_CORRUPT /
 * SQLITE_NOTADB -> CP_ECORRUPT, SQLITE_BUSY -> CP_EBUSY, ... */
cp_status cp_store_sql_error(cp_store *store, int rc, const char *what, cp_error *err);

/* The checksum stored with every segment (docs/index-format.md defines it exactly): a
 * 64-bit multiply-xorshift hash (four lanes over 32-byte blocks), chained over the
 * uncompressed arrays in column order. Start with h = CP_CHECKSUM_SEED. */
#define CP_CHECKSUM_SEED UINT64_C(0x636f6c706c616964)
uint64_t cp_checksum64(uint64_t h, const void *data, size_t n);

/* One decoded segment (arrays owned by the iterator, valid until the next call or _end). */
typedef struct cp_segment_data {
    int64_t segment_id;
    int64_t n_docs;
    int64_t n_tokens;
    int64_t *doc_ids;   /* n_docs */
    int32_t *doclens;   /* n_docs */
    int32_t *codes;     /* n_tokens */
    uint8_t *residuals; /* n_tokens x cp_residual_bytes(dim, nbits), natural order */
} cp_segment_data;

typedef struct cp_segment_iter cp_segment_iter;

/* Iterate the segments in segment_id order. next decompresses one segment and verifies its
 * sizes and checksum; a damaged segment fails with CP_ECORRUPT naming it, and the iterator
 * has still moved past it (the checker continues with the next one); seg->segment_id is
 * then still set (the other fields are zero). */
cp_status cp_store_segments_begin(cp_store *store, cp_segment_iter **out, cp_error *err);
cp_status cp_store_segments_next(cp_segment_iter *it, cp_segment_data *seg, bool *has,
                                 cp_error *err);
void cp_store_segments_end(cp_segment_iter *it);

/* meta value parsed as an integer in [min, max]; CP_ECORRUPT naming key and file if absent
 * or malformed. */
cp_status cp_store_meta_int(cp_store *store, const char *key, int64_t min, int64_t max,
                            int64_t *out, cp_error *err);

/* ---------------------------------------------------------------------------------------
 * Live writes (index/live.c). Call inside cp_store_begin/commit.
 * ------------------------------------------------------------------------------------ */

/* Mark the live version of external_id (or internal id) deleted; *doc_id is its internal id,
 * or -1 when there was none. */
cp_status cp_store_tombstone_external(cp_store *store, const char *external_id, int64_t *doc_id,
                                      cp_error *err);
cp_status cp_store_tombstone_doc(cp_store *store, int64_t id, int64_t *doc_id, cp_error *err);

/* An iterator over the one segment segment_id (none if it does not exist). */
cp_status cp_store_segment_get(cp_store *store, int64_t segment_id, cp_segment_iter **out,
                               cp_error *err);

/* Compaction: store seg (documents keep their internal ids doc_ids; seg->docs unused and may
 * be NULL) as a new segment, point those documents at it, then remove the segments old_ids
 * and the tombstone rows that point at them. seg->n_docs may be 0 (only removal). */
cp_status cp_store_rewrite_segments(cp_store *store, const int64_t *old_ids, size_t n_old,
                                    const cp_segment_input *seg, const int64_t *doc_ids,
                                    int64_t *tombstones_removed, cp_error *err);

/* ---------------------------------------------------------------------------------------
 * The lexical side (index/lexical.c, docs/hybrid.md): an FTS5 table "lexical" over the
 * live documents' texts, rowid = internal id. Appends and tombstones above keep it in the
 * same transaction when the file has it.
 * ------------------------------------------------------------------------------------ */

#define CP_LEXICAL_TOKENIZER "porter unicode61 remove_diacritics 2"

bool cp_store_has_lexical(const cp_store *store);

/* Create the lexical index and fill it from the live documents' texts. Call inside
 * cp_store_begin/commit; nothing when the file has one already. */
cp_status cp_store_lexical_create(cp_store *store, cp_error *err);

/* Windowed documents (docs/index-format.md "Windows"; index/windows.c reads them).
 * CP_EINVAL unless w[0, n) tile rows [0, n_tokens) in order with sound character spans. */
cp_status cp_windows_validate(const cp_window *w, int32_t n, int32_t n_tokens, const char *what,
                              cp_error *err);
/* Whether the file has a doc_windows table (made by the first write that carries windows). */
bool cp_store_has_windows(cp_store *store);

#endif
