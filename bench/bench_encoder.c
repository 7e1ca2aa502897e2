/*
 * Encoder speed: the BERT forward pass + ColBERT projection and L2 normalisation of
 * colplaid on a batch of random token ids (default 8 sequences x 128 tokens), reported as
 * tokens per second of wall time and per CPU-second, as one JSON line.
 * bench/encoder_peers/run.sh runs it side by side with PyTorch and onnxruntime-node and
 * prints the ratios.
 *
 * Usage: bench_encoder MODEL_DIR [--batch 8] [--tokens 128] [--threads 1] [--reps 5]
 * CP_GEMM=blas|portable|bf16 selects another matrix kernel (default: the CPU's best); with
 * bf16 the cosine of every output vector against the fp32 kernel's is reported too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bert_internal.h"
#include "encoder_internal.h"

static double now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int arg_int(int argc, char **argv, const char *name, int def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return atoi(argv[i + 1]);
    return def;
}

/* The ColBERT head's last step, as in bert.c (the peers time it too). */
static void l2_normalise(float *v, int rows, int dim)
{
    for (int i = 0; i < rows; i++, v += dim) {
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += (double)v[j] * v[j];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int j = 0; j < dim; j++) v[j] *= inv;
    }
}

/* Reduced precision: cosine of each output vector against the fp32 kernel's. */
static void drift_vs_fp32(const char *dir, const cp_bert_batch *b, int threads,
                          const float *proj, int dim)
{
    setenv("CP_GEMM", "fp32", 1); /* anything but bf16/blas/portable: the default kernel */
    cp_encoder enc = {0};
    cp_encoder_options opts = {.threads = threads};
    cp_error err = {0};
    if (cp_bert_encoder_load(dir, &opts, &enc, &err)) return;
    const cp_bert_model *m = enc.impl;
    int T = b->off[b->n_seq], h = m->cfg.hidden;
    float *hidden = malloc(sizeof(float) * (size_t)T * h), *ref = malloc(sizeof(float) * (size_t)T * dim);
    double sum = 0, worst = 1;
    if (hidden && ref && cp_bert_forward(m, b, threads, hidden, &err) == CP_OK) {
        cp_linear_apply(&m->proj, m->gemm_kind, hidden, T, h, ref, dim, threads);
        for (int t = 0; t < T; t++) {
            double xy = 0, xx = 0, yy = 0;
            for (int j = 0; j < dim; j++) {
                double x = proj[(size_t)t * dim + j], y = ref[(size_t)t * dim + j];
                xy += x * y, xx += x * x, yy += y * y;
            }
            double c = xy / sqrt(xx * yy);
            sum += c;
            if (c < worst) worst = c;
        }
        printf(",\"cos_vs_fp32_mean\":%.6f,\"cos_vs_fp32_min\":%.6f", sum / T, worst);
    }
    free(hidden), free(ref);
    enc.backend->free(&enc);
    free(enc.fingerprint);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [--batch B] [--tokens L] [--threads T] [--reps R]\n",
                argv[0]);
        return 2;
    }
    int batch = arg_int(argc, argv, "--batch", 8), len = arg_int(argc, argv, "--tokens", 128);
    int threads = arg_int(argc, argv, "--threads", 1), reps = arg_int(argc, argv, "--reps", 5);
    cp_encoder enc = {0};
    cp_encoder_options opts = {.threads = threads};
    cp_error err = {0};
    if (cp_bert_encoder_load(argv[1], &opts, &enc, &err)) {
        fprintf(stderr, "bench_encoder: %s\n", err.message);
        return 1;
    }
    const cp_bert_model *m = enc.impl; /* the model is the first member of the backend state */
    int T = batch * len, h = m->cfg.hidden;
    int32_t *ids = malloc(sizeof *ids * (size_t)T), *off = malloc(sizeof *off * (size_t)(batch + 1));
    uint8_t *attend = malloc((size_t)T);
    float *hidden = malloc(sizeof(float) * (size_t)T * h);
    float *proj = malloc(sizeof(float) * (size_t)T * m->proj.out);
    unsigned seed = 42;
    for (int t = 0; t < T; t++) {
        seed = seed * 1103515245u + 12345u;
        ids[t] = (int32_t)((seed >> 8) % (unsigned)m->cfg.vocab_size);
        attend[t] = 1;
    }
    for (int s = 0; s <= batch; s++) off[s] = s * len;
    cp_bert_batch b = {ids, attend, off, batch};
    double best = 1e30, cpu_at_best = 0;
    for (int r = 0; r <= reps; r++) { /* run 0 is warm-up */
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        if (cp_bert_forward(m, &b, threads, hidden, &err)) {
            fprintf(stderr, "bench_encoder: %s\n", err.message);
            return 1;
        }
        cp_linear_apply(&m->proj, m->gemm_kind, hidden, T, h, proj, m->proj.out, threads);
        l2_normalise(proj, T, m->proj.out);
        double w = now(CLOCK_MONOTONIC) - w0, c = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (r > 0 && w < best) best = w, cpu_at_best = c;
    }
    printf("{\"engine\":\"colplaid\",\"kernel\":\"%s\",\"threads\":%d,\"batch\":%d,\"tokens\":%d,"
           "\"seconds\":%.4f,\"tokens_per_s\":%.1f,\"tokens_per_cpu_s\":%.1f",
           cp_gemm_name(m->gemm_kind), threads, batch, len, best, T / best, T / cpu_at_best);
    if (m->gemm_kind == CP_GEMM_BF16 || m->gemm_kind == CP_GEMM_AMX) drift_vs_fp32(argv[1], &b, threads, proj, m->proj.out);
    printf("}\n");
    free(ids), free(off), free(attend), free(hidden), free(proj);
    enc.backend->free(&enc);
    free(enc.fingerprint);
    return 0;
}
