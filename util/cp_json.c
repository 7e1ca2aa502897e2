/* Strict JSON checking and UTF-8 helpers: see cp_json.h. */
#include "cp_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t cp_utf8_seq_len(const unsigned char *s, size_t avail)
{
    if (!avail) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else
        return 0;
    if (avail < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

size_t cp_utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = cp_utf8_seq_len(u + i, len - i);
        if (!n) return i;
        i += n;
    }
    return len;
}

const char *cp_json_status_text(cp_json_status st)
{
    switch (st) {
    case CP_JSON_OK:
        return "valid";
    case CP_JSON_SYNTAX:
        return "not valid JSON";
    case CP_JSON_TRAILING:
        return "data after the JSON value";
    case CP_JSON_DEPTH:
        return "nested too deeply";
    case CP_JSON_TOO_MANY:
        return "too many JSON values";
    case CP_JSON_UTF8:
        return "invalid UTF-8";
    case CP_JSON_NUL:
        return "a string contains U+0000 (NUL)";
    case CP_JSON_DUP_KEY:
        return "an object repeats a key";
    case CP_JSON_NOMEM:
        return "out of memory";
    }
    return "unknown";
}

/* ---- the checker ---------------------------------------------------------------------------- */

typedef struct key_ref {
    size_t off, len; /* in the key arena */
    size_t at;       /* offset of the key in the text */
    const char *p;   /* arena + off, set just before sorting */
} key_ref;

typedef struct checker {
    const unsigned char *s;
    size_t len, pos;
    int max_depth;
    size_t max_values;
    cp_json_info *info;
    /* Decoded keys of the open objects, innermost last. */
    char *arena;
    size_t arena_len, arena_cap;
    key_ref *keys;
    size_t n_keys, cap_keys;
} checker;

static cp_json_status fail_at(checker *c, cp_json_status st, size_t at)
{
    c->info->offset = at;
    return st;
}

static void skip_ws(checker *c)
{
    while (c->pos < c->len) {
        unsigned char ch = c->s[c->pos];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') break;
        c->pos++;
    }
}

static bool arena_put(checker *c, const void *p, size_t n)
{
    if (!n) return true; /* an empty key, perhaps with no arena yet */
    if (c->arena_len + n > c->arena_cap) {
        size_t cap = c->arena_cap ? c->arena_cap * 2 : 256;
        while (cap < c->arena_len + n)
            cap *= 2;
        char *q = realloc(c->arena, cap);
        if (!q) return false;
        c->arena = q;
        c->arena_cap = cap;
    }
    memcpy(c->arena + c->arena_len, p, n);
    c->arena_len += n;
    return true;
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char h = p[i];
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(unsigned char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string literal at c->pos (the opening quote). With decode, its unescaped bytes are
 * appended to the arena (keys). */
static cp_json_status check_string(checker *c, bool decode)
{
    size_t start = ++c->pos; /* past the quote */
    size_t run = start;      /* start of the bytes not yet copied to the arena */
    while (c->pos < c->len) {
        unsigned char ch = c->s[c->pos];
        if (ch == '"') {
            if (decode && !arena_put(c, c->s + run, c->pos - run))
                return fail_at(c, CP_JSON_NOMEM, c->pos);
            c->info->string_bytes += c->pos - start;
            c->pos++;
            return CP_JSON_OK;
        }
        if (ch == 0) return fail_at(c, CP_JSON_NUL, c->pos);
        if (ch < 0x20) return fail_at(c, CP_JSON_SYNTAX, c->pos);
        if (ch >= 0x80) {
            size_t n = cp_utf8_seq_len(c->s + c->pos, c->len - c->pos);
            if (!n) return fail_at(c, CP_JSON_UTF8, c->pos);
            c->pos += n;
            continue;
        }
        if (ch != '\\') {
            c->pos++;
            continue;
        }
        size_t esc = c->pos;
        if (decode && !arena_put(c, c->s + run, esc - run)) return fail_at(c, CP_JSON_NOMEM, esc);
        if (esc + 1 >= c->len) return fail_at(c, CP_JSON_SYNTAX, esc);
        unsigned char e = c->s[esc + 1];
        unsigned char buf[4];
        size_t nbuf = 1;
        switch (e) {
        case '"':
            buf[0] = '"';
            break;
        case '\\':
            buf[0] = '\\';
            break;
        case '/':
            buf[0] = '/';
            break;
        case 'b':
            buf[0] = '\b';
            break;
        case 'f':
            buf[0] = '\f';
            break;
        case 'n':
            buf[0] = '\n';
            break;
        case 'r':
            buf[0] = '\r';
            break;
        case 't':
            buf[0] = '\t';
            break;
        case 'u': {
            if (esc + 6 > c->len) return fail_at(c, CP_JSON_SYNTAX, esc);
            int v = hex4(c->s + esc + 2);
            if (v < 0) return fail_at(c, CP_JSON_SYNTAX, esc);
            uint32_t cp = (uint32_t)v;
            size_t used = 6;
            if (cp == 0) return fail_at(c, CP_JSON_NUL, esc);
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_at(c, CP_JSON_UTF8, esc);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = esc + 12 <= c->len && c->s[esc + 6] == '\\' && c->s[esc + 7] == 'u'
                             ? hex4(c->s + esc + 8)
                             : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return fail_at(c, CP_JSON_UTF8, esc);
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                used = 12;
            }
            nbuf = put_utf8(buf, cp);
            c->pos = esc + used;
            if (decode && !arena_put(c, buf, nbuf)) return fail_at(c, CP_JSON_NOMEM, esc);
            run = c->pos;
            continue;
        }
        default:
            return fail_at(c, CP_JSON_SYNTAX, esc);
        }
        if (decode && !arena_put(c, buf, nbuf)) return fail_at(c, CP_JSON_NOMEM, esc);
        c->pos = esc + 2;
        run = c->pos;
    }
    return fail_at(c, CP_JSON_SYNTAX, c->len);
}

static bool is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static cp_json_status check_number(checker *c)
{
    size_t p = c->pos;
    const unsigned char *s = c->s;
    if (p < c->len && s[p] == '-') p++;
    if (p >= c->len || !is_digit(s[p])) return fail_at(c, CP_JSON_SYNTAX, p);
    if (s[p] == '0')
        p++;
    else
        while (p < c->len && is_digit(s[p]))
            p++;
    if (p < c->len && s[p] == '.') {
        p++;
        if (p >= c->len || !is_digit(s[p])) return fail_at(c, CP_JSON_SYNTAX, p);
        while (p < c->len && is_digit(s[p]))
            p++;
    }
    if (p < c->len && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < c->len && (s[p] == '+' || s[p] == '-')) p++;
        if (p >= c->len || !is_digit(s[p])) return fail_at(c, CP_JSON_SYNTAX, p);
        while (p < c->len && is_digit(s[p]))
            p++;
    }
    c->pos = p;
    return CP_JSON_OK;
}

static cp_json_status check_word(checker *c, const char *w)
{
    size_t n = strlen(w);
    if (c->len - c->pos < n || memcmp(c->s + c->pos, w, n))
        return fail_at(c, CP_JSON_SYNTAX, c->pos);
    c->pos += n;
    return CP_JSON_OK;
}

static int cmp_keys(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->p, y->p, n);
    if (r) return r;
    return (x->len > y->len) - (x->len < y->len);
}

static void set_dup(checker *c, const key_ref *k)
{
    size_t n = k->len < sizeof c->info->dup_key - 1 ? k->len : sizeof c->info->dup_key - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k->p[i];
        c->info->dup_key[i] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
    }
    c->info->dup_key[n] = '\0';
}

/* The keys c->keys[first..] of the object that just closed: any two equal? */
static cp_json_status check_dup_keys(checker *c, size_t first)
{
    size_t n = c->n_keys - first;
    key_ref *k = c->keys + first;
    for (size_t i = 0; i < n; i++)
        k[i].p = c->arena ? c->arena + k[i].off : "";
    if (n < 2) return CP_JSON_OK;
    if (n <= 8) { /* the usual object: no sorting */
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (!cmp_keys(&k[i], &k[j])) {
                    set_dup(c, &k[i]);
                    return fail_at(c, CP_JSON_DUP_KEY, k[i].at);
                }
        return CP_JSON_OK;
    }
    qsort(k, n, sizeof *k, cmp_keys);
    for (size_t i = 1; i < n; i++)
        if (!cmp_keys(&k[i - 1], &k[i])) {
            const key_ref *later = k[i].at > k[i - 1].at ? &k[i] : &k[i - 1];
            set_dup(c, later);
            return fail_at(c, CP_JSON_DUP_KEY, later->at);
        }
    return CP_JSON_OK;
}

static cp_json_status check_value(checker *c, int depth);

static cp_json_status count_value(checker *c)
{
    if (++c->info->n_values > c->max_values) return fail_at(c, CP_JSON_TOO_MANY, c->pos);
    return CP_JSON_OK;
}

static cp_json_status check_object(checker *c, int depth)
{
    size_t first = c->n_keys, arena_mark = c->arena_len;
    c->pos++; /* '{' */
    skip_ws(c);
    cp_json_status st = CP_JSON_OK;
    if (c->pos < c->len && c->s[c->pos] == '}') {
        c->pos++;
        return CP_JSON_OK;
    }
    for (;;) {
        skip_ws(c);
        if (c->pos >= c->len || c->s[c->pos] != '"') return fail_at(c, CP_JSON_SYNTAX, c->pos);
        if (c->n_keys == c->cap_keys) {
            size_t cap = c->cap_keys ? c->cap_keys * 2 : 32;
            key_ref *p = realloc(c->keys, cap * sizeof *p);
            if (!p) return fail_at(c, CP_JSON_NOMEM, c->pos);
            c->keys = p;
            c->cap_keys = cap;
        }
        key_ref *k = &c->keys[c->n_keys];
        k->at = c->pos;
        k->off = c->arena_len;
        if ((st = check_string(c, true))) return st;
        k->len = c->arena_len - k->off;
        c->n_keys++;
        skip_ws(c);
        if (c->pos >= c->len || c->s[c->pos] != ':') return fail_at(c, CP_JSON_SYNTAX, c->pos);
        c->pos++;
        if ((st = check_value(c, depth))) return st;
        skip_ws(c);
        if (c->pos < c->len && c->s[c->pos] == ',') {
            c->pos++;
            continue;
        }
        if (c->pos < c->len && c->s[c->pos] == '}') {
            c->pos++;
            break;
        }
        return fail_at(c, CP_JSON_SYNTAX, c->pos);
    }
    st = check_dup_keys(c, first);
    c->n_keys = first;
    c->arena_len = arena_mark;
    return st;
}

static cp_json_status check_array(checker *c, int depth)
{
    c->pos++; /* '[' */
    skip_ws(c);
    if (c->pos < c->len && c->s[c->pos] == ']') {
        c->pos++;
        return CP_JSON_OK;
    }
    for (;;) {
        cp_json_status st = check_value(c, depth);
        if (st) return st;
        skip_ws(c);
        if (c->pos < c->len && c->s[c->pos] == ',') {
            c->pos++;
            continue;
        }
        if (c->pos < c->len && c->s[c->pos] == ']') {
            c->pos++;
            return CP_JSON_OK;
        }
        return fail_at(c, CP_JSON_SYNTAX, c->pos);
    }
}

/* depth: arrays/objects open around this value. */
static cp_json_status check_value(checker *c, int depth)
{
    skip_ws(c);
    if (c->pos >= c->len) return fail_at(c, CP_JSON_SYNTAX, c->pos);
    cp_json_status st = count_value(c);
    if (st) return st;
    unsigned char ch = c->s[c->pos];
    switch (ch) {
    case '{':
    case '[':
        if (depth + 1 > c->max_depth) return fail_at(c, CP_JSON_DEPTH, c->pos);
        return ch == '{' ? check_object(c, depth + 1) : check_array(c, depth + 1);
    case '"':
        return check_string(c, false);
    case 't':
        return check_word(c, "true");
    case 'f':
        return check_word(c, "false");
    case 'n':
        return check_word(c, "null");
    default:
        if (ch == '-' || is_digit(ch)) return check_number(c);
        if (ch >= 0x80 && !cp_utf8_seq_len(c->s + c->pos, c->len - c->pos))
            return fail_at(c, CP_JSON_UTF8, c->pos);
        return fail_at(c, CP_JSON_SYNTAX, c->pos);
    }
}

cp_json_status cp_json_check(const char *text, size_t len, int max_depth, size_t max_values,
                             cp_json_info *info)
{
    cp_json_info scratch;
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    checker c = {
        (const unsigned char *)text, len, 0, max_depth, max_values, info, NULL, 0, 0, NULL, 0, 0};
    /* Invalid UTF-8 is reported as such wherever it is, before any grammar error. */
    size_t valid = cp_utf8_valid_prefix(text, len);
    cp_json_status st = valid < len ? fail_at(&c, CP_JSON_UTF8, valid) : check_value(&c, 0);
    if (!st) {
        skip_ws(&c);
        if (c.pos < len) st = fail_at(&c, CP_JSON_TRAILING, c.pos);
    }
    free(c.arena);
    free(c.keys);
    return st;
}
