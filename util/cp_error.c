/* Error values: see include/colplaid/error.h. */
#include "colplaid/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[CP_STATUS_COUNT] = {
    [CP_OK] = "OK",
    [CP_EINVAL] = "INVALID_ARGUMENT",
    [CP_EIO] = "IO_ERROR",
    [CP_ENOMEM] = "OUT_OF_MEMORY",
    [CP_EFORMAT] = "BAD_FORMAT",
    [CP_ECORRUPT] = "INDEX_CORRUPT",
    [CP_EEXISTS] = "ALREADY_EXISTS",
    [CP_ENOTFOUND] = "NOT_FOUND",
    [CP_EDIM] = "DIMENSION_MISMATCH",
    [CP_EBUSY] = "BUSY",
    [CP_EREADONLY] = "READ_ONLY",
    [CP_ENOSPC] = "DISK_FULL",
    [CP_EUNSUPPORTED] = "UNSUPPORTED",
    [CP_EINTERNAL] = "INTERNAL",
    [CP_EMODEL] = "MODEL_MISMATCH",
};

const char *cp_status_name(cp_status code)
{
    if ((unsigned)code >= CP_STATUS_COUNT) return "UNKNOWN";
    return status_names[code];
}

cp_status cp_error_set(cp_error *err, cp_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

cp_status cp_error_prefix(cp_error *err, const char *fmt, ...)
{
    if (!err) return CP_OK;
    char prefix[CP_ERROR_MESSAGE_MAX];
    char old[CP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    /* A message longer than the buffer ends in "..." so the cut is visible. */
    size_t plen = strlen(prefix), olen = strnlen(old, sizeof old - 1);
    size_t cap = sizeof err->message - 1, pos = 0;
    memcpy(err->message, prefix, plen < cap ? plen : cap);
    pos = plen < cap ? plen : cap;
    if (pos + 2 <= cap) {
        memcpy(err->message + pos, ": ", 2);
        pos += 2;
    }
    size_t take = olen < cap - pos ? olen : cap - pos;
    memcpy(err->message + pos, old, take);
    pos += take;
    err->message[pos] = '\0';
    if (plen + 2 + olen > cap && cap > 3) memcpy(err->message + cap - 3, "...", 3);
    return err->code;
}

void cp_error_clear(cp_error *err)
{
    if (!err) return;
    err->code = CP_OK;
    err->message[0] = '\0';
}
