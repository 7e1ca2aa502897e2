/*
 * A reader for the safetensors format (Hugging Face): an 8-byte little-endian header
 * length N, N bytes of JSON describing each tensor (dtype, shape, data_offsets relative to
 * the end of the header), then the raw little-endian tensor bytes.
 *
 * The file is outside input: every length, offset and shape is checked before use, and a
 * damaged file gives a CP_EFORMAT error that says what is wrong, never a crash.
 *
 * Thread safety: an opened cp_safetensors is read-only; any thread may read it.
 */
#ifndef CP_SAFETENSORS_H
#define CP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "colplaid/error.h"

#define CP_ST_MAX_DIMS 8
/* Real headers are a few hundred KB; anything far larger is damage, not a model. */
#define CP_ST_MAX_HEADER (100u * 1024u * 1024u)

typedef enum cp_st_dtype {
    CP_ST_F32,
    CP_ST_F16,
    CP_ST_BF16,
    CP_ST_F64,
    CP_ST_I64,
    CP_ST_I32,
    CP_ST_I16,
    CP_ST_I8,
    CP_ST_U8,
    CP_ST_BOOL,
    CP_ST_OTHER, /* a dtype of the format that colplaid never reads as numbers (U16, F8...) */
} cp_st_dtype;

typedef struct cp_st_tensor {
    char *name;
    cp_st_dtype dtype;
    const char *dtype_name; /* as written in the file, e.g. "BF16" */
    int ndim;
    int64_t shape[CP_ST_MAX_DIMS];
    int64_t count;       /* number of elements */
    const uint8_t *data; /* count * element size bytes inside the file */
    size_t nbytes;
} cp_st_tensor;

typedef struct cp_safetensors {
    cp_st_tensor *tensors;
    size_t n_tensors;
    void *map; /* the mmap'd file, or NULL when parsing a caller's buffer */
    size_t map_size;
} cp_safetensors;

/* mmap path and parse it. */
cp_status cp_safetensors_open(const char *path, cp_safetensors **out, cp_error *err);

/* Parse a buffer that the caller keeps alive as long as *out (used by the fuzzer). */
cp_status cp_safetensors_parse(const void *buf, size_t size, cp_safetensors **out, cp_error *err);

void cp_safetensors_close(cp_safetensors *st);

/* The tensor of that exact name, or NULL. */
const cp_st_tensor *cp_safetensors_find(const cp_safetensors *st, const char *name);

/* Convert an F32, F16 or BF16 tensor to float (dst has room for t->count floats);
 * CP_EFORMAT naming the tensor for any other dtype. */
cp_status cp_st_tensor_to_f32(const cp_st_tensor *t, float *dst, cp_error *err);

/* bfloat16 to float (exact); IEEE half is cp_half_to_float (util/cp_half.h). */
float cp_bf16_to_f32(uint16_t b);

#endif
