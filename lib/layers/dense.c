/* A NULL bias means "no bias"; NULL dx/dw/db skip that gradient. */
#include "layers/dense.h"

#include <stddef.h>
#include <string.h>

#include "core/gemm.h"

/* The bias is added by each part of the product to the block of y it
 * wrote (cvae__sgemm_then), while that block is in its thread's cache:
 * after a split product a pass of its own would run on one thread. */
typedef struct bias_add {
    const float *b;
    float *y;
    int out;
} bias_add;

static void add_bias(void *ctx, int r0, int r1, int c0, int c1)
{
    const bias_add *e = ctx;
    for (int i = r0; i < r1; i++) {
        float *yi = e->y + (size_t)i * (size_t)e->out;
        for (int j = c0; j < c1; j++)
            yi[j] += e->b[j];
    }
}

void cvae__dense_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                         float *y)
{
    /* y (n x out) = x (n x in) * W^T, W stored out x in: the transpose is a
     * stride flag, never a copy. */
    bias_add e = {b, y, out};
    cvae__sgemm_then(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out, b ? add_bias : NULL, &e);
}

/* db[j] = sum over the n rows of dy[i][j] for the columns j in [lo, hi),
 * each summed in double in row order. A block of columns at a time, walked
 * row by row: the loads are contiguous and vectorise, where a
 * column-by-column walk strides a whole row per element (a wide layer's
 * rows are kilobytes apart). Each column's additions happen in the same
 * order either way, so the sums do not depend on the range's bounds. */
#define COLSUM_BLOCK 256

static void column_sums(int n, int out, const float *dy, float *db, int lo, int hi)
{
    for (int j0 = lo; j0 < hi; j0 += COLSUM_BLOCK) {
        const int nb = hi - j0 < COLSUM_BLOCK ? hi - j0 : COLSUM_BLOCK;
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

/* Row r of dW belongs to output r, whose bias gradient is column r's sum
 * of dy: each part of the weight gradient's product sums the columns of
 * its rows. The block that starts at dW's first column does it, so a
 * product split by columns sums them once. */
static void bias_grad_rows(void *ctx, int r0, int r1, int c0, int c1)
{
    (void)c1;
    const dense_bwd *j = ctx;
    if (c0 == 0)
        column_sums(j->n, j->out, j->dy, j->db, r0, r1);
}

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
    if (j->dw && j->n > 0 && j->in > 0) {
        cvae__sgemm_then(1, 0, j->out, j->in, j->n, 1.0f, j->dy, j->out, j->x, j->in, 0.0f, j->dw,
                         j->in, j->db ? bias_grad_rows : NULL, (void *)j);
        return;
    }
    if (j->dw && j->out > 0 && j->in > 0)
        memset(j->dw, 0, (size_t)j->out * (size_t)j->in * sizeof *j->dw);
    if (j->db)
        column_sums(j->n, j->out, j->dy, j->db, 0, j->out);
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
    /* The bias goes on with the last block's product, after every block's
     * share is in y. */
    bias_add e = {b, y, out};
    for (int i = 0; i < nblk; i++)
        cvae__sgemm_then(0, 1, n, out, size[i], 1.0f, blk[i], size[i], w + off[i], ldw,
                         i ? 1.0f : 0.0f, y, out, b && i == nblk - 1 ? add_bias : NULL, &e);
}

/* db[j] = the float sum of dy's column j in row order, for j in [r0, r1):
 * the rows of the first block's weight gradient, as bias_grad_rows. */
typedef struct blocks_bwd {
    int n, out;
    const float *dy;
    float *db;
} blocks_bwd;

static void float_column_sums(void *ctx, int r0, int r1, int c0, int c1)
{
    (void)c1;
    const blocks_bwd *j = ctx;
    if (c0 != 0)
        return;
    for (int c = r0; c < r1; c++)
        j->db[c] = 0.0f;
    for (int r = 0; r < j->n; r++) {
        const float *row = j->dy + (size_t)r * (size_t)j->out;
        for (int c = r0; c < r1; c++)
            j->db[c] += row[c];
    }
}

void cvae__dense_blocks_backward(int n, int out, int nblk, const float *const *blk,
                                 const int *size, const int *off, const float *dy, float *dw,
                                 int ldw, float *db)
{
    blocks_bwd e = {n, out, dy, db};
    const int sums = db && n > 0 && nblk > 0 && size[0] > 0;
    for (int i = 0; i < nblk; i++)
        cvae__sgemm_then(1, 0, out, size[i], n, 1.0f, dy, out, blk[i], size[i], 0.0f, dw + off[i],
                         ldw, sums && i == 0 ? float_column_sums : NULL, &e);
    if (db && !sums)
        float_column_sums(&e, 0, out, 0, out);
}
