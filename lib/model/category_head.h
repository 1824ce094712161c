/* The category head q(y|x): a ReLU hidden layer and a softmax over the k
 * clusters, reading either the latent z or the convolution features
 * (category_input). All buffers are the model's workspace. */
#ifndef CVAE_CATEGORY_HEAD_H
#define CVAE_CATEGORY_HEAD_H

#include "model/model.h"

/* model->q (n x k) from z or the features of the last encode. */
void cvae__category_forward(cvae_model *model, int n);

/* Backward from model->dq: the head's weight gradients; its input gradient
 * is added to model->dz (input z) or left in model->dc1 for the feature
 * blocks (input features). */
void cvae__category_backward(cvae_model *model, int n);
/* The same, adding the input gradient (input z) to dz instead. */
void cvae__category_backward_into(cvae_model *model, int n, float *dz);
/* cvae__category_backward_into in two steps, for a caller that runs other
 * work beside the first: the softmax and the second layer, down to the
 * first layer's output gradient; then the first layer. */
void cvae__category_backward_top(cvae_model *model, int n);
void cvae__category_backward_first(cvae_model *model, int n, float *dz);

#endif
