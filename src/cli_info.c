/* convvae info: what a checkpoint holds (configuration, epochs, size,
 * optimizer state). */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "cli_common.h"

static void info_help(void)
{
    printf("Usage: convvae info --model PATH\n"
           "\n"
           "Print the library version, every configuration option of a checkpoint\n"
           "(name = value), the epochs it was trained for, its parameter count and the\n"
           "steps of the optimizer state it holds (0: weights only; training it further\n"
           "starts a fresh optimizer).\n"
           "\n"
           "  --model PATH          checkpoint written by 'convvae train'\n"
           "  -h, --help            this text\n");
}

int cli_info(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "info", argc, argv);
    const char *path = NULL;
    int r;
    while ((r = cli_next(&a)) != 0) {
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (cli_is(&a, "help")) {
            info_help();
            return CLI_EXIT_OK;
        } else if (cli_is(&a, "model")) {
            if (cli_value(&a, &path))
                return CLI_EXIT_USAGE;
        } else {
            return cli_unknown(&a);
        }
    }
    if (!path)
        return cli_usage_error(a.cmd, "--model PATH is required");

    cvae_model *model = NULL;
    cvae_config *cfg = NULL;
    int rc = cli_load_model(path, &model);
    if (rc)
        return rc;
    int epochs = 0;
    int64_t params = 0, steps = 0;
    cvae_status st;
    if ((st = cvae_model_get_config(model, &cfg)) ||
        (st = cvae_model_epochs_done(model, &epochs)) ||
        (st = cvae_model_num_params(model, &params)) ||
        (st = cvae_model_optimizer_steps(model, &steps))) {
        rc = cli_lib_error(st);
        goto done;
    }
    printf("model = %s\n", path);
    printf("library_version = %s\n", cvae_version_string());
    for (int i = 0; cvae_config_option_name(i); i++) {
        const char *name = cvae_config_option_name(i);
        char value[128];
        if ((st = cvae_config_get(cfg, name, value, sizeof value))) {
            rc = cli_lib_error(st);
            goto done;
        }
        printf("%s = %s\n", name, value);
    }
    printf("epochs_done = %d\n", epochs);
    printf("parameters = %lld\n", (long long)params);
    printf("optimizer_steps = %lld\n", (long long)steps);

done:
    cvae_config_destroy(cfg);
    cvae_model_destroy(model);
    return rc;
}
