/*
 * cp_doc_source over precomputed embeddings: EMB.npy [tokens, dim] float32/float16,
 * DOCLENS.npy [docs] int32/int64, optional IDS.txt (one external id per line).
 *
 * Everything that can be checked without reading the embeddings is checked at open
 * (shapes, dtypes, doclens non-negative and summing to the token count, one id per
 * document), so a build fails in seconds rather than after k-means. The embeddings stay
 * memory-mapped; each next() copies (and widens fp16) one document into a reusable buffer,
 * so memory is bounded by the longest document.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colplaid/index.h"
#include "colplaid/npy.h"

typedef struct npy_source {
    cp_npy emb, lens;
    int64_t n_docs, dim;
    char *ids_text; /* the whole ids file, lines NUL-terminated in place */
    char **ids;     /* n_docs pointers into ids_text, or NULL for "0", "1", ... */
    int64_t cursor, token_cursor;
    float *buf;
    size_t buf_cap;
    char id_buf[24];
} npy_source;

static int64_t src_count(void *ctx)
{
    return ((npy_source *)ctx)->n_docs;
}
static int src_dim(void *ctx)
{
    return (int)((npy_source *)ctx)->dim;
}
static const char *src_name(void *ctx)
{
    return ((npy_source *)ctx)->emb.path;
}

static cp_status src_rewind(void *ctx, cp_error *err)
{
    (void)err;
    npy_source *s = ctx;
    s->cursor = 0;
    s->token_cursor = 0;
    return CP_OK;
}

static cp_status src_next(void *ctx, bool need_embeddings, cp_document *doc, bool *has,
                          cp_error *err)
{
    npy_source *s = ctx;
    memset(doc, 0, sizeof *doc);
    if (s->cursor >= s->n_docs) {
        *has = false;
        return CP_OK;
    }
    int64_t len = cp_npy_int_at(&s->lens, s->cursor);
    if (s->ids) {
        doc->id = s->ids[s->cursor];
    } else {
        snprintf(s->id_buf, sizeof s->id_buf, "%lld", (long long)s->cursor);
        doc->id = s->id_buf;
    }
    doc->n_tokens = (int32_t)len;
    if (need_embeddings && len > 0) {
        size_t need = (size_t)len * (size_t)s->dim;
        if (need > s->buf_cap) {
            float *nb = realloc(s->buf, need * sizeof *nb);
            if (!nb)
                return cp_error_set(err, CP_ENOMEM, "out of memory for a %lld-token document",
                                    (long long)len);
            s->buf = nb;
            s->buf_cap = need;
        }
        cp_npy_floats(&s->emb, s->token_cursor * s->dim, (int64_t)need, s->buf);
        doc->embeddings = s->buf;
    }
    s->token_cursor += len;
    s->cursor++;
    *has = true;
    return CP_OK;
}

static void src_close(void *ctx)
{
    npy_source *s = ctx;
    if (!s) return;
    cp_npy_close(&s->emb);
    cp_npy_close(&s->lens);
    free(s->ids_text);
    free(s->ids);
    free(s->buf);
    free(s);
}

static cp_status check_shapes(npy_source *s, const char *emb_path, const char *lens_path,
                              cp_error *err)
{
    if (s->emb.dtype != CP_NPY_F32 && s->emb.dtype != CP_NPY_F16)
        return cp_error_set(err, CP_EFORMAT, "%s: embeddings must be float32 or float16, not %s",
                            emb_path, cp_npy_dtype_name(s->emb.dtype));
    if (s->emb.ndim != 2)
        return cp_error_set(err, CP_EFORMAT,
                            "%s: embeddings must be a 2-D array [tokens, dim], got %d dimensions",
                            emb_path, s->emb.ndim);
    if (s->lens.dtype != CP_NPY_I32 && s->lens.dtype != CP_NPY_I64)
        return cp_error_set(err, CP_EFORMAT, "%s: doclens must be int32 or int64, not %s",
                            lens_path, cp_npy_dtype_name(s->lens.dtype));
    if (s->lens.ndim != 1)
        return cp_error_set(err, CP_EFORMAT,
                            "%s: doclens must be a 1-D array [docs], got %d dimensions", lens_path,
                            s->lens.ndim);
    s->dim = s->emb.shape[1];
    s->n_docs = s->lens.shape[0];
    if (s->dim < 1 || s->dim > 65536)
        return cp_error_set(err, CP_EDIM, "%s: embedding dimension %lld is out of range", emb_path,
                            (long long)s->dim);
    int64_t sum = 0;
    for (int64_t i = 0; i < s->n_docs; i++) {
        int64_t v = cp_npy_int_at(&s->lens, i);
        if (v < 0 || v > INT32_MAX)
            return cp_error_set(err, CP_EINVAL, "%s: document %lld has an invalid length %lld",
                                lens_path, (long long)i, (long long)v);
        sum += v;
    }
    if (sum != s->emb.shape[0])
        return cp_error_set(err, CP_EINVAL,
                            "%s: doclens sum to %lld tokens but %s holds %lld token rows",
                            lens_path, (long long)sum, emb_path, (long long)s->emb.shape[0]);
    return CP_OK;
}

typedef struct id_line {
    const char *id;
    int64_t line;
} id_line;

static int cmp_id_line(const void *a, const void *b)
{
    const id_line *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Duplicate ids are reported here, with both line numbers, rather than by the builder,
 * which could only name the embeddings file. */
static cp_status check_unique_ids(npy_source *s, const char *path, cp_error *err)
{
    if (s->n_docs < 2) return CP_OK;
    id_line *v = malloc((size_t)s->n_docs * sizeof *v);
    if (!v) return cp_error_set(err, CP_ENOMEM, "out of memory checking %s", path);
    for (int64_t i = 0; i < s->n_docs; i++)
        v[i] = (id_line){s->ids[i], i + 1};
    qsort(v, (size_t)s->n_docs, sizeof *v, cmp_id_line);
    cp_status st = CP_OK;
    for (int64_t i = 1; i < s->n_docs && st == CP_OK; i++)
        if (!strcmp(v[i - 1].id, v[i].id))
            st = cp_error_set(err, CP_EINVAL,
                              "%s line %lld: duplicate document id \"%s\" (first "
                              "on line %lld)",
                              path, (long long)v[i].line, v[i].id, (long long)v[i - 1].line);
    free(v);
    return st;
}

static cp_status read_ids(npy_source *s, const char *path, cp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cp_error_set(err, errno == ENOENT ? CP_ENOTFOUND : CP_EIO, "cannot open %s: %s",
                            path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap + 1);
    cp_status st = text ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
    while (st == CP_OK) {
        if (len == cap) {
            char *nt = realloc(text, cap * 2 + 1);
            if (!nt) {
                st = cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
                break;
            }
            text = nt;
            cap *= 2;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) st = cp_error_set(err, CP_EIO, "cannot read %s", path);
            break;
        }
    }
    fclose(f);
    if (st != CP_OK) {
        free(text);
        return st;
    }
    text[len] = '\0';
    s->ids_text = text;
    s->ids = calloc(s->n_docs > 0 ? (size_t)s->n_docs : 1, sizeof *s->ids);
    if (!s->ids) return cp_error_set(err, CP_ENOMEM, "out of memory");
    int64_t n = 0, line = 1;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *next = nl ? nl + 1 : end;
        char *stop = nl ? nl : end;
        if (stop > p && stop[-1] == '\r') stop--;
        if (memchr(p, '\0', (size_t)(stop - p)))
            return cp_error_set(err, CP_EINVAL, "%s line %lld: contains a NUL byte", path,
                                (long long)line);
        *stop = '\0';
        if (!*p)
            return cp_error_set(err, CP_EINVAL, "%s line %lld: empty id", path, (long long)line);
        if (n == s->n_docs)
            return cp_error_set(err, CP_EINVAL,
                                "%s has more ids than the %lld documents in the "
                                "doclens file",
                                path, (long long)s->n_docs);
        s->ids[n++] = p;
        line++;
        p = next;
    }
    if (n != s->n_docs)
        return cp_error_set(err, CP_EINVAL, "%s has %lld ids but there are %lld documents", path,
                            (long long)n, (long long)s->n_docs);
    return check_unique_ids(s, path, err);
}

cp_status cp_doc_source_npy_open(const char *emb_path, const char *doclens_path,
                                 const char *ids_path, cp_doc_source *out, cp_error *err)
{
    memset(out, 0, sizeof *out);
    npy_source *s = calloc(1, sizeof *s);
    if (!s) return cp_error_set(err, CP_ENOMEM, "out of memory");
    cp_status st = cp_npy_open(emb_path, &s->emb, err);
    if (st == CP_OK) st = cp_npy_open(doclens_path, &s->lens, err);
    if (st == CP_OK) st = check_shapes(s, emb_path, doclens_path, err);
    if (st == CP_OK && ids_path) st = read_ids(s, ids_path, err);
    if (st != CP_OK) {
        src_close(s);
        return st;
    }
    out->ctx = s;
    out->count = src_count;
    out->dim = src_dim;
    out->rewind = src_rewind;
    out->next = src_next;
    out->name = src_name;
    out->close = src_close;
    return CP_OK;
}
