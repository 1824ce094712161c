/* Decoding one image file held in memory (PNG through libpng, JPEG through
 * libjpeg-turbo) straight into a data set slot: channels x height x width
 * uint8, planar (CHW), resized with lib/resample.c.
 *
 * Pixel conventions: samples are scaled to [0, 1] by their format's maximum
 * (255, or 65535 for 16-bit PNG); palettes and low bit depths are expanded;
 * transparency (alpha channel or tRNS) is composited onto white; colour
 * becomes grey with the Rec. 601 luma weights 0.299 R + 0.587 G + 0.114 B
 * on the stored (gamma-encoded) values, as most image tools do; grey
 * becomes RGB by repeating it. Results are rounded to the nearest of the
 * 256 levels. EXIF orientation is not applied. */
#ifndef CVAE_IMAGES_H
#define CVAE_IMAGES_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

/* Formats told apart by their first bytes. */
typedef enum cvae__image_format {
    CVAE__IMAGE_UNKNOWN = 0,
    CVAE__IMAGE_PNG,
    CVAE__IMAGE_JPEG,
    CVAE__IMAGE_WEBP, /* recognised to name them in messages; not decoded */
    CVAE__IMAGE_TIFF,
    CVAE__IMAGE_GIF,
    CVAE__IMAGE_BMP
} cvae__image_format;

/* Largest width or height a source image may have, and largest pixel count
 * (a 16384 x 16384 image); larger ones are refused before their pixels are
 * read, so a small file cannot claim gigabytes. */
#define CVAE__IMAGE_MAX_SIDE 65535
#define CVAE__IMAGE_MAX_PIXELS (INT64_C(1) << 28)

cvae__image_format cvae__image_sniff(const uint8_t *data, size_t len);
/* "PNG", "JPEG", "WebP", ... or "unknown". */
const char *cvae__image_format_name(cvae__image_format f);

/* Decode data[0..len) and write channels (1 or 3) x height x width uint8
 * into out. name (the file's path) starts every error message.
 * CVAE_E_FORMAT for an empty, foreign, unsupported, corrupt or truncated
 * image, CVAE_E_UNSUPPORTED for a too large one, CVAE_E_NOMEM. Safe on any
 * input and callable from several threads at once. Without image support
 * compiled in, CVAE_E_UNSUPPORTED. */
cvae_status cvae__image_decode(const uint8_t *data, size_t len, const char *name, int channels,
                               int height, int width, uint8_t *out);

#endif
