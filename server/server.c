/*
 * The server object's life cycle (colplaid/server.h): configuration defaults, opening the
 * indexes, loading the API keys and the model once, and freeing it all. Serving is http.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cp_cpu.h"
#include "server.h"

void cp_server_config_init(cp_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->threads = cp_cpu_count();
    cfg->queue_depth = 256;
    cfg->write_queue = 64;
    cfg->timeout_s = 30;
    cfg->max_connections = 1000;
    cfg->shutdown_grace_s = 30;
    cfg->access_log = true;
    cfg->encode_batch = 32;
    cfg->auto_compact_fraction = 0.2;
    cp_limits_init(&cfg->limits);
}

cp_status cp_server_new(const cp_server_config *cfg, cp_server **out, cp_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->host)
        return cp_error_set(err, CP_EINVAL, "the server needs a config with a host");
    cp_server *s = calloc(1, sizeof *s);
    if (!s || !(s->metrics = cp_metrics_new())) {
        free(s);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    s->cfg = *cfg;
    /* Set up while one thread runs: cJSON's hooks are process-wide (request.h). */
    cp_request_install_hooks();
    s->start_time = cp_now_seconds();
    s->start_wall = (int64_t)time(NULL);
    s->pid = (long)getpid();
    *out = s;
    return CP_OK;
}

void cp_server_free(cp_server *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_indexes; i++) {
        if (s->indexes[i].index && !s->indexes[i].borrowed) cp_index_close(s->indexes[i].index);
        free(s->indexes[i].name);
        free(s->indexes[i].path);
    }
    free(s->indexes);
    if (s->encoder) cp_encoder_free(s->encoder);
    cp_auth_free(s->auth);
    cp_metrics_free(s->metrics);
    free(s);
}

bool cp_server_index_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 128) return false;
    for (const char *p = name; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", *p))
            return false;
    return true;
}

/* Open path for writing unless the config forbids it; *why_ro says why it is read-only. */
static cp_status open_index(const cp_server *s, const char *path, cp_index **index, bool *writable,
                            const char **why_ro, cp_error *err)
{
    *why_ro = s->cfg.read_only ? "--read-only" : NULL;
    cp_status st = CP_EREADONLY;
    if (!s->cfg.read_only) st = cp_index_open(path, CP_OPEN_WRITE, index, err);
    *writable = st == CP_OK;
    /* Another writer (a CLI `index add`, a second server) or a read-only file: keep serving
     * searches rather than refuse to start, and say so. */
    if (!s->cfg.read_only && (st == CP_EBUSY || st == CP_EREADONLY))
        *why_ro =
            st == CP_EBUSY ? "another process holds its writer lock" : "the file is not writable";
    if (st != CP_OK && !*why_ro) return st;
    if (!*writable) return cp_index_open(path, CP_OPEN_READONLY, index, err);
    return CP_OK;
}

cp_status cp_server_add_index(cp_server *s, const char *name, const char *path, cp_error *err)
{
    if (!cp_server_index_name_valid(name))
        return cp_error_set(err, CP_EINVAL,
                            "index name '%.200s' may only use letters, digits, "
                            "'_', '-' and '.'",
                            name ? name : "");
    for (size_t j = 0; j < s->n_indexes; j++)
        if (!strcmp(s->indexes[j].name, name))
            return cp_error_set(err, CP_EEXISTS, "two indexes are named '%s'", name);
    if (s->n_indexes == s->cap_indexes) {
        size_t cap = s->cap_indexes ? 2 * s->cap_indexes : 4;
        cp_served_index *grown = realloc(s->indexes, cap * sizeof *grown);
        if (!grown) return cp_error_set(err, CP_ENOMEM, "out of memory");
        s->indexes = grown;
        s->cap_indexes = cap;
    }
    cp_served_index si = {.name = strdup(name), .path = strdup(path)};
    const char *why_ro = NULL;
    cp_index_stats st;
    cp_status rc = si.name && si.path ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
    /* The same file under a second name: opening it again would find our own writer lock
     * taken and serve a stale read-only view. Share the first handle instead. */
    struct stat fs;
    const cp_served_index *same = NULL;
    if (rc == CP_OK && stat(path, &fs) == 0) {
        si.dev = fs.st_dev;
        si.ino = fs.st_ino;
        for (size_t j = 0; j < s->n_indexes && !same; j++)
            if (s->indexes[j].dev == fs.st_dev && s->indexes[j].ino == fs.st_ino)
                same = &s->indexes[j];
    }
    if (rc == CP_OK && same) {
        si.index = same->index;
        si.writable = same->writable;
        si.borrowed = true;
        why_ro = s->cfg.read_only ? "--read-only" : NULL;
    } else if (rc == CP_OK) {
        rc = open_index(s, path, &si.index, &si.writable, &why_ro, err);
    }
    if (rc == CP_OK) rc = cp_index_stats_get(si.index, &st, err);
    if (rc != CP_OK) {
        if (si.index && !si.borrowed) cp_index_close(si.index);
        free(si.name);
        free(si.path);
        return rc;
    }
    si.dim = st.dim;
    s->indexes[s->n_indexes++] = si;
    char shared[300] = "";
    if (same)
        snprintf(shared, sizeof shared, " (the same file as index '%s': one shared handle)",
                 same->name);
    if (same && !si.writable && !s->cfg.read_only) why_ro = "like the file's first name";
    fprintf(stderr,
            "colplaid serve: index '%s' from %s: %lld documents, %lld tokens, dim %d, "
            "%s%s%s%s\n",
            si.name, si.path, (long long)st.n_documents, (long long)st.n_tokens, st.dim,
            si.writable ? "writable" : "read-only (", why_ro && !si.writable ? why_ro : "",
            si.writable ? "" : ")", shared);
    return CP_OK;
}

cp_status cp_server_load_api_keys(cp_server *s, const char *path, cp_error *err)
{
    cp_auth *auth;
    cp_status st = cp_auth_load(path, &auth, err);
    if (st != CP_OK) return st;
    cp_auth_free(s->auth);
    s->auth = auth;
    cp_auth_set_rate(s->auth, s->cfg.rate_limit);
    fprintf(stderr, "colplaid serve: %zu API keys loaded\n", cp_auth_count(s->auth));
    return CP_OK;
}

cp_status cp_server_load_model(cp_server *s, const char *model_dir, int encoder_threads,
                               cp_error *err)
{
    cp_encoder_options eo;
    cp_encoder_options_init(&eo);
    eo.threads = encoder_threads;
    cp_encoder *enc;
    cp_status st = cp_encoder_load(model_dir, &eo, &enc, err);
    if (st != CP_OK) return st;
    if (s->encoder) cp_encoder_free(s->encoder);
    s->encoder = enc;
    int dim = cp_encoder_dim(s->encoder);
    for (size_t i = 0; i < s->n_indexes; i++)
        if (s->indexes[i].dim != dim)
            fprintf(stderr,
                    "colplaid serve: warning: the model encodes %d dims but index '%s' has "
                    "%d: text queries to it will be refused\n",
                    dim, s->indexes[i].name, s->indexes[i].dim);
    return CP_OK;
}
