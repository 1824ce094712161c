/* The manifold recipe's steps outside the per-batch loop: the manifold
 * clustering of the training set's codes that turns into class means and
 * pseudo-labels, and when it is due. The per-batch terms (augmentation,
 * consistency, pseudo-label cross-entropy) run in training/train.c and
 * model/loss.c. */
#ifndef CVAE_RECIPE_H
#define CVAE_RECIPE_H

#include <stdint.h>

#include "convvae.h"
#include "model/model.h"
#include "training/augment.h"

/* Whether the manifold step must run before the next epoch on a data set of
 * count images: pretraining is over and there are no pseudo-labels yet,
 * they were computed on another count, or manifold_every epochs passed. */
int cvae__recipe_step_due(const cvae_model *model, int64_t count);

/* mu of every image of data (clean, z = mu) -> cvae__manifold_cluster ->
 * the class means (responsibility-weighted means of mu per cluster; a
 * cluster without weight keeps its mean) and model->pl (the assignment if
 * its responsibility reaches the threshold, else -1). A repeated step on
 * the same images renames its clusters to agree most with the previous
 * pseudo-labels (Hungarian matching). With fewer images
 * than the neighbour graph needs (count < 2k or count <= 2), k-means on mu
 * stands in; with fewer than k images every pseudo-label is -1. The random
 * draws come from the model's RNG. Allocates per call only. */
cvae_status cvae__recipe_manifold_step(cvae_model *model, const cvae_dataset *data,
                                       int64_t count);

/* The augmentation seed: a function of the configured seed only, so the
 * transform of an image depends on (seed, epoch, index) and nothing else. */
uint64_t cvae__recipe_augment_seed(const cvae_model *model);

/* The augmentation's ranges from the model's configuration (rotation,
 * shift, scale, gain), the rest at their defaults: the one place the
 * options map to the transform, so every caller builds the same one. */
void cvae__recipe_augment_params(const cvae_model *model, cvae__augment_params *p);

#endif
