/* Adam and SGD-with-momentum over a model's flat parameter buffer. */
#ifndef CVAE_OPTIMIZER_H
#define CVAE_OPTIMIZER_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

struct cvae_optimizer {
    int kind; /* cvae_optimizer_kind */
    double lr, beta1, beta2, eps, weight_decay, momentum;
    int64_t steps;
    size_t n;           /* bound parameter count (0 = not yet bound) */
    uint64_t layout_id; /* hash of the bound model's parameter layout */
    float *m, *v;       /* first/second moments (SGD: m = velocity) */
};

/* Bind to a parameter layout, allocating state on first use (call outside
 * the batch loop). CVAE_E_INVALID_ARG if already bound to another layout. */
cvae_status cvae__optimizer_bind(struct cvae_optimizer *opt, size_t n, uint64_t layout_id);

/* One optimisation step = begin_step, then update for each trainable range
 * [offset, offset+count) of the bound buffer (frozen ranges are skipped and
 * keep their values and state). */
void cvae__optimizer_begin_step(struct cvae_optimizer *opt);
void cvae__optimizer_update(struct cvae_optimizer *opt, float *params, const float *grads,
                            size_t offset, size_t count);
/* The same step for `ranges` ranges [offset[r], offset[r] + count[r]) at
 * once, as one job across the threads; the result is that of updating
 * each range in turn. */
void cvae__optimizer_update_ranges(struct cvae_optimizer *opt, float *params, const float *grads,
                                   const size_t *offset, const size_t *count, int ranges);

/* The vector paths of the Adam update, for tests: every path gives the same
 * bits. A path this CPU lacks falls back to the widest one it has. Long
 * ranges are also split across the library's threads (cvae__parallel),
 * which does not change the result either. */
typedef enum cvae__optimizer_simd {
    CVAE__OPTIMIZER_SIMD_AUTO = 0, /* the widest available */
    CVAE__OPTIMIZER_SIMD_SCALAR,
    CVAE__OPTIMIZER_SIMD_SSE2, /* x86-64 */
    CVAE__OPTIMIZER_SIMD_AVX   /* x86-64 with AVX */
} cvae__optimizer_simd;
void cvae__optimizer_update_with(struct cvae_optimizer *opt, cvae__optimizer_simd simd,
                                 float *params, const float *grads, size_t offset, size_t count);

/* 1 if none of x[0..n) is an infinity or a NaN, else 0: the check of the
 * gradients before an update (a non-finite one must leave the weights and
 * the optimizer state as they were). Split across threads like updates. */
int cvae__all_finite(const float *x, size_t n);

#endif
