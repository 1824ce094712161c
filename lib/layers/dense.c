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

/* db[j] = sum over the n rows of dy[i][j], each column summed in double
 * in row order. A block of columns at a time, walked row by row: the loads
 * are contiguous and vectorise, where a column-by-column walk strides a
 * whole row per element (a wide layer's rows are kilobytes apart). Each
 * column's additions happen in the same order either way. */
#define COLSUM_BLOCK 256

static void column_sums(int n, int out, const float *dy, float *db)
{
    for (int j0 = 0; j0 < out; j0 += COLSUM_BLOCK) {
        const int nb = out - j0 < COLSUM_BLOCK ? out - j0 : COLSUM_BLOCK;
        double acc[COLSUM_BLOCK];
        for (int j = 0; j < nb; j++)
            acc[j] = 0.0;
        for (int i = 0; i < n; i++) {
            const float *row = dy + (size_t)i * (size_t)out + (size_t)j0;
            for (int j = 0; j < nb; j++)
                acc[j] += (double)row[j];
        }
        for (int j = 0; j < nb; j++)
            db[j0 + j] = (float)acc[j];
    }
}

typedef struct dense_bwd {
    int n, in, out;
    const float *x, *w, *dy;
    float *dx, *dw, *db;
} dense_bwd;

/* Part 0: dx; part 1: dw and db. They read the same dy and write separate
 * outputs. */
static void backward_part(void *ctx, int part, int parts)
{
    (void)parts;
    const dense_bwd *j = ctx;
    if (part == 0) {
        if (j->dx)
            cvae__sgemm(0, 0, j->n, j->in, j->out, 1.0f, j->dy, j->out, j->w, j->in, 0.0f, j->dx,
                        j->in);
        return;
    }
    if (j->dw) {
        if (j->n > 0)
            cvae__sgemm(1, 0, j->out, j->in, j->n, 1.0f, j->dy, j->out, j->x, j->in, 0.0f, j->dw,
                        j->in);
        else if (j->out > 0 && j->in > 0)
            memset(j->dw, 0, (size_t)j->out * (size_t)j->in * sizeof *j->dw);
    }
    if (j->db)
        column_sums(j->n, j->out, j->dy, j->db);
}

/* When both products are too small to be split themselves (the heads'
 * layers: 0.5-2.6M multiply-adds at batch 100), dx and dw are the two parts
 * of one job, so a second thread computes one of them; larger layers run
 * each product split across the threads. Each output is computed by the
 * same code either way. */
void cvae__dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db)
{
    dense_bwd j = {n, in, out, x, w, dy, dx, dw, db};
    if (dx && (dw || db)) {
        cvae__gemm_pair((double)n * in * out, backward_part, &j);
        return;
    }
    backward_part(&j, 0, 2);
    backward_part(&j, 1, 2);
}

void cvae__dense_blocks_forward(int n, int out, int nblk, const float *const *blk,
                                const int *size, const int *off, const float *w, int ldw,
                                const float *b, float *y)
{
    for (int i = 0; i < nblk; i++)
        cvae__sgemm(0, 1, n, out, size[i], 1.0f, blk[i], size[i], w + off[i], ldw,
                    i ? 1.0f : 0.0f, y, out);
    if (!b)
        return;
    for (int r = 0; r < n; r++)
        for (int j = 0; j < out; j++)
            y[(size_t)r * (size_t)out + (size_t)j] += b[j];
}

void cvae__dense_blocks_backward(int n, int out, int nblk, const float *const *blk,
                                 const int *size, const int *off, const float *dy, float *dw,
                                 int ldw, float *db)
{
    for (int i = 0; i < nblk; i++)
        cvae__sgemm(1, 0, out, size[i], n, 1.0f, dy, out, blk[i], size[i], 0.0f, dw + off[i],
                    ldw);
    if (!db)
        return;
    memset(db, 0, (size_t)out * sizeof *db);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < out; j++)
            db[j] += dy[(size_t)r * (size_t)out + (size_t)j];
}
