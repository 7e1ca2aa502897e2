#include <stdlib.h>

#include "cp_strtab.h"

static bool alloc_slots(cp_strtab *t, uint64_t n_rows)
{
    uint64_t cap = 16;
    while (cap < n_rows * 2)
        cap <<= 1;
    int32_t *slots = malloc(cap * sizeof *slots);
    if (!slots) return false;
    memset(slots, 0xff, cap * sizeof *slots); /* every slot CP_STRTAB_EMPTY */
    t->slots = slots;
    t->mask = cap - 1;
    t->used = 0;
    return true;
}

bool cp_strtab_init(cp_strtab *t, uint64_t n_rows)
{
    memset(t, 0, sizeof *t);
    return alloc_slots(t, n_rows);
}

void cp_strtab_free(cp_strtab *t)
{
    free(t->slots);
    memset(t, 0, sizeof *t);
}

bool cp_strtab_copy(cp_strtab *dst, const cp_strtab *src)
{
    size_t bytes = (src->mask + 1) * sizeof *src->slots;
    memset(dst, 0, sizeof *dst);
    if (!src->slots || !(dst->slots = malloc(bytes))) return false;
    memcpy(dst->slots, src->slots, bytes);
    dst->mask = src->mask;
    dst->used = src->used;
    return true;
}

bool cp_strtab_reserve(cp_strtab *t, uint64_t n_more, cp_strtab_key_fn key_of, const void *ctx)
{
    if (cp_strtab_has_room(t, n_more)) return true;
    uint64_t rows = 0;
    for (uint64_t i = 0; t->slots && i <= t->mask; i++)
        rows += t->slots[i] >= 0;
    cp_strtab next;
    /* double the rows so that a run of inserts rebuilds O(log n) times */
    if (!cp_strtab_init(&next, 2 * (rows + n_more))) return false;
    for (uint64_t i = 0; t->slots && i <= t->mask; i++)
        if (t->slots[i] >= 0) cp_strtab_insert(&next, key_of(ctx, t->slots[i]), t->slots[i]);
    cp_strtab_free(t);
    *t = next;
    return true;
}
