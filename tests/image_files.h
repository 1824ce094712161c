/* Writing small PNG and JPEG files for the image tests (libpng and
 * libjpeg-turbo directly, never the code under test), and the test image
 * tree: every kind of file the image reader has to cope with. */
#ifndef CVAE_TEST_IMAGE_FILES_H
#define CVAE_TEST_IMAGE_FILES_H

#include <stddef.h>
#include <stdint.h>

/* PNG colour types as libpng numbers them. */
enum { TI_GREY = 0, TI_RGB = 2, TI_PALETTE = 3, TI_GREY_ALPHA = 4, TI_RGBA = 6 };

/* Write a PNG of w x h pixels. samples holds w*h*n values (n = 1 grey, 2 grey
 * + alpha, 3 RGB, 4 RGBA; for TI_PALETTE n = 3, the colours, of which there
 * must be at most 16) in [0, 65535] for depth 16 or [0, 255] for depth 8.
 * interlace: Adam7. Returns 0 or -1. */
int ti_write_png(const char *path, int w, int h, int type, int depth, int interlace,
                 const uint16_t *samples);
/* Write a JPEG (n = 1 grey or 3 RGB samples per pixel, 8-bit) at quality q. */
int ti_write_jpeg(const char *path, int w, int h, int n, int q, const uint8_t *samples);
/* Write bytes to a file. */
int ti_write_bytes(const char *path, const void *data, size_t len);

/* The test tree under dir (which must exist), relative paths in load order:
 *   a_grey.png           8-bit grey 40x30
 *   b_rgb.png            RGB 64x48
 *   bad/corrupt.png      PNG signature, then garbage
 *   bad/empty.jpg        0 bytes
 *   bad/text.png         a text file named .png
 *   c_palette.png        4-colour palette 20x20
 *   d_16bit.png          16-bit RGB 33x17
 *   e_alpha.png          RGBA 24x24, alpha 0 on its left half
 *   f_photo.jpg          JPEG RGB 100x80
 *   g_grey.jpeg          JPEG grey 50x50
 *   loop -> .            symbolic link to the tree's root (walked once)
 *   nested/deeper/h.PNG  upper-case extension, 10x60
 *   nested/i.jpg         JPEG RGB 7x9
 * plus files that are not collected: notes.txt, .hidden.png. Returns 0 or
 * -1. TI_TREE_GOOD / TI_TREE_BAD count the files that decode / do not. */
int ti_make_tree(const char *dir);
#define TI_TREE_GOOD 9
#define TI_TREE_BAD 3
extern const char *const ti_tree_files[TI_TREE_GOOD + TI_TREE_BAD];

/* Two-class RGB images for training end to end: n files class0_XXX.png
 * (reddish, a bright disc) and class1_XXX.png (bluish, stripes) of random
 * sizes between 20 and 60 pixels, under dir. Returns 0 or -1. */
int ti_make_two_classes(const char *dir, int n_per_class, unsigned seed);

#endif
