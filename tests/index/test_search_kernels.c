/*
 * The SIMD kernel tables (AVX2, AVX-512) against the portable reference, on random data of
 * many shapes (dims 96 / 104 / 128, nbits 1 / 2 / 4 / 8, row counts that hit every register
 * block tail, query widths that need one and two column blocks). The portable decoder is
 * itself checked against the codec's cp_codec_decompress_one.
 */
#include <string.h>

#include "cp_test.h"
#include "codec.h"
#include "kernels.h"
#include "snapshot.h"
#include "search_test_util.h"

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN counts as a difference */
    }
    return m;
}

static void test_gemm(const cp_kernels *k, const cp_kernels *ref)
{
    int dims[] = {96, 104, 128, 8};
    for (int di = 0; di < 4; di++)
        for (int nqp = 32; nqp <= 64; nqp += 32)
            for (int rows = 1; rows <= 20; rows += (rows < 8 ? 1 : 5)) {
                int d = dims[di];
                float *A = malloc(sizeof(float) * (size_t)(rows * d));
                float *B = malloc(sizeof(float) * (size_t)(d * nqp));
                float *o1 = malloc(sizeof(float) * (size_t)(rows * nqp));
                float *o2 = malloc(sizeof(float) * (size_t)(rows * nqp));
                tu_fill(A, (size_t)(rows * d), 0);
                tu_fill(B, (size_t)(d * nqp), 0);
                k->gemm(A, rows, d, B, nqp, o1);
                ref->gemm(A, rows, d, B, nqp, o2);
                float diff = max_abs_diff(o1, o2, (size_t)(rows * nqp));
                if (diff > 1e-4f)
                    fprintf(stderr, "%s gemm d=%d nqp=%d rows=%d: diff %g\n", k->name, d, nqp, rows, diff);
                CP_CHECK(diff <= 1e-4f);
                free(A), free(B), free(o1), free(o2);
            }
}

static void test_rowmax_topn(const cp_kernels *k, const cp_kernels *ref)
{
    int nqs[] = {1, 7, 16, 31, 32, 33, 40};
    for (int qi = 0; qi < 7; qi++)
        for (int n = 1; n <= 4; n++) {
            int nq = nqs[qi], nqp = cp_kernels_nqp(nq), rows = 300;
            float *S = calloc((size_t)(rows * nqp), sizeof(float));
            for (int r = 0; r < rows; r++) /* quantised: many exact ties */
                for (int i = 0; i < nq; i++) S[r * nqp + i] = (float)(tu_int(9) - 4) / 4.0f;
            float m1[300], m2[300];
            k->rowmax(S, rows, nqp, nq, m1);
            ref->rowmax(S, rows, nqp, nq, m2);
            CP_CHECK(memcmp(m1, m2, sizeof m1) == 0);
            int32_t *i1 = malloc(sizeof(int32_t) * (size_t)(nq * n)), *i2 = malloc(sizeof(int32_t) * (size_t)(nq * n));
            float *v1 = malloc(sizeof(float) * (size_t)(nq * n)), *v2 = malloc(sizeof(float) * (size_t)(nq * n));
            k->topn_cols(S, rows, nqp, nq, n, i1, v1);
            ref->topn_cols(S, rows, nqp, nq, n, i2, v2);
            CP_CHECK(memcmp(i1, i2, sizeof(int32_t) * (size_t)(nq * n)) == 0);
            /* the portable answer itself: descending, lowest row first among ties */
            for (int i = 0; i < nq; i++) {
                int32_t prev = -1;
                for (int t = 0; t < n; t++) {
                    int32_t r = i2[i * n + t];
                    CP_CHECK(r >= 0 && r < rows);
                    if (t > 0) {
                        float a = S[prev * nqp + i], b = S[r * nqp + i];
                        CP_CHECK(a > b || (a == b && prev < r));
                    }
                    int better = 0; /* rows outside the list must not beat the last one */
                    for (int rr = 0; rr < rows; rr++) {
                        int in = 0;
                        for (int u = 0; u < n; u++) in |= i2[i * n + u] == rr;
                        if (!in && (S[rr * nqp + i] > S[r * nqp + i] ||
                                    (S[rr * nqp + i] == S[r * nqp + i] && rr < r) ) && t == n - 1)
                            better++;
                    }
                    CP_CHECK_INT(better, 0);
                    prev = r;
                }
            }
            free(S), free(i1), free(i2), free(v1), free(v2);
        }
}

static void test_interact(const cp_kernels *k, const cp_kernels *ref)
{
    int K = 50;
    for (int nqp = 32; nqp <= 64; nqp += 32) {
        float *S = malloc(sizeof(float) * (size_t)(K * nqp));
        tu_fill(S, (size_t)(K * nqp), 1);
        uint8_t keep[50];
        for (int c = 0; c < K; c++) keep[c] = (uint8_t)(tu_int(3) != 0);
        for (int len = 0; len < 40; len++) {
            int32_t codes[40];
            for (int t = 0; t < len; t++) codes[t] = tu_int(K);
            for (int use_keep = 0; use_keep < 2; use_keep++) {
                float a = k->interact(S, nqp, codes, len, use_keep ? keep : NULL);
                float b = ref->interact(S, nqp, codes, len, use_keep ? keep : NULL);
                CP_CHECK(a == b || (isinf(a) && isinf(b)));
                /* direct definition */
                double want = 0;
                int any = 0;
                for (int i = 0; i < nqp; i++) {
                    double m = -INFINITY;
                    for (int t = 0; t < len; t++)
                        if (!use_keep || keep[codes[t]]) {
                            any = 1;
                            if (S[codes[t] * nqp + i] > m) m = S[codes[t] * nqp + i];
                        }
                    want += m;
                }
                if (!any) CP_CHECK(isinf(b) && b < 0);
                else CP_CHECK_NEAR(b, want, 1e-5);
            }
        }
        free(S);
    }
}

static void test_decode(const cp_kernels *k, const cp_kernels *ref)
{
    int dims[] = {96, 104, 128};
    for (int di = 0; di < 3; di++)
        for (int nbits = 1; nbits <= 8; nbits *= 2) {
            int d = dims[di];
            cp_snapshot *s = tu_snapshot(d, nbits, 20, 3, 40, 0, 0, 0);
            cp_decode_lut lut;
            cp_decode_lut_init(&lut, &s->codec);
            int n = (int)s->n_tokens;
            float *o1 = malloc(sizeof(float) * (size_t)(n * d)), *o2 = malloc(sizeof(float) * (size_t)(n * d));
            float *n1 = malloc(sizeof(float) * (size_t)n), *n2 = malloc(sizeof(float) * (size_t)n);
            float *v = malloc(sizeof(float) * (size_t)d);
            k->decode(&s->codec, &lut, s->codes, s->residuals, n, o1, n1);
            ref->decode(&s->codec, &lut, s->codes, s->residuals, n, o2, n2);
            float diff = max_abs_diff(o1, o2, (size_t)(n * d));
            if (diff > 1e-6f)
                fprintf(stderr, "%s decode %s d=%d nbits=%d diff %g\n", k->name,
                        cp_codec_variant_name(s->codec.variant), d, nbits, diff);
            CP_CHECK(diff <= 1e-6f);
            CP_CHECK(max_abs_diff(n1, n2, (size_t)n) <= 1e-5f);
            int rb = cp_codec_token_bytes(&s->codec);
            for (int t = 0; t < n; t++) { /* normalised portable output == codec reference */
                cp_codec_decompress_one(&s->codec, s->codes[t], s->residuals + t * rb, v);
                for (int j = 0; j < d; j++) o2[t * d + j] *= n2[t];
                CP_CHECK(max_abs_diff(o2 + t * d, v, (size_t)d) <= 1e-5f);
            }
            free(o1), free(o2), free(n1), free(n2), free(v);
            cp_snapshot_release(s);
        }
}

static void test_table_scores(const cp_kernels *k, const cp_kernels *ref)
{
    int dims[] = {96, 104, 128};
    for (int di = 0; di < 3; di++)
        for (int nbits = 1; nbits <= 8; nbits *= 2)
            for (int nqp = 32; nqp <= 64; nqp += 32) {
                int d = dims[di], rb = cp_residual_bytes(d, nbits);
                cp_snapshot *s = tu_snapshot(d, nbits, 10, 2, 30, 0, 0, 0);
                int stride = cp_codec_token_bytes(&s->codec);
                int n = (int)s->n_tokens;
                cp_decode_lut lut;
                cp_decode_lut_init(&lut, &s->codec);
                float *S = malloc(sizeof(float) * (size_t)(10 * nqp));
                float *T = malloc(sizeof(float) * (size_t)(rb * 256 * nqp));
                float *o1 = malloc(sizeof(float) * (size_t)(n * nqp)), *o2 = malloc(sizeof(float) * (size_t)(n * nqp));
                float *n1 = malloc(sizeof(float) * (size_t)n), *n2 = malloc(sizeof(float) * (size_t)n);
                float *dec = malloc(sizeof(float) * (size_t)(n * d)), *n3 = malloc(sizeof(float) * (size_t)n);
                tu_fill(S, (size_t)(10 * nqp), 0);
                tu_fill(T, (size_t)(rb * 256 * nqp), 0);
                k->table_scores(&s->codec, &lut, S, nqp, T, s->codes, s->residuals, n, o1, n1);
                ref->table_scores(&s->codec, &lut, S, nqp, T, s->codes, s->residuals, n, o2, n2);
                CP_CHECK(max_abs_diff(o1, o2, (size_t)(n * nqp)) <= 1e-4f);
                CP_CHECK(max_abs_diff(n1, n2, (size_t)n) <= 1e-5f);
                ref->decode(&s->codec, &lut, s->codes, s->residuals, n, dec, n3); /* same norms */
                CP_CHECK(max_abs_diff(n2, n3, (size_t)n) <= 1e-5f);
                double sum = 0; /* the definition, for one entry */
                for (int p = 0; p < rb; p++)
                    sum += T[(p * 256 + s->residuals[1 * stride + p]) * nqp + 3];
                double sc = s->codec.variant == CP_CODEC_SCALED
                                ? s->codec.scales[s->residuals[stride + rb]]
                                : 1.0;
                double want = S[s->codes[1] * nqp + 3] + sc * sum;
                CP_CHECK_NEAR(o2[1 * nqp + 3], want, 1e-4);
                free(S), free(T), free(o1), free(o2), free(n1), free(n2), free(dec), free(n3);
                cp_snapshot_release(s);
            }
}

static void test_colmax(const cp_kernels *k, const cp_kernels *ref)
{
    for (int nqp = 32; nqp <= 64; nqp += 32)
        for (int rows = 1; rows <= 33; rows += 4) {
            float *S = malloc(sizeof(float) * (size_t)(rows * nqp));
            float scale[40], c1[64], c2[64];
            tu_fill(S, (size_t)(rows * nqp), 0);
            for (int r = 0; r < rows; r++) scale[r] = 0.5f + (float)tu_int(100) / 100.0f;
            for (int i = 0; i < nqp; i++) c1[i] = c2[i] = tu_uniform() - 1.0f;
            k->colmax_scaled(S, rows, nqp, scale, c1);
            ref->colmax_scaled(S, rows, nqp, scale, c2);
            CP_CHECK(memcmp(c1, c2, sizeof(float) * (size_t)nqp) == 0);
            free(S);
        }
}

static void test_table(const cp_kernels *k)
{
    const cp_kernels *ref = cp_kernels_portable();
    fprintf(stderr, "testing %s against %s\n", k->name, ref->name);
    test_gemm(k, ref);
    test_rowmax_topn(k, ref);
    test_interact(k, ref);
    test_decode(k, ref);
    test_table_scores(k, ref);
    /* the SCALED codec (a scale byte per token) on the same decoding paths */
    tu_codec_variant = CP_CODEC_SCALED;
    test_decode(k, ref);
    test_table_scores(k, ref);
    tu_codec_variant = CP_CODEC_COLBERT;
    test_colmax(k, ref);
}

int main(void)
{
    const cp_kernels *tables[] = {cp_kernels_portable(), cp_kernels_avx2(), cp_kernels_avx512()};
    int tested = 0;
    for (int i = 0; i < 3; i++)
        if (tables[i]) {
            test_table(tables[i]);
            tested++;
        }
    CP_CHECK(cp_kernels_get() != NULL);
    fprintf(stderr, "%d kernel table(s) tested; dispatch chose %s\n", tested, cp_kernels_get()->name);
    return CP_TEST_RESULT();
}
