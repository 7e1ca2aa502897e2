/* Float to half and the word -> row map of the static model: see static_internal.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "static_internal.h"

/* ---- half floats ------------------------------------------------------------------------ */

/* Round to nearest even; values beyond the half range saturate to +-65504. */
uint16_t cp_static_float_to_half(float f)
{
    union { float f; uint32_t u; } v = {f};
    uint16_t sign = (uint16_t)((v.u >> 16) & 0x8000);
    float a = fabsf(f);
    if (!(a == a)) return (uint16_t)(sign | 0x7E00);
    if (a >= 65504.0f) return (uint16_t)(sign | 0x7BFF);
    if (a < ldexpf(1.0f, -14)) { /* subnormal: units of 2^-24 */
        float q = nearbyintf(a * ldexpf(1.0f, 24));
        return (uint16_t)(sign | (uint16_t)q);
    }
    int e;
    float m = frexpf(a, &e); /* a = m 2^e, m in [0.5, 1) */
    float q = nearbyintf(m * 2048.0f); /* 11 significant bits */
    if (q >= 2048.0f) {
        q /= 2.0f;
        e++;
    }
    uint16_t exp = (uint16_t)(e - 1 + 15);
    if (exp >= 31) return (uint16_t)(sign | 0x7BFF);
    return (uint16_t)(sign | (exp << 10) | ((uint16_t)q & 0x3FF));
}

/* ---- a string -> row map ---------------------------------------------------------------- */

const char *cp_strmap_key(const cp_strmap *m, int32_t row)
{
    return m->arena.data + m->off[row];
}

static const char *strmap_key_of(const void *ctx, int32_t row)
{
    return cp_strmap_key(ctx, row);
}

cp_status cp_strmap_init(cp_strmap *m, int32_t cap, cp_error *err)
{
    memset(m, 0, sizeof *m);
    m->off = malloc((size_t)cap * sizeof *m->off);
    if (!m->off || !cp_strtab_init(&m->index, (uint64_t)cap))
        return cp_error_set(err, CP_ENOMEM, "out of memory for the vocabulary");
    m->cap = cap;
    return CP_OK;
}

void cp_strmap_free(cp_strmap *m)
{
    free(m->arena.data);
    free(m->off);
    cp_strtab_free(&m->index);
    memset(m, 0, sizeof *m);
}

int32_t cp_strmap_get(const cp_strmap *m, const char *key, size_t n)
{
    return cp_strtab_find_n(&m->index, key, n, strmap_key_of, m);
}

/* Add key as the next row; returns the existing row if present (nothing added). */
cp_status cp_strmap_add(cp_strmap *m, const char *key, size_t n, int32_t *row, cp_error *err)
{
    int32_t found = cp_strmap_get(m, key, n);
    if (found >= 0) {
        *row = found;
        return CP_OK;
    }
    if (m->n == m->cap) return cp_error_set(err, CP_EINTERNAL, "vocabulary map overflow");
    cp_bytes *a = &m->arena;
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 1 << 16;
        while (cap < a->len + n + 1) cap *= 2;
        char *p = cap <= UINT32_MAX ? realloc(a->data, cap) : NULL;
        if (!p) return cp_error_set(err, CP_ENOMEM, "out of memory for the vocabulary");
        a->data = p;
        a->cap = cap;
    }
    memcpy(a->data + a->len, key, n);
    a->data[a->len + n] = '\0';
    m->off[m->n] = (uint32_t)a->len;
    a->len += n + 1;
    cp_strtab_insert(&m->index, cp_strmap_key(m, m->n), m->n); /* init sized it for cap rows */
    *row = m->n++;
    return CP_OK;
}

/* ---- the seeded orthogonal rotation ------------------------------------------------------ */

/* splitmix64: tiny, well mixed, and fully specified, so a seed names the same matrix on
 * every platform (up to libm's last-ulp differences in log/cos, far below fp16 storage). */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform_open(uint64_t *s) /* in (0, 1): log() below never sees 0 */
{
    return ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

cp_status cp_static_rotation(int n, uint64_t seed, double *q, cp_error *err)
{
    if (n < 1 || n > 4096) return cp_error_set(err, CP_EINVAL, "rotation size %d out of range", n);
    uint64_t s = seed;
    size_t nn = (size_t)n * (size_t)n;
    for (size_t i = 0; i < nn; i += 2) { /* Box-Muller: two Gaussians per pair of uniforms */
        double r = sqrt(-2.0 * log(uniform_open(&s))), t = 6.283185307179586 * uniform_open(&s);
        q[i] = r * cos(t);
        if (i + 1 < nn) q[i + 1] = r * sin(t);
    }
    /* Modified Gram-Schmidt over the rows, each projection pass done twice ("twice is
     * enough", Giraud et al.) so the rows are orthonormal to ~1e-15 even for n in the
     * thousands. Orthonormalising a Gaussian matrix this way is its QR factorisation with a
     * positive diagonal, which makes the result Haar-distributed: no direction preferred. */
    for (int i = 0; i < n; i++) {
        double *qi = q + (size_t)i * (size_t)n;
        for (int pass = 0; pass < 2; pass++) {
            for (int k = 0; k < i; k++) {
                const double *qk = q + (size_t)k * (size_t)n;
                double dot = 0;
                for (int d = 0; d < n; d++) dot += qi[d] * qk[d];
                for (int d = 0; d < n; d++) qi[d] -= dot * qk[d];
            }
        }
        double norm = 0;
        for (int d = 0; d < n; d++) norm += qi[d] * qi[d];
        norm = sqrt(norm);
        if (!(norm > 1e-8)) /* probability ~0 for Gaussian rows; never silently degrade */
            return cp_error_set(err, CP_EINTERNAL, "rotation seed %llu gives a singular matrix",
                                (unsigned long long)seed);
        for (int d = 0; d < n; d++) qi[d] /= norm;
    }
    return CP_OK;
}
