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
    size_t limit; /* 0: none; else appends that would pass limit bytes are dropped... */
    bool too_big; /* ...and this is set (cp_response_set_body answers 422) */
} cp_sb;

void cp_sb_append(cp_sb *sb, const char *s);
void cp_sb_printf(cp_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included. Every JSON text the server writes (responses,
 * log lines) goes through here: control characters, quotes and backslashes are escaped, and
 * bytes that are not valid UTF-8 (data stored before the server refused them, paths echoed
 * in errors, truncated messages) become U+FFFD, so the output is always valid JSON. */
void cp_sb_json_string(cp_sb *sb, const char *s);
/* s, a JSON text, appended with any byte that is not valid UTF-8 replaced by U+FFFD (in a
 * valid JSON text such bytes can only be inside strings, so it stays valid JSON). */
void cp_sb_append_json_text(cp_sb *sb, const char *s);
/* Take the buffer (NULL if an allocation failed); sb is reset. */
char *cp_sb_take(cp_sb *sb, size_t *len);
void cp_sb_free(cp_sb *sb);

#endif
