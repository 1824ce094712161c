/* The category head (lib/model/category_head.c) on a small model: q is a
 * distribution per image, and the backward pass against central differences
 * of <q, R> in z (category_input z) and in the head's weights. Whole-model
 * gradients, including the features input, are in test_model.c. */
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
#include "model/category_head.h"
#include "model/model.h"

static double functional(cvae_model *m, int n, const float *R)
{
    cvae__category_forward(m, n);
    double acc = 0.0;
    for (size_t i = 0; i < (size_t)n * m->k; i++)
        acc += (double)m->q[i] * R[i];
    return acc;
}

/* d<q, R>/dv by central differences in the float v. */
static double central_difference(cvae_model *m, int n, const float *R, float *v)
{
    const float keep = *v, h = 1e-2f;
    *v = keep + h;
    double lp = functional(m, n, R);
    *v = keep - h;
    double lm = functional(m, n, R);
    *v = keep;
    return (lp - lm) / (2.0 * h);
}

static int check(double fd, double an)
{
    return fabs(fd - an) <= 2e-2 * fmax(fmax(fabs(fd), fabs(an)), 0.05);
}

static void test_category_head(void **state)
{
    (void)state;
    cvae_model *m = small_model(0);
    const int n = 3;
    const size_t ns = (size_t)n * m->s, nk = (size_t)n * m->k;
    cvae__rng r;
    cvae__rng_seed(&r, 11);
    for (size_t i = 0; i < ns; i++)
        m->z[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
    float *R = malloc(nk * sizeof *R);
    assert_non_null(R);
    /* Large weights: the gradients of a softmax of small logits are small,
     * and the check's absolute floor must not hide an error in them. */
    for (size_t i = 0; i < nk; i++)
        R[i] = 100.0f * (2.0f * cvae__rng_uniform(&r) - 1.0f);

    (void)functional(m, n, R);
    for (int i = 0; i < n; i++) { /* a distribution over the k clusters */
        double sum = 0.0;
        for (int y = 0; y < m->k; y++) {
            assert_true(m->q[i * m->k + y] >= 0.0f);
            sum += m->q[i * m->k + y];
        }
        assert_true(fabs(sum - 1.0) < 1e-5);
    }

    memset(m->grads, 0, m->nparams * sizeof(float));
    memset(m->dz, 0, ns * sizeof(float));
    memcpy(m->dq, R, nk * sizeof *R);
    cvae__category_backward(m, n);
    int bad = 0;
    for (size_t i = 0; i < ns; i++)
        bad += !check(central_difference(m, n, R, &m->z[i]), m->dz[i]);
    const size_t offs[] = {m->c1_w, m->c1_b, m->c2_w, m->c2_b};
    for (size_t o = 0; o < 4; o++)
        for (size_t k = 0; k < 4; k++) {
            const size_t idx = offs[o] + k * 2;
            bad += !check(central_difference(m, n, R, &m->params[idx]), m->grads[idx]);
        }
    /* A ReLU kink may cost a sample; a wrong term costs most of them. */
    assert_true(bad <= 1);
    free(R);
    cvae_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_category_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
