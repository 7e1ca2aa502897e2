/*
 * Static model tests: convert a small GloVe JSON written here, then check the model files
 * (vocabulary order, fp16 values, zero padding), the neighbour mixing formula with
 * alpha = 0.25 and 0, dropped punctuation and unknown words, truncation, empty texts,
 * --vocab-size, and bad inputs. Expected vectors are computed here independently from the
 * JSON values. Then the rotation: orthogonal, seeded, applied to the stored vectors, and
 * invisible to retrieval (same MaxSim scores and rankings as the unrotated model; the "no
 * known word" row stays orthogonal to every word).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colplaid/encoder.h"
#include "cp_half.h"
#include "cp_test.h"
#include "static_internal.h"

static char tmpdir[256];

static void write_file(const char *name, const char *content)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(content, f);
    fclose(f);
}

/* source_dim 4: words with [4 floats, l2norm, index]; "Café" and "cafe" share a key (the
 * more frequent, index 3, wins); "u.s." cannot be one token; index gives frequency order. */
static const char *glove_json =
    "{\"precision\": 8, \"l2NormIndex\": 4, \"wordIndex\": 5, \"size\": 8, \"dimensions\": 4,"
    " \"words\": [\"the\", \",\", \"cat\", \"Café\", \"sat\", \"u.s.\", \"cafe\", \"mat\"],"
    " \"vectors\": {"
    "\"the\": [1, 0, 0, 0, 1, 0],"
    "\",\": [0, 0, 0, 3, 3, 1],"
    "\"cat\": [0, 2, 0, 0, 2, 2],"
    "\"Caf\\u00e9\": [0.5, 0.5, 0.5, 0.5, 1, 3],"
    "\"sat\": [0, 0, 1.5, 0.1, 1.5, 4],"
    "\"u.s.\": [1, 1, 1, 1, 2, 5],"
    "\"cafe\": [9, 9, 9, 9, 18, 6],"
    "\"mat\": [1, -1, 0.25, 0, 1.4, 7]},"
    " \"unkVector\": [0, 0, 0, 0, 0, -1]}";

static const float vec_the[4] = {1, 0, 0, 0}, vec_cat[4] = {0, 2, 0, 0},
                   vec_sat[4] = {0, 0, 1.5f, 0.1f}, vec_mat[4] = {1, -1, 0.25f, 0};

static void unit4(const float *in, double *out)
{
    double s = 0;
    for (int d = 0; d < 4; d++) s += (double)in[d] * in[d];
    for (int d = 0; d < 4; d++) out[d] = in[d] / sqrt(s);
}

/* Expected mixed rows for a sequence of words (alpha as given), dim 8 with zero padding. */
static void expect_rows(const float *const *seq, int n, double alpha, double *out)
{
    double u[16][4];
    for (int i = 0; i < n; i++) unit4(seq[i], u[i]);
    for (int i = 0; i < n; i++) {
        double v[4], s = 0;
        for (int d = 0; d < 4; d++) {
            double nb = (i > 0 ? u[i - 1][d] : 0) + (i + 1 < n ? u[i + 1][d] : 0);
            v[d] = u[i][d] + alpha * nb;
            s += v[d] * v[d];
        }
        for (int d = 0; d < 8; d++) out[i * 8 + d] = d < 4 ? v[d] / sqrt(s) : 0.0;
    }
}

static void check_rows(const cp_embeddings *e, const double *want, int n, const char *what)
{
    if (e->n_tokens != n || e->dim != 8) {
        fprintf(stderr, "%s: expected %d rows of dim 8, got %d of dim %d\n", what, n,
                (int)e->n_tokens, e->dim);
        cp_test_failures++;
        return;
    }
    for (int i = 0; i < n * 8; i++) /* fp16 storage: ~1e-3 relative */
        if (fabs(e->data[i] - want[i]) > 2e-3) {
            fprintf(stderr, "%s: row %d dim %d: expected %.5f, got %.5f\n", what, i / 8, i % 8,
                    want[i], (double)e->data[i]);
            cp_test_failures++;
            return;
        }
}

static cp_encoder *load(const char *dir)
{
    cp_error err;
    cp_encoder *enc = NULL;
    CP_CHECK_OK(cp_encoder_load(dir, NULL, &enc, &err), err);
    return enc;
}

static void encode1(cp_encoder *enc, cp_text_kind kind, const char *text, cp_embeddings *e)
{
    cp_error err;
    memset(e, 0, sizeof *e);
    CP_CHECK_OK(cp_encoder_encode(enc, kind, &text, 1, e, &err), err);
}

static void test_files(const char *model)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab.txt", model);
    FILE *f = fopen(path, "rb");
    char buf[256] = {0};
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    /* frequency order, "u.s." left out, "Café" keyed as "cafe" with index 3 */
    CP_CHECK(!strcmp(buf, "the\n,\ncat\ncafe\nsat\nmat\n"));
    snprintf(path, sizeof path, "%s/vectors.f16", model);
    f = fopen(path, "rb");
    unsigned char v[6 * 8 * 2];
    size_t got = f ? fread(v, 1, sizeof v + 1, f) : 0;
    if (f) fclose(f);
    CP_CHECK_INT(got, sizeof v);
    /* row 3 (cafe) holds 0.5 = 0x3800 in dims 0..3 and zeros in the padding dims 4..7 */
    for (int d = 0; d < 8; d++) {
        unsigned h = v[(3 * 8 + d) * 2] | (unsigned)v[(3 * 8 + d) * 2 + 1] << 8;
        CP_CHECK_INT(h, d < 4 ? 0x3800 : 0);
    }
}

static void test_mixing(const char *model)
{
    cp_encoder *enc = load(model);
    if (!enc) return;
    CP_CHECK_INT(cp_encoder_dim(enc), 8);
    CP_CHECK(strstr(cp_encoder_fingerprint(enc), "\"kind\":\"static\"") != NULL);
    CP_CHECK(strstr(cp_encoder_fingerprint(enc), "\"alpha\":0.25") != NULL);
    cp_embeddings e;
    double want[16 * 8];
    /* punctuation and the unknown "dog" dropped; neighbours are the kept words */
    const float *seq[] = {vec_the, vec_cat, vec_sat, vec_mat};
    encode1(enc, CP_TEXT_DOCUMENT, "The cat, dog SAT... on-the mat!", &e);
    const float *seq2[] = {vec_the, vec_cat, vec_sat, vec_the, vec_mat};
    expect_rows(seq2, 5, 0.25, want);
    check_rows(&e, want, 5, "document, alpha 0.25");
    cp_embeddings_free(&e);
    /* a query: same rule, no padding rows */
    encode1(enc, CP_TEXT_QUERY, "the cat sat mat", &e);
    expect_rows(seq, 4, 0.25, want);
    check_rows(&e, want, 4, "query, alpha 0.25");
    CP_CHECK(e.token_ids && e.token_ids[0] == 0 && e.token_ids[3] == 5);
    cp_embeddings_free(&e);
    /* a single word has no neighbours: its unit vector */
    encode1(enc, CP_TEXT_QUERY, "cat", &e);
    expect_rows(seq + 1, 1, 0.25, want);
    check_rows(&e, want, 1, "single word");
    cp_embeddings_free(&e);
    /* tokenize: the ids the model uses, and the raw view with punctuation and [UNK] */
    cp_error err;
    int32_t *ids;
    size_t n;
    CP_CHECK_OK(cp_encoder_tokenize(enc, CP_TEXT_DOCUMENT, false, "the, cat zzz", &ids, &n, &err), err);
    CP_CHECK(n == 2 && ids[0] == 0 && ids[1] == 2);
    free(ids);
    CP_CHECK_OK(cp_encoder_tokenize(enc, CP_TEXT_DOCUMENT, true, "the, cat zzz", &ids, &n, &err), err);
    CP_CHECK(n == 4 && ids[0] == 0 && ids[1] == 1 && ids[2] == 2 && ids[3] == 6);
    CP_CHECK(n == 4 && !strcmp(cp_encoder_token_text(enc, ids[3]), "[UNK]"));
    free(ids);
    cp_encoder_free(enc);
}

static void test_empty_and_long(const char *model)
{
    cp_encoder *enc = load(model);
    if (!enc) return;
    cp_error err;
    cp_embeddings e;
    const char *q = "?? zzz !";
    CP_CHECK(cp_encoder_encode(enc, CP_TEXT_QUERY, &q, 1, &e, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "query") != NULL);
    q = "";
    CP_CHECK(cp_encoder_encode(enc, CP_TEXT_QUERY, &q, 1, &e, &err) == CP_EINVAL);
    /* a document with no known word: one row along the reserved last dimension */
    encode1(enc, CP_TEXT_DOCUMENT, "?? zzz !", &e);
    CP_CHECK_INT(e.n_tokens, 1);
    if (e.n_tokens == 1) {
        CP_CHECK_NEAR(e.data[7], 1.0, 1e-6);
        CP_CHECK_NEAR(e.data[0], 0.0, 1e-6);
    }
    cp_embeddings_free(&e);
    /* truncation: query_maxlen 32 and doc_maxlen 300 words */
    size_t len = 400 * 4 + 1;
    char *text = malloc(len);
    for (int i = 0; i < 400; i++) memcpy(text + i * 4, "cat ", 4);
    text[len - 1] = '\0';
    encode1(enc, CP_TEXT_QUERY, text, &e);
    CP_CHECK_INT(e.n_tokens, 32);
    cp_embeddings_free(&e);
    encode1(enc, CP_TEXT_DOCUMENT, text, &e);
    CP_CHECK_INT(e.n_tokens, 300);
    cp_embeddings_free(&e);
    free(text);
    /* several texts in one call; an error in one leaves nothing allocated */
    const char *texts[3] = {"the cat", "sat", "zzz"};
    cp_embeddings out[3];
    CP_CHECK(cp_encoder_encode(enc, CP_TEXT_QUERY, texts, 3, out, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "text 3") != NULL);
    CP_CHECK_OK(cp_encoder_encode(enc, CP_TEXT_DOCUMENT, texts, 3, out, &err), err);
    CP_CHECK(out[0].n_tokens == 2 && out[1].n_tokens == 1 && out[2].n_tokens == 1);
    for (int i = 0; i < 3; i++) cp_embeddings_free(&out[i]);
    cp_encoder_free(enc);
}

/* alpha 0: each row is the word's own unit vector. */
static void test_alpha_zero(const char *model)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/colplaid-static.json", model);
    FILE *f = fopen(path, "wb");
    CP_CHECK(f != NULL);
    if (!f) return;
    fputs("{\"format\": \"colplaid-static\", \"version\": 1, \"dim\": 8, \"source_dim\": 4,"
          " \"vocab_size\": 6, \"alpha\": 0, \"query_maxlen\": 32, \"doc_maxlen\": 300}",
          f);
    fclose(f);
    cp_encoder *enc = load(model);
    if (!enc) return;
    cp_embeddings e;
    double want[4 * 8];
    const float *seq[] = {vec_the, vec_cat, vec_sat, vec_mat};
    encode1(enc, CP_TEXT_DOCUMENT, "the cat sat mat", &e);
    expect_rows(seq, 4, 0.0, want);
    check_rows(&e, want, 4, "alpha 0");
    cp_embeddings_free(&e);
    CP_CHECK(strstr(cp_encoder_fingerprint(enc), "\"alpha\":0,") != NULL);
    cp_encoder_free(enc);
}

static void test_bad_input(const char *json_path)
{
    cp_error err;
    char out[512], path[1024];
    snprintf(out, sizeof out, "%s/m_small", tmpdir);
    CP_CHECK_OK(cp_static_model_convert(json_path, out, 2, &err), err);
    cp_encoder *enc = load(out);
    if (enc) {
        int32_t *ids;
        size_t n;
        CP_CHECK_OK(cp_encoder_tokenize(enc, CP_TEXT_DOCUMENT, false, "the cat ,", &ids, &n, &err), err);
        CP_CHECK_INT(n, 1); /* vocab-size 2 keeps "the" and ",": "cat" is unknown */
        free(ids);
        cp_encoder_free(enc);
    }
    /* truncated JSON, wrong vector length, missing file: errors, no crash */
    write_file("trunc.json", "{\"size\": 2, \"dimensions\": 4, \"vectors\": {\"a\": [1, 2,");
    snprintf(path, sizeof path, "%s/trunc.json", tmpdir);
    CP_CHECK(cp_static_model_convert(path, out, 0, &err) == CP_EFORMAT);
    CP_CHECK(strstr(err.message, "trunc.json") != NULL);
    write_file("short.json", "{\"size\": 2, \"dimensions\": 4, \"vectors\": {\"a\": [1, 2, 3]}}");
    snprintf(path, sizeof path, "%s/short.json", tmpdir);
    CP_CHECK(cp_static_model_convert(path, out, 0, &err) == CP_EFORMAT);
    snprintf(path, sizeof path, "%s/nothing.json", tmpdir);
    CP_CHECK(cp_static_model_convert(path, out, 0, &err) == CP_ENOTFOUND);
    /* a damaged model: vectors.f16 of the wrong size */
    snprintf(path, sizeof path, "%s/vectors.f16", out);
    FILE *f = fopen(path, "ab");
    if (f) {
        fputc(0, f);
        fclose(f);
    }
    cp_encoder *bad = NULL;
    CP_CHECK(cp_encoder_load(out, NULL, &bad, &err) == CP_EFORMAT);
    CP_CHECK(strstr(err.message, "vectors.f16") != NULL);
    /* a directory that is no model at all */
    CP_CHECK(cp_encoder_load(tmpdir, NULL, &bad, &err) == CP_EFORMAT);
    CP_CHECK(strstr(err.message, "colplaid-static.json") != NULL);
}

/* ---- rotation --------------------------------------------------------------------------- */

#define RW 48 /* words */
#define RS 100 /* source dim, as GloVe 6B 100d: padded dim 104, rotation over dims 0..102 */
#define RD 104

static uint64_t lcg_state = 12345;
static double lcg(void) /* uniform in [-1, 1) */
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 4503599627370496.0 - 1.0;
}

/* A GloVe-like JSON: dim d scaled by 1.04^d, so variances differ ~2500x as in GloVe. */
static void write_rot_json(const char *name, double vals[RW][RS])
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    CP_CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"size\": %d, \"dimensions\": %d, \"wordIndex\": %d, \"vectors\": {", RW, RS,
            RS + 1);
    for (int w = 0; w < RW; w++) {
        fprintf(f, "%s\"w%d\": [", w ? ", " : "", w);
        double n = 0;
        for (int d = 0; d < RS; d++) {
            vals[w][d] = lcg() * pow(1.04, d);
            n += vals[w][d] * vals[w][d];
            fprintf(f, "%.9g, ", vals[w][d]);
        }
        fprintf(f, "%.9g, %d]", sqrt(n), w);
    }
    fputs("}}", f);
    fclose(f);
}

static double maxsim(const cp_embeddings *q, const cp_embeddings *d)
{
    double total = 0;
    for (int i = 0; i < q->n_tokens; i++) {
        double best = -2;
        for (int j = 0; j < d->n_tokens; j++) {
            double s = 0;
            for (int k = 0; k < q->dim; k++) s += (double)q->data[i * q->dim + k] * d->data[j * d->dim + k];
            if (s > best) best = s;
        }
        total += best;
    }
    return total;
}

static void test_rotation_matrix(void)
{
    cp_error err;
    enum { N = 103 }; /* the GloVe model's: padded dim 104 minus the reserved dim */
    double *q = malloc(N * N * sizeof *q), *q2 = malloc(N * N * sizeof *q2);
    if (!q || !q2) exit(1);
    CP_CHECK_OK(cp_static_rotation(N, CP_STATIC_ROTATION_SEED, q, &err), err);
    double worst = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < N; k++) s += q[i * N + k] * q[j * N + k];
            worst = fmax(worst, fabs(s - (i == j)));
        }
    CP_CHECK(worst < 1e-6);
    if (worst >= 1e-12) fprintf(stderr, "note: Q Q^T - I up to %g\n", worst);
    /* seeded: the same seed gives the same matrix, another seed another one */
    CP_CHECK_OK(cp_static_rotation(N, CP_STATIC_ROTATION_SEED, q2, &err), err);
    CP_CHECK(!memcmp(q, q2, N * N * sizeof *q));
    CP_CHECK_OK(cp_static_rotation(N, 7, q2, &err), err);
    CP_CHECK(memcmp(q, q2, N * N * sizeof *q) != 0);
    CP_CHECK(cp_static_rotation(0, 1, q2, &err) == CP_EINVAL);
    free(q);
    free(q2);
}

static void test_rotation_model(void)
{
    static double vals[RW][RS];
    write_rot_json("rot.json", vals);
    char json[512], plain[512], rotated[512], path[1024];
    snprintf(json, sizeof json, "%s/rot.json", tmpdir);
    snprintf(plain, sizeof plain, "%s/m_plain", tmpdir);
    snprintf(rotated, sizeof rotated, "%s/m_rot", tmpdir);
    cp_error err;
    cp_static_convert_options o;
    cp_static_convert_options_init(&o);
    CP_CHECK(o.rotate && o.vocab_size == 0);
    o.rotate = false;
    CP_CHECK_OK(cp_static_model_convert_opts(json, plain, &o, &err), err);
    CP_CHECK_OK(cp_static_model_convert(json, rotated, 0, &err), err); /* rotates by default */
    cp_encoder *ep = load(plain), *er = load(rotated);
    if (!ep || !er) return;
    CP_CHECK(strstr(cp_encoder_fingerprint(ep), "rotation") == NULL); /* as before rotation */
    CP_CHECK(strstr(cp_encoder_fingerprint(er), "\"rotation_seed\":24301,") != NULL);

    /* The stored vectors are R x (one fp16 rounding) with the last dim an exact zero. */
    static uint16_t h[RW * RD];
    snprintf(path, sizeof path, "%s/vectors.f16", rotated);
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(h, 2, RW * RD, f) : 0; /* little-endian host assumed by the test */
    if (f) fclose(f);
    CP_CHECK_INT(got, RW * RD);
    double rot[(RD - 1) * (RD - 1)], worst = 0;
    CP_CHECK_OK(cp_static_rotation(RD - 1, CP_STATIC_ROTATION_SEED, rot, &err), err);
    int last_nonzero = 0, pad_nonzero = 0;
    for (int w = 0; w < RW; w++) {
        for (int r = 0; r < RD - 1; r++) {
            double want = 0;
            for (int d = 0; d < RS; d++) want += rot[r * (RD - 1) + d] * vals[w][d];
            float have = cp_half_to_float(h[w * RD + r]);
            worst = fmax(worst, fabs(have - want) / (fabs(want) + 1e-3));
            pad_nonzero += r >= RS && have != 0.0f; /* the rotation fills the padding */
        }
        last_nonzero += h[w * RD + RD - 1] != 0;
    }
    CP_CHECK(worst < 1e-3); /* fp16: 2^-11 relative */
    CP_CHECK_INT(last_nonzero, 0);
    CP_CHECK(pad_nonzero > RW);

    /* Same MaxSim scores and identical rankings. Each model rounds its stored vectors to
     * fp16 once (2^-11 relative, on x vs R x), so scores per query row agree to ~1e-4 (1e-4
     * measured here), not to float precision. */
    enum { NQ = 6, ND = 24 };
    char qtext[NQ][256], dtext[ND + 1][512];
    for (int i = 0; i < NQ; i++) {
        int n = 0, len = 2 + i % 4;
        for (int k = 0; k < len; k++)
            n += snprintf(qtext[i] + n, sizeof qtext[i] - n, "w%d ", (int)((lcg() + 1) * RW / 2));
    }
    for (int i = 0; i < ND; i++) {
        int n = 0, len = 3 + i % 11;
        for (int k = 0; k < len; k++)
            n += snprintf(dtext[i] + n, sizeof dtext[i] - n, "w%d, ", (int)((lcg() + 1) * RW / 2));
    }
    snprintf(dtext[ND], sizeof dtext[ND], "nothing known here");
    cp_embeddings qp[NQ], qr[NQ], dp[ND + 1], dr[ND + 1];
    const char *qs[NQ], *ds[ND + 1];
    for (int i = 0; i < NQ; i++) qs[i] = qtext[i];
    for (int i = 0; i <= ND; i++) ds[i] = dtext[i];
    CP_CHECK_OK(cp_encoder_encode(ep, CP_TEXT_QUERY, qs, NQ, qp, &err), err);
    CP_CHECK_OK(cp_encoder_encode(er, CP_TEXT_QUERY, qs, NQ, qr, &err), err);
    CP_CHECK_OK(cp_encoder_encode(ep, CP_TEXT_DOCUMENT, ds, ND + 1, dp, &err), err);
    CP_CHECK_OK(cp_encoder_encode(er, CP_TEXT_DOCUMENT, ds, ND + 1, dr, &err), err);
    double diff = 0;
    int rank_mismatch = 0;
    for (int i = 0; i < NQ; i++) {
        double sp[ND + 1], sr[ND + 1];
        for (int j = 0; j <= ND; j++) {
            sp[j] = maxsim(&qp[i], &dp[j]);
            sr[j] = maxsim(&qr[i], &dr[j]);
            diff = fmax(diff, fabs(sp[j] - sr[j]) / qp[i].n_tokens); /* per query row */
        }
        for (int a = 0; a <= ND; a++) /* every pair in the same order */
            for (int b = 0; b <= ND; b++) rank_mismatch += (sp[a] > sp[b]) != (sr[a] > sr[b]);
    }
    printf("rotated vs unrotated MaxSim: max difference %.3g per query row\n", diff);
    CP_CHECK(diff < 3e-4);
    CP_CHECK_INT(rank_mismatch, 0);

    /* The "no known word" document: the reserved unit vector, orthogonal to every word. */
    CP_CHECK_INT(dr[ND].n_tokens, 1);
    CP_CHECK(dr[ND].n_tokens == 1 && dr[ND].data[RD - 1] == 1.0f);
    double leak = 0;
    for (int w = 0; w < RW; w++) {
        char word[16];
        const char *t = word;
        cp_embeddings e;
        snprintf(word, sizeof word, "w%d", w);
        if (cp_encoder_encode(er, CP_TEXT_QUERY, &t, 1, &e, &err) != CP_OK) continue;
        double s = 0;
        for (int k = 0; k < RD; k++) s += (double)e.data[k] * dr[ND].data[k];
        leak = fmax(leak, fabs(s));
        cp_embeddings_free(&e);
    }
    CP_CHECK(leak == 0.0);
    for (int i = 0; i < NQ; i++) {
        cp_embeddings_free(&qp[i]);
        cp_embeddings_free(&qr[i]);
    }
    for (int i = 0; i <= ND; i++) {
        cp_embeddings_free(&dp[i]);
        cp_embeddings_free(&dr[i]);
    }
    cp_encoder_free(ep);
    cp_encoder_free(er);

    /* A bad rotation_seed in the config is a format error. */
    snprintf(path, sizeof path, "%s/colplaid-static.json", rotated);
    f = fopen(path, "wb");
    CP_CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"format\": \"colplaid-static\", \"dim\": %d, \"source_dim\": %d,"
               " \"vocab_size\": %d, \"rotation_seed\": -3}", RD, RS, RW);
    fclose(f);
    cp_encoder *bad = NULL;
    CP_CHECK(cp_encoder_load(rotated, NULL, &bad, &err) == CP_EFORMAT);
    CP_CHECK(strstr(err.message, "rotation_seed") != NULL);
    o.rotate = true;
    o.rotation_seed = (1ull << 53) + 1;
    CP_CHECK(cp_static_model_convert_opts(json, rotated, &o, &err) == CP_EINVAL);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cp_test_static_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    write_file("glove.json", glove_json);
    char json[512], model[512];
    snprintf(json, sizeof json, "%s/glove.json", tmpdir);
    snprintf(model, sizeof model, "%s/model", tmpdir);
    cp_error err;
    cp_static_convert_options o; /* unrotated: the checks below read the source coordinates */
    cp_static_convert_options_init(&o);
    o.rotate = false;
    CP_CHECK_OK(cp_static_model_convert_opts(json, model, &o, &err), err);
    test_files(model);
    test_mixing(model);
    test_empty_and_long(model);
    test_alpha_zero(model);
    test_bad_input(json);
    test_rotation_matrix();
    test_rotation_model();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", tmpdir);
    return CP_TEST_RESULT();
}
