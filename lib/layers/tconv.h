/* Transposed convolution layer ("deconvolution"), the decoder's way back up
 * a convolution branch. A transposed convolution is described by the
 * geometry of the forward convolution it is the adjoint of: with geometry g
 * it maps [c_out, h_out, w_out] -> [c_in, h_in, w_in], which is how the
 * decoder mirrors an encoder branch.
 *
 * Weights are row-major [c_out][c_in][kh][kw], the conv's layout; PyTorch's
 * ConvTranspose2d stores [in=c_out][out=c_in][kh][kw], which is the same
 * memory. The bias has c_in values. Gradients dw/db are overwritten, not
 * accumulated; dx may be NULL. `col` is a caller workspace of
 * cvae__conv_work_floats(g) floats. None of these allocate. */
#ifndef CVAE_TCONV_H
#define CVAE_TCONV_H

#include "layers/conv.h"

/* Geometry of a transposed convolution [c_in_t, h, w] -> [c_out_t, H, W]
 * with H = (h - 1) * stride - 2 * pad + kh (PyTorch's ConvTranspose2d with
 * output_padding 0), or H = h * stride for CVAE__PAD_SAME. The result
 * describes the adjoint forward conv, i.e. g->c_out == c_in_t, g->h_out ==
 * h, g->c_in == c_out_t, g->h_in == H. */
cvae_status cvae__tconv_geom_init(cvae__conv_geom *g, int c_in_t, int h, int w, int c_out_t,
                                  int kh, int kw, int stride, int pad);

/* y[n][c_in][h_in][w_in] = convT(x[n][c_out][h_out][w_out], w) + b. */
void cvae__tconv2d_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                           const float *b, float *y, float *col);
void cvae__tconv2d_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                            const float *dy, float *dx, float *dw, float *db, float *col);

/* The same, batch-parallel as conv.h's forms (work: cvae__conv_par_floats). */
void cvae__tconv2d_forward_par(const cvae__conv_geom *g, int n, const float *x, const float *w,
                               const float *b, float *y, float *work, int parts);
void cvae__tconv2d_backward_par(const cvae__conv_geom *g, int n, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db, float *work,
                                int parts);

#endif
