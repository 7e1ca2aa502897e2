/*
 * cp_index_build through the library, with an in-memory document source: the index read
 * back through storage holds every document in order with its text, metadata and tokens,
 * decompressed tokens are close to the inputs, the same seed gives the same index, the
 * counting pass works for sources of unknown size, and failures (duplicate ids, a source
 * that changes between passes, an existing path) leave nothing behind.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_test.h"
#include "codec.h"
#include "snapshot.h"
#include "storage.h"

typedef struct mem_source {
    int64_t n_docs, cursor;
    int dim;
    bool unknown_count;
    int64_t shrink_after_rewinds; /* second pass yields one doc fewer when > 0 */
    int rewinds;
    int64_t dup_at; /* doc whose id repeats doc 0's, or -1 */
    float *buf;
    char id[32], text[64];
} mem_source;

static int doc_len(int64_t i)
{
    return 1 + (int)(i % 7);
}

static void doc_vectors(int64_t i, int dim, int n, float *out)
{
    uint64_t s = (uint64_t)i * 2654435761u + 7;
    for (int t = 0; t < n; t++)
        for (int j = 0; j < dim; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float noise = (float)((double)(s >> 11) * 0x1.0p-53) - 0.5f;
            /* a few shared directions plus noise: clusterable data */
            out[t * dim + j] = (j == (int)((i + t) % 4) ? 2.0f : 0.0f) + 0.5f * noise;
        }
}

static int64_t m_count(void *c)
{
    mem_source *m = c;
    return m->unknown_count ? -1 : m->n_docs;
}
static int m_dim(void *c)
{
    return ((mem_source *)c)->dim;
}
static const char *m_name(void *c)
{
    (void)c;
    return "memory";
}
static void m_close(void *c)
{
    free(((mem_source *)c)->buf);
}
static cp_status m_rewind(void *c, cp_error *e)
{
    (void)e;
    mem_source *m = c;
    m->cursor = 0;
    m->rewinds++;
    return CP_OK;
}
static cp_status m_next(void *c, bool need, cp_document *d, bool *has, cp_error *e)
{
    (void)e;
    mem_source *m = c;
    memset(d, 0, sizeof *d);
    int64_t n = m->n_docs;
    if (m->shrink_after_rewinds && m->rewinds > m->shrink_after_rewinds) n--;
    if (m->cursor >= n) {
        *has = false;
        return CP_OK;
    }
    int64_t i = m->cursor++;
    snprintf(m->id, sizeof m->id, "doc%lld", (long long)(i == m->dup_at ? 0 : i));
    snprintf(m->text, sizeof m->text, "text of %lld", (long long)i);
    d->id = m->id;
    d->text = m->text;
    d->metadata_json = i % 2 ? "{\"odd\":true}" : NULL;
    d->n_tokens = doc_len(i);
    if (need) {
        doc_vectors(i, m->dim, d->n_tokens, m->buf);
        d->embeddings = m->buf;
    }
    *has = true;
    return CP_OK;
}

static cp_doc_source make_source(mem_source *m, int64_t n_docs, int dim)
{
    memset(m, 0, sizeof *m);
    m->n_docs = n_docs;
    m->dim = dim;
    m->dup_at = -1;
    m->buf = malloc((size_t)8 * dim * sizeof(float));
    return (cp_doc_source){.ctx = m,
                           .count = m_count,
                           .dim = m_dim,
                           .rewind = m_rewind,
                           .next = m_next,
                           .name = m_name,
                           .close = m_close};
}

static char dir[256];
static const char *path_of(const char *name)
{
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static bool exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Every token decompresses close to its (normalised) input and documents are in order. */
static void verify_index(const char *path, int64_t n_docs, int dim)
{
    cp_store *store = NULL;
    cp_error err = {0};
    CP_CHECK_OK(cp_store_open(path, CP_OPEN_READONLY, &store, &err), err);
    if (!store) return;
    char *params = cp_store_get_meta(store, "build");
    CP_CHECK(params && strstr(params, "\"n_documents\""));
    free(params);
    cp_snapshot *snap = NULL;
    CP_CHECK_OK(cp_store_load_snapshot(store, &snap, &err), err);
    cp_store_close(store);
    if (!snap) return;
    CP_CHECK_INT(snap->n_live, n_docs);
    float v[8 * 64], out[64];
    double cos_sum = 0;
    int64_t n_tok = 0;
    int rb = cp_residual_bytes(dim, snap->codec.nbits);
    for (int64_t d = 0; d < snap->n_slots && d < n_docs; d++) {
        char want[32];
        snprintf(want, sizeof want, "doc%lld", (long long)d);
        CP_CHECK(snap->external_ids[d] && !strcmp(snap->external_ids[d], want));
        int64_t len = snap->doc_offsets[d + 1] - snap->doc_offsets[d];
        CP_CHECK_INT(len, doc_len(d));
        doc_vectors(d, dim, (int)len, v);
        for (int64_t t = 0; t < len; t++) {
            int64_t tok = snap->doc_offsets[d] + t;
            cp_codec_decompress_one(&snap->codec, snap->codes[tok], snap->residuals + tok * rb,
                                    out);
            double dot = 0, n2 = 0;
            for (int j = 0; j < dim; j++) {
                dot += (double)out[j] * v[t * dim + j];
                n2 += (double)v[t * dim + j] * v[t * dim + j];
            }
            cos_sum += dot / sqrt(n2);
            n_tok++;
        }
    }
    double mean = n_tok ? cos_sum / (double)n_tok : 0;
    printf("%s: %lld tokens, mean cosine after decompression %.4f\n", path, (long long)n_tok, mean);
    CP_CHECK(mean > 0.85);
    cp_snapshot_release(snap);
}

static void test_good_and_deterministic(void)
{
    mem_source m;
    cp_doc_source src = make_source(&m, 500, 32);
    m.unknown_count = true; /* exercise the counting pass */
    cp_build_options o;
    cp_build_options_init(&o);
    o.segment_docs = 100;
    o.encoder_json = "{\"kind\":\"test\"}";
    cp_error err = {0};
    CP_CHECK_OK(cp_index_build(path_of("a.db"), &src, &o, &err), err);
    CP_CHECK_INT(m.rewinds, 3); /* count, sample, index */
    verify_index(path_of("a.db"), 500, 32);
    /* same seed, same input: identical file contents apart from the creation time */
    m.unknown_count = false;
    CP_CHECK_OK(cp_index_build(path_of("b.db"), &src, &o, &err), err);
    cp_store *sa = NULL, *sb = NULL;
    cp_snapshot *pa = NULL, *pb = NULL;
    if (cp_store_open(path_of("a.db"), CP_OPEN_READONLY, &sa, &err) == CP_OK &&
        cp_store_open(path_of("b.db"), CP_OPEN_READONLY, &sb, &err) == CP_OK &&
        cp_store_load_snapshot(sa, &pa, &err) == CP_OK &&
        cp_store_load_snapshot(sb, &pb, &err) == CP_OK) {
        CP_CHECK_INT(pa->n_tokens, pb->n_tokens);
        CP_CHECK(pa->codec.n_centroids == pb->codec.n_centroids &&
                 !memcmp(pa->codec.centroids, pb->codec.centroids,
                         (size_t)pa->codec.n_centroids * 32 * sizeof(float)));
        CP_CHECK(!memcmp(pa->codes, pb->codes, (size_t)pa->n_tokens * sizeof(int32_t)));
        char *enc = cp_store_get_meta(sa, "encoder");
        CP_CHECK(enc && !strcmp(enc, "{\"kind\":\"test\"}"));
        free(enc);
    } else {
        fprintf(stderr, "reading the two indexes back failed: %s\n", err.message);
        cp_test_failures++;
    }
    if (pa) cp_snapshot_release(pa);
    if (pb) cp_snapshot_release(pb);
    cp_store_close(sa);
    cp_store_close(sb);
    /* an existing path is refused without force, replaced with it */
    CP_CHECK(cp_index_build(path_of("a.db"), &src, &o, &err) == CP_EEXISTS);
    o.force = true;
    o.n_centroids = 1u << 20; /* more than the sample: clamped */
    o.nbits = 4;
    CP_CHECK_OK(cp_index_build(path_of("a.db"), &src, &o, &err), err);
    verify_index(path_of("a.db"), 500, 32);
    src.close(src.ctx);
}

/* A sample larger than training can use: the reservoir shrinks as the K estimate settles
 * (1 point per centroid makes the bound small enough for a quick test). */
static void test_reservoir_shrink(void)
{
    mem_source m;
    cp_doc_source src = make_source(&m, 15000, 16);
    cp_build_options o;
    cp_build_options_init(&o);
    o.kmeans_points_per_centroid = 1;
    o.kmeans_iters = 2;
    cp_error err = {0};
    CP_CHECK_OK(cp_index_build(path_of("shrink_ok.db"), &src, &o, &err), err);
    cp_store *st = NULL;
    if (cp_store_open(path_of("shrink_ok.db"), CP_OPEN_READONLY, &st, &err) == CP_OK) {
        char *params = cp_store_get_meta(st, "build");
        /* 59997 sampled tokens: K = 2048, k-means saw 2048 points, held-out 5% */
        CP_CHECK(params && strstr(params, "\"n_centroids\":2048,") &&
                 strstr(params, "\"n_kmeans_vectors\":2048,") &&
                 strstr(params, "\"n_heldout_vectors\":2999,"));
        /* the reservoir shrank: it kept fewer than the 59997 sampled tokens */
        const char *tr = params ? strstr(params, "\"n_train_vectors\":") : NULL;
        long long n_train = tr ? atoll(tr + strlen("\"n_train_vectors\":")) : -1;
        CP_CHECK(n_train > 2048 && n_train + 2999 < 59997);
        if (params && (n_train + 2999 >= 59997 || !strstr(params, "\"n_heldout_vectors\":2999,")))
            fprintf(stderr, "  %s\n", params);
        free(params);
        cp_store_close(st);
    }
    verify_index(path_of("shrink_ok.db"), 15000, 16);
    src.close(src.ctx);
}

static void expect_no_files(const char *what)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp-build", dir);
    if (system(cmd) == 0) {
        fprintf(stderr, "%s: temporary files were left in %s\n", what, dir);
        cp_test_failures++;
    }
}

static void test_failures(void)
{
    cp_build_options o;
    cp_build_options_init(&o);
    cp_error err = {0};
    mem_source m;
    cp_doc_source src = make_source(&m, 200, 16);
    m.dup_at = 150;
    CP_CHECK(cp_index_build(path_of("dup.db"), &src, &o, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "duplicate document id \"doc0\"") != NULL);
    CP_CHECK(!exists(path_of("dup.db")));
    m.dup_at = -1;
    m.rewinds = 0;
    m.shrink_after_rewinds = 1; /* the indexing pass sees one document fewer */
    CP_CHECK(cp_index_build(path_of("shrink.db"), &src, &o, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "second pass") != NULL);
    CP_CHECK(!exists(path_of("shrink.db")));
    expect_no_files("shrinking source");
    src.close(src.ctx);

    src = make_source(&m, 10, 12);
    CP_CHECK(cp_index_build(path_of("d12.db"), &src, &o, &err) == CP_EDIM);
    src.close(src.ctx);
    src = make_source(&m, 0, 16);
    CP_CHECK(cp_index_build(path_of("empty.db"), &src, &o, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "empty") != NULL);
    src.close(src.ctx);
    o.nbits = 3;
    src = make_source(&m, 10, 16);
    CP_CHECK(cp_index_build(path_of("n3.db"), &src, &o, &err) == CP_EINVAL);
    src.close(src.ctx);
    CP_CHECK(!exists(path_of("n3.db")));
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/cp_test_build_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_good_and_deterministic();
    test_failures();
    test_reservoir_shrink();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return CP_TEST_RESULT();
}
