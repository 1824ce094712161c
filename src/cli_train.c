/* convvae train: build or resume a model, train it epoch by epoch with a
 * progress bar, report clustering metrics per epoch and save checkpoints. */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "cli_images.h"
#include "cli_mpi.h"

/* Train accuracy is reported on at most this many training images so that
 * the per-epoch report stays a small fraction of the epoch. */
enum { TRAIN_EVAL_MAX = 10000 };

/* One model option from the command line, in command-line order. name is
 * the library's canonical option name; value points into argv. */
typedef struct setting {
    const char *name;
    const char *value;
} setting;

typedef struct train_opts {
    cli_data_opts data;
    cli_image_opts img; /* --images-dir / --images-list instead of IDX data */
    const char *out;
    const char *resume;
    long long save_every;
    int quiet;
    int progress;
    int weights_only;
    long long micro_batch; /* 0: the whole batch at once */
    int overlap;
    setting *settings;
    int nsettings;
} train_opts;

/* The option index whose name equals flag with '-' read as '_', or -1. */
static int find_config_option(const char *flag)
{
    for (int i = 0; cvae_config_option_name(i); i++) {
        const char *a = cvae_config_option_name(i), *b = flag;
        while (*a && (*a == *b || (*a == '_' && *b == '-')))
            a++, b++;
        if (*a == '\0' && *b == '\0')
            return i;
    }
    return -1;
}

static void train_help(void)
{
    printf("Usage: convvae train (--dataset NAME | --images FILE [--labels FILE] |\n"
           "                     --images-dir DIR | --images-list FILE) [OPTIONS]\n"
           "\n"
           "Train a clustering VAE. Labels are never used for training, only for the\n"
           "per-epoch report (train_acc on the first %d training images, test metrics\n"
           "on the test split when there is one).\n"
           "\n",
           TRAIN_EVAL_MAX);
    cli_data_help(stdout, CLI_DATA_TEST_FILES);
    printf("\n");
    cli_images_help(stdout, CLI_IMAGES_SHAPE);
    printf("\n"
           "Run:\n"
           "  --out PATH            checkpoint (default convvae-NAME.safetensors, or the\n"
           "                        --resume file)\n"
           "  --save-every N        save every N epochs (default 1; 0 = only at the end)\n"
           "  --weights-only        the checkpoint saved when training completes holds the\n"
           "                        weights only, not the optimizer's state (a third of\n"
           "                        the size; training it further restarts the optimizer;\n"
           "                        earlier and interrupted saves keep the state)\n"
           "  --resume PATH         continue a checkpoint up to --epochs in total; model\n"
           "                        options must match the checkpoint's\n"
           "  --micro-batch N       compute a batch (under mpirun, each process's share of\n"
           "                        it) in parts of at most N images and add their\n"
           "                        gradients: the same training in the memory of N\n"
           "                        images, so --batch-size can grow (gradient\n"
           "                        accumulation; slower per image: for memory, not speed)\n"
           "  --overlap-reduction   under mpirun: sum the gradient over the processes in\n"
           "                        parts while the backward pass runs\n"
           "  --progress            draw the progress bar even if stderr is not a terminal\n"
           "  --quiet               print nothing but errors and warnings: no summary, no\n"
           "                        per-epoch lines, no progress bar\n"
           "  --conv-layers N       set the layer count of every convolution branch\n"
           "  -h, --help            this text\n"
           "\n"
           "Model and training options (--name VALUE or --name=VALUE; default in brackets):\n");
    cvae_config *def = NULL;
    if (cvae_config_create(&def) != CVAE_OK)
        def = NULL;
    for (int i = 0; cvae_config_option_name(i); i++) {
        char flag[96], value[64] = "?";
        snprintf(flag, sizeof flag, "%s", cvae_config_option_name(i));
        for (char *p = flag; *p; p++)
            if (*p == '_')
                *p = '-';
        if (def && cvae_config_get(def, cvae_config_option_name(i), value, sizeof value) != CVAE_OK)
            snprintf(value, sizeof value, "?");
        printf("  --%-20s %s [%s]\n", flag, cvae_config_option_help(i), value);
    }
    printf("\nThe input shape options are taken from the training data unless given.\n"
           "--threads defaults to the machine's cores (%d here) for a new model.\n"
           "Ctrl-C (SIGINT) or SIGTERM stops after the current batch, saves the checkpoint\n"
           "and exits with 130 (SIGINT) or 143 (SIGTERM); --resume then finishes the\n"
           "stopped epoch where it stopped, as if training had not been interrupted.\n",
           cli_cores());
    cvae_config_destroy(def);
}

/* Check one setting against a scratch config so that a bad value is a
 * usage error at parse time, not a failure after the data has loaded. */
static int validate_setting(const char *cmd, cvae_config *scratch, const char *flag,
                            const setting *s)
{
    cvae_status st = cvae_config_set(scratch, s->name, s->value);
    if (st)
        return cli_usage_error(cmd, "bad value for '--%s': %s", flag, cvae_last_error());
    return 0;
}

static int parse_train(int argc, char **argv, train_opts *o)
{
    cli_args a;
    cli_args_init(&a, "train", argc, argv);
    cli_data_init(&o->data);
    cli_images_init(&o->img);
    o->save_every = 1;
    /* --conv-layers expands to one setting per branch. */
    o->settings = calloc((size_t)argc * CVAE_MAX_BRANCHES + 1, sizeof *o->settings);
    cvae_config *scratch = NULL;
    if (!o->settings || cvae_config_create(&scratch) != CVAE_OK) {
        cvae_config_destroy(scratch);
        return cli_error(CVAE_E_NOMEM, "cannot allocate the option table");
    }
    int r, rc = 0;
    while (!rc && (r = cli_next(&a)) != 0) {
        if (r < 0) {
            rc = CLI_EXIT_USAGE;
            break;
        }
        if (cli_is(&a, "help")) {
            train_help();
            rc = -1; /* done, exit 0 */
            break;
        }
        int d = cli_images_flag(&a, &o->img, CLI_IMAGES_SHAPE);
        if (d == 0)
            d = cli_data_flag(&a, &o->data, CLI_DATA_TEST_FILES);
        if (d < 0) {
            rc = CLI_EXIT_USAGE;
        } else if (d > 0) {
            continue;
        } else if (cli_is(&a, "out")) {
            rc = cli_value(&a, &o->out) ? CLI_EXIT_USAGE : 0;
        } else if (cli_is(&a, "resume")) {
            rc = cli_value(&a, &o->resume) ? CLI_EXIT_USAGE : 0;
        } else if (cli_is(&a, "save-every")) {
            rc = cli_int(&a, 0, 1000000, &o->save_every) ? CLI_EXIT_USAGE : 0;
        } else if (cli_is(&a, "quiet")) {
            rc = cli_no_value(&a) ? CLI_EXIT_USAGE : 0;
            o->quiet = 1;
        } else if (cli_is(&a, "weights-only")) {
            rc = cli_no_value(&a) ? CLI_EXIT_USAGE : 0;
            o->weights_only = 1;
        } else if (cli_is(&a, "micro-batch")) {
            rc = cli_int(&a, 1, 65536, &o->micro_batch) ? CLI_EXIT_USAGE : 0;
        } else if (cli_is(&a, "overlap-reduction")) {
            rc = cli_no_value(&a) ? CLI_EXIT_USAGE : 0;
            o->overlap = 1;
        } else if (cli_is(&a, "progress")) {
            rc = cli_no_value(&a) ? CLI_EXIT_USAGE : 0;
            o->progress = 1;
        } else if (cli_is(&a, "conv-layers")) {
            const char *val;
            if (cli_value(&a, &val)) {
                rc = CLI_EXIT_USAGE;
                continue;
            }
            for (int b = 1; b <= CVAE_MAX_BRANCHES && !rc; b++) {
                char name[32];
                snprintf(name, sizeof name, "branch%d_layers", b);
                int idx = find_config_option(name);
                if (idx < 0) {
                    rc = cli_error(CVAE_E_INTERNAL, "the library has no option %s", name);
                    break;
                }
                setting *s = &o->settings[o->nsettings++];
                s->name = cvae_config_option_name(idx);
                s->value = val;
                rc = validate_setting(a.cmd, scratch, a.flag, s);
            }
        } else {
            int idx = find_config_option(a.flag);
            if (idx < 0) {
                rc = cli_unknown(&a);
                continue;
            }
            setting *s = &o->settings[o->nsettings];
            s->name = cvae_config_option_name(idx);
            if (cli_value(&a, &s->value)) {
                rc = CLI_EXIT_USAGE;
                continue;
            }
            o->nsettings++;
            rc = validate_setting(a.cmd, scratch, a.flag, s);
        }
    }
    cvae_config_destroy(scratch);
    if (rc)
        return rc;
    if (o->quiet && o->progress)
        return cli_usage_error(a.cmd, "--quiet and --progress contradict each other");
    if ((rc = cli_images_check(&o->img, &o->data, a.cmd)))
        return rc;
    return cli_data_check(&o->data, a.cmd, !cli_images_given(&o->img));
}

static int apply_settings(cvae_config *cfg, const train_opts *o)
{
    for (int i = 0; i < o->nsettings; i++) {
        cvae_status st = cvae_config_set(cfg, o->settings[i].name, o->settings[i].value);
        if (st)
            return cli_lib_error(st);
    }
    return CLI_EXIT_OK;
}

static const char *cfgv(const cvae_config *cfg, const char *name, char *buf, size_t size)
{
    if (cvae_config_get(cfg, name, buf, size) != CVAE_OK)
        snprintf(buf, size, "?");
    return buf;
}

/* A resumed run keeps the checkpoint's configuration (a model cannot change
 * shape, and silently ignoring a flag would mislead), so every option given
 * must agree with it, except the total epoch count. */
static int check_resume_settings(const cvae_config *ckpt, const train_opts *o, cvae_config **out)
{
    cvae_config *cfg;
    cvae_status st = cvae_config_clone(ckpt, &cfg);
    if (st)
        return cli_lib_error(st);
    int rc = apply_settings(cfg, o);
    for (int i = 0; !rc && cvae_config_option_name(i); i++) {
        const char *name = cvae_config_option_name(i);
        if (strcmp(name, "epochs") == 0)
            continue;
        char a[64], b[64];
        cfgv(ckpt, name, a, sizeof a);
        cfgv(cfg, name, b, sizeof b);
        if (strcmp(a, b) != 0)
            rc = cli_usage_error("train", "option %s is %s in the checkpoint %s, not %s; a "
                                 "resumed run keeps the checkpoint's configuration",
                                 name, a, o->resume, b);
    }
    if (rc) {
        cvae_config_destroy(cfg);
        return rc;
    }
    *out = cfg;
    return CLI_EXIT_OK;
}

static const char *cfgv_ll(long long v, char *buf, size_t size)
{
    snprintf(buf, size, "%lld", v);
    return buf;
}

static void print_summary(const cvae_config *cfg, const cvae_model *model,
                          const cvae_dataset *train, const cvae_dataset *test,
                          const train_opts *o, const char *out, int epochs_done, int total)
{
    char b[16][64];
    int branches = 0;
    cvae_config_get_branches(cfg, &branches);
    printf("convvae %s\n", cvae_version_string());
    printf("model:    input %sx%sx%s, %d conv branch%s", cfgv(cfg, "input_channels", b[0], 64),
           cfgv(cfg, "input_height", b[1], 64), cfgv(cfg, "input_width", b[2], 64), branches,
           branches == 1 ? "" : "es");
    for (int i = 0; i < branches; i++) {
        int layers = 0, filters = 0, kernel = 0;
        cvae_config_get_conv_branch(cfg, i + 1, &layers, &filters, &kernel);
        printf("%s%dx%d@%dx%d", i ? ", " : " (", layers, filters, kernel, kernel);
    }
    printf("%s\n", branches ? ")" : "");
    printf("          encoder %s %s, decoder %s, latent %s, clusters %s, category %s (%s), "
           "prior %s\n",
           cfgv(cfg, "encoder_units", b[0], 64), cfgv(cfg, "encoder_activation", b[1], 64),
           cfgv(cfg, "decoder_units", b[2], 64), cfgv(cfg, "latent_dim", b[3], 64),
           cfgv(cfg, "clusters", b[4], 64), cfgv(cfg, "category_units", b[5], 64),
           cfgv(cfg, "category_input", b[6], 64), cfgv(cfg, "prior", b[7], 64));
    cvae_recipe recipe = CVAE_RECIPE_PAPER;
    cvae_config_get_recipe(cfg, &recipe);
    printf("training: %s lr %s, batch %s, epochs %d, lambda %s, balance %s, category %s, "
           "seed %s, threads %s, %d process%s\n",
           cfgv(cfg, "optimizer", b[0], 64), cfgv(cfg, "learning_rate", b[1], 64),
           cfgv(cfg, "batch_size", b[2], 64), total, cfgv(cfg, "lambda", b[3], 64),
           cfgv(cfg, "balance_weight", b[4], 64), cfgv(cfg, "category_weight", b[5], 64),
           cfgv(cfg, "seed", b[8], 64), cfgv(cfg, "threads", b[9], 64), cli_mpi_size(),
           cli_mpi_size() == 1 ? "" : "es");
    if (recipe == CVAE_RECIPE_MANIFOLD) {
        int augment = 0;
        cvae_config_get_augment(cfg, &augment);
        char aug[320] = "off";
        if (augment)
            snprintf(aug, sizeof aug, "rotation %s, shift %s, scale %s, gain %s",
                     cfgv(cfg, "augment_rotation", b[0], 64), cfgv(cfg, "augment_shift", b[1], 64),
                     cfgv(cfg, "augment_scale", b[2], 64), cfgv(cfg, "augment_gain", b[3], 64));
        int pretrain = 0, every = 0;
        cvae_config_get_pretrain_epochs(cfg, &pretrain);
        cvae_config_get_manifold_every(cfg, &every);
        char again[96] = "";
        double weight = 0, temperature = 0;
        int keep = 1;
        cvae_config_get_consistency_weight(cfg, &weight);
        cvae_config_get_contrast_temperature(cfg, &temperature);
        cvae_config_get_consistency_finetune(cfg, &keep);
        char cons[256] = "";
        if (weight > 0)
            snprintf(cons, sizeof cons, ", consistency term %s%s%s",
                     cfgv(cfg, "consistency_weight", b[10], 64),
                     temperature > 0 ? " contrastive at temperature " : " squared distance",
                     temperature > 0 ? cfgv(cfg, "contrast_temperature", b[11], 64) : "");
        int used = snprintf(again, sizeof again, "%s",
                            weight > 0 && !keep ? ", no consistency term" : "");
        if (every > 0)
            snprintf(again + used, sizeof again - (size_t)used, ", the step redone every %d epochs",
                     every);
        double over = 1;
        cvae_config_get_manifold_overcluster(cfg, &over);
        char merge[128] = "";
        if (over > 1)
            snprintf(merge, sizeof merge, ", %s components per cluster merged by modularity",
                     cfgv(cfg, "manifold_overcluster", b[12], 64));
        printf("recipe:   manifold: %s epochs pretraining (augmentation %s%s), the manifold step "
               "(%s neighbours, %s start%s, best of %s runs), %d epochs fine-tuning on its "
               "pseudo-labels (%s prior%s)\n",
               cfgv(cfg, "pretrain_epochs", b[3], 64), aug, cons,
               cfgv(cfg, "manifold_neighbors", b[5], 64), cfgv(cfg, "manifold_start", b[7], 64),
               merge, cfgv(cfg, "manifold_runs", b[6], 64), total > pretrain ? total - pretrain : 0,
               cfgv(cfg, "finetune_prior", b[8], 64), again);
    } else {
        printf("recipe:   paper: warmup %s, kmeans %s\n", cfgv(cfg, "warmup_epochs", b[6], 64),
               cfgv(cfg, "kmeans_init", b[7], 64));
    }
    if (o->micro_batch || (o->overlap && cli_mpi_size() > 1))
        printf("scaling:  %s%s%s\n",
               o->micro_batch ? "each batch computed in parts of at most " : "",
               o->micro_batch ? cfgv_ll(o->micro_batch, b[0], 64) : "",
               o->overlap && cli_mpi_size() > 1
                   ? (o->micro_batch ? " images, gradient reduced during the backward pass"
                                     : "gradient reduced during the backward pass")
                   : (o->micro_batch ? " images" : ""));
    int64_t params = 0;
    cvae_model_num_params(model, &params);
    printf("params:   %lld\n", (long long)params);
    char desc[128];
    cli_data_describe(train, desc, sizeof desc);
    printf("train:    %s\n", desc);
    if (test) {
        cli_data_describe(test, desc, sizeof desc);
        printf("test:     %s\n", desc);
    } else {
        printf("test:     none\n");
    }
    if (o->resume)
        printf("resume:   %s at epoch %d\n", o->resume, epochs_done);
    if (o->save_every == 1)
        printf("output:   %s (saved every epoch)\n", out);
    else if (o->save_every > 1)
        printf("output:   %s (saved every %lld epochs)\n", out, o->save_every);
    else
        printf("output:   %s (saved at the end)\n", out);
    fflush(stdout);
}

static int check_shape(const cvae_config *cfg, const cvae_dataset *ds, const char *what)
{
    int c, h, w, dc, dh, dw;
    cvae_status st = cvae_config_get_input_shape(cfg, &c, &h, &w);
    if (!st)
        st = cvae_dataset_shape(ds, NULL, &dc, &dh, &dw);
    if (st)
        return cli_lib_error(st);
    if (c != dc || h != dh || w != dw)
        return cli_error(CVAE_E_INVALID_ARG, "the %s images are %dx%dx%d but the model expects "
                         "%dx%dx%d", what, dc, dh, dw, c, h, w);
    return CLI_EXIT_OK;
}

/* final: the save after the last epoch, which --weights-only strips. */
static int save_model(cvae_model *model, const char *path, int final, const train_opts *o)
{
    if (cli_mpi_rank() != 0)
        return CLI_EXIT_OK; /* every process holds the same model; one writes it */
    cvae_status st = final && o->weights_only ? cvae_model_clear_optimizer(model) : CVAE_OK;
    if (!st) {
        cli_save_begin();
        st = cvae_model_save(model, path);
        cli_save_end();
    }
    return st ? cli_lib_error(st) : CLI_EXIT_OK;
}

static int has_labels(const cvae_dataset *ds)
{
    int h = 0;
    return ds && cvae_dataset_has_labels(ds, &h) == CVAE_OK && h;
}

/* Metrics after an epoch, appended to line. Returns an exit code. */
static int epoch_metrics(cvae_model *model, const cvae_dataset *train_eval,
                         const cvae_dataset *test, char *line, size_t size)
{
    size_t used = strlen(line);
    const char *sep = "  ";
    cvae_status st;
    if (train_eval) {
        double acc;
        if ((st = cli_mpi_evaluate(model, train_eval, &acc, NULL, NULL, NULL)))
            return cli_lib_error(st);
        used += (size_t)snprintf(line + used, size - used, "%strain_acc %.3f", sep, acc);
        sep = " ";
    }
    if (used < size && test && has_labels(test)) {
        double acc, purity, nmi;
        if ((st = cli_mpi_evaluate(model, test, &acc, &purity, &nmi, NULL)))
            return cli_lib_error(st);
        snprintf(line + used, size - used, "%stest_acc %.3f test_purity %.3f test_nmi %.3f", sep,
                 acc, purity, nmi);
    }
    return CLI_EXIT_OK;
}

static int run_training(cvae_model *model, const cvae_dataset *train, const cvae_dataset *test,
                        const train_opts *o, const char *out, int total)
{
    int rc = CLI_EXIT_OK, batch = 0, done = 0;
    cvae_config *cfg = NULL;
    cvae_dataset *train_subset = NULL;
    const cvae_dataset *train_eval = NULL;
    int64_t count = 0;
    cvae_status st;
    if ((st = cvae_model_get_config(model, &cfg)) || (st = cvae_config_get_batch_size(cfg, &batch)) ||
        (st = cvae_dataset_shape(train, &count, NULL, NULL, NULL)) ||
        (st = cvae_model_epochs_done(model, &done))) {
        cvae_config_destroy(cfg);
        return cli_lib_error(st);
    }
    cvae_config_destroy(cfg);
    if (has_labels(train)) {
        if (count > TRAIN_EVAL_MAX) {
            if ((st = cvae_dataset_subset_first(train, TRAIN_EVAL_MAX, &train_subset)))
                return cli_lib_error(st);
            train_eval = train_subset;
        } else {
            train_eval = train;
        }
    }

    cli_progress prog;
    cli_progress_init(&prog, cli_mpi_rank() == 0 && (o->progress || (!o->quiet && isatty(STDERR_FILENO))),
                      count, batch);
    int dirty = 0, interrupted = 0, mid_epoch = 0;
    if (done >= total && !o->quiet)
        printf("nothing to train: the model has %d epochs, --epochs is %d\n", done, total);
    cli_sigint_install();
    while (done < total && !cli_interrupted) {
        double t0 = cli_now();
        int step = 0;
        if ((st = cvae_model_manifold_step_due(model, train, &step))) {
            rc = cli_lib_error(st);
            break;
        }
        if (step && !o->quiet && cli_mpi_rank() == 0) {
            printf("manifold step before epoch %d: clustering the codes of %lld training images "
                   "(neighbour graph, embedding, Gaussian mixture)\n", done + 1, (long long)count);
            fflush(stdout);
        }
        cli_progress_begin(&prog);
        st = cvae_model_train(model, train, 1, NULL, cli_progress_cb, &prog);
        cli_progress_end(&prog);
        if (st == CVAE_E_CANCELLED) {
            dirty = 1; /* the weights moved during the partial epoch */
            interrupted = 1;
            /* a stop after an epoch's last batch completes that epoch */
            int before = done;
            if ((st = cvae_model_epochs_done(model, &done)))
                rc = cli_lib_error(st);
            mid_epoch = done == before;
            break;
        }
        if (st) {
            rc = cli_lib_error(st);
            break;
        }
        dirty = 1;
        if ((st = cvae_model_epochs_done(model, &done))) {
            rc = cli_lib_error(st);
            break;
        }
        const double *l = prog.losses;
        char line[512];
        snprintf(line, sizeof line, "epoch %d/%d  loss %.1f (recon %.1f kl %.1f cat %.1f bal %.1f)",
                 done, total, l[CVAE_LOSS_TOTAL], l[CVAE_LOSS_RECON], l[CVAE_LOSS_KL],
                 l[CVAE_LOSS_CATEGORY], l[CVAE_LOSS_BALANCE]);
        if (!o->quiet && (rc = epoch_metrics(model, train_eval, test, line, sizeof line)))
            break;
        size_t used = strlen(line);
        double t1 = cli_now();
        if (step && prog.t_first >= t0)
            snprintf(line + used, sizeof line - used, "  %.1f s (manifold step %.1f s)", t1 - t0,
                     prog.t_first - t0);
        else
            snprintf(line + used, sizeof line - used, "  %.1f s", t1 - t0);
        if (!o->quiet) {
            printf("%s\n", line);
            fflush(stdout);
        }
        if ((o->save_every > 0 && done % o->save_every == 0) || done >= total) {
            if ((rc = save_model(model, out, done >= total, o)))
                break;
            dirty = 0;
        }
    }
    if (cli_interrupted)
        interrupted = 1;
    cli_sigint_restore();

    if (!rc && (dirty || (o->resume && strcmp(out, o->resume) != 0)))
        rc = save_model(model, out, !interrupted && done >= total, o);
    if (interrupted) {
        if (!rc)
            fprintf(stderr, "convvae: interrupted after %d complete epoch%s%s; saved %s (resume "
                    "with --resume %s%s)\n", done, done == 1 ? "" : "s",
                    mid_epoch ? " and part of the next" : "", out, out,
                    mid_epoch ? ", which finishes that epoch where it stopped" : "");
        /* The shell convention for death by signal: 130 for SIGINT, 143 for SIGTERM. */
        rc = rc ? rc : (cli_interrupted == SIGTERM ? 128 + SIGTERM : CLI_EXIT_INTERRUPTED);
    } else if (!rc && !o->quiet) {
        printf("saved %s (%d epoch%s%s)\n", out, done, done == 1 ? "" : "s",
               o->weights_only ? ", weights only" : "");
    }
    cvae_dataset_destroy(train_subset);
    return rc;
}

int cli_train(int argc, char **argv)
{
    train_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_train(argc, argv, &o);
    if (rc) {
        free(o.settings);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }

    cvae_model *model = NULL;
    cvae_config *cfg = NULL;
    cvae_dataset *train = NULL, *test = NULL;
    char *default_out = NULL;
    cvae_status st;

    const char *out = o.out;
    if (!out && o.resume)
        out = o.resume;
    if (!out) {
        const char *name = o.data.dataset ? o.data.dataset : "model";
        size_t n = strlen(name) + sizeof "convvae-.safetensors";
        if (!(default_out = malloc(n))) {
            rc = cli_error(CVAE_E_NOMEM, "cannot allocate a path");
            goto done;
        }
        snprintf(default_out, n, "convvae-%s.safetensors", name);
        out = default_out;
    }
    /* Where the checkpoint goes, before anything else: a bad path must not
     * cost an hour of training. */
    if ((rc = cli_check_output(out)))
        goto done;

    /* The checkpoint first: a mismatch is found before minutes of loading. */
    if (o.resume) {
        cvae_config *ckpt = NULL;
        if ((rc = cli_load_model(o.resume, &model)))
            goto done;
        if ((st = cvae_model_get_config(model, &ckpt))) {
            rc = cli_lib_error(st);
            goto done;
        }
        rc = check_resume_settings(ckpt, &o, &cfg);
        cvae_config_destroy(ckpt);
        if (rc)
            goto done;
    }

    if (cli_images_given(&o.img)) {
        /* A folder: the requested (or default) size, or the checkpoint's. */
        int c = o.img.channels ? o.img.channels : CLI_IMAGE_DEFAULT_CHANNELS;
        int h = o.img.height ? o.img.height : CLI_IMAGE_DEFAULT_SIZE;
        int w = o.img.width ? o.img.width : CLI_IMAGE_DEFAULT_SIZE;
        if (cfg && (st = cvae_config_get_input_shape(cfg, &c, &h, &w))) {
            rc = cli_lib_error(st);
            goto done;
        }
        if (cfg && ((o.img.channels && o.img.channels != c) ||
                    (o.img.height && (o.img.height != h || o.img.width != w)))) {
            rc = cli_usage_error("train", "the checkpoint %s takes %dx%dx%d images; a resumed "
                                 "run keeps its input shape", o.resume, c, h, w);
            goto done;
        }
        o.img.threads = cli_cores();
        for (int i = 0; i < o.nsettings; i++)
            if (strcmp(o.settings[i].name, "threads") == 0)
                o.img.threads = atoi(o.settings[i].value);
        o.img.progress = o.progress;
        o.img.quiet = o.quiet;
        if ((rc = cli_images_load(&o.img, c, h, w, &train)))
            goto done;
    } else if ((rc = cli_data_load(&o.data, CLI_SPLIT_TRAIN, 1, &train))) {
        goto done;
    }
    if ((rc = cli_data_load(&o.data, CLI_SPLIT_TEST, o.data.test_images != NULL, &test)))
        goto done;
    if (o.data.dataset && !test)
        cli_warn("no test split of %s found; reporting training metrics only", o.data.dataset);

    if (!model) {
        int c, h, w;
        if ((st = cvae_config_create(&cfg)) ||
            (st = cvae_dataset_shape(train, NULL, &c, &h, &w)) ||
            (st = cvae_config_set_input_shape(cfg, c, h, w)) ||
            (st = cvae_config_set_threads(cfg, cli_cores()))) {
            rc = cli_lib_error(st);
            goto done;
        }
        if ((rc = apply_settings(cfg, &o)))
            goto done;
        if ((st = cvae_model_create(cfg, &model))) {
            rc = cli_lib_error(st);
            goto done;
        }
    }
    if ((rc = check_shape(cfg, train, "training")) || (test && (rc = check_shape(cfg, test, "test"))))
        goto done;
    if ((rc = cli_mpi_attach(model)) || (o.overlap && (rc = cli_mpi_overlap(model))))
        goto done;
    if (o.micro_batch && (st = cvae_model_set_micro_batch(model, (int)o.micro_batch))) {
        rc = cli_lib_error(st);
        goto done;
    }

    int total = 0, done_epochs = 0;
    if ((st = cvae_config_get_epochs(cfg, &total)) || (st = cvae_model_epochs_done(model, &done_epochs))) {
        rc = cli_lib_error(st);
        goto done;
    }
    cvae_recipe recipe = CVAE_RECIPE_PAPER;
    int pretrain = 0;
    if ((st = cvae_config_get_recipe(cfg, &recipe)) ||
        (st = cvae_config_get_pretrain_epochs(cfg, &pretrain))) {
        rc = cli_lib_error(st);
        goto done;
    }
    if (recipe == CVAE_RECIPE_MANIFOLD && total <= pretrain)
        cli_warn("--epochs %d does not go past the %d pretraining epochs: the manifold step and "
                 "the fine-tuning never run, so the category head is never taught and the "
                 "clusters are close to random; train more epochs, lower --pretrain-epochs, or "
                 "use --recipe paper", total, pretrain);
    if (!o.quiet) {
        print_summary(cfg, model, train, test, &o, out, done_epochs, total);
        /* Output that cannot be written (a full disk, /dev/full) is found
         * before training, not after it. */
        if (ferror(stdout)) {
            rc = cli_error(CVAE_E_IO, "cannot write to standard output");
            goto done;
        }
    }
    rc = run_training(model, train, test, &o, out, total);

done:
    free(default_out);
    cvae_dataset_destroy(train);
    cvae_dataset_destroy(test);
    cvae_model_destroy(model);
    cvae_config_destroy(cfg);
    free(o.settings);
    return rc;
}
