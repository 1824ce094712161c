/* The small model the model-level tests share: 1x8x8 images, widths of a
 * few units, so a finite-difference check over it takes milliseconds.
 * Include after cmocka.h. */
#ifndef CVAE_TEST_SMALL_MODEL_H
#define CVAE_TEST_SMALL_MODEL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convvae.h"
#include "core/rng.h"
#include "model/model.h"

#if defined(__GNUC__)
#define SM_UNUSED __attribute__((unused))
#else
#define SM_UNUSED
#endif

static SM_UNUSED cvae_config *small_config(int branches, int layers)
{
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 1, 8, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_branches(c, branches), CVAE_OK);
    if (branches > 0)
        assert_int_equal(cvae_config_set_conv_branch(c, 1, layers, 3, 3), CVAE_OK);
    if (branches > 1)
        assert_int_equal(cvae_config_set_conv_branch(c, 2, layers, 4, 5), CVAE_OK);
    assert_int_equal(cvae_config_set_encoder_units(c, 12), CVAE_OK);
    assert_int_equal(cvae_config_set_decoder_units(c, 10), CVAE_OK);
    assert_int_equal(cvae_config_set_category_units(c, 9), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, 4), CVAE_OK);
    assert_int_equal(cvae_config_set_clusters(c, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_batch_size(c, 6), CVAE_OK);
    assert_int_equal(cvae_config_set_balance_weight(c, 0.7), CVAE_OK);
    /* Pinned rather than the default: the tolerance of check_gradients
     * assumes a loss of O(10), and the float rounding noise of the
     * difference quotient grows with lambda (at lambda 10 the feature-
     * reconstruction case's quotients scatter by ~10% around the analytic
     * value for every step size tried, 1e-4 to 3e-3). */
    assert_int_equal(cvae_config_set_lambda(c, 2.5), CVAE_OK);
    return c;
}

/* n random 8x8 images (uniform in [0, 1), from seed) as a data set; the
 * pixels go to *x_out (malloc'd) when it is not NULL. */
static SM_UNUSED cvae_dataset *small_data_seeded(int n, uint64_t seed, float **x_out)
{
    float *x = malloc((size_t)n * 64 * sizeof *x);
    assert_non_null(x);
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    for (int i = 0; i < n * 64; i++)
        x[i] = cvae__rng_uniform(&r);
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_f32(x, n, 1, 8, 8, NULL, &d), CVAE_OK);
    if (x_out)
        *x_out = x;
    else
        free(x);
    return d;
}

/* small_config made into a model with its workspace. */
static SM_UNUSED cvae_model *small_model(int branches)
{
    cvae_config *c = small_config(branches, 1);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_config_destroy(c);
    assert_int_equal(cvae__model_ensure_workspace(m), CVAE_OK);
    return m;
}

/* A scalar loss of the model's current parameters, for sm_check_gradient. */
typedef double (*sm_loss_fn)(cvae_model *m, void *ctx);

/* The analytic gradient an (nparams floats) against central differences of
 * loss for 8 sampled entries of every trainable tensor (the conv branches'
 * too unless skip_conv). Float parameters, the loss summed in double.
 * h = 1e-3: the loss is O(10) and float rounding of the forward pass gives
 * ~1e-6 relative noise, i.e. ~1e-2 absolute in the quotient at worst. A
 * larger h makes ReLU/max-pool kinks cross often (conv biases touch every
 * position): with h = 1e-2 conv gradients were off by up to 20%, shrinking
 * to ~2% at 1e-3 and 3e-4, which is what kinks (not a bug) look like.
 * Accept |fd - an| <= 2e-2 * max(|fd|, |an|, 0.05); a wrong or missing
 * term is off by O(1). A small share of samples (kinks) may miss; more
 * than 2% fails. */
static SM_UNUSED void sm_check_gradient(cvae_model *m, const float *an, sm_loss_fn loss,
                                        void *ctx, int skip_conv, const char *what)
{
    cvae__rng r;
    cvae__rng_seed(&r, 98);
    int checked = 0, bad = 0;
    for (int t = 0; t < m->nparam; t++) {
        const cvae__param *p = &m->ptab[t];
        if (!p->trainable || (skip_conv && strncmp(p->name, "branch", 6) == 0))
            continue;
        double worst = 0;
        int samples = p->count < 8 ? (int)p->count : 8;
        for (int s = 0; s < samples; s++) {
            size_t idx = p->offset + (size_t)cvae__rng_below(&r, p->count);
            float keep = m->params[idx];
            const float h = 1e-3f;
            m->params[idx] = keep + h;
            double lp = loss(m, ctx);
            m->params[idx] = keep - h;
            double lm = loss(m, ctx);
            m->params[idx] = keep;
            double fd = (lp - lm) / (2.0 * h);
            double a = an[idx];
            double scale = fmax(fmax(fabs(fd), fabs(a)), 0.05);
            double err = fabs(fd - a) / scale;
            if (err > worst)
                worst = err;
            checked++;
            if (err > 2e-2) {
                bad++;
                print_message("%s: %s[%zu] analytic %.6g numeric %.6g\n", what, p->name,
                              idx - p->offset, a, fd);
            }
        }
        print_message("%-8s %-22s max rel err %.2e\n", what, p->name, worst);
    }
    assert_true(checked > 0);
    assert_true(bad * 50 <= checked);
}

#endif
