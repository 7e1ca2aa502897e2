/*
 * Encoder speed: the BERT forward pass + ColBERT projection of colplaid on a batch of
 * random token ids (default 8 sequences x 128 tokens), reported as tokens per second of
 * wall time and per CPU-second, as one JSON line. bench/encoder_peers/run.sh runs it side
 * by side with PyTorch and prints the ratios.
 *
 * Usage: bench_encoder MODEL_DIR [--batch 8] [--tokens 128] [--threads 1] [--reps 5]
 * CP_GEMM=blas|portable selects another matrix kernel (default: the CPU's best).
 */
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
    cp_encoder_options opts = {threads};
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
        double w = now(CLOCK_MONOTONIC) - w0, c = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (r > 0 && w < best) best = w, cpu_at_best = c;
    }
    printf("{\"engine\":\"colplaid\",\"kernel\":\"%s\",\"threads\":%d,\"batch\":%d,\"tokens\":%d,"
           "\"seconds\":%.4f,\"tokens_per_s\":%.1f,\"tokens_per_cpu_s\":%.1f}\n",
           cp_gemm_name(m->gemm_kind), threads, batch, len, best, T / best, T / cpu_at_best);
    free(ids), free(off), free(attend), free(hidden), free(proj);
    enc.backend->free(&enc);
    free(enc.fingerprint);
    return 0;
}
