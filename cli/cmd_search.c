/*
 * `colplaid search` and `colplaid eval` (CLI.md).
 *
 * Both load queries (text encoded with --model, or precomputed [n, 32, dim] embeddings),
 * open the index read-only and search every query on a small pool of threads, each query
 * timed on its own (the eval latency numbers are per-query search wall times, encoding
 * excluded). search prints the ranked hits; eval scores them against BEIR qrels.
 *
 * Exit status: 0 success, 1 runtime failure (unreadable file, dimension mismatch, ...),
 * 2 bad usage or a --model that is not the index's (model fingerprints).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_common.h"
#include "colplaid/corpus.h"
#include "colplaid/eval.h"
#include "colplaid/npy.h"
#include "commands.h"
#include "cp_cpu.h"

typedef enum out_format { FMT_TSV, FMT_JSON, FMT_TREC, FMT_TEXT } out_format;

typedef enum search_mode { MODE_LATE, MODE_LEXICAL, MODE_HYBRID } search_mode;

static const char *const mode_names[] = {"late", "lexical", "hybrid"};

typedef struct options {
    const char *index, *query, *queries, *query_emb, *model, *qrels;
    int k, ncells, ndocs, threads;
    double threshold, recall;
    bool have_threshold, exact, help;
    bool allow_mismatch; /* --allow-model-mismatch */
    out_format format;
    const char *doc_score; /* --doc-score; NULL: the index's (windowed indexes) */
    search_mode mode; /* --mode (docs/hybrid.md) */
    cp_fusion fusion; /* --fusion, --alpha, --normalize, --depth */
} options;

typedef struct query_set {
    size_t n, cap;
    char **ids;
    char **texts; /* the query texts (lexical and hybrid modes), else NULL entries */
    float **emb; /* n_q[i] x dim */
    int *n_q;
    int dim;
} query_set;

static const char search_usage[] =
    "usage: colplaid search --index IDX.db\n"
    "         (--query TEXT | --queries queries.jsonl | --query-embeddings Q.npy)\n"
    "         [--model MODEL] [--k 10] [--exact] [--recall R] [--ncells N] [--threshold T] "
    "[--ndocs N]\n"
    "         [--threads N] [--mode late|lexical|hybrid] [--fusion linear|rrf] [--alpha A]\n"
    "         [--normalize zscore|minmax] [--depth N] [--format tsv|json|trec]\n"
    "         [--doc-score maxsim|maxp] [--allow-model-mismatch]\n"
    "\n"
    "Search an index with PLAID (or exhaustively with --exact), lexically, or both.\n"
    "\n"
    "  --query TEXT             one text query (qid 0); needs --model\n"
    "  --queries FILE           .jsonl of {\"_id\"|\"id\", \"text\"} (or .tsv id<TAB>text); needs "
    "--model\n"
    "  --query-embeddings Q.npy float32/float16 [n, n_q, dim] token embeddings (qid = row from 0)\n"
    "  --model MODEL            model directory that encodes text queries: the index's model\n"
    "                           (its fingerprint is checked; a mismatch exits 2)\n"
    "  --allow-model-mismatch   encode with --model although the index records another\n"
    "                           model (a warning instead of exit 2)\n"
    "  --k N                    hits per query (default 10)\n"
    "  --exact                  score every document exactly (slow; ground truth)\n"
    "  --recall R               target share of the exhaustive top-k, in (0, 1] (default\n"
    "                           0.97): the index's calibrated settings for it; 1 = --exact\n"
    "  --ncells N               centroids probed per query token (default by k: 1, 2 or 4)\n"
    "  --threshold T            stage-2 centroid score threshold (default by k: 0.5/0.45/0.4)\n"
    "  --ndocs N                stage-2 survivors; stage 3 keeps N/4 (default by k: "
    "256/1024/4096)\n"
    "  --threads N              parallel searches (default: all cores)\n"
    "  --mode M                 late (default): late interaction (PLAID, or --exact);\n"
    "                           lexical: BM25 over the index's FTS5 index of the texts;\n"
    "                           hybrid: both, fused (docs/hybrid.md). lexical and hybrid\n"
    "                           need text queries and an index with a lexical side\n"
    "  --fusion F               hybrid: linear (normalised scores, alpha) or rrf (reciprocal\n"
    "                           rank fusion, k = 60); default linear z-score at the\n"
    "                           index's alpha (0.9 for the static model, else 0.5)\n"
    "  --alpha A                linear fusion: weight of the lexical side, in [0, 1]\n"
    "  --normalize N            linear fusion: zscore (default) or minmax\n"
    "  --depth N                hybrid: lexical candidates fused (default 100)\n"
    "  --format F               tsv: qid<TAB>docid<TAB>rank<TAB>score (default)\n"
    "                           trec: qid Q0 docid rank score colplaid\n"
    "                           json: one object per query per line:\n"
    "                           {\"qid\", \"hits\": [{\"id\", \"rank\", \"score\"}]}\n"
    "                           (windowed indexes: each hit also has \"passage\":\n"
    "                           {\"start\", \"end\"}, its best window's characters)\n"
    "  --doc-score D            windowed indexes: maxsim (all of a document's tokens) or\n"
    "                           maxp (its best window); default: the index's\n";

static const char eval_usage[] =
    "usage: colplaid eval --index IDX.db --queries queries.jsonl --qrels qrels.tsv\n"
    "         [--model MODEL] [--k 100] [--exact] [--recall R] [--ncells N] [--threshold T] "
    "[--ndocs N]\n"
    "         [--threads N] [--mode late|lexical|hybrid] [--fusion linear|rrf] [--alpha A]\n"
    "         [--normalize zscore|minmax] [--depth N] [--format text|json]\n"
    "         [--doc-score maxsim|maxp] [--allow-model-mismatch]\n"
    "\n"
    "Measure retrieval quality against BEIR qrels (only queries with a positive judgement\n"
    "are evaluated): nDCG@10, Recall@10, Recall@100, MRR@10, and per-query search latency\n"
    "(mean, p50, p99 in ms; encoding excluded). --queries may also be a .npy of query\n"
    "embeddings [n, n_q, dim] with --query-ids FILE naming its rows (one id per line).\n"
    "json keys: \"ndcg@10\" \"recall@10\" \"recall@100\" \"mrr@10\" \"latency_ms\": {\"mean\",\n"
    "\"p50\", \"p99\"}, plus \"queries\", \"k\", \"exact\", \"mode\".\n"
    "--recall R: target share of the exhaustive top-k in (0, 1], default 0.97 (see search).\n"
    "--mode, --fusion, --alpha, --normalize, --depth: as in `colplaid search --help`.\n"
    "--doc-score D: windowed indexes: maxsim or maxp (see search).\n"
    "--model MODEL: the index's model (its fingerprint is checked: a mismatch exits 2);\n"
    "--allow-model-mismatch: use it anyway, with a warning.\n";

/* ---------------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------------ */

static int parse_options(const char *cmd, int argc, char **argv, bool eval, options *o,
                         const char **query_ids)
{
    memset(o, 0, sizeof *o);
    cp_fusion_init(&o->fusion);
    o->k = eval ? 100 : 10;
    o->format = eval ? FMT_TEXT : FMT_TSV;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = true;
            return CP_EXIT_OK;
        }
        if (!strcmp(a, "--exact")) {
            o->exact = true;
            continue;
        }
        if (!strcmp(a, "--allow-model-mismatch")) {
            o->allow_mismatch = true;
            continue;
        }
        if (i + 1 >= argc) return cp_cli_usage_error(cmd, "unknown option or missing value: %s", a);
        const char *v = argv[++i];
        int64_t n;
        if (!strcmp(a, "--index")) o->index = v;
        else if (!strcmp(a, "--query") && !eval) o->query = v;
        else if (!strcmp(a, "--queries")) o->queries = v;
        else if (!strcmp(a, "--query-embeddings") && !eval) o->query_emb = v;
        else if (!strcmp(a, "--query-ids") && eval) *query_ids = v;
        else if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--doc-score")) {
            cp_doc_score unused;
            if (!cp_doc_score_parse(v, &unused))
                return cp_cli_usage_error(cmd, "--doc-score wants maxsim or maxp, got '%s'", v);
            o->doc_score = v;
        } else if (!strcmp(a, "--qrels") && eval)
            o->qrels = v;
        else if (!strcmp(a, "--k") || !strcmp(a, "--ncells") || !strcmp(a, "--ndocs") ||
                 !strcmp(a, "--threads")) {
            int64_t lo = strcmp(a, "--threads") ? 1 : 0;
            if (!cp_cli_parse_int(v, lo, 1 << 24, &n))
                return cp_cli_usage_error(cmd, "%s wants a whole number >= %lld, got '%s'", a,
                                          (long long)lo, v);
            if (!strcmp(a, "--k")) o->k = (int)n;
            else if (!strcmp(a, "--ncells")) o->ncells = (int)n;
            else if (!strcmp(a, "--ndocs")) o->ndocs = (int)n;
            else o->threads = (int)n;
        } else if (!strcmp(a, "--recall")) {
            if (!cp_cli_parse_float(v, &o->recall) || !(o->recall > 0 && o->recall <= 1))
                return cp_cli_usage_error(cmd,
                                          "--recall wants a share in (0, 1], e.g. 0.97 or 0.99 "
                                          "(1 = exhaustive), got '%s'",
                                          v);
        } else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "late"))
                o->mode = MODE_LATE;
            else if (!strcmp(v, "lexical"))
                o->mode = MODE_LEXICAL;
            else if (!strcmp(v, "hybrid"))
                o->mode = MODE_HYBRID;
            else
                return cp_cli_usage_error(cmd, "--mode wants late, lexical or hybrid, got '%s'", v);
        } else if (!strcmp(a, "--fusion")) {
            if (!strcmp(v, "rrf"))
                o->fusion.method = CP_FUSION_RRF;
            else if (!strcmp(v, "linear"))
                o->fusion.method = CP_FUSION_LINEAR;
            else
                return cp_cli_usage_error(cmd, "--fusion wants linear or rrf, got '%s'", v);
        } else if (!strcmp(a, "--normalize")) {
            if (!strcmp(v, "zscore"))
                o->fusion.norm = CP_NORM_ZSCORE;
            else if (!strcmp(v, "minmax"))
                o->fusion.norm = CP_NORM_MINMAX;
            else
                return cp_cli_usage_error(cmd, "--normalize wants zscore or minmax, got '%s'", v);
        } else if (!strcmp(a, "--alpha")) {
            double x;
            if (!cp_cli_parse_float(v, &x) || !(x >= 0 && x <= 1))
                return cp_cli_usage_error(cmd, "--alpha wants a weight in [0, 1], got '%s'", v);
            o->fusion.alpha = (float)x;
        } else if (!strcmp(a, "--depth")) {
            if (!cp_cli_parse_int(v, 1, 100000, &n))
                return cp_cli_usage_error(
                    cmd, "--depth wants a whole number in [1, 100000], got '%s'", v);
            o->fusion.depth = (int)n;
        } else if (!strcmp(a, "--threshold")) {
            if (!cp_cli_parse_float(v, &o->threshold))
                return cp_cli_usage_error(cmd, "--threshold wants a number, got '%s'", v);
            o->have_threshold = true;
        } else if (!strcmp(a, "--format")) {
            if (!strcmp(v, "tsv") && !eval) o->format = FMT_TSV;
            else if (!strcmp(v, "trec") && !eval) o->format = FMT_TREC;
            else if (!strcmp(v, "text") && eval) o->format = FMT_TEXT;
            else if (!strcmp(v, "json")) o->format = FMT_JSON;
            else return cp_cli_usage_error(cmd, "unknown --format '%s'", v);
        } else {
            return cp_cli_usage_error(cmd, "unknown option %s", a);
        }
    }
    if (!o->index) return cp_cli_usage_error(cmd, "--index IDX.db is required");
    int sources = (o->query != NULL) + (o->queries != NULL) + (o->query_emb != NULL);
    if (sources != 1)
        return cp_cli_usage_error(cmd, eval ? "--queries FILE is required"
                                            : "give exactly one of --query, --queries, "
                                              "--query-embeddings");
    if (eval && !o->qrels) return cp_cli_usage_error(cmd, "--qrels qrels.tsv is required");
    if (o->mode != MODE_HYBRID && (o->fusion.method || !isnan(o->fusion.alpha)))
        return cp_cli_usage_error(cmd, "--fusion and --alpha apply to --mode hybrid only");
    if (o->fusion.method == CP_FUSION_RRF && !isnan(o->fusion.alpha))
        return cp_cli_usage_error(cmd, "--alpha applies to --fusion linear, not rrf");
    if (!isnan(o->fusion.alpha) && !o->fusion.method) o->fusion.method = CP_FUSION_LINEAR;
    if (o->mode == MODE_LEXICAL && o->exact)
        return cp_cli_usage_error(cmd, "--exact applies to the late side (--mode late or hybrid)");
    if (o->threads == 0) o->threads = cp_cpu_count();
    return CP_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------------------ */

static void query_set_free(query_set *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->ids[i]);
        free(q->emb[i]);
        free(q->texts[i]);
    }
    free(q->ids);
    free(q->texts);
    free(q->emb);
    free(q->n_q);
    memset(q, 0, sizeof *q);
}

static cp_status query_set_push(query_set *q, const char *id, const char *text, float *emb, int n_q,
                                cp_error *err)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        char **ids = realloc(q->ids, cap * sizeof *ids);
        if (ids) q->ids = ids;
        char **texts = realloc(q->texts, cap * sizeof *texts);
        if (texts) q->texts = texts;
        float **e = realloc(q->emb, cap * sizeof *e);
        if (e) q->emb = e;
        int *nq = realloc(q->n_q, cap * sizeof *nq);
        if (nq) q->n_q = nq;
        if (!ids || !texts || !e || !nq)
            return cp_error_set(err, CP_ENOMEM, "out of memory for queries");
        q->cap = cap;
    }
    q->ids[q->n] = strdup(id);
    q->texts[q->n] = text ? strdup(text) : NULL;
    if (!q->ids[q->n] || (text && !q->texts[q->n])) {
        free(q->ids[q->n]);
        free(q->texts[q->n]);
        return cp_error_set(err, CP_ENOMEM, "out of memory for queries");
    }
    q->emb[q->n] = emb;
    q->n_q[q->n++] = n_q;
    return CP_OK;
}

/* Rows of a [n, n_q, dim] (or [n_q, dim] for one query) float .npy; ids from ids_path or
 * the row numbers. */
static cp_status load_query_npy(const char *path, const char *ids_path, query_set *q,
                                cp_error *err)
{
    cp_npy npy;
    cp_status st = cp_npy_open(path, &npy, err);
    if (st != CP_OK) return st;
    if ((npy.ndim != 3 && npy.ndim != 2) || (npy.dtype != CP_NPY_F32 && npy.dtype != CP_NPY_F16)) {
        cp_npy_close(&npy);
        return cp_error_set(err, CP_EFORMAT,
                            "%s: expected float32/float16 query embeddings of shape [n, n_q, dim]",
                            path);
    }
    int64_t n = npy.ndim == 3 ? npy.shape[0] : 1, nq = npy.shape[npy.ndim - 2];
    q->dim = (int)npy.shape[npy.ndim - 1];
    FILE *ids = ids_path ? fopen(ids_path, "r") : NULL;
    if (ids_path && !ids) st = cp_error_set(err, CP_ENOTFOUND, "cannot open %s", ids_path);
    char *line = NULL;
    size_t cap = 0;
    for (int64_t i = 0; st == CP_OK && i < n; i++) {
        char id[32];
        const char *qid = id;
        snprintf(id, sizeof id, "%lld", (long long)i);
        if (ids) {
            ssize_t len = getline(&line, &cap, ids);
            if (len <= 0) {
                st = cp_error_set(err, CP_EINVAL, "%s has fewer lines than %s has queries (%lld)",
                                  ids_path, path, (long long)n);
                break;
            }
            line[strcspn(line, "\r\n")] = 0;
            qid = line;
        }
        float *e = malloc(sizeof(float) * (size_t)(nq * q->dim));
        if (!e) {
            st = cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
            break;
        }
        cp_npy_floats(&npy, i * nq * q->dim, nq * q->dim, e);
        st = query_set_push(q, qid, NULL, e, (int)nq, err);
        if (st != CP_OK) free(e);
    }
    free(line);
    if (ids) fclose(ids);
    cp_npy_close(&npy);
    return st;
}

/* Encode a batch of texts as queries and append them (enc NULL: lexical mode, texts only;
 * keep_text: keep the texts beside the embeddings for hybrid). */
static cp_status encode_batch(cp_encoder *enc, char **ids, char **texts, size_t n, query_set *q,
                              bool keep_text, cp_error *err)
{
    if (!enc) {
        cp_status st = CP_OK;
        for (size_t i = 0; i < n && st == CP_OK; i++)
            st = query_set_push(q, ids[i], texts[i], NULL, 0, err);
        return st;
    }
    cp_embeddings *out = calloc(n ? n : 1, sizeof *out);
    if (!out) return cp_error_set(err, CP_ENOMEM, "out of memory encoding queries");
    cp_status st = cp_encoder_encode(enc, CP_TEXT_QUERY, (const char *const *)texts, n, out, err);
    for (size_t i = 0; i < n; i++) {
        if (st == CP_OK) {
            st = query_set_push(q, ids[i], keep_text ? texts[i] : NULL, out[i].data,
                                out[i].n_tokens, err);
            if (st == CP_OK) out[i].data = NULL;
        }
        cp_embeddings_free(&out[i]);
    }
    free(out);
    return st;
}

enum { ENCODE_BATCH = 64 };

/* Text queries from a file (or one --query), keeping only those `keep` accepts. */
static cp_status load_text_queries(const char *cmd, const options *o, cp_index *index,
                                   const cp_qrels *keep, query_set *q, cp_error *err)
{
    cp_encoder *enc = NULL;
    cp_status st = CP_OK;
    bool keep_text = o->mode != MODE_LATE;
    if (o->mode != MODE_LEXICAL) { /* lexical search needs no model */
        /* the index's own model (fingerprint), encoding the dims it recorded */
        st = cp_cli_load_model_for_index(cmd, o->model, o->threads, index, o->allow_mismatch, &enc,
                                         err);
        if (st != CP_OK) return st;
        q->dim = cp_encoder_dim(enc);
    }
    if (o->query) {
        char *id = "0", *text = (char *)o->query;
        st = encode_batch(enc, &id, &text, 1, q, keep_text, err);
        cp_encoder_free(enc);
        return st;
    }
    cp_corpus *c = NULL;
    if ((st = cp_corpus_open(o->queries, &c, err)) != CP_OK) {
        cp_encoder_free(enc);
        return st;
    }
    char *ids[ENCODE_BATCH], *texts[ENCODE_BATCH];
    size_t n = 0;
    for (;;) {
        cp_corpus_record rec;
        bool has = false;
        if ((st = cp_corpus_next(c, &rec, &has, err)) != CP_OK) break;
        if (has && keep && !cp_qrels_has_query(keep, rec.id)) continue;
        if (has) {
            ids[n] = strdup(rec.id);
            texts[n] = strdup(rec.text);
            if (!ids[n] || !texts[n]) {
                free(ids[n]);
                free(texts[n]);
                st = cp_error_set(err, CP_ENOMEM, "out of memory reading queries");
                break;
            }
            n++;
        }
        if (n == ENCODE_BATCH || (!has && n)) {
            st = encode_batch(enc, ids, texts, n, q, keep_text, err);
            for (size_t i = 0; i < n; i++) free(ids[i]), free(texts[i]);
            n = 0;
            if (st != CP_OK) break;
        }
        if (!has) break;
    }
    for (size_t i = 0; i < n; i++) free(ids[i]), free(texts[i]);
    cp_corpus_close(c);
    cp_encoder_free(enc);
    return st;
}

static cp_status load_queries(const char *cmd, const options *o, cp_index *index,
                              const char *query_ids, const cp_qrels *keep, query_set *q,
                              cp_error *err)
{
    const char *npy_path = o->query_emb;
    if (!npy_path && o->queries) {
        size_t len = strlen(o->queries);
        if (len > 4 && !strcmp(o->queries + len - 4, ".npy")) npy_path = o->queries;
    }
    if (npy_path) return load_query_npy(npy_path, query_ids, q, err);
    if (!o->model && o->mode != MODE_LEXICAL)
        return cp_error_set(err, CP_EINVAL,
                            "text queries need --model MODEL (the model the index was built "
                            "with); or pass precomputed embeddings%s",
                            strcmp(cmd, "search") ? " as a .npy" : " with --query-embeddings");
    return load_text_queries(cmd, o, index, keep, q, err);
}

/* ---------------------------------------------------------------------------------------
 * Running the searches: threads pull query numbers; each query is timed on its own.
 * ------------------------------------------------------------------------------------ */

typedef struct run {
    cp_index *index;
    const query_set *q;
    search_mode mode;
    cp_fusion fusion;
    cp_search_params params;
    cp_hit *hits;  /* n x k */
    int *n_hits;
    cp_passage *passages; /* n x k, windowed indexes only (else NULL) */
    cp_doc_score doc_score;
    const char *doc_score_name; /* --doc-score */
    double *ms;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t lock;
    cp_error err;
} run;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *run_worker(void *arg)
{
    run *r = arg;
    cp_error err = {0};
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->q->n || atomic_load(&r->failed)) break;
        double t0 = now_ms();
        cp_hit *hits = r->hits + i * (size_t)r->params.k;
        cp_status st;
        if (r->mode == MODE_LEXICAL)
            st = cp_index_lexical_search(r->index, r->q->texts[i], &r->params, hits, &r->n_hits[i],
                                         &err);
        else if (r->mode == MODE_HYBRID)
            st = cp_index_hybrid_search(r->index, r->q->texts[i], r->q->emb[i], r->q->n_q[i],
                                        r->q->dim, &r->params, &r->fusion, hits, &r->n_hits[i],
                                        NULL, &err);
        else
            st = cp_index_search(r->index, r->q->emb[i], r->q->n_q[i], r->q->dim, &r->params, hits,
                                 &r->n_hits[i], NULL, &err);
        /* best windows (windowed indexes): MaxP re-ranks a late search; a hybrid one keeps
         * its fused order (spans only); a lexical one has no query vectors to place them */
        if (st == CP_OK && r->passages && r->mode != MODE_LEXICAL)
            st = cp_index_hit_passages(r->index, r->q->emb[i], r->q->n_q[i], r->q->dim,
                                       r->mode == MODE_HYBRID ? CP_DOC_SCORE_MAXSIM : r->doc_score,
                                       hits, r->n_hits[i], r->passages + i * (size_t)r->params.k,
                                       &err);
        else if (st == CP_OK && r->passages)
            for (int h = 0; h < r->n_hits[i]; h++)
                r->passages[i * (size_t)r->params.k + (size_t)h] = (cp_passage){-1, -1, -1, 0.0f};
        r->ms[i] = now_ms() - t0;
        if (st != CP_OK) {
            pthread_mutex_lock(&r->lock);
            if (!atomic_exchange(&r->failed, 1)) {
                r->err = err;
                cp_error_prefix(&r->err, "query %s", r->q->ids[i]);
            }
            pthread_mutex_unlock(&r->lock);
            break;
        }
    }
    return NULL;
}

static cp_status run_all(run *r, int threads, cp_error *err)
{
    size_t n = r->q->n, k = (size_t)r->params.k;
    r->hits = malloc(sizeof(cp_hit) * (n * k + 1));
    r->n_hits = calloc(n + 1, sizeof(int));
    r->ms = calloc(n + 1, sizeof(double));
    if (!r->hits || !r->n_hits || !r->ms) return cp_error_set(err, CP_ENOMEM, "out of memory for results");
    cp_window_options w;
    if (cp_index_windows(r->index, &w, &r->doc_score)) {
        if (r->doc_score_name) cp_doc_score_parse(r->doc_score_name, &r->doc_score);
        r->passages = malloc(sizeof(cp_passage) * (n * k + 1));
        if (!r->passages) return cp_error_set(err, CP_ENOMEM, "out of memory for results");
    }
    atomic_init(&r->next, 0);
    atomic_init(&r->failed, 0);
    pthread_mutex_init(&r->lock, NULL);
    if ((size_t)threads > n) threads = n ? (int)n : 1;
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    int started = 0;
    for (int t = 1; tids && t < threads; t++)
        if (pthread_create(&tids[started], NULL, run_worker, r) == 0) started++;
    run_worker(r);
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    free(tids);
    pthread_mutex_destroy(&r->lock);
    if (atomic_load(&r->failed)) {
        if (err) *err = r->err;
        return r->err.code;
    }
    return CP_OK;
}

static void run_free(run *r)
{
    free(r->hits);
    free(r->n_hits);
    free(r->ms);
    free(r->passages);
}

static void params_from_options(const options *o, cp_search_params *p)
{
    cp_search_params_init(p, o->k);
    p->exact = o->exact;
    p->recall = (float)o->recall;
    p->ncells = o->ncells;
    p->ndocs = o->ndocs;
    if (o->have_threshold) p->centroid_score_threshold = (float)o->threshold;
}

/* Open the index and load the queries: the common start of both commands. */
static int prepare(const char *cmd, const options *o, const char *query_ids, const cp_qrels *keep,
                   cp_index **index, query_set *q)
{
    cp_error err = {0};
    if (o->mode != MODE_LATE &&
        (o->query_emb || (o->queries && strlen(o->queries) > 4 &&
                          !strcmp(o->queries + strlen(o->queries) - 4, ".npy"))))
        return cp_cli_usage_error(cmd,
                                  "--mode %s needs text queries (--query or --queries FILE), "
                                  "not embeddings",
                                  mode_names[o->mode]);
    if (cp_index_open(o->index, CP_OPEN_READONLY, index, &err) != CP_OK) return cp_cli_report(cmd, &err);
    if (o->mode != MODE_LATE && !cp_index_has_lexical(*index)) {
        cp_index_close(*index);
        *index = NULL;
        return cp_cli_usage_error(cmd,
                                  "--mode %s: %s has no lexical index (it was built from "
                                  "embeddings, or before lexical search existed); add one with "
                                  "`colplaid index lexical --index %s`",
                                  mode_names[o->mode], o->index, o->index);
    }
    cp_status st = load_queries(cmd, o, *index, query_ids, keep, q, &err);
    if (st != CP_OK) {
        cp_index_close(*index);
        *index = NULL;
        if (st == CP_EINVAL && !o->model && !o->query_emb) return cp_cli_usage_error(cmd, "%s", err.message);
        return cp_cli_report(cmd, &err);
    }
    return CP_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * search
 * ------------------------------------------------------------------------------------ */

static int print_hits(const options *o, cp_index *index, const query_set *q, const run *r)
{
    cp_error err = {0};
    for (size_t i = 0; i < q->n; i++) {
        cJSON *obj = NULL, *arr = NULL;
        if (o->format == FMT_JSON) {
            obj = cJSON_CreateObject();
            cJSON_AddStringToObject(obj, "qid", q->ids[i]);
            arr = cJSON_AddArrayToObject(obj, "hits");
        }
        for (int h = 0; h < r->n_hits[i]; h++) {
            const cp_hit *hit = &r->hits[i * (size_t)o->k + (size_t)h];
            char *ext = NULL;
            if (cp_index_external_id(index, hit->doc_id, &ext, &err) != CP_OK) {
                cJSON_Delete(obj);
                return cp_cli_report("search", &err);
            }
            if (o->format == FMT_TSV) printf("%s\t%s\t%d\t%.6f\n", q->ids[i], ext, h + 1, hit->score);
            else if (o->format == FMT_TREC)
                printf("%s Q0 %s %d %.6f colplaid\n", q->ids[i], ext, h + 1, hit->score);
            else {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "id", ext);
                cJSON_AddNumberToObject(e, "rank", h + 1);
                cJSON_AddNumberToObject(e, "score", hit->score);
                const cp_passage *p =
                    r->passages ? &r->passages[i * (size_t)o->k + (size_t)h] : NULL;
                if (p && p->window >= 0) { /* the best window's characters */
                    cJSON *ps = cJSON_AddObjectToObject(e, "passage");
                    cJSON_AddNumberToObject(ps, "start", p->start);
                    cJSON_AddNumberToObject(ps, "end", p->end);
                }
                cJSON_AddItemToArray(arr, e);
            }
            free(ext);
        }
        if (obj) {
            char *s = cJSON_PrintUnformatted(obj);
            if (s) puts(s);
            free(s);
            cJSON_Delete(obj);
        }
    }
    return fflush(stdout) == 0 ? CP_EXIT_OK : CP_EXIT_FAILURE;
}

int cp_cmd_search(int argc, char **argv)
{
    options o;
    const char *unused_ids = NULL;
    int rc = parse_options("search", argc, argv, false, &o, &unused_ids);
    if (rc != CP_EXIT_OK || o.help) {
        if (o.help) fputs(search_usage, stdout);
        return rc;
    }
    cp_index *index = NULL;
    query_set q = {0};
    if ((rc = prepare("search", &o, NULL, NULL, &index, &q)) != CP_EXIT_OK) return rc;
    run r = {.index = index, .q = &q, .doc_score_name = o.doc_score, .mode = o.mode, .fusion = o.fusion};
    params_from_options(&o, &r.params);
    cp_error err = {0};
    if (run_all(&r, o.threads, &err) != CP_OK) rc = cp_cli_report("search", &err);
    else rc = print_hits(&o, index, &q, &r);
    run_free(&r);
    query_set_free(&q);
    cp_index_close(index);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * eval
 * ------------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, size_t n, double p)
{
    if (!n) return 0.0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return sorted[rank ? rank - 1 : 0];
}

static int report_eval(const options *o, const cp_eval_scores *mean, size_t n, double *ms)
{
    qsort(ms, n, sizeof *ms, cmp_double);
    double total = 0;
    for (size_t i = 0; i < n; i++) total += ms[i];
    double lat_mean = n ? total / (double)n : 0, p50 = percentile(ms, n, 50), p99 = percentile(ms, n, 99);
    if (o->format == FMT_JSON) {
        printf(
            "{\"queries\": %zu, \"k\": %d, \"exact\": %s, \"ndcg@10\": %.6f, \"recall@10\": %.6f, "
            "\"recall@100\": %.6f, \"mrr@10\": %.6f, \"latency_ms\": {\"mean\": %.4f, "
            "\"p50\": %.4f, \"p99\": %.4f}, \"mode\": \"%s\"}\n",
            n, o->k, o->exact ? "true" : "false", mean->ndcg_at_10, mean->recall_at_10,
            mean->recall_at_100, mean->mrr_at_10, lat_mean, p50, p99, mode_names[o->mode]);
    } else {
        printf("queries evaluated  %zu (k = %d%s%s%s)\n", n, o->k, o->exact ? ", exact" : "",
               o->mode != MODE_LATE ? ", " : "", o->mode != MODE_LATE ? mode_names[o->mode] : "");
        printf("nDCG@10            %.4f\n", mean->ndcg_at_10);
        printf("Recall@10          %.4f\n", mean->recall_at_10);
        printf("Recall@100         %.4f\n", mean->recall_at_100);
        printf("MRR@10             %.4f\n", mean->mrr_at_10);
        printf("latency ms         mean %.3f  p50 %.3f  p99 %.3f\n", lat_mean, p50, p99);
    }
    return fflush(stdout) == 0 ? CP_EXIT_OK : CP_EXIT_FAILURE;
}

static int score_all(const options *o, cp_index *index, const cp_qrels *qrels, const query_set *q,
                     run *r)
{
    cp_eval_scores sum = {0};
    size_t n_eval = 0, k = (size_t)o->k;
    char **ranked = calloc(k, sizeof *ranked);
    double *ms = calloc(q->n + 1, sizeof *ms);
    cp_error err = {0};
    int rc = ranked && ms ? CP_EXIT_OK : CP_EXIT_FAILURE;
    for (size_t i = 0; rc == CP_EXIT_OK && i < q->n; i++) {
        if (!cp_qrels_has_query(qrels, q->ids[i])) continue;
        size_t n = (size_t)r->n_hits[i];
        for (size_t h = 0; h < n && rc == CP_EXIT_OK; h++)
            if (cp_index_external_id(index, r->hits[i * k + h].doc_id, &ranked[h], &err) != CP_OK)
                rc = cp_cli_report("eval", &err);
        if (rc == CP_EXIT_OK) {
            cp_eval_scores s;
            cp_eval_query(qrels, q->ids[i], (const char *const *)ranked, n, &s);
            sum.ndcg_at_10 += s.ndcg_at_10, sum.recall_at_10 += s.recall_at_10;
            sum.recall_at_100 += s.recall_at_100, sum.mrr_at_10 += s.mrr_at_10;
            ms[n_eval++] = r->ms[i];
        }
        for (size_t h = 0; h < n; h++) free(ranked[h]), ranked[h] = NULL;
    }
    if (rc == CP_EXIT_OK && n_eval == 0) {
        fprintf(stderr, "colplaid eval: none of the queries in %s has a positive judgement in %s\n",
                o->queries, o->qrels);
        rc = CP_EXIT_FAILURE;
    }
    if (rc == CP_EXIT_OK) {
        double d = (double)n_eval;
        cp_eval_scores mean = {sum.ndcg_at_10 / d, sum.recall_at_10 / d, sum.recall_at_100 / d,
                               sum.mrr_at_10 / d};
        rc = report_eval(o, &mean, n_eval, ms);
    }
    free(ranked);
    free(ms);
    return rc;
}

int cp_cmd_eval(int argc, char **argv)
{
    options o;
    const char *query_ids = NULL;
    int rc = parse_options("eval", argc, argv, true, &o, &query_ids);
    if (rc != CP_EXIT_OK || o.help) {
        if (o.help) fputs(eval_usage, stdout);
        return rc;
    }
    cp_error err = {0};
    cp_qrels *qrels = NULL;
    if (cp_qrels_load(o.qrels, &qrels, &err) != CP_OK) return cp_cli_report("eval", &err);
    cp_index *index = NULL;
    query_set q = {0};
    if ((rc = prepare("eval", &o, query_ids, qrels, &index, &q)) != CP_EXIT_OK) {
        cp_qrels_free(qrels);
        return rc;
    }
    run r = {.index = index, .q = &q, .doc_score_name = o.doc_score, .mode = o.mode, .fusion = o.fusion};
    params_from_options(&o, &r.params);
    if (run_all(&r, o.threads, &err) != CP_OK) rc = cp_cli_report("eval", &err);
    else rc = score_all(&o, index, qrels, &q, &r);
    run_free(&r);
    query_set_free(&q);
    cp_index_close(index);
    cp_qrels_free(qrels);
    return rc;
}
