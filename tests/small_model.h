/* The small model the model-level tests share: 1x8x8 images, widths of a
 * few units, so a finite-difference check over it takes milliseconds.
 * Include after cmocka.h. */
#ifndef CVAE_TEST_SMALL_MODEL_H
#define CVAE_TEST_SMALL_MODEL_H

#include "convvae.h"
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

#endif
