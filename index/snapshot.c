/*
 * The in-memory snapshot: reference counting, the IVF (centroid -> sorted unique live doc
 * ids, PLAID.md 1.10) and loading a snapshot from the index file.
 *
 * Why it exists: searches read one immutable snapshot; this file is where a snapshot is put
 * together and where it is freed when the last reader lets go.
 *
 * Invariants kept here
 * - doc_offsets[0] = 0 and doc_offsets is non-decreasing; in a loaded snapshot a deleted or
 *   unused slot has no tokens; codes[t] is in [0, n_centroids) for every token.
 * - Live snapshots (cp_snapshot_derive, for index/live.c) share the arrays of the snapshot
 *   they come from through refcounted owners (cp_shared) and append past its end; a slot
 *   deleted by a live write keeps its tokens (and may stay in the IVF) until compaction or
 *   reload, so readers must test deleted[]. Nothing below a published snapshot's end is
 *   ever written again.
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

#include "codec.h"
#include "snapshot.h"
#include "storage.h"

int64_t cp_snapshot_slot_of(const cp_snapshot *snap, int64_t file_id)
{
    if (!snap->file_ids) return file_id >= 0 && file_id < snap->n_slots ? file_id : -1;
    int64_t lo = 0, hi = snap->n_slots; /* file_ids[lo..hi) may hold it */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (snap->file_ids[mid] < file_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < snap->n_slots && snap->file_ids[lo] == file_id ? lo : -1;
}

void cp_snapshot_retain(cp_snapshot *snap)
{
    if (snap) atomic_fetch_add_explicit(&snap->refcount, 1, memory_order_relaxed);
}

void cp_shared_release(cp_shared *sh)
{
    if (!sh || atomic_fetch_sub_explicit(&sh->refcount, 1, memory_order_acq_rel) != 1) return;
    free(sh->a);
    free(sh->b);
    for (int64_t i = 0; sh->strings && i < sh->n_strings; i++) free(sh->strings[i]);
    free(sh->strings);
    free(sh);
}

static cp_shared *shared_retain(cp_shared *sh)
{
    if (sh) atomic_fetch_add_explicit(&sh->refcount, 1, memory_order_relaxed);
    return sh;
}

static cp_shared *shared_new(void *a, void *b, char **strings, int64_t n_strings, int64_t cap)
{
    cp_shared *sh = calloc(1, sizeof *sh);
    if (!sh) return NULL;
    atomic_init(&sh->refcount, 1);
    sh->a = a, sh->b = b, sh->strings = strings, sh->n_strings = n_strings, sh->cap = cap;
    return sh;
}

/* A pair of arrays is freed through its owner when it has one, else directly. */
static void release_or_free(cp_shared *owner, void *a, void *b)
{
    if (owner) {
        cp_shared_release(owner);
    } else {
        free(a);
        free(b);
    }
}

static void snapshot_free(cp_snapshot *snap)
{
    release_or_free(snap->codec_owner, snap->codec.centroids, NULL);
    /* An owner frees its strings itself; an unshared id table's strings are freed here. */
    if (!snap->slot_owner && snap->external_ids)
        for (int64_t i = 0; i < snap->n_slots; i++)
            free(snap->external_ids[i]);
    if (!snap->slot_owner) free(snap->file_ids);
    release_or_free(snap->slot_owner, snap->external_ids, snap->doc_offsets);
    release_or_free(snap->tok_owner, snap->codes, snap->residuals);
    release_or_free(snap->ivf_owner, snap->ivf_offsets, snap->ivf_docs);
    release_or_free(snap->delta_owner, snap->ivf_delta_offsets, snap->ivf_delta_docs);
    free(snap->deleted);
    free(snap);
}

void cp_snapshot_release(cp_snapshot *snap)
{
    if (!snap) return;
    /* acq_rel: the freeing thread must see every other holder's last reads finished. */
    if (atomic_fetch_sub_explicit(&snap->refcount, 1, memory_order_acq_rel) == 1)
        snapshot_free(snap);
}

/* CSR lists of the live docs among slots [from, to): two passes (count, fill) in doc
 * order, remembering the last doc per centroid, so lists come out sorted and unique. */
static cp_status build_ivf_range(const cp_snapshot *snap, int64_t from, int64_t to,
                                 int64_t **offsets_out, int32_t **docs_out, cp_error *err)
{
    int64_t k = snap->codec.n_centroids;
    int64_t *offsets = calloc((size_t)k + 1, sizeof *offsets);
    int32_t *last = malloc((size_t)k * sizeof *last);
    int64_t *fill = malloc((size_t)k * sizeof *fill);
    int32_t *docs = NULL;
    if (!offsets || !last || !fill) goto oom;
    memset(last, 0xff, (size_t)k * sizeof *last);
    for (int64_t d = from; d < to; d++) {
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
    if (!(docs = malloc((size_t)(offsets[k] ? offsets[k] : 1) * sizeof *docs))) goto oom;
    memcpy(fill, offsets, (size_t)k * sizeof *fill);
    memset(last, 0xff, (size_t)k * sizeof *last);
    for (int64_t d = from; d < to; d++) {
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
    *offsets_out = offsets;
    *docs_out = docs;
    return CP_OK;
oom:
    free(offsets);
    free(last);
    free(fill);
    return cp_error_set(err, CP_ENOMEM, "out of memory building the IVF (%lld centroids)",
                        (long long)k);
}

static void drop_delta(cp_snapshot *snap)
{
    release_or_free(snap->delta_owner, snap->ivf_delta_offsets, snap->ivf_delta_docs);
    snap->delta_owner = NULL;
    snap->ivf_delta_offsets = NULL;
    snap->ivf_delta_docs = NULL;
}

cp_status cp_snapshot_build_ivf(cp_snapshot *snap, cp_error *err)
{
    int64_t *offsets = NULL;
    int32_t *docs = NULL;
    cp_status st = build_ivf_range(snap, 0, snap->n_slots, &offsets, &docs, err);
    if (st != CP_OK) return st;
    release_or_free(snap->ivf_owner, snap->ivf_offsets, snap->ivf_docs);
    snap->ivf_owner = NULL;
    drop_delta(snap);
    snap->ivf_offsets = offsets;
    snap->ivf_docs = docs;
    snap->ivf_base_slots = snap->n_slots;
    snap->ivf_stale = 0;
    return CP_OK;
}

/* ------------------------------------------------------------------------------------
 * Live snapshots: sharing arrays between successive snapshots
 * --------------------------------------------------------------------------------- */

/* Loaded arrays get headroom so the first live writes append in place instead of copying
 * everything (untouched heap pages cost no memory on Linux). */
static int64_t token_cap(int64_t n) { return n + n / 4 + 4096; }
static int64_t slot_cap(int64_t n) { return n + n / 4 + 256; }

/* Wrap a freshly loaded snapshot's arrays in owners so later writes can share them. */
static cp_status make_shared(cp_snapshot *snap, cp_error *err)
{
    if (!snap->codec_owner &&
        !(snap->codec_owner = shared_new(snap->codec.centroids, NULL, NULL, 0, 0)))
        goto oom;
    if (!snap->tok_owner &&
        !(snap->tok_owner = shared_new(snap->codes, snap->residuals, NULL, 0, token_cap(snap->n_tokens))))
        goto oom;
    if (!snap->slot_owner &&
        !(snap->slot_owner = shared_new(snap->doc_offsets, snap->file_ids, snap->external_ids,
                                        snap->n_slots, slot_cap(snap->n_slots))))
        goto oom;
    if (!snap->ivf_owner &&
        !(snap->ivf_owner = shared_new(snap->ivf_offsets, snap->ivf_docs, NULL, 0, 0)))
        goto oom;
    if (snap->ivf_delta_offsets && !snap->delta_owner &&
        !(snap->delta_owner = shared_new(snap->ivf_delta_offsets, snap->ivf_delta_docs, NULL, 0, 0)))
        goto oom;
    return CP_OK;
oom:
    return cp_error_set(err, CP_ENOMEM, "out of memory");
}

/* Token arrays with room for need tokens: cur's own when it has the room (the space beyond
 * cur's end is free: only the writer, serialised, ever writes there), else a copy into
 * arrays 1.5x larger. */
static cp_status derive_tokens(const cp_snapshot *cur, cp_snapshot *next, int64_t need,
                               cp_error *err)
{
    int64_t used = cur->doc_offsets[cur->n_slots];
    size_t rb = (size_t)cp_codec_token_bytes(&cur->codec);
    if (cur->tok_owner && cur->tok_owner->cap >= need) {
        next->tok_owner = shared_retain(cur->tok_owner);
    } else {
        int64_t cap = need > used + used / 2 ? need : used + used / 2;
        cap += 1024;
        int32_t *codes = malloc((size_t)cap * sizeof *codes);
        uint8_t *res = malloc((size_t)cap * rb);
        cp_shared *sh = codes && res ? shared_new(codes, res, NULL, 0, cap) : NULL;
        if (!sh) {
            free(codes);
            free(res);
            return cp_error_set(err, CP_ENOMEM, "out of memory for %lld tokens", (long long)cap);
        }
        if (used) {
            memcpy(codes, cur->codes, (size_t)used * sizeof *codes);
            memcpy(res, cur->residuals, (size_t)used * rb);
        }
        next->tok_owner = sh;
    }
    next->codes = next->tok_owner->a;
    next->residuals = next->tok_owner->b;
    return CP_OK;
}

/* Slot arrays (doc_offsets, external ids) with room for need slots, as derive_tokens. The
 * strings of slots past cur's end (left by a write that failed) are freed first. */
static cp_status derive_slots(const cp_snapshot *cur, cp_snapshot *next, int64_t need,
                              cp_error *err)
{
    int64_t n = cur->n_slots;
    cp_shared *sh = cur->slot_owner;
    if (sh && sh->cap >= need) {
        for (int64_t i = n; i < sh->n_strings; i++) {
            free(sh->strings[i]);
            sh->strings[i] = NULL;
        }
        if (sh->n_strings > n) sh->n_strings = n;
        next->slot_owner = shared_retain(sh);
    } else {
        int64_t cap = (need > n + n / 2 ? need : n + n / 2) + 256;
        int64_t *offs = malloc((size_t)(cap + 1) * sizeof *offs);
        char **ids = calloc((size_t)cap, sizeof *ids);
        int32_t *fids = cur->file_ids ? malloc((size_t)cap * sizeof *fids) : NULL;
        sh = offs && ids && (fids || !cur->file_ids) ? shared_new(offs, fids, ids, 0, cap) : NULL;
        if (!sh) {
            free(offs);
            free(ids);
            free(fids);
            return cp_error_set(err, CP_ENOMEM, "out of memory for %lld documents", (long long)cap);
        }
        memcpy(offs, cur->doc_offsets, (size_t)(n + 1) * sizeof *offs);
        if (fids && n) memcpy(fids, cur->file_ids, (size_t)n * sizeof *fids);
        for (int64_t i = 0; i < n; i++, sh->n_strings = i)
            if (cur->external_ids[i] && !(ids[i] = strdup(cur->external_ids[i]))) {
                cp_shared_release(sh);
                return cp_error_set(err, CP_ENOMEM, "out of memory copying document ids");
            }
        sh->n_strings = n;
        next->slot_owner = sh;
    }
    next->doc_offsets = next->slot_owner->a;
    next->file_ids = next->slot_owner->b;
    next->external_ids = next->slot_owner->strings;
    return CP_OK;
}

cp_status cp_snapshot_derive(const cp_snapshot *cur, int64_t add_slots, int64_t add_tokens,
                             cp_snapshot **out, cp_error *err)
{
    *out = NULL;
    cp_snapshot *next = calloc(1, sizeof *next);
    if (!next) return cp_error_set(err, CP_ENOMEM, "out of memory");
    atomic_init(&next->refcount, 1);
    int64_t used = cur->doc_offsets[cur->n_slots];
    cp_status st = CP_OK;
    next->codec = cur->codec;
    next->calibration = cur->calibration;
    next->codec_owner = shared_retain(cur->codec_owner);
    if (!next->codec_owner) { /* a hand-built snapshot: copy its centroids once */
        size_t bytes = (size_t)cur->codec.n_centroids * (size_t)cur->codec.dim * sizeof(float);
        next->codec.centroids = malloc(bytes);
        if (!next->codec.centroids) st = cp_error_set(err, CP_ENOMEM, "out of memory");
        else memcpy(next->codec.centroids, cur->codec.centroids, bytes);
    }
    if (st == CP_OK) st = derive_tokens(cur, next, used + add_tokens, err);
    if (st == CP_OK) st = derive_slots(cur, next, cur->n_slots + add_slots, err);
    int64_t n = cur->n_slots + add_slots;
    if (st == CP_OK && !(next->deleted = malloc((size_t)(n ? n : 1))))
        st = cp_error_set(err, CP_ENOMEM, "out of memory");
    if (st != CP_OK) {
        snapshot_free(next);
        return st;
    }
    memcpy(next->deleted, cur->deleted, (size_t)cur->n_slots);
    memset(next->deleted + cur->n_slots, 0, (size_t)add_slots);
    /* New slots take the next internal ids (the file's next_doc_id, as its append will). */
    int64_t next_file = cur->file_ids ? cur->next_file_id : cur->n_slots;
    for (int64_t d = cur->n_slots; d < n; d++) {
        next->doc_offsets[d + 1] = used;
        if (next->file_ids) next->file_ids[d] = (int32_t)(next_file + (d - cur->n_slots));
    }
    next->next_file_id = next_file + add_slots;
    next->n_slots = n;
    next->n_live = cur->n_live;
    next->n_tokens = cur->n_tokens;
    /* IVF: shared as is; refresh_ivf decides what to rebuild. */
    next->ivf_owner = shared_retain(cur->ivf_owner);
    next->ivf_offsets = cur->ivf_offsets;
    next->ivf_docs = cur->ivf_docs;
    next->ivf_base_slots = cur->ivf_base_slots;
    next->ivf_stale = cur->ivf_stale;
    next->delta_owner = shared_retain(cur->delta_owner);
    next->ivf_delta_offsets = cur->ivf_delta_offsets;
    next->ivf_delta_docs = cur->ivf_delta_docs;
    if (!next->ivf_owner) { /* not shareable: rebuilt by refresh_ivf */
        next->ivf_offsets = NULL, next->ivf_docs = NULL, next->ivf_base_slots = 0;
    }
    if (!next->delta_owner) next->ivf_delta_offsets = NULL, next->ivf_delta_docs = NULL;
    *out = next;
    return CP_OK;
}

/* Merge the delta into a fresh whole IVF once it holds more than 1/8 of the tokens (or
 * 64k), or once deleted docs make up more than a quarter of the live ones: each full
 * rebuild is O(all tokens) but then happens only every O(all tokens) of writes. */
cp_status cp_snapshot_refresh_ivf(cp_snapshot *snap, bool added, cp_error *err)
{
    int64_t base_tokens = snap->doc_offsets[snap->ivf_base_slots];
    int64_t delta_tokens = snap->doc_offsets[snap->n_slots] - base_tokens;
    int64_t limit = base_tokens / 8 > 65536 ? base_tokens / 8 : 65536;
    bool full = !snap->ivf_owner || delta_tokens > limit ||
                snap->ivf_stale > 1024 + snap->n_live / 4;
    cp_status st;
    if (full) {
        st = cp_snapshot_build_ivf(snap, err);
        if (st == CP_OK && !(snap->ivf_owner = shared_new(snap->ivf_offsets, snap->ivf_docs,
                                                          NULL, 0, 0)))
            st = cp_error_set(err, CP_ENOMEM, "out of memory");
        return st;
    }
    if (!added) return CP_OK;
    int64_t *offsets = NULL;
    int32_t *docs = NULL;
    st = build_ivf_range(snap, snap->ivf_base_slots, snap->n_slots, &offsets, &docs, err);
    if (st != CP_OK) return st;
    drop_delta(snap);
    snap->ivf_delta_offsets = offsets;
    snap->ivf_delta_docs = docs;
    if (!(snap->delta_owner = shared_new(offsets, docs, NULL, 0, 0)))
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    return CP_OK;
}

/* ------------------------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------------------- */

/* The live documents get dense slots (their count) and meta next_doc_id bounds their ids. */
static cp_status load_slot_count(cp_store *store, cp_snapshot *snap, cp_error *err)
{
    int64_t next = 0;
    cp_status st = cp_store_meta_int(store, "next_doc_id", 0, INT32_MAX, &next, err);
    if (st != CP_OK) return st;
    sqlite3_stmt *q = NULL;
    sqlite3 *db = cp_store_sqlite(store);
    int rc =
        sqlite3_prepare_v2(db,
                           "SELECT COALESCE(MAX(doc_id) + 1, 0), MIN(doc_id),"
                           " (SELECT COUNT(*) FROM documents WHERE deleted = 0) FROM documents",
                           -1, &q, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(q);
        return cp_store_sql_error(store, rc, "reading documents", err);
    }
    int64_t max1 = sqlite3_column_int64(q, 0), min = sqlite3_column_int64(q, 1);
    int64_t live = sqlite3_column_int64(q, 2);
    sqlite3_finalize(q);
    if (max1 > next || min < 0)
        return cp_error_set(err, CP_ECORRUPT,
                            "%s: document ids run outside [0, next_doc_id = %lld)",
                            cp_store_path(store), (long long)next);
    snap->n_slots = live;
    snap->next_file_id = next;
    return CP_OK;
}

/* Fill file_ids / external_ids and the live token counts (into doc_offsets[slot + 1]): the
 * live rows in internal-id order, one slot each. */
static cp_status load_documents(cp_store *store, cp_snapshot *snap, cp_error *err)
{
    int64_t n = snap->n_slots;
    snap->doc_offsets = calloc((size_t)slot_cap(n) + 1, sizeof *snap->doc_offsets);
    snap->deleted = calloc((size_t)(n ? n : 1), 1);
    snap->external_ids = calloc((size_t)slot_cap(n), sizeof *snap->external_ids);
    snap->file_ids = malloc((size_t)slot_cap(n) * sizeof *snap->file_ids);
    if (!snap->doc_offsets || !snap->deleted || !snap->external_ids || !snap->file_ids)
        return cp_error_set(err, CP_ENOMEM, "out of memory loading %lld documents", (long long)n);
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(store),
                                "SELECT doc_id, external_id, n_tokens FROM documents"
                                " WHERE deleted = 0 ORDER BY doc_id",
                                -1, &q, NULL);
    cp_status st = CP_OK;
    int64_t slot = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0), nt = sqlite3_column_int64(q, 2);
        const char *ext = (const char *)sqlite3_column_text(q, 1);
        if (id < 0 || id >= snap->next_file_id || nt < 0 || nt > INT32_MAX || !ext || slot >= n ||
            (slot > 0 && id <= snap->file_ids[slot - 1])) {
            st = cp_error_set(err, CP_ECORRUPT, "%s: document row %lld is invalid",
                              cp_store_path(store), (long long)id);
            break;
        }
        snap->file_ids[slot] = (int32_t)id;
        snap->doc_offsets[slot + 1] = nt;
        snap->n_live++;
        if (!(snap->external_ids[slot++] = strdup(ext))) {
            st = cp_error_set(err, CP_ENOMEM, "out of memory loading documents");
            break;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    if (st == CP_OK && rc != SQLITE_DONE) st = cp_store_sql_error(store, rc, "reading documents", err);
    if (st == CP_OK && slot != n)
        st = cp_error_set(err, CP_ECORRUPT, "%s: %lld live document rows, %lld counted",
                          cp_store_path(store), (long long)slot, (long long)n);
    if (st != CP_OK) return st;
    for (int64_t d = 0; d < n; d++) snap->doc_offsets[d + 1] += snap->doc_offsets[d];
    snap->n_tokens = snap->doc_offsets[n];
    return CP_OK;
}

/* Copy the live documents of one decoded segment into the snapshot arrays. */
static cp_status place_segment(cp_store *store, cp_snapshot *snap, const cp_segment_data *seg,
                               uint8_t *filled, cp_error *err)
{
    size_t rb = (size_t)cp_codec_token_bytes(&snap->codec);
    int64_t t = 0;
    for (int64_t i = 0; i < seg->n_docs; t += seg->doclens[i], i++) {
        int64_t id = seg->doc_ids[i];
        if (id < 0 || id >= snap->next_file_id)
            return cp_error_set(err, CP_ECORRUPT, "%s: segment %lld names unknown document %lld",
                                cp_store_path(store), (long long)seg->segment_id, (long long)id);
        int64_t d = cp_snapshot_slot_of(snap, id);
        if (d < 0) continue; /* a tombstone: its tokens stay out of the snapshot */
        int64_t want = snap->doc_offsets[d + 1] - snap->doc_offsets[d];
        if (filled[d] || want != seg->doclens[i])
            return cp_error_set(err, CP_ECORRUPT,
                                "%s: segment %lld disagrees with the documents table about "
                                "document %lld",
                                cp_store_path(store), (long long)seg->segment_id, (long long)id);
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
    size_t rb = (size_t)cp_codec_token_bytes(&snap->codec);
    size_t nt = (size_t)snap->n_tokens;
    size_t cap = (size_t)token_cap((int64_t)nt);
    snap->codes = malloc(cap * sizeof *snap->codes);
    snap->residuals = malloc(cap * rb);
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
        if (!filled[d])
            st = cp_error_set(err, CP_ECORRUPT,
                              "%s: document %lld has no token data in any "
                              "segment",
                              cp_store_path(store), (long long)snap->file_ids[d]);
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
    /* One read transaction (unless the caller is in one): the counts and rows agree even
     * while another process writes. */
    sqlite3 *db = cp_store_sqlite(store);
    bool own_txn =
        sqlite3_get_autocommit(db) && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    cp_status st = cp_store_load_codec(store, &snap->codec, err);
    if (st == CP_OK) st = load_slot_count(store, snap, err);
    if (st == CP_OK) st = load_documents(store, snap, err);
    if (st == CP_OK) st = check_token_total(store, snap, err);
    if (st == CP_OK) st = load_tokens(store, snap, err);
    if (own_txn) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (st == CP_OK) st = cp_snapshot_build_ivf(snap, err);
    if (st == CP_OK) st = make_shared(snap, err);
    if (st == CP_OK) {
        char *calibration = cp_store_get_meta(store, "search_calibration");
        if (calibration && !cp_calibration_parse(calibration, &snap->calibration))
            memset(&snap->calibration, 0, sizeof snap->calibration);
        free(calibration);
    }
    if (st != CP_OK) {
        snapshot_free(snap);
        return st;
    }
    *out = snap;
    return CP_OK;
}
