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

/* Online cores (at least 1): the default number of threads of the CLI and the server. */
int cp_cpu_count(void);

/* Bit set of CP_CPU_* features; CP_FORCE_PORTABLE=1 in the environment hides them all so
 * that the portable kernels can be run and compared on any machine. */
unsigned cp_cpu_features(void);

/*
 * Intel AMX (tiles + BF16) for this process: true when CPUID reports AMX-TILE and AMX-BF16
 * and Linux granted the tile register state (arch_prctl ARCH_REQ_XCOMP_PERM, XTILEDATA),
 * which a process must request before its first tile instruction. Asked once; false under
 * CP_FORCE_PORTABLE like every other feature. Shared by the encoder's and the index's AMX
 * kernels.
 */
bool cp_amx_enable(void);

/* The 64-byte operand of LDTILECFG (palette 1): bytes per row and rows of tiles 0-15. */
typedef struct cp_amx_tilecfg {
    unsigned char palette, start_row, reserved[14];
    unsigned short colsb[16];
    unsigned char rows[16];
} cp_amx_tilecfg;

/* Fill cfg for tiles 0 .. n_tiles-1 each of 16 rows x 64 bytes (the full tile), all the
 * kernels here use; the caller passes it to _tile_loadconfig. */
void cp_amx_tilecfg_full(cp_amx_tilecfg *cfg, int n_tiles);

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
