/* 2-D convolution (im2col + GEMM) and transposed convolution (GEMM + col2im)
 * layers. The im2col matrix itself (stored, or gathered straight into the
 * GEMM micro-kernel) and col2im are in lib/conv_im2col.h.
 *
 * Both are described by the geometry of a forward convolution
 * [c_in, h_in, w_in] -> [c_out, h_out, w_out]. A transposed convolution with
 * the same geometry maps [c_out, h_out, w_out] -> [c_in, h_in, w_in]: it is the
 * adjoint of the convolution, which is how deconv layers are built
 * ("mirroring" the encoder's branch).
 *
 * Weights are row-major [c_out][c_in][kh][kw] for both (PyTorch's Conv2d
 * layout; for ConvTranspose2d PyTorch stores [in=c_out][out=c_in][kh][kw],
 * which is the same memory). Conv bias has c_out values, deconv bias c_in.
 * Gradients dw/db are overwritten, not accumulated; dx may be NULL.
 * `col` is a caller workspace of cvae__conv_work_floats(g) floats. None of
 * these allocate. */
#ifndef CVAE_CONV_H
#define CVAE_CONV_H

#include <stddef.h>

#include "convvae.h"

typedef struct cvae__conv_geom {
    int c_in, h_in, w_in;
    int c_out, h_out, w_out;
    int kh, kw, stride;
    int pad_top, pad_left; /* bottom/right padding is implied by h_out/w_out */
} cvae__conv_geom;

#define CVAE__PAD_SAME (-1)

/* Forward-conv geometry. pad >= 0 pads pad zeros on every side;
 * CVAE__PAD_SAME gives h_out = ceil(h_in / stride) with the extra padding row
 * (for even kernels) at the bottom/right, as TensorFlow's "same".
 * Returns CVAE_E_INVALID_ARG (with message) for non-positive sizes, an output
 * smaller than 1x1, or sizes whose products overflow int. */
cvae_status cvae__conv_geom_init(cvae__conv_geom *g, int c_in, int h_in, int w_in, int c_out,
                                 int kh, int kw, int stride, int pad);

/* Geometry of a transposed convolution [c_in_t, h, w] -> [c_out_t, H, W]
 * with H = (h - 1) * stride - 2 * pad + kh (PyTorch's ConvTranspose2d with
 * output_padding 0). The result describes the adjoint forward conv, i.e.
 * g->c_out == c_in_t, g->h_out == h, g->c_in == c_out_t, g->h_in == H. */
cvae_status cvae__deconv_geom_init(cvae__conv_geom *g, int c_in_t, int h, int w, int c_out_t,
                                   int kh, int kw, int stride, int pad);

/* Floats of the per-image im2col matrix: c_in*kh*kw * h_out*w_out. */
size_t cvae__conv_col_floats(const cvae__conv_geom *g);
/* Floats of the workspace `col` the layer functions below need: the im2col
 * matrix, plus room for rotated weights where the adjoint pass (conv dX,
 * transposed conv forward) runs as a conv of its own. */
size_t cvae__conv_work_floats(const cvae__conv_geom *g);

/* y[n][c_out][h_out][w_out] = conv(x[n][c_in][h_in][w_in], w) + b. */
void cvae__conv2d_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                          const float *b, float *y, float *col);
void cvae__conv2d_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                           const float *dy, float *dx, float *dw, float *db, float *col);

/* y[n][c_in][h_in][w_in] = convT(x[n][c_out][h_out][w_out], w) + b. */
void cvae__deconv2d_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                            const float *b, float *y, float *col);
void cvae__deconv2d_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *db, float *col);

/* Output channels whose bias gradient the backward passes sum image by image
 * (more fall back to a second pass over dy). */
#define CVAE__CONV_MAX_SUMS 1024

/* Batch-parallel layer functions. The batch is cut into `parts` (at most
 * CVAE__CONV_MAX_PARTS) runs of consecutive images run concurrently by
 * cvae__parallel, each with its own slice of `work`, a workspace of
 * cvae__conv_par_floats(g, parts) floats. Outputs do not depend on parts,
 * except dw and db: summed per run, then across runs. */
#define CVAE__CONV_MAX_PARTS 16
size_t cvae__conv_par_floats(const cvae__conv_geom *g, int parts);

/* Convolution followed by ReLU: y = max(conv(x, w) + b, 0), fused into the
 * pass that adds the bias. */
void cvae__conv2d_relu_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                               const float *b, float *y, float *work, int parts);
/* Backward of cvae__conv2d_relu_forward given its output y and the gradient
 * dy with respect to y, which is overwritten with the gradient with respect
 * to the pre-activation (zero where y <= 0) on the way. */
void cvae__conv2d_relu_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                                const float *y, float *dy, float *dx, float *dw, float *db,
                                float *work, int parts);
/* cvae__deconv2d_forward / _backward, batch-parallel. */
void cvae__deconv2d_forward_par(const cvae__conv_geom *g, int n, const float *x, const float *w,
                                const float *b, float *y, float *work, int parts);
void cvae__deconv2d_backward_par(const cvae__conv_geom *g, int n, const float *x, const float *w,
                                 const float *dy, float *dx, float *dw, float *db, float *work,
                                 int parts);

#endif
