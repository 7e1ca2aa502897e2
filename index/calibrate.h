/*
 * Search calibration (index/calibrate.c): per-k search settings that reach each recall
 * target, measured by the index on pseudo-queries against its own exhaustive search and
 * stored in its metadata ("search_calibration"), so defaults follow the collection.
 */
#ifndef CP_CALIBRATE_H
#define CP_CALIBRATE_H

#include <stdbool.h>
#include <stdio.h>

#include "colplaid/error.h"

enum { CP_CALIB_KS = 2, CP_CALIB_TARGETS = 5 };

extern const int cp_calib_ks[CP_CALIB_KS];             /* 10, 100 */
extern const float cp_calib_targets[CP_CALIB_TARGETS]; /* 0.90 .. 0.995 */

typedef struct cp_search_setting {
    int ncells;
    float threshold;
    int ndocs;
    float recall; /* measured on the pseudo-queries */
} cp_search_setting;

typedef struct cp_calibration {
    bool valid;
    int n_queries;
    cp_search_setting setting[CP_CALIB_KS][CP_CALIB_TARGETS];
} cp_calibration;

/* The meta text ("search_calibration") <-> the struct. Parsing fails (returns false) on
 * anything malformed, and the index then searches with PLAID's defaults. */
bool cp_calibration_parse(const char *text, cp_calibration *out);
char *cp_calibration_format(const cp_calibration *c); /* malloc'd */

/* Open the index file at path for writing, calibrate it, close it (build and import). */
cp_status cp_calibrate_file(const char *path, FILE *progress, cp_error *err);

#endif
