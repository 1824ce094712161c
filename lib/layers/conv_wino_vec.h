/* The Winograd convolution's kernels that are the same at any vector
 * width, written once: the copies between the planar and the channels-last
 * layouts, and the tile transforms of F(4x4, 5x5) (8 points a side) and
 * F(4x4, 3x3) (6 points). conv_wino.c includes this with AVX-512's 16-lane
 * vectors and conv_wino_avx2.c with AVX2's 8-lane ones. The transforms are
 * elementwise across channels, so both run the very same operations in the
 * same order on each lane, and a channel's floats do not depend on which
 * set the CPU runs (test_conv_wino, run under both).
 *
 * The includer defines, before including it:
 *   WT_V             the vector type, WT_W lanes
 *   WT_TARGET        the function attribute that enables its instructions
 *   WT_SET1(x), WT_ZERO  a vector of x, of zeros
 *   WT_ADD, WT_SUB, WT_MUL (a, b)
 *   WT_FMA(a, b, c)  a * b + c, fused
 *   WT_FNMA(a, b, c) -(a * b) + c, fused
 *   WT_LOAD(p), WT_STORE(p, v)  unaligned
 *   WT_MASK          the type first_lanes(n) returns: the first n lanes
 *   WT_MASKLOAD(p, m)     the lanes in m, zero elsewhere
 *   WT_MASKSTORE(p, m, v) the lanes in m only
 *   WT_TRANSPOSE(a)  a[WT_W] of WT_W lanes transposed in place
 * and gets these static functions:
 *   channels_last:  rows y0 to y1 of dst [..][pw][cp] = src [c][h][w]
 *                   placed at (pad, pad), zero elsewhere (the border and
 *                   the channels from c to cp; cp a multiple of WT_W);
 *   channels_first: rows i0 to i1 of y [k][h][w] from the first w
 *                   positions of the rows of ycl [..][ow][kp], whose
 *                   first row is y's row i0;
 * and, on one vector of channels:
 *   input_tile8/6:    V = B^T d B, d[i][j] at src + i*rs + j*cs, V's point
 *                     f written at dst + f*fs;
 *   output_tile8/6:   Y = A^T M A, M's point f at src + f*fs, Y[i][j]
 *                     written at dst + i*rs + j*cs;
 *   gradient_tile8/6: Z = A dY A^T for a 4x4 tile, dY[i][j] at
 *                     src + i*rs + j*cs, Z's point f written at dst + f*fs.
 * It is a template, not a module: no include guard, and it undefines its
 * own helpers at the end. */
#if !defined(WT_V) || !defined(WT_TARGET)
#error "define WT_V, WT_TARGET and the WT_ operations before including conv_wino_vec.h"
#endif

#define WT_INLINE static inline __attribute__((always_inline)) WT_TARGET
#define WT_OUT 4 /* outputs per tile side */
/* Both layout copies walk a row of WT_W channel planes at a time: WT_W
 * streams a plane apart, each moving on by one short row (28 or 14 floats
 * in the models) per step. The CPU's own prefetching does not keep up with
 * that many, so the copies were waiting on memory (the planes come from
 * the layer before, long out of cache); asking for the row WT_AHEAD rows
 * ahead made a step of the 5-convolution model about 7% faster with
 * AVX-512 and 2% with AVX2, and 1 or 2 rows did better than 4 or 8. */
#define WT_AHEAD 2

/* The cache lines of the w floats at p (one past the last, at most). */
#define WT_PREFETCH_ROW(p, w, write)                                                              \
    for (size_t wt_o = 0; wt_o < (size_t)(w) * sizeof(float) + 63; wt_o += 64)                   \
    __builtin_prefetch((const char *)(p) + wt_o, write)

/* Blocks of WT_W channels by WT_W positions of a row, transposed in
 * registers, the planes' row WT_AHEAD rows on asked for first. A block
 * shorter than WT_W reads on into the plane's next row where there is one
 * (those lanes are never stored): a masked load costs several plain ones,
 * more so across two cache lines, which rows of 28 or 14 floats put most
 * blocks across. */
static WT_TARGET void channels_last(const float *src, int c, int h, int w, int pad, int y0,
                                    int y1, int pw, size_t cp, float *dst)
{
    const size_t row = (size_t)pw * cp, plane = (size_t)h * (size_t)w;
    for (int y = y0; y < y1; y++) {
        float *d = dst + (size_t)y * row;
        const int sy = y - pad;
        if (sy < 0 || sy >= h) {
            memset(d, 0, row * sizeof *d);
            continue;
        }
        memset(d, 0, (size_t)pad * cp * sizeof *d);
        memset(d + (size_t)(pad + w) * cp, 0, (size_t)(pw - pad - w) * cp * sizeof *d);
        for (size_t c0 = 0; c0 < cp; c0 += WT_W) {
            if (sy + WT_AHEAD < h)
                for (int r = 0; r < WT_W && c0 + (size_t)r < (size_t)c; r++)
                    WT_PREFETCH_ROW(src + (c0 + (size_t)r) * plane +
                                        (size_t)(sy + WT_AHEAD) * (size_t)w,
                                    w, 0);
            for (int x0 = 0; x0 < w; x0 += WT_W) {
                const int nx = w - x0 < WT_W ? w - x0 : WT_W;
                const size_t at = (size_t)sy * (size_t)w + (size_t)x0;
                const int whole = at + WT_W <= plane;
                const WT_MASK mask = first_lanes(nx);
                const float *s = src + at;
                WT_V a[WT_W];
                for (int r = 0; r < WT_W; r++) {
                    const float *p = s + (c0 + (size_t)r) * plane;
                    a[r] = c0 + (size_t)r >= (size_t)c ? WT_ZERO
                           : whole                     ? WT_LOAD(p)
                                                       : WT_MASKLOAD(p, mask);
                }
                WT_TRANSPOSE(a);
                float *o = d + (size_t)(pad + x0) * cp + c0;
                for (int q = 0; q < nx; q++)
                    WT_STORE(o + (size_t)q * cp, a[q]);
            }
        }
    }
}

/* Rows in order, the row WT_AHEAD on asked for (to be written) first. A
 * block shorter than WT_W may write on into later rows of its plane
 * (rewritten after it); masked only where it would pass the plane's end,
 * since masked stores cost more than masked loads. */
static WT_TARGET void channels_first(const float *ycl, size_t ow, size_t kp, int k, int h, int w,
                                     int i0, int i1, float *y)
{
    const size_t plane = (size_t)h * (size_t)w;
    for (int i = i0; i < i1; i++)
        for (size_t k0 = 0; k0 < (size_t)k; k0 += WT_W) {
            if (i + WT_AHEAD < h)
                for (int r = 0; r < WT_W && k0 + (size_t)r < (size_t)k; r++)
                    WT_PREFETCH_ROW(y + (k0 + (size_t)r) * plane +
                                        (size_t)(i + WT_AHEAD) * (size_t)w,
                                    w, 1);
            for (int x0 = 0; x0 < w; x0 += WT_W) {
                const int nx = w - x0 < WT_W ? w - x0 : WT_W;
                const size_t at = (size_t)i * (size_t)w + (size_t)x0;
                const int whole = at + WT_W <= plane;
                const WT_MASK mask = first_lanes(nx);
                const float *s = ycl + ((size_t)(i - i0) * ow + (size_t)x0) * kp + k0;
                WT_V a[WT_W];
                for (int q = 0; q < WT_W; q++)
                    a[q] = q < nx ? WT_LOAD(s + (size_t)q * kp) : WT_ZERO;
                WT_TRANSPOSE(a);
                const int nr = (size_t)k - k0 < WT_W ? (int)((size_t)k - k0) : WT_W;
                float *o = y + k0 * plane + at;
                for (int r = 0; r < nr; r++)
                    if (whole)
                        WT_STORE(o + (size_t)r * plane, a[r]);
                    else
                        WT_MASKSTORE(o + (size_t)r * plane, mask, a[r]);
            }
        }
}

/* The 8-point input transform v = B^T d (the rows of B^T written out, with
 * their shared partial sums). */
WT_INLINE void bt8(const WT_V *d, WT_V *v)
{
    const WT_V s1 = WT_FMA(WT_SET1(-4.25f), d[3], WT_ADD(d[1], d[5]));
    const WT_V s2 = WT_FMA(WT_SET1(-4.25f), d[4], WT_ADD(d[2], d[6]));
    const WT_V p1 =
        WT_FMA(WT_SET1(-2.5f), d[3], WT_FMA(WT_SET1(0.5f), d[1], WT_MUL(WT_SET1(2.0f), d[5])));
    const WT_V p2 = WT_FMA(WT_SET1(-1.25f), d[4], WT_FMA(WT_SET1(0.25f), d[2], d[6]));
    const WT_V q1 =
        WT_FMA(WT_SET1(-2.5f), d[3], WT_FMA(WT_SET1(2.0f), d[1], WT_MUL(WT_SET1(0.5f), d[5])));
    const WT_V q2 = WT_FMA(WT_SET1(-5.0f), d[4], WT_FMA(WT_SET1(4.0f), d[2], d[6]));
    v[0] = WT_FMA(WT_SET1(5.25f), WT_SUB(d[4], d[2]), WT_SUB(d[0], d[6]));
    v[1] = WT_ADD(s2, s1);
    v[2] = WT_SUB(s2, s1);
    v[3] = WT_ADD(p2, p1);
    v[4] = WT_SUB(p2, p1);
    v[5] = WT_ADD(q2, q1);
    v[6] = WT_SUB(q2, q1);
    v[7] = WT_FMA(WT_SET1(5.25f), WT_SUB(d[3], d[5]), WT_SUB(d[7], d[1]));
}

/* The output transform y = A^T m, 8 values to 4. */
WT_INLINE void at8(const WT_V *m, WT_V *y)
{
    const WT_V a = WT_ADD(m[1], m[2]), b = WT_SUB(m[1], m[2]);
    const WT_V c = WT_ADD(m[3], m[4]), d = WT_SUB(m[3], m[4]);
    const WT_V e = WT_ADD(m[5], m[6]), f = WT_SUB(m[5], m[6]);
    y[0] = WT_ADD(WT_ADD(m[0], a), WT_ADD(c, e));
    y[1] = WT_FMA(WT_SET1(0.5f), f, WT_FMA(WT_SET1(2.0f), d, b));
    y[2] = WT_FMA(WT_SET1(0.25f), e, WT_FMA(WT_SET1(4.0f), c, a));
    y[3] = WT_ADD(WT_FMA(WT_SET1(0.125f), f, WT_FMA(WT_SET1(8.0f), d, b)), m[7]);
}

/* Its adjoint z = A y, 4 values to 8: how an output gradient enters the
 * transformed domain. */
WT_INLINE void a8(const WT_V *y, WT_V *z)
{
    const WT_V e = WT_ADD(y[0], y[2]), o = WT_ADD(y[1], y[3]);
    const WT_V e4 = WT_FMA(WT_SET1(4.0f), y[2], y[0]);
    const WT_V o4 = WT_FMA(WT_SET1(8.0f), y[3], WT_MUL(WT_SET1(2.0f), y[1]));
    const WT_V eq = WT_FMA(WT_SET1(0.25f), y[2], y[0]);
    const WT_V oq = WT_FMA(WT_SET1(0.125f), y[3], WT_MUL(WT_SET1(0.5f), y[1]));
    z[0] = y[0];
    z[1] = WT_ADD(e, o);
    z[2] = WT_SUB(e, o);
    z[3] = WT_ADD(e4, o4);
    z[4] = WT_SUB(e4, o4);
    z[5] = WT_ADD(eq, oq);
    z[6] = WT_SUB(eq, oq);
    z[7] = y[3];
}

/* The same three for 6 points. */
WT_INLINE void bt6(const WT_V *d, WT_V *v)
{
    const WT_V four = WT_SET1(4.0f), two = WT_SET1(2.0f);
    const WT_V s1 = WT_FNMA(four, WT_ADD(d[1], d[2]), WT_ADD(d[3], d[4]));
    const WT_V s2 = WT_FMA(four, WT_SUB(d[1], d[2]), WT_SUB(d[4], d[3]));
    const WT_V e = WT_SUB(d[4], d[2]), o = WT_MUL(two, WT_SUB(d[3], d[1]));
    v[0] = WT_FMA(four, d[0], WT_FMA(WT_SET1(-5.0f), d[2], d[4]));
    v[1] = s1;
    v[2] = s2;
    v[3] = WT_ADD(e, o);
    v[4] = WT_SUB(e, o);
    v[5] = WT_FMA(four, d[1], WT_FMA(WT_SET1(-5.0f), d[3], d[5]));
}

WT_INLINE void at6(const WT_V *m, WT_V *y)
{
    const WT_V a = WT_ADD(m[1], m[2]), b = WT_SUB(m[1], m[2]);
    const WT_V c = WT_ADD(m[3], m[4]), d = WT_SUB(m[3], m[4]);
    y[0] = WT_ADD(WT_ADD(m[0], a), c);
    y[1] = WT_FMA(WT_SET1(2.0f), d, b);
    y[2] = WT_FMA(WT_SET1(4.0f), c, a);
    y[3] = WT_ADD(WT_FMA(WT_SET1(8.0f), d, b), m[5]);
}

WT_INLINE void a6(const WT_V *y, WT_V *z)
{
    const WT_V e = WT_ADD(y[0], y[2]), o = WT_ADD(y[1], y[3]);
    const WT_V e4 = WT_FMA(WT_SET1(4.0f), y[2], y[0]);
    const WT_V o4 = WT_FMA(WT_SET1(8.0f), y[3], WT_MUL(WT_SET1(2.0f), y[1]));
    z[0] = y[0];
    z[1] = WT_ADD(e, o);
    z[2] = WT_SUB(e, o);
    z[3] = WT_ADD(e4, o4);
    z[4] = WT_SUB(e4, o4);
    z[5] = y[3];
}

/* For N points a side, with bt##N, at##N and a##N above: each tile
 * transform runs its 1-D transform down the columns, then along the rows. */
#define WT_TILE_TRANSFORMS(N)                                                                     \
    static WT_TARGET void input_tile##N(const float *src, size_t rs, size_t cs, float *dst,       \
                                        size_t fs)                                                \
    {                                                                                             \
        WT_V t[N][N];                                                                             \
        _Pragma("GCC unroll 8") for (int j = 0; j < N; j++)                                       \
        {                                                                                         \
            WT_V d[N], v[N];                                                                      \
            _Pragma("GCC unroll 8") for (int i = 0; i < N; i++) d[i] =                            \
                WT_LOAD(src + (size_t)i * rs + (size_t)j * cs);                                   \
            bt##N(d, v);                                                                          \
            _Pragma("GCC unroll 8") for (int k = 0; k < N; k++) t[k][j] = v[k];                   \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int k = 0; k < N; k++)                                       \
        {                                                                                         \
            WT_V v[N];                                                                            \
            bt##N(t[k], v);                                                                       \
            _Pragma("GCC unroll 8") for (int l = 0; l < N; l++)                                   \
                WT_STORE(dst + (size_t)(k * N + l) * fs, v[l]);                                   \
        }                                                                                         \
    }                                                                                             \
    static WT_TARGET void output_tile##N(const float *src, size_t fs, float *dst, size_t rs,      \
                                         size_t cs)                                               \
    {                                                                                             \
        WT_V s[N][WT_OUT];                                                                        \
        _Pragma("GCC unroll 8") for (int j = 0; j < N; j++)                                       \
        {                                                                                         \
            WT_V m[N], y[WT_OUT];                                                                 \
            _Pragma("GCC unroll 8") for (int k = 0; k < N; k++) m[k] =                            \
                WT_LOAD(src + (size_t)(k * N + j) * fs);                                          \
            at##N(m, y);                                                                          \
            _Pragma("GCC unroll 4") for (int i = 0; i < WT_OUT; i++) s[j][i] = y[i];              \
        }                                                                                         \
        _Pragma("GCC unroll 4") for (int i = 0; i < WT_OUT; i++)                                  \
        {                                                                                         \
            WT_V r[N], y[WT_OUT];                                                                 \
            _Pragma("GCC unroll 8") for (int j = 0; j < N; j++) r[j] = s[j][i];                   \
            at##N(r, y);                                                                          \
            _Pragma("GCC unroll 4") for (int l = 0; l < WT_OUT; l++)                              \
                WT_STORE(dst + (size_t)i * rs + (size_t)l * cs, y[l]);                            \
        }                                                                                         \
    }                                                                                             \
    static WT_TARGET void gradient_tile##N(const float *src, size_t rs, size_t cs, float *dst,    \
                                           size_t fs)                                             \
    {                                                                                             \
        WT_V t[N][WT_OUT];                                                                        \
        _Pragma("GCC unroll 4") for (int j = 0; j < WT_OUT; j++)                                  \
        {                                                                                         \
            WT_V y[WT_OUT], z[N];                                                                 \
            _Pragma("GCC unroll 4") for (int i = 0; i < WT_OUT; i++) y[i] =                       \
                WT_LOAD(src + (size_t)i * rs + (size_t)j * cs);                                   \
            a##N(y, z);                                                                           \
            _Pragma("GCC unroll 8") for (int k = 0; k < N; k++) t[k][j] = z[k];                   \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int k = 0; k < N; k++)                                       \
        {                                                                                         \
            WT_V z[N];                                                                            \
            a##N(t[k], z);                                                                        \
            _Pragma("GCC unroll 8") for (int l = 0; l < N; l++)                                   \
                WT_STORE(dst + (size_t)(k * N + l) * fs, z[l]);                                   \
        }                                                                                         \
    }

WT_TILE_TRANSFORMS(8)
WT_TILE_TRANSFORMS(6)

#undef WT_TILE_TRANSFORMS
#undef WT_OUT
#undef WT_AHEAD
#undef WT_PREFETCH_ROW
#undef WT_INLINE
