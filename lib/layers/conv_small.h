/* The forward pass and weight gradient of a convolution over a
 * single-channel image with a small kernel (an image model's first layer:
 * 1 channel, 3x3), computed directly from shifted image rows. The general
 * paths build (or gather) a 9 x (h*w) im2col matrix per image for products
 * whose inner dimension is that short: mostly packing. */
#ifndef CVAE_CONV_SMALL_H
#define CVAE_CONV_SMALL_H

#include "layers/conv_geom.h"

/* Whether cvae__conv_small_forward and cvae__conv_small_dw handle g on this CPU: one input channel,
 * stride 1, an output the size of the input with the kernel centred (odd
 * sizes, padded (k-1)/2), at most 15 taps, rows of at most 32, and
 * AVX-512F or AVX2 with FMA. */
int cvae__conv_small_ok(const cvae__conv_geom *g);

/* Floats of work either needs: the zero-padded image. */
size_t cvae__conv_small_work_floats(const cvae__conv_geom *g);

/* y [c_out][h_out][w_out] = the conv of one image x [h_in][w_in] with
 * w [c_out][kh*kw], plus b per channel (NULL: none), then max(., 0) if
 * relu; each output summed over the taps in order from zero, then the bias
 * added. work: cvae__conv_small_work_floats(g) floats. */
void cvae__conv_small_forward(const cvae__conv_geom *g, const float *x, const float *w,
                              const float *b, int relu, float *y, float *work);

/* dw [c_out][kh*kw] = beta * dw + dy (c_out x h_out*w_out) times the
 * image's im2col matrix transposed, for one image x [h_in][w_in]; with beta
 * 0 dw is not read. work: cvae__conv_small_work_floats(g) floats. */
void cvae__conv_small_dw(const cvae__conv_geom *g, const float *x, const float *dy, float beta,
                         float *dw, float *work);

#endif
