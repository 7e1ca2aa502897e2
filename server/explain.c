/*
 * POST /v1/indexes/{name}/explain: late interaction's own explanation of a score.
 *
 * Request:  {"query": "text", "id": "doc-id"}
 * Response: {"id", "score", "vectors": "index" | "model", "query_tokens": [{"position",
 *            "text", "doc_position", "doc_token", "similarity"}], "doc_tokens": [...],
 *            "timing_ms": {"encode", "score"}}
 *
 * The query is encoded with the loaded model (so explain needs --model). Token texts of
 * the document come from re-tokenizing its stored text with the same model (the static
 * model: words; BERT: word-pieces, with [CLS]/[D] markers). The similarities use the
 * vectors the index really scores (its stored, decompressed embeddings) whenever the
 * re-encoded document has the same number of tokens as the stored one, i.e. the index was
 * built from this text with this model; "vectors": "index" says so, and "score" is then the
 * MaxSim an exact search gives. Otherwise (an index built from embeddings of another model,
 * or a different truncation) the freshly encoded vectors are used and "vectors" is "model".
 * A document without stored text is explained with its stored vectors and no token texts.
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "strbuf.h"

static void append_token(cp_sb *sb, const cp_encoder *enc, const int32_t *ids, int32_t pos)
{
    const char *t = ids ? cp_encoder_token_text(enc, ids[pos]) : NULL;
    if (t) cp_sb_json_string(sb, t);
    else cp_sb_append(sb, "null");
}

/* The explanation of query q against document vectors dv (nd rows): the engine's MaxSim
 * with, per query token, the document token that gave it. */
static void explain_body(cp_sb *sb, const cp_encoder *enc, const char *ext_id,
                         const cp_embeddings *q, const float *dv, int32_t nd,
                         const int32_t *doc_ids, const char *source, double encode_ms, double t0,
                         const cp_lexical_explain *lx)
{
    size_t nq = (size_t)(q->n_tokens ? q->n_tokens : 1);
    int32_t *best = malloc(nq * sizeof *best);
    float *sim = malloc(nq * sizeof *sim);
    float total = 0.0f;
    if (!best || !sim ||
        cp_maxsim_tokens(q->data, q->n_tokens, dv, nd, q->dim, &total, best, sim, NULL)) {
        sb->oom = true;
        free(best);
        free(sim);
        return;
    }
    double score_ms = (cp_now_seconds() - t0) * 1000.0;
    cp_sb_append(sb, "{\"id\": ");
    cp_sb_json_string(sb, ext_id);
    cp_sb_printf(sb, ", \"score\": %.9g, \"vectors\": \"%s\", \"query_tokens\": [", (double)total,
                 source);
    for (int32_t i = 0; i < q->n_tokens; i++) {
        cp_sb_printf(sb, "%s{\"position\": %d, \"text\": ", i ? ", " : "", (int)i);
        append_token(sb, enc, q->token_ids, i);
        cp_sb_printf(sb, ", \"doc_position\": %d, \"doc_token\": ", (int)best[i]);
        if (best[i] >= 0) append_token(sb, enc, doc_ids, best[i]);
        else cp_sb_append(sb, "null");
        cp_sb_printf(sb, ", \"similarity\": %.9g}", (double)sim[i]);
    }
    cp_sb_append(sb, "], \"doc_tokens\": [");
    for (int32_t j = 0; j < nd; j++) {
        if (j) cp_sb_append(sb, ", ");
        append_token(sb, enc, doc_ids, j);
    }
    cp_sb_append(sb, "]");
    if (lx) { /* the index has a lexical side: which query terms the text matches */
        cp_sb_printf(sb, ", \"lexical\": {\"score\": %.9g, \"terms\": [", (double)lx->score);
        for (size_t i = 0; i < lx->n_terms; i++) {
            cp_sb_append(sb, i ? ", {\"term\": " : "{\"term\": ");
            cp_sb_json_string(sb, lx->terms[i]);
            cp_sb_printf(sb, ", \"matched\": %s}", lx->matched[i] ? "true" : "false");
        }
        cp_sb_append(sb, "]}");
    }
    cp_sb_printf(sb, ", \"timing_ms\": {\"encode\": %.3f, \"score\": %.3f}}", encode_ms, score_ms);
    free(best);
    free(sim);
}

void cp_handle_explain(cp_server *s, const cp_request *req, cp_response *resp)
{
    cp_explain_request er;
    cp_http_error he;
    if (!cp_parse_explain(req->body, req->body_len, &s->cfg.limits, &er, &he)) {
        cp_response_from_http_error(resp, &he);
        return;
    }
    const char *query = er.query, *id = er.id;
    cp_index *index = req->idx->index;
    cp_document_info info = {0};
    cp_embeddings q = {0}, d = {0};
    float *stored = NULL;
    int32_t n_stored = 0;
    cp_error err;
    cp_status st;
    if (!s->encoder) {
        cp_response_error(resp, 422, "MODEL_NOT_LOADED",
                          "explain encodes the query text: start the server with --model");
        goto done;
    }
    if (req->idx->model_mismatch) {
        cp_response_error(resp, 409, "MODEL_MISMATCH",
                          "%s. Text for this index is refused; record the server's model as the "
                          "index's with `colplaid index set-model`",
                          req->idx->mismatch);
        goto done;
    }
    st = cp_index_document_get(index, id, &info, &err);
    if (st == CP_ENOTFOUND) {
        cp_response_error(resp, 404, "DOCUMENT_NOT_FOUND", "index \"%s\" has no document \"%.200s\"",
                          req->idx->name, id);
        goto done;
    }
    if (st) {
        cp_response_from_status(resp, &err);
        goto done;
    }
    double t0 = cp_now_seconds();
    const char *qt = query;
    st = cp_encoder_encode(s->encoder, CP_TEXT_QUERY, &qt, 1, &q, &err);
    if (!st && info.text) {
        const char *dt = info.text;
        st = cp_encoder_encode(s->encoder, CP_TEXT_DOCUMENT, &dt, 1, &d, &err);
    }
    double encode_ms = (cp_now_seconds() - t0) * 1000.0;
    if (st) {
        cp_response_from_status(resp, &err);
        goto done;
    }
    cp_embeddings_truncate(&q, req->idx->encode_dim); /* an index built with --dim */
    cp_embeddings_truncate(&d, req->idx->encode_dim);
    if (q.dim != req->idx->dim) {
        cp_response_error(resp, 422, "DIMENSION_MISMATCH", "the model encodes %d dims, index \"%s\" has %d",
                          q.dim, req->idx->name, req->idx->dim);
        goto done;
    }
    t0 = cp_now_seconds();
    st = cp_index_document_embeddings(index, info.doc_id, &stored, &n_stored, &err);
    if (st) {
        cp_response_from_status(resp, &err);
        goto done;
    }
    cp_lexical_explain lx = {0};
    bool has_lx = cp_index_has_lexical(index);
    if (has_lx && (st = cp_index_lexical_explain(index, query, info.doc_id, &lx, &err))) {
        cp_response_from_status(resp, &err);
        goto done;
    }
    const cp_lexical_explain *lxp = has_lx ? &lx : NULL;
    cp_sb sb = {.limit = s->cfg.limits.max_response_bytes};
    if (!info.text)
        explain_body(&sb, s->encoder, id, &q, stored, n_stored, NULL, "index", encode_ms, t0, lxp);
    else if (d.n_tokens == n_stored)
        explain_body(&sb, s->encoder, id, &q, stored, n_stored, d.token_ids, "index", encode_ms, t0,
                     lxp);
    else
        explain_body(&sb, s->encoder, id, &q, d.data, d.n_tokens, d.token_ids, "model", encode_ms,
                     t0, lxp);
    cp_lexical_explain_free(&lx);
    cp_response_set_body(resp, 200, &sb, "application/json");
done:
    free(stored);
    cp_embeddings_free(&q);
    cp_embeddings_free(&d);
    cp_document_info_free(&info);
    cp_explain_request_free(&er);
}
