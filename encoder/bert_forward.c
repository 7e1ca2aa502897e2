/*
 * The BERT transformer (post-LayerNorm, as Hugging Face's BertModel) on a packed batch:
 * the tokens of all sequences are rows of one matrix, so the linear layers run once over
 * every real token and no work is spent on padding; only attention looks at sequence
 * boundaries. This is exactly what padding to the longest sequence computes for the real
 * tokens (padded keys get zero weight), without the padded rows.
 *
 * Attention for one (sequence, head) pair uses the same packed matrix kernel as the linear
 * layers: K and V of the head are packed into panel layout on the fly (a transpose for K,
 * row copies for V); the 1/sqrt(dh) scale is applied inside the softmax.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bert_internal.h"
#include "cp_cpu.h"

typedef struct fwd {
    const cp_bert_model *m;
    const cp_bert_batch *b;
    int threads, T, attn_kind, max_len;
    const int32_t *pos;  /* position of each row in its sequence */
    float *x, *qkv, *ctx, *tmp, *ffn;
    float *ws;      /* the matrix kernel's scratch */
    float *scratch; /* per thread: packed K, packed V, scores, packed Q / P rows */
    size_t scratch_per_thread;
    const cp_bert_layer *layer;
    const float *ln_g, *ln_b;
} fwd;

static void layer_norm_row(float *v, int n, const float *g, const float *b, float eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += v[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (v[i] - mean) * (v[i] - mean);
    float inv = (float)(1.0 / sqrt(var / n + eps)), mu = (float)mean;
    for (int i = 0; i < n; i++) v[i] = (v[i] - mu) * inv * g[i] + b[i];
}

static void embed_rows(void *ctx, int begin, int end, int tid)
{
    (void)tid;
    fwd *f = ctx;
    const cp_bert_model *m = f->m;
    int h = m->cfg.hidden;
    for (int t = begin; t < end; t++) {
        const float *w = m->word_emb + (size_t)f->b->ids[t] * h;
        const float *p = m->pos_emb + (size_t)f->pos[t] * h;
        float *x = f->x + (size_t)t * h;
        for (int i = 0; i < h; i++) x[i] = w[i] + p[i] + m->type_emb[i]; /* token type 0 */
        layer_norm_row(x, h, m->emb_ln_g, m->emb_ln_b, m->cfg.ln_eps);
    }
}

/* x = LayerNorm(x + tmp), rows [begin, end). */
static void residual_norm_rows(void *ctx, int begin, int end, int tid)
{
    (void)tid;
    fwd *f = ctx;
    int h = f->m->cfg.hidden;
    for (int t = begin; t < end; t++) {
        float *x = f->x + (size_t)t * h;
        const float *d = f->tmp + (size_t)t * h;
        if (f->attn_kind == CP_GEMM_AVX512) {
            cp_add_layer_norm_avx512(x, d, (size_t)h, f->ln_g, f->ln_b, f->m->cfg.ln_eps);
            continue;
        }
        for (int i = 0; i < h; i++) x[i] += d[i];
        layer_norm_row(x, h, f->ln_g, f->ln_b, f->m->cfg.ln_eps);
    }
}

static void gelu_rows(void *ctx, int begin, int end, int tid)
{
    (void)tid;
    fwd *f = ctx;
    int n = f->m->cfg.intermediate;
    for (int t = begin; t < end; t++) {
        float *v = f->ffn + (size_t)t * n;
        if (f->attn_kind == CP_GEMM_AVX512 && !f->m->cfg.gelu_tanh) {
            cp_gelu_avx512(v, (size_t)n);
        } else if (f->m->cfg.gelu_tanh) {
            for (int i = 0; i < n; i++) {
                float u = v[i];
                v[i] = 0.5f * u * (1.0f + tanhf(0.7978845608f * (u + 0.044715f * u * u * u)));
            }
        } else {
            for (int i = 0; i < n; i++) v[i] = 0.5f * v[i] * (1.0f + erff(v[i] * 0.70710678f));
        }
    }
}

static void gemm(const fwd *f, const float *x, int rows, int ldx, const float *packed, int in,
                 int out, float *y, int ldy, float *xp)
{
    if (f->attn_kind == CP_GEMM_AVX512)
        cp_gemm_avx512_panels_ws(x, rows, ldx, packed, in, out, NULL, y, ldy, 0, (out + 31) / 32,
                                 xp, 0);
    else
        cp_gemm_packed_portable(x, rows, ldx, packed, in, out, NULL, y, ldy);
}

/* Masked softmax of one row of scale * scores; keys with attend 0 get weight 0. */
static void softmax_row(float *s, int n, const uint8_t *attend, float scale)
{
    float mx = -INFINITY;
    for (int j = 0; j < n; j++)
        if (attend[j] && s[j] > mx) mx = s[j];
    float sum = 0;
    for (int j = 0; j < n; j++) {
        s[j] = attend[j] ? expf((s[j] - mx) * scale) : 0.0f;
        sum += s[j];
    }
    float inv = 1.0f / sum; /* [CLS] is always attended, so sum >= 1 */
    for (int j = 0; j < n; j++) s[j] *= inv;
}

/* K as weights [L x dh], for scores = Q K^T. */
static void pack_keys(const fwd *f, const float *k, int L, int ld, int dh, float *kp)
{
    if (f->attn_kind == CP_GEMM_AVX512) {
        cp_pack_keys_avx512(k, L, (size_t)ld, dh, kp);
        return;
    }
    memset(kp, 0, (size_t)(L + 31) / 32 * 32 * dh * sizeof(float));
    for (int j = 0; j < L; j++)
        for (int d = 0; d < dh; d++)
            kp[((size_t)(j / 32) * dh + d) * 32 + j % 32] = k[(size_t)j * ld + d];
}

/* V^T as weights [dh x L], for ctx = P V: panel p holds dims 32p .. 32p+31 of every key,
 * which are contiguous in V's rows. */
static void pack_values(const float *v, int L, int ld, int dh, float *vp)
{
    for (int p = 0; p < (dh + 31) / 32; p++) {
        int cols = dh - p * 32 < 32 ? dh - p * 32 : 32;
        for (int j = 0; j < L; j++) {
            float *dst = vp + ((size_t)p * L + j) * 32;
            memcpy(dst, v + (size_t)j * ld + p * 32, (size_t)cols * sizeof(float));
            memset(dst + cols, 0, (size_t)(32 - cols) * sizeof(float));
        }
    }
}

static void attend_one(fwd *f, int seq, int head, float *scratch)
{
    int h = f->m->cfg.hidden, dh = h / f->m->cfg.heads, ld = 3 * h;
    int off = f->b->off[seq], L = f->b->off[seq + 1] - off;
    const float *q = f->qkv + (size_t)off * ld + head * dh;
    const uint8_t *attend = f->b->attend + off;
    size_t lp = (size_t)(L + 31) / 32 * 32, dp = (size_t)(dh + 31) / 32 * 32;
    float *kp = scratch, *vp = kp + lp * dh, *s = vp + dp * L, *xp = s + (size_t)L * L;
    float scale = 1.0f / sqrtf((float)dh);
    pack_keys(f, q + h, L, ld, dh, kp);
    pack_values(q + 2 * h, L, ld, dh, vp);
    gemm(f, q, L, ld, kp, dh, L, s, L, xp);
    for (int i = 0; i < L; i++) {
        if (f->attn_kind == CP_GEMM_AVX512)
            cp_softmax_avx512(s + (size_t)i * L, (size_t)L, attend, scale);
        else
            softmax_row(s + (size_t)i * L, L, attend, scale);
    }
    gemm(f, s, L, L, vp, L, dh, f->ctx + (size_t)off * h + head * dh, h, xp);
}

static void attention_jobs(void *ctx, int begin, int end, int tid)
{
    fwd *f = ctx;
    float *scratch = f->scratch + (size_t)tid * f->scratch_per_thread;
    for (int j = begin; j < end; j++) attend_one(f, j / f->m->cfg.heads, j % f->m->cfg.heads, scratch);
}

static void run_layer(fwd *f, const cp_bert_layer *L)
{
    const cp_bert_model *m = f->m;
    int h = m->cfg.hidden, I = m->cfg.intermediate;
    cp_linear_apply_ws(&L->qkv, m->gemm_kind, f->x, f->T, h, f->qkv, 3 * h, f->threads, f->ws,
                       false);
    cp_parallel_for(f->b->n_seq * m->cfg.heads, f->threads, attention_jobs, f);
    cp_linear_apply_ws(&L->attn_out, m->gemm_kind, f->ctx, f->T, h, f->tmp, h, f->threads, f->ws,
                       false);
    f->ln_g = L->ln1_g;
    f->ln_b = L->ln1_b;
    cp_parallel_for(f->T, f->threads, residual_norm_rows, f);
    /* erf GELU fused into the AVX-512 product saves a pass over T x I floats (from L3) */
    bool fuse = f->attn_kind == CP_GEMM_AVX512 && !m->cfg.gelu_tanh;
    if (!cp_linear_apply_ws(&L->ffn_in, m->gemm_kind, f->x, f->T, h, f->ffn, I, f->threads, f->ws,
                            fuse))
        cp_parallel_for(f->T, f->threads, gelu_rows, f);
    cp_linear_apply_ws(&L->ffn_out, m->gemm_kind, f->ffn, f->T, I, f->tmp, h, f->threads, f->ws,
                       false);
    f->ln_g = L->ln2_g;
    f->ln_b = L->ln2_b;
    cp_parallel_for(f->T, f->threads, residual_norm_rows, f);
}

static cp_status alloc_buffers(fwd *f, int32_t **pos, cp_error *err)
{
    const cp_bert_config *c = &f->m->cfg;
    size_t T = (size_t)f->T, h = (size_t)c->hidden, L = (size_t)f->max_len;
    size_t dh = h / (size_t)c->heads, lp = (L + 31) / 32 * 32, dp = (dh + 31) / 32 * 32;
    /* packed K, packed V, scores, the matrix kernel's packed rows; 16-float multiple so
     * that each thread's share starts 64-byte aligned */
    size_t xp = cp_gemm_avx512_xp_floats((int)L);
    f->scratch_per_thread = (lp * dh + dp * L + L * L + xp + 15) / 16 * 16;
    f->qkv = cp_huge_alloc(T * 3 * h * sizeof(float));
    f->ctx = cp_huge_alloc(T * h * sizeof(float));
    f->tmp = cp_huge_alloc(T * h * sizeof(float));
    f->ffn = cp_huge_alloc(T * (size_t)c->intermediate * sizeof(float));
    f->scratch = cp_huge_alloc((size_t)f->threads * f->scratch_per_thread * sizeof(float));
    f->ws = cp_huge_alloc(cp_gemm_workspace_floats(f->T, f->threads) * sizeof(float));
    *pos = malloc(T * sizeof(int32_t));
    if (!f->qkv || !f->ctx || !f->tmp || !f->ffn || !f->scratch || !f->ws || !*pos)
        return cp_error_set(err, CP_ENOMEM, "out of memory for a batch of %zu tokens", T);
    for (int s = 0; s < f->b->n_seq; s++)
        for (int t = f->b->off[s]; t < f->b->off[s + 1]; t++) (*pos)[t] = t - f->b->off[s];
    f->pos = *pos;
    return CP_OK;
}

cp_status cp_bert_forward(const cp_bert_model *m, const cp_bert_batch *b, int threads,
                          float *hidden_out, cp_error *err)
{
    fwd f = {.m = m, .b = b, .threads = threads < 1 ? 1 : threads, .T = b->off[b->n_seq],
             .x = hidden_out};
    /* attention, exp and GELU: AVX-512 on any CPU that has it, whatever does the linear
     * layers, except when the portable kernels are asked for (tests) */
    bool avx512 = (cp_cpu_features() & CP_CPU_AVX512) && m->gemm_kind != CP_GEMM_PORTABLE;
    f.attn_kind = avx512 ? CP_GEMM_AVX512 : CP_GEMM_PORTABLE;
    if (f.threads > CP_MAX_THREADS) f.threads = CP_MAX_THREADS;
    for (int s = 0; s < b->n_seq; s++) {
        int len = b->off[s + 1] - b->off[s];
        if (len < 1 || len > m->cfg.max_pos)
            return cp_error_set(err, CP_EINVAL, "sequence of %d tokens (the model takes 1 to %d)",
                                len, m->cfg.max_pos);
        if (len > f.max_len) f.max_len = len;
    }
    for (int t = 0; t < f.T; t++)
        if (b->ids[t] < 0 || b->ids[t] >= m->cfg.vocab_size)
            return cp_error_set(err, CP_EINVAL, "token id %d outside the model's vocabulary (%d)",
                                b->ids[t], m->cfg.vocab_size);
    int32_t *pos = NULL;
    cp_status s = alloc_buffers(&f, &pos, err);
    if (s == CP_OK) {
        cp_parallel_for(f.T, f.threads, embed_rows, &f);
        for (int l = 0; l < m->cfg.layers; l++) run_layer(&f, &m->layers[l]);
    }
    free(f.qkv);
    free(f.ctx);
    free(f.tmp);
    free(f.ffn);
    free(f.scratch);
    free(f.ws);
    free(pos);
    return s;
}
