/*
 * .npy writer (see colplaid/npy.h). Header: magic, version 1.0, a Python dict literal padded
 * with spaces so that the data starts at a multiple of 64 bytes, as NumPy writes it.
 */
#include "colplaid/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cp_status io_error(cp_npy_writer *w, const char *what, cp_error *err)
{
    int e = errno;
    cp_status st = e == ENOSPC ? CP_ENOSPC : e == EROFS || e == EACCES ? CP_EREADONLY : CP_EIO;
    return cp_error_set(err, st, "%s: %s: %s", w->path, what, strerror(e));
}

/* Check the shape, remember the expected byte count and write the header to w->f. */
static cp_status write_header(cp_npy_writer *w, const char *descr, const int64_t *shape,
                              int ndim, cp_error *err)
{
    if (ndim < 1 || ndim > 8) return cp_error_set(err, CP_EINVAL, "%s: bad npy rank %d", w->path, ndim);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%" PRId64 "%s", shape[i],
                      ndim == 1 || i + 1 < ndim ? ", " : "");
        count *= (uint64_t)shape[i];
    }
    /* NumPy writes (n,) for rank 1 and (a, b) otherwise. */
    if (ndim == 1) n -= 1;
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - 10;
    int elem = atoi(descr + 2);
    if (elem <= 0) return cp_error_set(err, CP_EINVAL, "%s: bad npy dtype %s", w->path, descr);
    w->expected = count * (uint64_t)elem;
    uint8_t head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff),
                        (uint8_t)(hlen >> 8)};
    char pad[600];
    memset(pad, ' ', sizeof pad);
    memcpy(pad, dict, (size_t)n);
    pad[hlen - 1] = '\n';
    if (fwrite(head, 1, 10, w->f) != 10 || fwrite(pad, 1, hlen, w->f) != hlen)
        return io_error(w, "writing", err);
    return CP_OK;
}

cp_status cp_npy_write_begin(cp_npy_writer *w, const char *path, const char *descr,
                             const int64_t *shape, int ndim, cp_error *err)
{
    memset(w, 0, sizeof *w);
    w->path = strdup(path);
    if (!w->path) return cp_error_set(err, CP_ENOMEM, "out of memory");
    w->owns_file = 1;
    w->f = fopen(path, "wb");
    if (!w->f) {
        cp_status st = io_error(w, "cannot create", err);
        free(w->path);
        w->path = NULL;
        return st;
    }
    cp_status st = write_header(w, descr, shape, ndim, err);
    if (st != CP_OK) cp_npy_write_abort(w);
    return st;
}

cp_status cp_npy_write_begin_stream(cp_npy_writer *w, FILE *f, const char *name,
                                    const char *descr, const int64_t *shape, int ndim,
                                    cp_error *err)
{
    memset(w, 0, sizeof *w);
    w->path = strdup(name);
    if (!w->path) return cp_error_set(err, CP_ENOMEM, "out of memory");
    w->f = f;
    cp_status st = write_header(w, descr, shape, ndim, err);
    if (st != CP_OK) cp_npy_write_abort(w);
    return st;
}

cp_status cp_npy_write_data(cp_npy_writer *w, const void *data, size_t bytes, cp_error *err)
{
    if (w->written + bytes > w->expected)
        return cp_error_set(err, CP_EINTERNAL, "%s: more data than the declared shape", w->path);
    if (bytes && fwrite(data, 1, bytes, w->f) != bytes) return io_error(w, "writing", err);
    w->written += bytes;
    return CP_OK;
}

cp_status cp_npy_write_end(cp_npy_writer *w, cp_error *err)
{
    cp_status st = CP_OK;
    if (w->written != w->expected)
        st = cp_error_set(err, CP_EINTERNAL, "%s: %" PRIu64 " of %" PRIu64 " bytes written",
                          w->path, w->written, w->expected);
    if (fflush(w->f) != 0 || (w->owns_file && fsync(fileno(w->f)) != 0)) {
        if (st == CP_OK) st = io_error(w, "writing", err);
    }
    if (w->owns_file) {
        if (fclose(w->f) != 0 && st == CP_OK) st = io_error(w, "closing", err);
        if (st != CP_OK) unlink(w->path);
    }
    w->f = NULL;
    free(w->path);
    w->path = NULL;
    return st;
}

void cp_npy_write_abort(cp_npy_writer *w)
{
    if (w->owns_file) {
        if (w->f) fclose(w->f);
        if (w->path) unlink(w->path);
    }
    free(w->path);
    memset(w, 0, sizeof *w);
}
