/*
 * Search through the public API on a real index file built with cp_index_build:
 * cp_index_search equals cp_snapshot_search on the index's snapshot, a wrong query
 * dimension fails with CP_EDIM naming both numbers, cp_index_search_batch with several
 * threads returns exactly what one-at-a-time searches return, and a bad query in a batch
 * fails the batch with a message naming the query.
 */
#include <string.h>
#include <unistd.h>

#include "cp_test.h"
#include "index_handle.h"
#include "search.h"
#include "snapshot.h"
#include "search_test_util.h"

enum { DIM = 64, DOCS = 150, MAXLEN = 20 };

/* Field by field: cp_hit has padding bytes that memcmp would compare. */
static int same_hits(const cp_hit *a, const cp_hit *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i].doc_id != b[i].doc_id || a[i].score != b[i].score) return 0;
    return 1;
}

typedef struct mem_source {
    float *emb;     /* all tokens */
    int32_t *lens;
    int64_t *off;
    int64_t next;
    char id[32];
} mem_source;

static int64_t src_count(void *ctx)
{
    (void)ctx;
    return DOCS;
}

static int src_dim(void *ctx)
{
    (void)ctx;
    return DIM;
}

static cp_status src_rewind(void *ctx, cp_error *err)
{
    (void)err;
    ((mem_source *)ctx)->next = 0;
    return CP_OK;
}

static cp_status src_next(void *ctx, bool need, cp_document *doc, bool *has, cp_error *err)
{
    (void)need, (void)err;
    mem_source *m = ctx;
    *has = m->next < DOCS;
    if (!*has) return CP_OK;
    memset(doc, 0, sizeof *doc);
    snprintf(m->id, sizeof m->id, "doc-%lld", (long long)m->next);
    doc->id = m->id;
    doc->embeddings = m->emb + m->off[m->next] * DIM;
    doc->n_tokens = m->lens[m->next];
    m->next++;
    return CP_OK;
}

static const char *src_name(void *ctx)
{
    (void)ctx;
    return "test memory source";
}

static void src_close(void *ctx)
{
    (void)ctx;
}

static cp_index *build_index(char *path, size_t path_size)
{
    mem_source m = {0};
    m.lens = malloc(sizeof(int32_t) * DOCS);
    m.off = malloc(sizeof(int64_t) * (DOCS + 1));
    m.off[0] = 0;
    for (int d = 0; d < DOCS; d++) {
        m.lens[d] = 1 + tu_int(MAXLEN);
        m.off[d + 1] = m.off[d] + m.lens[d];
    }
    m.emb = malloc(sizeof(float) * (size_t)(m.off[DOCS] * DIM));
    tu_fill(m.emb, (size_t)(m.off[DOCS] * DIM), 0);
    for (int64_t t = 0; t < m.off[DOCS]; t++) tu_normalise(m.emb + t * DIM, DIM);
    cp_doc_source src = {&m, src_count, src_dim, src_rewind, src_next, src_name, src_close};
    cp_build_options opts;
    cp_build_options_init(&opts);
    opts.n_centroids = 32;
    opts.threads = 1;
    snprintf(path, path_size, "/tmp/cp_test_search_index_%d.db", (int)getpid());
    cp_error err = {0};
    cp_index *index = NULL;
    cp_status st = cp_index_build(path, &src, &opts, &err);
    CP_CHECK_OK(st, err);
    if (st == CP_OK) {
        st = cp_index_open(path, CP_OPEN_READONLY, &index, &err);
        CP_CHECK_OK(st, err);
    }
    free(m.emb), free(m.lens), free(m.off);
    return index;
}

static void remove_index(const char *path)
{
    char p[300];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

int main(void)
{
    char path[256];
    cp_index *index = build_index(path, sizeof path);
    if (!index) {
        remove_index(path);
        return CP_TEST_RESULT();
    }
    enum { NQ = 6, K = 8 };
    float *q = malloc(sizeof(float) * NQ * 32 * DIM);
    tu_fill(q, NQ * 32 * DIM, 0);
    for (int i = 0; i < NQ * 32; i++) tu_normalise(q + i * DIM, DIM);
    cp_search_params p;
    cp_search_params_init(&p, K);
    cp_error err = {0};
    cp_hit single[NQ][K], via_snap[K];
    int n_single[NQ], n_snap;
    cp_snapshot *snap = cp_index_acquire_snapshot(index);
    for (int i = 0; i < NQ; i++) {
        CP_CHECK_OK(cp_index_search(index, q + i * 32 * DIM, 32, DIM, &p, single[i], &n_single[i], NULL, &err), err);
        CP_CHECK_OK(cp_snapshot_search(snap, q + i * 32 * DIM, 32, &p, via_snap, &n_snap, NULL, &err), err);
        CP_CHECK_INT(n_single[i], n_snap);
        CP_CHECK(n_single[i] > 0);
        CP_CHECK(same_hits(single[i], via_snap, n_snap));
    }
    cp_snapshot_release(snap);
    /* the wrong dimension names both numbers */
    int n = 0;
    CP_CHECK_INT(cp_index_search(index, q, 32, DIM + 8, &p, via_snap, &n, NULL, &err), CP_EDIM);
    CP_CHECK(strstr(err.message, "72") && strstr(err.message, "64"));
    /* batch, several threads == singles */
    const float *qs[NQ];
    int nqs[NQ], n_batch[NQ];
    cp_hit batch[NQ * K];
    for (int i = 0; i < NQ; i++) qs[i] = q + i * 32 * DIM, nqs[i] = 32;
    for (int threads = 1; threads <= 3; threads++) {
        memset(batch, 0, sizeof batch);
        CP_CHECK_OK(cp_index_search_batch(index, qs, nqs, NQ, DIM, &p, threads, batch, n_batch, &err), err);
        for (int i = 0; i < NQ; i++) {
            CP_CHECK_INT(n_batch[i], n_single[i]);
            CP_CHECK(same_hits(batch + i * K, single[i], n_single[i]));
        }
    }
    CP_CHECK_INT(cp_index_search_batch(index, qs, nqs, NQ, 32, &p, 2, batch, n_batch, &err), CP_EDIM);
    q[3 * 32 * DIM + 5] = NAN; /* query 3 is bad: the batch fails naming it */
    CP_CHECK_INT(cp_index_search_batch(index, qs, nqs, NQ, DIM, &p, 2, batch, n_batch, &err), CP_EINVAL);
    CP_CHECK(strstr(err.message, "query 3") != NULL);
    /* external ids of hits are the source's ids */
    char *ext = NULL;
    CP_CHECK_OK(cp_index_external_id(index, single[0][0].doc_id, &ext, &err), err);
    CP_CHECK(ext && !strncmp(ext, "doc-", 4));
    free(ext);
    free(q);
    cp_index_close(index);
    remove_index(path);
    return CP_TEST_RESULT();
}
