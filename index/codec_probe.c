/*
 * Nearest centroid through a coarse partition of the centroids, for CPUs without AMX.
 *
 * Why: with many centroids the exact assignment (tokens x K x dim multiply-adds, blocked
 * sgemm) is most of an index build: SciFact with the static model (1M tokens, K = 32,768)
 * spent about 7 of its 8 minutes there on the shared 2-core machine, in 4 k-means
 * iterations and the compression pass. Here the K centroids are first grouped into
 * G ~ sqrt(K) groups (a few Lloyd steps over the centroids themselves); a vector is scored
 * against the G group means, and then exactly (fp32 sgemm) against the members of its
 * nprobe best groups only: about (G + nprobe K / G) / K of the work, 1/16 at K = 32,768.
 *
 * The answer is approximate: a vector whose nearest centroid sits in a group it did not
 * probe gets the best centroid of the groups it did (tests/index/test_assign measures the
 * agreement and the score gap). That is harmless where it is used: k-means only needs
 * good-enough assignments, and compression takes the residual against the stored code, so
 * decompression stays exact for whatever code was chosen.
 *
 * Scores are x.c + bias[c] (bias NULL: 0), as in the AMX kernel: inner product for
 * compression, L2 (bias -|c|^2 / 2) for k-means. Ties go to the lowest centroid id.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec_probe.h"

/* Lloyd steps that group the centroids; more change the groups little. */
#define CP_PROBE_GROUP_ITERS 4
/* Rows of gathered vectors scored against one group at a time. */
#define CP_PROBE_GATHER_ROWS 512

int cp_probe_default_nprobe(int64_t k)
{
    (void)k;
    /* CP_PROBE_NPROBE overrides it, for measurements (bench/bench_assign). */
    const char *env = getenv("CP_PROBE_NPROBE");
    int n = env ? atoi(env) : 0;
    return n >= 1 && n <= 64 ? n : 8;
}

static int probe_groups(int64_t k)
{
    int g = 1;
    while ((int64_t)g * g < k)
        g *= 2;
    return g;
}

void cp_probe_part_free(cp_probe_part *p)
{
    if (!p) return;
    free(p->coarse);
    free(p->coarse_bias);
    free(p->cent);
    free(p->bias);
    free(p->ids);
    free(p->off);
    memset(p, 0, sizeof *p);
}

/* Row argmax of s (n values) plus bias (may be NULL). */
static int64_t argmax_biased(const float *s, const float *bias, int64_t n)
{
    int64_t best = 0;
    float best_s = s[0] + (bias ? bias[0] : 0);
    for (int64_t c = 1; c < n; c++) {
        float v = s[c] + (bias ? bias[c] : 0);
        if (v > best_s) {
            best_s = v;
            best = c;
        }
    }
    return best;
}

/* Group means -> -|g|^2 / 2 biases. */
static void coarse_biases(const float *coarse, int g, int dim, float *bias)
{
    for (int i = 0; i < g; i++) {
        double n2 = 0;
        for (int j = 0; j < dim; j++)
            n2 += (double)coarse[(int64_t)i * dim + j] * coarse[(int64_t)i * dim + j];
        bias[i] = (float)(-0.5 * n2);
    }
}

cp_status cp_probe_part_build(cp_probe_part *p, const float *centroids, const float *bias,
                              int64_t k, int dim, int nprobe, cp_error *err)
{
    memset(p, 0, sizeof *p);
    int g = probe_groups(k);
    if (g > k) g = (int)k;
    p->k = k;
    p->dim = dim;
    p->g = g;
    p->nprobe = nprobe < 1 ? 1 : (nprobe > g ? g : nprobe);
    p->coarse = malloc((size_t)g * (size_t)dim * sizeof *p->coarse);
    p->coarse_bias = malloc((size_t)g * sizeof *p->coarse_bias);
    p->cent = malloc((size_t)k * (size_t)dim * sizeof *p->cent);
    p->ids = malloc((size_t)k * sizeof *p->ids);
    p->off = calloc((size_t)g + 1, sizeof *p->off);
    if (bias) p->bias = malloc((size_t)k * sizeof *p->bias);
    float *scores = malloc((size_t)k * (size_t)g * sizeof *scores);
    int32_t *group = malloc((size_t)k * sizeof *group);
    double *sum = malloc((size_t)g * (size_t)dim * sizeof *sum);
    int64_t *size = malloc((size_t)g * sizeof *size);
    if (!p->coarse || !p->coarse_bias || !p->cent || !p->ids || !p->off || (bias && !p->bias) ||
        !scores || !group || !sum || !size) {
        free(scores);
        free(group);
        free(sum);
        free(size);
        cp_probe_part_free(p);
        return cp_error_set(err, CP_ENOMEM, "codec: out of memory grouping %lld centroids",
                            (long long)k);
    }
    /* Seeds: evenly spaced centroids (deterministic; k-means leaves no order to exploit). */
    for (int i = 0; i < g; i++)
        memcpy(p->coarse + (int64_t)i * dim, centroids + ((int64_t)i * k / g) * dim,
               (size_t)dim * sizeof *p->coarse);
    for (int it = 0; it <= CP_PROBE_GROUP_ITERS; it++) {
        coarse_biases(p->coarse, g, dim, p->coarse_bias);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)k, g, dim, 1.0f, centroids,
                    dim, p->coarse, dim, 0.0f, scores, g);
        for (int64_t c = 0; c < k; c++)
            group[c] = (int32_t)argmax_biased(scores + c * g, p->coarse_bias, g);
        if (it == CP_PROBE_GROUP_ITERS) break;
        memset(sum, 0, (size_t)g * (size_t)dim * sizeof *sum);
        memset(size, 0, (size_t)g * sizeof *size);
        for (int64_t c = 0; c < k; c++) {
            size[group[c]]++;
            for (int j = 0; j < dim; j++)
                sum[(int64_t)group[c] * dim + j] += centroids[c * dim + j];
        }
        for (int i = 0; i < g; i++)
            if (size[i] > 0)
                for (int j = 0; j < dim; j++)
                    p->coarse[(int64_t)i * dim + j] =
                        (float)(sum[(int64_t)i * dim + j] / (double)size[i]);
    }
    /* Members of each group contiguous, in id order (a stable counting sort). */
    for (int64_t c = 0; c < k; c++)
        p->off[group[c] + 1]++;
    for (int i = 0; i < g; i++)
        p->off[i + 1] += p->off[i];
    int64_t *fill = size; /* reused as write positions */
    for (int i = 0; i < g; i++)
        fill[i] = p->off[i];
    for (int64_t c = 0; c < k; c++) {
        int64_t r = fill[group[c]]++;
        p->ids[r] = (int32_t)c;
        memcpy(p->cent + r * dim, centroids + c * dim, (size_t)dim * sizeof *p->cent);
        if (bias) p->bias[r] = bias[c];
    }
    free(scores);
    free(group);
    free(sum);
    free(size);
    return CP_OK;
}

int cp_probe_assign(const cp_probe_part *p, const float *v, int64_t m, int32_t *codes)
{
    int g = p->g, dim = p->dim, np = p->nprobe;
    int64_t max_group = 0;
    for (int i = 0; i < g; i++)
        if (p->off[i + 1] - p->off[i] > max_group) max_group = p->off[i + 1] - p->off[i];
    float *coarse_s = malloc((size_t)m * (size_t)g * sizeof *coarse_s);
    int32_t *probes = malloc((size_t)m * (size_t)np * sizeof *probes);
    int64_t *start = calloc((size_t)g + 1, sizeof *start);
    int32_t *members = malloc((size_t)m * (size_t)np * sizeof *members);
    float *gather = malloc((size_t)CP_PROBE_GATHER_ROWS * (size_t)dim * sizeof *gather);
    float *fine = malloc((size_t)CP_PROBE_GATHER_ROWS * (size_t)max_group * sizeof *fine);
    float *best_s = malloc((size_t)m * sizeof *best_s);
    int rc = -1;
    if (!coarse_s || !probes || !start || !members || !gather || !fine || !best_s) goto done;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, g, dim, 1.0f, v, dim,
                p->coarse, dim, 0.0f, coarse_s, g);
    /* The np best groups of each vector (insertion into a short sorted list). */
    for (int64_t r = 0; r < m; r++) {
        float top_v[64];
        int32_t *top = probes + r * np;
        int n_top = 0;
        const float *s = coarse_s + r * g;
        for (int i = 0; i < g; i++) {
            float x = s[i] + p->coarse_bias[i];
            if (n_top == np && x <= top_v[np - 1]) continue;
            int t = n_top < np ? n_top++ : np - 1;
            while (t > 0 && x > top_v[t - 1]) {
                top_v[t] = top_v[t - 1];
                top[t] = top[t - 1];
                t--;
            }
            top_v[t] = x;
            top[t] = i;
        }
        best_s[r] = -INFINITY;
        codes[r] = -1;
    }
    /* Invert: the vectors probing each group. */
    for (int64_t t = 0; t < m * np; t++)
        start[probes[t] + 1]++;
    for (int i = 0; i < g; i++)
        start[i + 1] += start[i];
    for (int64_t r = 0; r < m; r++)
        for (int t = 0; t < np; t++)
            members[start[probes[r * np + t]]++] = (int32_t)r;
    for (int i = g; i > 0; i--)
        start[i] = start[i - 1];
    start[0] = 0;
    for (int i = 0; i < g; i++) {
        int64_t c0 = p->off[i], nc = p->off[i + 1] - c0;
        if (nc == 0) continue;
        for (int64_t a = start[i]; a < start[i + 1]; a += CP_PROBE_GATHER_ROWS) {
            int64_t nr = start[i + 1] - a;
            if (nr > CP_PROBE_GATHER_ROWS) nr = CP_PROBE_GATHER_ROWS;
            for (int64_t q = 0; q < nr; q++)
                memcpy(gather + q * dim, v + (int64_t)members[a + q] * dim,
                       (size_t)dim * sizeof *gather);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nr, (blasint)nc, dim,
                        1.0f, gather, dim, p->cent + c0 * dim, dim, 0.0f, fine, (blasint)nc);
            for (int64_t q = 0; q < nr; q++) {
                int64_t r = members[a + q];
                int64_t b = argmax_biased(fine + q * nc, p->bias ? p->bias + c0 : NULL, nc);
                float x = fine[q * nc + b] + (p->bias ? p->bias[c0 + b] : 0);
                int32_t id = p->ids[c0 + b];
                if (x > best_s[r] || (x == best_s[r] && id < codes[r])) {
                    best_s[r] = x;
                    codes[r] = id;
                }
            }
        }
    }
    /* A vector whose probed groups were all empty (possible only when grouping left a
     * group without members): score it against every centroid. */
    for (int64_t r = 0; r < m; r++) {
        if (codes[r] >= 0) continue;
        for (int64_t c = 0; c < p->k; c++) {
            float x = p->bias ? p->bias[c] : 0;
            for (int j = 0; j < dim; j++)
                x += v[r * dim + j] * p->cent[c * dim + j];
            if (x > best_s[r] || (x == best_s[r] && p->ids[c] < codes[r]) || codes[r] < 0) {
                best_s[r] = x;
                codes[r] = p->ids[c];
            }
        }
    }
    rc = 0;
done:
    free(coarse_s);
    free(probes);
    free(start);
    free(members);
    free(gather);
    free(fine);
    free(best_s);
    return rc;
}
