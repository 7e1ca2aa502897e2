/*
 * cp_index_import_colbert: turn a Stanford ColBERT / RAGatouille PLAID index folder
 * (metadata.json, centroids.pt, buckets.pt, {i}.codes.pt, {i}.residuals.pt, doclens.{i}.json,
 * {i}.metadata.json, optional collection.json and pid_docid_map.json) into a colplaid index,
 * without Python and without retraining: the file's centroids and buckets are kept as they
 * are, so decompressed vectors are exactly the reference's (PLAID.md 1.8).
 *
 * Invariants
 * - Residual bytes are converted once from the reference bit layout to natural order
 *   (cp_codec_reference_to_natural); nothing else about the token data changes.
 * - Passages keep their order: passage p gets internal id p.
 * - External ids: the pid_docid_map.json values when every passage has one and they are
 *   unique; otherwise (RAGatouille maps many passages of a split document to one id) the
 *   pid as a decimal string. Metadata of every passage: {"colbert_pid": p} plus
 *   "document_id" when the map has one.
 * - Like the builder, the import writes to a temporary file and renames it into place only
 *   when complete; a failed import leaves nothing behind.
 * - Every size read from the folder is checked against the others (chunk metadata vs
 *   doclens vs tensor shapes) before any array is indexed.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_progress.h"
#include "calibrate.h"
#include "colplaid/pt.h"
#include "codec.h"
#include "storage.h"

#define IMPORT_SEGMENT_DOCS 4096
#define JSON_MAX_BYTES (1u << 30)

typedef struct importer {
    const char *dir;
    const char *path;
    cp_codec codec;
    int num_chunks;
    int64_t num_embeddings;
    cJSON *config;        /* metadata.json "config" (owned by meta_root) */
    cJSON *meta_root;
    cJSON *collection;    /* array of strings or NULL */
    char **ext_ids;       /* per passage, once known */
    char **doc_ids;       /* pid_docid_map values or NULL */
    int64_t n_passages;
    cp_store *store;
    cp_progress *progress;
} importer;

/* ------------------------------------------------------------------------------------
 * Files of the folder
 * --------------------------------------------------------------------------------- */

static void join(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static cp_status read_json(const char *path, bool optional, cJSON **out, cp_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (optional && errno == ENOENT) return CP_OK;
        return cp_error_set(err, errno == ENOENT ? CP_ENOTFOUND : CP_EIO, "cannot read %s: %s",
                            path, strerror(errno));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    cp_status st = CP_OK;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 131072;
            char *nb = cap <= JSON_MAX_BYTES ? realloc(buf, cap) : NULL;
            if (!nb) {
                st = cp_error_set(err, CP_EFORMAT, "%s is too large to read as JSON", path);
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, 65536, f);
        len += got;
        if (got < 65536) break;
    }
    if (st == CP_OK && ferror(f)) st = cp_error_set(err, CP_EIO, "error reading %s", path);
    fclose(f);
    if (st == CP_OK) {
        buf[len] = 0;
        *out = cJSON_ParseWithLength(buf, len);
        if (!*out) st = cp_error_set(err, CP_EFORMAT, "%s is not valid JSON", path);
    }
    free(buf);
    return st;
}

static cp_status json_int(const cJSON *obj, const char *key, int64_t min, int64_t max,
                          const char *file, int64_t *out, cp_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)min || v->valuedouble > (double)max)
        return cp_error_set(err, CP_EFORMAT, "%s: field \"%s\" is missing or not an integer in "
                            "[%lld, %lld]", file, key, (long long)min, (long long)max);
    *out = (int64_t)v->valuedouble;
    return CP_OK;
}

static cp_status load_metadata(importer *im, cp_error *err)
{
    char path[4096];
    join(path, sizeof path, im->dir, "metadata.json");
    cp_status st = read_json(path, false, &im->meta_root, err);
    if (st != CP_OK) {
        if (st == CP_ENOTFOUND)
            cp_error_set(err, CP_ENOTFOUND, "%s has no metadata.json; is it a ColBERT index "
                         "folder?", im->dir);
        return st;
    }
    int64_t chunks = 0, dim = 0, nbits = 0, emb = 0;
    im->config = cJSON_GetObjectItemCaseSensitive(im->meta_root, "config");
    if (!cJSON_IsObject(im->config))
        return cp_error_set(err, CP_EFORMAT, "%s: no \"config\" object", path);
    if ((st = json_int(im->meta_root, "num_chunks", 1, 1000000, path, &chunks, err)) != CP_OK ||
        (st = json_int(im->meta_root, "num_embeddings", 0, INT64_MAX / 2, path, &emb, err)) != CP_OK ||
        (st = json_int(im->config, "dim", 8, 4096, path, &dim, err)) != CP_OK ||
        (st = json_int(im->config, "nbits", 1, 8, path, &nbits, err)) != CP_OK)
        return st;
    if (nbits != 1 && nbits != 2 && nbits != 4 && nbits != 8)
        return cp_error_set(err, CP_EUNSUPPORTED, "%s: nbits %lld is not supported (1, 2, 4, 8)",
                            path, (long long)nbits);
    if (dim % 8)
        return cp_error_set(err, CP_EUNSUPPORTED, "%s: dim %lld is not a multiple of 8", path,
                            (long long)dim);
    im->num_chunks = (int)chunks;
    im->num_embeddings = emb;
    im->codec.dim = (int)dim;
    im->codec.nbits = (int)nbits;
    return CP_OK;
}

static cp_status shape_error(const char *file, const cp_pt_tensor *t, const char *want,
                             cp_error *err)
{
    return cp_error_set(err, CP_EFORMAT, "%s: expected %s, found a %s tensor of %d dims", file,
                        want, cp_pt_dtype_name(t->dtype), t->ndim);
}

static cp_status load_codec(importer *im, cp_error *err)
{
    char path[4096];
    cp_pt_file f;
    join(path, sizeof path, im->dir, "centroids.pt");
    cp_status st = cp_pt_open(path, &f, err);
    if (st != CP_OK) return st;
    const cp_pt_tensor *c = &f.tensors[0];
    bool is_float = c->dtype == CP_PT_F16 || c->dtype == CP_PT_F32;
    if (f.n_tensors != 1 || c->ndim != 2 || !is_float || c->shape[1] != im->codec.dim ||
        c->shape[0] < 1 || c->shape[0] > INT32_MAX) {
        st = shape_error(path, c, "float centroids [K, dim]", err);
        cp_pt_close(&f);
        return st;
    }
    im->codec.n_centroids = c->shape[0];
    im->codec.centroids = malloc((size_t)c->numel * sizeof(float));
    if (!im->codec.centroids) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    for (int64_t i = 0; st == CP_OK && i < c->numel; i++)
        im->codec.centroids[i] = cp_pt_float_at(c, i);
    cp_pt_close(&f);
    if (st != CP_OK) return st;

    join(path, sizeof path, im->dir, "buckets.pt");
    if ((st = cp_pt_open(path, &f, err)) != CP_OK) return st;
    int nb = 1 << im->codec.nbits;
    const cp_pt_tensor *cut = &f.tensors[0], *w = &f.tensors[1];
    if (f.n_tensors != 2 || cut->numel != nb - 1 || w->numel != nb || cut->dtype != CP_PT_F32 ||
        w->dtype != CP_PT_F32) {
        st = cp_error_set(err, CP_EFORMAT, "%s: expected (cutoffs float32[%d], weights "
                          "float32[%d])", path, nb - 1, nb);
        cp_pt_close(&f);
        return st;
    }
    for (int i = 0; i < nb - 1; i++) im->codec.bucket_cutoffs[i] = cp_pt_float_at(cut, i);
    for (int i = 0; i < nb; i++) im->codec.bucket_weights[i] = cp_pt_float_at(w, i);
    cp_pt_close(&f);

    /* avg_residual is diagnostics only (PLAID.md 1.6): optional. */
    join(path, sizeof path, im->dir, "avg_residual.pt");
    if (cp_pt_open(path, &f, NULL) == CP_OK) {
        if (f.n_tensors == 1 && f.tensors[0].numel >= 1)
            im->codec.avg_residual = cp_pt_float_at(&f.tensors[0], 0);
        cp_pt_close(&f);
    }
    return CP_OK;
}

/* Passages: collection.json (texts) and pid_docid_map.json (document ids), both optional. */
static cp_status load_passages(importer *im, cp_error *err)
{
    char path[4096];
    join(path, sizeof path, im->dir, "collection.json");
    cp_status st = read_json(path, true, &im->collection, err);
    if (st != CP_OK) return st;
    if (im->collection && !cJSON_IsArray(im->collection))
        return cp_error_set(err, CP_EFORMAT, "%s: expected a JSON array of passage texts", path);
    if (im->collection && cJSON_GetArraySize(im->collection) != im->n_passages)
        return cp_error_set(err, CP_EFORMAT, "%s has %d passages but the index has %lld", path,
                            cJSON_GetArraySize(im->collection), (long long)im->n_passages);
    size_t n = (size_t)(im->n_passages ? im->n_passages : 1);
    im->ext_ids = calloc(n, sizeof *im->ext_ids);
    im->doc_ids = calloc(n, sizeof *im->doc_ids);
    if (!im->ext_ids || !im->doc_ids) return cp_error_set(err, CP_ENOMEM, "out of memory");
    cJSON *map = NULL;
    join(path, sizeof path, im->dir, "pid_docid_map.json");
    if ((st = read_json(path, true, &map, err)) != CP_OK) return st;
    bool all_mapped = map != NULL;
    if (map && !cJSON_IsObject(map)) {
        cJSON_Delete(map);
        return cp_error_set(err, CP_EFORMAT, "%s: expected a JSON object pid -> document id", path);
    }
    for (int64_t p = 0; map && p < im->n_passages; p++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)p);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(map, key);
        if (cJSON_IsString(v) && v->valuestring[0]) im->doc_ids[p] = strdup(v->valuestring);
        else all_mapped = false;
    }
    cJSON_Delete(map);
    /* Unique document ids become the external ids; otherwise pids do. */
    cJSON *seen = all_mapped ? cJSON_CreateObject() : NULL;
    for (int64_t p = 0; seen && p < im->n_passages; p++) {
        if (cJSON_GetObjectItemCaseSensitive(seen, im->doc_ids[p])) {
            all_mapped = false;
            break;
        }
        cJSON_AddItemToObject(seen, im->doc_ids[p], cJSON_CreateTrue());
    }
    cJSON_Delete(seen);
    for (int64_t p = 0; p < im->n_passages; p++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)p);
        im->ext_ids[p] = strdup(all_mapped ? im->doc_ids[p] : buf);
        if (!im->ext_ids[p]) return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    return CP_OK;
}

/* Total passages from the per-chunk metadata, checking that chunks tile [0, N). */
static cp_status count_passages(importer *im, cp_error *err)
{
    int64_t next_pid = 0, next_emb = 0;
    for (int i = 0; i < im->num_chunks; i++) {
        char name[64], path[4096];
        snprintf(name, sizeof name, "%d.metadata.json", i);
        join(path, sizeof path, im->dir, name);
        cJSON *m = NULL;
        cp_status st = read_json(path, false, &m, err);
        int64_t off = 0, np = 0, ne = 0;
        if (st == CP_OK && (st = json_int(m, "passage_offset", 0, INT32_MAX, path, &off, err)) == CP_OK &&
            (st = json_int(m, "num_passages", 0, INT32_MAX, path, &np, err)) == CP_OK &&
            (st = json_int(m, "num_embeddings", 0, INT64_MAX / 2, path, &ne, err)) == CP_OK &&
            off != next_pid)
            st = cp_error_set(err, CP_EFORMAT, "%s: passage_offset %lld, expected %lld", path,
                              (long long)off, (long long)next_pid);
        cJSON_Delete(m);
        if (st != CP_OK) return st;
        next_pid += np;
        next_emb += ne;
    }
    if (next_emb != im->num_embeddings)
        return cp_error_set(err, CP_EFORMAT, "%s: chunks hold %lld embeddings, metadata.json "
                            "says %lld", im->dir, (long long)next_emb,
                            (long long)im->num_embeddings);
    if (next_pid > INT32_MAX) return cp_error_set(err, CP_EUNSUPPORTED, "too many passages");
    im->n_passages = next_pid;
    return CP_OK;
}

/* ------------------------------------------------------------------------------------
 * Chunks
 * --------------------------------------------------------------------------------- */

typedef struct chunk {
    int64_t pid0, n_docs, n_tokens;
    int32_t *doclens;
    int32_t *codes;
    uint8_t *residuals; /* natural order */
} chunk;

static void chunk_free(chunk *c)
{
    free(c->doclens);
    free(c->codes);
    free(c->residuals);
    memset(c, 0, sizeof *c);
}

static cp_status load_doclens(importer *im, int i, chunk *c, cp_error *err)
{
    char name[64], path[4096];
    snprintf(name, sizeof name, "doclens.%d.json", i);
    join(path, sizeof path, im->dir, name);
    cJSON *a = NULL;
    cp_status st = read_json(path, false, &a, err);
    if (st != CP_OK) return st;
    if (!cJSON_IsArray(a)) st = cp_error_set(err, CP_EFORMAT, "%s: expected an array", path);
    int n = st == CP_OK ? cJSON_GetArraySize(a) : 0;
    c->doclens = malloc((size_t)(n ? n : 1) * sizeof *c->doclens);
    if (st == CP_OK && !c->doclens) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    int64_t sum = 0, k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (st != CP_OK) break;
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX ||
            v->valuedouble != (double)(int32_t)v->valuedouble)
            st = cp_error_set(err, CP_EFORMAT, "%s: entry %lld is not a token count", path,
                              (long long)k);
        else
            sum += c->doclens[k++] = (int32_t)v->valuedouble;
    }
    cJSON_Delete(a);
    c->n_docs = n;
    c->n_tokens = sum;
    return st;
}

static cp_status load_codes(importer *im, int i, chunk *c, cp_error *err)
{
    char name[64], path[4096];
    snprintf(name, sizeof name, "%d.codes.pt", i);
    join(path, sizeof path, im->dir, name);
    cp_pt_file f;
    cp_status st = cp_pt_open(path, &f, err);
    if (st != CP_OK) return st;
    const cp_pt_tensor *t = &f.tensors[0];
    if (f.n_tensors != 1 || t->ndim != 1 || (t->dtype != CP_PT_I32 && t->dtype != CP_PT_I64))
        st = shape_error(path, t, "int32 codes [tokens]", err);
    else if (t->numel != c->n_tokens)
        st = cp_error_set(err, CP_EFORMAT, "%s has %lld codes but doclens.%d.json sums to %lld",
                          path, (long long)t->numel, i, (long long)c->n_tokens);
    if (st == CP_OK && !(c->codes = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *c->codes)))
        st = cp_error_set(err, CP_ENOMEM, "out of memory");
    for (int64_t j = 0; st == CP_OK && j < t->numel; j++) {
        int64_t code = cp_pt_int_at(t, j);
        if (code < 0 || code >= im->codec.n_centroids)
            st = cp_error_set(err, CP_EFORMAT, "%s: code %lld of token %lld is not a centroid",
                              path, (long long)code, (long long)j);
        else
            c->codes[j] = (int32_t)code;
    }
    cp_pt_close(&f);
    return st;
}

static cp_status load_residuals(importer *im, int i, chunk *c, cp_error *err)
{
    char name[64], path[4096];
    snprintf(name, sizeof name, "%d.residuals.pt", i);
    join(path, sizeof path, im->dir, name);
    cp_pt_file f;
    cp_status st = cp_pt_open(path, &f, err);
    if (st != CP_OK) return st;
    int rb = cp_codec_token_bytes(&im->codec);
    const cp_pt_tensor *t = &f.tensors[0];
    if (f.n_tensors != 1 || t->ndim != 2 || t->dtype != CP_PT_U8 || t->shape[1] != rb ||
        t->shape[0] != c->n_tokens) {
        st = cp_error_set(err, CP_EFORMAT, "%s: expected uint8 residuals [%lld, %d]", path,
                          (long long)c->n_tokens, rb);
    } else {
        size_t bytes = (size_t)t->numel;
        c->residuals = malloc(bytes ? bytes : 1);
        if (!c->residuals) st = cp_error_set(err, CP_ENOMEM, "out of memory");
        else {
            memcpy(c->residuals, t->data, bytes);
            cp_codec_reference_to_natural(c->residuals, bytes, im->codec.nbits);
        }
    }
    cp_pt_close(&f);
    return st;
}

static char *passage_metadata(const importer *im, int64_t pid)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "colbert_pid", (double)pid);
    if (im->doc_ids[pid]) cJSON_AddStringToObject(o, "document_id", im->doc_ids[pid]);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Append docs [from, to) of a chunk (chunk-relative) as one segment. */
static cp_status append_docs(importer *im, const chunk *c, int64_t from, int64_t to,
                             int64_t tok0, int64_t ntok, cp_error *err)
{
    size_t n = (size_t)(to - from);
    cp_document *docs = calloc(n, sizeof *docs);
    char **metas = calloc(n, sizeof *metas);
    cp_status st = docs && metas ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
    for (size_t k = 0; st == CP_OK && k < n; k++) {
        int64_t pid = c->pid0 + from + (int64_t)k;
        docs[k].id = im->ext_ids[pid];
        const cJSON *text = im->collection ? cJSON_GetArrayItem(im->collection, (int)pid) : NULL;
        docs[k].text = cJSON_IsString(text) ? text->valuestring : NULL;
        docs[k].metadata_json = metas[k] = passage_metadata(im, pid);
        if (!metas[k]) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    int rb = cp_codec_token_bytes(&im->codec);
    cp_segment_input seg = {.n_docs = n, .docs = docs, .doclens = c->doclens + from,
                            .n_tokens = ntok, .codes = c->codes + tok0,
                            .residuals = c->residuals + tok0 * rb};
    int64_t first = -1;
    if (st == CP_OK) st = cp_store_append_segment(im->store, &seg, &first, err);
    if (st == CP_OK && first != c->pid0 + from)
        st = cp_error_set(err, CP_EINTERNAL, "import: passage %lld got internal id %lld",
                          (long long)(c->pid0 + from), (long long)first);
    for (size_t k = 0; metas && k < n; k++) free(metas[k]);
    free(metas);
    free(docs);
    return st;
}

static cp_status import_chunk(importer *im, int i, int64_t pid0, int64_t *n_docs, cp_error *err)
{
    chunk c = {.pid0 = pid0};
    cp_status st = load_doclens(im, i, &c, err);
    if (st == CP_OK && pid0 + c.n_docs > im->n_passages)
        st = cp_error_set(err, CP_EFORMAT, "%s: doclens.%d.json lists more passages than the "
                          "chunk metadata", im->dir, i);
    if (st == CP_OK) st = load_codes(im, i, &c, err);
    if (st == CP_OK) st = load_residuals(im, i, &c, err);
    int64_t tok = 0;
    for (int64_t from = 0; st == CP_OK && from < c.n_docs; from += IMPORT_SEGMENT_DOCS) {
        int64_t to = from + IMPORT_SEGMENT_DOCS < c.n_docs ? from + IMPORT_SEGMENT_DOCS : c.n_docs;
        int64_t ntok = 0;
        for (int64_t d = from; d < to; d++) ntok += c.doclens[d];
        st = append_docs(im, &c, from, to, tok, ntok, err);
        tok += ntok;
        cp_progress_add(im->progress, ntok);
    }
    *n_docs = c.n_docs;
    chunk_free(&c);
    return st;
}

/* ------------------------------------------------------------------------------------
 * Meta and the output file
 * --------------------------------------------------------------------------------- */

static cp_status write_meta(importer *im, cp_error *err)
{
    static const char *const keys[] = {"checkpoint", "dim", "query_maxlen", "doc_maxlen",
                                       "mask_punctuation", "attend_to_mask_tokens",
                                       "query_token_id", "doc_token_id", "similarity"};
    cJSON *enc = cJSON_CreateObject(), *build = cJSON_CreateObject();
    cJSON_AddStringToObject(enc, "kind", "colbert");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(im->config, keys[i]);
        if (v) cJSON_AddItemToObject(enc, keys[i], cJSON_Duplicate(v, 1));
    }
    cJSON_AddStringToObject(build, "source", "colbert-import");
    cJSON_AddStringToObject(build, "colbert_dir", im->dir);
    cJSON_AddNumberToObject(build, "nbits", im->codec.nbits);
    cJSON_AddNumberToObject(build, "n_centroids", (double)im->codec.n_centroids);
    cJSON_AddNumberToObject(build, "n_documents", (double)im->n_passages);
    cJSON_AddNumberToObject(build, "avg_residual", im->codec.avg_residual);
    const cJSON *iters = cJSON_GetObjectItemCaseSensitive(im->config, "kmeans_niters");
    if (cJSON_IsNumber(iters)) cJSON_AddNumberToObject(build, "kmeans_iters", iters->valuedouble);
    char *e = cJSON_PrintUnformatted(enc), *b = cJSON_PrintUnformatted(build);
    cJSON_Delete(enc);
    cJSON_Delete(build);
    cp_status st = e && b ? cp_store_set_meta(im->store, "encoder", e, err)
                          : cp_error_set(err, CP_ENOMEM, "out of memory");
    if (st == CP_OK) st = cp_store_set_meta(im->store, "build", b, err);
    free(e);
    free(b);
    return st;
}

static void remove_db_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char buf[4096];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (snprintf(buf, sizeof buf, "%s%s", path, suffixes[i]) < (int)sizeof buf) unlink(buf);
}

static cp_status write_all(importer *im, const char *tmp, cp_error *err)
{
    cp_status st = cp_store_create(tmp, &im->codec, &im->store, err);
    if (st != CP_OK) return st;
    if ((st = cp_store_begin(im->store, err)) != CP_OK) return st;
    st = write_meta(im, err);
    int64_t pid = 0;
    for (int i = 0; st == CP_OK && i < im->num_chunks; i++) {
        int64_t n = 0;
        st = import_chunk(im, i, pid, &n, err);
        pid += n;
    }
    if (st == CP_OK && pid != im->n_passages)
        st = cp_error_set(err, CP_EFORMAT, "%s: doclens files list %lld passages, chunk metadata "
                          "%lld", im->dir, (long long)pid, (long long)im->n_passages);
    if (st == CP_OK) st = cp_store_commit(im->store, err);
    else cp_store_rollback(im->store);
    if (st == CP_OK) st = cp_store_checkpoint(im->store, err);
    cp_store_close(im->store);
    im->store = NULL;
    return st;
}

/* Replacing an index: refuse while a writer holds it, and drop its WAL (it would be
 * replayed into the new file). */
static cp_status prepare_target(const char *path, bool force, cp_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return CP_OK;
    if (S_ISDIR(sb.st_mode)) return cp_error_set(err, CP_EEXISTS, "%s is a directory", path);
    if (!force)
        return cp_error_set(err, CP_EEXISTS, "%s already exists (use --force to replace it)", path);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s-lock", path);
    int fd = open(buf, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        bool busy = flock(fd, LOCK_EX | LOCK_NB) != 0;
        close(fd);
        if (busy)
            return cp_error_set(err, CP_EBUSY, "%s is open for writing by another process; "
                                "cannot replace it now", path);
    }
    snprintf(buf, sizeof buf, "%s-wal", path);
    unlink(buf);
    snprintf(buf, sizeof buf, "%s-shm", path);
    unlink(buf);
    return CP_OK;
}

/* Make the rename itself durable: fsync the folder that holds the new name. */
static void sync_parent_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void importer_free(importer *im)
{
    free(im->codec.centroids);
    cJSON_Delete(im->meta_root);
    cJSON_Delete(im->collection);
    for (int64_t p = 0; p < im->n_passages; p++) {
        if (im->ext_ids) free(im->ext_ids[p]);
        if (im->doc_ids) free(im->doc_ids[p]);
    }
    free(im->ext_ids);
    free(im->doc_ids);
}

cp_status cp_index_import_colbert(const char *colbert_dir, const char *path, bool force,
                                  FILE *progress, cp_error *err)
{
    struct stat sb;
    if (stat(colbert_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cp_error_set(err, CP_ENOTFOUND, "%s is not a folder", colbert_dir);
    if (!force && stat(path, &sb) == 0)
        return cp_error_set(err, CP_EEXISTS, "%s already exists (use --force to replace it)", path);
    importer im = {.dir = colbert_dir, .path = path};
    cp_status st = load_metadata(&im, err);
    if (st == CP_OK) st = load_codec(&im, err);
    if (st == CP_OK) st = count_passages(&im, err);
    if (st == CP_OK) st = load_passages(&im, err);
    char tmp[4096];
    if (st == CP_OK && snprintf(tmp, sizeof tmp, "%s.tmp-import-%ld", path, (long)getpid()) >=
                           (int)sizeof tmp)
        st = cp_error_set(err, CP_EINVAL, "%s: path too long", path);
    if (st == CP_OK) {
        remove_db_files(tmp);
        im.progress = cp_progress_start(progress, "importing", im.num_embeddings, "tokens");
        st = write_all(&im, tmp, err);
        cp_progress_finish(im.progress);
        if (st == CP_OK) st = prepare_target(path, force, err);
        if (st == CP_OK && rename(tmp, path) != 0)
            st = cp_error_set(err, CP_EIO, "cannot move the new index into place at %s: %s", path,
                              strerror(errno));
        if (st == CP_OK) sync_parent_dir(path);
        if (st != CP_OK) remove_db_files(tmp);
    }
    importer_free(&im);
    if (st == CP_OK) st = cp_calibrate_file(path, progress, err);
    return st;
}
