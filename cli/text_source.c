/*
 * A cp_doc_source over a text corpus (cp_corpus), encoding documents with an encoder:
 * the bridge between `colplaid index build|add --corpus` and the encoder.
 *
 * Records are read in batches (their strings copied, since the corpus reuses its buffers)
 * and encoded only when the builder asks for embeddings. The document text given to the
 * encoder, and stored, is "title text" (just text when there is no title).
 *
 * Parallelism: the builder pulls one document at a time, so when it asks for embeddings
 * twice in a row (the indexing pass, or a dense sample) the rest of the batch is encoded
 * at once: split across `threads` threads for the static model (one call uses one core), or
 * handed to the encoder as one batch for BERT (which parallelises inside one call). A lone
 * request (sparse sampling of a big corpus) encodes just that document, so unsampled
 * documents cost nothing but reading.
 *
 * The count is left to the builder's counting pass (count() returns -1).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "colplaid/corpus.h"
#include "cp_cpu.h"

#define TS_BATCH_PER_THREAD 32

typedef struct ts_record {
    char *id, *text, *metadata;
    int64_t line;
    bool encoded;
    cp_embeddings emb;
    cp_window *windows; /* windowed sources: the record's windows */
    int32_t n_windows;
} ts_record;

typedef struct text_source {
    cp_corpus *corpus;
    cp_encoder *enc;
    int threads;
    bool parallel_calls; /* the encoder uses one core per call: parallelise across calls */
    cp_window_options window; /* window 0: documents are encoded whole (truncated) */
    ts_record *batch;
    size_t n, cap, pos; /* pos: next record to hand out */
    bool eof, last_needed;
    /* cp_text_source_keep_shard: records of other shards are skipped as they are read,
     * before any encoding (shard_count 0: none is) */
    uint32_t shard_index, shard_count;
} text_source;

static void free_record(ts_record *r)
{
    free(r->id);
    free(r->text);
    free(r->metadata);
    free(r->windows);
    cp_embeddings_free(&r->emb);
    memset(r, 0, sizeof *r);
}

static void clear_batch(text_source *s)
{
    for (size_t i = 0; i < s->n; i++) free_record(&s->batch[i]);
    s->n = s->pos = 0;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static cp_status copy_record(const cp_corpus_record *rec, ts_record *r, cp_error *err)
{
    memset(r, 0, sizeof *r);
    r->line = rec->line;
    r->id = strdup(rec->id);
    r->metadata = dup_or_null(rec->metadata_json);
    if (rec->title && rec->title[0]) {
        size_t a = strlen(rec->title), b = strlen(rec->text);
        r->text = malloc(a + b + 2);
        if (r->text) {
            memcpy(r->text, rec->title, a);
            r->text[a] = ' ';
            memcpy(r->text + a + 1, rec->text, b + 1);
        }
    } else {
        r->text = strdup(rec->text);
    }
    if (!r->id || !r->text || (rec->metadata_json && !r->metadata)) {
        free_record(r);
        return cp_error_set(err, CP_ENOMEM, "out of memory reading the corpus");
    }
    return CP_OK;
}

static cp_status refill(text_source *s, cp_error *err)
{
    clear_batch(s);
    while (!s->eof && s->n < s->cap) {
        cp_corpus_record rec;
        bool has = false;
        cp_status st = cp_corpus_next(s->corpus, &rec, &has, err);
        if (st != CP_OK) return st;
        if (!has) {
            s->eof = true;
            break;
        }
        if (s->shard_count > 1 && rec.id && rec.id[0] &&
            cp_shard_of(rec.id, s->shard_count) != s->shard_index)
            continue;
        if ((st = copy_record(&rec, &s->batch[s->n], err)) != CP_OK) return st;
        s->n++;
    }
    return CP_OK;
}

/* ---- encoding ---------------------------------------------------------------------------- */

typedef struct ts_job {
    text_source *s;
    size_t from, to; /* batch records */
    cp_status st;
    cp_error err;
} ts_job;

/* Encode records [from, to) one call per record, so an error names the document. */
static void *encode_range(void *arg)
{
    ts_job *j = arg;
    for (size_t i = j->from; i < j->to && j->st == CP_OK; i++) {
        ts_record *r = &j->s->batch[i];
        const char *t = r->text;
        if (j->s->window.window > 0)
            j->st = cp_encoder_encode_windows(j->s->enc, t, &j->s->window, &r->emb, &r->windows,
                                              &r->n_windows, &j->err);
        else
            j->st = cp_encoder_encode(j->s->enc, CP_TEXT_DOCUMENT, &t, 1, &r->emb, &j->err);
        if (j->st == CP_OK) r->encoded = true;
        else cp_error_prefix(&j->err, "%s line %lld (document \"%s\")", cp_corpus_path(j->s->corpus),
                             (long long)r->line, r->id);
    }
    return NULL;
}

static cp_status encode_parallel(text_source *s, size_t from, size_t to, cp_error *err)
{
    size_t n = to - from, nt = (size_t)s->threads;
    if (nt > n) nt = n;
    if (nt > 64) nt = 64;
    ts_job jobs[64];
    pthread_t tids[64];
    bool started[64] = {false};
    for (size_t t = 0; t < nt; t++)
        jobs[t] = (ts_job){s, from + n * t / nt, from + n * (t + 1) / nt, CP_OK, {0}};
    for (size_t t = 1; t < nt; t++)
        started[t] = pthread_create(&tids[t], NULL, encode_range, &jobs[t]) == 0;
    encode_range(&jobs[0]);
    for (size_t t = 1; t < nt; t++) {
        if (started[t]) pthread_join(tids[t], NULL);
        else encode_range(&jobs[t]); /* no thread could be started: do it here */
    }
    for (size_t t = 0; t < nt; t++)
        if (jobs[t].st != CP_OK) {
            if (err) *err = jobs[t].err;
            return jobs[t].st;
        }
    return CP_OK;
}

/* Encode records [from, to) as one encoder call (the encoder parallelises inside). */
static cp_status encode_batch_call(text_source *s, size_t from, size_t to, cp_error *err)
{
    size_t n = to - from;
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    cp_embeddings *out = calloc(n, sizeof *out);
    cp_status st = (!texts || !out) ? cp_error_set(err, CP_ENOMEM, "out of memory encoding") : CP_OK;
    for (size_t i = 0; st == CP_OK && i < n; i++) texts[i] = s->batch[from + i].text;
    if (st == CP_OK) st = cp_encoder_encode(s->enc, CP_TEXT_DOCUMENT, texts, n, out, err);
    if (st == CP_OK)
        for (size_t i = 0; i < n; i++) {
            s->batch[from + i].emb = out[i];
            s->batch[from + i].encoded = true;
        }
    else if (n > 1) /* find which document failed, with its line number */
        st = encode_parallel(s, from, to, err);
    free(texts);
    free(out);
    return st;
}

static cp_status ensure_encoded(text_source *s, size_t i, bool dense, cp_error *err)
{
    if (s->batch[i].encoded) return CP_OK;
    size_t to = dense ? s->n : i + 1;
    while (to > i + 1 && s->batch[to - 1].encoded) to--;
    if (s->parallel_calls && to - i > 1) return encode_parallel(s, i, to, err);
    if (!s->parallel_calls && !s->window.window) return encode_batch_call(s, i, to, err);
    ts_job j = {s, i, i + 1, CP_OK, {0}};
    encode_range(&j);
    if (j.st != CP_OK && err) *err = j.err;
    return j.st;
}

/* ---- the cp_doc_source vtable ----------------------------------------------------------- */

static int64_t ts_count(void *ctx)
{
    (void)ctx;
    return -1;
}

static int ts_dim(void *ctx) { return cp_encoder_dim(((text_source *)ctx)->enc); }

static cp_status ts_rewind(void *ctx, cp_error *err)
{
    text_source *s = ctx;
    clear_batch(s);
    s->eof = false;
    s->last_needed = false;
    return cp_corpus_rewind(s->corpus, err);
}

static cp_status ts_next(void *ctx, bool need_embeddings, cp_document *doc, bool *has,
                         cp_error *err)
{
    text_source *s = ctx;
    if (s->pos == s->n) {
        cp_status st = refill(s, err);
        if (st != CP_OK) return st;
        if (s->n == 0) {
            *has = false;
            return CP_OK;
        }
    }
    size_t i = s->pos++;
    ts_record *r = &s->batch[i];
    if (i > 0) { /* the builder is done with the previous document */
        cp_embeddings_free(&s->batch[i - 1].emb);
        free(s->batch[i - 1].windows);
        s->batch[i - 1].windows = NULL;
        s->batch[i - 1].n_windows = 0;
        s->batch[i - 1].encoded = false;
    }
    memset(doc, 0, sizeof *doc);
    doc->id = r->id;
    doc->text = r->text;
    doc->metadata_json = r->metadata;
    doc->n_tokens = -1;
    if (need_embeddings) {
        cp_status st = ensure_encoded(s, i, s->last_needed, err);
        if (st != CP_OK) return st;
        doc->embeddings = r->emb.data;
        doc->n_tokens = r->emb.n_tokens;
    } else if (r->encoded) {
        doc->embeddings = r->emb.data;
        doc->n_tokens = r->emb.n_tokens;
    }
    if (r->encoded) {
        doc->windows = r->windows;
        doc->n_windows = r->n_windows;
    }
    s->last_needed = need_embeddings;
    *has = true;
    return CP_OK;
}

static const char *ts_name(void *ctx) { return cp_corpus_path(((text_source *)ctx)->corpus); }

static void ts_close(void *ctx)
{
    text_source *s = ctx;
    if (!s) return;
    clear_batch(s);
    free(s->batch);
    cp_corpus_close(s->corpus);
    free(s);
}

cp_status cp_text_source_open(const char *corpus_path, cp_encoder *enc, int threads,
                              cp_doc_source *out, cp_error *err)
{
    return cp_text_source_open_windowed(corpus_path, enc, threads, NULL, out, err);
}

cp_status cp_text_source_open_windowed(const char *corpus_path, cp_encoder *enc, int threads,
                                       const cp_window_options *window, cp_doc_source *out,
                                       cp_error *err)
{
    if (window && window->window > 0) {
        cp_status wst = cp_encoder_check_window(enc, window, err);
        if (wst != CP_OK) return wst;
    }
    text_source *s = calloc(1, sizeof *s);
    if (!s) return cp_error_set(err, CP_ENOMEM, "out of memory opening %s", corpus_path);
    s->enc = enc;
    if (window && window->window > 0) s->window = *window;
    s->threads = threads > 0 ? threads : cp_cpu_count();
    if (s->threads > 64) s->threads = 64;
    /* The static model computes one text on one core; BERT batches internally. */
    s->parallel_calls = strstr(cp_encoder_fingerprint(enc), "\"kind\":\"static\"") != NULL;
    s->cap = (size_t)TS_BATCH_PER_THREAD * (size_t)s->threads;
    s->batch = calloc(s->cap, sizeof *s->batch);
    cp_status st = s->batch ? cp_corpus_open(corpus_path, &s->corpus, err)
                            : cp_error_set(err, CP_ENOMEM, "out of memory opening %s", corpus_path);
    if (st != CP_OK) {
        free(s->batch);
        free(s);
        return st;
    }
    *out = (cp_doc_source){.ctx = s, .count = ts_count, .dim = ts_dim, .rewind = ts_rewind,
                           .next = ts_next, .name = ts_name, .close = ts_close};
    return CP_OK;
}

void cp_text_source_keep_shard(cp_doc_source *src, uint32_t index, uint32_t count)
{
    text_source *s = src->ctx;
    s->shard_index = index;
    s->shard_count = count;
}
