/*
 * PyTorch .pt reader: a bounded zip directory reader plus a small pickle interpreter that
 * only builds values (no imports, no calls beyond recognising torch's tensor rebuild
 * functions by name). See colplaid/pt.h for what is accepted.
 *
 * Invariants: every read from the buffer goes through cursor checks (rd_*) or an explicit
 * bounds test; every value comes from a fixed-size arena and the value stack, memo and mark
 * stack are bounded, so a hostile file can make the parse fail but never overrun memory.
 */
#include "colplaid/pt.h"
#include "cp_half.h"
#include "cp_mmap.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------
 * Little helpers
 * --------------------------------------------------------------------------------- */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static const struct {
    const char *name;
    cp_pt_dtype dtype;
    int size;
} storage_types[] = {
    {"HalfStorage", CP_PT_F16, 2}, {"FloatStorage", CP_PT_F32, 4}, {"DoubleStorage", CP_PT_F64, 8},
    {"IntStorage", CP_PT_I32, 4},  {"LongStorage", CP_PT_I64, 8},  {"ByteStorage", CP_PT_U8, 1},
    {"CharStorage", CP_PT_I8, 1},  {"ShortStorage", CP_PT_I16, 2}, {"BoolStorage", CP_PT_BOOL, 1},
};

const char *cp_pt_dtype_name(cp_pt_dtype dtype)
{
    static const char *names[] = {"float16", "float32", "float64", "int32", "int64",
                                  "uint8",   "int8",    "int16",   "bool"};
    return (unsigned)dtype < sizeof names / sizeof names[0] ? names[dtype] : "?";
}

/* ------------------------------------------------------------------------------------
 * Zip directory
 * --------------------------------------------------------------------------------- */

typedef struct zip_entry {
    const char *name;
    size_t name_len;
    uint64_t offset; /* of the data */
    uint64_t size;
} zip_entry;

typedef struct zip_dir {
    zip_entry *entries;
    size_t n;
} zip_dir;

static cp_status zbad(const char *name, const char *what, cp_error *err)
{
    return cp_error_set(err, CP_EFORMAT, "%s is not a readable PyTorch file: %s", name, what);
}

static cp_status find_eocd(const uint8_t *b, size_t n, const char *name, uint64_t *cd_off,
                           uint64_t *cd_size, uint64_t *count, cp_error *err)
{
    if (n < 22) return zbad(name, "too short for a zip archive", err);
    size_t lo = n - 22 > 65535 ? n - 22 - 65535 : 0;
    size_t at = n - 22 + 1;
    while (at-- > lo)
        if (memcmp(b + at, "PK\5\6", 4) == 0) break;
    if (at < lo || at == (size_t)-1 || memcmp(b + at, "PK\5\6", 4) != 0)
        return zbad(name, "no zip end-of-directory record (truncated or not a .pt file)", err);
    *count = le16(b + at + 10);
    *cd_size = le32(b + at + 12);
    *cd_off = le32(b + at + 16);
    if (*count == 0xFFFF || *cd_size == 0xFFFFFFFF || *cd_off == 0xFFFFFFFF) {
        if (at < 20 || memcmp(b + at - 20, "PK\6\7", 4) != 0)
            return zbad(name, "zip64 locator missing", err);
        uint64_t z = le64(b + at - 20 + 8);
        if (z > n || n - z < 56 || memcmp(b + z, "PK\6\6", 4) != 0)
            return zbad(name, "zip64 end-of-directory record damaged", err);
        *count = le64(b + z + 32);
        *cd_size = le64(b + z + 40);
        *cd_off = le64(b + z + 48);
    }
    if (*cd_off > n || *cd_size > n - *cd_off) return zbad(name, "zip directory out of bounds", err);
    if (*count > *cd_size / 46) return zbad(name, "zip entry count impossible", err);
    return CP_OK;
}

/* The zip64 extra field (id 1) carries the 64-bit values whose 32-bit fields are all ones. */
static void apply_zip64_extra(const uint8_t *x, size_t len, uint64_t *usize, uint64_t *csize,
                              uint64_t *loff)
{
    for (size_t p = 0; p + 4 <= len;) {
        uint16_t id = le16(x + p), sz = le16(x + p + 2);
        if ((size_t)sz > len - p - 4) return;
        if (id == 1) {
            const uint8_t *v = x + p + 4;
            size_t left = sz;
            uint64_t *fields[3] = {usize, csize, loff};
            for (int i = 0; i < 3; i++)
                if (*fields[i] == 0xFFFFFFFF && left >= 8) {
                    *fields[i] = le64(v);
                    v += 8;
                    left -= 8;
                }
            return;
        }
        p += 4 + (size_t)sz;
    }
}

static cp_status read_entry(const uint8_t *b, size_t n, size_t *pos, uint64_t cd_end,
                            const char *name, zip_entry *e, cp_error *err)
{
    size_t p = *pos;
    if (p > cd_end || cd_end - p < 46 || memcmp(b + p, "PK\1\2", 4) != 0)
        return zbad(name, "zip directory entry damaged", err);
    uint16_t method = le16(b + p + 10), nl = le16(b + p + 28), xl = le16(b + p + 30),
             cl = le16(b + p + 32);
    uint64_t csize = le32(b + p + 20), usize = le32(b + p + 24), loff = le32(b + p + 42);
    if ((uint64_t)nl + xl + cl > cd_end - p - 46) return zbad(name, "zip entry name out of bounds", err);
    apply_zip64_extra(b + p + 46 + nl, xl, &usize, &csize, &loff);
    e->name = (const char *)b + p + 46;
    e->name_len = nl;
    if (method != 0)
        return cp_error_set(err, CP_EFORMAT,
                            "%s: entry %.*s is compressed (zip method %u); colplaid reads the "
                            "stored entries torch.save writes",
                            name, (int)nl, e->name, method);
    if (csize != usize) return zbad(name, "stored zip entry sizes disagree", err);
    if (loff > n || n - loff < 30 || memcmp(b + loff, "PK\3\4", 4) != 0)
        return zbad(name, "zip local header out of bounds", err);
    uint64_t data = loff + 30 + le16(b + loff + 26) + le16(b + loff + 28);
    if (data > n || usize > n - data) return zbad(name, "zip entry data out of bounds", err);
    e->offset = data;
    e->size = usize;
    *pos = p + 46 + nl + xl + cl;
    return CP_OK;
}

static cp_status zip_read_dir(const uint8_t *b, size_t n, const char *name, zip_dir *dir,
                              cp_error *err)
{
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    cp_status st = find_eocd(b, n, name, &cd_off, &cd_size, &count, err);
    if (st != CP_OK) return st;
    dir->entries = calloc(count ? count : 1, sizeof *dir->entries);
    if (!dir->entries) return cp_error_set(err, CP_ENOMEM, "out of memory reading %s", name);
    size_t pos = cd_off;
    for (uint64_t i = 0; i < count; i++) {
        st = read_entry(b, n, &pos, cd_off + cd_size, name, &dir->entries[i], err);
        if (st != CP_OK) return st;
        dir->n++;
    }
    return CP_OK;
}

static const zip_entry *zip_find(const zip_dir *dir, const char *prefix, size_t plen,
                                 const char *suffix)
{
    size_t slen = strlen(suffix);
    for (size_t i = 0; i < dir->n; i++) {
        const zip_entry *e = &dir->entries[i];
        if (e->name_len == plen + slen && memcmp(e->name, prefix, plen) == 0 &&
            memcmp(e->name + plen, suffix, slen) == 0)
            return e;
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------
 * Pickle values
 * --------------------------------------------------------------------------------- */

enum pv_kind { PV_NONE, PV_INT, PV_FLOAT, PV_BOOL, PV_STR, PV_TUPLE, PV_GLOBAL, PV_STORAGE,
               PV_TENSOR, PV_DICT, PV_MARK };

typedef struct pv {
    enum pv_kind kind;
    int64_t i;             /* INT, BOOL; STORAGE numel */
    double f;
    const char *s;         /* STR; GLOBAL module; STORAGE key */
    size_t slen;
    const char *s2;        /* GLOBAL name */
    size_t s2len;
    struct pv **items;     /* TUPLE */
    int n_items;
    cp_pt_tensor tensor;   /* TENSOR (data filled by resolve) */
    const struct pv *storage; /* TENSOR */
    int64_t offset;        /* TENSOR storage offset */
} pv;

#define ARENA_VALUES 4096
#define STACK_MAX 512
#define MEMO_MAX 4096
#define MARKS_MAX 64

typedef struct machine {
    const char *name;
    const uint8_t *p, *end;
    pv *arena;
    int n_arena;
    pv **item_pool; /* tuple item arrays */
    int n_items_used, items_cap;
    pv *stack[STACK_MAX];
    int sp;
    pv *memo[MEMO_MAX];
    int marks[MARKS_MAX];
    int n_marks;
    cp_error *err;
} machine;

static cp_status pbad(machine *m, const char *what)
{
    return cp_error_set(m->err, CP_EFORMAT, "%s: unsupported or damaged pickle: %s", m->name, what);
}

static pv *new_value(machine *m, enum pv_kind kind)
{
    if (m->n_arena >= ARENA_VALUES) return NULL;
    pv *v = &m->arena[m->n_arena++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return v;
}

static cp_status push(machine *m, pv *v)
{
    if (!v) return pbad(m, "too many values");
    if (m->sp >= STACK_MAX) return pbad(m, "stack too deep");
    m->stack[m->sp++] = v;
    return CP_OK;
}

static pv *pop(machine *m)
{
    return m->sp > 0 ? m->stack[--m->sp] : NULL;
}

static bool take(machine *m, size_t n, const uint8_t **out)
{
    if ((size_t)(m->end - m->p) < n) return false;
    *out = m->p;
    m->p += n;
    return true;
}

/* Pop the top n values into a new tuple. */
static cp_status make_tuple(machine *m, int n)
{
    if (n < 0 || n > m->sp) return pbad(m, "tuple larger than the stack");
    if (m->n_items_used + n > m->items_cap) return pbad(m, "too many tuple items");
    pv *t = new_value(m, PV_TUPLE);
    if (!t) return pbad(m, "too many values");
    t->items = m->item_pool + m->n_items_used;
    m->n_items_used += n;
    t->n_items = n;
    for (int i = 0; i < n; i++) {
        t->items[i] = m->stack[m->sp - n + i];
        if (t->items[i]->kind == PV_MARK) return pbad(m, "mark inside a tuple");
    }
    m->sp -= n;
    return push(m, t);
}

static cp_status pop_to_mark(machine *m, int *n)
{
    if (m->n_marks == 0) return pbad(m, "no mark");
    int at = m->marks[--m->n_marks];
    if (at > m->sp) return pbad(m, "mark above the stack");
    *n = m->sp - at;
    return CP_OK;
}

static bool global_is(const pv *g, const char *module, const char *name)
{
    return g && g->kind == PV_GLOBAL && g->slen == strlen(module) && g->s2len == strlen(name) &&
           memcmp(g->s, module, g->slen) == 0 && memcmp(g->s2, name, g->s2len) == 0;
}

/* BINPERSID: ('storage', <torch XStorage>, key, location, numel) -> a storage value. */
static cp_status persistent_load(machine *m)
{
    pv *pid = pop(m);
    if (!pid || pid->kind != PV_TUPLE || pid->n_items < 5 || pid->items[0]->kind != PV_STR ||
        pid->items[0]->slen != 7 || memcmp(pid->items[0]->s, "storage", 7) != 0)
        return pbad(m, "a persistent id that is not a tensor storage");
    const pv *type = pid->items[1], *key = pid->items[2], *numel = pid->items[4];
    if (type->kind != PV_GLOBAL || key->kind != PV_STR || numel->kind != PV_INT || numel->i < 0)
        return pbad(m, "malformed storage reference");
    pv *s = new_value(m, PV_STORAGE);
    if (!s) return pbad(m, "too many values");
    s->i = -1;
    for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++)
        if (global_is(type, "torch", storage_types[i].name)) {
            s->tensor.dtype = storage_types[i].dtype;
            s->tensor.elem_size = storage_types[i].size;
            s->i = numel->i;
        }
    if (s->i < 0)
        return cp_error_set(m->err, CP_EFORMAT, "%s: unsupported storage type %.*s.%.*s", m->name,
                            (int)type->slen, type->s, (int)type->s2len, type->s2);
    s->s = key->s;
    s->slen = key->slen;
    return push(m, s);
}

static cp_status int_tuple(machine *m, const pv *t, int64_t *out, int *n)
{
    if (t->kind != PV_TUPLE || t->n_items > CP_PT_MAX_DIMS) return pbad(m, "bad tensor shape");
    for (int i = 0; i < t->n_items; i++) {
        if (t->items[i]->kind != PV_INT || t->items[i]->i < 0) return pbad(m, "bad tensor shape");
        out[i] = t->items[i]->i;
    }
    *n = t->n_items;
    return CP_OK;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, ...): C-contiguous tensors only. */
static cp_status rebuild_tensor(machine *m, const pv *args)
{
    if (args->kind != PV_TUPLE || args->n_items < 4 || args->items[0]->kind != PV_STORAGE ||
        args->items[1]->kind != PV_INT || args->items[1]->i < 0)
        return pbad(m, "malformed tensor");
    pv *t = new_value(m, PV_TENSOR);
    if (!t) return pbad(m, "too many values");
    const pv *storage = args->items[0];
    int64_t stride[CP_PT_MAX_DIMS];
    int ns = 0;
    cp_status st = int_tuple(m, args->items[2], t->tensor.shape, &t->tensor.ndim);
    if (st == CP_OK) st = int_tuple(m, args->items[3], stride, &ns);
    if (st != CP_OK) return st;
    if (ns != t->tensor.ndim) return pbad(m, "tensor stride and shape disagree");
    int64_t numel = 1, expect = 1;
    for (int d = t->tensor.ndim - 1; d >= 0; d--) {
        int64_t s = t->tensor.shape[d];
        if (s != 0 && numel > INT64_MAX / 4 / s) return pbad(m, "tensor too large");
        if (s > 1 && stride[d] != expect)
            return cp_error_set(m->err, CP_EFORMAT, "%s: a non-contiguous tensor is not supported",
                                m->name);
        numel *= s;
        expect *= s ? s : 1;
    }
    t->tensor.numel = numel;
    t->tensor.dtype = storage->tensor.dtype;
    t->tensor.elem_size = storage->tensor.elem_size;
    t->storage = storage;
    t->offset = args->items[1]->i;
    if (t->offset > storage->i || numel > storage->i - t->offset)
        return pbad(m, "tensor runs past its storage");
    return push(m, t);
}

static cp_status reduce(machine *m)
{
    pv *args = pop(m), *fn = pop(m);
    if (!args || !fn) return pbad(m, "stack underflow");
    if (global_is(fn, "torch._utils", "_rebuild_tensor_v2") ||
        global_is(fn, "torch._utils", "_rebuild_tensor"))
        return rebuild_tensor(m, args);
    if (global_is(fn, "collections", "OrderedDict")) return push(m, new_value(m, PV_DICT));
    if (fn->kind == PV_GLOBAL)
        return cp_error_set(m->err, CP_EFORMAT, "%s: unsupported object %.*s.%.*s in the pickle",
                            m->name, (int)fn->slen, fn->s, (int)fn->s2len, fn->s2);
    return pbad(m, "call of a non-function");
}

static cp_status op_global(machine *m)
{
    const uint8_t *start = m->p;
    const uint8_t *nl1 = memchr(start, '\n', (size_t)(m->end - start));
    if (!nl1) return pbad(m, "unterminated global");
    const uint8_t *nl2 = memchr(nl1 + 1, '\n', (size_t)(m->end - nl1 - 1));
    if (!nl2) return pbad(m, "unterminated global");
    pv *g = new_value(m, PV_GLOBAL);
    if (!g) return pbad(m, "too many values");
    g->s = (const char *)start;
    g->slen = (size_t)(nl1 - start);
    g->s2 = (const char *)nl1 + 1;
    g->s2len = (size_t)(nl2 - nl1 - 1);
    m->p = nl2 + 1;
    return push(m, g);
}

static cp_status op_string(machine *m, size_t len)
{
    const uint8_t *s;
    if (!take(m, len, &s)) return pbad(m, "string past the end");
    pv *v = new_value(m, PV_STR);
    if (!v) return pbad(m, "too many values");
    v->s = (const char *)s;
    v->slen = len;
    return push(m, v);
}

static cp_status op_int(machine *m, int64_t x)
{
    pv *v = new_value(m, PV_INT);
    if (!v) return pbad(m, "too many values");
    v->i = x;
    return push(m, v);
}

static cp_status memo_put(machine *m, uint64_t idx)
{
    if (idx >= MEMO_MAX || m->sp == 0) return pbad(m, "memo index out of range");
    m->memo[idx] = m->stack[m->sp - 1];
    return CP_OK;
}

static cp_status memo_get(machine *m, uint64_t idx)
{
    if (idx >= MEMO_MAX || !m->memo[idx]) return pbad(m, "memo index out of range");
    return push(m, m->memo[idx]);
}

static int memo_next(const machine *m)
{
    int i = 0;
    while (i < MEMO_MAX && m->memo[i]) i++;
    return i;
}

/* One opcode; *done set at STOP. */
static cp_status step(machine *m, bool *done)
{
    const uint8_t *a;
    uint8_t op = *m->p++;
    int n = 0;
    cp_status st;
    switch (op) {
    case 0x80: return take(m, 1, &a) ? CP_OK : pbad(m, "truncated"); /* PROTO */
    case 0x95: return take(m, 8, &a) ? CP_OK : pbad(m, "truncated"); /* FRAME */
    case 'c': return op_global(m);
    case 0x93: { /* STACK_GLOBAL */
        pv *name = pop(m), *mod = pop(m);
        if (!name || !mod || name->kind != PV_STR || mod->kind != PV_STR) return pbad(m, "bad global");
        pv *g = new_value(m, PV_GLOBAL);
        if (!g) return pbad(m, "too many values");
        g->s = mod->s, g->slen = mod->slen, g->s2 = name->s, g->s2len = name->slen;
        return push(m, g);
    }
    case 'q': return take(m, 1, &a) ? memo_put(m, a[0]) : pbad(m, "truncated");
    case 'r': return take(m, 4, &a) ? memo_put(m, le32(a)) : pbad(m, "truncated");
    case 0x94: return memo_put(m, (uint64_t)memo_next(m));
    case 'h': return take(m, 1, &a) ? memo_get(m, a[0]) : pbad(m, "truncated");
    case 'j': return take(m, 4, &a) ? memo_get(m, le32(a)) : pbad(m, "truncated");
    case '(':
        if (m->n_marks >= MARKS_MAX) return pbad(m, "marks too deep");
        m->marks[m->n_marks++] = m->sp;
        return CP_OK;
    case 'X': return take(m, 4, &a) ? op_string(m, le32(a)) : pbad(m, "truncated");
    case 0x8c:
    case 'U': return take(m, 1, &a) ? op_string(m, a[0]) : pbad(m, "truncated");
    case 'K': return take(m, 1, &a) ? op_int(m, a[0]) : pbad(m, "truncated");
    case 'M': return take(m, 2, &a) ? op_int(m, le16(a)) : pbad(m, "truncated");
    case 'J': return take(m, 4, &a) ? op_int(m, (int32_t)le32(a)) : pbad(m, "truncated");
    case 0x8a: { /* LONG1: little-endian two's complement of up to 8 bytes */
        if (!take(m, 1, &a)) return pbad(m, "truncated");
        size_t len = a[0];
        if (len > 8 || !take(m, len, &a)) return pbad(m, "integer too long");
        uint64_t u = 0;
        for (size_t i = 0; i < len; i++) u |= (uint64_t)a[i] << (8 * i);
        if (len && len < 8 && (a[len - 1] & 0x80)) u |= ~UINT64_C(0) << (8 * len);
        return op_int(m, (int64_t)u);
    }
    case 'G': {
        if (!take(m, 8, &a)) return pbad(m, "truncated");
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = u << 8 | a[i];
        pv *v = new_value(m, PV_FLOAT);
        if (!v) return pbad(m, "too many values");
        memcpy(&v->f, &u, 8);
        return push(m, v);
    }
    case 'N': return push(m, new_value(m, PV_NONE));
    case 0x88:
    case 0x89: {
        pv *v = new_value(m, PV_BOOL);
        if (v) v->i = op == 0x88;
        return push(m, v);
    }
    case ')': return make_tuple(m, 0);
    case 0x85: return make_tuple(m, 1);
    case 0x86: return make_tuple(m, 2);
    case 0x87: return make_tuple(m, 3);
    case 't': return (st = pop_to_mark(m, &n)) == CP_OK ? make_tuple(m, n) : st;
    case '}': return push(m, new_value(m, PV_DICT));
    case 'u': /* SETITEMS on a dict: contents are not needed (backward-hook dicts) */
        if ((st = pop_to_mark(m, &n)) != CP_OK) return st;
        m->sp -= n;
        return m->sp > 0 && m->stack[m->sp - 1]->kind == PV_DICT ? CP_OK : pbad(m, "setitems");
    case 's':
        if (m->sp < 3 || m->stack[m->sp - 3]->kind != PV_DICT) return pbad(m, "setitem");
        m->sp -= 2;
        return CP_OK;
    case 'b': /* BUILD: object state is not needed */
        return pop(m) && m->sp > 0 ? CP_OK : pbad(m, "build");
    case 'Q': return persistent_load(m);
    case 'R': return reduce(m);
    case '.': *done = true; return CP_OK;
    default:
        return cp_error_set(m->err, CP_EFORMAT, "%s: unsupported pickle opcode 0x%02x", m->name, op);
    }
}

/* Point each tensor at its storage bytes inside the buffer, flattening tuples. */
static cp_status collect(machine *m, const uint8_t *bytes, const zip_dir *dir,
                         const char *prefix, size_t plen, const pv *v, cp_pt_file *out,
                         int depth)
{
    if (v->kind == PV_TUPLE && depth < 4) {
        for (int i = 0; i < v->n_items; i++) {
            cp_status st = collect(m, bytes, dir, prefix, plen, v->items[i], out, depth + 1);
            if (st != CP_OK) return st;
        }
        return CP_OK;
    }
    if (v->kind != PV_TENSOR) return pbad(m, "the file holds something other than tensors");
    if (out->n_tensors >= CP_PT_MAX_TENSORS) return pbad(m, "too many tensors");
    char key[80];
    if (v->storage->slen > 60) return pbad(m, "storage key too long");
    snprintf(key, sizeof key, "data/%.*s", (int)v->storage->slen, v->storage->s);
    const zip_entry *e = zip_find(dir, prefix, plen, key);
    if (!e) return cp_error_set(m->err, CP_EFORMAT, "%s: storage %s is missing", m->name, key);
    /* Compare element counts, not byte counts: numel * size could wrap for hostile numel. */
    if ((uint64_t)v->storage->i > e->size / (uint64_t)v->tensor.elem_size)
        return cp_error_set(m->err, CP_EFORMAT, "%s: storage %s is truncated (%llu bytes for "
                            "%lld elements)", m->name, key, (unsigned long long)e->size,
                            (long long)v->storage->i);
    cp_pt_tensor t = v->tensor;
    t.data = bytes + e->offset + (uint64_t)v->offset * (uint64_t)t.elem_size;
    out->tensors[out->n_tensors++] = t;
    return CP_OK;
}

cp_status cp_pt_parse(const uint8_t *bytes, size_t size, const char *name, cp_pt_file *out,
                      cp_error *err)
{
    memset(out, 0, sizeof *out);
    zip_dir dir = {0};
    machine *m = calloc(1, sizeof *m);
    if (!m) return cp_error_set(err, CP_ENOMEM, "out of memory reading %s", name);
    m->arena = calloc(ARENA_VALUES, sizeof *m->arena);
    m->items_cap = 4 * ARENA_VALUES;
    m->item_pool = calloc((size_t)m->items_cap, sizeof *m->item_pool);
    m->name = name;
    m->err = err;
    cp_status st = m->arena && m->item_pool ? zip_read_dir(bytes, size, name, &dir, err)
                                            : cp_error_set(err, CP_ENOMEM, "out of memory");
    const zip_entry *pkl = NULL;
    for (size_t i = 0; st == CP_OK && i < dir.n; i++) {
        const zip_entry *e = &dir.entries[i];
        if (e->name_len >= 8 && memcmp(e->name + e->name_len - 8, "data.pkl", 8) == 0) pkl = e;
    }
    if (st == CP_OK && !pkl) st = zbad(name, "no data.pkl inside", err);
    size_t plen = pkl ? pkl->name_len - 8 : 0;
    if (st == CP_OK) {
        m->p = bytes + pkl->offset;
        m->end = m->p + pkl->size;
        bool done = false;
        while (st == CP_OK && !done) {
            if (m->p >= m->end) st = pbad(m, "no STOP opcode");
            else st = step(m, &done);
        }
    }
    pv *top = st == CP_OK ? pop(m) : NULL;
    if (st == CP_OK && !top) st = pbad(m, "empty pickle");
    if (st == CP_OK) st = collect(m, bytes, &dir, pkl->name, plen, top, out, 0);
    free(dir.entries);
    free(m->arena);
    free(m->item_pool);
    free(m);
    if (st != CP_OK) memset(out, 0, sizeof *out);
    return st;
}

cp_status cp_pt_open(const char *path, cp_pt_file *out, cp_error *err)
{
    memset(out, 0, sizeof *out);
    cp_mapped_file file;
    cp_status st = cp_file_map(path, &file, err);
    if (st == CP_OK) st = cp_pt_parse(file.data, file.size, path, out, err);
    if (st != CP_OK) {
        cp_file_unmap(&file);
        return st;
    }
    out->map = file.data;
    out->size = file.size;
    out->path = strdup(path);
    return CP_OK;
}

void cp_pt_close(cp_pt_file *f)
{
    if (f->map) munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

int64_t cp_pt_int_at(const cp_pt_tensor *t, int64_t i)
{
    const uint8_t *p = t->data + i * t->elem_size;
    switch (t->dtype) {
    case CP_PT_I32: return (int32_t)le32(p);
    case CP_PT_I64: return (int64_t)le64(p);
    case CP_PT_U8:
    case CP_PT_BOOL: return p[0];
    case CP_PT_I8: return (int8_t)p[0];
    case CP_PT_I16: return (int16_t)le16(p);
    default: return 0;
    }
}

float cp_pt_float_at(const cp_pt_tensor *t, int64_t i)
{
    const uint8_t *p = t->data + i * t->elem_size;
    switch (t->dtype) {
    case CP_PT_F16: return cp_half_to_float(le16(p));
    case CP_PT_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case CP_PT_F64: {
        double d;
        memcpy(&d, p, 8);
        return (float)d;
    }
    default: return (float)cp_pt_int_at(t, i);
    }
}
