/*
 * Deterministic test data for C tests: a 64-bit LCG, Gaussian samples (Box-Muller) and L2
 * normalisation. Define CP_TEST_RNG_SEED before including to give a file its own
 * sequence; the state is per translation unit, so tests never disturb each other.
 */
#ifndef CP_TEST_RNG_H
#define CP_TEST_RNG_H

#include <math.h>
#include <stdint.h>

#ifndef CP_TEST_RNG_SEED
#define CP_TEST_RNG_SEED 12345
#endif

static uint64_t rng_state = CP_TEST_RNG_SEED;

/* Uniform in [0, 1). */
static inline double urand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}

/* Standard normal. */
static inline float grand(void)
{
    double u1 = urand(), u2 = urand();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

static inline void normalise(float *v, int dim)
{
    double n = 0;
    for (int j = 0; j < dim; j++)
        n += (double)v[j] * v[j];
    for (int j = 0; j < dim; j++)
        v[j] = (float)(v[j] / sqrt(n));
}

#endif
