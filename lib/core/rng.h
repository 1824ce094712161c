/* Per-handle random numbers: xoshiro256** seeded through splitmix64.
 * No global state; the same seed gives the same stream on every platform. */
#ifndef CVAE_RNG_H
#define CVAE_RNG_H

#include <stdint.h>

typedef struct cvae__rng {
    uint64_t s[4];
    int has_spare; /* Box-Muller produces normals in pairs */
    float spare;
} cvae__rng;

void cvae__rng_seed(cvae__rng *r, uint64_t seed);
uint64_t cvae__rng_next(cvae__rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float cvae__rng_uniform(cvae__rng *r);
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t cvae__rng_below(cvae__rng *r, uint64_t n);
/* Standard normal variate. */
float cvae__rng_normal(cvae__rng *r);
/* Fill with N(0,1). */
void cvae__rng_normal_fill(cvae__rng *r, float *x, int64_t n);
/* Fill with U(-limit, limit), e.g. for He/Glorot uniform initialisation. */
void cvae__rng_uniform_fill(cvae__rng *r, float *x, int64_t n, float limit);
/* Fisher-Yates shuffle of an index array. */
void cvae__rng_shuffle(cvae__rng *r, int64_t *idx, int64_t n);

/* He uniform limit sqrt(6 / fan_in) for ReLU layers; Glorot uniform limit
 * sqrt(6 / (fan_in + fan_out)) for linear/sigmoid/softmax layers. */
float cvae__he_limit(int64_t fan_in);
float cvae__glorot_limit(int64_t fan_in, int64_t fan_out);

#endif
