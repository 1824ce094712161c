/* Element-wise activations and row-wise softmax. Outputs may alias inputs;
 * backward passes take the forward *output* (enough for all three). */
#ifndef CVAE_ACTIVATION_H
#define CVAE_ACTIVATION_H

#include <stdint.h>

void cvae__relu_forward(int64_t n, const float *x, float *y);
/* dx = dy where y > 0, else 0. dx may alias dy. */
void cvae__relu_backward(int64_t n, const float *y, const float *dy, float *dx);
/* The same for an input gradient in two shares: dx = dy + dy2 where y > 0,
 * else 0 (the sum as float, as adding dy2 to dy first would give). dx may
 * alias dy or dy2. */
void cvae__relu_backward_sum(int64_t n, const float *y, const float *dy, const float *dy2,
                             float *dx);

/* Numerically stable for large |x| (no exp overflow). */
void cvae__sigmoid_forward(int64_t n, const float *x, float *y);
void cvae__sigmoid_backward(int64_t n, const float *y, const float *dy, float *dx);

/* Softmax over each row of x [rows][cols], max-subtracted so large logits
 * stay finite. */
void cvae__softmax_forward(int rows, int cols, const float *x, float *y);
/* dx_i = y_i (dy_i - sum_j y_j dy_j), per row. */
void cvae__softmax_backward(int rows, int cols, const float *y, const float *dy, float *dx);

#endif
