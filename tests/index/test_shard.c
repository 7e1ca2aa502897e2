/*
 * The shard hash and the codec fingerprint (index/shard.c; docs/index-format.md "Shards and
 * shared codecs"): the documented test vectors, a balanced split of ordinary ids and of ids
 * whose bytes share their low bits (plain FNV-1a puts all of those in one shard of 4), and
 * a fingerprint and comparison that see one flipped bit of a centroid or bucket weight.
 */
#include <stdint.h>
#include <string.h>

#include "colplaid/index.h"
#include "cp_test.h"
#include "shard.h"

static void test_vectors(void)
{
    CP_CHECK(cp_shard_hash("", 0) == UINT64_C(0xefd01f60ba992926));
    CP_CHECK(cp_shard_hash("doc-0", 5) == UINT64_C(0x017f6740ac8fffd1));
    CP_CHECK(cp_shard_hash("doc-1", 5) == UINT64_C(0x4874a7cf46898a5e));
    const char *utf8 = "d\xc3\xb3"
                       "c-7-\xc3\xbc"; /* "dóc-7-ü" */
    CP_CHECK(cp_shard_hash(utf8, strlen(utf8)) == UINT64_C(0xa8ffc86e4319f467));
    CP_CHECK_INT(cp_shard_of("doc-0", 4), 1); /* the examples of docs/index-format.md */
    CP_CHECK_INT(cp_shard_of("doc-1", 4), 2);
    CP_CHECK_INT(cp_shard_of("doc-1", 1), 0);
    CP_CHECK_INT(cp_shard_of("doc-1", 0), 0);
    CP_CHECK_INT(cp_shard_of(NULL, 4), 0);
}

/* Each shard within 5% of the mean. */
static void check_balance(const int64_t *count, int n, int64_t total, const char *what)
{
    double mean = (double)total / n;
    for (int i = 0; i < n; i++)
        if (count[i] < 0.95 * mean || count[i] > 1.05 * mean) {
            fprintf(stderr, "%s: shard %d of %d holds %lld ids, mean %.0f\n", what, i, n,
                    (long long)count[i], mean);
            cp_test_failures++;
        }
}

static void test_balance(void)
{
    for (int n = 2; n <= 16; n *= 2) {
        int64_t count[16] = {0};
        for (int i = 0; i < 100000; i++) {
            char id[32];
            snprintf(id, sizeof id, "doc-%d", i);
            count[cp_shard_of(id, (uint32_t)n)]++;
        }
        check_balance(count, n, 100000, "doc-N ids");
    }
    /* 4096 ids over the letters A E I M (bytes 0x41 0x45 0x49 0x4d: low 2 bits equal) */
    int64_t count[4] = {0};
    const char letters[] = "AEIM";
    for (int v = 0; v < 4096; v++) {
        char id[7];
        for (int k = 0; k < 6; k++)
            id[k] = letters[(v >> (2 * k)) & 3];
        id[6] = 0;
        count[cp_shard_of(id, 4)]++;
    }
    check_balance(count, 4, 4096, "ids with equal low bits");
}

static void test_fingerprint(void)
{
    float centroids[4 * 8];
    for (int i = 0; i < 32; i++)
        centroids[i] = (float)((i * 7) % 11) / 11.0f;
    cp_codec a = {.dim = 8,
                  .nbits = 2,
                  .variant = CP_CODEC_SCALED,
                  .n_centroids = 4,
                  .centroids = centroids,
                  .scale_log_min = -3,
                  .scale_log_max = 1};
    for (int i = 0; i < 3; i++)
        a.bucket_cutoffs[i] = -0.5f + 0.5f * (float)i;
    for (int i = 0; i < 4; i++)
        a.bucket_weights[i] = -0.75f + 0.5f * (float)i;
    float copy[4 * 8];
    memcpy(copy, centroids, sizeof copy);
    cp_codec b = a;
    b.centroids = copy;
    b.avg_residual = 0.25f; /* diagnostics: not part of the codec's identity */
    uint64_t h = cp_codec_fingerprint(&a);
    CP_CHECK(cp_codec_same(&a, &b));
    CP_CHECK(cp_codec_fingerprint(&b) == h);
    uint32_t bits;
    memcpy(&bits, &copy[17], sizeof bits);
    bits ^= 1;
    memcpy(&copy[17], &bits, sizeof bits);
    CP_CHECK(!cp_codec_same(&a, &b));
    CP_CHECK(cp_codec_fingerprint(&b) != h);
    memcpy(copy, centroids, sizeof copy);
    b.bucket_weights[3] = nextafterf(b.bucket_weights[3], 1.0f);
    CP_CHECK(!cp_codec_same(&a, &b));
    CP_CHECK(cp_codec_fingerprint(&b) != h);
    b = a;
    b.scale_log_max = 1.5f;
    CP_CHECK(!cp_codec_same(&a, &b));
    b = a;
    b.variant = CP_CODEC_COLBERT; /* the scale range no longer counts, the variant does */
    cp_codec c = b;
    c.scale_log_min = c.scale_log_max = 0;
    CP_CHECK(!cp_codec_same(&a, &b));
    CP_CHECK(cp_codec_same(&b, &c));
    CP_CHECK(cp_codec_fingerprint(&b) == cp_codec_fingerprint(&c));
}

int main(void)
{
    test_vectors();
    test_balance();
    test_fingerprint();
    return CP_TEST_RESULT();
}
