/*
 * A hash index over strings that the caller stores: the one string-keyed table of the
 * project (external ids of an index, ids while building, query ids of qrels).
 *
 * The table holds int32 row numbers, not strings: key_of(ctx, row) gives row's string, so a
 * table over an array of n strings costs about 8n bytes and never copies a key. Open
 * addressing with linear probing in a power-of-two table kept at most half full; a removed
 * row leaves a mark that lookups step over and inserts reuse. Rows must be < 2^31.
 *
 * Thread safety: lookups on a table that nobody modifies may run concurrently.
 */
#ifndef CP_STRTAB_H
#define CP_STRTAB_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum { CP_STRTAB_EMPTY = -1, CP_STRTAB_REMOVED = -2 };

typedef struct cp_strtab {
    int32_t *slots; /* a row, CP_STRTAB_EMPTY or CP_STRTAB_REMOVED */
    uint64_t mask;  /* number of slots - 1 */
    uint64_t used;  /* slots that are not empty (rows and removed marks) */
} cp_strtab;

typedef const char *(*cp_strtab_key_fn)(const void *ctx, int32_t row);

/* FNV-1a over s[0, n), folded so that the low bits (the slot) depend on all of it. */
static inline uint64_t cp_hash_bytes(const char *s, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * UINT64_C(0x100000001b3);
    return h ^ (h >> 31);
}

static inline uint64_t cp_hash_str(const char *s)
{
    return cp_hash_bytes(s, strlen(s));
}

/* An empty table with room for n_rows (at least 16 slots). false: out of memory. */
bool cp_strtab_init(cp_strtab *t, uint64_t n_rows);
void cp_strtab_free(cp_strtab *t);
/* dst = a copy of src (same slots). false: out of memory. */
bool cp_strtab_copy(cp_strtab *dst, const cp_strtab *src);
/* Whether n_more inserts keep the table at most half full. */
static inline bool cp_strtab_has_room(const cp_strtab *t, uint64_t n_more)
{
    return t->slots && (t->used + n_more) * 2 <= t->mask + 1;
}
/* Make room for n_more inserts, rebuilding into a larger table (which drops removed marks)
 * when needed. false: out of memory (t unchanged). */
bool cp_strtab_reserve(cp_strtab *t, uint64_t n_more, cp_strtab_key_fn key_of, const void *ctx);

/* The row whose key equals key, or -1. */
static inline int32_t cp_strtab_find(const cp_strtab *t, const char *key, cp_strtab_key_fn key_of,
                                     const void *ctx)
{
    if (!t->slots) return -1;
    for (uint64_t i = cp_hash_str(key) & t->mask;; i = (i + 1) & t->mask) {
        int32_t row = t->slots[i];
        if (row == CP_STRTAB_EMPTY) return -1;
        if (row != CP_STRTAB_REMOVED && strcmp(key_of(ctx, row), key) == 0) return row;
    }
}

/* The row whose key equals the n bytes at s (not NUL-terminated: a token inside a text),
 * or -1. */
static inline int32_t cp_strtab_find_n(const cp_strtab *t, const char *s, size_t n,
                                       cp_strtab_key_fn key_of, const void *ctx)
{
    if (!t->slots) return -1;
    for (uint64_t i = cp_hash_bytes(s, n) & t->mask;; i = (i + 1) & t->mask) {
        int32_t row = t->slots[i];
        if (row == CP_STRTAB_EMPTY) return -1;
        if (row == CP_STRTAB_REMOVED) continue;
        const char *k = key_of(ctx, row);
        if (strnlen(k, n + 1) == n && memcmp(k, s, n) == 0) return row;
    }
}

/* Add row under key, which the caller knows is absent; the table must have room
 * (cp_strtab_has_room / cp_strtab_reserve). */
static inline void cp_strtab_insert(cp_strtab *t, const char *key, int32_t row)
{
    uint64_t i = cp_hash_str(key) & t->mask;
    while (t->slots[i] >= 0)
        i = (i + 1) & t->mask;
    if (t->slots[i] == CP_STRTAB_EMPTY) t->used++;
    t->slots[i] = row;
}

/* Mark row (stored under key) removed; nothing happens when it is not in the table. */
static inline void cp_strtab_remove(cp_strtab *t, const char *key, int32_t row)
{
    for (uint64_t i = cp_hash_str(key) & t->mask;; i = (i + 1) & t->mask) {
        if (t->slots[i] == CP_STRTAB_EMPTY) return;
        if (t->slots[i] == row) {
            t->slots[i] = CP_STRTAB_REMOVED;
            return;
        }
    }
}

#endif
