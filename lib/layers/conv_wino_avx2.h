/* The Winograd convolution's inner kernels for CPUs with AVX2 and FMA but
 * no AVX-512 (conv_wino.c drives them; its own AVX-512 kernels do the same
 * work 16 lanes at a time). Layouts are conv_wino.c's: blocks of 16
 * channels side by side, which these kernels handle as two vectors of 8.
 * Every function needs cvae__wino_avx2_ok(). */
#ifndef CVAE_CONV_WINO_AVX2_H
#define CVAE_CONV_WINO_AVX2_H

#include <stddef.h>

/* Whether this build has the kernels and the CPU runs them. */
int cvae__wino_avx2_ok(void);

/* Rows y0 to y1 of dst [..][pw][cp] = src [c][h][w] placed at (pad, pad),
 * zero elsewhere (the border and the channels from c to cp; cp a multiple
 * of 16). */
void cvae__wino_avx2_channels_last(const float *src, int c, int h, int w, int pad, int y0,
                                   int y1, int pw, size_t cp, float *dst);

/* Rows i0 to i1 of y [k][h][w] from ycl [..][ow][kp], whose first row is
 * y's row i0; k < c_out. */
void cvae__wino_avx2_channels_first(const float *ycl, size_t ow, size_t kp, int k, int h, int w,
                                    int i0, int i1, float *y);

/* The tile transforms for n = 8 (F(4x4, 5x5)) or n = 6 (F(4x4, 3x3)) points
 * a side, on 16 channels side by side:
 *   input: V = B^T d B, d[i][j] (16 floats) at src + i*rs + j*cs, V's
 *     point f written at dst + f*fs;
 *   output: Y = A^T M A, M's point f at src + f*fs, Y[i][j] written at
 *     dst + i*rs + j*cs;
 *   gradient: Z = A dY A^T for a 4x4 tile dY[i][j] at src + i*rs + j*cs,
 *     Z's point f written at dst + f*fs. */
void cvae__wino_avx2_input_tile(int n, const float *src, size_t rs, size_t cs, float *dst,
                                size_t fs);
void cvae__wino_avx2_output_tile(int n, const float *src, size_t fs, float *dst, size_t rs,
                                 size_t cs);
void cvae__wino_avx2_gradient_tile(int n, const float *src, size_t rs, size_t cs, float *dst,
                                   size_t fs);

/* c (m x 16, m <= 16 tiles, rows 16 floats apart) = sum over the nc input
 * channels (a multiple of 16) of V(t, c) times the 16 floats of U's row c;
 * V(t, c) at v + (c / 16) * vblk + t * 16 + c % 16, U's rows us floats
 * apart. */
void cvae__wino_avx2_product(int m, int nc, const float *v, size_t vblk, const float *u,
                             size_t us, float *c);

/* c (16 x 16, row stride 16) = beta * c + sum over p < k of the outer
 * product of v[p*16 .. p*16+15] (rows) and z[p*16 .. p*16+15] (columns);
 * beta 0 or 1. */
void cvae__wino_avx2_outer(int k, const float *v, const float *z, float beta, float *c);

#endif
