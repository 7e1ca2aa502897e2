/*
 * libFuzzer target for everything that reads a client's request body before it reaches
 * the engine: the search / encode / rerank / write / explain parsers (server/request.c),
 * base64, the engine's MaxSim on accepted rerank embeddings, and the
 * filter compiler (index/filter.c), whose SQL is also run against a small in-memory
 * `documents` table so that a compiled filter SQLite refuses is caught as a bug.
 *
 * The first input byte chooses the parser: 7 is explain, 14 is index create (POST
 * /v1/indexes, no corpus input started with 14 before), any other byte mod 7 picks search,
 * encode, rerank, filter, base64, document upsert or document delete (explain came later;
 * keeping the mod-7 choice for every other byte keeps the corpus' inputs meaning what they
 * meant). The rest is the body. Oracles beyond the
 * sanitizers: base64 decode -> encode must give the input back; a filter that compiles must
 * run (CP_EINTERNAL from SQLite means the compiler produced invalid SQL).
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "colplaid/corpus.h"
#include "colplaid/index.h"
#include "filter.h"
#include "request.h"

static sqlite3 *db;

static void open_db(void)
{
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db,
                 "CREATE TABLE documents(doc_id INTEGER PRIMARY KEY, external_id TEXT NOT NULL, "
                 "text TEXT, metadata TEXT, n_tokens INTEGER NOT NULL, segment_id INTEGER NOT NULL, "
                 "deleted INTEGER NOT NULL DEFAULT 0);"
                 "INSERT INTO documents VALUES"
                 "(0, 'a', NULL, '{\"year\": 2019, \"lang\": \"en\", \"x\": {\"y\": [1, 2]}}', 1, 0, 0),"
                 "(1, 'b', NULL, '{\"year\": \"2021\", \"lang\": null}', 1, 0, 0),"
                 "(2, 'c', NULL, 'not json', 1, 0, 0), (3, 'd', NULL, NULL, 1, 0, 0);",
                 NULL, NULL, NULL);
}

static void fuzz_filter(const char *s, size_t n)
{
    cp_filter_sql *f;
    cp_error err;
    if (cp_filter_compile(s, n, &f, &err) != CP_OK) return;
    int64_t *ids;
    size_t n_ids;
    cp_status st = cp_filter_run(f, db, &ids, &n_ids, &err);
    if (st == CP_EINTERNAL) abort(); /* the compiler emitted SQL that SQLite refuses */
    if (st == CP_OK) free(ids);
    cp_filter_sql_free(f);
}

static void fuzz_base64(const char *s, size_t n)
{
    unsigned char *out;
    size_t n_out;
    if (!cp_base64_decode(s, n, &out, &n_out)) return;
    char *back = cp_base64_encode(out, n_out);
    /* Canonical inputs only round-trip; non-zero bits in the last padded group do not. */
    if (back && strlen(back) != n) abort();
    free(back);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db) open_db();
    if (size < 1) return 0;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    cp_limits lim;
    cp_limits_init(&lim);
    lim.max_k = 100;
    cp_http_error e;
    switch (data[0] == 7 || data[0] == 14 ? data[0] : data[0] % 7) {
    case 0: {
        cp_search_request r;
        if (cp_parse_search(body, n, &lim, 4, &r, &e)) {
            if (r.filter_json) fuzz_filter(r.filter_json, strlen(r.filter_json));
            cp_search_request_free(&r);
        }
        break;
    }
    case 1: {
        cp_encode_request r;
        if (cp_parse_encode(body, n, &lim, &r, &e)) cp_encode_request_free(&r);
        break;
    }
    case 2: {
        cp_rerank_request r;
        if (cp_parse_rerank(body, n, &lim, &r, &e)) {
            for (size_t i = 0; i < r.n_docs; i++)
                if (r.query.data && r.docs[i].data)
                    (void)cp_maxsim(r.query.data, r.query.n_tokens, r.docs[i].data,
                                    r.docs[i].n_tokens, r.query.dim);
            cp_rerank_request_free(&r);
        }
        break;
    }
    case 3: fuzz_filter(body, n); break;
    case 5: {
        cp_upsert_request r;
        if (cp_parse_upsert(body, n, &lim, 4, &r, &e)) {
            /* Oracle: an accepted batch has unique ids and 4-dim, finite embeddings or text. */
            for (size_t i = 0; i < r.n_docs; i++) {
                const cp_upsert_doc *d = &r.docs[i];
                if (!d->id || !d->id[0] || (!d->emb.data && !d->text)) abort();
                /* The CLI's rules too (colplaid/corpus.h): ids of at most 1024 bytes, no
                 * blank text. */
                if (cp_document_id_problem(d->id) || (d->text && cp_document_text_blank(d->text)))
                    abort();
                if (d->emb.data && d->emb.dim != 4) abort();
                for (size_t j = 0; j < i; j++)
                    if (!strcmp(d->id, r.docs[j].id)) abort();
            }
            cp_upsert_request_free(&r);
        }
        break;
    }
    case 6: {
        cp_delete_request r;
        if (cp_parse_delete(body, n, &lim, &r, &e)) {
            if (r.filter_json) fuzz_filter(r.filter_json, strlen(r.filter_json));
            cp_delete_request_free(&r);
        }
        break;
    }
    case 7: {
        cp_explain_request r;
        if (cp_parse_explain(body, n, &lim, &r, &e)) {
            /* Oracle: an accepted explain names a non-empty query within the limit and id. */
            if (!r.query || !r.query[0] || !r.id || !r.id[0]) abort();
            if (strlen(r.query) > lim.max_text_bytes) abort();
            cp_explain_request_free(&r);
        } else if (!e.code || e.status < 400) {
            abort(); /* a refusal always carries an HTTP error */
        }
        break;
    }
    case 14: {
        cp_create_index_request r;
        if (cp_parse_create_index(body, n, &lim, &r, &e)) {
            /* Oracle: both names are non-empty and at most 128 bytes. */
            if (!r.name || !r.name[0] || !r.codec_from || !r.codec_from[0]) abort();
            if (strlen(r.name) > 128 || strlen(r.codec_from) > 128) abort();
            cp_create_index_request_free(&r);
        } else if (!e.code || e.status < 400) {
            abort();
        }
        break;
    }
    default: fuzz_base64(body, n); break;
    }
    return 0;
}
