/* convvae - command-line front end of libconvvae: dispatch to the commands. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "cli_images.h"
#include "cli_mpi.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", cli_train, "train a model on a data set and save checkpoints"},
    {"eval", cli_eval, "clustering metrics (acc, purity, nmi, ari) of a model on labelled data"},
    {"cluster", cli_cluster, "cluster of every image as CSV (index or path, cluster, probability)"},
    {"montage", cli_montage, "PNG contact sheet of image files, one row per cluster"},
    {"generate", cli_generate, "PNG grid of generated images, one row per cluster"},
    {"info", cli_info, "configuration, epochs and parameter count of a checkpoint"},
};
#define NCOMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f)
{
    fputs("Usage: convvae COMMAND [OPTIONS]\n"
          "       convvae help [COMMAND]\n"
          "       convvae --version\n"
          "\n"
          "Image clustering with a convolution-optimised variational autoencoder.\n"
          "\n"
          "Commands:\n",
          f);
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("  help       this text, or 'convvae help COMMAND' for a command's options\n"
          "\n"
          "Every command takes --help. Exit status: 0 success, 1 runtime error (also\n"
          "when standard output cannot be written), 2 usage error, 130 or 143\n"
          "interrupted by SIGINT or SIGTERM (train saves its checkpoint first; a signal\n"
          "during a save waits for it to finish).\n"
          "\n"
          "Output files (--out) are checked before any work and written atomically: only\n"
          "a regular file is replaced (a FIFO, device or directory is refused), and a\n"
          "symbolic link keeps pointing to its file, which is replaced. A hidden\n"
          ".NAME.tmp left by a killed run is taken over by the next write to NAME.\n"
          "The folder of cluster --by-cluster is checked before any work too: it must not\n"
          "exist or be empty.\n",
          f);
}

static const command *find_command(const char *name)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int print_version(void)
{
    printf("convvae %s (libconvvae %s)\n", cvae_version_string(), cvae_version_string());
    if (cvae_version_number() != (uint32_t)CVAE_VERSION_NUMBER)
        cli_warn("built against libconvvae %d.%d.%d, running with %s", CVAE_VERSION_MAJOR,
                 CVAE_VERSION_MINOR, CVAE_VERSION_PATCH, cvae_version_string());
    return CLI_EXIT_OK;
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        if (argc > 2) {
            fprintf(stderr, "convvae: --version takes no arguments\n");
            return CLI_EXIT_USAGE;
        }
        return print_version();
    }
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc == 2) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        const command *c = argc == 3 ? find_command(argv[2]) : NULL;
        if (!c) {
            fprintf(stderr, "convvae: no help for '%s'\n", argc == 3 ? argv[2] : argv[3]);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
        char help_flag[] = "--help";
        char *help_argv[] = {argv[2], help_flag, NULL};
        return c->run(2, help_argv);
    }
    const command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "convvae: unknown command '%s'\n", name);
        fputs("Try 'convvae help'.\n", stderr);
        return CLI_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
    cli_mpi_init(&argc, &argv);
    /* Standard output is flushed and checked before MPI ends the job. */
    return cli_mpi_finish(cli_finish_output(run(argc, argv)));
}
