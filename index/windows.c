/*
 * Windowed documents in the index (colplaid/window.h; docs/index-format.md "Windows").
 *
 * Storage: an additive table, created by the first write that carries windows (so files
 * without windowed documents, the v1 fixture among them, are unchanged):
 *   doc_windows(doc_id INTEGER PRIMARY KEY, windows BLOB NOT NULL)
 * windows holds 4 little-endian int32 per window: tok_start, tok_end, char_start, char_end.
 * The row is written in the same transaction as its document (cp_store_append_segment), so
 * an upsert replaces a document's windows atomically with its tokens; compaction drops the
 * rows of the tombstones it removes. meta "windows" records the build's settings:
 * {"window": N, "stride": S, "doc_score": "maxsim"|"maxp"}.
 *
 * Scoring: a hit's passage is its best window (the highest MaxSim over the window's own
 * rows); with the "maxp" document score the hit's score becomes that window's score and the
 * hits are re-ranked by it.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "colplaid/index.h"
#include "index_handle.h"
#include "windows.h"

const char *cp_doc_score_name(cp_doc_score s)
{
    return s == CP_DOC_SCORE_MAXP ? "maxp" : "maxsim";
}

bool cp_doc_score_parse(const char *name, cp_doc_score *out)
{
    if (!strcmp(name, "maxsim"))
        *out = CP_DOC_SCORE_MAXSIM;
    else if (!strcmp(name, "maxp"))
        *out = CP_DOC_SCORE_MAXP;
    else
        return false;
    return true;
}

char *cp_windows_meta_json(const cp_window_options *w, cp_doc_score score)
{
    char buf[128];
    snprintf(buf, sizeof buf, "{\"window\":%d,\"stride\":%d,\"doc_score\":\"%s\"}", w->window,
             w->stride, cp_doc_score_name(score));
    return strdup(buf);
}

bool cp_index_windows(cp_index *index, cp_window_options *w, cp_doc_score *score)
{
    memset(w, 0, sizeof *w);
    if (score) *score = CP_DOC_SCORE_DEFAULT;
    char *meta = cp_index_meta_get(index, "windows");
    cJSON *j = meta ? cJSON_Parse(meta) : NULL;
    free(meta);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "window");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "stride");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "doc_score");
    bool ok = cJSON_IsNumber(n) && cJSON_IsNumber(s) && n->valueint >= 1 && s->valueint >= 1;
    if (ok) {
        w->window = n->valueint;
        w->stride = s->valueint;
        if (score && cJSON_IsString(d)) cp_doc_score_parse(d->valuestring, score);
    }
    cJSON_Delete(j);
    return ok;
}

/* The windows of live documents doc_ids[0, n) (n_out[i] = 0 when one has none). */
static cp_status read_windows(cp_index *index, const int64_t *doc_ids, size_t n, cp_window **out,
                              int32_t *n_out, cp_error *err)
{
    memset(out, 0, n * sizeof *out);
    memset(n_out, 0, n * sizeof *n_out);
    cp_store *db = NULL;
    cp_status st = cp_index_pool_get(index, &db, err);
    if (st != CP_OK) return st;
    sqlite3 *sq = cp_store_sqlite(db);
    sqlite3_stmt *q = NULL;
    int rc = SQLITE_OK;
    if (cp_store_has_windows(db))
        rc = sqlite3_prepare_v2(sq, "SELECT windows FROM doc_windows WHERE doc_id = ?", -1, &q,
                                NULL);
    for (size_t i = 0; q && rc == SQLITE_OK && st == CP_OK && i < n; i++) {
        if (doc_ids[i] < 0) continue;
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, doc_ids[i]);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            size_t bytes = (size_t)sqlite3_column_bytes(q, 0);
            const void *p = sqlite3_column_blob(q, 0);
            if (!bytes || bytes % sizeof(cp_window) || !p) {
                st = cp_error_set(err, CP_ECORRUPT,
                                  "%s: document %lld has a windows blob of %zu bytes (not a "
                                  "multiple of %zu)",
                                  cp_index_path(index), (long long)doc_ids[i], bytes,
                                  sizeof(cp_window));
            } else if (!(out[i] = malloc(bytes))) {
                st = cp_error_set(err, CP_ENOMEM, "out of memory");
            } else {
                memcpy(out[i], p, bytes);
                n_out[i] = (int32_t)(bytes / sizeof(cp_window));
            }
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    if (st == CP_OK && rc != SQLITE_OK) st = cp_store_sql_error(db, rc, "reading windows", err);
    sqlite3_finalize(q);
    cp_index_pool_put(index, db);
    if (st != CP_OK)
        for (size_t i = 0; i < n; i++)
            free(out[i]), out[i] = NULL;
    return st;
}

cp_status cp_index_document_windows(cp_index *index, int64_t doc_id, cp_window **windows,
                                    int32_t *n_windows, cp_error *err)
{
    return read_windows(index, &doc_id, 1, windows, n_windows, err);
}

typedef struct ranked {
    cp_hit hit;
    cp_passage p;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->hit.score != y->hit.score) return x->hit.score > y->hit.score ? -1 : 1;
    return (x->hit.doc_id > y->hit.doc_id) - (x->hit.doc_id < y->hit.doc_id);
}

cp_status cp_index_hit_passages(cp_index *index, const float *query, int n_q, int dim,
                                cp_doc_score score, cp_hit *hits, int n, cp_passage *out,
                                cp_error *err)
{
    if (n <= 0) return CP_OK;
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    cp_window **w = calloc((size_t)n, sizeof *w);
    int32_t *nw = calloc((size_t)n, sizeof *nw);
    ranked *r = malloc((size_t)n * sizeof *r);
    cp_status st = ids && w && nw && r ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
    for (int i = 0; st == CP_OK && i < n; i++)
        ids[i] = hits[i].doc_id;
    if (st == CP_OK) st = read_windows(index, ids, (size_t)n, w, nw, err);
    for (int i = 0; st == CP_OK && i < n; i++) {
        r[i].hit = hits[i];
        r[i].p = (cp_passage){-1, -1, -1, NAN};
        if (!nw[i]) continue; /* not windowed: no passage, the score stands */
        float *emb = NULL;
        int32_t nt = 0;
        cp_error e2 = {0};
        if (cp_index_document_embeddings(index, ids[i], &emb, &nt, &e2) != CP_OK) {
            if (e2.code != CP_ENOTFOUND) st = cp_error_set(err, e2.code, "%s", e2.message);
            continue; /* deleted since the search: leave the hit as it is */
        }
        if (cp_windows_validate(w[i], nw[i], nt, "stored windows", &e2) != CP_OK) {
            st = cp_error_set(err, CP_ECORRUPT, "%s: document %lld: %s", cp_index_path(index),
                              (long long)ids[i], e2.message);
            free(emb);
            break;
        }
        int best = -1;
        float best_s = -INFINITY;
        for (int32_t k = 0; k < nw[i]; k++) {
            int32_t a = w[i][k].tok_start, len = w[i][k].tok_end - a;
            if (len <= 0) continue; /* an empty window matches nothing */
            float s = cp_maxsim(query, n_q, emb + (size_t)a * (size_t)dim, len, dim);
            if (s > best_s) best_s = s, best = (int)k;
        }
        free(emb);
        if (best < 0) continue;
        r[i].p = (cp_passage){w[i][best].char_start, w[i][best].char_end, best, best_s};
        if (score == CP_DOC_SCORE_MAXP) r[i].hit.score = best_s;
    }
    if (st == CP_OK) {
        if (score == CP_DOC_SCORE_MAXP) qsort(r, (size_t)n, sizeof *r, cmp_ranked);
        for (int i = 0; i < n; i++) {
            hits[i] = r[i].hit;
            if (out) out[i] = r[i].p;
        }
    }
    for (int i = 0; w && i < n; i++)
        free(w[i]);
    free(w);
    free(nw);
    free(ids);
    free(r);
    return st;
}
