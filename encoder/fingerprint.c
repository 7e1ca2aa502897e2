/*
 * Model fingerprints (colplaid/encoder.h, docs/encoder.md "Fingerprints").
 *
 * A backend loader leaves in enc->fingerprint its descriptive JSON (kind, name, dims,
 * maxlens, markers...: what every colplaid before fingerprint version 2 stored, now the
 * "legacy" fingerprint) and in enc->content_hash a 64-bit hash of everything that changes
 * the vectors: the weights and head, the tokenizer files and the relevant configuration.
 * cp_encoder_load then builds the version 2 fingerprint, the legacy object plus
 * "fingerprint_version": 2, "model_dim" (the head's own output), "dim" (what is encoded:
 * --dim / truncate_dim) and "hash".
 *
 * Matching (cp_encoder_match): a version 2 record matches when kind, hash and model_dim
 * are equal (the record's dim then says how many of the head's dims to keep); a record
 * without a version (an index built before) matches the legacy fingerprint key by key,
 * "name" (the model directory's name) aside, as `index add` compared it before. An index
 * imported from Stanford ColBERT ("kind": "colbert": its checkpoint's files unknown) only
 * needs dims the model can encode.
 *
 * The hash: 4 lanes of 64-bit multiply-rotate over 8-byte words, merged and avalanched; it
 * runs at memory speed, so hashing a BERT-base checkpoint (440 MB) adds well under a second
 * to a load that reads those bytes anyway. It detects accidental differences (a shuffled
 * vocabulary, another checkpoint); it is not a cryptographic digest.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_mmap.h"
#include "encoder_internal.h"

#define K1 0x9E3779B97F4A7C15ull
#define K2 0xC2B2AE3D27D4EB4Full
#define K3 0x165667B19E3779F9ull

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t avalanche(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

uint64_t cp_fp_hash_bytes(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t v[4] = {seed + K1, seed + K2, seed ^ K3, seed - K1};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++)
            v[l] = rotl64(v[l] + load64(p + i + 8 * l) * K2, 31) * K1;
    uint64_t h = seed ^ ((uint64_t)n * K3);
    for (int l = 0; l < 4; l++)
        h = (h ^ avalanche(v[l])) * K1 + K3;
    for (; i + 8 <= n; i += 8)
        h = rotl64(h ^ (load64(p + i) * K2), 27) * K1 + K3;
    for (; i < n; i++)
        h = rotl64(h ^ ((uint64_t)p[i] * K3), 11) * K1;
    return avalanche(h);
}

void cp_fp_mix(uint64_t *h, uint64_t v)
{
    *h = avalanche((*h ^ v) * K1 + K2);
}

void cp_fp_mix_str(uint64_t *h, const char *s)
{
    cp_fp_mix(h, cp_fp_hash_bytes(s, strlen(s), 7));
}

cp_status cp_fp_mix_file(uint64_t *h, const char *dir, const char *name, bool *present,
                         cp_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cp_mapped_file m;
    cp_status st = cp_file_map(path, &m, err);
    if (present) *present = st == CP_OK;
    if (st == CP_ENOTFOUND) {
        cp_error_clear(err);
        return CP_OK;
    }
    if (st != CP_OK) return st;
    cp_fp_mix_str(h, name);
    cp_fp_mix(h, cp_fp_hash_bytes(m.data, m.size, 11));
    cp_file_unmap(&m);
    return CP_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

cp_status cp_fp_mix_files_with_suffix(uint64_t *h, const char *dir, const char *suffix,
                                      cp_error *err)
{
    DIR *d = opendir(dir);
    if (!d) return CP_OK; /* no such folder: nothing of it to hash */
    char **names = NULL;
    size_t n = 0, cap = 0, slen = strlen(suffix);
    cp_status st = CP_OK;
    for (struct dirent *e; st == CP_OK && (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len <= slen || strcmp(e->d_name + len - slen, suffix)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                st = cp_error_set(err, CP_ENOMEM, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name)))
            st = cp_error_set(err, CP_ENOMEM, "out of memory");
        else
            n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str); /* readdir's order is the file system's */
    for (size_t i = 0; i < n; i++) {
        if (st == CP_OK) st = cp_fp_mix_file(h, dir, names[i], NULL, err);
        free(names[i]);
    }
    free(names);
    return st;
}

/* ---- the version 2 fingerprint ------------------------------------------------------------ */

static int model_dim(const cp_encoder *enc)
{
    return enc->dim;
}

int cp_encoder_out_dim(const cp_encoder *enc)
{
    return enc->out_dim > 0 ? enc->out_dim : enc->dim;
}

cp_status cp_encoder_build_fingerprint(cp_encoder *enc, cp_error *err)
{
    cJSON *legacy = enc->legacy_fingerprint ? cJSON_Parse(enc->legacy_fingerprint) : NULL;
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "fingerprint_version", CP_FINGERPRINT_VERSION);
    for (const cJSON *it = legacy ? legacy->child : NULL; ok && it; it = it->next) {
        if (!strcmp(it->string, "dim"))
            ok = cJSON_AddNumberToObject(o, "dim", cp_encoder_out_dim(enc)) != NULL;
        else
            ok = cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, true));
    }
    if (ok && !cJSON_GetObjectItemCaseSensitive(o, "dim"))
        ok = cJSON_AddNumberToObject(o, "dim", cp_encoder_out_dim(enc)) != NULL;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)enc->content_hash);
    ok = ok && cJSON_AddNumberToObject(o, "model_dim", model_dim(enc)) &&
         cJSON_AddStringToObject(o, "hash", hex);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    cJSON_Delete(legacy);
    if (!s) return cp_error_set(err, CP_ENOMEM, "out of memory");
    free(enc->fingerprint);
    enc->fingerprint = s;
    return CP_OK;
}

cp_status cp_encoder_set_dim(cp_encoder *enc, int dim, cp_error *err)
{
    if (dim < 1 || dim > enc->dim)
        return cp_error_set(err, CP_EDIM,
                            "the model's head has %d dimensions: it cannot encode %d (a "
                            "truncation keeps 1..%d of them)",
                            enc->dim, dim, enc->dim);
    enc->out_dim = dim == enc->dim ? 0 : dim;
    return cp_encoder_build_fingerprint(enc, err);
}

void cp_embeddings_truncate_rows(float *data, size_t n_rows, int dim, int new_dim)
{
    if (new_dim >= dim || new_dim < 1) return;
    for (size_t r = 0; r < n_rows; r++) {
        const float *src = data + r * (size_t)dim;
        float *dst = data + r * (size_t)new_dim; /* dst <= src: forward copy is safe */
        double ss = 0;
        for (int c = 0; c < new_dim; c++)
            ss += (double)src[c] * src[c];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int c = 0; c < new_dim; c++)
            dst[c] = src[c] * inv;
    }
}

void cp_embeddings_truncate(cp_embeddings *e, int dim)
{
    if (!e || !e->data || dim >= e->dim || dim < 1) return;
    cp_embeddings_truncate_rows(e->data, (size_t)e->n_tokens, e->dim, dim);
    e->dim = dim;
}

/* ---- matching ----------------------------------------------------------------------------- */

/* "bert \"name\" (dim 128, hash 0123...)" for messages. */
static void describe(const cJSON *o, char *buf, size_t cap)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsString(name)) name = cJSON_GetObjectItemCaseSensitive(o, "source");
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(o, "dim");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(o, "hash");
    snprintf(buf, cap, "%s model \"%.60s\" (dim %d, %s%.16s)",
             cJSON_IsString(kind) ? kind->valuestring : "unknown",
             cJSON_IsString(name) ? name->valuestring : "?",
             cJSON_IsNumber(dim) ? (int)dim->valuedouble : 0,
             cJSON_IsString(hash) ? "fingerprint " : "fingerprint version 1, no hash",
             cJSON_IsString(hash) ? hash->valuestring : "");
}

static bool same_item(const cJSON *a, const cJSON *b)
{
    return a && b && cJSON_Compare(a, b, true);
}

/* Legacy records: every key but "name" equal, both ways. */
static bool legacy_equal(const cJSON *stored, const cJSON *mine)
{
    for (const cJSON *it = stored->child; it; it = it->next)
        if (strcmp(it->string, "name") &&
            !same_item(it, cJSON_GetObjectItemCaseSensitive(mine, it->string)))
            return false;
    for (const cJSON *it = mine->child; it; it = it->next)
        if (strcmp(it->string, "name") && !cJSON_GetObjectItemCaseSensitive(stored, it->string))
            return false;
    return true;
}

cp_status cp_encoder_match(const cp_encoder *enc, const char *stored_json, int *dim, cp_error *err)
{
    *dim = cp_encoder_out_dim(enc);
    cJSON *stored = stored_json ? cJSON_Parse(stored_json) : NULL;
    if (!cJSON_IsObject(stored) || !stored->child) { /* nothing recorded (embeddings) */
        cJSON_Delete(stored);
        return CP_OK;
    }
    cJSON *mine = cJSON_Parse(cp_encoder_fingerprint(enc));
    cJSON *legacy = enc->legacy_fingerprint ? cJSON_Parse(enc->legacy_fingerprint) : NULL;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(stored, "fingerprint_version");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(stored, "kind");
    bool match;
    if (!ver && cJSON_IsString(kind) && !strcmp(kind->valuestring, "colbert")) {
        /* imported from Stanford ColBERT (index import): its checkpoint's files are not
         * known, only its settings; the dims must agree (index set-model records a model) */
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(stored, "dim");
        match = !cJSON_IsNumber(d) || (d->valuedouble >= 1 && d->valuedouble <= enc->dim);
        if (match && cJSON_IsNumber(d)) *dim = (int)d->valuedouble;
    } else if (!ver) {
        match = legacy && legacy_equal(stored, legacy);
    } else {
        match = cJSON_IsNumber(ver) && (int)ver->valuedouble == CP_FINGERPRINT_VERSION;
        static const char *const keys[] = {"kind", "hash", "model_dim"};
        for (size_t i = 0; match && i < 3; i++)
            match = same_item(cJSON_GetObjectItemCaseSensitive(stored, keys[i]),
                              cJSON_GetObjectItemCaseSensitive(mine, keys[i]));
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(stored, "dim");
        if (match && cJSON_IsNumber(d) && d->valuedouble >= 1 && d->valuedouble <= enc->dim)
            *dim = (int)d->valuedouble;
        else
            match = false;
    }
    cp_status st = CP_OK;
    if (!match) {
        char a[160], b[160];
        describe(stored, a, sizeof a);
        describe(mine, b, sizeof b);
        st = cp_error_set(err, CP_EMODEL,
                          "model mismatch: the index was built with the %s, this is the %s%s", a, b,
                          ver ? ""
                              : " (the index's fingerprint predates fingerprint version 2; "
                                "it is compared field by field)");
    }
    cJSON_Delete(stored);
    cJSON_Delete(mine);
    cJSON_Delete(legacy);
    return st;
}
