/* Shared helpers for the layer tests: random fills, double-precision dot
 * products and a central-difference gradient checker.
 *
 * Include after <cmocka.h>. Everything is static so each test executable
 * gets its own copy; unused helpers are marked so -Wunused stays quiet. */
#ifndef CVAE_TEST_GRADCHECK_H
#define CVAE_TEST_GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

#if defined(__GNUC__)
#define GC_UNUSED __attribute__((unused))
#else
#define GC_UNUSED
#endif

/* Tolerance of every finite-difference check. The scalar loss is
 * L = sum(out * R) with R ~ U(-1, 1), evaluated in double from float
 * outputs. With eps = 1e-2 the float rounding of the changed outputs
 * (~1e-7 relative) contributes ~1e-5 to the difference quotient and the
 * O(eps^2) truncation of smooth layers ~1e-4, so an error of 1e-2 is two
 * orders above the noise yet far below what a wrong index, a missing term or
 * a transposed weight produces (errors of order 1). Gradients below
 * GC_FLOOR are compared absolutely (relative error of near-zero values is
 * meaningless). Seen with the fixed seeds: conv/deconv/dense ~4e-4,
 * sigmoid/softmax ~5e-5, relu/maxpool ~0 (piecewise linear, points kept
 * away from kinks and ties). */
#define GC_EPS 1e-2f
#define GC_TOL 1e-2
#define GC_FLOOR 1e-1

static GC_UNUSED float *gc_alloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static GC_UNUSED void gc_fill_uniform(cvae__rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * cvae__rng_uniform(r);
}

/* Poison an output buffer so a function that accumulates into it instead of
 * overwriting it produces NaN and fails the comparison. */
static GC_UNUSED void gc_fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

static GC_UNUSED double gc_dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

static GC_UNUSED double gc_rel_err(double analytic, double numeric)
{
    double den = fabs(analytic);
    if (fabs(numeric) > den)
        den = fabs(numeric);
    if (den < GC_FLOOR)
        den = GC_FLOOR;
    return fabs(analytic - numeric) / den;
}

/* Max relative difference between two float arrays (NaN counts as huge). */
static GC_UNUSED double gc_max_rel_diff(const float *got, const double *want, size_t n,
                                        double floor_)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double den = fabs(want[i]) > floor_ ? fabs(want[i]) : floor_;
        double e = fabs((double)got[i] - want[i]) / den;
        if (!(e == e))
            return INFINITY;
        if (e > worst)
            worst = e;
    }
    return worst;
}

typedef double (*gc_loss_fn)(void *ctx);

/* Compare grad[0..n) with central differences of loss() in p[0..n).
 * The step actually taken is measured in float, so rounding of p +- eps
 * does not bias the quotient. Returns the max relative error. */
static GC_UNUSED double gc_check(gc_loss_fn loss, void *ctx, float *p, const float *grad,
                                 size_t n, float eps)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float orig = p[i];
        const float up = orig + eps, down = orig - eps;
        p[i] = up;
        const double lp = loss(ctx);
        p[i] = down;
        const double lm = loss(ctx);
        p[i] = orig;
        const double num = (lp - lm) / ((double)up - (double)down);
        double e = gc_rel_err((double)grad[i], num);
        if (!(e == e))
            e = INFINITY;
        if (e > worst)
            worst = e;
    }
    return worst;
}

/* Running maximum kept per test file, printed at the end of each test so
 * the numbers can be reported. */
static GC_UNUSED void gc_report(const char *what, double err)
{
    printf("[gradcheck] %-28s max rel error %.3e (tol %.0e)\n", what, err, GC_TOL);
    fflush(stdout);
}

#endif
