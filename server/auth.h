/*
 * API keys: a file of "KEY SCOPE [rate=N]" lines (scope read, write or admin; '#' starts a
 * comment; rate=N limits the key to N requests per second). admin implies write, write
 * implies read. Lines are read whole: a line over CP_AUTH_LINE_MAX bytes, a NUL byte or a
 * malformed line refuses the file with its line number. Keys are compared in constant time
 * and never logged; a request is identified in logs by the key's line number only.
 *
 * Thread safety: a loaded cp_auth may be used from any thread (the keys are read-only; the
 * rate limit buckets are behind a mutex). cp_auth_set_rate is for set-up only.
 */
#ifndef CP_SERVER_AUTH_H
#define CP_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "colplaid/error.h"

typedef enum cp_scope { CP_SCOPE_NONE = 0, CP_SCOPE_READ, CP_SCOPE_WRITE, CP_SCOPE_ADMIN } cp_scope;

typedef struct cp_auth cp_auth;

enum { CP_AUTH_LINE_MAX = 4096 };
#define CP_AUTH_RATE_MAX 1e6

/* A token bucket: rate tokens per second, a burst of max(1, rate); zero-initialised. */
typedef struct cp_rate_bucket {
    double tokens;
    double last; /* monotonic seconds of the last update; 0: never used */
} cp_rate_bucket;

/* Take one token from b at time now (monotonic seconds). rate <= 0: unlimited. False when
 * the bucket is empty, with *retry_after_s the whole seconds (>= 1) until a token is back. */
bool cp_rate_take(cp_rate_bucket *b, double rate, double now, int *retry_after_s);

cp_status cp_auth_load(const char *path, cp_auth **out, cp_error *err);
void cp_auth_free(cp_auth *auth);
size_t cp_auth_count(const cp_auth *auth);

/* The scope of the key in an "Authorization: Bearer KEY" header value, CP_SCOPE_NONE when
 * the header is missing, malformed or the key unknown. *key_line gets the key's line
 * number (for logs) or 0. */
cp_scope cp_auth_check(const cp_auth *auth, const char *authorization, int *key_line);

const char *cp_scope_name(cp_scope s);

/* The rate of the keys without "rate=N" (serve --rate-limit); 0: unlimited. */
void cp_auth_set_rate(cp_auth *auth, double per_second);

/* Take one request from the bucket of the key of key_line (from cp_auth_check); false
 * (with *retry_after_s) when that key is over its rate. */
bool cp_auth_rate_take(cp_auth *auth, int key_line, double now, int *retry_after_s);

#endif
