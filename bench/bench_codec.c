/*
 * bench_codec: how much of the uncompressed exact top-10 each residual codec keeps, on the
 * same data in one run (issue 11, section 3).
 *
 * Loads a gen_synthetic-style folder (emb.npy, doclens.npy, queries.npy), trains PLAID's
 * centroids on it (FAISS k-means, K = PLAID's rule unless --k), assigns every token to its
 * nearest centroid (exact fp32; the PROBE kernel's choice too, with its agreement), then for
 * each codec variant and nbits reconstructs every token as the variant would decode it and
 * runs exhaustive MaxSim of --queries queries (all 32 rows) over the reconstructed vectors.
 * Prints, per variant: the share of the uncompressed exact top-10 recovered (and top-100),
 * mean cosine and mean squared error of the reconstructed unit vectors, bytes per token,
 * and the ratio of its recall to the baseline's of the same nbits.
 *
 * Variants (residual r = x - C[code]; decoded normalize(C[code] + r_hat)):
 *   colbert    global buckets (ColBERTv2 quantiles refined by Lloyd-Max): what index build
 *              writes today (cp_codec_train / compress / decompress_one, the real code)
 *   perdim     buckets and weights per dimension (Lloyd-Max per dim)
 *   scale      residual norms kept separately: r / rms(r) is bucketised with global
 *              Lloyd-Max buckets, and a per-token scale (the least-squares one for the
 *              chosen buckets, 8-bit log-quantised) multiplies the weights back
 *   perdim+scale, rot+scale: the same after per-dim buckets / a seeded random orthogonal
 *              rotation of the residual (decoded through the transpose)
 *   aniso+scale: buckets chosen per token to minimise the error parallel to the token
 *              weighted by --eta (score-aware, ScaNN-style) instead of plain nearest
 *
 * usage: bench_codec --data DIR [--queries 100] [--k K] [--nbits 1,2,4] [--threads 2]
 *                    [--variants colbert,perdim,scale,...] [--probe] [--train 65536]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CP_TEST_RNG_SEED 12345
#include "cp_test_rng.h" /* the tests' deterministic data, same generator */
#include "codec.h"
#include "colplaid/npy.h"
#include "kmeans.h"

enum { MAXD = 1024, MAXB = 16, TOPN = 100 };

typedef struct data {
    int64_t n_tok, n_docs, nq;
    int dim;
    float *x;         /* n_tok x dim, unit rows */
    int64_t *doc_off; /* n_docs + 1 */
    float *q;         /* nq*32 x dim */
    int q_rows;
} data;

typedef struct variant {
    const char *name;
    int nbits, perdim, scale, rotate, aniso, real, gain;
    double beta; /* gain 2: predicted 1 - cos = beta * scale^2 */
    float cut[MAXD][MAXB - 1], w[MAXD][MAXB];
    float lsmin, lsmax; /* log scale range for the 8-bit scale */
    const float *R;     /* dim x dim rotation, or NULL */
    cp_codec codec;     /* for the real (colbert) variant */
} variant;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *m, const cp_error *err)
{
    fprintf(stderr, "bench_codec: %s%s%s\n", m, err ? ": " : "", err ? err->message : "");
    exit(1);
}

static void load(const char *dir, int64_t max_q, data *d)
{
    char p[4096];
    cp_error err = {0};
    cp_npy e, l, q;
    snprintf(p, sizeof p, "%s/emb.npy", dir);
    if (cp_npy_open(p, &e, &err) != CP_OK) die("emb.npy", &err);
    snprintf(p, sizeof p, "%s/doclens.npy", dir);
    if (cp_npy_open(p, &l, &err) != CP_OK) die("doclens.npy", &err);
    snprintf(p, sizeof p, "%s/queries.npy", dir);
    if (cp_npy_open(p, &q, &err) != CP_OK) die("queries.npy", &err);
    d->n_tok = e.shape[0];
    d->dim = (int)e.shape[1];
    d->n_docs = l.count;
    d->x = malloc(sizeof(float) * (size_t)e.count);
    cp_npy_floats(&e, 0, e.count, d->x);
    for (int64_t t = 0; t < d->n_tok; t++) {
        double s = 0;
        float *v = d->x + t * d->dim;
        for (int j = 0; j < d->dim; j++)
            s += (double)v[j] * v[j];
        if (s > 0)
            for (int j = 0; j < d->dim; j++)
                v[j] = (float)(v[j] / sqrt(s));
    }
    d->doc_off = malloc(sizeof(int64_t) * (size_t)(d->n_docs + 1));
    d->doc_off[0] = 0;
    for (int64_t i = 0; i < d->n_docs; i++)
        d->doc_off[i + 1] = d->doc_off[i] + cp_npy_int_at(&l, i);
    if (d->doc_off[d->n_docs] != d->n_tok) die("doclens do not sum to the token count", NULL);
    d->nq = q.shape[0] < max_q ? q.shape[0] : max_q;
    d->q_rows = (int)q.shape[1];
    d->q = malloc(sizeof(float) * (size_t)(d->nq * d->q_rows * d->dim));
    cp_npy_floats(&q, 0, d->nq * d->q_rows * d->dim, d->q);
    cp_npy_close(&e);
    cp_npy_close(&l);
    cp_npy_close(&q);
}

/* ---- scalar Lloyd-Max on a sample ---- */
static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void lloyd(float *v, size_t n, int nb, float *cut, float *w)
{
    qsort(v, n, sizeof *v, cmpf);
    for (int b = 0; b < nb; b++)
        w[b] = v[(size_t)((b + 0.5) / nb * (double)(n - 1))];
    for (int it = 0; it < 300; it++) {
        for (int b = 0; b < nb - 1; b++)
            cut[b] = 0.5f * (w[b] + w[b + 1]);
        double sum[MAXB] = {0};
        size_t cnt[MAXB] = {0};
        int b = 0;
        for (size_t i = 0; i < n; i++) {
            while (b < nb - 1 && v[i] > cut[b])
                b++;
            sum[b] += v[i];
            cnt[b]++;
        }
        for (b = 0; b < nb; b++)
            if (cnt[b]) w[b] = (float)(sum[b] / (double)cnt[b]);
    }
    for (int b = 0; b < nb - 1; b++)
        cut[b] = 0.5f * (w[b] + w[b + 1]);
}

static int bucket(const float *cut, int nc, float x)
{
    int b = 0;
    while (b < nc && cut[b] < x)
        b++;
    return b;
}

/* Residual of token x against centroid c, rotated if the variant says so. */
static void residual(const variant *v, int dim, const float *x, const float *c, float *r)
{
    float t[MAXD];
    for (int j = 0; j < dim; j++)
        t[j] = x[j] - c[j];
    if (!v->R) {
        memcpy(r, t, sizeof(float) * (size_t)dim);
        return;
    }
    for (int i = 0; i < dim; i++) {
        double s = 0;
        for (int j = 0; j < dim; j++)
            s += (double)v->R[i * dim + j] * t[j];
        r[i] = (float)s;
    }
}

/* Reconstruct x (unit) coded against centroid c into out (unit). */
static void reconstruct(const variant *v, int dim, const float *x, const float *c, int32_t code,
                        const uint8_t *packed, float *out)
{
    if (v->real) {
        cp_codec_decompress_one(&v->codec, code, packed, out);
        return;
    }
    float r[MAXD], q[MAXD];
    int nc = (1 << v->nbits) - 1;
    residual(v, dim, x, c, r);
    double s = 1;
    if (v->scale) {
        double ss = 0;
        for (int j = 0; j < dim; j++)
            ss += (double)r[j] * r[j];
        s = sqrt(ss / dim);
    }
    if (s > 0) {
        for (int j = 0; j < dim; j++) {
            int b = bucket(v->cut[v->perdim ? j : 0], nc, (float)(r[j] / s));
            q[j] = v->w[v->perdim ? j : 0][b];
        }
    } else {
        for (int j = 0; j < dim; j++)
            q[j] = 0;
    }
    if (v->aniso && s > 0) {
        /* Greedy score-aware refinement: coordinate moves to a neighbouring bucket that
         * lower |r - s q|^2 + eta * <x, r - s q>^2 (x in the rotated frame = r's frame for
         * R = NULL only). A few sweeps. */
        double eta = 4.0;
        float xr[MAXD];
        for (int j = 0; j < dim; j++)
            xr[j] = x[j];
        double par = 0;
        for (int j = 0; j < dim; j++)
            par += (double)xr[j] * (r[j] - s * q[j]);
        for (int sweep = 0; sweep < 2; sweep++)
            for (int j = 0; j < dim; j++) {
                int jj = v->perdim ? j : 0;
                int cur = 0;
                while (v->w[jj][cur] != q[j])
                    cur++;
                double e = r[j] - s * q[j];
                double best = e * e + eta * par * par;
                int bestb = cur;
                for (int d = -1; d <= 1; d += 2) {
                    int nb = cur + d;
                    if (nb < 0 || nb > nc) continue;
                    double e2 = r[j] - s * v->w[jj][nb];
                    double par2 = par + xr[j] * (e2 - e);
                    double cost = e2 * e2 + eta * par2 * par2;
                    if (cost < best) {
                        best = cost;
                        bestb = nb;
                    }
                }
                if (bestb != cur) {
                    double e2 = r[j] - s * v->w[jj][bestb];
                    par += xr[j] * (e2 - e);
                    q[j] = v->w[jj][bestb];
                }
            }
    }
    double sc = 1;
    if (v->scale) {
        double rq = 0, qq = 0;
        for (int j = 0; j < dim; j++) {
            rq += (double)r[j] * q[j];
            qq += (double)q[j] * q[j];
        }
        sc = qq > 0 && rq > 0 ? rq / qq : 0;
        if (sc > 0) { /* 8-bit log quantisation over the trained range; 0 stays exact */
            double ls = log(sc);
            double u = (ls - v->lsmin) / (v->lsmax - v->lsmin) * 254.0;
            long k = lround(u < 0 ? 0 : u > 254 ? 254 : u);
            sc = exp(v->lsmin + (v->lsmax - v->lsmin) * (double)k / 254.0);
        }
    }
    float rh[MAXD];
    for (int j = 0; j < dim; j++)
        rh[j] = (float)(sc * q[j]);
    if (v->R) {
        for (int j = 0; j < dim; j++) {
            double t = 0;
            for (int i = 0; i < dim; i++)
                t += (double)v->R[i * dim + j] * rh[i];
            out[j] = c[j] + (float)t;
        }
    } else {
        for (int j = 0; j < dim; j++)
            out[j] = c[j] + rh[j];
    }
    double nn = 0;
    for (int j = 0; j < dim; j++)
        nn += (double)out[j] * out[j];
    if (nn > 0)
        for (int j = 0; j < dim; j++)
            out[j] = (float)(out[j] / sqrt(nn));
    double g = 1;
    if (v->gain == 1) { /* stored: 1 / cos(x, decoded), 8-bit over [1, 1.5] */
        double c2 = 0;
        for (int j = 0; j < dim; j++)
            c2 += (double)x[j] * out[j];
        g = c2 > 0 ? 1 / c2 : 1;
        g = 1 + round((g > 1.5 ? 0.5 : g - 1) * 510) / 510;
    } else if (v->gain == 2) {
        double p = v->beta * sc * sc;
        g = p < 0.5 ? 1 / (1 - p) : 2;
    }
    if (g != 1)
        for (int j = 0; j < dim; j++)
            out[j] = (float)(out[j] * g);
}

static void train_variant(variant *v, const data *d, const float *cent, const int32_t *codes,
                          int64_t n_train)
{
    int dim = d->dim, nb = 1 << v->nbits;
    int64_t stride = d->n_tok / n_train > 0 ? d->n_tok / n_train : 1;
    int64_t m = 0;
    float *vals = malloc(sizeof(float) * (size_t)(n_train + 1) * dim);
    float r[MAXD];
    for (int64_t t = 0; t < d->n_tok && m < n_train; t += stride, m++) {
        residual(v, dim, d->x + t * dim, cent + (int64_t)codes[t] * dim, r);
        double s = 1;
        if (v->scale) {
            double ss = 0;
            for (int j = 0; j < dim; j++)
                ss += (double)r[j] * r[j];
            s = sqrt(ss / dim);
        }
        for (int j = 0; j < dim; j++)
            vals[(size_t)j * n_train + m] = s > 0 ? (float)(r[j] / s) : 0;
    }
    if (v->perdim) {
        for (int j = 0; j < dim; j++)
            lloyd(vals + (size_t)j * n_train, (size_t)m, nb, v->cut[j], v->w[j]);
    } else {
        /* pooled: the columns are contiguous blocks of m values when m == n_train */
        float *pool = malloc(sizeof(float) * (size_t)m * dim);
        for (int j = 0; j < dim; j++)
            memcpy(pool + (size_t)j * m, vals + (size_t)j * n_train, sizeof(float) * (size_t)m);
        lloyd(pool, (size_t)m * dim, nb, v->cut[0], v->w[0]);
        free(pool);
    }
    if (v->scale) {
        /* the range of least-squares scales on the training tokens */
        v->lsmin = 1e30f;
        v->lsmax = -1e30f;
        variant tmp = *v;
        tmp.lsmin = -50;
        tmp.lsmax = 50;
        (void)tmp;
        for (int64_t t = 0, k = 0; t < d->n_tok && k < n_train; t += stride, k++) {
            residual(v, dim, d->x + t * dim, cent + (int64_t)codes[t] * dim, r);
            double ss = 0;
            for (int j = 0; j < dim; j++)
                ss += (double)r[j] * r[j];
            double s = sqrt(ss / dim);
            if (s <= 0) continue;
            double rq = 0, qq = 0;
            int nc = nb - 1;
            for (int j = 0; j < dim; j++) {
                float qj = v->w[v->perdim ? j : 0]
                               [bucket(v->cut[v->perdim ? j : 0], nc, (float)(r[j] / s))];
                rq += (double)r[j] * qj;
                qq += (double)qj * qj;
            }
            if (qq <= 0 || rq <= 0) continue;
            float ls = (float)log(rq / qq);
            if (ls < v->lsmin) v->lsmin = ls;
            if (ls > v->lsmax) v->lsmax = ls;
        }
        if (v->lsmin > v->lsmax) v->lsmin = v->lsmax = 0;
        if (v->lsmax - v->lsmin < 1e-3f) v->lsmax = v->lsmin + 1e-3f;
        if (v->gain == 2) {
            variant tmp2 = *v;
            tmp2.gain = 0;
            double num = 0, den = 0;
            float out[MAXD];
            for (int64_t t = 0, k = 0; t < d->n_tok && k < n_train; t += stride, k++) {
                const float *x = d->x + t * dim, *c = cent + (int64_t)codes[t] * dim;
                reconstruct(&tmp2, dim, x, c, codes[t], NULL, out);
                double cs = 0, ss = 0;
                residual(v, dim, x, c, r);
                for (int j = 0; j < dim; j++) {
                    cs += (double)x[j] * out[j];
                    ss += (double)r[j] * r[j];
                }
                double s2 = ss / dim; /* ~ scale^2 */
                num += (1 - cs) * s2;
                den += s2 * s2;
            }
            v->beta = den > 0 ? num / den : 0;
        }
    }
    free(vals);
}

/* Exhaustive MaxSim of all queries over reconstructed tokens: doc_scores[q * n_docs + doc]. */
typedef struct run_stats {
    double cos_sum, err_sum;
} run_stats;

static void score_all(const data *d, const variant *v, const float *cent, const int32_t *codes,
                      const uint8_t *packed, int rb, float *doc_scores, run_stats *st)
{
    int dim = d->dim, cols = (int)d->nq * d->q_rows;
    enum { BLOCK = 1024 };
    float *buf = malloc(sizeof(float) * (size_t)(BLOCK + 512) * dim);
    float *S = malloc(sizeof(float) * (size_t)(BLOCK + 512) * cols);
    float *m = malloc(sizeof(float) * (size_t)cols);
    st->cos_sum = st->err_sum = 0;
    int64_t doc = 0;
    while (doc < d->n_docs) {
        int64_t d1 = doc, t0 = d->doc_off[doc];
        while (d1 < d->n_docs && d->doc_off[d1 + 1] - t0 <= BLOCK)
            d1++;
        if (d1 == doc) d1 = doc + 1; /* a document longer than a block: alone */
        int64_t t1 = d->doc_off[d1], n = t1 - t0;
        float *b = n <= BLOCK + 512 ? buf : malloc(sizeof(float) * (size_t)n * dim);
        float *Sb = n <= BLOCK + 512 ? S : malloc(sizeof(float) * (size_t)n * cols);
        for (int64_t t = t0; t < t1; t++) {
            const float *x = d->x + t * dim;
            float *o = b + (t - t0) * dim;
            if (!v) {
                memcpy(o, x, sizeof(float) * (size_t)dim);
                continue;
            }
            reconstruct(v, dim, x, cent + (int64_t)codes[t] * dim, codes[t],
                        packed ? packed + t * rb : NULL, o);
            double c = 0, e = 0;
            for (int j = 0; j < dim; j++) {
                c += (double)x[j] * o[j];
                e += ((double)x[j] - o[j]) * ((double)x[j] - o[j]);
            }
            st->cos_sum += c;
            st->err_sum += e;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, cols, dim, 1.0f, b, dim, d->q,
                    dim, 0.0f, Sb, cols);
        for (int64_t dd = doc; dd < d1; dd++) {
            for (int c = 0; c < cols; c++)
                m[c] = -INFINITY;
            for (int64_t t = d->doc_off[dd]; t < d->doc_off[dd + 1]; t++) {
                const float *s = Sb + (t - t0) * cols;
                for (int c = 0; c < cols; c++)
                    m[c] = s[c] > m[c] ? s[c] : m[c];
            }
            for (int64_t q = 0; q < d->nq; q++) {
                double tot = 0;
                if (d->doc_off[dd + 1] > d->doc_off[dd])
                    for (int i = 0; i < d->q_rows; i++)
                        tot += m[q * d->q_rows + i];
                doc_scores[q * d->n_docs + dd] = (float)tot;
            }
        }
        if (b != buf) free(b);
        if (Sb != S) free(Sb);
        doc = d1;
    }
    free(buf);
    free(S);
    free(m);
}

/* Indices of the top n scores (descending, lower index first on ties). */
static void topn(const float *s, int64_t n_docs, int n, int64_t *out)
{
    float val[TOPN];
    for (int i = 0; i < n; i++) {
        out[i] = -1;
        val[i] = -INFINITY;
    }
    for (int64_t d = 0; d < n_docs; d++) {
        if (!(s[d] > val[n - 1])) continue;
        int i = n - 1;
        while (i > 0 && s[d] > val[i - 1]) {
            val[i] = val[i - 1];
            out[i] = out[i - 1];
            i--;
        }
        val[i] = s[d];
        out[i] = d;
    }
}

static double overlap(const int64_t *a, const int64_t *b, int n)
{
    int hit = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (a[i] == b[j] && a[i] >= 0) {
                hit++;
                break;
            }
    return (double)hit / n;
}

static int has(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *nbits_list = "1,2,4",
               *variants = "colbert,perdim,scale,perdim+scale,rot+scale,aniso+scale";
    int64_t max_q = 100, k = 0, n_train = 65536;
    int threads = 2, probe = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--probe")) {
            probe = 1;
            continue;
        }
        if (!strcmp(a, "--data"))
            dir = val;
        else if (!strcmp(a, "--queries"))
            max_q = atoll(val);
        else if (!strcmp(a, "--k"))
            k = atoll(val);
        else if (!strcmp(a, "--nbits"))
            nbits_list = val;
        else if (!strcmp(a, "--threads"))
            threads = atoi(val);
        else if (!strcmp(a, "--variants"))
            variants = val;
        else if (!strcmp(a, "--train"))
            n_train = atoll(val);
        else {
            fprintf(stderr, "usage: bench_codec --data DIR [--queries N] [--k K] [--nbits 1,2,4] "
                            "[--threads T] [--variants LIST] [--probe] [--train N]\n");
            return 2;
        }
        i++;
    }
    if (!dir) die("--data DIR is required", NULL);
    data d;
    load(dir, max_q, &d);
    int dim = d.dim;
    if (dim > MAXD) die("dim too large", NULL);
    if (k <= 0) k = cp_kmeans_default_k((double)d.n_tok, d.n_tok);
    printf("bench_codec: %s: %lld docs, %lld tokens, dim %d, %lld queries x %d rows, K %lld\n", dir,
           (long long)d.n_docs, (long long)d.n_tok, dim, (long long)d.nq, d.q_rows, (long long)k);
    cp_error err = {0};
    double t0 = now();
    float *cent = malloc(sizeof(float) * (size_t)(k * dim));
    /* k-means on a seeded sample of 32 K tokens, 4 iterations (index build's defaults). */
    int64_t n_km = 32 * k < d.n_tok ? 32 * k : d.n_tok;
    float *km = malloc(sizeof(float) * (size_t)(n_km * dim));
    for (int64_t i = 0; i < n_km; i++)
        memcpy(km + i * dim, d.x + (int64_t)(urand() * (double)d.n_tok) * dim,
               sizeof(float) * (size_t)dim);
    if (cp_kmeans_train(km, n_km, dim, k, 4, 42, 32, threads, cent, &err) != CP_OK)
        die("k-means", &err);
    free(km);
    int32_t *codes = malloc(sizeof(int32_t) * (size_t)d.n_tok);
    if (cp_codec_assign_with(CP_ASSIGN_BLAS, cent, k, dim, d.x, d.n_tok, codes, threads, &err) !=
        CP_OK)
        die("assign", &err);
    printf("k-means + exact assignment: %.1f s\n", now() - t0);
    int32_t *pcodes = NULL;
    if (probe) {
        pcodes = malloc(sizeof(int32_t) * (size_t)d.n_tok);
        if (cp_codec_assign_with(CP_ASSIGN_PROBE, cent, k, dim, d.x, d.n_tok, pcodes, threads,
                                 &err) != CP_OK)
            die("probe assign", &err);
        int64_t same = 0;
        double lost = 0;
        for (int64_t t = 0; t < d.n_tok; t++) {
            same += pcodes[t] == codes[t];
            double a = 0, b = 0;
            for (int j = 0; j < dim; j++) {
                a += (double)d.x[t * dim + j] * cent[(int64_t)codes[t] * dim + j];
                b += (double)d.x[t * dim + j] * cent[(int64_t)pcodes[t] * dim + j];
            }
            lost += a - b;
        }
        printf("PROBE assignment: agreement with exact %.4f, mean inner product lost %.4f\n",
               (double)same / (double)d.n_tok, lost / (double)d.n_tok);
    }
    size_t ns = (size_t)(d.nq * d.n_docs);
    float *ref = malloc(sizeof(float) * ns), *sc = malloc(sizeof(float) * ns);
    run_stats st;
    t0 = now();
    score_all(&d, NULL, cent, codes, NULL, 0, ref, &st);
    printf("uncompressed exhaustive MaxSim: %.1f s\n", now() - t0);
    int64_t *ref_top = malloc(sizeof(int64_t) * (size_t)d.nq * TOPN);
    for (int64_t q = 0; q < d.nq; q++)
        topn(ref + q * d.n_docs, d.n_docs, TOPN, ref_top + q * TOPN);

    /* a seeded random orthogonal matrix (Gram-Schmidt of a Gaussian one) */
    float *R = malloc(sizeof(float) * (size_t)dim * dim);
    for (int i = 0; i < dim * dim; i++)
        R[i] = (float)grand();
    for (int i = 0; i < dim; i++) {
        for (int p = 0; p < i; p++) {
            double dot = 0;
            for (int j = 0; j < dim; j++)
                dot += (double)R[i * dim + j] * R[p * dim + j];
            for (int j = 0; j < dim; j++)
                R[i * dim + j] -= (float)(dot * R[p * dim + j]);
        }
        double nn = 0;
        for (int j = 0; j < dim; j++)
            nn += (double)R[i * dim + j] * R[i * dim + j];
        for (int j = 0; j < dim; j++)
            R[i * dim + j] = (float)(R[i * dim + j] / sqrt(nn));
    }

    printf("\n%-14s %5s %6s %9s %9s %9s %9s %10s %6s\n", "variant", "nbits", "assign", "top10",
           "top100", "vs_base", "cos", "sq_err", "B/tok");
    for (const char *nb = nbits_list; *nb;
         nb += strcspn(nb, ",") + (nb[strcspn(nb, ",")] ? 1 : 0)) {
        int nbits = atoi(nb);
        double base = 0;
        for (int pass = 0; pass < (probe ? 2 : 1); pass++) {
            const int32_t *cd = pass ? pcodes : codes;
            const char *names[] = {"colbert",      "perdim",         "scale",
                                   "perdim+scale", "rot+scale",      "aniso+scale",
                                   "scale+gain",   "scale+gainpred", "aniso+gainpred"};
            for (int vi = 0; vi < 9; vi++) {
                if (!has(variants, names[vi])) continue;
                if (pass && vi != 0 && vi != 2) continue;
                variant *v = calloc(1, sizeof *v);
                v->name = names[vi];
                v->nbits = nbits;
                v->perdim = vi == 1 || vi == 3;
                v->scale = vi >= 2;
                v->R = vi == 4 ? R : NULL;
                v->aniso = vi == 5 || vi == 8;
                v->gain = vi == 6 ? 1 : vi == 7 || vi == 8 ? 2 : 0;
                v->real = vi == 0;
                uint8_t *packed = NULL;
                int rb = cp_residual_bytes(dim, nbits);
                if (v->real) {
                    v->codec.dim = dim;
                    v->codec.nbits = nbits;
                    v->codec.n_centroids = k;
                    v->codec.centroids = cent;
                    int64_t m = n_train < d.n_tok ? n_train : d.n_tok;
                    if (cp_codec_train(&v->codec, d.x, m, threads, &err) != CP_OK)
                        die("train", &err);
                    packed = malloc((size_t)d.n_tok * (size_t)rb);
                    /* pack against this pass's codes (exact or PROBE), as compress does */
                    for (int64_t t = 0; t < d.n_tok; t++) {
                        uint8_t bk[MAXD];
                        const float *x = d.x + t * dim, *c = cent + (int64_t)cd[t] * dim;
                        for (int j = 0; j < dim; j++)
                            bk[j] = (uint8_t)cp_codec_bucketize(v->codec.bucket_cutoffs,
                                                                (1 << nbits) - 1, x[j] - c[j]);
                        cp_codec_pack_natural(bk, dim, nbits, packed + t * rb);
                    }
                } else {
                    train_variant(v, &d, cent, cd, n_train);
                }
                t0 = now();
                score_all(&d, v, cent, cd, packed, rb, sc, &st);
                double r10 = 0, r100 = 0;
                int64_t top[TOPN];
                for (int64_t q = 0; q < d.nq; q++) {
                    topn(sc + q * d.n_docs, d.n_docs, TOPN, top);
                    r10 += overlap(top, ref_top + q * TOPN, 10);
                    r100 += overlap(top, ref_top + q * TOPN, TOPN);
                }
                r10 /= (double)d.nq;
                r100 /= (double)d.nq;
                if (vi == 0 && pass == 0) base = r10;
                printf("%-14s %5d %6s %9.4f %9.4f %9.3f %9.5f %10.6f %6d   (%.1f s)\n", v->name,
                       nbits, pass ? "probe" : "exact", r10, r100, base > 0 ? r10 / base : 0,
                       st.cos_sum / (double)d.n_tok, st.err_sum / (double)d.n_tok,
                       4 + rb + (v->scale ? 1 : 0) + (v->gain == 1), now() - t0);
                fflush(stdout);
                free(packed);
                free(v);
            }
        }
    }
    return 0;
}
