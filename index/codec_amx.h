/*
 * Nearest-centroid assignment on Intel AMX tiles (index/codec_amx.c): scores in bf16,
 * rescoring the 4 best candidates in fp32. Used by codec.c's assignment when the CPU allows.
 */
#ifndef CP_CODEC_AMX_H
#define CP_CODEC_AMX_H

#include <stdbool.h>
#include <stdint.h>

#include "colplaid/error.h"

/* codec_amx.c: centroids converted for the AMX kernel once per call (k_p = k rounded up to
 * 32, dim_p = dim rounded up to 32, zero padded); f32 points at the caller's fp32 rows.
 * Scores are x.c + bias[c]; bias is k_p long, 0 unless given, -inf on padding rows. */
typedef struct cp_amx_centroids {
    uint16_t *bf16; /* k_p x dim_p */
    float *bias;
    const float *f32;
    int64_t k, k_p;
    int dim, dim_p;
} cp_amx_centroids;
bool cp_assign_amx_available(void);
/* bias: k floats added to the scores, or NULL for none. */
cp_status cp_amx_centroids_pack(cp_amx_centroids *pc, const float *centroids, const float *bias,
                                int64_t k, int dim, cp_error *err);
void cp_amx_centroids_free(cp_amx_centroids *pc);
/* Codes of m vectors (row-major, dim floats each); -1 if scratch cannot be allocated.
 * Any thread may call it concurrently on the same pc. */
int cp_assign_amx(const cp_amx_centroids *pc, const float *v, int64_t m, int32_t *codes);

#endif
