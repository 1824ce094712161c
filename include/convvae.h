/*
 * convvae.h - public API of libconvvae, image clustering with a
 * convolution-optimised variational autoencoder (after Yan 2020).
 *
 * Conventions (stable for the whole 0.x / 1.x line):
 *  - every call that can fail returns a cvae_status and writes its results
 *    through output parameters; CVAE_OK is 0;
 *  - handles are opaque; destroy functions accept NULL; constructors set
 *    *out to NULL on failure;
 *  - buffers belong to the caller; images are NCHW, float32 in [0,1] or uint8;
 *  - after a failure, cvae_last_error() gives a message for this thread;
 *  - the library never prints, exits or aborts on bad input.
 */
#ifndef CONVVAE_H
#define CONVVAE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && !defined(CVAE_STATIC)
#  ifdef CVAE_BUILDING_LIBRARY
#    define CVAE_API __declspec(dllexport)
#  else
#    define CVAE_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define CVAE_API __attribute__((visibility("default")))
#else
#  define CVAE_API
#endif

/* Marks a function kept for programs built against an older header; its
 * comment names the replacement. Define CVAE_NO_DEPRECATION_WARNINGS before
 * including this header to silence the warnings. */
#if defined(CVAE_NO_DEPRECATION_WARNINGS) || defined(CVAE_BUILDING_LIBRARY)
#  define CVAE_DEPRECATED(msg)
#elif defined(__GNUC__) || defined(__clang__)
#  define CVAE_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#  define CVAE_DEPRECATED(msg)
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define CVAE_VERSION_MAJOR 0
#define CVAE_VERSION_MINOR 1
#define CVAE_VERSION_PATCH 0
/* Single integer for compile-time comparisons: 0x00MMmmpp. */
#define CVAE_VERSION_NUMBER \
    ((CVAE_VERSION_MAJOR << 16) | (CVAE_VERSION_MINOR << 8) | CVAE_VERSION_PATCH)

/* Status codes. The values are part of the ABI: never renumbered, only
 * appended. */
typedef enum cvae_status {
    CVAE_OK = 0,
    CVAE_E_INVALID_ARG = 1, /* NULL pointer, bad size, shape mismatch, overflow */
    CVAE_E_NOMEM = 2,       /* an allocation failed */
    CVAE_E_IO = 3,          /* open/read/write/rename failed (see message) */
    CVAE_E_FORMAT = 4,      /* a file or buffer is corrupt, truncated or foreign */
    CVAE_E_NUMERIC = 5,     /* a non-finite value appeared (input or training) */
    CVAE_E_STATE = 6,       /* the call is not valid in the handle's state */
    CVAE_E_CANCELLED = 7,   /* a callback asked to stop */
    CVAE_E_UNSUPPORTED = 8, /* a valid request this build cannot do */
    CVAE_E_INTERNAL = 9     /* a bug in the library; please report it */
} cvae_status;

/* Short English description of a status. Never returns NULL; unknown values
 * give "unknown status". The string is static. */
CVAE_API const char *cvae_strerror(cvae_status status);

/* Detail of the last failure on the calling thread ("" if none yet). The
 * string is owned by the library and valid until the next failing call on
 * this thread. Successful calls do not clear it. */
CVAE_API const char *cvae_last_error(void);

/* The run-time library version, "MAJOR.MINOR.PATCH". Static string. */
CVAE_API const char *cvae_version_string(void);

/* Run-time version as CVAE_VERSION_NUMBER would give it. */
CVAE_API uint32_t cvae_version_number(void);

/* Number of threads the compute kernels (matrix products, convolutions,
 * pooling) may use, process-wide. This count and the small pool of worker
 * threads it sizes (started on first use with n > 1; after a job each
 * watches for the next one for at most half a millisecond when there are
 * at least n CPUs online, then blocks until there is work; joined when the
 * library is unloaded or the process exits) are the only
 * global state of the library. n >= 1. Set it before training, not while
 * another thread is inside the library.
 * Returns CVAE_OK or CVAE_E_INVALID_ARG (n < 1). */
CVAE_API cvae_status cvae_set_num_threads(int n);

/* Current thread count as set by cvae_set_num_threads (default 1). */
CVAE_API int cvae_get_num_threads(void);


/* ------------------------------------------------------------------------ */
/* Data sets                                                                */
/* ------------------------------------------------------------------------ */

/* An immutable set of images (count x C x H x W) with optional labels.
 * Images that came as uint8 stay uint8 in memory and are scaled by 1/255
 * per batch; float32 images must be finite and in [0, 1]. */
typedef struct cvae_dataset cvae_dataset;

/* Read an IDX image file (magic 0x00000803, u8, dims N x H x W, or 4-D
 * N x C x H x W with magic 0x00000804) and, if labels_path is not NULL, an IDX
 * label file (0x00000801, u8, N). Raw or gzip-compressed (detected from the
 * content). Headers, dimensions, file length and label count are validated
 * before anything large is allocated.
 * Returns CVAE_OK, CVAE_E_INVALID_ARG, CVAE_E_IO (cannot open/read),
 * CVAE_E_FORMAT (bad magic, truncated, count mismatch, oversize dims),
 * CVAE_E_NOMEM. On failure *out is NULL. Destroy with cvae_dataset_destroy. */
CVAE_API cvae_status cvae_dataset_load_idx(const char *images_path, const char *labels_path,
                                           cvae_dataset **out);

/* Copy count images of channels x height x width uint8 pixels (NCHW) and,
 * if labels is not NULL, count labels (each >= 0) into a new data set. */
CVAE_API cvae_status cvae_dataset_from_u8(const uint8_t *pixels, int64_t count, int channels,
                                          int height, int width, const int32_t *labels,
                                          cvae_dataset **out);

/* As cvae_dataset_from_u8 for float32 pixels in [0, 1]; NaN, Inf or values
 * outside [0, 1] give CVAE_E_NUMERIC / CVAE_E_INVALID_ARG naming the index. */
CVAE_API cvae_status cvae_dataset_from_f32(const float *pixels, int64_t count, int channels,
                                           int height, int width, const int32_t *labels,
                                           cvae_dataset **out);

/* A new data set holding the first n images (and labels) of src, 1 <= n <= count. */
CVAE_API cvae_status cvae_dataset_subset_first(const cvae_dataset *src, int64_t n,
                                               cvae_dataset **out);

/* A new data set of src's images at the given indices (repeats allowed). */
CVAE_API cvae_status cvae_dataset_subset_indices(const cvae_dataset *src, const int64_t *indices,
                                                 int64_t n, cvae_dataset **out);

/* Free a data set. NULL is a no-op. */
CVAE_API void cvae_dataset_destroy(cvae_dataset *ds);

/* Shape of a data set; any output pointer may be NULL. */
CVAE_API cvae_status cvae_dataset_shape(const cvae_dataset *ds, int64_t *count, int *channels,
                                        int *height, int *width);

/* *has_labels = 1 if the data set carries labels, else 0. */
CVAE_API cvae_status cvae_dataset_has_labels(const cvae_dataset *ds, int *has_labels);

/* Copy all labels into out[count]; CVAE_E_STATE if the set has none,
 * CVAE_E_INVALID_ARG if count differs from the data set's. */
CVAE_API cvae_status cvae_dataset_labels(const cvae_dataset *ds, int32_t *out, int64_t count);

/* Copy images [start, start+count) as float32 in [0,1] (NCHW) into out, which
 * holds count*C*H*W floats. */
CVAE_API cvae_status cvae_dataset_images_f32(const cvae_dataset *ds, int64_t start,
                                             int64_t count, float *out);

/* ------------------------------------------------------------------------ */
/* Clustering metrics                                                       */
/* ------------------------------------------------------------------------ */

/* Compare a clustering with ground-truth labels, n >= 1 items; labels and
 * clusters are integers in [0, 65535]. Outputs (any may be NULL):
 *  acc     accuracy under the best one-to-one cluster-to-label mapping
 *          (Hungarian algorithm); clusters beyond the label count map to
 *          nothing and count as errors;
 *  purity  share of items whose cluster's majority label is their label;
 *  nmi     normalised mutual information, arithmetic-mean normalisation
 *          (scikit-learn's default); 1 if both labellings are constant;
 *  ari     adjusted Rand index.
 * Returns CVAE_OK, CVAE_E_INVALID_ARG (NULL, n < 1, value out of range) or
 * CVAE_E_NOMEM. */
CVAE_API cvae_status cvae_cluster_metrics(const int32_t *labels, const int32_t *clusters,
                                          int64_t n, double *acc, double *purity, double *nmi,
                                          double *ari);


/* ------------------------------------------------------------------------ */
/* Model configuration                                                      */
/* ------------------------------------------------------------------------ */

/* Enumerations used by configuration options. Values are pinned. */
typedef enum cvae_prior {
    CVAE_PRIOR_STANDARD = 0, /* N(0, I): the paper's literal KL (eq. 3) */
    CVAE_PRIOR_MIXTURE = 1   /* N(M_y, I) weighted by q(y|x), learned means M */
} cvae_prior;

typedef enum cvae_activation {
    CVAE_ACT_RELU = 0,
    CVAE_ACT_IDENTITY = 1
} cvae_activation;

typedef enum cvae_category_input {
    CVAE_CATEGORY_INPUT_Z = 0,       /* sampled z in training, mu at inference */
    CVAE_CATEGORY_INPUT_FEATURES = 1 /* the concatenated conv features */
} cvae_category_input;

typedef enum cvae_recon_target {
    CVAE_RECON_IMAGE = 0,   /* x_hat from the image decoder against the image */
    CVAE_RECON_FEATURES = 1 /* decoder output against the (fixed) conv features: eq. 2 literally */
} cvae_recon_target;

typedef enum cvae_optimizer_kind {
    CVAE_OPTIMIZER_ADAM = 0,
    CVAE_OPTIMIZER_SGD = 1
} cvae_optimizer_kind;

/* How cvae_model_train trains (see cvae_config_set_recipe). */
typedef enum cvae_recipe {
    CVAE_RECIPE_PAPER = 0,   /* the paper's loss from the first epoch (Yan 2020) */
    CVAE_RECIPE_MANIFOLD = 1 /* pretraining, manifold clustering of the codes, fine-tuning */
} cvae_recipe;

/* Where the manifold recipe's embedding starts (cvae_config_set_manifold_start). */
typedef enum cvae_manifold_start {
    CVAE_MANIFOLD_START_RANDOM = 0,  /* uniform random points */
    CVAE_MANIFOLD_START_SPECTRAL = 1 /* eigenvectors of the neighbour graph's Laplacian */
} cvae_manifold_start;

/* The most branches / clusters a model may have. */
#define CVAE_MAX_BRANCHES 4
#define CVAE_MAX_CLUSTERS 1024

/* An opaque, copyable bag of model and training options. A new config holds
 * the paper's best MNIST network trained by the manifold recipe
 * (cvae_config_set_recipe); each setter below gives its default.
 * Setters validate their argument and return CVAE_E_INVALID_ARG (config
 * unchanged) when it is out of range; cross-option checks (e.g. image size
 * divisible by 2^branches) happen in cvae_model_create. */
typedef struct cvae_config cvae_config;

/* Create a config with defaults. *out is NULL on failure (CVAE_E_NOMEM). */
CVAE_API cvae_status cvae_config_create(cvae_config **out);
/* Deep copy. */
CVAE_API cvae_status cvae_config_clone(const cvae_config *cfg, cvae_config **out);
/* Free. NULL is a no-op. */
CVAE_API void cvae_config_destroy(cvae_config *cfg);

/* Set / get any option by its name, as text ("latent_dim", "50"). Names and
 * accepted values are the CLI's flags without the leading "--" (dashes or
 * underscores), listed by cvae_config_option_name. Enumerations take their
 * names ("mixture", "relu", "features", "adam"). cvae_config_get writes a
 * NUL-terminated string of at most size bytes (CVAE_E_INVALID_ARG if it does
 * not fit). Unknown names: CVAE_E_INVALID_ARG. */
CVAE_API cvae_status cvae_config_set(cvae_config *cfg, const char *name, const char *value);
CVAE_API cvae_status cvae_config_get(const cvae_config *cfg, const char *name, char *value,
                                     size_t size);
/* Name of option index i (0-based), or NULL past the last: for listing. */
CVAE_API const char *cvae_config_option_name(int index);
/* One-line description of option index i, or NULL past the last. */
CVAE_API const char *cvae_config_option_help(int index);

/* Typed setters and getters, one pair per option. Ranges in brackets.
 * Input image: channels [1,64], height/width [1,4096] (default 1x28x28).
 * Setting the shape (here or by the options input_channels, input_height,
 * input_width) also picks the network that fits it, unless the caller set
 * those options itself (before or after):
 *  - branches: the most, up to 2, that keep the last feature map at least
 *    4 x 4 with the side divisible by 2^branches (8x8 -> 1, 16x16, 28x28
 *    and 32x32 -> 2; 6x6 -> 0, a plain VAE);
 *  - latent_dim: C*H*W / 15 within [10, 50] (8x8 grey -> 10, 16x16 grey ->
 *    17, 28x28 grey and 32x32 RGB -> 50);
 *  - lambda: 2.5 * 784 / (H*W), so the reconstruction term (a sum over
 *    pixels) keeps its weight against the KL term (8x8 -> 30.625, 16x16 ->
 *    7.656, 28x28 -> 2.5, 32x32 -> 1.914, grey or colour alike). */
CVAE_API cvae_status cvae_config_set_input_shape(cvae_config *cfg, int channels, int height,
                                                 int width);
CVAE_API cvae_status cvae_config_get_input_shape(const cvae_config *cfg, int *channels,
                                                 int *height, int *width);
/* Convolution branches [0, CVAE_MAX_BRANCHES] (option "branches", default 2;
 * 0 = plain VAE on flattened pixels). Every branch keeps its own settings
 * whatever the count; branches 3 and 4 start as 1 layer, 32 filters, 5x5. */
CVAE_API cvae_status cvae_config_set_branches(cvae_config *cfg, int branches);
CVAE_API cvae_status cvae_config_get_branches(const cvae_config *cfg, int *branches);
/* Branch number b, 1 to CVAE_MAX_BRANCHES, numbered as everywhere else (the
 * options branch1_layers .. branch4_kernel, checkpoint tensors branch1.*,
 * messages): conv layers [1,16], filters [1,1024], odd kernel size [1,15].
 * Defaults: branch 1 = 1 layer, 16 filters, 3x3; branch 2 = 1 layer, 32
 * filters, 5x5. Getter outputs may be NULL. */
CVAE_API cvae_status cvae_config_set_conv_branch(cvae_config *cfg, int b, int layers,
                                                 int filters, int kernel);
CVAE_API cvae_status cvae_config_get_conv_branch(const cvae_config *cfg, int b, int *layers,
                                                 int *filters, int *kernel);
/* Deprecated: cvae_config_set_branches / cvae_config_get_branches under
 * their older name. */
CVAE_API cvae_status cvae_config_set_num_branches(cvae_config *cfg, int branches)
    CVAE_DEPRECATED("use cvae_config_set_branches");
CVAE_API cvae_status cvae_config_get_num_branches(const cvae_config *cfg, int *branches)
    CVAE_DEPRECATED("use cvae_config_get_branches");
/* Deprecated: as cvae_config_set_conv_branch / cvae_config_get_conv_branch
 * with the branch counted from 0 (index = b - 1). */
CVAE_API cvae_status cvae_config_set_branch(cvae_config *cfg, int index, int layers, int filters,
                                            int kernel)
    CVAE_DEPRECATED("use cvae_config_set_conv_branch (branches numbered from 1)");
CVAE_API cvae_status cvae_config_get_branch(const cvae_config *cfg, int index, int *layers,
                                            int *filters, int *kernel)
    CVAE_DEPRECATED("use cvae_config_get_conv_branch (branches numbered from 1)");
/* Encoder hidden units m [1,65536] (default 512) and activation (ReLU). */
CVAE_API cvae_status cvae_config_set_encoder_units(cvae_config *cfg, int units);
CVAE_API cvae_status cvae_config_get_encoder_units(const cvae_config *cfg, int *units);
CVAE_API cvae_status cvae_config_set_encoder_activation(cvae_config *cfg, cvae_activation act);
CVAE_API cvae_status cvae_config_get_encoder_activation(const cvae_config *cfg,
                                                        cvae_activation *act);
/* Decoder hidden units [1,65536] (default 512). */
CVAE_API cvae_status cvae_config_set_decoder_units(cvae_config *cfg, int units);
CVAE_API cvae_status cvae_config_get_decoder_units(const cvae_config *cfg, int *units);
/* Latent dimension s [1,4096] (default 50). */
CVAE_API cvae_status cvae_config_set_latent_dim(cvae_config *cfg, int dim);
CVAE_API cvae_status cvae_config_get_latent_dim(const cvae_config *cfg, int *dim);
/* Number of clusters k [2, CVAE_MAX_CLUSTERS] (default 10). */
CVAE_API cvae_status cvae_config_set_clusters(cvae_config *cfg, int k);
CVAE_API cvae_status cvae_config_get_clusters(const cvae_config *cfg, int *k);
/* Category head hidden units [1,65536] (default 512) and input (z). */
CVAE_API cvae_status cvae_config_set_category_units(cvae_config *cfg, int units);
CVAE_API cvae_status cvae_config_get_category_units(const cvae_config *cfg, int *units);
CVAE_API cvae_status cvae_config_set_category_input(cvae_config *cfg, cvae_category_input in);
CVAE_API cvae_status cvae_config_get_category_input(const cvae_config *cfg,
                                                    cvae_category_input *in);
/* Latent prior (default mixture). */
CVAE_API cvae_status cvae_config_set_prior(cvae_config *cfg, cvae_prior prior);
CVAE_API cvae_status cvae_config_get_prior(const cvae_config *cfg, cvae_prior *prior);
/* What the reconstruction loss compares (default CVAE_RECON_IMAGE). With
 * CVAE_RECON_FEATURES the decoder outputs all D concatenated-feature values
 * and is trained against the conv features, which that loss does not train;
 * the image decoder then gets no training signal (an ablation of the paper's
 * literal eq. 2; needs branches >= 1). */
CVAE_API cvae_status cvae_config_set_recon_target(cvae_config *cfg, cvae_recon_target target);
CVAE_API cvae_status cvae_config_get_recon_target(const cvae_config *cfg,
                                                  cvae_recon_target *target);
/* Train the convolution branches (1, default) or keep their random filters
 * fixed (0: the paper's algorithm step 1 read literally). */
CVAE_API cvae_status cvae_config_set_conv_trainable(cvae_config *cfg, int trainable);
CVAE_API cvae_status cvae_config_get_conv_trainable(const cvae_config *cfg, int *trainable);
/* Loss weights: lambda on the reconstruction term [0,1e6] (default 2.5;
 * see cvae_config_set_input_shape),
 * the balance weight (beta in the paper) on the batch balance term [0,1e6]
 * (option "balance_weight", default 1), and the weight of the
 * per-image category term sum_y q log q [-1e6,1e6] (default 1; a positive
 * weight spreads each q(y|x), a negative one sharpens it). */
CVAE_API cvae_status cvae_config_set_lambda(cvae_config *cfg, double lambda);
CVAE_API cvae_status cvae_config_get_lambda(const cvae_config *cfg, double *lambda);
CVAE_API cvae_status cvae_config_set_balance_weight(cvae_config *cfg, double weight);
CVAE_API cvae_status cvae_config_get_balance_weight(const cvae_config *cfg, double *weight);
CVAE_API cvae_status cvae_config_set_category_weight(cvae_config *cfg, double weight);
CVAE_API cvae_status cvae_config_get_category_weight(const cvae_config *cfg, double *weight);
/* Warm-up epochs [0,10000] (default 0) trained with the standard prior
 * before the mixture prior starts, and whether the class means are then
 * initialised by k-means++ on the training set's mu (1) or left at their
 * small random start (0, default). */
CVAE_API cvae_status cvae_config_set_warmup_epochs(cvae_config *cfg, int epochs);
CVAE_API cvae_status cvae_config_get_warmup_epochs(const cvae_config *cfg, int *epochs);
CVAE_API cvae_status cvae_config_set_kmeans_init(cvae_config *cfg, int enable);
CVAE_API cvae_status cvae_config_get_kmeans_init(const cvae_config *cfg, int *enable);
/* Training recipe (option "recipe", default CVAE_RECIPE_MANIFOLD; a
 * checkpoint written before this option existed loads as
 * CVAE_RECIPE_PAPER, the recipe it was trained with).
 *  - CVAE_RECIPE_PAPER: the loss above from the first epoch, with the
 *    warm-up / k-means options; the options below are not used.
 *  - CVAE_RECIPE_MANIFOLD: the first pretrain_epochs epochs train the VAE
 *    with the standard prior on randomly transformed images (rotation,
 *    shift, scale; the transform of an image is a function of the seed, the
 *    epoch and its index in the data set, not of the batch order), plus
 *    the consistency term: by default (contrast_temperature 4) its
 *    contrastive form, which pulls each image's transformed code to its
 *    clean code and pushes it from the batch's other images' codes, at
 *    consistency_weight (10); at temperature 0 the plain
 *    consistency_weight * |mu(transformed) - mu(clean)|^2. Its gradient
 *    reaches both codes (a step with it also runs the clean images
 *    forward and back through the encoder, about 1.8x the time of one
 *    without; with the clean code held fixed, shifts that push content
 *    out of the frame made the codes grow without bound). Then the codes
 *    mu of the whole training set are
 *    clustered on their neighbour graph (exact k nearest neighbours, a
 *    UMAP-style embedding in embedding_dim dimensions, a full-covariance
 *    Gaussian mixture, with manifold_overcluster times the clusters as
 *    components merged back to the clusters by modularity; manifold_runs
 *    embeddings and mixtures, keeping the partition of highest modularity
 *    on the graph): the class means M become the responsibility-
 *    weighted means of mu per cluster, and every image whose responsibility
 *    reaches pseudo_label_threshold keeps its cluster as a pseudo-label
 *    (held by the model and its checkpoints, redone when training data of
 *    another size is given). The remaining epochs train with the
 *    fine-tuning prior (finetune_prior: the standard one by default) plus
 *    pseudo_label_weight times the category head's cross-entropy on the
 *    pseudo-labels, still on transformed images, so that cvae_model_predict
 *    on new images carries the clustering; the consistency term is off in
 *    these epochs unless consistency_finetune is 1. With manifold_every
 *    n > 0 (0 by default: the step runs once) the step runs again every n
 *    fine-tuning epochs on the codes the fine-tuning has shaped, keeping
 *    the clusters' names where they agree with the last pseudo-labels.
 *    warmup_epochs and kmeans_init are not used. */
CVAE_API cvae_status cvae_config_set_recipe(cvae_config *cfg, cvae_recipe recipe);
CVAE_API cvae_status cvae_config_get_recipe(const cvae_config *cfg, cvae_recipe *recipe);
/* Augmentation of the manifold recipe: on (1, default) or off (0), and its
 * ranges: rotation [0,180] degrees (10), shift [0,0.5] of the side (0.1),
 * scale change [0,0.5] (0.1). Getter outputs may be NULL. */
CVAE_API cvae_status cvae_config_set_augment(cvae_config *cfg, int enable);
CVAE_API cvae_status cvae_config_get_augment(const cvae_config *cfg, int *enable);
CVAE_API cvae_status cvae_config_set_augment_ranges(cvae_config *cfg, double rotation,
                                                    double shift, double scale);
CVAE_API cvae_status cvae_config_get_augment_ranges(const cvae_config *cfg, double *rotation,
                                                    double *shift, double *scale);
/* Intensity gain of the augmentation, [0,0.9] (0.3): each transformed
 * image's values are multiplied by a factor uniform in [1 - gain,
 * 1 + gain], a value lifted above 1 stopping at 1; 0 turns it off. A
 * checkpoint from before this option loads with 0, the value it was
 * trained with. */
CVAE_API cvae_status cvae_config_set_augment_gain(cvae_config *cfg, double gain);
CVAE_API cvae_status cvae_config_get_augment_gain(const cvae_config *cfg, double *gain);
/* Manifold recipe: consistency weight [0,1e6] (10), pretraining epochs
 * [0,100000] (35), neighbours per code counting itself [2,1000] (20),
 * embedding dimension [0,256] (0 = the cluster count), pseudo-label
 * cross-entropy weight [0,1e6] (5: with 1, on MNIST, the head ended less
 * accurate on the training images than the pseudo-labels it learnt from,
 * 0.959 against 0.973, so it had not fitted them) and responsibility
 * threshold [0,1] (0.9), manifold step repeated every n fine-tuning epochs
 * [0,100000] (0 = once: on the contrastive term's Fashion-MNIST codes a
 * repeated step re-drew the partition and lost 3.6 points; without the
 * term, repeating it every 3 epochs had lifted the 8x8 and 16x16 image
 * sets of the accuracy test by 6 and 2 points). */
CVAE_API cvae_status cvae_config_set_consistency_weight(cvae_config *cfg, double weight);
CVAE_API cvae_status cvae_config_get_consistency_weight(const cvae_config *cfg, double *weight);
CVAE_API cvae_status cvae_config_set_pretrain_epochs(cvae_config *cfg, int epochs);
CVAE_API cvae_status cvae_config_get_pretrain_epochs(const cvae_config *cfg, int *epochs);
CVAE_API cvae_status cvae_config_set_manifold_neighbors(cvae_config *cfg, int neighbors);
CVAE_API cvae_status cvae_config_get_manifold_neighbors(const cvae_config *cfg, int *neighbors);
CVAE_API cvae_status cvae_config_set_embedding_dim(cvae_config *cfg, int dim);
CVAE_API cvae_status cvae_config_get_embedding_dim(const cvae_config *cfg, int *dim);
CVAE_API cvae_status cvae_config_set_pseudo_label_weight(cvae_config *cfg, double weight);
CVAE_API cvae_status cvae_config_get_pseudo_label_weight(const cvae_config *cfg, double *weight);
CVAE_API cvae_status cvae_config_set_pseudo_label_threshold(cvae_config *cfg, double threshold);
CVAE_API cvae_status cvae_config_get_pseudo_label_threshold(const cvae_config *cfg,
                                                            double *threshold);
CVAE_API cvae_status cvae_config_set_manifold_every(cvae_config *cfg, int epochs);
CVAE_API cvae_status cvae_config_get_manifold_every(const cvae_config *cfg, int *epochs);
/* The consistency term's form: temperature [0,1e6] (4). At 0 the term is
 * consistency_weight * |mu(T x) - mu(x)|^2. Above 0 it is contrastive:
 * with logits -|mu(T x_i) - mu(x_j)|^2 / temperature between every
 * transformed image i and clean image j of the batch, consistency_weight
 * times the mean of the cross-entropies that pick each image's own pair,
 * by rows and by columns (symmetric InfoNCE). It pulls an image's two codes
 * together as the plain term at weight consistency_weight / temperature
 * does, and pushes the other images' codes away, so the codes cannot
 * shrink together. In a step computed in parts
 * (cvae_model_set_micro_batch) or over several processes, the other images
 * are those of the same part. */
CVAE_API cvae_status cvae_config_set_contrast_temperature(cvae_config *cfg, double temperature);
CVAE_API cvae_status cvae_config_get_contrast_temperature(const cvae_config *cfg,
                                                          double *temperature);
/* Whether the consistency term stays on in the fine-tuning epochs after the
 * manifold step (1) or shapes the codes in pretraining only (0, default;
 * those epochs then cost what a step without the term does: kept there, the
 * contrastive term took MNIST from 0.946 after the step down to 0.919). */
CVAE_API cvae_status cvae_config_set_consistency_finetune(cvae_config *cfg, int enable);
CVAE_API cvae_status cvae_config_get_consistency_finetune(const cvae_config *cfg, int *enable);
/* Start of the manifold step's embedding (option "manifold_start", default
 * CVAE_MANIFOLD_START_RANDOM). The spectral start (ARPACK's Lanczos solver
 * on the normalised graph Laplacian) is UMAP's own default; on MNIST and
 * Fashion-MNIST codes the two end at the same accuracy within seed noise,
 * and the random one needs no eigensolver time. A graph in several pieces
 * falls back to the random start. */
/* How many embeddings and mixtures the manifold step fits, each from its
 * own seed, on the one neighbour graph (option "manifold_runs", [1,64],
 * default 4): it keeps the partition with the highest modularity on that
 * graph (the fraction of edge weight inside clusters less what random
 * edges with the same degrees would put there). A run's stochastic layout
 * can merge two groups and split a third; on one MNIST model's codes half
 * of 16 single runs did (ACC 0.83-0.86 against 0.971), and every such
 * partition had a lower modularity than every correct one. On six
 * Fashion-MNIST models 16 runs instead of 4 raised the test ACC (mean
 * 0.664 to 0.690) and lowered the NMI (median 0.716 to 0.695); scored on
 * the training labels over other draws, 16 were no better on average.
 * Each run costs about a third of a minute of CPU on 60,000 codes. A
 * checkpoint written before this option existed loads with 1. */
CVAE_API cvae_status cvae_config_set_manifold_runs(cvae_config *cfg, int runs);
CVAE_API cvae_status cvae_config_get_manifold_runs(const cvae_config *cfg, int *runs);
/* Mixture components of the manifold step per cluster (option
 * "manifold_overcluster", [1,4], default 1.3; 1: as many components as
 * clusters, no merge). Above 1, each run fits ceil(overcluster * clusters)
 * components (at most half the images) in as many embedding dimensions
 * (unless embedding_dim is set) and then merges them, two at a time, by
 * the largest gain in modularity on the neighbour graph until the cluster
 * count is left; a cluster's responsibility is the sum of its components'.
 * With exactly as many components as classes a mixture tends to cut a large
 * class in two and leave a small or overlapping one without a component;
 * spare components leave room for that class, and the halves of the cut
 * class, densely linked on the graph, are joined again. On three
 * Fashion-MNIST seeds 1.3 raised the test ACC from 0.674, 0.646, 0.673 to
 * 0.708, 0.665, 0.717 and the ARI on each, and lowered the NMI by about
 * 1 point (median 0.716 to 0.707). A checkpoint written before this option
 * existed loads with 1. */
CVAE_API cvae_status cvae_config_set_manifold_overcluster(cvae_config *cfg, double ratio);
CVAE_API cvae_status cvae_config_get_manifold_overcluster(const cvae_config *cfg, double *ratio);
CVAE_API cvae_status cvae_config_set_manifold_start(cvae_config *cfg, cvae_manifold_start start);
CVAE_API cvae_status cvae_config_get_manifold_start(const cvae_config *cfg,
                                                    cvae_manifold_start *start);
/* Prior of the manifold recipe's fine-tuning epochs (option
 * "finetune_prior"): CVAE_PRIOR_STANDARD (default: the codes keep the
 * geometry pretraining gave them and the category head learns the
 * pseudo-labels; on MNIST this carries the manifold step's partition to
 * new images better than the mixture prior does) or CVAE_PRIOR_MIXTURE
 * (the mixture prior with the class means the manifold step set, as the
 * paper's loss; only if the "prior" option is also the mixture). A
 * checkpoint written before this option existed loads as
 * CVAE_PRIOR_MIXTURE, the prior it was fine-tuned with. The "prior" option
 * itself is the paper recipe's. */
CVAE_API cvae_status cvae_config_set_finetune_prior(cvae_config *cfg, cvae_prior prior);
CVAE_API cvae_status cvae_config_get_finetune_prior(const cvae_config *cfg, cvae_prior *prior);
/* Optimizer: kind (Adam), learning rate [1e-12,10] (1e-3), Adam betas
 * [0,0.999999] and [0,0.999999999] (0.9, 0.999), eps [1e-30,1] (1e-8), weight
 * decay [0,1] (0), SGD momentum [0,0.999999] (0.9). */
CVAE_API cvae_status cvae_config_set_optimizer(cvae_config *cfg, cvae_optimizer_kind kind);
CVAE_API cvae_status cvae_config_get_optimizer(const cvae_config *cfg, cvae_optimizer_kind *kind);
CVAE_API cvae_status cvae_config_set_learning_rate(cvae_config *cfg, double lr);
CVAE_API cvae_status cvae_config_get_learning_rate(const cvae_config *cfg, double *lr);
CVAE_API cvae_status cvae_config_set_adam_betas(cvae_config *cfg, double beta1, double beta2);
CVAE_API cvae_status cvae_config_get_adam_betas(const cvae_config *cfg, double *beta1,
                                                double *beta2);
CVAE_API cvae_status cvae_config_set_adam_eps(cvae_config *cfg, double eps);
CVAE_API cvae_status cvae_config_get_adam_eps(const cvae_config *cfg, double *eps);
CVAE_API cvae_status cvae_config_set_weight_decay(cvae_config *cfg, double decay);
CVAE_API cvae_status cvae_config_get_weight_decay(const cvae_config *cfg, double *decay);
CVAE_API cvae_status cvae_config_set_momentum(cvae_config *cfg, double momentum);
CVAE_API cvae_status cvae_config_get_momentum(const cvae_config *cfg, double *momentum);
/* Batch size [1,65536] (100), epochs [1,100000] (50), seed (1), threads
 * [1,1024] (1; applied by cvae_model_train through cvae_set_num_threads). */
CVAE_API cvae_status cvae_config_set_batch_size(cvae_config *cfg, int batch);
CVAE_API cvae_status cvae_config_get_batch_size(const cvae_config *cfg, int *batch);
CVAE_API cvae_status cvae_config_set_epochs(cvae_config *cfg, int epochs);
CVAE_API cvae_status cvae_config_get_epochs(const cvae_config *cfg, int *epochs);
CVAE_API cvae_status cvae_config_set_seed(cvae_config *cfg, uint64_t seed);
CVAE_API cvae_status cvae_config_get_seed(const cvae_config *cfg, uint64_t *seed);
CVAE_API cvae_status cvae_config_set_threads(cvae_config *cfg, int threads);
CVAE_API cvae_status cvae_config_get_threads(const cvae_config *cfg, int *threads);


/* ------------------------------------------------------------------------ */
/* Optimizers                                                               */
/* ------------------------------------------------------------------------ */

/* Adam or SGD with momentum. The state (moments per parameter) is allocated
 * when first used with a model and can then be used with any model of the
 * same parameter layout (CVAE_E_INVALID_ARG otherwise). */
typedef struct cvae_optimizer cvae_optimizer;

/* Adam: 0 < lr <= 10, 0 <= beta1, beta2 < 1, 0 < eps <= 1, 0 <= weight_decay
 * <= 1 (L2 added to the gradient). CVAE_E_INVALID_ARG otherwise. */
CVAE_API cvae_status cvae_optimizer_create_adam(double lr, double beta1, double beta2, double eps,
                                                double weight_decay, cvae_optimizer **out);
/* SGD: 0 < lr <= 10, 0 <= momentum < 1, 0 <= weight_decay <= 1. */
CVAE_API cvae_status cvae_optimizer_create_sgd(double lr, double momentum, double weight_decay,
                                               cvae_optimizer **out);
/* An optimizer as a config describes it (optimizer, learning_rate, ...). */
CVAE_API cvae_status cvae_optimizer_create_from_config(const cvae_config *cfg,
                                                       cvae_optimizer **out);
/* Change the learning rate (e.g. for a schedule); lr > 0. */
CVAE_API cvae_status cvae_optimizer_set_learning_rate(cvae_optimizer *opt, double lr);
/* Free. NULL is a no-op. */
CVAE_API void cvae_optimizer_destroy(cvae_optimizer *opt);

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct cvae_model cvae_model;

/* Indices into the loss arrays passed to progress callbacks and returned by
 * cvae_model_loss. Append-only. */
typedef enum cvae_loss_term {
    CVAE_LOSS_TOTAL = 0,     /* lambda*recon + kl + category + balance (+ the manifold
                                recipe's consistency and pseudo-label terms) */
    CVAE_LOSS_RECON = 1,     /* 0.5 * sum of squared pixel errors (unweighted) */
    CVAE_LOSS_KL = 2,        /* KL term of the active prior */
    CVAE_LOSS_CATEGORY = 3,  /* weighted sum_y q log q */
    CVAE_LOSS_BALANCE = 4,   /* beta * sum_y qbar log qbar */
    CVAE_LOSS_COUNT = 5
} cvae_loss_term;

/* Progress callback, called after every mini-batch: epoch is 0-based and
 * counts all epochs the model has trained, batch runs 1..batches, losses[]
 * (CVAE_LOSS_COUNT values) are running means over the epoch so far. Return
 * non-zero to stop training after this batch (the model stays consistent:
 * it can be saved, evaluated and trained further; see cvae_model_train for
 * how the stopped epoch goes on). */
typedef int (*cvae_progress_fn)(void *user, int epoch, int64_t batch, int64_t batches,
                                const double *losses, int num_losses);

/* Build a model for a configuration (the config is copied; the caller keeps
 * ownership). Weights are initialised from the config's seed (He uniform
 * before ReLU, Glorot uniform elsewhere). Workspaces for the configured
 * batch size are allocated here, once.
 * Returns CVAE_OK, CVAE_E_INVALID_ARG (inconsistent options, e.g. image size
 * not divisible by 2^branches, message says which), CVAE_E_NOMEM. */
CVAE_API cvae_status cvae_model_create(const cvae_config *cfg, cvae_model **out);
/* Free. NULL is a no-op. */
CVAE_API void cvae_model_destroy(cvae_model *model);

/* A copy of the model's configuration (free with cvae_config_destroy). */
CVAE_API cvae_status cvae_model_get_config(const cvae_model *model, cvae_config **out);
/* Number of trainable scalars. */
CVAE_API cvae_status cvae_model_num_params(const cvae_model *model, int64_t *count);
/* Epochs trained so far (persists in checkpoints). */
CVAE_API cvae_status cvae_model_epochs_done(const cvae_model *model, int *epochs);
/* Whether the next cvae_model_train call on data starts with the manifold
 * recipe's clustering step (*due 1) or not (0): pretraining is over and
 * the model has no pseudo-labels for a data set of this size yet, or
 * manifold_every epochs passed since the last step. The step encodes the
 * whole data set and clusters the codes, which takes about as long as an
 * epoch: a caller can say so before it starts. */
CVAE_API cvae_status cvae_model_manifold_step_due(const cvae_model *model,
                                                  const cvae_dataset *data, int *due);

/* Train for `epochs` more epochs on data (images must match the configured
 * input shape; labels are not used), reshuffling every epoch (an order
 * keyed by the seed and the epoch number; the sampling noise is keyed by
 * the seed, the epoch and the image's index). opt may be NULL: the model then uses its own optimizer built
 * from its config, kept across calls; cvae_model_save stores its state, so
 * training a loaded model continues exactly as the saved one would have
 * (train 2 epochs = train 1, save, load, train 1, bit for bit). A caller's
 * opt is the caller's to keep: its state is in no checkpoint. The warm-up
 * schedule and k-means initialisation follow the model's epoch count.
 * progress may be NULL. An epoch stopped part way (by the callback, or by
 * CVAE_E_NUMERIC) does not count in the epoch count; the next call on data
 * of the same size finishes it first (its remaining batches in the same
 * order, as one of that call's epochs; this state is saved with the model
 * too), so stopping and going on trains exactly as not stopping. On data of
 * another size it is dropped and a new epoch starts. A stop after an
 * epoch's last batch completes that epoch.
 * Returns CVAE_OK; CVAE_E_CANCELLED if the callback stopped training;
 * CVAE_E_NUMERIC if a loss or gradient became non-finite (the weights are
 * those before the failing step); CVAE_E_INVALID_ARG for shape mismatch. */
CVAE_API cvae_status cvae_model_train(cvae_model *model, const cvae_dataset *data, int epochs,
                                      cvae_optimizer *opt, cvae_progress_fn progress, void *user);

/* Steps taken by the model's own optimizer (the one cvae_model_train uses
 * when opt is NULL), including those before a save it was loaded from; 0 if
 * it has none. */
CVAE_API cvae_status cvae_model_optimizer_steps(const cvae_model *model, int64_t *steps);
/* Free the model's own optimizer and its state. Later saves hold the
 * weights only (a third of the size with Adam: for inference or
 * distribution), and later training with opt = NULL starts a fresh
 * optimizer. Returns CVAE_OK. */
CVAE_API cvae_status cvae_model_clear_optimizer(cvae_model *model);

/* Mean loss terms over a data set without training (u = mu, no sampling
 * noise: deterministic). losses holds CVAE_LOSS_COUNT values. */
CVAE_API cvae_status cvae_model_loss(cvae_model *model, const cvae_dataset *data,
                                     double *losses, int num_losses);

/* Inference on caller buffers of n images (n*C*H*W floats in [0,1], finite;
 * CVAE_E_NUMERIC names the first non-finite value). Deterministic. */
/* mu and logvar: n*s floats each (either may be NULL). */
CVAE_API cvae_status cvae_model_encode(cvae_model *model, const float *images, int64_t n,
                                       float *mu, float *logvar);
/* Cluster index in [0,k) per image: argmax_y q(y | mu). */
CVAE_API cvae_status cvae_model_predict(cvae_model *model, const float *images, int64_t n,
                                        int32_t *clusters);
/* q(y | mu): n*k floats, rows sum to 1. */
CVAE_API cvae_status cvae_model_predict_proba(cvae_model *model, const float *images, int64_t n,
                                              float *proba);
/* Decoded mean images for mu(x): n*C*H*W floats. */
CVAE_API cvae_status cvae_model_reconstruct(cvae_model *model, const float *images, int64_t n,
                                            float *out);
/* As above for a whole data set: clusters[count] and, if proba is not
 * NULL, proba[count*k]. */
CVAE_API cvae_status cvae_model_predict_dataset(cvae_model *model, const cvae_dataset *data,
                                                int32_t *clusters, float *proba);
/* Cluster metrics of the model's predictions against the data set's labels
 * (CVAE_E_STATE if it has none). Outputs may be NULL; see
 * cvae_cluster_metrics. */
CVAE_API cvae_status cvae_model_evaluate(cvae_model *model, const cvae_dataset *data,
                                         double *acc, double *purity, double *nmi, double *ari);
/* Generate count images of cluster y in [0,k): decode z ~ N(M_y, I) when the
 * model has class means (the paper recipe's mixture prior, or a manifold
 * recipe model after its manifold step) or N(0, I) otherwise, seeded (the model's own RNG is not
 * touched, so generation does not change training). out: count*C*H*W. */
CVAE_API cvae_status cvae_model_generate(cvae_model *model, int cluster, int64_t count,
                                         uint64_t seed, float *out);

/* Save to a safetensors file: every parameter as an F32 tensor, and in
 * __metadata__ the configuration (JSON), the library version, the epoch
 * count, the RNG state and the format name; if the model's own optimizer
 * has state (see cvae_model_train), its moments and step count too
 * (docs/format.md; cvae_model_clear_optimizer drops them), and a CRC-32 of
 * every tensor. Atomic: written to a temporary file in the same directory,
 * fsynced and renamed, so a failed save leaves any previous file intact.
 * Only a regular file is replaced: a directory, FIFO or device at path is
 * refused (CVAE_E_IO) and left as it is; a symbolic link is written through
 * (the file it points to is replaced, the link stays). Returns CVAE_OK,
 * CVAE_E_IO, CVAE_E_NOMEM. */
CVAE_API cvae_status cvae_model_save(const cvae_model *model, const char *path);
/* Load a model saved by cvae_model_save; it predicts bit-identically to the
 * saved one. Every tensor is checked against the configuration's shapes and
 * its checksum (files without checksums load unchecked), every weight must
 * be finite: otherwise CVAE_E_FORMAT with a message naming the tensor.
 * Optimizer state in the file becomes the model's own optimizer's.
 * Loading allocates the parameters only (bounded by the file's size); the
 * activation workspace, sized by the configuration's batch and layer shapes,
 * is allocated by the first call that runs the network (train, loss, encode,
 * predict*, evaluate, reconstruct, generate), which can therefore return
 * CVAE_E_NOMEM; the model stays usable and a later call retries.
 * Returns CVAE_OK, CVAE_E_IO, CVAE_E_FORMAT (corrupt, truncated, foreign,
 * or incompatible file), CVAE_E_NOMEM. */
CVAE_API cvae_status cvae_model_load(const char *path, cvae_model **out);

/* ------------------------------------------------------------------------ */
/* Image files                                                              */
/* ------------------------------------------------------------------------ */

/* Data sets from PNG and JPEG files, for embedders and the tool alike. This
 * part is a build option of the library (CVAE_WITH_IMAGES, on by default;
 * it links libpng and libjpeg). Without it, cvae_images_supported() is 0
 * and cvae_image_reader_create returns CVAE_E_UNSUPPORTED.
 *
 * Every image is decoded and resized to the reader's channels x height x
 * width: area averaging (box filter) along an axis that shrinks, bilinear
 * interpolation along one that grows, so the aspect ratio is not kept.
 * Palette, low bit depth and 16-bit PNGs are expanded to [0, 1];
 * transparency is composited onto white; colour becomes grey with the luma
 * weights 0.299 R + 0.587 G + 0.114 B, grey becomes RGB by repetition.
 * Pixels are then stored as uint8, like an IDX data set. The format is
 * decided by a file's first bytes, not its name; WebP, TIFF, GIF and BMP
 * files are recognised and refused with a message saying so. */

/* 1 if this build reads image files, else 0. */
CVAE_API int cvae_images_supported(void);

/* Collects image files (in the order added), then decodes them into a data
 * set. A reader is used from one thread at a time. */
typedef struct cvae_image_reader cvae_image_reader;

/* Progress of cvae_image_reader_load: done of total files decoded so far.
 * Called on the thread that called load, at most about 20 times a second
 * and once more at the end. Return non-zero to stop loading
 * (CVAE_E_CANCELLED). */
typedef int (*cvae_load_progress_fn)(void *user, int64_t done, int64_t total);

/* A reader producing images of channels (1 or 3) x height x width (each in
 * [1, 4096]). Returns CVAE_OK, CVAE_E_INVALID_ARG, CVAE_E_NOMEM, or
 * CVAE_E_UNSUPPORTED without image support. Destroy with
 * cvae_image_reader_destroy (NULL is a no-op). */
CVAE_API cvae_status cvae_image_reader_create(int channels, int height, int width,
                                              cvae_image_reader **out);
CVAE_API void cvae_image_reader_destroy(cvae_image_reader *reader);

/* Decoding threads [1, 1024] (default: cvae_get_num_threads() when the
 * reader is created). Memory is the decoded data set plus one file and one
 * image row per thread, never all the files at once. */
CVAE_API cvae_status cvae_image_reader_set_threads(cvae_image_reader *reader, int threads);
/* skip = 0 (default): the first file that cannot be read or decoded (in the
 * order added) fails the load with its path and why. skip = 1: such files
 * are left out of the data set, counted and listed by
 * cvae_image_reader_skipped; so are unreadable subdirectories met by
 * cvae_image_reader_add_dir. */
CVAE_API cvae_status cvae_image_reader_set_skip_bad(cvae_image_reader *reader, int skip);
/* Progress callback for cvae_image_reader_load (fn NULL: none). */
CVAE_API cvae_status cvae_image_reader_set_progress(cvae_image_reader *reader,
                                                    cvae_load_progress_fn fn, void *user);

/* Add one file; it is not opened until the load. */
CVAE_API cvae_status cvae_image_reader_add_file(cvae_image_reader *reader, const char *path);
/* Add every image file under a directory, recursively, sorted by name (byte
 * order) at each level. Image files are those named *.png, *.jpg, *.jpeg,
 * *.jpe, *.jfif, *.webp, *.tif, *.tiff, *.gif or *.bmp (any case; the last
 * five to say that they are not read); names starting with '.' are skipped,
 * as are all other files. Symbolic links are followed, each directory is
 * walked once (so link loops end). CVAE_E_IO if dir cannot be read (or,
 * without skip, a subdirectory). Paths are dir + "/" + names. */
CVAE_API cvae_status cvae_image_reader_add_dir(cvae_image_reader *reader, const char *dir);
/* Add the paths listed in a text file, one per line, as written (relative
 * ones are relative to the working directory at load time); empty lines
 * are ignored and a trailing '\r' is dropped. The files are not opened
 * until the load, so lists of millions cost only their text. */
CVAE_API cvae_status cvae_image_reader_add_list(cvae_image_reader *reader,
                                                const char *list_path);
/* Number of files added so far. */
CVAE_API cvae_status cvae_image_reader_count(const cvae_image_reader *reader, int64_t *count);

/* Decode every added file into a new data set (uint8 pixels, no labels)
 * that remembers each image's path (cvae_dataset_path). Returns CVAE_OK,
 * CVAE_E_INVALID_ARG (no files), CVAE_E_IO / CVAE_E_FORMAT /
 * CVAE_E_UNSUPPORTED naming the first bad file (or, with skip, when no
 * file could be read), CVAE_E_NOMEM, CVAE_E_CANCELLED. The reader keeps
 * its files and can load again. */
CVAE_API cvae_status cvae_image_reader_load(cvae_image_reader *reader, cvae_dataset **out);
/* Files (and directories) left out by the last load or add_dir with skip
 * on; index-th of them in the order added, with the reason. The strings
 * belong to the reader and stay valid until it loads again or is destroyed. */
CVAE_API cvae_status cvae_image_reader_num_skipped(const cvae_image_reader *reader,
                                                   int64_t *count);
CVAE_API cvae_status cvae_image_reader_skipped(const cvae_image_reader *reader, int64_t index,
                                               const char **path, const char **reason);

/* The file image `index` of a data set was read from (*path belongs to the
 * data set). Subsets keep their images' paths. CVAE_E_STATE if the data
 * set was not made by an image reader. */
CVAE_API cvae_status cvae_dataset_path(const cvae_dataset *ds, int64_t index, const char **path);
/* Data-parallel training across processes                                  */
/* ------------------------------------------------------------------------ */

/* Sums n floats over all processes, in place: on return every process's buf
 * holds the element-wise sum of all processes' bufs (MPI_Allreduce with
 * MPI_SUM, MPI_IN_PLACE; mpi4py's comm.Allreduce). Called collectively:
 * every process makes the same calls with the same n in the same order.
 * Return 0, or non-zero if the reduction failed (training then stops with
 * CVAE_E_IO). Every process must get the same sum, bit for bit (MPI
 * libraries' reductions do), so all take the same decisions. */
typedef int (*cvae_reduce_fn)(float *buf, size_t n, void *user);

/* Make this model one of size processes (rank in [0, size)) training data-
 * parallel; the library does no communication of its own, it calls reduce.
 * Each process creates or loads the same model (same configuration and
 * seed, or the same checkpoint) and passes the same whole data set to
 * cvae_model_train and cvae_model_loss, which then keep their single-process
 * meaning: batch_size is the global batch; every process computes its slice
 * of each global batch (cvae_shard of the batch) in the same order, and the
 * gradient, the balance term's batch mean of q and the loss values are
 * summed through reduce, so every process applies the same update and
 * reports the same losses. A training step makes three calls: k + 4
 * floats (batch statistics), the whole gradient (cvae_model_num_params
 * floats and the padding that aligns each tensor), and 1 float through
 * which a stop asked by any process's progress callback stops all of them
 * after the same batch; cvae_model_loss makes the first call per batch.
 * (A step in parts, cvae_model_set_micro_batch, splits the first call in
 * k and 4 floats; the overlapped reduction, cvae_model_set_reduce_overlap,
 * splits the gradient in parts.)
 * Each cvae_model_train call starts with one more (4 floats per process)
 * that checks every process holds the same parameters, optimizer step count
 * and data set size, and otherwise fails on all of them with
 * CVAE_E_INVALID_ARG naming the first process that differs.
 * The data order (the model's shuffle, drawn alike by every process) and
 * the sampling noise (keyed by the seed, the epoch and each image's index
 * in the data set) do not depend on size, so size processes end at the
 * model one process would reach, up to float summation order. The k-means
 * initialisation encodes each process's slice and gathers the codes through
 * reduce (count * latent_dim floats, once). Inference calls (encode,
 * predict, evaluate) stay local: shard the images yourself (cvae_shard) and
 * gather the results. size = 1 with reduce = NULL returns to single-process
 * training. Returns CVAE_OK or CVAE_E_INVALID_ARG (rank out of range,
 * size < 1, or size > 1 without reduce). Not saved in checkpoints: a
 * checkpoint saved by N processes trains on with any number. */
CVAE_API cvae_status cvae_model_set_data_parallel(cvae_model *model, int rank, int size,
                                                  cvae_reduce_fn reduce, void *user);

/* Gradient accumulation: compute this process's share of every global
 * batch in parts of at most rows images (0, the default: all at once) and
 * add up their gradients before the one update. The global batch keeps its
 * meaning and the update is the one-pass update up to the order of float
 * sums, but the activation workspace holds rows images instead of the
 * share: a global batch can grow past what memory holds, and in data-
 * parallel training the gradient is still reduced once per global batch,
 * so fewer, larger batches cut the communication per image. The cost: the
 * balance term needs the mean of q over the whole batch before any
 * gradient, so a step in parts first runs the convolutions, the encoder and
 * the category head over every part, and small parts make small products:
 * on the default model a batch of 400 in parts of 100 trains at 0.69x the
 * images/s of the same batch in one piece (a batch of 100 in parts of 25 at
 * 0.53x). Use it when memory, not time, is the limit. Data-parallel steps
 * in parts make one call of k floats and one of 4 floats instead of the
 * k + 4 floats. Not saved in checkpoints; takes
 * effect from the next training call. Returns CVAE_OK or CVAE_E_INVALID_ARG
 * (rows < 0). */
CVAE_API cvae_status cvae_model_set_micro_batch(cvae_model *model, int rows);
CVAE_API cvae_status cvae_model_get_micro_batch(const cvae_model *model, int *rows);

/* Overlap the gradient's reduction with the backward pass (on = 1; 0, the
 * default, reduces the whole gradient in one call after it). With it on,
 * the gradient goes to reduce in parts as the backward pass finishes them
 * (the decoder, the category head with the class means, the encoder, then
 * each convolution branch from the last), 3 + branches calls instead of
 * one, made by a helper thread the library starts for each
 * cvae_model_train call, while the calling thread goes on with the rest of
 * the backward pass. Every reduction of that call, the others included, is
 * then made from that thread, one at a time and in the same order on every
 * process: reduce must be callable from a thread other than the one that
 * called cvae_model_train (MPI: initialise with MPI_Init_thread and at
 * least MPI_THREAD_SERIALIZED; mpi4py's default, MPI_THREAD_MULTIPLE, is
 * enough). Without data-parallel training it does nothing. Not saved in
 * checkpoints. Returns CVAE_OK or CVAE_E_INVALID_ARG (on not 0 or 1). */
CVAE_API cvae_status cvae_model_set_reduce_overlap(cvae_model *model, int on);

/* The contiguous part [*begin, *begin + *n) of count items (a data set or a
 * global batch) that process rank of size takes: parts differ by at most
 * one item, lower ranks take the larger ones, a part may be empty. Returns
 * CVAE_OK or CVAE_E_INVALID_ARG (count < 0, size < 1, rank outside
 * [0, size), NULL output). */
CVAE_API cvae_status cvae_shard(int64_t count, int rank, int size, int64_t *begin, int64_t *n);

#ifdef __cplusplus
}
#endif

#endif /* CONVVAE_H */
