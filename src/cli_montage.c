/* convvae montage: a contact sheet of a model's clusters over image files.
 * One row per non-empty cluster: a label with the cluster's number and
 * size, its most confident members (highest q(y|x) first), a gap, then its
 * least confident ones (the least confident last). Thumbnails are decoded
 * again from the files at the thumbnail size, so they are sharper than the
 * model's input. Text is drawn with a built-in 5x7 bitmap font. */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "cli_images.h"

enum {
    MARGIN = 12,       /* around the sheet */
    GAP = 6,           /* between thumbnails */
    ROW_GAP = 10,      /* between rows */
    SEP = 28,          /* between the most and the least confident */
    FONT_SCALE = 2,    /* font pixels per bitmap pixel */
    CHAR_W = 6 * FONT_SCALE,
    CHAR_H = 7 * FONT_SCALE,
    HEADER = CHAR_H + 2 * MARGIN,
};

/* ---- the font ----------------------------------------------------------- */

static const char font_chars[] = "0123456789abcdefghijklmnopqrstuvwxyz =,.:()-<>";
/* 7 rows per glyph, 5 bits per row, bit 4 = leftmost column. */
static const uint8_t font_rows[][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}, {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E},
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}, {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F},
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}, {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08},
    {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11},
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}, {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C},
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}, {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11},
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}, {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10},
    {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01}, {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10},
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}, {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06},
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}, {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04},
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}, {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11},
    {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}, {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00},
    {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}, {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C},
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},
};

typedef struct sheet {
    uint8_t *px; /* RGB */
    int w, h;
} sheet;

static void put(sheet *s, int x, int y, const uint8_t rgb[3])
{
    if (x >= 0 && y >= 0 && x < s->w && y < s->h)
        memcpy(s->px + ((size_t)y * (size_t)s->w + (size_t)x) * 3, rgb, 3);
}

static void text(sheet *s, int x, int y, const char *str, const uint8_t rgb[3])
{
    for (; *str; str++, x += CHAR_W) {
        const char *at = strchr(font_chars, *str);
        if (!at || !*str)
            continue;
        const uint8_t *g = font_rows[at - font_chars];
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (g[r] >> (4 - c) & 1)
                    for (int dy = 0; dy < FONT_SCALE; dy++)
                        for (int dx = 0; dx < FONT_SCALE; dx++)
                            put(s, x + c * FONT_SCALE + dx, y + r * FONT_SCALE + dy, rgb);
    }
}

/* ---- options ------------------------------------------------------------ */

typedef struct montage_opts {
    const char *model, *out;
    cli_image_opts img;
    long long most, least, thumb;
} montage_opts;

static void montage_help(void)
{
    printf("Usage: convvae montage --model PATH (--images-dir DIR | --images-list FILE)\n"
           "                       --out FILE.png [OPTIONS]\n"
           "\n"
           "Draw a contact sheet of the clusters a model finds in image files: one row per\n"
           "non-empty cluster, labelled with its number and size, showing its most\n"
           "confident members (highest q(y|x) first), then, after a gap, its least\n"
           "confident ones (the least confident last). Thumbnails are square, decoded\n"
           "from the files at the thumbnail size.\n"
           "\n"
           "  --model PATH          checkpoint written by 'convvae train'\n"
           "  --out FILE            PNG to write (replaced atomically)\n"
           "  --most N              most confident images per row, 1..100 (default 10)\n"
           "  --least N             least confident images per row, 0..100 (default 3)\n"
           "  --thumb-size PX       thumbnail side in pixels, 8..512 (default 64)\n"
           "  -h, --help            this text\n"
           "\n");
    cli_images_help(stdout, CLI_IMAGES_THREADS);
}

static int parse_montage(int argc, char **argv, montage_opts *o)
{
    cli_args a;
    cli_args_init(&a, "montage", argc, argv);
    memset(o, 0, sizeof *o);
    cli_images_init(&o->img);
    o->most = 10;
    o->least = 3;
    o->thumb = 64;
    int r;
    while ((r = cli_next(&a)) != 0) {
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (cli_is(&a, "help")) {
            montage_help();
            return -1;
        }
        int d = cli_images_flag(&a, &o->img, CLI_IMAGES_THREADS);
        if (d < 0)
            return CLI_EXIT_USAGE;
        if (d > 0)
            continue;
        if (cli_is(&a, "model")) {
            if (cli_value(&a, &o->model))
                return CLI_EXIT_USAGE;
        } else if (cli_is(&a, "out")) {
            if (cli_value(&a, &o->out))
                return CLI_EXIT_USAGE;
        } else if (cli_is(&a, "most")) {
            if (cli_int(&a, 1, 100, &o->most))
                return CLI_EXIT_USAGE;
        } else if (cli_is(&a, "least")) {
            if (cli_int(&a, 0, 100, &o->least))
                return CLI_EXIT_USAGE;
        } else if (cli_is(&a, "thumb-size")) {
            if (cli_int(&a, 8, 512, &o->thumb))
                return CLI_EXIT_USAGE;
        } else {
            return cli_unknown(&a);
        }
    }
    if (!o->model)
        return cli_usage_error(a.cmd, "--model PATH is required");
    if (!o->out)
        return cli_usage_error(a.cmd, "--out FILE.png is required");
    if (!cli_images_given(&o->img))
        return cli_usage_error(a.cmd, "give the images: --images-dir DIR or --images-list FILE");
    cli_data_opts none;
    cli_data_init(&none);
    return cli_images_check(&o->img, &none, a.cmd);
}

/* ---- layout ------------------------------------------------------------- */

typedef struct member {
    int64_t index;
    float p;
} member;

static int by_confidence(const void *a, const void *b)
{
    const member *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

typedef struct row {
    int cluster;
    int64_t size;
    int nmost, nleast;
    int64_t first;  /* into the selection arrays */
} row;

/* Paste thumbnail t (RGB planes of side x side floats in [0,1]) at x, y
 * with a light frame around it, so white images keep their edges. */
static void paste(sheet *s, const float *t, int side, int x, int y)
{
    static const uint8_t frame[3] = {200, 200, 200};
    for (int i = -1; i <= side; i++) {
        put(s, x + i, y - 1, frame);
        put(s, x + i, y + side, frame);
        put(s, x - 1, y + i, frame);
        put(s, x + side, y + i, frame);
    }
    const size_t plane = (size_t)side * (size_t)side;
    for (int yy = 0; yy < side; yy++)
        for (int xx = 0; xx < side; xx++) {
            uint8_t rgb[3];
            for (int c = 0; c < 3; c++) {
                float v = t[(size_t)c * plane + (size_t)yy * (size_t)side + (size_t)xx];
                rgb[c] = (uint8_t)(v * 255.0f + 0.5f);
            }
            put(s, x + xx, y + yy, rgb);
        }
}

int cli_montage(int argc, char **argv)
{
    montage_opts o;
    int rc = parse_montage(argc, argv, &o);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    /* The sheet's path before minutes of decoding. */
    if ((rc = cli_check_output(o.out)))
        return rc;

    cvae_model *model = NULL;
    cvae_dataset *data = NULL, *thumbs = NULL;
    cvae_config *cfg = NULL;
    cvae_image_reader *reader = NULL;
    int32_t *clusters = NULL;
    float *proba = NULL, *tpx = NULL;
    member *members = NULL;
    row *rows = NULL;
    int64_t *sel = NULL;
    sheet s = {NULL, 0, 0};
    cvae_status st = CVAE_OK;
    int64_t n = 0;
    int k = 0;

    if ((rc = cli_load_model(o.model, &model)) ||
        (rc = cli_images_load_for_model(&o.img, model, &data)))
        goto done;
    if ((st = cvae_dataset_shape(data, &n, NULL, NULL, NULL)) ||
        (st = cvae_model_get_config(model, &cfg)) || (st = cvae_config_get_clusters(cfg, &k)))
        goto done;
    clusters = malloc((size_t)n * sizeof *clusters);
    proba = malloc((size_t)n * (size_t)k * sizeof *proba);
    members = malloc((size_t)n * sizeof *members);
    rows = calloc((size_t)k, sizeof *rows);
    sel = malloc((size_t)k * (size_t)(o.most + o.least) * sizeof *sel);
    if (!clusters || !proba || !members || !rows || !sel) {
        rc = cli_error(CVAE_E_NOMEM, "cannot allocate predictions for %lld images", (long long)n);
        goto done;
    }
    if ((st = cvae_model_predict_dataset(model, data, clusters, proba)))
        goto done;

    /* Members of each cluster by confidence; pick the rows' images. */
    int nrows = 0;
    int64_t nsel = 0;
    for (int c = 0; c < k; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (clusters[i] == c)
                members[m++] = (member){i, proba[(size_t)i * (size_t)k + (size_t)c]};
        if (m == 0)
            continue;
        qsort(members, (size_t)m, sizeof *members, by_confidence);
        row *r = &rows[nrows++];
        r->cluster = c;
        r->size = m;
        r->nmost = (int)(m < o.most ? m : o.most);
        r->nleast = (int)(m - r->nmost < o.least ? m - r->nmost : o.least);
        r->first = nsel;
        for (int j = 0; j < r->nmost; j++)
            sel[nsel++] = members[j].index;
        for (int j = 0; j < r->nleast; j++)
            sel[nsel++] = members[m - r->nleast + j].index;
    }

    /* The chosen files again, at the thumbnail size, in colour. */
    const int side = (int)o.thumb;
    if ((st = cvae_image_reader_create(3, side, side, &reader)) ||
        (st = cvae_image_reader_set_threads(reader, o.img.threads ? o.img.threads : cli_cores())))
        goto done;
    for (int64_t i = 0; i < nsel; i++) {
        const char *path = NULL;
        if ((st = cvae_dataset_path(data, sel[i], &path)) ||
            (st = cvae_image_reader_add_file(reader, path)))
            goto done;
    }
    if ((st = cvae_image_reader_load(reader, &thumbs)))
        goto done;
    const size_t tsize = 3 * (size_t)side * (size_t)side;
    if (!(tpx = malloc((size_t)nsel * tsize * sizeof *tpx))) {
        rc = cli_error(CVAE_E_NOMEM, "cannot allocate %lld thumbnails", (long long)nsel);
        goto done;
    }
    if ((st = cvae_dataset_images_f32(thumbs, 0, nsel, tpx)))
        goto done;

    /* Layout: labels, the most confident, a gap, the least confident. */
    char label[64];
    snprintf(label, sizeof label, "%lld images", (long long)n);
    int label_chars = (int)strlen(label);
    snprintf(label, sizeof label, "cluster %d", k - 1);
    if ((int)strlen(label) > label_chars)
        label_chars = (int)strlen(label);
    const int label_w = MARGIN + label_chars * CHAR_W + MARGIN;
    const int cell = side + GAP;
    const int least_x = label_w + (int)o.most * cell + SEP;
    s.w = label_w + (int)o.most * cell + (o.least ? SEP + (int)o.least * cell : 0) + MARGIN;
    s.h = HEADER + nrows * (side + ROW_GAP) + MARGIN;
    if (!(s.px = malloc((size_t)s.w * (size_t)s.h * 3))) {
        rc = cli_error(CVAE_E_NOMEM, "cannot allocate a %dx%d sheet", s.w, s.h);
        goto done;
    }
    memset(s.px, 255, (size_t)s.w * (size_t)s.h * 3);
    static const uint8_t ink[3] = {0, 0, 0}, grey[3] = {110, 110, 110};
    text(&s, label_w, MARGIN, "most confident ->", grey);
    if (o.least)
        text(&s, least_x, MARGIN, "least", grey);
    for (int r = 0; r < nrows; r++) {
        const row *rw = &rows[r];
        int y = HEADER + r * (side + ROW_GAP);
        snprintf(label, sizeof label, "cluster %d", rw->cluster);
        text(&s, MARGIN, y + side / 2 - CHAR_H - 2, label, ink);
        snprintf(label, sizeof label, "%lld images", (long long)rw->size);
        text(&s, MARGIN, y + side / 2 + 2, label, grey);
        for (int j = 0; j < rw->nmost; j++)
            paste(&s, tpx + (size_t)(rw->first + j) * tsize, side, label_w + j * cell, y);
        for (int j = 0; j < rw->nleast; j++)
            paste(&s, tpx + (size_t)(rw->first + rw->nmost + j) * tsize, side,
                  least_x + j * cell, y);
    }
    if ((rc = cli_write_png(o.out, s.px, (uint32_t)s.w, (uint32_t)s.h, 3)))
        goto done;
    printf("wrote %s: %dx%d pixels, %d row%s (clusters with members) of %d, %lld images\n",
           o.out, s.w, s.h, nrows, nrows == 1 ? "" : "s", k, (long long)n);

done:
    if (st && !rc)
        rc = cli_lib_error(st);
    free(s.px);
    free(tpx);
    free(sel);
    free(rows);
    free(members);
    free(proba);
    free(clusters);
    cvae_image_reader_destroy(reader);
    cvae_dataset_destroy(thumbs);
    cvae_dataset_destroy(data);
    cvae_config_destroy(cfg);
    cvae_model_destroy(model);
    return rc;
}
