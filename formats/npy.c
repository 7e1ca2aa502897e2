/*
 * .npy reading (see npy.h): header parsing with every length bounded by the file size,
 * then a read-only mmap of the file.
 *
 * The header is a Python dict literal, e.g.
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }
 * We look for the three keys anywhere in it rather than parse Python in general: numpy
 * writes exactly this shape, and anything we do not understand is rejected by name.
 */
#include "colplaid/npy.h"
#include "cp_half.h"
#include "cp_mmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cp_npy_dtype_name(cp_npy_dtype dtype)
{
    switch (dtype) {
    case CP_NPY_F32:
        return "float32";
    case CP_NPY_F16:
        return "float16";
    case CP_NPY_I32:
        return "int32";
    case CP_NPY_I64:
        return "int64";
    }
    return "?";
}

/* The value text after 'key': within the header, or NULL. */
static const char *find_key(const char *hdr, const char *key)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(hdr, quoted);
    if (!p) return NULL;
    p += strlen(quoted);
    while (*p == ' ')
        p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

static cp_status parse_descr(const char *hdr, const char *name, cp_npy_dtype *dtype, cp_error *err)
{
    const char *v = find_key(hdr, "descr");
    if (!v || *v != '\'')
        return cp_error_set(err, CP_EFORMAT, "%s: .npy header has no 'descr'", name);
    v++;
    const char *end = strchr(v, '\'');
    if (!end) return cp_error_set(err, CP_EFORMAT, "%s: .npy header 'descr' is malformed", name);
    size_t len = (size_t)(end - v);
    static const struct {
        const char *s;
        cp_npy_dtype t;
    } known[] = {
        {"<f4", CP_NPY_F32}, {"<f2", CP_NPY_F16}, {"<i4", CP_NPY_I32}, {"<i8", CP_NPY_I64}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (len == 3 && !memcmp(v, known[i].s, 3)) {
            *dtype = known[i].t;
            return CP_OK;
        }
    return cp_error_set(err, CP_EFORMAT,
                        "%s: unsupported dtype '%.*s' (expected little-endian float32 '<f4', "
                        "float16 '<f2', int32 '<i4' or int64 '<i8')",
                        name, (int)(len < 16 ? len : 16), v);
}

static cp_status parse_shape(const char *hdr, const char *name, int *ndim, int64_t *shape,
                             int64_t *count, cp_error *err)
{
    const char *p = find_key(hdr, "shape");
    if (!p || *p != '(')
        return cp_error_set(err, CP_EFORMAT, "%s: .npy header has no 'shape'", name);
    p++;
    int n = 0;
    int64_t total = 1;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == ')') break;
        if (*p < '0' || *p > '9')
            return cp_error_set(err, CP_EFORMAT, "%s: .npy 'shape' is malformed", name);
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno || v < 0)
            return cp_error_set(err, CP_EFORMAT, "%s: .npy 'shape' has an invalid size", name);
        if (n == CP_NPY_MAX_DIMS)
            return cp_error_set(err, CP_EFORMAT, "%s: more than %d dimensions", name,
                                CP_NPY_MAX_DIMS);
        shape[n++] = v;
        /* Overflow-safe product: anything above 2^62 elements cannot be a real file. */
        if (v != 0 && total > ((int64_t)1 << 62) / v)
            return cp_error_set(err, CP_EFORMAT, "%s: shape is impossibly large", name);
        total *= v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',') p++;
    }
    *ndim = n;
    *count = total;
    return CP_OK;
}

cp_status cp_npy_parse_header(const uint8_t *bytes, size_t size, const char *name,
                              cp_npy_dtype *dtype, int *ndim, int64_t *shape, int64_t *count,
                              size_t *data_offset, cp_error *err)
{
    if (size < 10 || memcmp(bytes, "\x93NUMPY", 6) != 0)
        return cp_error_set(err, CP_EFORMAT, "%s: not a .npy file (bad magic)", name);
    int major = bytes[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)bytes[8] | (size_t)bytes[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return cp_error_set(err, CP_EFORMAT, "%s: truncated .npy header", name);
        hlen = (size_t)bytes[8] | (size_t)bytes[9] << 8 | (size_t)bytes[10] << 16 |
               (size_t)bytes[11] << 24;
        start = 12;
    } else {
        return cp_error_set(err, CP_EFORMAT, "%s: unsupported .npy format version %d", name, major);
    }
    if (hlen > size - start)
        return cp_error_set(err, CP_EFORMAT, "%s: truncated .npy header (%zu bytes announced)",
                            name, hlen);
    if (hlen > (1u << 20))
        return cp_error_set(err, CP_EFORMAT, "%s: .npy header is implausibly long", name);
    char *hdr = malloc(hlen + 1);
    if (!hdr) return cp_error_set(err, CP_ENOMEM, "%s: out of memory", name);
    memcpy(hdr, bytes + start, hlen);
    hdr[hlen] = '\0';
    cp_status st = parse_descr(hdr, name, dtype, err);
    if (st == CP_OK) {
        const char *f = find_key(hdr, "fortran_order");
        if (!f)
            st = cp_error_set(err, CP_EFORMAT, "%s: .npy header has no 'fortran_order'", name);
        else if (strncmp(f, "False", 5) != 0)
            st = cp_error_set(err, CP_EFORMAT,
                              "%s: Fortran-order arrays are not supported; save it with "
                              "numpy.ascontiguousarray",
                              name);
    }
    if (st == CP_OK) st = parse_shape(hdr, name, ndim, shape, count, err);
    free(hdr);
    *data_offset = start + hlen;
    return st;
}

static int dtype_size(cp_npy_dtype t)
{
    return t == CP_NPY_F16 ? 2 : (t == CP_NPY_I64 ? 8 : 4);
}

cp_status cp_npy_open(const char *path, cp_npy *out, cp_error *err)
{
    memset(out, 0, sizeof *out);
    cp_mapped_file file;
    cp_status st = cp_file_map(path, &file, err);
    if (st != CP_OK) return st;
    void *map = file.data;
    size_t size = file.size;
    if (size < 10) {
        cp_file_unmap(&file);
        return cp_error_set(err, CP_EFORMAT, "%s: not a .npy file (only %zu bytes)", path, size);
    }
    size_t off = 0;
    st = cp_npy_parse_header(map, size, path, &out->dtype, &out->ndim, out->shape,
                                       &out->count, &off, err);
    if (st == CP_OK) {
        out->elem_size = dtype_size(out->dtype);
        uint64_t need = (uint64_t)out->count * (uint64_t)out->elem_size;
        if (off > size || need != size - off)
            st = cp_error_set(err, CP_EFORMAT,
                              "%s: the header announces %lld elements (%llu bytes) but the file "
                              "holds %zu data bytes (truncated or not a .npy file)",
                              path, (long long)out->count, (unsigned long long)need,
                              off <= size ? size - off : 0);
    }
    if (st == CP_OK) {
        out->path = strdup(path);
        if (!out->path) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    if (st != CP_OK) {
        cp_file_unmap(&file);
        memset(out, 0, sizeof *out);
        return st;
    }
    out->map = map;
    out->map_size = size;
    out->data = (const uint8_t *)map + off;
    madvise(map, size, MADV_SEQUENTIAL);
    return CP_OK;
}

void cp_npy_close(cp_npy *npy)
{
    if (!npy) return;
    if (npy->map) munmap(npy->map, npy->map_size);
    free(npy->path);
    memset(npy, 0, sizeof *npy);
}

int64_t cp_npy_int_at(const cp_npy *npy, int64_t i)
{
    const uint8_t *p = npy->data + (size_t)i * (size_t)npy->elem_size;
    if (npy->dtype == CP_NPY_I64) {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

void cp_npy_floats(const cp_npy *npy, int64_t i, int64_t n, float *out)
{
    const uint8_t *p = npy->data + (size_t)i * (size_t)npy->elem_size;
    if (npy->dtype == CP_NPY_F32) {
        memcpy(out, p, (size_t)n * sizeof *out);
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        uint16_t h;
        memcpy(&h, p + 2 * k, sizeof h);
        out[k] = cp_half_to_float(h);
    }
}
