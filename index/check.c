/*
 * cp_index_check: verify an index file end to end and report every problem found, one line
 * each, instead of stopping at the first (a user deciding whether to rebuild wants the
 * whole picture).
 *
 * What is checked: SQLite's integrity_check; the meta keys; the codec's sizes and values;
 * every segment blob (decompression, sizes, checksum, code range); that every document row
 * agrees with the segment holding its tokens (same segment, same token count) and every
 * live document has its tokens exactly once; live external ids are unique; stored windows
 * tile their document's tokens; the lexical index, when there is one, holds exactly the
 * live documents that have a text, with the terms those texts tokenise to. The IVF is not
 * stored (it is rebuilt at load: docs/index-format.md), so there is nothing to compare.
 *
 * Runs on its own read-only connection; safe while a server has the index open.
 */
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "storage.h"

typedef struct checker {
    cp_store *store;
    const char *path;
    FILE *report;
    int64_t problems;
    /* documents table, by doc_id */
    int64_t n_slots;
    int32_t *n_tokens;
    int64_t *segment_of;
    uint8_t *state; /* 0 no row, 1 live, 2 deleted */
    uint8_t *seen;  /* times the doc's tokens were found in its segment */
    int64_t *bad_segments; /* segments that could not be read, to summarise their documents */
    size_t n_bad, cap_bad;
} checker;

static void problem(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note_bad_segment(checker *c, int64_t id)
{
    if (c->n_bad == c->cap_bad) {
        size_t cap = c->cap_bad ? c->cap_bad * 2 : 16;
        int64_t *n = realloc(c->bad_segments, cap * sizeof *n);
        if (!n) return;
        c->bad_segments = n;
        c->cap_bad = cap;
    }
    c->bad_segments[c->n_bad++] = id;
}

static bool is_bad_segment(const checker *c, int64_t id)
{
    for (size_t i = 0; i < c->n_bad; i++)
        if (c->bad_segments[i] == id) return true;
    return false;
}

/* One line per unreadable segment for the live documents it takes with it, rather than one
 * line per document. */
static void summarise_bad_segments(checker *c)
{
    for (size_t i = 0; i < c->n_bad; i++) {
        int64_t n = 0, lo = -1, hi = -1;
        for (int64_t d = 0; d < c->n_slots; d++)
            if (c->state[d] == 1 && c->segment_of[d] == c->bad_segments[i]) {
                if (lo < 0) lo = d;
                hi = d;
                n++;
            }
        if (n)
            problem(c, "segment %lld: %lld live documents are unreadable (internal ids %lld..%lld)",
                    (long long)c->bad_segments[i], (long long)n, (long long)lo, (long long)hi);
    }
}

static void problem(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(checker *c, const char *fmt, ...)
{
    c->problems++;
    if (!c->report) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(c->report, "%s: ", c->path);
    vfprintf(c->report, fmt, ap);
    fputc('\n', c->report);
    va_end(ap);
}

static void check_integrity(checker *c)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(c->store), "PRAGMA integrity_check", -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(q, 0);
        if (line && strcmp(line, "ok") != 0) problem(c, "SQLite integrity: %s", line);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE)
        problem(c, "SQLite integrity check failed to run: %s",
                sqlite3_errmsg(cp_store_sqlite(c->store)));
    sqlite3_finalize(q);
}

static void check_codec(checker *c)
{
    cp_codec codec;
    cp_error err = {0};
    if (cp_store_load_codec(c->store, &codec, &err) != CP_OK) {
        problem(c, "codec: %s", err.message);
        return;
    }
    int64_t bad = 0;
    for (int64_t k = 0; k < codec.n_centroids; k++) {
        double n = 0;
        for (int j = 0; j < codec.dim; j++) n += (double)codec.centroids[k * codec.dim + j] *
                                                codec.centroids[k * codec.dim + j];
        /* Zero rows are legitimate: Stanford ColBERT indexes keep empty k-means clusters. */
        if (!(fabs(sqrt(n) - 1.0) < 1e-2) && n != 0) bad++;
    }
    if (bad) problem(c, "codec: %lld centroids are neither unit vectors nor zero", (long long)bad);
    int nb = 1 << codec.nbits;
    for (int i = 0; i + 1 < nb - 1; i++)
        if (!(codec.bucket_cutoffs[i] <= codec.bucket_cutoffs[i + 1])) {
            problem(c, "codec: bucket cutoffs are not ascending");
            break;
        }
    for (int i = 0; i < nb; i++)
        if (!isfinite(codec.bucket_weights[i])) {
            problem(c, "codec: bucket weight %d is not a finite number", i);
            break;
        }
    free(codec.centroids);
}

static bool load_documents(checker *c)
{
    cp_error err = {0};
    if (cp_store_meta_int(c->store, "next_doc_id", 0, INT32_MAX, &c->n_slots, &err) != CP_OK) {
        problem(c, "%s", err.message);
        return false;
    }
    size_t n = (size_t)(c->n_slots ? c->n_slots : 1);
    c->n_tokens = calloc(n, sizeof *c->n_tokens);
    c->segment_of = calloc(n, sizeof *c->segment_of);
    c->state = calloc(n, 1);
    c->seen = calloc(n, 1);
    if (!c->n_tokens || !c->segment_of || !c->state || !c->seen) {
        problem(c, "out of memory reading %lld documents", (long long)c->n_slots);
        return false;
    }
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(c->store),
                                "SELECT doc_id, n_tokens, segment_id, deleted, external_id"
                                " FROM documents",
                                -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        int64_t d = sqlite3_column_int64(q, 0), nt = sqlite3_column_int64(q, 1);
        if (d < 0 || d >= c->n_slots) {
            problem(c, "document %lld: id outside [0, next_doc_id = %lld)", (long long)d,
                    (long long)c->n_slots);
            continue;
        }
        const unsigned char *ext = sqlite3_column_text(q, 4);
        if (!ext || !*ext) problem(c, "document %lld: empty external id", (long long)d);
        if (nt < 0 || nt > INT32_MAX)
            problem(c, "document %lld: token count %lld is invalid", (long long)d, (long long)nt);
        c->n_tokens[d] = (int32_t)(nt < 0 || nt > INT32_MAX ? -1 : nt);
        c->segment_of[d] = sqlite3_column_int64(q, 2);
        c->state[d] = sqlite3_column_int64(q, 3) ? 2 : 1;
    }
    if (rc != SQLITE_DONE)
        problem(c, "reading documents: %s", sqlite3_errmsg(cp_store_sqlite(c->store)));
    sqlite3_finalize(q);
    return true;
}

static void check_segment(checker *c, const cp_segment_data *seg, int64_t k)
{
    int64_t bad_codes = 0;
    for (int64_t t = 0; t < seg->n_tokens; t++)
        if (seg->codes[t] < 0 || seg->codes[t] >= k) bad_codes++;
    if (bad_codes)
        problem(c, "segment %lld: %lld centroid codes outside [0, %lld)", (long long)seg->segment_id,
                (long long)bad_codes, (long long)k);
    for (int64_t i = 0; i < seg->n_docs; i++) {
        int64_t d = seg->doc_ids[i];
        if (d < 0 || d >= c->n_slots || c->state[d] == 0) {
            problem(c, "segment %lld: holds tokens of document %lld, which has no row",
                    (long long)seg->segment_id, (long long)d);
            continue;
        }
        if (c->state[d] == 2 && c->segment_of[d] != seg->segment_id) continue; /* old version */
        if (c->segment_of[d] != seg->segment_id) {
            problem(c, "document %lld: row says segment %lld but segment %lld holds it",
                    (long long)d, (long long)c->segment_of[d], (long long)seg->segment_id);
            continue;
        }
        if (seg->doclens[i] != c->n_tokens[d])
            problem(c, "document %lld: row says %d tokens, segment %lld holds %d", (long long)d,
                    c->n_tokens[d], (long long)seg->segment_id, seg->doclens[i]);
        if (c->seen[d] < 255) c->seen[d]++;
    }
}

static void check_segments(checker *c)
{
    cp_error err = {0};
    cp_segment_iter *it = NULL;
    if (cp_store_segments_begin(c->store, &it, &err) != CP_OK) {
        problem(c, "%s", err.message);
        return;
    }
    int64_t k = 0;
    if (cp_store_meta_int(c->store, "n_centroids", 1, INT32_MAX, &k, &err) != CP_OK)
        problem(c, "%s", err.message);
    for (;;) {
        cp_segment_data seg;
        bool has = false;
        cp_status st = cp_store_segments_next(it, &seg, &has, &err);
        if (!has) {
            if (st != CP_OK) problem(c, "%s", err.message);
            break;
        }
        if (st != CP_OK) {
            /* The message names the file already; drop the duplicate prefix. */
            size_t pl = strlen(c->path);
            const char *m = strncmp(err.message, c->path, pl) == 0 && err.message[pl] == ':'
                                ? err.message + pl + 2
                                : err.message;
            problem(c, "%s", m);
            note_bad_segment(c, seg.segment_id);
            continue;
        }
        check_segment(c, &seg, k);
    }
    cp_store_segments_end(it);
    summarise_bad_segments(c);
    for (int64_t d = 0; d < c->n_slots; d++) {
        if (c->state[d] != 1 || (c->seen[d] == 0 && is_bad_segment(c, c->segment_of[d]))) continue;
        if (c->seen[d] == 0)
            problem(c, "document %lld: its tokens are in no readable segment (row says segment "
                    "%lld)", (long long)d, (long long)c->segment_of[d]);
        else if (c->seen[d] > 1)
            problem(c, "document %lld: its tokens appear %d times", (long long)d, c->seen[d]);
    }
}

static void check_unique_ids(checker *c)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(cp_store_sqlite(c->store),
                                "SELECT external_id, COUNT(*) FROM documents WHERE deleted = 0"
                                " GROUP BY external_id HAVING COUNT(*) > 1 LIMIT 20",
                                -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        problem(c, "external id \"%s\" is live %d times", (const char *)sqlite3_column_text(q, 0),
                sqlite3_column_int(q, 1));
    }
    sqlite3_finalize(q);
}

/* doc_windows (docs/index-format.md "Windows"), when present: every row belongs to a
 * document row and its windows tile that document's tokens. */
static void check_windows(checker *c)
{
    sqlite3 *db = cp_store_sqlite(c->store);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                           "'doc_windows'",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return;
    }
    sqlite3_finalize(q);
    int rc = sqlite3_prepare_v2(db, "SELECT doc_id, windows FROM doc_windows", -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        int64_t d = sqlite3_column_int64(q, 0);
        size_t bytes = (size_t)sqlite3_column_bytes(q, 1);
        const unsigned char *b = sqlite3_column_blob(q, 1);
        if (d < 0 || d >= c->n_slots || !c->state[d]) {
            problem(c, "windows of document %lld, which has no document row", (long long)d);
            continue;
        }
        if (!b || !bytes || bytes % 16) {
            problem(c, "document %lld: windows blob of %zu bytes (4 int32 per window)",
                    (long long)d, bytes);
            continue;
        }
        int32_t at = 0;
        bool ok = true;
        for (size_t i = 0; ok && i < bytes / 16; i++) {
            int32_t v[4];
            for (int k = 0; k < 4; k++) {
                const unsigned char *p = b + i * 16 + (size_t)k * 4;
                v[k] = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                 (uint32_t)p[3] << 24);
            }
            ok = v[0] == at && v[1] >= v[0] && v[2] >= 0 && v[3] >= v[2];
            at = v[1];
        }
        if (!ok || at != c->n_tokens[d])
            problem(c, "document %lld: its windows do not tile its %d tokens in order",
                    (long long)d, (int)c->n_tokens[d]);
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE)
        problem(c, "reading doc_windows: %s", sqlite3_errmsg(db));
    sqlite3_finalize(q);
}

/* The lexical index (docs/hybrid.md) must hold exactly the live documents that have a
 * text: FTS5 keeps one row per indexed document in lexical_docsize. */
static int64_t next_id(sqlite3_stmt *q, int *rc)
{
    *rc = sqlite3_step(q);
    return *rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : INT64_MAX;
}

/* Its contents: the live texts tokenised afresh into a temporary contentless FTS5 table (the
 * same tokenizer; temp tables are writable on a read-only connection) must give every term
 * the same document and occurrence counts as the stored index (fts5vocab 'row' of both), so
 * a text whose terms the index does not hold, or holds from another version, is found. */
static void check_lexical_terms(checker *c, sqlite3 *db)
{
    char *msg = NULL;
    int rc = sqlite3_exec(
        db,
        "CREATE VIRTUAL TABLE temp.cp_lexcheck USING fts5(text, content = '', tokenize = "
        "'" CP_LEXICAL_TOKENIZER "');"
        "INSERT INTO temp.cp_lexcheck(rowid, text) SELECT doc_id, text FROM main.documents"
        " WHERE deleted = 0 AND text IS NOT NULL;"
        "CREATE VIRTUAL TABLE temp.cp_lexcheck_stored USING fts5vocab(main, lexical, 'row');"
        "CREATE VIRTUAL TABLE temp.cp_lexcheck_fresh USING fts5vocab(temp, cp_lexcheck, 'row');",
        NULL, NULL, &msg);
    sqlite3_stmt *q = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "SELECT 'stored', * FROM (SELECT term, doc, cnt FROM"
                                " temp.cp_lexcheck_stored EXCEPT SELECT term, doc, cnt FROM"
                                " temp.cp_lexcheck_fresh) UNION ALL SELECT 'texts', * FROM"
                                " (SELECT term, doc, cnt FROM temp.cp_lexcheck_fresh EXCEPT"
                                " SELECT term, doc, cnt FROM temp.cp_lexcheck_stored)",
                                -1, &q, NULL);
    int64_t n = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (++n <= 10)
            problem(c,
                    "lexical index: term \"%s\" is in %lld documents (%lld times) by the %s,"
                    " not by the %s",
                    (const char *)sqlite3_column_text(q, 1), (long long)sqlite3_column_int64(q, 2),
                    (long long)sqlite3_column_int64(q, 3),
                    strcmp((const char *)sqlite3_column_text(q, 0), "stored") ? "live texts"
                                                                              : "stored index",
                    strcmp((const char *)sqlite3_column_text(q, 0), "stored") ? "stored index"
                                                                              : "live texts");
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE)
        problem(c, "the lexical index's terms cannot be compared with the texts: %s",
                msg ? msg : sqlite3_errmsg(db));
    else if (n > 10)
        problem(c, "lexical index: %lld term counts differ from the live texts'", (long long)n);
    sqlite3_finalize(q);
    sqlite3_free(msg);
    sqlite3_exec(db,
                 "DROP TABLE IF EXISTS temp.cp_lexcheck_stored;"
                 " DROP TABLE IF EXISTS temp.cp_lexcheck_fresh;"
                 " DROP TABLE IF EXISTS temp.cp_lexcheck;",
                 NULL, NULL, NULL);
}

static void check_lexical_rows(checker *c, sqlite3 *db);

/* In one read transaction, so that the rows and terms compared are of one version. */
static void check_lexical(checker *c)
{
    if (!cp_store_has_lexical(c->store)) return;
    sqlite3 *db = cp_store_sqlite(c->store);
    bool txn = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int64_t before = c->problems;
    check_lexical_rows(c, db);
    if (c->problems == before) check_lexical_terms(c, db);
    if (txn) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

static void check_lexical_rows(checker *c, sqlite3 *db)
{
    sqlite3_stmt *a = NULL, *b = NULL;
    int ra = sqlite3_prepare_v2(db, "SELECT id FROM lexical_docsize ORDER BY id", -1, &a, NULL);
    int rb = sqlite3_prepare_v2(db,
                                "SELECT doc_id FROM documents WHERE deleted = 0 AND text IS NOT"
                                " NULL ORDER BY doc_id",
                                -1, &b, NULL);
    if (ra != SQLITE_OK || rb != SQLITE_OK) {
        problem(c, "the lexical index cannot be read: %s", sqlite3_errmsg(db));
        sqlite3_finalize(a);
        sqlite3_finalize(b);
        return;
    }
    int64_t missing = 0, extra = 0;
    int64_t x = next_id(a, &ra), y = next_id(b, &rb);
    while (x != INT64_MAX || y != INT64_MAX) {
        if (x == y) {
            x = next_id(a, &ra);
            y = next_id(b, &rb);
        } else if (x < y) {
            if (++extra <= 10)
                problem(c, "lexical index: document %lld is indexed but not live with a text",
                        (long long)x);
            x = next_id(a, &ra);
        } else {
            if (++missing <= 10)
                problem(c, "lexical index: live document %lld is missing from it", (long long)y);
            y = next_id(b, &rb);
        }
    }
    if (ra != SQLITE_DONE || rb != SQLITE_DONE)
        problem(c, "the lexical index cannot be read: %s", sqlite3_errmsg(db));
    if (missing > 10 || extra > 10)
        problem(c, "lexical index: %lld documents missing, %lld indexed that should not be",
                (long long)missing, (long long)extra);
    sqlite3_finalize(a);
    sqlite3_finalize(b);
}

cp_status cp_index_check(const char *path, FILE *report, cp_error *err)
{
    checker c = {.path = path, .report = report};
    cp_status st = cp_store_open(path, CP_OPEN_READONLY, &c.store, err);
    if (st != CP_OK) {
        if (report) fprintf(report, "%s\n", err ? err->message : "cannot open the index");
        return st;
    }
    check_integrity(&c);
    check_codec(&c);
    if (load_documents(&c)) {
        check_segments(&c);
        check_unique_ids(&c);
        check_windows(&c);
    }
    check_lexical(&c);
    cp_store_close(c.store);
    free(c.n_tokens);
    free(c.segment_of);
    free(c.state);
    free(c.seen);
    free(c.bad_segments);
    if (c.problems)
        return cp_error_set(err, CP_ECORRUPT, "%s: %lld problem%s found", path,
                            (long long)c.problems, c.problems == 1 ? "" : "s");
    return CP_OK;
}
