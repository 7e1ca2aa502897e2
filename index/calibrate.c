/*
 * Search calibration: the index measures its own recall-versus-cost curve and keeps, per k
 * and recall target, the cheapest PLAID settings that reach the target.
 *
 * Why: PLAID's fixed defaults (k <= 10: ncells 1, ndocs 256) lose most of the exhaustive
 * top-10 on collections where many documents share frequent tokens, and the loss grows
 * with the collection (issue 11). No fixed setting is right for every index, but each
 * index can measure what it needs.
 *
 * How:
 *   1. pseudo-queries: CALIB_QUERIES documents of the index, spread over the internal ids,
 *      each turned into a 32-row query: 8-16 of its tokens (decompressed) with noise of
 *      norm PSEUDO_NOISE, then padding rows close to the mean of those rows (as ColBERT's
 *      [MASK] rows sit near the query's meaning);
 *   2. ground truth: exhaustive search over the index (the source document excluded,
 *      since a real query is not one of the documents);
 *   3. for k = 10 and 100, every ncells in {1, 2, 4, 8} is tried with a doubling ladder of
 *      ndocs until the recall reaches the highest target (or the ladder ends). Stages 1-3
 *      are scored once per ncells and each rung's stage-3 survivors read off those scores;
 *      stage 4 ranks by the exhaustive score, so recall is the share of the exhaustive
 *      top-k among the survivors and no rung runs a search (measure()). The cost of
 *      a setting is a deterministic count of the work it does (tokens scored by centroid
 *      interaction in stages 2 and 3, plus decompressed tokens in stage 4, weighted by
 *      their measured relative cost), so calibration gives the same answer on a busy and a
 *      quiet machine;
 *   4. per target, the cheapest setting whose recall reaches it (else the best recall
 *      seen) is stored in meta "search_calibration" as text, one entry per (k, target).
 *
 * The threshold follows ncells as PLAID's own defaults pair them (1: 0.5, 2: 0.45, more:
 * 0.4): with more cells probed, candidates arrive through lower-scoring centroids, which
 * a higher threshold would prune straight away.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calibrate.h"
#include "codec.h"
#include "index_handle.h"
#include "search.h"
#include "snapshot.h"
#include "storage.h"

enum { CALIB_QUERIES = 32, QUERY_ROWS = 32, N_NCELLS = 4, N_LADDER = 8 };

static const int ncells_ladder[N_NCELLS] = {1, 2, 4, 8};
/* Noise (vector norm) added to the document tokens a pseudo-query is made of: a query
 * paraphrases, it does not quote. */
static const double PSEUDO_NOISE = 1.3, PAD_NOISE = 0.2;
/* Stage-4 cost of a token relative to one centroid-interaction token (decode + dim x nq
 * multiply-adds vs nq table lookups): measured ratio of per-token times in bench_search. */
static const double STAGE4_TOKEN_COST = 8.0;

static float threshold_for(int ncells)
{
    return ncells <= 1 ? 0.5f : ncells <= 2 ? 0.45f : 0.4f;
}

static int ndocs_rung(int k, int rung)
{
    return (k <= 10 ? 64 : 400) << rung;
}

/* ------------------------------------------------------------------------------------
 * Measurement
 * --------------------------------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rng_gauss(rng *r)
{
    double s = 0;
    for (int i = 0; i < 4; i++)
        s += (double)(rng_next(r) >> 11) / 9007199254740992.0;
    return (float)((s - 2.0) * 1.7320508075688772);
}

static void normalise(float *v, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++)
        s += (double)v[j] * v[j];
    float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int j = 0; j < d; j++)
        v[j] *= inv;
}

static void add_noise(rng *r, float *v, int d, double norm)
{
    float sigma = (float)(norm / sqrt((double)d));
    for (int j = 0; j < d; j++)
        v[j] += sigma * rng_gauss(r);
    normalise(v, d);
}

/* Pseudo-query from document doc into q (QUERY_ROWS x dim); returns its rows: 8-16 of
 * the document's tokens with noise, then padding rows close to one direction shared by
 * every pseudo-query (pad), as ColBERT's [MASK] rows are close to each other. The padding
 * weighs in exhaustive MaxSim through fine detail of each document's tokens that
 * centroids do not keep, which is what makes real queries hard for PLAID's stages 2-3. */
static int pseudo_query(const cp_snapshot *snap, int32_t doc, const float *pad, rng *r, float *q)
{
    int d = snap->codec.dim, rb = cp_codec_token_bytes(&snap->codec); /* stride */
    int64_t off = snap->doc_offsets[doc], len = snap->doc_offsets[doc + 1] - off;
    int words = 8 + (int)(rng_next(r) % 9);
    if (words > len) words = (int)len;
    for (int w = 0; w < words; w++) {
        int64_t t = off + (int64_t)(rng_next(r) % (uint64_t)len);
        float *row = q + (size_t)w * (size_t)d;
        cp_codec_decompress_one(&snap->codec, snap->codes[t], snap->residuals + t * rb, row);
        add_noise(r, row, d, PSEUDO_NOISE);
    }
    for (int w = words; w < QUERY_ROWS; w++) {
        float *row = q + (size_t)w * (size_t)d;
        memcpy(row, pad, sizeof(float) * (size_t)d);
        add_noise(r, row, d, PAD_NOISE);
    }
    return QUERY_ROWS;
}

typedef struct calib_run {
    const cp_snapshot *snap;
    int n_queries;
    int32_t *source; /* n_queries */
    int *rows;       /* n_queries */
    float *queries;  /* n_queries x QUERY_ROWS x dim */
    int64_t *truth;  /* n_queries x 101 slots, source excluded, -1 padded */
    double avg_len;
    /* at the ncells being measured: each query's stage-1 candidates with their stage 2-3
     * scores, in stage-2 order (best first) */
    cp_stage_candidate *cand[CALIB_QUERIES];
    size_t n_cand[CALIB_QUERIES];
    cp_stage_candidate *tmp; /* scratch: the largest candidate list */
    uint64_t *mark;          /* scratch: a bit per document slot, all zero between uses */
} calib_run;

/* (score desc, doc asc): the order every PLAID stage keeps its best by. */
static int by_pruned(const void *pa, const void *pb)
{
    const cp_stage_candidate *a = pa, *b = pb;
    if (a->pruned != b->pruned) return a->pruned > b->pruned ? -1 : 1;
    return (a->doc > b->doc) - (a->doc < b->doc);
}

static int by_full(const void *pa, const void *pb)
{
    const cp_stage_candidate *a = pa, *b = pb;
    if (a->full != b->full) return a->full > b->full ? -1 : 1;
    return (a->doc > b->doc) - (a->doc < b->doc);
}

static void free_candidates(calib_run *cr)
{
    for (int qi = 0; qi < cr->n_queries; qi++) {
        free(cr->cand[qi]);
        cr->cand[qi] = NULL;
    }
    free(cr->tmp);
    cr->tmp = NULL;
}

/* Stages 1-3 of every pseudo-query at ncells, scored once for the whole ndocs ladder. */
static cp_status score_candidates(calib_run *cr, int ncells, double *max_cands, cp_error *err)
{
    size_t most = 0;
    *max_cands = 0;
    free_candidates(cr);
    int d = cr->snap->codec.dim;
    for (int qi = 0; qi < cr->n_queries; qi++) {
        cp_status st = cp_snapshot_stage_candidates(
            cr->snap, cr->queries + (size_t)qi * QUERY_ROWS * (size_t)d, cr->rows[qi], ncells,
            threshold_for(ncells), &cr->cand[qi], &cr->n_cand[qi], err);
        if (st != CP_OK) return st;
        qsort(cr->cand[qi], cr->n_cand[qi], sizeof(cp_stage_candidate), by_pruned);
        if (cr->n_cand[qi] > most) most = cr->n_cand[qi];
    }
    *max_cands = (double)most;
    cr->tmp = malloc((most ? most : 1) * sizeof(cp_stage_candidate));
    return cr->tmp ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory calibrating");
}

/* Recall of one ndocs over the pseudo-queries, and its cost (work units per query).
 * A search asks for k + 1 hits (the source document may be one) and stage 4 ranks the
 * stage-3 survivors by the exhaustive score itself, so a document of the exhaustive top-k
 * is in the answer exactly when it survives stage 3: no stage 4 to run. */
static void measure(calib_run *cr, int k, int ndocs, double *recall, double *cost)
{
    int keep2 = ndocs > k + 1 ? ndocs : k + 1, keep3 = ndocs / 4 > k + 1 ? ndocs / 4 : k + 1;
    double found = 0, wanted = 0, work = 0;
    for (int qi = 0; qi < cr->n_queries; qi++) {
        size_t n1 = cr->n_cand[qi], n2 = n1 > (size_t)keep2 ? (size_t)keep2 : n1;
        size_t n3 = n2 > (size_t)keep3 ? (size_t)keep3 : n2;
        memcpy(cr->tmp, cr->cand[qi], n2 * sizeof(cp_stage_candidate));
        if (n2 > n3) qsort(cr->tmp, n2, sizeof(cp_stage_candidate), by_full);
        for (size_t i = 0; i < n3; i++)
            cr->mark[cr->tmp[i].doc >> 6] |= 1ull << (cr->tmp[i].doc & 63);
        const int64_t *truth = cr->truth + (size_t)qi * 101;
        for (int i = 0; i < k && truth[i] >= 0; i++) {
            found += (cr->mark[truth[i] >> 6] >> (truth[i] & 63)) & 1;
            wanted++;
        }
        for (size_t i = 0; i < n3; i++)
            cr->mark[cr->tmp[i].doc >> 6] = 0;
        work += (double)(n1 > n2 ? n1 : 0) + (double)(n2 > n3 ? n2 : 0) +
                STAGE4_TOKEN_COST * (double)n3;
    }
    *recall = wanted > 0 ? found / wanted : 1.0;
    *cost = work * cr->avg_len / cr->n_queries;
}

typedef struct point {
    int ncells, ndocs;
    double recall, cost;
} point;

/* Every setting worth trying, per calibrated k into pts[ki] (N_NCELLS x N_LADDER at most). */
static cp_status curves(calib_run *cr, point pts[CP_CALIB_KS][N_NCELLS * N_LADDER],
                        int n_pts[CP_CALIB_KS], cp_error *err)
{
    double top = cp_calib_targets[CP_CALIB_TARGETS - 1];
    for (int ki = 0; ki < CP_CALIB_KS; ki++)
        n_pts[ki] = 0;
    for (int c = 0; c < N_NCELLS; c++) {
        if (ncells_ladder[c] > cr->snap->codec.n_centroids) break;
        double max_cands = 0;
        cp_status st = score_candidates(cr, ncells_ladder[c], &max_cands, err);
        if (st != CP_OK) return st;
        for (int ki = 0; ki < CP_CALIB_KS; ki++)
            for (int rung = 0; rung < N_LADDER; rung++) {
                int k = cp_calib_ks[ki], ndocs = ndocs_rung(k, rung);
                point pt = {ncells_ladder[c], ndocs, 0, 0};
                measure(cr, k, ndocs, &pt.recall, &pt.cost);
                pts[ki][n_pts[ki]++] = pt;
                /* more ndocs cannot help once the target is met or every candidate of
                 * every query already reaches stage 4 */
                if (pt.recall >= top || ndocs / 4 >= max_cands) break;
            }
    }
    return CP_OK;
}

/* Per target, the cheapest setting that reaches it (else the best recall seen, cheapest
 * among equals), unless exhaustive search costs less: then ncells = ndocs = 0, which
 * searches read as "exhaustive" (small collections, where stages 1-3 would pass nearly
 * every document to stage 4 anyway). A PLAID search also scores the query against every
 * centroid, counted like K stage-4 tokens. */
static void choose(const point *pts, int n_pts, double exhaustive_cost, double centroid_cost,
                   cp_search_setting *out)
{
    for (int ti = 0; ti < CP_CALIB_TARGETS; ti++) {
        const point *best = NULL;
        for (int i = 0; i < n_pts; i++)
            if (pts[i].recall + 1e-9 >= cp_calib_targets[ti] && (!best || pts[i].cost < best->cost))
                best = &pts[i];
        if (!best)
            for (int i = 0; i < n_pts; i++)
                if (!best || pts[i].recall > best->recall ||
                    (pts[i].recall == best->recall && pts[i].cost < best->cost))
                    best = &pts[i];
        if (best->cost + centroid_cost >= exhaustive_cost)
            out[ti] = (cp_search_setting){0, 0.0f, 0, 1.0f};
        else
            out[ti] = (cp_search_setting){best->ncells, threshold_for(best->ncells), best->ndocs,
                                          (float)best->recall};
    }
}

static cp_status ground_truth(cp_index *index, calib_run *cr, cp_error *err)
{
    int d = cr->snap->codec.dim;
    const float **qs = malloc(sizeof(float *) * (size_t)cr->n_queries);
    int *nq = malloc(sizeof(int) * (size_t)cr->n_queries),
        *n_hits = malloc(sizeof(int) * (size_t)cr->n_queries);
    cp_hit *hits = malloc(sizeof(cp_hit) * (size_t)cr->n_queries * 101);
    cp_status st = CP_OK;
    if (!qs || !nq || !n_hits || !hits)
        st = cp_error_set(err, CP_ENOMEM, "out of memory calibrating");
    for (int i = 0; st == CP_OK && i < cr->n_queries; i++) {
        qs[i] = cr->queries + (size_t)i * QUERY_ROWS * (size_t)d;
        nq[i] = cr->rows[i];
    }
    cp_search_params p;
    cp_search_params_init(&p, 101);
    p.exact = true;
    if (st == CP_OK)
        st = cp_index_search_batch(index, qs, nq, (size_t)cr->n_queries, d, &p, 0, hits, n_hits,
                                   err);
    for (int i = 0; st == CP_OK && i < cr->n_queries; i++) {
        int64_t *truth = cr->truth + (size_t)i * 101;
        int m = 0;
        for (int h = 0; h < n_hits[i]; h++)
            if (hits[(size_t)i * 101 + h].doc_id != cr->source[i]) {
                /* as slots: the stage candidates measure() marks are slots */
                int64_t slot = cp_snapshot_slot_of(cr->snap, hits[(size_t)i * 101 + h].doc_id);
                if (slot >= 0) truth[m++] = slot;
            }
        for (; m < 101; m++)
            truth[m] = -1;
    }
    free(qs), free(nq), free(n_hits), free(hits);
    return st;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

cp_status cp_index_calibrate(cp_index *index, FILE *progress, cp_error *err)
{
    if (!index) return cp_error_set(err, CP_EINVAL, "calibrate: the index is NULL");
    cp_store *store = cp_index_writer_store(index);
    if (!store) return cp_error_set(err, CP_EREADONLY, "calibrate: open the index for writing");
    cp_snapshot *snap = cp_index_acquire_snapshot(index);
    if (!snap) return cp_error_set(err, CP_EINVAL, "calibrate: the index has no loaded data");
    double t0 = now_s();
    calib_run cr = {.snap = snap};
    int d = snap->codec.dim;
    cr.n_queries = snap->n_live < CALIB_QUERIES ? (int)snap->n_live : CALIB_QUERIES;
    cr.avg_len = snap->n_live ? (double)snap->n_tokens / (double)snap->n_live : 0;
    cp_status st = CP_OK;
    if (cr.n_queries < 2) { /* nothing to measure: searches keep PLAID's defaults */
        cp_snapshot_release(snap);
        return CP_OK;
    }
    cr.source = malloc(sizeof(int32_t) * (size_t)cr.n_queries);
    cr.rows = malloc(sizeof(int) * (size_t)cr.n_queries);
    cr.queries = malloc(sizeof(float) * (size_t)cr.n_queries * QUERY_ROWS * (size_t)d);
    cr.truth = malloc(sizeof(int64_t) * (size_t)cr.n_queries * 101);
    if (!cr.source || !cr.rows || !cr.queries || !cr.truth)
        st = cp_error_set(err, CP_ENOMEM, "out of memory calibrating");
    /* sources spread evenly over the live documents, deterministic per index */
    rng r = {(uint64_t)snap->n_live * 0x9E3779B97F4A7C15ull + 12345};
    float *pad = malloc(sizeof(float) * (size_t)d);
    if (!pad)
        st = cp_error_set(err, CP_ENOMEM, "out of memory calibrating");
    else {
        for (int j = 0; j < d; j++)
            pad[j] = 0.0f;
        add_noise(&r, pad, d, 1.0);
    }
    int64_t live_seen = 0, next_pick = 0;
    int picked = 0;
    for (int64_t doc = 0; st == CP_OK && doc < snap->n_slots && picked < cr.n_queries; doc++) {
        if (snap->deleted[doc] || snap->doc_offsets[doc + 1] == snap->doc_offsets[doc]) continue;
        if (live_seen++ < next_pick) continue;
        cr.source[picked] = (int32_t)cp_snapshot_file_id(snap, doc); /* as hits name it */
        cr.rows[picked] = pseudo_query(snap, (int32_t)doc, pad, &r,
                                       cr.queries + (size_t)picked * QUERY_ROWS * (size_t)d);
        picked++;
        next_pick = picked * snap->n_live / cr.n_queries;
    }
    cr.n_queries = picked;
    free(pad);
    cp_calibration cal = {.n_queries = picked};
    if (st == CP_OK && picked < 2) {
        free(cr.source), free(cr.rows), free(cr.queries), free(cr.truth);
        cp_snapshot_release(snap);
        return CP_OK;
    }
    if (st == CP_OK) st = ground_truth(index, &cr, err);
    double t1 = now_s();
    point pts[CP_CALIB_KS][N_NCELLS * N_LADDER];
    int n_pts[CP_CALIB_KS];
    cr.mark = calloc(((size_t)snap->n_slots + 63) / 64, sizeof(uint64_t));
    if (st == CP_OK && !cr.mark) st = cp_error_set(err, CP_ENOMEM, "out of memory calibrating");
    if (st == CP_OK) st = curves(&cr, pts, n_pts, err);
    double exhaustive_cost = STAGE4_TOKEN_COST * (double)snap->n_live * cr.avg_len,
           centroid_cost = STAGE4_TOKEN_COST * (double)snap->codec.n_centroids;
    for (int ki = 0; st == CP_OK && ki < CP_CALIB_KS; ki++)
        choose(pts[ki], n_pts[ki], exhaustive_cost, centroid_cost, cal.setting[ki]);
    free_candidates(&cr);
    free(cr.mark);
    char *text = NULL;
    if (st == CP_OK) {
        cal.valid = true;
        text = cp_calibration_format(&cal);
        if (!text) st = cp_error_set(err, CP_ENOMEM, "out of memory calibrating");
    }
    if (st == CP_OK) st = cp_store_set_meta(store, "search_calibration", text, err);
    if (st == CP_OK && progress) {
        fprintf(progress, "calibrate: %d pseudo-queries, exhaustive %.1f s, settings %.1f s\n",
                picked, t1 - t0, now_s() - t1);
        for (int ki = 0; ki < CP_CALIB_KS; ki++) {
            const cp_search_setting *s = &cal.setting[ki][2];
            if (s->ncells == 0) {
                fprintf(progress, "calibrate: k=%d recall %.2f: exhaustive search (cheaper)\n",
                        cp_calib_ks[ki], (double)cp_calib_targets[2]);
                continue;
            }
            fprintf(progress,
                    "calibrate: k=%d recall %.2f: ncells %d, threshold %.2f, ndocs %d (measured "
                    "%.3f)\n",
                    cp_calib_ks[ki], (double)cp_calib_targets[2], s->ncells, (double)s->threshold,
                    s->ndocs, (double)s->recall);
        }
    }
    free(text);
    free(cr.source), free(cr.rows), free(cr.queries), free(cr.truth);
    cp_snapshot_release(snap);
    if (st != CP_OK) return st;
    /* searches in this process switch to the calibrated settings */
    cp_snapshot *fresh = NULL;
    st = cp_store_load_snapshot(store, &fresh, err);
    if (st == CP_OK) st = cp_index_publish_snapshot(index, fresh, err);
    if (st != CP_OK) cp_snapshot_release(fresh);
    return st;
}

cp_status cp_calibrate_file(const char *path, FILE *progress, cp_error *err)
{
    cp_index *index = NULL;
    cp_status st = cp_index_open(path, CP_OPEN_WRITE, &index, err);
    if (st == CP_OK) st = cp_index_calibrate(index, progress, err);
    if (st != CP_OK) cp_error_prefix(err, "calibrating %s", path);
    cp_index_close(index);
    return st;
}
