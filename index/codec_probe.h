/*
 * Approximate nearest centroid for CPUs without AMX (index/codec_probe.c): the centroids
 * grouped around ~sqrt(k) group means, each vector scored exactly against the members of
 * its nprobe nearest groups only.
 */
#ifndef CP_CODEC_PROBE_H
#define CP_CODEC_PROBE_H

#include <stdint.h>

#include "colplaid/error.h"

/* From this many centroids on the automatic choice takes PROBE where AMX is absent. */
#define CP_PROBE_MIN_K 4096

/* cent/bias/ids: the centroids reordered so that group i is rows off[i] .. off[i+1]. */
typedef struct cp_probe_part {
    int64_t k;
    int dim, g, nprobe;
    float *coarse, *coarse_bias; /* g x dim group means, -|mean|^2 / 2 */
    float *cent, *bias;          /* k x dim, k (bias NULL when none) */
    int32_t *ids;                /* original id of each reordered row */
    int64_t *off;                /* g + 1 */
} cp_probe_part;

/* Probed groups per vector: 8 (CP_PROBE_NPROBE overrides it, for measurements). */
int cp_probe_default_nprobe(int64_t k);
/* Scores are x.c + bias[c] (bias NULL: 0). */
cp_status cp_probe_part_build(cp_probe_part *p, const float *centroids, const float *bias,
                              int64_t k, int dim, int nprobe, cp_error *err);
void cp_probe_part_free(cp_probe_part *p);
/* Codes of m vectors; -1 if scratch cannot be allocated. Thread-safe on a shared p; calls
 * BLAS (the caller keeps BLAS single-threaded when it runs workers). */
int cp_probe_assign(const cp_probe_part *p, const float *v, int64_t m, int32_t *codes);

#endif
