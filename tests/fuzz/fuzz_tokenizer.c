/*
 * libFuzzer target for the BERT tokenizer (encoder/wordpiece.c, basic_tokenizer.c).
 * Input: first byte = basic-tokenizer option bits, the rest = text bytes (any, including
 * invalid UTF-8 and NUL). Runs the basic tokenizer with those options, then WordPiece with
 * two tokenizers written at start-up: a vocab.txt and a tokenizer.json whose added tokens
 * use every flag (normalized, lstrip, rstrip, single_word). Checks that every id is in range
 * and that every word the basic tokenizer emits is valid, non-empty UTF-8.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colplaid/tokenizer.h"
#include "wordpiece_internal.h"

static cp_wordpiece *wp_txt, *wp_json;

static const char *vocab_txt =
    "[PAD]\n[unused0]\n[unused1]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##s\nun\n##aff\n##able\n"
    "a\n##a\n,\n.\n!\n-\n'\n\xe4\xb8\xad\n\xe6\x96\x87\ncafe\n##\xc3\xa9\n\xc3\xa9\ni\n##\xcc\x87\n";

static const char *tokenizer_json =
    "{\"added_tokens\": ["
    "{\"id\": 0, \"content\": \"[PAD]\", \"special\": true},"
    "{\"id\": 3, \"content\": \"[UNK]\", \"special\": true},"
    "{\"id\": 6, \"content\": \"[MASK]\", \"special\": true, \"lstrip\": true, \"rstrip\": true},"
    "{\"id\": 9, \"content\": \"un\", \"special\": false, \"normalized\": true, \"single_word\": true},"
    "{\"id\": 12, \"content\": \"<x>\", \"special\": false, \"normalized\": false}],"
    "\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": false},"
    "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {"
    "\"[PAD]\": 0, \"[UNK]\": 3, \"[CLS]\": 4, \"[SEP]\": 5, \"[MASK]\": 6, \"The\": 7,"
    "\"##s\": 8, \"un\": 9, \"##aff\": 10, \"a\": 11, \"##a\": 13}}}";

static cp_wordpiece *load(const char *name, const char *content)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/cp_fuzz_tokenizer_%d_%s", (int)getpid(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fputs(content, f);
    fclose(f);
    cp_wordpiece *wp = NULL;
    cp_error err;
    if (cp_wordpiece_load(path, &wp, &err) != CP_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.message);
        abort();
    }
    unlink(path);
    return wp;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    wp_txt = load("vocab.txt", vocab_txt);
    wp_json = load("tokenizer.json", tokenizer_json);
    return 0;
}

static void check_words(const cp_words *w)
{
    for (size_t i = 0; i < w->n; i++) {
        const unsigned char *s = (const unsigned char *)w->buf + w->start[i];
        size_t len = w->len[i];
        if (len == 0 || s[len] != '\0') abort();
        for (size_t k = 0; k < len;) {
            int32_t c;
            k += cp_utf8_next(s, len, k, &c);
            if (c == 0xFFFD && w->punct[i]) abort(); /* cleaning left U+FFFD as punctuation */
        }
    }
}

static void run_wordpiece(const cp_wordpiece *wp, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    cp_error err;
    if (cp_wordpiece_encode_n(wp, text, len, &ids, &n, &err) != CP_OK) abort();
    int32_t size = cp_wordpiece_vocab_size(wp);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= size || !cp_wordpiece_token(wp, ids[i])) abort();
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    cp_basic_options o = {.clean_text = data[0] & 1, .handle_chinese_chars = data[0] & 2,
                          .strip_accents = data[0] & 4, .lowercase = data[0] & 8};
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    cp_words w;
    cp_words_init(&w);
    if (cp_basic_tokenize(&o, text, len, &w, NULL) != CP_OK) abort();
    check_words(&w);
    cp_words_free(&w);
    run_wordpiece(wp_txt, text, len);
    run_wordpiece(wp_json, text, len);
    return 0;
}
