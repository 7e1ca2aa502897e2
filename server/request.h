/*
 * Request bodies of the HTTP API, parsed and validated as pure functions: bytes in, a
 * typed request or an HTTP error out. Nothing here touches the network, an index or the
 * model, so the fuzz target (tests/fuzz/fuzz_request.c) and the server share one code path.
 *
 * Checks done here: JSON syntax, types, unknown fields, finite numbers, base64 length and
 * shape, embedding dimensions against the expected dim, and the configured limits. Checks
 * that need the index or the model (unknown ids, a text query without a model) are the
 * handlers' job.
 *
 * Thread safety: all functions are reentrant; results belong to the caller.
 */
#ifndef CP_SERVER_REQUEST_H
#define CP_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colplaid/encoder.h"
#include "colplaid/error.h"
#include "colplaid/index.h"
#include "colplaid/server.h"

/* An error for the client: HTTP status, stable upper-case code, one-sentence message. */
typedef struct cp_http_error {
    int status;
    const char *code; /* static string */
    char message[CP_ERROR_MESSAGE_MAX];
} cp_http_error;

/* Fill e and return false, so parsers can `return cp_http_fail(...)`. */
bool cp_http_fail(cp_http_error *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* cp_limits (the configurable caps) and cp_limits_init: colplaid/server.h. */

/* Every body is checked by cp_json_check (util/cp_json.h) before cJSON parses it: one JSON
 * object and nothing after it, nesting at most CP_JSON_MAX_DEPTH, at most
 * lim->max_json_values values, valid UTF-8, no U+0000 in any string, no repeated key. cJSON's
 * allocations for one body are capped too (413 PAYLOAD_TOO_LARGE past the cap). */
/* 72: a search or delete whose filter nests $or / $and 32 levels (the filter language's
 * limit, index/filter.c) is about 68 JSON levels deep. */
enum { CP_JSON_MAX_DEPTH = 72 };

/* Embedding rows (queries, rerank inputs, upserted documents) must have a norm of at most
 * this, so that scores stay finite. */
#define CP_MAX_ROW_NORM 1e15

/* Route cJSON's allocations through the per-request budget (idempotent, thread-safe; the
 * parsers call it too). */
void cp_request_install_hooks(void);
/* The most bytes cJSON held for one body parsed on this thread since the last call; resets.
 * The server returns memory to the system (malloc_trim) after large requests. */
size_t cp_request_take_parse_peak(void);

/* A text, or token embeddings (n_tokens x dim float32, row-major). */
typedef struct cp_vec_input {
    char *text;
    float *data;
    int n_tokens;
    int dim;
    bool encoded; /* data came from text through the server's model (handlers.c) */
} cp_vec_input;

typedef struct cp_search_request {
    cp_vec_input *queries;
    size_t n_queries;
    int k;
    int ncells;          /* 0: default for k */
    float threshold;     /* NaN: default for k */
    int ndocs;           /* 0: default for k */
    float recall;        /* 0: the default target (CP_DEFAULT_RECALL), else in (0, 1] */
    bool exact;
    char *filter_json;   /* re-serialised filter object, or NULL */
    char **ids;          /* external ids to restrict to (has_ids) */
    size_t n_ids;
    bool has_ids;
    bool include_text, include_metadata;
    int mode;         /* CP_MODE_LATE (plaid or exact), CP_MODE_LEXICAL, CP_MODE_HYBRID */
    char **lex_texts; /* lexical and hybrid: the text of each query (n_queries) */
    cp_fusion fusion; /* hybrid: "fusion" (cp_fusion_init's defaults when absent) */
} cp_search_request;

enum { CP_MODE_LATE = 0, CP_MODE_LEXICAL, CP_MODE_HYBRID };

/* dim: the index's embedding dimension (embedding queries must match it). */
bool cp_parse_search(const char *body, size_t len, const cp_limits *lim, int dim,
                     cp_search_request *out, cp_http_error *e);
void cp_search_request_free(cp_search_request *req);

typedef struct cp_encode_request {
    char **texts;
    size_t n_texts;
    cp_text_kind kind;
    bool b64; /* format "b64": embeddings_b64 + shape instead of nested arrays */
} cp_encode_request;

bool cp_parse_encode(const char *body, size_t len, const cp_limits *lim, cp_encode_request *out,
                     cp_http_error *e);
void cp_encode_request_free(cp_encode_request *req);

typedef struct cp_rerank_request {
    cp_vec_input query;
    cp_vec_input *docs;
    size_t n_docs;
} cp_rerank_request;

/* Embedding inputs must agree on one dim among themselves (checked here); the model's dim
 * is checked by the handler. */
bool cp_parse_rerank(const char *body, size_t len, const cp_limits *lim, cp_rerank_request *out,
                     cp_http_error *e);
void cp_rerank_request_free(cp_rerank_request *req);

/* POST /v1/indexes/{name}/documents: {"documents": [{id, text?, embeddings? |
 * embeddings_b64 + shape, metadata?}]}. A document needs text or embeddings; with both, the
 * embeddings are indexed and the text stored. Ids must be unique within the batch (a batch
 * that names one id twice has no defined result, so it is refused whole). */
typedef struct cp_upsert_doc {
    char *id;
    char *text;          /* stored text, or NULL */
    char *metadata_json; /* re-serialised metadata object, or NULL */
    cp_vec_input emb;    /* emb.data NULL: encode text with the model */
} cp_upsert_doc;

typedef struct cp_upsert_request {
    cp_upsert_doc *docs;
    size_t n_docs;
} cp_upsert_request;

/* dim: the index's embedding dimension. Documents per request are capped by
 * lim->max_write_documents, tokens per document by lim->max_doc_tokens. */
bool cp_parse_upsert(const char *body, size_t len, const cp_limits *lim, int dim,
                     cp_upsert_request *out, cp_http_error *e);
void cp_upsert_request_free(cp_upsert_request *req);

/* DELETE /v1/indexes/{name}/documents: exactly one of {"ids": [...]} (non-empty strings, at
 * most lim->max_ids) or {"filter": {...}} (a non-empty filter object, so that "delete
 * everything" is never an accident). */
typedef struct cp_delete_request {
    char **ids;
    size_t n_ids;
    char *filter_json; /* re-serialised filter, or NULL */
} cp_delete_request;

bool cp_parse_delete(const char *body, size_t len, const cp_limits *lim, cp_delete_request *out,
                     cp_http_error *e);
void cp_delete_request_free(cp_delete_request *req);

/* Base64 (RFC 4648, padded) decoding; false for a length that is not a multiple of 4 or a
 * character outside the alphabet. *out is malloc'd (n_out bytes). */
bool cp_base64_decode(const char *in, size_t len, unsigned char **out, size_t *n_out);
/* Encoding; returns a malloc'd NUL-terminated string or NULL when out of memory. */
char *cp_base64_encode(const unsigned char *in, size_t len);

/* POST /v1/indexes/{name}/explain: {"query": "text", "id": "doc-id"}, both non-empty
 * strings (the query at most lim->max_text_bytes). */
typedef struct cp_explain_request {
    char *query;
    char *id;
} cp_explain_request;

bool cp_parse_explain(const char *body, size_t len, const cp_limits *lim, cp_explain_request *out,
                      cp_http_error *e);
void cp_explain_request_free(cp_explain_request *req);

/* POST /v1/indexes: {"name": "NEW", "codec_from": "SERVED"}, both non-empty strings of at
 * most 128 bytes (the handler checks that name can name an index file and that codec_from
 * is served). */
typedef struct cp_create_index_request {
    char *name;
    char *codec_from;
} cp_create_index_request;

bool cp_parse_create_index(const char *body, size_t len, const cp_limits *lim,
                           cp_create_index_request *out, cp_http_error *e);
void cp_create_index_request_free(cp_create_index_request *req);

#endif
