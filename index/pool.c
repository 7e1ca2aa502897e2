/*
 * Token pooling: hierarchical clustering of a document's token vectors (pool.h).
 *
 * Distances. For unit vectors, 1 - cos(a, b) = |a - b|^2 / 2, so the cosine distance matrix
 * is also half the squared Euclidean one. Ward's criterion (the increase of the within-group
 * sum of squares when two groups merge, n_a n_b / (n_a + n_b) |c_a - c_b|^2) is exactly
 * 1 - cos for two single tokens, and the Lance-Williams update for squared distances keeps
 * it exact for groups. Average linkage is the mean pairwise cosine distance.
 *
 * Algorithm: nearest-neighbour chain (Murtagh 1983; Müllner 2011, "Modern hierarchical,
 * agglomerative clustering algorithms"): grow a chain of nearest neighbours until two
 * tokens are each other's nearest, merge them, continue from the rest of the chain. Each
 * step scans one row of the matrix over the live groups, so the whole is O(n^2) after the
 * O(n^2 dim) Gram matrix. The merges come out of height order; a stable sort
 * by height and a union-find over the first n - k of them give the k-group cut.
 */
#include "pool.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cp_pool_ws_free(cp_pool_ws *ws)
{
    free(ws->dist);
    free(ws->ints);
    free(ws->merges);
    free(ws->sums);
    free(ws->labels);
    memset(ws, 0, sizeof *ws);
}

bool cp_pool_linkage_parse(const char *name, cp_pool_linkage *out)
{
    if (!name) return false;
    if (!strcmp(name, "ward")) *out = CP_POOL_WARD;
    else if (!strcmp(name, "average")) *out = CP_POOL_AVERAGE;
    else return false;
    return true;
}

const char *cp_pool_linkage_name(cp_pool_linkage linkage)
{
    return linkage == CP_POOL_AVERAGE ? "average" : "ward";
}

int32_t cp_pool_groups(int32_t n, int factor)
{
    if (n <= 0) return 0;
    if (factor <= 1) return n;
    int32_t k = (int32_t)((n + (int64_t)factor - 1) / factor);
    return k < 1 ? 1 : k;
}

static bool ws_reserve(cp_pool_ws *ws, int32_t n, int32_t k, int dim)
{
    size_t nn = (size_t)n * (size_t)n, ni = 5 * (size_t)n, ns = (size_t)k * (size_t)dim;
    if (nn > ws->dist_cap) {
        float *p = realloc(ws->dist, nn * sizeof *p);
        if (!p) return false;
        ws->dist = p;
        ws->dist_cap = nn;
    }
    if (ni > ws->ints_cap) {
        int32_t *p = realloc(ws->ints, ni * sizeof *p);
        if (!p) return false;
        ws->ints = p;
        ws->ints_cap = ni;
    }
    if ((size_t)n > ws->merges_cap) {
        cp_pool_merge *p = realloc(ws->merges, (size_t)n * sizeof *p);
        if (!p) return false;
        ws->merges = p;
        ws->merges_cap = (size_t)n;
    }
    if (ns > ws->sums_cap) {
        double *p = realloc(ws->sums, ns * sizeof *p);
        if (!p) return false;
        ws->sums = p;
        ws->sums_cap = ns;
    }
    return true;
}

/* <a, b> for dim a multiple of 8 (the builder's rule; the tail loop covers any other):
 * eight independent partial sums, which compilers vectorise without -ffast-math. */
static inline float dot8(const float *a, const float *b, int dim)
{
    float acc[8] = {0};
    int j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[j + l] * b[j + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < dim; j++)
        s += a[j] * b[j];
    return s;
}

/* D[i][j] = D[j][i] = 1 - <x_i, x_j> (the diagonal is never read). A plain loop rather than
 * BLAS: the matrices are small, and a multi-threaded BLAS call per document costs more in
 * thread hand-offs than it saves (measured: bench_pool, docs/pooling.md). */
static void distance_matrix(const float *x, int32_t n, int dim, float *d)
{
    for (int32_t i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        for (int32_t j = i + 1; j < n; j++) {
            float v = 1.0f - dot8(xi, x + (size_t)j * dim, dim);
            d[(size_t)i * n + j] = v;
            d[(size_t)j * n + i] = v;
        }
    }
}

/* Lance-Williams: distance from group m (merged from a and b) to group o. */
static inline float lance_williams(cp_pool_linkage linkage, float dao, float dbo, float dab,
                                   int32_t na, int32_t nb, int32_t no)
{
    if (linkage == CP_POOL_AVERAGE) return ((float)na * dao + (float)nb * dbo) / (float)(na + nb);
    return ((float)(na + no) * dao + (float)(nb + no) * dbo - (float)no * dab) /
           (float)(na + nb + no);
}

static int32_t uf_find(int32_t *parent, int32_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

/* Sorting merges by height, stably (children before parents at equal heights). */
static int cmp_merge(const void *pa, const void *pb)
{
    const cp_pool_merge *a = pa, *b = pb;
    if (a->height < b->height) return -1;
    if (a->height > b->height) return 1;
    return (a->step > b->step) - (a->step < b->step);
}

cp_status cp_pool_cluster(cp_pool_ws *ws, const float *x, int32_t n, int dim, int32_t k,
                          cp_pool_linkage linkage, int32_t *labels, cp_error *err)
{
    if (n < 1 || n > CP_POOL_BLOCK || k < 1 || k > n || dim < 1)
        return cp_error_set(err, CP_EINVAL, "pooling: bad sizes (%d tokens into %d groups)",
                            (int)n, (int)k);
    if (!ws_reserve(ws, n, k, dim))
        return cp_error_set(err, CP_ENOMEM, "out of memory pooling a %d-token document", (int)n);
    int32_t *size = ws->ints, *live = size + n, *pos = live + n, *chain = pos + n;
    int32_t *parent = chain + n;
    cp_pool_merge *m = ws->merges;
    float *d = ws->dist;
    if (k < n) distance_matrix(x, n, dim, d);
    int32_t n_live = n, n_merges = 0, len = 0;
    for (int32_t i = 0; i < n; i++) {
        size[i] = 1;
        live[i] = i;
        pos[i] = i;
    }
    /* Only the first n - k merges by height matter, but the chain emits them out of
     * order, so the dendrogram is completed (k < n); k == n needs nothing. */
    while (k < n && n_live > 1) {
        if (len == 0) chain[len++] = live[0];
        for (;;) {
            int32_t a = chain[len - 1], prev = len >= 2 ? chain[len - 2] : -1;
            const float *row = d + (size_t)a * n;
            int32_t best = prev;
            float bd = prev >= 0 ? row[prev] : INFINITY;
            for (int32_t t = 0; t < n_live; t++) {
                int32_t j = live[t];
                if (j != a && row[j] < bd) {
                    bd = row[j];
                    best = j;
                }
            }
            if (best != prev) {
                chain[len++] = best;
                continue;
            }
            /* a and prev are reciprocal nearest neighbours: merge a into prev. */
            len -= 2;
            int32_t b = prev;
            m[n_merges] = (cp_pool_merge){.height = bd, .step = n_merges, .a = a, .b = b};
            n_merges++;
            int32_t pa = pos[a], last = live[--n_live];
            live[pa] = last;
            pos[last] = pa;
            float *rb = d + (size_t)b * n;
            for (int32_t t = 0; t < n_live; t++) {
                int32_t o = live[t];
                if (o == b) continue;
                float v = lance_williams(linkage, row[o], rb[o], bd, size[a], size[b], size[o]);
                rb[o] = v;
                d[(size_t)o * n + b] = v;
            }
            size[b] += size[a];
            break;
        }
    }
    qsort(m, (size_t)n_merges, sizeof *m, cmp_merge);
    for (int32_t i = 0; i < n; i++)
        parent[i] = i;
    for (int32_t t = 0; t < n - k; t++) {
        int32_t ra = uf_find(parent, m[t].a), rb = uf_find(parent, m[t].b);
        if (ra < rb) parent[rb] = ra;
        else parent[ra] = rb;
    }
    /* The root of a set is its smallest member (unions keep the smaller root), so groups
     * numbered at their roots come out in order of first token. */
    int32_t g = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t r = uf_find(parent, i);
        labels[i] = r == i ? g++ : labels[r];
    }
    if (g != k)
        return cp_error_set(err, CP_EINTERNAL, "pooling: %d groups instead of %d", (int)g, (int)k);
    return CP_OK;
}

/* Pool one block of n <= CP_POOL_BLOCK rows into k groups; the renormalised means go to
 * out, which may be x itself (all sums are taken before anything is written). */
static cp_status pool_block(cp_pool_ws *ws, const float *x, int32_t n, int dim, int32_t k,
                            cp_pool_linkage linkage, float *out, cp_error *err)
{
    if ((size_t)n > ws->labels_cap) {
        int32_t *p = realloc(ws->labels, (size_t)n * sizeof *p);
        if (!p) return cp_error_set(err, CP_ENOMEM, "out of memory pooling a document");
        ws->labels = p;
        ws->labels_cap = (size_t)n;
    }
    cp_status st = cp_pool_cluster(ws, x, n, dim, k, linkage, ws->labels, err);
    if (st != CP_OK) return st;
    double *sums = ws->sums;
    memset(sums, 0, (size_t)k * (size_t)dim * sizeof *sums);
    for (int32_t i = 0; i < n; i++) {
        double *s = sums + (size_t)ws->labels[i] * dim;
        const float *v = x + (size_t)i * dim;
        for (int j = 0; j < dim; j++)
            s[j] += v[j];
    }
    for (int32_t g = 0; g < k; g++) {
        const double *s = sums + (size_t)g * dim;
        double n2 = 0;
        for (int j = 0; j < dim; j++)
            n2 += s[j] * s[j];
        float *o = out + (size_t)g * dim;
        if (n2 < 1e-12) {
            /* Members that cancel out (opposite tokens forced together): keep the first. */
            int32_t first = 0;
            while (ws->labels[first] != g)
                first++;
            memmove(o, x + (size_t)first * dim, (size_t)dim * sizeof *o);
            continue;
        }
        double inv = 1.0 / sqrt(n2);
        for (int j = 0; j < dim; j++)
            o[j] = (float)(s[j] * inv);
    }
    return CP_OK;
}

cp_status cp_pool_document(cp_pool_ws *ws, float *x, int32_t n, int dim, int factor,
                           cp_pool_linkage linkage, int32_t *n_out, cp_error *err)
{
    *n_out = n;
    if (factor <= 1 || n <= 1) return CP_OK;
    /* Blocks of equal size (at most CP_POOL_BLOCK), so the last one is not a runt. */
    int32_t blocks = (n + CP_POOL_BLOCK - 1) / CP_POOL_BLOCK, kept = 0;
    for (int32_t b = 0; b < blocks; b++) {
        int32_t start = (int32_t)((int64_t)n * b / blocks);
        int32_t len = (int32_t)((int64_t)n * (b + 1) / blocks) - start;
        int32_t k = cp_pool_groups(len, factor);
        /* Rows start.. pool into rows kept.. (kept <= start: the output never overtakes). */
        cp_status st = pool_block(ws, x + (size_t)start * dim, len, dim, k, linkage,
                                  x + (size_t)kept * dim, err);
        if (st != CP_OK) return st;
        kept += k;
    }
    *n_out = kept;
    return CP_OK;
}

char *cp_pool_meta_json(int factor, cp_pool_linkage linkage)
{
    char buf[96];
    snprintf(buf, sizeof buf, "{\"factor\": %d, \"linkage\": \"%s\"}", factor,
             cp_pool_linkage_name(linkage));
    return strdup(buf);
}

bool cp_pool_meta_parse(const char *text, int *factor, cp_pool_linkage *linkage)
{
    *factor = 1;
    *linkage = CP_POOL_WARD;
    if (!text) return true;
    cJSON *o = cJSON_Parse(text);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "factor");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "linkage");
    bool ok = cJSON_IsNumber(f) && f->valuedouble >= 1 && f->valuedouble <= CP_POOL_MAX_FACTOR &&
              f->valuedouble == (double)(int)f->valuedouble;
    if (ok) *factor = (int)f->valuedouble;
    if (ok && l) ok = cJSON_IsString(l) && cp_pool_linkage_parse(l->valuestring, linkage);
    cJSON_Delete(o);
    return ok;
}
