/*
 * libmicrohttpd glue: routing, authorisation, body limits, the bounded worker queue with
 * suspended connections, request ids, access logs, metrics and graceful shutdown. The
 * threading model is described in server.h.
 *
 * Life of a request (one conn_ctx per request):
 *   1st callback   headers known: route, method, auth, Content-Length checked; a rejection
 *                  is queued at once (MHD then skips the body and closes the connection).
 *   body callbacks append to ctx->body up to --max-body-bytes.
 *   last callback  cheap routes are answered inline; work routes are pushed to the queue
 *                  and the connection suspended (503 + Retry-After if the queue is full).
 *   worker         runs cp_handle, stores the response, resumes the connection (a text
 *                  search may first be encoded together with those queued behind it:
 *                  run_batch).
 *   next callback  queues the stored response.
 *   completed      one access-log line, metrics, ctx freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server.h"
#include "strbuf.h"

enum { REQUEST_ID_MAX = 64, BODY_HINT_MAX = 1 << 20, TRIM_AFTER_BYTES = 4 << 20 };

typedef enum { CTX_READING, CTX_QUEUED, CTX_DONE } ctx_state;

typedef struct conn_ctx {
    cp_server *s;
    struct MHD_Connection *conn;
    ctx_state state;
    cp_request req;
    cp_response resp;
    char method[8];
    char *path;
    char *doc_id;
    char request_id[REQUEST_ID_MAX + 1];
    char *body;
    size_t body_len, body_cap;
    size_t bytes_seen;
    size_t body_hint; /* Content-Length, if declared and at most BODY_HINT_MAX */
    bool too_large;
    int key_line;
    size_t work_bytes; /* the most cJSON held while parsing this request's body */
    double t_start;
    cp_search_job *job; /* a search parsed (and maybe encoded) by a worker, waiting */
} conn_ctx;

/* ---- worker pool with a bounded queue ----------------------------------------------------- */

/* A bounded FIFO of suspended requests, shared by the read pool and the write queue. Its
 * length is mirrored in an atomic (the server's queue_len / write_queue_len) that /metrics
 * and /health read without taking the queue's mutex. Callers hold that mutex. */
typedef struct ctx_ring {
    conn_ctx **slot;
    size_t cap, head, len;
    atomic_llong *mirror;
} ctx_ring;

static bool ring_init(ctx_ring *r, size_t cap, atomic_llong *mirror)
{
    r->slot = calloc(cap, sizeof *r->slot);
    r->cap = cap;
    r->mirror = mirror;
    return r->slot != NULL;
}

static bool ring_full(const ctx_ring *r) { return r->len == r->cap; }

static void ring_push(ctx_ring *r, conn_ctx *ctx)
{
    r->slot[(r->head + r->len) % r->cap] = ctx;
    r->len++;
    atomic_fetch_add(r->mirror, 1);
}

static void ring_push_front(ctx_ring *r, conn_ctx *ctx)
{
    r->head = (r->head + r->cap - 1) % r->cap;
    r->slot[r->head] = ctx;
    r->len++;
    atomic_fetch_add(r->mirror, 1);
}

/* The oldest entry, removed; the ring must not be empty. */
static conn_ctx *ring_pop(ctx_ring *r)
{
    conn_ctx *ctx = r->slot[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    atomic_fetch_sub(r->mirror, 1);
    return ctx;
}

/* Idle workers wait on their own condition variable, on a stack: a new request wakes the
 * worker that went idle last, whose caches still hold the index's hot data. One shared
 * condition variable woke them in turn, and on one connection every request then ran on
 * a core whose caches the previous request had not warmed (measured: search 3.44 ms in
 * the server with 2 workers, 3.23 ms with 1, against 2.97 ms in `colplaid eval`). */
typedef struct pool {
    pthread_mutex_t mu;
    ctx_ring q;
    pthread_cond_t *wake; /* one per worker */
    bool *on_stack;       /* the worker waits for a job and no one has woken it yet */
    int *idle_stack;      /* worker ids, the most recently idle on top */
    int idle;             /* workers on the stack */
    int n_wake;           /* condition variables initialised */
    bool stop;
    pthread_t *threads;
    int n_threads;
    atomic_int next_worker_id;
} pool;

/* Writes get their own queue and one thread: serialising them here costs nothing (the
 * engine holds one writer per index anyway), a burst of large upserts cannot starve the
 * read workers, and the write queue's bound is independent of the read queue's. */
typedef struct write_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ctx_ring q;
    bool stop;
    pthread_t thread;
    bool started;
} write_queue;

/* The server's HTTP state (server.h: cp_server.http); the MHD callbacks reach it through
 * their conn_ctx's server. */
/* ---- the header deadline ----------------------------------------------------------------- */

/* libmicrohttpd's connection timeout is an idle timeout: request headers trickled a byte a
 * second never trip it. Every connection gets a record (MHD_OPTION_NOTIFY_CONNECTION) with
 * its socket and the time its current request began (accept, or the end of the previous
 * request on a kept-alive connection); the access handler marks it once the headers are
 * complete. A sweeper thread shuts down the socket of a connection whose headers are not
 * complete within --timeout, and the polling thread then closes it as it closes any
 * connection its peer hung up. The body has its own deadline (on_request). */
typedef struct conn_rec {
    struct conn_rec *prev, *next;
    int fd;
    double since;      /* monotonic seconds */
    bool headers_done; /* the current request's headers are in */
    bool swept;        /* shut down by the sweeper */
} conn_rec;

typedef struct header_guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    conn_rec *head;
    bool stop;
    pthread_t thread;
    bool started;
} header_guard;

struct cp_http {
    pool pool;
    write_queue wq;
    header_guard hg;
};

/* Wake up to n idle workers, the most recently idle first. Called with p->mu held. */
static void wake_idle(pool *p, int n)
{
    while (n-- > 0 && p->idle > 0) {
        int w = p->idle_stack[--p->idle];
        p->on_stack[w] = false;
        pthread_cond_signal(&p->wake[w]);
    }
}

/* The next queued request for worker `me`; NULL once stop is requested and the queue is
 * empty. A woken worker may find the job taken by one that was busy: it waits again. */
static conn_ctx *pool_take(pool *p, int me)
{
    pthread_mutex_lock(&p->mu);
    while (!p->q.len && !p->stop) {
        p->idle_stack[p->idle++] = me;
        p->on_stack[me] = true;
        while (p->on_stack[me] && !p->stop)
            pthread_cond_wait(&p->wake[me], &p->mu);
    }
    conn_ctx *ctx = p->q.len ? ring_pop(&p->q) : NULL;
    pthread_mutex_unlock(&p->mu);
    return ctx;
}

/* The answer of ctx is built: let go of its index (a drop waits for the requests using the
 * index, not for their clients to read the answers) and resume its connection. */
static void finish(conn_ctx *ctx)
{
    cp_served_index_release(ctx->req.idx);
    ctx->req.idx = NULL;
    ctx->state = CTX_DONE;
    /* The suspend happened under the queue's mutex before this job could be taken, so the
     * connection is suspended here. */
    MHD_resume_connection(ctx->conn);
}

/* Answer ctx (its parsed search, or its route's handler) and resume its connection. */
static void pool_finish(cp_server *s, conn_ctx *ctx)
{
    if (ctx->job) {
        cp_search_run(s, ctx->job, &ctx->resp);
        cp_search_job_free(ctx->job);
        ctx->job = NULL;
    } else {
        cp_handle(s, &ctx->req, &ctx->resp);
    }
    ctx->work_bytes += cp_request_take_parse_peak();
    finish(ctx);
}

static bool wants_batch(const cp_server *s, const conn_ctx *ctx)
{
    return s->encoder && s->cfg.encode_batch > 1 && ctx->req.route == CP_ROUTE_SEARCH && !ctx->job;
}

/* Up to max more queued searches that are not parsed yet, taken from the head of the
 * queue into out. Only what is already waiting: an idle server never holds a request back
 * to fill a batch, so one connection's latency is unchanged. Idle workers are left their
 * share of the queue, so that they encode their own batches in parallel instead of
 * waiting for this one. */
static size_t pool_take_searches(cp_server *s, conn_ctx **out, size_t max)
{
    pool *p = &s->http->pool;
    size_t n = 0;
    pthread_mutex_lock(&p->mu);
    size_t share = (p->q.len + (size_t)p->idle) / ((size_t)p->idle + 1);
    if (share < max) max = share;
    while (n < max && p->q.len && wants_batch(s, p->q.slot[p->q.head]))
        out[n++] = ring_pop(&p->q);
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Put parsed requests back at the head of the queue (in order) for any worker to search;
 * returns how many fitted (new arrivals may have taken the room meanwhile). */
static size_t pool_push_front(pool *p, conn_ctx **ctxs, size_t n)
{
    pthread_mutex_lock(&p->mu);
    size_t room = p->q.cap - p->q.len, put = n < room ? n : room;
    for (size_t i = put; i-- > 0;)
        ring_push_front(&p->q, ctxs[i]);
    wake_idle(p, (int)put);
    pthread_mutex_unlock(&p->mu);
    return put;
}

/* Parse ctx's search; false if it was answered (a parse error). */
static bool prepare(cp_server *s, conn_ctx *ctx)
{
    ctx->job = cp_search_prepare(s, &ctx->req, &ctx->resp);
    ctx->work_bytes += cp_request_take_parse_peak();
    if (ctx->job) return true;
    finish(ctx);
    return false;
}

/*
 * Text searches queued together are encoded in one encoder call: BERT then streams its
 * weights once per batch instead of once per request. The worker that takes a text search
 * also takes the searches queued behind it, parses them, encodes all their texts at once,
 * searches the first and puts the others back at the head of the queue, so both workers
 * share the searches. Requests without texts that came along are put back too.
 */
static void run_batch(cp_server *s, conn_ctx *first)
{
    if (!prepare(s, first)) return;
    if (!cp_search_job_texts(first->job)) {
        pool_finish(s, first);
        return;
    }
    enum { BATCH_MAX = 64 };
    conn_ctx *taken[BATCH_MAX], *rest[BATCH_MAX], *plain[BATCH_MAX];
    cp_search_job *jobs[BATCH_MAX];
    size_t max = (size_t)s->cfg.encode_batch < BATCH_MAX ? (size_t)s->cfg.encode_batch : BATCH_MAX;
    size_t n_taken = pool_take_searches(s, taken, max - 1), n = 0, n_plain = 0;
    jobs[n++] = first->job;
    for (size_t i = 0; i < n_taken; i++) {
        if (!prepare(s, taken[i])) continue; /* answered: ctx may be gone already */
        if (cp_search_job_texts(taken[i]->job)) {
            rest[n - 1] = taken[i];
            jobs[n++] = taken[i]->job;
        } else {
            plain[n_plain++] = taken[i];
        }
    }
    if (n > 1) {
        cp_search_encode_batch(s, jobs, n);
        atomic_fetch_add(&s->encode_batches, 1);
        atomic_fetch_add(&s->encode_batched_requests, (long long)n);
    }
    size_t n_rest = n - 1;
    for (size_t i = 0; i < n_plain; i++)
        rest[n_rest++] = plain[i];
    size_t put = pool_push_front(&s->http->pool, rest, n_rest);
    pool_finish(s, first);
    for (size_t i = put; i < n_rest; i++)
        pool_finish(s, rest[i]);
}

static void *worker_main(void *arg)
{
    cp_server *s = arg;
    pool *p = &s->http->pool;
    int me = atomic_fetch_add(&p->next_worker_id, 1);
    conn_ctx *ctx;
    while ((ctx = pool_take(p, me)) != NULL) {
        if (wants_batch(s, ctx))
            run_batch(s, ctx);
        else
            pool_finish(s, ctx);
    }
    return NULL; /* stop requested and nothing left: drain finished */
}

/* Push ctx and suspend its connection atomically with respect to the workers; false if
 * the queue is full. */
static bool pool_submit(conn_ctx *ctx)
{
    pool *p = &ctx->s->http->pool;
    pthread_mutex_lock(&p->mu);
    if (ring_full(&p->q) || p->stop) {
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    ctx->state = CTX_QUEUED;
    MHD_suspend_connection(ctx->conn);
    ring_push(&p->q, ctx);
    wake_idle(p, 1);
    pthread_mutex_unlock(&p->mu);
    return true;
}

static bool pool_start(cp_server *s)
{
    pool *p = &s->http->pool;
    size_t n = (size_t)s->cfg.threads;
    pthread_mutex_init(&p->mu, NULL);
    bool ring_ok = ring_init(&p->q, (size_t)s->cfg.queue_depth, &s->queue_len);
    p->threads = calloc(n, sizeof *p->threads);
    p->wake = calloc(n, sizeof *p->wake);
    p->on_stack = calloc(n, sizeof *p->on_stack);
    p->idle_stack = calloc(n, sizeof *p->idle_stack);
    if (!ring_ok || !p->threads || !p->wake || !p->on_stack || !p->idle_stack) return false;
    for (; p->n_wake < (int)n; p->n_wake++)
        pthread_cond_init(&p->wake[p->n_wake], NULL);
    for (int i = 0; i < s->cfg.threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, s)) return false;
        p->n_threads++;
    }
    return true;
}

/* Workers finish everything queued, then exit. */
static void pool_stop(pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    wake_idle(p, p->idle);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
}

/* After pool_stop, once the daemon is stopped too (until then a request that arrives takes
 * the mutex to find the pool stopped, and is answered 503). */
static void pool_free(pool *p)
{
    for (int i = 0; i < p->n_wake; i++)
        pthread_cond_destroy(&p->wake[i]);
    free(p->threads);
    free(p->q.slot);
    free(p->wake);
    free(p->on_stack);
    free(p->idle_stack);
    pthread_mutex_destroy(&p->mu);
}

/* ---- the writer thread with its own bounded queue ------------------------------------------ */

static void *writer_main(void *arg)
{
    cp_server *s = arg;
    write_queue *wq = &s->http->wq;
    for (;;) {
        pthread_mutex_lock(&wq->mu);
        while (!wq->q.len && !wq->stop)
            pthread_cond_wait(&wq->cv, &wq->mu);
        if (!wq->q.len) {
            pthread_mutex_unlock(&wq->mu);
            return NULL;
        }
        conn_ctx *ctx = ring_pop(&wq->q);
        pthread_mutex_unlock(&wq->mu);
        cp_handle(s, &ctx->req, &ctx->resp);
        ctx->work_bytes += cp_request_take_parse_peak();
        /* ctx may be freed as soon as the connection resumes: keep what compaction needs
         * (the request's reference to the index becomes ours). */
        cp_served_index *si = ctx->req.idx;
        ctx->req.idx = NULL;
        bool changed = ctx->resp.status == 200 && ctx->req.route != CP_ROUTE_DROP_INDEX &&
                       ctx->req.route != CP_ROUTE_CREATE_INDEX;
        finish(ctx);
        /* The automatic policy runs after the answer is on its way, so a write's latency
         * never includes a compaction; the next queued write waits for it instead. A
         * dropped index is left alone. */
        if (changed && si && si->writable && !atomic_load(&si->dropped) &&
            s->cfg.auto_compact_fraction < 1) {
            bool compacted = false;
            cp_error err;
            if (cp_index_maybe_compact(si->index, s->cfg.auto_compact_fraction, &compacted, &err) !=
                CP_OK)
                fprintf(stderr, "colplaid serve: automatic compaction of '%s' failed: %s\n",
                        si->name, err.message);
            else if (compacted)
                atomic_fetch_add(&s->writes_compacted, 1);
        }
        cp_served_index_release(si);
    }
}

static bool wq_submit(conn_ctx *ctx)
{
    write_queue *wq = &ctx->s->http->wq;
    pthread_mutex_lock(&wq->mu);
    if (ring_full(&wq->q) || wq->stop) {
        pthread_mutex_unlock(&wq->mu);
        return false;
    }
    ctx->state = CTX_QUEUED;
    MHD_suspend_connection(ctx->conn);
    ring_push(&wq->q, ctx);
    pthread_cond_signal(&wq->cv);
    pthread_mutex_unlock(&wq->mu);
    return true;
}

size_t cp_http_queued_writes(cp_server *s, const cp_served_index *si)
{
    if (!s->http) return 0;
    write_queue *wq = &s->http->wq;
    size_t n = 0;
    pthread_mutex_lock(&wq->mu);
    for (size_t i = 0; i < wq->q.len; i++)
        n += wq->q.slot[(wq->q.head + i) % wq->q.cap]->req.idx == si;
    pthread_mutex_unlock(&wq->mu);
    return n;
}

static bool wq_start(cp_server *s)
{
    write_queue *wq = &s->http->wq;
    pthread_mutex_init(&wq->mu, NULL);
    pthread_cond_init(&wq->cv, NULL);
    if (!ring_init(&wq->q, (size_t)s->cfg.write_queue, &s->write_queue_len)) return false;
    if (pthread_create(&wq->thread, NULL, writer_main, s)) return false;
    wq->started = true;
    return true;
}

static void wq_stop(write_queue *wq)
{
    pthread_mutex_lock(&wq->mu);
    wq->stop = true;
    pthread_cond_broadcast(&wq->cv);
    pthread_mutex_unlock(&wq->mu);
    if (wq->started) pthread_join(wq->thread, NULL);
}

static void wq_free(write_queue *wq)
{
    free(wq->q.slot);
    pthread_cond_destroy(&wq->cv);
    pthread_mutex_destroy(&wq->mu);
}

/* The polling thread: a connection opened (a record) or closed (its record goes, under the
 * lock, so that the sweeper never shuts down a descriptor that MHD has closed and the
 * system may have reused: MHD closes the socket after this callback). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    cp_server *s = cls;
    header_guard *g = &s->http->hg;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_rec *r = calloc(1, sizeof *r);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = r;
        if (!r) return; /* no record: only the idle timeout applies */
        r->fd = ci ? ci->connect_fd : -1;
        r->since = cp_now_seconds();
        pthread_mutex_lock(&g->mu);
        r->next = g->head;
        if (g->head) g->head->prev = r;
        g->head = r;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    conn_rec *r = *socket_context;
    if (!r) return;
    pthread_mutex_lock(&g->mu);
    if (r->prev)
        r->prev->next = r->next;
    else
        g->head = r->next;
    if (r->next) r->next->prev = r->prev;
    pthread_mutex_unlock(&g->mu);
    free(r);
    *socket_context = NULL;
}

/* The record of conn (NULL if it has none). */
static conn_rec *rec_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Headers complete (done) or a request finished and the next one's clock starts (!done). */
static void mark_headers(cp_server *s, struct MHD_Connection *conn, bool done)
{
    conn_rec *r = rec_of(conn);
    if (!r) return;
    pthread_mutex_lock(&s->http->hg.mu);
    r->headers_done = done;
    if (!done) r->since = cp_now_seconds();
    pthread_mutex_unlock(&s->http->hg.mu);
}

static void *sweeper_main(void *arg)
{
    cp_server *s = arg;
    header_guard *g = &s->http->hg;
    /* A quarter of a second between sweeps: a slow request is closed within --timeout +
     * 0.25 s, and the sweep of 1,000 records costs microseconds. */
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        double deadline = cp_now_seconds() - (double)s->cfg.timeout_s;
        for (conn_rec *r = g->head; r && !g->stop; r = r->next)
            if (!r->headers_done && !r->swept && r->fd >= 0 && r->since < deadline) {
                shutdown(r->fd, SHUT_RDWR);
                r->swept = true;
                atomic_fetch_add(&s->header_timeouts, 1);
            }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static bool hg_start(cp_server *s)
{
    header_guard *g = &s->http->hg;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->thread, NULL, sweeper_main, s)) return false;
    g->started = true;
    return true;
}

/* After the daemon stopped (every connection closed, every record freed). */
static void hg_stop(header_guard *g)
{
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->started) pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* ---- routing ------------------------------------------------------------------------------- */

typedef struct route_match {
    cp_route route;
    const char *allow;  /* methods the path accepts */
    const char *index;  /* start of the index name inside path (NUL-terminated copy below) */
    const char *doc_id;
} route_match;

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 128) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok) return false;
    }
    return true;
}

/* path is a writable copy: the index name is cut out in place. */
static route_match match_route(char *path)
{
    route_match m = {CP_ROUTE_OTHER, NULL, NULL, NULL};
    static const struct {
        const char *path;
        cp_route route;
        const char *allow;
    } fixed[] = {{"/health", CP_ROUTE_HEALTH, "GET"},
                 {"/metrics", CP_ROUTE_METRICS, "GET"},
                 {"/openapi.json", CP_ROUTE_OPENAPI, "GET"},
                 {"/v1/indexes", CP_ROUTE_LIST_INDEXES, "GET, POST"},
                 {"/v1/encode", CP_ROUTE_ENCODE, "POST"},
                 {"/v1/rerank", CP_ROUTE_RERANK, "POST"},
                 {"/", CP_ROUTE_PAGE, "GET"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(path, fixed[i].path)) {
            m.route = fixed[i].route;
            m.allow = fixed[i].allow;
            return m;
        }
    static const char prefix[] = "/v1/indexes/";
    if (strncmp(path, prefix, sizeof prefix - 1)) return m;
    char *name = path + sizeof prefix - 1;
    char *slash = strchr(name, '/');
    if (!valid_name(name, slash ? (size_t)(slash - name) : strlen(name))) return m;
    m.index = name;
    if (!slash) {
        /* Two routes on one path: admit() picks CP_ROUTE_DROP_INDEX for DELETE. */
        m.route = CP_ROUTE_GET_INDEX;
        m.allow = "GET, DELETE";
        return m;
    }
    *slash = '\0';
    char *rest = slash + 1;
    if (!strcmp(rest, "search")) {
        m.route = CP_ROUTE_SEARCH;
        m.allow = "POST";
    } else if (!strcmp(rest, "explain")) {
        m.route = CP_ROUTE_EXPLAIN;
        m.allow = "POST";
    } else if (!strcmp(rest, "compact")) {
        m.route = CP_ROUTE_COMPACT;
        m.allow = "POST";
    } else if (!strcmp(rest, "documents")) {
        /* Two routes on one path: admit() picks CP_ROUTE_DELETE_DOCUMENTS for DELETE. */
        m.route = CP_ROUTE_UPSERT;
        m.allow = "POST, DELETE";
    } else if (!strncmp(rest, "documents/", 10) && rest[10]) {
        m.route = CP_ROUTE_GET_DOCUMENT;
        m.allow = "GET";
        m.doc_id = rest + 10; /* ids may contain '/', so everything after the prefix */
    }
    return m;
}

/* Routes that change an index: they run on the writer thread. */
static bool route_is_write(cp_route r)
{
    return r == CP_ROUTE_UPSERT || r == CP_ROUTE_DELETE_DOCUMENTS || r == CP_ROUTE_COMPACT ||
           r == CP_ROUTE_CREATE_INDEX || r == CP_ROUTE_DROP_INDEX;
}

/* Routes for the admin scope only: index maintenance, creation and removal. */
static bool route_is_admin(cp_route r)
{
    return r == CP_ROUTE_COMPACT || r == CP_ROUTE_CREATE_INDEX || r == CP_ROUTE_DROP_INDEX;
}

/* Whether method is one of the ", "-separated methods in allow (HEAD goes with GET). */
static bool method_allowed(const char *method, const char *allow)
{
    if (!strcmp(method, "HEAD")) method = "GET";
    size_t n = strlen(method);
    for (const char *p = allow; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, method, n)) return true;
        if (!end) break;
        p = end + 1;
        while (*p == ' ') p++;
    }
    return false;
}

static bool route_is_work(cp_route r)
{
    return r == CP_ROUTE_SEARCH || r == CP_ROUTE_GET_DOCUMENT || r == CP_ROUTE_ENCODE ||
           r == CP_ROUTE_RERANK || r == CP_ROUTE_EXPLAIN;
}

/* Routes open without a key: probes, the API description and the (data-free) browser page,
 * which asks for a key itself when the API answers 401. */
static bool route_is_public(cp_route r)
{
    return r == CP_ROUTE_HEALTH || r == CP_ROUTE_OPENAPI || r == CP_ROUTE_PAGE;
}

/* ---- responses and logging ------------------------------------------------------------------ */

static enum MHD_Result send_response(conn_ctx *ctx)
{
    cp_response *r = &ctx->resp;
    struct MHD_Response *mr = MHD_create_response_from_buffer(r->len, r->body,
                                                              MHD_RESPMEM_MUST_FREE);
    if (!mr) return MHD_NO;
    r->body = NULL; /* owned by MHD now */
    MHD_add_response_header(mr, "Content-Type", r->content_type ? r->content_type
                                                                : "application/json");
    MHD_add_response_header(mr, "X-Request-Id", ctx->request_id);
    if (r->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", r->retry_after);
        MHD_add_response_header(mr, "Retry-After", v);
    }
    if (r->allow) MHD_add_response_header(mr, "Allow", r->allow);
    if (atomic_load(&ctx->s->shutting_down)) MHD_add_response_header(mr, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(ctx->conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static enum MHD_Result reject(conn_ctx *ctx, int status, const char *code, const char *msg)
{
    cp_response_error(&ctx->resp, status, code, "%s", msg);
    cp_served_index_release(ctx->req.idx);
    ctx->req.idx = NULL;
    ctx->state = CTX_DONE;
    return send_response(ctx);
}

static void access_log(const conn_ctx *ctx, enum MHD_RequestTerminationCode toe)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    cp_sb sb = {0};
    cp_sb_printf(&sb, "{\"ts\": \"%s.%03ldZ\", \"request_id\": ", ts, now.tv_nsec / 1000000);
    cp_sb_json_string(&sb, ctx->request_id);
    /* Every string goes through cp_sb_json_string, even those that are fixed words today:
     * the method, for one, is whatever the client sent (a method of A"}{"x once broke the
     * line). */
    cp_sb_append(&sb, ", \"method\": ");
    cp_sb_json_string(&sb, ctx->method);
    cp_sb_append(&sb, ", \"route\": ");
    cp_sb_json_string(&sb, cp_route_label(ctx->req.route));
    cp_sb_append(&sb, ", \"path\": ");
    cp_sb_json_string(&sb, ctx->path ? ctx->path : "");
    cp_sb_printf(&sb, ", \"status\": %d, \"ms\": %.3f, \"bytes_in\": %zu, \"bytes_out\": %zu",
                 ctx->resp.status, (cp_now_seconds() - ctx->t_start) * 1000.0, ctx->body_len,
                 ctx->resp.len);
    if (ctx->key_line) cp_sb_printf(&sb, ", \"key\": \"line %d\"", ctx->key_line);
    if (ctx->resp.error_code) {
        cp_sb_append(&sb, ", \"error\": ");
        cp_sb_json_string(&sb, ctx->resp.error_code);
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) cp_sb_append(&sb, ", \"aborted\": true");
    cp_sb_append(&sb, "}\n");
    char *line = cp_sb_take(&sb, NULL);
    if (line) fputs(line, stderr); /* one call: stdio locks the stream, lines never interleave */
    free(line);
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    cp_server *s = cls;
    /* A kept-alive connection's next request has --timeout for its headers from now. */
    mark_headers(s, connection, false);
    conn_ctx *ctx = *con_cls;
    if (!ctx) return;
    cp_metrics_request(s->metrics, ctx->req.route, ctx->resp.status,
                       cp_now_seconds() - ctx->t_start);
    if (s->cfg.access_log) access_log(ctx, toe);
    atomic_fetch_sub(&s->in_flight, 1);
    cp_search_job_free(ctx->job);
    cp_served_index_release(ctx->req.idx); /* a request that ended before its answer was built */
    /* glibc keeps freed memory in its arenas (one per worker thread): after a large request
     * (a 32 MiB body, cJSON's tree of it) RSS stayed at the peak. Hand it back. */
    bool large = ctx->body_cap + ctx->work_bytes + ctx->resp.len >= TRIM_AFTER_BYTES;
    free(ctx->resp.body);
    free(ctx->body);
    free(ctx->path);
    free(ctx->doc_id);
    free(ctx);
    *con_cls = NULL;
    if (large) malloc_trim(0);
}

/* ---- the access handler ----------------------------------------------------------------------- */

static void set_request_id(conn_ctx *ctx)
{
    const char *given = MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given && valid_name(given, strlen(given)) && strlen(given) <= REQUEST_ID_MAX) {
        snprintf(ctx->request_id, sizeof ctx->request_id, "%s", given);
        return;
    }
    /* pid and start time make ids unique across restarts; the counter within a run. */
    unsigned long long n = atomic_fetch_add(&ctx->s->request_seq, 1);
    snprintf(ctx->request_id, sizeof ctx->request_id, "%lx-%lx-%llx", (unsigned long)ctx->s->pid,
             (unsigned long)ctx->s->start_wall, n);
}

static conn_ctx *new_ctx(cp_server *s, struct MHD_Connection *conn, const char *url,
                         const char *method)
{
    conn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->s = s;
    ctx->conn = conn;
    ctx->t_start = cp_now_seconds();
    snprintf(ctx->method, sizeof ctx->method, "%s", method);
    ctx->path = strdup(url);
    ctx->req.route = CP_ROUTE_OTHER;
    ctx->resp.status = 500;
    set_request_id(ctx);
    atomic_fetch_add(&s->in_flight, 1);
    return ctx;
}

/* The rate limit (serve --rate-limit, a key's rate=N): one token per request from the
 * key's bucket, or without keys from the server's one. admit runs on the polling thread
 * only, so the anonymous bucket needs no lock (the keys' buckets have one anyway). */
static bool rate_ok(conn_ctx *ctx)
{
    cp_server *s = ctx->s;
    int retry = 0;
    bool ok = s->auth ? cp_auth_rate_take(s->auth, ctx->key_line, cp_now_seconds(), &retry)
                      : cp_rate_take(&s->anon_bucket, s->cfg.rate_limit, cp_now_seconds(), &retry);
    if (!ok) ctx->resp.retry_after = retry;
    return ok;
}

/* ---- strict headers ---------------------------------------------------------------------- */

typedef struct header_scan {
    int content_length, transfer_encoding, authorization;
    bool bad_content_length; /* not 1*DIGIT */
    bool binary;             /* a value holds a NUL byte */
} header_scan;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    (void)key_size;
    header_scan *h = cls;
    if (value && strlen(value) != value_size) h->binary = true;
    if (!strcasecmp(key, "Content-Length")) {
        h->content_length++;
        bool digits = value && value[0];
        for (const char *p = value; digits && *p; p++)
            digits = *p >= '0' && *p <= '9';
        if (!digits) h->bad_content_length = true;
    } else if (!strcasecmp(key, "Transfer-Encoding")) {
        h->transfer_encoding++;
    } else if (!strcasecmp(key, "Authorization")) {
        h->authorization++;
    }
    return MHD_YES;
}

/* A Bearer header must be exactly "Bearer <key>", the key 1 to 1024 visible ASCII
 * characters, nothing before or after it (a key followed by spaces and junk was accepted,
 * even for writes). Another scheme is not malformed, just not a valid key: auth answers 403. */
static bool bearer_well_formed(const char *v)
{
    if (strncasecmp(v, "Bearer", 6) || (v[6] != ' ' && v[6] != '\0')) return true;
    if (v[6] == '\0') return false;
    size_t n = 0;
    for (const char *p = v + 7; *p; p++, n++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return false;
    return n >= 1 && n <= 1024;
}

/* Headers a proxy and this server could read differently are refused (request smuggling):
 * two Content-Length headers, a Content-Length that is not a number, Content-Length with
 * Transfer-Encoding, two Authorization headers or one that is not exactly "Bearer <key>".
 * Returns false with msg set. */
static bool headers_strict(struct MHD_Connection *conn, char *msg, size_t cap)
{
    header_scan h = {0};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_header, &h);
    const char *why = NULL;
    if (h.binary)
        why = "a header value contains a NUL byte";
    else if (h.content_length > 1)
        why = "more than one Content-Length header";
    else if (h.bad_content_length)
        why = "Content-Length is not a decimal number";
    else if (h.content_length && h.transfer_encoding)
        why = "both Content-Length and Transfer-Encoding";
    else if (h.authorization > 1)
        why = "more than one Authorization header";
    if (!why && h.authorization) {
        const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        if (!a || !bearer_well_formed(a)) why = "Authorization must be exactly \"Bearer <key>\"";
    }
    if (why) snprintf(msg, cap, "%s", why);
    return why == NULL;
}

/* Route, method, auth, index and Content-Length checks, before any body is read. Returns
 * false after queueing a rejection. */
static bool admit(conn_ctx *ctx, enum MHD_Result *ret)
{
    cp_server *s = ctx->s;
    char *copy = strdup(ctx->path ? ctx->path : "");
    if (!copy) {
        *ret = reject(ctx, 503, "OUT_OF_MEMORY", "out of memory");
        return false;
    }
    route_match m = match_route(copy);
    if (m.route == CP_ROUTE_UPSERT && !strcmp(ctx->method, "DELETE"))
        m.route = CP_ROUTE_DELETE_DOCUMENTS;
    if (m.route == CP_ROUTE_LIST_INDEXES && !strcmp(ctx->method, "POST"))
        m.route = CP_ROUTE_CREATE_INDEX;
    if (m.route == CP_ROUTE_GET_INDEX && !strcmp(ctx->method, "DELETE"))
        m.route = CP_ROUTE_DROP_INDEX;
    ctx->req.route = m.route;
    const char *err_code = NULL;
    char msg[300];
    int status = 0;
    if (!headers_strict(ctx->conn, msg, sizeof msg)) {
        status = 400, err_code = "INVALID_HEADER";
    } else if (m.route == CP_ROUTE_OTHER) {
        status = 404, err_code = "ROUTE_NOT_FOUND";
        snprintf(msg, sizeof msg, "no route %s %.200s (see /openapi.json)", ctx->method, ctx->path);
    } else if (!method_allowed(ctx->method, m.allow) ||
               (!strcmp(ctx->method, "HEAD") && route_is_write(m.route))) {
        status = 405, err_code = "METHOD_NOT_ALLOWED";
        snprintf(msg, sizeof msg, "%s does not accept %s (allowed: %s)",
                 cp_route_label(m.route), ctx->method, m.allow);
        ctx->resp.allow = m.allow;
    } else if (s->auth && !route_is_public(m.route)) {
        const char *h = MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, "Authorization");
        cp_scope sc = cp_auth_check(s->auth, h, &ctx->key_line);
        /* Reads need any valid key; the write routes need the write (or admin) scope. */
        if (sc == CP_SCOPE_NONE) {
            status = h ? 403 : 401, err_code = h ? "FORBIDDEN" : "UNAUTHENTICATED";
            snprintf(msg, sizeof msg, h ? "the API key is not valid"
                                        : "send an API key: Authorization: Bearer <key>");
        } else if (route_is_admin(m.route) && sc < CP_SCOPE_ADMIN) {
            status = 403, err_code = "FORBIDDEN";
            snprintf(msg, sizeof msg, "this key has the %s scope; %s needs admin",
                     cp_scope_name(sc), cp_route_label(m.route));
        } else if (route_is_write(m.route) && sc < CP_SCOPE_WRITE) {
            status = 403, err_code = "FORBIDDEN";
            snprintf(msg, sizeof msg, "this key has the %s scope; writes need write or admin",
                     cp_scope_name(sc));
        }
    }
    if (!status && !route_is_public(m.route) && !rate_ok(ctx)) {
        status = 429, err_code = "RATE_LIMITED";
        snprintf(msg, sizeof msg, "%s is over its rate limit, retry after %d s",
                 s->auth ? "this API key" : "the server", ctx->resp.retry_after);
    }
    if (!status && m.index) {
        /* Retained until the request's answer is built (finish, reject, request_completed):
         * a drop meanwhile unlists the index but frees nothing this request uses. */
        cp_served_index *si = cp_server_index_get(s, m.index);
        if (!si) {
            status = 404, err_code = "INDEX_NOT_FOUND";
            snprintf(msg, sizeof msg, "no index named \"%.128s\" (GET /v1/indexes lists them)",
                     m.index);
        }
        ctx->req.idx = si;
    }
    if (!status && m.doc_id) {
        ctx->doc_id = strdup(m.doc_id);
        ctx->req.doc_id = ctx->doc_id;
    }
    free(copy);
    if (!status) {
        const char *cl = MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, "Content-Length");
        unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
        if (declared > s->cfg.limits.max_body_bytes) {
            status = 413, err_code = "PAYLOAD_TOO_LARGE";
            snprintf(msg, sizeof msg, "the body has %s bytes, the limit is %zu", cl,
                     s->cfg.limits.max_body_bytes);
        }
        /* One allocation for a typical body instead of doubling from 4 KB; capped, so that
         * a client declaring a huge body it never sends does not reserve it. */
        ctx->body_hint = (size_t)(declared <= BODY_HINT_MAX ? declared : 0);
    }
    if (!status) return true;
    *ret = reject(ctx, status, err_code, msg);
    return false;
}

static void append_body(conn_ctx *ctx, const char *data, size_t n)
{
    size_t max = ctx->s->cfg.limits.max_body_bytes;
    if (ctx->too_large || ctx->body_len + n > max) {
        ctx->too_large = true;
        return;
    }
    if (ctx->body_len + n + 1 > ctx->body_cap) {
        size_t cap = ctx->body_cap ? ctx->body_cap * 2 : 4096;
        if (!ctx->body_cap && ctx->body_hint >= ctx->body_len + n) cap = ctx->body_hint + 1;
        while (cap < ctx->body_len + n + 1) cap *= 2;
        char *p = realloc(ctx->body, cap);
        if (!p) {
            ctx->too_large = true;
            return;
        }
        ctx->body = p;
        ctx->body_cap = cap;
    }
    memcpy(ctx->body + ctx->body_len, data, n);
    ctx->body_len += n;
    ctx->body[ctx->body_len] = '\0';
}

static enum MHD_Result dispatch(conn_ctx *ctx)
{
    cp_server *s = ctx->s;
    if (ctx->too_large)
        return reject(ctx, 413, "PAYLOAD_TOO_LARGE", "the body is larger than --max-body-bytes");
    ctx->req.body = ctx->body ? ctx->body : "";
    ctx->req.body_len = ctx->body_len;
    /* Dropped while its body arrived: answered like any request that comes after a drop. */
    if (ctx->req.idx && atomic_load(&ctx->req.idx->dropped)) {
        char msg[200];
        snprintf(msg, sizeof msg, "index '%s' was dropped", ctx->req.idx->name);
        return reject(ctx, 404, "INDEX_NOT_FOUND", msg);
    }
    if (route_is_write(ctx->req.route)) {
        if (wq_submit(ctx)) return MHD_YES;
        ctx->resp.retry_after = 1;
        return reject(ctx, 503, "WRITE_QUEUE_FULL",
                      "the write queue is full (--write-queue), retry later");
    }
    if (!route_is_work(ctx->req.route)) {
        cp_handle(s, &ctx->req, &ctx->resp);
        ctx->work_bytes += cp_request_take_parse_peak();
        cp_served_index_release(ctx->req.idx);
        ctx->req.idx = NULL;
        ctx->state = CTX_DONE;
        return send_response(ctx);
    }
    if (pool_submit(ctx)) return MHD_YES;
    ctx->resp.retry_after = 1;
    return reject(ctx, 503, "OVERLOADED", "the server is busy: the request queue is full, retry later");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    cp_server *s = cls;
    conn_ctx *ctx = *con_cls;
    if (!ctx) {
        mark_headers(s, conn, true);
        if (!(ctx = new_ctx(s, conn, url, method))) return MHD_NO;
        *con_cls = ctx;
        enum MHD_Result ret = MHD_YES;
        if (!admit(ctx, &ret)) return ret;
        return MHD_YES;
    }
    if (ctx->state == CTX_DONE) return send_response(ctx);
    if (*upload_data_size) {
        /* --timeout bounds the whole body, not only the silence between its bytes: a body
         * trickled at a byte a second held its connection open indefinitely. */
        if (cp_now_seconds() - ctx->t_start > (double)s->cfg.timeout_s) {
            ctx->resp.status = 408;
            ctx->resp.error_code = "REQUEST_TIMEOUT";
            return MHD_NO; /* a response cannot be queued mid-body: close the connection */
        }
        append_body(ctx, upload_data, *upload_data_size);
        ctx->bytes_seen += *upload_data_size;
        *upload_data_size = 0;
        /* A chunked body far past the limit: stop reading and drop the connection rather
         * than drain an endless upload just to answer 413. */
        if (ctx->too_large && ctx->bytes_seen > 2 * s->cfg.limits.max_body_bytes) return MHD_NO;
        return MHD_YES;
    }
    if (ctx->state == CTX_QUEUED) return MHD_YES; /* spurious wake-up: still working */
    return dispatch(ctx);
}

/* ---- daemon life cycle --------------------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

static bool resolve(const cp_server *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    const char *host = s->cfg.host;
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)s->cfg.port);
        return true;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)s->cfg.port);
        return true;
    }
    return false;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The URL's %HH escapes, decoded in place as MHD's own unescaper does, except %00: a NUL
 * would cut the path short, so that /documents/vim%00-not-this-one named "vim". It stays
 * "%00" (and names no document). */
static size_t unescape_url(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0 &&
            (hi || lo)) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static struct MHD_Daemon *start_daemon(cp_server *s, const struct sockaddr_storage *ss)
{
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss->ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    return MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)ss, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections, MHD_OPTION_NOTIFY_COMPLETED,
        request_completed, s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024U, MHD_OPTION_UNESCAPE_CALLBACK, unescape_url, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
}

static uint16_t bound_port(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/* Wait for the in-flight requests to finish, up to the grace period. */
static void drain(cp_server *s)
{
    double deadline = cp_now_seconds() + s->cfg.shutdown_grace_s;
    while (atomic_load(&s->in_flight) > 0 && cp_now_seconds() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* SIGTERM and SIGINT start the graceful shutdown. They are caught by a handler, not
 * blocked and sigwait()ed: threads that libraries start before main() (OpenBLAS's) do not
 * block them, and a signal arriving before the wait was delivered to one of those and
 * killed the process without draining (seen once in CI as exit -15). */
static sem_t g_stop_sem;
static volatile sig_atomic_t g_stop_signal;

static void on_stop_signal(int sig)
{
    g_stop_signal = sig;
    sem_post(&g_stop_sem); /* async-signal-safe */
}

static bool catch_stop_signals(void)
{
    if (sem_init(&g_stop_sem, 0, 0) != 0) return false;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGTERM, &sa, NULL) == 0 && sigaction(SIGINT, &sa, NULL) == 0;
}

static int wait_for_stop_signal(void)
{
    while (sem_wait(&g_stop_sem) != 0 && errno == EINTR) {
    }
    return g_stop_signal;
}

/* Stop the workers and the writer thread; they run whatever is still queued first, so no
 * connection stays suspended and every queued write commits. wq_started: whether wq_start
 * ran (its mutex exists). */
static void http_stop(cp_server *s, bool wq_started)
{
    pool_stop(&s->http->pool);
    if (wq_started) wq_stop(&s->http->wq);
}

static void http_free(cp_server *s, bool wq_started)
{
    pool_free(&s->http->pool);
    if (wq_started) wq_free(&s->http->wq);
    free(s->http);
    s->http = NULL;
}

cp_status cp_server_run(cp_server *s, cp_error *err)
{
    struct sockaddr_storage ss;
    if (!resolve(s, &ss))
        return cp_error_set(err, CP_EINVAL, "--host %s is not an IPv4 or IPv6 address",
                            s->cfg.host);
    if (!s->auth && !is_loopback((const struct sockaddr *)&ss))
        return cp_error_set(err, CP_EINVAL,
                            "refusing to listen on %s without API keys: give "
                            "--api-keys FILE, or use --host 127.0.0.1",
                            s->cfg.host);
    if (!catch_stop_signals())
        return cp_error_set(err, CP_EINTERNAL, "cannot install the SIGTERM handler: %s",
                            strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    if (!(s->http = calloc(1, sizeof *s->http)))
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    if (!pool_start(s)) {
        http_stop(s, false);
        http_free(s, false);
        return cp_error_set(err, CP_EINTERNAL, "cannot start %d worker threads", s->cfg.threads);
    }
    if (!wq_start(s)) {
        http_stop(s, true);
        http_free(s, true);
        return cp_error_set(err, CP_EINTERNAL, "cannot start the writer thread");
    }
    if (!hg_start(s)) {
        hg_stop(&s->http->hg);
        http_stop(s, true);
        http_free(s, true);
        return cp_error_set(err, CP_EINTERNAL, "cannot start the header deadline thread");
    }
    struct MHD_Daemon *d = start_daemon(s, &ss);
    if (!d) {
        int e = errno;
        hg_stop(&s->http->hg);
        http_stop(s, true);
        http_free(s, true);
        return cp_error_set(err, CP_EIO, "cannot listen on %s port %d (%s)", s->cfg.host,
                            s->cfg.port, strerror(e));
    }
    size_t n_indexes;
    cp_served_index **listed = cp_server_indexes_list(s, &n_indexes);
    cp_server_indexes_release(listed, n_indexes);
    fprintf(stderr,
            "colplaid serve: listening on http://%s%s%s:%u/ (%zu index%s, %d workers, "
            "queue %d, write queue %d)%s\n",
            ss.ss_family == AF_INET6 ? "[" : "", s->cfg.host, ss.ss_family == AF_INET6 ? "]" : "",
            bound_port(d), n_indexes, n_indexes == 1 ? "" : "es", s->cfg.threads,
            s->cfg.queue_depth, s->cfg.write_queue,
            s->auth ? "; API keys required" : "; no API keys: loopback only");
    fflush(stderr);
    int sig = wait_for_stop_signal();
    fprintf(stderr, "colplaid serve: %s received, finishing in-flight requests\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    atomic_store(&s->shutting_down, true);
    MHD_socket lsock = MHD_quiesce_daemon(d); /* stop accepting; keep serving what is open */
    if (lsock != MHD_INVALID_SOCKET) close(lsock);
    drain(s);
    http_stop(s, true);
    MHD_stop_daemon(d);
    hg_stop(&s->http->hg);
    http_free(s, true);
    fprintf(stderr, "colplaid serve: stopped\n");
    return CP_OK;
}
