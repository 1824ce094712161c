/* convvae generate: decode samples of every cluster into a PNG grid (one row
 * per cluster), written by the tool's one PNG writer (cli_write_png). */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

enum { GAP = 1, GAP_VALUE = 128, MAX_PER_CLUSTER = 1000 };

static void generate_help(void)
{
    printf("Usage: convvae generate --model PATH --out FILE.png [--per-cluster N] [--seed S]\n"
           "\n"
           "Decode N samples of every cluster (z ~ N(M_y, I) with the mixture prior, N(0, I)\n"
           "with the standard prior) into a PNG grid: one row per cluster, N columns,\n"
           "8-bit grayscale for 1-channel models and RGB for 3-channel ones, with a\n"
           "%d-pixel grey gap between images.\n"
           "\n"
           "  --model PATH          checkpoint written by 'convvae train'\n"
           "  --out FILE            PNG to write (replaced atomically)\n"
           "  --per-cluster N       images per cluster, 1..%d (default 10)\n"
           "  --seed S              sampling seed (default 1); each row derives its own\n"
           "  -h, --help            this text\n",
           GAP, MAX_PER_CLUSTER);
}

static uint8_t to_u8(float v)
{
    if (!(v > 0.0f)) /* also NaN */
        return 0;
    if (v >= 1.0f)
        return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

int cli_generate(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "generate", argc, argv);
    const char *model_path = NULL, *out = NULL;
    long long per = 10;
    uint64_t seed = 1;
    int r;
    while ((r = cli_next(&a)) != 0) {
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (cli_is(&a, "help")) {
            generate_help();
            return CLI_EXIT_OK;
        } else if (cli_is(&a, "model")) {
            if (cli_value(&a, &model_path))
                return CLI_EXIT_USAGE;
        } else if (cli_is(&a, "out")) {
            if (cli_value(&a, &out))
                return CLI_EXIT_USAGE;
        } else if (cli_is(&a, "per-cluster")) {
            if (cli_int(&a, 1, MAX_PER_CLUSTER, &per))
                return CLI_EXIT_USAGE;
        } else if (cli_is(&a, "seed")) {
            if (cli_u64(&a, &seed))
                return CLI_EXIT_USAGE;
        } else {
            return cli_unknown(&a);
        }
    }
    if (!model_path)
        return cli_usage_error(a.cmd, "--model PATH is required");
    if (!out)
        return cli_usage_error(a.cmd, "--out FILE is required");

    int rc = cli_check_output(out);
    if (rc)
        return rc;
    cvae_model *model = NULL;
    cvae_config *cfg = NULL;
    float *samples = NULL;
    uint8_t *grid = NULL;
    rc = cli_load_model(model_path, &model);
    if (rc)
        return rc;
    int k = 0, c = 0, h = 0, w = 0;
    cvae_status st;
    if ((st = cvae_model_get_config(model, &cfg)) || (st = cvae_config_get_clusters(cfg, &k)) ||
        (st = cvae_config_get_input_shape(cfg, &c, &h, &w))) {
        rc = cli_lib_error(st);
        goto done;
    }
    if (c != 1 && c != 3) {
        rc = cli_error(CVAE_E_UNSUPPORTED, "the model has %d channels; PNG grids need 1 or 3", c);
        goto done;
    }
    /* Everything is bounded by the config ranges (4096 px, 1024 clusters,
     * 1000 per cluster), but check in 64 bits rather than trust that. */
    const uint64_t gw = (uint64_t)per * (uint64_t)w + (uint64_t)(per - 1) * GAP;
    const uint64_t gh = (uint64_t)k * (uint64_t)h + (uint64_t)(k - 1) * GAP;
    const uint64_t pix = (uint64_t)c * (uint64_t)h * (uint64_t)w;
    if (gw > 0x7fffffffu || gh > 0x7fffffffu || gw * gh * (uint64_t)c > SIZE_MAX / 2 ||
        (uint64_t)per * pix > SIZE_MAX / sizeof(float)) {
        rc = cli_error(CVAE_E_INVALID_ARG, "a %llux%llu grid is too large", (unsigned long long)gw,
                       (unsigned long long)gh);
        goto done;
    }
    samples = malloc((size_t)per * (size_t)pix * sizeof *samples);
    grid = malloc((size_t)(gw * gh * (uint64_t)c));
    if (!samples || !grid) {
        rc = cli_error(CVAE_E_NOMEM, "cannot allocate a %llux%llu grid", (unsigned long long)gw,
                       (unsigned long long)gh);
        goto done;
    }
    memset(grid, GAP_VALUE, (size_t)(gw * gh * (uint64_t)c));
    const size_t stride = (size_t)gw * (size_t)c;
    for (int y = 0; y < k; y++) {
        /* Distinct seeds per row: with the standard prior every cluster
         * decodes the same distribution, and equal seeds would give equal
         * rows. */
        uint64_t row_seed = seed + (uint64_t)y * UINT64_C(0x9E3779B97F4A7C15);
        if ((st = cvae_model_generate(model, y, per, row_seed, samples))) {
            rc = cli_lib_error(st);
            goto done;
        }
        for (long long j = 0; j < per; j++) {
            const float *img = samples + (size_t)j * (size_t)pix;
            size_t x0 = (size_t)j * (size_t)(w + GAP), y0 = (size_t)y * (size_t)(h + GAP);
            for (int py = 0; py < h; py++) {
                uint8_t *row = grid + (y0 + (size_t)py) * stride + x0 * (size_t)c;
                for (int px = 0; px < w; px++)
                    for (int ch = 0; ch < c; ch++) /* NCHW planes to interleaved RGB */
                        row[(size_t)px * (size_t)c + (size_t)ch] =
                            to_u8(img[((size_t)ch * (size_t)h + (size_t)py) * (size_t)w +
                                      (size_t)px]);
            }
        }
    }

    if ((rc = cli_write_png(out, grid, (uint32_t)gw, (uint32_t)gh, c)))
        goto done;
    printf("wrote %s: %d clusters x %lld images (%llux%llu)\n", out, k, per,
           (unsigned long long)gw, (unsigned long long)gh);

done:
    free(samples);
    free(grid);
    cvae_config_destroy(cfg);
    cvae_model_destroy(model);
    return rc;
}
