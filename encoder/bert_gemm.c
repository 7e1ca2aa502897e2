/*
 * Matrix products of the BERT encoder, Y = X W^T + b, and the thread helper.
 *
 * Two implementations, chosen once per process (cp_gemm_choose):
 * - AVX-512 CPUs: our own kernel (bert_gemm_avx512.c) on weights packed at load time.
 *   Debian's OpenBLAS 0.3.21 does not recognise some of these CPUs and then uses SSE3
 *   kernels unless OPENBLAS_CORETYPE was set before it loaded; a library cannot do that
 *   for its caller. With CP_GEMM=auto, where OpenBLAS did pick AVX-512 kernels and runs
 *   on the caller's thread count, cp_gemm_pick times both on one real layer at load and
 *   keeps the faster (OpenBLAS's SkylakeX sgemm was about 10% faster single-threaded on
 *   the development machine). CP_GEMM=blas forces OpenBLAS (benchmarks).
 * - elsewhere: OpenBLAS cblas_sgemm, which recognises older CPUs correctly.
 * A portable C kernel on the packed layout exists to test the AVX-512 one against.
 * CP_GEMM=bf16 opts in to reduced precision: AMX tiles where the CPU and kernel allow
 * (bert_gemm_amx.c), else AVX512-BF16 (bert_gemm_bf16.c).
 */
#include <cblas.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include "bert_internal.h"
#include "cp_cpu.h"

int cp_gemm_choose(void)
{
    const char *force = getenv("CP_GEMM");
    if (force && strcmp(force, "blas") == 0) return CP_GEMM_BLAS;
    if (force && strcmp(force, "portable") == 0) return CP_GEMM_PORTABLE;
    if (force && strcmp(force, "bf16") == 0) {
        bool avx512bf16 = (cp_cpu_features() & CP_CPU_AVX512BF16) && cp_gemm_bf16_available();
        if (avx512bf16 && cp_gemm_amx_available()) return CP_GEMM_AMX;
        if (avx512bf16) return CP_GEMM_BF16;
        fprintf(stderr, "colplaid: CP_GEMM=bf16 needs AVX512-BF16; using fp32\n");
    }
    return (cp_cpu_features() & CP_CPU_AVX512) ? CP_GEMM_AVX512 : CP_GEMM_BLAS;
}

/* Whether OpenBLAS chose AVX-512 kernels (it does not on every AVX-512 CPU). */
static bool openblas_avx512(void)
{
    static const char *const cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    const char *name = openblas_get_corename();
    for (size_t i = 0; name && i < sizeof cores / sizeof cores[0]; i++)
        if (strcasecmp(name, cores[i]) == 0) return true;
    return false;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of 3 timings of Y = X W^T with kind. */
static double time_kind(const cp_linear *l, int kind, const float *x, int rows, float *y,
                        int threads)
{
    double best = 1e30;
    cp_linear_apply(l, kind, x, rows, l->in, y, l->out, threads); /* warm-up */
    for (int r = 0; r < 3; r++) {
        double t0 = seconds();
        cp_linear_apply(l, kind, x, rows, l->in, y, l->out, threads);
        double t = seconds() - t0;
        if (t < best) best = t;
    }
    return best;
}

int cp_gemm_pick(const cp_linear *sample, int threads)
{
    int kind = cp_gemm_choose();
    const char *force = getenv("CP_GEMM");
    if (kind == CP_GEMM_BLAS && force && strcmp(force, "blas") == 0 &&
        (cp_cpu_features() & CP_CPU_AVX512) && !openblas_avx512())
        fprintf(stderr, "colplaid: warning: CP_GEMM=blas, but OpenBLAS runs its %s kernels "
                        "on this AVX-512 CPU (set OPENBLAS_CORETYPE=SkylakeX)\n",
                openblas_get_corename());
    /* Timing is opt-in: it makes the choice (and the last bits of the vectors) depend on
     * the machine's load at start-up, and OpenBLAS's threads ignore the encoder's. */
    if (!force || strcmp(force, "auto") != 0 || kind != CP_GEMM_AVX512 || !sample->w)
        return kind;
    /* OpenBLAS only if it runs AVX-512 code with the thread count the caller asked for */
    if (!openblas_avx512() || openblas_get_num_threads() != threads) return kind;
    int rows = 256;
    size_t np = (size_t)((sample->out + 31) / 32) * sample->in * 32;
    float *x = malloc(sizeof(float) * (size_t)rows * sample->in);
    float *y = malloc(sizeof(float) * (size_t)rows * sample->out);
    float *packed = aligned_alloc(64, (np * sizeof(float) + 63) / 64 * 64);
    if (x && y && packed) {
        for (size_t i = 0; i < (size_t)rows * sample->in; i++) x[i] = (float)(i % 13) * 0.1f;
        cp_pack_weights(sample->w, sample->in, sample->out, packed);
        cp_linear own = {.in = sample->in, .out = sample->out, .packed = packed};
        double t_own = time_kind(&own, CP_GEMM_AVX512, x, rows, y, threads);
        double t_blas = time_kind(sample, CP_GEMM_BLAS, x, rows, y, threads);
        if (t_blas < t_own) kind = CP_GEMM_BLAS;
        if (getenv("CP_GEMM_VERBOSE"))
            fprintf(stderr, "colplaid: matrix kernel: own %.2f ms, OpenBLAS (%s) %.2f ms: %s\n",
                    t_own * 1e3, openblas_get_corename(), t_blas * 1e3, cp_gemm_name(kind));
    }
    free(x), free(y), free(packed);
    return kind;
}

const char *cp_gemm_name(int kind)
{
    return kind == CP_GEMM_AVX512     ? "avx512"
           : kind == CP_GEMM_PORTABLE ? "portable"
           : kind == CP_GEMM_BF16     ? "avx512-bf16"
           : kind == CP_GEMM_AMX      ? "amx-bf16"
                                      : "openblas";
}

void cp_pack_weights(const float *w, int in, int out, float *packed)
{
    int panels = (out + 31) / 32;
    memset(packed, 0, (size_t)panels * in * 32 * sizeof(float));
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++)
            packed[((size_t)(o / 32) * in + k) * 32 + o % 32] = w[(size_t)o * in + k];
}

void *cp_huge_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    void *p = NULL;
    if (posix_memalign(&p, bytes >= huge ? huge : 64, (bytes + 63) / 64 * 64) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= huge) madvise(p, bytes / huge * huge, MADV_HUGEPAGE); /* a hint: may fail */
#endif
    return p;
}

cp_status cp_linear_prepare(cp_linear *l, int kind, cp_error *err)
{
    if (kind == CP_GEMM_BLAS) return CP_OK;
    if (kind == CP_GEMM_BF16 || kind == CP_GEMM_AMX) {
        size_t n16 = (size_t)((l->out + 31) / 32) * (size_t)cp_bf16_pairs(l->in) * 64;
        l->packed16 = malloc(n16 * sizeof *l->packed16);
        if (!l->packed16) return cp_error_set(err, CP_ENOMEM, "out of memory packing weights");
        cp_pack_weights_bf16(l->w, l->in, l->out, l->packed16);
        free(l->w);
        l->w = NULL;
        return CP_OK;
    }
    size_t n = (size_t)((l->out + 31) / 32) * l->in * 32;
    l->packed = cp_huge_alloc(n * sizeof(float));
    if (!l->packed) return cp_error_set(err, CP_ENOMEM, "out of memory packing weights");
    cp_pack_weights(l->w, l->in, l->out, l->packed);
    free(l->w); /* the packed copy replaces it: weights are held once */
    l->w = NULL;
    return CP_OK;
}

void cp_linear_free(cp_linear *l)
{
    free(l->w);
    free(l->packed);
    free(l->packed16);
    free(l->bias);
    memset(l, 0, sizeof *l);
}

void cp_gemm_packed_portable(const float *x, int rows, int ldx, const float *packed, int in,
                             int out, const float *bias, float *y, int ldy)
{
    for (int p = 0; p < (out + 31) / 32; p++) {
        int cols = out - p * 32 < 32 ? out - p * 32 : 32;
        const float *wp = packed + (size_t)p * in * 32;
        for (int r = 0; r < rows; r++) {
            float acc[32];
            for (int j = 0; j < 32; j++) acc[j] = bias && j < cols ? bias[p * 32 + j] : 0.0f;
            const float *xr = x + (size_t)r * ldx;
            for (int k = 0; k < in; k++)
                for (int j = 0; j < 32; j++) acc[j] += xr[k] * wp[(size_t)k * 32 + j];
            memcpy(y + (size_t)r * ldy + p * 32, acc, (size_t)cols * sizeof(float));
        }
    }
}

typedef struct pf_job {
    void (*fn)(void *ctx, int begin, int end, int tid);
    void *ctx;
    int begin, end, tid;
} pf_job;

static void *pf_run(void *arg)
{
    pf_job *job = arg;
    job->fn(job->ctx, job->begin, job->end, job->tid);
    return NULL;
}

void cp_parallel_for(int n, int threads, void (*fn)(void *ctx, int begin, int end, int tid),
                     void *ctx)
{
    if (threads > n) threads = n;
    if (threads > CP_MAX_THREADS) threads = CP_MAX_THREADS;
    if (threads <= 1) {
        if (n > 0) fn(ctx, 0, n, 0);
        return;
    }
    pf_job jobs[CP_MAX_THREADS];
    pthread_t tids[CP_MAX_THREADS];
    for (int t = 0; t < threads; t++)
        jobs[t] = (pf_job){fn, ctx, (int)((long)n * t / threads),
                           (int)((long)n * (t + 1) / threads), t};
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tids[t], NULL, pf_run, &jobs[t]) != 0) break;
        started = t;
    }
    fn(ctx, jobs[0].begin, jobs[0].end, 0);
    /* A thread that could not be started: its share runs here, so nothing is skipped. */
    for (int t = started + 1; t < threads; t++) fn(ctx, jobs[t].begin, jobs[t].end, t);
    for (int t = 1; t <= started; t++) pthread_join(tids[t], NULL);
}

typedef struct gemm_job {
    const cp_linear *l;
    const float *x;
    int rows, ldx, ldy, kind;
    float *y;
    float *ws; /* AVX-512: per thread, cp_gemm_avx512_xp_floats(rows) floats, or NULL */
    int gelu;  /* AVX-512 with ws: GELU fused into the product */
} gemm_job;

static void gemm_panels(void *ctx, int begin, int end, int tid)
{
    const gemm_job *j = ctx;
    const cp_linear *l = j->l;
    if (j->kind == CP_GEMM_AMX &&
        cp_gemm_amx_panels(j->x, j->rows, j->ldx, l->packed16, l->in, l->out, l->bias, j->y,
                           j->ldy, begin, end) == 0)
        return;
    if (j->kind == CP_GEMM_BF16 || j->kind == CP_GEMM_AMX) { /* AMX: out of memory */
        cp_gemm_bf16_panels(j->x, j->rows, j->ldx, l->packed16, l->in, l->out, l->bias, j->y,
                            j->ldy, begin, end);
        return;
    }
    if (j->kind == CP_GEMM_AVX512 && j->ws) {
        cp_gemm_avx512_panels_ws(j->x, j->rows, j->ldx, l->packed, l->in, l->out, l->bias, j->y,
                                 j->ldy, begin, end,
                                 j->ws + (size_t)tid * cp_gemm_avx512_xp_floats(j->rows), j->gelu);
        return;
    }
    if (j->kind == CP_GEMM_AVX512) {
        cp_gemm_packed_avx512_panels(j->x, j->rows, j->ldx, l->packed, l->in, l->out, l->bias,
                                     j->y, j->ldy, begin, end);
        return;
    }
    /* portable: run it on the columns of this range only */
    int out = end * 32 < l->out ? end * 32 : l->out;
    cp_gemm_packed_portable(j->x, j->rows, j->ldx, l->packed + (size_t)begin * l->in * 32,
                            l->in, out - begin * 32, l->bias ? l->bias + begin * 32 : NULL,
                            j->y + begin * 32, j->ldy);
}

static void gemm_blas(const cp_linear *l, const float *x, int rows, int ldx, float *y, int ldy)
{
    for (int r = 0; r < rows; r++) {
        if (l->bias)
            memcpy(y + (size_t)r * ldy, l->bias, (size_t)l->out * sizeof(float));
        else
            memset(y + (size_t)r * ldy, 0, (size_t)l->out * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->in, 1.0f, x, ldx, l->w,
                l->in, 1.0f, y, ldy);
}

size_t cp_gemm_workspace_floats(int rows, int threads)
{
    if (threads > CP_MAX_THREADS) threads = CP_MAX_THREADS;
    return cp_gemm_avx512_xp_floats(rows) * (size_t)(threads < 1 ? 1 : threads);
}

bool cp_linear_apply_ws(const cp_linear *l, int kind, const float *x, int rows, int ldx, float *y,
                        int ldy, int threads, float *ws, bool gelu)
{
    if (rows <= 0) return gelu;
    if (kind == CP_GEMM_BLAS) {
        gemm_blas(l, x, rows, ldx, y, ldy);
        return false;
    }
    ws = kind == CP_GEMM_AVX512 ? ws : NULL;
    gemm_job j = {l, x, rows, ldx, ldy, kind, y, ws, gelu && ws};
    cp_parallel_for((l->out + 31) / 32, threads, gemm_panels, &j);
    return j.gelu;
}

void cp_linear_apply(const cp_linear *l, int kind, const float *x, int rows, int ldx, float *y,
                     int ldy, int threads)
{
    float *ws = NULL;
    if (kind == CP_GEMM_AVX512 && rows > 0) {
        size_t bytes = cp_gemm_workspace_floats(rows, threads) * sizeof(float);
        ws = aligned_alloc(64, (bytes + 63) / 64 * 64);
    }
    cp_linear_apply_ws(l, kind, x, rows, ldx, y, ldy, threads, ws, false);
    free(ws);
}
