/* Image folders and lists in the convvae tool (see cli_images.h). */
#define _POSIX_C_SOURCE 200809L

#include "cli_images.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* At most this many skipped files are named on stderr. */
enum { SKIPPED_SHOWN = 5 };

void cli_images_init(cli_image_opts *o) { memset(o, 0, sizeof *o); }

int cli_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

static int parse_size(cli_args *a, cli_image_opts *o)
{
    const char *v;
    if (cli_value(a, &v))
        return -1;
    char *end;
    long h = strtol(v, &end, 10), w = h;
    if (end != v && (*end == 'x' || *end == 'X')) {
        const char *s = end + 1;
        w = strtol(s, &end, 10);
        if (end == s)
            w = -1;
    }
    if (end == v || *end != '\0' || h < 1 || h > 4096 || w < 1 || w > 4096) {
        cli_usage_error(a->cmd, "option '--input-size' must be HxW or N (sides 1..4096), got "
                        "'%s'", v);
        return -1;
    }
    o->height = (int)h;
    o->width = (int)w;
    return 1;
}

int cli_images_flag(cli_args *a, cli_image_opts *o, unsigned allowed)
{
    long long v;
    if (cli_is(a, "images-dir"))
        return cli_value(a, &o->dir) ? -1 : 1;
    if (cli_is(a, "images-list"))
        return cli_value(a, &o->list) ? -1 : 1;
    if (cli_is(a, "skip-bad")) {
        o->skip = 1;
        return cli_no_value(a) ? -1 : 1;
    }
    if ((allowed & CLI_IMAGES_SHAPE) && cli_is(a, "input-size"))
        return parse_size(a, o);
    if ((allowed & CLI_IMAGES_SHAPE) && cli_is(a, "channels")) {
        if (cli_int(a, 1, 3, &v))
            return -1;
        if (v == 2) {
            cli_usage_error(a->cmd, "option '--channels' must be 1 (grey) or 3 (RGB)");
            return -1;
        }
        o->channels = (int)v;
        return 1;
    }
    if ((allowed & CLI_IMAGES_THREADS) && cli_is(a, "threads")) {
        if (cli_int(a, 1, 1024, &v))
            return -1;
        o->threads = (int)v;
        return 1;
    }
    if ((allowed & CLI_IMAGES_THREADS) && cli_is(a, "progress")) {
        o->progress = 1;
        return cli_no_value(a) ? -1 : 1;
    }
    return 0;
}

int cli_images_given(const cli_image_opts *o) { return o->dir || o->list; }

int cli_images_check(const cli_image_opts *o, const cli_data_opts *d, const char *cmd)
{
    if (o->dir && o->list)
        return cli_usage_error(cmd, "give --images-dir or --images-list, not both");
    if (cli_images_given(o) && (d->dataset || d->images || d->test_images))
        return cli_usage_error(cmd, "give image files (--images-dir/--images-list) or IDX "
                               "data (--dataset/--images), not both");
    if (!cli_images_given(o) && (o->height || o->channels || o->skip))
        return cli_usage_error(cmd, "--input-size, --channels and --skip-bad need "
                               "--images-dir or --images-list");
    return 0;
}

void cli_images_help(FILE *f, unsigned allowed)
{
    fputs("Image files (instead of IDX data):\n"
          "  --images-dir DIR      every PNG and JPEG under DIR (recursive, sorted by name;\n"
          "                        names starting with '.' are skipped)\n"
          "  --images-list FILE    the image paths listed in FILE, one per line\n",
          f);
    if (allowed & CLI_IMAGES_SHAPE)
        fprintf(f,
                "  --input-size HxW      size images are resized to (default %dx%d; each side\n"
                "                        must divide by 2^branches): area averaging to shrink,\n"
                "                        bilinear to grow, aspect ratio not kept\n"
                "  --channels 1|3        grey or RGB (default %d; transparency is composited\n"
                "                        on white)\n",
                CLI_IMAGE_DEFAULT_SIZE, CLI_IMAGE_DEFAULT_SIZE, CLI_IMAGE_DEFAULT_CHANNELS);
    else
        fputs("                        (resized to the model's input size and channels)\n", f);
    fputs("  --skip-bad            leave out files that cannot be read or decoded (they are\n"
          "                        counted and the first few named) instead of failing\n",
          f);
    if (allowed & CLI_IMAGES_THREADS)
        fputs("  --threads N           decoding and compute threads (default: all cores)\n"
              "  --progress            draw the loading bar even if stderr is not a terminal\n",
              f);
}

typedef struct load_bar {
    int enabled, tty, drawn, width;
    double t0;
} load_bar;

static int on_load_progress(void *user, int64_t done, int64_t total)
{
    load_bar *b = user;
    if (cli_interrupted)
        return 1;
    if (!b->enabled || total < 1)
        return 0;
    enum { BAR = 30 };
    char bar[BAR + 1];
    int filled = (int)(done * BAR / total);
    for (int i = 0; i < BAR; i++)
        bar[i] = i < filled ? '=' : ' ';
    bar[BAR] = '\0';
    double el = cli_now() - b->t0;
    char line[160];
    int len = snprintf(line, sizeof line, "loading [%s] %lld/%lld images  %.0f img/s", bar,
                       (long long)done, (long long)total, el > 0 ? (double)done / el : 0.0);
    if (len < 0)
        return 0;
    if (len >= (int)sizeof line)
        len = (int)sizeof line - 1;
    int pad = b->width > len ? b->width - len : 0;
    fprintf(stderr, "\r%s%*s", line, pad, "");
    fflush(stderr);
    b->width = len;
    b->drawn = 1;
    return 0;
}

static void report_skipped(const cvae_image_reader *r)
{
    int64_t n = 0;
    if (cvae_image_reader_num_skipped(r, &n) || n == 0)
        return;
    cli_warn("skipped %lld file%s that could not be read:", (long long)n, n == 1 ? "" : "s");
    for (int64_t i = 0; i < n && i < SKIPPED_SHOWN; i++) {
        const char *path = NULL, *why = NULL;
        if (cvae_image_reader_skipped(r, i, &path, &why) == CVAE_OK)
            fprintf(stderr, "  %s\n", why);
    }
    if (n > SKIPPED_SHOWN)
        fprintf(stderr, "  ... and %lld more\n", (long long)(n - SKIPPED_SHOWN));
}

int cli_images_load(const cli_image_opts *o, int channels, int height, int width,
                    cvae_dataset **out)
{
    *out = NULL;
    cvae_image_reader *r = NULL;
    load_bar bar = {0, isatty(STDERR_FILENO), 0, 0, cli_now()};
    bar.enabled = !o->quiet && (o->progress || bar.tty);
    cvae_status st = cvae_image_reader_create(channels, height, width, &r);
    if (!st)
        st = cvae_image_reader_set_threads(r, o->threads ? o->threads : cli_cores());
    if (!st)
        st = cvae_image_reader_set_skip_bad(r, o->skip);
    if (!st)
        st = cvae_image_reader_set_progress(r, on_load_progress, &bar);
    if (!st)
        st = o->dir ? cvae_image_reader_add_dir(r, o->dir) : cvae_image_reader_add_list(r, o->list);
    if (!st) {
        int64_t n = 0;
        cvae_image_reader_count(r, &n);
        if (n == 0) {
            cvae_image_reader_destroy(r);
            return cli_error(CVAE_E_INVALID_ARG, "no PNG or JPEG files %s '%s'",
                             o->dir ? "found under" : "listed in", o->dir ? o->dir : o->list);
        }
        cli_sigint_install();
        st = cvae_image_reader_load(r, out);
        cli_sigint_restore();
    }
    if (bar.drawn) {
        if (bar.tty)
            fprintf(stderr, "\r%*s\r", bar.width, "");
        else
            fputc('\n', stderr);
    }
    int rc = CLI_EXIT_OK;
    if (st == CVAE_E_CANCELLED) {
        fprintf(stderr, "convvae: interrupted while loading images\n");
        rc = cli_interrupted == SIGTERM ? 128 + SIGTERM : CLI_EXIT_INTERRUPTED;
    } else if (st) {
        rc = cli_lib_error(st);
        if (st != CVAE_E_NOMEM && st != CVAE_E_UNSUPPORTED && st != CVAE_E_INVALID_ARG &&
            !o->skip)
            fputs("(--skip-bad leaves such files out)\n", stderr);
    } else {
        report_skipped(r);
    }
    cvae_image_reader_destroy(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Models, CSV, per-cluster folders                                         */
/* ------------------------------------------------------------------------ */

int cli_images_load_for_model(const cli_image_opts *o, cvae_model *model, cvae_dataset **out)
{
    cvae_config *cfg = NULL;
    int c = 0, h = 0, w = 0;
    cvae_status st = cvae_model_get_config(model, &cfg);
    if (!st)
        st = cvae_config_get_input_shape(cfg, &c, &h, &w);
    cvae_config_destroy(cfg);
    if (!st)
        st = cvae_set_num_threads(o->threads ? o->threads : cli_cores());
    if (st)
        return cli_lib_error(st);
    if (c != 1 && c != 3)
        return cli_error(CVAE_E_INVALID_ARG, "the model takes %d-channel images; image files "
                         "give 1 (grey) or 3 (RGB)", c);
    return cli_images_load(o, c, h, w, out);
}

int cli_csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n"))
        return fputs(s, f) == EOF ? -1 : 0;
    if (putc('"', f) == EOF)
        return -1;
    for (; *s; s++)
        if ((*s == '"' && putc('"', f) == EOF) || putc(*s, f) == EOF)
            return -1;
    return putc('"', f) == EOF ? -1 : 0;
}
