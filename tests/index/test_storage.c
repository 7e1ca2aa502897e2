/*
 * Storage round trip and file recognition: create an index file, append segments, load a
 * snapshot and compare every array; duplicate ids; foreign, empty, truncated and
 * future-version files; the writer lock across processes; the IVF against brute force.
 */
#include <sqlite3.h>
#include <sys/wait.h>

#include "cp_test.h"
#include "codec.h"
#include "snapshot.h"
#include "storage.h"
#include "storage_test_util.h"

typedef struct fixture {
    int64_t n_docs, n_tokens;
    char **ids;
    int32_t *doclens;
    int32_t *codes;
    uint8_t *residuals;
} fixture;

static void make_fixture(fixture *f, const cp_codec *c, int64_t n_docs, uint64_t seed)
{
    uint64_t s = seed | 1;
    f->n_docs = n_docs;
    f->ids = calloc((size_t)n_docs, sizeof *f->ids);
    f->doclens = malloc((size_t)n_docs * sizeof *f->doclens);
    f->n_tokens = 0;
    for (int64_t i = 0; i < n_docs; i++) {
        f->doclens[i] = (int32_t)(st_rand(&s) % 40); /* zero-token documents included */
        f->n_tokens += f->doclens[i];
        char buf[32];
        snprintf(buf, sizeof buf, "doc-%lld", (long long)i);
        f->ids[i] = strdup(buf);
    }
    int rb = cp_residual_bytes(c->dim, c->nbits);
    f->codes = malloc((size_t)f->n_tokens * sizeof *f->codes);
    f->residuals = malloc((size_t)f->n_tokens * (size_t)rb);
    for (int64_t t = 0; t < f->n_tokens; t++) f->codes[t] = (int32_t)(st_rand(&s) % (uint64_t)c->n_centroids);
    for (int64_t t = 0; t < f->n_tokens * rb; t++) f->residuals[t] = (uint8_t)st_rand(&s);
}

static void free_fixture(fixture *f)
{
    for (int64_t i = 0; i < f->n_docs; i++) free(f->ids[i]);
    free(f->ids);
    free(f->doclens);
    free(f->codes);
    free(f->residuals);
}

/* Append docs [from, to) of f as one segment. */
static cp_status append_range(cp_store *st, const cp_codec *c, const fixture *f, int64_t from,
                              int64_t to, int64_t *first, cp_error *err)
{
    int64_t tok0 = 0, ntok = 0;
    for (int64_t i = 0; i < from; i++) tok0 += f->doclens[i];
    for (int64_t i = from; i < to; i++) ntok += f->doclens[i];
    size_t n = to > from ? (size_t)(to - from) : 1;
    cp_document *docs = calloc(n, sizeof *docs);
    for (int64_t i = from; i < to; i++) {
        docs[i - from].id = f->ids[i];
        docs[i - from].text = i % 3 ? "some text" : NULL;
        docs[i - from].metadata_json = i % 2 ? "{\"n\": 1}" : NULL;
    }
    cp_segment_input seg = {
        .n_docs = (size_t)(to - from),
        .docs = docs,
        .doclens = f->doclens + from,
        .n_tokens = ntok,
        .codes = f->codes + tok0,
        .residuals = f->residuals + tok0 * cp_residual_bytes(c->dim, c->nbits),
    };
    cp_status s = cp_store_append_segment(st, &seg, first, err);
    free(docs);
    return s;
}

static void compare_snapshot(const cp_snapshot *snap, const cp_codec *c, const fixture *f)
{
    int rb = cp_residual_bytes(c->dim, c->nbits);
    CP_CHECK_INT(snap->n_slots, f->n_docs);
    CP_CHECK_INT(snap->n_live, f->n_docs);
    CP_CHECK_INT(snap->n_tokens, f->n_tokens);
    CP_CHECK_INT(snap->codec.n_centroids, c->n_centroids);
    CP_CHECK(memcmp(snap->codec.centroids, c->centroids,
                    (size_t)c->n_centroids * (size_t)c->dim * sizeof(float)) == 0);
    CP_CHECK(memcmp(snap->codec.bucket_weights, c->bucket_weights,
                    sizeof(float) << c->nbits) == 0);
    CP_CHECK(memcmp(snap->codes, f->codes, (size_t)f->n_tokens * sizeof(int32_t)) == 0);
    CP_CHECK(memcmp(snap->residuals, f->residuals, (size_t)f->n_tokens * (size_t)rb) == 0);
    int64_t off = 0;
    for (int64_t i = 0; i < f->n_docs; i++) {
        CP_CHECK_INT(snap->doc_offsets[i], off);
        off += f->doclens[i];
        CP_CHECK(snap->external_ids[i] && strcmp(snap->external_ids[i], f->ids[i]) == 0);
        CP_CHECK_INT(snap->deleted[i], 0);
    }
}

/* The IVF must equal, centroid by centroid, the sorted set of live docs with a token there. */
static void check_ivf_brute_force(const cp_snapshot *snap)
{
    int64_t k = snap->codec.n_centroids;
    uint8_t *seen = calloc((size_t)snap->n_slots + 1, 1);
    int bad = 0;
    for (int64_t c = 0; c < k && !bad; c++) {
        memset(seen, 0, (size_t)snap->n_slots + 1);
        int64_t want = 0;
        for (int64_t d = 0; d < snap->n_slots; d++) {
            if (snap->deleted[d]) continue;
            for (int64_t t = snap->doc_offsets[d]; t < snap->doc_offsets[d + 1]; t++)
                if (snap->codes[t] == c && !seen[d]) {
                    seen[d] = 1;
                    want++;
                }
        }
        int64_t lo = snap->ivf_offsets[c], hi = snap->ivf_offsets[c + 1];
        if (hi - lo != want) bad = 1;
        for (int64_t i = lo; i < hi && !bad; i++) {
            int32_t d = snap->ivf_docs[i];
            if (d < 0 || d >= snap->n_slots || !seen[d]) bad = 1;
            if (i > lo && snap->ivf_docs[i - 1] >= d) bad = 1;
        }
        if (bad) fprintf(stderr, "IVF list of centroid %lld differs from brute force\n", (long long)c);
    }
    CP_CHECK(!bad);
    free(seen);
}

static void test_round_trip(const char *dir)
{
    cp_error err = {0};
    cp_codec c;
    st_make_codec(&c, 32, 2, 16, 7);
    fixture f;
    make_fixture(&f, &c, 300, 11);
    char path[600];
    snprintf(path, sizeof path, "%s/rt.db", dir);
    cp_store *st = NULL;
    CP_CHECK_OK(cp_store_create(path, &c, &st, &err), err);
    if (!st) return;
    int64_t first = -1;
    CP_CHECK_OK(cp_store_begin(st, &err), err);
    CP_CHECK_OK(append_range(st, &c, &f, 0, 120, &first, &err), err);
    CP_CHECK_INT(first, 0);
    CP_CHECK_OK(append_range(st, &c, &f, 120, 300, &first, &err), err);
    CP_CHECK_INT(first, 120);
    CP_CHECK_OK(cp_store_set_meta(st, "encoder", "{\"model\":\"test\"}", &err), err);
    CP_CHECK_OK(cp_store_commit(st, &err), err);

    /* A duplicate live external id fails naming it, and the rollback keeps the file intact. */
    CP_CHECK_OK(cp_store_begin(st, &err), err);
    cp_status s = append_range(st, &c, &f, 5, 6, &first, &err);
    CP_CHECK_INT(s, CP_EEXISTS);
    CP_CHECK(strstr(err.message, "doc-5") != NULL);
    cp_store_rollback(st);
    cp_store_close(st);

    CP_CHECK_OK(cp_store_open(path, CP_OPEN_READONLY, &st, &err), err);
    if (!st) return;
    char *enc = cp_store_get_meta(st, "encoder");
    CP_CHECK(enc && strcmp(enc, "{\"model\":\"test\"}") == 0);
    free(enc);
    CP_CHECK(cp_store_get_meta(st, "no such key") == NULL);
    cp_snapshot *snap = NULL;
    CP_CHECK_OK(cp_store_load_snapshot(st, &snap, &err), err);
    if (snap) {
        compare_snapshot(snap, &c, &f);
        check_ivf_brute_force(snap);
        cp_snapshot_retain(snap);
        cp_snapshot_release(snap);
        cp_snapshot_release(snap);
    }
    /* A read-only store refuses writes with CP_EREADONLY. */
    s = cp_store_set_meta(st, "x", "y", &err);
    CP_CHECK_INT(s, CP_EREADONLY);
    cp_store_close(st);
    free_fixture(&f);
    free(c.centroids);
}

/* Deleted rows (tombstones) stay out of the snapshot and the IVF. */
static void test_tombstones(const char *dir)
{
    cp_error err = {0};
    cp_codec c;
    st_make_codec(&c, 16, 4, 8, 3);
    fixture f;
    make_fixture(&f, &c, 50, 5);
    char path[600];
    snprintf(path, sizeof path, "%s/tomb.db", dir);
    cp_store *st = NULL;
    CP_CHECK_OK(cp_store_create(path, &c, &st, &err), err);
    if (!st) return;
    CP_CHECK_OK(cp_store_begin(st, &err), err);
    CP_CHECK_OK(append_range(st, &c, &f, 0, 50, NULL, &err), err);
    CP_CHECK_OK(cp_store_commit(st, &err), err);
    CP_CHECK(sqlite3_exec(cp_store_sqlite(st), "UPDATE documents SET deleted = 1 WHERE doc_id % 7 = 0",
                          NULL, NULL, NULL) == SQLITE_OK);
    cp_snapshot *snap = NULL;
    CP_CHECK_OK(cp_store_load_snapshot(st, &snap, &err), err);
    if (snap) {
        /* Slots are dense: the live documents only, in internal-id order; a tombstone has no
         * slot, and memory does not grow with the ids ever used. */
        int64_t live = 0, tokens = 0;
        for (int64_t d = 0; d < 50; d++) {
            int64_t slot = cp_snapshot_slot_of(snap, d);
            CP_CHECK_INT(slot < 0, d % 7 == 0);
            if (d % 7) {
                CP_CHECK_INT(slot, live);
                CP_CHECK_INT(cp_snapshot_file_id(snap, slot), d);
                CP_CHECK(slot >= 0 && !snap->deleted[slot]);
                if (slot >= 0)
                    CP_CHECK_INT(snap->doc_offsets[slot + 1] - snap->doc_offsets[slot],
                                 f.doclens[d]);
                live++;
                tokens += f.doclens[d];
            }
        }
        CP_CHECK_INT(snap->n_slots, live);
        CP_CHECK_INT(snap->next_file_id, 50);
        CP_CHECK_INT(snap->n_live, live);
        CP_CHECK_INT(snap->n_tokens, tokens);
        check_ivf_brute_force(snap);
        cp_snapshot_release(snap);
    }
    /* Internal ids are never reused: the next append continues after the last id. */
    CP_CHECK_OK(cp_store_begin(st, &err), err);
    int64_t first = -1;
    cp_document d = {.id = "doc-0"}; /* deleted above, so its external id is free again */
    int32_t len = 0;
    cp_segment_input seg = {.n_docs = 1, .docs = &d, .doclens = &len, .n_tokens = 0};
    CP_CHECK_OK(cp_store_append_segment(st, &seg, &first, &err), err);
    CP_CHECK_INT(first, 50);
    CP_CHECK_OK(cp_store_commit(st, &err), err);
    cp_store_close(st);
    free_fixture(&f);
    free(c.centroids);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    CP_CHECK(fp != NULL);
    if (!fp) return;
    fwrite(data, 1, n, fp);
    fclose(fp);
}

static void expect_open_fails(const char *path, cp_status want, const char *needle)
{
    cp_error err = {0};
    cp_store *st = NULL;
    cp_status s = cp_store_open(path, CP_OPEN_READONLY, &st, &err);
    CP_CHECK_INT(s, want);
    CP_CHECK(st == NULL);
    if (s != want || !strstr(err.message, path) || (needle && !strstr(err.message, needle)))
        fprintf(stderr, "  message for %s: %s\n", path, err.message);
    CP_CHECK(strstr(err.message, path) != NULL);
    if (needle) CP_CHECK(strstr(err.message, needle) != NULL);
    cp_store_close(st);
}

static void test_foreign_files(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/text.db", dir);
    write_file(path, "hello, this is not a database at all, just some text\n", 54);
    expect_open_fails(path, CP_EFORMAT, "not an SQLite database");

    snprintf(path, sizeof path, "%s/empty.db", dir);
    write_file(path, "", 0);
    expect_open_fails(path, CP_EFORMAT, "empty");

    snprintf(path, sizeof path, "%s/missing.db", dir);
    expect_open_fails(path, CP_ENOTFOUND, NULL);

    /* Some other application's SQLite database. */
    snprintf(path, sizeof path, "%s/other.db", dir);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", NULL, NULL, NULL);
    sqlite3_close(db);
    expect_open_fails(path, CP_EFORMAT, "not a colplaid index");

    /* A real index, then a future format version, then cut short. */
    cp_codec c;
    st_make_codec(&c, 32, 2, 512, 9);
    cp_error err = {0};
    cp_store *st = NULL;
    snprintf(path, sizeof path, "%s/future.db", dir);
    CP_CHECK_OK(cp_store_create(path, &c, &st, &err), err);
    cp_store_close(st);
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    expect_open_fails(path, CP_EFORMAT, "format version 99");

    snprintf(path, sizeof path, "%s/trunc.db", dir);
    CP_CHECK_OK(cp_store_create(path, &c, &st, &err), err);
    cp_store_close(st);
    CP_CHECK(truncate(path, 8192) == 0);
    expect_open_fails(path, CP_ECORRUPT, "truncated");
    CP_CHECK(truncate(path, 60) == 0);
    expect_open_fails(path, CP_ECORRUPT, "truncated");
    free(c.centroids);
}

/* A second writer, in this process or another, gets CP_EBUSY; readers are unaffected. */
static void test_writer_lock(const char *dir)
{
    cp_codec c;
    st_make_codec(&c, 16, 1, 4, 1);
    char path[600];
    snprintf(path, sizeof path, "%s/lock.db", dir);
    cp_error err = {0};
    cp_store *st = NULL, *w = NULL, *r = NULL;
    CP_CHECK_OK(cp_store_create(path, &c, &st, &err), err);
    cp_store_close(st);
    CP_CHECK_OK(cp_store_open(path, CP_OPEN_WRITE, &w, &err), err);
    pid_t pid = fork();
    if (pid == 0) {
        cp_store *w2 = NULL;
        cp_error e2 = {0};
        cp_status s = cp_store_open(path, CP_OPEN_WRITE, &w2, &e2);
        _exit(s == CP_EBUSY && strstr(e2.message, "another process") ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CP_CHECK_OK(cp_store_open(path, CP_OPEN_READONLY, &r, &err), err);
    cp_store_close(r);
    cp_store_close(w);
    /* Released on close: a new writer gets in. */
    CP_CHECK_OK(cp_store_open(path, CP_OPEN_WRITE, &w, &err), err);
    cp_store_close(w);
    /* Creating over an existing file is refused. */
    CP_CHECK_INT(cp_store_create(path, &c, &st, &err), CP_EEXISTS);
    free(c.centroids);
}

static void test_bad_segment_input(const char *dir)
{
    cp_codec c;
    st_make_codec(&c, 16, 2, 4, 1);
    char path[600];
    snprintf(path, sizeof path, "%s/bad.db", dir);
    cp_error err = {0};
    cp_store *st = NULL;
    CP_CHECK_OK(cp_store_create(path, &c, &st, &err), err);
    if (!st) return;
    cp_document d = {.id = "a"};
    int32_t len = 2, codes[2] = {1, 9}; /* 9 >= n_centroids */
    uint8_t res[8] = {0};
    cp_segment_input seg = {.n_docs = 1, .docs = &d, .doclens = &len, .n_tokens = 2,
                            .codes = codes, .residuals = res};
    CP_CHECK_INT(cp_store_append_segment(st, &seg, NULL, &err), CP_EINTERNAL); /* no txn */
    CP_CHECK_OK(cp_store_begin(st, &err), err);
    CP_CHECK_INT(cp_store_append_segment(st, &seg, NULL, &err), CP_EINVAL);
    codes[1] = 3;
    seg.n_tokens = 3; /* doclens sum to 2 */
    CP_CHECK_INT(cp_store_append_segment(st, &seg, NULL, &err), CP_EINVAL);
    cp_store_rollback(st);
    cp_store_close(st);
    free(c.centroids);
}

/* cp_checksum64 against the definition written in docs/index-format.md, re-implemented
 * here word by word, for every length 0..200 and a chained second array. */
static uint64_t doc_mix(uint64_t h, uint64_t w)
{
    const uint64_t m = UINT64_C(0x9E3779B97F4A7C15);
    return ((h ^ w) * m) ^ (((h ^ w) * m) >> 29);
}

static uint64_t doc_checksum(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i = 0;
    if (n >= 32) {
        uint64_t l[4] = {h, h ^ 1, h ^ 2, h ^ 3};
        for (; i + 32 <= n; i += 32)
            for (int k = 0; k < 4; k++) {
                uint64_t w = 0;
                for (int b = 7; b >= 0; b--) w = w << 8 | p[i + 8 * (size_t)k + (size_t)b];
                l[k] = doc_mix(l[k], w);
            }
        h = doc_mix(doc_mix(doc_mix(l[0], l[1]), l[2]), l[3]);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int b = 7; b >= 0; b--) w = w << 8 | p[i + (size_t)b];
        h = doc_mix(h, w);
    }
    uint64_t t = 0, r = n - i;
    for (size_t b = 0; b < r; b++) t |= (uint64_t)p[i + b] << (8 * b);
    h = (h ^ t ^ (r << 56)) * UINT64_C(0x9E3779B97F4A7C15);
    return h ^ (h >> 32);
}

static void test_checksum_definition(void)
{
    uint8_t buf[200];
    uint64_t s = 77;
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)st_rand(&s);
    int bad = 0;
    for (size_t n = 0; n <= sizeof buf; n++) {
        uint64_t a = cp_checksum64(CP_CHECKSUM_SEED, buf, n);
        a = cp_checksum64(a, buf + 3, n / 2);
        uint64_t b = doc_checksum(CP_CHECKSUM_SEED, buf, n);
        b = doc_checksum(b, buf + 3, n / 2);
        if (a != b) bad++;
    }
    CP_CHECK_INT(bad, 0);
    /* One flipped bit anywhere changes it. */
    uint64_t h0 = cp_checksum64(CP_CHECKSUM_SEED, buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] ^= 4;
        if (cp_checksum64(CP_CHECKSUM_SEED, buf, sizeof buf) == h0) bad++;
        buf[i] ^= 4;
    }
    CP_CHECK_INT(bad, 0);
}

/* A full disk (simulated with max_page_count) is CP_ENOSPC, and the rollback leaves the file
 * as it was. */
static void test_disk_full(const char *dir)
{
    cp_codec c;
    st_make_codec(&c, 32, 4, 16, 5);
    fixture f;
    make_fixture(&f, &c, 400, 17);
    char path[600];
    snprintf(path, sizeof path, "%s/full.db", dir);
    cp_error err = {0};
    cp_store *st = NULL;
    CP_CHECK_OK(cp_store_create(path, &c, &st, &err), err);
    if (!st) return;
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(cp_store_sqlite(st), "PRAGMA page_count", -1, &q, NULL);
    sqlite3_step(q);
    long long pages = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA max_page_count = %lld", pages + 2);
    CP_CHECK(sqlite3_exec(cp_store_sqlite(st), pragma, NULL, NULL, NULL) == SQLITE_OK);
    CP_CHECK_OK(cp_store_begin(st, &err), err);
    cp_status s = append_range(st, &c, &f, 0, 400, NULL, &err);
    CP_CHECK_INT(s, CP_ENOSPC);
    CP_CHECK(strstr(err.message, "disk is full") != NULL);
    cp_store_rollback(st);
    cp_snapshot *snap = NULL;
    CP_CHECK_OK(cp_store_load_snapshot(st, &snap, &err), err);
    if (snap) CP_CHECK_INT(snap->n_slots, 0);
    cp_snapshot_release(snap);
    cp_store_close(st);
    free_fixture(&f);
    free(c.centroids);
}

int main(void)
{
    test_checksum_definition();
    char *dir = st_tempdir("test_storage");
    test_round_trip(dir);
    test_tombstones(dir);
    test_foreign_files(dir);
    test_writer_lock(dir);
    test_bad_segment_input(dir);
    test_disk_full(dir);
    int rc = CP_TEST_RESULT();
    if (rc == 0) st_rm_rf(dir);
    free(dir);
    return rc;
}
