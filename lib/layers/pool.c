#include "layers/pool.h"

#include <limits.h>
#include <string.h>

#include "core/cpu.h"
#include "core/error.h"
#include "core/threads.h"

cvae_status cvae__pool_geom_init(cvae__pool_geom *g, int c, int h_in, int w_in, int k,
                                 int stride)
{
    CVAE__CHECK_PTR(g);
    memset(g, 0, sizeof *g);
    if (c < 1 || h_in < 1 || w_in < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "pool geometry: sizes must be >= 1 (c %d, h_in %d, w_in %d)", c, h_in,
                          w_in);
    if (k < 1 || stride < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "pool geometry: window %d and stride %d must be >= 1", k, stride);
    if (k > h_in || k > w_in)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "pool geometry: window %d does not fit the %dx%d input", k, h_in,
                          w_in);
    /* argmax stores in-plane indices as int32 and the kernels index a whole
     * image with int arithmetic, so one image must fit int. */
    long long plane = (long long)h_in * w_in;
    if (plane > INT_MAX / c)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "pool geometry: %d x %d x %d elements per image overflow int", c, h_in,
                          w_in);
    g->c = c;
    g->h_in = h_in;
    g->w_in = w_in;
    g->k = k;
    g->stride = stride;
    g->h_out = (h_in - k) / stride + 1;
    g->w_out = (w_in - k) / stride + 1;
    return CVAE_OK;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define POOL_X86 1

/* One output row of the 2x2 stride-2 pool, 16 outputs at a time: the even
 * and odd columns of both input rows are split by permutes, then the same
 * strictly-greater comparisons as the scalar loop in the same order (so
 * the same winner on ties, and a NaN never wins), as masked blends. */
__attribute__((target("avx512f"))) static void pool2_row_avx512(const float *r0, const float *r1,
                                                                int w_out, int base, int w_in,
                                                                float *d, int32_t *ai)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28,
                                         30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int ox0 = 0; ox0 < w_out; ox0 += 16) {
        const int n = w_out - ox0 < 16 ? w_out - ox0 : 16;
        const int nin = 2 * n;
        const __mmask16 lo = (__mmask16)(nin >= 16 ? 0xffffu : (1u << nin) - 1u);
        const __mmask16 hi = (__mmask16)(nin > 16 ? (1u << (nin - 16)) - 1u : 0u);
        const __mmask16 om = (__mmask16)(n == 16 ? 0xffffu : (1u << n) - 1u);
        const float *a = r0 + 2 * ox0, *b = r1 + 2 * ox0;
        const __m512 a0 = _mm512_maskz_loadu_ps(lo, a), a1 = _mm512_maskz_loadu_ps(hi, a + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(lo, b), b1 = _mm512_maskz_loadu_ps(hi, b + 16);
        const __m512 v1 = _mm512_permutex2var_ps(a0, od, a1);
        const __m512 v2 = _mm512_permutex2var_ps(b0, ev, b1);
        const __m512 v3 = _mm512_permutex2var_ps(b0, od, b1);
        __m512 bv = _mm512_permutex2var_ps(a0, ev, a1);
        const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(base + 2 * ox0), ev);
        __m512i id = idx;
        __mmask16 m = _mm512_cmp_ps_mask(v1, bv, _CMP_GT_OQ);
        bv = _mm512_mask_mov_ps(bv, m, v1);
        id = _mm512_mask_mov_epi32(id, m, _mm512_add_epi32(idx, _mm512_set1_epi32(1)));
        m = _mm512_cmp_ps_mask(v2, bv, _CMP_GT_OQ);
        bv = _mm512_mask_mov_ps(bv, m, v2);
        id = _mm512_mask_mov_epi32(id, m, _mm512_add_epi32(idx, _mm512_set1_epi32(w_in)));
        m = _mm512_cmp_ps_mask(v3, bv, _CMP_GT_OQ);
        bv = _mm512_mask_mov_ps(bv, m, v3);
        id = _mm512_mask_mov_epi32(id, m, _mm512_add_epi32(idx, _mm512_set1_epi32(w_in + 1)));
        _mm512_mask_storeu_ps(d + ox0, om, bv);
        _mm512_mask_storeu_epi32(ai + ox0, om, id);
    }
}

/* The same row, 8 outputs at a time, for CPUs without AVX-512: AVX2 has no
 * two-source permute, so the even and odd columns come from in-lane
 * shuffles put in order by a cross-lane one; masked loads and stores (slow
 * on AVX2) only for the row's last, partial block. */
__attribute__((target("avx2"))) static void pool2_row_avx2(const float *r0, const float *r1,
                                                           int w_out, int base, int w_in,
                                                           float *d, int32_t *ai)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i ev = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (int ox0 = 0; ox0 < w_out; ox0 += 8) {
        const int n = w_out - ox0 < 8 ? w_out - ox0 : 8;
        const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n), lane);
        const __m256i hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n - 8), lane);
        const __m256i om = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
        const float *a = r0 + 2 * ox0, *b = r1 + 2 * ox0;
        const int whole = n == 8;
        const __m256 a0 = whole ? _mm256_loadu_ps(a) : _mm256_maskload_ps(a, lo);
        const __m256 a1 = whole ? _mm256_loadu_ps(a + 8) : _mm256_maskload_ps(a + 8, hi);
        const __m256 b0 = whole ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, lo);
        const __m256 b1 = whole ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, hi);
#define EVEN(x, y)                                                                                \
    _mm256_castpd_ps(                                                                             \
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x, y, 0x88)), 0xD8))
#define ODD(x, y)                                                                                 \
    _mm256_castpd_ps(                                                                             \
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x, y, 0xDD)), 0xD8))
        __m256 bv = EVEN(a0, a1);
        const __m256 v1 = ODD(a0, a1), v2 = EVEN(b0, b1), v3 = ODD(b0, b1);
#undef EVEN
#undef ODD
        const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(base + 2 * ox0), ev);
        __m256 id = _mm256_castsi256_ps(idx);
        __m256 m = _mm256_cmp_ps(v1, bv, _CMP_GT_OQ);
        bv = _mm256_blendv_ps(bv, v1, m);
        id = _mm256_blendv_ps(id, _mm256_castsi256_ps(_mm256_add_epi32(idx, _mm256_set1_epi32(1))),
                              m);
        m = _mm256_cmp_ps(v2, bv, _CMP_GT_OQ);
        bv = _mm256_blendv_ps(bv, v2, m);
        id = _mm256_blendv_ps(
            id, _mm256_castsi256_ps(_mm256_add_epi32(idx, _mm256_set1_epi32(w_in))), m);
        m = _mm256_cmp_ps(v3, bv, _CMP_GT_OQ);
        bv = _mm256_blendv_ps(bv, v3, m);
        id = _mm256_blendv_ps(
            id, _mm256_castsi256_ps(_mm256_add_epi32(idx, _mm256_set1_epi32(w_in + 1))), m);
        if (whole) {
            _mm256_storeu_ps(d + ox0, bv);
            _mm256_storeu_si256((__m256i *)(void *)(ai + ox0), _mm256_castps_si256(id));
        } else {
            _mm256_maskstore_ps(d + ox0, om, bv);
            _mm256_maskstore_epi32((int *)(ai + ox0), om, _mm256_castps_si256(id));
        }
    }
}
#else
#define POOL_X86 0
#endif

/* Planes [p0, p1) of the forward pass. */
static void forward_planes(const cvae__pool_geom *g, size_t p0, size_t p1, const float *x,
                           float *y, int32_t *argmax)
{
    const int k = g->k, s = g->stride, w_in = g->w_in;
    const size_t in_plane = (size_t)g->h_in * (size_t)w_in;
    const size_t out_plane = (size_t)g->h_out * (size_t)g->w_out;
#if POOL_X86
    const int avx512 = cvae__cpu_isa() >= CVAE__ISA_AVX512;
    const int avx2 = !avx512 && cvae__cpu_isa() >= CVAE__ISA_AVX2;
#endif
    for (size_t p = p0; p < p1; p++) {
        const float *src = x + p * in_plane;
        float *dst = y + p * out_plane;
        int32_t *am = argmax + p * out_plane;
        if (k == 2 && s == 2) {
            /* The model's pool: the same comparisons in the same order as
             * the general loop below, written as selects the compiler turns
             * into blends (the general loop's data-dependent branches
             * mispredict on real feature maps). */
            for (int oy = 0; oy < g->h_out; oy++) {
                const float *r0 = src + (size_t)(2 * oy) * (size_t)w_in;
                const float *r1 = r0 + w_in;
                float *d = dst + (size_t)oy * (size_t)g->w_out;
                int32_t *ai = am + (size_t)oy * (size_t)g->w_out;
                const int base = 2 * oy * w_in;
#if POOL_X86
                if (avx512) {
                    pool2_row_avx512(r0, r1, g->w_out, base, w_in, d, ai);
                    continue;
                }
                if (avx2) {
                    pool2_row_avx2(r0, r1, g->w_out, base, w_in, d, ai);
                    continue;
                }
#endif
                for (int ox = 0; ox < g->w_out; ox++) {
                    const float v0 = r0[2 * ox], v1 = r0[2 * ox + 1];
                    const float v2 = r1[2 * ox], v3 = r1[2 * ox + 1];
                    int best = 0;
                    float bv = v0;
                    best = v1 > bv ? 1 : best;
                    bv = v1 > bv ? v1 : bv;
                    best = v2 > bv ? 2 : best;
                    bv = v2 > bv ? v2 : bv;
                    best = v3 > bv ? 3 : best;
                    bv = v3 > bv ? v3 : bv;
                    d[ox] = bv;
                    ai[ox] = base + 2 * ox + (best & 1) + (best >> 1) * w_in;
                }
            }
            continue;
        }
        for (int oy = 0; oy < g->h_out; oy++) {
            for (int ox = 0; ox < g->w_out; ox++) {
                int best = oy * s * w_in + ox * s;
                float bv = src[best];
                for (int dy = 0; dy < k; dy++) {
                    const int row = (oy * s + dy) * w_in + ox * s;
                    for (int dx = 0; dx < k; dx++) {
                        /* Strictly greater: the first maximum wins a tie, so
                         * the gradient goes to one input only. */
                        if (src[row + dx] > bv) {
                            bv = src[row + dx];
                            best = row + dx;
                        }
                    }
                }
                const size_t o = (size_t)oy * (size_t)g->w_out + (size_t)ox;
                dst[o] = bv;
                am[o] = (int32_t)best;
            }
        }
    }
}

/* Planes [p0, p1) of the backward pass. */
static void backward_planes(const cvae__pool_geom *g, size_t p0, size_t p1, const float *dy,
                            const int32_t *argmax, float *dx)
{
    const size_t in_plane = (size_t)g->h_in * (size_t)g->w_in;
    const size_t out_plane = (size_t)g->h_out * (size_t)g->w_out;
    for (size_t p = p0; p < p1; p++) {
        float *d = dx + p * in_plane;
        const float *g_out = dy + p * out_plane;
        const int32_t *am = argmax + p * out_plane;
        memset(d, 0, in_plane * sizeof *d);
        /* Overlapping windows (k > stride) can pick the same input twice. */
        for (size_t o = 0; o < out_plane; o++)
            d[am[o]] += g_out[o];
    }
}

/* Both passes work plane by plane; large batches are split across the
 * library's threads (the result does not depend on the split). */
typedef struct pool_job {
    const cvae__pool_geom *g;
    size_t planes;
    const float *in;
    float *out;
    const int32_t *am_in;
    int32_t *am_out;
    int backward;
    double share; /* two parts: part 0's share (cvae__parallel_share) */
} pool_job;

/* Each plane is pooled on its own, so where the parts meet does not change
 * the result. */
static void pool_part(void *ctx, int part, int parts)
{
    const pool_job *j = ctx;
    const size_t p0 = cvae__parallel_part_start(j->planes, part, parts, j->share),
                 p1 = cvae__parallel_part_start(j->planes, part + 1, parts, j->share);
    if (j->backward)
        backward_planes(j->g, p0, p1, j->in, j->am_in, j->out);
    else
        forward_planes(j->g, p0, p1, j->in, j->out, j->am_out);
}

/* Below this many input values a pass is not worth a hand-off to a
 * thread. */
#define POOL_SPLIT_MIN (1 << 16)

static void run(pool_job *j)
{
    const size_t values = j->planes * (size_t)j->g->h_in * (size_t)j->g->w_in;
    int parts = cvae__parallel_threads();
    if ((size_t)parts > j->planes)
        parts = (int)j->planes;
    if (parts > 1 && values >= POOL_SPLIT_MIN) {
        /* cut at the threads' share of the work (core/threads.h); the pool
         * learns from the share the whole planes give */
        j->share = cvae__parallel_share(CVAE__SHARE_POOL);
        cvae__parallel_cut(CVAE__SHARE_POOL, parts,
                           (double)cvae__parallel_part_start(j->planes, 1, 2, j->share) /
                               (double)j->planes,
                           pool_part, j);
    } else
        pool_part(j, 0, 1);
}

void cvae__maxpool_forward(const cvae__pool_geom *g, int n, const float *x, float *y,
                           int32_t *argmax)
{
    const size_t planes = (size_t)n * (size_t)g->c;
    if (n <= 0 || planes == 0)
        return;
    pool_job j = {g, planes, x, y, NULL, argmax, 0, 0};
    run(&j);
}

void cvae__maxpool_backward(const cvae__pool_geom *g, int n, const float *dy,
                            const int32_t *argmax, float *dx)
{
    const size_t planes = (size_t)n * (size_t)g->c;
    if (n <= 0 || planes == 0)
        return;
    pool_job j = {g, planes, dy, dx, argmax, NULL, 1, 0};
    run(&j);
}
