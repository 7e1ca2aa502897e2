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
/* The same with token embeddings: n_tokens x dim float32, row-major, sent as base64. */
int cpc_search_embeddings(cpc_client *c, const char *index, const float *embeddings, int n_tokens,
                          int dim, int k, bool include_text, cpc_results *out, cpc_error *err);
void cpc_results_free(cpc_results *r);

/* GET /v1/indexes/{index}/documents/{id} (the id is percent-encoded here). */
int cpc_get_document(cpc_client *c, const char *index, const char *id, cpc_document *out,
                     cpc_error *err);
void cpc_document_free(cpc_document *d);

#ifdef __cplusplus
}
#endif

#endif
