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
                  cpc_results *out, cpc_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *body = cJSON_CreateObject();
    cJSON *qs = cJSON_AddArrayToObject(body, "queries");
    cJSON_AddItemToArray(qs, query);
    cJSON_AddNumberToObject(body, "k", k);
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
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "text", query);
    return search(c, index, q, k, include_text, out, err);
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

int cpc_search_embeddings(cpc_client *c, const char *index, const float *embeddings, int n_tokens,
                          int dim, int k, bool include_text, cpc_results *out, cpc_error *err)
{
    memset(out, 0, sizeof *out);
    if (n_tokens < 1 || dim < 1) return fail(err, 0, "INVALID_ARGUMENT", "n_tokens and dim must be >= 1");
    size_t n = (size_t)n_tokens * (size_t)dim;
    unsigned char *bytes = malloc(n * 4);
    if (!bytes) return fail(err, 0, "OUT_OF_MEMORY", "out of memory");
    for (size_t i = 0; i < n; i++) { /* little-endian float32 whatever the host order */
        uint32_t u;
        memcpy(&u, &embeddings[i], 4);
        for (int b = 0; b < 4; b++) bytes[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    char *b64 = base64(bytes, n * 4);
    free(bytes);
    if (!b64) return fail(err, 0, "OUT_OF_MEMORY", "out of memory");
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "embeddings_b64", b64);
    free(b64);
    int shape[2] = {n_tokens, dim};
    cJSON_AddItemToObject(q, "shape", cJSON_CreateIntArray(shape, 2));
    return search(c, index, q, k, include_text, out, err);
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
