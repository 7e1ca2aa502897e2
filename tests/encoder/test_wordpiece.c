/*
 * WordPiece unit tests: known BERT-uncased ids, the [UNK] and 100-character rules, literal
 * special tokens, invalid UTF-8 (which JavaScript cannot carry, so the parity test cannot
 * cover it), tokenizer.json loading, the skiplist, and bad tokenizer files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cp_test.h"
#include "colplaid/tokenizer.h"

static char tmpdir[256];

static void write_file(const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(content, f);
    fclose(f);
}

/* Ids of text[0..len) as a space-separated string (static buffer). */
static const char *ids_of(const cp_wordpiece *wp, const char *text, size_t len)
{
    static char buf[4096];
    int32_t *ids = NULL;
    size_t n = 0;
    cp_error err;
    if (cp_wordpiece_encode_n(wp, text, len, &ids, &n, &err) != CP_OK) return "ERROR";
    size_t p = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && p < sizeof buf - 16; i++)
        p += (size_t)snprintf(buf + p, sizeof buf - p, i ? " %d" : "%d", (int)ids[i]);
    free(ids);
    return buf;
}

#define CHECK_IDS(wp, text, want)                                                           \
    do {                                                                                    \
        const char *got_ = ids_of(wp, text, sizeof(text) - 1);                              \
        if (strcmp(got_, want)) {                                                           \
            fprintf(stderr, "%s:%d: ids of %s: expected \"%s\", got \"%s\"\n", __FILE__,     \
                    __LINE__, #text, want, got_);                                           \
            cp_test_failures++;                                                             \
        }                                                                                   \
    } while (0)

/* A toy vocabulary: enough to check segmentation rules exactly. */
static const char *toy_vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\nhello\n"
                               "world\n,\n!\n.\n-\n##s\na\n##a\ncafe\n[unused0]\n[unused1]\n";
/*                              0     1     2     3     4      5  6     7      8
 *                              9     10 11 12 13 14   15 16   17   18        19 */

static void test_toy(void)
{
    cp_error err;
    cp_wordpiece *wp;
    char path[512];
    write_file("vocab.txt", toy_vocab);
    snprintf(path, sizeof path, "%s/vocab.txt", tmpdir);
    CP_CHECK_OK(cp_wordpiece_load(path, &wp, &err), err);
    if (!wp) return;
    CP_CHECK_INT(cp_wordpiece_vocab_size(wp), 20);
    CHECK_IDS(wp, "unaffable", "5 6 7");
    CHECK_IDS(wp, "UnAffable, Hello-World!", "5 6 7 10 8 13 9 11");
    CHECK_IDS(wp, "unaffablex", "1");        /* an unmatched tail makes the word [UNK] */
    CHECK_IDS(wp, "Café  \t cafe\n", "17 17"); /* accents stripped, whitespace collapsed */
    CHECK_IDS(wp, "hello[MASK]world", "8 4 9"); /* special tokens split out first */
    CHECK_IDS(wp, "[mask]", "1 1 1");          /* case-sensitive: "[" "mask" "]", all unknown */
    CHECK_IDS(wp, "", "");
    CHECK_IDS(wp, " \t\r\n ", "");
    /* 100 characters are one word; 101 become [UNK]. */
    char word[128];
    memset(word, 'a', sizeof word);
    CP_CHECK(!strcmp(ids_of(wp, word, 100), "15 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 "
                                             "16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 "
                                             "16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 "
                                             "16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 "
                                             "16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 "
                                             "16 16 16 16 16"));
    CP_CHECK(!strcmp(ids_of(wp, word, 101), "1"));
    /* Invalid UTF-8: each maximal invalid subsequence is U+FFFD, which cleaning drops. */
    CHECK_IDS(wp, "hel\xFFlo", "8");
    CHECK_IDS(wp, "hel\xEF\xBF\xBDlo", "8");            /* a literal U+FFFD: same */
    CHECK_IDS(wp, "hel\xC0\xAFlo", "8");                /* overlong '/' */
    CHECK_IDS(wp, "hel\xED\xA0\x80lo", "8");            /* UTF-16 surrogate */
    CHECK_IDS(wp, "hel\xE2\x82lo", "8");                /* truncated 3-byte sequence */
    CHECK_IDS(wp, "hello \xF0\x9F\x98", "8");           /* truncated at the end */
    CHECK_IDS(wp, "hel\xF5\x80\x80\x80lo", "8");        /* beyond U+10FFFF */
    CHECK_IDS(wp, "hel\0lo", "8");                      /* NUL inside */
    CHECK_IDS(wp, "hello\x01\x7fworld", "1");           /* controls removed: "helloworld" */
    const cp_wordpiece_specials *sp = cp_wordpiece_special_ids(wp);
    CP_CHECK_INT(sp->cls, 2);
    CP_CHECK_INT(sp->sep, 3);
    CP_CHECK_INT(sp->pad, 0);
    CP_CHECK_INT(sp->mask, 4);
    CP_CHECK_INT(sp->unk, 1);
    CP_CHECK_INT(sp->unused0, 18);
    CP_CHECK_INT(sp->unused1, 19);
    const int32_t *skip;
    size_t n_skip;
    cp_wordpiece_skiplist(wp, &skip, &n_skip);
    CP_CHECK_INT(n_skip, 4); /* , ! . - */
    CP_CHECK(cp_wordpiece_is_skipped(wp, 10) && cp_wordpiece_is_skipped(wp, 13));
    CP_CHECK(!cp_wordpiece_is_skipped(wp, 8));
    CP_CHECK(!strcmp(cp_wordpiece_token(wp, 6), "##aff"));
    CP_CHECK(cp_wordpiece_token(wp, 20) == NULL && cp_wordpiece_token(wp, -1) == NULL);
    CP_CHECK_INT(cp_wordpiece_token_id(wp, "world"), 9);
    CP_CHECK_INT(cp_wordpiece_token_id(wp, "nope"), -1);
    cp_wordpiece_free(wp);
}

/* A string listed twice maps to its later id (as Hugging Face's vocab map does), and the
 * earlier id still decodes to it; a vocabulary large enough to grow the table on load. */
static void test_duplicates(void)
{
    enum { N_WORDS = 3000 };
    size_t cap = 64 + (size_t)N_WORDS * 16, len = 0;
    char *vocab = malloc(cap);
    if (!vocab) return;
    len += (size_t)snprintf(vocab + len, cap - len, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nfoo\n");
    for (int i = 0; i < N_WORDS; i++)
        len += (size_t)snprintf(vocab + len, cap - len, "w%d\n", i);
    snprintf(vocab + len, cap - len, "foo\n"); /* id 5 + N_WORDS + 1 */
    write_file("vocab.txt", vocab);
    free(vocab);
    cp_error err;
    cp_wordpiece *wp = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.txt", tmpdir);
    CP_CHECK_OK(cp_wordpiece_load(path, &wp, &err), err);
    if (!wp) return;
    CP_CHECK_INT(cp_wordpiece_token_id(wp, "foo"), 5 + N_WORDS + 1);
    CP_CHECK(!strcmp(cp_wordpiece_token(wp, 5), "foo"));
    CP_CHECK_INT(cp_wordpiece_token_id(wp, "w0"), 6);
    CP_CHECK_INT(cp_wordpiece_token_id(wp, "w2999"), 6 + N_WORDS - 1);
    CHECK_IDS(wp, "w17 foo", "23 3006");
    CP_CHECK_INT(cp_wordpiece_token_id(wp, "w3000"), -1);
    cp_wordpiece_free(wp);
}

/* tokenizer.json: a cased normaliser, a normalized added token, lstrip/rstrip. */
static void test_tokenizer_json(void)
{
    write_file("tokenizer.json",
               "{\"added_tokens\": ["
               "{\"id\": 0, \"content\": \"[PAD]\", \"special\": true, \"normalized\": false},"
               "{\"id\": 1, \"content\": \"[UNK]\", \"special\": true},"
               "{\"id\": 4, \"content\": \"[MASK]\", \"special\": true, \"lstrip\": true},"
               "{\"id\": 7, \"content\": \"zz\", \"special\": false, \"normalized\": true}],"
               "\"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true,"
               " \"handle_chinese_chars\": true, \"strip_accents\": null, \"lowercase\": false},"
               "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
               "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\","
               " \"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": 100,"
               " \"vocab\": {\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"[MASK]\": 4,"
               " \"Hello\": 5, \"hello\": 6, \"Café\": 8, \"##zz\": 9}}}");
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", tmpdir);
    cp_error err;
    cp_wordpiece *wp = NULL;
    CP_CHECK_OK(cp_wordpiece_load(path, &wp, &err), err);
    if (!wp) return;
    CHECK_IDS(wp, "Hello hello HELLO", "5 6 1"); /* cased: no lowercasing */
    CHECK_IDS(wp, "Café", "8");                  /* strip_accents null follows lowercase */
    CHECK_IDS(wp, "hellozz", "6 7");             /* normalized added token found after norm */
    CHECK_IDS(wp, "Hello   [MASK]", "5 4");      /* lstrip eats the spaces before */
    CP_CHECK(!strcmp(cp_wordpiece_token(wp, 7), "zz")); /* added token outside model.vocab */
    cp_wordpiece_free(wp);
    /* The directory form prefers tokenizer.json. */
    CP_CHECK_OK(cp_wordpiece_load(tmpdir, &wp, &err), err);
    if (wp) CHECK_IDS(wp, "Hello", "5");
    cp_wordpiece_free(wp);
}

static void test_bad_files(void)
{
    char path[512];
    cp_error err;
    cp_wordpiece *wp = NULL;
    snprintf(path, sizeof path, "%s/missing.txt", tmpdir);
    CP_CHECK(cp_wordpiece_load(path, &wp, &err) == CP_ENOTFOUND);
    CP_CHECK(strstr(err.message, "missing.txt") != NULL);
    write_file("nounk.txt", "a\nb\n");
    snprintf(path, sizeof path, "%s/nounk.txt", tmpdir);
    CP_CHECK(cp_wordpiece_load(path, &wp, &err) == CP_EFORMAT);
    write_file("bad.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}");
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    CP_CHECK(cp_wordpiece_load(path, &wp, &err) == CP_EUNSUPPORTED);
    CP_CHECK(strstr(err.message, "BPE") != NULL);
    write_file("trunc.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0,");
    snprintf(path, sizeof path, "%s/trunc.json", tmpdir);
    CP_CHECK(cp_wordpiece_load(path, &wp, &err) == CP_EFORMAT);
    write_file("neg.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": -5}}}");
    snprintf(path, sizeof path, "%s/neg.json", tmpdir);
    CP_CHECK(cp_wordpiece_load(path, &wp, &err) == CP_EFORMAT);
}

/* The real bert-base-uncased vocabulary: a few ids everyone knows. */
static void test_bert_base(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/bert-base-uncased-vocab.txt", cp_test_data());
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "the fixture %s is missing (tests/data)\n", path);
        cp_test_failures++;
        return;
    }
    cp_error err;
    cp_wordpiece *wp = NULL;
    CP_CHECK_OK(cp_wordpiece_load(path, &wp, &err), err);
    if (!wp) return;
    CHECK_IDS(wp, "Hello, world!", "7592 1010 2088 999");
    CHECK_IDS(wp, "the [MASK] sat", "1996 103 2938");
    const cp_wordpiece_specials *sp = cp_wordpiece_special_ids(wp);
    CP_CHECK_INT(sp->cls, 101);
    CP_CHECK_INT(sp->unused0, 1);
    CP_CHECK_INT(sp->unused1, 2);
    const int32_t *skip;
    size_t n;
    cp_wordpiece_skiplist(wp, &skip, &n);
    CP_CHECK_INT(n, 32);
    CP_CHECK(cp_wordpiece_is_skipped(wp, 1012) && cp_wordpiece_is_skipped(wp, 1010)); /* . , */
    cp_wordpiece_free(wp);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cp_test_wordpiece_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_toy();
    test_duplicates();
    test_tokenizer_json();
    test_bad_files();
    test_bert_base();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", tmpdir);
    return CP_TEST_RESULT();
}
