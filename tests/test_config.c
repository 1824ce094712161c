/* Model configuration: documented defaults and ranges (include/convvae.h),
 * typed and by-name setters/getters, clone, NULL handling, and the JSON form
 * used by checkpoints. The expected names, ranges and defaults are written
 * out here from the header's comments, independently of lib/model/config.c. */
/* The deprecated branch functions are tested here too. */
#define CVAE_NO_DEPRECATION_WARNINGS
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/config.h"

enum tkind { T_INT, T_ODD, T_DBL, T_ENUM, T_U64 };

typedef struct spec {
    const char *name;
    enum tkind kind;
    double lo, hi;
    int lo_open, hi_open;     /* (lo, ...] / [..., hi) for doubles */
    const char *enums[3];     /* T_ENUM: accepted names */
    const char *def;          /* documented default, NULL if the header gives none */
    const char *changed;      /* a valid non-default value */
} spec;

#define I(n, lo, hi, d, c) {n, T_INT, lo, hi, 0, 0, {NULL}, d, c}
#define ODD(n, d, c) {n, T_ODD, 1, 15, 0, 0, {NULL}, d, c}
#define D(n, lo, hi, lo_open, hi_open, d, c) {n, T_DBL, lo, hi, lo_open, hi_open, {NULL}, d, c}
#define E(n, a, b, d, c) {n, T_ENUM, 0, 1, 0, 0, {a, b, NULL}, d, c}

/* Branch options are 1-based in names ("branch1_..." is index 0). Branches
 * 3 and 4 do not exist by default; the header gives new branches the
 * defaults of branch 2. */
static const spec specs[] = {
    I("input_channels", 1, 64, "1", "3"),
    I("input_height", 1, 4096, "28", "32"),
    I("input_width", 1, 4096, "28", "48"),
    I("branches", 0, CVAE_MAX_BRANCHES, "2", "3"),
    I("branch1_layers", 1, 16, "1", "2"),
    I("branch1_filters", 1, 1024, "16", "8"),
    ODD("branch1_kernel", "3", "7"),
    I("branch2_layers", 1, 16, "1", "3"),
    I("branch2_filters", 1, 1024, "32", "24"),
    ODD("branch2_kernel", "5", "9"),
    I("branch3_layers", 1, 16, "1", "4"),
    I("branch3_filters", 1, 1024, "32", "40"),
    ODD("branch3_kernel", "5", "11"),
    I("branch4_layers", 1, 16, "1", "5"),
    I("branch4_filters", 1, 1024, "32", "64"),
    ODD("branch4_kernel", "5", "13"),
    I("encoder_units", 1, 65536, "512", "300"),
    E("encoder_activation", "relu", "identity", "relu", "identity"),
    I("decoder_units", 1, 65536, "512", "256"),
    I("latent_dim", 1, 4096, "50", "60"),
    I("clusters", 2, CVAE_MAX_CLUSTERS, "10", "17"),
    I("category_units", 1, 65536, "512", "128"),
    E("category_input", "z", "features", "z", "features"),
    E("prior", "standard", "mixture", "mixture", "standard"),
    E("recon_target", "image", "features", "image", "features"),
    I("conv_trainable", 0, 1, "1", "0"),
    D("lambda", 0, 1e6, 0, 0, "2.5", "0.1"),
    D("balance_weight", 0, 1e6, 0, 0, "1", "3.75"),
    D("category_weight", -1e6, 1e6, 0, 0, "1", "0.3333333333333333"),
    I("warmup_epochs", 0, 10000, NULL, "9999"),
    I("kmeans_init", 0, 1, NULL, NULL), /* changed: the opposite of its default */
    E("optimizer", "adam", "sgd", "adam", "sgd"),
    D("learning_rate", 0, 10, 1, 0, "0.001", "0.0003"),
    D("adam_beta1", 0, 1, 0, 1, "0.9", "0.85"),
    D("adam_beta2", 0, 1, 0, 1, "0.999", "0.995"),
    D("adam_eps", 0, 1, 1, 0, "1e-8", "1e-7"),
    D("weight_decay", 0, 1, 0, 0, "0", "0.0005"),
    D("momentum", 0, 1, 0, 1, "0.9", "0.5"),
    I("batch_size", 1, 65536, "100", "64"),
    I("epochs", 1, 100000, "50", "7"),
    {"seed", T_U64, 0, 0, 0, 0, {NULL}, "1", "18446744073709551615"},
    I("threads", 1, 1024, "1", "2"),
    E("recipe", "paper", "manifold", "manifold", "paper"),
    I("augment", 0, 1, "1", "0"),
    D("augment_rotation", 0, 180, 0, 0, "10", "15"),
    D("augment_shift", 0, 0.5, 0, 0, "0.1", "0.2"),
    D("augment_scale", 0, 0.5, 0, 0, "0.1", "0.05"),
    D("augment_gain", 0, 0.9, 0, 0, "0.3", "0"),
    D("consistency_weight", 0, 1e6, 0, 0, "10", "5"),
    D("contrast_temperature", 0, 1e6, 0, 0, "4", "2"),
    I("consistency_finetune", 0, 1, "0", "1"),
    I("pretrain_epochs", 0, 100000, "35", "20"),
    I("manifold_neighbors", 2, 1000, "20", "15"),
    I("embedding_dim", 0, 256, "0", "5"),
    D("pseudo_label_weight", 0, 1e6, 0, 0, "5", "2"),
    D("pseudo_label_threshold", 0, 1, 0, 0, "0.9", "0.5"),
    I("manifold_every", 0, 100000, "0", "3"),
    E("manifold_start", "random", "spectral", "random", "spectral"),
    E("finetune_prior", "standard", "mixture", "standard", "mixture"),
    I("manifold_runs", 1, 64, "4", "2"),
    D("manifold_overcluster", 1, 4, 0, 0, "1.3", "1.5"),
};
#define NSPEC ((int)(sizeof specs / sizeof specs[0]))

static const spec *find_spec(const char *name)
{
    for (int i = 0; i < NSPEC; i++)
        if (strcmp(specs[i].name, name) == 0)
            return &specs[i];
    return NULL;
}

/* The CLI spelling: underscores as dashes. */
static void dashed(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s", name);
    for (char *p = out; *p; p++)
        if (*p == '_')
            *p = '-';
}

static void clear_error(void) { cvae__fail(CVAE_OK, "%s", ""); }

static void get_text(const cvae_config *cfg, const char *name, char *buf, size_t size)
{
    cvae_status st = cvae_config_get(cfg, name, buf, size);
    if (st != CVAE_OK)
        fail_msg("get %s: status %d (%s)", name, st, cvae_last_error());
}

/* Same value: doubles numerically (the getter may print 0.001 as "0.001" and
 * 1/3 with 17 digits), everything else as text. */
static int same_value(const spec *s, const char *a, const char *b)
{
    if (s->kind == T_DBL) {
        char *ea, *eb;
        double x = strtod(a, &ea), y = strtod(b, &eb);
        return *ea == 0 && *eb == 0 && x == y;
    }
    return strcmp(a, b) == 0;
}

static void expect_set_ok(cvae_config *cfg, const spec *s, const char *value)
{
    char dname[64], got[128];
    dashed(s->name, dname, sizeof dname);
    for (int variant = 0; variant < 2; variant++) {
        const char *setname = variant ? dname : s->name, *getname = variant ? s->name : dname;
        cvae_status st = cvae_config_set(cfg, setname, value);
        if (st != CVAE_OK)
            fail_msg("set %s = '%s' failed: %d (%s)", setname, value, st, cvae_last_error());
        get_text(cfg, getname, got, sizeof got);
        if (!same_value(s, got, value))
            fail_msg("set %s = '%s', got back '%s'", setname, value, got);
    }
}

static void expect_set_rejected(cvae_config *cfg, const spec *s, const char *value)
{
    char before[128], after[128];
    get_text(cfg, s->name, before, sizeof before);
    clear_error();
    cvae_status st = cvae_config_set(cfg, s->name, value);
    if (st != CVAE_E_INVALID_ARG)
        fail_msg("set %s = '%s': status %d, expected CVAE_E_INVALID_ARG", s->name, value, st);
    if (cvae_last_error()[0] == 0)
        fail_msg("set %s = '%s': no error message", s->name, value);
    get_text(cfg, s->name, after, sizeof after);
    if (strcmp(before, after) != 0)
        fail_msg("rejected set %s = '%s' changed the value from %s to %s", s->name, value, before,
                 after);
}

/* Every option equal, compared through the by-name getter (the struct has
 * padding, so memcmp would not do). */
static void assert_configs_equal(const cvae_config *a, const cvae_config *b)
{
    for (int i = 0; cvae_config_option_name(i); i++) {
        const char *name = cvae_config_option_name(i);
        char va[128], vb[128];
        get_text(a, name, va, sizeof va);
        get_text(b, name, vb, sizeof vb);
        if (strcmp(va, vb) != 0)
            fail_msg("option %s differs: '%s' vs '%s'", name, va, vb);
    }
}

/* ------------------------------------------------------------------ */

static void test_defaults_typed(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_non_null(c);
    int a, b, k;
    double x, y;
    assert_int_equal(cvae_config_get_input_shape(c, &a, &b, &k), CVAE_OK);
    assert_true(a == 1 && b == 28 && k == 28);
    assert_int_equal(cvae_config_get_num_branches(c, &a), CVAE_OK);
    assert_int_equal(a, 2);
    assert_int_equal(cvae_config_get_branch(c, 0, &a, &b, &k), CVAE_OK);
    assert_true(a == 1 && b == 16 && k == 3);
    assert_int_equal(cvae_config_get_branch(c, 1, &a, &b, &k), CVAE_OK);
    assert_true(a == 1 && b == 32 && k == 5);
    assert_int_equal(cvae_config_get_encoder_units(c, &a), CVAE_OK);
    assert_int_equal(a, 512);
    cvae_activation act = CVAE_ACT_IDENTITY;
    assert_int_equal(cvae_config_get_encoder_activation(c, &act), CVAE_OK);
    assert_int_equal(act, CVAE_ACT_RELU);
    assert_int_equal(cvae_config_get_decoder_units(c, &a), CVAE_OK);
    assert_int_equal(a, 512);
    assert_int_equal(cvae_config_get_latent_dim(c, &a), CVAE_OK);
    assert_int_equal(a, 50);
    assert_int_equal(cvae_config_get_clusters(c, &a), CVAE_OK);
    assert_int_equal(a, 10);
    assert_int_equal(cvae_config_get_category_units(c, &a), CVAE_OK);
    assert_int_equal(a, 512);
    cvae_category_input in = CVAE_CATEGORY_INPUT_FEATURES;
    assert_int_equal(cvae_config_get_category_input(c, &in), CVAE_OK);
    assert_int_equal(in, CVAE_CATEGORY_INPUT_Z);
    cvae_prior prior = CVAE_PRIOR_STANDARD;
    assert_int_equal(cvae_config_get_prior(c, &prior), CVAE_OK);
    assert_int_equal(prior, CVAE_PRIOR_MIXTURE);
    assert_int_equal(cvae_config_get_conv_trainable(c, &a), CVAE_OK);
    assert_int_equal(a, 1);
    assert_int_equal(cvae_config_get_lambda(c, &x), CVAE_OK);
    assert_true(x == 2.5);
    assert_int_equal(cvae_config_get_category_weight(c, &x), CVAE_OK);
    assert_true(x == 1.0);
    /* Not pinned by the header (a recipe choice): only in range. */
    assert_int_equal(cvae_config_get_balance_weight(c, &x), CVAE_OK);
    assert_true(x >= 0 && x <= 1e6);
    assert_int_equal(cvae_config_get_warmup_epochs(c, &a), CVAE_OK);
    assert_true(a >= 0 && a <= 10000);
    assert_int_equal(cvae_config_get_kmeans_init(c, &a), CVAE_OK);
    assert_true(a == 0 || a == 1);
    cvae_optimizer_kind opt = CVAE_OPTIMIZER_SGD;
    assert_int_equal(cvae_config_get_optimizer(c, &opt), CVAE_OK);
    assert_int_equal(opt, CVAE_OPTIMIZER_ADAM);
    assert_int_equal(cvae_config_get_learning_rate(c, &x), CVAE_OK);
    assert_true(x == 1e-3);
    assert_int_equal(cvae_config_get_adam_betas(c, &x, &y), CVAE_OK);
    assert_true(x == 0.9 && y == 0.999);
    assert_int_equal(cvae_config_get_adam_eps(c, &x), CVAE_OK);
    assert_true(x == 1e-8);
    assert_int_equal(cvae_config_get_weight_decay(c, &x), CVAE_OK);
    assert_true(x == 0.0);
    assert_int_equal(cvae_config_get_momentum(c, &x), CVAE_OK);
    assert_true(x == 0.9);
    assert_int_equal(cvae_config_get_batch_size(c, &a), CVAE_OK);
    assert_int_equal(a, 100);
    assert_int_equal(cvae_config_get_epochs(c, &a), CVAE_OK);
    assert_int_equal(a, 50);
    uint64_t seed = 0;
    assert_int_equal(cvae_config_get_seed(c, &seed), CVAE_OK);
    assert_true(seed == 1);
    assert_int_equal(cvae_config_get_threads(c, &a), CVAE_OK);
    assert_int_equal(a, 1);
    cvae_config_destroy(c);
}

static void test_option_list(void **state)
{
    (void)state;
    int n = 0;
    for (; cvae_config_option_name(n); n++) {
        const char *name = cvae_config_option_name(n);
        if (!find_spec(name))
            fail_msg("option '%s' is not documented in this test's table", name);
        for (int j = 0; j < n; j++)
            assert_string_not_equal(name, cvae_config_option_name(j));
        const char *help = cvae_config_option_help(n);
        assert_non_null(help);
        assert_true(strlen(help) > 3);
        assert_true(strchr(name, '-') == NULL); /* canonical spelling uses underscores */
    }
    assert_int_equal(n, NSPEC); /* and with the check above: the same set */
    assert_null(cvae_config_option_name(-1));
    assert_null(cvae_config_option_help(-1));
    assert_null(cvae_config_option_help(n));
    assert_null(cvae_config_option_name(INT_MAX));
}

static void test_defaults_by_name(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    char got[128];
    for (int i = 0; i < NSPEC; i++) {
        if (!specs[i].def)
            continue;
        get_text(c, specs[i].name, got, sizeof got);
        if (!same_value(&specs[i], got, specs[i].def))
            fail_msg("default of %s is '%s', documented '%s'", specs[i].name, got, specs[i].def);
    }
    cvae_config_destroy(c);
}

/* Every listed option: valid values (bounds included) set by either
 * spelling read back through the other; invalid text and out-of-range values
 * rejected with a message and no change. */
static void test_set_get_every_option(void **state)
{
    (void)state;
    for (int i = 0; cvae_config_option_name(i); i++) {
        const spec *s = find_spec(cvae_config_option_name(i));
        assert_non_null(s);
        cvae_config *c = NULL;
        assert_int_equal(cvae_config_create(&c), CVAE_OK);
        char v[64];
        static const char *const junk[] = {"", " ", "12x", "x12", "1e999", "abc", "1 2"};
        for (size_t j = 0; j < sizeof junk / sizeof junk[0]; j++)
            expect_set_rejected(c, s, junk[j]);
        switch (s->kind) {
        case T_INT:
        case T_ODD: {
            const long long lo = (long long)s->lo, hi = (long long)s->hi;
            snprintf(v, sizeof v, "%lld", lo);
            expect_set_ok(c, s, v);
            snprintf(v, sizeof v, "%lld", hi);
            expect_set_ok(c, s, v);
            snprintf(v, sizeof v, "%lld", ((lo + hi) / 2) | (s->kind == T_ODD));
            expect_set_ok(c, s, v);
            snprintf(v, sizeof v, "%lld", lo - 1);
            expect_set_rejected(c, s, v);
            snprintf(v, sizeof v, "%lld", hi + 1);
            expect_set_rejected(c, s, v);
            expect_set_rejected(c, s, "-2147483649");
            expect_set_rejected(c, s, "4294967297"); /* would wrap to 1 as int */
            expect_set_rejected(c, s, "99999999999999999999");
            expect_set_rejected(c, s, "1.5");
            expect_set_rejected(c, s, "1e2");
            expect_set_rejected(c, s, "0x1");
            if (s->kind == T_ODD)
                for (int even = 0; even <= 16; even += 2) {
                    snprintf(v, sizeof v, "%d", even);
                    expect_set_rejected(c, s, v);
                }
            break;
        }
        case T_DBL:
            if (s->lo_open) {
                expect_set_rejected(c, s, "0");
                expect_set_ok(c, s, "1e-9");
            } else if (s->lo == 0) {
                expect_set_ok(c, s, "0");
                expect_set_rejected(c, s, "-1e-300");
            } else {
                snprintf(v, sizeof v, "%.17g", s->lo);
                expect_set_ok(c, s, v);
                /* just below the bound, whichever its sign */
                snprintf(v, sizeof v, "%.17g", s->lo - fabs(s->lo) * 1e-6);
                expect_set_rejected(c, s, v);
            }
            if (s->hi_open) {
                snprintf(v, sizeof v, "%.17g", s->hi);
                expect_set_rejected(c, s, v);
                expect_set_ok(c, s, "0.9999");
            } else {
                snprintf(v, sizeof v, "%.17g", s->hi);
                expect_set_ok(c, s, v);
                snprintf(v, sizeof v, "%.17g", s->hi * 1.0001);
                expect_set_rejected(c, s, v);
            }
            if (s->lo >= 0)
                expect_set_rejected(c, s, "-1");
            expect_set_rejected(c, s, "nan");
            expect_set_rejected(c, s, "inf");
            expect_set_rejected(c, s, "-inf");
            expect_set_rejected(c, s, "1e999");
            expect_set_rejected(c, s, "0.5.5");
            break;
        case T_ENUM:
            for (int e = 0; s->enums[e]; e++)
                expect_set_ok(c, s, s->enums[e]);
            expect_set_rejected(c, s, "bogus");
            expect_set_rejected(c, s, s->enums[0][0] == 'a' ? "mixture" : "adam");
            expect_set_rejected(c, s, "-1");
            break;
        case T_U64:
            expect_set_ok(c, s, "0");
            expect_set_ok(c, s, "18446744073709551615");
            expect_set_ok(c, s, "42");
            expect_set_rejected(c, s, "-1");
            expect_set_rejected(c, s, " -1"); /* strtoull would negate it */
            expect_set_rejected(c, s, "18446744073709551616");
            expect_set_rejected(c, s, "1.5");
            break;
        }
        if (s->changed)
            expect_set_ok(c, s, s->changed);
        cvae_config_destroy(c);
    }
}

static void test_unknown_names(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    static const char *const bad[] = {"",           "no_such_option", "latent",
                                      "latent_dimx", "--latent-dim",  " latent_dim",
                                      "latent_dim ", "latent__dim",   "branch0_kernel",
                                      "branch5_layers"};
    char buf[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_error();
        assert_int_equal(cvae_config_set(c, bad[i], "5"), CVAE_E_INVALID_ARG);
        assert_true(cvae_last_error()[0] != 0);
        clear_error();
        assert_int_equal(cvae_config_get(c, bad[i], buf, sizeof buf), CVAE_E_INVALID_ARG);
        assert_true(cvae_last_error()[0] != 0);
    }
    cvae_config *d = NULL;
    assert_int_equal(cvae_config_create(&d), CVAE_OK);
    assert_configs_equal(c, d);
    /* Mixed spellings are fine. */
    assert_int_equal(cvae_config_set(c, "latent-dim", "7"), CVAE_OK);
    assert_int_equal(cvae_config_set(c, "adam-beta2", "0.98"), CVAE_OK);
    assert_int_equal(cvae_config_get(c, "latent_dim", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "7");
    assert_int_equal(cvae_config_get(c, "adam_beta2", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "0.98");
    cvae_config_destroy(c);
    cvae_config_destroy(d);
}

typedef cvae_status (*set_int_fn)(cvae_config *, int);
typedef cvae_status (*get_int_fn)(const cvae_config *, int *);
typedef cvae_status (*set_dbl_fn)(cvae_config *, double);
typedef cvae_status (*get_dbl_fn)(const cvae_config *, double *);

static void check_int_setter(const char *what, set_int_fn set, get_int_fn get, int lo, int hi)
{
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    int v = -12345;
    const int ok[] = {lo, hi, lo + (hi - lo) / 2};
    for (int i = 0; i < 3; i++) {
        if (set(c, ok[i]) != CVAE_OK)
            fail_msg("%s(%d) rejected: %s", what, ok[i], cvae_last_error());
        assert_int_equal(get(c, &v), CVAE_OK);
        assert_int_equal(v, ok[i]);
    }
    const int last = ok[2];
    const int bad[] = {lo - 1, hi + 1, INT_MIN, INT_MAX, -1};
    for (int i = 0; i < 5; i++) {
        if (bad[i] >= lo && bad[i] <= hi)
            continue;
        clear_error();
        if (set(c, bad[i]) != CVAE_E_INVALID_ARG)
            fail_msg("%s(%d) not rejected", what, bad[i]);
        assert_true(cvae_last_error()[0] != 0);
        assert_int_equal(get(c, &v), CVAE_OK);
        assert_int_equal(v, last);
    }
    assert_int_equal(set(NULL, lo), CVAE_E_INVALID_ARG);
    assert_int_equal(get(NULL, &v), CVAE_E_INVALID_ARG);
    assert_int_equal(get(c, NULL), CVAE_E_INVALID_ARG);
    cvae_config_destroy(c);
}

/* lo_open / hi_open: the bound itself is excluded; ok_near is then a value
 * just inside it. */
static void check_dbl_setter(const char *what, set_dbl_fn set, get_dbl_fn get, double lo,
                             double hi, int lo_open, int hi_open)
{
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    double v = -1;
    const double ok[] = {lo_open ? lo + 1e-9 : lo, hi_open ? hi - 1e-4 : hi, (lo + hi) / 3};
    for (int i = 0; i < 3; i++) {
        if (set(c, ok[i]) != CVAE_OK)
            fail_msg("%s(%g) rejected: %s", what, ok[i], cvae_last_error());
        assert_int_equal(get(c, &v), CVAE_OK);
        assert_true(v == ok[i]);
    }
    const double last = ok[2];
    /* -1 is a bad value only for options whose range starts at 0 or above;
     * below a negative lower bound, lo * 1.001 is. */
    const double below = lo < 0 ? lo * 1.001 : -1.0;
    const double bad[] = {lo_open ? lo : lo - (lo < 0 ? -lo * 1e-6 : 1e-6),
                          hi_open ? hi : hi * 1.001, below, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 6; i++) {
        clear_error();
        if (set(c, bad[i]) != CVAE_E_INVALID_ARG)
            fail_msg("%s(%g) not rejected", what, bad[i]);
        assert_true(cvae_last_error()[0] != 0);
        assert_int_equal(get(c, &v), CVAE_OK);
        assert_true(v == last);
    }
    assert_int_equal(set(NULL, ok[0]), CVAE_E_INVALID_ARG);
    assert_int_equal(get(NULL, &v), CVAE_E_INVALID_ARG);
    assert_int_equal(get(c, NULL), CVAE_E_INVALID_ARG);
    cvae_config_destroy(c);
}

#define CHECK_INT(fn, lo, hi)                                                                  \
    check_int_setter(#fn, cvae_config_set_##fn, cvae_config_get_##fn, lo, hi)
#define CHECK_DBL(fn, lo, hi, lo_open, hi_open)                                                \
    check_dbl_setter(#fn, cvae_config_set_##fn, cvae_config_get_##fn, lo, hi, lo_open, hi_open)

static void test_typed_scalar_setters(void **state)
{
    (void)state;
    CHECK_INT(num_branches, 0, CVAE_MAX_BRANCHES);
    CHECK_INT(encoder_units, 1, 65536);
    CHECK_INT(decoder_units, 1, 65536);
    CHECK_INT(latent_dim, 1, 4096);
    CHECK_INT(clusters, 2, CVAE_MAX_CLUSTERS);
    CHECK_INT(category_units, 1, 65536);
    CHECK_INT(conv_trainable, 0, 1);
    CHECK_INT(warmup_epochs, 0, 10000);
    CHECK_INT(kmeans_init, 0, 1);
    CHECK_INT(batch_size, 1, 65536);
    CHECK_INT(epochs, 1, 100000);
    CHECK_INT(threads, 1, 1024);
    CHECK_DBL(lambda, 0, 1e6, 0, 0);
    CHECK_DBL(balance_weight, 0, 1e6, 0, 0);
    CHECK_DBL(category_weight, -1e6, 1e6, 0, 0);
    CHECK_DBL(learning_rate, 0, 10, 1, 0);
    CHECK_DBL(adam_eps, 0, 1, 1, 0);
    CHECK_DBL(weight_decay, 0, 1, 0, 0);
    CHECK_DBL(momentum, 0, 1, 0, 1);
    CHECK_DBL(manifold_overcluster, 1, 4, 0, 0);
}

static void test_typed_enum_setters(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    cvae_activation act;
    assert_int_equal(cvae_config_set_encoder_activation(c, CVAE_ACT_IDENTITY), CVAE_OK);
    assert_int_equal(cvae_config_get_encoder_activation(c, &act), CVAE_OK);
    assert_int_equal(act, CVAE_ACT_IDENTITY);
    assert_int_equal(cvae_config_set_encoder_activation(c, (cvae_activation)2), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_set_encoder_activation(c, (cvae_activation)-1),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_encoder_activation(c, &act), CVAE_OK);
    assert_int_equal(act, CVAE_ACT_IDENTITY);
    assert_int_equal(cvae_config_get_encoder_activation(c, NULL), CVAE_E_INVALID_ARG);

    cvae_category_input in;
    assert_int_equal(cvae_config_set_category_input(c, CVAE_CATEGORY_INPUT_FEATURES), CVAE_OK);
    assert_int_equal(cvae_config_set_category_input(c, (cvae_category_input)7), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_category_input(c, &in), CVAE_OK);
    assert_int_equal(in, CVAE_CATEGORY_INPUT_FEATURES);

    cvae_prior p;
    assert_int_equal(cvae_config_set_prior(c, CVAE_PRIOR_STANDARD), CVAE_OK);
    assert_int_equal(cvae_config_set_prior(c, (cvae_prior)2), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_prior(c, &p), CVAE_OK);
    assert_int_equal(p, CVAE_PRIOR_STANDARD);

    cvae_optimizer_kind k;
    assert_int_equal(cvae_config_set_optimizer(c, CVAE_OPTIMIZER_SGD), CVAE_OK);
    assert_int_equal(cvae_config_set_optimizer(c, (cvae_optimizer_kind)-3), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_optimizer(c, &k), CVAE_OK);
    assert_int_equal(k, CVAE_OPTIMIZER_SGD);

    /* The by-name view agrees with the typed one. */
    char buf[32];
    assert_int_equal(cvae_config_get(c, "encoder_activation", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "identity");
    assert_int_equal(cvae_config_get(c, "category_input", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "features");
    assert_int_equal(cvae_config_get(c, "prior", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "standard");
    assert_int_equal(cvae_config_get(c, "optimizer", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "sgd");
    assert_int_equal(cvae_config_set_prior(NULL, CVAE_PRIOR_STANDARD), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_prior(NULL, &p), CVAE_E_INVALID_ARG);
    cvae_config_destroy(c);
}

static void test_input_shape_branch_betas_seed(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    int a, b, k;

    /* Input shape: all three or nothing. */
    assert_int_equal(cvae_config_set_input_shape(c, 64, 4096, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 3, 32, 40), CVAE_OK);
    const int bad_shape[][3] = {{0, 32, 32}, {65, 32, 32}, {3, 0, 32}, {3, 4097, 32},
                                {3, 32, 0},  {3, 32, 4097}, {-1, -1, -1}};
    for (size_t i = 0; i < sizeof bad_shape / sizeof bad_shape[0]; i++) {
        clear_error();
        assert_int_equal(cvae_config_set_input_shape(c, bad_shape[i][0], bad_shape[i][1],
                                                     bad_shape[i][2]),
                         CVAE_E_INVALID_ARG);
        assert_true(cvae_last_error()[0] != 0);
        assert_int_equal(cvae_config_get_input_shape(c, &a, &b, &k), CVAE_OK);
        assert_true(a == 3 && b == 32 && k == 40);
    }
    assert_int_equal(cvae_config_get_input_shape(c, NULL, &b, NULL), CVAE_OK); /* any NULL */
    assert_int_equal(cvae_config_set_input_shape(NULL, 1, 1, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_input_shape(NULL, &a, &b, &k), CVAE_E_INVALID_ARG);

    /* Branches: odd kernels in [1, 15], layers [1, 16], filters [1, 1024]. */
    for (int i = 0; i < CVAE_MAX_BRANCHES; i++) {
        assert_int_equal(cvae_config_set_branch(c, i, 1, 1, 1), CVAE_OK);
        assert_int_equal(cvae_config_set_branch(c, i, 16, 1024, 15), CVAE_OK);
        assert_int_equal(cvae_config_set_branch(c, i, 2 + i, 10 + i, 2 * i + 3), CVAE_OK);
    }
    const int bad_br[][4] = {
        {-1, 1, 8, 3}, {CVAE_MAX_BRANCHES, 1, 8, 3}, {0, 0, 8, 3},  {0, 17, 8, 3},
        {0, 1, 0, 3},  {0, 1, 1025, 3},              {0, 1, 8, 0},  {0, 1, 8, 2},
        {0, 1, 8, 4},  {0, 1, 8, 14},                {0, 1, 8, 16}, {0, 1, 8, 17},
        {0, 1, 8, -1}, {0, 1, 8, -3},
    };
    for (size_t i = 0; i < sizeof bad_br / sizeof bad_br[0]; i++) {
        clear_error();
        assert_int_equal(cvae_config_set_branch(c, bad_br[i][0], bad_br[i][1], bad_br[i][2],
                                                bad_br[i][3]),
                         CVAE_E_INVALID_ARG);
        assert_true(cvae_last_error()[0] != 0);
    }
    for (int i = 0; i < CVAE_MAX_BRANCHES; i++) {
        assert_int_equal(cvae_config_get_branch(c, i, &a, &b, &k), CVAE_OK);
        assert_true(a == 2 + i && b == 10 + i && k == 2 * i + 3);
    }
    assert_int_equal(cvae_config_get_branch(c, -1, &a, &b, &k), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_branch(c, CVAE_MAX_BRANCHES, &a, &b, &k),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_branch(c, 0, NULL, NULL, &k), CVAE_OK);
    assert_int_equal(cvae_config_set_branch(NULL, 0, 1, 1, 1), CVAE_E_INVALID_ARG);
    /* Index i is named branch<i+1>_... */
    char buf[32];
    assert_int_equal(cvae_config_get(c, "branch1_kernel", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "3");
    assert_int_equal(cvae_config_get(c, "branch4-filters", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "13");

    /* Adam betas: [0, 1) each, set as a pair. */
    double x, y;
    assert_int_equal(cvae_config_set_adam_betas(c, 0.0, 0.0), CVAE_OK);
    assert_int_equal(cvae_config_set_adam_betas(c, 0.5, 0.99), CVAE_OK);
    const double bad_b[][2] = {{1.0, 0.9}, {0.9, 1.0}, {-0.1, 0.9}, {0.9, -1e-9},
                               {NAN, 0.9}, {0.9, INFINITY}, {0.3, 1.5}};
    for (size_t i = 0; i < sizeof bad_b / sizeof bad_b[0]; i++) {
        clear_error();
        assert_int_equal(cvae_config_set_adam_betas(c, bad_b[i][0], bad_b[i][1]),
                         CVAE_E_INVALID_ARG);
        assert_true(cvae_last_error()[0] != 0);
        assert_int_equal(cvae_config_get_adam_betas(c, &x, &y), CVAE_OK);
        assert_true(x == 0.5 && y == 0.99);
    }
    assert_int_equal(cvae_config_get_adam_betas(c, NULL, &y), CVAE_OK);
    assert_int_equal(cvae_config_set_adam_betas(NULL, 0.5, 0.5), CVAE_E_INVALID_ARG);

    /* Seed: every 64-bit value. */
    uint64_t s = 0;
    assert_int_equal(cvae_config_set_seed(c, UINT64_MAX), CVAE_OK);
    assert_int_equal(cvae_config_get_seed(c, &s), CVAE_OK);
    assert_true(s == UINT64_MAX);
    assert_int_equal(cvae_config_get(c, "seed", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "18446744073709551615");
    assert_int_equal(cvae_config_set_seed(c, 0), CVAE_OK);
    assert_int_equal(cvae_config_get_seed(c, &s), CVAE_OK);
    assert_true(s == 0);
    assert_int_equal(cvae_config_set_seed(NULL, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_seed(c, NULL), CVAE_E_INVALID_ARG);
    cvae_config_destroy(c);
}

/* Changing the count keeps the existing branches' settings; branches that
 * did not exist yet have the defaults of branch 2. */
static void test_num_branches(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    int a, b, k;
    assert_int_equal(cvae_config_set_branch(c, 0, 3, 8, 7), CVAE_OK);
    assert_int_equal(cvae_config_set_num_branches(c, 4), CVAE_OK);
    for (int i = 2; i < 4; i++) {
        assert_int_equal(cvae_config_get_branch(c, i, &a, &b, &k), CVAE_OK);
        assert_true(a == 1 && b == 32 && k == 5);
    }
    assert_int_equal(cvae_config_set_num_branches(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_get_branch(c, 0, &a, &b, &k), CVAE_OK);
    assert_true(a == 3 && b == 8 && k == 7);
    assert_int_equal(cvae_config_set_num_branches(c, 0), CVAE_OK); /* plain VAE */
    assert_int_equal(cvae_config_get_num_branches(c, &a), CVAE_OK);
    assert_int_equal(a, 0);
    assert_int_equal(cvae_config_get_branch(c, 0, &a, &b, &k), CVAE_OK);
    assert_true(a == 3 && b == 8 && k == 7);
    cvae_config_destroy(c);
}

/* One numbering for branches: cvae_config_set_conv_branch(b) is the option
 * branch<b>_*, and the deprecated 0-based functions are the same slots at
 * b - 1; the old and new names of the branch count agree. */
static void test_branch_numbering(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    for (int b = 1; b <= CVAE_MAX_BRANCHES; b++) {
        assert_int_equal(cvae_config_set_conv_branch(c, b, b, 10 * b, 2 * b + 1), CVAE_OK);
        char name[32], v[16], want[16];
        snprintf(name, sizeof name, "branch%d_filters", b);
        assert_int_equal(cvae_config_get(c, name, v, sizeof v), CVAE_OK);
        snprintf(want, sizeof want, "%d", 10 * b);
        assert_string_equal(v, want);
        int l, f, k;
        assert_int_equal(cvae_config_get_branch(c, b - 1, &l, &f, &k), CVAE_OK);
        assert_true(l == b && f == 10 * b && k == 2 * b + 1);
        snprintf(name, sizeof name, "branch%d_layers", b);
        assert_int_equal(cvae_config_set(c, name, "7"), CVAE_OK);
        assert_int_equal(cvae_config_get_conv_branch(c, b, &l, NULL, NULL), CVAE_OK);
        assert_int_equal(l, 7);
    }
    assert_int_equal(cvae_config_set_conv_branch(c, 0, 1, 1, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_set_conv_branch(c, CVAE_MAX_BRANCHES + 1, 1, 1, 1),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get_conv_branch(c, 0, NULL, NULL, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_set_conv_branch(NULL, 1, 1, 1, 1), CVAE_E_INVALID_ARG);
    int n = -1;
    assert_int_equal(cvae_config_set_branches(c, 3), CVAE_OK);
    assert_int_equal(cvae_config_get_num_branches(c, &n), CVAE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(cvae_config_set_num_branches(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_get_branches(c, &n), CVAE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(cvae_config_set_branches(c, CVAE_MAX_BRANCHES + 1), CVAE_E_INVALID_ARG);
    cvae_config_destroy(c);
}

static void test_clone(void **state)
{
    (void)state;
    cvae_config *a = NULL, *b = NULL, *d = NULL;
    assert_int_equal(cvae_config_create(&a), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(a, 33), CVAE_OK);
    assert_int_equal(cvae_config_set_branch(a, 1, 2, 7, 9), CVAE_OK);
    assert_int_equal(cvae_config_set_seed(a, 987654321), CVAE_OK);
    assert_int_equal(cvae_config_clone(a, &b), CVAE_OK);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_configs_equal(a, b);

    /* Independent both ways. */
    assert_int_equal(cvae_config_set_latent_dim(a, 44), CVAE_OK);
    assert_int_equal(cvae_config_set_branch(a, 1, 3, 8, 11), CVAE_OK);
    assert_int_equal(cvae_config_set_learning_rate(b, 0.5), CVAE_OK);
    int v, l, f, k;
    double lr;
    assert_int_equal(cvae_config_get_latent_dim(b, &v), CVAE_OK);
    assert_int_equal(v, 33);
    assert_int_equal(cvae_config_get_branch(b, 1, &l, &f, &k), CVAE_OK);
    assert_true(l == 2 && f == 7 && k == 9);
    assert_int_equal(cvae_config_get_learning_rate(a, &lr), CVAE_OK);
    assert_true(lr == 1e-3);

    /* A clone outlives its source. */
    cvae_config_destroy(a);
    assert_int_equal(cvae_config_clone(b, &d), CVAE_OK);
    assert_configs_equal(b, d);
    cvae_config_destroy(b);
    cvae_config_destroy(d);

    cvae_config *out = (cvae_config *)(uintptr_t)0x1;
    assert_int_equal(cvae_config_clone(NULL, &out), CVAE_E_INVALID_ARG);
    assert_null(out);
}

static void test_null_handling(void **state)
{
    (void)state;
    cvae_config_destroy(NULL);
    assert_int_equal(cvae_config_create(NULL), CVAE_E_INVALID_ARG);
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_clone(c, NULL), CVAE_E_INVALID_ARG);
    char buf[32];
    assert_int_equal(cvae_config_set(NULL, "latent_dim", "5"), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_set(c, NULL, "5"), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_set(c, "latent_dim", NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get(NULL, "latent_dim", buf, sizeof buf), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get(c, NULL, buf, sizeof buf), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get(c, "latent_dim", NULL, 32), CVAE_E_INVALID_ARG);
    int v;
    assert_int_equal(cvae_config_get_latent_dim(c, &v), CVAE_OK);
    assert_int_equal(v, 50);
    cvae_config_destroy(c);
}

/* cvae_config_get needs room for the text and its NUL. */
static void test_get_buffer_size(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set(c, "seed", "18446744073709551615"), CVAE_OK);
    char buf[32];
    for (size_t size = 0; size <= 20; size++) {
        memset(buf, 'Z', sizeof buf);
        assert_int_equal(cvae_config_get(c, "seed", buf, size), CVAE_E_INVALID_ARG);
        for (size_t i = size; i < sizeof buf; i++)
            assert_int_equal(buf[i], 'Z'); /* nothing written past size */
    }
    assert_int_equal(cvae_config_get(c, "seed", buf, 21), CVAE_OK);
    assert_string_equal(buf, "18446744073709551615");
    assert_int_equal(cvae_config_get(c, "prior", buf, 7), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_config_get(c, "prior", buf, 8), CVAE_OK);
    assert_string_equal(buf, "mixture");
    cvae_config_destroy(c);
}

/* A number too small or too large for a double is refused as out of range,
 * not as "not a number", and names what the user typed. */
static void test_double_beyond_double_range(void **state)
{
    (void)state;
    cvae_config *c = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    static const char *const vals[] = {"1e-400", "1e400", "-1e999"};
    char before[64], after[64];
    assert_int_equal(cvae_config_get(c, "learning_rate", before, sizeof before), CVAE_OK);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        clear_error();
        assert_int_equal(cvae_config_set(c, "learning_rate", vals[i]), CVAE_E_INVALID_ARG);
        if (!strstr(cvae_last_error(), "out of range") || !strstr(cvae_last_error(), vals[i]))
            fail_msg("learning_rate = %s: message '%s'", vals[i], cvae_last_error());
        assert_null(strstr(cvae_last_error(), "needs a number"));
    }
    assert_int_equal(cvae_config_get(c, "learning_rate", after, sizeof after), CVAE_OK);
    assert_string_equal(before, after);
    clear_error();
    assert_int_equal(cvae_config_set(c, "learning_rate", "1e-3x"), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "needs a number"));
    cvae_config_destroy(c);
}

/* ------------------------------------------------------------- JSON */

/* Every option set to a non-default value. */
static cvae_config *all_changed(void)
{
    cvae_config *c = NULL, *d = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_create(&d), CVAE_OK);
    for (int i = 0; cvae_config_option_name(i); i++) {
        const spec *s = find_spec(cvae_config_option_name(i));
        assert_non_null(s);
        char def[64];
        get_text(d, s->name, def, sizeof def);
        const char *v = s->changed;
        if (!v)
            v = strcmp(def, "0") == 0 ? "1" : "0"; /* 0/1 flags without a pinned default */
        assert_int_equal(cvae_config_set(c, s->name, v), CVAE_OK);
        char now[64];
        get_text(c, s->name, now, sizeof now);
        if (strcmp(now, def) == 0)
            fail_msg("option %s still has its default %s", s->name, def);
    }
    cvae_config_destroy(d);
    return c;
}

static void test_json_roundtrip(void **state)
{
    (void)state;
    char json[4096];
    /* Defaults and a config with every option changed (including 1/3, a
     * double needing 17 digits, and the largest seed). */
    cvae_config *src[2] = {NULL, all_changed()};
    assert_int_equal(cvae_config_create(&src[0]), CVAE_OK);
    assert_int_equal(cvae_config_set_category_weight(src[1], 1.0 / 3.0), CVAE_OK);
    assert_int_equal(cvae_config_set_lambda(src[1], 0.1 + 0.2), CVAE_OK);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(cvae__config_to_json(src[t], json, sizeof json), CVAE_OK);
        assert_true(json[0] == '{' && json[strlen(json) - 1] == '}');
        /* Every option appears as a key. */
        for (int i = 0; cvae_config_option_name(i); i++) {
            char key[80];
            snprintf(key, sizeof key, "\"%s\":", cvae_config_option_name(i));
            if (!strstr(json, key))
                fail_msg("key %s missing from %s", key, json);
        }
        cvae_config *dst = NULL;
        assert_int_equal(cvae_config_create(&dst), CVAE_OK);
        assert_int_equal(cvae__config_from_json(dst, json), CVAE_OK);
        assert_configs_equal(src[t], dst);
        double w;
        assert_int_equal(cvae_config_get_category_weight(dst, &w), CVAE_OK);
        assert_true(t == 0 ? w == 1.0 : w == 1.0 / 3.0);
        assert_int_equal(cvae_config_get_lambda(dst, &w), CVAE_OK);
        assert_true(t == 0 ? w == 2.5 : w == 0.1 + 0.2);
        cvae_config_destroy(dst);
    }
    print_message("JSON of the all-changed config: %zu bytes\n", strlen(json));
    cvae_config_destroy(src[0]);
    cvae_config_destroy(src[1]);

    /* Whitespace is allowed; missing keys keep what the config had. */
    cvae_config *c = NULL, *d = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_create(&d), CVAE_OK);
    assert_int_equal(cvae__config_from_json(c, " {\n \"latent_dim\" : 7 ,\t\"prior\": \"standard\" }\n"),
                     CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(d, 7), CVAE_OK);
    assert_int_equal(cvae_config_set_prior(d, CVAE_PRIOR_STANDARD), CVAE_OK);
    assert_configs_equal(c, d);
    assert_int_equal(cvae__config_from_json(c, "{}"), CVAE_OK);
    assert_configs_equal(c, d);
    cvae_config_destroy(c);
    cvae_config_destroy(d);
}

static void test_json_rejects(void **state)
{
    (void)state;
    char longkey[200], longnum[200];
    memset(longkey, 'a', sizeof longkey);
    memcpy(longkey, "{\"", 2);
    memcpy(longkey + sizeof longkey - 6, "\":1}", 5);
    memset(longnum, '1', sizeof longnum);
    memcpy(longnum, "{\"seed\":", 8);
    memcpy(longnum + sizeof longnum - 2, "}", 2);
    const char *const bad[] = {
        "",
        "   ",
        "{",
        "}",
        "[]",
        "null",
        "{\"latent_dim\":}",
        "{\"latent_dim\" 5}",
        "{\"latent_dim\":5",
        "{\"latent_dim\":5,}",
        "{\"latent_dim\":5}}",
        "{\"latent_dim\":5} x",
        "{\"latent_dim\":5 \"clusters\":3}",
        "{latent_dim:5}",
        "{\"latent_dim:5}",
        "{\"latent_dim\":\"5}",
        "{\"latent_dim\":5x}",
        "{\"latent_dim\":5.5}",
        "{\"latent_dim\":[5]}",
        "{\"latent_dim\":\"\"}",
        "{\"no_such_option\":1}",
        "{\"latent_dim\":5,\"bogus\":1}",
        "{\"\":1}",
        "{\"latent_dim\":0}",
        "{\"latent_dim\":4097}",
        "{\"clusters\":1}",
        "{\"prior\":\"gaussian\"}",
        "{\"prior\":1}",
        "{\"learning_rate\":0}",
        "{\"learning_rate\":1e999}",
        "{\"adam_beta1\":1}",
        "{\"branch1_kernel\":4}",
        "{\"seed\":-1}",
        "{\"lambda\":\"nan\"}",
        longkey,
        longnum,
    };
    cvae_config *c = NULL, *ref = NULL;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_create(&ref), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, 21), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(ref, 21), CVAE_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_error();
        cvae_status st = cvae__config_from_json(c, bad[i]);
        if (st != CVAE_E_FORMAT)
            fail_msg("from_json(%.60s) gave %d, expected CVAE_E_FORMAT", bad[i], st);
        assert_true(cvae_last_error()[0] != 0);
        assert_configs_equal(c, ref); /* all or nothing */
    }
    cvae_config_destroy(c);
    cvae_config_destroy(ref);
}

static void test_json_small_buffer(void **state)
{
    (void)state;
    cvae_config *c = all_changed();
    char full[4096];
    assert_int_equal(cvae__config_to_json(c, full, sizeof full), CVAE_OK);
    const size_t len = strlen(full);
    char *buf = malloc(len + 64);
    assert_non_null(buf);
    for (size_t size = 0; size <= len; size++) {
        memset(buf, 0x5a, len + 64);
        clear_error();
        assert_int_equal(cvae__config_to_json(c, buf, size), CVAE_E_INVALID_ARG);
        assert_true(cvae_last_error()[0] != 0);
        for (size_t i = size; i < len + 64; i++)
            if (buf[i] != 0x5a)
                fail_msg("to_json with %zu bytes wrote byte %zu", size, i);
    }
    memset(buf, 0x5a, len + 64);
    assert_int_equal(cvae__config_to_json(c, buf, len + 1), CVAE_OK);
    assert_string_equal(buf, full);
    free(buf);
    cvae_config_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_typed),
        cmocka_unit_test(test_option_list),
        cmocka_unit_test(test_defaults_by_name),
        cmocka_unit_test(test_set_get_every_option),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_typed_scalar_setters),
        cmocka_unit_test(test_typed_enum_setters),
        cmocka_unit_test(test_input_shape_branch_betas_seed),
        cmocka_unit_test(test_num_branches),
        cmocka_unit_test(test_branch_numbering),
        cmocka_unit_test(test_clone),
        cmocka_unit_test(test_null_handling),
        cmocka_unit_test(test_get_buffer_size),
        cmocka_unit_test(test_double_beyond_double_range),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_json_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
