/* Separable resampling with precomputed per-axis weights. Written here
 * rather than taken from a library because it streams: Debian's candidates
 * (stb_image_resize in libstb, pixman, libswscale, libvips) want the whole
 * source image in memory (or a far larger dependency) for what is a
 * weight table and two loops, and the image reader must keep memory at
 * the size of the decoded data set, not of the largest file. */
#include "io/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void cvae__resample_axis_free(cvae__resample_axis *a)
{
    free(a->start);
    free(a->count);
    free(a->weights);
    memset(a, 0, sizeof *a);
}

cvae_status cvae__resample_axis_init(cvae__resample_axis *a, int src, int dst)
{
    memset(a, 0, sizeof *a);
    if (src < 1 || dst < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "resampling %d to %d pixels", src, dst);
    a->src = src;
    a->dst = dst;
    const double scale = (double)src / dst; /* source pixels per output pixel */
    /* A box of width scale overlaps at most ceil(scale) + 1 source pixels;
     * bilinear reads two. */
    a->taps = dst < src ? (int)ceil(scale) + 1 : 2;
    a->start = malloc((size_t)dst * sizeof *a->start);
    a->count = malloc((size_t)dst * sizeof *a->count);
    a->weights = calloc((size_t)dst * (size_t)a->taps, sizeof *a->weights);
    if (!a->start || !a->count || !a->weights) {
        cvae__resample_axis_free(a);
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate resampling weights for %d pixels", dst);
    }
    for (int j = 0; j < dst; j++) {
        float *w = a->weights + (size_t)j * (size_t)a->taps;
        if (dst == src) {
            a->start[j] = j;
            a->count[j] = 1;
            w[0] = 1.0f;
        } else if (dst < src) {
            /* Output pixel j covers source [lo, hi); source pixel i covers
             * [i, i + 1): its weight is the overlap over the box width. */
            double lo = j * scale, hi = (j + 1) * scale;
            int i0 = (int)floor(lo), i1 = (int)ceil(hi);
            if (i1 > src)
                i1 = src;
            double sum = 0.0;
            a->start[j] = i0;
            a->count[j] = i1 - i0;
            for (int i = i0; i < i1; i++)
                sum += fmax(0.0, fmin(hi, i + 1.0) - fmax(lo, (double)i));
            /* Normalised in double so that the weights sum to 1 as closely
             * as float allows (lo and hi carry rounding from scale). */
            for (int i = i0; i < i1; i++)
                w[i - i0] = (float)(fmax(0.0, fmin(hi, i + 1.0) - fmax(lo, (double)i)) / sum);
        } else {
            double x = (j + 0.5) * scale - 0.5;
            if (x < 0.0)
                x = 0.0;
            if (x > src - 1)
                x = src - 1;
            int i0 = (int)floor(x);
            double f = x - i0;
            a->start[j] = i0;
            if (i0 + 1 < src && f > 0.0) {
                a->count[j] = 2;
                w[0] = (float)(1.0 - f);
                w[1] = (float)f;
            } else {
                a->count[j] = 1;
                w[0] = 1.0f;
            }
        }
    }
    return CVAE_OK;
}

cvae_status cvae__resample_init(cvae__resampler *r, int channels, int src_h, int src_w,
                                int dst_h, int dst_w, float *out)
{
    memset(r, 0, sizeof *r);
    if (channels < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "resampling %d channels", channels);
    cvae_status st = cvae__resample_axis_init(&r->x, src_w, dst_w);
    if (!st)
        st = cvae__resample_axis_init(&r->y, src_h, dst_h);
    if (st) {
        cvae__resample_free(r);
        return st;
    }
    r->channels = channels;
    r->row = malloc((size_t)dst_w * (size_t)channels * sizeof *r->row);
    if (!r->row) {
        cvae__resample_free(r);
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a resampling row");
    }
    r->out = out;
    memset(out, 0, (size_t)dst_h * (size_t)dst_w * (size_t)channels * sizeof *out);
    return CVAE_OK;
}

void cvae__resample_row(cvae__resampler *r, const float *src)
{
    const int c = r->channels, dw = r->x.dst;
    const int y = r->next_y++;
    if (y >= r->y.src)
        return;
    /* Horizontal pass into r->row. */
    for (int j = 0; j < dw; j++) {
        const float *w = r->x.weights + (size_t)j * (size_t)r->x.taps;
        const float *s = src + (size_t)r->x.start[j] * (size_t)c;
        float *d = r->row + (size_t)j * (size_t)c;
        for (int ch = 0; ch < c; ch++)
            d[ch] = 0.0f;
        for (int t = 0; t < r->x.count[j]; t++)
            for (int ch = 0; ch < c; ch++)
                d[ch] += w[t] * s[(size_t)t * (size_t)c + (size_t)ch];
    }
    /* Vertical pass: add the row to every output row whose footprint holds
     * source row y. Footprints start in increasing order, so the output
     * rows that end before y are never visited again. */
    const size_t rowlen = (size_t)dw * (size_t)c;
    while (r->first_j < r->y.dst && r->y.start[r->first_j] + r->y.count[r->first_j] <= y)
        r->first_j++;
    for (int j = r->first_j; j < r->y.dst && r->y.start[j] <= y; j++) {
        int t = y - r->y.start[j];
        if (t >= r->y.count[j])
            continue;
        float w = r->y.weights[(size_t)j * (size_t)r->y.taps + (size_t)t];
        float *d = r->out + (size_t)j * rowlen;
        for (size_t i = 0; i < rowlen; i++)
            d[i] += w * r->row[i];
    }
}

void cvae__resample_free(cvae__resampler *r)
{
    cvae__resample_axis_free(&r->x);
    cvae__resample_axis_free(&r->y);
    free(r->row);
    r->row = NULL;
}
