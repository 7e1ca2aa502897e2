/*
 * The encoder's matrix kernels (portable and AVX-512, on the packed weight layout, single
 * and multi-threaded) against a plain double-precision product, on shapes that exercise
 * every edge: rows not a multiple of the 12-row tile, outputs not a multiple of the
 * 32-wide panel, reductions longer than one 256-step block.
 */
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
    if (d > 1e-5)
        fprintf(stderr, "kernel %s rows %d in %d out %d threads %d: rel diff %g\n",
                cp_gemm_name(kind), rows, in, out, threads, d);
    CP_CHECK(d <= 1e-5);
    for (int r = 0; r < rows; r++)
        for (int o = out; o < ldy; o++) CP_CHECK(y[r * ldy + o] == 12345.0f);
    cp_linear_free(&l);
    free(x), free(w), free(b), free(y);
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

int main(void)
{
    if (cp_cpu_features() & CP_CPU_AVX512) check_math();
    static const int rows[] = {1, 5, 12, 13, 37};
    static const int ins[] = {1, 64, 300, 513};
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
