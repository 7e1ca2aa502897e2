/*
 * bench_pool: what token pooling (index/pool.c) keeps of exact MaxSim rankings, per pooling
 * factor and linkage, side by side in one run (issue 13 §2, docs/pooling.md).
 *
 * Input: token embeddings EMB.npy [tokens, dim] and DOCLENS.npy [docs] (e.g. `colplaid index
 * export` of the imported ColBERTv2 Miyazaki index; bench/run_pool_bench.sh does that).
 * Every document is pooled with each factor and linkage; pseudo-queries are then ranked by
 * exact MaxSim over the unpooled and over each pooled collection, and the pooled top-k is
 * compared with the unpooled one. Two kinds of pseudo-query:
 *   passage  the first --qlen tokens of a passage, ranking all the other passages (a
 *            "related passage" search; the passage itself is left out);
 *   span     --qlen consecutive tokens of a random passage with Gaussian noise (per-token
 *            cosine about 0.8 to the original), ranking all passages: is the source first?
 * Queries are never pooled. Printed per setting: the token share kept, the mean top-k overlap with
 * the unpooled ranking (|pooled top-k ∩ unpooled top-k| / k) for k = 1, 10, and the span queries'
 * share whose source ranks first; and the pooling time (CPU ns per input token, one thread).
 *
 * usage: bench_pool --emb EMB.npy --doclens DOCLENS.npy [--factors 2,3,4]
 *                   [--queries 500] [--qlen 32] [--seed 1]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CP_TEST_RNG_SEED 1
#include "cp_test_rng.h" /* the tests' deterministic data, same generator */
#include "colplaid/npy.h"
#include "pool.h"

typedef struct coll {
    int64_t n_docs, n_tok;
    int dim;
    float *x;         /* n_tok x dim, unit rows */
    int64_t *doc_off; /* n_docs + 1 */
} coll;

/* CPU time of this thread: the machine is shared, so wall time would measure the others. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int load(const char *emb, const char *lens, coll *c)
{
    cp_npy e, l;
    cp_error err = {0};
    if (cp_npy_open(emb, &e, &err) || cp_npy_open(lens, &l, &err)) {
        fprintf(stderr, "bench_pool: %s\n", err.message);
        return 1;
    }
    c->n_tok = e.shape[0];
    c->dim = (int)e.shape[1];
    c->n_docs = l.shape[0];
    c->x = malloc((size_t)c->n_tok * c->dim * sizeof *c->x);
    c->doc_off = malloc((size_t)(c->n_docs + 1) * sizeof *c->doc_off);
    cp_npy_floats(&e, 0, c->n_tok * c->dim, c->x);
    c->doc_off[0] = 0;
    for (int64_t d = 0; d < c->n_docs; d++)
        c->doc_off[d + 1] = c->doc_off[d] + cp_npy_int_at(&l, d);
    cp_npy_close(&e);
    cp_npy_close(&l);
    if (c->doc_off[c->n_docs] != c->n_tok) {
        fprintf(stderr, "bench_pool: doclens add up to %lld, not %lld\n",
                (long long)c->doc_off[c->n_docs], (long long)c->n_tok);
        return 1;
    }
    for (int64_t t = 0; t < c->n_tok; t++)
        normalise(c->x + t * c->dim, c->dim);
    return 0;
}

/* Pool every document of src into dst; returns the seconds spent pooling. */
static double pool_all(const coll *src, int factor, cp_pool_linkage linkage, coll *dst)
{
    cp_pool_ws ws = {0};
    cp_error err = {0};
    dst->dim = src->dim;
    dst->n_docs = src->n_docs;
    dst->x = malloc((size_t)src->n_tok * src->dim * sizeof *dst->x);
    dst->doc_off = malloc((size_t)(src->n_docs + 1) * sizeof *dst->doc_off);
    dst->doc_off[0] = 0;
    double t0 = now();
    for (int64_t d = 0; d < src->n_docs; d++) {
        int32_t n = (int32_t)(src->doc_off[d + 1] - src->doc_off[d]), m = 0;
        float *out = dst->x + dst->doc_off[d] * src->dim;
        memcpy(out, src->x + src->doc_off[d] * src->dim, (size_t)n * src->dim * sizeof *out);
        if (cp_pool_document(&ws, out, n, src->dim, factor, linkage, &m, &err)) {
            fprintf(stderr, "bench_pool: %s\n", err.message);
            exit(1);
        }
        dst->doc_off[d + 1] = dst->doc_off[d] + m;
    }
    double t = now() - t0;
    dst->n_tok = dst->doc_off[dst->n_docs];
    cp_pool_ws_free(&ws);
    return t;
}

/* Exact MaxSim of q (nq x dim) against every document; scores[d]. */
static void maxsim_all(const coll *c, const float *q, int nq, float *sim, float *scores)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->n_tok, nq, c->dim, 1.0f, c->x,
                c->dim, q, c->dim, 0.0f, sim, nq);
    for (int64_t d = 0; d < c->n_docs; d++) {
        double s = 0;
        for (int i = 0; i < nq; i++) {
            float best = -INFINITY;
            for (int64_t t = c->doc_off[d]; t < c->doc_off[d + 1]; t++)
                if (sim[t * nq + i] > best) best = sim[t * nq + i];
            s += best;
        }
        scores[d] = (float)s;
    }
}

/* The k best documents (ties: lower id), excluding skip. */
static void topk(const float *scores, int64_t n, int64_t skip, int k, int64_t *out)
{
    for (int j = 0; j < k; j++)
        out[j] = -1;
    for (int64_t d = 0; d < n; d++) {
        if (d == skip) continue;
        int j = k;
        while (j > 0 && (out[j - 1] < 0 || scores[d] > scores[out[j - 1]]))
            j--;
        if (j == k) continue;
        memmove(out + j + 1, out + j, (size_t)(k - j - 1) * sizeof *out);
        out[j] = d;
    }
}

static double overlap(const int64_t *a, const int64_t *b, int k)
{
    int same = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            same += a[i] >= 0 && a[i] == b[j];
    return (double)same / k;
}

enum { K = 10 };

typedef struct query {
    float *q;
    int nq;
    int64_t source, skip;
} query;

int main(int argc, char **argv)
{
    const char *emb = NULL, *lens = NULL, *factors = "2,3,4";
    int n_queries = 500, qlen = 32;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--emb"))
            emb = argv[i + 1];
        else if (!strcmp(argv[i], "--doclens"))
            lens = argv[i + 1];
        else if (!strcmp(argv[i], "--factors"))
            factors = argv[i + 1];
        else if (!strcmp(argv[i], "--queries"))
            n_queries = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--qlen"))
            qlen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            rng_state = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "bench_pool: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!emb || !lens || n_queries < 1 || qlen < 1) {
        fprintf(stderr, "usage: bench_pool --emb EMB.npy --doclens DOCLENS.npy [--factors 2,3,4] "
                        "[--queries 500] [--qlen 32] [--seed 1]\n");
        return 2;
    }
    coll base;
    if (load(emb, lens, &base)) return 1;
    int dim = base.dim;
    printf("%lld documents, %lld tokens (%.1f per document), dim %d; pseudo-queries of %d "
           "tokens: every passage's head, %d noisy spans\n",
           (long long)base.n_docs, (long long)base.n_tok, (double)base.n_tok / base.n_docs, dim,
           qlen, n_queries);
    /* Pseudo-queries: the head of every passage, then n_queries noisy spans. */
    int n_pass = (int)base.n_docs, n_all = n_pass + n_queries;
    query *qs = calloc((size_t)n_all, sizeof *qs);
    for (int i = 0; i < n_all; i++) {
        query *q = &qs[i];
        int64_t d = i < n_pass ? i : (int64_t)(urand() * base.n_docs);
        int64_t len = base.doc_off[d + 1] - base.doc_off[d];
        q->nq = (int)(len < qlen ? len : qlen);
        int64_t start = i < n_pass ? 0 : (int64_t)(urand() * (double)(len - q->nq + 1));
        q->q = malloc((size_t)q->nq * dim * sizeof *q->q);
        memcpy(q->q, base.x + (base.doc_off[d] + start) * dim, (size_t)q->nq * dim * sizeof(float));
        q->source = d;
        q->skip = i < n_pass ? d : -1;
        if (i >= n_pass)
            for (int t = 0; t < q->nq; t++) {
                float *v = q->q + t * dim;
                for (int j = 0; j < dim; j++)
                    v[j] += 0.75f * grand() / sqrtf((float)dim);
                normalise(v, dim);
            }
    }
    float *sim = malloc((size_t)base.n_tok * qlen * sizeof *sim);
    float *scores = malloc((size_t)base.n_docs * sizeof *scores);
    int64_t(*ref)[K] = malloc((size_t)n_all * sizeof *ref);
    int ref_first = 0;
    for (int i = 0; i < n_all; i++) {
        maxsim_all(&base, qs[i].q, qs[i].nq, sim, scores);
        topk(scores, base.n_docs, qs[i].skip, K, ref[i]);
        if (i >= n_pass) ref_first += ref[i][0] == qs[i].source;
    }
    printf("\n%-8s %-8s %7s %10s %10s %10s %10s %12s\n", "factor", "linkage", "tokens", "passage@1",
           "passage@10", "span@10", "span-src@1", "ns/token");
    printf("%-8s %-8s %6.1f%% %10.3f %10.3f %10.3f %10.3f %12s\n", "1", "-", 100.0, 1.0, 1.0, 1.0,
           (double)ref_first / n_queries, "-");
    for (const char *f = factors; *f;) {
        int factor = atoi(f);
        for (int li = 0; li < 2 && factor > 1; li++) {
            cp_pool_linkage linkage = li ? CP_POOL_AVERAGE : CP_POOL_WARD;
            coll p;
            double secs = pool_all(&base, factor, linkage, &p);
            double o1 = 0, o10 = 0, s10 = 0;
            int first = 0;
            for (int i = 0; i < n_all; i++) {
                int64_t top[K];
                maxsim_all(&p, qs[i].q, qs[i].nq, sim, scores);
                topk(scores, p.n_docs, qs[i].skip, K, top);
                if (i < n_pass) {
                    o1 += overlap(top, ref[i], 1);
                    o10 += overlap(top, ref[i], K);
                } else {
                    s10 += overlap(top, ref[i], K);
                    first += top[0] == qs[i].source;
                }
            }
            printf("%-8d %-8s %6.1f%% %10.3f %10.3f %10.3f %10.3f %12.0f\n", factor,
                   cp_pool_linkage_name(linkage), 100.0 * p.n_tok / base.n_tok, o1 / n_pass,
                   o10 / n_pass, s10 / n_queries, (double)first / n_queries,
                   1e9 * secs / base.n_tok);
            free(p.x);
            free(p.doc_off);
        }
        while (*f && *f != ',')
            f++;
        if (*f == ',') f++;
    }
    for (int i = 0; i < n_all; i++)
        free(qs[i].q);
    free(qs);
    free(sim);
    free(scores);
    free(ref);
    free(base.x);
    free(base.doc_off);
    return 0;
}
