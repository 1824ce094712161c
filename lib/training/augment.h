/* Random affine augmentation of images (rotation, scale, shift; bilinear
 * sampling), C x H x W per image, uint8 or float input, float output.
 *
 * The transform of an image is a pure function of (seed, epoch, global
 * image index) through a counter-based hash, not of a sequential random
 * stream: the same image gets the same transform in a given epoch whatever
 * the batch order, the batch size, the thread count, or how many processes
 * share the data set. The seed is drawn once from the caller's RNG (e.g.
 * the model's), so runs stay reproducible from the model's seed.
 *
 * Geometry, in (x, y) = (column, row) pixel-centre coordinates with the
 * centre c = ((W - 1) / 2, (H - 1) / 2): the forward map is
 *     p_out = c + s R(angle) (p_in - c) + (tx, ty),
 * R(a) = [cos a, -sin a; sin a, cos a] (with rows growing downwards a
 * positive angle turns the picture clockwise on screen). Each output pixel
 * reads the input at the inverse image of its centre by bilinear
 * interpolation. Fill rule: a tap outside the image reads 0 (FILL_ZERO, the
 * background of dark-background images such as MNIST and the choice of
 * DEC-DA and torchvision's RandomAffine) or the nearest edge pixel
 * (FILL_EDGE, for images whose border is not black). Identity, integer
 * shifts and quarter turns of a square image reproduce pixels exactly.
 *
 * After the geometry, an intensity gain g uniform in [1 - max_gain,
 * 1 + max_gain] multiplies every value of the image (drawn from the same
 * key); a value the gain lifts above 1 stops at 1, the top of the [0, 1]
 * range images come in (a value already above it keeps its own). A garment
 * or a stroke drawn lighter or darker is the same object, so the codes
 * should not follow the overall brightness. */
#ifndef CVAE_AUGMENT_H
#define CVAE_AUGMENT_H

#include <stdint.h>

#include "convvae.h"

typedef enum cvae__fill {
    CVAE__FILL_ZERO = 0, /* outside the image is 0 */
    CVAE__FILL_EDGE = 1  /* outside the image is the nearest edge pixel */
} cvae__fill;

typedef struct cvae__augment_params {
    float max_rotation; /* degrees: angle uniform in [-max, max]; 10 */
    float max_shift;    /* fraction of W (tx) and H (ty): uniform in [-max, max]; 0.1 */
    float max_scale;    /* s uniform in [1 - max, 1 + max]; 0.1; < 1 */
    float max_gain;     /* intensity gain uniform in [1 - max, 1 + max]; 0 (off); < 1 */
    cvae__fill fill;    /* CVAE__FILL_ZERO */
} cvae__augment_params;

/* The inverse map p_in = m p_out + o, in double. */
typedef struct cvae__affine {
    double m[4]; /* row-major 2 x 2 */
    double o[2];
} cvae__affine;

/* 10 degrees, 10 % shift, 10 % scale, zero fill (DEC-DA's ranges); no
 * gain. */
void cvae__augment_defaults(cvae__augment_params *p);

/* The affine map with the given angle (radians), scale (> 0) and shift
 * (pixels) for an h x w image. */
void cvae__affine_make(double angle, double scale, double tx, double ty, int h, int w,
                       cvae__affine *t);

/* The random transform of image `index` in `epoch` under `seed`. */
void cvae__augment_draw(const cvae__augment_params *p, uint64_t seed, uint64_t epoch,
                        uint64_t index, int h, int w, cvae__affine *t);

/* The intensity gain of image `index` in `epoch` under `seed` (1 when
 * max_gain is 0). */
float cvae__augment_gain(const cvae__augment_params *p, uint64_t seed, uint64_t epoch,
                         uint64_t index);

/* Multiplies the n values of v by gain; a value lifted above 1 stops at
 * 1 (one already above 1 keeps its own). */
void cvae__gain_apply(float gain, int64_t n, float *v);

/* Applies t to one c x h x w image (every channel alike); out must not
 * overlap in. uint8 input is read as v / 255 (as data sets convert it). */
void cvae__affine_apply_f32(const cvae__affine *t, cvae__fill fill, int c, int h, int w,
                            const float *in, float *out);
void cvae__affine_apply_u8(const cvae__affine *t, cvae__fill fill, int c, int h, int w,
                           const uint8_t *in, float *out);

/* Augments n images (in: n x c x h x w, contiguous) into out, image i with
 * the transform and gain of global index index[i]; images run in parallel on the
 * library's threads. No allocation. CVAE_E_INVALID_ARG (NULL pointers,
 * sizes < 1, parameters negative, non-finite, or max_scale or max_gain >= 1,
 * an unknown fill). */
cvae_status cvae__augment_f32(const cvae__augment_params *p, uint64_t seed, uint64_t epoch,
                              const int64_t *index, int64_t n, int c, int h, int w,
                              const float *in, float *out);
cvae_status cvae__augment_u8(const cvae__augment_params *p, uint64_t seed, uint64_t epoch,
                             const int64_t *index, int64_t n, int c, int h, int w,
                             const uint8_t *in, float *out);

#endif
