/*
 * NumPy .npy files (formats/npy.c, formats/npy_write.c): the embedding files colplaid reads
 * and writes.
 *
 * Reading (format versions 1, 2 and 3):
 *
 * The whole file is memory-mapped read-only so that multi-gigabyte embedding files stream
 * through the page cache instead of being read into memory. Only what colplaid needs is
 * accepted: little-endian '<f4', '<f2', '<i4', '<i8', C order. Every size read from the
 * header is checked against the file size before any element is touched, so a
 * truncated or hostile file fails at open with a message naming it.
 *
 * Thread safety: an open cp_npy is read-only; any number of threads may read it.
 */
#ifndef CP_NPY_H
#define CP_NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "colplaid/error.h"

typedef enum cp_npy_dtype { CP_NPY_F32, CP_NPY_F16, CP_NPY_I32, CP_NPY_I64 } cp_npy_dtype;

#define CP_NPY_MAX_DIMS 8

typedef struct cp_npy {
    char *path;
    void *map; /* whole file, or NULL for an empty mapping */
    size_t map_size;
    const uint8_t *data; /* first element */
    cp_npy_dtype dtype;
    int elem_size;
    int ndim;
    int64_t shape[CP_NPY_MAX_DIMS];
    int64_t count; /* product of shape */
} cp_npy;

/* Open and validate; on failure nothing stays open and *out is zeroed. */
cp_status cp_npy_open(const char *path, cp_npy *out, cp_error *err);
void cp_npy_close(cp_npy *npy);

/* "float32", "float16", "int32", "int64". */
const char *cp_npy_dtype_name(cp_npy_dtype dtype);

/* Element i of an integer array (i < count). */
int64_t cp_npy_int_at(const cp_npy *npy, int64_t i);

/* n consecutive elements starting at element i of a float array, as float32. */
void cp_npy_floats(const cp_npy *npy, int64_t i, int64_t n, float *out);

/* Parse just a header (bytes = the file's start, size = its length): exposed for tests and
 * the fuzz target. Fills dtype/ndim/shape/count and the data offset. */
cp_status cp_npy_parse_header(const uint8_t *bytes, size_t size, const char *name,
                              cp_npy_dtype *dtype, int *ndim, int64_t *shape, int64_t *count,
                              size_t *data_offset, cp_error *err);

/* ---------------------------------------------------------------------------------------
 * Writing NumPy .npy files (format 1.0, little-endian, C order), streamed: the shape is
 * declared up front and the writer checks that exactly that many bytes arrive, so a short
 * export can never pass for a complete one.
 *
 * Thread safety: a cp_npy_writer belongs to one thread.
 * ------------------------------------------------------------------------------------ */
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
