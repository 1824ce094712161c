/* Inference entry points (lib/model/inference.c): their shared argument
 * checks, results that do not depend on batching, the data-set forms
 * against the buffer forms, and generation. */
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
#include "small_model.h"

static void test_inference_invariants(void **state)
{
    (void)state;
    cvae_config *c = small_config(2, 1);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    enum { N = 13 }; /* more than one batch of 6, with a partial last batch */
    float *x = malloc(N * 64 * sizeof *x), proba[N * 3], mu[N * 4], mu1[4];
    int32_t cl[N];
    cvae__rng r;
    cvae__rng_seed(&r, 5);
    for (int i = 0; i < N * 64; i++)
        x[i] = cvae__rng_uniform(&r);
    assert_int_equal(cvae_model_predict_proba(m, x, N, proba), CVAE_OK);
    assert_int_equal(cvae_model_predict(m, x, N, cl), CVAE_OK);
    for (int i = 0; i < N; i++) {
        double s = proba[i * 3] + proba[i * 3 + 1] + proba[i * 3 + 2];
        assert_true(fabs(s - 1.0) < 1e-5);
        for (int y = 0; y < 3; y++)
            assert_true(proba[i * 3 + y] <= proba[i * 3 + cl[i]]);
    }
    /* batching does not change results: image 12 alone == image 12 in a batch */
    assert_int_equal(cvae_model_encode(m, x, N, mu, NULL), CVAE_OK);
    assert_int_equal(cvae_model_encode(m, x + 12 * 64, 1, mu1, NULL), CVAE_OK);
    for (int d = 0; d < 4; d++)
        assert_true(fabs(mu[12 * 4 + d] - mu1[d]) <= 1e-5f * (1 + fabs(mu1[d])));
    x[70] = NAN;
    assert_int_equal(cvae_model_predict(m, x, N, cl), CVAE_E_NUMERIC);
    assert_non_null(strstr(cvae_last_error(), "70"));
    x[70] = 1.5f;
    assert_int_equal(cvae_model_predict(m, x, N, cl), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_generate(m, 3, 2, 1, x), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_generate(m, 2, 8, 1, x), CVAE_OK);
    for (int i = 0; i < 8 * 64; i++)
        assert_true(x[i] >= 0.0f && x[i] <= 1.0f);
    free(x);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}


/* Every entry point checks model, input and output the same way, and
 * names itself in the message. */
static void test_argument_checks(void **state)
{
    (void)state;
    cvae_config *c = small_config(2, 1);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    float x[2 * 64] = {0}, f[2 * 64];
    int32_t cl[2];
    double l[CVAE_LOSS_COUNT];
    assert_int_equal(cvae_model_predict(NULL, x, 2, cl), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "cvae_model_predict: model is NULL"));
    assert_int_equal(cvae_model_encode(m, NULL, 2, f, NULL), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "cvae_model_encode: images is NULL"));
    assert_int_equal(cvae_model_predict_proba(m, x, 0, f), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_reconstruct(m, x, 2, NULL), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "cvae_model_reconstruct: out is NULL"));
    assert_int_equal(cvae_model_predict(m, x, 2, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_predict_proba(m, x, 2, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_predict(m, x, INT64_MAX / 8, cl), CVAE_E_INVALID_ARG);
    /* encode's outputs are both optional */
    assert_int_equal(cvae_model_encode(m, x, 2, NULL, NULL), CVAE_OK);

    /* Data sets: NULL, a foreign image shape, a missing output. */
    cvae_dataset *ok = NULL, *wrong = NULL;
    assert_int_equal(cvae_dataset_from_f32(x, 2, 1, 8, 8, NULL, &ok), CVAE_OK);
    assert_int_equal(cvae_dataset_from_f32(x, 2, 1, 4, 16, NULL, &wrong), CVAE_OK);
    assert_int_equal(cvae_model_predict_dataset(m, NULL, cl, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_predict_dataset(m, wrong, cl, NULL), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "4x16"));
    assert_int_equal(cvae_model_predict_dataset(m, ok, NULL, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_loss(m, ok, NULL, CVAE_LOSS_COUNT), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_loss(m, ok, l, 0), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_evaluate(m, ok, NULL, NULL, NULL, NULL), CVAE_E_STATE);
    assert_int_equal(cvae_model_evaluate(NULL, ok, NULL, NULL, NULL, NULL), CVAE_E_INVALID_ARG);
    cvae_dataset_destroy(ok);
    cvae_dataset_destroy(wrong);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

/* The data-set forms give what the buffer forms give on the same images. */
static void test_dataset_matches_buffers(void **state)
{
    (void)state;
    cvae_config *c = small_config(1, 1);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    enum { N = 9 };
    float *x = malloc(N * 64 * sizeof *x), p1[N * 3], p2[N * 3];
    int32_t c1[N], c2[N], labels[N];
    assert_non_null(x);
    cvae__rng r;
    cvae__rng_seed(&r, 8);
    /* Data sets keep 8-bit pixels: whole multiples of 1/255 survive that. */
    for (int i = 0; i < N * 64; i++)
        x[i] = (float)cvae__rng_below(&r, 256) / 255.0f;
    for (int i = 0; i < N; i++)
        labels[i] = i % 3;
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_f32(x, N, 1, 8, 8, labels, &d), CVAE_OK);
    assert_int_equal(cvae_model_predict_proba(m, x, N, p1), CVAE_OK);
    assert_int_equal(cvae_model_predict(m, x, N, c1), CVAE_OK);
    assert_int_equal(cvae_model_predict_dataset(m, d, c2, p2), CVAE_OK);
    assert_memory_equal(c1, c2, sizeof c1);
    for (int i = 0; i < N * 3; i++)
        assert_true(fabsf(p1[i] - p2[i]) <= 1e-5f);
    double acc, purity, nmi, ari, l[CVAE_LOSS_COUNT + 2];
    assert_int_equal(cvae_model_evaluate(m, d, &acc, &purity, &nmi, &ari), CVAE_OK);
    assert_true(acc >= 1.0 / 3.0 - 1e-9 && acc <= 1.0);
    /* losses: a longer array gets zeros past the known terms */
    assert_int_equal(cvae_model_loss(m, d, l, CVAE_LOSS_COUNT + 2), CVAE_OK);
    assert_true(isfinite(l[CVAE_LOSS_TOTAL]) && l[CVAE_LOSS_COUNT] == 0.0 &&
                l[CVAE_LOSS_COUNT + 1] == 0.0);
    cvae_dataset_destroy(d);
    free(x);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inference_invariants),
        cmocka_unit_test(test_argument_checks),
        cmocka_unit_test(test_dataset_matches_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
