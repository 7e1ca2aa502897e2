/*
 * k-means for the centroids of an index (PLAID.md 1.3-1.4), through the FAISS C API.
 *
 * Why FAISS: it is what the reference uses (faiss.Kmeans: plain Euclidean, random-subset
 * initialisation, empty clusters repaired by splitting large ones), so the same training
 * set gives centroids of the same quality; its assignment step is BLAS-blocked and
 * OpenMP-parallel.
 *
 * Where the CPU has AMX, FAISS does the initialisation (its seeded random subset) and the
 * Lloyd iterations run here, their assignment step on the AMX kernel (codec_amx.c, nearest
 * centroid in L2 with exact fp32 rescoring of the finalists) and their update step and
 * empty-cluster repair as FAISS does them: the assignment step is ~90% of k-means and AMX
 * does it ~10x faster than FAISS's fp32 BLAS. Without AMX the same holds from K = 4096 on,
 * with the approximate PROBE kernel (codec_probe.c: exact within the groups of centroids
 * probed, ~1/25 of the work at K = 32,768). CP_KMEANS=faiss (or CP_ASSIGN=blas) keeps
 * FAISS for everything.
 *
 * Invariants: k <= n (callers clamp with cp_kmeans_default_k); the seed is explicit so that
 * one input always gives one index; the centroids returned are L2-normalised (a centroid
 * whose mean is the zero vector, possible only for antipodal data, is replaced by a
 * training point so that it stays a unit vector).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/error_c.h>

#include "codec.h"
#include "codec_amx.h"
#include "kmeans.h"

/* The OpenMP runtime's own entry point (FAISS is OpenMP-parallel); declared here rather
 * than through omp.h so that the file builds the same with gcc and clang. */
extern void omp_set_num_threads(int n);

int64_t cp_kmeans_default_k(double e_est, int64_t n_points)
{
    int64_t k = 1;
    if (e_est > 0) {
        double target = 16.0 * sqrt(e_est);
        /* Largest power of two <= target, computed in integers to dodge log2 rounding. */
        while ((double)(k * 2) <= target && k < ((int64_t)1 << 40))
            k *= 2;
    }
    if (n_points < 1) n_points = 1;
    if (k > n_points) k = n_points;
    return k;
}

static void normalise_rows(float *c, int64_t k, int dim, const float *x, int64_t n)
{
    for (int64_t i = 0; i < k; i++) {
        float *row = c + i * dim;
        double n2 = 0;
        for (int j = 0; j < dim; j++)
            n2 += (double)row[j] * row[j];
        if (n2 <= 1e-30) {
            /* Degenerate centroid: fall back to a training point (inputs are unit vectors). */
            memcpy(row, x + (i % n) * dim, (size_t)dim * sizeof *row);
            n2 = 0;
            for (int j = 0; j < dim; j++)
                n2 += (double)row[j] * row[j];
            if (n2 <= 1e-30) {
                row[0] = 1.0f;
                n2 = 1.0;
            }
        }
        float inv = (float)(1.0 / sqrt(n2));
        for (int j = 0; j < dim; j++)
            row[j] *= inv;
    }
}

/* splitmix64: the seeded choices of the empty-cluster repair. */
static double split_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

/* FAISS's repair of empty clusters (Clustering.cpp split_clusters): each empty cluster
 * copies a cluster picked with probability proportional to (size - 1), and the two are
 * pushed apart by a symmetric relative perturbation of 1/1024. */
static void split_empty(float *c, int64_t *size, int64_t k, int dim, int64_t n, uint64_t *rng)
{
    const float eps = 1.0f / 1024;
    int64_t largest = 0;
    for (int64_t j = 1; j < k; j++)
        if (size[j] > size[largest]) largest = j;
    for (int64_t ci = 0; ci < k; ci++) {
        if (size[ci] != 0) continue;
        if (size[largest] < 2) return; /* nothing left to split */
        int64_t cj = 0;
        /* FAISS walks the clusters until a draw succeeds; bounded here to k x 64 draws
         * (then the largest cluster) so that it always ends. */
        for (int64_t tries = 0;; tries++, cj = (cj + 1) % k) {
            if (tries >= 64 * k) {
                cj = largest;
                break;
            }
            double p = (double)(size[cj] - 1) / (double)(n > k ? n - k : 1);
            if (split_rand(rng) < p) break;
        }
        memcpy(c + ci * dim, c + cj * dim, (size_t)dim * sizeof *c);
        for (int j = 0; j < dim; j++) {
            float up = 1 + eps, down = 1 - eps;
            c[ci * dim + j] *= j % 2 == 0 ? up : down;
            c[cj * dim + j] *= j % 2 == 0 ? down : up;
        }
        size[ci] = size[cj] / 2;
        size[cj] -= size[ci];
        if (cj == largest || size[ci] > size[largest]) {
            largest = 0;
            for (int64_t j = 1; j < k; j++)
                if (size[j] > size[largest]) largest = j;
        }
    }
}

/* niter Lloyd iterations from the centroids in c (k x dim), assignment on the AMX kernel. */
static cp_status lloyd(const float *x, int64_t n, int dim, int64_t k, int niter, uint64_t seed,
                       int threads, float *c, cp_error *err)
{
    int32_t *assign = malloc((size_t)n * sizeof *assign);
    double *sum = malloc((size_t)k * (size_t)dim * sizeof *sum);
    int64_t *size = malloc((size_t)k * sizeof *size);
    cp_status st = CP_OK;
    if (!assign || !sum || !size) {
        st = cp_error_set(err, CP_ENOMEM, "k-means: out of memory for %lld points",
                          (long long)n);
        goto done;
    }
    uint64_t rng = seed ^ 0x5eed5eedull;
    for (int it = 0; it < niter && st == CP_OK; it++) {
        st = cp_codec_assign_l2(c, k, dim, x, n, assign, threads, err);
        if (st != CP_OK) break;
        memset(sum, 0, (size_t)k * (size_t)dim * sizeof *sum);
        memset(size, 0, (size_t)k * sizeof *size);
        for (int64_t i = 0; i < n; i++) {
            double *s = sum + (int64_t)assign[i] * dim;
            const float *xi = x + i * dim;
            for (int j = 0; j < dim; j++) s[j] += xi[j];
            size[assign[i]]++;
        }
        for (int64_t j = 0; j < k; j++)
            if (size[j] > 0)
                for (int d = 0; d < dim; d++)
                    c[j * dim + d] = (float)(sum[j * dim + d] / (double)size[j]);
        split_empty(c, size, k, dim, n, &rng);
    }
done:
    free(assign);
    free(sum);
    free(size);
    return st;
}

cp_status cp_kmeans_train(const float *x, int64_t n, int dim, int64_t k, int niter, uint64_t seed,
                          int max_points_per_centroid, int threads, float *centroids, cp_error *err)
{
    if (k < 1 || n < k || dim < 1 || k > INT32_MAX)
        return cp_error_set(err, CP_EINVAL, "k-means: cannot make %lld centroids from %lld points",
                            (long long)k, (long long)n);
    if (threads > 0) omp_set_num_threads(threads);
    FaissClusteringParameters params;
    faiss_ClusteringParameters_init(&params);
    params.niter = niter > 0 ? niter : 1;
    const char *mode = getenv("CP_KMEANS");
    /* FAISS initialises (niter 0: its seeded random subset), the iterations run here. */
    bool own_lloyd = !(mode && strcmp(mode, "faiss") == 0) && cp_codec_assign_l2_available(k) &&
                     n <= (int64_t)params.max_points_per_centroid * k;
    if (own_lloyd) params.niter = 0;
    params.seed = (int)(seed & 0x7fffffff);
    params.max_points_per_centroid = max_points_per_centroid > 0 ? max_points_per_centroid : 256;
    params.min_points_per_centroid = 1; /* small corpora are legitimate: no stderr warning */
    params.verbose = 0;
    params.spherical = 0;

    FaissClustering *cl = NULL;
    FaissIndexFlatL2 *index = NULL;
    cp_status st = CP_OK;
    if (faiss_Clustering_new_with_params(&cl, dim, (int)k, &params) ||
        faiss_IndexFlatL2_new_with(&index, dim)) {
        st = cp_error_set(err, CP_ENOMEM, "k-means: %s", faiss_get_last_error());
        goto done;
    }
    if (faiss_Clustering_train(cl, n, x, index)) {
        const char *msg = faiss_get_last_error();
        st = cp_error_set(err, CP_EINTERNAL, "k-means failed: %s", msg ? msg : "unknown error");
        goto done;
    }
    float *c = NULL;
    size_t size = 0;
    faiss_Clustering_centroids(cl, &c, &size);
    if (!c || size != (size_t)k * (size_t)dim) {
        st = cp_error_set(err, CP_EINTERNAL, "k-means returned %zu values, expected %lld", size,
                          (long long)k * dim);
        goto done;
    }
    memcpy(centroids, c, size * sizeof *c);
    if (own_lloyd &&
        (st = lloyd(x, n, dim, k, niter > 0 ? niter : 1, seed, threads, centroids, err)) != CP_OK)
        goto done;
    normalise_rows(centroids, k, dim, x, n);
done:
    if (index) faiss_Index_free(index);
    if (cl) faiss_Clustering_free(cl);
    return st;
}
