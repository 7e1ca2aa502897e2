/*
 * The cp_index handle over a synthetic index: id maps, document reads from many threads,
 * stats, publishing a snapshot while a reader holds the old one, the writer lock through
 * cp_index_open, export round trip (read back with the project's .npy reader), and
 * cp_index_check finding damage made with SQL (a flipped byte in a segment blob, a document
 * row that disagrees with its segment).
 */
#include <pthread.h>
#include <unistd.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "cp_test.h"
#include "colplaid/npy.h"
#include "codec.h"
#include "index_handle.h"
#include "snapshot.h"
#include "storage.h"
#include "storage_test_util.h"

#define N_DOCS 200
#define DIM 32
#define NBITS 2

static int32_t doclens[N_DOCS];
static char ids[N_DOCS][32];

/* Two segments of random tokens; doc i has external id "ext-i" and text "text i". */
static void make_index(const char *path, cp_codec *c)
{
    st_make_codec(c, DIM, NBITS, 64, 21);
    uint64_t s = 99;
    int64_t total = 0;
    for (int i = 0; i < N_DOCS; i++) {
        doclens[i] = 1 + (int32_t)(st_rand(&s) % 30);
        total += doclens[i];
        snprintf(ids[i], sizeof ids[i], "ext-%d", i);
    }
    int rb = cp_residual_bytes(DIM, NBITS);
    int32_t *codes = malloc((size_t)total * sizeof *codes);
    uint8_t *res = malloc((size_t)total * (size_t)rb);
    for (int64_t t = 0; t < total; t++) codes[t] = (int32_t)(st_rand(&s) % 64);
    for (int64_t t = 0; t < total * rb; t++) res[t] = (uint8_t)st_rand(&s);
    cp_document docs[N_DOCS];
    static char texts[N_DOCS][32];
    for (int i = 0; i < N_DOCS; i++) {
        snprintf(texts[i], sizeof texts[i], "text %d", i);
        docs[i] = (cp_document){.id = ids[i], .text = texts[i], .metadata_json = "{\"k\":1}"};
    }
    cp_error err = {0};
    cp_store *st = NULL;
    CP_CHECK_OK(cp_store_create(path, c, &st, &err), err);
    CP_CHECK_OK(cp_store_begin(st, &err), err);
    int64_t half_tokens = 0;
    for (int i = 0; i < N_DOCS / 2; i++) half_tokens += doclens[i];
    cp_segment_input a = {N_DOCS / 2, docs, doclens, half_tokens, codes, res};
    cp_segment_input b = {N_DOCS / 2, docs + N_DOCS / 2, doclens + N_DOCS / 2, total - half_tokens,
                          codes + half_tokens, res + half_tokens * rb};
    CP_CHECK_OK(cp_store_append_segment(st, &a, NULL, &err), err);
    CP_CHECK_OK(cp_store_append_segment(st, &b, NULL, &err), err);
    CP_CHECK_OK(cp_store_commit(st, &err), err);
    cp_store_close(st);
    free(codes);
    free(res);
}

typedef struct reader_arg {
    cp_index *ix;
    int errors;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    cp_error err = {0};
    for (int round = 0; round < 20; round++)
        for (int i = round % 7; i < N_DOCS; i += 7) {
            cp_document_info info;
            int64_t id = -1;
            if (cp_index_document_get(a->ix, ids[i], &info, &err) != CP_OK) {
                a->errors++;
                continue;
            }
            char want[32];
            snprintf(want, sizeof want, "text %d", i);
            if (info.doc_id != i || !info.text || strcmp(info.text, want) ||
                info.n_tokens != doclens[i])
                a->errors++;
            cp_document_info_free(&info);
            if (cp_index_doc_id(a->ix, ids[i], &id, &err) != CP_OK || id != i) a->errors++;
        }
    return NULL;
}

static void test_handle(const char *path)
{
    cp_error err = {0};
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_READONLY, &ix, &err), err);
    if (!ix) return;
    cp_index_stats s;
    CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
    CP_CHECK_INT(s.n_documents, N_DOCS);
    CP_CHECK_INT(s.n_segments, 2);
    CP_CHECK_INT(s.n_deleted, 0);
    CP_CHECK_INT(s.format_version, CP_INDEX_FORMAT_VERSION);
    CP_CHECK(s.bytes_on_disk > 0 && s.bytes_in_memory > 0);
    char *ext = NULL;
    CP_CHECK_OK(cp_index_external_id(ix, 17, &ext, &err), err);
    CP_CHECK(ext && strcmp(ext, "ext-17") == 0);
    free(ext);
    CP_CHECK_INT(cp_index_external_id(ix, N_DOCS, &ext, &err), CP_ENOTFOUND);
    int64_t id;
    CP_CHECK_INT(cp_index_doc_id(ix, "nope", &id, &err), CP_ENOTFOUND);
    cp_document_info info;
    CP_CHECK_INT(cp_index_document_get(ix, "nope", &info, &err), CP_ENOTFOUND);
    char *fv = cp_index_meta_get(ix, "format_version");
    CP_CHECK(fv && strcmp(fv, "2") == 0);
    free(fv);

    /* Concurrent readers: every answer right, no errors (connection pool + map). */
    pthread_t th[6];
    reader_arg args[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (reader_arg){ix, 0};
        pthread_create(&th[i], NULL, reader, &args[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        CP_CHECK_INT(args[i].errors, 0);
    }

    /* Publishing a new snapshot: a held old snapshot stays readable and unchanged. */
    cp_snapshot *old = cp_index_acquire_snapshot(ix);
    int64_t old_tokens = old->n_tokens;
    cp_store *st = NULL;
    cp_snapshot *next = NULL;
    CP_CHECK_OK(cp_store_open(path, CP_OPEN_READONLY, &st, &err), err);
    CP_CHECK_OK(cp_store_load_snapshot(st, &next, &err), err);
    cp_store_close(st);
    if (next) CP_CHECK_OK(cp_index_publish_snapshot(ix, next, &err), err);
    cp_snapshot *cur = cp_index_acquire_snapshot(ix);
    CP_CHECK(cur == next && cur != old);
    CP_CHECK_INT(old->n_tokens, old_tokens);
    CP_CHECK(old->codes[old_tokens - 1] >= 0);
    cp_snapshot_release(cur);
    cp_snapshot_release(old);
    CP_CHECK_OK(cp_index_doc_id(ix, "ext-5", &id, &err), err);
    CP_CHECK_INT(id, 5);
    cp_index_close(ix);
}

typedef struct spin_arg {
    cp_index *ix;
    _Atomic int stop;
    _Atomic int errors;
    _Atomic long reads;
} spin_arg;

/* Readers that hold snapshots across publishes: every snapshot they hold stays whole. */
static void *snapshot_reader(void *p)
{
    spin_arg *a = p;
    cp_error err = {0};
    while (!atomic_load(&a->stop)) {
        cp_snapshot *s = cp_index_acquire_snapshot(a->ix);
        int64_t sum = 0;
        for (int64_t t = 0; t < s->n_tokens; t += 17) sum += s->codes[t];
        if (s->n_live != N_DOCS || sum < 0 || s->ivf_offsets[s->codec.n_centroids] <= 0) a->errors++;
        int64_t id = -1;
        if (cp_index_doc_id(a->ix, "ext-42", &id, &err) != CP_OK || id != 42) a->errors++;
        cp_snapshot_release(s);
        a->reads++;
    }
    return NULL;
}

static void test_publish_under_readers(const char *path)
{
    cp_error err = {0};
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_READONLY, &ix, &err), err);
    if (!ix) return;
    spin_arg a = {.ix = ix};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, snapshot_reader, &a);
    /* On a loaded machine the readers may not have run yet: publishing before they hold a
     * snapshot would test nothing. Wait (bounded) until they do. */
    for (int waited = 0; atomic_load(&a.reads) < 3 && waited < 10000; waited++) usleep(1000);
    cp_store *st = NULL;
    CP_CHECK_OK(cp_store_open(path, CP_OPEN_READONLY, &st, &err), err);
    for (int i = 0; st && i < 15; i++) {
        cp_snapshot *next = NULL;
        CP_CHECK_OK(cp_store_load_snapshot(st, &next, &err), err);
        if (next) CP_CHECK_OK(cp_index_publish_snapshot(ix, next, &err), err);
    }
    cp_store_close(st);
    atomic_store(&a.stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    CP_CHECK_INT(a.errors, 0);
    CP_CHECK(a.reads > 0);
    cp_index_close(ix);
}

static void test_writer_lock(const char *path)
{
    cp_error err = {0};
    cp_index *w = NULL, *r = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_WRITE, &w, &err), err);
    CP_CHECK(w && cp_index_writer_store(w) != NULL);
    pid_t pid = fork();
    if (pid == 0) {
        cp_index *w2 = NULL;
        cp_error e2 = {0};
        cp_status s = cp_index_open(path, CP_OPEN_WRITE, &w2, &e2);
        if (s != CP_EBUSY) fprintf(stderr, "second writer: %s\n", e2.message);
        cp_index *r2 = NULL;
        cp_status rs = cp_index_open(path, CP_OPEN_READONLY, &r2, &e2);
        cp_index_close(r2);
        _exit(s == CP_EBUSY && rs == CP_OK ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_READONLY, &r, &err), err);
    cp_index_close(r);
    cp_index_close(w);
}

static void test_export(const char *dir, const char *path)
{
    cp_error err = {0};
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(path, CP_OPEN_READONLY, &ix, &err), err);
    if (!ix) return;
    char emb[600], lens[600], idp[600];
    snprintf(emb, sizeof emb, "%s/emb.npy", dir);
    snprintf(lens, sizeof lens, "%s/lens.npy", dir);
    snprintf(idp, sizeof idp, "%s/ids.txt", dir);
    CP_CHECK_OK(cp_index_export(ix, emb, lens, idp, &err), err);
    cp_npy e, l;
    CP_CHECK_OK(cp_npy_open(emb, &e, &err), err);
    CP_CHECK_OK(cp_npy_open(lens, &l, &err), err);
    CP_CHECK_INT(e.dtype, CP_NPY_F32);
    CP_CHECK_INT(l.dtype, CP_NPY_I64);
    CP_CHECK_INT(l.count, N_DOCS);
    CP_CHECK_INT(e.ndim, 2);
    CP_CHECK_INT(e.shape[1], DIM);
    int64_t row = 0, mismatches = 0;
    for (int d = 0; d < N_DOCS && l.count == N_DOCS; d++) {
        CP_CHECK_INT(cp_npy_int_at(&l, d), doclens[d]);
        float *v = NULL;
        int32_t n = 0;
        CP_CHECK_OK(cp_index_document_embeddings(ix, d, &v, &n, &err), err);
        float got[DIM];
        for (int32_t t = 0; t < n && row < e.shape[0]; t++, row++) {
            cp_npy_floats(&e, row * DIM, DIM, got);
            if (memcmp(got, v + t * DIM, sizeof got) != 0) mismatches++;
        }
        free(v);
    }
    CP_CHECK_INT(row, e.shape[0]);
    CP_CHECK_INT(mismatches, 0);
    cp_npy_close(&e);
    cp_npy_close(&l);
    FILE *f = fopen(idp, "r");
    char line[64];
    int n = 0, bad = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (n >= N_DOCS || strcmp(line, ids[n])) bad++;
        n++;
    }
    if (f) fclose(f);
    CP_CHECK_INT(n, N_DOCS);
    CP_CHECK_INT(bad, 0);
    /* An unwritable destination fails cleanly. */
    CP_CHECK(cp_index_export(ix, "/nonexistent-dir/x.npy", lens, NULL, &err) != CP_OK);
    cp_index_close(ix);
}

static int sql(const char *path, const char *stmt)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, stmt, NULL, NULL, NULL);
    if (rc != SQLITE_OK) fprintf(stderr, "sql %s: %s\n", stmt, sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
}

/* Run the checker with its report captured in a file; return the report text. */
static char *run_check(const char *dir, const char *path, cp_status *st)
{
    char rp[600];
    snprintf(rp, sizeof rp, "%s/report.txt", dir);
    FILE *f = fopen(rp, "w+");
    cp_error err = {0};
    *st = cp_index_check(path, f, &err);
    rewind(f);
    char *text = calloc(1, 65536);
    size_t n = fread(text, 1, 65535, f);
    text[n] = 0;
    fclose(f);
    return text;
}

static void test_check(const char *dir, const char *path)
{
    cp_status st;
    char *rep = run_check(dir, path, &st);
    CP_CHECK_INT(st, CP_OK);
    CP_CHECK(rep[0] == 0);
    free(rep);

    /* Flip one byte in the middle of segment 1's residual blob. */
    CP_CHECK_INT(sql(path, "UPDATE segments SET residuals = substr(residuals, 1, 200) ||"
                           " x'5A' || substr(residuals, 202) WHERE segment_id = 1"),
                 SQLITE_OK);
    rep = run_check(dir, path, &st);
    CP_CHECK_INT(st, CP_ECORRUPT);
    CP_CHECK(strstr(rep, "segment 1") != NULL);
    CP_CHECK(strstr(rep, "segment 0") == NULL);
    CP_CHECK(strstr(rep, "100 live documents are unreadable") != NULL);
    int lines = 0;
    for (const char *p = rep; *p; p++) lines += *p == '\n';
    CP_CHECK_INT(lines, 2); /* the segment, and one summary of its documents */
    printf("check report after a flipped byte:\n%s", rep);
    free(rep);
    cp_error err = {0};
    cp_index *ix = NULL;
    CP_CHECK_INT(cp_index_open(path, CP_OPEN_READONLY, &ix, &err), CP_ECORRUPT);
    CP_CHECK(strstr(err.message, path) != NULL);

    /* A document row that disagrees with its segment is reported too. */
    CP_CHECK_INT(sql(path, "UPDATE documents SET n_tokens = n_tokens + 1 WHERE doc_id = 3"),
                 SQLITE_OK);
    rep = run_check(dir, path, &st);
    CP_CHECK_INT(st, CP_ECORRUPT);
    CP_CHECK(strstr(rep, "document 3") != NULL);
    free(rep);
}

int main(void)
{
    char *dir = st_tempdir("test_index_admin");
    char path[600];
    snprintf(path, sizeof path, "%s/idx.db", dir);
    cp_codec c;
    make_index(path, &c);
    test_handle(path);
    test_publish_under_readers(path);
    test_writer_lock(path);
    test_export(dir, path);
    test_check(dir, path);
    free(c.centroids);
    int rc = CP_TEST_RESULT();
    if (rc == 0) st_rm_rf(dir);
    free(dir);
    return rc;
}
