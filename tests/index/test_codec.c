/*
 * Codec tests: bucketisation edge cases, quantile and Lloyd-Max training against known
 * values and their defining conditions, bit packing against an independent implementation
 * of the Stanford reference layout, decompression against a hand computation, round-trip
 * quality per nbits (reported and required to grow with nbits), the K formula and the
 * k-means wrapper on degenerate data.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_test.h"
#define CP_TEST_RNG_SEED 12345
#include "cp_test_rng.h"
#include "build.h"
#include "codec.h"
#include "kmeans.h"

static void test_bucketize(void)
{
    const float cut[3] = {-0.5f, 0.0f, 0.5f};
    CP_CHECK_INT(cp_codec_bucketize(cut, 3, -1.0f), 0);
    CP_CHECK_INT(cp_codec_bucketize(cut, 3, -0.5f), 0); /* equal to a cutoff: lower bucket */
    CP_CHECK_INT(cp_codec_bucketize(cut, 3, -0.4999f), 1);
    CP_CHECK_INT(cp_codec_bucketize(cut, 3, 0.0f), 1);
    CP_CHECK_INT(cp_codec_bucketize(cut, 3, -0.0f), 1); /* -0 == 0 is not < 0 */
    CP_CHECK_INT(cp_codec_bucketize(cut, 3, 0.25f), 2);
    CP_CHECK_INT(cp_codec_bucketize(cut, 3, 0.5f), 2);
    CP_CHECK_INT(cp_codec_bucketize(cut, 3, 7.0f), 3);
    const float one[1] = {0.1f};
    CP_CHECK_INT(cp_codec_bucketize(one, 1, 0.1f), 0);
    CP_CHECK_INT(cp_codec_bucketize(one, 1, 0.2f), 1);
    /* Repeated cutoffs (degenerate residuals): equal values stay in the lowest bucket. */
    const float rep[3] = {0.0f, 0.0f, 0.0f};
    CP_CHECK_INT(cp_codec_bucketize(rep, 3, 0.0f), 0);
    CP_CHECK_INT(cp_codec_bucketize(rep, 3, 1e-9f), 3);
}

static void test_quantiles(void)
{
    float v[101];
    for (int i = 0; i <= 100; i++)
        v[100 - i] = (float)i; /* reversed: the function sorts */
    const double lv[4] = {0.0, 0.25, 0.375, 1.0};
    float q[4];
    cp_codec_quantiles(v, 101, lv, 4, q);
    CP_CHECK_NEAR(q[0], 0.0, 1e-6);
    CP_CHECK_NEAR(q[1], 25.0, 1e-6);
    CP_CHECK_NEAR(q[2], 37.5, 1e-6);
    CP_CHECK_NEAR(q[3], 100.0, 1e-6);
    /* torch.quantile([1,2,3,4], [0.5, 0.125]) = [2.5, 1.375] */
    float w[4] = {4, 1, 3, 2};
    const double l2[2] = {0.5, 0.125};
    cp_codec_quantiles(w, 4, l2, 2, q);
    CP_CHECK_NEAR(q[0], 2.5, 1e-6);
    CP_CHECK_NEAR(q[1], 1.375, 1e-6);
    float single = 3.0f;
    const double l3[1] = {0.75};
    cp_codec_quantiles(&single, 1, l3, 1, q);
    CP_CHECK_NEAR(q[0], 3.0, 1e-6);
}

/* Training on a known residual distribution: one centroid e0, held-out rows whose residual
 * components are exactly 0, 1, ..., n*dim-1 (pooled over dims). On a uniform distribution
 * the quantile start (cutoffs 19.75, 39.5, 59.25) is already almost Lloyd-Max's fixed point:
 * one step moves the cutoffs to the midpoints of the bucket means and nothing changes after. */
static void test_train_known(void)
{
    const int dim = 8, n = 10;
    float centroid[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    float h[80];
    for (int i = 0; i < n * dim; i++)
        h[i] = (float)i + centroid[i % dim];
    cp_codec c = {.dim = dim, .nbits = 2, .n_centroids = 1, .centroids = centroid};
    cp_error err = {0};
    CP_CHECK_OK(cp_codec_train(&c, h, n, 1, &err), err);
    /* buckets 0..19, 20..39, 40..59, 60..79 */
    const double cuts[3] = {19.5, 39.5, 59.5}, wts[4] = {9.5, 29.5, 49.5, 69.5};
    for (int i = 0; i < 3; i++)
        CP_CHECK_NEAR(c.bucket_cutoffs[i], cuts[i], 1e-4);
    for (int i = 0; i < 4; i++)
        CP_CHECK_NEAR(c.bucket_weights[i], wts[i], 1e-4);
    CP_CHECK_NEAR(c.avg_residual, 39.5, 1e-4);
}

/* Sum of squared quantisation errors of values under the given buckets. */
static double quantise_sse(const float *v, int n, const float *cut, const float *w, int nbits)
{
    double sse = 0;
    for (int i = 0; i < n; i++) {
        double e = v[i] - w[cp_codec_bucketize(cut, (1 << nbits) - 1, v[i])];
        sse += e * e;
    }
    return sse;
}

/* Peaked, heavy-tailed residuals (Laplace, as static word vectors give: docs/static-model.md):
 * the trained buckets are Lloyd-Max's fixed point (each weight the mean of its bucket, each
 * cutoff the midpoint of its neighbours), and they quantise with a smaller squared error
 * than ColBERTv2's equal-population quantiles. */
static void test_train_lloyd_max(void)
{
    const int dim = 8, n = 4000, total = n * dim;
    float centroid[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    float *h = malloc((size_t)total * sizeof *h), *r = malloc((size_t)total * sizeof *r);
    for (int i = 0; i < total; i++) {
        double u = urand() - 0.5;
        r[i] = (float)(u < 0 ? 0.01 * log(1 + 2 * u) : -0.01 * log(1 - 2 * u));
        h[i] = r[i] + centroid[i % dim];
    }
    const int nb[3] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        int nbits = nb[t], n_opt = 1 << nbits;
        cp_codec c = {.dim = dim, .nbits = nbits, .n_centroids = 1, .centroids = centroid};
        cp_error err = {0};
        CP_CHECK_OK(cp_codec_train(&c, h, n, 1, &err), err);
        double sum[16] = {0};
        int count[16] = {0};
        for (int i = 0; i < total; i++) {
            /* the residual as training computes it (h - centroid in float) */
            float x = h[i] - centroid[i % dim];
            int b = cp_codec_bucketize(c.bucket_cutoffs, n_opt - 1, x);
            sum[b] += x;
            count[b]++;
        }
        for (int b = 0; b < n_opt; b++) {
            CP_CHECK(count[b] > 0);
            if (count[b]) CP_CHECK_NEAR(c.bucket_weights[b], sum[b] / count[b], 1e-6);
            if (b) CP_CHECK(c.bucket_weights[b] > c.bucket_weights[b - 1]);
            if (b)
                CP_CHECK_NEAR(c.bucket_cutoffs[b - 1],
                              0.5 * (c.bucket_weights[b - 1] + c.bucket_weights[b]), 1e-7);
        }
        float q[16], qc[15];
        double lw[16], lc[15];
        for (int b = 0; b < n_opt; b++)
            lw[b] = (b + 0.5) / n_opt;
        for (int b = 1; b < n_opt; b++)
            lc[b - 1] = (double)b / n_opt;
        for (int i = 0; i < total; i++)
            r[i] = h[i] - centroid[i % dim];
        float *sorted = malloc((size_t)total * sizeof *sorted);
        memcpy(sorted, r, (size_t)total * sizeof *sorted);
        cp_codec_quantiles(sorted, (size_t)total, lc, n_opt - 1, qc);
        cp_codec_quantiles(sorted, (size_t)total, lw, n_opt, q);
        free(sorted);
        double sse_lm = quantise_sse(r, total, c.bucket_cutoffs, c.bucket_weights, nbits);
        double sse_q = quantise_sse(r, total, qc, q, nbits);
        printf("nbits %d, Laplace residuals: squared error Lloyd-Max %.4g, quantiles %.4g\n", nbits,
               sse_lm, sse_q);
        CP_CHECK(sse_lm < sse_q);
    }
    free(h);
    free(r);
}

/* Degenerate residuals (every held-out vector on its centroid): all buckets collapse to 0
 * without NaNs from the empty buckets. */
static void test_train_degenerate(void)
{
    const int dim = 8;
    float centroid[8] = {1, 0, 0, 0, 0, 0, 0, 0}, h[32];
    for (int i = 0; i < 32; i++)
        h[i] = centroid[i % dim];
    cp_codec c = {.dim = dim, .nbits = 2, .n_centroids = 1, .centroids = centroid};
    cp_error err = {0};
    CP_CHECK_OK(cp_codec_train(&c, h, 4, 1, &err), err);
    for (int i = 0; i < 3; i++)
        CP_CHECK_NEAR(c.bucket_cutoffs[i], 0.0, 0.0);
    for (int i = 0; i < 4; i++)
        CP_CHECK_NEAR(c.bucket_weights[i], 0.0, 0.0);
}

/* The Stanford encoder, written out literally (PLAID.md 1.7): bit k (LSB first) of each
 * dim's bucket into a dim-major stream, packed np.packbits style (first bit = MSB). */
static void reference_pack(const uint8_t *b, int dim, int nbits, uint8_t *out)
{
    int n_bits = dim * nbits;
    memset(out, 0, (size_t)n_bits / 8);
    int pos = 0;
    for (int j = 0; j < dim; j++)
        for (int k = 0; k < nbits; k++, pos++)
            if ((b[j] >> k) & 1) out[pos / 8] |= (uint8_t)(0x80 >> (pos % 8));
}

static void test_packing(void)
{
    const int nb[4] = {1, 2, 4, 8};
    for (int t = 0; t < 4; t++) {
        int nbits = nb[t], dim = 128, bytes = dim * nbits / 8;
        uint8_t b[128], back[128], nat[128], ref[128];
        for (int trial = 0; trial < 50; trial++) {
            for (int j = 0; j < dim; j++)
                b[j] = (uint8_t)(urand() * (1 << nbits));
            cp_codec_pack_natural(b, dim, nbits, nat);
            reference_pack(b, dim, nbits, ref);
            cp_codec_reference_to_natural(ref, (size_t)bytes, nbits);
            CP_CHECK(memcmp(ref, nat, (size_t)bytes) == 0);
            cp_codec_unpack_natural(nat, dim, nbits, back);
            CP_CHECK(memcmp(back, b, (size_t)dim) == 0);
            /* the conversion is its own inverse */
            memcpy(ref, nat, (size_t)bytes);
            cp_codec_reference_to_natural(ref, (size_t)bytes, nbits);
            cp_codec_reference_to_natural(ref, (size_t)bytes, nbits);
            CP_CHECK(memcmp(ref, nat, (size_t)bytes) == 0);
        }
    }
    /* A hand-made case: nbits 2, dims (1, 2, 3, 0) -> natural 01 10 11 00 = 0x6c;
     * reference bits LSB first: 10 01 11 00 = 0x9c. */
    uint8_t b4[8] = {1, 2, 3, 0, 0, 0, 0, 0}, out[2];
    cp_codec_pack_natural(b4, 8, 2, out);
    CP_CHECK_INT(out[0], 0x6c);
    uint8_t r[2];
    reference_pack(b4, 8, 2, r);
    CP_CHECK_INT(r[0], 0x9c);
}

static void test_decompress_one(void)
{
    float centroids[16] = {0};
    centroids[8] = 1.0f; /* centroid 1 = e0 */
    cp_codec c = {.dim = 8,
                  .nbits = 1,
                  .n_centroids = 2,
                  .centroids = centroids,
                  .bucket_weights = {-0.25f, 0.5f}};
    uint8_t res[1] = {0x80}; /* dim 0 in bucket 1, the rest bucket 0 */
    float out[8];
    cp_codec_decompress_one(&c, 1, res, out);
    double raw[8] = {1.5, -0.25, -0.25, -0.25, -0.25, -0.25, -0.25, -0.25}, n = 0;
    for (int j = 0; j < 8; j++)
        n += raw[j] * raw[j];
    for (int j = 0; j < 8; j++)
        CP_CHECK_NEAR(out[j], raw[j] / sqrt(n), 1e-6);
}

/* Clustered unit vectors: centroids + noise, normalised. */
static float *make_data(int64_t n, int dim, int n_clusters, float noise, float **centres_out)
{
    float *centres = malloc((size_t)n_clusters * dim * sizeof(float));
    float *x = malloc((size_t)n * dim * sizeof(float));
    for (int c = 0; c < n_clusters; c++) {
        for (int j = 0; j < dim; j++)
            centres[c * dim + j] = grand();
        normalise(centres + c * dim, dim);
    }
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(urand() * n_clusters);
        for (int j = 0; j < dim; j++)
            x[i * dim + j] = centres[c * dim + j] + noise * grand();
        normalise(x + i * dim, dim);
    }
    *centres_out = centres;
    return x;
}

static void test_round_trip(void)
{
    const int dim = 128, n = 6000, k = 64;
    float *centres;
    float *x = make_data(n, dim, 32, 0.08f, &centres);
    float *cent = malloc((size_t)k * dim * sizeof(float));
    cp_error err = {0};
    CP_CHECK_OK(cp_kmeans_train(x, 5000, dim, k, 10, 7, 256, 2, cent, &err), err);
    const int nb[4] = {1, 2, 4, 8};
    double prev = -1;
    int32_t *codes = malloc(1000 * sizeof *codes);
    uint8_t *res = malloc(1000 * (size_t)dim);
    float out[128];
    for (int t = 0; t < 4; t++) {
        cp_codec c = {.dim = dim, .nbits = nb[t], .n_centroids = k, .centroids = cent};
        CP_CHECK_OK(cp_codec_train(&c, x + 5000 * dim, 1000, 2, &err), err);
        CP_CHECK_OK(cp_codec_compress(&c, x + 5000 * dim, 1000, codes, res, 2, &err), err);
        double sum = 0;
        int rb = cp_residual_bytes(dim, nb[t]);
        for (int i = 0; i < 1000; i++) {
            cp_codec_decompress_one(&c, codes[i], res + (size_t)i * rb, out);
            double dot = 0;
            for (int j = 0; j < dim; j++)
                dot += (double)out[j] * x[(5000 + i) * dim + j];
            sum += dot;
        }
        double mean = sum / 1000;
        printf("nbits %d: mean cosine(original, decompressed) = %.4f\n", nb[t], mean);
        CP_CHECK(mean > prev);
        CP_CHECK(mean > 0.5);
        prev = mean;
    }
    /* The codes are the nearest centroids by inner product (checked by brute force). */
    for (int i = 0; i < 1000; i += 37) {
        const float *v = x + (5000 + i) * dim;
        int best = 0;
        double bs = -1e30;
        for (int c = 0; c < k; c++) {
            double s = 0;
            for (int j = 0; j < dim; j++)
                s += (double)v[j] * cent[c * dim + j];
            if (s > bs) bs = s, best = c;
        }
        double got = 0;
        for (int j = 0; j < dim; j++)
            got += (double)v[j] * cent[codes[i] * dim + j];
        CP_CHECK_NEAR(got, bs, 1e-5); /* equal score (ties may pick either) */
        (void)best;
    }
    free(codes);
    free(res);
    free(cent);
    free(centres);
    free(x);
}

/* The SCALED codec (residual norms kept apart) against COLBERT on data whose residual
 * norms vary over a factor of 20 per token (heavy-tailed pooled residuals, as real ones
 * are): at every nbits its round trip must be closer on average and its worst token
 * bounded; a token exactly on its centroid decodes to the centroid (scale byte 0); and
 * the scale byte is the last of each token's row. Deterministic (seeded data, k-means seed). */
static void test_round_trip_scaled(void)
{
    const int dim = 128, n = 6000, k = 64, nc = 32;
    float *centres = malloc((size_t)nc * dim * sizeof(float));
    float *x = malloc((size_t)n * dim * sizeof(float));
    for (int c = 0; c < nc; c++) {
        for (int j = 0; j < dim; j++)
            centres[c * dim + j] = grand();
        normalise(centres + c * dim, dim);
    }
    for (int i = 0; i < n; i++) {
        int c = (int)(urand() * nc);
        float noise = 0.01f * powf(20.0f, (float)urand()); /* 0.01 .. 0.2 */
        for (int j = 0; j < dim; j++)
            x[i * dim + j] = centres[c * dim + j] + noise * grand();
        normalise(x + i * dim, dim);
    }
    float *cent = malloc((size_t)k * dim * sizeof(float));
    cp_error err = {0};
    CP_CHECK_OK(cp_kmeans_train(x, 5000, dim, k, 10, 7, 256, 2, cent, &err), err);
    /* the last test vector sits exactly on centroid 5 */
    memcpy(x + (size_t)(n - 1) * dim, cent + 5 * dim, sizeof(float) * dim);
    const int nb[3] = {1, 2, 4};
    int32_t *codes = malloc(1000 * sizeof *codes);
    uint8_t *res = malloc(1000 * (size_t)(dim + 1));
    float out[128];
    for (int t = 0; t < 3; t++) {
        double mean[2], worst[2];
        for (int v = 0; v < 2; v++) {
            cp_codec c = {.dim = dim,
                          .nbits = nb[t],
                          .n_centroids = k,
                          .centroids = cent,
                          .variant = v ? CP_CODEC_SCALED : CP_CODEC_COLBERT};
            CP_CHECK_OK(cp_codec_train(&c, x + 4000 * dim, 1000, 2, &err), err);
            CP_CHECK_OK(cp_codec_compress(&c, x + 5000 * dim, 1000, codes, res, 2, &err), err);
            int rb = cp_codec_token_bytes(&c);
            CP_CHECK_INT(rb, cp_residual_bytes(dim, nb[t]) + v);
            double sum = 0, lo = 1;
            for (int i = 0; i < 1000; i++) {
                cp_codec_decompress_one(&c, codes[i], res + (size_t)i * rb, out);
                double dot = 0;
                for (int j = 0; j < dim; j++)
                    dot += (double)out[j] * x[(5000 + i) * dim + j];
                sum += dot;
                if (dot < lo) lo = dot;
            }
            mean[v] = sum / 1000;
            worst[v] = lo;
            if (v) { /* the token on its centroid: scale byte 0, decoded exactly */
                CP_CHECK_INT(codes[999], 5);
                CP_CHECK_INT(res[999 * (size_t)rb + rb - 1], 0);
                cp_codec_decompress_one(&c, codes[999], res + 999 * (size_t)rb, out);
                for (int j = 0; j < dim; j++)
                    CP_CHECK_NEAR(out[j], cent[5 * dim + j], 1e-6);
            }
        }
        printf("nbits %d: mean cosine colbert %.4f scaled %.4f; worst %.4f / %.4f\n", nb[t],
               mean[0], mean[1], worst[0], worst[1]);
        CP_CHECK(mean[1] > mean[0]);
        CP_CHECK(worst[1] >= worst[0]);
        /* bounds under the measured means (nbits 1/2/4: 0.933/0.979/0.998) */
        CP_CHECK(mean[1] > (nb[t] == 1 ? 0.92 : nb[t] == 2 ? 0.975 : 0.997));
        CP_CHECK(worst[1] > (nb[t] == 1 ? 0.65 : nb[t] == 2 ? 0.88 : 0.985));
    }
    free(codes);
    free(res);
    free(cent);
    free(centres);
    free(x);
}

static void test_k_formula(void)
{
    int64_t big = (int64_t)1 << 40;
    CP_CHECK_INT(cp_kmeans_default_k(1.2e6, big), 16384);
    CP_CHECK_INT(cp_kmeans_default_k(7.0e6, big), 32768);
    CP_CHECK_INT(cp_kmeans_default_k(70e6, big), 131072);
    CP_CHECK_INT(cp_kmeans_default_k(598e6, big), 262144);
    CP_CHECK_INT(cp_kmeans_default_k(9.4e9, big), 1048576);
    CP_CHECK_INT(cp_kmeans_default_k(1.0, big), 16); /* 16 sqrt(1) = 16 */
    CP_CHECK_INT(cp_kmeans_default_k(4.0, big), 32); /* exactly a power of two */
    CP_CHECK_INT(cp_kmeans_default_k(3.0, 3), 3);    /* clamped to the sample */
    CP_CHECK_INT(cp_kmeans_default_k(0.0, 10), 1);
    CP_CHECK_INT(cp_build_sample_size(5183), 5183);
    CP_CHECK_INT(cp_build_sample_size(100000), 55426);
    CP_CHECK_INT(cp_build_sample_size(1000000), 175272);
    CP_CHECK_INT(cp_build_sample_size(1), 1);
    CP_CHECK_INT(cp_build_sample_size(0), 0);
}

static void test_kmeans_degenerate(void)
{
    const int dim = 16;
    cp_error err = {0};
    /* 3 points, 3 centroids. */
    float x[3 * 16];
    for (int i = 0; i < 3 * dim; i++)
        x[i] = grand();
    for (int i = 0; i < 3; i++)
        normalise(x + i * dim, dim);
    float c[3 * 16];
    CP_CHECK_OK(cp_kmeans_train(x, 3, dim, 3, 4, 1, 256, 1, c, &err), err);
    /* 200 copies of 2 distinct points, 8 centroids: empty clusters must not break it. */
    float *d = malloc(200 * dim * sizeof(float));
    for (int i = 0; i < 200; i++)
        memcpy(d + i * dim, x + (i % 2) * dim, dim * sizeof(float));
    float c8[8 * 16];
    CP_CHECK_OK(cp_kmeans_train(d, 200, dim, 8, 4, 1, 256, 1, c8, &err), err);
    for (int k = 0; k < 8; k++) {
        double n = 0;
        for (int j = 0; j < dim; j++)
            n += (double)c8[k * dim + j] * c8[k * dim + j];
        CP_CHECK_NEAR(n, 1.0, 1e-4);
    }
    /* More centroids than points is refused with a message, not a crash. */
    CP_CHECK(cp_kmeans_train(x, 3, dim, 4, 4, 1, 256, 1, c8, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "4 centroids") != NULL);
    free(d);
}

int main(void)
{
    test_bucketize();
    test_quantiles();
    test_train_known();
    test_train_lloyd_max();
    test_train_degenerate();
    test_packing();
    test_decompress_one();
    test_k_formula();
    test_kmeans_degenerate();
    test_round_trip();
    test_round_trip_scaled();
    return CP_TEST_RESULT();
}
