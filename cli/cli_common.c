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
