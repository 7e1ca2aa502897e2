/*
 * Vectorised element-wise functions of the BERT forward pass for AVX-512 CPUs: the
 * attention softmax (with its exp), erf GELU and the residual LayerNorm. glibc's scalar
 * expf/erff cost about 7 ns each and took a quarter of the encoder's time at BERT-base
 * shape; these take well under 1 ns.
 *
 * exp: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a degree-7 Taylor
 * polynomial for e^r (truncation error < 1e-8 relative), scaled by 2^n.
 * erf: Abramowitz & Stegun formula 7.1.26 (|error| <= 1.5e-7), so GELU's error is at most
 * 0.75e-7 |x|, far inside the encoder's 1e-4 parity budget (tests/encoder/bert_parity.py).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "bert_internal.h"

#if defined(__x86_64__)
#include "bert_simd_avx512.h"

AVX512 void cp_exp_avx512(float *v, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(v + i, m, exp16(_mm512_maskz_loadu_ps(m, v + i)));
    }
}

/* Which of 16 keys from j may be attended to (attend bytes nonzero), within n. */
static inline __attribute__((always_inline)) AVX512 __mmask16 attended16(const uint8_t *attend,
                                                                         size_t j, size_t n)
{
    __mmask16 in = n - j >= 16 ? 0xffff : (__mmask16)((1u << (n - j)) - 1);
    __m128i a = _mm_maskz_loadu_epi8(in, attend + j);
    return _mm_mask_test_epi8_mask(in, a, a);
}

AVX512 void cp_softmax_avx512(float *s, size_t n, const uint8_t *attend, float scale)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (size_t j = 0; j < n; j += 16) /* attended16 is 0 past n: nothing read there */
        mx = _mm512_mask_max_ps(mx, attended16(attend, j, n), mx,
                                _mm512_maskz_loadu_ps(attended16(attend, j, n), s + j));
    /* scale > 0, so the largest scaled score is scale times the largest score */
    __m512 shift = _mm512_set1_ps(scale * _mm512_reduce_max_ps(mx)), vs = _mm512_set1_ps(scale);
    __m512 sum = _mm512_setzero_ps();
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 in = n - j >= 16 ? 0xffff : (__mmask16)((1u << (n - j)) - 1);
        __m512 e = exp16(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(in, s + j), vs, shift));
        e = _mm512_maskz_mov_ps(attended16(attend, j, n), e);
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(s + j, in, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 in = n - j >= 16 ? 0xffff : (__mmask16)((1u << (n - j)) - 1);
        _mm512_mask_storeu_ps(s + j, in, _mm512_mul_ps(_mm512_maskz_loadu_ps(in, s + j), inv));
    }
}

static inline __attribute__((always_inline)) __mmask16 tail16(size_t i, size_t n)
{
    return n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
}

AVX512 void cp_add_layer_norm_avx512(float *x, const float *d, size_t n, const float *g,
                                     const float *b, float eps)
{
    __m512 sum = _mm512_setzero_ps(), ss = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail16(i, n);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, d + i));
        _mm512_mask_storeu_ps(x + i, m, v);
        sum = _mm512_add_ps(sum, v);
    }
    __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / (float)n);
    for (size_t i = 0; i < n; i += 16) { /* two passes: E[x^2] - mean^2 cancels badly */
        __mmask16 m = tail16(i, n);
        __m512 c = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), mean);
        ss = _mm512_fmadd_ps(c, c, ss);
    }
    __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(ss) / (float)n + eps));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail16(i, n);
        __m512 c = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mean), inv);
        _mm512_mask_storeu_ps(
            x + i, m,
            _mm512_fmadd_ps(c, _mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, b + i)));
    }
}

AVX512 void cp_gelu_avx512(float *v, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(v + i, m, gelu16(_mm512_maskz_loadu_ps(m, v + i)));
    }
}

#else
#include <math.h>

void cp_softmax_avx512(float *s, size_t n, const uint8_t *attend, float scale)
{
    (void)s, (void)n, (void)attend, (void)scale; /* never called: no AVX-512 here */
}

void cp_add_layer_norm_avx512(float *x, const float *d, size_t n, const float *g, const float *b,
                              float eps)
{
    (void)x, (void)d, (void)n, (void)g, (void)b, (void)eps; /* never called, as above */
}

void cp_exp_avx512(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) v[i] = expf(v[i]);
}

void cp_gelu_avx512(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) v[i] = 0.5f * v[i] * (1.0f + erff(v[i] * 0.70710678f));
}
#endif
