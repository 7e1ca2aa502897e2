/* CPU feature detection and numeric-library environment: see cp_cpu.h. */
#include "cp_cpu.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned detect_features(void)
{
    const char *force = getenv("CP_FORCE_PORTABLE");
    if (force && force[0] && strcmp(force, "0") != 0) return 0;
    unsigned f = 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= CP_CPU_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        f |= CP_CPU_AVX512;
    if ((f & CP_CPU_AVX512) && __builtin_cpu_supports("avx512vnni")) f |= CP_CPU_AVX512VNNI;
#if defined(__clang__) || __GNUC__ >= 12
    if ((f & CP_CPU_AVX512) && __builtin_cpu_supports("avx512bf16")) f |= CP_CPU_AVX512BF16;
#endif
    if (f & CP_CPU_AVX2) f |= CP_CPU_F16C; /* every AVX2 CPU has F16C */
    return f;
}

int cp_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

unsigned cp_cpu_features(void)
{
    /* Racing first calls compute the same value, so a plain static is enough. */
    static volatile int ready;
    static volatile unsigned features;
    if (!ready) {
        features = detect_features();
        ready = 1;
    }
    return features;
}

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>

static bool request_amx(void)
{
    unsigned a, b, c, d;
    /* CPUID.(7,0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d >> 22 & 1) || !(d >> 24 & 1))
        return false;
    /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): without it the first tile
     * instruction kills the process with SIGILL. */
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}
#else
static bool request_amx(void)
{
    return false;
}
#endif

bool cp_amx_enable(void)
{
    /* 0 unknown, 1 yes, -1 no. Racing first calls make the same (idempotent) request and
     * store the same answer. */
    static volatile int state;
    if (state == 0) {
        const char *force = getenv("CP_FORCE_PORTABLE");
        bool hidden = force && force[0] && strcmp(force, "0") != 0;
        state = !hidden && request_amx() ? 1 : -1;
    }
    return state == 1;
}

void cp_amx_tilecfg_full(cp_amx_tilecfg *cfg, int n_tiles)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->palette = 1;
    for (int t = 0; t < n_tiles && t < 16; t++) {
        cfg->colsb[t] = 64;
        cfg->rows[t] = 16;
    }
}

const char *cp_openblas_coretype(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

void cp_runtime_prepare(int argc, char **argv)
{
    (void)argc;
    if (getenv("CP_RUNTIME_PREPARED")) return; /* we are the re-executed copy */
    int changed = 0;
    const char *coretype = cp_openblas_coretype();
    if (coretype && !getenv("OPENBLAS_CORETYPE")) {
        setenv("OPENBLAS_CORETYPE", coretype, 1);
        changed = 1;
    }
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        changed = 1;
    }
    setenv("CP_RUNTIME_PREPARED", "1", 1);
    if (!changed) return;
    /* If exec fails we simply go on with the slower settings. */
    execv("/proc/self/exe", argv);
}

_Static_assert(sizeof(cp_amx_tilecfg) == 64, "LDTILECFG reads exactly 64 bytes");
