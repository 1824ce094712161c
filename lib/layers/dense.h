/* Fully connected layer: y = x W^T + b, W row-major [out][in] (PyTorch's
 * Linear layout), x [n][in], y [n][out]. Gradients are overwritten; dx may be
 * NULL (first layer). No allocation. */
#ifndef CVAE_DENSE_H
#define CVAE_DENSE_H

void cvae__dense_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                         float *y);
void cvae__dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db);

/* A dense layer whose input row is the concatenation of nblk blocks that
 * are never materialised: block i is blk[i], [n][size[i]], and meets columns
 * off[i] .. off[i] + size[i] - 1 of W [out][ldw]. y = concat(blk) W^T + b
 * (b may be NULL). The backward pass writes dW's columns of every block
 * (dw [out][ldw]) and, if db is not NULL, db = the column sums of dy. */
void cvae__dense_blocks_forward(int n, int out, int nblk, const float *const *blk,
                                const int *size, const int *off, const float *w, int ldw,
                                const float *b, float *y);
void cvae__dense_blocks_backward(int n, int out, int nblk, const float *const *blk,
                                 const int *size, const int *off, const float *dy, float *dw,
                                 int ldw, float *db);

#endif
