/*
 * cli_images.h - image folders and lists in the convvae tool: the options
 * (--images-dir, --images-list, --input-size, --channels, --skip-bad,
 * --threads), loading with a progress bar and a report of skipped files,
 * per-cluster folders and the machine's core count.
 */
#ifndef CONVVAE_CLI_IMAGES_H
#define CONVVAE_CLI_IMAGES_H

#include <stdint.h>
#include <stdio.h>

#include "cli_common.h"

/* Defaults for training on a folder: small enough to train in minutes on
 * a laptop, large enough to tell photos apart; RGB because grey pictures
 * lose nothing by it while colour ones would lose their colour. */
enum { CLI_IMAGE_DEFAULT_SIZE = 32, CLI_IMAGE_DEFAULT_CHANNELS = 3 };

typedef struct cli_image_opts {
    const char *dir, *list; /* point into argv */
    int height, width, channels; /* 0: not given */
    int skip;
    int threads;  /* 0: not given */
    int progress; /* --progress */
    int quiet;    /* no progress bar, no skipped-file report on success */
} cli_image_opts;

/* Which image flags a command takes. */
enum {
    CLI_IMAGES_SHAPE = 1,  /* --input-size, --channels (train) */
    CLI_IMAGES_THREADS = 2 /* --threads, --progress (not train: there they are model options) */
};

void cli_images_init(cli_image_opts *o);
/* 1 consumed, 0 not an image flag, -1 usage error (reported). */
int cli_images_flag(cli_args *a, cli_image_opts *o, unsigned allowed);
/* Were image files given (--images-dir or --images-list)? */
int cli_images_given(const cli_image_opts *o);
/* Cross-flag checks after parsing; data: the IDX flags, for conflicts. */
int cli_images_check(const cli_image_opts *o, const cli_data_opts *data, const char *cmd);
void cli_images_help(FILE *f, unsigned allowed);
/* Load the images at channels x height x width; returns an exit code
 * (errors reported). Skipped files are reported on stderr. */
int cli_images_load(const cli_image_opts *o, int channels, int height, int width,
                    cvae_dataset **out);

/* Load the images at a model's input shape, after setting the library's
 * thread count (--threads, default all cores). Returns an exit code. */
int cli_images_load_for_model(const cli_image_opts *o, cvae_model *model, cvae_dataset **out);

/* Write s as one CSV field (RFC 4180: quoted when it holds a comma, a
 * quote or a line break). 0 or -1. */
int cli_csv_field(FILE *f, const char *s);

/* DIR/cluster_K/NNNNNN_NAME -> each image file of cluster K (NNNNNN: its
 * index, so names stay unique and in data set order); a copy where a
 * symbolic link cannot be made. DIR must not exist or be empty. Returns an
 * exit code. */
int cli_link_by_cluster(const char *dir, const cvae_dataset *data, const int32_t *clusters,
                        int64_t n, int k);

/* Online processor count in [1, 1024]. */
int cli_cores(void);

int cli_montage(int argc, char **argv);

#endif
