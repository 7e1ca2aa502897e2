/*
 * BERT's basic tokenizer, as Hugging Face's Rust `tokenizers` runs it: BertNormalizer
 * (clean text, pad CJK ideographs with spaces, NFD + drop nonspacing marks, lowercase)
 * followed by BertPreTokenizer (split on whitespace, isolate punctuation).
 *
 * Parity notes (why the character classes are not simply utf8proc's):
 * - Rust's `char::is_whitespace` (the White_Space property) decides whitespace; the list
 *   is fixed and short, so it is spelled out here.
 * - "control" (Cc Cf Co, not Cn), "punctuation" and "nonspacing mark" come from HF's
 *   unicode_categories tables, older than utf8proc's Unicode 15; unicode_compat.c
 *   corrects for the code points where the versions differ.
 * - Lowercasing is per character with the full mapping, so U+0130 becomes "i" U+0307
 *   (the only unconditional multi-character lowercase mapping); final sigma is not
 *   contextual.
 *
 * Invalid UTF-8 decodes to U+FFFD per maximal invalid subsequence; cleaning drops it.
 * No allocation per character: output goes into the caller's growing cp_words buffer.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "colplaid/tokenizer.h"
#include "wordpiece_internal.h"

void cp_basic_options_init(cp_basic_options *o)
{
    o->clean_text = true;
    o->handle_chinese_chars = true;
    o->strip_accents = true;
    o->lowercase = true;
}

/* ---- UTF-8 ------------------------------------------------------------------------- */

size_t cp_utf8_next(const unsigned char *s, size_t len, size_t i, int32_t *cp)
{
    unsigned char b = s[i];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    int32_t v;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        v = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        v = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        v = b & 0x07;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    size_t k = 1;
    for (int j = 0; j < need; j++, k++) {
        if (i + k >= len) break;
        unsigned char c = s[i + k];
        if (c < lo || c > hi) break;
        v = (v << 6) | (c & 0x3F);
        lo = 0x80;
        hi = 0xBF;
        if (j == need - 1) {
            *cp = v;
            return k + 1;
        }
    }
    *cp = 0xFFFD; /* maximal subpart: the bytes that were valid so far */
    return k;
}

size_t cp_utf8_put(char *out, int32_t c)
{
    unsigned char *o = (unsigned char *)out;
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- character classes --------------------------------------------------------------- */

bool cp_char_is_whitespace(int32_t c)
{
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return true;
    if (c < 0x85) return false;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Cc, Cf, Cn, Co (and surrogates, which cannot occur) as HF's tables see them. */
static bool is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r' || cp_hf_unassigned(c)) return false;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
        return true;
    default:
        return false;
    }
}

bool cp_char_is_punct(int32_t c)
{
    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    if (cp_hf_punct(c)) return true;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return !cp_hf_unassigned(c);
    default:
        return false;
    }
}

static bool is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_nonspacing_mark(int32_t c)
{
    if (cp_hf_nonspacing(c)) return true;
    return utf8proc_category(c) == UTF8PROC_CATEGORY_MN && !cp_hf_unassigned(c);
}

/* ---- normalisation -------------------------------------------------------------------- */

/* Growable byte buffer helpers for the normalised text. */
static cp_status buf_reserve(cp_bytes *b, size_t extra, cp_error *err)
{
    if (b->len + extra <= b->cap) return CP_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return cp_error_set(err, CP_ENOMEM, "out of memory while tokenizing");
    b->data = p;
    b->cap = cap;
    return CP_OK;
}

/* Append code point c after lowercasing (when asked). Room for 8 bytes is reserved. */
static void put_lower(const cp_basic_options *o, cp_bytes *b, int32_t c)
{
    if (o->lowercase) {
        if (c == 0x130) { /* full lowercase mapping: "i" + combining dot above */
            b->len += cp_utf8_put(b->data + b->len, 'i');
            c = 0x307;
        } else {
            int32_t newer = c >= 0x1C80 ? cp_hf_lower(c) : -1;
            c = newer >= 0 ? newer : utf8proc_tolower(c);
        }
    }
    b->len += cp_utf8_put(b->data + b->len, c);
}

static void put_stripped(const cp_basic_options *o, cp_bytes *b, int32_t c)
{
    if (!o->strip_accents || c < 0xC0 || cp_hf_no_decomposition(c)) {
        put_lower(o, b, c);
        return;
    }
    utf8proc_int32_t dec[8];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(c, dec, 8, UTF8PROC_DECOMPOSE, &last);
    if (n <= 0 || n > 8) { /* cannot happen for NFD of one code point; keep c as is */
        put_lower(o, b, c);
        return;
    }
    for (utf8proc_ssize_t i = 0; i < n; i++)
        if (!is_nonspacing_mark(dec[i])) put_lower(o, b, dec[i]);
}

cp_status cp_basic_normalize(const cp_basic_options *o, const char *text, size_t len,
                             cp_bytes *out, cp_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        int32_t c;
        i += cp_utf8_next(s, len, i, &c);
        if (o->clean_text) {
            if (c == 0 || c == 0xFFFD || is_control(c)) continue;
            if (cp_char_is_whitespace(c)) c = ' ';
        }
        /* worst case: 8 decomposed code points, each lowercased to 2, 4 bytes each, + 2 */
        if (buf_reserve(out, 72, err) != CP_OK) return err ? err->code : CP_ENOMEM;
        if (o->handle_chinese_chars && is_cjk(c)) {
            out->data[out->len++] = ' ';
            put_stripped(o, out, c);
            out->data[out->len++] = ' ';
        } else {
            put_stripped(o, out, c);
        }
    }
    return CP_OK;
}

/* ---- pre-tokenisation ------------------------------------------------------------------ */

void cp_words_init(cp_words *w) { memset(w, 0, sizeof *w); }

void cp_words_clear(cp_words *w)
{
    w->n = 0;
    w->buf_len = 0;
}

void cp_words_free(cp_words *w)
{
    free(w->buf);
    free(w->start);
    free(w->len);
    free(w->punct);
    cp_words_init(w);
}

static cp_status words_push(cp_words *w, const char *p, size_t len, bool punct, cp_error *err)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        size_t *st = realloc(w->start, cap * sizeof *st);
        if (st) w->start = st;
        uint32_t *ln = realloc(w->len, cap * sizeof *ln);
        if (ln) w->len = ln;
        bool *pu = realloc(w->punct, cap * sizeof *pu);
        if (pu) w->punct = pu;
        if (!st || !ln || !pu) return cp_error_set(err, CP_ENOMEM, "out of memory while tokenizing");
        w->cap = cap;
    }
    if (w->buf_len + len + 1 > w->buf_cap) {
        size_t cap = w->buf_cap ? w->buf_cap : 1024;
        while (cap < w->buf_len + len + 1) cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b) return cp_error_set(err, CP_ENOMEM, "out of memory while tokenizing");
        w->buf = b;
        w->buf_cap = cap;
    }
    memcpy(w->buf + w->buf_len, p, len);
    w->buf[w->buf_len + len] = '\0';
    w->start[w->n] = w->buf_len;
    w->len[w->n] = (uint32_t)len;
    w->punct[w->n] = punct;
    w->n++;
    w->buf_len += len + 1;
    return CP_OK;
}

cp_status cp_pretokenize(const char *text, size_t len, cp_words *out, cp_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, word = 0; /* current word starts at word */
    while (i < len) {
        int32_t c;
        size_t k = cp_utf8_next(s, len, i, &c);
        bool ws = cp_char_is_whitespace(c), pu = !ws && cp_char_is_punct(c);
        if (ws || pu) {
            if (i > word && words_push(out, text + word, i - word, false, err) != CP_OK)
                return CP_ENOMEM;
            if (pu && words_push(out, text + i, k, true, err) != CP_OK) return CP_ENOMEM;
            word = i + k;
        }
        i += k;
    }
    if (len > word && words_push(out, text + word, len - word, false, err) != CP_OK)
        return CP_ENOMEM;
    return CP_OK;
}

cp_status cp_basic_tokenize(const cp_basic_options *o, const char *text, size_t len,
                            cp_words *out, cp_error *err)
{
    cp_bytes norm = {0};
    cp_status st = cp_basic_normalize(o, text, len, &norm, err);
    if (st == CP_OK) st = cp_pretokenize(norm.data ? norm.data : "", norm.len, out, err);
    free(norm.data);
    return st;
}
