/*
 * BERT checkpoint settings: the transformer's shape from config.json, and the ColBERT
 * settings from the checkpoint's own files (Stanford `artifact.metadata`, PyLate
 * `config_sentence_transformers.json`), with PLAID.md section 2 defaults otherwise.
 * docs/encoder.md lists which key comes from where.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"

cp_status cp_read_json_file(const char *path, cJSON **out, cp_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cp_error_set(err, errno == ENOENT ? CP_ENOTFOUND : CP_EIO, "%s: %s", path,
                            strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 > cap) {
            cap = cap * 2 + 65536;
            char *nb = cap <= (64u << 20) ? realloc(buf, cap) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                return cp_error_set(err, CP_EFORMAT, "%s: too large for a settings file", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    cJSON *j = bad ? NULL : cJSON_ParseWithLength(buf, len);
    free(buf);
    if (bad) return cp_error_set(err, CP_EIO, "%s: read error", path);
    if (!j) return cp_error_set(err, CP_EFORMAT, "%s: not valid JSON", path);
    *out = j;
    return CP_OK;
}

/* An integer field in [lo, hi]; absent -> *v unchanged when optional. */
static cp_status get_int(const cJSON *o, const char *key, bool required, int lo, int hi, int *v,
                         const char *file, cp_error *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        if (!required) return CP_OK;
        return cp_error_set(err, CP_EFORMAT, "%s: \"%s\" is missing", file, key);
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != (double)(int)j->valuedouble ||
        j->valuedouble < lo || j->valuedouble > hi)
        return cp_error_set(err, CP_EFORMAT, "%s: \"%s\" must be an integer in [%d, %d]", file,
                            key, lo, hi);
    *v = (int)j->valuedouble;
    return CP_OK;
}

static void get_bool(const cJSON *o, const char *key, bool *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(j)) *v = cJSON_IsTrue(j);
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* model_type is what Hugging Face dispatches on; architectures is the fallback. */
static cp_status check_architecture(const cJSON *c, const char *file, cp_error *err)
{
    const char *type = get_str(c, "model_type");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(c, "architectures");
    const char *arch0 = cJSON_IsArray(arch) && cJSON_IsString(cJSON_GetArrayItem(arch, 0))
                            ? cJSON_GetArrayItem(arch, 0)->valuestring
                            : NULL;
    if (type ? strcmp(type, "bert") == 0 : (arch0 && strncmp(arch0, "Bert", 4) == 0))
        return CP_OK;
    return cp_error_set(err, CP_EUNSUPPORTED,
                        "%s: model architecture \"%s\" is not supported by the built-in encoder "
                        "(only BERT is); encode with the model's own Python stack and send "
                        "precomputed token embeddings instead",
                        file, type ? type : arch0 ? arch0 : "(none given)");
}

static cp_status check_activation(const cJSON *c, cp_bert_config *cfg, const char *file,
                                  cp_error *err)
{
    const char *act = get_str(c, "hidden_act");
    cfg->gelu_tanh = false;
    if (!act || strcmp(act, "gelu") == 0) return CP_OK;
    if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0) {
        cfg->gelu_tanh = true;
        return CP_OK;
    }
    return cp_error_set(err, CP_EUNSUPPORTED, "%s: hidden_act \"%.40s\" is not supported (gelu)",
                        file, act);
}

static cp_status read_shape(const cJSON *c, cp_bert_config *cfg, const char *file, cp_error *err)
{
    cp_status s = get_int(c, "hidden_size", true, 1, 16384, &cfg->hidden, file, err);
    if (!s) s = get_int(c, "num_hidden_layers", true, 1, 256, &cfg->layers, file, err);
    if (!s) s = get_int(c, "num_attention_heads", true, 1, 1024, &cfg->heads, file, err);
    if (!s) s = get_int(c, "intermediate_size", true, 1, 1 << 18, &cfg->intermediate, file, err);
    if (!s) s = get_int(c, "vocab_size", true, 1, 1 << 24, &cfg->vocab_size, file, err);
    cfg->max_pos = 512;
    cfg->type_vocab = 2;
    if (!s) s = get_int(c, "max_position_embeddings", false, 1, 1 << 20, &cfg->max_pos, file, err);
    if (!s) s = get_int(c, "type_vocab_size", false, 1, 1024, &cfg->type_vocab, file, err);
    if (s) return s;
    if (cfg->hidden % cfg->heads)
        return cp_error_set(err, CP_EFORMAT, "%s: hidden_size %d is not a multiple of "
                            "num_attention_heads %d", file, cfg->hidden, cfg->heads);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(c, "layer_norm_eps");
    cfg->ln_eps = 1e-12f;
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1))
            return cp_error_set(err, CP_EFORMAT, "%s: layer_norm_eps must be in (0, 1)", file);
        cfg->ln_eps = (float)eps->valuedouble;
    }
    const char *pos = get_str(c, "position_embedding_type");
    if (pos && strcmp(pos, "absolute") != 0)
        return cp_error_set(err, CP_EUNSUPPORTED,
                            "%s: position_embedding_type \"%.40s\" is not supported (absolute)",
                            file, pos);
    return CP_OK;
}

cp_status cp_bert_read_config(const char *dir, cp_bert_config *cfg, cp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *c;
    cp_status s = cp_read_json_file(path, &c, err);
    if (s) return s;
    if (!cJSON_IsObject(c)) s = cp_error_set(err, CP_EFORMAT, "%s: not a JSON object", path);
    if (!s) s = check_architecture(c, path, err);
    if (!s) s = check_activation(c, cfg, path, err);
    if (!s) s = read_shape(c, cfg, path, err);
    cJSON_Delete(c);
    return s;
}

static void set_marker(char *dst, const char *src)
{
    /* PyLate writes prefixes with a trailing space ("[unused0] "); the token is the word. */
    size_t n = strlen(src);
    while (n && src[n - 1] == ' ') n--;
    if (n >= CP_BERT_MARKER_MAX) n = CP_BERT_MARKER_MAX - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void note_source(cp_colbert_settings *s, const char *file)
{
    size_t len = strlen(s->source);
    snprintf(s->source + len, sizeof s->source - len, "%s%s", len ? "," : "", file);
}

/* Stanford ColBERT: artifact.metadata is the ColBERTConfig as JSON. */
static cp_status read_stanford(const char *dir, cp_colbert_settings *s, cp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/artifact.metadata", dir);
    cJSON *c;
    cp_status st = cp_read_json_file(path, &c, err);
    if (st == CP_ENOTFOUND) return CP_OK;
    if (st) return st;
    st = get_int(c, "query_maxlen", false, 3, 4096, &s->query_maxlen, path, err);
    if (!st) st = get_int(c, "doc_maxlen", false, 3, 1 << 16, &s->doc_maxlen, path, err);
    if (!st) st = get_int(c, "dim", false, 1, 1 << 16, &s->dim, path, err);
    get_bool(c, "attend_to_mask_tokens", &s->attend_to_mask_tokens);
    get_bool(c, "mask_punctuation", &s->mask_punctuation);
    if (get_str(c, "query_token_id")) set_marker(s->query_marker, get_str(c, "query_token_id"));
    if (get_str(c, "doc_token_id")) set_marker(s->doc_marker, get_str(c, "doc_token_id"));
    note_source(s, "artifact.metadata");
    cJSON_Delete(c);
    return st;
}

/* PyLate: config_sentence_transformers.json holds the ColBERT settings. */
static cp_status read_pylate(const char *dir, cp_colbert_settings *s, cp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config_sentence_transformers.json", dir);
    cJSON *c;
    cp_status st = cp_read_json_file(path, &c, err);
    if (st == CP_ENOTFOUND) return CP_OK;
    if (st) return st;
    st = get_int(c, "query_length", false, 3, 4096, &s->query_maxlen, path, err);
    if (!st) st = get_int(c, "document_length", false, 3, 1 << 16, &s->doc_maxlen, path, err);
    get_bool(c, "attend_to_expansion_tokens", &s->attend_to_mask_tokens);
    if (get_str(c, "query_prefix")) set_marker(s->query_marker, get_str(c, "query_prefix"));
    if (get_str(c, "document_prefix")) set_marker(s->doc_marker, get_str(c, "document_prefix"));
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(c, "skiplist_words");
    if (!st && cJSON_IsArray(skip)) {
        s->skiplist_json = cJSON_PrintUnformatted(skip);
        if (!s->skiplist_json) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    note_source(s, "config_sentence_transformers.json");
    cJSON_Delete(c);
    return st;
}

cp_status cp_colbert_read_settings(const char *dir, cp_colbert_settings *s, cp_error *err)
{
    memset(s, 0, sizeof *s);
    s->query_maxlen = 32;
    s->doc_maxlen = 220; /* Stanford ColBERTConfig default (PLAID.md 2) */
    strcpy(s->query_marker, "[unused0]");
    strcpy(s->doc_marker, "[unused1]");
    s->attend_to_mask_tokens = false;
    s->mask_punctuation = true;
    cp_status st = read_stanford(dir, s, err);
    if (!st) st = read_pylate(dir, s, err);
    if (!s->source[0]) note_source(s, "defaults");
    return st;
}
