/*
 * The HTTP server behind `colplaid serve`.
 *
 * Threading model (measured and justified in docs/http-api.md):
 * - libmicrohttpd runs ONE internal polling thread (epoll) that accepts connections, reads
 *   headers and bodies and writes responses. It never blocks on work, so slow clients
 *   (slowloris) cost only a socket and a timeout, never a worker.
 * - Cheap routes (health, metrics, openapi, index info, every rejection before parsing)
 *   are answered inline on that thread.
 * - Work routes (search, document get, encode, rerank) are handed to a bounded queue and a
 *   fixed pool of worker threads: the connection is suspended (MHD_suspend_connection)
 *   until a worker has built the response, then resumed. A full queue is answered at once
 *   with 503 + Retry-After, so overload is visible and bounded instead of piling up.
 *   A worker taking a text search also takes the searches queued behind it and encodes
 *   their texts in one encoder call (--encode-batch), then puts them back for any worker
 *   to search.
 * - Write routes (document upsert / delete) go to a second bounded queue served by ONE
 *   writer thread, so writes are serialised (the engine serialises per index anyway) and
 *   never occupy the read workers; a full write queue answers 503 + Retry-After. After
 *   answering a successful write the writer thread runs the automatic compaction policy
 *   (cp_index_maybe_compact), off the request path.
 * - Indexes are read through the engine's immutable snapshots (cp_index_search is
 *   thread-safe); the encoder is read-only and shared.
 *
 * Handlers (handlers.c) are plain functions from a parsed request to a response, so they
 * can run on either kind of thread.
 */
#ifndef CP_SERVER_H
#define CP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "colplaid/encoder.h"
#include "colplaid/index.h"
#include "colplaid/server.h"
#include "metrics.h"
#include "request.h"
#include "response.h"

typedef struct cp_served_index {
    char *name;
    char *path;
    cp_index *index;
    int dim;
    /* Opened with CP_OPEN_WRITE. False with --read-only or when another process holds the
     * index's writer lock: writes then answer 409 INDEX_READ_ONLY. */
    bool writable;
    /* The file's identity: a second name for the same file (another path, a symlink, a
     * hard link) shares this entry's handle instead of opening it again. */
    dev_t dev;
    ino_t ino;
    bool borrowed; /* index belongs to an earlier entry (same file): never closed here */
} cp_served_index;

/* The HTTP side of a running server: the read workers with their queue and the writer
 * thread with its queue (http.c). Created by cp_server_run, NULL otherwise. */
typedef struct cp_http cp_http;

/* The server object (public handle: colplaid/server.h). Everything a request touches hangs
 * off it; nothing in server/ keeps mutable process state except the stop signal (a signal
 * handler has no argument to reach an object through). */
struct cp_server {
    cp_server_config cfg;
    cp_served_index *indexes;
    size_t n_indexes, cap_indexes;
    cp_encoder *encoder; /* may be NULL */
    cp_auth *auth;       /* NULL: no keys, loopback only */
    cp_metrics *metrics;
    cp_http *http;
    double start_time;   /* monotonic seconds */
    int64_t start_wall;  /* Unix time at start (request ids) */
    long pid;            /* request ids; read once, not per request */
    atomic_ullong request_seq; /* request ids within a run */
    atomic_llong in_flight;
    atomic_llong queue_len;
    atomic_llong write_queue_len;
    atomic_llong writes_compacted; /* automatic compactions run after writes */
    atomic_llong encode_batches;   /* encoder calls shared by several text searches */
    atomic_llong encode_batched_requests; /* the searches those calls served */
    atomic_bool shutting_down;
    cp_rate_bucket anon_bucket; /* cfg.rate_limit without API keys (the polling thread's) */
};

/* A request as the handlers see it (already routed, authorised and read). */
typedef struct cp_request {
    cp_route route;
    cp_served_index *idx; /* for index routes */
    const char *doc_id;   /* for the document route */
    const char *body;
    size_t body_len;
} cp_request;

/* Run the handler of req->route (handlers.c). */
void cp_handle(cp_server *s, const cp_request *req, cp_response *resp);

/* A search split in steps so that a worker can encode the texts of several queued
 * searches in one encoder call (http.c): prepare (parse; NULL with resp filled on a bad
 * request), encode_batch (best effort: texts it could not encode together stay, and
 * cp_search_run encodes them alone), run (encode what is left, search, respond). Together
 * they answer exactly as cp_handle does for CP_ROUTE_SEARCH. Only cp_search_prepare reads
 * req->body; the job keeps req->idx. */
typedef struct cp_search_job cp_search_job;
cp_search_job *cp_search_prepare(cp_server *s, const cp_request *req, cp_response *resp);
size_t cp_search_job_texts(const cp_search_job *job); /* text queries not yet encoded */
void cp_search_encode_batch(cp_server *s, cp_search_job **jobs, size_t n);
void cp_search_run(cp_server *s, cp_search_job *job, cp_response *resp);
void cp_search_job_free(cp_search_job *job); /* NULL is fine */

/* The embedded OpenAPI document (generated from server/openapi.json at build time). */
extern const char cp_openapi_json[];
extern const size_t cp_openapi_json_len;

/* The browser search page at GET / (page.c; generated from server/page.html at build time). */
extern const char cp_page_html[];
extern const size_t cp_page_html_len;
void cp_handle_page(cp_response *resp);

/* POST /v1/indexes/{name}/explain (explain.c): which document token each query token
 * matched, and how strongly. */
void cp_handle_explain(cp_server *s, const cp_request *req, cp_response *resp);

double cp_now_seconds(void);

#endif
