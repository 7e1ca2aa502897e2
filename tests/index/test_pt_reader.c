/*
 * The .pt reader on the real Stanford ColBERT files: shapes and dtypes of every tensor, then
 * robustness: every truncation of the small files and thousands of random byte flips must
 * fail with CP_EFORMAT or decode to tensors that lie inside the buffer, never read outside
 * it (each input is an exact-size heap copy, so ASan sees any overrun).
 */
#include <sys/stat.h>

#include "cp_test.h"
#include "colplaid/pt.h"
#include "storage_test_util.h"

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static void expect_shape(const char *dir, const char *name, int n_tensors, cp_pt_dtype dtype,
                         int ndim, int64_t d0, int64_t d1)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    cp_pt_file f;
    cp_error err = {0};
    CP_CHECK_OK(cp_pt_open(p, &f, &err), err);
    CP_CHECK_INT(f.n_tensors, n_tensors);
    if (f.n_tensors >= 1) {
        CP_CHECK_INT(f.tensors[0].dtype, dtype);
        CP_CHECK_INT(f.tensors[0].ndim, ndim);
        if (ndim >= 1) CP_CHECK_INT(f.tensors[0].shape[0], d0);
        if (ndim >= 2) CP_CHECK_INT(f.tensors[0].shape[1], d1);
    }
    cp_pt_close(&f);
}

/* Parse a damaged copy; a success must only point inside the copy. */
static int parse_damaged(const uint8_t *src, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, src, n);
    cp_pt_file f;
    cp_error err = {0};
    int bad = 0;
    cp_status st = cp_pt_parse(copy, n, "damaged.pt", &f, &err);
    if (st == CP_OK) {
        for (int i = 0; i < f.n_tensors; i++) {
            const cp_pt_tensor *t = &f.tensors[i];
            if (t->data < copy || t->data + t->numel * t->elem_size > copy + n) bad++;
        }
    } else if (st != CP_EFORMAT || !strstr(err.message, "damaged.pt")) {
        fprintf(stderr, "unexpected failure: %d %s\n", st, err.message);
        bad++;
    }
    free(copy);
    return bad;
}

static void fuzz_file(const char *dir, const char *name, int flips)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    size_t n = 0;
    uint8_t *b = slurp(p, &n);
    CP_CHECK(b != NULL);
    if (!b) return;
    int bad = 0;
    for (size_t len = 0; len < n; len += n > 4000 ? 97 : 1) bad += parse_damaged(b, len);
    uint64_t s = 2024;
    uint8_t *m = malloc(n);
    for (int i = 0; i < flips; i++) {
        memcpy(m, b, n);
        int k = 1 + (int)(st_rand(&s) % 4);
        for (int j = 0; j < k; j++) m[st_rand(&s) % n] = (uint8_t)st_rand(&s);
        bad += parse_damaged(m, n);
    }
    CP_CHECK_INT(bad, 0);
    free(m);
    free(b);
}

/* A storage that claims more elements than its zip entry holds is refused, not read past. */
static void test_oversized_storage(const char *dir)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/buckets.pt", dir);
    size_t n = 0;
    uint8_t *b = slurp(p, &n);
    CP_CHECK(b != NULL);
    if (!b) return;
    /* The cutoffs storage reference ends "... 'cpu' BINPUT 4, BININT1 15, TUPLE". */
    static const uint8_t pat[] = {'c', 'p', 'u', 'q', 4, 'K', 15, 't'};
    uint8_t *hit = memmem(b, n, pat, sizeof pat);
    CP_CHECK(hit != NULL);
    if (hit) {
        hit[6] = 255;
        cp_pt_file f;
        cp_error err = {0};
        CP_CHECK_INT(cp_pt_parse(b, n, "big.pt", &f, &err), CP_EFORMAT);
        CP_CHECK(strstr(err.message, "truncated") != NULL);
    }
    free(b);
}

int main(void)
{
    char dir[1024];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s/colbert-miyazaki/nbits4", cp_test_data());
    if (stat(dir, &sb) != 0) {
        printf("FAIL: the fixture %s is missing (tests/data)\n", dir);
        return 1;
    }
    expect_shape(dir, "centroids.pt", 1, CP_PT_F16, 2, 1024, 128);
    expect_shape(dir, "0.codes.pt", 1, CP_PT_I32, 1, 15899, 0);
    expect_shape(dir, "0.residuals.pt", 1, CP_PT_U8, 2, 15899, 64);
    expect_shape(dir, "buckets.pt", 2, CP_PT_F32, 1, 15, 0);
    expect_shape(dir, "ivf.pid.pt", 2, CP_PT_I32, 1, 8113, 0);
    expect_shape(dir, "avg_residual.pt", 1, CP_PT_F32, 0, 0, 0);
    cp_pt_file f;
    cp_error err = {0};
    char p[1100];
    snprintf(p, sizeof p, "%s/metadata.json", dir);
    CP_CHECK_INT(cp_pt_open(p, &f, &err), CP_EFORMAT);
    snprintf(p, sizeof p, "%s/nope.pt", dir);
    CP_CHECK_INT(cp_pt_open(p, &f, &err), CP_ENOTFOUND);
    test_oversized_storage(dir);
    fuzz_file(dir, "buckets.pt", 3000);
    fuzz_file(dir, "ivf.pid.pt", 1000);
    fuzz_file(dir, "avg_residual.pt", 2000);
    return CP_TEST_RESULT();
}
