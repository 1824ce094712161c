#include "training/optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/threads.h"
#include "model/config.h"

static cvae_status make(int kind, double lr, double b1, double b2, double eps, double wd,
                        double mom, cvae_optimizer **out)
{
    if (!(lr > 0 && lr <= 10) || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1) ||
        !(eps > 0 && eps <= 1) || !(wd >= 0 && wd <= 1) || !(mom >= 0 && mom < 1))
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "optimizer settings out of range (lr %g, betas %g/%g, eps %g, "
                          "weight decay %g, momentum %g)",
                          lr, b1, b2, eps, wd, mom);
    cvae_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate an optimizer");
    o->kind = kind;
    o->lr = lr;
    o->beta1 = b1;
    o->beta2 = b2;
    o->eps = eps;
    o->weight_decay = wd;
    o->momentum = mom;
    *out = o;
    return CVAE_OK;
}

cvae_status cvae_optimizer_create_adam(double lr, double beta1, double beta2, double eps,
                                       double weight_decay, cvae_optimizer **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    return make(CVAE_OPTIMIZER_ADAM, lr, beta1, beta2, eps, weight_decay, 0.0, out);
}

cvae_status cvae_optimizer_create_sgd(double lr, double momentum, double weight_decay,
                                      cvae_optimizer **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    return make(CVAE_OPTIMIZER_SGD, lr, 0.9, 0.999, 1e-8, weight_decay, momentum, out);
}

cvae_status cvae_optimizer_create_from_config(const cvae_config *cfg, cvae_optimizer **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(cfg);
    return make(cfg->opt, cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay,
                cfg->opt == CVAE_OPTIMIZER_SGD ? cfg->momentum : 0.0, out);
}

cvae_status cvae_optimizer_set_learning_rate(cvae_optimizer *opt, double lr)
{
    CVAE__CHECK_PTR(opt);
    if (!(lr > 0 && lr <= 10))
        return cvae__fail(CVAE_E_INVALID_ARG, "learning rate %g is outside (0, 10]", lr);
    opt->lr = lr;
    return CVAE_OK;
}

void cvae_optimizer_destroy(cvae_optimizer *opt)
{
    if (!opt)
        return;
    cvae__aligned_free(opt->m);
    cvae__aligned_free(opt->v);
    free(opt);
}

cvae_status cvae__optimizer_bind(struct cvae_optimizer *o, size_t n, uint64_t layout_id)
{
    CVAE__CHECK_PTR(o);
    /* n = 0 doubles as "not bound", and a zero-byte allocation would be
     * misreported as out of memory. */
    if (n == 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "optimizer: cannot bind to 0 parameters");
    if (o->n) {
        if (o->n != n || o->layout_id != layout_id)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "optimizer state belongs to a model with a different parameter "
                              "layout (%zu vs %zu values)",
                              o->n, n);
        return CVAE_OK;
    }
    size_t bytes;
    if (cvae__mul_overflows(n, sizeof(float), &bytes))
        return cvae__fail(CVAE_E_INVALID_ARG, "optimizer state size overflows");
    o->m = cvae__aligned_alloc(bytes);
    o->v = o->kind == CVAE_OPTIMIZER_ADAM ? cvae__aligned_alloc(bytes) : NULL;
    if (!o->m || (o->kind == CVAE_OPTIMIZER_ADAM && !o->v)) {
        cvae__aligned_free(o->m);
        cvae__aligned_free(o->v);
        o->m = o->v = NULL;
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate optimizer state");
    }
    memset(o->m, 0, bytes);
    if (o->v)
        memset(o->v, 0, bytes);
    o->n = n;
    o->layout_id = layout_id;
    o->steps = 0;
    return CVAE_OK;
}

void cvae__optimizer_begin_step(struct cvae_optimizer *o) { o->steps++; }

/* Per-step constants of an update, as the inner loops use them. */
typedef struct upd_k {
    int adam;
    float wd;
    float b1, b2, a1, a2, step, epsh; /* Adam */
    float lr, mom;                    /* SGD */
} upd_k;

static upd_k constants(const struct cvae_optimizer *o)
{
    upd_k k = {0};
    k.adam = o->kind == CVAE_OPTIMIZER_ADAM;
    k.wd = (float)o->weight_decay;
    if (k.adam) {
        k.b1 = (float)o->beta1;
        k.b2 = (float)o->beta2;
        /* 1 - beta taken in double: 1.0f - (float)0.999 is off by 1.3e-5
         * relative (2.4e-4 for 0.9999), a bias the corrections below,
         * computed in double, would not cancel. */
        k.a1 = (float)(1.0 - o->beta1);
        k.a2 = (float)(1.0 - o->beta2);
        /* Bias corrections folded into step size and epsilon (Kingma & Ba,
         * end of section 2), so the inner loop is plain multiply-adds. */
        const double c1 = 1.0 - pow(o->beta1, (double)o->steps);
        const double c2 = 1.0 - pow(o->beta2, (double)o->steps);
        k.step = (float)(o->lr * sqrt(c2) / c1);
        k.epsh = (float)(o->eps * sqrt(c2));
    } else {
        k.lr = (float)o->lr;
        k.mom = (float)o->momentum;
    }
    return k;
}

/* The reference formulas. The vector paths below do exactly these float
 * operations in this order (sqrt and division are correctly rounded in
 * both), so they give the same bits. The compiler cannot vectorise this
 * loop itself: sqrtf may set errno. */
#if defined(__clang__)
/* Clang would otherwise fuse a * b + c into one rounding where the target
 * has FMA (-march=native); GCC does not contract in ISO C mode. */
#pragma STDC FP_CONTRACT OFF
#endif
static void adam_c(const upd_k *k, float *restrict p, const float *restrict g,
                   float *restrict m, float *restrict v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + k->wd * p[i];
        m[i] = k->b1 * m[i] + k->a1 * gi;
        v[i] = k->b2 * v[i] + k->a2 * gi * gi;
        p[i] -= k->step * m[i] / (sqrtf(v[i]) + k->epsh);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define OPT_X86 1

/* The update reads four arrays and writes three (28 bytes per parameter,
 * 116 MB per step for the MNIST model): 4 lanes already run at about the
 * memory's speed, 8 a little faster, 16 no faster than 8 (the update is
 * memory-bound, so wider vectors stop paying). Each
 * returns how many parameters it did (a multiple of its width); adam_c
 * does the rest. */
static size_t adam_sse2(const upd_k *k, float *p, const float *g, float *m, float *v, size_t n)
{
    const __m128 wd = _mm_set1_ps(k->wd), b1 = _mm_set1_ps(k->b1), b2 = _mm_set1_ps(k->b2),
                 a1 = _mm_set1_ps(k->a1), a2 = _mm_set1_ps(k->a2),
                 step = _mm_set1_ps(k->step), epsh = _mm_set1_ps(k->epsh);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m128 pi = _mm_loadu_ps(p + i);
        const __m128 gi = _mm_add_ps(_mm_loadu_ps(g + i), _mm_mul_ps(wd, pi));
        const __m128 mi = _mm_add_ps(_mm_mul_ps(b1, _mm_loadu_ps(m + i)), _mm_mul_ps(a1, gi));
        const __m128 vi =
            _mm_add_ps(_mm_mul_ps(b2, _mm_loadu_ps(v + i)), _mm_mul_ps(_mm_mul_ps(a2, gi), gi));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, _mm_sub_ps(pi, _mm_div_ps(_mm_mul_ps(step, mi),
                                                       _mm_add_ps(_mm_sqrt_ps(vi), epsh))));
    }
    return i;
}

__attribute__((target("avx"))) static size_t adam_avx(const upd_k *k, float *p, const float *g,
                                                      float *m, float *v, size_t n)
{
    const __m256 wd = _mm256_set1_ps(k->wd), b1 = _mm256_set1_ps(k->b1),
                 b2 = _mm256_set1_ps(k->b2), a1 = _mm256_set1_ps(k->a1),
                 a2 = _mm256_set1_ps(k->a2), step = _mm256_set1_ps(k->step),
                 epsh = _mm256_set1_ps(k->epsh);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 pi = _mm256_loadu_ps(p + i);
        const __m256 gi = _mm256_add_ps(_mm256_loadu_ps(g + i), _mm256_mul_ps(wd, pi));
        const __m256 mi =
            _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(a1, gi));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                        _mm256_mul_ps(_mm256_mul_ps(a2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(p + i,
                         _mm256_sub_ps(pi, _mm256_div_ps(_mm256_mul_ps(step, mi),
                                                         _mm256_add_ps(_mm256_sqrt_ps(vi), epsh))));
    }
    return i;
}
#else
#define OPT_X86 0
#endif

static cvae__optimizer_simd simd_best(void)
{
#if OPT_X86
    return cvae__cpu_isa() >= CVAE__ISA_AVX ? CVAE__OPTIMIZER_SIMD_AVX : CVAE__OPTIMIZER_SIMD_SSE2;
#else
    return CVAE__OPTIMIZER_SIMD_SCALAR;
#endif
}

static void sgd(const upd_k *k, float *restrict p, const float *restrict g, float *restrict vel,
                size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + k->wd * p[i];
        vel[i] = k->mom * vel[i] + gi;
        p[i] -= k->lr * vel[i];
    }
}

static void update_run(const upd_k *k, cvae__optimizer_simd simd, float *p, const float *g,
                       float *m, float *v, size_t n)
{
    if (!k->adam) {
        sgd(k, p, g, m, n);
        return;
    }
    size_t done = 0;
#if OPT_X86
    if (simd == CVAE__OPTIMIZER_SIMD_AVX)
        done = adam_avx(k, p, g, m, v, n);
    else if (simd == CVAE__OPTIMIZER_SIMD_SSE2)
        done = adam_sse2(k, p, g, m, v, n);
#else
    (void)simd;
#endif
    adam_c(k, p + done, g + done, m + done, v + done, n - done);
}

/* Ranges at least this long are split across the library's threads (2 x
 * 128 KiB of each array per part at the least: below that the hand-off
 * costs more than it saves). Part boundaries fall on multiples of 16
 * parameters (of the whole buffer) so no two threads write one cache line;
 * the update is element-wise, so the split does not change the result. */
#define PAR_MIN ((size_t)1 << 16)
#define PAR_MAX_PARTS 16

static int parts_for(size_t count)
{
    const size_t by_size = count / PAR_MIN;
    int parts = cvae__parallel_threads();
    if (parts > PAR_MAX_PARTS)
        parts = PAR_MAX_PARTS;
    if ((size_t)parts > by_size)
        parts = (int)by_size;
    return parts < 1 ? 1 : parts;
}

/* One step over several ranges of the buffer (a model's trainable
 * tensors) is one job: the parts split the ranges' concatenation, so the
 * small tensors are shared out with the large ones and the threads meet
 * once, not once per tensor. */
typedef struct upd_job {
    const upd_k *k;
    cvae__optimizer_simd simd;
    float *p, *m, *v;
    const float *g;
    const size_t *offset, *count; /* the ranges, in the buffer */
    int ranges;
    size_t total; /* their summed length */
    double share; /* two parts: part 0's share (cvae__parallel_share) */
} upd_job;

/* Where part `part` starts: range *r at absolute index *at, a multiple of
 * 16 (rounded down, within the range) unless it is a range's start. */
static void part_cut(const upd_job *j, int part, int parts, int *r, size_t *at)
{
    if (part == parts) {
        *r = j->ranges - 1;
        *at = j->offset[*r] + j->count[*r];
        return;
    }
    size_t rest = cvae__parallel_part_start(j->total, part, parts, j->share);
    int i = 0;
    while (i < j->ranges - 1 && rest >= j->count[i])
        rest -= j->count[i++];
    const size_t a = j->offset[i] + rest, b = a / 16 * 16;
    *r = i;
    *at = b < j->offset[i] ? j->offset[i] : b;
}

static void update_part(void *ctx, int part, int parts)
{
    const upd_job *j = ctx;
    int r0, r1;
    size_t a0, a1;
    part_cut(j, part, parts, &r0, &a0);
    part_cut(j, part + 1, parts, &r1, &a1);
    for (int r = r0; r <= r1; r++) {
        const size_t lo = r == r0 ? a0 : j->offset[r];
        const size_t hi = r == r1 ? a1 : j->offset[r] + j->count[r];
        if (hi > lo)
            update_run(j->k, j->simd, j->p + lo, j->g + lo, j->m + lo, j->v ? j->v + lo : NULL,
                       hi - lo);
    }
}

static void update_ranges(struct cvae_optimizer *o, cvae__optimizer_simd simd, float *params,
                          const float *grads, const size_t *offset, const size_t *count,
                          int ranges)
{
    if (ranges <= 0)
        return;
    const upd_k k = constants(o);
    const cvae__optimizer_simd best = simd_best();
    if (simd == CVAE__OPTIMIZER_SIMD_AUTO || simd > best)
        simd = best;
    size_t total = 0;
    for (int r = 0; r < ranges; r++)
        total += count[r];
    upd_job j = {&k, simd, params, o->m, o->v, grads, offset, count, ranges, total, 0.5};
    const int parts = parts_for(total);
    if (parts == 1) {
        update_part(&j, 0, 1);
        return;
    }
    j.share = cvae__parallel_share(CVAE__SHARE_UPDATE);
    cvae__parallel_cut(CVAE__SHARE_UPDATE, parts, j.share, update_part, &j);
}

void cvae__optimizer_update_with(struct cvae_optimizer *o, cvae__optimizer_simd simd,
                                 float *params, const float *grads, size_t offset, size_t count)
{
    update_ranges(o, simd, params, grads, &offset, &count, 1);
}

void cvae__optimizer_update_ranges(struct cvae_optimizer *o, float *params, const float *grads,
                                   const size_t *offset, const size_t *count, int ranges)
{
    update_ranges(o, CVAE__OPTIMIZER_SIMD_AUTO, params, grads, offset, count, ranges);
}

void cvae__optimizer_update(struct cvae_optimizer *o, float *params, const float *grads,
                            size_t offset, size_t count)
{
    cvae__optimizer_update_with(o, CVAE__OPTIMIZER_SIMD_AUTO, params, grads, offset, count);
}

/* x * 0 is +-0 for every finite x and NaN for an infinity or a NaN, so a
 * sum of such products is zero iff every x is finite (no overflow is
 * possible). Sixteen independent sums instead of one: the compiler keeps
 * them in vector registers, and there is no chain of dependent additions
 * (2.4 ms for 4.1M values as one chain, ~0.4 ms this way). */
static int finite_run(const float *x, size_t n)
{
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int q = 0; q < 16; q++)
            acc[q] += x[i + q] * 0.0f;
    float t = 0.0f;
    for (; i < n; i++)
        t += x[i] * 0.0f;
    for (int q = 0; q < 16; q++)
        t += acc[q];
    return t == 0.0f;
}

typedef struct fin_job {
    const float *x;
    size_t n;
    double share;
    int ok[PAR_MAX_PARTS];
} fin_job;

static void finite_part(void *ctx, int part, int parts)
{
    fin_job *j = ctx;
    /* cut on multiples of 16; with two parts the share stays in [1/4,
     * 3/4], so n >= 2 * PAR_MIN keeps both parts non-empty */
    const size_t lo = cvae__parallel_part_start_on(j->n, part, parts, j->share, 16),
                 hi = cvae__parallel_part_start_on(j->n, part + 1, parts, j->share, 16);
    j->ok[part] = finite_run(j->x + lo, hi - lo);
}

int cvae__all_finite(const float *x, size_t n)
{
    const int parts = parts_for(n);
    if (parts == 1)
        return finite_run(x, n);
    fin_job j;
    j.x = x;
    j.n = n;
    j.share = cvae__parallel_share(CVAE__SHARE_FINITE);
    cvae__parallel_cut(CVAE__SHARE_FINITE, parts, j.share, finite_part, &j);
    int ok = 1;
    for (int p = 0; p < parts; p++)
        ok &= j.ok[p];
    return ok;
}
