/*
 * Writing NumPy .npy files (format 1.0, little-endian, C order), streamed: the shape is
 * declared up front and the writer checks that exactly that many bytes arrive, so a short
 * export can never pass for a complete one.
 *
 * Thread safety: a cp_npy_writer belongs to one thread.
 */
#ifndef CP_NPY_WRITE_H
#define CP_NPY_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "colplaid/error.h"

typedef struct cp_npy_writer {
    FILE *f;
    char *path;
    uint64_t expected; /* data bytes announced by the shape */
    uint64_t written;
    int owns_file; /* 0 for a stream given by the caller: never closed or deleted here */
} cp_npy_writer;

/* descr: "<f4", "<i8", "<i4", "|u1", ... Creates or replaces path. */
cp_status cp_npy_write_begin(cp_npy_writer *w, const char *path, const char *descr,
                             const int64_t *shape, int ndim, cp_error *err);
/* The same onto an open stream (e.g. stdout) that the caller keeps owning; name is used in
 * messages. end() flushes it; neither end() nor abort() closes or deletes it. */
cp_status cp_npy_write_begin_stream(cp_npy_writer *w, FILE *f, const char *name,
                                    const char *descr, const int64_t *shape, int ndim,
                                    cp_error *err);
cp_status cp_npy_write_data(cp_npy_writer *w, const void *data, size_t bytes, cp_error *err);
/* Checks the byte count and flushes to disk; the writer is closed either way. */
cp_status cp_npy_write_end(cp_npy_writer *w, cp_error *err);
/* Close and delete a partly written file. */
void cp_npy_write_abort(cp_npy_writer *w);

#endif
