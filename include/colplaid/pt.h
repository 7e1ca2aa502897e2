/*
 * Reading tensors from PyTorch .pt files (formats/pt_reader.c; the zip format torch.save has
 * written since 1.6): enough for the files of a Stanford ColBERT index, no Python needed.
 *
 * A .pt file is a zip archive of stored (uncompressed) entries: `<name>/data.pkl`, a pickle
 * describing the object, and `<name>/data/<key>`, the raw little-endian bytes of each
 * storage. The pickle interpreter here understands the opcodes torch.save emits for a
 * tensor or a (nested) tuple of tensors and refuses anything else with a message; it never
 * imports or calls anything. Every offset and size read from the file is checked against
 * the file before use.
 *
 * Thread safety: a cp_pt_file belongs to one thread.
 */
#ifndef CP_PT_READER_H
#define CP_PT_READER_H

#include <stddef.h>
#include <stdint.h>

#include "colplaid/error.h"

typedef enum cp_pt_dtype {
    CP_PT_F16,
    CP_PT_F32,
    CP_PT_F64,
    CP_PT_I32,
    CP_PT_I64,
    CP_PT_U8,
    CP_PT_I8,
    CP_PT_I16,
    CP_PT_BOOL,
} cp_pt_dtype;

#define CP_PT_MAX_DIMS 8
#define CP_PT_MAX_TENSORS 16

typedef struct cp_pt_tensor {
    cp_pt_dtype dtype;
    int elem_size;
    int ndim;
    int64_t shape[CP_PT_MAX_DIMS];
    int64_t numel;
    const uint8_t *data; /* numel elements, C-contiguous, inside the file mapping */
} cp_pt_tensor;

typedef struct cp_pt_file {
    char *path;
    void *map;
    size_t size;
    int n_tensors; /* the top-level object: one tensor, or a tuple of tensors (flattened) */
    cp_pt_tensor tensors[CP_PT_MAX_TENSORS];
} cp_pt_file;

/* Map path and decode its object. On failure nothing stays open. CP_ENOTFOUND if the file
 * does not exist, CP_EFORMAT (naming the file) for anything malformed or unsupported. */
cp_status cp_pt_open(const char *path, cp_pt_file *out, cp_error *err);
void cp_pt_close(cp_pt_file *f);

/* The same decoding from a buffer already in memory (tests, fuzzing). name is for messages.
 * The tensors point into bytes. */
cp_status cp_pt_parse(const uint8_t *bytes, size_t size, const char *name, cp_pt_file *out,
                      cp_error *err);

const char *cp_pt_dtype_name(cp_pt_dtype dtype);

/* Element i of an integer tensor as int64 (i < numel; the dtype must be integral). */
int64_t cp_pt_int_at(const cp_pt_tensor *t, int64_t i);
/* Element i of a floating tensor as float. */
float cp_pt_float_at(const cp_pt_tensor *t, int64_t i);

#endif
