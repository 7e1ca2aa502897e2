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
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "colplaid/encoder.h"
#include "colplaid/index.h"
#include "colplaid/server.h"
#include "metrics.h"
#include "request.h"
#include "response.h"

/* A served index. The table of served indexes (cp_server.indexes) changes at run time
 * (POST /v1/indexes, DELETE /v1/indexes/{name}), so an entry is reference-counted: the table
 * holds one reference, and every request that found the entry by name holds one until its
 * handler is done (cp_server_index_get / cp_served_index_release). A dropped entry leaves
 * the table at once; it is freed, and its handle closed, with the last reference. */
typedef struct cp_served_index {
    atomic_int refs;
    char *name;
    char *path;
    cp_index *index; /* NULL once a drop has closed it */
    int dim;
    /* The model (cp_server.encoder) against the index's fingerprint, set when both are
     * there (cp_server_check_model): encode_dim, the dims text encodes to for it (those it
     * recorded: --dim); model_mismatch, the index records another model (served only with
     * --allow-model-mismatch: its text searches and upserts answer 409 MODEL_MISMATCH). */
    int encode_dim;
    bool model_mismatch;
    char mismatch[CP_ERROR_MESSAGE_MAX];
    /* Opened with CP_OPEN_WRITE. False with --read-only or when another process holds the
     * index's writer lock: writes then answer 409 INDEX_READ_ONLY. */
    bool writable;
    /* The file's identity: a second name for the same file (another path, a symlink, a
     * hard link) shares this entry's handle instead of opening it again. */
    dev_t dev;
    ino_t ino;
    /* The entry whose handle this one borrows (same file), retained; NULL: index is ours. */
    struct cp_served_index *shares;
    bool in_dir;         /* the file is NAME.db in --index-dir: a drop removes it */
    atomic_bool dropped; /* left the table: writes that reach it answer 404 */
    bool remove_on_free; /* dropped while still in use: the last release removes the file */
} cp_served_index;

/* The HTTP side of a running server: the read workers with their queue and the writer
 * thread with its queue (http.c). Created by cp_server_run, NULL otherwise. */
typedef struct cp_http cp_http;

/* The server object (public handle: colplaid/server.h). Everything a request touches hangs
 * off it; nothing in server/ keeps mutable process state except the stop signal (a signal
 * handler has no argument to reach an object through). */
struct cp_server {
    cp_server_config cfg;
    /* The served indexes, by name. indexes_lock guards the array; lookups retain the entry
     * under the read side, create and drop change the array under the write side (both
     * run on the writer thread, so they never race each other). */
    pthread_rwlock_t indexes_lock;
    cp_served_index **indexes;
    size_t n_indexes, cap_indexes;
    char *index_dir;     /* --index-dir, or NULL */
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
    atomic_llong header_timeouts;         /* connections closed: headers not in within --timeout */
    atomic_bool shutting_down;
    cp_rate_bucket anon_bucket; /* cfg.rate_limit without API keys (the polling thread's) */
};

/* A request as the handlers see it (already routed, authorised and read). */
typedef struct cp_request {
    cp_route route;
    cp_served_index *idx; /* for index routes: retained for the request (http.c) */
    const char *doc_id;   /* for the document route */
    const char *body;
    size_t body_len;
} cp_request;

/* Compare si's fingerprint with the loaded model (server.c): sets si->encode_dim and
 * si->model_mismatch; CP_EMODEL (with the index named) on a mismatch. */
cp_status cp_server_check_model(cp_server *s, cp_served_index *si, cp_error *err);

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

/* ---- the served-index table (server.c) ---- */

/* The entry served as name, retained (release it), or NULL. Thread-safe. */
cp_served_index *cp_server_index_get(cp_server *s, const char *name);
void cp_served_index_retain(cp_served_index *si);
/* NULL is fine. The last reference frees the entry: it closes its handle (or releases the
 * entry it shares one with) and removes the file if a drop asked for it. Thread-safe. */
void cp_served_index_release(cp_served_index *si);
/* Every served entry, retained, in table order (*n of them; free with
 * cp_server_indexes_release). NULL with *n 0 when there is none or memory ran out. */
cp_served_index **cp_server_indexes_list(cp_server *s, size_t *n);
void cp_server_indexes_release(cp_served_index **list, size_t n);

/* POST /v1/indexes: a new empty index NAME.db in --index-dir with the codec of the served
 * index from, opened for writing and served as name; *out retained. CP_EEXISTS when name is
 * served or its file exists; CP_EINVAL for a name that cannot name a file. Writer thread. */
cp_status cp_server_create_index(cp_server *s, const char *name, cp_served_index *from,
                                 cp_served_index **out, cp_error *err);

/* DELETE /v1/indexes/{name}: what became of the entry and its file. */
typedef struct cp_drop_result {
    bool file_removed;
    bool pending;     /* still in use after the wait: removed by the last request using it */
    const char *kept; /* why the file stays, or NULL */
    char shared_with[160];
} cp_drop_result;

/* Unserve si (the caller's reference stays the caller's) and, for an index in
 * --index-dir, remove its file once the requests using it are done (waiting up to
 * wait_s). Writer thread. */
void cp_server_drop_index(cp_server *s, cp_served_index *si, double wait_s, cp_drop_result *out);

/* Requests for si waiting in the write queue (http.c); 0 when the server is not running. */
size_t cp_http_queued_writes(cp_server *s, const cp_served_index *si);

#endif
