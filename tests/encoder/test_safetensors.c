/*
 * The safetensors reader on valid files and on every kind of damage it must refuse with
 * a clear error: truncation at every length, absurd header lengths, bad JSON, offsets out
 * of range or overlapping, sizes that disagree with shapes, unknown or unreadable dtypes,
 * duplicate names; plus the exactness of the f16 / bf16 conversions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_half.h"
#include "cp_test.h"
#include "safetensors.h"

/* A file image: 8-byte header length, header, data. */
static uint8_t *image(const char *header, const void *data, size_t data_len, size_t *size)
{
    size_t h = strlen(header);
    *size = 8 + h + data_len;
    uint8_t *buf = malloc(*size);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (data_len) memcpy(buf + 8 + h, data, data_len);
    return buf;
}

/* Parse must fail with CP_EFORMAT and a message containing want. */
static void expect_error(const char *header, const void *data, size_t data_len, const char *want)
{
    size_t size;
    uint8_t *buf = image(header, data, data_len, &size);
    cp_safetensors *st = NULL;
    cp_error err = {0};
    cp_status s = cp_safetensors_parse(buf, size, &st, &err);
    CP_CHECK_INT(s, CP_EFORMAT);
    CP_CHECK(st == NULL);
    if (!strstr(err.message, want)) {
        fprintf(stderr, "header %s: message \"%s\" lacks \"%s\"\n", header, err.message, want);
        cp_test_failures++;
    }
    free(buf);
}

static const char *VALID =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
    "\"c\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[22,24]},"
    "\"ids\":{\"dtype\":\"I64\",\"shape\":[1,1],\"data_offsets\":[24,32]}}";

static void valid_data(uint8_t data[32])
{
    float a[4] = {1.5f, -2.0f, 0.25f, 3.0f};
    uint16_t b[3] = {0x3c00, 0xc000, 0x0001}, c = 0x3fc0; /* 1, -2, 2^-24; bf16 1.5 */
    int64_t id = 7;
    memcpy(data, a, 16);
    memcpy(data + 16, b, 6);
    memcpy(data + 22, &c, 2);
    memcpy(data + 24, &id, 8);
}

static void test_valid(void)
{
    uint8_t data[32];
    valid_data(data);
    size_t size;
    uint8_t *buf = image(VALID, data, sizeof data, &size);
    cp_safetensors *st;
    cp_error err = {0};
    CP_CHECK_OK(cp_safetensors_parse(buf, size, &st, &err), err);
    if (!st) return;
    CP_CHECK_INT(st->n_tensors, 4);
    const cp_st_tensor *a = cp_safetensors_find(st, "a"), *b = cp_safetensors_find(st, "b");
    const cp_st_tensor *c = cp_safetensors_find(st, "c"), *ids = cp_safetensors_find(st, "ids");
    CP_CHECK(a && b && c && ids && !cp_safetensors_find(st, "__metadata__"));
    float out[4];
    CP_CHECK_OK(cp_st_tensor_to_f32(a, out, &err), err);
    CP_CHECK(a->ndim == 2 && a->shape[0] == 2 && a->count == 4 && out[3] == 3.0f);
    CP_CHECK_OK(cp_st_tensor_to_f32(b, out, &err), err);
    CP_CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1.0f, -24));
    CP_CHECK_OK(cp_st_tensor_to_f32(c, out, &err), err);
    CP_CHECK(out[0] == 1.5f);
    CP_CHECK_INT(cp_st_tensor_to_f32(ids, out, &err), CP_EFORMAT);
    CP_CHECK(strstr(err.message, "I64") != NULL);
    cp_safetensors_close(st);
    free(buf);
}

static void test_truncation(void)
{
    uint8_t data[32];
    valid_data(data);
    size_t size;
    uint8_t *buf = image(VALID, data, sizeof data, &size);
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *part = malloc(cut ? cut : 1); /* exact size, so ASan sees any overread */
        memcpy(part, buf, cut);
        cp_safetensors *st = NULL;
        cp_error err = {0};
        CP_CHECK(cp_safetensors_parse(part, cut, &st, &err) == CP_EFORMAT && !st);
        CP_CHECK(err.message[0] != '\0');
        free(part);
    }
    free(buf);
}

static void test_damage(void)
{
    uint8_t d[64] = {0};
    expect_error("not json", d, 8, "not valid JSON");
    expect_error("[1,2]", d, 8, "not a JSON object");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,32]}}", d, 16,
                 "outside");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,4]}}", d, 16,
                 "outside");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", d, 16,
                 "bytes for 3 elements");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                 d, 16, "overlap");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                 d, 16, "twice");
    expect_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 16,
                 "unknown dtype");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d, 16,
                 "non-negative");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", d, 16,
                 "non-negative");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                 "\"data_offsets\":[0,8]}}", d, 16, "too large");
    expect_error("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", d, 16, "dtype");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", d, 16, "data_offsets");
    expect_error("{\"a\":3}", d, 16, "not an object");
    /* header length field far beyond the file, and absurd */
    uint8_t huge[16] = {0, 0, 0, 0, 0, 1, 0, 0, '{', '}'};
    cp_safetensors *st = NULL;
    cp_error err = {0};
    CP_CHECK_INT(cp_safetensors_parse(huge, sizeof huge, &st, &err), CP_EFORMAT);
    CP_CHECK(strstr(err.message, "absurd") != NULL);
    uint8_t longer[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CP_CHECK_INT(cp_safetensors_parse(longer, sizeof longer, &st, &err), CP_EFORMAT);
    CP_CHECK(strstr(err.message, "truncated") != NULL);
}

static void test_files(void)
{
    cp_safetensors *st = NULL;
    cp_error err = {0};
    CP_CHECK_INT(cp_safetensors_open("/nonexistent/model.safetensors", &st, &err), CP_ENOTFOUND);
    char path[] = "/tmp/cp_st_XXXXXX";
    int fd = mkstemp(path);
    CP_CHECK(fd >= 0);
    if (fd < 0) return;
    uint8_t data[32];
    valid_data(data);
    size_t size;
    uint8_t *buf = image(VALID, data, sizeof data, &size);
    FILE *f = fdopen(fd, "wb");
    fwrite(buf, 1, size, f);
    fclose(f);
    CP_CHECK_OK(cp_safetensors_open(path, &st, &err), err);
    CP_CHECK(st && cp_safetensors_find(st, "b") && cp_safetensors_find(st, "b")->count == 3);
    cp_safetensors_close(st);
    f = fopen(path, "wb"); /* now an empty file */
    fclose(f);
    CP_CHECK_INT(cp_safetensors_open(path, &st, &err), CP_EFORMAT);
    CP_CHECK(strstr(err.message, path) != NULL);
    remove(path);
    free(buf);
}

int main(void)
{
    test_valid();
    test_truncation();
    test_damage();
    test_files();
    CP_CHECK(cp_half_to_float(0x7c00) == INFINITY && cp_half_to_float(0x8000) == 0.0f);
    CP_CHECK(cp_half_to_float(0x7bff) == 65504.0f && cp_half_to_float(0x0400) == ldexpf(1, -14));
    CP_CHECK(cp_half_to_float(0x03ff) == ldexpf(1023, -24));
    CP_CHECK(cp_bf16_to_f32(0xc000) == -2.0f);
    return CP_TEST_RESULT();
}
