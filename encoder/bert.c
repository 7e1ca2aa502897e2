/*
 * The "bert" encoder backend: ColBERT on a BERT checkpoint. Loads the tokenizer, settings
 * and weights (bert_config.c, bert_load.c), builds the ColBERT inputs, runs the
 * transformer (bert_forward.c) and the head: linear projection, L2 normalisation and,
 * for documents, the punctuation skiplist.
 *
 * Inputs, as Stanford ColBERT builds them (PLAID.md section 2):
 *   query:    [CLS] [Q] tokens [SEP] [MASK]... to exactly query_maxlen (tokens cut to
 *             query_maxlen - 3); [MASK] positions are not attended to unless
 *             attend_to_mask_tokens, and all query_maxlen outputs are kept;
 *   document: [CLS] [D] tokens [SEP] with tokens cut to doc_maxlen - 3; after encoding
 *             the rows of skiplist (punctuation) ids are dropped.
 * The truncation is by design (the model was trained at these lengths) and documented in
 * docs/encoder.md.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bert_internal.h"
#include "cp_cpu.h"
#include "encoder_internal.h"
#include "colplaid/tokenizer.h"

/* Sequences are encoded in groups of about this many tokens (bounds batch memory). */
#define BATCH_TOKENS 4096

typedef struct bert_impl {
    cp_bert_model model;
    cp_colbert_settings set;
    cp_wordpiece *wp;
    int32_t cls, sep, mask, q_marker, d_marker;
    int32_t *skip; /* sorted ids dropped from documents */
    size_t n_skip;
} bert_impl;

static bool is_skipped(const bert_impl *b, int32_t id)
{
    size_t lo = 0, hi = b->n_skip;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b->skip[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < b->n_skip && b->skip[lo] == id;
}

/* The model input ids for one text, and which positions may be attended to. */
static cp_status build_input(const bert_impl *b, int maxlen, cp_text_kind kind, const char *text,
                             int32_t **ids_out, uint8_t **attend_out, int *len_out,
                             cp_error *err)
{
    int32_t *tok = NULL;
    size_t n = 0;
    cp_status s = cp_wordpiece_encode(b->wp, text, &tok, &n, err);
    if (s) return s;
    bool query = kind == CP_TEXT_QUERY;
    size_t keep = n < (size_t)maxlen - 3 ? n : (size_t)maxlen - 3;
    int len = query ? maxlen : (int)keep + 3;
    int32_t *ids = malloc((size_t)len * sizeof *ids);
    uint8_t *att = malloc((size_t)len);
    if (!ids || !att) {
        free(tok);
        free(ids);
        free(att);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    ids[0] = b->cls;
    ids[1] = query ? b->q_marker : b->d_marker;
    if (keep) memcpy(ids + 2, tok, keep * sizeof *ids);
    ids[keep + 2] = b->sep;
    memset(att, 1, (size_t)len);
    for (int i = (int)keep + 3; i < len; i++) {
        ids[i] = b->mask;
        att[i] = b->set.attend_to_mask_tokens;
    }
    free(tok);
    *ids_out = ids;
    *attend_out = att;
    *len_out = len;
    return CP_OK;
}

/* Which rows of a sequence become output vectors. */
static bool keep_row(const bert_impl *b, cp_text_kind kind, int32_t id)
{
    return kind == CP_TEXT_QUERY || !b->set.mask_punctuation || !is_skipped(b, id);
}

static void release(cp_embeddings *e)
{
    free(e->data);
    free(e->token_ids);
    memset(e, 0, sizeof *e);
}

/* Project, normalise and hand out the kept rows of sequence s. */
static cp_status emit(const cp_encoder *enc, cp_text_kind kind, const int32_t *ids, int len,
                      const float *hidden, cp_embeddings *out, cp_error *err)
{
    const bert_impl *b = enc->impl;
    int h = b->model.cfg.hidden, dim = enc->dim, n = 0;
    float *rows =
        calloc((size_t)len * (size_t)h, sizeof(float)); /* calloc: gcc -Wmaybe-uninitialized */
    out->data = malloc((size_t)len * (size_t)dim * sizeof(float));
    out->token_ids = malloc((size_t)len * sizeof(int32_t));
    if (!rows || !out->data || !out->token_ids) {
        free(rows);
        release(out);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    for (int i = 0; i < len; i++) {
        if (!keep_row(b, kind, ids[i])) continue;
        memcpy(rows + (size_t)n * h, hidden + (size_t)i * h, (size_t)h * sizeof(float));
        out->token_ids[n++] = ids[i];
    }
    cp_linear_apply(&b->model.proj, b->model.gemm_kind, rows, n, h, out->data, dim, 1);
    free(rows);
    for (int i = 0; i < n; i++) {
        float *v = out->data + (size_t)i * dim;
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += (double)v[j] * v[j];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int j = 0; j < dim; j++) v[j] *= inv;
    }
    out->n_tokens = n;
    out->dim = dim;
    return CP_OK;
}

typedef struct group {
    int32_t *ids;
    uint8_t *attend;
    int32_t *off;
    int n_seq;
    size_t cap;
} group;

static void group_free(group *g, int n_seq)
{
    (void)n_seq;
    free(g->ids);
    free(g->attend);
    free(g->off);
}

/* Texts [first, first+count) into one packed batch. */
static cp_status group_build(const cp_encoder *enc, cp_text_kind kind, const char *const *texts,
                             size_t first, size_t count, group *g, cp_error *err)
{
    const bert_impl *b = enc->impl;
    int maxlen = kind == CP_TEXT_QUERY ? enc->query_maxlen : enc->doc_maxlen;
    memset(g, 0, sizeof *g);
    g->off = calloc(count + 1, sizeof *g->off);
    g->ids = malloc((size_t)maxlen * count * sizeof *g->ids);
    g->attend = malloc((size_t)maxlen * count);
    if (!g->off || !g->ids || !g->attend) return cp_error_set(err, CP_ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        int32_t *ids;
        uint8_t *att;
        int len;
        if (!texts[first + i])
            return cp_error_set(err, CP_EINVAL, "text %zu is NULL", first + i);
        cp_status s = build_input(b, maxlen, kind, texts[first + i], &ids, &att, &len, err);
        if (s) return s;
        memcpy(g->ids + g->off[i], ids, (size_t)len * sizeof *ids);
        memcpy(g->attend + g->off[i], att, (size_t)len);
        g->off[i + 1] = g->off[i] + len;
        free(ids);
        free(att);
    }
    g->n_seq = (int)count;
    return CP_OK;
}

static cp_status encode_group(cp_encoder *enc, cp_text_kind kind, const char *const *texts,
                              size_t first, size_t count, cp_embeddings *out, cp_error *err)
{
    const bert_impl *b = enc->impl;
    group g;
    cp_status s = group_build(enc, kind, texts, first, count, &g, err);
    float *hidden = NULL;
    if (!s) {
        hidden = malloc((size_t)g.off[count] * (size_t)b->model.cfg.hidden * sizeof(float));
        if (!hidden) s = cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    if (!s) {
        cp_bert_batch batch = {g.ids, g.attend, g.off, g.n_seq};
        s = cp_bert_forward(&b->model, &batch, enc->threads, hidden, err);
    }
    for (size_t i = 0; i < count && !s; i++) {
        s = emit(enc, kind, g.ids + g.off[i], g.off[i + 1] - g.off[i],
                 hidden + (size_t)g.off[i] * b->model.cfg.hidden, &out[first + i], err);
        for (size_t j = 0; s && j < i; j++) release(&out[first + j]);
    }
    free(hidden);
    group_free(&g, (int)count);
    return s;
}

static cp_status bert_encode(cp_encoder *enc, cp_text_kind kind, const char *const *texts,
                             size_t n, cp_embeddings *out, cp_error *err)
{
    int maxlen = kind == CP_TEXT_QUERY ? enc->query_maxlen : enc->doc_maxlen;
    size_t per = BATCH_TOKENS / (size_t)maxlen;
    if (per < 1) per = 1;
    memset(out, 0, n * sizeof *out);
    for (size_t first = 0; first < n; first += per) {
        size_t count = n - first < per ? n - first : per;
        cp_status s = encode_group(enc, kind, texts, first, count, out, err);
        if (s) {
            for (size_t j = 0; j < first; j++) release(&out[j]);
            return s;
        }
    }
    return CP_OK;
}

static cp_status bert_tokenize(cp_encoder *enc, cp_text_kind kind, bool raw, const char *text,
                               int32_t **ids, size_t *n_ids, cp_error *err)
{
    const bert_impl *b = enc->impl;
    *ids = NULL;
    *n_ids = 0;
    if (!raw) {
        uint8_t *att;
        int len;
        int maxlen = kind == CP_TEXT_QUERY ? enc->query_maxlen : enc->doc_maxlen;
        cp_status s = build_input(b, maxlen, kind, text, ids, &att, &len, err);
        if (s) return s;
        free(att);
        *n_ids = (size_t)len;
        return CP_OK;
    }
    int32_t *tok;
    size_t n;
    cp_status s = cp_wordpiece_encode(b->wp, text, &tok, &n, err);
    if (s) return s;
    *ids = malloc((n + 2) * sizeof **ids);
    if (!*ids) {
        free(tok);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    (*ids)[0] = b->cls;
    if (n) memcpy(*ids + 1, tok, n * sizeof *tok);
    (*ids)[n + 1] = b->sep;
    *n_ids = n + 2;
    free(tok);
    return CP_OK;
}

/* Windows (encoder/window.c): WordPiece ids, no specials, no truncation. */
static cp_status bert_units(cp_encoder *enc, const char *text, size_t len, int32_t **ids, size_t *n,
                            cp_error *err)
{
    const bert_impl *b = enc->impl;
    return cp_wordpiece_encode_n(b->wp, text, len, ids, n, err);
}

/* [CLS] [D] ids [SEP] through the model; the rows of ids[keep_from, keep_to) come out (with
 * [CLS] [D] when keep_from == 0 and [SEP] when keep_to == n, as a whole document's). */
static cp_status bert_encode_units(cp_encoder *enc, const int32_t *ids, size_t n, size_t keep_from,
                                   size_t keep_to, cp_embeddings *out, cp_error *err)
{
    const bert_impl *b = enc->impl;
    if (n + 3 > (size_t)b->model.cfg.max_pos)
        return cp_error_set(err, CP_EINVAL,
                            "a window span of %zu tokens exceeds the model's %d "
                            "positions",
                            n, b->model.cfg.max_pos);
    int len = (int)n + 3, h = b->model.cfg.hidden;
    int32_t *seq = malloc((size_t)len * sizeof *seq);
    uint8_t *att = malloc((size_t)len);
    float *hidden = malloc((size_t)len * (size_t)h * sizeof *hidden);
    cp_status s = seq && att && hidden ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
    if (!s) {
        seq[0] = b->cls;
        seq[1] = b->d_marker;
        if (n) memcpy(seq + 2, ids, n * sizeof *ids);
        seq[n + 2] = b->sep;
        memset(att, 1, (size_t)len);
        int32_t off[2] = {0, len};
        cp_bert_batch batch = {seq, att, off, 1};
        s = cp_bert_forward(&b->model, &batch, enc->threads, hidden, err);
    }
    if (!s) {
        int from = keep_from == 0 ? 0 : (int)keep_from + 2;
        int to = keep_to == n ? len : (int)keep_to + 2;
        if (to <= from) { /* an empty window */
            out->data = malloc(sizeof(float));
            out->token_ids = malloc(sizeof(int32_t));
            out->dim = enc->dim;
            if (!out->data || !out->token_ids) s = cp_error_set(err, CP_ENOMEM, "out of memory");
        } else
            s = emit(enc, CP_TEXT_DOCUMENT, seq + from, to - from, hidden + (size_t)from * h, out,
                     err);
    }
    free(seq);
    free(att);
    free(hidden);
    return s;
}

static const char *bert_token_text(const cp_encoder *enc, int32_t id)
{
    const bert_impl *b = enc->impl;
    return cp_wordpiece_token(b->wp, id);
}

static void bert_free(cp_encoder *enc)
{
    bert_impl *b = enc->impl;
    if (!b) return;
    cp_bert_model_free(&b->model);
    cp_wordpiece_free(b->wp);
    free(b->set.skiplist_json);
    free(b->skip);
    free(b);
    enc->impl = NULL;
}

static const cp_encoder_backend bert_backend = {
    "bert", bert_encode, bert_tokenize, bert_token_text, bert_free, bert_units, bert_encode_units};

static int cmp_id(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* PyLate's skiplist_words when given, else the tokenizer's punctuation ids. */
static cp_status build_skiplist(bert_impl *b, cp_error *err)
{
    cJSON *words = b->set.skiplist_json ? cJSON_Parse(b->set.skiplist_json) : NULL;
    const int32_t *ids;
    size_t n;
    cp_wordpiece_skiplist(b->wp, &ids, &n);
    size_t cap = words ? (size_t)cJSON_GetArraySize(words) : n;
    b->skip = malloc((cap ? cap : 1) * sizeof *b->skip);
    if (!b->skip) {
        cJSON_Delete(words);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    if (!words) {
        memcpy(b->skip, ids, n * sizeof *ids);
        b->n_skip = n;
        return CP_OK;
    }
    const cJSON *w;
    cJSON_ArrayForEach(w, words)
    {
        int32_t id = cJSON_IsString(w) ? cp_wordpiece_token_id(b->wp, w->valuestring) : -1;
        if (id >= 0) b->skip[b->n_skip++] = id;
    }
    cJSON_Delete(words);
    qsort(b->skip, b->n_skip, sizeof *b->skip, cmp_id);
    return CP_OK;
}

static cp_status resolve_marker(const bert_impl *b, const char *text, int32_t *id, cp_error *err)
{
    *id = cp_wordpiece_token_id(b->wp, text);
    if (*id < 0)
        return cp_error_set(err, CP_EFORMAT, "the marker token \"%s\" is not in the vocabulary",
                            text);
    return CP_OK;
}

static cp_status resolve_tokens(bert_impl *b, cp_error *err)
{
    const cp_wordpiece_specials *sp = cp_wordpiece_special_ids(b->wp);
    if (sp->cls < 0 || sp->sep < 0 || sp->mask < 0)
        return cp_error_set(err, CP_EFORMAT,
                            "the vocabulary lacks [CLS], [SEP] or [MASK], which ColBERT needs");
    b->cls = sp->cls;
    b->sep = sp->sep;
    b->mask = sp->mask;
    if (cp_wordpiece_vocab_size(b->wp) > b->model.cfg.vocab_size)
        return cp_error_set(err, CP_EFORMAT,
                            "the tokenizer has %d tokens but the model only %d embeddings",
                            (int)cp_wordpiece_vocab_size(b->wp), b->model.cfg.vocab_size);
    cp_status s = resolve_marker(b, b->set.query_marker, &b->q_marker, err);
    if (!s) s = resolve_marker(b, b->set.doc_marker, &b->d_marker, err);
    if (!s) s = build_skiplist(b, err);
    return s;
}

static cp_status check_lengths(const bert_impl *b, const char *dir, cp_error *err)
{
    int mx = b->set.query_maxlen > b->set.doc_maxlen ? b->set.query_maxlen : b->set.doc_maxlen;
    if (mx > b->model.cfg.max_pos)
        return cp_error_set(err, CP_EFORMAT,
                            "%s: query/doc max length %d exceeds max_position_embeddings %d", dir,
                            mx, b->model.cfg.max_pos);
    return CP_OK;
}

static char *make_fingerprint(const char *dir, const bert_impl *b, int dim)
{
    cJSON *o = cJSON_CreateObject();
    const char *name = strrchr(dir, '/');
    name = name && name[1] ? name + 1 : dir;
    cJSON_AddStringToObject(o, "kind", "bert");
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "dim", dim);
    cJSON_AddNumberToObject(o, "hidden", b->model.cfg.hidden);
    cJSON_AddNumberToObject(o, "layers", b->model.cfg.layers);
    cJSON_AddNumberToObject(o, "query_maxlen", b->set.query_maxlen);
    cJSON_AddNumberToObject(o, "doc_maxlen", b->set.doc_maxlen);
    cJSON_AddStringToObject(o, "query_marker", b->set.query_marker);
    cJSON_AddStringToObject(o, "doc_marker", b->set.doc_marker);
    cJSON_AddBoolToObject(o, "attend_to_mask_tokens", b->set.attend_to_mask_tokens);
    cJSON_AddBoolToObject(o, "mask_punctuation", b->set.mask_punctuation);
    cJSON_AddStringToObject(o, "settings_from", b->set.source);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* config.json as it shapes the vectors: keys that only name or describe the checkpoint, or
 * that colplaid records apart (truncate_dim: the fingerprint's "dim"), are left out. Also
 * reads the model config's truncate_dim. */
static cp_status hash_config(const char *dir, uint64_t *h, int *truncate_dim, cp_error *err)
{
    static const char *const skip[] = {
        "_name_or_path", "transformers_version", "torch_dtype",          "_commit_hash",
        "use_cache",     "truncate_dim",         "matryoshka_dimensions"};
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *c;
    cp_status st = cp_read_json_file(path, &c, err);
    if (st) return st;
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(c, "truncate_dim");
    if (cJSON_IsNumber(td)) {
        if (td->valuedouble < 1 || td->valuedouble > 65536 ||
            td->valuedouble != (double)(int)td->valuedouble) {
            cJSON_Delete(c);
            return cp_error_set(err, CP_EFORMAT, "%s: truncate_dim must be a positive integer",
                                path);
        }
        *truncate_dim = (int)td->valuedouble;
    }
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(c, skip[i]);
    char *text = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    if (!text) return cp_error_set(err, CP_ENOMEM, "out of memory");
    cp_fp_mix_str(h, "config.json");
    cp_fp_mix_str(h, text);
    free(text);
    return CP_OK;
}

/* The Dense modules' folders (modules.json), else 1_Dense: their weights and config. */
static cp_status hash_dense(const char *dir, uint64_t *h, cp_error *err)
{
    char path[4096], sub[4200];
    snprintf(path, sizeof path, "%s/modules.json", dir);
    cJSON *mods = NULL;
    cp_status st = cp_read_json_file(path, &mods, err);
    if (st == CP_ENOTFOUND) {
        cp_error_clear(err);
        st = CP_OK;
    }
    bool any = false;
    const cJSON *m;
    cJSON_ArrayForEach(m, mods)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "path");
        if (st || !cJSON_IsString(type) || !strstr(type->valuestring, "Dense") ||
            !cJSON_IsString(p) || !p->valuestring[0] || strstr(p->valuestring, ".."))
            continue;
        any = true;
        snprintf(sub, sizeof sub, "%s/%s", dir, p->valuestring);
        cp_fp_mix_str(h, p->valuestring);
        st = cp_fp_mix_files_with_suffix(h, sub, ".safetensors", err);
        if (!st) st = cp_fp_mix_file(h, sub, "config.json", NULL, err);
    }
    cJSON_Delete(mods);
    if (!st && !any) {
        snprintf(sub, sizeof sub, "%s/1_Dense", dir);
        st = cp_fp_mix_files_with_suffix(h, sub, ".safetensors", err);
        if (!st) st = cp_fp_mix_file(h, sub, "config.json", NULL, err);
    }
    return st;
}

/* Everything that changes the vectors (fingerprint.c): the transformer's config, the
 * ColBERT settings as resolved, the tokenizer files, the weights and the head. */
static cp_status hash_model(const char *dir, const bert_impl *b, uint64_t *h, int *truncate_dim,
                            cp_error *err)
{
    static const char *const tokenizer_files[] = {"tokenizer.json",
                                                  "vocab.txt",
                                                  "tokenizer_config.json",
                                                  "special_tokens_map.json",
                                                  "added_tokens.json",
                                                  "merges.txt",
                                                  "vocab.json",
                                                  "sentencepiece.bpe.model",
                                                  "spiece.model"};
    *h = 0x636f6c706c616964ull; /* "colplaid" */
    cp_status st = hash_config(dir, h, truncate_dim, err);
    const cp_colbert_settings *c = &b->set;
    char buf[512];
    snprintf(buf, sizeof buf, "settings q%d d%d qm[%s] dm[%s] att%d mp%d dim%d", c->query_maxlen,
             c->doc_maxlen, c->query_marker, c->doc_marker, (int)c->attend_to_mask_tokens,
             (int)c->mask_punctuation, c->dim);
    cp_fp_mix_str(h, buf);
    cp_fp_mix_str(h, c->skiplist_json ? c->skiplist_json : "no skiplist");
    for (size_t i = 0; !st && i < sizeof tokenizer_files / sizeof tokenizer_files[0]; i++)
        st = cp_fp_mix_file(h, dir, tokenizer_files[i], NULL, err);
    if (!st) st = cp_fp_mix_files_with_suffix(h, dir, ".safetensors", err);
    if (!st) st = hash_dense(dir, h, err);
    return st;
}

static cp_status prepare_weights(cp_bert_model *m, int threads, cp_error *err)
{
    m->gemm_kind = cp_gemm_pick(&m->layers[0].ffn_in, threads);
    cp_status s = cp_linear_prepare(&m->proj, m->gemm_kind, err);
    for (int i = 0; i < m->cfg.layers && !s; i++) {
        cp_bert_layer *L = &m->layers[i];
        s = cp_linear_prepare(&L->qkv, m->gemm_kind, err);
        if (!s) s = cp_linear_prepare(&L->attn_out, m->gemm_kind, err);
        if (!s) s = cp_linear_prepare(&L->ffn_in, m->gemm_kind, err);
        if (!s) s = cp_linear_prepare(&L->ffn_out, m->gemm_kind, err);
    }
    return s;
}

static cp_status load_parts(const char *dir, int threads, bert_impl *b, cp_error *err)
{
    cp_bert_config cfg;
    cp_status s = cp_bert_read_config(dir, &cfg, err);
    if (s) return s;
    s = cp_colbert_read_settings(dir, &b->set, err);
    if (!s) s = cp_wordpiece_load(dir, &b->wp, err);
    if (s == CP_ENOTFOUND)
        return cp_error_set(err, CP_EFORMAT, "%s: no tokenizer (vocab.txt or tokenizer.json)",
                            dir);
    if (!s) s = cp_bert_model_load(dir, &cfg, b->set.dim, &b->model, err);
    if (s == CP_ENOTFOUND) s = CP_EFORMAT; /* a BERT checkpoint with a file missing */
    if (!s) s = prepare_weights(&b->model, threads, err);
    if (!s) s = resolve_tokens(b, err);
    if (!s) s = check_lengths(b, dir, err);
    return s;
}

cp_status cp_bert_encoder_load(const char *dir, const cp_encoder_options *opts, cp_encoder *enc,
                               cp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, F_OK) != 0)
        return cp_error_set(err, CP_ENOTFOUND, "%s: no config.json (not a BERT checkpoint)", dir);
    bert_impl *b = calloc(1, sizeof *b);
    if (!b) return cp_error_set(err, CP_ENOMEM, "out of memory");
    enc->backend = &bert_backend;
    enc->impl = b;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    enc->threads = opts && opts->threads > 0 ? opts->threads : (int)(cores > 0 ? cores : 1);
    cp_status s = load_parts(dir, enc->threads, b, err);
    if (s) {
        if (err && err->code == CP_ENOTFOUND) err->code = s;
        bert_free(enc);
        enc->backend = NULL;
        return s;
    }
    enc->dim = b->model.proj.out;
    enc->query_maxlen = b->set.query_maxlen;
    enc->doc_maxlen = b->set.doc_maxlen;
    enc->position_limit = b->model.cfg.max_pos - 3; /* [CLS] [D] ... [SEP] */
    enc->fingerprint = make_fingerprint(dir, b, enc->dim);
    if (!enc->fingerprint) {
        bert_free(enc);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    s = hash_model(dir, b, &enc->content_hash, &enc->config_dim, err);
    if (s) {
        bert_free(enc);
        enc->backend = NULL;
        return cp_error_prefix(err, "fingerprinting %s", dir);
    }
    return CP_OK;
}
