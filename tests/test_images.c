/* Decoding single images: PNG of every colour type and depth, JPEG, the
 * pixel conventions (luma, alpha on white, 16-bit scaling, palettes),
 * resizing, and broken input. Files are written with libpng / libjpeg by
 * tests/image_files.c and read back through cvae__read_file. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convvae.h"
#include "io/image_reader.h"
#include "io/images.h"

#if defined(CVAE_WITH_IMAGES) && CVAE_WITH_IMAGES
#include "image_files.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/cvae_test_images_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char path[256];
static const char *tmp(const char *name)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* Read a file and decode it; returns the status, out filled on success. */
static cvae_status decode_file(const char *p, int c, int h, int w, uint8_t *out)
{
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    cvae_status st = cvae__read_file(p, &buf, &cap, &len);
    if (!st)
        st = cvae__image_decode(buf, len, p, c, h, w, out);
    free(buf);
    return st;
}

static uint8_t u8(double v) { return (uint8_t)lrint(v < 0 ? 0 : v > 1 ? 255 : v * 255.0); }

static void test_sniff(void **state)
{
    (void)state;
    assert_int_equal(cvae__image_sniff((const uint8_t *)"\x89PNG\r\n\x1a\n", 8), CVAE__IMAGE_PNG);
    assert_int_equal(cvae__image_sniff((const uint8_t *)"\xff\xd8\xff\xe0", 4), CVAE__IMAGE_JPEG);
    assert_int_equal(cvae__image_sniff((const uint8_t *)"RIFF\0\0\0\0WEBPVP8 ", 16),
                     CVAE__IMAGE_WEBP);
    assert_int_equal(cvae__image_sniff((const uint8_t *)"II*\0", 4), CVAE__IMAGE_TIFF);
    assert_int_equal(cvae__image_sniff((const uint8_t *)"MM\0*", 4), CVAE__IMAGE_TIFF);
    assert_int_equal(cvae__image_sniff((const uint8_t *)"GIF89a", 6), CVAE__IMAGE_GIF);
    assert_int_equal(cvae__image_sniff((const uint8_t *)"\x89PN", 3), CVAE__IMAGE_UNKNOWN);
    assert_int_equal(cvae__image_sniff((const uint8_t *)"hello", 5), CVAE__IMAGE_UNKNOWN);
}

/* 8-bit grey at its own size: the bytes come back unchanged, row-major. */
static void test_png_grey_exact(void **state)
{
    (void)state;
    uint16_t s[6 * 4];
    for (int i = 0; i < 24; i++)
        s[i] = (uint16_t)(i * 11);
    assert_int_equal(ti_write_png(tmp("g.png"), 6, 4, TI_GREY, 8, 0, s), 0);
    uint8_t out[24];
    assert_int_equal(decode_file(path, 1, 4, 6, out), CVAE_OK);
    for (int i = 0; i < 24; i++)
        assert_int_equal(out[i], i * 11);
    /* As RGB, each plane is the grey image. */
    uint8_t rgb[72];
    assert_int_equal(decode_file(path, 3, 4, 6, rgb), CVAE_OK);
    for (int c = 0; c < 3; c++)
        assert_memory_equal(rgb + 24 * c, out, 24);
}

/* RGB comes back planar; to grey with the luma weights. */
static void test_png_rgb_and_luma(void **state)
{
    (void)state;
    const uint16_t s[4 * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 90};
    assert_int_equal(ti_write_png(tmp("rgb.png"), 4, 1, TI_RGB, 8, 0, s), 0);
    uint8_t out[12];
    assert_int_equal(decode_file(path, 3, 1, 4, out), CVAE_OK);
    for (int x = 0; x < 4; x++)
        for (int c = 0; c < 3; c++)
            assert_int_equal(out[c * 4 + x], s[x * 3 + c]);
    uint8_t grey[4];
    assert_int_equal(decode_file(path, 1, 1, 4, grey), CVAE_OK);
    for (int x = 0; x < 4; x++) {
        double y = (0.299 * s[x * 3] + 0.587 * s[x * 3 + 1] + 0.114 * s[x * 3 + 2]) / 255.0;
        assert_true(abs(grey[x] - u8(y)) <= 1);
    }
}

/* A palette image decodes to the same pixels as its RGB twin; interlaced
 * to the same as non-interlaced. */
static void test_png_palette_and_interlace(void **state)
{
    (void)state;
    enum { W = 13, H = 11 };
    uint16_t s[W * H * 3];
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++)
            s[i * 3 + c] = (uint16_t)(((i / 3) % 5) * 50 + c * 3);
    uint8_t a[3 * W * H], b[3 * W * H], d[3 * W * H];
    assert_int_equal(ti_write_png(tmp("pal.png"), W, H, TI_PALETTE, 8, 0, s), 0);
    assert_int_equal(decode_file(path, 3, H, W, a), CVAE_OK);
    assert_int_equal(ti_write_png(tmp("rgbtwin.png"), W, H, TI_RGB, 8, 0, s), 0);
    assert_int_equal(decode_file(path, 3, H, W, b), CVAE_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(ti_write_png(tmp("inter.png"), W, H, TI_RGB, 8, 1, s), 0);
    assert_int_equal(decode_file(path, 3, H, W, d), CVAE_OK);
    assert_memory_equal(b, d, sizeof b);
    /* And resized, too (the interlaced path feeds the same resampler). */
    uint8_t e[3 * 4 * 4], f[3 * 4 * 4];
    assert_int_equal(decode_file(path, 3, 4, 4, e), CVAE_OK);
    assert_int_equal(decode_file(tmp("rgbtwin.png"), 3, 4, 4, f), CVAE_OK);
    assert_memory_equal(e, f, sizeof e);
}

/* 16-bit samples scale by 1/65535. */
static void test_png_16bit(void **state)
{
    (void)state;
    const uint16_t s[3] = {0, 65535, 20000};
    assert_int_equal(ti_write_png(tmp("16.png"), 3, 1, TI_GREY, 16, 0, s), 0);
    uint8_t out[3];
    assert_int_equal(decode_file(path, 1, 1, 3, out), CVAE_OK);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 255);
    assert_int_equal(out[2], u8(20000.0 / 65535.0)); /* 77.8 -> 78 */
}

/* Alpha composites onto white: transparent is white, half transparent
 * black is mid grey, opaque is itself. */
static void test_png_alpha_on_white(void **state)
{
    (void)state;
    const uint16_t s[3 * 4] = {0, 0, 0, 0, 0, 0, 0, 100, 30, 60, 90, 255};
    assert_int_equal(ti_write_png(tmp("rgba.png"), 3, 1, TI_RGBA, 8, 0, s), 0);
    uint8_t out[9];
    assert_int_equal(decode_file(path, 3, 1, 3, out), CVAE_OK);
    for (int c = 0; c < 3; c++) {
        assert_int_equal(out[c * 3 + 0], 255);
        assert_int_equal(out[c * 3 + 1], u8(1.0 - 100.0 / 255.0));
        assert_int_equal(out[c * 3 + 2], s[8 + c]);
    }
    const uint16_t ga[2 * 2] = {200, 0, 200, 255};
    assert_int_equal(ti_write_png(tmp("ga.png"), 2, 1, TI_GREY_ALPHA, 8, 0, ga), 0);
    uint8_t g[2];
    assert_int_equal(decode_file(path, 1, 1, 2, g), CVAE_OK);
    assert_int_equal(g[0], 255);
    assert_int_equal(g[1], 200);
}

/* Shrinking by two averages 2x2 blocks (of the decoded values). */
static void test_png_resize(void **state)
{
    (void)state;
    uint16_t s[4 * 4];
    for (int i = 0; i < 16; i++)
        s[i] = (uint16_t)(i * 16);
    assert_int_equal(ti_write_png(tmp("r.png"), 4, 4, TI_GREY, 8, 0, s), 0);
    uint8_t out[4];
    assert_int_equal(decode_file(path, 1, 2, 2, out), CVAE_OK);
    assert_int_equal(out[0], (0 + 16 + 64 + 80) / 4);
    assert_int_equal(out[1], (32 + 48 + 96 + 112) / 4);
    assert_int_equal(out[2], (128 + 144 + 192 + 208) / 4);
    assert_int_equal(out[3], (160 + 176 + 224 + 240) / 4);
}

/* JPEG is lossy: a smooth image comes back within a few levels, grey and
 * colour, at full size and scaled down (which uses libjpeg's DCT scaling). */
static void test_jpeg(void **state)
{
    (void)state;
    enum { W = 64, H = 48 };
    uint8_t s[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            s[(y * W + x) * 3 + 0] = (uint8_t)(x * 4);
            s[(y * W + x) * 3 + 1] = (uint8_t)(y * 5);
            s[(y * W + x) * 3 + 2] = 128;
        }
    assert_int_equal(ti_write_jpeg(tmp("c.jpg"), W, H, 3, 95, s), 0);
    uint8_t out[3 * W * H];
    assert_int_equal(decode_file(path, 3, H, W, out), CVAE_OK);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++)
            assert_true(abs(out[c * W * H + i] - s[i * 3 + c]) <= 6);
    uint8_t small[3 * 6 * 8];
    assert_int_equal(decode_file(path, 3, 6, 8, small), CVAE_OK);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++) { /* the mean of an 8x8 block of the ramp */
            assert_true(abs(small[y * 8 + x] - (x * 32 + 14)) <= 4);
            assert_true(abs(small[48 + y * 8 + x] - (y * 40 + 17)) <= 4);
            assert_true(abs(small[96 + y * 8 + x] - 128) <= 4);
        }
    uint8_t g[W * H];
    assert_int_equal(ti_write_jpeg(tmp("g.jpg"), W, H, 1, 95, s), 0); /* first third as grey */
    assert_int_equal(decode_file(path, 1, H / 3, W, g), CVAE_OK);
}

static void expect_failure(const char *name, const void *bytes, size_t len, cvae_status want,
                           const char *words)
{
    assert_int_equal(ti_write_bytes(tmp(name), bytes, len), 0);
    uint8_t out[3 * 8 * 8];
    cvae_status st = decode_file(path, 3, 8, 8, out);
    assert_int_equal(st, want);
    assert_non_null(strstr(cvae_last_error(), path));
    if (!strstr(cvae_last_error(), words))
        fail_msg("message '%s' lacks '%s'", cvae_last_error(), words);
}

static void test_broken_files(void **state)
{
    (void)state;
    expect_failure("empty.png", "", 0, CVAE_E_FORMAT, "is empty");
    expect_failure("text.png", "hello world", 11, CVAE_E_FORMAT, "starts with 68 65 6c 6c 6f 20 77 6f");
    expect_failure("junk.png", "\x89PNG\r\n\x1a\nxxxxxxxxxxxxxxxxxxxx", 28, CVAE_E_FORMAT,
                   "not a valid PNG");
    expect_failure("x.webp", "RIFF\x10\0\0\0WEBPVP8 \0\0\0\0", 20, CVAE_E_FORMAT, "WebP");
    expect_failure("x.tif", "II*\0\x08\0\0\0", 8, CVAE_E_FORMAT, "TIFF");
    expect_failure("trunc.jpg", "\xff\xd8\xff\xe0\0\x10JFIF", 10, CVAE_E_FORMAT, "JPEG");

    /* Real files cut short. */
    uint16_t s[32 * 32 * 3];
    uint8_t s8[32 * 32 * 3];
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        s8[i] = (uint8_t)(s[i] = (uint16_t)((i * 37) % 251));
    assert_int_equal(ti_write_png(tmp("full.png"), 32, 32, TI_RGB, 8, 0, s), 0);
    assert_int_equal(ti_write_jpeg(tmp("full.jpg"), 32, 32, 3, 90, s8), 0);
    const char *names[2] = {"full.png", "full.jpg"};
    for (int k = 0; k < 2; k++) {
        uint8_t *buf = NULL;
        size_t cap = 0, len = 0;
        assert_int_equal(cvae__read_file(tmp(names[k]), &buf, &cap, &len), CVAE_OK);
        uint8_t out[3 * 8 * 8];
        /* Every cut into the image data fails. (A file that loses only
         * its end marker, PNG's 12-byte IEND chunk or JPEG's 2-byte EOI,
         * still holds every pixel and is accepted.) */
        for (size_t cut = 1; cut < len - 12; cut += 1 + len / 40) {
            cvae_status st = cvae__image_decode(buf, cut, "cut", 3, 8, 8, out);
            if (st != CVAE_E_FORMAT)
                fail_msg("%s cut to %zu of %zu bytes: status %d", names[k], cut, len, st);
        }
        free(buf);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint8_t out[16];
    assert_int_equal(cvae__image_decode((const uint8_t *)"x", 1, "n", 2, 2, 2, out),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__image_decode((const uint8_t *)"x", 1, "n", 1, 0, 2, out),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__image_decode(NULL, 1, "n", 1, 2, 2, out), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__read_file(tmp("does-not-exist.png"), &(uint8_t *){NULL},
                                     &(size_t){0}, &(size_t){0}),
                     CVAE_E_IO);
    assert_non_null(strstr(cvae_last_error(), "does-not-exist.png"));
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(cvae__read_file(dir, &buf, &cap, &len), CVAE_E_IO); /* a directory */
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_png_grey_exact),
        cmocka_unit_test(test_png_rgb_and_luma),
        cmocka_unit_test(test_png_palette_and_interlace),
        cmocka_unit_test(test_png_16bit),
        cmocka_unit_test(test_png_alpha_on_white),
        cmocka_unit_test(test_png_resize),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_broken_files),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else /* built without image files */

static void test_unsupported(void **state)
{
    (void)state;
    uint8_t out[4];
    assert_int_equal(cvae__image_decode((const uint8_t *)"\x89PNG\r\n\x1a\n", 8, "x.png", 1, 2,
                                        2, out),
                     CVAE_E_UNSUPPORTED);
    assert_int_equal(cvae_images_supported(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unsupported)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
