/*
 * Metadata filters: a small JSON filter language compiled to one parameterised SQLite
 * statement over the `documents` table (docs/index-format.md).
 *
 *   {"year": {"$gte": 2020}, "lang": {"$in": ["en", "fr"]}, "$or": [{...}, {...}]}
 *
 * A top-level (or nested) object is the AND of its keys. A key starting with '$' is a
 * logical operator ($and, $or: non-empty arrays of filters; $not: a filter); any other key
 * is a metadata field name ("a.b" reaches into nested objects) whose value is either a
 * literal (shorthand for $eq) or an object of comparison operators ($eq $ne $gt $gte $lt
 * $lte $in $nin $exists), all of which must hold.
 *
 * Invariants that keep this safe and predictable:
 * - No client value ever becomes SQL text: field paths and values are bound parameters; the
 *   SQL text is built only from fixed fragments chosen by the operator names.
 * - Comparisons are type-strict: a number only equals / orders against numbers, a string
 *   against strings, true/false/null match only that JSON value. Every leaf is wrapped in
 *   COALESCE(..., 0), so a missing field is simply "false" and $not / $ne / $nin behave as
 *   in MongoDB (a document without the field matches {"f": {"$ne": 1}}).
 * - A field that no document has matches nothing; that is not an error.
 * - Documents whose metadata is not valid JSON are treated as having no fields.
 */
#include "filter.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cp_json.h"

/* FILTER_MAX_JSON_DEPTH: the JSON nesting of a filter at FILTER_MAX_DEPTH ($or adds an
 * array and an object per level), with room for its leaves. */
enum {
    FILTER_MAX_DEPTH = 32,
    FILTER_MAX_JSON_DEPTH = 2 * FILTER_MAX_DEPTH + 4,
    FILTER_MAX_BINDS = 20000,
    FILTER_MAX_FIELD = 256
};

typedef enum { BIND_TEXT, BIND_REAL } bind_kind;

typedef struct filter_bind {
    bind_kind kind;
    char *text;
    double real;
} filter_bind;

struct cp_filter_sql {
    char *sql;
    size_t len, cap;
    filter_bind *binds;
    size_t n_binds, cap_binds;
    bool oom;
};

/* ---- building the SQL text and bind list ------------------------------------------- */

static void emit(cp_filter_sql *f, const char *s)
{
    size_t n = strlen(s);
    if (f->oom) return;
    if (f->len + n + 1 > f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        while (cap < f->len + n + 1) cap *= 2;
        char *p = realloc(f->sql, cap);
        if (!p) {
            f->oom = true;
            return;
        }
        f->sql = p;
        f->cap = cap;
    }
    memcpy(f->sql + f->len, s, n + 1);
    f->len += n;
}

static bool push_bind(cp_filter_sql *f, bind_kind kind, const char *text, double real)
{
    if (f->n_binds == f->cap_binds) {
        size_t cap = f->cap_binds ? f->cap_binds * 2 : 16;
        filter_bind *p = realloc(f->binds, cap * sizeof *p);
        if (!p) {
            f->oom = true;
            return false;
        }
        f->binds = p;
        f->cap_binds = cap;
    }
    filter_bind *b = &f->binds[f->n_binds];
    b->kind = kind;
    b->real = real;
    b->text = NULL;
    if (text && !(b->text = strdup(text))) {
        f->oom = true;
        return false;
    }
    f->n_binds++;
    emit(f, "?");
    return true;
}

/* ---- compiling ----------------------------------------------------------------------- */

typedef struct compiler {
    cp_filter_sql *f;
    cp_error *err;
} compiler;

static cp_status fail(compiler *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cp_status fail(compiler *c, const char *fmt, ...)
{
    char msg[CP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cp_error_set(c->err, CP_EINVAL, "filter: %s", msg);
}

static cp_status check_binds(compiler *c, size_t more)
{
    if (c->f->oom) return cp_error_set(c->err, CP_ENOMEM, "filter: out of memory");
    if (c->f->n_binds + more > FILTER_MAX_BINDS)
        return fail(c, "too large (more than %d values and field references)",
                    FILTER_MAX_BINDS);
    return CP_OK;
}

/* A field name becomes the SQLite JSON path $."seg1"."seg2". Quoting each segment makes
 * any character but '"' and control characters safe; the path itself is still bound. */
static cp_status field_path(compiler *c, const char *field, char *out, size_t cap)
{
    size_t n = strlen(field);
    if (n == 0 || n > FILTER_MAX_FIELD)
        return fail(c, "field name must have 1 to %d characters", FILTER_MAX_FIELD);
    size_t pos = 0;
    out[pos++] = '$';
    const char *seg = field;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        if (len == 0) return fail(c, "field \"%s\" has an empty path segment", field);
        if (pos + len + 4 >= cap) return fail(c, "field \"%s\" is too long", field);
        out[pos++] = '.';
        out[pos++] = '"';
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)seg[i];
            if (ch < 0x20 || ch == '"' || ch == '\\' || ch == 0x7f)
                return fail(c, "field \"%s\" contains a quote, backslash or control character",
                            field);
            out[pos++] = (char)ch;
        }
        out[pos++] = '"';
        if (!dot) break;
        seg = dot + 1;
    }
    out[pos] = '\0';
    return CP_OK;
}

/* The value to compare, classified: numbers and strings compare by value; true, false and
 * null only by JSON type. */
static const char *json_type_of(const cJSON *v)
{
    if (cJSON_IsTrue(v)) return "true";
    if (cJSON_IsFalse(v)) return "false";
    if (cJSON_IsNull(v)) return "null";
    return NULL;
}

static cp_status emit_compare(compiler *c, const char *path, const char *op, const cJSON *v,
                              const char *opname)
{
    cp_filter_sql *f = c->f;
    cp_status st = check_binds(c, 2);
    if (st) return st;
    bool eq_only = !strcmp(op, "=");
    const char *jt = json_type_of(v);
    if (jt) {
        if (!eq_only) return fail(c, "%s needs a number or a string", opname);
        emit(f, "COALESCE(json_type(m, ");
        push_bind(f, BIND_TEXT, path, 0);
        emit(f, ") = '");
        emit(f, jt); /* one of three fixed words, never client text */
        emit(f, "', 0)");
        return check_binds(c, 0);
    }
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble)) return fail(c, "%s needs a finite number", opname);
        emit(f, "COALESCE(json_type(m, ");
        push_bind(f, BIND_TEXT, path, 0);
        emit(f, ") IN ('integer', 'real') AND json_extract(m, ");
        push_bind(f, BIND_TEXT, path, 0);
        emit(f, ") ");
        emit(f, op);
        emit(f, " ");
        push_bind(f, BIND_REAL, NULL, v->valuedouble);
        emit(f, ", 0)");
        return check_binds(c, 0);
    }
    if (cJSON_IsString(v)) {
        emit(f, "COALESCE(json_type(m, ");
        push_bind(f, BIND_TEXT, path, 0);
        emit(f, ") = 'text' AND json_extract(m, ");
        push_bind(f, BIND_TEXT, path, 0);
        emit(f, ") ");
        emit(f, op);
        emit(f, " ");
        push_bind(f, BIND_TEXT, v->valuestring, 0);
        emit(f, ", 0)");
        return check_binds(c, 0);
    }
    return fail(c, "%s needs a %s", opname,
                eq_only ? "string, number, boolean or null" : "number or a string");
}

/* ---- balanced trees ----------------------------------------------------------------------
 *
 * A list of n terms joined by AND or OR is written as a balanced tree of parenthesised pairs,
 * ((a OR b) OR (c OR d)), not as a chain: SQLite parses a chain of 1,000 terms into an
 * expression 1,000 deep, past its limit of 1,000 ("Expression tree is too large"), where the
 * balanced tree is 10 deep. One term is written alone, without parentheses, so nested $not
 * costs SQLite's parser one stack entry per level (it has 100). */

typedef cp_status (*emit_term_fn)(compiler *c, const cJSON *term, const void *arg);

static cp_status emit_tree(compiler *c, const cJSON *const *terms, size_t n, const char *joiner,
                           emit_term_fn fn, const void *arg)
{
    if (n == 1) return fn(c, terms[0], arg);
    size_t half = n / 2;
    emit(c->f, "(");
    cp_status st = emit_tree(c, terms, half, joiner, fn, arg);
    if (st) return st;
    emit(c->f, joiner);
    st = emit_tree(c, terms + half, n - half, joiner, fn, arg);
    if (st) return st;
    emit(c->f, ")");
    return check_binds(c, 0);
}

/* The children of node (array items or object members) joined as a balanced tree; empty
 * writes `empty` ("1" for AND, "0" for OR). */
static cp_status emit_children(compiler *c, const cJSON *node, const char *joiner,
                               const char *empty, emit_term_fn fn, const void *arg)
{
    size_t n = 0;
    for (const cJSON *it = node->child; it; it = it->next)
        n++;
    if (!n) {
        emit(c->f, empty);
        return check_binds(c, 0);
    }
    if (n > FILTER_MAX_BINDS) return fail(c, "too large (more than %d terms)", FILTER_MAX_BINDS);
    const cJSON **terms = malloc(n * sizeof *terms);
    if (!terms) return cp_error_set(c->err, CP_ENOMEM, "filter: out of memory");
    n = 0;
    for (const cJSON *it = node->child; it; it = it->next)
        terms[n++] = it;
    cp_status st = emit_tree(c, terms, n, joiner, fn, arg);
    free(terms);
    return st;
}

typedef struct in_arg {
    const char *path, *opname;
} in_arg;

static cp_status emit_in_value(compiler *c, const cJSON *v, const void *arg)
{
    const in_arg *a = arg;
    if (cJSON_IsArray(v) || cJSON_IsObject(v))
        return fail(c, "%s values must be strings, numbers, booleans or null", a->opname);
    return emit_compare(c, a->path, "=", v, a->opname);
}

static cp_status emit_in(compiler *c, const char *path, const cJSON *arr, bool negate,
                         const char *opname)
{
    if (!cJSON_IsArray(arr)) return fail(c, "%s needs an array", opname);
    if (negate) emit(c->f, "NOT ");
    in_arg a = {path, opname};
    return emit_children(c, arr, " OR ", "0", emit_in_value, &a);
}

static cp_status emit_operator(compiler *c, const char *path, const cJSON *op)
{
    static const struct {
        const char *name, *sql;
    } cmp[] = {{"$eq", "="}, {"$gt", ">"}, {"$gte", ">="}, {"$lt", "<"}, {"$lte", "<="}};
    const char *name = op->string;
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++)
        if (!strcmp(name, cmp[i].name)) return emit_compare(c, path, cmp[i].sql, op, name);
    if (!strcmp(name, "$ne")) {
        emit(c->f, "NOT ");
        return emit_compare(c, path, "=", op, name);
    }
    if (!strcmp(name, "$in")) return emit_in(c, path, op, false, name);
    if (!strcmp(name, "$nin")) return emit_in(c, path, op, true, name);
    if (!strcmp(name, "$exists")) {
        if (!cJSON_IsBool(op)) return fail(c, "$exists needs true or false");
        cp_status st = check_binds(c, 1);
        if (st) return st;
        emit(c->f, "(json_type(m, ");
        push_bind(c->f, BIND_TEXT, path, 0);
        emit(c->f, cJSON_IsTrue(op) ? ") IS NOT NULL)" : ") IS NULL)");
        return check_binds(c, 0);
    }
    return fail(c, "unknown operator \"%s\" (known: $eq $ne $gt $gte $lt $lte $in $nin $exists)",
                name);
}

static cp_status compile_node(compiler *c, const cJSON *node, int depth);

static cp_status emit_field_op(compiler *c, const cJSON *op, const void *arg)
{
    const cJSON *item = arg;
    char path[FILTER_MAX_FIELD * 2 + 8];
    cp_status st = field_path(c, item->string, path, sizeof path);
    if (st) return st;
    if (!op->string || op->string[0] != '$')
        return fail(c, "field \"%s\": mix of operators and plain keys", item->string);
    if ((st = emit_operator(c, path, op))) cp_error_prefix(c->err, "field \"%s\"", item->string);
    return st;
}

static cp_status compile_field(compiler *c, const cJSON *item)
{
    char path[FILTER_MAX_FIELD * 2 + 8];
    cp_status st = field_path(c, item->string, path, sizeof path);
    if (st) return st;
    bool ops = cJSON_IsObject(item) && item->child && item->child->string &&
               item->child->string[0] == '$';
    if (!ops) {
        if (cJSON_IsObject(item) || cJSON_IsArray(item))
            return fail(c, "field \"%s\": compare with an operator object such as {\"$eq\": ...}; "
                           "objects and arrays cannot be matched directly",
                        item->string);
        return emit_compare(c, path, "=", item, "$eq");
    }
    return emit_children(c, item, " AND ", "1", emit_field_op, item);
}

typedef struct node_arg {
    int depth;
} node_arg;

static cp_status emit_sub_node(compiler *c, const cJSON *sub, const void *arg)
{
    return compile_node(c, sub, ((const node_arg *)arg)->depth);
}

static cp_status compile_list(compiler *c, const cJSON *arr, const char *joiner, int depth,
                              const char *opname)
{
    if (!cJSON_IsArray(arr) || !arr->child)
        return fail(c, "%s needs a non-empty array of filters", opname);
    node_arg a = {depth + 1};
    return emit_children(c, arr, joiner, "1", emit_sub_node, &a);
}

static cp_status compile_key(compiler *c, const cJSON *item, const void *arg)
{
    int depth = ((const node_arg *)arg)->depth;
    const char *key = item->string;
    if (key[0] != '$') return compile_field(c, item);
    if (!strcmp(key, "$and")) return compile_list(c, item, " AND ", depth, key);
    if (!strcmp(key, "$or")) return compile_list(c, item, " OR ", depth, key);
    if (!strcmp(key, "$not")) {
        emit(c->f, "NOT ");
        return compile_node(c, item, depth + 1);
    }
    return fail(c, "unknown logical operator \"%s\" (known: $and $or $not; field names "
                   "cannot start with '$')",
                key);
}

static cp_status compile_node(compiler *c, const cJSON *node, int depth)
{
    if (depth > FILTER_MAX_DEPTH) return fail(c, "nested deeper than %d levels", FILTER_MAX_DEPTH);
    if (!cJSON_IsObject(node)) return fail(c, "each filter must be a JSON object");
    node_arg a = {depth};
    return emit_children(c, node, " AND ", "1", compile_key, &a);
}

void cp_filter_sql_free(cp_filter_sql *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n_binds; i++) free(f->binds[i].text);
    free(f->binds);
    free(f->sql);
    free(f);
}

const char *cp_filter_sql_text(const cp_filter_sql *f)
{
    return f ? f->sql : NULL;
}

cp_status cp_filter_compile(const char *filter_json, size_t len, cp_filter_sql **out,
                            cp_error *err)
{
    *out = NULL;
    /* Strict first (util/cp_json.h): cJSON would take the first of two equal keys, cut a
     * "\u0000" value short (so "editors\u0000zzz" matched "editors") and ignore what
     * follows the object. */
    cp_json_info info;
    cp_json_status js = cp_json_check(filter_json, len, FILTER_MAX_JSON_DEPTH, SIZE_MAX, &info);
    if (js == CP_JSON_DUP_KEY)
        return cp_error_set(err, CP_EINVAL, "filter: an object has the key \"%s\" twice",
                            info.dup_key);
    if (js == CP_JSON_DEPTH)
        return cp_error_set(err, CP_EINVAL, "filter: nested deeper than %d levels",
                            FILTER_MAX_DEPTH);
    if (js)
        return cp_error_set(err, CP_EINVAL, "filter: %s (byte %zu)", cp_json_status_text(js),
                            info.offset);
    cJSON *root = cJSON_ParseWithLength(filter_json, len);
    if (!root) return cp_error_set(err, CP_EINVAL, "filter: not valid JSON");
    cp_filter_sql *f = calloc(1, sizeof *f);
    if (!f) {
        cJSON_Delete(root);
        return cp_error_set(err, CP_ENOMEM, "filter: out of memory");
    }
    compiler c = {f, err};
    /* m is the metadata when it is valid JSON, else NULL (a document without fields). */
    emit(f, "SELECT doc_id FROM (SELECT doc_id, CASE WHEN json_valid(metadata) THEN metadata "
            "END AS m FROM documents WHERE deleted = 0) WHERE ");
    cp_status st = compile_node(&c, root, 0);
    emit(f, " ORDER BY doc_id");
    if (!st) st = check_binds(&c, 0);
    cJSON_Delete(root);
    if (st) {
        cp_filter_sql_free(f);
        return st;
    }
    *out = f;
    return CP_OK;
}

/* ---- running --------------------------------------------------------------------------- */

static cp_status bind_all(const cp_filter_sql *f, sqlite3_stmt *stmt, cp_error *err)
{
    for (size_t i = 0; i < f->n_binds; i++) {
        const filter_bind *b = &f->binds[i];
        int rc = b->kind == BIND_TEXT
                     ? sqlite3_bind_text(stmt, (int)i + 1, b->text, -1, SQLITE_STATIC)
                     : sqlite3_bind_double(stmt, (int)i + 1, b->real);
        if (rc != SQLITE_OK)
            return cp_error_set(err, CP_EINTERNAL, "filter: binding value %zu failed", i + 1);
    }
    return CP_OK;
}

cp_status cp_filter_run(const cp_filter_sql *f, void *sqlite_db, int64_t **doc_ids,
                        size_t *n_ids, cp_error *err)
{
    sqlite3 *db = sqlite_db;
    sqlite3_stmt *stmt = NULL;
    *doc_ids = NULL;
    *n_ids = 0;
    if (sqlite3_prepare_v2(db, f->sql, -1, &stmt, NULL) != SQLITE_OK) {
        /* Within the documented limits this does not happen (balanced trees, single terms
         * unparenthesised); a filter that combines them all can still pass SQLite's parser
         * stack or expression depth, and that is the client's filter, not a server fault. */
        const char *msg = sqlite3_errmsg(db);
        if (strstr(msg, "parser stack overflow") || strstr(msg, "too large") ||
            strstr(msg, "too many"))
            return cp_error_set(err, CP_EINVAL,
                                "filter: too complex to run (%s): nest fewer operators", msg);
        return cp_error_set(err, CP_EINTERNAL, "filter: SQLite refused the query: %s", msg);
    }
    cp_status st = bind_all(f, stmt, err);
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while (!st && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            int64_t *p = realloc(ids, cap * sizeof *p);
            if (!p) {
                st = cp_error_set(err, CP_ENOMEM, "filter: out of memory for results");
                break;
            }
            ids = p;
        }
        ids[n++] = sqlite3_column_int64(stmt, 0);
    }
    if (!st && rc != SQLITE_DONE)
        st = cp_error_set(err, rc == SQLITE_BUSY ? CP_EBUSY : CP_EIO,
                          "filter: reading documents failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    if (st) {
        free(ids);
        return st;
    }
    *doc_ids = ids;
    *n_ids = n;
    return CP_OK;
}

cp_status cp_filter_ids(const char *path, const char *filter_json, int64_t **doc_ids, size_t *n_ids,
                        cp_error *err)
{
    *doc_ids = NULL;
    *n_ids = 0;
    cp_filter_sql *f;
    cp_status st = cp_filter_compile(filter_json, strlen(filter_json), &f, err);
    if (st) return st;
    /* A connection per call: filters are rare next to searches, and a private read-only
     * connection never contends with the writer's connection (WAL readers do not block). */
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        st = cp_error_set(err, CP_EIO, "filter: cannot open %s: %s", path,
                          db ? sqlite3_errmsg(db) : "out of memory");
    } else {
        sqlite3_busy_timeout(db, 5000);
        st = cp_filter_run(f, db, doc_ids, n_ids, err);
    }
    sqlite3_close(db);
    cp_filter_sql_free(f);
    return st;
}
