/*
 * Nearest centroid on Intel AMX tiles: bf16 scores of centroids x vectors with a fused
 * running maximum, then exact fp32 rescoring of a few candidates per vector
 * (codec.c dispatches here; the fp32 sgemm + argmax path is the reference).
 *
 * Why it looks like this:
 * - One tile multiply does a 16 x 16 x 32 bf16 product, about 16x the fp32 FMA rate of
 *   this machine's cores, so the K x dim products stop being the cost of an index build.
 * - Centroids are the tile rows and vectors the tile columns: a C tile row then holds one
 *   centroid's scores against 16 vectors, one per SIMD lane, and a running maximum over
 *   centroids is a lane-wise compare-and-blend with no horizontal work. Four maxima are
 *   kept per vector, one per class c mod 4; the four winners are rescored in fp32 and the
 *   best wins. The fp32 argmax is missed only when bf16 rounding (about 2^-9 relative per
 *   product) lets another centroid of its own class overtake it, so only near-ties can
 *   differ, and then the residual is taken against a centroid that is almost as close.
 * - Blocking: a chunk of centroids (about 192 KB of bf16) stays in L2 while a superblock
 *   of 512 vectors (VNNI pair layout, 128 KB at dim 128) is swept past it; per 32 x 32
 *   step the four C tiles (tmm0-3) take two centroid tiles (tmm4-5) x two vector tiles
 *   (tmm6-7). The 4 x (max, index) running state of 2 x 16 vectors lives in zmm registers
 *   for a whole chunk.
 *
 * - An optional per-centroid bias is added to every score (fp32, after the tile product):
 *   with bias -|c|^2 / 2 the largest score is the nearest centroid in L2, which is what
 *   the k-means iterations (kmeans.c) need.
 *
 * Invariants: centroid rows beyond K and dims beyond dim are zero padding; padded centroid
 * rows have bias -inf so they never win; ties in fp32 go to the lower centroid id, like
 * the reference argmax.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cp_cpu.h"
#include "codec_amx.h"

#define SUPER_ROWS 512 /* vectors per superblock, a multiple of 32 */
#define N_CLASS 4      /* running maxima per vector (centroid id mod 4) */

static int64_t round_up(int64_t x, int64_t m)
{
    return (x + m - 1) / m * m;
}

#if defined(__x86_64__) && defined(__linux__) && (defined(__clang__) || __GNUC__ >= 12)
#include <immintrin.h>

#define AMX                                                                                    \
    __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))

bool cp_assign_amx_available(void)
{
    /* AVX512-BF16 converts to bf16; the AMX request also honours CP_FORCE_PORTABLE. */
    return (cp_cpu_features() & CP_CPU_AVX512BF16) && cp_amx_enable();
}

/* n floats (n <= n_p, n_p a multiple of 32) -> n_p bf16, round to nearest even, zero pad. */
static AMX void to_bf16(const float *src, int n, int n_p, uint16_t *dst)
{
    for (int k = 0; k < n_p; k += 32) {
        int left = n - k;
        __mmask16 m0 = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
        __mmask16 m1 =
            left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
        __m512 lo = _mm512_maskz_loadu_ps(m0, src + k);
        __m512 hi = _mm512_maskz_loadu_ps(m1, src + k + 16);
        _mm512_storeu_si512(dst + k, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

cp_status cp_amx_centroids_pack(cp_amx_centroids *pc, const float *centroids, const float *bias,
                                int64_t k, int dim, cp_error *err)
{
    memset(pc, 0, sizeof *pc);
    pc->k = k;
    pc->k_p = round_up(k, 32);
    pc->dim = dim;
    pc->dim_p = (int)round_up(dim, 32);
    pc->f32 = centroids;
    size_t bytes = (size_t)pc->k_p * (size_t)pc->dim_p * 2;
    pc->bf16 = aligned_alloc(64, (bytes + 63) / 64 * 64);
    pc->bias = malloc((size_t)pc->k_p * sizeof *pc->bias);
    if (!pc->bf16 || !pc->bias) {
        cp_amx_centroids_free(pc);
        return cp_error_set(err, CP_ENOMEM, "codec: out of memory for %lld bf16 centroids",
                            (long long)k);
    }
    /* Padding rows score 0 in bf16; a -inf bias keeps them from ever winning. */
    for (int64_t c = 0; c < pc->k_p; c++) pc->bias[c] = c >= k ? -INFINITY : bias ? bias[c] : 0.0f;
    for (int64_t c = 0; c < k; c++)
        to_bf16(centroids + c * dim, dim, pc->dim_p, pc->bf16 + c * pc->dim_p);
    memset(pc->bf16 + k * pc->dim_p, 0, (size_t)(pc->k_p - k) * (size_t)pc->dim_p * 2);
    return CP_OK;
}

/* m vectors (m <= rows_p, a multiple of 16) -> groups of 16 in the VNNI pair layout the B
 * tiles read: group g is [dim_p / 2 pairs][16 vectors][2], rows past m zero. */
static AMX void pack_vectors(const float *v, int64_t m, int dim, int dim_p, int64_t rows_p,
                             uint16_t *out, uint16_t *row_tmp)
{
    int pairs = dim_p / 2;
    for (int64_t g = 0; g < rows_p / 16; g++) {
        uint32_t *dst = (uint32_t *)(out + g * 16 * dim_p);
        for (int r = 0; r < 16; r++) {
            int64_t row = g * 16 + r;
            uint32_t *t = (uint32_t *)(row_tmp + (size_t)r * dim_p);
            if (row < m)
                to_bf16(v + row * dim, dim, dim_p, (uint16_t *)t);
            else
                memset(t, 0, (size_t)dim_p * 2);
        }
        for (int p = 0; p < pairs; p++)
            for (int r = 0; r < 16; r++)
                dst[p * 16 + r] = ((const uint32_t *)(row_tmp + (size_t)r * dim_p))[p];
    }
}

/* Exact fp32 inner product, 8 partial sums. */
static float dot_f32(const float *a, const float *b, int dim)
{
    float s[8] = {0};
    int j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int l = 0; l < 8; l++)
            s[l] += a[j + l] * b[j + l];
    for (; j < dim; j++)
        s[0] += a[j] * b[j];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Running state of one vector group: best bf16 score and its centroid id per class. */
typedef struct group_state {
    __m512 best[N_CLASS];
    __m512i id[N_CLASS];
} group_state;

/* One centroid row's scores s against 16 vectors: strict > keeps the lowest id on ties. */
#define UPDATE(st, cls, s, cid)                                                                \
    do {                                                                                       \
        __mmask16 gt_ = _mm512_cmp_ps_mask((s), (st).best[cls], _CMP_GT_OQ);                   \
        (st).best[cls] = _mm512_mask_mov_ps((st).best[cls], gt_, (s));                         \
        (st).id[cls] = _mm512_mask_mov_epi32((st).id[cls], gt_, (cid));                        \
    } while (0)

/* Sweep centroids [c_begin, c_end) (multiples of 32 within k_p) past vector groups g and
 * g + 1 of the packed superblock, updating their states. */
static AMX void sweep(const cp_amx_centroids *pc, const uint16_t *vb, int64_t g, int64_t c_begin,
                      int64_t c_end, group_state *s0, group_state *s1)
{
    int dim_p = pc->dim_p, steps = dim_p / 32;
    const uint16_t *b0 = vb + g * 16 * dim_p, *b1 = b0 + 16 * dim_p;
    group_state a = *s0, b = *s1;
    float buf0[32 * 16] __attribute__((aligned(64)));
    float buf1[32 * 16] __attribute__((aligned(64)));
    for (int64_t c0 = c_begin; c0 < c_end; c0 += 32) {
        const uint16_t *ca = pc->bf16 + c0 * dim_p, *cb = ca + 16 * dim_p;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int s = 0; s < steps; s++) {
            _tile_loadd(4, ca + s * 32, dim_p * 2);
            _tile_loadd(5, cb + s * 32, dim_p * 2);
            _tile_loadd(6, b0 + s * 512, 64);
            _tile_loadd(7, b1 + s * 512, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(0, buf0, 64);
        _tile_stored(2, buf0 + 16 * 16, 64);
        _tile_stored(1, buf1, 64);
        _tile_stored(3, buf1 + 16 * 16, 64);
        const float *bias = pc->bias + c0;
        for (int r = 0; r < 32; r += N_CLASS) {
            __m512i cid = _mm512_set1_epi32((int)(c0 + r));
            const __m512i one = _mm512_set1_epi32(1);
            for (int j = 0; j < N_CLASS; j++) {
                __m512 bj = _mm512_set1_ps(bias[r + j]);
                UPDATE(a, j, _mm512_add_ps(_mm512_load_ps(buf0 + (r + j) * 16), bj), cid);
                UPDATE(b, j, _mm512_add_ps(_mm512_load_ps(buf1 + (r + j) * 16), bj), cid);
                cid = _mm512_add_epi32(cid, one);
            }
        }
    }
    *s0 = a;
    *s1 = b;
}

/* Codes of one superblock of m <= SUPER_ROWS vectors. */
static AMX void superblock(const cp_amx_centroids *pc, const float *v, int64_t m, int32_t *codes,
                           uint16_t *vb, uint16_t *row_tmp, group_state *st)
{
    int64_t rows_p = round_up(m, 32), groups = rows_p / 16;
    pack_vectors(v, m, pc->dim, pc->dim_p, rows_p, vb, row_tmp);
    for (int64_t g = 0; g < groups; g++)
        for (int j = 0; j < N_CLASS; j++) {
            st[g].best[j] = _mm512_set1_ps(-INFINITY);
            st[g].id[j] = _mm512_setzero_si512();
        }
    /* Centroid chunks of about 192 KB of bf16 stay in L2 while every group passes. */
    int64_t chunk = (int64_t)(192 * 1024 / (pc->dim_p * 2)) / 32 * 32;
    if (chunk < 32) chunk = 32;
    for (int64_t c = 0; c < pc->k_p; c += chunk) {
        int64_t c_end = c + chunk < pc->k_p ? c + chunk : pc->k_p;
        for (int64_t g = 0; g < groups; g += 2) sweep(pc, vb, g, c, c_end, &st[g], &st[g + 1]);
    }
    for (int64_t i = 0; i < m; i++) {
        const group_state *s = &st[i / 16];
        int lane = (int)(i % 16);
        const float *x = v + i * pc->dim;
        int32_t best = 0;
        float best_s = -INFINITY;
        bool any = false;
        for (int j = 0; j < N_CLASS; j++) {
            float bs[16];
            int32_t ids[16];
            _mm512_storeu_ps(bs, s->best[j]);
            _mm512_storeu_si512(ids, s->id[j]);
            if (!(bs[lane] > -INFINITY)) continue; /* class empty (K < 4) */
            int32_t c = ids[lane];
            float e = dot_f32(x, pc->f32 + (int64_t)c * pc->dim, pc->dim) + pc->bias[c];
            if (!any || e > best_s || (e == best_s && c < best)) {
                best = c;
                best_s = e;
                any = true;
            }
        }
        codes[i] = best;
    }
}

AMX int cp_assign_amx(const cp_amx_centroids *pc, const float *v, int64_t m, int32_t *codes)
{
    int64_t rows = m < SUPER_ROWS ? round_up(m, 32) : SUPER_ROWS;
    uint16_t *vb = aligned_alloc(64, (size_t)rows * (size_t)pc->dim_p * 2);
    uint16_t *row_tmp = aligned_alloc(64, (size_t)16 * (size_t)pc->dim_p * 2);
    group_state *st = aligned_alloc(64, (size_t)(rows / 16) * sizeof *st);
    if (!vb || !row_tmp || !st) {
        free(vb);
        free(row_tmp);
        free(st);
        return -1;
    }
    cp_amx_tilecfg cfg;
    cp_amx_tilecfg_full(&cfg, 8); /* tile configuration is per thread */
    _tile_loadconfig(&cfg);
    for (int64_t i = 0; i < m; i += SUPER_ROWS) {
        int64_t n = m - i < SUPER_ROWS ? m - i : SUPER_ROWS;
        superblock(pc, v + i * pc->dim, n, codes + i, vb, row_tmp, st);
    }
    _tile_release();
    free(vb);
    free(row_tmp);
    free(st);
    return 0;
}

#else /* no AMX toolchain or platform: the dispatcher never calls these */

bool cp_assign_amx_available(void)
{
    return false;
}

cp_status cp_amx_centroids_pack(cp_amx_centroids *pc, const float *centroids, const float *bias,
                                int64_t k, int dim, cp_error *err)
{
    (void)centroids, (void)bias, (void)k, (void)dim;
    memset(pc, 0, sizeof *pc);
    return cp_error_set(err, CP_EINTERNAL, "codec: AMX kernels not compiled in");
}

int cp_assign_amx(const cp_amx_centroids *pc, const float *v, int64_t m, int32_t *codes)
{
    (void)pc, (void)v, (void)m, (void)codes;
    return -1;
}
#endif

void cp_amx_centroids_free(cp_amx_centroids *pc)
{
    free(pc->bf16);
    free(pc->bias);
    pc->bf16 = NULL;
    pc->bias = NULL;
}
