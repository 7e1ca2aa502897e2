/*
 * AVX-512 matrix product Y = X W^T + b on weights packed at load time (bert_gemm.c,
 * layout [out/32][in][32]). Our own kernel because Debian's OpenBLAS runs SSE3 code on
 * these CPUs unless OPENBLAS_CORETYPE was set before it loaded, which a library cannot
 * do for its caller. Blocking: the reduction dimension in chunks of KC so that a 12-row
 * slice of X and one weight panel chunk (KC x 32 floats) stay in L1/L2; a 12 x 32 register
 * tile (24 accumulators) per inner step.
 *
 * Compiled for every x86-64 target with function-level target attributes; only called
 * when cp_cpu_features() reports AVX-512.
 */
#include <stddef.h>
#include <stdlib.h>

#include "bert_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define MR 12
#define KC 256

/* One 12 x 32 tile over kc reduction steps from packed X (xp: kc x 12, rows beyond
 * `rows` are zero); acc_in: add to y, else start from the bias (or zero). */
static inline __attribute__((always_inline)) AVX512 void
tile(const float *xp, const float *w, int kc, float *y, size_t ldy, int rows, __mmask16 m0,
     __mmask16 m1, int acc_in, const float *bias)
{
    __m512 c0[MR], c1[MR];
    __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
        c0[r] = acc_in && r < rows ? _mm512_maskz_loadu_ps(m0, y + r * ldy) : b0;
        c1[r] = acc_in && r < rows ? _mm512_maskz_loadu_ps(m1, y + r * ldy + 16) : b1;
    }
    for (int k = 0; k < kc; k++) {
        __m512 w0 = _mm512_loadu_ps(w + (size_t)k * 32);
        __m512 w1 = _mm512_loadu_ps(w + (size_t)k * 32 + 16);
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(xp[k * MR + r]);
            c0[r] = _mm512_fmadd_ps(a, w0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, w1, c1[r]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
        if (r < rows) {
            _mm512_mask_storeu_ps(y + r * ldy, m0, c0[r]);
            _mm512_mask_storeu_ps(y + r * ldy + 16, m1, c1[r]);
        }
    }
}

/* X[rows x kc] (stride ldx) into blocks of 12 rows, each kc x 12 (k-major), so that the
 * tile's broadcasts read one sequential stream; missing rows are zero. */
static void pack_x(const float *x, int rows, size_t ldx, int kc, float *xp)
{
    for (int b = 0; b < rows; b += MR) {
        float *dst = xp + (size_t)b * kc;
        const float *src[MR];
        int n = rows - b < MR ? rows - b : MR;
        for (int r = 0; r < MR; r++) src[r] = x + (size_t)(b + (r < n ? r : 0)) * ldx;
        if (n == MR) {
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < MR; r++) dst[k * MR + r] = src[r][k];
        } else {
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < MR; r++) dst[k * MR + r] = r < n ? src[r][k] : 0.0f;
        }
    }
}

static AVX512 void panel_chunk(const float *xp, int rows, const float *wchunk, int kc, float *y,
                               size_t ldy, int cols, int acc_in, const float *bias)
{
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    for (int r = 0; r < rows; r += MR)
        tile(xp + (size_t)r * kc, wchunk, kc, y + (size_t)r * ldy, ldy, rows - r, m0, m1, acc_in,
             bias);
}

AVX512 void cp_gemm_packed_avx512_panels(const float *x, int rows, int ldx, const float *packed,
                                         int in, int out, const float *bias, float *y, int ldy,
                                         int p_begin, int p_end)
{
    size_t padded = (size_t)(rows + MR - 1) / MR * MR;
    float *xp = malloc(padded * KC * sizeof(float));
    if (!xp) { /* no memory for the packed copy: the portable kernel needs none */
        for (int p = p_begin; p < p_end; p++) {
            int cols = out - p * 32 < 32 ? out - p * 32 : 32;
            cp_gemm_packed_portable(x, rows, ldx, packed + (size_t)p * in * 32, in, cols,
                                    bias ? bias + p * 32 : NULL, y + p * 32, ldy);
        }
        return;
    }
    for (int k0 = 0; k0 < in; k0 += KC) {
        int kc = in - k0 < KC ? in - k0 : KC;
        pack_x(x + k0, rows, (size_t)ldx, kc, xp);
        for (int p = p_begin; p < p_end; p++) {
            int cols = out - p * 32 < 32 ? out - p * 32 : 32;
            const float *wchunk = packed + ((size_t)p * in + k0) * 32;
            panel_chunk(xp, rows, wchunk, kc, y + p * 32, (size_t)ldy, cols, k0 > 0,
                        bias ? bias + p * 32 : NULL);
        }
    }
    free(xp);
}

#else
void cp_gemm_packed_avx512_panels(const float *x, int rows, int ldx, const float *packed,
                                  int in, int out, const float *bias, float *y, int ldy,
                                  int p_begin, int p_end)
{
    (void)p_begin;
    (void)p_end;
    cp_gemm_packed_portable(x, rows, ldx, packed, in, out, bias, y, ldy);
}
#endif

void cp_gemm_packed_avx512(const float *x, int rows, int ldx, const float *packed, int in,
                           int out, const float *bias, float *y, int ldy)
{
    cp_gemm_packed_avx512_panels(x, rows, ldx, packed, in, out, bias, y, ldy, 0,
                                 (out + 31) / 32);
}
