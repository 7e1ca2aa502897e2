/*
 * The ColBERTv2 codec (index/codec.c): centroids plus nbits-per-dimension residual buckets;
 * compression (nearest centroid, bucketised residual), decompression, training of the
 * buckets, and the nearest-centroid assignment kernels (BLAS, AMX in codec_amx.c, or the
 * approximate PROBE in codec_probe.c).
 *
 * Residual bit order in memory ("natural" order): byte p of a token's residual holds dims
 * p*(8/nbits) .. p*(8/nbits) + 8/nbits - 1; the first of those dims sits in the
 * most-significant nbits-group of the byte, and each group stores its bucket index with the
 * usual bit significance (MSB first). The Stanford reference layout reverses the bits inside
 * each group (PLAID.md 1.7); cp_codec_reference_to_natural converts.
 */
#ifndef CP_CODEC_H
#define CP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colplaid/index.h"

struct cp_probe_part;

/* Codec variants (meta "codec" of format version 2, docs/index-format.md):
 * - COLBERT: ColBERTv2's, decoded normalize(C[code] + w[b_j]); every format 1 index and
 *   every imported Stanford/RAGatouille index.
 * - SCALED: the residual's norm is kept separately. The residual r = x - C[code] is
 *   bucketised after dividing by its RMS (the buckets are trained on such normalised
 *   residuals), and one more byte per token, after the packed buckets, holds a scale
 *   (the least-squares one for the chosen buckets, 8-bit log-quantised between
 *   scale_log_min and scale_log_max; byte 0 is scale 0): decoded
 *   normalize(C[code] + scale * w[b_j]). */
typedef enum cp_codec_variant { CP_CODEC_COLBERT = 0, CP_CODEC_SCALED = 1 } cp_codec_variant;

typedef struct cp_codec {
    int dim;
    int nbits;
    int variant;                        /* cp_codec_variant; 0 = COLBERT */
    float scale_log_min, scale_log_max; /* SCALED: the scale byte's range */
    float scales[256];                  /* SCALED: byte -> scale (cp_codec_init_scales) */
    int64_t n_centroids;
    float *centroids;                              /* n_centroids x dim, L2-normalised */
    float bucket_cutoffs[(1 << CP_MAX_NBITS) - 1]; /* 2^nbits - 1 used */
    float bucket_weights[1 << CP_MAX_NBITS];       /* 2^nbits used */
    float avg_residual;                            /* diagnostics only */
    /* The PROBE kernel's grouping of the centroids, built once for the many compress calls
     * of an index build (cp_codec_prepare_probe); NULL elsewhere. Freed with the arrays. */
    struct cp_probe_part *probe;
} cp_codec;

/* Group the centroids for the PROBE kernel once, if compress calls on this machine would
 * use it (no AMX, K >= CP_PROBE_MIN_K, not CP_ASSIGN=blas); else nothing. */
cp_status cp_codec_prepare_probe(cp_codec *codec, cp_error *err);

/* Bytes of packed residual per token. */
static inline int cp_residual_bytes(int dim, int nbits)
{
    return dim * nbits / 8;
}

/* Bytes stored per token after its code: the packed buckets, plus the scale byte of the
 * SCALED variant (the last byte of the token's row). */
static inline int cp_codec_token_bytes(const cp_codec *codec)
{
    return cp_residual_bytes(codec->dim, codec->nbits) + (codec->variant == CP_CODEC_SCALED);
}

/* Fill codec->scales from scale_log_min / scale_log_max (SCALED); no-op for COLBERT. Call
 * after setting or loading them. */
void cp_codec_init_scales(cp_codec *codec);

/* "colbert" / "scaled"; parse returns false for an unknown name. */
const char *cp_codec_variant_name(int variant);
bool cp_codec_variant_parse(const char *name, int *variant);

/* Compress n vectors (n x dim, already L2-normalised): nearest centroid by inner product,
 * residual bucketised with the global cutoffs, packed in natural order. */
cp_status cp_codec_compress(const cp_codec *codec, const float *vectors, int64_t n, int32_t *codes,
                            uint8_t *residuals, int threads, cp_error *err);

/* Reconstruct one token: centroid + bucket weights, then L2-normalise (PLAID.md 1.8).
 * The portable reference that every faster decoder is tested against. */
void cp_codec_decompress_one(const cp_codec *codec, int32_t code, const uint8_t *residual,
                             float *out);

/* Convert packed residual bytes from the Stanford reference layout to natural order (in
 * place); the conversion is its own inverse. */
void cp_codec_reference_to_natural(uint8_t *bytes, size_t n_bytes, int nbits);

void cp_codec_free_arrays(cp_codec *codec);

/* nbits values the codec implements: 1, 2, 4, 8. */
bool cp_codec_nbits_supported(int nbits);

/* Bucket of x: the number of cutoffs strictly below x (cutoffs ascending). */
int cp_codec_bucketize(const float *cutoffs, int n_cutoffs, float x);

/* Pack / unpack dim bucket indices (each < 2^nbits) in natural bit order. */
void cp_codec_pack_natural(const uint8_t *buckets, int dim, int nbits, uint8_t *out);
void cp_codec_unpack_natural(const uint8_t *packed, int dim, int nbits, uint8_t *buckets);

/* Nearest centroid by inner product for n vectors, ties to the lowest id, on `threads`
 * worker threads. The kernel is chosen at run time (cp_codec_assign_kind). */
cp_status cp_codec_assign(const float *centroids, int64_t k, int dim, const float *vectors,
                          int64_t n, int32_t *codes, int threads, cp_error *err);

/* Assignment kernels: BLAS is exact fp32 (blocked sgemm + argmax) and the reference; AMX
 * scores in bf16 on tiles and rescores its 4 best candidates in fp32, so it agrees with
 * BLAS except in near-ties (codec_amx.c). */
/* PROBE (codec_probe.c) scores a vector exactly against the centroids of the few groups of
 * centroids nearest to it only: approximate, for large K on CPUs without AMX. */
typedef enum cp_assign_kind {
    CP_ASSIGN_BLAS = 0,
    CP_ASSIGN_AMX = 1,
    CP_ASSIGN_PROBE = 2
} cp_assign_kind;
/* AMX when the CPU and kernel allow it, unless CP_ASSIGN=blas (or CP_FORCE_PORTABLE=1)
 * in the environment; CP_ASSIGN=probe asks for PROBE. The automatic choice for a call
 * also takes PROBE without AMX when K >= CP_PROBE_MIN_K (CP_ASSIGN=blas keeps it exact). */
cp_assign_kind cp_codec_assign_kind(void);
const char *cp_codec_assign_kind_name(cp_assign_kind kind);
/* cp_codec_assign / cp_codec_compress with an explicit kernel, for tests and benchmarks
 * (CP_EINVAL if that kernel is unavailable here). */
cp_status cp_codec_assign_with(cp_assign_kind kind, const float *centroids, int64_t k, int dim,
                               const float *vectors, int64_t n, int32_t *codes, int threads,
                               cp_error *err);
cp_status cp_codec_compress_with(cp_assign_kind kind, const cp_codec *codec, const float *vectors,
                                 int64_t n, int32_t *codes, uint8_t *residuals, int threads,
                                 cp_error *err);

/* Whether cp_codec_assign_l2 can run for k centroids here: with AMX, or with PROBE when
 * k >= CP_PROBE_MIN_K; never under CP_ASSIGN=blas (k-means then stays on FAISS). */
bool cp_codec_assign_l2_available(int64_t k);
/* Nearest centroid in L2 (argmax of x.c - |c|^2 / 2) on the AMX kernel, or else the PROBE
 * one, for k-means iterations; CP_EINVAL where neither applies (callers then leave it to
 * FAISS). */
cp_status cp_codec_assign_l2(const float *centroids, int64_t k, int dim, const float *vectors,
                             int64_t n, int32_t *codes, int threads, cp_error *err);

/* torch.quantile (linear interpolation) of values at each level in [0, 1]; sorts values in
 * place. n must be >= 1. */
void cp_codec_quantiles(float *values, size_t n, const double *levels, int n_levels, float *out);

/* Fill codec->bucket_cutoffs / bucket_weights / avg_residual from the residuals of n
 * held-out vectors, pooled over all dims: PLAID.md 1.6's quantiles, refined by Lloyd-Max
 * into the minimum-squared-error buckets (docs/static-model.md, "Quality"). For the SCALED
 * variant the residuals are divided by their RMS first, and the scale range is set from
 * the 0.1% and 99.9% quantiles of the held-out tokens' log scales. codec->dim, nbits,
 * variant, n_centroids and centroids must be set. */
cp_status cp_codec_train(cp_codec *codec, const float *heldout, int64_t n, int threads,
                         cp_error *err);

#endif
