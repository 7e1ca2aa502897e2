/*
 * API keys: a file of "KEY SCOPE" lines (scope read, write or admin; '#' starts a
 * comment). admin implies write, write implies read. Keys are compared in constant time
 * and never logged; a request is identified in logs by the key's line number only.
 *
 * Thread safety: a loaded cp_auth is read-only and may be used from any thread.
 */
#ifndef CP_SERVER_AUTH_H
#define CP_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "colplaid/error.h"

typedef enum cp_scope { CP_SCOPE_NONE = 0, CP_SCOPE_READ, CP_SCOPE_WRITE, CP_SCOPE_ADMIN } cp_scope;

typedef struct cp_auth cp_auth;

cp_status cp_auth_load(const char *path, cp_auth **out, cp_error *err);
void cp_auth_free(cp_auth *auth);
size_t cp_auth_count(const cp_auth *auth);

/* The scope of the key in an "Authorization: Bearer KEY" header value, CP_SCOPE_NONE when
 * the header is missing, malformed or the key unknown. *key_line gets the key's line
 * number (for logs) or 0. */
cp_scope cp_auth_check(const cp_auth *auth, const char *authorization, int *key_line);

const char *cp_scope_name(cp_scope s);

#endif
