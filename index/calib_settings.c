/*
 * The stored form of a search calibration: the per-k, per-target settings that
 * index/calibrate.c measures, as the text kept in meta "search_calibration", and the
 * tables of ks and targets both sides index by. Below search and snapshot (they read it),
 * apart from the measurement above them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib_settings.h"
#include "colplaid/index.h"

const int cp_calib_ks[CP_CALIB_KS] = {10, 100};
const float cp_calib_targets[CP_CALIB_TARGETS] = {0.90f, 0.95f, 0.97f, 0.99f, 0.995f};

/* ------------------------------------------------------------------------------------
 * Text form: "v1 queries=48; k=10 r=0.970 ncells=2 t=0.450 ndocs=512 got=0.975; ..."
 * (ncells=0 ndocs=0: exhaustive search; binaries before it read such a text as malformed
 * and search with PLAID's fixed defaults)
 * --------------------------------------------------------------------------------- */

char *cp_calibration_format(const cp_calibration *c)
{
    size_t cap = 64 + (size_t)CP_CALIB_KS * CP_CALIB_TARGETS * 96;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t n = (size_t)snprintf(out, cap, "v1 queries=%d", c->n_queries);
    for (int ki = 0; ki < CP_CALIB_KS; ki++)
        for (int ti = 0; ti < CP_CALIB_TARGETS; ti++) {
            const cp_search_setting *s = &c->setting[ki][ti];
            n += (size_t)snprintf(out + n, cap - n,
                                  "; k=%d r=%.3f ncells=%d t=%.3f ndocs=%d got=%.4f",
                                  cp_calib_ks[ki], (double)cp_calib_targets[ti], s->ncells,
                                  (double)s->threshold, s->ndocs, (double)s->recall);
        }
    return out;
}

bool cp_calibration_parse(const char *text, cp_calibration *out)
{
    memset(out, 0, sizeof *out);
    int used = 0;
    if (!text || sscanf(text, "v1 queries=%d%n", &out->n_queries, &used) != 1) return false;
    const char *p = text + used;
    for (int ki = 0; ki < CP_CALIB_KS; ki++)
        for (int ti = 0; ti < CP_CALIB_TARGETS; ti++) {
            int k, ncells, ndocs;
            float r, t, got;
            if (sscanf(p, "; k=%d r=%f ncells=%d t=%f ndocs=%d got=%f%n", &k, &r, &ncells, &t,
                       &ndocs, &got, &used) != 6 ||
                k != cp_calib_ks[ki] || fabsf(r - cp_calib_targets[ti]) > 1e-4f || ncells < 0 ||
                ncells > 1 << 16 || ndocs < 0 || (ncells == 0) != (ndocs == 0) || !isfinite(t) ||
                !(got >= 0.0f && got <= 1.0f))
                return false;
            out->setting[ki][ti] = (cp_search_setting){ncells, t, ndocs, got};
            p += used;
        }
    out->valid = *p == '\0';
    return out->valid;
}

bool cp_index_calibration_parse(const char *text, cp_index_calibration *out)
{
    cp_calibration c;
    memset(out, 0, sizeof *out);
    if (!cp_calibration_parse(text, &c)) return false;
    _Static_assert(CP_CALIB_KS * CP_CALIB_TARGETS <= CP_CALIBRATION_MAX, "room for every entry");
    out->n_queries = c.n_queries;
    for (int ki = 0; ki < CP_CALIB_KS; ki++)
        for (int ti = 0; ti < CP_CALIB_TARGETS; ti++) {
            int i = out->n_settings++;
            const cp_search_setting *s = &c.setting[ki][ti];
            out->k[i] = cp_calib_ks[ki];
            out->target[i] = cp_calib_targets[ti];
            out->ncells[i] = s->ncells;
            out->threshold[i] = s->threshold;
            out->ndocs[i] = s->ndocs;
            out->measured[i] = s->recall;
        }
    return true;
}
