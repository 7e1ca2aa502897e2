/*
 * .npy reader and the precomputed-embeddings document source: good files of every
 * supported dtype and header version, and malformed ones (truncated, wrong dtype, Fortran
 * order, huge shape, bad magic) that must fail with a message naming the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colplaid/index.h"
#include "cp_test.h"
#include "colplaid/npy.h"

static char dir[256];

static const char *path_of(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* Write a .npy with the given header dict (padded per the spec) and data. */
static void write_npy(const char *name, int major, const char *dict, const void *data,
                      size_t data_len, size_t cut)
{
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = pre + dl + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = dl + pad + 1;
    size_t size = pre + hlen + data_len;
    unsigned char *buf = malloc(size);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    if (major == 1) {
        buf[8] = (unsigned char)(hlen & 0xff);
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        for (int i = 0; i < 4; i++)
            buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    }
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', pad);
    buf[pre + hlen - 1] = '\n';
    if (data_len) memcpy(buf + pre + hlen, data, data_len);
    FILE *f = fopen(path_of(name), "wb");
    fwrite(buf, 1, size - cut, f);
    fclose(f);
    free(buf);
}

static void expect_fail(const char *name, const char *needle)
{
    cp_npy npy;
    cp_error err = {0};
    cp_status st = cp_npy_open(path_of(name), &npy, &err);
    CP_CHECK(st != CP_OK);
    if (st == CP_OK) {
        fprintf(stderr, "  %s unexpectedly opened\n", name);
        cp_npy_close(&npy);
        return;
    }
    if (!strstr(err.message, name) || !strstr(err.message, needle)) {
        fprintf(stderr, "  %s: message \"%s\" lacks the file name or \"%s\"\n", name, err.message,
                needle);
        cp_test_failures++;
    }
}

static void test_good(void)
{
    float f[6] = {1, 2, 3, 4, 5, 6};
    write_npy("f32.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f,
              sizeof f, 0);
    cp_npy npy;
    cp_error err = {0};
    CP_CHECK_OK(cp_npy_open(path_of("f32.npy"), &npy, &err), err);
    CP_CHECK_INT(npy.ndim, 2);
    CP_CHECK_INT(npy.shape[0], 2);
    CP_CHECK_INT(npy.shape[1], 3);
    float out[6];
    cp_npy_floats(&npy, 0, 6, out);
    CP_CHECK(memcmp(out, f, sizeof f) == 0);
    cp_npy_close(&npy);

    uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7bff}; /* 1, -2, smallest subnormal, 65504 */
    write_npy("f16.npy", 2, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", h,
              sizeof h, 0);
    CP_CHECK_OK(cp_npy_open(path_of("f16.npy"), &npy, &err), err);
    cp_npy_floats(&npy, 0, 4, out);
    CP_CHECK_NEAR(out[0], 1.0, 0);
    CP_CHECK_NEAR(out[1], -2.0, 0);
    CP_CHECK_NEAR(out[2], 5.960464477539063e-08, 1e-15);
    CP_CHECK_NEAR(out[3], 65504.0, 0);
    cp_npy_close(&npy);

    int64_t l[3] = {5, 0, 7};
    write_npy("i64.npy", 3, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", l,
              sizeof l, 0);
    CP_CHECK_OK(cp_npy_open(path_of("i64.npy"), &npy, &err), err);
    CP_CHECK_INT(cp_npy_int_at(&npy, 2), 7);
    cp_npy_close(&npy);
    int32_t li[2] = {-1, 9};
    write_npy("i32.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", li,
              sizeof li, 0);
    CP_CHECK_OK(cp_npy_open(path_of("i32.npy"), &npy, &err), err);
    CP_CHECK_INT(cp_npy_int_at(&npy, 0), -1);
    cp_npy_close(&npy);
    /* zero-size arrays are valid */
    write_npy("empty.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 8), }", NULL,
              0, 0);
    CP_CHECK_OK(cp_npy_open(path_of("empty.npy"), &npy, &err), err);
    CP_CHECK_INT(npy.count, 0);
    cp_npy_close(&npy);
}

static void test_bad(void)
{
    float f[6] = {0};
    write_npy("trunc.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f,
              sizeof f, 5);
    expect_fail("trunc.npy", "truncated");
    write_npy("f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f, 24, 0);
    expect_fail("f8.npy", "dtype");
    write_npy("big.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", f,
              sizeof f, 0);
    expect_fail("big.npy", "dtype");
    write_npy("fort.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f,
              sizeof f, 0);
    expect_fail("fort.npy", "Fortran");
    write_npy("huge.npy", 1,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 128), }", f,
              sizeof f, 0);
    expect_fail("huge.npy", "elements");
    write_npy("vast.npy", 1,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", f,
              sizeof f, 0);
    expect_fail("vast.npy", "large");
    write_npy("noshape.npy", 1, "{'descr': '<f4', 'fortran_order': False, }", f, sizeof f, 0);
    expect_fail("noshape.npy", "shape");
    /* header length pointing past the end of the file */
    write_npy("hdr.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, 0,
              40);
    expect_fail("hdr.npy", "truncated");
    FILE *fp = fopen(path_of("magic.npy"), "wb");
    fputs("PK\x03\x04 this is a zip, not a npy file", fp);
    fclose(fp);
    expect_fail("magic.npy", "magic");
    fp = fopen(path_of("tiny.npy"), "wb");
    fputs("\x93NU", fp);
    fclose(fp);
    expect_fail("tiny.npy", "bytes");
}

static void test_source(void)
{
    float e[5 * 8];
    for (int i = 0; i < 40; i++)
        e[i] = (float)i;
    write_npy("e.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 8), }", e,
              sizeof e, 0);
    int32_t lens[2] = {2, 3};
    write_npy("l.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", lens,
              sizeof lens, 0);
    FILE *f = fopen(path_of("ids.txt"), "w");
    fputs("alpha\r\nbeta\n", f);
    fclose(f);
    char ep[512], lp[512], ip[512];
    snprintf(ep, sizeof ep, "%s", path_of("e.npy"));
    snprintf(lp, sizeof lp, "%s", path_of("l.npy"));
    snprintf(ip, sizeof ip, "%s", path_of("ids.txt"));
    cp_doc_source src;
    cp_error err = {0};
    CP_CHECK_OK(cp_doc_source_npy_open(ep, lp, ip, &src, &err), err);
    if (err.code != CP_OK) return;
    CP_CHECK_INT(src.count(src.ctx), 2);
    CP_CHECK_INT(src.dim(src.ctx), 8);
    for (int pass = 0; pass < 2; pass++) {
        CP_CHECK_OK(src.rewind(src.ctx, &err), err);
        cp_document d;
        bool has;
        CP_CHECK_OK(src.next(src.ctx, true, &d, &has, &err), err);
        CP_CHECK(has && !strcmp(d.id, "alpha") && d.n_tokens == 2 && d.embeddings[15] == 15.0f);
        CP_CHECK_OK(src.next(src.ctx, pass == 0, &d, &has, &err), err);
        CP_CHECK(has && !strcmp(d.id, "beta") && d.n_tokens == 3);
        if (pass == 0) CP_CHECK(d.embeddings && d.embeddings[0] == 16.0f);
        CP_CHECK_OK(src.next(src.ctx, true, &d, &has, &err), err);
        CP_CHECK(!has);
    }
    src.close(src.ctx);

    /* doclens that do not add up */
    int32_t bad[2] = {2, 2};
    write_npy("lbad.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", bad,
              sizeof bad, 0);
    snprintf(lp, sizeof lp, "%s", path_of("lbad.npy"));
    CP_CHECK(cp_doc_source_npy_open(ep, lp, NULL, &src, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "sum to 4") != NULL);
    /* ids count mismatch */
    snprintf(lp, sizeof lp, "%s", path_of("l.npy"));
    f = fopen(ip, "w");
    fputs("a\nb\nc\n", f);
    fclose(f);
    CP_CHECK(cp_doc_source_npy_open(ep, lp, ip, &src, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "ids.txt") != NULL);
    /* an empty id line is named */
    f = fopen(ip, "w");
    fputs("a\n\n", f);
    fclose(f);
    CP_CHECK(cp_doc_source_npy_open(ep, lp, ip, &src, &err) == CP_EINVAL);
    CP_CHECK(strstr(err.message, "line 2") != NULL);
    /* embeddings given as integers */
    CP_CHECK(cp_doc_source_npy_open(lp, lp, NULL, &src, &err) == CP_EFORMAT);
    CP_CHECK(strstr(err.message, "float32") != NULL);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/cp_test_npy_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_good();
    test_bad();
    test_source();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return CP_TEST_RESULT();
}
