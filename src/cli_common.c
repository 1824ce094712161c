#define _POSIX_C_SOURCE 200809L

#include "cli_common.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "convvae %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'convvae %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_lib_error(cvae_status st)
{
    fprintf(stderr, "convvae: %s: %s\n", cvae_strerror(st), cvae_last_error());
    return CLI_EXIT_RUNTIME;
}

int cli_error(cvae_status st, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "convvae: %s: ", cvae_strerror(st));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_RUNTIME;
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    fputs("convvae: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Argument iteration                                                       */
/* ------------------------------------------------------------------------ */

void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->pos = 1;
}

int cli_next(cli_args *a)
{
    if (a->pos >= a->argc)
        return 0;
    const char *arg = a->argv[a->pos++];
    a->inline_val = NULL;
    if (strcmp(arg, "-h") == 0) {
        strcpy(a->flag, "help");
        return 1;
    }
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        if (arg[0] == '-' && arg[1] != '\0')
            return cli_usage_error(a->cmd, "unknown option '%s'", arg), -1;
        return cli_usage_error(a->cmd, "unexpected argument '%s'", arg), -1;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    if (len == 0 || len >= sizeof a->flag)
        return cli_usage_error(a->cmd, "unknown option '%s'", arg), -1;
    memcpy(a->flag, name, len);
    a->flag[len] = '\0';
    if (eq)
        a->inline_val = eq + 1;
    return 1;
}

int cli_is(const cli_args *a, const char *name)
{
    return strcmp(a->flag, name) == 0;
}

int cli_unknown(const cli_args *a)
{
    return cli_usage_error(a->cmd, "unknown option '--%s'", a->flag);
}

int cli_no_value(cli_args *a)
{
    if (a->inline_val) {
        cli_usage_error(a->cmd, "option '--%s' takes no value", a->flag);
        return -1;
    }
    return 0;
}

int cli_value(cli_args *a, const char **out)
{
    if (a->inline_val) {
        *out = a->inline_val;
        return 0;
    }
    /* A following flag is not taken as the value: "--out --quiet" is far
     * more likely a forgotten value than a file called "--quiet". Negative
     * numbers still work ("--seed=-1" or "-1"). */
    if (a->pos >= a->argc || strncmp(a->argv[a->pos], "--", 2) == 0) {
        cli_usage_error(a->cmd, "option '--%s' needs a value", a->flag);
        return -1;
    }
    *out = a->argv[a->pos++];
    return 0;
}

int cli_int(cli_args *a, long long min, long long max, long long *out)
{
    const char *s;
    if (cli_value(a, &s))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || isspace((unsigned char)*s) || *end != '\0') {
        cli_usage_error(a->cmd, "option '--%s' needs an integer, got '%s'", a->flag, s);
        return -1;
    }
    if (errno == ERANGE || v < min || v > max) {
        cli_usage_error(a->cmd, "option '--%s' must be in [%lld, %lld], got '%s'", a->flag, min,
                        max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_u64(cli_args *a, uint64_t *out)
{
    const char *s;
    if (cli_value(a, &s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    /* strtoull accepts "-1" and wraps it; a seed of 2^64-1 from a typo is
     * not what anyone means. */
    if (!isdigit((unsigned char)*s) || *end != '\0' || errno == ERANGE) {
        cli_usage_error(a->cmd, "option '--%s' needs an unsigned integer, got '%s'", a->flag, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Data sets                                                                */
/* ------------------------------------------------------------------------ */

static const char *const known_datasets[] = {"mnist", "fashion-mnist", NULL};

static const char *const split_files[2][2] = {
    {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
    {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
};

void cli_data_init(cli_data_opts *d)
{
    memset(d, 0, sizeof *d);
    d->split = CLI_SPLIT_TEST;
}

int cli_data_flag(cli_args *a, cli_data_opts *d, unsigned allowed)
{
    long long v;
    const int test_ok = (allowed & CLI_DATA_TEST_FILES) != 0;
    if (cli_is(a, "dataset")) {
        if (cli_value(a, &d->dataset))
            return -1;
        for (int i = 0; known_datasets[i]; i++)
            if (strcmp(d->dataset, known_datasets[i]) == 0)
                return 1;
        cli_usage_error(a->cmd, "unknown data set '%s' (known: mnist, fashion-mnist)",
                        d->dataset);
        return -1;
    }
    if (cli_is(a, "data-dir"))
        return cli_value(a, &d->data_dir) ? -1 : 1;
    if (cli_is(a, "images"))
        return cli_value(a, &d->images) ? -1 : 1;
    if (cli_is(a, "labels"))
        return cli_value(a, &d->labels) ? -1 : 1;
    if (cli_is(a, "limit")) {
        if (cli_int(a, 1, INT64_MAX, &v))
            return -1;
        d->limit = v;
        return 1;
    }
    if (test_ok && cli_is(a, "test-images"))
        return cli_value(a, &d->test_images) ? -1 : 1;
    if (test_ok && cli_is(a, "test-labels"))
        return cli_value(a, &d->test_labels) ? -1 : 1;
    if (test_ok && cli_is(a, "test-limit")) {
        if (cli_int(a, 1, INT64_MAX, &v))
            return -1;
        d->test_limit = v;
        return 1;
    }
    if ((allowed & CLI_DATA_SPLIT) && cli_is(a, "split")) {
        const char *s;
        if (cli_value(a, &s))
            return -1;
        if (strcmp(s, "train") == 0)
            d->split = CLI_SPLIT_TRAIN;
        else if (strcmp(s, "test") == 0)
            d->split = CLI_SPLIT_TEST;
        else {
            cli_usage_error(a->cmd, "option '--split' must be 'train' or 'test', got '%s'", s);
            return -1;
        }
        d->split_given = 1;
        return 1;
    }
    return 0;
}

int cli_data_check(const cli_data_opts *d, const char *cmd, int need)
{
    if (d->dataset && (d->images || d->test_images))
        return cli_usage_error(cmd, "give either --dataset or explicit image files, not both");
    if (d->labels && !d->images)
        return cli_usage_error(cmd, "--labels needs --images");
    if (d->test_labels && !d->test_images)
        return cli_usage_error(cmd, "--test-labels needs --test-images");
    if (d->test_limit && !d->dataset && !d->test_images)
        return cli_usage_error(cmd, "--test-limit needs test data");
    if (d->split_given && !d->dataset)
        return cli_usage_error(cmd, "--split selects a split of --dataset");
    if (d->data_dir && !d->dataset)
        return cli_usage_error(cmd, "--data-dir is only used with --dataset");
    if (need && !d->dataset && !d->images)
        return cli_usage_error(cmd, "no data: give --dataset NAME or --images FILE");
    return 0;
}

void cli_data_help(FILE *f, unsigned allowed)
{
    fputs("Data:\n"
          "  --dataset NAME        mnist | fashion-mnist, looked up in the data directory\n"
          "  --data-dir DIR        data directory (default: $CONVVAE_DATA, else ./data);\n"
          "                        NAME/train-images-idx3-ubyte[.gz] etc.\n"
          "  --images FILE         IDX image file (raw or gzip) instead of --dataset\n"
          "  --labels FILE         IDX label file for --images\n"
          "  --limit N             use only the first N images\n",
          f);
    if (allowed & CLI_DATA_TEST_FILES)
        fputs("  --test-images FILE    IDX test images (reported on, never trained on)\n"
              "  --test-labels FILE    IDX label file for --test-images\n"
              "  --test-limit N        use only the first N test images\n",
              f);
    if (allowed & CLI_DATA_SPLIT)
        fputs("  --split train|test    split of --dataset (default: test)\n", f);
}

static char *join_path(const char *a, const char *b, const char *c, const char *suffix)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(suffix) + 3;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s/%s%s", a, b, c, suffix);
    return p;
}

/* DIR/NAME/FILE or DIR/NAME/FILE.gz, whichever exists (raw first); NULL
 * with *nomem = 0 if neither does. */
static char *find_file(const char *dir, const char *name, const char *file, int *nomem)
{
    static const char *const suffixes[] = {"", ".gz"};
    *nomem = 0;
    for (int i = 0; i < 2; i++) {
        char *p = join_path(dir, name, file, suffixes[i]);
        if (!p) {
            *nomem = 1;
            return NULL;
        }
        if (access(p, F_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

static const char *data_dir(const cli_data_opts *d)
{
    if (d->data_dir)
        return d->data_dir;
    const char *env = getenv("CONVVAE_DATA");
    return env && *env ? env : "./data";
}

static int apply_limit(cvae_dataset **ds, int64_t limit)
{
    int64_t count;
    cvae_status st = cvae_dataset_shape(*ds, &count, NULL, NULL, NULL);
    if (st)
        return cli_lib_error(st);
    if (limit <= 0 || limit >= count)
        return CLI_EXIT_OK;
    cvae_dataset *sub;
    if ((st = cvae_dataset_subset_first(*ds, limit, &sub)))
        return cli_lib_error(st);
    cvae_dataset_destroy(*ds);
    *ds = sub;
    return CLI_EXIT_OK;
}

int cli_data_load(const cli_data_opts *d, cli_split split, int required, cvae_dataset **out)
{
    *out = NULL;
    const char *images = split == CLI_SPLIT_TRAIN ? d->images : d->test_images;
    const char *labels = split == CLI_SPLIT_TRAIN ? d->labels : d->test_labels;
    const int64_t limit = split == CLI_SPLIT_TRAIN ? d->limit : d->test_limit;
    char *found_images = NULL, *found_labels = NULL;
    int rc = CLI_EXIT_OK, nomem = 0;

    if (!images) {
        if (!d->dataset) {
            if (required)
                return cli_error(CVAE_E_INVALID_ARG, "no %s data given",
                                 split == CLI_SPLIT_TRAIN ? "training" : "test");
            return CLI_EXIT_OK;
        }
        const char *dir = data_dir(d);
        found_images = find_file(dir, d->dataset, split_files[split][0], &nomem);
        if (!found_images) {
            if (nomem)
                return cli_error(CVAE_E_NOMEM, "cannot allocate a path");
            if (!required)
                return CLI_EXIT_OK;
            return cli_error(CVAE_E_IO,
                             "cannot find %s/%s/%s (or .gz); set --data-dir or CONVVAE_DATA, "
                             "or fetch the data with the scripts in scripts/",
                             dir, d->dataset, split_files[split][0]);
        }
        found_labels = find_file(dir, d->dataset, split_files[split][1], &nomem);
        if (!found_labels) {
            if (nomem) {
                free(found_images);
                return cli_error(CVAE_E_NOMEM, "cannot allocate a path");
            }
            /* Labels only feed the reported metrics, so their absence costs
             * the report, not the run. */
            cli_warn("no %s/%s/%s(.gz): metrics on this split are not available", dir,
                     d->dataset, split_files[split][1]);
        }
        images = found_images;
        labels = found_labels;
    }

    cvae_status st = cvae_dataset_load_idx(images, labels, out);
    if (st)
        rc = cli_lib_error(st);
    else if ((rc = apply_limit(out, limit))) {
        cvae_dataset_destroy(*out);
        *out = NULL;
    }
    free(found_images);
    free(found_labels);
    return rc;
}

void cli_data_describe(const cvae_dataset *ds, char *buf, size_t size)
{
    int64_t n = 0;
    int c = 0, h = 0, w = 0, has = 0;
    cvae_dataset_shape(ds, &n, &c, &h, &w);
    cvae_dataset_has_labels(ds, &has);
    snprintf(buf, size, "%lld images %dx%dx%d, %s", (long long)n, c, h, w,
             has ? "labelled" : "unlabelled");
}

/* ------------------------------------------------------------------------ */
/* Time, SIGINT and SIGTERM                                                 */
/* ------------------------------------------------------------------------ */

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

volatile sig_atomic_t cli_interrupted = 0;

static void set_handler(int sig, void (*fn)(int))
{
    struct sigaction sa, cur;
    /* A signal ignored by the parent stays ignored: a background job of a
     * plain sh (or nohup) is not meant to see the terminal's Ctrl-C. */
    if (sigaction(sig, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void on_signal(int sig)
{
    static const char msg[] =
        "\nconvvae: interrupted: stopping after this batch and saving the checkpoint "
        "(signal it again to abort at once)\n";
    if (!cli_interrupted)
        cli_interrupted = sig;
    /* Only async-signal-safe calls here. A second signal gets the default
     * action: the last checkpoint on disk is intact because saves are atomic. */
    set_handler(sig, SIG_DFL);
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
}

/* During a save a signal must not kill the process: it would leave the
 * temporary file behind (the checkpoint itself stays intact). It is noted,
 * and the command stops once the save is done. */
static volatile sig_atomic_t signal_while_saving = 0;

static void on_signal_saving(int sig)
{
    static const char msg[] = "\nconvvae: interrupted: finishing the checkpoint first\n";
    if (!cli_interrupted)
        cli_interrupted = sig;
    signal_while_saving = sig;
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
}

static struct sigaction saved_actions[2];
static const int save_signals[2] = {SIGINT, SIGTERM};

void cli_save_begin(void)
{
    signal_while_saving = 0;
    for (int i = 0; i < 2; i++) {
        sigaction(save_signals[i], NULL, &saved_actions[i]);
        set_handler(save_signals[i], on_signal_saving);
    }
}

void cli_save_end(void)
{
    for (int i = 0; i < 2; i++) {
        struct sigaction cur;
        sigaction(save_signals[i], NULL, &cur);
        if (cur.sa_handler != on_signal_saving)
            continue; /* ignored by the parent: left alone */
        /* A signal seen during the save was the first or the second one:
         * either way the next one must not wait for a batch. */
        if (signal_while_saving && saved_actions[i].sa_handler == on_signal)
            set_handler(save_signals[i], SIG_DFL);
        else
            sigaction(save_signals[i], &saved_actions[i], NULL);
    }
}

void cli_sigint_install(void)
{
    set_handler(SIGINT, on_signal);
    /* SIGTERM is what kill, timeout and job schedulers send: it deserves
     * the same clean stop as a Ctrl-C. */
    set_handler(SIGTERM, on_signal);
}

void cli_sigint_restore(void)
{
    set_handler(SIGINT, SIG_DFL);
    set_handler(SIGTERM, SIG_DFL);
}

/* ------------------------------------------------------------------------ */
/* Progress bar                                                             */
/* ------------------------------------------------------------------------ */

enum { BAR_WIDTH = 30 };

void cli_progress_init(cli_progress *p, int enabled, int64_t images, int batch_size)
{
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->tty = isatty(STDERR_FILENO);
    p->images = images;
    p->batch_size = batch_size;
}

void cli_progress_begin(cli_progress *p)
{
    p->t_start = cli_now();
    p->t_last = -1.0;
    p->t_first = -1.0;
    p->drawn = 0;
    p->width = 0;
    p->have_losses = 0;
}

static void format_duration(char *buf, size_t size, double s)
{
    if (!(s >= 0.0) || s > 359999.0) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

int cli_progress_cb(void *user, int epoch, int64_t batch, int64_t batches, const double *losses,
                    int num_losses)
{
    cli_progress *p = user;
    (void)epoch;
    if (losses && num_losses >= CVAE_LOSS_COUNT) {
        memcpy(p->losses, losses, sizeof p->losses);
        p->have_losses = 1;
    }
    if (p->t_first < 0.0)
        p->t_first = cli_now();
    if (cli_interrupted)
        return 1;
    if (!p->enabled || batches < 1)
        return 0;
    double now = cli_now();
    /* At most ~10 redraws a second, but always the last batch, so that a
     * bar logged to a file (--progress) ends on the epoch's final state. */
    if (p->t_last >= 0.0 && now - p->t_last < 0.1 && batch < batches)
        return 0;
    p->t_last = now;

    int64_t done = batch * p->batch_size;
    if (done > p->images)
        done = p->images;
    double elapsed = now - p->t_start;
    double rate = elapsed > 0.0 ? (double)done / elapsed : 0.0;
    char eta[32];
    format_duration(eta, sizeof eta, rate > 0.0 ? (double)(p->images - done) / rate : -1.0);

    char bar[BAR_WIDTH + 1];
    int filled = (int)(batch * BAR_WIDTH / batches);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '=' : ' ';
    if (filled > 0 && filled < BAR_WIDTH)
        bar[filled - 1] = '>';
    bar[BAR_WIDTH] = '\0';

    char line[256];
    int len = snprintf(line, sizeof line, "[%s] %lld/%lld batches  %.0f img/s  ETA %s  loss %.1f",
                       bar, (long long)batch, (long long)batches, rate, eta,
                       p->have_losses ? p->losses[CVAE_LOSS_TOTAL] : 0.0);
    if (len < 0)
        return 0;
    if (len >= (int)sizeof line)
        len = (int)sizeof line - 1;
    /* Pad over the previous, possibly longer, line instead of using a terminal
     * escape, so the output stays clean when stderr is a file (--progress). */
    int pad = p->width > len ? p->width - len : 0;
    fprintf(stderr, "\r%s%*s", line, pad, "");
    fflush(stderr);
    p->width = len;
    p->drawn = 1;
    return 0;
}

void cli_progress_end(cli_progress *p)
{
    if (!p->drawn)
        return;
    if (p->tty)
        fprintf(stderr, "\r%*s\r", p->width, "");
    else
        fputc('\n', stderr);
    fflush(stderr);
    p->drawn = 0;
    p->width = 0;
}

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

int cli_load_model(const char *path, cvae_model **out)
{
    cvae_status st = cvae_model_load(path, out);
    return st ? cli_lib_error(st) : CLI_EXIT_OK;
}
