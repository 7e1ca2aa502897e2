/*
 * The live index (index/live.c): upsert/delete/compact semantics, live snapshots equal to a
 * fresh load, concurrency (8 readers during writes, never half a batch), drift, disk full,
 * read-only handles and a second writer process.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cp_test.h"
#include "live_test_util.h"

static char *g_dir;

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static int64_t *range(int64_t lo, int64_t n)
{
    int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = lo + i;
    return v;
}

static cp_status upsert_range(cp_index *ix, const cp_codec *c, const char *prefix, int64_t lo,
                              int64_t n, int64_t version, int outlier, cp_upsert_result *r,
                              cp_error *err)
{
    int64_t *nums = range(lo, n);
    lt_batch b;
    lt_batch_make(&b, c, prefix, nums, (size_t)n, version, outlier);
    cp_status st = cp_index_upsert(ix, b.docs, b.n, c->dim, r, err);
    lt_batch_free(&b);
    free(nums);
    return st;
}

/* Queries: the vectors of documents (num, version) from the generator, first 8 tokens. */
static void query_of(const cp_codec *c, int64_t num, int64_t version, float *q, int *nq)
{
    int len = lt_doc_len(num, version);
    float *v = malloc((size_t)len * (size_t)c->dim * sizeof(float));
    lt_doc_vectors(c, num, version, len, 0, v);
    *nq = len < 8 ? len : 8;
    memcpy(q, v, (size_t)*nq * (size_t)c->dim * sizeof(float));
    free(v);
}

/* Whether two handles give identical results (ids and scores) for n queries, with PLAID
 * defaults and exactly. */
static int same_results(cp_index *a, cp_index *b, const cp_codec *c, int n_queries, int k)
{
    int same = 1;
    float q[8 * LT_DIM];
    cp_hit *ha = malloc((size_t)k * sizeof *ha), *hb = malloc((size_t)k * sizeof *hb);
    for (int i = 0; i < n_queries && same; i++) {
        int nq = 0;
        query_of(c, i * 7, 1, q, &nq);
        for (int exact = 0; exact < 2 && same; exact++) {
            cp_search_params p;
            cp_search_params_init(&p, k);
            p.exact = exact;
            /* explicit settings: compaction recalibrates, which may change the defaults */
            cp_search_params_resolve(&p, &p.ncells, &p.centroid_score_threshold, &p.ndocs);
            int na = 0, nb = 0;
            cp_error err = {0};
            if (cp_index_search(a, q, nq, c->dim, &p, ha, &na, NULL, &err) != CP_OK ||
                cp_index_search(b, q, nq, c->dim, &p, hb, &nb, NULL, &err) != CP_OK) {
                fprintf(stderr, "search failed: %s\n", err.message);
                same = 0;
            }
            same = same && na == nb;
            for (int j = 0; same && j < na; j++)
                same = ha[j].doc_id == hb[j].doc_id && ha[j].score == hb[j].score;
            if (!same) fprintf(stderr, "query %d (exact=%d) differs\n", i, exact);
        }
    }
    free(ha);
    free(hb);
    return same;
}

/* The live handle agrees with a fresh read-only load of the same file, and check passes. */
static void check_against_reload(cp_index *live, const char *path, const cp_codec *c)
{
    cp_error err = {0};
    cp_index *fresh = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_READONLY, &fresh, &err), err);
    if (!fresh) return;
    cp_index_stats sa, sb;
    CP_CHECK_OK(cp_index_stats_get(live, &sa, &err), err);
    CP_CHECK_OK(cp_index_stats_get(fresh, &sb, &err), err);
    CP_CHECK_INT(sa.n_documents, sb.n_documents);
    CP_CHECK_INT(sa.n_tokens, sb.n_tokens);
    CP_CHECK_INT(sa.n_deleted, sb.n_deleted);
    CP_CHECK(same_results(live, fresh, c, 20, 30));
    cp_index_close(fresh);
    CP_CHECK_OK(cp_index_check(path, stderr, &err), err);
}

static int cmp_i64_asc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t doc_id_of(cp_index *ix, const char *id)
{
    int64_t d = -1;
    cp_index_doc_id(ix, id, &d, NULL);
    return d;
}

/* Whether any search returns doc_id (exhaustive, k = everything). */
static int ever_returned(cp_index *ix, const cp_codec *c, int64_t doc_id, int k)
{
    float q[8 * LT_DIM];
    cp_hit *h = malloc((size_t)k * sizeof *h);
    int found = 0;
    for (int i = 0; i < 10 && !found; i++) {
        int nq = 0, n = 0;
        query_of(c, i, 1, q, &nq);
        cp_search_params p;
        cp_search_params_init(&p, k);
        p.exact = true;
        if (cp_index_search(ix, q, nq, c->dim, &p, h, &n, NULL, NULL) != CP_OK) continue;
        for (int j = 0; j < n; j++) found |= h[j].doc_id == doc_id;
    }
    free(h);
    return found;
}

static void test_semantics(void)
{
    char path[600];
    path_in(path, sizeof path, "sem.db");
    cp_codec c;
    cp_error err = {0};
    CP_CHECK_OK(lt_create(path, &c, 11, &err), err);
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &ix, &err), err);
    if (!ix) return;
    cp_upsert_result r;
    CP_CHECK_OK(upsert_range(ix, &c, "d", 0, 200, 1, 0, &r, &err), err);
    CP_CHECK_INT(r.n_added, 200);
    CP_CHECK_INT(r.first_doc_id, 0);
    CP_CHECK_INT(doc_id_of(ix, "d5"), 5);
    check_against_reload(ix, path, &c);

    /* replace d5: new internal id, old one never returned again, new content searchable */
    CP_CHECK_OK(upsert_range(ix, &c, "d", 5, 1, 2, 0, &r, &err), err);
    CP_CHECK_INT(r.n_replaced, 1);
    CP_CHECK_INT(doc_id_of(ix, "d5"), 200);
    CP_CHECK_INT(doc_id_of(ix, "d6"), 6); /* other ids are stable */
    CP_CHECK(!ever_returned(ix, &c, 5, 300));
    float q[8 * LT_DIM];
    int nq = 0, n = 0;
    query_of(&c, 5, 2, q, &nq);
    cp_hit hits[5];
    cp_search_params p;
    cp_search_params_init(&p, 5);
    CP_CHECK_OK(cp_index_search(ix, q, nq, c.dim, &p, hits, &n, NULL, &err), err);
    CP_CHECK(n > 0 && hits[0].doc_id == 200);
    CP_CHECK(lt_content_matches(ix, &c, 200, 5, 2));
    CP_CHECK(lt_content_matches(ix, &c, 6, 6, 1));

    /* delete: exact counts, unknown ids skipped */
    const char *del[] = {"d7", "d8", "nope", "d7"};
    size_t nd = 0;
    CP_CHECK_OK(cp_index_delete(ix, del, 4, &nd, &err), err);
    CP_CHECK_INT(nd, 2);
    CP_CHECK_INT(doc_id_of(ix, "d7"), -1);
    CP_CHECK(!ever_returned(ix, &c, 7, 300) && !ever_returned(ix, &c, 8, 300));
    cp_index_stats s;
    CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
    CP_CHECK_INT(s.n_documents, 198);
    CP_CHECK_INT(s.n_deleted, 3);
    check_against_reload(ix, path, &c);

    /* refused batches change nothing */
    lt_batch b;
    int64_t dup[] = {1, 2, 1};
    lt_batch_make(&b, &c, "d", dup, 3, 3, 0);
    CP_CHECK_INT(cp_index_upsert(ix, b.docs, 3, c.dim, &r, &err), CP_EINVAL);
    CP_CHECK(strstr(err.message, "more than once") != NULL);
    CP_CHECK_INT(cp_index_upsert(ix, b.docs, 2, c.dim + 8, &r, &err), CP_EDIM);
    b.vecs[1][3] = NAN;
    CP_CHECK_INT(cp_index_upsert(ix, b.docs, 2, c.dim, &r, &err), CP_EINVAL);
    CP_CHECK(strstr(err.message, "NaN") != NULL);
    memset(b.vecs[1], 0, (size_t)c.dim * sizeof(float));
    CP_CHECK_INT(cp_index_upsert(ix, b.docs, 2, c.dim, &r, &err), CP_EINVAL);
    CP_CHECK(strstr(err.message, "all-zero") != NULL);
    b.docs[1].n_tokens = 0;
    CP_CHECK_INT(cp_index_upsert(ix, b.docs, 2, c.dim, &r, &err), CP_EINVAL);
    lt_batch_free(&b);
    CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
    CP_CHECK_INT(s.n_documents, 198);
    CP_CHECK_INT(doc_id_of(ix, "d1"), 1);

    /* delete by filter */
    path_in(path, sizeof path, "sem.db");
    cp_document md[3] = {{.id = "m0", .metadata_json = "{\"g\": 1}"},
                         {.id = "m1", .metadata_json = "{\"g\": 2}"},
                         {.id = "m2", .metadata_json = "{\"g\": 2}"}};
    float mv[3][LT_DIM];
    for (int i = 0; i < 3; i++) {
        lt_doc_vectors(&c, 1000 + i, 1, 1, 0, mv[i]);
        md[i].embeddings = mv[i];
        md[i].n_tokens = 1;
    }
    CP_CHECK_OK(cp_index_upsert(ix, md, 3, c.dim, &r, &err), err);
    CP_CHECK_OK(cp_index_delete_filter(ix, "{\"g\": 2}", &nd, &err), err);
    CP_CHECK_INT(nd, 2);
    CP_CHECK(doc_id_of(ix, "m0") >= 0 && doc_id_of(ix, "m1") < 0);
    CP_CHECK_INT(cp_index_delete_filter(ix, "{\"g\": {\"$bogus\": 1}}", &nd, &err), CP_EINVAL);

    /* compaction keeps ids and results exactly */
    cp_index *before = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_READONLY, &before, &err), err);
    cp_compact_result cr;
    CP_CHECK_OK(cp_index_compact(ix, NULL, &cr, &err), err);
    CP_CHECK_INT(cr.tombstones_removed, 5); /* d5's old version, d7, d8, m1, m2 */
    CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
    CP_CHECK_INT(s.n_deleted, 0);
    CP_CHECK_INT(s.n_documents, 199);
    CP_CHECK_INT(s.n_segments, 1);
    CP_CHECK_INT(doc_id_of(ix, "d5"), 200);
    if (before) CP_CHECK(same_results(ix, before, &c, 20, 30));
    cp_index_close(before);
    check_against_reload(ix, path, &c);

    /* the automatic policy: nothing to do without tombstones, compacts past the fraction */
    bool ran = true;
    CP_CHECK_OK(cp_index_maybe_compact(ix, 0.2, &ran, &err), err);
    CP_CHECK(!ran);
    const char *many[60];
    char many_buf[60][16];
    for (int i = 0; i < 60; i++) {
        snprintf(many_buf[i], sizeof many_buf[i], "d%d", 100 + i);
        many[i] = many_buf[i];
    }
    CP_CHECK_OK(cp_index_delete(ix, many, 30, &nd, &err), err); /* 30 of 199: 15% */
    CP_CHECK_OK(cp_index_maybe_compact(ix, 0.2, &ran, &err), err);
    CP_CHECK(!ran);
    CP_CHECK_OK(cp_index_delete(ix, many + 30, 30, &nd, &err), err); /* 60 of 199: 30% */
    CP_CHECK_OK(cp_index_maybe_compact(ix, 0.2, &ran, &err), err);
    CP_CHECK(ran);
    CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
    CP_CHECK_INT(s.n_deleted, 0);
    CP_CHECK_INT(s.n_documents, 139);
    check_against_reload(ix, path, &c);

    /* read-only handles refuse writes */
    cp_index *ro = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_READONLY, &ro, &err), err);
    CP_CHECK_INT(upsert_range(ro, &c, "d", 0, 1, 9, 0, &r, &err), CP_EREADONLY);
    CP_CHECK_INT(cp_index_delete(ro, del, 1, &nd, &err), CP_EREADONLY);
    CP_CHECK_INT(cp_index_compact(ro, NULL, NULL, &err), CP_EREADONLY);
    cp_index_close(ro);
    cp_index_close(ix);
    free(c.centroids);
}

/* Many writes: the delta IVF grows past its merge limit, stale entries past theirs; after
 * every phase the live snapshot still equals a fresh load. */
static void test_ivf_paths(void)
{
    char path[600];
    path_in(path, sizeof path, "ivf.db");
    cp_codec c;
    cp_error err = {0};
    CP_CHECK_OK(lt_create(path, &c, 12, &err), err);
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &ix, &err), err);
    if (!ix) return;
    for (int i = 0; i < 60; i++) /* 60 x 100 docs x ~12 tokens: > 65536 delta tokens */
        CP_CHECK_OK(upsert_range(ix, &c, "x", i * 100, 100, 1, 0, NULL, &err), err);
    check_against_reload(ix, path, &c);
    for (int i = 0; i < 30; i++) { /* 3000 deletes: stale entries force a full rebuild */
        char **ids = malloc(100 * sizeof *ids);
        for (int j = 0; j < 100; j++) {
            ids[j] = malloc(32);
            snprintf(ids[j], 32, "x%d", i * 200 + j);
        }
        size_t nd = 0;
        CP_CHECK_OK(cp_index_delete(ix, (const char *const *)ids, 100, &nd, &err), err);
        CP_CHECK_INT(nd, 100);
        for (int j = 0; j < 100; j++) free(ids[j]);
        free(ids);
    }
    for (int i = 0; i < 20; i++) /* replacements of surviving ids, one at a time */
        CP_CHECK_OK(upsert_range(ix, &c, "x", 150 + i * 200, 1, 2, 0, NULL, &err), err);
    check_against_reload(ix, path, &c);
    cp_index_stats s;
    CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
    CP_CHECK_INT(s.n_documents, 3000);
    cp_index_close(ix);
    free(c.centroids);
}

/* Replacing the same documents over and over, with the server's automatic compaction after
 * each write: memory follows the live documents, not every internal id ever used (the
 * soak's RSS growth, issue 12). Internal ids keep growing in the file and every API still
 * speaks them: ids, contents, searches, subsets and a fresh load agree. */
static void test_churn_memory(void)
{
    enum { LIVE = 60, ROUNDS = 240, PER = 5 };
    char path[600];
    path_in(path, sizeof path, "churn.db");
    cp_codec c;
    cp_error err = {0};
    CP_CHECK_OK(lt_create(path, &c, 21, &err), err);
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &ix, &err), err);
    if (!ix) return;
    CP_CHECK_OK(upsert_range(ix, &c, "m", 0, LIVE, 0, 0, NULL, &err), err);
    int64_t version[LIVE] = {0}, max_slots = 0, compactions = 0;
    for (int r = 1; r <= ROUNDS; r++) {
        int64_t lo = (r * 7) % (LIVE - PER);
        CP_CHECK_OK(upsert_range(ix, &c, "m", lo, PER, r, 0, NULL, &err), err);
        for (int i = 0; i < PER; i++)
            version[lo + i] = r;
        bool compacted = false;
        CP_CHECK_OK(cp_index_maybe_compact(ix, 0.2, &compacted, &err), err);
        compactions += compacted;
        cp_snapshot *s = cp_index_acquire_snapshot(ix);
        if (s->n_slots > max_slots) max_slots = s->n_slots;
        cp_snapshot_release(s);
    }
    /* 60 + 240 x 5 = 1260 internal ids used; the slots stay near the live documents (at most
     * 20% deleted before a compaction renumbers them). */
    cp_snapshot *s = cp_index_acquire_snapshot(ix);
    CP_CHECK(s->next_file_id == LIVE + ROUNDS * PER);
    cp_snapshot_release(s);
    CP_CHECK(compactions > 10);
    if (max_slots > 2 * LIVE)
        fprintf(stderr, "churn: %lld slots for %d live documents\n", (long long)max_slots, LIVE);
    CP_CHECK(max_slots <= 2 * LIVE);
    /* Ids, contents and searches speak internal ids. */
    int64_t subset[LIVE];
    for (int i = 0; i < LIVE; i++) {
        char id[32];
        snprintf(id, sizeof id, "m%d", i);
        int64_t d = doc_id_of(ix, id);
        subset[i] = d;
        char *ext = NULL;
        CP_CHECK_OK(cp_index_external_id(ix, d, &ext, &err), err);
        CP_CHECK(ext && !strcmp(ext, id));
        free(ext);
        CP_CHECK(lt_content_matches(ix, &c, d, i, version[i]));
    }
    CP_CHECK(ever_returned(ix, &c, subset[0], LIVE));
    qsort(subset, LIVE, sizeof *subset, cmp_i64_asc);
    float q[8 * LT_DIM];
    int nq = 0, n = 0;
    query_of(&c, 3, version[3], q, &nq);
    cp_search_params p;
    cp_search_params_init(&p, 5);
    p.subset = subset + LIVE / 2; /* the half with the larger ids */
    p.n_subset = LIVE / 2;
    cp_hit hits[5];
    CP_CHECK_OK(cp_index_search(ix, q, nq, c.dim, &p, hits, &n, NULL, &err), err);
    CP_CHECK_INT(n, 5);
    for (int i = 0; i < n; i++)
        CP_CHECK(bsearch(&hits[i].doc_id, subset + LIVE / 2, LIVE / 2, sizeof *subset,
                         cmp_i64_asc) != NULL);
    check_against_reload(ix, path, &c);
    cp_index_close(ix);
    free(c.centroids);
}

/* ---- concurrency --------------------------------------------------------------------- */

enum { BATCH = 10, N_BATCHES = 120, N_READERS = 8 };

typedef struct conc {
    cp_index *ix;
    const cp_codec *c;
    atomic_int stop;
    atomic_long searches, violations, errors;
} conc;

/* Batch k's documents all carry the same vectors (the marker): a search for them returns
 * all ten or none of them, unless a reader saw half a batch. */
static void marker_vectors(const cp_codec *c, int k, float *v)
{
    lt_doc_vectors(c, 100000 + k, 1, 4, 0, v);
}

static void *reader(void *arg)
{
    conc *x = arg;
    float q[4 * LT_DIM];
    cp_hit hits[20];
    uint64_t s = (uint64_t)pthread_self() | 1;
    while (!atomic_load(&x->stop)) {
        int k = (int)(st_rand(&s) % N_BATCHES);
        marker_vectors(x->c, k, q);
        cp_search_params p;
        cp_search_params_init(&p, 20);
        int n = 0;
        cp_error err = {0};
        /* Search and read ids from ONE snapshot: a write may publish the next snapshot at
         * any moment, and mixing two snapshots would report a half batch that no reader
         * ever saw. */
        cp_snapshot *snap = cp_index_acquire_snapshot(x->ix);
        if (cp_snapshot_search(snap, q, 4, &p, hits, &n, NULL, &err) != CP_OK) {
            cp_snapshot_release(snap);
            atomic_fetch_add(&x->errors, 1);
            continue;
        }
        int mine = 0;
        char prefix[32];
        snprintf(prefix, sizeof prefix, "b%d_", k);
        size_t plen = strlen(prefix);
        int64_t live = 0;
        for (int64_t d = 0; d < snap->n_slots; d++)
            if (!snap->deleted[d] && snap->external_ids[d] &&
                !strncmp(snap->external_ids[d], prefix, plen))
                live++;
        for (int i = 0; i < n; i++) {
            int64_t slot = cp_snapshot_slot_of(snap, hits[i].doc_id);
            const char *ext = slot >= 0 ? snap->external_ids[slot] : NULL;
            if (ext && !strncmp(ext, prefix, plen)) mine++;
        }
        cp_snapshot_release(snap);
        if ((mine != 0 && mine != BATCH) || (live != 0 && live != BATCH))
            atomic_fetch_add(&x->violations, 1);
        atomic_fetch_add(&x->searches, 1);
    }
    return NULL;
}

static cp_status write_marker_batch(cp_index *ix, const cp_codec *c, int k, cp_error *err)
{
    cp_document docs[BATCH];
    char ids[BATCH][32];
    float v[4 * LT_DIM];
    marker_vectors(c, k, v);
    for (int j = 0; j < BATCH; j++) {
        snprintf(ids[j], sizeof ids[j], "b%d_%d", k, j);
        docs[j] = (cp_document){.id = ids[j], .embeddings = v, .n_tokens = 4};
    }
    return cp_index_upsert(ix, docs, BATCH, c->dim, NULL, err);
}

static void test_concurrency(void)
{
    char path[600];
    path_in(path, sizeof path, "conc.db");
    cp_codec c;
    cp_error err = {0};
    CP_CHECK_OK(lt_create(path, &c, 13, &err), err);
    conc x = {.c = &c};
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &x.ix, &err), err);
    if (!x.ix) return;
    CP_CHECK_OK(upsert_range(x.ix, &c, "base", 0, 500, 1, 0, NULL, &err), err);
    pthread_t t[N_READERS];
    for (int i = 0; i < N_READERS; i++) pthread_create(&t[i], NULL, reader, &x);
    long writes = 0;
    for (int k = 0; k < N_BATCHES; k++) {
        cp_status st = write_marker_batch(x.ix, &c, k, &err);          /* insert */
        if (st == CP_OK && k >= 1) st = write_marker_batch(x.ix, &c, k - 1, &err); /* replace */
        if (st == CP_OK && k >= 3) { /* delete an older batch whole */
            char ids[BATCH][32];
            const char *p[BATCH];
            for (int j = 0; j < BATCH; j++) {
                snprintf(ids[j], sizeof ids[j], "b%d_%d", k - 3, j);
                p[j] = ids[j];
            }
            size_t nd = 0;
            st = cp_index_delete(x.ix, p, BATCH, &nd, &err);
            if (st == CP_OK && nd != BATCH) atomic_fetch_add(&x.violations, 1);
        }
        CP_CHECK_OK(st, err);
        writes += 3;
        if (k == N_BATCHES / 2) CP_CHECK_OK(cp_index_compact(x.ix, NULL, NULL, &err), err);
    }
    atomic_store(&x.stop, 1);
    for (int i = 0; i < N_READERS; i++) pthread_join(t[i], NULL);
    printf("concurrency: %d readers, %ld searches, %ld writes, %ld violations, %ld errors\n",
           N_READERS, atomic_load(&x.searches), writes, atomic_load(&x.violations),
           atomic_load(&x.errors));
    CP_CHECK_INT(atomic_load(&x.violations), 0);
    CP_CHECK_INT(atomic_load(&x.errors), 0);
    CP_CHECK(atomic_load(&x.searches) > 0);
    check_against_reload(x.ix, path, &c);
    cp_index_close(x.ix);
    free(c.centroids);
}

/* ---- drift, disk full, second writer ------------------------------------------------- */

static void test_drift(void)
{
    char path[600];
    path_in(path, sizeof path, "drift.db");
    cp_codec c;
    cp_error err = {0};
    CP_CHECK_OK(lt_create(path, &c, 14, &err), err);
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &ix, &err), err);
    if (!ix) return;
    cp_upsert_result r;
    CP_CHECK_OK(upsert_range(ix, &c, "a", 0, 2000, 1, 0, &r, &err), err);
    CP_CHECK_OK(upsert_range(ix, &c, "b", 0, 500, 1, 0, &r, &err), err);
    double in = (double)r.n_outlier_tokens / (double)r.n_tokens;
    CP_CHECK(!r.rebuild_advised);
    CP_CHECK_OK(upsert_range(ix, &c, "o", 0, 500, 1, 1, &r, &err), err);
    double out = (double)r.n_outlier_tokens / (double)r.n_tokens;
    printf("drift: outlier fraction of in-distribution tokens %.4f, of random tokens %.4f; "
           "rebuild advised after random: %s\n", in, out, r.rebuild_advised ? "yes" : "no");
    CP_CHECK(in < 0.05);
    CP_CHECK(out > 0.5);
    CP_CHECK(r.rebuild_advised);
    char *meta = cp_index_meta_get(ix, "drift");
    CP_CHECK(meta && strstr(meta, "\"rebuild_advised\": true"));
    free(meta);
    cp_index_close(ix);
    free(c.centroids);
}

static void test_disk_full(void)
{
    char path[600];
    path_in(path, sizeof path, "full.db");
    cp_codec c;
    cp_error err = {0};
    CP_CHECK_OK(lt_create(path, &c, 15, &err), err);
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &ix, &err), err);
    if (!ix) return;
    CP_CHECK_OK(upsert_range(ix, &c, "f", 0, 100, 1, 0, NULL, &err), err);
    sqlite3 *db = cp_store_sqlite(cp_index_writer_store(ix));
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &q, NULL);
    sqlite3_step(q);
    long long pages = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA max_page_count = %lld", pages + 1);
    CP_CHECK(sqlite3_exec(db, pragma, NULL, NULL, NULL) == SQLITE_OK);
    CP_CHECK_INT(upsert_range(ix, &c, "f", 50, 2000, 2, 0, NULL, &err), CP_ENOSPC);
    CP_CHECK(strstr(err.message, "disk is full") != NULL);
    cp_index_stats s;
    CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
    CP_CHECK_INT(s.n_documents, 100);
    CP_CHECK(lt_content_matches(ix, &c, doc_id_of(ix, "f60"), 60, 1));
    check_against_reload(ix, path, &c);
    CP_CHECK(sqlite3_exec(db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL) == SQLITE_OK);
    CP_CHECK_OK(upsert_range(ix, &c, "f", 50, 200, 2, 0, NULL, &err), err);
    CP_CHECK(lt_content_matches(ix, &c, doc_id_of(ix, "f60"), 60, 2));
    check_against_reload(ix, path, &c);
    cp_index_close(ix);
    free(c.centroids);
}

static void test_second_writer(void)
{
    char path[600];
    path_in(path, sizeof path, "busy.db");
    cp_codec c;
    cp_error err = {0};
    CP_CHECK_OK(lt_create(path, &c, 16, &err), err);
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &ix, &err), err);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        cp_index *other = NULL;
        cp_error e = {0};
        cp_status st = cp_index_open(path, CP_OPEN_WRITE, &other, &e);
        int ok = st == CP_EBUSY && strstr(e.message, "open for writing by another process");
        cp_index_close(other);
        _exit(ok ? 0 : 1);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    CP_CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    cp_index_close(ix);
    free(c.centroids);
}

/* cp_index_create_like: an empty index with the source's codec, encoder and drift reference
 * (counts reset), no calibration; upserts into it compress exactly as into the source, so
 * the same documents score the same; an existing path is never replaced. */
static void test_create_like(void)
{
    char src[600], dst[600];
    path_in(src, sizeof src, "like-src.db");
    path_in(dst, sizeof dst, "like-dst.db");
    cp_codec c;
    cp_error err = {0};
    CP_CHECK_OK(lt_create(src, &c, 17, &err), err);
    cp_index *a = NULL, *b = NULL;
    CP_CHECK_OK(cp_index_open(src, CP_OPEN_WRITE, &a, &err), err);
    if (!a) return;
    cp_upsert_result r;
    CP_CHECK_OK(upsert_range(a, &c, "d", 0, 60, 1, 1, &r, &err), err); /* outliers: drift counts */
    CP_CHECK_OK(cp_index_calibrate(a, NULL, &err), err);
    CP_CHECK_OK(cp_index_create_like(dst, a, &err), err);
    CP_CHECK_INT(cp_index_create_like(dst, a, &err), CP_EEXISTS);
    CP_CHECK_INT(cp_index_create_like(src, a, &err), CP_EEXISTS);
    CP_CHECK_OK(cp_index_open(dst, CP_OPEN_WRITE, &b, &err), err);
    if (!b) {
        cp_index_close(a);
        free(c.centroids);
        return;
    }
    cp_index_stats sa, sb;
    CP_CHECK_OK(cp_index_stats_get(a, &sa, &err), err);
    CP_CHECK_OK(cp_index_stats_get(b, &sb, &err), err);
    CP_CHECK_INT(sb.n_documents, 0);
    CP_CHECK_INT(sb.n_tokens, 0);
    CP_CHECK_INT(sb.dim, sa.dim);
    CP_CHECK_INT(sb.nbits, sa.nbits);
    CP_CHECK_INT(sb.n_centroids, sa.n_centroids);
    CP_CHECK(!strcmp(sb.codec, sa.codec));
    float q[8 * LT_DIM];
    int nq = 0, n = -1;
    cp_hit hits[5];
    cp_search_params p;
    cp_search_params_init(&p, 5);
    query_of(&c, 3, 1, q, &nq);
    CP_CHECK_OK(cp_index_search(b, q, nq, c.dim, &p, hits, &n, NULL, &err), err);
    CP_CHECK_INT(n, 0);
    char *drift = cp_index_meta_get(b, "drift"), *src_drift = cp_index_meta_get(a, "drift");
    CP_CHECK(drift && strstr(drift, "\"added_tokens\": 0,") && strstr(drift, "p99_distance"));
    CP_CHECK(src_drift && !strstr(src_drift, "\"added_tokens\": 0,"));
    char *cal = cp_index_meta_get(b, "search_calibration"), *from = cp_index_meta_get(b, "created_from");
    CP_CHECK(cal == NULL);
    CP_CHECK(from && strstr(from, "like-src.db"));
    free(drift);
    free(src_drift);
    free(cal);
    free(from);
    CP_CHECK_OK(upsert_range(b, &c, "d", 0, 60, 1, 1, &r, &err), err);
    CP_CHECK(same_results(a, b, &c, 20, 5));
    cp_index_close(b);
    cp_index_close(a);
    CP_CHECK_INT(cp_index_check(dst, NULL, &err), CP_OK);
    free(c.centroids);
}

int main(void)
{
    g_dir = st_tempdir("test_live");
    test_semantics();
    test_ivf_paths();
    test_churn_memory();
    test_concurrency();
    test_drift();
    test_disk_full();
    test_second_writer();
    test_create_like();
    st_rm_rf(g_dir);
    free(g_dir);
    return CP_TEST_RESULT();
}
