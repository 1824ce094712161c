/* Loss terms: values against double-precision transcriptions of the
 * documented formulas (loss.h), gradients against central
 * differences of the library's own value, accumulation semantics (+=, recon
 * overwrites), and finiteness at q = 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/threads.h"
#include "model/loss.h"

/* Central differences of the library's own value (a double computed from
 * float inputs): the perturbed inputs are exact floats and the step is
 * measured after rounding, so the quotient's noise is only double rounding
 * (~1e-16 |f| / H); the O(H^2) truncation is below 1e-5 relative even for
 * q ln q at the smallest q used (~5e-3). The analytic gradients are float
 * (~1e-7). FD_TOL is well above that and far below the O(1) error of a
 * missing factor or term. Gradients smaller than FD_FLOOR are compared
 * absolutely. */
#define FD_H 1e-4f
/* The mixture KL is a polynomial of degree 2 in z and M and linear in lv and
 * q, so central differences have no truncation error at all; its value
 * rounds z - M to float, though, so a larger step keeps that rounding
 * (~1e-7 |z - M|) small against the step. */
#define FD_H_POLY 1e-2f
#define FD_TOL 1e-4
#define FD_FLOOR 1e-3
/* Values against the double reference: only float rounding of the inputs'
 * differences separates them. */
#define VAL_TOL 1e-6

static double worst_fd; /* max relative FD error over the whole file */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

static void fill(cvae__rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * cvae__rng_uniform(r);
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

/* Rows of positive entries summing to 1 (a softmax output). */
static void fill_simplex(cvae__rng *r, float *q, int n, int k)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int y = 0; y < k; y++) {
            q[i * k + y] = 0.05f + cvae__rng_uniform(r);
            s += q[i * k + y];
        }
        for (int y = 0; y < k; y++)
            q[i * k + y] = (float)(q[i * k + y] / s);
    }
}

static double rel_err(double got, double want, double floor_)
{
    double den = fabs(want) > floor_ ? fabs(want) : floor_;
    double e = fabs(got - want) / den;
    return e == e ? e : INFINITY;
}

static void assert_close(double got, double want, double tol)
{
    double e = rel_err(got, want, 1e-12);
    if (!(e <= tol))
        fail_msg("value %.17g, reference %.17g (rel err %.3e > %.1e)", got, want, e, tol);
}

/* A loss evaluation as a function of whatever the caller perturbs. */
typedef double (*value_fn)(void *ctx);

/* Compare analytic[i] (already minus any pre-filled offset) with central
 * differences of f in p[i]. The step is measured after float rounding. */
static double fd_check(value_fn f, void *ctx, float *p, const double *analytic, size_t n,
                       float h)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const float orig = p[i];
        const float up = orig + h, down = orig - h;
        p[i] = up;
        const double fp = f(ctx);
        p[i] = down;
        const double fm = f(ctx);
        p[i] = orig;
        const double num = (fp - fm) / ((double)up - (double)down);
        const double den = fmax(fmax(fabs(num), fabs(analytic[i])), FD_FLOOR);
        double e = fabs(num - analytic[i]) / den;
        if (!(e == e))
            e = INFINITY;
        if (e > worst)
            worst = e;
    }
    if (worst > worst_fd)
        worst_fd = worst;
    return worst;
}

/* got[i] - offset as doubles, for gradients accumulated onto a known value.
 * The offsets are small powers of two so that the float addition loses
 * little of the gradient (ulp(offset) stays below FD_TOL * FD_FLOOR). */
static double *minus_offset(const float *got, size_t n, float offset)
{
    double *d = xcalloc(n, sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = (double)got[i] - (double)offset;
    return d;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static const int sizes[][3] = {
    /* n, dim (P or s), k */
    {1, 1, 2}, {3, 5, 4}, {7, 13, 10}, {16, 4, 3},
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* ---------------------------------------------------------------- recon */

static double ref_recon(int n, int P, const float *x, const float *xhat)
{
    double t = 0;
    for (int i = 0; i < n * P; i++)
        t += 0.5 * ((double)x[i] - xhat[i]) * ((double)x[i] - xhat[i]);
    return t / n;
}

static void sigmoid_f(const float *a, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (float)(1.0 / (1.0 + exp(-(double)a[i])));
}

/* The library's value takes xhat as float, so rounding sigmoid(a) to float
 * would swamp a difference quotient; the gradient w.r.t. a is therefore
 * checked against central differences of this all-double transcription of
 * wscale * (batch sum of the term), the quantity dpre is documented to be
 * the gradient of. */
static double ref_recon_sum_of_a(int n, int P, const float *x, const double *a, double wscale)
{
    double t = 0;
    for (int i = 0; i < n * P; i++) {
        double xh = 1.0 / (1.0 + exp(-a[i]));
        t += 0.5 * (x[i] - xh) * (x[i] - xh);
    }
    return wscale * t;
}

static double recon_fd(int n, int P, const float *x, const float *a, float wscale,
                       const float *dpre)
{
    const size_t np = (size_t)n * P;
    const double h = 1e-6;
    double *ad = xcalloc(np, sizeof *ad), worst = 0;
    for (size_t i = 0; i < np; i++)
        ad[i] = a[i];
    for (size_t i = 0; i < np; i++) {
        ad[i] = (double)a[i] + h;
        double fp = ref_recon_sum_of_a(n, P, x, ad, wscale);
        ad[i] = (double)a[i] - h;
        double fm = ref_recon_sum_of_a(n, P, x, ad, wscale);
        ad[i] = a[i];
        double num = (fp - fm) / (2 * h);
        double den = fmax(fmax(fabs(num), fabs((double)dpre[i])), FD_FLOOR);
        double e = fabs(num - dpre[i]) / den;
        worst = fmax(worst, e == e ? e : INFINITY);
    }
    free(ad);
    if (worst > worst_fd)
        worst_fd = worst;
    return worst;
}

static void test_recon(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 101);
    double worst = 0;
    for (size_t t = 0; t < NSIZES; t++) {
        const int n = sizes[t][0], P = sizes[t][1];
        const size_t np = (size_t)n * P;
        const float wscale = 0.37f;
        float *x = xcalloc(np, 4), *a = xcalloc(np, 4), *xhat = xcalloc(np, 4);
        float *dpre = xcalloc(np, sizeof *dpre), *dpre2 = xcalloc(np, sizeof *dpre2);
        fill(&r, x, np, 0, 1);
        fill(&r, a, np, -3, 3);
        sigmoid_f(a, xhat, np);

        assert_close(cvae__loss_recon(n, P, x, xhat, wscale, NULL), ref_recon(n, P, x, xhat),
                     VAL_TOL);
        /* Overwritten, not added: NaN in the buffer must not survive. */
        fill_const(dpre, np, NAN);
        double v = cvae__loss_recon(n, P, x, xhat, wscale, dpre);
        assert_close(v, ref_recon(n, P, x, xhat), VAL_TOL);
        assert_true(all_finite(dpre, np));
        worst = fmax(worst, recon_fd(n, P, x, a, wscale, dpre));
        /* Finite garbage gives the same result as NaN did. */
        fill_const(dpre2, np, 123.0f);
        cvae__loss_recon(n, P, x, xhat, wscale, dpre2);
        assert_memory_equal(dpre, dpre2, np * sizeof *dpre);
        free(dpre);
        free(dpre2);
        free(x);
        free(a);
        free(xhat);
    }
    print_message("recon: max FD rel error %.3e\n", worst);
    assert_true(worst < FD_TOL);
}

/* A batch of MNIST's size (78,400 values): the value and the gradient run
 * as the two parts of one job at 2 threads, and give the 1-thread bits. */
static void test_squared_terms_threads(void **state)
{
    (void)state;
    enum { N = 100, P = 784, NP = N * P };
    cvae__rng r;
    cvae__rng_seed(&r, 107);
    float *x = xcalloc(NP, 4), *a = xcalloc(NP, 4), *xhat = xcalloc(NP, 4);
    float *d[2] = {xcalloc(NP, 4), xcalloc(NP, 4)}, *e[2] = {xcalloc(NP, 4), xcalloc(NP, 4)};
    fill(&r, x, NP, 0, 1);
    fill(&r, a, NP, -3, 3);
    sigmoid_f(a, xhat, NP);
    const float wscale = 0.37f;
    double v[2], w[2];
    const int before = cvae__threads_get();
    for (int t = 0; t < 2; t++) {
        cvae__threads_set(t + 1);
        fill_const(d[t], NP, NAN);
        fill_const(e[t], NP, NAN);
        v[t] = cvae__loss_recon(N, P, x, xhat, wscale, d[t]);
        w[t] = cvae__loss_sq(N, P, x, xhat, wscale, e[t]);
    }
    cvae__threads_set(before);
    assert_memory_equal(&v[0], &v[1], sizeof v[0]);
    assert_memory_equal(&w[0], &w[1], sizeof w[0]);
    assert_memory_equal(d[0], d[1], NP * sizeof(float));
    assert_memory_equal(e[0], e[1], NP * sizeof(float));
    assert_close(v[1], ref_recon(N, P, x, xhat), VAL_TOL);
    assert_close(w[1], ref_recon(N, P, x, xhat), VAL_TOL);
    for (int i = 0; i < NP; i++) {
        const float want = wscale * (xhat[i] - x[i]);
        assert_true(e[1][i] == want);
        assert_true(d[1][i] == want * xhat[i] * (1.0f - xhat[i]));
    }
    free(x);
    free(a);
    free(xhat);
    for (int t = 0; t < 2; t++) {
        free(d[t]);
        free(e[t]);
    }
}

/* -------------------------------------------------------- KL, standard */

static double ref_kl_standard(int n, int s, const float *mu, const float *lv)
{
    double t = 0;
    for (int i = 0; i < n * s; i++)
        t += 0.5 * ((double)mu[i] * mu[i] + exp((double)lv[i]) - lv[i] - 1.0);
    return t / n;
}

typedef struct kls_ctx {
    int n, s;
    float *mu, *lv, scale;
} kls_ctx;

static double kls_value(void *vctx)
{
    kls_ctx *c = vctx;
    return (double)c->scale * c->n *
           cvae__loss_kl_standard(c->n, c->s, c->mu, c->lv, c->scale, NULL, NULL);
}

static void test_kl_standard(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 202);
    double worst = 0;
    const float pre = 0.03125f;
    for (size_t t = 0; t < NSIZES; t++) {
        const int n = sizes[t][0], s = sizes[t][1];
        const size_t ns = (size_t)n * s;
        kls_ctx c = {n, s, xcalloc(ns, 4), xcalloc(ns, 4), 1.0f / (float)n};
        float *dmu = xcalloc(ns, 4), *dlv = xcalloc(ns, 4);
        fill(&r, c.mu, ns, -2, 2);
        fill(&r, c.lv, ns, -3, 2);
        fill_const(dmu, ns, pre);
        fill_const(dlv, ns, pre);
        double v = cvae__loss_kl_standard(n, s, c.mu, c.lv, c.scale, dmu, dlv);
        assert_close(v, ref_kl_standard(n, s, c.mu, c.lv), VAL_TOL);
        double *a_mu = minus_offset(dmu, ns, pre), *a_lv = minus_offset(dlv, ns, pre);
        worst = fmax(worst, fd_check(kls_value, &c, c.mu, a_mu, ns, FD_H));
        worst = fmax(worst, fd_check(kls_value, &c, c.lv, a_lv, ns, FD_H));

        /* Each gradient output may be NULL on its own. */
        float *dmu2 = xcalloc(ns, 4), *dlv2 = xcalloc(ns, 4);
        assert_close(cvae__loss_kl_standard(n, s, c.mu, c.lv, c.scale, dmu2, NULL), v, 1e-15);
        assert_close(cvae__loss_kl_standard(n, s, c.mu, c.lv, c.scale, NULL, dlv2), v, 1e-15);
        for (size_t i = 0; i < ns; i++) {
            assert_true(fabs(dmu2[i] - a_mu[i]) <= 1e-6 * fmax(1.0, fabs(a_mu[i])));
            assert_true(fabs(dlv2[i] - a_lv[i]) <= 1e-6 * fmax(1.0, fabs(a_lv[i])));
        }
        free(dmu2);
        free(dlv2);
        free(a_mu);
        free(a_lv);
        free(dmu);
        free(dlv);
        free(c.mu);
        free(c.lv);
    }
    print_message("kl_standard: max FD rel error %.3e\n", worst);
    assert_true(worst < FD_TOL);
}

/* --------------------------------------------------------- KL, mixture */

/* sum_y q_y * 0.5 * sum_d ((z_d - M_yd)^2 - lv_d), batch mean; q entries are
 * free variables (no sum-to-one assumed). */
static double ref_kl_mixture(int n, int s, int k, const float *z, const float *lv, const float *q,
                             const float *M)
{
    double t = 0;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < k; y++) {
            double inner = 0;
            for (int d = 0; d < s; d++) {
                double diff = (double)z[i * s + d] - M[y * s + d];
                inner += diff * diff - lv[i * s + d];
            }
            t += q[i * k + y] * 0.5 * inner;
        }
    return t / n;
}

typedef struct klm_ctx {
    int n, s, k;
    float *z, *lv, *q, *M, scale;
} klm_ctx;

static double klm_value(void *vctx)
{
    klm_ctx *c = vctx;
    return (double)c->scale * c->n *
           cvae__loss_kl_mixture(c->n, c->s, c->k, c->z, c->lv, c->q, c->M, c->scale, NULL, NULL,
                                 NULL, NULL);
}

static void test_kl_mixture(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 303);
    double worst = 0;
    const float pre = -0.0625f;
    for (size_t t = 0; t < NSIZES; t++) {
        const int n = sizes[t][0], s = sizes[t][1], k = sizes[t][2];
        const size_t ns = (size_t)n * s, nk = (size_t)n * k, ks = (size_t)k * s;
        for (int simplex = 0; simplex < 2; simplex++) {
            klm_ctx c = {n, s, k, xcalloc(ns, 4), xcalloc(ns, 4), xcalloc(nk, 4),
                         xcalloc(ks, 4), simplex ? 1.0f / (float)n : 0.6f};
            fill(&r, c.z, ns, -2, 2);
            fill(&r, c.lv, ns, -3, 1);
            fill(&r, c.M, ks, -2, 2);
            /* Both softmax-like rows and free positive entries. */
            if (simplex)
                fill_simplex(&r, c.q, n, k);
            else
                fill(&r, c.q, nk, 0.05f, 1.5f);
            float *dz = xcalloc(ns, 4), *dlv = xcalloc(ns, 4), *dq = xcalloc(nk, 4),
                  *dM = xcalloc(ks, 4);
            fill_const(dz, ns, pre);
            fill_const(dlv, ns, pre);
            fill_const(dq, nk, pre);
            fill_const(dM, ks, pre);
            double v = cvae__loss_kl_mixture(n, s, k, c.z, c.lv, c.q, c.M, c.scale, dz, dlv, dq,
                                             dM);
            assert_close(v, ref_kl_mixture(n, s, k, c.z, c.lv, c.q, c.M), VAL_TOL);
            double *a_z = minus_offset(dz, ns, pre), *a_lv = minus_offset(dlv, ns, pre);
            double *a_q = minus_offset(dq, nk, pre), *a_M = minus_offset(dM, ks, pre);
            worst = fmax(worst, fd_check(klm_value, &c, c.z, a_z, ns, FD_H_POLY));
            worst = fmax(worst, fd_check(klm_value, &c, c.lv, a_lv, ns, FD_H_POLY));
            worst = fmax(worst, fd_check(klm_value, &c, c.q, a_q, nk, FD_H_POLY));
            worst = fmax(worst, fd_check(klm_value, &c, c.M, a_M, ks, FD_H_POLY));

            /* Any subset of outputs may be NULL; the others are unchanged. */
            float *dz2 = xcalloc(ns, 4), *dM2 = xcalloc(ks, 4);
            cvae__loss_kl_mixture(n, s, k, c.z, c.lv, c.q, c.M, c.scale, dz2, NULL, NULL, NULL);
            cvae__loss_kl_mixture(n, s, k, c.z, c.lv, c.q, c.M, c.scale, NULL, NULL, NULL, dM2);
            for (size_t i = 0; i < ns; i++)
                assert_true(fabs(dz2[i] - a_z[i]) <= 1e-5 * fmax(1.0, fabs(a_z[i])));
            for (size_t i = 0; i < ks; i++)
                assert_true(fabs(dM2[i] - a_M[i]) <= 1e-5 * fmax(1.0, fabs(a_M[i])));
            free(dz2);
            free(dM2);
            free(a_z);
            free(a_lv);
            free(a_q);
            free(a_M);
            free(dz);
            free(dlv);
            free(dq);
            free(dM);
            free(c.z);
            free(c.lv);
            free(c.q);
            free(c.M);
        }
    }
    print_message("kl_mixture: max FD rel error %.3e\n", worst);
    assert_true(worst < FD_TOL);
}

/* ------------------------------------------------------------ category */

static double ref_category(int n, int k, const float *q, double weight)
{
    double t = 0;
    for (int i = 0; i < n * k; i++)
        if (q[i] > 0)
            t += (double)q[i] * log((double)q[i]);
    return weight * t / n;
}

typedef struct cat_ctx {
    int n, k;
    float *q, weight, scale;
} cat_ctx;

static double cat_value(void *vctx)
{
    cat_ctx *c = vctx;
    return (double)c->scale * c->n * cvae__loss_category(c->n, c->k, c->q, c->weight, c->scale, NULL);
}

static void test_category(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 404);
    double worst = 0;
    const float pre = 0.125f;
    for (size_t t = 0; t < NSIZES; t++) {
        const int n = sizes[t][0], k = sizes[t][2];
        const size_t nk = (size_t)n * k;
        for (int simplex = 0; simplex < 2; simplex++) {
            cat_ctx c = {n, k, xcalloc(nk, 4), 1.7f, simplex ? 1.0f / (float)n : 0.3f};
            if (simplex)
                fill_simplex(&r, c.q, n, k);
            else
                fill(&r, c.q, nk, 0.02f, 2.0f); /* entries above 1/e and 1 too */
            float *dq = xcalloc(nk, 4);
            fill_const(dq, nk, pre);
            double v = cvae__loss_category(n, k, c.q, c.weight, c.scale, dq);
            assert_close(v, ref_category(n, k, c.q, c.weight), VAL_TOL);
            double *a_q = minus_offset(dq, nk, pre);
            worst = fmax(worst, fd_check(cat_value, &c, c.q, a_q, nk, FD_H));
            free(a_q);
            free(dq);
            free(c.q);
        }
    }
    print_message("category: max FD rel error %.3e\n", worst);
    assert_true(worst < FD_TOL);
}

/* ------------------------------------------------------------- balance */

static double ref_balance(int n, int k, const float *q, double beta)
{
    double t = 0;
    for (int y = 0; y < k; y++) {
        double qb = 0;
        for (int i = 0; i < n; i++)
            qb += q[i * k + y];
        qb /= n;
        if (qb > 0)
            t += qb * log(qb);
    }
    return beta * t;
}

typedef struct bal_ctx {
    int n, k;
    float *q, beta;
} bal_ctx;

static double bal_value(void *vctx)
{
    bal_ctx *c = vctx;
    return cvae__loss_balance(c->n, c->k, c->q, c->beta, NULL);
}

static void test_balance(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 505);
    double worst = 0;
    const float pre = -0.25f;
    for (size_t t = 0; t < NSIZES; t++) {
        const int n = sizes[t][0], k = sizes[t][2];
        const size_t nk = (size_t)n * k;
        for (int simplex = 0; simplex < 2; simplex++) {
            bal_ctx c = {n, k, xcalloc(nk, 4), simplex ? 1.0f : 2.5f};
            if (simplex)
                fill_simplex(&r, c.q, n, k);
            else
                fill(&r, c.q, nk, 0.02f, 2.0f);
            float *dq = xcalloc(nk, 4);
            fill_const(dq, nk, pre);
            double v = cvae__loss_balance(n, k, c.q, c.beta, dq);
            assert_close(v, ref_balance(n, k, c.q, c.beta), VAL_TOL);
            double *a_q = minus_offset(dq, nk, pre);
            worst = fmax(worst, fd_check(bal_value, &c, c.q, a_q, nk, FD_H));
            free(a_q);

            /* beta = 0: no value, nothing added. */
            fill_const(dq, nk, pre);
            assert_true(cvae__loss_balance(n, k, c.q, 0.0f, dq) == 0.0);
            for (size_t i = 0; i < nk; i++)
                assert_true(dq[i] == pre);
            free(dq);
            free(c.q);
        }
    }
    print_message("balance: max FD rel error %.3e\n", worst);
    assert_true(worst < FD_TOL);
}

/* ------------------------------------------------------- q with zeros */

/* A saturated softmax gives exact zeros; q ln q -> 0 and the clamped log
 * must keep every value and gradient finite. */
static void test_zero_q_finite(void **state)
{
    (void)state;
    enum { N = 4, K = 5, S = 3 };
    const float q[N * K] = {
        1, 0, 0, 0, 0,       /* one-hot */
        0, 0.5f, 0.5f, 0, 0, /* some zeros */
        0, 0, 0, 0, 1,       /* one-hot, another class */
        0, 0, 1, 0, 0,
    }; /* class 3 is never chosen, so its batch mean qbar_3 is exactly 0 too */
    const float qz[N * K] = {0}; /* a whole batch of zeros: qbar = 0 for every class */
    float z[N * S], lv[N * S], M[K * S];
    cvae__rng r;
    cvae__rng_seed(&r, 606);
    fill(&r, z, N * S, -1, 1);
    fill(&r, lv, N * S, -1, 1);
    fill(&r, M, K * S, -1, 1);
    float dq[N * K], dz[N * S], dlv[N * S], dM[K * S];

    const float *qs[2] = {q, qz};
    for (int which = 0; which < 2; which++) {
        const float *qq = qs[which];
        memset(dq, 0, sizeof dq);
        double v = cvae__loss_category(N, K, qq, 1.0f, 1.0f / N, dq);
        assert_true(isfinite(v));
        assert_true(all_finite(dq, N * K));
        assert_close(v, ref_category(N, K, qq, 1.0), 1e-12);

        memset(dq, 0, sizeof dq);
        v = cvae__loss_balance(N, K, qq, 1.0f, dq);
        assert_true(isfinite(v));
        assert_true(all_finite(dq, N * K));
        if (which == 0)
            assert_close(v, ref_balance(N, K, qq, 1.0), 1e-12);
        else
            assert_true(v == 0.0);

        memset(dq, 0, sizeof dq);
        memset(dz, 0, sizeof dz);
        memset(dlv, 0, sizeof dlv);
        memset(dM, 0, sizeof dM);
        v = cvae__loss_kl_mixture(N, S, K, z, lv, qq, M, 1.0f / N, dz, dlv, dq, dM);
        assert_true(isfinite(v));
        assert_true(all_finite(dq, N * K) && all_finite(dz, N * S) && all_finite(dlv, N * S) &&
                    all_finite(dM, K * S));
    }
    /* One-hot rows: the category term is exactly 0 (each row has entropy 0). */
    assert_true(cvae__loss_category(1, K, q, 1.0f, 1.0f, NULL) == 0.0);
}

/* --------------------------------------------------------- consistency */

static double ref_consistency(int n, int s, const float *mu, const float *ref, double w)
{
    double t = 0;
    for (int i = 0; i < n * s; i++)
        t += ((double)mu[i] - ref[i]) * ((double)mu[i] - ref[i]);
    return w * t / n;
}

typedef struct cons_ctx {
    int n, s;
    float *mu, *ref, weight, scale;
} cons_ctx;

static double cons_value(void *vctx)
{
    cons_ctx *c = vctx;
    /* the value is a mean over n: scale 1/n makes the gradient its own */
    return cvae__loss_consistency(c->n, c->s, c->mu, c->ref, c->weight, c->scale, NULL);
}

static void test_consistency(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 505);
    double worst = 0;
    const float pre = 0.25f;
    for (size_t t = 0; t < NSIZES; t++) {
        const int n = sizes[t][0], s = sizes[t][1];
        const size_t ns = (size_t)n * s;
        cons_ctx c = {n, s, xcalloc(ns, 4), xcalloc(ns, 4), 2.5f, 1.0f / (float)n};
        fill(&r, c.mu, ns, -2.0f, 2.0f);
        fill(&r, c.ref, ns, -2.0f, 2.0f);
        float *dmu = xcalloc(ns, 4);
        fill_const(dmu, ns, pre); /* accumulated onto, not overwritten */
        double v = cvae__loss_consistency(n, s, c.mu, c.ref, c.weight, c.scale, dmu);
        assert_close(v, ref_consistency(n, s, c.mu, c.ref, c.weight), VAL_TOL);
        double *a = minus_offset(dmu, ns, pre);
        worst = fmax(worst, fd_check(cons_value, &c, c.mu, a, ns, FD_H_POLY));
        free(a);
        free(dmu);
        free(c.mu);
        free(c.ref);
    }
    print_message("consistency: max FD rel error %.3e\n", worst);
    assert_true(worst < FD_TOL);
}

/* ------------------------------------------------ contrastive consistency */

/* The definition written out: for every transformed code a_i the softmax
 * over the clean codes c_j of -|a_i - c_j|^2 / tau must pick c_i, and for
 * every c_j the softmax over the a_i must pick a_j; the value is the mean
 * of the two cross-entropies per image, times the weight. */
static double ref_contrast(int n, int s, const float *a, const float *c, double tau, double w)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        double row = 0, col = 0, own = 0;
        for (int j = 0; j < n; j++) {
            double dr = 0, dcol = 0;
            for (int t = 0; t < s; t++) {
                dr += ((double)a[i * s + t] - c[j * s + t]) * ((double)a[i * s + t] - c[j * s + t]);
                dcol += ((double)a[j * s + t] - c[i * s + t]) * ((double)a[j * s + t] - c[i * s + t]);
            }
            row += exp(-dr / tau);
            col += exp(-dcol / tau);
            if (i == j)
                own = exp(-dr / tau);
        }
        total += 0.5 * (-log(own / row)) + 0.5 * (-log(own / col));
    }
    return w * total / n;
}

typedef struct contrast_ctx {
    int n, s;
    float *a, *c, tau, weight, scale;
    double *work;
} contrast_ctx;

static double contrast_value(void *vctx)
{
    contrast_ctx *x = vctx;
    return cvae__loss_contrast(x->n, x->s, x->a, x->c, x->tau, x->weight, x->scale, x->work, NULL,
                               NULL);
}

static void test_contrast(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 707);
    double worst = 0;
    const float pre = 0.25f;
    for (size_t t = 0; t < NSIZES; t++) {
        const int n = sizes[t][0], s = sizes[t][1];
        const size_t ns = (size_t)n * s;
        contrast_ctx x = {n, s, xcalloc(ns, 4), xcalloc(ns, 4), 1.5f, 2.5f, 1.0f / (float)n,
                          xcalloc(cvae__loss_contrast_work(n), sizeof(double))};
        fill(&r, x.c, ns, -1.0f, 1.0f);
        /* each transformed code near its clean one, as training makes them */
        for (size_t i = 0; i < ns; i++)
            x.a[i] = x.c[i] + 0.3f * (cvae__rng_uniform(&r) - 0.5f);
        float *da = xcalloc(ns, 4), *dc = xcalloc(ns, 4);
        fill_const(da, ns, pre); /* accumulated onto */
        fill_const(dc, ns, 7.0f); /* overwritten */
        double v = cvae__loss_contrast(n, s, x.a, x.c, x.tau, x.weight, x.scale, x.work, da, dc);
        assert_close(v, ref_contrast(n, s, x.a, x.c, x.tau, x.weight), VAL_TOL);
        double *ga = minus_offset(da, ns, pre), *gc = minus_offset(dc, ns, 0.0f);
        worst = fmax(worst, fd_check(contrast_value, &x, x.a, ga, ns, FD_H));
        worst = fmax(worst, fd_check(contrast_value, &x, x.c, gc, ns, FD_H));
        free(ga);
        free(gc);
        free(da);
        free(dc);
        free(x.a);
        free(x.c);
        free(x.work);
    }
    /* Far-apart pairs: the exponentials of a plain softmax underflow to 0
     * and its log to -inf; the shifted sums stay finite. */
    {
        float a[2] = {0.0f, 300.0f}, c[2] = {0.5f, 300.5f}, da[2] = {0, 0}, dc[2];
        double work[2 * 2 * 3]; /* cvae__loss_contrast_work(2) */
        assert_true(cvae__loss_contrast_work(2) == sizeof work / sizeof work[0]);
        double v = cvae__loss_contrast(2, 1, a, c, 0.01f, 1.0f, 0.5f, work, da, dc);
        assert_true(isfinite(v) && isfinite(da[0]) && isfinite(dc[1]));
    }
    print_message("contrast: max FD rel error %.3e\n", worst);
    assert_true(worst < FD_TOL);
}

/* A batch of 100 codes of 50, the default recipe's: at 2 threads each pass
 * over the logits is cut into runs of rows (at the learned share, and at
 * fixed shares a quarter and three quarters in), and the value and both
 * gradients are the 1-thread bits. */
static void test_contrast_threads(void **state)
{
    (void)state;
    enum { N = 100, S = 50, NS = N * S, RUNS = 4 };
    cvae__rng r;
    cvae__rng_seed(&r, 709);
    float *a = xcalloc(NS, 4), *c = xcalloc(NS, 4), *da[RUNS], *dc[RUNS];
    double *work = xcalloc(cvae__loss_contrast_work(N), sizeof(double)), v[RUNS];
    fill(&r, c, NS, -1.0f, 1.0f);
    for (size_t i = 0; i < NS; i++)
        a[i] = c[i] + 0.3f * (cvae__rng_uniform(&r) - 0.5f);
    const int before = cvae__threads_get();
    for (int t = 0; t < RUNS; t++) {
        da[t] = xcalloc(NS, 4);
        dc[t] = xcalloc(NS, 4);
        fill_const(da[t], NS, 0.125f);
        fill_const(dc[t], NS, NAN);
        cvae__threads_set(t ? 2 : 1);
        cvae__parallel_fix_share(t == 2 ? 0.25 : t == 3 ? 0.75 : 0.0);
        v[t] = cvae__loss_contrast(N, S, a, c, 4.0f, 10.0f, 0.01f, work, da[t], dc[t]);
    }
    cvae__parallel_fix_share(0.0);
    cvae__threads_set(before);
    assert_close(v[0], ref_contrast(N, S, a, c, 4.0f, 10.0f), VAL_TOL);
    for (int t = 1; t < RUNS; t++) {
        assert_memory_equal(&v[0], &v[t], sizeof v[0]);
        assert_memory_equal(da[0], da[t], NS * sizeof(float));
        assert_memory_equal(dc[0], dc[t], NS * sizeof(float));
    }
    for (int t = 0; t < RUNS; t++) {
        free(da[t]);
        free(dc[t]);
    }
    free(a);
    free(c);
    free(work);
}

/* ------------------------------------------------------------ pseudo-label */

static double ref_pseudo(int n, int k, const float *q, const int32_t *lab, double w)
{
    double t = 0;
    for (int i = 0; i < n; i++)
        if (lab[i] >= 0)
            t -= log((double)q[i * k + lab[i]]);
    return w * t / n;
}

typedef struct pl_ctx {
    int n, k;
    float *q;
    int32_t *lab;
    float weight, scale;
} pl_ctx;

static double pl_value(void *vctx)
{
    pl_ctx *c = vctx;
    return cvae__loss_pseudo(c->n, c->k, c->q, c->lab, c->weight, c->scale, NULL);
}

static void test_pseudo(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 606);
    double worst = 0;
    const float pre = 0.125f;
    for (size_t t = 0; t < NSIZES; t++) {
        const int n = sizes[t][0], k = sizes[t][2];
        const size_t nk = (size_t)n * k;
        pl_ctx c = {n, k, xcalloc(nk, 4), xcalloc((size_t)n, sizeof(int32_t)), 1.5f,
                    1.0f / (float)n};
        fill_simplex(&r, c.q, n, k);
        /* every third row without a label: it adds nothing, gets no gradient */
        for (int i = 0; i < n; i++)
            c.lab[i] = i % 3 == 2 ? -1 : (int32_t)cvae__rng_below(&r, (uint64_t)k);
        float *dq = xcalloc(nk, 4);
        fill_const(dq, nk, pre);
        double v = cvae__loss_pseudo(n, k, c.q, c.lab, c.weight, c.scale, dq);
        assert_close(v, ref_pseudo(n, k, c.q, c.lab, c.weight), VAL_TOL);
        double *a = minus_offset(dq, nk, pre);
        for (int i = 0; i < n; i++)
            if (c.lab[i] < 0)
                for (int y = 0; y < k; y++)
                    assert_true(a[(size_t)i * k + y] == 0.0);
        worst = fmax(worst, fd_check(pl_value, &c, c.q, a, nk, FD_H));
        free(a);
        free(dq);
        free(c.q);
        free(c.lab);
    }
    print_message("pseudo-label: max FD rel error %.3e\n", worst);
    assert_true(worst < FD_TOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recon),
        cmocka_unit_test(test_squared_terms_threads),
        cmocka_unit_test(test_kl_standard),
        cmocka_unit_test(test_kl_mixture),
        cmocka_unit_test(test_category),
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_zero_q_finite),
        cmocka_unit_test(test_consistency),
        cmocka_unit_test(test_contrast),
        cmocka_unit_test(test_contrast_threads),
        cmocka_unit_test(test_pseudo),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    print_message("max FD relative error over all loss terms: %.3e (tol %.0e)\n", worst_fd,
                  FD_TOL);
    return rc;
}
