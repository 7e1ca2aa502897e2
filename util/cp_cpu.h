/*
 * What the CPU can do, for runtime kernel dispatch, and the process environment that
 * the numeric libraries need before they load.
 *
 * Thread safety: cp_cpu_features() may be called from any thread (the answer is computed
 * once and never changes). cp_runtime_prepare() must be called first thing in main().
 */
#ifndef CP_CPU_H
#define CP_CPU_H

#include <stdbool.h>

enum {
    CP_CPU_AVX2 = 1u << 0,     /* AVX2 + FMA */
    CP_CPU_AVX512 = 1u << 1,   /* AVX-512 F, BW, DQ, VL */
    CP_CPU_AVX512BF16 = 1u << 2,
    CP_CPU_AVX512VNNI = 1u << 3,
    CP_CPU_F16C = 1u << 4,
};

/* Bit set of CP_CPU_* features; CP_FORCE_PORTABLE=1 in the environment hides them all so
 * that the portable kernels can be run and compared on any machine. */
unsigned cp_cpu_features(void);

/* The OpenBLAS core type that suits this CPU ("SkylakeX", "Haswell"), or NULL. */
const char *cp_openblas_coretype(void);

/*
 * Debian's OpenBLAS 0.3.21 does not recognise recent Xeons and silently uses SSE3 kernels
 * (about 5x slower sgemm), and spinning libgomp threads fight BLAS threads on small
 * machines. Both libraries read their settings when they load, before main() runs, so the
 * only reliable fix is to set the environment and re-execute the program once. Settings
 * the user chose are never overridden. Returns normally when nothing needed changing.
 */
void cp_runtime_prepare(int argc, char **argv);

#endif
