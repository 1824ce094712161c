/*
 * cli_common.h - shared pieces of the convvae command-line tool: strict
 * option parsing, error reporting, data set resolution, atomic output files,
 * the progress bar and SIGINT handling. The tool uses only convvae.h.
 */
#ifndef CONVVAE_CLI_COMMON_H
#define CONVVAE_CLI_COMMON_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "convvae.h"

/* Exit codes of every command. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_RUNTIME = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_INTERRUPTED = 130
};

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* ---- argument iteration ------------------------------------------------ */

/* Walks argv of one command. Flags are "--name VALUE", "--name=VALUE" or
 * "-h"; anything else is a usage error (no command takes positional
 * arguments). */
typedef struct cli_args {
    const char *cmd; /* command name, for messages */
    int argc;
    char **argv;
    int pos;                /* next argv index */
    char flag[96];          /* current flag without the leading "--" */
    const char *inline_val; /* text after '=' in "--name=value", else NULL */
} cli_args;

/* argv[0] is the command itself and is skipped. */
void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv);
/* 1: a flag was read into a->flag; 0: no more arguments; -1: usage error
 * (already reported). "-h" reads as "help". */
int cli_next(cli_args *a);
/* Is the current flag `name`? */
int cli_is(const cli_args *a, const char *name);
/* The current flag's value (inline or the next argument). 0 or -1 (usage
 * error reported: missing value). */
int cli_value(cli_args *a, const char **out);
/* Value parsed as a decimal integer in [min, max]. 0 or -1 (reported). */
int cli_int(cli_args *a, long long min, long long max, long long *out);
/* Value parsed as an unsigned 64-bit decimal integer. 0 or -1 (reported). */
int cli_u64(cli_args *a, uint64_t *out);
/* A flag that takes no value must not be written "--flag=x". 0 or -1. */
int cli_no_value(cli_args *a);
/* Report the current flag as unknown; returns CLI_EXIT_USAGE. */
int cli_unknown(const cli_args *a);

/* ---- messages ---------------------------------------------------------- */

/* "convvae CMD: message" and a hint to --help on stderr; CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* "convvae: <cvae_strerror>: <cvae_last_error()>" on stderr;
 * CLI_EXIT_RUNTIME. */
int cli_lib_error(cvae_status st);
/* "convvae: <cvae_strerror(st)>: message" for failures found by the tool
 * itself; CLI_EXIT_RUNTIME. */
int cli_error(cvae_status st, const char *fmt, ...) CLI_PRINTF(2, 3);
/* "convvae: warning: message" on stderr. */
void cli_warn(const char *fmt, ...) CLI_PRINTF(1, 2);

/* ---- data sets ---------------------------------------------------------- */

typedef enum cli_split { CLI_SPLIT_TRAIN = 0, CLI_SPLIT_TEST = 1 } cli_split;

/* What the user said about data. Strings point into argv. */
typedef struct cli_data_opts {
    const char *dataset;  /* "mnist" | "fashion-mnist" or NULL */
    const char *data_dir; /* NULL: $CONVVAE_DATA, else ./data */
    const char *images, *labels;
    const char *test_images, *test_labels;
    int64_t limit, test_limit; /* 0 = all */
    cli_split split;
    int split_given;
} cli_data_opts;

/* Which data flags a command accepts. */
enum {
    CLI_DATA_TEST_FILES = 1, /* --test-images, --test-labels, --test-limit */
    CLI_DATA_SPLIT = 2       /* --split train|test */
};

void cli_data_init(cli_data_opts *d);
/* Cross-flag checks once parsing is done (e.g. --labels without --images).
 * need = 1: some data must be given. 0 or CLI_EXIT_USAGE (reported). */
int cli_data_check(const cli_data_opts *d, const char *cmd, int need);
/* If the current flag is a data flag allowed by `allowed`, consume it:
 * 1 consumed, 0 not a data flag, -1 usage error (reported). */
int cli_data_flag(cli_args *a, cli_data_opts *d, unsigned allowed);
/* Help text for the data flags. */
void cli_data_help(FILE *f, unsigned allowed);
/* Load one split. For a named data set the files are looked up as
 * DIR/NAME/FILE and DIR/NAME/FILE.gz; explicit paths win. With required = 0
 * a split that was not asked for and is not on disk gives *out = NULL and
 * CLI_EXIT_OK. Applies --limit / --test-limit. Returns an exit code (errors
 * reported). */
int cli_data_load(const cli_data_opts *d, cli_split split, int required, cvae_dataset **out);
/* "60000 x 1x28x28, labels" for summaries. */
void cli_data_describe(const cvae_dataset *ds, char *buf, size_t size);

/* ---- output files ------------------------------------------------------- */

/* Output files replace only regular files, write through symbolic links
 * (the link keeps pointing where it did) and are written to a locked
 * ".NAME.tmp" beside the file, then renamed into place, so a failed or
 * interrupted write never leaves a truncated file at `path`. */
typedef struct cli_outfile {
    FILE *f;
    int fd;
    char *tmp;    /* ".NAME.tmp" beside target */
    char *target; /* path, or the file the symbolic link path resolves to */
    const char *path;
} cli_outfile;

/* Can `path` be written under that policy? Commands call it for every
 * output before doing any work. Returns an exit code (errors reported). */
int cli_check_output(const char *path);
/* Returns an exit code (errors reported). */
int cli_outfile_open(cli_outfile *o, const char *path);
/* Flush, fsync, rename, close. Returns an exit code (errors reported). */
int cli_outfile_commit(cli_outfile *o);
/* Close and remove the temporary file. Safe after a failed open/commit. */
void cli_outfile_abort(cli_outfile *o);
/* Can the tool fill the folder `dir` (cluster --by-cluster)? It must not
 * exist (its parent taking new entries) or be an empty, writable folder.
 * Returns an exit code (errors reported). */
int cli_check_output_dir(const char *dir);
/* Write 8-bit grey (channels 1) or RGB (3) pixels, rows of width*channels
 * bytes, as a PNG file at path, atomically (cli_outfile). Returns an exit
 * code (errors reported). */
int cli_write_png(const char *path, const uint8_t *pixels, uint32_t width, uint32_t height,
                  int channels);
/* Flush and close standard output, check standard error: a write error
 * (full disk, /dev/full) turns exit code rc = 0 into CLI_EXIT_RUNTIME with
 * a message. Returns the exit code. */
int cli_finish_output(int rc);

/* ---- time, SIGINT, progress -------------------------------------------- */

/* Monotonic seconds. */
double cli_now(void);

/* The number of the first SIGINT or SIGTERM after cli_sigint_install (0:
 * none); a second one kills the process the default way (checkpoints are
 * written atomically), except during a save (cli_save_begin). */
extern volatile sig_atomic_t cli_interrupted;
void cli_sigint_install(void);
void cli_sigint_restore(void);
/* Around a checkpoint save: SIGINT and SIGTERM (even a second one) wait
 * until the save is done, then count as an interruption (cli_interrupted). */
void cli_save_begin(void);
void cli_save_end(void);

typedef struct cli_progress {
    int enabled;         /* draw the bar */
    int tty;             /* stderr is a terminal */
    int64_t images;      /* training images per epoch */
    int batch_size;
    double t_start, t_last;
    double t_first;      /* when the epoch's first batch was done (after any manifold step) */
    int drawn;           /* something is on the line */
    int width;           /* characters written last time, for padding */
    double losses[CVAE_LOSS_COUNT];
    int have_losses;
} cli_progress;

void cli_progress_init(cli_progress *p, int enabled, int64_t images, int batch_size);
/* Start of an epoch: resets timers and losses. */
void cli_progress_begin(cli_progress *p);
/* The cvae_progress_fn; user is a cli_progress. Returns 1 once SIGINT was
 * seen so that the library stops after the batch. */
int cli_progress_cb(void *user, int epoch, int64_t batch, int64_t batches, const double *losses,
                    int num_losses);
/* End of an epoch: clears (terminal) or ends (file) the bar line. */
void cli_progress_end(cli_progress *p);

/* ---- commands ----------------------------------------------------------- */

int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_cluster(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_info(int argc, char **argv);

/* Load a checkpoint; returns an exit code (errors reported). */
int cli_load_model(const char *path, cvae_model **out);

#endif /* CONVVAE_CLI_COMMON_H */
