/*
 * Route handlers: a routed, authorised request in, a complete response out. They run on
 * worker threads (search, documents, encode, rerank) or on the HTTP thread (cheap reads),
 * and touch the engine only through its public, thread-safe API.
 *
 * Response shapes follow docs/http-api.md and server/openapi.json; floats are printed with
 * 9 significant digits so a float32 survives the round trip exactly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "server.h"
#include "strbuf.h"

#ifndef CP_VERSION
#define CP_VERSION "dev"
#endif

/* Milliseconds since t0 (a cp_now_seconds value), for the timing_ms of responses. */
static double ms_since(double t0)
{
    return (cp_now_seconds() - t0) * 1000.0;
}

/* ---- response pieces ------------------------------------------------------------------- */

/* JSON has no inf or NaN: such a value (inputs are refused before they could give one)
 * would be written as null rather than break the response. */
static void append_float(cp_sb *sb, float v)
{
    if (isfinite(v))
        cp_sb_printf(sb, "%.9g", (double)v);
    else
        cp_sb_append(sb, "null");
}

/* ---- service routes ---------------------------------------------------------------------- */

static void append_index_summary(cp_sb *sb, const cp_served_index *si)
{
    cp_index_stats st;
    cp_error err;
    cp_sb_append(sb, "{\"name\": ");
    cp_sb_json_string(sb, si->name);
    if (cp_index_stats_get(si->index, &st, &err) == CP_OK)
        cp_sb_printf(sb, ", \"documents\": %lld, \"tokens\": %lld, \"dim\": %d",
                     (long long)st.n_documents, (long long)st.n_tokens, st.dim);
    cp_sb_append(sb, "}");
}

/* A stored JSON text (metadata, fingerprint) embedded as JSON, or null if it is not JSON. */
static void append_raw_json(cp_sb *sb, const char *json)
{
    cJSON *v = json ? cJSON_Parse(json) : NULL;
    cp_sb_append_json_text(sb, v ? json : "null");
    cJSON_Delete(v);
}

static void handle_health(cp_server *s, cp_response *resp)
{
    cp_sb sb = {0};
    cp_sb_printf(&sb, "{\"status\": \"%s\", \"version\": \"%s\", \"uptime_s\": %.3f, \"indexes\": [",
                 atomic_load(&s->shutting_down) ? "shutting_down" : "ok", CP_VERSION,
                 cp_now_seconds() - s->start_time);
    size_t n;
    cp_served_index **list = cp_server_indexes_list(s, &n);
    for (size_t i = 0; i < n; i++) {
        if (i) cp_sb_append(&sb, ", ");
        append_index_summary(&sb, list[i]);
    }
    cp_server_indexes_release(list, n);
    cp_sb_append(&sb, "], \"model\": ");
    append_raw_json(&sb, s->encoder ? cp_encoder_fingerprint(s->encoder) : NULL);
    cp_sb_append(&sb, "}");
    cp_response_set_body(resp, 200, &sb, "application/json");
}

static void handle_metrics(cp_server *s, cp_response *resp)
{
    cp_metrics_gauges g = {
        .in_flight = atomic_load(&s->in_flight),
        .queue_depth = atomic_load(&s->queue_len),
        .queue_capacity = s->cfg.queue_depth,
        .workers = s->cfg.threads,
        .rss_bytes = cp_process_rss_bytes(),
        .uptime_seconds = cp_now_seconds() - s->start_time,
    };
    char *text = cp_metrics_render(s->metrics, &g);
    cp_sb sb = {0};
    cp_sb_append(&sb, text ? text : "");
    free(text);
    cp_sb_append(&sb, "# HELP colplaid_index_documents Live documents per index.\n"
                      "# TYPE colplaid_index_documents gauge\n");
    static const char *const names[] = {"documents", "tokens", "bytes_on_disk", "bytes_in_memory"};
    /* One consistent list for the four families, even if an index is created or dropped
     * meanwhile; each index's stats read once. */
    size_t n;
    cp_served_index **list = cp_server_indexes_list(s, &n);
    cp_index_stats *stats = n ? calloc(n, sizeof *stats) : NULL;
    bool *ok = n ? calloc(n, sizeof *ok) : NULL;
    for (size_t i = 0; stats && ok && i < n; i++) {
        cp_error err;
        ok[i] = cp_index_stats_get(list[i]->index, &stats[i], &err) == CP_OK;
    }
    for (int f = 0; f < 4; f++) {
        if (f) cp_sb_printf(&sb, "# TYPE colplaid_index_%s gauge\n", names[f]);
        for (size_t i = 0; stats && ok && i < n; i++) {
            if (!ok[i]) continue;
            const cp_index_stats *st = &stats[i];
            int64_t v[4] = {st->n_documents, st->n_tokens, st->bytes_on_disk, st->bytes_in_memory};
            cp_sb_printf(&sb, "colplaid_index_%s{index=\"%s\"} %lld\n", names[f], list[i]->name,
                         (long long)v[f]);
        }
    }
    free(stats);
    free(ok);
    cp_server_indexes_release(list, n);
    cp_sb_printf(&sb,
                 "# HELP colplaid_write_queue_depth Write requests waiting for the writer thread.\n"
                 "# TYPE colplaid_write_queue_depth gauge\ncolplaid_write_queue_depth %lld\n"
                 "# TYPE colplaid_write_queue_capacity gauge\ncolplaid_write_queue_capacity %d\n"
                 "# HELP colplaid_auto_compactions_total Compactions run by the automatic policy "
                 "after writes.\n# TYPE colplaid_auto_compactions_total counter\n"
                 "colplaid_auto_compactions_total %lld\n"
                 "# HELP colplaid_encode_batches_total Encoder calls shared by several "
                 "queued text searches.\n# TYPE colplaid_encode_batches_total counter\n"
                 "colplaid_encode_batches_total %lld\n"
                 "# HELP colplaid_encode_batched_searches_total Text searches encoded in "
                 "a shared encoder call.\n"
                 "# TYPE colplaid_encode_batched_searches_total counter\n"
                 "colplaid_encode_batched_searches_total %lld\n"
                 "# HELP colplaid_header_timeouts_total Connections closed because a "
                 "request's headers took longer than --timeout.\n"
                 "# TYPE colplaid_header_timeouts_total counter\n"
                 "colplaid_header_timeouts_total %lld\n",
                 (long long)atomic_load(&s->write_queue_len), s->cfg.write_queue,
                 (long long)atomic_load(&s->writes_compacted),
                 (long long)atomic_load(&s->encode_batches),
                 (long long)atomic_load(&s->encode_batched_requests),
                 (long long)atomic_load(&s->header_timeouts));
    cp_response_set_body(resp, 200, &sb, "text/plain; version=0.0.4; charset=utf-8");
}

static void handle_openapi(cp_response *resp)
{
    cp_sb sb = {0};
    cp_sb_append(&sb, cp_openapi_json);
    cp_response_set_body(resp, 200, &sb, "application/json");
}

/* What an index was built with beyond its codec, as `colplaid index info --format json`
 * names it: "lexical" (it has a lexical side, docs/hybrid.md), "pool_factor" (1 unpooled)
 * and "pool_linkage" (null unpooled; docs/pooling.md), "windows" (meta "windows" or null;
 * docs/index-format.md "Windows"). */
static void append_index_features(cp_sb *sb, cp_index *index)
{
    cp_sb_printf(sb, ", \"lexical\": %s", cp_index_has_lexical(index) ? "true" : "false");
    char *text = cp_index_meta_get(index, "pooling");
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "factor");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "linkage");
    int factor =
        cJSON_IsNumber(f) && f->valuedouble >= 1 && f->valuedouble <= 64 ? (int)f->valuedouble : 1;
    cp_sb_printf(sb, ", \"pool_factor\": %d, \"pool_linkage\": ", factor);
    if (factor > 1 && cJSON_IsString(l))
        cp_sb_json_string(sb, l->valuestring);
    else
        cp_sb_append(sb, "null");
    cJSON_Delete(o);
    free(text);
    cp_sb_append(sb, ", \"windows\": ");
    char *win = cp_index_meta_get(index, "windows");
    append_raw_json(sb, win);
    free(win);
}

static void append_index_info(cp_sb *sb, const cp_served_index *si)
{
    cp_index_stats st;
    cp_error err;
    if (cp_index_stats_get(si->index, &st, &err)) {
        cp_sb_append(sb, "null");
        return;
    }
    cp_sb_append(sb, "{\"name\": ");
    cp_sb_json_string(sb, si->name);
    cp_sb_printf(sb,
                 ", \"format_version\": %d, \"documents\": %lld, \"deleted\": %lld, \"tokens\": "
                 "%lld, \"centroids\": %lld, \"segments\": %lld, \"nbits\": %d, \"dim\": %d, "
                 "\"bytes_on_disk\": %lld, \"bytes_in_memory\": %lld, \"encoder\": ",
                 st.format_version, (long long)st.n_documents, (long long)st.n_deleted,
                 (long long)st.n_tokens, (long long)st.n_centroids, (long long)st.n_segments,
                 st.nbits, st.dim, (long long)st.bytes_on_disk, (long long)st.bytes_in_memory);
    char *enc = cp_index_meta_get(si->index, "encoder");
    append_raw_json(sb, enc);
    free(enc);
    append_index_features(sb, si->index);
    cp_sb_append(sb, "}");
}

static void handle_list_indexes(cp_server *s, cp_response *resp)
{
    cp_sb sb = {0};
    cp_sb_append(&sb, "{\"indexes\": [");
    size_t n;
    cp_served_index **list = cp_server_indexes_list(s, &n);
    for (size_t i = 0; i < n; i++) {
        if (i) cp_sb_append(&sb, ", ");
        append_index_info(&sb, list[i]);
    }
    cp_server_indexes_release(list, n);
    cp_sb_append(&sb, "]}");
    cp_response_set_body(resp, 200, &sb, "application/json");
}

static void handle_get_index(const cp_request *req, cp_response *resp)
{
    cp_sb sb = {0};
    append_index_info(&sb, req->idx);
    cp_response_set_body(resp, 200, &sb, "application/json");
}

static void handle_get_document(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_document_info info;
    cp_error err;
    cp_status st = cp_index_document_get(req->idx->index, req->doc_id, &info, &err);
    if (st == CP_ENOTFOUND) {
        cp_response_error(resp, 404, "DOCUMENT_NOT_FOUND", "index \"%s\" has no document \"%.200s\"",
                          req->idx->name, req->doc_id);
        return;
    }
    if (st) {
        cp_response_from_status(resp, &err);
        return;
    }
    cp_sb sb = {.limit = s->cfg.limits.max_response_bytes};
    cp_sb_append(&sb, "{\"id\": ");
    cp_sb_json_string(&sb, info.external_id);
    cp_sb_append(&sb, ", \"text\": ");
    if (info.text) cp_sb_json_string(&sb, info.text);
    else cp_sb_append(&sb, "null");
    cp_sb_append(&sb, ", \"metadata\": ");
    append_raw_json(&sb, info.metadata_json);
    cp_sb_printf(&sb, ", \"n_tokens\": %d}", (int)info.n_tokens);
    cp_document_info_free(&info);
    cp_response_set_body(resp, 200, &sb, "application/json");
}

/* ---- encoding texts of requests ------------------------------------------------------------ */

/* n texts through the model in one timed call (*ms). texts NULL stands for an allocation
 * that failed. Returns the embeddings (the caller frees the array and what it keeps of
 * them), or NULL with the error response set. */
static cp_embeddings *encode_timed(cp_server *s, cp_text_kind kind, const char *const *texts,
                                   size_t n, double *ms, cp_response *resp)
{
    cp_embeddings *out = calloc(n, sizeof *out);
    cp_error err;
    double t0 = cp_now_seconds();
    cp_status st = texts && out ? cp_encoder_encode(s->encoder, kind, texts, n, out, &err)
                                : cp_error_set(&err, CP_ENOMEM, "out of memory");
    *ms = ms_since(t0);
    if (st) {
        free(out);
        cp_response_from_status(resp, &err);
        return NULL;
    }
    return out;
}

/* Move the vectors of emb into v; the token ids are not needed past encoding. */
static void take_embeddings(cp_vec_input *v, cp_embeddings *emb)
{
    v->data = emb->data;
    v->n_tokens = emb->n_tokens;
    v->dim = emb->dim;
    v->encoded = true;
    free(emb->token_ids);
}

/* Encode every text input of vecs in one encoder call (one batch is faster than many),
 * replacing text by embeddings. *ms gets the encode time. */
static bool encode_texts(cp_server *s, cp_text_kind kind, cp_vec_input **vecs, size_t n,
                         double *ms, cp_response *resp)
{
    *ms = 0;
    size_t n_text = 0;
    for (size_t i = 0; i < n; i++) n_text += vecs[i]->text != NULL;
    if (!n_text) return true;
    if (!s->encoder) {
        cp_response_error(resp, 422, "MODEL_NOT_LOADED",
                          "text inputs need a model: start the server with --model, or send "
                          "embeddings");
        return false;
    }
    const char **texts = calloc(n_text, sizeof *texts);
    size_t j = 0;
    for (size_t i = 0; texts && i < n; i++)
        if (vecs[i]->text) texts[j++] = vecs[i]->text;
    cp_embeddings *out = encode_timed(s, kind, texts, n_text, ms, resp);
    free(texts);
    if (!out) return false;
    j = 0;
    for (size_t i = 0; i < n; i++) {
        if (!vecs[i]->text) continue;
        free(vecs[i]->text);
        vecs[i]->text = NULL;
        take_embeddings(vecs[i], &out[j++]);
    }
    free(out);
    return true;
}

/* ---- search ------------------------------------------------------------------------------- */

/* The candidates of a search restricted by "filter" and/or "ids" (the engine resolves and
 * intersects them); sub->active false when the request has neither. */
typedef struct subset {
    bool active;
    int64_t *ids;
    size_t n;
} subset;

static bool build_subset(const cp_search_request *sr, cp_served_index *si, subset *sub,
                         cp_response *resp)
{
    memset(sub, 0, sizeof *sub);
    if (!sr->filter_json && !sr->has_ids) return true;
    sub->active = true;
    cp_error err;
    cp_status st = cp_index_restrict(si->index, sr->filter_json, (const char *const *)sr->ids,
                                     sr->n_ids, sr->has_ids, &sub->ids, &sub->n, &err);
    if (st == CP_EINVAL && sr->filter_json) {
        cp_response_error(resp, 400, "INVALID_FILTER", "%s", err.message);
        return false;
    }
    if (st) {
        cp_response_from_status(resp, &err);
        return false;
    }
    return true;
}

/* The hits of one query with their documents, resolved by the engine in one call. The
 * search ran on a snapshot; a write committed since (a delete, or a replace that tombstoned
 * this version) leaves a hit without a document: that hit is left out rather than failing
 * the search, so a reader never sees an error because of a concurrent writer. */
static bool append_hits(cp_sb *sb, const cp_served_index *si, const cp_search_request *sr,
                        const cp_hit *hits, const cp_passage *passages, int n_hits,
                        cp_response *resp)
{
    cp_document_info *docs = calloc(n_hits > 0 ? (size_t)n_hits : 1, sizeof *docs);
    if (!docs) {
        cp_response_error(resp, 503, "OUT_OF_MEMORY", "out of memory");
        return false;
    }
    int fields =
        (sr->include_text ? CP_DOC_TEXT : 0) | (sr->include_metadata ? CP_DOC_METADATA : 0);
    cp_error err;
    cp_status st = cp_index_hit_documents(si->index, hits, (size_t)n_hits, fields, docs, &err);
    if (st) {
        free(docs);
        cp_response_from_status(resp, &err);
        return false;
    }
    bool first = true;
    for (int i = 0; i < n_hits; i++) {
        const cp_document_info *d = &docs[i];
        if (!d->external_id) continue;
        cp_sb_append(sb, first ? "{\"id\": " : ", {\"id\": ");
        first = false;
        cp_sb_json_string(sb, d->external_id);
        cp_sb_append(sb, ", \"score\": ");
        append_float(sb, hits[i].score);
        if (passages && passages[i].window >= 0) /* windowed index: the best window */
            cp_sb_printf(sb, ", \"passage\": {\"start\": %d, \"end\": %d}", (int)passages[i].start,
                         (int)passages[i].end);
        if (sr->include_text) {
            cp_sb_append(sb, ", \"text\": ");
            if (d->text)
                cp_sb_json_string(sb, d->text);
            else cp_sb_append(sb, "null");
        }
        if (sr->include_metadata) {
            cp_sb_append(sb, ", \"metadata\": ");
            append_raw_json(sb, d->metadata_json);
        }
        cp_sb_append(sb, "}");
    }
    for (int i = 0; i < n_hits; i++)
        cp_document_info_free(&docs[i]);
    free(docs);
    return true;
}

static bool search_one(cp_server *s, cp_served_index *si, const cp_search_request *sr,
                       const cp_vec_input *q, const char *lex_text, const subset *sub, cp_hit *hits,
                       double encode_ms, cp_sb *sb, cp_response *resp)
{
    cp_search_params p;
    cp_search_params_init(&p, sr->k);
    if (sr->ncells) p.ncells = sr->ncells;
    if (sr->ndocs) p.ndocs = sr->ndocs;
    p.recall = sr->recall;
    if (!isnan(sr->threshold)) p.centroid_score_threshold = sr->threshold;
    p.exact = sr->exact;
    if (sub->active) {
        p.subset = sub->ids;
        p.n_subset = sub->n;
    }
    int n_hits = 0;
    cp_search_timing t = {0};
    cp_error err;
    double t0 = cp_now_seconds();
    cp_passage *passages = NULL;
    if (!sub->active || sub->n > 0) {
        cp_status st;
        if (sr->mode == CP_MODE_LEXICAL)
            st = cp_index_lexical_search(si->index, lex_text, &p, hits, &n_hits, &err);
        else if (sr->mode == CP_MODE_HYBRID)
            st = cp_index_hybrid_search(si->index, lex_text, q->data, q->n_tokens, q->dim, &p,
                                        &sr->fusion, hits, &n_hits, &t, &err);
        else
            st = cp_index_search(si->index, q->data, q->n_tokens, q->dim, &p, hits, &n_hits, &t,
                                 &err);
        if (st == CP_EUNSUPPORTED) {
            cp_response_error(resp, 422, "UNSUPPORTED", "%s", err.message);
            return false;
        }
        /* best windows (windowed indexes): MaxP re-ranks a late search; a hybrid one keeps its
         * fused order (spans only); a lexical one has no query vectors to place them */
        cp_window_options w;
        cp_doc_score score;
        if (st == CP_OK && n_hits > 0 && sr->mode != CP_MODE_LEXICAL &&
            cp_index_windows(si->index, &w, &score)) {
            passages = calloc((size_t)n_hits, sizeof *passages);
            st = passages ? cp_index_hit_passages(si->index, q->data, q->n_tokens, q->dim,
                                                  sr->mode == CP_MODE_HYBRID ? CP_DOC_SCORE_MAXSIM
                                                                             : score,
                                                  hits, n_hits, passages, &err)
                          : cp_error_set(&err, CP_ENOMEM, "out of memory");
        }
        if (st) {
            free(passages);
            cp_response_from_status(resp, &err);
            return false;
        }
        if (sr->mode != CP_MODE_LEXICAL) cp_metrics_search_timing(s->metrics, &t, encode_ms);
    }
    double search_ms = ms_since(t0);
    cp_sb_append(sb, "{\"hits\": [");
    bool ok = append_hits(sb, si, sr, hits, passages, n_hits, resp);
    free(passages);
    if (!ok) return false;
    cp_sb_printf(sb, "], \"timing_ms\": {\"encode\": %.3f, \"search\": %.3f}}", encode_ms,
                 search_ms);
    return true;
}

/* A parsed search whose texts may still need encoding, possibly in one encoder call
 * together with other requests' texts (http.c batches the queued ones). */
struct cp_search_job {
    cp_request req;
    cp_search_request sr;
    size_t n_text;    /* text queries not yet encoded */
    double encode_ms; /* this job's share of the encoder call */
};

/* Text for an index that records another model (served with --allow-model-mismatch)
 * answers 409 MODEL_MISMATCH: its vectors would not be comparable with the index's. */
static bool model_matches(const cp_server *s, const cp_served_index *si, cp_response *resp)
{
    if (!s->encoder || !si->model_mismatch) return true;
    cp_response_error(resp, 409, "MODEL_MISMATCH",
                      "%s. Text for this index is refused; send embeddings, or record the "
                      "server's model as the index's with `colplaid index set-model`",
                      si->mismatch);
    return false;
}

/* Vectors encoded from text keep the dims the index recorded (an index built with --dim
 * D gets the first D of the model's, renormalised). */
static void fit_encoded(const cp_served_index *si, cp_vec_input *v)
{
    if (v->encoded && v->data && si->encode_dim < v->dim) {
        cp_embeddings_truncate_rows(v->data, (size_t)v->n_tokens, v->dim, si->encode_dim);
        v->dim = si->encode_dim;
    }
}

cp_search_job *cp_search_prepare(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_search_job *job = calloc(1, sizeof *job);
    if (!job) {
        cp_response_error(resp, 503, "OUT_OF_MEMORY", "out of memory");
        return NULL;
    }
    cp_http_error e;
    if (!cp_parse_search(req->body, req->body_len, &s->cfg.limits, req->idx->dim, &job->sr, &e)) {
        cp_response_from_http_error(resp, &e);
        free(job);
        return NULL;
    }
    job->req = *req;
    for (size_t i = 0; i < job->sr.n_queries; i++)
        job->n_text += job->sr.queries[i].text != NULL;
    if (job->n_text && job->sr.mode != CP_MODE_LEXICAL && !model_matches(s, req->idx, resp)) {
        cp_search_job_free(job);
        return NULL;
    }
    return job;
}

size_t cp_search_job_texts(const cp_search_job *job)
{
    return job->n_text;
}

void cp_search_job_free(cp_search_job *job)
{
    if (!job) return;
    cp_search_request_free(&job->sr);
    free(job);
}

/* The query inputs of job as an array of pointers (encode_texts' shape); NULL when out of
 * memory. */
static cp_vec_input **job_vecs(cp_search_job *job)
{
    cp_vec_input **vecs = calloc(job->sr.n_queries, sizeof *vecs);
    for (size_t i = 0; vecs && i < job->sr.n_queries; i++)
        vecs[i] = &job->sr.queries[i];
    return vecs;
}

void cp_search_encode_batch(cp_server *s, cp_search_job **jobs, size_t n)
{
    size_t n_text = 0, m = 0;
    for (size_t j = 0; j < n; j++)
        n_text += jobs[j]->n_text;
    if (n_text < 2 || !s->encoder) return; /* nothing to share: cp_search_run encodes */
    cp_vec_input **vecs = calloc(n_text, sizeof *vecs);
    if (!vecs) return;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < jobs[j]->sr.n_queries; i++)
            if (jobs[j]->sr.queries[i].text) vecs[m++] = &jobs[j]->sr.queries[i];
    double ms;
    cp_response scratch = {0};
    /* One call for all: BERT then runs one forward pass (one GEMM per layer over every
     * sequence) instead of streaming its weights once per request. A failure leaves the
     * texts in place, and each job encodes alone so its error reaches its own client. */
    if (encode_texts(s, CP_TEXT_QUERY, vecs, n_text, &ms, &scratch)) {
        for (size_t j = 0; j < n; j++) {
            jobs[j]->encode_ms = ms * (double)jobs[j]->n_text / (double)n_text;
            jobs[j]->n_text = 0;
        }
    }
    free(scratch.body);
    free(vecs);
}

void cp_search_run(cp_server *s, cp_search_job *job, cp_response *resp)
{
    cp_search_request *sr = &job->sr;
    const cp_request *req = &job->req;
    cp_vec_input **vecs = job_vecs(job);
    cp_hit *hits = malloc((size_t)sr->k * sizeof *hits);
    if (!vecs || !hits) {
        free(vecs);
        free(hits);
        cp_response_error(resp, 503, "OUT_OF_MEMORY", "out of memory");
        return;
    }
    subset sub = {0};
    bool ok = true;
    if (job->n_text) {
        ok = encode_texts(s, CP_TEXT_QUERY, vecs, sr->n_queries, &job->encode_ms, resp);
        job->n_text = 0;
    }
    if (ok && sr->mode != CP_MODE_LATE && !cp_index_has_lexical(req->idx->index)) {
        cp_response_error(resp, 422, "UNSUPPORTED",
                          "mode \"%s\" needs a lexical index, and index \"%s\" has none (it was "
                          "built from embeddings, or before lexical search existed): add one "
                          "with `colplaid index lexical`",
                          sr->mode == CP_MODE_LEXICAL ? "lexical" : "hybrid", req->idx->name);
        ok = false;
    }
    for (size_t i = 0; ok && sr->mode != CP_MODE_LEXICAL && i < sr->n_queries; i++) {
        fit_encoded(req->idx, vecs[i]);
        if (vecs[i]->dim != req->idx->dim) {
            cp_response_error(resp, 422, "DIMENSION_MISMATCH",
                              "the model encodes %d dims, index \"%s\" has %d", vecs[i]->dim,
                              req->idx->name, req->idx->dim);
            ok = false;
        }
    }
    ok = ok && build_subset(sr, req->idx, &sub, resp);
    cp_sb sb = {.limit = s->cfg.limits.max_response_bytes};
    cp_sb_append(&sb, "{\"results\": [");
    double per_query_encode = job->encode_ms / (double)sr->n_queries;
    for (size_t i = 0; ok && !sb.too_big && i < sr->n_queries; i++) {
        if (i) cp_sb_append(&sb, ", ");
        ok = search_one(s, req->idx, sr, &sr->queries[i], sr->lex_texts ? sr->lex_texts[i] : NULL,
                        &sub, hits, per_query_encode, &sb, resp);
    }
    cp_sb_append(&sb, "]}");
    if (ok) cp_response_set_body(resp, 200, &sb, "application/json");
    cp_sb_free(&sb);
    free(sub.ids);
    free(vecs);
    free(hits);
}

static void handle_search(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_search_job *job = cp_search_prepare(s, req, resp);
    if (!job) return;
    cp_search_run(s, job, resp);
    cp_search_job_free(job);
}

/* ---- encode and rerank ------------------------------------------------------------------- */

static void append_embeddings(cp_sb *sb, const cp_embeddings *emb, bool b64)
{
    cp_sb_printf(sb, "{\"shape\": [%d, %d], ", (int)emb->n_tokens, emb->dim);
    size_t n = (size_t)emb->n_tokens * emb->dim;
    if (b64) {
        char *enc = cp_base64_encode((const unsigned char *)emb->data, n * sizeof(float));
        cp_sb_append(sb, "\"embeddings_b64\": ");
        if (enc) cp_sb_json_string(sb, enc);
        else sb->oom = true;
        free(enc);
    } else {
        cp_sb_append(sb, "\"embeddings\": [");
        for (int32_t r = 0; r < emb->n_tokens; r++) {
            cp_sb_append(sb, r ? ", [" : "[");
            for (int c = 0; c < emb->dim; c++) {
                if (c) cp_sb_append(sb, ", ");
                append_float(sb, emb->data[(size_t)r * emb->dim + c]);
            }
            cp_sb_append(sb, "]");
        }
        cp_sb_append(sb, "]");
    }
    cp_sb_append(sb, "}");
}

static void handle_encode(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_encode_request er;
    cp_http_error e;
    if (!cp_parse_encode(req->body, req->body_len, &s->cfg.limits, &er, &e)) {
        cp_response_from_http_error(resp, &e);
        return;
    }
    if (!s->encoder) {
        cp_response_error(resp, 422, "MODEL_NOT_LOADED", "no model loaded: start the server with --model");
        cp_encode_request_free(&er);
        return;
    }
    double ms;
    cp_embeddings *out =
        encode_timed(s, er.kind, (const char *const *)er.texts, er.n_texts, &ms, resp);
    if (out) {
        cp_sb sb = {.limit = s->cfg.limits.max_response_bytes};
        cp_sb_printf(&sb, "{\"dim\": %d, \"results\": [", cp_encoder_dim(s->encoder));
        for (size_t i = 0; i < er.n_texts; i++) {
            if (i) cp_sb_append(&sb, ", ");
            append_embeddings(&sb, &out[i], er.b64);
            cp_embeddings_free(&out[i]);
        }
        cp_sb_printf(&sb, "], \"timing_ms\": {\"encode\": %.3f}}", ms);
        cp_response_set_body(resp, 200, &sb, "application/json");
    }
    free(out);
    cp_encode_request_free(&er);
}

typedef struct scored {
    size_t index;
    float score;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

static void rerank_respond(cp_rerank_request *rr, double encode_ms, size_t limit, cp_response *resp)
{
    double t0 = cp_now_seconds();
    scored *sc = malloc(rr->n_docs * sizeof *sc);
    if (!sc) {
        cp_response_error(resp, 503, "OUT_OF_MEMORY", "out of memory");
        return;
    }
    for (size_t i = 0; i < rr->n_docs; i++) {
        cp_error err;
        sc[i].index = i;
        if (cp_maxsim_tokens(rr->query.data, rr->query.n_tokens, rr->docs[i].data,
                             rr->docs[i].n_tokens, rr->query.dim, &sc[i].score, NULL, NULL, &err)) {
            free(sc);
            cp_response_from_status(resp, &err);
            return;
        }
    }
    qsort(sc, rr->n_docs, sizeof *sc, cmp_scored);
    double ms = ms_since(t0);
    cp_sb sb = {.limit = limit};
    cp_sb_append(&sb, "{\"results\": [");
    for (size_t i = 0; i < rr->n_docs; i++) {
        cp_sb_printf(&sb, "%s{\"index\": %zu, \"score\": ", i ? ", " : "", sc[i].index);
        append_float(&sb, sc[i].score);
        cp_sb_append(&sb, "}");
    }
    cp_sb_printf(&sb, "], \"timing_ms\": {\"encode\": %.3f, \"score\": %.3f}}", encode_ms, ms);
    free(sc);
    cp_response_set_body(resp, 200, &sb, "application/json");
}

static void handle_rerank(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_rerank_request rr;
    cp_http_error e;
    if (!cp_parse_rerank(req->body, req->body_len, &s->cfg.limits, &rr, &e)) {
        cp_response_from_http_error(resp, &e);
        return;
    }
    cp_vec_input **vecs = calloc(rr.n_docs, sizeof *vecs);
    double q_ms = 0, d_ms = 0;
    cp_vec_input *qv = &rr.query;
    bool ok = vecs != NULL;
    for (size_t i = 0; ok && i < rr.n_docs; i++) vecs[i] = &rr.docs[i];
    ok = ok && encode_texts(s, CP_TEXT_QUERY, &qv, 1, &q_ms, resp) &&
         encode_texts(s, CP_TEXT_DOCUMENT, vecs, rr.n_docs, &d_ms, resp);
    for (size_t i = 0; ok && i < rr.n_docs; i++)
        if (rr.docs[i].dim != rr.query.dim) {
            cp_response_error(resp, 422, "DIMENSION_MISMATCH",
                              "documents[%zu] has %d dims, the query has %d", i, rr.docs[i].dim,
                              rr.query.dim);
            ok = false;
        }
    if (!vecs) cp_response_error(resp, 503, "OUT_OF_MEMORY", "out of memory");
    if (ok) rerank_respond(&rr, q_ms + d_ms, s->cfg.limits.max_response_bytes, resp);
    free(vecs);
    cp_rerank_request_free(&rr);
}

/* ---- document writes ---------------------------------------------------------------------- */

/* Writes run on the writer thread (http.c). Everything that can be refused (parsing, the
 * model, dims) is checked before the engine is called, and the engine refuses a bad batch
 * whole, so a bad request never changes the index. */
static bool writable_or_409(const cp_served_index *si, cp_response *resp)
{
    /* Found before a drop, reached after it: the index is gone (and its file may be). */
    if (atomic_load(&si->dropped)) {
        cp_response_error(resp, 404, "INDEX_NOT_FOUND", "index '%s' was dropped", si->name);
        return false;
    }
    if (si->writable) return true;
    cp_response_error(resp, 409, "INDEX_READ_ONLY",
                      "index '%s' is served read-only (--read-only, or another process holds its "
                      "writer lock)", si->name);
    return false;
}

/* A write the engine refused. CP_EREADONLY answers with writable_or_409's 409
 * INDEX_READ_ONLY (not the engine's READ_ONLY): one code for an index that cannot be written. */
static void respond_write_error(cp_status st, const cp_error *err, cp_response *resp)
{
    if (st == CP_EREADONLY)
        cp_response_error(resp, 409, "INDEX_READ_ONLY", "%s", err->message);
    else
        cp_response_from_status(resp, err);
}

/* Encode the documents that came with text only (as documents, not queries). */
/* Windowed index (colplaid/window.h): each text document as windows, with the index's
 * recorded settings; windows[i] / n_windows[i] get document i's. */
static bool encode_upsert_windows(cp_server *s, const cp_served_index *si, cp_upsert_request *ur,
                                  const cp_window_options *w, cp_window **windows,
                                  int32_t *n_windows, double *ms, cp_response *resp)
{
    double t0 = cp_now_seconds();
    for (size_t i = 0; i < ur->n_docs; i++) {
        cp_upsert_doc *d = &ur->docs[i];
        if (d->emb.data) continue;
        cp_embeddings e;
        cp_error err;
        cp_status st =
            cp_encoder_encode_windows(s->encoder, d->text, w, &e, &windows[i], &n_windows[i], &err);
        if (st) {
            *ms = ms_since(t0);
            cp_error_prefix(&err, "documents[%zu] of index '%s'", i, si->name);
            cp_response_from_status(resp, &err);
            return false;
        }
        take_embeddings(&d->emb, &e);
        fit_encoded(si, &d->emb);
        if (d->emb.n_tokens < 1) {
            *ms = ms_since(t0);
            cp_response_error(resp, 422, "EMPTY_DOCUMENT",
                              "documents[%zu].text encodes to no tokens", i);
            return false;
        }
    }
    *ms = ms_since(t0);
    return true;
}

static bool encode_upsert_texts(cp_server *s, const cp_served_index *si, cp_upsert_request *ur,
                                cp_window **windows, int32_t *n_windows, double *ms,
                                cp_response *resp)
{
    *ms = 0;
    size_t n_text = 0;
    for (size_t i = 0; i < ur->n_docs; i++) n_text += !ur->docs[i].emb.data;
    if (!n_text) return true;
    if (!s->encoder) {
        cp_response_error(resp, 422, "MODEL_NOT_LOADED",
                          "documents without embeddings need a model: start the server with "
                          "--model, or send embeddings");
        return false;
    }
    if (!model_matches(s, si, resp)) return false;
    if (si->encode_dim != si->dim) {
        cp_response_error(resp, 422, "DIMENSION_MISMATCH",
                          "the model encodes %d dims, index '%s' has %d: send embeddings",
                          si->encode_dim, si->name, si->dim);
        return false;
    }
    cp_window_options w;
    if (cp_index_windows(si->index, &w, NULL))
        return encode_upsert_windows(s, si, ur, &w, windows, n_windows, ms, resp);
    const char **texts = calloc(n_text, sizeof *texts);
    size_t j = 0;
    for (size_t i = 0; texts && i < ur->n_docs; i++)
        if (!ur->docs[i].emb.data) texts[j++] = ur->docs[i].text;
    cp_embeddings *out = encode_timed(s, CP_TEXT_DOCUMENT, texts, n_text, ms, resp);
    free(texts);
    if (!out) return false;
    j = 0;
    bool ok = true;
    for (size_t i = 0; i < ur->n_docs; i++) {
        cp_upsert_doc *d = &ur->docs[i];
        if (d->emb.data) continue;
        take_embeddings(&d->emb, &out[j++]);
        fit_encoded(si, &d->emb);
        /* A text of only punctuation encodes to no tokens: nothing to index. */
        if (ok && d->emb.n_tokens < 1) {
            cp_response_error(resp, 422, "EMPTY_DOCUMENT",
                              "documents[%zu].text encodes to no tokens", i);
            ok = false;
        }
    }
    free(out);
    return ok;
}

static void handle_upsert(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_served_index *si = req->idx;
    if (!writable_or_409(si, resp)) return;
    cp_upsert_request ur;
    cp_http_error he;
    if (!cp_parse_upsert(req->body, req->body_len, &s->cfg.limits, si->dim, &ur, &he)) {
        cp_response_from_http_error(resp, &he);
        return;
    }
    double encode_ms;
    cp_window **windows = calloc(ur.n_docs + 1, sizeof *windows);
    int32_t *n_windows = calloc(ur.n_docs + 1, sizeof *n_windows);
    cp_document *docs = calloc(ur.n_docs + 1, sizeof *docs);
    bool ok = windows && n_windows && docs;
    if (!ok) cp_response_error(resp, 503, "OUT_OF_MEMORY", "out of memory");
    if (!ok || !encode_upsert_texts(s, si, &ur, windows, n_windows, &encode_ms, resp)) {
        for (size_t i = 0; windows && i < ur.n_docs; i++)
            free(windows[i]);
        free(windows);
        free(n_windows);
        free(docs);
        cp_upsert_request_free(&ur);
        return;
    }
    for (size_t i = 0; i < ur.n_docs; i++) {
        docs[i].id = ur.docs[i].id;
        docs[i].text = ur.docs[i].text;
        docs[i].metadata_json = ur.docs[i].metadata_json;
        docs[i].embeddings = ur.docs[i].emb.data;
        docs[i].n_tokens = ur.docs[i].emb.n_tokens;
        docs[i].windows = windows[i];
        docs[i].n_windows = n_windows[i];
    }
    cp_upsert_result res;
    cp_error err;
    double t0 = cp_now_seconds();
    cp_status st = cp_index_upsert(si->index, docs, ur.n_docs, si->dim, &res, &err);
    double write_ms = ms_since(t0);
    free(docs);
    for (size_t i = 0; i < ur.n_docs; i++)
        free(windows[i]);
    free(windows);
    free(n_windows);
    size_t n = ur.n_docs;
    cp_upsert_request_free(&ur);
    if (st) {
        if (st == CP_EDIM)
            cp_response_error(resp, 422, "DIMENSION_MISMATCH", "%s", err.message);
        else
            respond_write_error(st, &err, resp);
        return;
    }
    cp_sb sb = {0};
    cp_sb_printf(&sb,
                 "{\"upserted\": %zu, \"added\": %zu, \"replaced\": %zu, \"tokens\": %lld, "
                 "\"outlier_tokens\": %lld, \"rebuild_advised\": %s, \"timing_ms\": "
                 "{\"encode\": %.3f, \"write\": %.3f}}",
                 n, res.n_added, res.n_replaced, (long long)res.n_tokens,
                 (long long)res.n_outlier_tokens, res.rebuild_advised ? "true" : "false",
                 encode_ms, write_ms);
    cp_response_set_body(resp, 200, &sb, "application/json");
}

static void handle_delete_documents(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_served_index *si = req->idx;
    if (!writable_or_409(si, resp)) return;
    cp_delete_request dr;
    cp_http_error he;
    if (!cp_parse_delete(req->body, req->body_len, &s->cfg.limits, &dr, &he)) {
        cp_response_from_http_error(resp, &he);
        return;
    }
    size_t n_deleted = 0;
    cp_error err;
    double t0 = cp_now_seconds();
    cp_status st = dr.filter_json
                       ? cp_index_delete_filter(si->index, dr.filter_json, &n_deleted, &err)
                       : cp_index_delete(si->index, (const char *const *)dr.ids, dr.n_ids,
                                         &n_deleted, &err);
    double write_ms = ms_since(t0);
    bool by_filter = dr.filter_json != NULL;
    cp_delete_request_free(&dr);
    if (st) {
        if (st == CP_EINVAL && by_filter)
            cp_response_error(resp, 400, "INVALID_FILTER", "%s", err.message);
        else
            respond_write_error(st, &err, resp);
        return;
    }
    cp_sb sb = {0};
    cp_sb_printf(&sb, "{\"deleted\": %zu, \"timing_ms\": {\"write\": %.3f}}", n_deleted, write_ms);
    cp_response_set_body(resp, 200, &sb, "application/json");
}

/* POST /v1/indexes/{name}/compact (admin scope, writer thread): what the automatic policy
 * does after writes, on demand. The body is ignored. */
static void handle_compact(const cp_request *req, cp_response *resp)
{
    cp_served_index *si = req->idx;
    if (!writable_or_409(si, resp)) return;
    cp_compact_result r = {0};
    cp_error err;
    double t0 = cp_now_seconds();
    cp_status st = cp_index_compact(si->index, NULL, &r, &err);
    if (st) {
        respond_write_error(st, &err, resp);
        return;
    }
    cp_sb sb = {0};
    cp_sb_printf(&sb, "{\"index\": ");
    cp_sb_json_string(&sb, si->name);
    cp_sb_printf(&sb,
                 ", \"segments_before\": %lld, \"segments_after\": %lld, "
                 "\"tombstones_removed\": %lld, \"ms\": %.3f}",
                 (long long)r.segments_before, (long long)r.segments_after,
                 (long long)r.tombstones_removed, ms_since(t0));
    cp_response_set_body(resp, 200, &sb, NULL);
}

/* POST /v1/indexes (admin scope, writer thread): a new empty index in --index-dir with the
 * codec of a served index. */
static void handle_create_index(cp_server *s, const cp_request *req, cp_response *resp)
{
    if (s->cfg.read_only) {
        cp_response_error(resp, 409, "INDEX_READ_ONLY",
                          "the server runs with --read-only: it creates no index");
        return;
    }
    if (!s->index_dir) {
        cp_response_error(resp, 409, "NO_INDEX_DIR",
                          "the server has no --index-dir: start it with --index-dir DIR to "
                          "create indexes over HTTP");
        return;
    }
    cp_create_index_request cr;
    cp_http_error he;
    if (!cp_parse_create_index(req->body, req->body_len, &s->cfg.limits, &cr, &he)) {
        cp_response_from_http_error(resp, &he);
        return;
    }
    cp_served_index *from = cp_server_index_get(s, cr.codec_from), *si = NULL;
    cp_error err;
    cp_status st = CP_OK;
    double t0 = cp_now_seconds();
    if (!from)
        cp_response_error(resp, 400, "INVALID_ARGUMENT",
                          "\"codec_from\": no index named \"%.128s\" is served (GET /v1/indexes "
                          "lists them)",
                          cr.codec_from);
    else if ((st = cp_server_create_index(s, cr.name, from, &si, &err)) == CP_EEXISTS)
        cp_response_error(resp, 409, "INDEX_EXISTS", "%s", err.message);
    else if (st == CP_EINVAL)
        cp_response_error(resp, 400, "INVALID_ARGUMENT", "%s", err.message);
    else if (st)
        cp_response_from_status(resp, &err);
    if (si) {
        cp_sb sb = {0};
        append_index_info(&sb, si);
        /* The index's info plus where it came from. */
        if (sb.len && sb.data[sb.len - 1] == '}') {
            sb.len--;
            cp_sb_append(&sb, ", \"codec_from\": ");
            cp_sb_json_string(&sb, from->name);
            cp_sb_printf(&sb, ", \"writable\": %s, \"ms\": %.3f}", si->writable ? "true" : "false",
                         ms_since(t0));
        }
        cp_response_set_body(resp, 201, &sb, "application/json");
        fprintf(stderr, "colplaid serve: index '%s' created with the codec of '%s'\n", si->name,
                from->name);
    }
    cp_served_index_release(si);
    cp_served_index_release(from);
    cp_create_index_request_free(&cr);
}

/* DELETE /v1/indexes/{name} (admin scope, writer thread): stop serving the index at once;
 * remove its file if it lives in --index-dir, once the requests using it are done. */
static void handle_drop_index(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_served_index *si = req->idx;
    if (atomic_load(&si->dropped)) {
        cp_response_error(resp, 404, "INDEX_NOT_FOUND", "index '%s' was dropped", si->name);
        return;
    }
    cp_drop_result r;
    double t0 = cp_now_seconds();
    /* Searches take milliseconds; a request still sending its body may hold the index for
     * up to --timeout: its file then goes when it ends (removal_pending). */
    cp_server_drop_index(s, si, s->cfg.timeout_s < 5 ? (double)s->cfg.timeout_s : 5.0, &r);
    if (r.kept && !strcmp(r.kept, "already dropped")) {
        cp_response_error(resp, 404, "INDEX_NOT_FOUND", "index '%s' was dropped", si->name);
        return;
    }
    cp_sb sb = {0};
    cp_sb_append(&sb, "{\"dropped\": ");
    cp_sb_json_string(&sb, si->name);
    cp_sb_append(&sb, ", \"path\": ");
    cp_sb_json_string(&sb, si->path);
    cp_sb_printf(&sb, ", \"file_removed\": %s, \"removal_pending\": %s, \"file_kept\": ",
                 r.file_removed ? "true" : "false", r.pending ? "true" : "false");
    if (r.kept) {
        char why[400];
        snprintf(why, sizeof why, "%s%s%s%s", r.kept, r.shared_with[0] ? " ('" : "", r.shared_with,
                 r.shared_with[0] ? "')" : "");
        cp_sb_json_string(&sb, why);
    } else {
        cp_sb_append(&sb, "null");
    }
    cp_sb_printf(&sb, ", \"ms\": %.3f}", ms_since(t0));
    cp_response_set_body(resp, 200, &sb, "application/json");
}

void cp_handle(cp_server *s, const cp_request *req, cp_response *resp)
{
    switch (req->route) {
    case CP_ROUTE_HEALTH: handle_health(s, resp); break;
    case CP_ROUTE_METRICS: handle_metrics(s, resp); break;
    case CP_ROUTE_OPENAPI: handle_openapi(resp); break;
    case CP_ROUTE_LIST_INDEXES: handle_list_indexes(s, resp); break;
    case CP_ROUTE_GET_INDEX: handle_get_index(req, resp); break;
    case CP_ROUTE_SEARCH: handle_search(s, req, resp); break;
    case CP_ROUTE_GET_DOCUMENT: handle_get_document(s, req, resp); break;
    case CP_ROUTE_ENCODE: handle_encode(s, req, resp); break;
    case CP_ROUTE_RERANK: handle_rerank(s, req, resp); break;
    case CP_ROUTE_PAGE: cp_handle_page(resp); break;
    case CP_ROUTE_EXPLAIN: cp_handle_explain(s, req, resp); break;
    case CP_ROUTE_UPSERT: handle_upsert(s, req, resp); break;
    case CP_ROUTE_DELETE_DOCUMENTS: handle_delete_documents(s, req, resp); break;
    case CP_ROUTE_COMPACT:
        handle_compact(req, resp);
        break;
    case CP_ROUTE_CREATE_INDEX:
        handle_create_index(s, req, resp);
        break;
    case CP_ROUTE_DROP_INDEX:
        handle_drop_index(s, req, resp);
        break;
    default: cp_response_error(resp, 404, "ROUTE_NOT_FOUND", "no such route"); break;
    }
}
