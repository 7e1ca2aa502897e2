/*
 * colplaid_client_example: search a colplaid server from C.
 *
 *   colplaid_client_example [--url URL] [--key KEY] --index NAME [--k K] [--text]
 *       (--query TEXT | --embeddings FILE --dim D | --get ID | --health)
 *
 * --embeddings FILE: raw little-endian float32 rows (n_tokens x D), sent as base64.
 * Prints one line per hit: rank<TAB>score<TAB>id[<TAB>text]; errors go to stderr as
 * "error: CODE (HTTP status): message" with exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colplaid_client.h"

static int usage(void)
{
    fprintf(stderr, "usage: colplaid_client_example [--url URL] [--key KEY] --index NAME [--k K] [--text]\n"
                    "         (--query TEXT | --embeddings FILE.f32 --dim D | --get ID | --health)\n");
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

int main(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:8080", *key = NULL, *index = NULL, *query = NULL;
    const char *emb_path = NULL, *get = NULL;
    int k = 10, dim = 0;
    bool text = false, health = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--url") && has) url = argv[++i];
        else if (!strcmp(a, "--key") && has) key = argv[++i];
        else if (!strcmp(a, "--index") && has) index = argv[++i];
        else if (!strcmp(a, "--k") && has) k = atoi(argv[++i]);
        else if (!strcmp(a, "--query") && has) query = argv[++i];
        else if (!strcmp(a, "--embeddings") && has) emb_path = argv[++i];
        else if (!strcmp(a, "--dim") && has) dim = atoi(argv[++i]);
        else if (!strcmp(a, "--get") && has) get = argv[++i];
        else if (!strcmp(a, "--text")) text = true;
        else if (!strcmp(a, "--health")) health = true;
        else return usage();
    }
    if (!health && (!index || !!query + !!emb_path + !!get != 1)) return usage();
    cpc_client *c = cpc_client_new(url, key);
    if (!c) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    cpc_error err;
    int rc = 0;
    if (health) {
        char *json;
        if (cpc_health(c, &json, &err)) rc = report(&err);
        else printf("%s\n", json), free(json);
    } else if (get) {
        cpc_document d;
        if (cpc_get_document(c, index, get, &d, &err)) rc = report(&err);
        else {
            printf("%s\t%d\t%s\n", d.id, d.n_tokens, d.text ? d.text : "");
            cpc_document_free(&d);
        }
    } else {
        cpc_results r;
        int st;
        if (query) {
            st = cpc_search_text(c, index, query, k, text, &r, &err);
        } else {
            int n = 0;
            float *v = read_f32(emb_path, dim, &n);
            if (!v) {
                fprintf(stderr, "error: cannot read %s as float32 rows of --dim %d\n", emb_path, dim);
                cpc_client_free(c);
                return 1;
            }
            st = cpc_search_embeddings(c, index, v, n, dim, k, text, &r, &err);
            free(v);
        }
        if (st) rc = report(&err);
        else {
            for (size_t i = 0; i < r.n_hits; i++)
                printf("%zu\t%.9g\t%s%s%s\n", i + 1, (double)r.hits[i].score, r.hits[i].id,
                       r.hits[i].text ? "\t" : "", r.hits[i].text ? r.hits[i].text : "");
            cpc_results_free(&r);
        }
    }
    cpc_client_free(c);
    return rc;
}
