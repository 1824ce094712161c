/* Convolutions straight from the definition, in double, for the tests of
 * the fast paths (test_conv_direct.c, test_conv_wino.c): each sum with the
 * sum of its products' magnitudes, the scale float rounding is judged by. */
#ifndef CVAE_TEST_CONV_REFERENCE_H
#define CVAE_TEST_CONV_REFERENCE_H

#include <math.h>
#include <stddef.h>

#include "gradcheck.h"
#include "layers/conv_geom.h"

/* y[o][p] = sum over taps (c, ky, kx) of w[o][c][ky][kx] times the input
 * that tap reads at output position p (zero outside the image); mag the
 * sum of the products' magnitudes, the scale of float rounding. */
static GC_UNUSED void reference(const cvae__conv_geom *g, const float *x, const float *w, double *y,
                      double *mag)
{
    const int kk = g->kh * g->kw;
    for (int o = 0; o < g->c_out; o++)
        for (int oy = 0; oy < g->h_out; oy++)
            for (int ox = 0; ox < g->w_out; ox++) {
                double s = 0.0, m = 0.0;
                for (int c = 0; c < g->c_in; c++)
                    for (int t = 0; t < kk; t++) {
                        const int iy = oy + t / g->kw - g->pad_top;
                        const int ix = ox + t % g->kw - g->pad_left;
                        if (iy < 0 || iy >= g->h_in || ix < 0 || ix >= g->w_in)
                            continue;
                        const double v = (double)w[((size_t)o * g->c_in + c) * kk + t] *
                                         (double)x[((size_t)c * g->h_in + iy) * g->w_in + ix];
                        s += v;
                        m += fabs(v);
                    }
                const size_t i = ((size_t)o * g->h_out + oy) * g->w_out + ox;
                y[i] = s;
                mag[i] = m;
            }
}

/* dw[o][c][ky][kx] = the sum over images and output positions of dy[o][p]
 * times the input tap (c, ky, kx) reads at p; mag the sum of the products'
 * magnitudes. */
static GC_UNUSED void reference_dw(const cvae__conv_geom *g, int n, const float *x, const float *dy,
                         double *dw, double *mag)
{
    const int kk = g->kh * g->kw;
    const size_t xi = (size_t)g->c_in * g->h_in * g->w_in, yi = (size_t)g->c_out * g->h_out * g->w_out;
    for (int o = 0; o < g->c_out; o++)
        for (int c = 0; c < g->c_in; c++)
            for (int t = 0; t < kk; t++) {
                double s = 0.0, m = 0.0;
                for (int i = 0; i < n; i++)
                    for (int oy = 0; oy < g->h_out; oy++)
                        for (int ox = 0; ox < g->w_out; ox++) {
                            const int iy = oy + t / g->kw - g->pad_top;
                            const int ix = ox + t % g->kw - g->pad_left;
                            if (iy < 0 || iy >= g->h_in || ix < 0 || ix >= g->w_in)
                                continue;
                            const double v =
                                (double)dy[i * yi + ((size_t)o * g->h_out + oy) * g->w_out + ox] *
                                (double)x[i * xi + ((size_t)c * g->h_in + iy) * g->w_in + ix];
                            s += v;
                            m += fabs(v);
                        }
                const size_t j = ((size_t)o * g->c_in + c) * kk + t;
                dw[j] = s;
                mag[j] = m;
            }
}

#endif
