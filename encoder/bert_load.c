/*
 * BERT weights from safetensors, in either checkpoint layout:
 * - Stanford ColBERT: model.safetensors with `bert.*` tensors and `linear.weight`;
 * - sentence-transformers / PyLate: the transformer at the root (tensor names with or
 *   without `bert.`), the projection in `<Dense module>/model.safetensors`, the module
 *   path given by modules.json.
 * Known variants are tolerated: legacy LayerNorm.gamma/beta, position_ids buffers, extra
 * cls.* (pre-training head) tensors, which are simply not read. Every tensor's shape is
 * checked against config.json; f16/bf16 are widened to f32 once, here.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"
#include "safetensors.h"

typedef struct loader {
    const cp_safetensors *st;
    const char *file; /* for messages */
    cp_error *err;
} loader;

/* name under the prefixes and legacy spellings checkpoints use. */
static const cp_st_tensor *lookup(const loader *ld, const char *name)
{
    static const char *const prefixes[] = {"bert.", "", "model.", "0.auto_model."};
    char buf[512], legacy[512];
    snprintf(legacy, sizeof legacy, "%s", name);
    size_t n = strlen(legacy);
    if (n > 16 && strcmp(legacy + n - 16, "LayerNorm.weight") == 0)
        strcpy(legacy + n - 6, "gamma");
    else if (n > 14 && strcmp(legacy + n - 14, "LayerNorm.bias") == 0)
        strcpy(legacy + n - 4, "beta");
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", prefixes[i], name);
        const cp_st_tensor *t = cp_safetensors_find(ld->st, buf);
        if (!t && strcmp(legacy, name) != 0) {
            snprintf(buf, sizeof buf, "%s%s", prefixes[i], legacy);
            t = cp_safetensors_find(ld->st, buf);
        }
        if (t) return t;
    }
    return NULL;
}

/* Copy tensor `name` of shape [rows, cols] (cols 0: a vector of rows) as f32 into dst. */
static cp_status load_into(const loader *ld, const char *name, int rows, int cols, float *dst)
{
    const cp_st_tensor *t = lookup(ld, name);
    if (!t)
        return cp_error_set(ld->err, CP_EFORMAT, "%s: tensor \"%s\" is missing", ld->file, name);
    bool ok = cols ? (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols)
                   : (t->ndim == 1 && t->shape[0] == rows);
    if (!ok) {
        char got[128] = "";
        for (int i = 0; i < t->ndim && strlen(got) < 100; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        if (cols)
            return cp_error_set(ld->err, CP_EFORMAT,
                                "%s: tensor \"%s\" has shape [%s], config.json implies [%d, %d]",
                                ld->file, t->name, got, rows, cols);
        return cp_error_set(ld->err, CP_EFORMAT,
                            "%s: tensor \"%s\" has shape [%s], config.json implies [%d]",
                            ld->file, t->name, got, rows);
    }
    cp_status s = cp_st_tensor_to_f32(t, dst, ld->err);
    return s ? cp_error_prefix(ld->err, "%s", ld->file) : CP_OK;
}

static cp_status load_new(const loader *ld, const char *name, int rows, int cols, float **out)
{
    *out = malloc((size_t)rows * (size_t)(cols ? cols : 1) * sizeof(float));
    if (!*out) return cp_error_set(ld->err, CP_ENOMEM, "out of memory loading %s", name);
    return load_into(ld, name, rows, cols, *out);
}

static cp_status load_linear(const loader *ld, const char *base, int out, int in, cp_linear *l)
{
    char w[256], b[256];
    snprintf(w, sizeof w, "%s.weight", base);
    snprintf(b, sizeof b, "%s.bias", base);
    l->in = in;
    l->out = out;
    cp_status s = load_new(ld, w, out, in, &l->w);
    if (!s) s = load_new(ld, b, out, 0, &l->bias);
    return s;
}

/* query, key and value fused into one [3H x H] product. */
static cp_status load_qkv(const loader *ld, int i, int h, cp_linear *l)
{
    static const char *const parts[3] = {"query", "key", "value"};
    l->in = h;
    l->out = 3 * h;
    l->w = malloc((size_t)3 * h * h * sizeof(float));
    l->bias = malloc((size_t)3 * h * sizeof(float));
    if (!l->w || !l->bias) return cp_error_set(ld->err, CP_ENOMEM, "out of memory");
    for (int p = 0; p < 3; p++) {
        char name[256];
        snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", i, parts[p]);
        cp_status s = load_into(ld, name, h, h, l->w + (size_t)p * h * h);
        if (s) return s;
        snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", i, parts[p]);
        s = load_into(ld, name, h, 0, l->bias + (size_t)p * h);
        if (s) return s;
    }
    return CP_OK;
}

static cp_status load_layer(const loader *ld, const cp_bert_config *c, int i, cp_bert_layer *L)
{
    char base[128], name[192];
    snprintf(base, sizeof base, "encoder.layer.%d", i);
    cp_status s = load_qkv(ld, i, c->hidden, &L->qkv);
    snprintf(name, sizeof name, "%s.attention.output.dense", base);
    if (!s) s = load_linear(ld, name, c->hidden, c->hidden, &L->attn_out);
    snprintf(name, sizeof name, "%s.attention.output.LayerNorm.weight", base);
    if (!s) s = load_new(ld, name, c->hidden, 0, &L->ln1_g);
    snprintf(name, sizeof name, "%s.attention.output.LayerNorm.bias", base);
    if (!s) s = load_new(ld, name, c->hidden, 0, &L->ln1_b);
    snprintf(name, sizeof name, "%s.intermediate.dense", base);
    if (!s) s = load_linear(ld, name, c->intermediate, c->hidden, &L->ffn_in);
    snprintf(name, sizeof name, "%s.output.dense", base);
    if (!s) s = load_linear(ld, name, c->hidden, c->intermediate, &L->ffn_out);
    snprintf(name, sizeof name, "%s.output.LayerNorm.weight", base);
    if (!s) s = load_new(ld, name, c->hidden, 0, &L->ln2_g);
    snprintf(name, sizeof name, "%s.output.LayerNorm.bias", base);
    if (!s) s = load_new(ld, name, c->hidden, 0, &L->ln2_b);
    return s;
}

static cp_status load_transformer(const loader *ld, cp_bert_model *m)
{
    const cp_bert_config *c = &m->cfg;
    cp_status s = load_new(ld, "embeddings.word_embeddings.weight", c->vocab_size, c->hidden,
                           &m->word_emb);
    if (!s)
        s = load_new(ld, "embeddings.position_embeddings.weight", c->max_pos, c->hidden,
                     &m->pos_emb);
    if (!s)
        s = load_new(ld, "embeddings.token_type_embeddings.weight", c->type_vocab, c->hidden,
                     &m->type_emb);
    if (!s) s = load_new(ld, "embeddings.LayerNorm.weight", c->hidden, 0, &m->emb_ln_g);
    if (!s) s = load_new(ld, "embeddings.LayerNorm.bias", c->hidden, 0, &m->emb_ln_b);
    if (s) return s;
    m->layers = calloc((size_t)c->layers, sizeof *m->layers);
    if (!m->layers) return cp_error_set(ld->err, CP_ENOMEM, "out of memory");
    for (int i = 0; i < c->layers && !s; i++) s = load_layer(ld, c, i, &m->layers[i]);
    return s;
}

/* The projection [dim x hidden], no bias (a bias, if a checkpoint has one, is used). */
static cp_status load_projection(const loader *ld, int hidden, int want_dim, cp_linear *l)
{
    const cp_st_tensor *t = lookup(ld, "linear.weight");
    if (!t)
        return cp_error_set(ld->err, CP_EFORMAT,
                            "%s: the ColBERT projection \"linear.weight\" is missing", ld->file);
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > 65536 || t->shape[1] != hidden)
        return cp_error_set(ld->err, CP_EFORMAT,
                            "%s: \"linear.weight\" must be [dim, %d] (hidden_size)", ld->file,
                            hidden);
    int dim = (int)t->shape[0];
    if (want_dim && dim != want_dim)
        return cp_error_set(ld->err, CP_EFORMAT,
                            "%s: \"linear.weight\" projects to %d dimensions but the ColBERT "
                            "settings say dim %d", ld->file, dim, want_dim);
    l->in = hidden;
    l->out = dim;
    cp_status s = load_new(ld, "linear.weight", dim, hidden, &l->w);
    if (!s && lookup(ld, "linear.bias")) s = load_new(ld, "linear.bias", dim, 0, &l->bias);
    return s;
}

/* The Dense module's folder from modules.json ("1_Dense" when unnamed). */
static cp_status dense_path(const char *dir, char *out, size_t cap, cp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/modules.json", dir);
    cJSON *mods;
    cp_status s = cp_read_json_file(path, &mods, err);
    if (s) return s;
    snprintf(out, cap, "%s/1_Dense", dir);
    const cJSON *m;
    cJSON_ArrayForEach(m, mods)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "path");
        if (cJSON_IsString(type) && strstr(type->valuestring, "Dense") && cJSON_IsString(p) &&
            p->valuestring[0] && !strstr(p->valuestring, "..")) {
            snprintf(out, cap, "%s/%s", dir, p->valuestring);
            break;
        }
    }
    cJSON_Delete(mods);
    return CP_OK;
}

static cp_status load_pylate_projection(const char *dir, int hidden, int want_dim,
                                        cp_linear *l, cp_error *err)
{
    char ddir[4096], path[4200];
    cp_status s = dense_path(dir, ddir, sizeof ddir, err);
    if (s == CP_ENOTFOUND)
        return cp_error_set(err, CP_EFORMAT,
                            "%s: no \"linear.weight\" projection in model.safetensors and no "
                            "modules.json naming a Dense module", dir);
    if (s) return s;
    snprintf(path, sizeof path, "%s/model.safetensors", ddir);
    cp_safetensors *st;
    s = cp_safetensors_open(path, &st, err);
    if (s) return s;
    loader ld = {st, path, err};
    s = load_projection(&ld, hidden, want_dim, l);
    cp_safetensors_close(st);
    return s;
}

cp_status cp_bert_model_load(const char *dir, const cp_bert_config *cfg, int want_dim,
                             cp_bert_model *m, cp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    cp_safetensors *st;
    cp_status s = cp_safetensors_open(path, &st, err);
    if (s == CP_ENOTFOUND)
        return cp_error_set(err, CP_ENOTFOUND,
                            "%s: missing (only safetensors checkpoints are read; convert "
                            "pytorch_model.bin with safetensors' convert script)", path);
    if (s) return s;
    loader ld = {st, path, err};
    s = load_transformer(&ld, m);
    bool stanford = lookup(&ld, "linear.weight") != NULL;
    if (!s && stanford) s = load_projection(&ld, cfg->hidden, want_dim, &m->proj);
    cp_safetensors_close(st);
    if (!s && !stanford) s = load_pylate_projection(dir, cfg->hidden, want_dim, &m->proj, err);
    return s;
}

static void free_layer(cp_bert_layer *L)
{
    cp_linear_free(&L->qkv);
    cp_linear_free(&L->attn_out);
    cp_linear_free(&L->ffn_in);
    cp_linear_free(&L->ffn_out);
    free(L->ln1_g);
    free(L->ln1_b);
    free(L->ln2_g);
    free(L->ln2_b);
}

void cp_bert_model_free(cp_bert_model *m)
{
    if (!m) return;
    if (m->layers)
        for (int i = 0; i < m->cfg.layers; i++) free_layer(&m->layers[i]);
    free(m->layers);
    cp_linear_free(&m->proj);
    free(m->word_emb);
    free(m->pos_emb);
    free(m->type_emb);
    free(m->emb_ln_g);
    free(m->emb_ln_b);
    memset(m, 0, sizeof *m);
}
