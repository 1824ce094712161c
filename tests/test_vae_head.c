/* The VAE head (lib/model/vae_head.c) on a small model: sampling against
 * its definition, and the decoder's and encoder's backward passes against
 * central differences of a linear functional of their outputs. Whole-model
 * gradients (every parameter, every loss term) are in test_model.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convvae.h"
#include "core/rng.h"
#include "core/threads.h"
#include "small_model.h"
#include "model/model.h"
#include "model/vae_head.h"

/* Images whose features the encoder reads: for a plain VAE the pixels. */
static void random_images(cvae_model *m, int n, uint64_t seed)
{
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)n * m->P; i++)
        m->x[i] = cvae__rng_uniform(&r);
}

static void test_sampling(void **state)
{
    (void)state;
    cvae_model *m = small_model(0);
    const int n = 3;
    const size_t ns = (size_t)n * m->s;
    random_images(m, n, 1);
    cvae__vae_encode(m, n, 0); /* evaluation: z = mu, eps = 0 */
    for (size_t i = 0; i < ns; i++) {
        assert_true(m->z[i] == m->mu[i]);
        assert_true(m->eps[i] == 0.0f);
    }
    cvae__vae_encode(m, n, 1); /* training: z = mu + exp(lv / 2) eps, eps drawn */
    int nonzero = 0;
    float *eps = malloc(ns * sizeof *eps);
    assert_non_null(eps);
    for (size_t i = 0; i < ns; i++) {
        assert_true(fabsf(m->z[i] - (m->mu[i] + expf(0.5f * m->lv[i]) * m->eps[i])) <= 1e-6f);
        nonzero += m->eps[i] != 0.0f;
        eps[i] = m->eps[i];
    }
    assert_true(nonzero > 0);
    cvae__vae_encode(m, n, CVAE__TRAIN_REUSE_EPS); /* the same eps again */
    assert_memory_equal(eps, m->eps, ns * sizeof *eps);
    free(eps);
    cvae_model_destroy(m);
}

/* L(z) = <xhat(z), R>; dL/dpre-sigmoid = R xhat (1 - xhat). */
static double decoder_functional(cvae_model *m, int n, const float *R)
{
    cvae__vae_decode(m, n);
    const float *xh = cvae__xhat(m);
    double acc = 0.0;
    for (size_t i = 0; i < (size_t)n * m->P; i++)
        acc += (double)xh[i] * R[i];
    return acc;
}

static void check_decoder(int branches)
{
    cvae_model *m = small_model(branches);
    const int n = 2;
    cvae__rng r;
    cvae__rng_seed(&r, 7);
    const size_t np = (size_t)n * m->P, ns = (size_t)n * m->s;
    float *R = malloc(np * sizeof *R);
    assert_non_null(R);
    for (size_t i = 0; i < np; i++)
        R[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
    for (size_t i = 0; i < ns; i++)
        m->z[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
    (void)decoder_functional(m, n, R);
    float *dpre = m->ndec ? m->ddecact[m->ndec - 1] : m->ddslice;
    const float *xh = cvae__xhat(m);
    for (size_t i = 0; i < np; i++)
        dpre[i] = R[i] * xh[i] * (1.0f - xh[i]);
    memset(m->grads, 0, m->nparams * sizeof(float));
    cvae__vae_decoder_backward(m, n, dpre);
    int bad = 0;
    for (size_t i = 0; i < ns; i++) {
        const float keep = m->z[i], h = 1e-2f;
        m->z[i] = keep + h;
        double lp = decoder_functional(m, n, R);
        m->z[i] = keep - h;
        double lm = decoder_functional(m, n, R);
        m->z[i] = keep;
        double fd = (lp - lm) / (2.0 * h), an = m->dz[i];
        if (fabs(fd - an) > 2e-2 * fmax(fmax(fabs(fd), fabs(an)), 0.05)) {
            print_message("branches %d: dz[%zu] analytic %.6g numeric %.6g\n", branches, i, an,
                          fd);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    free(R);
    cvae_model_destroy(m);
}

static void test_decoder_backward(void **state)
{
    (void)state;
    check_decoder(0); /* dense decoder straight to pixels */
    check_decoder(1); /* with transposed convs mirroring the branch */
}

/* L(x) = <mu, A> + <lv, B> through the encoder of a plain VAE (features =
 * pixels): the encoder's input gradient dh feeds the feature blocks, so
 * check the encoder weight gradient of one weight per row by differences. */
static double encoder_functional(cvae_model *m, int n, const float *A, const float *B)
{
    cvae__vae_encode(m, n, 0);
    double acc = 0.0;
    for (size_t i = 0; i < (size_t)n * m->s; i++)
        acc += (double)m->mu[i] * A[i] + (double)m->lv[i] * B[i];
    return acc;
}

static void test_encoder_backward(void **state)
{
    (void)state;
    cvae_model *m = small_model(0);
    const int n = 3;
    random_images(m, n, 3);
    cvae__rng r;
    cvae__rng_seed(&r, 9);
    const size_t ns = (size_t)n * m->s;
    float *A = malloc(ns * sizeof *A), *B = malloc(ns * sizeof *B);
    assert_true(A && B);
    for (size_t i = 0; i < ns; i++) {
        A[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
        B[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
    }
    (void)encoder_functional(m, n, A, B);
    memset(m->grads, 0, m->nparams * sizeof(float));
    memset(m->dz, 0, ns * sizeof(float));
    memcpy(m->dmu, A, ns * sizeof *A);
    memcpy(m->dlv, B, ns * sizeof *B);
    cvae__vae_encoder_backward(m, n);
    int bad = 0, checked = 0;
    const size_t offs[] = {m->enc_w, m->enc_b, m->mu_w, m->mu_b, m->lv_w, m->lv_b};
    for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++)
        for (size_t k = 0; k < 5; k++) {
            const size_t idx = offs[o] + k * 3;
            const float keep = m->params[idx], h = 1e-2f;
            m->params[idx] = keep + h;
            double lp = encoder_functional(m, n, A, B);
            m->params[idx] = keep - h;
            double lm = encoder_functional(m, n, A, B);
            m->params[idx] = keep;
            double fd = (lp - lm) / (2.0 * h), an = m->grads[idx];
            checked++;
            if (fabs(fd - an) > 2e-2 * fmax(fmax(fabs(fd), fabs(an)), 0.05)) {
                print_message("param %zu: analytic %.6g numeric %.6g\n", idx, an, fd);
                bad++;
            }
        }
    /* A ReLU kink may cost a sample; a wrong term costs most of them. */
    assert_true(bad <= 1);
    assert_int_equal(checked, 30);
    free(A);
    free(B);
    cvae_model_destroy(m);
}

/* The forward and backward passes run small products of the heads as the
 * parts of one job (mu beside the log-variance, the category head beside
 * the decoder's first layer, each dense layer's dx beside its dw): on two
 * threads every activation, loss and gradient has the bits of one thread.
 * The model's own thread setting stays 1, so the convolution (which sums
 * its gradients per part of the batch) runs in one part either way. */
static void test_two_threads_same_bits(void **state)
{
    (void)state;
    cvae_model *m = small_model(1);
    const int n = 5;
    const size_t ns = (size_t)n * m->s;
    random_images(m, n, 21);
    cvae__rng r;
    cvae__rng_seed(&r, 22);
    cvae__rng_normal_fill(&r, m->eps, (int64_t)ns);
    float *eps = malloc(ns * sizeof *eps), *out[2][5];
    assert_non_null(eps);
    memcpy(eps, m->eps, ns * sizeof *eps);
    const size_t len[5] = {ns, ns, (size_t)n * m->k, (size_t)n * m->P, m->nparams};
    double loss[2][CVAE_LOSS_COUNT];
    const int before = cvae__threads_get();
    for (int t = 0; t < 2; t++) {
        cvae__threads_set(t + 1);
        memcpy(m->eps, eps, ns * sizeof *eps);
        cvae__forward(m, n, CVAE__TRAIN_REUSE_EPS, 1);
        cvae__loss_and_backward(m, n, 1, 1, loss[t]);
        const float *src[5] = {m->mu, m->z, m->q, cvae__xhat(m), m->grads};
        for (int a = 0; a < 5; a++) {
            out[t][a] = malloc(len[a] * sizeof(float));
            assert_non_null(out[t][a]);
            memcpy(out[t][a], src[a], len[a] * sizeof(float));
        }
    }
    cvae__threads_set(before);
    for (int a = 0; a < 5; a++)
        assert_memory_equal(out[0][a], out[1][a], len[a] * sizeof(float));
    assert_memory_equal(loss[0], loss[1], sizeof loss[0]);
    /* every head's gradient was written */
    const size_t offs[] = {m->mu_w, m->lv_w, m->c1_w, m->c2_w, m->d1_w, m->d2_w};
    for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++)
        assert_true(out[1][4][offs[o]] != 0.0f || out[1][4][offs[o] + 1] != 0.0f);
    for (int t = 0; t < 2; t++)
        for (int a = 0; a < 5; a++)
            free(out[t][a]);
    free(eps);
    cvae_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_decoder_backward),
        cmocka_unit_test(test_encoder_backward),
        cmocka_unit_test(test_two_threads_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
