/* Fuzz harness for image decoding (cvae__image_decode: format sniffing,
 * libpng and libjpeg-turbo driven row by row, pixel conversion and the
 * resampler).
 *
 * Input: byte 0 = flags (bit 0: RGB target, else grey), byte 1 = target
 * height - 1 (mod 64), byte 2 = target width - 1 (mod 64), then the file's
 * bytes. Inputs shorter than the prefix are decoded as files for a 8x8 grey
 * target.
 *
 * Beyond "no crash, no leak, no UB", the harness checks the decoder's
 * promises: a failure has an image status and a message naming the file;
 * a success is repeatable (the same bytes decode to the same pixels) and
 * its grey and RGB decodings agree in success. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convvae.h"
#include "fuzz.h"
#include "io/images.h"

#define NAME "fuzz-input.img"

static void check_failure(cvae_status st)
{
    FUZZ_CHECK(st == CVAE_E_FORMAT || st == CVAE_E_UNSUPPORTED || st == CVAE_E_NOMEM);
    FUZZ_CHECK(strstr(cvae_last_error(), NAME) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int channels = 1, height = 8, width = 8;
    if (size >= 3) {
        channels = data[0] & 1 ? 3 : 1;
        height = 1 + data[1] % 64;
        width = 1 + data[2] % 64;
        data += 3;
        size -= 3;
    }
    const size_t n = (size_t)channels * (size_t)height * (size_t)width;
    uint8_t *a = malloc(n), *b = malloc(n), *other = malloc(3 * n);
    FUZZ_CHECK(a && b && other);
    cvae_status st = cvae__image_decode(data, size, NAME, channels, height, width, a);
    if (st) {
        check_failure(st);
    } else {
        FUZZ_CHECK(cvae__image_decode(data, size, NAME, channels, height, width, b) == CVAE_OK);
        FUZZ_CHECK(memcmp(a, b, n) == 0);
    }
    /* The other channel count decodes the same file: same verdict (a grey
     * JPEG target is decoded through libjpeg's own grey output, so its
     * path differs; both must still agree on whether the file is good). */
    cvae_status st2 = cvae__image_decode(data, size, NAME, 4 - channels, height, width, other);
    if (st2)
        check_failure(st2);
    FUZZ_CHECK((st == CVAE_OK) == (st2 == CVAE_OK) || st == CVAE_E_NOMEM || st2 == CVAE_E_NOMEM);
    free(a);
    free(b);
    free(other);
    return 0;
}
