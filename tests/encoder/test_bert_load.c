/*
 * BERT checkpoint recognition and settings, without weights: a directory that is not a
 * checkpoint is CP_ENOTFOUND (so the dispatcher tries other model kinds), unsupported
 * architectures are refused by name with the precomputed-embeddings advice, broken
 * config.json files get clear errors, and the ColBERT settings are read from Stanford and
 * PyLate files with PLAID.md defaults otherwise. Weight-level damage is in bert_badinput.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bert_internal.h"
#include "cp_test.h"
#include "encoder_internal.h"

static char dir[64];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void drop(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    remove(path);
}

/* Loading must fail with code and a message containing each of the words. */
static void expect_load(cp_status code, const char *w1, const char *w2)
{
    cp_encoder enc = {0};
    cp_encoder_options opts = {.threads = 1};
    cp_error err = {0};
    cp_status s = cp_bert_encoder_load(dir, &opts, &enc, &err);
    CP_CHECK_INT(s, code);
    if ((w1 && !strstr(err.message, w1)) || (w2 && !strstr(err.message, w2))) {
        fprintf(stderr, "message \"%s\" lacks \"%s\" / \"%s\"\n", err.message, w1,
                w2 ? w2 : "");
        cp_test_failures++;
    }
    CP_CHECK(enc.impl == NULL);
}

static const char *CONFIG =
    "{\"model_type\":\"bert\",\"hidden_size\":64,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"intermediate_size\":128,\"vocab_size\":100,"
    "\"max_position_embeddings\":128,\"hidden_act\":\"gelu\"}";

static void test_recognition(void)
{
    expect_load(CP_ENOTFOUND, "config.json", NULL); /* empty directory */
    put("config.json", "{\"model_type\":\"modernbert\",\"hidden_size\":768}");
    expect_load(CP_EUNSUPPORTED, "modernbert", "precomputed");
    put("config.json", "{\"model_type\":\"xlm-roberta\"}");
    expect_load(CP_EUNSUPPORTED, "xlm-roberta", "precomputed");
    put("config.json", "{\"architectures\":[\"ModernBertModel\"]}");
    expect_load(CP_EUNSUPPORTED, "ModernBertModel", NULL);
    put("config.json", "{\"model_type\":\"bert\",");
    expect_load(CP_EFORMAT, "config.json", "JSON");
    put("config.json", "{\"model_type\":\"bert\",\"hidden_size\":64}");
    expect_load(CP_EFORMAT, "num_hidden_layers", "missing");
    put("config.json",
        "{\"model_type\":\"bert\",\"hidden_size\":65,\"num_hidden_layers\":2,"
        "\"num_attention_heads\":4,\"intermediate_size\":128,\"vocab_size\":100}");
    expect_load(CP_EFORMAT, "multiple", NULL);
    put("config.json",
        "{\"model_type\":\"bert\",\"hidden_size\":64,\"num_hidden_layers\":-1,"
        "\"num_attention_heads\":4,\"intermediate_size\":128,\"vocab_size\":100}");
    expect_load(CP_EFORMAT, "num_hidden_layers", NULL);
    put("config.json",
        "{\"model_type\":\"bert\",\"hidden_size\":64,\"num_hidden_layers\":2,\"hidden_act\":"
        "\"relu\",\"num_attention_heads\":4,\"intermediate_size\":128,\"vocab_size\":100}");
    expect_load(CP_EUNSUPPORTED, "relu", NULL);
    put("config.json", CONFIG);
    expect_load(CP_EFORMAT, "tokenizer", NULL); /* no vocab.txt */
    put("vocab.txt", "[PAD]\n[unused0]\n[unused1]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\n");
    expect_load(CP_EFORMAT, "model.safetensors", "missing");
    put("model.safetensors", "garbage");
    expect_load(CP_EFORMAT, "model.safetensors", NULL);
}

static void test_settings(void)
{
    cp_colbert_settings s;
    cp_error err = {0};
    CP_CHECK_OK(cp_colbert_read_settings(dir, &s, &err), err);
    CP_CHECK(s.query_maxlen == 32 && s.doc_maxlen == 220 && !s.attend_to_mask_tokens);
    CP_CHECK(s.mask_punctuation && strcmp(s.query_marker, "[unused0]") == 0);
    CP_CHECK(strcmp(s.source, "defaults") == 0);
    put("artifact.metadata", "{\"query_maxlen\":40,\"doc_maxlen\":300,\"dim\":96,"
                             "\"attend_to_mask_tokens\":true,\"query_token_id\":\"[Q]\"}");
    CP_CHECK_OK(cp_colbert_read_settings(dir, &s, &err), err);
    CP_CHECK(s.query_maxlen == 40 && s.doc_maxlen == 300 && s.dim == 96);
    CP_CHECK(s.attend_to_mask_tokens && strcmp(s.query_marker, "[Q]") == 0);
    drop("artifact.metadata");
    put("config_sentence_transformers.json",
        "{\"query_prefix\":\"[unused0] \",\"document_prefix\":\"[D]\",\"query_length\":24,"
        "\"document_length\":100,\"attend_to_expansion_tokens\":true,"
        "\"skiplist_words\":[\"!\",\".\"]}");
    CP_CHECK_OK(cp_colbert_read_settings(dir, &s, &err), err);
    CP_CHECK(s.query_maxlen == 24 && s.doc_maxlen == 100 && s.attend_to_mask_tokens);
    CP_CHECK(strcmp(s.query_marker, "[unused0]") == 0 && strcmp(s.doc_marker, "[D]") == 0);
    CP_CHECK(s.skiplist_json && strstr(s.skiplist_json, "\"!\""));
    free(s.skiplist_json);
    put("config_sentence_transformers.json", "{\"query_length\":2}");
    CP_CHECK_INT(cp_colbert_read_settings(dir, &s, &err), CP_EFORMAT);
    CP_CHECK(strstr(err.message, "query_length") != NULL);
    free(s.skiplist_json);
    put("config_sentence_transformers.json", "{oops");
    CP_CHECK_INT(cp_colbert_read_settings(dir, &s, &err), CP_EFORMAT);
    free(s.skiplist_json);
    drop("config_sentence_transformers.json");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/cp_bert_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_settings();
    test_recognition();
    drop("config.json"), drop("vocab.txt"), drop("model.safetensors");
    rmdir(dir);
    return CP_TEST_RESULT();
}
