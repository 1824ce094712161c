#include "optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "tensor.h"

static cvae_status make(int kind, double lr, double b1, double b2, double eps, double wd,
                        double mom, cvae_optimizer **out)
{
    if (!(lr > 0 && lr <= 10) || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1) ||
        !(eps > 0 && eps <= 1) || !(wd >= 0 && wd <= 1) || !(mom >= 0 && mom < 1))
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "optimizer settings out of range (lr %g, betas %g/%g, eps %g, "
                          "weight decay %g, momentum %g)",
                          lr, b1, b2, eps, wd, mom);
    cvae_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate an optimizer");
    o->kind = kind;
    o->lr = lr;
    o->beta1 = b1;
    o->beta2 = b2;
    o->eps = eps;
    o->weight_decay = wd;
    o->momentum = mom;
    *out = o;
    return CVAE_OK;
}

cvae_status cvae_optimizer_create_adam(double lr, double beta1, double beta2, double eps,
                                       double weight_decay, cvae_optimizer **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    return make(CVAE_OPTIMIZER_ADAM, lr, beta1, beta2, eps, weight_decay, 0.0, out);
}

cvae_status cvae_optimizer_create_sgd(double lr, double momentum, double weight_decay,
                                      cvae_optimizer **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    return make(CVAE_OPTIMIZER_SGD, lr, 0.9, 0.999, 1e-8, weight_decay, momentum, out);
}

cvae_status cvae_optimizer_create_from_config(const cvae_config *cfg, cvae_optimizer **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(cfg);
    return make(cfg->opt, cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay,
                cfg->opt == CVAE_OPTIMIZER_SGD ? cfg->momentum : 0.0, out);
}

cvae_status cvae_optimizer_set_learning_rate(cvae_optimizer *opt, double lr)
{
    CVAE__CHECK_PTR(opt);
    if (!(lr > 0 && lr <= 10))
        return cvae__fail(CVAE_E_INVALID_ARG, "learning rate %g is outside (0, 10]", lr);
    opt->lr = lr;
    return CVAE_OK;
}

void cvae_optimizer_destroy(cvae_optimizer *opt)
{
    if (!opt)
        return;
    cvae__aligned_free(opt->m);
    cvae__aligned_free(opt->v);
    free(opt);
}

cvae_status cvae__optimizer_bind(struct cvae_optimizer *o, size_t n, uint64_t layout_id)
{
    CVAE__CHECK_PTR(o);
    /* n = 0 doubles as "not bound", and a zero-byte allocation would be
     * misreported as out of memory. */
    if (n == 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "optimizer: cannot bind to 0 parameters");
    if (o->n) {
        if (o->n != n || o->layout_id != layout_id)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "optimizer state belongs to a model with a different parameter "
                              "layout (%zu vs %zu values)",
                              o->n, n);
        return CVAE_OK;
    }
    size_t bytes;
    if (cvae__mul_overflows(n, sizeof(float), &bytes))
        return cvae__fail(CVAE_E_INVALID_ARG, "optimizer state size overflows");
    o->m = cvae__aligned_alloc(bytes);
    o->v = o->kind == CVAE_OPTIMIZER_ADAM ? cvae__aligned_alloc(bytes) : NULL;
    if (!o->m || (o->kind == CVAE_OPTIMIZER_ADAM && !o->v)) {
        cvae__aligned_free(o->m);
        cvae__aligned_free(o->v);
        o->m = o->v = NULL;
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate optimizer state");
    }
    memset(o->m, 0, bytes);
    if (o->v)
        memset(o->v, 0, bytes);
    o->n = n;
    o->layout_id = layout_id;
    o->steps = 0;
    return CVAE_OK;
}

void cvae__optimizer_begin_step(struct cvae_optimizer *o) { o->steps++; }

void cvae__optimizer_update(struct cvae_optimizer *o, float *params, const float *grads,
                            size_t offset, size_t count)
{
    float *p = params + offset;
    const float *g = grads + offset;
    const float wd = (float)o->weight_decay;
    if (o->kind == CVAE_OPTIMIZER_ADAM) {
        float *m = o->m + offset, *v = o->v + offset;
        const float b1 = (float)o->beta1, b2 = (float)o->beta2;
        /* 1 - beta taken in double: 1.0f - (float)0.999 is off by 1.3e-5
         * relative (2.4e-4 for 0.9999), a bias the corrections below,
         * computed in double, would not cancel. */
        const float a1 = (float)(1.0 - o->beta1), a2 = (float)(1.0 - o->beta2);
        /* Bias corrections folded into step size and epsilon (Kingma & Ba,
         * end of section 2), so the inner loop is plain multiply-adds. */
        const double c1 = 1.0 - pow(o->beta1, (double)o->steps);
        const double c2 = 1.0 - pow(o->beta2, (double)o->steps);
        const float step = (float)(o->lr * sqrt(c2) / c1);
        const float epsh = (float)(o->eps * sqrt(c2));
        for (size_t i = 0; i < count; i++) {
            float gi = g[i] + wd * p[i];
            m[i] = b1 * m[i] + a1 * gi;
            v[i] = b2 * v[i] + a2 * gi * gi;
            p[i] -= step * m[i] / (sqrtf(v[i]) + epsh);
        }
    } else {
        float *vel = o->m + offset;
        const float lr = (float)o->lr, mom = (float)o->momentum;
        for (size_t i = 0; i < count; i++) {
            float gi = g[i] + wd * p[i];
            vel[i] = mom * vel[i] + gi;
            p[i] -= lr * vel[i];
        }
    }
}
