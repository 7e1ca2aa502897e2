/* colplaid_client: libcurl + cJSON implementation (see colplaid_client.h). */
#include "colplaid_client.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#define CPC_RETRIES 3

struct cpc_client {
    CURL *curl;
    char *base;     /* without trailing slash */
    char *auth;     /* "Authorization: Bearer ..." or NULL */
    long timeout_ms;
};

typedef struct buf {
    char *data;
    size_t len, cap;
    bool oom;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static int fail(cpc_error *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(cpc_error *err, int status, const char *code, const char *fmt, ...)
{
    if (!err) return -1;
    err->status = status;
    snprintf(err->code, sizeof err->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    buf_add(b, ptr, size * n);
    return b->oom ? 0 : size * n;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
    long *retry_after = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1) {
        bool match = true;
        for (size_t i = 0; i < sizeof name - 1 && match; i++) {
            char ch = ptr[i];
            if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
            match = ch == name[i];
        }
        if (match) *retry_after = strtol(ptr + sizeof name - 1, NULL, 10);
    }
    return len;
}

cpc_client *cpc_client_new(const char *base_url, const char *api_key)
{
    static bool global_done;
    if (!global_done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global_done = true;
    }
    cpc_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->base = strdup(base_url ? base_url : "http://127.0.0.1:8080");
    c->curl = curl_easy_init();
    c->timeout_ms = 60000;
    if (api_key) {
        size_t n = strlen(api_key) + 32;
        c->auth = malloc(n);
        if (c->auth) snprintf(c->auth, n, "Authorization: Bearer %s", api_key);
    }
    if (!c->base || !c->curl || (api_key && !c->auth)) {
        cpc_client_free(c);
        return NULL;
    }
    size_t n = strlen(c->base);
    while (n && c->base[n - 1] == '/') c->base[--n] = '\0';
    return c;
}

void cpc_client_free(cpc_client *c)
{
    if (!c) return;
    if (c->curl) curl_easy_cleanup(c->curl);
    free(c->base);
    free(c->auth);
    free(c);
}

void cpc_client_set_timeout_ms(cpc_client *c, long ms)
{
    c->timeout_ms = ms;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Fill err from an error answer {"error": {"code", "message"}}. */
static int http_error(long status, const char *body, cpc_error *err)
{
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    char fallback[32];
    snprintf(fallback, sizeof fallback, "HTTP_%ld", status);
    fail(err, (int)status, cJSON_IsString(code) ? code->valuestring : fallback, "%.500s",
         cJSON_IsString(msg) ? msg->valuestring : (body ? body : ""));
    cJSON_Delete(root);
    return -1;
}

/* One request; on success *out is the parsed JSON answer. */
static int request(cpc_client *c, const char *method, const char *path, const char *body,
                   cJSON **out, cpc_error *err)
{
    *out = NULL;
    buf url = {0};
    buf_str(&url, c->base);
    buf_str(&url, path);
    if (url.oom) return fail(err, 0, "OUT_OF_MEMORY", "out of memory");
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (body) headers = curl_slist_append(headers, "Content-Type: application/json");
    if (c->auth) headers = curl_slist_append(headers, c->auth);
    long delay_ms = 200;
    int rc = -1;
    for (int attempt = 0; attempt <= CPC_RETRIES; attempt++) {
        buf resp = {0};
        long retry_after = -1;
        CURL *h = c->curl;
        curl_easy_reset(h); /* keeps the connection cache: the connection is reused */
        curl_easy_setopt(h, CURLOPT_URL, url.data);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &retry_after);
        if (body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        }
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK) {
            fail(err, 0, "TRANSPORT", "%s %s: %s", method, url.data, curl_easy_strerror(cc));
        } else if (resp.oom) {
            fail(err, (int)status, "OUT_OF_MEMORY", "out of memory reading the answer");
        } else if ((status == 503 || status == 429) && attempt < CPC_RETRIES) {
            free(resp.data);
            long wait = retry_after > 0 ? retry_after * 1000 : delay_ms;
            sleep_ms(wait > 30000 ? 30000 : wait);
            delay_ms *= 2;
            continue;
        } else if (status >= 400) {
            http_error(status, resp.data, err);
        } else {
            *out = cJSON_Parse(resp.data ? resp.data : "");
            if (*out) rc = 0;
            else fail(err, (int)status, "BAD_RESPONSE", "the answer is not JSON");
        }
        free(resp.data);
        break;
    }
    curl_slist_free_all(headers);
    free(url.data);
    return rc;
}

int cpc_health(cpc_client *c, char **json, cpc_error *err)
{
    cJSON *root;
    *json = NULL;
    if (request(c, "GET", "/health", NULL, &root, err)) return -1;
    *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return *json ? 0 : fail(err, 200, "OUT_OF_MEMORY", "out of memory");
}

/* Percent-encode one path segment. */
static char *escape(cpc_client *c, const char *s)
{
    char *e = curl_easy_escape(c->curl, s, 0);
    if (!e) return NULL;
    char *copy = strdup(e);
    curl_free(e);
    return copy;
}

static char *dup_or_null(const cJSON *v)
{
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static int parse_results(cJSON *root, cpc_results *out, cpc_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *res = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "results"), 0);
    cJSON *hits = cJSON_GetObjectItemCaseSensitive(res, "hits");
    if (!cJSON_IsArray(hits)) return fail(err, 200, "BAD_RESPONSE", "the answer has no results[0].hits");
    int n = cJSON_GetArraySize(hits);
    out->hits = calloc(n ? (size_t)n : 1, sizeof *out->hits);
    if (!out->hits) return fail(err, 200, "OUT_OF_MEMORY", "out of memory");
    cJSON *h;
    cJSON_ArrayForEach(h, hits) {
        cpc_hit *o = &out->hits[out->n_hits++];
        o->id = dup_or_null(cJSON_GetObjectItemCaseSensitive(h, "id"));
        o->score = (float)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "score"));
        o->text = dup_or_null(cJSON_GetObjectItemCaseSensitive(h, "text"));
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(h, "passage");
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(p, "start");
        const cJSON *pe = cJSON_GetObjectItemCaseSensitive(p, "end");
        bool has_passage = cJSON_IsNumber(ps) && cJSON_IsNumber(pe);
        o->passage_start = has_passage ? (long)ps->valuedouble : -1;
        o->passage_end = has_passage ? (long)pe->valuedouble : -1;
        if (!o->id) {
            cpc_results_free(out);
            return fail(err, 200, "BAD_RESPONSE", "a hit without an id");
        }
    }
    cJSON *t = cJSON_GetObjectItemCaseSensitive(res, "timing_ms");
    out->encode_ms = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "encode"));
    out->search_ms = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "search"));
    return 0;
}

static int search(cpc_client *c, const char *index, cJSON *query, int k, bool include_text,
                  const char *mode, cpc_results *out, cpc_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *body = cJSON_CreateObject();
    cJSON *qs = cJSON_AddArrayToObject(body, "queries");
    cJSON_AddItemToArray(qs, query);
    cJSON_AddNumberToObject(body, "k", k);
    if (mode) cJSON_AddStringToObject(body, "mode", mode);
    if (include_text) {
        cJSON *inc = cJSON_AddArrayToObject(body, "include");
        cJSON_AddItemToArray(inc, cJSON_CreateString("text"));
    }
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    char *name = escape(c, index);
    buf path = {0};
    buf_str(&path, "/v1/indexes/");
    buf_str(&path, name ? name : "");
    buf_str(&path, "/search");
    int rc;
    cJSON *root = NULL;
    if (!text || !name || path.oom) rc = fail(err, 0, "OUT_OF_MEMORY", "out of memory");
    else rc = request(c, "POST", path.data, text, &root, err);
    if (!rc) rc = parse_results(root, out, err);
    cJSON_Delete(root);
    free(text);
    free(name);
    free(path.data);
    return rc;
}

int cpc_search_text(cpc_client *c, const char *index, const char *query, int k, bool include_text,
                    cpc_results *out, cpc_error *err)
{
    return cpc_search_text_mode(c, index, query, k, include_text, NULL, out, err);
}

int cpc_search_text_mode(cpc_client *c, const char *index, const char *query, int k,
                         bool include_text, const char *mode, cpc_results *out, cpc_error *err)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "text", query);
    return search(c, index, q, k, include_text, mode, out, err);
}

static char *base64(const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* The little-endian float32 bytes of n floats as base64; NULL when out of memory. */
static char *floats_base64(const float *v, size_t n)
{
    unsigned char *bytes = malloc(n ? n * 4 : 1);
    if (!bytes) return NULL;
    for (size_t i = 0; i < n; i++) { /* little-endian float32 whatever the host order */
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int b = 0; b < 4; b++) bytes[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    char *b64 = base64(bytes, n * 4);
    free(bytes);
    return b64;
}

int cpc_search_embeddings(cpc_client *c, const char *index, const float *embeddings, int n_tokens,
                          int dim, int k, bool include_text, cpc_results *out, cpc_error *err)
{
    memset(out, 0, sizeof *out);
    if (n_tokens < 1 || dim < 1)
        return fail(err, 0, "INVALID_ARGUMENT", "n_tokens and dim must be >= 1");
    char *b64 = floats_base64(embeddings, (size_t)n_tokens * (size_t)dim);
    if (!b64) return fail(err, 0, "OUT_OF_MEMORY", "out of memory");
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "embeddings_b64", b64);
    free(b64);
    int shape[2] = {n_tokens, dim};
    cJSON_AddItemToObject(q, "shape", cJSON_CreateIntArray(shape, 2));
    return search(c, index, q, k, include_text, NULL, out, err);
}

void cpc_results_free(cpc_results *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_hits; i++) {
        free(r->hits[i].id);
        free(r->hits[i].text);
    }
    free(r->hits);
    memset(r, 0, sizeof *r);
}

int cpc_get_document(cpc_client *c, const char *index, const char *id, cpc_document *out,
                     cpc_error *err)
{
    memset(out, 0, sizeof *out);
    char *name = escape(c, index), *eid = escape(c, id);
    buf path = {0};
    buf_str(&path, "/v1/indexes/");
    buf_str(&path, name ? name : "");
    buf_str(&path, "/documents/");
    buf_str(&path, eid ? eid : "");
    cJSON *root = NULL;
    int rc = (!name || !eid || path.oom) ? fail(err, 0, "OUT_OF_MEMORY", "out of memory")
                                         : request(c, "GET", path.data, NULL, &root, err);
    if (!rc) {
        out->id = dup_or_null(cJSON_GetObjectItemCaseSensitive(root, "id"));
        out->text = dup_or_null(cJSON_GetObjectItemCaseSensitive(root, "text"));
        cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "metadata");
        out->metadata_json = m && !cJSON_IsNull(m) ? cJSON_PrintUnformatted(m) : NULL;
        out->n_tokens = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "n_tokens"));
        if (!out->id) {
            cpc_document_free(out);
            rc = fail(err, 200, "BAD_RESPONSE", "the answer has no id");
        }
    }
    cJSON_Delete(root);
    free(name);
    free(eid);
    free(path.data);
    return rc;
}

void cpc_document_free(cpc_document *d)
{
    if (!d) return;
    free(d->id);
    free(d->text);
    free(d->metadata_json);
    memset(d, 0, sizeof *d);
}

/* ---- encode, rerank and writes ------------------------------------------------------------ */

/* "/v1/indexes/{index}" + suffix, the name percent-encoded; NULL when out of memory. */
static char *index_path(cpc_client *c, const char *index, const char *suffix)
{
    char *name = escape(c, index);
    buf path = {0};
    buf_str(&path, "/v1/indexes/");
    buf_str(&path, name ? name : "");
    buf_str(&path, suffix);
    if (!name || path.oom) {
        free(path.data);
        path.data = NULL;
    }
    free(name);
    return path.data;
}

/* POST/DELETE body (consumed) to path; *root gets the answer. */
static int send_json(cpc_client *c, const char *method, const char *path, cJSON *body, cJSON **root,
                     cpc_error *err)
{
    *root = NULL;
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    int rc = (!body || !text || !path) ? fail(err, 0, "OUT_OF_MEMORY", "out of memory")
                                       : request(c, method, path, text, root, err);
    free(text);
    return rc;
}

/* Adds an input's text or embeddings_b64 + shape to obj; -1 (err filled) on bad input. */
static int add_input(cJSON *obj, const cpc_input *in, const char *what, cpc_error *err)
{
    if (in->text) cJSON_AddStringToObject(obj, "text", in->text);
    if (in->embeddings) {
        if (in->n_tokens < 1 || in->dim < 1)
            return fail(err, 0, "INVALID_ARGUMENT", "%s: n_tokens and dim must be >= 1", what);
        char *b64 = floats_base64(in->embeddings, (size_t)in->n_tokens * (size_t)in->dim);
        if (!b64) return fail(err, 0, "OUT_OF_MEMORY", "out of memory");
        cJSON_AddStringToObject(obj, "embeddings_b64", b64);
        free(b64);
        int shape[2] = {in->n_tokens, in->dim};
        cJSON_AddItemToObject(obj, "shape", cJSON_CreateIntArray(shape, 2));
    }
    if (!in->text && !in->embeddings)
        return fail(err, 0, "INVALID_ARGUMENT", "%s has neither text nor embeddings", what);
    return 0;
}

static int base64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* Decodes padded base64 into exactly want bytes; -1 if it is not that. */
static int unbase64(const char *s, unsigned char *out, size_t want)
{
    size_t len = strlen(s), o = 0;
    if (len % 4) return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char ch = s[i + (size_t)j];
            if (ch == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else if ((v[j] = base64_value(ch)) < 0 || pad) {
                return -1;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
        for (int j = 0; j < 3 - pad; j++) {
            if (o == want) return -1;
            out[o++] = b[j];
        }
    }
    return o == want ? 0 : -1;
}

void cpc_embeddings_free(cpc_embeddings *e, size_t n)
{
    if (!e) return;
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
    free(e);
}

/* One result of /v1/encode ({"shape": [t, d], "embeddings_b64"}) into *e. */
static int parse_embeddings(const cJSON *r, cpc_embeddings *e, cpc_error *err)
{
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(r, "shape");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(r, "embeddings_b64");
    double t = cJSON_GetNumberValue(cJSON_GetArrayItem(shape, 0));
    double d = cJSON_GetNumberValue(cJSON_GetArrayItem(shape, 1));
    if (cJSON_GetArraySize(shape) != 2 || !cJSON_IsString(b64) || !(t >= 0 && t <= 1e7) ||
        !(d >= 1 && d <= 1e5))
        return fail(err, 200, "BAD_RESPONSE", "an encode result without shape and embeddings_b64");
    e->n_tokens = (int)t;
    e->dim = (int)d;
    size_t n = (size_t)e->n_tokens * (size_t)e->dim;
    unsigned char *bytes = malloc(n ? n * 4 : 1);
    e->data = malloc(n ? n * sizeof(float) : 1);
    int rc = 0;
    if (!bytes || !e->data)
        rc = fail(err, 200, "OUT_OF_MEMORY", "out of memory");
    else if (unbase64(b64->valuestring, bytes, n * 4))
        rc = fail(err, 200, "BAD_RESPONSE", "embeddings_b64 does not decode to shape [%d, %d]",
                  e->n_tokens, e->dim);
    for (size_t i = 0; !rc && i < n; i++) {
        uint32_t u = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
                     (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
        memcpy(&e->data[i], &u, 4);
    }
    free(bytes);
    return rc;
}

int cpc_encode(cpc_client *c, const char *const *texts, size_t n, const char *kind,
               cpc_embeddings **out, cpc_error *err)
{
    *out = NULL;
    if (n < 1) return fail(err, 0, "INVALID_ARGUMENT", "encode needs at least one text");
    cJSON *body = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(body, "texts");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(texts[i]));
    cJSON_AddStringToObject(body, "kind", kind ? kind : "query");
    cJSON_AddStringToObject(body, "format", "b64");
    cJSON *root;
    if (send_json(c, "POST", "/v1/encode", body, &root, err)) return -1;
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
    int rc = 0;
    cpc_embeddings *e = calloc(n, sizeof *e);
    if (!e)
        rc = fail(err, 200, "OUT_OF_MEMORY", "out of memory");
    else if (cJSON_GetArraySize(results) != (int)n)
        rc = fail(err, 200, "BAD_RESPONSE", "%d encode results for %zu texts",
                  cJSON_GetArraySize(results), n);
    for (size_t i = 0; !rc && i < n; i++)
        rc = parse_embeddings(cJSON_GetArrayItem(results, (int)i), &e[i], err);
    cJSON_Delete(root);
    if (rc)
        cpc_embeddings_free(e, n);
    else
        *out = e;
    return rc;
}

int cpc_rerank(cpc_client *c, const cpc_input *query, const cpc_input *documents, size_t n,
               cpc_ranked **out, cpc_error *err)
{
    *out = NULL;
    if (n < 1) return fail(err, 0, "INVALID_ARGUMENT", "rerank needs at least one document");
    cJSON *body = cJSON_CreateObject();
    cJSON *q = cJSON_AddObjectToObject(body, "query");
    cJSON *docs = cJSON_AddArrayToObject(body, "documents");
    int rc = add_input(q, query, "the query", err);
    for (size_t i = 0; !rc && i < n; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToArray(docs, d);
        char what[48];
        snprintf(what, sizeof what, "document %zu", i);
        rc = add_input(d, &documents[i], what, err);
    }
    if (rc) {
        cJSON_Delete(body);
        return rc;
    }
    cJSON *root;
    if (send_json(c, "POST", "/v1/rerank", body, &root, err)) return -1;
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
    cpc_ranked *r = calloc(n, sizeof *r);
    if (!r)
        rc = fail(err, 200, "OUT_OF_MEMORY", "out of memory");
    else if (cJSON_GetArraySize(results) != (int)n)
        rc = fail(err, 200, "BAD_RESPONSE", "%d rerank results for %zu documents",
                  cJSON_GetArraySize(results), n);
    for (size_t i = 0; !rc && i < n; i++) {
        const cJSON *item = cJSON_GetArrayItem(results, (int)i);
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(item, "index");
        const cJSON *score = cJSON_GetObjectItemCaseSensitive(item, "score");
        if (!cJSON_IsNumber(index) || !cJSON_IsNumber(score) || index->valuedouble < 0 ||
            index->valuedouble >= (double)n)
            rc =
                fail(err, 200, "BAD_RESPONSE", "rerank result %zu has no valid index and score", i);
        else
            r[i] = (cpc_ranked){(size_t)index->valuedouble, (float)score->valuedouble};
    }
    cJSON_Delete(root);
    if (rc)
        free(r);
    else
        *out = r;
    return rc;
}

/* A count of an answer: 0 when absent (a write answer has either upserted or deleted). */
static long count(const cJSON *root, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15 ? (long)v->valuedouble
                                                                             : 0;
}

static void parse_write(const cJSON *root, cpc_write_result *out)
{
    out->upserted = count(root, "upserted");
    out->added = count(root, "added");
    out->replaced = count(root, "replaced");
    out->tokens = count(root, "tokens");
    out->deleted = count(root, "deleted");
    out->rebuild_advised = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "rebuild_advised"));
}

/* A write (upsert or delete) with body (consumed) to the index's documents route. */
static int write_request(cpc_client *c, const char *method, const char *index, cJSON *body,
                         cpc_write_result *out, cpc_error *err)
{
    char *path = index_path(c, index, "/documents");
    cJSON *root;
    int rc = send_json(c, method, path, body, &root, err);
    free(path);
    if (!rc) parse_write(root, out);
    cJSON_Delete(root);
    return rc;
}

int cpc_upsert(cpc_client *c, const char *index, const cpc_write_document *docs, size_t n,
               cpc_write_result *out, cpc_error *err)
{
    memset(out, 0, sizeof *out);
    if (n < 1) return fail(err, 0, "INVALID_ARGUMENT", "upsert needs at least one document");
    cJSON *body = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(body, "documents");
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, d);
        if (!docs[i].id) {
            rc = fail(err, 0, "INVALID_ARGUMENT", "document %zu has no id", i);
            break;
        }
        cJSON_AddStringToObject(d, "id", docs[i].id);
        char what[48];
        snprintf(what, sizeof what, "document %zu", i);
        rc = add_input(d, &docs[i].content, what, err);
        if (!rc && docs[i].metadata_json) {
            cJSON *m = cJSON_Parse(docs[i].metadata_json);
            if (!cJSON_IsObject(m)) {
                cJSON_Delete(m);
                rc = fail(err, 0, "INVALID_ARGUMENT", "document %zu: metadata is not a JSON object",
                          i);
            } else {
                cJSON_AddItemToObject(d, "metadata", m);
            }
        }
    }
    if (rc) {
        cJSON_Delete(body);
        return rc;
    }
    return write_request(c, "POST", index, body, out, err);
}

int cpc_delete_ids(cpc_client *c, const char *index, const char *const *ids, size_t n,
                   cpc_write_result *out, cpc_error *err)
{
    memset(out, 0, sizeof *out);
    if (n < 1) return fail(err, 0, "INVALID_ARGUMENT", "delete needs at least one id");
    cJSON *body = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(body, "ids");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(ids[i]));
    return write_request(c, "DELETE", index, body, out, err);
}

int cpc_delete_filter(cpc_client *c, const char *index, const char *filter_json,
                      cpc_write_result *out, cpc_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *filter = filter_json ? cJSON_Parse(filter_json) : NULL;
    if (!cJSON_IsObject(filter)) {
        cJSON_Delete(filter);
        return fail(err, 0, "INVALID_ARGUMENT", "the filter is not a JSON object");
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "filter", filter);
    return write_request(c, "DELETE", index, body, out, err);
}
