/*
 * gen_synthetic: a clustered synthetic ColBERT-like corpus for search benchmarks.
 *
 * Structure (so that retrieval is meaningful and PLAID's centroid pruning behaves as on
 * real data): T topics are random unit vectors; each topic has a pool of 24 "concepts"
 * (topic + noise, normalised), shared like words are shared between documents. A document
 * belongs to one topic and uses C concepts drawn from its topic's pool plus one concept of
 * another topic; each of its tokens is one of its concepts plus smaller noise, normalised,
 * and a few tokens per document come from a small pool of corpus-wide "function word"
 * vectors (as [CLS], [D] and stop words are in real ColBERT output). Documents sharing
 * more concepts are more similar, so rankings are graded well beyond the first hit. A
 * query is built from one source document: 32 tokens drawn from that document's concepts
 * with fresh noise (a paraphrase), plus a few function-word tokens, so the source
 * document is the known relevant answer.
 *
 * Writes into --out DIR:
 *   emb.npy      float16 [total_tokens, dim] (float32 with --fp32)
 *   doclens.npy  int32 [docs]
 *   queries.npy  float32 [queries, 32, dim]
 *   qrels.tsv    query-id, corpus-id (= source document row), score 1 (BEIR layout)
 *
 * --hard: the structure that makes real ColBERT output hard for PLAID's fixed defaults
 * (issue 11), instead of the concept pools above:
 *   - 300 function words (Zipfian) make up ~30% of every document's tokens, so every
 *     document shares them and their cells hold most of the collection;
 *   - a Zipfian vocabulary of --topics (default 1,500) x 32 words: each word sits near its
 *     topic (cosine ~0.7), topics themselves are Zipfian in popularity (s = 1.1; words
 *     within a topic s = 1.2), and each document
 *     mixes 1-3 topics; a document token is its word plus contextual noise;
 *   - a query paraphrases one target document: 6-16 of its content words (a quarter
 *     swapped for another word of the same topic, some for function words) with more noise
 *     than documents get, after [CLS]/[Q]-like rows;
 *   - the rest of the 32 query rows is padding ([MASK] augmentation): all close to one
 *     shared vector.
 *
 * usage: gen_synthetic --out DIR [--docs 100000] [--tokens 70] [--dim 128] [--topics 2000]
 *                      [--concepts 8] [--queries 1000] [--seed 1] [--fp32] [--hard]
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "colplaid/npy.h"

typedef struct gen_opts {
    const char *out;
    long docs, tokens, dim, topics, concepts, queries;
    uint64_t seed;
    int fp32, hard;
} gen_opts;

enum { N_FUNCTION = 48, FUNCTION_PER_DOC = 4, NQ = 32, FUNCTION_PER_QUERY = 3, POOL = 24 };

/* Noise scales: per-dimension sigma = norm / sqrt(dim) gives noise vectors of that norm. */
static const double CONCEPT_NOISE = 1.0, TOKEN_NOISE = 0.55, QUERY_NOISE = 0.6,
                    FUNCTION_NOISE = 0.2;

static uint64_t rng_state;

static inline uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double rng_uniform(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0;
}

/* Approximately standard normal: sum of 4 uniforms, centred and scaled (fast, smooth). */
static inline float rng_gauss(void)
{
    double s = rng_uniform() + rng_uniform() + rng_uniform() + rng_uniform() - 2.0;
    return (float)(s * 1.7320508075688772);
}

static void normalise(float *v, long d)
{
    double s = 0;
    for (long j = 0; j < d; j++)
        s += (double)v[j] * v[j];
    float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (long j = 0; j < d; j++)
        v[j] *= inv;
}

/* out = normalise(base + noise of the given norm). */
static void noisy(const float *base, long d, double noise_norm, float *out)
{
    float sigma = (float)(noise_norm / sqrt((double)d));
    for (long j = 0; j < d; j++)
        out[j] = (base ? base[j] : 0.0f) + sigma * rng_gauss();
    normalise(out, d);
}

/* IEEE float -> half, round to nearest even (values here are in [-1, 1]). */
static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
    int exp = (int)((x >> 23) & 0xff) - 127 + 15;
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - exp;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static int parse_args(int argc, char **argv, gen_opts *o)
{
    *o = (gen_opts){NULL, 100000, 70, 128, -1, 8, 1000, 1, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--fp32") || !strcmp(a, "--hard")) {
            *(!strcmp(a, "--fp32") ? &o->fp32 : &o->hard) = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gen_synthetic: %s needs a value\n", a);
            return 0;
        }
        const char *v = argv[++i];
        long n = strtol(v, NULL, 10);
        if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--docs"))
            o->docs = n;
        else if (!strcmp(a, "--tokens"))
            o->tokens = n;
        else if (!strcmp(a, "--dim"))
            o->dim = n;
        else if (!strcmp(a, "--topics"))
            o->topics = n;
        else if (!strcmp(a, "--concepts"))
            o->concepts = n;
        else if (!strcmp(a, "--queries"))
            o->queries = n;
        else if (!strcmp(a, "--seed"))
            o->seed = (uint64_t)n;
        else {
            fprintf(stderr, "gen_synthetic: unknown option %s\n", a);
            return 0;
        }
    }
    if (o->topics < 0) o->topics = o->hard ? 1500 : 2000;
    if (!o->out || o->docs < 1 || o->tokens < 2 || o->dim < 8 || o->dim % 8 || o->topics < 1 ||
        o->concepts < 1 || o->queries < 0) {
        fprintf(stderr, "usage: gen_synthetic --out DIR [--docs N] [--tokens L] [--dim D] "
                        "[--topics T] [--concepts C] [--queries Q] [--seed S] [--fp32] [--hard]\n");
        return 0;
    }
    return 1;
}

/* The concepts of document doc (deterministic from the seed and doc number, so queries can
 * regenerate them without keeping every document's concepts in memory). pools holds
 * POOL concepts per topic. */
static void doc_concepts(const gen_opts *o, const float *pools, long doc, float *concepts)
{
    uint64_t saved = rng_state;
    rng_state = o->seed * 0x100000001B3ull + (uint64_t)doc * 0x9E3779B97F4A7C15ull + 7;
    long topic = (long)(rng_next() % (uint64_t)o->topics);
    for (long c = 0; c < o->concepts; c++) {
        long t = c + 1 == o->concepts && o->concepts > 1 ? (long)(rng_next() % (uint64_t)o->topics)
                                                         : topic;
        long k = (long)(rng_next() % POOL);
        memcpy(concepts + c * o->dim, pools + (t * POOL + k) * o->dim,
               sizeof(float) * (size_t)o->dim);
    }
    rng_state = saved;
}

static long doc_length(const gen_opts *o)
{
    long lo = o->tokens / 2, span = o->tokens; /* uniform in [L/2, 3L/2) */
    return lo + (long)(rng_next() % (uint64_t)span);
}

static int write_docs(const gen_opts *o, const float *pools, const float *function, int32_t *lens,
                      int64_t total, cp_error *err)
{
    char path[4096];
    cp_npy_writer w;
    int64_t shape[2] = {total, o->dim};
    snprintf(path, sizeof path, "%s/emb.npy", o->out);
    if (cp_npy_write_begin(&w, path, o->fp32 ? "<f4" : "<f2", shape, 2, err) != CP_OK) return 0;
    float *concepts = malloc(sizeof(float) * (size_t)(o->concepts * o->dim));
    float *tok = malloc(sizeof(float) * (size_t)o->dim);
    uint16_t *half = malloc(sizeof(uint16_t) * (size_t)o->dim);
    int ok = concepts && tok && half;
    for (long d = 0; ok && d < o->docs; d++) {
        doc_concepts(o, pools, d, concepts);
        for (long t = 0; ok && t < lens[d]; t++) {
            if (t < FUNCTION_PER_DOC)
                noisy(function + (long)(rng_next() % N_FUNCTION) * o->dim, o->dim, FUNCTION_NOISE,
                      tok);
            else
                noisy(concepts + (long)(rng_next() % (uint64_t)o->concepts) * o->dim, o->dim,
                      TOKEN_NOISE, tok);
            if (o->fp32) {
                ok = cp_npy_write_data(&w, tok, sizeof(float) * (size_t)o->dim, err) == CP_OK;
            } else {
                for (long j = 0; j < o->dim; j++)
                    half[j] = float_to_half(tok[j]);
                ok = cp_npy_write_data(&w, half, sizeof(uint16_t) * (size_t)o->dim, err) == CP_OK;
            }
        }
    }
    free(concepts), free(tok), free(half);
    if (!ok) {
        cp_npy_write_abort(&w);
        return 0;
    }
    return cp_npy_write_end(&w, err) == CP_OK;
}

static int write_queries(const gen_opts *o, const float *pools, const float *function,
                         cp_error *err)
{
    char path[4096];
    cp_npy_writer w;
    int64_t shape[3] = {o->queries, NQ, o->dim};
    snprintf(path, sizeof path, "%s/queries.npy", o->out);
    if (cp_npy_write_begin(&w, path, "<f4", shape, 3, err) != CP_OK) return 0;
    snprintf(path, sizeof path, "%s/qrels.tsv", o->out);
    FILE *qrels = fopen(path, "w");
    float *concepts = malloc(sizeof(float) * (size_t)(o->concepts * o->dim));
    float *q = malloc(sizeof(float) * (size_t)(NQ * o->dim));
    int ok = qrels && concepts && q;
    if (qrels) fprintf(qrels, "query-id\tcorpus-id\tscore\n");
    for (long i = 0; ok && i < o->queries; i++) {
        long doc = (long)(rng_next() % (uint64_t)o->docs);
        doc_concepts(o, pools, doc, concepts);
        for (int t = 0; t < NQ; t++) {
            const float *base =
                t < FUNCTION_PER_QUERY
                    ? function + (long)(rng_next() % N_FUNCTION) * o->dim
                    : concepts + (long)(rng_next() % (uint64_t)o->concepts) * o->dim;
            noisy(base, o->dim, t < FUNCTION_PER_QUERY ? FUNCTION_NOISE : QUERY_NOISE,
                  q + t * o->dim);
        }
        ok = cp_npy_write_data(&w, q, sizeof(float) * (size_t)(NQ * o->dim), err) == CP_OK;
        fprintf(qrels, "%ld\t%ld\t1\n", i, doc);
    }
    free(concepts), free(q);
    if (qrels && fclose(qrels) != 0) ok = 0;
    if (!ok) {
        cp_npy_write_abort(&w);
        return 0;
    }
    return cp_npy_write_end(&w, err) == CP_OK;
}

/* ---------------------------------------------------------------------------------------
 * --hard mode
 * ------------------------------------------------------------------------------------ */

enum { HARD_FUNCTION = 300, HARD_WORDS_PER_TOPIC = 32, HARD_MAX_TOPICS_PER_DOC = 3 };

/* Hard-mode noise norms (per-vector, see noisy()) and mixing rates. */
/* Tuned (10k documents, seed 3, 50 queries) so that PLAID's fixed k=10 defaults find
 * about 0.58 of the exhaustive top-10, as on the collection (0.56): doc noise
 * 0.45 / query noise 0.95 / Zipf 0.8 topics and 1.0 words gave 0.75; noisier documents and
 * queries alone 0.66-0.72 (doc 0.8 / query 1.3 / padding 0.1 / paraphrase 0.5: 0.68); the
 * steeper Zipf laws below did most of it. */
static const double HARD_WORD_NOISE = 1.0, HARD_DOC_NOISE = 0.7, HARD_QUERY_NOISE = 1.2,
                    HARD_FUNCTION_NOISE = 0.35, HARD_PAD_NOISE = 0.2, HARD_FUNCTION_SHARE = 0.3,
                    HARD_PARAPHRASE = 0.35, HARD_QUERY_FUNCTION = 0.15;

/* Zipf exponents of topic popularity and of word frequency within a topic: popular topics
 * are shared by many documents that use the same few words, so their ranking rests on
 * detail that centroids do not keep. */
static const double HARD_TOPIC_ZIPF = 1.1, HARD_WORD_ZIPF = 1.2;

typedef struct hard_model {
    float *words;    /* topics x HARD_WORDS_PER_TOPIC x dim */
    float *function; /* HARD_FUNCTION x dim */
    float *pad;      /* dim: the shared [MASK]-like vector */
    double *topic_cdf, *word_cdf, *function_cdf;
} hard_model;

/* Cumulative Zipf(s) distribution over n ranks. */
static double *zipf_cdf(long n, double s)
{
    double *cdf = malloc(sizeof(double) * (size_t)n), sum = 0;
    if (!cdf) return NULL;
    for (long r = 0; r < n; r++)
        cdf[r] = sum += 1.0 / pow((double)(r + 1), s);
    for (long r = 0; r < n; r++)
        cdf[r] /= sum;
    return cdf;
}

static long zipf_draw(const double *cdf, long n, uint64_t *state)
{
    uint64_t saved = rng_state;
    rng_state = *state;
    double u = rng_uniform();
    *state = rng_state;
    rng_state = saved;
    long lo = 0, hi = n - 1;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint64_t draw_u64(uint64_t *state)
{
    uint64_t saved = rng_state;
    rng_state = *state;
    uint64_t v = rng_next();
    *state = rng_state;
    rng_state = saved;
    return v;
}

/* A document's words, from its own random stream (so a query can regenerate them):
 * word ids >= 0 are topic words (topic * HARD_WORDS_PER_TOPIC + rank), -1 - f is function
 * word f. Returns the length. */
static long hard_doc_words(const gen_opts *o, const hard_model *m, long doc, long *ids)
{
    uint64_t st = o->seed * 0x100000001B3ull + (uint64_t)doc * 0x9E3779B97F4A7C15ull + 11;
    long len = o->tokens / 2 + (long)(draw_u64(&st) % (uint64_t)o->tokens);
    int n_topics = 1 + (int)(draw_u64(&st) % HARD_MAX_TOPICS_PER_DOC);
    long topics[HARD_MAX_TOPICS_PER_DOC];
    for (int t = 0; t < n_topics; t++)
        topics[t] = zipf_draw(m->topic_cdf, o->topics, &st);
    for (long i = 0; i < len; i++) {
        double u = (double)(draw_u64(&st) >> 11) / 9007199254740992.0;
        if (u < HARD_FUNCTION_SHARE) {
            ids[i] = -1 - zipf_draw(m->function_cdf, HARD_FUNCTION, &st);
        } else {
            /* the first topic dominates: weights 1, 1/2, 1/3 */
            long t = topics[0];
            if (n_topics > 1) {
                uint64_t r = draw_u64(&st) % 6;
                t = r < 3 ? topics[0] : r < 5 || n_topics < 3 ? topics[1] : topics[2];
            }
            ids[i] = t * HARD_WORDS_PER_TOPIC + zipf_draw(m->word_cdf, HARD_WORDS_PER_TOPIC, &st);
        }
    }
    return len;
}

static const float *hard_word(const gen_opts *o, const hard_model *m, long id)
{
    return id >= 0 ? m->words + id * o->dim : m->function + (-1 - id) * o->dim;
}

static int hard_model_init(const gen_opts *o, hard_model *m)
{
    long d = o->dim;
    float *topics = malloc(sizeof(float) * (size_t)(o->topics * d));
    m->words = malloc(sizeof(float) * (size_t)(o->topics * HARD_WORDS_PER_TOPIC * d));
    m->function = malloc(sizeof(float) * (size_t)(HARD_FUNCTION * d));
    m->pad = malloc(sizeof(float) * (size_t)d);
    m->topic_cdf = zipf_cdf(o->topics, HARD_TOPIC_ZIPF);
    m->word_cdf = zipf_cdf(HARD_WORDS_PER_TOPIC, HARD_WORD_ZIPF);
    m->function_cdf = zipf_cdf(HARD_FUNCTION, 1.0);
    if (!topics || !m->words || !m->function || !m->pad || !m->topic_cdf || !m->word_cdf ||
        !m->function_cdf) {
        free(topics);
        return 0;
    }
    for (long t = 0; t < o->topics; t++)
        noisy(NULL, d, 1.0, topics + t * d);
    for (long w = 0; w < o->topics * HARD_WORDS_PER_TOPIC; w++)
        noisy(topics + (w / HARD_WORDS_PER_TOPIC) * d, d, HARD_WORD_NOISE, m->words + w * d);
    for (long f = 0; f < HARD_FUNCTION; f++)
        noisy(NULL, d, 1.0, m->function + f * d);
    /* [MASK] padding: one shared direction of its own (nearest to no word in particular),
     * so what the padding rows add to a document's score depends on fine detail of its
     * tokens that centroids do not keep */
    noisy(m->function, d, 2.0, m->pad);
    free(topics);
    return 1;
}

static void hard_model_free(hard_model *m)
{
    free(m->words), free(m->function), free(m->pad);
    free(m->topic_cdf), free(m->word_cdf), free(m->function_cdf);
}

static int write_token(const gen_opts *o, cp_npy_writer *w, const float *tok, uint16_t *half,
                       cp_error *err)
{
    if (o->fp32) return cp_npy_write_data(w, tok, sizeof(float) * (size_t)o->dim, err) == CP_OK;
    for (long j = 0; j < o->dim; j++)
        half[j] = float_to_half(tok[j]);
    return cp_npy_write_data(w, half, sizeof(uint16_t) * (size_t)o->dim, err) == CP_OK;
}

static int hard_write_docs(const gen_opts *o, const hard_model *m, int64_t total, cp_error *err)
{
    char path[4096];
    cp_npy_writer w;
    int64_t shape[2] = {total, o->dim};
    snprintf(path, sizeof path, "%s/emb.npy", o->out);
    if (cp_npy_write_begin(&w, path, o->fp32 ? "<f4" : "<f2", shape, 2, err) != CP_OK) return 0;
    long *ids = malloc(sizeof(long) * (size_t)(2 * o->tokens));
    float *tok = malloc(sizeof(float) * (size_t)o->dim);
    uint16_t *half = malloc(sizeof(uint16_t) * (size_t)o->dim);
    int ok = ids && tok && half;
    for (long d = 0; ok && d < o->docs; d++) {
        long len = hard_doc_words(o, m, d, ids);
        for (long t = 0; ok && t < len; t++) {
            noisy(hard_word(o, m, ids[t]), o->dim,
                  ids[t] >= 0 ? HARD_DOC_NOISE : HARD_FUNCTION_NOISE, tok);
            ok = write_token(o, &w, tok, half, err);
        }
    }
    free(ids), free(tok), free(half);
    if (!ok) {
        cp_npy_write_abort(&w);
        return 0;
    }
    return cp_npy_write_end(&w, err) == CP_OK;
}

static int hard_write_queries(const gen_opts *o, const hard_model *m, cp_error *err)
{
    char path[4096];
    cp_npy_writer w;
    int64_t shape[3] = {o->queries, NQ, o->dim};
    snprintf(path, sizeof path, "%s/queries.npy", o->out);
    if (cp_npy_write_begin(&w, path, "<f4", shape, 3, err) != CP_OK) return 0;
    snprintf(path, sizeof path, "%s/qrels.tsv", o->out);
    FILE *qrels = fopen(path, "w");
    long *ids = malloc(sizeof(long) * (size_t)(2 * o->tokens)),
         *content = malloc(sizeof(long) * (size_t)(2 * o->tokens));
    float *q = malloc(sizeof(float) * (size_t)(NQ * o->dim));
    int ok = qrels && ids && content && q;
    if (qrels) fprintf(qrels, "query-id\tcorpus-id\tscore\n");
    for (long i = 0; ok && i < o->queries; i++) {
        long doc = (long)(rng_next() % (uint64_t)o->docs), n_content = 0;
        long len = hard_doc_words(o, m, doc, ids);
        for (long t = 0; t < len; t++)
            if (ids[t] >= 0) content[n_content++] = ids[t];
        if (!n_content) content[n_content++] = ids[0];
        int words = 6 + (int)(rng_next() % 11), row = 0;
        /* [CLS] and [Q]: the two most frequent function words, lightly perturbed */
        for (; row < 2; row++)
            noisy(m->function + row * o->dim, o->dim, HARD_FUNCTION_NOISE, q + row * o->dim);
        for (; row < 2 + words; row++) {
            long id = content[rng_next() % (uint64_t)n_content];
            double u = rng_uniform();
            if (u < HARD_QUERY_FUNCTION)
                id = -1 - (long)(rng_next() % 40);
            else if (u < HARD_QUERY_FUNCTION + HARD_PARAPHRASE)
                id = id - id % HARD_WORDS_PER_TOPIC + (long)(rng_next() % HARD_WORDS_PER_TOPIC);
            noisy(hard_word(o, m, id), o->dim, id >= 0 ? HARD_QUERY_NOISE : HARD_FUNCTION_NOISE,
                  q + row * o->dim);
        }
        for (; row < NQ; row++)
            noisy(m->pad, o->dim, HARD_PAD_NOISE, q + row * o->dim);
        ok = cp_npy_write_data(&w, q, sizeof(float) * (size_t)(NQ * o->dim), err) == CP_OK;
        fprintf(qrels, "%ld\t%ld\t1\n", i, doc);
    }
    free(ids), free(content), free(q);
    if (qrels && fclose(qrels) != 0) ok = 0;
    if (!ok) {
        cp_npy_write_abort(&w);
        return 0;
    }
    return cp_npy_write_end(&w, err) == CP_OK;
}

static int write_doclens(const gen_opts *o, const int32_t *lens, cp_error *err)
{
    char path[4096];
    cp_npy_writer w;
    int64_t shape[1] = {o->docs};
    snprintf(path, sizeof path, "%s/doclens.npy", o->out);
    return cp_npy_write_begin(&w, path, "<i4", shape, 1, err) == CP_OK &&
           cp_npy_write_data(&w, lens, sizeof(int32_t) * (size_t)o->docs, err) == CP_OK &&
           cp_npy_write_end(&w, err) == CP_OK;
}

static int generate_hard(const gen_opts *o, int64_t *total, cp_error *err)
{
    hard_model m = {0};
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)o->docs);
    long *ids = malloc(sizeof(long) * (size_t)(2 * o->tokens));
    int ok = lens && ids && hard_model_init(o, &m);
    *total = 0;
    for (long d = 0; ok && d < o->docs; d++)
        *total += lens[d] = (int32_t)hard_doc_words(o, &m, d, ids);
    ok = ok && write_doclens(o, lens, err) && hard_write_docs(o, &m, *total, err) &&
         hard_write_queries(o, &m, err);
    hard_model_free(&m);
    free(lens), free(ids);
    return ok;
}

int main(int argc, char **argv)
{
    gen_opts o;
    if (!parse_args(argc, argv, &o)) return 2;
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_synthetic: cannot create %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    rng_state = o.seed;
    if (o.hard) {
        cp_error err = {0};
        int64_t total = 0;
        int ok = generate_hard(&o, &total, &err);
        if (!ok)
            fprintf(stderr, "gen_synthetic: %s\n", err.message[0] ? err.message : "write failed");
        else
            fprintf(stderr,
                    "gen_synthetic --hard: %ld docs, %lld tokens (%.1f per doc), dim %ld, %ld "
                    "topics, %ld queries -> %s\n",
                    o.docs, (long long)total, (double)total / (double)o.docs, o.dim, o.topics,
                    o.queries, o.out);
        return ok ? 0 : 1;
    }
    float *topics = malloc(sizeof(float) * (size_t)(o.topics * o.dim));
    float *function = malloc(sizeof(float) * (size_t)(N_FUNCTION * o.dim));
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)o.docs);
    if (!topics || !function || !lens) return 1;
    for (long t = 0; t < o.topics; t++)
        noisy(NULL, o.dim, 1.0, topics + t * o.dim);
    float *pools = malloc(sizeof(float) * (size_t)(o.topics * POOL * o.dim));
    if (!pools) return 1;
    for (long t = 0; t < o.topics; t++)
        for (long k = 0; k < POOL; k++)
            noisy(topics + t * o.dim, o.dim, CONCEPT_NOISE, pools + (t * POOL + k) * o.dim);
    for (long f = 0; f < N_FUNCTION; f++)
        noisy(NULL, o.dim, 1.0, function + f * o.dim);
    int64_t total = 0;
    for (long d = 0; d < o.docs; d++)
        total += lens[d] = (int32_t)doc_length(&o);
    cp_error err = {0};
    char path[4096];
    cp_npy_writer w;
    int64_t shape[1] = {o.docs};
    snprintf(path, sizeof path, "%s/doclens.npy", o.out);
    int ok = cp_npy_write_begin(&w, path, "<i4", shape, 1, &err) == CP_OK &&
             cp_npy_write_data(&w, lens, sizeof(int32_t) * (size_t)o.docs, &err) == CP_OK &&
             cp_npy_write_end(&w, &err) == CP_OK;
    ok = ok && write_docs(&o, pools, function, lens, total, &err) &&
         write_queries(&o, pools, function, &err);
    if (!ok)
        fprintf(stderr, "gen_synthetic: %s\n", err.message[0] ? err.message : "write failed");
    else
        fprintf(stderr,
                "gen_synthetic: %ld docs, %lld tokens (%.1f per doc), dim %ld, %ld queries -> %s\n",
                o.docs, (long long)total, (double)total / (double)o.docs, o.dim, o.queries, o.out);
    free(topics), free(pools), free(function), free(lens);
    return ok ? 0 : 1;
}
