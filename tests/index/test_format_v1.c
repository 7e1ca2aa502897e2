/*
 * Format compatibility: tests/data/colplaid-v1/index.db was written by colplaid before the
 * format moved to version 2 (PRAGMA user_version 1, no meta "codec": the COLBERT codec).
 * It must still open, report format version 1 and codec colbert, and search exactly as the
 * code that wrote it did: expected_exact.tsv and expected_plaid.tsv are that code's
 * `colplaid search --query-embeddings queries.npy --k 5 [--exact | --ncells 2]` output
 * (qid, doc id, rank, score). The fixture is copied to a temporary folder first, since a
 * read-only open of a WAL database leaves -wal/-shm files beside it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colplaid/index.h"
#include "colplaid/npy.h"
#include "cp_test.h"

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int ok = in && out;
    char buf[8192];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok;
}

/* Compare the searches of every query with the expected TSV lines. */
static void check_search(cp_index *ix, const cp_npy *q, const char *expected, bool exact)
{
    FILE *f = fopen(expected, "r");
    CP_CHECK(f != NULL);
    if (!f) return;
    int nq = (int)q->shape[1], dim = (int)q->shape[2];
    float *rows = malloc(sizeof(float) * (size_t)nq * dim);
    cp_search_params p;
    cp_search_params_init(&p, 5);
    p.exact = exact;
    if (!exact) p.ncells = 2;
    int lines = 0;
    for (int64_t qi = 0; qi < q->shape[0]; qi++) {
        cp_npy_floats(q, qi * nq * dim, (int64_t)nq * dim, rows);
        cp_hit hits[5];
        int n = 0;
        cp_error err = {0};
        CP_CHECK_OK(cp_index_search(ix, rows, nq, dim, &p, hits, &n, NULL, &err), err);
        for (int r = 0; r < n; r++) {
            long long eq, ed;
            int er;
            float es;
            CP_CHECK(fscanf(f, "%lld %lld %d %f", &eq, &ed, &er, &es) == 4);
            CP_CHECK_INT(eq, qi);
            CP_CHECK_INT(er, r + 1);
            CP_CHECK_INT(hits[r].doc_id, ed); /* external ids are 0..59 = internal ids */
            CP_CHECK_NEAR(hits[r].score, es, 2e-5);
            lines++;
        }
    }
    CP_CHECK_INT(lines, 5 * q->shape[0]);
    free(rows);
    fclose(f);
}

int main(void)
{
    const char *data = cp_test_data();
    char dir[] = "/tmp/cp_test_v1.XXXXXX", src[1024], db[1200];
    CP_CHECK(mkdtemp(dir) != NULL);
    snprintf(src, sizeof src, "%s/colplaid-v1/index.db", data);
    snprintf(db, sizeof db, "%s/index.db", dir);
    CP_CHECK(copy_file(src, db));
    cp_error err = {0};
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(db, CP_OPEN_READONLY, &ix, &err), err);
    if (ix) {
        cp_index_stats s;
        CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
        CP_CHECK_INT(s.format_version, 1);
        CP_CHECK(s.codec && strcmp(s.codec, "colbert") == 0);
        CP_CHECK_INT(s.n_documents, 60);
        CP_CHECK_INT(s.nbits, 2);
        cp_npy q;
        char path[1200];
        snprintf(path, sizeof path, "%s/colplaid-v1/queries.npy", data);
        CP_CHECK_OK(cp_npy_open(path, &q, &err), err);
        snprintf(path, sizeof path, "%s/colplaid-v1/expected_exact.tsv", data);
        check_search(ix, &q, path, true);
        snprintf(path, sizeof path, "%s/colplaid-v1/expected_plaid.tsv", data);
        check_search(ix, &q, path, false);
        cp_npy_close(&q);
        cp_index_close(ix);
    }
    const char *side[] = {"", "-wal", "-shm", "-lock"};
    for (int i = 0; i < 4; i++) {
        char p[1300];
        snprintf(p, sizeof p, "%s%s", db, side[i]);
        unlink(p);
    }
    rmdir(dir);
    return CP_TEST_RESULT();
}
