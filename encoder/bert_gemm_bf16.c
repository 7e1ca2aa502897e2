/*
 * Reduced-precision matrix product for AVX512-BF16 CPUs (opt-in: CP_GEMM=bf16). Weights
 * and activations are rounded to bfloat16 (8-bit mantissa) and multiplied with
 * vdpbf16ps, which does two multiply-adds per fp32 lane per instruction with fp32
 * accumulation: twice the arithmetic of the fp32 kernel per instruction, half the weight
 * memory. The cosine drift against fp32 is measured by bench_encoder.
 *
 * Layouts: weights [out/32][in/2][32][2] bf16 (pairs of consecutive k for each output),
 * activations per 12-row block [in/2][12] pairs; in is padded with zeros to a multiple
 * of 32 (what the AMX kernel, bert_gemm_amx.c, needs of the same packed weights).
 * Same blocking as the fp32 kernel (bert_gemm_avx512.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"

/* float -> bfloat16, round to nearest even (inputs are finite). */
static uint16_t to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    b += 0x7fffu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

int cp_bf16_pairs(int in) { return (in + 31) / 32 * 16; }

void cp_pack_weights_bf16(const float *w, int in, int out, uint16_t *packed)
{
    int pairs = cp_bf16_pairs(in), panels = (out + 31) / 32;
    memset(packed, 0, (size_t)panels * pairs * 64 * sizeof *packed);
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++)
            packed[(((size_t)(o / 32) * pairs + k / 2) * 32 + o % 32) * 2 + k % 2] =
                to_bf16(w[(size_t)o * in + k]);
}

#if defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 12)
#include <immintrin.h>


#define BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define MR 12
#define KP 128 /* k pairs per block: 256 k, as the fp32 kernel */

static inline __attribute__((always_inline)) BF16 void
tile(const uint32_t *xp, const uint16_t *w, int kp, float *y, size_t ldy, int rows,
     __mmask16 m0, __mmask16 m1, int acc_in, const float *bias)
{
    __m512 c0[MR], c1[MR];
    __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
        c0[r] = acc_in && r < rows ? _mm512_maskz_loadu_ps(m0, y + r * ldy) : b0;
        c1[r] = acc_in && r < rows ? _mm512_maskz_loadu_ps(m1, y + r * ldy + 16) : b1;
    }
    for (int k = 0; k < kp; k++) {
        __m512bh w0 = (__m512bh)_mm512_loadu_si512(w + (size_t)k * 64);
        __m512bh w1 = (__m512bh)_mm512_loadu_si512(w + (size_t)k * 64 + 32);
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)xp[k * MR + r]);
            c0[r] = _mm512_dpbf16_ps(c0[r], a, w0);
            c1[r] = _mm512_dpbf16_ps(c1[r], a, w1);
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

/* k pairs [kp0, kp0 + kp) of X as bf16 pairs, blocks of 12 rows; missing values zero. */
static void pack_x(const float *x, int rows, size_t ldx, int in, int kp0, int kp, uint32_t *xp)
{
    for (int b = 0; b < rows; b += MR) {
        uint32_t *dst = xp + (size_t)b * kp;
        for (int r = 0; r < MR; r++) {
            const float *src = x + (size_t)(b + r) * ldx;
            for (int k = 0; k < kp; k++) {
                int k0 = 2 * (kp0 + k);
                uint32_t lo = b + r < rows && k0 < in ? to_bf16(src[k0]) : 0;
                uint32_t hi = b + r < rows && k0 + 1 < in ? to_bf16(src[k0 + 1]) : 0;
                dst[k * MR + r] = lo | hi << 16;
            }
        }
    }
}

/* Rows of packed X against the k block wchunk of weight panel p. */
static BF16 void panel(const uint32_t *xp, int rows, int kp, const uint16_t *wchunk, int out,
                       int p, int acc_in, const float *bias, float *y, int ldy)
{
    int cols = out - p * 32 < 32 ? out - p * 32 : 32;
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    for (int r = 0; r < rows; r += MR)
        tile(xp + (size_t)r * kp, wchunk, kp, y + (size_t)r * ldy + p * 32, (size_t)ldy,
             rows - r, m0, m1, acc_in, bias ? bias + p * 32 : NULL);
}

BF16 void cp_gemm_bf16_panels(const float *x, int rows, int ldx, const uint16_t *packed, int in,
                              int out, const float *bias, float *y, int ldy, int p_begin,
                              int p_end)
{
    int pairs = cp_bf16_pairs(in);
    size_t padded = (size_t)(rows + MR - 1) / MR * MR;
    uint32_t *xp = malloc(padded * KP * sizeof *xp);
    if (!xp) { /* no memory: pack one row block at a time into a stack buffer */
        uint32_t small[MR * KP];
        for (int k0 = 0; k0 < pairs; k0 += KP) {
            int kp = pairs - k0 < KP ? pairs - k0 : KP;
            for (int r = 0; r < rows; r += MR) {
                int n = rows - r < MR ? rows - r : MR;
                pack_x(x + (size_t)r * ldx, n, (size_t)ldx, in, k0, kp, small);
                for (int p = p_begin; p < p_end; p++)
                    panel(small, n, kp, packed + ((size_t)p * pairs + k0) * 64, out, p, k0 > 0,
                          bias, y + (size_t)r * ldy, ldy);
            }
        }
        return;
    }
    for (int k0 = 0; k0 < pairs; k0 += KP) {
        int kp = pairs - k0 < KP ? pairs - k0 : KP;
        pack_x(x, rows, (size_t)ldx, in, k0, kp, xp);
        for (int p = p_begin; p < p_end; p++)
            panel(xp, rows, kp, packed + ((size_t)p * pairs + k0) * 64, out, p, k0 > 0, bias, y,
                  ldy);
    }
    free(xp);
}

int cp_gemm_bf16_available(void) { return 1; }

#else
void cp_gemm_bf16_panels(const float *x, int rows, int ldx, const uint16_t *packed, int in,
                         int out, const float *bias, float *y, int ldy, int p_begin, int p_end)
{
    (void)x, (void)rows, (void)ldx, (void)packed, (void)in, (void)out, (void)bias, (void)y;
    (void)ldy, (void)p_begin, (void)p_end;
}

int cp_gemm_bf16_available(void) { return 0; }
#endif
