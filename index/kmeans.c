/*
 * k-means for the centroids of an index (PLAID.md 1.3-1.4), through the FAISS C API.
 *
 * Why FAISS: it is what the reference uses (faiss.Kmeans: plain Euclidean, random-subset
 * initialisation, empty clusters repaired by splitting large ones), so the same training
 * set gives centroids of the same quality; its assignment step is BLAS-blocked and
 * OpenMP-parallel.
 *
 * Invariants: k <= n (callers clamp with cp_kmeans_default_k); the seed is explicit so that
 * one input always gives one index; the centroids returned are L2-normalised (a centroid
 * whose mean is the zero vector, possible only for antipodal data, is replaced by a
 * training point so that it stays a unit vector).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/error_c.h>

#include "index_internal.h"

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
    normalise_rows(centroids, k, dim, x, n);
done:
    if (index) faiss_Index_free(index);
    if (cl) faiss_Clustering_free(cl);
    return st;
}
