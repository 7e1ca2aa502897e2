/*
 * Centroid drift (index/drift.c, docs/live-index.md): how far newly written tokens fall from
 * their centroids compared with the build's held-out vectors, so that live writes can advise
 * a rebuild. The build stores the reference, live writes keep the running totals, both as
 * the JSON in meta "drift".
 */
#ifndef CP_DRIFT_H
#define CP_DRIFT_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"

/* The drift reference of a codec (docs/live-index.md): p75/p99 of the residual norms of n
 * held-out normalised vectors, as the JSON stored in meta "drift" (malloc'd). */
cp_status cp_drift_reference_json(const cp_codec *codec, const float *heldout, int64_t n,
                                  int threads, char **json, cp_error *err);

/* Account for n newly written normalised vectors with their codes: parse the stored meta
 * "drift" (stored_json, NULL when absent; an index without a usable one takes these vectors
 * as its reference), count the vectors whose residual norm exceeds the reference p99, and
 * return the updated JSON (malloc'd) with the batch's outlier count and whether the totals
 * now advise a rebuild. */
cp_status cp_drift_account(const char *stored_json, const cp_codec *codec, const float *vecs,
                           const int32_t *codes, int64_t n, char **json, int64_t *n_outliers,
                           bool *rebuild_advised, cp_error *err);

#endif
