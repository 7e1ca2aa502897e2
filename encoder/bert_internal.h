/*
 * BERT encoder internals shared by bert_config.c (settings), bert_load.c (weights),
 * bert_gemm.c (matrix products), bert_forward.c (the transformer) and bert.c (the
 * cp_encoder backend: tokenization, ColBERT head, batching).
 */
#ifndef CP_BERT_INTERNAL_H
#define CP_BERT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colplaid/error.h"

#define CP_BERT_MARKER_MAX 64

/* The transformer's shape, from config.json. */
typedef struct cp_bert_config {
    int hidden, layers, heads, intermediate, max_pos, type_vocab, vocab_size;
    float ln_eps;
    bool gelu_tanh; /* hidden_act gelu_new / gelu_pytorch_tanh instead of erf GELU */
} cp_bert_config;

/* ColBERT settings: the checkpoint's own files, else PLAID.md section 2 defaults. */
typedef struct cp_colbert_settings {
    int dim; /* 0 until known: then taken from the projection's shape */
    int query_maxlen, doc_maxlen;
    char query_marker[CP_BERT_MARKER_MAX], doc_marker[CP_BERT_MARKER_MAX];
    bool attend_to_mask_tokens, mask_punctuation;
    char *skiplist_json; /* PyLate "skiplist_words" as a JSON array, or NULL (malloc'd) */
    char source[256];    /* which files the settings came from, for the fingerprint */
} cp_colbert_settings;

/* y = x W^T + b with W [out x in]. packed is the kernel's layout of W (NULL when the BLAS
 * path is used). */
typedef struct cp_linear {
    int in, out;
    float *w;      /* out x in, row-major; freed once packed */
    float *packed; /* panels of 32 outputs, zero-padded: [ceil(out/32)][in][32] */
    uint16_t *packed16; /* bf16 kernels: [ceil(out/32)][cp_bf16_pairs(in)][32][2] */
    float *bias;   /* out, or NULL */
} cp_linear;

typedef struct cp_bert_layer {
    cp_linear qkv; /* query, key, value fused: out = 3 x hidden */
    cp_linear attn_out;
    float *ln1_g, *ln1_b;
    cp_linear ffn_in, ffn_out;
    float *ln2_g, *ln2_b;
} cp_bert_layer;

typedef struct cp_bert_model {
    cp_bert_config cfg;
    float *word_emb, *pos_emb, *type_emb; /* [vocab|max_pos|type_vocab x hidden] */
    float *emb_ln_g, *emb_ln_b;
    cp_bert_layer *layers;
    cp_linear proj; /* ColBERT head: hidden -> dim, no bias */
    int gemm_kind;  /* CP_GEMM_* chosen at load */
} cp_bert_model;

enum { CP_GEMM_BLAS = 0, CP_GEMM_AVX512 = 1, CP_GEMM_PORTABLE = 2, CP_GEMM_BF16 = 3, CP_GEMM_AMX = 4 };
#define CP_MAX_THREADS 256

/* bert_config.c */
cp_status cp_bert_read_config(const char *dir, cp_bert_config *cfg, cp_error *err);
cp_status cp_colbert_read_settings(const char *dir, cp_colbert_settings *s, cp_error *err);
/* Read a whole JSON file: CP_ENOTFOUND if absent, CP_EFORMAT naming the file if not JSON. */
struct cJSON;
cp_status cp_read_json_file(const char *path, struct cJSON **out, cp_error *err);

/* bert_load.c */
cp_status cp_bert_model_load(const char *dir, const cp_bert_config *cfg, int want_dim,
                             cp_bert_model *m, cp_error *err);
void cp_bert_model_free(cp_bert_model *m);

/* bert_gemm.c: choose the kernel for this process, pack a linear layer for it, and run
 * Y[rows x out] (ldy) = X[rows x in] (ldx) W^T + b on up to threads threads. */
int cp_gemm_choose(void);
/* cp_gemm_choose, and with CP_GEMM=auto refined by timing: on AVX-512 CPUs where OpenBLAS
 * runs AVX-512 kernels on exactly `threads` threads, the faster of it and our kernel on
 * sample (unpacked). Warns when CP_GEMM=blas gets OpenBLAS's slow kernels. */
int cp_gemm_pick(const cp_linear *sample, int threads);
const char *cp_gemm_name(int kind);
cp_status cp_linear_prepare(cp_linear *l, int kind, cp_error *err);
/* 64-byte aligned memory (free() it) that Linux is asked to back with transparent huge
 * pages when it is 2 MB or more: the matrix kernel touches 12 rows of Y, 12 rows of X and
 * a weight chunk per tile, each on its own 4 KB page, and the TLB misses of 4 KB pages
 * cost it 2-14% at BERT-base shape. */
void *cp_huge_alloc(size_t bytes);
void cp_linear_free(cp_linear *l);
void cp_linear_apply(const cp_linear *l, int kind, const float *x, int rows, int ldx, float *y,
                     int ldy, int threads);
/* The same with caller-provided scratch of cp_gemm_workspace_floats(rows, threads) floats
 * (64-byte aligned), so that a forward pass does not allocate (and page-fault) per product.
 * gelu asks for erf GELU on the outputs (cp_gelu_avx512's) fused into the product; the
 * result says whether it was applied (AVX-512 kernel with ws only), else the caller must. */
size_t cp_gemm_workspace_floats(int rows, int threads);
bool cp_linear_apply_ws(const cp_linear *l, int kind, const float *x, int rows, int ldx, float *y,
                        int ldy, int threads, float *ws, bool gelu);
/* The portable reference kernel on the packed layout, for tests against the AVX-512 one. */
void cp_gemm_packed_portable(const float *x, int rows, int ldx, const float *packed, int in,
                             int out, const float *bias, float *y, int ldy);
void cp_gemm_packed_avx512_panels(const float *x, int rows, int ldx, const float *packed,
                                  int in, int out, const float *bias, float *y, int ldy,
                                  int p_begin, int p_end);
void cp_pack_weights(const float *w, int in, int out, float *packed);
/* The AVX-512 kernel with caller-provided scratch for its packed copy of X, of
 * cp_gemm_avx512_xp_floats(rows) floats, 64-byte aligned; gelu: erf GELU on the outputs. */
size_t cp_gemm_avx512_xp_floats(int rows);
void cp_gemm_avx512_panels_ws(const float *x, int rows, int ldx, const float *packed, int in,
                              int out, const float *bias, float *y, int ldy, int p_begin, int p_end,
                              float *xp, int gelu);
/* bert_gemm_bf16.c (opt-in reduced precision, AVX512-BF16 CPUs) */
int cp_gemm_bf16_available(void);
int cp_bf16_pairs(int in); /* k pairs of the packed bf16 layout: in rounded up to 32, / 2 */
/* bert_gemm_amx.c: 1 if AMX-BF16 is there and Linux granted the tile state */
int cp_gemm_amx_available(void);
/* -1 (nothing written) if its buffer cannot be allocated */
int cp_gemm_amx_panels(const float *x, int rows, int ldx, const uint16_t *packed, int in,
                       int out, const float *bias, float *y, int ldy, int p_begin, int p_end);
void cp_pack_weights_bf16(const float *w, int in, int out, uint16_t *packed);
void cp_gemm_bf16_panels(const float *x, int rows, int ldx, const uint16_t *packed, int in,
                         int out, const float *bias, float *y, int ldy, int p_begin, int p_end);

/* Run fn(ctx, begin, end, tid) over [0, n) split into up to threads contiguous ranges;
 * tid (0 .. threads-1) is the range's index, 0 on the calling thread. */
void cp_parallel_for(int n, int threads, void (*fn)(void *ctx, int begin, int end, int tid),
                     void *ctx);

/* bert_math_avx512.c: in-place exp and erf GELU (AVX-512 CPUs only; see the file for the
 * accuracy). */
void cp_exp_avx512(float *v, size_t n);
void cp_gelu_avx512(float *v, size_t n);
/* s = softmax(scale * s) over the keys with attend[j] != 0; the others get weight 0. At
 * least one key must be attended. */
void cp_softmax_avx512(float *s, size_t n, const uint8_t *attend, float scale);
/* x = LayerNorm(x + d) with gain g and bias b (float sums: 1e-7 relative at n = 768). */
void cp_add_layer_norm_avx512(float *x, const float *d, size_t n, const float *g, const float *b,
                              float eps);
/* Attention keys K [L x dh] (row stride ld) into the packed weight layout, keys past L
 * zero: [ceil(L/32)][dh][32]. */
void cp_pack_keys_avx512(const float *k, int L, size_t ld, int dh, float *kp);

/* bert_forward.c: run the transformer on a packed batch. n_seq sequences; sequence s has
 * ids[off[s] .. off[s+1]) and attend[] says which of its positions other tokens may attend
 * to. hidden_out receives off[n_seq] x hidden final hidden states. */
typedef struct cp_bert_batch {
    const int32_t *ids;
    const uint8_t *attend;
    const int32_t *off;
    int n_seq;
} cp_bert_batch;

cp_status cp_bert_forward(const cp_bert_model *m, const cp_bert_batch *b, int threads,
                          float *hidden_out, cp_error *err);

#endif
