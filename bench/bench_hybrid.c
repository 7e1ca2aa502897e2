/*
 * Hybrid against late search latency, side by side in one process (issue 13 section 1:
 * hybrid at k = 10 must cost at most 1.5x late; docs/hybrid.md).
 *
 *   bench_hybrid INDEX.db MODEL_DIR QUERIES.jsonl QRELS.tsv [ROUNDS] [K]
 *
 * Encodes the queries that QRELS judges, then for ROUNDS rounds (default 5) searches every
 * query in late mode (cp_index_search) and in hybrid mode (cp_index_hybrid_search, default
 * fusion), alternating which goes first from query to query, on this one thread (hybrid's
 * own helper thread for the lexical half included). Per round it prints each mode's mean
 * wall time and mean process CPU time (both threads) per query, and the ratios
 * hybrid / late; then the median ratios over the rounds and the load average. The wall
 * ratio is what a user sees on an idle core pair; the CPU ratio is what hybrid costs on a
 * machine whose cores are all busy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "colplaid/corpus.h"
#include "colplaid/encoder.h"
#include "colplaid/eval.h"
#include "colplaid/index.h"

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int fail(const char *what, const cp_error *err)
{
    fprintf(stderr, "bench_hybrid: %s: %s\n", what, err->message);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_hybrid INDEX.db MODEL_DIR QUERIES.jsonl QRELS.tsv [ROUNDS] [K]\n");
        return 2;
    }
    int rounds = argc > 5 ? atoi(argv[5]) : 5, k = argc > 6 ? atoi(argv[6]) : 10;
    if (rounds < 1 || rounds > 1000 || k < 1) {
        fprintf(stderr, "bench_hybrid: ROUNDS must be in [1, 1000] and K at least 1\n");
        return 2;
    }
    cp_error err = {0};
    cp_index *index = NULL;
    cp_qrels *qrels = NULL;
    cp_encoder *enc = NULL;
    cp_corpus *corpus = NULL;
    if (cp_index_open(argv[1], CP_OPEN_READONLY, &index, &err) != CP_OK) return fail(argv[1], &err);
    if (cp_qrels_load(argv[4], &qrels, &err) != CP_OK) return fail(argv[4], &err);
    cp_encoder_options eo;
    cp_encoder_options_init(&eo);
    eo.threads = 1;
    if (cp_encoder_load(argv[2], &eo, &enc, &err) != CP_OK) return fail(argv[2], &err);
    if (cp_corpus_open(argv[3], &corpus, &err) != CP_OK) return fail(argv[3], &err);
    int dim = cp_encoder_dim(enc);
    size_t n = 0, cap = 0;
    char **texts = NULL;
    cp_embeddings *emb = NULL;
    for (;;) {
        cp_corpus_record rec;
        bool has = false;
        if (cp_corpus_next(corpus, &rec, &has, &err) != CP_OK) return fail(argv[3], &err);
        if (!has) break;
        if (!cp_qrels_has_query(qrels, rec.id)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            texts = realloc(texts, cap * sizeof *texts);
            emb = realloc(emb, cap * sizeof *emb);
            if (!texts || !emb) return fprintf(stderr, "bench_hybrid: out of memory\n"), 1;
        }
        texts[n] = strdup(rec.text);
        if (!texts[n]) return fprintf(stderr, "bench_hybrid: out of memory\n"), 1;
        const char *t = texts[n];
        if (cp_encoder_encode(enc, CP_TEXT_QUERY, &t, 1, &emb[n], &err) != CP_OK)
            return fail("encoding a query", &err);
        n++;
    }
    cp_corpus_close(corpus);
    if (n == 0) return fprintf(stderr, "bench_hybrid: no judged query\n"), 1;

    cp_search_params p;
    cp_search_params_init(&p, k);
    cp_fusion f;
    cp_fusion_init(&f);
    cp_hit *hits = malloc((size_t)k * sizeof *hits);
    double *wall_ratio = malloc((size_t)rounds * sizeof(double));
    double *cpu_ratio = malloc((size_t)rounds * sizeof(double));
    if (!hits || !wall_ratio || !cpu_ratio) return fprintf(stderr, "bench_hybrid: out of memory\n"), 1;
    printf("bench_hybrid: %zu queries, k = %d, %d rounds, late and hybrid alternating\n", n, k,
           rounds);
    for (int r = 0; r < rounds; r++) {
        double wall[2] = {0, 0}, cpu[2] = {0, 0};
        cp_search_timing sum = {0}, t;
        for (size_t i = 0; i < n; i++) {
            for (int j = 0; j < 2; j++) {
                int mode = (int)((i + (size_t)r + (size_t)j) % 2); /* 0 late, 1 hybrid */
                int nh = 0;
                double w0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
                cp_status st =
                    mode ? cp_index_hybrid_search(index, texts[i], emb[i].data, emb[i].n_tokens,
                                                  dim, &p, &f, hits, &nh, NULL, &err)
                         : cp_index_search(index, emb[i].data, emb[i].n_tokens, dim, &p, hits, &nh,
                                           &t, &err);
                if (!mode && st == CP_OK) {
                    sum.centroid_scores += t.centroid_scores, sum.candidates += t.candidates;
                    sum.stage2 += t.stage2, sum.stage3 += t.stage3, sum.stage4 += t.stage4;
                }
                cpu[mode] += clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
                wall[mode] += clock_ms(CLOCK_MONOTONIC) - w0;
                if (st != CP_OK) return fail(mode ? "hybrid search" : "late search", &err);
            }
        }
        wall_ratio[r] = wall[1] / wall[0];
        cpu_ratio[r] = cpu[1] / cpu[0];
        printf("round %d: late %.2f ms (cpu %.2f)  hybrid %.2f ms (cpu %.2f)  hybrid/late wall "
               "%.2f cpu %.2f\n",
               r + 1, wall[0] / (double)n, cpu[0] / (double)n, wall[1] / (double)n,
               cpu[1] / (double)n, wall_ratio[r], cpu_ratio[r]);
        printf("  late stages, mean ms: centroid scores %.2f, candidates %.2f, stage 2 %.2f, "
               "stage 3 %.2f, stage 4 %.2f\n",
               sum.centroid_scores / (double)n, sum.candidates / (double)n,
               sum.stage2 / (double)n, sum.stage3 / (double)n, sum.stage4 / (double)n);
        fflush(stdout);
    }
    double load[3] = {0, 0, 0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(la);
    }
    printf("median hybrid/late: wall %.2f  cpu %.2f  (load average %.2f %.2f %.2f)\n",
           median(wall_ratio, rounds), median(cpu_ratio, rounds), load[0], load[1], load[2]);
    for (size_t i = 0; i < n; i++) {
        free(texts[i]);
        cp_embeddings_free(&emb[i]);
    }
    free(texts);
    free(emb);
    free(hits);
    free(wall_ratio);
    free(cpu_ratio);
    cp_encoder_free(enc);
    cp_qrels_free(qrels);
    cp_index_close(index);
    return 0;
}
