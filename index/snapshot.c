/*
 * The in-memory snapshot: reference counting, the IVF (centroid -> sorted unique live doc
 * ids, PLAID.md 1.10) and loading a snapshot from the index file.
 *
 * Why it exists: searches read one immutable snapshot; this file is where a snapshot is put
 * together and where it is freed when the last reader lets go.
 *
 * Invariants kept here
 * - doc_offsets[0] = 0 and doc_offsets is non-decreasing; a deleted or unused slot has no
 *   tokens; codes[t] is in [0, n_centroids) for every token.
 * - Every live document's tokens come from exactly one segment row and match its doclen in
 *   the documents table; otherwise loading fails with CP_ECORRUPT.
 * - The IVF lists of every centroid are strictly increasing live doc ids. It is built with
 *   two linear passes over the tokens in doc order (count, then fill), remembering the last
 *   doc seen per centroid, so no sort is needed and the lists come out sorted and unique.
 *   The IVF is rebuilt at load rather than stored (numbers in docs/index-format.md).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "index_internal.h"
#include "storage.h"

void cp_snapshot_retain(cp_snapshot *snap)
{
    if (snap) atomic_fetch_add_explicit(&snap->refcount, 1, memory_order_relaxed);
}

static void snapshot_free(cp_snapshot *snap)
{
    free(snap->codec.centroids);
    if (snap->external_ids)
        for (int64_t i = 0; i < snap->n_slots; i++) free(snap->external_ids[i]);
    free(snap->external_ids);
    free(snap->doc_offsets);
    free(snap->deleted);
    free(snap->codes);
    free(snap->residuals);
    free(snap->ivf_offsets);
    free(snap->ivf_docs);
    free(snap);
}

void cp_snapshot_release(cp_snapshot *snap)
{
    if (!snap) return;
    /* acq_rel: the freeing thread must see every other holder's last reads finished. */
    if (atomic_fetch_sub_explicit(&snap->refcount, 1, memory_order_acq_rel) == 1)
        snapshot_free(snap);
}

cp_status cp_snapshot_build_ivf(cp_snapshot *snap, cp_error *err)
{
    int64_t k = snap->codec.n_centroids;
    int64_t *offsets = calloc((size_t)k + 1, sizeof *offsets);
    int32_t *last = malloc((size_t)k * sizeof *last);
    if (!offsets || !last) {
        free(offsets);
        free(last);
        return cp_error_set(err, CP_ENOMEM, "out of memory building the IVF (%lld centroids)",
                            (long long)k);
    }
    /* Pass 1: count distinct (centroid, doc) pairs into offsets[c + 1]. */
    memset(last, 0xff, (size_t)k * sizeof *last);
    for (int64_t d = 0; d < snap->n_slots; d++) {
        if (snap->deleted[d]) continue;
        for (int64_t t = snap->doc_offsets[d]; t < snap->doc_offsets[d + 1]; t++) {
            int32_t c = snap->codes[t];
            if (last[c] != (int32_t)d) {
                last[c] = (int32_t)d;
                offsets[c + 1]++;
            }
        }
    }
    for (int64_t c = 0; c < k; c++) offsets[c + 1] += offsets[c];
    int32_t *docs = malloc((size_t)(offsets[k] ? offsets[k] : 1) * sizeof *docs);
    int64_t *fill = malloc((size_t)k * sizeof *fill);
    if (!docs || !fill) {
        free(offsets);
        free(last);
        free(docs);
        free(fill);
        return cp_error_set(err, CP_ENOMEM, "out of memory building the IVF");
    }
    /* Pass 2: docs are visited in increasing order, so each list ends up sorted. */
    memcpy(fill, offsets, (size_t)k * sizeof *fill);
    memset(last, 0xff, (size_t)k * sizeof *last);
    for (int64_t d = 0; d < snap->n_slots; d++) {
        if (snap->deleted[d]) continue;
        for (int64_t t = snap->doc_offsets[d]; t < snap->doc_offsets[d + 1]; t++) {
            int32_t c = snap->codes[t];
            if (last[c] != (int32_t)d) {
                last[c] = (int32_t)d;
                docs[fill[c]++] = (int32_t)d;
            }
        }
    }
    free(last);
    free(fill);
    free(snap->ivf_offsets);
    free(snap->ivf_docs);
    snap->ivf_offsets = offsets;
    snap->ivf_docs = docs;
    return CP_OK;
}

/* ------------------------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------------------- */

static cp_status load_slot_count(cp_store *store, int64_t *n_slots, cp_error *err)
{
    int64_t next = 0;
    cp_status st = cp_store_meta_int(store, "next_doc_id", 0, INT32_MAX, &next, err);
    if (st != CP_OK) return st;
    sqlite3_stmt *q = NULL;
    sqlite3 *db = cp_store_sqlite(store);
    int rc = sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(doc_id) + 1, 0), MIN(doc_id) FROM documents",
                                -1, &q, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(q);
        return cp_store_sql_error(store, rc, "reading documents", err);
    }
    int64_t max1 = sqlite3_column_int64(q, 0), min = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    if (max1 > next || min < 0)
        return cp_error_set(err, CP_ECORRUPT,
                            "%s: document ids run outside [0, next_doc_id = %lld)",
                            cp_store_path(store), (long long)next);
    *n_slots = next;
    return CP_OK;
}

/* Fill deleted / external_ids and the live token counts (into doc_offsets[d + 1]). */
static cp_status load_documents(cp_store *store, cp_snapshot *snap, cp_error *err)
{
    int64_t n = snap->n_slots;
    snap->doc_offsets = calloc((size_t)n + 1, sizeof *snap->doc_offsets);
    snap->deleted = malloc((size_t)(n ? n : 1));
    snap->external_ids = calloc((size_t)(n ? n : 1), sizeof *snap->external_ids);
    if (!snap->doc_offsets || !snap->deleted || !snap->external_ids)
        return cp_error_set(err, CP_ENOMEM, "out of memory loading %lld documents", (long long)n);
    memset(snap->deleted, 1, (size_t)n);
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(store),
                                "SELECT doc_id, external_id, n_tokens FROM documents"
                                " WHERE deleted = 0",
                                -1, &q, NULL);
    cp_status st = CP_OK;
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0), nt = sqlite3_column_int64(q, 2);
        const char *ext = (const char *)sqlite3_column_text(q, 1);
        if (id < 0 || id >= n || nt < 0 || nt > INT32_MAX || !ext) {
            st = cp_error_set(err, CP_ECORRUPT, "%s: document row %lld is invalid",
                              cp_store_path(store), (long long)id);
            break;
        }
        snap->deleted[id] = 0;
        snap->doc_offsets[id + 1] = nt;
        snap->n_live++;
        if (!(snap->external_ids[id] = strdup(ext))) {
            st = cp_error_set(err, CP_ENOMEM, "out of memory loading documents");
            break;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (st == CP_OK && rc != SQLITE_DONE) st = cp_store_sql_error(store, rc, "reading documents", err);
    if (st != CP_OK) return st;
    for (int64_t d = 0; d < n; d++) snap->doc_offsets[d + 1] += snap->doc_offsets[d];
    snap->n_tokens = snap->doc_offsets[n];
    return CP_OK;
}

/* Copy the live documents of one decoded segment into the snapshot arrays. */
static cp_status place_segment(cp_store *store, cp_snapshot *snap, const cp_segment_data *seg,
                               uint8_t *filled, cp_error *err)
{
    size_t rb = (size_t)cp_residual_bytes(snap->codec.dim, snap->codec.nbits);
    int64_t t = 0;
    for (int64_t i = 0; i < seg->n_docs; t += seg->doclens[i], i++) {
        int64_t d = seg->doc_ids[i];
        if (d < 0 || d >= snap->n_slots)
            return cp_error_set(err, CP_ECORRUPT, "%s: segment %lld names unknown document %lld",
                                cp_store_path(store), (long long)seg->segment_id, (long long)d);
        if (snap->deleted[d]) continue; /* a tombstone: its tokens stay out of the snapshot */
        int64_t want = snap->doc_offsets[d + 1] - snap->doc_offsets[d];
        if (filled[d] || want != seg->doclens[i])
            return cp_error_set(err, CP_ECORRUPT,
                                "%s: segment %lld disagrees with the documents table about "
                                "document %lld",
                                cp_store_path(store), (long long)seg->segment_id, (long long)d);
        filled[d] = 1;
        const int32_t *codes = seg->codes + t;
        for (int64_t j = 0; j < want; j++)
            if (codes[j] < 0 || codes[j] >= snap->codec.n_centroids)
                return cp_error_set(err, CP_ECORRUPT, "%s: segment %lld has a centroid code "
                                    "out of range", cp_store_path(store),
                                    (long long)seg->segment_id);
        memcpy(snap->codes + snap->doc_offsets[d], codes, (size_t)want * sizeof *codes);
        memcpy(snap->residuals + (size_t)snap->doc_offsets[d] * rb, seg->residuals + (size_t)t * rb,
               (size_t)want * rb);
    }
    return CP_OK;
}

/* The documents table cannot claim more live tokens than the segments hold: checked before
 * allocating, so a damaged row cannot ask for terabytes. */
static cp_status check_token_total(cp_store *store, const cp_snapshot *snap, cp_error *err)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(store),
                                "SELECT COALESCE(SUM(n_tokens), 0) FROM segments", -1, &q, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(q);
    int64_t stored = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) return cp_store_sql_error(store, rc, "reading segments", err);
    if (snap->n_tokens > stored)
        return cp_error_set(err, CP_ECORRUPT, "%s: documents claim %lld tokens but the segments "
                            "hold %lld", cp_store_path(store), (long long)snap->n_tokens,
                            (long long)stored);
    return CP_OK;
}

static cp_status load_tokens(cp_store *store, cp_snapshot *snap, cp_error *err)
{
    size_t rb = (size_t)cp_residual_bytes(snap->codec.dim, snap->codec.nbits);
    size_t nt = (size_t)snap->n_tokens;
    snap->codes = malloc((nt ? nt : 1) * sizeof *snap->codes);
    snap->residuals = malloc(nt ? nt * rb : 1);
    uint8_t *filled = calloc((size_t)(snap->n_slots ? snap->n_slots : 1), 1);
    cp_segment_iter *it = NULL;
    cp_status st = CP_OK;
    if (!snap->codes || !snap->residuals || !filled)
        st = cp_error_set(err, CP_ENOMEM, "out of memory loading %zu tokens", nt);
    if (st == CP_OK) st = cp_store_segments_begin(store, &it, err);
    for (bool has = true; st == CP_OK;) {
        cp_segment_data seg;
        st = cp_store_segments_next(it, &seg, &has, err);
        if (st != CP_OK || !has) break;
        st = place_segment(store, snap, &seg, filled, err);
    }
    for (int64_t d = 0; st == CP_OK && d < snap->n_slots; d++)
        if (!snap->deleted[d] && !filled[d])
            st = cp_error_set(err, CP_ECORRUPT, "%s: document %lld has no token data in any "
                              "segment", cp_store_path(store), (long long)d);
    cp_store_segments_end(it);
    free(filled);
    return st;
}

cp_status cp_store_load_snapshot(cp_store *store, cp_snapshot **out, cp_error *err)
{
    *out = NULL;
    cp_snapshot *snap = calloc(1, sizeof *snap);
    if (!snap) return cp_error_set(err, CP_ENOMEM, "out of memory");
    atomic_init(&snap->refcount, 1);
    cp_status st = cp_store_load_codec(store, &snap->codec, err);
    if (st == CP_OK) st = load_slot_count(store, &snap->n_slots, err);
    if (st == CP_OK) st = load_documents(store, snap, err);
    if (st == CP_OK) st = check_token_total(store, snap, err);
    if (st == CP_OK) st = load_tokens(store, snap, err);
    if (st == CP_OK) st = cp_snapshot_build_ivf(snap, err);
    if (st != CP_OK) {
        snapshot_free(snap);
        return st;
    }
    *out = snap;
    return CP_OK;
}
