/*
 * Helpers for the storage tests: a scratch folder, a small random codec and random segment
 * data, so each test states only what it checks.
 */
#ifndef CP_STORAGE_TEST_UTIL_H
#define CP_STORAGE_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "index_handle.h"
#include "snapshot.h"
#include "storage.h"

/* A fresh folder under the build tree (or /tmp); the caller removes it with rm_rf. */
static inline char *st_tempdir(const char *name)
{
    char tmpl[512];
#ifdef CP_BINARY_DIR
    snprintf(tmpl, sizeof tmpl, "%s/tests/%s.XXXXXX", CP_BINARY_DIR, name);
#else
    snprintf(tmpl, sizeof tmpl, "/tmp/%s.XXXXXX", name);
#endif
    char *d = mkdtemp(tmpl);
    if (!d) {
        perror("mkdtemp");
        exit(1);
    }
    return strdup(d);
}

static inline void st_rm_rf(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static inline uint64_t st_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline float st_randf(uint64_t *s)
{
    return (float)((st_rand(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* A codec with random normalised centroids and symmetric buckets. */
static inline void st_make_codec(cp_codec *c, int dim, int nbits, int64_t k, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->dim = dim;
    c->nbits = nbits;
    c->n_centroids = k;
    c->centroids = malloc((size_t)k * (size_t)dim * sizeof(float));
    uint64_t s = seed | 1;
    for (int64_t i = 0; i < k; i++) {
        float *v = c->centroids + i * dim;
        double n = 0;
        for (int j = 0; j < dim; j++) {
            v[j] = st_randf(&s);
            n += v[j] * v[j];
        }
        for (int j = 0; j < dim; j++) v[j] /= (float)sqrt(n);
    }
    int nb = 1 << nbits;
    for (int i = 0; i < nb - 1; i++) c->bucket_cutoffs[i] = -0.1f + 0.2f * (float)(i + 1) / nb;
    for (int i = 0; i < nb; i++) c->bucket_weights[i] = -0.1f + 0.2f * ((float)i + 0.5f) / nb;
    c->avg_residual = 0.05f;
}

#endif
