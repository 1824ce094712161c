/* A NULL bias means "no bias"; NULL dx/dw/db skip that gradient. */
#include "layers/dense.h"

#include <stddef.h>
#include <string.h>

#include "core/gemm.h"

void cvae__dense_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                         float *y)
{
    /* y (n x out) = x (n x in) * W^T, W stored out x in: the transpose is a
     * stride flag, never a copy. */
    cvae__sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    if (!b)
        return;
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * (size_t)out;
        for (int j = 0; j < out; j++)
            yi[j] += b[j];
    }
}

void cvae__dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db)
{
    if (dx)
        cvae__sgemm(0, 0, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
    if (dw) {
        if (n > 0)
            cvae__sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 0.0f, dw, in);
        else if (out > 0 && in > 0)
            memset(dw, 0, (size_t)out * (size_t)in * sizeof *dw);
    }
    if (db) {
        /* Summed in double per column: batches are small (n ~ 100) so the
         * strided walk costs little next to the two GEMMs above. */
        for (int j = 0; j < out; j++) {
            double acc = 0.0;
            for (int i = 0; i < n; i++)
                acc += dy[(size_t)i * (size_t)out + (size_t)j];
            db[j] = (float)acc;
        }
    }
}
