/* End-to-end checks of the model graph: the analytic gradient of the total
 * loss against central differences for a sample of parameters in every
 * tensor (both priors, both category-head inputs, plain VAE), plus
 * and construction errors. Inference entry points are in test_inference.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convvae.h"
#include "core/threads.h"
#include "model/model.h"
#include "small_model.h"

static double total_loss(cvae_model *m, int n, int mixture)
{
    double l[CVAE_LOSS_COUNT];
    cvae__forward(m, n, CVAE__TRAIN_REUSE_EPS, 1);
    cvae__loss_and_backward(m, n, mixture, 0, l);
    return l[CVAE_LOSS_TOTAL];
}

typedef struct loss_ctx {
    int n, mixture;
} loss_ctx;

static double ctx_loss(cvae_model *m, void *ctx)
{
    const loss_ctx *c = ctx;
    return total_loss(m, c->n, c->mixture);
}

/* The backward pass clears only the gradients it does not write, so one
 * from a buffer holding NaN in every tensor (a stale or garbage gradient)
 * must equal, bit for bit, the one computed from a cleared buffer. A
 * tensor whose writer added instead of overwriting keeps a NaN. */
static void check_overwritten(cvae_model *m, int n, int mixture, const float *want,
                              const char *what)
{
    for (int t = 0; t < m->nparam; t++)
        for (size_t i = 0; i < m->ptab[t].count; i++)
            m->grads[m->ptab[t].offset + i] = NAN;
    double l[CVAE_LOSS_COUNT];
    cvae__forward(m, n, CVAE__TRAIN_REUSE_EPS, 1);
    cvae__loss_and_backward(m, n, mixture, 1, l);
    for (int t = 0; t < m->nparam; t++) {
        const cvae__param *p = &m->ptab[t];
        if (memcmp(m->grads + p->offset, want + p->offset, p->count * sizeof(float)) != 0)
            fail_msg("%s: the gradient of %s depends on what the buffer held", what, p->name);
    }
}

/* The gradient of the total loss on n random images against central
 * differences (sm_check_gradient). */
static void check_gradients(cvae_model *m, int n, int mixture, int skip_conv, const char *what)
{
    cvae__rng r;
    cvae__rng_seed(&r, 99);
    for (size_t i = 0; i < (size_t)n * m->P; i++)
        m->x[i] = cvae__rng_uniform(&r);
    double l[CVAE_LOSS_COUNT];
    cvae__forward(m, n, 1, 1); /* draws eps once; later passes reuse it */
    cvae__loss_and_backward(m, n, mixture, 1, l);
    float *an = malloc(m->nparams * sizeof *an);
    assert_non_null(an);
    memcpy(an, m->grads, m->nparams * sizeof *an);
    check_overwritten(m, n, mixture, an, what);
    loss_ctx c = {n, mixture};
    sm_check_gradient(m, an, ctx_loss, &c, skip_conv, what);
    free(an);
}

static void grad_case_ex(int branches, int layers, int prior, int cat_features, int recon_features,
                         int conv_trainable, const char *what)
{
    cvae_config *c = small_config(branches, layers);
    assert_int_equal(cvae_config_set_recon_target(c, recon_features ? CVAE_RECON_FEATURES
                                                                    : CVAE_RECON_IMAGE),
                     CVAE_OK);
    assert_int_equal(cvae_config_set_conv_trainable(c, conv_trainable), CVAE_OK);
    assert_int_equal(cvae_config_set_prior(c, prior), CVAE_OK);
    assert_int_equal(cvae_config_set_category_input(c, cat_features ? CVAE_CATEGORY_INPUT_FEATURES
                                                                    : CVAE_CATEGORY_INPUT_Z),
                     CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    if (recon_features) {
        /* The feature target is detached by design (the reconstruction loss
         * must not train the conv filters), so a finite difference through
         * the conv weights would also move the target. Check everything
         * else with the full loss, then the conv weights with lambda = 0,
         * where no detached term remains. */
        check_gradients(m, 5, prior == CVAE_PRIOR_MIXTURE, 1, what);
        m->cfg.lambda = 0.0;
        check_gradients(m, 5, prior == CVAE_PRIOR_MIXTURE, 0, what);
    } else {
        check_gradients(m, 5, prior == CVAE_PRIOR_MIXTURE, 0, what);
    }
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

static void grad_case(int branches, int layers, int prior, int cat_features, const char *what)
{
    grad_case_ex(branches, layers, prior, cat_features, 0, 1, what);
}

static void test_grad_mixture(void **state)
{
    (void)state;
    grad_case(2, 1, CVAE_PRIOR_MIXTURE, 0, "mixture");
}

static void test_grad_standard(void **state)
{
    (void)state;
    grad_case(2, 1, CVAE_PRIOR_STANDARD, 0, "standard");
}

static void test_grad_deep_branches_features(void **state)
{
    (void)state;
    grad_case(2, 2, CVAE_PRIOR_MIXTURE, 1, "n2-feat");
}

static void test_grad_plain_vae(void **state)
{
    (void)state;
    grad_case(0, 1, CVAE_PRIOR_MIXTURE, 0, "plain");
}

/* eq. 2 read literally: the decoder reconstructs the conv features (which
 * that loss must not train), and frozen random filters (algorithm step 1). */
static void test_grad_recon_features(void **state)
{
    (void)state;
    grad_case_ex(2, 2, CVAE_PRIOR_MIXTURE, 0, 1, 1, "featrec");
}

/* The conv layers split the batch over two threads, each with its own
 * weight-gradient partial, summed after. */
static void test_grad_two_threads(void **state)
{
    (void)state;
    cvae_config *c = small_config(2, 2);
    assert_int_equal(cvae_config_set_threads(c, 2), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae__threads_set(2);
    assert_int_equal(cvae__conv_parts(m), 2);
    check_gradients(m, 5, 1, 0, "threads2");
    cvae__threads_set(1);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

static void test_grad_frozen_conv(void **state)
{
    (void)state;
    grad_case_ex(2, 1, CVAE_PRIOR_MIXTURE, 0, 0, 0, "frozen");
}

/* The manifold recipe's extra terms wired through the whole network: the
 * consistency pull of mu towards fixed codes (through the encoder and the
 * conv branches) and the pseudo-label cross-entropy (through the category
 * head into z), with one image unlabelled. */
static void test_grad_recipe_terms(void **state)
{
    (void)state;
    cvae_config *c = small_config(2, 1);
    /* the plain form; the contrastive one needs the training loop's
     * buffers and has its own checks (test_loss, test_train) */
    assert_int_equal(cvae_config_set_contrast_temperature(c, 0.0), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    float ref[5 * 4];
    int32_t lab[5] = {0, 2, -1, 1, 2};
    cvae__rng r;
    cvae__rng_seed(&r, 7);
    for (int i = 0; i < 5 * 4; i++)
        ref[i] = cvae__rng_uniform(&r) - 0.5f;
    m->cons_ref = ref;
    m->cons_weight = 3.0f;
    m->pl_batch = lab;
    m->pl_weight = 2.0f;
    check_gradients(m, 5, 1, 0, "recipe");
    check_gradients(m, 5, 0, 0, "recipe-s");
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

/* conv_trainable = 0 keeps the random filters bit-identical through training
 * while everything else moves. */
static void test_frozen_conv_unchanged(void **state)
{
    (void)state;
    cvae_config *c = small_config(2, 1);
    assert_int_equal(cvae_config_set_conv_trainable(c, 0), CVAE_OK);
    assert_int_equal(cvae_config_set_weight_decay(c, 0.01), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    float *before = malloc(m->nparams * sizeof *before), x[12 * 64];
    memcpy(before, m->params, m->nparams * sizeof *before);
    cvae__rng r;
    cvae__rng_seed(&r, 11);
    for (int i = 0; i < 12 * 64; i++)
        x[i] = cvae__rng_uniform(&r);
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_f32(x, 12, 1, 8, 8, NULL, &d), CVAE_OK);
    assert_int_equal(cvae_model_train(m, d, 2, NULL, NULL, NULL), CVAE_OK);
    for (int t = 0; t < m->nparam; t++) {
        const cvae__param *p = &m->ptab[t];
        int same = memcmp(before + p->offset, m->params + p->offset, p->count * sizeof(float)) == 0;
        if (strncmp(p->name, "branch", 6) == 0)
            assert_true(same);
        else if (p->ndim > 1)
            assert_false(same);
    }
    free(before);
    cvae_dataset_destroy(d);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

/* The second set of encoder activations (the consistency term keeps its
 * clean images' pass there): a pass in it leaves the main set alone, and
 * the encoder's backward from it gives the gradient of the same images
 * run forward again in the main set, bit for bit. */
static void test_second_encoder_set(void **state)
{
    (void)state;
    cvae_model *m = small_model(2);
    m->cfg.contrast_temperature = 0.0; /* the plain term's gradient */
    assert_int_equal(cvae__model_alt_workspace(m), CVAE_OK);
    const int n = m->ws_rows < 4 ? m->ws_rows : 4;
    const size_t px = (size_t)n * m->P, ns = (size_t)n * m->s;
    float *a = malloc(px * sizeof *a), *b = malloc(px * sizeof *b);
    float *mu_a = malloc(ns * sizeof *mu_a), *target = malloc(ns * sizeof *target);
    float *g_kept = malloc(m->nparams * sizeof *g_kept);
    for (size_t i = 0; i < px; i++) {
        a[i] = (float)((i * 7919u) % 256u) / 255.0f;
        b[i] = (float)((i * 104729u + 13u) % 256u) / 255.0f;
    }
    for (size_t i = 0; i < ns; i++)
        target[i] = 0.1f * (float)(i % 5);
    float *const main_mu = m->mu, *const main_act = m->br[0].act[0];

    /* images b in the second set, then images a in the main set */
    cvae__model_swap_encoder(m);
    assert_ptr_not_equal(m->mu, main_mu);
    assert_ptr_not_equal(m->br[0].act[0], main_act);
    memcpy(m->x, b, px * sizeof *b);
    cvae__forward(m, n, 0, 0);
    cvae__model_swap_encoder(m);
    assert_ptr_equal(m->mu, main_mu);
    assert_ptr_equal(m->br[0].act[0], main_act);
    memcpy(m->x, a, px * sizeof *a);
    cvae__forward(m, n, 0, 0);
    memcpy(mu_a, m->mu, ns * sizeof *mu_a);

    /* backward from the kept pass of b */
    cvae__model_swap_encoder(m);
    cvae__consistency_backward(m, n, target, 2.0f, 0.25f);
    cvae__model_swap_encoder(m);
    memcpy(g_kept, m->grads, m->nparams * sizeof *g_kept);
    assert_memory_equal(m->mu, mu_a, ns * sizeof *mu_a);

    /* the reference: b run forward again in the main set */
    memcpy(m->x, b, px * sizeof *b);
    cvae__forward(m, n, 0, 0);
    cvae__consistency_backward(m, n, target, 2.0f, 0.25f);
    assert_memory_equal(m->grads, g_kept, m->nparams * sizeof *g_kept);
    double norm = 0;
    for (size_t i = 0; i < m->nparams; i++)
        norm += fabs(g_kept[i]);
    assert_true(norm > 0.0);

    cvae__model_alt_free(m);
    assert_null(m->alt.mu);
    free(a);
    free(b);
    free(mu_a);
    free(target);
    free(g_kept);
    cvae_model_destroy(m);
}

static void test_create_errors(void **state)
{
    (void)state;
    cvae_model *m = (cvae_model *)1;
    assert_int_equal(cvae_model_create(NULL, &m), CVAE_E_INVALID_ARG);
    assert_null(m);
    cvae_config *c = small_config(2, 1);
    /* 8x8 with 4 branches: 8 is not divisible by 16 */
    assert_int_equal(cvae_config_set_branches(c, 4), CVAE_OK);
    assert_int_equal(cvae_model_create(c, &m), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "divisible"));
    assert_null(m);
    assert_int_equal(cvae_config_set_branches(c, 0), CVAE_OK);
    assert_int_equal(cvae_config_set_recon_target(c, CVAE_RECON_FEATURES), CVAE_OK);
    assert_int_equal(cvae_model_create(c, &m), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "features"));
    assert_int_equal(cvae_config_set_latent_dim(c, 0), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_set(c, "latent-dim", "7"), CVAE_OK);
    char buf[32];
    assert_int_equal(cvae_config_get(c, "latent_dim", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "7");
    assert_int_equal(cvae_config_set(c, "prior", "gaussian"), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_set(c, "no_such_option", "1"), CVAE_E_INVALID_ARG);
    cvae_config_destroy(c);
}

/* A single-process step runs its tail (the decoder's first layer beside
 * the prior's, the category terms' and the category head's backward
 * passes, their share of z's gradient in a buffer of its own) in another
 * order than a step in parts, which runs those one after the other into
 * dz. The two must give the same loss and gradient up to the order of
 * float additions: the step in parts is the plain sequence, the
 * reference here. A share of dz lost or added twice moves encoder and
 * branch gradients by far more than that. */
static void test_tail_matches_sequence(void **state)
{
    (void)state;
    static const int cases[][2] = {/* prior, category input features */
                                   {CVAE_PRIOR_MIXTURE, 0},
                                   {CVAE_PRIOR_STANDARD, 0},
                                   {CVAE_PRIOR_MIXTURE, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cvae_config *c = small_config(2, 1);
        assert_int_equal(cvae_config_set_prior(c, cases[k][0]), CVAE_OK);
        assert_int_equal(cvae_config_set_category_input(c, cases[k][1]
                                                               ? CVAE_CATEGORY_INPUT_FEATURES
                                                               : CVAE_CATEGORY_INPUT_Z),
                         CVAE_OK);
        cvae_model *m;
        assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
        cvae_config_destroy(c);
        const int n = 5, mixture = cases[k][0] == CVAE_PRIOR_MIXTURE;
        cvae__rng r;
        cvae__rng_seed(&r, 31 + k);
        for (size_t i = 0; i < (size_t)n * m->P; i++)
            m->x[i] = cvae__rng_uniform(&r);
        float *g[2];
        double l[2][CVAE_LOSS_COUNT];
        for (int seq = 0; seq < 2; seq++) {
            cvae__forward(m, n, seq ? CVAE__TRAIN_REUSE_EPS : 1, 1);
            if (seq) {
                /* one part holding the whole batch */
                m->par.parts = 1;
                m->par.total = n;
                for (int y = 0; y < m->k; y++) {
                    m->par.colsum[y] = 0;
                    for (int i = 0; i < n; i++)
                        m->par.colsum[y] += m->q[(size_t)i * m->k + y];
                }
            }
            cvae__loss_and_backward(m, n, mixture, 1, l[seq]);
            m->par.parts = 0;
            g[seq] = malloc(m->nparams * sizeof(float));
            assert_non_null(g[seq]);
            memcpy(g[seq], m->grads, m->nparams * sizeof(float));
        }
        for (int t = 0; t < CVAE_LOSS_COUNT; t++)
            assert_true(fabs(l[0][t] - l[1][t]) <= 1e-6 * (1 + fabs(l[1][t])));
        for (int t = 0; t < m->nparam; t++) {
            const cvae__param *p = &m->ptab[t];
            double big = 0, worst = 0;
            for (size_t i = p->offset; i < p->offset + p->count; i++) {
                big = fmax(big, fabs(g[1][i]));
                worst = fmax(worst, fabs((double)g[0][i] - g[1][i]));
            }
            if (worst > 1e-5 * big + 1e-9)
                fail_msg("case %zu, %s: gradients differ by %.3g (largest entry %.3g)", k,
                         p->name, worst, big);
        }
        free(g[0]);
        free(g[1]);
        cvae_model_destroy(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_mixture),
        cmocka_unit_test(test_grad_standard),
        cmocka_unit_test(test_grad_deep_branches_features),
        cmocka_unit_test(test_grad_plain_vae),
        cmocka_unit_test(test_grad_recon_features),
        cmocka_unit_test(test_grad_frozen_conv),
        cmocka_unit_test(test_grad_two_threads),
        cmocka_unit_test(test_tail_matches_sequence),
        cmocka_unit_test(test_grad_recipe_terms),
        cmocka_unit_test(test_frozen_conv_unchanged),
        cmocka_unit_test(test_second_encoder_set),
        cmocka_unit_test(test_create_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
