/* Growing string buffer: see strbuf.h. */
#include "strbuf.h"

#include "cp_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(cp_sb *sb, size_t more)
{
    if (sb->oom || sb->too_big) return false;
    if (sb->limit && (more > sb->limit || sb->len > sb->limit - more)) {
        sb->too_big = true;
        return false;
    }
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
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        /* The longest run that needs no escaping is copied at once. */
        size_t run = 0;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        if (run) {
            if (!reserve(sb, run)) return;
            memcpy(sb->data + sb->len, p, run);
            sb->len += run;
            sb->data[sb->len] = '\0';
            p += run;
            n -= run;
            continue;
        }
        char esc[8];
        size_t used = 1;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            esc[2] = '\0';
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
        } else {
            used = cp_utf8_seq_len(p, n);
            if (used) {
                memcpy(esc, p, used);
                esc[used] = '\0';
            } else {
                memcpy(esc, "\xEF\xBF\xBD", 4); /* U+FFFD for a byte that is not UTF-8 */
                used = 1;
            }
        }
        cp_sb_append(sb, esc);
        p += used;
        n -= used;
    }
    cp_sb_append(sb, "\"");
}

void cp_sb_append_json_text(cp_sb *sb, const char *s)
{
    size_t n = strlen(s);
    for (;;) {
        size_t ok = cp_utf8_valid_prefix(s, n);
        if (!reserve(sb, ok)) return;
        memcpy(sb->data + sb->len, s, ok);
        sb->len += ok;
        sb->data[sb->len] = '\0';
        if (ok == n) return;
        cp_sb_append(sb, "\xEF\xBF\xBD");
        s += ok + 1;
        n -= ok + 1;
    }
}

char *cp_sb_take(cp_sb *sb, size_t *len)
{
    if (sb->too_big) sb->oom = true; /* an incomplete text is no use to anyone */
    char *out = sb->oom ? NULL : sb->data;
    if (!out && !sb->oom) out = strdup("");
    if (sb->oom) free(sb->data);
    if (len) *len = out ? strlen(out) : 0;
    if (len && out && !sb->oom) *len = sb->len;
    sb->data = NULL;
    sb->len = sb->cap = 0;
    sb->oom = sb->too_big = false;
    return out;
}

void cp_sb_free(cp_sb *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
    sb->oom = sb->too_big = false;
}
