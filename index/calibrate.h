/*
 * Search calibration (index/calibrate.c): per-k search settings that reach each recall
 * target, measured by the index on pseudo-queries against its own exhaustive search and
 * stored in its metadata ("search_calibration", calib_settings.h), so defaults follow the
 * collection.
 */
#ifndef CP_CALIBRATE_H
#define CP_CALIBRATE_H

#include <stdio.h>

#include "calib_settings.h"
#include "colplaid/error.h"

/* Open the index file at path for writing, calibrate it, close it (build and import). */
cp_status cp_calibrate_file(const char *path, FILE *progress, cp_error *err);

#endif
