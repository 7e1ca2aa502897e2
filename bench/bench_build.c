/*
 * Index build speed: synthetic clustered token embeddings (default 20k docs x 60 tokens,
 * dim 128, nbits 2, K 16384), generated on the fly per document (so the input costs no
 * memory and the peak RSS is the builder's own), built with cp_index_build.
 *
 * Prints build time, tokens/s, peak RSS (getrusage) and bytes per token on disk, and one
 * JSON record line. Options: --docs N --tokens N --dim D --nbits B --centroids K
 * --iters N --threads N --out PATH (default /tmp/cp_bench_build.db, removed afterwards
 * unless --keep).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "colplaid/index.h"
#include "cp_cpu.h"

typedef struct synth {
    int64_t n_docs, cursor;
    int tokens, dim, n_topics;
    float *topics; /* n_topics x dim */
    float *buf;
    char id[32];
} synth;

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float unit(uint64_t *s)
{
    *s = mix(*s);
    return (float)((double)(*s >> 11) * 0x1.0p-53);
}

static int64_t s_count(void *c)
{
    return ((synth *)c)->n_docs;
}
static int s_dim(void *c)
{
    return ((synth *)c)->dim;
}
static const char *s_name(void *c)
{
    (void)c;
    return "synthetic";
}
static void s_close(void *c)
{
    (void)c;
}
static cp_status s_rewind(void *c, cp_error *e)
{
    (void)e;
    ((synth *)c)->cursor = 0;
    return CP_OK;
}

/* Each doc mixes a few topics; each token = topic + uniform noise (deterministic per doc). */
static cp_status s_next(void *c, bool need, cp_document *d, bool *has, cp_error *e)
{
    (void)e;
    synth *s = c;
    memset(d, 0, sizeof *d);
    if (s->cursor >= s->n_docs) {
        *has = false;
        return CP_OK;
    }
    snprintf(s->id, sizeof s->id, "d%lld", (long long)s->cursor);
    d->id = s->id;
    d->n_tokens = s->tokens;
    if (need) {
        uint64_t st = (uint64_t)s->cursor * 7919 + 1;
        int doc_topics[4];
        for (int k = 0; k < 4; k++)
            doc_topics[k] = (int)(unit(&st) * s->n_topics);
        for (int t = 0; t < s->tokens; t++) {
            const float *tp = s->topics + (size_t)doc_topics[t % 4] * s->dim;
            float *o = s->buf + (size_t)t * s->dim;
            for (int j = 0; j < s->dim; j++)
                o[j] = tp[j] + 0.6f * (unit(&st) - 0.5f);
        }
        d->embeddings = s->buf;
    }
    s->cursor++;
    *has = true;
    return CP_OK;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    cp_runtime_prepare(argc, argv);
    int64_t docs = 20000, k = 16384;
    int tokens = 60, dim = 128, nbits = 2, iters = 4, threads = 0, keep = 0;
    const char *out = "/tmp/cp_bench_build.db";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keep")) {
            keep = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "%s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--docs"))
            docs = atoll(v);
        else if (!strcmp(a, "--tokens"))
            tokens = atoi(v);
        else if (!strcmp(a, "--dim"))
            dim = atoi(v);
        else if (!strcmp(a, "--nbits"))
            nbits = atoi(v);
        else if (!strcmp(a, "--centroids"))
            k = atoll(v);
        else if (!strcmp(a, "--iters"))
            iters = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--out"))
            out = v;
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    synth s = {.n_docs = docs, .tokens = tokens, .dim = dim, .n_topics = 4096};
    s.topics = malloc((size_t)s.n_topics * dim * sizeof(float));
    s.buf = malloc((size_t)tokens * dim * sizeof(float));
    uint64_t st = 99;
    for (size_t i = 0; i < (size_t)s.n_topics * dim; i++)
        s.topics[i] = unit(&st) - 0.5f;
    cp_doc_source src = {.ctx = &s,
                         .count = s_count,
                         .dim = s_dim,
                         .rewind = s_rewind,
                         .next = s_next,
                         .name = s_name,
                         .close = s_close};
    cp_build_options o;
    cp_build_options_init(&o);
    o.nbits = nbits;
    o.n_centroids = k;
    o.kmeans_iters = iters;
    o.threads = threads;
    o.force = true;
    o.progress = stderr;
    cp_error err = {0};
    double t0 = now();
    cp_status rc = cp_index_build(out, &src, &o, &err);
    double secs = now() - t0;
    if (rc != CP_OK) {
        fprintf(stderr, "build failed: %s\n", err.message);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct stat sb;
    stat(out, &sb);
    double n_tok = (double)docs * tokens;
    printf("build: %lld docs x %d tokens, dim %d, nbits %d, K %lld, %d iters\n", (long long)docs,
           tokens, dim, nbits, (long long)k, iters);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    double load[1] = {0};
    if (getloadavg(load, 1) != 1) load[0] = -1;
    printf("time %.1f s (CPU %.1f s; load average %.1f: other work on the machine inflates the "
           "wall time), %.0f tokens/s, peak RSS %.0f MiB, %.1f bytes/token on disk\n",
           secs, cpu, load[0], n_tok / secs, ru.ru_maxrss / 1024.0, (double)sb.st_size / n_tok);
    printf("{\"bench\":\"build\",\"docs\":%lld,\"tokens_per_doc\":%d,\"dim\":%d,\"nbits\":%d,"
           "\"centroids\":%lld,\"seconds\":%.2f,\"cpu_seconds\":%.2f,\"tokens_per_s\":%.0f,"
           "\"peak_rss_mib\":%.0f,\"bytes_per_token\":%.2f}\n",
           (long long)docs, tokens, dim, nbits, (long long)k, secs, cpu, n_tok / secs,
           ru.ru_maxrss / 1024.0, (double)sb.st_size / n_tok);
    if (!keep) unlink(out);
    free(s.topics);
    free(s.buf);
    return 0;
}
