/*
 * Unit tests of the API keys file (server/auth.c): lines are read whole, so the tail of a
 * long comment never becomes a key (issue 12, defect 3); over-long lines, NUL bytes,
 * malformed lines and repeated keys are refused with the file's line number; "rate=N" and
 * the token bucket behind the per-key rate limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cp_test.h"

static char path[64];

static void write_file(const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CP_CHECK(f != NULL);
    if (!f) return;
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Load data; returns the auth (or NULL) and leaves the error in *err. */
static cp_auth *load(const char *data, size_t len, cp_error *err)
{
    write_file(data, len);
    cp_auth *a = NULL;
    memset(err, 0, sizeof *err);
    cp_status st = cp_auth_load(path, &a, err);
    CP_CHECK((st == CP_OK) == (a != NULL));
    return a;
}

static cp_scope scope_of(const cp_auth *a, const char *key)
{
    char h[600];
    int line;
    snprintf(h, sizeof h, "Bearer %s", key);
    return cp_auth_check(a, h, &line);
}

static void expect_refused(const char *data, size_t len, const char *want_in_message)
{
    cp_error err;
    cp_auth *a = load(data, len, &err);
    CP_CHECK(a == NULL);
    if (!strstr(err.message, want_in_message)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err.message, want_in_message);
        CP_CHECK(!"message names the line");
    }
    cp_auth_free(a);
}

static void test_long_comment(void)
{
    /* The issue's line: '#' + 1022 x's + "hiddenkey admin", after a real key. */
    char data[2048];
    int n = snprintf(data, sizeof data, "reader-key-0123456789 read\n#");
    memset(data + n, 'x', 1022);
    n += 1022;
    n += snprintf(data + n, sizeof data - (size_t)n, "hiddenkey admin\n");
    cp_error err;
    cp_auth *a = load(data, (size_t)n, &err);
    CP_CHECK(a != NULL);
    CP_CHECK_INT(cp_auth_count(a), 1);
    CP_CHECK_INT(scope_of(a, "hiddenkey"), CP_SCOPE_NONE);
    CP_CHECK_INT(scope_of(a, "reader-key-0123456789"), CP_SCOPE_READ);
    cp_auth_free(a);
    /* A comment line of exactly the longest allowed length is fine; one byte more is not. */
    char *big = malloc(CP_AUTH_LINE_MAX + 64);
    n = snprintf(big, 64, "admin-key-0123456789 admin\n#");
    memset(big + n, 'y', CP_AUTH_LINE_MAX - 1);
    n += CP_AUTH_LINE_MAX - 1;
    big[n++] = '\n';
    a = load(big, (size_t)n, &err);
    CP_CHECK(a != NULL);
    cp_auth_free(a);
    big[n - 1] = 'y';
    big[n++] = '\n';
    expect_refused(big, (size_t)n, "line 2: 4097 bytes");
    free(big);
}

static void test_malformed(void)
{
    static const char nul[] = "good-key-0123456789 read\nbad-key\0-0123456789 admin\n";
    expect_refused(nul, sizeof nul - 1, "line 2: a NUL byte");
    expect_refused("k1-0123456789 read\n\nk2-0123456789 root\n", 38, "line 3:");
    expect_refused("k1-0123456789 read extra\n", 25, "line 1:");
    expect_refused("short read\n", 11, "line 1: a key must have");
    expect_refused("k1-0123456789 read\nk1-0123456789 admin\n", 39, "line 2: the key of line 1");
    expect_refused("k1-0123456789 read rate=0\n", 26, "line 1:");
    expect_refused("k1-0123456789 read rate=x\n", 26, "line 1:");
    expect_refused("k1-0123456789 read rate=nan\n", 28, "line 1:");
    expect_refused("# only comments\n\n", 17, "holds no API keys");
    /* No final newline, CRLF and comments after the scope are fine. */
    cp_error err;
    const char ok[] = "k1-0123456789 read # dashboard\r\nk2-0123456789 write rate=2.5\r\n"
                      "  k3-0123456789\tadmin";
    cp_auth *a = load(ok, sizeof ok - 1, &err);
    CP_CHECK(a != NULL);
    CP_CHECK_INT(cp_auth_count(a), 3);
    CP_CHECK_INT(scope_of(a, "k1-0123456789"), CP_SCOPE_READ);
    CP_CHECK_INT(scope_of(a, "k2-0123456789"), CP_SCOPE_WRITE);
    CP_CHECK_INT(scope_of(a, "k3-0123456789"), CP_SCOPE_ADMIN);
    cp_auth_free(a);
}

static void test_rate(void)
{
    /* Token bucket: a burst of max(1, rate), then rate per second. */
    cp_rate_bucket b = {0};
    int retry;
    for (int i = 0; i < 5; i++)
        CP_CHECK(cp_rate_take(&b, 5, 100.0, &retry));
    CP_CHECK(!cp_rate_take(&b, 5, 100.0, &retry));
    CP_CHECK_INT(retry, 1);
    CP_CHECK(cp_rate_take(&b, 5, 100.2, &retry)); /* one token back after 0.2 s */
    CP_CHECK(!cp_rate_take(&b, 5, 100.2, &retry));
    cp_rate_bucket slow = {0};
    CP_CHECK(cp_rate_take(&slow, 0.25, 10.0, &retry));
    CP_CHECK(!cp_rate_take(&slow, 0.25, 11.0, &retry));
    CP_CHECK_INT(retry, 3); /* 0.25 token back after 1 s: 3 s more for the next */
    cp_rate_bucket off = {0};
    for (int i = 0; i < 1000; i++)
        CP_CHECK(cp_rate_take(&off, 0, 1.0, &retry));

    /* Per key: rate=N overrides the default, keys do not share buckets. */
    cp_error err;
    const char keys[] = "k1-0123456789 read rate=2\nk2-0123456789 read\n";
    cp_auth *a = load(keys, sizeof keys - 1, &err);
    CP_CHECK(a != NULL);
    if (!a) return;
    cp_auth_set_rate(a, 3);
    int l1, l2;
    cp_auth_check(a, "Bearer k1-0123456789", &l1);
    cp_auth_check(a, "Bearer k2-0123456789", &l2);
    CP_CHECK_INT(l1, 1);
    CP_CHECK_INT(l2, 2);
    int ok1 = 0, ok2 = 0;
    for (int i = 0; i < 10; i++) {
        ok1 += cp_auth_rate_take(a, l1, 50.0, &retry);
        ok2 += cp_auth_rate_take(a, l2, 50.0, &retry);
    }
    CP_CHECK_INT(ok1, 2);
    CP_CHECK_INT(ok2, 3);
    cp_auth_free(a);
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/cp_test_auth_%ld.txt", (long)getpid());
    test_long_comment();
    test_malformed();
    test_rate();
    unlink(path);
    return CP_TEST_RESULT();
}
