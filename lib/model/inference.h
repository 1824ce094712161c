/* Inference: the public entry points that run a trained model forward over
 * caller buffers or data sets (encode, predict, predict_proba, reconstruct,
 * predict_dataset, evaluate, loss, generate), and what training shares with
 * them. None changes the weights. */
#ifndef CVAE_INFERENCE_H
#define CVAE_INFERENCE_H

#include <stdint.h>

#include "model/model.h"

/* A data set's image count, after checking its images have the model's
 * shape (CVAE_E_INVALID_ARG otherwise). */
cvae_status cvae__check_dataset(const cvae_model *model, const cvae_dataset *data,
                                int64_t *count);

/* mu of the first count images of data into mu (count x latent), in
 * evaluation mode; the workspace must exist and count be data's size. */
void cvae__encode_dataset(cvae_model *model, const cvae_dataset *data, int64_t count,
                          float *mu);

#endif
