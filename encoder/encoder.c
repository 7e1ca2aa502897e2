/*
 * Encoder dispatch: the public API of colplaid/encoder.h over the backends of
 * encoder_internal.h. cp_encoder_load asks each backend loader in turn whether the
 * directory is a model of its kind (CP_ENOTFOUND means "not mine"); the first that
 * recognises it loads it. Everything else forwards to the backend's vtable.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "encoder_internal.h"

void cp_encoder_options_init(cp_encoder_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->threads = 0;
}

/* After the backend: the legacy fingerprint kept aside, the dims chosen (opts->dim, else
 * the model config's truncate_dim, else the head's), the version 2 fingerprint built. */
static cp_status finish_load(cp_encoder *enc, const cp_encoder_options *opts, cp_error *err)
{
    enc->legacy_fingerprint = enc->fingerprint;
    enc->fingerprint = NULL;
    int dim = opts->dim > 0 ? opts->dim : enc->config_dim > 0 ? enc->config_dim : enc->dim;
    cp_status st = cp_encoder_set_dim(enc, dim, err);
    if (st != CP_OK && opts->dim <= 0)
        cp_error_prefix(err, "the model config's truncate_dim %d", enc->config_dim);
    return st;
}

typedef cp_status (*backend_loader)(const char *dir, const cp_encoder_options *opts,
                                    cp_encoder *enc, cp_error *err);

cp_status cp_encoder_load(const char *model_dir, const cp_encoder_options *opts,
                          cp_encoder **out, cp_error *err)
{
    struct stat sb;
    if (!model_dir || stat(model_dir, &sb) != 0)
        return cp_error_set(err, CP_ENOTFOUND, "model %s does not exist",
                            model_dir ? model_dir : "(none)");
    if (!S_ISDIR(sb.st_mode))
        return cp_error_set(err, CP_EINVAL, "model %s is not a directory", model_dir);
    cp_encoder_options defaults;
    if (!opts) {
        cp_encoder_options_init(&defaults);
        opts = &defaults;
    }
    static const backend_loader loaders[] = {cp_static_encoder_load, cp_bert_encoder_load};
    for (size_t i = 0; i < sizeof loaders / sizeof loaders[0]; i++) {
        cp_encoder *enc = calloc(1, sizeof *enc);
        if (!enc) return cp_error_set(err, CP_ENOMEM, "out of memory loading a model");
        enc->threads = opts->threads;
        enc->centroid_scale = 1;
        cp_status st = loaders[i](model_dir, opts, enc, err);
        if (st == CP_OK) {
            st = finish_load(enc, opts, err);
            if (st != CP_OK) {
                cp_encoder_free(enc);
                return st;
            }
            *out = enc;
            return CP_OK;
        }
        free(enc->fingerprint);
        free(enc);
        if (st != CP_ENOTFOUND) return st;
    }
    return cp_error_set(err, CP_EFORMAT,
                        "%s is not a model directory: expected either a static model "
                        "(colplaid-static.json, made by 'colplaid model convert') or a "
                        "Hugging Face BERT checkpoint (config.json, model.safetensors, and "
                        "vocab.txt or tokenizer.json)",
                        model_dir);
}

void cp_encoder_free(cp_encoder *enc)
{
    if (!enc) return;
    if (enc->backend && enc->backend->free) enc->backend->free(enc);
    free(enc->fingerprint);
    free(enc->legacy_fingerprint);
    free(enc);
}

int cp_encoder_dim(const cp_encoder *enc)
{
    return cp_encoder_out_dim(enc);
}
int cp_encoder_model_dim(const cp_encoder *enc)
{
    return enc->dim;
}
int cp_encoder_centroid_scale(const cp_encoder *enc)
{
    return enc->centroid_scale;
}
int cp_encoder_query_maxlen(const cp_encoder *enc) { return enc->query_maxlen; }
int cp_encoder_doc_maxlen(const cp_encoder *enc) { return enc->doc_maxlen; }
const char *cp_encoder_fingerprint(const cp_encoder *enc)
{
    return enc->fingerprint ? enc->fingerprint : "{}";
}

void cp_embeddings_free(cp_embeddings *emb)
{
    if (!emb) return;
    free(emb->data);
    free(emb->token_ids);
    emb->data = NULL;
    emb->token_ids = NULL;
    emb->n_tokens = 0;
}

cp_status cp_encoder_encode(cp_encoder *enc, cp_text_kind kind, const char *const *texts,
                            size_t n, cp_embeddings *out, cp_error *err)
{
    if (kind != CP_TEXT_QUERY && kind != CP_TEXT_DOCUMENT)
        return cp_error_set(err, CP_EINVAL, "unknown text kind %d", (int)kind);
    for (size_t i = 0; i < n; i++)
        if (!texts[i]) return cp_error_set(err, CP_EINVAL, "text %zu is NULL", i);
    if (n == 0) return CP_OK;
    memset(out, 0, n * sizeof *out);
    cp_status st = enc->backend->encode(enc, kind, texts, n, out, err);
    for (size_t i = 0; st == CP_OK && i < n; i++)
        cp_embeddings_truncate(&out[i], cp_encoder_out_dim(enc));
    return st;
}

cp_status cp_encoder_tokenize(cp_encoder *enc, cp_text_kind kind, bool raw, const char *text,
                              int32_t **ids, size_t *n_ids, cp_error *err)
{
    if (!text) return cp_error_set(err, CP_EINVAL, "no text to tokenize");
    if (kind != CP_TEXT_QUERY && kind != CP_TEXT_DOCUMENT)
        return cp_error_set(err, CP_EINVAL, "unknown text kind %d", (int)kind);
    return enc->backend->tokenize(enc, kind, raw, text, ids, n_ids, err);
}

const char *cp_encoder_token_text(const cp_encoder *enc, int32_t id)
{
    return enc->backend->token_text(enc, id);
}
