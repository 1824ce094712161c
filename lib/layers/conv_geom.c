/* Convolution geometry (see conv_geom.h). */
#include "layers/conv_geom.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"

/* Every count the kernels index with (per-image plane sizes, the im2col
 * matrix, the weight matrix) is kept within int, because cvae__sgemm takes
 * int dimensions and leading strides; batch offsets are then formed in
 * size_t so only the per-image products need checking here. */
static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

static cvae_status check_product(const char *what, int64_t a, int64_t b, int64_t c)
{
    /* Operands are positive ints, so a*b fits int64 and the second product
     * is checked before it is formed. */
    int64_t ab = a * b;
    if (!fits_int(ab) || ab > INT_MAX / c)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "conv geometry: %s = %lld x %lld x %lld overflows int", what,
                          (long long)a, (long long)b, (long long)c);
    return CVAE_OK;
}

/* One spatial axis of a forward conv: output size and leading pad. */
static cvae_status axis_geom(const char *axis, int in, int k, int stride, int pad, int *out,
                             int *pad_lead)
{
    int64_t n_out, lead;
    if (pad == CVAE__PAD_SAME) {
        /* TensorFlow's "same": out = ceil(in / stride); the total padding
         * needed to reach it is split with the odd row at the end. */
        n_out = ((int64_t)in + stride - 1) / stride;
        int64_t total = (n_out - 1) * stride + k - in;
        if (total < 0)
            total = 0;
        lead = total / 2;
    } else {
        int64_t padded = (int64_t)in + 2 * (int64_t)pad;
        if (padded > INT_MAX)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "conv geometry: padded %s %lld (input %d, pad %d) overflows int",
                              axis, (long long)padded, in, pad);
        if (padded < k)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "conv geometry: kernel %s %d exceeds the padded input %lld "
                              "(input %d, pad %d)",
                              axis, k, (long long)padded, in, pad);
        n_out = (padded - k) / stride + 1;
        lead = pad;
    }
    if (n_out < 1 || !fits_int(n_out))
        return cvae__fail(CVAE_E_INVALID_ARG, "conv geometry: output %s %lld is not usable",
                          axis, (long long)n_out);
    *out = (int)n_out;
    *pad_lead = (int)lead;
    return CVAE_OK;
}

cvae_status cvae__conv_geom_init(cvae__conv_geom *g, int c_in, int h_in, int w_in, int c_out,
                                 int kh, int kw, int stride, int pad)
{
    CVAE__CHECK_PTR(g);
    memset(g, 0, sizeof *g);
    if (c_in < 1 || h_in < 1 || w_in < 1 || c_out < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "conv geometry: sizes must be >= 1 (c_in %d, h_in %d, w_in %d, "
                          "c_out %d)",
                          c_in, h_in, w_in, c_out);
    if (kh < 1 || kw < 1 || stride < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "conv geometry: kernel %dx%d and stride %d must be >= 1", kh, kw,
                          stride);
    if (pad < 0 && pad != CVAE__PAD_SAME)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "conv geometry: padding %d must be >= 0 or CVAE__PAD_SAME", pad);
    int h_out = 0, w_out = 0, pt = 0, pl = 0;
    cvae_status st;
    if ((st = axis_geom("height", h_in, kh, stride, pad, &h_out, &pt)) ||
        (st = axis_geom("width", w_in, kw, stride, pad, &w_out, &pl)))
        return st;
    int64_t ckk = (int64_t)c_in * kh * kw;
    int64_t hw_out = (int64_t)h_out * w_out;
    if ((st = check_product("c_in*kh*kw", c_in, kh, kw)) ||
        (st = check_product("c_in*h_in*w_in", c_in, h_in, w_in)) ||
        (st = check_product("c_out*h_out*w_out", c_out, h_out, w_out)) ||
        (st = check_product("c_out*c_in*kh*kw", c_out, ckk, 1)) ||
        (st = check_product("c_in*kh*kw*h_out*w_out", ckk, hw_out, 1)))
        return st;
    g->c_in = c_in;
    g->h_in = h_in;
    g->w_in = w_in;
    g->c_out = c_out;
    g->h_out = h_out;
    g->w_out = w_out;
    g->kh = kh;
    g->kw = kw;
    g->stride = stride;
    g->pad_top = pt;
    g->pad_left = pl;
    return CVAE_OK;
}

size_t cvae__conv_col_floats(const cvae__conv_geom *g)
{
    return (size_t)g->c_in * (size_t)g->kh * (size_t)g->kw * (size_t)g->h_out *
           (size_t)g->w_out;
}

/* Output columns [*lo, *hi) whose input column ox*stride - pad + k lies in
 * [0, n_in): the rest read padding. Computing the range once per kernel
 * column keeps the inner loops free of bounds tests. */
void cvae__conv_valid_range(int k, int pad, int stride, int n_in, int n_out, int *lo, int *hi)
{
    int first = pad - k; /* ox*stride >= pad - k */
    int a = first <= 0 ? 0 : (first + stride - 1) / stride;
    int last = n_in - 1 + pad - k; /* ox*stride <= n_in - 1 + pad - k */
    int b = last < 0 ? 0 : last / stride + 1;
    if (a > n_out)
        a = n_out;
    if (b > n_out)
        b = n_out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}
