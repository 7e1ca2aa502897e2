/*
 * k-means for the codec's centroids (index/kmeans.c), through the FAISS C API.
 */
#ifndef CP_KMEANS_H
#define CP_KMEANS_H

#include <stdint.h>

#include "colplaid/error.h"

/* PLAID's K = 2^floor(log2(16 sqrt(e_est))), clamped to [1, n_points]. */
int64_t cp_kmeans_default_k(double e_est, int64_t n_points);

/* Plain Euclidean k-means through FAISS (seeded, niter iterations, at most
 * max_points_per_centroid * k training points), then L2-normalised centroids written to
 * centroids (k x dim). k must be <= n. */
cp_status cp_kmeans_train(const float *x, int64_t n, int dim, int64_t k, int niter, uint64_t seed,
                          int max_points_per_centroid, int threads, float *centroids,
                          cp_error *err);

#endif
