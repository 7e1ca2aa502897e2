/*
 * API keys: see auth.h. Every configured key is compared with the presented one, each in
 * time independent of where they differ, so timing reveals neither a key's prefix nor
 * which key matched.
 */
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

enum { KEY_MAX = 256 };

typedef struct auth_key {
    char key[KEY_MAX];
    size_t len;
    cp_scope scope;
    int line;
    double rate; /* requests per second from "rate=N"; 0: the default (cp_auth_set_rate) */
    cp_rate_bucket bucket;
} auth_key;

struct cp_auth {
    auth_key *keys;
    size_t n;
    double default_rate; /* 0: unlimited */
    pthread_mutex_t mu;  /* the keys' token buckets */
};

const char *cp_scope_name(cp_scope s)
{
    switch (s) {
    case CP_SCOPE_READ:
        return "read";
    case CP_SCOPE_WRITE:
        return "write";
    case CP_SCOPE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

static cp_scope parse_scope(const char *s)
{
    if (!strcmp(s, "read")) return CP_SCOPE_READ;
    if (!strcmp(s, "write")) return CP_SCOPE_WRITE;
    if (!strcmp(s, "admin")) return CP_SCOPE_ADMIN;
    return CP_SCOPE_NONE;
}

/* "rate=N": N requests per second, a number in (0, 1e6]. */
static bool parse_rate(const char *s, double *rate)
{
    if (strncmp(s, "rate=", 5)) return false;
    char *end;
    errno = 0;
    double v = strtod(s + 5, &end);
    if (end == s + 5 || *end || errno || !(v > 0) || v > CP_AUTH_RATE_MAX) return false;
    *rate = v;
    return true;
}

/* One line, without its '\n' (len bytes, NUL-terminated at line[len]). */
static cp_status add_line(cp_auth *a, char *line, size_t len, int lineno, const char *path,
                          cp_error *err)
{
    if (memchr(line, '\0', len))
        return cp_error_set(err, CP_EINVAL, "%s line %d: a NUL byte (is this a text file?)", path,
                            lineno);
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *save = NULL;
    char *key = strtok_r(line, " \t\r", &save);
    if (!key) return CP_OK;
    char *scope = strtok_r(NULL, " \t\r", &save);
    char *opt = strtok_r(NULL, " \t\r", &save);
    char *extra = opt ? strtok_r(NULL, " \t\r", &save) : NULL;
    double rate = 0;
    if (!scope || extra || parse_scope(scope) == CP_SCOPE_NONE || (opt && !parse_rate(opt, &rate)))
        return cp_error_set(err, CP_EINVAL,
                            "%s line %d: expected \"KEY SCOPE [rate=N]\" with scope read, "
                            "write or admin and N requests per second in (0, %g]",
                            path, lineno, CP_AUTH_RATE_MAX);
    size_t klen = strlen(key);
    if (klen < 8 || klen >= KEY_MAX)
        return cp_error_set(err, CP_EINVAL, "%s line %d: a key must have 8 to %d characters", path,
                            lineno, KEY_MAX - 1);
    for (size_t i = 0; i < a->n; i++)
        if (a->keys[i].len == klen && !memcmp(a->keys[i].key, key, klen))
            return cp_error_set(err, CP_EINVAL, "%s line %d: the key of line %d again", path,
                                lineno, a->keys[i].line);
    auth_key *k = realloc(a->keys, (a->n + 1) * sizeof *k);
    if (!k) return cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
    a->keys = k;
    k = &a->keys[a->n++];
    memset(k, 0, sizeof *k);
    memcpy(k->key, key, klen);
    k->len = klen;
    k->scope = parse_scope(scope);
    k->line = lineno;
    k->rate = rate;
    return CP_OK;
}

cp_status cp_auth_load(const char *path, cp_auth **out, cp_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return cp_error_set(err, CP_ENOTFOUND, "cannot read API keys file %s", path);
    cp_auth *a = calloc(1, sizeof *a);
    if (!a || pthread_mutex_init(&a->mu, NULL)) {
        free(a);
        fclose(f);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    /* Whole lines: a line read in pieces would turn the tail of a long comment into a key. */
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0;
    cp_status st = CP_OK;
    errno = 0;
    while (!st && (got = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)got;
        lineno++;
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        if (len > CP_AUTH_LINE_MAX)
            st = cp_error_set(err, CP_EINVAL,
                              "%s line %d: %zu bytes, more than the %d a line may have", path,
                              lineno, len, CP_AUTH_LINE_MAX);
        else
            st = add_line(a, line, len, lineno, path, err);
    }
    if (!st && ferror(f)) st = cp_error_set(err, CP_EIO, "cannot read API keys file %s", path);
    if (line) memset(line, 0, cap); /* it held keys */
    free(line);
    fclose(f);
    if (!st && a->n == 0) st = cp_error_set(err, CP_EINVAL, "%s holds no API keys", path);
    if (st) {
        cp_auth_free(a);
        return st;
    }
    *out = a;
    return CP_OK;
}

void cp_auth_free(cp_auth *auth)
{
    if (!auth) return;
    /* Keys are secrets: do not leave them in freed memory. */
    for (size_t i = 0; i < auth->n; i++)
        memset(auth->keys[i].key, 0, KEY_MAX);
    free(auth->keys);
    pthread_mutex_destroy(&auth->mu);
    free(auth);
}

size_t cp_auth_count(const cp_auth *auth)
{
    return auth ? auth->n : 0;
}

/* Compare over the whole fixed-size buffer so the time does not depend on the lengths or
 * on the first differing byte. */
static int equal_ct(const auth_key *k, const char *given, size_t len)
{
    volatile unsigned char diff = (unsigned char)(len != k->len);
    for (size_t i = 0; i < KEY_MAX; i++) {
        unsigned char g = i < len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)k->key[i]);
    }
    return diff == 0;
}

cp_scope cp_auth_check(const cp_auth *auth, const char *authorization, int *key_line)
{
    *key_line = 0;
    if (!auth || !authorization) return CP_SCOPE_NONE;
    if (strncasecmp(authorization, "Bearer ", 7) != 0) return CP_SCOPE_NONE;
    /* Exactly "Bearer <key>": the HTTP layer refuses any other spacing with 400 before this
     * runs (headers_strict), so no padding is trimmed here. */
    const char *key = authorization + 7;
    size_t len = strnlen(key, KEY_MAX);
    if (len == 0 || len >= KEY_MAX) return CP_SCOPE_NONE;
    cp_scope found = CP_SCOPE_NONE;
    for (size_t i = 0; i < auth->n; i++) {
        int eq = equal_ct(&auth->keys[i], key, len);
        /* No early exit: every key is compared whatever matched. */
        if (eq && found == CP_SCOPE_NONE) {
            found = auth->keys[i].scope;
            *key_line = auth->keys[i].line;
        }
    }
    return found;
}

void cp_auth_set_rate(cp_auth *auth, double per_second)
{
    if (auth) auth->default_rate = per_second > 0 ? per_second : 0;
}

bool cp_rate_take(cp_rate_bucket *b, double rate, double now, int *retry_after_s)
{
    *retry_after_s = 0;
    if (!(rate > 0)) return true;
    /* A burst of one second's worth (at least one request). */
    double burst = rate < 1 ? 1 : rate;
    if (b->last == 0) {
        b->tokens = burst;
    } else if (now > b->last) {
        b->tokens += (now - b->last) * rate;
        if (b->tokens > burst) b->tokens = burst;
    }
    b->last = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return true;
    }
    double wait = (1 - b->tokens) / rate;
    int s = (int)wait;
    if (s < wait) s++;
    *retry_after_s = s < 1 ? 1 : s;
    return false;
}

bool cp_auth_rate_take(cp_auth *auth, int key_line, double now, int *retry_after_s)
{
    *retry_after_s = 0;
    if (!auth) return true;
    bool ok = true;
    pthread_mutex_lock(&auth->mu);
    for (size_t i = 0; i < auth->n; i++) {
        auth_key *k = &auth->keys[i];
        if (k->line != key_line) continue;
        ok = cp_rate_take(&k->bucket, k->rate > 0 ? k->rate : auth->default_rate, now,
                          retry_after_s);
        break;
    }
    pthread_mutex_unlock(&auth->mu);
    return ok;
}
