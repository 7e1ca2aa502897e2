/*
 * Parsing and validation of request bodies: see request.h. Every rejection names the
 * offending field ("queries[2].shape") so a client can fix its request without reading
 * the server's code. Unknown fields are rejected too: a misspelt "top_k" silently ignored
 * is worse than an error.
 */
#include "request.h"

#include "colplaid/corpus.h"

#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cp_json.h"

bool cp_http_fail(cp_http_error *e, int status, const char *code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        e->status = status;
        e->code = code;
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
    }
    return false;
}

#define BAD(e, ...) cp_http_fail(e, 400, "INVALID_ARGUMENT", __VA_ARGS__)
#define LIMIT(e, ...) cp_http_fail(e, 422, "LIMIT_EXCEEDED", __VA_ARGS__)
#define OOM(e) oom_fail(e)

void cp_limits_init(cp_limits *lim)
{
    lim->max_body_bytes = 32u << 20;
    lim->max_queries = 64;
    lim->max_k = 1000;
    lim->max_query_tokens = 512;
    lim->max_documents = 1000;
    lim->max_doc_tokens = 4096;
    lim->max_ids = 100000;
    lim->max_text_bytes = 1u << 20;
    lim->max_write_documents = 1000;
    lim->max_json_values = 1000000;
    lim->max_response_bytes = (size_t)256 << 20;
}

/* ---- base64 ------------------------------------------------------------------------------ */

/* Sextet of every byte (A-Z a-z 0-9 + /), 255 outside the alphabet. A table rather than
 * range tests: a 32 x 128 query is 22 KB of base64, and the branchy decoder showed up in
 * the profile of bench_http.sh at about 2% of the server's time. */
static const unsigned char b64_table[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 62,  255, 255, 255, 63,  52,  53,  54,  55,  56,  57,  58,  59,  60,
    61,  255, 255, 255, 255, 255, 255, 255, 0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,
    11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  255, 255, 255, 255,
    255, 255, 26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,
    43,  44,  45,  46,  47,  48,  49,  50,  51,  255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255,
};

/* Decode the len/4 groups of in (no padding) into out; false on a byte outside the
 * alphabet. The OR of all sextets is checked once at the end, keeping the loop free of
 * branches. */
static bool b64_decode_groups(const unsigned char *in, size_t len, unsigned char *out)
{
    unsigned bad = 0;
    for (size_t i = 0; i < len; i += 4, out += 3) {
        unsigned a = b64_table[in[i]], b = b64_table[in[i + 1]], c = b64_table[in[i + 2]],
                 d = b64_table[in[i + 3]];
        bad |= a | b | c | d;
        uint32_t w = a << 18 | b << 12 | c << 6 | d;
        out[0] = (unsigned char)(w >> 16);
        out[1] = (unsigned char)(w >> 8);
        out[2] = (unsigned char)w;
    }
    return bad < 64;
}

bool cp_base64_decode(const char *in, size_t len, unsigned char **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (len % 4 != 0) return false;
    size_t pad = 0;
    if (len >= 1 && in[len - 1] == '=') pad++;
    if (len >= 2 && in[len - 2] == '=') pad++;
    size_t n = len / 4 * 3 - pad;
    /* Room for the whole last group: its padded bytes are written, then not counted. */
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (!buf) return false;
    const unsigned char *u = (const unsigned char *)in;
    size_t full = pad ? len - 4 : len;
    bool ok = b64_decode_groups(u, full, buf);
    if (ok && pad) {
        unsigned char last[4] = {u[len - 4], u[len - 3], pad == 2 ? 'A' : u[len - 2], 'A'};
        ok = b64_decode_groups(last, 4, buf + full / 4 * 3);
    }
    if (!ok) {
        free(buf);
        return false;
    }
    *out = buf;
    *n_out = n;
    return true;
}

char *cp_base64_encode(const unsigned char *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (len + 2) / 3 * 4;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16;
        if (i + 1 < len) w |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) w |= in[i + 2];
        out[o++] = abc[w >> 18 & 63];
        out[o++] = abc[w >> 12 & 63];
        out[o++] = i + 1 < len ? abc[w >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? abc[w & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* ---- cJSON's memory, per request ---------------------------------------------------------- */

/* cJSON allocates through hooks that count the bytes of the request being parsed on this
 * thread (a thread-local budget, active from parse_root to end_root). Blocks are plain
 * malloc blocks measured with malloc_usable_size, so a pointer cJSON allocated before the
 * hooks were installed, or one freed with free(), stays correct. */
typedef struct json_budget {
    size_t used, peak, cap;
    bool over;
} json_budget;

static _Thread_local json_budget *tl_budget;
static _Thread_local size_t tl_peak; /* largest parse of this thread since the last take */

static void *budget_malloc(size_t n)
{
    json_budget *b = tl_budget;
    if (b && (n > b->cap || b->used > b->cap - n)) {
        b->over = true;
        return NULL;
    }
    void *p = malloc(n);
    if (p && b) {
        b->used += malloc_usable_size(p);
        if (b->used > b->peak) b->peak = b->used;
    }
    return p;
}

static void budget_free(void *p)
{
    json_budget *b = tl_budget;
    if (p && b) {
        size_t n = malloc_usable_size(p);
        b->used = n < b->used ? b->used - n : 0;
    }
    free(p);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void)
{
    cJSON_Hooks h = {budget_malloc, budget_free};
    cJSON_InitHooks(&h);
}

void cp_request_install_hooks(void)
{
    pthread_once(&hooks_once, install_hooks);
}

size_t cp_request_take_parse_peak(void)
{
    size_t p = tl_peak;
    tl_peak = 0;
    return p;
}

static bool oom_fail(cp_http_error *e)
{
    if (tl_budget && tl_budget->over)
        return cp_http_fail(e, 413, "PAYLOAD_TOO_LARGE",
                            "parsing the body needs more than %zu bytes of memory", tl_budget->cap);
    return cp_http_fail(e, 500, "OUT_OF_MEMORY", "out of memory");
}

/* ---- shared field helpers ------------------------------------------------------------------ */

/* The strict check (cp_json.h) as the client's error. */
static bool check_body(const char *body, size_t len, const cp_limits *lim, cp_json_info *info,
                       cp_http_error *e)
{
    size_t max_values = lim->max_json_values ? lim->max_json_values : SIZE_MAX;
    cp_json_status st = cp_json_check(body, len, CP_JSON_MAX_DEPTH, max_values, info);
    size_t at = info->offset;
    switch (st) {
    case CP_JSON_OK:
        return true;
    case CP_JSON_SYNTAX:
        return cp_http_fail(e, 400, "MALFORMED_JSON", "the body is not valid JSON (near byte %zu)",
                            at);
    case CP_JSON_TRAILING:
        return cp_http_fail(e, 400, "MALFORMED_JSON",
                            "the body has data after its JSON object (byte %zu): send one object",
                            at);
    case CP_JSON_DEPTH:
        return cp_http_fail(e, 400, "MALFORMED_JSON",
                            "the body nests arrays and objects deeper than %d levels (byte %zu)",
                            CP_JSON_MAX_DEPTH, at);
    case CP_JSON_TOO_MANY:
        return cp_http_fail(e, 413, "PAYLOAD_TOO_LARGE",
                            "the body has more than %zu JSON values (--max-json-values); send "
                            "large embeddings as embeddings_b64",
                            max_values);
    case CP_JSON_UTF8:
        return cp_http_fail(e, 400, "INVALID_UTF8", "the body is not valid UTF-8 (byte %zu)", at);
    case CP_JSON_NUL:
        return cp_http_fail(e, 400, "INVALID_STRING",
                            "a string holds U+0000 (NUL) at byte %zu: ids, texts, keys and "
                            "values cannot contain it",
                            at);
    case CP_JSON_DUP_KEY:
        return cp_http_fail(e, 400, "DUPLICATE_KEY",
                            "an object has the key \"%s\" twice (byte %zu)", info->dup_key, at);
    case CP_JSON_NOMEM:
        break;
    }
    return cp_http_fail(e, 500, "OUT_OF_MEMORY", "out of memory");
}

/* Check, then parse with a memory budget for cJSON that stays active (for the copies the
 * field parsers make with cJSON_Print) until end_root. */
static bool parse_root(const char *body, size_t len, const cp_limits *lim, json_budget *b,
                       cJSON **root, cp_http_error *e)
{
    *root = NULL;
    cp_request_install_hooks();
    cp_json_info info;
    if (!check_body(body, len, lim, &info, e)) return false;
    /* What cJSON needs: a node of about 64 bytes (plus malloc's header) per value and a
     * copy of every string, so this only trips on a parser gone wrong. */
    memset(b, 0, sizeof *b);
    b->cap = 2 * len + 128 * info.n_values + (64u << 10);
    tl_budget = b;
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!*root) {
        bool over = b->over;
        tl_budget = NULL;
        if (over) {
            cp_http_fail(e, 413, "PAYLOAD_TOO_LARGE",
                         "parsing the body needs more than %zu bytes of memory", b->cap);
            return false;
        }
        size_t at = 0;
        if (end && end >= body && end <= body + len) at = (size_t)(end - body);
        return cp_http_fail(e, 400, "MALFORMED_JSON", "the body is not valid JSON (near byte %zu)",
                            at);
    }
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        tl_budget = NULL;
        return BAD(e, "the body must be a JSON object");
    }
    return true;
}

static void end_root(cJSON *root, json_budget *b)
{
    cJSON_Delete(root);
    if (b->peak > tl_peak) tl_peak = b->peak;
    tl_budget = NULL;
}

/* Reject keys outside allowed (a NULL-terminated list). */
static bool only_keys(const cJSON *obj, const char *const *allowed, const char *where,
                      cp_http_error *e)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++) ok = !strcmp(it->string, allowed[i]);
        if (!ok) return BAD(e, "%s: unknown field \"%.64s\"", where, it->string);
    }
    return true;
}

/* An integer in [min, max] (JSON numbers are doubles: reject fractions and overflow). */
static bool get_int(const cJSON *v, const char *name, double min, double max, int *out,
                    cp_http_error *e)
{
    if (!cJSON_IsNumber(v)) return BAD(e, "%s must be an integer", name);
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) return BAD(e, "%s must be an integer", name);
    if (d < min) return BAD(e, "%s must be at least %.0f", name, min);
    if (d > max) return LIMIT(e, "%s must be at most %.0f (server limit)", name, max);
    *out = (int)d;
    return true;
}

static bool get_text(const cJSON *v, const char *name, const cp_limits *lim, char **out,
                     cp_http_error *e)
{
    if (!cJSON_IsString(v)) return BAD(e, "%s must be a string", name);
    size_t n = strlen(v->valuestring);
    if (n > lim->max_text_bytes)
        return LIMIT(e, "%s has %zu bytes, the limit is %zu", name, n, lim->max_text_bytes);
    if (cp_document_text_blank(v->valuestring)) return BAD(e, "%s is empty", name);
    if (!(*out = strdup(v->valuestring))) return OOM(e);
    return true;
}

/* An array of at most lim->max_ids non-empty strings, copied into *out (the "ids" of search
 * and of delete). */
static bool get_id_list(const cJSON *ids, const cp_limits *lim, char ***out, size_t *n_out,
                        cp_http_error *e)
{
    if (!cJSON_IsArray(ids)) return BAD(e, "ids must be an array of strings");
    int n = cJSON_GetArraySize(ids);
    if (n > lim->max_ids) return LIMIT(e, "%d ids, the limit is %d", n, lim->max_ids);
    if (n && !(*out = calloc((size_t)n, sizeof **out))) return OOM(e);
    for (const cJSON *it = ids->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return BAD(e, "ids[%zu] must be a non-empty string", *n_out);
        if (!((*out)[*n_out] = strdup(it->valuestring))) return OOM(e);
        (*n_out)++;
    }
    return true;
}

static void free_strings(char **strs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(strs[i]);
    free(strs);
}

/* A filter object (of search or delete), re-serialised for the index to compile. */
static bool get_filter(const cJSON *f, char **out, cp_http_error *e)
{
    if (!cJSON_IsObject(f))
        return cp_http_fail(e, 400, "INVALID_FILTER", "filter must be an object");
    if (!(*out = cJSON_PrintUnformatted(f))) return OOM(e);
    return true;
}

/* ---- embeddings ------------------------------------------------------------------------------ */

typedef struct vec_rules {
    int dim;        /* required dim, or 0 for any */
    int max_tokens;
    const cp_limits *lim;
    const char *dim_of; /* whose dim that is, for messages; NULL: "the index" */
} vec_rules;

static bool check_rows(int rows, int cols, const vec_rules *r, const char *where, cp_http_error *e)
{
    if (rows < 1 || cols < 1) return BAD(e, "%s: embeddings must have at least one row and one column", where);
    if (rows > r->max_tokens)
        return LIMIT(e, "%s: %d token vectors, the limit is %d", where, rows, r->max_tokens);
    if (r->dim && cols != r->dim)
        return cp_http_fail(e, 422, "DIMENSION_MISMATCH",
                            "%s: vectors have %d dims, %s has %d", where, cols,
                            r->dim_of ? r->dim_of : "the index", r->dim);
    if (cols > 65536) return BAD(e, "%s: %d dims is not plausible", where, cols);
    return true;
}

/* Rows whose norm is not finite or above CP_MAX_ROW_NORM are refused: MaxSim scores are sums
 * of dot products in float32, and rows of 1e38 overflowed them to inf (not JSON, and an
 * arbitrary ranking). */
static bool check_norms(const float *data, int rows, int cols, const char *where, cp_http_error *e)
{
    for (int i = 0; i < rows; i++) {
        double ss = 0;
        for (int j = 0; j < cols; j++) {
            double x = data[(size_t)i * cols + j];
            ss += x * x;
        }
        double norm = sqrt(ss);
        if (!(norm <= CP_MAX_ROW_NORM))
            return BAD(e,
                       "%s: embeddings row %d has norm %.3g; rows must have a finite norm of "
                       "at most %.0e",
                       where, i, norm, CP_MAX_ROW_NORM);
    }
    return true;
}

static bool parse_rows(const cJSON *arr, const vec_rules *r, const char *where, cp_vec_input *out,
                       cp_http_error *e)
{
    int rows = cJSON_GetArraySize(arr);
    const cJSON *first = arr->child;
    if (!first || !cJSON_IsArray(first))
        return BAD(e, "%s.embeddings must be a non-empty array of arrays of numbers", where);
    int cols = cJSON_GetArraySize(first);
    if (!check_rows(rows, cols, r, where, e)) return false;
    if (!(out->data = malloc((size_t)rows * cols * sizeof(float)))) return OOM(e);
    size_t o = 0;
    int i = 0;
    for (const cJSON *row = first; row; row = row->next, i++) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != cols)
            return BAD(e, "%s.embeddings[%d] must be an array of %d numbers", where, i, cols);
        for (const cJSON *x = row->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) ||
                fabs(x->valuedouble) > 3.0e38)
                return BAD(e, "%s.embeddings[%d] holds a value that is not a finite float", where,
                           i);
            out->data[o++] = (float)x->valuedouble;
        }
    }
    out->n_tokens = rows;
    out->dim = cols;
    return check_norms(out->data, rows, cols, where, e);
}

static bool parse_b64(const cJSON *b64, const cJSON *shape, const vec_rules *r, const char *where,
                      cp_vec_input *out, cp_http_error *e)
{
    if (!cJSON_IsString(b64)) return BAD(e, "%s.embeddings_b64 must be a string", where);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 2)
        return BAD(e, "%s.shape must be [tokens, dim] next to embeddings_b64", where);
    int rows, cols;
    char name[96];
    snprintf(name, sizeof name, "%s.shape[0]", where);
    if (!get_int(shape->child, name, 1, INT_MAX, &rows, e)) return false;
    snprintf(name, sizeof name, "%s.shape[1]", where);
    if (!get_int(shape->child->next, name, 1, INT_MAX, &cols, e)) return false;
    if (!check_rows(rows, cols, r, where, e)) return false;
    size_t want = (size_t)rows * cols * sizeof(float), got;
    unsigned char *bytes;
    const char *s = b64->valuestring;
    if (!cp_base64_decode(s, strlen(s), &bytes, &got))
        return BAD(e, "%s.embeddings_b64 is not valid base64 (padded, length a multiple of 4)",
                   where);
    if (got != want) {
        free(bytes);
        return BAD(e, "%s.embeddings_b64 decodes to %zu bytes, shape [%d, %d] needs %zu", where, got,
                   rows, cols, want);
    }
    out->data = (float *)bytes; /* little-endian float32 on every supported host */
    out->n_tokens = rows;
    out->dim = cols;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (!isfinite(out->data[i]))
            return BAD(e, "%s.embeddings_b64 holds NaN or infinity at element %zu", where, i);
    return check_norms(out->data, rows, cols, where, e);
}

/* The fields of an object that carries a text or embeddings: a query or rerank input
 * (parse_vec) and an upserted document (parse_upsert_doc) read them the same way; only
 * which combinations they accept differs. */
typedef struct vec_fields {
    const cJSON *text, *emb, *b64, *shape;
} vec_fields;

static vec_fields get_vec_fields(const cJSON *v)
{
    vec_fields f = {cJSON_GetObjectItemCaseSensitive(v, "text"),
                    cJSON_GetObjectItemCaseSensitive(v, "embeddings"),
                    cJSON_GetObjectItemCaseSensitive(v, "embeddings_b64"),
                    cJSON_GetObjectItemCaseSensitive(v, "shape")};
    return f;
}

/* The "text" field of the object at where, named "<where>.text" in errors. */
static bool get_text_field(const cJSON *text, const char *where, const cp_limits *lim, char **out,
                           cp_http_error *e)
{
    char name[96];
    snprintf(name, sizeof name, "%s.text", where);
    return get_text(text, name, lim, out, e);
}

/* The embeddings of f, which has "embeddings" (nested arrays) or "embeddings_b64". */
static bool parse_embeddings(const vec_fields *f, const vec_rules *r, const char *where,
                             cp_vec_input *out, cp_http_error *e)
{
    if (!f->emb) return parse_b64(f->b64, f->shape, r, where, out, e);
    if (!cJSON_IsArray(f->emb))
        return BAD(e, "%s.embeddings must be an array of arrays of numbers", where);
    return parse_rows(f->emb, r, where, out, e);
}

/* A text (bare string or {"text"}) or embeddings ({"embeddings"} or {"embeddings_b64",
 * "shape"}). On failure out may hold partial allocations: the caller frees it. */
static bool parse_vec(const cJSON *v, const vec_rules *r, const char *where, cp_vec_input *out,
                      cp_http_error *e)
{
    if (cJSON_IsString(v)) return get_text(v, where, r->lim, &out->text, e);
    if (!cJSON_IsObject(v))
        return BAD(e, "%s must be a string or an object with text, embeddings or embeddings_b64",
                   where);
    static const char *const keys[] = {"text", "embeddings", "embeddings_b64", "shape", "id", NULL};
    if (!only_keys(v, keys, where, e)) return false;
    vec_fields f = get_vec_fields(v);
    if ((f.text != NULL) + (f.emb != NULL) + (f.b64 != NULL) != 1)
        return BAD(e, "%s needs exactly one of text, embeddings, embeddings_b64", where);
    if (f.shape && !f.b64) return BAD(e, "%s.shape goes with embeddings_b64 only", where);
    if (f.text) return get_text_field(f.text, where, r->lim, &out->text, e);
    return parse_embeddings(&f, r, where, out, e);
}

static void vec_free(cp_vec_input *v)
{
    free(v->text);
    free(v->data);
    memset(v, 0, sizeof *v);
}

/* ---- search ---------------------------------------------------------------------------------- */

static bool parse_params(const cJSON *p, cp_search_request *out, cp_http_error *e)
{
    if (!cJSON_IsObject(p)) return BAD(e, "params must be an object");
    static const char *const keys[] = {"ncells", "centroid_score_threshold", "ndocs", NULL};
    if (!only_keys(p, keys, "params", e)) return false;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "ncells")) &&
        !get_int(v, "params.ncells", 1, 1 << 16, &out->ncells, e))
        return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "ndocs")) &&
        !get_int(v, "params.ndocs", 1, 1 << 24, &out->ndocs, e))
        return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "centroid_score_threshold"))) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e6)
            return BAD(e, "params.centroid_score_threshold must be a finite number");
        out->threshold = (float)v->valuedouble;
    }
    return true;
}

static bool parse_queries(const cJSON *q, const cp_limits *lim, int dim, cp_search_request *out,
                          cp_http_error *e)
{
    if (!cJSON_IsArray(q)) return BAD(e, "queries must be an array");
    int n = cJSON_GetArraySize(q);
    if (n == 0) return BAD(e, "queries is empty: send at least one query");
    if (n > lim->max_queries)
        return LIMIT(e, "%d queries in one request, the limit is %d", n, lim->max_queries);
    if (!(out->queries = calloc((size_t)n, sizeof *out->queries))) return OOM(e);
    out->n_queries = (size_t)n;
    vec_rules r = {dim, lim->max_query_tokens, lim, NULL};
    size_t i = 0;
    for (const cJSON *it = q->child; it; it = it->next, i++) {
        char where[48];
        snprintf(where, sizeof where, "queries[%zu]", i);
        if (!parse_vec(it, &r, where, &out->queries[i], e)) return false;
    }
    return true;
}

static bool parse_ids(const cJSON *ids, const cp_limits *lim, cp_search_request *out,
                      cp_http_error *e)
{
    out->has_ids = true; /* an empty list is allowed here: it matches no document */
    return get_id_list(ids, lim, &out->ids, &out->n_ids, e);
}

static bool parse_include(const cJSON *inc, cp_search_request *out, cp_http_error *e)
{
    if (!cJSON_IsArray(inc)) return BAD(e, "include must be an array of \"text\" / \"metadata\"");
    for (const cJSON *it = inc->child; it; it = it->next) {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, "text"))
            out->include_text = true;
        else if (cJSON_IsString(it) && !strcmp(it->valuestring, "metadata"))
            out->include_metadata = true;
        else
            return BAD(e, "include may only list \"text\" and \"metadata\"");
    }
    return true;
}

static bool parse_mode(const cJSON *m, cp_search_request *out, cp_http_error *e)
{
    const char *v = cJSON_IsString(m) ? m->valuestring : "";
    if (!strcmp(v, "plaid") || !strcmp(v, "late")) return true;
    if (!strcmp(v, "exact")) {
        out->exact = true;
        return true;
    }
    if (!strcmp(v, "lexical"))
        out->mode = CP_MODE_LEXICAL;
    else if (!strcmp(v, "hybrid"))
        out->mode = CP_MODE_HYBRID;
    else
        return BAD(e, "mode must be \"plaid\" (or \"late\"), \"exact\", \"lexical\" or "
                      "\"hybrid\"");
    return true;
}

/* "fusion": {"method": "linear" | "rrf", "alpha": A, "normalize": "zscore" | "minmax",
 * "depth": N}, every field optional (docs/hybrid.md). */
static bool parse_fusion(const cJSON *f, cp_search_request *out, cp_http_error *e)
{
    static const char *const keys[] = {"method", "alpha", "normalize", "depth", NULL};
    if (!cJSON_IsObject(f)) return BAD(e, "fusion must be an object");
    if (!only_keys(f, keys, "fusion", e)) return false;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, "method");
    if (v) {
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "linear"))
            out->fusion.method = CP_FUSION_LINEAR;
        else if (cJSON_IsString(v) && !strcmp(v->valuestring, "rrf"))
            out->fusion.method = CP_FUSION_RRF;
        else
            return BAD(e, "fusion.method must be \"linear\" or \"rrf\"");
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "alpha"))) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
            return BAD(e, "fusion.alpha must be a number in [0, 1] (the lexical side's weight)");
        if (out->fusion.method == CP_FUSION_RRF)
            return BAD(e, "fusion.alpha applies to method \"linear\", not \"rrf\"");
        out->fusion.method = CP_FUSION_LINEAR;
        out->fusion.alpha = (float)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "normalize"))) {
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "zscore"))
            out->fusion.norm = CP_NORM_ZSCORE;
        else if (cJSON_IsString(v) && !strcmp(v->valuestring, "minmax"))
            out->fusion.norm = CP_NORM_MINMAX;
        else
            return BAD(e, "fusion.normalize must be \"zscore\" or \"minmax\"");
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(f, "depth")) &&
        !get_int(v, "fusion.depth", 1, 10000, &out->fusion.depth, e))
        return false;
    return true;
}

/* Lexical and hybrid searches keep each query's text (lexical ones need no encoding, so the
 * text leaves the query input). */
static bool take_lexical_texts(cp_search_request *out, cp_http_error *e)
{
    if (out->mode == CP_MODE_LATE) return true;
    const char *name = out->mode == CP_MODE_LEXICAL ? "lexical" : "hybrid";
    if (out->exact && out->mode == CP_MODE_LEXICAL)
        return BAD(e, "mode \"%s\" has no exact variant", name);
    if (!(out->lex_texts = calloc(out->n_queries, sizeof *out->lex_texts))) return OOM(e);
    for (size_t i = 0; i < out->n_queries; i++) {
        cp_vec_input *q = &out->queries[i];
        if (!q->text)
            return BAD(e, "mode \"%s\" needs text queries: queries[%zu] is embeddings", name, i);
        if (out->mode == CP_MODE_LEXICAL) {
            out->lex_texts[i] = q->text;
            q->text = NULL;
        } else if (!(out->lex_texts[i] = strdup(q->text))) {
            return OOM(e);
        }
    }
    return true;
}

static bool parse_search_fields(const cJSON *root, const cp_limits *lim, int dim,
                                cp_search_request *out, cp_http_error *e)
{
    static const char *const keys[] = {"queries", "k",       "recall", "params", "filter",
                                       "ids",     "include", "mode",   "fusion", NULL};
    if (!only_keys(root, keys, "body", e)) return false;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "queries");
    if (!v) return BAD(e, "queries is missing");
    if (!parse_queries(v, lim, dim, out, e)) return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "k")) &&
        !get_int(v, "k", 1, lim->max_k, &out->k, e))
        return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "recall"))) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0 && v->valuedouble <= 1))
            return BAD(e, "recall must be a number in (0, 1], e.g. 0.97 or 0.99 (1 searches "
                          "exhaustively)");
        out->recall = (float)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "params")) && !parse_params(v, out, e))
        return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "ids")) && !parse_ids(v, lim, out, e))
        return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "include")) && !parse_include(v, out, e))
        return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "mode")) && !parse_mode(v, out, e))
        return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "fusion"))) {
        if (out->mode != CP_MODE_HYBRID) return BAD(e, "fusion applies to mode \"hybrid\" only");
        if (!parse_fusion(v, out, e)) return false;
    }
    if (!take_lexical_texts(out, e)) return false;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "filter")) &&
        !get_filter(v, &out->filter_json, e))
        return false;
    return true;
}

bool cp_parse_search(const char *body, size_t len, const cp_limits *lim, int dim,
                     cp_search_request *out, cp_http_error *e)
{
    memset(out, 0, sizeof *out);
    out->k = 10 < lim->max_k ? 10 : lim->max_k;
    out->threshold = NAN;
    cp_fusion_init(&out->fusion);
    cJSON *root;
    json_budget b;
    if (!parse_root(body, len, lim, &b, &root, e)) return false;
    bool ok = parse_search_fields(root, lim, dim, out, e);
    end_root(root, &b);
    if (!ok) cp_search_request_free(out);
    return ok;
}

void cp_search_request_free(cp_search_request *req)
{
    for (size_t i = 0; i < req->n_queries; i++) {
        vec_free(&req->queries[i]);
        if (req->lex_texts) free(req->lex_texts[i]);
    }
    free(req->lex_texts);
    free(req->queries);
    free_strings(req->ids, req->n_ids);
    cJSON_free(req->filter_json);
    memset(req, 0, sizeof *req);
}

/* ---- encode ------------------------------------------------------------------------------------ */

static bool parse_encode_fields(const cJSON *root, const cp_limits *lim, cp_encode_request *out,
                                cp_http_error *e)
{
    static const char *const keys[] = {"texts", "kind", "format", NULL};
    if (!only_keys(root, keys, "body", e)) return false;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "texts");
    if (!cJSON_IsArray(t)) return BAD(e, "texts must be an array of strings");
    int n = cJSON_GetArraySize(t);
    if (n == 0) return BAD(e, "texts is empty");
    if (n > lim->max_queries) return LIMIT(e, "%d texts, the limit is %d", n, lim->max_queries);
    if (!(out->texts = calloc((size_t)n, sizeof *out->texts))) return OOM(e);
    for (const cJSON *it = t->child; it; it = it->next) {
        char where[32];
        snprintf(where, sizeof where, "texts[%zu]", out->n_texts);
        if (!get_text(it, where, lim, &out->texts[out->n_texts], e)) return false;
        out->n_texts++;
    }
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "kind");
    if (k && !(cJSON_IsString(k) && (!strcmp(k->valuestring, "query") ||
                                     !strcmp(k->valuestring, "document"))))
        return BAD(e, "kind must be \"query\" or \"document\"");
    out->kind = k && !strcmp(k->valuestring, "document") ? CP_TEXT_DOCUMENT : CP_TEXT_QUERY;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (f && !(cJSON_IsString(f) && (!strcmp(f->valuestring, "json") ||
                                     !strcmp(f->valuestring, "b64"))))
        return BAD(e, "format must be \"json\" or \"b64\"");
    out->b64 = f && !strcmp(f->valuestring, "b64");
    return true;
}

bool cp_parse_encode(const char *body, size_t len, const cp_limits *lim, cp_encode_request *out,
                     cp_http_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    json_budget b;
    if (!parse_root(body, len, lim, &b, &root, e)) return false;
    bool ok = parse_encode_fields(root, lim, out, e);
    end_root(root, &b);
    if (!ok) cp_encode_request_free(out);
    return ok;
}

void cp_encode_request_free(cp_encode_request *req)
{
    free_strings(req->texts, req->n_texts);
    memset(req, 0, sizeof *req);
}

/* ---- rerank ------------------------------------------------------------------------------------ */

static bool parse_rerank_fields(const cJSON *root, const cp_limits *lim, cp_rerank_request *out,
                                cp_http_error *e)
{
    static const char *const keys[] = {"query", "documents", NULL};
    if (!only_keys(root, keys, "body", e)) return false;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "query");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "documents");
    if (!q) return BAD(e, "query is missing");
    if (!cJSON_IsArray(d)) return BAD(e, "documents must be an array");
    int n = cJSON_GetArraySize(d);
    if (n == 0) return BAD(e, "documents is empty");
    if (n > lim->max_documents)
        return LIMIT(e, "%d documents, the limit is %d", n, lim->max_documents);
    vec_rules r = {0, lim->max_query_tokens, lim, NULL};
    if (!parse_vec(q, &r, "query", &out->query, e)) return false;
    if (!(out->docs = calloc((size_t)n, sizeof *out->docs))) return OOM(e);
    out->n_docs = (size_t)n;
    r.max_tokens = lim->max_doc_tokens;
    r.dim = out->query.dim; /* embedding inputs must agree with the first embedding seen */
    r.dim_of = "the first embeddings of the request"; /* no index here (issue 12, defect 14) */
    size_t i = 0;
    for (const cJSON *it = d->child; it; it = it->next, i++) {
        char where[48];
        snprintf(where, sizeof where, "documents[%zu]", i);
        if (!parse_vec(it, &r, where, &out->docs[i], e)) return false;
        if (!r.dim) r.dim = out->docs[i].dim;
    }
    return true;
}

bool cp_parse_rerank(const char *body, size_t len, const cp_limits *lim, cp_rerank_request *out,
                     cp_http_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    json_budget b;
    if (!parse_root(body, len, lim, &b, &root, e)) return false;
    bool ok = parse_rerank_fields(root, lim, out, e);
    end_root(root, &b);
    if (!ok) cp_rerank_request_free(out);
    return ok;
}

void cp_rerank_request_free(cp_rerank_request *req)
{
    vec_free(&req->query);
    for (size_t i = 0; i < req->n_docs; i++) vec_free(&req->docs[i]);
    free(req->docs);
    memset(req, 0, sizeof *req);
}

/* ---- document writes ------------------------------------------------------------------------- */

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first id that occurs twice, or NULL (sorted copy: O(n log n) for big batches). */
static const char *find_duplicate(char *const *ids, size_t n, bool *oom)
{
    *oom = false;
    if (n < 2) return NULL;
    char **sorted = malloc(n * sizeof *sorted);
    if (!sorted) {
        *oom = true;
        return NULL;
    }
    memcpy(sorted, ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str_ptr);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(sorted[i - 1], sorted[i])) dup = sorted[i];
    free(sorted);
    return dup;
}

static bool get_id(const cJSON *v, const char *where, char **out, cp_http_error *e)
{
    if (!v) return BAD(e, "%s.id is missing", where);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return BAD(e, "%s.id must be a non-empty string", where);
    const char *bad = cp_document_id_problem(v->valuestring); /* the CLI's rule too */
    if (bad) return BAD(e, "%s.id %s", where, bad);
    if (!(*out = strdup(v->valuestring))) return OOM(e);
    return true;
}

static bool parse_upsert_doc(const cJSON *v, const cp_limits *lim, int dim, const char *where,
                             cp_upsert_doc *out, cp_http_error *e)
{
    if (!cJSON_IsObject(v)) return BAD(e, "%s must be an object", where);
    static const char *const keys[] = {"id", "text", "embeddings", "embeddings_b64", "shape",
                                       "metadata", NULL};
    if (!only_keys(v, keys, where, e)) return false;
    if (!get_id(cJSON_GetObjectItemCaseSensitive(v, "id"), where, &out->id, e)) return false;
    vec_fields f = get_vec_fields(v);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(v, "metadata");
    if (f.emb && f.b64) return BAD(e, "%s: give embeddings or embeddings_b64, not both", where);
    if (!f.text && !f.emb && !f.b64)
        return BAD(e, "%s needs text, embeddings or embeddings_b64", where);
    if (f.shape && !f.b64) return BAD(e, "%s.shape goes with embeddings_b64 only", where);
    if (f.text && !get_text_field(f.text, where, lim, &out->text, e)) return false;
    vec_rules r = {dim, lim->max_doc_tokens, lim, NULL};
    if ((f.emb || f.b64) && !parse_embeddings(&f, &r, where, &out->emb, e)) return false;
    if (meta && !cJSON_IsNull(meta)) {
        if (!cJSON_IsObject(meta)) return BAD(e, "%s.metadata must be an object", where);
        if (!(out->metadata_json = cJSON_PrintUnformatted(meta))) return OOM(e);
    }
    return true;
}

static bool parse_upsert_fields(const cJSON *root, const cp_limits *lim, int dim,
                                cp_upsert_request *out, cp_http_error *e)
{
    static const char *const keys[] = {"documents", NULL};
    if (!only_keys(root, keys, "body", e)) return false;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "documents");
    if (!d) return BAD(e, "documents is missing");
    if (!cJSON_IsArray(d)) return BAD(e, "documents must be an array");
    int n = cJSON_GetArraySize(d);
    if (n == 0) return BAD(e, "documents is empty");
    if (n > lim->max_write_documents)
        return LIMIT(e, "%d documents in one write, the limit is %d", n, lim->max_write_documents);
    if (!(out->docs = calloc((size_t)n, sizeof *out->docs))) return OOM(e);
    out->n_docs = (size_t)n;
    size_t i = 0;
    for (const cJSON *it = d->child; it; it = it->next, i++) {
        char where[48];
        snprintf(where, sizeof where, "documents[%zu]", i);
        if (!parse_upsert_doc(it, lim, dim, where, &out->docs[i], e)) return false;
    }
    char **ids = malloc(out->n_docs * sizeof *ids);
    if (!ids) return OOM(e);
    for (i = 0; i < out->n_docs; i++) ids[i] = out->docs[i].id;
    bool oom;
    const char *dup = find_duplicate(ids, out->n_docs, &oom);
    bool ok = true;
    if (oom)
        ok = OOM(e);
    else if (dup)
        ok = cp_http_fail(e, 400, "DUPLICATE_ID", "id \"%.200s\" occurs more than once in documents",
                          dup);
    free(ids);
    return ok;
}

bool cp_parse_upsert(const char *body, size_t len, const cp_limits *lim, int dim,
                     cp_upsert_request *out, cp_http_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    json_budget b;
    if (!parse_root(body, len, lim, &b, &root, e)) return false;
    bool ok = parse_upsert_fields(root, lim, dim, out, e);
    end_root(root, &b);
    if (!ok) cp_upsert_request_free(out);
    return ok;
}

void cp_upsert_request_free(cp_upsert_request *req)
{
    for (size_t i = 0; i < req->n_docs; i++) {
        free(req->docs[i].id);
        free(req->docs[i].text);
        cJSON_free(req->docs[i].metadata_json);
        vec_free(&req->docs[i].emb);
    }
    free(req->docs);
    memset(req, 0, sizeof *req);
}

static bool parse_delete_fields(const cJSON *root, const cp_limits *lim, cp_delete_request *out,
                                cp_http_error *e)
{
    static const char *const keys[] = {"ids", "filter", NULL};
    if (!only_keys(root, keys, "body", e)) return false;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "filter");
    if ((ids != NULL) == (f != NULL)) return BAD(e, "give exactly one of ids and filter");
    if (f) {
        if (cJSON_IsObject(f) && !f->child)
            return cp_http_fail(e, 400, "INVALID_FILTER",
                                "filter is empty: an empty filter would delete every document");
        return get_filter(f, &out->filter_json, e);
    }
    /* The one difference from a search's ids, which may be empty (and then match nothing). */
    if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) == 0) return BAD(e, "ids is empty");
    return get_id_list(ids, lim, &out->ids, &out->n_ids, e);
}

bool cp_parse_delete(const char *body, size_t len, const cp_limits *lim, cp_delete_request *out,
                     cp_http_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    json_budget b;
    if (!parse_root(body, len, lim, &b, &root, e)) return false;
    bool ok = parse_delete_fields(root, lim, out, e);
    end_root(root, &b);
    if (!ok) cp_delete_request_free(out);
    return ok;
}

void cp_delete_request_free(cp_delete_request *req)
{
    free_strings(req->ids, req->n_ids);
    cJSON_free(req->filter_json);
    memset(req, 0, sizeof *req);
}

/* ---- explain ------------------------------------------------------------------------------------
 */

static bool parse_explain_fields(const cJSON *root, const cp_limits *lim, cp_explain_request *out,
                                 cp_http_error *e)
{
    for (const cJSON *f = root->child; f; f = f->next) {
        bool is_query = !strcmp(f->string, "query"), is_id = !strcmp(f->string, "id");
        if (!is_query && !is_id)
            return BAD(e, "unknown field \"%.64s\" (expected \"query\" and \"id\")", f->string);
        if (!cJSON_IsString(f) || !f->valuestring[0])
            return BAD(e, "\"%s\" must be a non-empty string", f->string);
        if (is_query && strlen(f->valuestring) > lim->max_text_bytes)
            return LIMIT(e, "the query has %zu bytes, the limit is %zu", strlen(f->valuestring),
                         lim->max_text_bytes);
    }
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "query");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!q || !d) return BAD(e, "\"%s\" is required", q ? "id" : "query");
    if (!(out->query = strdup(q->valuestring)) || !(out->id = strdup(d->valuestring)))
        return OOM(e);
    return true;
}

bool cp_parse_explain(const char *body, size_t len, const cp_limits *lim, cp_explain_request *out,
                      cp_http_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    json_budget b;
    if (!parse_root(body, len, lim, &b, &root, e)) return false;
    bool ok = parse_explain_fields(root, lim, out, e);
    end_root(root, &b);
    if (!ok) cp_explain_request_free(out);
    return ok;
}

void cp_explain_request_free(cp_explain_request *req)
{
    free(req->query);
    free(req->id);
    memset(req, 0, sizeof *req);
}

/* ---- create index ------------------------------------------------------------------------------
 */

static bool parse_create_fields(const cJSON *root, cp_create_index_request *out, cp_http_error *e)
{
    static const char *const allowed[] = {"name", "codec_from", NULL};
    if (!only_keys(root, allowed, "the body", e)) return false;
    const char *const names[2] = {"name", "codec_from"};
    char **dst[2] = {&out->name, &out->codec_from};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, names[i]);
        if (!v) return BAD(e, "\"%s\" is required", names[i]);
        if (!cJSON_IsString(v) || !v->valuestring[0])
            return BAD(e, "\"%s\" must be a non-empty string", names[i]);
        if (strlen(v->valuestring) > 128)
            return BAD(e, "\"%s\" is longer than 128 bytes", names[i]);
        if (!(*dst[i] = strdup(v->valuestring))) return OOM(e);
    }
    return true;
}

bool cp_parse_create_index(const char *body, size_t len, const cp_limits *lim,
                           cp_create_index_request *out, cp_http_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    json_budget b;
    if (!parse_root(body, len, lim, &b, &root, e)) return false;
    bool ok = parse_create_fields(root, out, e);
    end_root(root, &b);
    if (!ok) cp_create_index_request_free(out);
    return ok;
}

void cp_create_index_request_free(cp_create_index_request *req)
{
    free(req->name);
    free(req->codec_from);
    memset(req, 0, sizeof *req);
}
