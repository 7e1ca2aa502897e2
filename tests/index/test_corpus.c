/*
 * Corpus reader: JSONL (id/_id, title, metadata), TSV (with and without header), a BEIR
 * folder, a line far longer than any fixed buffer, rewinding, and malformed lines whose
 * error names the file and line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "colplaid/corpus.h"
#include "cp_test.h"

static char dir[256];

static const char *write_file(const char *name, const char *content)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    FILE *f = fopen(buf, "wb");
    fputs(content, f);
    fclose(f);
    return buf;
}

static void test_jsonl(void)
{
    const char *p =
        write_file("c.jsonl", "{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"hello\", "
                              "\"metadata\": {\"year\": 2020}}\n"
                              "\n"
                              "{\"id\": 7, \"text\": \"x\", \"title\": \"\"}\r\n");
    cp_corpus *c;
    cp_error err = {0};
    CP_CHECK_OK(cp_corpus_open(p, &c, &err), err);
    if (err.code) return;
    for (int pass = 0; pass < 2; pass++) {
        cp_corpus_record r;
        bool has;
        CP_CHECK_OK(cp_corpus_next(c, &r, &has, &err), err);
        CP_CHECK(has && !strcmp(r.id, "d1") && !strcmp(r.title, "T") && !strcmp(r.text, "hello"));
        CP_CHECK(r.metadata_json && !strcmp(r.metadata_json, "{\"year\":2020}"));
        CP_CHECK_INT(r.line, 1);
        CP_CHECK_OK(cp_corpus_next(c, &r, &has, &err), err);
        CP_CHECK(has && !strcmp(r.id, "7") && r.title == NULL && !strcmp(r.text, "x") &&
                 r.metadata_json == NULL);
        CP_CHECK_INT(r.line, 3);
        CP_CHECK_OK(cp_corpus_next(c, &r, &has, &err), err);
        CP_CHECK(!has);
        CP_CHECK_OK(cp_corpus_rewind(c, &err), err);
    }
    cp_corpus_close(c);
}

static void expect_bad_line(const char *name, const char *content, const char *needle)
{
    const char *p = write_file(name, content);
    cp_corpus *c;
    cp_error err = {0};
    CP_CHECK_OK(cp_corpus_open(p, &c, &err), err);
    if (err.code) return;
    cp_corpus_record r;
    bool has = true;
    cp_status st = CP_OK;
    while (st == CP_OK && has)
        st = cp_corpus_next(c, &r, &has, &err);
    CP_CHECK(st != CP_OK);
    if (!strstr(err.message, name) || !strstr(err.message, needle)) {
        fprintf(stderr, "  %s: message \"%s\" lacks the file or \"%s\"\n", name, err.message,
                needle);
        cp_test_failures++;
    }
    cp_corpus_close(c);
}

static void test_malformed(void)
{
    expect_bad_line("bad1.jsonl",
                    "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": }\n",
                    "line 2: invalid JSON");
    expect_bad_line("bad2.jsonl", "{\"_id\": \"a\", \"text\": \"x\"}\n\n{\"text\": \"x\"}\n",
                    "line 3: field \"_id\" or \"id\" is missing");
    expect_bad_line("bad3.jsonl", "{\"_id\": \"a\"}\n", "line 1: field \"text\" is missing");
    expect_bad_line("bad4.jsonl", "{\"_id\": \"a\", \"text\": \"x\", \"metadata\": [1]}\n",
                    "line 1: field \"metadata\" is not an object");
    expect_bad_line("bad5.jsonl", "[1, 2]\n", "line 1: expected a JSON object");
    expect_bad_line("bad6.jsonl", "{\"_id\": \"\", \"text\": \"x\"}\n",
                    "line 1: the document id is empty");
    expect_bad_line("bad7.tsv", "a\tb\nno tab here\n", "line 2: expected id<TAB>text");
    expect_bad_line("bad8.tsv", "a\tb\tc\td\n", "line 1: too many columns");
    /* The HTTP write routes' rules (issue 12, defect 14): no blank text, ids <= 1024 bytes. */
    expect_bad_line("bad9.jsonl", "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \" \\t\"}\n",
                    "line 2: the document has no text");
    expect_bad_line("bad10.tsv", "a\t\n", "line 1: the document has no text");
    char *long_id = malloc(100100);
    if (long_id) {
        int n = snprintf(long_id, 100100, "{\"_id\": \"");
        memset(long_id + n, 'i', 100000);
        snprintf(long_id + n + 100000, 100100 - (size_t)n - 100000, "\", \"text\": \"x\"}\n");
        expect_bad_line("bad11.jsonl", long_id, "line 1: the document id is longer than 1024");
        free(long_id);
    }
    /* a title-only record is still a document */
    {
        cp_corpus *t;
        cp_error e2 = {0};
        CP_CHECK_OK(cp_corpus_open(write_file("title.jsonl", "{\"_id\": \"a\", \"title\": \"T\", \"text\": \"\"}\n"), &t, &e2), e2);
        cp_corpus_record r;
        bool has = false;
        CP_CHECK_OK(cp_corpus_next(t, &r, &has, &e2), e2);
        CP_CHECK(has);
        cp_corpus_close(t);
    }
    cp_corpus *c;
    cp_error err = {0};
    CP_CHECK(cp_corpus_open(write_file("x.csv", "a,b\n"), &c, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "unknown corpus format") != NULL);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.jsonl", dir);
    CP_CHECK(cp_corpus_open(missing, &c, &err) == CP_ENOTFOUND);
}

static void test_tsv_and_beir(void)
{
    const char *p = write_file("c.tsv", "id\ttext\tt\nx1\tsome text\tA title\nx2\tmore\n");
    cp_corpus *c;
    cp_error err = {0};
    CP_CHECK_OK(cp_corpus_open(p, &c, &err), err);
    if (err.code) return;
    cp_corpus_record r;
    bool has;
    CP_CHECK_OK(cp_corpus_next(c, &r, &has, &err), err);
    CP_CHECK(has && !strcmp(r.id, "x1") && !strcmp(r.text, "some text") &&
             !strcmp(r.title, "A title"));
    CP_CHECK_OK(cp_corpus_next(c, &r, &has, &err), err);
    CP_CHECK(has && !strcmp(r.id, "x2") && r.title == NULL);
    CP_CHECK_INT(r.line, 3);
    cp_corpus_close(c);

    char beir[300];
    snprintf(beir, sizeof beir, "%s/beir", dir);
    mkdir(beir, 0755);
    /* one line longer than any fixed buffer would be */
    size_t n = 3 << 20;
    char *big = malloc(n + 64);
    strcpy(big, "{\"_id\": \"long\", \"text\": \"");
    size_t pos = strlen(big);
    memset(big + pos, 'a', n);
    strcpy(big + pos + n, "\"}\n");
    write_file("beir/corpus.jsonl", big);
    CP_CHECK_OK(cp_corpus_open(beir, &c, &err), err);
    if (err.code == CP_OK) {
        CP_CHECK(strstr(cp_corpus_path(c), "corpus.jsonl") != NULL);
        CP_CHECK_OK(cp_corpus_next(c, &r, &has, &err), err);
        CP_CHECK(has && !strcmp(r.id, "long") && strlen(r.text) == n);
        cp_corpus_close(c);
    }
    free(big);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/cp_test_corpus_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_jsonl();
    test_malformed();
    test_tsv_and_beir();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return CP_TEST_RESULT();
}
