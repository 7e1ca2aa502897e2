/*
 * Unit tests of the pure request layer: base64, the search / encode / rerank parsers (each
 * rejection's status and code), MaxSim, and the filter compiler run against an in-memory
 * `documents` table, including values and field names that try to inject SQL.
 */
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "colplaid/index.h"
#include "cp_test.h"
#include "filter.h"
#include "request.h"

static void test_base64(void)
{
    const char *cases[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
                              {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *enc = cp_base64_encode((const unsigned char *)cases[i][0], strlen(cases[i][0]));
        CP_CHECK(enc && !strcmp(enc, cases[i][1]));
        unsigned char *dec;
        size_t n;
        CP_CHECK(cp_base64_decode(cases[i][1], strlen(cases[i][1]), &dec, &n));
        CP_CHECK_INT(n, strlen(cases[i][0]));
        CP_CHECK(n == 0 || !memcmp(dec, cases[i][0], n));
        free(dec);
        free(enc);
    }
    unsigned char *dec;
    size_t n;
    CP_CHECK(!cp_base64_decode("Zm9", 3, &dec, &n));   /* length not a multiple of 4 */
    CP_CHECK(!cp_base64_decode("Zm9*", 4, &dec, &n));  /* outside the alphabet */
    CP_CHECK(!cp_base64_decode("Z=9v", 4, &dec, &n));  /* padding in the middle */
    CP_CHECK(!cp_base64_decode("====", 4, &dec, &n));
}

static void expect(const char *body, int dim, int status, const char *code)
{
    cp_limits lim;
    cp_limits_init(&lim);
    lim.max_k = 100;
    cp_search_request r;
    cp_http_error e = {0};
    bool ok = cp_parse_search(body, strlen(body), &lim, dim, &r, &e);
    if (status == 200) {
        CP_CHECK(ok);
        if (ok) cp_search_request_free(&r);
        else fprintf(stderr, "  body %s: %d %s %s\n", body, e.status, e.code, e.message);
        return;
    }
    CP_CHECK(!ok);
    if (ok) {
        cp_search_request_free(&r);
        return;
    }
    if (e.status != status || strcmp(e.code, code))
        fprintf(stderr, "  body %s: want %d %s, got %d %s (%s)\n", body, status, code, e.status,
                e.code, e.message);
    CP_CHECK_INT(e.status, status);
    CP_CHECK(!strcmp(e.code, code));
    CP_CHECK(e.message[0] != '\0');
}

static void test_search_parse(void)
{
    expect("{\"queries\": [{\"embeddings\": [[1, 0], [0, 1]]}], \"k\": 3}", 2, 200, "");
    expect("{\"queries\": [{\"embeddings_b64\": \"AACAPwAAAAA=\", \"shape\": [1, 2]}]}", 2, 200, "");
    expect("{\"queries\": [\"some text\"], \"include\": [\"text\"], \"mode\": \"exact\"}", 2, 200, "");
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"filter\": {\"a\": 1}, \"ids\": [\"x\"]}", 2,
           200, "");
    expect("{", 2, 400, "MALFORMED_JSON");
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"k\": 0}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"k\": 1000000000}", 2, 422, "LIMIT_EXCEEDED");
    expect("{\"queries\": [{\"embeddings\": [[1, 0, 0]]}]}", 2, 422, "DIMENSION_MISMATCH");
    expect("{\"queries\": [{\"embeddings\": [[1, 0], [1]]}]}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [{\"embeddings\": [[1e999, 0]]}]}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [{\"embeddings_b64\": \"AACAPwAAAA\", \"shape\": [1, 2]}]}", 2, 400,
           "INVALID_ARGUMENT");
    expect("{\"queries\": [{\"embeddings_b64\": \"AACAPw==\", \"shape\": [1, 2]}]}", 2, 400,
           "INVALID_ARGUMENT");
    expect("{\"queries\": [{\"embeddings_b64\": \"AADAfwAAAAA=\", \"shape\": [1, 2]}]}", 2, 400,
           "INVALID_ARGUMENT"); /* NaN */
    expect("{\"queries\": [{\"text\": \"a\", \"embeddings\": [[1, 0]]}]}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [\"\"]}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": []}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"filter\": 3}", 2, 400, "INVALID_FILTER");
    /* modes (docs/hybrid.md): lexical and hybrid need text queries; fusion only with hybrid */
    expect("{\"queries\": [\"a\"], \"mode\": \"hybrid\"}", 2, 200, "");
    expect("{\"queries\": [\"a\"], \"mode\": \"lexical\"}", 2, 200, "");
    expect("{\"queries\": [\"a\"], \"mode\": \"late\"}", 2, 200, "");
    expect("{\"queries\": [\"a\"], \"mode\": \"fuzzy\"}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"mode\": \"hybrid\"}", 2, 400,
           "INVALID_ARGUMENT");
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"mode\": \"lexical\"}", 2, 400,
           "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"mode\": \"hybrid\", \"fusion\": {\"method\": \"rrf\"}}", 2,
           200, "");
    expect("{\"queries\": [\"a\"], \"mode\": \"hybrid\", \"fusion\": {\"alpha\": 0.8, "
           "\"normalize\": \"minmax\", \"depth\": 50}}",
           2, 200, "");
    expect("{\"queries\": [\"a\"], \"mode\": \"hybrid\", \"fusion\": {\"alpha\": 1.5}}", 2, 400,
           "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"mode\": \"hybrid\", \"fusion\": {\"method\": \"rrf\", "
           "\"alpha\": 0.5}}",
           2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"mode\": \"hybrid\", \"fusion\": {\"weight\": 1}}", 2, 400,
           "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"fusion\": {\"method\": \"rrf\"}}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"params\": {\"nprobe\": 3}}", 2, 400, "INVALID_ARGUMENT");
    /* recall: a share in (0, 1] */
    expect("{\"queries\": [\"a\"], \"recall\": 0.99}", 2, 200, "");
    expect("{\"queries\": [\"a\"], \"recall\": 1}", 2, 200, "");
    expect("{\"queries\": [\"a\"], \"recall\": 0}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"recall\": -0.5}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"recall\": 1.01}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [\"a\"], \"recall\": \"high\"}", 2, 400, "INVALID_ARGUMENT");
    cp_limits lim;
    cp_limits_init(&lim);
    cp_search_request r;
    cp_http_error e = {0};
    const char *body = "{\"queries\": [\"a\"], \"recall\": 0.9}";
    CP_CHECK(cp_parse_search(body, strlen(body), &lim, 2, &r, &e));
    CP_CHECK_NEAR(r.recall, 0.9, 1e-6);
    cp_search_request_free(&r);
    body = "{\"queries\": [\"a\"]}";
    CP_CHECK(cp_parse_search(body, strlen(body), &lim, 2, &r, &e));
    CP_CHECK(r.recall == 0.0f); /* the engine's default target */
    CP_CHECK(r.mode == CP_MODE_LATE && !r.lex_texts);
    cp_search_request_free(&r);
    /* lexical: the text leaves the query (nothing to encode); hybrid: it is kept beside */
    body = "{\"queries\": [\"river valley\"], \"mode\": \"lexical\"}";
    CP_CHECK(cp_parse_search(body, strlen(body), &lim, 2, &r, &e));
    CP_CHECK(r.mode == CP_MODE_LEXICAL && r.lex_texts && !strcmp(r.lex_texts[0], "river valley"));
    CP_CHECK(r.queries[0].text == NULL);
    cp_search_request_free(&r);
    body = "{\"queries\": [\"river\"], \"mode\": \"hybrid\", \"fusion\": {\"alpha\": 0.25}}";
    CP_CHECK(cp_parse_search(body, strlen(body), &lim, 2, &r, &e));
    CP_CHECK(r.mode == CP_MODE_HYBRID && !strcmp(r.lex_texts[0], "river"));
    CP_CHECK(r.queries[0].text && !strcmp(r.queries[0].text, "river"));
    CP_CHECK(r.fusion.method == CP_FUSION_LINEAR && fabsf(r.fusion.alpha - 0.25f) < 1e-6f);
    cp_search_request_free(&r);
}

static void test_rerank_parse(void)
{
    cp_limits lim;
    cp_limits_init(&lim);
    cp_rerank_request r;
    cp_http_error e;
    const char *ok = "{\"query\": {\"embeddings\": [[1, 0]]}, \"documents\": "
                     "[{\"embeddings\": [[1, 0], [0, 1]]}, \"a text\"]}";
    CP_CHECK(cp_parse_rerank(ok, strlen(ok), &lim, &r, &e));
    CP_CHECK_INT(r.n_docs, 2);
    CP_CHECK(r.docs[1].text && !strcmp(r.docs[1].text, "a text"));
    CP_CHECK_NEAR(cp_maxsim(r.query.data, 1, r.docs[0].data, 2, 2), 1.0, 1e-6);
    cp_rerank_request_free(&r);
    const char *bad = "{\"query\": {\"embeddings\": [[1, 0]]}, \"documents\": [{\"embeddings\": [[1]]}]}";
    CP_CHECK(!cp_parse_rerank(bad, strlen(bad), &lim, &r, &e));
    CP_CHECK(!strcmp(e.code, "DIMENSION_MISMATCH"));
    /* There is no index behind /v1/rerank: the message must not blame one (issue 12, 14). */
    CP_CHECK(strstr(e.message, "index") == NULL);
    CP_CHECK(strstr(e.message, "has 2") != NULL);
}

/* ---- filters ---------------------------------------------------------------------------------- */

static sqlite3 *make_db(void)
{
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db,
                 "CREATE TABLE documents(doc_id INTEGER PRIMARY KEY, external_id TEXT NOT NULL, "
                 "text TEXT, metadata TEXT, n_tokens INTEGER NOT NULL, segment_id INTEGER NOT NULL, "
                 "deleted INTEGER NOT NULL DEFAULT 0);"
                 "INSERT INTO documents VALUES"
                 "(0, 'a', NULL, '{\"year\": 2019, \"lang\": \"en\", \"x\": {\"y\": true}}', 1, 0, 0),"
                 "(1, 'b', NULL, '{\"year\": 2021, \"lang\": \"fr\", \"it''s\": 1}', 1, 0, 0),"
                 "(2, 'c', NULL, '{\"year\": \"2021\", \"lang\": null}', 1, 0, 0),"
                 "(3, 'd', NULL, NULL, 1, 0, 0),"
                 "(4, 'e', NULL, 'not json', 1, 0, 0),"
                 "(5, 'f', NULL, '{\"year\": 2022, \"lang\": \"en\"}', 1, 0, 1);",
                 NULL, NULL, NULL);
    return db;
}

/* want: the expected ids as a string like "0,1" ("" for none); NULL: the filter is invalid. */
static void expect_filter(sqlite3 *db, const char *filter, const char *want)
{
    cp_filter_sql *f;
    cp_error err;
    cp_status st = cp_filter_compile(filter, strlen(filter), &f, &err);
    if (!want) {
        CP_CHECK(st == CP_EINVAL);
        if (st == CP_OK) {
            fprintf(stderr, "  filter %s compiled but should not\n", filter);
            cp_filter_sql_free(f);
        }
        return;
    }
    CP_CHECK(st == CP_OK);
    if (st) {
        fprintf(stderr, "  filter %s: %s\n", filter, err.message);
        return;
    }
    int64_t *ids;
    size_t n;
    st = cp_filter_run(f, db, &ids, &n, &err);
    CP_CHECK(st == CP_OK);
    char got[128] = "";
    for (size_t i = 0; st == CP_OK && i < n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "", (long long)ids[i]);
    if (strcmp(got, want)) fprintf(stderr, "  filter %s: got [%s], want [%s]\n", filter, got, want);
    CP_CHECK(!strcmp(got, want));
    free(ids);
    cp_filter_sql_free(f);
}

static void test_filters(void)
{
    sqlite3 *db = make_db();
    expect_filter(db, "{}", "0,1,2,3,4");
    expect_filter(db, "{\"year\": 2021}", "1");          /* type-strict: "2021" is a string */
    expect_filter(db, "{\"year\": \"2021\"}", "2");
    expect_filter(db, "{\"year\": {\"$gte\": 2020}}", "1"); /* deleted doc 5 never matches */
    expect_filter(db, "{\"lang\": {\"$in\": [\"en\", \"fr\"]}}", "0,1");
    expect_filter(db, "{\"lang\": {\"$nin\": [\"en\"]}}", "1,2,3,4");
    expect_filter(db, "{\"lang\": null}", "2");
    expect_filter(db, "{\"lang\": {\"$ne\": \"en\"}}", "1,2,3,4");
    expect_filter(db, "{\"year\": {\"$lte\": 2021, \"$gte\": 2021}}", "1");
    expect_filter(db, "{\"lang\": {\"$exists\": false}}", "3,4");
    expect_filter(db, "{\"x.y\": true}", "0");
    expect_filter(db, "{\"$or\": [{\"year\": 2019}, {\"lang\": \"fr\"}]}", "0,1");
    expect_filter(db, "{\"$not\": {\"lang\": \"en\"}}", "1,2,3,4");
    expect_filter(db, "{\"year\": {\"$gt\": 2018, \"$lt\": 2020}}", "0");
    expect_filter(db, "{\"missing\": 1}", "");
    expect_filter(db, "{\"it's\": 1}", "1");
    /* Injection attempts are data, not SQL. */
    expect_filter(db, "{\"lang\": \"en' OR 1=1 --\"}", "");
    expect_filter(db, "{\"a) OR 1=1 --\": 1}", "");
    expect_filter(db, "{\"lang\": {\"$regex\": \"e\"}}", NULL);
    expect_filter(db, "{\"$nor\": []}", NULL);
    expect_filter(db, "{\"$or\": []}", NULL);
    expect_filter(db, "{\"a\\\"b\": 1}", NULL);
    expect_filter(db, "{\"a..b\": 1}", NULL);
    expect_filter(db, "{\"year\": {\"$gt\": true}}", NULL);
    expect_filter(db, "{\"year\": [1, 2]}", NULL);
    expect_filter(db, "[]", NULL);
    expect_filter(db, "{", NULL);
    sqlite3_close(db);
}

/* Upsert / delete bodies: status 200 means accepted. */
static void expect_write(bool upsert, const char *body, int status, const char *code)
{
    cp_limits lim;
    cp_limits_init(&lim);
    lim.max_write_documents = 3;
    cp_http_error e = {0};
    bool ok;
    if (upsert) {
        cp_upsert_request r;
        ok = cp_parse_upsert(body, strlen(body), &lim, 2, &r, &e);
        if (ok) cp_upsert_request_free(&r);
    } else {
        cp_delete_request r;
        ok = cp_parse_delete(body, strlen(body), &lim, &r, &e);
        if (ok) cp_delete_request_free(&r);
    }
    if (status == 200) {
        CP_CHECK(ok);
        if (!ok) fprintf(stderr, "  refused %s: %s\n", body, e.message);
        return;
    }
    CP_CHECK(!ok);
    if (ok) {
        fprintf(stderr, "  accepted %s\n", body);
        return;
    }
    CP_CHECK_INT(e.status, status);
    CP_CHECK(!strcmp(e.code, code));
}

static void test_write_parse(void)
{
    cp_limits lim;
    cp_limits_init(&lim);
    cp_upsert_request r;
    cp_http_error e;
    const char *body = "{\"documents\": [{\"id\": \"a\", \"embeddings\": [[1, 0], [0, 1]], "
                       "\"metadata\": {\"y\": 1}}, {\"id\": \"b\", \"text\": \"hello\"}, "
                       "{\"id\": \"c\", \"text\": \"t\", \"embeddings_b64\": \"AACAPwAAAAA=\", "
                       "\"shape\": [1, 2]}]}";
    CP_CHECK(cp_parse_upsert(body, strlen(body), &lim, 2, &r, &e));
    CP_CHECK_INT(r.n_docs, 3);
    if (r.n_docs == 3) {
        CP_CHECK(!strcmp(r.docs[0].id, "a") && r.docs[0].emb.n_tokens == 2 && !r.docs[0].text);
        CP_CHECK(r.docs[0].metadata_json && !strcmp(r.docs[0].metadata_json, "{\"y\":1}"));
        CP_CHECK(!r.docs[1].emb.data && !strcmp(r.docs[1].text, "hello"));
        CP_CHECK(r.docs[2].emb.data && r.docs[2].emb.data[0] == 1.0f && !strcmp(r.docs[2].text, "t"));
        cp_upsert_request_free(&r);
    }
    expect_write(true, "{\"documents\": [{\"id\": \"a\", \"embeddings\": [[1, 0]], \"metadata\": null}]}", 200, "");
    expect_write(true, "{\"documents\": [{\"id\": \"a\", \"text\": \"x\"}, {\"id\": \"a\", \"text\": \"y\"}]}",
                 400, "DUPLICATE_ID");
    expect_write(true, "{\"documents\": [{\"text\": \"x\"}]}", 400, "INVALID_ARGUMENT");
    expect_write(true, "{\"documents\": [{\"id\": \"\", \"text\": \"x\"}]}", 400, "INVALID_ARGUMENT");
    expect_write(true, "{\"documents\": [{\"id\": \"a\"}]}", 400, "INVALID_ARGUMENT");
    expect_write(true, "{\"documents\": [{\"id\": \"a\", \"text\": \"x\", \"metadata\": [1]}]}", 400,
                 "INVALID_ARGUMENT");
    expect_write(true, "{\"documents\": [{\"id\": \"a\", \"embeddings\": [[1, 0, 0]]}]}", 422,
                 "DIMENSION_MISMATCH");
    expect_write(true, "{\"documents\": [{\"id\": \"a\", \"embeddings_b64\": \"AADAfwAAAAA=\", "
                       "\"shape\": [1, 2]}]}", 400, "INVALID_ARGUMENT"); /* NaN */
    expect_write(true, "{\"documents\": [{\"id\": \"a\", \"embeddings\": [[1, 0]], "
                       "\"embeddings_b64\": \"AACAPwAAAAA=\", \"shape\": [1, 2]}]}", 400,
                 "INVALID_ARGUMENT");
    expect_write(true, "{\"documents\": []}", 400, "INVALID_ARGUMENT");
    expect_write(true, "{\"documents\": [{\"id\": \"1\", \"text\": \"x\"}, {\"id\": \"2\", \"text\": \"x\"}, "
                       "{\"id\": \"3\", \"text\": \"x\"}, {\"id\": \"4\", \"text\": \"x\"}]}", 422,
                 "LIMIT_EXCEEDED");
    expect_write(true, "{\"docs\": []}", 400, "INVALID_ARGUMENT");
    expect_write(false, "{\"ids\": [\"a\", \"b\"]}", 200, "");
    expect_write(false, "{\"filter\": {\"y\": 1}}", 200, "");
    expect_write(false, "{\"filter\": {}}", 400, "INVALID_FILTER");
    expect_write(false, "{\"filter\": 3}", 400, "INVALID_FILTER");
    expect_write(false, "{\"ids\": [], \"filter\": {\"y\": 1}}", 400, "INVALID_ARGUMENT");
    expect_write(false, "{\"ids\": []}", 400, "INVALID_ARGUMENT");
    expect_write(false, "{\"ids\": [\"\"]}", 400, "INVALID_ARGUMENT");
    expect_write(false, "{}", 400, "INVALID_ARGUMENT");
    expect_write(false, "", 400, "MALFORMED_JSON");
}

/* Issue 12: the strict pre-parse check, the row norms, deep and wide filters. */
static void test_hardening(void)
{
    const char *q = "{\"queries\": [{\"embeddings\": [[1, 0]]}], \"k\": 3}";
    char buf[512];
    expect(q, 2, 200, "");
    snprintf(buf, sizeof buf, "%s xyz", q);
    expect(buf, 2, 400, "MALFORMED_JSON"); /* trailing data */
    snprintf(buf, sizeof buf, "%s%s", q, q);
    expect(buf, 2, 400, "MALFORMED_JSON"); /* two objects */
    snprintf(buf, sizeof buf, "%s \n\t", q);
    expect(buf, 2, 200, ""); /* trailing whitespace is fine */
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"k\": 3, \"k\": 50}", 2, 400,
           "DUPLICATE_KEY");
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"\\u006b\": 3, \"k\": 50}", 2, 400,
           "DUPLICATE_KEY"); /* equal after unescaping */
    expect("{\"queries\": [\"a\"], \"\": 1, \"\": 2}", 2, 400, "DUPLICATE_KEY"); /* empty keys */
    expect("{\"queries\": [\"caf\xc3\"]}", 2, 400, "INVALID_UTF8");
    expect("{\"queries\": [\"\xed\xa0\x80\"]}", 2, 400, "INVALID_UTF8"); /* a surrogate */
    expect("{\"queries\": [\"\\udc00\"]}", 2, 400, "INVALID_UTF8");      /* lone low half */
    expect("{\"queries\": [\"\\ud83d\\ude00 ok\"]}", 2, 200, "");        /* a valid pair */
    expect("{\"queries\": [\"caf\xc3\xa9\"]}", 2, 200, "");
    expect("{\"queries\": [\"a\\u0000b\"]}", 2, 400, "INVALID_STRING");
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"ids\": [\"vim\\u0000x\"]}", 2, 400,
           "INVALID_STRING");
    expect("{\"queries\": [{\"embeddings\": [[1, 0]]}], \"filter\": {\"k\": \"a\\u0000z\"}}", 2,
           400, "INVALID_STRING");
    /* Rows whose norm overflows scores, as JSON and as base64 (two floats of 1e38). */
    expect("{\"queries\": [{\"embeddings\": [[1e38, 1e38]]}]}", 2, 400, "INVALID_ARGUMENT");
    expect("{\"queries\": [{\"embeddings\": [[1e15, 0]]}]}", 2, 200, "");
    expect("{\"queries\": [{\"embeddings_b64\": \"mXaWfpl2ln4=\", \"shape\": [1, 2]}]}", 2, 400,
           "INVALID_ARGUMENT");
    /* Nesting: 72 levels pass the check (a filter nested to its limit needs about 68). */
    char deep[400];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"queries\": ");
    for (int i = 0; i < 80; i++)
        deep[n++] = '[';
    for (int i = 0; i < 80; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof deep - n, "}");
    expect(deep, 2, 400, "MALFORMED_JSON");
    /* The value cap answers 413 before cJSON builds anything. */
    cp_limits lim;
    cp_limits_init(&lim);
    lim.max_json_values = 16;
    cp_encode_request er;
    cp_http_error e = {0};
    const char *many = "{\"texts\": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}";
    CP_CHECK(!cp_parse_encode(many, strlen(many), &lim, &er, &e));
    CP_CHECK_INT(e.status, 413);
    CP_CHECK(e.code && !strcmp(e.code, "PAYLOAD_TOO_LARGE"));
    expect_write(true, "{\"documents\": [{\"id\": \"victim\\u0000attacker\", \"text\": \"x\"}]}",
                 400, "INVALID_STRING");
    expect_write(true,
                 "{\"documents\": [{\"id\": \"a\", \"text\": \"x\", \"metadata\": "
                 "{\"k\\u0000\": 1}}]}",
                 400, "INVALID_STRING");
    expect_write(false, "{\"ids\": [\"vim\\u0000-not-this-one\"]}", 400, "INVALID_STRING");
    expect_write(false, "{\"ids\": [\"a\"]}{\"ids\": [\"b\"]}", 400, "MALFORMED_JSON");
}

/* Filters within the documented limits compile to SQL SQLite accepts; past them: CP_EINVAL. */
static void test_filter_limits(void)
{
    sqlite3 *db = make_db();
    size_t cap = 1 << 20;
    char *f = malloc(cap);
    /* 32 nested $not around {"lang": "en"}: an even count, so docs with lang en. */
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(f + n, cap - n, "{\"$not\": ");
    n += (size_t)snprintf(f + n, cap - n, "{\"lang\": \"en\"}");
    for (int i = 0; i < 32; i++)
        f[n++] = '}';
    f[n] = '\0';
    expect_filter(db, f, "0");
    /* 33: past the limit. */
    char *inner = strdup(f);
    snprintf(f, cap, "{\"$not\": %s}", inner);
    free(inner);
    expect_filter(db, f, NULL);
    /* $or with 1,000 branches, $in with 5,000 values. */
    n = (size_t)snprintf(f, cap, "{\"$or\": [");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(f + n, cap - n, "%s{\"year\": %d}", i ? ", " : "", 1500 + i);
    snprintf(f + n, cap - n, "]}");
    expect_filter(db, f, "0,1");
    n = (size_t)snprintf(f, cap, "{\"year\": {\"$in\": [");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(f + n, cap - n, "%s%d", i ? ", " : "", i);
    snprintf(f + n, cap - n, "]}}");
    expect_filter(db, f, "0,1");
    /* 32 levels of $or with a second branch each: runs, or is refused as the client's filter. */
    n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(f + n, cap - n, "{\"$or\": [{\"year\": %d}, ", i);
    n += (size_t)snprintf(f + n, cap - n, "{\"lang\": \"fr\"}");
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(f + n, cap - n, "]}");
    cp_filter_sql *fs = NULL;
    cp_error err;
    cp_status st = cp_filter_compile(f, strlen(f), &fs, &err);
    CP_CHECK(st == CP_OK);
    if (fs) {
        int64_t *ids = NULL;
        size_t n_ids = 0;
        st = cp_filter_run(fs, db, &ids, &n_ids, &err);
        CP_CHECK(st == CP_OK || st == CP_EINVAL);
        free(ids);
        cp_filter_sql_free(fs);
    }
    /* NUL, duplicate keys and trailing data in a filter given directly (the CLI's door). */
    expect_filter(db, "{\"lang\": \"en\\u0000zzz\"}", NULL);
    expect_filter(db, "{\"lang\": \"fr\", \"lang\": \"en\"}", NULL);
    expect_filter(db, "{\"lang\": \"en\"} {}", NULL);
    free(f);
    sqlite3_close(db);
}

/* POST /v1/indexes: exactly {"name", "codec_from"}, non-empty strings of at most 128 bytes
 * (whether name can name a file is the server's check). */
static void test_create_index_parse(void)
{
    cp_limits lim;
    cp_limits_init(&lim);
    cp_create_index_request r;
    cp_http_error e;
    const char *ok = "{\"name\": \"news\", \"codec_from\": \"docs\"}";
    CP_CHECK(cp_parse_create_index(ok, strlen(ok), &lim, &r, &e));
    CP_CHECK(r.name && !strcmp(r.name, "news") && r.codec_from && !strcmp(r.codec_from, "docs"));
    cp_create_index_request_free(&r);
    char long_name[200];
    snprintf(long_name, sizeof long_name, "{\"name\": \"%0129d\", \"codec_from\": \"d\"}", 0);
    const char *bad[] = {"{}",
                         "{\"name\": \"a\"}",
                         "{\"codec_from\": \"a\"}",
                         "{\"name\": 1, \"codec_from\": \"a\"}",
                         "{\"name\": \"\", \"codec_from\": \"a\"}",
                         "{\"name\": \"a\", \"codec_from\": \"b\", \"x\": 1}",
                         "[]",
                         "",
                         "{\"name\": \"a\", \"name\": \"b\", \"codec_from\": \"c\"}",
                         long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool accepted = cp_parse_create_index(bad[i], strlen(bad[i]), &lim, &r, &e);
        CP_CHECK(!accepted && e.status == 400);
        if (accepted) cp_create_index_request_free(&r);
    }
}

int main(void)
{
    test_create_index_parse();
    test_hardening();
    test_filter_limits();
    test_write_parse();
    test_base64();
    test_search_parse();
    test_rerank_parse();
    test_filters();
    if (cp_test_failures) fprintf(stderr, "%d checks failed\n", cp_test_failures);
    return cp_test_failures ? 1 : 0;
}
