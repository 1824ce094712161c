#include "model/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"

enum kind { K_INT, K_DOUBLE, K_ENUM, K_U64 };

typedef struct option {
    const char *name;
    const char *help;
    enum kind kind;
    size_t offset;
    double min, max;
    const char *const *enum_names; /* NULL-terminated, index = value */
} option;

static const char *const act_names[] = {"relu", "identity", NULL};
static const char *const prior_names[] = {"standard", "mixture", NULL};
static const char *const catin_names[] = {"z", "features", NULL};
static const char *const opt_names[] = {"adam", "sgd", NULL};
static const char *const recon_names[] = {"image", "features", NULL};
static const char *const recipe_names[] = {"paper", "manifold", NULL};
static const char *const start_names[] = {"random", "spectral", NULL};

#define OFF(f) offsetof(struct cvae_config, f)
#define BR(i)                                                                                  \
    {"branch" #i "_layers", "conv layers in branch " #i, K_INT,                                 \
     OFF(br_layers) + (i - 1) * sizeof(int), 1, 16, NULL},                                     \
        {"branch" #i "_filters", "filters of branch " #i, K_INT,                                \
         OFF(br_filters) + (i - 1) * sizeof(int), 1, 1024, NULL},                               \
        {"branch" #i "_kernel", "odd kernel size of branch " #i, K_INT,                         \
         OFF(br_kernel) + (i - 1) * sizeof(int), 1, 15, NULL}

/* The order here is the order of cvae_config_option_name and of the JSON. */
static const option options[] = {
    {"input_channels", "image channels C", K_INT, OFF(in_c), 1, 64, NULL},
    {"input_height", "image height H", K_INT, OFF(in_h), 1, 4096, NULL},
    {"input_width", "image width W", K_INT, OFF(in_w), 1, 4096, NULL},
    {"branches", "number of convolution branches (0 = plain VAE)", K_INT, OFF(branches), 0,
     CVAE_MAX_BRANCHES, NULL},
    BR(1),
    BR(2),
    BR(3),
    BR(4),
    {"encoder_units", "encoder hidden units m", K_INT, OFF(enc_units), 1, 65536, NULL},
    {"encoder_activation", "encoder activation: relu|identity", K_ENUM, OFF(enc_act), 0, 1,
     act_names},
    {"decoder_units", "decoder hidden units", K_INT, OFF(dec_units), 1, 65536, NULL},
    {"latent_dim", "latent dimension s", K_INT, OFF(latent), 1, 4096, NULL},
    {"clusters", "number of clusters k", K_INT, OFF(clusters), 2, CVAE_MAX_CLUSTERS, NULL},
    {"category_units", "category head hidden units", K_INT, OFF(cat_units), 1, 65536, NULL},
    {"category_input", "category head input: z|features", K_ENUM, OFF(cat_input), 0, 1,
     catin_names},
    {"prior", "latent prior: standard|mixture", K_ENUM, OFF(prior), 0, 1, prior_names},
    {"recon_target", "reconstruction target: image|features", K_ENUM, OFF(recon_target), 0, 1,
     recon_names},
    {"conv_trainable", "train the conv branches (1) or keep random filters (0)", K_INT,
     OFF(conv_trainable), 0, 1, NULL},
    {"lambda", "weight of the reconstruction loss", K_DOUBLE, OFF(lambda), 0, 1e6, NULL},
    {"balance_weight", "weight beta of the batch balance term", K_DOUBLE, OFF(balance_weight),
     0, 1e6, NULL},
    {"category_weight", "weight of sum_y q log q per image (< 0 sharpens q)", K_DOUBLE,
     OFF(cat_weight), -1e6, 1e6, NULL},
    {"warmup_epochs", "epochs with the standard prior before the mixture prior", K_INT,
     OFF(warmup), 0, 10000, NULL},
    {"kmeans_init", "initialise the class means by k-means++ after warm-up (0|1)", K_INT,
     OFF(kmeans), 0, 1, NULL},
    {"optimizer", "optimizer: adam|sgd", K_ENUM, OFF(opt), 0, 1, opt_names},
    {"learning_rate", "learning rate", K_DOUBLE, OFF(lr), 1e-12, 10, NULL},
    {"adam_beta1", "Adam beta1", K_DOUBLE, OFF(beta1), 0, 0.999999, NULL},
    {"adam_beta2", "Adam beta2", K_DOUBLE, OFF(beta2), 0, 0.999999999, NULL},
    {"adam_eps", "Adam epsilon", K_DOUBLE, OFF(eps), 1e-30, 1, NULL},
    {"weight_decay", "L2 weight decay", K_DOUBLE, OFF(weight_decay), 0, 1, NULL},
    {"momentum", "SGD momentum", K_DOUBLE, OFF(momentum), 0, 0.999999, NULL},
    {"batch_size", "mini-batch size", K_INT, OFF(batch), 1, 65536, NULL},
    {"epochs", "training epochs", K_INT, OFF(epochs), 1, 100000, NULL},
    {"seed", "random seed", K_U64, OFF(seed), 0, 0, NULL},
    {"threads", "GEMM threads", K_INT, OFF(threads), 1, 1024, NULL},
    {"recipe", "training recipe: manifold|paper", K_ENUM,
     OFF(recipe), 0, 1, recipe_names},
    {"augment", "random affine augmentation of the training images (0|1)", K_INT, OFF(augment),
     0, 1, NULL},
    {"augment_rotation", "largest rotation of the augmentation, degrees", K_DOUBLE,
     OFF(aug_rotation), 0, 180, NULL},
    {"augment_shift", "largest shift of the augmentation, fraction of the side", K_DOUBLE,
     OFF(aug_shift), 0, 0.5, NULL},
    {"augment_scale", "largest scale change of the augmentation, fraction", K_DOUBLE,
     OFF(aug_scale), 0, 0.5, NULL},
    {"augment_gain", "largest intensity gain change of the augmentation, fraction", K_DOUBLE,
     OFF(aug_gain), 0, 0.9, NULL},
    {"consistency_weight", "weight of |mu(augmented) - mu(clean)|^2 (manifold recipe)",
     K_DOUBLE, OFF(consistency_weight), 0, 1e6, NULL},
    {"contrast_temperature",
     "> 0: the consistency term contrasts each image with the batch's others, at this "
     "temperature (0 = plain squared distance)",
     K_DOUBLE, OFF(contrast_temperature), 0, 1e6, NULL},
    {"consistency_finetune",
     "keep the consistency term in the fine-tuning epochs after the manifold step (0|1)", K_INT,
     OFF(consistency_finetune), 0, 1, NULL},
    {"pretrain_epochs", "epochs before the manifold step (manifold recipe)", K_INT,
     OFF(pretrain), 0, 100000, NULL},
    {"manifold_neighbors", "neighbours of each code in the manifold step, itself included",
     K_INT, OFF(manifold_neighbors), 2, 1000, NULL},
    {"embedding_dim", "dimension of the manifold embedding (0 = clusters)", K_INT,
     OFF(embed_dim), 0, 256, NULL},
    {"pseudo_label_weight", "weight of the category head's cross-entropy on pseudo-labels",
     K_DOUBLE, OFF(pseudo_weight), 0, 1e6, NULL},
    {"pseudo_label_threshold", "least mixture responsibility that keeps a pseudo-label",
     K_DOUBLE, OFF(pseudo_threshold), 0, 1, NULL},
    {"manifold_every", "repeat the manifold step every n fine-tuning epochs (0 = once)", K_INT,
     OFF(manifold_every), 0, 100000, NULL},
    {"manifold_start", "start of the manifold embedding: random|spectral", K_ENUM,
     OFF(manifold_start), 0, 1, start_names},
    {"finetune_prior", "prior of the manifold recipe's fine-tuning: standard|mixture", K_ENUM,
     OFF(finetune_prior), 0, 1, prior_names},
    {"manifold_runs", "embeddings and mixtures the manifold step fits; it keeps the partition "
     "of highest modularity", K_INT, OFF(manifold_runs), 1, 64, NULL},
    {"manifold_overcluster", "mixture components of the manifold step per cluster, merged "
     "back to the clusters by modularity (1 = no merge)", K_DOUBLE, OFF(manifold_overcluster), 1,
     4, NULL},
};
#define NOPT ((int)(sizeof options / sizeof options[0]))

void cvae__config_defaults(struct cvae_config *c)
{
    memset(c, 0, sizeof *c);
    c->in_c = 1;
    c->in_h = 28;
    c->in_w = 28;
    c->branches = 2;
    for (int i = 0; i < CVAE_MAX_BRANCHES; i++) {
        c->br_layers[i] = 1;
        c->br_filters[i] = i == 0 ? 16 : 32;
        c->br_kernel[i] = i == 0 ? 3 : 5;
    }
    c->enc_units = 512;
    c->enc_act = CVAE_ACT_RELU;
    c->dec_units = 512;
    c->latent = 50;
    c->clusters = 10;
    c->cat_units = 512;
    c->cat_input = CVAE_CATEGORY_INPUT_Z;
    c->prior = CVAE_PRIOR_MIXTURE;
    c->recon_target = CVAE_RECON_IMAGE;
    c->conv_trainable = 1;
    c->lambda = 2.5;
    c->balance_weight = 1.0;
    c->cat_weight = 1.0;
    c->warmup = 0;
    c->kmeans = 0;
    c->opt = CVAE_OPTIMIZER_ADAM;
    c->lr = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->weight_decay = 0.0;
    c->momentum = 0.9;
    c->batch = 100;
    c->epochs = 50;
    c->seed = 1;
    c->threads = 1;
    c->recipe = CVAE_RECIPE_MANIFOLD;
    c->augment = 1;
    c->aug_rotation = 10.0;
    c->aug_shift = 0.1;
    c->aug_scale = 0.1;
    /* An image drawn lighter or darker is the same object: asking the
     * contrastive term for codes that do not follow brightness made their
     * neighbours share a label more often (Fashion-MNIST 0.826 of 19
     * against 0.816 after 10 epochs) and raised Fashion-MNIST's NMI on
     * each of three seeds (median 0.716 against 0.677) while MNIST held. */
    c->aug_gain = 0.3;
    /* The contrastive term in pretraining only: codes every dimension of
     * which is in use and whose neighbours share a label more often (on
     * Fashion-MNIST 0.81 of 19 against 0.76 without), so the manifold step
     * draws a better partition. Kept in the fine-tuning epochs it cost
     * MNIST 6 points; without it there MNIST ends level with the plain
     * recipe. */
    c->consistency_weight = 10.0;
    c->contrast_temperature = 4.0;
    c->consistency_finetune = 0;
    c->pretrain = 35;
    c->manifold_neighbors = 20;
    c->embed_dim = 0;
    /* With 1 the head ended less accurate on MNIST's training images than
     * the pseudo-labels it learnt from (0.959 against 0.973): it had not
     * fitted them. */
    c->pseudo_weight = 5.0;
    c->pseudo_threshold = 0.9;
    /* Once: on the contrastive term's codes a repeated step re-drew
     * Fashion-MNIST's partition and lost 3.6 points, and on MNIST it
     * gained nothing. (Without the term, every 3 epochs had lifted the
     * small image sets.) */
    c->manifold_every = 0;
    c->manifold_start = CVAE_MANIFOLD_START_RANDOM;
    c->finetune_prior = CVAE_PRIOR_STANDARD;
    c->manifold_runs = 4;
    /* 13 components merged to 10: with 10, the mixture on Fashion-MNIST's
     * codes split bags in two and gave shirts no cluster in 70% of the
     * draws; spare components leave room for shirts, and densely linked
     * halves such as the bags' are merged back (three seeds' test ACC
     * 0.674, 0.646, 0.673 became 0.708, 0.665, 0.717, NMI -0.9 to -1.1
     * points; MNIST seed 1 0.981 either way). 1.3 was the first ratio
     * tried, on training labels; 1.2 left too few spare components on one
     * draw in two, 2 worked too. */
    c->manifold_overcluster = 1.3;
    c->explicit_set = 0;
}

/* The shape-dependent defaults (see cvae_config_set_input_shape): as many
 * branches, up to 2, as keep the last feature map at least 4 x 4 (each
 * branch halves it), and a latent size of one per 15 input values within
 * [10, 50], unless the caller set those options. */
static void shape_defaults(struct cvae_config *c)
{
    if (!(c->explicit_set & CVAE__SET_BRANCHES)) {
        int b = 0;
        while (b < 2) {
            int d = 1 << (b + 1);
            if (c->in_h % d || c->in_w % d || c->in_h / d < 4 || c->in_w / d < 4)
                break;
            b++;
        }
        c->branches = b;
    }
    if (!(c->explicit_set & CVAE__SET_LATENT)) {
        long long p = (long long)c->in_c * c->in_h * c->in_w / 15;
        c->latent = (int)(p < 10 ? 10 : p > 50 ? 50 : p);
    }
    /* The reconstruction term sums over pixels and the KL term over latent
     * dimensions: with the weight fixed, small images let the KL term win
     * and the codes collapse (8x8 MNIST: k-means on mu 0.36 at 2.5, 0.61 at
     * 30). Scaling it by 784 / pixels keeps the balance the 28x28 grey
     * default was chosen for. Pixels, not values: the channels of a colour
     * image say much the same thing, and dividing by them as well (0.64 for
     * 32x32 RGB) let the KL term win again (tinted 32x32 MNIST and
     * Fashion-MNIST ended below k-means on the pixels; at 1.91, 13 and 12
     * points above it). */
    if (!(c->explicit_set & CVAE__SET_LAMBDA)) {
        double l = 2.5 * 784.0 / ((double)c->in_h * c->in_w);
        c->lambda = l > 1e6 ? 1e6 : l;
    }
}

/* Option names accept dashes for underscores, so CLI flags map directly. */
static int find_option(const char *name)
{
    for (int i = 0; i < NOPT; i++) {
        const char *a = options[i].name, *b = name;
        while (*a && (*a == *b || (*a == '_' && *b == '-')))
            a++, b++;
        if (*a == 0 && *b == 0)
            return i;
    }
    return -1;
}

static cvae_status set_int_opt(struct cvae_config *c, int i, long long v)
{
    const option *o = &options[i];
    if (v < (long long)o->min || v > (long long)o->max)
        return cvae__fail(CVAE_E_INVALID_ARG, "option %s = %lld is outside [%g, %g]", o->name, v,
                          o->min, o->max);
    /* Checked here, not only in cvae_config_set_conv_branch, so that the by-name
     * setter and checkpoint JSON cannot store an even kernel either. */
    if (o->offset >= OFF(br_kernel) && o->offset < OFF(br_kernel) + sizeof c->br_kernel &&
        v % 2 == 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "option %s = %lld must be odd", o->name, v);
    *(int *)(void *)((char *)c + o->offset) = (int)v;
    if (o->offset == OFF(branches))
        c->explicit_set |= CVAE__SET_BRANCHES;
    else if (o->offset == OFF(latent))
        c->explicit_set |= CVAE__SET_LATENT;
    else if (o->offset == OFF(in_c) || o->offset == OFF(in_h) || o->offset == OFF(in_w))
        shape_defaults(c);
    return CVAE_OK;
}

static cvae_status set_double_opt(struct cvae_config *c, int i, double v)
{
    const option *o = &options[i];
    if (!isfinite(v) || v < o->min || v > o->max)
        return cvae__fail(CVAE_E_INVALID_ARG, "option %s = %g is outside [%g, %g]", o->name, v,
                          o->min, o->max);
    *(double *)(void *)((char *)c + o->offset) = v;
    if (o->offset == OFF(lambda))
        c->explicit_set |= CVAE__SET_LAMBDA;
    return CVAE_OK;
}

cvae_status cvae_config_create(cvae_config **out)
{
    CVAE__CHECK_PTR(out);
    *out = malloc(sizeof **out);
    if (!*out)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a config");
    cvae__config_defaults(*out);
    return CVAE_OK;
}

cvae_status cvae_config_clone(const cvae_config *cfg, cvae_config **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(cfg);
    cvae_config *c = malloc(sizeof *c);
    if (!c)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a config");
    *c = *cfg;
    *out = c;
    return CVAE_OK;
}

void cvae_config_destroy(cvae_config *cfg) { free(cfg); }

const char *cvae_config_option_name(int index)
{
    return index >= 0 && index < NOPT ? options[index].name : NULL;
}

const char *cvae_config_option_help(int index)
{
    return index >= 0 && index < NOPT ? options[index].help : NULL;
}

static int parse_ll(const char *s, long long *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *v = x;
    return 0;
}

cvae_status cvae_config_set(cvae_config *cfg, const char *name, const char *value)
{
    CVAE__CHECK_PTR(cfg);
    CVAE__CHECK_PTR(name);
    CVAE__CHECK_PTR(value);
    int i = find_option(name);
    if (i < 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "unknown option '%.64s'", name);
    const option *o = &options[i];
    switch (o->kind) {
    case K_INT: {
        long long v;
        if (parse_ll(value, &v))
            return cvae__fail(CVAE_E_INVALID_ARG, "option %s needs an integer, got '%.64s'",
                              o->name, value);
        return set_int_opt(cfg, i, v);
    }
    case K_U64: {
        char *end;
        errno = 0;
        /* strtoull skips blanks and negates "-1" into 2^64-1 without error. */
        const char *sign = value;
        while (isspace((unsigned char)*sign))
            sign++;
        if (*sign == '-')
            return cvae__fail(CVAE_E_INVALID_ARG, "option %s must not be negative", o->name);
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end)
            return cvae__fail(CVAE_E_INVALID_ARG, "option %s needs an unsigned integer, got '%.64s'",
                              o->name, value);
        *(unsigned long long *)(void *)((char *)cfg + o->offset) = v;
        return CVAE_OK;
    }
    case K_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end)
            return cvae__fail(CVAE_E_INVALID_ARG, "option %s needs a number, got '%.64s'", o->name,
                              value);
        /* A number a double cannot hold (1e-400, 1e400) is still a number:
         * say it is out of range, quoting the text since v is 0 or inf. */
        if (errno == ERANGE)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "option %s = %.64s is out of range [%g, %g] (too %s for a "
                              "double)",
                              o->name, value, o->min, o->max,
                              fabs(v) > 1.0 ? "large" : "small");
        return set_double_opt(cfg, i, v);
    }
    case K_ENUM:
        for (int e = 0; o->enum_names[e]; e++)
            if (strcmp(o->enum_names[e], value) == 0)
                return set_int_opt(cfg, i, e);
        return cvae__fail(CVAE_E_INVALID_ARG, "option %s: '%.64s' is not one of the accepted names",
                          o->name, value);
    }
    return cvae__fail(CVAE_E_INTERNAL, "bad option kind");
}

static int format_value(const struct cvae_config *c, const option *o, char *buf, size_t size,
                        int json)
{
    const void *p = (const char *)c + o->offset;
    switch (o->kind) {
    case K_INT:
        return snprintf(buf, size, "%d", *(const int *)p);
    case K_U64:
        return snprintf(buf, size, "%llu", *(const unsigned long long *)p);
    case K_DOUBLE: {
        /* Shortest of %.15g / %.17g that reads back exactly: 0.003, not
         * 0.0030000000000000001, yet lossless. */
        double v = *(const double *)p;
        char tmp[40];
        snprintf(tmp, sizeof tmp, "%.15g", v);
        if (strtod(tmp, NULL) != v)
            snprintf(tmp, sizeof tmp, "%.17g", v);
        return snprintf(buf, size, "%s", tmp);
    }
    case K_ENUM:
        return snprintf(buf, size, json ? "\"%s\"" : "%s", o->enum_names[*(const int *)p]);
    }
    return -1;
}

cvae_status cvae_config_get(const cvae_config *cfg, const char *name, char *value, size_t size)
{
    CVAE__CHECK_PTR(cfg);
    CVAE__CHECK_PTR(name);
    CVAE__CHECK_PTR(value);
    int i = find_option(name);
    if (i < 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "unknown option '%.64s'", name);
    int n = format_value(cfg, &options[i], value, size, 0);
    if (n < 0 || (size_t)n >= size)
        return cvae__fail(CVAE_E_INVALID_ARG, "buffer of %zu bytes is too small for option %s",
                          size, options[i].name);
    return CVAE_OK;
}

cvae_status cvae__config_to_json(const struct cvae_config *cfg, char *buf, size_t size)
{
    size_t used = 0;
    for (int i = 0; i < NOPT; i++) {
        int n = snprintf(buf + used, size - used, "%s\"%s\":", i ? "," : "{", options[i].name);
        if (n < 0 || (size_t)n >= size - used)
            goto small;
        used += (size_t)n;
        n = format_value(cfg, &options[i], buf + used, size - used, 1);
        if (n < 0 || (size_t)n >= size - used)
            goto small;
        used += (size_t)n;
    }
    if (size - used < 2)
        goto small;
    buf[used++] = '}';
    buf[used] = 0;
    return CVAE_OK;
small:
    return cvae__fail(CVAE_E_INVALID_ARG, "config JSON buffer of %zu bytes is too small", size);
}

/* The flat object cvae__config_to_json writes: option names as keys, numbers
 * or strings as values, each value set through cvae_config_set so the ranges
 * of the option table apply. All or nothing: cfg changes only on success. */
cvae_status cvae__config_from_json(struct cvae_config *cfg, const char *json)
{
    static const char ctx[] = "config metadata";
    size_t len = strlen(json), cap = CVAE__JSON_POOL_FOR(len);
    char *pool = malloc(cap);
    if (!pool)
        return cvae__fail(CVAE_E_NOMEM, "%s: cannot allocate %zu bytes", ctx, cap);
    struct cvae_config tmp = *cfg;
    cvae__json j;
    cvae__json_init(&j, json, len, pool, cap, ctx);
    cvae_status st = cvae__json_expect(&j, '{', "config metadata is not a JSON object");
    int more = !st && !cvae__json_at(&j, '}');
    if (!st && !more)
        st = cvae__json_expect(&j, '}', "expected '}'");
    while (!st && more) {
        const char *key, *val;
        size_t mark = cvae__json_pool_mark(&j);
        if ((st = cvae__json_string(&j, &key)) || (st = cvae__json_expect(&j, ':', "expected ':'")))
            break;
        if (cvae__json_at(&j, '"'))
            st = cvae__json_string(&j, &val);
        else
            st = cvae__json_number(&j, &val);
        if (st)
            break;
        if (find_option(key) < 0) {
            st = cvae__fail(CVAE_E_FORMAT, "%s: unknown option '%.64s'", ctx, key);
            break;
        }
        if ((st = cvae_config_set(&tmp, key, val)) != CVAE_OK) {
            /* cvae_last_error() is the buffer cvae__fail writes into:
             * formatting it into itself would overlap (undefined). */
            char why[256];
            snprintf(why, sizeof why, "%s", cvae_last_error());
            st = cvae__fail(CVAE_E_FORMAT, "%s: %s", ctx, why);
            break;
        }
        cvae__json_pool_reset(&j, mark);
        st = cvae__json_next(&j, '}', &more);
    }
    if (!st)
        st = cvae__json_finish(&j);
    free(pool);
    if (st)
        return st;
    *cfg = tmp;
    return CVAE_OK;
}

/* Typed accessors. Each maps to its table entry so ranges live in one place. */
#define INT_ACCESSORS(fn, optname, field)                                                      \
    cvae_status cvae_config_set_##fn(cvae_config *cfg, int v)                                  \
    {                                                                                          \
        CVAE__CHECK_PTR(cfg);                                                                  \
        return set_int_opt(cfg, find_option(optname), v);                                        \
    }                                                                                          \
    cvae_status cvae_config_get_##fn(const cvae_config *cfg, int *v)                           \
    {                                                                                          \
        CVAE__CHECK_PTR(cfg);                                                                  \
        CVAE__CHECK_PTR(v);                                                                    \
        *v = cfg->field;                                                                       \
        return CVAE_OK;                                                                        \
    }
#define ENUM_ACCESSORS(fn, optname, field, type)                                               \
    cvae_status cvae_config_set_##fn(cvae_config *cfg, type v)                                 \
    {                                                                                          \
        CVAE__CHECK_PTR(cfg);                                                                  \
        return set_int_opt(cfg, find_option(optname), (long long)v);                             \
    }                                                                                          \
    cvae_status cvae_config_get_##fn(const cvae_config *cfg, type *v)                          \
    {                                                                                          \
        CVAE__CHECK_PTR(cfg);                                                                  \
        CVAE__CHECK_PTR(v);                                                                    \
        *v = (type)cfg->field;                                                                 \
        return CVAE_OK;                                                                        \
    }
#define DOUBLE_ACCESSORS(fn, optname, field)                                                   \
    cvae_status cvae_config_set_##fn(cvae_config *cfg, double v)                               \
    {                                                                                          \
        CVAE__CHECK_PTR(cfg);                                                                  \
        return set_double_opt(cfg, find_option(optname), v);                                     \
    }                                                                                          \
    cvae_status cvae_config_get_##fn(const cvae_config *cfg, double *v)                        \
    {                                                                                          \
        CVAE__CHECK_PTR(cfg);                                                                  \
        CVAE__CHECK_PTR(v);                                                                    \
        *v = cfg->field;                                                                       \
        return CVAE_OK;                                                                        \
    }

INT_ACCESSORS(branches, "branches", branches)
INT_ACCESSORS(encoder_units, "encoder_units", enc_units)
INT_ACCESSORS(decoder_units, "decoder_units", dec_units)
INT_ACCESSORS(latent_dim, "latent_dim", latent)
INT_ACCESSORS(clusters, "clusters", clusters)
INT_ACCESSORS(category_units, "category_units", cat_units)
INT_ACCESSORS(conv_trainable, "conv_trainable", conv_trainable)
INT_ACCESSORS(warmup_epochs, "warmup_epochs", warmup)
INT_ACCESSORS(kmeans_init, "kmeans_init", kmeans)
INT_ACCESSORS(batch_size, "batch_size", batch)
INT_ACCESSORS(epochs, "epochs", epochs)
INT_ACCESSORS(threads, "threads", threads)
ENUM_ACCESSORS(encoder_activation, "encoder_activation", enc_act, cvae_activation)
ENUM_ACCESSORS(category_input, "category_input", cat_input, cvae_category_input)
ENUM_ACCESSORS(prior, "prior", prior, cvae_prior)
ENUM_ACCESSORS(optimizer, "optimizer", opt, cvae_optimizer_kind)
ENUM_ACCESSORS(recon_target, "recon_target", recon_target, cvae_recon_target)
ENUM_ACCESSORS(recipe, "recipe", recipe, cvae_recipe)
ENUM_ACCESSORS(manifold_start, "manifold_start", manifold_start, cvae_manifold_start)
ENUM_ACCESSORS(finetune_prior, "finetune_prior", finetune_prior, cvae_prior)
INT_ACCESSORS(augment, "augment", augment)
INT_ACCESSORS(pretrain_epochs, "pretrain_epochs", pretrain)
INT_ACCESSORS(manifold_neighbors, "manifold_neighbors", manifold_neighbors)
INT_ACCESSORS(embedding_dim, "embedding_dim", embed_dim)
INT_ACCESSORS(manifold_every, "manifold_every", manifold_every)
INT_ACCESSORS(manifold_runs, "manifold_runs", manifold_runs)
INT_ACCESSORS(consistency_finetune, "consistency_finetune", consistency_finetune)
DOUBLE_ACCESSORS(consistency_weight, "consistency_weight", consistency_weight)
DOUBLE_ACCESSORS(contrast_temperature, "contrast_temperature", contrast_temperature)
DOUBLE_ACCESSORS(augment_gain, "augment_gain", aug_gain)
DOUBLE_ACCESSORS(pseudo_label_weight, "pseudo_label_weight", pseudo_weight)
DOUBLE_ACCESSORS(pseudo_label_threshold, "pseudo_label_threshold", pseudo_threshold)
DOUBLE_ACCESSORS(manifold_overcluster, "manifold_overcluster", manifold_overcluster)
DOUBLE_ACCESSORS(lambda, "lambda", lambda)
DOUBLE_ACCESSORS(balance_weight, "balance_weight", balance_weight)
DOUBLE_ACCESSORS(category_weight, "category_weight", cat_weight)
DOUBLE_ACCESSORS(learning_rate, "learning_rate", lr)
DOUBLE_ACCESSORS(adam_eps, "adam_eps", eps)
DOUBLE_ACCESSORS(weight_decay, "weight_decay", weight_decay)
DOUBLE_ACCESSORS(momentum, "momentum", momentum)

cvae_status cvae_config_set_input_shape(cvae_config *cfg, int channels, int height, int width)
{
    CVAE__CHECK_PTR(cfg);
    struct cvae_config t = *cfg;
    cvae_status st;
    if ((st = set_int_opt(&t, find_option("input_channels"), channels)) ||
        (st = set_int_opt(&t, find_option("input_height"), height)) ||
        (st = set_int_opt(&t, find_option("input_width"), width)))
        return st;
    *cfg = t;
    return CVAE_OK;
}

cvae_status cvae_config_get_input_shape(const cvae_config *cfg, int *channels, int *height,
                                        int *width)
{
    CVAE__CHECK_PTR(cfg);
    if (channels)
        *channels = cfg->in_c;
    if (height)
        *height = cfg->in_h;
    if (width)
        *width = cfg->in_w;
    return CVAE_OK;
}

static const char *const br_names[CVAE_MAX_BRANCHES][3] = {
    {"branch1_layers", "branch1_filters", "branch1_kernel"},
    {"branch2_layers", "branch2_filters", "branch2_kernel"},
    {"branch3_layers", "branch3_filters", "branch3_kernel"},
    {"branch4_layers", "branch4_filters", "branch4_kernel"},
};

cvae_status cvae_config_set_conv_branch(cvae_config *cfg, int b, int layers, int filters,
                                        int kernel)
{
    CVAE__CHECK_PTR(cfg);
    if (b < 1 || b > CVAE_MAX_BRANCHES)
        return cvae__fail(CVAE_E_INVALID_ARG, "branch %d is outside [1, %d]", b,
                          CVAE_MAX_BRANCHES);
    struct cvae_config t = *cfg;
    cvae_status st;
    if ((st = set_int_opt(&t, find_option(br_names[b - 1][0]), layers)) ||
        (st = set_int_opt(&t, find_option(br_names[b - 1][1]), filters)) ||
        (st = set_int_opt(&t, find_option(br_names[b - 1][2]), kernel)))
        return st;
    *cfg = t;
    return CVAE_OK;
}

cvae_status cvae_config_get_conv_branch(const cvae_config *cfg, int b, int *layers, int *filters,
                                        int *kernel)
{
    CVAE__CHECK_PTR(cfg);
    if (b < 1 || b > CVAE_MAX_BRANCHES)
        return cvae__fail(CVAE_E_INVALID_ARG, "branch %d is outside [1, %d]", b,
                          CVAE_MAX_BRANCHES);
    if (layers)
        *layers = cfg->br_layers[b - 1];
    if (filters)
        *filters = cfg->br_filters[b - 1];
    if (kernel)
        *kernel = cfg->br_kernel[b - 1];
    return CVAE_OK;
}

/* The deprecated names, kept for programs built against an older header. */
cvae_status cvae_config_set_num_branches(cvae_config *cfg, int branches)
{
    return cvae_config_set_branches(cfg, branches);
}

cvae_status cvae_config_get_num_branches(const cvae_config *cfg, int *branches)
{
    return cvae_config_get_branches(cfg, branches);
}

/* Index 0-based: out-of-range indices are named as given, so an old
 * caller's message still matches its call. */
cvae_status cvae_config_set_branch(cvae_config *cfg, int index, int layers, int filters,
                                   int kernel)
{
    CVAE__CHECK_PTR(cfg);
    if (index < 0 || index >= CVAE_MAX_BRANCHES)
        return cvae__fail(CVAE_E_INVALID_ARG, "branch index %d is outside [0, %d)", index,
                          CVAE_MAX_BRANCHES);
    return cvae_config_set_conv_branch(cfg, index + 1, layers, filters, kernel);
}

cvae_status cvae_config_get_branch(const cvae_config *cfg, int index, int *layers, int *filters,
                                   int *kernel)
{
    CVAE__CHECK_PTR(cfg);
    if (index < 0 || index >= CVAE_MAX_BRANCHES)
        return cvae__fail(CVAE_E_INVALID_ARG, "branch index %d is outside [0, %d)", index,
                          CVAE_MAX_BRANCHES);
    return cvae_config_get_conv_branch(cfg, index + 1, layers, filters, kernel);
}

cvae_status cvae_config_set_adam_betas(cvae_config *cfg, double beta1, double beta2)
{
    CVAE__CHECK_PTR(cfg);
    struct cvae_config t = *cfg;
    cvae_status st;
    if ((st = set_double_opt(&t, find_option("adam_beta1"), beta1)) ||
        (st = set_double_opt(&t, find_option("adam_beta2"), beta2)))
        return st;
    *cfg = t;
    return CVAE_OK;
}

cvae_status cvae_config_get_adam_betas(const cvae_config *cfg, double *beta1, double *beta2)
{
    CVAE__CHECK_PTR(cfg);
    if (beta1)
        *beta1 = cfg->beta1;
    if (beta2)
        *beta2 = cfg->beta2;
    return CVAE_OK;
}

cvae_status cvae_config_set_augment_ranges(cvae_config *cfg, double rotation, double shift,
                                          double scale)
{
    CVAE__CHECK_PTR(cfg);
    struct cvae_config t = *cfg;
    cvae_status st;
    if ((st = set_double_opt(&t, find_option("augment_rotation"), rotation)) ||
        (st = set_double_opt(&t, find_option("augment_shift"), shift)) ||
        (st = set_double_opt(&t, find_option("augment_scale"), scale)))
        return st;
    *cfg = t;
    return CVAE_OK;
}

cvae_status cvae_config_get_augment_ranges(const cvae_config *cfg, double *rotation,
                                          double *shift, double *scale)
{
    CVAE__CHECK_PTR(cfg);
    if (rotation)
        *rotation = cfg->aug_rotation;
    if (shift)
        *shift = cfg->aug_shift;
    if (scale)
        *scale = cfg->aug_scale;
    return CVAE_OK;
}

cvae_status cvae_config_set_seed(cvae_config *cfg, uint64_t seed)
{
    CVAE__CHECK_PTR(cfg);
    cfg->seed = seed;
    return CVAE_OK;
}

cvae_status cvae_config_get_seed(const cvae_config *cfg, uint64_t *seed)
{
    CVAE__CHECK_PTR(cfg);
    CVAE__CHECK_PTR(seed);
    *seed = cfg->seed;
    return CVAE_OK;
}
