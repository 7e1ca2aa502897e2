/*
 * Helpers shared by the static model's loader (static_model.c) and converter
 * (static_convert.c): float to IEEE half and a string -> row hash map. Internal to encoder/.
 */
#ifndef CP_STATIC_INTERNAL_H
#define CP_STATIC_INTERNAL_H

#include <stdint.h>

#include "colplaid/error.h"
#include "cp_strtab.h"
#include "wordpiece_internal.h"

#define CP_STATIC_CONFIG "colplaid-static.json"
#define CP_STATIC_VOCAB "vocab.txt"
#define CP_STATIC_VECTORS "vectors.f16"
/* Mixed word vectors do not cluster like ColBERT's: at PLAID's K, 2-bit residuals lost
 * 0.02 nDCG@10 on SciFact, at 4 K 0.004 (docs/static-model.md, "Centroids"). */
#define CP_STATIC_CENTROID_SCALE 4

uint16_t cp_static_float_to_half(float f); /* round to nearest even, saturating at +-65504 */

/* Words -> rows 0, 1, 2... in insertion order. Single-threaded while adding; lookups on a
 * finished map are read-only. */
typedef struct cp_strmap {
    cp_bytes arena;  /* NUL-terminated keys */
    uint32_t *off;   /* row -> key offset */
    cp_strtab index; /* key -> row */
    int32_t n, cap;
} cp_strmap;

cp_status cp_strmap_init(cp_strmap *m, int32_t cap, cp_error *err);
void cp_strmap_free(cp_strmap *m);
int32_t cp_strmap_get(const cp_strmap *m, const char *key, size_t n); /* row or -1 */
/* Add key as the next row; if present, *row is the existing row and nothing is added. */
cp_status cp_strmap_add(cp_strmap *m, const char *key, size_t n, int32_t *row, cp_error *err);
const char *cp_strmap_key(const cp_strmap *m, int32_t row);

/* The static model's optional rotation (docs/static-model.md, "Rotation"). GloVe's dims
 * have very unequal variance, while PLAID's residual codec uses one set of bucket cutoffs
 * for all dims; a random orthogonal rotation makes the dims near-isotropic without changing
 * any inner product, norm or neighbour mix, so exact retrieval is unchanged. */
#define CP_STATIC_ROTATION_SEED 24301 /* 0x5EED; below 2^53 so JSON numbers hold it exactly */

/* A seeded random orthogonal n x n matrix, row-major into q (n*n doubles): rows are
 * orthonormal (Gram-Schmidt of a seeded Gaussian matrix, in double precision). The same
 * seed gives the same matrix. */
cp_status cp_static_rotation(int n, uint64_t seed, double *q, cp_error *err);

#endif
