/* Growing string buffer: see strbuf.h. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(cp_sb *sb, size_t more)
{
    if (sb->oom) return false;
    if (sb->len + more + 1 <= sb->cap) return true;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + more + 1) cap *= 2;
    char *p = realloc(sb->data, cap);
    if (!p) {
        sb->oom = true;
        return false;
    }
    sb->data = p;
    sb->cap = cap;
    return true;
}

void cp_sb_append(cp_sb *sb, const char *s)
{
    size_t n = strlen(s);
    if (!reserve(sb, n)) return;
    memcpy(sb->data + sb->len, s, n + 1);
    sb->len += n;
}

void cp_sb_printf(cp_sb *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        cp_sb_append(sb, small);
        return;
    }
    if (!reserve(sb, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void cp_sb_json_string(cp_sb *sb, const char *s)
{
    cp_sb_append(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            esc[2] = '\0';
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
        } else {
            esc[0] = (char)*p;
            esc[1] = '\0';
        }
        cp_sb_append(sb, esc);
    }
    cp_sb_append(sb, "\"");
}

char *cp_sb_take(cp_sb *sb, size_t *len)
{
    char *out = sb->oom ? NULL : sb->data;
    if (!out && !sb->oom) out = strdup("");
    if (sb->oom) free(sb->data);
    if (len) *len = out ? strlen(out) : 0;
    if (len && out && !sb->oom) *len = sb->len;
    sb->data = NULL;
    sb->len = sb->cap = 0;
    sb->oom = false;
    return out;
}

void cp_sb_free(cp_sb *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}
