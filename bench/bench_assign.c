/*
 * Nearest-centroid assignment speed, kernel against kernel: the exact fp32 BLAS path and
 * the AMX bf16 + fp32-rescore path (index/codec.c, codec_amx.c) and the approximate PROBE
 * path (codec_probe.c: exact within the groups of centroids probed) on the same clustered
 * data, whose centroids are data points (as after k-means, so near-ties are realistic).
 * Prints wall and process CPU time of each (CPU time is the fair measure on a loaded
 * machine), the speedup and the agreement rate; with --kmeans also the FAISS k-means
 * training that an index build runs before (32 points per centroid, --iters iterations),
 * to show the two costs side by side.
 *
 * usage: bench_assign [--n N] [--k K] [--dim D] [--threads T] [--kmeans] [--iters I]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CP_TEST_RNG_SEED 99
#include "cp_test_rng.h" /* the tests' deterministic data, same generator */
#include "cp_cpu.h"
#include "codec.h"
#include "codec_amx.h"
#include "kmeans.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct timing {
    double wall, cpu;
} timing;

static timing run(cp_assign_kind kind, const float *c, int64_t k, int dim, const float *v,
                  int64_t n, int32_t *codes, int threads)
{
    cp_error err = {0};
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (cp_codec_assign_with(kind, c, k, dim, v, n, codes, threads, &err) != CP_OK) {
        fprintf(stderr, "assign failed: %s\n", err.message);
        exit(1);
    }
    return (timing){clock_s(CLOCK_MONOTONIC) - w0, clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0};
}

int main(int argc, char **argv)
{
    cp_runtime_prepare(argc, argv);
    int64_t n = 50000, k = 16384;
    int dim = 128, threads = 2, iters = 4, kmeans = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--kmeans")) {
            kmeans = 1;
            continue;
        }
        if (!strcmp(a, "--n")) n = atoll(v);
        else if (!strcmp(a, "--k")) k = atoll(v);
        else if (!strcmp(a, "--dim")) dim = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    int64_t topics = 2000, pool_n = n + k;
    if (kmeans && pool_n < 32 * k) pool_n = 32 * k;
    float *t = malloc(sizeof(float) * topics * dim), *pool = malloc(sizeof(float) * pool_n * dim);
    int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
    if (!t || !pool || !a || !b) return 1;
    for (int64_t i = 0; i < topics * dim; i++) t[i] = grand();
    for (int64_t i = 0; i < topics; i++) normalise(t + i * dim, dim);
    for (int64_t i = 0; i < pool_n; i++) {
        const float *base = t + (int64_t)(urand() * (double)topics) * dim;
        for (int j = 0; j < dim; j++) pool[i * dim + j] = base[j] + 0.15f * grand();
        normalise(pool + i * dim, dim);
    }
    const float *c = pool, *v = pool + k * dim;
    printf("assign: n %lld, K %lld, dim %d, %d threads\n", (long long)n, (long long)k, dim,
           threads);
    timing tb = run(CP_ASSIGN_BLAS, c, k, dim, v, n, a, threads);
    printf("blas-fp32: wall %.2f s, CPU %.2f s, %.0f vectors/CPU-s\n", tb.wall, tb.cpu,
           (double)n / tb.cpu);
    if (cp_assign_amx_available()) {
        timing ta = run(CP_ASSIGN_AMX, c, k, dim, v, n, b, threads);
        int64_t same = 0;
        for (int64_t i = 0; i < n; i++) same += a[i] == b[i];
        printf("amx-bf16:  wall %.2f s, CPU %.2f s, %.0f vectors/CPU-s; speedup %.1fx (CPU), "
               "%.1fx (wall); agreement %.5f\n",
               ta.wall, ta.cpu, (double)n / ta.cpu, tb.cpu / ta.cpu, tb.wall / ta.wall,
               (double)same / (double)n);
    } else {
        printf("amx-bf16: not available on this CPU\n");
    }
    {
        timing tp = run(CP_ASSIGN_PROBE, c, k, dim, v, n, b, threads);
        int64_t same = 0;
        double gap = 0;
        for (int64_t i = 0; i < n; i++) {
            same += a[i] == b[i];
            double sa = 0, sb = 0;
            for (int j = 0; j < dim; j++) {
                sa += (double)v[i * dim + j] * c[(int64_t)a[i] * dim + j];
                sb += (double)v[i * dim + j] * c[(int64_t)b[i] * dim + j];
            }
            gap += sa - sb;
        }
        printf("probe-fp32: wall %.2f s, CPU %.2f s, %.0f vectors/CPU-s; speedup %.1fx (CPU), "
               "%.1fx (wall); agreement %.5f, mean score lost %.2g\n",
               tp.wall, tp.cpu, (double)n / tp.cpu, tb.cpu / tp.cpu, tb.wall / tp.wall,
               (double)same / (double)n, gap / (double)n);
    }
    if (kmeans) {
        /* Both k-means variants on the same 32 K points; quality = mean inner product of a
         * point with its nearest (normalised) centroid, over the points. */
        float *cent = malloc(sizeof(float) * k * dim);
        int32_t *codes = malloc(sizeof(int32_t) * 32 * k);
        if (!cent || !codes) return 1;
        for (int variant = 0; variant < 2; variant++) {
            if (variant == 0) setenv("CP_KMEANS", "faiss", 1);
            else unsetenv("CP_KMEANS");
            cp_error err = {0};
            double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            if (cp_kmeans_train(pool, 32 * k, dim, k, iters, 1, 32, threads, cent, &err)) {
                fprintf(stderr, "k-means failed: %s\n", err.message);
                return 1;
            }
            double w = clock_s(CLOCK_MONOTONIC) - w0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
            if (cp_codec_assign_with(CP_ASSIGN_BLAS, cent, k, dim, pool, 32 * k, codes, threads,
                                     &err))
                return 1;
            double q = 0;
            for (int64_t i = 0; i < 32 * k; i++) {
                double s = 0;
                for (int j = 0; j < dim; j++)
                    s += (double)pool[i * dim + j] * cent[(int64_t)codes[i] * dim + j];
                q += s;
            }
            printf("k-means %s (%lld points, %d iters): wall %.2f s, CPU %.2f s, mean "
                   "cos to nearest centroid %.5f\n",
                   variant == 0 ? "faiss" : "faiss-init+own-lloyd", (long long)(32 * k), iters, w,
                   cpu, q / (double)(32 * k));
        }
        free(cent);
        free(codes);
    }
    free(t), free(pool), free(a), free(b);
    return 0;
}
