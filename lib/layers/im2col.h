/* A convolution as a matrix product: the im2col matrix of one image, stored
 * or never stored, and its adjoint col2im. The conv and transposed-conv
 * layers (conv.c, tconv.c) build on these.
 *
 * The im2col matrix of an image [c_in][h_in][w_in] under geometry g has
 * c_in*kh*kw rows, one per kernel tap (c, ky, kx) in that order, of
 * h_out*w_out columns, one per output position: the input value the tap
 * sees there, or 0 in the padding. A conv is then W (c_out x c_in*kh*kw)
 * times that matrix. None of these allocate. */
#ifndef CVAE_IM2COL_H
#define CVAE_IM2COL_H

#include <stddef.h>

#include "layers/conv_geom.h"

/* im2col / col2im of one image. col2im accumulates into img (caller
 * zeroes). */
void cvae__im2col(const cvae__conv_geom *g, const float *img, float *col);
void cvae__col2im(const cvae__conv_geom *g, const float *col, float *img);
/* col2im into img, which it zeroes first. It may change col (it uses it as
 * scratch), which lets stride-1 geometries add whole runs at once. */
void cvae__col2im_scratch(const cvae__conv_geom *g, float *col, float *img);

/* Implicit im2col: y (c_out x h_out*w_out) = W im2col(img) for one image
 * without storing the im2col matrix. Each 16-column micro-panel of it is
 * gathered from the image into bp, a buffer small enough for L1, and
 * multiplied by cvae__gemm_tile; where cvae__conv_direct_ok(g) the tile
 * kernel reads a zero-padded copy of the image instead (conv_direct.h), to
 * the same floats. bp: cvae__implicit_b_floats(g) floats. Only for
 * geometries cvae__implicit_ok accepts: a micro-kernel of our own
 * (cvae__gemm_tile_mr() > 0), stride 1, output rows as wide as input rows,
 * kernels up to 16 x 16. The inner dimension is summed in blocks of
 * CVAE__IMPLICIT_KC, the last one up to CVAE__IMPLICIT_KC_MAX long. */
int cvae__implicit_ok(const cvae__conv_geom *g);
#define CVAE__IMPLICIT_KC 384
#define CVAE__IMPLICIT_KC_MAX 480
#define CVAE__IMPLICIT_B_FLOATS (CVAE__IMPLICIT_KC_MAX * 16) /* one gathered panel */
size_t cvae__implicit_b_floats(const cvae__conv_geom *g);
/* W (m x k, row-major) packed for cvae__implicit_conv into ap, a buffer of
 * cvae__implicit_a_floats(m, k) floats; m = g->c_out, k = c_in*kh*kw. */
size_t cvae__implicit_a_floats(int m, int k);
void cvae__implicit_pack(const float *w, int m, int k, float *ap);
void cvae__implicit_conv(const cvae__conv_geom *g, const float *img, const float *ap, float *bp,
                         float *y);
/* cvae__implicit_conv always through gathered panels (bp: at least
 * CVAE__IMPLICIT_B_FLOATS floats), so tests can hold the direct reads to
 * it where both apply. */
void cvae__implicit_conv_gathered(const cvae__conv_geom *g, const float *img, const float *ap,
                                  float *bp, float *y);

/* Implicit im2col for the weight gradient: dw (c_out x c_in*kh*kw,
 * row-major) = dy im2col(img)^T + beta dw for one image, dy its output
 * gradient (c_out x h_out*w_out). The im2col matrix is again never stored:
 * each panel of 16 taps over a block of output positions is gathered from
 * img as the forward pass does and transposed in registers into the layout
 * the micro-kernel reads. beta is 0 (overwrite) or 1 (accumulate). work:
 * cvae__implicit_dw_floats(g) floats. Only where cvae__implicit_ok(g). */
size_t cvae__implicit_dw_floats(const cvae__conv_geom *g);
void cvae__implicit_dw(const cvae__conv_geom *g, const float *img, const float *dy, float beta,
                       float *dw, float *work);

#endif
