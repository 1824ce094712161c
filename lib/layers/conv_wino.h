/* A stride-1, size-keeping 3x3 or 5x5 convolution by Winograd's minimal
 * filtering F(4x4, 3x3) or F(4x4, 5x5): every 4x4 block of outputs comes
 * from the 6x6 or 8x8 block of inputs under it through 36 or 64 products
 * per channel pair instead of 144 or 400. Inputs and output gradients are
 * turned into that domain of 36 or 64 points (a few additions per value),
 * multiplied there as 36 or 64 small matrix products over the channels,
 * and turned back. Exact in real arithmetic; in float the transforms scale
 * values up and back down, so results differ from the direct sum by a few
 * units in the sixth digit of the sum of the products' magnitudes (about
 * 20 times a direct sum's rounding).
 *
 * The same transforms give the weight gradient: in the transformed domain
 * it is a product over tiles (and images) of the transformed input and the
 * transformed output gradient, turned back into kernels once per run. */
#ifndef CVAE_CONV_WINO_H
#define CVAE_CONV_WINO_H

#include <stddef.h>

#include "layers/conv_geom.h"

/* Whether g runs here: stride 1, a 3x3 or 5x5 kernel padded 1 or 2 on
 * every side (the output the input's size), at least 16 channels in and out (fewer leave
 * most of each block of 16 lanes empty), and a CPU the library's own
 * kernels run on: AVX-512 (16-lane kernels here and the GEMM's 16-row tile
 * kernel) or AVX2 with FMA (conv_wino_avx2.c); not where the GEMM is told
 * to use BLIS's kernels only (CVAE_GEMM_KERNEL=blis). */
int cvae__conv_wino_ok(const cvae__conv_geom *g);

/* Whether a call over n images should take this path: where it runs and
 * n is at least CVAE__WINO_MIN_IMAGES. Each call transforms the whole
 * weight tensor (and the weight gradient transforms its sums back) once,
 * which costs as much as the transforms save on about 4-6 images of the
 * model's layers: a single image (batch-1 prediction) ran 2.6 times
 * slower this way than directly. */
#define CVAE__WINO_MIN_IMAGES 8
int cvae__conv_wino_pays(const cvae__conv_geom *g, int n);

/* The transformed weights: floats they take, and u written from w
 * ([c_out][c_in][k][k], PyTorch's layout). Computed once per call of a
 * layer, read by every image. */
size_t cvae__conv_wino_u_floats(const cvae__conv_geom *g);
void cvae__conv_wino_weights(const cvae__conv_geom *g, const float *w, float *u);

/* y (c_out x h*w) = conv(img [c_in][h][w], w) for one image, u from
 * cvae__conv_wino_weights; work is cvae__conv_wino_work_floats(g) floats
 * whose contents are not kept. */
size_t cvae__conv_wino_work_floats(const cvae__conv_geom *g);
void cvae__conv_wino_forward(const cvae__conv_geom *g, const float *img, const float *u, float *y,
                             float *work);

/* dw (c_out x c_in*k*k, overwritten) = the sum over n consecutive images of
 * x (c_in*h*w floats each) and dy (c_out*h*w each) of the weight gradient
 * of conv g; dw is zero for n <= 0. Images are taken a few at a time so
 * that the products have enough tiles to sum over; work is
 * cvae__conv_wino_dw_floats(g) floats. */
size_t cvae__conv_wino_dw_floats(const cvae__conv_geom *g);
void cvae__conv_wino_dw(const cvae__conv_geom *g, int n, const float *x, const float *dy,
                        float *dw, float *work);

/* The same sum a group at a time, for a caller that walks the images
 * anyway: groups of cvae__conv_wino_group(g) images (the last may be
 * shorter) in order, the first with first set, then dw from
 * cvae__conv_wino_dw_end; work as above, kept between the calls. On the
 * way, each image's channels-last copies serve two more convolutions
 * without being made again: with ux (weights from cvae__conv_wino_weights
 * of g), xout gets g's forward conv of x (c_out*h*w floats an image); with
 * ua (those of g's adjoint, g with c_in and c_out swapped), dyout gets the
 * adjoint conv of dy (c_in*h*w an image), the input gradient. Either may
 * be NULL. */
int cvae__conv_wino_group(const cvae__conv_geom *g);
void cvae__conv_wino_dw_group(const cvae__conv_geom *g, int first, int nb, const float *x,
                              const float *dy, const float *ux, float *xout, const float *ua,
                              float *dyout, float *work);
void cvae__conv_wino_dw_end(const cvae__conv_geom *g, const float *work, float *dw);
/* The whole run that way: cvae__conv_wino_dw with the two convolutions
 * above (ux, xout, ua, dyout as there; either pair NULL). */
void cvae__conv_wino_dw_with(const cvae__conv_geom *g, int n, const float *x, const float *dy,
                             const float *ux, float *xout, const float *ua, float *dyout,
                             float *dw, float *work);

#endif
