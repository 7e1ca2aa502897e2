/*
 * A minimal test harness for ctest-driven executables: each check prints what it expected
 * and what it got, and the test exits non-zero if any failed. Exit 77 means skipped.
 */
#ifndef CP_TEST_H
#define CP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int cp_test_failures;

#define CP_TEST_SKIP 77

#define CP_CHECK(cond)                                                                     \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);       \
            cp_test_failures++;                                                            \
        }                                                                                  \
    } while (0)

#define CP_CHECK_INT(got, want)                                                            \
    do {                                                                                   \
        long long g_ = (long long)(got), w_ = (long long)(want);                           \
        if (g_ != w_) {                                                                    \
            fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__,   \
                    #got, w_, g_);                                                         \
            cp_test_failures++;                                                            \
        }                                                                                  \
    } while (0)

#define CP_CHECK_NEAR(got, want, tol)                                                      \
    do {                                                                                   \
        double g_ = (double)(got), w_ = (double)(want);                                    \
        if (!(fabs(g_ - w_) <= (tol))) {                                                   \
            fprintf(stderr, "%s:%d: %s: expected %.9g (+-%g), got %.9g\n", __FILE__,       \
                    __LINE__, #got, w_, (double)(tol), g_);                                \
            cp_test_failures++;                                                            \
        }                                                                                  \
    } while (0)

/* Check a cp_status is CP_OK, printing the error message otherwise. */
#define CP_CHECK_OK(status, err)                                                           \
    do {                                                                                   \
        if ((status) != CP_OK) {                                                           \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #status,         \
                    (err).message);                                                        \
            cp_test_failures++;                                                            \
        }                                                                                  \
    } while (0)

#define CP_TEST_RESULT()                                                                   \
    (cp_test_failures ? (fprintf(stderr, "%d check(s) failed\n", cp_test_failures), 1) : 0)

/* The repository's fixture folder tests/data (vocabulary, real ColBERT indexes; see its
 * README): $CP_TEST_DATA as ctest sets it, else the path compiled in. */
static inline const char *cp_test_data(void)
{
    const char *dir = getenv("CP_TEST_DATA");
    if (dir && *dir) return dir;
#ifdef CP_TEST_DATA_DIR
    return CP_TEST_DATA_DIR;
#else
    return "tests/data";
#endif
}

#endif
