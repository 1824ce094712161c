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

#endif
