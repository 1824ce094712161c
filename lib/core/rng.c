#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cvae__rng_seed(cvae__rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0f;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cvae__rng_next(cvae__rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float cvae__rng_uniform(cvae__rng *r)
{
    return (float)(cvae__rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

uint64_t cvae__rng_below(cvae__rng *r, uint64_t n)
{
    /* Rejection sampling: drop the top partial block so all values are
     * equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = cvae__rng_next(r);
    while (x >= limit);
    return x % n;
}

float cvae__rng_normal(cvae__rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* Box-Muller in double: u1 is in (0,1] so log never sees 0. */
    double u1 = ((double)(cvae__rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(cvae__rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    double rad = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586 * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = 1;
    return (float)(rad * cos(th));
}

void cvae__rng_normal_fill(cvae__rng *r, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = cvae__rng_normal(r);
}

void cvae__rng_uniform_fill(cvae__rng *r, float *x, int64_t n, float limit)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (2.0f * cvae__rng_uniform(r) - 1.0f) * limit;
}

void cvae__rng_shuffle(cvae__rng *r, int64_t *idx, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)cvae__rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

float cvae__he_limit(int64_t fan_in) { return (float)sqrt(6.0 / (double)fan_in); }

float cvae__glorot_limit(int64_t fan_in, int64_t fan_out)
{
    return (float)sqrt(6.0 / (double)(fan_in + fan_out));
}
