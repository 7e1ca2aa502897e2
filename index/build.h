/*
 * Index build (index/build.c; the public entry is cp_index_build): what the rest of index/
 * shares with it: the k-means sample size and the validation of one input document, which
 * live writes apply with the builder's rules.
 */
#ifndef CP_BUILD_H
#define CP_BUILD_H

#include <stdint.h>

#include "colplaid/index.h"

/* PLAID.md 1.2: documents sampled for k-means, min(1 + floor(16 sqrt(120 n)), n)
 * (index/build.c). */
int64_t cp_build_sample_size(int64_t n_docs);

/* Validate one document (non-empty id, >= 1 token) and copy its vectors L2-normalised into
 * out (n_tokens x dim); NaN/Inf or all-zero rows are CP_EINVAL (the builder's rules,
 * index/build.c). src names the input in messages. */
cp_status cp_doc_normalise(const cp_document *doc, int dim, const char *src, int64_t ordinal,
                           float *out, cp_error *err);

#endif
