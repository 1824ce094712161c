/* 2-D convolution layer (im2col + GEMM), its geometry, and the adjoint pass,
 * workspace and batch-parallel split it shares with the transposed
 * convolution (tconv.h). The im2col matrix itself (stored, or gathered
 * straight into the GEMM micro-kernel) and col2im are in im2col.h.
 *
 * A layer is described by the geometry of a forward convolution
 * [c_in, h_in, w_in] -> [c_out, h_out, w_out]. Weights are row-major
 * [c_out][c_in][kh][kw] (PyTorch's Conv2d layout), the bias has c_out
 * values. Gradients dw/db are overwritten, not accumulated; dx may be NULL.
 * `col` is a caller workspace of cvae__conv_work_floats(g) floats. None of
 * these allocate. */
#ifndef CVAE_CONV_H
#define CVAE_CONV_H

#include <stddef.h>

#include "convvae.h"
#include "layers/conv_geom.h"

/* Floats of the workspace `col` the layer functions below need: the im2col
 * matrix, plus room for rotated weights where the adjoint pass (conv dX,
 * transposed conv forward) runs as a conv of its own. */
size_t cvae__conv_work_floats(const cvae__conv_geom *g);

/* y[n][c_out][h_out][w_out] = conv(x[n][c_in][h_in][w_in], w) + b. */
void cvae__conv2d_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                          const float *b, float *y, float *col);
void cvae__conv2d_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
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
/* ---- shared with the transposed convolution (tconv.c) ------------------ */

/* A 1x1 stride-1 unpadded conv: its im2col matrix is the image itself. */
int cvae__conv_col_is_identity(const cvae__conv_geom *g);
/* Whether the implicit im2col product runs for g (never for a 1x1 conv). */
int cvae__conv_implicit_ok(const cvae__conv_geom *g);

/* A layer's workspace: the im2col matrix (the explicit paths), rotated
 * weights for an adjoint conv, packed weights and one B panel for the
 * implicit paths, and the implicit weight gradient's. Offsets in floats. */
typedef struct cvae__conv_ws {
    size_t col, wf, ap, wu, bp, dw, total; /* wu: Winograd-domain weights (conv_wino.h);
                                              dw: the weight gradient's workspace */
} cvae__conv_ws;
cvae__conv_ws cvae__conv_ws_of(const cvae__conv_geom *g);

/* How a call computes the adjoint: wf the rotated weights (when the adjoint
 * is itself a conv) or NULL; ap, if not NULL, wf packed for
 * cvae__implicit_conv; wu, if not NULL, wf in the Winograd domain for
 * cvae__conv_wino_forward (and then ap is NULL; only where that pays for
 * the n images the call serves). Prepared once per call in the workspace
 * col. */
typedef struct cvae__conv_adj_plan {
    const float *wf, *ap, *wu;
} cvae__conv_adj_plan;
cvae__conv_adj_plan cvae__conv_adjoint_plan(const cvae__conv_geom *g, int n, const float *w,
                                            float *col);
/* out = the adjoint of conv g applied to one image gy [c_out][h_out][w_out];
 * out [c_in][h_in][w_in] is overwritten. */
void cvae__conv_adjoint(const cvae__conv_geom *g, const float *gy, const float *w,
                        const cvae__conv_adj_plan *pl, float *out, float *col);

/* y += b per channel (b may be NULL), then y = max(y, 0) if relu. */
void cvae__conv_bias_relu(int channels, size_t plane, const float *b, int relu, float *y);
/* Sum of a plane, in double. */
double cvae__conv_plane_sum(const float *p, size_t len);
/* db[c] = sum over n images and positions of dy[i][c][:]. */
void cvae__conv_channel_sums(int n, int channels, size_t plane, const float *dy, float *db);

/* The batch-parallel split: runs of consecutive images (x_img / y_img floats
 * per image of the layer's input / output) passed to fwd or bwd, each with
 * its slice of work; bwd's weight gradients are summed over runs and its
 * per-run bias sums (nb doubles in dbacc) combined into db. */
typedef void (*cvae__conv_fwd_fn)(const cvae__conv_geom *g, int n, const float *x,
                                  const float *w, const float *b, int relu, float *y,
                                  float *col);
typedef void (*cvae__conv_bwd_fn)(const cvae__conv_geom *g, int n, const float *x,
                                  const float *w, const float *y, float *dy, float *dx,
                                  float *dw, double *dbacc, float *col);
void cvae__conv_par_forward(cvae__conv_fwd_fn fwd, const cvae__conv_geom *g, int n,
                            const float *x, size_t x_img, const float *w, const float *b,
                            int relu, float *y, size_t y_img, float *work, int parts);
void cvae__conv_par_backward(cvae__conv_bwd_fn bwd, const cvae__conv_geom *g, int n,
                             const float *x, size_t x_img, const float *w, const float *y,
                             float *dy, size_t y_img, float *dx, float *dw, float *db, int nb,
                             float *work, int parts);

#endif
