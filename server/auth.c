/*
 * API keys: see auth.h. Every configured key is compared with the presented one, each in
 * time independent of where they differ, so timing reveals neither a key's prefix nor
 * which key matched.
 */
#include "auth.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KEY_MAX = 256 };

typedef struct auth_key {
    char key[KEY_MAX];
    size_t len;
    cp_scope scope;
    int line;
} auth_key;

struct cp_auth {
    auth_key *keys;
    size_t n;
};

const char *cp_scope_name(cp_scope s)
{
    switch (s) {
    case CP_SCOPE_READ: return "read";
    case CP_SCOPE_WRITE: return "write";
    case CP_SCOPE_ADMIN: return "admin";
    default: return "none";
    }
}

static cp_scope parse_scope(const char *s)
{
    if (!strcmp(s, "read")) return CP_SCOPE_READ;
    if (!strcmp(s, "write")) return CP_SCOPE_WRITE;
    if (!strcmp(s, "admin")) return CP_SCOPE_ADMIN;
    return CP_SCOPE_NONE;
}

static cp_status add_line(cp_auth *a, char *line, int lineno, const char *path, cp_error *err)
{
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *save = NULL;
    char *key = strtok_r(line, " \t\r\n", &save);
    if (!key) return CP_OK;
    char *scope = strtok_r(NULL, " \t\r\n", &save);
    char *extra = strtok_r(NULL, " \t\r\n", &save);
    if (!scope || extra || parse_scope(scope) == CP_SCOPE_NONE)
        return cp_error_set(err, CP_EINVAL, "%s line %d: expected \"KEY SCOPE\" with scope read, "
                            "write or admin", path, lineno);
    size_t len = strlen(key);
    if (len < 8 || len >= KEY_MAX)
        return cp_error_set(err, CP_EINVAL, "%s line %d: a key must have 8 to %d characters",
                            path, lineno, KEY_MAX - 1);
    auth_key *k = realloc(a->keys, (a->n + 1) * sizeof *k);
    if (!k) return cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
    a->keys = k;
    k = &a->keys[a->n++];
    memset(k->key, 0, sizeof k->key);
    memcpy(k->key, key, len);
    k->len = len;
    k->scope = parse_scope(scope);
    k->line = lineno;
    return CP_OK;
}

cp_status cp_auth_load(const char *path, cp_auth **out, cp_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return cp_error_set(err, CP_ENOTFOUND, "cannot read API keys file %s", path);
    cp_auth *a = calloc(1, sizeof *a);
    if (!a) {
        fclose(f);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    char line[1024];
    int lineno = 0;
    cp_status st = CP_OK;
    while (!st && fgets(line, sizeof line, f)) st = add_line(a, line, ++lineno, path, err);
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
    for (size_t i = 0; i < auth->n; i++) memset(auth->keys[i].key, 0, KEY_MAX);
    free(auth->keys);
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
    const char *key = authorization + 7;
    while (*key == ' ') key++;
    size_t len = strnlen(key, KEY_MAX);
    while (len > 0 && isspace((unsigned char)key[len - 1])) len--;
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
