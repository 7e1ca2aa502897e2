/*
 * `colplaid serve`: option parsing, loading the indexes and the model once, then handing
 * over to the HTTP server (http.c). Exit status 0 after a graceful shutdown, 1 when an
 * index or model cannot be loaded or the port cannot be bound, 2 on bad usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "server.h"

static const char usage_text[] =
    "usage: colplaid serve --index IDX.db [--index NAME=IDX2.db ...] [--model MODEL]\n"
    "         [--host 127.0.0.1] [--port 8080] [--threads N] [--api-keys FILE]\n"
    "\n"
    "  --index [NAME=]PATH     serve an index (named after the file without extension unless\n"
    "                          NAME= is given); repeat for several\n"
    "  --model DIR             model for text queries, /v1/encode and /v1/rerank texts\n"
    "  --host ADDR             IPv4/IPv6 address to bind (default 127.0.0.1); without\n"
    "                          --api-keys only loopback addresses are accepted\n"
    "  --port N                TCP port (default 8080; 0 picks a free one, printed at start)\n"
    "  --threads N             worker threads (default: all cores)\n"
    "  --api-keys FILE         'KEY SCOPE' lines, scope read|write|admin\n"
    "  --encoder-threads N     threads one encode call may use (default 1)\n"
    "  --encode-batch N        text searches waiting in the queue that one encoder call may\n"
    "                          encode together (default 32; 1: one call per request)\n"
    "  --read-only             serve the indexes read-only (default: open them for writing;\n"
    "                          an index whose writer lock another process holds is served\n"
    "                          read-only, and writes to it answer 409 INDEX_READ_ONLY)\n"
    "  --write-queue N         write requests waiting for the writer thread before 503\n"
    "                          (default 64)\n"
    "limits:\n"
    "  --max-body-bytes N      request body (default 33554432)\n"
    "  --max-queries N         queries per search, texts per encode (default 64)\n"
    "  --max-k N               largest k (default 1000)\n"
    "  --max-query-tokens N    token vectors per query (default 512)\n"
    "  --max-documents N       documents per rerank (default 1000)\n"
    "  --max-write-documents N documents per upsert request (default 1000)\n"
    "  --queue-depth N         requests waiting for a worker before 503 (default 256)\n"
    "  --timeout S             idle connection timeout in seconds (default 30)\n"
    "  --max-connections N     open connections (default 1000)\n"
    "  --shutdown-grace S      seconds to finish in-flight requests on SIGTERM (default 30)\n"
    "  --no-access-log         do not write one JSON line per request to stderr\n";

enum {
    OPT_MAX_BODY = 1000,
    OPT_MAX_QUERIES,
    OPT_MAX_K,
    OPT_MAX_QTOK,
    OPT_MAX_DOCS,
    OPT_QUEUE,
    OPT_TIMEOUT,
    OPT_MAX_CONN,
    OPT_GRACE,
    OPT_NO_LOG,
    OPT_ENC_THREADS,
    OPT_READ_ONLY,
    OPT_WRITE_QUEUE,
    OPT_MAX_WRITE_DOCS,
    OPT_ENC_BATCH,
};

typedef struct serve_opts {
    const char *index_specs[64];
    int n_index;
    const char *model;
    const char *api_keys;
    int encoder_threads;
    cp_server_config cfg;
} serve_opts;

static bool int_opt(const char *name, const char *val, int64_t min, int64_t max, int64_t *out)
{
    if (cp_cli_parse_int(val, min, max, out)) return true;
    cp_cli_usage_error("serve", "%s needs an integer in [%lld, %lld], got '%s'", name,
                       (long long)min, (long long)max, val);
    return false;
}

static bool apply_limit(serve_opts *o, int opt, const char *val)
{
    int64_t v;
    cp_limits *l = &o->cfg.limits;
    switch (opt) {
    case OPT_MAX_BODY: if (!int_opt("--max-body-bytes", val, 1024, 1LL << 32, &v)) return false; l->max_body_bytes = (size_t)v; break;
    case OPT_MAX_QUERIES: if (!int_opt("--max-queries", val, 1, 100000, &v)) return false; l->max_queries = (int)v; break;
    case OPT_MAX_K: if (!int_opt("--max-k", val, 1, 1000000, &v)) return false; l->max_k = (int)v; break;
    case OPT_MAX_QTOK: if (!int_opt("--max-query-tokens", val, 1, 100000, &v)) return false; l->max_query_tokens = (int)v; break;
    case OPT_MAX_DOCS: if (!int_opt("--max-documents", val, 1, 1000000, &v)) return false; l->max_documents = (int)v; break;
    case OPT_QUEUE: if (!int_opt("--queue-depth", val, 1, 1000000, &v)) return false; o->cfg.queue_depth = (int)v; break;
    case OPT_TIMEOUT: if (!int_opt("--timeout", val, 1, 86400, &v)) return false; o->cfg.timeout_s = (int)v; break;
    case OPT_MAX_CONN: if (!int_opt("--max-connections", val, 1, 1000000, &v)) return false; o->cfg.max_connections = (int)v; break;
    case OPT_GRACE: if (!int_opt("--shutdown-grace", val, 0, 86400, &v)) return false; o->cfg.shutdown_grace_s = (int)v; break;
    case OPT_WRITE_QUEUE: if (!int_opt("--write-queue", val, 1, 1000000, &v)) return false; o->cfg.write_queue = (int)v; break;
    case OPT_MAX_WRITE_DOCS: if (!int_opt("--max-write-documents", val, 1, 1000000, &v)) return false; l->max_write_documents = (int)v; break;
    case OPT_ENC_THREADS: if (!int_opt("--encoder-threads", val, 0, 1024, &v)) return false; o->encoder_threads = (int)v; break;
    case OPT_ENC_BATCH:
        if (!int_opt("--encode-batch", val, 1, 64, &v)) return false;
        o->cfg.encode_batch = (int)v;
        break;
    default: return false;
    }
    return true;
}

/* 0 ok, else an exit status. */
static int parse_args(int argc, char **argv, serve_opts *o)
{
    static const struct option longs[] = {
        {"index", required_argument, 0, 'i'},
        {"model", required_argument, 0, 'm'},
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'},
        {"api-keys", required_argument, 0, 'k'},
        {"help", no_argument, 0, 'h'},
        {"max-body-bytes", required_argument, 0, OPT_MAX_BODY},
        {"max-queries", required_argument, 0, OPT_MAX_QUERIES},
        {"max-k", required_argument, 0, OPT_MAX_K},
        {"max-query-tokens", required_argument, 0, OPT_MAX_QTOK},
        {"max-documents", required_argument, 0, OPT_MAX_DOCS},
        {"queue-depth", required_argument, 0, OPT_QUEUE},
        {"timeout", required_argument, 0, OPT_TIMEOUT},
        {"max-connections", required_argument, 0, OPT_MAX_CONN},
        {"shutdown-grace", required_argument, 0, OPT_GRACE},
        {"no-access-log", no_argument, 0, OPT_NO_LOG},
        {"encoder-threads", required_argument, 0, OPT_ENC_THREADS},
        {"encode-batch", required_argument, 0, OPT_ENC_BATCH},
        {"read-only", no_argument, 0, OPT_READ_ONLY},
        {"write-queue", required_argument, 0, OPT_WRITE_QUEUE},
        {"max-write-documents", required_argument, 0, OPT_MAX_WRITE_DOCS},
        {0, 0, 0, 0}};
    int c;
    int64_t v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (o->n_index == 64) return cp_cli_usage_error("serve", "at most 64 indexes");
            o->index_specs[o->n_index++] = optarg;
            break;
        case 'm': o->model = optarg; break;
        case 'H': o->cfg.host = optarg; break;
        case 'p': if (!int_opt("--port", optarg, 0, 65535, &v)) return CP_EXIT_USAGE; o->cfg.port = (int)v; break;
        case 't': if (!int_opt("--threads", optarg, 0, 1024, &v)) return CP_EXIT_USAGE; o->cfg.threads = v ? (int)v : cp_cli_default_threads(); break;
        case 'k': o->api_keys = optarg; break;
        case 'h': fputs(usage_text, stdout); return -1;
        case OPT_NO_LOG: o->cfg.access_log = false; break;
        case OPT_READ_ONLY: o->cfg.read_only = true; break;
        case '?': return cp_cli_usage_error("serve", "unknown or incomplete option");
        default: if (!apply_limit(o, c, optarg)) return CP_EXIT_USAGE; break;
        }
    }
    if (optind < argc) return cp_cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (o->n_index == 0) return cp_cli_usage_error("serve", "give at least one --index");
    return 0;
}

/* Name from "NAME=PATH" or from PATH's file name without extension. */
static char *index_name(const char *spec, const char **path)
{
    const char *eq = strchr(spec, '=');
    if (eq && eq != spec) {
        *path = eq + 1;
        return strndup(spec, (size_t)(eq - spec));
    }
    *path = spec;
    const char *base = strrchr(spec, '/');
    base = base ? base + 1 : spec;
    const char *dot = strrchr(base, '.');
    return strndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
}

static bool name_ok(const char *n)
{
    if (!*n || strlen(n) > 128) return false;
    for (const char *p = n; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", *p))
            return false;
    return true;
}

static int open_indexes(cp_server *s, const serve_opts *o)
{
    s->indexes = calloc((size_t)o->n_index, sizeof *s->indexes);
    if (!s->indexes) return CP_EXIT_FAILURE;
    for (int i = 0; i < o->n_index; i++) {
        cp_served_index *si = &s->indexes[s->n_indexes];
        const char *path;
        si->name = index_name(o->index_specs[i], &path);
        si->path = strdup(path);
        if (!si->name || !name_ok(si->name)) {
            free(si->name);
            free(si->path);
            return cp_cli_usage_error("serve", "index name in '%s' may only use letters, digits, "
                                      "'_', '-' and '.'", o->index_specs[i]);
        }
        s->n_indexes++;
        for (size_t j = 0; j + 1 < s->n_indexes; j++)
            if (!strcmp(s->indexes[j].name, si->name))
                return cp_cli_usage_error("serve", "two indexes are named '%s': use NAME=PATH",
                                          si->name);
        cp_error err;
        cp_index_stats st;
        const char *why_ro = o->cfg.read_only ? "--read-only" : NULL;
        cp_status ost = CP_EREADONLY;
        if (!o->cfg.read_only) ost = cp_index_open(si->path, CP_OPEN_WRITE, &si->index, &err);
        si->writable = ost == CP_OK;
        /* Another writer (a CLI `index add`, a second server) or a read-only file: keep
         * serving searches rather than refuse to start, and say so. */
        if (!o->cfg.read_only && (ost == CP_EBUSY || ost == CP_EREADONLY))
            why_ro = ost == CP_EBUSY ? "another process holds its writer lock"
                                     : "the file is not writable";
        if (ost != CP_OK && !why_ro) return cp_cli_report("serve", &err);
        if (!si->writable && cp_index_open(si->path, CP_OPEN_READONLY, &si->index, &err))
            return cp_cli_report("serve", &err);
        if (cp_index_stats_get(si->index, &st, &err)) return cp_cli_report("serve", &err);
        si->dim = st.dim;
        fprintf(stderr, "colplaid serve: index '%s' from %s: %lld documents, %lld tokens, dim %d, "
                        "%s%s%s\n",
                si->name, si->path, (long long)st.n_documents, (long long)st.n_tokens, st.dim,
                si->writable ? "writable" : "read-only (", why_ro && !si->writable ? why_ro : "",
                si->writable ? "" : ")");
    }
    return 0;
}

static int load_model(cp_server *s, const serve_opts *o)
{
    if (!o->model) return 0;
    cp_encoder_options eo;
    cp_encoder_options_init(&eo);
    eo.threads = o->encoder_threads;
    cp_error err;
    if (cp_encoder_load(o->model, &eo, &s->encoder, &err)) return cp_cli_report("serve", &err);
    int dim = cp_encoder_dim(s->encoder);
    for (size_t i = 0; i < s->n_indexes; i++)
        if (s->indexes[i].dim != dim)
            fprintf(stderr, "colplaid serve: warning: the model encodes %d dims but index '%s' has "
                            "%d: text queries to it will be refused\n",
                    dim, s->indexes[i].name, s->indexes[i].dim);
    return 0;
}

static void server_free(cp_server *s)
{
    for (size_t i = 0; i < s->n_indexes; i++) {
        if (s->indexes[i].index) cp_index_close(s->indexes[i].index);
        free(s->indexes[i].name);
        free(s->indexes[i].path);
    }
    free(s->indexes);
    if (s->encoder) cp_encoder_free(s->encoder);
    cp_auth_free(s->auth);
    cp_metrics_free(s->metrics);
}

int cp_cmd_serve(int argc, char **argv)
{
    serve_opts o = {0};
    o.encoder_threads = 1;
    o.cfg.host = "127.0.0.1";
    o.cfg.port = 8080;
    o.cfg.threads = cp_cli_default_threads();
    o.cfg.queue_depth = 256;
    o.cfg.write_queue = 64;
    o.cfg.timeout_s = 30;
    o.cfg.max_connections = 1000;
    o.cfg.shutdown_grace_s = 30;
    o.cfg.access_log = true;
    o.cfg.encode_batch = 32;
    cp_limits_init(&o.cfg.limits);
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? CP_EXIT_OK : rc;

    cp_server s = {0};
    s.cfg = o.cfg;
    s.start_time = cp_now_seconds();
    s.start_wall = (int64_t)time(NULL);
    s.pid = (long)getpid();
    s.metrics = cp_metrics_new();
    cp_error err;
    if (!s.metrics) rc = CP_EXIT_FAILURE;
    if (!rc && o.api_keys && cp_auth_load(o.api_keys, &s.auth, &err))
        rc = cp_cli_report("serve", &err);
    if (!rc && s.auth)
        fprintf(stderr, "colplaid serve: %zu API keys loaded\n", cp_auth_count(s.auth));
    if (!rc) rc = open_indexes(&s, &o);
    if (!rc) rc = load_model(&s, &o);
    if (!rc) rc = cp_server_run(&s);
    server_free(&s);
    return rc;
}
