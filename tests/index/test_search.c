/*
 * PLAID search over hand-built snapshots, stage by stage, against naive references:
 * candidates (stage 1), pruned interaction (2), full interaction (3), exact MaxSim (4);
 * exact mode against brute force; PLAID with huge ncells/ndocs equals exact; ties broken by
 * ascending doc id; subset restriction; deleted slots never returned; bad input rejected.
 * Quantised data makes every stage-1..3 score exact in float, so sets compare exactly.
 */
#include <string.h>

#include "cp_test.h"
#include "codec.h"
#include "search.h"
#include "snapshot.h"
#include "search_test_util.h"

typedef struct ref_doc {
    double score;
    int32_t doc;
} ref_doc;

static int cmp_ref(const void *pa, const void *pb)
{
    const ref_doc *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->doc > b->doc) - (a->doc < b->doc);
}

static int cmp_i32(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

/* Naive centroid interaction: sum_i max over kept codes of S[c][i]. */
static double naive_interact(const cp_snapshot *s, const float *S, int nq, int32_t doc,
                             const uint8_t *keep)
{
    double total = 0;
    for (int i = 0; i < nq; i++) {
        double m = -INFINITY;
        for (int64_t t = s->doc_offsets[doc]; t < s->doc_offsets[doc + 1]; t++) {
            int32_t c = s->codes[t];
            if (keep && !keep[c]) continue;
            if (S[c * nq + i] > m) m = S[c * nq + i];
        }
        total += m;
    }
    return total;
}

/* Keep the best n of docs[0..m) by naive score; returns the kept count, sorted by doc id. */
static size_t naive_select(const cp_snapshot *s, const float *S, int nq, int32_t *docs, size_t m,
                           size_t n, const uint8_t *keep)
{
    ref_doc *r = malloc(sizeof(ref_doc) * (m + 1));
    for (size_t i = 0; i < m; i++) {
        r[i].doc = docs[i];
        r[i].score = naive_interact(s, S, nq, docs[i], keep);
    }
    qsort(r, m, sizeof *r, cmp_ref);
    size_t kept = m < n ? m : n;
    for (size_t i = 0; i < kept; i++) docs[i] = r[i].doc;
    qsort(docs, kept, sizeof(int32_t), cmp_i32);
    free(r);
    return kept;
}

/* Stage 1 by definition: live docs owning a token in any per-token top-ncells cell. */
static size_t naive_candidates(const cp_snapshot *s, const float *S, int nq, int ncells,
                               int32_t *out)
{
    int64_t K = s->codec.n_centroids;
    uint8_t *cell = calloc((size_t)K, 1);
    /* sort each column's centroids by (score desc, id asc); the first ncells are probed */
    ref_doc *col = malloc(sizeof(ref_doc) * (size_t)K);
    for (int i = 0; i < nq; i++) {
        for (int64_t c = 0; c < K; c++) {
            col[c].doc = (int32_t)c;
            col[c].score = S[c * nq + i];
        }
        qsort(col, (size_t)K, sizeof *col, cmp_ref);
        for (int t = 0; t < ncells && t < K; t++) cell[col[t].doc] = 1;
    }
    size_t n = 0;
    for (int64_t d = 0; d < s->n_slots; d++) {
        if (s->deleted[d]) continue;
        int hit = 0;
        for (int64_t t = s->doc_offsets[d]; t < s->doc_offsets[d + 1]; t++) hit |= cell[s->codes[t]];
        if (hit) out[n++] = (int32_t)d;
    }
    free(col);
    free(cell);
    return n;
}

static int same_set(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(int32_t)) == 0);
}

static void make_query(float *q, int nq, int d, int quantised)
{
    tu_fill(q, (size_t)(nq * d), quantised);
    if (!quantised)
        for (int i = 0; i < nq; i++) tu_normalise(q + i * d, d);
}

/* Every stage of one PLAID search against the naive definitions. */
static void check_stages(cp_snapshot *s, const float *q, int nq, cp_search_params *p,
                         cp_stage4_mode mode)
{
    cp_hit hits[128];
    int n_hits = -1;
    cp_search_timing tm;
    cp_search_trace tr;
    cp_error err = {0};
    cp_status st = cp_snapshot_search_traced(s, q, nq, p, mode, hits, &n_hits, &tm, &tr, &err);
    CP_CHECK_OK(st, err);
    if (st != CP_OK) return;
    int ncells, ndocs, keep2, keep3;
    float thr;
    cp_search_params_resolve(p, &ncells, &thr, &ndocs);
    cp_search_stage_sizes(p, &keep2, &keep3);
    float *S = tu_centroid_scores(s, q, nq);
    int32_t *docs = malloc(sizeof(int32_t) * (size_t)(s->n_slots + 1));
    size_t n = naive_candidates(s, S, nq, ncells, docs);
    if (!same_set(tr.stage1, tr.n_stage1, docs, n))
        fprintf(stderr, "stage 1 differs: K=%lld dim=%d nq=%d k=%d ncells=%d\n",
                (long long)s->codec.n_centroids, s->codec.dim, nq, p->k, ncells);
    CP_CHECK(same_set(tr.stage1, tr.n_stage1, docs, n));
    CP_CHECK_INT(tm.n_candidates, (long long)n);
    uint8_t *keep = malloc((size_t)s->codec.n_centroids);
    for (int64_t c = 0; c < s->codec.n_centroids; c++) {
        float m = -INFINITY;
        for (int i = 0; i < nq; i++) m = S[c * nq + i] > m ? S[c * nq + i] : m;
        keep[c] = m >= thr;
    }
    n = naive_select(s, S, nq, docs, n, (size_t)keep2, keep);
    CP_CHECK(same_set(tr.stage2, tr.n_stage2, docs, n));
    n = naive_select(s, S, nq, docs, n, (size_t)keep3, NULL);
    CP_CHECK(same_set(tr.stage3, tr.n_stage3, docs, n));
    /* stage 4: exact MaxSim of the stage-3 survivors, top k */
    ref_doc *r = malloc(sizeof(ref_doc) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        r[i].doc = docs[i];
        r[i].score = tu_exact_score(s, q, nq, docs[i]);
    }
    qsort(r, n, sizeof *r, cmp_ref);
    size_t k = n < (size_t)p->k ? n : (size_t)p->k;
    CP_CHECK_INT(n_hits, (long long)k);
    for (size_t i = 0; i < k && (int)i < n_hits; i++) {
        CP_CHECK_NEAR(hits[i].score, r[i].score, 1e-4);
        if (hits[i].doc_id != r[i].doc) /* only a float near-tie may swap neighbours */
            CP_CHECK_NEAR(tu_exact_score(s, q, nq, hits[i].doc_id), r[i].score, 1e-4);
        if (i > 0) CP_CHECK(hits[i - 1].score >= hits[i].score);
    }
    free(r);
    free(keep);
    free(docs);
    free(S);
    cp_search_trace_free(&tr);
}

static void test_stages(void)
{
    int shapes[][4] = {/* dim, nbits, K, docs */ {128, 2, 64, 400}, {96, 1, 32, 300},
                       {104, 4, 50, 250}, {128, 2, 16, 500}, {64, 8, 24, 150}};
    for (int si = 0; si < 5; si++) {
        cp_snapshot *s = tu_snapshot(shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3],
                                     30, 7, 1, 0);
        int d = shapes[si][0];
        for (int trial = 0; trial < 6; trial++) {
            int nq = trial < 4 ? 32 : (trial == 4 ? 5 : 40);
            float *q = malloc(sizeof(float) * (size_t)(nq * d));
            make_query(q, nq, d, 1);
            int ks[] = {1, 10, 20, 100};
            cp_search_params p;
            cp_search_params_init(&p, ks[trial % 4]);
            if (trial % 2) { /* small quotas so stages 2 and 3 really select */
                p.ndocs = 40;
                p.centroid_score_threshold = 0.0f;
                p.ncells = 3;
            }
            check_stages(s, q, nq, &p, (cp_stage4_mode)(trial % 3));
            free(q);
        }
        cp_snapshot_release(s);
    }
}

/* Exact mode = brute force over every live doc; PLAID with everything open = exact. */
static void test_exact(void)
{
    cp_snapshot *s = tu_snapshot(128, 2, 40, 300, 25, 5, 0, 1);
    int nq = 32, d = 128, k = 50;
    float *q = malloc(sizeof(float) * (size_t)(nq * d));
    make_query(q, nq, d, 0);
    ref_doc *r = malloc(sizeof(ref_doc) * (size_t)s->n_slots);
    size_t n = 0;
    for (int64_t doc = 0; doc < s->n_slots; doc++)
        if (!s->deleted[doc]) {
            r[n].doc = (int32_t)doc;
            r[n++].score = tu_exact_score(s, q, nq, doc);
        }
    qsort(r, n, sizeof *r, cmp_ref);
    cp_hit hits[50], hits2[50];
    int n_hits = 0, n_hits2 = 0;
    cp_error err = {0};
    cp_search_params p;
    cp_search_params_init(&p, k);
    p.exact = true;
    CP_CHECK_OK(cp_snapshot_search(s, q, nq, &p, hits, &n_hits, NULL, &err), err);
    CP_CHECK_INT(n_hits, k);
    for (int i = 0; i < n_hits; i++) {
        CP_CHECK_NEAR(hits[i].score, r[i].score, 1e-4);
        CP_CHECK(!s->deleted[hits[i].doc_id]);
    }
    cp_search_params_init(&p, k); /* PLAID, nothing pruned: every cell, every doc kept */
    p.ncells = (int)s->codec.n_centroids;
    p.ndocs = 100000;
    p.centroid_score_threshold = -100.0f;
    CP_CHECK_OK(cp_snapshot_search(s, q, nq, &p, hits2, &n_hits2, NULL, &err), err);
    CP_CHECK_INT(n_hits2, k);
    for (int i = 0; i < k && i < n_hits2; i++) {
        CP_CHECK_INT(hits2[i].doc_id, hits[i].doc_id);
        CP_CHECK(hits2[i].score == hits[i].score);
    }
    /* k larger than the live docs: every live doc with a token (empty docs never reach
     * PLAID's candidates, but exact mode scores them 0) */
    cp_hit *all = malloc(sizeof(cp_hit) * 1000);
    cp_search_params_init(&p, 1000);
    p.exact = true;
    CP_CHECK_OK(cp_snapshot_search(s, q, nq, &p, all, &n_hits, NULL, &err), err);
    CP_CHECK_INT(n_hits, s->n_live);
    free(all);
    free(r);
    free(q);
    cp_snapshot_release(s);
}

/* Identical documents score identically: ties come out by ascending doc id. */
static void test_ties(void)
{
    cp_snapshot *s = tu_snapshot(128, 2, 8, 12, 6, 0, 1, 0);
    int rb = cp_residual_bytes(128, 2);
    int64_t len0 = s->doc_offsets[1] - s->doc_offsets[0];
    /* make docs 3, 7 and 10 copies of doc 0 by rewriting the token arrays */
    int copies[] = {3, 7, 10};
    int64_t total = 0;
    int64_t *lens = malloc(sizeof(int64_t) * 12);
    for (int d = 0; d < 12; d++) {
        lens[d] = s->doc_offsets[d + 1] - s->doc_offsets[d];
        for (int c = 0; c < 3; c++)
            if (d == copies[c]) lens[d] = len0;
        total += lens[d];
    }
    int32_t *codes = malloc(sizeof(int32_t) * (size_t)total);
    uint8_t *res = malloc((size_t)(total * rb));
    int64_t at = 0;
    for (int d = 0; d < 12; d++) {
        int src = d;
        for (int c = 0; c < 3; c++)
            if (d == copies[c]) src = 0;
        memcpy(codes + at, s->codes + s->doc_offsets[src], sizeof(int32_t) * (size_t)lens[d]);
        memcpy(res + at * rb, s->residuals + s->doc_offsets[src] * rb, (size_t)(lens[d] * rb));
        at += lens[d];
    }
    for (int d = 0; d < 12; d++) s->doc_offsets[d + 1] = s->doc_offsets[d] + lens[d];
    free(s->codes);
    free(s->residuals);
    s->codes = codes;
    s->residuals = res;
    s->n_tokens = total;
    cp_snapshot_build_ivf(s, NULL);
    float q[32 * 128];
    make_query(q, 32, 128, 0);
    /* a query equal to doc 0's first decoded token ranks doc 0 and its copies on top */
    cp_codec_decompress_one(&s->codec, s->codes[0], s->residuals, q);
    for (int i = 1; i < 32; i++) memcpy(q + i * 128, q, sizeof(float) * 128);
    for (int exact = 0; exact < 2; exact++) {
        cp_search_params p;
        cp_search_params_init(&p, 4);
        p.exact = exact;
        p.centroid_score_threshold = -10.0f;
        cp_hit hits[4];
        int n = 0;
        cp_error err = {0};
        CP_CHECK_OK(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), err);
        CP_CHECK_INT(n, 4);
        int want[] = {0, 3, 7, 10};
        for (int i = 0; i < n; i++) CP_CHECK_INT(hits[i].doc_id, want[i]);
        CP_CHECK(hits[0].score == hits[3].score);
    }
    free(lens);
    cp_snapshot_release(s);
}

static void test_subset_and_deleted(void)
{
    cp_snapshot *s = tu_snapshot(96, 2, 30, 200, 20, 3, 0, 0);
    float q[32 * 96];
    make_query(q, 32, 96, 0);
    int64_t subset[] = {5, 2, 8, 11, 2, 150, 151, 199}; /* 5, 2, 8, 11 are deleted (d%3==2) */
    cp_search_params p;
    cp_error err = {0};
    cp_hit hits[10];
    int n = 0;
    for (int exact = 0; exact < 2; exact++) {
        cp_search_params_init(&p, 10);
        p.exact = exact;
        p.subset = subset;
        p.n_subset = 8;
        CP_CHECK_OK(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), err);
        CP_CHECK_INT(n, 3); /* 150, 151, 199 */
        for (int i = 0; i < n; i++) {
            int64_t d = hits[i].doc_id;
            CP_CHECK(d == 150 || d == 151 || d == 199);
            CP_CHECK_NEAR(hits[i].score, tu_exact_score(s, q, 32, d), 1e-4);
        }
    }
    /* a full search never returns deleted slots */
    cp_search_params_init(&p, 10);
    p.ncells = 30;
    p.centroid_score_threshold = -10.0f;
    CP_CHECK_OK(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), err);
    CP_CHECK_INT(n, 10);
    for (int i = 0; i < n; i++) CP_CHECK(!s->deleted[hits[i].doc_id]);
    /* A subset id past the snapshot is a document newer than it (a filter evaluated on
     * the database while a write was being published): skipped like a deleted one, never
     * an error for the reader (issue 12, defect 9). */
    int64_t newer[] = {3, 200, 5000};
    p.subset = newer;
    p.n_subset = 3;
    CP_CHECK_OK(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), err);
    CP_CHECK_INT(n, 1);
    CP_CHECK_INT(n ? hits[0].doc_id : -1, 3);
    /* a negative subset id is an error naming the id */
    int64_t bad[] = {3, -7};
    p.subset = bad;
    p.n_subset = 2;
    CP_CHECK_INT(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), CP_EINVAL);
    CP_CHECK(strstr(err.message, "-7") != NULL);
    /* ... and the bitmap it partly filled was cleared: the next search is unaffected */
    int64_t good[] = {0};
    p.subset = good;
    p.n_subset = 1;
    CP_CHECK_OK(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), err);
    CP_CHECK_INT(n, 1);
    cp_snapshot_release(s);
}

/* Implicit (WARP-style) and explicit stage 4 give the same scores, every nbits, PLAID and
 * exact mode. */
static void test_implicit_equals_explicit(void)
{
    int shapes[][2] = {{128, 1}, {128, 2}, {96, 4}, {104, 2}, {64, 8}};
    for (int si = 0; si < 5; si++) {
        int d = shapes[si][0];
        cp_snapshot *s = tu_snapshot(d, shapes[si][1], 24, 120, 40, 9, 0, 1);
        for (int nq = 32; nq <= 40; nq += 8) {
            float *q = malloc(sizeof(float) * (size_t)(nq * d));
            make_query(q, nq, d, 0);
            for (int exact = 0; exact < 2; exact++) {
                cp_search_params p;
                cp_search_params_init(&p, 20);
                p.exact = exact;
                cp_hit h1[20], h2[20];
                int n1 = 0, n2 = 0;
                cp_error err = {0};
                CP_CHECK_OK(cp_snapshot_search_traced(s, q, nq, &p, CP_STAGE4_EXPLICIT, h1, &n1, NULL, NULL, &err), err);
                CP_CHECK_OK(cp_snapshot_search_traced(s, q, nq, &p, CP_STAGE4_IMPLICIT, h2, &n2, NULL, NULL, &err), err);
                CP_CHECK_INT(n1, n2);
                CP_CHECK(n1 > 0);
                for (int i = 0; i < n1 && i < n2; i++) {
                    CP_CHECK_NEAR(h2[i].score, h1[i].score, 1e-4);
                    CP_CHECK_NEAR(h2[i].score, tu_exact_score(s, q, nq, h2[i].doc_id), 1e-4);
                }
            }
            free(q);
        }
        cp_snapshot_release(s);
    }
}

static void test_bad_input(void)
{
    cp_snapshot *s = tu_snapshot(128, 2, 16, 20, 10, 0, 0, 0);
    float q[32 * 128];
    make_query(q, 32, 128, 0);
    cp_search_params p;
    cp_hit hits[10];
    int n = 0;
    cp_error err = {0};
    cp_search_params_init(&p, 0);
    CP_CHECK_INT(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), CP_EINVAL);
    CP_CHECK(strstr(err.message, "k must be") != NULL);
    cp_search_params_init(&p, 10);
    q[5 * 128 + 7] = NAN;
    CP_CHECK_INT(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), CP_EINVAL);
    CP_CHECK(strstr(err.message, "vector 5, component 7") != NULL);
    q[5 * 128 + 7] = INFINITY;
    CP_CHECK_INT(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), CP_EINVAL);
    q[5 * 128 + 7] = 0.0f;
    CP_CHECK_INT(cp_snapshot_search(s, q, 0, &p, hits, &n, NULL, &err), CP_EINVAL);
    p.ncells = -1;
    CP_CHECK_INT(cp_snapshot_search(s, q, 32, &p, hits, &n, NULL, &err), CP_EINVAL);
    cp_snapshot_release(s);
}

static void test_params(void)
{
    cp_search_params p;
    int nc, nd;
    float t;
    int want[][4] = {{1, 1, 256}, {10, 1, 256}, {11, 2, 1024}, {100, 2, 1024}, {101, 4, 4096},
                     {1000, 4, 4096}, {2000, 4, 8000}};
    float wt[] = {0.5f, 0.5f, 0.45f, 0.45f, 0.4f, 0.4f, 0.4f};
    for (int i = 0; i < 7; i++) {
        cp_search_params_init(&p, want[i][0]);
        cp_search_params_resolve(&p, &nc, &t, &nd);
        CP_CHECK_INT(nc, want[i][1]);
        CP_CHECK_INT(nd, want[i][2]);
        CP_CHECK(t == wt[i]);
    }
    cp_search_params_init(&p, 10);
    p.ncells = 3, p.ndocs = 8, p.centroid_score_threshold = 0.1f;
    cp_search_params_resolve(&p, &nc, &t, &nd);
    CP_CHECK(nc == 3 && nd == 8 && t == 0.1f);
    int k2, k3;
    cp_search_stage_sizes(&p, &k2, &k3); /* never fewer than k */
    CP_CHECK_INT(k2, 10);
    CP_CHECK_INT(k3, 10);
}

/* Extra documents scored in stage 4 (hybrid search's lexical candidates): the hits are the
 * plain search's, and every extra id gets its exact MaxSim (the naive scorer's), whether it
 * is one of PLAID's candidates, a document PLAID never reached, a deleted one or an id the
 * snapshot does not have (NAN); in explicit and implicit stage 4, PLAID and exhaustive,
 * with and without a subset. */
typedef struct extra_ctx {
    int64_t ids[64];
    float scores[64];
    size_t n;
    int calls;
} extra_ctx;

static cp_status extra_collect(void *ctx, const int64_t **ids, float **scores, size_t *n,
                               cp_error *err)
{
    (void)err;
    extra_ctx *x = ctx;
    x->calls++;
    *ids = x->ids;
    *scores = x->scores;
    *n = x->n;
    return CP_OK;
}

static cp_status extra_fail(void *ctx, const int64_t **ids, float **scores, size_t *n,
                            cp_error *err)
{
    (void)ctx, (void)ids, (void)scores, (void)n;
    return cp_error_set(err, CP_EINVAL, "the lexical half failed");
}

static void test_extra_documents(void)
{
    cp_snapshot *s = tu_snapshot(104, 2, 40, 400, 30, 7, 0, 1);
    int nq = 32, d = 104;
    float *q = malloc(sizeof(float) * (size_t)(nq * d));
    make_query(q, nq, d, 0);
    int64_t subset[200];
    for (int i = 0; i < 200; i++) subset[i] = 2 * i;
    for (int variant = 0; variant < 12; variant++) {
        cp_stage4_mode mode = variant % 3 == 0   ? CP_STAGE4_AUTO
                              : variant % 3 == 1 ? CP_STAGE4_EXPLICIT
                                                 : CP_STAGE4_IMPLICIT;
        cp_search_params p;
        cp_search_params_init(&p, 10);
        p.ncells = 1; /* few candidates: most extras are not among them */
        p.ndocs = 40;
        p.exact = (variant / 3) % 2;
        if (variant >= 6) {
            p.subset = subset;
            p.n_subset = 200;
        }
        cp_hit plain[10], hits[10];
        int n_plain = 0, n_hits = 0;
        cp_error err = {0};
        CP_CHECK_OK(cp_snapshot_search_traced(s, q, nq, &p, mode, plain, &n_plain, NULL, NULL, &err), err);
        /* extras: the plain hits, then every 7th doc (deleted ones included), an id past the
         * snapshot and a negative one */
        extra_ctx x = {.n = 0};
        for (int i = 0; i < n_plain; i++) x.ids[x.n++] = plain[i].doc_id;
        for (int64_t doc = 3; doc < s->n_slots && x.n < 60; doc += 7) {
            bool dup = false;
            for (size_t j = 0; j < x.n; j++) dup |= x.ids[j] == doc;
            if (!dup) x.ids[x.n++] = doc;
        }
        x.ids[x.n++] = s->n_slots + 5;
        x.ids[x.n++] = -1;
        cp_search_extra extra = {.collect = extra_collect, .ctx = &x};
        CP_CHECK_OK(cp_snapshot_search_extra(s, q, nq, &p, mode, &extra, hits, &n_hits, NULL, &err), err);
        CP_CHECK_INT(x.calls, 1);
        CP_CHECK_INT(n_hits, n_plain);
        for (int i = 0; i < n_hits && i < n_plain; i++) {
            CP_CHECK_INT(hits[i].doc_id, plain[i].doc_id);
            CP_CHECK_NEAR(hits[i].score, plain[i].score, 1e-5);
        }
        for (size_t j = 0; j < x.n; j++) {
            int64_t doc = x.ids[j];
            if (doc < 0 || doc >= s->n_slots || s->deleted[doc]) {
                CP_CHECK(isnan(x.scores[j]));
            } else {
                CP_CHECK_NEAR(x.scores[j], tu_exact_score(s, q, nq, doc), 1e-4);
            }
        }
    }
    /* a failing collect fails the search with its message */
    cp_search_params p;
    cp_search_params_init(&p, 10);
    cp_hit hits[10];
    int n_hits = 0;
    cp_error err = {0};
    cp_search_extra bad = {.collect = extra_fail};
    CP_CHECK(cp_snapshot_search_extra(s, q, nq, &p, CP_STAGE4_AUTO, &bad, hits, &n_hits, NULL, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "lexical half failed") != NULL);
    free(q);
    cp_snapshot_release(s);
}

int main(void)
{
    test_params();
    test_stages();
    test_exact();
    test_ties();
    test_subset_and_deleted();
    test_implicit_equals_explicit();
    test_bad_input();
    test_extra_documents();
    return CP_TEST_RESULT();
}
