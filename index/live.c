/*
 * The live index: upsert and delete by external id, delete by filter, compaction and the
 * centroid-drift measure (docs/live-index.md).
 *
 * Why it exists: an index must take changes while it serves searches, without a rebuild,
 * without renumbering ids and without ever exposing or losing half a write.
 *
 * How a write goes (all under the index's write lock, so writers are serialised):
 *   1. validate and encode the input (nothing touched yet);
 *   2. BEGIN IMMEDIATE; tombstone old versions; append one segment; update drift meta;
 *   3. build the next in-memory snapshot (sharing the current one's arrays: cost is the
 *      size of the change, see cp_snapshot_derive) and the next id map;
 *   4. COMMIT (synchronous=FULL: durable when it returns);
 *   5. swap the prepared view in: a pointer swap that cannot fail.
 * Any failure before 4 rolls back and leaves the published view as it was; a failure of the
 * COMMIT itself is also a rollback. So searches see each write whole or not at all, and
 * what they see is always what is on disk.
 *
 * Invariants
 * - Internal ids (the file's doc_id) are never renumbered: an upsert of an existing id
 *   tombstones the old version and gives the new one a new internal id; compaction moves
 *   token data between segments but never changes an id. In memory, documents sit in
 *   slots (index/snapshot.h): the store speaks internal ids, the snapshot slots, and
 *   cp_snapshot_slot_of / cp_snapshot_file_id translate (removed[] below holds slots). A
 *   reload (open, compaction) numbers the slots of the live documents densely, so memory
 *   follows the live documents rather than every id ever used.
 * - The in-memory snapshot mirrors the committed file: derived snapshots differ from a
 *   freshly loaded one only in where tombstoned tokens and IVF entries sit, never in which
 *   documents are live or what their tokens are.
 */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "build.h"
#include "codec.h"
#include "drift.h"
#include "filter.h"
#include "pool.h"
#include "index_handle.h"
#include "snapshot.h"
#include "storage.h"

enum {
    COMPACT_TARGET_DOCS = 4096, /* documents per rewritten segment */
    COMPACT_SMALL_DOCS = 1024,  /* segments below this are merged */
};

/* ------------------------------------------------------------------------------------
 * Common checks
 * --------------------------------------------------------------------------------- */

static cp_status need_writer(cp_index *index, cp_store **out, cp_error *err)
{
    if (!index) return cp_error_set(err, CP_EINVAL, "the index is NULL");
    *out = cp_index_writer_store(index);
    if (!*out)
        return cp_error_set(err, CP_EREADONLY, "%s was opened read-only; open it for writing to "
                            "change it", cp_index_path(index));
    return CP_OK;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Shape checks of a batch before any vector is read: ids present and unique, dim. */
static cp_status check_batch(const cp_document *docs, size_t n, int dim, int index_dim,
                             cp_error *err)
{
    if (!docs || n == 0) return cp_error_set(err, CP_EINVAL, "upsert: no documents given");
    if (dim != index_dim)
        return cp_error_set(err, CP_EDIM, "upsert: the vectors have %d dims, the index has %d",
                            dim, index_dim);
    const char **ids = malloc(n * sizeof *ids);
    if (!ids) return cp_error_set(err, CP_ENOMEM, "out of memory");
    cp_status st = CP_OK;
    for (size_t i = 0; i < n && st == CP_OK; i++) {
        if (!docs[i].id || !docs[i].id[0])
            st = cp_error_set(err, CP_EINVAL, "upsert: document %zu has an empty id", i);
        ids[i] = docs[i].id;
    }
    if (st == CP_OK) qsort(ids, n, sizeof *ids, cmp_str_ptr);
    for (size_t i = 1; i < n && st == CP_OK; i++)
        if (!strcmp(ids[i - 1], ids[i]))
            st = cp_error_set(err, CP_EINVAL, "upsert: id \"%s\" appears more than once in one "
                              "batch; send each document once", ids[i]);
    free(ids);
    return st;
}

/* ------------------------------------------------------------------------------------
 * Encoding a batch
 * --------------------------------------------------------------------------------- */

typedef struct batch {
    float *vecs; /* n_tokens x dim, normalised (kept for the drift measure) */
    int32_t *doclens;
    int64_t n_tokens;
    int32_t *codes;
    uint8_t *residuals;
} batch;

static void batch_free(batch *b)
{
    free(b->vecs);
    free(b->doclens);
    free(b->codes);
    free(b->residuals);
    memset(b, 0, sizeof *b);
}

/* Large batches compress on every core (the write lock is held anyway); small ones on
 * the calling thread. */
static int compress_threads(int64_t n_tokens)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return n_tokens < 4096 || cores < 1 ? 1 : (int)cores;
}

/* The index's pooling (meta "pooling", written by a pooled build; absent: none). */
static cp_status read_pooling(cp_store *store, int *factor, cp_pool_linkage *linkage,
                              cp_error *err)
{
    char *text = cp_store_get_meta(store, "pooling");
    bool ok = cp_pool_meta_parse(text, factor, linkage);
    cp_status st = ok ? CP_OK
                      : cp_error_set(err, CP_ECORRUPT, "%s: meta \"pooling\" is malformed: %.100s",
                                     cp_store_path(store), text);
    free(text);
    return st;
}

/* Normalise (the builder's rules), pool if the index pools (the builder's way: doclens
 * become the pooled counts) and compress every vector with the index's codec. */
static cp_status encode_batch(cp_store *store, const cp_snapshot *snap, const cp_document *docs,
                              size_t n, batch *b, cp_error *err)
{
    int factor = 1;
    cp_pool_linkage linkage = CP_POOL_WARD;
    cp_status st = read_pooling(store, &factor, &linkage, err);
    if (st != CP_OK) return st;
    int dim = snap->codec.dim;
    size_t rb = (size_t)cp_codec_token_bytes(&snap->codec);
    if (!(b->doclens = malloc(n * sizeof *b->doclens)))
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (docs[i].n_tokens <= 0)
            return cp_error_set(err, CP_EINVAL, "upsert: document \"%s\" has no tokens (empty "
                                "documents cannot be indexed)", docs[i].id);
        b->doclens[i] = docs[i].n_tokens;
        b->n_tokens += docs[i].n_tokens;
    }
    size_t nt = (size_t)b->n_tokens;
    float *vecs = b->vecs = malloc(nt * (size_t)dim * sizeof *vecs);
    b->codes = malloc(nt * sizeof *b->codes);
    b->residuals = malloc(nt * rb);
    if (!vecs || !b->codes || !b->residuals)
        return cp_error_set(err, CP_ENOMEM, "out of memory encoding %zu tokens", nt);
    cp_pool_ws ws = {0};
    size_t t = 0;
    for (size_t i = 0; i < n && st == CP_OK; t += (size_t)b->doclens[i], i++) {
        float *v = vecs + t * (size_t)dim;
        st = cp_doc_normalise(&docs[i], dim, "upsert", (int64_t)i, v, err);
        if (st == CP_OK && factor > 1)
            st = cp_pool_document(&ws, v, docs[i].n_tokens, dim, factor, linkage, &b->doclens[i],
                                  err);
    }
    cp_pool_ws_free(&ws);
    b->n_tokens = (int64_t)t;
    if (st == CP_OK)
        st = cp_codec_compress(&snap->codec, vecs, b->n_tokens, b->codes, b->residuals,
                               compress_threads(b->n_tokens), err);
    return st;
}

/* Count the batch's outliers against meta "drift" and store the new running totals (inside
 * the write transaction, so the totals are exactly those of committed writes). */
static cp_status drift_update(cp_store *store, const cp_codec *c, const batch *b,
                              cp_upsert_result *res, cp_error *err)
{
    char *stored = cp_store_get_meta(store, "drift"), *json = NULL;
    cp_status st = cp_drift_account(stored, c, b->vecs, b->codes, b->n_tokens, &json,
                                    &res->n_outlier_tokens, &res->rebuild_advised, err);
    free(stored);
    if (st == CP_OK) st = cp_store_set_meta(store, "drift", json, err);
    free(json);
    return st;
}

/* ------------------------------------------------------------------------------------
 * Next snapshots
 * --------------------------------------------------------------------------------- */

/* Mark removed slots deleted in next (they were live in the current snapshot). */
static void apply_removals(cp_snapshot *next, const int64_t *removed, size_t n_removed)
{
    for (size_t i = 0; i < n_removed; i++) {
        int64_t d = removed[i];
        next->deleted[d] = 1;
        next->n_live--;
        next->n_tokens -= next->doc_offsets[d + 1] - next->doc_offsets[d];
        next->ivf_stale++;
    }
}

static cp_status next_after_upsert(const cp_snapshot *cur, const cp_document *docs, size_t n,
                                   const batch *b, const int64_t *removed, size_t n_removed,
                                   cp_snapshot **out, cp_error *err)
{
    cp_snapshot *next = NULL;
    cp_status st = cp_snapshot_derive(cur, (int64_t)n, b->n_tokens, &next, err);
    if (st != CP_OK) return st;
    size_t rb = (size_t)cp_codec_token_bytes(&cur->codec);
    int64_t base = next->doc_offsets[cur->n_slots];
    memcpy(next->codes + base, b->codes, (size_t)b->n_tokens * sizeof *b->codes);
    memcpy(next->residuals + (size_t)base * rb, b->residuals, (size_t)b->n_tokens * rb);
    for (size_t i = 0; i < n && st == CP_OK; i++) {
        int64_t slot = cur->n_slots + (int64_t)i;
        next->doc_offsets[slot + 1] = next->doc_offsets[slot] + b->doclens[i];
        next->external_ids[slot] = strdup(docs[i].id);
        next->slot_owner->n_strings = slot + 1; /* strings the owner must free */
        if (!next->external_ids[slot]) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    next->n_live += (int64_t)n;
    next->n_tokens += b->n_tokens;
    apply_removals(next, removed, n_removed);
    if (st == CP_OK) st = cp_snapshot_refresh_ivf(next, true, err);
    if (st != CP_OK) {
        cp_snapshot_release(next);
        return st;
    }
    *out = next;
    return CP_OK;
}

/* Steps 3-5 of a write (see the top of the file): prepare the view, commit, swap. */
static cp_status commit_and_publish(cp_index *index, cp_store *store, cp_snapshot *next,
                                    const int64_t *removed, size_t n_removed, int64_t first_new,
                                    cp_error *err)
{
    cp_view_next *v = NULL;
    cp_status st = cp_index_view_prepare(index, next, removed, n_removed, first_new, &v, err);
    if (st != CP_OK) {
        cp_snapshot_release(next);
        cp_store_rollback(store);
        return st;
    }
    st = cp_store_commit(store, err);
    if (st != CP_OK) {
        cp_index_view_discard(v);
        return st;
    }
    cp_index_view_swap(index, v);
    return CP_OK;
}

/* ------------------------------------------------------------------------------------
 * Upsert
 * --------------------------------------------------------------------------------- */

/* Inside the transaction: tombstone old versions, append the segment, update drift. */
static cp_status write_upsert(cp_store *store, const cp_snapshot *cur, const cp_document *docs,
                              size_t n, const batch *b, int64_t *removed, size_t *n_removed,
                              cp_upsert_result *res, cp_error *err)
{
    cp_status st = CP_OK;
    *n_removed = 0;
    for (size_t i = 0; i < n && st == CP_OK; i++) {
        int64_t old = -1;
        st = cp_store_tombstone_external(store, docs[i].id, &old, err);
        if (st == CP_OK && old >= 0) {
            int64_t slot = cp_snapshot_slot_of(cur, old);
            if (slot < 0 || cur->deleted[slot])
                return cp_error_set(err, CP_EINTERNAL, "%s: document \"%s\" is live in the file "
                                    "but not in memory", cp_store_path(store), docs[i].id);
            removed[(*n_removed)++] = slot;
        }
    }
    if (st != CP_OK) return st;
    cp_segment_input seg = {.n_docs = n, .docs = docs, .doclens = b->doclens,
                            .n_tokens = b->n_tokens, .codes = b->codes,
                            .residuals = b->residuals};
    st = cp_store_append_segment(store, &seg, &res->first_doc_id, err);
    int64_t next_id = cur->file_ids ? cur->next_file_id : cur->n_slots;
    if (st == CP_OK && res->first_doc_id != next_id)
        st = cp_error_set(err, CP_EINTERNAL,
                          "%s: the file's next id %lld differs from memory's %lld",
                          cp_store_path(store), (long long)res->first_doc_id, (long long)next_id);
    if (st == CP_OK) st = drift_update(store, &cur->codec, b, res, err);
    res->n_replaced = *n_removed;
    res->n_added = n - *n_removed;
    res->n_tokens = b->n_tokens;
    return st;
}

static cp_status upsert_locked(cp_index *index, cp_store *store, const cp_snapshot *cur,
                               const cp_document *docs, size_t n, int dim,
                               cp_upsert_result *res, cp_error *err)
{
    batch b = {0};
    cp_status st = check_batch(docs, n, dim, cur->codec.dim, err);
    if (st == CP_OK) st = encode_batch(store, cur, docs, n, &b, err);
    int64_t *removed = st == CP_OK ? malloc(n * sizeof *removed) : NULL;
    if (st == CP_OK && !removed) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    size_t n_removed = 0;
    if (st == CP_OK) st = cp_store_begin(store, err);
    if (st == CP_OK) {
        cp_snapshot *next = NULL;
        st = write_upsert(store, cur, docs, n, &b, removed, &n_removed, res, err);
        if (st == CP_OK) st = next_after_upsert(cur, docs, n, &b, removed, n_removed, &next, err);
        if (st == CP_OK)
            st = commit_and_publish(index, store, next, removed, n_removed, cur->n_slots, err);
        else
            cp_store_rollback(store);
    }
    free(removed);
    batch_free(&b);
    return st;
}

cp_status cp_index_upsert(cp_index *index, const cp_document *docs, size_t n, int dim,
                          cp_upsert_result *result, cp_error *err)
{
    cp_upsert_result local;
    cp_upsert_result *res = result ? result : &local;
    memset(res, 0, sizeof *res);
    cp_store *store = NULL;
    cp_status st = need_writer(index, &store, err);
    if (st != CP_OK) return st;
    cp_index_write_lock(index);
    cp_snapshot *cur = cp_index_acquire_snapshot(index);
    st = upsert_locked(index, store, cur, docs, n, dim, res, err);
    cp_snapshot_release(cur);
    cp_index_write_unlock(index);
    if (st != CP_OK) memset(res, 0, sizeof *res);
    return st;
}

/* ------------------------------------------------------------------------------------
 * Delete
 * --------------------------------------------------------------------------------- */

typedef enum { BY_EXTERNAL, BY_INTERNAL, BY_FILTER } delete_kind;

typedef struct delete_req {
    delete_kind kind;
    const char *const *ids;
    const int64_t *doc_ids;
    size_t n;
    const char *filter_json;
} delete_req;

/* Tombstone inside the transaction; removed gets the internal ids actually deleted. */
static cp_status tombstone_all(cp_store *store, const cp_snapshot *cur, const delete_req *rq,
                               int64_t **removed, size_t *n_removed, cp_error *err)
{
    int64_t *filtered = NULL;
    size_t n = rq->n;
    cp_status st = CP_OK;
    if (rq->kind == BY_FILTER) {
        cp_filter_sql *f = NULL;
        st = cp_filter_compile(rq->filter_json, strlen(rq->filter_json), &f, err);
        if (st == CP_OK) st = cp_filter_run(f, cp_store_sqlite(store), &filtered, &n, err);
        cp_filter_sql_free(f);
        if (st != CP_OK) return st;
    }
    *removed = malloc((n ? n : 1) * sizeof **removed);
    if (!*removed) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && st == CP_OK; i++) {
        int64_t d = -1;
        if (rq->kind == BY_EXTERNAL) st = cp_store_tombstone_external(store, rq->ids[i], &d, err);
        else st = cp_store_tombstone_doc(store, rq->kind == BY_FILTER ? filtered[i] : rq->doc_ids[i],
                                         &d, err);
        int64_t slot = d >= 0 ? cp_snapshot_slot_of(cur, d) : -1;
        if (st == CP_OK && d >= 0 && (slot < 0 || cur->deleted[slot]))
            st = cp_error_set(err, CP_EINTERNAL, "%s: document %lld is live in the file but not "
                              "in memory", cp_store_path(store), (long long)d);
        if (st == CP_OK && d >= 0) (*removed)[(*n_removed)++] = slot;
    }
    free(filtered);
    return st;
}

static cp_status delete_locked(cp_index *index, cp_store *store, const cp_snapshot *cur,
                               const delete_req *rq, size_t *n_deleted, cp_error *err)
{
    int64_t *removed = NULL;
    size_t n_removed = 0;
    cp_status st = cp_store_begin(store, err);
    if (st != CP_OK) return st;
    st = tombstone_all(store, cur, rq, &removed, &n_removed, err);
    cp_snapshot *next = NULL;
    if (st == CP_OK && n_removed == 0) {
        st = cp_store_commit(store, err); /* nothing changed: nothing to publish */
    } else {
        if (st == CP_OK) st = cp_snapshot_derive(cur, 0, 0, &next, err);
        if (st == CP_OK) {
            apply_removals(next, removed, n_removed);
            st = cp_snapshot_refresh_ivf(next, false, err);
            if (st != CP_OK) cp_snapshot_release(next);
        }
        if (st == CP_OK)
            st = commit_and_publish(index, store, next, removed, n_removed, cur->n_slots, err);
        else
            cp_store_rollback(store);
    }
    free(removed);
    if (st == CP_OK) *n_deleted = n_removed;
    return st;
}

static cp_status delete_run(cp_index *index, const delete_req *rq, size_t *n_deleted,
                            cp_error *err)
{
    size_t local = 0;
    if (!n_deleted) n_deleted = &local;
    *n_deleted = 0;
    cp_store *store = NULL;
    cp_status st = need_writer(index, &store, err);
    if (st != CP_OK) return st;
    if (rq->n && !rq->ids && !rq->doc_ids)
        return cp_error_set(err, CP_EINVAL, "delete: the id list is NULL");
    for (size_t i = 0; rq->kind == BY_EXTERNAL && i < rq->n; i++)
        if (!rq->ids[i] || !rq->ids[i][0])
            return cp_error_set(err, CP_EINVAL, "delete: id %zu is empty", i);
    cp_index_write_lock(index);
    cp_snapshot *cur = cp_index_acquire_snapshot(index);
    st = delete_locked(index, store, cur, rq, n_deleted, err);
    cp_snapshot_release(cur);
    cp_index_write_unlock(index);
    return st;
}

cp_status cp_index_delete(cp_index *index, const char *const *ids, size_t n, size_t *n_deleted,
                          cp_error *err)
{
    delete_req rq = {.kind = BY_EXTERNAL, .ids = ids, .n = n};
    return delete_run(index, &rq, n_deleted, err);
}

cp_status cp_index_delete_doc_ids(cp_index *index, const int64_t *doc_ids, size_t n,
                                  size_t *n_deleted, cp_error *err)
{
    delete_req rq = {.kind = BY_INTERNAL, .doc_ids = doc_ids, .n = n};
    return delete_run(index, &rq, n_deleted, err);
}

cp_status cp_index_delete_filter(cp_index *index, const char *filter_json, size_t *n_deleted,
                                 cp_error *err)
{
    if (!filter_json) return cp_error_set(err, CP_EINVAL, "delete: the filter is NULL");
    delete_req rq = {.kind = BY_FILTER, .filter_json = filter_json};
    return delete_run(index, &rq, n_deleted, err);
}

/* ------------------------------------------------------------------------------------
 * Compaction
 * --------------------------------------------------------------------------------- */

typedef struct seg_info {
    int64_t id, n_docs, n_dead;
} seg_info;

/* Segments with tombstones, and small segments when there are at least two to merge. */
static cp_status dirty_segments(cp_store *store, seg_info **out, size_t *n_out, int64_t *n_all,
                                cp_error *err)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(store),
                                "SELECT s.segment_id, s.n_docs, (SELECT COUNT(*) FROM documents d"
                                " WHERE d.segment_id = s.segment_id AND d.deleted != 0)"
                                " FROM segments s ORDER BY s.segment_id",
                                -1, &q, NULL);
    seg_info *v = NULL;
    size_t n = 0, cap = 0, n_small = 0;
    *n_all = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        seg_info si = {sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
                       sqlite3_column_int64(q, 2)};
        (*n_all)++;
        if (si.n_dead == 0 && si.n_docs >= COMPACT_SMALL_DOCS) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            seg_info *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = SQLITE_NOMEM;
                break;
            }
            v = nv;
        }
        n_small += si.n_dead == 0;
        v[n++] = si;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return cp_store_sql_error(store, rc, "listing segments", err);
    }
    if (n == n_small && n_small < 2) n = 0; /* one small clean segment: nothing to gain */
    *out = v;
    *n_out = n;
    return CP_OK;
}

typedef struct gathered {
    int64_t *doc_ids;
    int32_t *doclens;
    size_t n_docs, cap_docs;
    int32_t *codes;
    uint8_t *residuals;
    int64_t n_tokens, cap_tokens;
} gathered;

static void gathered_free(gathered *g)
{
    free(g->doc_ids);
    free(g->doclens);
    free(g->codes);
    free(g->residuals);
}

static bool gathered_room(gathered *g, size_t docs, int64_t tokens, size_t rb)
{
    if (g->n_docs + docs > g->cap_docs) {
        size_t cap = (g->n_docs + docs) * 2;
        int64_t *a = realloc(g->doc_ids, cap * sizeof *a);
        if (a) g->doc_ids = a;
        int32_t *b = realloc(g->doclens, cap * sizeof *b);
        if (b) g->doclens = b;
        if (!a || !b) return false;
        g->cap_docs = cap;
    }
    if (g->n_tokens + tokens > g->cap_tokens) {
        int64_t cap = (g->n_tokens + tokens) * 2;
        int32_t *c = realloc(g->codes, (size_t)cap * sizeof *c);
        if (c) g->codes = c;
        uint8_t *r = realloc(g->residuals, (size_t)cap * rb);
        if (r) g->residuals = r;
        if (!c || !r) return false;
        g->cap_tokens = cap;
    }
    return true;
}

/* Append the live documents (per the current snapshot, which mirrors the file) of one
 * segment to g. */
static cp_status gather_segment(cp_store *store, const cp_snapshot *cur, int64_t segment_id,
                                gathered *g, cp_error *err)
{
    size_t rb = (size_t)cp_codec_token_bytes(&cur->codec);
    cp_segment_iter *it = NULL;
    cp_segment_data seg;
    bool has = false;
    cp_status st = cp_store_segment_get(store, segment_id, &it, err);
    if (st == CP_OK) st = cp_store_segments_next(it, &seg, &has, err);
    if (st == CP_OK && has && !gathered_room(g, (size_t)seg.n_docs, seg.n_tokens, rb))
        st = cp_error_set(err, CP_ENOMEM, "out of memory compacting segment %lld",
                          (long long)segment_id);
    int64_t t = 0;
    for (int64_t i = 0; st == CP_OK && has && i < seg.n_docs; t += seg.doclens[i], i++) {
        int64_t d = seg.doc_ids[i], slot = cp_snapshot_slot_of(cur, d);
        if (slot < 0 || cur->deleted[slot]) continue;
        g->doc_ids[g->n_docs] = d;
        g->doclens[g->n_docs++] = seg.doclens[i];
        memcpy(g->codes + g->n_tokens, seg.codes + t, (size_t)seg.doclens[i] * sizeof(int32_t));
        memcpy(g->residuals + (size_t)g->n_tokens * rb, seg.residuals + (size_t)t * rb,
               (size_t)seg.doclens[i] * rb);
        g->n_tokens += seg.doclens[i];
    }
    cp_store_segments_end(it);
    return st;
}

/* One transaction: the live documents of segments[0..n) into one new segment. */
static cp_status compact_group(cp_store *store, const cp_snapshot *cur, const seg_info *segs,
                               size_t n, int64_t *tombstones, cp_error *err)
{
    gathered g = {0};
    int64_t *old = malloc(n * sizeof *old);
    cp_status st = old ? cp_store_begin(store, err) : cp_error_set(err, CP_ENOMEM, "out of memory");
    for (size_t i = 0; st == CP_OK && i < n; i++) {
        old[i] = segs[i].id;
        st = gather_segment(store, cur, segs[i].id, &g, err);
    }
    int64_t removed = 0;
    cp_segment_input in = {.n_docs = g.n_docs, .doclens = g.doclens, .n_tokens = g.n_tokens,
                           .codes = g.codes, .residuals = g.residuals};
    if (st == CP_OK) st = cp_store_rewrite_segments(store, old, n, &in, g.doc_ids, &removed, err);
    if (st == CP_OK) st = cp_store_commit(store, err);
    else if (old) cp_store_rollback(store);
    if (st == CP_OK) *tombstones += removed;
    free(old);
    gathered_free(&g);
    return st;
}

static cp_status compact_locked(cp_index *index, cp_store *store, const cp_snapshot *cur,
                                FILE *progress, cp_compact_result *res, cp_error *err)
{
    seg_info *segs = NULL;
    size_t n = 0;
    cp_status st = dirty_segments(store, &segs, &n, &res->segments_before, err);
    res->segments_after = res->segments_before;
    size_t start = 0, groups = 0;
    int64_t live = 0;
    for (size_t i = 0; st == CP_OK && i < n; i++) {
        live += segs[i].n_docs - segs[i].n_dead;
        if (live < COMPACT_TARGET_DOCS && i + 1 < n) continue;
        st = compact_group(store, cur, segs + start, i + 1 - start, &res->tombstones_removed, err);
        res->segments_after -= (int64_t)(i + 1 - start) - (live > 0);
        if (progress && st == CP_OK)
            fprintf(progress, "compact: %zu segments -> %d (%lld live documents)\n",
                    i + 1 - start, live > 0, (long long)live);
        start = i + 1, live = 0, groups++;
    }
    free(segs);
    if (st != CP_OK || groups == 0) return st;
    /* A fresh load has no tombstoned tokens left in memory; searches switch to it whole. */
    cp_snapshot *snap = NULL;
    st = cp_store_load_snapshot(store, &snap, err);
    if (st == CP_OK) st = cp_index_publish_snapshot(index, snap, err);
    if (st != CP_OK) cp_snapshot_release(snap);
    return st;
}

cp_status cp_index_compact(cp_index *index, FILE *progress, cp_compact_result *result,
                           cp_error *err)
{
    cp_compact_result local;
    cp_compact_result *res = result ? result : &local;
    memset(res, 0, sizeof *res);
    cp_store *store = NULL;
    cp_status st = need_writer(index, &store, err);
    if (st != CP_OK) return st;
    cp_index_write_lock(index);
    cp_snapshot *cur = cp_index_acquire_snapshot(index);
    st = compact_locked(index, store, cur, progress, res, err);
    cp_snapshot_release(cur);
    /* the collection changed shape: its search settings are measured again */
    if (st == CP_OK && res->tombstones_removed > 0) st = cp_index_calibrate(index, progress, err);
    cp_index_write_unlock(index);
    return st;
}

cp_status cp_index_maybe_compact(cp_index *index, double max_deleted_fraction, bool *compacted,
                                 cp_error *err)
{
    if (compacted) *compacted = false;
    if (!(max_deleted_fraction >= 0 && max_deleted_fraction <= 1))
        return cp_error_set(err, CP_EINVAL, "the deleted fraction must be in [0, 1]");
    cp_index_stats s;
    cp_status st = cp_index_stats_get(index, &s, err);
    if (st != CP_OK) return st;
    int64_t rows = s.n_documents + s.n_deleted;
    if (s.n_deleted == 0 || (double)s.n_deleted <= max_deleted_fraction * (double)rows)
        return CP_OK;
    st = cp_index_compact(index, NULL, NULL, err);
    if (st == CP_OK && compacted) *compacted = true;
    return st;
}
