/*
 * safetensors reader: see safetensors.h. Parsing is in two passes: the JSON header is
 * parsed with cJSON and each entry validated on its own (dtype, shape, offsets inside the
 * data area, size = product(shape) x element size, no overflow), then the entries are
 * sorted by offset to reject overlapping tensors.
 */
#include "safetensors.h"

#include "cp_half.h"
#include "cp_mmap.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    cp_st_dtype dtype;
    size_t size;
} dtype_table[] = {
    {"F32", CP_ST_F32, 4},      {"F16", CP_ST_F16, 2},       {"BF16", CP_ST_BF16, 2},
    {"F64", CP_ST_F64, 8},      {"I64", CP_ST_I64, 8},       {"I32", CP_ST_I32, 4},
    {"I16", CP_ST_I16, 2},      {"I8", CP_ST_I8, 1},         {"U8", CP_ST_U8, 1},
    {"BOOL", CP_ST_BOOL, 1},    {"U16", CP_ST_OTHER, 2},     {"U32", CP_ST_OTHER, 4},
    {"U64", CP_ST_OTHER, 8},    {"F8_E5M2", CP_ST_OTHER, 1}, {"F8_E4M3", CP_ST_OTHER, 1},
};

float cp_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void free_tensors(cp_safetensors *st)
{
    for (size_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    st->tensors = NULL;
    st->n_tensors = 0;
}

void cp_safetensors_close(cp_safetensors *st)
{
    if (!st) return;
    free_tensors(st);
    if (st->map) munmap(st->map, st->map_size);
    free(st);
}

/* A JSON number that is an exact non-negative integer no larger than max. */
static int json_uint(const cJSON *j, double max, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0) || v > max || v != (double)(uint64_t)v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static cp_status parse_dtype(const cJSON *entry, cp_st_tensor *t, size_t *elsize, cp_error *err)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(dt))
        return cp_error_set(err, CP_EFORMAT, "tensor \"%s\": missing \"dtype\" string", t->name);
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++) {
        if (strcmp(dt->valuestring, dtype_table[i].name) == 0) {
            t->dtype = dtype_table[i].dtype;
            t->dtype_name = dtype_table[i].name;
            *elsize = dtype_table[i].size;
            return CP_OK;
        }
    }
    return cp_error_set(err, CP_EFORMAT, "tensor \"%s\": unknown dtype \"%.32s\"", t->name,
                        dt->valuestring);
}

static cp_status parse_shape(const cJSON *entry, cp_st_tensor *t, cp_error *err)
{
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(shape))
        return cp_error_set(err, CP_EFORMAT, "tensor \"%s\": missing \"shape\" array", t->name);
    int n = cJSON_GetArraySize(shape);
    if (n > CP_ST_MAX_DIMS)
        return cp_error_set(err, CP_EFORMAT, "tensor \"%s\": %d dimensions (at most %d)",
                            t->name, n, CP_ST_MAX_DIMS);
    t->ndim = n;
    uint64_t count = 1;
    const cJSON *d;
    int i = 0;
    cJSON_ArrayForEach(d, shape)
    {
        uint64_t v;
        /* 2^53 bounds each dimension; the product is checked against the file size later. */
        if (!json_uint(d, 9007199254740992.0, &v))
            return cp_error_set(err, CP_EFORMAT,
                                "tensor \"%s\": shape entries must be non-negative integers",
                                t->name);
        t->shape[i++] = (int64_t)v;
        if (v != 0 && count > UINT64_MAX / 2 / v)
            return cp_error_set(err, CP_EFORMAT, "tensor \"%s\": shape too large", t->name);
        count *= v;
    }
    t->count = (int64_t)count;
    return CP_OK;
}

static cp_status parse_offsets(const cJSON *entry, cp_st_tensor *t, size_t elsize,
                               const uint8_t *data, size_t data_size, cp_error *err)
{
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_uint(cJSON_GetArrayItem(off, 0), 9007199254740992.0, &begin) ||
        !json_uint(cJSON_GetArrayItem(off, 1), 9007199254740992.0, &end))
        return cp_error_set(err, CP_EFORMAT,
                            "tensor \"%s\": \"data_offsets\" must be [begin, end] integers",
                            t->name);
    if (begin > end || end > data_size)
        return cp_error_set(err, CP_EFORMAT,
                            "tensor \"%s\": data_offsets [%llu, %llu] outside the %zu data "
                            "bytes (file truncated?)",
                            t->name, (unsigned long long)begin, (unsigned long long)end,
                            data_size);
    if ((uint64_t)t->count > UINT64_MAX / elsize || end - begin != (uint64_t)t->count * elsize)
        return cp_error_set(err, CP_EFORMAT,
                            "tensor \"%s\": %llu bytes for %lld elements of %s", t->name,
                            (unsigned long long)(end - begin), (long long)t->count,
                            t->dtype_name);
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    return CP_OK;
}

static cp_status parse_entry(const cJSON *entry, cp_st_tensor *t, const uint8_t *data,
                             size_t data_size, cp_error *err)
{
    if (!cJSON_IsObject(entry))
        return cp_error_set(err, CP_EFORMAT, "tensor \"%s\": entry is not an object", t->name);
    size_t elsize = 0;
    cp_status s = parse_dtype(entry, t, &elsize, err);
    if (s == CP_OK) s = parse_shape(entry, t, err);
    if (s == CP_OK) s = parse_offsets(entry, t, elsize, data, data_size, err);
    return s;
}

static int by_name(const void *a, const void *b)
{
    const cp_st_tensor *x = *(const cp_st_tensor *const *)a, *y = *(const cp_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int by_offset(const void *a, const void *b)
{
    const cp_st_tensor *x = *(const cp_st_tensor *const *)a, *y = *(const cp_st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static cp_status check_names_and_overlaps(cp_safetensors *st, cp_error *err)
{
    if (st->n_tensors < 2) return CP_OK;
    cp_st_tensor **order = malloc(st->n_tensors * sizeof *order);
    if (!order) return cp_error_set(err, CP_ENOMEM, "out of memory");
    for (size_t i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    cp_status s = CP_OK;
    /* Sorting keeps both checks O(n log n) even for hostile headers with many entries. */
    qsort(order, st->n_tensors, sizeof *order, by_name);
    for (size_t i = 1; i < st->n_tensors && s == CP_OK; i++) {
        if (strcmp(order[i]->name, order[i - 1]->name) == 0)
            s = cp_error_set(err, CP_EFORMAT, "tensor \"%s\" appears twice", order[i]->name);
    }
    qsort(order, st->n_tensors, sizeof *order, by_offset);
    for (size_t i = 1; i < st->n_tensors && s == CP_OK; i++) {
        if (order[i]->data < order[i - 1]->data + order[i - 1]->nbytes)
            s = cp_error_set(err, CP_EFORMAT, "tensors \"%s\" and \"%s\" overlap",
                             order[i - 1]->name, order[i]->name);
    }
    free(order);
    return s;
}

static cp_status parse_header(const cJSON *root, const uint8_t *data, size_t data_size,
                              cp_safetensors *st, cp_error *err)
{
    if (!cJSON_IsObject(root))
        return cp_error_set(err, CP_EFORMAT, "the header is not a JSON object");
    size_t n = (size_t)cJSON_GetArraySize(root);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors) return cp_error_set(err, CP_ENOMEM, "out of memory");
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root)
    {
        if (!entry->string) return cp_error_set(err, CP_EFORMAT, "a header entry has no name");
        if (strcmp(entry->string, "__metadata__") == 0) continue;
        cp_st_tensor *t = &st->tensors[st->n_tensors];
        t->name = strdup(entry->string);
        if (!t->name) return cp_error_set(err, CP_ENOMEM, "out of memory");
        st->n_tensors++;
        cp_status s = parse_entry(entry, t, data, data_size, err);
        if (s != CP_OK) return s;
    }
    return check_names_and_overlaps(st, err);
}

cp_status cp_safetensors_parse(const void *buf, size_t size, cp_safetensors **out, cp_error *err)
{
    *out = NULL;
    const uint8_t *p = buf;
    if (size < 8)
        return cp_error_set(err, CP_EFORMAT, "%zu bytes: too short for a safetensors file", size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > CP_ST_MAX_HEADER)
        return cp_error_set(err, CP_EFORMAT,
                            "header length %llu is absurd (limit %u): not a safetensors file",
                            (unsigned long long)hlen, CP_ST_MAX_HEADER);
    if (hlen > size - 8)
        return cp_error_set(err, CP_EFORMAT,
                            "header length %llu but only %zu bytes follow (file truncated?)",
                            (unsigned long long)hlen, size - 8);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root) return cp_error_set(err, CP_EFORMAT, "the header is not valid JSON");
    cp_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        cJSON_Delete(root);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    cp_status s = parse_header(root, p + 8 + hlen, size - 8 - (size_t)hlen, st, err);
    cJSON_Delete(root);
    if (s != CP_OK) {
        cp_safetensors_close(st);
        return s;
    }
    *out = st;
    return CP_OK;
}

cp_status cp_safetensors_open(const char *path, cp_safetensors **out, cp_error *err)
{
    *out = NULL;
    cp_mapped_file file;
    cp_status s = cp_file_map(path, &file, err);
    if (s != CP_OK) return s;
    void *map = file.data;
    size_t size = file.size;
    s = cp_safetensors_parse(size ? map : "", size, out, err);
    if (s != CP_OK) {
        cp_file_unmap(&file);
        return cp_error_prefix(err, "%s", path);
    }
    (*out)->map = size ? map : NULL;
    (*out)->map_size = size;
    return CP_OK;
}

const cp_st_tensor *cp_safetensors_find(const cp_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

cp_status cp_st_tensor_to_f32(const cp_st_tensor *t, float *dst, cp_error *err)
{
    const uint8_t *p = t->data;
    size_t n = (size_t)t->count;
    switch (t->dtype) {
    case CP_ST_F32:
        memcpy(dst, p, n * sizeof(float)); /* the format is little-endian, as is the host */
        return CP_OK;
    case CP_ST_F16:
    case CP_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            dst[i] = t->dtype == CP_ST_F16 ? cp_half_to_float(h) : cp_bf16_to_f32(h);
        }
        return CP_OK;
    default:
        return cp_error_set(err, CP_EFORMAT,
                            "tensor \"%s\" has dtype %s; weights must be F32, F16 or BF16",
                            t->name, t->dtype_name);
    }
}
