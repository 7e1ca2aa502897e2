/*
 * cp_text_source_open (cli/text_source.c) over a small JSONL corpus with a static model
 * converted here: ids, "title text" joining, need_embeddings = false, rewinding, and the
 * same embeddings whether documents are encoded alone, in dense parallel batches, or with
 * one thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "cp_test.h"

static char tmpdir[256];

static void write_file(const char *name, const char *content)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) exit(1);
    fputs(content, f);
    fclose(f);
}

#define N_DOCS 300

/* One pass; need(i) says whether document i needs embeddings. Copies row 0 of each. */
static void pass(cp_doc_source *src, bool (*need)(int), float *first_rows, int dim)
{
    cp_error err;
    CP_CHECK_OK(src->rewind(src->ctx, &err), err);
    for (int i = 0; i <= N_DOCS; i++) {
        cp_document doc;
        bool has = false;
        cp_status st = src->next(src->ctx, need(i), &doc, &has, &err);
        CP_CHECK_OK(st, err);
        if (st != CP_OK) return;
        if (i == N_DOCS) {
            CP_CHECK(!has);
            return;
        }
        CP_CHECK(has);
        char id[32];
        snprintf(id, sizeof id, "d%d", i);
        CP_CHECK(has && !strcmp(doc.id, id));
        if (i == 0) CP_CHECK(!strcmp(doc.text, "The Cat the cat sat")); /* title joined */
        if (need(i)) {
            CP_CHECK(doc.embeddings != NULL && doc.n_tokens >= 1);
            if (doc.embeddings) memcpy(first_rows + (size_t)i * dim, doc.embeddings, (size_t)dim * sizeof(float));
        } else if (!doc.embeddings) {
            CP_CHECK_INT(doc.n_tokens, -1);
        }
    }
}

static bool all(int i) { (void)i; return true; }
static bool sparse(int i) { return i % 7 == 3; }

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cp_test_text_source_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    write_file("g.json", "{\"size\": 3, \"dimensions\": 3, \"vectors\": {\"the\": [1, 0, 0, 1, 0],"
                         " \"cat\": [0, 1, 0, 1, 1], \"sat\": [0, 1, 1, 1.4, 2]}}");
    size_t cap = 128 * N_DOCS, p = 0; /* every line is under 128 bytes */
    char *corpus = malloc(cap);
    if (!corpus) return 1;
    static const char *texts[] = {"the cat sat", "sat", "cat the", "sat sat cat the"};
    for (int i = 0; i < N_DOCS; i++)
        p += (size_t)snprintf(corpus + p, cap - p,
                              i == 0 ? "{\"_id\": \"d%d\", \"title\": \"The Cat\", \"text\": \"%s\"}\n"
                                     : "{\"_id\": \"d%d\", \"text\": \"%s\"}\n",
                              i, texts[i % 4]);
    write_file("corpus.jsonl", corpus);
    free(corpus);
    char path[1024], model[1024];
    snprintf(path, sizeof path, "%s/g.json", tmpdir);
    snprintf(model, sizeof model, "%s/model", tmpdir);
    cp_error err;
    CP_CHECK_OK(cp_static_model_convert(path, model, 0, &err), err);
    cp_encoder *enc = NULL;
    CP_CHECK_OK(cp_encoder_load(model, NULL, &enc, &err), err);
    if (!enc) return CP_TEST_RESULT();
    int dim = cp_encoder_dim(enc);
    float *a = calloc((size_t)N_DOCS * dim, sizeof *a), *b = calloc((size_t)N_DOCS * dim, sizeof *b),
          *c = calloc((size_t)N_DOCS * dim, sizeof *c);
    snprintf(path, sizeof path, "%s/corpus.jsonl", tmpdir);
    cp_doc_source s4, s1;
    CP_CHECK_OK(cp_text_source_open(path, enc, 4, &s4, &err), err);
    CP_CHECK_OK(cp_text_source_open(path, enc, 1, &s1, &err), err);
    CP_CHECK_INT(s4.count(s4.ctx), -1);
    CP_CHECK_INT(s4.dim(s4.ctx), dim);
    pass(&s4, sparse, a, dim); /* lone requests */
    pass(&s4, all, b, dim);    /* dense: parallel batches */
    pass(&s1, all, c, dim);    /* one thread */
    for (int i = 0; i < N_DOCS; i++)
        if (sparse(i)) CP_CHECK(!memcmp(a + (size_t)i * dim, b + (size_t)i * dim, (size_t)dim * sizeof(float)));
    CP_CHECK(!memcmp(b, c, (size_t)N_DOCS * dim * sizeof(float)));
    s4.close(s4.ctx);
    s1.close(s1.ctx);
    /* a missing corpus is an error naming it */
    snprintf(path, sizeof path, "%s/none.jsonl", tmpdir);
    cp_doc_source bad;
    CP_CHECK(cp_text_source_open(path, enc, 2, &bad, &err) != CP_OK);
    CP_CHECK(strstr(err.message, "none.jsonl") != NULL);
    free(a);
    free(b);
    free(c);
    cp_encoder_free(enc);
    snprintf(path, sizeof path, "rm -rf '%s'", tmpdir);
    if (system(path) != 0) fprintf(stderr, "note: could not remove %s\n", tmpdir);
    return CP_TEST_RESULT();
}
