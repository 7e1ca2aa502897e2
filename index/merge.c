/*
 * Merging indexes that share a codec (cp_index_merge, `colplaid index merge`; issue 15 §1,
 * docs/index-format.md "Shards and shared codecs").
 *
 * Every input is read through its own read-only connection, segment by segment (bounded
 * memory: one decoded segment at a time). The live documents of a segment are appended to
 * the output as one segment, in the input segment's order: their centroid codes and
 * residual bytes are copied as stored (no re-encoding, so every decompressed vector is
 * bit-identical to the input's), with their external ids, texts, metadata and windows.
 * Tombstones are left behind. Internal ids are new: inputs[0]'s documents first.
 *
 * Refused: codecs that are not bit-identical (exact comparison, not only the fingerprint),
 * different model fingerprints, pooling or window settings (CP_EINVAL), and an external id
 * live in two inputs (CP_EEXISTS naming it and both files). The output is written as a
 * build is: a temporary file, one transaction, a checkpoint, then a rename.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calibrate.h"
#include "shard.h"
#include "storage.h"

typedef struct merge_input {
    const char *path;
    cp_store *store;
    cp_codec codec;
    char *encoder, *pooling, *windows, *drift;
    int64_t first_out, end_out; /* its documents' internal ids in the output */
} merge_input;

typedef struct merger {
    const char *path;
    merge_input *in;
    size_t n;
    const cp_merge_options *opts;
    char *tmp_path;
    cp_store *out;
    sqlite3_stmt *exists; /* on out: the internal id of a live external id */
    int64_t n_docs, n_tokens;
    /* one output segment */
    cp_document *docs;
    int32_t *doclens, *codes;
    uint8_t *residuals;
    size_t docs_cap;
    int64_t tokens_cap;
} merger;

static void remove_db_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char buf[4096];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (snprintf(buf, sizeof buf, "%s%s", path, suffixes[i]) < (int)sizeof buf) unlink(buf);
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* ---------------------------------------------------------------------------------------
 * Opening and comparing the inputs.
 * ------------------------------------------------------------------------------------ */

static cp_status open_input(merge_input *in, cp_error *err)
{
    cp_status st = cp_store_open(in->path, CP_OPEN_READONLY, &in->store, err);
    if (st == CP_OK) st = cp_store_load_codec(in->store, &in->codec, err);
    if (st != CP_OK) return st;
    in->encoder = cp_store_get_meta(in->store, "encoder");
    in->pooling = cp_store_get_meta(in->store, "pooling");
    in->windows = cp_store_get_meta(in->store, "windows");
    in->drift = cp_store_get_meta(in->store, "drift");
    return CP_OK;
}

static cp_status compare_inputs(const merge_input *a, const merge_input *b, cp_error *err)
{
    if (!cp_codec_same(&a->codec, &b->codec))
        return cp_error_set(err, CP_EINVAL,
                            "%s and %s have different codecs (fingerprints %016llx and %016llx): "
                            "only indexes built with one codec can be merged (colplaid index "
                            "train, then index build --codec-from)",
                            a->path, b->path, (unsigned long long)cp_codec_fingerprint(&a->codec),
                            (unsigned long long)cp_codec_fingerprint(&b->codec));
    if (a->encoder && b->encoder && strcmp(a->encoder, b->encoder))
        return cp_error_set(err, CP_EINVAL, "%s and %s were encoded by different models (%s, %s)",
                            a->path, b->path, a->encoder, b->encoder);
    if (!same_text(a->pooling, b->pooling))
        return cp_error_set(
            err, CP_EINVAL, "%s and %s were built with different token pooling (%s, %s)", a->path,
            b->path, a->pooling ? a->pooling : "none", b->pooling ? b->pooling : "none");
    if (!same_text(a->windows, b->windows))
        return cp_error_set(err, CP_EINVAL, "%s and %s were built with different windows (%s, %s)",
                            a->path, b->path, a->windows ? a->windows : "none",
                            b->windows ? b->windows : "none");
    return CP_OK;
}

static void input_free(merge_input *in)
{
    cp_store_close(in->store);
    cp_codec_free_arrays(&in->codec);
    free(in->encoder);
    free(in->pooling);
    free(in->windows);
    free(in->drift);
}

/* ---------------------------------------------------------------------------------------
 * Copying one input.
 * ------------------------------------------------------------------------------------ */

static void clear_docs(merger *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)m->docs[i].id);
        free((char *)m->docs[i].text);
        free((char *)m->docs[i].metadata_json);
        free((cp_window *)m->docs[i].windows);
    }
    if (n) memset(m->docs, 0, n * sizeof *m->docs);
}

static bool reserve(merger *m, size_t docs, int64_t tokens, int token_bytes)
{
    if (docs > m->docs_cap) {
        cp_document *d = realloc(m->docs, docs * sizeof *d);
        if (d) m->docs = d;
        int32_t *l = d ? realloc(m->doclens, docs * sizeof *l) : NULL;
        if (l) m->doclens = l;
        if (!d || !l) return false;
        memset(m->docs + m->docs_cap, 0, (docs - m->docs_cap) * sizeof *d);
        m->docs_cap = docs;
    }
    if (tokens > m->tokens_cap) {
        int32_t *c = realloc(m->codes, (size_t)tokens * sizeof *c);
        if (c) m->codes = c;
        uint8_t *r = c ? realloc(m->residuals, (size_t)tokens * (size_t)token_bytes) : NULL;
        if (r) m->residuals = r;
        if (!c || !r) return false;
        m->tokens_cap = tokens;
    }
    return true;
}

static char *dup_col(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    return t ? strdup((const char *)t) : NULL;
}

/* The position of doc_id among a segment's doc_ids (small: a linear scan from a hint, as
 * the rows come in the segment's order). */
static int64_t find_pos(const cp_segment_data *seg, int64_t doc_id, int64_t hint)
{
    for (int64_t k = 0; k < seg->n_docs; k++) {
        int64_t p = (hint + k) % seg->n_docs;
        if (seg->doc_ids[p] == doc_id) return p;
    }
    return -1;
}

/* An external id already in the output: which earlier input holds it. */
static cp_status duplicate_error(merger *m, size_t input, const char *id, cp_error *err)
{
    int64_t out_id = sqlite3_column_int64(m->exists, 0);
    const char *other = "an earlier input";
    for (size_t i = 0; i < input; i++)
        if (out_id >= m->in[i].first_out && out_id < m->in[i].end_out) other = m->in[i].path;
    return cp_error_set(err, CP_EEXISTS,
                        "document id \"%s\" is in both %s and %s: the merged indexes must hold "
                        "disjoint ids (shards of one corpus)",
                        id, other, m->in[input].path);
}

/* Append one document row (the query's current row) at output position k. */
static cp_status take_doc(merger *m, size_t input, const cp_segment_data *seg,
                          const int64_t *offsets, sqlite3_stmt *rows, sqlite3_stmt *win, size_t k,
                          int64_t *n_tokens, int64_t *hint, cp_error *err)
{
    const merge_input *in = &m->in[input];
    int64_t doc_id = sqlite3_column_int64(rows, 0);
    const char *ext = (const char *)sqlite3_column_text(rows, 1);
    int64_t pos = find_pos(seg, doc_id, *hint);
    if (pos < 0 || !ext || sqlite3_column_int64(rows, 4) != seg->doclens[pos])
        return cp_error_set(err, CP_ECORRUPT,
                            "%s: document %lld does not match its segment %lld (run colplaid "
                            "index check)",
                            in->path, (long long)doc_id, (long long)seg->segment_id);
    *hint = pos + 1;
    sqlite3_reset(m->exists);
    sqlite3_bind_text(m->exists, 1, ext, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(m->exists);
    if (rc == SQLITE_ROW) return duplicate_error(m, input, ext, err);
    if (rc != SQLITE_DONE) return cp_store_sql_error(m->out, rc, "checking ids", err);
    int32_t len = seg->doclens[pos];
    int tb = cp_codec_token_bytes(&in->codec);
    if (!reserve(m, k + 1, *n_tokens + len, tb))
        return cp_error_set(err, CP_ENOMEM, "out of memory merging %s", in->path);
    cp_document *d = &m->docs[k];
    d->id = strdup(ext);
    d->text = dup_col(rows, 2);
    d->metadata_json = dup_col(rows, 3);
    d->n_tokens = len;
    if ((!d->id) || (sqlite3_column_type(rows, 2) != SQLITE_NULL && !d->text) ||
        (sqlite3_column_type(rows, 3) != SQLITE_NULL && !d->metadata_json))
        return cp_error_set(err, CP_ENOMEM, "out of memory merging %s", in->path);
    if (win) {
        sqlite3_reset(win);
        sqlite3_bind_int64(win, 1, doc_id);
        if ((rc = sqlite3_step(win)) == SQLITE_ROW) {
            int bytes = sqlite3_column_bytes(win, 0);
            if (bytes <= 0 || bytes % (int)sizeof(cp_window))
                return cp_error_set(err, CP_ECORRUPT, "%s: document %lld has a damaged windows row",
                                    in->path, (long long)doc_id);
            cp_window *w = malloc((size_t)bytes);
            if (!w) return cp_error_set(err, CP_ENOMEM, "out of memory merging %s", in->path);
            memcpy(w, sqlite3_column_blob(win, 0), (size_t)bytes);
            d->windows = w;
            d->n_windows = bytes / (int)sizeof(cp_window);
        } else if (rc != SQLITE_DONE) {
            return cp_store_sql_error(in->store, rc, "reading windows", err);
        }
    }
    m->doclens[k] = len;
    memcpy(m->codes + *n_tokens, seg->codes + offsets[pos], (size_t)len * sizeof *m->codes);
    memcpy(m->residuals + *n_tokens * tb, seg->residuals + offsets[pos] * tb,
           (size_t)len * (size_t)tb);
    *n_tokens += len;
    return CP_OK;
}

/* The live documents of one input segment into one output segment. */
static cp_status copy_segment(merger *m, size_t input, const cp_segment_data *seg,
                              sqlite3_stmt *rows, sqlite3_stmt *win, cp_error *err)
{
    int64_t *offsets = malloc(((size_t)seg->n_docs + 1) * sizeof *offsets);
    if (!offsets) return cp_error_set(err, CP_ENOMEM, "out of memory");
    offsets[0] = 0;
    for (int64_t i = 0; i < seg->n_docs; i++)
        offsets[i + 1] = offsets[i] + seg->doclens[i];
    sqlite3_reset(rows);
    sqlite3_bind_int64(rows, 1, seg->segment_id);
    size_t k = 0;
    int64_t n_tokens = 0, hint = 0;
    cp_status st = CP_OK;
    int rc;
    while (st == CP_OK && (rc = sqlite3_step(rows)) == SQLITE_ROW)
        if ((st = take_doc(m, input, seg, offsets, rows, win, k, &n_tokens, &hint, err)) == CP_OK)
            k++;
    if (st == CP_OK && rc != SQLITE_DONE)
        st = cp_store_sql_error(m->in[input].store, rc, "reading documents", err);
    if (st == CP_OK && k > 0) {
        cp_segment_input out = {.n_docs = k,
                                .docs = m->docs,
                                .doclens = m->doclens,
                                .n_tokens = n_tokens,
                                .codes = m->codes,
                                .residuals = m->residuals};
        st = cp_store_append_segment(m->out, &out, NULL, err);
        m->n_docs += (int64_t)k;
        m->n_tokens += n_tokens;
    }
    clear_docs(m, k + (st != CP_OK && k < m->docs_cap)); /* a failed take_doc's strings too */
    free(offsets);
    return st;
}

static cp_status copy_input(merger *m, size_t input, cp_error *err)
{
    merge_input *in = &m->in[input];
    sqlite3 *db = cp_store_sqlite(in->store);
    sqlite3_stmt *rows = NULL, *win = NULL;
    int rc =
        sqlite3_prepare_v2(db,
                           "SELECT doc_id, external_id, text, metadata, n_tokens FROM documents"
                           " WHERE segment_id = ? AND deleted = 0 ORDER BY doc_id",
                           -1, &rows, NULL);
    if (rc == SQLITE_OK && cp_store_has_windows(in->store))
        rc = sqlite3_prepare_v2(db, "SELECT windows FROM doc_windows WHERE doc_id = ?", -1, &win,
                                NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(rows);
        return cp_store_sql_error(in->store, rc, "reading documents", err);
    }
    int64_t docs_before = m->n_docs;
    cp_segment_iter *it = NULL;
    cp_status st = cp_store_segments_begin(in->store, &it, err);
    while (st == CP_OK) {
        cp_segment_data seg;
        bool has = false;
        if ((st = cp_store_segments_next(it, &seg, &has, err)) != CP_OK || !has) break;
        st = copy_segment(m, input, &seg, rows, win, err);
    }
    cp_store_segments_end(it);
    sqlite3_finalize(rows);
    sqlite3_finalize(win);
    if (st == CP_OK && m->opts->progress)
        fprintf(m->opts->progress, "merge: %s: %lld documents\n", in->path,
                (long long)(m->n_docs - docs_before));
    return st;
}

/* ---------------------------------------------------------------------------------------
 * The output.
 * ------------------------------------------------------------------------------------ */

static char *merge_params_json(const merger *m)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    const cp_codec *c = &m->in[0].codec;
    char fp[24];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)cp_codec_fingerprint(c));
    cJSON_AddStringToObject(o, "source", "merge");
    cJSON_AddNumberToObject(o, "nbits", c->nbits);
    cJSON_AddStringToObject(o, "codec", cp_codec_variant_name(c->variant));
    cJSON_AddNumberToObject(o, "n_centroids", (double)c->n_centroids);
    cJSON_AddStringToObject(o, "codec_fingerprint", fp);
    cJSON *arr = cJSON_AddArrayToObject(o, "inputs");
    for (size_t i = 0; i < m->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(m->in[i].path));
    cJSON_AddNumberToObject(o, "n_documents", (double)m->n_docs);
    cJSON_AddNumberToObject(o, "n_tokens", (double)m->n_tokens);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static cp_status write_meta(merger *m, cp_error *err)
{
    const char *encoder = NULL, *drift = NULL;
    for (size_t i = 0; i < m->n; i++) {
        if (!encoder) encoder = m->in[i].encoder;
        if (!drift) drift = m->in[i].drift;
    }
    cp_status st = CP_OK;
    if (encoder) st = cp_store_set_meta(m->out, "encoder", encoder, err);
    if (st == CP_OK && m->in[0].pooling)
        st = cp_store_set_meta(m->out, "pooling", m->in[0].pooling, err);
    if (st == CP_OK && m->in[0].windows)
        st = cp_store_set_meta(m->out, "windows", m->in[0].windows, err);
    char *reset = st == CP_OK ? cp_drift_reference_reset(drift) : NULL;
    if (reset) st = cp_store_set_meta(m->out, "drift", reset, err);
    free(reset);
    if (st != CP_OK) return st;
    char *params = merge_params_json(m);
    st = params ? cp_store_set_meta(m->out, "build", params, err)
                : cp_error_set(err, CP_ENOMEM, "out of memory");
    free(params);
    return st;
}

static cp_status write_output(merger *m, cp_error *err)
{
    size_t len = strlen(m->path) + 48;
    if (!(m->tmp_path = malloc(len))) return cp_error_set(err, CP_ENOMEM, "out of memory");
    cp_index_build_temp_path(m->path, m->tmp_path, len);
    remove_db_files(m->tmp_path);
    cp_status st = cp_store_create(m->tmp_path, &m->in[0].codec, &m->out, err);
    if (st != CP_OK) return st;
    if ((st = cp_store_begin(m->out, err)) != CP_OK) {
        cp_store_close(m->out);
        m->out = NULL;
        return st;
    }
    bool lexical = false;
    for (size_t i = 0; i < m->n; i++)
        lexical = lexical || cp_store_has_lexical(m->in[i].store);
    /* the lexical table first: the documents enter it as they are appended */
    if (lexical) st = cp_store_lexical_create(m->out, err);
    int rc = sqlite3_prepare_v2(
        cp_store_sqlite(m->out),
        "SELECT doc_id FROM documents WHERE external_id = ? AND deleted = 0", -1, &m->exists, NULL);
    if (st == CP_OK && rc != SQLITE_OK) st = cp_store_sql_error(m->out, rc, "checking ids", err);
    for (size_t i = 0; st == CP_OK && i < m->n; i++) {
        m->in[i].first_out = m->n_docs;
        st = copy_input(m, i, err);
        m->in[i].end_out = m->n_docs;
    }
    sqlite3_finalize(m->exists);
    m->exists = NULL;
    if (st == CP_OK) st = write_meta(m, err);
    if (st == CP_OK) st = cp_store_commit(m->out, err);
    if (st == CP_OK) st = cp_store_checkpoint(m->out, err);
    if (st != CP_OK) cp_store_rollback(m->out);
    cp_store_close(m->out);
    m->out = NULL;
    if (st != CP_OK) return st;
    if (m->opts->force) { /* a stale WAL of the replaced index would be replayed */
        char buf[4096];
        snprintf(buf, sizeof buf, "%s-wal", m->path);
        unlink(buf);
        snprintf(buf, sizeof buf, "%s-shm", m->path);
        unlink(buf);
    }
    if (rename(m->tmp_path, m->path) != 0)
        return cp_error_set(err, CP_EIO, "cannot move the merged index into place at %s: %s",
                            m->path, strerror(errno));
    return CP_OK;
}

static cp_status check_paths(const char *path, const char *const *inputs, size_t n, bool force,
                             cp_error *err)
{
    if (!path || !*path) return cp_error_set(err, CP_EINVAL, "no output path given");
    if (n == 0 || !inputs) return cp_error_set(err, CP_EINVAL, "no indexes to merge");
    struct stat out;
    bool exists = stat(path, &out) == 0;
    if (exists && S_ISDIR(out.st_mode))
        return cp_error_set(err, CP_EEXISTS, "%s is a directory", path);
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (!inputs[i] || !*inputs[i])
            return cp_error_set(err, CP_EINVAL, "an input path is empty");
        if (exists && stat(inputs[i], &sb) == 0 && sb.st_dev == out.st_dev &&
            sb.st_ino == out.st_ino)
            return cp_error_set(err, CP_EINVAL, "the output %s is also an input", path);
        for (size_t j = 0; j < i; j++) {
            struct stat sa;
            if (stat(inputs[i], &sb) == 0 && stat(inputs[j], &sa) == 0 && sb.st_dev == sa.st_dev &&
                sb.st_ino == sa.st_ino)
                return cp_error_set(err, CP_EINVAL, "%s is given twice", inputs[i]);
        }
    }
    if (exists && !force)
        return cp_error_set(err, CP_EEXISTS, "%s already exists (use --force to replace it)", path);
    return CP_OK;
}

cp_status cp_index_merge(const char *path, const char *const *inputs, size_t n_inputs,
                         const cp_merge_options *opts, cp_error *err)
{
    cp_merge_options defaults = {0};
    if (!opts) opts = &defaults;
    cp_status st = check_paths(path, inputs, n_inputs, opts->force, err);
    if (st != CP_OK) return st;
    merger m = {.path = path, .n = n_inputs, .opts = opts};
    m.in = calloc(n_inputs, sizeof *m.in);
    if (!m.in) return cp_error_set(err, CP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_inputs && st == CP_OK; i++) {
        m.in[i].path = inputs[i];
        st = open_input(&m.in[i], err);
        if (st == CP_OK && i > 0) st = compare_inputs(&m.in[0], &m.in[i], err);
    }
    if (st == CP_OK) st = write_output(&m, err);
    if (st != CP_OK && m.tmp_path) remove_db_files(m.tmp_path);
    for (size_t i = 0; i < n_inputs; i++)
        input_free(&m.in[i]);
    clear_docs(&m, m.docs_cap);
    free(m.in);
    free(m.docs);
    free(m.doclens);
    free(m.codes);
    free(m.residuals);
    free(m.tmp_path);
    if (st == CP_OK && !opts->skip_calibration && m.n_docs > 0)
        st = cp_calibrate_file(path, opts->progress, err);
    return st;
}
