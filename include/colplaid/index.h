/*
 * colplaid index engine: the public API.
 *
 * An index is one SQLite file holding a ColBERTv2 codec (centroids + residual buckets),
 * the token data of every document compressed as (centroid code, nbits-per-dim residual)
 * in zstd segment blobs, and the documents themselves (stable external id, text,
 * metadata). Opening an index loads its token data into flat in-memory arrays (an
 * immutable snapshot); searches run PLAID's four stages over that snapshot.
 *
 * Conventions
 * - Every fallible call returns a cp_status and fills the optional cp_error.
 * - Memory returned through an out-pointer belongs to the caller unless said otherwise;
 *   free it with the matching cp_*_free function.
 * - Thread safety is stated per function. A cp_index may be searched from any number of
 *   threads at once; write calls are serialised internally.
 * - Internal document ids (int64) are assigned once and never renumbered; external ids are
 *   the user's strings and are unique within an index.
 */
#ifndef COLPLAID_INDEX_H
#define COLPLAID_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "colplaid/error.h"
#include "colplaid/window.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP_INDEX_FORMAT_VERSION 2
#define CP_MAX_NBITS 8 /* the codec supports 1, 2, 4 and 8 */

/* ----------------------------------------------------------------------------------------
 * Documents handed to the engine (build, add).
 * ------------------------------------------------------------------------------------- */

typedef struct cp_document {
    const char *id;            /* external id, non-empty UTF-8, required */
    const char *text;          /* may be NULL */
    const char *metadata_json; /* a JSON object as text, or NULL */
    const float *embeddings;   /* n_tokens x dim, row-major, float32; need not be normalised */
    int32_t n_tokens;
    /* Optional (colplaid/window.h): the windows the rows were encoded as, n_windows of them,
     * tiling rows [0, n_tokens); stored with the document. 0 / NULL: not windowed. */
    const cp_window *windows;
    int32_t n_windows;
} cp_document;

/*
 * A stream of documents that the builder pulls from. The builder reads the stream twice
 * (a sampling pass for k-means, then the indexing pass), so it must be able to rewind.
 * With need_embeddings == false the source may leave embeddings NULL (a text source skips
 * encoding documents that are not sampled); n_tokens must then still be set if cheaply
 * known, else -1.
 */
typedef struct cp_doc_source {
    void *ctx;
    /* Number of documents if known, else -1 (the builder then counts in a first pass). */
    int64_t (*count)(void *ctx);
    /* Embedding dimension the source produces. */
    int (*dim)(void *ctx);
    cp_status (*rewind)(void *ctx, cp_error *err);
    /* Next document; *has = false at the end. doc's memory stays valid until the next call. */
    cp_status (*next)(void *ctx, bool need_embeddings, cp_document *doc, bool *has,
                      cp_error *err);
    /* A short description for error messages, e.g. the file name. */
    const char *(*name)(void *ctx);
    void (*close)(void *ctx);
} cp_doc_source;

/* Precomputed token embeddings: EMB.npy float32/float16 [tokens, dim], DOCLENS.npy int32/int64
 * [docs], optional IDS.txt (one external id per line; default "0", "1", ...). Streams the
 * embedding file (memory-mapped), so memory stays bounded. On success the caller owns *out
 * and releases it with out->close(out->ctx). */
cp_status cp_doc_source_npy_open(const char *emb_path, const char *doclens_path,
                                 const char *ids_path, cp_doc_source *out, cp_error *err);

/* ----------------------------------------------------------------------------------------
 * Building an index.
 * ------------------------------------------------------------------------------------- */

typedef void (*cp_log_fn)(void *ctx, const char *line);

typedef struct cp_build_options {
    int nbits;             /* 1, 2 or 4; default 2 */
    int64_t n_centroids;   /* 0: PLAID's 2^floor(log2(16 sqrt(E))), clamped to the sample */
    int kmeans_iters;      /* default 4 */
    uint64_t seed;         /* default 42; the same seed and input give the same index */
    int threads;           /* 0: all cores */
    int segment_docs;      /* documents per segment blob; default 4096 */
    bool force;            /* replace an existing file at the path */
    const char *encoder_json; /* model fingerprint stored in meta (JSON object), or NULL */
    FILE *progress;        /* progress bar / lines go here; NULL for silence */
    /* k-means trains on at most this many sampled vectors per centroid; 0: default 32
     * (the reference lets FAISS use up to 256: slower, measured to gain little). */
    int kmeans_points_per_centroid;
    /* Multiplies the default K (not an explicit n_centroids); 0 or 1: PLAID's rule as is.
     * The model supplies it (cp_encoder_centroid_scale): embeddings that do not cluster
     * like ColBERT's need more centroids for the same residual error. */
    int centroid_scale;
    /* Skip the search calibration (cp_index_calibrate) that follows a build; the index
     * then searches with PLAID's fixed defaults until `colplaid index calibrate`. */
    bool skip_calibration;
    /* The residual codec: "scaled" (residual norms kept separately, one byte more per
     * token; docs/index-format.md) or "colbert" (ColBERTv2's); NULL: the default. */
    const char *codec;
    /* Token pooling (docs/pooling.md): each document's token vectors are clustered into
     * ceil(n / pool_factor) groups, each kept as its renormalised mean. 0 or 1: off; at most
     * 64. Recorded in meta "pooling", which later upserts follow. Queries are never pooled. */
    int pool_factor;
    /* The clustering's linkage: "ward" or "average"; NULL: the default (ward). */
    const char *pool_linkage;
    /* Documents were encoded as windows with these settings (window 0: not windowed); with
     * doc_score, recorded in meta "windows" for searches and text upserts. */
    cp_window_options window;
    int doc_score; /* cp_doc_score */
    /* Also build the lexical index (SQLite FTS5 over the documents' texts; docs/hybrid.md)
     * that the lexical and hybrid search modes read. Builds from text set it. */
    bool lexical;
    /* Shared codecs (docs/index-format.md "Shards and shared codecs"): the path of a codec
     * file (cp_index_train_codec) or of any index whose codec (centroids, buckets, dim,
     * nbits, variant), model fingerprint and drift reference the build uses instead of
     * training one; nbits, n_centroids, codec, the k-means settings and centroid_scale are
     * then ignored. NULL: train. */
    const char *codec_from;
    /* Keep only the documents of shard shard_index of shard_count (cp_shard_of of the
     * external id); recorded in meta "shard". shard_count 0 or 1: every document. The
     * builder skips the other documents as the source yields them (a source that encodes
     * on demand can skip them itself first, as the CLI's text source does). */
    uint32_t shard_index, shard_count;
} cp_build_options;

void cp_build_options_init(cp_build_options *opts);

/* Build a new index at path from source. Writes to a temporary file beside path and
 * renames it into place only when complete, so a failed build leaves nothing behind.
 * Fails with CP_EEXISTS if path exists and !opts->force. */
cp_status cp_index_build(const char *path, cp_doc_source *source, const cp_build_options *opts,
                         cp_error *err);

/* The temporary file name ("PATH.tmp-build-PID") that cp_index_build in this process uses
 * for path, written into buf; returns false if it does not fit. Its companions carry the
 * SQLite suffixes -wal, -shm and -journal. Lets a program remove it from a signal handler
 * when a build is interrupted. */
bool cp_index_build_temp_path(const char *path, char *buf, size_t size);

/* Train a codec only (issue 15: shards share one codec): the sampling pass and training of
 * cp_index_build, with the same options and the same random choices (so the codec equals
 * the one a build of the same input and seed trains), written as a codec file at path: an
 * index with the codec, meta "encoder", "drift" and "build" (with "codec_only": true) and
 * no documents. Written atomically like a build; opts->force replaces a file. */
cp_status cp_index_train_codec(const char *path, cp_doc_source *source,
                               const cp_build_options *opts, cp_error *err);

/* The shard of an external id among n_shards (docs/index-format.md "Shards and shared
 * codecs"): cp_shard_hash of its UTF-8 bytes modulo n_shards (0 when n_shards <= 1).
 * cp_shard_hash is FNV-1a 64 followed by MurmurHash3's fmix64. Builds (--shard I/N) and
 * upsert routing use these, and only these. */
uint64_t cp_shard_hash(const char *id, size_t len);
uint32_t cp_shard_of(const char *id, uint32_t n_shards);

typedef struct cp_merge_options {
    bool force;            /* replace an existing file at the output path */
    bool skip_calibration; /* no search calibration of the merged index */
    FILE *progress;        /* NULL for silence */
} cp_merge_options;

/*
 * Merge indexes that share a codec into a new index at path (`colplaid index merge`): the
 * live documents of inputs[0], then inputs[1], ... get new consecutive internal ids; their
 * compressed tokens (codes and residuals), texts, metadata and windows are copied without
 * re-encoding. The inputs must have bit-identical codecs (CP_EINVAL naming both files and
 * their fingerprints otherwise) and the same model fingerprint, pooling and window
 * settings (CP_EINVAL); an external id live in two inputs is CP_EEXISTS naming it. The
 * output has a lexical side when any input has one (rebuilt from the stored texts).
 * Written under a temporary name (cp_index_build_temp_path), checkpointed and renamed into
 * place: a failed merge leaves nothing. opts may be NULL.
 */
cp_status cp_index_merge(const char *path, const char *const *inputs, size_t n_inputs,
                         const cp_merge_options *opts, cp_error *err);

/* Import a Stanford ColBERT / RAGatouille PLAID index folder (.pt files + JSON). */
cp_status cp_index_import_colbert(const char *colbert_dir, const char *path, bool force,
                                  FILE *progress, cp_error *err);

/* ----------------------------------------------------------------------------------------
 * Opening and inspecting.
 * ------------------------------------------------------------------------------------- */

typedef struct cp_index cp_index;

enum {
    CP_OPEN_READONLY = 0,
    CP_OPEN_WRITE = 1 << 0, /* take the index's writer lock; CP_EBUSY if another process has it */
};

/* Open and load into memory. Foreign or truncated files fail with CP_EFORMAT / CP_ECORRUPT
 * and a message naming the file. */
cp_status cp_index_open(const char *path, int flags, cp_index **out, cp_error *err);
void cp_index_close(cp_index *index);

/* Create an empty index at path with the codec of the open index from: its centroids,
 * residual buckets, dim, nbits and codec variant, its meta "encoder" and its drift reference
 * (counts reset). Live upserts (cp_index_upsert) then fill it; they must come from the same
 * model as from's vectors. Not copied: documents and the search calibration (measured on
 * from's documents), so the new index searches with PLAID's fixed defaults until it is
 * compacted or calibrated. Meta "created_from" records from's path. Written under a
 * temporary name and linked into place when complete: CP_EEXISTS if path exists (also when
 * it appears meanwhile; it is never replaced). Thread-safe with respect to from. */
cp_status cp_index_create_like(const char *path, cp_index *from, cp_error *err);

typedef struct cp_index_stats {
    int format_version;
    int dim;
    int nbits;
    int64_t n_centroids;
    int64_t n_documents; /* live documents */
    int64_t n_deleted;   /* tombstones not yet compacted away */
    int64_t n_tokens;    /* tokens of live documents */
    int64_t n_segments;
    int64_t bytes_on_disk;
    int64_t bytes_in_memory;
    const char *codec; /* codec variant: "colbert" or "scaled" (static string) */
} cp_index_stats;

/* Thread-safe. */
cp_status cp_index_stats_get(cp_index *index, cp_index_stats *out, cp_error *err);

/* The fingerprint of the index's codec (docs/index-format.md "Shards and shared codecs"):
 * equal for indexes built with the same codec (cp_build_options.codec_from), which
 * cp_index_merge can join. Hashes the centroids: call it once, not per request.
 * Thread-safe. */
uint64_t cp_index_codec_fingerprint(cp_index *index);

/* A meta value ("encoder", "build_params", ...) as a malloc'd string, or NULL if absent.
 * Thread-safe. */
char *cp_index_meta_get(cp_index *index, const char *key);

/* Record fingerprint_json (cp_encoder_fingerprint) as the model of the index (meta
 * "encoder"): a deliberate model swap (`colplaid index set-model`). The index must be open
 * for writing. */
cp_status cp_index_set_encoder(cp_index *index, const char *fingerprint_json, cp_error *err);

/* Map between internal and external ids. The returned external id is owned by the caller
 * (malloc'd). Thread-safe. CP_ENOTFOUND for unknown or deleted documents. */
cp_status cp_index_external_id(cp_index *index, int64_t doc_id, char **external_id, cp_error *err);
cp_status cp_index_doc_id(cp_index *index, const char *external_id, int64_t *doc_id,
                          cp_error *err);

typedef struct cp_document_info {
    int64_t doc_id;
    char *external_id;
    char *text;          /* NULL if none */
    char *metadata_json; /* NULL if none */
    int32_t n_tokens;
} cp_document_info;

/* Read a stored document. Thread-safe. */
cp_status cp_index_document_get(cp_index *index, const char *external_id, cp_document_info *out,
                                cp_error *err);
void cp_document_info_free(cp_document_info *info);

/* Decompressed, L2-normalised token embeddings of one document (n_tokens x dim, malloc'd).
 * Thread-safe. */
cp_status cp_index_document_embeddings(cp_index *index, int64_t doc_id, float **embeddings,
                                       int32_t *n_tokens, cp_error *err);

/* What cp_index_hit_documents reads besides the external id. */
enum { CP_DOC_TEXT = 1 << 0, CP_DOC_METADATA = 1 << 1 };

/* Write decompressed embeddings of every live document, in ascending internal id order,
 * as EMB.npy float32 [tokens, dim] + DOCLENS.npy int64 [docs] (+ IDS.txt if ids_path). */
cp_status cp_index_export(cp_index *index, const char *emb_path, const char *doclens_path,
                          const char *ids_path, cp_error *err);

/* Verify everything: SQLite integrity, segment checksums, doclens vs tokens, IVF vs codes,
 * documents vs segments. CP_OK when sound; otherwise CP_ECORRUPT and one message per
 * problem written to report (may be NULL). Opens its own connection. */
cp_status cp_index_check(const char *path, FILE *report, cp_error *err);

/* ----------------------------------------------------------------------------------------
 * Search.
 * ------------------------------------------------------------------------------------- */

typedef struct cp_search_params {
    int k;                   /* results wanted, >= 1 */
    int ncells;              /* centroids probed per query token; 0: PLAID default for k */
    float centroid_score_threshold; /* stage-2 pruning; NaN: PLAID default for k */
    int ndocs;               /* stage-2 survivors (stage 3 keeps ndocs/4); 0: default for k */
    bool exact;              /* score every live document exactly (ground truth) */
    float recall;            /* target share of the exhaustive top-k, in (0, 1]; 0: the
                                default (CP_DEFAULT_RECALL). Mapped through the index's
                                calibration to ncells / threshold / ndocs (explicit values
                                above still override); 1 means exhaustive search. An
                                uncalibrated index uses PLAID's fixed defaults. */
    const int64_t *subset;   /* if non-NULL, only these internal ids are candidates; ids
                                that are deleted in, or newer than, the snapshot the search
                                reads are skipped (negative ids: CP_EINVAL) */
    size_t n_subset;
} cp_search_params;

#define CP_DEFAULT_RECALL 0.97f

/* k, and PLAID's defaults for that k (PLAID.md 3.2) left to be resolved at search time. */
void cp_search_params_init(cp_search_params *params, int k);

/* The concrete ncells / threshold / ndocs that a search with params will use. */
void cp_search_params_resolve(const cp_search_params *params, int *ncells, float *threshold,
                              int *ndocs);

/*
 * Calibrate the index's search settings (index/calibrate.c): pseudo-queries made from a
 * sample of the index's own documents are searched exhaustively and with a ladder of
 * ncells / ndocs settings; for k = 10 and 100 and each recall target (0.90, 0.95, 0.97,
 * 0.99, 0.995) the cheapest setting that reaches it (or exhaustive search, stored as
 * ncells = ndocs = 0, where that costs less) is stored in meta
 * "search_calibration" and used from then on by searches with a recall target (the
 * default one included). Needs CP_OPEN_WRITE. progress may be NULL. Build and import run
 * it; compaction reruns it.
 */
cp_status cp_index_calibrate(cp_index *index, FILE *progress, cp_error *err);

/* The stored calibration (meta "search_calibration", cp_index_meta_get) in readable form:
 * one entry per (k, recall target). false if the text is malformed. */
enum { CP_CALIBRATION_MAX = 16 };
typedef struct cp_index_calibration {
    int n_queries, n_settings;
    int k[CP_CALIBRATION_MAX], ncells[CP_CALIBRATION_MAX], ndocs[CP_CALIBRATION_MAX];
    float target[CP_CALIBRATION_MAX], threshold[CP_CALIBRATION_MAX], measured[CP_CALIBRATION_MAX];
} cp_index_calibration;
bool cp_index_calibration_parse(const char *text, cp_index_calibration *out);

typedef struct cp_hit {
    int64_t doc_id;
    float score;
} cp_hit;

/* Per-stage wall times of one search, in milliseconds (0 when a stage did not run). */
typedef struct cp_search_timing {
    double centroid_scores, candidates, stage2, stage3, stage4, total;
    int64_t n_candidates; /* documents after stage 1 */
} cp_search_timing;

/*
 * Search one query: n_q x dim float32 token embeddings (L2-normalised by the caller or
 * not: they are used as given). Writes up to params->k hits, best first, ties broken by
 * ascending doc_id, into hits and their number into *n_hits. timing may be NULL.
 * Thread-safe; runs on the calling thread only.
 */
cp_status cp_index_search(cp_index *index, const float *query, int n_q, int dim,
                          const cp_search_params *params, cp_hit *hits, int *n_hits,
                          cp_search_timing *timing, cp_error *err);

/*
 * Search n_queries queries with up to threads threads (0: all cores). queries[i] has
 * n_q[i] rows. hits is n_queries x params->k; n_hits[i] counts the valid ones for query i.
 */
cp_status cp_index_search_batch(cp_index *index, const float *const *queries, const int *n_q,
                                size_t n_queries, int dim, const cp_search_params *params,
                                int threads, cp_hit *hits, int *n_hits, cp_error *err);

/*
 * The candidates of a restricted search, for cp_search_params.subset: internal ids, sorted
 * ascending and unique, of the live documents that are among external_ids (when by_ids;
 * unknown or deleted ids are skipped, since a first-stage list may name documents deleted
 * since; an empty list matches nothing) and that match filter_json (when not NULL;
 * cp_index_filter's syntax, CP_EINVAL naming the bad part). Neither given: no ids. *doc_ids
 * is malloc'd. Thread-safe.
 */
cp_status cp_index_restrict(cp_index *index, const char *filter_json,
                            const char *const *external_ids, size_t n_external_ids, bool by_ids,
                            int64_t **doc_ids, size_t *n_doc_ids, cp_error *err);

/*
 * The documents of n hits in one call: out[i] gets hits[i]'s doc_id, external id and
 * n_tokens, plus its text and metadata when fields asks for them (CP_DOC_TEXT |
 * CP_DOC_METADATA; NULL when the document has none). A search reads a snapshot: a hit whose
 * document was deleted or replaced since comes back with external_id NULL and doc_id -1,
 * so that a reader never fails because of a concurrent writer. Free every entry with
 * cp_document_info_free (on failure none needs it). Thread-safe.
 */
cp_status cp_index_hit_documents(cp_index *index, const cp_hit *hits, size_t n, int fields,
                                 cp_document_info *out, cp_error *err);

/*
 * Exact MaxSim of float token vectors (late interaction's score, as exact search computes
 * it, with the same kernels): the sum over the n_q query rows of the largest dot product
 * with any of the n_d document rows (a query row adds 0 when n_d is 0). best_row and
 * best_sim (n_q entries each, may be NULL) get, per query row, the document row that gave
 * it (the lowest among equals; -1 when n_d is 0) and that dot product. Vectors are used as
 * given (not normalised here). Thread-safe.
 */
cp_status cp_maxsim_tokens(const float *query, int n_q, const float *doc, int n_d, int dim,
                           float *score, int32_t *best_row, float *best_sim, cp_error *err);

/* cp_maxsim_tokens' score alone; NaN when it fails (out of memory, bad arguments). */
float cp_maxsim(const float *query, int n_q, const float *doc, int n_d, int dim);

/* ----------------------------------------------------------------------------------------
 * Windowed documents (index/windows.c; colplaid/window.h, docs/index-format.md "Windows").
 * ------------------------------------------------------------------------------------- */

/* How a windowed document's score is made: MaxSim over all of its rows (the plain search
 * score), or the best window's own MaxSim (MaxP). */
typedef enum cp_doc_score { CP_DOC_SCORE_MAXSIM = 0, CP_DOC_SCORE_MAXP = 1 } cp_doc_score;
#define CP_DOC_SCORE_DEFAULT CP_DOC_SCORE_MAXP /* measured: docs/search.md */

const char *cp_doc_score_name(cp_doc_score s); /* "maxsim", "maxp" */
bool cp_doc_score_parse(const char *name, cp_doc_score *out);

/* The index's window settings (meta "windows"): false, and w->window 0, when the index was
 * not built with windows. score (may be NULL) gets the recorded document score. */
bool cp_index_windows(cp_index *index, cp_window_options *w, cp_doc_score *score);

/* The stored windows of a document (malloc'd; *n_windows 0 and NULL when it has none).
 * Thread-safe. */
cp_status cp_index_document_windows(cp_index *index, int64_t doc_id, cp_window **windows,
                                    int32_t *n_windows, cp_error *err);

/* A hit's best window: characters [start, end) of its text (Unicode code points), the
 * window's number and its own MaxSim; window -1 (start = end = -1) when the document has no
 * windows (or was deleted since the search). */
typedef struct cp_passage {
    int32_t start, end;
    int32_t window;
    float score;
} cp_passage;

/* For hits[0, n) of a search with query (n_q x dim, as searched): each hit's best window
 * into out[i] (out may be NULL). With CP_DOC_SCORE_MAXP a windowed hit's score becomes its
 * best window's MaxSim and hits (with out) are re-sorted best first, ties by doc_id.
 * Thread-safe. */
cp_status cp_index_hit_passages(cp_index *index, const float *query, int n_q, int dim,
                                cp_doc_score score, cp_hit *hits, int n, cp_passage *out,
                                cp_error *err);

/* ----------------------------------------------------------------------------------------
 * The lexical side and hybrid search (index/lexical.c; docs/hybrid.md).
 *
 * An index built from text (cp_build_options.lexical) holds an SQLite FTS5 index over its
 * live documents' texts (tokenizer "porter unicode61 remove_diacritics 2"), kept in the
 * same transactions as every upsert, delete and compaction. Indexes built from embeddings,
 * and files from before it existed, have none: the calls below then fail with
 * CP_EUNSUPPORTED and a message that says how to add one (cp_index_lexical_add).
 * ------------------------------------------------------------------------------------- */

/* Whether the index has a lexical side. Thread-safe. */
bool cp_index_has_lexical(cp_index *index);

/* Add the lexical side to an index that has none, indexing every live document's stored
 * text in one transaction (*added false when it had one already). Needs CP_OPEN_WRITE. */
cp_status cp_index_lexical_add(cp_index *index, bool *added, cp_error *err);

/* Record the index's default lexical weight for linear hybrid fusion (meta "hybrid"
 * {"alpha": A}), e.g. one measured on held-out queries. Needs CP_OPEN_WRITE. */
cp_status cp_index_set_hybrid_alpha(cp_index *index, float alpha, cp_error *err);

/* BM25 search (FTS5's bm25(), negated: higher is better) of a text query: its terms (runs
 * of letters and digits, lowercased, at most 128) are ORed; no query syntax is
 * interpreted. params->k and params->subset apply (the other fields do not). Hits come
 * from the snapshot searches read. Thread-safe. */
cp_status cp_index_lexical_search(cp_index *index, const char *text, const cp_search_params *params,
                                  cp_hit *hits, int *n_hits, cp_error *err);

enum { CP_FUSION_DEFAULT = 0, CP_FUSION_RRF, CP_FUSION_LINEAR };
enum { CP_NORM_ZSCORE = 0, CP_NORM_MINMAX };

typedef struct cp_fusion {
    int method;  /* CP_FUSION_DEFAULT: linear z-score fusion at the index's alpha */
    int norm;    /* CP_FUSION_LINEAR: CP_NORM_ZSCORE (default) or CP_NORM_MINMAX */
    float alpha; /* CP_FUSION_LINEAR: weight of the lexical side in [0, 1]; NaN: the index's
                    (meta "hybrid" {"alpha": A}), else the model's default (0.9 for the
                    static model, 0.5 otherwise) */
    int rrf_k;   /* CP_FUSION_RRF: the constant (default 60) */
    int depth;   /* lexical candidates fused (default 100; at least k) */
} cp_fusion;

void cp_fusion_init(cp_fusion *f);

/* The fusion a search with f uses (defaults resolved against the index). Thread-safe. */
void cp_index_fusion_resolve(cp_index *index, const cp_fusion *f, cp_fusion *out);

/* Hybrid search: the late search of query (n_q x dim, as cp_index_search, params as
 * there) and the lexical search of text (depth candidates), fused. Every candidate gets
 * both scores (the lexical ones their exact MaxSim, the late ones their BM25), then:
 * linear fusion scores alpha * norm(bm25) + (1 - alpha) * norm(maxsim), normalised over
 * the candidates by z-score or min-max; RRF sums 1 / (rrf_k + rank) over the two
 * rankings of the candidates. Hit scores are the fused scores. Thread-safe. */
cp_status cp_index_hybrid_search(cp_index *index, const char *text, const float *query, int n_q,
                                 int dim, const cp_search_params *params, const cp_fusion *fusion,
                                 cp_hit *hits, int *n_hits, cp_search_timing *timing,
                                 cp_error *err);

/* Which terms of a text query (as cp_index_lexical_search makes them) the document doc_id
 * matches lexically, and its BM25 score for the whole query (0 when none matches). */
typedef struct cp_lexical_explain {
    char **terms;
    bool *matched;
    size_t n_terms;
    float score;
} cp_lexical_explain;

cp_status cp_index_lexical_explain(cp_index *index, const char *text, int64_t doc_id,
                                   cp_lexical_explain *out, cp_error *err);
void cp_lexical_explain_free(cp_lexical_explain *x);

/* ----------------------------------------------------------------------------------------
 * Metadata filters (index/filter.c).
 * ------------------------------------------------------------------------------------- */

/*
 * Internal ids of the live documents whose metadata matches filter_json, a JSON filter
 * ({"year": {"$gte": 2020}, "lang": {"$in": ["en", "fr"]}}; operators $eq $ne $gt $gte $lt
 * $lte $in $nin $exists $and $or $not), compiled to parameterised SQL. The ids come back
 * sorted ascending in a malloc'd array. A malformed filter is CP_EINVAL with a message
 * naming the offending part. Thread-safe.
 */
cp_status cp_index_filter(cp_index *index, const char *filter_json, int64_t **doc_ids,
                          size_t *n_ids, cp_error *err);

/* ----------------------------------------------------------------------------------------
 * Live updates (index/live.c; docs/live-index.md). All need an index opened with
 * CP_OPEN_WRITE (else CP_EREADONLY). Writers are serialised per index; searches keep
 * reading the last published snapshot and never wait. Each call is one SQLite transaction:
 * durable when it returns CP_OK, and visible to searches as a whole or not at all.
 * ------------------------------------------------------------------------------------- */

typedef struct cp_upsert_result {
    size_t n_added;           /* external ids that were not live before */
    size_t n_replaced;        /* live ids whose previous version was tombstoned */
    int64_t first_doc_id;     /* docs[i] got internal id first_doc_id + i */
    int64_t n_tokens;         /* tokens written (after pooling, in a pooled index) */
    int64_t n_outlier_tokens; /* tokens farther from their centroid than the drift threshold */
    bool rebuild_advised;     /* cumulative drift says: rebuild for best quality */
} cp_upsert_result;

/* Insert or replace n documents by external id (embeddings given, dim columns; they are
 * L2-normalised and compressed with the index's codec into one new segment). A batch that
 * repeats an id, has empty or NaN/zero vectors, or whose dim differs (CP_EDIM) is refused
 * whole. In a pooled index (meta "pooling", cp_build_options.pool_factor) each document is
 * pooled like the build's; result->n_tokens counts the stored vectors. result may be NULL.
 * Thread-safe. */
cp_status cp_index_upsert(cp_index *index, const cp_document *docs, size_t n, int dim,
                          cp_upsert_result *result, cp_error *err);

/* Delete the live documents with these external ids (unknown ids are skipped and not
 * counted). *n_deleted (may be NULL) is the number deleted. Thread-safe. */
cp_status cp_index_delete(cp_index *index, const char *const *ids, size_t n, size_t *n_deleted,
                          cp_error *err);

/* Delete the live documents with these internal ids (unknown or deleted ids are skipped). */
cp_status cp_index_delete_doc_ids(cp_index *index, const int64_t *doc_ids, size_t n,
                                  size_t *n_deleted, cp_error *err);

/* Delete every live document whose metadata matches filter_json (cp_index_filter syntax),
 * evaluated inside the write transaction. */
cp_status cp_index_delete_filter(cp_index *index, const char *filter_json, size_t *n_deleted,
                                 cp_error *err);

typedef struct cp_compact_result {
    int64_t segments_before, segments_after;
    int64_t tombstones_removed;
} cp_compact_result;

/* Rewrite segments that hold tombstones (and merge small segments) so that only live
 * tokens remain; internal ids never change. Runs as one transaction per group of segments
 * (each crash-safe); searches continue on the current snapshot and then see an identical
 * result set. progress may be NULL; result may be NULL. Thread-safe. */
cp_status cp_index_compact(cp_index *index, FILE *progress, cp_compact_result *result,
                           cp_error *err);

/* The automatic policy: compact when tombstones exceed max_deleted_fraction of all document
 * rows (live + deleted; 0.2 is a good default). *compacted (may be NULL) says whether it
 * ran. Meant to be called after writes, e.g. by the server's write path. Thread-safe. */
cp_status cp_index_maybe_compact(cp_index *index, double max_deleted_fraction, bool *compacted,
                                 cp_error *err);

#ifdef __cplusplus
}
#endif
#endif
