/*
 * Should the IVF be stored in the index file or rebuilt at load? This program writes a
 * synthetic index of N tokens (default 7M: 100k documents x 70 tokens, K = 32768, dim 128,
 * nbits 2) through the real storage code, then measures in one run:
 *   - loading the snapshot (segments -> arrays), with the IVF rebuilt (cp_snapshot_build_ivf);
 *   - the rebuild alone;
 *   - the alternative: reading a stored IVF (CSR offsets + doc ids, zstd-compressed in one
 *     blob, as the segments are) back from the same SQLite file and decompressing it;
 * and prints the sizes. Times are thread CPU seconds (best of 5 for the two IVF
 * alternatives). usage: bench_ivf_load [DIR] [N_DOCS] [TOKENS_PER_DOC] [K]
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "codec.h"
#include "snapshot.h"
#include "storage.h"

/* Thread CPU time, not wall time: the machines this runs on are often shared, and CPU time
 * is what the two alternatives actually cost. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int fail(const cp_error *err)
{
    fprintf(stderr, "bench_ivf_load: %s\n", err->message);
    return 1;
}

static int write_index(const char *path, int64_t n_docs, int tpd, int64_t k)
{
    cp_codec c = {.dim = 128, .nbits = 2, .n_centroids = k};
    c.centroids = calloc((size_t)k * 128, sizeof(float));
    for (int64_t i = 0; i < k; i++) c.centroids[i * 128 + i % 128] = 1.0f;
    for (int i = 0; i < 3; i++) c.bucket_cutoffs[i] = -0.05f + 0.05f * (float)i;
    for (int i = 0; i < 4; i++) c.bucket_weights[i] = -0.06f + 0.04f * (float)i;
    cp_error err = {0};
    cp_store *st = NULL;
    if (cp_store_create(path, &c, &st, &err) != CP_OK || cp_store_begin(st, &err) != CP_OK)
        return fail(&err);
    enum { SEG = 4096 };
    int rb = cp_residual_bytes(128, 2);
    int32_t *codes = malloc((size_t)SEG * (size_t)tpd * sizeof *codes), doclens[SEG];
    uint8_t *res = malloc((size_t)SEG * (size_t)tpd * (size_t)rb);
    cp_document docs[SEG];
    static char ids[SEG][24];
    uint64_t s = 12345;
    for (int64_t d0 = 0; d0 < n_docs; d0 += SEG) {
        int n = (int)(n_docs - d0 < SEG ? n_docs - d0 : SEG);
        for (int i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "doc%lld", (long long)(d0 + i));
            docs[i] = (cp_document){.id = ids[i]};
            doclens[i] = tpd;
        }
        /* Tokens of a document cluster on a few centroids, as real text does. */
        for (int64_t t = 0; t < (int64_t)n * tpd; t++) {
            uint64_t base = (uint64_t)(t / tpd) * 2654435761u % (uint64_t)k;
            codes[t] = (int32_t)((rng(&s) % 4 == 0 ? rng(&s) : base + rng(&s) % 64) % (uint64_t)k);
        }
        for (int64_t b = 0; b < (int64_t)n * tpd * rb; b++) res[b] = (uint8_t)rng(&s);
        cp_segment_input seg = {(size_t)n, docs, doclens, (int64_t)n * tpd, codes, res};
        if (cp_store_append_segment(st, &seg, NULL, &err) != CP_OK) return fail(&err);
    }
    if (cp_store_commit(st, &err) != CP_OK) return fail(&err);
    cp_store_close(st);
    free(codes);
    free(res);
    free(c.centroids);
    return 0;
}

/* Store the IVF as one zstd blob (the "stored" alternative) and time reading it back. */
static int stored_ivf(const char *path, const cp_snapshot *snap, double *t_read, size_t *blob_bytes)
{
    int64_t k = snap->codec.n_centroids, n = snap->ivf_offsets[k];
    size_t raw = (size_t)(k + 1) * 8 + (size_t)n * 4;
    uint8_t *buf = malloc(raw);
    memcpy(buf, snap->ivf_offsets, (size_t)(k + 1) * 8);
    memcpy(buf + (k + 1) * 8, snap->ivf_docs, (size_t)n * 4);
    size_t cap = ZSTD_compressBound(raw);
    uint8_t *z = malloc(cap);
    size_t zn = ZSTD_compress(z, cap, buf, raw, 3);
    *blob_bytes = zn;
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS bench_ivf(id INTEGER PRIMARY KEY, data BLOB)", 0, 0, 0);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO bench_ivf VALUES (1, ?)", -1, &q, NULL);
    sqlite3_bind_blob64(q, 1, z, zn, SQLITE_STATIC);
    sqlite3_step(q);
    sqlite3_finalize(q);
    sqlite3_close(db);

    double t0 = now();
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_prepare_v2(db, "SELECT data FROM bench_ivf WHERE id = 1", -1, &q, NULL);
    sqlite3_step(q);
    const void *blob = sqlite3_column_blob(q, 0);
    size_t bn = (size_t)sqlite3_column_bytes(q, 0);
    uint8_t *out = malloc(raw);
    size_t got = ZSTD_decompress(out, raw, blob, bn);
    int64_t *offs = malloc((size_t)(k + 1) * 8);
    int32_t *docs = malloc((size_t)n * 4);
    memcpy(offs, out, (size_t)(k + 1) * 8);
    memcpy(docs, out + (k + 1) * 8, (size_t)n * 4);
    sqlite3_finalize(q);
    sqlite3_close(db);
    *t_read = now() - t0;
    int ok = got == raw && memcmp(docs, snap->ivf_docs, (size_t)n * 4) == 0;
    free(buf), free(z), free(out), free(offs), free(docs);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int64_t n_docs = argc > 2 ? atoll(argv[2]) : 100000;
    int tpd = argc > 3 ? atoi(argv[3]) : 70;
    int64_t k = argc > 4 ? atoll(argv[4]) : 32768;
    char path[1024];
    snprintf(path, sizeof path, "%s/bench_ivf_%d.db", dir, (int)getpid());
    double t0 = now();
    if (write_index(path, n_docs, tpd, k)) return 1;
    double t_write = now() - t0;
    cp_error err = {0};
    cp_store *st = NULL;
    cp_snapshot *snap = NULL;
    if (cp_store_open(path, CP_OPEN_READONLY, &st, &err) != CP_OK) return fail(&err);
    t0 = now();
    if (cp_store_load_snapshot(st, &snap, &err) != CP_OK) return fail(&err);
    double t_load = now() - t0;
    cp_store_close(st);
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        t0 = now();
        if (cp_snapshot_build_ivf(snap, &err) != CP_OK) return fail(&err);
        double t = now() - t0;
        if (t < best) best = t;
    }
    double t_read = 1e9;
    size_t blob = 0;
    for (int r = 0; r < 5; r++) {
        double t = 0;
        if (stored_ivf(path, snap, &t, &blob)) {
            fprintf(stderr, "stored IVF did not round-trip\n");
            return 1;
        }
        if (t < t_read) t_read = t;
    }
    int64_t pairs = snap->ivf_offsets[k];
    printf("{\"tokens\": %lld, \"docs\": %lld, \"centroids\": %lld, \"ivf_entries\": %lld,\n"
           " \"write_cpu_s\": %.2f, \"load_snapshot_with_ivf_rebuild_cpu_s\": %.3f,\n"
           " \"ivf_rebuild_cpu_s\": %.3f, \"ivf_stored_read_cpu_s\": %.3f, \"ivf_stored_blob_mb\": %.1f}\n",
           (long long)snap->n_tokens, (long long)snap->n_live, (long long)k, (long long)pairs,
           t_write, t_load, best, t_read, (double)blob / 1e6);
    cp_snapshot_release(snap);
    char p2[1100];
    unlink(path);
    snprintf(p2, sizeof p2, "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s-shm", path);
    unlink(p2);
    return 0;
}
