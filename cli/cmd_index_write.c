/*
 * `colplaid index add|delete|compact`: the live-index writes from the command line
 * (docs/live-index.md), on top of cp_index_upsert / cp_index_delete* / cp_index_compact.
 *
 * add reads a text corpus (encoded with --model, which must be the index's model) or
 * precomputed embeddings, and upserts them in batches of --batch documents. Each batch is
 * one transaction; after it commits, one line "committed ..." goes to stdout, so a caller
 * (or the crash test) knows exactly which batches are durable even if the process dies
 * later. Progress and warnings go to stderr.
 *
 * Exit status: 0 success, 1 the operation failed (message on stderr), 2 bad usage or a
 * --model that is not the index's (model fingerprints).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cmd_index_write.h"
#include "cp_cpu.h"

static const char add_usage[] =
    "usage: colplaid index add --index IDX.db\n"
    "         (--corpus PATH --model MODEL | --embeddings EMB.npy --doclens DOCLENS.npy\n"
    "          [--ids IDS.txt]) [--batch N] [--threads N] [--allow-model-mismatch] [--quiet]\n"
    "\n"
    "Add documents to an index, replacing any live document with the same id.\n"
    "Each batch of N documents (default 4096) is one transaction, durable once its\n"
    "\"committed\" line is printed on stdout. --model must be the index's model (its\n"
    "fingerprint is checked: a mismatch exits 2); --allow-model-mismatch adds the texts\n"
    "encoded with it anyway, with a warning.\n";

static const char delete_usage[] =
    "usage: colplaid index delete --index IDX.db (--ids IDS.txt | --filter JSON) [--quiet]\n"
    "\n"
    "Delete documents by external id (one per line) or by metadata filter, in one\n"
    "transaction. Unknown ids are skipped and not counted.\n";

static const char compact_usage[] =
    "usage: colplaid index compact --index IDX.db [--quiet]\n"
    "\n"
    "Rewrite segments holding deleted documents (and merge small segments); ids do not\n"
    "change and searches keep running meanwhile.\n";

typedef struct write_args {
    const char *index, *corpus, *model, *embeddings, *doclens, *ids, *filter;
    int64_t batch, threads;
    bool quiet;
    bool allow_mismatch; /* --allow-model-mismatch */
} write_args;

static bool wants_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return true;
        }
    return false;
}

/* Parse "--name value" / "--name=value" options listed in names into targets. */
static int parse_args(const char *cmd, int argc, char **argv, write_args *a)
{
    const char *const names[] = {"--index", "--corpus", "--model", "--embeddings", "--doclens",
                                 "--ids", "--filter", "--batch", "--threads"};
    const char **targets[] = {&a->index, &a->corpus, &a->model, &a->embeddings, &a->doclens,
                              &a->ids, &a->filter, NULL, NULL};
    a->batch = 4096;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            a->quiet = true;
            continue;
        }
        if (!strcmp(argv[i], "--allow-model-mismatch")) {
            a->allow_mismatch = true;
            continue;
        }
        size_t k = 0, nn = sizeof names / sizeof names[0];
        size_t len = 0;
        for (; k < nn; k++) {
            len = strlen(names[k]);
            if (!strncmp(argv[i], names[k], len) && (argv[i][len] == 0 || argv[i][len] == '='))
                break;
        }
        if (k == nn) return cp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        const char *v = argv[i][len] == '=' ? argv[i] + len + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v || !*v) return cp_cli_usage_error(cmd, "%s needs a value", names[k]);
        if (targets[k]) {
            *targets[k] = v;
        } else if (!cp_cli_parse_int(v, k == 7 ? 1 : 0, k == 7 ? 1000000 : 1024,
                                     k == 7 ? &a->batch : &a->threads)) {
            return cp_cli_usage_error(cmd, "%s: '%s' is not a valid number", names[k], v);
        }
    }
    if (!a->index) return cp_cli_usage_error(cmd, "--index IDX.db is required");
    return 0;
}

/* ------------------------------------------------------------------------------------
 * add
 * --------------------------------------------------------------------------------- */

/* Documents copied out of the source (whose memory is only valid until its next call). */
typedef struct doc_batch {
    cp_document *docs;
    size_t n;
} doc_batch;

static void doc_batch_clear(doc_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free((char *)b->docs[i].id);
        free((char *)b->docs[i].text);
        free((char *)b->docs[i].metadata_json);
        free((float *)b->docs[i].embeddings);
        free((cp_window *)b->docs[i].windows);
    }
    b->n = 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static cp_status doc_batch_push(doc_batch *b, const cp_document *d, int dim, cp_error *err)
{
    cp_document *c = &b->docs[b->n];
    memset(c, 0, sizeof *c);
    size_t bytes = (size_t)(d->n_tokens > 0 ? d->n_tokens : 0) * (size_t)dim * sizeof(float);
    c->id = dup_or_null(d->id);
    c->text = dup_or_null(d->text);
    c->metadata_json = dup_or_null(d->metadata_json);
    float *e = malloc(bytes ? bytes : 1);
    if (e && bytes && d->embeddings) memcpy(e, d->embeddings, bytes);
    c->embeddings = e;
    c->n_tokens = d->n_tokens;
    cp_window *w = NULL; /* windowed documents (colplaid/window.h) */
    if (d->n_windows > 0 && (w = malloc((size_t)d->n_windows * sizeof *w)))
        memcpy(w, d->windows, (size_t)d->n_windows * sizeof *w);
    c->windows = w;
    c->n_windows = w ? d->n_windows : 0;
    b->n++;
    if (!e || (d->id && !c->id) || (d->text && !c->text) ||
        (d->metadata_json && !c->metadata_json) || (d->n_windows > 0 && !w))
        return cp_error_set(err, CP_ENOMEM, "out of memory reading documents");
    return CP_OK;
}

static cp_status flush_batch(cp_index *ix, doc_batch *b, int dim, int64_t *done, bool quiet,
                             cp_error *err)
{
    cp_upsert_result r;
    cp_status st = cp_index_upsert(ix, b->docs, b->n, dim, &r, err);
    if (st != CP_OK) {
        cp_error_prefix(err, "documents %lld..%lld", (long long)*done,
                        (long long)(*done + (int64_t)b->n - 1));
        return st;
    }
    *done += (int64_t)b->n;
    printf("committed %zu documents (%zu added, %zu replaced, %lld tokens; %lld in total)\n",
           b->n, r.n_added, r.n_replaced, (long long)r.n_tokens, (long long)*done);
    fflush(stdout);
    if (r.rebuild_advised && !quiet)
        fprintf(stderr, "colplaid index add: warning: many added tokens lie far from every "
                "centroid (%lld of %lld in this batch); a rebuild is advised for best quality\n",
                (long long)r.n_outlier_tokens, (long long)r.n_tokens);
    doc_batch_clear(b);
    return CP_OK;
}

static cp_status add_from_source(cp_index *ix, cp_doc_source *src, const write_args *a,
                                 cp_error *err)
{
    doc_batch b = {calloc((size_t)a->batch, sizeof(cp_document)), 0};
    if (!b.docs) return cp_error_set(err, CP_ENOMEM, "out of memory");
    int dim = src->dim(src->ctx);
    int64_t done = 0;
    cp_status st = CP_OK;
    for (bool has = true; st == CP_OK && has;) {
        cp_document d;
        st = src->next(src->ctx, true, &d, &has, err);
        if (st == CP_OK && has) st = doc_batch_push(&b, &d, dim, err);
        if (st == CP_OK && b.n > 0 && (b.n == (size_t)a->batch || !has))
            st = flush_batch(ix, &b, dim, &done, a->quiet, err);
    }
    if (st == CP_OK && done == 0 && !a->quiet)
        fprintf(stderr, "colplaid index add: the input has no documents\n");
    doc_batch_clear(&b);
    free(b.docs);
    return st;
}

static int run_add(const write_args *a)
{
    cp_error err = {0};
    cp_index *ix = NULL;
    cp_encoder *enc = NULL;
    cp_doc_source src = {0};
    int threads = a->threads > 0 ? (int)a->threads : cp_cpu_count();
    cp_status st = cp_index_open(a->index, CP_OPEN_WRITE, &ix, &err);
    if (st == CP_OK && a->corpus) {
        /* a text corpus must be encoded with the index's own model, at its dims */
        st = cp_cli_load_model_for_index("index add", a->model, threads, ix, a->allow_mismatch,
                                         &enc, &err);
        cp_window_options w; /* a windowed index: the windows it was built with */
        cp_index_windows(ix, &w, NULL);
        if (st == CP_OK) st = cp_text_source_open_windowed(a->corpus, enc, threads, &w, &src, &err);
    } else if (st == CP_OK) {
        st = cp_doc_source_npy_open(a->embeddings, a->doclens, a->ids, &src, &err);
    }
    if (st == CP_OK) st = add_from_source(ix, &src, a, &err);
    if (src.close) src.close(src.ctx);
    cp_encoder_free(enc);
    cp_index_close(ix);
    return st == CP_OK ? CP_EXIT_OK : cp_cli_report("index add", &err);
}

int cp_cmd_index_add(int argc, char **argv)
{
    if (wants_help(argc, argv, add_usage)) return CP_EXIT_OK;
    write_args a = {0};
    int rc = parse_args("index add", argc, argv, &a);
    if (rc) return rc;
    bool text = a.corpus || a.model, emb = a.embeddings || a.doclens;
    if (a.filter) return cp_cli_usage_error("index add", "--filter belongs to 'index delete'");
    if (text == emb || (text && a.ids))
        return cp_cli_usage_error("index add", "give either --corpus PATH --model MODEL, or "
                                  "--embeddings EMB.npy --doclens DOCLENS.npy [--ids IDS.txt]");
    if ((text && (!a.corpus || !a.model)) || (emb && (!a.embeddings || !a.doclens)))
        return cp_cli_usage_error("index add", "--corpus/--model and --embeddings/--doclens "
                                  "each go together");
    return run_add(&a);
}

/* ------------------------------------------------------------------------------------
 * delete
 * --------------------------------------------------------------------------------- */

/* IDS.txt: one id per line; blank lines are skipped, a trailing CR is dropped. */
static cp_status read_ids(const char *path, char ***ids, size_t *n, cp_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return cp_error_set(err, CP_ENOTFOUND, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, n_cap = 0;
    ssize_t len;
    cp_status st = CP_OK;
    *ids = NULL;
    *n = 0;
    while (st == CP_OK && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (*n == n_cap) {
            n_cap = n_cap ? n_cap * 2 : 256;
            char **nv = realloc(*ids, n_cap * sizeof *nv);
            if (!nv) {
                st = cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
                break;
            }
            *ids = nv;
        }
        if (!((*ids)[*n] = strdup(line))) st = cp_error_set(err, CP_ENOMEM, "out of memory");
        else (*n)++;
    }
    if (st == CP_OK && ferror(f)) st = cp_error_set(err, CP_EIO, "cannot read %s", path);
    free(line);
    fclose(f);
    return st;
}

int cp_cmd_index_delete(int argc, char **argv)
{
    if (wants_help(argc, argv, delete_usage)) return CP_EXIT_OK;
    write_args a = {0};
    int rc = parse_args("index delete", argc, argv, &a);
    if (rc) return rc;
    if (!a.ids == !a.filter)
        return cp_cli_usage_error("index delete", "give either --ids IDS.txt or --filter JSON");
    if (a.corpus || a.model || a.embeddings || a.doclens)
        return cp_cli_usage_error("index delete", "only --index with --ids or --filter");
    cp_error err = {0};
    cp_index *ix = NULL;
    char **ids = NULL;
    size_t n = 0, deleted = 0;
    cp_status st = a.ids ? read_ids(a.ids, &ids, &n, &err) : CP_OK;
    if (st == CP_OK) st = cp_index_open(a.index, CP_OPEN_WRITE, &ix, &err);
    if (st == CP_OK)
        st = a.ids ? cp_index_delete(ix, (const char *const *)ids, n, &deleted, &err)
                   : cp_index_delete_filter(ix, a.filter, &deleted, &err);
    if (st == CP_OK) {
        printf("committed: deleted %zu documents\n", deleted);
        if (a.ids && deleted < n && !a.quiet)
            fprintf(stderr, "colplaid index delete: %zu of the %zu ids were not in the index\n",
                    n - deleted, n);
    }
    cp_index_close(ix);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    return st == CP_OK ? CP_EXIT_OK : cp_cli_report("index delete", &err);
}

/* ------------------------------------------------------------------------------------
 * compact
 * --------------------------------------------------------------------------------- */

int cp_cmd_index_compact(int argc, char **argv)
{
    if (wants_help(argc, argv, compact_usage)) return CP_EXIT_OK;
    write_args a = {0};
    int rc = parse_args("index compact", argc, argv, &a);
    if (rc) return rc;
    if (a.corpus || a.model || a.embeddings || a.doclens || a.ids || a.filter)
        return cp_cli_usage_error("index compact", "only --index is accepted");
    cp_error err = {0};
    cp_index *ix = NULL;
    cp_compact_result r;
    cp_status st = cp_index_open(a.index, CP_OPEN_WRITE, &ix, &err);
    if (st == CP_OK) st = cp_index_compact(ix, a.quiet ? NULL : stderr, &r, &err);
    if (st == CP_OK)
        printf("committed: compacted %lld segments into %lld, removed %lld deleted documents\n",
               (long long)r.segments_before, (long long)r.segments_after,
               (long long)r.tombstones_removed);
    cp_index_close(ix);
    return st == CP_OK ? CP_EXIT_OK : cp_cli_report("index compact", &err);
}
