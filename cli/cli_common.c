/* Shared CLI helpers: see cli_common.h. */
#include "cli_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int cp_cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "colplaid %s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'colplaid %s --help')\n", command);
    va_end(ap);
    return CP_EXIT_USAGE;
}

int cp_cli_report(const char *command, const cp_error *err)
{
    fprintf(stderr, "colplaid %s: %s\n", command,
            err && err->message[0] ? err->message : "failed");
    if (err && err->code == CP_EMODEL) {
        fprintf(stderr,
                "colplaid %s: pass --allow-model-mismatch to encode with this model anyway, or "
                "record it as the index's model with `colplaid index set-model --index IDX "
                "--model MODEL` (docs/cli.md, \"Model fingerprints\")\n",
                command);
        return CP_EXIT_USAGE;
    }
    return CP_EXIT_FAILURE;
}

bool cp_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cp_cli_parse_float(const char *s, double *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

cp_status cp_cli_load_model_for_index(const char *command, const char *model, int threads,
                                      cp_index *ix, bool allow_mismatch, cp_encoder **out,
                                      cp_error *err)
{
    *out = NULL;
    cp_encoder_options eo;
    cp_encoder_options_init(&eo);
    eo.threads = threads;
    cp_encoder *enc = NULL;
    cp_status st = cp_encoder_load(model, &eo, &enc, err);
    if (st != CP_OK) return cp_error_prefix(err, "loading model %s", model);
    char *stored = cp_index_meta_get(ix, "encoder");
    int dim = cp_encoder_dim(enc);
    st = cp_encoder_match(enc, stored, &dim, err);
    free(stored);
    if (st == CP_EMODEL && allow_mismatch) {
        fprintf(stderr, "colplaid %s: warning: %s; going on (--allow-model-mismatch)\n", command,
                err->message);
        cp_index_stats stats;
        cp_error ignored;
        st = CP_OK;
        if (cp_index_stats_get(ix, &stats, &ignored) == CP_OK && stats.dim > 0 &&
            stats.dim <= cp_encoder_model_dim(enc))
            dim = stats.dim; /* the index's dims when this model can encode them */
    }
    if (st == CP_OK && dim != cp_encoder_dim(enc)) st = cp_encoder_set_dim(enc, dim, err);
    if (st != CP_OK) {
        cp_encoder_free(enc);
        return st;
    }
    *out = enc;
    return CP_OK;
}
