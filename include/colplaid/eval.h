/*
 * colplaid evaluation (eval/eval.c): retrieval quality metrics with BEIR's conventions
 * (nDCG@10, Recall@10/100, MRR@10) against a qrels file. Independent of the index: a
 * ranked list is external document ids, best first.
 *
 * Thread safety: a loaded cp_qrels is read-only; any number of threads may score with it.
 */
#ifndef COLPLAID_EVAL_H
#define COLPLAID_EVAL_H

#include <stdbool.h>
#include <stddef.h>

#include "colplaid/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp_qrels cp_qrels;

/* Load a BEIR qrels TSV (query-id, corpus-id, score; optional header line). */
cp_status cp_qrels_load(const char *path, cp_qrels **out, cp_error *err);
void cp_qrels_free(cp_qrels *qrels);
/* Number of queries with at least one positive judgement. */
size_t cp_qrels_query_count(const cp_qrels *qrels);
/* Whether query_id has judgements (queries without any are skipped in evaluation). */
bool cp_qrels_has_query(const cp_qrels *qrels, const char *query_id);

typedef struct cp_eval_scores {
    double ndcg_at_10, recall_at_10, recall_at_100, mrr_at_10;
} cp_eval_scores;

/* Scores of one ranked list (external doc ids, best first) for query_id. */
void cp_eval_query(const cp_qrels *qrels, const char *query_id, const char *const *ranked_ids,
                   size_t n_ranked, cp_eval_scores *out);

#ifdef __cplusplus
}
#endif

#endif
