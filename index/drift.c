/*
 * Centroid drift (docs/live-index.md): a token's residual norm ||v - C[code]|| (v the
 * normalised input vector) against the distribution of the same measure over the build's
 * held-out vectors, stored by the builder in meta "drift" (p75, p99). An index without it
 * (imported, or built before) takes the first upsert batch as its reference.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "drift.h"

enum { DRIFT_MIN_TOKENS = 1000 };  /* added tokens before drift can advise a rebuild */
#define DRIFT_ADVISE_FRACTION 0.05 /* outliers: 1% expected; 5x that advises a rebuild */

typedef struct drift {
    double p75, p99;
    int64_t ref_tokens, added, outliers;
} drift;

/* Residual norms of n normalised vectors against their assigned centroids. */
static void residual_norms(const cp_codec *c, const float *v, const int32_t *codes, int64_t n,
                           float *out)
{
    for (int64_t t = 0; t < n; t++) {
        const float *x = v + (size_t)t * (size_t)c->dim;
        const float *cen = c->centroids + (size_t)codes[t] * (size_t)c->dim;
        double s = 0;
        for (int j = 0; j < c->dim; j++)
            s += (double)(x[j] - cen[j]) * (x[j] - cen[j]);
        out[t] = (float)sqrt(s);
    }
}

static bool drift_advises(const drift *d)
{
    return d->added >= DRIFT_MIN_TOKENS &&
           (double)d->outliers > DRIFT_ADVISE_FRACTION * (double)d->added;
}

static char *drift_json(const drift *d)
{
    char buf[320];
    snprintf(buf, sizeof buf,
             "{\"p75_distance\": %.6g, \"p99_distance\": %.6g, \"ref_tokens\": %lld, "
             "\"added_tokens\": %lld, \"outlier_tokens\": %lld, \"outlier_fraction\": %.4f, "
             "\"rebuild_advised\": %s}",
             d->p75, d->p99, (long long)d->ref_tokens, (long long)d->added, (long long)d->outliers,
             d->added ? (double)d->outliers / (double)d->added : 0.0,
             drift_advises(d) ? "true" : "false");
    return strdup(buf);
}

/* The reference from n normalised vectors with their codes (p75 / p99 residual norm). */
static cp_status drift_reference(const cp_codec *c, const float *v, const int32_t *codes, int64_t n,
                                 drift *d, cp_error *err)
{
    memset(d, 0, sizeof *d);
    if (n <= 0) return CP_OK;
    float *norms = malloc((size_t)n * sizeof *norms);
    if (!norms) return cp_error_set(err, CP_ENOMEM, "out of memory");
    residual_norms(c, v, codes, n, norms);
    double levels[2] = {0.75, 0.99};
    float q[2];
    cp_codec_quantiles(norms, (size_t)n, levels, 2, q);
    free(norms);
    d->p75 = q[0], d->p99 = q[1], d->ref_tokens = n;
    return CP_OK;
}

cp_status cp_drift_reference_json(const cp_codec *codec, const float *heldout, int64_t n,
                                  int threads, char **json, cp_error *err)
{
    *json = NULL;
    int32_t *codes = malloc((size_t)(n > 0 ? n : 1) * sizeof *codes);
    if (!codes) return cp_error_set(err, CP_ENOMEM, "out of memory");
    drift d;
    cp_status st = n > 0 ? cp_codec_assign(codec->centroids, codec->n_centroids, codec->dim,
                                           heldout, n, codes, threads, err)
                         : CP_OK;
    if (st == CP_OK) st = drift_reference(codec, heldout, codes, n, &d, err);
    free(codes);
    if (st == CP_OK && !(*json = drift_json(&d)))
        st = cp_error_set(err, CP_ENOMEM, "out of memory");
    return st;
}

static bool drift_parse(const char *json, drift *d)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    cJSON *p75 = cJSON_GetObjectItem(o, "p75_distance"),
          *p99 = cJSON_GetObjectItem(o, "p99_distance");
    cJSON *ref = cJSON_GetObjectItem(o, "ref_tokens"),
          *add = cJSON_GetObjectItem(o, "added_tokens");
    cJSON *out = cJSON_GetObjectItem(o, "outlier_tokens");
    bool ok = cJSON_IsNumber(p75) && cJSON_IsNumber(p99) && cJSON_IsNumber(ref) &&
              cJSON_IsNumber(add) && cJSON_IsNumber(out) && ref->valuedouble > 0;
    if (ok) {
        d->p75 = p75->valuedouble, d->p99 = p99->valuedouble;
        d->ref_tokens = (int64_t)ref->valuedouble, d->added = (int64_t)add->valuedouble;
        d->outliers = (int64_t)out->valuedouble;
    }
    cJSON_Delete(o);
    return ok;
}

cp_status cp_drift_account(const char *stored_json, const cp_codec *codec, const float *vecs,
                           const int32_t *codes, int64_t n, char **json, int64_t *n_outliers,
                           bool *rebuild_advised, cp_error *err)
{
    *json = NULL;
    drift d;
    cp_status st =
        drift_parse(stored_json, &d) ? CP_OK : drift_reference(codec, vecs, codes, n, &d, err);
    float *norms = st == CP_OK ? malloc((size_t)n * sizeof *norms) : NULL;
    if (st != CP_OK) return st;
    if (!norms) return cp_error_set(err, CP_ENOMEM, "out of memory");
    residual_norms(codec, vecs, codes, n, norms);
    int64_t out = 0;
    for (int64_t t = 0; t < n; t++)
        out += norms[t] > d.p99;
    free(norms);
    d.added += n;
    d.outliers += out;
    *n_outliers = out;
    *rebuild_advised = drift_advises(&d);
    if (!(*json = drift_json(&d))) return cp_error_set(err, CP_ENOMEM, "out of memory");
    return CP_OK;
}
