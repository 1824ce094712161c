#include "layers/activation.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/threads.h"

/* The ReLU passes run in blocks through a local array. The output may be
 * the input, so a plain loop is not vectorised: the compiler falls back to
 * a scalar loop whose branch on the sign mispredicts about half the time on
 * a hidden layer (5 ns an element, a quarter of a millisecond for the
 * default model's 100 x 512 layers). Reading a block into locals before
 * writing it makes its loads and stores independent, and each element is
 * the same select as before, so the values do not change. */
#define RELU_BLOCK 16

void cvae__relu_forward(int64_t n, const float *x, float *y)
{
    /* `x < 0 ? 0 : x` rather than `x > 0 ? x : 0` so a NaN input stays NaN
     * and the non-finite check downstream sees it. */
    int64_t i = 0;
    for (; i + RELU_BLOCK <= n; i += RELU_BLOCK) {
        float t[RELU_BLOCK];
        for (int q = 0; q < RELU_BLOCK; q++) {
            const float v = x[i + q];
            t[q] = v < 0.0f ? 0.0f : v;
        }
        for (int q = 0; q < RELU_BLOCK; q++)
            y[i + q] = t[q];
    }
    for (; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void cvae__relu_backward(int64_t n, const float *y, const float *dy, float *dx)
{
    int64_t i = 0;
    for (; i + RELU_BLOCK <= n; i += RELU_BLOCK) {
        float t[RELU_BLOCK];
        for (int q = 0; q < RELU_BLOCK; q++) {
            const float d = dy[i + q]; /* read unconditionally: a select, not a branch */
            t[q] = y[i + q] > 0.0f ? d : 0.0f;
        }
        for (int q = 0; q < RELU_BLOCK; q++)
            dx[i + q] = t[q];
    }
    for (; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void cvae__relu_backward_sum(int64_t n, const float *y, const float *dy, const float *dy2,
                             float *dx)
{
    int64_t i = 0;
    for (; i + RELU_BLOCK <= n; i += RELU_BLOCK) {
        /* The select as a mask on the sum's bits (+0 where y is not
         * positive, as the select gives): written as a select, the
         * compiler kept a branch around the addition and the loop scalar
         * (45-80 us on the default model's 100 x 512 hidden layer). */
        float t[RELU_BLOCK];
        for (int q = 0; q < RELU_BLOCK; q++) {
            const float d = dy[i + q] + dy2[i + q];
            uint32_t bits;
            memcpy(&bits, &d, sizeof bits);
            bits &= 0u - (uint32_t)(y[i + q] > 0.0f);
            memcpy(&t[q], &bits, sizeof bits);
        }
        for (int q = 0; q < RELU_BLOCK; q++)
            dx[i + q] = t[q];
    }
    for (; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] + dy2[i] : 0.0f;
}

static void sigmoid_run(int64_t n, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        /* exp of a non-positive argument only: 1/(1+e^-v) overflows e^-v for
         * v << 0, so the negative side uses the equivalent e^v/(1+e^v).
         * Written without a branch (the image's sign pattern defeats the
         * predictor); the same two expressions, so the same floats. */
        const float e = expf(-fabsf(v));
        y[i] = (v >= 0.0f ? 1.0f : e) / (1.0f + e);
    }
}

/* One exp per element is a few nanoseconds: the image layer's 78,400
 * values of a default batch take a fifth of a millisecond, so large calls
 * are split across the library's threads, in ranges that start on 16-float
 * boundaries (no two threads write one cache line). Element-wise, so the
 * split does not change the result. */
#define SIGMOID_SPLIT_MIN ((int64_t)1 << 14)

typedef struct sigmoid_job {
    int64_t n;
    const float *x;
    float *y;
    double share; /* two parts: part 0's share (cvae__parallel_share) */
} sigmoid_job;

static void sigmoid_part(void *ctx, int part, int parts)
{
    const sigmoid_job *j = ctx;
    const size_t n = (size_t)j->n;
    const int64_t lo = (int64_t)cvae__parallel_part_start_on(n, part, parts, j->share, 16),
                  hi = (int64_t)cvae__parallel_part_start_on(n, part + 1, parts, j->share, 16);
    sigmoid_run(hi - lo, j->x + lo, j->y + lo);
}

void cvae__sigmoid_forward(int64_t n, const float *x, float *y)
{
    int parts = cvae__parallel_threads();
    if (parts > 1 && n >= SIGMOID_SPLIT_MIN * parts) {
        sigmoid_job j = {n, x, y, cvae__parallel_share(CVAE__SHARE_SIGMOID)};
        cvae__parallel_cut(CVAE__SHARE_SIGMOID, parts, j.share, sigmoid_part, &j);
    } else {
        sigmoid_run(n, x, y);
    }
}

void cvae__sigmoid_backward(int64_t n, const float *y, const float *dy, float *dx)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

void cvae__softmax_forward(int rows, int cols, const float *x, float *y)
{
    if (cols < 1)
        return;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * (size_t)cols;
        float *yr = y + (size_t)r * (size_t)cols;
        float mx = xr[0];
        for (int j = 1; j < cols; j++)
            if (xr[j] > mx)
                mx = xr[j];
        double sum = 0.0;
        for (int j = 0; j < cols; j++) {
            yr[j] = expf(xr[j] - mx);
            sum += yr[j];
        }
        /* sum >= 1 (the max term is exp(0)), so the division is safe. */
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < cols; j++)
            yr[j] *= inv;
    }
}

void cvae__softmax_backward(int rows, int cols, const float *y, const float *dy, float *dx)
{
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * (size_t)cols;
        const float *dr = dy + (size_t)r * (size_t)cols;
        float *xr = dx + (size_t)r * (size_t)cols;
        double dot = 0.0;
        for (int j = 0; j < cols; j++)
            dot += (double)yr[j] * dr[j];
        const float d = (float)dot;
        for (int j = 0; j < cols; j++)
            xr[j] = yr[j] * (dr[j] - d);
    }
}
