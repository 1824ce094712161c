/* Model configuration: the private layout behind cvae_config and its
 * text/JSON (de)serialisation used by checkpoints and the CLI. */
#ifndef CVAE_CONFIG_H
#define CVAE_CONFIG_H

#include <stddef.h>

#include "convvae.h"

struct cvae_config {
    int in_c, in_h, in_w;
    int branches;
    int br_layers[CVAE_MAX_BRANCHES];
    int br_filters[CVAE_MAX_BRANCHES];
    int br_kernel[CVAE_MAX_BRANCHES];
    int enc_units;
    int enc_act; /* cvae_activation */
    int dec_units;
    int latent;
    int clusters;
    int cat_units;
    int cat_input; /* cvae_category_input */
    int prior;     /* cvae_prior */
    int recon_target; /* cvae_recon_target */
    int conv_trainable;
    double lambda;
    double balance_weight; /* beta in the paper */
    double cat_weight;
    int warmup;
    int kmeans;
    int opt; /* cvae_optimizer_kind */
    double lr, beta1, beta2, eps, weight_decay, momentum;
    int batch;
    int epochs;
    unsigned long long seed;
    int threads;
    /* Training recipe and its options (see cvae_config_set_recipe). */
    int recipe; /* cvae_recipe */
    int augment;
    double aug_rotation, aug_shift, aug_scale, aug_gain;
    double consistency_weight;
    double contrast_temperature;
    int consistency_finetune;
    int pretrain;
    int manifold_neighbors;
    int embed_dim;
    double pseudo_weight, pseudo_threshold;
    int manifold_every;
    int manifold_start; /* cvae_manifold_start */
    int finetune_prior; /* cvae_prior */
    int manifold_runs;
    double manifold_overcluster;
    /* Not options: which shape-dependent options the caller set, so that
     * setting the input shape leaves them alone (CVAE__SET_* bits). */
    unsigned explicit_set;
};

#define CVAE__SET_BRANCHES 1u
#define CVAE__SET_LATENT 2u
#define CVAE__SET_LAMBDA 4u

void cvae__config_defaults(struct cvae_config *cfg);

/* Serialise every option as one flat JSON object {"name": value, ...}
 * (numbers as JSON numbers, enumerations as strings), NUL-terminated.
 * Returns CVAE_OK, or CVAE_E_INVALID_ARG if buf is too small. */
cvae_status cvae__config_to_json(const struct cvae_config *cfg, char *buf, size_t size);

/* Parse what cvae__config_to_json wrote (unknown keys rejected, missing keys
 * keep their defaults) into cfg. CVAE_E_FORMAT on malformed text. */
cvae_status cvae__config_from_json(struct cvae_config *cfg, const char *json);

#endif
