/* Test image writers (see image_files.h). */
#define _POSIX_C_SOURCE 200809L

#include "image_files.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

int ti_write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void png_err(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Row buffers are built before setjmp, so nothing local changes after it. */
static int write_png_rows(FILE *f, int w, int h, int type, int depth, int interlace,
                          png_colorp palette, int npal, png_bytep *rows)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (type == TI_PALETTE)
        png_set_PLTE(png, info, palette, npal);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int ti_write_png(const char *path, int w, int h, int type, int depth, int interlace,
                 const uint16_t *s)
{
    int n = type == TI_GREY ? 1 : type == TI_GREY_ALPHA ? 2 : type == TI_RGBA ? 4 : 3;
    png_color palette[16];
    int npal = 0;
    size_t rowbytes = type == TI_PALETTE ? (size_t)(w + 1) / 2
                                          : (size_t)w * (size_t)n * (size_t)(depth / 8);
    png_bytep data = calloc((size_t)h, rowbytes);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    if (!data || !rows) {
        free(data);
        free(rows);
        return -1;
    }
    int rc = 0;
    for (int y = 0; y < h && !rc; y++) {
        rows[y] = data + (size_t)y * rowbytes;
        for (int x = 0; x < w && !rc; x++) {
            const uint16_t *p = s + ((size_t)y * (size_t)w + (size_t)x) * (size_t)n;
            if (type == TI_PALETTE) { /* 4 bits per index */
                int k = 0;
                while (k < npal && !(palette[k].red == p[0] && palette[k].green == p[1] &&
                                     palette[k].blue == p[2]))
                    k++;
                if (k == npal) {
                    if (npal == 16) {
                        rc = -1;
                        break;
                    }
                    palette[npal++] = (png_color){(png_byte)p[0], (png_byte)p[1], (png_byte)p[2]};
                }
                rows[y][x / 2] |= (png_byte)(x % 2 ? k : k << 4);
                continue;
            }
            for (int c = 0; c < n; c++) {
                if (depth == 16) {
                    rows[y][(size_t)(x * n + c) * 2] = (png_byte)(p[c] >> 8);
                    rows[y][(size_t)(x * n + c) * 2 + 1] = (png_byte)(p[c] & 255);
                } else {
                    rows[y][x * n + c] = (png_byte)p[c];
                }
            }
        }
    }
    FILE *f = rc ? NULL : fopen(path, "wb");
    if (f) {
        rc = write_png_rows(f, w, h, type, type == TI_PALETTE ? 4 : depth, interlace, palette,
                            npal, rows);
        if (fclose(f) != 0)
            rc = -1;
    } else {
        rc = -1;
    }
    free(data);
    free(rows);
    return rc;
}

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} jerr;

static void jpeg_err(j_common_ptr ci) { longjmp(((jerr *)ci->err)->jb, 1); }

int ti_write_jpeg(const char *path, int w, int h, int n, int q, const uint8_t *s)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    struct jpeg_compress_struct ci;
    jerr e;
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jpeg_err;
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&ci);
        fclose(f);
        return -1;
    }
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = n;
    ci.in_color_space = n == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(uintptr_t)(s + (size_t)ci.next_scanline * (size_t)w * (size_t)n);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* The tree                                                                 */
/* ------------------------------------------------------------------------ */

const char *const ti_tree_files[TI_TREE_GOOD + TI_TREE_BAD] = {
    "a_grey.png",    "b_rgb.png",   "bad/corrupt.png", "bad/empty.jpg",
    "bad/text.png",  "c_palette.png", "d_16bit.png",   "e_alpha.png",
    "f_photo.jpg",   "g_grey.jpeg", "nested/deeper/h.PNG", "nested/i.jpg"};

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* A smooth pattern: channel c of pixel (x, y) scaled to max. */
static unsigned pattern(int x, int y, int w, int h, int c, unsigned max)
{
    double v = (c == 0 ? (double)x / w : c == 1 ? (double)y / h : 0.5 + 0.5 * ((x + y) % 2));
    if (c > 2)
        v = x < w / 2 ? 0.0 : 1.0; /* alpha: left half transparent */
    return (unsigned)(v * max + 0.5) > max ? max : (unsigned)(v * max + 0.5);
}

static int png_file(const char *dir, const char *name, int w, int h, int type, int depth)
{
    int n = type == TI_GREY ? 1 : type == TI_GREY_ALPHA ? 2 : type == TI_RGBA ? 4 : 3;
    uint16_t *s = malloc((size_t)w * (size_t)h * (size_t)n * sizeof *s);
    char *p = path_in(dir, name);
    int rc = -1;
    if (s && p) {
        unsigned max = depth == 16 ? 65535u : 255u;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < n; c++) {
                    int cc = type == TI_RGBA && c == 3 ? 3 : c;
                    unsigned v = pattern(x, y, w, h, cc, max);
                    if (type == TI_PALETTE) /* four colours */
                        v = ((x / 5 + y / 5) % 4) * 80u * (unsigned)(c + 1) % 256u;
                    s[((size_t)y * (size_t)w + (size_t)x) * (size_t)n + (size_t)c] = (uint16_t)v;
                }
        rc = ti_write_png(p, w, h, type, depth, 0, s);
    }
    free(s);
    free(p);
    return rc;
}

static int jpeg_file(const char *dir, const char *name, int w, int h, int n)
{
    uint8_t *s = malloc((size_t)w * (size_t)h * (size_t)n);
    char *p = path_in(dir, name);
    int rc = -1;
    if (s && p) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < n; c++)
                    s[((size_t)y * (size_t)w + (size_t)x) * (size_t)n + (size_t)c] =
                        (uint8_t)pattern(x, y, w, h, c, 255);
        rc = ti_write_jpeg(p, w, h, n, 90, s);
    }
    free(s);
    free(p);
    return rc;
}

static int bytes_file(const char *dir, const char *name, const char *data, size_t len)
{
    char *p = path_in(dir, name);
    int rc = p ? ti_write_bytes(p, data, len) : -1;
    free(p);
    return rc;
}

static int sub_dir(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    int rc = p && (mkdir(p, 0755) == 0 || errno == EEXIST) ? 0 : -1;
    free(p);
    return rc;
}

int ti_make_tree(const char *dir)
{
    static const char corrupt[] = "\x89PNG\r\n\x1a\n this is not a PNG stream at all";
    static const char text[] = "just some text, not an image\n";
    int rc = 0;
    rc |= sub_dir(dir, "bad");
    rc |= sub_dir(dir, "nested");
    rc |= sub_dir(dir, "nested/deeper");
    rc |= png_file(dir, "a_grey.png", 40, 30, TI_GREY, 8);
    rc |= png_file(dir, "b_rgb.png", 64, 48, TI_RGB, 8);
    rc |= bytes_file(dir, "bad/corrupt.png", corrupt, sizeof corrupt - 1);
    rc |= bytes_file(dir, "bad/empty.jpg", "", 0);
    rc |= bytes_file(dir, "bad/text.png", text, sizeof text - 1);
    rc |= png_file(dir, "c_palette.png", 20, 20, TI_PALETTE, 8);
    rc |= png_file(dir, "d_16bit.png", 33, 17, TI_RGB, 16);
    rc |= png_file(dir, "e_alpha.png", 24, 24, TI_RGBA, 8);
    rc |= jpeg_file(dir, "f_photo.jpg", 100, 80, 3);
    rc |= jpeg_file(dir, "g_grey.jpeg", 50, 50, 1);
    rc |= png_file(dir, "nested/deeper/h.PNG", 10, 60, TI_GREY, 8);
    rc |= jpeg_file(dir, "nested/i.jpg", 7, 9, 3);
    rc |= bytes_file(dir, "notes.txt", text, sizeof text - 1);
    rc |= png_file(dir, ".hidden.png", 8, 8, TI_GREY, 8);
    char *loop = path_in(dir, "loop");
    if (!loop || (symlink(".", loop) != 0 && errno != EEXIST))
        rc = -1;
    free(loop);
    return rc ? -1 : 0;
}

int ti_make_two_classes(const char *dir, int n_per_class, unsigned seed)
{
    srand(seed);
    for (int cls = 0; cls < 2; cls++)
        for (int i = 0; i < n_per_class; i++) {
            int w = 20 + rand() % 41, h = 20 + rand() % 41;
            uint16_t *s = malloc((size_t)w * (size_t)h * 3 * sizeof *s);
            if (!s)
                return -1;
            double cx = w * (0.3 + 0.4 * rand() / RAND_MAX), cy = h * (0.3 + 0.4 * rand() / RAND_MAX);
            double rad = (w < h ? w : h) * 0.25;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    uint16_t *p = s + ((size_t)y * (size_t)w + (size_t)x) * 3;
                    int noise = rand() % 30;
                    if (cls == 0) {
                        int in = (x - cx) * (x - cx) + (y - cy) * (y - cy) < rad * rad;
                        p[0] = (uint16_t)(in ? 250 - noise : 160 + noise);
                        p[1] = (uint16_t)(in ? 220 - noise : 40 + noise);
                        p[2] = (uint16_t)(30 + noise);
                    } else {
                        int stripe = (x / 4) % 2;
                        p[0] = (uint16_t)(20 + noise);
                        p[1] = (uint16_t)(stripe ? 200 - noise : 60 + noise);
                        p[2] = (uint16_t)(stripe ? 250 - noise : 150 + noise);
                    }
                }
            char name[64];
            snprintf(name, sizeof name, "class%d_%03d.png", cls, i);
            char *p = path_in(dir, name);
            int rc = p ? ti_write_png(p, w, h, TI_RGB, 8, 0, s) : -1;
            free(p);
            free(s);
            if (rc)
                return -1;
        }
    return 0;
}
