/*
 * The contextual static model: GloVe word vectors with neighbour mixing, the offline
 * default encoder. Not a ColBERT model; a real, weak one for demos and realistic tests
 * (docs/static-model.md).
 *
 * Model directory (written by cp_static_model_convert):
 * - colplaid-static.json: {"format": "colplaid-static", "version": 1, "dim", "source_dim",
 *   "vocab_size", "alpha", "query_maxlen", "doc_maxlen", "normalize_inputs", "lowercase",
 *   "strip_accents", "source", and for rotated models "rotation": "gaussian-qr" and
 *   "rotation_seed"};
 * - vocab.txt: one word per line, most frequent first; line i is row i of the vectors;
 * - vectors.f16: vocab_size x dim IEEE half floats, little-endian. dim is source_dim
 *   rounded up to a multiple of 8, with at least one padding dimension: the last one is
 *   reserved for the "no known word" row (below), so that row is orthogonal to every word.
 *   A rotated model stores R x instead of x, R a seeded random orthogonal matrix on dims
 *   0 .. dim-2 (static_convert.c): scores are unchanged, the codec quantises the dims more
 *   evenly, and the last dim stays zero for every word, so the encoder needs no R and
 *   models without a rotation load exactly as before.
 *
 * Encoding one text: BERT basic tokenization (lowercase, accents stripped, punctuation
 * split) -> drop punctuation and words not in the vocabulary -> keep the first maxlen words
 * (query_maxlen 32, doc_maxlen 300 by default: documented truncation) -> each word's vector
 * v_i (unit length when normalize_inputs) -> v'_i = normalize(v_i + alpha (v_{i-1} +
 * v_{i+1})) over that kept sequence (a missing neighbour counts as zero). Queries get one
 * row per kept word, no [MASK] padding: there is no transformer to make padding rows
 * meaningful. A query with no known word is an error; a document with none gets one row,
 * the unit vector of the reserved dimension, so it stays indexable but matches nothing.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_half.h"
#include "encoder_internal.h"
#include "static_internal.h"
#include "wordpiece_internal.h"

#define STATIC_CONFIG CP_STATIC_CONFIG
#define STATIC_VOCAB CP_STATIC_VOCAB
#define STATIC_VECTORS CP_STATIC_VECTORS
#define STATIC_QUERY_MAXLEN 32
#define STATIC_DOC_MAXLEN 300
#define STATIC_ALPHA 0.25
#define STATIC_MAX_DIM 4096

/* ---- the model ------------------------------------------------------------------------- */

typedef struct static_model {
    cp_strmap vocab;
    uint16_t *vectors; /* vocab.n x dim */
    int dim, source_dim;
    float alpha;
    bool normalize_inputs;
    cp_basic_options basic;
} static_model;

static void unit(float *v, int dim)
{
    double s = 0;
    for (int d = 0; d < dim; d++) s += (double)v[d] * v[d];
    if (s <= 0) return;
    float inv = (float)(1.0 / sqrt(s));
    for (int d = 0; d < dim; d++) v[d] *= inv;
}

static void load_row(const static_model *m, int32_t row, float *out)
{
    if (row >= m->vocab.n) { /* the reserved "no known word" direction */
        memset(out, 0, (size_t)m->dim * sizeof *out);
        out[m->dim - 1] = 1.0f;
        return;
    }
    const uint16_t *h = m->vectors + (size_t)row * (size_t)m->dim;
    for (int d = 0; d < m->dim; d++) out[d] = cp_half_to_float(h[d]);
    if (m->normalize_inputs) unit(out, m->dim);
}

/* Rows of the known words of text, punctuation dropped, at most maxlen. maxlen < 0 gives
 * the raw view: every word, punctuation included, unknown ones as the [UNK] id
 * (= vocab size), no limit. */
static cp_status text_rows_n(const static_model *m, const char *text, size_t len, int maxlen,
                             int32_t **rows, size_t *n, cp_error *err)
{
    cp_words w;
    cp_words_init(&w);
    cp_status st = cp_basic_tokenize(&m->basic, text, len, &w, err);
    int32_t *r = st == CP_OK ? malloc((w.n ? w.n : 1) * sizeof *r) : NULL;
    if (st == CP_OK && !r) st = cp_error_set(err, CP_ENOMEM, "out of memory encoding a text");
    size_t k = 0;
    for (size_t i = 0; st == CP_OK && i < w.n; i++) {
        bool skip = w.punct[i] && maxlen >= 0; /* the raw view keeps punctuation */
        int32_t row = skip ? -1 : cp_strmap_get(&m->vocab, w.buf + w.start[i], w.len[i]);
        if (maxlen < 0) r[k++] = row < 0 ? m->vocab.n : row;
        else if (row >= 0 && k < (size_t)maxlen) r[k++] = row;
    }
    cp_words_free(&w);
    if (st != CP_OK) {
        free(r);
        return st;
    }
    *rows = r;
    *n = k;
    return CP_OK;
}

static cp_status text_rows(const static_model *m, const char *text, int maxlen, int32_t **rows,
                           size_t *n, cp_error *err)
{
    return text_rows_n(m, text, strlen(text), maxlen, rows, n, err);
}

/* v'_i = normalize(v_i + alpha (v_{i-1} + v_{i+1})). */
static void mix(const static_model *m, const float *base, size_t n, float *out)
{
    int dim = m->dim;
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * (size_t)dim;
        const float *v = base + i * (size_t)dim;
        memcpy(o, v, (size_t)dim * sizeof *o);
        if (m->alpha != 0.0f) {
            for (int d = 0; d < dim; d++) {
                float nb = (i > 0 ? v[d - dim] : 0.0f) + (i + 1 < n ? v[d + dim] : 0.0f);
                o[d] += m->alpha * nb;
            }
        }
        double s = 0;
        for (int d = 0; d < dim; d++) s += (double)o[d] * o[d];
        if (s <= 1e-24) memcpy(o, v, (size_t)dim * sizeof *o); /* exact cancellation */
        unit(o, dim);
    }
}

static cp_status encode_one(cp_encoder *enc, cp_text_kind kind, const char *text,
                            cp_embeddings *out, cp_error *err)
{
    const static_model *m = enc->impl;
    int maxlen = kind == CP_TEXT_QUERY ? enc->query_maxlen : enc->doc_maxlen;
    int32_t *rows;
    size_t n;
    cp_status st = text_rows(m, text, maxlen, &rows, &n, err);
    if (st != CP_OK) return st;
    if (n == 0 && kind == CP_TEXT_QUERY) {
        free(rows);
        return cp_error_set(err, CP_EINVAL,
                            "the query has no word this static model knows (after dropping "
                            "punctuation): nothing to search with");
    }
    if (n == 0) rows[n++] = m->vocab.n; /* document with no known word */
    float *base = malloc(n * (size_t)m->dim * sizeof *base);
    float *data = malloc(n * (size_t)m->dim * sizeof *data);
    if (!base || !data) {
        free(base);
        free(data);
        free(rows);
        return cp_error_set(err, CP_ENOMEM, "out of memory encoding a text");
    }
    for (size_t i = 0; i < n; i++) load_row(m, rows[i], base + i * (size_t)m->dim);
    mix(m, base, n, data);
    free(base);
    out->data = data;
    out->token_ids = rows;
    out->n_tokens = (int32_t)n;
    out->dim = m->dim;
    return CP_OK;
}

/* Windows (encoder/window.c): every known word, no limit. */
static cp_status static_units(cp_encoder *enc, const char *text, size_t len, int32_t **ids,
                              size_t *n, cp_error *err)
{
    return text_rows_n(enc->impl, text, len, INT32_MAX, ids, n, err);
}

/* Mix the words ids[0, n) as one text (late chunking: a window's edge words are mixed with
 * their real neighbours) and keep rows [keep_from, keep_to). */
static cp_status static_encode_units(cp_encoder *enc, const int32_t *ids, size_t n,
                                     size_t keep_from, size_t keep_to, cp_embeddings *out,
                                     cp_error *err)
{
    const static_model *m = enc->impl;
    size_t keep = keep_to - keep_from, dim = (size_t)m->dim;
    float *base = malloc((n ? n : 1) * dim * sizeof *base);
    float *mixed = malloc((n ? n : 1) * dim * sizeof *mixed);
    float *data = malloc((keep ? keep : 1) * dim * sizeof *data);
    int32_t *tok = malloc((keep ? keep : 1) * sizeof *tok);
    if (!base || !mixed || !data || !tok) {
        free(base), free(mixed), free(data), free(tok);
        return cp_error_set(err, CP_ENOMEM, "out of memory encoding a window");
    }
    for (size_t i = 0; i < n; i++)
        load_row(m, ids[i], base + i * dim);
    mix(m, base, n, mixed);
    if (keep) {
        memcpy(data, mixed + keep_from * dim, keep * dim * sizeof *data);
        memcpy(tok, ids + keep_from, keep * sizeof *tok);
    }
    free(base);
    free(mixed);
    out->data = data;
    out->token_ids = tok;
    out->n_tokens = (int32_t)keep;
    out->dim = m->dim;
    return CP_OK;
}

static cp_status static_encode(cp_encoder *enc, cp_text_kind kind, const char *const *texts,
                               size_t n, cp_embeddings *out, cp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        cp_status st = encode_one(enc, kind, texts[i], &out[i], err);
        if (st != CP_OK) {
            for (size_t j = 0; j < i; j++) cp_embeddings_free(&out[j]);
            if (n > 1) cp_error_prefix(err, "text %zu", i + 1);
            return st;
        }
    }
    return CP_OK;
}

static cp_status static_tokenize(cp_encoder *enc, cp_text_kind kind, bool raw, const char *text,
                                 int32_t **ids, size_t *n_ids, cp_error *err)
{
    const static_model *m = enc->impl;
    int maxlen = raw ? -1 : kind == CP_TEXT_QUERY ? enc->query_maxlen : enc->doc_maxlen;
    return text_rows(m, text, maxlen, ids, n_ids, err);
}

static const char *static_token_text(const cp_encoder *enc, int32_t id)
{
    const static_model *m = enc->impl;
    if (id >= 0 && id < m->vocab.n) return cp_strmap_key(&m->vocab, id);
    return id == m->vocab.n ? "[UNK]" : NULL;
}

static void static_free(cp_encoder *enc)
{
    static_model *m = enc->impl;
    if (!m) return;
    cp_strmap_free(&m->vocab);
    free(m->vectors);
    free(m);
    enc->impl = NULL;
}

static const cp_encoder_backend static_backend = {
    .kind = "static",
    .encode = static_encode,
    .tokenize = static_tokenize,
    .token_text = static_token_text,
    .free = static_free,
    .units = static_units,
    .encode_units = static_encode_units,
};

/* ---- loading ---------------------------------------------------------------------------- */

static cp_status slurp(const char *path, char **data, size_t *len, cp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return cp_error_set(err, errno == ENOENT ? CP_ENOTFOUND : CP_EIO, "cannot open %s: %s",
                                path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return cp_error_set(err, CP_EIO, "%s is not a regular file", path);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
    fclose(f);
    if (!buf) return cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
    if (got != (size_t)sb.st_size) {
        free(buf);
        return cp_error_set(err, CP_EIO, "cannot read %s", path);
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return CP_OK;
}

static double json_num(const cJSON *j, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static bool json_flag(const cJSON *j, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

typedef struct static_config {
    int dim, source_dim, query_maxlen, doc_maxlen, centroid_scale;
    int window, window_stride; /* default windows; 0: none */
    int64_t vocab_size;
    double alpha;
    bool normalize_inputs, lowercase, strip_accents;
    uint64_t rotation_seed; /* 0: not rotated */
    char source[128];
} static_config;

static cp_status read_config(const char *path, static_config *c, cp_error *err)
{
    char *data;
    size_t len;
    cp_status st = slurp(path, &data, &len, err);
    if (st != CP_OK) return st;
    cJSON *j = cJSON_ParseWithLength(data, len);
    free(data);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return cp_error_set(err, CP_EFORMAT, "%s is not a JSON object", path);
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    c->dim = (int)json_num(j, "dim", 0);
    c->source_dim = (int)json_num(j, "source_dim", c->dim - 1);
    c->vocab_size = (int64_t)json_num(j, "vocab_size", -1);
    c->alpha = json_num(j, "alpha", STATIC_ALPHA);
    c->query_maxlen = (int)json_num(j, "query_maxlen", STATIC_QUERY_MAXLEN);
    c->doc_maxlen = (int)json_num(j, "doc_maxlen", STATIC_DOC_MAXLEN);
    c->centroid_scale = (int)json_num(j, "centroid_scale", CP_STATIC_CENTROID_SCALE);
    c->window = (int)json_num(j, "window", 0);
    c->window_stride = (int)json_num(j, "window_stride", c->window - c->window / 4);
    c->normalize_inputs = json_flag(j, "normalize_inputs", true);
    c->lowercase = json_flag(j, "lowercase", true);
    c->strip_accents = json_flag(j, "strip_accents", c->lowercase);
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "source");
    snprintf(c->source, sizeof c->source, "%s", cJSON_IsString(src) ? src->valuestring : "");
    /* Only recorded (for the fingerprint): the stored vectors are already rotated. */
    const cJSON *rot = cJSON_GetObjectItemCaseSensitive(j, "rotation_seed");
    double seed = cJSON_IsNumber(rot) ? rot->valuedouble : 0;
    bool ok_rot = !rot || (seed >= 1 && seed <= 9007199254740992.0 && seed == floor(seed));
    c->rotation_seed = ok_rot ? (uint64_t)seed : 0;
    bool ok_fmt = cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "colplaid-static");
    cJSON_Delete(j);
    if (!ok_fmt) return cp_error_set(err, CP_EFORMAT, "%s: \"format\" is not \"colplaid-static\"", path);
    if (!ok_rot)
        return cp_error_set(err, CP_EFORMAT, "%s: rotation_seed must be an integer in [1, 2^53]", path);
    if (c->dim < 2 || c->dim > STATIC_MAX_DIM || c->dim % 8 || c->source_dim < 1 ||
        c->source_dim >= c->dim)
        return cp_error_set(err, CP_EFORMAT,
                            "%s: dim %d / source_dim %d invalid (dim must be a multiple of 8, "
                            "larger than source_dim, at most %d)",
                            path, c->dim, c->source_dim, STATIC_MAX_DIM);
    if (c->vocab_size < 1 || c->vocab_size > INT32_MAX / 2)
        return cp_error_set(err, CP_EFORMAT, "%s: vocab_size is missing or invalid", path);
    if (!(c->alpha >= 0 && c->alpha <= 10))
        return cp_error_set(err, CP_EFORMAT, "%s: alpha must be in [0, 10]", path);
    if (c->query_maxlen < 1 || c->doc_maxlen < 1)
        return cp_error_set(err, CP_EFORMAT, "%s: query_maxlen and doc_maxlen must be >= 1", path);
    if (c->centroid_scale < 1 || c->centroid_scale > 64)
        return cp_error_set(err, CP_EFORMAT, "%s: centroid_scale must be 1..64", path);
    if (c->window < 0 || c->window > c->doc_maxlen ||
        (c->window && (c->window_stride < 1 || c->window_stride > c->window)))
        return cp_error_set(err, CP_EFORMAT,
                            "%s: window must be 0 (none) or 1..doc_maxlen (%d), and "
                            "window_stride 1..window",
                            path, c->doc_maxlen);
    return CP_OK;
}

static cp_status read_vocab(const char *path, int64_t expect, cp_strmap *m, cp_error *err)
{
    char *data;
    size_t len;
    cp_status st = slurp(path, &data, &len, err);
    if (st != CP_OK) return st;
    st = cp_strmap_init(m, (int32_t)expect, err);
    char *p = data, *end = data + len;
    int64_t line = 0;
    while (st == CP_OK && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int32_t row;
        line++;
        if (line > expect)
            st = cp_error_set(err, CP_EFORMAT, "%s has more than vocab_size = %lld lines", path,
                              (long long)expect);
        else if ((st = cp_strmap_add(m, p, n, &row, err)) == CP_OK && row != line - 1)
            st = cp_error_set(err, CP_EFORMAT, "%s line %lld: duplicate word", path,
                              (long long)line);
        p += n + 1;
    }
    free(data);
    if (st == CP_OK && line != expect)
        st = cp_error_set(err, CP_EFORMAT, "%s has %lld lines, the config says vocab_size %lld",
                          path, (long long)line, (long long)expect);
    return st;
}

static cp_status read_vectors(const char *path, const static_config *c, uint16_t **out,
                              uint64_t *checksum, cp_error *err)
{
    char *data;
    size_t len;
    cp_status st = slurp(path, &data, &len, err);
    if (st != CP_OK) return st;
    size_t want = (size_t)c->vocab_size * (size_t)c->dim * 2;
    if (len != want) {
        free(data);
        return cp_error_set(err, CP_EFORMAT,
                            "%s has %zu bytes, expected %zu (%lld words x %d dims x 2 bytes)", path,
                            len, want, (long long)c->vocab_size, c->dim);
    }
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)data[i]) * 1099511628211ull;
    *checksum = h;
    uint16_t *v = (uint16_t *)(void *)data; /* malloc'd: suitably aligned */
    for (size_t i = 0; i < len / 2; i++) { /* little-endian on disk */
        const unsigned char *b = (const unsigned char *)data + 2 * i;
        v[i] = (uint16_t)(b[0] | (b[1] << 8));
    }
    *out = v;
    return CP_OK;
}

static cp_status make_fingerprint(cp_encoder *enc, const static_config *c, uint64_t checksum,
                                  cp_error *err)
{
    char buf[1024], rot[64] = "";
    if (c->rotation_seed) /* unrotated models keep their old fingerprint, and their indexes */
        snprintf(rot, sizeof rot, ",\"rotation_seed\":%llu", (unsigned long long)c->rotation_seed);
    snprintf(buf, sizeof buf,
             "{\"kind\":\"static\",\"source\":\"%s\",\"dim\":%d,\"source_dim\":%d,"
             "\"vocab_size\":%lld,\"alpha\":%g,\"query_maxlen\":%d,\"doc_maxlen\":%d,"
             "\"normalize_inputs\":%s%s,\"checksum\":\"%016llx\"}",
             c->source[0] && !strpbrk(c->source, "\"\\") ? c->source : "unknown", c->dim,
             c->source_dim, (long long)c->vocab_size, c->alpha, c->query_maxlen, c->doc_maxlen,
             c->normalize_inputs ? "true" : "false", rot, (unsigned long long)checksum);
    enc->fingerprint = strdup(buf);
    return enc->fingerprint ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
}

/* Everything that changes the vectors (fingerprint.c): the vectors (their checksum), the
 * vocabulary file (a shuffled one maps words to other rows) and the settings. */
static cp_status hash_model(const char *dir, const static_config *c, uint64_t checksum, uint64_t *h,
                            cp_error *err)
{
    char buf[512];
    *h = 0x636f6c706c616964ull;
    snprintf(buf, sizeof buf, "static dim%d src%d n%lld alpha%.17g q%d d%d norm%d lower%d strip%d",
             c->dim, c->source_dim, (long long)c->vocab_size, c->alpha, c->query_maxlen,
             c->doc_maxlen, (int)c->normalize_inputs, (int)c->lowercase, (int)c->strip_accents);
    cp_fp_mix_str(h, buf);
    cp_fp_mix(h, checksum);
    return cp_fp_mix_file(h, dir, STATIC_VOCAB, NULL, err);
}

cp_status cp_static_encoder_load(const char *dir, const cp_encoder_options *opts,
                                 cp_encoder *enc, cp_error *err)
{
    (void)opts;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, STATIC_CONFIG);
    if (stat(path, &sb) != 0) return CP_ENOTFOUND; /* not a static model: try the next kind */
    static_config c;
    cp_status st = read_config(path, &c, err);
    if (st != CP_OK) return st == CP_ENOTFOUND ? CP_EIO : st;
    static_model *m = calloc(1, sizeof *m);
    if (!m) return cp_error_set(err, CP_ENOMEM, "out of memory loading %s", dir);
    enc->impl = m;
    enc->backend = &static_backend;
    uint64_t checksum = 0;
    snprintf(path, sizeof path, "%s/%s", dir, STATIC_VOCAB);
    st = read_vocab(path, c.vocab_size, &m->vocab, err);
    snprintf(path, sizeof path, "%s/%s", dir, STATIC_VECTORS);
    if (st == CP_OK) st = read_vectors(path, &c, &m->vectors, &checksum, err);
    if (st == CP_OK) st = make_fingerprint(enc, &c, checksum, err);
    if (st == CP_OK) st = hash_model(dir, &c, checksum, &enc->content_hash, err);
    if (st != CP_OK) {
        static_free(enc);
        enc->backend = NULL;
        cp_error_prefix(err, "static model %s", dir);
        return st == CP_ENOTFOUND ? CP_EFORMAT : st; /* a missing file: broken model */
    }
    m->dim = c.dim;
    m->source_dim = c.source_dim;
    m->alpha = (float)c.alpha;
    m->normalize_inputs = c.normalize_inputs;
    cp_basic_options_init(&m->basic);
    m->basic.lowercase = c.lowercase;
    m->basic.strip_accents = c.strip_accents;
    enc->dim = c.dim;
    enc->query_maxlen = c.query_maxlen;
    enc->doc_maxlen = c.doc_maxlen;
    enc->centroid_scale = c.centroid_scale;
    /* No positions, but windows stay within the configured document length. */
    enc->position_limit = c.doc_maxlen;
    enc->window.window = c.window;
    enc->window.stride = c.window ? c.window_stride : 0;
    return CP_OK;
}

