/*
 * The lexical side and hybrid search (docs/hybrid.md).
 *
 * Why it exists: late interaction with a weak model (the static word-vector model) misses
 * what exact term matching finds, and the two kinds of evidence add up. The lexical side is
 * an SQLite FTS5 table "lexical" in the index file itself (storage.c creates it and keeps
 * it in the same transactions as every append and tombstone), ranked by FTS5's bm25().
 * Hybrid search fuses the two ranked lists.
 *
 * Invariants
 * - Lexical hits are internal ids of the snapshot the search reads: rows newer than it, or
 *   deleted in it, are skipped, so both sides of a hybrid search see one set of documents.
 * - A text query reaches FTS5 only as a disjunction of double-quoted terms made here from
 *   runs of letters and digits; no query syntax of the user's is ever interpreted.
 * - Hybrid scores every candidate on both sides: the lexical candidates get their exact
 *   late score (scored in the late search's stage 4 beside its own candidates), the late
 *   candidates their BM25 score (0 when no term matches), so normalisation sees complete
 *   score vectors.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index_handle.h"
#include "search.h"
#include "snapshot.h"
#include "storage.h"

#define MAX_TERMS 128

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
#define MAX_TERM_BYTES 256

/* ---------------------------------------------------------------------------------------
 * Query terms
 * ------------------------------------------------------------------------------------ */

/* English function words (Lucene's classic list) that a query drops unless it has nothing
 * else: on SciFact they cost half of the lexical search time (they match nearly every
 * document) for no measurable gain (nDCG@10 0.6874 with them, 0.6870 without). */
static const char *const stopwords[] = {
    "a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
    "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
    "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with"};

static bool is_stopword(const char *w)
{
    for (size_t i = 0; i < sizeof stopwords / sizeof stopwords[0]; i++)
        if (!strcmp(w, stopwords[i])) return true;
    return false;
}

static bool word_byte(unsigned char c)
{
    return c >= 0x80 || isalnum(c);
}

/* The distinct terms of text (runs of ASCII letters and digits or non-ASCII bytes), at most
 * MAX_TERMS, in order of appearance, lowercased (ASCII), stopwords dropped unless the text
 * has nothing else. *terms is one malloc'd block. */
static cp_status query_terms(const char *text, char ***terms, size_t *n, cp_error *err)
{
    *terms = NULL;
    *n = 0;
    size_t len = strlen(text);
    char **t = malloc(MAX_TERMS * sizeof *t + len + MAX_TERMS);
    if (!t) return cp_error_set(err, CP_ENOMEM, "out of memory for the query terms");
    char *buf = (char *)(t + MAX_TERMS);
    size_t m = 0;
    for (const char *p = text; *p && m < MAX_TERMS;) {
        if (!word_byte((unsigned char)*p)) {
            p++;
            continue;
        }
        const char *s = p;
        while (*p && word_byte((unsigned char)*p))
            p++;
        size_t l = (size_t)(p - s);
        if (l > MAX_TERM_BYTES) continue;
        for (size_t i = 0; i < l; i++)
            buf[i] = (char)tolower((unsigned char)s[i]);
        buf[l] = '\0';
        bool dup = false;
        for (size_t i = 0; i < m && !dup; i++)
            dup = !strcmp(t[i], buf);
        if (dup) continue;
        t[m++] = buf;
        buf += l + 1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < m; i++)
        kept += !is_stopword(t[i]);
    if (kept > 0 && kept < m) {
        size_t j = 0;
        for (size_t i = 0; i < m; i++)
            if (!is_stopword(t[i])) t[j++] = t[i];
        m = j;
    }
    *terms = t;
    *n = m;
    return CP_OK;
}

/* "t1" OR "t2" ... (terms hold no double quote), malloc'd; "" when there are none. */
static char *match_expression(char *const *terms, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(terms[i]) + 6;
    char *e = malloc(len), *p = e;
    if (!e) return NULL;
    *p = '\0';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s\"%s\"", i ? " OR " : "", terms[i]);
    return e;
}

/* ---------------------------------------------------------------------------------------
 * Presence and creation
 * ------------------------------------------------------------------------------------ */

static cp_status lexical_conn(cp_index *index, cp_store **db, cp_error *err)
{
    cp_status st = cp_index_pool_get(index, db, err);
    if (st != CP_OK) return st;
    if (cp_store_has_lexical(*db)) return CP_OK;
    /* A pooled connection opened before `index lexical` added the table does not know;
     * a fresh one does. */
    cp_store_close(*db);
    if ((st = cp_store_open(cp_index_path(index), CP_OPEN_READONLY, db, err)) != CP_OK) return st;
    if (cp_store_has_lexical(*db)) return CP_OK;
    cp_index_pool_put(index, *db);
    *db = NULL;
    return cp_error_set(err, CP_EUNSUPPORTED,
                        "%s has no lexical index (it was built from embeddings, or before "
                        "lexical search existed): search it in late mode, or add one with "
                        "`colplaid index lexical --index %s`",
                        cp_index_path(index), cp_index_path(index));
}

bool cp_index_has_lexical(cp_index *index)
{
    cp_store *db = NULL;
    if (lexical_conn(index, &db, NULL) != CP_OK) return false;
    cp_index_pool_put(index, db);
    return true;
}

cp_status cp_index_lexical_add(cp_index *index, bool *added, cp_error *err)
{
    if (added) *added = false;
    cp_store *w = cp_index_writer_store(index);
    if (!w) return cp_error_set(err, CP_EREADONLY, "%s is open read-only", cp_index_path(index));
    cp_index_write_lock(index);
    cp_status st = CP_OK;
    if (!cp_store_has_lexical(w)) {
        st = cp_store_begin(w, err);
        if (st == CP_OK) st = cp_store_lexical_create(w, err);
        if (st == CP_OK)
            st = cp_store_commit(w, err);
        else
            cp_store_rollback(w);
        if (st == CP_OK && added) *added = true;
    }
    cp_index_write_unlock(index);
    return st;
}

cp_status cp_index_set_hybrid_alpha(cp_index *index, float alpha, cp_error *err)
{
    if (!(alpha >= 0 && alpha <= 1))
        return cp_error_set(err, CP_EINVAL, "alpha must be in [0, 1] (got %g)", (double)alpha);
    char buf[64];
    snprintf(buf, sizeof buf, "{\"alpha\":%.6g}", (double)alpha);
    return cp_index_write_meta(index, "hybrid", buf, err);
}

/* ---------------------------------------------------------------------------------------
 * Lexical search
 * ------------------------------------------------------------------------------------ */

static bool in_sorted(const int64_t *a, size_t n, int64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == x;
}

static bool subset_sorted(const cp_search_params *p)
{
    for (size_t i = 1; i < p->n_subset; i++)
        if (p->subset[i - 1] >= p->subset[i]) return false;
    return true;
}

/* The best `want` rows of expr, BM25 (higher is better), restricted to snap's live
 * documents and to the subset when one is given. *more: rows were left over. */
static cp_status lexical_rows(cp_store *db, const cp_snapshot *snap, const char *expr,
                              const int64_t *subset, size_t n_subset, bool has_subset, size_t want,
                              cp_hit *hits, size_t *n_hits, bool *more, cp_error *err)
{
    *n_hits = 0;
    *more = false;
    if (!expr[0] || want == 0 || (has_subset && n_subset == 0)) return CP_OK;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(db),
                                "SELECT rowid, bm25(lexical) FROM lexical WHERE lexical MATCH ?"
                                " ORDER BY rank",
                                -1, &q, NULL);
    if (rc != SQLITE_OK) return cp_store_sql_error(db, rc, "searching the lexical index", err);
    sqlite3_bind_text(q, 1, expr, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t d = sqlite3_column_int64(q, 0);
        int64_t slot = cp_snapshot_slot_of(snap, d); /* -1: newer than the snapshot */
        if (slot < 0 || snap->deleted[slot]) continue;
        if (has_subset && !in_sorted(subset, n_subset, d)) continue;
        if (*n_hits == want) {
            *more = true;
            break;
        }
        hits[*n_hits].doc_id = d;
        hits[*n_hits].score = (float)-sqlite3_column_double(q, 1);
        (*n_hits)++;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cp_store_sql_error(db, rc, "searching the lexical index", err);
    return CP_OK;
}

static cp_status check_subset(const cp_search_params *p, cp_error *err)
{
    if (p->subset == NULL && p->n_subset != 0)
        return cp_error_set(err, CP_EINVAL, "subset is NULL but n_subset is %zu", p->n_subset);
    if (p->subset && !subset_sorted(p))
        return cp_error_set(err, CP_EINVAL, "the subset must be sorted ascending and unique");
    return CP_OK;
}

/* Lexical hits of text (up to want), with the connection and snapshot already held. */
static cp_status lexical_search_in(cp_store *db, const cp_snapshot *snap, const char *text,
                                   const cp_search_params *p, size_t want, cp_hit *hits,
                                   size_t *n_hits, bool *more, cp_error *err)
{
    char **terms = NULL;
    size_t n_terms = 0;
    cp_status st = query_terms(text, &terms, &n_terms, err);
    if (st != CP_OK) return st;
    char *expr = match_expression(terms, n_terms);
    free(terms);
    if (!expr) return cp_error_set(err, CP_ENOMEM, "out of memory for the query");
    st = lexical_rows(db, snap, expr, p->subset, p->n_subset, p->subset != NULL, want, hits, n_hits,
                      more, err);
    free(expr);
    return st;
}

cp_status cp_index_lexical_search(cp_index *index, const char *text, const cp_search_params *params,
                                  cp_hit *hits, int *n_hits, cp_error *err)
{
    *n_hits = 0;
    if (!text || !params || !hits)
        return cp_error_set(err, CP_EINVAL, "lexical search: a required argument is NULL");
    if (params->k < 1)
        return cp_error_set(err, CP_EINVAL, "k must be at least 1 (got %d)", params->k);
    cp_status st = check_subset(params, err);
    if (st != CP_OK) return st;
    cp_store *db = NULL;
    if ((st = lexical_conn(index, &db, err)) != CP_OK) return st;
    cp_snapshot *snap = cp_index_acquire_snapshot(index);
    size_t n = 0;
    bool more;
    st = lexical_search_in(db, snap, text, params, (size_t)params->k, hits, &n, &more, err);
    cp_snapshot_release(snap);
    cp_index_pool_put(index, db);
    *n_hits = (int)n;
    return st;
}

/* ---------------------------------------------------------------------------------------
 * Fusion
 * ------------------------------------------------------------------------------------ */

void cp_fusion_init(cp_fusion *f)
{
    memset(f, 0, sizeof *f);
    f->method = CP_FUSION_DEFAULT;
    f->norm = CP_NORM_ZSCORE;
    f->alpha = NAN;
    f->rrf_k = 60;
    f->depth = 100;
}

/* Lexical weights when neither the request nor the index names one (meta "hybrid"): the
 * static model's late side is much weaker than BM25 (SciFact 0.54 against 0.69). On
 * SciFact's 809 train queries (z-score fusion) alpha 0.6 / 0.7 / 0.8 / 0.9 gave nDCG@10
 * 0.7017 / 0.7030 / 0.7036 / 0.7040 against BM25's 0.7015 (docs/hybrid.md). A ColBERT
 * checkpoint's late side is as strong as BM25 or stronger: equal weights. */
#define CP_HYBRID_ALPHA_STATIC 0.9f
#define CP_HYBRID_ALPHA_OTHER 0.5f

static bool parse_alpha(const char *text, float *alpha)
{
    if (!text) return false;
    const char *a = strstr(text, "\"alpha\"");
    if (!a) return false;
    a = strchr(a, ':');
    if (!a) return false;
    char *end = NULL;
    double v = strtod(a + 1, &end);
    if (end == a + 1 || !(v >= 0 && v <= 1)) return false;
    *alpha = (float)v;
    return true;
}

void cp_index_fusion_resolve(cp_index *index, const cp_fusion *in, cp_fusion *out)
{
    *out = *in;
    if (out->method == CP_FUSION_DEFAULT) {
        out->method = CP_FUSION_LINEAR;
        out->norm = CP_NORM_ZSCORE;
    }
    if (out->rrf_k <= 0) out->rrf_k = 60;
    if (out->depth <= 0) out->depth = 100;
    if (!isnan(out->alpha)) return;
    char *h = cp_index_meta_get(index, "hybrid");
    bool got = parse_alpha(h, &out->alpha);
    free(h);
    if (got) return;
    char *enc = cp_index_meta_get(index, "encoder");
    out->alpha =
        enc && strstr(enc, "\"kind\":\"static\"") ? CP_HYBRID_ALPHA_STATIC : CP_HYBRID_ALPHA_OTHER;
    free(enc);
}

typedef struct cand {
    int64_t doc;
    float late, lex;
    bool has_late, has_lex;
    double fused;
} cand;

static int cmp_cand_doc(const void *a, const void *b)
{
    int64_t x = ((const cand *)a)->doc, y = ((const cand *)b)->doc;
    return (x > y) - (x < y);
}

static cand *find_cand(cand *c, size_t n, int64_t doc)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c[mid].doc < doc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && c[lo].doc == doc ? &c[lo] : NULL;
}

/* Per side: normalised value of x among the candidates' values v[0..n). */
static void side_stats(const cand *c, size_t n, bool lex, double *a, double *b, int norm)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        double x = lex ? c[i].lex : c[i].late;
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
        sum += x;
    }
    double mean = n ? sum / (double)n : 0;
    for (size_t i = 0; i < n; i++) {
        double x = (lex ? c[i].lex : c[i].late) - mean;
        sq += x * x;
    }
    if (norm == CP_NORM_MINMAX) {
        *a = lo;
        *b = hi > lo ? 1.0 / (hi - lo) : 0;
    } else {
        double sd = n > 1 ? sqrt(sq / (double)n) : 0;
        *a = mean;
        *b = sd > 0 ? 1.0 / sd : 0;
    }
}

static int cmp_by_late(const void *a, const void *b)
{
    const cand *x = *(const cand *const *)a, *y = *(const cand *const *)b;
    if (x->late != y->late) return x->late < y->late ? 1 : -1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

static int cmp_by_lex(const void *a, const void *b)
{
    const cand *x = *(const cand *const *)a, *y = *(const cand *const *)b;
    if (x->lex != y->lex) return x->lex < y->lex ? 1 : -1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

static int cmp_fused(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->fused != y->fused) return x->fused < y->fused ? 1 : -1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

static cp_status fuse(cand *c, size_t n, const cp_fusion *f, cp_error *err)
{
    if (f->method == CP_FUSION_RRF) {
        cand **order = malloc((n ? n : 1) * sizeof *order);
        if (!order) return cp_error_set(err, CP_ENOMEM, "out of memory fusing results");
        for (size_t i = 0; i < n; i++) {
            order[i] = &c[i];
            c[i].fused = 0;
        }
        qsort(order, n, sizeof *order, cmp_by_late);
        for (size_t i = 0; i < n; i++)
            order[i]->fused += 1.0 / (f->rrf_k + (double)i + 1);
        qsort(order, n, sizeof *order, cmp_by_lex);
        for (size_t i = 0; i < n && order[i]->lex > 0; i++)
            order[i]->fused += 1.0 / (f->rrf_k + (double)i + 1);
        free(order);
        return CP_OK;
    }
    double la, lb, xa, xb;
    side_stats(c, n, false, &la, &lb, f->norm);
    side_stats(c, n, true, &xa, &xb, f->norm);
    double alpha = f->alpha;
    for (size_t i = 0; i < n; i++)
        c[i].fused = alpha * (c[i].lex - xa) * xb + (1 - alpha) * (c[i].late - la) * lb;
    return CP_OK;
}

/* The lexical half of a hybrid search, run on its own thread beside stages 1-3 of the
 * late half, which joins it before stage 4 (lex_collect) to score its hits there too. */
typedef struct lex_job {
    cp_store *db;
    const cp_snapshot *snap;
    const char *text;
    const cp_search_params *params;
    size_t want, n;
    cp_hit *hits;
    int64_t *ids;       /* the hits' ids, for stage 4 */
    float *late;        /* their exact late scores, from stage 4 */
    pthread_t helper;
    bool threaded, done;
    bool more;
    cp_status st;
    cp_error err;
} lex_job;

static void *lex_worker(void *arg)
{
    lex_job *j = arg;
    j->st = lexical_search_in(j->db, j->snap, j->text, j->params, j->want, j->hits, &j->n, &j->more,
                              &j->err);
    return NULL;
}

/* The lexical hits, once: joins the helper thread, or searches here when none started. */
static void lex_finish(lex_job *j)
{
    if (j->done) return;
    j->done = true;
    if (j->threaded)
        pthread_join(j->helper, NULL);
    else
        lex_worker(j);
}

static cp_status lex_collect(void *ctx, const int64_t **ids, float **scores, size_t *n,
                             cp_error *err)
{
    lex_job *j = ctx;
    lex_finish(j);
    if (j->st != CP_OK) {
        if (err) *err = j->err;
        return j->st;
    }
    for (size_t i = 0; i < j->n; i++)
        j->ids[i] = j->hits[i].doc_id;
    *ids = j->ids;
    *scores = j->late;
    *n = j->n;
    return CP_OK;
}

cp_status cp_index_hybrid_search(cp_index *index, const char *text, const float *query, int n_q,
                                 int dim, const cp_search_params *params, const cp_fusion *fusion,
                                 cp_hit *hits, int *n_hits, cp_search_timing *timing, cp_error *err)
{
    *n_hits = 0;
    if (timing) memset(timing, 0, sizeof *timing);
    if (!text || !query || !params || !hits || !fusion)
        return cp_error_set(err, CP_EINVAL, "hybrid search: a required argument is NULL");
    if (params->k < 1)
        return cp_error_set(err, CP_EINVAL, "k must be at least 1 (got %d)", params->k);
    if (fusion->method == CP_FUSION_LINEAR && !isnan(fusion->alpha) &&
        !(fusion->alpha >= 0 && fusion->alpha <= 1))
        return cp_error_set(err, CP_EINVAL, "alpha must be in [0, 1] (got %g)",
                            (double)fusion->alpha);
    cp_status st = check_subset(params, err);
    if (st != CP_OK) return st;
    cp_fusion f;
    cp_index_fusion_resolve(index, fusion, &f);
    size_t depth = (size_t)(f.depth > params->k ? f.depth : params->k);
    cp_store *db = NULL;
    if ((st = lexical_conn(index, &db, err)) != CP_OK) return st;

    double t0 = now_ms();
    cp_snapshot *snap = cp_index_acquire_snapshot(index);
    size_t k = (size_t)params->k, n_lex = 0, n = 0;
    cp_hit *late = malloc(k * sizeof *late), *lex = malloc(depth * sizeof *lex);
    int64_t *lex_ids = malloc(depth * sizeof *lex_ids);
    float *lex_late = malloc(depth * sizeof *lex_late);
    cand *c = calloc(k + depth + 1, sizeof *c);
    int n_late = 0;
    bool more = false;
    if (!late || !lex || !lex_ids || !lex_late || !c)
        st = cp_error_set(err, CP_ENOMEM, "out of memory");
    /* Both sides on the same snapshot: the late search on it, the lexical rows against
     * its live set. */
    if (st == CP_OK && dim != snap->codec.dim)
        st =
            cp_error_set(err, CP_EDIM, "the query has %d dims, the index %d", dim, snap->codec.dim);
    /* The two halves at once: the lexical one on a helper thread (inline when none can be
     * started) while the late one runs stages 1-3 here; its stage 4 then scores the
     * lexical hits beside its own candidates, with the centroid scores it has computed. */
    lex_job job = {.db = db, .snap = snap, .text = text, .params = params, .want = depth,
                   .hits = lex, .ids = lex_ids, .late = lex_late};
    if (st == CP_OK) job.threaded = pthread_create(&job.helper, NULL, lex_worker, &job) == 0;
    cp_search_extra extra = {.collect = lex_collect, .ctx = &job};
    if (st == CP_OK)
        st = cp_snapshot_search_extra(snap, query, n_q, params, CP_STAGE4_AUTO, &extra, late,
                                      &n_late, timing, err);
    if (job.threaded) lex_finish(&job); /* the late search failed before stage 4 */
    n_lex = job.n;
    more = job.more;
    double t2 = now_ms();
    if (st == CP_OK) {
        for (int i = 0; i < n_late; i++)
            c[n++] = (cand){.doc = late[i].doc_id, .late = late[i].score, .has_late = true};
        qsort(c, n, sizeof *c, cmp_cand_doc);
        size_t base = n;
        for (size_t i = 0; i < n_lex; i++) {
            cand *x = find_cand(c, base, lex[i].doc_id);
            if (!x) {
                /* a lexical-only candidate: its exact late score from stage 4 (NAN when
                 * the late side cannot score it: not in the snapshot) */
                x = &c[n++];
                *x = (cand){.doc = lex[i].doc_id, .late = lex_late[i],
                            .has_late = !isnan(lex_late[i])};
            }
            x->lex = lex[i].score;
            x->has_lex = true;
        }
        /* Late candidates past the lexical list: BM25 0 when no term matches them,
         * else (the list was cut at depth) at most its last score. */
        float floor_lex = more && n_lex ? lex[n_lex - 1].score : 0;
        for (size_t i = 0; i < base; i++)
            if (!c[i].has_lex) c[i].lex = floor_lex;
    }
    if (st == CP_OK) {
        /* Drop what the late side could not score (not in the snapshot). */
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].has_late) c[m++] = c[i];
        n = m;
        st = fuse(c, n, &f, err);
    }
    if (st == CP_OK) {
        qsort(c, n, sizeof *c, cmp_fused);
        size_t out = n < k ? n : k;
        for (size_t i = 0; i < out; i++) {
            hits[i].doc_id = c[i].doc;
            hits[i].score = (float)c[i].fused;
        }
        *n_hits = (int)out;
    }
    if (timing) {
        timing->stage4 += now_ms() - t2; /* stage 4 (with the lexical hits) and the fusion */
        timing->total = now_ms() - t0;
    }
    cp_snapshot_release(snap);
    cp_index_pool_put(index, db);
    free(late);
    free(lex);
    free(lex_ids);
    free(lex_late);
    free(c);
    return st;
}

/* ---------------------------------------------------------------------------------------
 * Explain
 * ------------------------------------------------------------------------------------ */

void cp_lexical_explain_free(cp_lexical_explain *x)
{
    if (!x) return;
    free(x->terms);
    free(x->matched);
    memset(x, 0, sizeof *x);
}

cp_status cp_index_lexical_explain(cp_index *index, const char *text, int64_t doc_id,
                                   cp_lexical_explain *out, cp_error *err)
{
    memset(out, 0, sizeof *out);
    cp_store *db = NULL;
    cp_status st = lexical_conn(index, &db, err);
    if (st != CP_OK) return st;
    char **terms = NULL;
    size_t n = 0;
    st = query_terms(text, &terms, &n, err);
    sqlite3 *s = cp_store_sqlite(db);
    sqlite3_stmt *q = NULL;
    int rc = SQLITE_OK;
    if (st == CP_OK && !(out->matched = calloc(n ? n : 1, sizeof *out->matched)))
        st = cp_error_set(err, CP_ENOMEM, "out of memory");
    if (st == CP_OK)
        rc = sqlite3_prepare_v2(s,
                                "SELECT bm25(lexical) FROM lexical WHERE lexical MATCH ?"
                                " AND rowid = ?",
                                -1, &q, NULL);
    if (st == CP_OK && rc != SQLITE_OK)
        st = cp_store_sql_error(db, rc, "explaining the lexical match", err);
    char one[MAX_TERM_BYTES + 3];
    for (size_t i = 0; st == CP_OK && i < n; i++) {
        snprintf(one, sizeof one, "\"%s\"", terms[i]);
        sqlite3_bind_text(q, 1, one, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, doc_id);
        rc = sqlite3_step(q);
        out->matched[i] = rc == SQLITE_ROW;
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            st = cp_store_sql_error(db, rc, "explaining the lexical match", err);
        sqlite3_reset(q);
    }
    char *expr = st == CP_OK ? match_expression(terms, n) : NULL;
    if (st == CP_OK && !expr) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    if (st == CP_OK && expr[0]) {
        sqlite3_bind_text(q, 1, expr, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, doc_id);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            out->score = (float)-sqlite3_column_double(q, 0);
        else if (rc != SQLITE_DONE)
            st = cp_store_sql_error(db, rc, "explaining the lexical match", err);
    }
    free(expr);
    sqlite3_finalize(q);
    cp_index_pool_put(index, db);
    if (st != CP_OK) {
        free(terms);
        cp_lexical_explain_free(out);
        return st;
    }
    out->terms = terms; /* one block: the array and the strings after it */
    out->n_terms = n;
    return CP_OK;
}
