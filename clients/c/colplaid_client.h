/*
 * colplaid_client: a small C client for the colplaid HTTP API (libcurl + cJSON).
 *
 *   cpc_client *c = cpc_client_new("http://127.0.0.1:8080", NULL);
 *   cpc_results r;
 *   cpc_error err;
 *   if (cpc_search_text(c, "scifact", "what causes rain", 10, true, &r, &err) == 0) {
 *       for (size_t i = 0; i < r.n_hits; i++) printf("%f %s\n", r.hits[i].score, r.hits[i].id);
 *       cpc_results_free(&r);
 *   } else {
 *       fprintf(stderr, "%s (HTTP %d): %s\n", err.code, err.status, err.message);
 *   }
 *   cpc_client_free(c);
 *
 * Routes: health, search (text or embeddings), documents (get, upsert, delete), encode and
 * rerank; the index administration routes do not exist in the API (use the CLI).
 *
 * Errors are values: every call returns 0 on success or -1 and fills *err with the HTTP
 * status and the server's error code and message (status 0, code "TRANSPORT" when the
 * server could not be reached). Answers 503 / 429 are retried (up to 3 times, waiting the
 * server's Retry-After or 0.2 s doubling). The connection is kept alive between calls.
 *
 * Thread safety: a cpc_client is used by one thread at a time; create one per thread.
 * Call curl_global_init() once at program start if other threads use libcurl (otherwise
 * cpc_client_new does it).
 */
#ifndef COLPLAID_CLIENT_H
#define COLPLAID_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpc_client cpc_client;

typedef struct cpc_error {
    int status;         /* HTTP status; 0 when no answer was received */
    char code[64];      /* the server's code ("INDEX_NOT_FOUND"), or TRANSPORT / BAD_RESPONSE */
    char message[512];  /* the server's message, or what failed */
} cpc_error;

typedef struct cpc_hit {
    char *id;
    float score;
    char *text; /* NULL unless requested and stored */
    /* Windowed indexes (index build --window): the characters [passage_start, passage_end)
     * of the hit's best window, in Unicode code points from the start of its stored text;
     * both -1 when the hit has no passage. */
    long passage_start, passage_end;
} cpc_hit;

typedef struct cpc_results {
    cpc_hit *hits;
    size_t n_hits;
    double encode_ms, search_ms; /* as reported by the server */
} cpc_results;

typedef struct cpc_document {
    char *id;
    char *text;          /* NULL if none */
    char *metadata_json; /* NULL if none */
    int n_tokens;
} cpc_document;

/* base_url: "http://host:port" (a trailing slash is fine); api_key may be NULL.
 * NULL when out of memory. */
cpc_client *cpc_client_new(const char *base_url, const char *api_key);
void cpc_client_free(cpc_client *c);
/* Per-request timeout (default 60000 ms). */
void cpc_client_set_timeout_ms(cpc_client *c, long ms);

/* GET /health: *json gets the answer (malloc'd; free it). */
int cpc_health(cpc_client *c, char **json, cpc_error *err);

/* POST /v1/indexes/{index}/search with one text query (encoded by the server's model). */
int cpc_search_text(cpc_client *c, const char *index, const char *query, int k, bool include_text,
                    cpc_results *out, cpc_error *err);
/* The same in a search mode: "plaid" (the default, NULL), "exact", "lexical" (BM25 over the
 * index's lexical side) or "hybrid" (both fused; docs/hybrid.md). */
int cpc_search_text_mode(cpc_client *c, const char *index, const char *query, int k,
                         bool include_text, const char *mode, cpc_results *out, cpc_error *err);
/* The same with token embeddings: n_tokens x dim float32, row-major, sent as base64. */
int cpc_search_embeddings(cpc_client *c, const char *index, const float *embeddings, int n_tokens,
                          int dim, int k, bool include_text, cpc_results *out, cpc_error *err);
void cpc_results_free(cpc_results *r);

/* GET /v1/indexes/{index}/documents/{id} (the id is percent-encoded here). */
int cpc_get_document(cpc_client *c, const char *index, const char *id, cpc_document *out,
                     cpc_error *err);
void cpc_document_free(cpc_document *d);

/* A query or document as the API takes it: a text (encoded by the server's model), or token
 * embeddings (n_tokens x dim float32, row-major, sent as base64) when text is NULL. */
typedef struct cpc_input {
    const char *text;
    const float *embeddings;
    int n_tokens, dim;
} cpc_input;

/* Token embeddings as the server returned them: n_tokens x dim float32, row-major. */
typedef struct cpc_embeddings {
    float *data;
    int n_tokens, dim;
} cpc_embeddings;

/* POST /v1/encode: the token embeddings of n texts, one cpc_embeddings per text in *out
 * (malloc'd; free with cpc_embeddings_free(*out, n)). kind: "query" or "document". */
int cpc_encode(cpc_client *c, const char *const *texts, size_t n, const char *kind,
               cpc_embeddings **out, cpc_error *err);
void cpc_embeddings_free(cpc_embeddings *e, size_t n);

/* One reranked document: its position in the request and its MaxSim score. */
typedef struct cpc_ranked {
    size_t index;
    float score;
} cpc_ranked;

/* POST /v1/rerank: n documents scored against the query, best first as the server orders
 * them; *out gets n entries (malloc'd; free it). */
int cpc_rerank(cpc_client *c, const cpc_input *query, const cpc_input *documents, size_t n,
               cpc_ranked **out, cpc_error *err);

/* A document to insert or replace by id: text and/or embeddings (as cpc_input; with both,
 * the embeddings are indexed and the text stored; text alone is encoded by the server),
 * metadata_json a JSON object or NULL. */
typedef struct cpc_write_document {
    const char *id;
    cpc_input content;
    const char *metadata_json;
} cpc_write_document;

typedef struct cpc_write_result {
    long upserted, added, replaced, tokens; /* upserted = added + replaced */
    long deleted;                           /* deletes only */
    bool rebuild_advised; /* centroid drift says a rebuild would restore quality */
} cpc_write_result;

/* POST /v1/indexes/{index}/documents: one transaction, durable when this returns 0. */
int cpc_upsert(cpc_client *c, const char *index, const cpc_write_document *docs, size_t n,
               cpc_write_result *out, cpc_error *err);
/* DELETE /v1/indexes/{index}/documents by ids (unknown ids are not counted) ... */
int cpc_delete_ids(cpc_client *c, const char *index, const char *const *ids, size_t n,
                   cpc_write_result *out, cpc_error *err);
/* ... or by a metadata filter (a JSON object, see docs/http-api.md). */
int cpc_delete_filter(cpc_client *c, const char *index, const char *filter_json,
                      cpc_write_result *out, cpc_error *err);

#ifdef __cplusplus
}
#endif

#endif
