/*
 * AVX-512 matrix product Y = X W^T + b on weights packed at load time (bert_gemm.c,
 * layout [out/32][in][32]). Our own kernel because Debian's OpenBLAS runs SSE3 code on
 * these CPUs unless OPENBLAS_CORETYPE was set before it loaded, which a library cannot
 * do for its caller. Blocking: the reduction dimension in chunks of KC so that one weight
 * panel chunk (KC x 32 floats, 32 KB) stays in L1 while 12-row slices of X stream past it
 * from L2; a 12 x 32 register tile (24 accumulators) per inner step.
 *
 * Each chunk of X is packed (12-row blocks, k-major, so that the tile's broadcasts read one
 * sequential stream) right before the panels use it, while it is in L2. Packing is a
 * transpose, done 16 x 16 in registers. With several threads each packs all rows for its
 * own panels. One packed copy shared by the threads was tried: it must be packed ahead of
 * time, its chunks then come from L3 rather than L2, and it measured slower at 1 thread.
 *
 * Compiled for every x86-64 target with function-level target attributes; only called
 * when cp_cpu_features() reports AVX-512.
 */
#include <stddef.h>
#include <stdlib.h>

#include "bert_internal.h"

#define MR 12
#define KC 256

size_t cp_gemm_avx512_xp_floats(int rows)
{
    return (size_t)(rows + MR - 1) / MR * MR * KC;
}

#if defined(__x86_64__)
#include "bert_simd_avx512.h"

#define INLINE static inline __attribute__((always_inline))

/* What a tile prefetches for its successors: the next tile's accumulators, and its share
 * of the next weight chunk. Y does not fit in L2 between reduction chunks, and each new
 * weight chunk comes from memory (a stride of in x 32 floats from the last one, which the
 * hardware prefetchers do not follow); unprefetched, these stalls cost about 15% and a
 * few % of the product's time at 1024 rows. */
typedef struct ahead {
    const float *y;
    int y_rows;
    const float *w; /* lines [w_first, w_end) of 16 floats */
    int w_first, w_end;
} ahead;

INLINE void prefetch_ahead(const ahead *a, size_t ldy)
{
    for (int r = 0; r < a->y_rows; r++) {
        _mm_prefetch((const char *)(a->y + r * ldy), _MM_HINT_T0);
        _mm_prefetch((const char *)(a->y + r * ldy + 16), _MM_HINT_T0);
    }
    for (int i = a->w_first; i < a->w_end; i++)
        _mm_prefetch((const char *)(a->w + (size_t)i * 16), _MM_HINT_T1);
}

/* One 12 x 32 tile over kc reduction steps from packed X (xp: kc x 12, rows beyond
 * `rows` are zero); acc_in: add to y, else start from the bias (or zero); gelu: apply
 * GELU before storing (the last chunk). */
INLINE AVX512 void tile(const float *xp, const float *w, int kc, float *y, size_t ldy, int rows,
                        __mmask16 m0, __mmask16 m1, int acc_in, const float *bias, const ahead *pf,
                        int gelu)
{
    __m512 c0[MR], c1[MR];
    prefetch_ahead(pf, ldy);
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
        if (r < rows && gelu) {
            c0[r] = gelu16(c0[r]);
            c1[r] = gelu16(c1[r]);
        }
        if (r < rows) {
            _mm512_mask_storeu_ps(y + r * ldy, m0, c0[r]);
            _mm512_mask_storeu_ps(y + r * ldy + 16, m1, c1[r]);
        }
    }
}

/* In-register 16 x 16 transpose: v[i] lane j becomes v[j] lane i. */
INLINE AVX512 void transpose16(__m512 v[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
        u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xee);
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xee);
    }
    for (int h = 0; h < 16; h += 8)
        for (int c = 0; c < 4; c++) {
            t[h + c] = _mm512_shuffle_f32x4(u[h + c], u[h + 4 + c], 0x88);
            t[h + 4 + c] = _mm512_shuffle_f32x4(u[h + c], u[h + 4 + c], 0xdd);
        }
    for (int c = 0; c < 8; c++) {
        v[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        v[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
    }
}

/* One 12-row block of X (n real rows, the rest zero) for reduction steps [0, kc) into
 * dst (kc x 12, k-major): 16 steps at a time through a register transpose. n_next: rows
 * of the block after it. */
static AVX512 void pack_block(const float *x, int n, size_t ldx, int kc, float *dst, int n_next)
{
    for (int k = 0; k < kc; k += 16) {
        int nk = kc - k < 16 ? kc - k : 16;
        __mmask16 m = (__mmask16)((1u << nk) - 1);
        __m512 v[16];
        /* the next block's rows: 12 short streams that the hardware prefetchers miss */
        for (int r = 0; r < n_next; r++)
            _mm_prefetch((const char *)(x + (size_t)(MR + r) * ldx + k), _MM_HINT_T0);
        for (int r = 0; r < 16; r++)
            v[r] = r < n ? _mm512_maskz_loadu_ps(m, x + r * ldx + k) : _mm512_setzero_ps();
        transpose16(v);
        for (int j = 0; j < nk; j++)
            _mm512_mask_storeu_ps(dst + (size_t)(k + j) * MR, (1u << MR) - 1, v[j]);
    }
}

/* Attention's keys as weights: K [L x dh] (row stride ld) into the panel layout
 * [ceil(L/32)][dh][32], keys past L zero. The same transpose, 16 keys x 16 dims at a time. */
AVX512 void cp_pack_keys_avx512(const float *k, int L, size_t ld, int dh, float *kp)
{
    int lp = (L + 31) / 32 * 32;
    for (int j0 = 0; j0 < lp; j0 += 16)
        for (int d0 = 0; d0 < dh; d0 += 16) {
            int nd = dh - d0 < 16 ? dh - d0 : 16;
            __mmask16 m = (__mmask16)((1u << nd) - 1);
            __m512 v[16];
            for (int r = 0; r < 16; r++)
                v[r] = j0 + r < L ? _mm512_maskz_loadu_ps(m, k + (size_t)(j0 + r) * ld + d0)
                                  : _mm512_setzero_ps();
            transpose16(v);
            float *dst = kp + ((size_t)(j0 / 32) * dh + d0) * 32 + j0 % 32;
            for (int c = 0; c < nd; c++)
                _mm512_storeu_ps(dst + (size_t)c * 32, v[c]);
        }
}

/* Reduction steps [0, kc) of all rows of X into xp, 12-row blocks of kc x 12. */
static AVX512 void pack_chunk(const float *x, int rows, size_t ldx, int kc, float *xp)
{
    for (int b = 0; b * MR < rows; b++) {
        int n = rows - b * MR < MR ? rows - b * MR : MR;
        int n_next = rows - (b + 1) * MR < MR ? rows - (b + 1) * MR : MR;
        pack_block(x + (size_t)b * MR * ldx, n, ldx, kc, xp + (size_t)b * MR * kc,
                   n_next > 0 ? n_next : 0);
    }
}

/* All row tiles of one weight chunk; next_w/next_lines: the chunk that comes after it. */
static AVX512 void panel_chunk(const float *xp, int rows, const float *wchunk, int kc, float *y,
                               size_t ldy, int cols, int acc_in, const float *bias,
                               const float *next_w, int next_lines, int gelu)
{
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    int tiles = (rows + MR - 1) / MR, share = (next_lines + tiles - 1) / tiles;
    for (int t = 0, r = 0; r < rows; t++, r += MR) {
        int next = rows - r - MR < MR ? rows - r - MR : MR; /* <= 0 after the last tile */
        int w_end = (t + 1) * share < next_lines ? (t + 1) * share : next_lines;
        ahead pf = {next > 0 ? y + (size_t)(r + MR) * ldy : y, next, next_w, t * share, w_end};
        tile(xp + (size_t)r * kc, wchunk, kc, y + (size_t)r * ldy, ldy, rows - r, m0, m1, acc_in,
             bias, &pf, gelu);
    }
}

AVX512 void cp_gemm_avx512_panels_ws(const float *x, int rows, int ldx, const float *packed, int in,
                                     int out, const float *bias, float *y, int ldy, int p_begin,
                                     int p_end, float *xp, int gelu)
{
    for (int k0 = 0; k0 < in; k0 += KC) {
        int kc = in - k0 < KC ? in - k0 : KC;
        pack_chunk(x + k0, rows, (size_t)ldx, kc, xp);
        for (int p = p_begin; p < p_end; p++) {
            int cols = out - p * 32 < 32 ? out - p * 32 : 32;
            /* after the last panel: the first one, one chunk on */
            int np = p + 1 < p_end ? p + 1 : p_begin, nk = p + 1 < p_end ? k0 : k0 + KC;
            int nkc = in - nk < KC ? in - nk : KC;
            const float *next = nk < in ? packed + ((size_t)np * in + nk) * 32 : NULL;
            panel_chunk(xp, rows, packed + ((size_t)p * in + k0) * 32, kc, y + p * 32, (size_t)ldy,
                        cols, k0 > 0, bias ? bias + p * 32 : NULL, next, next ? nkc * 2 : 0,
                        gelu && k0 + kc == in);
        }
    }
}

#else
/* Never called off x86-64 (no AVX-512 there): present so that the library links. */
void cp_gemm_avx512_panels_ws(const float *x, int rows, int ldx, const float *packed, int in,
                              int out, const float *bias, float *y, int ldy, int p_begin, int p_end,
                              float *xp, int gelu)
{
    (void)xp, (void)gelu;
    for (int p = p_begin; p < p_end; p++) {
        int cols = out - p * 32 < 32 ? out - p * 32 : 32;
        cp_gemm_packed_portable(x, rows, ldx, packed + (size_t)p * in * 32, in, cols,
                                bias ? bias + p * 32 : NULL, y + p * 32, ldy);
    }
}

void cp_pack_keys_avx512(const float *k, int L, size_t ld, int dh, float *kp)
{
    (void)k, (void)L, (void)ld, (void)dh, (void)kp;
}
#endif

void cp_gemm_packed_avx512_panels(const float *x, int rows, int ldx, const float *packed, int in,
                                  int out, const float *bias, float *y, int ldy, int p_begin,
                                  int p_end)
{
    size_t bytes = cp_gemm_avx512_xp_floats(rows) * sizeof(float);
    float *xp = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!xp) { /* no memory for the packed copy: the portable kernel needs none */
        for (int p = p_begin; p < p_end; p++) {
            int cols = out - p * 32 < 32 ? out - p * 32 : 32;
            cp_gemm_packed_portable(x, rows, ldx, packed + (size_t)p * in * 32, in, cols,
                                    bias ? bias + p * 32 : NULL, y + p * 32, ldy);
        }
        return;
    }
    cp_gemm_avx512_panels_ws(x, rows, ldx, packed, in, out, bias, y, ldy, p_begin, p_end, xp, 0);
    free(xp);
}
