/*
 * Evaluation metrics on hand-computed examples: graded nDCG@10 with the ideal DCG from the
 * qrels, Recall@10/@100, MRR@10, duplicates in a ranked list, queries without positive
 * judgements, qrels parsing (header, TREC four columns, errors naming the line).
 */
#include <string.h>
#include <unistd.h>

#include "colplaid/eval.h"
#include "cp_test.h"

static char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "/tmp/cp_test_eval_%d_%s", (int)getpid(), name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_metrics(void)
{
    char *path = write_file("q.tsv", "query-id\tcorpus-id\tscore\n"
                                     "q1\td1\t2\nq1\td2\t1\nq1\td3\t0\n"
                                     "q2\td9\t1\nq3\td5\t0\n");
    cp_qrels *q = NULL;
    cp_error err = {0};
    CP_CHECK_OK(cp_qrels_load(path, &q, &err), err);
    unlink(path);
    if (!q) return;
    CP_CHECK_INT(cp_qrels_query_count(q), 2);
    CP_CHECK(cp_qrels_has_query(q, "q1"));
    CP_CHECK(!cp_qrels_has_query(q, "q3")); /* only a zero judgement */
    CP_CHECK(!cp_qrels_has_query(q, "nope"));
    cp_eval_scores s;
    /* q1: d3 (0) d1 (2) dX d2 (1): DCG = 2/log2(3) + 1/log2(5); IDCG = 2/log2(2) + 1/log2(3) */
    const char *r1[] = {"d3", "d1", "dX", "d2"};
    cp_eval_query(q, "q1", r1, 4, &s);
    double dcg = 2 / log2(3.0) + 1 / log2(5.0), idcg = 2 + 1 / log2(3.0);
    CP_CHECK_NEAR(s.ndcg_at_10, dcg / idcg, 1e-12);
    CP_CHECK_NEAR(s.ndcg_at_10, 0.643322, 1e-6);
    CP_CHECK_NEAR(s.recall_at_10, 1.0, 1e-12);
    CP_CHECK_NEAR(s.recall_at_100, 1.0, 1e-12);
    CP_CHECK_NEAR(s.mrr_at_10, 0.5, 1e-12);
    /* perfect ranking: nDCG 1 */
    const char *r1b[] = {"d1", "d2"};
    cp_eval_query(q, "q1", r1b, 2, &s);
    CP_CHECK_NEAR(s.ndcg_at_10, 1.0, 1e-12);
    CP_CHECK_NEAR(s.mrr_at_10, 1.0, 1e-12);
    /* swapped grades: (1/1 + 2/log2(3)) / idcg */
    const char *r1c[] = {"d2", "d1"};
    cp_eval_query(q, "q1", r1c, 2, &s);
    CP_CHECK_NEAR(s.ndcg_at_10, (1 + 2 / log2(3.0)) / idcg, 1e-12);
    /* duplicates count once: d1 d1 d2 ranks d2 second */
    const char *r1d[] = {"d1", "d1", "d2"};
    cp_eval_query(q, "q1", r1d, 3, &s);
    CP_CHECK_NEAR(s.ndcg_at_10, 1.0, 1e-12);
    /* q2: its one relevant doc at rank 11 */
    const char *r2[12];
    char names[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "x%d", i);
        r2[i] = names[i];
    }
    r2[10] = "d9";
    cp_eval_query(q, "q2", r2, 12, &s);
    CP_CHECK_NEAR(s.ndcg_at_10, 0.0, 1e-12);
    CP_CHECK_NEAR(s.recall_at_10, 0.0, 1e-12);
    CP_CHECK_NEAR(s.recall_at_100, 1.0, 1e-12);
    CP_CHECK_NEAR(s.mrr_at_10, 0.0, 1e-12);
    r2[10] = "x10";
    r2[3] = "d9"; /* rank 4 */
    cp_eval_query(q, "q2", r2, 12, &s);
    CP_CHECK_NEAR(s.ndcg_at_10, 1 / log2(5.0), 1e-12);
    CP_CHECK_NEAR(s.mrr_at_10, 0.25, 1e-12);
    /* unknown query: all zero */
    cp_eval_query(q, "q3", r1, 4, &s);
    CP_CHECK(s.ndcg_at_10 == 0 && s.recall_at_10 == 0 && s.mrr_at_10 == 0);
    cp_qrels_free(q);
}

static void test_recall_partial(void)
{
    /* 4 relevant docs, 3 in the top 10, one more at rank 50 */
    char *path = write_file("r.tsv", "q 0 a 1\nq 0 b 1\nq 0 c 3\nq 0 d 1\n"); /* TREC layout */
    cp_qrels *q = NULL;
    cp_error err = {0};
    CP_CHECK_OK(cp_qrels_load(path, &q, &err), err);
    unlink(path);
    if (!q) return;
    const char *r[60];
    char names[60][8];
    for (int i = 0; i < 60; i++) {
        snprintf(names[i], sizeof names[i], "n%d", i);
        r[i] = names[i];
    }
    r[1] = "a", r[4] = "c", r[9] = "b", r[49] = "d";
    cp_eval_scores s;
    cp_eval_query(q, "q", r, 60, &s);
    CP_CHECK_NEAR(s.recall_at_10, 0.75, 1e-12);
    CP_CHECK_NEAR(s.recall_at_100, 1.0, 1e-12);
    CP_CHECK_NEAR(s.mrr_at_10, 0.5, 1e-12);
    double dcg = 1 / log2(3.0) + 3 / log2(6.0) + 1 / log2(11.0);
    double idcg = 3 + 1 / log2(3.0) + 1 / log2(4.0) + 1 / log2(5.0);
    CP_CHECK_NEAR(s.ndcg_at_10, dcg / idcg, 1e-12);
    cp_qrels_free(q);
}

static void test_errors(void)
{
    cp_qrels *q = NULL;
    cp_error err = {0};
    CP_CHECK_INT(cp_qrels_load("/nonexistent/qrels.tsv", &q, &err), CP_ENOTFOUND);
    CP_CHECK(strstr(err.message, "/nonexistent/qrels.tsv") != NULL);
    char *path = write_file("bad.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\thigh\n");
    CP_CHECK_INT(cp_qrels_load(path, &q, &err), CP_EFORMAT);
    CP_CHECK(strstr(err.message, "line 3") != NULL);
    CP_CHECK(q == NULL);
    path = write_file("bad2.tsv", "q1\td1\n");
    CP_CHECK_INT(cp_qrels_load(path, &q, &err), CP_EFORMAT);
    CP_CHECK(strstr(err.message, "line 1") != NULL);
    unlink(path);
}

int main(void)
{
    test_metrics();
    test_recall_partial();
    test_errors();
    return CP_TEST_RESULT();
}
