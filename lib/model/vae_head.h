/* The VAE head (Kingma and Welling's encoder and decoder) on top of the
 * convolution features: encoder h = act(features W^T + b), the Gaussian
 * q(z|x) as mu and log-variance, sampling z = mu + exp(logvar / 2) eps, and
 * the decoder z -> dense -> ReLU -> dense -> (transposed convs mirroring
 * branch 1) -> sigmoid image. All buffers are the model's workspace. */
#ifndef CVAE_VAE_HEAD_H
#define CVAE_VAE_HEAD_H

#include "model/model.h"

/* Encoder and sampling for n images whose features are in the workspace.
 * train == 1 draws eps from the model RNG, CVAE__TRAIN_REUSE_EPS keeps the
 * last eps, train == 0 uses z = mu (and eps = 0). */
void cvae__vae_encode(cvae_model *model, int n, int train);

/* The decoder alone, from model->z (n rows) to the image (cvae__xhat):
 * its first layer (z to the hidden layer model->g, with its ReLU), then
 * the rest. The forward pass runs the first layer beside the category
 * head, which reads z too. */
void cvae__vae_decode(cvae_model *model, int n);
void cvae__vae_decode_first(cvae_model *model, int n);
void cvae__vae_decode_rest(cvae_model *model, int n);

/* The decoded images of the last decode (n * P floats). */
const float *cvae__xhat(const cvae_model *model);

/* Backward through the decoder given the gradient dpre_image with respect
 * to the pre-sigmoid image (or, for recon_target = features, model->ddslice
 * already set): decoder weight gradients, and model->dz overwritten with
 * the gradient with respect to z. */
void cvae__vae_decoder_backward(cvae_model *model, int n, float *dpre_image);
/* Its two pieces: every layer but the first (down to model->dg), then the
 * first (model->dz and the first layer's gradients). */
void cvae__vae_decoder_backward_wide(cvae_model *model, int n, float *dpre_image);
void cvae__vae_decoder_backward_first(cvae_model *model, int n);

/* Backward through sampling and the encoder, given model->dz (decoder,
 * mixture prior, category head) and model->dmu, model->dlv (standard-prior
 * KL term): the encoder's weight gradients, and model->dh, the gradient with
 * respect to the encoder's pre-activation, which the feature blocks take. */
void cvae__vae_encoder_backward(cvae_model *model, int n);

#endif
