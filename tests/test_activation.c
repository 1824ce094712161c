/* ReLU, sigmoid and softmax: values against double references, extreme
 * inputs, in-place use, and finite-difference gradients. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "layers/activation.h"
#include "gradcheck.h"
#include "core/rng.h"

static void test_relu_values(void **state)
{
    (void)state;
    const float x[6] = {-2.0f, -0.0f, 0.0f, 1e-30f, 3.5f, -1e30f};
    float y[6], dx[6];
    const float dy[6] = {1, 2, 3, 4, 5, 6};
    cvae__relu_forward(6, x, y);
    const float want[6] = {0, 0, 0, 1e-30f, 3.5f, 0};
    for (int i = 0; i < 6; i++)
        assert_true(y[i] == want[i]);
    cvae__relu_backward(6, y, dy, dx);
    const float wantd[6] = {0, 0, 0, 4, 5, 0};
    for (int i = 0; i < 6; i++)
        assert_true(dx[i] == wantd[i]);
    /* A NaN must survive so the trainer's non-finite check can see it. */
    float nan_in = NAN, nan_out = 0.0f;
    cvae__relu_forward(1, &nan_in, &nan_out);
    assert_true(isnan(nan_out));
    /* In place, including dx aliasing dy. */
    float z[6];
    memcpy(z, x, sizeof z);
    cvae__relu_forward(6, z, z);
    assert_memory_equal(z, y, sizeof z);
    float d[6];
    memcpy(d, dy, sizeof d);
    cvae__relu_backward(6, y, d, d);
    assert_memory_equal(d, dx, sizeof d);
}

static void test_sigmoid_values(void **state)
{
    (void)state;
    float x[601], y[601];
    for (int i = 0; i <= 600; i++)
        x[i] = -30.0f + 0.1f * (float)i;
    cvae__sigmoid_forward(601, x, y);
    for (int i = 0; i <= 600; i++) {
        double want = 1.0 / (1.0 + exp(-(double)x[i]));
        assert_true(fabs(y[i] - want) <= 1e-6 * want + 1e-7);
    }
    /* Large |x|: finite, in [0, 1], saturated. */
    const float big[4] = {100.0f, -100.0f, 1e30f, -1e30f};
    float out[4];
    cvae__sigmoid_forward(4, big, out);
    for (int i = 0; i < 4; i++) {
        assert_true(isfinite(out[i]));
        assert_true(out[i] >= 0.0f && out[i] <= 1.0f);
    }
    assert_true(out[0] == 1.0f);
    assert_true(out[1] < 1e-40f);
    assert_true(out[2] == 1.0f);
    assert_true(out[3] == 0.0f);
    /* In place. */
    float z[601];
    memcpy(z, x, sizeof z);
    cvae__sigmoid_forward(601, z, z);
    assert_memory_equal(z, y, sizeof z);
}

/* The ReLU passes run in blocks and the sigmoid in parts across threads:
 * each element must still be exactly the element-by-element definition,
 * on lengths that leave a partial block, in place and not, with NaNs,
 * signed zeros and both signs mixed at random (the case whose branches a
 * plain loop mispredicts). */
static float relu_def(float x) { return x < 0.0f ? 0.0f : x; }
static float relu_grad_def(float y, float dy) { return y > 0.0f ? dy : 0.0f; }
static float sigmoid_def(float v)
{
    if (v >= 0.0f)
        return 1.0f / (1.0f + expf(-v));
    const float e = expf(v);
    return e / (1.0f + e);
}

static void fill_mixed(float *x, int n, uint64_t seed)
{
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        const double u = cvae__rng_uniform(&r);
        x[i] = (float)(40.0 * u - 20.0);
        if (i % 97 == 3)
            x[i] = NAN;
        if (i % 89 == 5)
            x[i] = -0.0f;
        if (i % 83 == 7)
            x[i] = INFINITY;
    }
}

static int same_float(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static void test_blocks_match_definition(void **state)
{
    (void)state;
    enum { N = 100003 };
    float *x = malloc(N * sizeof *x), *dy = malloc(N * sizeof *dy);
    float *y = malloc(N * sizeof *y), *z = malloc(N * sizeof *z);
    assert_non_null(x);
    assert_non_null(dy);
    assert_non_null(y);
    assert_non_null(z);
    fill_mixed(x, N, 11);
    fill_mixed(dy, N, 12);
    const int lens[] = {0, 1, 15, 16, 17, 33, 1000, N};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li];
        cvae__relu_forward(n, x, y);
        for (int i = 0; i < n; i++)
            assert_true(same_float(y[i], relu_def(x[i])));
        memcpy(z, x, (size_t)n * sizeof *z);
        cvae__relu_forward(n, z, z);
        if (n > 0)
            assert_memory_equal(z, y, (size_t)n * sizeof *z);
        cvae__relu_backward(n, x, dy, y);
        for (int i = 0; i < n; i++)
            assert_true(same_float(y[i], relu_grad_def(x[i], dy[i])));
        memcpy(z, dy, (size_t)n * sizeof *z);
        cvae__relu_backward(n, x, z, z);
        if (n > 0)
            assert_memory_equal(z, y, (size_t)n * sizeof *z);
        /* the gradient in two shares (dy and x itself as the second) */
        cvae__relu_backward_sum(n, x, dy, x, y);
        for (int i = 0; i < n; i++)
            assert_true(same_float(y[i], relu_grad_def(x[i], dy[i] + x[i])));
        memcpy(z, dy, (size_t)n * sizeof *z);
        cvae__relu_backward_sum(n, x, z, x, z);
        if (n > 0)
            assert_memory_equal(z, y, (size_t)n * sizeof *z);
        /* the sigmoid at 1, 2 and 3 threads: N is above the size that is
         * split, the others below it */
        for (int t = 1; t <= 3; t++) {
            cvae__threads_set(t);
            cvae__sigmoid_forward(n, x, y);
            for (int i = 0; i < n; i++)
                assert_true(same_float(y[i], sigmoid_def(x[i])));
            memcpy(z, x, (size_t)n * sizeof *z);
            cvae__sigmoid_forward(n, z, z);
            if (n > 0)
                assert_memory_equal(z, y, (size_t)n * sizeof *z);
        }
        cvae__threads_set(1);
    }
    free(x);
    free(dy);
    free(y);
    free(z);
}

static void test_softmax_values(void **state)
{
    (void)state;
    /* Logits whose exp overflows / underflows float without the max
     * subtraction. */
    const float x[2][3] = {{1000.0f, -1000.0f, 0.0f}, {-1000.0f, -1000.0f, -1001.0f}};
    float y[2][3];
    cvae__softmax_forward(2, 3, &x[0][0], &y[0][0]);
    for (int r = 0; r < 2; r++) {
        double s = 0.0;
        for (int j = 0; j < 3; j++) {
            assert_true(isfinite(y[r][j]));
            assert_true(y[r][j] >= 0.0f);
            s += y[r][j];
        }
        assert_true(fabs(s - 1.0) < 1e-6);
    }
    assert_true(y[0][0] == 1.0f);
    assert_true(y[0][1] == 0.0f);
    double e = exp(-1.0), d = 2.0 + e;
    assert_true(fabs(y[1][0] - 1.0 / d) < 1e-6);
    assert_true(fabs(y[1][2] - e / d) < 1e-6);

    /* Random rows against a double reference, and in place. */
    cvae__rng r;
    cvae__rng_seed(&r, 31);
    enum { ROWS = 7, COLS = 11 };
    float in[ROWS * COLS], out[ROWS * COLS], z[ROWS * COLS];
    gc_fill_uniform(&r, in, ROWS * COLS, -20.0f, 20.0f);
    cvae__softmax_forward(ROWS, COLS, in, out);
    for (int i = 0; i < ROWS; i++) {
        double mx = -INFINITY, s = 0.0;
        for (int j = 0; j < COLS; j++)
            mx = fmax(mx, in[i * COLS + j]);
        for (int j = 0; j < COLS; j++)
            s += exp(in[i * COLS + j] - mx);
        for (int j = 0; j < COLS; j++) {
            double want = exp(in[i * COLS + j] - mx) / s;
            assert_true(fabs(out[i * COLS + j] - want) <= 1e-5 * want + 1e-9);
        }
    }
    memcpy(z, in, sizeof z);
    cvae__softmax_forward(ROWS, COLS, z, z);
    assert_memory_equal(z, out, sizeof z);
    /* A single column is always probability 1. */
    float one = -123.0f, p = 0.0f;
    cvae__softmax_forward(1, 1, &one, &p);
    assert_true(p == 1.0f);
}

typedef enum { ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX } act_kind;

typedef struct act_ctx {
    act_kind kind;
    int rows, cols;
    float *x, *y;
    const float *R;
} act_ctx;

static void act_forward(const act_ctx *c)
{
    size_t n = (size_t)c->rows * c->cols;
    switch (c->kind) {
    case ACT_RELU: cvae__relu_forward((int64_t)n, c->x, c->y); break;
    case ACT_SIGMOID: cvae__sigmoid_forward((int64_t)n, c->x, c->y); break;
    case ACT_SOFTMAX: cvae__softmax_forward(c->rows, c->cols, c->x, c->y); break;
    }
}

static double act_loss(void *p)
{
    act_ctx *c = p;
    act_forward(c);
    return gc_dot(c->y, c->R, (size_t)c->rows * c->cols);
}

static double act_gradcheck(act_kind kind, int rows, int cols, float lo, float hi, cvae__rng *r)
{
    size_t n = (size_t)rows * cols;
    float *x = gc_alloc(n), *y = gc_alloc(n), *R = gc_alloc(n), *dx = gc_alloc(n);
    gc_fill_uniform(r, x, n, lo, hi);
    if (kind == ACT_RELU) {
        /* Keep every point at least 5 eps from the kink at 0. */
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < 0.0f ? x[i] - 0.05f : x[i] + 0.05f;
    }
    gc_fill_uniform(r, R, n, -1.0f, 1.0f);
    act_ctx c = {kind, rows, cols, x, y, R};
    act_forward(&c);
    gc_fill_nan(dx, n);
    switch (kind) {
    case ACT_RELU: cvae__relu_backward((int64_t)n, y, R, dx); break;
    case ACT_SIGMOID: cvae__sigmoid_backward((int64_t)n, y, R, dx); break;
    case ACT_SOFTMAX: cvae__softmax_backward(rows, cols, y, R, dx); break;
    }
    /* Backward with dx aliasing dy gives the same numbers (checked before
     * the finite differences, which leave y of a perturbed x behind). */
    float *alias = gc_alloc(n);
    memcpy(alias, R, n * sizeof *alias);
    switch (kind) {
    case ACT_RELU: cvae__relu_backward((int64_t)n, y, alias, alias); break;
    case ACT_SIGMOID: cvae__sigmoid_backward((int64_t)n, y, alias, alias); break;
    case ACT_SOFTMAX: cvae__softmax_backward(rows, cols, y, alias, alias); break;
    }
    assert_memory_equal(alias, dx, n * sizeof *dx);
    free(alias);
    double e = gc_check(act_loss, &c, x, dx, n, GC_EPS);
    free(x);
    free(y);
    free(R);
    free(dx);
    return e;
}

static void test_activation_gradcheck(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 32);
    double er = act_gradcheck(ACT_RELU, 5, 13, -3.0f, 3.0f, &r);
    gc_report("relu (dx)", er);
    double es = act_gradcheck(ACT_SIGMOID, 5, 13, -6.0f, 6.0f, &r);
    gc_report("sigmoid (dx)", es);
    /* Softmax: odd row lengths, including the 10-way category head. */
    double ex = act_gradcheck(ACT_SOFTMAX, 6, 10, -4.0f, 4.0f, &r);
    double e2 = act_gradcheck(ACT_SOFTMAX, 3, 7, -2.0f, 2.0f, &r);
    double e3 = act_gradcheck(ACT_SOFTMAX, 4, 2, -3.0f, 3.0f, &r);
    if (e2 > ex)
        ex = e2;
    if (e3 > ex)
        ex = e3;
    gc_report("softmax (dx)", ex);
    assert_true(er < GC_TOL);
    assert_true(es < GC_TOL);
    assert_true(ex < GC_TOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu_values),
        cmocka_unit_test(test_sigmoid_values),
        cmocka_unit_test(test_blocks_match_definition),
        cmocka_unit_test(test_softmax_values),
        cmocka_unit_test(test_activation_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
