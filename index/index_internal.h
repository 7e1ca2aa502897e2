/*
 * Index internals shared between the files of index/ (never included outside it, except
 * by tests and benchmarks).
 *
 * The in-memory snapshot is the unit searches read: immutable once published, flat arrays,
 * reference-counted so a writer can publish the next snapshot while searches still hold
 * the previous one.
 *
 * Residual bit order in memory ("natural" order): byte p of a token's residual holds dims
 * p*(8/nbits) .. p*(8/nbits) + 8/nbits - 1; the first of those dims sits in the
 * most-significant nbits-group of the byte, and each group stores its bucket index with the
 * usual bit significance (MSB first). The Stanford reference layout reverses the bits inside
 * each group (PLAID.md 1.7); cp_codec_reference_to_natural converts.
 */
#ifndef CP_INDEX_INTERNAL_H
#define CP_INDEX_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "colplaid/index.h"

/* ---------------------------------------------------------------------------------------
 * Codec (index/codec.c)
 * ------------------------------------------------------------------------------------ */

struct cp_probe_part;

typedef struct cp_codec {
    int dim;
    int nbits;
    int64_t n_centroids;
    float *centroids;                          /* n_centroids x dim, L2-normalised */
    float bucket_cutoffs[(1 << CP_MAX_NBITS) - 1]; /* 2^nbits - 1 used */
    float bucket_weights[1 << CP_MAX_NBITS];   /* 2^nbits used */
    float avg_residual;                        /* diagnostics only */
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

/* Compress n vectors (n x dim, already L2-normalised): nearest centroid by inner product,
 * residual bucketised with the global cutoffs, packed in natural order. */
cp_status cp_codec_compress(const cp_codec *codec, const float *vectors, int64_t n,
                            int32_t *codes, uint8_t *residuals, int threads, cp_error *err);

/* Reconstruct one token: centroid + bucket weights, then L2-normalise (PLAID.md 1.8).
 * The portable reference that every faster decoder is tested against. */
void cp_codec_decompress_one(const cp_codec *codec, int32_t code, const uint8_t *residual,
                             float *out);

/* Convert packed residual bytes from the Stanford reference layout to natural order (in
 * place); the conversion is its own inverse. */
void cp_codec_reference_to_natural(uint8_t *bytes, size_t n_bytes, int nbits);

void cp_codec_free_arrays(cp_codec *codec);

/* --- Added by the index-build work (codec.c, kmeans.c) --- */

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
cp_status cp_codec_compress_with(cp_assign_kind kind, const cp_codec *codec,
                                 const float *vectors, int64_t n, int32_t *codes,
                                 uint8_t *residuals, int threads, cp_error *err);

/* Whether cp_codec_assign_l2 can run for k centroids here: with AMX, or with PROBE when
 * k >= CP_PROBE_MIN_K; never under CP_ASSIGN=blas (k-means then stays on FAISS). */
bool cp_codec_assign_l2_available(int64_t k);
/* Nearest centroid in L2 (argmax of x.c - |c|^2 / 2) on the AMX kernel, or else the PROBE
 * one, for k-means iterations; CP_EINVAL where neither applies (callers then leave it to
 * FAISS). */
cp_status cp_codec_assign_l2(const float *centroids, int64_t k, int dim, const float *vectors,
                             int64_t n, int32_t *codes, int threads, cp_error *err);

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

/* codec_probe.c: the centroids grouped around ~sqrt(k) group means (cent/bias/ids: the
 * centroids reordered so that group i is rows off[i] .. off[i+1]). */
#define CP_PROBE_MIN_K 4096
typedef struct cp_probe_part {
    int64_t k;
    int dim, g, nprobe;
    float *coarse, *coarse_bias; /* g x dim group means, -|mean|^2 / 2 */
    float *cent, *bias;          /* k x dim, k (bias NULL when none) */
    int32_t *ids;                /* original id of each reordered row */
    int64_t *off;                /* g + 1 */
} cp_probe_part;
/* Probed groups per vector (8: 0.99 agreement with the exact choice on SciFact's static
 * model tokens at K = 32,768, see tests/index/test_assign). */
int cp_probe_default_nprobe(int64_t k);
cp_status cp_probe_part_build(cp_probe_part *p, const float *centroids, const float *bias,
                              int64_t k, int dim, int nprobe, cp_error *err);
void cp_probe_part_free(cp_probe_part *p);
/* Codes of m vectors; -1 if scratch cannot be allocated. Thread-safe on a shared p; calls
 * BLAS (the caller keeps BLAS single-threaded when it runs workers). */
int cp_probe_assign(const cp_probe_part *p, const float *v, int64_t m, int32_t *codes);
/* bias: k floats added to the scores, or NULL for none. */
cp_status cp_amx_centroids_pack(cp_amx_centroids *pc, const float *centroids, const float *bias,
                                int64_t k, int dim, cp_error *err);
void cp_amx_centroids_free(cp_amx_centroids *pc);
/* Codes of m vectors (row-major, dim floats each); -1 if scratch cannot be allocated.
 * Any thread may call it concurrently on the same pc. */
int cp_assign_amx(const cp_amx_centroids *pc, const float *v, int64_t m, int32_t *codes);

/* torch.quantile (linear interpolation) of values at each level in [0, 1]; sorts values in
 * place. n must be >= 1. */
void cp_codec_quantiles(float *values, size_t n, const double *levels, int n_levels, float *out);

/* Fill codec->bucket_cutoffs / bucket_weights / avg_residual from the residuals of n
 * held-out vectors, pooled over all dims: PLAID.md 1.6's quantiles, refined by Lloyd-Max
 * into the minimum-squared-error buckets (docs/static-model.md, "Quality"). codec->dim,
 * nbits, n_centroids and centroids must be set. */
cp_status cp_codec_train(cp_codec *codec, const float *heldout, int64_t n, int threads,
                         cp_error *err);

/* PLAID.md 1.2: documents sampled for k-means, min(1 + floor(16 sqrt(120 n)), n)
 * (index/build.c). */
int64_t cp_build_sample_size(int64_t n_docs);

/* ---------------------------------------------------------------------------------------
 * k-means (index/kmeans.c)
 * ------------------------------------------------------------------------------------ */

/* PLAID's K = 2^floor(log2(16 sqrt(e_est))), clamped to [1, n_points]. */
int64_t cp_kmeans_default_k(double e_est, int64_t n_points);

/* Plain Euclidean k-means through FAISS (seeded, niter iterations, at most
 * max_points_per_centroid * k training points), then L2-normalised centroids written to
 * centroids (k x dim). k must be <= n. */
cp_status cp_kmeans_train(const float *x, int64_t n, int dim, int64_t k, int niter,
                          uint64_t seed, int max_points_per_centroid, int threads,
                          float *centroids, cp_error *err);

/* ---------------------------------------------------------------------------------------
 * Snapshot (index/snapshot.c builds it from storage; search.c reads it)
 * ------------------------------------------------------------------------------------ */

/* Arrays shared by successive snapshots of a live index (index/snapshot.c). A live write
 * appends beyond the end that published snapshots read (cap leaves room), so the next
 * snapshot shares the same memory instead of copying it; the arrays are freed with the
 * last snapshot that uses them. a/b are plain arrays; strings (if any) is an array of
 * n_strings malloc'd strings, freed too. */
typedef struct cp_shared {
    _Atomic int refcount;
    void *a, *b;
    char **strings;
    int64_t n_strings;
    int64_t cap; /* elements a/b/strings have room for (tokens or slots) */
} cp_shared;

void cp_shared_release(cp_shared *sh);

typedef struct cp_snapshot {
    _Atomic int refcount;
    cp_codec codec;

    /* Documents by internal id. Slots exist for every id in [0, n_slots); a slot that is
     * deleted (or was never used) has zero tokens and deleted[id] = 1. */
    int64_t n_slots;
    int64_t n_live;
    int64_t *doc_offsets; /* n_slots + 1: tokens of doc d are [doc_offsets[d], doc_offsets[d+1]) */
    uint8_t *deleted;     /* n_slots */
    char **external_ids;  /* n_slots; NULL for unused slots */

    /* Token data, in internal-id order. */
    int64_t n_tokens;
    int32_t *codes;      /* n_tokens */
    uint8_t *residuals;  /* n_tokens x cp_residual_bytes(dim, nbits), natural bit order */

    /* IVF in CSR form: centroid c -> sorted unique live doc ids ivf_docs[ivf_offsets[c] ..
     * ivf_offsets[c+1]). Doc ids are int32 (an index holds < 2^31 document slots). */
    int64_t *ivf_offsets; /* n_centroids + 1 */
    int32_t *ivf_docs;

    /* --- Live-index fields (index/live.c). A snapshot loaded from the file has none of
     * these set beyond ivf_base_slots = n_slots. In a snapshot derived by a write:
     * - a deleted slot may still own tokens (its old version, until compaction or reload):
     *   readers must test deleted[], as search does;
     * - the IVF above covers slots [0, ivf_base_slots) and may still list deleted docs
     *   (ivf_stale of them); slots [ivf_base_slots, n_slots) are in the delta IVF below,
     *   same CSR form (NULL when empty). Stage 1 reads both. */
    int64_t ivf_base_slots;
    int64_t *ivf_delta_offsets; /* n_centroids + 1, or NULL */
    int32_t *ivf_delta_docs;
    int64_t ivf_stale;
    /* Owners of shared arrays (NULL: the arrays belong to this snapshot alone). */
    cp_shared *codec_owner; /* a = codec.centroids */
    cp_shared *tok_owner;   /* a = codes, b = residuals */
    cp_shared *slot_owner;  /* a = doc_offsets, strings = external_ids */
    cp_shared *ivf_owner;   /* a = ivf_offsets, b = ivf_docs */
    cp_shared *delta_owner; /* a = ivf_delta_offsets, b = ivf_delta_docs */
} cp_snapshot;

/* The next snapshot of a live index: shares cur's codec, token, slot and IVF arrays (the
 * token and slot arrays with room for add_tokens / add_slots more, copied once into larger
 * arrays when they lack it: amortised O(1) per token), copies deleted[] and gives the new
 * slots no tokens yet. The caller appends, then calls cp_snapshot_refresh_ivf. Call with
 * the index's write lock held: it reuses the space beyond cur's end. */
cp_status cp_snapshot_derive(const cp_snapshot *cur, int64_t add_slots, int64_t add_tokens,
                             cp_snapshot **out, cp_error *err);

/* After a derive and the caller's changes: rebuild the delta IVF for new slots (O(their
 * tokens + K)), or the whole IVF when the delta or the stale entries have grown large
 * (amortised O(1) per token). */
cp_status cp_snapshot_refresh_ivf(cp_snapshot *snap, bool added, cp_error *err);

/* The drift reference of a codec (docs/live-index.md): p75/p99 of the residual norms of n
 * held-out normalised vectors, as the JSON stored in meta "drift" (malloc'd). */
cp_status cp_drift_reference_json(const cp_codec *codec, const float *heldout, int64_t n,
                                  int threads, char **json, cp_error *err);

/* Validate one document (non-empty id, >= 1 token) and copy its vectors L2-normalised into
 * out (n_tokens x dim); NaN/Inf or all-zero rows are CP_EINVAL (the builder's rules,
 * index/build.c). src names the input in messages. */
cp_status cp_doc_normalise(const cp_document *doc, int dim, const char *src, int64_t ordinal,
                           float *out, cp_error *err);

void cp_snapshot_retain(cp_snapshot *snap);
void cp_snapshot_release(cp_snapshot *snap);

/* Build ivf_offsets/ivf_docs from codes and doc_offsets (PLAID.md 1.10). */
cp_status cp_snapshot_build_ivf(cp_snapshot *snap, cp_error *err);

/* Search over a snapshot directly (cp_index_search wraps this). */
cp_status cp_snapshot_search(const cp_snapshot *snap, const float *query, int n_q,
                             const cp_search_params *params, cp_hit *hits, int *n_hits,
                             cp_search_timing *timing, cp_error *err);

/* The current snapshot of an open index, retained for the caller (release when done). */
cp_snapshot *cp_index_acquire_snapshot(cp_index *index);

/* Make snap (refcount 1, owned by the index from now on) the index's current snapshot:
 * builds its external-id map, then swaps it in atomically for readers; searches holding
 * the previous snapshot keep it until they release it (index/index.c). */
cp_status cp_index_publish_snapshot(cp_index *index, cp_snapshot *snap, cp_error *err);

/* --- Live writes (index/index.c, used by index/live.c) --- */

/* Writers of one index take this lock (a cp_index may be shared by server threads). */
void cp_index_write_lock(cp_index *index);
void cp_index_write_unlock(cp_index *index);

/* The next view (snapshot + external-id map), prepared before the write commits so that
 * after the commit only a pointer swap remains (which cannot fail). The map is updated
 * incrementally from the current one: removed slots out, slots >= first_new_slot in. */
typedef struct cp_view_next cp_view_next;
cp_status cp_index_view_prepare(cp_index *index, cp_snapshot *next, const int64_t *removed,
                                size_t n_removed, int64_t first_new_slot, cp_view_next **out,
                                cp_error *err);
void cp_index_view_swap(cp_index *index, cp_view_next *v); /* consumes v */
void cp_index_view_discard(cp_view_next *v);               /* consumes v and its snapshot */


/* ---------------------------------------------------------------------------------------
 * Index handle access and metadata filters (added for index/filter.c and server tests)
 * ------------------------------------------------------------------------------------ */

/* The file path the index was opened from (owned by the index). Implemented in index.c. */
const char *cp_index_path(cp_index *index);

/* A JSON filter compiled to one parameterised SQL statement over `documents` that selects
 * the sorted internal ids of matching live documents (index/filter.c). */
typedef struct cp_filter_sql cp_filter_sql;
cp_status cp_filter_compile(const char *filter_json, size_t len, cp_filter_sql **out,
                            cp_error *err);
const char *cp_filter_sql_text(const cp_filter_sql *f);
void cp_filter_sql_free(cp_filter_sql *f);
/* Run a compiled filter on an open SQLite connection (a sqlite3 *, untyped here so that
 * this header does not need sqlite3.h). */
cp_status cp_filter_run(const cp_filter_sql *f, void *sqlite_db, int64_t **doc_ids,
                        size_t *n_ids, cp_error *err);

#endif
