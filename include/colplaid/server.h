/*
 * colplaid HTTP server: the library behind `colplaid serve` (cli/cmd_serve.c), for any
 * program that wants to serve indexes over the HTTP API of docs/http-api.md.
 *
 * Life cycle: cp_server_config_init, adjust the config, cp_server_new; then
 * cp_server_add_index for each index, optionally cp_server_load_api_keys and
 * cp_server_load_model; cp_server_run blocks until SIGTERM / SIGINT and drains; then
 * cp_server_free. Progress lines (indexes opened, the address it listens on) and one JSON
 * access-log line per request go to stderr, prefixed "colplaid serve: ".
 *
 * Conventions as in the engine (colplaid_index.h): fallible calls return a cp_status and
 * fill the optional cp_error. A cp_server is set up from one thread; once running, its
 * own threads serve requests. One running server per process (it installs the SIGTERM /
 * SIGINT handlers).
 */
#ifndef COLPLAID_SERVER_H
#define COLPLAID_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "colplaid/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Caps on what one request may ask for (the --max-* options of `colplaid serve`). */
typedef struct cp_limits {
    size_t max_body_bytes; /* request body */
    int max_queries;       /* queries per search request, texts per encode request */
    int max_k;
    int max_query_tokens;    /* rows of one query's embeddings */
    int max_documents;       /* documents per rerank request */
    int max_doc_tokens;      /* rows of one rerank document's embeddings */
    int max_ids;             /* entries of a search's "ids" */
    size_t max_text_bytes;   /* one text */
    int max_write_documents; /* documents per upsert request */
    size_t max_json_values;  /* values (numbers, strings, ... arrays, objects) in one body */
    size_t max_response_bytes; /* a response body; larger ones answer 422 RESPONSE_TOO_LARGE */
} cp_limits;

/* The defaults documented in docs/http-api.md. */
void cp_limits_init(cp_limits *lim);

typedef struct cp_server_config {
    const char *host; /* IPv4 / IPv6 address or "localhost"; must outlive the server */
    int port;         /* 0: a free port, printed in the "listening on" line */
    int threads;      /* workers */
    int queue_depth;  /* requests that may wait for a worker */
    int write_queue;  /* write requests that may wait for the writer thread */
    bool read_only;   /* never take an index's writer lock */
    int timeout_s;    /* idle connection timeout (slow clients) */
    int max_connections;
    int shutdown_grace_s;
    bool access_log;
    int encode_batch; /* text searches encoded in one encoder call at most; 1: off */
    /* Requests per second per API key (a token bucket with a burst of one second's worth)
     * for keys without their own "rate=N"; without API keys, for all requests together.
     * 0: unlimited. Over the rate: 429 RATE_LIMITED with Retry-After. */
    double rate_limit;
    /* After a successful write the writer thread compacts an index whose tombstones pass
     * this share of its document rows (default 0.2); 1 turns the automatic policy off. */
    double auto_compact_fraction;
    /* Serve indexes whose recorded model fingerprint is not the --model's (default false:
     * cp_server_load_model refuses with CP_EMODEL). Their text searches and text upserts
     * still answer 409 MODEL_MISMATCH; embeddings are served. */
    bool allow_model_mismatch;
    cp_limits limits;
} cp_server_config;

/* The defaults of `colplaid serve`: 127.0.0.1:8080, a worker per core, queue 256, write
 * queue 64, timeout 30 s, 1000 connections, grace 30 s, access log on, encode batch 32, automatic compaction
 * above 20 % tombstones. */
void cp_server_config_init(cp_server_config *cfg);

typedef struct cp_server cp_server;

/* A server with cfg (copied) and no index yet. */
cp_status cp_server_new(const cp_server_config *cfg, cp_server **out, cp_error *err);
void cp_server_free(cp_server *s); /* NULL is fine; not while cp_server_run runs */

/* Whether name may name an index in URLs: 1-128 of letters, digits, '_', '-', '.'. */
bool cp_server_index_name_valid(const char *name);

/* Open the index at path and serve it as name. It is opened for writing unless the config
 * says read_only; when another process holds its writer lock or the file is not writable it
 * is served read-only (writes then answer 409), and the progress line says why. CP_EINVAL
 * for an invalid name, CP_EEXISTS when name is taken, else the engine's error. */
cp_status cp_server_add_index(cp_server *s, const char *name, const char *path, cp_error *err);

/* Serve every DIR/NAME.db as NAME (names starting with a letter or digit; other files are
 * skipped with a warning line), and create the indexes of POST /v1/indexes there as
 * NAME.db; DELETE /v1/indexes/{name} removes the files of those indexes (an index given with
 * cp_server_add_index is only unserved). Call after cp_server_add_index: a name that is
 * taken already is CP_EEXISTS. CP_ENOTFOUND when dir is not a directory, CP_EREADONLY when
 * it is not writable (unless the config says read_only). */
cp_status cp_server_add_index_dir(cp_server *s, const char *dir, cp_error *err);

/* Require API keys: a file of "KEY SCOPE" lines (docs/operations.md). Without keys the
 * server only listens on loopback addresses. */
cp_status cp_server_load_api_keys(cp_server *s, const char *path, cp_error *err);

/* Load the model for text queries, /v1/encode and /v1/rerank texts; encoder_threads is the
 * number of threads one encode call may use. Every served index that records a model
 * fingerprint must record this model's (cp_encoder_match): else CP_EMODEL naming the index,
 * unless the config allows mismatches (a warning line; text to that index answers 409).
 * An index built with --dim D gets text encoded to D dims. An index of another dimension
 * without a fingerprint gets a warning line: text queries to it are refused. */
cp_status cp_server_load_model(cp_server *s, const char *model_dir, int encoder_threads,
                               cp_error *err);

/* Listen and serve until SIGTERM or SIGINT, then finish in-flight and queued requests (up
 * to shutdown_grace_s) and return CP_OK. CP_EINVAL when the host is not an address or is
 * not loopback without API keys; another status when threads cannot start or the port
 * cannot be bound. */
cp_status cp_server_run(cp_server *s, cp_error *err);

#ifdef __cplusplus
}
#endif
#endif
