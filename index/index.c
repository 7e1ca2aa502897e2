/*
 * The cp_index handle: opening (load the snapshot), the writer lock, document lookups and
 * publishing snapshots.
 *
 * Why it exists: it is what the server, the CLI and the search code hold; it ties one
 * index file to the immutable snapshot that searches read.
 *
 * Invariants and concurrency
 * - `view` (the current snapshot plus its external-id hash map) is replaced only as a whole,
 *   under the write side of view_lock; readers take the read side just long enough to
 *   retain the snapshot or probe the map, so publishing never waits for a search and a
 *   search never sees half an update. A retained snapshot stays valid after a swap.
 *   (A bare atomic pointer is not enough: a reader could load the pointer, be preempted,
 *   and retain a snapshot that a publisher has meanwhile swapped out and freed. The read
 *   lock covers exactly load + retain, so it is held for nanoseconds.)
 * - SQL reads (document text, meta, counts) use read-only connections from a small
 *   mutex-protected pool, one connection per concurrent caller (SQLite in WAL mode lets
 *   them all read at once). The writer store, when open, is used by write paths only.
 * - Closing: the pool is closed before the writer store, whose close releases the writer
 *   lock.
 * - Live writes (index/live.c) hold write_lock for their whole transaction and replace the
 *   view with cp_index_view_prepare (before the commit: snapshot + id map updated by the
 *   change only; removed entries are marked, not unlinked, so probing stays correct) and
 *   cp_index_view_swap (after it: a pointer swap that cannot fail).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cp_strtab.h"
#include "codec.h"
#include "filter.h"
#include "index_handle.h"
#include "shard.h"
#include "windows.h"
#include "snapshot.h"
#include "storage.h"

#define POOL_MAX 8

typedef struct view {
    cp_snapshot *snap;
    cp_strtab map; /* external id -> slot of the live documents of snap */
} view;

struct cp_index {
    char *path;
    int flags;
    cp_store *writer; /* CP_OPEN_WRITE only */
    pthread_rwlock_t view_lock;
    view current;
    pthread_mutex_t pool_lock;
    cp_store *pool[POOL_MAX];
    int n_pool;
    pthread_mutex_t write_lock; /* serialises live writes (index/live.c) */
};

struct cp_view_next {
    view v;
};

/* ------------------------------------------------------------------------------------
 * External id map
 * --------------------------------------------------------------------------------- */

static const char *external_id_of(const void *snap, int32_t doc)
{
    return ((const cp_snapshot *)snap)->external_ids[doc];
}

static cp_status idmap_build(const cp_snapshot *snap, cp_strtab *m, cp_error *err)
{
    if (!cp_strtab_init(m, (uint64_t)snap->n_live))
        return cp_error_set(err, CP_ENOMEM, "out of memory for the id map");
    for (int64_t d = 0; d < snap->n_slots; d++) {
        if (snap->deleted[d] || !snap->external_ids[d]) continue;
        cp_strtab_insert(m, snap->external_ids[d], (int32_t)d);
    }
    return CP_OK;
}

/* The current map with removed slots marked and new live slots inserted: O(map size)
 * memcpy plus O(change) probes. Rebuilt from scratch when removed entries would make the
 * table more than half full. */
static cp_status idmap_update(const cp_strtab *cur, const cp_snapshot *next,
                              const int64_t *removed, size_t n_removed, int64_t first_new,
                              cp_strtab *m, cp_error *err)
{
    uint64_t add = (uint64_t)(next->n_slots - first_new);
    if (!cp_strtab_has_room(cur, add)) return idmap_build(next, m, err);
    if (!cp_strtab_copy(m, cur)) return cp_error_set(err, CP_ENOMEM, "out of memory for the id map");
    for (size_t r = 0; r < n_removed; r++)
        cp_strtab_remove(m, next->external_ids[removed[r]], (int32_t)removed[r]);
    for (int64_t d = first_new; d < next->n_slots; d++) {
        if (next->deleted[d] || !next->external_ids[d]) continue;
        cp_strtab_insert(m, next->external_ids[d], (int32_t)d);
    }
    return CP_OK;
}

/* The internal id (not the slot) of a live external id, or -1. */
static int64_t idmap_find(const view *v, const char *ext)
{
    int64_t slot = cp_strtab_find(&v->map, ext, external_id_of, v->snap);
    return slot < 0 ? -1 : cp_snapshot_file_id(v->snap, slot);
}

/* ------------------------------------------------------------------------------------
 * Snapshots
 * --------------------------------------------------------------------------------- */

cp_snapshot *cp_index_acquire_snapshot(cp_index *index)
{
    pthread_rwlock_rdlock(&index->view_lock);
    cp_snapshot *s = index->current.snap;
    cp_snapshot_retain(s);
    pthread_rwlock_unlock(&index->view_lock);
    return s;
}

cp_status cp_index_publish_snapshot(cp_index *index, cp_snapshot *snap, cp_error *err)
{
    view next = {.snap = snap};
    cp_status st = idmap_build(snap, &next.map, err);
    if (st != CP_OK) return st;
    pthread_rwlock_wrlock(&index->view_lock);
    view old = index->current;
    index->current = next;
    pthread_rwlock_unlock(&index->view_lock);
    cp_snapshot_release(old.snap); /* freed once the last search holding it lets go */
    cp_strtab_free(&old.map);
    return CP_OK;
}

void cp_index_write_lock(cp_index *index)
{
    pthread_mutex_lock(&index->write_lock);
}

void cp_index_write_unlock(cp_index *index)
{
    pthread_mutex_unlock(&index->write_lock);
}

cp_status cp_index_view_prepare(cp_index *index, cp_snapshot *next, const int64_t *removed,
                                size_t n_removed, int64_t first_new_slot, cp_view_next **out,
                                cp_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return cp_error_set(err, CP_ENOMEM, "out of memory");
    /* Only writers (serialised) replace the view, so reading it here needs no lock. */
    cp_status st = idmap_update(&index->current.map, next, removed, n_removed, first_new_slot,
                                &(*out)->v.map, err);
    if (st != CP_OK) {
        free(*out);
        *out = NULL;
        return st;
    }
    (*out)->v.snap = next;
    return CP_OK;
}

void cp_index_view_swap(cp_index *index, cp_view_next *v)
{
    pthread_rwlock_wrlock(&index->view_lock);
    view old = index->current;
    index->current = v->v;
    pthread_rwlock_unlock(&index->view_lock);
    cp_snapshot_release(old.snap);
    cp_strtab_free(&old.map);
    free(v);
}

void cp_index_view_discard(cp_view_next *v)
{
    if (!v) return;
    cp_snapshot_release(v->v.snap);
    cp_strtab_free(&v->v.map);
    free(v);
}

cp_store *cp_index_writer_store(cp_index *index)
{
    return index->writer;
}

const char *cp_index_path(cp_index *index)
{
    return index->path;
}

cp_status cp_index_filter(cp_index *index, const char *filter_json, int64_t **doc_ids,
                          size_t *n_ids, cp_error *err)
{
    return cp_filter_ids(cp_index_path(index), filter_json, doc_ids, n_ids, err);
}

/* ------------------------------------------------------------------------------------
 * Connection pool
 * --------------------------------------------------------------------------------- */

cp_status cp_index_pool_get(cp_index *index, cp_store **out, cp_error *err)
{
    pthread_mutex_lock(&index->pool_lock);
    *out = index->n_pool ? index->pool[--index->n_pool] : NULL;
    pthread_mutex_unlock(&index->pool_lock);
    if (*out) return CP_OK;
    return cp_store_open(index->path, CP_OPEN_READONLY, out, err);
}

void cp_index_pool_put(cp_index *index, cp_store *s)
{
    pthread_mutex_lock(&index->pool_lock);
    if (index->n_pool < POOL_MAX) {
        index->pool[index->n_pool++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&index->pool_lock);
    cp_store_close(s);
}

/* ------------------------------------------------------------------------------------
 * Open / close
 * --------------------------------------------------------------------------------- */

cp_status cp_index_open(const char *path, int flags, cp_index **out, cp_error *err)
{
    *out = NULL;
    cp_index *ix = calloc(1, sizeof *ix);
    if (!ix || !(ix->path = strdup(path))) {
        free(ix);
        return cp_error_set(err, CP_ENOMEM, "out of memory opening %s", path);
    }
    ix->flags = flags;
    pthread_rwlock_init(&ix->view_lock, NULL);
    pthread_mutex_init(&ix->pool_lock, NULL);
    pthread_mutex_init(&ix->write_lock, NULL);
    cp_store *store = NULL;
    cp_status st = cp_store_open(path, flags, &store, err);
    cp_snapshot *snap = NULL;
    if (st == CP_OK) st = cp_store_load_snapshot(store, &snap, err);
    if (st == CP_OK) st = cp_index_publish_snapshot(ix, snap, err);
    if (st != CP_OK) {
        cp_snapshot_release(snap);
        cp_store_close(store);
        cp_index_close(ix);
        return st;
    }
    if (flags & CP_OPEN_WRITE)
        ix->writer = store;
    else
        cp_index_pool_put(ix, store);
    *out = ix;
    return CP_OK;
}

void cp_index_close(cp_index *index)
{
    if (!index) return;
    for (int i = 0; i < index->n_pool; i++) cp_store_close(index->pool[i]);
    cp_store_close(index->writer);
    cp_snapshot_release(index->current.snap);
    cp_strtab_free(&index->current.map);
    pthread_rwlock_destroy(&index->view_lock);
    pthread_mutex_destroy(&index->pool_lock);
    pthread_mutex_destroy(&index->write_lock);
    free(index->path);
    free(index);
}

/* ------------------------------------------------------------------------------------
 * Inspection
 * --------------------------------------------------------------------------------- */

static int64_t file_size(const char *path, const char *suffix)
{
    char p[4096];
    struct stat sb;
    if (snprintf(p, sizeof p, "%s%s", path, suffix) >= (int)sizeof p) return 0;
    return stat(p, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static int64_t snapshot_bytes(const cp_snapshot *s)
{
    int64_t b = (int64_t)sizeof *s;
    b += s->codec.n_centroids * s->codec.dim * (int64_t)sizeof(float);
    b += (s->n_slots + 1) * (int64_t)sizeof(int64_t) + s->n_slots; /* offsets, deleted */
    b += s->n_slots * (int64_t)sizeof(char *);
    if (s->file_ids) b += s->n_slots * (int64_t)sizeof(int32_t);
    for (int64_t d = 0; d < s->n_slots; d++)
        if (s->external_ids[d]) b += (int64_t)strlen(s->external_ids[d]) + 1;
    /* tokens held, including tombstoned ones a live snapshot keeps until compaction */
    b += s->doc_offsets[s->n_slots] * (4 + cp_codec_token_bytes(&s->codec));
    b += (s->codec.n_centroids + 1) * (int64_t)sizeof(int64_t);
    b += s->ivf_offsets[s->codec.n_centroids] * (int64_t)sizeof(int32_t);
    if (s->ivf_delta_offsets)
        b += (s->codec.n_centroids + 1) * (int64_t)sizeof(int64_t) +
             s->ivf_delta_offsets[s->codec.n_centroids] * (int64_t)sizeof(int32_t);
    return b;
}

static cp_status count_sql(cp_store *s, const char *sql, int64_t *out, cp_error *err)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(s), sql, -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        *out = sqlite3_column_int64(q, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_OK ? CP_OK : cp_store_sql_error(s, rc, "counting", err);
}

cp_status cp_index_stats_get(cp_index *index, cp_index_stats *out, cp_error *err)
{
    memset(out, 0, sizeof *out);
    cp_snapshot *s = cp_index_acquire_snapshot(index);
    out->format_version = CP_INDEX_FORMAT_VERSION;
    out->dim = s->codec.dim;
    out->nbits = s->codec.nbits;
    out->codec = cp_codec_variant_name(s->codec.variant);
    out->n_centroids = s->codec.n_centroids;
    out->n_documents = s->n_live;
    out->n_tokens = s->n_tokens;
    pthread_rwlock_rdlock(&index->view_lock);
    out->bytes_in_memory = snapshot_bytes(s) +
                           (index->current.snap == s ? (int64_t)(index->current.map.mask + 1) * 4 : 0);
    pthread_rwlock_unlock(&index->view_lock);
    cp_snapshot_release(s);
    out->bytes_on_disk = file_size(index->path, "") + file_size(index->path, "-wal");
    cp_store *db = NULL;
    cp_status st = cp_index_pool_get(index, &db, err);
    if (st != CP_OK) return st;
    st = count_sql(db, "SELECT COUNT(*) FROM documents WHERE deleted != 0", &out->n_deleted, err);
    if (st == CP_OK) st = count_sql(db, "SELECT COUNT(*) FROM segments", &out->n_segments, err);
    int64_t version = 0;
    if (st == CP_OK &&
        cp_store_meta_int(db, "format_version", 1, INT32_MAX, &version, NULL) == CP_OK)
        out->format_version = (int)version;
    cp_index_pool_put(index, db);
    return st;
}

uint64_t cp_index_codec_fingerprint(cp_index *index)
{
    cp_snapshot *s = cp_index_acquire_snapshot(index);
    uint64_t h = cp_codec_fingerprint(&s->codec);
    cp_snapshot_release(s);
    return h;
}

char *cp_index_meta_get(cp_index *index, const char *key)
{
    cp_store *db = NULL;
    if (cp_index_pool_get(index, &db, NULL) != CP_OK) return NULL;
    char *v = cp_store_get_meta(db, key);
    cp_index_pool_put(index, db);
    return v;
}

cp_status cp_index_set_encoder(cp_index *index, const char *fingerprint_json, cp_error *err)
{
    if (!fingerprint_json || fingerprint_json[0] != '{')
        return cp_error_set(err, CP_EINVAL, "a model fingerprint is a JSON object");
    return cp_index_write_meta(index, "encoder", fingerprint_json, err);
}

cp_status cp_index_write_meta(cp_index *index, const char *key, const char *value, cp_error *err)
{
    cp_store *w = cp_index_writer_store(index);
    if (!w) return cp_error_set(err, CP_EREADONLY, "%s is open read-only", cp_index_path(index));
    cp_index_write_lock(index);
    cp_status st = cp_store_begin(w, err);
    if (st == CP_OK) st = cp_store_set_meta(w, key, value, err);
    if (st == CP_OK)
        st = cp_store_commit(w, err);
    else
        cp_store_rollback(w);
    cp_index_write_unlock(index);
    return st;
}

cp_status cp_index_external_id(cp_index *index, int64_t doc_id, char **external_id, cp_error *err)
{
    *external_id = NULL;
    cp_snapshot *s = cp_index_acquire_snapshot(index);
    cp_status st = CP_OK;
    int64_t slot = cp_snapshot_slot_of(s, doc_id);
    if (slot < 0 || s->deleted[slot])
        st = cp_error_set(err, CP_ENOTFOUND, "no document with internal id %lld", (long long)doc_id);
    else if (!(*external_id = strdup(s->external_ids[slot])))
        st = cp_error_set(err, CP_ENOMEM, "out of memory");
    cp_snapshot_release(s);
    return st;
}

cp_status cp_index_doc_id(cp_index *index, const char *external_id, int64_t *doc_id, cp_error *err)
{
    pthread_rwlock_rdlock(&index->view_lock);
    int64_t d = idmap_find(&index->current, external_id);
    pthread_rwlock_unlock(&index->view_lock);
    *doc_id = d;
    if (d < 0) return cp_error_set(err, CP_ENOTFOUND, "no document with id \"%s\"", external_id);
    return CP_OK;
}

static char *dup_column(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    return t ? strdup((const char *)t) : NULL;
}

cp_status cp_index_document_get(cp_index *index, const char *external_id, cp_document_info *out,
                                cp_error *err)
{
    memset(out, 0, sizeof *out);
    cp_store *db = NULL;
    cp_status st = cp_index_pool_get(index, &db, err);
    if (st != CP_OK) return st;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(db),
                                "SELECT doc_id, external_id, text, metadata, n_tokens FROM documents"
                                " WHERE external_id = ? AND deleted = 0",
                                -1, &q, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(q, 1, external_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(q);
    }
    if (rc == SQLITE_ROW) {
        out->doc_id = sqlite3_column_int64(q, 0);
        out->external_id = dup_column(q, 1);
        out->text = dup_column(q, 2);
        out->metadata_json = dup_column(q, 3);
        out->n_tokens = sqlite3_column_int(q, 4);
        if (!out->external_id) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    } else if (rc == SQLITE_DONE) {
        st = cp_error_set(err, CP_ENOTFOUND, "no document with id \"%s\"", external_id);
    } else {
        st = cp_store_sql_error(db, rc, "reading a document", err);
    }
    sqlite3_finalize(q);
    cp_index_pool_put(index, db);
    if (st != CP_OK) cp_document_info_free(out);
    return st;
}

void cp_document_info_free(cp_document_info *info)
{
    if (!info) return;
    free(info->external_id);
    free(info->text);
    free(info->metadata_json);
    memset(info, 0, sizeof *info);
}

cp_status cp_index_document_embeddings(cp_index *index, int64_t doc_id, float **embeddings,
                                       int32_t *n_tokens, cp_error *err)
{
    *embeddings = NULL;
    *n_tokens = 0;
    cp_snapshot *s = cp_index_acquire_snapshot(index);
    cp_status st = CP_OK;
    int64_t slot = cp_snapshot_slot_of(s, doc_id);
    if (slot < 0 || s->deleted[slot]) {
        st = cp_error_set(err, CP_ENOTFOUND, "no document with internal id %lld", (long long)doc_id);
    } else {
        int64_t lo = s->doc_offsets[slot], n = s->doc_offsets[slot + 1] - lo;
        int dim = s->codec.dim, rb = cp_codec_token_bytes(&s->codec);
        float *out = malloc((size_t)(n ? n : 1) * (size_t)dim * sizeof *out);
        if (!out) {
            st = cp_error_set(err, CP_ENOMEM, "out of memory");
        } else {
            for (int64_t t = 0; t < n; t++)
                cp_codec_decompress_one(&s->codec, s->codes[lo + t],
                                        s->residuals + (size_t)(lo + t) * (size_t)rb,
                                        out + t * dim);
            *embeddings = out;
            *n_tokens = (int32_t)n;
        }
    }
    cp_snapshot_release(s);
    return st;
}

/* ------------------------------------------------------------------------------------
 * Batch lookups for the server: restricting a search, resolving its hits
 * --------------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* a := a ∩ b (both sorted ascending); returns the new length of a. */
static size_t intersect_sorted(int64_t *a, size_t na, const int64_t *b, size_t nb)
{
    size_t i = 0, j = 0, o = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j])
            i++;
        else if (a[i] > b[j])
            j++;
        else {
            a[o++] = a[i];
            i++;
            j++;
        }
    }
    return o;
}

/* The internal ids of the live external_ids, sorted and unique; unknown ids are skipped. */
static cp_status resolve_external_ids(cp_index *index, const char *const *external_ids, size_t n,
                                      int64_t **out, size_t *n_out, cp_error *err)
{
    *n_out = 0;
    if (!(*out = malloc((n ? n : 1) * sizeof **out)))
        return cp_error_set(err, CP_ENOMEM, "out of memory for %zu ids", n);
    size_t m = 0;
    pthread_rwlock_rdlock(&index->view_lock); /* one lock for the whole list, not per id */
    for (size_t i = 0; i < n; i++) {
        int64_t d = idmap_find(&index->current, external_ids[i]);
        if (d >= 0) (*out)[m++] = d;
    }
    pthread_rwlock_unlock(&index->view_lock);
    qsort(*out, m, sizeof **out, cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || (*out)[u - 1] != (*out)[i]) (*out)[u++] = (*out)[i];
    *n_out = u;
    return CP_OK;
}

cp_status cp_index_restrict(cp_index *index, const char *filter_json,
                            const char *const *external_ids, size_t n_external_ids, bool by_ids,
                            int64_t **doc_ids, size_t *n_doc_ids, cp_error *err)
{
    *doc_ids = NULL;
    *n_doc_ids = 0;
    if (!index || (n_external_ids && !external_ids))
        return cp_error_set(err, CP_EINVAL, "restrict: a required argument is NULL");
    int64_t *by_filter = NULL, *listed = NULL;
    size_t n_filter = 0, n_listed = 0;
    cp_status st = CP_OK;
    if (filter_json) st = cp_index_filter(index, filter_json, &by_filter, &n_filter, err);
    if (st == CP_OK && by_ids)
        st = resolve_external_ids(index, external_ids, n_external_ids, &listed, &n_listed, err);
    if (st != CP_OK) {
        free(by_filter);
        free(listed);
        return st;
    }
    if (filter_json && by_ids) {
        n_filter = intersect_sorted(by_filter, n_filter, listed, n_listed);
        free(listed);
        listed = NULL;
    }
    *doc_ids = filter_json ? by_filter : listed;
    *n_doc_ids = filter_json ? n_filter : n_listed;
    return CP_OK;
}

cp_status cp_index_hit_documents(cp_index *index, const cp_hit *hits, size_t n, int fields,
                                 cp_document_info *out, cp_error *err)
{
    if (!index || (n && (!hits || !out)))
        return cp_error_set(err, CP_EINVAL, "hit documents: a required argument is NULL");
    memset(out, 0, n * sizeof *out);
    cp_status st = CP_OK;
    /* External ids from the current snapshot (no SQL): a hit whose document was deleted or
     * replaced since the search ran has none, and stays empty. */
    cp_snapshot *s = cp_index_acquire_snapshot(index);
    for (size_t i = 0; i < n && st == CP_OK; i++) {
        int64_t d = cp_snapshot_slot_of(s, hits[i].doc_id);
        out[i].doc_id = -1;
        if (d < 0 || s->deleted[d]) continue;
        if (!(out[i].external_id = strdup(s->external_ids[d])))
            st = cp_error_set(err, CP_ENOMEM, "out of memory");
        out[i].doc_id = hits[i].doc_id;
        out[i].n_tokens = (int32_t)(s->doc_offsets[d + 1] - s->doc_offsets[d]);
    }
    cp_snapshot_release(s);
    cp_store *db = NULL;
    sqlite3_stmt *q = NULL;
    if (st == CP_OK && (fields & (CP_DOC_TEXT | CP_DOC_METADATA))) {
        st = cp_index_pool_get(index, &db, err);
        int rc = st == CP_OK ? sqlite3_prepare_v2(cp_store_sqlite(db),
                                                  "SELECT text, metadata FROM documents"
                                                  " WHERE doc_id = ? AND deleted = 0",
                                                  -1, &q, NULL)
                             : SQLITE_OK;
        /* One statement and one pooled connection for every hit. */
        for (size_t i = 0; st == CP_OK && rc == SQLITE_OK && i < n; i++) {
            if (!out[i].external_id) continue;
            sqlite3_reset(q);
            sqlite3_bind_int64(q, 1, out[i].doc_id);
            rc = sqlite3_step(q);
            if (rc == SQLITE_ROW) {
                const unsigned char *text = sqlite3_column_text(q, 0);
                const unsigned char *meta = sqlite3_column_text(q, 1);
                if ((fields & CP_DOC_TEXT) && text && !(out[i].text = strdup((const char *)text)))
                    st = cp_error_set(err, CP_ENOMEM, "out of memory");
                if ((fields & CP_DOC_METADATA) && meta &&
                    !(out[i].metadata_json = strdup((const char *)meta)))
                    st = cp_error_set(err, CP_ENOMEM, "out of memory");
                rc = SQLITE_OK;
            } else if (rc == SQLITE_DONE) { /* deleted after the snapshot was read */
                cp_document_info_free(&out[i]);
                out[i].doc_id = -1;
                rc = SQLITE_OK;
            }
        }
        if (st == CP_OK && rc != SQLITE_OK)
            st = cp_store_sql_error(db, rc, "reading documents", err);
        sqlite3_finalize(q);
        if (db) cp_index_pool_put(index, db);
    }
    if (st != CP_OK)
        for (size_t i = 0; i < n; i++)
            cp_document_info_free(&out[i]);
    return st;
}
