/*
 * The engine calls the HTTP server is built on: exact MaxSim of float vectors
 * (cp_maxsim_tokens, against a plain double-precision reference, across the kernels'
 * 32-column query padding and 64-row document blocks, ties and empty documents), the
 * candidate set of a restricted search (cp_index_restrict: external ids, a filter, both,
 * unknown and duplicate ids) and batch resolution of hits to documents
 * (cp_index_hit_documents, including a hit whose document was deleted after the search).
 */
#include <string.h>

#include "cp_test.h"
#include "storage.h"
#include "storage_test_util.h"

#define N_DOCS 40
#define DIM 16
#define NBITS 2

/* Sum over query rows of the best dot product (double accumulation), its argmax (lowest on
 * ties) and that dot product. */
static double reference(const float *q, int nq, const float *d, int nd, int dim, int32_t *arg,
                        float *sim)
{
    double total = 0;
    for (int i = 0; i < nq; i++) {
        double best = -INFINITY;
        arg[i] = -1;
        for (int j = 0; j < nd; j++) {
            double dot = 0;
            for (int c = 0; c < dim; c++)
                dot += (double)q[i * dim + c] * d[j * dim + c];
            if (dot > best) best = dot, arg[i] = j;
        }
        sim[i] = arg[i] < 0 ? 0.0f : (float)best;
        total += sim[i];
    }
    return total;
}

static void test_maxsim(void)
{
    static const int nqs[] = {1, 5, 32, 33, 70}, nds[] = {0, 1, 63, 64, 65, 200}, dims[] = {3, 128};
    uint64_t s = 7;
    for (size_t a = 0; a < sizeof nqs / sizeof *nqs; a++)
        for (size_t b = 0; b < sizeof nds / sizeof *nds; b++)
            for (size_t c = 0; c < sizeof dims / sizeof *dims; c++) {
                int nq = nqs[a], nd = nds[b], dim = dims[c];
                float *q = malloc(sizeof(float) * (size_t)(nq * dim));
                float *d = malloc(sizeof(float) * (size_t)((nd ? nd : 1) * dim));
                int32_t *arg = malloc(sizeof(int32_t) * (size_t)nq),
                        *want_arg = malloc(sizeof(int32_t) * (size_t)nq);
                float *sim = malloc(sizeof(float) * (size_t)nq),
                      *want_sim = malloc(sizeof(float) * (size_t)nq);
                for (int i = 0; i < nq * dim; i++)
                    q[i] = st_randf(&s);
                for (int i = 0; i < nd * dim; i++)
                    d[i] = st_randf(&s);
                /* An exact copy of an earlier row: the earlier one must win every tie. */
                if (nd > 3)
                    memcpy(d + (size_t)(nd - 1) * dim, d + dim, sizeof(float) * (size_t)dim);
                double want = reference(q, nq, d, nd, dim, want_arg, want_sim);
                float got = NAN;
                cp_error err;
                CP_CHECK_OK(cp_maxsim_tokens(q, nq, nd ? d : NULL, nd, dim, &got, arg, sim, &err),
                            err);
                CP_CHECK_NEAR(got, want, 1e-4 * (1 + fabs(want)));
                CP_CHECK_NEAR(cp_maxsim(q, nq, d, nd, dim), got, 0);
                for (int i = 0; i < nq; i++) {
                    CP_CHECK_NEAR(sim[i], want_sim[i], 1e-4 * (1 + fabsf(want_sim[i])));
                    /* Equal up to rounding can pick another row: its dot product must tie. */
                    if (arg[i] != want_arg[i]) CP_CHECK_NEAR(want_sim[i], sim[i], 1e-5);
                    CP_CHECK(arg[i] != nd - 1 || nd <= 3 || want_arg[i] == nd - 1);
                }
                free(q);
                free(d);
                free(arg);
                free(want_arg);
                free(sim);
                free(want_sim);
            }
    float score;
    cp_error err;
    CP_CHECK_INT(cp_maxsim_tokens(NULL, 2, NULL, 0, 4, &score, NULL, NULL, &err), CP_EINVAL);
    CP_CHECK(isnan(cp_maxsim(NULL, 1, NULL, 1, 0)));
}

/* An index of N_DOCS documents "d0" ... with metadata {"g": i % 4}. */
static void make_index(const char *path)
{
    cp_codec c;
    st_make_codec(&c, DIM, NBITS, 16, 3);
    static int32_t doclens[N_DOCS];
    static char ids[N_DOCS][16], texts[N_DOCS][16], metas[N_DOCS][16];
    cp_document docs[N_DOCS];
    int64_t total = 0;
    for (int i = 0; i < N_DOCS; i++) {
        doclens[i] = 1 + i % 5;
        total += doclens[i];
        snprintf(ids[i], sizeof ids[i], "d%d", i);
        snprintf(texts[i], sizeof texts[i], "text %d", i);
        snprintf(metas[i], sizeof metas[i], "{\"g\": %d}", i % 4);
        docs[i] = (cp_document){
            .id = ids[i], .text = i == 3 ? NULL : texts[i], .metadata_json = metas[i]};
    }
    int rb = cp_residual_bytes(DIM, NBITS);
    int32_t *codes = calloc((size_t)total, sizeof *codes);
    uint8_t *res = calloc((size_t)(total * rb), 1);
    cp_error err;
    cp_store *st = NULL;
    CP_CHECK_OK(cp_store_create(path, &c, &st, &err), err);
    CP_CHECK_OK(cp_store_begin(st, &err), err);
    cp_segment_input seg = {N_DOCS, docs, doclens, total, codes, res};
    CP_CHECK_OK(cp_store_append_segment(st, &seg, NULL, &err), err);
    CP_CHECK_OK(cp_store_commit(st, &err), err);
    cp_store_close(st);
    cp_codec_free_arrays(&c);
    free(codes);
    free(res);
}

static void check_ids(const int64_t *got, size_t n, const int64_t *want, size_t n_want)
{
    CP_CHECK_INT(n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        CP_CHECK_INT(got[i], want[i]);
}

static void test_restrict(cp_index *ix)
{
    cp_error err;
    int64_t *ids = NULL;
    size_t n = 0;
    const char *listed[] = {"d9", "nope", "d2", "d9", "d12", "d5"};
    CP_CHECK_OK(cp_index_restrict(ix, NULL, listed, 6, true, &ids, &n, &err), err);
    check_ids(ids, n, (const int64_t[]){2, 5, 9, 12}, 4);
    free(ids);
    CP_CHECK_OK(cp_index_restrict(ix, "{\"g\": 1}", listed, 6, true, &ids, &n, &err), err);
    check_ids(ids, n, (const int64_t[]){5, 9}, 2);
    free(ids);
    CP_CHECK_OK(cp_index_restrict(ix, "{\"g\": 1}", NULL, 0, false, &ids, &n, &err), err);
    CP_CHECK_INT(n, N_DOCS / 4);
    free(ids);
    /* An empty list matches nothing, with or without a filter. */
    CP_CHECK_OK(cp_index_restrict(ix, NULL, NULL, 0, true, &ids, &n, &err), err);
    CP_CHECK_INT(n, 0);
    free(ids);
    CP_CHECK_OK(cp_index_restrict(ix, "{\"g\": 1}", NULL, 0, true, &ids, &n, &err), err);
    CP_CHECK_INT(n, 0);
    free(ids);
    CP_CHECK_INT(cp_index_restrict(ix, "{\"g\": {\"$bogus\": 1}}", listed, 6, true, &ids, &n, &err),
                 CP_EINVAL);
    CP_CHECK(ids == NULL && n == 0);
}

static void test_hit_documents(cp_index *ix)
{
    cp_error err;
    cp_hit hits[] = {{7, 1.5f}, {3, 1.0f}, {N_DOCS + 5, 0.5f}, {11, 0.25f}};
    cp_document_info docs[4];
    CP_CHECK_OK(cp_index_hit_documents(ix, hits, 4, CP_DOC_TEXT | CP_DOC_METADATA, docs, &err),
                err);
    CP_CHECK(docs[0].external_id && !strcmp(docs[0].external_id, "d7") && docs[0].doc_id == 7);
    CP_CHECK(docs[0].text && !strcmp(docs[0].text, "text 7"));
    CP_CHECK(docs[0].metadata_json && strstr(docs[0].metadata_json, "3"));
    CP_CHECK_INT(docs[0].n_tokens, 1 + 7 % 5);
    CP_CHECK(docs[1].external_id && !strcmp(docs[1].external_id, "d3") && !docs[1].text);
    CP_CHECK(!docs[2].external_id && docs[2].doc_id == -1); /* no such document */
    CP_CHECK(docs[3].external_id && !strcmp(docs[3].external_id, "d11"));
    for (int i = 0; i < 4; i++)
        cp_document_info_free(&docs[i]);

    /* Ids only: no text or metadata read. */
    CP_CHECK_OK(cp_index_hit_documents(ix, hits, 1, 0, docs, &err), err);
    CP_CHECK(docs[0].external_id && !docs[0].text && !docs[0].metadata_json);
    cp_document_info_free(&docs[0]);

    /* A document deleted after the search: its hit comes back empty, the others intact. */
    const char *gone[] = {"d7"};
    size_t n_deleted = 0;
    CP_CHECK_OK(cp_index_delete(ix, gone, 1, &n_deleted, &err), err);
    CP_CHECK_INT(n_deleted, 1);
    CP_CHECK_OK(cp_index_hit_documents(ix, hits, 4, CP_DOC_TEXT, docs, &err), err);
    CP_CHECK(!docs[0].external_id && docs[0].doc_id == -1);
    CP_CHECK(docs[3].text && !strcmp(docs[3].text, "text 11"));
    for (int i = 0; i < 4; i++)
        cp_document_info_free(&docs[i]);
    int64_t *ids;
    size_t n;
    CP_CHECK_OK(cp_index_restrict(ix, NULL, gone, 1, true, &ids, &n, &err), err);
    CP_CHECK_INT(n, 0);
    free(ids);
}

int main(void)
{
    test_maxsim();
    char *dir = st_tempdir("server_calls");
    char path[512];
    snprintf(path, sizeof path, "%s/ix.db", dir);
    make_index(path);
    cp_index *ix = NULL;
    cp_error err;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &ix, &err), err);
    if (ix) {
        test_restrict(ix);
        test_hit_documents(ix);
        cp_index_close(ix);
    }
    st_rm_rf(dir);
    free(dir);
    return cp_test_failures ? 1 : 0;
}
