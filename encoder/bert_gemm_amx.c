/*
 * bf16 matrix product on Intel AMX tiles (opt-in with CP_GEMM=bf16 on CPUs with AMX-BF16;
 * see bert_gemm_bf16.c for the AVX512-BF16 fallback). On this project's machines
 * vdpbf16ps has no more throughput than fp32 FMA, while one AMX tile multiply does a
 * 16 x 16 x 32 product.
 *
 * Blocking: 32 rows x 32 outputs per step with four C tiles (tmm0-3), two A tiles of X
 * (tmm4-5: 16 rows x 32 k each) and two B tiles of weights (tmm6-7: 16 k-pairs x 16
 * outputs, the "VNNI" pair layout that cp_pack_weights_bf16 writes, row stride 128 bytes).
 * X is converted to bf16 once per call, rows padded to 32 and k to 32 with zeros.
 * Linux grants the tile state per process on request (arch_prctl ARCH_REQ_XCOMP_PERM,
 * done by cp_amx_enable in util/cp_cpu.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"

#if defined(__x86_64__) && defined(__linux__) && (defined(__clang__) || __GNUC__ >= 12)
#include <immintrin.h>

#include "cp_cpu.h"

#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))

/* The CPUID check and the tile-state request are shared with the index (util/cp_cpu.c). */
int cp_gemm_amx_available(void)
{
    return cp_amx_enable();
}

/* All eight tiles 16 rows x 64 bytes. */
static AMX void configure(void)
{
    cp_amx_tilecfg c;
    cp_amx_tilecfg_full(&c, 8);
    _tile_loadconfig(&c);
}

/* X (rows x in, stride ldx) -> bf16 [rows_p x in_p], zero-padded. */
static AMX void convert_x(const float *x, int rows, int ldx, int in, uint16_t *xb, int rows_p,
                          int in_p)
{
    for (int r = 0; r < rows_p; r++) {
        uint16_t *dst = xb + (size_t)r * in_p;
        if (r >= rows) {
            memset(dst, 0, (size_t)in_p * 2);
            continue;
        }
        const float *src = x + (size_t)r * ldx;
        for (int k = 0; k < in_p; k += 32) {
            int n = in - k;
            __mmask16 m0 = n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
            __mmask16 m1 = n >= 32 ? 0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
            __m512 lo = _mm512_maskz_loadu_ps(m0, src + k);
            __m512 hi = _mm512_maskz_loadu_ps(m1, src + k + 16);
            _mm512_storeu_si512(dst + k, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

/* One 32 x 32 block of Y = X W^T + b over all k. A full block starts from the bias
 * (a tile load with row stride 0 repeats it on every row) and is stored straight into Y;
 * an edge block goes through a buffer so that nothing outside Y or the bias is touched. */
static AMX void block(const uint16_t *xb, int in_p, const uint16_t *wpanel, int r0, int rows,
                      int p, int out, const float *bias, float *y, int ldy)
{
    int cols = out - p * 32 < 32 ? out - p * 32 : 32, nr = rows - r0 < 32 ? rows - r0 : 32;
    bool full = cols == 32 && nr == 32;
    if (full && bias) {
        _tile_loadd(0, bias + p * 32, 0);
        _tile_loadd(1, bias + p * 32 + 16, 0);
        _tile_loadd(2, bias + p * 32, 0);
        _tile_loadd(3, bias + p * 32 + 16, 0);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    const uint16_t *a = xb + (size_t)r0 * in_p;
    for (int k = 0; k < in_p; k += 32) {
        _tile_loadd(4, a + k, in_p * 2);
        _tile_loadd(5, a + (size_t)16 * in_p + k, in_p * 2);
        _tile_loadd(6, wpanel + (size_t)k * 32, 128);
        _tile_loadd(7, wpanel + (size_t)k * 32 + 32, 128);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    if (full) {
        float *dst = y + (size_t)r0 * ldy + p * 32;
        _tile_stored(0, dst, ldy * 4);
        _tile_stored(1, dst + 16, ldy * 4);
        _tile_stored(2, dst + (size_t)16 * ldy, ldy * 4);
        _tile_stored(3, dst + (size_t)16 * ldy + 16, ldy * 4);
        return;
    }
    float c[32 * 32];
    _tile_stored(0, c, 128);
    _tile_stored(1, c + 16, 128);
    _tile_stored(2, c + 16 * 32, 128);
    _tile_stored(3, c + 16 * 32 + 16, 128);
    for (int r = 0; r < nr; r++) {
        float *dst = y + (size_t)(r0 + r) * ldy + p * 32;
        for (int j = 0; j < cols; j++) dst[j] = c[r * 32 + j] + (bias ? bias[p * 32 + j] : 0.0f);
    }
}

AMX int cp_gemm_amx_panels(const float *x, int rows, int ldx, const uint16_t *packed, int in,
                           int out, const float *bias, float *y, int ldy, int p_begin, int p_end)
{
    int rows_p = (rows + 31) / 32 * 32, in_p = (in + 31) / 32 * 32, pairs = in_p / 2;
    uint16_t *xb = malloc((size_t)rows_p * in_p * 2);
    if (!xb) return -1;
    convert_x(x, rows, ldx, in, xb, rows_p, in_p);
    configure();
    for (int p = p_begin; p < p_end; p++) {
        const uint16_t *wpanel = packed + (size_t)p * pairs * 64;
        for (int r0 = 0; r0 < rows; r0 += 32) block(xb, in_p, wpanel, r0, rows, p, out, bias, y, ldy);
    }
    _tile_release();
    free(xb);
    return 0;
}

#else
int cp_gemm_amx_available(void) { return 0; }

int cp_gemm_amx_panels(const float *x, int rows, int ldx, const uint16_t *packed, int in,
                       int out, const float *bias, float *y, int ldy, int p_begin, int p_end)
{
    (void)x, (void)rows, (void)ldx, (void)packed, (void)in, (void)out, (void)bias, (void)y;
    (void)ldy, (void)p_begin, (void)p_end;
    return -1;
}
#endif
