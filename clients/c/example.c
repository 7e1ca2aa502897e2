/*
 * colplaid_client_example: every route of the C client from the command line.
 *
 *   colplaid_client_example [--url URL] [--key KEY] ACTION
 *   ACTION:
 *     --health
 *     --index NAME [--k K] [--text] [--passages] [--mode M]
 *         (--query TEXT | --embeddings FILE --dim D)                               search
 *     --index NAME --get ID                                                     a document
 *     --encode TEXT [--encode TEXT...] [--kind query|document]                  embeddings
 *     --rerank QUERY --doc TEXT [--doc TEXT...]                                 MaxSim scores
 *     --index NAME --upsert ID (--text TEXT | --embeddings FILE --dim D | both)
 *         [--metadata JSON] [--upsert ID ...]              (options after an --upsert apply to it)
 *     --index NAME (--delete ID [--delete ID...] | --delete-filter JSON)
 *
 * --embeddings FILE: raw little-endian float32 rows (n_tokens x D), sent as base64.
 * Output: search, one line per hit: rank<TAB>score<TAB>id[<TAB>start<TAB>end][<TAB>text]
 * (start/end with --passages: the best window's characters in a windowed index, -1 -1 for a
 * hit without one); get:
 * id<TAB>n_tokens<TAB>text; encode, per text a line "shape<TAB>T<TAB>D" then T lines of D
 * numbers; rerank, one line per document, best first: index<TAB>score; upsert: "upserted N
 * added A replaced R tokens T"; delete: "deleted N". Errors go to stderr as
 * "error: CODE (HTTP status): message" with exit status 1; bad usage exits 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colplaid_client.h"

#define MAX_ITEMS 64

static int usage(void)
{
    fprintf(stderr,
            "usage: colplaid_client_example [--url URL] [--key KEY] ACTION, ACTION one of\n"
            "  --health\n"
            "  --index NAME [--k K] [--text] [--passages] [--mode M]\n"
            "      (--query TEXT | --embeddings FILE.f32 --dim D)\n"
            "  --index NAME --get ID\n"
            "  --encode TEXT [--encode TEXT...] [--kind query|document]\n"
            "  --rerank QUERY --doc TEXT [--doc TEXT...]\n"
            "  --index NAME --upsert ID (--text TEXT | --embeddings FILE.f32 --dim D)"
            " [--metadata JSON] [--upsert ...]\n"
            "  --index NAME (--delete ID [--delete ID...] | --delete-filter JSON)\n");
    return 2;
}

static int report(const cpc_error *err)
{
    fprintf(stderr, "error: %s (HTTP %d): %s\n", err->code, err->status, err->message);
    return 1;
}

static float *read_f32(const char *path, int dim, int *n_tokens)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = NULL;
    if (size > 0 && dim > 0 && size % (4L * dim) == 0 && (v = malloc((size_t)size))) {
        if (fread(v, 1, (size_t)size, f) != (size_t)size) {
            free(v);
            v = NULL;
        }
        *n_tokens = (int)(size / (4L * dim));
    }
    fclose(f);
    return v;
}

/* One --upsert document as given on the command line. */
typedef struct doc_arg {
    const char *id, *text, *embeddings_path, *metadata;
    int dim;
} doc_arg;

/* The options of one run. */
typedef struct args {
    const char *url, *key, *index, *query, *emb_path, *get, *kind, *rerank, *delete_filter, *mode;
    int k, dim;
    bool text, health, passages;
    const char *encode[MAX_ITEMS], *docs[MAX_ITEMS], *deletes[MAX_ITEMS];
    size_t n_encode, n_docs, n_deletes, n_upserts;
    doc_arg upserts[MAX_ITEMS];
} args;

static bool add_item(const char **list, size_t *n, const char *v)
{
    if (*n == MAX_ITEMS) return false;
    list[(*n)++] = v;
    return true;
}

/* Parses argv into *a; false on bad usage. */
static bool parse_args(int argc, char **argv, args *a)
{
    *a = (args){.url = "http://127.0.0.1:8080", .k = 10, .kind = "query"};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        doc_arg *last = a->n_upserts ? &a->upserts[a->n_upserts - 1] : NULL;
        if (!strcmp(o, "--text") && !last) {
            a->text = true;
            continue;
        }
        if (!strcmp(o, "--health")) {
            a->health = true;
            continue;
        }
        if (!strcmp(o, "--passages")) {
            a->passages = true;
            continue;
        }
        if (i + 1 >= argc) return false;
        const char *v = argv[++i];
        if (!strcmp(o, "--url"))
            a->url = v;
        else if (!strcmp(o, "--key"))
            a->key = v;
        else if (!strcmp(o, "--index"))
            a->index = v;
        else if (!strcmp(o, "--k"))
            a->k = atoi(v);
        else if (!strcmp(o, "--query"))
            a->query = v;
        else if (!strcmp(o, "--mode"))
            a->mode = v;
        else if (!strcmp(o, "--get"))
            a->get = v;
        else if (!strcmp(o, "--kind"))
            a->kind = v;
        else if (!strcmp(o, "--rerank"))
            a->rerank = v;
        else if (!strcmp(o, "--delete-filter"))
            a->delete_filter = v;
        else if (!strcmp(o, "--encode")) {
            if (!add_item(a->encode, &a->n_encode, v)) return false;
        } else if (!strcmp(o, "--doc")) {
            if (!add_item(a->docs, &a->n_docs, v)) return false;
        } else if (!strcmp(o, "--delete")) {
            if (!add_item(a->deletes, &a->n_deletes, v)) return false;
        } else if (!strcmp(o, "--upsert")) {
            if (a->n_upserts == MAX_ITEMS) return false;
            a->upserts[a->n_upserts++] = (doc_arg){.id = v};
        } else if (!strcmp(o, "--text") && last)
            last->text = v;
        else if (!strcmp(o, "--metadata") && last)
            last->metadata = v;
        else if (!strcmp(o, "--embeddings"))
            *(last ? &last->embeddings_path : &a->emb_path) = v;
        else if (!strcmp(o, "--dim"))
            *(last ? &last->dim : &a->dim) = atoi(v);
        else
            return false;
    }
    int actions = a->health + !!a->query + !!a->emb_path + !!a->get + !!a->n_encode + !!a->rerank +
                  !!a->n_upserts + !!a->n_deletes + !!a->delete_filter;
    if (actions != 1) return false;
    if ((a->query || a->emb_path || a->get || a->n_upserts || a->n_deletes || a->delete_filter) &&
        !a->index)
        return false;
    return !a->rerank || a->n_docs;
}

static int do_search(cpc_client *c, const args *a, cpc_error *err)
{
    cpc_results r;
    int st;
    if (a->query) {
        st = cpc_search_text_mode(c, a->index, a->query, a->k, a->text, a->mode, &r, err);
    } else {
        int n = 0;
        float *v = read_f32(a->emb_path, a->dim, &n);
        if (!v) {
            fprintf(stderr, "error: cannot read %s as float32 rows of --dim %d\n", a->emb_path,
                    a->dim);
            return 1;
        }
        st = cpc_search_embeddings(c, a->index, v, n, a->dim, a->k, a->text, &r, err);
        free(v);
    }
    if (st) return report(err);
    for (size_t i = 0; i < r.n_hits; i++) {
        printf("%zu\t%.9g\t%s", i + 1, (double)r.hits[i].score, r.hits[i].id);
        if (a->passages) printf("\t%ld\t%ld", r.hits[i].passage_start, r.hits[i].passage_end);
        printf("%s%s\n", r.hits[i].text ? "\t" : "", r.hits[i].text ? r.hits[i].text : "");
    }
    cpc_results_free(&r);
    return 0;
}

static int do_encode(cpc_client *c, const args *a, cpc_error *err)
{
    cpc_embeddings *e;
    if (cpc_encode(c, a->encode, a->n_encode, a->kind, &e, err)) return report(err);
    for (size_t i = 0; i < a->n_encode; i++) {
        printf("shape\t%d\t%d\n", e[i].n_tokens, e[i].dim);
        for (int t = 0; t < e[i].n_tokens; t++)
            for (int d = 0; d < e[i].dim; d++)
                printf("%.9g%c", (double)e[i].data[(size_t)t * (size_t)e[i].dim + (size_t)d],
                       d + 1 < e[i].dim ? ' ' : '\n');
    }
    cpc_embeddings_free(e, a->n_encode);
    return 0;
}

static int do_rerank(cpc_client *c, const args *a, cpc_error *err)
{
    cpc_input query = {.text = a->rerank}, docs[MAX_ITEMS];
    for (size_t i = 0; i < a->n_docs; i++)
        docs[i] = (cpc_input){.text = a->docs[i]};
    cpc_ranked *r;
    if (cpc_rerank(c, &query, docs, a->n_docs, &r, err)) return report(err);
    for (size_t i = 0; i < a->n_docs; i++)
        printf("%zu\t%.9g\n", r[i].index, (double)r[i].score);
    free(r);
    return 0;
}

static int do_upsert(cpc_client *c, const args *a, cpc_error *err)
{
    cpc_write_document docs[MAX_ITEMS];
    float *vectors[MAX_ITEMS] = {0};
    int rc = 0;
    for (size_t i = 0; i < a->n_upserts && !rc; i++) {
        const doc_arg *d = &a->upserts[i];
        docs[i] = (cpc_write_document){
            .id = d->id, .content = {.text = d->text}, .metadata_json = d->metadata};
        if (d->embeddings_path) {
            vectors[i] = read_f32(d->embeddings_path, d->dim, &docs[i].content.n_tokens);
            if (!vectors[i]) {
                fprintf(stderr, "error: cannot read %s as float32 rows of --dim %d\n",
                        d->embeddings_path, d->dim);
                rc = 1;
            }
            docs[i].content.embeddings = vectors[i];
            docs[i].content.dim = d->dim;
        }
    }
    cpc_write_result w;
    if (!rc && cpc_upsert(c, a->index, docs, a->n_upserts, &w, err))
        rc = report(err);
    else if (!rc)
        printf("upserted %ld added %ld replaced %ld tokens %ld\n", w.upserted, w.added, w.replaced,
               w.tokens);
    for (size_t i = 0; i < a->n_upserts; i++)
        free(vectors[i]);
    return rc;
}

int main(int argc, char **argv)
{
    args a;
    if (!parse_args(argc, argv, &a)) return usage();
    cpc_client *c = cpc_client_new(a.url, a.key);
    if (!c) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    cpc_error err;
    int rc = 0;
    if (a.health) {
        char *json;
        if (cpc_health(c, &json, &err)) rc = report(&err);
        else printf("%s\n", json), free(json);
    } else if (a.get) {
        cpc_document d;
        if (cpc_get_document(c, a.index, a.get, &d, &err))
            rc = report(&err);
        else {
            printf("%s\t%d\t%s\n", d.id, d.n_tokens, d.text ? d.text : "");
            cpc_document_free(&d);
        }
    } else if (a.n_encode) {
        rc = do_encode(c, &a, &err);
    } else if (a.rerank) {
        rc = do_rerank(c, &a, &err);
    } else if (a.n_upserts) {
        rc = do_upsert(c, &a, &err);
    } else if (a.n_deletes || a.delete_filter) {
        cpc_write_result w;
        int st = a.delete_filter ? cpc_delete_filter(c, a.index, a.delete_filter, &w, &err)
                                 : cpc_delete_ids(c, a.index, a.deletes, a.n_deletes, &w, &err);
        if (st) rc = report(&err);
        else
            printf("deleted %ld\n", w.deleted);
    } else {
        rc = do_search(c, &a, &err);
    }
    cpc_client_free(c);
    return rc;
}
