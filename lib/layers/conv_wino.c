/* Winograd F(4x4, 5x5) and F(4x4, 3x3) convolutions (see conv_wino.h).
 *
 * With n = 8 or 6 inputs per tile side, B the n x n input transform, G the
 * n x k kernel transform and A the n x 4 output transform (Cook-Toom on
 * the points 0, +-1, +-2, infinity, and for n = 8 also +-1/2), a 4x4
 * output block of one channel pair is
 *     Y = A^T [(G g G^T) . (B^T d B)] A
 * for d the n x n input block under it and "." elementwise. Summed over
 * input channels, the elementwise products become, for each of the n*n
 * points f, a matrix product M_f (tiles x c_out) = V_f (tiles x c_in)
 * U_f (c_in x c_out). The weight gradient follows from the same identity:
 * dg = G^T [sum over tiles of (A dY A^T) . (B^T d B)] G.
 *
 * Layouts (16 channels to a vector; cb, kb index blocks of 16 input and
 * output channels):
 *   the image copy: channels last, zero-padded, [row][col][c_in rounded up];
 *   V, the transformed inputs: [f][cb][tile][16];
 *   M, the products, and Z, the transformed output gradients: [f][kb][tile][16];
 *   U, the transformed weights: [f][c_in rounded][c_out rounded].
 * The transforms run on 16 channels at once, one vector per value, so
 * they need no shuffles; the products read V with broadcasts (rows are
 * tiles) and U with vector loads. The kernels here are AVX-512's; on CPUs
 * with AVX2 and FMA only, conv_wino_avx2.c's do the same on two vectors of
 * 8 channels, and the once-per-call weight transforms run in plain C. The
 * layout copies and the tile transforms are written once for both widths
 * (conv_wino_vec.h). */
#include "layers/conv_wino.h"

#include <limits.h>
#include <string.h>

#include "core/gemm.h"
#include "layers/conv_wino_avx2.h"

#define TILE 4    /* outputs per tile side */
#define MAX_KS 5  /* largest kernel side */
#define MAX_IN 8  /* inputs per tile side for it */
#define MAX_NF 64 /* points of its transformed domain, 8 x 8 */
#define MAX_GROUP 4

/* F(4x4, 5x5): the 8x5 kernel transform, rows the 8 points. Its first row
 * (the point 0) is negated, with the input transform's first row, so that
 * both have small positive leading entries; the product is unchanged. */
static const float G8[8 * 5] = {
    1.0f,       0.0f,        0.0f,      0.0f,       0.0f,
    -2.0f / 9,  -2.0f / 9,   -2.0f / 9, -2.0f / 9,  -2.0f / 9,
    -2.0f / 9,  2.0f / 9,    -2.0f / 9, 2.0f / 9,   -2.0f / 9,
    1.0f / 90,  2.0f / 90,   4.0f / 90, 8.0f / 90,  16.0f / 90,
    1.0f / 90,  -2.0f / 90,  4.0f / 90, -8.0f / 90, 16.0f / 90,
    32.0f / 45, 16.0f / 45,  8.0f / 45, 4.0f / 45,  2.0f / 45,
    32.0f / 45, -16.0f / 45, 8.0f / 45, -4.0f / 45, 2.0f / 45,
    0.0f,       0.0f,        0.0f,      0.0f,       1.0f};

/* F(4x4, 3x3): the 6x3 kernel transform on the points 0, +-1, +-2 and
 * infinity. */
static const float G6[6 * 3] = {
    0.25f,      0.0f,       0.0f,
    -1.0f / 6,  -1.0f / 6,  -1.0f / 6,
    -1.0f / 6,  1.0f / 6,   -1.0f / 6,
    1.0f / 24,  1.0f / 12,  1.0f / 6,
    1.0f / 24,  -1.0f / 12, 1.0f / 6,
    0.0f,       0.0f,       1.0f};

typedef struct wl {
    int ks, in, nf;          /* kernel side, inputs per tile side, points */
    const float *gm;         /* the in x ks kernel transform */
    int cb, kb, ty, tx, t;   /* channel blocks in, out; tiles down, across, in all */
    int ph, pw;              /* the padded image copy's rows and columns */
    size_t cp, kp;           /* channels in, out, rounded up to 16 */
} wl;

static wl layout_of(const cvae__conv_geom *g)
{
    wl l;
    l.ks = g->kh;
    l.in = l.ks + TILE - 1;
    l.nf = l.in * l.in;
    l.gm = l.ks == 5 ? G8 : G6;
    l.cb = (g->c_in + 15) / 16;
    l.kb = (g->c_out + 15) / 16;
    l.ty = (g->h_out + TILE - 1) / TILE;
    l.tx = (g->w_out + TILE - 1) / TILE;
    l.t = l.ty * l.tx;
    l.ph = TILE * l.ty + l.ks - 1;
    l.pw = TILE * l.tx + l.ks - 1;
    l.cp = (size_t)l.cb * 16;
    l.kp = (size_t)l.kb * 16;
    return l;
}

/* Floats from one point's block of V, M, Z or the gradient sums to the
 * next: one cache line more than the block, so that the 36 or 64 points of a
 * tile, which the transforms write or read one after another, fall in
 * different cache sets (with a power-of-two stride they shared a few
 * sets, and the transforms ran at a third of their speed). */
static size_t point_stride(size_t block) { return block + 16; }

int cvae__conv_wino_pays(const cvae__conv_geom *g, int n)
{
    return n >= CVAE__WINO_MIN_IMAGES && cvae__conv_wino_ok(g);
}

/* Images per weight-gradient product: enough that its inner dimension
 * (tiles) is at least 64 where a few images give that. */
static int group_of(const wl *l)
{
    int b = (64 + l->t - 1) / l->t;
    return b < 1 ? 1 : b > MAX_GROUP ? MAX_GROUP : b;
}

size_t cvae__conv_wino_u_floats(const cvae__conv_geom *g)
{
    const wl l = layout_of(g);
    return (size_t)l.nf * l.cp * l.kp;
}

/* forward work: the image copy, V, M, the output copy (one row of tiles) */
typedef struct fwd_ws {
    size_t xcl, v, m, ycl, n;
} fwd_ws;

static fwd_ws fwd_ws_of(const wl *l)
{
    fwd_ws w;
    w.xcl = 0;
    w.v = w.xcl + (size_t)l->ph * (size_t)l->pw * l->cp;
    w.m = w.v + (size_t)l->nf * point_stride(l->cp * (size_t)l->t);
    w.ycl = w.m + (size_t)l->nf * point_stride(l->kp * (size_t)l->t);
    w.n = w.ycl + (size_t)TILE * TILE * (size_t)l->tx * l->kp;
    return w;
}

size_t cvae__conv_wino_work_floats(const cvae__conv_geom *g)
{
    const wl l = layout_of(g);
    return fwd_ws_of(&l).n;
}

/* weight-gradient work: the running sum in the transformed domain; the
 * padded channels-last copies of an image of x and of dy; V and Z for a
 * group of images; then, for the convolutions a group may run on the way
 * (cvae__conv_wino_dw_group), the products and output copy of g's forward
 * conv of x, and the transformed input, products and output copy of the
 * adjoint conv of dy. */
typedef struct dw_ws {
    size_t acc, xcl, dyp, v, z, fm, fy, av, am, ay, n;
} dw_ws;

static dw_ws dw_ws_of(const wl *l)
{
    dw_ws w;
    const size_t tg = (size_t)l->t * (size_t)group_of(l), t = (size_t)l->t;
    const size_t plane = (size_t)l->ph * (size_t)l->pw;
    w.acc = 0;
    w.xcl = w.acc + (size_t)l->nf * point_stride(l->cp * l->kp);
    w.dyp = w.xcl + plane * l->cp;
    w.v = w.dyp + plane * l->kp;
    w.z = w.v + (size_t)l->nf * point_stride(l->cp * tg);
    w.fm = w.z + (size_t)l->nf * point_stride(l->kp * tg);
    w.fy = w.fm + (size_t)l->nf * point_stride(l->kp * t);
    w.av = w.fy + (size_t)TILE * TILE * (size_t)l->tx * l->kp;
    w.am = w.av + (size_t)l->nf * point_stride(l->kp * t);
    w.ay = w.am + (size_t)l->nf * point_stride(l->cp * t);
    w.n = w.ay + (size_t)TILE * TILE * (size_t)l->tx * l->cp;
    return w;
}

size_t cvae__conv_wino_dw_floats(const cvae__conv_geom *g)
{
    const wl l = layout_of(g);
    return dw_ws_of(&l).n;
}

int cvae__conv_wino_group(const cvae__conv_geom *g)
{
    const wl l = layout_of(g);
    return group_of(&l);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "core/transpose16.h"

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

struct wino_isa;
static const struct wino_isa *isa_here(void);

int cvae__conv_wino_ok(const cvae__conv_geom *g)
{
    /* the last condition keeps tile counts, times a group of images and
     * 16 floats a tile, inside int (the tile kernel's inner dimension) */
    return g->stride == 1 && (g->kh == 3 || g->kh == 5) && g->kw == g->kh &&
           g->pad_top == (g->kh - 1) / 2 && g->pad_left == (g->kw - 1) / 2 &&
           g->h_out == g->h_in && g->w_out == g->w_in && g->c_in >= 16 && g->c_out >= 16 &&
           isa_here() != NULL &&
           (size_t)g->h_in * (size_t)g->w_in < (size_t)INT_MAX / (16 * MAX_GROUP);
}

static __mmask16 first_lanes(int n) { return (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u); }

/* The layout copies and the tile transforms, 16 channels at a time
 * (conv_wino_vec.h). */
#define WT_V __m512
#define WT_W 16
#define WT_TARGET AVX512
#define WT_SET1(x) _mm512_set1_ps(x)
#define WT_ZERO _mm512_setzero_ps()
#define WT_ADD(a, b) _mm512_add_ps(a, b)
#define WT_SUB(a, b) _mm512_sub_ps(a, b)
#define WT_MUL(a, b) _mm512_mul_ps(a, b)
#define WT_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define WT_FNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define WT_LOAD(p) _mm512_loadu_ps(p)
#define WT_STORE(p, v) _mm512_storeu_ps(p, v)
#define WT_MASK __mmask16
#define WT_MASKLOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define WT_MASKSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define WT_TRANSPOSE(a) tr16_avx512(a)
#include "layers/conv_wino_vec.h"

/* u = G g G^T for 16 kernels side by side: g[q] (ks*ks vectors, lane l
 * one kernel) to u[f] (in*in vectors). */
static AVX512 void kernel_transform16(const wl *l, const __m512 *g, __m512 *u)
{
    const int ks = l->ks, in = l->in;
    const float *gm = l->gm;
    __m512 t[MAX_IN * MAX_KS];
    for (int i = 0; i < in; i++)
        for (int j = 0; j < ks; j++) {
            __m512 s = _mm512_setzero_ps();
            for (int r = 0; r < ks; r++)
                s = _mm512_fmadd_ps(_mm512_set1_ps(gm[i * ks + r]), g[r * ks + j], s);
            t[i * ks + j] = s;
        }
    for (int i = 0; i < in; i++)
        for (int j = 0; j < in; j++) {
            __m512 s = _mm512_setzero_ps();
            for (int r = 0; r < ks; r++)
                s = _mm512_fmadd_ps(t[i * ks + r], _mm512_set1_ps(gm[j * ks + r]), s);
            u[i * in + j] = s;
        }
}

static AVX512 void weights_avx512(const cvae__conv_geom *g, const float *w, float *u)
{
    const wl l = layout_of(g);
    const size_t kk = (size_t)l.ks * (size_t)l.ks, kern = (size_t)g->c_in * kk;
    memset(u, 0, cvae__conv_wino_u_floats(g) * sizeof *u);
    for (int c = 0; c < g->c_in; c++)
        for (int k0 = 0; k0 < g->c_out; k0 += 16) {
            const int nk = g->c_out - k0 < 16 ? g->c_out - k0 : 16;
            float gk[MAX_KS * MAX_KS][16];
            __m512 gv[MAX_KS * MAX_KS], t[MAX_NF];
            for (size_t q = 0; q < kk; q++) {
                for (int j = 0; j < 16; j++)
                    gk[q][j] = j < nk ? w[(size_t)(k0 + j) * kern + (size_t)c * kk + q] : 0.0f;
                gv[q] = _mm512_loadu_ps(gk[q]);
            }
            kernel_transform16(&l, gv, t);
            for (int f = 0; f < l.nf; f++)
                _mm512_storeu_ps(u + ((size_t)f * l.cp + (size_t)c) * l.kp + (size_t)k0, t[f]);
        }
}

/* dw[k][c][ks][ks] = G^T acc_{k,c} G, acc_{k,c}[f] the running sum at
 * point f for the channel pair, stored [f][cb][kb][c % 16][k % 16]: 16
 * output channels side by side. */
static AVX512 void kernel_gradients(const cvae__conv_geom *g, const wl *l, const float *acc,
                                    float *dw)
{
    const int ks = l->ks, in = l->in;
    const float *gm = l->gm;
    const size_t per_f = point_stride(l->cp * l->kp);
    const size_t kk = (size_t)ks * (size_t)ks, kern = (size_t)g->c_in * kk;
    for (int c = 0; c < g->c_in; c++)
        for (int k0 = 0; k0 < g->c_out; k0 += 16) {
            const int nk = g->c_out - k0 < 16 ? g->c_out - k0 : 16;
            const float *a = acc + ((size_t)(c / 16) * (size_t)l->kb + (size_t)(k0 / 16)) * 256 +
                             (size_t)(c % 16) * 16;
            __m512 t[MAX_KS * MAX_IN];
            float d[MAX_KS * MAX_KS][16];
            for (int r = 0; r < ks; r++)
                for (int j = 0; j < in; j++) {
                    __m512 s = _mm512_setzero_ps();
                    for (int i = 0; i < in; i++)
                        s = _mm512_fmadd_ps(_mm512_set1_ps(gm[i * ks + r]),
                                            _mm512_loadu_ps(a + (size_t)(i * in + j) * per_f), s);
                    t[r * in + j] = s;
                }
            for (int r = 0; r < ks; r++)
                for (int b = 0; b < ks; b++) {
                    __m512 s = _mm512_setzero_ps();
                    for (int j = 0; j < in; j++)
                        s = _mm512_fmadd_ps(t[r * in + j], _mm512_set1_ps(gm[j * ks + b]), s);
                    _mm512_storeu_ps(d[r * ks + b], s);
                }
            for (int j = 0; j < nk; j++)
                for (size_t q = 0; q < kk; q++)
                    dw[(size_t)(k0 + j) * kern + (size_t)c * kk + q] = d[q][j];
        }
}

/* c (m x 16, m <= 16 tiles, rows 16 floats apart) = sum over the nc input
 * channels of V(t, c) times the 16 floats of U's row c; V(t, c) at
 * v + (c / 16) * vblk + t * 16 + c % 16, U's rows us floats apart. */
static AVX512 void product_tile(int m, int nc, const float *v, size_t vblk, const float *u,
                                size_t us, float *c)
{
    __m512 acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_setzero_ps();
    for (int cb = 0; cb < nc / 16; cb++) {
        const float *vb = v + (size_t)cb * vblk;
        for (int ci = 0; ci < 16; ci++) {
            const __m512 b = _mm512_loadu_ps(u);
            u += us;
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(vb[i * 16 + ci]), b, acc[i]);
        }
    }
    for (int i = 0; i < m; i++)
        _mm512_storeu_ps(c + (size_t)i * 16, acc[i]);
}

/* The same layouts computed in plain C, where the AVX2 kernels run: each
 * runs once per call of a layer, so their speed hardly counts. */
static void weights_c(const cvae__conv_geom *g, const float *w, float *u)
{
    const wl l = layout_of(g);
    const int ks = l.ks, in = l.in;
    const size_t kk = (size_t)ks * (size_t)ks, kern = (size_t)g->c_in * kk;
    memset(u, 0, cvae__conv_wino_u_floats(g) * sizeof *u);
    for (int k = 0; k < g->c_out; k++)
        for (int c = 0; c < g->c_in; c++) {
            const float *gk = w + (size_t)k * kern + (size_t)c * kk;
            float t[MAX_IN * MAX_KS];
            for (int i = 0; i < in; i++)
                for (int j = 0; j < ks; j++) {
                    float s = 0.0f;
                    for (int r = 0; r < ks; r++)
                        s += l.gm[i * ks + r] * gk[r * ks + j];
                    t[i * ks + j] = s;
                }
            for (int i = 0; i < in; i++)
                for (int j = 0; j < in; j++) {
                    float s = 0.0f;
                    for (int r = 0; r < ks; r++)
                        s += t[i * ks + r] * l.gm[j * ks + r];
                    u[((size_t)(i * in + j) * l.cp + (size_t)c) * l.kp + (size_t)k] = s;
                }
        }
}

static void kernel_gradients_c(const cvae__conv_geom *g, const wl *l, const float *acc, float *dw)
{
    const int ks = l->ks, in = l->in;
    const size_t per_f = point_stride(l->cp * l->kp);
    const size_t kk = (size_t)ks * (size_t)ks, kern = (size_t)g->c_in * kk;
    for (int c = 0; c < g->c_in; c++)
        for (int k = 0; k < g->c_out; k++) {
            const float *a = acc + ((size_t)(c / 16) * (size_t)l->kb + (size_t)(k / 16)) * 256 +
                             (size_t)(c % 16) * 16 + (size_t)(k % 16);
            float t[MAX_KS * MAX_IN];
            for (int r = 0; r < ks; r++)
                for (int j = 0; j < in; j++) {
                    float s = 0.0f;
                    for (int i = 0; i < in; i++)
                        s += l->gm[i * ks + r] * a[(size_t)(i * in + j) * per_f];
                    t[r * in + j] = s;
                }
            for (int r = 0; r < ks; r++)
                for (int b = 0; b < ks; b++) {
                    float s = 0.0f;
                    for (int j = 0; j < in; j++)
                        s += t[r * in + j] * l->gm[j * ks + b];
                    dw[(size_t)k * kern + (size_t)c * kk + (size_t)(r * ks + b)] = s;
                }
        }
}

/* The kernels one instruction set provides; n is 8 or 6 points a side.
 * product and outer are the two products of the transformed domain
 * (forward, and the weight gradient's sum of outer products over tiles). */
typedef struct wino_isa {
    void (*to_cl)(const float *src, int c, int h, int w, int pad, int y0, int y1, int pw,
                  size_t cp, float *dst);
    void (*to_cf)(const float *ycl, size_t ow, size_t kp, int k, int h, int w, int i0, int i1,
                  float *y);
    void (*in)(int n, const float *src, size_t rs, size_t cs, float *dst, size_t fs);
    void (*out)(int n, const float *src, size_t fs, float *dst, size_t rs, size_t cs);
    void (*grad)(int n, const float *src, size_t rs, size_t cs, float *dst, size_t fs);
    void (*product)(int m, int nc, const float *v, size_t vblk, const float *u, size_t us,
                    float *c);
    void (*outer)(int k, const float *v, const float *z, float beta, float *c);
    void (*weights)(const cvae__conv_geom *g, const float *w, float *u);
    void (*kgrad)(const cvae__conv_geom *g, const wl *l, const float *acc, float *dw);
} wino_isa;

static void in512(int n, const float *src, size_t rs, size_t cs, float *dst, size_t fs)
{
    (n == 8 ? input_tile8 : input_tile6)(src, rs, cs, dst, fs);
}

static void out512(int n, const float *src, size_t fs, float *dst, size_t rs, size_t cs)
{
    (n == 8 ? output_tile8 : output_tile6)(src, fs, dst, rs, cs);
}

static void grad512(int n, const float *src, size_t rs, size_t cs, float *dst, size_t fs)
{
    (n == 8 ? gradient_tile8 : gradient_tile6)(src, rs, cs, dst, fs);
}

/* V's 16 channels of a tile are a packed column of 16 rows, Z's 16 output
 * channels a packed row, as the GEMM's AVX-512 tile kernel reads them. */
static void outer512(int k, const float *v, const float *z, float beta, float *c)
{
    cvae__gemm_tile(16, 16, k, v, z, beta, c, 16);
}

static const wino_isa isa_avx512 = {channels_last, channels_first, in512,   out512,
                                    grad512,       product_tile,   outer512, weights_avx512,
                                    kernel_gradients};

static const wino_isa isa_avx2 = {cvae__wino_avx2_channels_last,
                                  cvae__wino_avx2_channels_first,
                                  cvae__wino_avx2_input_tile,
                                  cvae__wino_avx2_output_tile,
                                  cvae__wino_avx2_gradient_tile,
                                  cvae__wino_avx2_product,
                                  cvae__wino_avx2_outer,
                                  weights_c,
                                  kernel_gradients_c};

/* The AVX-512 kernels where the GEMM runs its AVX-512 tile kernel, the
 * AVX2 ones where it runs its AVX2 kernel; none where the GEMM was told to
 * use BLIS's own kernels only (CVAE_GEMM_KERNEL=blis), which turns every
 * hand-written path off. */
static const wino_isa *isa_here(void)
{
    const int mr = cvae__gemm_tile_mr();
    if (mr == 16)
        return &isa_avx512;
    if (mr == 6 && cvae__wino_avx2_ok())
        return &isa_avx2;
    return NULL;
}

void cvae__conv_wino_weights(const cvae__conv_geom *g, const float *w, float *u)
{
    isa_here()->weights(g, w, u);
}

/* V for one row ty of tiles of one image (channels-last copy xcl), at tile
 * offset t0 of V's tiles (tg of them). */
static void input_tiles(const wino_isa *k, const wl *l, const float *xcl, float *v, int t0,
                        int tg, int ty)
{
    const size_t fs = point_stride(l->cp * (size_t)tg), rs = (size_t)l->pw * l->cp;
    for (int cb = 0; cb < l->cb; cb++)
        for (int tx = 0; tx < l->tx; tx++) {
            const size_t t = (size_t)t0 + (size_t)ty * (size_t)l->tx + (size_t)tx;
            k->in(l->in,
                  xcl + (size_t)(TILE * ty) * rs + (size_t)(TILE * tx) * l->cp + (size_t)cb * 16,
                  rs, l->cp, v + ((size_t)cb * (size_t)tg + t) * 16, fs);
        }
}

/* The rows of the padded channels-last copy of img (c channels, layout l)
 * that row ty of tiles reads and no earlier row did: the copy is made a
 * row of tiles ahead of the transforms that read it, which then find it
 * in the nearest cache (made whole first, it was read back from the next
 * one). Both ways a row of tiles at a time, the 5-convolution model's step
 * took about 3% less time at 1 thread, 2% at 2. */
static void copy_rows(const wino_isa *k, const wl *l, const float *img, int c, int h, int w,
                      int ty, float *xcl)
{
    const int y0 = ty == 0 ? 0 : TILE * ty + l->in - TILE;
    k->to_cl(img, c, h, w, (l->ks - 1) / 2, y0, TILE * ty + l->in, l->pw, l->cp, xcl);
}

/* V for every tile of one image img (c channels, layout l), its
 * channels-last copy made in xcl a row of tiles ahead. */
static void copy_and_transform(const wino_isa *k, const wl *l, const float *img, int c, int h,
                               int w, float *xcl, float *v, int t0, int tg)
{
    for (int ty = 0; ty < l->ty; ty++) {
        copy_rows(k, l, img, c, h, w, ty, xcl);
        input_tiles(k, l, xcl, v, t0, tg, ty);
    }
}

/* The adjoint of g (the input gradient's convolution): g with its channel
 * counts swapped, since g keeps the image's size with the same padding on
 * every side. */
static cvae__conv_geom adjoint_of(const cvae__conv_geom *g)
{
    cvae__conv_geom a = *g;
    a.c_in = g->c_out;
    a.c_out = g->c_in;
    return a;
}

/* y = conv g from V (the transformed input of one image: point f's block
 * of channels cb at v + f * vfs + cb * vblk, its tiles 16 floats apart),
 * through the products M and ycl, the channels-last copy of one row of
 * output tiles. */
static void forward_from_v(const wino_isa *k, const wl *l, const cvae__conv_geom *g,
                           const float *v, size_t vfs, size_t vblk, const float *u, float *y,
                           float *m, float *ycl)
{
    const size_t t = (size_t)l->t, mfs = point_stride(l->kp * t);
    for (int f = 0; f < l->nf; f++)
        for (int kb = 0; kb < l->kb; kb++)
            for (int t0 = 0; t0 < l->t; t0 += 16)
                k->product(l->t - t0 < 16 ? l->t - t0 : 16, (int)l->cp,
                           v + (size_t)f * vfs + (size_t)t0 * 16, vblk,
                           u + (size_t)f * l->cp * l->kp + (size_t)kb * 16, l->kp,
                           m + (size_t)f * mfs + (size_t)kb * 16 * t + (size_t)t0 * 16);
    /* a row of tiles at a time, copied out while its 4 rows are in the
     * nearest cache, as copy_rows does on the way in */
    const size_t ow = (size_t)TILE * (size_t)l->tx;
    for (int ty = 0; ty < l->ty; ty++) {
        for (int kb = 0; kb < l->kb; kb++)
            for (int tx = 0; tx < l->tx; tx++) {
                const size_t ti = (size_t)ty * (size_t)l->tx + (size_t)tx;
                k->out(l->in, m + ((size_t)kb * t + ti) * 16, mfs,
                       ycl + (size_t)(TILE * tx) * l->kp + (size_t)kb * 16, ow * l->kp, l->kp);
            }
        const int i0 = TILE * ty, i1 = i0 + TILE < g->h_out ? i0 + TILE : g->h_out;
        k->to_cf(ycl, ow, l->kp, g->c_out, g->h_out, g->w_out, i0, i1, y);
    }
}

void cvae__conv_wino_forward(const cvae__conv_geom *g, const float *img, const float *u, float *y,
                             float *work)
{
    const wl l = layout_of(g);
    const fwd_ws ws = fwd_ws_of(&l);
    const wino_isa *k = isa_here();
    float *xcl = work + ws.xcl, *v = work + ws.v;
    copy_and_transform(k, &l, img, g->c_in, g->h_in, g->w_in, xcl, v, 0, l.t);
    forward_from_v(k, &l, g, v, point_stride(l.cp * (size_t)l.t), (size_t)l.t * 16, u, y,
                   work + ws.m, work + ws.ycl);
}

void cvae__conv_wino_dw_group(const cvae__conv_geom *g, int first, int nb, const float *x,
                              const float *dy, const float *ux, float *xout, const float *ua,
                              float *dyout, float *work)
{
    const wl l = layout_of(g);
    const cvae__conv_geom a = adjoint_of(g);
    const wl la = layout_of(&a);
    const dw_ws ws = dw_ws_of(&l);
    const size_t tg = (size_t)l.t * (size_t)group_of(&l), t = (size_t)l.t;
    const size_t x_img = (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out;
    const size_t vfs = point_stride(l.cp * tg), zfs = point_stride(l.kp * tg);
    const size_t afs = point_stride(l.cp * l.kp);
    const int pad = (l.ks - 1) / 2;
    /* dy's copy is padded for the adjoint conv; the output-gradient tiles
     * read its interior, whose rows and columns past the image are zero as
     * the tiles need */
    const size_t drs = (size_t)l.pw * l.kp;
    const float *dyin = work + ws.dyp + (size_t)pad * drs + (size_t)pad * l.kp;
    const wino_isa *k = isa_here();
    float *acc = work + ws.acc, *xcl = work + ws.xcl, *dyp = work + ws.dyp;
    float *v = work + ws.v, *z = work + ws.z;
    for (int b = 0; b < nb; b++) {
        const int t0 = b * l.t;
        copy_and_transform(k, &l, x + (size_t)b * x_img, g->c_in, g->h_in, g->w_in, xcl, v, t0,
                           (int)tg);
        if (ux)
            forward_from_v(k, &l, g, v + (size_t)t0 * 16, vfs, tg * 16, ux,
                           xout + (size_t)b * y_img, work + ws.fm, work + ws.fy);
        for (int ty = 0; ty < l.ty; ty++) {
            copy_rows(k, &la, dy + (size_t)b * y_img, g->c_out, g->h_out, g->w_out, ty, dyp);
            if (ua)
                input_tiles(k, &la, dyp, work + ws.av, 0, la.t, ty);
            for (int kb = 0; kb < l.kb; kb++)
                for (int tx = 0; tx < l.tx; tx++) {
                    const size_t ti = (size_t)t0 + (size_t)ty * (size_t)l.tx + (size_t)tx;
                    k->grad(l.in,
                            dyin + (size_t)(TILE * ty) * drs + (size_t)(TILE * tx) * l.kp +
                                (size_t)kb * 16,
                            drs, l.kp, z + ((size_t)kb * tg + ti) * 16, zfs);
                }
        }
        if (ua)
            forward_from_v(k, &la, &a, work + ws.av, point_stride(la.cp * t), t * 16, ua,
                           dyout + (size_t)b * x_img, work + ws.am, work + ws.ay);
    }
    /* acc[f][cb][kb] (16 x 16) += V_f[cb]^T Z_f[kb] over this group's
     * tiles */
    const int tiles = nb * l.t;
    for (int f = 0; f < l.nf; f++)
        for (int cb = 0; cb < l.cb; cb++)
            for (int kb = 0; kb < l.kb; kb++)
                k->outer(tiles, v + (size_t)f * vfs + (size_t)cb * tg * 16,
                         z + (size_t)f * zfs + (size_t)kb * tg * 16, first ? 0.0f : 1.0f,
                         acc + (size_t)f * afs + ((size_t)cb * (size_t)l.kb + (size_t)kb) * 256);
}

void cvae__conv_wino_dw_end(const cvae__conv_geom *g, const float *work, float *dw)
{
    const wl l = layout_of(g);
    isa_here()->kgrad(g, &l, work + dw_ws_of(&l).acc, dw);
}

void cvae__conv_wino_dw_with(const cvae__conv_geom *g, int n, const float *x, const float *dy,
                             const float *ux, float *xout, const float *ua, float *dyout,
                             float *dw, float *work)
{
    const int group = cvae__conv_wino_group(g);
    const size_t x_img = (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out;
    if (n <= 0) {
        memset(dw, 0, (size_t)g->c_out * (size_t)g->c_in * (size_t)(g->kh * g->kw) * sizeof *dw);
        return;
    }
    for (int i0 = 0; i0 < n; i0 += group)
        cvae__conv_wino_dw_group(g, i0 == 0, n - i0 < group ? n - i0 : group,
                                 x + (size_t)i0 * x_img, dy + (size_t)i0 * y_img, ux,
                                 ux ? xout + (size_t)i0 * y_img : NULL, ua,
                                 ua ? dyout + (size_t)i0 * x_img : NULL, work);
    cvae__conv_wino_dw_end(g, work, dw);
}

void cvae__conv_wino_dw(const cvae__conv_geom *g, int n, const float *x, const float *dy,
                        float *dw, float *work)
{
    cvae__conv_wino_dw_with(g, n, x, dy, NULL, NULL, NULL, NULL, dw, work);
}

#else

int cvae__conv_wino_ok(const cvae__conv_geom *g)
{
    (void)g;
    return 0;
}

void cvae__conv_wino_weights(const cvae__conv_geom *g, const float *w, float *u)
{
    (void)g, (void)w, (void)u;
}

void cvae__conv_wino_forward(const cvae__conv_geom *g, const float *img, const float *u, float *y,
                             float *work)
{
    (void)g, (void)img, (void)u, (void)y, (void)work;
}

void cvae__conv_wino_dw(const cvae__conv_geom *g, int n, const float *x, const float *dy,
                        float *dw, float *work)
{
    (void)g, (void)n, (void)x, (void)dy, (void)dw, (void)work;
}

void cvae__conv_wino_dw_group(const cvae__conv_geom *g, int first, int nb, const float *x,
                              const float *dy, const float *ux, float *xout, const float *ua,
                              float *dyout, float *work)
{
    (void)g, (void)first, (void)nb, (void)x, (void)dy, (void)ux, (void)xout, (void)ua,
        (void)dyout, (void)work;
}

void cvae__conv_wino_dw_end(const cvae__conv_geom *g, const float *work, float *dw)
{
    (void)g, (void)work, (void)dw;
}

void cvae__conv_wino_dw_with(const cvae__conv_geom *g, int n, const float *x, const float *dy,
                             const float *ux, float *xout, const float *ua, float *dyout,
                             float *dw, float *work)
{
    (void)g, (void)n, (void)x, (void)dy, (void)ux, (void)xout, (void)ua, (void)dyout, (void)dw,
        (void)work;
}

#endif
