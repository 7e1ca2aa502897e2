/*
 * The ColBERTv2 residual codec (PLAID.md 1.5-1.8): a token vector becomes the id of its
 * nearest centroid (by inner product) plus its residual quantised to nbits per dimension
 * with global bucket cutoffs, packed in natural bit order (codec.h).
 *
 * Why it looks like this:
 * - Nearest-centroid search is the one heavy step of an index build (tokens x K x dim
 *   multiply-adds). Where the CPU has AMX it runs on bf16 tiles with a fused running
 *   maximum and fp32 rescoring of the finalists (codec_amx.c, ~10x faster); otherwise, and
 *   as the exact reference, as blocked sgemm (BLAS) followed by a row argmax, blocks sized
 *   so each thread's score matrix stays around 16 MB whatever K is. Without AMX and with
 *   K >= 4096 the automatic choice is the approximate PROBE kernel (codec_probe.c), which
 *   scores only the centroids of the few groups nearest to a token.
 * - Bucketisation and packing are per token and cheap; each worker thread does them for
 *   the blocks it scored.
 * - cp_codec_decompress_one is the slow, obviously-correct reference; faster decoders in
 *   search are tested against it.
 *
 * Invariants: cutoffs are sorted ascending; bucket(x) = #{cutoffs < x} (a value equal to a
 * cutoff goes to the lower bucket, like torch.bucketize(right=False)); nbits is 1, 2, 4 or 8
 * and dim is a multiple of 8.
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_cpu.h"
#include "codec.h"
#include "codec_amx.h"
#include "codec_probe.h"

/* Below this many vectors the AMX path's per-call centroid conversion (K x dim) costs more
 * than the sgemm it saves, so small live upserts stay on BLAS. */
#define CP_AMX_MIN_VECTORS 256
/* Rows an AMX worker claims at a time: two of the kernel's 512-vector superblocks. */
#define CP_AMX_BLOCK_ROWS 1024

bool cp_codec_nbits_supported(int nbits)
{
    return nbits == 1 || nbits == 2 || nbits == 4 || nbits == 8;
}

int cp_codec_bucketize(const float *cutoffs, int n_cutoffs, float x)
{
    /* Binary search for the number of cutoffs strictly below x. */
    int lo = 0, hi = n_cutoffs;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cutoffs[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void cp_codec_pack_natural(const uint8_t *buckets, int dim, int nbits, uint8_t *out)
{
    int per_byte = 8 / nbits;
    int n_bytes = dim * nbits / 8;
    for (int p = 0; p < n_bytes; p++) {
        unsigned byte = 0;
        for (int i = 0; i < per_byte; i++)
            byte |= (unsigned)buckets[p * per_byte + i] << (8 - nbits * (i + 1));
        out[p] = (uint8_t)byte;
    }
}

void cp_codec_unpack_natural(const uint8_t *packed, int dim, int nbits, uint8_t *buckets)
{
    int per_byte = 8 / nbits;
    unsigned mask = (1u << nbits) - 1;
    for (int j = 0; j < dim; j++) {
        unsigned byte = packed[j / per_byte];
        buckets[j] = (uint8_t)((byte >> (8 - nbits * (j % per_byte + 1))) & mask);
    }
}

void cp_codec_reference_to_natural(uint8_t *bytes, size_t n_bytes, int nbits)
{
    if (nbits <= 0 || nbits > 8 || 8 % nbits) return;
    /* One 256-entry table: every nbits-group of the byte with its bits reversed. Built on
     * the stack per call (256 tiny steps) so there is no global state. */
    uint8_t lut[256];
    unsigned mask = (1u << nbits) - 1;
    for (unsigned v = 0; v < 256; v++) {
        unsigned outv = 0;
        for (int g = 0; g < 8; g += nbits) {
            unsigned group = (v >> g) & mask, rev = 0;
            for (int b = 0; b < nbits; b++)
                if (group & (1u << b)) rev |= 1u << (nbits - 1 - b);
            outv |= rev << g;
        }
        lut[v] = (uint8_t)outv;
    }
    for (size_t i = 0; i < n_bytes; i++)
        bytes[i] = lut[bytes[i]];
}

const char *cp_codec_variant_name(int variant)
{
    return variant == CP_CODEC_SCALED ? "scaled" : "colbert";
}

bool cp_codec_variant_parse(const char *name, int *variant)
{
    if (!name) return false;
    if (strcmp(name, "colbert") == 0)
        *variant = CP_CODEC_COLBERT;
    else if (strcmp(name, "scaled") == 0)
        *variant = CP_CODEC_SCALED;
    else
        return false;
    return true;
}

/* Scale byte k >= 1 stands for exp(lo + (hi - lo) (k - 1) / 254); byte 0 for 0. */
void cp_codec_init_scales(cp_codec *codec)
{
    memset(codec->scales, 0, sizeof codec->scales);
    if (codec->variant != CP_CODEC_SCALED) return;
    double lo = codec->scale_log_min, hi = codec->scale_log_max;
    for (int k = 1; k < 256; k++)
        codec->scales[k] = (float)exp(lo + (hi - lo) * (double)(k - 1) / 254.0);
}

/* The scale byte of a least-squares scale s (0 when s <= 0 or not finite). */
static uint8_t scale_byte(const cp_codec *codec, double s)
{
    if (!(s > 0) || !isfinite(s)) return 0;
    double lo = codec->scale_log_min, hi = codec->scale_log_max;
    double u = hi > lo ? (log(s) - lo) / (hi - lo) * 254.0 : 0.0;
    if (!(u >= 0)) u = 0; /* also NaN */
    if (u > 254) u = 254;
    return (uint8_t)(1 + lround(u));
}

void cp_codec_decompress_one(const cp_codec *codec, int32_t code, const uint8_t *residual,
                             float *out)
{
    int dim = codec->dim;
    const float *c = codec->centroids + (size_t)code * (size_t)dim;
    int per_byte = 8 / codec->nbits;
    unsigned mask = (1u << codec->nbits) - 1;
    double norm2 = 0;
    bool scaled = codec->variant == CP_CODEC_SCALED;
    float scale = scaled ? codec->scales[residual[cp_residual_bytes(dim, codec->nbits)]] : 1.0f;
    for (int j = 0; j < dim; j++) {
        unsigned byte = residual[j / per_byte];
        unsigned b = (byte >> (8 - codec->nbits * (j % per_byte + 1))) & mask;
        out[j] = scaled ? c[j] + scale * codec->bucket_weights[b] : c[j] + codec->bucket_weights[b];
        norm2 += (double)out[j] * out[j];
    }
    if (norm2 > 0) {
        float inv = (float)(1.0 / sqrt(norm2));
        for (int j = 0; j < dim; j++)
            out[j] *= inv;
    }
}

void cp_codec_free_arrays(cp_codec *codec)
{
    if (!codec) return;
    free(codec->centroids);
    codec->centroids = NULL;
    if (codec->probe) cp_probe_part_free(codec->probe);
    free(codec->probe);
    codec->probe = NULL;
}

/* ---------------------------------------------------------------------------------------
 * Nearest centroid (blocked sgemm + argmax) and compression.
 * ------------------------------------------------------------------------------------ */

/* Work shared by the assignment threads: each claims blocks of rows from next_block,
 * scores them with a single-threaded sgemm and post-processes them itself, so the argmax
 * and packing of one block overlap the sgemm of another (on two cores, BLAS-internal
 * threading left one core spinning during every epilogue). */
typedef struct assign_shared {
    const cp_codec *codec; /* for compression; NULL when only codes are wanted */
    const cp_amx_centroids *amx; /* the AMX kernel's centroids, or NULL */
    const cp_probe_part *probe;  /* the PROBE kernel's groups, or NULL */
    const float *centroids;
    int64_t k;
    int dim;
    const float *vectors;
    int64_t n, block;
    int32_t *codes;
    uint8_t *residuals; /* n x residual bytes, or NULL */
    _Atomic int64_t next_block;
    _Atomic int failed;
} assign_shared;

/* SCALED: buckets of r / rms(r), then the least-squares scale of the chosen weights
 * (<r, w> / <w, w>), so the decoded residual scale * w is the closest to r along w. */
static void compress_row_scaled(const cp_codec *codec, const float *v, const float *c,
                                uint8_t *buckets, uint8_t *out)
{
    int dim = codec->dim, n_cut = (1 << codec->nbits) - 1;
    if (dim <= 0 || dim > 4096) return; /* compress checked; tells GCC the loops run */
    float r[4096];
    double ss = 0;
    for (int j = 0; j < dim; j++) {
        r[j] = v[j] - c[j];
        ss += (double)r[j] * r[j];
    }
    double rms = sqrt(ss / dim), rw = 0, ww = 0;
    for (int j = 0; j < dim; j++) {
        int b = rms > 0 ? cp_codec_bucketize(codec->bucket_cutoffs, n_cut, (float)(r[j] / rms)) : 0;
        buckets[j] = (uint8_t)b;
        double w = codec->bucket_weights[b];
        rw += (double)r[j] * w;
        ww += w * w;
    }
    cp_codec_pack_natural(buckets, dim, codec->nbits, out);
    out[cp_residual_bytes(dim, codec->nbits)] = rms > 0 && ww > 0 ? scale_byte(codec, rw / ww) : 0;
}

static void compress_row(const cp_codec *codec, const float *v, int32_t code, uint8_t *out)
{
    int dim = codec->dim, n_cut = (1 << codec->nbits) - 1;
    const float *c = codec->centroids + (size_t)code * (size_t)dim;
    uint8_t buckets[4096];
    if (codec->variant == CP_CODEC_SCALED) {
        compress_row_scaled(codec, v, c, buckets, out);
        return;
    }
    for (int j = 0; j < dim; j++)
        buckets[j] = (uint8_t)cp_codec_bucketize(codec->bucket_cutoffs, n_cut, v[j] - c[j]);
    cp_codec_pack_natural(buckets, dim, codec->nbits, out);
}

/* Row argmax; the first maximum wins, like torch.argmax. */
static int64_t row_argmax(const float *s, int64_t k)
{
    int64_t best = 0;
    float best_s = s[0];
    for (int64_t c = 1; c < k; c++)
        if (s[c] > best_s) {
            best_s = s[c];
            best = c;
        }
    return best;
}

/* Claims the next block of rows [*start, *start + *m); false when none is left or another
 * worker has failed. */
static bool claim_block(assign_shared *sh, int64_t *start, int64_t *m)
{
    *start = atomic_fetch_add(&sh->next_block, 1) * sh->block;
    if (*start >= sh->n || atomic_load(&sh->failed)) return false;
    *m = sh->n - *start < sh->block ? sh->n - *start : sh->block;
    return true;
}

/* AMX or PROBE worker: the kernel scores and picks; this packs the residuals of each
 * block. */
static void *assign_worker_amx(void *arg)
{
    assign_shared *sh = arg;
    int rb = sh->codec ? cp_codec_token_bytes(sh->codec) : 0;
    int64_t start, m;
    while (claim_block(sh, &start, &m)) {
        const float *v = sh->vectors + start * sh->dim;
        int rc = sh->amx ? cp_assign_amx(sh->amx, v, m, sh->codes + start)
                         : cp_probe_assign(sh->probe, v, m, sh->codes + start);
        if (rc != 0) {
            atomic_store(&sh->failed, 1);
            break;
        }
        if (sh->residuals)
            for (int64_t r = 0; r < m; r++)
                compress_row(sh->codec, v + r * sh->dim, sh->codes[start + r],
                             sh->residuals + (start + r) * rb);
    }
    return NULL;
}

static void *assign_worker(void *arg)
{
    assign_shared *sh = arg;
    if (sh->amx || sh->probe) return assign_worker_amx(arg);
    float *scores = malloc((size_t)sh->block * (size_t)sh->k * sizeof *scores);
    if (!scores) {
        atomic_store(&sh->failed, 1);
        return NULL;
    }
    int rb = sh->codec ? cp_codec_token_bytes(sh->codec) : 0;
    int64_t start, m;
    while (claim_block(sh, &start, &m)) {
        const float *v = sh->vectors + start * sh->dim;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)sh->k, sh->dim,
                    1.0f, v, sh->dim, sh->centroids, sh->dim, 0.0f, scores, (blasint)sh->k);
        for (int64_t r = 0; r < m; r++) {
            int64_t best = row_argmax(scores + r * sh->k, sh->k);
            sh->codes[start + r] = (int32_t)best;
            if (sh->residuals)
                compress_row(sh->codec, v + r * sh->dim, (int32_t)best,
                             sh->residuals + (start + r) * rb);
        }
    }
    free(scores);
    return NULL;
}

/* Our worker threads each run a single-threaded sgemm (BLAS's own pool would only compete
 * with them). OpenBLAS's thread count is process-wide, so concurrent compress calls share
 * one saved value: the first to enter saves and lowers it, the last to leave restores it.
 * This lock and counter are the file's only mutable global state. */
static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_users, blas_saved_threads;

static void blas_single_enter(void)
{
    pthread_mutex_lock(&blas_lock);
    if (blas_users++ == 0) {
        blas_saved_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_lock);
}

static void blas_single_leave(void)
{
    pthread_mutex_lock(&blas_lock);
    if (--blas_users == 0) openblas_set_num_threads(blas_saved_threads);
    pthread_mutex_unlock(&blas_lock);
}

static int64_t block_rows(int64_t k)
{
    /* Keep a thread's score matrix near 4M floats (16 MB). */
    int64_t rows = (int64_t)4 * 1024 * 1024 / (k > 0 ? k : 1);
    if (rows > 1024) rows = 1024;
    if (rows < 16) rows = 16;
    return rows;
}

static bool forced(const char *kind)
{
    const char *force = getenv("CP_ASSIGN");
    return force && strcmp(force, kind) == 0;
}

cp_assign_kind cp_codec_assign_kind(void)
{
    if (forced("blas")) return CP_ASSIGN_BLAS;
    if (forced("probe")) return CP_ASSIGN_PROBE;
    return cp_assign_amx_available() ? CP_ASSIGN_AMX : CP_ASSIGN_BLAS;
}

const char *cp_codec_assign_kind_name(cp_assign_kind kind)
{
    switch (kind) {
    case CP_ASSIGN_AMX:
        return "amx-bf16+fp32-rescore";
    case CP_ASSIGN_PROBE:
        return "probe-fp32";
    default:
        return "blas-fp32";
    }
}

/* bias (AMX only): k values added to the scores, or NULL. */
static cp_status assign_impl(cp_assign_kind kind, const cp_codec *codec, const float *centroids,
                             const float *bias, int64_t k, int dim, const float *vectors,
                             int64_t n, int32_t *codes, uint8_t *residuals, int threads,
                             cp_error *err)
{
    if (k <= 0 || k > INT32_MAX || dim <= 0)
        return cp_error_set(err, CP_EINVAL, "codec: bad shape (%lld centroids, dim %d)",
                            (long long)k, dim);
    if (kind == CP_ASSIGN_AMX && !cp_assign_amx_available())
        return cp_error_set(err, CP_EINVAL, "codec: the AMX kernel is not available here");
    if (n <= 0) return CP_OK;
    cp_amx_centroids amx;
    if (kind == CP_ASSIGN_AMX) {
        cp_status st = cp_amx_centroids_pack(&amx, centroids, bias, k, dim, err);
        if (st != CP_OK) return st;
    }
    cp_probe_part probe;
    const cp_probe_part *prepared = codec && !bias ? codec->probe : NULL;
    bool own_probe = kind == CP_ASSIGN_PROBE && !prepared;
    if (own_probe) {
        cp_status st =
            cp_probe_part_build(&probe, centroids, bias, k, dim, cp_probe_default_nprobe(k), err);
        if (st != CP_OK) return st;
    }
    assign_shared sh = {.codec = codec,
                        .amx = kind == CP_ASSIGN_AMX ? &amx : NULL,
                        .probe = kind != CP_ASSIGN_PROBE ? NULL
                                 : own_probe             ? &probe
                                                         : prepared,
                        .centroids = centroids,
                        .k = k,
                        .dim = dim,
                        .vectors = vectors,
                        .n = n,
                        .block = kind == CP_ASSIGN_BLAS ? block_rows(k) : CP_AMX_BLOCK_ROWS * 4,
                        .codes = codes,
                        .residuals = residuals};
    if (sh.block > n) sh.block = n;
    int64_t n_blocks = (n + sh.block - 1) / sh.block;
    if (threads <= 0) threads = 1;
    if (threads > 64) threads = 64;
    if (threads > n_blocks) threads = (int)n_blocks;
    bool blas_mt = threads > 1 && kind != CP_ASSIGN_AMX;
    if (blas_mt) blas_single_enter();
    pthread_t tids[64];
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tids[started], NULL, assign_worker, &sh) == 0) started++;
    assign_worker(&sh);
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    if (blas_mt) blas_single_leave();
    if (kind == CP_ASSIGN_AMX) cp_amx_centroids_free(&amx);
    if (own_probe) cp_probe_part_free(&probe);
    if (atomic_load(&sh.failed))
        return cp_error_set(err, CP_ENOMEM, "codec: out of memory for a %lld x %lld score block",
                            (long long)sh.block, (long long)k);
    return CP_OK;
}

/* The automatic choice for n vectors and k centroids. Grouping the centroids costs about
 * 5 k sqrt(k) dim multiply-adds, so PROBE pays from a few thousand vectors on. */
static cp_assign_kind auto_kind(int64_t n, int64_t k)
{
    if (n < CP_AMX_MIN_VECTORS) return CP_ASSIGN_BLAS;
    cp_assign_kind kind = cp_codec_assign_kind();
    if (kind == CP_ASSIGN_BLAS && !forced("blas") && k >= CP_PROBE_MIN_K && n >= 4096)
        return CP_ASSIGN_PROBE;
    return kind;
}

cp_status cp_codec_prepare_probe(cp_codec *codec, cp_error *err)
{
    int64_t k = codec->n_centroids;
    if (codec->probe || auto_kind(1 << 20, k) != CP_ASSIGN_PROBE) return CP_OK;
    cp_probe_part *p = malloc(sizeof *p);
    if (!p) return cp_error_set(err, CP_ENOMEM, "codec: out of memory");
    cp_status st = cp_probe_part_build(p, codec->centroids, NULL, k, codec->dim,
                                       cp_probe_default_nprobe(k), err);
    if (st != CP_OK) {
        free(p);
        return st;
    }
    codec->probe = p;
    return CP_OK;
}

bool cp_codec_assign_l2_available(int64_t k)
{
    if (forced("blas")) return false;
    return cp_assign_amx_available() || k >= CP_PROBE_MIN_K || forced("probe");
}

cp_status cp_codec_assign_with(cp_assign_kind kind, const float *centroids, int64_t k, int dim,
                               const float *vectors, int64_t n, int32_t *codes, int threads,
                               cp_error *err)
{
    return assign_impl(kind, NULL, centroids, NULL, k, dim, vectors, n, codes, NULL, threads,
                       err);
}

cp_status cp_codec_assign_l2(const float *centroids, int64_t k, int dim, const float *vectors,
                             int64_t n, int32_t *codes, int threads, cp_error *err)
{
    if (k <= 0 || dim <= 0)
        return cp_error_set(err, CP_EINVAL, "codec: bad shape (%lld centroids, dim %d)",
                            (long long)k, dim);
    float *bias = malloc((size_t)k * sizeof *bias);
    if (!bias) return cp_error_set(err, CP_ENOMEM, "codec: out of memory for %lld norms",
                                   (long long)k);
    for (int64_t c = 0; c < k; c++) {
        double n2 = 0;
        for (int j = 0; j < dim; j++)
            n2 += (double)centroids[c * dim + j] * centroids[c * dim + j];
        bias[c] = (float)(-0.5 * n2);
    }
    cp_assign_kind kind =
        cp_assign_amx_available() && !forced("probe") ? CP_ASSIGN_AMX : CP_ASSIGN_PROBE;
    cp_status st =
        assign_impl(kind, NULL, centroids, bias, k, dim, vectors, n, codes, NULL, threads, err);
    free(bias);
    return st;
}

cp_status cp_codec_assign(const float *centroids, int64_t k, int dim, const float *vectors,
                          int64_t n, int32_t *codes, int threads, cp_error *err)
{
    return cp_codec_assign_with(auto_kind(n, k), centroids, k, dim, vectors, n, codes, threads,
                                err);
}

cp_status cp_codec_compress_with(cp_assign_kind kind, const cp_codec *codec,
                                 const float *vectors, int64_t n, int32_t *codes,
                                 uint8_t *residuals, int threads, cp_error *err)
{
    if (!cp_codec_nbits_supported(codec->nbits) || codec->dim % 8 || codec->dim > 4096)
        return cp_error_set(err, CP_EINVAL, "codec: unsupported nbits %d / dim %d", codec->nbits,
                            codec->dim);
    return assign_impl(kind, codec, codec->centroids, NULL, codec->n_centroids, codec->dim,
                       vectors, n, codes, residuals, threads, err);
}

cp_status cp_codec_compress(const cp_codec *codec, const float *vectors, int64_t n, int32_t *codes,
                            uint8_t *residuals, int threads, cp_error *err)
{
    return cp_codec_compress_with(auto_kind(n, codec->n_centroids), codec, vectors, n, codes,
                                  residuals, threads, err);
}

/* ---------------------------------------------------------------------------------------
 * Training the buckets: held-out residual quantiles (PLAID.md 1.6), then Lloyd-Max.
 * ------------------------------------------------------------------------------------ */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void cp_codec_quantiles(float *values, size_t n, const double *levels, int n_levels, float *out)
{
    qsort(values, n, sizeof *values, cmp_float);
    for (int i = 0; i < n_levels; i++) {
        /* torch.quantile's default: linear interpolation between order statistics. */
        double pos = levels[i] * (double)(n - 1);
        size_t lo = (size_t)floor(pos), hi = (size_t)ceil(pos);
        if (hi >= n) hi = n - 1;
        if (lo >= n) lo = n - 1;
        double frac = pos - (double)lo;
        out[i] = (float)((double)values[lo] + frac * ((double)values[hi] - (double)values[lo]));
    }
}

/* Lloyd-Max iterations stop when the partition of the sorted values stops changing or after
 * this many. On SciFact's static-model residuals (5.2M values) 1 bit takes 55, 2 bits 89,
 * 4 bits 484; 8 bits reaches the cap, its last moves being tiny. An iteration is 2^nbits
 * binary searches, so the cap costs milliseconds. */
#define CP_LLOYD_MAX_ITERS 1000

/* Index of the first sorted value > x: the end of the bucket whose upper cutoff is x
 * (bucket(x) counts cutoffs < x, so a value equal to a cutoff stays below it). */
static size_t upper_bound(const float *sorted, size_t n, float x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* One Lloyd step: each weight becomes the mean of its bucket (an empty bucket keeps its
 * weight), then each cutoff the midpoint of its neighbours. Returns whether any bucket
 * boundary moved. prefix[i] is the sum of the first i sorted values. */
static bool lloyd_step(const float *sorted, const double *prefix, size_t n, int n_opt,
                       float *cutoffs, float *weights, size_t *ends)
{
    bool moved = false;
    size_t begin = 0;
    for (int b = 0; b < n_opt; b++) {
        size_t end = b < n_opt - 1 ? upper_bound(sorted, n, cutoffs[b]) : n;
        if (end < begin) end = begin;
        if (end != ends[b]) moved = true;
        ends[b] = end;
        if (end > begin)
            weights[b] = (float)((prefix[end] - prefix[begin]) / (double)(end - begin));
        /* Keep the weights sorted so that the midpoints stay sorted cutoffs. */
        if (b > 0 && weights[b] < weights[b - 1]) weights[b] = weights[b - 1];
        begin = end;
    }
    for (int b = 0; b < n_opt - 1; b++)
        cutoffs[b] = (float)(0.5 * ((double)weights[b] + (double)weights[b + 1]));
    return moved;
}

/* Refine quantile buckets into the minimum-squared-error scalar quantiser of the pooled
 * residuals (Lloyd-Max). ColBERTv2's equal-population quantiles suit its near-Gaussian
 * residuals; on peaked, heavy-tailed ones (static word vectors: docs/static-model.md) they
 * spend the buckets on the crowded centre and clip the tail, and the tail holds the rare
 * words retrieval needs. sorted must be ascending. */
static cp_status lloyd_max_refine(const float *sorted, size_t n, int n_opt, float *cutoffs,
                                  float *weights, cp_error *err)
{
    double *prefix = malloc((n + 1) * sizeof *prefix);
    if (!prefix)
        return cp_error_set(err, CP_ENOMEM, "codec training: out of memory for %zu prefix sums",
                            n + 1);
    prefix[0] = 0;
    for (size_t i = 0; i < n; i++)
        prefix[i + 1] = prefix[i] + (double)sorted[i];
    size_t ends[1 << CP_MAX_NBITS];
    for (int b = 0; b < n_opt; b++)
        ends[b] = SIZE_MAX;
    for (int it = 0; it < CP_LLOYD_MAX_ITERS; it++)
        if (!lloyd_step(sorted, prefix, n, n_opt, cutoffs, weights, ends)) break;
    free(prefix);
    return CP_OK;
}

/* Writes each held-out vector's residual from its centroid into res (n x dim); returns
 * their mean absolute value. SCALED: each residual is then divided by its RMS (a zero
 * residual is left out: *n_out counts the rows written). */
static double heldout_residuals(const cp_codec *codec, const float *heldout, int64_t n,
                                const int32_t *codes, float *res, int64_t *n_out)
{
    int dim = codec->dim;
    double abs_sum = 0;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *c = codec->centroids + (size_t)codes[i] * (size_t)dim;
        float *row = res + m * dim;
        double ss = 0;
        for (int j = 0; j < dim; j++) {
            float r = heldout[i * dim + j] - c[j];
            row[j] = r;
            abs_sum += fabs((double)r);
            ss += (double)r * r;
        }
        if (codec->variant != CP_CODEC_SCALED) {
            m++;
        } else if (ss > 0) {
            double inv = 1.0 / sqrt(ss / dim);
            for (int j = 0; j < dim; j++)
                row[j] = (float)(row[j] * inv);
            m++;
        }
    }
    *n_out = m;
    return abs_sum / ((double)n * dim);
}

/* SCALED: the scale range, from the log least-squares scales of the held-out tokens under
 * the trained buckets (0.1% and 99.9% quantiles, so that one outlier does not coarsen the
 * step for all; scales outside are clamped). */
static cp_status train_scale_range(cp_codec *codec, const float *heldout, int64_t n,
                                   const int32_t *codes, cp_error *err)
{
    int dim = codec->dim, n_cut = (1 << codec->nbits) - 1;
    float *logs = malloc((size_t)(n > 0 ? n : 1) * sizeof *logs);
    if (!logs) return cp_error_set(err, CP_ENOMEM, "codec training: out of memory");
    size_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *c = codec->centroids + (size_t)codes[i] * (size_t)dim;
        const float *x = heldout + i * dim;
        double ss = 0, rw = 0, ww = 0;
        for (int j = 0; j < dim; j++)
            ss += ((double)x[j] - c[j]) * ((double)x[j] - c[j]);
        if (!(ss > 0)) continue;
        double rms = sqrt(ss / dim);
        for (int j = 0; j < dim; j++) {
            double r = (double)x[j] - c[j];
            double w = codec->bucket_weights[cp_codec_bucketize(codec->bucket_cutoffs, n_cut,
                                                                (float)(r / rms))];
            rw += r * w;
            ww += w * w;
        }
        if (ww > 0 && rw > 0) logs[m++] = (float)log(rw / ww);
    }
    float q[2] = {0, 0};
    if (m > 0) {
        const double levels[2] = {0.001, 0.999};
        cp_codec_quantiles(logs, m, levels, 2, q);
    }
    free(logs);
    codec->scale_log_min = q[0];
    codec->scale_log_max = q[1] - q[0] >= 1e-3f ? q[1] : q[0] + 1e-3f;
    cp_codec_init_scales(codec);
    return CP_OK;
}

/* ColBERTv2's buckets: cutoffs at the i/n_opt quantiles of the residuals, weights at the
 * (i + 0.5)/n_opt ones. Sorts values. */
static void quantile_buckets(float *values, size_t n, int n_opt, cp_codec *codec)
{
    double levels[1 << CP_MAX_NBITS] = {0}; /* zeroed for GCC, which cannot see n_opt >= 2 */
    for (int i = 1; i < n_opt; i++)
        levels[i - 1] = (double)i / n_opt;
    cp_codec_quantiles(values, n, levels, n_opt - 1, codec->bucket_cutoffs);
    /* values is sorted now; the second call only reads it. */
    for (int i = 0; i < n_opt; i++)
        levels[i] = (i + 0.5) / n_opt;
    cp_codec_quantiles(values, n, levels, n_opt, codec->bucket_weights);
}

cp_status cp_codec_train(cp_codec *codec, const float *heldout, int64_t n, int threads,
                         cp_error *err)
{
    int dim = codec->dim, nbits = codec->nbits;
    if (!cp_codec_nbits_supported(nbits))
        return cp_error_set(err, CP_EINVAL, "nbits must be 1, 2, 4 or 8 (got %d)", nbits);
    if (n <= 0)
        return cp_error_set(err, CP_EINVAL, "codec training needs at least one held-out vector");
    size_t total = (size_t)n * (size_t)dim;
    int32_t *codes = malloc((size_t)n * sizeof *codes);
    float *res = malloc(total * sizeof *res);
    if (!codes || !res) {
        free(codes);
        free(res);
        return cp_error_set(err, CP_ENOMEM, "codec training: out of memory for %lld vectors",
                            (long long)n);
    }
    cp_status st =
        cp_codec_assign(codec->centroids, codec->n_centroids, dim, heldout, n, codes, threads, err);
    if (st == CP_OK) {
        int64_t m = 0;
        codec->avg_residual = (float)heldout_residuals(codec, heldout, n, codes, res, &m);
        if (m == 0) { /* SCALED and every held-out vector on its centroid: any buckets do */
            res[0] = 0;
            m = 1;
            total = 1;
        } else {
            total = (size_t)m * (size_t)dim;
        }
        quantile_buckets(res, total, 1 << nbits, codec);
        st = lloyd_max_refine(res, total, 1 << nbits, codec->bucket_cutoffs, codec->bucket_weights,
                              err);
        if (st == CP_OK && codec->variant == CP_CODEC_SCALED)
            st = train_scale_range(codec, heldout, n, codes, err);
    }
    free(codes);
    free(res);
    return st;
}
