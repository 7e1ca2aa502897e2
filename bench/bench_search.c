/*
 * bench_search: PLAID search quality and speed against exhaustive MaxSim, side by side in
 * one run, single-threaded.
 *
 *   exact      the engine's --exact mode over the index (decompress every document): the
 *              ground truth that PLAID's recall is measured against;
 *   plaid@10   PLAID defaults for k = 10 (ncells 1, t_cs 0.5, ndocs 256);
 *   plaid@100  PLAID defaults for k = 100 (ncells 2, t_cs 0.45, ndocs 1024);
 *   fp32       exhaustive MaxSim over the ORIGINAL float vectors held in memory, with the
 *              same SIMD kernels (gemm + column max), i.e. the brute-force baseline.
 * Prints recall@10 / recall@100 of PLAID against exact, mean / p50 / p99 ms, per-stage
 * means, the speed ratio against fp32 brute force, peak RSS and index bytes per token, and
 * writes a JSON record (--json). Times are thread CPU times (see now_ms); the per-stage
 * breakdown comes from the engine's own wall-clock stage timings.
 *
 * usage: bench_search --index IDX.db --queries Q.npy --emb EMB.npy --doclens DOCLENS.npy
 *                     [--n 100] [--n-exhaustive 20] [--json OUT.json] [--label NAME]
 *                     [--quick 1]   (exact + the settings table only, no fp32 copy)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "colplaid/index.h"
#include "index_handle.h"
#include "kernels.h"
#include "search.h"
#include "snapshot.h"
#include "colplaid/npy.h"

typedef struct bench_opts {
    const char *index, *queries, *emb, *doclens, *json, *label;
    int n, n_exhaustive, quick;
} bench_opts;

typedef struct series {
    double *ms;
    int n;
    cp_search_timing stage_sum;
} series;

typedef struct corpus32 { /* the original vectors, fp32, by internal doc id */
    float *vec;
    int64_t *off; /* n_docs + 1 */
    int64_t n_docs;
    int dim;
} corpus32;

/* Benchmark times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time: on a
 * shared, oversubscribed machine wall time mostly measures the other processes. Everything
 * runs on the calling thread, so CPU time is the search cost. BENCH_WALL=1 switches to
 * wall-clock time. */
static double now_ms(void)
{
    static int wall = -1;
    if (wall < 0) wall = getenv("BENCH_WALL") && atoi(getenv("BENCH_WALL"));
    struct timespec ts;
    clock_gettime(wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long rss_now_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static int parse(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){0};
    o->n = 100, o->n_exhaustive = 20, o->label = "search";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--index")) o->index = v;
        else if (!strcmp(a, "--queries")) o->queries = v;
        else if (!strcmp(a, "--emb")) o->emb = v;
        else if (!strcmp(a, "--doclens")) o->doclens = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else if (!strcmp(a, "--label")) o->label = v;
        else if (!strcmp(a, "--n")) o->n = atoi(v);
        else if (!strcmp(a, "--n-exhaustive")) o->n_exhaustive = atoi(v);
        else if (!strcmp(a, "--quick")) o->quick = atoi(v);
        else return 0;
    }
    return o->index && o->queries && o->emb && o->doclens && o->n > 0 && o->n_exhaustive >= 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void stats(const series *s, double *mean, double *p50, double *p99)
{
    double *v = malloc(sizeof(double) * (size_t)(s->n ? s->n : 1)), sum = 0;
    memcpy(v, s->ms, sizeof(double) * (size_t)s->n);
    qsort(v, (size_t)s->n, sizeof *v, cmp_double);
    for (int i = 0; i < s->n; i++) sum += v[i];
    *mean = s->n ? sum / s->n : 0;
    *p50 = s->n ? v[(s->n - 1) / 2] : 0;
    *p99 = s->n ? v[(int)ceil(0.99 * s->n) - 1] : 0;
    free(v);
}

/* Run one configuration over queries [0, n), keeping hits (n x k) and timings. */
static int run_series(const cp_snapshot *snap, const float *q, int nq, int dim, int n,
                      const cp_search_params *p, cp_hit *hits, series *s)
{
    s->ms = calloc((size_t)n, sizeof(double));
    s->n = n;
    memset(&s->stage_sum, 0, sizeof s->stage_sum);
    for (int i = 0; i < n; i++) {
        cp_search_timing tm;
        int n_hits;
        cp_error err = {0};
        double t0 = now_ms();
        if (cp_snapshot_search(snap, q + (size_t)i * nq * dim, nq, p, hits + (size_t)i * p->k,
                               &n_hits, &tm, &err) != CP_OK) {
            fprintf(stderr, "bench_search: %s\n", err.message);
            return 0;
        }
        s->ms[i] = now_ms() - t0;
        s->stage_sum.centroid_scores += tm.centroid_scores;
        s->stage_sum.candidates += tm.candidates;
        s->stage_sum.stage2 += tm.stage2;
        s->stage_sum.stage3 += tm.stage3;
        s->stage_sum.stage4 += tm.stage4;
        s->stage_sum.n_candidates += tm.n_candidates;
    }
    return 1;
}

/* |top-k of a  ∩  top-k of truth| / k, averaged over queries. */
static double recall(const cp_hit *a, int ka, const cp_hit *truth, int kt, int k, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int x = 0; x < k; x++)
            for (int y = 0; y < k; y++)
                found += a[(size_t)i * ka + x].doc_id == truth[(size_t)i * kt + y].doc_id;
        sum += (double)found / k;
    }
    return sum / n;
}

static int load_corpus32(const bench_opts *o, const cp_snapshot *snap, corpus32 *c)
{
    cp_npy emb, lens;
    cp_error err = {0};
    if (cp_npy_open(o->emb, &emb, &err) != CP_OK || cp_npy_open(o->doclens, &lens, &err) != CP_OK) {
        fprintf(stderr, "bench_search: %s\n", err.message);
        return 0;
    }
    c->dim = (int)emb.shape[1];
    c->n_docs = lens.count;
    c->off = malloc(sizeof(int64_t) * (size_t)(c->n_docs + 1));
    c->vec = malloc(sizeof(float) * (size_t)emb.count);
    if (!c->off || !c->vec || c->dim != snap->codec.dim || c->n_docs != snap->n_live) {
        fprintf(stderr, "bench_search: %s / %s do not match the index\n", o->emb, o->doclens);
        return 0;
    }
    c->off[0] = 0;
    for (int64_t d = 0; d < c->n_docs; d++) c->off[d + 1] = c->off[d] + cp_npy_int_at(&lens, d);
    cp_npy_floats(&emb, 0, emb.count, c->vec);
    cp_npy_close(&emb);
    cp_npy_close(&lens);
    return 1;
}

/* Brute-force MaxSim over fp32 vectors with the engine's SIMD kernels; top k. */
static void exhaustive_fp32(const corpus32 *c, const float *q, int nq, int k, cp_hit *out)
{
    const cp_kernels *kn = cp_kernels_get();
    int d = c->dim, nqp = cp_kernels_nqp(nq);
    float *qt = calloc((size_t)d * nqp, sizeof(float));
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < d; j++) qt[(size_t)j * nqp + i] = q[(size_t)i * d + j];
    enum { ROWS = 32 };
    float *sc = malloc(sizeof(float) * ROWS * (size_t)nqp), *colmax = malloc(sizeof(float) * (size_t)nqp);
    float ones[ROWS];
    for (int r = 0; r < ROWS; r++) ones[r] = 1.0f;
    int have = 0;
    for (int64_t doc = 0; doc < c->n_docs; doc++) {
        for (int i = 0; i < nqp; i++) colmax[i] = -INFINITY;
        for (int64_t t = c->off[doc]; t < c->off[doc + 1]; t += ROWS) {
            int n = c->off[doc + 1] - t < ROWS ? (int)(c->off[doc + 1] - t) : ROWS;
            kn->gemm(c->vec + t * d, n, d, qt, nqp, sc);
            kn->colmax_scaled(sc, n, nqp, ones, colmax);
        }
        float s = 0;
        for (int i = 0; i < nq; i++) s += colmax[i];
        /* insertion into the running top k (best first, ties by lower id) */
        if (have < k || s > out[k - 1].score) {
            int at = have < k ? have++ : k - 1;
            while (at > 0 && s > out[at - 1].score) {
                out[at] = out[at - 1];
                at--;
            }
            out[at].doc_id = doc;
            out[at].score = s;
        }
    }
    free(qt), free(sc), free(colmax);
}

/* Stage 4 explicit vs implicit (WARP-style) on the same searches: mean time of the whole
 * search with each (stages 1-3 are identical, so the difference is stage 4), and the
 * largest score difference between them. */
typedef struct implicit_result {
    double explicit_ms, implicit_ms, max_diff;
} implicit_result;

static void stage4_modes(const cp_snapshot *snap, const float *q, int nq, int dim, int n, int k,
                         implicit_result *res)
{
    memset(res, 0, sizeof *res);
    cp_search_params p;
    cp_search_params_init(&p, k);
    cp_hit *h1 = malloc(sizeof(cp_hit) * (size_t)k), *h2 = malloc(sizeof(cp_hit) * (size_t)k);
    for (int i = 0; i < n; i++) {
        const float *qq = q + (size_t)i * nq * dim;
        int n1, n2;
        double t0 = now_ms();
        if (cp_snapshot_search_traced(snap, qq, nq, &p, CP_STAGE4_EXPLICIT, h1, &n1, NULL, NULL, NULL) != CP_OK)
            break;
        double t1 = now_ms();
        if (cp_snapshot_search_traced(snap, qq, nq, &p, CP_STAGE4_IMPLICIT, h2, &n2, NULL, NULL, NULL) != CP_OK)
            break;
        double t2 = now_ms();
        res->explicit_ms += (t1 - t0) / n;
        res->implicit_ms += (t2 - t1) / n;
        for (int h = 0; h < n1 && h < n2; h++)
            if (fabs(h1[h].score - h2[h].score) > res->max_diff) res->max_diff = fabs(h1[h].score - h2[h].score);
    }
    free(h1), free(h2);
}

/* Stage-1 union by sort + unique (the alternative to the engine's bitmap): time for the
 * same cells, from the per-token top-ncells selection to the sorted candidate list. */
static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static double sort_unique_ms(const cp_snapshot *snap, const float *q, int nq, int dim, int n, int ncells,
                             double *n_cands)
{
    const cp_kernels *kn = cp_kernels_get();
    int64_t K = snap->codec.n_centroids;
    int nqp = cp_kernels_nqp(nq);
    float *qt = calloc((size_t)dim * nqp, sizeof(float)), *S = malloc(sizeof(float) * (size_t)K * nqp);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)nq * ncells);
    float *val = malloc(sizeof(float) * (size_t)nq * ncells);
    int32_t *buf = NULL;
    size_t cap = 0;
    double total = 0;
    *n_cands = 0;
    for (int qi = 0; qi < n; qi++) {
        for (int i = 0; i < nq; i++)
            for (int j = 0; j < dim; j++) qt[(size_t)j * nqp + i] = q[((size_t)qi * nq + i) * dim + j];
        kn->gemm(snap->codec.centroids, K, dim, qt, nqp, S);
        double t0 = now_ms();
        kn->topn_cols(S, K, nqp, nq, ncells, idx, val);
        qsort(idx, (size_t)nq * ncells, sizeof(int32_t), cmp_i32);
        size_t m = 0;
        for (int c = 0; c < nq * ncells; c++) {
            if (c && idx[c] == idx[c - 1]) continue;
            int64_t len = snap->ivf_offsets[idx[c] + 1] - snap->ivf_offsets[idx[c]];
            if (m + (size_t)len > cap) {
                cap = (m + (size_t)len) * 2;
                buf = realloc(buf, cap * sizeof(int32_t));
            }
            memcpy(buf + m, snap->ivf_docs + snap->ivf_offsets[idx[c]], (size_t)len * sizeof(int32_t));
            m += (size_t)len;
        }
        qsort(buf, m, sizeof(int32_t), cmp_i32);
        size_t u = 0;
        for (size_t i = 0; i < m; i++)
            if (!u || buf[i] != buf[u - 1]) buf[u++] = buf[i];
        total += now_ms() - t0;
        *n_cands += (double)u / n;
    }
    free(qt), free(S), free(idx), free(val), free(buf);
    return total / n;
}

typedef struct json_row {
    int k;
    float recall_target; /* 0: PLAID's fixed defaults */
    double mean_ms, p50_ms, recall_vs_exact, recall_vs_fp32, speedup_vs_exact;
} json_row;
static json_row json_series[8];
static int json_series_n;

int main(int argc, char **argv)
{
    bench_opts o;
    if (!parse(argc, argv, &o)) {
        fprintf(stderr, "usage: bench_search --index IDX.db --queries Q.npy --emb EMB.npy "
                        "--doclens DOCLENS.npy [--n 100] [--n-exhaustive 20] [--json OUT] [--label L]\n");
        return 2;
    }
    cp_error err = {0};
    cp_index *index = NULL;
    if (getenv("BENCH_NO_MERGE") && atoi(getenv("BENCH_NO_MERGE")))
        cp_search_merge_repeated_rows = false;
    double t_open = now_ms();
    if (cp_index_open(o.index, CP_OPEN_READONLY, &index, &err) != CP_OK) {
        fprintf(stderr, "bench_search: %s\n", err.message);
        return 1;
    }
    t_open = now_ms() - t_open;
    cp_index_stats st;
    cp_index_stats_get(index, &st, &err);
    long rss_index_kb = rss_now_kb();
    cp_snapshot *snap = cp_index_acquire_snapshot(index);
    cp_npy qn;
    if (cp_npy_open(o.queries, &qn, &err) != CP_OK || qn.ndim != 3 || qn.shape[2] != st.dim) {
        fprintf(stderr, "bench_search: bad queries %s %s\n", o.queries, err.message);
        return 1;
    }
    int nq = (int)qn.shape[1], dim = st.dim;
    if (o.n > qn.shape[0]) o.n = (int)qn.shape[0];
    if (o.n_exhaustive > o.n) o.n_exhaustive = o.n;
    if (o.quick) o.n_exhaustive = 0;
    float *q = malloc(sizeof(float) * (size_t)o.n * nq * dim);
    cp_npy_floats(&qn, 0, (int64_t)o.n * nq * dim, q);
    cp_npy_close(&qn);
    fprintf(stderr, "index: %lld docs, %lld tokens, K=%lld, nbits %d, dim %d, opened in %.0f ms; kernels %s\n",
            (long long)st.n_documents, (long long)st.n_tokens, (long long)st.n_centroids, st.nbits,
            dim, t_open, cp_kernels_get()->name);

    cp_search_params p_exact, p10, p100, pw;
    cp_search_params_init(&p_exact, 100);
    p_exact.exact = true;
    cp_search_params_init(&p10, 10);
    cp_search_params_init(&p100, 100);
    cp_search_params_init(&pw, 100); /* k=100 with PLAID's k>100 probing: wider net */
    pw.ncells = 4, pw.ndocs = 4096, pw.centroid_score_threshold = 0.4f;
    cp_hit *h_exact = malloc(sizeof(cp_hit) * (size_t)o.n * 100), *h10 = malloc(sizeof(cp_hit) * (size_t)o.n * 10),
           *h100 = malloc(sizeof(cp_hit) * (size_t)o.n * 100), *hw = malloc(sizeof(cp_hit) * (size_t)o.n * 100), *h_fp = malloc(sizeof(cp_hit) * (size_t)o.n * 100);
    series s_exact, s10, s100, sw, s_fp = {0};
    /* warm-up so that scratch buffers and page faults are not charged to the first query */
    run_series(snap, q, nq, dim, 1, &p10, h10, &s10);
    free(s10.ms);
    if (!run_series(snap, q, nq, dim, o.n, &p10, h10, &s10) ||
        !run_series(snap, q, nq, dim, o.n, &p100, h100, &s100) ||
        (!o.quick && !run_series(snap, q, nq, dim, o.n, &pw, hw, &sw)) ||
        !run_series(snap, q, nq, dim, o.n, &p_exact, h_exact, &s_exact))
        return 1;
    corpus32 c = {0};
    if (!o.quick && !load_corpus32(&o, snap, &c)) return 1;
    s_fp.ms = calloc((size_t)o.n_exhaustive + 1, sizeof(double));
    s_fp.n = o.n_exhaustive;
    for (int i = 0; i < o.n_exhaustive; i++) {
        double t0 = now_ms();
        exhaustive_fp32(&c, q + (size_t)i * nq * dim, nq, 100, h_fp + (size_t)i * 100);
        s_fp.ms[i] = now_ms() - t0;
    }
    double mex;
    {
        double p50x, p99x;
        stats(&s_exact, &mex, &p50x, &p99x);
    }
    /* PLAID's fixed defaults (what an uncalibrated index uses) and the calibrated settings
     * at several recall targets, each against exact (the index's own exhaustive top-k) and
     * against fp32 (the uncompressed exhaustive top-k, over the first n_exhaustive queries). */
    {
        static const float targets[] = {0.0f, 0.90f, 0.97f, 0.99f};
        cp_hit *hr = malloc(sizeof(cp_hit) * (size_t)o.n * 100);
        printf("%-22s %9s %9s %10s %10s %9s\n", "setting (k)", "mean ms", "p50 ms", "vs exact",
               "vs fp32", "vs exh.");
        for (int kk = 0; kk < 2; kk++) {
            int k = kk ? 100 : 10;
            for (int ti = 0; ti < 4; ti++) {
                cp_search_params pr;
                cp_search_params_init(&pr, k);
                char name[64];
                if (ti == 0) { /* fixed: resolve without the calibration */
                    cp_search_params_resolve(&pr, &pr.ncells, &pr.centroid_score_threshold,
                                             &pr.ndocs);
                    snprintf(name, sizeof name, "fixed PLAID (k=%d)", k);
                } else {
                    pr.recall = targets[ti];
                    snprintf(name, sizeof name, "recall %.2f (k=%d)", (double)targets[ti], k);
                }
                series sr;
                if (!run_series(snap, q, nq, dim, o.n, &pr, hr, &sr)) return 1;
                double mr, p50r, p99r;
                stats(&sr, &mr, &p50r, &p99r);
                double rex = recall(hr, k, h_exact, 100, k, o.n);
                double rfp = o.n_exhaustive ? recall(hr, k, h_fp, 100, k, o.n_exhaustive) : 0;
                printf("%-22s %9.3f %9.3f %10.4f %10.4f %8.1fx\n", name, mr, p50r, rex, rfp,
                       mex / mr);
                if (json_series_n < 8)
                    json_series[json_series_n++] =
                        (json_row){k, ti ? targets[ti] : 0, mr, p50r, rex, rfp, mex / mr};
                free(sr.ms);
            }
        }
        free(hr);
    }
    if (o.quick) { /* --quick 1: the settings table only */
        printf("exact: %.3f ms per query\n", mex);
        return 0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    implicit_result imp10, imp100;
    stage4_modes(snap, q, nq, dim, o.n, 10, &imp10);
    stage4_modes(snap, q, nq, dim, o.n, 100, &imp100);

    double mw, p50w, p99w;
    stats(&sw, &mw, &p50w, &p99w);
    double rw = recall(hw, 100, h_exact, 100, 100, o.n);
    double m10, p50_10, p99_10, m100, p50_100, p99_100, p50ex, p99ex, mfp, p50fp, p99fp;
    stats(&s10, &m10, &p50_10, &p99_10);
    stats(&s100, &m100, &p50_100, &p99_100);
    stats(&s_exact, &mex, &p50ex, &p99ex);
    stats(&s_fp, &mfp, &p50fp, &p99fp);
    double r10 = recall(h10, 10, h_exact, 100, 10, o.n), r100 = recall(h100, 100, h_exact, 100, 100, o.n);
    double r100_10 = recall(h100, 100, h_exact, 100, 10, o.n);
    double r_fp10 = o.n_exhaustive ? recall(h_exact, 100, h_fp, 100, 10, o.n_exhaustive) : 0;
    double bpt = (double)st.bytes_in_memory / (double)st.n_tokens;
    printf("(times: %s ms per query, single thread)\n", getenv("BENCH_WALL") && atoi(getenv("BENCH_WALL")) ? "wall-clock" : "thread CPU");
    printf("%-10s %9s %9s %9s %9s %10s %10s\n", "mode", "mean ms", "p50 ms", "p99 ms", "recall", "vs fp32", "cands");
    printf("%-10s %9.3f %9.3f %9.3f %9.4f %9.1fx %10.0f   (recall@10 vs exact top-10)\n", "plaid@10", m10, p50_10, p99_10, r10, mfp / m10, (double)s10.stage_sum.n_candidates / o.n);
    printf("%-10s %9.3f %9.3f %9.3f %9.4f %9.1fx %10.0f   (recall@100 vs exact top-100; @10: %.4f)\n", "plaid@100", m100, p50_100, p99_100, r100, mfp / m100, (double)s100.stage_sum.n_candidates / o.n, r100_10);
    printf("%-10s %9.3f %9.3f %9.3f %9.4f %9.1fx %10.0f   (k=100, ncells 4, ndocs 4096, t 0.4)\n", "plaid-wide", mw, p50w, p99w, rw, mfp / mw, (double)sw.stage_sum.n_candidates / o.n);
    printf("%-10s %9.3f %9.3f %9.3f %9s %9.1fx\n", "exact", mex, p50ex, p99ex, "1", mfp / mex);
    printf("%-10s %9.3f %9.3f %9.3f %9.4f %9s   (exact-over-index top-10 vs fp32 top-10)\n", "fp32", mfp, p50fp, p99fp, r_fp10, "1.0x");
    printf("whole search with stage 4 explicit vs implicit (WARP-style): k=10 %.3f vs %.3f ms (%.2fx), k=100 %.3f vs %.3f ms (%.2fx); max score diff %.2g\n",
           imp10.explicit_ms, imp10.implicit_ms, imp10.explicit_ms / imp10.implicit_ms, imp100.explicit_ms,
           imp100.implicit_ms, imp100.explicit_ms / imp100.implicit_ms,
           imp10.max_diff > imp100.max_diff ? imp10.max_diff : imp100.max_diff);
    double su_c10, su_c100;
    double su10 = sort_unique_ms(snap, q, nq, dim, o.n, 1, &su_c10), su100 = sort_unique_ms(snap, q, nq, dim, o.n, 2, &su_c100);
    printf("stage 1 union: bitmap (engine) %.3f / %.3f ms vs sort+unique %.3f / %.3f ms (ncells 1 / 2; %.0f / %.0f candidates)\n",
           s10.stage_sum.candidates / o.n, s100.stage_sum.candidates / o.n, su10, su100, su_c10, su_c100);
    const series *ss[2] = {&s10, &s100};
    for (int i = 0; i < 2; i++)
        printf("wall-clock stages %s: centroid scores %.3f, candidates %.3f, stage2 %.3f, stage3 %.3f, stage4 %.3f ms\n",
               i ? "k=100" : "k=10 ", ss[i]->stage_sum.centroid_scores / o.n, ss[i]->stage_sum.candidates / o.n,
               ss[i]->stage_sum.stage2 / o.n, ss[i]->stage_sum.stage3 / o.n, ss[i]->stage_sum.stage4 / o.n);
    printf("memory: index in memory %.1f MB = %.1f bytes/token; RSS after open %.1f MB; peak RSS %.1f MB (incl. fp32 copy %.1f MB)\n",
           st.bytes_in_memory / 1e6, bpt, rss_index_kb / 1e3, ru.ru_maxrss / 1e3,
           (double)c.off[c.n_docs] * dim * 4 / 1e6);
    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (f) {
            fprintf(f, "{\"label\": \"%s\", \"docs\": %lld, \"tokens\": %lld, \"centroids\": %lld, \"nbits\": %d, \"dim\": %d, "
                       "\"queries\": %d, \"queries_exhaustive\": %d, \"kernels\": \"%s\", \"threads\": 1, \"clock\": \"%s\",\n"
                       " \"plaid_k10\": {\"mean_ms\": %.4f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"recall_at_10_vs_exact\": %.4f, \"speedup_vs_fp32\": %.2f},\n"
                       " \"plaid_k100\": {\"mean_ms\": %.4f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"recall_at_100_vs_exact\": %.4f, \"recall_at_10_vs_exact\": %.4f, \"speedup_vs_fp32\": %.2f},\n"
                       " \"plaid_k100_wide\": {\"ncells\": 4, \"ndocs\": 4096, \"threshold\": 0.4, \"mean_ms\": %.4f, \"recall_at_100_vs_exact\": %.4f, \"speedup_vs_fp32\": %.2f},\n"
                       " \"exact\": {\"mean_ms\": %.4f, \"p50_ms\": %.4f, \"p99_ms\": %.4f},\n"
                       " \"fp32_exhaustive\": {\"mean_ms\": %.4f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"exact_recall_at_10_vs_fp32\": %.4f},\n"
                       " \"search_ms_by_stage4_mode\": {\"k10_explicit\": %.4f, \"k10_implicit\": %.4f, \"k100_explicit\": %.4f, \"k100_implicit\": %.4f},\n"
                       " \"bytes_per_token\": %.2f, \"index_bytes_in_memory\": %lld, \"rss_after_open_kb\": %ld, \"peak_rss_kb\": %ld}\n",
                    o.label, (long long)st.n_documents, (long long)st.n_tokens, (long long)st.n_centroids, st.nbits, dim,
                    o.n, o.n_exhaustive, cp_kernels_get()->name, getenv("BENCH_WALL") && atoi(getenv("BENCH_WALL")) ? "wall" : "thread_cpu", m10, p50_10, p99_10, r10, mfp / m10, m100, p50_100,
                    p99_100, r100, r100_10, mfp / m100, mw, rw, mfp / mw, mex, p50ex, p99ex, mfp, p50fp, p99fp, r_fp10,
                    imp10.explicit_ms, imp10.implicit_ms, imp100.explicit_ms, imp100.implicit_ms, bpt,
                    (long long)st.bytes_in_memory, rss_index_kb, ru.ru_maxrss);
            fclose(f);
        }
        char path[4200];
        snprintf(path, sizeof path, "%s.recall.json", o.json);
        f = fopen(path, "w");
        if (f) {
            fprintf(f, "{\"label\": \"%s\", \"docs\": %lld, \"series\": [", o.label,
                    (long long)st.n_documents);
            for (int i = 0; i < json_series_n; i++)
                fprintf(f,
                        "%s\n {\"k\": %d, \"recall_target\": %.2f, \"mean_ms\": %.4f, \"p50_ms\": "
                        "%.4f, "
                        "\"recall_vs_exact\": %.4f, \"recall_vs_fp32\": %.4f, "
                        "\"speedup_vs_exact\": %.2f}",
                        i ? "," : "", json_series[i].k, (double)json_series[i].recall_target,
                        json_series[i].mean_ms, json_series[i].p50_ms,
                        json_series[i].recall_vs_exact, json_series[i].recall_vs_fp32,
                        json_series[i].speedup_vs_exact);
            fprintf(f, "]}\n");
            fclose(f);
        }
    }
    cp_snapshot_release(snap);
    cp_index_close(index);
    free(q), free(h_exact), free(h10), free(h100), free(hw), free(h_fp), free(c.vec), free(c.off);
    free(s10.ms), free(s100.ms), free(sw.ms), free(s_exact.ms), free(s_fp.ms);
    return 0;
}
