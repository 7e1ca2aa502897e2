/*
 * Token pooling at index time (issue 13 §2; docs/pooling.md).
 *
 * A document's token vectors are clustered hierarchically (agglomerative clustering on
 * cosine distance, Ward or average linkage) into ceil(n / factor) groups, and each group is
 * replaced by its renormalised mean. Queries are never pooled. Factor 1 is no pooling.
 *
 * The clustering is the nearest-neighbour chain algorithm over a full distance matrix with
 * Lance-Williams updates: O(n^2) time and memory per block of at most CP_POOL_BLOCK tokens
 * (longer documents are pooled block by block, consecutive tokens together). Both linkages
 * are reducible, so the chain's merges, sorted by height, are those of the textbook greedy
 * algorithm (up to ties), and the first n - k of them give the k-group cut.
 *
 * The factor and linkage of an index are recorded in meta "pooling" (index/storage.c readers
 * ignore unknown keys, so the format version is unchanged); upserts pool with them.
 */
#ifndef CP_POOL_H
#define CP_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colplaid/error.h"

#define CP_POOL_MAX_FACTOR 64
#define CP_POOL_BLOCK 1024

typedef enum { CP_POOL_WARD = 0, CP_POOL_AVERAGE = 1 } cp_pool_linkage;

/* One merge of the dendrogram: group a joined group b at height (step: emission order). */
typedef struct cp_pool_merge {
    float height;
    int32_t step, a, b;
} cp_pool_merge;

/* Scratch memory reused across documents (one per thread); zero-initialise it. */
typedef struct cp_pool_ws {
    float *dist; /* n x n */
    size_t dist_cap;
    int32_t *ints; /* sizes, live list, positions, chain, union-find; labels */
    size_t ints_cap;
    cp_pool_merge *merges;
    double *sums; /* group sums, k x dim */
    int32_t *labels;
    size_t merges_cap, sums_cap, labels_cap;
} cp_pool_ws;

void cp_pool_ws_free(cp_pool_ws *ws);

/* "ward" / "average" <-> the enum; parse returns false for anything else. */
bool cp_pool_linkage_parse(const char *name, cp_pool_linkage *out);
const char *cp_pool_linkage_name(cp_pool_linkage linkage);

/* Groups kept for n tokens: ceil(n / factor), at least 1 (n for factor <= 1). */
int32_t cp_pool_groups(int32_t n, int factor);

/*
 * Cluster the n rows of x (n x dim, L2-normalised; n <= CP_POOL_BLOCK) into k groups
 * (1 <= k <= n). labels[i] gets row i's group, numbered 0..k-1 in order of each group's
 * first row.
 */
cp_status cp_pool_cluster(cp_pool_ws *ws, const float *x, int32_t n, int dim, int32_t k,
                          cp_pool_linkage linkage, int32_t *labels, cp_error *err);

/*
 * Pool one document in place: x holds n L2-normalised rows of dim floats; on return its
 * first *n_out rows are the groups' renormalised means, in order of each group's first
 * token. Documents longer than CP_POOL_BLOCK are pooled one block at a time.
 */
cp_status cp_pool_document(cp_pool_ws *ws, float *x, int32_t n, int dim, int factor,
                           cp_pool_linkage linkage, int32_t *n_out, cp_error *err);

/* The meta "pooling" value: {"factor": F, "linkage": "ward"} (malloc'd), and its reader.
 * parse: absent text (NULL) means factor 1; false if the text is malformed. */
char *cp_pool_meta_json(int factor, cp_pool_linkage linkage);
bool cp_pool_meta_parse(const char *text, int *factor, cp_pool_linkage *linkage);

#endif
