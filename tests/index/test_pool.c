/*
 * Token pooling (index/pool.c) against a brute-force reference written from the
 * definitions: the textbook greedy agglomerative clustering that, at every step, recomputes
 * every pair's linkage from the groups' members (Ward: the increase of the within-group sum
 * of squares, n_a n_b / (n_a + n_b) |mean_a - mean_b|^2; average: the mean cosine distance
 * over all cross pairs) in double precision, and merges the cheapest pair until k groups
 * remain. The engine uses a nearest-neighbour chain with Lance-Williams updates in float,
 * so agreement checks the algorithm, the update formulas and the cut.
 *
 * Cases whose reference run meets a near tie between two pairs sharing a group (where
 * float and double could legitimately choose differently) are skipped and counted; the
 * test requires most cases to be decided.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CP_TEST_RNG_SEED 1313
#include "cp_test.h"
#include "cp_test_rng.h"
#include "pool.h"

/* ---- the reference ---------------------------------------------------------------- */

typedef struct ref_group {
    int *members;
    int n;
} ref_group;

static double ref_linkage(const float *x, int dim, const ref_group *a, const ref_group *b,
                          cp_pool_linkage linkage)
{
    if (linkage == CP_POOL_AVERAGE) {
        double s = 0;
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < b->n; j++) {
                double dot = 0;
                for (int t = 0; t < dim; t++)
                    dot += (double)x[a->members[i] * dim + t] * x[b->members[j] * dim + t];
                s += 1 - dot;
            }
        return s / ((double)a->n * b->n);
    }
    double d2 = 0;
    for (int t = 0; t < dim; t++) {
        double ma = 0, mb = 0;
        for (int i = 0; i < a->n; i++)
            ma += x[a->members[i] * dim + t];
        for (int j = 0; j < b->n; j++)
            mb += x[b->members[j] * dim + t];
        double diff = ma / a->n - mb / b->n;
        d2 += diff * diff;
    }
    return (double)a->n * b->n / (a->n + b->n) * d2;
}

/* Labels numbered by first member; returns false when a decision was a near tie. */
static bool ref_cluster(const float *x, int n, int dim, int k, cp_pool_linkage linkage,
                        int *labels)
{
    ref_group *g = calloc((size_t)n, sizeof *g);
    for (int i = 0; i < n; i++) {
        g[i].members = malloc((size_t)n * sizeof(int));
        g[i].members[0] = i;
        g[i].n = 1;
    }
    int live = n;
    bool decided = true;
    while (live > k) {
        double best = INFINITY;
        int ba = -1, bb = -1;
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n && g[a].n; b++)
                if (g[b].n) {
                    double v = ref_linkage(x, dim, &g[a], &g[b], linkage);
                    if (v < best) best = v, ba = a, bb = b;
                }
        /* The runner-up among pairs that share a group with the chosen one. */
        double second = INFINITY;
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n && g[a].n; b++) {
                if (!g[b].n || (a == ba && b == bb)) continue;
                if (a != ba && a != bb && b != ba && b != bb) continue;
                double v = ref_linkage(x, dim, &g[a], &g[b], linkage);
                if (v < second) second = v;
            }
        if (second - best < 1e-4 * (fabs(best) + 1e-3)) decided = false;
        memcpy(g[ba].members + g[ba].n, g[bb].members, (size_t)g[bb].n * sizeof(int));
        g[ba].n += g[bb].n;
        g[bb].n = 0;
        live--;
    }
    int next = 0;
    for (int i = 0; i < n; i++)
        labels[i] = -1;
    for (int i = 0; i < n; i++) {
        if (labels[i] >= 0) continue;
        for (int a = 0; a < n; a++)
            for (int m = 0; m < g[a].n; m++)
                if (g[a].members[m] == i)
                    for (int q = 0; q < g[a].n; q++)
                        labels[g[a].members[q]] = next;
        next++;
    }
    for (int i = 0; i < n; i++)
        free(g[i].members);
    free(g);
    return decided;
}

/* ---- data ------------------------------------------------------------------------- */

/* n unit vectors around n_centres random directions (spread: noise scale). */
static void make_tokens(float *x, int n, int dim, int n_centres, float spread)
{
    float *c = malloc((size_t)n_centres * dim * sizeof *c);
    for (int i = 0; i < n_centres * dim; i++)
        c[i] = grand();
    for (int i = 0; i < n; i++) {
        int ci = (int)(urand() * n_centres);
        for (int t = 0; t < dim; t++)
            x[i * dim + t] = c[ci * dim + t] + spread * grand();
        normalise(x + i * dim, dim);
    }
    free(c);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_against_reference(void)
{
    static const int sizes[] = {1, 2, 3, 5, 8, 17, 31, 48};
    int decided = 0, total = 0;
    cp_pool_ws ws = {0};
    cp_error err = {0};
    for (int li = 0; li < 2; li++) {
        cp_pool_linkage linkage = li ? CP_POOL_AVERAGE : CP_POOL_WARD;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (int rep = 0; rep < 3; rep++) {
                int n = sizes[si], dim = 8 + 8 * rep;
                float *x = malloc((size_t)n * dim * sizeof *x);
                make_tokens(x, n, dim, 1 + n / 4, rep == 2 ? 1.5f : 0.4f);
                int *want = malloc((size_t)n * sizeof *want);
                int32_t *got = malloc((size_t)n * sizeof *got);
                for (int k = 1; k <= n; k += (n > 8 ? 3 : 1)) {
                    total++;
                    if (!ref_cluster(x, n, dim, k, linkage, want)) continue;
                    decided++;
                    cp_status st = cp_pool_cluster(&ws, x, n, dim, k, linkage, got, &err);
                    CP_CHECK_OK(st, err);
                    int bad = 0;
                    for (int i = 0; i < n; i++)
                        bad += got[i] != want[i];
                    if (bad)
                        fprintf(stderr, "%s n=%d dim=%d k=%d: %d labels differ\n",
                                cp_pool_linkage_name(linkage), n, dim, k, bad);
                    CP_CHECK_INT(bad, 0);
                }
                free(x);
                free(want);
                free(got);
            }
    }
    fprintf(stderr, "reference: %d of %d cases decided (the rest are near ties)\n", decided,
            total);
    CP_CHECK(decided >= total * 9 / 10);
    cp_pool_ws_free(&ws);
}

/* cp_pool_document: ceil(n / factor) rows, each the renormalised mean of its group. */
static void test_document(void)
{
    cp_pool_ws ws = {0};
    cp_error err = {0};
    const int dim = 16;
    static const int sizes[] = {1, 2, 7, 40, 300};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int factor = 1; factor <= 4; factor++) {
            int n = sizes[si];
            float *x = malloc((size_t)n * dim * sizeof *x), *orig = malloc((size_t)n * dim * 4);
            make_tokens(x, n, dim, 1 + n / 5, 0.5f);
            memcpy(orig, x, (size_t)n * dim * sizeof *x);
            int32_t m = -1, k = cp_pool_groups(n, factor);
            CP_CHECK_INT(k, factor == 1 ? n : (n + factor - 1) / factor);
            int32_t *labels = malloc((size_t)n * sizeof *labels);
            CP_CHECK_OK(cp_pool_cluster(&ws, orig, n, dim, k, CP_POOL_WARD, labels, &err), err);
            CP_CHECK_OK(cp_pool_document(&ws, x, n, dim, factor, CP_POOL_WARD, &m, &err), err);
            CP_CHECK_INT(m, k);
            for (int g = 0; g < m && g < k; g++) {
                double mean[16] = {0}, n2 = 0, err_max = 0;
                for (int i = 0; i < n; i++)
                    if (labels[i] == g)
                        for (int t = 0; t < dim; t++)
                            mean[t] += orig[i * dim + t];
                for (int t = 0; t < dim; t++)
                    n2 += mean[t] * mean[t];
                for (int t = 0; t < dim; t++) {
                    double e = fabs(mean[t] / sqrt(n2) - x[g * dim + t]);
                    if (e > err_max) err_max = e;
                }
                CP_CHECK(err_max < 1e-5);
            }
            free(labels);
            free(x);
            free(orig);
        }
    /* Longer than one block: equal blocks of consecutive tokens, each pooled apart. */
    int n = 2 * CP_POOL_BLOCK + 100;
    float *x = malloc((size_t)n * dim * sizeof *x);
    make_tokens(x, n, dim, 50, 0.5f);
    int32_t m = 0, per = n / 3; /* 3 blocks of 716 */
    CP_CHECK_OK(cp_pool_document(&ws, x, n, dim, 3, CP_POOL_AVERAGE, &m, &err), err);
    CP_CHECK_INT(m, 3 * cp_pool_groups(per, 3));
    for (int i = 0; i < m; i++) {
        double n2 = 0;
        for (int t = 0; t < dim; t++)
            n2 += (double)x[i * dim + t] * x[i * dim + t];
        CP_CHECK_NEAR(n2, 1.0, 1e-5);
    }
    free(x);
    /* Two opposite tokens forced into one group keep the first one, not a zero vector. */
    float opp[2 * 8] = {1, 0, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0, 0};
    CP_CHECK_OK(cp_pool_document(&ws, opp, 2, 8, 2, CP_POOL_WARD, &m, &err), err);
    CP_CHECK_INT(m, 1);
    CP_CHECK_NEAR(opp[0], 1.0, 0);
    cp_pool_ws_free(&ws);
}

/* Bad arguments are errors, not crashes. */
static void test_bad_arguments(void)
{
    cp_pool_ws ws = {0};
    cp_error err = {0};
    float x[8 * 4] = {0};
    int32_t labels[4];
    CP_CHECK(cp_pool_cluster(&ws, x, 4, 8, 0, CP_POOL_WARD, labels, &err) == CP_EINVAL);
    CP_CHECK(cp_pool_cluster(&ws, x, 4, 8, 5, CP_POOL_WARD, labels, &err) == CP_EINVAL);
    CP_CHECK(cp_pool_cluster(&ws, x, CP_POOL_BLOCK + 1, 8, 2, CP_POOL_WARD, labels, &err) ==
             CP_EINVAL);
    cp_pool_ws_free(&ws);
}

static void test_meta(void)
{
    int f = 0;
    cp_pool_linkage l = CP_POOL_AVERAGE;
    CP_CHECK(cp_pool_meta_parse(NULL, &f, &l) && f == 1 && l == CP_POOL_WARD);
    char *s = cp_pool_meta_json(3, CP_POOL_AVERAGE);
    CP_CHECK(s && cp_pool_meta_parse(s, &f, &l) && f == 3 && l == CP_POOL_AVERAGE);
    free(s);
    CP_CHECK(cp_pool_meta_parse("{\"factor\": 2}", &f, &l) && f == 2 && l == CP_POOL_WARD);
    static const char *const bad[] = {"", "2", "{\"factor\": 0}", "{\"factor\": 1.5}",
                                      "{\"factor\": 65}", "{\"factor\": \"2\"}",
                                      "{\"factor\": 2, \"linkage\": \"single\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CP_CHECK(!cp_pool_meta_parse(bad[i], &f, &l));
    cp_pool_linkage p;
    CP_CHECK(cp_pool_linkage_parse("ward", &p) && p == CP_POOL_WARD);
    CP_CHECK(cp_pool_linkage_parse("average", &p) && p == CP_POOL_AVERAGE);
    CP_CHECK(!cp_pool_linkage_parse("Ward", &p) && !cp_pool_linkage_parse(NULL, &p));
}

int main(void)
{
    test_against_reference();
    test_document();
    test_bad_arguments();
    test_meta();
    return CP_TEST_RESULT();
}
