#include "training/augment.h"

#include <math.h>

#include "core/error.h"
#include "core/threads.h"

void cvae__augment_defaults(cvae__augment_params *p)
{
    p->max_rotation = 10.0f;
    p->max_shift = 0.1f;
    p->max_scale = 0.1f;
    p->max_gain = 0.0f;
    p->fill = CVAE__FILL_ZERO;
}

void cvae__affine_make(double angle, double scale, double tx, double ty, int h, int w,
                       cvae__affine *t)
{
    /* inverse of p_out = c + s R (p_in - c) + tr:
     * p_in = c + R^T (p_out - c - tr) / s */
    const double cs = cos(angle) / scale, sn = sin(angle) / scale;
    const double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1);
    t->m[0] = cs, t->m[1] = sn;
    t->m[2] = -sn, t->m[3] = cs;
    const double qx = -cx - tx, qy = -cy - ty; /* -(c + tr) */
    t->o[0] = cx + t->m[0] * qx + t->m[1] * qy;
    t->o[1] = cy + t->m[2] * qx + t->m[3] * qy;
}

/* splitmix64's finaliser: a bijective 64-bit mixer. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1) from 53 bits. */
static double sym_uniform(uint64_t h) { return (double)(h >> 11) * (2.0 / 9007199254740992.0) - 1; }

/* chained so that (seed, epoch, index) and (seed, epoch', index') with
 * swapped roles give unrelated streams */
static uint64_t image_key(uint64_t seed, uint64_t epoch, uint64_t index)
{
    return mix64(mix64(mix64(seed) ^ epoch) ^ index);
}

void cvae__augment_draw(const cvae__augment_params *p, uint64_t seed, uint64_t epoch,
                        uint64_t index, int h, int w, cvae__affine *t)
{
    const uint64_t key = image_key(seed, epoch, index);
    const double angle = sym_uniform(mix64(key + 1)) * p->max_rotation * (3.14159265358979323846 / 180);
    const double scale = 1 + sym_uniform(mix64(key + 2)) * p->max_scale;
    const double tx = sym_uniform(mix64(key + 3)) * p->max_shift * w;
    const double ty = sym_uniform(mix64(key + 4)) * p->max_shift * h;
    cvae__affine_make(angle, scale, tx, ty, h, w, t);
}

float cvae__augment_gain(const cvae__augment_params *p, uint64_t seed, uint64_t epoch,
                         uint64_t index)
{
    /* its own draw (key + 5), so the geometry of a seed is the same with
     * and without the gain; exactly 1 when max_gain is 0 */
    return (float)(1 + sym_uniform(mix64(image_key(seed, epoch, index) + 5)) * p->max_gain);
}

void cvae__gain_apply(float gain, int64_t n, float *v)
{
    for (int64_t i = 0; i < n; i++) {
        const float g = v[i] * gain;
        v[i] = g > 1.0f ? (v[i] > 1.0f ? v[i] : 1.0f) : g;
    }
}

/* Bilinear sampling of one output pixel: the four taps' positions and
 * weights, with the fill rule applied to the positions (a tap outside reads
 * weight 0 under FILL_ZERO, the clamped pixel under FILL_EDGE). */
typedef struct taps {
    int64_t at[4];
    double wt[4];
} taps;

static void make_taps(const cvae__affine *t, cvae__fill fill, int h, int w, int x, int y,
                      taps *tp)
{
    const double u = t->m[0] * x + t->m[1] * y + t->o[0];
    const double v = t->m[2] * x + t->m[3] * y + t->o[1];
    const double fu = floor(u), fv = floor(v);
    const double ax = u - fu, ay = v - fv;
    /* far outside: avoid int overflow, every tap is out anyway */
    const double lim = 4.0 * (h > w ? h : w) + 4;
    const int x0 = (int)(fu < -lim ? -lim : (fu > lim ? lim : fu));
    const int y0 = (int)(fv < -lim ? -lim : (fv > lim ? lim : fv));
    for (int k = 0; k < 4; k++) {
        int xi = x0 + (k & 1), yi = y0 + (k >> 1);
        double wt = ((k & 1) ? ax : 1 - ax) * ((k >> 1) ? ay : 1 - ay);
        if (fill == CVAE__FILL_EDGE) {
            xi = xi < 0 ? 0 : (xi >= w ? w - 1 : xi);
            yi = yi < 0 ? 0 : (yi >= h ? h - 1 : yi);
        } else if (xi < 0 || xi >= w || yi < 0 || yi >= h) {
            xi = 0, yi = 0, wt = 0;
        }
        tp->at[k] = (int64_t)yi * w + xi;
        tp->wt[k] = wt;
    }
}

void cvae__affine_apply_f32(const cvae__affine *t, cvae__fill fill, int c, int h, int w,
                            const float *in, float *out)
{
    const int64_t plane = (int64_t)h * w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            taps tp;
            make_taps(t, fill, h, w, x, y, &tp);
            for (int ch = 0; ch < c; ch++) {
                const float *src = in + ch * plane;
                double s = 0;
                for (int k = 0; k < 4; k++)
                    if (tp.wt[k] != 0)
                        s += tp.wt[k] * src[tp.at[k]];
                out[ch * plane + (int64_t)y * w + x] = (float)s;
            }
        }
}

void cvae__affine_apply_u8(const cvae__affine *t, cvae__fill fill, int c, int h, int w,
                           const uint8_t *in, float *out)
{
    const int64_t plane = (int64_t)h * w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            taps tp;
            make_taps(t, fill, h, w, x, y, &tp);
            for (int ch = 0; ch < c; ch++) {
                const uint8_t *src = in + ch * plane;
                double s = 0;
                for (int k = 0; k < 4; k++)
                    if (tp.wt[k] != 0)
                        s += tp.wt[k] * (double)((float)src[tp.at[k]] / 255.0f);
                out[ch * plane + (int64_t)y * w + x] = (float)s;
            }
        }
}

typedef struct aug_job {
    const cvae__augment_params *p;
    uint64_t seed, epoch;
    const int64_t *index;
    int64_t n;
    int c, h, w;
    const float *inf;
    const uint8_t *inu;
    float *out;
} aug_job;

static void aug_part(void *ctx, int part, int parts)
{
    const aug_job *j = ctx;
    const int64_t img = (int64_t)j->c * j->h * j->w;
    const int64_t i0 = j->n * part / parts, i1 = j->n * (part + 1) / parts;
    for (int64_t i = i0; i < i1; i++) {
        cvae__affine t;
        cvae__augment_draw(j->p, j->seed, j->epoch, (uint64_t)j->index[i], j->h, j->w, &t);
        if (j->inf)
            cvae__affine_apply_f32(&t, j->p->fill, j->c, j->h, j->w, j->inf + i * img,
                                   j->out + i * img);
        else
            cvae__affine_apply_u8(&t, j->p->fill, j->c, j->h, j->w, j->inu + i * img,
                                  j->out + i * img);
        if (j->p->max_gain != 0)
            cvae__gain_apply(cvae__augment_gain(j->p, j->seed, j->epoch, (uint64_t)j->index[i]),
                             img, j->out + i * img);
    }
}

static cvae_status run(aug_job *j)
{
    const cvae__augment_params *p = j->p;
    CVAE__CHECK_PTR(p);
    if (!j->index || (!j->inf && !j->inu) || !j->out)
        return cvae__fail(CVAE_E_INVALID_ARG, "augment: NULL index, input or output");
    if (j->n < 1 || j->c < 1 || j->h < 1 || j->w < 1 ||
        (double)j->c * j->h * j->w > (double)INT32_MAX)
        return cvae__fail(CVAE_E_INVALID_ARG, "augment: bad shape (n %lld, %d x %d x %d)",
                          (long long)j->n, j->c, j->h, j->w);
    if (!(p->max_rotation >= 0) || !isfinite(p->max_rotation) || !(p->max_shift >= 0) ||
        !isfinite(p->max_shift) || !(p->max_scale >= 0) || !(p->max_scale < 1) ||
        !(p->max_gain >= 0) || !(p->max_gain < 1) ||
        (p->fill != CVAE__FILL_ZERO && p->fill != CVAE__FILL_EDGE))
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "augment: bad parameters (rotation %g, shift %g, scale %g, gain %g, fill %d)",
                          p->max_rotation, p->max_shift, p->max_scale, p->max_gain,
                          (int)p->fill);
    int parts = cvae__parallel_threads();
    if (parts > j->n)
        parts = (int)j->n;
    cvae__parallel(parts, aug_part, j);
    return CVAE_OK;
}

cvae_status cvae__augment_f32(const cvae__augment_params *p, uint64_t seed, uint64_t epoch,
                              const int64_t *index, int64_t n, int c, int h, int w,
                              const float *in, float *out)
{
    if (!in)
        return cvae__fail(CVAE_E_INVALID_ARG, "augment: in is NULL");
    aug_job j = {p, seed, epoch, index, n, c, h, w, in, NULL, out};
    return run(&j);
}

cvae_status cvae__augment_u8(const cvae__augment_params *p, uint64_t seed, uint64_t epoch,
                             const int64_t *index, int64_t n, int c, int h, int w,
                             const uint8_t *in, float *out)
{
    if (!in)
        return cvae__fail(CVAE_E_INVALID_ARG, "augment: in is NULL");
    aug_job j = {p, seed, epoch, index, n, c, h, w, NULL, in, out};
    return run(&j);
}
