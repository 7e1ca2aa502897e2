/*
 * The stored form of a search calibration (index/calib_settings.c): per k and recall
 * target, the settings that reach it, kept as text in meta "search_calibration". Search
 * and snapshot read it; index/calibrate.c measures and writes it.
 */
#ifndef CP_CALIB_SETTINGS_H
#define CP_CALIB_SETTINGS_H

#include <stdbool.h>

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

#endif
