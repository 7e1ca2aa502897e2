/*
 * The encoder's matrix kernels (portable and AVX-512, on the packed weight layout, single
 * and multi-threaded) against a plain double-precision product, on shapes that exercise
 * every edge: rows not a multiple of the 12-row tile, outputs not a multiple of the
 * 32-wide panel, reductions longer than one 256-step block (and not a multiple of the
 * 16-step transpose that packs X). Also the forward pass's other AVX-512 helpers (the key
 * transpose, the masked softmax, the residual LayerNorm, GELU fused into the product)
 * against plain C.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"
#include "cp_cpu.h"
#include "cp_test.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static double max_diff_vs_naive(const float *x, int rows, int ldx, const float *w, const float *b,
                                int in, int out, const float *y, int ldy)
{
    double worst = 0;
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0;
            for (int k = 0; k < in; k++) acc += (double)x[r * ldx + k] * w[o * in + k];
            double d = fabs(acc - y[r * ldy + o]) / (1.0 + fabs(acc));
            if (d > worst) worst = d;
        }
    return worst;
}

static void check_shape(int rows, int in, int out, int kind, int threads)
{
    unsigned seed = (unsigned)(rows * 7919 + in * 31 + out);
    int ldx = in + 3, ldy = out + 5; /* strides wider than the rows, as attention uses */
    float *x = malloc(sizeof(float) * (size_t)rows * ldx);
    float *w = malloc(sizeof(float) * (size_t)in * out), *b = malloc(sizeof(float) * out);
    float *y = malloc(sizeof(float) * (size_t)rows * ldy);
    for (int i = 0; i < rows * ldx; i++) x[i] = frand(&seed);
    for (int i = 0; i < in * out; i++) w[i] = frand(&seed);
    for (int i = 0; i < out; i++) b[i] = frand(&seed);
    for (int i = 0; i < rows * ldy; i++) y[i] = 12345.0f; /* padding must stay untouched */
    cp_linear l = {.in = in, .out = out, .w = malloc(sizeof(float) * (size_t)in * out),
                   .bias = malloc(sizeof(float) * out)};
    memcpy(l.w, w, sizeof(float) * (size_t)in * out);
    memcpy(l.bias, b, sizeof(float) * out);
    if (kind == CP_GEMM_BF16 || kind == CP_GEMM_AMX) { /* the reference sees the bf16-rounded inputs */
        for (int i = 0; i < rows * ldx; i++) x[i] = round_bf16(x[i]);
        for (int i = 0; i < in * out; i++) w[i] = round_bf16(w[i]);
    }
    cp_error err = {0};
    CP_CHECK_OK(cp_linear_prepare(&l, kind, &err), err);
    cp_linear_apply(&l, kind, x, rows, ldx, y, ldy, threads);
    double d = max_diff_vs_naive(x, rows, ldx, w, b, in, out, y, ldy);
    double tol = 1e-5 * (in > 512 ? in / 512.0 : 1.0); /* float sums drift with length */
    if (d > tol)
        fprintf(stderr, "kernel %s rows %d in %d out %d threads %d: rel diff %g\n",
                cp_gemm_name(kind), rows, in, out, threads, d);
    CP_CHECK(d <= tol);
    for (int r = 0; r < rows; r++)
        for (int o = out; o < ldy; o++) CP_CHECK(y[r * ldy + o] == 12345.0f);
    cp_linear_free(&l);
    free(x), free(w), free(b), free(y);
}

/* GELU fused into the AVX-512 product against GELU(double-precision product). */
static void check_fused_gelu(int rows, int in, int out, int threads)
{
    unsigned seed = (unsigned)(rows * 13 + in * 7 + out);
    float *x = malloc(sizeof(float) * (size_t)rows * in);
    float *y = malloc(sizeof(float) * (size_t)rows * out);
    cp_linear l = {.in = in,
                   .out = out,
                   .w = malloc(sizeof(float) * (size_t)in * out),
                   .bias = malloc(sizeof(float) * out)};
    float *w = malloc(sizeof(float) * (size_t)in * out);
    for (int i = 0; i < rows * in; i++)
        x[i] = frand(&seed);
    for (int i = 0; i < in * out; i++)
        w[i] = l.w[i] = frand(&seed) * 0.2f;
    for (int i = 0; i < out; i++)
        l.bias[i] = frand(&seed);
    cp_error err = {0};
    CP_CHECK_OK(cp_linear_prepare(&l, CP_GEMM_AVX512, &err), err);
    float *ws = aligned_alloc(64, cp_gemm_workspace_floats(rows, threads) * sizeof(float));
    CP_CHECK(cp_linear_apply_ws(&l, CP_GEMM_AVX512, x, rows, in, y, out, threads, ws, true));
    double worst = 0;
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double acc = l.bias[o];
            for (int k = 0; k < in; k++)
                acc += (double)x[r * in + k] * w[o * in + k];
            double want = 0.5 * acc * (1.0 + erf(acc / sqrt(2.0)));
            double d = fabs(y[r * out + o] - want);
            if (d > worst) worst = d;
        }
    if (worst > 1e-5)
        fprintf(stderr, "fused gelu rows %d in %d out %d: max abs diff %g\n", rows, in, out, worst);
    CP_CHECK(worst <= 1e-5);
    cp_linear_free(&l);
    free(x), free(y), free(w), free(ws);
}

/* The vectorised exp and GELU against libm. */
static void check_math(void)
{
    enum { N = 20001 };
    static float v[N], g[N];
    for (int i = 0; i < N; i++) v[i] = -87.0f + 175.0f * (float)i / (N - 1);
    cp_exp_avx512(v, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        float x = -87.0f + 175.0f * (float)i / (N - 1);
        double want = exp((double)x), d = fabs(v[i] - want) / want;
        if (d > worst) worst = d;
    }
    fprintf(stderr, "exp: max relative error %.3g\n", worst);
    CP_CHECK(worst < 1e-6);
    worst = 0;
    for (int i = 0; i < N; i++) g[i] = -12.0f + 24.0f * (float)i / (N - 1);
    cp_gelu_avx512(g, N);
    for (int i = 0; i < N; i++) {
        double x = -12.0 + 24.0 * (float)i / (N - 1), want = 0.5 * x * (1 + erf(x / sqrt(2.0)));
        double d = fabs(g[i] - want);
        if (d > worst) worst = d;
    }
    fprintf(stderr, "gelu: max absolute error %.3g\n", worst);
    CP_CHECK(worst < 2e-6);
}

/* Attention keys [L x dh] into the panel layout, keys past L zero. */
static void check_pack_keys(int L, int dh)
{
    unsigned seed = (unsigned)(L * 131 + dh);
    int ld = 3 * dh + 5, lp = (L + 31) / 32 * 32;
    float *k = malloc(sizeof(float) * (size_t)L * ld);
    float *kp = malloc(sizeof(float) * (size_t)lp * dh);
    for (int i = 0; i < L * ld; i++)
        k[i] = frand(&seed);
    for (int i = 0; i < lp * dh; i++)
        kp[i] = NAN; /* every slot must be written */
    cp_pack_keys_avx512(k, L, (size_t)ld, dh, kp);
    int bad = 0;
    for (int j = 0; j < lp; j++)
        for (int d = 0; d < dh; d++) {
            float want = j < L ? k[j * ld + d] : 0.0f;
            if (kp[((j / 32) * dh + d) * 32 + j % 32] != want) bad++;
        }
    if (bad) fprintf(stderr, "pack_keys L %d dh %d: %d wrong slots\n", L, dh, bad);
    CP_CHECK(bad == 0);
    free(k), free(kp);
}

/* softmax(scale * s) over attended keys against double precision; masked keys get 0. */
static void check_softmax(int n)
{
    unsigned seed = (unsigned)n * 97u + 1u;
    float *s = malloc(sizeof(float) * (size_t)n), scale = 0.125f;
    uint8_t *attend = malloc((size_t)n);
    double *want = malloc(sizeof(double) * (size_t)n), mx = -1e30, sum = 0;
    for (int j = 0; j < n; j++) {
        s[j] = 40.0f * frand(&seed);
        attend[j] = j == 0 || (frand(&seed) > -0.5f);
        if (attend[j] && s[j] > mx) mx = s[j];
    }
    for (int j = 0; j < n; j++)
        sum += want[j] = attend[j] ? exp(scale * (s[j] - mx)) : 0.0;
    cp_softmax_avx512(s, (size_t)n, attend, scale);
    double worst = 0;
    for (int j = 0; j < n; j++) {
        double d = fabs(s[j] - want[j] / sum);
        if (d > worst) worst = d;
        if (!attend[j]) CP_CHECK(s[j] == 0.0f);
    }
    if (worst > 1e-6) fprintf(stderr, "softmax n %d: max abs diff %g\n", n, worst);
    CP_CHECK(worst <= 1e-6);
    free(s), free(attend), free(want);
}

/* x = LayerNorm(x + d) against double precision. */
static void check_layer_norm(int n)
{
    unsigned seed = (unsigned)n * 31u + 5u;
    float *x = malloc(sizeof(float) * (size_t)n), *d = malloc(sizeof(float) * (size_t)n);
    float *g = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    double *want = malloc(sizeof(double) * (size_t)n), mean = 0, var = 0;
    for (int i = 0; i < n; i++) {
        x[i] = 3.0f * frand(&seed) + 1.0f, d[i] = frand(&seed);
        g[i] = 1.0f + 0.1f * frand(&seed), b[i] = 0.1f * frand(&seed);
        mean += want[i] = (double)x[i] + d[i];
    }
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (want[i] - mean) * (want[i] - mean);
    double inv = 1.0 / sqrt(var / n + 1e-12);
    cp_add_layer_norm_avx512(x, d, (size_t)n, g, b, 1e-12f);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(x[i] - ((want[i] - mean) * inv * g[i] + b[i]));
        if (e > worst) worst = e;
    }
    if (worst > 2e-6) fprintf(stderr, "layer norm n %d: max abs diff %g\n", n, worst);
    CP_CHECK(worst <= 2e-6);
    free(x), free(d), free(g), free(b), free(want);
}

static void check_attention_helpers(void)
{
    static const int lens[] = {1, 15, 16, 17, 32, 100, 128, 131};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        check_pack_keys(lens[i], 64);
        check_pack_keys(lens[i], 24);
        check_softmax(lens[i]);
        check_layer_norm(lens[i]);
    }
    check_layer_norm(768);
}

int main(void)
{
    if (cp_cpu_features() & CP_CPU_AVX512) {
        check_math(), check_attention_helpers();
        check_fused_gelu(37, 300, 100, 2); /* GELU on the last of two reduction chunks */
        check_fused_gelu(12, 64, 32, 1);
    }
    static const int rows[] = {1, 5, 12, 13, 24, 37};
    static const int ins[] = {1, 16, 64, 300, 513, 768};
    static const int outs[] = {1, 24, 32, 33, 96, 100};
    int kinds[5] = {CP_GEMM_PORTABLE, CP_GEMM_BLAS, CP_GEMM_AVX512, CP_GEMM_BF16, CP_GEMM_AMX};
    int n_kinds = (cp_cpu_features() & CP_CPU_AVX512) ? 3 : 2;
    if (n_kinds == 3 && (cp_cpu_features() & CP_CPU_AVX512BF16) && cp_gemm_bf16_available())
        n_kinds = cp_gemm_amx_available() ? 5 : 4;
    for (int k = 0; k < n_kinds; k++) fprintf(stderr, "testing kernel %s\n", cp_gemm_name(kinds[k]));
    if (n_kinds == 2) fprintf(stderr, "no AVX-512 here: testing the portable and BLAS paths\n");
    for (int k = 0; k < n_kinds; k++)
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
            for (size_t i = 0; i < sizeof ins / sizeof *ins; i++)
                for (size_t o = 0; o < sizeof outs / sizeof *outs; o++)
                    check_shape(rows[r], ins[i], outs[o], kinds[k], 1 + (int)(o % 3));
    return CP_TEST_RESULT();
}
