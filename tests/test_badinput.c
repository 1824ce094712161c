/* The bad-input matrix: every public function called with what a careless
 * or hostile caller can pass - a NULL for each pointer argument in turn, zero
 * and negative counts, shapes that do not match the model, counts whose byte
 * size overflows, labels and cluster ids out of range, images holding
 * NaN/Inf, and files that are empty, truncated at every byte offset, foreign,
 * or whose header promises more than the file holds.
 *
 * Every failing call must
 *   - return the documented status,
 *   - leave a fresh, non-empty message in cvae_last_error() (a sentinel
 *     message is planted before each call, so a stale one does not count),
 *   - leave *out NULL if it is a constructor,
 * and every handle must stay usable: after each failure the config, data
 * set, model and optimizer are checked with successful calls whose results
 * must equal those taken before the matrix ran (the model's predictions are
 * compared bit for bit), and no temporary file may be left behind.
 *
 * Checks do not stop at the first failure: all are counted, every failure is
 * printed, and each test fails at its end if any check did. Rows with a
 * fixed_bug text guard against the return of a library bug that has been
 * fixed (described there); they run in a child process, in
 * test_fixed_library_bugs, so a crash fails that test only. */
/* Every public function, the deprecated ones included. */
#define CVAE_NO_DEPRECATION_WARNINGS
#define _XOPEN_SOURCE 700 /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testfile.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "convvae.h"
#include "core/error.h"
#include "core/rng.h"

/* ------------------------------------------------------------------------ */
/* Check bookkeeping                                                        */
/* ------------------------------------------------------------------------ */

static long n_checks, n_failed, n_calls;
static long n_bug_failed; /* failures of the fixed_bug rows, reported on their own */

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        n_checks++;                                                                            \
        if (!(cond)) {                                                                         \
            n_failed++;                                                                        \
            print_error("FAILED (line %d): ", __LINE__);                                       \
            print_error(__VA_ARGS__);                                                          \
            print_error("\n");                                                                 \
        }                                                                                      \
    } while (0)

/* Public functions exercised, to compare with the header's list. */
static char seen[256][64];
static int nseen;

static void note_fn(const char *name)
{
    for (int i = 0; i < nseen; i++)
        if (strcmp(seen[i], name) == 0)
            return;
    assert_true(nseen < (int)(sizeof seen / sizeof seen[0]));
    snprintf(seen[nseen++], sizeof seen[0], "%s", name);
}

static const char SENTINEL[] = "sentinel: no failure recorded yet";

static void plant_sentinel(void) { (void)cvae__fail(CVAE_E_INTERNAL, "%s", SENTINEL); }

/* The message after a failing call: non-empty and not the planted one. */
static void check_message(const char *what)
{
    const char *msg = cvae_last_error();
    CHECK(msg != NULL && msg[0] != '\0', "%s: empty cvae_last_error()", what);
    CHECK(msg == NULL || strcmp(msg, SENTINEL) != 0,
          "%s: failed without setting cvae_last_error()", what);
}

/* ------------------------------------------------------------------------ */
/* Fixture: tiny handles and their reference results                        */
/* ------------------------------------------------------------------------ */

enum { C = 1, H = 8, W = 8, P = C * H * W, K = 3, S = 4, BATCH = 6, NDS = 10, NI = 7 };

static char dir[64];
static cvae_config *cfg;
static cvae_model *model;
static cvae_dataset *ds;          /* uint8, labelled, matches the model */
static cvae_dataset *ds_nolab;    /* float32, no labels, matches */
static cvae_dataset *ds_big;      /* 1 x 16 x 16: wrong height/width */
static cvae_dataset *ds_chan;     /* 2 x 8 x 8: wrong channels */
static cvae_dataset *ds_biglab;   /* labels 70000: valid for a data set, not for metrics */
static cvae_optimizer *opt;       /* free, for set_learning_rate */
static cvae_optimizer *opt_other; /* bound to another model's parameter layout */

static uint8_t pix_u8[NDS * P];
static int32_t labels[NDS];
static float img[NI * P];
static float img_bad[NI * P];
static float outbuf[NI * P + NI * K + 64];
static int32_t clus[NDS + NI];

/* References taken before any bad call. */
static float ref_proba[NI * K];
static float ref_ds_img[NDS * P];
static char ref_cfg[4096], ref_model_cfg[4096];
static int64_t ref_nparams;

static void fingerprint(const cvae_config *c, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; cvae_config_option_name(i); i++) {
        char v[128];
        assert_int_equal(cvae_config_get(c, cvae_config_option_name(i), v, sizeof v), CVAE_OK);
        int n = snprintf(buf + used, size - used, "%s=%s;", cvae_config_option_name(i), v);
        assert_true(n > 0 && (size_t)n < size - used);
        used += (size_t)n;
    }
}

static cvae_config *tiny_config(void)
{
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, C, H, W), CVAE_OK);
    assert_int_equal(cvae_config_set_num_branches(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_branch(c, 0, 1, 3, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_encoder_units(c, 12), CVAE_OK);
    assert_int_equal(cvae_config_set_decoder_units(c, 10), CVAE_OK);
    assert_int_equal(cvae_config_set_category_units(c, 9), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, S), CVAE_OK);
    assert_int_equal(cvae_config_set_clusters(c, K), CVAE_OK);
    assert_int_equal(cvae_config_set_batch_size(c, BATCH), CVAE_OK);
    return c;
}

/* Successful calls on every handle, compared with the references. This is
 * the "handle stays usable" proof run after each failing call. */
static void verify_handles(const char *after)
{
    char fp[4096];
    fingerprint(cfg, fp, sizeof fp);
    CHECK(strcmp(fp, ref_cfg) == 0, "after %s: the config changed", after);

    float proba[NI * K];
    CHECK(cvae_model_predict_proba(model, img, NI, proba) == CVAE_OK,
          "after %s: predict_proba failed: %s", after, cvae_last_error());
    CHECK(memcmp(proba, ref_proba, sizeof proba) == 0,
          "after %s: the model predicts differently", after);
    int e = -1;
    int64_t np = -1;
    CHECK(cvae_model_epochs_done(model, &e) == CVAE_OK && e == 0,
          "after %s: epochs_done %d", after, e);
    CHECK(cvae_model_num_params(model, &np) == CVAE_OK && np == ref_nparams,
          "after %s: num_params %lld", after, (long long)np);
    cvae_config *mc = NULL;
    CHECK(cvae_model_get_config(model, &mc) == CVAE_OK, "after %s: get_config", after);
    if (mc) {
        fingerprint(mc, fp, sizeof fp);
        CHECK(strcmp(fp, ref_model_cfg) == 0, "after %s: the model's config changed", after);
        cvae_config_destroy(mc);
    }

    static float imgs[NDS * P];
    int64_t n = 0;
    int c = 0, h = 0, w = 0;
    CHECK(cvae_dataset_shape(ds, &n, &c, &h, &w) == CVAE_OK && n == NDS && c == C && h == H &&
              w == W,
          "after %s: data set shape", after);
    CHECK(cvae_dataset_images_f32(ds, 0, NDS, imgs) == CVAE_OK &&
              memcmp(imgs, ref_ds_img, sizeof imgs) == 0,
          "after %s: data set images", after);
    int32_t lab[NDS];
    CHECK(cvae_dataset_labels(ds, lab, NDS) == CVAE_OK && memcmp(lab, labels, sizeof lab) == 0,
          "after %s: data set labels", after);
    CHECK(cvae_optimizer_set_learning_rate(opt, 1e-3) == CVAE_OK,
          "after %s: optimizer set_learning_rate", after);
}

/* Entries of dir whose name contains ".tmp" (the save temporaries). */
static int temp_files_in(const char *d)
{
    DIR *dp = opendir(d);
    assert_non_null(dp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
        if (strstr(e->d_name, ".tmp"))
            n++;
    closedir(dp);
    return n;
}

static void path_in_dir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cvae_badinput_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    cvae__rng r;
    cvae__rng_seed(&r, 11);
    for (int i = 0; i < NDS * P; i++)
        pix_u8[i] = (uint8_t)cvae__rng_below(&r, 256);
    for (int i = 0; i < NDS; i++)
        labels[i] = i % K;
    for (int i = 0; i < NI * P; i++)
        img[i] = cvae__rng_uniform(&r);

    cfg = tiny_config();
    if (cvae_model_create(cfg, &model) || cvae_model_num_params(model, &ref_nparams))
        return -1;
    if (cvae_dataset_from_u8(pix_u8, NDS, C, H, W, labels, &ds) ||
        cvae_dataset_from_f32(img, NI, C, H, W, NULL, &ds_nolab))
        return -1;
    static uint8_t big[NDS * 4 * P];
    int32_t biglab[NDS];
    for (int i = 0; i < NDS; i++)
        biglab[i] = 70000 + i;
    if (cvae_dataset_from_u8(big, NDS, 1, 16, 16, labels, &ds_big) ||
        cvae_dataset_from_u8(big, NDS, 2, 8, 8, labels, &ds_chan) ||
        cvae_dataset_from_u8(pix_u8, NDS, C, H, W, biglab, &ds_biglab))
        return -1;
    if (cvae_optimizer_create_adam(1e-3, 0.9, 0.999, 1e-8, 0, &opt) ||
        cvae_optimizer_create_sgd(1e-2, 0.9, 0, &opt_other))
        return -1;
    /* Bind opt_other to a model of another layout (latent 5, not 4). */
    cvae_config *c2 = tiny_config();
    cvae_model *m2;
    if (cvae_config_set_latent_dim(c2, 5) || cvae_model_create(c2, &m2))
        return -1;
    cvae_status st = cvae_model_train(m2, ds, 1, opt_other, NULL, NULL);
    cvae_model_destroy(m2);
    cvae_config_destroy(c2);
    if (st)
        return -1;

    fingerprint(cfg, ref_cfg, sizeof ref_cfg);
    cvae_config *mc;
    if (cvae_model_get_config(model, &mc))
        return -1;
    fingerprint(mc, ref_model_cfg, sizeof ref_model_cfg);
    cvae_config_destroy(mc);
    if (cvae_model_predict_proba(model, img, NI, ref_proba) ||
        cvae_dataset_images_f32(ds, 0, NDS, ref_ds_img))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cvae_model_destroy(model);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(ds);
    cvae_dataset_destroy(ds_nolab);
    cvae_dataset_destroy(ds_big);
    cvae_dataset_destroy(ds_chan);
    cvae_dataset_destroy(ds_biglab);
    cvae_optimizer_destroy(opt);
    cvae_optimizer_destroy(opt_other);
    /* everything under dir, also what a failed test left behind */
    return remove_tree(dir);
}

/* ------------------------------------------------------------------------ */
/* The table of calls                                                       */
/* ------------------------------------------------------------------------ */

enum fn {
    F_SET_THREADS,
    F_DS_LOAD_IDX,
    F_DS_FROM_U8,
    F_DS_FROM_F32,
    F_DS_SUBSET_FIRST,
    F_DS_SUBSET_IDX,
    F_DS_SHAPE,
    F_DS_HAS_LABELS,
    F_DS_LABELS,
    F_DS_IMAGES,
    F_METRICS,
    F_CFG_CREATE,
    F_CFG_CLONE,
    F_CFG_SET,
    F_CFG_GET,
    F_CFG_INPUT_SHAPE,
    F_CFG_BRANCH_SET,
    F_CFG_BRANCH_GET,
    F_CFG_CONV_BRANCH_SET,
    F_CFG_CONV_BRANCH_GET,
    F_CFG_BETAS,
    F_CFG_SEED_GET,
    F_OPT_ADAM,
    F_OPT_SGD,
    F_OPT_FROM_CFG,
    F_OPT_SET_LR,
    F_M_CREATE,
    F_M_GET_CONFIG,
    F_M_NUM_PARAMS,
    F_M_EPOCHS_DONE,
    F_M_OPT_STEPS,
    F_M_CLEAR_OPT,
    F_M_TRAIN,
    F_M_LOSS,
    F_M_ENCODE,
    F_M_PREDICT,
    F_M_PROBA,
    F_M_RECON,
    F_M_PREDICT_DS,
    F_M_EVALUATE,
    F_M_GENERATE,
    F_M_SAVE,
    F_M_LOAD,
    F_SHARD,
    F_M_SET_DP,
    F_M_STEP_DUE,
    F_M_SET_MICRO,
    F_M_GET_MICRO,
    F_M_SET_OVERLAP,
    F_COUNT
};

static const char *const fn_names[F_COUNT] = {
    "cvae_set_num_threads", "cvae_dataset_load_idx", "cvae_dataset_from_u8",
    "cvae_dataset_from_f32", "cvae_dataset_subset_first", "cvae_dataset_subset_indices",
    "cvae_dataset_shape", "cvae_dataset_has_labels", "cvae_dataset_labels",
    "cvae_dataset_images_f32", "cvae_cluster_metrics", "cvae_config_create",
    "cvae_config_clone", "cvae_config_set", "cvae_config_get", "cvae_config_set_input_shape",
    "cvae_config_set_branch", "cvae_config_get_branch", "cvae_config_set_conv_branch",
    "cvae_config_get_conv_branch", "cvae_config_set_adam_betas",
    "cvae_config_get_seed", "cvae_optimizer_create_adam", "cvae_optimizer_create_sgd",
    "cvae_optimizer_create_from_config", "cvae_optimizer_set_learning_rate",
    "cvae_model_create", "cvae_model_get_config", "cvae_model_num_params",
    "cvae_model_epochs_done", "cvae_model_optimizer_steps", "cvae_model_clear_optimizer",
    "cvae_model_train", "cvae_model_loss", "cvae_model_encode",
    "cvae_model_predict", "cvae_model_predict_proba", "cvae_model_reconstruct",
    "cvae_model_predict_dataset", "cvae_model_evaluate", "cvae_model_generate",
    "cvae_model_save", "cvae_model_load", "cvae_shard", "cvae_model_set_data_parallel",
    "cvae_model_manifold_step_due", "cvae_model_set_micro_batch", "cvae_model_get_micro_batch",
    "cvae_model_set_reduce_overlap",
};

/* A reduce hook for the data-parallel rows, which never reach it. */
static int sum_nothing(float *buf, size_t n, void *user)
{
    (void)buf;
    (void)n;
    (void)user;
    return 0;
}

/* Which data set / image buffer a row passes. */
enum { D_GOOD, D_NULL, D_BIG, D_CHAN, D_NOLAB, D_BIGLAB };
enum { I_GOOD, I_NAN, I_INF, I_NINF, I_ABOVE, I_BELOW, I_NULL };

typedef struct row {
    enum fn fn;
    const char *what;
    cvae_status expect;
    int null_arg;  /* 1-based position among the call's pointer arguments, 0 = none */
    int d;         /* data set variant (D_*) */
    int im;        /* image variant (I_*) */
    int64_t n, n2; /* counts / start */
    int i[4];
    double x[5];
    const char *s[2];
    const char *fixed_bug; /* non-NULL: guards a fixed library bug, described here; run forked */
} row;

#define E_ARG CVAE_E_INVALID_ARG
#define BIGN INT64_MAX
/* n*P fits size_t but n*P*sizeof(float) does not (P = 64). */
#define BYTES_OVERFLOW_N (INT64_C(1) << 57)

static const row rows[] = {
    /* global state */
    {F_SET_THREADS, "n = 0", E_ARG, .i = {0}},
    {F_SET_THREADS, "n = -1", E_ARG, .i = {-1}},
    {F_SET_THREADS, "n = INT_MIN", E_ARG, .i = {INT_MIN}},

    /* data sets */
    {F_DS_LOAD_IDX, "images_path NULL", E_ARG, .null_arg = 1},
    {F_DS_LOAD_IDX, "out NULL", E_ARG, .null_arg = 2, .s = {"img.idx", NULL}},
    {F_DS_LOAD_IDX, "images file missing", CVAE_E_IO, .s = {"missing.idx", NULL}},
    {F_DS_LOAD_IDX, "labels file missing", CVAE_E_IO, .s = {"img.idx", "missing.idx"}},
    {F_DS_LOAD_IDX, "images path is a directory", CVAE_E_IO, .s = {"subdir", NULL}},

    {F_DS_FROM_U8, "pixels NULL", E_ARG, .null_arg = 1, .n = NDS, .i = {C, H, W}},
    {F_DS_FROM_U8, "out NULL", E_ARG, .null_arg = 2, .n = NDS, .i = {C, H, W}},
    {F_DS_FROM_U8, "count 0", E_ARG, .n = 0, .i = {C, H, W}},
    {F_DS_FROM_U8, "count -1", E_ARG, .n = -1, .i = {C, H, W}},
    {F_DS_FROM_U8, "count INT64_MIN", E_ARG, .n = INT64_MIN, .i = {C, H, W}},
    {F_DS_FROM_U8, "channels 0", E_ARG, .n = NDS, .i = {0, H, W}},
    {F_DS_FROM_U8, "height -1", E_ARG, .n = NDS, .i = {C, -1, W}},
    {F_DS_FROM_U8, "width INT_MIN", E_ARG, .n = NDS, .i = {C, H, INT_MIN}},
    {F_DS_FROM_U8, "count overflows bytes", E_ARG, .n = BIGN, .i = {C, H, W}},
    {F_DS_FROM_U8, "count*64*4 overflows", E_ARG, .n = BYTES_OVERFLOW_N, .i = {C, H, W}},
    {F_DS_FROM_U8, "image of INT_MAX^3 pixels", E_ARG, .n = 1, .i = {INT_MAX, INT_MAX, INT_MAX}},
    {F_DS_FROM_U8, "label -1", E_ARG, .n = NDS, .i = {C, H, W, 1}},
    {F_DS_FROM_U8, "label INT32_MIN", E_ARG, .n = NDS, .i = {C, H, W, 2}},

    {F_DS_FROM_F32, "pixels NULL", E_ARG, .null_arg = 1, .n = NI, .i = {C, H, W}},
    {F_DS_FROM_F32, "out NULL", E_ARG, .null_arg = 2, .n = NI, .i = {C, H, W}},
    {F_DS_FROM_F32, "count 0", E_ARG, .n = 0, .i = {C, H, W}},
    {F_DS_FROM_F32, "count -5", E_ARG, .n = -5, .i = {C, H, W}},
    {F_DS_FROM_F32, "channels -1", E_ARG, .n = NI, .i = {-1, H, W}},
    {F_DS_FROM_F32, "count overflows bytes", E_ARG, .n = BIGN, .i = {C, H, W}},
    {F_DS_FROM_F32, "count*64*4 overflows", E_ARG, .n = BYTES_OVERFLOW_N, .i = {C, H, W}},
    {F_DS_FROM_F32, "NaN pixel", CVAE_E_NUMERIC, .im = I_NAN, .n = NI, .i = {C, H, W}},
    {F_DS_FROM_F32, "+Inf pixel", CVAE_E_NUMERIC, .im = I_INF, .n = NI, .i = {C, H, W}},
    {F_DS_FROM_F32, "-Inf pixel", CVAE_E_NUMERIC, .im = I_NINF, .n = NI, .i = {C, H, W}},
    {F_DS_FROM_F32, "pixel 1.0001", E_ARG, .im = I_ABOVE, .n = NI, .i = {C, H, W}},
    {F_DS_FROM_F32, "pixel -0.0001", E_ARG, .im = I_BELOW, .n = NI, .i = {C, H, W}},
    {F_DS_FROM_F32, "label -1", E_ARG, .n = NI, .i = {C, H, W, 1}},

    {F_DS_SUBSET_FIRST, "src NULL", E_ARG, .null_arg = 1, .n = 2},
    {F_DS_SUBSET_FIRST, "out NULL", E_ARG, .null_arg = 2, .n = 2},
    {F_DS_SUBSET_FIRST, "n 0", E_ARG, .n = 0},
    {F_DS_SUBSET_FIRST, "n -1", E_ARG, .n = -1},
    {F_DS_SUBSET_FIRST, "n > count", E_ARG, .n = NDS + 1},
    {F_DS_SUBSET_FIRST, "n INT64_MAX", E_ARG, .n = BIGN},

    {F_DS_SUBSET_IDX, "src NULL", E_ARG, .null_arg = 1, .n = 3},
    {F_DS_SUBSET_IDX, "indices NULL", E_ARG, .null_arg = 2, .n = 3},
    {F_DS_SUBSET_IDX, "out NULL", E_ARG, .null_arg = 3, .n = 3},
    {F_DS_SUBSET_IDX, "n 0", E_ARG, .n = 0},
    {F_DS_SUBSET_IDX, "n -1", E_ARG, .n = -1},
    {F_DS_SUBSET_IDX, "index -1", E_ARG, .n = 3, .i = {1, -1}},
    {F_DS_SUBSET_IDX, "index == count", E_ARG, .n = 3, .i = {1, NDS}},
    {F_DS_SUBSET_IDX, "index INT32_MAX", E_ARG, .n = 3, .i = {1, INT32_MAX}},
    {F_DS_SUBSET_IDX, "n*8 overflows (not read)", E_ARG, .n = BIGN},
    {F_DS_SUBSET_IDX, "n*64*4 overflows (not read)", E_ARG, .n = BYTES_OVERFLOW_N},

    {F_DS_SHAPE, "ds NULL", E_ARG, .null_arg = 1},
    {F_DS_HAS_LABELS, "ds NULL", E_ARG, .null_arg = 1},
    {F_DS_HAS_LABELS, "has_labels NULL", E_ARG, .null_arg = 2},
    {F_DS_LABELS, "ds NULL", E_ARG, .null_arg = 1, .n = NDS},
    {F_DS_LABELS, "out NULL", E_ARG, .null_arg = 2, .n = NDS},
    {F_DS_LABELS, "no labels", CVAE_E_STATE, .d = D_NOLAB, .n = NI},
    {F_DS_LABELS, "count 0", E_ARG, .n = 0},
    {F_DS_LABELS, "count -1", E_ARG, .n = -1},
    {F_DS_LABELS, "count - 1", E_ARG, .n = NDS - 1},
    {F_DS_LABELS, "count + 1", E_ARG, .n = NDS + 1},
    {F_DS_LABELS, "count INT64_MAX", E_ARG, .n = BIGN},
    {F_DS_IMAGES, "ds NULL", E_ARG, .null_arg = 1, .n = 1},
    {F_DS_IMAGES, "out NULL", E_ARG, .null_arg = 2, .n = 1},
    {F_DS_IMAGES, "count 0", E_ARG, .n = 0},
    {F_DS_IMAGES, "count -1", E_ARG, .n = -1},
    {F_DS_IMAGES, "start -1", E_ARG, .n = 1, .n2 = -1},
    {F_DS_IMAGES, "start == count", E_ARG, .n = 1, .n2 = NDS},
    {F_DS_IMAGES, "start + count > total", E_ARG, .n = 3, .n2 = NDS - 2},
    {F_DS_IMAGES, "start + count overflows", E_ARG, .n = BIGN, .n2 = 2},
    {F_DS_IMAGES, "start INT64_MIN", E_ARG, .n = 1, .n2 = INT64_MIN},

    /* metrics: ids in [0, 65535] */
    {F_METRICS, "labels NULL", E_ARG, .null_arg = 1, .n = NDS},
    {F_METRICS, "clusters NULL", E_ARG, .null_arg = 2, .n = NDS},
    {F_METRICS, "n 0", E_ARG, .n = 0},
    {F_METRICS, "n -1", E_ARG, .n = -1},
    {F_METRICS, "n*4 overflows (not read)", E_ARG, .n = BIGN},
    {F_METRICS, "label -1", E_ARG, .n = NDS, .i = {1, -1}},
    {F_METRICS, "label 65536", E_ARG, .n = NDS, .i = {1, 65536}},
    {F_METRICS, "label INT32_MAX", E_ARG, .n = NDS, .i = {1, INT32_MAX}},
    {F_METRICS, "cluster -1", E_ARG, .n = NDS, .i = {2, -1}},
    {F_METRICS, "cluster 65536", E_ARG, .n = NDS, .i = {2, 65536}},
    {F_METRICS, "cluster INT32_MIN", E_ARG, .n = NDS, .i = {2, INT32_MIN}},

    /* configs */
    {F_CFG_CREATE, "out NULL", E_ARG, .null_arg = 1},
    {F_CFG_CLONE, "cfg NULL", E_ARG, .null_arg = 1},
    {F_CFG_CLONE, "out NULL", E_ARG, .null_arg = 2},
    {F_CFG_SET, "cfg NULL", E_ARG, .null_arg = 1, .s = {"latent_dim", "5"}},
    {F_CFG_SET, "name NULL", E_ARG, .null_arg = 2, .s = {"latent_dim", "5"}},
    {F_CFG_SET, "value NULL", E_ARG, .null_arg = 3, .s = {"latent_dim", "5"}},
    {F_CFG_SET, "unknown name", E_ARG, .s = {"latent_dimension", "5"}},
    {F_CFG_SET, "empty name", E_ARG, .s = {"", "5"}},
    {F_CFG_SET, "empty value", E_ARG, .s = {"latent_dim", ""}},
    {F_CFG_SET, "not a number", E_ARG, .s = {"latent_dim", "five"}},
    {F_CFG_SET, "trailing text", E_ARG, .s = {"latent_dim", "5x"}},
    {F_CFG_SET, "int 0 below range", E_ARG, .s = {"latent_dim", "0"}},
    {F_CFG_SET, "int above range", E_ARG, .s = {"latent_dim", "4097"}},
    {F_CFG_SET, "int overflows long long", E_ARG, .s = {"latent_dim", "99999999999999999999"}},
    {F_CFG_SET, "int 2^32+5 (wraps to 5 in int)", E_ARG, .s = {"latent_dim", "4294967301"}},
    {F_CFG_SET, "even kernel by name", E_ARG, .s = {"branch1_kernel", "4"}},
    {F_CFG_SET, "double NaN", E_ARG, .s = {"lambda", "nan"}},
    {F_CFG_SET, "double inf", E_ARG, .s = {"lambda", "inf"}},
    {F_CFG_SET, "double 1e999", E_ARG, .s = {"lambda", "1e999"}},
    {F_CFG_SET, "double negative", E_ARG, .s = {"learning_rate", "-0.1"}},
    {F_CFG_SET, "seed negative", E_ARG, .s = {"seed", "-1"}},
    {F_CFG_SET, "seed 2^64", E_ARG, .s = {"seed", "18446744073709551616"}},
    {F_CFG_SET, "enum unknown", E_ARG, .s = {"prior", "gaussian"}},
    {F_CFG_SET, "enum by number", E_ARG, .s = {"prior", "1"}},
    {F_CFG_GET, "cfg NULL", E_ARG, .null_arg = 1, .s = {"latent_dim"}, .n = 32},
    {F_CFG_GET, "name NULL", E_ARG, .null_arg = 2, .s = {"latent_dim"}, .n = 32},
    {F_CFG_GET, "value NULL", E_ARG, .null_arg = 3, .s = {"latent_dim"}, .n = 32},
    {F_CFG_GET, "unknown name", E_ARG, .s = {"latent"}, .n = 32},
    {F_CFG_GET, "size 0", E_ARG, .s = {"latent_dim"}, .n = 0},
    {F_CFG_GET, "size 1 (no room for '4')", E_ARG, .s = {"latent_dim"}, .n = 1},
    {F_CFG_GET, "size too small for a double", E_ARG, .s = {"learning_rate"}, .n = 4},
    {F_CFG_INPUT_SHAPE, "cfg NULL", E_ARG, .null_arg = 1, .i = {1, 8, 8}},
    {F_CFG_INPUT_SHAPE, "channels 0", E_ARG, .i = {0, 8, 8}},
    {F_CFG_INPUT_SHAPE, "width 4097 (others valid, none kept)", E_ARG, .i = {3, 16, 4097}},
    {F_CFG_INPUT_SHAPE, "height -1", E_ARG, .i = {1, -1, 8}},
    {F_CFG_BRANCH_SET, "cfg NULL", E_ARG, .null_arg = 1, .i = {0, 1, 4, 3}},
    {F_CFG_BRANCH_SET, "index -1", E_ARG, .i = {-1, 1, 4, 3}},
    {F_CFG_BRANCH_SET, "index 4", E_ARG, .i = {CVAE_MAX_BRANCHES, 1, 4, 3}},
    {F_CFG_BRANCH_SET, "layers 0", E_ARG, .i = {0, 0, 4, 3}},
    {F_CFG_BRANCH_SET, "layers 17", E_ARG, .i = {0, 17, 4, 3}},
    {F_CFG_BRANCH_SET, "filters 0", E_ARG, .i = {0, 1, 0, 3}},
    {F_CFG_BRANCH_SET, "filters 1025", E_ARG, .i = {0, 1, 1025, 3}},
    {F_CFG_BRANCH_SET, "kernel even", E_ARG, .i = {0, 1, 4, 4}},
    {F_CFG_BRANCH_SET, "kernel 17", E_ARG, .i = {0, 1, 4, 17}},
    {F_CFG_BRANCH_SET, "kernel -1", E_ARG, .i = {0, 1, 4, -1}},
    {F_CFG_BRANCH_GET, "cfg NULL", E_ARG, .null_arg = 1, .i = {0}},
    {F_CFG_BRANCH_GET, "index -1", E_ARG, .i = {-1}},
    {F_CFG_BRANCH_GET, "index 4", E_ARG, .i = {CVAE_MAX_BRANCHES}},
    {F_CFG_CONV_BRANCH_SET, "cfg NULL", E_ARG, .null_arg = 1, .i = {1, 1, 4, 3}},
    {F_CFG_CONV_BRANCH_SET, "branch 0", E_ARG, .i = {0, 1, 4, 3}},
    {F_CFG_CONV_BRANCH_SET, "branch 5", E_ARG, .i = {CVAE_MAX_BRANCHES + 1, 1, 4, 3}},
    {F_CFG_CONV_BRANCH_SET, "layers 0", E_ARG, .i = {1, 0, 4, 3}},
    {F_CFG_CONV_BRANCH_SET, "filters 1025", E_ARG, .i = {4, 1, 1025, 3}},
    {F_CFG_CONV_BRANCH_SET, "kernel even", E_ARG, .i = {2, 1, 4, 4}},
    {F_CFG_CONV_BRANCH_GET, "cfg NULL", E_ARG, .null_arg = 1, .i = {1}},
    {F_CFG_CONV_BRANCH_GET, "branch 0", E_ARG, .i = {0}},
    {F_CFG_CONV_BRANCH_GET, "branch 5", E_ARG, .i = {CVAE_MAX_BRANCHES + 1}},
    {F_CFG_BETAS, "cfg NULL", E_ARG, .null_arg = 1, .x = {0.9, 0.999}},
    {F_CFG_BETAS, "beta1 NaN", E_ARG, .x = {NAN, 0.999}},
    {F_CFG_BETAS, "beta2 1 (beta1 valid, not kept)", E_ARG, .x = {0.5, 1.0}},
    {F_CFG_BETAS, "beta1 -0.1", E_ARG, .x = {-0.1, 0.999}},
    {F_CFG_SEED_GET, "cfg NULL", E_ARG, .null_arg = 1},
    {F_CFG_SEED_GET, "seed NULL", E_ARG, .null_arg = 2},

    /* optimizers */
    {F_OPT_ADAM, "out NULL", E_ARG, .null_arg = 1, .x = {1e-3, 0.9, 0.999, 1e-8, 0}},
    {F_OPT_ADAM, "lr 0", E_ARG, .x = {0, 0.9, 0.999, 1e-8, 0}},
    {F_OPT_ADAM, "lr -1", E_ARG, .x = {-1, 0.9, 0.999, 1e-8, 0}},
    {F_OPT_ADAM, "lr 11", E_ARG, .x = {11, 0.9, 0.999, 1e-8, 0}},
    {F_OPT_ADAM, "lr NaN", E_ARG, .x = {NAN, 0.9, 0.999, 1e-8, 0}},
    {F_OPT_ADAM, "lr Inf", E_ARG, .x = {INFINITY, 0.9, 0.999, 1e-8, 0}},
    {F_OPT_ADAM, "beta1 1", E_ARG, .x = {1e-3, 1, 0.999, 1e-8, 0}},
    {F_OPT_ADAM, "beta1 NaN", E_ARG, .x = {1e-3, NAN, 0.999, 1e-8, 0}},
    {F_OPT_ADAM, "beta2 -0.5", E_ARG, .x = {1e-3, 0.9, -0.5, 1e-8, 0}},
    {F_OPT_ADAM, "eps 0", E_ARG, .x = {1e-3, 0.9, 0.999, 0, 0}},
    {F_OPT_ADAM, "eps NaN", E_ARG, .x = {1e-3, 0.9, 0.999, NAN, 0}},
    {F_OPT_ADAM, "weight decay 2", E_ARG, .x = {1e-3, 0.9, 0.999, 1e-8, 2}},
    {F_OPT_ADAM, "weight decay -Inf", E_ARG, .x = {1e-3, 0.9, 0.999, 1e-8, -INFINITY}},
    {F_OPT_SGD, "out NULL", E_ARG, .null_arg = 1, .x = {1e-2, 0.9, 0}},
    {F_OPT_SGD, "lr 0", E_ARG, .x = {0, 0.9, 0}},
    {F_OPT_SGD, "lr NaN", E_ARG, .x = {NAN, 0.9, 0}},
    {F_OPT_SGD, "momentum 1", E_ARG, .x = {1e-2, 1, 0}},
    {F_OPT_SGD, "momentum -0.1", E_ARG, .x = {1e-2, -0.1, 0}},
    {F_OPT_SGD, "weight decay NaN", E_ARG, .x = {1e-2, 0.9, NAN}},
    {F_OPT_FROM_CFG, "cfg NULL", E_ARG, .null_arg = 1},
    {F_OPT_FROM_CFG, "out NULL", E_ARG, .null_arg = 2},
    {F_OPT_SET_LR, "opt NULL", E_ARG, .null_arg = 1, .x = {1e-3}},
    {F_OPT_SET_LR, "lr 0", E_ARG, .x = {0}},
    {F_OPT_SET_LR, "lr -1e-3", E_ARG, .x = {-1e-3}},
    {F_OPT_SET_LR, "lr NaN", E_ARG, .x = {NAN}},
    {F_OPT_SET_LR, "lr Inf", E_ARG, .x = {INFINITY}},
    {F_OPT_SET_LR, "lr 10.5", E_ARG, .x = {10.5}},

    /* models: construction and queries */
    {F_M_CREATE, "cfg NULL", E_ARG, .null_arg = 1},
    {F_M_CREATE, "out NULL", E_ARG, .null_arg = 2},
    {F_M_CREATE, "8x8 not divisible by 2^4 branches", E_ARG, .i = {1}},
    {F_M_CREATE, "recon_target features with 0 branches", E_ARG, .i = {2}},
    {F_M_CREATE, "64x4096x4096 input overflows the layout", E_ARG, .i = {3}},
    {F_M_CREATE, "9x9 input, 1 branch", E_ARG, .i = {4}},
    {F_M_GET_CONFIG, "model NULL", E_ARG, .null_arg = 1},
    {F_M_GET_CONFIG, "out NULL", E_ARG, .null_arg = 2},
    {F_M_NUM_PARAMS, "model NULL", E_ARG, .null_arg = 1},
    {F_M_NUM_PARAMS, "count NULL", E_ARG, .null_arg = 2},
    {F_M_EPOCHS_DONE, "model NULL", E_ARG, .null_arg = 1},
    {F_M_EPOCHS_DONE, "epochs NULL", E_ARG, .null_arg = 2},
    {F_M_OPT_STEPS, "model NULL", E_ARG, .null_arg = 1},
    {F_M_OPT_STEPS, "steps NULL", E_ARG, .null_arg = 2},
    {F_M_CLEAR_OPT, "model NULL", E_ARG, .null_arg = 1},
    {F_SHARD, "begin NULL", E_ARG, .null_arg = 1, .n = 10, .i = {0, 2}},
    {F_SHARD, "n NULL", E_ARG, .null_arg = 2, .n = 10, .i = {0, 2}},
    {F_SHARD, "count -1", E_ARG, .n = -1, .i = {0, 2}},
    {F_SHARD, "size 0", E_ARG, .n = 10, .i = {0, 0}},
    {F_SHARD, "rank -1", E_ARG, .n = 10, .i = {-1, 2}},
    {F_SHARD, "rank == size", E_ARG, .n = 10, .i = {2, 2}},
    {F_M_SET_DP, "model NULL", E_ARG, .null_arg = 1, .i = {0, 2, 1}},
    {F_M_SET_DP, "size 0", E_ARG, .i = {0, 0, 1}},
    {F_M_SET_DP, "rank -1", E_ARG, .i = {-1, 2, 1}},
    {F_M_SET_DP, "rank == size", E_ARG, .i = {3, 3, 1}},
    {F_M_SET_DP, "size 2 without reduce", E_ARG, .i = {0, 2, 0}},
    {F_M_SET_MICRO, "model NULL", E_ARG, .null_arg = 1, .i = {4}},
    {F_M_SET_MICRO, "rows -1", E_ARG, .i = {-1}},
    {F_M_SET_MICRO, "rows INT_MIN", E_ARG, .i = {INT_MIN}},
    {F_M_GET_MICRO, "model NULL", E_ARG, .null_arg = 1},
    {F_M_GET_MICRO, "rows NULL", E_ARG, .null_arg = 2},
    {F_M_SET_OVERLAP, "model NULL", E_ARG, .null_arg = 1, .i = {1}},
    {F_M_SET_OVERLAP, "on 2", E_ARG, .i = {2}},
    {F_M_SET_OVERLAP, "on -1", E_ARG, .i = {-1}},

    /* models: training (must leave the model untouched when it fails) */
    {F_M_TRAIN, "model NULL", E_ARG, .null_arg = 1, .i = {1}},
    {F_M_TRAIN, "data NULL", E_ARG, .null_arg = 2, .i = {1}},
    {F_M_TRAIN, "epochs 0", E_ARG, .i = {0}},
    {F_M_TRAIN, "epochs -1", E_ARG, .i = {-1}},
    {F_M_TRAIN, "epochs INT_MIN", E_ARG, .i = {INT_MIN}},
    {F_M_TRAIN, "images 16x16, model 8x8", E_ARG, .d = D_BIG, .i = {1}},
    {F_M_TRAIN, "images 2 channels, model 1", E_ARG, .d = D_CHAN, .i = {1}},
    {F_M_TRAIN, "optimizer bound to another layout", E_ARG, .i = {1, 1}},
    {F_M_LOSS, "model NULL", E_ARG, .null_arg = 1, .i = {CVAE_LOSS_COUNT}},
    {F_M_LOSS, "data NULL", E_ARG, .null_arg = 2, .i = {CVAE_LOSS_COUNT}},
    {F_M_LOSS, "losses NULL", E_ARG, .null_arg = 3, .i = {CVAE_LOSS_COUNT}},
    {F_M_LOSS, "num_losses 0", E_ARG, .i = {0}},
    {F_M_LOSS, "num_losses -1", E_ARG, .i = {-1}},
    {F_M_LOSS, "wrong image size", E_ARG, .d = D_BIG, .i = {CVAE_LOSS_COUNT}},
    {F_M_LOSS, "wrong channels", E_ARG, .d = D_CHAN, .i = {CVAE_LOSS_COUNT}},

    /* models: inference on caller buffers */
#define BUFFER_ROWS(F)                                                                          \
    {F, "model NULL", E_ARG, .null_arg = 1, .n = NI},                                          \
        {F, "images NULL", E_ARG, .null_arg = 2, .n = NI},                                     \
        {F, "n 0", E_ARG, .n = 0}, {F, "n -1", E_ARG, .n = -1},                                \
        {F, "n INT64_MIN", E_ARG, .n = INT64_MIN},                                             \
        {F, "n*64 overflows", E_ARG, .n = BIGN},                                               \
        {F, "n*64*4 overflows", E_ARG, .n = BYTES_OVERFLOW_N},                                 \
        {F, "NaN in the last image", CVAE_E_NUMERIC, .im = I_NAN, .n = NI},                    \
        {F, "+Inf pixel", CVAE_E_NUMERIC, .im = I_INF, .n = NI},                               \
        {F, "-Inf pixel", CVAE_E_NUMERIC, .im = I_NINF, .n = NI},                              \
        {F, "pixel 1.0001", E_ARG, .im = I_ABOVE, .n = NI},                                    \
        {F, "pixel -0.0001", E_ARG, .im = I_BELOW, .n = NI}
    BUFFER_ROWS(F_M_ENCODE),
    BUFFER_ROWS(F_M_PREDICT),
    {F_M_PREDICT, "clusters NULL", E_ARG, .null_arg = 3, .n = NI},
    BUFFER_ROWS(F_M_PROBA),
    {F_M_PROBA, "proba NULL", E_ARG, .null_arg = 3, .n = NI},
    BUFFER_ROWS(F_M_RECON),
    {F_M_RECON, "out NULL", E_ARG, .null_arg = 3, .n = NI},
#undef BUFFER_ROWS

    /* models: inference on data sets */
    {F_M_PREDICT_DS, "model NULL", E_ARG, .null_arg = 1},
    {F_M_PREDICT_DS, "data NULL", E_ARG, .null_arg = 2},
    {F_M_PREDICT_DS, "clusters NULL", E_ARG, .null_arg = 3},
    {F_M_PREDICT_DS, "wrong image size", E_ARG, .d = D_BIG},
    {F_M_PREDICT_DS, "wrong channels", E_ARG, .d = D_CHAN},
    {F_M_EVALUATE, "model NULL", E_ARG, .null_arg = 1},
    {F_M_EVALUATE, "data NULL", E_ARG, .null_arg = 2},
    {F_M_EVALUATE, "wrong image size", E_ARG, .d = D_BIG},
    {F_M_EVALUATE, "wrong channels", E_ARG, .d = D_CHAN},
    {F_M_EVALUATE, "data set without labels", CVAE_E_STATE, .d = D_NOLAB},
    {F_M_EVALUATE, "labels above 65535", E_ARG, .d = D_BIGLAB},
    {F_M_STEP_DUE, "model NULL", E_ARG, .null_arg = 1},
    {F_M_STEP_DUE, "data NULL", E_ARG, .null_arg = 2},
    {F_M_STEP_DUE, "due NULL", E_ARG, .null_arg = 3},
    {F_M_STEP_DUE, "wrong image size", E_ARG, .d = D_BIG},
    {F_M_STEP_DUE, "wrong channels", E_ARG, .d = D_CHAN},
    {F_M_GENERATE, "model NULL", E_ARG, .null_arg = 1, .i = {0}, .n = 2},
    {F_M_GENERATE, "out NULL", E_ARG, .null_arg = 2, .i = {0}, .n = 2},
    {F_M_GENERATE, "cluster -1", E_ARG, .i = {-1}, .n = 2},
    {F_M_GENERATE, "cluster k", E_ARG, .i = {K}, .n = 2},
    {F_M_GENERATE, "cluster INT_MIN", E_ARG, .i = {INT_MIN}, .n = 2},
    {F_M_GENERATE, "count 0", E_ARG, .i = {0}, .n = 0},
    {F_M_GENERATE, "count -1", E_ARG, .i = {0}, .n = -1},
    {F_M_GENERATE, "count*64*4 overflows", E_ARG, .i = {0}, .n = BIGN,
     .fixed_bug = "cvae_model_generate once did not check count*C*H*W*sizeof(float) for "
                  "overflow, and decoded and wrote past the caller's buffer until it crashed"},
    {F_M_GENERATE, "count*64*4 overflows (2^57)", E_ARG, .i = {0}, .n = BYTES_OVERFLOW_N,
     .fixed_bug = "as above"},

    /* models: files */
    {F_M_SAVE, "model NULL", E_ARG, .null_arg = 1, .s = {"m.st"}},
    {F_M_SAVE, "path NULL", E_ARG, .null_arg = 2},
    {F_M_SAVE, "path empty", E_ARG, .s = {""}},
    {F_M_SAVE, "path names a directory only", E_ARG, .s = {"@subdir/"}},
    {F_M_SAVE, "directory missing", CVAE_E_IO, .s = {"@missing/m.st"}},
    {F_M_SAVE, "parent is a regular file", CVAE_E_IO, .s = {"@img.idx/m.st"}},
    {F_M_SAVE, "target is a directory", CVAE_E_IO, .s = {"@subdir"}},
    {F_M_LOAD, "path NULL", E_ARG, .null_arg = 1},
    {F_M_LOAD, "out NULL", E_ARG, .null_arg = 2, .s = {"@model.st"}},
    {F_M_LOAD, "missing file", CVAE_E_IO, .s = {"@missing.st"}},
    {F_M_LOAD, "path empty", CVAE_E_IO, .s = {""}},
    {F_M_LOAD, "a directory", CVAE_E_IO, .s = {"@subdir"}},
    {F_M_LOAD, "an IDX file", CVAE_E_FORMAT, .s = {"@img.idx"}},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* A non-NULL pointer no constructor may leave in *out on failure. */
static char poison_obj;
#define POISON ((void *)&poison_obj)

typedef struct outcome {
    cvae_status st;
    int ctor;    /* 1 if the call is a constructor given a real out pointer */
    int out_ok;  /* ctor: *out was set to NULL */
} outcome;

/* Set *out to POISON, run, and record whether it came back NULL; a
 * constructor that wrongly succeeds has its object freed. */
#define CTOR(type, call_with_pout, destroy)                                                    \
    do {                                                                                       \
        type *o_ = POISON;                                                                     \
        type **pout = &o_;                                                                     \
        r.st = (call_with_pout);                                                               \
        r.ctor = 1;                                                                            \
        r.out_ok = o_ == NULL;                                                                 \
        if (r.st == CVAE_OK && o_ && o_ != POISON)                                             \
            destroy(o_);                                                                       \
    } while (0)

static const cvae_dataset *pick_ds(int d)
{
    switch (d) {
    case D_NULL: return NULL;
    case D_BIG: return ds_big;
    case D_CHAN: return ds_chan;
    case D_NOLAB: return ds_nolab;
    case D_BIGLAB: return ds_biglab;
    default: return ds;
    }
}

static const float *pick_images(int im)
{
    if (im == I_NULL)
        return NULL;
    memcpy(img_bad, img, sizeof img);
    float *last = &img_bad[NI * P - 1];
    switch (im) {
    case I_NAN: *last = NAN; break;
    case I_INF: img_bad[(NI - 1) * P + 5] = INFINITY; break;
    case I_NINF: img_bad[3 * P] = -INFINITY; break;
    case I_ABOVE: *last = 1.0001f; break;
    case I_BELOW: img_bad[P + 1] = -0.0001f; break;
    default: return img;
    }
    return img_bad;
}

static const char *resolve(const char *spec, char *buf, size_t size)
{
    if (!spec)
        return NULL;
    if (spec[0] == '@') {
        path_in_dir(buf, size, spec + 1);
        return buf;
    }
    if (spec[0] == '\0')
        return spec;
    path_in_dir(buf, size, spec);
    return buf;
}

static cvae_config *bad_model_config(int which)
{
    cvae_config *c = tiny_config();
    switch (which) {
    case 1: assert_int_equal(cvae_config_set_num_branches(c, 4), CVAE_OK); break;
    case 2:
        assert_int_equal(cvae_config_set_num_branches(c, 0), CVAE_OK);
        assert_int_equal(cvae_config_set_recon_target(c, CVAE_RECON_FEATURES), CVAE_OK);
        break;
    case 3:
        assert_int_equal(cvae_config_set_input_shape(c, 64, 4096, 4096), CVAE_OK);
        assert_int_equal(cvae_config_set_num_branches(c, 0), CVAE_OK);
        break;
    case 4: assert_int_equal(cvae_config_set_input_shape(c, 1, 9, 9), CVAE_OK); break;
    default: break;
    }
    return c;
}

static outcome run_row(const row *w)
{
    outcome r = {CVAE_OK, 0, 1};
    const int na = w->null_arg;
    const cvae_dataset *d = w->null_arg && w->fn != F_DS_LOAD_IDX ? ds : pick_ds(w->d);
    char p1[512], p2[512];
    int32_t lab[NDS], cl[NDS];
    int64_t idx[NDS];
    double dv[CVAE_LOSS_COUNT];
    cvae_config *c2 = NULL;
    switch (w->fn) {
    case F_SET_THREADS: r.st = cvae_set_num_threads(w->i[0]); break;

    case F_DS_LOAD_IDX: {
        const char *ip = na == 1 ? NULL : resolve(w->s[0], p1, sizeof p1);
        const char *lp = resolve(w->s[1], p2, sizeof p2);
        if (na == 2)
            r.st = cvae_dataset_load_idx(ip, lp, NULL);
        else
            CTOR(cvae_dataset, cvae_dataset_load_idx(ip, lp, pout), cvae_dataset_destroy);
        break;
    }
    case F_DS_FROM_U8:
    case F_DS_FROM_F32: {
        for (int i = 0; i < NDS; i++)
            lab[i] = i % K;
        if (w->i[3] == 1)
            lab[NI - 1] = -1;
        if (w->i[3] == 2)
            lab[0] = INT32_MIN;
        const int32_t *lp = w->i[3] ? lab : NULL;
        if (w->fn == F_DS_FROM_U8) {
            const uint8_t *px = na == 1 ? NULL : pix_u8;
            if (na == 2)
                r.st = cvae_dataset_from_u8(px, w->n, w->i[0], w->i[1], w->i[2], lp, NULL);
            else
                CTOR(cvae_dataset,
                     cvae_dataset_from_u8(px, w->n, w->i[0], w->i[1], w->i[2], lp, pout),
                     cvae_dataset_destroy);
        } else {
            const float *px = na == 1 ? NULL : pick_images(w->im);
            if (na == 2)
                r.st = cvae_dataset_from_f32(px, w->n, w->i[0], w->i[1], w->i[2], lp, NULL);
            else
                CTOR(cvae_dataset,
                     cvae_dataset_from_f32(px, w->n, w->i[0], w->i[1], w->i[2], lp, pout),
                     cvae_dataset_destroy);
        }
        break;
    }
    case F_DS_SUBSET_FIRST:
        if (na == 2)
            r.st = cvae_dataset_subset_first(d, w->n, NULL);
        else
            CTOR(cvae_dataset, cvae_dataset_subset_first(na == 1 ? NULL : d, w->n, pout),
                 cvae_dataset_destroy);
        break;
    case F_DS_SUBSET_IDX:
        for (int i = 0; i < NDS; i++)
            idx[i] = i;
        if (w->i[0])
            idx[2] = w->i[1];
        if (na == 3)
            r.st = cvae_dataset_subset_indices(d, idx, w->n, NULL);
        else
            CTOR(cvae_dataset,
                 cvae_dataset_subset_indices(na == 1 ? NULL : d, na == 2 ? NULL : idx, w->n,
                                             pout),
                 cvae_dataset_destroy);
        break;
    case F_DS_SHAPE: {
        int64_t n;
        int c, h, ww;
        r.st = cvae_dataset_shape(NULL, &n, &c, &h, &ww);
        break;
    }
    case F_DS_HAS_LABELS: {
        int has;
        r.st = cvae_dataset_has_labels(na == 1 ? NULL : d, na == 2 ? NULL : &has);
        break;
    }
    case F_DS_LABELS: {
        static int32_t big[NDS + 1];
        r.st = cvae_dataset_labels(na == 1 ? NULL : d, na == 2 ? NULL : big, w->n);
        break;
    }
    case F_DS_IMAGES:
        r.st = cvae_dataset_images_f32(na == 1 ? NULL : d, w->n2, w->n, na == 2 ? NULL : outbuf);
        break;

    case F_METRICS: {
        for (int i = 0; i < NDS; i++) {
            lab[i] = i % K;
            cl[i] = (i + 1) % K;
        }
        if (w->i[0] == 1)
            lab[NDS - 1] = w->i[1];
        if (w->i[0] == 2)
            cl[NDS / 2] = w->i[1];
        double a, pu, nm, ar;
        r.st = cvae_cluster_metrics(na == 1 ? NULL : lab, na == 2 ? NULL : cl, w->n, &a, &pu,
                                    &nm, &ar);
        break;
    }

    case F_CFG_CREATE: r.st = cvae_config_create(NULL); break;
    case F_CFG_CLONE:
        if (na == 2)
            r.st = cvae_config_clone(cfg, NULL);
        else
            CTOR(cvae_config, cvae_config_clone(NULL, pout), cvae_config_destroy);
        break;
    case F_CFG_SET:
        r.st = cvae_config_set(na == 1 ? NULL : cfg, na == 2 ? NULL : w->s[0],
                               na == 3 ? NULL : w->s[1]);
        break;
    case F_CFG_GET: {
        char v[64];
        r.st = cvae_config_get(na == 1 ? NULL : cfg, na == 2 ? NULL : w->s[0],
                               na == 3 ? NULL : v, (size_t)w->n);
        break;
    }
    case F_CFG_INPUT_SHAPE:
        r.st = cvae_config_set_input_shape(na == 1 ? NULL : cfg, w->i[0], w->i[1], w->i[2]);
        break;
    case F_CFG_BRANCH_SET:
        r.st = cvae_config_set_branch(na == 1 ? NULL : cfg, w->i[0], w->i[1], w->i[2], w->i[3]);
        break;
    case F_CFG_BRANCH_GET: {
        int l = -7, f = -7, k = -7;
        r.st = cvae_config_get_branch(na == 1 ? NULL : cfg, w->i[0], &l, &f, &k);
        break;
    }
    case F_CFG_CONV_BRANCH_SET:
        r.st = cvae_config_set_conv_branch(na == 1 ? NULL : cfg, w->i[0], w->i[1], w->i[2],
                                           w->i[3]);
        break;
    case F_CFG_CONV_BRANCH_GET: {
        int l = -7, f = -7, k = -7;
        r.st = cvae_config_get_conv_branch(na == 1 ? NULL : cfg, w->i[0], &l, &f, &k);
        break;
    }
    case F_CFG_BETAS:
        r.st = cvae_config_set_adam_betas(na == 1 ? NULL : cfg, w->x[0], w->x[1]);
        break;
    case F_CFG_SEED_GET: {
        uint64_t s;
        r.st = cvae_config_get_seed(na == 1 ? NULL : cfg, na == 2 ? NULL : &s);
        break;
    }

    case F_OPT_ADAM:
        if (na == 1)
            r.st = cvae_optimizer_create_adam(w->x[0], w->x[1], w->x[2], w->x[3], w->x[4], NULL);
        else
            CTOR(cvae_optimizer,
                 cvae_optimizer_create_adam(w->x[0], w->x[1], w->x[2], w->x[3], w->x[4], pout),
                 cvae_optimizer_destroy);
        break;
    case F_OPT_SGD:
        if (na == 1)
            r.st = cvae_optimizer_create_sgd(w->x[0], w->x[1], w->x[2], NULL);
        else
            CTOR(cvae_optimizer, cvae_optimizer_create_sgd(w->x[0], w->x[1], w->x[2], pout),
                 cvae_optimizer_destroy);
        break;
    case F_OPT_FROM_CFG:
        if (na == 2)
            r.st = cvae_optimizer_create_from_config(cfg, NULL);
        else
            CTOR(cvae_optimizer, cvae_optimizer_create_from_config(NULL, pout),
                 cvae_optimizer_destroy);
        break;
    case F_OPT_SET_LR: r.st = cvae_optimizer_set_learning_rate(na == 1 ? NULL : opt, w->x[0]); break;

    case F_M_CREATE:
        c2 = na == 1 ? NULL : bad_model_config(w->i[0]);
        if (na == 2)
            r.st = cvae_model_create(c2, NULL);
        else
            CTOR(cvae_model, cvae_model_create(c2, pout), cvae_model_destroy);
        cvae_config_destroy(c2);
        break;
    case F_M_GET_CONFIG:
        if (na == 2)
            r.st = cvae_model_get_config(model, NULL);
        else
            CTOR(cvae_config, cvae_model_get_config(NULL, pout), cvae_config_destroy);
        break;
    case F_M_NUM_PARAMS: {
        int64_t n;
        r.st = cvae_model_num_params(na == 1 ? NULL : model, na == 2 ? NULL : &n);
        break;
    }
    case F_M_EPOCHS_DONE: {
        int e;
        r.st = cvae_model_epochs_done(na == 1 ? NULL : model, na == 2 ? NULL : &e);
        break;
    }
    case F_M_OPT_STEPS: {
        int64_t n;
        r.st = cvae_model_optimizer_steps(na == 1 ? NULL : model, na == 2 ? NULL : &n);
        break;
    }
    case F_M_CLEAR_OPT:
        r.st = cvae_model_clear_optimizer(NULL);
        break;
    case F_SHARD: {
        int64_t b, n;
        r.st = cvae_shard(w->n, w->i[0], w->i[1], na == 1 ? NULL : &b, na == 2 ? NULL : &n);
        break;
    }
    case F_M_SET_DP:
        r.st = cvae_model_set_data_parallel(na == 1 ? NULL : model, w->i[0], w->i[1],
                                            w->i[2] ? sum_nothing : NULL, NULL);
        break;
    case F_M_SET_MICRO:
        r.st = cvae_model_set_micro_batch(na == 1 ? NULL : model, w->i[0]);
        break;
    case F_M_GET_MICRO: {
        int rows;
        r.st = cvae_model_get_micro_batch(na == 1 ? NULL : model, na == 2 ? NULL : &rows);
        break;
    }
    case F_M_SET_OVERLAP:
        r.st = cvae_model_set_reduce_overlap(na == 1 ? NULL : model, w->i[0]);
        break;
    case F_M_TRAIN:
        r.st = cvae_model_train(na == 1 ? NULL : model, na == 2 ? NULL : d, w->i[0],
                                w->i[1] ? opt_other : NULL, NULL, NULL);
        break;
    case F_M_LOSS:
        r.st = cvae_model_loss(na == 1 ? NULL : model, na == 2 ? NULL : d, na == 3 ? NULL : dv,
                               w->i[0]);
        break;
    case F_M_ENCODE:
    case F_M_PREDICT:
    case F_M_PROBA:
    case F_M_RECON: {
        cvae_model *m = na == 1 ? NULL : model;
        const float *x = na == 2 ? NULL : pick_images(w->im);
        float *o = na == 3 ? NULL : outbuf;
        switch (w->fn) {
        case F_M_ENCODE: r.st = cvae_model_encode(m, x, w->n, o, o + NI * S); break;
        case F_M_PREDICT: r.st = cvae_model_predict(m, x, w->n, na == 3 ? NULL : clus); break;
        case F_M_PROBA: r.st = cvae_model_predict_proba(m, x, w->n, o); break;
        default: r.st = cvae_model_reconstruct(m, x, w->n, o); break;
        }
        break;
    }
    case F_M_PREDICT_DS:
        r.st = cvae_model_predict_dataset(na == 1 ? NULL : model, na == 2 ? NULL : d,
                                          na == 3 ? NULL : clus, outbuf);
        break;
    case F_M_EVALUATE: {
        double a, pu, nm, ar;
        r.st = cvae_model_evaluate(na == 1 ? NULL : model, na == 2 ? NULL : d, &a, &pu, &nm, &ar);
        break;
    }
    case F_M_STEP_DUE: {
        int due;
        r.st = cvae_model_manifold_step_due(na == 1 ? NULL : model, na == 2 ? NULL : d,
                                            na == 3 ? NULL : &due);
        break;
    }
    case F_M_GENERATE:
        r.st = cvae_model_generate(na == 1 ? NULL : model, w->i[0], w->n, 5,
                                   na == 2 ? NULL : outbuf);
        break;
    case F_M_SAVE:
        r.st = cvae_model_save(na == 1 ? NULL : model,
                               na == 2 ? NULL : resolve(w->s[0], p1, sizeof p1));
        break;
    case F_M_LOAD:
        if (na == 2)
            r.st = cvae_model_load(resolve(w->s[0], p1, sizeof p1), NULL);
        else
            CTOR(cvae_model, cvae_model_load(na == 1 ? NULL : resolve(w->s[0], p1, sizeof p1), pout),
                 cvae_model_destroy);
        break;
    case F_COUNT: break;
    }
    return r;
}

/* Run a row in a child process: a regression of a fixed bug may crash or
 * scribble. Exit
 * code: 64 + the status, +32 if the message was missing; anything else (a
 * signal, a sanitizer's exit code) is a crash. */
static outcome run_row_forked(const row *w, int *crashed)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* CMocka's handlers would longjmp back into the test runner and run
         * the remaining tests in this child: die of the signal instead. */
        const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        plant_sentinel();
        outcome r = run_row(w);
        const char *m = cvae_last_error();
        int bad_msg = !m[0] || strcmp(m, SENTINEL) == 0;
        _exit(64 + (int)r.st + (bad_msg ? 32 : 0));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    outcome r = {CVAE_E_INTERNAL, 0, 1};
    *crashed = !WIFEXITED(status);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code >= 64 && code < 128) {
        r.st = (cvae_status)(code & 31);
        if (code & 32)
            (void)cvae__fail(CVAE_E_INTERNAL, "%s", "");
        else
            (void)cvae__fail(CVAE_E_INTERNAL, "child reported a message");
    } else if (WIFEXITED(status)) {
        /* e.g. a sanitizer report, which exits with its own code */
        *crashed = 1;
        (void)cvae__fail(CVAE_E_INTERNAL, "child exited with code %d", code);
    } else {
        (void)cvae__fail(CVAE_E_INTERNAL, "child killed by signal %d", WTERMSIG(status));
    }
    return r;
}

static int fn_seen[F_COUNT];
static long n_ctor_rows, n_rows_run;

static void check_row(const row *w, int forked)
{
    char what[256];
    snprintf(what, sizeof what, "%s (%s)", fn_names[w->fn], w->what);
    int crashed = 0;
    outcome r;
    int tmp_before = temp_files_in(dir);
    if (forked) {
        r = run_row_forked(w, &crashed);
    } else {
        plant_sentinel();
        r = run_row(w);
    }
    n_calls++;
    n_rows_run++;
    fn_seen[w->fn] = 1;
    note_fn(fn_names[w->fn]);
    if (crashed) {
        CHECK(0, "%s: CRASHED (%s)%s%s", what, cvae_last_error(),
              w->fixed_bug ? " - REGRESSION OF A FIXED BUG: " : "", w->fixed_bug ? w->fixed_bug : "");
        return;
    }
    CHECK(r.st == w->expect, "%s: returned %d (%s), expected %d (%s)%s%s", what, (int)r.st,
          cvae_strerror(r.st), (int)w->expect, cvae_strerror(w->expect),
          w->fixed_bug ? " - REGRESSION OF A FIXED BUG: " : "", w->fixed_bug ? w->fixed_bug : "");
    check_message(what);
    if (r.ctor) {
        n_ctor_rows++;
        CHECK(r.out_ok, "%s: *out not NULL after failure", what);
    }
    CHECK(temp_files_in(dir) == tmp_before, "%s: left a temporary file behind", what);
    verify_handles(what);
}

static void prepare_files(void)
{
    char p[512];
    /* a valid 3-image IDX file, a directory, and a valid checkpoint */
    uint8_t idx[16 + 3 * P] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, H, 0, 0, 0, W};
    memcpy(idx + 16, pix_u8, 3 * P);
    path_in_dir(p, sizeof p, "img.idx");
    write_file(p, idx, sizeof idx);
    path_in_dir(p, sizeof p, "subdir");
    if (mkdir(p, 0755) != 0)
        assert_true(access(p, F_OK) == 0);
    path_in_dir(p, sizeof p, "model.st");
    assert_int_equal(cvae_model_save(model, p), CVAE_OK);
}

static void test_call_matrix(void **state)
{
    (void)state;
    prepare_files();
    verify_handles("setup");
    int before_threads = cvae_get_num_threads();
    for (size_t i = 0; i < NROWS; i++)
        if (!rows[i].fixed_bug)
            check_row(&rows[i], 0);
    CHECK(cvae_get_num_threads() == before_threads, "thread count changed by failing calls");
    int nfn = 0;
    for (int f = 0; f < F_COUNT; f++)
        nfn += fn_seen[f];
    print_message("call table: %ld failing calls (%ld constructors) over %d functions\n",
                  n_rows_run, n_ctor_rows, nfn);
    assert_int_equal(n_failed, 0);
}

/* ------------------------------------------------------------------------ */
/* Typed config accessors: every setter out of range, every getter NULL     */
/* ------------------------------------------------------------------------ */

typedef cvae_status (*set_i)(cvae_config *, int);
typedef cvae_status (*get_i)(const cvae_config *, int *);
typedef cvae_status (*set_d)(cvae_config *, double);
typedef cvae_status (*get_d)(const cvae_config *, double *);

/* The enum setters take enum types; adapters give them one signature. */
#define ENUM_ADAPTER(fn, type)                                                                 \
    static cvae_status fn##_i(cvae_config *c, int v) { return cvae_config_set_##fn(c, (type)v); } \
    static cvae_status fn##_g(const cvae_config *c, int *v)                                    \
    {                                                                                          \
        type t;                                                                                \
        cvae_status st = cvae_config_get_##fn(c, v ? &t : NULL);                               \
        if (v && !st)                                                                          \
            *v = (int)t;                                                                       \
        return st;                                                                             \
    }
ENUM_ADAPTER(encoder_activation, cvae_activation)
ENUM_ADAPTER(category_input, cvae_category_input)
ENUM_ADAPTER(prior, cvae_prior)
ENUM_ADAPTER(recon_target, cvae_recon_target)
ENUM_ADAPTER(optimizer, cvae_optimizer_kind)
ENUM_ADAPTER(recipe, cvae_recipe)
ENUM_ADAPTER(manifold_start, cvae_manifold_start)
ENUM_ADAPTER(finetune_prior, cvae_prior)

static const struct {
    const char *name;
    set_i set;
    get_i get;
    int lo, hi;
} int_opts[] = {
    {"branches", cvae_config_set_branches, cvae_config_get_branches, 0, 4},
    {"num_branches", cvae_config_set_num_branches, cvae_config_get_num_branches, 0, 4},
    {"encoder_units", cvae_config_set_encoder_units, cvae_config_get_encoder_units, 1, 65536},
    {"decoder_units", cvae_config_set_decoder_units, cvae_config_get_decoder_units, 1, 65536},
    {"latent_dim", cvae_config_set_latent_dim, cvae_config_get_latent_dim, 1, 4096},
    {"clusters", cvae_config_set_clusters, cvae_config_get_clusters, 2, CVAE_MAX_CLUSTERS},
    {"category_units", cvae_config_set_category_units, cvae_config_get_category_units, 1, 65536},
    {"conv_trainable", cvae_config_set_conv_trainable, cvae_config_get_conv_trainable, 0, 1},
    {"warmup_epochs", cvae_config_set_warmup_epochs, cvae_config_get_warmup_epochs, 0, 10000},
    {"kmeans_init", cvae_config_set_kmeans_init, cvae_config_get_kmeans_init, 0, 1},
    {"batch_size", cvae_config_set_batch_size, cvae_config_get_batch_size, 1, 65536},
    {"epochs", cvae_config_set_epochs, cvae_config_get_epochs, 1, 100000},
    {"threads", cvae_config_set_threads, cvae_config_get_threads, 1, 1024},
    {"encoder_activation", encoder_activation_i, encoder_activation_g, 0, 1},
    {"category_input", category_input_i, category_input_g, 0, 1},
    {"prior", prior_i, prior_g, 0, 1},
    {"recon_target", recon_target_i, recon_target_g, 0, 1},
    {"optimizer", optimizer_i, optimizer_g, 0, 1},
    {"recipe", recipe_i, recipe_g, 0, 1},
    {"manifold_start", manifold_start_i, manifold_start_g, 0, 1},
    {"finetune_prior", finetune_prior_i, finetune_prior_g, 0, 1},
    {"augment", cvae_config_set_augment, cvae_config_get_augment, 0, 1},
    {"pretrain_epochs", cvae_config_set_pretrain_epochs, cvae_config_get_pretrain_epochs, 0,
     100000},
    {"manifold_neighbors", cvae_config_set_manifold_neighbors,
     cvae_config_get_manifold_neighbors, 2, 1000},
    {"embedding_dim", cvae_config_set_embedding_dim, cvae_config_get_embedding_dim, 0, 256},
    {"manifold_every", cvae_config_set_manifold_every, cvae_config_get_manifold_every, 0, 100000},
    {"manifold_runs", cvae_config_set_manifold_runs, cvae_config_get_manifold_runs, 1, 64},
    {"consistency_finetune", cvae_config_set_consistency_finetune,
     cvae_config_get_consistency_finetune, 0, 1},
};

static const struct {
    const char *name;
    set_d set;
    get_d get;
    double lo, hi;
} dbl_opts[] = {
    {"lambda", cvae_config_set_lambda, cvae_config_get_lambda, 0, 1e6},
    {"balance_weight", cvae_config_set_balance_weight, cvae_config_get_balance_weight, 0, 1e6},
    {"category_weight", cvae_config_set_category_weight, cvae_config_get_category_weight,
     -1e6, 1e6},
    {"learning_rate", cvae_config_set_learning_rate, cvae_config_get_learning_rate, 1e-12, 10},
    {"adam_eps", cvae_config_set_adam_eps, cvae_config_get_adam_eps, 1e-30, 1},
    {"weight_decay", cvae_config_set_weight_decay, cvae_config_get_weight_decay, 0, 1},
    {"momentum", cvae_config_set_momentum, cvae_config_get_momentum, 0, 0.999999},
    {"consistency_weight", cvae_config_set_consistency_weight,
     cvae_config_get_consistency_weight, 0, 1e6},
    {"contrast_temperature", cvae_config_set_contrast_temperature,
     cvae_config_get_contrast_temperature, 0, 1e6},
    {"augment_gain", cvae_config_set_augment_gain, cvae_config_get_augment_gain, 0, 0.9},
    {"pseudo_label_weight", cvae_config_set_pseudo_label_weight,
     cvae_config_get_pseudo_label_weight, 0, 1e6},
    {"pseudo_label_threshold", cvae_config_set_pseudo_label_threshold,
     cvae_config_get_pseudo_label_threshold, 0, 1},
    {"manifold_overcluster", cvae_config_set_manifold_overcluster,
     cvae_config_get_manifold_overcluster, 1, 4},
};

/* One failing accessor call: status, message, config unchanged. */
static void expect_cfg_fail(cvae_status st, const char *fn, const char *what)
{
    char w[160];
    snprintf(w, sizeof w, "%s (%s)", fn, what);
    note_fn(fn);
    n_calls++;
    CHECK(st == CVAE_E_INVALID_ARG, "%s: returned %d, expected %d", w, (int)st,
          (int)CVAE_E_INVALID_ARG);
    check_message(w);
    verify_handles(w);
}

static void test_config_accessors(void **state)
{
    (void)state;
    long calls0 = n_calls;
    int setters = 0, getters = 0;
    for (size_t i = 0; i < sizeof int_opts / sizeof int_opts[0]; i++) {
        const int lo = int_opts[i].lo, hi = int_opts[i].hi;
        const int bad[] = {lo - 1, hi + 1, INT_MIN, INT_MAX, -1};
        char sn[64], gn[64];
        snprintf(sn, sizeof sn, "cvae_config_set_%s", int_opts[i].name);
        snprintf(gn, sizeof gn, "cvae_config_get_%s", int_opts[i].name);
        setters++;
        getters++;
        plant_sentinel();
        expect_cfg_fail(int_opts[i].set(NULL, lo), sn, "cfg NULL");
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            if (bad[b] >= lo && bad[b] <= hi)
                continue;
            char what[64];
            snprintf(what, sizeof what, "set %d", bad[b]);
            plant_sentinel();
            expect_cfg_fail(int_opts[i].set(cfg, bad[b]), sn, what);
        }
        int v;
        plant_sentinel();
        expect_cfg_fail(int_opts[i].get(NULL, &v), gn, "cfg NULL");
        plant_sentinel();
        expect_cfg_fail(int_opts[i].get(cfg, NULL), gn, "out NULL");
    }
    for (size_t i = 0; i < sizeof dbl_opts / sizeof dbl_opts[0]; i++) {
        const double lo = dbl_opts[i].lo, hi = dbl_opts[i].hi;
        const double bad[] = {nextafter(lo, -INFINITY), nextafter(hi, INFINITY), -DBL_MAX, DBL_MAX,
                              NAN, INFINITY, -INFINITY};
        char sn[64], gn[64];
        snprintf(sn, sizeof sn, "cvae_config_set_%s", dbl_opts[i].name);
        snprintf(gn, sizeof gn, "cvae_config_get_%s", dbl_opts[i].name);
        setters++;
        getters++;
        plant_sentinel();
        expect_cfg_fail(dbl_opts[i].set(NULL, lo), sn, "cfg NULL");
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            char what[64];
            snprintf(what, sizeof what, "set %g", bad[b]);
            plant_sentinel();
            expect_cfg_fail(dbl_opts[i].set(cfg, bad[b]), sn, what);
        }
        double v;
        plant_sentinel();
        expect_cfg_fail(dbl_opts[i].get(NULL, &v), gn, "cfg NULL");
        plant_sentinel();
        expect_cfg_fail(dbl_opts[i].get(cfg, NULL), gn, "out NULL");
    }
    /* Accessors outside the two tables whose NULL-handle case the call table
     * does not already cover. Their outputs may legitimately be NULL. */
    int a, b, c;
    double x, y;
    plant_sentinel();
    expect_cfg_fail(cvae_config_get_input_shape(NULL, &a, &b, &c), "cvae_config_get_input_shape",
                    "cfg NULL");
    plant_sentinel();
    expect_cfg_fail(cvae_config_get_adam_betas(NULL, &x, &y), "cvae_config_get_adam_betas",
                    "cfg NULL");
    plant_sentinel();
    expect_cfg_fail(cvae_config_set_seed(NULL, 1), "cvae_config_set_seed", "cfg NULL");
    plant_sentinel();
    expect_cfg_fail(cvae_config_get_augment_ranges(NULL, &x, &y, &x),
                    "cvae_config_get_augment_ranges", "cfg NULL");
    plant_sentinel();
    expect_cfg_fail(cvae_config_set_augment_ranges(NULL, 10, 0.1, 0.1),
                    "cvae_config_set_augment_ranges", "cfg NULL");
    {
        /* each of the three out of range, one at a time, and NaN */
        static const double bad[][3] = {{-1, 0.1, 0.1}, {181, 0.1, 0.1}, {10, -0.1, 0.1},
                                        {10, 0.6, 0.1}, {10, 0.1, -0.1}, {10, 0.1, 0.6},
                                        {NAN, 0.1, 0.1}, {10, 0.1, INFINITY}};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            plant_sentinel();
            expect_cfg_fail(cvae_config_set_augment_ranges(cfg, bad[i][0], bad[i][1], bad[i][2]),
                            "cvae_config_set_augment_ranges", "out of range");
        }
    }
    getters += 3;
    setters += 2;
    print_message("typed accessors: %d setters and %d getters, %ld failing calls\n", setters,
                  getters, n_calls - calls0);
    assert_int_equal(n_failed, 0);
}

/* Functions without a status: they must cope with any argument. */
static void test_statusless_functions(void **state)
{
    (void)state;
    int nopt = 0;
    while (cvae_config_option_name(nopt))
        nopt++;
    const int weird[] = {-1, 10, 99, INT_MAX, INT_MIN};
    const int past[] = {-1, nopt, nopt + 1, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof weird / sizeof weird[0]; i++) {
        const char *s = cvae_strerror((cvae_status)weird[i]);
        CHECK(s && strcmp(s, "unknown status") == 0, "cvae_strerror(%d) = %s", weird[i],
              s ? s : "NULL");
        CHECK(cvae_config_option_name(past[i]) == NULL, "option_name(%d) not NULL", past[i]);
        CHECK(cvae_config_option_help(past[i]) == NULL, "option_help(%d) not NULL", past[i]);
        n_calls += 3;
    }
    CHECK(cvae_config_option_help(nopt - 1) != NULL, "option_help(last) is NULL");
    const char *names[] = {"cvae_strerror", "cvae_config_option_name", "cvae_config_option_help",
                           "cvae_dataset_destroy", "cvae_config_destroy",
                           "cvae_optimizer_destroy", "cvae_model_destroy", "cvae_last_error",
                           "cvae_version_string", "cvae_version_number",
                           "cvae_get_num_threads"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        note_fn(names[i]);
    cvae_dataset_destroy(NULL);
    cvae_config_destroy(NULL);
    cvae_optimizer_destroy(NULL);
    cvae_model_destroy(NULL);
    n_calls += 4;
    CHECK(cvae_last_error() != NULL, "cvae_last_error() NULL");
    CHECK(strcmp(cvae_version_string(), "0.1.0") == 0 &&
              cvae_version_number() == CVAE_VERSION_NUMBER,
          "version");
    verify_handles("statusless calls");
    assert_int_equal(n_failed, 0);
}

/* ------------------------------------------------------------------------ */
/* Files: empty, truncated at every byte, foreign, over-promising           */
/* ------------------------------------------------------------------------ */

static long n_file_cases, n_truncations;

/* Load images (and labels) and expect a failure with *out NULL. */
static void expect_idx_fail(const char *ip, const char *lp, cvae_status expect, const char *what)
{
    cvae_dataset *o = POISON;
    plant_sentinel();
    cvae_status st = cvae_dataset_load_idx(ip, lp, &o);
    n_calls++;
    n_file_cases++;
    CHECK(st == expect, "load_idx (%s): returned %d (%s: %s), expected %d", what, (int)st,
          cvae_strerror(st), cvae_last_error(), (int)expect);
    CHECK(o == NULL, "load_idx (%s): *out not NULL", what);
    if (st == CVAE_OK && o && o != POISON)
        cvae_dataset_destroy(o);
    check_message(what);
}

static void expect_ckpt_fail(const char *path, cvae_status expect, const char *what)
{
    cvae_model *o = POISON;
    plant_sentinel();
    cvae_status st = cvae_model_load(path, &o);
    n_calls++;
    n_file_cases++;
    CHECK(st == expect, "model_load (%s): returned %d (%s: %s), expected %d", what, (int)st,
          cvae_strerror(st), cvae_last_error(), (int)expect);
    CHECK(o == NULL, "model_load (%s): *out not NULL", what);
    if (st == CVAE_OK && o && o != POISON)
        cvae_model_destroy(o);
    check_message(what);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void write_gz(const char *path, const void *buf, size_t len)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, buf, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
}

/* Truncate a copy of buf at every length in [0, len) and expect a failure
 * from load(path). ftruncate from the top keeps it to one write. */
static void truncations(const char *path, const unsigned char *buf, size_t len, int idx_images,
                        const char *images_for_labels, const char *what)
{
    write_file(path, buf, len);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    for (size_t cut = len; cut-- > 0;) {
        assert_int_equal(ftruncate(fd, (off_t)cut), 0);
        char w[128];
        snprintf(w, sizeof w, "%s cut to %zu of %zu bytes", what, cut, len);
        if (idx_images)
            expect_idx_fail(path, NULL, CVAE_E_FORMAT, w);
        else if (images_for_labels)
            expect_idx_fail(images_for_labels, path, CVAE_E_FORMAT, w);
        else
            expect_ckpt_fail(path, CVAE_E_FORMAT, w);
        n_truncations++;
        /* cheap enough to prove after every cut */
        verify_handles(w);
    }
    close(fd);
}

static void test_idx_files(void **state)
{
    (void)state;
    enum { N3 = 3 };
    char ip[512], lp[512], gp[512], bad[512], bad2[512];
    path_in_dir(ip, sizeof ip, "good_images.idx");
    path_in_dir(lp, sizeof lp, "good_labels.idx");
    path_in_dir(gp, sizeof gp, "good_images.idx.gz");
    path_in_dir(bad, sizeof bad, "bad.idx");
    path_in_dir(bad2, sizeof bad2, "bad2.idx");

    uint8_t im[16 + N3 * P] = {0, 0, 8, 3};
    put_be32(im + 4, N3);
    put_be32(im + 8, H);
    put_be32(im + 12, W);
    memcpy(im + 16, pix_u8, N3 * P);
    uint8_t lb[8 + N3] = {0, 0, 8, 1};
    put_be32(lb + 4, N3);
    lb[8] = 0;
    lb[9] = 1;
    lb[10] = 2;
    write_file(ip, im, sizeof im);
    write_file(lp, lb, sizeof lb);
    write_gz(gp, im, sizeof im);

    /* the untouched files load: the failures below are the mutations */
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_load_idx(ip, lp, &d), CVAE_OK);
    cvae_dataset_destroy(d);
    assert_int_equal(cvae_dataset_load_idx(gp, lp, &d), CVAE_OK);
    cvae_dataset_destroy(d);

    long t0 = n_truncations;
    truncations(bad, im, sizeof im, 1, NULL, "raw images");
    size_t glen;
    unsigned char *gz = read_file(gp, &glen);
    truncations(bad, gz, glen, 1, NULL, "gzip images");
    free(gz);
    truncations(bad2, lb, sizeof lb, 0, ip, "labels");
    long t_idx = n_truncations - t0;

    /* mutations of a valid file: name, change, expected status */
    struct {
        const char *what;
        int off;       /* byte to patch (-1: none) */
        uint32_t be;   /* big-endian word written at off */
        int extra;     /* bytes appended (trailing data) */
        cvae_status expect;
    } muts[] = {
        {"magic 0x00000903 (signed bytes)", 0, 0x00000903u, 0, CVAE_E_FORMAT},
        {"magic 0x01000803", 0, 0x01000803u, 0, CVAE_E_FORMAT},
        {"magic 0x00000801 (labels) as images", 0, 0x00000801u, 0, CVAE_E_FORMAT},
        {"magic 0x00000802 (2-D)", 0, 0x00000802u, 0, CVAE_E_FORMAT},
        {"magic 0x00000805 (5-D)", 0, 0x00000805u, 0, CVAE_E_FORMAT},
        {"magic 0x1f8b0803 (gzip lookalike)", 0, 0x1f8b0803u, 0, CVAE_E_FORMAT},
        {"count 4 but 3 images present", 4, 4u, 0, CVAE_E_FORMAT},
        {"count 2^32-1 (promises 274 GB)", 4, 0xFFFFFFFFu, 0, CVAE_E_FORMAT},
        {"height 65535", 8, 65535u, 0, CVAE_E_FORMAT},
        {"width 65536 (above the limit)", 12, 65536u, 0, CVAE_E_FORMAT},
        {"height 0", 8, 0u, 0, CVAE_E_FORMAT},
        {"count 0", 4, 0u, 0, CVAE_E_FORMAT},
        {"one trailing byte", -1, 0, 1, CVAE_E_FORMAT},
    };
    for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
        uint8_t b[sizeof im + 1];
        memcpy(b, im, sizeof im);
        b[sizeof im] = 0x55;
        if (muts[i].off >= 0)
            put_be32(b + muts[i].off, muts[i].be);
        write_file(bad, b, sizeof im + (size_t)muts[i].extra);
        expect_idx_fail(bad, NULL, muts[i].expect, muts[i].what);
        write_gz(bad, b, sizeof im + (size_t)muts[i].extra);
        expect_idx_fail(bad, NULL, muts[i].expect, muts[i].what);
        verify_handles(muts[i].what);
    }
    /* 4-D header promising 65535^3 pixels per image: refused before reading */
    uint8_t h4[20] = {0, 0, 8, 4};
    put_be32(h4 + 4, 1);
    put_be32(h4 + 8, 65535);
    put_be32(h4 + 12, 65535);
    put_be32(h4 + 16, 65535);
    write_file(bad, h4, sizeof h4);
    expect_idx_fail(bad, NULL, CVAE_E_FORMAT, "4-D 65535^3 pixels");
    put_be32(h4 + 8, 64);
    put_be32(h4 + 12, 4096);
    put_be32(h4 + 16, 4097); /* just above 2^30 pixels */
    write_file(bad, h4, sizeof h4);
    expect_idx_fail(bad, NULL, CVAE_E_FORMAT, "4-D just above 2^30 pixels");

    /* labels: foreign magic, count mismatch, images file in their place */
    uint8_t l2[sizeof lb];
    memcpy(l2, lb, sizeof lb);
    put_be32(l2, 0x00000803u);
    write_file(bad2, l2, sizeof l2);
    expect_idx_fail(ip, bad2, CVAE_E_FORMAT, "labels with images magic");
    memcpy(l2, lb, sizeof lb);
    put_be32(l2 + 4, 2);
    write_file(bad2, l2, sizeof l2 - 1);
    expect_idx_fail(ip, bad2, CVAE_E_FORMAT, "2 labels for 3 images");
    memcpy(l2, lb, sizeof lb);
    put_be32(l2 + 4, 1000);
    write_file(bad2, l2, sizeof l2);
    expect_idx_fail(ip, bad2, CVAE_E_FORMAT, "labels header promises 1000");
    expect_idx_fail(ip, ip, CVAE_E_FORMAT, "images file given as labels");
    expect_idx_fail(lp, NULL, CVAE_E_FORMAT, "labels file given as images");
    char ck[512];
    path_in_dir(ck, sizeof ck, "model.st");
    expect_idx_fail(ck, NULL, CVAE_E_FORMAT, "a checkpoint given as images");
    write_file(bad, "", 0);
    expect_idx_fail(bad, NULL, CVAE_E_FORMAT, "empty images file");
    expect_idx_fail(ip, bad, CVAE_E_FORMAT, "empty labels file");
    write_gz(bad, "", 0);
    expect_idx_fail(bad, NULL, CVAE_E_FORMAT, "empty gzip stream");
    /* a gzip stream whose CRC is wrong */
    gz = read_file(gp, &glen);
    gz[glen - 6] ^= 0xFF;
    write_file(bad, gz, glen);
    expect_idx_fail(bad, NULL, CVAE_E_FORMAT, "gzip CRC mismatch");
    free(gz);
    verify_handles("IDX cases");

    print_message("IDX files: %ld truncations (raw %zu + gzip %zu + labels %zu bytes) and %ld "
                  "other cases\n",
                  t_idx, sizeof im, glen, sizeof lb, n_file_cases - t_idx);
    unlink(ip);
    unlink(lp);
    unlink(gp);
    unlink(bad);
    unlink(bad2);
    assert_int_equal(n_failed, 0);
}

/* Replace the first occurrence of `from` after the 8-byte length by `to`
 * (same length, so offsets stay valid). */
static void patch(unsigned char *buf, size_t len, const char *from, const char *to)
{
    size_t fl = strlen(from);
    assert_int_equal(fl, strlen(to));
    for (size_t i = 8; i + fl <= len; i++)
        if (memcmp(buf + i, from, fl) == 0) {
            memcpy(buf + i, to, fl);
            return;
        }
    fail_msg("'%s' not found in the checkpoint", from);
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void test_checkpoint_files(void **state)
{
    (void)state;
    char good[512], bad[512];
    path_in_dir(good, sizeof good, "model.st");
    path_in_dir(bad, sizeof bad, "bad.st");
    assert_int_equal(cvae_model_save(model, good), CVAE_OK);
    size_t len;
    unsigned char *ck = read_file(good, &len);
    cvae_model *m;
    assert_int_equal(cvae_model_load(good, &m), CVAE_OK);
    cvae_model_destroy(m);

    long f0 = n_file_cases;
    truncations(bad, ck, len, 0, NULL, "checkpoint");
    long ntr = n_file_cases - f0;

    unsigned char *b = malloc(len + 16);
    assert_non_null(b);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)ck[i] << (8 * i);
    struct {
        const char *what;
        const char *from, *to; /* same-length patch of the header text */
        int64_t hlen_delta;    /* added to the header length, or: */
        uint64_t hlen_set;     /* if non-zero, the header length */
        int extra;             /* trailing bytes appended */
    } muts[] = {
        {"foreign format name", "convvae-checkpoint-1", "convvae-checkpoint-9", 0, 0, 0},
        {"format key renamed", "\"format\"", "\"Format\"", 0, 0, 0},
        {"config key renamed", "\"config\"", "\"cOnfig\"", 0, 0, 0},
        {"config latent 4 -> 5 (tensors no longer fit)", "latent_dim\\\":4", "latent_dim\\\":5",
         0, 0, 0},
        {"config latent 0 (invalid)", "latent_dim\\\":4", "latent_dim\\\":0", 0, 0, 0},
        {"config 8x8 -> 8x9 input", "input_width\\\":8", "input_width\\\":9", 0, 0, 0},
        {"config unknown option", "\\\"seed\\\"", "\\\"sEed\\\"", 0, 0, 0},
        {"epochs_done not a number", "\"epochs_done\":\"0\"", "\"epochs_done\":\"x\"", 0, 0, 0},
        {"dtype F16", "\"F32\"", "\"F16\"", 0, 0, 0},
        {"tensor renamed", "\"means\"", "\"meanz\"", 0, 0, 0},
        {"header length + 1 (promises a byte more)", NULL, NULL, 1, 0, 0},
        {"header length - 1", NULL, NULL, -1, 0, 0},
        {"header length = file size (promises 8 more)", NULL, NULL, 0, 1, 0},
        {"header length 2^63", NULL, NULL, 0, UINT64_C(1) << 63, 0},
        {"header length 2^64-1", NULL, NULL, 0, UINT64_MAX, 0},
        {"header length 0", NULL, NULL, 0, 0, -1},
        {"trailing data after the tensors", NULL, NULL, 0, 0, 4},
    };
    for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
        memcpy(b, ck, len);
        size_t blen = len;
        if (muts[i].from)
            patch(b, len, muts[i].from, muts[i].to);
        if (muts[i].hlen_delta)
            put_le64(b, hlen + (uint64_t)muts[i].hlen_delta);
        if (muts[i].hlen_set == 1)
            put_le64(b, (uint64_t)len);
        else if (muts[i].hlen_set)
            put_le64(b, muts[i].hlen_set);
        if (muts[i].extra == -1)
            put_le64(b, 0);
        else if (muts[i].extra > 0) {
            memset(b + len, 0x3f, (size_t)muts[i].extra);
            blen += (size_t)muts[i].extra;
        }
        write_file(bad, b, blen);
        expect_ckpt_fail(bad, CVAE_E_FORMAT, muts[i].what);
        verify_handles(muts[i].what);
    }
    /* the header alone, with its data cut off entirely */
    write_file(bad, ck, 8 + (size_t)hlen);
    expect_ckpt_fail(bad, CVAE_E_FORMAT, "header without data");
    write_file(bad, "", 0);
    expect_ckpt_fail(bad, CVAE_E_FORMAT, "empty file");
    write_file(bad, "{}", 2);
    expect_ckpt_fail(bad, CVAE_E_FORMAT, "2-byte file");
    memset(b, 0, 16);
    write_file(bad, b, 16);
    expect_ckpt_fail(bad, CVAE_E_FORMAT, "16 zero bytes");
    verify_handles("checkpoint cases");

    print_message("checkpoint: %ld truncations (%zu bytes) and %ld other cases\n", ntr, len,
                  n_file_cases - f0 - ntr);
    free(b);
    free(ck);
    unlink(bad);
    assert_int_equal(n_failed, 0);
}

/* ------------------------------------------------------------------------ */
/* Fixed library bugs, kept as regressions (run in child processes)        */
/* ------------------------------------------------------------------------ */

static void test_fixed_library_bugs(void **state)
{
    (void)state;
    long failed0 = n_failed;
    int nbug = 0;
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].fixed_bug) {
            check_row(&rows[i], 1);
            nbug++;
        }
    n_bug_failed = n_failed - failed0;
    print_message("fixed-bug rows: %d, failing checks: %ld\n", nbug, n_bug_failed);
    assert_int_equal(n_bug_failed, 0);
}

/* Last: the handles that went through everything still do real work. */
static void test_summary_and_handles_still_work(void **state)
{
    (void)state;
    char p[512];
    path_in_dir(p, sizeof p, "final.st");
    CHECK(cvae_model_train(model, ds, 1, opt, NULL, NULL) == CVAE_OK, "train after the matrix");
    CHECK(cvae_model_save(model, p) == CVAE_OK, "save after the matrix");
    cvae_model *m2 = NULL;
    CHECK(cvae_model_load(p, &m2) == CVAE_OK, "load after the matrix");
    float a[NI * K], b[NI * K];
    CHECK(m2 && cvae_model_predict_proba(model, img, NI, a) == CVAE_OK &&
              cvae_model_predict_proba(m2, img, NI, b) == CVAE_OK && memcmp(a, b, sizeof a) == 0,
          "reloaded model predicts the same");
    cvae_model_destroy(m2);
    unlink(p);
    /* Every function the header declares must have been exercised. */
    size_t hl;
    unsigned char *hdr = read_file(CVAE_SOURCE_DIR "/include/convvae.h", &hl);
    hdr[hl] = 0;
    int declared = 0;
    for (char *q = strstr((char *)hdr, "CVAE_API "); q; q = strstr(q + 1, "CVAE_API ")) {
        char *paren = strchr(q, '(');
        if (!paren || q[-1] != '\n')
            continue; /* the #define lines */
        char *e = paren;
        while (e > q && (e[-1] == '_' || isalnum((unsigned char)e[-1])))
            e--;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(paren - e), e);
        declared++;
        int found = 0;
        for (int i = 0; i < nseen; i++)
            found |= strcmp(seen[i], name) == 0;
        CHECK(found, "public function %s is not exercised by the matrix", name);
    }
    free(hdr);
    print_message("bad-input matrix: %d public functions (header declares %d) x their cases = "
                  "%ld calls (%ld file cases, %ld of them byte-offset truncations); %ld checks, "
                  "%ld failed\n",
                  nseen, declared, n_calls, n_file_cases, n_truncations, n_checks, n_failed);
    assert_int_equal(n_failed - n_bug_failed, 0);
}

/* ------------------------------------------------------------------------ */
/* Image reader                                                             */
/* ------------------------------------------------------------------------ */

/* Expect st to be want, with a fresh message. */
static void expect_img(cvae_status st, cvae_status want, const char *what)
{
    n_calls++;
    CHECK(st == want, "%s: status %d, expected %d", what, (int)st, (int)want);
    if (st != CVAE_OK)
        check_message(what);
}

static void test_image_reader_calls(void **state)
{
    (void)state;
    static const char *const names[] = {
        "cvae_images_supported", "cvae_image_reader_create", "cvae_image_reader_destroy",
        "cvae_image_reader_set_threads", "cvae_image_reader_set_skip_bad",
        "cvae_image_reader_set_progress", "cvae_image_reader_add_file",
        "cvae_image_reader_add_dir", "cvae_image_reader_add_list", "cvae_image_reader_count",
        "cvae_image_reader_load", "cvae_image_reader_num_skipped", "cvae_image_reader_skipped",
        "cvae_dataset_path"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        note_fn(names[i]);
    cvae_image_reader_destroy(NULL);
    n_calls++;

    /* Data sets not read from files have no paths; NULLs and bad indices. */
    const char *path = POISON;
    plant_sentinel();
    expect_img(cvae_dataset_path(ds, 0, &path), CVAE_E_STATE, "dataset_path(no paths)");
    CHECK(path == NULL, "dataset_path: *path not NULL after a failure");
    plant_sentinel();
    expect_img(cvae_dataset_path(NULL, 0, &path), E_ARG, "dataset_path(NULL)");
    plant_sentinel();
    expect_img(cvae_dataset_path(ds, 0, NULL), E_ARG, "dataset_path(path NULL)");

    cvae_image_reader *r = POISON;
    const int shapes[][3] = {{0, 8, 8}, {2, 8, 8}, {4, 8, 8}, {-1, 8, 8}, {1, 0, 8},
                             {1, 8, 0}, {3, -5, 8}, {1, 4097, 8}, {1, 8, INT_MAX}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        r = POISON;
        plant_sentinel();
        cvae_status st = cvae_image_reader_create(shapes[i][0], shapes[i][1], shapes[i][2], &r);
        expect_img(st, cvae_images_supported() ? E_ARG : CVAE_E_UNSUPPORTED, "reader_create");
        CHECK(r == NULL, "reader_create: *out not NULL after a failure");
    }
    plant_sentinel();
    expect_img(cvae_image_reader_create(1, 8, 8, NULL), E_ARG, "reader_create(out NULL)");

    /* Every call with a NULL reader. */
    int64_t n = 0;
    cvae_dataset *out = POISON;
    const char *why = NULL;
    plant_sentinel();
    expect_img(cvae_image_reader_set_threads(NULL, 1), E_ARG, "set_threads(NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_set_skip_bad(NULL, 1), E_ARG, "set_skip_bad(NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_set_progress(NULL, NULL, NULL), E_ARG, "set_progress(NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_add_file(NULL, "x.png"), E_ARG, "add_file(NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_add_dir(NULL, dir), E_ARG, "add_dir(NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_add_list(NULL, "x"), E_ARG, "add_list(NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_count(NULL, &n), E_ARG, "count(NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_load(NULL, &out), E_ARG, "load(NULL)");
    CHECK(out == NULL, "load(NULL): *out not NULL");
    plant_sentinel();
    expect_img(cvae_image_reader_num_skipped(NULL, &n), E_ARG, "num_skipped(NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_skipped(NULL, 0, &path, &why), E_ARG, "skipped(NULL)");
    if (!cvae_images_supported())
        return;

    /* A good reader with bad arguments, then bad files; it stays usable. */
    assert_int_equal(cvae_image_reader_create(1, 8, 8, &r), CVAE_OK);
    const int threads[] = {0, -1, 1025, INT_MIN};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
        plant_sentinel();
        expect_img(cvae_image_reader_set_threads(r, threads[i]), E_ARG, "set_threads(bad)");
    }
    plant_sentinel();
    expect_img(cvae_image_reader_add_file(r, NULL), E_ARG, "add_file(path NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_add_file(r, ""), E_ARG, "add_file(\"\")");
    plant_sentinel();
    expect_img(cvae_image_reader_add_dir(r, NULL), E_ARG, "add_dir(dir NULL)");
    char p[256];
    path_in_dir(p, sizeof p, "no-such-dir");
    plant_sentinel();
    expect_img(cvae_image_reader_add_dir(r, p), CVAE_E_IO, "add_dir(missing)");
    plant_sentinel();
    expect_img(cvae_image_reader_add_list(r, NULL), E_ARG, "add_list(path NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_add_list(r, p), CVAE_E_IO, "add_list(missing)");
    plant_sentinel();
    expect_img(cvae_image_reader_count(r, NULL), E_ARG, "count(out NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_num_skipped(r, NULL), E_ARG, "num_skipped(out NULL)");
    plant_sentinel();
    expect_img(cvae_image_reader_load(r, NULL), E_ARG, "load(out NULL)");
    out = POISON;
    plant_sentinel();
    expect_img(cvae_image_reader_load(r, &out), E_ARG, "load(no files)");
    CHECK(out == NULL, "load(no files): *out not NULL");
    /* Files that are missing, empty, foreign or a directory. */
    char empty[256], text[256];
    path_in_dir(empty, sizeof empty, "empty.png");
    path_in_dir(text, sizeof text, "text.jpg");
    FILE *f = fopen(empty, "wb");
    assert_non_null(f);
    fclose(f);
    f = fopen(text, "wb");
    assert_non_null(f);
    fputs("plain text\n", f);
    fclose(f);
    const struct { const char *file; cvae_status st; } files[] = {
        {p, CVAE_E_IO}, {empty, CVAE_E_FORMAT}, {text, CVAE_E_FORMAT}, {dir, CVAE_E_IO}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        cvae_image_reader *one = NULL;
        assert_int_equal(cvae_image_reader_create(3, 4, 4, &one), CVAE_OK);
        assert_int_equal(cvae_image_reader_add_file(one, files[i].file), CVAE_OK);
        out = POISON;
        plant_sentinel();
        expect_img(cvae_image_reader_load(one, &out), files[i].st, files[i].file);
        CHECK(out == NULL, "load(%s): *out not NULL", files[i].file);
        CHECK(strstr(cvae_last_error(), files[i].file) != NULL, "load(%s): message '%s' does "
              "not name the file", files[i].file, cvae_last_error());
        /* With skip, all bad still fails; and nothing is listed after it. */
        assert_int_equal(cvae_image_reader_set_skip_bad(one, 1), CVAE_OK);
        plant_sentinel();
        expect_img(cvae_image_reader_load(one, &out), CVAE_E_FORMAT, "load(skip, all bad)");
        assert_int_equal(cvae_image_reader_num_skipped(one, &n), CVAE_OK);
        CHECK(n == 0, "skipped list after a failed load holds %lld", (long long)n);
        plant_sentinel();
        expect_img(cvae_image_reader_skipped(one, 0, &path, &why), E_ARG, "skipped(0 of 0)");
        plant_sentinel();
        expect_img(cvae_image_reader_skipped(one, -1, &path, &why), E_ARG, "skipped(-1)");
        cvae_image_reader_destroy(one);
    }
    unlink(empty);
    unlink(text);
    cvae_image_reader_destroy(r);
    verify_handles("image reader calls");
    assert_int_equal(n_failed, 0);
}

/* Optional arguments: a CMocka test filter and a skip filter (globs), e.g.
 * test_badinput "*" "*fixed_library_bugs*". */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    if (argc > 2)
        cmocka_set_skip_filter(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_matrix),
        cmocka_unit_test(test_config_accessors),
        cmocka_unit_test(test_statusless_functions),
        cmocka_unit_test(test_idx_files),
        cmocka_unit_test(test_checkpoint_files),
        cmocka_unit_test(test_image_reader_calls),
        cmocka_unit_test(test_fixed_library_bugs),
        cmocka_unit_test(test_summary_and_handles_still_work),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
