/*
 * The server object's life cycle (colplaid/server.h): configuration defaults, opening the
 * indexes, loading the API keys and the model once, and freeing it all. Serving is http.c.
 */
#include <dirent.h>
#include <errno.h>
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
    pthread_rwlock_init(&s->indexes_lock, NULL);
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
    for (size_t i = 0; i < s->n_indexes; i++)
        cp_served_index_release(s->indexes[i]);
    free(s->indexes);
    pthread_rwlock_destroy(&s->indexes_lock);
    free(s->index_dir);
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

/* A name that may also name a file NAME.db in --index-dir: a valid index name that starts
 * with a letter or digit (no hidden files, no "." or ".."). */
static bool file_name_valid(const char *name)
{
    char c = name ? name[0] : 0;
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum && cp_server_index_name_valid(name);
}

/* ---- the served-index table ---------------------------------------------------------------- */

void cp_served_index_retain(cp_served_index *si)
{
    atomic_fetch_add(&si->refs, 1);
}

/* path's -wal, -shm, -journal and -lock (the writer lock's file) companions, then path
 * itself. After the handle is closed: the lock is released then. */
static void remove_index_files(const char *path)
{
    static const char *const suffixes[] = {"-wal", "-shm", "-journal", "-lock", ""};
    char buf[4200];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (snprintf(buf, sizeof buf, "%s%s", path, suffixes[i]) < (int)sizeof buf) unlink(buf);
}

void cp_served_index_release(cp_served_index *si)
{
    if (!si || atomic_fetch_sub(&si->refs, 1) != 1) return;
    if (si->shares)
        cp_served_index_release(si->shares);
    else if (si->index)
        cp_index_close(si->index); /* releases the writer lock before the file goes */
    if (si->remove_on_free) {
        remove_index_files(si->path);
        fprintf(stderr, "colplaid serve: index '%s' dropped: %s removed\n", si->name, si->path);
    }
    free(si->name);
    free(si->path);
    free(si);
}

/* Called with indexes_lock held. */
static cp_served_index *find_locked(cp_server *s, const char *name)
{
    for (size_t i = 0; i < s->n_indexes; i++)
        if (!strcmp(s->indexes[i]->name, name)) return s->indexes[i];
    return NULL;
}

cp_served_index *cp_server_index_get(cp_server *s, const char *name)
{
    pthread_rwlock_rdlock(&s->indexes_lock);
    cp_served_index *si = find_locked(s, name);
    if (si) cp_served_index_retain(si);
    pthread_rwlock_unlock(&s->indexes_lock);
    return si;
}

cp_served_index **cp_server_indexes_list(cp_server *s, size_t *n)
{
    pthread_rwlock_rdlock(&s->indexes_lock);
    cp_served_index **list = s->n_indexes ? malloc(s->n_indexes * sizeof *list) : NULL;
    *n = list ? s->n_indexes : 0;
    for (size_t i = 0; i < *n; i++) {
        list[i] = s->indexes[i];
        cp_served_index_retain(list[i]);
    }
    pthread_rwlock_unlock(&s->indexes_lock);
    return list;
}

void cp_server_indexes_release(cp_served_index **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cp_served_index_release(list[i]);
    free(list);
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

/* Open path and serve it as name (in_dir: a file of --index-dir). The table's write lock is
 * taken only to insert, so that searches never wait for a file to open; callers are the
 * setup thread or the writer thread, one at a time. *out (may be NULL) gets the entry,
 * retained. */
static cp_status add_index(cp_server *s, const char *name, const char *path, bool in_dir,
                           cp_served_index **out, cp_error *err)
{
    if (out) *out = NULL;
    if (!cp_server_index_name_valid(name))
        return cp_error_set(err, CP_EINVAL,
                            "index name '%.200s' may only use letters, digits, "
                            "'_', '-' and '.'",
                            name ? name : "");
    cp_served_index *taken = cp_server_index_get(s, name);
    cp_served_index_release(taken);
    if (taken) return cp_error_set(err, CP_EEXISTS, "two indexes are named '%s'", name);
    cp_served_index *si = calloc(1, sizeof *si);
    if (!si) return cp_error_set(err, CP_ENOMEM, "out of memory");
    atomic_init(&si->refs, 1);
    atomic_init(&si->dropped, false);
    si->in_dir = in_dir;
    si->name = strdup(name);
    si->path = strdup(path);
    const char *why_ro = NULL;
    cp_index_stats st;
    cp_status rc = si->name && si->path ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
    /* The same file under a second name: opening it again would find our own writer lock
     * taken and serve a stale read-only view. Share the first handle instead. */
    struct stat fs;
    cp_served_index *same = NULL;
    if (rc == CP_OK && stat(path, &fs) == 0) {
        si->dev = fs.st_dev;
        si->ino = fs.st_ino;
        pthread_rwlock_rdlock(&s->indexes_lock);
        for (size_t j = 0; j < s->n_indexes && !same; j++)
            if (s->indexes[j]->dev == fs.st_dev && s->indexes[j]->ino == fs.st_ino) {
                same = s->indexes[j];
                while (same->shares)
                    same = same->shares;
                cp_served_index_retain(same);
            }
        pthread_rwlock_unlock(&s->indexes_lock);
    }
    if (rc == CP_OK && same) {
        si->index = same->index;
        si->writable = same->writable;
        si->shares = same;
        why_ro = s->cfg.read_only ? "--read-only" : NULL;
    } else if (rc == CP_OK) {
        rc = open_index(s, path, &si->index, &si->writable, &why_ro, err);
    }
    if (rc == CP_OK) rc = cp_index_stats_get(si->index, &st, err);
    if (rc == CP_OK) {
        pthread_rwlock_wrlock(&s->indexes_lock);
        if (s->n_indexes == s->cap_indexes) {
            size_t cap = s->cap_indexes ? 2 * s->cap_indexes : 8;
            cp_served_index **grown = realloc(s->indexes, cap * sizeof *grown);
            if (grown) {
                s->indexes = grown;
                s->cap_indexes = cap;
            }
        }
        if (s->n_indexes < s->cap_indexes) {
            si->dim = st.dim;
            cp_error ignored; /* a mismatch is kept in si (only --allow-model-mismatch gets here) */
            cp_server_check_model(s, si, &ignored);
            s->indexes[s->n_indexes++] = si;
        } else {
            rc = cp_error_set(err, CP_ENOMEM, "out of memory");
        }
        pthread_rwlock_unlock(&s->indexes_lock);
    }
    if (rc != CP_OK) {
        cp_served_index_release(si);
        return rc;
    }
    char shared[300] = "";
    if (same)
        snprintf(shared, sizeof shared, " (the same file as index '%s': one shared handle)",
                 same->name);
    if (same && !si->writable && !s->cfg.read_only) why_ro = "like the file's first name";
    fprintf(stderr,
            "colplaid serve: index '%s' from %s: %lld documents, %lld tokens, dim %d, "
            "%s%s%s%s\n",
            si->name, si->path, (long long)st.n_documents, (long long)st.n_tokens, st.dim,
            si->writable ? "writable" : "read-only (", why_ro && !si->writable ? why_ro : "",
            si->writable ? "" : ")", shared);
    if (out) {
        cp_served_index_retain(si);
        *out = si;
    }
    return CP_OK;
}

cp_status cp_server_add_index(cp_server *s, const char *name, const char *path, cp_error *err)
{
    return add_index(s, name, path, false, NULL, err);
}

/* DIR/NAME.db, malloc'd. */
static char *dir_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 8;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.db", dir, name);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

cp_status cp_server_add_index_dir(cp_server *s, const char *dir, cp_error *err)
{
    struct stat sb;
    if (!dir || !*dir) return cp_error_set(err, CP_EINVAL, "--index-dir needs a directory");
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cp_error_set(err, CP_ENOTFOUND, "--index-dir %s is not a directory", dir);
    if (!s->cfg.read_only && access(dir, W_OK | X_OK) != 0)
        return cp_error_set(err, CP_EREADONLY,
                            "--index-dir %s is not writable (give --read-only to serve its "
                            "indexes without creating any)",
                            dir);
    free(s->index_dir);
    if (!(s->index_dir = strdup(dir))) return cp_error_set(err, CP_ENOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d)
        return cp_error_set(err, CP_EIO, "cannot read --index-dir %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    cp_status st = CP_OK;
    for (struct dirent *e; st == CP_OK && (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len <= 3 || strcmp(e->d_name + len - 3, ".db")) continue;
        char *name = strndup(e->d_name, len - 3);
        if (!name)
            st = cp_error_set(err, CP_ENOMEM, "out of memory");
        else if (!file_name_valid(name)) {
            fprintf(stderr,
                    "colplaid serve: skipping %s/%s: an index name starts with a letter or "
                    "digit and uses only letters, digits, '_', '-' and '.' (1-128)\n",
                    dir, e->d_name);
            free(name);
            continue;
        }
        if (st == CP_OK && n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(names, cap * sizeof *grown);
            if (!grown)
                st = cp_error_set(err, CP_ENOMEM, "out of memory");
            else
                names = grown;
        }
        if (st == CP_OK)
            names[n++] = name;
        else
            free(name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str); /* a stable order in listings */
    for (size_t i = 0; i < n; i++) {
        char *path = st == CP_OK ? dir_path(dir, names[i]) : NULL;
        if (st == CP_OK && !path) st = cp_error_set(err, CP_ENOMEM, "out of memory");
        if (st == CP_OK) {
            cp_served_index *taken = cp_server_index_get(s, names[i]);
            cp_served_index_release(taken);
            if (taken)
                st = cp_error_set(err, CP_EEXISTS,
                                  "index '%s' is given with --index and found in --index-dir as "
                                  "%s: rename one (--index OTHER=PATH)",
                                  names[i], path);
        }
        if (st == CP_OK) st = add_index(s, names[i], path, true, NULL, err);
        free(path);
        free(names[i]);
    }
    free(names);
    return st;
}

cp_status cp_server_create_index(cp_server *s, const char *name, cp_served_index *from,
                                 cp_served_index **out, cp_error *err)
{
    *out = NULL;
    if (!file_name_valid(name))
        return cp_error_set(err, CP_EINVAL,
                            "index name '%.200s' must be 1-128 letters, digits, '_', '-' and "
                            "'.', starting with a letter or digit",
                            name ? name : "");
    if (!s->index_dir) return cp_error_set(err, CP_EREADONLY, "no --index-dir");
    cp_served_index *taken = cp_server_index_get(s, name);
    cp_served_index_release(taken);
    if (taken) return cp_error_set(err, CP_EEXISTS, "an index named '%s' is served already", name);
    char *path = dir_path(s->index_dir, name);
    if (!path) return cp_error_set(err, CP_ENOMEM, "out of memory");
    cp_status st = cp_index_create_like(path, from->index, err);
    if (st == CP_OK) {
        st = add_index(s, name, path, true, out, err);
        /* Made here and not served: leave nothing behind. */
        if (st != CP_OK) remove_index_files(path);
    }
    free(path);
    return st;
}

void cp_server_drop_index(cp_server *s, cp_served_index *si, double wait_s, cp_drop_result *out)
{
    memset(out, 0, sizeof *out);
    bool listed = false;
    pthread_rwlock_wrlock(&s->indexes_lock);
    for (size_t i = 0; i < s->n_indexes; i++)
        if (s->indexes[i] == si) {
            memmove(&s->indexes[i], &s->indexes[i + 1],
                    (s->n_indexes - i - 1) * sizeof *s->indexes);
            s->n_indexes--;
            listed = true;
            break;
        }
    /* Another name for the same file keeps it. */
    for (size_t i = 0; i < s->n_indexes && listed; i++)
        if (s->indexes[i]->dev == si->dev && s->indexes[i]->ino == si->ino) {
            snprintf(out->shared_with, sizeof out->shared_with, "%s", s->indexes[i]->name);
            break;
        }
    pthread_rwlock_unlock(&s->indexes_lock);
    if (!listed) { /* dropped meanwhile: nothing more to do */
        out->kept = "already dropped";
        return;
    }
    atomic_store(&si->dropped, true);
    if (!si->in_dir)
        out->kept = "the index was given with --index: only the directory's indexes are removed";
    else if (s->cfg.read_only)
        out->kept = "the server is --read-only";
    else if (!si->writable)
        out->kept = "the index is served read-only (another process holds its writer lock)";
    else if (out->shared_with[0])
        out->kept = "the file is still served under another name";
    bool remove = out->kept == NULL;
    /* The table's reference goes; the caller's stays. Wait for the requests that found the
     * entry before the drop (their handlers take milliseconds) to finish with it. Writes
     * queued behind this drop need not be waited for (they wait for this thread): they find
     * the entry dropped and answer 404 without touching its handle. */
    cp_served_index_release(si);
    double deadline = cp_now_seconds() + wait_s;
    while (remove && atomic_load(&si->refs) - 1 - (long)cp_http_queued_writes(s, si) > 0 &&
           cp_now_seconds() < deadline) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!remove) return;
    if (atomic_load(&si->refs) - 1 - (long)cp_http_queued_writes(s, si) > 0) {
        /* Still in use: the last release removes it. Only the caller and those requests
         * hold references now, and no one can find the entry any more. */
        si->remove_on_free = true;
        out->pending = true;
        return;
    }
    /* No one uses the handle any more: close and remove now, so the answer can say so. */
    if (si->shares) {
        cp_served_index_release(si->shares);
        si->shares = NULL;
    } else {
        cp_index_close(si->index);
    }
    si->index = NULL;
    remove_index_files(si->path);
    out->file_removed = true;
    fprintf(stderr, "colplaid serve: index '%s' dropped: %s removed\n", si->name, si->path);
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

cp_status cp_server_check_model(cp_server *s, cp_served_index *si, cp_error *err)
{
    si->model_mismatch = false;
    si->mismatch[0] = '\0';
    si->encode_dim = s->encoder ? cp_encoder_dim(s->encoder) : si->dim;
    if (!s->encoder || !si->index) return CP_OK;
    char *stored = cp_index_meta_get(si->index, "encoder");
    cp_status st = cp_encoder_match(s->encoder, stored, &si->encode_dim, err);
    free(stored);
    if (st == CP_EMODEL) {
        si->model_mismatch = true;
        cp_error_prefix(err, "index '%s'", si->name);
        snprintf(si->mismatch, sizeof si->mismatch, "%s", err->message);
    }
    return st;
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
    for (size_t i = 0; i < s->n_indexes; i++) {
        cp_served_index *si = s->indexes[i];
        st = cp_server_check_model(s, si, err);
        if (st == CP_EMODEL && s->cfg.allow_model_mismatch) {
            fprintf(stderr,
                    "colplaid serve: warning: %s; served (--allow-model-mismatch): its text "
                    "searches and text upserts answer 409 MODEL_MISMATCH\n",
                    err->message);
            st = CP_OK;
        }
        if (st != CP_OK) return st;
        if (!si->model_mismatch && si->encode_dim != si->dim)
            fprintf(stderr,
                    "colplaid serve: warning: the model encodes %d dims but index '%s' has "
                    "%d: text queries to it will be refused\n",
                    dim, si->name, si->dim);
    }
    return CP_OK;
}
