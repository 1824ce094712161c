/* Fully connected layer, and its form over unconcatenated column blocks:
 * forward against a naive loop, gradients against finite differences and
 * naive sums. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/dense.h"
#include "gradcheck.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "core/threads.h"

static const int shapes[][3] = {
    /* n, in, out */
    {1, 1, 1}, {3, 5, 4}, {7, 13, 3}, {1, 9, 17}, {5, 1, 6}, {4, 6, 1}, {16, 33, 10},
    {3, 2, 300}, /* the bias gradient sums columns in blocks of 256 */
};

static void test_dense_forward_reference(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 21);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        float *x = gc_alloc((size_t)n * in), *w = gc_alloc((size_t)out * in);
        float *b = gc_alloc((size_t)out), *y = gc_alloc((size_t)n * out);
        double *want = calloc((size_t)n * out, sizeof *want);
        assert_non_null(want);
        gc_fill_uniform(&r, x, (size_t)n * in, -1, 1);
        gc_fill_uniform(&r, w, (size_t)out * in, -1, 1);
        gc_fill_uniform(&r, b, (size_t)out, -1, 1);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < out; j++) {
                double acc = b[j];
                for (int k = 0; k < in; k++)
                    acc += (double)x[i * in + k] * w[j * in + k];
                want[i * out + j] = acc;
            }
        gc_fill_nan(y, (size_t)n * out);
        cvae__dense_forward(n, in, out, x, w, b, y);
        assert_true(gc_max_rel_diff(y, want, (size_t)n * out, 1.0) < 1e-5);
        free(x);
        free(w);
        free(b);
        free(y);
        free(want);
    }
}

typedef struct dense_ctx {
    int n, in, out;
    float *x, *w, *b, *y;
    const float *R;
} dense_ctx;

static double dense_loss(void *p)
{
    dense_ctx *c = p;
    cvae__dense_forward(c->n, c->in, c->out, c->x, c->w, c->b, c->y);
    return gc_dot(c->y, c->R, (size_t)c->n * c->out);
}

static void test_dense_gradcheck(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 22);
    double worst = 0.0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
        float *x = gc_alloc(nx), *w = gc_alloc(nw), *b = gc_alloc((size_t)out);
        float *y = gc_alloc(ny), *R = gc_alloc(ny);
        float *dx = gc_alloc(nx), *dw = gc_alloc(nw), *db = gc_alloc((size_t)out);
        float *dw2 = gc_alloc(nw), *db2 = gc_alloc((size_t)out);
        gc_fill_uniform(&r, x, nx, -1, 1);
        gc_fill_uniform(&r, w, nw, -1, 1);
        gc_fill_uniform(&r, b, (size_t)out, -1, 1);
        gc_fill_uniform(&r, R, ny, -1, 1);
        gc_fill_nan(dx, nx);
        gc_fill_nan(dw, nw);
        gc_fill_nan(db, (size_t)out);
        cvae__dense_backward(n, in, out, x, w, R, dx, dw, db);

        /* db is the column sum of dy in double, row by row: the naive sum
         * in that order gives it to the bit (besides the finite
         * differences below). */
        for (int j = 0; j < out; j++) {
            double acc = 0.0;
            for (int i = 0; i < n; i++)
                acc += R[i * out + j];
            assert_true(db[j] == (float)acc);
        }

        dense_ctx c = {n, in, out, x, w, b, y, R};
        double e = gc_check(dense_loss, &c, x, dx, nx, GC_EPS);
        double ew = gc_check(dense_loss, &c, w, dw, nw, GC_EPS);
        double eb = gc_check(dense_loss, &c, b, db, (size_t)out, GC_EPS);
        if (ew > e)
            e = ew;
        if (eb > e)
            e = eb;
        if (e > worst)
            worst = e;

        /* The first layer passes dx = NULL. */
        gc_fill_nan(dw2, nw);
        gc_fill_nan(db2, (size_t)out);
        cvae__dense_backward(n, in, out, x, w, R, NULL, dw2, db2);
        assert_memory_equal(dw, dw2, nw * sizeof *dw);
        assert_memory_equal(db, db2, (size_t)out * sizeof *db);

        free(x);
        free(w);
        free(b);
        free(y);
        free(R);
        free(dx);
        free(dw);
        free(db);
        free(dw2);
        free(db2);
    }
    gc_report("dense (dx, dW, db)", worst);
    assert_true(worst < GC_TOL);
}

/* A NULL bias means no bias (layers without one). */
static void test_dense_no_bias(void **state)
{
    (void)state;
    const float x[2] = {1.0f, 2.0f};
    const float w[4] = {1.0f, 0.5f, -1.0f, 3.0f};
    float y[2];
    cvae__dense_forward(1, 2, 2, x, w, NULL, y);
    assert_float_equal(y[0], 2.0f, 1e-6f);
    assert_float_equal(y[1], 5.0f, 1e-6f);
}

/* The block form: three blocks that sit in columns 5.., 0.. and 9.. of a
 * 14-wide W (one column, 4, unused) against a naive loop over the
 * concatenated row, and its dW columns / db against finite differences. */
typedef struct blocks_ctx {
    int n, out, ldw;
    const float *blk[3];
    int size[3], off[3];
    float *w, *b, *y;
    const float *R;
} blocks_ctx;

static double blocks_loss(void *p)
{
    blocks_ctx *c = p;
    cvae__dense_blocks_forward(c->n, c->out, 3, c->blk, c->size, c->off, c->w, c->ldw, c->b,
                               c->y);
    return gc_dot(c->y, c->R, (size_t)c->n * c->out);
}

static void test_dense_blocks(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 23);
    enum { N = 4, OUT = 3, LDW = 14 };
    const int size[3] = {4, 4, 5}, off[3] = {5, 0, 9};
    float *x[3], *w = gc_alloc((size_t)OUT * LDW), *b = gc_alloc(OUT);
    float *y = gc_alloc(N * OUT), *R = gc_alloc(N * OUT);
    float *dw = gc_alloc((size_t)OUT * LDW), *db = gc_alloc(OUT);
    for (int i = 0; i < 3; i++) {
        x[i] = gc_alloc((size_t)N * size[i]);
        gc_fill_uniform(&r, x[i], (size_t)N * size[i], -1, 1);
    }
    gc_fill_uniform(&r, w, (size_t)OUT * LDW, -1, 1);
    gc_fill_uniform(&r, b, OUT, -1, 1);
    gc_fill_uniform(&r, R, N * OUT, -1, 1);
    blocks_ctx c = {N, OUT, LDW, {x[0], x[1], x[2]}, {4, 4, 5}, {5, 0, 9}, w, b, y, R};
    (void)blocks_loss(&c);
    double want[N * OUT];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < OUT; j++) {
            double acc = b[j];
            for (int k = 0; k < 3; k++)
                for (int q = 0; q < size[k]; q++)
                    acc += (double)x[k][i * size[k] + q] * w[j * LDW + off[k] + q];
            want[i * OUT + j] = acc;
        }
    assert_true(gc_max_rel_diff(y, want, N * OUT, 1.0) < 1e-5);

    gc_fill_nan(db, OUT);
    for (int q = 0; q < OUT * LDW; q++)
        dw[q] = 123.0f; /* the unused column keeps what it held */
    cvae__dense_blocks_backward(N, OUT, 3, c.blk, size, off, R, dw, LDW, db);
    for (int j = 0; j < OUT; j++)
        assert_true(dw[j * LDW + 4] == 123.0f);
    double ew = 0.0;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < OUT; j++) {
            double e = gc_check(blocks_loss, &c, w + j * LDW + off[k], dw + j * LDW + off[k],
                                (size_t)size[k], GC_EPS);
            ew = e > ew ? e : ew;
        }
    double eb = gc_check(blocks_loss, &c, b, db, OUT, GC_EPS);
    gc_report("dense blocks (dW, db)", ew > eb ? ew : eb);
    assert_true(ew < GC_TOL && eb < GC_TOL);
    for (int i = 0; i < 3; i++)
        free(x[i]);
    free(w);
    free(b);
    free(y);
    free(R);
    free(dw);
    free(db);
}

/* The backward pass's dx and dw (with db) run as the two parts of one job
 * when the products are too small to split, and each product split across
 * the threads when large: either way every output has the bits of the
 * one-thread pass, which computes them one after the other. */
static void test_dense_backward_threads(void **state)
{
    (void)state;
    /* 2.6M multiply-adds (the pair), then 6.4M (each product split) */
    static const int shapes[][3] = {{100, 512, 50}, {100, 128, 500}};
    const int before = cvae__threads_get();
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int n = shapes[t][0], in = shapes[t][1], out = shapes[t][2];
        assert_int_equal(cvae__gemm_splits((double)n * in * out), t == 1);
        const size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
        float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w),
              *dy = malloc(ny * sizeof *dy);
        float *dx[2] = {malloc(nx * sizeof(float)), malloc(nx * sizeof(float))};
        float *dw[2] = {malloc(nw * sizeof(float)), malloc(nw * sizeof(float))};
        float *db[2] = {malloc(out * sizeof(float)), malloc(out * sizeof(float))};
        assert_true(x && w && dy && dx[0] && dx[1] && dw[0] && dw[1] && db[0] && db[1]);
        cvae__rng r;
        cvae__rng_seed(&r, 11 + t);
        cvae__rng_uniform_fill(&r, x, (int64_t)nx, 1.0f);
        cvae__rng_uniform_fill(&r, w, (int64_t)nw, 0.1f);
        cvae__rng_uniform_fill(&r, dy, (int64_t)ny, 1.0f);
        for (int k = 0; k < 2; k++) {
            cvae__threads_set(k + 1);
            cvae__dense_backward(n, in, out, x, w, dy, dx[k], dw[k], db[k]);
        }
        assert_memory_equal(dx[0], dx[1], nx * sizeof(float));
        assert_memory_equal(dw[0], dw[1], nw * sizeof(float));
        assert_memory_equal(db[0], db[1], out * sizeof(float));
        /* and the values are the layer's: one entry of each by its sum */
        double sx = 0, sw = 0, sb = 0;
        for (int j = 0; j < out; j++)
            sx += (double)dy[j] * w[(size_t)j * in];
        for (int i = 0; i < n; i++) {
            sw += (double)dy[(size_t)i * out] * x[(size_t)i * in];
            sb += dy[(size_t)i * out];
        }
        assert_true(fabs(dx[1][0] - sx) <= 1e-4 * (1 + fabs(sx)));
        assert_true(fabs(dw[1][0] - sw) <= 1e-4 * (1 + fabs(sw)));
        assert_true(fabs(db[1][0] - sb) <= 1e-4 * (1 + fabs(sb)));
        for (int k = 0; k < 2; k++) {
            free(dx[k]);
            free(dw[k]);
            free(db[k]);
        }
        free(x);
        free(w);
        free(dy);
    }
    cvae__threads_set(before);
}

/* The bias (forward) and the bias gradient (backward) are computed by each
 * part of a split product for its own rows or columns: at 1-3 threads,
 * products split by rows and by columns, the outputs are those of the
 * product alone followed by the plain loops, to the bit. */
static void test_dense_epilogues_threads(void **state)
{
    (void)state;
    /* n, in, out: C = y (n x out) and dW (out x in) split by rows or
     * columns, and one pair too small to split */
    static const int shapes[][3] = {{700, 128, 64}, {100, 128, 500}, {100, 600, 100},
                                    {100, 600, 500}, {9, 7, 5}};
    const int before = cvae__threads_get();
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int n = shapes[t][0], in = shapes[t][1], out = shapes[t][2];
        const size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
        float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(out * sizeof *b);
        float *y = malloc(ny * sizeof *y), *want = malloc(ny * sizeof *want);
        float *dw = malloc(nw * sizeof *dw), *db = malloc(out * sizeof *db);
        float *dbf = malloc(out * sizeof *dbf), *wantb = malloc(out * sizeof *wantb);
        float *wantf = malloc(out * sizeof *wantf);
        assert_true(x && w && b && y && want && dw && db && dbf && wantb && wantf);
        cvae__rng r;
        cvae__rng_seed(&r, 21 + t);
        cvae__rng_uniform_fill(&r, x, (int64_t)nx, 1.0f);
        cvae__rng_uniform_fill(&r, w, (int64_t)nw, 0.1f);
        cvae__rng_uniform_fill(&r, b, out, 1.0f);
        /* the references: the product, then the bias row by row; the
         * column sums of y (standing in for dy) in row order, in double
         * and in float */
        cvae__threads_set(1);
        cvae__sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, want, out);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < out; j++)
                want[(size_t)i * out + j] += b[j];
        for (int j = 0; j < out; j++) {
            double sd = 0;
            float sf = 0;
            for (int i = 0; i < n; i++) {
                sd += (double)want[(size_t)i * out + j];
                sf += want[(size_t)i * out + j];
            }
            wantb[j] = (float)sd;
            wantf[j] = sf;
        }
        /* the block form: x as two blocks of columns */
        const int h = in / 2;
        const float *blk[2] = {x, x + h};
        int size[2] = {h, in - h}, off[2] = {0, h};
        float *xb[2] = {malloc((size_t)n * h * sizeof(float)),
                        malloc((size_t)n * (in - h) * sizeof(float))};
        assert_true(xb[0] && xb[1]);
        for (int i = 0; i < n; i++) {
            memcpy(xb[0] + (size_t)i * h, x + (size_t)i * in, (size_t)h * sizeof(float));
            memcpy(xb[1] + (size_t)i * (in - h), x + (size_t)i * in + h,
                   (size_t)(in - h) * sizeof(float));
        }
        blk[0] = xb[0];
        blk[1] = xb[1];
        for (int k = 1; k <= 3; k++) {
            cvae__threads_set(k);
            /* nothing left over from the call before */
            for (size_t i = 0; i < ny; i++)
                y[i] = NAN;
            for (int j = 0; j < out; j++)
                db[j] = dbf[j] = NAN;
            cvae__dense_forward(n, in, out, x, w, b, y);
            assert_memory_equal(y, want, ny * sizeof *y);
            cvae__dense_backward(n, in, out, x, w, want, NULL, dw, db);
            assert_memory_equal(db, wantb, out * sizeof *db);
            for (size_t i = 0; i < ny; i++)
                y[i] = NAN;
            cvae__dense_blocks_forward(n, out, 2, blk, size, off, w, in, b, y);
            for (size_t i = 0; i < ny; i++)
                assert_true(fabsf(y[i] - want[i]) <= 1e-4f * (1.0f + fabsf(want[i])));
            cvae__dense_blocks_backward(n, out, 2, blk, size, off, want, dw, in, dbf);
            assert_memory_equal(dbf, wantf, out * sizeof *dbf);
        }
        free(xb[0]);
        free(xb[1]);
        free(x);
        free(w);
        free(b);
        free(y);
        free(want);
        free(dw);
        free(db);
        free(dbf);
        free(wantb);
        free(wantf);
    }
    cvae__threads_set(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_forward_reference),
        cmocka_unit_test(test_dense_gradcheck),
        cmocka_unit_test(test_dense_no_bias),
        cmocka_unit_test(test_dense_blocks),
        cmocka_unit_test(test_dense_backward_threads),
        cmocka_unit_test(test_dense_epilogues_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
