#include "pool.h"

#include <limits.h>
#include <string.h>

#include "error.h"

cvae_status cvae__pool_geom_init(cvae__pool_geom *g, int c, int h_in, int w_in, int k,
                                 int stride)
{
    CVAE__CHECK_PTR(g);
    memset(g, 0, sizeof *g);
    if (c < 1 || h_in < 1 || w_in < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "pool geometry: sizes must be >= 1 (c %d, h_in %d, w_in %d)", c, h_in,
                          w_in);
    if (k < 1 || stride < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "pool geometry: window %d and stride %d must be >= 1", k, stride);
    if (k > h_in || k > w_in)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "pool geometry: window %d does not fit the %dx%d input", k, h_in,
                          w_in);
    /* argmax stores in-plane indices as int32 and the kernels index a whole
     * image with int arithmetic, so one image must fit int. */
    long long plane = (long long)h_in * w_in;
    if (plane > INT_MAX / c)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "pool geometry: %d x %d x %d elements per image overflow int", c, h_in,
                          w_in);
    g->c = c;
    g->h_in = h_in;
    g->w_in = w_in;
    g->k = k;
    g->stride = stride;
    g->h_out = (h_in - k) / stride + 1;
    g->w_out = (w_in - k) / stride + 1;
    return CVAE_OK;
}

void cvae__maxpool_forward(const cvae__pool_geom *g, int n, const float *x, float *y,
                           int32_t *argmax)
{
    const int k = g->k, s = g->stride, w_in = g->w_in;
    const size_t in_plane = (size_t)g->h_in * (size_t)w_in;
    const size_t out_plane = (size_t)g->h_out * (size_t)g->w_out;
    const size_t planes = (size_t)n * (size_t)g->c;
    for (size_t p = 0; p < planes; p++) {
        const float *src = x + p * in_plane;
        float *dst = y + p * out_plane;
        int32_t *am = argmax + p * out_plane;
        for (int oy = 0; oy < g->h_out; oy++) {
            for (int ox = 0; ox < g->w_out; ox++) {
                int best = oy * s * w_in + ox * s;
                float bv = src[best];
                for (int dy = 0; dy < k; dy++) {
                    const int row = (oy * s + dy) * w_in + ox * s;
                    for (int dx = 0; dx < k; dx++) {
                        /* Strictly greater: the first maximum wins a tie, so
                         * the gradient goes to one input only. */
                        if (src[row + dx] > bv) {
                            bv = src[row + dx];
                            best = row + dx;
                        }
                    }
                }
                const size_t o = (size_t)oy * (size_t)g->w_out + (size_t)ox;
                dst[o] = bv;
                am[o] = (int32_t)best;
            }
        }
    }
}

void cvae__maxpool_backward(const cvae__pool_geom *g, int n, const float *dy,
                            const int32_t *argmax, float *dx)
{
    const size_t in_plane = (size_t)g->h_in * (size_t)g->w_in;
    const size_t out_plane = (size_t)g->h_out * (size_t)g->w_out;
    const size_t planes = (size_t)n * (size_t)g->c;
    if (planes == 0)
        return;
    memset(dx, 0, planes * in_plane * sizeof *dx);
    for (size_t p = 0; p < planes; p++) {
        float *d = dx + p * in_plane;
        const float *g_out = dy + p * out_plane;
        const int32_t *am = argmax + p * out_plane;
        /* Overlapping windows (k > stride) can pick the same input twice. */
        for (size_t o = 0; o < out_plane; o++)
            d[am[o]] += g_out[o];
    }
}
