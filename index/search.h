/*
 * PLAID search over a snapshot (index/search.c; cp_index_search is the public entry). The
 * trace of the document sets that flow between the stages and the stage-4 mode are here so
 * that tests and benchmarks can check each stage against a naive reference.
 */
#ifndef CP_SEARCH_H
#define CP_SEARCH_H

#include "snapshot.h"

/* Search over a snapshot directly (cp_index_search wraps this). */
cp_status cp_snapshot_search(const cp_snapshot *snap, const float *query, int n_q,
                             const cp_search_params *params, cp_hit *hits, int *n_hits,
                             cp_search_timing *timing, cp_error *err);

typedef struct cp_search_trace {
    /* Sorted ascending slots (index/snapshot.h), malloc'd by the search (free with
     * cp_search_trace_free). stage1: candidates; stage2: survivors of pruned interaction (top
     * ndocs); stage3: survivors of full interaction (top ndocs/4). A stage that was skipped because
     * all its input fits its quota copies its input. */
    int32_t *stage1, *stage2, *stage3;
    size_t n_stage1, n_stage2, n_stage3;
} cp_search_trace;

void cp_search_trace_free(cp_search_trace *trace);

/* How stage 4 (and exact mode) computes MaxSim from compressed tokens.
 * EXPLICIT: decompress every token to floats, then dot products with the query.
 * IMPLICIT: WARP-style: score = (S_cq[code] + sum over residual bytes of a per-query table
 *   T[byte position][byte value]) / ||decompressed token||; the table (dim*nbits/8 x 256 x nq
 *   floats) replaces dim x nq multiply-adds per token by dim*nbits/8 x nq adds.
 * AUTO: implicit when the tokens to score pay for building the table (search.c). */
typedef enum cp_stage4_mode {
    CP_STAGE4_AUTO = 0,
    CP_STAGE4_EXPLICIT,
    CP_STAGE4_IMPLICIT
} cp_stage4_mode;

/* cp_snapshot_search with a stage-4 mode, filling trace (may be NULL) and timing. */
cp_status cp_snapshot_search_traced(const cp_snapshot *snap, const float *query, int n_q,
                                    const cp_search_params *params, cp_stage4_mode mode,
                                    cp_hit *hits, int *n_hits, cp_search_timing *timing,
                                    cp_search_trace *trace, cp_error *err);

/* Documents to score exactly beside a search's own candidates (hybrid search: the lexical
 * candidates, index/lexical.c). collect is called once, after stages 1-3 and before stage 4
 * (it may block, e.g. to join the thread that finds them; it is not called when an earlier
 * stage fails), and gives n internal document ids (unique, any order) and room for n
 * scores. Stage 4 then scores them together with the candidates, with the query's centroid
 * scores that stages 1-3 computed and the same kernel (so the cost model of
 * implicit/explicit scoring sees all their tokens), and writes scores[i] = the exact
 * MaxSim of ids[i], NAN when the snapshot has no live document with that id. The hits are
 * those the search would return without extra documents. */
typedef struct cp_search_extra {
    cp_status (*collect)(void *ctx, const int64_t **ids, float **scores, size_t *n,
                         cp_error *err);
    void *ctx;
} cp_search_extra;

cp_status cp_snapshot_search_extra(const cp_snapshot *snap, const float *query, int n_q,
                                   const cp_search_params *params, cp_stage4_mode mode,
                                   const cp_search_extra *extra, cp_hit *hits, int *n_hits,
                                   cp_search_timing *timing, cp_error *err);

/* Sizes the stages will keep for params: stage 2 keeps max(ndocs, k), stage 3 keeps
 * max(ndocs / 4, k), so user overrides can never return fewer than k hits. */
void cp_search_stage_sizes(const cp_search_params *params, int *keep2, int *keep3);

/* Stage 1 probes a query row that repeats (cosine > 0.95 with an earlier row, as
 * ColBERT's [MASK] padding rows do) ncells x repeats cells deep. On by default; benchmarks
 * switch it off to measure what it pays. Not thread-safe to change during searches. */
extern bool cp_search_merge_repeated_rows;
enum { CP_MAX_QUERY_ROWS_MERGED = 64 };

/* The ncells / threshold / ndocs a search of snap with params uses: explicit values, else
 * the snapshot's calibrated setting for (k, recall), else PLAID's defaults for k. */
void cp_snapshot_search_resolve(const cp_snapshot *snap, const cp_search_params *params,
                                int *ncells, float *threshold, int *ndocs);

/* Stages 1-3 of a query at one ncells, for the calibration (index/calibrate.c): every
 * stage-1 candidate with its stage-2 score (centroid interaction over the centroids that
 * pass threshold) and its stage-3 score (over every centroid). The survivors of any ndocs
 * follow from these scores, ranked as a search ranks them (score descending, then doc id
 * ascending), so a ladder of ndocs needs one pass instead of one search per rung. */
typedef struct cp_stage_candidate {
    int32_t doc; /* slot (snapshot.h) */
    float pruned; /* stage 2 */
    float full;   /* stage 3 */
} cp_stage_candidate;
/* *out is malloc'd (free it), *n_out candidates. */
cp_status cp_snapshot_stage_candidates(const cp_snapshot *snap, const float *query, int n_q,
                                       int ncells, float threshold, cp_stage_candidate **out,
                                       size_t *n_out, cp_error *err);

#endif
