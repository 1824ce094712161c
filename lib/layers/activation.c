#include "layers/activation.h"

#include <math.h>
#include <stddef.h>

void cvae__relu_forward(int64_t n, const float *x, float *y)
{
    /* `x < 0 ? 0 : x` rather than `x > 0 ? x : 0` so a NaN input stays NaN
     * and the non-finite check downstream sees it. */
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void cvae__relu_backward(int64_t n, const float *y, const float *dy, float *dx)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void cvae__sigmoid_forward(int64_t n, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        /* exp of a non-positive argument only: 1/(1+e^-v) overflows e^-v for
         * v << 0, so the negative side uses the equivalent e^v/(1+e^v). */
        if (v >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            const float e = expf(v);
            y[i] = e / (1.0f + e);
        }
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
