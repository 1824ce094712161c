/* Fully connected layer: y = x W^T + b, W row-major [out][in] (PyTorch's
 * Linear layout), x [n][in], y [n][out]. Gradients are overwritten; dx may be
 * NULL (first layer). No allocation. */
#ifndef CVAE_DENSE_H
#define CVAE_DENSE_H

void cvae__dense_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                         float *y);
void cvae__dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db);

#endif
