/* Helper of the image cases of tests/cli/cli_test.sh:
 *   image_test_helper tree DIR             the test image tree (tests/image_files.h)
 *   image_test_helper two-classes DIR N    N reddish-disc and N bluish-stripe PNGs
 *   image_test_helper bands FILE.png       "W H", then one line "y0 y1 x0 x1" per
 *                                          band of rows holding a non-white pixel
 *                                          (x0, x1: its leftmost and rightmost one)
 * Exit 0 on success, 1 on failure. */
#define _POSIX_C_SOURCE 200809L

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../image_files.h"

static int bands(const char *path)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) {
        fprintf(stderr, "cannot read %s: %s\n", path, img.message);
        return 1;
    }
    img.format = PNG_FORMAT_RGB;
    png_bytep px = malloc(PNG_IMAGE_SIZE(img));
    if (!px || !png_image_finish_read(&img, NULL, px, 0, NULL)) {
        fprintf(stderr, "cannot decode %s\n", path);
        free(px);
        return 1;
    }
    printf("%u %u\n", img.width, img.height);
    long y0 = -1, x0 = 0, x1 = 0;
    for (long y = 0; y <= (long)img.height; y++) {
        long lo = -1, hi = -1;
        for (long x = 0; y < (long)img.height && x < (long)img.width; x++) {
            const png_byte *p = px + ((size_t)y * img.width + (size_t)x) * 3;
            if (p[0] != 255 || p[1] != 255 || p[2] != 255) {
                if (lo < 0)
                    lo = x;
                hi = x;
            }
        }
        if (lo >= 0) {
            if (y0 < 0) {
                y0 = y;
                x0 = lo;
                x1 = hi;
            }
            x0 = lo < x0 ? lo : x0;
            x1 = hi > x1 ? hi : x1;
        } else if (y0 >= 0) {
            printf("%ld %ld %ld %ld\n", y0, y - 1, x0, x1);
            y0 = -1;
        }
    }
    free(px);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "tree") == 0) {
        mkdir(argv[2], 0755);
        return ti_make_tree(argv[2]) ? 1 : 0;
    }
    if (argc == 4 && strcmp(argv[1], "two-classes") == 0) {
        mkdir(argv[2], 0755);
        return ti_make_two_classes(argv[2], atoi(argv[3]), 7) ? 1 : 0;
    }
    if (argc == 3 && strcmp(argv[1], "bands") == 0)
        return bands(argv[2]);
    fprintf(stderr, "usage: image_test_helper tree DIR | two-classes DIR N | bands FILE\n");
    return 2;
}
