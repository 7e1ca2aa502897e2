/*
 * A growing string buffer for building response bodies. Appends after a failed allocation
 * are ignored and the buffer remembers the failure, so callers check once at the end.
 */
#ifndef CP_SERVER_STRBUF_H
#define CP_SERVER_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cp_sb {
    char *data;
    size_t len, cap;
    bool oom;
} cp_sb;

void cp_sb_append(cp_sb *sb, const char *s);
void cp_sb_printf(cp_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included. */
void cp_sb_json_string(cp_sb *sb, const char *s);
/* Take the buffer (NULL if an allocation failed); sb is reset. */
char *cp_sb_take(cp_sb *sb, size_t *len);
void cp_sb_free(cp_sb *sb);

#endif
