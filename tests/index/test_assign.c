/*
 * Nearest-centroid assignment kernels (index/codec.c, index/codec_amx.c): the BLAS fp32
 * path against a double-precision brute force, and the AMX bf16 + fp32-rescore path
 * against BLAS on awkward shapes (K and n not multiples of 32, dims not multiples of 32,
 * K < 4 classes) and on a realistic clustered set where the centroids are data points.
 * Reports the agreement rate and the round-trip cosine of both paths at nbits 2; where
 * they disagree the AMX choice must be a near-tie (fp32 score within 1e-2 of the best).
 * The AMX half is skipped on CPUs without AMX. The approximate PROBE path (codec_probe.c,
 * any CPU) is held to a high agreement with BLAS on the clustered set, in inner-product
 * (compression) and L2 (k-means) mode, with bounded score loss and valid codes.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_test.h"
#define CP_TEST_RNG_SEED 777
#include "cp_test_rng.h"
#include "codec.h"
#include "codec_amx.h"

static double dot(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int j = 0; j < dim; j++)
        s += (double)a[j] * b[j];
    return s;
}

/* Unit centroids, and vectors = a random centroid + noise of scale sigma, normalised. */
static void make_data(int64_t k, int dim, int64_t n, float sigma, float *c, float *v)
{
    for (int64_t i = 0; i < k; i++) {
        for (int j = 0; j < dim; j++) c[i * dim + j] = grand();
        normalise(c + i * dim, dim);
    }
    for (int64_t i = 0; i < n; i++) {
        const float *base = c + (int64_t)(urand() * (double)k) * dim;
        for (int j = 0; j < dim; j++) v[i * dim + j] = base[j] + sigma * grand();
        normalise(v + i * dim, dim);
    }
}

typedef struct agreement {
    int64_t same, n;
    double worst_gap; /* largest fp32-score shortfall of a differing choice */
} agreement;

/* Compare codes b to reference codes a by their exact scores. */
static agreement compare(const float *c, const float *v, int64_t n, int dim, const int32_t *a,
                         const int32_t *b)
{
    agreement r = {0, n, 0};
    for (int64_t i = 0; i < n; i++) {
        if (a[i] == b[i]) {
            r.same++;
            continue;
        }
        double gap = dot(v + i * dim, c + (int64_t)a[i] * dim, dim) -
                     dot(v + i * dim, c + (int64_t)b[i] * dim, dim);
        if (gap > r.worst_gap) r.worst_gap = gap;
    }
    return r;
}

static void test_blas_vs_brute_force(void)
{
    int64_t k = 300, n = 500;
    int dim = 64;
    float *c = malloc(sizeof(float) * k * dim), *v = malloc(sizeof(float) * n * dim);
    int32_t *codes = malloc(sizeof(int32_t) * n), *ref = malloc(sizeof(int32_t) * n);
    make_data(k, dim, n, 0.3f, c, v);
    for (int64_t i = 0; i < n; i++) {
        int32_t best = 0;
        double bs = -INFINITY;
        for (int64_t j = 0; j < k; j++) {
            double s = dot(v + i * dim, c + j * dim, dim);
            if (s > bs) bs = s, best = (int32_t)j;
        }
        ref[i] = best;
    }
    cp_error err = {0};
    CP_CHECK_OK(cp_codec_assign_with(CP_ASSIGN_BLAS, c, k, dim, v, n, codes, 2, &err), err);
    agreement a = compare(c, v, n, dim, ref, codes);
    CP_CHECK(a.worst_gap <= 1e-5);
    free(c), free(v), free(codes), free(ref);
}

/* AMX against BLAS on one shape; returns the agreement. */
static agreement amx_vs_blas(int64_t k, int dim, int64_t n, float sigma, int threads)
{
    float *c = malloc(sizeof(float) * k * dim), *v = malloc(sizeof(float) * n * dim);
    int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
    make_data(k, dim, n, sigma, c, v);
    cp_error err = {0};
    CP_CHECK_OK(cp_codec_assign_with(CP_ASSIGN_BLAS, c, k, dim, v, n, a, threads, &err), err);
    CP_CHECK_OK(cp_codec_assign_with(CP_ASSIGN_AMX, c, k, dim, v, n, b, threads, &err), err);
    agreement r = compare(c, v, n, dim, a, b);
    for (int64_t i = 0; i < n; i++) CP_CHECK(b[i] >= 0 && b[i] < k);
    if (r.worst_gap > 1e-2)
        fprintf(stderr, "k %lld dim %d n %lld: AMX choice %.3g below the best\n", (long long)k,
                dim, (long long)n, r.worst_gap);
    CP_CHECK(r.worst_gap <= 1e-2);
    free(c), free(v), free(a), free(b);
    return r;
}

static void test_amx_shapes(void)
{
    static const struct {
        int64_t k;
        int dim;
        int64_t n;
    } shapes[] = {{1, 8, 40},     {3, 16, 70},    {33, 96, 300},  {100, 200, 1},
                  {64, 128, 33},  {1000, 128, 1500}, {517, 40, 1025}, {4096, 128, 2100}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        agreement r = amx_vs_blas(shapes[s].k, shapes[s].dim, shapes[s].n, 0.3f, 1 + (int)(s % 2));
        printf("amx vs blas: K %5lld dim %3d n %5lld: agreement %.5f, worst gap %.2g\n",
               (long long)shapes[s].k, shapes[s].dim, (long long)shapes[s].n,
               (double)r.same / (double)r.n, r.worst_gap);
        /* A handful of centroids leaves no near-ties: every choice must match. */
        if (shapes[s].k <= 100) CP_CHECK_INT(r.same, r.n);
    }
    /* Threads split the rows, never the answer. */
    int64_t k = 700, n = 3000;
    int dim = 128;
    float *c = malloc(sizeof(float) * k * dim), *v = malloc(sizeof(float) * n * dim);
    int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
    make_data(k, dim, n, 0.5f, c, v);
    cp_error err = {0};
    CP_CHECK_OK(cp_codec_assign_with(CP_ASSIGN_AMX, c, k, dim, v, n, a, 1, &err), err);
    CP_CHECK_OK(cp_codec_assign_with(CP_ASSIGN_AMX, c, k, dim, v, n, b, 2, &err), err);
    CP_CHECK(memcmp(a, b, sizeof(int32_t) * n) == 0);
    free(c), free(v), free(a), free(b);
}

/* Round-trip cosine of compressed vectors (mean over n). */
static double round_trip(const cp_codec *codec, const float *v, int64_t n, const int32_t *codes,
                         const uint8_t *res)
{
    int dim = codec->dim, rb = cp_residual_bytes(dim, codec->nbits);
    float *out = malloc(sizeof(float) * dim);
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        cp_codec_decompress_one(codec, codes[i], res + i * rb, out);
        sum += dot(v + i * dim, out, dim);
    }
    free(out);
    return sum / (double)n;
}

/* Realistic: centroids are data points of a clustered set (as after k-means), with many
 * near-ties between neighbouring centroids. Reports agreement and round-trip cosine. */
static void test_amx_realistic(void)
{
    int64_t topics = 300, k = 4096, n = 20000;
    int dim = 128;
    float *t = malloc(sizeof(float) * topics * dim), *pool = malloc(sizeof(float) * (n + k) * dim);
    make_data(topics, dim, n + k, 0.12f, t, pool);
    const float *c = pool, *v = pool + k * dim;
    cp_codec codec = {0};
    codec.dim = dim;
    codec.nbits = 2;
    codec.n_centroids = k;
    codec.centroids = malloc(sizeof(float) * k * dim);
    memcpy(codec.centroids, c, sizeof(float) * k * dim);
    cp_error err = {0};
    CP_CHECK_OK(cp_codec_train(&codec, v, 2000, 2, &err), err);
    int rb = cp_residual_bytes(dim, 2);
    int32_t *ca = malloc(sizeof(int32_t) * n), *cb = malloc(sizeof(int32_t) * n);
    uint8_t *ra = malloc((size_t)rb * n), *rbuf = malloc((size_t)rb * n);
    CP_CHECK_OK(cp_codec_compress_with(CP_ASSIGN_BLAS, &codec, v, n, ca, ra, 2, &err), err);
    CP_CHECK_OK(cp_codec_compress_with(CP_ASSIGN_AMX, &codec, v, n, cb, rbuf, 2, &err), err);
    agreement r = compare(codec.centroids, v, n, dim, ca, cb);
    double cos_a = round_trip(&codec, v, n, ca, ra), cos_b = round_trip(&codec, v, n, cb, rbuf);
    printf("realistic K %lld n %lld: agreement %.5f (%lld differ, worst gap %.2g); round-trip "
           "cosine blas %.6f amx %.6f\n",
           (long long)k, (long long)n, (double)r.same / (double)n, (long long)(n - r.same),
           r.worst_gap, cos_a, cos_b);
    CP_CHECK((double)r.same / (double)n >= 0.99);
    CP_CHECK(r.worst_gap <= 1e-2);
    CP_CHECK(fabs(cos_a - cos_b) <= 1e-3);
    /* Same code, same residual bytes. */
    for (int64_t i = 0; i < n; i++)
        if (ca[i] == cb[i]) CP_CHECK(memcmp(ra + i * rb, rbuf + i * rb, (size_t)rb) == 0);
    cp_codec_free_arrays(&codec);
    free(t), free(pool), free(ca), free(cb), free(ra), free(rbuf);
}

/* PROBE against BLAS, on the realistic set (centroids are data points, many near-ties)
 * and in L2 mode (k-means: centroids of unequal norms): most choices agree, a differing one
 * is the best of the groups probed (never far below the exact best), every code is valid,
 * threads do not change the answer, and compression round-trips almost as well. */
static void test_probe(void)
{
    int64_t topics = 300, k = 4096, n = 20000;
    int dim = 64;
    float *t = malloc(sizeof(float) * topics * dim), *pool = malloc(sizeof(float) * (n + k) * dim);
    make_data(topics, dim, n + k, 0.08f, t, pool);
    const float *v = pool + k * dim;
    cp_codec codec = {0};
    codec.dim = dim;
    codec.nbits = 2;
    codec.n_centroids = k;
    codec.centroids = malloc(sizeof(float) * k * dim);
    memcpy(codec.centroids, pool, sizeof(float) * k * dim);
    cp_error err = {0};
    CP_CHECK_OK(cp_codec_train(&codec, v, 2000, 2, &err), err);
    int rb = cp_residual_bytes(dim, 2);
    int32_t *ca = malloc(sizeof(int32_t) * n), *cb = malloc(sizeof(int32_t) * n);
    int32_t *cc = malloc(sizeof(int32_t) * n);
    uint8_t *ra = malloc((size_t)rb * n), *rbuf = malloc((size_t)rb * n);
    CP_CHECK_OK(cp_codec_compress_with(CP_ASSIGN_BLAS, &codec, v, n, ca, ra, 2, &err), err);
    CP_CHECK_OK(cp_codec_compress_with(CP_ASSIGN_PROBE, &codec, v, n, cb, rbuf, 2, &err), err);
    CP_CHECK_OK(cp_codec_assign_with(CP_ASSIGN_PROBE, codec.centroids, k, dim, v, n, cc, 1, &err),
                err);
    CP_CHECK(memcmp(cb, cc, sizeof(int32_t) * n) == 0);
    for (int64_t i = 0; i < n; i++)
        CP_CHECK(cb[i] >= 0 && cb[i] < k);
    agreement r = compare(codec.centroids, v, n, dim, ca, cb);
    double cos_a = round_trip(&codec, v, n, ca, ra), cos_b = round_trip(&codec, v, n, cb, rbuf);
    printf("probe vs blas, K %lld n %lld: agreement %.5f (worst gap %.3g); round-trip cosine "
           "blas %.6f probe %.6f\n",
           (long long)k, (long long)n, (double)r.same / (double)n, r.worst_gap, cos_a, cos_b);
    CP_CHECK((double)r.same / (double)n >= 0.98);
    CP_CHECK(r.worst_gap <= 0.15);
    CP_CHECK(cos_a - cos_b <= 2e-3);
    for (int64_t i = 0; i < n; i++)
        if (ca[i] == cb[i]) CP_CHECK(memcmp(ra + i * rb, rbuf + i * rb, (size_t)rb) == 0);

    /* L2 mode, as k-means calls it: centroids are means of clustered points, so their norms
     * fall below 1 by different amounts. */
    float *c2 = malloc(sizeof(float) * k * dim);
    for (int64_t i = 0; i < k; i++) {
        float scale = (float)(0.8 + 0.2 * urand());
        for (int j = 0; j < dim; j++)
            c2[i * dim + j] = scale * codec.centroids[i * dim + j];
    }
    int32_t *l2 = malloc(sizeof(int32_t) * n);
    if (cp_codec_assign_l2_available(k)) {
        CP_CHECK_OK(cp_codec_assign_l2(c2, k, dim, v, n, l2, 2, &err), err);
        int64_t same = 0, n_checked = 4000;
        double worst = 0;
        for (int64_t i = 0; i < n_checked; i++) {
            int64_t best = 0;
            double bs = -INFINITY;
            for (int64_t j = 0; j < k; j++) {
                double d2 = 0;
                for (int q = 0; q < dim; q++) {
                    double e = (double)v[i * dim + q] - c2[j * dim + q];
                    d2 += e * e;
                }
                if (-d2 > bs) bs = -d2, best = j;
            }
            double mine = 0;
            for (int q = 0; q < dim; q++) {
                double e = (double)v[i * dim + q] - c2[(int64_t)l2[i] * dim + q];
                mine += e * e;
            }
            if (l2[i] == best) same++;
            if (mine + bs > worst) worst = mine + bs;
        }
        printf("probe l2 (k-means), K %lld n %lld: agreement %.5f, worst squared-distance gap "
               "%.3g\n",
               (long long)k, (long long)n_checked, (double)same / (double)n_checked, worst);
        CP_CHECK((double)same / (double)n_checked >= 0.97);
        CP_CHECK(worst <= 0.3);
    }
    cp_codec_free_arrays(&codec);
    free(t), free(pool), free(ca), free(cb), free(cc), free(ra), free(rbuf), free(c2), free(l2);
}

int main(void)
{
    test_probe();
    test_blas_vs_brute_force();
    printf("assignment kernel chosen here: %s\n",
           cp_codec_assign_kind_name(cp_codec_assign_kind()));
    if (cp_assign_amx_available()) {
        test_amx_shapes();
        test_amx_realistic();
    } else {
        cp_error err = {0};
        float c[8] = {1, 0, 0, 0, 0, 0, 0, 0}, v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
        int32_t code = -1;
        CP_CHECK(cp_codec_assign_with(CP_ASSIGN_AMX, c, 1, 8, v, 1, &code, 1, &err) == CP_EINVAL);
        printf("AMX not available: AMX comparisons skipped\n");
    }
    return CP_TEST_RESULT();
}
