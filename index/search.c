/*
 * PLAID search over an immutable snapshot (PLAID.md section 3).
 *
 *   stage 1  S = C * Q^T (K x nq), top-ncells centroids per query token, union of their
 *            IVF lists -> candidate documents (a bitmap over doc slots, scanned in order,
 *            gives a sorted unique list without sorting);
 *   stage 2  centroid interaction with pruning (codes whose centroid scores below the
 *            threshold for every query token are ignored) -> top ndocs;
 *   stage 3  centroid interaction without pruning -> top ndocs / 4;
 *   stage 4  exact MaxSim of the compressed tokens -> top k, either by decompressing them
 *            or (when enough tokens pay for a per-query table) by WARP-style implicit
 *            scoring, which gives the same scores with ~4x fewer operations per token.
 * A stage whose input already fits its quota is skipped: it could only keep everything.
 * Order is always (score descending, doc id ascending), so results are deterministic.
 *
 * Memory: every buffer a search needs lives in a per-thread scratch arena that grows to the
 * largest snapshot seen and is reused by later searches on that thread (no allocation per
 * candidate or per stage once warm). The arena is freed when its thread exits.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "index_handle.h"
#include "kernels.h"
#include "search.h"
#include "snapshot.h"

/* ---------------------------------------------------------------------------------------
 * Parameters (PLAID.md 3.2)
 * ------------------------------------------------------------------------------------ */

void cp_search_params_init(cp_search_params *params, int k)
{
    memset(params, 0, sizeof *params);
    params->k = k;
    params->centroid_score_threshold = NAN;
}

void cp_search_params_resolve(const cp_search_params *params, int *ncells, float *threshold,
                              int *ndocs)
{
    int k = params->k;
    int nc, nd;
    float t;
    if (k <= 10) {
        nc = 1, t = 0.5f, nd = 256;
    } else if (k <= 100) {
        nc = 2, t = 0.45f, nd = 1024;
    } else {
        nc = 4, t = 0.4f, nd = k > 1024 ? 4 * k : 4096;
    }
    if (params->ncells > 0) nc = params->ncells;
    if (!isnan(params->centroid_score_threshold)) t = params->centroid_score_threshold;
    if (params->ndocs > 0) nd = params->ndocs;
    if (ncells) *ncells = nc;
    if (threshold) *threshold = t;
    if (ndocs) *ndocs = nd;
}

/* The calibrated setting for params' k and recall target, if the snapshot has one: k up
 * to 10 uses the k = 10 curve, up to 100 the k = 100 one, larger k the k = 100 one with
 * ndocs scaled by k / 100; the smallest calibrated target at or above the requested one
 * (the highest for requests above it). */
static bool calibrated_setting(const cp_snapshot *snap, const cp_search_params *params,
                               cp_search_setting *out)
{
    if (!snap || !snap->calibration.valid) return false;
    float recall = params->recall > 0 ? params->recall : CP_DEFAULT_RECALL;
    int ki = params->k <= cp_calib_ks[0] ? 0 : 1, ti = 0;
    while (ti + 1 < CP_CALIB_TARGETS && cp_calib_targets[ti] + 1e-6f < recall)
        ti++;
    *out = snap->calibration.setting[ki][ti];
    if (params->k > cp_calib_ks[CP_CALIB_KS - 1]) {
        int64_t nd = (int64_t)out->ndocs * params->k / cp_calib_ks[CP_CALIB_KS - 1];
        out->ndocs = nd > INT32_MAX / 2 ? INT32_MAX / 2 : (int)nd;
    }
    return true;
}

void cp_snapshot_search_resolve(const cp_snapshot *snap, const cp_search_params *params,
                                int *ncells, float *threshold, int *ndocs)
{
    int nc, nd;
    float t;
    cp_search_params_resolve(params, &nc, &t, &nd);
    cp_search_setting cal;
    bool overridden = params->ncells > 0 || params->ndocs > 0 || !isnan(params->centroid_score_threshold);
    /* a calibrated "exhaustive" (ncells 0) stands only as a whole: with any explicit
     * setting the search is PLAID with the fixed defaults for the rest */
    if (calibrated_setting(snap, params, &cal) && (cal.ncells > 0 || !overridden)) {
        if (params->ncells <= 0) nc = cal.ncells;
        if (isnan(params->centroid_score_threshold)) t = cal.threshold;
        if (params->ndocs <= 0) nd = cal.ndocs;
    }
    if (ncells) *ncells = nc;
    if (threshold) *threshold = t;
    if (ndocs) *ndocs = nd;
}

static void stage_sizes(int k, int nd, int *keep2, int *keep3)
{
    *keep2 = nd > k ? nd : k;
    *keep3 = nd / 4 > k ? nd / 4 : k;
}

void cp_search_stage_sizes(const cp_search_params *params, int *keep2, int *keep3)
{
    int nd;
    cp_search_params_resolve(params, NULL, NULL, &nd);
    stage_sizes(params->k, nd, keep2, keep3);
}

void cp_search_trace_free(cp_search_trace *trace)
{
    if (!trace) return;
    free(trace->stage1);
    free(trace->stage2);
    free(trace->stage3);
    memset(trace, 0, sizeof *trace);
}

/* ---------------------------------------------------------------------------------------
 * Per-thread scratch
 * ------------------------------------------------------------------------------------ */

typedef struct scored {
    float score;
    int32_t doc;
} scored;

enum { DECODE_ROWS = 32 }; /* stage-4 tokens decoded and scored per step */
enum { MAX_DEEP_CELLS = 512 }; /* cells probed for one repeated query row, at most */

typedef struct scratch {
    float *qt;        /* d x nqp */
    float *S;         /* K x nqp */
    float *rowmax;    /* K */
    uint8_t *keep;    /* K */
    uint8_t *cell_on; /* K, all zero between searches */
    int32_t *cells;   /* nq * ncells */
    int32_t *top_idx; /* nq * ncells */
    float *top_val;
    uint64_t *bitmap; /* ceil(n_slots / 64), all zero between searches */
    scored *cand;     /* candidates, then survivors */
    float *dec;       /* DECODE_ROWS x d */
    float *dec_scores; /* DECODE_ROWS x nqp */
    float *colmax;    /* nqp */
    float *table;     /* implicit scoring: rb x 256 x nqp */
    cp_decode_lut lut;
    size_t cap_qt, cap_S, cap_K, cap_cells, cap_bitmap, cap_cand, cap_dec, cap_dec_scores,
        cap_colmax, cap_table;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *p)
{
    scratch *s = p;
    if (!s) return;
    free(s->qt);
    free(s->S);
    free(s->rowmax);
    free(s->keep);
    free(s->cell_on);
    free(s->cells);
    free(s->top_idx);
    free(s->top_val);
    free(s->bitmap);
    free(s->cand);
    free(s->dec);
    free(s->dec_scores);
    free(s->colmax);
    free(s->table);
    free(s);
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

static scratch *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok) return NULL;
    scratch *s = pthread_getspecific(scratch_key);
    if (s) return s;
    s = calloc(1, sizeof *s);
    if (s && pthread_setspecific(scratch_key, s) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

/* Grow *p to hold n elements of size elem; new memory is zeroed when zero is set (arrays
 * that must stay all-zero between searches are only ever grown, then zeroed whole). */
static int grow(void *p, size_t *cap, size_t n, size_t elem, int zero)
{
    void **ptr = p;
    if (n <= *cap && *ptr) return 1;
    size_t want = n + n / 4 + 16;
    void *q = zero ? calloc(want, elem) : malloc(want * elem);
    if (!q) return 0;
    free(*ptr);
    *ptr = q;
    *cap = want;
    return 1;
}

static cp_status scratch_prepare(scratch *s, const cp_snapshot *snap, int nq, int ncells,
                                 cp_error *err)
{
    size_t d = (size_t)snap->codec.dim, K = (size_t)snap->codec.n_centroids;
    size_t nqp = (size_t)cp_kernels_nqp(nq);
    size_t cells = (size_t)nq * (size_t)ncells + K; /* + every cell, once, for deep probes */
    size_t words = ((size_t)snap->n_slots + 63) / 64;
    int ok = grow(&s->qt, &s->cap_qt, d * nqp, sizeof(float), 0) &&
             grow(&s->S, &s->cap_S, K * nqp, sizeof(float), 0) &&
             grow(&s->dec, &s->cap_dec, DECODE_ROWS * d, sizeof(float), 0) &&
             grow(&s->dec_scores, &s->cap_dec_scores, DECODE_ROWS * nqp, sizeof(float), 0) &&
             grow(&s->colmax, &s->cap_colmax, nqp, sizeof(float), 0) &&
             grow(&s->bitmap, &s->cap_bitmap, words, sizeof(uint64_t), 1);
    if (ok && (K > s->cap_K || !s->rowmax)) {
        size_t cap = 0;
        free(s->rowmax);
        free(s->keep);
        free(s->cell_on);
        s->rowmax = NULL, s->keep = NULL, s->cell_on = NULL;
        ok = grow(&s->rowmax, &cap, K, sizeof(float), 0) &&
             (cap = 0, grow(&s->keep, &cap, K, 1, 0)) &&
             (cap = 0, grow(&s->cell_on, &cap, K, 1, 1));
        s->cap_K = ok ? K : 0;
    }
    if (ok && (cells > s->cap_cells || !s->cells)) {
        size_t cap = 0;
        free(s->cells);
        free(s->top_idx);
        free(s->top_val);
        s->cells = NULL, s->top_idx = NULL, s->top_val = NULL;
        ok = grow(&s->cells, &cap, cells, sizeof(int32_t), 0) &&
             (cap = 0, grow(&s->top_idx, &cap, cells, sizeof(int32_t), 0)) &&
             (cap = 0, grow(&s->top_val, &cap, cells, sizeof(float), 0));
        s->cap_cells = ok ? cells : 0;
    }
    if (!ok) return cp_error_set(err, CP_ENOMEM, "out of memory for search buffers");
    return CP_OK;
}

/* ---------------------------------------------------------------------------------------
 * Selection: best m of n by (score desc, doc asc), in place, O(n) expected.
 * ------------------------------------------------------------------------------------ */

static inline int better(scored a, scored b)
{
    return a.score > b.score || (a.score == b.score && a.doc < b.doc);
}

static inline void swap_scored(scored *a, size_t i, size_t j)
{
    scored t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* Quickselect (median-of-three pivot): afterwards a[0..m) are the best m, unordered. The
 * order is total (doc ids are unique), so the chosen set is deterministic. */
static void select_best(scored *a, size_t n, size_t m)
{
    if (m == 0 || m >= n) return;
    size_t lo = 0, hi = n - 1, target = m - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (better(a[mid], a[lo])) swap_scored(a, lo, mid);
        if (better(a[hi], a[lo])) swap_scored(a, lo, hi);
        if (better(a[hi], a[mid])) swap_scored(a, mid, hi);
        swap_scored(a, mid, hi); /* the median is the pivot, parked at hi */
        scored pivot = a[hi];
        size_t store = lo;
        for (size_t i = lo; i < hi; i++)
            if (better(a[i], pivot)) swap_scored(a, i, store++);
        swap_scored(a, store, hi);
        if (store == target) return;
        if (store > target) hi = store - 1;
        else lo = store + 1;
    }
}

static int cmp_scored(const void *pa, const void *pb)
{
    scored a = *(const scored *)pa, b = *(const scored *)pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

static int cmp_i32(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

/* ---------------------------------------------------------------------------------------
 * Stages
 * ------------------------------------------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Qt = Q transposed and zero-padded to nqp columns. */
static void transpose_query(const float *q, int nq, int d, int nqp, float *qt)
{
    memset(qt, 0, sizeof(float) * (size_t)d * (size_t)nqp);
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < d; j++) qt[(size_t)j * (size_t)nqp + (size_t)i] = q[(size_t)i * (size_t)d + (size_t)j];
}

/* Set bits of the bitmap -> sorted candidate list (bits cleared on the way). */
static size_t drain_bitmap(uint64_t *bitmap, size_t words, scored *out)
{
    size_t n = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t bits = bitmap[w];
        bitmap[w] = 0;
        while (bits) {
            out[n].doc = (int32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
            out[n++].score = 0.0f;
            bits &= bits - 1;
        }
    }
    return n;
}

static cp_status ensure_cand(scratch *s, size_t n, cp_error *err)
{
    if (!grow(&s->cand, &s->cap_cand, n, sizeof(scored), 0))
        return cp_error_set(err, CP_ENOMEM, "out of memory for %zu search candidates", n);
    return CP_OK;
}

bool cp_search_merge_repeated_rows = true;

/* Query rows within this cosine of an earlier row count as repeats of it (ColBERT's [MASK]
 * padding rows are near-identical to each other). */
static const float REPEAT_COSINE = 0.95f;

/* Best n cells of column col of S (K x nqp), into out (n <= MAX_DEEP_CELLS). */
static int top_cells_of_column(const float *S, int64_t K, int nqp, int col, int n, int32_t *out)
{
    float val[MAX_DEEP_CELLS];
    int have = 0;
    for (int64_t c = 0; c < K; c++) {
        float v = S[(size_t)c * (size_t)nqp + (size_t)col];
        if (have == n && v <= val[n - 1]) continue;
        int at = have < n ? have++ : n - 1;
        while (at > 0 && v > val[at - 1]) {
            val[at] = val[at - 1];
            out[at] = out[at - 1];
            at--;
        }
        val[at] = v;
        out[at] = (int32_t)c;
    }
    return have;
}

static inline void add_cell(const cp_snapshot *snap, scratch *s, int32_t c, size_t *n_cells,
                            size_t *upper)
{
    if (c < 0 || s->cell_on[c]) return;
    s->cell_on[c] = 1;
    s->cells[(*n_cells)++] = c;
    *upper += (size_t)(snap->ivf_offsets[c + 1] - snap->ivf_offsets[c]);
    if (snap->ivf_delta_offsets) /* a live index's recent documents (index/live.c) */
        *upper += (size_t)(snap->ivf_delta_offsets[c + 1] - snap->ivf_delta_offsets[c]);
}

/* Stage 1 from the IVF: top-ncells cells per query token, union of their doc lists. A row
 * repeated m times (padding) weighs m times in MaxSim, so it is probed m times deeper:
 * its top ncells * m cells (the repeats themselves add nothing new at the same depth). */
static cp_status candidates_from_ivf(const cp_snapshot *snap, scratch *s, const cp_kernels *kn,
                                     int nq, int nqp, int ncells, size_t *n_out, cp_error *err)
{
    int64_t K = snap->codec.n_centroids;
    int d = snap->codec.dim;
    int probe = ncells < K ? ncells : (int)K;
    kn->topn_cols(s->S, K, nqp, nq, probe, s->top_idx, s->top_val);
    size_t n_cells = 0, upper = 0;
    for (int t = 0; t < nq; t++)
        for (int j = 0; j < probe; j++)
            add_cell(snap, s, s->top_idx[(size_t)t * (size_t)probe + (size_t)j], &n_cells, &upper);
    if (cp_search_merge_repeated_rows) {
        int repeats[CP_MAX_QUERY_ROWS_MERGED] = {0}, owner[CP_MAX_QUERY_ROWS_MERGED];
        int rows = nq < CP_MAX_QUERY_ROWS_MERGED ? nq : CP_MAX_QUERY_ROWS_MERGED;
        for (int i = 0; i < rows; i++) {
            owner[i] = i;
            for (int j = 0; j < i && owner[i] == i; j++) {
                if (owner[j] != j) continue;
                float dot = 0, ni = 0, nj = 0;
                for (int x = 0; x < d; x++) {
                    float a = s->qt[(size_t)x * (size_t)nqp + (size_t)i],
                          b = s->qt[(size_t)x * (size_t)nqp + (size_t)j];
                    dot += a * b, ni += a * a, nj += b * b;
                }
                if (dot > REPEAT_COSINE * sqrtf(ni * nj)) owner[i] = j;
            }
            repeats[owner[i]]++;
        }
        int32_t deep[MAX_DEEP_CELLS];
        for (int i = 0; i < rows; i++) {
            if (repeats[i] < 2) continue;
            int64_t want = (int64_t)ncells * repeats[i];
            if (want > MAX_DEEP_CELLS) want = MAX_DEEP_CELLS;
            if (want > K) want = K;
            int got = top_cells_of_column(s->S, K, nqp, i, (int)want, deep);
            for (int c = 0; c < got; c++)
                add_cell(snap, s, deep[c], &n_cells, &upper);
        }
    }
    size_t words = ((size_t)snap->n_slots + 63) / 64;
    for (size_t i = 0; i < n_cells; i++) {
        int32_t c = s->cells[i];
        s->cell_on[c] = 0;
        for (int64_t p = snap->ivf_offsets[c]; p < snap->ivf_offsets[c + 1]; p++) {
            int32_t doc = snap->ivf_docs[p];
            s->bitmap[doc >> 6] |= 1ull << (doc & 63);
        }
        for (int64_t p = snap->ivf_delta_offsets ? snap->ivf_delta_offsets[c] : 0;
             snap->ivf_delta_offsets && p < snap->ivf_delta_offsets[c + 1]; p++) {
            int32_t doc = snap->ivf_delta_docs[p];
            s->bitmap[doc >> 6] |= 1ull << (doc & 63);
        }
    }
    upper = upper < (size_t)snap->n_slots ? upper : (size_t)snap->n_slots;
    cp_status st = ensure_cand(s, upper + 1, err);
    if (st != CP_OK) {
        memset(s->bitmap, 0, words * sizeof(uint64_t));
        return st;
    }
    size_t n = drain_bitmap(s->bitmap, words, s->cand);
    size_t live = 0; /* the IVF should hold live docs only; be safe about tombstones */
    for (size_t i = 0; i < n; i++)
        if (!snap->deleted[s->cand[i].doc]) s->cand[live++] = s->cand[i];
    *n_out = live;
    return CP_OK;
}

/* Stage 1 for a subset: the live documents of the subset, sorted and unique. The subset
 * (internal ids) is evaluated against this snapshot: an id the snapshot has no slot for is
 * a document committed after the snapshot was taken (a filter read the database while the
 * write was being published) or removed before it. It is not part of this snapshot and is
 * skipped like a deleted one, so that a reader never fails because of a writer (issue 12,
 * defect 9). */
static cp_status candidates_from_subset(const cp_snapshot *snap, scratch *s,
                                        const cp_search_params *params, size_t *n_out,
                                        cp_error *err)
{
    size_t words = ((size_t)snap->n_slots + 63) / 64;
    for (size_t i = 0; i < params->n_subset; i++) {
        int64_t doc = params->subset[i];
        if (doc < 0) {
            memset(s->bitmap, 0, words * sizeof(uint64_t));
            return cp_error_set(err, CP_EINVAL,
                                "subset document id %lld is not an internal id (they are >= 0)",
                                (long long)doc);
        }
        doc = cp_snapshot_slot_of(snap, doc);
        if (doc >= 0 && !snap->deleted[doc]) s->bitmap[doc >> 6] |= 1ull << (doc & 63);
    }
    cp_status st = ensure_cand(s, params->n_subset + 1, err);
    if (st != CP_OK) {
        memset(s->bitmap, 0, words * sizeof(uint64_t));
        return st;
    }
    *n_out = drain_bitmap(s->bitmap, words, s->cand);
    return CP_OK;
}

/* Stages 2 and 3: centroid interaction of every candidate, keep the best `keep_n`. */
static size_t interaction_stage(const cp_snapshot *snap, const scratch *s, const cp_kernels *kn,
                                int nqp, const uint8_t *keep, size_t n, size_t keep_n)
{
    for (size_t i = 0; i < n; i++) {
        int32_t doc = s->cand[i].doc;
        int64_t off = snap->doc_offsets[doc], len = snap->doc_offsets[doc + 1] - off;
        s->cand[i].score = kn->interact(s->S, nqp, snap->codes + off, (int)len, keep);
    }
    select_best(s->cand, n, keep_n);
    return n < keep_n ? n : keep_n;
}

/* Exact MaxSim of one document from its compressed tokens. An empty document scores 0. */
static float exact_doc_score(const cp_snapshot *snap, scratch *s, const cp_kernels *kn, int nq,
                             int nqp, int32_t doc)
{
    int d = snap->codec.dim, rb = cp_codec_token_bytes(&snap->codec); /* stride */
    int64_t off = snap->doc_offsets[doc], end = snap->doc_offsets[doc + 1];
    if (end == off) return 0.0f;
    float inv_norm[DECODE_ROWS];
    for (int i = 0; i < nqp; i++) s->colmax[i] = -INFINITY;
    for (int64_t t = off; t < end; t += DECODE_ROWS) {
        int n = end - t < DECODE_ROWS ? (int)(end - t) : DECODE_ROWS;
        kn->decode(&snap->codec, &s->lut, snap->codes + t, snap->residuals + t * rb, n, s->dec,
                   inv_norm);
        kn->gemm(s->dec, n, d, s->qt, nqp, s->dec_scores);
        kn->colmax_scaled(s->dec_scores, n, nqp, inv_norm, s->colmax);
    }
    float total = 0.0f;
    for (int i = 0; i < nq; i++) total += s->colmax[i];
    return total;
}

/* The implicit-scoring table: T[p][byte][i] = sum over the dims g packed in byte p of
 * Q_i[g] * w[bucket of g in byte]. Built digit by digit from the most significant group, so
 * each entry costs one multiply-add row instead of one per packed dim. */
static void build_table(const cp_codec *codec, const float *qt, int nqp, float *T)
{
    int nbits = codec->nbits, per = 8 / nbits, nb = 1 << nbits, rb = cp_residual_bytes(codec->dim, nbits);
    size_t row = (size_t)nqp;
    for (int p = 0; p < rb; p++) {
        float *Tp = T + (size_t)p * 256 * row;
        for (int level = 0; level < per; level++) {
            int shift = 8 - nbits * (level + 1), step = 1 << (shift + nbits);
            const float *q = qt + (size_t)(p * per + level) * row;
            for (int base = 0; base < 256; base += step)
                for (int b = nb - 1; b >= 0; b--) { /* b = 0 last: it updates base in place */
                    float *dst = Tp + (size_t)(base + (b << shift)) * row;
                    const float *src = Tp + (size_t)base * row;
                    float w = codec->bucket_weights[b];
                    for (size_t i = 0; i < row; i++) dst[i] = (level ? src[i] : 0.0f) + w * q[i];
                }
        }
    }
}

/* Exact MaxSim of one document by implicit scoring (needs s->S and s->table). */
static float implicit_doc_score(const cp_snapshot *snap, scratch *s, const cp_kernels *kn,
                                int nq, int nqp, int32_t doc)
{
    int rb = cp_codec_token_bytes(&snap->codec); /* stride */
    int64_t off = snap->doc_offsets[doc], end = snap->doc_offsets[doc + 1];
    if (end == off) return 0.0f;
    float inv_norm[DECODE_ROWS];
    for (int i = 0; i < nqp; i++) s->colmax[i] = -INFINITY;
    for (int64_t t = off; t < end; t += DECODE_ROWS) {
        int n = end - t < DECODE_ROWS ? (int)(end - t) : DECODE_ROWS;
        kn->table_scores(&snap->codec, &s->lut, s->S, nqp, s->table, snap->codes + t,
                         snap->residuals + t * rb, n, s->dec_scores, inv_norm);
        kn->colmax_scaled(s->dec_scores, n, nqp, inv_norm, s->colmax);
    }
    float total = 0.0f;
    for (int i = 0; i < nq; i++) total += s->colmax[i];
    return total;
}

/* Implicit scoring pays when the per-token saving, (dim - rb) multiply-adds per query
 * column, covers the table build (rb x 256 rows of nqp, written to a 1 MiB table for
 * dim 128 / nbits 2, which also pushes S_cq and the codes out of L2) plus, if S_cq is not
 * there yet (exact mode), the centroid scores (K x dim). Measured (thread CPU time, AVX-512,
 * 3k-doc synthetic index, 40 tokens/doc, K 4096, nbits 2; bench/bench_search and a
 * mode-alternating loop, 4 x 50 queries): whole search at k=10 (~2.6k tokens in stage 4)
 * explicit 1.91 / 2.34 ms vs implicit 2.04 / 2.48 ms; at k=100 (~10k tokens) explicit
 * 4.57 / 5.35 ms vs implicit 4.01 / 5.16 ms. Break-even is near 4k tokens, i.e. a saving of
 * about 48x the table rows; below that the explicit path (decode + gemm) is used. */
static bool use_implicit(const cp_snapshot *snap, cp_stage4_mode mode, int64_t tokens,
                         bool have_S)
{
    if (mode != CP_STAGE4_AUTO) return mode == CP_STAGE4_IMPLICIT;
    int d = snap->codec.dim, rb = cp_residual_bytes(d, snap->codec.nbits);
    if (rb >= d) return false;
    double cost = 48.0 * rb * 256 + (have_S ? 0.0 : (double)snap->codec.n_centroids * d);
    return (double)tokens * (d - rb) >= cost;
}

static cp_status exact_stage(const cp_snapshot *snap, scratch *s, const cp_kernels *kn, int nq,
                             int nqp, size_t n, cp_stage4_mode mode, bool have_S, cp_error *err)
{
    int64_t tokens = 0;
    for (size_t i = 0; i < n; i++)
        tokens += snap->doc_offsets[s->cand[i].doc + 1] - snap->doc_offsets[s->cand[i].doc];
    if (!use_implicit(snap, mode, tokens, have_S)) {
        for (size_t i = 0; i < n; i++)
            s->cand[i].score = exact_doc_score(snap, s, kn, nq, nqp, s->cand[i].doc);
        return CP_OK;
    }
    size_t rb = (size_t)cp_residual_bytes(snap->codec.dim, snap->codec.nbits);
    if (!grow(&s->table, &s->cap_table, rb * 256 * (size_t)nqp, sizeof(float), 0))
        return cp_error_set(err, CP_ENOMEM, "out of memory for the stage-4 scoring table");
    if (!have_S) kn->gemm(snap->codec.centroids, snap->codec.n_centroids, snap->codec.dim, s->qt, nqp, s->S);
    build_table(&snap->codec, s->qt, nqp, s->table);
    for (size_t i = 0; i < n; i++)
        s->cand[i].score = implicit_doc_score(snap, s, kn, nq, nqp, s->cand[i].doc);
    return CP_OK;
}

/* ---------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------ */

static cp_status validate(const cp_snapshot *snap, const float *query, int n_q,
                          const cp_search_params *params, cp_hit *hits, int *n_hits,
                          cp_error *err)
{
    if (!snap || !query || !params || !hits || !n_hits)
        return cp_error_set(err, CP_EINVAL, "search: a required argument is NULL");
    if (params->k < 1) return cp_error_set(err, CP_EINVAL, "k must be at least 1 (got %d)", params->k);
    if (n_q < 1) return cp_error_set(err, CP_EINVAL, "the query has no token vectors");
    if (params->subset == NULL && params->n_subset != 0)
        return cp_error_set(err, CP_EINVAL, "subset is NULL but n_subset is %zu", params->n_subset);
    if (!(params->recall >= 0.0f && params->recall <= 1.0f))
        return cp_error_set(err, CP_EINVAL,
                            "recall must be a share between 0 and 1 (e.g. 0.97; 1 searches "
                            "exhaustively), got %g",
                            (double)params->recall);
    int ncells, ndocs;
    float t;
    cp_snapshot_search_resolve(snap, params, &ncells, &t, &ndocs);
    if (params->ncells < 0 || params->ndocs < 0)
        return cp_error_set(err, CP_EINVAL, "ncells and ndocs must not be negative");
    if (isinf(t)) return cp_error_set(err, CP_EINVAL, "the centroid score threshold must be finite");
    size_t nvals = (size_t)n_q * (size_t)snap->codec.dim;
    for (size_t i = 0; i < nvals; i++)
        if (!isfinite(query[i]))
            return cp_error_set(err, CP_EINVAL,
                                "query vector %zu, component %zu is not a finite number",
                                i / (size_t)snap->codec.dim, i % (size_t)snap->codec.dim);
    return CP_OK;
}

static cp_status copy_trace(int32_t **dst, size_t *n_dst, const scored *src, size_t n,
                            cp_error *err)
{
    *dst = malloc((n ? n : 1) * sizeof(int32_t));
    if (!*dst) return cp_error_set(err, CP_ENOMEM, "out of memory for the search trace");
    for (size_t i = 0; i < n; i++) (*dst)[i] = src[i].doc;
    *n_dst = n;
    /* survivors of a selection are unordered: sort for comparison */
    qsort(*dst, n, sizeof(int32_t), cmp_i32);
    return CP_OK;
}

/* Stage 2's pruning: the centroids whose best score against any query row reaches thr. */
static void mark_kept_centroids(const cp_snapshot *snap, scratch *s, const cp_kernels *kn, int nq,
                                int nqp, float thr)
{
    int64_t K = snap->codec.n_centroids;
    kn->rowmax(s->S, K, nqp, nq, s->rowmax);
    for (int64_t c = 0; c < K; c++)
        s->keep[c] = s->rowmax[c] >= thr;
}

/* Stages 1-3 of PLAID; leaves the stage-4 inputs in s->cand[0..*n_out). */
static cp_status plaid_prefilter(const cp_snapshot *snap, scratch *s, const cp_kernels *kn,
                                 int nq, int nqp, const cp_search_params *params, size_t *n_out,
                                 cp_search_timing *tm, cp_search_trace *trace, cp_error *err)
{
    int ncells, ndocs, keep2, keep3;
    float thr;
    cp_snapshot_search_resolve(snap, params, &ncells, &thr, &ndocs);
    stage_sizes(params->k, ndocs, &keep2, &keep3);
    if (ncells > snap->codec.n_centroids) ncells = (int)snap->codec.n_centroids;
    size_t n = 0;
    double t0 = now_ms();
    cp_status st = params->subset ? candidates_from_subset(snap, s, params, &n, err)
                                  : candidates_from_ivf(snap, s, kn, nq, nqp, ncells, &n, err);
    if (st != CP_OK) return st;
    double t1 = now_ms();
    tm->candidates = t1 - t0;
    tm->n_candidates = (int64_t)n;
    if (trace && (st = copy_trace(&trace->stage1, &trace->n_stage1, s->cand, n, err)) != CP_OK)
        return st;
    if (n > (size_t)keep2) {
        mark_kept_centroids(snap, s, kn, nq, nqp, thr);
        n = interaction_stage(snap, s, kn, nqp, s->keep, n, (size_t)keep2);
    }
    double t2 = now_ms();
    tm->stage2 = t2 - t1;
    if (trace && (st = copy_trace(&trace->stage2, &trace->n_stage2, s->cand, n, err)) != CP_OK)
        return st;
    if (n > (size_t)keep3) n = interaction_stage(snap, s, kn, nqp, NULL, n, (size_t)keep3);
    tm->stage3 = now_ms() - t2;
    if (trace && (st = copy_trace(&trace->stage3, &trace->n_stage3, s->cand, n, err)) != CP_OK)
        return st;
    *n_out = n;
    return CP_OK;
}

/* Every live document (or every live subset document) as stage-4 input. */
static cp_status exact_candidates(const cp_snapshot *snap, scratch *s,
                                  const cp_search_params *params, size_t *n_out, cp_error *err)
{
    if (params->subset) return candidates_from_subset(snap, s, params, n_out, err);
    cp_status st = ensure_cand(s, (size_t)snap->n_slots + 1, err);
    if (st != CP_OK) return st;
    size_t n = 0;
    for (int64_t d = 0; d < snap->n_slots; d++)
        if (!snap->deleted[d]) s->cand[n++].doc = (int32_t)d;
    *n_out = n;
    return CP_OK;
}

/* ---------------------------------------------------------------------------------------
 * Extra documents scored in stage 4 (hybrid search: the lexical candidates)
 * ------------------------------------------------------------------------------------ */

/* Grow s->cand to hold n entries, keeping its contents (grow() does not copy). */
static cp_status grow_cand_keep(scratch *s, size_t n, cp_error *err)
{
    if (n <= s->cap_cand && s->cand) return CP_OK;
    size_t want = n + n / 4 + 16;
    scored *q = realloc(s->cand, want * sizeof *q);
    if (!q) return cp_error_set(err, CP_ENOMEM, "out of memory for %zu search candidates", n);
    s->cand = q;
    s->cap_cand = want;
    return CP_OK;
}

static int cmp_scored_doc(const void *pa, const void *pb)
{
    int32_t a = ((const scored *)pa)->doc, b = ((const scored *)pb)->doc;
    return (a > b) - (a < b);
}

/* After stages 1-3 (the n candidates in s->cand): every extra document with a live slot
 * that is not a candidate already is appended to s->cand, to be scored with them. where[i]
 * is where extra i's score will be: its position in s->cand (>= n), -1 (no live document
 * in this snapshot), or -2 - slot when it is one of the candidates. *n_all: candidates
 * plus appended. Uses the all-zero bitmap and leaves it so. */
static cp_status place_extra(const cp_snapshot *snap, scratch *s, size_t n, const int64_t *ids,
                             size_t n_ids, int64_t *where, size_t *n_all, cp_error *err)
{
    cp_status st = grow_cand_keep(s, n + n_ids + 1, err);
    if (st != CP_OK) return st;
    for (size_t i = 0; i < n; i++) {
        int32_t d = s->cand[i].doc;
        s->bitmap[d >> 6] |= 1ull << (d & 63);
    }
    size_t m = n;
    for (size_t i = 0; i < n_ids; i++) {
        int64_t slot = ids[i] < 0 ? -1 : cp_snapshot_slot_of(snap, ids[i]);
        if (slot < 0 || snap->deleted[slot]) {
            where[i] = -1;
        } else if (s->bitmap[slot >> 6] & (1ull << (slot & 63))) {
            where[i] = -2 - slot;
        } else {
            s->cand[m].doc = (int32_t)slot;
            s->cand[m].score = 0.0f;
            where[i] = (int64_t)m++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int32_t d = s->cand[i].doc;
        s->bitmap[d >> 6] &= ~(1ull << (d & 63));
    }
    *n_all = m;
    return CP_OK;
}

/* The extra documents' scores once stage 4 has scored s->cand[0..n_all). Reorders the n
 * candidates (by slot) when an extra is one of them: the top-k selection that follows does
 * not depend on their order. */
static void read_extra(scratch *s, size_t n, const int64_t *where, size_t n_ids, float *scores)
{
    bool among = false;
    for (size_t i = 0; i < n_ids; i++) {
        scores[i] = where[i] >= 0 ? s->cand[where[i]].score : NAN;
        among |= where[i] <= -2;
    }
    if (!among) return;
    qsort(s->cand, n, sizeof(scored), cmp_scored_doc);
    for (size_t i = 0; i < n_ids; i++) {
        if (where[i] > -2) continue;
        int64_t slot = -2 - where[i];
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->cand[mid].doc < slot)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && s->cand[lo].doc == slot) scores[i] = s->cand[lo].score;
    }
}

static cp_status search_impl(const cp_snapshot *snap, const float *query, int n_q,
                             const cp_search_params *params, cp_stage4_mode mode,
                             const cp_search_extra *extra, cp_hit *hits, int *n_hits,
                             cp_search_timing *timing, cp_search_trace *trace, cp_error *err)
{
    cp_search_timing tm = {0};
    if (trace) memset(trace, 0, sizeof *trace);
    cp_status st = validate(snap, query, n_q, params, hits, n_hits, err);
    if (st != CP_OK) return st;
    *n_hits = 0;
    int ncells;
    cp_snapshot_search_resolve(snap, params, &ncells, NULL, NULL);
    scratch *s = scratch_get();
    if (!s) return cp_error_set(err, CP_ENOMEM, "out of memory for search buffers");
    if ((st = scratch_prepare(s, snap, n_q, ncells, err)) != CP_OK) return st;
    const cp_kernels *kn = cp_kernels_get();
    int d = snap->codec.dim, nqp = cp_kernels_nqp(n_q);
    double t0 = now_ms();
    transpose_query(query, n_q, d, nqp, s->qt);
    cp_decode_lut_init(&s->lut, &snap->codec);
    size_t n = 0;
    bool exhaustive = params->exact || params->recall >= 1.0f || ncells == 0;
    if (exhaustive) {
        st = exact_candidates(snap, s, params, &n, err);
        tm.n_candidates = (int64_t)n;
    } else {
        kn->gemm(snap->codec.centroids, snap->codec.n_centroids, d, s->qt, nqp, s->S);
        tm.centroid_scores = now_ms() - t0;
        st = plaid_prefilter(snap, s, kn, n_q, nqp, params, &n, &tm, trace, err);
    }
    /* The extra documents join stage 4: same query, same centroid scores, same kernel. */
    const int64_t *ids = NULL;
    float *extra_out = NULL;
    size_t n_ids = 0, n_all = n;
    int64_t *where = NULL;
    if (st == CP_OK && extra) {
        st = extra->collect(extra->ctx, &ids, &extra_out, &n_ids, err);
        if (st == CP_OK && n_ids && (!ids || !extra_out))
            st = cp_error_set(err, CP_EINVAL, "search: extra documents without ids or scores");
        if (st == CP_OK && n_ids && !(where = malloc(n_ids * sizeof *where)))
            st = cp_error_set(err, CP_ENOMEM, "out of memory for %zu extra documents", n_ids);
        if (st == CP_OK && n_ids) st = place_extra(snap, s, n, ids, n_ids, where, &n_all, err);
    }
    if (st != CP_OK) {
        free(where);
        cp_search_trace_free(trace);
        return st;
    }
    double t4 = now_ms();
    if ((st = exact_stage(snap, s, kn, n_q, nqp, n_all, mode, !exhaustive, err)) != CP_OK) {
        free(where);
        cp_search_trace_free(trace);
        return st;
    }
    if (n_ids) read_extra(s, n, where, n_ids, extra_out);
    free(where);
    size_t k = (size_t)params->k < n ? (size_t)params->k : n;
    select_best(s->cand, n, k);
    qsort(s->cand, k, sizeof(scored), cmp_scored);
    for (size_t i = 0; i < k; i++) {
        hits[i].doc_id = cp_snapshot_file_id(snap, s->cand[i].doc); /* slot order = id order */
        hits[i].score = s->cand[i].score;
    }
    *n_hits = (int)k;
    double t5 = now_ms();
    tm.stage4 = t5 - t4;
    tm.total = t5 - t0;
    if (timing) *timing = tm;
    return CP_OK;
}

cp_status cp_snapshot_search_traced(const cp_snapshot *snap, const float *query, int n_q,
                                    const cp_search_params *params, cp_stage4_mode mode,
                                    cp_hit *hits, int *n_hits, cp_search_timing *timing,
                                    cp_search_trace *trace, cp_error *err)
{
    return search_impl(snap, query, n_q, params, mode, NULL, hits, n_hits, timing, trace, err);
}

cp_status cp_snapshot_search_extra(const cp_snapshot *snap, const float *query, int n_q,
                                   const cp_search_params *params, cp_stage4_mode mode,
                                   const cp_search_extra *extra, cp_hit *hits, int *n_hits,
                                   cp_search_timing *timing, cp_error *err)
{
    if (!extra || !extra->collect)
        return cp_error_set(err, CP_EINVAL, "search: extra documents without a collect function");
    return search_impl(snap, query, n_q, params, mode, extra, hits, n_hits, timing, NULL, err);
}

cp_status cp_snapshot_stage_candidates(const cp_snapshot *snap, const float *query, int n_q,
                                       int ncells, float threshold, cp_stage_candidate **out,
                                       size_t *n_out, cp_error *err)
{
    *out = NULL;
    *n_out = 0;
    int64_t K = snap->codec.n_centroids;
    if (n_q < 1 || ncells < 1) return cp_error_set(err, CP_EINVAL, "stage scores: no query or cells");
    if (ncells > K) ncells = (int)K;
    scratch *s = scratch_get();
    if (!s) return cp_error_set(err, CP_ENOMEM, "out of memory for search buffers");
    cp_status st = scratch_prepare(s, snap, n_q, ncells, err);
    if (st != CP_OK) return st;
    const cp_kernels *kn = cp_kernels_get();
    int d = snap->codec.dim, nqp = cp_kernels_nqp(n_q);
    transpose_query(query, n_q, d, nqp, s->qt);
    kn->gemm(snap->codec.centroids, K, d, s->qt, nqp, s->S);
    size_t n = 0;
    if ((st = candidates_from_ivf(snap, s, kn, n_q, nqp, ncells, &n, err)) != CP_OK) return st;
    cp_stage_candidate *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return cp_error_set(err, CP_ENOMEM, "out of memory for %zu stage scores", n);
    mark_kept_centroids(snap, s, kn, n_q, nqp, threshold);
    for (size_t i = 0; i < n; i++) {
        int32_t doc = s->cand[i].doc;
        int64_t off = snap->doc_offsets[doc], len = snap->doc_offsets[doc + 1] - off;
        c[i].doc = doc;
        c[i].pruned = kn->interact(s->S, nqp, snap->codes + off, (int)len, s->keep);
        c[i].full = kn->interact(s->S, nqp, snap->codes + off, (int)len, NULL);
    }
    *out = c;
    *n_out = n;
    return CP_OK;
}

cp_status cp_snapshot_search(const cp_snapshot *snap, const float *query, int n_q,
                             const cp_search_params *params, cp_hit *hits, int *n_hits,
                             cp_search_timing *timing, cp_error *err)
{
    return cp_snapshot_search_traced(snap, query, n_q, params, CP_STAGE4_AUTO, hits, n_hits,
                                     timing, NULL, err);
}

static cp_status check_dim(const cp_snapshot *snap, int dim, cp_error *err)
{
    if (dim != snap->codec.dim)
        return cp_error_set(err, CP_EDIM, "query vectors have %d dims, the index has %d", dim,
                            snap->codec.dim);
    return CP_OK;
}

cp_status cp_index_search(cp_index *index, const float *query, int n_q, int dim,
                          const cp_search_params *params, cp_hit *hits, int *n_hits,
                          cp_search_timing *timing, cp_error *err)
{
    if (!index) return cp_error_set(err, CP_EINVAL, "search: the index is NULL");
    cp_snapshot *snap = cp_index_acquire_snapshot(index);
    if (!snap) return cp_error_set(err, CP_EINVAL, "search: the index has no loaded data");
    cp_status st = check_dim(snap, dim, err);
    if (st == CP_OK) st = cp_snapshot_search(snap, query, n_q, params, hits, n_hits, timing, err);
    cp_snapshot_release(snap);
    return st;
}

/* ---------------------------------------------------------------------------------------
 * Batch search: a pool of threads pulling query numbers from a shared counter.
 * ------------------------------------------------------------------------------------ */

typedef struct batch_job {
    const cp_snapshot *snap;
    const float *const *queries;
    const int *n_q;
    size_t n_queries;
    const cp_search_params *params;
    cp_hit *hits;
    int *n_hits;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t lock;
    cp_error first_err;
} batch_job;

static void *batch_worker(void *arg)
{
    batch_job *job = arg;
    cp_error err = {0};
    for (;;) {
        size_t q = atomic_fetch_add(&job->next, 1);
        if (q >= job->n_queries || atomic_load(&job->failed)) break;
        cp_status st = cp_snapshot_search(job->snap, job->queries[q], job->n_q[q], job->params,
                                          job->hits + q * (size_t)job->params->k,
                                          &job->n_hits[q], NULL, &err);
        if (st != CP_OK) {
            pthread_mutex_lock(&job->lock);
            if (!atomic_load(&job->failed)) {
                job->first_err = err;
                cp_error_prefix(&job->first_err, "query %zu", q);
                atomic_store(&job->failed, 1);
            }
            pthread_mutex_unlock(&job->lock);
            break;
        }
    }
    return NULL;
}

static int run_batch(batch_job *job, int threads)
{
    pthread_t tids[256];
    int started = 0;
    if (threads > 256) threads = 256;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tids[started], NULL, batch_worker, job) != 0) break;
        started++;
    }
    batch_worker(job); /* the calling thread works too */
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    return started;
}

cp_status cp_index_search_batch(cp_index *index, const float *const *queries, const int *n_q,
                                size_t n_queries, int dim, const cp_search_params *params,
                                int threads, cp_hit *hits, int *n_hits, cp_error *err)
{
    if (!index || (!queries && n_queries) || (!n_q && n_queries) || !params)
        return cp_error_set(err, CP_EINVAL, "search batch: a required argument is NULL");
    if (params->k < 1) return cp_error_set(err, CP_EINVAL, "k must be at least 1 (got %d)", params->k);
    if (n_queries == 0) return CP_OK;
    cp_snapshot *snap = cp_index_acquire_snapshot(index);
    if (!snap) return cp_error_set(err, CP_EINVAL, "search: the index has no loaded data");
    cp_status st = check_dim(snap, dim, err);
    if (st != CP_OK) {
        cp_snapshot_release(snap);
        return st;
    }
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if ((size_t)threads > n_queries) threads = (int)n_queries;
    batch_job job = {.snap = snap, .queries = queries, .n_q = n_q, .n_queries = n_queries,
                     .params = params, .hits = hits, .n_hits = n_hits};
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    pthread_mutex_init(&job.lock, NULL);
    run_batch(&job, threads);
    pthread_mutex_destroy(&job.lock);
    cp_snapshot_release(snap);
    if (atomic_load(&job.failed)) {
        if (err) *err = job.first_err;
        return job.first_err.code;
    }
    return CP_OK;
}

/* ---------------------------------------------------------------------------------------
 * Exact MaxSim of float token vectors (rerank and explain in the server): the same
 * transposed, padded query and gemm kernel that exact search scores documents with.
 * ------------------------------------------------------------------------------------ */

enum { MAXSIM_ROWS = 64 }; /* document rows per gemm call: bounds the score block */

cp_status cp_maxsim_tokens(const float *query, int n_q, const float *doc, int n_d, int dim,
                           float *score, int32_t *best_row, float *best_sim, cp_error *err)
{
    if (!score || n_q < 0 || n_d < 0 || dim < 1 || (n_q && !query) || (n_d && !doc))
        return cp_error_set(err, CP_EINVAL,
                            "maxsim: invalid arguments (%d query rows, %d "
                            "document rows, dim %d)",
                            n_q, n_d, dim);
    *score = 0.0f;
    if (n_q == 0) return CP_OK;
    int nqp = cp_kernels_nqp(n_q), block = n_d < MAXSIM_ROWS ? n_d : MAXSIM_ROWS;
    float *qt = malloc(sizeof(float) * (size_t)dim * (size_t)nqp);
    float *S = malloc(sizeof(float) * (size_t)(block ? block : 1) * (size_t)nqp);
    float *best = malloc(sizeof(float) * (size_t)n_q);
    int32_t *arg = malloc(sizeof(int32_t) * (size_t)n_q);
    if (!qt || !S || !best || !arg) {
        free(qt);
        free(S);
        free(best);
        free(arg);
        return cp_error_set(err, CP_ENOMEM, "out of memory for MaxSim (%d x %d query)", n_q, dim);
    }
    const cp_kernels *kn = cp_kernels_get();
    transpose_query(query, n_q, dim, nqp, qt);
    for (int i = 0; i < n_q; i++) {
        best[i] = -INFINITY;
        arg[i] = -1;
    }
    for (int r0 = 0; r0 < n_d; r0 += MAXSIM_ROWS) {
        int n = n_d - r0 < MAXSIM_ROWS ? n_d - r0 : MAXSIM_ROWS;
        kn->gemm(doc + (size_t)r0 * (size_t)dim, n, dim, qt, nqp, S);
        /* Strictly greater: among equal similarities the lower document row wins. */
        for (int r = 0; r < n; r++)
            for (int i = 0; i < n_q; i++)
                if (S[(size_t)r * (size_t)nqp + (size_t)i] > best[i]) {
                    best[i] = S[(size_t)r * (size_t)nqp + (size_t)i];
                    arg[i] = r0 + r;
                }
    }
    float total = 0.0f;
    for (int i = 0; i < n_q; i++) {
        float sim = arg[i] < 0 ? 0.0f : best[i];
        total += sim;
        if (best_row) best_row[i] = arg[i];
        if (best_sim) best_sim[i] = sim;
    }
    *score = total;
    free(qt);
    free(S);
    free(best);
    free(arg);
    return CP_OK;
}

float cp_maxsim(const float *query, int n_q, const float *doc, int n_d, int dim)
{
    float score;
    return cp_maxsim_tokens(query, n_q, doc, n_d, dim, &score, NULL, NULL, NULL) == CP_OK ? score
                                                                                          : NAN;
}
