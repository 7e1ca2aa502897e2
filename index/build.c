/*
 * Building an index from a document stream (PLAID.md 1.1-1.10).
 *
 * Passes over the source:
 *   (count)    only if the source cannot tell its size;
 *   sampling   every document is visited once: external ids are checked for duplicates,
 *              and a seeded uniform sample of min(1 + floor(16 sqrt(120 N)), N) documents
 *              (Knuth's selection sampling, so no index array) has its embeddings
 *              validated, L2-normalised and kept (a seeded reservoir caps the tokens kept);
 *   train      shuffle, split off min(5%, 50k) held-out tokens, k-means on the rest, bucket
 *              cutoffs/weights from the held-out residuals;
 *   indexing   every document again: validate, L2-normalise, compress, and append to the
 *              store in segments of opts->segment_docs documents.
 *
 * Invariants and decisions:
 * - The whole build writes one new SQLite file beside the target under a temporary name,
 *   in one transaction, and renames it into place only when everything succeeded; on any
 *   failure the temporary file (and its -wal/-shm/-journal) is removed, so the target path
 *   is either untouched or the complete new index.
 * - Input is rejected, never repaired: a dim that is not a multiple of 8, duplicate ids,
 *   NaN/Inf or all-zero vectors, an empty corpus, and empty (zero-token) documents each fail
 *   with a message naming the source, the document id and the token. Empty documents are
 *   rejected because they can never be retrieved and the text encoder never produces them;
 *   silently dropping them would make ids disappear.
 * - Same seed + same input = same index (every random choice draws from one seeded
 *   splitmix64 stream; FAISS gets the seed too).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cp_progress.h"
#include "cp_strtab.h"
#include "build.h"
#include "calibrate.h"
#include "codec.h"
#include "drift.h"
#include "kmeans.h"
#include "pool.h"
#include "shard.h"
#include "storage.h"
#include "windows.h"

/* Tokens kept from the sample for training (k-means + held-out). FAISS would subsample to
 * 256 K points anyway; this cap bounds the memory of the sampling pass for huge corpora
 * (2^23 tokens x 128 dims x 4 bytes = 4 GiB at most). */
#define CP_BUILD_MAX_SAMPLE_TOKENS ((int64_t)1 << 23)
#define CP_MAX_POINTS_PER_CENTROID 256
/* Default for opts->kmeans_points_per_centroid: k-means trains on at most this many
 * (shuffled, so uniform) points per centroid. The reference lets FAISS use up to 256;
 * k-means cost is linear in the points and dominates a CPU build (see the build report for
 * the measured quality difference). */
#define CP_KMEANS_POINTS_PER_CENTROID 32
/* The codec of a build that names none (cp_build_options.codec NULL): residual norms kept
 * separately (bench/bench_codec, docs/index-format.md "Codecs"). */
#define CP_DEFAULT_CODEC "scaled"
/* Normalised vectors gathered before one compress call (bounded memory, big sgemm blocks). */
#define CP_COMPRESS_CHUNK_TOKENS 65536

void cp_build_options_init(cp_build_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->nbits = 2;
    opts->n_centroids = 0;
    opts->kmeans_iters = 4;
    opts->seed = 42;
    opts->threads = 0;
    opts->segment_docs = 4096;
    opts->force = false;
    opts->encoder_json = NULL;
    opts->progress = NULL;
    opts->kmeans_points_per_centroid = CP_KMEANS_POINTS_PER_CENTROID;
    opts->centroid_scale = 1;
    opts->doc_score = CP_DOC_SCORE_DEFAULT;
}

static int centroid_scale(const cp_build_options *o)
{
    return o->centroid_scale > 1 ? o->centroid_scale : 1;
}

/* ---------------------------------------------------------------------------------------
 * Small helpers: seeded randomness, id set, messages.
 * ------------------------------------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n). */
static int64_t rng_below(rng *r, int64_t n)
{
    return (int64_t)(rng_unit(r) * (double)n) % n;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void logf_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_line(FILE *f, const char *fmt, ...)
{
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

/* The set of external ids seen so far, to reject duplicates before any work: the ids in
 * order of arrival, indexed by a cp_strtab. */
typedef struct id_set {
    char **ids;
    size_t n, cap;
    cp_strtab index;
} id_set;

static const char *id_of(const void *set, int32_t row)
{
    return ((const id_set *)set)->ids[row];
}

static void id_set_free(id_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->ids[i]);
    free(set->ids);
    cp_strtab_free(&set->index);
    memset(set, 0, sizeof *set);
}

/* 1 added, 0 already present, -1 out of memory. */
static int id_set_add(id_set *set, const char *id)
{
    if (cp_strtab_find(&set->index, id, id_of, set) >= 0) return 0;
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        char **ids = realloc(set->ids, cap * sizeof *ids);
        if (!ids) return -1;
        set->ids = ids;
        set->cap = cap;
    }
    if (!cp_strtab_reserve(&set->index, 1, id_of, set)) return -1;
    if (!(set->ids[set->n] = strdup(id))) return -1;
    cp_strtab_insert(&set->index, id, (int32_t)set->n);
    set->n++;
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * Validation and normalisation of one document's vectors.
 * ------------------------------------------------------------------------------------ */

static cp_status check_doc_header(const cp_document *doc, const char *src, int64_t ordinal,
                                  cp_error *err)
{
    if (!doc->id || !doc->id[0])
        return cp_error_set(err, CP_EINVAL, "%s: document %lld has an empty id", src,
                            (long long)ordinal);
    if (doc->n_tokens == 0)
        return cp_error_set(err, CP_EINVAL,
                            "%s: document \"%s\" has no tokens (empty documents cannot be "
                            "indexed; remove it from the input)",
                            src, doc->id);
    if (doc->n_tokens < 0)
        return cp_error_set(err, CP_EINVAL, "%s: document \"%s\" has an invalid token count %d",
                            src, doc->id, (int)doc->n_tokens);
    return CP_OK;
}

/* Copy doc's vectors into out, L2-normalised; NaN/Inf or all-zero rows are errors. */
static cp_status normalise_doc(const cp_document *doc, int dim, const char *src, float *out,
                               cp_error *err)
{
    if (!doc->embeddings)
        return cp_error_set(err, CP_EINTERNAL, "%s: document \"%s\" came without embeddings", src,
                            doc->id);
    for (int32_t t = 0; t < doc->n_tokens; t++) {
        const float *v = doc->embeddings + (size_t)t * (size_t)dim;
        double n2 = 0;
        for (int j = 0; j < dim; j++)
            n2 += (double)v[j] * v[j];
        if (!isfinite(n2))
            return cp_error_set(err, CP_EINVAL,
                                "%s: document \"%s\" token %d contains NaN or Inf values", src,
                                doc->id, (int)t);
        if (n2 <= 0)
            return cp_error_set(err, CP_EINVAL,
                                "%s: document \"%s\" token %d is an all-zero vector", src, doc->id,
                                (int)t);
        float inv = (float)(1.0 / sqrt(n2));
        float *o = out + (size_t)t * (size_t)dim;
        for (int j = 0; j < dim; j++)
            o[j] = v[j] * inv;
    }
    return CP_OK;
}

/* The same rules for live writes (index/live.c). */
cp_status cp_doc_normalise(const cp_document *doc, int dim, const char *src, int64_t ordinal,
                           float *out, cp_error *err)
{
    cp_status st = check_doc_header(doc, src, ordinal, err);
    return st == CP_OK ? normalise_doc(doc, dim, src, out, err) : st;
}

/* ---------------------------------------------------------------------------------------
 * The build state.
 * ------------------------------------------------------------------------------------ */

typedef struct build {
    const char *path;
    cp_doc_source *src;
    const char *src_name;
    const cp_build_options *opts;
    int threads;
    int dim;
    rng rng;
    int64_t n_docs;

    /* sampling */
    int64_t n_sample_docs, n_sample_tokens; /* all tokens of the sampled docs */
    float *sample;                          /* reservoir, n_kept x dim */
    int64_t n_kept, sample_alloc, sample_cap;
    float *doc_buf;
    size_t doc_buf_cap;

    /* training results */
    int64_t kmeans_ppc; /* k-means points per centroid */
    int64_t k_requested, n_heldout, n_train, n_kmeans;
    double avg_doclen_est;
    cp_codec codec;

    char *drift_json; /* held-out residual norms, for live updates (index/live.c) */

    /* pooling (index/pool.c) */
    int pool_factor;
    cp_pool_linkage pool_linkage;
    cp_pool_ws pool_ws;
    int64_t n_tokens_in, n_tokens_out; /* before and after pooling */
    double pool_seconds;

    /* shared codecs (index/shard.c): a codec from opts->codec_from instead of training;
     * or, for cp_index_train_codec, a codec file without documents */
    bool have_codec, codec_only;
    char *codec_encoder; /* meta "encoder" of the codec's file, or NULL */
    uint64_t codec_fingerprint;

    /* output */
    char *tmp_path;
    cp_store *store;
} build;

static cp_status ensure_doc_buf(build *b, int32_t n_tokens, cp_error *err)
{
    size_t need = (size_t)n_tokens * (size_t)b->dim;
    if (need <= b->doc_buf_cap) return CP_OK;
    float *nb = realloc(b->doc_buf, need * sizeof *nb);
    if (!nb)
        return cp_error_set(err, CP_ENOMEM, "out of memory for a %d-token document", (int)n_tokens);
    b->doc_buf = nb;
    b->doc_buf_cap = need;
    return CP_OK;
}

static cp_status count_docs(build *b, cp_error *err)
{
    int64_t n = b->src->count ? b->src->count(b->src->ctx) : -1;
    if (n >= 0) {
        b->n_docs = n;
        return CP_OK;
    }
    cp_status st = b->src->rewind(b->src->ctx, err);
    cp_document doc;
    bool has = true;
    n = 0;
    while (st == CP_OK && (st = b->src->next(b->src->ctx, false, &doc, &has, err)) == CP_OK && has)
        n++;
    b->n_docs = n;
    return st;
}

static void swap_rows(float *x, int64_t i, int64_t j, int dim)
{
    float tmp[4096]; /* dim <= 4096 (check_dim) */
    memcpy(tmp, x + i * dim, (size_t)dim * sizeof *tmp);
    memcpy(x + i * dim, x + j * dim, (size_t)dim * sizeof *tmp);
    memcpy(x + j * dim, tmp, (size_t)dim * sizeof *tmp);
}

static cp_status grow_sample(build *b, cp_error *err)
{
    int64_t cap = b->sample_alloc ? b->sample_alloc * 2 : 65536;
    if (cap > b->sample_cap) cap = b->sample_cap;
    float *ns = realloc(b->sample, (size_t)cap * (size_t)b->dim * sizeof *ns);
    if (!ns)
        return cp_error_set(err, CP_ENOMEM, "out of memory keeping %lld sample tokens",
                            (long long)cap);
    b->sample = ns;
    b->sample_alloc = cap;
    return CP_OK;
}

/* Keep a sampled doc's normalised tokens through a seeded reservoir (Algorithm R), so the
 * training set is a uniform sample of the sampled docs' tokens whatever their number. */
static cp_status keep_sample_tokens(build *b, const float *vecs, int32_t n, cp_error *err)
{
    for (int32_t t = 0; t < n; t++, b->n_sample_tokens++) {
        int64_t slot;
        if (b->n_kept < b->sample_cap) {
            if (b->n_kept == b->sample_alloc) {
                cp_status st = grow_sample(b, err);
                if (st != CP_OK) return st;
            }
            slot = b->n_kept++;
        } else {
            slot = rng_below(&b->rng, b->n_sample_tokens + 1);
            if (slot >= b->sample_cap) continue;
        }
        memcpy(b->sample + slot * b->dim, vecs + (size_t)t * (size_t)b->dim,
               (size_t)b->dim * sizeof(float));
    }
    return CP_OK;
}

/* With K derived from the data, training can use at most 32 K + 50k tokens, and
 * K <= scale x 16 sqrt(E) with E = N x (mean sampled doclen). Once the estimate has settled, lower
 * the reservoir's capacity to 1.1 x that bound, dropping a uniform random subset of what it
 * holds: a uniform subsample of a uniform reservoir stays uniform, and the capacity only
 * ever decreases (growing it would bias Algorithm R). */
static void shrink_reservoir(build *b)
{
    if (b->n_sample_docs < 64) return;
    double e_est = (double)b->n_docs * (double)b->n_sample_tokens / (double)b->n_sample_docs;
    double bound =
        1.1 * (double)b->kmeans_ppc * centroid_scale(b->opts) * 16.0 * sqrt(e_est) + 50000;
    if (bound >= (double)b->sample_cap) return;
    int64_t cap = (int64_t)bound;
    /* Drop uniformly random rows, each replaced by the last: cost proportional to the drop. */
    while (b->n_kept > cap) {
        int64_t r = rng_below(&b->rng, b->n_kept);
        b->n_kept--;
        if (r != b->n_kept)
            memcpy(b->sample + r * b->dim, b->sample + b->n_kept * b->dim,
                   (size_t)b->dim * sizeof(float));
    }
    b->sample_cap = cap;
}

/* One sampled or skipped document of the sampling pass. */
static cp_status sample_one(build *b, id_set *ids, bool take, int64_t ordinal, cp_error *err)
{
    cp_document doc;
    bool has = false;
    cp_status st = b->src->next(b->src->ctx, take, &doc, &has, err);
    if (st != CP_OK) return st;
    if (!has)
        return cp_error_set(err, CP_EINVAL, "%s ended after %lld documents, expected %lld",
                            b->src_name, (long long)ordinal, (long long)b->n_docs);
    if (!doc.id || !doc.id[0]) return check_doc_header(&doc, b->src_name, ordinal, err);
    int added = id_set_add(ids, doc.id);
    if (added < 0) return cp_error_set(err, CP_ENOMEM, "out of memory checking ids");
    if (added == 0)
        return cp_error_set(err, CP_EINVAL, "%s: duplicate document id \"%s\"", b->src_name,
                            doc.id);
    /* The token count of unsampled docs may be unknown (-1) for text sources. */
    if (!take && doc.n_tokens < 0) return CP_OK;
    if ((st = check_doc_header(&doc, b->src_name, ordinal, err)) != CP_OK) return st;
    if (!take) return CP_OK;
    if ((st = ensure_doc_buf(b, doc.n_tokens, err)) != CP_OK) return st;
    if ((st = normalise_doc(&doc, b->dim, b->src_name, b->doc_buf, err)) != CP_OK) return st;
    b->n_sample_docs++;
    if ((st = keep_sample_tokens(b, b->doc_buf, doc.n_tokens, err)) != CP_OK) return st;
    if (b->opts->n_centroids <= 0) shrink_reservoir(b);
    return CP_OK;
}

/* PLAID.md 1.2: n_sample_pids = min(1 + floor(16 sqrt(120 N)), N). */
int64_t cp_build_sample_size(int64_t n_docs)
{
    int64_t n = 1 + (int64_t)floor(16.0 * sqrt(120.0 * (double)n_docs));
    return n < n_docs ? n : n_docs;
}

static cp_status sampling_pass(build *b, cp_error *err)
{
    id_set ids = {0};
    /* With a given codec the pass only checks the ids (nothing is encoded). */
    int64_t want = b->have_codec ? 0 : cp_build_sample_size(b->n_docs);
    cp_progress *prog = cp_progress_start(b->opts->progress, "sampling", b->n_docs, "docs");
    cp_status st = b->src->rewind(b->src->ctx, err);
    for (int64_t i = 0; st == CP_OK && i < b->n_docs; i++) {
        /* Knuth's selection sampling: exactly `want` docs, uniformly, in one pass. */
        bool take = want > 0 && rng_unit(&b->rng) * (double)(b->n_docs - i) < (double)want;
        if (take) want--;
        st = sample_one(b, &ids, take, i, err);
        cp_progress_add(prog, 1);
    }
    cp_progress_finish(prog);
    id_set_free(&ids);
    if (st == CP_OK && b->n_kept == 0 && !b->have_codec)
        st = cp_error_set(err, CP_EINVAL, "%s: the sampled documents hold no tokens", b->src_name);
    return st;
}

/* ---------------------------------------------------------------------------------------
 * Training: shuffle, held-out split, k-means, buckets.
 * ------------------------------------------------------------------------------------ */

static void shuffle_rows(float *x, int64_t n, int dim, rng *r)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = rng_below(r, i + 1);
        if (j != i) swap_rows(x, i, j, dim);
    }
}

/* PLAID's K times the centroid scale. On a small corpus the scaled K would leave k-means a
 * handful of vectors per centroid (631 documents, 30k tokens: 8192 centroids, 3.7 each), so
 * the scale gives way, halving K down to PLAID's own, until there are 8 per centroid. */
static int64_t scaled_default_k(const build *b, double e_est, int64_t n_points)
{
    int64_t plaid_k = cp_kmeans_default_k(e_est, INT64_MAX);
    int64_t k = plaid_k * centroid_scale(b->opts);
    while (k > plaid_k && k > n_points / 8) k /= 2;
    return k;
}

static cp_status train(build *b, cp_error *err)
{
    int64_t n = b->n_kept;
    shuffle_rows(b->sample, n, b->dim, &b->rng);
    /* PLAID.md 1.4: held-out = min(5%, 50k) of the sample's tokens, the tail after
     * shuffling (never more than half of what the reservoir kept). */
    int64_t heldout = (int64_t)floor(0.05 * (double)b->n_sample_tokens);
    if (heldout > 50000) heldout = 50000;
    if (heldout > n / 2) heldout = n / 2;
    b->n_heldout = heldout;
    b->n_train = n - heldout;
    b->avg_doclen_est = (double)b->n_sample_tokens / (double)b->n_sample_docs;
    double e_est = (double)b->n_docs * b->avg_doclen_est;
    int64_t k = b->opts->n_centroids > 0 ? b->opts->n_centroids : scaled_default_k(b, e_est, n);
    b->k_requested = k;
    if (k > b->n_train) k = b->n_train;
    if (b->k_requested != k)
        logf_line(b->opts->progress,
                  "centroids: %lld requested, clamped to the %lld training "
                  "vectors",
                  (long long)b->k_requested, (long long)k);
    b->codec.dim = b->dim;
    b->codec.nbits = b->opts->nbits;
    cp_codec_variant_parse(b->opts->codec ? b->opts->codec : CP_DEFAULT_CODEC, &b->codec.variant);
    b->codec.n_centroids = k;
    b->codec.centroids = malloc((size_t)k * (size_t)b->dim * sizeof(float));
    if (!b->codec.centroids) return cp_error_set(err, CP_ENOMEM, "out of memory for centroids");
    b->n_kmeans = b->n_train;
    if (b->n_kmeans > b->kmeans_ppc * k) b->n_kmeans = b->kmeans_ppc * k;
    logf_line(b->opts->progress, "k-means: %lld centroids from %lld vectors, %d iterations",
              (long long)k, (long long)b->n_kmeans, b->opts->kmeans_iters);
    double t0 = now_seconds();
    cp_status st = cp_kmeans_train(
        b->sample, b->n_kmeans, b->dim, k, b->opts->kmeans_iters, b->opts->seed,
        (int)(b->kmeans_ppc > CP_MAX_POINTS_PER_CENTROID ? b->kmeans_ppc
                                                         : CP_MAX_POINTS_PER_CENTROID),
        b->threads, b->codec.centroids, err);
    if (st != CP_OK) return st;
    logf_line(b->opts->progress, "k-means: done in %.1f s", now_seconds() - t0);
    /* A sample too small for a held-out split trains the buckets on the training vectors
     * (tiny corpora only: with >= 20 sampled tokens there is always a held-out set). */
    const float *h = heldout ? b->sample + b->n_train * b->dim : b->sample;
    st = cp_codec_prepare_probe(&b->codec, err);
    if (st == CP_OK)
        st = cp_codec_train(&b->codec, h, heldout ? heldout : b->n_train, b->threads, err);
    if (st == CP_OK)
        st = cp_drift_reference_json(&b->codec, h, heldout ? heldout : b->n_train, b->threads,
                                     &b->drift_json, err);
    free(b->sample);
    b->sample = NULL;
    return st;
}

/* ---------------------------------------------------------------------------------------
 * Indexing pass: documents accumulate into a segment; their normalised vectors wait in a
 * bounded buffer and are compressed in chunks of CP_COMPRESS_CHUNK_TOKENS.
 * ------------------------------------------------------------------------------------ */

typedef struct segment {
    cp_document *docs; /* id/text/metadata copied (the source reuses its memory) */
    int32_t *doclens;
    size_t n_docs, docs_cap;
    int32_t *codes;
    uint8_t *residuals;
    int64_t n_tokens, tokens_cap; /* compressed + pending */
    float *pending;               /* the last n_pending tokens, normalised, not compressed */
    int64_t n_pending, pending_cap;
} segment;

static void segment_clear_docs(segment *s)
{
    for (size_t i = 0; i < s->n_docs; i++) {
        free((char *)s->docs[i].id);
        free((char *)s->docs[i].text);
        free((char *)s->docs[i].metadata_json);
        free((cp_window *)s->docs[i].windows);
    }
    s->n_docs = 0;
    s->n_tokens = 0;
    s->n_pending = 0;
}

static void segment_free(segment *s)
{
    segment_clear_docs(s);
    free(s->docs);
    free(s->doclens);
    free(s->codes);
    free(s->residuals);
    free(s->pending);
    memset(s, 0, sizeof *s);
}

static bool grow(void **p, size_t elem, int64_t *cap, int64_t need)
{
    if (need <= *cap) return true;
    int64_t nc = *cap ? *cap : 1024;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, (size_t)nc * elem);
    if (!np) return false;
    *p = np;
    *cap = nc;
    return true;
}

static cp_status compress_pending(build *b, segment *s, cp_error *err)
{
    if (s->n_pending == 0) return CP_OK;
    int rb = cp_codec_token_bytes(&b->codec);
    int64_t start = s->n_tokens - s->n_pending;
    cp_status st = cp_codec_compress(&b->codec, s->pending, s->n_pending, s->codes + start,
                                     s->residuals + start * rb, b->threads, err);
    s->n_pending = 0;
    return st;
}

static cp_status segment_add(build *b, segment *s, const cp_document *doc, cp_error *err)
{
    int rb = cp_codec_token_bytes(&b->codec);
    int64_t tokens = s->n_tokens + doc->n_tokens, tcap = s->tokens_cap;
    int64_t pending = s->n_pending + doc->n_tokens, dcap = (int64_t)s->docs_cap;
    bool ok = grow((void **)&s->codes, sizeof *s->codes, &tcap, tokens);
    tcap = s->tokens_cap;
    ok = ok && grow((void **)&s->residuals, (size_t)rb, &tcap, tokens);
    s->tokens_cap = tcap;
    ok = ok && grow((void **)&s->pending, (size_t)b->dim * sizeof(float), &s->pending_cap, pending);
    int64_t dcap2 = dcap;
    ok = ok && grow((void **)&s->docs, sizeof *s->docs, &dcap, (int64_t)s->n_docs + 1);
    ok = ok && grow((void **)&s->doclens, sizeof *s->doclens, &dcap2, (int64_t)s->n_docs + 1);
    if (ok) s->docs_cap = (size_t)(dcap < dcap2 ? dcap : dcap2);
    if (!ok) return cp_error_set(err, CP_ENOMEM, "out of memory for a segment");
    float *vecs = s->pending + s->n_pending * b->dim;
    cp_status st = normalise_doc(doc, b->dim, b->src_name, vecs, err);
    if (st != CP_OK) return st;
    int32_t n_kept = doc->n_tokens;
    if (b->pool_factor > 1) {
        double t0 = now_seconds();
        st = cp_pool_document(&b->pool_ws, vecs, doc->n_tokens, b->dim, b->pool_factor,
                              b->pool_linkage, &n_kept, err);
        b->pool_seconds += now_seconds() - t0;
        if (st != CP_OK) return st;
    }
    b->n_tokens_in += doc->n_tokens;
    b->n_tokens_out += n_kept;
    tokens = s->n_tokens + n_kept;
    pending = s->n_pending + n_kept;
    cp_document *d = &s->docs[s->n_docs];
    memset(d, 0, sizeof *d);
    d->id = strdup(doc->id);
    d->text = doc->text ? strdup(doc->text) : NULL;
    d->metadata_json = doc->metadata_json ? strdup(doc->metadata_json) : NULL;
    d->n_tokens = n_kept;
    if (doc->n_windows > 0) { /* colplaid/window.h */
        cp_window *w = malloc((size_t)doc->n_windows * sizeof *w);
        if (w) memcpy(w, doc->windows, (size_t)doc->n_windows * sizeof *w);
        d->windows = w;
        d->n_windows = w ? doc->n_windows : 0;
    }
    s->doclens[s->n_docs++] = n_kept;
    if (!d->id || (doc->text && !d->text) || (doc->metadata_json && !d->metadata_json) ||
        (doc->n_windows > 0 && !d->windows))
        return cp_error_set(err, CP_ENOMEM, "out of memory copying a document");
    s->n_tokens = tokens;
    s->n_pending = pending;
    if (s->n_pending >= CP_COMPRESS_CHUNK_TOKENS) return compress_pending(b, s, err);
    return CP_OK;
}

static cp_status segment_flush(build *b, segment *s, cp_error *err)
{
    if (s->n_docs == 0) return CP_OK;
    cp_status st = compress_pending(b, s, err);
    if (st != CP_OK) return st;
    cp_segment_input in = {.n_docs = s->n_docs,
                           .docs = s->docs,
                           .doclens = s->doclens,
                           .n_tokens = s->n_tokens,
                           .codes = s->codes,
                           .residuals = s->residuals};
    int64_t first = 0;
    st = cp_store_append_segment(b->store, &in, &first, err);
    segment_clear_docs(s);
    return st;
}

static cp_status indexing_pass(build *b, cp_error *err)
{
    segment seg = {0};
    cp_progress *prog = cp_progress_start(b->opts->progress, "indexing", b->n_docs, "docs");
    cp_status st = b->src->rewind(b->src->ctx, err);
    int64_t i = 0;
    for (; st == CP_OK; i++) {
        cp_document doc;
        bool has = false;
        if ((st = b->src->next(b->src->ctx, true, &doc, &has, err)) != CP_OK || !has) break;
        if (i >= b->n_docs) {
            st = cp_error_set(err, CP_EINVAL,
                              "%s yielded more than the %lld documents it "
                              "announced",
                              b->src_name, (long long)b->n_docs);
            break;
        }
        if ((st = check_doc_header(&doc, b->src_name, i, err)) != CP_OK) break;
        if ((st = segment_add(b, &seg, &doc, err)) != CP_OK) break;
        if (seg.n_docs >= (size_t)b->opts->segment_docs) st = segment_flush(b, &seg, err);
        cp_progress_add(prog, 1);
    }
    if (st == CP_OK && i != b->n_docs)
        st = cp_error_set(err, CP_EINVAL,
                          "%s yielded %lld documents on the second pass, %lld "
                          "on the first",
                          b->src_name, (long long)i, (long long)b->n_docs);
    if (st == CP_OK) st = segment_flush(b, &seg, err);
    cp_progress_finish(prog);
    segment_free(&seg);
    if (st == CP_OK && b->pool_factor > 1)
        logf_line(b->opts->progress, "pooling: %lld tokens into %lld (%.1f%%), %.2f s",
                  (long long)b->n_tokens_in, (long long)b->n_tokens_out,
                  100.0 * (double)b->n_tokens_out / (double)(b->n_tokens_in ? b->n_tokens_in : 1),
                  b->pool_seconds);
    return st;
}

/* ---------------------------------------------------------------------------------------
 * The output file: temporary name, meta, one transaction, rename.
 * ------------------------------------------------------------------------------------ */

static void remove_db_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char buf[4096];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if (snprintf(buf, sizeof buf, "%s%s", path, suffixes[i]) >= (int)sizeof buf) continue;
        unlink(buf);
    }
}

/* The parameters of a build with a given codec (opts->codec_from): no training ones. */
static void add_codec_from_params(const build *b, cJSON *o)
{
    char fp[24];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)b->codec_fingerprint);
    cJSON_AddStringToObject(o, "codec_from", b->opts->codec_from);
    cJSON_AddStringToObject(o, "codec_fingerprint", fp);
    cJSON_AddNumberToObject(o, "n_documents", (double)b->n_docs);
    cJSON_AddNumberToObject(o, "segment_docs", b->opts->segment_docs);
    if (b->opts->shard_count > 1) {
        cJSON_AddNumberToObject(o, "shard_index", b->opts->shard_index);
        cJSON_AddNumberToObject(o, "shard_count", b->opts->shard_count);
    }
}

/* The training parameters of a build or of cp_index_train_codec. */
static void add_training_params(const build *b, cJSON *o)
{
    if (b->codec_only) cJSON_AddBoolToObject(o, "codec_only", true);
    cJSON_AddNumberToObject(o, "n_centroids_requested", (double)b->k_requested);
    cJSON_AddNumberToObject(o, "centroid_scale",
                            b->opts->n_centroids > 0 ? 1 : centroid_scale(b->opts));
    cJSON_AddNumberToObject(o, "kmeans_iters", b->opts->kmeans_iters);
    cJSON_AddNumberToObject(o, "kmeans_points_per_centroid", (double)b->kmeans_ppc);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)b->opts->seed);
    cJSON_AddRawToObject(o, "seed", seed);
    cJSON_AddNumberToObject(o, b->codec_only ? "n_source_documents" : "n_documents",
                            (double)b->n_docs);
    if (b->opts->shard_count > 1) { /* a shard that trained its own codec */
        cJSON_AddNumberToObject(o, "shard_index", b->opts->shard_index);
        cJSON_AddNumberToObject(o, "shard_count", b->opts->shard_count);
    }
    cJSON_AddNumberToObject(o, "n_sample_docs", (double)b->n_sample_docs);
    cJSON_AddNumberToObject(o, "n_sample_tokens", (double)b->n_sample_tokens);
    cJSON_AddNumberToObject(o, "n_train_vectors", (double)b->n_train);
    cJSON_AddNumberToObject(o, "n_kmeans_vectors", (double)b->n_kmeans);
    cJSON_AddNumberToObject(o, "n_heldout_vectors", (double)b->n_heldout);
    cJSON_AddNumberToObject(o, "avg_doclen_est", b->avg_doclen_est);
    cJSON_AddNumberToObject(o, "segment_docs", b->opts->segment_docs);
    cJSON_AddNumberToObject(o, "avg_residual", b->codec.avg_residual);
}

static char *build_params_json(const build *b)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "nbits", b->codec.nbits);
    cJSON_AddStringToObject(o, "codec", cp_codec_variant_name(b->codec.variant));
    cJSON_AddNumberToObject(o, "n_centroids", (double)b->codec.n_centroids);
    if (b->have_codec)
        add_codec_from_params(b, o);
    else
        add_training_params(b, o);
    cJSON_AddStringToObject(o, "source", b->src_name);
    cJSON_AddNumberToObject(o, "pool_factor", b->pool_factor);
    if (b->pool_factor > 1) {
        cJSON_AddStringToObject(o, "pool_linkage", cp_pool_linkage_name(b->pool_linkage));
        cJSON_AddNumberToObject(o, "n_tokens_unpooled", (double)b->n_tokens_in);
        cJSON_AddNumberToObject(o, "n_tokens_pooled", (double)b->n_tokens_out);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static cp_status write_meta(build *b, cp_error *err)
{
    cp_status st = CP_OK;
    const char *encoder = b->opts->encoder_json ? b->opts->encoder_json : b->codec_encoder;
    if (encoder) st = cp_store_set_meta(b->store, "encoder", encoder, err);
    if (st == CP_OK && b->opts->shard_count > 1 && !b->codec_only) {
        char shard[160];
        snprintf(shard, sizeof shard, "{\"index\":%u,\"count\":%u,\"hash\":\"%s\"}",
                 b->opts->shard_index, b->opts->shard_count, CP_SHARD_HASH_NAME);
        st = cp_store_set_meta(b->store, "shard", shard, err);
    }
    if (st != CP_OK) return st;
    char *params = build_params_json(b);
    if (!params) return cp_error_set(err, CP_ENOMEM, "out of memory");
    st = cp_store_set_meta(b->store, "build", params, err);
    free(params);
    if (st == CP_OK && b->drift_json) st = cp_store_set_meta(b->store, "drift", b->drift_json, err);
    if (st == CP_OK && b->pool_factor > 1) {
        char *pooling = cp_pool_meta_json(b->pool_factor, b->pool_linkage);
        if (!pooling) return cp_error_set(err, CP_ENOMEM, "out of memory");
        st = cp_store_set_meta(b->store, "pooling", pooling, err);
        free(pooling);
    }
    if (st == CP_OK && b->opts->window.window > 0 && !b->codec_only) { /* index/windows.c */
        char *w = cp_windows_meta_json(&b->opts->window, (cp_doc_score)b->opts->doc_score);
        st = w ? cp_store_set_meta(b->store, "windows", w, err)
               : cp_error_set(err, CP_ENOMEM, "out of memory");
        free(w);
    }
    return st;
}

bool cp_index_build_temp_path(const char *path, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s.tmp-build-%ld", path, (long)getpid());
    return n >= 0 && (size_t)n < size;
}

static cp_status write_index(build *b, cp_error *err)
{
    size_t n = strlen(b->path) + 48;
    if (!(b->tmp_path = malloc(n))) return cp_error_set(err, CP_ENOMEM, "out of memory");
    cp_index_build_temp_path(b->path, b->tmp_path, n);
    remove_db_files(b->tmp_path);
    cp_status st = cp_store_create(b->tmp_path, &b->codec, &b->store, err);
    if (st != CP_OK) return st;
    if ((st = cp_store_begin(b->store, err)) != CP_OK) return st;
    /* the lexical table before the documents (they enter it as they are stored); meta
     * after them: the build parameters include the pooled token count. A codec file
     * (cp_index_train_codec) has no documents. */
    if (b->opts->lexical && !b->codec_only) st = cp_store_lexical_create(b->store, err);
    if (st == CP_OK && !b->codec_only) st = indexing_pass(b, err);
    if (st == CP_OK && (st = write_meta(b, err)) == CP_OK) st = cp_store_commit(b->store, err);
    if (st == CP_OK) st = cp_store_checkpoint(b->store, err);
    if (st != CP_OK) cp_store_rollback(b->store);
    cp_store_close(b->store);
    b->store = NULL;
    if (st != CP_OK) return st;
    if (b->opts->force) {
        /* A stale WAL of the replaced index would be replayed into the new file. */
        char buf[4096];
        snprintf(buf, sizeof buf, "%s-wal", b->path);
        unlink(buf);
        snprintf(buf, sizeof buf, "%s-shm", b->path);
        unlink(buf);
    }
    if (rename(b->tmp_path, b->path) != 0)
        return cp_error_set(err, CP_EIO, "cannot move the new index into place at %s: %s", b->path,
                            strerror(errno));
    return CP_OK;
}

/* ---------------------------------------------------------------------------------------
 * Entry point.
 * ------------------------------------------------------------------------------------ */

static cp_status check_options(const char *path, const cp_doc_source *src,
                               const cp_build_options *o, cp_error *err)
{
    if (!path || !*path) return cp_error_set(err, CP_EINVAL, "no index path given");
    if (!src || !src->next || !src->rewind || !src->dim)
        return cp_error_set(err, CP_EINVAL, "no document source given");
    int variant;
    if (o->codec && !cp_codec_variant_parse(o->codec, &variant))
        return cp_error_set(err, CP_EINVAL, "unknown codec \"%s\" (colbert or scaled)", o->codec);
    if (o->nbits != 1 && o->nbits != 2 && o->nbits != 4 && o->nbits != 8)
        return cp_error_set(err, CP_EINVAL, "nbits must be 1, 2, 4 or 8 (got %d)", o->nbits);
    if (o->n_centroids < 0 || o->n_centroids > INT32_MAX)
        return cp_error_set(err, CP_EINVAL, "invalid number of centroids %lld",
                            (long long)o->n_centroids);
    if (o->centroid_scale < 0 || o->centroid_scale > 64)
        return cp_error_set(err, CP_EINVAL, "centroid scale must be 1..64 (got %d)",
                            o->centroid_scale);
    if (o->kmeans_iters < 1 || o->kmeans_iters > 1000)
        return cp_error_set(err, CP_EINVAL, "k-means iterations must be 1..1000 (got %d)",
                            o->kmeans_iters);
    if (o->kmeans_points_per_centroid < 0 || o->kmeans_points_per_centroid > 100000)
        return cp_error_set(err, CP_EINVAL, "k-means points per centroid must be 1..100000");
    cp_pool_linkage linkage;
    if (o->pool_factor < 0 || o->pool_factor > CP_POOL_MAX_FACTOR)
        return cp_error_set(err, CP_EINVAL, "pool factor must be 1..%d (1: no pooling; got %d)",
                            CP_POOL_MAX_FACTOR, o->pool_factor);
    if (o->pool_linkage && !cp_pool_linkage_parse(o->pool_linkage, &linkage))
        return cp_error_set(err, CP_EINVAL, "unknown pooling linkage \"%s\" (ward or average)",
                            o->pool_linkage);
    if (o->segment_docs < 1)
        return cp_error_set(err, CP_EINVAL, "segment size must be at least 1 document");
    if (o->shard_count > 1 && o->shard_index >= o->shard_count)
        return cp_error_set(err, CP_EINVAL, "shard %u of %u does not exist (0 <= I < N)",
                            o->shard_index, o->shard_count);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return cp_error_set(err, CP_EEXISTS, "%s is a directory", path);
        if (!o->force)
            return cp_error_set(err, CP_EEXISTS, "%s already exists (use --force to replace it)",
                                path);
    }
    return CP_OK;
}

static cp_status check_dim(build *b, cp_error *err)
{
    b->dim = b->src->dim(b->src->ctx);
    if (b->dim < 8 || b->dim % 8 || b->dim > 4096)
        return cp_error_set(err, CP_EDIM,
                            "%s: embedding dimension %d is not supported (it must be a multiple "
                            "of 8, at most 4096)",
                            b->src_name, b->dim);
    return CP_OK;
}

/* Tokens the sampling reservoir keeps. With K given, exactly what training can use (k-means
 * points + the largest held-out set), so memory follows K rather than the corpus; with K
 * derived from the data the bound is the fixed CP_BUILD_MAX_SAMPLE_TOKENS. */
static int64_t sample_cap_for(const cp_build_options *o, int64_t ppc)
{
    if (o->n_centroids <= 0) return CP_BUILD_MAX_SAMPLE_TOKENS;
    int64_t cap = ppc * o->n_centroids + 50000;
    return cap < CP_BUILD_MAX_SAMPLE_TOKENS ? cap : CP_BUILD_MAX_SAMPLE_TOKENS;
}

static int resolve_threads(int t)
{
    if (t > 0) return t;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* opts->codec_from: the codec, model fingerprint and drift reference of that file. The
 * codec's dimension must be the source's; a model fingerprint, when both have one, must be
 * the build's. */
static cp_status load_codec_from(build *b, cp_error *err)
{
    const char *from = b->opts->codec_from;
    cp_store *store = NULL;
    cp_status st = cp_store_open(from, CP_OPEN_READONLY, &store, err);
    if (st != CP_OK) return st;
    st = cp_store_load_codec(store, &b->codec, err);
    char *drift = cp_store_get_meta(store, "drift");
    b->drift_json = cp_drift_reference_reset(drift);
    free(drift);
    b->codec_encoder = cp_store_get_meta(store, "encoder");
    cp_store_close(store);
    if (st != CP_OK) return st;
    b->have_codec = true;
    b->codec_fingerprint = cp_codec_fingerprint(&b->codec);
    if (b->codec.dim != b->dim)
        return cp_error_set(err, CP_EDIM,
                            "%s: the codec of %s is for %d-dimensional vectors, the input has %d",
                            b->src_name, from, b->codec.dim, b->dim);
    if (b->opts->encoder_json && b->codec_encoder &&
        strcmp(b->opts->encoder_json, b->codec_encoder))
        return cp_error_set(err, CP_EINVAL,
                            "the codec of %s was trained on another model's vectors than this "
                            "build's (compare the encoder of `colplaid index info --index %s` "
                            "with the model's)",
                            from, from);
    logf_line(
        b->opts->progress, "codec: %lld centroids, nbits %d (%s) from %s, fingerprint %016llx",
        (long long)b->codec.n_centroids, b->codec.nbits, cp_codec_variant_name(b->codec.variant),
        from, (unsigned long long)b->codec_fingerprint);
    return cp_codec_prepare_probe(&b->codec, err);
}

static void build_free(build *b)
{
    free(b->tmp_path);
    free(b->drift_json);
    free(b->codec_encoder);
    free(b->sample);
    free(b->doc_buf);
    cp_pool_ws_free(&b->pool_ws);
    cp_codec_free_arrays(&b->codec);
}

static void build_init(build *b, const char *path, cp_doc_source *source,
                       const cp_build_options *opts)
{
    *b = (build){.path = path,
                 .src = source,
                 .opts = opts,
                 .threads = resolve_threads(opts->threads),
                 .rng = {opts->seed}};
    b->pool_factor = opts->pool_factor > 1 ? opts->pool_factor : 1;
    b->pool_linkage = CP_POOL_WARD;
    if (opts->pool_linkage) cp_pool_linkage_parse(opts->pool_linkage, &b->pool_linkage);
    b->kmeans_ppc = opts->kmeans_points_per_centroid > 0 ? opts->kmeans_points_per_centroid
                                                         : CP_KMEANS_POINTS_PER_CENTROID;
    b->sample_cap = sample_cap_for(opts, b->kmeans_ppc);
    b->src_name = source->name ? source->name(source->ctx) : "input";
    if (!b->src_name) b->src_name = "input";
}

cp_status cp_index_build(const char *path, cp_doc_source *source, const cp_build_options *opts,
                         cp_error *err)
{
    cp_build_options defaults;
    if (!opts) {
        cp_build_options_init(&defaults);
        opts = &defaults;
    }
    cp_status st = check_options(path, source, opts, err);
    if (st != CP_OK) return st;
    /* A shard build reads the source through a filter (index/shard.c). */
    cp_doc_source sharded = {0};
    bool shard = opts->shard_count > 1;
    if (shard && (st = cp_shard_source_open(source, opts->shard_index, opts->shard_count, &sharded,
                                            err)) != CP_OK)
        return st;
    build b;
    build_init(&b, path, shard ? &sharded : source, opts);
    if ((st = check_dim(&b, err)) == CP_OK && opts->codec_from) st = load_codec_from(&b, err);
    if (st == CP_OK) st = count_docs(&b, err);
    /* An empty shard is a valid (empty) index when the codec is given. */
    if (st == CP_OK && b.n_docs == 0 && !(b.have_codec && shard))
        st = cp_error_set(err, CP_EINVAL, "%s: the corpus is empty (no documents%s)", b.src_name,
                          shard ? " in this shard" : "");
    if (st == CP_OK) st = sampling_pass(&b, err);
    if (st == CP_OK && !b.have_codec) st = train(&b, err);
    if (st == CP_OK) st = write_index(&b, err);
    if (st != CP_OK && b.tmp_path) remove_db_files(b.tmp_path);
    if (st == CP_OK && !opts->skip_calibration && b.n_docs > 0)
        st = cp_calibrate_file(path, opts->progress, err);
    build_free(&b);
    if (shard) sharded.close(sharded.ctx);
    return st;
}

cp_status cp_index_train_codec(const char *path, cp_doc_source *source,
                               const cp_build_options *opts, cp_error *err)
{
    cp_build_options defaults;
    if (!opts) {
        cp_build_options_init(&defaults);
        opts = &defaults;
    }
    cp_status st = check_options(path, source, opts, err);
    if (st != CP_OK) return st;
    if (opts->codec_from || opts->shard_count > 1)
        return cp_error_set(err, CP_EINVAL,
                            "training a codec takes every document and trains its own codec "
                            "(no codec_from, no shard)");
    build b;
    build_init(&b, path, source, opts);
    b.codec_only = true;
    if ((st = check_dim(&b, err)) == CP_OK && (st = count_docs(&b, err)) == CP_OK && b.n_docs == 0)
        st = cp_error_set(err, CP_EINVAL, "%s: the corpus is empty (no documents)", b.src_name);
    if (st == CP_OK) st = sampling_pass(&b, err);
    if (st == CP_OK) st = train(&b, err);
    if (st == CP_OK) st = write_index(&b, err);
    if (st != CP_OK && b.tmp_path) remove_db_files(b.tmp_path);
    if (st == CP_OK)
        logf_line(opts->progress, "codec fingerprint %016llx",
                  (unsigned long long)cp_codec_fingerprint(&b.codec));
    build_free(&b);
    return st;
}
