/* A stride-1 convolution that keeps its size (odd kernel, centred) as a
 * matrix product whose im2col operand is read straight from a copy of the
 * image. In a zero-padded copy, the 16 input values one kernel tap sees at
 * 16 neighbouring output positions of a row are 16 neighbouring floats, so
 * the forward micro-kernel loads each row of its B panel from the image
 * itself at a per-tap offset: no panel is gathered or masked (the implicit
 * im2col of im2col.c spent about as long gathering as multiplying when the
 * layer has 16 output channels). The weight gradient reads a channels-last
 * copy the same way. */
#ifndef CVAE_CONV_DIRECT_H
#define CVAE_CONV_DIRECT_H

#include <stddef.h>

#include "layers/conv_geom.h"

/* Whether cvae__conv_direct handles g on this CPU: stride 1, odd kernel
 * sides of at most 16, padded (k-1)/2 so the output is the input's size,
 * and the 16-row AVX-512 tile kernel behind cvae__gemm_tile
 * (cvae__gemm_tile_mr() == 16). */
int cvae__conv_direct_ok(const cvae__conv_geom *g);

/* Floats of work cvae__conv_direct needs: the tap offsets and the padded
 * image. */
size_t cvae__conv_direct_work_floats(const cvae__conv_geom *g);

/* y (c_out x h_out*w_out) = W im2col(img) for one image img
 * [c_in][h_in][w_in], W packed by cvae__implicit_pack into ap. The inner
 * dimension is summed in the blocks and order of cvae__implicit_conv's
 * panels, each block from zero and added to the previous ones, so the two
 * give the same floats. Only where cvae__conv_direct_ok(g). */
void cvae__conv_direct(const cvae__conv_geom *g, const float *img, const float *ap, float *y,
                       float *work);

/* The weight gradient over a run of images, one call per image in order:
 * dw (c_out x c_in*kh*kw, row-major) = the sum over the run of
 * dy_i im2col(img_i)^T, dy_i the output gradient (c_out x h_out*w_out).
 * first marks the run's first image; on its last (last != 0) dw is
 * written, overwriting it (it is not touched before). Each image's share is
 * summed over its positions in row order and added to the sum of the
 * images before it. work (cvae__conv_direct_dw_floats(g) floats) carries
 * the sum from call to call. Only where cvae__conv_direct_dw_ok(g): where
 * cvae__conv_direct_ok(g) and the image has at least 16 channels (fewer
 * would leave most of each block of 16 zero). */
int cvae__conv_direct_dw_ok(const cvae__conv_geom *g);
size_t cvae__conv_direct_dw_floats(const cvae__conv_geom *g);
void cvae__conv_direct_dw(const cvae__conv_geom *g, const float *img, const float *dy, int first,
                          int last, float *dw, float *work);

#endif
