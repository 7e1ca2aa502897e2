/*
 * Cost of live updates (index/live.c) on a large index: writes a synthetic index (default
 * 100k documents x 70 tokens = 7M tokens, K = 32768, dim 128, nbits 2) through the real
 * storage code, opens it for writing, then measures in one run:
 *   - upserts of 1, 100 and 10,000 new documents (wall latency, tokens/s);
 *   - a replacement of 1 existing document;
 *   - deletes of 1 and 1,000 documents (latency, and bytes the file + WAL grew by: a delete
 *     writes a few pages, it does not rewrite the index);
 *   - a search before and after, and compaction at the end.
 * Vectors are centroid + noise, so compression does the same work as on real data.
 * usage: bench_updates [DIR] [N_DOCS] [TOKENS_PER_DOC] [K]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cp_cpu.h"
#include "codec.h"
#include "storage.h"

enum { DIM = 128, NBITS = 2 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float randf(uint64_t *s)
{
    return (float)((double)(rng(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int fail(const cp_error *err)
{
    fprintf(stderr, "bench_updates: %s\n", err->message);
    return 1;
}

static void make_codec(cp_codec *c, int64_t k)
{
    memset(c, 0, sizeof *c);
    c->dim = DIM, c->nbits = NBITS, c->n_centroids = k;
    c->centroids = malloc((size_t)k * DIM * sizeof(float));
    uint64_t s = 7;
    for (int64_t i = 0; i < k; i++) {
        float *v = c->centroids + i * DIM;
        double n = 0;
        for (int j = 0; j < DIM; j++) {
            v[j] = randf(&s);
            n += (double)v[j] * v[j];
        }
        for (int j = 0; j < DIM; j++) v[j] = (float)(v[j] / sqrt(n));
    }
    for (int i = 0; i < 3; i++) c->bucket_cutoffs[i] = -0.02f + 0.02f * (float)i;
    for (int i = 0; i < 4; i++) c->bucket_weights[i] = -0.03f + 0.02f * (float)i;
}

/* The base index: random codes (a few per document) and residual bytes. */
static int write_index(const char *path, const cp_codec *c, int64_t n_docs, int tpd)
{
    cp_error err = {0};
    cp_store *st = NULL;
    if (cp_store_create(path, c, &st, &err) != CP_OK || cp_store_begin(st, &err) != CP_OK)
        return fail(&err);
    enum { SEG = 4096 };
    int rb = cp_residual_bytes(DIM, NBITS);
    int32_t *codes = malloc((size_t)SEG * (size_t)tpd * sizeof *codes), doclens[SEG];
    uint8_t *res = malloc((size_t)SEG * (size_t)tpd * (size_t)rb);
    cp_document docs[SEG];
    char (*ids)[24] = malloc(SEG * sizeof *ids);
    uint64_t s = 99;
    for (int64_t first = 0; first < n_docs; first += SEG) {
        size_t n = (size_t)(n_docs - first < SEG ? n_docs - first : SEG);
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "doc%lld", (long long)(first + (int64_t)i));
            docs[i] = (cp_document){.id = ids[i]};
            doclens[i] = tpd;
            int64_t hot = (int64_t)(rng(&s) % (uint64_t)c->n_centroids);
            for (int t = 0; t < tpd; t++)
                codes[i * (size_t)tpd + (size_t)t] =
                    (int32_t)((hot + (int64_t)(rng(&s) % 8)) % c->n_centroids);
        }
        for (size_t b = 0; b < n * (size_t)tpd * (size_t)rb; b++) res[b] = (uint8_t)rng(&s);
        cp_segment_input in = {.n_docs = n, .docs = docs, .doclens = doclens,
                               .n_tokens = (int64_t)n * tpd, .codes = codes, .residuals = res};
        if (cp_store_append_segment(st, &in, NULL, &err) != CP_OK) return fail(&err);
    }
    free(codes);
    free(res);
    free(ids);
    int rc = cp_store_commit(st, &err) != CP_OK ? fail(&err) : 0;
    cp_store_close(st);
    return rc;
}

/* n documents "new<i>" (from start), tpd tokens of centroid + noise each. */
static cp_document *make_docs(const cp_codec *c, const char *prefix, int64_t start, size_t n,
                              int tpd, float **vecs_out)
{
    cp_document *d = calloc(n, sizeof *d);
    float *v = malloc(n * (size_t)tpd * DIM * sizeof *v);
    uint64_t s = 12345 + (uint64_t)start;
    for (size_t i = 0; i < n * (size_t)tpd; i++) {
        const float *cen = c->centroids + (rng(&s) % (uint64_t)c->n_centroids) * DIM;
        for (int j = 0; j < DIM; j++) v[i * DIM + (size_t)j] = cen[j] + 0.05f * randf(&s);
    }
    for (size_t i = 0; i < n; i++) {
        char *id = malloc(32);
        snprintf(id, 32, "%s%lld", prefix, (long long)(start + (int64_t)i));
        d[i] = (cp_document){.id = id, .embeddings = v + i * (size_t)tpd * DIM, .n_tokens = tpd};
    }
    *vecs_out = v;
    return d;
}

static void free_docs(cp_document *d, size_t n, float *v)
{
    for (size_t i = 0; i < n; i++) free((char *)d[i].id);
    free(d);
    free(v);
}

/* Bytes this process has passed to write() so far (/proc/self/io wchar): what a write
 * really costs in I/O, WAL frames included (file sizes do not show it: the WAL is reused). */
static long long written_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %lld", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static long long disk_bytes(const char *path)
{
    char p[1024];
    struct stat sb;
    long long total = 0;
    if (stat(path, &sb) == 0) total += sb.st_size;
    snprintf(p, sizeof p, "%s-wal", path);
    if (stat(p, &sb) == 0) total += sb.st_size;
    return total;
}

static double search_ms(cp_index *ix, const cp_codec *c)
{
    float *v;
    cp_document *q = make_docs(c, "q", 999999, 1, 32, &v);
    cp_search_params p;
    cp_search_params_init(&p, 10);
    cp_hit hits[10];
    int n = 0;
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        cp_index_search(ix, v, 32, DIM, &p, hits, &n, NULL, NULL);
        double dt = (now() - t0) * 1e3;
        if (dt < best) best = dt;
    }
    free_docs(q, 1, v);
    return best;
}

static int bench_upsert(cp_index *ix, const cp_codec *c, const char *prefix, int64_t start,
                        size_t n, int tpd, const char *label)
{
    float *v;
    cp_document *d = make_docs(c, prefix, start, n, tpd, &v);
    cp_upsert_result r;
    cp_error err = {0};
    double t0 = now();
    long long w0 = written_bytes();
    cp_status st = cp_index_upsert(ix, d, n, DIM, &r, &err);
    double dt = now() - t0;
    long long w = written_bytes() - w0;
    free_docs(d, n, v);
    if (st != CP_OK) return fail(&err);
    printf("%-28s %9.1f ms  %10.0f tokens/s  (%zu added, %zu replaced; %lld bytes written)\n",
           label, dt * 1e3, (double)r.n_tokens / dt, r.n_added, r.n_replaced, w);
    return 0;
}

static int bench_delete(cp_index *ix, const char *path, int64_t first, size_t n, const char *label)
{
    char **ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        ids[i] = malloc(32);
        snprintf(ids[i], 32, "doc%lld", (long long)(first + (int64_t)(i * 7)));
    }
    cp_error err = {0};
    size_t nd = 0;
    long long before = written_bytes();
    double t0 = now();
    cp_status st = cp_index_delete(ix, (const char *const *)ids, n, &nd, &err);
    double dt = now() - t0;
    long long grew = written_bytes() - before;
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    if (st != CP_OK) return fail(&err);
    printf("%-28s %9.1f ms  %zu deleted, %lld bytes written (index: %lld)\n", label, dt * 1e3,
           nd, grew, disk_bytes(path));
    return 0;
}

int main(int argc, char **argv)
{
    cp_runtime_prepare(argc, argv); /* OpenBLAS core type, as the CLI does */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int64_t n_docs = argc > 2 ? atoll(argv[2]) : 100000;
    int tpd = argc > 3 ? atoi(argv[3]) : 70;
    int64_t k = argc > 4 ? atoll(argv[4]) : 32768;
    char path[1024];
    snprintf(path, sizeof path, "%s/bench_updates_%d.db", dir, (int)getpid());
    cp_codec c;
    make_codec(&c, k);
    double t0 = now();
    if (write_index(path, &c, n_docs, tpd)) return 1;
    printf("index: %lld docs x %d tokens, K = %lld, dim %d, nbits %d; written in %.1f s, "
           "%.1f MB\n", (long long)n_docs, tpd, (long long)k, DIM, NBITS, now() - t0,
           (double)disk_bytes(path) / 1e6);
    cp_index *ix = NULL;
    cp_error err = {0};
    t0 = now();
    if (cp_index_open(path, CP_OPEN_WRITE, &ix, &err) != CP_OK) return fail(&err);
    printf("open (load snapshot): %.2f s; search %.2f ms\n", now() - t0, search_ms(ix, &c));
    int rc = bench_upsert(ix, &c, "new", 0, 1, tpd, "upsert 1 new doc") ||
             bench_upsert(ix, &c, "new", 1, 1, tpd, "upsert 1 new doc (again)") ||
             bench_upsert(ix, &c, "new", 10, 100, tpd, "upsert 100 new docs") ||
             bench_upsert(ix, &c, "new", 1000, 10000, tpd, "upsert 10,000 new docs") ||
             bench_upsert(ix, &c, "doc", 5, 1, tpd, "replace 1 existing doc") ||
             bench_delete(ix, path, 11, 1, "delete 1 doc") ||
             bench_delete(ix, path, 20, 1000, "delete 1,000 docs");
    if (rc) return rc;
    printf("search after the writes: %.2f ms\n", search_ms(ix, &c));
    cp_compact_result cr;
    t0 = now();
    if (cp_index_compact(ix, NULL, &cr, &err) != CP_OK) return fail(&err);
    printf("compact: %.2f s (%lld segments -> %lld, %lld tombstones removed); search %.2f ms\n",
           now() - t0, (long long)cr.segments_before, (long long)cr.segments_after,
           (long long)cr.tombstones_removed, search_ms(ix, &c));
    cp_index_close(ix);
    free(c.centroids);
    char p[1100];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-lock", path);
    unlink(p);
    return 0;
}
