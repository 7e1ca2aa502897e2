/*
 * Windows (encoder/window.c, colplaid/window.h) on a tiny static model whose doc_maxlen (its
 * position limit) is set to 6: the window checks at and past the limit; a document shorter
 * than, and exactly, one window (one window, the same rows as a plain encode); a long one
 * (full windows every stride tokens, the last ending at the end, rows tiled in order); late
 * chunking (a token shared by two windows gets the same vector in both, because each window
 * is mixed with its real neighbours); character spans that map back to the window's words
 * through multi-byte UTF-8; and empty, whitespace-only and unknown-word texts (one window
 * holding the "no known word" row).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colplaid/encoder.h"
#include "cp_test.h"

static char tmpdir[256];

static const char *glove_json =
    "{\"precision\": 8, \"l2NormIndex\": 4, \"wordIndex\": 5, \"size\": 8, \"dimensions\": 4,"
    " \"words\": [\"the\", \"cat\", \"cafe\", \"sat\", \"mat\", \"on\", \"a\", \"dog\"],"
    " \"vectors\": {"
    "\"the\": [1, 0, 0, 0, 1, 0], \"cat\": [0, 2, 0, 0, 2, 1], \"cafe\": [1, 1, 0, 0, 1.4, 2],"
    "\"sat\": [0, 0, 1.5, 0.1, 1.5, 3], \"mat\": [1, -1, 0.25, 0, 1.4, 4],"
    "\"on\": [0, 0, 0, 1, 1, 5], \"a\": [0.3, 0.2, 0.1, 0.9, 1, 6],"
    "\"dog\": [0.1, 0.8, 0.5, 0, 1, 7]},"
    " \"unkVector\": [0, 0, 0, 0, 0, -1]}";

static void write_text(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(content, f);
    fclose(f);
}

/* Code points [start, end) of s as a malloc'd byte string. */
static char *substr_chars(const char *s, int32_t start, int32_t end)
{
    size_t n = strlen(s), a = n, b = n;
    int32_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) continue;
        if (k == start && a == n) a = i;
        if (k == end) {
            b = i;
            break;
        }
        k++;
    }
    char *out = malloc(b - a + 1);
    memcpy(out, s + a, b - a);
    out[b - a] = '\0';
    return out;
}

static void check_tiling(const cp_embeddings *e, const cp_window *w, int32_t n)
{
    int32_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        CP_CHECK_INT(w[i].tok_start, at);
        CP_CHECK(w[i].tok_end >= w[i].tok_start);
        CP_CHECK(w[i].char_end >= w[i].char_start);
        at = w[i].tok_end;
    }
    CP_CHECK_INT(at, e->n_tokens);
}

static void test_limits(cp_encoder *enc)
{
    cp_error err;
    CP_CHECK_INT(cp_encoder_position_limit(enc), 6);
    cp_window_options w = {6, 6};
    CP_CHECK_OK(cp_encoder_check_window(enc, &w, &err), err);
    w = (cp_window_options){7, 4};
    CP_CHECK(cp_encoder_check_window(enc, &w, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "position limit") != NULL);
    w = (cp_window_options){4, 5};
    CP_CHECK(cp_encoder_check_window(enc, &w, &err) == CP_EINVAL);
    w = (cp_window_options){4, 0};
    CP_CHECK(cp_encoder_check_window(enc, &w, &err) == CP_EINVAL);
    cp_embeddings e;
    cp_window *win = NULL;
    int32_t nw = 0;
    w = (cp_window_options){0, 1};
    CP_CHECK(cp_encoder_encode_windows(enc, "the cat", &w, &e, &win, &nw, &err) == CP_EINVAL);
    CP_CHECK(win == NULL && nw == 0);
}

/* Short and exactly-one-window documents: one window over all the text, rows as a plain
 * encode gives them. */
static void test_one_window(cp_encoder *enc)
{
    const char *texts[] = {"the cat sat", "the cat sat on a mat"}; /* 3 and 6 = window words */
    for (int t = 0; t < 2; t++) {
        cp_window_options w = {6, 4};
        cp_embeddings e, plain;
        cp_window *win = NULL;
        int32_t nw = 0;
        cp_error err;
        CP_CHECK_OK(cp_encoder_encode_windows(enc, texts[t], &w, &e, &win, &nw, &err), err);
        CP_CHECK_OK(cp_encoder_encode(enc, CP_TEXT_DOCUMENT, &texts[t], 1, &plain, &err), err);
        CP_CHECK_INT(nw, 1);
        CP_CHECK_INT(e.n_tokens, plain.n_tokens);
        if (nw == 1) {
            CP_CHECK_INT(win[0].char_start, 0);
            CP_CHECK_INT(win[0].char_end, (int)strlen(texts[t]));
        }
        if (e.n_tokens == plain.n_tokens)
            for (int i = 0; i < e.n_tokens * e.dim; i++)
                if (fabsf(e.data[i] - plain.data[i]) > 1e-6f) {
                    CP_CHECK(!"windowed rows differ from a plain encode");
                    break;
                }
        cp_embeddings_free(&e);
        cp_embeddings_free(&plain);
        free(win);
    }
}

/* 11 known words (with multi-byte accents, punctuation and an unknown word), windows of 4
 * every 3: starts 0, 3, 6 and the last at 7 (ends at the end). */
static void test_long(cp_encoder *enc)
{
    const char *text = "Thé  cat\tsat ön, the mät zzz\nwith? a dog. Café sat\n\n the  cat";
    /* known words: the cat sat on the mat a dog cafe sat the cat  = 12 */
    cp_window_options w = {4, 3};
    cp_embeddings e;
    cp_window *win = NULL;
    int32_t nw = 0;
    cp_error err;
    CP_CHECK_OK(cp_encoder_encode_windows(enc, text, &w, &e, &win, &nw, &err), err);
    /* 12 units: windows at 0, 3, 6, then the last at 8 (8 + 4 = 12) */
    CP_CHECK_INT(nw, 4);
    CP_CHECK_INT(e.n_tokens, 16);
    if (nw != 4 || e.n_tokens != 16) return;
    check_tiling(&e, win, nw);
    for (int32_t i = 0; i < nw; i++)
        CP_CHECK_INT(win[i].tok_end - win[i].tok_start, 4);
    /* Each window's characters hold exactly its tokens. */
    const char *want[4] = {"Thé  cat\tsat ön,", "ön, the mät zzz\nwith? a", "a dog. Café sat",
                           "Café sat\n\n the  cat"};
    for (int32_t i = 0; i < nw; i++) {
        char *span = substr_chars(text, win[i].char_start, win[i].char_end);
        if (strcmp(span, want[i])) {
            fprintf(stderr, "window %d: characters %d..%d are \"%s\", expected \"%s\"\n", (int)i,
                    (int)win[i].char_start, (int)win[i].char_end, span, want[i]);
            cp_test_failures++;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        CP_CHECK_OK(cp_encoder_tokenize(enc, CP_TEXT_DOCUMENT, false, span, &ids, &n, &err), err);
        CP_CHECK_INT((int)n, 4);
        for (size_t k = 0; k < n && n == 4; k++)
            CP_CHECK_INT(ids[k], e.token_ids[win[i].tok_start + (int32_t)k]);
        free(ids);
        free(span);
    }
    /* Late chunking: unit 3 ("on") is window 0's last row and window 1's first; with its
     * real neighbours on both sides it has the same vector in both. */
    const float *a = e.data + 3 * e.dim, *b = e.data + 4 * e.dim;
    for (int d = 0; d < e.dim; d++)
        CP_CHECK_NEAR(a[d], b[d], 1e-6);
    /* ...and that vector is the whole text's (mixing of "sat on the"), not the window's
     * alone: a plain encode of "sat on" (no right neighbour) differs. */
    const char *alone = "sat on";
    cp_embeddings p;
    CP_CHECK_OK(cp_encoder_encode(enc, CP_TEXT_DOCUMENT, &alone, 1, &p, &err), err);
    double diff = 0;
    for (int d = 0; d < e.dim && p.n_tokens == 2; d++)
        diff += fabs(p.data[e.dim + d] - a[d]);
    CP_CHECK(diff > 1e-3);
    cp_embeddings_free(&p);
    cp_embeddings_free(&e);
    free(win);

    /* Windows at the position limit, stride 1: every row of a window is a known word. */
    w = (cp_window_options){6, 1};
    CP_CHECK_OK(cp_encoder_encode_windows(enc, text, &w, &e, &win, &nw, &err), err);
    CP_CHECK_INT(nw, 7); /* starts 0..6 */
    CP_CHECK_INT(e.n_tokens, 42);
    if (nw == 7) check_tiling(&e, win, nw);
    cp_embeddings_free(&e);
    free(win);
}

static void test_empty(cp_encoder *enc)
{
    const char *texts[] = {"", "  \n\t ", "zzz qqq, !", "ééé ü"};
    int chars[] = {0, 5, 10, 5};
    for (int t = 0; t < 4; t++) {
        cp_window_options w = {4, 2};
        cp_embeddings e;
        cp_window *win = NULL;
        int32_t nw = 0;
        cp_error err;
        CP_CHECK_OK(cp_encoder_encode_windows(enc, texts[t], &w, &e, &win, &nw, &err), err);
        CP_CHECK_INT(nw, 1);
        CP_CHECK_INT(e.n_tokens, 1); /* the "no known word" row */
        if (nw == 1) {
            CP_CHECK_INT(win[0].tok_start, 0);
            CP_CHECK_INT(win[0].tok_end, 1);
            CP_CHECK_INT(win[0].char_start, 0);
            CP_CHECK_INT(win[0].char_end, chars[t]);
        }
        cp_embeddings_free(&e);
        free(win);
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cp_test_windows_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char json[512], model[512], cfg[600], cmd[700];
    snprintf(json, sizeof json, "%s/glove.json", tmpdir);
    snprintf(model, sizeof model, "%s/model", tmpdir);
    write_text(json, glove_json);
    cp_error err;
    CP_CHECK_OK(cp_static_model_convert(json, model, 0, &err), err);
    /* doc_maxlen 6: the position limit of windows */
    snprintf(cfg, sizeof cfg, "%s/colplaid-static.json", model);
    snprintf(cmd, sizeof cmd, "sed -i 's/\"doc_maxlen\": *[0-9]*/\"doc_maxlen\": 6/' '%s'", cfg);
    CP_CHECK(system(cmd) == 0);
    cp_encoder *enc = NULL;
    CP_CHECK_OK(cp_encoder_load(model, NULL, &enc, &err), err);
    if (enc) {
        test_limits(enc);
        test_one_window(enc);
        test_long(enc);
        test_empty(enc);
        cp_encoder_free(enc);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", tmpdir);
    return CP_TEST_RESULT();
}
