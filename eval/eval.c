/*
 * Retrieval quality metrics with BEIR's conventions (pytrec_eval / trec_eval definitions):
 *
 *   nDCG@10    DCG = sum over ranks r = 1..10 of gain(doc_r) / log2(r + 1), gain = the graded
 *              relevance (judgements <= 0 gain nothing); ideal DCG from the query's own
 *              judgements sorted descending; 0 when the query has no positive judgement.
 *   Recall@k   |relevant docs in the top k| / |relevant docs|, relevant = relevance >= 1.
 *   MRR@10     1 / rank of the first relevant doc in the top 10, else 0.
 * A doc id repeated in a ranked list counts once (at its first rank).
 *
 * Qrels: BEIR TSV "query-id<TAB>corpus-id<TAB>score" with an optional header line; TREC's
 * four-column "qid 0 docid rel" is accepted as well. Judgements are kept per query, the queries
 * indexed by id in a cp_strtab.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colplaid/eval.h"
#include "cp_strtab.h"

typedef struct judgement {
    char *doc;
    int rel;
} judgement;

typedef struct qrel_query {
    char *id;
    judgement *j;
    size_t n, cap;
    int n_positive;
} qrel_query;

struct cp_qrels {
    qrel_query *queries; /* in order of first appearance */
    size_t n, cap;
    cp_strtab index; /* query id -> row of queries */
};

static const char *query_id_of(const void *qrels, int32_t row)
{
    return ((const cp_qrels *)qrels)->queries[row].id;
}

/* The query named id, added (with no judgements) when new; NULL when out of memory. */
static qrel_query *query_slot(cp_qrels *q, const char *id)
{
    int32_t row = cp_strtab_find(&q->index, id, query_id_of, q);
    if (row >= 0) return &q->queries[row];
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        qrel_query *queries = realloc(q->queries, cap * sizeof *queries);
        if (!queries) return NULL;
        q->queries = queries;
        q->cap = cap;
    }
    if (!cp_strtab_reserve(&q->index, 1, query_id_of, q)) return NULL;
    qrel_query *e = &q->queries[q->n];
    memset(e, 0, sizeof *e);
    if (!(e->id = strdup(id))) return NULL;
    cp_strtab_insert(&q->index, id, (int32_t)q->n);
    q->n++;
    return e;
}

static int add_judgement(cp_qrels *q, const char *qid, const char *doc, int rel)
{
    qrel_query *e = query_slot(q, qid);
    if (!e) return 0;
    for (size_t i = 0; i < e->n; i++) /* a repeated pair: the last judgement wins */
        if (!strcmp(e->j[i].doc, doc)) {
            e->n_positive += (rel > 0) - (e->j[i].rel > 0);
            e->j[i].rel = rel;
            return 1;
        }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 4;
        judgement *j = realloc(e->j, cap * sizeof *j);
        if (!j) return 0;
        e->j = j, e->cap = cap;
    }
    if (!(e->j[e->n].doc = strdup(doc))) return 0;
    e->j[e->n++].rel = rel;
    e->n_positive += rel > 0;
    return 1;
}

/* Split line in place on tabs/spaces; returns the field count (at most max). */
static int split_fields(char *line, char **f, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, "\t \r\n", &save); t; t = strtok_r(NULL, "\t \r\n", &save)) {
        if (n == max) return max + 1;
        f[n++] = t;
    }
    return n;
}

static int parse_rel(const char *s, int *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end); /* some qrels write "1.0" */
    if (errno || *end || !isfinite(v) || v != floor(v) || fabs(v) > 1e6) return 0;
    *out = (int)v;
    return 1;
}

static cp_status parse_line(cp_qrels *q, char *line, const char *path, long lineno, cp_error *err)
{
    char *f[5];
    int n = split_fields(line, f, 4);
    if (n == 0) return CP_OK; /* blank line */
    if (n != 3 && n != 4)
        return cp_error_set(err, CP_EFORMAT,
                            "%s line %ld: expected 3 tab-separated fields (query-id, corpus-id, "
                            "score), found %d",
                            path, lineno, n);
    const char *qid = f[0], *doc = n == 4 ? f[2] : f[1], *rel_s = n == 4 ? f[3] : f[2];
    int rel;
    if (!parse_rel(rel_s, &rel)) {
        if (lineno == 1) return CP_OK; /* the header "query-id corpus-id score" */
        return cp_error_set(err, CP_EFORMAT, "%s line %ld: score \"%s\" is not an integer", path,
                            lineno, rel_s);
    }
    if (!add_judgement(q, qid, doc, rel))
        return cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
    return CP_OK;
}

cp_status cp_qrels_load(const char *path, cp_qrels **out, cp_error *err)
{
    *out = NULL;
    FILE *fp = fopen(path, "r");
    if (!fp)
        return cp_error_set(err, errno == ENOENT ? CP_ENOTFOUND : CP_EIO, "cannot open qrels %s: %s",
                            path, strerror(errno));
    cp_qrels *q = calloc(1, sizeof *q);
    cp_status st = q ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (st == CP_OK && getline(&line, &cap, fp) >= 0) st = parse_line(q, line, path, ++lineno, err);
    if (st == CP_OK && ferror(fp)) st = cp_error_set(err, CP_EIO, "error reading %s", path);
    free(line);
    fclose(fp);
    if (st != CP_OK) {
        cp_qrels_free(q);
        return st;
    }
    *out = q;
    return CP_OK;
}

void cp_qrels_free(cp_qrels *qrels)
{
    if (!qrels) return;
    for (size_t i = 0; i < qrels->n; i++) {
        qrel_query *e = &qrels->queries[i];
        for (size_t j = 0; j < e->n; j++) free(e->j[j].doc);
        free(e->j);
        free(e->id);
    }
    free(qrels->queries);
    cp_strtab_free(&qrels->index);
    free(qrels);
}

size_t cp_qrels_query_count(const cp_qrels *qrels)
{
    size_t n = 0;
    for (size_t i = 0; qrels && i < qrels->n; i++)
        n += qrels->queries[i].n_positive > 0;
    return n;
}

static const qrel_query *lookup(const cp_qrels *qrels, const char *query_id)
{
    if (!qrels || !query_id) return NULL;
    int32_t row = cp_strtab_find(&qrels->index, query_id, query_id_of, qrels);
    return row >= 0 ? &qrels->queries[row] : NULL;
}

bool cp_qrels_has_query(const cp_qrels *qrels, const char *query_id)
{
    const qrel_query *e = lookup(qrels, query_id);
    return e && e->n_positive > 0;
}

static int rel_of(const qrel_query *e, const char *doc)
{
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->j[i].doc, doc)) return e->j[i].rel;
    return 0;
}

static int cmp_int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

static double ideal_dcg10(const qrel_query *e)
{
    int rels[10];
    int *all = malloc((e->n ? e->n : 1) * sizeof *all);
    if (!all) return 0.0;
    for (size_t i = 0; i < e->n; i++) all[i] = e->j[i].rel;
    qsort(all, e->n, sizeof *all, cmp_int_desc);
    size_t n = e->n < 10 ? e->n : 10;
    memcpy(rels, all, n * sizeof *all);
    free(all);
    double dcg = 0.0;
    for (size_t r = 0; r < n; r++)
        if (rels[r] > 0) dcg += rels[r] / log2((double)r + 2.0);
    return dcg;
}

static bool seen_before(const char *const *ranked, size_t r)
{
    for (size_t i = 0; i < r; i++)
        if (ranked[i] && !strcmp(ranked[i], ranked[r])) return true;
    return false;
}

void cp_eval_query(const cp_qrels *qrels, const char *query_id, const char *const *ranked_ids,
                   size_t n_ranked, cp_eval_scores *out)
{
    memset(out, 0, sizeof *out);
    const qrel_query *e = lookup(qrels, query_id);
    if (!e || e->n_positive == 0) return;
    double dcg = 0.0;
    int hits10 = 0, hits100 = 0;
    size_t rank = 0; /* ranks of distinct docs */
    for (size_t r = 0; r < n_ranked && rank < 100; r++) {
        if (!ranked_ids[r] || seen_before(ranked_ids, r)) continue;
        int rel = rel_of(e, ranked_ids[r]);
        rank++;
        if (rel > 0) {
            if (rank <= 10) {
                dcg += rel / log2((double)rank + 1.0);
                hits10++;
                if (out->mrr_at_10 == 0.0) out->mrr_at_10 = 1.0 / (double)rank;
            }
            hits100++;
        }
    }
    double idcg = ideal_dcg10(e);
    out->ndcg_at_10 = idcg > 0 ? dcg / idcg : 0.0;
    out->recall_at_10 = (double)hits10 / e->n_positive;
    out->recall_at_100 = (double)hits100 / e->n_positive;
}
