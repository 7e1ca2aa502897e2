/*
 * Test helper for bert_parity.py: load a BERT checkpoint with the bert backend, encode
 * every text of a JSON array as query and as document in one batch each, and write the
 * raw token ids and the embeddings as JSON, for comparison with the PyTorch reference.
 * Usage: bert_parity_dump MODEL_DIR TEXTS.json OUT.json [threads]
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"
#include "encoder_internal.h"

static cJSON *ids_json(const int32_t *ids, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static cJSON *emb_json(const cp_embeddings *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "ids", ids_json(e->token_ids, (size_t)e->n_tokens));
    cJSON *rows = cJSON_AddArrayToObject(o, "emb");
    for (int i = 0; i < e->n_tokens; i++) {
        cJSON *r = cJSON_CreateArray();
        for (int j = 0; j < e->dim; j++)
            cJSON_AddItemToArray(r, cJSON_CreateNumber(e->data[(size_t)i * e->dim + j]));
        cJSON_AddItemToArray(rows, r);
    }
    return o;
}

static int fail(const char *what, const cp_error *err)
{
    fprintf(stderr, "bert_parity_dump: %s: %s\n", what, err->message);
    return 1;
}

static int dump(cp_encoder *enc, const char **texts, size_t n, FILE *out)
{
    cp_error err = {0};
    cp_embeddings *q = calloc(n ? n : 1, sizeof *q), *d = calloc(n ? n : 1, sizeof *d);
    /* (error exits leak: this helper ends right after) */
    if (enc->backend->encode(enc, CP_TEXT_QUERY, texts, n, q, &err)) return fail("queries", &err);
    if (enc->backend->encode(enc, CP_TEXT_DOCUMENT, texts, n, d, &err))
        return fail("documents", &err);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        int32_t *ids;
        size_t n_ids;
        if (enc->backend->tokenize(enc, CP_TEXT_DOCUMENT, true, texts[i], &ids, &n_ids, &err))
            return fail("tokenize", &err);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "raw", ids_json(ids, n_ids));
        cJSON_AddItemToObject(o, "query", emb_json(&q[i]));
        cJSON_AddItemToObject(o, "doc", emb_json(&d[i]));
        cJSON_AddItemToArray(arr, o);
        free(ids);
        free(q[i].data), free(q[i].token_ids), free(d[i].data), free(d[i].token_ids);
    }
    char *s = cJSON_PrintUnformatted(arr);
    fputs(s, out);
    free(s);
    cJSON_Delete(arr);
    free(q);
    free(d);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR TEXTS.json OUT.json [threads]\n", argv[0]);
        return 2;
    }
    cp_error err = {0};
    cJSON *texts_json;
    if (cp_read_json_file(argv[2], &texts_json, &err)) return fail(argv[2], &err);
    size_t n = (size_t)cJSON_GetArraySize(texts_json);
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    for (size_t i = 0; i < n; i++) texts[i] = cJSON_GetArrayItem(texts_json, (int)i)->valuestring;
    cp_encoder_options opts = {.threads = argc > 4 ? atoi(argv[4]) : 1};
    cp_encoder enc = {0};
    if (cp_bert_encoder_load(argv[1], &opts, &enc, &err)) {
        free(texts);
        cJSON_Delete(texts_json);
        return fail(argv[1], &err);
    }
    /* the model is the first member of the backend's state */
    fprintf(stderr, "bert_parity_dump: kernel %s, %d thread(s)\n",
            cp_gemm_name(((const cp_bert_model *)enc.impl)->gemm_kind), enc.threads);
    FILE *out = fopen(argv[3], "w");
    int rc = out ? dump(&enc, texts, n, out) : 1;
    if (out) fclose(out);
    enc.backend->free(&enc);
    free(enc.fingerprint);
    free(texts);
    cJSON_Delete(texts_json);
    return rc;
}
