/* Image resampling to a fixed size, one axis at a time: area averaging (a
 * box filter: every output pixel is the mean of the source area it covers)
 * along an axis that shrinks, bilinear interpolation (pixel centres at
 * half-integers, edges clamped) along one that grows, a copy along one that
 * keeps its size.
 *
 * Source rows are fed one at a time and accumulate straight into the
 * output, so memory is the output plus one row: a large photo need never
 * be held whole. Pixels are float, channels interleaved (row-major HWC). */
#ifndef CVAE_RESAMPLE_H
#define CVAE_RESAMPLE_H

#include "convvae.h"

/* The source pixels (start, start+1, ...) that one output pixel of an axis
 * reads and with what weights (they sum to 1). */
typedef struct cvae__resample_axis {
    int src, dst;   /* sizes */
    int taps;       /* weights per output pixel (the widest footprint) */
    int *start;     /* dst of them */
    int *count;     /* dst of them, each in [1, taps] */
    float *weights; /* dst * taps, row j = output pixel j */
} cvae__resample_axis;

typedef struct cvae__resampler {
    int channels;
    cvae__resample_axis x, y;
    float *row;   /* one horizontally resampled row: dst_w * channels */
    float *out;   /* the caller's output, dst_h * dst_w * channels */
    int next_y;   /* the source row expected next */
    int first_j;  /* first output row the next source row can reach */
} cvae__resampler;

/* Weights of one axis from src to dst pixels (both >= 1). */
cvae_status cvae__resample_axis_init(cvae__resample_axis *a, int src, int dst);
void cvae__resample_axis_free(cvae__resample_axis *a);

/* Prepare to resample a src_h x src_w image of `channels` into out
 * (dst_h * dst_w * channels floats, zeroed here). Sizes >= 1. */
cvae_status cvae__resample_init(cvae__resampler *r, int channels, int src_h, int src_w,
                                int dst_h, int dst_w, float *out);
/* Feed the next source row (src_w * channels floats), in order from row 0.
 * After the last row, out holds the result. */
void cvae__resample_row(cvae__resampler *r, const float *row);
void cvae__resample_free(cvae__resampler *r);

#endif
