/*
 * A strict JSON checker that runs before cJSON builds a tree (the server's request bodies,
 * the corpus reader's lines). cJSON is lenient where a hostile client profits: it parses the
 * first of two concatenated values, keeps both of two equal keys (and lookups see the first),
 * turns "\u0000" into a string that ends early, passes invalid UTF-8 through, and allocates
 * about 80 bytes per value before any of our limits can look at the tree.
 *
 * cp_json_check reads the text once, allocates only for the keys of the open objects (for
 * duplicate detection), and stops at the first problem:
 * - RFC 8259 grammar, one value, nothing but whitespace after it;
 * - nesting at most max_depth arrays/objects, at most max_values values in all;
 * - the whole text valid UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF),
 *   and "\u" escapes paired correctly;
 * - no NUL in any string, raw or as "\u0000";
 * - no object with two equal keys (compared after unescaping).
 *
 * Also the UTF-8 helpers used to keep every byte the server writes valid UTF-8.
 */
#ifndef CP_JSON_H
#define CP_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum cp_json_status {
    CP_JSON_OK = 0,
    CP_JSON_SYNTAX,   /* not JSON at offset */
    CP_JSON_TRAILING, /* a complete value, then more than whitespace at offset */
    CP_JSON_DEPTH,    /* nested deeper than max_depth at offset */
    CP_JSON_TOO_MANY, /* more than max_values values (offset: where the count ran out) */
    CP_JSON_UTF8,     /* invalid UTF-8 (or a lone surrogate escape) at offset */
    CP_JSON_NUL,      /* a string holds U+0000 at offset */
    CP_JSON_DUP_KEY,  /* an object repeats a key (dup_key) at offset */
    CP_JSON_NOMEM,
} cp_json_status;

typedef struct cp_json_info {
    size_t offset;       /* byte of the problem */
    size_t n_values;     /* values seen (all of them when the check passed) */
    size_t string_bytes; /* bytes inside string literals, keys included */
    char dup_key[64];    /* the repeated key, printable ASCII (others as '?'), truncated */
} cp_json_info;

cp_json_status cp_json_check(const char *text, size_t len, int max_depth, size_t max_values,
                             cp_json_info *info);

/* A short English description of st ("invalid UTF-8", ...). */
const char *cp_json_status_text(cp_json_status st);

/* Length of the longest valid UTF-8 prefix of s[0..len). */
size_t cp_utf8_valid_prefix(const char *s, size_t len);
/* Length of the valid UTF-8 sequence at s (1..4), or 0 if s does not start one. */
size_t cp_utf8_seq_len(const unsigned char *s, size_t avail);

#endif
