/*
 * `colplaid serve`: the options, then the server library (colplaid/server.h) does the
 * rest: open the indexes and the model once, serve until SIGTERM / SIGINT, drain. Exit
 * status 0 after a graceful shutdown, 1 when an index or model cannot be loaded or the port
 * cannot be bound, 2 on bad usage or when an index records another model than --model
 * (model fingerprints; --allow-model-mismatch serves it without text).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "colplaid/server.h"
#include "commands.h"
#include "cp_cpu.h"

static const char usage_text[] =
    "usage: colplaid serve --index IDX.db [--index NAME=IDX2.db ...] [--index-dir DIR]\n"
    "         [--model MODEL [--allow-model-mismatch]]\n"
    "         [--host 127.0.0.1] [--port 8080] [--threads N] [--api-keys FILE]\n"
    "\n"
    "  --index [NAME=]PATH     serve an index (named after the file without extension unless\n"
    "                          NAME= is given); repeat for several\n"
    "  --index-dir DIR         serve every DIR/NAME.db as NAME, and keep the indexes that\n"
    "                          POST /v1/indexes creates there (DELETE /v1/indexes/NAME\n"
    "                          removes their files; an --index is only unserved)\n"
    "  --model DIR             model for text queries, /v1/encode and /v1/rerank texts;\n"
    "                          every index that records a model must record this one (its\n"
    "                          fingerprint), else serve refuses to start (exit 2)\n"
    "  --allow-model-mismatch  start anyway: such indexes are served, but their text\n"
    "                          searches and text upserts answer 409 MODEL_MISMATCH\n"
    "  --host ADDR             IPv4/IPv6 address to bind (default 127.0.0.1); without\n"
    "                          --api-keys only loopback addresses are accepted\n"
    "  --port N                TCP port (default 8080; 0 picks a free one, printed at start)\n"
    "  --threads N             worker threads (default: all cores)\n"
    "  --api-keys FILE         'KEY SCOPE [rate=N]' lines, scope read|write|admin\n"
    "  --rate-limit N          requests per second per API key without its own rate=N\n"
    "                          (without --api-keys: for all requests together); over it:\n"
    "                          429 RATE_LIMITED + Retry-After (default 0: unlimited)\n"
    "  --encoder-threads N     threads one encode call may use (default 1)\n"
    "  --encode-batch N        text searches waiting in the queue that one encoder call may\n"
    "                          encode together (default 32; 1: one call per request)\n"
    "  --read-only             serve the indexes read-only (default: open them for writing;\n"
    "                          an index whose writer lock another process holds is served\n"
    "                          read-only, and writes to it answer 409 INDEX_READ_ONLY)\n"
    "  --write-queue N         write requests waiting for the writer thread before 503\n"
    "                          (default 64)\n"
    "  --auto-compact F        after a write, compact an index whose deleted documents pass\n"
    "                          the share F of its document rows (default 0.2; 1: never, then\n"
    "                          compact with 'index compact' or POST .../compact)\n"
    "limits:\n"
    "  --max-body-bytes N      request body (default 33554432)\n"
    "  --max-queries N         queries per search, texts per encode (default 64)\n"
    "  --max-k N               largest k (default 1000)\n"
    "  --max-query-tokens N    token vectors per query (default 512)\n"
    "  --max-documents N       documents per rerank (default 1000)\n"
    "  --max-write-documents N documents per upsert request (default 1000)\n"
    "  --max-json-values N     JSON values (numbers, strings, arrays, ...) in one request\n"
    "                          body (default 1000000; more answers 413)\n"
    "  --max-response-bytes N  response body (default 268435456; larger answers 422\n"
    "                          RESPONSE_TOO_LARGE)\n"
    "  --queue-depth N         requests waiting for a worker before 503 (default 256)\n"
    "  --timeout S             idle connection timeout in seconds, and the most time a\n"
    "                          request's headers, then its body, may take to arrive\n"
    "                          (default 30)\n"
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
    OPT_RATE_LIMIT,
    OPT_MAX_JSON_VALUES,
    OPT_MAX_RESPONSE,
    OPT_AUTO_COMPACT,
    OPT_INDEX_DIR,
    OPT_ALLOW_MISMATCH,
};

typedef struct serve_opts {
    const char *index_specs[64];
    int n_index;
    const char *model;
    const char *api_keys;
    const char *index_dir;
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

/* The numeric options past the common ones: a table of name, range and destination. */
static bool apply_limit(serve_opts *o, int opt, const char *val)
{
    cp_limits *l = &o->cfg.limits;
    const struct {
        int opt;
        const char *name;
        int64_t min, max;
        int *to;
    } ints[] = {
        {OPT_MAX_QUERIES, "--max-queries", 1, 100000, &l->max_queries},
        {OPT_MAX_K, "--max-k", 1, 1000000, &l->max_k},
        {OPT_MAX_QTOK, "--max-query-tokens", 1, 100000, &l->max_query_tokens},
        {OPT_MAX_DOCS, "--max-documents", 1, 1000000, &l->max_documents},
        {OPT_QUEUE, "--queue-depth", 1, 1000000, &o->cfg.queue_depth},
        {OPT_TIMEOUT, "--timeout", 1, 86400, &o->cfg.timeout_s},
        {OPT_MAX_CONN, "--max-connections", 1, 1000000, &o->cfg.max_connections},
        {OPT_GRACE, "--shutdown-grace", 0, 86400, &o->cfg.shutdown_grace_s},
        {OPT_WRITE_QUEUE, "--write-queue", 1, 1000000, &o->cfg.write_queue},
        {OPT_MAX_WRITE_DOCS, "--max-write-documents", 1, 1000000, &l->max_write_documents},
        {OPT_ENC_THREADS, "--encoder-threads", 0, 1024, &o->encoder_threads},
        {OPT_ENC_BATCH, "--encode-batch", 1, 64, &o->cfg.encode_batch},
    };
    int64_t v;
    if (opt == OPT_MAX_BODY) {
        if (!int_opt("--max-body-bytes", val, 1024, 1LL << 32, &v)) return false;
        l->max_body_bytes = (size_t)v;
        return true;
    }
    if (opt == OPT_MAX_JSON_VALUES) {
        if (!int_opt("--max-json-values", val, 16, 1LL << 32, &v)) return false;
        l->max_json_values = (size_t)v;
        return true;
    }
    if (opt == OPT_MAX_RESPONSE) {
        if (!int_opt("--max-response-bytes", val, 4096, 1LL << 40, &v)) return false;
        l->max_response_bytes = (size_t)v;
        return true;
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].opt == opt) {
            if (!int_opt(ints[i].name, val, ints[i].min, ints[i].max, &v)) return false;
            *ints[i].to = (int)v;
            return true;
        }
    return false;
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
        {"rate-limit", required_argument, 0, OPT_RATE_LIMIT},
        {"max-json-values", required_argument, 0, OPT_MAX_JSON_VALUES},
        {"max-response-bytes", required_argument, 0, OPT_MAX_RESPONSE},
        {"auto-compact", required_argument, 0, OPT_AUTO_COMPACT},
        {"index-dir", required_argument, 0, OPT_INDEX_DIR},
        {"allow-model-mismatch", no_argument, 0, OPT_ALLOW_MISMATCH},
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
        case 'm':
            o->model = optarg;
            break;
        case OPT_ALLOW_MISMATCH:
            o->cfg.allow_model_mismatch = true;
            break;
        case 'H':
            o->cfg.host = optarg;
            break;
        case 'p':
            if (!int_opt("--port", optarg, 0, 65535, &v)) return CP_EXIT_USAGE;
            o->cfg.port = (int)v;
            break;
        case 't':
            if (!int_opt("--threads", optarg, 0, 1024, &v)) return CP_EXIT_USAGE;
            o->cfg.threads = v ? (int)v : cp_cpu_count();
            break;
        case 'k':
            o->api_keys = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        case OPT_NO_LOG:
            o->cfg.access_log = false;
            break;
        case OPT_INDEX_DIR:
            o->index_dir = optarg;
            break;
        case OPT_READ_ONLY:
            o->cfg.read_only = true;
            break;
        case OPT_RATE_LIMIT:
            if (!int_opt("--rate-limit", optarg, 0, 1000000, &v)) return CP_EXIT_USAGE;
            o->cfg.rate_limit = (double)v;
            break;
        case OPT_AUTO_COMPACT:
            if (!cp_cli_parse_float(optarg, &o->cfg.auto_compact_fraction) ||
                !(o->cfg.auto_compact_fraction >= 0 && o->cfg.auto_compact_fraction <= 1))
                return cp_cli_usage_error(
                    "serve", "--auto-compact needs a number in [0, 1], got '%s'", optarg);
            break;
        case '?':
            return cp_cli_usage_error("serve", "unknown or incomplete option");
        default:
            if (!apply_limit(o, c, optarg)) return CP_EXIT_USAGE;
            break;
        }
    }
    if (optind < argc) return cp_cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (o->n_index == 0 && !o->index_dir)
        return cp_cli_usage_error("serve", "give at least one --index, or --index-dir");
    return 0;
}

/* Name from "NAME=PATH" or from PATH's file name without extension (NULL when out of
 * memory). */
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

static int add_indexes(cp_server *s, const serve_opts *o)
{
    for (int i = 0; i < o->n_index; i++) {
        const char *path;
        char *name = index_name(o->index_specs[i], &path);
        cp_error err;
        cp_status st = CP_OK;
        int rc = CP_EXIT_OK;
        if (!name || !cp_server_index_name_valid(name))
            rc = cp_cli_usage_error("serve",
                                    "index name in '%s' may only use letters, digits, "
                                    "'_', '-' and '.'",
                                    o->index_specs[i]);
        else if ((st = cp_server_add_index(s, name, path, &err)) == CP_EEXISTS)
            rc = cp_cli_usage_error("serve", "two indexes are named '%s': use NAME=PATH", name);
        else if (st)
            rc = cp_cli_report("serve", &err);
        free(name);
        if (rc) return rc;
    }
    return CP_EXIT_OK;
}

int cp_cmd_serve(int argc, char **argv)
{
    serve_opts o = {0};
    o.encoder_threads = 1;
    cp_server_config_init(&o.cfg);
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? CP_EXIT_OK : rc;

    cp_server *s = NULL;
    cp_error err;
    if (cp_server_new(&o.cfg, &s, &err)) return cp_cli_report("serve", &err);
    if (o.api_keys && cp_server_load_api_keys(s, o.api_keys, &err))
        rc = cp_cli_report("serve", &err);
    if (!rc) rc = add_indexes(s, &o);
    if (!rc && o.index_dir) {
        cp_status st = cp_server_add_index_dir(s, o.index_dir, &err);
        if (st == CP_EEXISTS || st == CP_ENOTFOUND)
            rc = cp_cli_usage_error("serve", "%s", err.message);
        else if (st)
            rc = cp_cli_report("serve", &err);
    }
    if (!rc && o.model && cp_server_load_model(s, o.model, o.encoder_threads, &err)) {
        if (err.code == CP_EMODEL) { /* refuse to start: exit 2, naming the way out */
            fprintf(stderr, "colplaid serve: %s\n", err.message);
            fprintf(stderr, "colplaid serve: not started. Record this model as the index's "
                            "with `colplaid index set-model --index IDX --model MODEL`, or "
                            "pass --allow-model-mismatch to serve the index anyway (its text "
                            "searches and upserts then answer 409 MODEL_MISMATCH)\n");
            rc = CP_EXIT_USAGE;
        } else {
            rc = cp_cli_report("serve", &err);
        }
    }
    if (!rc && cp_server_run(s, &err) != CP_OK) {
        cp_cli_report("serve", &err);
        /* A --host that is not an address, or not loopback without keys, is bad usage. */
        rc = err.code == CP_EINVAL ? CP_EXIT_USAGE : CP_EXIT_FAILURE;
    }
    cp_server_free(s);
    return rc;
}
